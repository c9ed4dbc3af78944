"""The scan's clocks: the real one (compiled, absolute deadlines) and an injected one for tests.

Both give ``wait() -> (deadline_ns, lateness_ns, missed)`` and ``now_ns()`` on one time base;
the loop never asks the operating system for the time by itself, so a test can replay exact
scan-by-scan behaviour.
"""

from __future__ import annotations

from typing import Protocol

from softrelay import _timing


class ScanClock(Protocol):
    """What the scan loop and the relay ask of a clock (``MonotonicClock``,
    ``SimulatedClock``)."""

    period_ns: int  #: the scan period

    def restart(self) -> None:
        """Put the grid's origin at now."""

    def wait(self) -> tuple[int, int, int]:
        """Sleep to the next deadline: (deadline_ns, lateness_ns, missed periods)."""
        ...

    def now_ns(self) -> int:
        """Now, on the deadlines' time base."""
        ...


class MonotonicClock:
    """Absolute deadlines on CLOCK_MONOTONIC, slept without the GIL."""

    def __init__(self, period_ns: int) -> None:
        self.period_ns = period_ns
        self.ticker = _timing.Ticker(period_ns)

    def restart(self) -> None:
        """Put the grid's origin at now (before the first scan, after a slow start-up)."""
        self.ticker = _timing.Ticker(self.period_ns)

    def wait(self) -> tuple[int, int, int]:
        return self.ticker.wait()

    @staticmethod
    def now_ns() -> int:
        return _timing.monotonic_ns()


class SimulatedClock:
    """Deadlines on the same grid, no sleeping; a test decides lateness and execution time.

    ``stall(ns)`` makes the next scan take that long (it is spent between the scan's first and
    second look at the clock: its start and its end), so the loop sees the overrun a real stall
    would cause; ``late(ns)`` delays the next wake-up.
    """

    def __init__(self, period_ns: int, start_ns: int = 1_000_000_000) -> None:
        self.period_ns = period_ns
        self.deadline_ns = start_ns
        self.time_ns = start_ns
        self._late = 0
        self._stall = 0
        self._woke = False

    def wait(self) -> tuple[int, int, int]:
        target = self.deadline_ns + self.period_ns
        missed = 0
        if self.time_ns > target:
            missed = (self.time_ns - target) // self.period_ns + 1
            target += missed * self.period_ns
        self.deadline_ns = target
        self.time_ns = target + self._late
        late, self._late = self._late, 0
        self._woke = True
        return target, late, missed

    def restart(self) -> None:
        """Nothing to do: simulated time does not pass while the relay starts."""

    def now_ns(self) -> int:
        """Time as the loop sees it: the wake-up, then (at the next look) any stall spent."""
        if self._woke:
            self._woke = False
        else:
            self.time_ns += self._stall
            self._stall = 0
        return self.time_ns

    def stall(self, ns: int) -> None:
        self._stall += ns

    def late(self, ns: int) -> None:
        self._late += ns
