"""The scan's stages, by name, and the one tuple that is their order.

``SCAN_ORDER`` is the order every scan runs in; the README, the relay's docstring and
``softrelay bench`` quote it (``scan_order_text()``, ``order_line()``), and a test holds them
to it. The relay binds a callable to each name (``bind``); ``softrelay bench`` times them by
these names (``ScanLoop``'s ``stage_timer``). Changing the order is a behaviour change: the
recorded run (``tests/golden_run.py``) shows what it moves.

This module holds names and words only: it never imports what a stage does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from softrelay.scan.loop import CORE_PASS, BoundStage


@dataclass(frozen=True)
class ScanStage:
    """One stage of the scan: its name (the bench's, the docs') and what it does."""

    name: str
    does: str


LATCH = ScanStage("latch", "the input image into the core (the inputs it had, while the I/O "
                  "process holds it)")
SETTINGS = ScanStage("settings", "settings changes queued over Modbus written into the core")
COMMANDS = ScanStage("commands", "queued commands (reset, acknowledge, preset, clear "
                     "statistics) into command bits")
CORE = ScanStage(CORE_PASS, "the compiled core's one pass over every protected point")
SETTLE = ScanStage("settle", "command bits cleared, latches released, outcomes recorded")
EVENTS = ScanStage("events", "flag pickups and dropouts recorded as events")
SUPERVISION = ScanStage("supervision", "points whose measurement is lost, to the "
                        "self-supervision")
COILS = ScanStage("coils", "coils driven from the flags")
CHECKPOINT = ScanStage("checkpoint", "thermal memory handed to its writer, every "
                       "checkpoint interval")
KEEP_SETTINGS = ScanStage("keep_settings", "settings changed in service handed to their "
                          "keeper")
PUBLISH = ScanStage("publish", "the output snapshot and the register image published")

#: the order of every scan: the one place it is written
SCAN_ORDER: tuple[ScanStage, ...] = (LATCH, SETTINGS, COMMANDS, CORE, SETTLE, EVENTS,
                                     SUPERVISION, COILS, CHECKPOINT, KEEP_SETTINGS, PUBLISH)

#: the first line of the README's scan-order block
BLOCK_TITLE = "scan order (softrelay.relay.stages.SCAN_ORDER):"


def names() -> tuple[str, ...]:
    return tuple(s.name for s in SCAN_ORDER)


def order_line() -> str:
    """The order in one line, as the docstrings quote it: ``latch -> settings -> ...``."""
    return " -> ".join(names())


def scan_order_text() -> str:
    """The README's scan-order block (inside its fence): the title, then one numbered line
    per stage with what it does."""
    width = max(len(s.name) for s in SCAN_ORDER)
    return "\n".join([BLOCK_TITLE] + [f"{k:2d}. {s.name:<{width}}  {s.does}"
                                      for k, s in enumerate(SCAN_ORDER, 1)])


def bind(runs: Mapping[str, Callable | None]) -> tuple[BoundStage, ...]:
    """The stages in ``SCAN_ORDER`` with their callables (``runs``: name -> callable; the
    core's pass is the loop's own, ``None``). ``ValueError`` when a name is missing or unknown:
    a stage is never dropped or added silently."""
    wanted = set(names())
    given = set(runs)
    if given != wanted:
        raise ValueError(f"scan stages: missing {sorted(wanted - given)}, unknown "
                         f"{sorted(given - wanted)}")
    return tuple(BoundStage(s.name, runs[s.name]) for s in SCAN_ORDER)
