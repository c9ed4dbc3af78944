"""Event recorder: ring, JSON lines on disk, log lines, edges of flags."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from softrelay.core import ThermalFlag
from softrelay.records.events import EventRecorder, FlagWatcher, read_events


def test_the_ring_keeps_the_newest_events_with_sequence_numbers_that_never_repeat():
    rec = EventRecorder(ring_size=1024)
    for k in range(1500):
        rec.record("command", "motor1", f"reset {k}", mono=float(k))
    assert len(rec.ring) == 1024
    assert [e.seq for e in rec.newest(3)] == [1498, 1499, 1500]
    assert rec.newest(1)[0].text == "reset 1499"
    assert [e.seq for e in rec.since(1497)] == [1498, 1499, 1500]
    assert rec.since(10)[0].seq == 477  # the oldest still in the ring


def test_a_ring_smaller_than_1024_is_refused():
    with pytest.raises(ValueError, match="at least 1024"):
        EventRecorder(ring_size=100)


def test_events_reach_the_json_lines_file_and_a_torn_line_is_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    rec = EventRecorder(file=path, first_seq=41, wall=lambda: 1700000000.5)
    rec.record("pickup", "motor1.trip", mono=12.5)
    rec.record("overrun", "scan", "3 periods skipped", mono=13.0)
    rec.close()
    rec.close()  # safe twice
    with open(path, "a") as out:
        out.write('{"seq": 43, "wall": 17')  # a power loss mid-write
    events = read_events(path)
    assert [(e["seq"], e["kind"], e["source"]) for e in events] == [
        (41, "pickup", "motor1.trip"), (42, "overrun", "scan")]
    assert events[0]["wall"] == 1700000000.5 and events[0]["mono"] == 12.5
    assert events[1]["text"] == "3 periods skipped"


def test_each_event_is_a_log_line_without_a_timestamp_of_its_own(caplog):
    rec = EventRecorder()
    with caplog.at_level(logging.INFO, logger="softrelay.events"):
        rec.record("pickup", "bus1.critical", "rise 31.2 C")
        assert rec.flush()
    assert caplog.messages == ["#1 pickup bus1.critical: rise 31.2 C"]
    rec.close()


def test_flag_edges_become_pickups_and_dropouts_after_the_first_scan():
    rec = EventRecorder()
    bits = {int(ThermalFlag.TRIP): "trip", int(ThermalFlag.ALARM1): "alarm1"}
    watcher = FlagWatcher(["m1", "m2"], bits, rec)
    flags = np.array([ThermalFlag.ALARM1, 0], dtype=np.uint32)
    assert watcher.update(flags, 1.0) == 0  # learning, not a pickup of everything
    flags[1] = ThermalFlag.TRIP | ThermalFlag.ALARM1
    flags[0] = 0
    assert watcher.update(flags, 2.0) == 3
    assert watcher.update(flags, 3.0) == 0
    got = [(e.kind, e.source, e.mono) for e in rec.ring]
    assert got == [("dropout", "m1.alarm1", 2.0), ("pickup", "m2.trip", 2.0),
                   ("pickup", "m2.alarm1", 2.0)]


@pytest.mark.e2e
def test_numbers_never_repeat_and_readers_never_fail_while_two_threads_record():
    """The scan and the Modbus write worker both record; the publisher reads the ring
    meanwhile (a deque read while another thread appends would raise)."""
    import threading

    rec = EventRecorder(1024)
    stop = threading.Event()

    def other_thread() -> None:
        while not stop.is_set():
            rec.record("system", "unlock", "from modbus")

    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    worker = threading.Thread(target=other_thread)
    worker.start()
    try:
        for k in range(20_000):
            rec.record("command", "motor1", f"{k}")
            if k % 10 == 0:
                rec.since(0)  # the whole ring
                rec.newest(8)
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(interval)
    numbers = [e.seq for e in rec.ring]
    assert numbers == sorted(set(numbers))
    rec.close()
