"""The scan loop: wait for the deadline, run the stages and the core once, measure.

Each scan: the ``before`` stages (latch the input image, apply queued commands), one call of the
compiled core, the ``after`` stages (drive outputs, publish the snapshot, record events,
checkpoint). Wake lateness and execution time are measured every scan; an overrun (deadlines
skipped) is counted and recorded as an event.

The core's time is the deadline, not the wake-up: ``now`` = deadline and ``dt`` = the time
between deadlines, so the protection integrates on the ideal grid and jitter never reaches
theta. Contract: the loop itself allocates nothing per scan and never touches I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from softrelay import _timing
from softrelay.core import ProtectionCore

log = logging.getLogger("softrelay.scan")

Stage = Callable[[ProtectionCore, float], None]


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

    def __init__(self, core: ProtectionCore, clock, *, before: Sequence[Stage] = (),
                 after: Sequence[Stage] = (), on_overrun: Callable[[int, float], None] | None
                 = None, heartbeat: Callable[[int], None] | None = None,
                 stats: ScanStats | None = None) -> None:
        self.core = core
        self.clock = clock
        self.before = list(before)
        self.after = list(after)
        self.on_overrun = on_overrun
        self.heartbeat = heartbeat
        self.stats = stats if stats is not None else ScanStats(clock.period_ns)

    def step(self) -> None:
        """Wait for the next deadline and run one scan."""
        deadline, late, missed = self.clock.wait()
        start = self.clock.now_ns()
        stats = self.stats
        previous = stats.last_deadline_ns or deadline - self.clock.period_ns
        now = deadline / 1e9
        dt = (deadline - previous) / 1e9
        for stage in self.before:
            stage(self.core, now)
        self.core.scan(now, dt)
        for stage in self.after:
            stage(self.core, now)
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
