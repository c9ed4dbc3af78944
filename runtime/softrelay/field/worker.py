"""A bus worker: one thread per bus, each signal polled at its own rate, results to the image.

Signals due together are read in one ``Device.read`` (one transaction where the device allows).
A failed read marks its signals IO_ERROR and keeps their last value and stamp (so the core also
sees them age); consecutive failures back off exponentially, up to ``max_backoff``. A worker
stuck in a hung driver only ages its own signals: the scan never waits for it.

Link supervision: a read in which every signal failed takes the bus's link *down* (counted,
with the device's reason: refused, timeout, NACK, garbage, an exception code); the first read
with any good answer brings it up again. The scan process turns these into link-down and
link-up events (``supervision.links``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from softrelay.core import Quality
from softrelay.field.device import Device

#: ``publish(indices, values, stamps, qualities, windows)``: one batch into the input image
#: (``image.signals.signal_writer``)
Publish = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]],
                   None]


@dataclass
class Polled:
    index: int  #: row in the signal table
    address: str
    poll: float  #: s
    scale: float = 1.0
    offset: float = 0.0
    stuck_after: int = 0  #: identical good readings in a row that mean a frozen sensor; 0: off
    next_due: float = 0.0
    last_value: float = float("nan")
    repeats: int = 0


class PollSchedule:
    """When each signal of one device (or gateway) is due, and what a finished read publishes.

    Each signal runs on its own grid of ``poll`` periods, never in a burst to catch up. A read in
    which every signal failed counts as a failure; consecutive failures push every signal back
    exponentially (0.1 s doubling, up to ``max_backoff``); one success ends the back-off.

    A signal with ``stuck_after`` = n whose last n good readings were bit-for-bit identical is
    published STALE: a live sensor always jitters in its last digit, a gateway that lost its
    sensor and serves the last value does not. (It cannot be told sooner than n readings.)
    """

    def __init__(self, signals: Sequence[Polled], max_backoff: float = 5.0) -> None:
        self.signals = list(signals)
        self.max_backoff = max_backoff
        self.reads = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.down = False  #: the last read failed outright: the link is down
        self.downs = 0  #: times the link went down
        self.reason = ""  #: why it went down the last time (kept after it came up)

    def due(self, now: float) -> list[Polled]:
        return [s for s in self.signals if s.next_due <= now]

    def record(self, due: Sequence[Polled], readings: Sequence[tuple[float | np.ndarray, int]],
               now: float, stamp: float, reason: str = ""
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
        """Reschedule ``due`` (read at ``now``) and return the batch to publish:
        (indices, scaled values, stamps, qualities, windows). A reading that is a sample window
        goes to ``windows`` (signal index -> samples x scale) and its value is its largest row
        RMS. ``reason``: the device's last error, the link's reason if this read took it
        down."""
        failed = all(q == Quality.IO_ERROR for _, q in readings)
        self.reads += 1
        if failed:
            self.failures += 1
            self.consecutive_failures += 1
            backoff = min(self.max_backoff, 0.1 * 2 ** (self.consecutive_failures - 1))
            if not self.down:
                self.down = True
                self.downs += 1
                self.reason = reason or "I/O error: every signal failed"
        else:
            self.consecutive_failures = 0
            backoff = 0.0
            self.down = False
        idx = np.array([s.index for s in due], dtype=np.intp)
        windows: dict[int, np.ndarray] = {}
        values = np.empty(len(due))
        for k, ((value, _), s) in enumerate(zip(readings, due, strict=True)):
            if isinstance(value, np.ndarray):
                windows[s.index] = value * s.scale
                values[k] = np.sqrt(np.mean(windows[s.index] ** 2, axis=-1)).max()
            else:
                values[k] = value * s.scale + s.offset
        qualities = np.array([q for _, q in readings], dtype=np.uint8)
        for k, ((value, quality), s) in enumerate(zip(readings, due, strict=True)):
            if not s.stuck_after or quality != Quality.GOOD or isinstance(value, np.ndarray):
                continue
            s.repeats = s.repeats + 1 if value == s.last_value else 1
            s.last_value = value
            if s.repeats >= s.stuck_after:
                qualities[k] = Quality.STALE
        stamps = np.full(len(due), stamp)
        for s in due:
            s.next_due = s.next_due + s.poll if s.next_due else now + s.poll
            if s.next_due <= now:
                s.next_due = now + s.poll
            s.next_due = max(s.next_due, now + backoff)
        return idx, values, stamps, qualities, windows

    def next_due(self, now: float) -> float:
        return min((s.next_due for s in self.signals), default=now + 1.0)


class BusWorker:
    def __init__(self, device: Device, signals: Sequence[Polled],
                 publish: Publish,
                 *, clock: Callable[[], float] = time.monotonic, max_backoff: float = 5.0,
                 after_read: Callable[[], None] | None = None) -> None:
        """``publish(indices, values, stamps, qualities, windows)`` writes one batch into the
        image;
        ``after_read()`` then publishes the bus counters and link state (so a link-down is
        seen with the read that took the link down)."""
        self.device = device
        self.schedule = PollSchedule(signals, max_backoff)
        self.publish = publish
        self.after_read = after_read
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> float:
        """Read every due signal; returns the time until the next one is due."""
        now = self.clock()
        due = self.schedule.due(now)
        if due:
            readings = self.device.read([s.address for s in due])
            self.publish(*self.schedule.record(due, readings, now, self.clock(),
                                               self.device.last_error))
            if self.after_read is not None:
                self.after_read()
        return max(0.0, self.schedule.next_due(now) - self.clock())

    def run(self) -> None:
        self.device.open()
        try:
            while not self._stop.is_set():
                wait = self.poll_once()
                self._stop.wait(min(wait, 1.0))
        finally:
            self.device.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"bus-{self.device.name}",
                                        daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to stop and wait for it (a device call in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None
