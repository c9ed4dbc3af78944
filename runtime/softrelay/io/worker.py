"""A bus worker: one thread per bus, each signal polled at its own rate, results to the image.

Signals due together are read in one ``Device.read`` (one transaction where the device allows).
A failed read marks its signals IO_ERROR and keeps their last value and stamp (so the core also
sees them age); consecutive failures back off exponentially, up to ``max_backoff``. A worker
stuck in a hung driver only ages its own signals: the scan never waits for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from softrelay.core import Quality
from softrelay.io.device import Device


@dataclass
class Polled:
    index: int  #: row in the signal table
    address: str
    poll: float  #: s
    scale: float = 1.0
    offset: float = 0.0
    next_due: float = 0.0


class BusWorker:
    def __init__(self, device: Device, signals: Sequence[Polled],
                 publish: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None],
                 *, clock: Callable[[], float] = time.monotonic, max_backoff: float = 5.0
                 ) -> None:
        """``publish(indices, values, stamps, qualities)`` writes one batch into the image."""
        self.device = device
        self.signals = list(signals)
        self.publish = publish
        self.clock = clock
        self.max_backoff = max_backoff
        self.reads = 0
        self.failures = 0
        self.consecutive_failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> float:
        """Read every due signal; returns the time until the next one is due."""
        now = self.clock()
        due = [s for s in self.signals if s.next_due <= now]
        if due:
            readings = self.device.read([s.address for s in due])
            stamp = self.clock()
            failed = all(q == Quality.IO_ERROR for _, q in readings)
            self.reads += 1
            if failed:
                self.failures += 1
                self.consecutive_failures += 1
                backoff = min(self.max_backoff, 0.1 * 2 ** (self.consecutive_failures - 1))
            else:
                self.consecutive_failures = 0
                backoff = 0.0
            idx = np.array([s.index for s in due], dtype=np.intp)
            values = np.array([v * s.scale + s.offset for (v, _), s in zip(readings, due,
                                                                         strict=True)])
            qualities = np.array([q for _, q in readings], dtype=np.uint8)
            stamps = np.full(len(due), stamp)
            self.publish(idx, values, stamps, qualities)
            for s in due:
                # On the signal's own grid; never a burst to catch up; later while backing off.
                s.next_due = s.next_due + s.poll if s.next_due else now + s.poll
                if s.next_due <= now:
                    s.next_due = now + s.poll
                s.next_due = max(s.next_due, now + backoff)
        upcoming = min((s.next_due for s in self.signals), default=now + 1.0)
        return max(0.0, upcoming - self.clock())

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
