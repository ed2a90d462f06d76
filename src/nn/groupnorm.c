/*
 * GroupNorm (eps 1e-5, biased variance like PyTorch, per-channel affine) with
 * an optional fused SiLU after the affine transform.
 *
 * Statistics are accumulated in double, so a group of a few hundred thousand
 * values keeps float precision. Each (b, g) group, and in the backward each
 * channel's parameter gradient, is reduced sequentially inside one thread: the
 * results do not depend on the OpenMP thread count.
 */
#include "nn/nn.h"

#include <math.h>

#define GN_EPS 1e-5

static inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *gamma, const float *beta, int B, int C, int HW, int G,
                       int silu) {
    const int Cg = C / G;                        // channels per group
    const size_t gsize = (size_t)Cg * HW;        // values per group, contiguous in NCHW
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int bg = 0; bg < B * G; bg++) {         // one (b, g) group per iteration
        const int g = bg % G;
        const float *x = inp + (size_t)bg * gsize;   // [Cg, HW]
        float *y = out + (size_t)bg * gsize;         // [Cg, HW]
        // two-pass mean / variance in double: no catastrophic cancellation
        double s = 0.0;
        for (size_t i = 0; i < gsize; i++) s += x[i];
        const double m = s / (double)gsize;
        double v = 0.0;
        for (size_t i = 0; i < gsize; i++) {
            const double d = x[i] - m;
            v += d * d;
        }
        v /= (double)gsize;                      // biased variance
        const float mf = (float)m;
        const float rf = (float)(1.0 / sqrt(v + GN_EPS));
        mean[bg] = mf;
        rstd[bg] = rf;
        // normalize with the cached float values, so the backward recomputes
        // exactly the same pre-activation
        for (int cc = 0; cc < Cg; cc++) {        // channel inside the group
            const int c = g * Cg + cc;
            const float ga = gamma[c], be = beta[c];
            const float *xc = x + (size_t)cc * HW;   // [HW]
            float *yc = y + (size_t)cc * HW;         // [HW]
            for (int i = 0; i < HW; i++) {
                const float a = ga * ((xc[i] - mf) * rf) + be;
                yc[i] = silu ? a * sigmoidf_(a) : a;
            }
        }
    }
}

/* dL/d(pre-activation) for one value: the SiLU derivative when fused. */
static inline float gn_dy(float dout, float xhat, float ga, float be, int silu) {
    if (!silu) return dout;
    const float a = ga * xhat + be;              // pre-SiLU value, as in the forward
    const float sg = sigmoidf_(a);
    return dout * sg * (1.0f + a * (1.0f - sg)); // d silu(a) / da
}

void groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                        const float *inp, const float *mean, const float *rstd,
                        const float *gamma, const float *beta, int B, int C, int HW, int G,
                        int silu) {
    const int Cg = C / G;                        // channels per group
    const size_t gsize = (size_t)Cg * HW;        // values per group

    // 1) parameter gradients: one channel per iteration, batch summed in
    //    order b = 0..B-1 inside the thread (no cross-thread reduction)
    if (dgamma || dbeta) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
        for (int c = 0; c < C; c++) {
            const int g = c / Cg;
            const float ga = gamma[c], be = beta[c];
            double sg = 0.0, sb = 0.0;           // sum dy * xhat, sum dy
            for (int b = 0; b < B; b++) {
                const size_t off = ((size_t)b * C + c) * HW;     // [b, c, :]
                const float mf = mean[b * G + g], rf = rstd[b * G + g];
                for (int i = 0; i < HW; i++) {
                    const float xh = (inp[off + i] - mf) * rf;
                    const float dy = gn_dy(dout[off + i], xh, ga, be, silu);
                    sg += (double)dy * xh;
                    sb += dy;
                }
            }
            if (dgamma) dgamma[c] += (float)sg;
            if (dbeta) dbeta[c] += (float)sb;
        }
    }

    // 2) input gradient, per (b, g):
    //    dx = rstd * (dxh - mean(dxh) - xhat * mean(dxh * xhat)), dxh = dy * gamma
    if (dinp) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
        for (int bg = 0; bg < B * G; bg++) {
            const int g = bg % G;
            const size_t base = (size_t)bg * gsize;          // [Cg, HW] block
            const float mf = mean[bg], rf = rstd[bg];
            double s1 = 0.0, s2 = 0.0;           // sum dxh, sum dxh * xhat
            for (int cc = 0; cc < Cg; cc++) {
                const int c = g * Cg + cc;
                const float ga = gamma[c], be = beta[c];
                const size_t off = base + (size_t)cc * HW;
                for (int i = 0; i < HW; i++) {
                    const float xh = (inp[off + i] - mf) * rf;
                    const float dxh = gn_dy(dout[off + i], xh, ga, be, silu) * ga;
                    s1 += dxh;
                    s2 += (double)dxh * xh;
                }
            }
            const float m1 = (float)(s1 / (double)gsize);    // mean(dxh)
            const float m2 = (float)(s2 / (double)gsize);    // mean(dxh * xhat)
            for (int cc = 0; cc < Cg; cc++) {
                const int c = g * Cg + cc;
                const float ga = gamma[c], be = beta[c];
                const size_t off = base + (size_t)cc * HW;
                for (int i = 0; i < HW; i++) {
                    const float xh = (inp[off + i] - mf) * rf;
                    const float dxh = gn_dy(dout[off + i], xh, ga, be, silu) * ga;
                    dinp[off + i] += rf * (dxh - m1 - xh * m2);
                }
            }
        }
    }
}
