"""Events from the scan process to the telemetry process: JSON lines over a Unix socket pair.

The recorder's writer thread only queues (``EventFeed.send``); the feed's own thread writes the
socket, and waits there when the telemetry process falls behind, so neither the scan nor the
recorder ever waits on it. Beyond ``MAX_QUEUED`` events waiting (the telemetry process stalled)
new ones are dropped and counted. When the telemetry process dies, the events it misses are
counted (``unsent``) and, when the relay starts another, sent to it from the recorder's ring.
Events carry their sequence number, so the receiver sees any gap and counts it (``missed``).

A stream, not datagrams: a Unix datagram socket holds 10 datagrams (net.unix.max_dgram_qlen),
fewer than one trip's burst of events.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict

from softrelay.firmware.events import Event

MAX_TEXT = 1024  #: characters of an event's text carried
MAX_QUEUED = 10000  #: events waiting for the socket before new ones are dropped


def feed_pair() -> tuple[socket.socket, socket.socket]:
    """(sender, receiver): a connected pair of Unix stream sockets; the receiver goes to the
    telemetry process (multiprocessing passes sockets to a spawned child)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


class EventFeed:
    """The sending end: ``send(events)`` is an event recorder listener; ``attach`` gives it the
    socket of a restarted telemetry process."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.dropped = 0  #: events dropped because MAX_QUEUED were waiting
        self.unsent = 0  #: events the socket refused (telemetry gone; resent on attach)
        self.last_sent = 0  #: number of the last event the socket took
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="event-feed", daemon=True)
        self._thread.start()

    def send(self, events: Iterable[Event]) -> None:
        for event in events:
            if self._queue.qsize() >= MAX_QUEUED:
                self.dropped += 1
                continue
            self._queue.put((event.seq, _line(event)))

    def attach(self, sock: socket.socket, since: Callable[[int], list[Event]]) -> None:
        """Feed a new telemetry process: first the events after the last one sent, from
        ``since(seq)`` (the recorder's ring), then on as before; nothing is sent twice."""
        self._queue.put(("attach", (sock, since)))

    def _write(self) -> None:
        from softrelay.scan.realtime import leave_realtime

        leave_realtime()
        alive = True
        while (item := self._queue.get()) is not None:
            seq, payload = item
            if seq == "attach":
                self.sock.close()
                self.sock, since = payload
                alive = True
                backlog = [(e.seq, _line(e)) for e in since(self.last_sent)]
            else:
                backlog = [item]
            for seq, line in backlog:
                if seq <= self.last_sent:
                    continue  # already sent (the backlog and the queue overlap)
                if not alive:
                    self.unsent += 1
                    continue
                try:
                    self.sock.sendall(line)
                    self.last_sent = seq
                except OSError:  # the telemetry process is gone
                    alive = False
                    self.unsent += 1

    def close(self) -> None:
        """Send what is queued (up to 2 s), then close: the receiver sees the end of the feed.
        Safe to call twice."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(2.0)
        self.sock.close()


def _line(event: Event) -> bytes:
    record = asdict(event)
    record["text"] = record["text"][:MAX_TEXT]
    return json.dumps(record).encode() + b"\n"


class EventReceiver:
    """The receiving end: ``receive(timeout)`` gives the events that arrived, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.last_seq: int | None = None
        self.missed = 0  #: events whose numbers never arrived
        self._partial = b""
        self.closed = False

    def receive(self, timeout: float) -> list[dict]:
        """Wait up to ``timeout`` s for events; returns those complete, oldest first."""
        if self.closed:
            time.sleep(timeout)
            return []
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return []
        if not data:  # the relay closed the feed (it is stopping)
            self.closed = True
            return []
        *lines, self._partial = (self._partial + data).split(b"\n")
        records = [json.loads(line) for line in lines]
        for record in records:
            if self.last_seq is not None and record["seq"] > self.last_seq + 1:
                self.missed += record["seq"] - self.last_seq - 1
            self.last_seq = record["seq"]
        return records

    def close(self) -> None:
        self.sock.close()
