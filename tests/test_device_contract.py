"""What every bus's ``Device`` must do, whatever its kind (python-can's back-to-back pattern).

One contract class, run against every entry of ``registry.BUS_KINDS``, each bus opened the way
the companion opens it (``registry.open_bus``) against what stands in for its hardware: the
chips' twins on a simulated I2C and SPI bus, the Modbus devices' twins on 127.0.0.1 and on a
pty, the plant itself. The contract (``field.device``): ``read`` answers one (value, quality)
per address; a failed transaction is a quality with a reason (``last_error``, in the words of
``link_fault``), never an exception, and the bus comes back by itself when the fault clears;
``close`` is safe twice; a bus whose hardware is missing is a faulted bus, never an exception.
A kind added to ``BUS_KINDS`` without a bench here fails ``test_every_bus_kind_is_in_the_run``.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import softrelay.config
from softrelay.config import parse
from softrelay.core import Quality
from softrelay.field.device import Device
from softrelay.field.registry import BUS_KINDS, open_bus
from softrelay.sim.plant import PlantModel

#: the kinds of failure a link-down event names (``field.device.link_fault``)
LINK_FAULTS = ("refused", "connection lost", "timeout", "NACK", "garbage", "exception 0x",
               "I/O error")


def _config():
    """The demo, with a bus of every kind and every chip the catalog knows on its bus."""
    text = (Path(softrelay.config.__file__).parent / "demo.yaml").read_text()
    for old, extra in (
            ("      - {name: amb, chip: tmp117, address: 0x48, simulate: {temperature: "
             "bus1.temp.ambient}}\n",
             "      - {name: ir_a, chip: mlx90614, address: 0x5a, emissivity: 0.95,\n"
             "         simulate: {object: bus1.temp.a, ambient: bus1.temp.ambient}}\n"),
            ("         simulate: {ch0: motor2.current.a, ch1: motor2.current.b, ch2: "
             "motor2.current.c}}\n",
             "      - {name: rtd_b, chip: max31865, device: 1, "
             "simulate: {temperature: bus1.temp.b}}\n"),
            ("        simulate: {ch1: bus1.temp.a, ch2: bus1.temp.b, ch3: bus1.temp.c}\n",
             "      - {name: m3, unit: 7, profile: sdm630, simulate: {current.a: "
             "motor2.current.a}}\n")):
        assert old in text, old
        text = text.replace(old, old + extra)
    text = text.replace("buses:\n", "buses:\n  - {name: plant, kind: simulated, timeout: 0.05}\n",
                        1)
    return parse(text)


CONFIG = _config()
#: bus kind -> (the bus of that kind in CONFIG, the addresses read from it, where a fault
#: hits one device of it: '<sensor>', '<device>' or a plant address)
BENCHES = {
    "simulated": ("plant", ["motor1.current.a", "bus1.temp.a", "bus1.temp.ambient"],
                  "bus1.temp.a"),
    "i2c": ("i2c1", ["amb.temperature", "ir_a.object", "ir_a.ambient"], "ir_a"),
    "spi": ("spi0", ["ct2.window", "rtd_b.temperature"], "rtd_b"),
    "modbus_tcp": ("meters", ["m1.current.a", "m1.angle.b", "b1.current.c"], "m1"),
    "modbus_rtu": ("rs485", ["gw.ch1", "gw.ch2", "m3.current.a"], "gw"),
}


def bus_of(kind: str):
    name = BENCHES[kind][0]
    return next(b for b in CONFIG.buses if b.name == name)


@dataclass
class Bench:
    kind: str
    device: Device
    addresses: list[str]
    one: str  #: where a fault hits one device of the bus

    def read(self):
        return self.device.read(self.addresses)

    def until_good(self, deadline: float = 10.0):
        """Read until every address is good (a TMP117's first conversion, an ADC burst a
        busy machine made late); the last readings. Bounded: fails after ``deadline`` s."""
        end = time.monotonic() + deadline
        while True:
            readings = self.read()
            if all(q == Quality.GOOD for _, q in readings) or time.monotonic() > end:
                return readings
            time.sleep(0.02)


def test_every_bus_kind_is_in_the_run():
    assert set(BENCHES) == set(BUS_KINDS), "a bus kind without a bench in the contract run"
    assert {bus_of(kind).kind for kind in BENCHES} == set(BUS_KINDS)


@pytest.fixture(params=sorted(BUS_KINDS))
def bench(request):
    kind = request.param
    plant = PlantModel(CONFIG.plant, lambda name: False)
    device = open_bus(bus_of(kind), plant, CONFIG.sampling)
    device.open()
    yield Bench(kind, device, BENCHES[kind][1], BENCHES[kind][2])
    device.close()


class TestDeviceContract:
    def test_read_answers_one_good_reading_per_address(self, bench):
        readings = bench.until_good()
        assert len(readings) == len(bench.addresses)
        for value, quality in readings:
            assert quality == Quality.GOOD, readings
            assert isinstance(quality, int)
            assert isinstance(value, float | np.ndarray)
            assert np.all(np.isfinite(value))

    @pytest.mark.e2e
    def test_a_failed_transaction_is_a_quality_with_a_reason(self, bench):
        bench.until_good()
        errors = bench.device.errors
        bench.device.inject("*", "nack")
        readings = bench.read()  # never raises
        assert [q for _, q in readings] == [Quality.IO_ERROR] * len(bench.addresses)
        assert bench.device.errors > errors
        assert bench.device.last_error.startswith(LINK_FAULTS), bench.device.last_error

    @pytest.mark.e2e
    def test_a_failing_device_fails_its_own_signals_alone(self, bench):
        bench.until_good()
        bench.device.inject(bench.one, "nack")
        hit = [a == bench.one or a.startswith(bench.one + ".") for a in bench.addresses]
        assert any(hit) and not all(hit)
        want = [Quality.IO_ERROR if h else Quality.GOOD for h in hit]
        end = time.monotonic() + 10.0  # an ADC burst a busy machine made late: read again
        while (got := [q for _, q in bench.read()]) != want and time.monotonic() < end:
            time.sleep(0.02)
        assert got == want
        assert bench.device.last_error.startswith(LINK_FAULTS), bench.device.last_error

    @pytest.mark.e2e
    def test_the_bus_comes_back_when_the_fault_clears(self, bench):
        bench.until_good()
        bench.device.inject("*", "nack")
        bench.read()
        bench.device.clear("*")
        assert [q for _, q in bench.until_good()] == [Quality.GOOD] * len(bench.addresses)

    def test_close_is_safe_twice(self, bench):
        bench.until_good()
        bench.device.close()
        bench.device.close()


def _closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: bus kind -> its configuration without the stand-in: the hardware is not there
REAL = {
    "i2c": lambda bus, tmp: bus.model_copy(update={"simulated": False, "bus": 97}),
    "spi": lambda bus, tmp: bus.model_copy(update={"simulated": False, "bus": 97}),
    "modbus_tcp": lambda bus, tmp: bus.model_copy(update={"simulated": False,
                                                          "host": "127.0.0.1",
                                                          "port": _closed_port()}),
    "modbus_rtu": lambda bus, tmp: bus.model_copy(update={"simulated": False,
                                                          "port": str(tmp / "ttyUSB9")}),
}


def test_every_bus_kind_with_hardware_is_in_the_run():  # a kind with ``simulated``
    assert set(REAL) == {kind for kind in BUS_KINDS if hasattr(bus_of(kind), "simulated")}


@pytest.mark.parametrize("kind", sorted(REAL))
def test_a_bus_whose_hardware_is_missing_is_a_faulted_bus(kind, tmp_path):
    """No /dev/i2c-97, no /dev/spidev97.*, nobody on the port, no serial adapter: the bus
    opens (its worker starts), reads I/O error with the reason, and raises nothing."""
    device = open_bus(REAL[kind](bus_of(kind), tmp_path), None, CONFIG.sampling)
    device.open()
    addresses = BENCHES[kind][1]
    readings = device.read(addresses)
    assert [q for _, q in readings] == [Quality.IO_ERROR] * len(addresses)
    assert device.last_error.startswith(LINK_FAULTS), device.last_error
    with pytest.raises(ValueError, match="real bus"):
        device.inject("*", "nack")
    device.close()
    device.close()
