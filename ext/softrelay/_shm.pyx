# cython: language_level=3, boundscheck=False, wraparound=False
"""Seqlock over a shared-memory region: one writer at a time, any number of readers, no locks.

The first 8 bytes of the region are the sequence number: odd while a write is in progress.

Writer: begin() makes it odd (then a release fence), the writer stores its data, end() makes it
even again with a release store. Reader: read_into() loads the sequence (acquire), copies the
data, fences (acquire) and reloads the sequence; it retries while the sequence was odd or moved,
so what it returns is exactly one writer's complete version. C11 atomics: correct on ARM's weak
memory model as well as on x86.

``write`` publishes a whole staging buffer in one compiled call (begin, memcpy, end), so no
Python thread switch can hold a write open; only the OS can preempt it. Neither side ever
blocks the other: a reader retries while a write is under way, yielding the CPU after a short
spin, and gives up after ``timeout_ms`` (a writer that died mid-write).
"""

from libc.stdint cimport uint64_t, uint8_t
from libc.string cimport memcpy
from posix.time cimport clock_gettime, timespec

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from "<time.h>" nogil:
    int CLOCK_MONOTONIC

cdef extern from *:
    """
    static inline unsigned long long sr_load_acquire(unsigned long long *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    static inline unsigned long long sr_load_relaxed(unsigned long long *p) {
        return __atomic_load_n(p, __ATOMIC_RELAXED);
    }
    static inline void sr_store_relaxed(unsigned long long *p, unsigned long long v) {
        __atomic_store_n(p, v, __ATOMIC_RELAXED);
    }
    static inline void sr_store_release(unsigned long long *p, unsigned long long v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline void sr_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
    static inline void sr_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
    """
    unsigned long long sr_load_acquire(unsigned long long* p) nogil
    unsigned long long sr_load_relaxed(unsigned long long* p) nogil
    void sr_store_relaxed(unsigned long long* p, unsigned long long v) nogil
    void sr_store_release(unsigned long long* p, unsigned long long v) nogil
    void sr_fence_release() nogil
    void sr_fence_acquire() nogil

cdef enum:
    HEADER_BYTES = 64  # before the data: the sequence number, padded to a cache line

HEADER = HEADER_BYTES


cdef inline unsigned long long* seq_of(uint8_t[::1] region):
    if region.shape[0] < HEADER_BYTES:
        raise ValueError("region smaller than the seqlock header")
    if (<size_t> &region[0]) % 8:
        raise ValueError("region not 8-byte aligned")
    return <unsigned long long*> &region[0]


def begin(uint8_t[::1] region):
    """Start a write: the sequence becomes odd. Returns it."""
    cdef unsigned long long* seq = seq_of(region)
    cdef unsigned long long s = sr_load_relaxed(seq)
    if s & 1:
        raise RuntimeError("a write is already in progress (two writers?)")
    sr_store_relaxed(seq, s + 1)
    sr_fence_release()
    return s + 1


def end(uint8_t[::1] region):
    """Finish a write: the sequence becomes even, publishing the data."""
    cdef unsigned long long* seq = seq_of(region)
    cdef unsigned long long s = sr_load_relaxed(seq)
    if not s & 1:
        raise RuntimeError("no write in progress")
    sr_store_release(seq, s + 1)
    return s + 1


cdef inline double seconds() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def write(uint8_t[::1] region, const uint8_t[::1] data):
    """Publish ``data`` (the whole data part) as one new version: begin, copy, end."""
    cdef unsigned long long* seq = seq_of(region)
    cdef Py_ssize_t n = region.shape[0] - HEADER_BYTES
    cdef unsigned long long s
    if data.shape[0] != n:
        raise ValueError(f"data has {data.shape[0]} bytes, the region {n}")
    with nogil:
        s = sr_load_relaxed(seq)
        if not s & 1:
            sr_store_relaxed(seq, s + 1)
            sr_fence_release()
            memcpy(&region[HEADER_BYTES], &data[0], n)
            sr_store_release(seq, s + 2)
    if s & 1:
        raise RuntimeError("a write is already in progress (two writers?)")
    return s + 2


def read_into(uint8_t[::1] region, uint8_t[::1] out, double timeout_ms=100.0):
    """Copy the data (the region after the header) into ``out`` as one consistent version.

    Returns the version's sequence number; raises TimeoutError if no stable version was seen
    for ``timeout_ms`` (a writer that died mid-write).
    """
    cdef unsigned long long* seq = seq_of(region)
    cdef Py_ssize_t n = region.shape[0] - HEADER_BYTES
    cdef unsigned long long s1 = 1, s2
    cdef int spins = 0
    cdef double give_up
    cdef bint ok = False
    if out.shape[0] != n:
        raise ValueError(f"out has {out.shape[0]} bytes, the data {n}")
    with nogil:
        give_up = seconds() + timeout_ms * 1e-3
        while True:
            s1 = sr_load_acquire(seq)
            if not s1 & 1:
                memcpy(&out[0], &region[HEADER_BYTES], n)
                sr_fence_acquire()
                s2 = sr_load_relaxed(seq)
                if s1 == s2:
                    ok = True
                    break
            spins += 1
            if spins > 64:
                if seconds() > give_up:
                    break
                sched_yield()
    if not ok:
        raise TimeoutError("no stable version: a writer is stuck mid-write")
    return s1
