/*
 * conv2d_direct_avx2.h - the AVX2 + FMA micro-kernels and forward driver of
 * conv2d_direct.c (included by it only), for e.g. AMD Zen 2/3, Intel
 * Haswell..Alder Lake: the same method as the AVX-512 code, re-tiled for 16
 * ymm registers of 8 floats.
 *
 * Forward micro-kernel: 4 output channels x 24 positions = 12 accumulators,
 * 3 loads of the input row and 1 broadcast register. Per (ci, tap) step that
 * is 12 FMAs against 3 vector loads + 4 broadcast loads; 8 x 8 (8 FMAs per
 * 1 load + 8 broadcasts) or 6 x 16 (12 FMAs per 2 + 6) would be limited by
 * the load ports before the two FMA pipes, so 4 x 24 keeps the FMA units the
 * bottleneck. The pack's MR is 4 accordingly.
 */
#include <immintrin.h>

#define MR 4        /* output channels per tile */
#define NV 3        /* ymm vectors per row of the tile */
#define NR (8 * NV) /* positions per tile */

#define ACC_DECL(m) __m256 a##m##0 = _mm256_setzero_ps(), a##m##1 = _mm256_setzero_ps(), a##m##2 = _mm256_setzero_ps()
#define ACC_FMA(m)                                                                                                     \
    do {                                                                                                               \
        const __m256 wb = _mm256_broadcast_ss(wv + (m));                                                               \
        a##m##0 = _mm256_fmadd_ps(wb, x0, a##m##0);                                                                    \
        a##m##1 = _mm256_fmadd_ps(wb, x1, a##m##1);                                                                    \
        a##m##2 = _mm256_fmadd_ps(wb, x2, a##m##2);                                                                    \
    } while (0)
/* Row m of the tile: straight into the output when the tile's positions are
 * one contiguous run of a single output row (always for 1x1; most tiles of a
 * wide 3x3), else into the tile buffer for store_tile_row to split. Bias is
 * added after the sum, as in the buffered path, so both give the same bits. */
#define ACC_STORE(m)                                                                                                   \
    do {                                                                                                               \
        if (dst) {                                                                                                     \
            if ((m) < mmax) {                                                                                          \
                float *o = dst + (size_t)(m)*ostride;                                                                  \
                if (accumulate) {                                                                                      \
                    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), a##m##0));                                   \
                    _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), a##m##1));                           \
                    _mm256_storeu_ps(o + 16, _mm256_add_ps(_mm256_loadu_ps(o + 16), a##m##2));                         \
                } else {                                                                                               \
                    const __m256 bb = _mm256_set1_ps(bias ? bias[m] : 0.0f);                                           \
                    _mm256_storeu_ps(o, _mm256_add_ps(a##m##0, bb));                                                   \
                    _mm256_storeu_ps(o + 8, _mm256_add_ps(a##m##1, bb));                                               \
                    _mm256_storeu_ps(o + 16, _mm256_add_ps(a##m##2, bb));                                              \
                }                                                                                                      \
            }                                                                                                          \
        } else {                                                                                                       \
            _mm256_storeu_ps(tile + (m)*NR, a##m##0);                                                                  \
            _mm256_storeu_ps(tile + (m)*NR + 8, a##m##1);                                                              \
            _mm256_storeu_ps(tile + (m)*NR + 16, a##m##2);                                                             \
        }                                                                                                              \
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
    ACC_DECL(0);
    ACC_DECL(1);
    ACC_DECL(2);
    ACC_DECL(3);
    for (int ci = 0; ci < Cin; ci++) {
        const float *x = in + (size_t)ci * PS;
        const float *wc = w + (size_t)ci * T * MR;
        for (int t = 0; t < T; t++) {
            const float *xp = x + off[t];
            const __m256 x0 = _mm256_loadu_ps(xp), x1 = _mm256_loadu_ps(xp + 8), x2 = _mm256_loadu_ps(xp + 16);
            const float *wv = wc + t * MR;
            ACC_FMA(0);
            ACC_FMA(1);
            ACC_FMA(2);
            ACC_FMA(3);
        }
    }
    ACC_STORE(0);
    ACC_STORE(1);
    ACC_STORE(2);
    ACC_STORE(3);
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

/* dst[k] = src[k] + bv (or += src[k] when accumulate) for k < len: whole
 * vectors, then a scalar tail (for store_tile_row). */
static inline void store_run(float *dst, const float *src, int len, int accumulate, float bv) {
    const __m256 b = _mm256_set1_ps(bv);
    int k = 0;
    for (; k + 8 <= len; k += 8) {
        const __m256 v = _mm256_loadu_ps(src + k);
        _mm256_storeu_ps(dst + k, accumulate ? _mm256_add_ps(_mm256_loadu_ps(dst + k), v) : _mm256_add_ps(v, b));
    }
    for (; k < len; k++) dst[k] = accumulate ? dst[k] + src[k] : src[k] + bv;
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
                        if (g->T == 1)
                            kernel_t1(tile, dst, HW, mmax, accumulate, bb, src + s0, ps, g->off, wb, Cin);
                        else
                            kernel_t9(tile, dst, HW, mmax, accumulate, bb, src + s0, ps, g->off, wb, Cin);
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

/* ---- weight gradient: dout is transposed to GT [Cout/8][B*H*W][8] (8 output
 * channels contiguous, zero-padded past Cout). The micro-kernel holds 9 taps x
 * 8 output channels (9 ymm) for one input channel. (9 x 16 would need 18
 * accumulators, more than the 16 ymm registers.) Broadcasting one input
 * value per (position, tap) as the AVX-512 code does would cost 9 broadcasts
 * + 1 load per 9 FMAs, load-bound; instead the kernel walks the padded input
 * row by column m and uses each broadcast x[m] three times: tap kx of output
 * column m - kx, with the GT vectors of the last three columns kept in
 * registers. That is 1 load + 3 broadcasts per 9 FMAs. */
#define DW_CT    8 /* output channels per tile (one ymm) */
#define DW_LANES 8 /* output channels per vector: ldg and the tiles are multiples of it */

#define DWK_DECL(t) __m256 a##t = _mm256_setzero_ps()
/* column m of padded rows ky = 0, 1, 2 (x0, x1, x2): taps (ky, kx) of output
 * columns m - kx, whose GT vectors are g0 (m), g1 (m - 1), g2 (m - 2) */
#define DWK_COL(m)                                                                                                     \
    do {                                                                                                               \
        __m256 v = _mm256_broadcast_ss(x0 + (m));                                                                      \
        a0 = _mm256_fmadd_ps(v, g0, a0);                                                                               \
        a1 = _mm256_fmadd_ps(v, g1, a1);                                                                               \
        a2 = _mm256_fmadd_ps(v, g2, a2);                                                                               \
        v = _mm256_broadcast_ss(x1 + (m));                                                                             \
        a3 = _mm256_fmadd_ps(v, g0, a3);                                                                               \
        a4 = _mm256_fmadd_ps(v, g1, a4);                                                                               \
        a5 = _mm256_fmadd_ps(v, g2, a5);                                                                               \
        v = _mm256_broadcast_ss(x2 + (m));                                                                             \
        a6 = _mm256_fmadd_ps(v, g0, a6);                                                                               \
        a7 = _mm256_fmadd_ps(v, g1, a7);                                                                               \
        a8 = _mm256_fmadd_ps(v, g2, a8);                                                                               \
    } while (0)
#define DWK_ADD(t)                                                                                                     \
    do {                                                                                                               \
        double *cc = c + (t)*DW_CT;                                                                                    \
        _mm256_storeu_pd(cc, _mm256_add_pd(_mm256_loadu_pd(cc), _mm256_cvtps_pd(_mm256_castps256_ps128(a##t))));       \
        _mm256_storeu_pd(cc + 4,                                                                                       \
                         _mm256_add_pd(_mm256_loadu_pd(cc + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(a##t, 1))));     \
    } while (0)

/* c[t][co] (double, row stride DW_CT) += sum over rows r in [r0, r1) (row r
 * is output row r % H of sample r / H) and x < W of gt[(r*W + x) * ldg + co] *
 * x_row(r)[x + off[t]], for 8 output channels. xc: the padded plane of
 * sample 0 for this input channel; bs: floats between samples' planes. Each
 * accumulator still adds its terms in increasing position order. */
static __attribute__((noinline)) void dw_tile(double *c, const float *gt, int ldg, const float *xc, size_t bs, int Wp,
                                              int H, int W, int r0, int r1) {
    DWK_DECL(0);
    DWK_DECL(1);
    DWK_DECL(2);
    DWK_DECL(3);
    DWK_DECL(4);
    DWK_DECL(5);
    DWK_DECL(6);
    DWK_DECL(7);
    DWK_DECL(8);
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

/* GT[jt][b*HW + p][m] = dout[b][8*jt + m][p] (0 past Cout): tile-major, so a
 * tile's kernel streams whole cache lines in order (with one [pos][ldg] array
 * it used a quarter of each line it fetched and stalled on those loads). 8x8
 * blocks: 8 channel rows in, one in-register transpose, 64 contiguous floats
 * out. omp for inside the caller's region. */
static void dw_transpose(float *GT, const float *dout, int B, int Cout, size_t HW) {
    const int ntile = dw_ntile(Cout), np8 = (int)((HW + 7) / 8);
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
                __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + HW), r2 = _mm256_loadu_ps(src + 2 * HW),
                       r3 = _mm256_loadu_ps(src + 3 * HW), r4 = _mm256_loadu_ps(src + 4 * HW),
                       r5 = _mm256_loadu_ps(src + 5 * HW), r6 = _mm256_loadu_ps(src + 6 * HW),
                       r7 = _mm256_loadu_ps(src + 7 * HW);
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
}

/* c (the [9][DW_CT] doubles of one input channel) += tile jt's share over
 * rows [r0, r1). */
static inline void dw_tile_run(double *c, const float *GT, int jt, int B, int Cout, size_t HW, const float *xc,
                               size_t bs, int Wp, int H, int W, int r0, int r1) {
    (void)Cout;
    dw_tile(c, GT + (size_t)jt * B * HW * DW_CT, DW_CT, xc, bs, Wp, H, W, r0, r1);
}
