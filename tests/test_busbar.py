"""Busbar phase comparator behaviour, on both cores."""

from __future__ import annotations

import numpy as np
import pytest

from softrelay.core import (
    BusbarFlag,
    BusbarSettings,
    ChannelFault,
    PhasePair,
    ProtectionCore,
    Quality,
)

from support.core import set_temperatures

F = BusbarFlag
CF = ChannelFault
# Prompt elements: no pickup delays, and a filter that follows a steady reading at once.
QUIET = dict(pickup_warning=0.0, pickup_critical=0.0, pickup_imbalance=0.0, pickup_rate=0.0,
             pickup_joint=0.0, kalman_q=1.0)
# No pickup delays, and a filter that smooths noise as in service (for spike tests).
SMOOTH = {**QUIET, "kalman_q": 1e-4}


def busbar(impl: str, n: int = 1, **overrides) -> ProtectionCore:
    return ProtectionCore(busbar=[BusbarSettings(**overrides)] * n, implementation=impl)


def feed(core: ProtectionCore, temps, start: float, scans: int, dt: float = 1.0,
         current=None, noise: float = 0.0, seed: int = 1) -> float:
    """``scans`` scans, each with a fresh sample of ``temps`` (+ noise); returns the end time."""
    rng = np.random.default_rng(seed)
    t = start
    temps = np.asarray(temps, dtype=float)
    for _ in range(scans):
        t += dt
        set_temperatures(core, temps + rng.normal(0.0, noise, temps.shape) if noise else temps,
                         now=t)
        if current is not None:
            core.busbar_inputs["current"] = current
        core.scan(t, dt)
    return t


def flags(core: ProtectionCore) -> BusbarFlag:
    return BusbarFlag(int(core.busbar_outputs["flags"][0]))


# ---------------------------------------------------------------- smoothing

@pytest.mark.e2e
def test_kalman_smoothing_reduces_noise_and_tracks_a_ramp_without_lag(impl):
    sigma, rate_c_per_min = 0.5, 2.0
    core = busbar(impl, **{**QUIET, "kalman_r": sigma, "kalman_q": 1e-5})
    rng = np.random.default_rng(5)
    errors, rates = [], []
    for k in range(1, 601):  # 10 minutes at 1 s
        truth = 40.0 + rate_c_per_min * k / 60.0
        temps = np.array([truth, truth, truth, 25.0]) + rng.normal(0.0, sigma, 4)
        set_temperatures(core, temps, now=float(k))
        core.scan(float(k), 1.0)
        if k > 300:
            errors.append(core.busbar_outputs["level"][0, 0] - truth)
            rates.append(core.busbar_outputs["rate"][0, 0])
    errors = np.array(errors)
    assert abs(errors.mean()) < 0.1, "the level lags the ramp"
    assert errors.std() < 0.4 * sigma, "the noise is not smoothed"
    assert np.mean(rates) == pytest.approx(rate_c_per_min, abs=0.2)


# ---------------------------------------------------------------- elements

def test_warning_and_critical_on_the_largest_rise_after_their_pickup_delays(impl):
    core = busbar(impl, pickup_warning=5.0, pickup_critical=3.0)
    history = []
    t = 0.0
    for _ in range(6):  # rise 35 C from the first sample on
        t = feed(core, (60.0, 30.0, 30.0, 25.0), t, 1)
        history.append(flags(core) & (F.WARNING | F.CRITICAL))
    # Critical once 3 s have accumulated (scan 3), warning once 5 s have (scan 5), not before.
    assert history[:5] == [F(0), F(0), F.CRITICAL, F.CRITICAL, F.WARNING | F.CRITICAL]
    assert core.busbar_outputs["max_rise"][0] == pytest.approx(35.0)
    assert core.busbar_outputs["hottest_phase"][0] == 1


def test_warning_drops_out_only_below_the_hysteresis_band(impl):
    core = busbar(impl, hyst_delta=1.0, **QUIET)
    t = feed(core, (41.0, 39.0, 39.0, 25.0), 0.0, 5)
    assert F.WARNING in flags(core)
    t = feed(core, (39.5, 39.0, 39.0, 25.0), t, 10)  # rise 14.5: inside the band
    assert F.WARNING in flags(core)
    feed(core, (38.9, 38.0, 38.0, 25.0), t, 10)  # rise 13.9: below 15 - 1
    assert F.WARNING not in flags(core)


@pytest.mark.parametrize(
    ("temps", "pair"),
    [
        ((50.0, 44.0, 48.0, 30.0), PhasePair.AB),
        ((47.0, 50.0, 44.0, 30.0), PhasePair.BC),
        ((44.0, 47.0, 50.0, 30.0), PhasePair.CA),
        ((50.0, 47.0, 44.0, 30.0), PhasePair.CA),
    ],
)
def test_phase_imbalance_names_the_pair(impl, temps, pair):
    core = busbar(impl, **QUIET)
    feed(core, temps, 0.0, 2)
    assert F.IMBALANCE in flags(core)
    assert core.busbar_outputs["phase_delta"][0] == pytest.approx(6.0)
    assert core.busbar_outputs["imbalance_pair"][0] == pair


def test_no_imbalance_below_the_limit(impl):
    core = busbar(impl, **QUIET)
    feed(core, (34.0, 30.0, 31.0, 25.0), 0.0, 5)
    assert F.IMBALANCE not in flags(core)
    assert core.busbar_outputs["imbalance_pair"][0] == PhasePair.AB


@pytest.mark.e2e
def test_rate_of_rise_alarm(impl):
    core = busbar(impl, rate_limit=3.0, pickup_rate=30.0, kalman_q=1e-4, kalman_r=0.2)
    t = 0.0
    for k in range(240):  # 5 C/min on phase B for 4 minutes
        t = feed(core, (30.0, 30.0 + 5.0 * k / 60.0, 30.0, 25.0), t, 1)
    assert F.RATE in flags(core)
    assert core.busbar_outputs["rate"][0, 1] == pytest.approx(5.0, abs=0.5)
    for _ in range(600):  # then steady
        t = feed(core, (30.0, 50.0, 30.0, 25.0), t, 1)
    assert F.RATE not in flags(core)


# ---------------------------------------------------------------- sensor faults

FAULTS = {
    "nan": (lambda x: x["temp"].__setitem__((0, 0), np.nan), CF.NAN),
    # the device's no-reading value is named as such, not as a reading out of range
    "sentinel": (lambda x: x["temp"].__setitem__((0, 0), -32768.0), CF.SENTINEL),
    # as a field reader delivers it: NaN with the SENTINEL quality, not a NaN reading
    "image_sentinel": (lambda x: (x["temp"].__setitem__((0, 0), np.nan),
                                  x["quality"].__setitem__((0, 0), Quality.SENTINEL)),
                       CF.SENTINEL),
    "above_range": (lambda x: x["temp"].__setitem__((0, 0), 130.0), CF.RANGE),
    "io_error": (lambda x: x["quality"].__setitem__((0, 0), Quality.IO_ERROR), CF.IO),
    "image_out_of_range": (lambda x: x["quality"].__setitem__((0, 0), Quality.OUT_OF_RANGE),
                           CF.RANGE),
    "image_stale": (lambda x: x["quality"].__setitem__((0, 0), Quality.STALE), CF.STALE),
    "old_stamp": (lambda x: x["stamp"].__setitem__((0, 0), -100.0), CF.STALE),
}


@pytest.mark.e2e
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_faulted_hot_channel_is_flagged_excluded_and_operates_nothing(impl, fault):
    """Phase A reads 70 C (45 over ambient, above critical) but its reading is bad; B and C
    are healthy and below every threshold."""
    inject, expected = FAULTS[fault]
    core = busbar(impl, **QUIET)
    t = 0.0
    for _ in range(5):
        t += 1.0
        set_temperatures(core, (70.0, 35.0, 36.0, 25.0), now=t)
        inject(core.busbar_inputs)
        core.scan(t, 1.0)
    out = core.busbar_outputs
    assert out["fault"][0, 0] == expected
    assert out["fault"][0, 1:].tolist() == [0, 0, 0]
    assert F.SENSOR_FAULT in flags(core)
    assert not flags(core) & (F.WARNING | F.CRITICAL | F.IMBALANCE | F.RATE | F.JOINT)
    assert np.isnan(out["level"][0, 0]) and np.isnan(out["rise"][0, 0])
    assert out["max_rise"][0] == pytest.approx(11.0)
    assert out["hottest_phase"][0] == 3
    assert out["phase_delta"][0] == pytest.approx(1.0)


def test_an_alarm_drops_when_its_only_hot_channel_fails(impl):
    core = busbar(impl, **QUIET)
    t = feed(core, (70.0, 40.0, 41.0, 25.0), 0.0, 3)
    assert F.CRITICAL in flags(core)
    feed(core, (np.nan, 40.0, 41.0, 25.0), t, 1)
    assert F.CRITICAL not in flags(core) and F.WARNING in flags(core)


def test_a_failed_ambient_falls_back_and_the_rises_still_alarm(impl):
    """The ambient reads -32768: rises are taken over ambient_fallback (40 C), flagged, and
    warning / critical go on operating on them; the phase comparison needs no ambient."""
    core = busbar(impl, **QUIET)
    t = feed(core, (70.0, 40.0, 41.0, 25.0), 0.0, 3)
    feed(core, (70.0, 40.0, 41.0, -32768.0), t, 2)
    out = core.busbar_outputs
    assert F.AMBIENT_FAULT in flags(core) and F.SENSOR_FAULT in flags(core)
    assert F.AMBIENT_FALLBACK in flags(core)
    assert out["fault"][0, 3] == CF.SENTINEL and np.isnan(out["level"][0, 3])
    np.testing.assert_allclose(out["rise"][0], [30.0, 0.0, 1.0])
    assert out["max_rise"][0] == pytest.approx(30.0)
    assert F.WARNING in flags(core) and F.CRITICAL in flags(core)
    assert F.IMBALANCE in flags(core) and out["imbalance_pair"][0] == PhasePair.AB
    assert F.MEASUREMENT_LOST not in flags(core)  # every phase is still protected
    feed(core, (70.0, 40.0, 41.0, 25.0), t + 2.0, 2)  # the ambient returns
    assert not flags(core) & (F.AMBIENT_FAULT | F.AMBIENT_FALLBACK)
    assert out["max_rise"][0] == pytest.approx(45.0)


def test_the_issues_hot_bus_with_a_lost_ambient_alarms(impl):
    """Issue 13's case: phases at 108-110 C and the ambient reading -32768 gave only
    SENSOR_FAULT | AMBIENT_FAULT. With the defaults (pickup delays included) it alarms critical,
    on the fallback rises and on the absolute limits."""
    core = busbar(impl)
    t = feed(core, (108.0, 109.0, 110.0, -32768.0), 0.0, 12)
    got = flags(core)
    assert got & F.CRITICAL and got & F.WARNING
    assert got & F.TEMP_CRITICAL and got & F.TEMP_WARNING
    assert got & F.AMBIENT_FALLBACK and got & F.AMBIENT_FAULT
    assert core.busbar_outputs["fault"][0, 3] == CF.SENTINEL
    # the same bus with the fallback assumed as hot as the bars: the absolute limits alone
    core = busbar(impl, ambient_fallback=105.0)
    feed(core, (108.0, 109.0, 110.0, -32768.0), 0.0, 12)
    assert not flags(core) & (F.WARNING | F.CRITICAL)
    assert flags(core) & F.TEMP_CRITICAL and flags(core) & F.TEMP_WARNING
    assert t == 12.0


def test_absolute_limits_operate_whatever_the_ambient(impl):
    """A hot room: the bars at 100 C over a 95 C ambient rise only 5 C, yet 100 C is past the
    90 C warning_abs; critical_abs (105 C) waits, and each level has its pickup delay and the
    hyst_delta dropout."""
    core = busbar(impl, pickup_warning=5.0, pickup_critical=2.0, hyst_delta=2.0, kalman_q=1.0)
    t = feed(core, (100.0, 99.0, 99.5, 95.0), 0.0, 4)
    assert not flags(core) & F.TEMP_WARNING  # 4 s of the 5 s pickup
    t = feed(core, (100.0, 99.0, 99.5, 95.0), t, 1)
    assert flags(core) & F.TEMP_WARNING and not flags(core) & (F.WARNING | F.TEMP_CRITICAL)
    t = feed(core, (106.0, 99.0, 99.5, 95.0), t, 2)
    assert flags(core) & F.TEMP_CRITICAL
    t = feed(core, (104.0, 99.0, 99.5, 95.0), t, 1)  # within hyst_delta: stays
    assert flags(core) & F.TEMP_CRITICAL
    t = feed(core, (102.0, 99.0, 99.5, 95.0), t, 1)  # below 105 - 2: drops
    assert not flags(core) & F.TEMP_CRITICAL and flags(core) & F.TEMP_WARNING
    feed(core, (87.0, 86.0, 86.0, 80.0), t, 3)  # a step the filter takes in 3 samples
    assert not flags(core) & (F.TEMP_WARNING | F.TEMP_CRITICAL)


def test_absolute_limits_switched_off_never_operate(impl):
    core = busbar(impl, warning_abs=None, critical_abs=None, **QUIET)
    assert np.isnan(core.busbar_settings["warning_abs"][0])
    feed(core, (120.0, 120.0, 120.0, 110.0), 0.0, 5)
    assert not flags(core) & (F.TEMP_WARNING | F.TEMP_CRITICAL)


def test_an_excluded_hot_channel_never_feeds_an_absolute_limit(impl):
    """Phase A's sensor fails reading 124 C (in range, but erratic-free: I/O error quality);
    the others are cool: no absolute alarm."""
    core = busbar(impl, **QUIET)
    t = 0.0
    for _ in range(4):
        t += 1.0
        set_temperatures(core, (124.0, 40.0, 41.0, 25.0), now=t)
        core.busbar_inputs["quality"][0, 0] = Quality.IO_ERROR
        core.scan(t, 1.0)
    assert not flags(core) & (F.TEMP_WARNING | F.TEMP_CRITICAL)
    assert core.busbar_outputs["fault"][0, 0] == CF.IO


def test_a_phase_excluded_for_the_delay_is_measurement_lost(impl):
    """Phase B fails (I/O error): MEASUREMENT_LOST once it has been excluded for
    input_loss_delay without a break, not before; a good reading clears it at once; a lost
    ambient alone never raises it."""
    core = busbar(impl, input_loss_delay=3.0, **QUIET)
    t = feed(core, (40.0, 41.0, 40.5, 25.0), 0.0, 2)
    seen = []
    for _ in range(5):
        t += 1.0
        set_temperatures(core, (40.0, 41.0, 40.5, 25.0), now=t)
        core.busbar_inputs["quality"][0, 1] = Quality.IO_ERROR
        core.scan(t, 1.0)
        seen.append(bool(flags(core) & F.MEASUREMENT_LOST))
    assert seen == [False, False, True, True, True]  # excluded 1, 2, 3 s ...
    t = feed(core, (40.0, 41.0, 40.5, 25.0), t, 1)
    assert not flags(core) & F.MEASUREMENT_LOST
    t = feed(core, (40.0, 41.0, 40.5, np.nan), t, 10)
    assert flags(core) & F.AMBIENT_FAULT and not flags(core) & F.MEASUREMENT_LOST
    # an outage broken by one good reading starts the delay again
    for quality in (Quality.STALE, Quality.STALE, Quality.GOOD, Quality.STALE, Quality.STALE):
        t += 1.0
        set_temperatures(core, (40.0, 41.0, 40.5, 25.0), now=t)
        core.busbar_inputs["quality"][0, 2] = quality
        core.scan(t, 1.0)
    assert not flags(core) & F.MEASUREMENT_LOST


def test_stale_only_after_the_stale_limit(impl):
    core = busbar(impl, stale_limit=10.0, **QUIET)
    set_temperatures(core, (40.0, 40.0, 40.0, 25.0), now=1.0)
    stale_from = None
    for k in range(1, 15):
        core.scan(float(k), 1.0)
        if core.busbar_outputs["fault"][0, 0] & CF.STALE and stale_from is None:
            stale_from = k
    assert stale_from == 12  # last sample at 1 s, older than 10 s from 12 s on


def test_a_channel_recovers_after_its_fault_clears(impl):
    core = busbar(impl, **QUIET)
    t = feed(core, (np.nan, 40.0, 40.0, 25.0), 0.0, 3)
    assert core.busbar_outputs["fault"][0, 0] == CF.NAN
    feed(core, (41.0, 40.0, 40.0, 25.0), t, 1)
    assert core.busbar_outputs["fault"][0, 0] == 0
    assert core.busbar_outputs["level"][0, 0] == pytest.approx(41.0)


@pytest.mark.e2e
def test_frequent_spikes_make_a_channel_erratic_and_never_alarm(impl):
    core = busbar(impl, kalman_r=0.5, **SMOOTH)
    t = feed(core, (40.0, 40.0, 40.0, 28.0), 0.0, 30, noise=0.3)
    for k in range(20):  # EMI: every other sample jumps 25 C
        spike = 25.0 if k % 2 else 0.0
        t = feed(core, (40.0 + spike, 40.0, 40.0, 28.0), t, 1, noise=0.3, seed=k)
        assert not flags(core) & (F.WARNING | F.CRITICAL | F.IMBALANCE | F.RATE)
    assert core.busbar_outputs["fault"][0, 0] & CF.ERRATIC
    assert F.SENSOR_FAULT in flags(core)
    for k in range(40):  # quiet again: the score decays and the channel returns
        t = feed(core, (40.0, 40.0, 40.0, 28.0), t, 1, noise=0.3, seed=100 + k)
    assert core.busbar_outputs["fault"][0, 0] == 0


def test_an_isolated_spike_is_rejected_without_a_fault(impl):
    core = busbar(impl, kalman_r=0.5, **SMOOTH)
    t = feed(core, (40.0, 40.0, 40.0, 28.0), 0.0, 30, noise=0.3)
    t = feed(core, (90.0, 40.0, 40.0, 28.0), t, 1)
    assert core.busbar_outputs["level"][0, 0] == pytest.approx(40.0, abs=0.5)
    assert core.busbar_outputs["fault"][0, 0] == 0
    assert not flags(core) & (F.WARNING | F.CRITICAL | F.IMBALANCE)


def test_a_real_step_is_taken_after_three_samples(impl):
    core = busbar(impl, kalman_r=0.5, **SMOOTH)
    t = feed(core, (40.0, 40.0, 40.0, 28.0), 0.0, 30, noise=0.3)
    t = feed(core, (75.0, 40.0, 40.0, 28.0), t, 2)
    assert F.CRITICAL not in flags(core)
    feed(core, (75.0, 40.0, 40.0, 28.0), t, 1)
    assert core.busbar_outputs["level"][0, 0] == pytest.approx(75.0)
    assert F.CRITICAL in flags(core)


# ---------------------------------------------------------------- joints

def test_one_hot_phase_under_balanced_load_points_at_a_joint(impl):
    core = busbar(impl, pickup_joint=10.0, pickup_warning=0.0, pickup_imbalance=0.0)
    feed(core, (35.0, 35.0, 43.0, 25.0), 0.0, 12, current=(300.0, 305.0, 298.0))
    out = core.busbar_outputs
    assert F.JOINT in flags(core)
    assert out["joint_phase"][0] == 3
    assert out["joint_index"][0, 2] > 1.5
    assert out["joint_index"][0, 0] == pytest.approx(out["joint_index"][0, 1], rel=0.1)


def test_a_phase_hot_for_its_current_is_not_a_joint(impl):
    """Phase C carries 10 % more current, so it runs 21 % warmer: expected, not a joint."""
    core = busbar(impl, **QUIET)
    feed(core, (35.0, 35.0, 37.1, 25.0), 0.0, 5, current=(300.0, 300.0, 330.0))
    assert F.JOINT not in flags(core)
    assert core.busbar_outputs["joint_index"][0, 2] == pytest.approx(1.0, rel=1e-6)


def test_no_joint_verdict_under_unbalanced_load_or_without_currents(impl):
    core = busbar(impl, 2, **QUIET)
    t = 0.0
    for _ in range(5):
        t += 1.0
        set_temperatures(core, (35.0, 35.0, 43.0, 25.0), now=t)
        core.busbar_inputs["current"][0] = (300.0, 300.0, 400.0)
        core.busbar_inputs["current"][1] = np.nan
        core.scan(t, 1.0)
    out = core.busbar_outputs
    assert not np.any(out["flags"] & F.JOINT)
    assert np.all(np.isnan(out["joint_index"]))
