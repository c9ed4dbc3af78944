"""The event recorder's file: it never kills the recorder, and it never grows without bound.

A file that cannot be opened or written (a directory where the file should be, a parent that
is a regular file: both refuse root too, unlike chmod; a full disk, injected) is a fault
event, retried, shown by ``trouble``, while the ring and the listeners go on; the held
events reach the file when it works again. The file rotates by size and the numbering
continues across files and restarts.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

import softrelay.records.disk as disk
from softrelay.records.events import EventRecorder, event_files, last_seq, read_events

from support.relays import running
from support.waits import wait_for


def recorder(file: Path, **kw) -> tuple[EventRecorder, list]:
    heard: list = []
    rec = EventRecorder(1024, file, retry_min=0.02, retry_max=0.1, **kw)
    rec.listeners.append(heard.extend)
    return rec, heard


def seqs(file: Path) -> list[int]:
    return [e["seq"] for e in read_events(file)]


@pytest.mark.parametrize("blocked", ["directory", "parent is a file"])
def test_an_unwritable_event_file_is_a_fault_the_writer_lives_on_and_catches_up(
        tmp_path, blocked):
    if blocked == "directory":
        file = tmp_path / "events.jsonl"
        file.mkdir()
        remedy = "it is a directory"
    else:
        blocker = tmp_path / "state"
        blocker.write_text("not a directory\n")
        file = blocker / "events.jsonl"
        remedy = "not a directory"
    rec, heard = recorder(file)  # the constructor does not fail either
    try:
        rec.record("system", "relay", "started")
        wait_for(lambda: any(e.kind == "fault" and e.source == "events" for e in rec.ring),
                 5.0, "the fault event")
        assert rec.trouble is not None and str(file) in rec.trouble and remedy in rec.trouble
        assert rec._writer.is_alive()
        fault = next(e for e in rec.ring if e.kind == "fault")
        wait_for(lambda: fault in heard, 5.0, "the fault reaching the listeners")
        later = rec.record("pickup", "motor1.trip")  # the recorder goes on
        wait_for(lambda: later in heard, 5.0, "a later event reaching the listeners")
        assert later in rec.ring and rec._writer.is_alive()
        assert not rec.flush(1.0), "flush says the file is behind"

        if blocked == "directory":  # the cause removed: the next retry writes everything
            file.rmdir()
        else:
            blocker.unlink()
        wait_for(lambda: rec.trouble is None, 5.0, "the trouble to clear")
        assert rec.flush(5.0)
        written = seqs(file)
        assert written == list(range(1, rec.next_seq)), "every event, in order, once"
        kinds = [e["kind"] for e in read_events(file)]
        assert kinds[:4] == ["system", "fault", "pickup", "system"]
        assert "written again" in read_events(file)[-1]["text"]
        assert rec.lost_to_file == 0
    finally:
        rec.close()


def test_a_full_disk_keeps_the_file_whole_and_the_events_for_later(tmp_path, monkeypatch):
    file = tmp_path / "events.jsonl"
    rec, _ = recorder(file)
    try:
        rec.record("system", "relay", "started")
        assert rec.flush(5.0)
        real_write = os.write
        full = {"on": True}

        def nearly_full(fd, data):  # half of it, then nothing more
            if full["on"]:
                if len(data) > 1 and not full.get("torn"):
                    full["torn"] = True
                    return real_write(fd, bytes(data[:len(data) // 2]))
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(fd, data)

        monkeypatch.setattr(disk.os, "write", nearly_full)
        for k in range(5):
            rec.record("command", "modbus", f"refused unlock code {k}")
        wait_for(lambda: rec.trouble is not None, 5.0, "the trouble")
        assert "no space left" in rec.trouble
        assert file.read_bytes().endswith(b"\n"), "the torn batch was cut off again"
        assert seqs(file) == [1]
        full["on"] = False
        wait_for(lambda: rec.trouble is None, 5.0, "the trouble to clear")
        assert rec.flush(5.0)
        assert seqs(file) == list(range(1, rec.next_seq))
        assert all(json.loads(line) for line in file.read_text().splitlines())
    finally:
        rec.close()


def test_events_beyond_what_is_held_are_counted_as_lost_to_the_file(tmp_path):
    file = tmp_path / "events.jsonl"
    file.mkdir()
    rec, heard = recorder(file, held_max=10)
    try:
        for k in range(30):
            rec.record("command", "modbus", f"refused {k}")
        wait_for(lambda: len(heard) >= 31, 5.0, "every event heard")  # 30 and the fault
        assert rec.lost_to_file >= 21
        file.rmdir()
        wait_for(lambda: rec.trouble is None, 5.0, "the trouble to clear")
        assert rec.flush(5.0)
        events = read_events(file)
        assert len(events) == 11  # the 10 held, and the event saying so
        assert f"{rec.lost_to_file} never reached the file" in events[-1]["text"]
    finally:
        rec.close()


@pytest.mark.e2e
def test_the_event_file_rotates_by_size_and_the_numbering_continues(tmp_path):
    file = tmp_path / "events.jsonl"
    max_bytes, keep = 64 * 1024, 4
    rec = EventRecorder(1024, file, max_bytes=max_bytes, keep=keep)
    for k in range(10_000):
        rec.record("command", "modbus 127.0.0.1:50000", f"unlock code refused ({k})")
    assert rec.flush(30.0)
    rec.close()
    files = event_files(file)
    assert [p.name for p in files] == ["events.jsonl"] + [f"events.jsonl.{n}"
                                                          for n in range(1, keep)]
    longest = max(len(line) for p in files for line in p.read_bytes().splitlines(True))
    assert all(p.stat().st_size <= max_bytes for p in files)
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total <= keep * max_bytes + longest, "the directory stays bounded"
    numbers = [s for p in reversed(files) for s in seqs(p)]  # oldest file first
    assert numbers == list(range(numbers[0], 10_001)), "continuous across the files"
    assert numbers[0] > 1, "the oldest were deleted"

    assert last_seq(file) == 10_000
    again = EventRecorder(1024, file, first_seq=last_seq(file) + 1, max_bytes=max_bytes,
                          keep=keep)
    again.record("system", "relay", "started")
    assert again.flush(5.0)
    again.close()
    assert seqs(file)[-1] == 10_001, "a restart continues the numbering"


def test_the_numbering_continues_from_the_rotated_file_when_the_live_one_is_gone(tmp_path):
    file = tmp_path / "events.jsonl"
    rec = EventRecorder(1024, file, max_bytes=4096, keep=3)
    for k in range(200):
        rec.record("system", "test", f"event {k}")
    assert rec.flush(10.0)
    rec.close()
    assert last_seq(file) == 200
    # a crash in a rotation, just after the live file was renamed: no live file yet
    os.replace(file.with_name("events.jsonl.2"), file.with_name("events.jsonl.3"))
    os.replace(file.with_name("events.jsonl.1"), file.with_name("events.jsonl.2"))
    os.replace(file, file.with_name("events.jsonl.1"))
    assert last_seq(file) == 200
    file.write_text("")  # or the new live file is still empty
    assert last_seq(file) == 200


def test_a_torn_last_line_from_a_crash_is_left_on_its_own(tmp_path):
    file = tmp_path / "events.jsonl"
    file.write_text(json.dumps({"seq": 7, "kind": "system"}) + "\n" + '{"seq": 8, "ki')
    rec = EventRecorder(1024, file, first_seq=last_seq(file) + 1)
    rec.record("system", "relay", "started")
    assert rec.flush(5.0)
    rec.close()
    assert seqs(file) == [7, 8]


def test_a_relay_whose_state_directory_is_unusable_runs_and_says_why(tmp_path):
    """The state directory's place taken by a regular file: the relay starts and scans;
    its recorder and its thermal memory report the trouble (what the healthy contact's
    self-supervision reads)."""
    blocker = tmp_path / "state"
    blocker.write_text("not a directory\n")
    path = tmp_path / "fast.yaml"
    path.write_text((Path(__file__).parent / "configs" / "fast.yaml").read_text()
                    .replace("STATE_DIR", str(blocker)))
    with running(path, companion=False) as relay:
        relay.checkpointer.submit(relay.memory.copy())
        relay.loop.step()
        wait_for(lambda: relay.events.trouble is not None, 5.0, "the event file's trouble")
        assert relay.checkpointer.flush(5.0)
        assert relay.checkpointer.trouble is not None
        assert str(blocker) in relay.checkpointer.trouble
        wait_for(lambda: {"events", "memory"} <= {e.source for e in relay.events.ring
                                                  if e.kind == "fault"}, 5.0,
                 "fault events of the event file and of the thermal memory")
        assert relay.events._writer.is_alive()
