/*
 * vecmath.h - a fast expf (scalar and AVX-512) for the SiLU / sigmoid of the
 * nn layers, built without -ffast-math (IEEE semantics stay intact).
 *
 * exp(x) = 2^n p(r), n = rint(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2]:
 *  - the Cephes two-constant ln 2 split (ln2_hi has 9 significant bits, so
 *    n * ln2_hi and x - n * ln2_hi are exact over the clamped range);
 *  - p: degree-6 polynomial in Horner form ending in fma(p, r, 1), so the
 *    last step rounds once (approximation error 1.1e-8, see DR_EXP_C*);
 *  - 2^n applied with one rounding (vscalefps; two exact power-of-two
 *    factors in the scalar code).
 * Max relative error over every 7th float of [-104, 89] with a normal result:
 * 8.1e-8 (about 1 ulp; test_nn sweeps it too).
 *
 * Limits: x is clamped to [-104, 89], so results below 2^-150 round to +0 and
 * results above FLT_MAX are +inf, exactly like libm's expf (exp(-1000) = 0,
 * exp(1000) = inf) and sigmoid / SiLU built on it have the right limits with
 * no NaN. NaN in gives NaN out (the clamps are written so NaN passes).
 *
 * dr_expf and dr_exp_ps512 / dr_expneg_ps512 give the same bits when the
 * compiler contracts a*b+c into FMA (GCC does by default for -march with
 * FMA). Sigmoid: the scalar one divides, the vector one uses rcp14 + Newton
 * (within 1 ulp of the division, not always the same bits).
 */
#ifndef DR_NN_VECMATH_H
#define DR_NN_VECMATH_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define DR_EXP_LO -104.0f           /* exp(-104) < 2^-149 / 2: rounds to 0 */
#define DR_EXP_HI 89.0f             /* exp(89) > FLT_MAX: becomes inf */
#define DR_LOG2E 1.44269504088896341f
#define DR_LN2_HI 0.693359375f      /* 9 significant bits */
#define DR_LN2_LO -2.12194440e-4f   /* ln 2 - DR_LN2_HI */
/* exp(r) ~ 1 + r (C1 + r (C2 + ... + r C6)) on [-ln2/2, ln2/2]: Chebyshev
 * fit of expm1(r)/r (mpmath), float coefficients, approximation error 1.1e-8 */
#define DR_EXP_C1 1.0f
#define DR_EXP_C2 0.5f
#define DR_EXP_C3 1.666650474e-1f
#define DR_EXP_C4 4.166646674e-2f
#define DR_EXP_C5 8.369148709e-3f
#define DR_EXP_C6 1.393364160e-3f
#define DR_RINT_MAGIC 12582912.0f   /* 1.5 * 2^23: (t + M) - M = rint(t), |t| < 2^22 */

static inline float dr_pow2i_(int e) {      /* 2^e for -126 <= e <= 127 */
    const uint32_t u = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Scalar fast expf (portable; also the reference of the vector version). */
static inline float dr_expf(float x) {
    x = x > DR_EXP_HI ? DR_EXP_HI : x;      /* comparisons are false for NaN: */
    x = x < DR_EXP_LO ? DR_EXP_LO : x;      /* NaN stays NaN */
    /* no -ffast-math: the compiler may not fold (t + M) - M */
    const float n = (x * DR_LOG2E + DR_RINT_MAGIC) - DR_RINT_MAGIC;
    float r = x - n * DR_LN2_HI;
    r = r - n * DR_LN2_LO;
    float p = DR_EXP_C6;
    p = p * r + DR_EXP_C5;
    p = p * r + DR_EXP_C4;
    p = p * r + DR_EXP_C3;
    p = p * r + DR_EXP_C2;
    p = p * r + DR_EXP_C1;
    p = p * r + 1.0f;
    /* 2^n in two exact steps (each factor normal), one rounding at the end;
     * for NaN x, p is NaN already and n must not reach the int conversion */
    const int ni = (int)(n == n ? n : 0.0f), n1 = ni / 2, n2 = ni - n1;
    return (p * dr_pow2i_(n1)) * dr_pow2i_(n2);
}

/* ---- sums in a fixed pattern, vectorized without -ffast-math
 * 16 float lanes (AVX-512: a few independent registers of 16) add at most
 * DR_SUM_CHUNK values, then the lanes are added into double accumulators,
 * reduced in a fixed order at the end: each float lane adds a few dozen
 * values at most, so long sums keep (near) double accuracy, and the result
 * depends only on the data and its length (never on threads). */
#define DR_SUM_CHUNK 512
#define DR_SUM_W 16

static inline double dr_lanes_sum_(const float f[DR_SUM_W]) {
    double s = 0.0;
    for (int l = 0; l < DR_SUM_W; l++) s += f[l];
    return s;
}

/* sigmoid(x) = 1 / (1 + exp(-x)); exp overflow gives 1/inf = 0, no NaN. */
static inline float dr_sigmoidf(float x) { return 1.0f / (1.0f + dr_expf(-x)); }

/* sigmoid(x) and 1 - sigmoid(x) = exp(-x) sigmoid(x) (see dr_sigmoid2_ps512) */
static inline float dr_sigmoid2f(float x, float *one_minus) {
    const float e = dr_expf(-x), s = 1.0f / (1.0f + e), om = e * s;
    *one_minus = om <= 1.0f ? om : 1.0f;    /* inf * 0 = NaN -> 1 */
    return s;
}

#if defined(__AVX512F__)
/* p(r) * 2^n for the reduced argument: 6 FMA and one vscalefps, which
 * rounds once and gives inf / subnormal / 0 on its own. */
static inline __m512 dr_exp_tail_ps512_(__m512 r, __m512 n) {
    __m512 p = _mm512_set1_ps(DR_EXP_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DR_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DR_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DR_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DR_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DR_EXP_C1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Sixteen dr_expf at once; same operations, same rounding (same bits). */
static inline __m512 dr_exp_ps512(__m512 x) {
    // min/max return the second operand when one is NaN: keep x second
    x = _mm512_min_ps(_mm512_set1_ps(DR_EXP_HI), x);
    x = _mm512_max_ps(_mm512_set1_ps(DR_EXP_LO), x);
    const __m512 magic = _mm512_set1_ps(DR_RINT_MAGIC);
    const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(DR_LOG2E), magic), magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(DR_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(DR_LN2_LO), r);
    return dr_exp_tail_ps512_(r, n);
}

/* exp(-x), the same bits as dr_exp_ps512(-x) without the negation. */
static inline __m512 dr_expneg_ps512(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(-DR_EXP_LO), x);
    x = _mm512_max_ps(_mm512_set1_ps(-DR_EXP_HI), x);
    const __m512 magic = _mm512_set1_ps(DR_RINT_MAGIC);
    const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(-DR_LOG2E), magic), magic);
    __m512 r = _mm512_fnmsub_ps(n, _mm512_set1_ps(DR_LN2_HI), x);     // -x - n ln2_hi
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(DR_LN2_LO), r);
    return dr_exp_tail_ps512_(r, n);
}

/* 1 / d for d >= 1, +inf -> 0, NaN -> NaN: rcp14 (rel err < 2^-14) and one
 * Newton step, ~2^-28 before the last rounding, within 1 ulp. vdivps zmm
 * costs ~10 cycles of throughput per vector here, this ~3. */
static inline __m512 dr_rcp_ge1_ps512(__m512 d) {
    const __m512 r0 = _mm512_rcp14_ps(d);
    const __m512 e0 = _mm512_fnmadd_ps(d, r0, _mm512_set1_ps(1.0f));
    // d = inf: r0 = 0 and e0 = 1 - inf * 0 = NaN, so force 0 there
    const __mmask16 k = _mm512_cmp_ps_mask(d, _mm512_set1_ps(__builtin_inff()), _CMP_NEQ_UQ);
    return _mm512_maskz_fmadd_ps(k, r0, e0, r0);
}

static inline __m512 dr_sigmoid_ps512(__m512 x) {
    return dr_rcp_ge1_ps512(_mm512_add_ps(_mm512_set1_ps(1.0f), dr_expneg_ps512(x)));
}

/* sigmoid(x), and 1 - sigmoid(x) as exp(-x) sigmoid(x): accurate where
 * sigmoid(x) ~ 1 (1 - s would keep ~nothing). exp(-x) = inf: 1 - s = 1. */
static inline __m512 dr_sigmoid2_ps512(__m512 x, __m512 *one_minus) {
    const __m512 one = _mm512_set1_ps(1.0f), e = dr_expneg_ps512(x);
    const __m512 s = dr_rcp_ge1_ps512(_mm512_add_ps(one, e));
    *one_minus = _mm512_min_ps(_mm512_mul_ps(e, s), one);   // NaN (inf * 0) -> 1
    return s;
}

/* silu(x) = x sigmoid(x) */
static inline __m512 dr_silu_ps512(__m512 x) { return _mm512_mul_ps(x, dr_sigmoid_ps512(x)); }

static inline __mmask16 dr_mask16_(size_t r) { return (__mmask16)((1u << r) - 1u); } /* r < 16 */

/* acc[0..1] += the 16 float lanes of f, as doubles */
static inline void dr_flush_pd_(__m512d acc[2], __m512 f) {
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1));
    acc[0] = _mm512_add_pd(acc[0], _mm512_cvtps_pd(_mm512_castps512_ps256(f)));
    acc[1] = _mm512_add_pd(acc[1], _mm512_cvtps_pd(hi));
}

static inline double dr_hsum_pd_(const __m512d acc[2]) {
    return _mm512_reduce_add_pd(_mm512_add_pd(acc[0], acc[1]));
}

/* sum(x[i] - s) over n values (s: a shift that keeps the float lanes small,
 * e.g. the first value; 0 for a plain sum) */
static inline double dr_sum_dev(const float *x, size_t n, float s) {
    const __m512 vs = _mm512_set1_ps(s);
    __m512d acc[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
    size_t i = 0;
    while (n - i >= 16) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        const size_t end = i + (len & ~(size_t)15);
        __m512 f0 = _mm512_setzero_ps(), f1 = f0, f2 = f0, f3 = f0;
        for (; i + 64 <= end; i += 64) {
            f0 = _mm512_add_ps(f0, _mm512_sub_ps(_mm512_loadu_ps(x + i), vs));
            f1 = _mm512_add_ps(f1, _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vs));
            f2 = _mm512_add_ps(f2, _mm512_sub_ps(_mm512_loadu_ps(x + i + 32), vs));
            f3 = _mm512_add_ps(f3, _mm512_sub_ps(_mm512_loadu_ps(x + i + 48), vs));
        }
        for (; i < end; i += 16) f0 = _mm512_add_ps(f0, _mm512_sub_ps(_mm512_loadu_ps(x + i), vs));
        dr_flush_pd_(acc, _mm512_add_ps(_mm512_add_ps(f0, f1), _mm512_add_ps(f2, f3)));
    }
    if (i < n) {
        const __mmask16 k = dr_mask16_(n - i);
        dr_flush_pd_(acc, _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), vs));
    }
    return dr_hsum_pd_(acc);
}
#else
static inline double dr_sum_dev(const float *x, size_t n, float s) {
    double acc = 0.0;
    for (size_t i = 0; i < n;) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        float f[DR_SUM_W] = {0};
        for (size_t j = 0; j < len; j++) f[j % DR_SUM_W] += x[i + j] - s;
        acc += dr_lanes_sum_(f);
        i += len;
    }
    return acc;
}
#endif

#endif
