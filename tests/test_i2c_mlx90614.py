"""MLX90614 driver against its transaction-level r.twin on a simulated I2C r.bus."""

from __future__ import annotations

import errno
from dataclasses import dataclass

import pytest
from smbus2 import i2c_msg

from softrelay.field.i2c.mlx90614 import (
    EE_EMISSIVITY,
    EEPROM,
    MLX90614,
    RAM_TOBJ1,
    PecError,
    from_celsius,
    to_celsius,
)
from softrelay.field.i2c.pec import crc8
from softrelay.sim.chips.mlx90614 import MLX90614Twin
from softrelay.sim.smbus import SimulatedSMBus


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


@dataclass
class Rig:
    bus: SimulatedSMBus
    twin: MLX90614Twin
    sensor: MLX90614
    clock: Clock


def rig(object_c=61.25, ambient_c=24.5) -> Rig:
    clock = Clock()
    bus = SimulatedSMBus(1)
    twin = MLX90614Twin(0x5A, lambda: object_c, lambda: ambient_c, clock=clock)
    bus.attach(0x5A, twin)
    return Rig(bus, twin, MLX90614(bus, 0x5A, sleep=clock.sleep), clock)


def test_the_pec_is_the_smbus_crc8():
    # Melexis application note: erasing EEPROM 0x0E at address 0x00 sends PEC 0x6F;
    # writing 0x5A there sends PEC 0xE1.
    assert crc8([0x00, 0x2E, 0x00, 0x00]) == 0x6F
    assert crc8([0x00, 0x2E, 0x5A, 0x00]) == 0xE1


def test_temperatures_are_read_with_the_datasheet_bytes():
    r = rig(object_c=61.25, ambient_c=24.5)
    assert r.sensor.object_temperature() == pytest.approx(61.25, abs=0.01)
    assert r.sensor.ambient_temperature() == pytest.approx(24.5, abs=0.01)
    # The raw transaction: command 0x07, then low, high, PEC.
    write, read = i2c_msg.write(0x5A, [RAM_TOBJ1]), i2c_msg.read(0x5A, 3)
    r.bus.i2c_rdwr(write, read)
    low, high, pec = list(read)
    assert low | high << 8 == from_celsius(61.25)
    assert pec == crc8([0xB4, 0x07, 0xB5, low, high])


def test_the_temperature_scale_matches_the_application_note():
    # "TOBJ1 will sweep between 0x27AD and 0x7FFF as the object rises from -70.01 C to 382.19 C"
    assert from_celsius(-70.01) == 0x27AD and from_celsius(382.19) == 0x7FFF
    assert to_celsius(0x27AD) == pytest.approx(-70.01, abs=0.005)


def test_a_corrupted_pec_is_refused():
    r = rig()
    original = r.twin.transfer
    r.twin.transfer = lambda w, n: (lambda b: bytes([b[0], b[1], b[2] ^ 0xFF]))(original(w, n))
    with pytest.raises(PecError, match="PEC"):
        r.sensor.object_temperature()


def test_the_chips_error_flag_is_not_a_temperature():
    r = rig()
    r.twin.error_flag = True
    with pytest.raises(ValueError, match="flags an error"):
        r.sensor.object_temperature()


def test_emissivity_is_erased_written_waited_for_and_verified():
    r = rig()
    assert r.sensor.emissivity() == 1.0  # factory 0xFFFF
    stored = r.sensor.set_emissivity(0.55)  # the seed's copper busbar
    assert stored == pytest.approx(0.55, abs=1e-4)
    assert r.twin.eeprom[EE_EMISSIVITY] == round(0.55 * 65535)
    assert r.twin.writes == 2  # erase, then write
    assert r.clock.t == pytest.approx(0.010)  # 5 ms after each
    r.sensor.set_emissivity(0.55)
    assert r.twin.writes == 2  # already set: the EEPROM is not worn


def test_a_write_without_erase_garbles_the_cell_and_the_driver_would_notice():
    r = rig()
    word = round(0.55 * 65535)
    pec = crc8([0xB4, EEPROM | EE_EMISSIVITY, word & 0xFF, word >> 8])
    r.bus.i2c_rdwr(i2c_msg.write(0x5A, [EEPROM | EE_EMISSIVITY, word & 0xFF, word >> 8, pec]))
    r.clock.sleep(0.005)
    assert r.sensor.emissivity() != pytest.approx(0.55, abs=1e-3)


def test_the_chip_nacks_while_busy_and_on_a_bad_write_pec():
    r = rig()
    no_wait = MLX90614(r.bus, 0x5A, sleep=lambda s: None)  # a driver that ignores EEBUSY
    with pytest.raises(OSError) as caught:
        no_wait.set_emissivity(0.9)
    assert caught.value.errno == errno.EREMOTEIO
    r.clock.sleep(0.01)
    with pytest.raises(OSError, match="PEC error"):
        r.bus.i2c_rdwr(i2c_msg.write(0x5A, [0x24, 0x00, 0x00, 0x00]))


def test_an_absent_address_nacks():
    r = rig()
    with pytest.raises(OSError) as caught:
        MLX90614(r.bus, 0x5B).object_temperature()
    assert caught.value.errno == errno.EREMOTEIO


@pytest.mark.parametrize("value", [0.05, 1.2])
def test_emissivity_outside_the_datasheet_range_is_refused(value):
    r = rig()
    with pytest.raises(ValueError, match=r"outside 0\.1 to 1\.0"):
        r.sensor.set_emissivity(value)
