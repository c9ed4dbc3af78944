/* window_sums.h: the three sums a current window needs, for three phases at once.
 * For each phase k of a point's window (three rows of n samples, contiguous):
 *   out[k] = sum x^2,  out[3 + k] = sum x cos_t,  out[6 + k] = sum x sin_t.
 *
 * The summation order is fixed by the code, not by the compiler or the CPU: four lanes of
 * partial sums, combined as (l0 + l1) + (l2 + l3), then the tail. GCC vector extensions are
 * lane-wise IEEE operations, and the build forbids contraction into FMA (-ffp-contract=off), so
 * the AVX2 clone (chosen at run time on x86-64 CPUs that have it) and the baseline clone give the
 * same bits. No -march=native needed.
 */
#ifndef SOFTRELAY_WINDOW_SUMS_H
#define SOFTRELAY_WINDOW_SUMS_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SR_CLONES
#endif

#if defined(__GNUC__)

typedef double sr_v4d __attribute__((vector_size(32)));

/* Macros, not functions: a vector passed by value across a function boundary would change
 * the calling convention between the baseline and the AVX2 clone. */
#define SR_LOAD(v, p) memcpy(&(v), (p), sizeof(v))
#define SR_HSUM(v) (((v)[0] + (v)[1]) + ((v)[2] + (v)[3]))

SR_CLONES
static void sr_window_sums3(const double *x, ptrdiff_t n, const double *cos_t,
                            const double *sin_t, double *out)
{
    const sr_v4d zero = {0.0, 0.0, 0.0, 0.0};
    sr_v4d sq0 = zero, sq1 = zero, sq2 = zero;
    sr_v4d re0 = zero, re1 = zero, re2 = zero;
    sr_v4d im0 = zero, im1 = zero, im2 = zero;
    const double *x0 = x, *x1 = x + n, *x2 = x + 2 * n;
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) {
        sr_v4d c, s, a, b, d;
        SR_LOAD(c, cos_t + i);
        SR_LOAD(s, sin_t + i);
        SR_LOAD(a, x0 + i);
        SR_LOAD(b, x1 + i);
        SR_LOAD(d, x2 + i);
        sq0 += a * a; re0 += a * c; im0 += a * s;
        sq1 += b * b; re1 += b * c; im1 += b * s;
        sq2 += d * d; re2 += d * c; im2 += d * s;
    }
    out[0] = SR_HSUM(sq0); out[1] = SR_HSUM(sq1); out[2] = SR_HSUM(sq2);
    out[3] = SR_HSUM(re0); out[4] = SR_HSUM(re1); out[5] = SR_HSUM(re2);
    out[6] = SR_HSUM(im0); out[7] = SR_HSUM(im1); out[8] = SR_HSUM(im2);
    for (; i < n; ++i) {
        out[0] += x0[i] * x0[i]; out[3] += x0[i] * cos_t[i]; out[6] += x0[i] * sin_t[i];
        out[1] += x1[i] * x1[i]; out[4] += x1[i] * cos_t[i]; out[7] += x1[i] * sin_t[i];
        out[2] += x2[i] * x2[i]; out[5] += x2[i] * cos_t[i]; out[8] += x2[i] * sin_t[i];
    }
}

#else /* plain C: the same order, lane by lane */

static void sr_window_sums3(const double *x, ptrdiff_t n, const double *cos_t,
                            const double *sin_t, double *out)
{
    for (int k = 0; k < 3; ++k) {
        const double *xk = x + k * n;
        double sq[4] = {0}, re[4] = {0}, im[4] = {0};
        ptrdiff_t i = 0;
        for (; i + 4 <= n; i += 4) {
            for (int l = 0; l < 4; ++l) {
                sq[l] += xk[i + l] * xk[i + l];
                re[l] += xk[i + l] * cos_t[i + l];
                im[l] += xk[i + l] * sin_t[i + l];
            }
        }
        out[k] = (sq[0] + sq[1]) + (sq[2] + sq[3]);
        out[3 + k] = (re[0] + re[1]) + (re[2] + re[3]);
        out[6 + k] = (im[0] + im[1]) + (im[2] + im[3]);
        for (; i < n; ++i) {
            out[k] += xk[i] * xk[i];
            out[3 + k] += xk[i] * cos_t[i];
            out[6 + k] += xk[i] * sin_t[i];
        }
    }
}

#endif
#endif /* SOFTRELAY_WINDOW_SUMS_H */
