"""Events from the scan process to the telemetry process: one datagram per event.

The sender runs on the event recorder's writer thread and never blocks it: a datagram that does
not fit (the telemetry process stalled or died) is dropped and counted. Events carry their
sequence number, so the receiver sees any gap and counts it as well (``missed``).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from dataclasses import asdict

from softrelay.firmware.events import Event

MAX_TEXT = 1024  #: characters of an event's text carried (a datagram stays small)


def feed_pair() -> tuple[socket.socket, socket.socket]:
    """(sender, receiver): a connected pair of Unix datagram sockets; the receiver goes to the
    telemetry process (multiprocessing passes sockets to a spawned child)."""
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    return sender, receiver


class EventFeed:
    """The sending end: ``send(events)`` is an event recorder listener."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.dropped = 0  #: events that did not fit in the socket

    def send(self, events: Iterable[Event]) -> None:
        for event in events:
            record = asdict(event)
            record["text"] = record["text"][:MAX_TEXT]
            try:
                self.sock.send(json.dumps(record).encode())
            except (BlockingIOError, ConnectionRefusedError, BrokenPipeError, OSError):
                self.dropped += 1

    def close(self) -> None:
        self.sock.close()


class EventReceiver:
    """The receiving end: ``receive(timeout)`` gives the events that arrived, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(True)
        self.last_seq: int | None = None
        self.missed = 0  #: events whose numbers never arrived

    def receive(self, timeout: float) -> list[dict]:
        """Wait up to ``timeout`` s for an event; returns it and any others already waiting."""
        events = []
        self.sock.settimeout(timeout)
        try:
            events.append(self.sock.recv(65536))
            self.sock.setblocking(False)
            while True:
                events.append(self.sock.recv(65536))
        except (TimeoutError, BlockingIOError):
            pass
        records = [json.loads(data) for data in events]
        for record in records:
            if self.last_seq is not None and record["seq"] > self.last_seq + 1:
                self.missed += record["seq"] - self.last_seq - 1
            self.last_seq = record["seq"]
        return records

    def close(self) -> None:
        self.sock.close()
