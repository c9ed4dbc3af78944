"""TMP117 driver against its transaction-level twin on a simulated I2C bus."""

from __future__ import annotations

import pytest
from smbus2 import i2c_msg

from softrelay.field.i2c.tmp117 import LSB_C as LSB
from softrelay.field.i2c.tmp117 import TMP117, from_celsius, to_celsius
from softrelay.sim.chips.tmp117 import TMP117Twin
from softrelay.sim.smbus import SimulatedSMBus


@pytest.mark.parametrize(
    ("celsius", "word"),
    [(-256.0, 0x8000), (-25.0, 0xF380), (-0.125, 0xFFF0), (-0.0078125, 0xFFFF), (0.0, 0x0000),
     (0.0078125, 0x0001), (1.0, 0x0080), (25.0, 0x0C80), (100.0, 0x3200), (255.9921, 0x7FFF)],
)
def test_the_datasheets_table_of_temperature_codes(celsius, word):
    assert to_celsius(word) == pytest.approx(celsius, abs=1e-4)
    if celsius > -256.0:
        assert from_celsius(celsius) == word


def bus_with(twin: TMP117Twin) -> SimulatedSMBus:
    bus = SimulatedSMBus(1)
    bus.attach(twin.address, twin)
    return bus


def test_a_temperature_read_is_msb_first_after_the_pointer():
    t = [1.0]
    twin = TMP117Twin(0x48, lambda: 41.5, clock=lambda: t[0])
    bus = bus_with(twin)
    t[0] = 2.0
    sensor = TMP117(bus, 0x48)
    sensor.open()
    assert sensor.temperature() == pytest.approx(41.5, abs=LSB)
    read = i2c_msg.read(0x48, 2)
    bus.i2c_rdwr(i2c_msg.write(0x48, [0x00]), read)
    assert list(read) == [0x14, 0xC0]  # 41.5 / 0.0078125 = 5312 = 0x14C0



def test_before_the_first_conversion_it_is_no_reading_not_minus_256():
    t = [1.0]
    sensor = TMP117(bus_with(TMP117Twin(0x48, lambda: 30.0, clock=lambda: t[0])), 0x48)
    with pytest.raises(ValueError, match="no conversion yet"):
        sensor.temperature()
    t[0] = 1.02
    assert sensor.temperature() == pytest.approx(30.0, abs=LSB)


def test_a_wrong_chip_at_the_address_is_refused_when_opened():
    sensor = TMP117(bus_with(TMP117Twin(0x49, device_id=0x0116)), 0x49)
    with pytest.raises(OSError, match="is not a TMP117"):
        sensor.open()
