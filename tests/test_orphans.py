"""kill -9 of ``softrelay run`` leaves nothing behind: no helper process (companion, telemetry,
multiprocessing's resource tracker) outlives the scan process, nothing polls the field device
after it, the shared-memory segments are the relay's own (named after it, reclaimed by the
next start, never accumulating), and the restart gets the same ports. A second instance of the
same relay refuses to start and names the running one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from softrelay.config import load
from softrelay.image.shared import segment_prefix

from support.processes import POLL, Rig, alive, children_of, wait

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not


def segments(name: str, config_path: Path) -> set[str]:
    config = load(config_path)
    prefix = segment_prefix(config.name, config.state.file)
    assert name in prefix
    return {p.name for p in Path("/dev/shm").iterdir() if p.name.startswith(prefix)}


@pytest.fixture
def rig(tmp_path):
    rig = Rig(tmp_path, f"orphans{os.getpid()}")
    yield rig
    rig.close()


def kill_and_check(rig: Rig, process: subprocess.Popen) -> None:
    """kill -9 the scan process; within 1 s none of its processes runs, then the field device
    sees no further read."""
    helpers = children_of(process.pid)
    assert len(helpers) >= 2, f"expected the companion and the telemetry, found {helpers}"
    process.kill()
    process.wait(5.0)
    killed = time.monotonic()
    deadline = killed + 1.0
    while (left := {p for p in helpers if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.01)
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:120]
            for p in left if alive(p)}
    assert not left, f"still running 1 s after kill -9: {left}"
    after = rig.requests()  # a request already on the wire may have been answered by now
    polls = time.monotonic() + 10 * POLL  # ten poll periods: a live poller reads ten times
    while time.monotonic() < polls:
        assert rig.requests() == after, "the field device was polled after kill -9"
        time.sleep(POLL / 4)


def test_kill_9_leaves_no_process_no_poll_and_the_restart_reclaims_everything(rig):
    process = rig.start()
    rig.scanning(process)
    mine = segments(rig.name, rig.path)
    assert mine, "the relay's shared memory is not named after it"
    for _ in range(3):  # several kills: nothing accumulates
        kill_and_check(rig, process)
        assert segments(rig.name, rig.path) <= mine  # left by kill -9 at most: its own
        process = rig.start()  # the same metrics and slave ports
        rig.scanning(process)
        assert segments(rig.name, rig.path) == mine  # reclaimed, not added to
        assert "did not stop cleanly: its shared memory reclaimed" in rig.log.read_text()
    process.send_signal(signal.SIGTERM)  # a clean stop removes them
    assert process.wait(20.0) == 0
    assert not segments(rig.name, rig.path)
    assert "Traceback" not in rig.log.read_text()


def test_a_second_instance_of_the_same_relay_refuses_and_names_the_first(rig):
    first = rig.start()
    rig.scanning(first)
    second = rig.start()
    assert second.wait(30.0) != 0
    text = rig.log.read_text()
    assert f"relay {rig.name!r} is already running (pid {first.pid})" in text
    assert "Traceback" not in text
    assert first.poll() is None
    polled = rig.requests()
    wait(lambda: rig.requests() > polled + 3, 5.0, "the first instance polling on")
