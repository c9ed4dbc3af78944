"""Self-supervision: the healthy contact and systemd's watchdog follow the scan's heartbeat.

A thread of its own checks, several times per allowed stall, how long ago the last scan
finished. Older than ``limit`` (watchdog_periods x period): the healthy contact drops and an
event is recorded; when scans resume, it picks up again (with an event). systemd's watchdog is
fed only while the heartbeat is fresh, so a stalled scan is restarted by systemd.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Watchdog:
    def __init__(self, limit_s: float, set_healthy: Callable[[bool, str], None],
                 feed_systemd: Callable[[], None] | None = None,
                 now: Callable[[], float] = time.monotonic,
                 also: Callable[[], None] | None = None) -> None:
        """``set_healthy(fresh, why)`` on every change of the heartbeat's freshness;
        ``also()`` after every check (the self-tests, on this thread)."""
        self.limit_s = limit_s
        self.set_healthy = set_healthy
        self.feed_systemd = feed_systemd
        self.also = also
        self.now = now
        self.last_beat: float | None = None
        self.healthy = False
        self.stalls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, deadline_ns: int | None = None) -> None:
        """Called by the scan after every scan (cheap: one assignment)."""
        self.last_beat = self.now()

    def check(self) -> bool:
        """One supervision step; returns whether the scan is healthy."""
        if self.last_beat is None:
            return False
        age = self.now() - self.last_beat
        fresh = age <= self.limit_s
        if fresh and not self.healthy:
            self.healthy = True
            self.set_healthy(True, "scans running")
        elif not fresh and self.healthy:
            self.healthy = False
            self.stalls += 1
            self.set_healthy(False, f"no scan for {age * 1000:.0f} ms "
                                    f"(limit {self.limit_s * 1000:.0f} ms)")
        if fresh and self.feed_systemd is not None:
            self.feed_systemd()
        return fresh

    def start(self, interval: float | None = None) -> None:
        interval = interval or max(0.005, self.limit_s / 4.0)

        def loop() -> None:
            while not self._stop.wait(interval):
                self.check()
                if self.also is not None:
                    self.also()

        self._thread = threading.Thread(target=loop, name="watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
