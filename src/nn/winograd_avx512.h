/*
 * winograd_avx512.h - the AVX-512 micro-kernels of winograd.c (included by it
 * only; the drivers, tiling and threading are there).
 *
 * A lane group is 16 consecutive tiles (one zmm): when they lie in one tile
 * row ("fast" group) the patches come from plain masked loads and a
 * deinterleave, otherwise (short rows, sample or row boundaries) from masked
 * gathers. The GEMM runs on 48-tile slices (8 output channels x 48 tiles in
 * 24 zmm accumulators, like conv2d_direct.c), and each 8 x 48 product is
 * transformed back to the output at once, so M stays in L1. Blocks are sized
 * for a 2 MB L2.
 *
 * The weight gradient's micro-kernel keeps 9 input channels x 32 output
 * channels (18 zmm): per tile it loads 2 vectors of Z and broadcasts 9
 * values of V.
 */
#include <immintrin.h>

#include "nn/amx.h"

#define WG_L       16          /* tiles per lane group (one zmm) */
#define WG_MR      8           /* output channels per GEMM tile */
#define WG_NS      48          /* tiles per GEMM slice (3 zmm) */
#define WG_MAXNT   768         /* largest tile block */
#define WG_PF      2           /* input transform: prefetch distance in channels */
#define WG_VBUDGET (96 * 1024) /* floats of V per block: 384 KB (L2 is 2 MB per core) */
#define WG_BF16    1           /* has the bf16 GEMMs (run only when nn_use_bf16) */

#define WD_BUDGET 24576 /* TC * (Cin + ldz): V and Z of a chunk take ~1.5 MB */
#define WD_CT     32    /* output channels per GEMM tile */
#define WD_CI     9     /* input channels per GEMM tile */
#define WD_TCMIN  48    /* fewest tiles per chunk */

typedef __m512 wg_vf;
static inline __attribute__((always_inline)) wg_vf wg_zero(void) { return _mm512_setzero_ps(); }
static inline __attribute__((always_inline)) wg_vf wg_set1(float a) { return _mm512_set1_ps(a); }
static inline __attribute__((always_inline)) wg_vf wg_loadu(const float *p) { return _mm512_loadu_ps(p); }
static inline __attribute__((always_inline)) void wg_storeu(float *p, wg_vf a) { _mm512_storeu_ps(p, a); }
static inline __attribute__((always_inline)) wg_vf wg_add(wg_vf a, wg_vf b) { return _mm512_add_ps(a, b); }
static inline __attribute__((always_inline)) wg_vf wg_sub(wg_vf a, wg_vf b) { return _mm512_sub_ps(a, b); }

/* Lane l of a group of consecutive tiles t0.. holds tile t0 + l. */
static inline __attribute__((always_inline)) int wg_lane_tile(int l) { return l; }

/* One group of 16 consecutive tiles. */
typedef struct {
    __m512i idx;               /* slow: per-lane offset of patch (0, 0) from in + in_off + ci * HW */
    ptrdiff_t in_off;          /* fast: offset of patch (0, 0) of lane 0 (sample b, channel 0); slow: sample b0 */
    ptrdiff_t out_off;         /* fast: offset of output (2ty, 2tx0) of lane 0 (channel 0) */
    ptrdiff_t lane_out[16];    /* slow: per-lane offset of output (2ty, 2tx), channel 0; -1 past the last tile */
    unsigned char lane_fl[16]; /* slow: bit 0 column 2tx+1 inside, bit 1 row 2ty+1 inside */
    __mmask16 lm[4];           /* fast: load masks at patch columns 0, 16, 2, 18 */
    __mmask16 rm[4], cm[4];    /* slow: per-lane masks of patch row r / column c inside the image */
    __mmask16 sm[2];           /* fast: store masks of output columns 2tx0 + 0..15, 16..31 */
    int fast, rows;            /* fast: bit r set when patch row r is inside; bit 4: output row 2ty+1 inside */
} wg_group;

static __mmask16 wg_span_mask(int s, int W) { /* bits i with 0 <= s + i < W */
    const int lo = s < 0 ? -s : 0, hi = W - s < 16 ? W - s : 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

/* A fast group: patch columns from ix, output columns from ox. */
static inline void wg_fast_masks(wg_group *gr, int ix, int ox, int W) {
    gr->lm[0] = wg_span_mask(ix, W);
    gr->lm[1] = wg_span_mask(ix + 16, W);
    gr->lm[2] = wg_span_mask(ix + 2, W);
    gr->lm[3] = wg_span_mask(ix + 18, W);
    gr->sm[0] = wg_span_mask(ox, W);
    gr->sm[1] = wg_span_mask(ox + 16, W);
}

/* A slow group: idx[l] the lanes' patch offsets, bit l of rm[r] / cm[c] set
 * when lane l's patch row r / column c is inside. */
static inline void wg_slow_masks(wg_group *gr, const int *idx, const unsigned *rm, const unsigned *cm) {
    gr->idx = _mm512_loadu_si512(idx);
    for (int k = 0; k < 4; k++) gr->rm[k] = (__mmask16)rm[k], gr->cm[k] = (__mmask16)cm[k];
}

/* Fast group, patch row at q (inside the image): its 4 columns d[0..3]. */
static inline __attribute__((always_inline)) void wg_load_row(wg_vf d[4], const wg_group *gr, const float *q) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 a0 = _mm512_maskz_loadu_ps(gr->lm[0], q), a1 = _mm512_maskz_loadu_ps(gr->lm[1], q + 16);
    const __m512 b0 = _mm512_maskz_loadu_ps(gr->lm[2], q + 2), b1 = _mm512_maskz_loadu_ps(gr->lm[3], q + 18);
    d[0] = _mm512_permutex2var_ps(a0, ev, a1);
    d[1] = _mm512_permutex2var_ps(a0, od, a1);
    d[2] = _mm512_permutex2var_ps(b0, ev, b1);
    d[3] = _mm512_permutex2var_ps(b0, od, b1);
}
static inline __attribute__((always_inline)) void wg_prefetch_row(const float *q) {
    _mm_prefetch((const char *)q, _MM_HINT_T0);
    _mm_prefetch((const char *)q + 64, _MM_HINT_T0);
}
/* Slow group: patch element (r, c) of every lane, zero outside the image. */
static inline __attribute__((always_inline)) wg_vf wg_gather(const wg_group *gr, const float *base, int r, int c,
                                                             int W) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), gr->rm[r] & gr->cm[c],
                                    _mm512_add_epi32(gr->idx, _mm512_set1_epi32(r * W + c)), base, 4);
}

/* Fast group: one output row (columns interleaved from y0, y1) at o. */
static inline __attribute__((always_inline)) void wg_store_row(float *o, wg_vf y0, wg_vf y1, const wg_group *gr,
                                                               int accumulate) {
    const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    __m512 lo = _mm512_permutex2var_ps(y0, ilo, y1);
    __m512 hi = _mm512_permutex2var_ps(y0, ihi, y1);
    if (accumulate) {
        lo = _mm512_add_ps(_mm512_maskz_loadu_ps(gr->sm[0], o), lo);
        hi = _mm512_add_ps(_mm512_maskz_loadu_ps(gr->sm[1], o + 16), hi);
    }
    _mm512_mask_storeu_ps(o, gr->sm[0], lo);
    _mm512_mask_storeu_ps(o + 16, gr->sm[1], hi);
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
        const float *base =
            flip ? w + ((size_t)ci0 * Cout + (size_t)jb * WG_MR) * 9 : w + ((size_t)jb * WG_MR * Cin + ci0) * 9;
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

/* M[m][16 * j + lane] (row stride WG_NS) = sum_ci u[ci][m] * V[ci * vs + 16 * j + lane], j < NV.
 * The sum runs over ci in order in each lane, the same for every NV. */
#define WK_DECL(m) __m512 c##m##0 = z, c##m##1 = z, c##m##2 = z
#define WK_FMA(m)                                                                                                      \
    do {                                                                                                               \
        const __m512 wb = _mm512_set1_ps(u[m]);                                                                        \
        c##m##0 = _mm512_fmadd_ps(wb, x0, c##m##0);                                                                    \
        if (NV > 1) c##m##1 = _mm512_fmadd_ps(wb, x1, c##m##1);                                                        \
        if (NV > 2) c##m##2 = _mm512_fmadd_ps(wb, x2, c##m##2);                                                        \
    } while (0)
#define WK_STORE(m)                                                                                                    \
    do {                                                                                                               \
        _mm512_storeu_ps(M + (m)*WG_NS, c##m##0);                                                                      \
        if (NV > 1) _mm512_storeu_ps(M + (m)*WG_NS + 16, c##m##1);                                                     \
        if (NV > 2) _mm512_storeu_ps(M + (m)*WG_NS + 32, c##m##2);                                                     \
    } while (0)

static inline __attribute__((always_inline)) void wg_gemm(float *M, const float *V, size_t vs, const float *U, int Cin,
                                                          const int NV) {
    const __m512 z = _mm512_setzero_ps();
    WK_DECL(0);
    WK_DECL(1);
    WK_DECL(2);
    WK_DECL(3);
    WK_DECL(4);
    WK_DECL(5);
    WK_DECL(6);
    WK_DECL(7);
    for (int ci = 0; ci < Cin; ci++) {
        const float *v = V + (size_t)ci * vs, *u = U + (size_t)ci * WG_MR;
        const __m512 x0 = _mm512_loadu_ps(v);
        const __m512 x1 = NV > 1 ? _mm512_loadu_ps(v + 16) : z;
        const __m512 x2 = NV > 2 ? _mm512_loadu_ps(v + 32) : z;
        WK_FMA(0);
        WK_FMA(1);
        WK_FMA(2);
        WK_FMA(3);
        WK_FMA(4);
        WK_FMA(5);
        WK_FMA(6);
        WK_FMA(7);
    }
    WK_STORE(0);
    WK_STORE(1);
    WK_STORE(2);
    WK_STORE(3);
    WK_STORE(4);
    WK_STORE(5);
    WK_STORE(6);
    WK_STORE(7);
}

/* ---- bf16 GEMMs (nn_use_bf16): U and V go to pairs of input channels,
 * word p of a row holding bf16(x[2p]) in its low and bf16(x[2p + 1]) in its
 * high half (zero past Cin), and vdpbf16ps adds both products to an fp32
 * accumulator lane. Compiled for AVX512-BF16 by target attribute only; run
 * only when the CPU has it. Per lane the sum still runs over channel pairs in
 * order, so the result does not depend on the thread count. */
#define WG_BF16_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))

/* Ubf[k][jb][p][m] from Upk[k][jb][ci][m]: rows 2p and 2p + 1 are 16
 * consecutive floats; interleave their bf16s by m. omp for. */
static WG_BF16_TARGET __attribute__((noinline)) void wg_weights_bf16(uint32_t *Ubf, const float *Upk, int Cin,
                                                                     int Cout) {
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

/* Row p of channel pairs of a V_k (wg_input_bf16): lane l holds the bf16 of
 * channel 2p's a[l] in its low half and of channel 2p + 1's b[l] in its high
 * half, rounded to nearest even (the operand layout of vdpbf16ps). */
static inline WG_BF16_TARGET __attribute__((always_inline)) void wg_store_pair(float *dst, __m512 a, __m512 b) {
    const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
    const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b));
    _mm512_storeu_si512(dst, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
}

#define WB_FMA(m)                                                                                                      \
    do {                                                                                                               \
        const __m512bh wb = (__m512bh)_mm512_set1_epi32((int)u[m]);                                                    \
        c##m##0 = _mm512_dpbf16_ps(c##m##0, x0, wb);                                                                   \
        if (NV > 1) c##m##1 = _mm512_dpbf16_ps(c##m##1, x1, wb);                                                       \
        if (NV > 2) c##m##2 = _mm512_dpbf16_ps(c##m##2, x2, wb);                                                       \
    } while (0)
static inline WG_BF16_TARGET __attribute__((always_inline)) void wg_gemm_bf(float *M, const float *V, const uint32_t *U,
                                                                            int np, const int NV) {
    const __m512 z = _mm512_setzero_ps();
    const __m512bh zb = (__m512bh)_mm512_setzero_si512();
    WK_DECL(0);
    WK_DECL(1);
    WK_DECL(2);
    WK_DECL(3);
    WK_DECL(4);
    WK_DECL(5);
    WK_DECL(6);
    WK_DECL(7);
    for (int p = 0; p < np; p++) {
        const float *v = V + (size_t)p * WG_NS;
        const uint32_t *u = U + (size_t)p * WG_MR;
        const __m512bh x0 = (__m512bh)_mm512_loadu_si512(v);
        const __m512bh x1 = NV > 1 ? (__m512bh)_mm512_loadu_si512(v + 16) : zb;
        const __m512bh x2 = NV > 2 ? (__m512bh)_mm512_loadu_si512(v + 32) : zb;
        WB_FMA(0);
        WB_FMA(1);
        WB_FMA(2);
        WB_FMA(3);
        WB_FMA(4);
        WB_FMA(5);
        WB_FMA(6);
        WB_FMA(7);
    }
    WK_STORE(0);
    WK_STORE(1);
    WK_STORE(2);
    WK_STORE(3);
    WK_STORE(4);
    WK_STORE(5);
    WK_STORE(6);
    WK_STORE(7);
}
static WG_BF16_TARGET __attribute__((noinline)) void wg_gemm_bf1(float *M, const float *V, const uint32_t *U, int np) {
    wg_gemm_bf(M, V, U, np, 1);
}
static WG_BF16_TARGET __attribute__((noinline)) void wg_gemm_bf2(float *M, const float *V, const uint32_t *U, int np) {
    wg_gemm_bf(M, V, U, np, 2);
}
static WG_BF16_TARGET __attribute__((noinline)) void wg_gemm_bf3(float *M, const float *V, const uint32_t *U, int np) {
    wg_gemm_bf(M, V, U, np, 3);
}

/* ---- AMX (nn_use_amx): the same GEMM M_k = U_k V_k on tiles. The B tiles
 * are V's pair rows as wg_input_bf16 writes them (16 pairs x 16 tiles, row
 * stride WG_NS words); the A tile is WG_MR rows of U in pairs along ci
 * (wg_weights_amx); three accumulator tiles of WG_MR x 16 cover the slice.
 * K runs in steps of 16 pairs: V's pair rows np..npp-1 (npp = np rounded up
 * to 16, within V_k's Cin rows since Cin >= 16) are zeroed once per call,
 * and U's past np are zero. Every M entry sums the pairs in one order. */
#define WG_AMX        1
#define WG_AMX_TARGET NN_AMX_TARGET

static int wg_npp(int Cin) { return (((Cin + 1) / 2) + 15) & ~15; }

/* Tiles 0..2: M (16 rows: two blocks of WG_MR channels); 3: U (16 rows);
 * 4..6: V (16 pair rows). Per thread. */
static WG_AMX_TARGET void wg_amx_config(void) {
    static const uint8_t rows[8] = {16, 16, 16, 16, 16, 16, 16, 0};
    nn_amx_configure(rows);
}
static WG_AMX_TARGET void wg_amx_release(void) { _tile_release(); }

/* Uamx[k][jb][m][p] (npp pairs per row) from Upk[k][jb][ci][m], jb < nb2 =
 * nb rounded up to even (rows of the block past nb zero), so that a 16-row
 * tile holds two blocks. omp for. */
static int wg_nb2(int Cout) { return (((Cout + WG_MR - 1) / WG_MR) + 1) & ~1; }
static WG_AMX_TARGET __attribute__((noinline)) void wg_weights_amx(uint32_t *Ua, const float *Upk, int Cin, int Cout) {
    const int nb = (Cout + WG_MR - 1) / WG_MR, nb2 = wg_nb2(Cout), npp = wg_npp(Cin);
    /* lane l of a row: pair p0 + l, whose two channels sit 2 WG_MR floats apart from the next pair's */
    const __m512i pair = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(2 * WG_MR));
#pragma omp for schedule(static)
    for (int kb = 0; kb < 16 * nb2; kb++) {
        const int k = kb / nb2, jb = kb % nb2;
        uint32_t *dst = Ua + (size_t)kb * WG_MR * npp;
        if (jb >= nb) { /* the odd block that pads a 16-row tile */
            memset(dst, 0, sizeof(uint32_t) * (size_t)WG_MR * npp);
            continue;
        }
        const float *src = Upk + ((size_t)k * nb + jb) * Cin * WG_MR;
        for (int p0 = 0; p0 < npp; p0 += 16) {
            /* channels 2p and 2p + 1 of the 16 pairs that exist (zero past Cin) */
            const int nlo = Cin - 2 * p0 <= 0 ? 0 : (Cin - 2 * p0 + 1) / 2,
                      nhi = Cin - 2 * p0 <= 1 ? 0 : (Cin - 2 * p0) / 2;
            const __mmask16 mlo = nlo >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nlo) - 1);
            const __mmask16 mhi = nhi >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nhi) - 1);
            const float *s0 = src + (size_t)2 * p0 * WG_MR;
            for (int m = 0; m < WG_MR; m++) {
                const __m512 lo = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mlo, pair, s0 + m, 4);
                const __m512 hi = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mhi, pair, s0 + WG_MR + m, 4);
                wg_store_pair((float *)(void *)(dst + (size_t)m * npp + p0), lo, hi);
            }
        }
    }
}

/* M[m][j] (row stride WG_NS) = sum_p U[m][p] . V[p][j] for m < 16 (two
 * blocks of WG_MR channels), j < 16 NV */
static WG_AMX_TARGET __attribute__((noinline)) void wg_gemm_amx(float *M, const float *V, const uint32_t *U, int npp,
                                                                int NV) {
    const size_t us = (size_t)npp * 4, vs = WG_NS * 4;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    for (int p = 0; p < npp; p += 16) {
        const float *v = V + (size_t)p * WG_NS;
        _tile_loadd(3, U + p, us);
        _tile_loadd(4, v, vs);
        _tile_dpbf16ps(0, 3, 4);
        if (NV > 1) {
            _tile_loadd(5, v + 16, vs);
            _tile_dpbf16ps(1, 3, 5);
        }
        if (NV > 2) {
            _tile_loadd(6, v + 32, vs);
            _tile_dpbf16ps(2, 3, 6);
        }
    }
    _tile_stored(0, M, vs);
    if (NV > 1) _tile_stored(1, M + 16, vs);
    if (NV > 2) _tile_stored(2, M + 32, vs);
}

/* ---- weight gradient */

/* Z stores tile t at row t. */
static inline __attribute__((always_inline)) size_t wd_zrow(int t) { return (size_t)t; }
/* Tiles the GEMM runs over for n in a chunk: exactly n. */
static inline __attribute__((always_inline)) int wd_gemm_tiles(int n) { return n; }

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

#define WDK_DECL(i) __m512 e##i##0 = z, e##i##1 = z
#define WDK_FMA(i)                                                                                                     \
    do {                                                                                                               \
        const __m512 vb = _mm512_set1_ps(v##i[t]);                                                                     \
        e##i##0 = _mm512_fmadd_ps(vb, z0, e##i##0);                                                                    \
        if (NV > 1) e##i##1 = _mm512_fmadd_ps(vb, z1, e##i##1);                                                        \
    } while (0)
#define WDK_ADD1(i, j)                                                                                                 \
    do {                                                                                                               \
        double *mm = m + (size_t)(i)*ldm + 16 * (j);                                                                   \
        _mm512_storeu_pd(mm, _mm512_add_pd(_mm512_loadu_pd(mm), _mm512_cvtps_pd(_mm512_castps512_ps256(e##i##j))));    \
        _mm512_storeu_pd(                                                                                              \
            mm + 8,                                                                                                    \
            _mm512_add_pd(_mm512_loadu_pd(mm + 8),                                                                     \
                          _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e##i##j), 1)))));   \
    } while (0)
/* v0..v8: the rows of input channels i < nci; rows i >= nci read row 0 and
 * are dropped, so the loop has one shape. */
#define WDK_ROWS                                                                                                       \
    const float *v0 = v, *v1 = WD_VROW(1), *v2 = WD_VROW(2);                                                           \
    const float *v3 = WD_VROW(3), *v4 = WD_VROW(4), *v5 = WD_VROW(5);                                                  \
    const float *v6 = WD_VROW(6), *v7 = WD_VROW(7), *v8 = WD_VROW(8)

/* m[i][co] (double, row stride ldm) += sum_{t < n} v[i * vs + t] * z[t * ldz + co]
 * (z = zp) for input channels i < nci <= 9 and 16 * NV output channels; the float sum
 * over t runs in order, then lands in the double once. */
static inline __attribute__((always_inline)) void wd_gemm(double *m, size_t ldm, const float *zp, int ldz,
                                                          const float *v, size_t vs, int n, int nci, const int NV) {
    const __m512 zz = _mm512_setzero_ps(), z = zz;
    WDK_ROWS;
    WDK_DECL(0);
    WDK_DECL(1);
    WDK_DECL(2);
    WDK_DECL(3);
    WDK_DECL(4);
    WDK_DECL(5);
    WDK_DECL(6);
    WDK_DECL(7);
    WDK_DECL(8);
    for (int t = 0; t < n; t++) {
        const __m512 z0 = _mm512_loadu_ps(zp + (size_t)t * ldz);
        const __m512 z1 = NV > 1 ? _mm512_loadu_ps(zp + (size_t)t * ldz + 16) : zz;
        WDK_FMA(0);
        WDK_FMA(1);
        WDK_FMA(2);
        WDK_FMA(3);
        WDK_FMA(4);
        WDK_FMA(5);
        WDK_FMA(6);
        WDK_FMA(7);
        WDK_FMA(8);
    }
    WDK_ADD(0);
    WDK_ADD(1);
    WDK_ADD(2);
    WDK_ADD(3);
    WDK_ADD(4);
    WDK_ADD(5);
    WDK_ADD(6);
    WDK_ADD(7);
    WDK_ADD(8);
}

/* ---- bf16 weight gradient (nn_use_bf16): the reduction runs over tiles, so
 * tiles pair up: word q of a V row holds bf16 of tiles 2q and 2q + 1, word
 * (q, co) of Z likewise (zero past tile n). winograd.c writes them so:
 * wd_input_bf16 through wd_store_tiles, wd_ztransform_bf16 through wg_store_pair. */
static inline WG_BF16_TARGET __attribute__((always_inline)) void wd_store_tiles(float *dst, __mmask16 live, __m512 v) {
    /* 16 tiles as bf16 in order (zero where live is clear): pairs (2q, 2q+1) are adjacent words */
    _mm256_storeu_si256((__m256i *)(void *)dst, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_mov_ps(live, v)));
}
#define WDB_FMA(i)                                                                                                     \
    do {                                                                                                               \
        const __m512bh vb = (__m512bh)_mm512_set1_epi32(((const int *)v##i)[q]);                                       \
        e##i##0 = _mm512_dpbf16_ps(e##i##0, z0, vb);                                                                   \
        if (NV > 1) e##i##1 = _mm512_dpbf16_ps(e##i##1, z1, vb);                                                       \
    } while (0)
static inline WG_BF16_TARGET __attribute__((always_inline)) void
wd_gemm_bf(double *m, size_t ldm, const float *zp, int ldz, const float *v, size_t vs, int nq, int nci, const int NV) {
    const __m512 z = _mm512_setzero_ps();
    const __m512bh zb = (__m512bh)_mm512_setzero_si512();
    WDK_ROWS;
    WDK_DECL(0);
    WDK_DECL(1);
    WDK_DECL(2);
    WDK_DECL(3);
    WDK_DECL(4);
    WDK_DECL(5);
    WDK_DECL(6);
    WDK_DECL(7);
    WDK_DECL(8);
    for (int q = 0; q < nq; q++) {
        const __m512bh z0 = (__m512bh)_mm512_loadu_si512(zp + (size_t)q * ldz);
        const __m512bh z1 = NV > 1 ? (__m512bh)_mm512_loadu_si512(zp + (size_t)q * ldz + 16) : zb;
        WDB_FMA(0);
        WDB_FMA(1);
        WDB_FMA(2);
        WDB_FMA(3);
        WDB_FMA(4);
        WDB_FMA(5);
        WDB_FMA(6);
        WDB_FMA(7);
        WDB_FMA(8);
    }
    WDK_ADD(0);
    WDK_ADD(1);
    WDK_ADD(2);
    WDK_ADD(3);
    WDK_ADD(4);
    WDK_ADD(5);
    WDK_ADD(6);
    WDK_ADD(7);
    WDK_ADD(8);
}
static WG_BF16_TARGET __attribute__((noinline)) void wd_gemm_bf1(double *m, size_t ldm, const float *z, int ldz,
                                                                 const float *v, size_t vs, int nq, int nci) {
    wd_gemm_bf(m, ldm, z, ldz, v, vs, nq, nci, 1);
}
static WG_BF16_TARGET __attribute__((noinline)) void wd_gemm_bf2(double *m, size_t ldm, const float *z, int ldz,
                                                                 const float *v, size_t vs, int nq, int nci) {
    wd_gemm_bf(m, ldm, z, ldz, v, vs, nq, nci, 2);
}

/* The weight gradient's GEMM on AMX: m[i][co] (double) += the fp32 sum over
 * tile pairs q < npp (a multiple of 16, zero past the chunk's tiles in V
 * and Z) of V row i's pair word q times Z's pair row q, for i < nci and
 * 16 NV output channels. V rows are A tiles (16 channels x 16 pairs, row
 * stride vs floats), Z's pair rows B tiles (stride ldz). Accumulators: tiles
 * 0 and 1 for a block of 16 channels, 2 and 3 (A tile 5) for the last
 * Cin % 16 of them (wd_amx_config), so no tile reads past Cin's rows. */
static WG_AMX_TARGET void wd_amx_config(int tail) {
    const uint8_t rows[8] = {16, 16, (uint8_t)tail, (uint8_t)tail, 16, (uint8_t)tail, 16, 16};
    nn_amx_configure(rows);
}

static WG_AMX_TARGET __attribute__((noinline)) void wd_gemm_amx(double *m, size_t ldm, const float *z, int ldz,
                                                                const float *v, size_t vs, int npp, int nci, int NV) {
    float acc[16 * 32] __attribute__((aligned(64)));
    const size_t vb = vs * 4, zb = (size_t)ldz * 4;
    /* C0, C1 += A x B0, B1 over the pairs; tile numbers are constants */
#define WD_AMX_PASS(C0, C1, A)                                                                                         \
    do {                                                                                                               \
        _tile_zero(C0);                                                                                                \
        _tile_zero(C1);                                                                                                \
        for (int p = 0; p < npp; p += 16) {                                                                            \
            const float *zp = z + (size_t)p * ldz;                                                                     \
            _tile_loadd(A, v + p, vb);                                                                                 \
            _tile_loadd(6, zp, zb);                                                                                    \
            _tile_dpbf16ps(C0, A, 6);                                                                                  \
            if (NV > 1) {                                                                                              \
                _tile_loadd(7, zp + 16, zb);                                                                           \
                _tile_dpbf16ps(C1, A, 7);                                                                              \
            }                                                                                                          \
        }                                                                                                              \
        _tile_stored(C0, acc, 128);                                                                                    \
        if (NV > 1) _tile_stored(C1, acc + 16, 128);                                                                   \
    } while (0)
    if (nci == 16)
        WD_AMX_PASS(0, 1, 4);
    else
        WD_AMX_PASS(2, 3, 5);
#undef WD_AMX_PASS
    for (int i = 0; i < nci; i++) {
        double *mm = m + (size_t)i * ldm;
        for (int j = 0; j < 16 * NV; j++) mm[j] += (double)acc[i * 32 + j];
    }
}

/* res[3 * a + b][m] = (G^T M G)[a][b] for output channels co0 + m, m < 8, and
 * input channel ci, G^T = [[1, .5, .5, 0], [0, .5, -.5, 0], [0, .5, .5, 1]],
 * in double for 8 output channels at once. */
static inline __attribute__((always_inline)) void wd_finish(float res[9][8], const double *M, size_t ldm, int Cin,
                                                            int ci, int co0) {
    const __m512d h = _mm512_set1_pd(0.5);
    __m512d mm[4][4], gm[3][4];
    for (int k = 0; k < 16; k++) mm[k / 4][k % 4] = _mm512_loadu_pd(M + ((size_t)k * Cin + ci) * ldm + co0);
    for (int j = 0; j < 4; j++) {
        const __m512d s12 = _mm512_mul_pd(h, _mm512_add_pd(mm[1][j], mm[2][j]));
        gm[0][j] = _mm512_add_pd(mm[0][j], s12);
        gm[1][j] = _mm512_mul_pd(h, _mm512_sub_pd(mm[1][j], mm[2][j]));
        gm[2][j] = _mm512_add_pd(s12, mm[3][j]);
    }
    for (int a = 0; a < 3; a++) {
        const __m512d s12 = _mm512_mul_pd(h, _mm512_add_pd(gm[a][1], gm[a][2]));
        _mm256_storeu_ps(res[3 * a + 0], _mm512_cvtpd_ps(_mm512_add_pd(gm[a][0], s12)));
        _mm256_storeu_ps(res[3 * a + 1], _mm512_cvtpd_ps(_mm512_mul_pd(h, _mm512_sub_pd(gm[a][1], gm[a][2]))));
        _mm256_storeu_ps(res[3 * a + 2], _mm512_cvtpd_ps(_mm512_add_pd(s12, gm[a][3])));
    }
}
