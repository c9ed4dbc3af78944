"""Thermal replica (ANSI 49, IEC 60255-8/-149) in NumPy: the readable specification.

Every scan, for every thermal point, vectorised over the bank:

1. Phase currents. PHASORS: given. MAGNITUDES: given, and the sequences by the closed-triangle
   relation (below). SAMPLES: true RMS over the window (carries the harmonics) and the
   fundamental phasor by a one-bin DFT, turned back by the known lag of phases an ADC
   converted after L1 (``interleave``).
2. Sequences as the seed manual defines them, a = e^{j120}:
   I1 = |IL1 + a IL2 + a^2 IL3| / 3,  I2 = |IL1 + a^2 IL2 + a IL3| / 3.
3. I_eq = sqrt(max(IL1, IL2, IL3)^2 + K2 I2^2); divided by KST while a start is in progress.
4. Stopped when I_eq (before KST) < 0.1 I_B: theta <- theta exp(-dt/T-).
   Otherwise theta <- s + (theta - s) exp(-dt/T+), s = (I_eq / I_B)^2 (exact for a current
   held constant over dt).
5. Trip at theta >= theta_trip (latched until a reset arrives while theta < theta_reset),
   alarms with a dropout ratio, start inhibit while stopped and theta >= theta_inhibit.

A point whose currents are unusable (quality not good, older than stale_limit, not finite,
negative) has an input fault (INPUT_FAULT): its start state is frozen, its time to trip is
unknown (NaN) and its theta follows the declared blind policy ``input_loss``:
- ``freeze`` (the default): theta stays at its last value;
- ``hold``: the replica runs on at the last good I_eq (``last_i_eq``, after KST; heating when
  the point was running, cooling with T- when stopped) for at most ``input_loss_hold`` seconds
  from the loss, then freezes.
Once the currents have been unusable for ``input_loss_delay`` seconds without a break
(``input_loss_timer``, the scans' dt added up) the point is blind: MEASUREMENT_LOST, until the
first scan with usable currents. A fault never trips by itself; commands (reset, preset) still
apply; a trip reached while holding is a real trip.

Derived times: time to trip is 0 while the trip is set (latched, or a non-latching trip not yet
dropped), whatever the current or the input quality; otherwise the time at the present current
(inf: never, NaN: currents unusable). Time to start is the cooling (T-) until a start is
permitted: until theta < theta_inhibit and, while the trip is set, until theta < theta_reset
(when a reset is accepted, or a non-latching trip drops), the larger; inf when theta_reset is 0.

Starts: a start begins when a stopped point starts running; it lasts while I_eq >= start_current
I_B and for at most start_time_max (a stalled start then heats at full current).

This module is the specification and the test oracle of ``ext/softrelay/_core.pyx``; it
never runs in the scan unless the compiled core is disabled on purpose.
"""

from __future__ import annotations

import numpy as np

from softrelay.core.layout import (
    STOP_FRACTION,
    TIMER_EPS,
    TRIANGLE_TOL,
    Command,
    InputLoss,
    InputMode,
    Quality,
)
from softrelay.core.layout import ThermalFlag as F

A = np.exp(2j * np.pi / 3)  # e^{j120}
SQRT3 = np.sqrt(3.0)


def sequence_from_complex(ph: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative sequence magnitudes from complex phasors of shape (..., 3)."""
    i1 = np.abs(ph[..., 0] + A * ph[..., 1] + A * A * ph[..., 2]) / 3.0
    i2 = np.abs(ph[..., 0] + A * A * ph[..., 1] + A * ph[..., 2]) / 3.0
    return i1, i2


def sequence_from_phasors(mag: np.ndarray, ang_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative sequence magnitudes from RMS magnitudes and angles (degrees)."""
    rad = np.deg2rad(ang_deg)
    with np.errstate(invalid="ignore"):
        return sequence_from_complex(mag * (np.cos(rad) + 1j * np.sin(rad)))


def sequence_from_magnitudes(mag: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """I1, I2 and an "open" mask from magnitudes alone, shape (..., 3).

    With no zero sequence the three phasors close a triangle of sides a, b, c, and
    I1^2 + I2^2 = (a^2 + b^2 + c^2) / 3,   I1^2 - I2^2 = (4 / sqrt 3) * area,
    I1^2 I2^2 = ((a^2 - b^2)^2 + (b^2 - c^2)^2 + (c^2 - a^2)^2) / 18  (used for I2: no
    cancellation near balance). Magnitudes cannot say which way the triangle turns; the
    positive sequence is taken as the larger (normal phase rotation). Sides that cannot close
    a triangle (zero sequence present, or bad measurements) give the conservative bound
    I1 = I2 = sqrt((a^2 + b^2 + c^2) / 6) and the open mask.
    """
    a, b, c = mag[..., 0], mag[..., 1], mag[..., 2]
    a2, b2, c2 = a * a, b * b, c * c
    sumsq = a2 + b2 + c2
    half_mean = sumsq / 6.0
    heron = (a + b + c) * (-a + b + c) * (a - b + c) * (a + b - c)  # (4 area)^2
    is_open = heron < -TRIANGLE_TOL * (sumsq * sumsq)  # a flat triangle rounds either way
    i1sq = half_mean + np.sqrt(np.maximum(heron, 0.0)) / (2.0 * SQRT3)
    product = ((a2 - b2) ** 2 + (b2 - c2) ** 2 + (c2 - a2) ** 2) / 18.0
    with np.errstate(divide="ignore", invalid="ignore"):
        i2sq = np.where(i1sq > 0.0, product / i1sq, 0.0)
    i1sq = np.where(is_open, half_mean, i1sq)
    i2sq = np.where(is_open, half_mean, i2sq)
    return np.sqrt(i1sq), np.sqrt(i2sq), is_open


def dft_tables(length: int, samples_per_cycle: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of the fundamental's bin for a window of ``length`` samples."""
    cycles = length // samples_per_cycle
    n = np.arange(length, dtype=np.float64)
    arg = 2.0 * np.pi * cycles * n / length
    return np.cos(arg), np.sin(arg)


def window_rms_and_fundamental(
    window: np.ndarray, samples_per_cycle: int
) -> tuple[np.ndarray, np.ndarray]:
    """True RMS and the fundamental's complex RMS phasor of windows shaped (..., S).

    The window holds a whole number of cycles. The phasor is X = (sqrt 2 / S) sum x[n]
    e^{-j 2 pi k n / S}, k the number of cycles: for x = A cos(wt + phi), X = A / sqrt 2 at phi.
    The RMS keeps every harmonic the window resolves (S / 2 of them per cycle); DC is not
    removed, since a CT passes none.
    """
    length = window.shape[-1]
    cos_t, sin_t = dft_tables(length, samples_per_cycle)
    rms = np.sqrt(np.sum(window * window, axis=-1) / length)
    scale = np.sqrt(2.0) / length
    re = np.sum(window * cos_t, axis=-1) * scale
    im = -np.sum(window * sin_t, axis=-1) * scale
    return rms, re + 1j * im


def window_rms_and_phasor(
    window: np.ndarray, samples_per_cycle: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True RMS, fundamental RMS magnitude and angle (degrees) of windows shaped (..., S)."""
    rms, phasor = window_rms_and_fundamental(window, samples_per_cycle)
    return rms, np.abs(phasor), np.rad2deg(np.angle(phasor))


def interleave_correction(interleave: np.ndarray, samples_per_cycle: int) -> np.ndarray:
    """Factors (n, 3) that turn back the fundamental phasors of phases sampled after L1 by one
    ADC converting the phases in turn: phase k lags by k / interleave of a sample, that is
    2 pi k / (interleave S_c) of the fundamental (0: sampled together, no correction). Exact
    for the fundamental; the RMS does not depend on a time shift."""
    interleave = np.asarray(interleave, dtype=np.float64)[:, None]
    k = np.arange(3, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        turn = np.where(interleave > 0, 2.0 * np.pi * k / (interleave * samples_per_cycle), 0.0)
    return np.exp(-1j * turn)


def phase_currents(
    settings: np.ndarray, inputs: np.ndarray, window: np.ndarray, samples_per_cycle: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Phase RMS magnitudes (n, 3), I1, I2 and the triangle-open mask, per input mode."""
    mode = settings["input_mode"]
    mag = inputs["mag"].copy()
    i1, i2 = sequence_from_phasors(inputs["mag"], inputs["ang"])
    mi1, mi2, is_open = sequence_from_magnitudes(inputs["mag"])
    by_magnitude = mode == InputMode.MAGNITUDES
    i1 = np.where(by_magnitude, mi1, i1)
    i2 = np.where(by_magnitude, mi2, i2)
    is_open &= by_magnitude
    sampled = mode == InputMode.SAMPLES
    if np.any(sampled):
        rms, fundamental = window_rms_and_fundamental(window[sampled], samples_per_cycle)
        fundamental = fundamental * interleave_correction(inputs["interleave"][sampled],
                                                          samples_per_cycle)
        mag[sampled] = rms
        i1[sampled], i2[sampled] = sequence_from_complex(fundamental)
    return mag, i1, i2, is_open


def thermal_scan(
    settings: np.ndarray,
    inputs: np.ndarray,
    window: np.ndarray,
    state: np.ndarray,
    out: np.ndarray,
    now: float,
    dt: float,
    samples_per_cycle: int,
) -> None:
    """Advance every thermal point by one scan of ``dt`` seconds ending at ``now``, in place."""
    s, st = settings, state
    i_b = s["i_b"]

    # Commands, applied first.
    command = inputs["command"]
    preset = (command & Command.PRESET) != 0
    preset &= np.isfinite(inputs["preset_theta"]) & (inputs["preset_theta"] >= 0.0)
    st["theta"] = np.where(preset, inputs["preset_theta"], st["theta"])
    reset = (command & Command.RESET) != 0
    reset_ok = reset & (st["theta"] < s["theta_reset"])
    reset_rejected = reset & ~reset_ok & (st["trip_latched"] != 0)
    st["trip_latched"] = np.where(reset_ok, 0, st["trip_latched"])

    # Currents.
    mag, i1, i2, is_open = phase_currents(settings, inputs, window, samples_per_cycle)
    i_max = np.max(mag, axis=1)
    with np.errstate(invalid="ignore"):
        i_raw = np.sqrt(i_max * i_max + s["k2"] * i2 * i2)
        usable = (
            (inputs["quality"] == Quality.GOOD)
            & (now - inputs["stamp"] <= s["stale_limit"])
            & np.isfinite(i_raw)
            & np.all(mag >= 0.0, axis=1)
        )

    # Input supervision: how long the currents have been unusable, without a break.
    was_lost_for = st["input_loss_timer"].copy()
    lost_for = np.where(usable, 0.0, was_lost_for + dt)
    st["input_loss_timer"] = lost_for
    measurement_lost = ~usable & (lost_for >= s["input_loss_delay"] - TIMER_EPS)
    # The hold policy runs the replica on at the last good I_eq for the part of this scan that
    # lies within input_loss_hold of the loss.
    hold_dt = np.clip(s["input_loss_hold"] - was_lost_for, 0.0, dt)
    holding = ~usable & (s["input_loss"] == InputLoss.HOLD) & (hold_dt > 0.0)

    # Running and starts (frozen on an input fault).
    running = np.where(usable, i_raw >= STOP_FRACTION * i_b, st["running"] != 0)
    new_start = usable & running & (st["running"] == 0)
    st["start_count"] += new_start
    elapsed = np.where(new_start, 0.0, st["start_elapsed"])
    starting = (st["starting"] != 0) | new_start
    elapsed = np.where(usable & starting, elapsed + dt, elapsed)
    keeps = running & (i_raw >= s["start_current"] * i_b)
    keeps &= elapsed <= s["start_time_max"] + TIMER_EPS
    starting = np.where(usable, starting & keeps, st["starting"] != 0)
    st["start_elapsed"] = elapsed
    st["running"] = running
    st["starting"] = starting
    i_eq = np.where(starting, i_raw / s["kst"], i_raw)

    # Thermal state.
    steady = (i_eq / i_b) ** 2
    heated = steady + (st["theta"] - steady) * np.exp(-dt / s["t_heat"])
    cooled = st["theta"] * np.exp(-dt / s["t_cool"])
    theta = np.where(running, heated, cooled)
    held_steady = (st["last_i_eq"] / i_b) ** 2
    with np.errstate(invalid="ignore"):
        held = np.where(
            running,
            held_steady + (st["theta"] - held_steady) * np.exp(-hold_dt / s["t_heat"]),
            st["theta"] * np.exp(-hold_dt / s["t_cool"]),
        )
    theta = np.where(usable, theta, np.where(holding, held, st["theta"]))
    st["theta"] = theta
    st["last_i_eq"] = np.where(usable, i_eq, st["last_i_eq"])

    # Elements.
    pickup = theta >= s["theta_trip"]
    st["trip_count"] += pickup & (st["trip_latched"] == 0)
    latched = (st["trip_latched"] != 0) | pickup
    latched &= (s["latch"] != 0) | (theta >= s["theta_reset"])
    st["trip_latched"] = latched
    for field, level in (("alarm1", "theta_al1"), ("alarm2", "theta_al2")):
        was = st[field] != 0
        st[field] = np.where(was, theta >= s[level] * s["dropout_ratio"], theta >= s[level])
    inhibit = ~running & (theta >= s["theta_inhibit"])

    # Derived values. A trip (latched, or not yet dropped) reads 0 s to trip whatever the
    # current; a start waits for the inhibit level and, while a trip is set, for the reset
    # level too (the trip must reset before a start), the larger of the two cooling times.
    with np.errstate(divide="ignore", invalid="ignore"):
        ttt = s["t_heat"] * np.log((steady - theta) / (steady - s["theta_trip"]))
        ttt = np.where(running & (steady > s["theta_trip"]), ttt, np.inf)
        ttt = np.where(usable, ttt, np.nan)
        ttt = np.where(latched | pickup, 0.0, ttt)
        tts = np.where(
            theta >= s["theta_inhibit"], s["t_cool"] * np.log(theta / s["theta_inhibit"]), 0.0
        )
        to_reset = np.where(
            s["theta_reset"] > 0.0, s["t_cool"] * np.log(theta / s["theta_reset"]), np.inf
        )
        tts = np.where(latched & (theta >= s["theta_reset"]), np.maximum(tts, to_reset), tts)

    flags = (
        np.where(latched, F.TRIP, 0)
        | np.where(pickup, F.TRIP_PICKUP, 0)
        | np.where(st["alarm1"] != 0, F.ALARM1, 0)
        | np.where(st["alarm2"] != 0, F.ALARM2, 0)
        | np.where(inhibit, F.START_INHIBIT, 0)
        | np.where(starting, F.STARTING, 0)
        | np.where(running, F.RUNNING, 0)
        | np.where(usable, 0, F.INPUT_FAULT)
        | np.where(reset_rejected, F.RESET_REJECTED, 0)
        | np.where(is_open, F.TRIANGLE_OPEN, 0)
        | np.where(measurement_lost, F.MEASUREMENT_LOST, 0)
    )
    nan = np.nan
    out["theta"] = theta
    out["capacity_used"] = 100.0 * theta / s["theta_trip"]
    out["time_to_trip"] = ttt
    out["time_to_start"] = tts
    out["i_eq"] = np.where(usable, i_eq, nan)
    out["i1"] = np.where(usable, i1, nan)
    out["i2"] = np.where(usable, i2, nan)
    out["i_max"] = np.where(usable, i_max, nan)
    out["flags"] = flags
