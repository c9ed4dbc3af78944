"""The helper processes (companion, telemetry, multiprocessing's resource tracker) never run
at the scan's real-time priority: normal priority, or the one configured for them
(``scan.realtime.helper_priority``), below the scan's. Run for real: ``softrelay run`` at
SCHED_FIFO, every thread of every helper looked at; skipped, loudly, where the kernel refuses
SCHED_FIFO."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from softrelay.config import ConfigError, load

from support.processes import Rig, children_of

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not


def policies(pid: int) -> dict[int, tuple[int, int]]:
    """Every thread of ``pid``: (scheduling policy, real-time priority)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        try:
            found[tid] = (os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK,
                          os.sched_getparam(tid).sched_priority)
        except OSError:  # the thread ended meanwhile
            continue
    return found


def helpers_of(pid: int) -> dict[str, list[int]]:
    """The relay's helper processes by what they are: 'spawn' (companion, telemetry) and
    'tracker' (multiprocessing's resource tracker)."""
    kinds: dict[str, list[int]] = {"spawn": [], "tracker": []}
    for child in children_of(pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        kinds["tracker" if b"resource_tracker" in cmdline else "spawn"].append(child)
    return kinds


def started_at_fifo(rig: Rig):
    process = rig.start()
    rig.scanning(process)
    scan_policy = os.sched_getscheduler(process.pid) & ~os.SCHED_RESET_ON_FORK
    if scan_policy != os.SCHED_FIFO:
        refused = [line for line in rig.log.read_text().splitlines() if "REFUSED" in line]
        pytest.skip(f"SCHED_FIFO REFUSED by this kernel, nothing to check: {refused}")
    return process


@pytest.mark.parametrize("helper_priority", [None, 5])
def test_helpers_never_run_at_the_scans_real_time_priority(tmp_path, helper_priority):
    extra = f", helper_priority: {helper_priority}" if helper_priority else ""
    rig = Rig(tmp_path, f"prio{os.getpid()}", realtime=f"{{priority: 10{extra}}}")
    try:
        process = started_at_fifo(rig)
        assert os.sched_getparam(process.pid).sched_priority == 10
        kinds = helpers_of(process.pid)
        assert len(kinds["spawn"]) == 2 and len(kinds["tracker"]) == 1, kinds
        expected = ((os.SCHED_OTHER, 0) if helper_priority is None
                    else (os.SCHED_FIFO, helper_priority))
        for pid in kinds["spawn"]:
            assert set(policies(pid).values()) == {expected}, \
                f"helper {pid}: (policy, priority) of its threads {policies(pid)}"
        for pid in kinds["tracker"]:
            assert set(policies(pid).values()) == {(os.SCHED_OTHER, 0)}
        process.send_signal(signal.SIGTERM)
        assert process.wait(20.0) == 0
    finally:
        rig.close()


def test_a_helper_priority_not_below_the_scans_is_refused(tmp_path):
    rig = Rig(tmp_path, "prio", realtime="{priority: 10, helper_priority: 10}")
    try:
        with pytest.raises(ConfigError) as error:
            load(rig.path)
        (problem,) = error.value.problems
        assert ":3: scan.realtime:" in str(problem) and "helper_priority 10 must be below " \
            "priority 10" in str(problem)
    finally:
        rig.twin.stop()
