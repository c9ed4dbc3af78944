"""Waiting, bounded, for what a test asserts (never a fixed sleep).

A test names the condition it needs, how long a loaded machine may take to reach it and, for
the failure message, what it waited for: the message says what did not happen, not a bare
``assert False``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], within: float = 5.0, what: str = "the condition",
             poll: float = 0.01) -> T:
    """Call ``condition`` every ``poll`` s until it returns something true, and return that;
    fail the test (AssertionError naming ``what``) once ``within`` s have gone by without."""
    deadline = time.monotonic() + within
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not within {within:g} s"
        time.sleep(poll)
