"""kill -9 of ``softrelay run`` leaves nothing behind: no helper process (companion, telemetry,
multiprocessing's resource tracker) outlives the scan process, nothing polls the field device
after it, the shared-memory segments are the relay's own (named after it, reclaimed by the
next start, never accumulating), and the restart gets the same ports. A second instance of the
same relay refuses to start and names the running one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from softrelay.config import load
from softrelay.config.buses import ModbusTcpBus
from softrelay.image.shared import segment_prefix
from softrelay.sim.modbus_twin import twins_for
from softrelay.sim.twin_server import TwinServer

from mqtt_helpers import free_port

POLL = 0.02
METER = {"name": "meter", "unit": 1, "profile": "sdm630"}
CONFIG = """
name: NAME
scan: {period: 0.01, watchdog_periods: 50, realtime: REALTIME}
state: {file: DIR/state.json, checkpoint_interval: 1.0}
events: {file: DIR/events.jsonl}
buses:
  - {name: gw1, kind: modbus_tcp, host: 127.0.0.1, port: FIELD, timeout: 0.1,
     max_backoff: 0.2, devices: [METER]}
signals:
  - {name: m1.ia, bus: gw1, address: meter.current.a, poll: POLL}
  - {name: m1.ib, bus: gw1, address: meter.current.b, poll: POLL}
  - {name: m1.ic, bus: gw1, address: meter.current.c, poll: POLL}
points:
  - name: motor1
    kind: thermal
    currents: [m1.ia, m1.ib, m1.ic]
    settings: {i_b: 100.0, t_heat: 60.0, t_cool: 180.0, stale_limit: 0.5,
               input_mode: magnitudes}
outputs:
  - {name: trip, pin: 17, flags: [motor1.trip]}
modbus: {host: 127.0.0.1, port: SLAVE}
metrics: {host: 127.0.0.1, port: METRICS}
"""


def children_of(pid: int) -> set[int]:
    """Every live process descended from ``pid`` (walking /proc's parent links)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it no longer runs)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def segments(name: str, config_path: Path) -> set[str]:
    config = load(config_path)
    prefix = segment_prefix(config.name, config.state.file)
    assert name in prefix
    return {p.name for p in Path("/dev/shm").iterdir() if p.name.startswith(prefix)}


def scans(port: int) -> float | None:
    """The relay's scan count from its metrics, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("softrelay_scans_total "):
            return float(line.split()[1])
    return None


def wait(condition, timeout: float, what: str, poll: float = 0.02):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out ({timeout} s) waiting for {what}"
        time.sleep(poll)
    return result


class Rig:
    """The twin field device, the relay's configuration, and ``softrelay run`` on it."""

    def __init__(self, tmp_path: Path, name: str, realtime: str = "{}") -> None:
        self.name = name
        bus = ModbusTcpBus.model_validate({
            "name": "gw1", "kind": "modbus_tcp", "host": "127.0.0.1", "port": 0,
            "simulated": True, "devices": [dict(METER, simulate={
                "current.a": "i", "current.b": "i", "current.c": "i"})]})
        self.twin = TwinServer(twins_for(bus, lambda a: 60.0), "gw1")
        field = self.twin.start_tcp()
        self.metrics, self.slave = free_port(), free_port()
        self.path = tmp_path / f"{name}.yaml"
        self.path.write_text(
            CONFIG.replace("NAME", name).replace("DIR", str(tmp_path))
            .replace("REALTIME", realtime)
            .replace("FIELD", str(field)).replace("METER", str(METER))
            .replace("POLL", str(POLL)).replace("SLAVE", str(self.slave))
            .replace("METRICS", str(self.metrics)))
        self.log = tmp_path / f"{name}.log"
        self.processes: list[subprocess.Popen] = []

    def requests(self) -> int:
        return sum(t.requests for t in self.twin.twins.values())

    def start(self) -> subprocess.Popen:
        env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock")
        with open(self.log, "ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "softrelay", "run", str(self.path)],
                                       stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env)
        self.processes.append(process)
        return process

    def scanning(self, process: subprocess.Popen, timeout: float = 60.0) -> None:
        """Wait until it scans and polls the field device."""
        def up():
            assert process.poll() is None, f"softrelay run exited: {self.log.read_text()}"
            return (scans(self.metrics) or 0) > 0
        wait(up, timeout, "the relay to scan (its metrics)", poll=0.1)
        polled = self.requests()
        wait(lambda: self.requests() > polled + 3, 10.0, "the relay to poll the field device")

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20.0)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.twin.stop()


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
