/* imgproc_guided.c - working size and guided upsampling (see imgproc_guided.h). */
#include "imgproc/imgproc_guided.h"

#include "common/error.h"
#include "nn/nn.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void ip_render_dims(int h, int w, int R, int *hr, int *wr) {
    const int lng = h > w ? h : w;
    if (R <= 0 || lng <= R) {
        *hr = h;
        *wr = w;
        return;
    }
    const double s = (double)R / lng;
    int a = h >= w ? R : (int)lround(h * s), b = w >= h ? R : (int)lround(w * s);
    *hr = a < 1 ? 1 : a;
    *wr = b < 1 ? 1 : b;
}

/* out[i] = mean of in over the (2r + 1)^2 window around i clipped to the
 * image. sat: (h + 1) * (w + 1) doubles. */
static void box_mean(const double *in, double *out, int h, int w, int r, double *sat) {
    const size_t sw = (size_t)w + 1;
    for (int x = 0; x <= w; x++) sat[x] = 0.0;
    for (int y = 0; y < h; y++) {
        double row = 0.0;
        sat[(size_t)(y + 1) * sw] = 0.0;
        for (int x = 0; x < w; x++) {
            row += in[(size_t)y * w + x];
            sat[(size_t)(y + 1) * sw + x + 1] = sat[(size_t)y * sw + x + 1] + row;
        }
    }
    for (int y = 0; y < h; y++) {
        const int y0 = y - r < 0 ? 0 : y - r, y1 = y + r > h - 1 ? h - 1 : y + r;
        for (int x = 0; x < w; x++) {
            const int x0 = x - r < 0 ? 0 : x - r, x1 = x + r > w - 1 ? w - 1 : x + r;
            const double s = sat[(size_t)(y1 + 1) * sw + x1 + 1] - sat[(size_t)y0 * sw + x1 + 1] -
                sat[(size_t)(y1 + 1) * sw + x0] + sat[(size_t)y0 * sw + x0];
            out[(size_t)y * w + x] = s / ((double)(y1 - y0 + 1) * (x1 - x0 + 1));
        }
    }
}

/* Bilinear source positions for out_size samples from in_size, half-pixel
 * centres, clamped at the edges (align_corners=False). */
static void lin_axis(int in_size, int out_size, int *i0, int *i1, float *l) {
    const double scale = (double)in_size / out_size;
    for (int o = 0; o < out_size; o++) {
        double src = (o + 0.5) * scale - 0.5;
        if (src < 0) src = 0;
        int a = (int)src;
        if (a > in_size - 1) a = in_size - 1;
        i0[o] = a;
        i1[o] = a + 1 < in_size ? a + 1 : in_size - 1;
        l[o] = (float)(src - a);
    }
}

int ip_guided_upsample(const float *g_lo, const float *p_lo, int C, int h, int w, const float *g, int H, int W,
                       int radius, double eps, float *q) {
    if (!g_lo || !p_lo || !g || !q) return error_set(DR_ERR_INVALID, "guided upsampling: NULL buffer");
    if (C < 1 || h < 1 || w < 1 || H < 1 || W < 1 || radius < 0 || !(eps > 0))
        return error_set(DR_ERR_INVALID, "guided upsampling: bad arguments (%d planes, %dx%d -> %dx%d, r %d, eps %g)",
                         C, w, h, W, H, radius, eps);
    const size_t n = (size_t)h * w;
    if (n > ((size_t)1 << 28)) return error_set(DR_ERR_LIMIT, "guided upsampling: %dx%d is too large", w, h);
    /* mI, vI, then per plane: tmp, mp, cIp (reused as mean a, mean b), and the coefficients AB [C][2][n] */
    double *buf = malloc(sizeof(double) * (5 * n + ((size_t)h + 1) * (w + 1)));
    float *AB = malloc(sizeof(float) * 2 * (size_t)C * n);
    int *ix = malloc(sizeof(int) * 2 * ((size_t)W + H));
    float *lx = malloc(sizeof(float) * ((size_t)W + H));
    if (!buf || !AB || !ix || !lx) {
        free(buf), free(AB), free(ix), free(lx);
        return error_set(DR_ERR_NOMEM, "guided upsampling %dx%d -> %dx%d: out of memory", w, h, W, H);
    }
    double *mI = buf, *vI = buf + n, *tmp = buf + 2 * n, *mp = buf + 3 * n, *cIp = buf + 4 * n, *sat = buf + 5 * n;
    for (size_t i = 0; i < n; i++) tmp[i] = g_lo[i];
    box_mean(tmp, mI, h, w, radius, sat);
    for (size_t i = 0; i < n; i++) tmp[i] = (double)g_lo[i] * g_lo[i];
    box_mean(tmp, vI, h, w, radius, sat);
    for (size_t i = 0; i < n; i++) vI[i] -= mI[i] * mI[i];
    for (int c = 0; c < C; c++) {
        const float *p = p_lo + (size_t)c * n;
        float *A = AB + (size_t)c * 2 * n, *B = A + n;
        for (size_t i = 0; i < n; i++) tmp[i] = p[i];
        box_mean(tmp, mp, h, w, radius, sat);
        for (size_t i = 0; i < n; i++) tmp[i] = (double)g_lo[i] * p[i];
        box_mean(tmp, cIp, h, w, radius, sat);
        for (size_t i = 0; i < n; i++) { /* a into cIp, b into mp */
            const double a = (cIp[i] - mI[i] * mp[i]) / (vI[i] + eps);
            cIp[i] = a;
            mp[i] -= a * mI[i];
        }
        box_mean(cIp, tmp, h, w, radius, sat);
        for (size_t i = 0; i < n; i++) A[i] = (float)tmp[i];
        box_mean(mp, tmp, h, w, radius, sat);
        for (size_t i = 0; i < n; i++) B[i] = (float)tmp[i];
    }
    int *x0 = ix, *x1 = ix + W, *y0 = ix + 2 * W, *y1 = ix + 2 * W + H;
    float *fx = lx, *fy = lx + W;
    lin_axis(w, W, x0, x1, fx);
    lin_axis(h, H, y0, y1, fy);
    for (int c = 0; c < C; c++) {
        const float *A = AB + (size_t)c * 2 * n, *B = A + n;
        float *qc = q + (size_t)c * H * W;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
        for (int y = 0; y < H; y++) {
            const float ly = fy[y];
            const float *a0 = A + (size_t)y0[y] * w, *a1 = A + (size_t)y1[y] * w;
            const float *b0 = B + (size_t)y0[y] * w, *b1 = B + (size_t)y1[y] * w;
            const float *gr = g + (size_t)y * W;
            float *qr = qc + (size_t)y * W;
            for (int x = 0; x < W; x++) {
                const int i = x0[x], j = x1[x];
                const float l = fx[x];
                const float at = a0[i] + l * (a0[j] - a0[i]), ab = a1[i] + l * (a1[j] - a1[i]);
                const float bt = b0[i] + l * (b0[j] - b0[i]), bb = b1[i] + l * (b1[j] - b1[i]);
                const float av = at + ly * (ab - at), bv = bt + ly * (bb - bt);
                qr[x] = av * gr[x] + bv;
            }
        }
    }
    free(buf), free(AB), free(ix), free(lx);
    return DR_OK;
}
