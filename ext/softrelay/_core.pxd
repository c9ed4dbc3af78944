# cython: language_level=3
"""C-level API of the compiled protection core.

The structs mirror, field for field, the record dtypes of runtime/softrelay/core/layout.py
(packed; every field naturally aligned there). Cython checks each buffer's format against them
at every call of run_scan.
"""

cdef packed struct ThermalSettings:
    double i_b, t_heat, t_cool, k2, kst, start_current, start_time_max
    double theta_trip, theta_al1, theta_al2, theta_inhibit, theta_initial, theta_reset
    double dropout_ratio, stale_limit, input_loss_delay, input_loss_hold
    int input_mode
    unsigned char latch, input_loss
    unsigned char _pad[2]

cdef packed struct ThermalInputs:
    double mag[3]
    double ang[3]
    double stamp, preset_theta
    unsigned char quality, command, interleave
    unsigned char _pad[5]

cdef packed struct ThermalState:
    double theta, start_elapsed, input_loss_timer, last_i_eq
    unsigned int start_count, trip_count
    unsigned char running, starting, trip_latched, alarm1, alarm2
    unsigned char _pad[3]

cdef packed struct ThermalOutputs:
    double theta, capacity_used, time_to_trip, time_to_start, i_eq, i1, i2, i_max
    unsigned int flags
    unsigned char _pad[4]

cdef packed struct BusbarSettings:
    double warning_delta, critical_delta, imbalance_max, rate_limit, hyst_delta, hyst_rate
    double pickup_warning, pickup_critical, pickup_imbalance, pickup_rate, pickup_joint
    double valid_min, valid_max, sentinel, stale_limit, kalman_r, kalman_q
    double erratic_gate, erratic_limit, joint_ratio, joint_min_current, joint_balance
    double joint_min_excess, input_loss_delay, ambient_fallback, warning_abs, critical_abs

cdef packed struct BusbarInputs:
    double temp[4]
    double stamp[4]
    double current[3]
    unsigned char quality[4]
    unsigned char _pad[4]

cdef packed struct BusbarState:
    double level[4]
    double rate[4]
    double p00[4]
    double p01[4]
    double p11[4]
    double last_stamp[4]
    double erratic_score[4]
    double timer[7]
    double loss_timer[3]
    unsigned char ready[4]
    unsigned char outlier_run[4]
    unsigned char erratic[4]
    unsigned char active[7]
    unsigned char _pad[5]

cdef packed struct BusbarOutputs:
    double level[4]
    double rate[3]
    double rise[3]
    double joint_index[3]
    double max_rise, phase_delta
    unsigned int flags
    unsigned char fault[4]
    unsigned char imbalance_pair, hottest_phase, joint_phase
    unsigned char _pad[5]

# Kernels: the scan is built from these; each has a Python wrapper in _core.pyx for the tests.
cdef void sincos_deg(double deg, double* s, double* c) noexcept nogil
cdef void seq_from_rect(const double* re, const double* im,
                        double* i1sq, double* i2sq) noexcept nogil
cdef void seq_from_phasors(const double* mag, const double* ang,
                           double* i1sq, double* i2sq) noexcept nogil
cdef bint seq_from_magnitudes(const double* mag, double* i1sq, double* i2sq) noexcept nogil
cdef void window_phasors(const double* x, Py_ssize_t length, const double* cos_t,
                         const double* sin_t, double* rms, double* re,
                         double* im) noexcept nogil
cdef void element_step(unsigned char* active, double* timer, double value, double threshold,
                       double hysteresis, double pickup, double dt) noexcept nogil
cdef void thermal_point(const ThermalSettings* s, const ThermalInputs* x, const double* window,
                        Py_ssize_t length, const double* cos_t, const double* sin_t,
                        double samples_per_cycle, ThermalState* st, ThermalOutputs* o,
                        double now, double dt) noexcept nogil
cdef void busbar_point(const BusbarSettings* s, const BusbarInputs* x, BusbarState* st,
                       BusbarOutputs* o, double now, double dt) noexcept nogil


cdef class Scanner:
    cdef const ThermalSettings[::1] th_settings
    cdef const ThermalInputs[::1] th_inputs
    cdef const double[:, :, ::1] th_window
    cdef ThermalState[::1] th_state
    cdef ThermalOutputs[::1] th_out
    cdef const BusbarSettings[::1] bb_settings
    cdef const BusbarInputs[::1] bb_inputs
    cdef BusbarState[::1] bb_state
    cdef BusbarOutputs[::1] bb_out
    cdef double* cos_t
    cdef double* sin_t
    cdef Py_ssize_t length
    cdef double samples_per_cycle
    cdef void run(self, double now, double dt) noexcept nogil
