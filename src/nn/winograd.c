/*
 * winograd.c - Winograd F(2x2, 3x3) convolution (Lavin & Gray 2016) for the
 * 3x3 stride-1, padding-1 convolution, forward and backward-data; and its
 * weight gradient by F(3x3, 2x2) (see wino_dweight3x3 further down).
 *
 * With B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]],
 *      G   = [[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]],
 *      A^T = [[1,1,1,0],[0,1,-1,-1]]:
 *  - weights: U = G g G^T for every (co, ci): 16 matrices U_k [Cout][Cin];
 *  - input: the output plane is cut into 2x2 tiles; tile (ty, tx) reads the
 *    4x4 input patch at rows 2ty-1.., columns 2tx-1.. (zeros outside the
 *    image, which is the padding), V = B^T d B: 16 matrices V_k [Cin][tiles];
 *  - M_k = U_k V_k (16 GEMMs), then Y = A^T M A gives the tile's 2x2 outputs
 *    (those past the image edge of an odd H or W are dropped).
 * 16 multiply-adds per 4 outputs instead of 36.
 *
 * Tiles are numbered over (sample, ty, tx) together and cut into blocks of
 * NT tiles (a function of Cin only, so V stays in L2); a block is one task.
 * Within a task, 16 consecutive tiles are one zmm lane group: when they lie in
 * one tile row ("fast" group) the patches come from plain masked loads and a
 * deinterleave, otherwise (short rows, sample or row boundaries) from masked
 * gathers. The GEMM runs on 48-tile slices (8 output channels x 48 tiles in
 * 24 zmm accumulators, like conv2d_direct.c), and each 8 x 48 product is
 * transformed back to the output at once, so M stays in L1.
 *
 * Determinism: every output is computed by the same sequence of operations
 * (transform of its patch, an FMA chain over ci in order 0..Cin-1 per lane,
 * the same output transform) whichever block, slice or lane it lands in, so
 * the result does not depend on the number of threads.
 */
#include "nn/winograd.h"

#include "nn/nn.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#include <omp.h>

#define WG_MR 8      /* output channels per GEMM tile */
#define WG_NS 48     /* tiles per GEMM slice (3 zmm) */
#define WG_MAXNT 768 /* largest tile block */
#define WG_PF 2      /* input transform: prefetch distance in channels */

int wino_supported(void) { return 1; }

/* Tiles per block: V [16][Cin][NT] of about 384 KB (L2 is 2 MB per core),
 * a multiple of the 48-tile slice. Depends only on Cin. */
static int wg_block_tiles(int Cin) {
    int s = (96 * 1024) / (16 * WG_NS * (Cin > 0 ? Cin : 1));
    if (s < 1) s = 1;
    if (s > WG_MAXNT / WG_NS) s = WG_MAXNT / WG_NS;
    return s * WG_NS;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }
/* V is [NT / 48 slices][16 k][Cin][48 tiles]: the GEMM of (slice, k) reads
 * one contiguous stream. Floats per V_k of a slice: one cache line more than
 * needed, so the 16 rows a transform writes do not share an L1 set. */
static size_t wg_ks_floats(int Cin) { return (size_t)WG_NS * Cin + 16; }
static size_t wg_u_floats(int Cin, int Cout) { return round16((size_t)16 * ((Cout + WG_MR - 1) / WG_MR) * WG_MR * Cin); }
static size_t wg_thread_floats(int Cin) {
    return (size_t)(wg_block_tiles(Cin) / WG_NS) * 16 * wg_ks_floats(Cin) + (size_t)16 * WG_MR * WG_NS;
}

/* + the bf16 pairs of U (half of U's floats, bf16.c) */
size_t wino_scratch_floats(int Cin, int Cout) {
    return wg_u_floats(Cin, Cout) + (size_t)nn_threads() * wg_thread_floats(Cin) + wg_u_floats(Cin + 1, Cout) / 2 + 16;
}

/* Upk[k][jb][ci][m] = (G g G^T)[k / 4][k % 4] for g the 3x3 kernel of output
 * channel co = jb * 8 + m, input channel ci (zero for co >= Cout). Lanes are
 * (ci = ci0 + l / 8, m = l % 8), so the 16 lanes of a U_k are contiguous in
 * Upk; the kernel taps come in by gathers. Runs as an omp for inside the
 * caller's region. */
static __attribute__((noinline)) void wg_weights(float *Upk, const float *w, int flip, int Cin, int Cout) {
    const int nb = (Cout + WG_MR - 1) / WG_MR, npair = (Cin + 1) / 2;
    const __m512 h = _mm512_set1_ps(0.5f), z = _mm512_setzero_ps();
    int lidx[16] __attribute__((aligned(64)));
    for (int l = 0; l < 16; l++) /* offset of lane l's tap 0 from (ci0, jb * 8) */
        lidx[l] = flip ? ((l / 8) * Cout + l % 8) * 9 + 8 : ((l % 8) * Cin + l / 8) * 9;
    const __m512i vidx = _mm512_load_si512(lidx);
#pragma omp for schedule(static)
    for (int jc = 0; jc < nb * npair; jc++) {
        const int jb = jc / npair, ci0 = (jc % npair) * 2;
        __mmask16 k = 0;
        for (int l = 0; l < 16; l++)
            if (jb * WG_MR + l % 8 < Cout && ci0 + l / 8 < Cin) k |= (__mmask16)(1u << l);
        const float *base = flip ? w + ((size_t)ci0 * Cout + (size_t)jb * WG_MR) * 9
                                 : w + ((size_t)jb * WG_MR * Cin + ci0) * 9;
        __m512 g[9], Gg[4][3];
        for (int t = 0; t < 9; t++)
            g[t] = _mm512_mask_i32gather_ps(z, k, _mm512_add_epi32(vidx, _mm512_set1_epi32(flip ? -t : t)), base, 4);
        for (int c = 0; c < 3; c++) {
            Gg[0][c] = g[c];
            Gg[1][c] = _mm512_mul_ps(h, _mm512_add_ps(_mm512_add_ps(g[c], g[3 + c]), g[6 + c]));
            Gg[2][c] = _mm512_mul_ps(h, _mm512_add_ps(_mm512_sub_ps(g[c], g[3 + c]), g[6 + c]));
            Gg[3][c] = g[6 + c];
        }
        float *dst = Upk + ((size_t)jb * Cin + ci0) * WG_MR;
        const size_t ks = (size_t)nb * Cin * WG_MR; /* floats per U_k */
        const __mmask16 st = ci0 + 1 < Cin ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
        for (int i = 0; i < 4; i++) {
            const __m512 u0 = Gg[i][0], u3 = Gg[i][2];
            const __m512 u1 = _mm512_mul_ps(h, _mm512_add_ps(_mm512_add_ps(Gg[i][0], Gg[i][1]), Gg[i][2]));
            const __m512 u2 = _mm512_mul_ps(h, _mm512_add_ps(_mm512_sub_ps(Gg[i][0], Gg[i][1]), Gg[i][2]));
            _mm512_mask_storeu_ps(dst + (4 * i + 0) * ks, st, u0);
            _mm512_mask_storeu_ps(dst + (4 * i + 1) * ks, st, u1);
            _mm512_mask_storeu_ps(dst + (4 * i + 2) * ks, st, u2);
            _mm512_mask_storeu_ps(dst + (4 * i + 3) * ks, st, u3);
        }
    }
}

/* One group of 16 consecutive tiles. */
typedef struct {
    __m512i idx;           /* slow: per-lane offset of patch (0, 0) from in + in_off + ci * HW */
    ptrdiff_t in_off;      /* fast: offset of patch (0, 0) of lane 0 (sample b, channel 0); slow: sample b0 */
    ptrdiff_t out_off;     /* fast: offset of output (2ty, 2tx0) of lane 0 (channel 0) */
    ptrdiff_t lane_out[16]; /* slow: per-lane offset of output (2ty, 2tx), channel 0; -1 past the last tile */
    unsigned char lane_fl[16]; /* slow: bit 0 column 2tx+1 inside, bit 1 row 2ty+1 inside */
    __mmask16 lm[4];       /* fast: load masks at patch columns 0, 16, 2, 18 */
    __mmask16 rm[4], cm[4]; /* slow: per-lane masks of patch row r / column c inside the image */
    __mmask16 sm[2];       /* fast: store masks of output columns 2tx0 + 0..15, 16..31 */
    int fast, rows;        /* fast: bit r set when patch row r is inside; bit 4: output row 2ty+1 inside */
} wg_group;

typedef struct {
    int B, Cin, Cout, H, W, tw, nt; /* nt: tiles per sample */
    long total;                     /* B * nt */
    int NT;                         /* tiles per block */
    size_t KS;                      /* floats of V per (slice, k) */
} wg_geom;

static __mmask16 span_mask(int s, int W) { /* bits i with 0 <= s + i < W */
    const int lo = s < 0 ? -s : 0, hi = W - s < 16 ? W - s : 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

static __attribute__((noinline)) void wg_describe(wg_group *gr, const wg_geom *g, long t0, int Cin_stride, int Cout_stride) {
    const int H = g->H, W = g->W;
    const size_t HW = (size_t)H * W;
    const long b0 = t0 / g->nt;
    const int r0 = (int)(t0 % g->nt), ty0 = r0 / g->tw, tx0 = r0 % g->tw;
    memset(gr, 0, sizeof *gr);
    if (tx0 + 16 <= g->tw) { /* one tile row of one sample */
        const int iy = 2 * ty0 - 1, ix = 2 * tx0 - 1;
        gr->fast = 1;
        gr->in_off = (ptrdiff_t)((size_t)b0 * Cin_stride * HW) + (ptrdiff_t)iy * W + ix;
        gr->out_off = (ptrdiff_t)((size_t)b0 * Cout_stride * HW) + (ptrdiff_t)(2 * ty0) * W + 2 * tx0;
        for (int r = 0; r < 4; r++)
            if (iy + r >= 0 && iy + r < H) gr->rows |= 1 << r;
        if (2 * ty0 + 1 < H) gr->rows |= 16;
        gr->lm[0] = span_mask(ix, W);
        gr->lm[1] = span_mask(ix + 16, W);
        gr->lm[2] = span_mask(ix + 2, W);
        gr->lm[3] = span_mask(ix + 18, W);
        gr->sm[0] = span_mask(2 * tx0, W);
        gr->sm[1] = span_mask(2 * tx0 + 16, W);
        return;
    }
    int idx[16] __attribute__((aligned(64)));
    gr->in_off = (ptrdiff_t)((size_t)b0 * Cin_stride * HW);
    for (int l = 0; l < 16; l++) {
        const long t = t0 + l;
        idx[l] = 0;
        gr->lane_out[l] = -1;
        if (t >= g->total) continue;
        const long b = t / g->nt;
        const int r = (int)(t % g->nt), ty = r / g->tw, tx = r % g->tw;
        const int iy = 2 * ty - 1, ix = 2 * tx - 1;
        idx[l] = (int)((size_t)(b - b0) * Cin_stride * HW) + iy * W + ix;
        for (int k = 0; k < 4; k++) {
            if (iy + k >= 0 && iy + k < H) gr->rm[k] |= (__mmask16)(1u << l);
            if (ix + k >= 0 && ix + k < W) gr->cm[k] |= (__mmask16)(1u << l);
        }
        gr->lane_out[l] = (ptrdiff_t)((size_t)b * Cout_stride * HW) + (ptrdiff_t)(2 * ty) * W + 2 * tx;
        gr->lane_fl[l] = (unsigned char)((2 * tx + 1 < W ? 1 : 0) | (2 * ty + 1 < H ? 2 : 0));
    }
    gr->idx = _mm512_load_si512(idx);
}

/* v = B^T d B for 16 patches at once (d[row][col], v[4 * i + j]). */
static inline __attribute__((always_inline)) void wg_tf_in(__m512 v[16], __m512 d[4][4]) {
    __m512 t[4][4];
    for (int r = 0; r < 4; r++) {
        t[r][0] = _mm512_sub_ps(d[r][0], d[r][2]);
        t[r][1] = _mm512_add_ps(d[r][1], d[r][2]);
        t[r][2] = _mm512_sub_ps(d[r][2], d[r][1]);
        t[r][3] = _mm512_sub_ps(d[r][1], d[r][3]);
    }
    for (int c = 0; c < 4; c++) {
        v[0 + c] = _mm512_sub_ps(t[0][c], t[2][c]);
        v[4 + c] = _mm512_add_ps(t[1][c], t[2][c]);
        v[8 + c] = _mm512_sub_ps(t[2][c], t[1][c]);
        v[12 + c] = _mm512_sub_ps(t[1][c], t[3][c]);
    }
}

/* The transforms of input channels [ci0, ci1) for the ng groups of a block:
 * group gi, channel ci, matrix k in [k0, k1) goes to V + (gi / 3) * ss +
 * (gi % 3) * 16 + ci * cs + (k - k0) * ks (three groups make a 48-tile GEMM
 * slice). */
typedef struct {
    size_t ss, cs, ks;
    int k0, k1;
} wg_vlayout;
static __attribute__((noinline)) void wg_input(float *V, const wg_vlayout *L, const float *in, const wg_group *grs, int ng,
                                               int ci0, int ci1, const wg_geom *g) {
    const int Cin = g->Cin, W = g->W;
    const size_t HW = (size_t)g->H * W;
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 z = _mm512_setzero_ps();
    for (int ci = ci0; ci < ci1; ci++) {
        for (int gi = 0; gi < ng; gi++) {
            const wg_group *gr = &grs[gi];
            __m512 d[4][4], v[16];
            if (gr->fast) {
                const float *p = in + gr->in_off + (ptrdiff_t)(ci * HW);
                if (ci + WG_PF < Cin) /* the same rows WG_PF channels ahead: they come from memory */
                    for (int r = 0; r < 4; r++)
                        if (gr->rows >> r & 1) {
                            const char *q = (const char *)(p + (ptrdiff_t)(WG_PF * HW) + (ptrdiff_t)r * W);
                            _mm_prefetch(q, _MM_HINT_T0);
                            _mm_prefetch(q + 64, _MM_HINT_T0);
                        }
                for (int r = 0; r < 4; r++) {
                    if (!(gr->rows >> r & 1)) {
                        d[r][0] = d[r][1] = d[r][2] = d[r][3] = z;
                        continue;
                    }
                    const float *q = p + (ptrdiff_t)r * W;
                    const __m512 a0 = _mm512_maskz_loadu_ps(gr->lm[0], q), a1 = _mm512_maskz_loadu_ps(gr->lm[1], q + 16);
                    const __m512 b0 = _mm512_maskz_loadu_ps(gr->lm[2], q + 2), b1 = _mm512_maskz_loadu_ps(gr->lm[3], q + 18);
                    d[r][0] = _mm512_permutex2var_ps(a0, ev, a1);
                    d[r][1] = _mm512_permutex2var_ps(a0, od, a1);
                    d[r][2] = _mm512_permutex2var_ps(b0, ev, b1);
                    d[r][3] = _mm512_permutex2var_ps(b0, od, b1);
                }
            } else {
                const float *base = in + gr->in_off + (ptrdiff_t)(ci * HW);
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 4; c++)
                        d[r][c] = _mm512_mask_i32gather_ps(z, gr->rm[r] & gr->cm[c],
                                                           _mm512_add_epi32(gr->idx, _mm512_set1_epi32(r * W + c)),
                                                           base, 4);
            }
            wg_tf_in(v, d);
            float *dst = V + (size_t)(gi / 3) * L->ss + (size_t)(gi % 3) * 16 + (size_t)ci * L->cs;
            for (int k = L->k0; k < L->k1; k++) _mm512_storeu_ps(dst + (k - L->k0) * L->ks, v[k]);
        }
    }
}

/* M[m][16 * j + lane] (row stride WG_NS) = sum_ci u[ci][m] * V[ci * vs + 16 * j + lane], j < NV.
 * The sum runs over ci in order in each lane, the same for every NV. */
#define WK_DECL(m) __m512 c##m##0 = z, c##m##1 = z, c##m##2 = z
#define WK_FMA(m)                                                     \
    do {                                                              \
        const __m512 wb = _mm512_set1_ps(u[m]);                       \
        c##m##0 = _mm512_fmadd_ps(wb, x0, c##m##0);                   \
        if (NV > 1) c##m##1 = _mm512_fmadd_ps(wb, x1, c##m##1);       \
        if (NV > 2) c##m##2 = _mm512_fmadd_ps(wb, x2, c##m##2);       \
    } while (0)
#define WK_STORE(m)                                                   \
    do {                                                              \
        _mm512_storeu_ps(M + (m) * WG_NS, c##m##0);                   \
        if (NV > 1) _mm512_storeu_ps(M + (m) * WG_NS + 16, c##m##1);  \
        if (NV > 2) _mm512_storeu_ps(M + (m) * WG_NS + 32, c##m##2);  \
    } while (0)

static inline __attribute__((always_inline)) void wg_gemm(float *M, const float *V, size_t vs, const float *U, int Cin,
                                                          const int NV) {
    const __m512 z = _mm512_setzero_ps();
    WK_DECL(0); WK_DECL(1); WK_DECL(2); WK_DECL(3);
    WK_DECL(4); WK_DECL(5); WK_DECL(6); WK_DECL(7);
    for (int ci = 0; ci < Cin; ci++) {
        const float *v = V + (size_t)ci * vs, *u = U + (size_t)ci * WG_MR;
        const __m512 x0 = _mm512_loadu_ps(v);
        const __m512 x1 = NV > 1 ? _mm512_loadu_ps(v + 16) : z;
        const __m512 x2 = NV > 2 ? _mm512_loadu_ps(v + 32) : z;
        WK_FMA(0); WK_FMA(1); WK_FMA(2); WK_FMA(3);
        WK_FMA(4); WK_FMA(5); WK_FMA(6); WK_FMA(7);
    }
    WK_STORE(0); WK_STORE(1); WK_STORE(2); WK_STORE(3);
    WK_STORE(4); WK_STORE(5); WK_STORE(6); WK_STORE(7);
}
static __attribute__((noinline)) void wg_gemm1(float *M, const float *V, size_t vs, const float *U, int Cin) { wg_gemm(M, V, vs, U, Cin, 1); }
static __attribute__((noinline)) void wg_gemm2(float *M, const float *V, size_t vs, const float *U, int Cin) { wg_gemm(M, V, vs, U, Cin, 2); }
static __attribute__((noinline)) void wg_gemm3(float *M, const float *V, size_t vs, const float *U, int Cin) { wg_gemm(M, V, vs, U, Cin, 3); }

/* ---- bf16 GEMMs (nn_use_bf16): U and V go to pairs of input channels,
 * word p of a row holding bf16(x[2p]) in its low and bf16(x[2p + 1]) in its
 * high half (zero past Cin), and vdpbf16ps adds both products to an fp32
 * accumulator lane. Compiled for AVX512-BF16 by target attribute only; run
 * only when the CPU has it. Per lane the sum still runs over channel pairs in
 * order, so the result does not depend on the thread count. */
#define WG_BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))

/* Ubf[k][jb][p][m] from Upk[k][jb][ci][m]: rows 2p and 2p + 1 are 16
 * consecutive floats; interleave their bf16s by m. omp for. */
static WG_BF16_TARGET __attribute__((noinline)) void wg_weights_bf16(uint32_t *Ubf, const float *Upk, int Cin, int Cout) {
    const int nb = (Cout + WG_MR - 1) / WG_MR, np = (Cin + 1) / 2;
    const __m256i il = _mm256_setr_epi16(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
#pragma omp for schedule(static)
    for (int kb = 0; kb < 16 * nb; kb++) {
        const float *src = Upk + (size_t)kb * Cin * WG_MR;
        uint32_t *dst = Ubf + (size_t)kb * np * WG_MR;
        for (int p = 0; p < np; p++) {
            const __mmask16 mk = 2 * p + 1 < Cin ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
            const __m256bh b = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mk, src + (size_t)2 * p * WG_MR));
            _mm256_storeu_si256((__m256i *)(dst + (size_t)p * WG_MR), _mm256_permutexvar_epi16(il, (__m256i)b));
        }
    }
}

/* In place: rows ci (stride WG_NS floats) of one V_k of a slice become rows p
 * of channel pairs (stride WG_NS words), for the first nv groups of 16 tiles.
 * Row p is written after rows 2p and 2p + 1 are read, and every row below 2p
 * has been read already. */
static WG_BF16_TARGET __attribute__((noinline)) void wg_v_bf16(float *V, int Cin, int nv) {
    const int np = (Cin + 1) / 2;
    for (int p = 0; p < np; p++)
        for (int j = 0; j < nv; j++) {
            const __m512 a = _mm512_loadu_ps(V + (size_t)2 * p * WG_NS + 16 * j);
            const __m512 b = 2 * p + 1 < Cin ? _mm512_loadu_ps(V + (size_t)(2 * p + 1) * WG_NS + 16 * j) : _mm512_setzero_ps();
            const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
            const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b));
            _mm512_storeu_si512(V + (size_t)p * WG_NS + 16 * j, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
}

#define WB_FMA(m)                                                             \
    do {                                                                      \
        const __m512bh wb = (__m512bh)_mm512_set1_epi32((int)u[m]);           \
        c##m##0 = _mm512_dpbf16_ps(c##m##0, x0, wb);                          \
        if (NV > 1) c##m##1 = _mm512_dpbf16_ps(c##m##1, x1, wb);              \
        if (NV > 2) c##m##2 = _mm512_dpbf16_ps(c##m##2, x2, wb);              \
    } while (0)
static inline WG_BF16_TARGET __attribute__((always_inline)) void wg_gemm_bf(float *M, const float *V, const uint32_t *U,
                                                                            int np, const int NV) {
    const __m512 z = _mm512_setzero_ps();
    const __m512bh zb = (__m512bh)_mm512_setzero_si512();
    WK_DECL(0); WK_DECL(1); WK_DECL(2); WK_DECL(3);
    WK_DECL(4); WK_DECL(5); WK_DECL(6); WK_DECL(7);
    for (int p = 0; p < np; p++) {
        const float *v = V + (size_t)p * WG_NS;
        const uint32_t *u = U + (size_t)p * WG_MR;
        const __m512bh x0 = (__m512bh)_mm512_loadu_si512(v);
        const __m512bh x1 = NV > 1 ? (__m512bh)_mm512_loadu_si512(v + 16) : zb;
        const __m512bh x2 = NV > 2 ? (__m512bh)_mm512_loadu_si512(v + 32) : zb;
        WB_FMA(0); WB_FMA(1); WB_FMA(2); WB_FMA(3);
        WB_FMA(4); WB_FMA(5); WB_FMA(6); WB_FMA(7);
    }
    WK_STORE(0); WK_STORE(1); WK_STORE(2); WK_STORE(3);
    WK_STORE(4); WK_STORE(5); WK_STORE(6); WK_STORE(7);
}
static WG_BF16_TARGET __attribute__((noinline)) void wg_gemm_bf1(float *M, const float *V, const uint32_t *U, int np) { wg_gemm_bf(M, V, U, np, 1); }
static WG_BF16_TARGET __attribute__((noinline)) void wg_gemm_bf2(float *M, const float *V, const uint32_t *U, int np) { wg_gemm_bf(M, V, U, np, 2); }
static WG_BF16_TARGET __attribute__((noinline)) void wg_gemm_bf3(float *M, const float *V, const uint32_t *U, int np) { wg_gemm_bf(M, V, U, np, 3); }

/* out (=, or +=) A^T M A (+ bias) for output channels co0 + m, m < mmax, and
 * the nv groups grs[0..nv) whose products are Mb[k][m][16 * j + lane]. */
static __attribute__((noinline)) void wg_output(float *out, int accumulate, const float *bias, const float *Mb, const wg_group *grs, int nv,
                      int co0, int mmax, const wg_geom *g) {
    const int W = g->W;
    const size_t HW = (size_t)g->H * W;
    const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (int m = 0; m < mmax; m++) {
        const int co = co0 + m;
        const __m512 bv = _mm512_set1_ps(!accumulate && bias ? bias[co] : 0.0f);
        for (int j = 0; j < nv; j++) {
            const wg_group *gr = &grs[j];
            const float *src = Mb + (size_t)m * WG_NS + 16 * j;
            __m512 s[4][2];
            for (int i = 0; i < 4; i++) { /* s = M A, row i */
                const __m512 m0 = _mm512_loadu_ps(src + (size_t)(4 * i + 0) * WG_MR * WG_NS);
                const __m512 m1 = _mm512_loadu_ps(src + (size_t)(4 * i + 1) * WG_MR * WG_NS);
                const __m512 m2 = _mm512_loadu_ps(src + (size_t)(4 * i + 2) * WG_MR * WG_NS);
                const __m512 m3 = _mm512_loadu_ps(src + (size_t)(4 * i + 3) * WG_MR * WG_NS);
                s[i][0] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                s[i][1] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            __m512 y[2][2];
            for (int c = 0; c < 2; c++) {
                y[0][c] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[0][c], s[1][c]), s[2][c]), bv);
                y[1][c] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[1][c], s[2][c]), s[3][c]), bv);
            }
            if (gr->fast) {
                float *o = out + gr->out_off + (ptrdiff_t)((size_t)co * HW);
                for (int r = 0; r < 2; r++, o += W) {
                    if (r == 1 && !(gr->rows & 16)) break;
                    __m512 lo = _mm512_permutex2var_ps(y[r][0], ilo, y[r][1]);
                    __m512 hi = _mm512_permutex2var_ps(y[r][0], ihi, y[r][1]);
                    if (accumulate) {
                        lo = _mm512_add_ps(_mm512_maskz_loadu_ps(gr->sm[0], o), lo);
                        hi = _mm512_add_ps(_mm512_maskz_loadu_ps(gr->sm[1], o + 16), hi);
                    }
                    _mm512_mask_storeu_ps(o, gr->sm[0], lo);
                    _mm512_mask_storeu_ps(o + 16, gr->sm[1], hi);
                }
            } else {
                float yv[4][16] __attribute__((aligned(64)));
                _mm512_store_ps(yv[0], y[0][0]);
                _mm512_store_ps(yv[1], y[0][1]);
                _mm512_store_ps(yv[2], y[1][0]);
                _mm512_store_ps(yv[3], y[1][1]);
                for (int l = 0; l < 16; l++) {
                    if (gr->lane_out[l] < 0) continue;
                    float *o = out + gr->lane_out[l] + (ptrdiff_t)((size_t)co * HW);
                    const int fl = gr->lane_fl[l];
                    if (accumulate) {
                        o[0] += yv[0][l];
                        if (fl & 1) o[1] += yv[1][l];
                        if (fl & 2) o[W] += yv[2][l];
                        if ((fl & 3) == 3) o[W + 1] += yv[3][l];
                    } else {
                        o[0] = yv[0][l];
                        if (fl & 1) o[1] = yv[1][l];
                        if (fl & 2) o[W] = yv[2][l];
                        if ((fl & 3) == 3) o[W + 1] = yv[3][l];
                    }
                }
            }
        }
    }
}

void wino_conv3x3(float *out, int accumulate, const float *in, const float *w, int flip, const float *bias, int B,
                  int Cin, int Cout, int H, int W, float *scratch) {
    wg_geom g;
    g.B = B, g.Cin = Cin, g.Cout = Cout, g.H = H, g.W = W;
    g.tw = (W + 1) / 2;
    g.nt = ((H + 1) / 2) * g.tw;
    g.total = (long)B * g.nt;
    g.NT = wg_block_tiles(Cin);
    g.KS = wg_ks_floats(Cin);
    const int nb = (Cout + WG_MR - 1) / WG_MR;
    const long ntask = (g.total + g.NT - 1) / g.NT;
    float *Upk = scratch, *thr = scratch + wg_u_floats(Cin, Cout);
    const size_t tf = wg_thread_floats(Cin);
    const wg_vlayout vl = {16 * g.KS, WG_NS, g.KS, 0, 16};
    const int bf = nn_use_bf16(), np = (Cin + 1) / 2;
    uint32_t *Ubf = (uint32_t *)(void *)(thr + (size_t)nn_threads() * tf);
#pragma omp parallel num_threads(nn_threads())
    {
        wg_weights(Upk, w, flip, Cin, Cout); /* omp for: ends with a barrier */
        if (bf) wg_weights_bf16(Ubf, Upk, Cin, Cout); /* likewise */
        float *V = thr + (size_t)omp_get_thread_num() * tf;
        float *Mb = V + (size_t)(g.NT / WG_NS) * 16 * g.KS; /* [16][WG_MR][WG_NS] */
        wg_group grs[WG_MAXNT / 16];
#pragma omp for schedule(static)
        for (long task = 0; task < ntask; task++) {
            const long t0 = task * g.NT;
            const int nvalid = g.total - t0 < g.NT ? (int)(g.total - t0) : g.NT;
            const int ng = (nvalid + 15) / 16;
            for (int gi = 0; gi < ng; gi++) wg_describe(&grs[gi], &g, t0 + 16 * gi, Cin, Cout);
            wg_input(V, &vl, in, grs, ng, 0, Cin, &g);
            if (bf)
                for (int s = 0; s < ng; s += 3)
                    for (int k = 0; k < 16; k++)
                        wg_v_bf16(V + (size_t)(s / 3) * 16 * g.KS + k * g.KS, Cin, ng - s < 3 ? ng - s : 3);
            for (int s = 0; s < ng; s += 3) {
                const int nv = ng - s < 3 ? ng - s : 3;
                for (int jb = 0; jb < nb; jb++) {
                    for (int k = 0; k < 16; k++) {
                        float *M = Mb + (size_t)k * WG_MR * WG_NS;
                        const float *Vk = V + (size_t)(s / 3) * 16 * g.KS + k * g.KS;
                        const float *Uk = Upk + ((size_t)k * nb + jb) * Cin * WG_MR;
                        if (bf) {
                            const uint32_t *Ub = Ubf + ((size_t)k * nb + jb) * np * WG_MR;
                            if (nv == 3) wg_gemm_bf3(M, Vk, Ub, np);
                            else if (nv == 2) wg_gemm_bf2(M, Vk, Ub, np);
                            else wg_gemm_bf1(M, Vk, Ub, np);
                        } else if (nv == 3) wg_gemm3(M, Vk, WG_NS, Uk, Cin);
                        else if (nv == 2) wg_gemm2(M, Vk, WG_NS, Uk, Cin);
                        else wg_gemm1(M, Vk, WG_NS, Uk, Cin);
                    }
                    const int mmax = Cout - jb * WG_MR < WG_MR ? Cout - jb * WG_MR : WG_MR;
                    wg_output(out, accumulate, bias, Mb, grs + s, nv, jb * WG_MR, mmax, &g);
                }
            }
        }
    }
}

/* ---- weight gradient by Winograd F(3x3, 2x2).
 * By the transposition principle, a tile's share of the weight gradient is
 *     dW_tile = G^T [ (A Y A^T) (.) (B^T d B) ] G
 * with Y the tile's 2x2 of dout, d its 4x4 input patch (the forward's V) and
 * A = (A^T)^T = [[1,0],[1,1],[1,-1],[0,-1]]. Summed over all tiles of all
 * samples: M_k [Cout][Cin] = sum_t Z_k[co][t] V_k[ci][t] with Z = A Y A^T
 * (16 GEMMs whose reduction runs over tiles), then dW = G^T M G.
 * Tiles go in chunks of TC: per chunk the threads first transform the input
 * (V [16][Cin][TC], split by channel) and dout (Z [16][TC][ldz], channels
 * contiguous, split by 16-channel group), then run the GEMMs split by
 * (k, 32-channel tile of Cout) into double accumulators M [16][Cin][ldz].
 * The micro-kernel keeps 9 input channels x 32 output channels (18 zmm):
 * per tile it loads 2 vectors of Z and broadcasts 9 values of V. Every M
 * entry sums the tiles in one fixed order, whatever the thread count. */
#define WD_BUDGET 24576 /* TC * (Cin + ldz): V and Z of a chunk take ~1.5 MB */
#define WD_CT 32        /* output channels per GEMM tile */
#define WD_KG 2         /* tasks: groups of 16 / WD_KG matrices k */

static int wd_ldz(int Cout) { return (Cout + 15) & ~15; }
static int wd_chunk(int Cin, int Cout) {
    int t = (WD_BUDGET / (Cin + wd_ldz(Cout))) & ~15;
    return t < 48 ? 48 : t > 768 ? 768 : t;
}
static size_t wd_vk(int Cin, int TC) { return (size_t)Cin * TC + 16; }
static size_t wd_zk(int Cout, int TC) { return (size_t)TC * wd_ldz(Cout) + 16; }

size_t wino_dweight_scratch_floats(int B, int Cin, int Cout, int H, int W) {
    const int TC = wd_chunk(Cin, Cout);
    return 2 * (size_t)16 * Cin * wd_ldz(Cout) + 16 * wd_vk(Cin, TC) + 16 * wd_zk(Cout, TC) +
           (size_t)B * H * W * wd_ldz(Cout);
}

/* In-register transpose of a 16 x 16 block: r[i][j] <- r[j][i]. */
static inline __attribute__((always_inline)) void tr16x16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
        t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xdd);
        t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
        t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
        r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
        r[4 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0x88);
        r[12 + i] = _mm512_shuffle_f32x4(t[4 + i], t[12 + i], 0xdd);
    }
}

/* GT[b*HW + p0 + j][co0 + i] = dout[b][co0 + i][p0 + j] for j < n positions,
 * zero for channels past Cout. */
static void wd_transpose(float *GT, int ldz, const float *dout, int b, int co0, size_t p0, int n, int Cout, size_t HW) {
    const __mmask16 pm = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    __m512 r[16];
    for (int i = 0; i < 16; i++)
        r[i] = co0 + i < Cout ? _mm512_maskz_loadu_ps(pm, dout + ((size_t)b * Cout + co0 + i) * HW + p0)
                              : _mm512_setzero_ps();
    tr16x16(r);
    float *dst = GT + ((size_t)b * HW + p0) * ldz + co0;
    for (int j = 0; j < n; j++) _mm512_storeu_ps(dst + (size_t)j * ldz, r[j]);
}

/* Z[k - 4 * i0][t][co], for the matrices k of rows i0..i1-1 of the 4x4, the
 * tiles t0 + t, t < n, and all ldz output channels: Z = A Y A^T of the
 * tile's 2x2 of dout (zero past the edges), read from the transposed dout
 * GT [B*H*W][ldz] (a tile reads 4 rows of GT, sequentially per tile row). */
static __attribute__((noinline)) void wd_ztransform(float *Z, size_t zk, int ldz, const float *GT, long t0, int n,
                                                    int i0, int i1, const wg_geom *g) {
    const int H = g->H, W = g->W;
    const size_t HW = (size_t)H * W;
    const __m512 zero = _mm512_setzero_ps();
    long b = t0 / g->nt;
    int r = (int)(t0 % g->nt), ty = r / g->tw, tx = r % g->tw;
    for (int t = 0; t < n; t++) {
        const float *p = GT + ((size_t)b * HW + (size_t)(2 * ty) * W + 2 * tx) * ldz;
        const int right = 2 * tx + 1 < W, below = 2 * ty + 1 < H;
        for (int co0 = 0; co0 < ldz; co0 += 16) {
            const __m512 y00 = _mm512_loadu_ps(p + co0);
            const __m512 y01 = right ? _mm512_loadu_ps(p + ldz + co0) : zero;
            const __m512 y10 = below ? _mm512_loadu_ps(p + (size_t)W * ldz + co0) : zero;
            const __m512 y11 = right && below ? _mm512_loadu_ps(p + (size_t)(W + 1) * ldz + co0) : zero;
            /* A Y: rows (y00, y01), (y00 + y10, y01 + y11), (y00 - y10, y01 - y11), (-y10, -y11);
             * then each row (a, b) -> (a, a + b, a - b, -b) */
            const __m512 a[4][2] = {{y00, y01},
                                    {_mm512_add_ps(y00, y10), _mm512_add_ps(y01, y11)},
                                    {_mm512_sub_ps(y00, y10), _mm512_sub_ps(y01, y11)},
                                    {_mm512_sub_ps(zero, y10), _mm512_sub_ps(zero, y11)}};
            float *dst = Z + (size_t)t * ldz + co0;
            for (int i = i0; i < i1; i++) { /* matrices 4 * (i - i0) + j */
                float *di = dst + (size_t)4 * (i - i0) * zk;
                _mm512_storeu_ps(di, a[i][0]);
                _mm512_storeu_ps(di + zk, _mm512_add_ps(a[i][0], a[i][1]));
                _mm512_storeu_ps(di + 2 * zk, _mm512_sub_ps(a[i][0], a[i][1]));
                _mm512_storeu_ps(di + 3 * zk, _mm512_sub_ps(zero, a[i][1]));
            }
        }
        if (++tx == g->tw) {
            tx = 0;
            if (++ty == (H + 1) / 2) ty = 0, b++;
        }
    }
}

#define WDK_DECL(i) __m512 e##i##0 = z, e##i##1 = z
#define WDK_FMA(i)                                                   \
    do {                                                             \
        const __m512 vb = _mm512_set1_ps(v##i[t]);                   \
        e##i##0 = _mm512_fmadd_ps(vb, z0, e##i##0);                  \
        if (NV > 1) e##i##1 = _mm512_fmadd_ps(vb, z1, e##i##1);      \
    } while (0)
#define WDK_ADD1(i, j)                                                                                        \
    do {                                                                                                      \
        double *mm = m + (size_t)(i) * ldm + 16 * (j);                                                        \
        _mm512_storeu_pd(mm, _mm512_add_pd(_mm512_loadu_pd(mm), _mm512_cvtps_pd(_mm512_castps512_ps256(e##i##j)))); \
        _mm512_storeu_pd(mm + 8, _mm512_add_pd(_mm512_loadu_pd(mm + 8),                                       \
                                               _mm512_cvtps_pd(_mm256_castpd_ps(                              \
                                                   _mm512_extractf64x4_pd(_mm512_castps_pd(e##i##j), 1))))); \
    } while (0)
#define WDK_ADD(i)                                  \
    do {                                            \
        if ((i) < nci) {                            \
            WDK_ADD1(i, 0);                         \
            if (NV > 1) WDK_ADD1(i, 1);             \
        }                                           \
    } while (0)

/* m[i][co] (double, row stride ldm) += sum_{t < n} v[i * vs + t] * z[t * ldz + co]
 * (z = zp) for input channels i < nci <= 9 and 16 * NV output channels; the float sum
 * over t runs in order, then lands in the double once. */
static inline __attribute__((always_inline)) void wd_gemm(double *m, size_t ldm, const float *zp, int ldz, const float *v,
                                                          size_t vs, int n, int nci, const int NV) {
    const __m512 zz = _mm512_setzero_ps(), z = zz;
    const float *v0 = v, *v1 = v + (nci > 1 ? 1 : 0) * vs, *v2 = v + (nci > 2 ? 2 : 0) * vs;
    const float *v3 = v + (nci > 3 ? 3 : 0) * vs, *v4 = v + (nci > 4 ? 4 : 0) * vs, *v5 = v + (nci > 5 ? 5 : 0) * vs;
    const float *v6 = v + (nci > 6 ? 6 : 0) * vs, *v7 = v + (nci > 7 ? 7 : 0) * vs, *v8 = v + (nci > 8 ? 8 : 0) * vs;
    WDK_DECL(0); WDK_DECL(1); WDK_DECL(2);
    WDK_DECL(3); WDK_DECL(4); WDK_DECL(5);
    WDK_DECL(6); WDK_DECL(7); WDK_DECL(8);
    for (int t = 0; t < n; t++) {
        const __m512 z0 = _mm512_loadu_ps(zp + (size_t)t * ldz);
        const __m512 z1 = NV > 1 ? _mm512_loadu_ps(zp + (size_t)t * ldz + 16) : zz;
        WDK_FMA(0); WDK_FMA(1); WDK_FMA(2);
        WDK_FMA(3); WDK_FMA(4); WDK_FMA(5);
        WDK_FMA(6); WDK_FMA(7); WDK_FMA(8);
    }
    WDK_ADD(0); WDK_ADD(1); WDK_ADD(2);
    WDK_ADD(3); WDK_ADD(4); WDK_ADD(5);
    WDK_ADD(6); WDK_ADD(7); WDK_ADD(8);
}
static __attribute__((noinline)) void wd_gemm1(double *m, size_t ldm, const float *z, int ldz, const float *v, size_t vs,
                                               int n, int nci) {
    wd_gemm(m, ldm, z, ldz, v, vs, n, nci, 1);
}
static __attribute__((noinline)) void wd_gemm2(double *m, size_t ldm, const float *z, int ldz, const float *v, size_t vs,
                                               int n, int nci) {
    wd_gemm(m, ldm, z, ldz, v, vs, n, nci, 2);
}

/* ---- bf16 weight gradient (nn_use_bf16): the reduction runs over tiles, so
 * tiles pair up: word q of a V row holds bf16 of tiles 2q and 2q + 1, word
 * (q, co) of Z likewise (zero past tile n). In place, as wg_v_bf16. */
static WG_BF16_TARGET __attribute__((noinline)) void wd_v_bf16(float *V, size_t vs, int Cin, int n) {
    const int nq = (n + 1) / 2;
    for (int ci = 0; ci < Cin; ci++) {
        float *row = V + (size_t)ci * vs;
        for (int q0 = 0; q0 < nq; q0 += 16) {
            const int t0 = 2 * q0, left = n - t0;
            const __mmask16 m0 = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            const __mmask16 m1 = left >= 32 ? (__mmask16)0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
            /* tiles t0..t0+31 as bf16 in order; pairs (2q, 2q+1) are then adjacent words */
            const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, row + t0 + 16), _mm512_maskz_loadu_ps(m0, row + t0));
            const __mmask16 ms = nq - q0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nq - q0)) - 1);
            _mm512_mask_storeu_epi32(row + q0, ms, (__m512i)b);
        }
    }
}
static WG_BF16_TARGET __attribute__((noinline)) void wd_z_bf16(float *Z, int ldz, int n) {
    const int nq = (n + 1) / 2;
    for (int q = 0; q < nq; q++)
        for (int c = 0; c < ldz; c += 16) {
            const __m512 a = _mm512_loadu_ps(Z + (size_t)2 * q * ldz + c);
            const __m512 b = 2 * q + 1 < n ? _mm512_loadu_ps(Z + (size_t)(2 * q + 1) * ldz + c) : _mm512_setzero_ps();
            const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
            const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b));
            _mm512_storeu_si512(Z + (size_t)q * ldz + c, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
}
#define WDB_FMA(i)                                                                   \
    do {                                                                             \
        const __m512bh vb = (__m512bh)_mm512_set1_epi32(((const int *)v##i)[q]);     \
        e##i##0 = _mm512_dpbf16_ps(e##i##0, z0, vb);                                 \
        if (NV > 1) e##i##1 = _mm512_dpbf16_ps(e##i##1, z1, vb);                     \
    } while (0)
static inline WG_BF16_TARGET __attribute__((always_inline)) void wd_gemm_bf(double *m, size_t ldm, const float *zp, int ldz,
                                                                           const float *v, size_t vs, int nq, int nci,
                                                                           const int NV) {
    const __m512 z = _mm512_setzero_ps();
    const __m512bh zb = (__m512bh)_mm512_setzero_si512();
    const float *v0 = v, *v1 = v + (nci > 1 ? 1 : 0) * vs, *v2 = v + (nci > 2 ? 2 : 0) * vs;
    const float *v3 = v + (nci > 3 ? 3 : 0) * vs, *v4 = v + (nci > 4 ? 4 : 0) * vs, *v5 = v + (nci > 5 ? 5 : 0) * vs;
    const float *v6 = v + (nci > 6 ? 6 : 0) * vs, *v7 = v + (nci > 7 ? 7 : 0) * vs, *v8 = v + (nci > 8 ? 8 : 0) * vs;
    WDK_DECL(0); WDK_DECL(1); WDK_DECL(2);
    WDK_DECL(3); WDK_DECL(4); WDK_DECL(5);
    WDK_DECL(6); WDK_DECL(7); WDK_DECL(8);
    for (int q = 0; q < nq; q++) {
        const __m512bh z0 = (__m512bh)_mm512_loadu_si512(zp + (size_t)q * ldz);
        const __m512bh z1 = NV > 1 ? (__m512bh)_mm512_loadu_si512(zp + (size_t)q * ldz + 16) : zb;
        WDB_FMA(0); WDB_FMA(1); WDB_FMA(2);
        WDB_FMA(3); WDB_FMA(4); WDB_FMA(5);
        WDB_FMA(6); WDB_FMA(7); WDB_FMA(8);
    }
    WDK_ADD(0); WDK_ADD(1); WDK_ADD(2);
    WDK_ADD(3); WDK_ADD(4); WDK_ADD(5);
    WDK_ADD(6); WDK_ADD(7); WDK_ADD(8);
}
static WG_BF16_TARGET __attribute__((noinline)) void wd_gemm_bf1(double *m, size_t ldm, const float *z, int ldz, const float *v,
                                                                 size_t vs, int nq, int nci) {
    wd_gemm_bf(m, ldm, z, ldz, v, vs, nq, nci, 1);
}
static WG_BF16_TARGET __attribute__((noinline)) void wd_gemm_bf2(double *m, size_t ldm, const float *z, int ldz, const float *v,
                                                                 size_t vs, int nq, int nci) {
    wd_gemm_bf(m, ldm, z, ldz, v, vs, nq, nci, 2);
}

void wino_dweight3x3(float *dweight, const float *dout, const float *in, int B, int Cin, int Cout, int H, int W,
                     float *scratch) {
    wg_geom g;
    g.B = B, g.Cin = Cin, g.Cout = Cout, g.H = H, g.W = W;
    g.tw = (W + 1) / 2;
    g.nt = ((H + 1) / 2) * g.tw;
    g.total = (long)B * g.nt;
    g.NT = 0, g.KS = 0;
    const int ldz = wd_ldz(Cout), TC = wd_chunk(Cin, Cout), ncv = ldz / 16, ntile = (ldz + WD_CT - 1) / WD_CT;
    const size_t vk = wd_vk(Cin, TC), zk = wd_zk(Cout, TC), ldm = (size_t)ldz;
    const size_t HW = (size_t)H * W;
    const int np16 = (int)((HW + 15) / 16);
    const int bf = nn_use_bf16();
    double *M = (double *)(void *)scratch; /* [16][Cin][ldz] */
    float *Vc = scratch + 2 * (size_t)16 * Cin * ldz, *Zc = Vc + 16 * vk, *GT = Zc + 16 * zk;
    const long nchunk = (g.total + TC - 1) / TC;
#pragma omp parallel num_threads(nn_threads())
    {
        wg_group grs[768 / 16];
#pragma omp for schedule(static)
        for (int r = 0; r < 16 * Cin; r++) memset(M + (size_t)r * ldm, 0, ldm * sizeof(double));
#pragma omp for schedule(static)
        for (long it = 0; it < (long)B * np16 * ncv; it++) { /* GT = dout transposed, 16 x 16 blocks */
            const int cv = (int)(it % ncv), b = (int)(it / ncv / np16);
            const size_t p0 = (size_t)(it / ncv % np16) * 16;
            wd_transpose(GT, ldz, dout, b, 16 * cv, p0, HW - p0 < 16 ? (int)(HW - p0) : 16, Cout, HW);
        }
        /* WD_KG tasks, one per group of matrices k (rows of the 4x4): each
         * transforms every chunk itself, storing only its matrices, so what
         * it writes it reads back from its own cache, and no barrier is
         * needed between chunks */
#pragma omp for schedule(static)
        for (int kg = 0; kg < WD_KG; kg++) {
            const int i0 = kg * (4 / WD_KG), i1 = i0 + 4 / WD_KG, nk = 4 * (i1 - i0);
            float *Vt = Vc + (size_t)kg * nk * vk, *Zt = Zc + (size_t)kg * nk * zk;
            const wg_vlayout vl = {WG_NS, (size_t)TC, vk, 4 * i0, 4 * i1};
            for (long c = 0; c < nchunk; c++) { /* chunks in order */
                const long t0 = c * TC;
                const int n = g.total - t0 < TC ? (int)(g.total - t0) : TC, ng = (n + 15) / 16;
                for (int gi = 0; gi < ng; gi++) wg_describe(&grs[gi], &g, t0 + 16 * gi, Cin, Cout);
                wg_input(Vt, &vl, in, grs, ng, 0, Cin, &g);
                wd_ztransform(Zt, zk, ldz, GT, t0, n, i0, i1, &g);
                if (bf)
                    for (int kk = 0; kk < nk; kk++) {
                        wd_v_bf16(Vt + kk * vk, (size_t)TC, Cin, n);
                        wd_z_bf16(Zt + kk * zk, ldz, n);
                    }
                for (int kk = 0; kk < nk; kk++)
                    for (int jt = 0; jt < ntile; jt++) {
                        const int co0 = jt * WD_CT, nv = ldz - co0 >= 32 ? 2 : 1;
                        for (int ci0 = 0; ci0 < Cin; ci0 += 9) {
                            const int nci = Cin - ci0 < 9 ? Cin - ci0 : 9;
                            double *m = M + ((size_t)(4 * i0 + kk) * Cin + ci0) * ldm + co0;
                            const float *z = Zt + kk * zk + co0, *v = Vt + kk * vk + (size_t)ci0 * TC;
                            if (bf && nv == 2) wd_gemm_bf2(m, ldm, z, ldz, v, (size_t)TC, (n + 1) / 2, nci);
                            else if (bf) wd_gemm_bf1(m, ldm, z, ldz, v, (size_t)TC, (n + 1) / 2, nci);
                            else if (nv == 2) wd_gemm2(m, ldm, z, ldz, v, (size_t)TC, n, nci);
                            else wd_gemm1(m, ldm, z, ldz, v, (size_t)TC, n, nci);
                        }
                    }
            }
        }
        /* dW[co][ci] += G^T M G, G^T = [[1, .5, .5, 0], [0, .5, -.5, 0], [0, .5, .5, 1]],
         * in double for 8 output channels at once */
        const int nco8 = (Cout + 7) / 8;
#pragma omp for schedule(static)
        for (int it = 0; it < nco8 * Cin; it++) {
            const int co0 = (it / Cin) * 8, ci = it % Cin, nco = Cout - co0 < 8 ? Cout - co0 : 8;
            const __m512d h = _mm512_set1_pd(0.5);
            __m512d mm[4][4], gm[3][4];
            for (int k = 0; k < 16; k++) mm[k / 4][k % 4] = _mm512_loadu_pd(M + ((size_t)k * Cin + ci) * ldm + co0);
            for (int j = 0; j < 4; j++) {
                const __m512d s12 = _mm512_mul_pd(h, _mm512_add_pd(mm[1][j], mm[2][j]));
                gm[0][j] = _mm512_add_pd(mm[0][j], s12);
                gm[1][j] = _mm512_mul_pd(h, _mm512_sub_pd(mm[1][j], mm[2][j]));
                gm[2][j] = _mm512_add_pd(s12, mm[3][j]);
            }
            float res[9][8];
            for (int a = 0; a < 3; a++) {
                const __m512d s12 = _mm512_mul_pd(h, _mm512_add_pd(gm[a][1], gm[a][2]));
                _mm256_storeu_ps(res[3 * a + 0], _mm512_cvtpd_ps(_mm512_add_pd(gm[a][0], s12)));
                _mm256_storeu_ps(res[3 * a + 1], _mm512_cvtpd_ps(_mm512_mul_pd(h, _mm512_sub_pd(gm[a][1], gm[a][2]))));
                _mm256_storeu_ps(res[3 * a + 2], _mm512_cvtpd_ps(_mm512_add_pd(s12, gm[a][3])));
            }
            for (int m = 0; m < nco; m++) {
                float *dw = dweight + ((size_t)(co0 + m) * Cin + ci) * 9;
                for (int t = 0; t < 9; t++) dw[t] += res[t][m];
            }
        }
    }
}

#elif defined(__AVX2__) && defined(__FMA__)
/*
 * AVX2 + FMA version (e.g. AMD Zen 2/3): the same method, blocking and
 * determinism argument as the AVX-512 code above, retuned for 8-lane ymm and
 * 16 registers:
 *  - a lane group is 8 consecutive tiles; a "fast" group (8 tiles in one tile
 *    row) reads each patch row with 4 plain loads (masked loads only where
 *    the patch crosses the left/right image edge) and deinterleaves them with
 *    shuffles. Only groups that wrap a tile row (images narrower than 16
 *    pixels) use gathers, which are slow on AMD.
 *  - the GEMM micro-kernel is 4 output channels x 24 tiles: 12 accumulators
 *    + 3 loads + 1 broadcast = 16 ymm. Per input channel that is 12 FMAs
 *    against 7 loads, so it stays FMA-bound; 4 divides every channel count
 *    of the U-Net (3 is the only exception: the final conv).
 *  - AVX2 masked stores are slow on AMD, so outputs are written with plain
 *    stores, and a group whose 16 output columns run past the right edge
 *    goes through a small buffer.
 *  - blocks are sized for a 512 KB L2 (Zen 3) rather than 2 MB.
 */
#include <immintrin.h>
#include <omp.h>

#define WG_MR 4       /* output channels per GEMM tile */
#define WG_NS 24      /* tiles per GEMM slice (3 ymm) */
#define WG_MAXNT 768  /* largest tile block */
#define WG_PF 2       /* input transform: prefetch distance in channels */
#define WG_VBUDGET (48 * 1024) /* floats of V per block: 192 KB of a 512 KB L2 */

int wino_supported(void) { return 1; }

/* Tiles per block: a multiple of the 24-tile slice, depending only on Cin
 * (so the blocking, hence every result, is independent of the thread count). */
static int wg_block_tiles(int Cin) {
    int s = WG_VBUDGET / (16 * WG_NS * (Cin > 0 ? Cin : 1));
    if (s < 1) s = 1;
    if (s > WG_MAXNT / WG_NS) s = WG_MAXNT / WG_NS;
    return s * WG_NS;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }
/* V is [NT / 24 slices][16 k][Cin][24 tiles]; one cache line of slack per V_k
 * so the 16 rows a transform writes do not share an L1 set. */
static size_t wg_ks_floats(int Cin) { return (size_t)WG_NS * Cin + 16; }
static size_t wg_u_floats(int Cin, int Cout) { return round16((size_t)16 * ((Cout + WG_MR - 1) / WG_MR) * WG_MR * Cin); }
static size_t wg_thread_floats(int Cin) {
    return (size_t)(wg_block_tiles(Cin) / WG_NS) * 16 * wg_ks_floats(Cin) + (size_t)16 * WG_MR * WG_NS;
}

size_t wino_scratch_floats(int Cin, int Cout) {
    return wg_u_floats(Cin, Cout) + (size_t)nn_threads() * wg_thread_floats(Cin);
}

/* Upk[k][jb][ci][m] = (G g G^T)[k / 4][k % 4] for g the 3x3 kernel of output
 * channel co = jb * 4 + m, input channel ci (zero for co >= Cout). Scalar:
 * it is O(Cin * Cout) work against the O(Cin * Cout * tiles) of the GEMMs,
 * and scalar reads avoid gathers. Runs as an omp for inside the caller's
 * region. */
static __attribute__((noinline)) void wg_weights(float *Upk, const float *w, int flip, int Cin, int Cout) {
    const int nb = (Cout + WG_MR - 1) / WG_MR;
    const size_t ks = (size_t)nb * Cin * WG_MR; /* floats per U_k */
#pragma omp for schedule(static)
    for (int jc = 0; jc < nb * Cin; jc++) {
        const int jb = jc / Cin, ci = jc % Cin;
        for (int m = 0; m < WG_MR; m++) {
            const int co = jb * WG_MR + m;
            float g[9], Gg[4][3];
            for (int t = 0; t < 9; t++)
                g[t] = co >= Cout ? 0.0f
                       : flip     ? w[((size_t)ci * Cout + co) * 9 + 8 - t]
                                  : w[((size_t)co * Cin + ci) * 9 + t];
            for (int c = 0; c < 3; c++) {
                Gg[0][c] = g[c];
                Gg[1][c] = 0.5f * ((g[c] + g[3 + c]) + g[6 + c]);
                Gg[2][c] = 0.5f * ((g[c] - g[3 + c]) + g[6 + c]);
                Gg[3][c] = g[6 + c];
            }
            float *dst = Upk + ((size_t)jb * Cin + ci) * WG_MR + m;
            for (int i = 0; i < 4; i++) {
                dst[(4 * i + 0) * ks] = Gg[i][0];
                dst[(4 * i + 1) * ks] = 0.5f * ((Gg[i][0] + Gg[i][1]) + Gg[i][2]);
                dst[(4 * i + 2) * ks] = 0.5f * ((Gg[i][0] - Gg[i][1]) + Gg[i][2]);
                dst[(4 * i + 3) * ks] = Gg[i][2];
            }
        }
    }
}

/* Lane l of a group of 8 consecutive tiles t0.. holds tile t0 + wg_perm[l]
 * (see deint_even). */
static const int wg_perm[8] = {0, 1, 4, 5, 2, 3, 6, 7}; /* its own inverse */

/* One group of 8 consecutive tiles. Masks are ymm integer lanes (-1 = in). */
typedef struct {
    __m256i lm[4];          /* fast: load masks at patch columns 0, 8, 2, 10 (used unless lfull) */
    __m256i rm[4], cm[4];   /* slow: per-lane masks of patch row r / column c inside the image */
    __m256i idx;            /* slow: per-lane offset of patch (0, 0) from in + in_off + ci * HW */
    ptrdiff_t in_off;       /* fast: offset of patch (0, 0) of lane 0 (sample b, channel 0); slow: sample b0 */
    ptrdiff_t out_off;      /* fast: offset of output (2ty, 2tx0) of lane 0 (channel 0) */
    ptrdiff_t lane_out[8];  /* slow: per-lane offset of output (2ty, 2tx), channel 0; -1 past the last tile */
    unsigned char lane_fl[8]; /* slow: bit 0 column 2tx+1 inside, bit 1 row 2ty+1 inside */
    int fast, rows;         /* fast: bit r set when patch row r is inside; bit 4: output row 2ty+1 inside */
    int lfull;              /* fast: all 18 patch columns inside: plain loads */
    int ocols;              /* fast: output columns inside, of the 16 at 2tx0.. */
} wg_group;

typedef struct {
    int B, Cin, Cout, H, W, tw, nt; /* nt: tiles per sample */
    long total;                     /* B * nt */
    int NT;                         /* tiles per block */
    size_t KS;                      /* floats of V per (slice, k) */
} wg_geom;

static __m256i span_mask(int s, int W) { /* lanes i with 0 <= s + i < W */
    const __m256i i = _mm256_add_epi32(_mm256_set1_epi32(s), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), i),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(W), i));
}

static __attribute__((noinline)) void wg_describe(wg_group *gr, const wg_geom *g, long t0, int Cin_stride, int Cout_stride) {
    const int H = g->H, W = g->W;
    const size_t HW = (size_t)H * W;
    const long b0 = t0 / g->nt;
    const int r0 = (int)(t0 % g->nt), ty0 = r0 / g->tw, tx0 = r0 % g->tw;
    memset(gr, 0, sizeof *gr);
    if (tx0 + 8 <= g->tw) { /* one tile row of one sample */
        const int iy = 2 * ty0 - 1, ix = 2 * tx0 - 1;
        gr->fast = 1;
        gr->in_off = (ptrdiff_t)((size_t)b0 * Cin_stride * HW) + (ptrdiff_t)iy * W + ix;
        gr->out_off = (ptrdiff_t)((size_t)b0 * Cout_stride * HW) + (ptrdiff_t)(2 * ty0) * W + 2 * tx0;
        for (int r = 0; r < 4; r++)
            if (iy + r >= 0 && iy + r < H) gr->rows |= 1 << r;
        if (2 * ty0 + 1 < H) gr->rows |= 16;
        gr->lfull = ix >= 0 && ix + 18 <= W;
        gr->lm[0] = span_mask(ix, W);
        gr->lm[1] = span_mask(ix + 8, W);
        gr->lm[2] = span_mask(ix + 2, W);
        gr->lm[3] = span_mask(ix + 10, W);
        gr->ocols = W - 2 * tx0 < 16 ? W - 2 * tx0 : 16;
        return;
    }
    int idx[8], rm[4][8], cm[4][8];
    gr->in_off = (ptrdiff_t)((size_t)b0 * Cin_stride * HW);
    for (int l = 0; l < 8; l++) {
        const long t = t0 + wg_perm[l];
        idx[l] = 0;
        gr->lane_out[l] = -1;
        for (int k = 0; k < 4; k++) rm[k][l] = cm[k][l] = 0;
        if (t >= g->total) continue;
        const long b = t / g->nt;
        const int r = (int)(t % g->nt), ty = r / g->tw, tx = r % g->tw;
        const int iy = 2 * ty - 1, ix = 2 * tx - 1;
        idx[l] = (int)((size_t)(b - b0) * Cin_stride * HW) + iy * W + ix;
        for (int k = 0; k < 4; k++) {
            rm[k][l] = iy + k >= 0 && iy + k < H ? -1 : 0;
            cm[k][l] = ix + k >= 0 && ix + k < W ? -1 : 0;
        }
        gr->lane_out[l] = (ptrdiff_t)((size_t)b * Cout_stride * HW) + (ptrdiff_t)(2 * ty) * W + 2 * tx;
        gr->lane_fl[l] = (unsigned char)((2 * tx + 1 < W ? 1 : 0) | (2 * ty + 1 < H ? 2 : 0));
    }
    gr->idx = _mm256_loadu_si256((const __m256i *)idx);
    for (int k = 0; k < 4; k++) {
        gr->rm[k] = _mm256_loadu_si256((const __m256i *)rm[k]);
        gr->cm[k] = _mm256_loadu_si256((const __m256i *)cm[k]);
    }
}

/* v = B^T d B for 8 patches at once (d[row][col], v[4 * i + j]). */
static inline __attribute__((always_inline)) void wg_tf_in(__m256 v[16], __m256 d[4][4]) {
    __m256 t[4][4];
    for (int r = 0; r < 4; r++) {
        t[r][0] = _mm256_sub_ps(d[r][0], d[r][2]);
        t[r][1] = _mm256_add_ps(d[r][1], d[r][2]);
        t[r][2] = _mm256_sub_ps(d[r][2], d[r][1]);
        t[r][3] = _mm256_sub_ps(d[r][1], d[r][3]);
    }
    for (int c = 0; c < 4; c++) {
        v[0 + c] = _mm256_sub_ps(t[0][c], t[2][c]);
        v[4 + c] = _mm256_add_ps(t[1][c], t[2][c]);
        v[8 + c] = _mm256_sub_ps(t[2][c], t[1][c]);
        v[12 + c] = _mm256_sub_ps(t[1][c], t[3][c]);
    }
}

/* Even and odd elements of the 16 floats (a, b), by one in-lane shuffle
 * each. That leaves them in the order 0 1 4 5 2 3 6 7 (of 8), and rather
 * than pay a cross-lane permute per vector to fix it, lane l of a group holds
 * tile wg_perm[l] (the same order): the output transform's unpacklo/hi then
 * interleaves straight back to consecutive columns, the gather path indexes
 * lanes the same way, and the weight gradient stores Z in that order. */
static inline __attribute__((always_inline)) __m256 deint_even(__m256 a, __m256 b) {
    return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
}
static inline __attribute__((always_inline)) __m256 deint_odd(__m256 a, __m256 b) {
    return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
}

/* The transforms of input channels [ci0, ci1) for the ng groups of a block:
 * group gi, channel ci, matrix k in [k0, k1) goes to V + (gi / 3) * ss +
 * (gi % 3) * 8 + ci * cs + (k - k0) * ks (three groups make a 24-tile GEMM
 * slice). */
typedef struct {
    size_t ss, cs, ks;
    int k0, k1;
} wg_vlayout;
static __attribute__((noinline)) void wg_input(float *V, const wg_vlayout *L, const float *in, const wg_group *grs, int ng,
                                               int ci0, int ci1, const wg_geom *g) {
    const int Cin = g->Cin, W = g->W;
    const size_t HW = (size_t)g->H * W;
    const __m256 z = _mm256_setzero_ps();
    for (int ci = ci0; ci < ci1; ci++) {
        for (int gi = 0; gi < ng; gi++) {
            const wg_group *gr = &grs[gi];
            __m256 d[4][4], v[16];
            if (gr->fast) {
                const float *p = in + gr->in_off + (ptrdiff_t)(ci * HW);
                if (ci + WG_PF < Cin) /* the same rows WG_PF channels ahead: they come from memory */
                    for (int r = 0; r < 4; r++)
                        if (gr->rows >> r & 1) _mm_prefetch((const char *)(p + (ptrdiff_t)(WG_PF * HW) + (ptrdiff_t)r * W), _MM_HINT_T0);
                for (int r = 0; r < 4; r++) {
                    if (!(gr->rows >> r & 1)) {
                        d[r][0] = d[r][1] = d[r][2] = d[r][3] = z;
                        continue;
                    }
                    const float *q = p + (ptrdiff_t)r * W;
                    __m256 a0, a1, b0, b1;
                    if (gr->lfull) {
                        a0 = _mm256_loadu_ps(q), a1 = _mm256_loadu_ps(q + 8);
                        b0 = _mm256_loadu_ps(q + 2), b1 = _mm256_loadu_ps(q + 10);
                    } else { /* masked-off lanes read nothing, so q may point before the image */
                        a0 = _mm256_maskload_ps(q, gr->lm[0]), a1 = _mm256_maskload_ps(q + 8, gr->lm[1]);
                        b0 = _mm256_maskload_ps(q + 2, gr->lm[2]), b1 = _mm256_maskload_ps(q + 10, gr->lm[3]);
                    }
                    d[r][0] = deint_even(a0, a1);
                    d[r][1] = deint_odd(a0, a1);
                    d[r][2] = deint_even(b0, b1);
                    d[r][3] = deint_odd(b0, b1);
                }
            } else {
                const float *base = in + gr->in_off + (ptrdiff_t)(ci * HW);
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 4; c++)
                        d[r][c] = _mm256_mask_i32gather_ps(z, base, _mm256_add_epi32(gr->idx, _mm256_set1_epi32(r * W + c)),
                                                           _mm256_castsi256_ps(_mm256_and_si256(gr->rm[r], gr->cm[c])), 4);
            }
            wg_tf_in(v, d);
            float *dst = V + (size_t)(gi / 3) * L->ss + (size_t)(gi % 3) * 8 + (size_t)ci * L->cs;
            for (int k = L->k0; k < L->k1; k++) _mm256_storeu_ps(dst + (k - L->k0) * L->ks, v[k]);
        }
    }
}

/* M[m][8 * j + lane] (row stride WG_NS) = sum_ci u[ci][m] * V[ci * vs + 8 * j + lane], j < NV.
 * The sum runs over ci in order in each lane, the same for every NV. */
#define WK_DECL(m) __m256 c##m##0 = z, c##m##1 = z, c##m##2 = z
#define WK_FMA(m)                                                     \
    do {                                                              \
        const __m256 wb = _mm256_broadcast_ss(u + (m));               \
        c##m##0 = _mm256_fmadd_ps(wb, x0, c##m##0);                   \
        if (NV > 1) c##m##1 = _mm256_fmadd_ps(wb, x1, c##m##1);       \
        if (NV > 2) c##m##2 = _mm256_fmadd_ps(wb, x2, c##m##2);       \
    } while (0)
#define WK_STORE(m)                                                   \
    do {                                                              \
        _mm256_storeu_ps(M + (m) * WG_NS, c##m##0);                   \
        if (NV > 1) _mm256_storeu_ps(M + (m) * WG_NS + 8, c##m##1);   \
        if (NV > 2) _mm256_storeu_ps(M + (m) * WG_NS + 16, c##m##2);  \
    } while (0)

static inline __attribute__((always_inline)) void wg_gemm(float *M, const float *V, size_t vs, const float *U, int Cin,
                                                          const int NV) {
    const __m256 z = _mm256_setzero_ps();
    WK_DECL(0); WK_DECL(1); WK_DECL(2); WK_DECL(3);
    for (int ci = 0; ci < Cin; ci++) {
        const float *v = V + (size_t)ci * vs, *u = U + (size_t)ci * WG_MR;
        __m256 x0 = _mm256_loadu_ps(v);
        __m256 x1 = NV > 1 ? _mm256_loadu_ps(v + 8) : z;
        __m256 x2 = NV > 2 ? _mm256_loadu_ps(v + 16) : z;
        /* Pin x0..x2 in registers. Left alone, gcc folds the loads into the
         * FMAs (16 regs are all taken), so each V vector is loaded 4 times:
         * 16 loads per 12 FMAs, more than Zen 3's two 256-bit loads a cycle
         * sustain. Pinned: 7 loads per 12 FMAs, and the loop is FMA-bound. */
        __asm__("" : "+x"(x0), "+x"(x1), "+x"(x2));
        WK_FMA(0); WK_FMA(1); WK_FMA(2); WK_FMA(3);
    }
    WK_STORE(0); WK_STORE(1); WK_STORE(2); WK_STORE(3);
}
static __attribute__((noinline)) void wg_gemm1(float *M, const float *V, size_t vs, const float *U, int Cin) { wg_gemm(M, V, vs, U, Cin, 1); }
static __attribute__((noinline)) void wg_gemm2(float *M, const float *V, size_t vs, const float *U, int Cin) { wg_gemm(M, V, vs, U, Cin, 2); }
static __attribute__((noinline)) void wg_gemm3(float *M, const float *V, size_t vs, const float *U, int Cin) { wg_gemm(M, V, vs, U, Cin, 3); }

/* out (=, or +=) A^T M A (+ bias) for output channels co0 + m, m < mmax, and
 * the nv groups grs[0..nv) whose products are Mb[k][m][8 * j + lane]. */
static __attribute__((noinline)) void wg_output(float *out, int accumulate, const float *bias, const float *Mb, const wg_group *grs, int nv,
                      int co0, int mmax, const wg_geom *g) {
    const int W = g->W;
    const size_t HW = (size_t)g->H * W;
    for (int m = 0; m < mmax; m++) {
        const int co = co0 + m;
        const __m256 bv = _mm256_set1_ps(!accumulate && bias ? bias[co] : 0.0f);
        for (int j = 0; j < nv; j++) {
            const wg_group *gr = &grs[j];
            const float *src = Mb + (size_t)m * WG_NS + 8 * j;
            __m256 s[4][2];
            for (int i = 0; i < 4; i++) { /* s = M A, row i */
                const __m256 m0 = _mm256_loadu_ps(src + (size_t)(4 * i + 0) * WG_MR * WG_NS);
                const __m256 m1 = _mm256_loadu_ps(src + (size_t)(4 * i + 1) * WG_MR * WG_NS);
                const __m256 m2 = _mm256_loadu_ps(src + (size_t)(4 * i + 2) * WG_MR * WG_NS);
                const __m256 m3 = _mm256_loadu_ps(src + (size_t)(4 * i + 3) * WG_MR * WG_NS);
                s[i][0] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
                s[i][1] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
            }
            __m256 y[2][2];
            for (int c = 0; c < 2; c++) {
                y[0][c] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[0][c], s[1][c]), s[2][c]), bv);
                y[1][c] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s[1][c], s[2][c]), s[3][c]), bv);
            }
            if (gr->fast) {
                float *o = out + gr->out_off + (ptrdiff_t)((size_t)co * HW);
                for (int r = 0; r < 2; r++, o += W) {
                    if (r == 1 && !(gr->rows & 16)) break;
                    /* interleave columns 2tx and 2tx + 1 back into 16 consecutive outputs: with the
                     * lanes in tile order 0 1 4 5 2 3 6 7 these are tiles 0-3 and 4-7 */
                    __m256 lo = _mm256_unpacklo_ps(y[r][0], y[r][1]), hi = _mm256_unpackhi_ps(y[r][0], y[r][1]);
                    if (gr->ocols == 16) {
                        if (accumulate) {
                            lo = _mm256_add_ps(_mm256_loadu_ps(o), lo);
                            hi = _mm256_add_ps(_mm256_loadu_ps(o + 8), hi);
                        }
                        _mm256_storeu_ps(o, lo);
                        _mm256_storeu_ps(o + 8, hi);
                    } else { /* past the right edge: no masked stores (slow on AMD) */
                        float buf[16];
                        _mm256_storeu_ps(buf, lo);
                        _mm256_storeu_ps(buf + 8, hi);
                        if (accumulate)
                            for (int c = 0; c < gr->ocols; c++) o[c] += buf[c];
                        else
                            for (int c = 0; c < gr->ocols; c++) o[c] = buf[c];
                    }
                }
            } else {
                float yv[4][8];
                _mm256_storeu_ps(yv[0], y[0][0]);
                _mm256_storeu_ps(yv[1], y[0][1]);
                _mm256_storeu_ps(yv[2], y[1][0]);
                _mm256_storeu_ps(yv[3], y[1][1]);
                for (int l = 0; l < 8; l++) {
                    if (gr->lane_out[l] < 0) continue;
                    float *o = out + gr->lane_out[l] + (ptrdiff_t)((size_t)co * HW);
                    const int fl = gr->lane_fl[l];
                    if (accumulate) {
                        o[0] += yv[0][l];
                        if (fl & 1) o[1] += yv[1][l];
                        if (fl & 2) o[W] += yv[2][l];
                        if ((fl & 3) == 3) o[W + 1] += yv[3][l];
                    } else {
                        o[0] = yv[0][l];
                        if (fl & 1) o[1] = yv[1][l];
                        if (fl & 2) o[W] = yv[2][l];
                        if ((fl & 3) == 3) o[W + 1] = yv[3][l];
                    }
                }
            }
        }
    }
}

void wino_conv3x3(float *out, int accumulate, const float *in, const float *w, int flip, const float *bias, int B,
                  int Cin, int Cout, int H, int W, float *scratch) {
    wg_geom g;
    g.B = B, g.Cin = Cin, g.Cout = Cout, g.H = H, g.W = W;
    g.tw = (W + 1) / 2;
    g.nt = ((H + 1) / 2) * g.tw;
    g.total = (long)B * g.nt;
    g.NT = wg_block_tiles(Cin);
    g.KS = wg_ks_floats(Cin);
    const int nb = (Cout + WG_MR - 1) / WG_MR;
    const long ntask = (g.total + g.NT - 1) / g.NT;
    float *Upk = scratch, *thr = scratch + wg_u_floats(Cin, Cout);
    const size_t tf = wg_thread_floats(Cin);
    const wg_vlayout vl = {16 * g.KS, WG_NS, g.KS, 0, 16};
#pragma omp parallel num_threads(nn_threads())
    {
        wg_weights(Upk, w, flip, Cin, Cout); /* omp for: ends with a barrier */
        float *V = thr + (size_t)omp_get_thread_num() * tf;
        float *Mb = V + (size_t)(g.NT / WG_NS) * 16 * g.KS; /* [16][WG_MR][WG_NS] */
        wg_group grs[WG_MAXNT / 8];
#pragma omp for schedule(static)
        for (long task = 0; task < ntask; task++) {
            const long t0 = task * g.NT;
            const int nvalid = g.total - t0 < g.NT ? (int)(g.total - t0) : g.NT;
            const int ng = (nvalid + 7) / 8;
            for (int gi = 0; gi < ng; gi++) wg_describe(&grs[gi], &g, t0 + 8 * gi, Cin, Cout);
            wg_input(V, &vl, in, grs, ng, 0, Cin, &g);
            for (int s = 0; s < ng; s += 3) {
                const int nv = ng - s < 3 ? ng - s : 3;
                for (int jb = 0; jb < nb; jb++) {
                    for (int k = 0; k < 16; k++) {
                        float *M = Mb + (size_t)k * WG_MR * WG_NS;
                        const float *Vk = V + (size_t)(s / 3) * 16 * g.KS + k * g.KS;
                        const float *Uk = Upk + ((size_t)k * nb + jb) * Cin * WG_MR;
                        if (nv == 3) wg_gemm3(M, Vk, WG_NS, Uk, Cin);
                        else if (nv == 2) wg_gemm2(M, Vk, WG_NS, Uk, Cin);
                        else wg_gemm1(M, Vk, WG_NS, Uk, Cin);
                    }
                    const int mmax = Cout - jb * WG_MR < WG_MR ? Cout - jb * WG_MR : WG_MR;
                    wg_output(out, accumulate, bias, Mb, grs + s, nv, jb * WG_MR, mmax, &g);
                }
            }
        }
    }
}

/* ---- weight gradient by Winograd F(3x3, 2x2): the method of the AVX-512
 * version above. Differences: channels of Z are padded to 8 (ldz), the
 * transposes are 8 x 8, chunks are smaller (V and Z of a task's 8 matrices
 * ~384 KB for the 512 KB L2), and the micro-kernel keeps 6 input channels x
 * 16 output channels (12 ymm): per tile 2 loads of Z, 6 broadcasts of V,
 * 12 FMAs. */
#define WD_BUDGET 12288 /* TC * (Cin + ldz) */
#define WD_CT 16        /* output channels per GEMM tile */
#define WD_CI 6         /* input channels per GEMM tile */
#define WD_KG 2         /* tasks: groups of 16 / WD_KG matrices k */

static int wd_ldz(int Cout) { return (Cout + 7) & ~7; }
static int wd_chunk(int Cin, int Cout) { /* a multiple of 8 so lane groups start tile rows where they can */
    int t = (WD_BUDGET / (Cin + wd_ldz(Cout))) & ~7;
    return t < 32 ? 32 : t > 768 ? 768 : t;
}
static size_t wd_vk(int Cin, int TC) { return (size_t)Cin * TC + 16; }
static size_t wd_zk(int Cout, int TC) { return (size_t)TC * wd_ldz(Cout) + 16; }

size_t wino_dweight_scratch_floats(int B, int Cin, int Cout, int H, int W) {
    const int TC = wd_chunk(Cin, Cout);
    return 2 * (size_t)16 * Cin * wd_ldz(Cout) + 16 * wd_vk(Cin, TC) + 16 * wd_zk(Cout, TC) +
           (size_t)B * H * W * wd_ldz(Cout);
}

/* In-register transpose of an 8 x 8 block: r[i][j] <- r[j][i]. */
static inline __attribute__((always_inline)) void tr8x8(__m256 r[8]) {
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        s[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x20);
        r[4 + i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x31);
    }
}

/* GT[b*HW + p0 + j][co0 + i] = dout[b][co0 + i][p0 + j] for j < n positions,
 * zero for channels past Cout. */
static void wd_transpose(float *GT, int ldz, const float *dout, int b, int co0, size_t p0, int n, int Cout, size_t HW) {
    __m256 r[8];
    for (int i = 0; i < 8; i++) {
        const float *src = dout + ((size_t)b * Cout + co0 + i) * HW + p0;
        if (co0 + i >= Cout) r[i] = _mm256_setzero_ps();
        else if (n == 8) r[i] = _mm256_loadu_ps(src);
        else {
            float buf[8] = {0};
            for (int j = 0; j < n; j++) buf[j] = src[j];
            r[i] = _mm256_loadu_ps(buf);
        }
    }
    tr8x8(r);
    float *dst = GT + ((size_t)b * HW + p0) * ldz + co0;
    for (int j = 0; j < n; j++) _mm256_storeu_ps(dst + (size_t)j * ldz, r[j]);
}

/* Z[k - 4 * i0][p][co], for the matrices k of rows i0..i1-1 of the 4x4, the
 * tiles t0 + t, t < n, at p = the lane wg_perm gives t (as V has them), and
 * all ldz output channels: Z = A Y A^T of the tile's 2x2 of dout (zero past
 * the edges), read from the transposed dout GT [B*H*W][ldz]. Rows up to the
 * next multiple of 8 past n are zeroed, so the GEMM can run over whole groups. */
static __attribute__((noinline)) void wd_ztransform(float *Z, size_t zk, int ldz, const float *GT, long t0, int n,
                                                    int i0, int i1, const wg_geom *g) {
    const int H = g->H, W = g->W;
    const size_t HW = (size_t)H * W;
    const __m256 zero = _mm256_setzero_ps();
    long b = t0 / g->nt;
    int r = (int)(t0 % g->nt), ty = r / g->tw, tx = r % g->tw;
    for (int t = n; t < ((n + 7) & ~7); t++)
        for (int i = i0; i < i1; i++)
            for (int j = 0; j < 4; j++)
                memset(Z + (size_t)(4 * (i - i0) + j) * zk + (size_t)((t & ~7) + wg_perm[t & 7]) * ldz, 0, ldz * sizeof(float));
    for (int t = 0; t < n; t++) {
        const float *p = GT + ((size_t)b * HW + (size_t)(2 * ty) * W + 2 * tx) * ldz;
        const int right = 2 * tx + 1 < W, below = 2 * ty + 1 < H;
        for (int co0 = 0; co0 < ldz; co0 += 8) {
            const __m256 y00 = _mm256_loadu_ps(p + co0);
            const __m256 y01 = right ? _mm256_loadu_ps(p + ldz + co0) : zero;
            const __m256 y10 = below ? _mm256_loadu_ps(p + (size_t)W * ldz + co0) : zero;
            const __m256 y11 = right && below ? _mm256_loadu_ps(p + (size_t)(W + 1) * ldz + co0) : zero;
            /* A Y: rows (y00, y01), (y00 + y10, y01 + y11), (y00 - y10, y01 - y11), (-y10, -y11);
             * then each row (a, b) -> (a, a + b, a - b, -b) */
            const __m256 a[4][2] = {{y00, y01},
                                    {_mm256_add_ps(y00, y10), _mm256_add_ps(y01, y11)},
                                    {_mm256_sub_ps(y00, y10), _mm256_sub_ps(y01, y11)},
                                    {_mm256_sub_ps(zero, y10), _mm256_sub_ps(zero, y11)}};
            float *dst = Z + (size_t)((t & ~7) + wg_perm[t & 7]) * ldz + co0;
            for (int i = i0; i < i1; i++) { /* matrices 4 * (i - i0) + j */
                float *di = dst + (size_t)4 * (i - i0) * zk;
                _mm256_storeu_ps(di, a[i][0]);
                _mm256_storeu_ps(di + zk, _mm256_add_ps(a[i][0], a[i][1]));
                _mm256_storeu_ps(di + 2 * zk, _mm256_sub_ps(a[i][0], a[i][1]));
                _mm256_storeu_ps(di + 3 * zk, _mm256_sub_ps(zero, a[i][1]));
            }
        }
        if (++tx == g->tw) {
            tx = 0;
            if (++ty == (H + 1) / 2) ty = 0, b++;
        }
    }
}

#define WDK_DECL(i) __m256 e##i##0 = z, e##i##1 = z
#define WDK_FMA(i)                                                   \
    do {                                                             \
        const __m256 vb = _mm256_broadcast_ss(v##i + t);             \
        e##i##0 = _mm256_fmadd_ps(vb, z0, e##i##0);                  \
        if (NV > 1) e##i##1 = _mm256_fmadd_ps(vb, z1, e##i##1);      \
    } while (0)
#define WDK_ADD1(i, j)                                                                                      \
    do {                                                                                                    \
        double *mm = m + (size_t)(i) * ldm + 8 * (j);                                                       \
        _mm256_storeu_pd(mm, _mm256_add_pd(_mm256_loadu_pd(mm), _mm256_cvtps_pd(_mm256_castps256_ps128(e##i##j)))); \
        _mm256_storeu_pd(mm + 4, _mm256_add_pd(_mm256_loadu_pd(mm + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(e##i##j, 1)))); \
    } while (0)
#define WDK_ADD(i)                                  \
    do {                                            \
        if ((i) < nci) {                            \
            WDK_ADD1(i, 0);                         \
            if (NV > 1) WDK_ADD1(i, 1);             \
        }                                           \
    } while (0)

/* m[i][co] (double, row stride ldm) += sum_{t < n} v[i * vs + t] * z[t * ldz + co]
 * (z = zp) for input channels i < nci <= 6 and 8 * NV output channels; the float sum
 * over t runs in order, then lands in the double once. Rows i >= nci read row 0
 * and are dropped, so the loop has one shape. */
static inline __attribute__((always_inline)) void wd_gemm(double *m, size_t ldm, const float *zp, int ldz, const float *v,
                                                          size_t vs, int n, int nci, const int NV) {
    const __m256 zz = _mm256_setzero_ps(), z = zz;
    const float *v0 = v, *v1 = v + (nci > 1 ? 1 : 0) * vs, *v2 = v + (nci > 2 ? 2 : 0) * vs;
    const float *v3 = v + (nci > 3 ? 3 : 0) * vs, *v4 = v + (nci > 4 ? 4 : 0) * vs, *v5 = v + (nci > 5 ? 5 : 0) * vs;
    WDK_DECL(0); WDK_DECL(1); WDK_DECL(2);
    WDK_DECL(3); WDK_DECL(4); WDK_DECL(5);
    for (int t = 0; t < n; t++) {
        const __m256 z0 = _mm256_loadu_ps(zp + (size_t)t * ldz);
        const __m256 z1 = NV > 1 ? _mm256_loadu_ps(zp + (size_t)t * ldz + 8) : zz;
        WDK_FMA(0); WDK_FMA(1); WDK_FMA(2);
        WDK_FMA(3); WDK_FMA(4); WDK_FMA(5);
    }
    WDK_ADD(0); WDK_ADD(1); WDK_ADD(2);
    WDK_ADD(3); WDK_ADD(4); WDK_ADD(5);
}
static __attribute__((noinline)) void wd_gemm1(double *m, size_t ldm, const float *z, int ldz, const float *v, size_t vs,
                                               int n, int nci) {
    wd_gemm(m, ldm, z, ldz, v, vs, n, nci, 1);
}
static __attribute__((noinline)) void wd_gemm2(double *m, size_t ldm, const float *z, int ldz, const float *v, size_t vs,
                                               int n, int nci) {
    wd_gemm(m, ldm, z, ldz, v, vs, n, nci, 2);
}

void wino_dweight3x3(float *dweight, const float *dout, const float *in, int B, int Cin, int Cout, int H, int W,
                     float *scratch) {
    wg_geom g;
    g.B = B, g.Cin = Cin, g.Cout = Cout, g.H = H, g.W = W;
    g.tw = (W + 1) / 2;
    g.nt = ((H + 1) / 2) * g.tw;
    g.total = (long)B * g.nt;
    g.NT = 0, g.KS = 0;
    const int ldz = wd_ldz(Cout), TC = wd_chunk(Cin, Cout), ncv = ldz / 8, ntile = (ldz + WD_CT - 1) / WD_CT;
    const size_t vk = wd_vk(Cin, TC), zk = wd_zk(Cout, TC), ldm = (size_t)ldz;
    const size_t HW = (size_t)H * W;
    const int np8 = (int)((HW + 7) / 8);
    double *M = (double *)(void *)scratch; /* [16][Cin][ldz] */
    float *Vc = scratch + 2 * (size_t)16 * Cin * ldz, *Zc = Vc + 16 * vk, *GT = Zc + 16 * zk;
    const long nchunk = (g.total + TC - 1) / TC;
#pragma omp parallel num_threads(nn_threads())
    {
        wg_group grs[768 / 8];
#pragma omp for schedule(static)
        for (int r = 0; r < 16 * Cin; r++) memset(M + (size_t)r * ldm, 0, ldm * sizeof(double));
#pragma omp for schedule(static)
        for (long it = 0; it < (long)B * np8 * ncv; it++) { /* GT = dout transposed, 8 x 8 blocks */
            const int cv = (int)(it % ncv), b = (int)(it / ncv / np8);
            const size_t p0 = (size_t)(it / ncv % np8) * 8;
            wd_transpose(GT, ldz, dout, b, 8 * cv, p0, HW - p0 < 8 ? (int)(HW - p0) : 8, Cout, HW);
        }
        /* WD_KG tasks, one per group of matrices k (rows of the 4x4): each
         * transforms every chunk itself, storing only its matrices, so what
         * it writes it reads back from its own cache, and no barrier is
         * needed between chunks */
#pragma omp for schedule(static)
        for (int kg = 0; kg < WD_KG; kg++) {
            const int i0 = kg * (4 / WD_KG), i1 = i0 + 4 / WD_KG, nk = 4 * (i1 - i0);
            float *Vt = Vc + (size_t)kg * nk * vk, *Zt = Zc + (size_t)kg * nk * zk;
            const wg_vlayout vl = {WG_NS, (size_t)TC, vk, 4 * i0, 4 * i1};
            for (long c = 0; c < nchunk; c++) { /* chunks in order */
                const long t0 = c * TC;
                const int n = g.total - t0 < TC ? (int)(g.total - t0) : TC, ng = (n + 7) / 8;
                for (int gi = 0; gi < ng; gi++) wg_describe(&grs[gi], &g, t0 + 8 * gi, Cin, Cout);
                wg_input(Vt, &vl, in, grs, ng, 0, Cin, &g);
                wd_ztransform(Zt, zk, ldz, GT, t0, n, i0, i1, &g);
                for (int kk = 0; kk < nk; kk++)
                    for (int jt = 0; jt < ntile; jt++) {
                        const int co0 = jt * WD_CT, nv = ldz - co0 >= 16 ? 2 : 1;
                        for (int ci0 = 0; ci0 < Cin; ci0 += WD_CI) {
                            const int nci = Cin - ci0 < WD_CI ? Cin - ci0 : WD_CI;
                            double *m = M + ((size_t)(4 * i0 + kk) * Cin + ci0) * ldm + co0;
                            const float *z = Zt + kk * zk + co0, *v = Vt + kk * vk + (size_t)ci0 * TC;
                            if (nv == 2) wd_gemm2(m, ldm, z, ldz, v, (size_t)TC, 8 * ng, nci);
                            else wd_gemm1(m, ldm, z, ldz, v, (size_t)TC, 8 * ng, nci);
                        }
                    }
            }
        }
        /* dW[co][ci] += G^T M G, G^T = [[1, .5, .5, 0], [0, .5, -.5, 0], [0, .5, .5, 1]],
         * in double for 8 output channels at once (two ymm of 4): a task
         * reads one whole cache line from each of the 16 matrices, where one
         * channel at a time would touch 16 lines for every 9 outputs (the
         * lines are 1 KB+ apart, and this loop was 20% of the whole weight
         * gradient). Channels past Cout (up to ldz, zeroed by the memset
         * above) are computed and dropped. */
        const int nco8 = ldz / 8;
#pragma omp for schedule(static)
        for (int it = 0; it < nco8 * Cin; it++) {
            const int co0 = (it / Cin) * 8, ci = it % Cin, nco = Cout - co0 < 8 ? Cout - co0 : 8;
            const __m256d h = _mm256_set1_pd(0.5);
            float res[9][8];
            for (int half = 0; half < 2; half++) {
                __m256d mm[4][4], gm[3][4];
                for (int k = 0; k < 16; k++)
                    mm[k / 4][k % 4] = _mm256_loadu_pd(M + ((size_t)k * Cin + ci) * ldm + co0 + 4 * half);
                for (int j = 0; j < 4; j++) {
                    const __m256d s12 = _mm256_mul_pd(h, _mm256_add_pd(mm[1][j], mm[2][j]));
                    gm[0][j] = _mm256_add_pd(mm[0][j], s12);
                    gm[1][j] = _mm256_mul_pd(h, _mm256_sub_pd(mm[1][j], mm[2][j]));
                    gm[2][j] = _mm256_add_pd(s12, mm[3][j]);
                }
                for (int a = 0; a < 3; a++) {
                    const __m256d s12 = _mm256_mul_pd(h, _mm256_add_pd(gm[a][1], gm[a][2]));
                    _mm_storeu_ps(res[3 * a + 0] + 4 * half, _mm256_cvtpd_ps(_mm256_add_pd(gm[a][0], s12)));
                    _mm_storeu_ps(res[3 * a + 1] + 4 * half, _mm256_cvtpd_ps(_mm256_mul_pd(h, _mm256_sub_pd(gm[a][1], gm[a][2]))));
                    _mm_storeu_ps(res[3 * a + 2] + 4 * half, _mm256_cvtpd_ps(_mm256_add_pd(s12, gm[a][3])));
                }
            }
            for (int m = 0; m < nco; m++) {
                float *dw = dweight + ((size_t)(co0 + m) * Cin + ci) * 9;
                for (int t = 0; t < 9; t++) dw[t] += res[t][m];
            }
        }
    }
}

#else /* neither AVX-512 nor AVX2 + FMA: conv2d.c never takes this path */

int wino_supported(void) { return 0; }
size_t wino_scratch_floats(int Cin, int Cout) { return 0 * (size_t)(Cin + Cout); }
size_t wino_dweight_scratch_floats(int B, int Cin, int Cout, int H, int W) { return 0 * (size_t)(B + Cin + Cout + H + W); }
void wino_dweight3x3(float *dweight, const float *dout, const float *in, int B, int Cin, int Cout, int H, int W,
                     float *scratch) {
    (void)dweight, (void)dout, (void)in, (void)B, (void)Cin, (void)Cout, (void)H, (void)W, (void)scratch;
}
void wino_conv3x3(float *out, int accumulate, const float *in, const float *w, int flip, const float *bias, int B,
                  int Cin, int Cout, int H, int W, float *scratch) {
    (void)out, (void)accumulate, (void)in, (void)w, (void)flip, (void)bias, (void)B, (void)Cin, (void)Cout, (void)H,
        (void)W, (void)scratch;
}
#endif
