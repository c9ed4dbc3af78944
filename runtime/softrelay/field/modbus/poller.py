"""Polling every Modbus link from one thread: one event loop, one task per link.

Each task keeps its link's signals on their own poll grids (``PollSchedule``, the same rules as
the threaded bus workers: no catch-up bursts, back-off while everything fails) and publishes
each finished read into the input image. A slow or dead gateway delays only its own task; the
scan never waits for any of them. Garbage replies (which pymodbus raises inside asyncio's
protocol callback) are counted per bus and logged one line a minute (``GarbageLog``), never
as a traceback, and are the link's reason when they take it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence

from softrelay.field.modbus.master import IO_ERROR, ModbusLink
from softrelay.field.worker import Polled, PollSchedule, Publish

log = logging.getLogger("softrelay.modbus")


class GarbageLog:
    """Garbage from the field, one counted line per bus per ``every`` seconds, never a
    traceback.

    A reply pymodbus cannot decode raises inside its protocol's ``data_received``, which
    asyncio would log with a traceback, once per reply: a noisy RS-485 line or a confused
    gateway would flood the journal. The first garbage reply of a bus is logged at once; the
    ones after it are counted and logged as one line when ``every`` seconds have passed
    ("gw1: 37 garbage replies in the last 60 s (last: ...)"); a quiet window ends the count.
    """

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.every = every
        self.clock = clock
        self.total: dict[str, int] = {}  #: garbage replies per bus since start
        self.last: dict[str, str] = {}  #: what the last one was, per bus
        self._windows: dict[str, list] = {}  #: bus -> [window start, count in it]

    def record(self, bus: str, what: str) -> None:
        self.total[bus] = self.total.get(bus, 0) + 1
        self.last[bus] = what
        window = self._windows.get(bus)
        if window is None:
            log.warning("%s: a garbage reply (%s); more are counted, one line every %g s",
                        bus, what, self.every)
            self._windows[bus] = [self.clock(), 0]
            return
        window[1] += 1
        self.flush()

    def flush(self, final: bool = False) -> None:
        """Log each bus's count whose window has ended (every one, when ``final``)."""
        now = self.clock()
        for bus, (start, count) in list(self._windows.items()):
            if not final and now - start < self.every:
                continue
            if count:
                log.warning("%s: %d garbage repl%s in the last %.0f s (last: %s)", bus, count,
                            "y" if count == 1 else "ies", now - start, self.last[bus])
                self._windows[bus] = [now, 0]
            else:
                del self._windows[bus]


class ModbusPoller:
    def __init__(self, links: Sequence[tuple[ModbusLink, Sequence[Polled]]], publish: Publish,
                 clock: Callable[[], float] = time.monotonic,
                 after_read: Callable[[], None] | None = None,
                 garbage_every: float = 60.0) -> None:
        """``after_read()``: after each published read (the bus counters and link state);
        ``garbage_every``: the window of the garbage count's log line, s."""
        self.links = [(link, PollSchedule(signals, link.max_backoff)) for link, signals in links]
        self.publish = publish
        self.after_read = after_read
        self.clock = clock
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.garbage = GarbageLog(garbage_every, clock)

    async def _poll(self, link: ModbusLink, schedule: PollSchedule,
                    stopping: asyncio.Event) -> None:
        try:
            while not stopping.is_set():
                now = self.clock()
                due = schedule.due(now)
                if due:
                    addresses = [s.address for s in due]
                    garbage = self.garbage.total.get(link.name, 0)
                    try:
                        readings = await link.read(addresses)
                    except Exception as exc:  # a bug must not end the polling of every link
                        log.exception("%s: read failed", link.name)
                        link.last_error = f"I/O error: internal: {exc!r}"
                        readings = [IO_ERROR] * len(addresses)
                    if self.garbage.total.get(link.name, 0) > garbage and \
                            not link.last_error.startswith("garbage"):
                        # the reply was garbage: what the request then saw (a timeout, a lost
                        # connection) is its consequence, not the reason
                        link.last_error = f"garbage: {self.garbage.last[link.name]}"
                    self.publish(*schedule.record(due, readings, now, self.clock(),
                                                  link.last_error))
                    if self.after_read is not None:
                        self.after_read()
                self.garbage.flush()
                wait = max(0.0, schedule.next_due(now) - self.clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), min(wait, 1.0))
        finally:
            await link.close()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """asyncio's exception handler for this loop: a pymodbus protocol that could not take
        a reply is a garbage reply of its bus (counted, ``GarbageLog``); anything else is one
        line, never a traceback."""
        exc = context.get("exception")
        params = getattr(context.get("protocol"), "comm_params", None)
        bus = getattr(params, "comm_name", None)
        what = f"{exc.__class__.__name__}: {exc}" if exc is not None else "no exception"
        if bus in self._link_names and exc is not None:
            self.garbage.record(bus, what)
            return
        log.error("Modbus master: %s (%s)", context.get("message", "event loop error"), what)

    async def _main(self) -> None:
        self._stopping = stopping = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self._link_names = {link.name for link, _ in self.links}
        self.loop.set_exception_handler(self._loop_error)
        self._started.set()
        try:
            await asyncio.gather(*(self._poll(link, schedule, stopping)
                                   for link, schedule in self.links))
        finally:
            self.garbage.flush(final=True)

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
