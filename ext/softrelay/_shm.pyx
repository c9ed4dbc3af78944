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
spin, and gives up after ``timeout_ms`` (a writer that died mid-write). The C of both sides is
``seqlock.h``, shared with the Modbus server's reads (one give-up rule).
"""

from libc.stdint cimport uint8_t
from libc.string cimport memcpy

cdef extern from "seqlock.h" nogil:
    enum:
        SR_SEQLOCK_HEADER
    double SR_SEQLOCK_GIVE_UP_MS
    int sr_seqlock_read(unsigned long long* seq, const uint8_t* data, size_t n, uint8_t* out,
                        double give_up_ms, unsigned long long* sequence)
    int sr_seqlock_begin(unsigned long long* seq, unsigned long long* odd)
    int sr_seqlock_end(unsigned long long* seq, unsigned long long* even)

HEADER = SR_SEQLOCK_HEADER  #: before the data: the sequence number, padded to a cache line
GIVE_UP_MS = SR_SEQLOCK_GIVE_UP_MS  #: a reader's default give-up (seqlock.h's rule)


cdef inline unsigned long long* seq_of(uint8_t[::1] region):
    if region.shape[0] < SR_SEQLOCK_HEADER:
        raise ValueError("region smaller than the seqlock header")
    if (<size_t> &region[0]) % 8:
        raise ValueError("region not 8-byte aligned")
    return <unsigned long long*> &region[0]


def begin(uint8_t[::1] region):
    """Start a write: the sequence becomes odd. Returns it."""
    cdef unsigned long long odd
    if sr_seqlock_begin(seq_of(region), &odd):
        raise RuntimeError("a write is already in progress (two writers?)")
    return odd


def end(uint8_t[::1] region):
    """Finish a write: the sequence becomes even, publishing the data."""
    cdef unsigned long long even
    if sr_seqlock_end(seq_of(region), &even):
        raise RuntimeError("no write in progress")
    return even


def write(uint8_t[::1] region, const uint8_t[::1] data):
    """Publish ``data`` (the whole data part) as one new version: begin, copy, end."""
    cdef unsigned long long* seq = seq_of(region)
    cdef Py_ssize_t n = region.shape[0] - SR_SEQLOCK_HEADER
    cdef unsigned long long s
    cdef int busy
    if data.shape[0] != n:
        raise ValueError(f"data has {data.shape[0]} bytes, the region {n}")
    with nogil:
        busy = sr_seqlock_begin(seq, &s)
        if not busy:
            memcpy(&region[SR_SEQLOCK_HEADER], &data[0], n)
            sr_seqlock_end(seq, &s)
    if busy:
        raise RuntimeError("a write is already in progress (two writers?)")
    return s


def read_into(uint8_t[::1] region, uint8_t[::1] out, double timeout_ms=GIVE_UP_MS):
    """Copy the data (the region after the header) into ``out`` as one consistent version.

    Returns the version's sequence number; raises TimeoutError if no stable version was seen
    for ``timeout_ms`` (a writer that died mid-write). The rule is seqlock.h's, the one the
    Modbus server's reads follow.
    """
    cdef unsigned long long* seq = seq_of(region)
    cdef Py_ssize_t n = region.shape[0] - SR_SEQLOCK_HEADER
    cdef unsigned long long s1 = 0
    cdef int failed
    if out.shape[0] != n:
        raise ValueError(f"out has {out.shape[0]} bytes, the data {n}")
    with nogil:
        failed = sr_seqlock_read(seq, &region[SR_SEQLOCK_HEADER], n, &out[0], timeout_ms, &s1)
    if failed:
        raise TimeoutError("no stable version: a writer is stuck mid-write")
    return s1
