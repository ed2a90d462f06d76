/*
 * conv2d.c - 2D convolution (K = 1 or 3, padding K/2, stride 1 or 2).
 *
 * Paths: with AVX-512, stride-1 convs go to the hand-written kernels: the 3x3
 * forward and backward-data to Winograd F(2x2, 3x3) (winograd.c) when
 * use_winograd says so, else to the direct kernel (conv2d_direct.c), as do
 * the 1x1s; the 3x3 weight gradient to Winograd F(3x3, 2x2) (see
 * use_winograd_dweight). Everything else is im2col + GEMM (nn_gemm), below,
 * and so are most 1x1s on the bf16 path (use_direct).
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
#include "nn/winograd.h"

#include <omp.h>
#include <string.h>

#define CONV_CHUNK 256 /* output positions per forward task */
#define DW_BLOCK   64  /* dW columns per backward task */

int conv2d_out_h(const conv2d_dims *d) { return (d->H + 2 * (d->K / 2) - d->K) / d->stride + 1; }
int conv2d_out_w(const conv2d_dims *d) { return (d->W + 2 * (d->K / 2) - d->K) / d->stride + 1; }

static int is_pointwise(const conv2d_dims *d) { return d->K == 1 && d->stride == 1; }

/* 1 when d's forward (backward_data = 0) or backward-data pass (1) runs
 * through the fp32 direct kernel. On the bf16 path a 1x1 leaves it for the
 * GEMM below (nn_gemm's bf16 kernel: 2x the multiply-adds per instruction)
 * when the GEMM's M, the channels it produces, is >= 64: below that the
 * bf16 packing of the activations, used only M times, costs more than it
 * saves. Measured (1 thread, B = 16, ms, fp32 direct -> bf16 GEMM): forward
 * 64x64 96->32 3.61 -> 4.35, 64->32 2.60 -> 2.96; 32x32 128->64 1.81 -> 1.32,
 * 32->64 0.60 -> 0.46. The 3x3s keep Winograd (bf16 inside) or, under 16
 * channels, the direct kernel. (A 1x1's dW is a GEMM on every path.) */
static int use_direct(const conv2d_dims *d, int backward_data) {
    if (!conv_direct_supported(d)) return 0;
    return !(is_pointwise(d) && nn_use_bf16() && (backward_data ? d->Cin : d->Cout) >= 64);
}

/* 1 when the 3x3 stride-1 conv d runs through Winograd F(2x2, 3x3)
 * (winograd.c) rather than the direct kernel: for the forward
 * (backward_data = 0) or for the backward-data pass (1), which is itself a
 * 3x3 conv of dout, so its "input channels" are Cout.
 *
 * Rule: Winograd whenever the convolved tensor has >= 16 channels. Measured
 * (2 threads, ms, direct -> Winograd; U-Net shapes at 256x256 B=1 and
 * 64x64 B=16): forward 256x256 32->32 3.75 -> 2.79, 128x128 64->64 3.78 ->
 * 2.17, 32x32 128->128 1.08 -> 0.61, 8x8 B=16 128->128 1.32 -> 0.60 (small
 * images with many channels gain too: 8x8 256->128 2.53 -> 1.21), 16x16
 * 64->64 0.96 -> 0.65, 256x256 32->3 1.17 -> 0.93; backward-data 64x64
 * 64->32 11.8 -> 5.1, 8x8 256->128 2.71 -> 1.18. Below 16 input channels
 * the 16 GEMMs are too short to pay for the transforms (the Winograd GEMM
 * does 16 x Cin multiply-adds per tile against its 16-matrix stores):
 * 256x256 6->32 0.80 -> 0.99, 8->32 1.05 -> 1.33, 16->32 2.02 -> 1.94. */
static int use_winograd(const conv2d_dims *d, int backward_data) {
    if (!wino_supported() || d->K != 3 || d->stride != 1) return 0;
    return (backward_data ? d->Cout : d->Cin) >= 16;
}

/* 1 when the weight gradient of the 3x3 stride-1 conv d runs through
 * Winograd F(3x3, 2x2) (wino_dweight3x3) rather than the direct GEMM over
 * positions (conv_direct_dweight3x3). Rule: always (where Winograd is built).
 * Measured (2 threads, ms, direct -> Winograd; 64x64 B=16 and 256x256 B=1
 * U-Net shapes): 64x64 B=16 64->64 22.3 -> 13.8, 32->32 5.8 -> 4.3, 32x32
 * 128->64 10.6 -> 5.8, 8x8 128->128 1.21 -> 0.92, 16x16 64->64 1.19 -> 0.95,
 * 6->32 2.18 -> 1.97, 32->3 2.94 -> 2.34; 256x256 64->64 20.9 -> 13.4,
 * 32->32 5.1 -> 4.1, 32x32 256->128 2.14 -> 1.84. Its main phase runs as two
 * tasks (one per half of the 16 matrices), so it uses at most two threads:
 * on machines with more cores the direct kernel may be the better choice. */
static int use_winograd_dweight(const conv2d_dims *d) {
    if (!wino_supported() || d->K != 3 || d->stride != 1) return 0;
    return 1;
}

/* Direct path: packed weights, padded input planes, 1x1 tail buffers. */
static size_t direct_forward_scratch(const conv2d_dims *d) {
    return conv_direct_pack_floats(d->Cout, d->Cin, d->K) + conv_direct_pad_floats(d->B, d->Cin, d->H, d->W, d->K) +
        conv_direct_tail_floats(d->Cin);
}

/* Direct backward, two phases over the same scratch:
 *  - dinp: Winograd's scratch, or packed flipped weights + padded dout (B
 *    planes) + tails for the direct kernel;
 *  - 3x3 dW: Winograd's scratch, or the direct dW kernel's (both start with
 *    double sums, so they sit at the start, 8-byte aligned) + padded input
 *    (B planes). */
static size_t direct_backward_scratch(const conv2d_dims *d) {
    size_t dx = use_winograd(d, 1) ? wino_scratch_floats(d->Cout, d->Cin)
                                   : conv_direct_pack_floats(d->Cin, d->Cout, d->K) +
            conv_direct_pad_floats(d->B, d->Cout, d->H, d->W, d->K) + conv_direct_tail_floats(d->Cout);
    size_t dw = 0;
    if (use_winograd_dweight(d))
        dw = wino_dweight_scratch_floats(d->B, d->Cin, d->Cout, d->H, d->W);
    else if (d->K == 3)
        dw = conv_direct_dweight_floats(d->B, d->Cin, d->Cout, d->H, d->W) +
            conv_direct_pad_floats(d->B, d->Cin, d->H, d->W, d->K);
    return dx > dw ? dx : dw;
}

size_t conv2d_forward_scratch(const conv2d_dims *d) {
    if (use_winograd(d, 0)) return wino_scratch_floats(d->Cin, d->Cout);
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
static void im2col_chunk(float *col, const float *inp, const conv2d_dims *d, int Wo, int p0, int p1, int r0, int r1) {
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
            if (++ox == Wo) {
                ox = 0;
                oy++;
            }
        }
    }
}

void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, const conv2d_dims *d,
                    float *scratch) {
    const int Ho = conv2d_out_h(d), Wo = conv2d_out_w(d);
    const int P = Ho * Wo;              // output positions per sample
    const int R = d->Cin * d->K * d->K; // im2col rows
    const int nchunk = (P + CONV_CHUNK - 1) / CONV_CHUNK;
    const int ntask = d->B * nchunk;
    if (use_winograd(d, 0)) {
        wino_conv3x3(out, 0, inp, weight, 0, bias, d->B, d->Cin, d->Cout, d->H, d->W, scratch);
        return;
    }
    if (use_direct(d, 0)) {
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
        float *y = out + (size_t)b * d->Cout * P + p0;           // [Cout, P] at column p0
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
        nn_gemm(0, 0, d->Cout, n, R, 1.0f, weight, R, B, ldb, 1.0f, y, P);
    }
}

static void conv2d_backward_direct(float *dinp, int add, float *dweight, const float *dout, const float *inp,
                                   const float *weight, const conv2d_dims *d, float *scratch);
static void conv2d_bias_backward(float *dbias, const float *dout, int B, int Cout, int P);

/* The backward of both entry points: dinp += (add) or = (!add) the input
 * gradient; dweight, dbias always +=. */
static void conv2d_backward_add(float *dinp, int add, float *dweight, float *dbias, const float *dout, const float *inp,
                                const float *weight, const conv2d_dims *d, float *scratch) {
    if (use_direct(d, 1) && (d->K == 3 || dinp)) {
        if (dbias) conv2d_bias_backward(dbias, dout, d->B, d->Cout, d->H * d->W);
        conv2d_backward_direct(dinp, add, dweight, dout, inp, weight, d, scratch);
        if (d->K == 3 || !dweight) return;
        /* a 1x1 dW is a plain GEMM on the raw input: the im2col path below */
        dinp = NULL;
        dbias = NULL;
    } else if (dbias && conv_direct_supported(d)) {
        /* a 1x1 on the bf16 GEMM (use_direct): dbias is summed as the direct
         * path sums it, so it keeps fp32's bits on both paths */
        conv2d_bias_backward(dbias, dout, d->B, d->Cout, d->H * d->W);
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
            const float *x = inp + (size_t)b * d->Cin * H * W; // [Cin, H, W]
            const float *g = dout + (size_t)b * d->Cout * P;   // [Cout, P]
            const float *col = pw ? x : scratch;               // [R, P]
            if (dweight) {
                if (!pw) {
#pragma omp for schedule(static)
                    for (int r = 0; r < R; r++) im2col_chunk(scratch + (size_t)r * P, x, d, Wo, 0, P, r, r + 1);
                }
#pragma omp for schedule(static)
                for (int blk = 0; blk < ndw; blk++) { // dW[:, c0:c1] += g @ col[c0:c1, :]^T
                    const int c0 = blk * DW_BLOCK, c1 = c0 + DW_BLOCK < R ? c0 + DW_BLOCK : R;
                    nn_gemm(0, 1, d->Cout, c1 - c0, P, 1.0f, g, P, col + (size_t)c0 * P, P, 1.0f, dweight + c0, R);
                }
            }
            if (dinp) {
                float *dx = dinp + (size_t)b * d->Cin * H * W;
                if (pw) {
                    /* dx [Cin, P] (+)= W^T [Cin, Cout] @ g [Cout, P], split by fixed column chunks */
                    const int nch = (P + CONV_CHUNK - 1) / CONV_CHUNK;
#pragma omp for schedule(static)
                    for (int c = 0; c < nch; c++) {
                        const int p0 = c * CONV_CHUNK, n = p0 + CONV_CHUNK < P ? CONV_CHUNK : P - p0;
                        nn_gemm(1, 0, d->Cin, n, d->Cout, 1.0f, weight, R, g + p0, P, add ? 1.0f : 0.0f, dx + p0, P);
                    }
                } else {
                    const int nch = (P + CONV_CHUNK - 1) / CONV_CHUNK;
#pragma omp for schedule(static)
                    for (int c = 0; c < nch; c++) { // dcol [R, P] = W^T @ g (overwrites col)
                        const int p0 = c * CONV_CHUNK, n = p0 + CONV_CHUNK < P ? CONV_CHUNK : P - p0;
                        nn_gemm(1, 0, R, n, d->Cout, 1.0f, weight, R, g + p0, P, 0.0f, scratch + p0, P);
                    }
#pragma omp for schedule(static)
                    for (int ci = 0; ci < d->Cin; ci++) { // col2im: channel ci only
                        float *dst = dx + (size_t)ci * H * W;
                        if (!add) memset(dst, 0, sizeof(float) * H * W);
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

void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, const conv2d_dims *d, float *scratch) {
    conv2d_backward_add(dinp, 1, dweight, dbias, dout, inp, weight, d, scratch);
}

void conv2d_backward_into(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, const conv2d_dims *d, float *scratch) {
    conv2d_backward_add(dinp, 0, dweight, dbias, dout, inp, weight, d, scratch);
}

static void conv2d_bias_backward(float *dbias, const float *dout, int B, int Cout, int P) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int co = 0; co < Cout; co++) { // db[co] += sum_b sum_p dout[b, co, p], in a fixed order
        double acc[16] = {0};           /* acc[j] sums positions p = j (mod 16): vectorizes, order still fixed */
        for (int b = 0; b < B; b++) {
            const float *g = dout + ((size_t)b * Cout + co) * P;
            int p = 0;
            for (; p + 16 <= P; p += 16)
                for (int j = 0; j < 16; j++) acc[j] += g[p + j];
            for (; p < P; p++) acc[p & 15] += g[p];
        }
        double sum = 0.0;
        for (int j = 0; j < 16; j++) sum += acc[j];
        dbias[co] += (float)sum;
    }
}

/* 3x3 stride 1 (and 1x1 dinp) through the direct kernel:
 *  - dinp (+)= conv(dout, transposed flipped W): Winograd where use_winograd
 *    says so, else the direct kernel on zero-framed dout planes;
 *  - dW[co][ci][t] += sum over positions of dout[co] * in_pad[ci] shifted by
 *    tap t: Winograd where use_winograd_dweight says so, else
 *    conv_direct_dweight3x3. */
static void conv2d_backward_direct(float *dinp, int add, float *dweight, const float *dout, const float *inp,
                                   const float *weight, const conv2d_dims *d, float *scratch) {
    const int K = d->K, T = K * K, H = d->H, W = d->W, Cin = d->Cin, Cout = d->Cout;
    if (dinp && use_winograd(d, 1)) {
        wino_conv3x3(dinp, add, dout, weight, 1, NULL, d->B, Cout, Cin, H, W, scratch);
    } else if (dinp) {
        float *wpk = scratch;
        float *dpad = wpk + conv_direct_pack_floats(Cin, Cout, K);
        float *tail = dpad + conv_direct_pad_floats(d->B, Cout, H, W, K);
        if (K == 3) conv_direct_pad(dpad, dout, d->B, Cout, H, W);
        conv_direct_pack(wpk, weight, Cin, Cout, T, 1);
        conv_direct_run(dinp, add, K == 3 ? dpad : dout, wpk, NULL, d->B, Cout, Cin, H, W, K, tail);
    }
    if (!dweight || K != 3) return;
    if (use_winograd_dweight(d)) {
        wino_dweight3x3(dweight, dout, inp, d->B, Cin, Cout, H, W, scratch);
        return;
    }
    float *xpad = scratch + conv_direct_dweight_floats(d->B, Cin, Cout, H, W);
    conv_direct_pad(xpad, inp, d->B, Cin, H, W);
    conv_direct_dweight3x3(dweight, dout, xpad, d->B, Cin, Cout, H, W, scratch);
}
