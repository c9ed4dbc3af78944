"""The event recorder: every pickup and dropout, command, settings change, overrun and fault.

Like a relay's sequence-of-events recorder: a ring of the newest events in memory (at least 1024),
an append-only JSON-lines file on disk, and one log line per event. Events carry a sequence
number that never repeats (a reader that polls over Modbus knows what it missed), the wall-clock
time and the monotonic time.

Contract: ``record`` and ``FlagWatcher.update`` never block on the disk or on the log: a writer
thread owns the file and emits the log lines (under systemd stderr is a pipe to journald, and a
full pipe must stall that thread, never the scan). Edge detection is one XOR per scan; Python
runs per change only.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("softrelay.events")


@dataclass(frozen=True)
class Event:
    """One recorded event."""

    seq: int  #: 1, 2, 3, ... never repeated, survives restarts through thermal memory
    wall: float  #: UTC seconds since the epoch
    mono: float  #: monotonic seconds (the scan's clock)
    kind: str  #: pickup, dropout, command, settings, overrun, fault, system
    source: str  #: '<point>.<flag>', a coil, 'scan', 'memory', ...
    text: str = ""

    def line(self) -> str:
        """The log line (no timestamp: journald and the JSON file carry it)."""
        return f"#{self.seq} {self.kind} {self.source}" + (f": {self.text}" if self.text else "")


class EventRecorder:
    """Ring of events in memory, JSON lines on disk (a writer thread), a log line for each."""

    def __init__(self, ring_size: int = 4096, file: Path | None = None, first_seq: int = 1,
                 wall: Callable[[], float] = time.time) -> None:
        if ring_size < 1024:
            raise ValueError(f"ring_size ({ring_size}) must be at least 1024")
        self.ring: collections.deque[Event] = collections.deque(maxlen=ring_size)
        self.next_seq = first_seq
        self.wall = wall
        self.file = file
        self.write_errors = 0
        #: called on the writer thread with each batch of events, after they are logged (the
        #: telemetry's feed); must not block
        self.listeners: list[Callable[[list[Event]], None]] = []
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._pending = 0  # recorded, not yet logged and written
        self._done = threading.Condition()
        self._numbering = threading.Lock()
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        self._writer: threading.Thread | None = threading.Thread(
            target=self._write_loop, name="event-writer", daemon=True)
        self._writer.start()

    def record(self, kind: str, source: str, text: str = "", mono: float | None = None) -> Event:
        """Record one event now; returns it. Safe from any thread (the scan, the Modbus write
        worker): numbers are taken under a lock, so they never repeat."""
        with self._numbering:
            event = Event(self.next_seq, self.wall(),
                          time.monotonic() if mono is None else mono, kind, source, text)
            self.next_seq += 1
            self.ring.append(event)
        if self._writer is not None:
            with self._done:
                self._pending += 1
            self._queue.put(event)
        else:  # closed: nobody to hand it to
            log.info(event.line())
        return event

    def newest(self, count: int) -> list[Event]:
        """The newest ``count`` events, oldest first."""
        with self._numbering:  # another thread may be recording
            return list(self.ring)[-count:] if count > 0 else []

    def since(self, seq: int) -> list[Event]:
        """Events after sequence number ``seq`` still in the ring, oldest first."""
        with self._numbering:
            return [e for e in self.ring if e.seq > seq]

    def _write_loop(self) -> None:
        from softrelay.scan.realtime import leave_realtime

        leave_realtime()  # writing the disk is no work for the scan's priority
        with contextlib.ExitStack() as stack:
            out = (stack.enter_context(open(self.file, "a", encoding="utf-8"))
                   if self.file is not None else None)
            while True:
                event = self._queue.get()
                batch = [event]
                while not self._queue.empty():
                    batch.append(self._queue.get())
                events = [e for e in batch if e is not None]
                for e in events:
                    log.info(e.line())
                for listener in self.listeners:
                    try:
                        listener(events)
                    except Exception:  # a listener's bug never stops the recorder
                        log.exception("event listener %r failed", listener)
                if out is not None and events:
                    try:
                        out.writelines(json.dumps(asdict(e)) + "\n" for e in events)
                        out.flush()
                    except OSError as exc:  # a full disk loses the file copy, never the relay
                        self.write_errors += 1
                        log.error("event file %s: %s", self.file, exc)
                with self._done:
                    self._pending -= len(events)
                    self._done.notify_all()
                if None in batch:
                    return

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every recorded event is logged and on disk."""
        with self._done:
            return self._done.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Write what is queued and stop the writer; safe to call twice."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=5.0)
            self._writer = None


def read_events(file: Path) -> list[dict]:
    """The events of a JSON-lines file; a torn last line (power loss) is skipped."""
    events = []
    with open(file, encoding="utf-8") as lines:
        for line in lines:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def last_seq(file: Path, tail: int = 65536) -> int:
    """The highest sequence number in the last ``tail`` bytes of an events file (0 if none):
    a restarted relay continues after it, so numbers never repeat, even after a crash."""
    try:
        with open(file, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - tail))
            lines = f.read().splitlines()
    except OSError:
        return 0
    best = 0
    for line in lines:
        try:
            best = max(best, int(json.loads(line)["seq"]))
        except (ValueError, KeyError, TypeError):
            continue
    return best


class FlagWatcher:
    """Turns a flags table into pickup and dropout events, scan after scan.

    ``names[i]`` is point i's name; ``bits`` maps each flag bit to its name. The first update
    only learns the flags (a restart is not a pickup of everything).
    """

    def __init__(self, names: Iterable[str], bits: dict[int, str], recorder: EventRecorder,
                 kind_on: str = "pickup", kind_off: str = "dropout") -> None:
        self.names = list(names)
        self.bits = dict(bits)
        self.recorder = recorder
        self.kind_on, self.kind_off = kind_on, kind_off
        self.previous: np.ndarray | None = None

    def update(self, flags: np.ndarray, mono: float) -> int:
        """Record an event per changed bit; returns how many."""
        if self.previous is None:
            self.previous = flags.copy()
            return 0
        changed = flags != self.previous
        if not changed.any():
            return 0
        count = 0
        for i in np.flatnonzero(changed):
            before, now = int(self.previous[i]), int(flags[i])
            for bit, name in self.bits.items():
                if (before ^ now) & bit:
                    kind = self.kind_on if now & bit else self.kind_off
                    self.recorder.record(kind, f"{self.names[i]}.{name}", mono=mono)
                    count += 1
        self.previous[:] = flags
        return count
