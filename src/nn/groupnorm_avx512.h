/*
 * groupnorm_avx512.h - the AVX-512 kernels of groupnorm.c (included by it
 * only; the loops and drivers are there): 16 floats per vector, masked
 * tails; the double sums are 2 zmm of 8 lanes.
 */
#include <immintrin.h>

#define GN_VL 16 /* floats per vector */
#define GN_ND 2  /* double accumulators per 16-lane sum (vecmath.h vm_flush_pd_) */

typedef __m512 gn_vf;  /* one vector */
typedef __m512 gn_v16; /* the 16 float lanes of the sums' pattern */
typedef __m512d gn_vd;
typedef __mmask16 gn_mask;

#define GN_INL static inline __attribute__((always_inline))
GN_INL gn_vf gn_set1(float a) { return _mm512_set1_ps(a); }
GN_INL gn_vf gn_load(const float *p) { return _mm512_loadu_ps(p); }
GN_INL void gn_store(float *p, gn_vf a) { _mm512_storeu_ps(p, a); }
GN_INL gn_vf gn_add(gn_vf a, gn_vf b) { return _mm512_add_ps(a, b); }
GN_INL gn_vf gn_sub(gn_vf a, gn_vf b) { return _mm512_sub_ps(a, b); }
GN_INL gn_vf gn_mul(gn_vf a, gn_vf b) { return _mm512_mul_ps(a, b); }
GN_INL gn_vf gn_fmadd(gn_vf a, gn_vf b, gn_vf c) { return _mm512_fmadd_ps(a, b, c); }
GN_INL gn_vf gn_fnmadd(gn_vf a, gn_vf b, gn_vf c) { return _mm512_fnmadd_ps(a, b, c); }
GN_INL gn_mask gn_mask_of(size_t r) { return vm_mask16_(r); } /* the first r < GN_VL lanes */
GN_INL gn_vf gn_load_mask(const float *p, gn_mask k) { return _mm512_maskz_loadu_ps(k, p); }
GN_INL void gn_store_mask(float *p, gn_mask k, gn_vf a) { _mm512_mask_storeu_ps(p, k, a); }
GN_INL gn_vf gn_silu(gn_vf a) { return vm_silu_ps512(a); }
GN_INL gn_vf gn_sigmoid2(gn_vf a, gn_vf *one_minus) { return vm_sigmoid2_ps512(a, one_minus); }

GN_INL gn_v16 gn_v16_zero(void) { return _mm512_setzero_ps(); }
GN_INL gn_v16 gn_v16_set1(float a) { return _mm512_set1_ps(a); }
GN_INL gn_v16 gn_v16_load(const float *p) { return _mm512_loadu_ps(p); }
GN_INL gn_v16 gn_v16_add(gn_v16 a, gn_v16 b) { return _mm512_add_ps(a, b); }
GN_INL gn_v16 gn_v16_sub(gn_v16 a, gn_v16 b) { return _mm512_sub_ps(a, b); }
GN_INL gn_v16 gn_v16_fmadd(gn_v16 a, gn_v16 b, gn_v16 c) { return _mm512_fmadd_ps(a, b, c); }
GN_INL gn_vd gn_vd_set1(double a) { return _mm512_set1_pd(a); }
GN_INL gn_vd gn_vd_zero(void) { return _mm512_setzero_pd(); }

/* groupnorm.c */
GN_INL gn_vf gn_dy(gn_vf d, gn_vf xh, gn_vf ga, gn_vf be, const int silu);
GN_INL gn_vf gn_dy_vec(float *dinp, const float *dout, const float *x, gn_vf m, gn_vf r, gn_vf rg, gn_vf ga, gn_vf be,
                       const int silu, const int upd, gn_vf *xh);

/* One chunk into the double sums about x0 (see gn_stats), lanes 0-7 and
 * 8-15 in double; the extract index must be a constant. */
#define GN_HALF(h)                                                                                                     \
    do {                                                                                                               \
        const __m256 sh_h = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sh), h));                         \
        const __m256 s1_h = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s1), h));                         \
        const __m256 s2_h = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s2), h));                         \
        const __m512d sd = _mm512_sub_pd(_mm512_cvtps_pd(sh_h), x0); /* mu_l - x0 */                                   \
        const __m512d a1 = _mm512_cvtps_pd(s1_h), a2 = _mm512_cvtps_pd(s2_h);                                          \
        t1[h] = _mm512_add_pd(t1[h], _mm512_fmadd_pd(cnt, sd, a1));                                                    \
        /* c sd^2 + 2 sd S1 + S2 = sd (c sd + 2 S1) + S2 */                                                            \
        const __m512d u = _mm512_fmadd_pd(cnt, sd, _mm512_add_pd(a1, a1));                                             \
        t2[h] = _mm512_add_pd(t2[h], _mm512_fmadd_pd(sd, u, a2));                                                      \
    } while (0)
GN_INL void gn_stats_chunk(gn_vd t1[GN_ND], gn_vd t2[GN_ND], gn_v16 sh, gn_v16 s1, gn_v16 s2, gn_vd cnt, gn_vd x0) {
    GN_HALF(0);
    GN_HALF(1);
}
#undef GN_HALF

/* The ragged tail (rem < 16 values at x) into the sums, in double directly. */
#define GN_TAIL(h)                                                                                                     \
    do {                                                                                                               \
        const __mmask8 kh = (__mmask8)(k >> (8 * (h)));                                                                \
        const __m256 xh = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xt), h));                           \
        const __m512d d = _mm512_maskz_sub_pd(kh, _mm512_cvtps_pd(xh), x0);                                            \
        t1[h] = _mm512_add_pd(t1[h], d);                                                                               \
        t2[h] = _mm512_fmadd_pd(d, d, t2[h]);                                                                          \
    } while (0)
GN_INL void gn_stats_tail(gn_vd t1[GN_ND], gn_vd t2[GN_ND], const float *x, size_t rem, gn_vd x0) {
    const __mmask16 k = vm_mask16_(rem);
    const __m512 xt = _mm512_maskz_loadu_ps(k, x);
    GN_TAIL(0);
    GN_TAIL(1);
}
#undef GN_TAIL

/* The row sums' tail (rem < 16 values): masked, 0 in the off lanes. */
GN_INL void gn_row_sums_tail(gn_vd a1[GN_ND], gn_vd a2[GN_ND], float *dinp, const float *dout, const float *x,
                             size_t rem, gn_vf m, gn_vf r, gn_vf rg, gn_vf ga, gn_vf be, const int silu,
                             const int upd) {
    const __mmask16 k = vm_mask16_(rem);
    const __m512 xh0 = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x), m), r);
    const __m512 d0 = _mm512_maskz_mov_ps(k, gn_dy(_mm512_maskz_loadu_ps(k, dout), xh0, ga, be, silu));
    if (upd) _mm512_mask_storeu_ps(dinp, k, _mm512_fmadd_ps(rg, d0, _mm512_maskz_loadu_ps(k, dinp)));
    vm_flush_pd_(a1, d0);
    vm_flush_pd_(a2, _mm512_maskz_mul_ps(k, d0, xh0));
}

/* 16 values of the row sums' body: dy (xhat in *xh); with upd dinp += rg * dy. */
GN_INL gn_v16 gn_dy16(float *dinp, const float *dout, const float *x, gn_vf m, gn_vf r, gn_vf rg, gn_vf ga, gn_vf be,
                      const int silu, const int upd, gn_v16 *xh) {
    return gn_dy_vec(dinp, dout, x, m, r, rg, ga, be, silu, upd, xh);
}
