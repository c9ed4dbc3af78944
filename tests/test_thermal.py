"""Thermal replica (ANSI 49) behaviour against IEC 60255-8 closed forms, on both cores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from softrelay.core import Command, ProtectionCore, Quality, ThermalFlag, ThermalSettings
from softrelay.core.thermal_reference import sequence_from_magnitudes, sequence_from_phasors

from support.core import run_until, set_currents

F = ThermalFlag


def operate_time(current: float, preload: float, trip: float, tau: float) -> float:
    """IEC 60255-8: t = T ln[(I^2 - p^2) / (I^2 - theta_trip)], I and p in per-unit of I_B."""
    return tau * math.log((current**2 - preload**2) / (current**2 - trip))


def motor(**overrides) -> ThermalSettings:
    base = dict(i_b=100.0, t_heat=60.0, t_cool=180.0, theta_trip=1.0, theta_al1=0.6,
                theta_al2=0.8, theta_inhibit=0.7, theta_reset=0.5)
    base.update(overrides)
    return ThermalSettings(**base)


def flag(core: ProtectionCore, bit: ThermalFlag) -> np.ndarray:
    return (core.thermal_outputs["flags"] & bit) != 0


# ---------------------------------------------------------------- operate times

CASES = [
    (current, preload, trip)
    for trip in (1.0, 1.2)
    for current in (1.05, 1.1, 1.2, 1.5, 2.0, 3.0, 5.0, 10.0)
    for preload in (0.0, 0.5, 0.8, 0.9)
    if current**2 > trip
]


@pytest.mark.e2e
def test_operate_time_cold_and_hot_within_one_scan(impl):
    """Every (I, pre-load, trip level) case trips at the scan the closed form says, +- one."""
    dt, tau = 0.05, 60.0
    points = [
        motor(t_heat=tau, t_cool=3 * tau, theta_trip=trip, theta_al1=0.2, theta_al2=0.3,
              theta_inhibit=0.3, theta_reset=0.1, theta_initial=p * p, kst=1.0,
              start_current=20.0)
        for _, p, trip in CASES
    ]
    core = ProtectionCore(points, implementation=impl)
    # A running machine at its pre-load, then the overload: state says "running" already.
    core.thermal_state["running"] = 1
    set_currents(core, np.array([c for c, _, _ in CASES])[:, None] * 100.0, now=0.0)
    first = run_until(core, dt, 20000, lambda c: flag(c, F.TRIP))
    expected = np.array([operate_time(c, p, trip, tau) for c, p, trip in CASES])
    assert np.all(first > 0), "some cases never tripped"
    tripped_at = first * dt
    report = list(zip(CASES, tripped_at, expected, strict=True))
    assert np.all(tripped_at >= expected - 1e-9), report
    assert np.all(tripped_at - dt < expected + 1e-9), report


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("current", "tau", "published"),
    [(1.2, 60.0, 71.14), (2.0, 600.0, 172.61)],
    ids=["1.2IB-T1min", "2IB-T10min"],
)
def test_published_check_values(impl, current, tau, published):
    """Cold, trip at theta = 1.0: 1.2 I_B with T = 1 min trips at 71.14 s, 2 I_B with 10 min at
    172.61 s."""
    assert operate_time(current, 0.0, 1.0, tau) == pytest.approx(published, abs=0.005)
    dt = 0.01
    core = ProtectionCore([motor(t_heat=tau, t_cool=3 * tau, start_current=20.0)],
                          implementation=impl)
    set_currents(core, current * 100.0, now=0.0)
    core.scan(dt, dt)
    # Time to trip at the present current, after the first scan.
    assert core.thermal_outputs["time_to_trip"][0] == pytest.approx(published - dt, abs=0.006)
    first = run_until(core, dt, 40000, lambda c: flag(c, F.TRIP), t0=dt) + 1
    assert abs(first[0] * dt - published) <= dt + 0.005


@pytest.mark.e2e
def test_no_trip_and_infinite_time_when_current_is_below_the_trip_level(impl):
    core = ProtectionCore([motor(theta_trip=1.2)], implementation=impl)
    set_currents(core, 109.0, now=0.0)  # 1.09^2 = 1.19 < 1.2
    first = run_until(core, 1.0, 3000, lambda c: flag(c, F.TRIP))
    assert first[0] == 0
    assert core.thermal_outputs["theta"][0] == pytest.approx(1.09**2, rel=1e-6)
    assert math.isinf(core.thermal_outputs["time_to_trip"][0])
    assert core.thermal_outputs["capacity_used"][0] == pytest.approx(100 * 1.09**2 / 1.2)


# ---------------------------------------------------------------- cooling and inhibit

@pytest.mark.e2e
def test_cooling_below_a_tenth_of_base_current_uses_t_minus(impl):
    core = ProtectionCore(
        [motor(theta_initial=1.0, t_cool=600.0), motor(theta_initial=1.0, t_cool=600.0)],
        implementation=impl,
    )
    core.thermal_state["running"] = 1
    set_currents(core, np.array([[9.0], [11.0]]), now=0.0)  # 0.09 and 0.11 I_B
    run_until(core, 0.5, 600, lambda c: np.zeros(2, bool))
    theta = core.thermal_outputs["theta"]
    assert theta[0] == pytest.approx(math.exp(-300.0 / 600.0), rel=1e-9)  # stopped: T-
    s = 0.11**2
    assert theta[1] == pytest.approx(s + (1.0 - s) * math.exp(-300.0 / 60.0), rel=1e-9)  # T+
    assert not flag(core, F.RUNNING)[0] and flag(core, F.RUNNING)[1]


@pytest.mark.e2e
def test_start_inhibit_releases_after_the_cooling_time(impl):
    t_cool, inhibit, theta0 = 300.0, 0.7, 1.1
    core = ProtectionCore(
        [motor(theta_trip=1.2, theta_al2=1.0, theta_initial=theta0, theta_inhibit=inhibit,
               t_cool=t_cool)],
        implementation=impl,
    )
    set_currents(core, 0.0, now=0.0)
    dt = 0.1
    core.scan(dt, dt)
    assert flag(core, F.START_INHIBIT)[0]
    release = t_cool * math.log(theta0 / inhibit)
    assert core.thermal_outputs["time_to_start"][0] == pytest.approx(release - dt, rel=1e-9)
    first = run_until(core, dt, 100000, lambda c: ~flag(c, F.START_INHIBIT), t0=dt) + 1
    assert abs(first[0] * dt - release) <= dt
    assert core.thermal_outputs["time_to_start"][0] == 0.0


def test_no_start_inhibit_while_running(impl):
    core = ProtectionCore([motor(theta_initial=0.9)], implementation=impl)
    set_currents(core, 95.0, now=0.0)
    core.scan(0.1, 0.1)
    assert core.thermal_outputs["theta"][0] > 0.7
    assert flag(core, F.RUNNING)[0] and not flag(core, F.START_INHIBIT)[0]


# ---------------------------------------------------------------- starts

def test_kst_divides_the_current_during_a_start_then_stops_dividing(impl):
    tau, kst = 600.0, 2.0
    core = ProtectionCore(
        [motor(t_heat=tau, t_cool=2 * tau, kst=kst, start_current=1.5, start_time_max=20.0,
               theta_trip=1.2, theta_al2=1.0)],
        implementation=impl,
    )
    set_currents(core, 600.0, now=0.0)  # 6 I_B locked-rotor current
    run_until(core, 0.1, 50, lambda c: np.zeros(1, bool))
    assert flag(core, F.STARTING)[0]
    assert core.thermal_outputs["i_eq"][0] == pytest.approx(300.0)
    assert core.thermal_outputs["theta"][0] == pytest.approx(9.0 * (1 - math.exp(-5.0 / tau)))
    theta_started = core.thermal_outputs["theta"][0]
    set_currents(core, 100.0, now=5.0)  # up to speed: below start_current
    run_until(core, 0.1, 10, lambda c: np.zeros(1, bool), t0=5.0)
    assert not flag(core, F.STARTING)[0]
    assert core.thermal_outputs["i_eq"][0] == pytest.approx(100.0)
    expected = 1.0 + (theta_started - 1.0) * math.exp(-1.0 / tau)
    assert core.thermal_outputs["theta"][0] == pytest.approx(expected, rel=1e-9)
    assert core.thermal_state["start_count"][0] == 1


def test_a_stalled_start_heats_at_full_current_after_the_maximum_start_time(impl):
    core = ProtectionCore(
        [motor(t_heat=600.0, t_cool=1200.0, kst=3.0, start_current=1.5, start_time_max=2.0)],
        implementation=impl,
    )
    set_currents(core, 600.0, now=0.0)
    run_until(core, 0.1, 20, lambda c: np.zeros(1, bool))
    assert flag(core, F.STARTING)[0] and core.thermal_outputs["i_eq"][0] == pytest.approx(200.0)
    run_until(core, 0.1, 2, lambda c: np.zeros(1, bool), t0=2.0)
    assert not flag(core, F.STARTING)[0]
    assert core.thermal_outputs["i_eq"][0] == pytest.approx(600.0)


def test_a_new_start_is_counted_only_from_standstill(impl):
    core = ProtectionCore([motor(start_current=1.5)], implementation=impl)
    t = 0.0
    for amps in (0.0, 600.0, 100.0, 600.0, 0.0, 600.0):
        t += 1.0
        set_currents(core, amps, now=t)
        core.scan(t, 1.0)
    assert core.thermal_state["start_count"][0] == 2


# ---------------------------------------------------------------- sequences, K2, harmonics

def test_k2_weights_the_negative_sequence_of_an_unbalanced_set(impl):
    single_phasing = dict(amps=np.array([100.0, 100.0, 0.0]), angles=(0.0, 180.0, 0.0))
    core = ProtectionCore([motor(k2=3.0), motor(k2=0.0)], implementation=impl)
    set_currents(core, single_phasing["amps"], now=0.0, angles=single_phasing["angles"])
    core.scan(0.1, 0.1)
    out = core.thermal_outputs
    third = 100.0 / math.sqrt(3.0)
    assert out["i1"] == pytest.approx([third, third])
    assert out["i2"] == pytest.approx([third, third])
    assert out["i_eq"] == pytest.approx([math.sqrt(100.0**2 + 3.0 * third**2), 100.0])
    assert out["theta"][0] > out["theta"][1]


def test_reversed_rotation_is_all_negative_sequence(impl):
    core = ProtectionCore([motor()], implementation=impl)
    set_currents(core, 100.0, now=0.0, angles=(0.0, 120.0, -120.0))
    core.scan(0.1, 0.1)
    assert core.thermal_outputs["i1"][0] == pytest.approx(0.0, abs=1e-9)
    assert core.thermal_outputs["i2"][0] == pytest.approx(100.0)


@given(
    st.floats(1.0, 500.0), st.floats(-180.0, 180.0), st.floats(0.0, 300.0),
    st.floats(-180.0, 180.0),
)
@example(1.0, 151.0, 62.0, 151.0)  # collinear: a flat triangle whose Heron product rounds < 0
def test_closed_triangle_matches_phasors_when_there_is_no_zero_sequence(m1, a1, m2, a2):
    """Magnitudes alone give the phasors' I1 and I2 (positive sequence the larger)."""
    ia = m1 * complex(math.cos(math.radians(a1)), math.sin(math.radians(a1)))
    ib = m2 * complex(math.cos(math.radians(a2)), math.sin(math.radians(a2)))
    ic = -(ia + ib)
    phasors = np.array([[ia, ib, ic]])
    p1, p2 = sequence_from_phasors(np.abs(phasors), np.degrees(np.angle(phasors)))
    big, small = max(p1[0], p2[0]), min(p1[0], p2[0])
    i1, i2, is_open = sequence_from_magnitudes(np.abs(phasors))
    scale = abs(ia) + abs(ib)
    assert not is_open[0]
    assert i1[0] == pytest.approx(big, abs=1e-6 * scale)
    assert i2[0] == pytest.approx(small, abs=1e-6 * scale)


def test_magnitudes_that_cannot_close_a_triangle_give_the_conservative_bound(impl):
    core = ProtectionCore([motor(input_mode="magnitudes", k2=1.0)], implementation=impl)
    set_currents(core, np.array([100.0, 10.0, 10.0]), now=0.0)
    core.scan(0.1, 0.1)
    bound = math.sqrt((100.0**2 + 2 * 10.0**2) / 6.0)
    assert flag(core, F.TRIANGLE_OPEN)[0]
    assert core.thermal_outputs["i1"][0] == pytest.approx(bound)
    assert core.thermal_outputs["i2"][0] == pytest.approx(bound)


def test_harmonics_raise_the_true_rms_but_not_the_fundamental(impl):
    spc = 24
    core = ProtectionCore([motor(input_mode="samples")], window_length=2 * spc,
                          samples_per_cycle=spc, implementation=impl)
    wt = 2.0 * np.pi * np.arange(2 * spc) / spc
    for phase, shift in enumerate((0.0, -2 * np.pi / 3, 2 * np.pi / 3)):
        core.window[0, phase] = 100.0 * np.sqrt(2.0) * (
            np.cos(wt + shift) + 0.2 * np.cos(5 * (wt + shift)) + 0.1 * np.cos(11 * (wt + shift))
        )
    set_currents(core, 0.0, now=0.0)  # stamp and quality; magnitudes unused in samples mode
    core.scan(0.1, 0.1)
    out = core.thermal_outputs
    assert out["i_max"][0] == pytest.approx(100.0 * math.sqrt(1 + 0.2**2 + 0.1**2), rel=1e-9)
    assert out["i1"][0] == pytest.approx(100.0, rel=1e-9)
    assert out["i2"][0] == pytest.approx(0.0, abs=1e-6)
    assert out["i_eq"][0] == pytest.approx(out["i_max"][0])


@pytest.mark.parametrize("interleave", [0, 3, 4])
def test_phases_converted_in_turn_are_not_taken_for_unbalance(impl, interleave):
    """One ADC converting L1, L2, L3 in turn samples L2 a third of a sample after L1: about
    3.75 degrees at 32 samples a cycle, a false I2 of 3.7 % uncorrected. With the lag declared
    (``interleave``) a balanced load is balanced again, and a real unbalance is measured."""
    spc = 32
    core = ProtectionCore([motor(input_mode="samples")] * 2, window_length=2 * spc,
                          samples_per_cycle=spc, implementation=impl)
    n = np.arange(2 * spc)
    for phase, (amps, shift) in enumerate(((100.0, 0.0), (100.0, -120.0), (100.0, 120.0))):
        lag = phase / interleave if interleave else 0.0  # of a sample interval
        wt = 2.0 * np.pi * (n + lag) / spc
        core.window[0, phase] = amps * np.sqrt(2.0) * np.cos(wt + np.deg2rad(shift))
        # point 1: phase C at 80 A (I2 = 20/3 A)
        core.window[1, phase] = (80.0 if phase == 2 else amps) * np.sqrt(2.0) * np.cos(
            wt + np.deg2rad(shift))
    set_currents(core, 0.0, now=0.0)
    core.thermal_inputs["interleave"] = interleave
    core.scan(0.1, 0.1)
    out = core.thermal_outputs
    assert out["i2"][0] == pytest.approx(0.0, abs=1e-9)
    assert out["i1"][0] == pytest.approx(100.0, rel=1e-9)
    assert out["i2"][1] == pytest.approx(20.0 / 3.0, rel=1e-9)
    # the same interleaved window read as if sampled together: the false unbalance
    if interleave == 3:
        core.thermal_inputs["interleave"] = 0
        core.scan(0.2, 0.1)
        d = np.deg2rad(360.0 / (3 * spc))  # 3.75 degrees
        false_i2 = 100.0 / 3.0 * abs(1 + np.exp(1j * (2 * np.pi / 3 + d))
                                     + np.exp(1j * (4 * np.pi / 3 + 2 * d)))
        assert core.thermal_outputs["i2"][0] == pytest.approx(false_i2, rel=1e-9)
        assert false_i2 == pytest.approx(3.70, abs=0.01)


@pytest.mark.parametrize(
    ("window_length", "spc", "match"),
    [(40, 32, "whole number of cycles"), (16, 16, "at least 24")],
)
def test_sample_windows_must_hold_whole_cycles_of_24_samples_or_more(window_length, spc, match):
    with pytest.raises(ValueError, match=match):
        ProtectionCore([motor(input_mode="samples")], window_length=window_length,
                       samples_per_cycle=spc)


# ---------------------------------------------------------------- faults, latches, commands

@pytest.mark.e2e
@pytest.mark.parametrize(
    "fault",
    ["nan", "negative", "io_error", "stale_quality", "old_stamp", "infinite"],
)
def test_unusable_currents_freeze_theta_and_never_trip(impl, fault):
    core = ProtectionCore([motor(theta_initial=0.99)], implementation=impl)
    set_currents(core, 500.0, now=0.0)
    x = core.thermal_inputs
    if fault == "nan":
        x["mag"][0, 1] = np.nan
    elif fault == "negative":
        x["mag"][0, 2] = -5.0
    elif fault == "io_error":
        x["quality"] = Quality.IO_ERROR
    elif fault == "stale_quality":
        x["quality"] = Quality.STALE
    elif fault == "infinite":
        x["mag"][0, 0] = np.inf
    elif fault == "old_stamp":
        x["stamp"] = -10.0  # older than stale_limit (2 s) from the first scan on
    for k in range(1, 50):
        core.scan(float(k), 1.0)
        if fault != "old_stamp":
            x["stamp"] = float(k)
    assert flag(core, F.INPUT_FAULT)[0]
    assert not flag(core, F.TRIP)[0]
    assert core.thermal_outputs["theta"][0] == pytest.approx(0.99)
    assert math.isnan(core.thermal_outputs["time_to_trip"][0])
    assert math.isnan(core.thermal_outputs["i_eq"][0])


def test_trip_latches_and_resets_only_below_the_reset_level(impl):
    core = ProtectionCore([motor(theta_reset=0.5, t_cool=60.0)], implementation=impl)
    set_currents(core, 300.0, now=0.0)
    first = run_until(core, 0.1, 1000, lambda c: flag(c, F.TRIP))
    t = first[0] * 0.1
    assert core.thermal_state["trip_count"][0] == 1
    set_currents(core, 0.0, now=t)  # the breaker opened
    core.thermal_inputs["command"] = Command.RESET
    core.scan(t + 0.1, 0.1)
    assert flag(core, F.TRIP)[0] and flag(core, F.RESET_REJECTED)[0]
    core.thermal_inputs["command"] = 0
    run_until(core, 1.0, 200, lambda c: c.thermal_outputs["theta"] < 0.5, t0=t + 0.1)
    assert flag(core, F.TRIP)[0], "a latched trip never resets by itself"
    core.thermal_inputs["command"] = Command.RESET
    core.scan(t + 500.0, 0.1)
    assert not flag(core, F.TRIP)[0] and not flag(core, F.RESET_REJECTED)[0]
    assert core.thermal_state["trip_count"][0] == 1


@pytest.mark.e2e
def test_an_unlatched_trip_drops_below_the_reset_level(impl):
    core = ProtectionCore([motor(latch=False, theta_reset=0.5, t_cool=60.0)],
                          implementation=impl)
    set_currents(core, 300.0, now=0.0)
    first = run_until(core, 0.1, 1000, lambda c: flag(c, F.TRIP))
    set_currents(core, 0.0, now=first[0] * 0.1)
    dropped = run_until(core, 0.1, 5000, lambda c: ~flag(c, F.TRIP), t0=first[0] * 0.1)
    assert dropped[0] > 0
    assert core.thermal_outputs["theta"][0] < 0.5


def test_alarms_pick_up_at_their_level_and_drop_out_at_the_dropout_ratio(impl):
    core = ProtectionCore([motor(theta_al1=0.6, dropout_ratio=0.95, t_cool=1e9, t_heat=1e8)],
                          implementation=impl)
    set_currents(core, 0.0, now=0.0)
    seen = []
    for k, preset in enumerate((0.59, 0.601, 0.58, 0.571, 0.569), start=1):
        core.thermal_inputs["command"] = Command.PRESET
        core.thermal_inputs["preset_theta"] = preset
        core.thermal_inputs["stamp"] = float(k)
        core.scan(float(k), 1.0)
        seen.append(bool(flag(core, F.ALARM1)[0]))
    assert seen == [False, True, True, True, False]


@pytest.mark.parametrize("bad", [np.nan, -0.1, np.inf])
def test_a_bad_preset_is_ignored(impl, bad):
    core = ProtectionCore([motor(theta_initial=0.3, t_cool=1e9, t_heat=1e8)],
                          implementation=impl)
    set_currents(core, 0.0, now=0.0)
    core.thermal_inputs["command"] = Command.PRESET
    core.thermal_inputs["preset_theta"] = bad
    core.scan(0.1, 0.1)
    assert core.thermal_outputs["theta"][0] == pytest.approx(0.3)


def test_preset_sets_a_hot_thermal_state(impl):
    core = ProtectionCore([motor(t_cool=1e9, t_heat=1e8)], implementation=impl)
    set_currents(core, 0.0, now=0.0)
    core.thermal_inputs["command"] = Command.PRESET
    core.thermal_inputs["preset_theta"] = 0.95
    core.scan(0.1, 0.1)
    assert core.thermal_outputs["theta"][0] == pytest.approx(0.95)
    assert core.thermal_outputs["capacity_used"][0] == pytest.approx(95.0)
    assert flag(core, F.START_INHIBIT)[0]


# ---------------------------------------------------------------- blind: lost currents

def lose_currents(core: ProtectionCore, start: float, scans: int, dt: float = 1.0,
                  quality: Quality = Quality.IO_ERROR) -> tuple[float, list[bool], list[float]]:
    """``scans`` scans with the currents unusable; returns (end time, MEASUREMENT_LOST per scan,
    theta per scan)."""
    t, lost, theta = start, [], []
    for _ in range(scans):
        t += dt
        core.thermal_inputs["quality"] = quality
        core.scan(t, dt)
        lost.append(bool(flag(core, F.MEASUREMENT_LOST)[0]))
        theta.append(float(core.thermal_outputs["theta"][0]))
    return t, lost, theta


def run_good(core: ProtectionCore, amps: float, start: float, scans: int, dt: float = 1.0
             ) -> float:
    t = start
    for _ in range(scans):
        t += dt
        set_currents(core, amps, now=t)
        core.scan(t, dt)
    return t


def test_measurement_lost_after_the_input_loss_delay_and_clear_at_once(impl):
    """The meter stops answering: INPUT_FAULT at once, MEASUREMENT_LOST once the currents have
    been unusable for input_loss_delay (3 s) without a break; the first good reading clears
    both. An outage broken by a good reading starts the delay again."""
    core = ProtectionCore([motor(input_loss_delay=3.0)], implementation=impl)
    t = run_good(core, 100.0, 0.0, 5)
    assert not flag(core, F.MEASUREMENT_LOST)[0]
    t, lost, _ = lose_currents(core, t, 5)
    assert lost == [False, False, True, True, True]
    assert flag(core, F.INPUT_FAULT)[0]
    t = run_good(core, 100.0, t, 1)
    assert not flag(core, F.MEASUREMENT_LOST)[0] and not flag(core, F.INPUT_FAULT)[0]
    t, lost, _ = lose_currents(core, t, 2, quality=Quality.SENTINEL)
    t = run_good(core, 100.0, t, 1)
    t, lost, _ = lose_currents(core, t, 2, quality=Quality.STALE)
    assert lost == [False, False]


def test_a_relay_that_never_had_currents_is_blind_after_the_delay(impl):
    """Before the first measurement the inputs are stale: a relay started with its meter
    unreachable says measurement lost, it does not show a cool motor."""
    core = ProtectionCore([motor(input_loss_delay=2.0)], implementation=impl)
    for k in range(1, 4):
        core.scan(float(k), 1.0)
    assert flag(core, F.MEASUREMENT_LOST)[0] and flag(core, F.INPUT_FAULT)[0]


def test_freeze_policy_keeps_theta_while_blind(impl):
    core = ProtectionCore([motor(input_loss="freeze", input_loss_delay=1.0)],
                          implementation=impl)
    t = run_good(core, 150.0, 0.0, 20)
    before = float(core.thermal_outputs["theta"][0])
    _, _, theta = lose_currents(core, t, 30)
    assert theta == [before] * 30


def test_hold_policy_heats_at_the_last_good_current_for_input_loss_hold_then_freezes(impl):
    """Blind at 1.5 I_B: theta goes on heating towards 2.25 exactly as if the current held,
    for input_loss_hold (10 s) from the loss, then stays."""
    t_heat = 60.0
    core = ProtectionCore([motor(input_loss="hold", input_loss_hold=10.0, t_heat=t_heat,
                                 theta_trip=5.0, theta_al1=3.0, theta_al2=4.0,
                                 theta_inhibit=2.5, theta_reset=2.0)], implementation=impl)
    t = run_good(core, 150.0, 0.0, 20)
    theta0 = float(core.thermal_outputs["theta"][0])
    assert core.thermal_state["last_i_eq"][0] == pytest.approx(150.0)
    _, _, theta = lose_currents(core, t, 15, dt=0.75)  # 10 s is not a whole number of scans
    steady = 1.5**2

    def heated(seconds: float) -> float:
        return steady + (theta0 - steady) * math.exp(-seconds / t_heat)

    want = [heated(min(0.75 * k, 10.0)) for k in range(1, 16)]
    np.testing.assert_allclose(theta, want, rtol=1e-12)
    assert theta[-1] == theta[-2] == pytest.approx(heated(10.0), rel=1e-12)


def test_hold_policy_can_trip_and_cools_a_stopped_machine(impl):
    """A hot motor under overload loses its meter: holding the last current, it trips; a
    stopped machine losing its meter goes on cooling with T- for the hold."""
    core = ProtectionCore([motor(input_loss="hold", input_loss_hold=120.0, theta_initial=0.95),
                           motor(input_loss="hold", input_loss_hold=30.0, theta_initial=0.6)],
                          implementation=impl)
    t = 0.0
    for _ in range(2):
        t += 1.0
        set_currents(core, 150.0, now=t, point=0)
        set_currents(core, 0.0, now=t, point=1)
        core.scan(t, 1.0)
    assert not flag(core, F.TRIP)[0]
    theta_stopped = float(core.thermal_outputs["theta"][1])
    for _ in range(60):
        t += 1.0
        core.thermal_inputs["quality"] = Quality.IO_ERROR
        core.scan(t, 1.0)
    assert flag(core, F.TRIP)[0] and flag(core, F.INPUT_FAULT)[0]
    assert core.thermal_outputs["time_to_trip"][0] == 0.0
    assert core.thermal_outputs["theta"][1] == pytest.approx(
        theta_stopped * math.exp(-30.0 / 180.0), rel=1e-12)


def test_commands_still_apply_while_blind(impl):
    core = ProtectionCore([motor(input_loss="hold", input_loss_hold=5.0)], implementation=impl)
    t = run_good(core, 100.0, 0.0, 3)
    t, _, _ = lose_currents(core, t, 10)
    core.thermal_inputs["command"] = Command.PRESET
    core.thermal_inputs["preset_theta"] = 0.42
    t, _, theta = lose_currents(core, t, 1)
    assert theta == [0.42]  # the hold has run out: frozen at the preset


# ---------------------------------------------------------------- derived times while tripped

@pytest.mark.e2e
def test_time_to_trip_reads_zero_while_tripped_even_with_the_breaker_open(impl):
    """A latched trip: 0 s to trip whether the current flows, the breaker opened (0 A) or the
    currents are lost; "never" (inf) only once the trip is reset."""
    core = ProtectionCore([motor(theta_reset=0.5, t_cool=60.0)], implementation=impl)
    set_currents(core, 300.0, now=0.0)
    first = run_until(core, 0.1, 1000, lambda c: flag(c, F.TRIP))
    t = first[0] * 0.1
    assert core.thermal_outputs["time_to_trip"][0] == 0.0
    t = run_good(core, 0.0, t, 5)  # the breaker opened: theta falls below the trip level
    assert core.thermal_outputs["theta"][0] < 1.0 and flag(core, F.TRIP)[0]
    assert core.thermal_outputs["time_to_trip"][0] == 0.0
    t, _, _ = lose_currents(core, t, 2)
    assert core.thermal_outputs["time_to_trip"][0] == 0.0
    t = run_good(core, 0.0, t, 300)
    core.thermal_inputs["command"] = Command.RESET
    t = run_good(core, 0.0, t, 1)
    assert not flag(core, F.TRIP)[0] and math.isinf(core.thermal_outputs["time_to_trip"][0])


@pytest.mark.e2e
@pytest.mark.parametrize("latch", [True, False])
def test_time_to_start_counts_down_to_the_reset_level_while_tripped(impl, latch):
    """theta_reset (0.5) lies below theta_inhibit (0.7): after a trip a start waits until the
    trip can be reset (or drops), not only until the inhibit releases. When time_to_start
    reaches 0 a reset is accepted and no inhibit remains, to one scan."""
    t_cool, dt = 60.0, 0.1
    core = ProtectionCore([motor(theta_reset=0.5, theta_inhibit=0.7, t_cool=t_cool,
                                 latch=latch)], implementation=impl)
    set_currents(core, 300.0, now=0.0)
    first = run_until(core, dt, 1000, lambda c: flag(c, F.TRIP))
    t = first[0] * dt
    t = run_good(core, 0.0, t, 1, dt)  # the breaker opened
    theta = float(core.thermal_outputs["theta"][0])
    to_reset = t_cool * math.log(theta / 0.5)
    assert to_reset > t_cool * math.log(theta / 0.7)
    assert core.thermal_outputs["time_to_start"][0] == pytest.approx(to_reset, rel=1e-9)
    scans = 0
    while core.thermal_outputs["time_to_start"][0] > 0.0:
        t = run_good(core, 0.0, t, 1, dt)
        scans += 1
    assert abs(scans * dt - to_reset) <= dt
    assert not flag(core, F.START_INHIBIT)[0]
    if latch:
        assert flag(core, F.TRIP)[0]
        core.thermal_inputs["command"] = Command.RESET
        t = run_good(core, 0.0, t, 1, dt)
        core.thermal_inputs["command"] = 0
        assert not flag(core, F.TRIP)[0] and not flag(core, F.RESET_REJECTED)[0]
    else:
        assert not flag(core, F.TRIP)[0]  # the unlatched trip dropped by itself
    assert not flag(core, F.START_INHIBIT)[0]
    assert core.thermal_outputs["time_to_start"][0] == 0.0


@pytest.mark.e2e
def test_time_to_start_before_the_reset_level_would_have_been_refused(impl):
    """The issue's case: counting to theta_inhibit only, "0 s" arrived while the reset was
    still refused. At half the old countdown the reset is still refused, and time_to_start
    says how long is left."""
    core = ProtectionCore([motor(theta_reset=0.5, theta_inhibit=0.7, t_cool=60.0)],
                          implementation=impl)
    set_currents(core, 300.0, now=0.0)
    first = run_until(core, 0.1, 1000, lambda c: flag(c, F.TRIP))
    t = run_good(core, 0.0, first[0] * 0.1, 1, 0.1)
    # cool until theta < theta_inhibit: the old time_to_start said 0 here
    while core.thermal_outputs["theta"][0] >= 0.7:
        t = run_good(core, 0.0, t, 1, 0.1)
    assert not flag(core, F.START_INHIBIT)[0]
    assert core.thermal_outputs["time_to_start"][0] > 10.0
    core.thermal_inputs["command"] = Command.RESET
    run_good(core, 0.0, t, 1, 0.1)
    assert flag(core, F.TRIP)[0] and flag(core, F.RESET_REJECTED)[0]
