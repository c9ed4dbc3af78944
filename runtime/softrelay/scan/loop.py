"""The scan loop: wait for the deadline, run the stages once in their order, measure.

Each scan runs the named stages it was given, in the order given, one of them the compiled
core's pass (``CORE_PASS``). The relay's order is ``softrelay.relay.stages.SCAN_ORDER``:
latch -> settings -> commands -> core -> settle -> events -> supervision -> coils ->
checkpoint -> keep_settings -> publish (a test holds this to the tuple). A
``stage_timer(name, ns)``, when given, is told how long each stage took (``softrelay bench``);
without one the loop reads the clock twice per scan.
Wake lateness and execution time are measured every scan; an overrun (deadlines skipped) is
counted and recorded as an event.

The core's time is the deadline, not the wake-up: ``now`` = deadline and ``dt`` = the time
between deadlines, so the protection integrates on the ideal grid and jitter never reaches
theta. Contract: the loop itself allocates nothing per scan and never touches I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from softrelay import _timing
from softrelay.core import ProtectionCore
from softrelay.scan.clock import ScanClock

log = logging.getLogger("softrelay.scan")

Stage = Callable[[ProtectionCore, float], None]
#: the name of the compiled core's pass among the stages (its callable: ``None``, the loop's)
CORE_PASS = "core"


class BoundStage(NamedTuple):
    """A stage as the loop runs it: its name and its callable (``None``: the core's pass)."""

    name: str
    run: Stage | None


#: the stages of a loop given none: the core's pass alone
CORE_ONLY = (BoundStage(CORE_PASS, None),)


@dataclass
class ScanStats:
    """What the scan measures about itself (exposed over Modbus, metrics and the terminal)."""

    period_ns: int
    lateness: _timing.Histogram = field(default_factory=_timing.Histogram)
    execution: _timing.Histogram = field(default_factory=_timing.Histogram)
    scans: int = 0
    overruns: int = 0  #: scans that found deadlines already past
    missed: int = 0  #: deadlines skipped in all
    last_deadline_ns: int = 0
    cleared: int = 0  #: times the statistics were cleared

    def clear(self) -> None:
        """Start the histograms and the overrun counts again (the scan counter goes on)."""
        self.cleared += 1
        self.lateness.reset()
        self.execution.reset()
        self.overruns = 0
        self.missed = 0

    def summary(self) -> dict:
        return {"scans": self.scans, "overruns": self.overruns, "missed": self.missed,
                "period_ns": self.period_ns, "lateness": self.lateness.summary(),
                "execution": self.execution.summary()}


class ScanLoop:
    """One relay's scan. ``step()`` runs exactly one scan; ``run()`` scans until stopped."""

    def __init__(self, core: ProtectionCore, clock: ScanClock,
                 stages: Sequence[BoundStage] = CORE_ONLY,
                 stage_timer: Callable[[str, int], None] | None = None, *,
                 on_overrun: Callable[[int, float], object] | None = None,
                 heartbeat: Callable[[int], None] | None = None,
                 stats: ScanStats | None = None) -> None:
        """``stages``: (name, callable) in scan order, exactly one of them the core's pass
        (``CORE_PASS``, callable ``None``); ``stage_timer(name, ns)``: told each stage's time
        (may be set or cleared later, between scans)."""
        cores = [s for s in stages if s.run is None]
        if len(cores) != 1 or cores[0].name != CORE_PASS:
            raise ValueError(f"a scan has exactly one core pass ({CORE_PASS!r}, callable None): "
                             f"{[s.name for s in stages]}")
        self.core = core
        self.clock = clock
        self.stages = tuple(BoundStage(*s) for s in stages)
        self.stage_timer = stage_timer
        self.on_overrun = on_overrun
        self.heartbeat = heartbeat
        self.stats = stats if stats is not None else ScanStats(clock.period_ns)

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def step(self) -> None:
        """Wait for the next deadline and run one scan."""
        deadline, late, missed = self.clock.wait()
        start = self.clock.now_ns()
        stats = self.stats
        previous = stats.last_deadline_ns or deadline - self.clock.period_ns
        now = deadline / 1e9
        dt = (deadline - previous) / 1e9
        core = self.core
        timer = self.stage_timer
        if timer is None:
            for _, run in self.stages:
                if run is None:
                    core.scan(now, dt)
                else:
                    run(core, now)
        else:
            for name, run in self.stages:  # on the monotonic clock: a bench's measure
                began = _timing.monotonic_ns()
                if run is None:
                    core.scan(now, dt)
                else:
                    run(core, now)
                timer(name, _timing.monotonic_ns() - began)
        stats.last_deadline_ns = deadline
        stats.scans += 1
        stats.lateness.record(late)
        stats.execution.record(self.clock.now_ns() - start)
        if missed:
            stats.overruns += 1
            stats.missed += missed
            if self.on_overrun is not None:
                self.on_overrun(missed, now)
        if self.heartbeat is not None:
            self.heartbeat(deadline)

    def run(self, keep_going: Callable[[], bool], max_scans: int | None = None) -> None:
        """Scan while ``keep_going()`` (checked between scans) and up to ``max_scans``."""
        count = 0
        while keep_going() and (max_scans is None or count < max_scans):
            self.step()
            count += 1
