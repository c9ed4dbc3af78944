/* The seqlock over a shared-memory region, one implementation for every reader and writer in C
 * (ext/softrelay/_shm.pyx, the Modbus server's reads).
 *
 * The region's first 8 bytes are the sequence number, odd while a write is in progress; the
 * data follow the SR_SEQLOCK_HEADER bytes of header. Writer: the sequence made odd (then a
 * release fence), the data stored, the sequence made even with a release store. Reader: load
 * the sequence (acquire), copy, fence (acquire), reload; retry while it was odd or moved, so a
 * copy is exactly one writer's complete version. C11 atomics: correct on ARM's weak memory
 * model as on x86; the 64-bit sequence is loaded as one atomic (never torn on 32-bit ARM).
 *
 * The give-up rule, the same for every reader: spin SR_SEQLOCK_SPINS tries, then sleep
 * SR_SEQLOCK_NAP_NS between tries, and give up after give_up_ms of CLOCK_MONOTONIC (a writer
 * that died mid-write): the reader never blocks forever and never blocks the writer.
 *
 * Sleep, not sched_yield(): the scan reads the input image at SCHED_FIFO and the companion
 * that writes it runs at a lower priority, often on the same CPU. A writer preempted mid-write
 * by the scan's wake-up can only finish when the scan's thread leaves that CPU; sched_yield()
 * from a SCHED_FIFO thread gives the CPU to nobody below it, so the scan spun its whole
 * give-up (100 ms) and lost the scan (benchmarks/scan_latency.py, 2026-12-01). A nap lets the
 * writer run its last microseconds (tests/test_images.py holds it).
 */
#ifndef SR_SEQLOCK_H
#define SR_SEQLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define SR_SEQLOCK_HEADER 64       /* the sequence, padded to a cache line */
#define SR_SEQLOCK_SPINS 64
#define SR_SEQLOCK_GIVE_UP_MS 100.0
#define SR_SEQLOCK_NAP_NS 20000L  /* 20 us: a preempted writer finishes its copy */

static inline double sr_seqlock_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Copy n bytes from data (inside the region whose sequence is *seq) to out as one version.
 * 0 and the version's sequence in *sequence (0: nothing was ever published); -1 when no
 * stable version was seen within give_up_ms. */
static inline int sr_seqlock_read(unsigned long long *seq, const uint8_t *data, size_t n,
                                  uint8_t *out, double give_up_ms,
                                  unsigned long long *sequence) {
    int spins = 0;
    double give_up = 0.0;
    for (;;) {
        unsigned long long s1 = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
        if (!(s1 & 1)) {
            memcpy(out, data, n);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(seq, __ATOMIC_RELAXED) == s1) {
                *sequence = s1;
                return 0;
            }
        }
        if (++spins > SR_SEQLOCK_SPINS) {
            double now = sr_seqlock_seconds();
            if (give_up == 0.0) give_up = now + give_up_ms * 1e-3;
            else if (now > give_up) return -1;
            struct timespec nap = {0, SR_SEQLOCK_NAP_NS};
            nanosleep(&nap, NULL);
        }
    }
}

/* Writer: the sequence made odd; -1 (nothing changed) if a write is already in progress. */
static inline int sr_seqlock_begin(unsigned long long *seq, unsigned long long *odd) {
    unsigned long long s = __atomic_load_n(seq, __ATOMIC_RELAXED);
    if (s & 1) return -1;
    __atomic_store_n(seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    *odd = s + 1;
    return 0;
}

/* Writer: the sequence made even, publishing the data; -1 if no write was in progress. */
static inline int sr_seqlock_end(unsigned long long *seq, unsigned long long *even) {
    unsigned long long s = __atomic_load_n(seq, __ATOMIC_RELAXED);
    if (!(s & 1)) return -1;
    __atomic_store_n(seq, s + 1, __ATOMIC_RELEASE);
    *even = s + 1;
    return 0;
}

#endif
