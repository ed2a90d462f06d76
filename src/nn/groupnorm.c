/*
 * GroupNorm (eps 1e-5, biased variance like PyTorch, per-channel affine) with
 * an optional fused SiLU after the affine transform.
 *
 * Work unit: one (b, g) group, a contiguous [C/G, HW] block, handled entirely
 * by one thread (static schedule); nothing depends on the thread count.
 * Kernels: AVX-512 intrinsics (16 floats per vector, masked tails), AVX2 +
 * FMA (the same 16-lane sums on pairs of 8-float ymm), or portable C with the
 * same summation pattern; the SiLU variants are separate
 * instantiations (no branch in the loops). The vector kernels are in
 * groupnorm_avx512.h and groupnorm_avx2.h, the portable ones and the drivers
 * (written once for all three) here.
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
#include "nn/groupnorm_avx512.h"
#elif defined(__AVX2__) && defined(__FMA__)
#include "nn/groupnorm_avx2.h"
#endif

#if defined(GN_VL)
/* ================================================================ vector */

/* Mean and (biased) variance of n values in one pass over memory, robust
 * like a two-pass scheme (see the top of the file). Per chunk (<= 512 values,
 * in L1), lane l first takes its float mean mu_l, then sums d = x - mu_l and
 * d^2 in float (F, Q); the chunk goes into double sums about the block's
 * first value x0, with c values per lane and s = mu_l - x0:
 *   T1 += c s + F,   T2 += c s^2 + 2 s F + Q
 * so T1 = sum(x - x0) and T2 = sum((x - x0)^2) exactly but for the float
 * rounding of F and Q, which is relative to the chunk's own spread. */
static void gn_stats(const float *x, size_t n, double *mean, double *var) {
    const gn_vd x0 = gn_vd_set1((double)x[0]);
    gn_vd t1[GN_ND], t2[GN_ND];
    for (int q = 0; q < GN_ND; q++) t1[q] = t2[q] = gn_vd_zero();
    size_t i = 0;
    while (n - i >= 16) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        const size_t end = i + (len & ~(size_t)15);
        const size_t c = (end - i) / 16; // values per lane
        const gn_vd cnt = gn_vd_set1((double)c);
        // per-lane shift: the lane's float mean over the chunk, sum(x / c)
        // (no overflow); any value near it would do, the sums below are
        // exact about whatever it is
        const gn_v16 rc = gn_v16_set1(1.0f / (float)c);
        gn_v16 f0 = gn_v16_zero(), f1 = f0, q0 = f0, q1 = f0;
        size_t j = i;
        for (; j + 32 <= end; j += 32) {
            f0 = gn_v16_fmadd(gn_v16_load(x + j), rc, f0);
            f1 = gn_v16_fmadd(gn_v16_load(x + j + 16), rc, f1);
        }
        for (; j < end; j += 16) f0 = gn_v16_fmadd(gn_v16_load(x + j), rc, f0);
        const gn_v16 sh = gn_v16_add(f0, f1);
        f0 = f1 = gn_v16_zero();
        for (; i + 32 <= end; i += 32) {
            const gn_v16 d0 = gn_v16_sub(gn_v16_load(x + i), sh);
            const gn_v16 d1 = gn_v16_sub(gn_v16_load(x + i + 16), sh);
            f0 = gn_v16_add(f0, d0);
            f1 = gn_v16_add(f1, d1);
            q0 = gn_v16_fmadd(d0, d0, q0);
            q1 = gn_v16_fmadd(d1, d1, q1);
        }
        for (; i < end; i += 16) {
            const gn_v16 d0 = gn_v16_sub(gn_v16_load(x + i), sh);
            f0 = gn_v16_add(f0, d0);
            q0 = gn_v16_fmadd(d0, d0, q0);
        }
        gn_stats_chunk(t1, t2, sh, gn_v16_add(f0, f1), gn_v16_add(q0, q1), cnt, x0);
    }
    if (i < n) gn_stats_tail(t1, t2, x + i, n - i, x0); // ragged tail (< 16): in double directly
    const double m = vm_hsum_pd_(t1) / (double)n;       // mean - x0
    const double v = vm_hsum_pd_(t2) / (double)n - m * m;
    *mean = (double)x[0] + m;
    *var = v > 0.0 ? v : 0.0;
}

/* a = gamma * ((x - m) * r) + beta, the pre-activation (same ops forward and
 * backward, so the backward recomputes the forward's exact value) */
GN_INL gn_vf gn_pre(gn_vf x, gn_vf m, gn_vf r, gn_vf ga, gn_vf be, gn_vf *xh) {
    *xh = gn_mul(gn_sub(x, m), r);
    return gn_fmadd(ga, *xh, be);
}

/* y = norm(x) (optionally silu'd) over one channel row of n values */
GN_INL void gn_apply_(float *y, const float *x, size_t n, float mf, float rf, float gaf, float bef, const int silu) {
    const gn_vf m = gn_set1(mf), r = gn_set1(rf);
    const gn_vf ga = gn_set1(gaf), be = gn_set1(bef);
    gn_vf xh;
    size_t i = 0;
    for (; i + GN_VL <= n; i += GN_VL) {
        gn_vf a = gn_pre(gn_load(x + i), m, r, ga, be, &xh);
        if (silu) a = gn_silu(a);
        gn_store(y + i, a);
    }
    if (i < n) {
        const gn_mask k = gn_mask_of(n - i);
        gn_vf a = gn_pre(gn_load_mask(x + i, k), m, r, ga, be, &xh);
        if (silu) a = gn_silu(a);
        gn_store_mask(y + i, k, a);
    }
}

/* dL/d(pre-activation): dout, times d silu(a) / da when fused */
GN_INL gn_vf gn_dy(gn_vf d, gn_vf xh, gn_vf ga, gn_vf be, const int silu) {
    if (!silu) return d;
    const gn_vf one = gn_set1(1.0f);
    const gn_vf a = gn_fmadd(ga, xh, be);
    gn_vf om; // 1 - s, accurate near s = 1
    const gn_vf s = gn_sigmoid2(a, &om);
    // dout * s * (1 + a (1 - s)); s = 0 for very negative a: 0 * finite, no NaN
    return gn_mul(gn_mul(d, s), gn_fmadd(a, om, one));
}

/* One vector of the row sums' body: xhat, dy, and with upd dinp += rg * dy */
GN_INL gn_vf gn_dy_vec(float *dinp, const float *dout, const float *x, gn_vf m, gn_vf r, gn_vf rg, gn_vf ga, gn_vf be,
                       const int silu, const int upd, gn_vf *xh) {
    *xh = gn_mul(gn_sub(gn_load(x), m), r);
    const gn_vf d = gn_dy(gn_load(dout), *xh, ga, be, silu);
    if (upd) gn_store(dinp, gn_fmadd(rg, d, gn_load(dinp)));
    return d;
}

/* Over one channel row: *sdy = sum(dy), *sdx = sum(dy * xhat); with upd,
 * also dinp += rg * dy (the dxh part of the input gradient, see below). The
 * 16-lane summation pattern: 32 values a step into two 16-lane registers
 * f0 / f1, 16 at a time after that. */
GN_INL void gn_row_sums_(float *dinp, float rgf, const float *dout, const float *x, size_t n, float mf, float rf,
                         float gaf, float bef, const int silu, const int upd, double *sdy, double *sdx) {
    const gn_vf m = gn_set1(mf), r = gn_set1(rf), rg = gn_set1(rgf);
    const gn_vf ga = gn_set1(gaf), be = gn_set1(bef);
    gn_vd a1[GN_ND], a2[GN_ND];
    for (int q = 0; q < GN_ND; q++) a1[q] = a2[q] = gn_vd_zero();
    size_t i = 0;
    while (n - i >= 16) {
        const size_t len = n - i < DR_SUM_CHUNK ? n - i : DR_SUM_CHUNK;
        const size_t end = i + (len & ~(size_t)15);
        gn_v16 f0 = gn_v16_zero(), f1 = f0, q0 = f0, q1 = f0;
        for (; i + 32 <= end; i += 32) {
            gn_v16 xh0, xh1;
            const gn_v16 d0 = gn_dy16(upd ? dinp + i : NULL, dout + i, x + i, m, r, rg, ga, be, silu, upd, &xh0);
            const gn_v16 d1 =
                gn_dy16(upd ? dinp + i + 16 : NULL, dout + i + 16, x + i + 16, m, r, rg, ga, be, silu, upd, &xh1);
            f0 = gn_v16_add(f0, d0);
            f1 = gn_v16_add(f1, d1);
            q0 = gn_v16_fmadd(d0, xh0, q0);
            q1 = gn_v16_fmadd(d1, xh1, q1);
        }
        for (; i < end; i += 16) {
            gn_v16 xh0;
            const gn_v16 d0 = gn_dy16(upd ? dinp + i : NULL, dout + i, x + i, m, r, rg, ga, be, silu, upd, &xh0);
            f0 = gn_v16_add(f0, d0);
            q0 = gn_v16_fmadd(d0, xh0, q0);
        }
        vm_flush_pd_(a1, gn_v16_add(f0, f1));
        vm_flush_pd_(a2, gn_v16_add(q0, q1));
    }
    if (i < n) gn_row_sums_tail(a1, a2, upd ? dinp + i : NULL, dout + i, x + i, n - i, m, r, rg, ga, be, silu, upd);
    *sdy = vm_hsum_pd_(a1);
    *sdx = vm_hsum_pd_(a2);
}

/* dinp += c0 + c1 * xhat over one channel row (the rest of the input
 * gradient once rg * dy is in) */
static void gn_row_corr(float *dinp, const float *x, size_t n, float mf, float rf, float c0f, float c1f) {
    const gn_vf m = gn_set1(mf), r = gn_set1(rf);
    const gn_vf c0 = gn_set1(c0f), c1 = gn_set1(c1f);
    size_t i = 0;
    for (; i + GN_VL <= n; i += GN_VL) {
        const gn_vf xh = gn_mul(gn_sub(gn_load(x + i), m), r);
        gn_store(dinp + i, gn_add(gn_load(dinp + i), gn_fmadd(c1, xh, c0)));
    }
    if (i < n) {
        const gn_mask k = gn_mask_of(n - i);
        const gn_vf xh = gn_mul(gn_sub(gn_load_mask(x + i, k), m), r);
        gn_store_mask(dinp + i, k, gn_add(gn_load_mask(dinp + i, k), gn_fmadd(c1, xh, c0)));
    }
}

/* dinp += r * (dxh - m1 - xhat * m2), dxh = dout * gamma (no SiLU), over one row */
static void gn_row_dinp(float *dinp, const float *dout, const float *x, size_t n, float mf, float rf, float gaf,
                        float m1f, float m2f) {
    const gn_vf m = gn_set1(mf), r = gn_set1(rf), ga = gn_set1(gaf);
    const gn_vf m1 = gn_set1(m1f), m2 = gn_set1(m2f);
    size_t i = 0;
    for (; i + GN_VL <= n; i += GN_VL) {
        const gn_vf xh = gn_mul(gn_sub(gn_load(x + i), m), r);
        const gn_vf dxh = gn_mul(gn_load(dout + i), ga);
        const gn_vf t = gn_fnmadd(xh, m2, gn_sub(dxh, m1));
        gn_store(dinp + i, gn_fmadd(r, t, gn_load(dinp + i)));
    }
    if (i < n) {
        const gn_mask k = gn_mask_of(n - i);
        const gn_vf xh = gn_mul(gn_sub(gn_load_mask(x + i, k), m), r);
        const gn_vf dxh = gn_mul(gn_load_mask(dout + i, k), ga);
        const gn_vf t = gn_fnmadd(xh, m2, gn_sub(dxh, m1));
        gn_store_mask(dinp + i, k, gn_fmadd(r, t, gn_load_mask(dinp + i, k)));
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
        for (size_t j = i; j < end; j += DR_SUM_W) // lane means
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
    const float s = vm_sigmoid2f(a, &om);
    return d * s * (1.0f + a * om);
}

static inline void gn_apply_(float *y, const float *x, size_t n, float mf, float rf, float ga, float be,
                             const int silu) {
    for (size_t i = 0; i < n; i++) {
        const float a = ga * ((x[i] - mf) * rf) + be;
        y[i] = silu ? a / (1.0f + vm_expf(-a)) : a;
    }
}

static inline void gn_row_sums_(float *dinp, float rg, const float *dout, const float *x, size_t n, float mf, float rf,
                                float ga, float be, const int silu, const int upd, double *sdy, double *sdx) {
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
        a1 += vm_lanes_sum_(f);
        a2 += vm_lanes_sum_(q);
        i += len;
    }
    *sdy = a1;
    *sdx = a2;
}

static void gn_row_corr(float *dinp, const float *x, size_t n, float mf, float rf, float c0, float c1) {
    for (size_t i = 0; i < n; i++) dinp[i] += c1 * ((x[i] - mf) * rf) + c0;
}

static void gn_row_dinp(float *dinp, const float *dout, const float *x, size_t n, float mf, float rf, float ga,
                        float m1, float m2) {
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
static void gn_apply_silu(float *y, const float *x, size_t n, float mf, float rf, float ga, float be) {
    gn_apply_(y, x, n, mf, rf, ga, be, 1);
}
/* row sums; with dinp (fused SiLU only), also dinp += rg * dy */
static void gn_row_sums(float *dinp, float rg, const float *dout, const float *x, size_t n, float mf, float rf,
                        float ga, float be, int silu, double *sdy, double *sdx) {
    if (silu && dinp)
        gn_row_sums_(dinp, rg, dout, x, n, mf, rf, ga, be, 1, 1, sdy, sdx);
    else if (silu)
        gn_row_sums_(NULL, 0.0f, dout, x, n, mf, rf, ga, be, 1, 0, sdy, sdx);
    else
        gn_row_sums_(NULL, 0.0f, dout, x, n, mf, rf, ga, be, 0, 0, sdy, sdx);
}

void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma, const float *beta,
                       int B, int C, int HW, int G, int silu) {
    const int Cg = C / G;                 // channels per group
    const size_t gsize = (size_t)Cg * HW; // values per group, contiguous in NCHW
    if (gsize == 0) return;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int bg = 0; bg < B * G; bg++) { // one (b, g) group per iteration
        const int g = bg % G;
        const float *x = inp + (size_t)bg * gsize; // [Cg, HW]
        float *y = out + (size_t)bg * gsize;       // [Cg, HW]
        double m, v;                               // one pass over the block
        gn_stats(x, gsize, &m, &v);
        const float mf = (float)m;
        const float rf = (float)(1.0 / sqrt(v + GN_EPS));
        mean[bg] = mf;
        rstd[bg] = rf;
        // normalize with the cached float values, so the backward
        //    recomputes exactly the same pre-activation
        for (int cc = 0; cc < Cg; cc++) { // channel inside the group
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
static void gn_block_backward(float *dinp, double *rows, const float *dout, const float *x, int Cg, int HW, float mf,
                              float rf, const float *gamma, const float *beta, int silu) {
    double s1 = 0.0, s2 = 0.0; // sum dxh, sum dxh * xhat (dxh = dy * gamma)
    for (int cc = 0; cc < Cg; cc++) {
        const size_t off = (size_t)cc * HW;
        double sdy, sdx;
        gn_row_sums(silu && dinp ? dinp + off : NULL, rf * gamma[cc], dout + off, x + off, (size_t)HW, mf, rf,
                    gamma[cc], beta[cc], silu, &sdy, &sdx);
        if (rows) rows[2 * cc] = sdy, rows[2 * cc + 1] = sdx;
        s1 += (double)gamma[cc] * sdy;
        s2 += (double)gamma[cc] * sdx;
    }
    if (!dinp) return;
    const double n = (double)Cg * HW;
    const float m1 = (float)(s1 / n); // mean(dxh)
    const float m2 = (float)(s2 / n); // mean(dxh * xhat)
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
void groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                        const float *mean, const float *rstd, const float *gamma, const float *beta, int B, int C,
                        int HW, int G, int silu) {
    const int Cg = C / G;                 // channels per group
    const size_t gsize = (size_t)Cg * HW; // values per group
    const int want_p = dgamma || dbeta;
    if (gsize == 0 || B <= 0 || (!want_p && !dinp)) return;
    const size_t rowc = 2 * (size_t)C; // doubles per sample: [C][sum dy, sum dy*xhat]
    const int nslot = want_p ? (int)(GN_ROWS_CAP / rowc) : 0;

    if (want_p && nslot >= (B > 1 ? 2 : 1)) {
        double rows[GN_ROWS_CAP]; // [nslot][C][2]
        // chunk 0 fills slots 0.., later chunks slots 1.. (slot 0: totals)
        for (int b0 = 0; b0 < B;) {
            const int first = b0 == 0 ? 0 : 1;
            const int nb = B - b0 < nslot - first ? B - b0 : nslot - first;
            double *slots = rows + (size_t)first * rowc;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
            for (int j = 0; j < nb * G; j++) {
                const int bl = j / G, g = j % G, bg = (b0 + bl) * G + g;
                const size_t base = (size_t)bg * gsize;
                gn_block_backward(dinp ? dinp + base : NULL, slots + bl * rowc + 2 * (size_t)g * Cg, dout + base,
                                  inp + base, Cg, HW, mean[bg], rstd[bg], gamma + (size_t)g * Cg, beta + (size_t)g * Cg,
                                  silu);
            }
            for (int s = 1; s < first + nb; s++) // totals += sample rows, b in order
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
            gn_block_backward(dinp + base, NULL, dout + base, inp + base, Cg, HW, mean[bg], rstd[bg],
                              gamma + (size_t)g * Cg, beta + (size_t)g * Cg, silu);
        }
    }
    if (want_p) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
        for (int c = 0; c < C; c++) {
            const int g = c / Cg;
            double tdy = 0.0, tdx = 0.0;
            for (int b = 0; b < B; b++) {
                const size_t off = ((size_t)b * C + c) * HW; // [b, c, :]
                double sdy, sdx;
                gn_row_sums(NULL, 0.0f, dout + off, inp + off, (size_t)HW, mean[b * G + g], rstd[b * G + g], gamma[c],
                            beta[c], silu, &sdy, &sdx);
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
