/*
 * Memory-bound helpers: upsampling, concat, per-channel bias, adds and the
 * timestep embedding (nn_init_threads / nn_threads live in threads.c).
 * Reductions (the backward of the upsampling and of the channel bias) run
 * per output value inside one thread, in a fixed order (the channel bias:
 * the fixed-pattern vector sum of vecmath.h), so nothing depends on the
 * thread count.
 */
#include "nn/nn.h"
#include "nn/vecmath.h"

#include <math.h>
#include <string.h>

/* Below this many values a parallel region costs more than it saves. */
#define EW_PAR_MIN 32768

/* ---- nearest-neighbour x2 upsampling */

void upsample2x_forward(float *out, const float *inp, int B, int C, int H, int W) {
    const int Wo = 2 * W;
    const size_t plane = (size_t)H * W;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if ((size_t)B * C * plane >= EW_PAR_MIN)
    for (int bc = 0; bc < B * C; bc++) {           // one [H, W] plane per iteration
        const float *x = inp + (size_t)bc * plane; // [H, W]
        float *y = out + (size_t)bc * plane * 4;   // [2H, 2W]
        for (int h = 0; h < H; h++) {
            float *r0 = y + (size_t)(2 * h) * Wo; // output rows 2h and 2h+1
            for (int w = 0; w < W; w++) r0[2 * w] = r0[2 * w + 1] = x[(size_t)h * W + w];
            memcpy(r0 + Wo, r0, (size_t)Wo * sizeof(float));
        }
    }
}

void upsample2x_backward(float *dinp, const float *dout, int B, int C, int H, int W) {
    if (!dinp) return;
    const int Wo = 2 * W;
    const size_t plane = (size_t)H * W;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if ((size_t)B * C * plane >= EW_PAR_MIN)
    for (int bc = 0; bc < B * C; bc++) {
        const float *dy = dout + (size_t)bc * plane * 4; // [2H, 2W]
        float *dx = dinp + (size_t)bc * plane;           // [H, W]
        for (int h = 0; h < H; h++) {
            const float *r0 = dy + (size_t)(2 * h) * Wo, *r1 = r0 + Wo;
            for (int w = 0; w < W; w++) // the 2x2 block that copied x[h, w]
                dx[(size_t)h * W + w] += (r0[2 * w] + r0[2 * w + 1]) + (r1[2 * w] + r1[2 * w + 1]);
        }
    }
}

/* ---- channel concat */

void concat_forward(float *out, const float *a, const float *b, int B, int Ca, int Cb, int HW) {
    const size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW; // per-sample sizes
    for (int s = 0; s < B; s++) {
        float *o = out + (size_t)s * (na + nb); // [Ca + Cb, HW]
        memcpy(o, a + (size_t)s * na, na * sizeof(float));
        memcpy(o + na, b + (size_t)s * nb, nb * sizeof(float));
    }
}

/* set_a / set_b: set da / db (a gradient the caller has not written yet this
 * step, so it need not be zeroed first) instead of adding to them (the layer
 * rule) */
void concat_backward_into(float *da, int set_a, float *db, int set_b, const float *dout, int B, int Ca, int Cb,
                          int HW) {
    const size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    for (int s = 0; s < B; s++) {
        const float *d = dout + (size_t)s * (na + nb);
        if (da && set_a) memcpy(da + (size_t)s * na, d, na * sizeof(float));
        if (da && !set_a) accumulate(da + (size_t)s * na, d, na);
        if (db && set_b) memcpy(db + (size_t)s * nb, d + na, nb * sizeof(float));
        if (db && !set_b) accumulate(db + (size_t)s * nb, d + na, nb);
    }
}

void concat_backward(float *da, float *db, const float *dout, int B, int Ca, int Cb, int HW) {
    concat_backward_into(da, 0, db, 0, dout, B, Ca, Cb, HW);
}

/* ---- per-(sample, channel) bias */

void add_channel_bias_forward(float *x, const float *v, int B, int C, int HW) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if ((size_t)B * C * HW >= EW_PAR_MIN)
    for (int bc = 0; bc < B * C; bc++) { // x[b, c, :] += v[b, c]
        float *xc = x + (size_t)bc * HW;
        const float vv = v[bc];
        for (int i = 0; i < HW; i++) xc[i] += vv;
    }
}

void add_channel_bias_backward(float *dv, const float *dout, int B, int C, int HW) {
    if (!dv) return;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if ((size_t)B * C * HW >= EW_PAR_MIN)
    for (int bc = 0; bc < B * C; bc++) { // dv[b, c] += sum over HW
        dv[bc] += (float)vm_sum_dev(dout + (size_t)bc * HW, (size_t)HW, 0.0f);
    }
}

/* ---- elementwise add / accumulate */

void add_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n >= EW_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void accumulate(float *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n >= EW_PAR_MIN)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* ---- sinusoidal timestep embedding, computed in double then rounded once */

void timestep_embedding(float *out, const float *t, int B, int dim) {
    const int h = dim / 2;
    const double lnmax = log(10000.0);
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * dim; // [cos(t f) | sin(t f)]
        const double tb = t[b];
        for (int i = 0; i < h; i++) {
            const double f = exp(-lnmax * (double)i / (double)h);
            o[i] = (float)cos(tb * f);
            o[h + i] = (float)sin(tb * f);
        }
        if (dim & 1) o[dim - 1] = 0.0f; // odd dim: pad the last value
    }
}
