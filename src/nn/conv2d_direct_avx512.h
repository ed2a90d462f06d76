/*
 * conv2d_direct_avx512.h - the AVX-512 micro-kernels and forward driver of
 * conv2d_direct.c (included by it only).
 *
 * The micro-kernel keeps an 8 (output channels) x 48 (positions) tile in 24
 * zmm accumulators; weights are packed [co block][ci][tap][8] so each FMA
 * takes a broadcast from contiguous memory.
 */
#include <immintrin.h>

#define MR 8         /* output channels per tile */
#define NV 3         /* zmm vectors per row of the tile */
#define NR (16 * NV) /* positions per tile */

#define ACC_DECL(m) __m512 a##m##0 = _mm512_setzero_ps(), a##m##1 = _mm512_setzero_ps(), a##m##2 = _mm512_setzero_ps()
#define ACC_FMA(m)                                                                                                     \
    do {                                                                                                               \
        const __m512 wb = _mm512_set1_ps(wv[m]);                                                                       \
        a##m##0 = _mm512_fmadd_ps(wb, x0, a##m##0);                                                                    \
        a##m##1 = _mm512_fmadd_ps(wb, x1, a##m##1);                                                                    \
        a##m##2 = _mm512_fmadd_ps(wb, x2, a##m##2);                                                                    \
    } while (0)
#define ACC_STORE(m)                                                                                                   \
    do {                                                                                                               \
        _mm512_storeu_ps(tile + (m)*NR, a##m##0);                                                                      \
        _mm512_storeu_ps(tile + (m)*NR + 16, a##m##1);                                                                 \
        _mm512_storeu_ps(tile + (m)*NR + 32, a##m##2);                                                                 \
    } while (0)

/* tile[m][i] = sum_ci sum_t w[ci][t][m] * in[ci * PS + off[t] + i], i < NR.
 * in points at the tile's first flat position of channel 0. */
static void kernel_8x48(float *tile, const float *in, size_t PS, const int *off, int T, const float *w, int Cin) {
    ACC_DECL(0);
    ACC_DECL(1);
    ACC_DECL(2);
    ACC_DECL(3);
    ACC_DECL(4);
    ACC_DECL(5);
    ACC_DECL(6);
    ACC_DECL(7);
    for (int ci = 0; ci < Cin; ci++) {
        const float *x = in + (size_t)ci * PS;
        for (int t = 0; t < T; t++) {
            const float *xp = x + off[t];
            const __m512 x0 = _mm512_loadu_ps(xp), x1 = _mm512_loadu_ps(xp + 16), x2 = _mm512_loadu_ps(xp + 32);
            const float *wv = w + ((size_t)ci * T + t) * MR;
            ACC_FMA(0);
            ACC_FMA(1);
            ACC_FMA(2);
            ACC_FMA(3);
            ACC_FMA(4);
            ACC_FMA(5);
            ACC_FMA(6);
            ACC_FMA(7);
        }
    }
    ACC_STORE(0);
    ACC_STORE(1);
    ACC_STORE(2);
    ACC_STORE(3);
    ACC_STORE(4);
    ACC_STORE(5);
    ACC_STORE(6);
    ACC_STORE(7);
}

/* dst[k] = src[k] + bv (or += src[k] when accumulate) for k < len: masked
 * vectors (for store_tile_row). */
static inline void store_run(float *dst, const float *src, int len, int accumulate, float bv) {
    const __m512 b = _mm512_set1_ps(bv);
    for (int k = 0; k < len; k += 16) {
        const __mmask16 mk = len - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (len - k)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(mk, src + k);
        _mm512_mask_storeu_ps(dst + k, mk,
                              accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(mk, dst + k), v) : _mm512_add_ps(v, b));
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

/* ---- weight gradient: dout is transposed to GT [B*H*W][ldg] (output
 * channels contiguous, zero-padded to a multiple of 16), and the micro-kernel
 * keeps a tile of 9 taps x up to 32 output channels (18 zmm) for one input
 * channel: per position it loads 1-2 vectors of GT and broadcasts the 9 input
 * values under the taps. */
#define DW_CT    32 /* most output channels per tile (2 zmm; with 3 the 27 accumulators spill) */
#define DW_LANES 16 /* output channels per vector: ldg and the tiles are multiples of it */

#define DWK_DECL(t) __m512 a##t##0 = z, a##t##1 = z
#define DWK_FMA(t, xv)                                                                                                 \
    do {                                                                                                               \
        const __m512 xb = _mm512_set1_ps(xv);                                                                          \
        a##t##0 = _mm512_fmadd_ps(xb, g0, a##t##0);                                                                    \
        if (DNV > 1) a##t##1 = _mm512_fmadd_ps(xb, g1, a##t##1);                                                       \
    } while (0)
#define DWK_ADD1(t, j)                                                                                                 \
    do {                                                                                                               \
        double *cc = c + (t)*DW_CT + 16 * (j);                                                                         \
        _mm512_storeu_pd(cc, _mm512_add_pd(_mm512_loadu_pd(cc), _mm512_cvtps_pd(_mm512_castps512_ps256(a##t##j))));    \
        _mm512_storeu_pd(                                                                                              \
            cc + 8,                                                                                                    \
            _mm512_add_pd(_mm512_loadu_pd(cc + 8),                                                                     \
                          _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a##t##j), 1)))));   \
    } while (0)
#define DWK_ADD(t)                                                                                                     \
    do {                                                                                                               \
        DWK_ADD1(t, 0);                                                                                                \
        if (DNV > 1) DWK_ADD1(t, 1);                                                                                   \
    } while (0)

/* c[t][co] (double, row stride DW_CT) += sum over rows r in [r0, r1) (row r
 * is output row r % H of sample r / H) and x < W of gt[(r*W + x) * ldg + co] *
 * x_row(r)[x + off[t]], for 16 * DNV output channels. xc: the padded plane of
 * sample 0 for this input channel; bs: floats between samples' planes. */
static inline __attribute__((always_inline)) void dw_tile(double *c, const float *gt, int ldg, const float *xc,
                                                          size_t bs, int Wp, int H, int W, int r0, int r1,
                                                          const int DNV) {
    const __m512 z = _mm512_setzero_ps();
    DWK_DECL(0);
    DWK_DECL(1);
    DWK_DECL(2);
    DWK_DECL(3);
    DWK_DECL(4);
    DWK_DECL(5);
    DWK_DECL(6);
    DWK_DECL(7);
    DWK_DECL(8);
    for (int r = r0; r < r1; r++) {
        const float *x0 = xc + (size_t)(r / H) * bs + (size_t)(r % H) * Wp, *x1 = x0 + Wp, *x2 = x1 + Wp;
        const float *g = gt + (size_t)r * W * ldg;
        for (int x = 0; x < W; x++, g += ldg) {
            const __m512 g0 = _mm512_loadu_ps(g);
            const __m512 g1 = DNV > 1 ? _mm512_loadu_ps(g + 16) : z;
            DWK_FMA(0, x0[x]);
            DWK_FMA(1, x0[x + 1]);
            DWK_FMA(2, x0[x + 2]);
            DWK_FMA(3, x1[x]);
            DWK_FMA(4, x1[x + 1]);
            DWK_FMA(5, x1[x + 2]);
            DWK_FMA(6, x2[x]);
            DWK_FMA(7, x2[x + 1]);
            DWK_FMA(8, x2[x + 2]);
        }
    }
    DWK_ADD(0);
    DWK_ADD(1);
    DWK_ADD(2);
    DWK_ADD(3);
    DWK_ADD(4);
    DWK_ADD(5);
    DWK_ADD(6);
    DWK_ADD(7);
    DWK_ADD(8);
}
static __attribute__((noinline)) void dw_tile1(double *c, const float *gt, int ldg, const float *xc, size_t bs, int Wp,
                                               int H, int W, int r0, int r1) {
    dw_tile(c, gt, ldg, xc, bs, Wp, H, W, r0, r1, 1);
}
static __attribute__((noinline)) void dw_tile2(double *c, const float *gt, int ldg, const float *xc, size_t bs, int Wp,
                                               int H, int W, int r0, int r1) {
    dw_tile(c, gt, ldg, xc, bs, Wp, H, W, r0, r1, 2);
}

/* GT[b*HW + p][co] = dout[b][co][p], 16 positions x 16 channels per step. omp
 * for inside the caller's region. */
static void dw_transpose(float *GT, const float *dout, int B, int Cout, size_t HW) {
    const int ldg = dw_ldg(Cout), np16 = (int)((HW + 15) / 16);
#pragma omp for schedule(static)
    for (int bp = 0; bp < B * np16; bp++) {
        const int b = bp / np16;
        const size_t p0 = (size_t)(bp % np16) * 16;
        const int n = HW - p0 < 16 ? (int)(HW - p0) : 16;
        for (int c0 = 0; c0 < ldg; c0 += 16) {
            const __mmask16 k = c0 + 16 <= Cout ? (__mmask16)0xFFFF
                : c0 < Cout                     ? (__mmask16)((1u << (Cout - c0)) - 1)
                                                : (__mmask16)0;
            const __m512i idx = _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32((int)HW));
            const float *src = dout + ((size_t)b * Cout + c0) * HW + p0;
            float *dst = GT + ((size_t)b * HW + p0) * ldg + c0;
            for (int i = 0; i < n; i++)
                _mm512_storeu_ps(dst + (size_t)i * ldg,
                                 _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, src + i, 4));
        }
    }
}

/* c (the [9][DW_CT] doubles of one input channel) += tile jt's share over
 * rows [r0, r1): the tiles split ldg evenly in 16s, of 1 or 2 vectors. */
static inline void dw_tile_run(double *c, const float *GT, int jt, int B, int Cout, size_t HW, const float *xc,
                               size_t bs, int Wp, int H, int W, int r0, int r1) {
    const int co0 = dw_co0(jt, Cout), nv = (dw_co0(jt + 1, Cout) - co0) / 16;
    (void)B, (void)HW;
    if (nv == 2)
        dw_tile2(c, GT + co0, dw_ldg(Cout), xc, bs, Wp, H, W, r0, r1);
    else
        dw_tile1(c, GT + co0, dw_ldg(Cout), xc, bs, Wp, H, W, r0, r1);
}
