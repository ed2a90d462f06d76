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
#include "nn/conv2d_direct.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#define CONV_CHUNK 256 /* output positions per forward task */
#define DW_BLOCK 64    /* dW columns per backward task */

int conv2d_out_h(const conv2d_dims *d) { return (d->H + 2 * (d->K / 2) - d->K) / d->stride + 1; }
int conv2d_out_w(const conv2d_dims *d) { return (d->W + 2 * (d->K / 2) - d->K) / d->stride + 1; }

static int is_pointwise(const conv2d_dims *d) { return d->K == 1 && d->stride == 1; }

/* Direct path: packed weights, padded input planes, 1x1 tail buffers. */
static size_t direct_forward_scratch(const conv2d_dims *d) {
    return conv_direct_pack_floats(d->Cout, d->Cin, d->K) + conv_direct_pad_floats(d->B, d->Cin, d->H, d->W, d->K) +
           conv_direct_tail_floats(d->Cin);
}

/* Direct backward: packed flipped weights, padded dout (B planes), padded
 * input (B planes), tails, and per-thread dW tap blocks [Cout, Cin]. */
static size_t direct_backward_scratch(const conv2d_dims *d) {
    return conv_direct_pack_floats(d->Cin, d->Cout, d->K) + conv_direct_pad_floats(d->B, d->Cout, d->H, d->W, d->K) +
           conv_direct_pad_floats(d->B, d->Cin, d->H, d->W, d->K) + conv_direct_tail_floats(d->Cout);
}

size_t conv2d_forward_scratch(const conv2d_dims *d) {
    if (conv_direct_supported(d)) return direct_forward_scratch(d);
    if (is_pointwise(d)) return 0;
    return (size_t)d->Cin * d->K * d->K * CONV_CHUNK * (size_t)nn_threads();
}

size_t conv2d_backward_scratch(const conv2d_dims *d) {
    if (conv_direct_supported(d)) return direct_backward_scratch(d);
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
    if (conv_direct_supported(d)) {
        float *wpk = scratch, *pad = wpk + conv_direct_pack_floats(d->Cout, d->Cin, d->K);
        float *tail = pad + conv_direct_pad_floats(d->B, d->Cin, d->H, d->W, d->K);
        conv_direct_pack(wpk, weight, d->Cout, d->Cin, d->K * d->K, 0);
        if (d->K == 3) conv_direct_pad(pad, inp, d->B, d->Cin, d->H, d->W);
        conv_direct_run(out, 0, d->K == 3 ? pad : inp, wpk, bias, d->B, d->Cin, d->Cout, d->H, d->W, d->K, tail);
        return;
    }
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

static void conv2d_backward_direct(float *dinp, float *dweight, const float *dout, const float *inp,
                                   const float *weight, const conv2d_dims *d, float *scratch);
static void conv2d_bias_backward(float *dbias, const float *dout, int B, int Cout, int P);

void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, const conv2d_dims *d, float *scratch) {
    if (conv_direct_supported(d) && (d->K == 3 || dinp)) {
        if (dbias) conv2d_bias_backward(dbias, dout, d->B, d->Cout, d->H * d->W);
        conv2d_backward_direct(dinp, dweight, dout, inp, weight, d, scratch);
        if (d->K == 3 || !dweight) return;
        /* a 1x1 dW is a plain GEMM on the raw input: the im2col path below */
        dinp = NULL;
        dbias = NULL;
    }
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

static void conv2d_bias_backward(float *dbias, const float *dout, int B, int Cout, int P) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int co = 0; co < Cout; co++) { // db[co] += sum_b sum_p dout[b, co, p], in a fixed order
        double acc = 0.0;
        for (int b = 0; b < B; b++) {
            const float *g = dout + ((size_t)b * Cout + co) * P;
            for (int p = 0; p < P; p++) acc += g[p];
        }
        dbias[co] += (float)acc;
    }
}

/* 3x3 stride 1 (and 1x1 dinp) through the direct kernel:
 *  - dinp += conv(dout, transposed flipped W), on zero-framed dout planes;
 *  - dW[co][ci][t] += sum_p dout_flat[co][p] * in_pad[ci][p + off[t]], where
 *    dout_flat is the padded dout plane read from its first pixel (its border
 *    columns are the zeros that cancel the flat layout's padding columns);
 *    see conv_direct_dweight3x3. */
static void conv2d_backward_direct(float *dinp, float *dweight, const float *dout, const float *inp,
                                   const float *weight, const conv2d_dims *d, float *scratch) {
    const int K = d->K, T = K * K, H = d->H, W = d->W, Cin = d->Cin, Cout = d->Cout;
    float *wpk = scratch;
    float *dpad = wpk + conv_direct_pack_floats(Cin, Cout, K);
    float *xpad = dpad + conv_direct_pad_floats(d->B, Cout, H, W, K);
    float *tail = xpad + conv_direct_pad_floats(d->B, Cin, H, W, K);
    if (K == 3) conv_direct_pad(dpad, dout, d->B, Cout, H, W);
    const float *dsrc = K == 3 ? dpad : dout;
    if (dinp) {
        conv_direct_pack(wpk, weight, Cin, Cout, T, 1);
        conv_direct_run(dinp, 1, dsrc, wpk, NULL, d->B, Cout, Cin, H, W, K, tail);
    }
    if (!dweight || K != 3) return;
    conv_direct_pad(xpad, inp, d->B, Cin, H, W);
    conv_direct_dweight3x3(dweight, dpad, xpad, d->B, Cin, Cout, H, W);
}
