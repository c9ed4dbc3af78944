"""Busbar phase comparator in NumPy: the readable specification.

Per busbar point: three phase conductor temperatures (A, B, C), an ambient, each with a stamp and
a quality from the input image, and optionally the three phase currents. Every scan:

1. Kalman prediction of every channel's (level, rate) over dt: constant-rate model, white
   acceleration noise of density kalman_q. The rate comes without a moving average's lag.
2. Channel faults this scan: NaN, the sentinel (the value ``sentinel``, -32768, or the image's
   SENTINEL quality: the field device said "no reading"; reported as SENTINEL alone, never as
   NaN or out of range), outside valid_min..valid_max, older than stale_limit, or the image's
   own quality. A faulted channel is excluded and its filter restarts at its next good sample.
3. A new sample (stamp later than the last one taken) updates its channel's filter, unless its
   innovation lies beyond erratic_gate standard deviations: then it is rejected as an outlier
   (after OUTLIER_REINIT outliers in a row it is taken as a real step and the filter restarts on
   it). Each sample decays an outlier score by ERRATIC_DECAY and each outlier adds one; at
   erratic_limit the channel is erratic (excluded) until the score falls below half of it.
4. From the valid channels: rise = phase - ambient, the largest rise, the phase-to-phase delta
   with the pair it lies between, the fastest rate of rise, and with currents a joint index:
   each phase's rise against the rise the other phases would have at its current (rise ~ I^2),
   evaluated only under balanced load.
   While the ambient channel is excluded (AMBIENT_FAULT) the rises are taken over
   ``ambient_fallback`` instead (AMBIENT_FALLBACK): warning and critical go on operating on
   them; the joint index, a fine comparison of rises, is not evaluated on an assumed ambient.
   The filter takes a sample in at the scan that sees it; the fraction of a scan between its
   stamp and the scan is not modelled (sensors are sampled at 100 ms to minutes; scans are
   faster).
5. Elements warning, critical, imbalance, rate and joint, each with a pickup delay (the condition
   held over scans whose dt add up to it) and a dropout hysteresis, and the absolute limits
   temp_warning / temp_critical: the hottest valid phase >= warning_abs / critical_abs, whatever
   the ambient, with the warning / critical pickup delays and hyst_delta (NaN: off). An element
   whose quantity cannot be computed (its channels faulted) drops out: a sensor fault never
   operates one, and an excluded channel never feeds any element.
6. Input supervision: a phase channel (A, B or C) excluded for input_loss_delay seconds without
   a break (``loss_timer``) leaves that phase unprotected: MEASUREMENT_LOST, until it is valid
   again. A lost ambient alone is not measurement lost: the fallback covers it.

This module is the specification and the test oracle of ``ext/softrelay/_core.pyx``.
"""

from __future__ import annotations

import numpy as np

from softrelay.core.layout import (
    AMBIENT,
    EL_CRITICAL,
    EL_IMBALANCE,
    EL_JOINT,
    EL_RATE,
    EL_TEMP_CRITICAL,
    EL_TEMP_WARNING,
    EL_WARNING,
    ERRATIC_CLEAR,
    ERRATIC_DECAY,
    JOINT_HYST,
    JOINT_MIN_REF,
    OUTLIER_REINIT,
    RATE_P0,
    TIMER_EPS,
    PhasePair,
    Quality,
)
from softrelay.core.layout import BusbarFlag as F
from softrelay.core.layout import ChannelFault as CF

PAIR_OF = np.array(
    # PAIR_OF[hot, cold]
    [
        [PhasePair.NONE, PhasePair.AB, PhasePair.CA],
        [PhasePair.AB, PhasePair.NONE, PhasePair.BC],
        [PhasePair.CA, PhasePair.BC, PhasePair.NONE],
    ],
    dtype=np.uint8,
)


def element_step(
    active: np.ndarray,
    timer: np.ndarray,
    value: np.ndarray,
    threshold: np.ndarray,
    hysteresis: np.ndarray | float,
    pickup: np.ndarray,
    dt: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One scan of a definite-time element: returns the new (active, timer).

    Picks up once ``value >= threshold`` has held for ``pickup`` seconds (the scan that first
    sees it counts its dt); drops out when ``value < threshold - hysteresis`` or the value
    becomes unknown (NaN).
    """
    with np.errstate(invalid="ignore"):
        condition = value >= threshold
        timer = np.where(condition, timer + dt, 0.0)
        drop = np.isnan(value) | (value < threshold - hysteresis)
    active = np.where(active, ~drop, condition & (timer >= pickup - TIMER_EPS))
    return active, timer


def channel_faults(
    settings: np.ndarray, inputs: np.ndarray, now: float
) -> np.ndarray:
    """ChannelFault bits (n, 4) of this scan, before the erratic test."""
    s = settings
    temp, quality = inputs["temp"], inputs["quality"]
    with np.errstate(invalid="ignore"):
        sentinel = (temp == s["sentinel"][:, None]) | (quality == Quality.SENTINEL)
        nan = ~np.isfinite(temp) & ~sentinel
        out_of_range = (temp < s["valid_min"][:, None]) | (temp > s["valid_max"][:, None])
        out_of_range &= ~sentinel
        stale = ~(now - inputs["stamp"] <= s["stale_limit"][:, None])
    out_of_range |= quality == Quality.OUT_OF_RANGE
    stale |= quality == Quality.STALE
    io = (quality != Quality.GOOD) & (quality != Quality.OUT_OF_RANGE)
    io &= (quality != Quality.STALE) & (quality != Quality.SENTINEL)
    return (
        np.where(nan, CF.NAN, 0)
        | np.where(sentinel, CF.SENTINEL, 0)
        | np.where(out_of_range, CF.RANGE, 0)
        | np.where(stale, CF.STALE, 0)
        | np.where(io, CF.IO, 0)
    ).astype(np.uint8)


def kalman_predict(state: np.ndarray, q: np.ndarray, dt: float) -> None:
    """Advance every ready channel's (level, rate) and covariance by dt, in place."""
    st = state
    ready = st["ready"] != 0
    p00, p01, p11 = st["p00"], st["p01"], st["p11"]
    q = q[:, None]
    n00 = p00 + dt * (2.0 * p01 + dt * p11) + q * dt * dt * dt / 3.0
    n01 = p01 + dt * p11 + q * dt * dt / 2.0
    n11 = p11 + q * dt
    st["level"] = np.where(ready, st["level"] + dt * st["rate"], st["level"])
    st["p00"] = np.where(ready, n00, p00)
    st["p01"] = np.where(ready, n01, p01)
    st["p11"] = np.where(ready, n11, p11)


def kalman_take(settings: np.ndarray, inputs: np.ndarray, state: np.ndarray, fresh: np.ndarray):
    """Take in the fresh samples (mask (n, 4)): start, update, or reject as outliers."""
    st = state
    z = inputs["temp"]
    r = (settings["kalman_r"] ** 2)[:, None]
    gate = (settings["erratic_gate"] ** 2)[:, None]
    ready = st["ready"] != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        nu = z - st["level"]
        s = st["p00"] + r
        outlier = fresh & ready & (nu * nu > gate * s)
        k0, k1 = st["p00"] / s, st["p01"] / s
    update = fresh & ready & ~outlier
    run = np.where(outlier, st["outlier_run"] + 1, 0)
    restart = (fresh & ~ready) | (outlier & (run >= OUTLIER_REINIT))
    run = np.where(restart | update, 0, run)
    st["outlier_run"] = np.where(fresh, run, st["outlier_run"])
    st["erratic_score"] = np.where(
        fresh & ready, st["erratic_score"] * ERRATIC_DECAY + outlier, st["erratic_score"]
    )

    new_p00 = (1.0 - k0) * st["p00"]
    new_p01 = (1.0 - k0) * st["p01"]
    new_p11 = st["p11"] - k1 * st["p01"]
    st["level"] = np.where(update, st["level"] + k0 * nu, st["level"])
    st["rate"] = np.where(update, st["rate"] + k1 * nu, st["rate"])
    st["p00"] = np.where(update, new_p00, st["p00"])
    st["p01"] = np.where(update, new_p01, st["p01"])
    st["p11"] = np.where(update, new_p11, st["p11"])

    st["level"] = np.where(restart, z, st["level"])
    st["rate"] = np.where(restart, 0.0, st["rate"])
    st["p00"] = np.where(restart, np.broadcast_to(r, z.shape), st["p00"])
    st["p01"] = np.where(restart, 0.0, st["p01"])
    st["p11"] = np.where(restart, RATE_P0, st["p11"])
    st["ready"] = ready | restart


def joint_index(
    settings: np.ndarray, current: np.ndarray, rise: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per phase, rise over the rise expected from the other phases at its current.

    Returns (index (n, 3), NaN where not evaluated; joint quantity (n,), NaN when not
    evaluable). Evaluated for phases with a valid rise and a current of at least
    joint_min_current, when there are two or more such phases and their currents are balanced
    within joint_balance. expected_k = mean_j(rise_j (I_k / I_j)^2); the joint quantity is the
    largest index among phases at least joint_min_excess above their expected rise (0 if none).
    """
    s = settings
    with np.errstate(invalid="ignore"):
        candidate = ~np.isnan(rise) & (current >= s["joint_min_current"][:, None])
    count = candidate.sum(axis=1)
    i_hi = np.max(np.where(candidate, current, -np.inf), axis=1)
    i_lo = np.min(np.where(candidate, current, np.inf), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        balanced = (i_hi - i_lo) <= s["joint_balance"] * i_hi
    evaluable = (count >= 2) & balanced

    index = np.full(rise.shape, np.nan)
    quantity = np.where(evaluable, 0.0, np.nan)
    for k in range(3):
        others = [j for j in range(3) if j != k]
        total = np.zeros(len(rise))
        n_others = np.zeros(len(rise))
        for j in others:
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = current[:, k] / current[:, j]
                term = rise[:, j] * (ratio * ratio)
            total += np.where(candidate[:, j], term, 0.0)
            n_others += candidate[:, j]
        ok = evaluable & candidate[:, k]
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = total / n_others
            idx = rise[:, k] / np.maximum(expected, JOINT_MIN_REF)
            excess_ok = rise[:, k] - expected >= s["joint_min_excess"]
        index[:, k] = np.where(ok, idx, np.nan)
        quantity = np.where(ok & excess_ok, np.fmax(quantity, idx), quantity)
    return index, quantity


def busbar_scan(
    settings: np.ndarray, inputs: np.ndarray, state: np.ndarray, out: np.ndarray, now: float,
    dt: float,
) -> None:
    """Advance every busbar point by one scan of ``dt`` seconds ending at ``now``, in place."""
    s, st = settings, state

    kalman_predict(st, s["kalman_q"], dt)
    fault = channel_faults(s, inputs, now)
    hard = fault != 0
    st["ready"] = np.where(hard, 0, st["ready"])
    st["outlier_run"] = np.where(hard, 0, st["outlier_run"])
    fresh = ~hard & (inputs["stamp"] > st["last_stamp"])
    st["last_stamp"] = np.where(fresh, inputs["stamp"], st["last_stamp"])
    kalman_take(s, inputs, st, fresh)
    limit = s["erratic_limit"][:, None]
    erratic = np.where(
        st["erratic"] != 0, st["erratic_score"] >= limit * ERRATIC_CLEAR,
        st["erratic_score"] >= limit,
    )
    st["erratic"] = erratic
    fault |= np.where(erratic, CF.ERRATIC, 0).astype(np.uint8)
    valid = (st["ready"] != 0) & (fault == 0)

    level = np.where(valid, st["level"], np.nan)
    phases = level[:, :AMBIENT]
    rate = np.where(valid[:, :AMBIENT], st["rate"][:, :AMBIENT] * 60.0, np.nan)
    fallback = ~valid[:, AMBIENT]
    ambient = np.where(fallback, s["ambient_fallback"], level[:, AMBIENT])
    rise = phases - ambient[:, None]
    measured_rise = phases - level[:, AMBIENT:]  # NaN while the ambient is faulted
    max_rise = np.fmax.reduce(rise, axis=1)

    # Input supervision: a phase excluded for input_loss_delay is unprotected.
    loss_timer = np.where(valid[:, :AMBIENT], 0.0, st["loss_timer"] + dt)
    st["loss_timer"] = loss_timer
    lost = np.any(~valid[:, :AMBIENT]
                  & (loss_timer >= s["input_loss_delay"][:, None] - TIMER_EPS), axis=1)
    max_rate = np.fmax.reduce(rate, axis=1)

    phase_ok = valid[:, :AMBIENT]
    hot = np.argmax(np.where(phase_ok, phases, -np.inf), axis=1)
    cold = np.argmin(np.where(phase_ok, phases, np.inf), axis=1)
    rows = np.arange(len(s))
    two = phase_ok.sum(axis=1) >= 2
    delta = np.where(two, phases[rows, hot] - phases[rows, cold], np.nan)
    with np.errstate(invalid="ignore"):
        pair = np.where(delta > 0.0, PAIR_OF[hot, cold], PhasePair.NONE)
    hottest = np.where(phase_ok.any(axis=1), hot + 1, 0)
    hottest_level = np.fmax.reduce(phases, axis=1)  # NaN when no phase is valid

    index, joint = joint_index(s, inputs["current"], measured_rise)
    # An absolute limit switched off (NaN) sees an unknown value: it never operates.
    temp_warning = np.where(np.isnan(s["warning_abs"]), np.nan, hottest_level)
    temp_critical = np.where(np.isnan(s["critical_abs"]), np.nan, hottest_level)

    elements = (
        (EL_WARNING, max_rise, s["warning_delta"], s["hyst_delta"], s["pickup_warning"]),
        (EL_CRITICAL, max_rise, s["critical_delta"], s["hyst_delta"], s["pickup_critical"]),
        (EL_IMBALANCE, delta, s["imbalance_max"], s["hyst_delta"], s["pickup_imbalance"]),
        (EL_RATE, max_rate, s["rate_limit"], s["hyst_rate"], s["pickup_rate"]),
        (EL_JOINT, joint, s["joint_ratio"], JOINT_HYST, s["pickup_joint"]),
        (EL_TEMP_WARNING, temp_warning, s["warning_abs"], s["hyst_delta"],
         s["pickup_warning"]),
        (EL_TEMP_CRITICAL, temp_critical, s["critical_abs"], s["hyst_delta"],
         s["pickup_critical"]),
    )
    active = st["active"] != 0
    timer = st["timer"].copy()
    for el, value, threshold, hyst, pickup in elements:
        active[:, el], timer[:, el] = element_step(
            active[:, el], timer[:, el], value, threshold, hyst, pickup, dt
        )
    st["active"] = active
    st["timer"] = timer

    joint_hot = np.argmax(np.where(np.isnan(index), -np.inf, index), axis=1) + 1
    flags = (
        np.where(active[:, EL_WARNING], F.WARNING, 0)
        | np.where(active[:, EL_CRITICAL], F.CRITICAL, 0)
        | np.where(active[:, EL_IMBALANCE], F.IMBALANCE, 0)
        | np.where(active[:, EL_RATE], F.RATE, 0)
        | np.where(active[:, EL_JOINT], F.JOINT, 0)
        | np.where((fault != 0).any(axis=1), F.SENSOR_FAULT, 0)
        | np.where(valid[:, AMBIENT], 0, F.AMBIENT_FAULT)
        | np.where(lost, F.MEASUREMENT_LOST, 0)
        | np.where(fallback, F.AMBIENT_FALLBACK, 0)
        | np.where(active[:, EL_TEMP_WARNING], F.TEMP_WARNING, 0)
        | np.where(active[:, EL_TEMP_CRITICAL], F.TEMP_CRITICAL, 0)
    )
    out["level"] = level
    out["rate"] = rate
    out["rise"] = rise
    out["joint_index"] = index
    out["max_rise"] = max_rise
    out["phase_delta"] = delta
    out["flags"] = flags
    out["fault"] = fault
    out["imbalance_pair"] = pair
    out["hottest_phase"] = hottest
    out["joint_phase"] = np.where(active[:, EL_JOINT], joint_hot, 0)
