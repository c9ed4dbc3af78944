# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True, nonecheck=False
"""The compiled protection core: one pass over every thermal and busbar point per scan.

The maths is that of softrelay/core/thermal_reference.py and busbar_reference.py (the
specification, in NumPy), written per point, step for step in the same order, so the two agree
to rounding. Scanner.scan holds no Python object inside its loop and runs without the GIL.
Constants are those of softrelay/core/layout.py (checked by tests/test_layout.py).
"""

from libc.math cimport INFINITY, M_PI, NAN, atan2, cos, exp, fabs, fmod, isfinite, isnan
from libc.math cimport log, sin, sqrt
from libc.stdlib cimport free, malloc

cdef extern from "window_sums.h":
    void sr_window_sums3(const double* x, Py_ssize_t n, const double* cos_t,
                         const double* sin_t, double* out) noexcept nogil

import numpy as np

# layout.py constants
DEF STOP_FRACTION = 0.1
DEF TIMER_EPS = 1e-9
DEF ERRATIC_DECAY = 0.9
DEF ERRATIC_CLEAR = 0.5
DEF OUTLIER_REINIT = 3
DEF RATE_P0 = (1.0 / 60.0) * (1.0 / 60.0)
DEF JOINT_MIN_REF = 1.0
DEF JOINT_HYST = 0.1
DEF MIN_SAMPLES_PER_CYCLE = 24
DEF TRIANGLE_TOL = 1e-12

cdef enum:
    MODE_PHASORS = 0
    MODE_MAGNITUDES = 1
    MODE_SAMPLES = 2
    Q_GOOD = 0
    Q_STALE = 1
    Q_OUT_OF_RANGE = 2
    CMD_RESET = 1
    CMD_PRESET = 2
    # ThermalFlag
    TF_TRIP = 1 << 0
    TF_TRIP_PICKUP = 1 << 1
    TF_ALARM1 = 1 << 2
    TF_ALARM2 = 1 << 3
    TF_START_INHIBIT = 1 << 4
    TF_STARTING = 1 << 5
    TF_RUNNING = 1 << 6
    TF_INPUT_FAULT = 1 << 7
    TF_RESET_REJECTED = 1 << 8
    TF_TRIANGLE_OPEN = 1 << 9
    TF_MEASUREMENT_LOST = 1 << 10
    LOSS_HOLD = 1
    Q_SENTINEL = 4
    # BusbarFlag
    BF_WARNING = 1 << 0
    BF_CRITICAL = 1 << 1
    BF_IMBALANCE = 1 << 2
    BF_RATE = 1 << 3
    BF_JOINT = 1 << 4
    BF_SENSOR_FAULT = 1 << 5
    BF_AMBIENT_FAULT = 1 << 6
    BF_MEASUREMENT_LOST = 1 << 7
    BF_AMBIENT_FALLBACK = 1 << 8
    BF_TEMP_WARNING = 1 << 9
    BF_TEMP_CRITICAL = 1 << 10
    # ChannelFault
    CF_NAN = 1 << 0
    CF_SENTINEL = 1 << 1
    CF_RANGE = 1 << 2
    CF_STALE = 1 << 3
    CF_IO = 1 << 4
    CF_ERRATIC = 1 << 5
    # elements
    EL_WARNING = 0
    EL_CRITICAL = 1
    EL_IMBALANCE = 2
    EL_RATE = 3
    EL_JOINT = 4
    EL_TEMP_WARNING = 5
    EL_TEMP_CRITICAL = 6
    AMBIENT = 3

cdef double HALF_SQRT3 = sqrt(3.0) / 2.0
cdef double TWO_SQRT3 = 2.0 * sqrt(3.0)
cdef double DEG = M_PI / 180.0
cdef unsigned char PAIR_OF[3][3]
PAIR_OF[0][:] = [0, 1, 3]
PAIR_OF[1][:] = [1, 0, 2]
PAIR_OF[2][:] = [3, 2, 0]

IMPLEMENTATION = "compiled"


# ---------------------------------------------------------------- kernels

# fdlibm's minimax kernels for sin and cos on |t| <= pi/4 (error below one ulp).
cdef double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03
cdef double S3 = -1.98412698298579493134e-04, S4 = 2.75573137070700676789e-06
cdef double S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10
cdef double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03
cdef double C3 = 2.48015872894767294178e-05, C4 = -2.75573143513906633035e-07
cdef double C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11
cdef double INV90 = 1.0 / 90.0
cdef double ROUNDER = 6755399441055744.0  # 1.5 * 2^52
cdef double NINTH = 1.0 / 9.0


cdef void sincos_deg(double deg, double* s, double* c) noexcept nogil:
    """sin and cos of an angle in degrees; NaN for a non-finite angle.

    The reduction is exact in degrees (fmod by 360 and subtracting a multiple of 90 lose
    nothing), so there is no rounding of pi to amplify; only the remainder of at most 45 degrees
    is turned into radians. The same bits on every platform, whatever its libm.
    """
    cdef double q, r, t, z, z2, sin_t, cos_t, hz, w
    cdef int quadrant
    if not isfinite(deg):
        s[0] = NAN
        c[0] = NAN
        return
    if fabs(deg) > 360.0:
        deg = fmod(deg, 360.0)
    # Nearest multiple of 90 degrees: adding and removing 1.5 * 2^52 rounds to an integer
    # (|deg / 90| <= 4 here; IEEE doubles without reassociation, which the build guarantees by
    # never using -ffast-math). Any integer near deg / 90 keeps r exact and within the kernels'
    # accurate range, so the product's rounding does not matter.
    q = (deg * INV90 + ROUNDER) - ROUNDER
    r = deg - q * 90.0
    t = r * DEG
    z = t * t
    z2 = z * z
    # Estrin's scheme: the same polynomials, shorter dependency chains.
    sin_t = t + t * z * ((S1 + z * S2) + z2 * ((S3 + z * S4) + z2 * (S5 + z * S6)))
    hz = 0.5 * z
    w = 1.0 - hz
    cos_t = w + (((1.0 - w) - hz)
                 + z2 * ((C1 + z * C2) + z2 * ((C3 + z * C4) + z2 * (C5 + z * C6))))
    quadrant = (<int> q) & 3
    if quadrant == 0:
        s[0] = sin_t
        c[0] = cos_t
    elif quadrant == 1:
        s[0] = cos_t
        c[0] = -sin_t
    elif quadrant == 2:
        s[0] = -sin_t
        c[0] = -cos_t
    else:
        s[0] = -cos_t
        c[0] = sin_t


cdef void seq_from_rect(const double* re, const double* im,
                        double* i1sq, double* i2sq) noexcept nogil:
    """Squares of I1 = |IL1 + a IL2 + a^2 IL3| / 3 and I2 = |IL1 + a^2 IL2 + a IL3| / 3.

    a = e^{j120}. Squares: the protection needs no square root on its critical path.
    """
    # a z = (-re/2 - h im, -im/2 + h re); a^2 z = (-re/2 + h im, -im/2 - h re)
    cdef double h = HALF_SQRT3
    cdef double p_re = re[0] + (-0.5 * re[1] - h * im[1]) + (-0.5 * re[2] + h * im[2])
    cdef double p_im = im[0] + (-0.5 * im[1] + h * re[1]) + (-0.5 * im[2] - h * re[2])
    cdef double n_re = re[0] + (-0.5 * re[1] + h * im[1]) + (-0.5 * re[2] - h * im[2])
    cdef double n_im = im[0] + (-0.5 * im[1] - h * re[1]) + (-0.5 * im[2] + h * re[2])
    i1sq[0] = (p_re * p_re + p_im * p_im) * NINTH
    i2sq[0] = (n_re * n_re + n_im * n_im) * NINTH


cdef void seq_from_phasors(const double* mag, const double* ang,
                           double* i1sq, double* i2sq) noexcept nogil:
    """Squared sequences from RMS magnitudes and angles in degrees.

    |I1| and |I2| do not change when all three phasors turn together, so phase L1 is taken as
    the angle reference: two sines and cosines instead of three.
    """
    cdef double re[3]
    cdef double im[3]
    cdef double s, c
    if not isfinite(ang[0]):
        i1sq[0] = NAN
        i2sq[0] = NAN
        return
    re[0] = mag[0]
    im[0] = 0.0
    sincos_deg(ang[1] - ang[0], &s, &c)
    re[1] = mag[1] * c
    im[1] = mag[1] * s
    sincos_deg(ang[2] - ang[0], &s, &c)
    re[2] = mag[2] * c
    im[2] = mag[2] * s
    seq_from_rect(re, im, i1sq, i2sq)


cdef bint seq_from_magnitudes(const double* mag, double* i1sq, double* i2sq) noexcept nogil:
    """Closed-triangle I1^2, I2^2 from magnitudes; returns True when the sides cannot close."""
    cdef double a = mag[0], b = mag[1], c = mag[2]
    cdef double a2 = a * a, b2 = b * b, c2 = c * c
    cdef double sumsq = a2 + b2 + c2
    cdef double half_mean = sumsq / 6.0
    cdef double heron = (a + b + c) * (-a + b + c) * (a - b + c) * (a + b - c)
    cdef double i1, i2, dab, dbc, dca, product
    if heron < -TRIANGLE_TOL * (sumsq * sumsq):
        i1sq[0] = half_mean
        i2sq[0] = half_mean
        return True
    i1 = half_mean + sqrt(heron if heron > 0.0 else 0.0) / TWO_SQRT3
    dab = a2 - b2
    dbc = b2 - c2
    dca = c2 - a2
    product = (dab * dab + dbc * dbc + dca * dca) / 18.0
    i2 = product / i1 if i1 > 0.0 else 0.0
    i1sq[0] = i1
    i2sq[0] = i2
    return False


cdef void window_phasors(const double* x, Py_ssize_t length, const double* cos_t,
                         const double* sin_t, double* rms, double* re,
                         double* im) noexcept nogil:
    """True RMS and the fundamental's RMS phasor (rectangular) of the three phases of a window.

    x holds three rows of ``length`` samples. X = (sqrt 2 / S) sum x[n] e^{-j 2 pi k n / S}.
    """
    cdef double sums[9]
    cdef double scale = sqrt(2.0) / length
    cdef int k
    sr_window_sums3(x, length, cos_t, sin_t, sums)
    for k in range(3):
        rms[k] = sqrt(sums[k] / length)
        re[k] = sums[3 + k] * scale
        im[k] = -sums[6 + k] * scale


cdef void element_step(unsigned char* active, double* timer, double value, double threshold,
                       double hysteresis, double pickup, double dt) noexcept nogil:
    """Definite-time element: pickup delay, dropout hysteresis, drops on an unknown value."""
    cdef bint condition = value >= threshold
    if condition:
        timer[0] = timer[0] + dt
    else:
        timer[0] = 0.0
    if active[0]:
        active[0] = not (isnan(value) or value < threshold - hysteresis)
    else:
        active[0] = condition and timer[0] >= pickup - TIMER_EPS


cdef void interleave_correct(double* re, double* im, int interleave,
                             double samples_per_cycle) noexcept nogil:
    """Turn back the fundamental phasors of phases sampled after L1 (one ADC converting the
    phases in turn): phase k lags by k / interleave of a sample, 2 pi k / (interleave S_c) of
    the fundamental. Exact for the fundamental; the RMS does not depend on a time shift."""
    cdef int k
    cdef double d, c, sn, r
    if interleave == 0:
        return
    for k in range(1, 3):
        d = 2.0 * M_PI * k / (interleave * samples_per_cycle)
        c = cos(d)
        sn = sin(d)
        r = re[k]
        re[k] = r * c + im[k] * sn
        im[k] = im[k] * c - r * sn


cdef void thermal_point(const ThermalSettings* s, const ThermalInputs* x, const double* window,
                        Py_ssize_t length, const double* cos_t, const double* sin_t,
                        double samples_per_cycle, ThermalState* st, ThermalOutputs* o,
                        double now, double dt) noexcept nogil:
    cdef double mag[3]
    cdef double fre[3]
    cdef double fim[3]
    cdef double i1sq, i2sq, i_max, i_raw_sq, i_sq, steady, theta, ttt, tts, level
    cdef double was_lost_for, hold_dt, held_steady, to_reset
    cdef bint is_open = False, usable, running, new_start, starting, keeps
    cdef bint measurement_lost = False
    cdef bint pickup, latched, inhibit, reset_rejected = False
    cdef unsigned int flags = 0
    cdef int k

    # Commands, applied first.
    if (x.command & CMD_PRESET) and isfinite(x.preset_theta) and x.preset_theta >= 0.0:
        st.theta = x.preset_theta
    if x.command & CMD_RESET:
        if st.theta < s.theta_reset:
            st.trip_latched = 0
        elif st.trip_latched:
            reset_rejected = True

    # Currents.
    if s.input_mode == MODE_SAMPLES:
        window_phasors(window, length, cos_t, sin_t, mag, fre, fim)
        interleave_correct(fre, fim, x.interleave, samples_per_cycle)
        seq_from_rect(fre, fim, &i1sq, &i2sq)
    else:
        for k in range(3):
            mag[k] = x.mag[k]
        if s.input_mode == MODE_MAGNITUDES:
            is_open = seq_from_magnitudes(mag, &i1sq, &i2sq)
        else:
            seq_from_phasors(mag, x.ang, &i1sq, &i2sq)
    i_max = mag[0]
    if mag[1] > i_max:
        i_max = mag[1]
    if mag[2] > i_max:
        i_max = mag[2]
    # The reference compares I_eq itself; squares decide the same (but for rounding at a tie)
    # and keep square roots off the critical path.
    i_raw_sq = i_max * i_max + s.k2 * i2sq
    usable = (x.quality == Q_GOOD and now - x.stamp <= s.stale_limit and isfinite(i_raw_sq)
              and mag[0] >= 0.0 and mag[1] >= 0.0 and mag[2] >= 0.0)

    # Input supervision: how long the currents have been unusable, without a break.
    was_lost_for = st.input_loss_timer
    if usable:
        st.input_loss_timer = 0.0
    else:
        st.input_loss_timer = was_lost_for + dt
        measurement_lost = st.input_loss_timer >= s.input_loss_delay - TIMER_EPS

    if usable:
        # Running and starts.
        level = STOP_FRACTION * s.i_b
        running = i_raw_sq >= level * level
        new_start = running and not st.running
        if new_start:
            st.start_count += 1
            st.start_elapsed = 0.0
        starting = st.starting or new_start
        if starting:
            st.start_elapsed = st.start_elapsed + dt
        level = s.start_current * s.i_b
        keeps = (running and i_raw_sq >= level * level
                 and st.start_elapsed <= s.start_time_max + TIMER_EPS)
        starting = starting and keeps
        st.running = running
        st.starting = starting
        i_sq = i_raw_sq / (s.kst * s.kst) if starting else i_raw_sq
        # Thermal state.
        steady = i_sq / (s.i_b * s.i_b)
        if running:
            st.theta = steady + (st.theta - steady) * exp(-dt / s.t_heat)
        else:
            st.theta = st.theta * exp(-dt / s.t_cool)
        st.last_i_eq = sqrt(i_sq)
    else:
        running = st.running
        starting = st.starting
        steady = NAN
        if s.input_loss == LOSS_HOLD:
            # The part of this scan within input_loss_hold of the loss, at the last good I_eq.
            hold_dt = s.input_loss_hold - was_lost_for
            if hold_dt > dt:
                hold_dt = dt
            if hold_dt > 0.0:
                held_steady = (st.last_i_eq / s.i_b) * (st.last_i_eq / s.i_b)
                if running:
                    st.theta = held_steady + (st.theta - held_steady) * exp(-hold_dt / s.t_heat)
                else:
                    st.theta = st.theta * exp(-hold_dt / s.t_cool)
    theta = st.theta

    # Elements.
    pickup = theta >= s.theta_trip
    if pickup and not st.trip_latched:
        st.trip_count += 1
    latched = st.trip_latched or pickup
    latched = latched and (s.latch or theta >= s.theta_reset)
    st.trip_latched = latched
    if st.alarm1:
        st.alarm1 = theta >= s.theta_al1 * s.dropout_ratio
    else:
        st.alarm1 = theta >= s.theta_al1
    if st.alarm2:
        st.alarm2 = theta >= s.theta_al2 * s.dropout_ratio
    else:
        st.alarm2 = theta >= s.theta_al2
    inhibit = (not running) and theta >= s.theta_inhibit

    # Derived values (see thermal_reference: 0 s to trip while the trip is set; a start waits
    # for the inhibit level and, while the trip is set, for the reset level too).
    if latched or pickup:
        ttt = 0.0
    elif not usable:
        ttt = NAN
    elif running and steady > s.theta_trip:
        ttt = s.t_heat * log((steady - theta) / (steady - s.theta_trip))
    else:
        ttt = INFINITY
    if theta >= s.theta_inhibit:
        tts = s.t_cool * log(theta / s.theta_inhibit)
    else:
        tts = 0.0
    if latched and theta >= s.theta_reset:
        if s.theta_reset > 0.0:
            to_reset = s.t_cool * log(theta / s.theta_reset)
        else:
            to_reset = INFINITY
        if to_reset > tts:
            tts = to_reset

    if latched:
        flags |= TF_TRIP
    if pickup:
        flags |= TF_TRIP_PICKUP
    if st.alarm1:
        flags |= TF_ALARM1
    if st.alarm2:
        flags |= TF_ALARM2
    if inhibit:
        flags |= TF_START_INHIBIT
    if starting:
        flags |= TF_STARTING
    if running:
        flags |= TF_RUNNING
    if not usable:
        flags |= TF_INPUT_FAULT
    if reset_rejected:
        flags |= TF_RESET_REJECTED
    if is_open:
        flags |= TF_TRIANGLE_OPEN
    if measurement_lost:
        flags |= TF_MEASUREMENT_LOST

    o.theta = theta
    o.capacity_used = 100.0 * theta / s.theta_trip
    o.time_to_trip = ttt
    o.time_to_start = tts
    if usable:
        o.i_eq = sqrt(i_sq)
        o.i1 = sqrt(i1sq)
        o.i2 = sqrt(i2sq)
        o.i_max = i_max
    else:
        o.i_eq = NAN
        o.i1 = NAN
        o.i2 = NAN
        o.i_max = NAN
    o.flags = flags


cdef inline unsigned char channel_fault(const BusbarSettings* s, const BusbarInputs* x, int c,
                                        double now) noexcept nogil:
    cdef double t = x.temp[c]
    cdef unsigned char q = x.quality[c]
    cdef unsigned char f = 0
    if t == s.sentinel or q == Q_SENTINEL:
        f |= CF_SENTINEL  # "no reading": named as such, not as NaN or out of range
    else:
        if not isfinite(t):
            f |= CF_NAN
        if t < s.valid_min or t > s.valid_max:
            f |= CF_RANGE
    if q == Q_OUT_OF_RANGE:
        f |= CF_RANGE
    if not (now - x.stamp[c] <= s.stale_limit) or q == Q_STALE:
        f |= CF_STALE
    if q != Q_GOOD and q != Q_OUT_OF_RANGE and q != Q_STALE and q != Q_SENTINEL:
        f |= CF_IO
    return f


cdef inline void kalman_restart(BusbarState* st, int c, double z, double r) noexcept nogil:
    st.level[c] = z
    st.rate[c] = 0.0
    st.p00[c] = r
    st.p01[c] = 0.0
    st.p11[c] = RATE_P0
    st.ready[c] = 1
    st.outlier_run[c] = 0


cdef void busbar_point(const BusbarSettings* s, const BusbarInputs* x, BusbarState* st,
                       BusbarOutputs* o, double now, double dt) noexcept nogil:
    cdef unsigned char fault[4]
    cdef bint valid[4]
    cdef bint candidate[3]
    cdef double level[4]
    cdef double r = s.kalman_r * s.kalman_r
    cdef double gate = s.erratic_gate * s.erratic_gate
    cdef double q = s.kalman_q
    cdef double p00, p01, p11, nu, sv, k0, k1, z
    cdef double max_rise = NAN, max_rate = NAN, delta = NAN, hv = -INFINITY, cv = INFINITY
    cdef double joint = NAN, i_hi = -INFINITY, i_lo = INFINITY, total, expected, idx, ratio
    cdef double jv = -INFINITY, ambient, hottest
    cdef double measured_rise[3]
    cdef int c, k, j, hot = 0, cold = 0, n_valid = 0, count = 0, n_others, joint_hot = 0
    cdef bint outlier, evaluable, any_fault = False, lost = False
    cdef unsigned int flags = 0

    for c in range(4):
        # Prediction.
        if st.ready[c]:
            p00 = st.p00[c]
            p01 = st.p01[c]
            p11 = st.p11[c]
            st.level[c] = st.level[c] + dt * st.rate[c]
            st.p00[c] = p00 + dt * (2.0 * p01 + dt * p11) + q * dt * dt * dt / 3.0
            st.p01[c] = p01 + dt * p11 + q * dt * dt / 2.0
            st.p11[c] = p11 + q * dt
        # Faults of this scan.
        fault[c] = channel_fault(s, x, c, now)
        if fault[c]:
            st.ready[c] = 0
            st.outlier_run[c] = 0
        # A new sample.
        elif x.stamp[c] > st.last_stamp[c]:
            st.last_stamp[c] = x.stamp[c]
            z = x.temp[c]
            if not st.ready[c]:
                kalman_restart(st, c, z, r)
            else:
                nu = z - st.level[c]
                sv = st.p00[c] + r
                outlier = nu * nu > gate * sv
                st.erratic_score[c] = st.erratic_score[c] * ERRATIC_DECAY + outlier
                if outlier:
                    st.outlier_run[c] += 1
                    if st.outlier_run[c] >= OUTLIER_REINIT:
                        kalman_restart(st, c, z, r)
                else:
                    k0 = st.p00[c] / sv
                    k1 = st.p01[c] / sv
                    p00 = st.p00[c]
                    p01 = st.p01[c]
                    st.level[c] = st.level[c] + k0 * nu
                    st.rate[c] = st.rate[c] + k1 * nu
                    st.p00[c] = (1.0 - k0) * p00
                    st.p01[c] = (1.0 - k0) * p01
                    st.p11[c] = st.p11[c] - k1 * p01
                    st.outlier_run[c] = 0
        # Erratic, with hysteresis.
        if st.erratic[c]:
            st.erratic[c] = st.erratic_score[c] >= s.erratic_limit * ERRATIC_CLEAR
        else:
            st.erratic[c] = st.erratic_score[c] >= s.erratic_limit
        if st.erratic[c]:
            fault[c] |= CF_ERRATIC
        valid[c] = st.ready[c] and fault[c] == 0
        level[c] = st.level[c] if valid[c] else NAN
        o.level[c] = level[c]
        o.fault[c] = fault[c]
        if fault[c]:
            any_fault = True

    # Rises over the ambient, or over ambient_fallback while the ambient is excluded.
    if valid[AMBIENT]:
        ambient = level[AMBIENT]
    else:
        ambient = s.ambient_fallback
    # Input supervision: a phase excluded for input_loss_delay is unprotected.
    for k in range(3):
        if valid[k]:
            st.loss_timer[k] = 0.0
        else:
            st.loss_timer[k] = st.loss_timer[k] + dt
            if st.loss_timer[k] >= s.input_loss_delay - TIMER_EPS:
                lost = True

    # Comparisons over the valid channels.
    for k in range(3):
        o.rate[k] = st.rate[k] * 60.0 if valid[k] else NAN
        o.rise[k] = level[k] - ambient
        measured_rise[k] = level[k] - level[AMBIENT]  # NaN while the ambient is faulted
        if not isnan(o.rise[k]) and (isnan(max_rise) or o.rise[k] > max_rise):
            max_rise = o.rise[k]
        if not isnan(o.rate[k]) and (isnan(max_rate) or o.rate[k] > max_rate):
            max_rate = o.rate[k]
        if valid[k]:
            n_valid += 1
            if level[k] > hv:
                hv = level[k]
                hot = k
            if level[k] < cv:
                cv = level[k]
                cold = k
    if n_valid >= 2:
        delta = level[hot] - level[cold]
    o.max_rise = max_rise
    o.phase_delta = delta
    o.imbalance_pair = PAIR_OF[hot][cold] if delta > 0.0 else 0
    o.hottest_phase = hot + 1 if n_valid > 0 else 0
    hottest = hv if n_valid > 0 else NAN

    # Joint index: each phase's rise against the rise expected from the others at its current.
    for k in range(3):
        candidate[k] = (not isnan(measured_rise[k])) and x.current[k] >= s.joint_min_current
        if candidate[k]:
            count += 1
            if x.current[k] > i_hi:
                i_hi = x.current[k]
            if x.current[k] < i_lo:
                i_lo = x.current[k]
    evaluable = count >= 2 and (i_hi - i_lo) <= s.joint_balance * i_hi
    if evaluable:
        joint = 0.0
    for k in range(3):
        o.joint_index[k] = NAN
        if not (evaluable and candidate[k]):
            continue
        total = 0.0
        n_others = 0
        for j in range(3):
            if j != k and candidate[j]:
                ratio = x.current[k] / x.current[j]
                total = total + measured_rise[j] * (ratio * ratio)
                n_others += 1
        expected = total / n_others
        idx = measured_rise[k] / (expected if expected > JOINT_MIN_REF else JOINT_MIN_REF)
        o.joint_index[k] = idx
        if measured_rise[k] - expected >= s.joint_min_excess:
            if idx > joint:
                joint = idx
        if idx > jv:
            jv = idx
            joint_hot = k + 1

    element_step(&st.active[EL_WARNING], &st.timer[EL_WARNING], max_rise, s.warning_delta,
                 s.hyst_delta, s.pickup_warning, dt)
    element_step(&st.active[EL_CRITICAL], &st.timer[EL_CRITICAL], max_rise, s.critical_delta,
                 s.hyst_delta, s.pickup_critical, dt)
    element_step(&st.active[EL_IMBALANCE], &st.timer[EL_IMBALANCE], delta, s.imbalance_max,
                 s.hyst_delta, s.pickup_imbalance, dt)
    element_step(&st.active[EL_RATE], &st.timer[EL_RATE], max_rate, s.rate_limit,
                 s.hyst_rate, s.pickup_rate, dt)
    element_step(&st.active[EL_JOINT], &st.timer[EL_JOINT], joint, s.joint_ratio,
                 JOINT_HYST, s.pickup_joint, dt)
    # Absolute limits; one switched off (NaN) sees an unknown value and never operates.
    element_step(&st.active[EL_TEMP_WARNING], &st.timer[EL_TEMP_WARNING],
                 NAN if isnan(s.warning_abs) else hottest, s.warning_abs, s.hyst_delta,
                 s.pickup_warning, dt)
    element_step(&st.active[EL_TEMP_CRITICAL], &st.timer[EL_TEMP_CRITICAL],
                 NAN if isnan(s.critical_abs) else hottest, s.critical_abs, s.hyst_delta,
                 s.pickup_critical, dt)

    if st.active[EL_WARNING]:
        flags |= BF_WARNING
    if st.active[EL_CRITICAL]:
        flags |= BF_CRITICAL
    if st.active[EL_IMBALANCE]:
        flags |= BF_IMBALANCE
    if st.active[EL_RATE]:
        flags |= BF_RATE
    if st.active[EL_JOINT]:
        flags |= BF_JOINT
    if any_fault:
        flags |= BF_SENSOR_FAULT
    if not valid[AMBIENT]:
        flags |= BF_AMBIENT_FAULT | BF_AMBIENT_FALLBACK
    if lost:
        flags |= BF_MEASUREMENT_LOST
    if st.active[EL_TEMP_WARNING]:
        flags |= BF_TEMP_WARNING
    if st.active[EL_TEMP_CRITICAL]:
        flags |= BF_TEMP_CRITICAL
    o.flags = flags
    o.joint_phase = joint_hot if st.active[EL_JOINT] else 0


# ---------------------------------------------------------------- the scan

cdef inline bint misaligned(const void* p) noexcept nogil:
    """True unless p is 8-byte aligned (ARMv7 faults on unaligned double loads)."""
    return (<size_t> p) % 8 != 0


cdef class Scanner:
    """The tables of one relay, bound once; ``scan`` runs one pass over every point.

    Thermal tables have one row per thermal point; th_window has shape (points, 3, S), S a whole
    number of cycles of samples_per_cycle samples (S may be 0 when no point samples). Binding
    checks lengths and alignment and computes the DFT tables once, so a scan costs nothing per
    table: it releases the GIL and walks the points. The tables stay owned by the caller, who
    writes inputs and reads outputs between scans; rebinding is needed only to replace a table.
    """

    def __cinit__(self, const ThermalSettings[::1] th_settings,
                  const ThermalInputs[::1] th_inputs, const double[:, :, ::1] th_window,
                  ThermalState[::1] th_state, ThermalOutputs[::1] th_out,
                  const BusbarSettings[::1] bb_settings, const BusbarInputs[::1] bb_inputs,
                  BusbarState[::1] bb_state, BusbarOutputs[::1] bb_out,
                  int samples_per_cycle):
        cdef Py_ssize_t n_th = th_settings.shape[0], n_bb = bb_settings.shape[0], n
        cdef double cycles
        self.cos_t = NULL
        if (th_inputs.shape[0] != n_th or th_state.shape[0] != n_th
                or th_out.shape[0] != n_th or th_window.shape[0] != n_th
                or th_window.shape[1] != 3):
            raise ValueError("thermal tables differ in length")
        if (bb_inputs.shape[0] != n_bb or bb_state.shape[0] != n_bb
                or bb_out.shape[0] != n_bb):
            raise ValueError("busbar tables differ in length")
        self.length = th_window.shape[2]
        if n_th and (misaligned(&th_settings[0]) or misaligned(&th_inputs[0])
                     or misaligned(&th_state[0]) or misaligned(&th_out[0])
                     or (self.length > 0 and misaligned(&th_window[0, 0, 0]))):
            raise ValueError("a thermal table is not 8-byte aligned")
        if n_bb and (misaligned(&bb_settings[0]) or misaligned(&bb_inputs[0])
                     or misaligned(&bb_state[0]) or misaligned(&bb_out[0])):
            raise ValueError("a busbar table is not 8-byte aligned")
        if self.length > 0:
            if samples_per_cycle <= 0 or self.length % samples_per_cycle:
                raise ValueError("the window is not a whole number of cycles")
            self.cos_t = <double*> malloc(2 * self.length * sizeof(double))
            if self.cos_t == NULL:
                raise MemoryError()
            self.sin_t = self.cos_t + self.length
            cycles = <double> (self.length // samples_per_cycle)
            for n in range(self.length):
                self.cos_t[n] = cos(2.0 * M_PI * cycles * <double> n / <double> self.length)
                self.sin_t[n] = sin(2.0 * M_PI * cycles * <double> n / <double> self.length)
        self.samples_per_cycle = samples_per_cycle
        self.th_settings = th_settings
        self.th_inputs = th_inputs
        self.th_window = th_window
        self.th_state = th_state
        self.th_out = th_out
        self.bb_settings = bb_settings
        self.bb_inputs = bb_inputs
        self.bb_state = bb_state
        self.bb_out = bb_out

    def __dealloc__(self):
        free(self.cos_t)

    def scan(self, double now, double dt):
        """Advance every point by one scan of ``dt`` s ending at ``now`` (monotonic s)."""
        with nogil:
            self.run(now, dt)

    cdef void run(self, double now, double dt) noexcept nogil:
        cdef Py_ssize_t i
        cdef Py_ssize_t length = self.length
        cdef const double* window = NULL
        for i in range(self.th_settings.shape[0]):
            if length > 0:
                window = &self.th_window[i, 0, 0]
            thermal_point(&self.th_settings[i], &self.th_inputs[i], window, length, self.cos_t,
                          self.sin_t, self.samples_per_cycle, &self.th_state[i],
                          &self.th_out[i], now, dt)
        for i in range(self.bb_settings.shape[0]):
            busbar_point(&self.bb_settings[i], &self.bb_inputs[i], &self.bb_state[i],
                         &self.bb_out[i], now, dt)


def run_scan(th_settings, th_inputs, th_window, th_state, th_out, bb_settings, bb_inputs,
             bb_state, bb_out, double now, double dt, int samples_per_cycle):
    """One scan over freshly bound tables (tests and one-off use; a relay keeps a Scanner)."""
    Scanner(th_settings, th_inputs, th_window, th_state, th_out, bb_settings, bb_inputs,
            bb_state, bb_out, samples_per_cycle).scan(now, dt)


# ---------------------------------------------------------------- kernel wrappers (tests)

def sincos_degrees(const double[::1] deg):
    """sin and cos of angles in degrees (the kernel of the phasor path)."""
    cdef Py_ssize_t i, n = deg.shape[0]
    sines = np.empty(n)
    cosines = np.empty(n)
    cdef double[::1] os = sines, oc = cosines
    for i in range(n):
        sincos_deg(deg[i], &os[i], &oc[i])
    return sines, cosines


def sequence_from_phasors(const double[:, ::1] mag, const double[:, ::1] ang):
    """I1, I2 per row of (n, 3) magnitudes and angles (degrees)."""
    cdef Py_ssize_t i, n = mag.shape[0]
    i1 = np.empty(n)
    i2 = np.empty(n)
    cdef double[::1] o1 = i1, o2 = i2
    for i in range(n):
        seq_from_phasors(&mag[i, 0], &ang[i, 0], &o1[i], &o2[i])
    return np.sqrt(i1), np.sqrt(i2)


def sequence_from_magnitudes(const double[:, ::1] mag):
    """I1, I2 and the open mask per row of (n, 3) magnitudes."""
    cdef Py_ssize_t i, n = mag.shape[0]
    i1 = np.empty(n)
    i2 = np.empty(n)
    is_open = np.empty(n, dtype=bool)
    cdef double[::1] o1 = i1, o2 = i2
    cdef unsigned char[::1] oo = is_open.view(np.uint8)
    for i in range(n):
        oo[i] = seq_from_magnitudes(&mag[i, 0], &o1[i], &o2[i])
    return np.sqrt(i1), np.sqrt(i2), is_open


def window_rms_and_phasor(const double[:, ::1] window, int samples_per_cycle):
    """True RMS, fundamental magnitude and angle (degrees) per row of (n, S) windows."""
    cdef Py_ssize_t i, k, n = window.shape[0], length = window.shape[1]
    cdef double cycles = <double> (length // samples_per_cycle)
    cos_a = np.empty(length)
    sin_a = np.empty(length)
    cdef double[::1] ct = cos_a, sn = sin_a
    for k in range(length):
        ct[k] = cos(2.0 * M_PI * cycles * <double> k / <double> length)
        sn[k] = sin(2.0 * M_PI * cycles * <double> k / <double> length)
    triple = np.zeros((3, length))
    cdef double[:, ::1] rows = triple
    cdef double rms[3]
    cdef double re[3]
    cdef double im[3]
    out_rms = np.empty(n)
    out_mag = np.empty(n)
    out_ang = np.empty(n)
    for i in range(n):
        rows[0, :] = window[i, :]  # the kernel takes three phases; one is enough here
        window_phasors(&rows[0, 0], length, &ct[0], &sn[0], rms, re, im)
        out_rms[i] = rms[0]
        out_mag[i] = sqrt(re[0] * re[0] + im[0] * im[0])
        out_ang[i] = atan2(im[0], re[0]) * (180.0 / M_PI)
    return out_rms, out_mag, out_ang


def element_steps(unsigned char[::1] active, double[::1] timer, const double[::1] value,
                  const double[::1] threshold, const double[::1] hysteresis,
                  const double[::1] pickup, double dt):
    """One element step per row, in place on active and timer."""
    cdef Py_ssize_t i
    for i in range(active.shape[0]):
        element_step(&active[i], &timer[i], value[i], threshold[i], hysteresis[i], pickup[i], dt)


def constants():
    """The maths constants compiled in, for the test that they match layout.py."""
    return {
        "STOP_FRACTION": STOP_FRACTION,
        "TIMER_EPS": TIMER_EPS,
        "ERRATIC_DECAY": ERRATIC_DECAY,
        "ERRATIC_CLEAR": ERRATIC_CLEAR,
        "OUTLIER_REINIT": OUTLIER_REINIT,
        "RATE_P0": RATE_P0,
        "JOINT_MIN_REF": JOINT_MIN_REF,
        "JOINT_HYST": JOINT_HYST,
        "MIN_SAMPLES_PER_CYCLE": MIN_SAMPLES_PER_CYCLE,
        "TRIANGLE_TOL": TRIANGLE_TOL,
    }
