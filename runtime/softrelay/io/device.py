"""The device interface every bus driver implements, real or simulated.

A ``Device`` answers ``read(addresses)`` with a (value, quality) per address. Subclasses must
override ``_read`` (one transaction for a batch of addresses) and may override ``open`` and
``close``. The public ``read`` does the shared work: it turns a driver's exception into an I/O
error quality for the whole batch, so a failing device can never raise into its worker.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from softrelay.core import Quality

Reading = tuple[float | np.ndarray, int]  #: (value or sample window, quality)


class NoReadingError(ValueError):
    """A chip answered with its own "no reading" value (a TMP117's 8000h before its first
    conversion): the reading is SENTINEL, not out of range."""


class Device:
    """Base class of field devices.

    Must override: ``_read(addresses) -> list[float | Reading]`` (raise OSError, TimeoutError
    or ValueError on failure). May override: ``open()``, ``close()`` (safe to call twice).
    """

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self.errors = 0
        self.last_error = ""

    def open(self) -> None:
        """Connect or claim the bus; called by the worker before the first read."""

    def close(self) -> None:
        """Release the bus; safe to call twice."""

    def _read(self, addresses: Sequence[str]) -> list[float | Reading]:
        raise NotImplementedError

    def read(self, addresses: Sequence[str]) -> list[Reading]:
        """One (value, quality) per address; a failure marks every address IO_ERROR."""
        try:
            raw = self._read(addresses)
        except (OSError, TimeoutError, ValueError) as exc:
            self.errors += 1
            self.last_error = f"{exc.__class__.__name__}: {exc}"
            return [(math.nan, Quality.IO_ERROR)] * len(addresses)
        readings = []
        for item in raw:
            value, quality = item if isinstance(item, tuple) else (item, Quality.GOOD)
            if not isinstance(value, np.ndarray):  # a sample window stays an array
                value = float(value)
            readings.append((value, int(quality)))
        return readings
