"""Faults injected into simulated I2C and SPI buses: each reaches the reading as the same chip
failing on a real bus would make it, through the real drivers, and end to end in the relay."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from softrelay.config import parse
from softrelay.core import BusbarFlag, ChannelFault, Quality
from softrelay.field.i2c.device import i2c_bus_device
from softrelay.field.spi.device import spi_bus_device
from softrelay.sim.plant import PlantModel

from support.configs import BASE
from support.relays import running

BUSES = """
  - name: i2c1
    kind: i2c
    simulated: true
    timeout: 0.05
    sensors:
      - {name: ir_a, chip: mlx90614, address: 0x5a, emissivity: 0.55,
         simulate: {object: bus1.temp.a, ambient: bus1.temp.ambient}}
      - {name: ir_c, chip: mlx90614, address: 0x5c,
         simulate: {object: bus1.temp.c, ambient: bus1.temp.ambient}}
      - {name: amb, chip: tmp117, address: 0x48, simulate: {temperature: bus1.temp.ambient}}
  - name: spi0
    kind: spi
    simulated: true
    max_backoff: 0.2
    sensors:
      - {name: rtd_b, chip: max31865, device: 0, simulate: {temperature: bus1.temp.b}}
"""
# Busbar B read by an RTD on SPI, A and C by infrared sensors and the ambient by a TMP117 on
# I2C; the bar carries no bad joint, so any busbar alarm would be a false one.
READ_BY = {"bus1.temp.a,": "i2c1, address: ir_a.object,",
           "bus1.temp.b,": "spi0, address: rtd_b.temperature,",
           "bus1.temp.c,": "i2c1, address: ir_c.object,",
           "bus1.temp.ambient,": "i2c1, address: amb.temperature,"}


def chip_config(faults: str = "", stuck_after: int | None = None) -> str:
    text = BASE.replace("buses:\n", "buses:" + BUSES, 1)
    for plant_address, read in READ_BY.items():
        old = f"bus: plant, address: {plant_address}"
        assert old in text, old
        extra = f" stuck_after: {stuck_after}," if stuck_after else ""
        text = text.replace(old, f"bus: {read}{extra}")
    text = text.replace("      joint_fault: {phase: C, start: 0.5, extra_rise: 40.0, "
                        "develop_time: 1.0}\n", "")
    return text.replace("plant:\n", f"plant:\n  faults: [{faults}]\n", 1)


def devices(t: list[float]):
    config = parse(chip_config())
    plant = PlantModel(config.plant, lambda name: False, clock=lambda: t[0])
    i2c, spi = (next(b for b in config.buses if b.name == n) for n in ("i2c1", "spi0"))
    i2c_device, spi_device = i2c_bus_device(i2c, plant.read), spi_bus_device(spi, plant)
    i2c_device.open()
    spi_device.open()
    time.sleep(0.02)  # the TMP117's first conversion (15.5 ms)
    return i2c_device, spi_device, plant


I2C_ADDRESSES = ["ir_a.object", "ir_a.ambient", "ir_c.object", "amb.temperature"]


def qualities(readings) -> list[int]:
    return [q for _, q in readings]


G, IO, RANGE, SENTINEL = Quality.GOOD, Quality.IO_ERROR, Quality.OUT_OF_RANGE, Quality.SENTINEL


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("address", "kind", "want"),
    [
        ("ir_a", "nack", [IO, IO, G, G]),  # one chip does not acknowledge
        ("*", "nack", [IO, IO, IO, IO]),  # a bus held low
        ("ir_c", "slow", [G, G, IO, G]),  # clock stretched past the timeout
        ("ir_a", "garbage", [IO, IO, G, G]),  # the MLX90614's PEC catches it
        ("ir_a.object", "sentinel", [RANGE, G, G, G]),  # thermopile error flag
        ("amb", "sentinel", [G, G, G, SENTINEL]),  # the TMP117's "no conversion" 8000h
    ],
)
def test_i2c_faults_fail_the_chip_they_hit_as_a_real_bus_would(address, kind, want):
    i2c, _, _ = devices([50.0])
    i2c.inject(address, kind)
    started = time.monotonic()
    readings = i2c.read(I2C_ADDRESSES)
    assert qualities(readings) == want
    assert all(math.isnan(v) for v, q in readings if q != G)
    if kind == "slow":  # waited out the bus timeout, no longer
        assert 0.05 <= time.monotonic() - started < 0.5
    i2c.clear(address)
    assert qualities(i2c.read(I2C_ADDRESSES)) == [G, G, G, G]


def test_a_tmp117_has_no_checksum_so_garbage_reads_as_a_wrong_temperature():
    """What the datasheet implies and the busbar's range and erratic checks exist for."""
    i2c, _, plant = devices([50.0])
    i2c.inject("amb", "garbage")
    (value, quality), = i2c.read(["amb.temperature"])
    assert quality == G and abs(value - plant.read("bus1.temp.ambient")) > 0.01


@pytest.mark.parametrize(
    ("kind", "want", "why"),
    [
        ("nack", IO, "no chip answering: MISO reads 0xFF"),
        ("garbage", IO, "chip reset or transfer corrupted"),
        ("sentinel", RANGE, "RTD high threshold"),  # an open RTD
    ],
)
def test_spi_faults_are_caught_by_the_converters_own_checks(kind, want, why):
    _, spi, _ = devices([50.0])
    spi.inject("rtd_b", kind)
    (value, quality), = spi.read(["rtd_b.temperature"])
    assert quality == want and math.isnan(value) and why in spi.last_error
    spi.clear("rtd_b")
    (_, quality), = spi.read(["rtd_b.temperature"])
    assert quality == G  # the driver rewrote the configuration it found lost


def test_stuck_and_noisy_act_on_the_sensing_element():
    t = [50.0]
    i2c, spi, plant = devices(t)
    i2c.inject("ir_c.object", "stuck")
    spi.inject("*", "noisy", sigma=3.0)
    frozen, noisy, truth = [], [], []
    for step in range(40):
        t[0] = 50.0 + 0.5 * step  # the plant's temperatures move (sensor noise 0.1 C)
        frozen.append(i2c.read(["ir_c.object"])[0][0])
        noisy.append(spi.read(["rtd_b.temperature"])[0][0] - plant.read("bus1.temp.b"))
        truth.append(plant.read("bus1.temp.c"))
    assert len(set(frozen)) == 1 and len(set(np.round(truth, 2))) > 10
    assert 2.0 < np.std(noisy) < 4.5


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("{bus: spi0, address: rtd_b, kind: slow}",
         "no 'slow' on an SPI bus: the SPI master clocks every bit"),
        ("{bus: spi0, address: '*', kind: refused}", "no 'refused' on an SPI bus"),
        ("{bus: spi0, address: rtd_x, kind: nack}", "no sensor 'rtd_x' on this bus"),
    ],
)
def test_faults_a_bus_cannot_have_are_refused_with_the_reason(fault, reason):
    from support.configs import problems_of

    found = problems_of(chip_config(fault))
    assert len(found) == 1 and reason in found[0], found


# ---------------------------------------------------------------- end to end

POLL = 0.05
FAULTS = [  # (fault, channel, bit, start, stop): plant seconds after the relay starts
    ("{bus: i2c1, address: ir_a, kind: nack, start: 1.0, stop: 2.0}", 0, ChannelFault.IO,
     1.0, 2.0),
    ("{bus: spi0, address: rtd_b, kind: sentinel, start: 1.0, stop: 2.0}", 1, ChannelFault.RANGE,
     1.0, 2.0),
    ("{bus: spi0, address: '*', kind: garbage, start: 2.5, stop: 3.5}", 1, ChannelFault.IO,
     2.5, 3.5),
    ("{bus: i2c1, address: ir_c, kind: slow, start: 2.5, stop: 3.5}", 2, ChannelFault.IO,
     2.5, 3.5),
    ("{bus: i2c1, address: amb, kind: sentinel, start: 4.0, stop: 5.0}", 3,
     ChannelFault.SENTINEL, 4.0, 5.0),  # the TMP117's 8000h, named as such
    ("{bus: i2c1, address: ir_a.object, kind: stuck, start: 4.0, stop: 5.0}", 0,
     ChannelFault.STALE, 4.0, 5.0),
]
STUCK_AFTER = 6
EARLY = 0.3  #: s the plant's clock may lead the test's


@pytest.mark.e2e
def test_chip_faults_end_to_end_flag_the_channel_without_an_alarm(tmp_path):
    """Each scheduled fault raises its channel's fault bit within two polls (stuck: within
    its count of readings) and drops it after the fault clears; no busbar alarm, ever, and the
    scan keeps its period (a slow chip holds its bus worker, never the scan)."""
    text = chip_config(", ".join(f for f, *_ in FAULTS), STUCK_AFTER).replace(
        "STATE_DIR", str(tmp_path))
    path = tmp_path / "chips.yaml"
    path.write_text(text)
    seen: dict[int, list[float]] = {k: [] for k in range(len(FAULTS))}
    alarms = 0
    clean_before, first_clean = True, None
    with running(path) as relay:
        started, scans0 = time.monotonic(), relay.loop.stats.scans
        while (now := time.monotonic() - started) < 6.0:
            relay.loop.step()
            out = relay.core.busbar_outputs[0]
            alarms |= int(out["flags"]) & int(BusbarFlag.WARNING | BusbarFlag.CRITICAL
                                              | BusbarFlag.IMBALANCE | BusbarFlag.RATE)
            # from the first readings to the first fault: every channel clean (the first
            # readings come when the companion has them: waited for, not assumed by 0.3 s)
            if first_clean is None and not out["fault"].any():
                first_clean = now
            if first_clean is not None and now <= FAULTS[0][3] - EARLY:
                clean_before &= not out["fault"].any()
            for k, (_, channel, bit, start, stop) in enumerate(FAULTS):
                # near its own fault only (a nack of 1 s also ages the channel to stale); the
                # plant's clock starts in the companion a little before relay.start returns
                if out["fault"][channel] & bit and start - EARLY <= now <= stop + 1.0:
                    seen[k].append(now)
    elapsed, scans = time.monotonic() - started, relay.loop.stats.scans - scans0
    assert alarms == 0, BusbarFlag(alarms)
    assert first_clean is not None and first_clean < FAULTS[0][3] - EARLY, first_clean
    assert clean_before
    assert scans >= 0.5 * elapsed / relay.config.scan.period, (scans, elapsed)  # not held up
    slack = 0.35  # companion start-up and a loaded CI machine
    for k, (fault, _, _, start, stop) in enumerate(FAULTS):
        assert seen[k], f"never flagged: {fault}"
        first, last = seen[k][0], seen[k][-1]
        bound = (STUCK_AFTER + 2) * POLL if "stuck" in fault else 2 * POLL
        assert start - EARLY <= first <= start + bound + slack, (fault, first)
        # A bus whose every read fails backs off (0.1 s doubling, here up to 0.2 s): the SPI
        # bus has one chip, so its reads come 0.2 s apart while it fails.
        recovery = 0.2 + POLL if "spi0, address: '*'" in fault else 2 * POLL
        assert last <= stop + recovery + slack, (fault, last)
