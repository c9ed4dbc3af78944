"""The event feed to the telemetry process: a successor is fed after what its predecessor
confirmed as handed on, so the events a dead process received and never handed on (still in
its socket, or read and not yet spooled) come again; none is lost, repeats carry their seq."""

from __future__ import annotations

import time

import pytest

from softrelay.records.events import Event
from softrelay.telemetry.feed import EventFeed, EventReceiver, feed_pair

from support.waits import wait_for


def event(seq: int) -> Event:
    return Event(seq, 1.0e9 + seq, float(seq), "system", "test", f"event {seq}")


def received(receiver: EventReceiver, count: int, timeout: float = 5.0) -> list[int]:
    seqs: list[int] = []
    deadline = time.monotonic() + timeout
    while len(seqs) < count:
        assert time.monotonic() < deadline, f"received only {seqs}"
        seqs += [r["seq"] for r in receiver.receive(0.05)]
    return seqs


@pytest.mark.e2e
def test_a_successor_gets_everything_after_the_last_confirmed_event():
    ring = [event(seq) for seq in range(1, 11)]
    sender, end = feed_pair()
    feed, first = EventFeed(sender), EventReceiver(end)
    try:
        feed.send(ring[:4])
        assert received(first, 4) == [1, 2, 3, 4]
        first.confirm(3)  # 4 read, not handed on yet
        wait_for(lambda: feed.acked == 3, 5.0, "the confirmation of 3")
        feed.send(ring[4:7])  # 5..7 written to its socket, never read: it dies
        wait_for(lambda: feed.last_sent == 7, 5.0, "5..7 in the socket")
        first.close()
        feed.send(ring[7:8])  # 8 while no process reads
        sender, end = feed_pair()
        feed.attach(sender, lambda seq: [e for e in ring[:8] if e.seq > seq])
        second = EventReceiver(end)
        assert received(second, 5) == [4, 5, 6, 7, 8]  # from after the confirmed one
        feed.send(ring[8:])
        assert received(second, 2) == [9, 10]  # then on as before, nothing twice
        second.confirm(10)
        wait_for(lambda: feed.acked == 10, 5.0, "the successor's confirmation")
        second.close()
    finally:
        feed.close()


def test_confirmations_never_wait_and_the_latest_one_counts():
    sender, end = feed_pair()
    feed, receiver = EventFeed(sender), EventReceiver(end)
    try:
        for seq in (2, 5, 4):  # a lower number never moves the confirmation back
            receiver.confirm(seq)
        wait_for(lambda: feed.acked == 5, 5.0, "the confirmation of 5")
        assert receiver.confirmed == 5
    finally:
        feed.close()
    receiver.confirm(6)  # the relay's end closed: said nowhere, no error
    receiver.close()
