"""Memory layout of the protection core: the record dtypes every table uses, and the codes.

The core works on *banks*: one NumPy structured array per table (settings, inputs, state,
outputs) per kind of point, one row per protected point. The compiled core
(``ext/softrelay/_core.pxd``) declares a packed C struct for every dtype here, field for field;
Cython checks the buffer format at every call, so a mismatch is an error, never silent garbage.

Layout rules (held by ``tests/test_layout.py``):
- float64 fields first, then 4-byte, then 1-byte fields, and a pad to a multiple of 8 bytes,
  so the packed layout is also naturally aligned (ARMv7 faults on unaligned double loads).
- Units are the relay engineer's: amperes RMS, degrees of angle, seconds, degrees Celsius,
  Celsius per minute for rates, theta in per-unit of the base thermal capacity.

This module only describes memory; it never computes protection.
"""

from __future__ import annotations

import enum

import numpy as np

F8 = "<f8"
U4 = "<u4"
I4 = "<i4"
U1 = "u1"

PHASES = 3
BUSBAR_CHANNELS = 4  # phase A, phase B, phase C, ambient
AMBIENT = 3
ELEMENTS = 7  #: busbar elements (see EL_* below)
#: the names of a busbar point's phases and channels in the map, events and metrics
PHASE_NAMES = ("a", "b", "c")
CHANNEL_NAMES = (*PHASE_NAMES, "ambient")


class InputMode(enum.IntEnum):
    """How a thermal point's currents arrive in its input row."""

    PHASORS = 0  #: RMS magnitude and angle per phase (a meter that reports angles)
    MAGNITUDES = 1  #: RMS magnitudes only; I1 and I2 by the closed-triangle relation
    SAMPLES = 2  #: a window of raw samples per phase; true RMS and a one-bin DFT


class Quality(enum.IntEnum):
    """Quality code of one signal in the input image (0 is good, anything else is not)."""

    GOOD = 0
    STALE = 1
    OUT_OF_RANGE = 2
    IO_ERROR = 3
    SENTINEL = 4  #: the field device reported its no-reading value (e.g. -32768); value NaN


class InputLoss(enum.IntEnum):
    """What a thermal point's theta does while its currents are unusable (``input_loss``)."""

    FREEZE = 0  #: theta frozen at its last value
    HOLD = 1  #: heat or cool at the last good I_eq for at most input_loss_hold s, then freeze


class Command(enum.IntFlag):
    """Command bits of a thermal input row, applied at the start of the scan that sees them."""

    NONE = 0
    RESET = 1  #: reset the latched trip (refused while theta >= theta_reset)
    PRESET = 2  #: set theta to the row's ``preset_theta``


class ThermalFlag(enum.IntFlag):
    """Bits of a thermal point's ``flags`` output word (the packed register of the map)."""

    NONE = 0
    TRIP = 1 << 0  #: trip output (latched until reset when the point latches)
    TRIP_PICKUP = 1 << 1  #: theta >= theta_trip in this scan
    ALARM1 = 1 << 2
    ALARM2 = 1 << 3
    START_INHIBIT = 1 << 4  #: stopped and theta >= theta_inhibit
    STARTING = 1 << 5  #: a start is in progress (I_eq divided by KST)
    RUNNING = 1 << 6  #: I_eq >= 0.1 I_B
    INPUT_FAULT = 1 << 7  #: currents unusable this scan (quality, stale, NaN); theta frozen
    RESET_REJECTED = 1 << 8  #: a reset arrived while theta >= theta_reset
    TRIANGLE_OPEN = 1 << 9  #: magnitudes cannot close a triangle; I2 is the conservative bound
    #: the currents have been unusable (INPUT_FAULT) for input_loss_delay: the point is blind
    MEASUREMENT_LOST = 1 << 10


class BusbarFlag(enum.IntFlag):
    """Bits of a busbar point's ``flags`` output word."""

    NONE = 0
    WARNING = 1 << 0  #: largest rise over ambient >= warning_delta (after pickup delay)
    CRITICAL = 1 << 1  #: largest rise over ambient >= critical_delta (after pickup delay)
    IMBALANCE = 1 << 2  #: phase-to-phase delta >= imbalance_max (after pickup delay)
    RATE = 1 << 3  #: rate of rise of a phase >= rate_limit (after pickup delay)
    JOINT = 1 << 4  #: one phase hot for its current under balanced load (suspect joint)
    SENSOR_FAULT = 1 << 5  #: at least one channel is faulted and excluded
    AMBIENT_FAULT = 1 << 6  #: the ambient channel is unusable (faulted or excluded)
    #: a phase channel has been faulted or excluded for input_loss_delay: that phase is
    #: unprotected
    MEASUREMENT_LOST = 1 << 7
    #: the ambient channel is faulted: rises are taken over ambient_fallback
    AMBIENT_FALLBACK = 1 << 8
    TEMP_WARNING = 1 << 9  #: hottest phase >= warning_abs, whatever the ambient (after pickup)
    TEMP_CRITICAL = 1 << 10  #: hottest phase >= critical_abs, whatever the ambient (after pickup)


class ChannelFault(enum.IntFlag):
    """Per-channel fault bits of a busbar point (``fault`` output, one byte per channel)."""

    NONE = 0
    NAN = 1 << 0  #: not a number
    SENTINEL = 1 << 1  #: the device's "no reading" value (-32768)
    RANGE = 1 << 2  #: outside valid_min..valid_max, or the image said out of range
    STALE = 1 << 3  #: older than stale_limit, or the image said stale
    IO = 1 << 4  #: the image reported an I/O error
    ERRATIC = 1 << 5  #: innovations far beyond the noise model, too often


def flag_bits(flags: type[enum.IntFlag]) -> list[tuple[str, int]]:
    """(name, bit) of each flag of a class, in bit order: the lowercase names the map, the
    events, the configuration and the metrics use."""
    return [(f.name.lower(), int(f)) for f in flags if f and f.name]  # members are named


def set_flags(word: int, flags: type[enum.IntFlag]) -> list[str]:
    """The names of the flags of ``flags`` set in ``word``."""
    return [name for name, bit in flag_bits(flags) if int(word) & bit]


class PhasePair(enum.IntEnum):
    """Which two phases the phase-to-phase delta is between."""

    NONE = 0
    AB = 1
    BC = 2
    CA = 3


def _record(fields: list[tuple]) -> np.dtype:
    """Build a dtype from ``fields`` and pad it to a multiple of 8 bytes."""
    dtype = np.dtype(fields)
    pad = (-dtype.itemsize) % 8
    if pad:
        dtype = np.dtype([*fields, ("_pad", U1, (pad,))])
    return dtype


THERMAL_SETTINGS = _record(
    [
        ("i_b", F8),  # base current I_B, A
        ("t_heat", F8),  # heating time constant T+, s
        ("t_cool", F8),  # cooling time constant T- (stopped), s
        ("k2", F8),  # negative-sequence weighting K2
        ("kst", F8),  # start factor KST (1.0 .. 3.0)
        ("start_current", F8),  # start detected above this, per-unit of I_B
        ("start_time_max", F8),  # KST applies at most this long, s
        ("theta_trip", F8),
        ("theta_al1", F8),
        ("theta_al2", F8),
        ("theta_inhibit", F8),
        ("theta_initial", F8),
        ("theta_reset", F8),  # a latched trip resets only below this
        ("dropout_ratio", F8),  # alarms drop out below level * ratio
        ("stale_limit", F8),  # currents older than this are an input fault, s
        ("input_loss_delay", F8),  # s of unusable currents before MEASUREMENT_LOST
        ("input_loss_hold", F8),  # s the "hold" policy keeps heating at the last good I_eq
        ("input_mode", I4),  # InputMode
        ("latch", U1),  # 1: trip latched until reset; 0: trip drops below theta_reset
        ("input_loss", U1),  # InputLoss: what theta does while the currents are unusable
    ],
)

THERMAL_INPUTS = _record(
    [
        ("mag", F8, (PHASES,)),  # RMS magnitude per phase, A
        ("ang", F8, (PHASES,)),  # angle per phase, degrees (PHASORS mode)
        ("stamp", F8),  # when the currents were measured, monotonic s
        ("preset_theta", F8),  # value for Command.PRESET
        ("quality", U1),  # Quality of the currents
        ("command", U1),  # Command bits
        # SAMPLES mode: phases converted in turn by one ADC; phase k's samples lag L1's by
        # k / interleave of a sample interval (3: L1, L2, L3 round robin). 0: simultaneous.
        ("interleave", U1),
    ],
)

THERMAL_STATE = _record(
    [
        ("theta", F8),
        ("start_elapsed", F8),  # s since the present start began
        ("input_loss_timer", F8),  # s the currents have been unusable without a break
        ("last_i_eq", F8),  # A, the I_eq (after KST) of the last scan with usable currents
        ("start_count", U4),
        ("trip_count", U4),
        ("running", U1),
        ("starting", U1),
        ("trip_latched", U1),
        ("alarm1", U1),
        ("alarm2", U1),
    ],
)

THERMAL_OUTPUTS = _record(
    [
        ("theta", F8),
        ("capacity_used", F8),  # 100 * theta / theta_trip, %
        ("time_to_trip", F8),  # s at the present current; 0 tripped; inf never; NaN unknown
        ("time_to_start", F8),  # s of cooling until theta < theta_inhibit
        ("i_eq", F8),  # equivalent thermal current (after KST), A
        ("i1", F8),  # positive sequence, A
        ("i2", F8),  # negative sequence, A
        ("i_max", F8),  # largest phase RMS, A
        ("flags", U4),  # ThermalFlag
    ],
)

BUSBAR_SETTINGS = _record(
    [
        ("warning_delta", F8),  # C over ambient
        ("critical_delta", F8),  # C over ambient
        ("imbalance_max", F8),  # C phase to phase
        ("rate_limit", F8),  # C/min
        ("hyst_delta", F8),  # dropout hysteresis of the temperature elements, C
        ("hyst_rate", F8),  # dropout hysteresis of the rate element, C/min
        ("pickup_warning", F8),  # s
        ("pickup_critical", F8),
        ("pickup_imbalance", F8),
        ("pickup_rate", F8),
        ("pickup_joint", F8),
        ("valid_min", F8),  # C
        ("valid_max", F8),  # C
        ("sentinel", F8),  # the device's no-reading value
        ("stale_limit", F8),  # s
        ("kalman_r", F8),  # measurement noise, standard deviation, C
        ("kalman_q", F8),  # process noise (white acceleration) spectral density, C^2/s^3
        ("erratic_gate", F8),  # innovation gate, standard deviations
        ("erratic_limit", F8),  # outlier score that declares a channel erratic
        ("joint_ratio", F8),  # hot-phase ratio to its expected rise
        ("joint_min_current", F8),  # A; below it the joint indicator is not evaluated
        ("joint_balance", F8),  # (max - min) / max of the phase currents, at most
        ("joint_min_excess", F8),  # C above its expected rise, at least
        ("input_loss_delay", F8),  # s a phase channel may be excluded before MEASUREMENT_LOST
        ("ambient_fallback", F8),  # C, the ambient assumed while the ambient channel is faulted
        ("warning_abs", F8),  # C, absolute conductor warning level; NaN: off
        ("critical_abs", F8),  # C, absolute conductor critical level; NaN: off
    ],
)

BUSBAR_INPUTS = _record(
    [
        ("temp", F8, (BUSBAR_CHANNELS,)),  # C, as the device reported it
        ("stamp", F8, (BUSBAR_CHANNELS,)),  # when each was sampled, monotonic s
        ("current", F8, (PHASES,)),  # A; NaN when not measured
        ("quality", U1, (BUSBAR_CHANNELS,)),
    ],
)

BUSBAR_STATE = _record(
    [
        ("level", F8, (BUSBAR_CHANNELS,)),  # Kalman level, C
        ("rate", F8, (BUSBAR_CHANNELS,)),  # Kalman rate, C/s
        ("p00", F8, (BUSBAR_CHANNELS,)),  # covariance of (level, rate)
        ("p01", F8, (BUSBAR_CHANNELS,)),
        ("p11", F8, (BUSBAR_CHANNELS,)),
        ("last_stamp", F8, (BUSBAR_CHANNELS,)),  # stamp of the last sample taken in
        ("erratic_score", F8, (BUSBAR_CHANNELS,)),
        # pickup timers: warning, critical, imbalance, rate, joint, temp_warning, temp_critical
        ("timer", F8, (ELEMENTS,)),
        ("loss_timer", F8, (PHASES,)),  # s each phase channel has been excluded without a break
        ("ready", U1, (BUSBAR_CHANNELS,)),  # the channel's filter holds a level
        ("outlier_run", U1, (BUSBAR_CHANNELS,)),  # consecutive rejected samples
        ("erratic", U1, (BUSBAR_CHANNELS,)),
        ("active", U1, (ELEMENTS,)),  # element states, same order as timer
    ],
)

BUSBAR_OUTPUTS = _record(
    [
        ("level", F8, (BUSBAR_CHANNELS,)),  # smoothed temperature, C (NaN when excluded)
        ("rate", F8, (PHASES,)),  # smoothed rate of rise per phase, C/min
        ("rise", F8, (PHASES,)),  # phase over ambient (ambient_fallback while faulted), C
        ("joint_index", F8, (PHASES,)),  # rise / rise expected from the other phases
        ("max_rise", F8),  # C
        ("phase_delta", F8),  # C, max - min of the valid phases
        ("flags", U4),  # BusbarFlag
        ("fault", U1, (BUSBAR_CHANNELS,)),  # ChannelFault per channel
        ("imbalance_pair", U1),  # PhasePair of the delta
        ("hottest_phase", U1),  # 1..3, 0 when none is valid
        ("joint_phase", U1),  # 1..3 while JOINT, else 0
    ],
)

# Index of each element in BUSBAR_STATE["timer"] and ["active"].
EL_WARNING, EL_CRITICAL, EL_IMBALANCE, EL_RATE, EL_JOINT, EL_TEMP_WARNING, EL_TEMP_CRITICAL = (
    range(ELEMENTS))

# Constants of the maths, shared by the reference and (by value) the compiled core.
STOP_FRACTION = 0.1  #: below 0.1 I_B the point is stopped and cools with T-
TIMER_EPS = 1e-9  #: s; pickup timers compare with this slack against float sums of dt
ERRATIC_DECAY = 0.9  #: outlier score kept per new sample
ERRATIC_CLEAR = 0.5  #: an erratic channel clears below erratic_limit * this
OUTLIER_REINIT = 3  #: consecutive outliers that are taken as a real step (filter restarts)
RATE_P0 = (1.0 / 60.0) ** 2  #: initial rate variance, (C/s)^2 (1 C/min standard deviation)
JOINT_MIN_REF = 1.0  #: C; the expected rise never counts as less than this
JOINT_HYST = 0.1  #: dropout hysteresis of the joint ratio
MIN_SAMPLES_PER_CYCLE = 24  #: the 11th harmonic must lie inside the RMS window
TRIANGLE_TOL = 1e-12  #: Heron product below -TOL*(a^2+b^2+c^2)^2 is open (not rounding)

ALL_DTYPES = {
    "thermal_settings": THERMAL_SETTINGS,
    "thermal_inputs": THERMAL_INPUTS,
    "thermal_state": THERMAL_STATE,
    "thermal_outputs": THERMAL_OUTPUTS,
    "busbar_settings": BUSBAR_SETTINGS,
    "busbar_inputs": BUSBAR_INPUTS,
    "busbar_state": BUSBAR_STATE,
    "busbar_outputs": BUSBAR_OUTPUTS,
}
