"""MAX31865 driver against its transfer-level twin; Callendar-Van Dusen both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softrelay.field.spi.max31865 import (
    MAX31865,
    RTDFaultError,
    resistance,
    temperature,
)
from softrelay.sim.chips.max31865 import MAX31865Twin
from softrelay.sim.spidev import SimulatedSpiDev


@pytest.mark.parametrize(
    ("celsius", "ohms"),
    [(-200.0, 18.52), (-100.0, 60.26), (0.0, 100.00), (100.0, 138.51), (200.0, 175.86),
     (400.0, 247.09), (850.0, 390.48)],
)
def test_the_pt100_table_of_iec_60751(celsius, ohms):
    assert resistance(celsius, 100.0) == pytest.approx(ohms, abs=0.01)
    assert temperature(ohms, 100.0) == pytest.approx(celsius, abs=0.03)


@given(st.floats(-200.0, 850.0))
def test_callendar_van_dusen_inverts_exactly(celsius):
    assert temperature(resistance(celsius, 1000.0), 1000.0) == pytest.approx(celsius, abs=1e-6)


def rig(celsius=65.0, r0=100.0, r_ref=430.0):
    twin = MAX31865Twin(lambda: celsius, r0, r_ref)
    spi = SimulatedSpiDev(twin)
    return twin, spi, MAX31865(spi, r0, r_ref)


def test_configured_then_read_at_the_converters_resolution():
    twin, spi, sensor = rig(65.0)
    sensor.open()
    assert spi.mode == 1
    assert twin.registers[0x00] == 0x80 | 0x40 | 0x10 | 0x01  # bias, auto, 3-wire, 50 Hz
    assert sensor.temperature() == pytest.approx(65.0, abs=0.03)  # 15 bits of 430 ohm


def test_a_pt1000_with_its_own_reference():
    _, _, sensor = rig(-35.5, r0=1000.0, r_ref=4300.0)
    sensor.open()
    assert sensor.temperature() == pytest.approx(-35.5, abs=0.03)


def test_an_open_rtd_is_a_named_fault_and_the_status_is_cleared():
    twin, _, sensor = rig()
    sensor.open()
    twin.open_rtd = True
    with pytest.raises(RTDFaultError, match=r"RTD high threshold, RTDIN- < 0\.85 VBIAS"):
        sensor.temperature()
    assert twin.registers[0x07] == 0
    twin.open_rtd = False
    assert sensor.temperature() == pytest.approx(65.0, abs=0.03)


def test_no_chip_or_the_wrong_spi_mode_is_refused_at_open():
    _, spi, sensor = rig()
    spi.mode = 0  # someone changed it after the driver set it
    with pytest.raises(OSError, match="configuration read back 0xff"):
        sensor.open()


SPI_BUS = """
  - name: rtd
    kind: spi
    bus: 0
    simulated: true
    sensors:
      - {name: rtd_a, chip: max31865, device: 0, simulate: {temperature: bus1.temp.a}}
      - {name: rtd_b, chip: max31865, device: 1, r0: 1000, r_ref: 4300,
         simulate: {temperature: bus1.temp.b}}
"""


def test_an_spi_bus_in_the_configuration_reads_the_plant_through_the_converters():
    from softrelay.config import parse
    from softrelay.field.spi.device import spi_bus_device
    from softrelay.sim.plant import PlantModel

    from support.configs import DEMO, problems_of

    text = DEMO.replace("buses:\n", "buses:" + SPI_BUS, 1).replace(
        "bus: plant, address: bus1.temp.a,", "bus: rtd, address: rtd_a.temperature,").replace(
        "bus: plant, address: bus1.temp.b,", "bus: rtd, address: rtd_b.temperature,")
    config = parse(text)
    plant = PlantModel(config.plant, lambda name: False, clock=lambda: 100.0)
    bus = next(b for b in config.buses if b.name == "rtd")
    device = spi_bus_device(bus, plant)
    device.open()
    assert device.opened == {"rtd_a": "MAX31865 configured", "rtd_b": "MAX31865 configured"}
    readings = device.read(["rtd_a.temperature", "rtd_b.temperature"])
    truth = plant.snapshot()
    assert readings[0][0] == pytest.approx(truth["bus1.temp.a"], abs=0.03)
    assert readings[1][0] == pytest.approx(truth["bus1.temp.b"], abs=0.03)
    found = problems_of(text.replace("device: 1,", "device: 0,"))
    assert "sensors 'rtd_a' and 'rtd_b' share chip select 0" in found[0]
    found = problems_of(text.replace("r_ref: 4300", "r_ref: 900"))
    assert "r_ref (900) must exceed r0 (1000)" in found[0]
