/*
 * vecmath.h - a fast expf (scalar, AVX-512 and AVX2 + FMA) for the SiLU /
 * sigmoid of the nn layers, built without -ffast-math (IEEE semantics stay
 * intact). The AVX2 branch (8-lane ymm, for CPUs without AVX-512 such as AMD
 * Zen 3) is described where it starts.
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
 * vm_expf and vm_exp_ps512 / vm_expneg_ps512 give the same bits when the
 * compiler contracts a*b+c into FMA (GCC does by default for -march with
 * FMA). Sigmoid: the scalar one divides, the vector one uses rcp14 + Newton
 * (within 1 ulp of the division, not always the same bits).
 */
#ifndef DR_NN_VECMATH_H
#define DR_NN_VECMATH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#define DR_EXP_LO     -104.0f /* exp(-104) < 2^-149 / 2: rounds to 0 */
#define DR_EXP_HI     89.0f   /* exp(89) > FLT_MAX: becomes inf */
#define DR_LOG2E      1.44269504088896341f
#define DR_LN2_HI     0.693359375f    /* 9 significant bits */
#define DR_LN2_LO     -2.12194440e-4f /* ln 2 - DR_LN2_HI */
/* exp(r) ~ 1 + r (C1 + r (C2 + ... + r C6)) on [-ln2/2, ln2/2]: Chebyshev
 * fit of expm1(r)/r (mpmath), float coefficients, approximation error 1.1e-8 */
#define DR_EXP_C1     1.0f
#define DR_EXP_C2     0.5f
#define DR_EXP_C3     1.666650474e-1f
#define DR_EXP_C4     4.166646674e-2f
#define DR_EXP_C5     8.369148709e-3f
#define DR_EXP_C6     1.393364160e-3f
#define DR_RINT_MAGIC 12582912.0f /* 1.5 * 2^23: (t + M) - M = rint(t), |t| < 2^22 */

static inline float vm_pow2i_(int e) { /* 2^e for -126 <= e <= 127 */
    const uint32_t u = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Scalar fast expf (portable; also the reference of the vector version). */
static inline float vm_expf(float x) {
    x = x > DR_EXP_HI ? DR_EXP_HI : x; /* comparisons are false for NaN: */
    x = x < DR_EXP_LO ? DR_EXP_LO : x; /* NaN stays NaN */
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
    return (p * vm_pow2i_(n1)) * vm_pow2i_(n2);
}

/* ---- sums in a fixed pattern, vectorized without -ffast-math
 * 16 float lanes (AVX-512: a few independent registers of 16) add at most
 * DR_SUM_CHUNK values, then the lanes are added into double accumulators,
 * reduced in a fixed order at the end: each float lane adds a few dozen
 * values at most, so long sums keep (near) double accuracy, and the result
 * depends only on the data and its length (never on threads). */
#define DR_SUM_CHUNK 512
#define DR_SUM_W     16

static inline double vm_lanes_sum_(const float f[DR_SUM_W]) {
    double s = 0.0;
    for (int l = 0; l < DR_SUM_W; l++) s += f[l];
    return s;
}

/* sigmoid(x) = 1 / (1 + exp(-x)); exp overflow gives 1/inf = 0, no NaN. */
static inline float vm_sigmoidf(float x) { return 1.0f / (1.0f + vm_expf(-x)); }

/* sigmoid(x) and 1 - sigmoid(x) = exp(-x) sigmoid(x) (see vm_sigmoid2_ps512) */
static inline float vm_sigmoid2f(float x, float *one_minus) {
    const float e = vm_expf(-x), s = 1.0f / (1.0f + e), om = e * s;
    *one_minus = om <= 1.0f ? om : 1.0f; /* inf * 0 = NaN -> 1 */
    return s;
}

#if defined(__AVX512F__)
/* p(r) * 2^n for the reduced argument: 6 FMA and one vscalefps, which
 * rounds once and gives inf / subnormal / 0 on its own. */
static inline __m512 vm_exp_tail_ps512_(__m512 r, __m512 n) {
    __m512 p = _mm512_set1_ps(DR_EXP_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DR_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DR_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DR_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DR_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(DR_EXP_C1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Sixteen vm_expf at once; same operations, same rounding (same bits). */
static inline __m512 vm_exp_ps512(__m512 x) {
    // min/max return the second operand when one is NaN: keep x second
    x = _mm512_min_ps(_mm512_set1_ps(DR_EXP_HI), x);
    x = _mm512_max_ps(_mm512_set1_ps(DR_EXP_LO), x);
    const __m512 magic = _mm512_set1_ps(DR_RINT_MAGIC);
    const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(DR_LOG2E), magic), magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(DR_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(DR_LN2_LO), r);
    return vm_exp_tail_ps512_(r, n);
}

/* exp(-x), the same bits as vm_exp_ps512(-x) without the negation. */
static inline __m512 vm_expneg_ps512(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(-DR_EXP_LO), x);
    x = _mm512_max_ps(_mm512_set1_ps(-DR_EXP_HI), x);
    const __m512 magic = _mm512_set1_ps(DR_RINT_MAGIC);
    const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(-DR_LOG2E), magic), magic);
    __m512 r = _mm512_fnmsub_ps(n, _mm512_set1_ps(DR_LN2_HI), x); // -x - n ln2_hi
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(DR_LN2_LO), r);
    return vm_exp_tail_ps512_(r, n);
}

/* 1 / d for d >= 1, +inf -> 0, NaN -> NaN: rcp14 (rel err < 2^-14) and one
 * Newton step, ~2^-28 before the last rounding, within 1 ulp. vdivps zmm
 * costs ~10 cycles of throughput per vector here, this ~3. */
static inline __m512 vm_rcp_ge1_ps512(__m512 d) {
    const __m512 r0 = _mm512_rcp14_ps(d);
    const __m512 e0 = _mm512_fnmadd_ps(d, r0, _mm512_set1_ps(1.0f));
    // d = inf: r0 = 0 and e0 = 1 - inf * 0 = NaN, so force 0 there
    const __mmask16 k = _mm512_cmp_ps_mask(d, _mm512_set1_ps(__builtin_inff()), _CMP_NEQ_UQ);
    return _mm512_maskz_fmadd_ps(k, r0, e0, r0);
}

static inline __m512 vm_sigmoid_ps512(__m512 x) {
    return vm_rcp_ge1_ps512(_mm512_add_ps(_mm512_set1_ps(1.0f), vm_expneg_ps512(x)));
}

/* sigmoid(x), and 1 - sigmoid(x) as exp(-x) sigmoid(x): accurate where
 * sigmoid(x) ~ 1 (1 - s would keep ~nothing). exp(-x) = inf: 1 - s = 1. */
static inline __m512 vm_sigmoid2_ps512(__m512 x, __m512 *one_minus) {
    const __m512 one = _mm512_set1_ps(1.0f), e = vm_expneg_ps512(x);
    const __m512 s = vm_rcp_ge1_ps512(_mm512_add_ps(one, e));
    *one_minus = _mm512_min_ps(_mm512_mul_ps(e, s), one); // NaN (inf * 0) -> 1
    return s;
}

/* silu(x) = x sigmoid(x) */
static inline __m512 vm_silu_ps512(__m512 x) { return _mm512_mul_ps(x, vm_sigmoid_ps512(x)); }

static inline __mmask16 vm_mask16_(size_t r) { return (__mmask16)((1u << r) - 1u); } /* r < 16 */

/* acc[0..1] += the 16 float lanes of f, as doubles */
static inline void vm_flush_pd_(__m512d acc[2], __m512 f) {
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1));
    acc[0] = _mm512_add_pd(acc[0], _mm512_cvtps_pd(_mm512_castps512_ps256(f)));
    acc[1] = _mm512_add_pd(acc[1], _mm512_cvtps_pd(hi));
}

static inline double vm_hsum_pd_(const __m512d acc[2]) { return _mm512_reduce_add_pd(_mm512_add_pd(acc[0], acc[1])); }

/* sum(x[i] - s) over n values (s: a shift that keeps the float lanes small,
 * e.g. the first value; 0 for a plain sum) */
static inline double vm_sum_dev(const float *x, size_t n, float s) {
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
        vm_flush_pd_(acc, _mm512_add_ps(_mm512_add_ps(f0, f1), _mm512_add_ps(f2, f3)));
    }
    if (i < n) {
        const __mmask16 k = vm_mask16_(n - i);
        vm_flush_pd_(acc, _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), vs));
    }
    return vm_hsum_pd_(acc);
}
#elif defined(__AVX2__) && defined(__FMA__)
/* ---- AVX2 + FMA (8-lane ymm; e.g. AMD Zen 2/3, which have no AVX-512).
 *
 * exp: the same operations as vm_expf, so the same bits (the test checks).
 * There is no vscalefps, so 2^n is applied like the scalar code: two
 * power-of-two factors built from integer exponents, each normal, so the
 * first product is exact and only the second rounds (also into subnormals,
 * 0 or inf). Any split of n with both factors normal gives these bits.
 *
 * Sums: the AVX-512 16-lane pattern, with each 16-float register held as a
 * pair of ymm (lanes 0-7, 8-15) and the 8 double accumulators as 4 ymm,
 * reduced in the pairing GCC uses for _mm512_reduce_add_pd. So vm_sum_dev
 * (and gn_stats / the GroupNorm row sums) add the same values in the same
 * order as the AVX-512 code: the same bits on both ISAs.
 *
 * Sigmoid: 1 / (1 + e) is a true division (vdivps), so vm_sigmoid_ps256
 * gives vm_sigmoidf's bits. rcp_ps is only 12 bits here and would need two
 * Newton steps (4 FMA on the FMA pipes) to stay within 1 ulp; vdivps runs on
 * its own unit beside the exp's FMAs: SiLU over 8192 floats in L1 measured
 * 0.66 ns / value with vdivps, 0.90 with rcp + two Newton steps (Zen 3). */

/* 2^e as floats for integer lanes -126 <= e <= 127 */
static inline __m256 vm_pow2i_ps256_(__m256i e) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
}

/* p(r) * 2^n: 6 FMA, then 2^n in two exact steps like vm_expf. n is an
 * integer in [-150, 128] (the clamps), so n1 = floor(n / 2) and n - n1 are
 * both in [-75, 64]: 2^n1 and 2^n2 are normal and p 2^n1 (p in [0.7, 1.5])
 * is exact. NaN x: p is NaN, the int conversion gives garbage exponents,
 * and NaN * anything stays NaN. */
static inline __m256 vm_exp_tail_ps256_(__m256 r, __m256 n) {
    __m256 p = _mm256_set1_ps(DR_EXP_C6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(DR_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(DR_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(DR_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(DR_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(DR_EXP_C1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i ni = _mm256_cvtps_epi32(n); // exact: n is an integer
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    return _mm256_mul_ps(_mm256_mul_ps(p, vm_pow2i_ps256_(n1)), vm_pow2i_ps256_(n2));
}

/* Eight vm_expf at once; same operations, same rounding (same bits). */
static inline __m256 vm_exp_ps256(__m256 x) {
    // min/max return the second operand when one is NaN: keep x second
    x = _mm256_min_ps(_mm256_set1_ps(DR_EXP_HI), x);
    x = _mm256_max_ps(_mm256_set1_ps(DR_EXP_LO), x);
    const __m256 magic = _mm256_set1_ps(DR_RINT_MAGIC);
    const __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(DR_LOG2E), magic), magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(DR_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(DR_LN2_LO), r);
    return vm_exp_tail_ps256_(r, n);
}

/* exp(-x), the same bits as vm_exp_ps256(-x) without the negation. */
static inline __m256 vm_expneg_ps256(__m256 x) {
    x = _mm256_min_ps(_mm256_set1_ps(-DR_EXP_LO), x);
    x = _mm256_max_ps(_mm256_set1_ps(-DR_EXP_HI), x);
    const __m256 magic = _mm256_set1_ps(DR_RINT_MAGIC);
    const __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(-DR_LOG2E), magic), magic);
    __m256 r = _mm256_fnmsub_ps(n, _mm256_set1_ps(DR_LN2_HI), x); // -x - n ln2_hi
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(DR_LN2_LO), r);
    return vm_exp_tail_ps256_(r, n);
}

/* sigmoid: 1 / (1 + exp(-x)), rounded once (vm_sigmoidf's bits); exp(-x) =
 * inf gives 1 / inf = 0. */
static inline __m256 vm_sigmoid_ps256(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, vm_expneg_ps256(x)));
}

/* sigmoid(x), and 1 - sigmoid(x) as exp(-x) sigmoid(x): accurate where
 * sigmoid(x) ~ 1 (1 - s would keep ~nothing). exp(-x) = inf: 1 - s = 1.
 * The same bits as vm_sigmoid2f. */
static inline __m256 vm_sigmoid2_ps256(__m256 x, __m256 *one_minus) {
    const __m256 one = _mm256_set1_ps(1.0f), e = vm_expneg_ps256(x);
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    *one_minus = _mm256_min_ps(_mm256_mul_ps(e, s), one); // NaN (inf * 0) -> 1
    return s;
}

/* silu(x) = x / (1 + exp(-x)): one division instead of x * (1 / (1 + e)),
 * so the same bits as the portable silu (x / (1 + vm_expf(-x))). */
static inline __m256 vm_silu_ps256(__m256 x) {
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), vm_expneg_ps256(x)));
}

/* lane mask (all ones in lanes < r) for masked loads / stores of a tail;
 * r may be anything, lanes >= r (and all lanes for r <= 0) are off */
static inline __m256i vm_mask8_(ptrdiff_t r) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int rr = r < 0 ? 0 : r > 8 ? 8 : (int)r;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(rr), idx);
}

/* One AVX-512 register's 16 float lanes as two ymm: lanes 0-7 and 8-15. */
typedef struct {
    __m256 lo, hi;
} vm_v16_;

static inline vm_v16_ vm_v16_zero_(void) {
    const vm_v16_ v = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    return v;
}
static inline vm_v16_ vm_v16_set1_(float f) {
    const vm_v16_ v = {_mm256_set1_ps(f), _mm256_set1_ps(f)};
    return v;
}
static inline vm_v16_ vm_v16_load_(const float *p) {
    const vm_v16_ v = {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
    return v;
}
static inline vm_v16_ vm_v16_add_(vm_v16_ a, vm_v16_ b) {
    const vm_v16_ v = {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)};
    return v;
}
static inline vm_v16_ vm_v16_sub_(vm_v16_ a, vm_v16_ b) {
    const vm_v16_ v = {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)};
    return v;
}
static inline vm_v16_ vm_v16_fmadd_(vm_v16_ a, vm_v16_ b, vm_v16_ c) {
    const vm_v16_ v = {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
    return v;
}

/* acc[0..3] += the 16 float lanes of f, as doubles (acc[q]: lanes 4q..4q+3) */
static inline void vm_flush_pd_(__m256d acc[4], vm_v16_ f) {
    acc[0] = _mm256_add_pd(acc[0], _mm256_cvtps_pd(_mm256_castps256_ps128(f.lo)));
    acc[1] = _mm256_add_pd(acc[1], _mm256_cvtps_pd(_mm256_extractf128_ps(f.lo, 1)));
    acc[2] = _mm256_add_pd(acc[2], _mm256_cvtps_pd(_mm256_castps256_ps128(f.hi)));
    acc[3] = _mm256_add_pd(acc[3], _mm256_cvtps_pd(_mm256_extractf128_ps(f.hi, 1)));
}

/* The AVX-512 reduction of 16 double lanes, pair for pair: lanes j + (j + 8),
 * then _mm512_reduce_add_pd's tree (halves of 4, then of 2, then the last two). */
static inline double vm_hsum_pd_(const __m256d acc[4]) {
    const __m256d lo = _mm256_add_pd(acc[0], acc[2]), hi = _mm256_add_pd(acc[1], acc[3]);
    const __m256d t3 = _mm256_add_pd(hi, lo);
    const __m128d t6 = _mm_add_pd(_mm256_extractf128_pd(t3, 1), _mm256_castpd256_pd128(t3));
    return _mm_cvtsd_f64(_mm_add_sd(t6, _mm_unpackhi_pd(t6, t6)));
}

/* sum(x[i] - s) over n values (s: a shift that keeps the float lanes small,
 * e.g. the first value; 0 for a plain sum); the AVX-512 pattern exactly */
static inline double vm_sum_dev(const float *x, size_t n, float s) {
    const vm_v16_ vs = vm_v16_set1_(s);
    __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
    size_t i = 0;
    while (n - i >= 16) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        const size_t end = i + (len & ~(size_t)15);
        vm_v16_ f0 = vm_v16_zero_(), f1 = f0, f2 = f0, f3 = f0;
        for (; i + 64 <= end; i += 64) {
            f0 = vm_v16_add_(f0, vm_v16_sub_(vm_v16_load_(x + i), vs));
            f1 = vm_v16_add_(f1, vm_v16_sub_(vm_v16_load_(x + i + 16), vs));
            f2 = vm_v16_add_(f2, vm_v16_sub_(vm_v16_load_(x + i + 32), vs));
            f3 = vm_v16_add_(f3, vm_v16_sub_(vm_v16_load_(x + i + 48), vs));
        }
        for (; i < end; i += 16) f0 = vm_v16_add_(f0, vm_v16_sub_(vm_v16_load_(x + i), vs));
        vm_flush_pd_(acc, vm_v16_add_(vm_v16_add_(f0, f1), vm_v16_add_(f2, f3)));
    }
    if (i < n) { // < 16 left: masked, 0 in the off lanes
        const ptrdiff_t r = (ptrdiff_t)(n - i);
        const __m256i k0 = vm_mask8_(r), k1 = vm_mask8_(r - 8);
        const vm_v16_ t = {
            _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, k0), vs.lo), _mm256_castsi256_ps(k0)),
            _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i + 8, k1), vs.hi), _mm256_castsi256_ps(k1))};
        vm_flush_pd_(acc, t);
    }
    return vm_hsum_pd_(acc);
}
#else
static inline double vm_sum_dev(const float *x, size_t n, float s) {
    double acc = 0.0;
    for (size_t i = 0; i < n;) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        float f[DR_SUM_W] = {0};
        for (size_t j = 0; j < len; j++) f[j % DR_SUM_W] += x[i + j] - s;
        acc += vm_lanes_sum_(f);
        i += len;
    }
    return acc;
}
#endif

#endif
