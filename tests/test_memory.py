"""Thermal memory: atomic checkpoints, power-loss policies, missing and corrupt files."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from softrelay.core import ThermalSettings
from softrelay.core.bank import initial_thermal_state
from softrelay.core.settings import pack_thermal
from softrelay.records.thermal_memory import (
    FORMAT_VERSION,
    Checkpointer,
    _checksum,
    read_state,
    restore,
    snapshot,
    write_atomically,
)

NAMES = ["m1", "m2"]
SETTINGS = pack_thermal([ThermalSettings(i_b=100, t_heat=60, t_cool=100, theta_initial=0.25),
                         ThermalSettings(i_b=50, t_heat=60, t_cool=200, theta_initial=0.0)])


def saved_state(tmp_path, wall=1000.0):
    state = initial_thermal_state(SETTINGS)
    state["theta"] = [1.0, 0.5]
    state["trip_latched"] = [1, 0]
    state["trip_count"] = [3, 0]
    state["start_count"] = [7, 2]
    path = tmp_path / "state.json"
    write_atomically(path, snapshot(NAMES, state, {"event_seq": 99}, wall=wall))
    return path


def fresh():
    return initial_thermal_state(SETTINGS)


def test_freeze_restores_theta_latches_and_counters(tmp_path):
    path = saved_state(tmp_path)
    state = fresh()
    result = restore(path, NAMES, SETTINGS, state, "freeze", 1.0, wall=1100.0)
    assert result.outcome == "restored" and result.outage == pytest.approx(100.0)
    assert state["theta"].tolist() == [1.0, 0.5]
    assert state["trip_latched"].tolist() == [1, 0]
    assert state["trip_count"].tolist() == [3, 0] and state["start_count"].tolist() == [7, 2]
    assert result.extra == {"event_seq": 99}


def test_cool_applies_t_minus_over_the_outage_on_the_wall_clock(tmp_path):
    path = saved_state(tmp_path)
    state = fresh()
    restore(path, NAMES, SETTINGS, state, "cool", 1.0, wall=1100.0)
    assert state["theta"][0] == pytest.approx(math.exp(-1.0))
    assert state["theta"][1] == pytest.approx(0.5 * math.exp(-0.5))
    assert state["trip_latched"][0] == 1  # a latched trip outlives the outage


def test_preset_assumes_the_hot_value(tmp_path):
    path = saved_state(tmp_path)
    state = fresh()
    restore(path, NAMES, SETTINGS, state, "preset", 1.1, wall=1100.0)
    assert state["theta"].tolist() == [1.1, 1.1]


def test_a_clock_that_went_backwards_is_no_outage_and_is_reported(tmp_path):
    path = saved_state(tmp_path, wall=5000.0)
    state = fresh()
    result = restore(path, NAMES, SETTINGS, state, "cool", 1.0, wall=4000.0)
    assert state["theta"].tolist() == [1.0, 0.5]
    assert result.outage == 0.0 and "behind the last checkpoint" in result.messages[0]


def test_a_missing_file_is_a_first_start_at_theta_initial(tmp_path):
    state = fresh()
    state["theta"] = 9.0
    result = restore(tmp_path / "none.json", NAMES, SETTINGS, state, "cool", 1.0)
    assert result.outcome == "missing" and "first start" in result.messages[0]
    assert state["theta"].tolist() == [0.25, 0.0]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bit_flip", "empty", "no_version",
                                    "field_missing"])
def test_a_corrupt_file_is_kept_aside_and_every_point_starts_hot(tmp_path, damage):
    path = saved_state(tmp_path)
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x00\xff not json")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "bit_flip":
        path.write_bytes(raw.replace(b'"theta": 1.0', b'"theta": 0.0'))
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # whole and checksummed, yet not a thermal memory restore could use
        doc = json.loads(raw)
        if damage == "no_version":
            del doc["payload"]["version"]
        else:
            del doc["payload"]["points"]["m2"]["trip_count"]
        doc["sha256"] = _checksum(doc["payload"])
        path.write_text(json.dumps(doc))
    state = fresh()
    result = restore(path, NAMES, SETTINGS, state, "cool", 1.05, wall=2000.0)
    assert result.outcome == "corrupt"
    assert state["theta"].tolist() == [1.05, 1.05]
    assert not path.exists()
    assert (tmp_path / "state.json.corrupt-2000").exists()
    assert "conservative" in result.messages[0]


#: what softrelay 0.1.0 wrote (format 1): m1 hot and tripped, m2 half, saved at wall 1000 s
FORMAT_1 = Path(__file__).parent / "golden" / "thermal_memory.v1.json"


def test_an_older_format_from_the_previous_release_is_migrated_and_restored(tmp_path):
    """An upgrade keeps the thermal memory: the file the previous softrelay wrote is restored
    (theta, latches, counters, the event number), said to be migrated, not set aside."""
    path = tmp_path / "state.json"
    path.write_bytes(FORMAT_1.read_bytes())
    assert json.loads(path.read_text())["payload"]["version"] == 1 < FORMAT_VERSION
    state = fresh()
    result = restore(path, NAMES, SETTINGS, state, "freeze", 1.0, wall=1100.0)
    assert result.outcome == "restored" and result.outage == pytest.approx(100.0)
    assert state["theta"].tolist() == [1.0, 0.5]
    assert state["trip_latched"].tolist() == [1, 0] and state["trip_count"].tolist() == [3, 0]
    assert state["start_count"].tolist() == [7, 2] and result.extra == {"event_seq": 99}
    assert any("format 1: migrated to format" in m for m in result.messages), result.messages
    assert path.exists() and not list(tmp_path.glob("state.json.*"))
    # the next checkpoint writes the present format, which restores without a migration
    write_atomically(path, snapshot(NAMES, state, result.extra, wall=1200.0))
    assert read_state(path)["version"] == FORMAT_VERSION
    again = restore(path, NAMES, SETTINGS, fresh(), "freeze", 1.0, wall=1200.0)
    assert again.outcome == "restored" and not again.messages


def test_a_newer_format_after_a_downgrade_is_kept_for_it_not_called_corrupt(tmp_path):
    path = saved_state(tmp_path)
    doc = json.loads(path.read_bytes())
    doc["payload"].update(version=FORMAT_VERSION + 1, written_by="9.0.0")
    doc["sha256"] = _checksum(doc["payload"])
    path.write_text(json.dumps(doc))
    state = fresh()
    result = restore(path, NAMES, SETTINGS, state, "cool", 1.05, wall=2000.0)
    assert result.outcome == "newer"
    assert state["theta"].tolist() == [1.05, 1.05]  # conservative, as for a corrupt file
    kept = tmp_path / f"state.json.format-{FORMAT_VERSION + 1}-2000"
    assert not path.exists() and json.loads(kept.read_text()) == doc  # untouched, for 9.0.0
    assert not list(tmp_path.glob("*.corrupt-*"))
    message = result.messages[0]
    assert f"format {FORMAT_VERSION + 1} (written by softrelay 9.0.0)" in message
    assert "install softrelay 9.0.0" in message and "conservative" in message


def test_points_added_or_removed_since_the_checkpoint_are_reported(tmp_path):
    path = saved_state(tmp_path)
    state = initial_thermal_state(SETTINGS)
    result = restore(path, ["m1", "m3"], SETTINGS, state, "freeze", 1.0, wall=1000.0)
    assert state["theta"].tolist() == [1.0, 0.0]
    assert "m3: not in the thermal memory" in result.messages[0]
    assert "m2: in the thermal memory but no longer configured" in result.messages[1]


def test_the_checkpointer_writes_the_newest_snapshot_off_the_scan_thread(tmp_path):
    path = tmp_path / "state.json"
    cp = Checkpointer(path)
    state = initial_thermal_state(SETTINGS)
    for k in range(50):
        state["theta"] = k / 10.0
        copy = state.copy()  # what the scan hands over: a copy, built into JSON later
        cp.submit(lambda copy=copy: snapshot(NAMES, copy))
    assert cp.flush(10.0)
    assert read_state(path)["points"]["m1"]["theta"] == 4.9
    assert 1 <= cp.written <= 50
    cp.close()
    cp.close()


def test_a_failed_checkpoint_is_reported_and_the_relay_goes_on(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    messages = []
    cp = Checkpointer(blocker / "state.json", on_error=messages.append)
    cp.submit(lambda: snapshot(NAMES, initial_thermal_state(SETTINGS)))
    cp.flush(10.0)
    cp.close()
    assert cp.failures == 1 and "checkpoint to" in messages[0]


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from softrelay.records.thermal_memory import snapshot, write_atomically
    from softrelay.core.layout import THERMAL_STATE
    path = Path(sys.argv[1])
    state = np.zeros(2, THERMAL_STATE)
    k = int(sys.argv[2])
    while True:
        k += 1
        state["theta"] = k / 1000.0
        write_atomically(path, snapshot(["m1", "m2"], state, {"k": k}))
        print(k, flush=True)
""")


@pytest.mark.e2e
def test_kill_9_during_checkpointing_never_leaves_an_unloadable_file(tmp_path):
    """40 times: the child checkpoints as fast as it can and is killed at a random moment.
    The file always loads, and it holds the last checkpoint the child finished or the one it
    was writing: at most one checkpoint interval of history is lost."""
    path = tmp_path / "state.json"
    rng = random.Random(11)
    last = 0
    for _ in range(40):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(last)],
                                 stdout=subprocess.PIPE, text=True)
        first = child.stdout.readline()  # one checkpoint done: the child is writing
        assert first.strip()
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        done = int([first, *out.split()][-1])
        payload = read_state(path)
        saved = payload["extra"]["k"]
        assert saved in (done, done + 1), (saved, done)
        assert payload["points"]["m1"]["theta"] == saved / 1000.0
        state = initial_thermal_state(SETTINGS)
        result = restore(path, ["m1", "m2"], SETTINGS, state, "cool", 1.0)
        assert result.outcome == "restored"
        assert state["theta"][0] <= saved / 1000.0
        last = saved
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "state.json"]
    assert all(name.endswith(".tmp") for name in leftovers)  # a killed write's temp file
    restore(path, ["m1", "m2"], SETTINGS, initial_thermal_state(SETTINGS), "cool", 1.0)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # cleaned at start


# ---------------------------------------------------------------- a nearly full disk

def many_points(count: int, theta: float) -> tuple[list[str], dict]:
    """A thermal memory of ``count`` points at ``theta`` (a latched trip on the first)."""
    import numpy as np

    from softrelay.core.layout import THERMAL_STATE

    state = np.zeros(count, THERMAL_STATE)
    state["theta"] = theta
    state["trip_latched"][0] = 1
    names = [f"motor{k}" for k in range(count)]
    return names, snapshot(names, state, {"event_seq": 17})


def test_a_short_write_is_continued_and_the_file_is_whole(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    _, document = many_points(40, 1.1)
    real_write = os.write
    calls = []

    def half(fd, data):  # what a nearly full disk's kernel may do: take only part of it
        calls.append(len(data))
        return real_write(fd, bytes(data[:max(1, len(data) // 2)]))

    monkeypatch.setattr(os, "write", half)
    write_atomically(path, document)
    monkeypatch.undo()
    assert len(calls) > 1, "the write was short and continued"
    assert read_state(path) == document["payload"]


def checkpoint_on_a_full_disk(path, monkeypatch, fail) -> tuple[Checkpointer, list, list]:
    """A good checkpoint, then one that ``fail`` (an os.write) breaks; the checkpointer
    and what it reported (faults, clearances)."""
    _, good = many_points(40, 1.1)
    errors, cleared = [], []
    cp = Checkpointer(path, on_error=errors.append, on_clear=cleared.append)
    cp.submit(lambda: good)
    assert cp.flush(10.0) and cp.trouble is None
    monkeypatch.setattr(os, "write", fail)
    _, hotter = many_points(40, 1.3)
    cp.submit(lambda: hotter)
    assert cp.flush(10.0)
    cp.submit(lambda: hotter)  # the next checkpoint fails the same way: one report
    assert cp.flush(10.0)
    monkeypatch.undo()
    return cp, errors, cleared


def test_a_full_disk_keeps_the_previous_memory_reports_it_and_the_next_start_restores_it(
        tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    real_write = os.write

    def half_then_full(fd, data):
        if len(data) > 4096:
            return real_write(fd, bytes(data[:4096]))
        raise OSError(28, "No space left on device")

    cp, errors, cleared = checkpoint_on_a_full_disk(path, monkeypatch, half_then_full)
    try:
        assert cp.failures == 2 and len(errors) == 1, errors
        assert "no space left" in errors[0] and "previous one is kept" in errors[0]
        assert cp.trouble is not None and str(path) in cp.trouble
        assert "free some space" in cp.trouble
        assert [p.name for p in tmp_path.iterdir()] == ["state.json"], "no temp file left"
        names, _ = many_points(40, 0.0)
        settings = pack_thermal([ThermalSettings(i_b=100, t_heat=60, t_cool=100)] * 40)
        state = initial_thermal_state(settings)
        result = restore(path, names, settings, state, "freeze", 1.0)
        assert result.outcome == "restored", result.messages  # not "corrupt"
        assert state["theta"][0] == 1.1 and state["trip_latched"][0] == 1

        _, again = many_points(40, 1.2)  # space again: the next checkpoint clears it
        cp.submit(lambda: again)
        assert cp.flush(10.0)
        assert cp.trouble is None and len(cleared) == 1 and "after 2 failed" in cleared[0]
        assert read_state(path) == again["payload"]
    finally:
        cp.close()


def test_on_a_real_full_tmpfs_the_previous_memory_is_kept(tmp_path):
    """A 64 KiB tmpfs (root only): a 30 KB memory fits, a 50 KB one beside it does not."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"no tmpfs here: {mounted.stderr.strip()}")
    try:
        path = mnt / "state.json"
        _, small = many_points(190, 1.1)
        _, big = many_points(320, 1.3)
        assert 25_000 < len(json.dumps(small)) < 35_000 < 45_000 < len(json.dumps(big))
        errors = []
        cp = Checkpointer(path, on_error=errors.append)
        cp.submit(lambda: small)
        assert cp.flush(10.0) and cp.trouble is None
        cp.submit(lambda: big)
        assert cp.flush(10.0)
        cp.close()
        assert cp.trouble is not None and "no space left" in cp.trouble, errors
        assert len(errors) == 1
        assert read_state(path) == small["payload"], "the previous memory, whole"
        assert [p.name for p in mnt.iterdir()] == ["state.json"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
