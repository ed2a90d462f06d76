/*
 * conv2d.c - 2D convolution (K = 1 or 3, padding K/2, stride 1 or 2) as
 * im2col + sgemm.
 *
 * Threading: OpenBLAS is single-threaded (nn_init_threads); we split the work
 * ourselves with OpenMP on boundaries that do not depend on the thread count,
 * so a result is bit-identical for any number of threads:
 *  - forward: tasks are (sample, chunk of CONV_CHUNK output positions); each
 *    thread im2cols its chunk into its own scratch slice and runs one sgemm.
 *  - backward: per sample, three phases over shared scratch: im2col (split by
 *    rows), dW += dout_b @ col^T (split by fixed column blocks of dW, so every
 *    dW element sums the samples in order 0..B-1), dcol = W^T @ dout_b, then
 *    col2im split by input channel (a channel's rows of dcol only touch that
 *    channel of dinp, so there is no write conflict).
 */
#include "nn/nn.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#define CONV_CHUNK 256 /* output positions per forward task */
#define DW_BLOCK 64    /* dW columns per backward task */

int conv2d_out_h(const conv2d_dims *d) { return (d->H + 2 * (d->K / 2) - d->K) / d->stride + 1; }
int conv2d_out_w(const conv2d_dims *d) { return (d->W + 2 * (d->K / 2) - d->K) / d->stride + 1; }

static int is_pointwise(const conv2d_dims *d) { return d->K == 1 && d->stride == 1; }

size_t conv2d_forward_scratch(const conv2d_dims *d) {
    if (is_pointwise(d)) return 0;
    return (size_t)d->Cin * d->K * d->K * CONV_CHUNK * (size_t)nn_threads();
}

size_t conv2d_backward_scratch(const conv2d_dims *d) {
    size_t howo = (size_t)conv2d_out_h(d) * conv2d_out_w(d);
    return (size_t)d->Cin * d->K * d->K * howo; /* one col / dcol matrix, reused */
}

/* col[r, p - p0] for rows r = (ci, ky, kx) and output positions p in [p0, p1). */
static void im2col_chunk(float *col, const float *inp, const conv2d_dims *d, int Wo, int p0, int p1,
                         int r0, int r1) {
    const int K = d->K, pad = K / 2, s = d->stride, H = d->H, W = d->W;
    const int n = p1 - p0;
    for (int r = r0; r < r1; r++) {
        const int ci = r / (K * K), ky = (r / K) % K, kx = r % K;
        const float *src = inp + (size_t)ci * H * W; // [H, W] plane of channel ci
        float *dst = col + (size_t)(r - r0) * n;
        int oy = p0 / Wo, ox = p0 % Wo;
        for (int i = 0; i < n; i++) {
            const int iy = oy * s + ky - pad, ix = ox * s + kx - pad;
            dst[i] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? src[iy * W + ix] : 0.0f;
            if (++ox == Wo) { ox = 0; oy++; }
        }
    }
}

void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                    const conv2d_dims *d, float *scratch) {
    const int Ho = conv2d_out_h(d), Wo = conv2d_out_w(d);
    const int P = Ho * Wo;                 // output positions per sample
    const int R = d->Cin * d->K * d->K;    // im2col rows
    const int nchunk = (P + CONV_CHUNK - 1) / CONV_CHUNK;
    const int ntask = d->B * nchunk;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int task = 0; task < ntask; task++) {
        const int b = task / nchunk, p0 = (task % nchunk) * CONV_CHUNK;
        const int p1 = p0 + CONV_CHUNK < P ? p0 + CONV_CHUNK : P, n = p1 - p0;
        const float *x = inp + (size_t)b * d->Cin * d->H * d->W; // [Cin, H, W]
        float *y = out + (size_t)b * d->Cout * P + p0;            // [Cout, P] at column p0
        const float *B;
        int ldb;
        if (is_pointwise(d)) {
            B = x + p0; // [Cin, P]: the input is its own im2col
            ldb = P;
        } else {
            float *col = scratch + (size_t)omp_get_thread_num() * R * CONV_CHUNK; // [R, n]
            im2col_chunk(col, x, d, Wo, p0, p1, 0, R);
            B = col;
            ldb = n;
        }
        for (int co = 0; co < d->Cout; co++) { // y = bias, then += W @ col
            const float bv = bias ? bias[co] : 0.0f;
            float *row = y + (size_t)co * P;
            for (int i = 0; i < n; i++) row[i] = bv;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->Cout, n, R, 1.0f, weight, R, B,
                    ldb, 1.0f, y, P);
    }
}

void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, const conv2d_dims *d, float *scratch) {
    const int Ho = conv2d_out_h(d), Wo = conv2d_out_w(d);
    const int P = Ho * Wo, R = d->Cin * d->K * d->K;
    const int K = d->K, pad = K / 2, s = d->stride, H = d->H, W = d->W;
    const int pw = is_pointwise(d);
    const int ndw = (R + DW_BLOCK - 1) / DW_BLOCK;
#pragma omp parallel num_threads(nn_threads())
    {
        if (dbias) {
#pragma omp for schedule(static)
            for (int co = 0; co < d->Cout; co++) { // db[co] += sum_b sum_p dout[b, co, p]
                double acc = 0.0;
                for (int b = 0; b < d->B; b++) {
                    const float *g = dout + ((size_t)b * d->Cout + co) * P;
                    for (int p = 0; p < P; p++) acc += g[p];
                }
                dbias[co] += (float)acc;
            }
        }
        for (int b = 0; b < d->B; b++) {
            const float *x = inp + (size_t)b * d->Cin * H * W;   // [Cin, H, W]
            const float *g = dout + (size_t)b * d->Cout * P;     // [Cout, P]
            const float *col = pw ? x : scratch;                  // [R, P]
            if (dweight) {
                if (!pw) {
#pragma omp for schedule(static)
                    for (int r = 0; r < R; r++) im2col_chunk(scratch + (size_t)r * P, x, d, Wo, 0, P, r, r + 1);
                }
#pragma omp for schedule(static)
                for (int blk = 0; blk < ndw; blk++) { // dW[:, c0:c1] += g @ col[c0:c1, :]^T
                    const int c0 = blk * DW_BLOCK, c1 = c0 + DW_BLOCK < R ? c0 + DW_BLOCK : R;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->Cout, c1 - c0, P, 1.0f, g,
                                P, col + (size_t)c0 * P, P, 1.0f, dweight + c0, R);
                }
            }
            if (dinp) {
                float *dx = dinp + (size_t)b * d->Cin * H * W;
                if (pw) {
                    /* dx [Cin, P] += W^T [Cin, Cout] @ g [Cout, P], split by fixed column chunks */
                    const int nch = (P + CONV_CHUNK - 1) / CONV_CHUNK;
#pragma omp for schedule(static)
                    for (int c = 0; c < nch; c++) {
                        const int p0 = c * CONV_CHUNK, n = p0 + CONV_CHUNK < P ? CONV_CHUNK : P - p0;
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d->Cin, n, d->Cout, 1.0f,
                                    weight, R, g + p0, P, 1.0f, dx + p0, P);
                    }
                } else {
                    const int nch = (P + CONV_CHUNK - 1) / CONV_CHUNK;
#pragma omp for schedule(static)
                    for (int c = 0; c < nch; c++) { // dcol [R, P] = W^T @ g (overwrites col)
                        const int p0 = c * CONV_CHUNK, n = p0 + CONV_CHUNK < P ? CONV_CHUNK : P - p0;
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, n, d->Cout, 1.0f,
                                    weight, R, g + p0, P, 0.0f, scratch + p0, P);
                    }
#pragma omp for schedule(static)
                    for (int ci = 0; ci < d->Cin; ci++) { // col2im: channel ci only
                        float *dst = dx + (size_t)ci * H * W;
                        for (int k = 0; k < K * K; k++) {
                            const int ky = k / K, kx = k % K;
                            const float *src = scratch + ((size_t)ci * K * K + k) * P;
                            for (int oy = 0; oy < Ho; oy++) {
                                const int iy = oy * s + ky - pad;
                                if (iy < 0 || iy >= H) continue;
                                for (int ox = 0; ox < Wo; ox++) {
                                    const int ix = ox * s + kx - pad;
                                    if (ix >= 0 && ix < W) dst[iy * W + ix] += src[oy * Wo + ox];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
