# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Scan timing: absolute deadlines on CLOCK_MONOTONIC, slept without the GIL, and statistics.

Ticker.wait sleeps with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) until the next deadline.
When a scan overran, the deadlines it missed are skipped and counted: the next scan runs at the
first deadline still in the future, never in a catch-up burst. Deadlines stay on the grid
start + k * period, so jitter never accumulates.

Histogram is a log-linear histogram of nanosecond values (64 buckets per octave: 1.5 % wide)
for p50 / p99 / p99.9 without keeping samples; record() costs a few nanoseconds.
"""

from libc.errno cimport EINTR
from libc.math cimport ceil
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset
from posix.time cimport clock_gettime, timespec

cdef extern from "<time.h>" nogil:
    ctypedef int clockid_t
    int CLOCK_MONOTONIC
    int TIMER_ABSTIME
    int clock_nanosleep(clockid_t clock_id, int flags, const timespec* request,
                        timespec* remain)

DEF SUB_BITS = 6
DEF SUB = 64
DEF MAX_EXP = 44
DEF BUCKETS = SUB + (MAX_EXP - SUB_BITS + 1) * SUB


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t> ts.tv_sec * 1000000000 + ts.tv_nsec


def monotonic_ns():
    """CLOCK_MONOTONIC in nanoseconds (the clock every deadline is on)."""
    return now_ns()


cdef inline int bucket_of(uint64_t v) noexcept nogil:
    cdef int e
    if v < SUB:
        return <int> v
    e = 63 - __builtin_clzll(v)
    if e > MAX_EXP:
        return BUCKETS - 1
    return SUB + (e - SUB_BITS) * SUB + <int> ((v >> (e - SUB_BITS)) & (SUB - 1))


cdef inline uint64_t bucket_top(int i) noexcept nogil:
    """Largest value that falls in bucket i."""
    cdef int e, sub
    if i < SUB:
        return <uint64_t> i
    e = (i - SUB) // SUB + SUB_BITS
    sub = (i - SUB) % SUB
    return ((<uint64_t> (SUB + sub + 1)) << (e - SUB_BITS)) - 1


cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil


cdef class Histogram:
    """Count, min, max, mean and percentiles of non-negative nanosecond values."""

    cdef uint64_t counts[BUCKETS]
    cdef public uint64_t count
    cdef public int64_t minimum, maximum
    cdef double total

    def __cinit__(self):
        self.reset()

    def reset(self):
        memset(self.counts, 0, sizeof(self.counts))
        self.count = 0
        self.minimum = 0
        self.maximum = 0
        self.total = 0.0

    cpdef void record(self, int64_t value) noexcept:
        """Add one value (negative values count as 0)."""
        if value < 0:
            value = 0
        self.counts[bucket_of(<uint64_t> value)] += 1
        if self.count == 0 or value < self.minimum:
            self.minimum = value
        if self.count == 0 or value > self.maximum:
            self.maximum = value
        self.count += 1
        self.total += value

    @property
    def mean(self):
        return self.total / self.count if self.count else 0.0

    @property
    def sum(self):
        """The sum of the values recorded (ns)."""
        return self.total

    def cumulative(self, bounds):
        """For each bound (ns, ascending), how many values are at or below it, counted by whole
        buckets: a bucket counts when its top is at or below the bound, so the figure lies
        between the exact counts at the bound's bucket's bottom and at the bound (1.5 %). The
        cumulative buckets of a Prometheus histogram."""
        cdef uint64_t seen = 0
        cdef int i = 0
        out = []
        for bound in bounds:
            while i < BUCKETS and bucket_top(i) <= <uint64_t> max(bound, 0):
                seen += self.counts[i]
                i += 1
            out.append(seen)
        return out

    def percentile(self, double p):
        """The value at or below which ``p`` percent of the values lie (bucket's top, never
        more than the maximum); 0 when empty."""
        cdef uint64_t rank, seen = 0
        cdef int i
        if self.count == 0:
            return 0
        if p >= 100.0:
            return self.maximum
        rank = <uint64_t> ceil(p / 100.0 * self.count)  # nearest rank
        if rank < 1:
            rank = 1
        for i in range(BUCKETS):
            seen += self.counts[i]
            if seen >= rank:
                return min(<int64_t> bucket_top(i), self.maximum)
        return self.maximum

    def summary(self):
        """dict of count, min, max, mean, p50, p99, p999 (ns)."""
        return {"count": self.count, "min": self.minimum, "max": self.maximum,
                "mean": self.mean, "p50": self.percentile(50.0),
                "p99": self.percentile(99.0), "p999": self.percentile(99.9)}


cdef class Ticker:
    """Periodic wake-ups at start + k * period on CLOCK_MONOTONIC.

    ``wait()`` sleeps (GIL released) until the next deadline and returns
    (deadline_ns, lateness_ns, missed): missed is the number of deadlines skipped because the
    previous scan overran them.
    """

    cdef public int64_t period_ns
    cdef public int64_t deadline_ns
    cdef public uint64_t waits
    cdef public uint64_t missed_total
    cdef public uint64_t overruns

    def __cinit__(self, int64_t period_ns, start_ns=None):
        if period_ns <= 0:
            raise ValueError("period must be positive")
        self.period_ns = period_ns
        self.deadline_ns = (now_ns() if start_ns is None else start_ns)
        self.waits = 0
        self.missed_total = 0
        self.overruns = 0

    def wait(self):
        cdef int64_t target, late, now
        cdef int64_t missed = 0
        cdef timespec ts
        cdef int rc
        with nogil:
            target = self.deadline_ns + self.period_ns
            now = now_ns()
            if now > target:
                missed = (now - target) // self.period_ns + 1
                target += missed * self.period_ns
            ts.tv_sec = target // 1000000000
            ts.tv_nsec = target % 1000000000
            rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
            while rc == EINTR:
                rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
        # measured once the interpreter lock is held again: the scan runs from here, so the
        # wait for the lock (another thread holding it) is lateness, never hidden between
        # lateness and execution
        late = now_ns() - target
        if rc != 0:
            raise OSError(rc, "clock_nanosleep failed")
        self.deadline_ns = target
        self.waits += 1
        if missed:
            self.missed_total += missed
            self.overruns += 1
        return target, late, missed
