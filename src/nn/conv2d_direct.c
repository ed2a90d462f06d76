/*
 * conv2d_direct.c - AVX-512 / AVX2 direct convolution for the U-Net's hot shapes:
 * 3x3 stride 1 (padding 1) and 1x1 stride 1.
 *
 * The trick: copy each input plane into a zero-bordered plane of width
 * Wp = W + 2 and read it as one flat row. Output (y, x) sits at flat index
 * p = y * Wp + x, and tap (ky, kx) of it reads flat index p + ky * Wp + kx, so
 * the whole convolution is
 *     out[co][p] = bias[co] + sum_ci sum_t w[co][ci][t] * in_pad[ci][p + off[t]]
 * over contiguous p: an implicit GEMM with no im2col. Flat positions with
 * x >= W are computed and thrown away (2 of every Wp columns). A 1x1 conv is
 * the same with one tap at offset 0 on the unpadded plane.
 *
 * Work is split into (sample, position tile) tasks on fixed boundaries, and
 * each output is summed in the same order whatever the thread count, so
 * results are bit-identical for any number of threads. This file holds what
 * the instruction sets share (geometry, packing, padding, the weight
 * gradient's driver); the micro-kernels and the forward driver, which is
 * tiled differently for AVX-512 (conv2d_direct_avx512.h) and AVX2 + FMA
 * without AVX-512, e.g. AMD Zen 3 (conv2d_direct_avx2.h), are in one header
 * each. With neither, this file compiles to "unsupported" and conv2d.c keeps
 * its im2col + sgemm path.
 */
#include "nn/conv2d_direct.h"

#include <string.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <omp.h>

/* Geometry of the (padded) flat input planes. */
typedef struct {
    int Wp;    /* row length of the flat plane */
    size_t PS; /* floats per plane, including read slack */
    int nflat; /* flat positions to compute: H * Wp */
    int T;     /* taps */
    int off[9];
} flat_geom;

static flat_geom geom(int K, int H, int W);
static int co_blocks(int Cout);
static int dw_ldg(int Cout);
static int dw_ntile(int Cout);
static int dw_co0(int jt, int Cout);
static inline void store_tile_row(float *o, const float *tr, int n, int y, int x, int W, int Wp, int accumulate,
                                  float bv);

#if defined(__AVX512F__)
#include "nn/conv2d_direct_avx512.h"
#else
#include "nn/conv2d_direct_avx2.h"
#endif

int conv_direct_supported(const conv2d_dims *d) { return d->stride == 1 && (d->K == 3 || d->K == 1); }

/* o[y * W + x] = tr[i] + bv (or += tr[i] when accumulate) for the n flat
 * positions i from (y, x) on, dropping the padding columns x >= W: one
 * store_run per run of valid columns. */
static inline void store_tile_row(float *o, const float *tr, int n, int y, int x, int W, int Wp, int accumulate,
                                  float bv) {
    int i = 0;
    while (i < n) {
        if (x >= W) { /* padding columns: skip to the next row */
            i += Wp - x;
            x = 0;
            y++;
            continue;
        }
        const int len = W - x < n - i ? W - x : n - i;
        store_run(o + (size_t)y * W + x, tr + i, len, accumulate, bv);
        i += len;
        x += len;
    }
}

static flat_geom geom(int K, int H, int W) {
    flat_geom g;
    if (K == 3) {
        g.Wp = W + 2;
        /* rows 0..H+1 hold the padded image; one more row + NR of slack let
         * the last tile read past the end without a bounds check */
        g.PS = (size_t)(H + 3) * g.Wp + NR;
        g.nflat = H * g.Wp;
        g.T = 9;
        for (int t = 0; t < 9; t++) g.off[t] = (t / 3) * g.Wp + (t % 3);
    } else {
        g.Wp = W;
        g.PS = (size_t)H * W;
        g.nflat = H * W;
        g.T = 1;
        g.off[0] = 0;
    }
    return g;
}

static int co_blocks(int Cout) { return (Cout + MR - 1) / MR; }

size_t conv_direct_pack_floats(int Cout, int Cin, int K) { return (size_t)co_blocks(Cout) * Cin * K * K * MR; }

size_t conv_direct_pad_floats(int B, int C, int H, int W, int K) {
    if (K == 1) return 0;
    return (size_t)B * C * geom(K, H, W).PS;
}

/* wpk[jb][ci][t][m] = w[jb*MR + m][ci][t] (zero for m past Cout). If flip,
 * the weights of the transposed, flipped kernel for the backward pass:
 * w'[o][i][t] = w[i][o][8 - t] with o over Cin_orig and i over Cout_orig. */
void conv_direct_pack(float *wpk, const float *w, int Cout, int Cin, int T, int flip) {
    const int nb = co_blocks(Cout);
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int jb = 0; jb < nb; jb++)
        for (int ci = 0; ci < Cin; ci++)
            for (int t = 0; t < T; t++)
                for (int m = 0; m < MR; m++) {
                    const int co = jb * MR + m;
                    float v = 0.0f;
                    if (co < Cout)
                        v = flip ? w[((size_t)ci * Cout + co) * T + (T - 1 - t)] : w[((size_t)co * Cin + ci) * T + t];
                    wpk[(((size_t)jb * Cin + ci) * T + t) * MR + m] = v;
                }
}

size_t conv_direct_plane(int H, int W) { return geom(3, H, W).PS; }

/* in_pad[b][c] = in[b][c] framed by zeros (K = 3 only). */
void conv_direct_pad(float *pad, const float *in, int B, int C, int H, int W) {
    const flat_geom g = geom(3, H, W);
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int bc = 0; bc < B * C; bc++) {
        float *dst = pad + (size_t)bc * g.PS;
        const float *src = in + (size_t)bc * H * W;
        memset(dst, 0, (size_t)g.Wp * sizeof(float)); // top border row
        for (int y = 0; y < H; y++) {
            float *row = dst + (size_t)(y + 1) * g.Wp;
            row[0] = 0.0f;
            memcpy(row + 1, src + (size_t)y * W, (size_t)W * sizeof(float));
            row[W + 1] = 0.0f;
        }
        memset(dst + (size_t)(H + 1) * g.Wp, 0, (g.PS - (size_t)(H + 1) * g.Wp) * sizeof(float)); // bottom + slack
    }
}

/* ---- weight gradient, 3x3 stride 1:
 *     dW[co][ci][t] = sum_b sum_(y,x) dout[b][co][y][x] * in_pad[b][ci][y * Wp + x + off[t]]
 * as a GEMM whose reduction runs over every output position of every sample.
 * dout is first transposed to GT (output channels contiguous, zero-padded to
 * a multiple of DW_LANES), so the micro-kernel keeps a tile of 9 taps x up to
 * DW_CT output channels for one input channel. Positions go in chunks of
 * whole rows (DW_CHUNK positions): a task (output-channel tile, block of
 * DW_CIB input channels) runs the chunks in order, reusing each chunk of GT
 * from L1/L2 for its input channels, and adds each chunk's float sums into
 * double accumulators. Every dW entry is summed over positions in the same
 * order whatever the thread count. */
#define DW_CIB   8   /* input channels per task */
#define DW_CHUNK 192 /* positions per chunk (whole rows, at least one) */

static int dw_ldg(int Cout) { return (Cout + DW_LANES - 1) & ~(DW_LANES - 1); }
static int dw_ntile(int Cout) { return (dw_ldg(Cout) + DW_CT - 1) / DW_CT; }
/* first output channel of tile jt: the tiles split ldg evenly in DW_LANES */
static int dw_co0(int jt, int Cout) { return DW_LANES * ((jt * (dw_ldg(Cout) / DW_LANES)) / dw_ntile(Cout)); }

size_t conv_direct_dweight_floats(int B, int Cin, int Cout, int H, int W) {
    return 2 * (size_t)dw_ntile(Cout) * Cin * 9 * DW_CT + (size_t)B * H * W * dw_ldg(Cout);
}

void conv_direct_dweight3x3(float *dweight, const float *dout, const float *xpad, int B, int Cin, int Cout, int H,
                            int W, float *scratch) {
    const size_t PS = geom(3, H, W).PS, HW = (size_t)H * W;
    const int Wp = W + 2, ntile = dw_ntile(Cout), ncb = (Cin + DW_CIB - 1) / DW_CIB;
    const int rpc = W < DW_CHUNK ? DW_CHUNK / W : 1, nrows = B * H; /* rows per chunk */
    double *C = (double *)(void *)scratch;                          /* [ntile][Cin][9][DW_CT] */
    float *GT = scratch + 2 * (size_t)ntile * Cin * 9 * DW_CT;
#pragma omp parallel num_threads(nn_threads())
    {
        dw_transpose(GT, dout, B, Cout, HW); /* omp for: ends with a barrier */
#pragma omp for schedule(static)
        for (int task = 0; task < ntile * ncb; task++) {
            const int jt = task / ncb, ci0 = (task % ncb) * DW_CIB;
            const int ci1 = ci0 + DW_CIB < Cin ? ci0 + DW_CIB : Cin;
            double *cb = C + ((size_t)jt * Cin + ci0) * 9 * DW_CT;
            memset(cb, 0, (size_t)(ci1 - ci0) * 9 * DW_CT * sizeof(double));
            for (int r0 = 0; r0 < nrows; r0 += rpc) { /* chunks in order */
                const int r1 = r0 + rpc < nrows ? r0 + rpc : nrows;
                for (int ci = ci0; ci < ci1; ci++)
                    dw_tile_run(cb + (size_t)(ci - ci0) * 9 * DW_CT, GT, jt, B, Cout, HW, xpad + (size_t)ci * PS,
                                (size_t)Cin * PS, Wp, H, W, r0, r1);
            }
        }
#pragma omp for schedule(static)
        for (int co = 0; co < Cout; co++) {
            int jt = 0;
            while (dw_co0(jt + 1, Cout) <= co) jt++;
            const int m = co - dw_co0(jt, Cout);
            for (int ci = 0; ci < Cin; ci++)
                for (int t = 0; t < 9; t++)
                    dweight[((size_t)co * Cin + ci) * 9 + t] += (float)C[(((size_t)jt * Cin + ci) * 9 + t) * DW_CT + m];
        }
    }
}

#else /* neither AVX-512 nor AVX2+FMA: conv2d.c uses im2col + sgemm for everything */

int conv_direct_supported(const conv2d_dims *d) {
    (void)d;
    return 0;
}
size_t conv_direct_pack_floats(int Cout, int Cin, int K) { return 0 * (size_t)(Cout + Cin + K); }
size_t conv_direct_pad_floats(int B, int C, int H, int W, int K) { return 0 * (size_t)(B + C + H + W + K); }
size_t conv_direct_plane(int H, int W) { return 0 * (size_t)(H + W); }
size_t conv_direct_tail_floats(int Cin) { return 0 * (size_t)Cin; }
void conv_direct_pack(float *wpk, const float *w, int Cout, int Cin, int T, int flip) {
    (void)wpk, (void)w, (void)Cout, (void)Cin, (void)T, (void)flip;
}
void conv_direct_pad(float *pad, const float *in, int B, int C, int H, int W) {
    (void)pad, (void)in, (void)B, (void)C, (void)H, (void)W;
}
size_t conv_direct_dweight_floats(int B, int Cin, int Cout, int H, int W) {
    return 0 * (size_t)(B + Cin + Cout + H + W);
}
void conv_direct_dweight3x3(float *dweight, const float *dout, const float *xpad, int B, int Cin, int Cout, int H,
                            int W, float *scratch) {
    (void)dweight, (void)dout, (void)xpad, (void)B, (void)Cin, (void)Cout, (void)H, (void)W, (void)scratch;
}
void conv_direct_run(float *out, int accumulate, const float *in, const float *wpk, const float *bias, int B, int Cin,
                     int Cout, int H, int W, int K, float *tail_scratch) {
    (void)out, (void)accumulate, (void)in, (void)wpk, (void)bias, (void)B, (void)Cin, (void)Cout, (void)H, (void)W,
        (void)K, (void)tail_scratch;
}
#endif
