"""``softrelay run`` as a process on a twin field device, and what a process leaves behind.

``Rig`` writes a relay configuration polling a Modbus/TCP twin (started here, on 127.0.0.1)
with its Modbus slave and metrics on free ports, starts ``softrelay run`` on it (as often as a
test asks) and stops whatever it started in ``close`` (SIGTERM, then SIGKILL after 20 s).
``children_of`` and ``alive`` read /proc, so they see what the process tree really holds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from softrelay.config.buses import ModbusTcpBus
from softrelay.sim.modbus_twin import twins_for
from softrelay.sim.twin_server import TwinServer

from support.ports import free_port

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
    """``condition()``'s first true value, polled every ``poll`` s; fails the test (naming
    ``what``) when ``timeout`` s pass first."""
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
