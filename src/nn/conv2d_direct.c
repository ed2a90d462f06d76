/*
 * conv2d_direct.c - AVX-512 direct convolution for the U-Net's hot shapes:
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
 * The micro-kernel keeps an 8 (output channels) x 48 (positions) tile in 24
 * zmm accumulators; weights are packed [co block][ci][tap][8] so each FMA
 * takes a broadcast from contiguous memory. Work is split into (sample,
 * position tile) tasks on fixed boundaries, and each output is summed in the
 * same order whatever the thread count, so results are bit-identical for any
 * number of threads. Without AVX-512 at compile time this file compiles to
 * "unsupported" and conv2d.c keeps its im2col + sgemm path.
 */
#include "nn/conv2d_direct.h"

#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#include <omp.h>

#define MR 8       /* output channels per tile */
#define NV 3       /* zmm vectors per row of the tile */
#define NR (16 * NV) /* positions per tile */

int conv_direct_supported(const conv2d_dims *d) {
    return d->stride == 1 && (d->K == 3 || d->K == 1);
}

/* Geometry of the (padded) flat input planes. */
typedef struct {
    int Wp;      /* row length of the flat plane */
    size_t PS;   /* floats per plane, including read slack */
    int nflat;   /* flat positions to compute: H * Wp */
    int T;       /* taps */
    int off[9];
} flat_geom;

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

/* in_pad[b][c] = in[b][c] framed by zeros (K = 3 only). */
static void pad_input(float *pad, const float *in, int B, int C, int H, int W, const flat_geom *g);
void conv_direct_pad(float *pad, const float *in, int B, int C, int H, int W) {
    const flat_geom g = geom(3, H, W);
    pad_input(pad, in, B, C, H, W, &g);
}
size_t conv_direct_plane(int H, int W) { return geom(3, H, W).PS; }

static void pad_input(float *pad, const float *in, int B, int C, int H, int W, const flat_geom *g) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int bc = 0; bc < B * C; bc++) {
        float *dst = pad + (size_t)bc * g->PS;
        const float *src = in + (size_t)bc * H * W;
        memset(dst, 0, (size_t)g->Wp * sizeof(float));                  // top border row
        for (int y = 0; y < H; y++) {
            float *row = dst + (size_t)(y + 1) * g->Wp;
            row[0] = 0.0f;
            memcpy(row + 1, src + (size_t)y * W, (size_t)W * sizeof(float));
            row[W + 1] = 0.0f;
        }
        memset(dst + (size_t)(H + 1) * g->Wp, 0, (g->PS - (size_t)(H + 1) * g->Wp) * sizeof(float)); // bottom + slack
    }
}

#define ACC_DECL(m) __m512 a##m##0 = _mm512_setzero_ps(), a##m##1 = _mm512_setzero_ps(), a##m##2 = _mm512_setzero_ps()
#define ACC_FMA(m)                                                   \
    do {                                                             \
        const __m512 wb = _mm512_set1_ps(wv[m]);                     \
        a##m##0 = _mm512_fmadd_ps(wb, x0, a##m##0);                  \
        a##m##1 = _mm512_fmadd_ps(wb, x1, a##m##1);                  \
        a##m##2 = _mm512_fmadd_ps(wb, x2, a##m##2);                  \
    } while (0)
#define ACC_STORE(m)                                                 \
    do {                                                             \
        _mm512_storeu_ps(tile + (m) * NR, a##m##0);                  \
        _mm512_storeu_ps(tile + (m) * NR + 16, a##m##1);             \
        _mm512_storeu_ps(tile + (m) * NR + 32, a##m##2);             \
    } while (0)

/* tile[m][i] = sum_ci sum_t w[ci][t][m] * in[ci * PS + off[t] + i], i < NR.
 * in points at the tile's first flat position of channel 0. */
static void kernel_8x48(float *tile, const float *in, size_t PS, const int *off, int T, const float *w, int Cin) {
    ACC_DECL(0); ACC_DECL(1); ACC_DECL(2); ACC_DECL(3);
    ACC_DECL(4); ACC_DECL(5); ACC_DECL(6); ACC_DECL(7);
    for (int ci = 0; ci < Cin; ci++) {
        const float *x = in + (size_t)ci * PS;
        for (int t = 0; t < T; t++) {
            const float *xp = x + off[t];
            const __m512 x0 = _mm512_loadu_ps(xp), x1 = _mm512_loadu_ps(xp + 16), x2 = _mm512_loadu_ps(xp + 32);
            const float *wv = w + ((size_t)ci * T + t) * MR;
            ACC_FMA(0); ACC_FMA(1); ACC_FMA(2); ACC_FMA(3);
            ACC_FMA(4); ACC_FMA(5); ACC_FMA(6); ACC_FMA(7);
        }
    }
    ACC_STORE(0); ACC_STORE(1); ACC_STORE(2); ACC_STORE(3);
    ACC_STORE(4); ACC_STORE(5); ACC_STORE(6); ACC_STORE(7);
}

/* The 1x1 planes have no slack: copy a short last tile into a zeroed buffer
 * so the kernel never reads past the input. */
static void run_tiles(float *out, int accumulate, const float *in, const float *wpk, const float *bias, int B, int Cin,
                      int Cout, int H, int W, const flat_geom *g, float *tail_scratch);
void conv_direct_run(float *out, int accumulate, const float *in, const float *wpk, const float *bias, int B, int Cin,
                     int Cout, int H, int W, int K, float *tail_scratch) {
    const flat_geom g = geom(K, H, W);
    run_tiles(out, accumulate, in, wpk, bias, B, Cin, Cout, H, W, &g, tail_scratch);
}
size_t conv_direct_tail_floats(int Cin) { return (size_t)nn_threads() * Cin * NR; }

static void run_tiles(float *out, int accumulate, const float *in, const float *wpk, const float *bias, int B, int Cin,
                      int Cout, int H, int W, const flat_geom *g, float *tail_scratch) {
    const int ntile = (g->nflat + NR - 1) / NR, nb = co_blocks(Cout);
    const int ntask = B * ntile;
#pragma omp parallel num_threads(nn_threads())
    {
        float tile[MR * NR] __attribute__((aligned(64)));
        float *tail = tail_scratch + (size_t)omp_get_thread_num() * Cin * NR;
#pragma omp for schedule(static)
        for (int task = 0; task < ntask; task++) {
            const int b = task / ntile, p0 = (task % ntile) * NR;
            const int n = g->nflat - p0 < NR ? g->nflat - p0 : NR;
            const float *src = in + (size_t)b * Cin * g->PS + p0;
            size_t ps = g->PS;
            if (g->T == 1 && n < NR) { /* 1x1 tail: no slack after the plane */
                for (int ci = 0; ci < Cin; ci++) {
                    memcpy(tail + (size_t)ci * NR, src + (size_t)ci * g->PS, (size_t)n * sizeof(float));
                    memset(tail + (size_t)ci * NR + n, 0, (size_t)(NR - n) * sizeof(float));
                }
                src = tail;
                ps = NR;
            }
            float *dst = out + (size_t)b * Cout * H * W;
            const int y0 = p0 / g->Wp, x0 = p0 % g->Wp;
            for (int jb = 0; jb < nb; jb++) {
                kernel_8x48(tile, src, ps, g->off, g->T, wpk + (size_t)jb * Cin * g->T * MR, Cin);
                const int mmax = Cout - jb * MR < MR ? Cout - jb * MR : MR;
                for (int m = 0; m < mmax; m++) {
                    const int co = jb * MR + m;
                    const float bv = bias ? bias[co] : 0.0f;
                    float *o = dst + (size_t)co * H * W;
                    const float *tr = tile + m * NR;
                    int y = y0, x = x0;
                    for (int i = 0; i < n; i++) { /* drop the padding columns x >= W */
                        if (x < W) {
                            if (accumulate) o[(size_t)y * W + x] += tr[i];
                            else o[(size_t)y * W + x] = tr[i] + bv;
                        }
                        if (++x == g->Wp) { x = 0; y++; }
                    }
                }
            }
        }
    }
}


/* dW for one (8 output channels, input channel ci, tap row ky) block:
 * dw[m][kx] = sum_{p < n} g[m * gs + p] * x[p + ky * Wp + kx], kx = 0..2.
 * The sum runs in 16 lanes over p in a fixed order, then the lanes are
 * added in a fixed order, so it does not depend on threads. mmax < 8 rows of
 * g are valid (the others are skipped by pointing them at row 0 and dropping
 * their sums). */
static void dw_kernel_8x3(double *dw, const float *g, size_t gs, int mmax, const float *x, int n) {
    __m512 a[8][3];
    for (int m = 0; m < 8; m++) a[m][0] = a[m][1] = a[m][2] = _mm512_setzero_ps();
    const float *gr[8];
    for (int m = 0; m < 8; m++) gr[m] = g + (size_t)(m < mmax ? m : 0) * gs;
    int p = 0;
    for (; p + 16 <= n; p += 16) {
        const __m512 x0 = _mm512_loadu_ps(x + p), x1 = _mm512_loadu_ps(x + p + 1), x2 = _mm512_loadu_ps(x + p + 2);
        for (int m = 0; m < 8; m++) {
            const __m512 gv = _mm512_loadu_ps(gr[m] + p);
            a[m][0] = _mm512_fmadd_ps(gv, x0, a[m][0]);
            a[m][1] = _mm512_fmadd_ps(gv, x1, a[m][1]);
            a[m][2] = _mm512_fmadd_ps(gv, x2, a[m][2]);
        }
    }
    if (p < n) { /* masked tail */
        const __mmask16 k = (__mmask16)((1u << (n - p)) - 1);
        const __m512 x0 = _mm512_maskz_loadu_ps(k, x + p), x1 = _mm512_maskz_loadu_ps(k, x + p + 1),
                     x2 = _mm512_maskz_loadu_ps(k, x + p + 2);
        for (int m = 0; m < 8; m++) {
            const __m512 gv = _mm512_maskz_loadu_ps(k, gr[m] + p);
            a[m][0] = _mm512_fmadd_ps(gv, x0, a[m][0]);
            a[m][1] = _mm512_fmadd_ps(gv, x1, a[m][1]);
            a[m][2] = _mm512_fmadd_ps(gv, x2, a[m][2]);
        }
    }
    for (int m = 0; m < mmax; m++)
        for (int kx = 0; kx < 3; kx++) {
            float lanes[16];
            _mm512_storeu_ps(lanes, a[m][kx]);
            double s = 0;
            for (int l = 0; l < 16; l++) s += lanes[l];
            dw[m * 3 + kx] = s;
        }
}

void conv_direct_dweight3x3(float *dweight, const float *dpad, const float *xpad, int B, int Cin, int Cout, int H,
                            int W) {
    const size_t PS = geom(3, H, W).PS;
    const int Wp = W + 2, nflat = H * Wp, nb = co_blocks(Cout);
    const int ntask = nb * Cin * 3; /* (co block, ci, ky): each owns 8 x 3 dW entries */
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int task = 0; task < ntask; task++) {
        const int jb = task / (Cin * 3), ci = (task / 3) % Cin, ky = task % 3;
        const int mmax = Cout - jb * MR < MR ? Cout - jb * MR : MR;
        double sum[MR * 3] = {0}, part[MR * 3];
        for (int b = 0; b < B; b++) { /* samples in order 0..B-1 */
            const float *g = dpad + ((size_t)b * Cout + jb * MR) * PS + Wp + 1; // dout_flat rows
            const float *x = xpad + ((size_t)b * Cin + ci) * PS + (size_t)ky * Wp;
            dw_kernel_8x3(part, g, PS, mmax, x, nflat);
            for (int i = 0; i < mmax * 3; i++) sum[i] += part[i];
        }
        for (int m = 0; m < mmax; m++)
            for (int kx = 0; kx < 3; kx++)
                dweight[((size_t)(jb * MR + m) * Cin + ci) * 9 + ky * 3 + kx] += (float)sum[m * 3 + kx];
    }
}

#else /* no AVX-512: conv2d.c uses im2col + sgemm for everything */

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
void conv_direct_dweight3x3(float *dweight, const float *dpad, const float *xpad, int B, int Cin, int Cout, int H,
                            int W) {
    (void)dweight, (void)dpad, (void)xpad, (void)B, (void)Cin, (void)Cout, (void)H, (void)W;
}
void conv_direct_run(float *out, int accumulate, const float *in, const float *wpk, const float *bias, int B, int Cin,
                     int Cout, int H, int W, int K, float *tail_scratch) {
    (void)out, (void)accumulate, (void)in, (void)wpk, (void)bias, (void)B, (void)Cin, (void)Cout, (void)H, (void)W,
        (void)K, (void)tail_scratch;
}
#endif
