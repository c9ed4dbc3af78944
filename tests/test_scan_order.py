"""The scan order is written once (``relay.stages.SCAN_ORDER``): the relay runs it, and the
README, the relay's docstring and the scan loop's docstring quote it; a change of the tuple
that the docs do not follow fails here."""

from __future__ import annotations

from pathlib import Path

from gpiozero.pins.mock import MockFactory

import softrelay.relay.relay as relay_module
import softrelay.scan.loop as loop_module
from softrelay.config import load
from softrelay.relay import stages
from softrelay.relay.relay import Relay

README = Path(__file__).resolve().parent.parent / "README.md"


def flat(text: str) -> str:
    return " ".join(text.split())


def readme_block() -> str | None:
    """The fenced block of README.md whose first line is the scan order's title."""
    lines = README.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == stages.BLOCK_TITLE and i and lines[i - 1].startswith("```"):
            end = next(k for k in range(i, len(lines)) if lines[k].startswith("```"))
            return "\n".join(lines[i:end])
    return None


def test_the_readme_quotes_the_scan_order():
    block = readme_block()
    assert block is not None, ("README.md has no scan-order block: a fenced block of\n"
                               + stages.scan_order_text())
    assert block == stages.scan_order_text(), (
        "README.md's scan order is not relay/stages.py's SCAN_ORDER: the block should read\n"
        + stages.scan_order_text())


def test_the_relay_and_loop_docstrings_quote_the_scan_order():
    for module in (relay_module, loop_module):
        assert stages.order_line() in flat(module.__doc__), (
            f"{module.__name__}'s docstring does not quote {stages.order_line()!r}")


def test_the_relay_scans_in_that_order(tmp_path):
    relay = Relay(load(None), None, factory=MockFactory())
    try:
        assert relay.loop.stage_names == stages.names()
    finally:
        relay.stop()


def test_every_stage_is_bound_and_none_invented():
    runs = {name: None for name in stages.names()}
    assert [s.name for s in stages.bind(runs)] == list(stages.names())
    for broken in ({k: v for k, v in runs.items() if k != "coils"}, runs | {"extra": None}):
        try:
            stages.bind(broken)
        except ValueError as exc:
            assert "coils" in str(exc) or "extra" in str(exc)
        else:
            raise AssertionError("a stage dropped or added silently")
