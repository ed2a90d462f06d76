/*
 * groupnorm_avx2.h - the AVX2 + FMA kernels of groupnorm.c (included by it
 * only; the loops and drivers are there).
 *
 * The AVX-512 kernels, op for op, on 8-lane ymm (CPUs without AVX-512, e.g.
 * AMD Zen 3). The sums keep the AVX-512 16-lane pattern: each 16-float
 * register is a pair of ymm (vm_v16_ in vecmath.h, lanes 0-7 and 8-15) and
 * each pair of 8-double registers is 4 ymm of 4 doubles (lanes 4q..4q+3),
 * reduced by vm_hsum_pd_ in the AVX-512 pairing; the per-lane double updates
 * are elementwise. So the statistics and the row sums are the same values,
 * added in the same order, as on AVX-512. The elementwise passes (apply,
 * input gradient) just run 8 lanes at a time with a masked tail. The exp is
 * vm_expf's bits; the sigmoid here divides (see vecmath.h), so the fused
 * SiLU may differ from the AVX-512 build by an ulp.
 */
#include <immintrin.h>

#define GN_VL 8 /* floats per vector */
#define GN_ND 4 /* double accumulators per 16-lane sum (vecmath.h vm_flush_pd_) */

typedef __m256 gn_vf;   /* one vector */
typedef vm_v16_ gn_v16; /* the 16 float lanes of the sums' pattern: two ymm */
typedef __m256d gn_vd;
typedef __m256i gn_mask;

#define GN_INL static inline __attribute__((always_inline))
GN_INL gn_vf gn_set1(float a) { return _mm256_set1_ps(a); }
GN_INL gn_vf gn_load(const float *p) { return _mm256_loadu_ps(p); }
GN_INL void gn_store(float *p, gn_vf a) { _mm256_storeu_ps(p, a); }
GN_INL gn_vf gn_add(gn_vf a, gn_vf b) { return _mm256_add_ps(a, b); }
GN_INL gn_vf gn_sub(gn_vf a, gn_vf b) { return _mm256_sub_ps(a, b); }
GN_INL gn_vf gn_mul(gn_vf a, gn_vf b) { return _mm256_mul_ps(a, b); }
GN_INL gn_vf gn_fmadd(gn_vf a, gn_vf b, gn_vf c) { return _mm256_fmadd_ps(a, b, c); }
GN_INL gn_vf gn_fnmadd(gn_vf a, gn_vf b, gn_vf c) { return _mm256_fnmadd_ps(a, b, c); }
GN_INL gn_mask gn_mask_of(size_t r) { return vm_mask8_((ptrdiff_t)r); } /* the first r < GN_VL lanes */
GN_INL gn_vf gn_load_mask(const float *p, gn_mask k) { return _mm256_maskload_ps(p, k); }
GN_INL void gn_store_mask(float *p, gn_mask k, gn_vf a) { _mm256_maskstore_ps(p, k, a); }
/* silu(a) = a / (1 + exp(-a)); exp(-a) overflow: a / inf = -0 */
GN_INL gn_vf gn_silu(gn_vf a) { return vm_silu_ps256(a); }
GN_INL gn_vf gn_sigmoid2(gn_vf a, gn_vf *one_minus) { return vm_sigmoid2_ps256(a, one_minus); }

GN_INL gn_v16 gn_v16_zero(void) { return vm_v16_zero_(); }
GN_INL gn_v16 gn_v16_set1(float a) { return vm_v16_set1_(a); }
GN_INL gn_v16 gn_v16_load(const float *p) { return vm_v16_load_(p); }
GN_INL gn_v16 gn_v16_add(gn_v16 a, gn_v16 b) { return vm_v16_add_(a, b); }
GN_INL gn_v16 gn_v16_sub(gn_v16 a, gn_v16 b) { return vm_v16_sub_(a, b); }
GN_INL gn_v16 gn_v16_fmadd(gn_v16 a, gn_v16 b, gn_v16 c) { return vm_v16_fmadd_(a, b, c); }
GN_INL gn_vd gn_vd_set1(double a) { return _mm256_set1_pd(a); }
GN_INL gn_vd gn_vd_zero(void) { return _mm256_setzero_pd(); }

/* groupnorm.c */
GN_INL gn_vf gn_dy(gn_vf d, gn_vf xh, gn_vf ga, gn_vf be, const int silu);
GN_INL gn_vf gn_dy_vec(float *dinp, const float *dout, const float *x, gn_vf m, gn_vf r, gn_vf rg, gn_vf ga, gn_vf be,
                       const int silu, const int upd, gn_vf *xh);

/* One chunk's 4 lanes (quarter q of 16) into the double sums about x0:
 * T1 += c s + F, T2 += s (c s + 2 F) + Q, s = mu_l - x0 (see gn_stats) */
static inline void gn_quarter_(__m256d *t1, __m256d *t2, __m128 sh, __m128 s1, __m128 s2, __m256d cnt, __m256d x0) {
    const __m256d sd = _mm256_sub_pd(_mm256_cvtps_pd(sh), x0); // mu_l - x0
    const __m256d a1 = _mm256_cvtps_pd(s1), a2 = _mm256_cvtps_pd(s2);
    *t1 = _mm256_add_pd(*t1, _mm256_fmadd_pd(cnt, sd, a1));
    const __m256d u = _mm256_fmadd_pd(cnt, sd, _mm256_add_pd(a1, a1));
    *t2 = _mm256_add_pd(*t2, _mm256_fmadd_pd(sd, u, a2));
}
GN_INL void gn_stats_chunk(gn_vd t1[GN_ND], gn_vd t2[GN_ND], gn_v16 sh, gn_v16 s1, gn_v16 s2, gn_vd cnt, gn_vd x0) {
    gn_quarter_(&t1[0], &t2[0], _mm256_castps256_ps128(sh.lo), _mm256_castps256_ps128(s1.lo),
                _mm256_castps256_ps128(s2.lo), cnt, x0);
    gn_quarter_(&t1[1], &t2[1], _mm256_extractf128_ps(sh.lo, 1), _mm256_extractf128_ps(s1.lo, 1),
                _mm256_extractf128_ps(s2.lo, 1), cnt, x0);
    gn_quarter_(&t1[2], &t2[2], _mm256_castps256_ps128(sh.hi), _mm256_castps256_ps128(s1.hi),
                _mm256_castps256_ps128(s2.hi), cnt, x0);
    gn_quarter_(&t1[3], &t2[3], _mm256_extractf128_ps(sh.hi, 1), _mm256_extractf128_ps(s1.hi, 1),
                _mm256_extractf128_ps(s2.hi, 1), cnt, x0);
}

/* The ragged tail (rem < 16 values at x) into the sums, in double directly. */
GN_INL void gn_stats_tail(gn_vd t1[GN_ND], gn_vd t2[GN_ND], const float *x, size_t rem, gn_vd x0) {
    const __m256i k0 = vm_mask8_((ptrdiff_t)rem), k1 = vm_mask8_((ptrdiff_t)rem - 8);
    const __m256 xl = _mm256_maskload_ps(x, k0), xu = _mm256_maskload_ps(x + 8, k1);
    const __m128 xq[4] = {_mm256_castps256_ps128(xl), _mm256_extractf128_ps(xl, 1), _mm256_castps256_ps128(xu),
                          _mm256_extractf128_ps(xu, 1)};
    const __m128i kq[4] = {_mm256_castsi256_si128(k0), _mm256_extracti128_si256(k0, 1), _mm256_castsi256_si128(k1),
                           _mm256_extracti128_si256(k1, 1)};
    for (int q = 0; q < 4; q++) {
        const __m256d kd = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(kq[q]));
        const __m256d d = _mm256_and_pd(_mm256_sub_pd(_mm256_cvtps_pd(xq[q]), x0), kd);
        t1[q] = _mm256_add_pd(t1[q], d);
        t2[q] = _mm256_fmadd_pd(d, d, t2[q]);
    }
}

/* The row sums' tail (rem < 16 values): masked, 0 in the off lanes. */
GN_INL void gn_row_sums_tail(gn_vd a1[GN_ND], gn_vd a2[GN_ND], float *dinp, const float *dout, const float *x,
                             size_t rem, gn_vf m, gn_vf r, gn_vf rg, gn_vf ga, gn_vf be, const int silu,
                             const int upd) {
    const __m256i k[2] = {vm_mask8_((ptrdiff_t)rem), vm_mask8_((ptrdiff_t)rem - 8)};
    vm_v16_ d0, p0;
    for (int h = 0; h < 2; h++) {
        const size_t o = 8 * (size_t)h;
        const __m256 kf = _mm256_castsi256_ps(k[h]);
        const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + o, k[h]), m), r);
        const __m256 d = _mm256_and_ps(gn_dy(_mm256_maskload_ps(dout + o, k[h]), xh, ga, be, silu), kf);
        if (upd) _mm256_maskstore_ps(dinp + o, k[h], _mm256_fmadd_ps(rg, d, _mm256_maskload_ps(dinp + o, k[h])));
        const __m256 p = _mm256_and_ps(_mm256_mul_ps(d, xh), kf);
        if (h == 0)
            d0.lo = d, p0.lo = p;
        else
            d0.hi = d, p0.hi = p;
    }
    vm_flush_pd_(a1, d0);
    vm_flush_pd_(a2, p0);
}

/* 16 values of the row sums' body as two halves: dy (xhat in *xh); with upd
 * dinp += rg * dy. */
GN_INL gn_v16 gn_dy16(float *dinp, const float *dout, const float *x, gn_vf m, gn_vf r, gn_vf rg, gn_vf ga, gn_vf be,
                      const int silu, const int upd, gn_v16 *xh) {
    gn_v16 d;
    d.lo = gn_dy_vec(dinp, dout, x, m, r, rg, ga, be, silu, upd, &xh->lo);
    d.hi = gn_dy_vec(upd ? dinp + 8 : NULL, dout + 8, x + 8, m, r, rg, ga, be, silu, upd, &xh->hi);
    return d;
}
