"""Events from the scan process to the telemetry process: JSON lines over a Unix socket pair.

The recorder's writer thread only queues (``EventFeed.send``); the feed's own thread writes the
socket, and waits there when the telemetry process falls behind, so neither the scan nor the
recorder ever waits on it. Beyond ``MAX_QUEUED`` events waiting (the telemetry process stalled)
new ones are dropped and counted. Events carry their sequence number, so the receiver sees any
gap and counts it (``missed``).

The telemetry process confirms back over the same socket, one decimal line at a time, the
highest number it has handed on (``EventReceiver.confirm``: put on the MQTT disk queue, sent as
a trap). When it dies, the events in its socket that it never read are lost with it: so when
the relay starts another, the feed sends it, from the recorder's ring, everything after the
last *confirmed* event (``acked``), not after the last sent. Delivery is at least once: an
event handed on and not yet confirmed comes again (the MQTT disk queue keeps one per number;
a consumer tells a repeat by its ``seq``).

A stream, not datagrams: a Unix datagram socket holds 10 datagrams (net.unix.max_dgram_qlen),
fewer than one trip's burst of events.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict

from softrelay.records.events import Event

MAX_TEXT = 1024  #: characters of an event's text carried
MAX_QUEUED = 10000  #: events waiting for the socket before new ones are dropped
ACK_EVERY = 0.2  #: s: confirmations are taken at least this often while no event is sent


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
        self.acked = 0  #: highest number the telemetry process confirmed as handed on
        self._acks = b""  # a confirmation line not yet complete
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
        """Feed a new telemetry process: first the events after the last one the old one
        confirmed, from ``since(seq)`` (the recorder's ring), then on as before. Those the old
        one received and did not confirm are sent again."""
        self._queue.put(("attach", (sock, since)))

    def _write(self) -> None:
        from softrelay.scan.realtime import leave_realtime

        leave_realtime()
        alive = True
        while True:
            try:
                item = self._queue.get(timeout=ACK_EVERY)
            except queue.Empty:  # quiet: take the confirmations meanwhile
                if alive:
                    self._read_acks()
                continue
            if item is None:
                break
            seq, payload = item
            if seq == "attach":
                self._read_acks()  # what the dead one confirmed before it died
                self.sock.close()
                self.sock, since = payload
                self._acks = b""
                alive = True
                self.last_sent = self.acked
                backlog = [(e.seq, _line(e)) for e in since(self.acked)]
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
            if alive:
                self._read_acks()

    def _read_acks(self) -> None:
        """Take the confirmations waiting in the socket, without waiting for more."""
        while True:
            try:
                data = self.sock.recv(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # gone: what it confirmed before is all there is
                return
            if not data:
                return
            *lines, self._acks = (self._acks + data).split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError):
                    self.acked = max(self.acked, int(line))

    def close(self) -> None:
        """Send what is queued (up to 2 s), then close: the receiver sees the end of the feed.
        Safe to call twice."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(2.0)
        self._read_acks()
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
        self.confirmed = 0  #: highest number confirmed to the relay
        self._to_confirm = 0  #: highest number handed on, to be confirmed
        self._out = b""  # the confirmation line being sent
        self._unconfirmable = False
        self._out_seq = 0

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
        except ConnectionResetError:  # closed with a confirmation unread: the same end
            data = b""
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

    def confirm(self, seq: int) -> None:
        """Tell the relay that every event up to ``seq`` is handed on (spooled, sent): a
        successor is fed from there. Never waits: a confirmation the socket cannot take now
        goes with the next call (one line at a time, a line never split by another)."""
        self._to_confirm = max(self._to_confirm, seq)
        if self.closed or self._unconfirmable:
            return
        if not self._out and self._to_confirm > self.confirmed:
            self._out = b"%d\n" % self._to_confirm
            self._out_seq = self._to_confirm
        if not self._out:
            return
        try:
            sent = self.sock.send(self._out, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:  # the relay closed the feed: nothing to confirm to
            self._unconfirmable = True
            return
        self._out = self._out[sent:]
        if not self._out:
            self.confirmed = self._out_seq

    def close(self) -> None:
        self.sock.close()
