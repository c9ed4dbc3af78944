"""The event recorder: every pickup and dropout, command, settings change, overrun and fault.

Like a relay's sequence-of-events recorder: a ring of the newest events in memory (at least 1024),
an append-only JSON-lines file on disk (rotated by size, a set number of files kept), and one
log line per event. Events carry a sequence number that never repeats, across rotated files and
restarts (a reader that polls over Modbus knows what it missed), the wall-clock time and the
monotonic time. A file that cannot be written is a fault event and ``trouble``, never the
writer's end: the ring, the log and the listeners go on, and the file catches up when it can.

Contract: ``record`` and ``FlagWatcher.update`` never block on the disk or on the log: a writer
thread owns the file and emits the log lines (under systemd stderr is a pipe to journald, and a
full pipe must stall that thread, never the scan). Edge detection is one XOR per scan; Python
runs per change only.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from softrelay.records.disk import trouble_text, write_all

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


class EventFile:
    """The JSON-lines file of an event recorder, rotated by size: ``events.jsonl`` is the live
    file, ``events.jsonl.1`` the one before it, up to ``keep`` files in all (the live one
    included); the oldest is deleted. Every file stays within ``max_bytes`` (a single line
    longer than that is written alone). Used by the writer thread only.

    ``append`` writes every line or raises OSError; a batch cut short is cut off again (the
    file keeps whole lines), and a file left torn by a crash gets its torn line terminated
    before anything is appended to it.
    """

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self._fd: int | None = None
        self._size = 0
        self.accepted = 0  #: lines of the last ``append`` that reached the file

    def rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def append(self, lines: list[bytes]) -> None:
        """Write ``lines`` (each ending in a newline), rotating between them when the live
        file would grow past ``max_bytes``. On OSError, ``accepted`` says how many of them
        are in the file (the first ones): the rest are to be written again."""
        self.accepted = 0
        chunk: list[bytes] = []
        size = self._open()
        for line in lines:
            if size and size + len(line) > self.max_bytes:
                if chunk:
                    self._write(b"".join(chunk))
                    self.accepted += len(chunk)
                    chunk = []
                self._rotate()
                size = self._open()
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write(b"".join(chunk))
            self.accepted += len(chunk)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    def _open(self) -> int:
        """Open the live file (making its directory) if it is not open; its size."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                size = os.fstat(fd).st_size
                if size and not _ends_with_newline(self.path, size):
                    write_all(fd, b"\n")  # a torn last line (a crash) stays on its own
                    size += 1
            except OSError:
                os.close(fd)
                raise
            self._fd, self._size = fd, size
        return self._size

    def _write(self, data: bytes) -> None:
        """``data`` appended to the live file (``_open`` opened it)."""
        fd = self._fd
        assert fd is not None, "EventFile._open() first"
        try:
            write_all(fd, data)
        except OSError:
            with contextlib.suppress(OSError):  # keep the file whole lines
                os.ftruncate(fd, self._size)
            self.close()
            raise
        self._size += len(data)

    def _rotate(self) -> None:
        self.close()
        if self.keep <= 1:
            self.path.unlink(missing_ok=True)
            return
        self.rotated(self.keep - 1).unlink(missing_ok=True)
        for n in range(self.keep - 2, 0, -1):
            if self.rotated(n).exists():
                os.replace(self.rotated(n), self.rotated(n + 1))
        if self.path.exists():
            os.replace(self.path, self.rotated(1))


def _ends_with_newline(path: Path, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"


class EventRecorder:
    """Ring of events in memory, JSON lines on disk (a writer thread), a log line for each.

    The writer never dies of the disk. When the file cannot be opened or written (a read-only
    or full disk, ``events.file`` naming a directory), the events still reach the ring, the
    log and the listeners; the trouble is recorded as a fault event, shown by ``trouble``,
    and the file is tried again after a backoff (``retry_min`` doubling up to ``retry_max``
    seconds). Meanwhile up to ``held_max`` events are held for the file and written when it
    works again; older ones are dropped and counted in ``lost_to_file``.
    """

    def __init__(self, ring_size: int = 4096, file: Path | None = None, first_seq: int = 1,
                 wall: Callable[[], float] = time.time, *, max_bytes: int = 1 << 20,
                 keep: int = 5, held_max: int | None = None, retry_min: float = 0.5,
                 retry_max: float = 30.0) -> None:
        if ring_size < 1024:
            raise ValueError(f"ring_size ({ring_size}) must be at least 1024")
        self.ring: collections.deque[Event] = collections.deque(maxlen=ring_size)
        self.next_seq = first_seq
        self.wall = wall
        self.file = file
        self.write_errors = 0  #: failed attempts to open or write the file
        self.lost_to_file = 0  #: events that never reached the file (held too many)
        #: called on the writer thread with each batch of events, after they are logged (the
        #: telemetry's feed); must not block
        self.listeners: list[Callable[[list[Event]], None]] = []
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._pending = 0  # recorded, not yet logged and written
        self._done = threading.Condition()
        self._numbering = threading.Lock()
        self._out = EventFile(file, max_bytes, keep) if file is not None else None
        self._held: collections.deque[Event] = collections.deque()
        self._held_max = held_max if held_max is not None else ring_size
        self._retry_min, self._retry_max = retry_min, retry_max
        self._backoff = retry_min
        self._retry_at = 0.0
        self._trouble: str | None = None
        self._writer: threading.Thread | None = threading.Thread(
            target=self._write_loop, name="event-writer", daemon=True)
        self._writer.start()

    @property
    def trouble(self) -> str | None:
        """Why the event file cannot be written and what to do about it; None when it can."""
        return self._trouble

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
        while True:
            wait = max(0.0, self._retry_at - time.monotonic()) if self._held else None
            try:
                batch = [self._queue.get(timeout=wait)]
            except queue.Empty:  # time to try the file again
                batch = []
            while not self._queue.empty():
                batch.append(self._queue.get())
            events = [e for e in batch if e is not None]
            for e in events:
                log.info(e.line())
            for listener in self.listeners:
                if not events:
                    break
                try:
                    listener(events)
                except Exception:  # a listener's bug never stops the recorder
                    log.exception("event listener %r failed", listener)
            if self._out is not None:
                self._held.extend(events)
                if None in batch or time.monotonic() >= self._retry_at:
                    self._write_held(self._out)
                self._drop_beyond_held_max()  # only while the file is in trouble
            with self._done:
                self._pending -= len(events)
                self._done.notify_all()
            if None in batch:
                self._closing()
                return

    def _drop_beyond_held_max(self) -> None:
        while len(self._held) > self._held_max:
            self._held.popleft()
            self.lost_to_file += 1

    def _write_held(self, out: EventFile) -> None:
        """Everything held to the file ``out`` (``file``'s); on failure a fault (once per
        trouble) and a retry after the backoff."""
        if not self._held:
            return
        lines = [(json.dumps(asdict(e)) + "\n").encode() for e in self._held]
        try:
            out.append(lines)
        except Exception as exc:  # never the end of the writer
            for _ in range(out.accepted):  # those are in the file
                self._held.popleft()
            self.write_errors += 1
            why = (trouble_text(out.path, exc) if isinstance(exc, OSError)
                   else f"cannot write {out.path}: {exc.__class__.__name__}: {exc}")
            self._retry_at = time.monotonic() + self._backoff
            if why != self._trouble:
                self._trouble = why
                self.record("fault", "events", f"{why}; events held for the file (up to "
                            f"{self._held_max}), tried again every {self._retry_max:g} s "
                            "at most")
            self._backoff = min(self._backoff * 2.0, self._retry_max)
            return
        written = len(self._held)
        self._held.clear()
        self._backoff = self._retry_min
        if self._trouble is not None:
            self._trouble = None
            self.record("system", "events", f"event file {self.file} written again: "
                        f"{written} held event(s) written, {self.lost_to_file} never "
                        "reached the file")

    def _closing(self) -> None:
        if self._held:
            self.lost_to_file += len(self._held)
            log.error("event file %s: %d event(s) never reached it (%s)", self.file,
                      len(self._held), self._trouble)
            self._held.clear()
        if self._out is not None:
            self._out.close()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every recorded event is logged, handed to the listeners and written;
        False at once (after the rest is logged) while the file is in trouble."""
        with self._done:
            done = self._done.wait_for(lambda: self._pending == 0, timeout)
        return done and not self._held

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


def event_files(file: Path) -> list[Path]:
    """The live events file and its rotated predecessors that exist, newest first."""
    rotated = []
    for path in file.parent.glob(f"{glob.escape(file.name)}.*"):
        suffix = path.name[len(file.name) + 1:]
        if suffix.isdigit():
            rotated.append((int(suffix), path))
    return ([file] if file.exists() else []) + [p for _, p in sorted(rotated)]


def last_seq(file: Path, tail: int = 65536) -> int:
    """The highest sequence number in the newest events file that has one (0 if none): the
    live file, else (empty or missing just after a rotation) the rotated ones. A restarted
    relay continues after it, so numbers never repeat, even after a crash."""
    for path in event_files(file):
        best = _last_seq_of(path, tail)
        if best:
            return best
    return 0


def _last_seq_of(file: Path, tail: int) -> int:
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
