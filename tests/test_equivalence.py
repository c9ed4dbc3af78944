"""The compiled core equals the NumPy reference: kernels, whole banks, multi-scan sequences.

Tolerance (README, "Compiled core and reference"): continuous values agree to 1e-9 relative,
with an absolute floor of 1e-9 of the bank's largest current for currents (I2 of a balanced set
is rounding noise around zero) and 1e-9 otherwise; the times to trip and to start, logarithms of
ratios that may cancel near the asymptote, to 1e-6 relative. Flags, codes, counters and latches
are equal exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softrelay.core import backend, busbar_reference, thermal_reference
from softrelay.core.layout import BusbarFlag, ChannelFault, ThermalFlag

from support.banks import RandomBank

compiled = backend.load("compiled")
reference = backend.load("reference")

LOG_TIMES = {"time_to_trip", "time_to_start"}
CURRENTS = {"i_eq", "i1", "i2", "i_max"}


def assert_tables_equal(name: str, got: np.ndarray, want: np.ndarray, amp_scale: float) -> None:
    """Field by field, with the documented tolerances."""
    for field in got.dtype.names:
        if field == "_pad":
            continue
        a, b = got[field], want[field]
        where = f"{name}.{field}"
        if a.dtype.kind == "f":
            rtol = 1e-6 if field in LOG_TIMES else 1e-9
            atol = 1e-9 * amp_scale if field in CURRENTS else 1e-9
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True, err_msg=where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)


def run_both(bank: RandomBank, scans: int, dt_choices: list[float]):
    """Run the same input stream through both cores; compare after every scan."""
    c_tables = bank.tables()
    r_tables = bank.tables()
    seen_th = seen_bb = seen_fault = 0
    held = 0  # scans of points whose theta moved while their currents were unusable (hold)
    for _ in range(scans):
        theta_before = c_tables[3]["theta"].copy()
        dt = float(bank.rng.choice(dt_choices))
        bank.next_inputs(dt)
        for tables in (c_tables, r_tables):
            tables[1][:] = bank.th_inputs
            tables[2][:] = bank.window
            tables[6][:] = bank.bb_inputs
        compiled.run_scan(*c_tables, bank.now, dt, bank.spc)
        reference.run_scan(*r_tables, bank.now, dt, bank.spc)
        amp_scale = float(np.nanmax(np.abs(bank.th_inputs["mag"]), initial=1.0))
        for idx, name in ((3, "thermal_state"), (4, "thermal_out"), (7, "busbar_state"),
                          (8, "busbar_out")):
            assert_tables_equal(name, c_tables[idx], r_tables[idx], amp_scale)
        seen_th |= int(np.bitwise_or.reduce(c_tables[4]["flags"], initial=0))
        seen_bb |= int(np.bitwise_or.reduce(c_tables[8]["flags"], initial=0))
        seen_fault |= int(np.bitwise_or.reduce(c_tables[8]["fault"].ravel(), initial=0))
        blind = (c_tables[4]["flags"] & ThermalFlag.INPUT_FAULT) != 0
        held += int(np.sum(blind & (c_tables[3]["theta"] != theta_before)))
    return seen_th, seen_bb, seen_fault, held


@pytest.mark.e2e
@given(
    seed=st.integers(0, 2**32 - 1),
    n_thermal=st.integers(0, 12),
    n_busbar=st.integers(0, 12),
    spc=st.sampled_from([24, 32, 48]),
    cycles=st.integers(1, 2),
    scans=st.integers(1, 25),
    dt=st.sampled_from([0.001, 0.01, 0.1, 0.5, 2.0]),
)
def test_random_banks_over_scan_sequences(seed, n_thermal, n_busbar, spc, cycles, scans, dt):
    bank = RandomBank(seed, n_thermal, n_busbar, spc, cycles)
    run_both(bank, scans, [dt, dt, dt * 3.0])


@pytest.mark.e2e
def test_a_large_bank_reaches_every_flag_and_stays_equal():
    """2 000 thermal and 2 000 busbar points for 60 scans: every flag, every fault, still equal."""
    bank = RandomBank(20261121, 2000, 2000, 32, 1)
    seen_th, seen_bb, seen_fault, held = run_both(bank, 60, [0.05, 0.2, 1.0])
    assert held > 100, f"the hold policy ran the replica on in only {held} point-scans"
    assert seen_th == sum(ThermalFlag), f"thermal flags never seen: {ThermalFlag(~seen_th)!r}"
    assert seen_bb == sum(BusbarFlag), f"busbar flags never seen: {BusbarFlag(~seen_bb)!r}"
    assert seen_fault == sum(ChannelFault), f"faults never seen: {ChannelFault(~seen_fault)!r}"


finite = st.floats(0.0, 5000.0, allow_nan=False)
angle = st.floats(-360.0, 360.0, allow_nan=False)


@pytest.mark.e2e
@given(st.lists(st.tuples(finite, finite, finite, angle, angle, angle), min_size=1, max_size=50))
def test_sequences_from_phasors_kernel(rows):
    data = np.array(rows)
    mag, ang = np.ascontiguousarray(data[:, :3]), np.ascontiguousarray(data[:, 3:])
    got = compiled.sequence_from_phasors(mag, ang)
    want = thermal_reference.sequence_from_phasors(mag, ang)
    scale = max(1.0, mag.max())
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12 * scale)


@pytest.mark.e2e
@given(st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=50))
def test_sequences_from_magnitudes_kernel(rows):
    mag = np.array(rows)
    i1, i2, is_open = compiled.sequence_from_magnitudes(mag)
    r1, r2, r_open = thermal_reference.sequence_from_magnitudes(mag)
    np.testing.assert_array_equal(is_open, r_open)
    np.testing.assert_allclose(i1, r1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(i2, r2, rtol=1e-9, atol=1e-12 * max(1.0, mag.max()))


@pytest.mark.e2e
@given(
    seed=st.integers(0, 2**32 - 1),
    spc=st.sampled_from([24, 32, 64]),
    cycles=st.integers(1, 4),
    rows=st.integers(1, 20),
)
def test_window_kernel(seed, spc, cycles, rows):
    window = np.random.default_rng(seed).normal(0.0, 100.0, (rows, spc * cycles))
    got = compiled.window_rms_and_phasor(window, spc)
    want = thermal_reference.window_rms_and_phasor(window, spc)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-9, atol=1e-9)
    # Angles compared as unit vectors: -180 and 180 are the same angle.
    np.testing.assert_allclose(np.exp(1j * np.deg2rad(got[2])), np.exp(1j * np.deg2rad(want[2])),
                               atol=1e-9)


@pytest.mark.e2e
@given(
    seed=st.integers(0, 2**32 - 1),
    scans=st.integers(1, 30),
    dt=st.sampled_from([0.01, 0.1, 0.3, 1.0]),
)
def test_element_kernel(seed, scans, dt):
    r = np.random.default_rng(seed)
    n = 16
    threshold = r.uniform(1.0, 10.0, n)
    hysteresis = r.uniform(0.0, 1.0, n)
    pickup = np.where(r.random(n) < 0.3, 0.0, r.uniform(0.0, 2.0, n))
    c_active, c_timer = np.zeros(n, np.uint8), np.zeros(n)
    r_active, r_timer = np.zeros(n, bool), np.zeros(n)
    for _ in range(scans):
        value = threshold + r.normal(0.0, 1.5, n)
        value[r.random(n) < 0.05] = np.nan
        compiled.element_steps(c_active, c_timer, value, threshold, hysteresis, pickup, dt)
        r_active, r_timer = busbar_reference.element_step(
            r_active, r_timer, value, threshold, hysteresis, pickup, dt
        )
        np.testing.assert_array_equal(c_active.astype(bool), r_active)
        np.testing.assert_array_equal(c_timer, r_timer)


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_banks(n):
    bank = RandomBank(7, n, n, 24, 1)
    run_both(bank, 5, [0.1])


@pytest.mark.e2e
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=100))
def test_sincos_in_degrees_kernel(degrees):
    """The kernel reduces exactly in degrees; the NumPy oracle rounds its radian argument (up
    to 2 pi 2^-53 = 7e-16 absolute), hence the 1e-15 tolerance. On [-45, 45] degrees the kernel
    is within one ulp of libm."""
    deg = np.array(degrees)
    s, c = compiled.sincos_degrees(deg)
    rad = np.deg2rad(np.fmod(deg, 360.0))
    np.testing.assert_allclose(s, np.sin(rad), rtol=0, atol=1e-15)
    np.testing.assert_allclose(c, np.cos(rad), rtol=0, atol=1e-15)


def test_sincos_in_degrees_is_exact_where_it_should_be():
    deg = np.array([0.0, 90.0, 180.0, 270.0, -90.0, 360.0, 720.0, 30.0, 150.0, np.nan, np.inf])
    s, c = compiled.sincos_degrees(deg)
    np.testing.assert_array_equal(s[:7], [0.0, 1.0, 0.0, -1.0, -1.0, 0.0, 0.0])
    np.testing.assert_array_equal(c[:7], [1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 1.0])
    assert s[7] == pytest.approx(0.5, abs=1e-16) and s[8] == pytest.approx(0.5, abs=1e-16)
    assert np.all(np.isnan(s[9:])) and np.all(np.isnan(c[9:]))
