"""MCP3208 sample windows: the datasheet's bits, the paced SPI message the kernel receives,
windows true to the waveform (through the core), faults, configuration, and the relay end to
end on a sampled motor."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import given
from hypothesis import strategies as st

from softrelay.config import load, parse
from softrelay.core import ProtectionCore, Quality, ThermalFlag
from softrelay.core.settings import ThermalSettings
from softrelay.field.spi.device import spi_bus_device
from softrelay.field.spi.mcp3208 import MCP3208, command, paced_delays, result
from softrelay.field.spi.port import (
    MAX_TRANSFERS,
    TRANSFER,
    SpidevPort,
    decode_message,
    spi_ioc_message,
)
from softrelay.relay.relay import Relay
from softrelay.sim.chip_faults import BusFaults
from softrelay.sim.chips.mcp3208 import MCP3208Twin
from softrelay.sim.plant import PlantModel
from softrelay.sim.spidev import SimulatedSpiDev

from support.configs import BASE, problems_of
from support.relays import running

VREF, APC = 3.3, 0.2  # V; A per count: 2047 counts of peak = 409 A peak, 289 A RMS


def twin_with(code_of_channel: dict[int, float]) -> MCP3208Twin:
    """A twin whose inputs sit at constant codes."""
    return MCP3208Twin({ch: (lambda t, c=c: (c + 0.5) / 4096 * VREF)
                        for ch, c in code_of_channel.items()}, VREF)


def test_the_command_bytes_are_those_of_datasheet_figure_6_1():
    assert command(0).hex() == "060000"
    assert command(1).hex() == "064000"
    assert command(4).hex() == "070000"
    assert command(7).hex() == "07c000"
    with pytest.raises(ValueError, match="channel 8"):
        command(8)


def test_the_twin_answers_null_bit_then_msb_first_then_lsb_first_then_zeros():
    twin = twin_with({3: 0xABC})
    answer = twin.transfer(list(command(3)))
    # byte 1: three high-impedance bits (read as 1), the null bit 0, B11..B8 = 0xA
    assert answer[1] == 0b1110_1010 and answer[2] == 0xBC
    assert result(bytes(answer)) == 0xABC
    longer = twin.transfer([*command(3), 0, 0])  # chip select held for 16 more clocks
    bits = "".join(f"{b:08b}" for b in longer)
    assert bits[11] == "0" and bits[12:24] == f"{0xABC:012b}"
    assert bits[24:35] == f"{0xABC:012b}"[::-1][1:]  # B1..B11, LSB first
    assert bits[35:] == "0" * 5


def test_a_missing_chip_is_caught_by_the_null_bit():
    with pytest.raises(OSError, match="null bit high"):
        result(b"\xff\xff\xff")


def test_spi_ioc_message_is_the_kernels_request_number():
    # linux/spi/spidev.h: _IOW('k', 0, char[N * 32])
    assert spi_ioc_message(1) == 0x40206B00
    assert spi_ioc_message(3) == 0x40606B00
    assert TRANSFER.size == 32 and MAX_TRANSFERS == 511
    with pytest.raises(ValueError, match="1 to 511"):
        spi_ioc_message(512)


@given(st.integers(1, 600), st.floats(10.0, 2000.0), st.floats(1.0, 10.0))
def test_paced_delays_keep_every_conversion_on_its_grid(n, interval, transfer):
    delays = paced_delays(n, interval, transfer)
    starts = np.concatenate([[0.0], np.cumsum(np.array(delays) + transfer)])
    grid = interval * np.arange(n + 1)
    assert np.max(np.abs(starts - grid)) <= 0.5 + 1e-9
    assert all(isinstance(d, int) and d >= 0 for d in delays)


class RecordingIoctl:
    """The kernel side, recorded: the structures of each SPI_IOC_MESSAGE, then the twin."""

    def __init__(self, simulated: SimulatedSpiDev) -> None:
        self.simulated = simulated
        self.messages: list[list[tuple]] = []

    def __call__(self, fd, request, buffer, mutate=True):
        self.messages.append(decode_message(request, buffer))
        return self.simulated.ioctl(fd, request, buffer, mutate)


def adc(inputs, **kwargs) -> tuple[MCP3208, SimulatedSpiDev, RecordingIoctl]:
    simulated = SimulatedSpiDev(MCP3208Twin(inputs, VREF), "ct1",
                                kwargs.pop("faults", None), overhead_us=2.0)
    recorder = RecordingIoctl(simulated)
    options = {"amps_per_count": APC, "overhead_us": 2.0} | kwargs
    port = SpidevPort(simulated, recorder, clock=simulated.wire_clock)
    return MCP3208(port, (0, 1, 2), **options), simulated, recorder


def sine(rms: float, angle: float, f: float = 50.0, h5: float = 0.0):
    """An input behind a CT: mid-rail bias plus the current, in volts."""
    per_amp = VREF / 4096 / APC

    def volts(t: float) -> float:
        w = 2 * math.pi * f * t + math.radians(angle)
        return VREF / 2 + math.sqrt(2) * rms * (math.cos(w) + h5 * math.cos(5 * w)) * per_amp

    return volts


def test_a_burst_is_one_paced_message_chip_select_released_between_conversions():
    driver, simulated, recorder = adc({0: sine(100, 0), 1: sine(100, -120), 2: sine(100, 120)})
    driver.window()
    (message,) = recorder.messages
    assert len(message) == 3 * 64  # 64 samples of three phases: one ioctl
    lengths = {m[2] for m in message}
    speeds = {m[3] for m in message}
    cs_change = [m[6] for m in message]
    assert lengths == {3} and speeds == {1_000_000}
    assert cs_change == [1] * (len(message) - 1) + [0]  # released between, not held after
    spacing = np.array([24 + m[4] + 2.0 for m in message])  # clocks + delay + overhead, us
    assert np.cumsum(spacing)[-1] == pytest.approx(192 * 1e6 / (50 * 32 * 3), abs=0.5)
    assert simulated.chip.conversions == 192 and simulated.messages == 1


@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_a_window_gives_the_true_rms_and_a_balanced_set_through_the_core(impl):
    """Three inputs converted in turn, with a 5th harmonic: the core (interleave 3) finds the
    true RMS, the fundamental and no negative sequence; an unbalance is measured."""
    inputs = {0: sine(100, 10, h5=0.2), 1: sine(100, -110, h5=0.2), 2: sine(70, 130, h5=0.2)}
    driver, _, _ = adc(inputs)
    window = driver.window()
    core = ProtectionCore([ThermalSettings(i_b=100, t_heat=60, t_cool=180,
                                           input_mode="samples")],
                          window_length=64, samples_per_cycle=32, implementation=impl)
    core.window[0] = window
    x = core.thermal_inputs
    x["quality"], x["stamp"], x["interleave"] = Quality.GOOD, 0.0, MCP3208.interleave
    core.scan(0.01, 0.01)
    out = core.thermal_outputs[0]
    assert out["i_max"] == pytest.approx(100 * math.sqrt(1 + 0.2**2), rel=0.005)
    # a balanced 100 A set plus phase C short by 30 A: I1 = 90 A, I2 = 10 A
    assert out["i1"] == pytest.approx(90.0, rel=0.005)
    assert out["i2"] == pytest.approx(10.0, abs=0.3)
    x["interleave"] = 0  # read as if sampled together: the phase error shows as unbalance
    core.scan(0.02, 0.01)
    assert abs(core.thermal_outputs[0]["i2"] - 10.0) > 1.0  # 8.5 A instead of 10


@pytest.mark.parametrize(
    ("fault", "error", "match"),
    [
        ("nack", OSError, "null bit high"),
        ("garbage", OSError, "null bit high"),
        ("sentinel", ValueError, "clipped"),
    ],
)
def test_faults_on_the_adc_are_refused_readings(fault, error, match):
    faults = BusFaults("spi", {"ct1": ("window",)}, 0.1)
    per_amp = VREF / 4096 / APC
    inputs = {ch: faults.waveform("ct1", "window", sine(100, -120 * ch), per_amp)
              for ch in range(3)}
    driver, _, _ = adc(inputs, faults=faults)
    faults.inject("ct1", fault)
    with pytest.raises(error, match=match):
        driver.window()
    faults.clear()
    assert driver.window().shape == (3, 64)


def test_an_input_over_range_is_clipped_not_a_low_rms():
    driver, _, _ = adc({0: sine(320, 0), 1: sine(100, -120), 2: sine(100, 120)})  # 452 A peak
    with pytest.raises(ValueError, match="clipped"):
        driver.window()


def test_a_burst_slower_than_its_nominal_is_refused_and_the_overhead_tunes_it():
    """A controller spending 80 us per transfer more than the driver allows for: the burst
    takes 55 ms and would span 2.8 cycles, not 2. Declaring the overhead puts it back on time."""
    inputs = {ch: sine(100, -120 * ch) for ch in range(3)}
    driver, simulated, _ = adc(inputs, overhead_us=0.0)
    simulated.overhead_us = 80.0
    with pytest.raises(ValueError, match=r"the burst took .* off its 40.00 ms"):
        driver.window()
    tuned, simulated, recorder = adc(inputs, overhead_us=80.0)
    simulated.overhead_us = 80.0
    assert tuned.window().shape == (3, 64)
    (message,) = recorder.messages  # on the wire: 192 conversions in 40 ms again
    assert sum(24 + m[4] + 80.0 for m in message) == pytest.approx(40_000.0, abs=0.5)


def oversleeping(seconds: float) -> None:
    """A busy CPU: every sleep wakes 30 ms late."""
    time.sleep(seconds + 0.030)


def test_the_twin_computing_late_does_not_stretch_its_burst():
    """The twin samples each conversion at its instant on the wire, so a message that ends
    late because the machine was busy still holds a 40 ms window: timed by the twin's wire
    clock the burst lasts 40 ms and is accepted (on a loaded test machine it was refused)."""
    inputs = {ch: sine(100, -120 * ch) for ch in range(3)}
    driver, simulated, _ = adc(inputs)
    simulated.sleep = oversleeping
    started = time.monotonic()
    assert driver.window().shape == (3, 64)
    assert time.monotonic() - started >= 0.065  # it did end late
    assert driver.last_duration == pytest.approx(0.040, abs=0.002)
    assert simulated.behind >= 0.025


def test_a_controller_that_runs_late_is_refused():
    """On a real spidev the port times the ioctl by the monotonic clock: a message that
    lasts 70 ms instead of 40 does not hold two cycles and its window is refused."""
    inputs = {ch: sine(100, -120 * ch) for ch in range(3)}
    simulated = SimulatedSpiDev(MCP3208Twin(inputs, VREF), "ct1", overhead_us=2.0,
                                sleep=oversleeping)
    driver = MCP3208(SpidevPort(simulated, simulated.ioctl), (0, 1, 2), amps_per_count=APC,
                     overhead_us=2.0)
    with pytest.raises(ValueError, match=r"the burst took .* off its 40.00 ms"):
        driver.window()


# ---------------------------------------------------------------- configuration, end to end

ADC_BUS = """
  - name: spi0
    kind: spi
    simulated: true
    sensors:
      - {name: ct1, chip: mcp3208, device: 0, channels: [0, 1, 2], amps_per_count: 0.2,
         simulate: {ch0: motor1.current.a, ch1: motor1.current.b, ch2: motor1.current.c}}
"""


def sampled(text: str = BASE) -> str:
    """The fast plant with motor1's currents sampled by an MCP3208 instead of metered."""
    text = text.replace("buses:\n", "buses:" + ADC_BUS, 1)
    text = text.replace("signals:\n", "signals:\n  - {name: m1.win, bus: spi0, address: "
                        "ct1.window, poll: 0.05, unit: A}\n", 1)
    old = "    currents: [m1.ia, m1.ib, m1.ic]\n    angles: [m1.aa, m1.ab, m1.ac]\n"
    assert old in text
    text = text.replace(old, "    samples: m1.win\n")
    return text.replace("stale_limit: 0.5}", "stale_limit: 0.5, input_mode: samples}", 1)


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        ("samples: m1.win", "samples: m1.ia", "points[0].samples",
         "'m1.ia' is not a sample window"),
        ("samples: m1.win", "samples: m1.win\n    currents: [m1.ia, m1.ib, m1.ic]",
         "points[0]", "reads 'currents' or 'samples' (one of them)"),
        ("phases: [b1.ta,", "phases: [m1.win,", "points[1].phases[0]",
         "'m1.win' is a sample window"),
        ("amps_per_count: 0.2,", "amps_per_count: 0.2, max_speed_hz: 100000,",
         "buses[0].sensors[0].max_speed_hz", "a conversion takes 240.0 us"),
        ("plant:\n", "sampling: {cycles: 6}\nplant:\n", "buses[0].sensors[0].device",
         "3 x 192 conversions exceeds the 511 transfers"),
        ("ch2: motor1.current.c}", "ch5: motor1.current.c}", "buses[0].sensors[0].simulate.ch5",
         "not an input of this ADC (channels ch0, ch1, ch2)"),
        ("channels: [0, 1, 2]", "channels: [0, 1, 1]", "buses[0].sensors[0]",
         "three distinct inputs"),
        ("device: 0,", "device: 0, mode: 1,", "buses[0].sensors[0]",
         "a MCP3208 works in SPI modes 0 and 3, not 1"),
        ("device: 0,", "device: 0, max_speed_hz: 3000000,", "buses[0].sensors[0]",
         "a MCP3208 is clocked at 2000000 Hz at most"),
        ("plant:\n", "plant:\n  faults: [{bus: spi0, address: ct1, kind: stuck}]\n",
         "plant.faults[0].address", "a frozen ADC input is a DC level"),
    ],
)
def test_sampled_configurations_are_checked(old, new, path, reason):
    text = sampled()
    assert old in text, old
    found = problems_of(text.replace(old, new, 1))
    assert any(f": {path}: " in f and reason in f for f in found), found


def test_the_configured_mode_and_clock_reach_the_chip():
    config = parse(sampled().replace("device: 0,", "device: 0, mode: 3, max_speed_hz: 1600000,"))
    plant = PlantModel(config.plant, lambda name: False)
    device = spi_bus_device(config.buses[0], plant, config.sampling)
    device.open()
    port = device.readers["ct1.window"].__self__.port
    assert (port.mode, port.max_speed_hz) == (3, 1_600_000)
    (window, quality), = device.read(["ct1.window"])
    assert quality == Quality.GOOD and window.shape == (3, 64)


@pytest.mark.e2e
def test_the_relay_protects_a_motor_from_its_sampled_currents(tmp_path):
    """motor1 at 100 A, then 200 A from 1 s (T+ 2 s, trip 1.2): the currents seen through
    the ADC are the plant's, balanced, and the motor trips when the replica says it must:
    theta = 1 - e^{-1/2} = 0.39 at 1 s, then 4 - 3.61 e^{-(t-1)/2} reaches 1.2 at 1.51 s.

    (The simulated controller spends 2 us per transfer that the configuration does not declare:
    the window spans 1 % more than two cycles, which reads about 0.4 % high and 0.5 % I2.)"""
    path = tmp_path / "sampled.yaml"
    path.write_text(sampled().replace("STATE_DIR", str(tmp_path)))
    config = load(path)
    relay = Relay(config, str(path), factory=MockFactory())
    readings = []
    relay.start()
    started = time.monotonic()
    try:
        while time.monotonic() - started < 4.0:
            relay.loop.step()
            out = relay.core.thermal_outputs[0]
            if relay.core.thermal_inputs["quality"][0] == Quality.GOOD:
                readings.append((time.monotonic() - started, out["i_max"], out["i2"]))
            if out["flags"] & ThermalFlag.TRIP:
                break
    finally:
        relay.stop()
    assert readings, "no good window reached the core"
    # before the step at 1 s (of plant time, which leads the test's clock a little)
    early = [(i, i2) for t, i, i2 in readings if 0.3 < t < 0.7]
    assert early and all(i == pytest.approx(100.0, rel=0.01) and i2 < 1.0 for i, i2 in early)
    assert relay.core.thermal_outputs["flags"][0] & ThermalFlag.TRIP, "no trip"
    tripped_at = readings[-1][0]  # the plant's clock starts a little before the test's
    assert 1.51 - 0.3 < tripped_at < 1.51 + 0.3


ADC_FAULTS = [("nack", 1.0, 1.5), ("garbage", 2.5, 3.0), ("sentinel", 4.0, 4.5)]


@pytest.mark.e2e
def test_adc_faults_end_to_end_freeze_the_replica_without_a_trip(tmp_path):
    """A dead chip, corrupted transfers and a broken input, one after the other: each makes
    motor1's input faulted within two polls (a 40 ms burst every 50 ms), theta holds, nothing
    trips, the scan keeps its period, and good windows return after each fault."""
    faults = ", ".join(f"{{bus: spi0, address: ct1, kind: {k}, start: {a}, stop: {b}}}"
                       for k, a, b in ADC_FAULTS)
    text = sampled().replace("load_profile: [[0, 1.0], [1, 2.0], [1000, 2.0]]",
                             "load_profile: [[0, 1.0], [1000, 1.0]]")
    text = text.replace("plant:\n", f"plant:\n  faults: [{faults}]\n", 1)
    path = tmp_path / "adc_faults.yaml"
    path.write_text(text.replace("STATE_DIR", str(tmp_path)))
    flagged: list[float] = []
    theta: list[tuple[float, float, bool]] = []
    tripped = False
    with running(path) as relay:
        started, scans0 = time.monotonic(), relay.loop.stats.scans
        while (now := time.monotonic() - started) < 5.0:
            relay.loop.step()
            out = relay.core.thermal_outputs[0]
            fault = bool(out["flags"] & ThermalFlag.INPUT_FAULT)
            if fault and now > 0.5:
                flagged.append(now)
            theta.append((now, float(out["theta"]), fault))
            tripped |= bool(out["flags"] & ThermalFlag.TRIP)
    elapsed, scans = time.monotonic() - started, relay.loop.stats.scans - scans0
    assert not tripped
    assert scans >= 0.5 * elapsed / relay.config.scan.period, (scans, elapsed)
    poll, early, slack = 0.05, 0.3, 0.35  # the plant's clock leads the test's a little
    for k, (kind, start, stop) in enumerate(ADC_FAULTS):
        until = ADC_FAULTS[k + 1][1] - early if k + 1 < len(ADC_FAULTS) else stop + 1.0
        inside = [t for t in flagged if start - early <= t < until]
        assert inside, f"{kind}: never flagged"
        assert inside[0] <= start + 2 * poll + slack, (kind, inside[0])
        # the bus backs off while every read fails (reads 0.1, 0.2, 0.4 s apart ...): a fault
        # of 0.5 s is seen to end up to 0.4 s late
        assert inside[-1] <= stop + 0.4 + poll + slack, (kind, inside[-1])
    # theta frozen while faulted: no step between consecutive faulted scans
    frozen = [abs(b[1] - a[1]) for a, b in itertools.pairwise(theta) if a[2] and b[2]]
    assert frozen and max(frozen) == 0.0
