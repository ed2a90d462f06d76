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
 * number of threads. With AVX2 + FMA but no AVX-512 (e.g. AMD Zen 3) the
 * second half of the file is the same method re-tiled for 16 ymm registers;
 * with neither, this file compiles to "unsupported" and conv2d.c keeps its
 * im2col + sgemm path.
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

/* o[y * W + x] = tr[i] + bv (or += tr[i] when accumulate) for the n flat
 * positions i from (y, x) on, dropping the padding columns x >= W: one
 * masked vector copy per run of valid columns. */
static inline void store_tile_row(float *o, const float *tr, int n, int y, int x, int W, int Wp, int accumulate,
                                  float bv) {
    const __m512 b = _mm512_set1_ps(bv);
    int i = 0;
    while (i < n) {
        if (x >= W) { /* padding columns: skip to the next row */
            i += Wp - x;
            x = 0;
            y++;
            continue;
        }
        const int len = W - x < n - i ? W - x : n - i;
        float *dst = o + (size_t)y * W + x;
        for (int k = 0; k < len; k += 16) {
            const __mmask16 mk = len - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (len - k)) - 1);
            const __m512 v = _mm512_maskz_loadu_ps(mk, tr + i + k);
            _mm512_mask_storeu_ps(dst + k, mk,
                                  accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(mk, dst + k), v) : _mm512_add_ps(v, b));
        }
        i += len;
        x += len;
    }
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
                    store_tile_row(o, tile + m * NR, n, y0, x0, W, g->Wp, accumulate, bv);
                }
            }
        }
    }
}


/* ---- weight gradient, 3x3 stride 1:
 *     dW[co][ci][t] = sum_b sum_(y,x) dout[b][co][y][x] * in_pad[b][ci][y * Wp + x + off[t]]
 * as a GEMM whose reduction runs over every output position of every sample.
 * dout is first transposed to GT [B*H*W][ldg] (output channels contiguous,
 * zero-padded to a multiple of 16), so the micro-kernel keeps a tile of
 * 9 taps x up to 32 output channels (18 zmm) for one input channel: per
 * position it loads 1-2 vectors of GT and broadcasts the 9 input values
 * under the taps. Positions go in chunks of whole rows (DW_CHUNK positions):
 * a task (output-channel tile, block of DW_CIB input channels) runs the
 * chunks in order, reusing each chunk of GT from L1/L2 for its input
 * channels, and adds each chunk's float sums into double accumulators. Every
 * dW entry is summed over positions in the same order whatever the thread
 * count. */
#define DW_CT 32     /* most output channels per tile (2 zmm; with 3 the 27 accumulators spill) */
#define DW_CIB 8     /* input channels per task */
#define DW_CHUNK 192 /* positions per chunk (whole rows, at least one) */

static int dw_ldg(int Cout) { return (Cout + 15) & ~15; }
static int dw_ntile(int Cout) { return (dw_ldg(Cout) + DW_CT - 1) / DW_CT; }
/* first output channel of tile jt: the tiles split ldg evenly in 16s */
static int dw_co0(int jt, int Cout) { return 16 * ((jt * (dw_ldg(Cout) / 16)) / dw_ntile(Cout)); }

size_t conv_direct_dweight_floats(int B, int Cin, int Cout, int H, int W) {
    return 2 * (size_t)dw_ntile(Cout) * Cin * 9 * DW_CT + (size_t)B * H * W * dw_ldg(Cout);
}

#define DWK_DECL(t) __m512 a##t##0 = z, a##t##1 = z
#define DWK_FMA(t, xv)                                            \
    do {                                                          \
        const __m512 xb = _mm512_set1_ps(xv);                     \
        a##t##0 = _mm512_fmadd_ps(xb, g0, a##t##0);               \
        if (DNV > 1) a##t##1 = _mm512_fmadd_ps(xb, g1, a##t##1);   \
    } while (0)
#define DWK_ADD1(t, j)                                                                           \
    do {                                                                                         \
        double *cc = c + (t) * DW_CT + 16 * (j);                                                 \
        _mm512_storeu_pd(cc, _mm512_add_pd(_mm512_loadu_pd(cc), _mm512_cvtps_pd(_mm512_castps512_ps256(a##t##j)))); \
        _mm512_storeu_pd(cc + 8, _mm512_add_pd(_mm512_loadu_pd(cc + 8),                           \
                                               _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a##t##j), 1))))); \
    } while (0)
#define DWK_ADD(t)                      \
    do {                                \
        DWK_ADD1(t, 0);                 \
        if (DNV > 1) DWK_ADD1(t, 1);     \
    } while (0)

/* c[t][co] (double, row stride DW_CT) += sum over rows r in [r0, r1) (row r
 * is output row r % H of sample r / H) and x < W of gt[(r*W + x) * ldg + co] *
 * x_row(r)[x + off[t]], for 16 * DNV output channels. xc: the padded plane of
 * sample 0 for this input channel; bs: floats between samples' planes. */
static inline __attribute__((always_inline)) void dw_tile(double *c, const float *gt, int ldg, const float *xc, size_t bs,
                                                          int Wp, int H, int W, int r0, int r1, const int DNV) {
    const __m512 z = _mm512_setzero_ps();
    DWK_DECL(0); DWK_DECL(1); DWK_DECL(2);
    DWK_DECL(3); DWK_DECL(4); DWK_DECL(5);
    DWK_DECL(6); DWK_DECL(7); DWK_DECL(8);
    for (int r = r0; r < r1; r++) {
        const float *x0 = xc + (size_t)(r / H) * bs + (size_t)(r % H) * Wp, *x1 = x0 + Wp, *x2 = x1 + Wp;
        const float *g = gt + (size_t)r * W * ldg;
        for (int x = 0; x < W; x++, g += ldg) {
            const __m512 g0 = _mm512_loadu_ps(g);
            const __m512 g1 = DNV > 1 ? _mm512_loadu_ps(g + 16) : z;
            DWK_FMA(0, x0[x]); DWK_FMA(1, x0[x + 1]); DWK_FMA(2, x0[x + 2]);
            DWK_FMA(3, x1[x]); DWK_FMA(4, x1[x + 1]); DWK_FMA(5, x1[x + 2]);
            DWK_FMA(6, x2[x]); DWK_FMA(7, x2[x + 1]); DWK_FMA(8, x2[x + 2]);
        }
    }
    DWK_ADD(0); DWK_ADD(1); DWK_ADD(2);
    DWK_ADD(3); DWK_ADD(4); DWK_ADD(5);
    DWK_ADD(6); DWK_ADD(7); DWK_ADD(8);
}
static __attribute__((noinline)) void dw_tile1(double *c, const float *gt, int ldg, const float *xc, size_t bs, int Wp,
                                               int H, int W, int r0, int r1) {
    dw_tile(c, gt, ldg, xc, bs, Wp, H, W, r0, r1, 1);
}
static __attribute__((noinline)) void dw_tile2(double *c, const float *gt, int ldg, const float *xc, size_t bs, int Wp,
                                               int H, int W, int r0, int r1) {
    dw_tile(c, gt, ldg, xc, bs, Wp, H, W, r0, r1, 2);
}

void conv_direct_dweight3x3(float *dweight, const float *dout, const float *xpad, int B, int Cin, int Cout, int H,
                            int W, float *scratch) {
    const size_t PS = geom(3, H, W).PS, HW = (size_t)H * W;
    const int Wp = W + 2, ldg = dw_ldg(Cout), ntile = dw_ntile(Cout), ncb = (Cin + DW_CIB - 1) / DW_CIB;
    const int rpc = W < DW_CHUNK ? DW_CHUNK / W : 1, nrows = B * H; /* rows per chunk */
    double *C = (double *)(void *)scratch; /* [ntile][Cin][9][DW_CT] */
    float *GT = scratch + 2 * (size_t)ntile * Cin * 9 * DW_CT; /* [B*H*W][ldg] */
    const int np16 = (int)((HW + 15) / 16);
#pragma omp parallel num_threads(nn_threads())
    {
        /* GT[b*HW + p][co] = dout[b][co][p], 16 positions x 16 channels per step */
#pragma omp for schedule(static)
        for (int bp = 0; bp < B * np16; bp++) {
            const int b = bp / np16;
            const size_t p0 = (size_t)(bp % np16) * 16;
            const int n = HW - p0 < 16 ? (int)(HW - p0) : 16;
            for (int c0 = 0; c0 < ldg; c0 += 16) {
                const __mmask16 k = c0 + 16 <= Cout ? (__mmask16)0xFFFF
                                  : c0 < Cout ? (__mmask16)((1u << (Cout - c0)) - 1) : (__mmask16)0;
                const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                       _mm512_set1_epi32((int)HW));
                const float *src = dout + ((size_t)b * Cout + c0) * HW + p0;
                float *dst = GT + ((size_t)b * HW + p0) * ldg + c0;
                for (int i = 0; i < n; i++)
                    _mm512_storeu_ps(dst + (size_t)i * ldg,
                                     _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, src + i, 4));
            }
        }
#pragma omp for schedule(static)
        for (int task = 0; task < ntile * ncb; task++) {
            const int jt = task / ncb, ci0 = (task % ncb) * DW_CIB;
            const int ci1 = ci0 + DW_CIB < Cin ? ci0 + DW_CIB : Cin;
            const int co0 = dw_co0(jt, Cout), nv = (dw_co0(jt + 1, Cout) - co0) / 16;
            double *cb = C + ((size_t)jt * Cin + ci0) * 9 * DW_CT;
            memset(cb, 0, (size_t)(ci1 - ci0) * 9 * DW_CT * sizeof(double));
            for (int r0 = 0; r0 < nrows; r0 += rpc) { /* chunks in order */
                const int r1 = r0 + rpc < nrows ? r0 + rpc : nrows;
                for (int ci = ci0; ci < ci1; ci++) {
                    double *c = cb + (size_t)(ci - ci0) * 9 * DW_CT;
                    const float *xc = xpad + (size_t)ci * PS;
                    if (nv == 2) dw_tile2(c, GT + co0, ldg, xc, (size_t)Cin * PS, Wp, H, W, r0, r1);
                    else dw_tile1(c, GT + co0, ldg, xc, (size_t)Cin * PS, Wp, H, W, r0, r1);
                }
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

#elif defined(__AVX2__) && defined(__FMA__)
/*
 * AVX2 + FMA version (e.g. AMD Zen 2/3, Intel Haswell..Alder Lake): the same
 * method and the same API as the AVX-512 code above, re-tiled for 16 ymm
 * registers of 8 floats.
 *
 * Forward micro-kernel: 4 output channels x 24 positions = 12 accumulators,
 * 3 loads of the input row and 1 broadcast register. Per (ci, tap) step that
 * is 12 FMAs against 3 vector loads + 4 broadcast loads; 8 x 8 (8 FMAs per
 * 1 load + 8 broadcasts) or 6 x 16 (12 FMAs per 2 + 6) would be limited by
 * the load ports before the two FMA pipes, so 4 x 24 keeps the FMA units the
 * bottleneck. The pack's MR is 4 accordingly.
 */
#include <immintrin.h>
#include <omp.h>

#define MR 4         /* output channels per tile */
#define NV 3         /* ymm vectors per row of the tile */
#define NR (8 * NV)  /* positions per tile */

int conv_direct_supported(const conv2d_dims *d) {
    return d->stride == 1 && (d->K == 3 || d->K == 1);
}

/* Geometry of the (padded) flat input planes (as in the AVX-512 code, with
 * this NR as slack). */
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

size_t conv_direct_plane(int H, int W) { return geom(3, H, W).PS; }

/* in_pad[b][c] = in[b][c] framed by zeros (K = 3 only). */
void conv_direct_pad(float *pad, const float *in, int B, int C, int H, int W) {
    const flat_geom g = geom(3, H, W);
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int bc = 0; bc < B * C; bc++) {
        float *dst = pad + (size_t)bc * g.PS;
        const float *src = in + (size_t)bc * H * W;
        memset(dst, 0, (size_t)g.Wp * sizeof(float));                  // top border row
        for (int y = 0; y < H; y++) {
            float *row = dst + (size_t)(y + 1) * g.Wp;
            row[0] = 0.0f;
            memcpy(row + 1, src + (size_t)y * W, (size_t)W * sizeof(float));
            row[W + 1] = 0.0f;
        }
        memset(dst + (size_t)(H + 1) * g.Wp, 0, (g.PS - (size_t)(H + 1) * g.Wp) * sizeof(float)); // bottom + slack
    }
}

#define ACC_DECL(m) __m256 a##m##0 = _mm256_setzero_ps(), a##m##1 = _mm256_setzero_ps(), a##m##2 = _mm256_setzero_ps()
#define ACC_FMA(m)                                                   \
    do {                                                             \
        const __m256 wb = _mm256_broadcast_ss(wv + (m));             \
        a##m##0 = _mm256_fmadd_ps(wb, x0, a##m##0);                  \
        a##m##1 = _mm256_fmadd_ps(wb, x1, a##m##1);                  \
        a##m##2 = _mm256_fmadd_ps(wb, x2, a##m##2);                  \
    } while (0)
/* Row m of the tile: straight into the output when the tile's positions are
 * one contiguous run of a single output row (always for 1x1; most tiles of a
 * wide 3x3), else into the tile buffer for store_tile_row to split. Bias is
 * added after the sum, as in the buffered path, so both give the same bits. */
#define ACC_STORE(m)                                                                               \
    do {                                                                                           \
        if (dst) {                                                                                 \
            if ((m) < mmax) {                                                                      \
                float *o = dst + (size_t)(m) * ostride;                                            \
                if (accumulate) {                                                                  \
                    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), a##m##0));               \
                    _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), a##m##1));       \
                    _mm256_storeu_ps(o + 16, _mm256_add_ps(_mm256_loadu_ps(o + 16), a##m##2));     \
                } else {                                                                           \
                    const __m256 bb = _mm256_set1_ps(bias ? bias[m] : 0.0f);                       \
                    _mm256_storeu_ps(o, _mm256_add_ps(a##m##0, bb));                               \
                    _mm256_storeu_ps(o + 8, _mm256_add_ps(a##m##1, bb));                           \
                    _mm256_storeu_ps(o + 16, _mm256_add_ps(a##m##2, bb));                          \
                }                                                                                  \
            }                                                                                      \
        } else {                                                                                   \
            _mm256_storeu_ps(tile + (m) * NR, a##m##0);                                            \
            _mm256_storeu_ps(tile + (m) * NR + 8, a##m##1);                                        \
            _mm256_storeu_ps(tile + (m) * NR + 16, a##m##2);                                       \
        }                                                                                          \
    } while (0)

/* acc[m][i] = sum_ci sum_t w[ci][t][m] * in[ci * PS + off[t] + i], i < NR;
 * in points at the tile's first flat position of channel 0. Then written
 * (see ACC_STORE) to dst rows m (stride ostride, bias = the block's biases)
 * when dst is set, else to tile. T is a compile-time constant at each call
 * (1 or 9) so the tap loop unrolls with its offsets in registers. */
static inline __attribute__((always_inline)) void kernel_4x24(float *tile, float *dst, size_t ostride, int mmax,
                                                              int accumulate, const float *bias, const float *in,
                                                              size_t PS, const int *off, const int T, const float *w,
                                                              int Cin) {
    ACC_DECL(0); ACC_DECL(1); ACC_DECL(2); ACC_DECL(3);
    for (int ci = 0; ci < Cin; ci++) {
        const float *x = in + (size_t)ci * PS;
        const float *wc = w + (size_t)ci * T * MR;
        for (int t = 0; t < T; t++) {
            const float *xp = x + off[t];
            const __m256 x0 = _mm256_loadu_ps(xp), x1 = _mm256_loadu_ps(xp + 8), x2 = _mm256_loadu_ps(xp + 16);
            const float *wv = wc + t * MR;
            ACC_FMA(0); ACC_FMA(1); ACC_FMA(2); ACC_FMA(3);
        }
    }
    ACC_STORE(0); ACC_STORE(1); ACC_STORE(2); ACC_STORE(3);
}
static __attribute__((noinline)) void kernel_t1(float *tile, float *dst, size_t ostride, int mmax, int accumulate,
                                                const float *bias, const float *in, size_t PS, const int *off,
                                                const float *w, int Cin) {
    kernel_4x24(tile, dst, ostride, mmax, accumulate, bias, in, PS, off, 1, w, Cin);
}
static __attribute__((noinline)) void kernel_t9(float *tile, float *dst, size_t ostride, int mmax, int accumulate,
                                                const float *bias, const float *in, size_t PS, const int *off,
                                                const float *w, int Cin) {
    kernel_4x24(tile, dst, ostride, mmax, accumulate, bias, in, PS, off, 9, w, Cin);
}

/* o[y * W + x] = tr[i] + bv (or += tr[i] when accumulate) for the n flat
 * positions i from (y, x) on, dropping the padding columns x >= W. */
static inline void store_tile_row(float *o, const float *tr, int n, int y, int x, int W, int Wp, int accumulate,
                                  float bv) {
    const __m256 b = _mm256_set1_ps(bv);
    int i = 0;
    while (i < n) {
        if (x >= W) { /* padding columns: skip to the next row */
            i += Wp - x;
            x = 0;
            y++;
            continue;
        }
        const int len = W - x < n - i ? W - x : n - i;
        float *dst = o + (size_t)y * W + x;
        const float *src = tr + i;
        int k = 0;
        for (; k + 8 <= len; k += 8) {
            const __m256 v = _mm256_loadu_ps(src + k);
            _mm256_storeu_ps(dst + k, accumulate ? _mm256_add_ps(_mm256_loadu_ps(dst + k), v) : _mm256_add_ps(v, b));
        }
        for (; k < len; k++) dst[k] = accumulate ? dst[k] + src[k] : src[k] + bv;
        i += len;
        x += len;
    }
}

/* 1x1: the input planes are the raw tensor, HW floats apart. When HW is a
 * power of two (every U-Net level) the Cin rows a tile reads all map to the
 * same L1 set and evict each other (measured, 1 thread: reading the planes
 * in place ran 1x1 convs at a third of sgemm's speed). So a task first copies
 * its block of TB1 positions of every input channel into a contiguous
 * [Cin][TB1] buffer (the "tail scratch"; up to 192 KB, in L2), zero-filling
 * a short last block since the planes have no read slack, and runs its tiles
 * from there. TB1 = 192 floats = 12 whole cache lines per input row: long
 * runs for the prefetcher, and no line fetched by two tasks (the rows alias
 * in L2 as well, so a half-used line is gone before the next task would want
 * the other half). Within the block, sub-blocks of P1 positions (a multiple
 * of 2 tiles, as many as keep Cin x P1 within 32 KB, i.e. L1) run every
 * output-channel block in turn. (Measured, 2 threads, U-Net 1x1 shapes:
 * this is level with OpenBLAS sgemm for Cin <= 32 or small planes, and still
 * 10-30% behind it for Cin >= 64 on large planes.) */
#define TB1 192
static int p1_positions(int Cin) {
    int k = 32768 / ((int)sizeof(float) * 2 * NR * Cin);
    return 2 * NR * (k < 1 ? 1 : k > 4 ? 4 : k);
}

size_t conv_direct_tail_floats(int Cin) { return (size_t)nn_threads() * Cin * TB1; }

/* Tasks are (sample, block of positions: P1 for 1x1, one tile for 3x3), on
 * boundaries that depend only on the shape; a task runs every output-channel
 * block over its positions, so their input rows stay in L1 while the packed
 * weights stream. Every output is one kernel call's fixed-order sum over
 * (ci, tap), plus bias afterwards: bit-identical for any thread count. */
void conv_direct_run(float *out, int accumulate, const float *in, const float *wpk, const float *bias, int B, int Cin,
                     int Cout, int H, int W, int K, float *tail_scratch) {
    const flat_geom gg = geom(K, H, W), *g = &gg;
    const int P1 = p1_positions(Cin), bl = g->T == 1 ? TB1 : NR; /* positions per task */
    const int nblk = (g->nflat + bl - 1) / bl, nb = co_blocks(Cout);
    const int ntask = B * nblk;
    const size_t HW = (size_t)H * W;
#pragma omp parallel num_threads(nn_threads())
    {
        float tile[MR * NR] __attribute__((aligned(32)));
        float *buf = tail_scratch + (size_t)omp_get_thread_num() * Cin * TB1;
#pragma omp for schedule(static)
        for (int task = 0; task < ntask; task++) {
            const int b = task / nblk, q0 = (task % nblk) * bl;
            const int nq = g->nflat - q0 < bl ? g->nflat - q0 : bl;
            const float *src = in + (size_t)b * Cin * g->PS + q0;
            size_t ps = g->PS;
            int sub = NR; /* positions per sub-block */
            if (g->T == 1) {
                const int nz = (nq + NR - 1) / NR * NR; /* the kernel reads whole tiles */
                for (int ci = 0; ci < Cin; ci++) {
                    memcpy(buf + (size_t)ci * TB1, src + (size_t)ci * g->PS, (size_t)nq * sizeof(float));
                    if (nq < nz) memset(buf + (size_t)ci * TB1 + nq, 0, (size_t)(nz - nq) * sizeof(float));
                }
                src = buf;
                ps = TB1;
                sub = P1;
            }
            float *ob = out + (size_t)b * Cout * HW;
            /* per sub-block, channel block outer, so each block's 4 output
             * rows are written as runs of P1 floats (the rows are HW floats
             * apart and alias in L1 like the inputs), while the sub-block's
             * [Cin][P1] part of the buffer stays in L1. (3x3: one tile per
             * task.) */
            for (int sb = 0; sb < nq; sb += sub) {
                for (int jb = 0; jb < nb; jb++) {
                    const int mmax = Cout - jb * MR < MR ? Cout - jb * MR : MR;
                    const float *wb = wpk + (size_t)jb * Cin * g->T * MR;
                    const float *bb = bias ? bias + jb * MR : NULL;
                    const int se = sb + sub < nq ? sb + sub : nq;
                    for (int s0 = sb; s0 < se; s0 += NR) {
                        const int p0 = q0 + s0, n = nq - s0 < NR ? nq - s0 : NR;
                        const int y0 = p0 / g->Wp, x0 = p0 % g->Wp;
                        /* a full tile maps to one run of output: always for 1x1
                         * (no padding columns), for 3x3 when it stays in a row */
                        const int contiguous = n == NR && (g->T == 1 || x0 + NR <= W);
                        float *dst = contiguous ? ob + (size_t)jb * MR * HW + (size_t)y0 * W + x0 : NULL;
                        if (g->T == 1) kernel_t1(tile, dst, HW, mmax, accumulate, bb, src + s0, ps, g->off, wb, Cin);
                        else kernel_t9(tile, dst, HW, mmax, accumulate, bb, src + s0, ps, g->off, wb, Cin);
                        if (dst) continue;
                        for (int m = 0; m < mmax; m++) {
                            const int co = jb * MR + m;
                            const float bv = bias ? bias[co] : 0.0f;
                            store_tile_row(ob + (size_t)co * HW, tile + m * NR, n, y0, x0, W, g->Wp, accumulate, bv);
                        }
                    }
                }
            }
        }
    }
}

/* ---- weight gradient, 3x3 stride 1 (same GEMM over positions as the
 * AVX-512 code):
 *     dW[co][ci][t] = sum_b sum_(y,x) dout[b][co][y][x] * in_pad[b][ci][y * Wp + x + off[t]]
 * dout is transposed to GT [Cout/8][B*H*W][8] (8 output channels
 * contiguous, zero-padded past Cout). The micro-kernel holds 9 taps x 8 output
 * channels (9 ymm) for one input channel. (9 x 16 would need 18
 * accumulators, more than the 16 ymm registers.) Broadcasting one input
 * value per (position, tap) as the AVX-512 code does would cost 9 broadcasts
 * + 1 load per 9 FMAs, load-bound; instead the kernel walks the padded input
 * row by column m and uses each broadcast x[m] three times: tap kx of output
 * column m - kx, with the GT vectors of the last three columns kept in
 * registers. That is 1 load + 3 broadcasts per 9 FMAs.
 * Positions go in chunks of whole rows (DW_CHUNK positions); a task (8-channel
 * output tile, block of DW_CIB input channels) runs the chunks in order,
 * reusing each chunk of GT from L1 across its input channels, and adds each
 * chunk's float sums into double accumulators. Every dW entry is summed over
 * positions in one fixed order whatever the thread count. */
#define DW_CT 8      /* output channels per tile (one ymm) */
#define DW_CIB 8     /* input channels per task */
#define DW_CHUNK 192 /* positions per chunk (whole rows, at least one) */

static int dw_ldg(int Cout) { return (Cout + DW_CT - 1) & ~(DW_CT - 1); }
static int dw_ntile(int Cout) { return dw_ldg(Cout) / DW_CT; }

size_t conv_direct_dweight_floats(int B, int Cin, int Cout, int H, int W) {
    return 2 * (size_t)dw_ntile(Cout) * Cin * 9 * DW_CT + (size_t)B * H * W * dw_ldg(Cout);
}

#define DWK_DECL(t) __m256 a##t = _mm256_setzero_ps()
/* column m of padded rows ky = 0, 1, 2 (x0, x1, x2): taps (ky, kx) of output
 * columns m - kx, whose GT vectors are g0 (m), g1 (m - 1), g2 (m - 2) */
#define DWK_COL(m)                                                  \
    do {                                                            \
        __m256 v = _mm256_broadcast_ss(x0 + (m));                   \
        a0 = _mm256_fmadd_ps(v, g0, a0);                            \
        a1 = _mm256_fmadd_ps(v, g1, a1);                            \
        a2 = _mm256_fmadd_ps(v, g2, a2);                            \
        v = _mm256_broadcast_ss(x1 + (m));                          \
        a3 = _mm256_fmadd_ps(v, g0, a3);                            \
        a4 = _mm256_fmadd_ps(v, g1, a4);                            \
        a5 = _mm256_fmadd_ps(v, g2, a5);                            \
        v = _mm256_broadcast_ss(x2 + (m));                          \
        a6 = _mm256_fmadd_ps(v, g0, a6);                            \
        a7 = _mm256_fmadd_ps(v, g1, a7);                            \
        a8 = _mm256_fmadd_ps(v, g2, a8);                            \
    } while (0)
#define DWK_ADD(t)                                                                                          \
    do {                                                                                                    \
        double *cc = c + (t) * DW_CT;                                                                       \
        _mm256_storeu_pd(cc, _mm256_add_pd(_mm256_loadu_pd(cc), _mm256_cvtps_pd(_mm256_castps256_ps128(a##t)))); \
        _mm256_storeu_pd(cc + 4, _mm256_add_pd(_mm256_loadu_pd(cc + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(a##t, 1)))); \
    } while (0)

/* c[t][co] (double, row stride DW_CT) += sum over rows r in [r0, r1) (row r
 * is output row r % H of sample r / H) and x < W of gt[(r*W + x) * ldg + co] *
 * x_row(r)[x + off[t]], for 8 output channels. xc: the padded plane of
 * sample 0 for this input channel; bs: floats between samples' planes. Each
 * accumulator still adds its terms in increasing position order. */
static __attribute__((noinline)) void dw_tile(double *c, const float *gt, int ldg, const float *xc, size_t bs, int Wp,
                                              int H, int W, int r0, int r1) {
    DWK_DECL(0); DWK_DECL(1); DWK_DECL(2);
    DWK_DECL(3); DWK_DECL(4); DWK_DECL(5);
    DWK_DECL(6); DWK_DECL(7); DWK_DECL(8);
    const __m256 z = _mm256_setzero_ps();
    for (int r = r0; r < r1; r++) {
        const float *x0 = xc + (size_t)(r / H) * bs + (size_t)(r % H) * Wp, *x1 = x0 + Wp, *x2 = x1 + Wp;
        const float *g = gt + (size_t)r * W * ldg;
        __m256 g0, g1 = z, g2 = z; /* columns -1 and -2 do not exist */
        for (int m = 0; m < W; m++, g += ldg) {
            g0 = _mm256_loadu_ps(g);
            DWK_COL(m);
            g2 = g1;
            g1 = g0;
        }
        /* padded columns W and W + 1 only feed taps kx >= 1 / kx = 2 */
        g0 = z;
        DWK_COL(W);
        g2 = g1;
        g1 = z;
        DWK_COL(W + 1);
    }
    DWK_ADD(0); DWK_ADD(1); DWK_ADD(2);
    DWK_ADD(3); DWK_ADD(4); DWK_ADD(5);
    DWK_ADD(6); DWK_ADD(7); DWK_ADD(8);
}

void conv_direct_dweight3x3(float *dweight, const float *dout, const float *xpad, int B, int Cin, int Cout, int H,
                            int W, float *scratch) {
    const size_t PS = geom(3, H, W).PS, HW = (size_t)H * W;
    const int Wp = W + 2, ntile = dw_ntile(Cout), ncb = (Cin + DW_CIB - 1) / DW_CIB;
    const int rpc = W < DW_CHUNK ? DW_CHUNK / W : 1, nrows = B * H; /* rows per chunk */
    double *C = (double *)(void *)scratch; /* [ntile][Cin][9][DW_CT] */
    float *GT = scratch + 2 * (size_t)ntile * Cin * 9 * DW_CT; /* [ntile][B*H*W][DW_CT] */
    const int np8 = (int)((HW + 7) / 8);
#pragma omp parallel num_threads(nn_threads())
    {
        /* GT[jt][b*HW + p][m] = dout[b][8*jt + m][p] (0 past Cout): tile-major,
         * so a tile's kernel streams whole cache lines in order (with one
         * [pos][ldg] array it used a quarter of each line it fetched and
         * stalled on those loads). 8x8 blocks: 8 channel rows in, one
         * in-register transpose, 64 contiguous floats out. */
#pragma omp for schedule(static)
        for (int bp = 0; bp < B * np8; bp++) {
            const int b = bp / np8;
            const size_t p0 = (size_t)(bp % np8) * 8;
            const int n = HW - p0 < 8 ? (int)(HW - p0) : 8;
            for (int jt = 0; jt < ntile; jt++) {
                const float *src = dout + ((size_t)b * Cout + jt * DW_CT) * HW + p0;
                float *dst = GT + ((size_t)jt * B * HW + (size_t)b * HW + p0) * DW_CT;
                const int nc = Cout - jt * DW_CT < DW_CT ? Cout - jt * DW_CT : DW_CT;
                if (n == 8 && nc == 8) {
                    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + HW),
                           r2 = _mm256_loadu_ps(src + 2 * HW), r3 = _mm256_loadu_ps(src + 3 * HW),
                           r4 = _mm256_loadu_ps(src + 4 * HW), r5 = _mm256_loadu_ps(src + 5 * HW),
                           r6 = _mm256_loadu_ps(src + 6 * HW), r7 = _mm256_loadu_ps(src + 7 * HW);
                    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
                                 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
                                 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
                    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                                 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                                 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                                 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                    r0 = _mm256_permute2f128_ps(u0, u4, 0x20), r1 = _mm256_permute2f128_ps(u1, u5, 0x20);
                    r2 = _mm256_permute2f128_ps(u2, u6, 0x20), r3 = _mm256_permute2f128_ps(u3, u7, 0x20);
                    r4 = _mm256_permute2f128_ps(u0, u4, 0x31), r5 = _mm256_permute2f128_ps(u1, u5, 0x31);
                    r6 = _mm256_permute2f128_ps(u2, u6, 0x31), r7 = _mm256_permute2f128_ps(u3, u7, 0x31);
                    _mm256_storeu_ps(dst, r0), _mm256_storeu_ps(dst + 8, r1);
                    _mm256_storeu_ps(dst + 16, r2), _mm256_storeu_ps(dst + 24, r3);
                    _mm256_storeu_ps(dst + 32, r4), _mm256_storeu_ps(dst + 40, r5);
                    _mm256_storeu_ps(dst + 48, r6), _mm256_storeu_ps(dst + 56, r7);
                } else {
                    for (int i = 0; i < n; i++)
                        for (int j = 0; j < 8; j++) dst[i * 8 + j] = j < nc ? src[(size_t)j * HW + i] : 0.0f;
                }
            }
        }
#pragma omp for schedule(static)
        for (int task = 0; task < ntile * ncb; task++) {
            const int jt = task / ncb, ci0 = (task % ncb) * DW_CIB;
            const int ci1 = ci0 + DW_CIB < Cin ? ci0 + DW_CIB : Cin;
            double *cb = C + ((size_t)jt * Cin + ci0) * 9 * DW_CT;
            memset(cb, 0, (size_t)(ci1 - ci0) * 9 * DW_CT * sizeof(double));
            for (int r0 = 0; r0 < nrows; r0 += rpc) { /* chunks in order */
                const int r1 = r0 + rpc < nrows ? r0 + rpc : nrows;
                for (int ci = ci0; ci < ci1; ci++)
                    dw_tile(cb + (size_t)(ci - ci0) * 9 * DW_CT, GT + (size_t)jt * B * HW * DW_CT, DW_CT, xpad + (size_t)ci * PS,
                            (size_t)Cin * PS, Wp, H, W, r0, r1);
            }
        }
#pragma omp for schedule(static)
        for (int co = 0; co < Cout; co++) {
            const int jt = co / DW_CT, m = co % DW_CT;
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
size_t conv_direct_dweight_floats(int B, int Cin, int Cout, int H, int W) { return 0 * (size_t)(B + Cin + Cout + H + W); }
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
