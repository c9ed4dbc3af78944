"""Start-up failures, as a user meets them (issue 14, item 1).

A field bus that cannot be opened is a faulted bus: the relay starts with what it can, the
bus's link shows down with the reason and the remedy, and the bus is tried again (with
back-off) until it opens. Only the relay's own ports are fatal: one line on stderr naming what
and why, exit 1, no traceback, and nothing left behind (no /dev/shm segment or lock file of
the relay, no helper process)."""

from __future__ import annotations

import json
import math
import multiprocessing
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from softrelay.config import load
from softrelay.core import Quality
from softrelay.field.open_faults import open_fault
from softrelay.field.sensor_bus import DeferredBus, SensorBusDevice
from softrelay.field.worker import BusWorker, Polled
from softrelay.relay.relay import Relay, StartupError

from support.configs import left_behind, relay_config
from support.waits import wait_for

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not

MISSING_I2C = 99  #: /dev/i2c-99: absent on any machine the tests run on


def events_of(tmp_path: Path) -> list[dict]:
    file = tmp_path / "events.jsonl"
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def run(path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "softrelay", "run", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_missing_i2c_bus_is_a_faulted_bus_and_the_relay_runs(tmp_path):
    """/dev/i2c-99 absent: the relay starts, the bus's link goes down with the reason and the
    remedy, the healthy contact drops by the policy; SIGTERM stops it cleanly; no traceback,
    nothing left in /dev/shm."""
    path = relay_config(tmp_path, i2c_bus=MISSING_I2C)
    relay = run(path)
    try:
        down = wait_for(lambda: [e for e in events_of(tmp_path)
                                 if e["source"] == "bus.amb" and "link down" in e["text"]],
                        60.0, "a link-down event of bus amb")
        text = down[0]["text"]
        assert f"cannot open /dev/i2c-{MISSING_I2C}: no such device" in text, text
        assert "raspi-config nonint do_i2c 0" in text, text
        wait_for(lambda: any(e["source"] == "healthy" and "NOT healthy" in e["text"]
                             and "link down: amb" in e["text"] for e in events_of(tmp_path)),
                 30.0, "the healthy contact dropped for the link")
        assert any(e["text"].startswith("started:") for e in events_of(tmp_path))
        assert relay.poll() is None, "the relay must keep running"
    finally:
        relay.send_signal(signal.SIGTERM)
        _, stderr = relay.communicate(timeout=60)
    assert relay.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "did not start" not in stderr
    assert left_behind(path) == []


class Absent:
    """A device node that appears when ``present`` is set (smbus2's SMBus on it)."""

    def __init__(self) -> None:
        self.present = False
        self.opens = 0

    def build(self) -> SensorBusDevice:
        self.opens += 1
        if not self.present:
            raise FileNotFoundError(2, "No such file or directory", "/dev/i2c-1")
        return SensorBusDevice("amb", 0.1, {"t1": lambda: "TMP117 identified"},
                               {"t1.temperature": lambda: 21.5})


def test_an_unopenable_bus_backs_off_and_recovers_when_its_device_appears():
    node = Absent()
    device = DeferredBus("amb", 0.1, node.build,
                         lambda exc: open_fault("i2c", "/dev/i2c-1", exc))
    published = []
    now = [0.0]
    worker = BusWorker(device, [Polled(0, "t1.temperature", 0.1)],
                       lambda i, v, s, q, *w: published.append((float(v[0]), int(q[0]))),
                       clock=lambda: now[0], max_backoff=0.8)
    device.open()
    for _ in range(100):  # 10 s of a 0.1 s poll, the device absent
        now[0] += 0.1
        worker.poll_once()
    assert all(math.isnan(v) and q == Quality.IO_ERROR for v, q in published)
    assert worker.schedule.down
    assert "enable I2C: raspi-config nonint do_i2c 0" in worker.schedule.reason
    assert 10 < node.opens < 20, node.opens  # backed off to 0.8 s, not tried every poll
    node.present = True
    for _ in range(10):
        now[0] += 0.1
        worker.poll_once()
    assert published[-1] == (21.5, Quality.GOOD)
    assert not worker.schedule.down


def taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("what", ["modbus", "metrics", "rtu"])
def test_a_port_of_the_relays_own_is_fatal_in_one_line_and_leaves_nothing(tmp_path, what):
    with taken_port() as sock:
        port = sock.getsockname()[1]
        path = relay_config(tmp_path, modbus_port=port if what == "modbus" else 0,
                            metrics_port=port if what == "metrics" else None,
                            rtu_port=str(tmp_path / "ttyUSB0") if what == "rtu" else None)
        done = subprocess.run([sys.executable, "-m", "softrelay", "run", str(path)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("softrelay: ")]
    assert len(said) == 1, done.stderr
    expected = {"modbus": f"softrelay: port {port} in use: the Modbus slave",
                "metrics": f"softrelay: port {port} in use: cannot bind the metrics endpoint",
                "rtu": f"softrelay: cannot open {tmp_path / 'ttyUSB0'} for the RTU slave: no "
                       "such device"}[what]
    assert said[0].startswith(expected), said[0]
    assert left_behind(path) == []


def test_a_relay_that_fails_to_start_stops_its_helpers_and_frees_its_name(tmp_path):
    """In process: the metrics port taken, start() raises StartupError; the telemetry process
    is gone, the segments and lock are given back, and the same relay then starts."""
    with taken_port() as sock:
        path = relay_config(tmp_path, metrics_port=sock.getsockname()[1])
        relay = Relay(load(path), str(path), factory=MockFactory())
        with pytest.raises(StartupError, match="in use"):
            relay.start()
    assert multiprocessing.active_children() == []
    assert left_behind(path) == []
    again = Relay(load(path), str(path), factory=MockFactory())  # the lock was released
    again.stop()
    assert left_behind(path) == []


@pytest.mark.parametrize("fails", ["start", "assembly"])
def test_a_relay_that_fails_to_start_frees_its_local_remote_switch_s_pin(tmp_path, fails):
    """The local/remote switch on pin 26 (a gpiozero MockFactory): start() failing on a taken
    metrics port, or the relay failing while it is assembled (its Modbus port taken, after
    the switch's pin was claimed), gives the pin back: a switch on it and a second relay on
    the same factory are built."""
    from gpiozero import Button

    factory = MockFactory()
    with taken_port() as sock:
        port = sock.getsockname()[1]
        path = relay_config(tmp_path, metrics_port=port if fails == "start" else None,
                            modbus_port=port if fails == "assembly" else 0)
        path.write_text(path.read_text() + "access: {local_remote: {pin: 26}}\n")
        with pytest.raises(StartupError, match="in use"):
            relay = Relay(load(path), str(path), factory=factory)
            assert relay.local_remote is not None  # the switch's pin was claimed
            relay.start()
    Button(26, pin_factory=factory).close()  # GPIOPinInUse while the failed relay holds it
    again = Relay(load(path), str(path), factory=factory)
    try:
        assert again.local_remote is not None and not again.local_remote.local()
    finally:
        again.stop()
    assert left_behind(path) == []


@pytest.mark.parametrize(("kind", "exc", "said"), [
    ("i2c", FileNotFoundError(2, "No such file or directory"),
     "cannot open /dev/x: no such device: enable I2C: raspi-config nonint do_i2c 0"),
    ("i2c", PermissionError(13, "Permission denied"),
     "cannot open /dev/x: permission denied: add the user to the i2c group (usermod -aG i2c"),
    ("spi", FileNotFoundError(2, "No such file or directory"),
     "cannot open /dev/x: no such device: enable SPI: raspi-config nonint do_spi 0"),
    ("serial", FileNotFoundError(2, "No such file or directory"),
     "cannot open /dev/x: no such device: plug in the RS-485 adapter"),
    ("serial", PermissionError(13, "Permission denied"),
     "cannot open /dev/x: permission denied: add the user to the dialout group"),
    ("spi", ModuleNotFoundError("No module named 'spidev'", name="spidev"),
     "cannot open /dev/x: the driver is not installed (spidev): pip install"),
])
def test_each_open_failure_names_its_remedy(kind, exc, said):
    assert str(open_fault(kind, "/dev/x", exc)).startswith(said)


def test_a_real_spi_bus_that_cannot_open_is_a_faulted_bus():
    from softrelay.config.buses import SpiBus
    from softrelay.field.spi.device import spi_bus_device

    bus = SpiBus.model_validate({"name": "spi9", "kind": "spi", "bus": 9, "sensors": [
        {"name": "rtd", "chip": "max31865", "device": 0}]})
    device = spi_bus_device(bus)  # nothing opened yet: no exception here
    device.open()
    assert device.read(["rtd.temperature"])[0][1] == Quality.IO_ERROR
    assert device.last_error.startswith("I/O error: cannot open /dev/spidev9.0: "), \
        device.last_error


def test_an_rtu_masters_missing_serial_port_is_the_links_reason(tmp_path):
    import asyncio

    from softrelay.config.buses import ModbusRtuBus
    from softrelay.field.modbus.master import rtu_link

    port = tmp_path / "ttyUSB9"
    bus = ModbusRtuBus.model_validate({"name": "rs485", "kind": "modbus_rtu", "port": str(port),
                                       "devices": [{"name": "gw", "unit": 5,
                                                    "profile": "thermal_gateway"}]})
    link = rtu_link(bus)
    (reading,) = asyncio.run(link.read(["gw.ch1"]))
    assert reading[1] == Quality.IO_ERROR
    assert link.last_error.startswith(f"I/O error: cannot open {port}: no such device: plug in "
                                      "the RS-485 adapter"), link.last_error
