"""Polling every Modbus link from one thread: one event loop, one task per link.

Each task keeps its link's signals on their own poll grids (``PollSchedule``, the same rules as
the threaded bus workers: no catch-up bursts, back-off while everything fails) and publishes
each finished read into the input image. A slow or dead gateway delays only its own task; the
scan never waits for any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from softrelay.io.modbus.master import IO_ERROR, ModbusLink
from softrelay.io.worker import Polled, PollSchedule

log = logging.getLogger("softrelay.modbus")
Publish = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


class ModbusPoller:
    def __init__(self, links: Sequence[tuple[ModbusLink, Sequence[Polled]]], publish: Publish,
                 clock: Callable[[], float] = time.monotonic,
                 after_read: Callable[[], None] | None = None) -> None:
        """``after_read()``: after each published read (the bus counters and link state)."""
        self.links = [(link, PollSchedule(signals, link.max_backoff)) for link, signals in links]
        self.publish = publish
        self.after_read = after_read
        self.clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    async def _poll(self, link: ModbusLink, schedule: PollSchedule) -> None:
        try:
            while not self._stopping.is_set():
                now = self.clock()
                due = schedule.due(now)
                if due:
                    addresses = [s.address for s in due]
                    try:
                        readings = await link.read(addresses)
                    except Exception as exc:  # a bug must not end the polling of every link
                        log.exception("%s: read failed", link.name)
                        link.last_error = f"I/O error: internal: {exc!r}"
                        readings = [IO_ERROR] * len(addresses)
                    self.publish(*schedule.record(due, readings, now, self.clock(),
                                                  link.last_error))
                    if self.after_read is not None:
                        self.after_read()
                wait = max(0.0, schedule.next_due(now) - self.clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), min(wait, 1.0))
        finally:
            await link.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self._started.set()
        await asyncio.gather(*(self._poll(link, schedule) for link, schedule in self.links))

    def start(self) -> None:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),),
                                        name="modbus-master", daemon=True)
        self._thread.start()
        self._started.wait(5.0)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every task (a request in progress ends within its timeout) and the thread."""
        if self.loop is not None and self._stopping is not None and self.alive:
            self.loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)
