/*
 * GroupNorm (eps 1e-5, biased variance like PyTorch, per-channel affine) with
 * an optional fused SiLU after the affine transform.
 *
 * Work unit: one (b, g) group, a contiguous [C/G, HW] block, handled entirely
 * by one thread (static schedule); nothing depends on the thread count.
 * Kernels: AVX-512 intrinsics (16 floats per vector, masked tails), AVX2 +
 * FMA (the same 16-lane sums on pairs of 8-float ymm), or portable C with the
 * same summation pattern; the SiLU variants are separate
 * instantiations (no branch in the loops).
 *
 * Sums use the fixed pattern of vecmath.h (16 float lanes over at most
 * DR_SUM_CHUNK values, then double accumulators reduced in a fixed order):
 * vectorized without -ffast-math, (near) double accuracy for long sums, and
 * results that depend only on the data.
 *
 * Forward statistics: one pass over memory (gn_stats). Each chunk of <= 512
 * values is read twice from L1: lane means first, then float sums of the
 * deviations from them and of their squares, so the float sums only carry
 * the chunk's own spread; chunks are combined exactly in double (Chan-style)
 * about the block's first value. A large mean (1000 +- 1), an outlier or
 * between-channel offsets keep float-rounding accuracy, like a two-pass
 * scheme (test_nn: test_groupnorm_stats). Then y = gamma xhat + beta
 * (silu'd), xhat = (x - mean) * rstd with the cached float mean / rstd.
 *
 * Backward, per (b, g) block: one pass computes, per channel row, sum(dy)
 * and sum(dy * xhat) in double (dy = dout, times the SiLU derivative when
 * fused); they give the group means of dxh = dy * gamma for the input
 * gradient (second pass over the block), and they are also the per-(b, c)
 * terms of dbeta / dgamma, summed over b = 0..B-1 in order afterwards.
 */
#include "nn/nn.h"
#include "nn/vecmath.h"

#include <math.h>

#define GN_EPS 1e-5

/* per-(b, c) row sums kept on the stack for the parameter gradients (64 KB) */
#define GN_ROWS_CAP 8192 /* doubles */

#if defined(__AVX512F__)
/* ================================================================ AVX-512 */

/* Mean and (biased) variance of n values in one pass over memory, robust
 * like a two-pass scheme (see the top of the file). Per chunk (<= 512 values,
 * in L1), lane l first takes its float mean mu_l, then sums d = x - mu_l and
 * d^2 in float (F, Q); the chunk goes into double sums about the block's
 * first value x0, with c values per lane and s = mu_l - x0:
 *   T1 += c s + F,   T2 += c s^2 + 2 s F + Q
 * so T1 = sum(x - x0) and T2 = sum((x - x0)^2) exactly but for the float
 * rounding of F and Q, which is relative to the chunk's own spread. */
static void gn_stats(const float *x, size_t n, double *mean, double *var) {
    const __m512d x0 = _mm512_set1_pd((double)x[0]);
    __m512d t1[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()}, t2[2] = {t1[0], t1[1]};
    size_t i = 0;
    while (n - i >= 16) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        const size_t end = i + (len & ~(size_t)15);
        const size_t c = (end - i) / 16;          // values per lane
        const __m512d cnt = _mm512_set1_pd((double)c);
        // per-lane shift: the lane's float mean over the chunk, sum(x / c)
        // (no overflow); any value near it would do, the sums below are
        // exact about whatever it is
        const __m512 rc = _mm512_set1_ps(1.0f / (float)c);
        __m512 f0 = _mm512_setzero_ps(), f1 = f0, q0 = f0, q1 = f0;
        size_t j = i;
        for (; j + 32 <= end; j += 32) {
            f0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + j), rc, f0);
            f1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + j + 16), rc, f1);
        }
        for (; j < end; j += 16) f0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + j), rc, f0);
        const __m512 sh = _mm512_add_ps(f0, f1);
        f0 = f1 = _mm512_setzero_ps();
        for (; i + 32 <= end; i += 32) {
            const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), sh);
            const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), sh);
            f0 = _mm512_add_ps(f0, d0);
            f1 = _mm512_add_ps(f1, d1);
            q0 = _mm512_fmadd_ps(d0, d0, q0);
            q1 = _mm512_fmadd_ps(d1, d1, q1);
        }
        for (; i < end; i += 16) {
            const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), sh);
            f0 = _mm512_add_ps(f0, d0);
            q0 = _mm512_fmadd_ps(d0, d0, q0);
        }
        const __m512 s1 = _mm512_add_ps(f0, f1), s2 = _mm512_add_ps(q0, q1);
        /* lanes 0-7 and 8-15 in double; the extract index must be a constant */
#define GN_HALF(h)                                                                          \
    do {                                                                                    \
        const __m256 sh_h = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sh), h)); \
        const __m256 s1_h = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s1), h)); \
        const __m256 s2_h = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s2), h)); \
        const __m512d sd = _mm512_sub_pd(_mm512_cvtps_pd(sh_h), x0); /* mu_l - x0 */          \
        const __m512d a1 = _mm512_cvtps_pd(s1_h), a2 = _mm512_cvtps_pd(s2_h);               \
        t1[h] = _mm512_add_pd(t1[h], _mm512_fmadd_pd(cnt, sd, a1));                         \
        /* c sd^2 + 2 sd S1 + S2 = sd (c sd + 2 S1) + S2 */                                  \
        const __m512d u = _mm512_fmadd_pd(cnt, sd, _mm512_add_pd(a1, a1));                  \
        t2[h] = _mm512_add_pd(t2[h], _mm512_fmadd_pd(sd, u, a2));                           \
    } while (0)
        GN_HALF(0);
        GN_HALF(1);
#undef GN_HALF
    }
    if (i < n) {                                   // ragged tail: in double directly
        const __mmask16 k = dr_mask16_(n - i);
        const __m512 xt = _mm512_maskz_loadu_ps(k, x + i);
#define GN_TAIL(h)                                                                          \
    do {                                                                                    \
        const __mmask8 kh = (__mmask8)(k >> (8 * (h)));                                     \
        const __m256 xh = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xt), h)); \
        const __m512d d = _mm512_maskz_sub_pd(kh, _mm512_cvtps_pd(xh), x0);                 \
        t1[h] = _mm512_add_pd(t1[h], d);                                                    \
        t2[h] = _mm512_fmadd_pd(d, d, t2[h]);                                               \
    } while (0)
        GN_TAIL(0);
        GN_TAIL(1);
#undef GN_TAIL
    }
    const double m = dr_hsum_pd_(t1) / (double)n;   // mean - x0
    const double v = dr_hsum_pd_(t2) / (double)n - m * m;
    *mean = (double)x[0] + m;
    *var = v > 0.0 ? v : 0.0;
}

/* a = gamma * ((x - m) * r) + beta, the pre-activation (same ops forward and
 * backward, so the backward recomputes the forward's exact value) */
static inline __m512 gn_pre(__m512 x, __m512 m, __m512 r, __m512 ga, __m512 be, __m512 *xh) {
    *xh = _mm512_mul_ps(_mm512_sub_ps(x, m), r);
    return _mm512_fmadd_ps(ga, *xh, be);
}

/* silu(a) = a sigmoid(a); exp(-a) overflow: sigmoid 0, a * 0 = -0 */
static inline __m512 gn_silu(__m512 a) { return dr_silu_ps512(a); }

/* y = norm(x) (optionally silu'd) over one channel row of n values */
static inline __attribute__((always_inline)) void gn_apply_(float *y, const float *x, size_t n,
                                                            float mf, float rf, float gaf,
                                                            float bef, const int silu) {
    const __m512 m = _mm512_set1_ps(mf), r = _mm512_set1_ps(rf);
    const __m512 ga = _mm512_set1_ps(gaf), be = _mm512_set1_ps(bef);
    __m512 xh;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 a = gn_pre(_mm512_loadu_ps(x + i), m, r, ga, be, &xh);
        if (silu) a = gn_silu(a);
        _mm512_storeu_ps(y + i, a);
    }
    if (i < n) {
        const __mmask16 k = dr_mask16_(n - i);
        __m512 a = gn_pre(_mm512_maskz_loadu_ps(k, x + i), m, r, ga, be, &xh);
        if (silu) a = gn_silu(a);
        _mm512_mask_storeu_ps(y + i, k, a);
    }
}

/* dL/d(pre-activation): dout, times d silu(a) / da when fused */
static inline __m512 gn_dy(__m512 d, __m512 xh, __m512 ga, __m512 be, const int silu) {
    if (!silu) return d;
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 a = _mm512_fmadd_ps(ga, xh, be);
    __m512 om;                                   // 1 - s, accurate near s = 1
    const __m512 s = dr_sigmoid2_ps512(a, &om);
    // dout * s * (1 + a (1 - s)); s = 0 for very negative a: 0 * finite, no NaN
    return _mm512_mul_ps(_mm512_mul_ps(d, s), _mm512_fmadd_ps(a, om, one));
}

/* Over one channel row: *sdy = sum(dy), *sdx = sum(dy * xhat); with upd,
 * also dinp += rg * dy (the dxh part of the input gradient, see below). */
static inline __attribute__((always_inline)) void gn_row_sums_(float *dinp, float rgf,
                                                               const float *dout, const float *x,
                                                               size_t n, float mf, float rf,
                                                               float gaf, float bef, const int silu,
                                                               const int upd, double *sdy,
                                                               double *sdx) {
    const __m512 m = _mm512_set1_ps(mf), r = _mm512_set1_ps(rf), rg = _mm512_set1_ps(rgf);
    const __m512 ga = _mm512_set1_ps(gaf), be = _mm512_set1_ps(bef);
    __m512d a1[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()}, a2[2] = {a1[0], a1[1]};
    size_t i = 0;
    while (n - i >= 16) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        const size_t end = i + (len & ~(size_t)15);
        __m512 f0 = _mm512_setzero_ps(), f1 = f0, q0 = f0, q1 = f0;
        for (; i + 32 <= end; i += 32) {
            const __m512 xh0 = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), m), r);
            const __m512 xh1 = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), m), r);
            const __m512 d0 = gn_dy(_mm512_loadu_ps(dout + i), xh0, ga, be, silu);
            const __m512 d1 = gn_dy(_mm512_loadu_ps(dout + i + 16), xh1, ga, be, silu);
            if (upd) {
                _mm512_storeu_ps(dinp + i, _mm512_fmadd_ps(rg, d0, _mm512_loadu_ps(dinp + i)));
                _mm512_storeu_ps(dinp + i + 16, _mm512_fmadd_ps(rg, d1, _mm512_loadu_ps(dinp + i + 16)));
            }
            f0 = _mm512_add_ps(f0, d0);
            f1 = _mm512_add_ps(f1, d1);
            q0 = _mm512_fmadd_ps(d0, xh0, q0);
            q1 = _mm512_fmadd_ps(d1, xh1, q1);
        }
        for (; i < end; i += 16) {
            const __m512 xh0 = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), m), r);
            const __m512 d0 = gn_dy(_mm512_loadu_ps(dout + i), xh0, ga, be, silu);
            if (upd) _mm512_storeu_ps(dinp + i, _mm512_fmadd_ps(rg, d0, _mm512_loadu_ps(dinp + i)));
            f0 = _mm512_add_ps(f0, d0);
            q0 = _mm512_fmadd_ps(d0, xh0, q0);
        }
        dr_flush_pd_(a1, _mm512_add_ps(f0, f1));
        dr_flush_pd_(a2, _mm512_add_ps(q0, q1));
    }
    if (i < n) {
        const __mmask16 k = dr_mask16_(n - i);
        const __m512 xh0 = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m), r);
        const __m512 d0 = _mm512_maskz_mov_ps(k, gn_dy(_mm512_maskz_loadu_ps(k, dout + i), xh0, ga, be, silu));
        if (upd)
            _mm512_mask_storeu_ps(dinp + i, k, _mm512_fmadd_ps(rg, d0, _mm512_maskz_loadu_ps(k, dinp + i)));
        dr_flush_pd_(a1, d0);
        dr_flush_pd_(a2, _mm512_maskz_mul_ps(k, d0, xh0));
    }
    *sdy = dr_hsum_pd_(a1);
    *sdx = dr_hsum_pd_(a2);
}

/* dinp += c0 + c1 * xhat over one channel row (the rest of the input
 * gradient once rg * dy is in) */
static void gn_row_corr(float *dinp, const float *x, size_t n, float mf, float rf, float c0f,
                        float c1f) {
    const __m512 m = _mm512_set1_ps(mf), r = _mm512_set1_ps(rf);
    const __m512 c0 = _mm512_set1_ps(c0f), c1 = _mm512_set1_ps(c1f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), m), r);
        _mm512_storeu_ps(dinp + i, _mm512_add_ps(_mm512_loadu_ps(dinp + i), _mm512_fmadd_ps(c1, xh, c0)));
    }
    if (i < n) {
        const __mmask16 k = dr_mask16_(n - i);
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m), r);
        _mm512_mask_storeu_ps(dinp + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, dinp + i), _mm512_fmadd_ps(c1, xh, c0)));
    }
}

/* dinp += r * (dxh - m1 - xhat * m2), dxh = dout * gamma (no SiLU), over one row */
static void gn_row_dinp(float *dinp, const float *dout, const float *x, size_t n, float mf,
                        float rf, float gaf, float m1f, float m2f) {
    const __m512 m = _mm512_set1_ps(mf), r = _mm512_set1_ps(rf), ga = _mm512_set1_ps(gaf);
    const __m512 m1 = _mm512_set1_ps(m1f), m2 = _mm512_set1_ps(m2f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), m), r);
        const __m512 dxh = _mm512_mul_ps(_mm512_loadu_ps(dout + i), ga);
        const __m512 t = _mm512_fnmadd_ps(xh, m2, _mm512_sub_ps(dxh, m1));
        _mm512_storeu_ps(dinp + i, _mm512_fmadd_ps(r, t, _mm512_loadu_ps(dinp + i)));
    }
    if (i < n) {
        const __mmask16 k = dr_mask16_(n - i);
        const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m), r);
        const __m512 dxh = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, dout + i), ga);
        const __m512 t = _mm512_fnmadd_ps(xh, m2, _mm512_sub_ps(dxh, m1));
        _mm512_mask_storeu_ps(dinp + i, k, _mm512_fmadd_ps(r, t, _mm512_maskz_loadu_ps(k, dinp + i)));
    }
}

#elif defined(__AVX2__) && defined(__FMA__)
/* ================================================================ AVX2 + FMA */
/* The AVX-512 kernels above, op for op, on 8-lane ymm (CPUs without AVX-512,
 * e.g. AMD Zen 3). The sums keep the AVX-512 16-lane pattern: each 16-float
 * register is a pair of ymm (dr_v16_ in vecmath.h, lanes 0-7 and 8-15) and
 * each pair of 8-double registers is 4 ymm of 4 doubles (lanes 4q..4q+3),
 * reduced by dr_hsum_pd_ in the AVX-512 pairing; the per-lane double updates
 * are elementwise. So the statistics and the row sums are the same values,
 * added in the same order, as on AVX-512. The elementwise passes (apply,
 * input gradient) just run 8 lanes at a time with a masked tail. The exp is
 * dr_expf's bits; the sigmoid here divides (see vecmath.h), so the fused
 * SiLU may differ from the AVX-512 build by an ulp. */

/* One chunk's 4 lanes (quarter q of 16) into the double sums about x0:
 * T1 += c s + F, T2 += s (c s + 2 F) + Q, s = mu_l - x0 (see the AVX-512 gn_stats) */
static inline void gn_quarter_(__m256d *t1, __m256d *t2, __m128 sh, __m128 s1, __m128 s2,
                               __m256d cnt, __m256d x0) {
    const __m256d sd = _mm256_sub_pd(_mm256_cvtps_pd(sh), x0);          // mu_l - x0
    const __m256d a1 = _mm256_cvtps_pd(s1), a2 = _mm256_cvtps_pd(s2);
    *t1 = _mm256_add_pd(*t1, _mm256_fmadd_pd(cnt, sd, a1));
    const __m256d u = _mm256_fmadd_pd(cnt, sd, _mm256_add_pd(a1, a1));
    *t2 = _mm256_add_pd(*t2, _mm256_fmadd_pd(sd, u, a2));
}

/* Mean and (biased) variance of n values in one pass over memory, robust
 * like a two-pass scheme: the AVX-512 gn_stats with 16 lanes as two ymm. */
static void gn_stats(const float *x, size_t n, double *mean, double *var) {
    const __m256d x0 = _mm256_set1_pd((double)x[0]);
    __m256d t1[4], t2[4];
    for (int q = 0; q < 4; q++) t1[q] = t2[q] = _mm256_setzero_pd();
    size_t i = 0;
    while (n - i >= 16) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        const size_t end = i + (len & ~(size_t)15);
        const size_t c = (end - i) / 16;          // values per lane
        const __m256d cnt = _mm256_set1_pd((double)c);
        // per-lane shift: the lane's float mean over the chunk (any value
        // near it would do, the sums below are exact about whatever it is)
        const dr_v16_ rc = dr_v16_set1_(1.0f / (float)c);
        dr_v16_ f0 = dr_v16_zero_(), f1 = f0, q0 = f0, q1 = f0;
        size_t j = i;
        for (; j + 32 <= end; j += 32) {
            f0 = dr_v16_fmadd_(dr_v16_load_(x + j), rc, f0);
            f1 = dr_v16_fmadd_(dr_v16_load_(x + j + 16), rc, f1);
        }
        for (; j < end; j += 16) f0 = dr_v16_fmadd_(dr_v16_load_(x + j), rc, f0);
        const dr_v16_ sh = dr_v16_add_(f0, f1);
        f0 = f1 = dr_v16_zero_();
        for (; i + 32 <= end; i += 32) {
            const dr_v16_ d0 = dr_v16_sub_(dr_v16_load_(x + i), sh);
            const dr_v16_ d1 = dr_v16_sub_(dr_v16_load_(x + i + 16), sh);
            f0 = dr_v16_add_(f0, d0);
            f1 = dr_v16_add_(f1, d1);
            q0 = dr_v16_fmadd_(d0, d0, q0);
            q1 = dr_v16_fmadd_(d1, d1, q1);
        }
        for (; i < end; i += 16) {
            const dr_v16_ d0 = dr_v16_sub_(dr_v16_load_(x + i), sh);
            f0 = dr_v16_add_(f0, d0);
            q0 = dr_v16_fmadd_(d0, d0, q0);
        }
        const dr_v16_ s1 = dr_v16_add_(f0, f1), s2 = dr_v16_add_(q0, q1);
        gn_quarter_(&t1[0], &t2[0], _mm256_castps256_ps128(sh.lo), _mm256_castps256_ps128(s1.lo),
                    _mm256_castps256_ps128(s2.lo), cnt, x0);
        gn_quarter_(&t1[1], &t2[1], _mm256_extractf128_ps(sh.lo, 1), _mm256_extractf128_ps(s1.lo, 1),
                    _mm256_extractf128_ps(s2.lo, 1), cnt, x0);
        gn_quarter_(&t1[2], &t2[2], _mm256_castps256_ps128(sh.hi), _mm256_castps256_ps128(s1.hi),
                    _mm256_castps256_ps128(s2.hi), cnt, x0);
        gn_quarter_(&t1[3], &t2[3], _mm256_extractf128_ps(sh.hi, 1), _mm256_extractf128_ps(s1.hi, 1),
                    _mm256_extractf128_ps(s2.hi, 1), cnt, x0);
    }
    if (i < n) {                                   // ragged tail (< 16): in double directly
        const ptrdiff_t rem = (ptrdiff_t)(n - i);
        const __m256i k0 = dr_mask8_(rem), k1 = dr_mask8_(rem - 8);
        const __m256 xl = _mm256_maskload_ps(x + i, k0), xu = _mm256_maskload_ps(x + i + 8, k1);
        const __m128 xq[4] = {_mm256_castps256_ps128(xl), _mm256_extractf128_ps(xl, 1),
                              _mm256_castps256_ps128(xu), _mm256_extractf128_ps(xu, 1)};
        const __m128i kq[4] = {_mm256_castsi256_si128(k0), _mm256_extracti128_si256(k0, 1),
                               _mm256_castsi256_si128(k1), _mm256_extracti128_si256(k1, 1)};
        for (int q = 0; q < 4; q++) {
            // off lanes: d = +0 (like maskz_sub_pd), adds nothing
            const __m256d kd = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(kq[q]));
            const __m256d d = _mm256_and_pd(_mm256_sub_pd(_mm256_cvtps_pd(xq[q]), x0), kd);
            t1[q] = _mm256_add_pd(t1[q], d);
            t2[q] = _mm256_fmadd_pd(d, d, t2[q]);
        }
    }
    const double m = dr_hsum_pd_(t1) / (double)n;   // mean - x0
    const double v = dr_hsum_pd_(t2) / (double)n - m * m;
    *mean = (double)x[0] + m;
    *var = v > 0.0 ? v : 0.0;
}

/* a = gamma * ((x - m) * r) + beta, the pre-activation (same ops forward and
 * backward, so the backward recomputes the forward's exact value) */
static inline __m256 gn_pre(__m256 x, __m256 m, __m256 r, __m256 ga, __m256 be, __m256 *xh) {
    *xh = _mm256_mul_ps(_mm256_sub_ps(x, m), r);
    return _mm256_fmadd_ps(ga, *xh, be);
}

/* silu(a) = a / (1 + exp(-a)); exp(-a) overflow: a / inf = -0 */
static inline __m256 gn_silu(__m256 a) { return dr_silu_ps256(a); }

/* y = norm(x) (optionally silu'd) over one channel row of n values */
static inline __attribute__((always_inline)) void gn_apply_(float *y, const float *x, size_t n,
                                                            float mf, float rf, float gaf,
                                                            float bef, const int silu) {
    const __m256 m = _mm256_set1_ps(mf), r = _mm256_set1_ps(rf);
    const __m256 ga = _mm256_set1_ps(gaf), be = _mm256_set1_ps(bef);
    __m256 xh;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = gn_pre(_mm256_loadu_ps(x + i), m, r, ga, be, &xh);
        if (silu) a = gn_silu(a);
        _mm256_storeu_ps(y + i, a);
    }
    if (i < n) {
        const __m256i k = dr_mask8_((ptrdiff_t)(n - i));
        __m256 a = gn_pre(_mm256_maskload_ps(x + i, k), m, r, ga, be, &xh);
        if (silu) a = gn_silu(a);
        _mm256_maskstore_ps(y + i, k, a);
    }
}

/* dL/d(pre-activation): dout, times d silu(a) / da when fused */
static inline __m256 gn_dy(__m256 d, __m256 xh, __m256 ga, __m256 be, const int silu) {
    if (!silu) return d;
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 a = _mm256_fmadd_ps(ga, xh, be);
    __m256 om;                                   // 1 - s, accurate near s = 1
    const __m256 s = dr_sigmoid2_ps256(a, &om);
    // dout * s * (1 + a (1 - s)); s = 0 for very negative a: 0 * finite, no NaN
    return _mm256_mul_ps(_mm256_mul_ps(d, s), _mm256_fmadd_ps(a, om, one));
}

/* 8 lanes of the row sums' body: xhat, dy, and with upd dinp += rg * dy */
static inline __attribute__((always_inline)) __m256 gn_dy8_(float *dinp, const float *dout,
                                                             const float *x, __m256 m, __m256 r,
                                                             __m256 rg, __m256 ga, __m256 be,
                                                             const int silu, const int upd,
                                                             __m256 *xh) {
    *xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x), m), r);
    const __m256 d = gn_dy(_mm256_loadu_ps(dout), *xh, ga, be, silu);
    if (upd) _mm256_storeu_ps(dinp, _mm256_fmadd_ps(rg, d, _mm256_loadu_ps(dinp)));
    return d;
}

/* Over one channel row: *sdy = sum(dy), *sdx = sum(dy * xhat); with upd,
 * also dinp += rg * dy. The AVX-512 summation pattern (32 values a step into
 * two 16-lane registers f0 / f1, 16 at a time after that). */
static inline __attribute__((always_inline)) void gn_row_sums_(float *dinp, float rgf,
                                                               const float *dout, const float *x,
                                                               size_t n, float mf, float rf,
                                                               float gaf, float bef, const int silu,
                                                               const int upd, double *sdy,
                                                               double *sdx) {
    const __m256 m = _mm256_set1_ps(mf), r = _mm256_set1_ps(rf), rg = _mm256_set1_ps(rgf);
    const __m256 ga = _mm256_set1_ps(gaf), be = _mm256_set1_ps(bef);
    __m256d a1[4], a2[4];
    for (int q = 0; q < 4; q++) a1[q] = a2[q] = _mm256_setzero_pd();
    size_t i = 0;
    // dinp + i is only formed (and used) when upd
#define GN_DY8(o, xh) gn_dy8_(upd ? dinp + i + (o) : NULL, dout + i + (o), x + i + (o), m, r, rg, ga, be, silu, upd, &(xh))
    while (n - i >= 16) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        const size_t end = i + (len & ~(size_t)15);
        dr_v16_ f0 = dr_v16_zero_(), f1 = f0, q0 = f0, q1 = f0;
        for (; i + 32 <= end; i += 32) {
            dr_v16_ xh0, xh1, d0, d1;
            d0.lo = GN_DY8(0, xh0.lo);
            d0.hi = GN_DY8(8, xh0.hi);
            d1.lo = GN_DY8(16, xh1.lo);
            d1.hi = GN_DY8(24, xh1.hi);
            f0 = dr_v16_add_(f0, d0);
            f1 = dr_v16_add_(f1, d1);
            q0 = dr_v16_fmadd_(d0, xh0, q0);
            q1 = dr_v16_fmadd_(d1, xh1, q1);
        }
        for (; i < end; i += 16) {
            dr_v16_ xh0, d0;
            d0.lo = GN_DY8(0, xh0.lo);
            d0.hi = GN_DY8(8, xh0.hi);
            f0 = dr_v16_add_(f0, d0);
            q0 = dr_v16_fmadd_(d0, xh0, q0);
        }
        dr_flush_pd_(a1, dr_v16_add_(f0, f1));
        dr_flush_pd_(a2, dr_v16_add_(q0, q1));
    }
#undef GN_DY8
    if (i < n) {                                 // < 16 left: masked, 0 in the off lanes
        const ptrdiff_t rem = (ptrdiff_t)(n - i);
        const __m256i k[2] = {dr_mask8_(rem), dr_mask8_(rem - 8)};
        dr_v16_ d0, p0;
        for (int h = 0; h < 2; h++) {
            const size_t o = i + 8 * (size_t)h;
            const __m256 kf = _mm256_castsi256_ps(k[h]);
            const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + o, k[h]), m), r);
            const __m256 d = _mm256_and_ps(gn_dy(_mm256_maskload_ps(dout + o, k[h]), xh, ga, be, silu), kf);
            if (upd)
                _mm256_maskstore_ps(dinp + o, k[h], _mm256_fmadd_ps(rg, d, _mm256_maskload_ps(dinp + o, k[h])));
            const __m256 p = _mm256_and_ps(_mm256_mul_ps(d, xh), kf);
            if (h == 0) d0.lo = d, p0.lo = p;
            else d0.hi = d, p0.hi = p;
        }
        dr_flush_pd_(a1, d0);
        dr_flush_pd_(a2, p0);
    }
    *sdy = dr_hsum_pd_(a1);
    *sdx = dr_hsum_pd_(a2);
}

/* dinp += c0 + c1 * xhat over one channel row (the rest of the input
 * gradient once rg * dy is in) */
static void gn_row_corr(float *dinp, const float *x, size_t n, float mf, float rf, float c0f,
                        float c1f) {
    const __m256 m = _mm256_set1_ps(mf), r = _mm256_set1_ps(rf);
    const __m256 c0 = _mm256_set1_ps(c0f), c1 = _mm256_set1_ps(c1f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), r);
        _mm256_storeu_ps(dinp + i, _mm256_add_ps(_mm256_loadu_ps(dinp + i), _mm256_fmadd_ps(c1, xh, c0)));
    }
    if (i < n) {
        const __m256i k = dr_mask8_((ptrdiff_t)(n - i));
        const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), m), r);
        _mm256_maskstore_ps(dinp + i, k, _mm256_add_ps(_mm256_maskload_ps(dinp + i, k), _mm256_fmadd_ps(c1, xh, c0)));
    }
}

/* dinp += r * (dxh - m1 - xhat * m2), dxh = dout * gamma (no SiLU), over one row */
static void gn_row_dinp(float *dinp, const float *dout, const float *x, size_t n, float mf,
                        float rf, float gaf, float m1f, float m2f) {
    const __m256 m = _mm256_set1_ps(mf), r = _mm256_set1_ps(rf), ga = _mm256_set1_ps(gaf);
    const __m256 m1 = _mm256_set1_ps(m1f), m2 = _mm256_set1_ps(m2f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), r);
        const __m256 dxh = _mm256_mul_ps(_mm256_loadu_ps(dout + i), ga);
        const __m256 t = _mm256_fnmadd_ps(xh, m2, _mm256_sub_ps(dxh, m1));
        _mm256_storeu_ps(dinp + i, _mm256_fmadd_ps(r, t, _mm256_loadu_ps(dinp + i)));
    }
    if (i < n) {
        const __m256i k = dr_mask8_((ptrdiff_t)(n - i));
        const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), m), r);
        const __m256 dxh = _mm256_mul_ps(_mm256_maskload_ps(dout + i, k), ga);
        const __m256 t = _mm256_fnmadd_ps(xh, m2, _mm256_sub_ps(dxh, m1));
        _mm256_maskstore_ps(dinp + i, k, _mm256_fmadd_ps(r, t, _mm256_maskload_ps(dinp + i, k)));
    }
}

#else
/* ================================================================ portable */
/* The same fixed summation pattern with 16 float lanes in an array (the
 * compiler may vectorize the lane loops; the pattern does not depend on it). */

static void gn_stats(const float *x, size_t n, double *mean, double *var) {
    const double x0 = x[0];
    double t1 = 0.0, t2 = 0.0;
    size_t i = 0;
    while (n - i >= DR_SUM_W) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        const size_t end = i + len / DR_SUM_W * DR_SUM_W;
        const double cnt = (double)((end - i) / DR_SUM_W);
        float sh[DR_SUM_W] = {0}, f[DR_SUM_W] = {0}, q[DR_SUM_W] = {0};
        const float rc = 1.0f / (float)cnt;
        for (size_t j = i; j < end; j += DR_SUM_W)                        // lane means
            for (int l = 0; l < DR_SUM_W; l++) sh[l] += x[j + l] * rc;
        for (; i < end; i += DR_SUM_W)
            for (int l = 0; l < DR_SUM_W; l++) {
                const float d = x[i + l] - sh[l];
                f[l] += d;
                q[l] += d * d;
            }
        double c1 = 0.0, c2 = 0.0;
        for (int l = 0; l < DR_SUM_W; l++) {
            const double sd = (double)sh[l] - x0;
            c1 += cnt * sd + f[l];
            c2 += sd * (cnt * sd + 2.0 * f[l]) + q[l];
        }
        t1 += c1;
        t2 += c2;
    }
    for (; i < n; i++) {
        const double d = (double)x[i] - x0;
        t1 += d;
        t2 += d * d;
    }
    const double m = t1 / (double)n, v = t2 / (double)n - m * m;
    *mean = x0 + m;
    *var = v > 0.0 ? v : 0.0;
}

static inline float gn_dy1(float d, float xh, float ga, float be, const int silu) {
    if (!silu) return d;
    const float a = ga * xh + be;
    float om;
    const float s = dr_sigmoid2f(a, &om);
    return d * s * (1.0f + a * om);
}

static inline void gn_apply_(float *y, const float *x, size_t n, float mf, float rf, float ga,
                             float be, const int silu) {
    for (size_t i = 0; i < n; i++) {
        const float a = ga * ((x[i] - mf) * rf) + be;
        y[i] = silu ? a / (1.0f + dr_expf(-a)) : a;
    }
}

static inline void gn_row_sums_(float *dinp, float rg, const float *dout, const float *x,
                                size_t n, float mf, float rf, float ga, float be, const int silu,
                                const int upd, double *sdy, double *sdx) {
    double a1 = 0.0, a2 = 0.0;
    for (size_t i = 0; i < n;) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        float f[DR_SUM_W] = {0}, q[DR_SUM_W] = {0};
        for (size_t j = 0; j < len; j++) {
            const float xh = (x[i + j] - mf) * rf;
            const float dy = gn_dy1(dout[i + j], xh, ga, be, silu);
            if (upd) dinp[i + j] += rg * dy;
            f[j % DR_SUM_W] += dy;
            q[j % DR_SUM_W] += dy * xh;
        }
        a1 += dr_lanes_sum_(f);
        a2 += dr_lanes_sum_(q);
        i += len;
    }
    *sdy = a1;
    *sdx = a2;
}

static void gn_row_corr(float *dinp, const float *x, size_t n, float mf, float rf, float c0,
                        float c1) {
    for (size_t i = 0; i < n; i++) dinp[i] += c1 * ((x[i] - mf) * rf) + c0;
}

static void gn_row_dinp(float *dinp, const float *dout, const float *x, size_t n, float mf,
                        float rf, float ga, float m1, float m2) {
    for (size_t i = 0; i < n; i++) {
        const float xh = (x[i] - mf) * rf;
        dinp[i] += rf * (dout[i] * ga - m1 - xh * m2);
    }
}
#endif

/* ================================================================ shared */

/* silu as a compile-time constant in each kernel: no branch in the loops */
static void gn_apply(float *y, const float *x, size_t n, float mf, float rf, float ga, float be) {
    gn_apply_(y, x, n, mf, rf, ga, be, 0);
}
static void gn_apply_silu(float *y, const float *x, size_t n, float mf, float rf, float ga,
                          float be) {
    gn_apply_(y, x, n, mf, rf, ga, be, 1);
}
/* row sums; with dinp (fused SiLU only), also dinp += rg * dy */
static void gn_row_sums(float *dinp, float rg, const float *dout, const float *x, size_t n,
                        float mf, float rf, float ga, float be, int silu, double *sdy,
                        double *sdx) {
    if (silu && dinp)
        gn_row_sums_(dinp, rg, dout, x, n, mf, rf, ga, be, 1, 1, sdy, sdx);
    else if (silu)
        gn_row_sums_(NULL, 0.0f, dout, x, n, mf, rf, ga, be, 1, 0, sdy, sdx);
    else
        gn_row_sums_(NULL, 0.0f, dout, x, n, mf, rf, ga, be, 0, 0, sdy, sdx);
}

void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *gamma, const float *beta, int B, int C, int HW, int G,
                       int silu) {
    const int Cg = C / G;                        // channels per group
    const size_t gsize = (size_t)Cg * HW;        // values per group, contiguous in NCHW
    if (gsize == 0) return;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int bg = 0; bg < B * G; bg++) {         // one (b, g) group per iteration
        const int g = bg % G;
        const float *x = inp + (size_t)bg * gsize;   // [Cg, HW]
        float *y = out + (size_t)bg * gsize;         // [Cg, HW]
        double m, v;                             // one pass over the block
        gn_stats(x, gsize, &m, &v);
        const float mf = (float)m;
        const float rf = (float)(1.0 / sqrt(v + GN_EPS));
        mean[bg] = mf;
        rstd[bg] = rf;
        // normalize with the cached float values, so the backward
        //    recomputes exactly the same pre-activation
        for (int cc = 0; cc < Cg; cc++) {        // channel inside the group
            const int c = g * Cg + cc;
            const float *xc = x + (size_t)cc * HW;
            float *yc = y + (size_t)cc * HW;
            if (silu)
                gn_apply_silu(yc, xc, (size_t)HW, mf, rf, gamma[c], beta[c]);
            else
                gn_apply(yc, xc, (size_t)HW, mf, rf, gamma[c], beta[c]);
        }
    }
}

/* One (b, g) block: row sums of every channel (into rows [Cg][2] when not
 * NULL), then the input gradient when dinp is not NULL. Pointers are to the
 * block ([Cg, HW]) and to the group's gamma / beta.
 *
 * dx = r (dxh - m1 - xhat m2): without SiLU a second pass recomputes dxh =
 * dout * gamma (free). With the fused SiLU dy costs an exp, so the first pass
 * already adds r gamma dy and the second only adds -r (m1 + xhat m2). */
static void gn_block_backward(float *dinp, double *rows, const float *dout, const float *x,
                              int Cg, int HW, float mf, float rf, const float *gamma,
                              const float *beta, int silu) {
    double s1 = 0.0, s2 = 0.0;                   // sum dxh, sum dxh * xhat (dxh = dy * gamma)
    for (int cc = 0; cc < Cg; cc++) {
        const size_t off = (size_t)cc * HW;
        double sdy, sdx;
        gn_row_sums(silu && dinp ? dinp + off : NULL, rf * gamma[cc], dout + off, x + off,
                    (size_t)HW, mf, rf, gamma[cc], beta[cc], silu, &sdy, &sdx);
        if (rows) rows[2 * cc] = sdy, rows[2 * cc + 1] = sdx;
        s1 += (double)gamma[cc] * sdy;
        s2 += (double)gamma[cc] * sdx;
    }
    if (!dinp) return;
    const double n = (double)Cg * HW;
    const float m1 = (float)(s1 / n);            // mean(dxh)
    const float m2 = (float)(s2 / n);            // mean(dxh * xhat)
    for (int cc = 0; cc < Cg; cc++) {
        const size_t off = (size_t)cc * HW;
        if (silu)
            gn_row_corr(dinp + off, x + off, (size_t)HW, mf, rf, -rf * m1, -rf * m2);
        else
            gn_row_dinp(dinp + off, dout + off, x + off, (size_t)HW, mf, rf, gamma[cc], m1, m2);
    }
}

/*
 * dx = rstd * (dxh - mean(dxh) - xhat * mean(dxh * xhat)), dxh = dy * gamma;
 * dbeta[c] = sum_b sum_hw dy, dgamma[c] = sum_b sum_hw dy * xhat.
 *
 * The per-(b, c) row sums are kept in a stack buffer: samples go through it
 * in chunks, and after each chunk the rows are added, b in increasing order,
 * into the running totals held in sample slot 0. When even two samples do not
 * fit (C > GN_ROWS_CAP / 4), the parameter gradients are computed per channel
 * instead, with the same row sums added in the same order: the same bits.
 */
void groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *inp, const float *mean, const float *rstd,
                        const float *gamma, const float *beta, int B, int C, int HW, int G,
                        int silu) {
    const int Cg = C / G;                        // channels per group
    const size_t gsize = (size_t)Cg * HW;        // values per group
    const int want_p = dgamma || dbeta;
    if (gsize == 0 || B <= 0 || (!want_p && !dinp)) return;
    const size_t rowc = 2 * (size_t)C;           // doubles per sample: [C][sum dy, sum dy*xhat]
    const int nslot = want_p ? (int)(GN_ROWS_CAP / rowc) : 0;

    if (want_p && nslot >= (B > 1 ? 2 : 1)) {
        double rows[GN_ROWS_CAP];                // [nslot][C][2]
        // chunk 0 fills slots 0.., later chunks slots 1.. (slot 0: totals)
        for (int b0 = 0; b0 < B;) {
            const int first = b0 == 0 ? 0 : 1;
            const int nb = B - b0 < nslot - first ? B - b0 : nslot - first;
            double *slots = rows + (size_t)first * rowc;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
            for (int j = 0; j < nb * G; j++) {
                const int bl = j / G, g = j % G, bg = (b0 + bl) * G + g;
                const size_t base = (size_t)bg * gsize;
                gn_block_backward(dinp ? dinp + base : NULL, slots + bl * rowc + 2 * (size_t)g * Cg,
                                  dout + base, inp + base, Cg, HW, mean[bg], rstd[bg],
                                  gamma + (size_t)g * Cg, beta + (size_t)g * Cg, silu);
            }
            for (int s = 1; s < first + nb; s++)      // totals += sample rows, b in order
                for (size_t i = 0; i < rowc; i++) rows[i] += rows[(size_t)s * rowc + i];
            b0 += nb;
        }
        for (int c = 0; c < C; c++) {
            if (dbeta) dbeta[c] += (float)rows[2 * c];
            if (dgamma) dgamma[c] += (float)rows[2 * c + 1];
        }
        return;
    }

    // input gradient only, or channels too many for the buffer
    if (dinp) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
        for (int bg = 0; bg < B * G; bg++) {
            const int g = bg % G;
            const size_t base = (size_t)bg * gsize;
            gn_block_backward(dinp + base, NULL, dout + base, inp + base, Cg, HW, mean[bg],
                              rstd[bg], gamma + (size_t)g * Cg, beta + (size_t)g * Cg, silu);
        }
    }
    if (want_p) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
        for (int c = 0; c < C; c++) {
            const int g = c / Cg;
            double tdy = 0.0, tdx = 0.0;
            for (int b = 0; b < B; b++) {
                const size_t off = ((size_t)b * C + c) * HW;     // [b, c, :]
                double sdy, sdx;
                gn_row_sums(NULL, 0.0f, dout + off, inp + off, (size_t)HW, mean[b * G + g],
                            rstd[b * G + g], gamma[c], beta[c], silu, &sdy, &sdx);
                if (b == 0)
                    tdy = sdy, tdx = sdx;
                else
                    tdy += sdy, tdx += sdx;
            }
            if (dbeta) dbeta[c] += (float)tdy;
            if (dgamma) dgamma[c] += (float)tdx;
        }
    }
}
