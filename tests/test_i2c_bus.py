"""I2C buses in the relay: configuration, the bus device, and the relay end to end over I2C."""

from __future__ import annotations

import math
import time

import pytest

from softrelay.config import parse
from softrelay.core import BusbarFlag, Quality
from softrelay.field.i2c.device import i2c_bus_device
from softrelay.sim.plant import PlantModel

from support.configs import BASE, problems_of
from support.relays import running

I2C_BUS = """
  - name: ir
    kind: i2c
    bus: 1
    simulated: true
    sensors:
      - {name: ir_a, chip: mlx90614, address: 0x5a, emissivity: 0.55,
         simulate: {object: bus1.temp.a, ambient: bus1.temp.ambient}}
      - {name: ir_b, chip: mlx90614, address: 0x5b, emissivity: 0.55,
         simulate: {object: bus1.temp.b, ambient: bus1.temp.ambient}}
      - {name: ir_c, chip: mlx90614, address: 0x5c, emissivity: 0.55,
         simulate: {object: bus1.temp.c, ambient: bus1.temp.ambient}}
      - {name: amb, chip: tmp117, address: 0x48, simulate: {temperature: bus1.temp.ambient}}
"""


def with_i2c(text: str) -> str:
    """The busbar's four temperatures read over I2C instead of the plant's simulated bus."""
    text = text.replace("buses:\n", "buses:" + I2C_BUS, 1)
    for old, new in (("bus: plant, address: bus1.temp.a,", "bus: ir, address: ir_a.object,"),
                     ("bus: plant, address: bus1.temp.b,", "bus: ir, address: ir_b.object,"),
                     ("bus: plant, address: bus1.temp.c,", "bus: ir, address: ir_c.object,"),
                     ("bus: plant, address: bus1.temp.ambient,",
                      "bus: ir, address: amb.temperature,")):
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_an_i2c_configuration_is_checked_to_the_quantity():
    config = parse(with_i2c(BASE))
    ir = next(b for b in config.buses if b.name == "ir")
    assert ir.kind == "i2c" and len(ir.sensors) == 4
    found = problems_of(with_i2c(BASE).replace("ir_b.object", "ir_b.objekt"))
    assert len(found) == 1 and "'ir_b.objekt' is not on bus 'ir'" in found[0]
    found = problems_of(with_i2c(BASE).replace("address: 0x5b", "address: 0x5a"))
    assert "sensors 'ir_a' and 'ir_b' share address 0x5a" in found[0]
    found = problems_of(with_i2c(BASE).replace("address: 0x48,", "address: 0x48, emissivity: 0.9,"))
    assert "amb: only an MLX90614 has an emissivity" in found[0]
    found = problems_of(with_i2c(BASE).replace("address: 0x5c,", "address: 0x99,"))
    assert "less than or equal to 119" in found[0]


def device_and_plant():
    config = parse(with_i2c(BASE))
    t = [50.0]
    plant = PlantModel(config.plant, lambda name: False, clock=lambda: t[0])
    ir = next(b for b in config.buses if b.name == "ir")
    return i2c_bus_device(ir, plant.read), plant


def test_opening_writes_and_verifies_the_emissivity_and_identifies_the_tmp117():
    device, _ = device_and_plant()
    device.open()
    assert device.opened["ir_a"] == "emissivity 0.5500 verified"
    assert device.opened["amb"] == "TMP117 identified"
    assert device.bus.chips[0x5A].eeprom[0x04] == round(0.55 * 65535)


def test_readings_come_through_the_chips_at_their_resolution():
    device, plant = device_and_plant()
    device.open()
    readings = device.read(["ir_a.object", "ir_c.object", "amb.temperature", "ir_a.ambient"])
    truth = plant.snapshot()
    assert readings[0][0] == pytest.approx(truth["bus1.temp.a"], abs=0.02)
    assert readings[1][0] == pytest.approx(truth["bus1.temp.c"], abs=0.02)
    assert readings[2][0] == pytest.approx(truth["bus1.temp.ambient"], abs=0.008)
    assert all(q == Quality.GOOD for _, q in readings)


def test_a_failed_chip_marks_only_its_own_signals():
    device, _ = device_and_plant()
    device.open()
    del device.bus.chips[0x5B]  # ir_b stops answering (NACK)
    device.bus.chips[0x5C].error_flag = True  # ir_c flags its reading
    readings = device.read(["ir_a.object", "ir_b.object", "ir_c.object", "amb.temperature"])
    assert [q for _, q in readings] == [Quality.GOOD, Quality.IO_ERROR, Quality.OUT_OF_RANGE,
                                        Quality.GOOD]
    assert math.isnan(readings[1][0]) and math.isnan(readings[2][0])
    assert device.errors == 1  # the NACK; a flagged reading is the chip's word, not a bus error


@pytest.mark.e2e
def test_the_relay_sees_the_joint_through_the_i2c_sensors(tmp_path):
    fast = BASE.replace("STATE_DIR", str(tmp_path))
    path = tmp_path / "i2c.yaml"
    path.write_text(with_i2c(fast))
    with running(path) as relay:
        deadline = time.monotonic() + 20
        while not relay.core.busbar_outputs["flags"][0] & BusbarFlag.CRITICAL:
            assert time.monotonic() < deadline, "no critical joint over I2C"
            relay.loop.step()
        out = relay.core.busbar_outputs[0]
        assert out["hottest_phase"] == 3 and out["fault"].tolist() == [0, 0, 0, 0]
