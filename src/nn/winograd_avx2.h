/*
 * winograd_avx2.h - the AVX2 + FMA micro-kernels of winograd.c (included by
 * it only; the drivers, tiling and threading are there), e.g. for AMD Zen 2/3:
 * the same method, blocking and determinism argument as the AVX-512 kernels,
 * retuned for 8-lane ymm and 16 registers:
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
 * Weight gradient: channels of Z are padded to 8 (ldz), the transposes are
 * 8 x 8, chunks are smaller (V and Z of a task's 8 matrices ~384 KB for the
 * 512 KB L2), and the micro-kernel keeps 6 input channels x 16 output
 * channels (12 ymm): per tile 2 loads of Z, 6 broadcasts of V, 12 FMAs.
 */
#include <immintrin.h>

#define WG_L       8           /* tiles per lane group (one ymm) */
#define WG_MR      4           /* output channels per GEMM tile */
#define WG_NS      24          /* tiles per GEMM slice (3 ymm) */
#define WG_MAXNT   768         /* largest tile block */
#define WG_PF      2           /* input transform: prefetch distance in channels */
#define WG_VBUDGET (48 * 1024) /* floats of V per block: 192 KB of a 512 KB L2 */
#define WG_BF16    0           /* no bf16 GEMMs */
#define WG_AMX     0           /* nor AMX tiles */

#define WD_BUDGET 12288 /* TC * (Cin + ldz) */
#define WD_CT     16    /* output channels per GEMM tile */
#define WD_CI     6     /* input channels per GEMM tile */
#define WD_TCMIN  32    /* fewest tiles per chunk */

typedef __m256 wg_vf;
static inline __attribute__((always_inline)) wg_vf wg_zero(void) { return _mm256_setzero_ps(); }
static inline __attribute__((always_inline)) wg_vf wg_set1(float a) { return _mm256_set1_ps(a); }
static inline __attribute__((always_inline)) wg_vf wg_loadu(const float *p) { return _mm256_loadu_ps(p); }
static inline __attribute__((always_inline)) void wg_storeu(float *p, wg_vf a) { _mm256_storeu_ps(p, a); }
static inline __attribute__((always_inline)) wg_vf wg_add(wg_vf a, wg_vf b) { return _mm256_add_ps(a, b); }
static inline __attribute__((always_inline)) wg_vf wg_sub(wg_vf a, wg_vf b) { return _mm256_sub_ps(a, b); }

/* Lane l of a group of 8 consecutive tiles t0.. holds tile t0 + wg_perm[l]
 * (see wg_load_row). */
static const int wg_perm[8] = {0, 1, 4, 5, 2, 3, 6, 7}; /* its own inverse */
static inline __attribute__((always_inline)) int wg_lane_tile(int l) { return wg_perm[l]; }

/* One group of 8 consecutive tiles. Masks are ymm integer lanes (-1 = in). */
typedef struct {
    __m256i lm[4];            /* fast: load masks at patch columns 0, 8, 2, 10 (used unless lfull) */
    __m256i rm[4], cm[4];     /* slow: per-lane masks of patch row r / column c inside the image */
    __m256i idx;              /* slow: per-lane offset of patch (0, 0) from in + in_off + ci * HW */
    ptrdiff_t in_off;         /* fast: offset of patch (0, 0) of lane 0 (sample b, channel 0); slow: sample b0 */
    ptrdiff_t out_off;        /* fast: offset of output (2ty, 2tx0) of lane 0 (channel 0) */
    ptrdiff_t lane_out[8];    /* slow: per-lane offset of output (2ty, 2tx), channel 0; -1 past the last tile */
    unsigned char lane_fl[8]; /* slow: bit 0 column 2tx+1 inside, bit 1 row 2ty+1 inside */
    int fast, rows;           /* fast: bit r set when patch row r is inside; bit 4: output row 2ty+1 inside */
    int lfull;                /* fast: all 18 patch columns inside: plain loads */
    int ocols;                /* fast: output columns inside, of the 16 at 2tx0.. */
} wg_group;

static __m256i wg_span_mask(int s, int W) { /* lanes i with 0 <= s + i < W */
    const __m256i i = _mm256_add_epi32(_mm256_set1_epi32(s), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), i),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(W), i));
}

/* A fast group: patch columns from ix, output columns from ox. */
static inline void wg_fast_masks(wg_group *gr, int ix, int ox, int W) {
    gr->lfull = ix >= 0 && ix + 18 <= W;
    gr->lm[0] = wg_span_mask(ix, W);
    gr->lm[1] = wg_span_mask(ix + 8, W);
    gr->lm[2] = wg_span_mask(ix + 2, W);
    gr->lm[3] = wg_span_mask(ix + 10, W);
    gr->ocols = W - ox < 16 ? W - ox : 16;
}

/* A slow group: idx[l] the lanes' patch offsets, bit l of rm[r] / cm[c] set
 * when lane l's patch row r / column c is inside. */
static inline void wg_slow_masks(wg_group *gr, const int *idx, const unsigned *rm, const unsigned *cm) {
    gr->idx = _mm256_loadu_si256((const __m256i *)idx);
    for (int k = 0; k < 4; k++) {
        int r[8], c[8];
        for (int l = 0; l < 8; l++) r[l] = rm[k] >> l & 1 ? -1 : 0, c[l] = cm[k] >> l & 1 ? -1 : 0;
        gr->rm[k] = _mm256_loadu_si256((const __m256i *)r);
        gr->cm[k] = _mm256_loadu_si256((const __m256i *)c);
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

/* Fast group, patch row at q (inside the image): its 4 columns d[0..3]. */
static inline __attribute__((always_inline)) void wg_load_row(wg_vf d[4], const wg_group *gr, const float *q) {
    __m256 a0, a1, b0, b1;
    if (gr->lfull) {
        a0 = _mm256_loadu_ps(q), a1 = _mm256_loadu_ps(q + 8);
        b0 = _mm256_loadu_ps(q + 2), b1 = _mm256_loadu_ps(q + 10);
    } else { /* masked-off lanes read nothing, so q may point before the image */
        a0 = _mm256_maskload_ps(q, gr->lm[0]), a1 = _mm256_maskload_ps(q + 8, gr->lm[1]);
        b0 = _mm256_maskload_ps(q + 2, gr->lm[2]), b1 = _mm256_maskload_ps(q + 10, gr->lm[3]);
    }
    d[0] = deint_even(a0, a1);
    d[1] = deint_odd(a0, a1);
    d[2] = deint_even(b0, b1);
    d[3] = deint_odd(b0, b1);
}
static inline __attribute__((always_inline)) void wg_prefetch_row(const float *q) {
    _mm_prefetch((const char *)q, _MM_HINT_T0);
}
/* Slow group: patch element (r, c) of every lane, zero outside the image. */
static inline __attribute__((always_inline)) wg_vf wg_gather(const wg_group *gr, const float *base, int r, int c,
                                                             int W) {
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, _mm256_add_epi32(gr->idx, _mm256_set1_epi32(r * W + c)),
                                    _mm256_castsi256_ps(_mm256_and_si256(gr->rm[r], gr->cm[c])), 4);
}

/* Fast group: one output row (columns interleaved from y0, y1) at o. */
static inline __attribute__((always_inline)) void wg_store_row(float *o, wg_vf y0, wg_vf y1, const wg_group *gr,
                                                               int accumulate) {
    /* interleave columns 2tx and 2tx + 1 back into 16 consecutive outputs: with the
     * lanes in tile order 0 1 4 5 2 3 6 7 these are tiles 0-3 and 4-7 */
    __m256 lo = _mm256_unpacklo_ps(y0, y1), hi = _mm256_unpackhi_ps(y0, y1);
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
                    : flip        ? w[((size_t)ci * Cout + co) * 9 + 8 - t]
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

/* M[m][8 * j + lane] (row stride WG_NS) = sum_ci u[ci][m] * V[ci * vs + 8 * j + lane], j < NV.
 * The sum runs over ci in order in each lane, the same for every NV. */
#define WK_DECL(m) __m256 c##m##0 = z, c##m##1 = z, c##m##2 = z
#define WK_FMA(m)                                                                                                      \
    do {                                                                                                               \
        const __m256 wb = _mm256_broadcast_ss(u + (m));                                                                \
        c##m##0 = _mm256_fmadd_ps(wb, x0, c##m##0);                                                                    \
        if (NV > 1) c##m##1 = _mm256_fmadd_ps(wb, x1, c##m##1);                                                        \
        if (NV > 2) c##m##2 = _mm256_fmadd_ps(wb, x2, c##m##2);                                                        \
    } while (0)
#define WK_STORE(m)                                                                                                    \
    do {                                                                                                               \
        _mm256_storeu_ps(M + (m)*WG_NS, c##m##0);                                                                      \
        if (NV > 1) _mm256_storeu_ps(M + (m)*WG_NS + 8, c##m##1);                                                      \
        if (NV > 2) _mm256_storeu_ps(M + (m)*WG_NS + 16, c##m##2);                                                     \
    } while (0)

static inline __attribute__((always_inline)) void wg_gemm(float *M, const float *V, size_t vs, const float *U, int Cin,
                                                          const int NV) {
    const __m256 z = _mm256_setzero_ps();
    WK_DECL(0);
    WK_DECL(1);
    WK_DECL(2);
    WK_DECL(3);
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
        WK_FMA(0);
        WK_FMA(1);
        WK_FMA(2);
        WK_FMA(3);
    }
    WK_STORE(0);
    WK_STORE(1);
    WK_STORE(2);
    WK_STORE(3);
}

/* ---- weight gradient */

/* Z stores tile t at the row its lane has in V (wg_perm within groups of 8). */
static inline __attribute__((always_inline)) size_t wd_zrow(int t) { return (size_t)((t & ~7) + wg_perm[t & 7]); }
/* Tiles the GEMM runs over for n in a chunk: whole groups of 8 (the rows past
 * n are zeroed). */
static inline __attribute__((always_inline)) int wd_gemm_tiles(int n) { return (n + 7) & ~7; }

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
        if (co0 + i >= Cout)
            r[i] = _mm256_setzero_ps();
        else if (n == 8)
            r[i] = _mm256_loadu_ps(src);
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

#define WDK_DECL(i) __m256 e##i##0 = z, e##i##1 = z
#define WDK_FMA(i)                                                                                                     \
    do {                                                                                                               \
        const __m256 vb = _mm256_broadcast_ss(v##i + t);                                                               \
        e##i##0 = _mm256_fmadd_ps(vb, z0, e##i##0);                                                                    \
        if (NV > 1) e##i##1 = _mm256_fmadd_ps(vb, z1, e##i##1);                                                        \
    } while (0)
#define WDK_ADD1(i, j)                                                                                                 \
    do {                                                                                                               \
        double *mm = m + (size_t)(i)*ldm + 8 * (j);                                                                    \
        _mm256_storeu_pd(mm, _mm256_add_pd(_mm256_loadu_pd(mm), _mm256_cvtps_pd(_mm256_castps256_ps128(e##i##j))));    \
        _mm256_storeu_pd(mm + 4,                                                                                       \
                         _mm256_add_pd(_mm256_loadu_pd(mm + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(e##i##j, 1))));  \
    } while (0)

/* m[i][co] (double, row stride ldm) += sum_{t < n} v[i * vs + t] * z[t * ldz + co]
 * (z = zp) for input channels i < nci <= 6 and 8 * NV output channels; the float sum
 * over t runs in order, then lands in the double once. Rows i >= nci read row 0
 * and are dropped, so the loop has one shape. */
static inline __attribute__((always_inline)) void wd_gemm(double *m, size_t ldm, const float *zp, int ldz,
                                                          const float *v, size_t vs, int n, int nci, const int NV) {
    const __m256 zz = _mm256_setzero_ps(), z = zz;
    const float *v0 = v, *v1 = WD_VROW(1), *v2 = WD_VROW(2);
    const float *v3 = WD_VROW(3), *v4 = WD_VROW(4), *v5 = WD_VROW(5);
    WDK_DECL(0);
    WDK_DECL(1);
    WDK_DECL(2);
    WDK_DECL(3);
    WDK_DECL(4);
    WDK_DECL(5);
    for (int t = 0; t < n; t++) {
        const __m256 z0 = _mm256_loadu_ps(zp + (size_t)t * ldz);
        const __m256 z1 = NV > 1 ? _mm256_loadu_ps(zp + (size_t)t * ldz + 8) : zz;
        WDK_FMA(0);
        WDK_FMA(1);
        WDK_FMA(2);
        WDK_FMA(3);
        WDK_FMA(4);
        WDK_FMA(5);
    }
    WDK_ADD(0);
    WDK_ADD(1);
    WDK_ADD(2);
    WDK_ADD(3);
    WDK_ADD(4);
    WDK_ADD(5);
}

/* res[3 * a + b][m] = (G^T M G)[a][b] for output channels co0 + m, m < 8, and
 * input channel ci, in double for 8 output channels at once (two ymm of 4). */
static inline __attribute__((always_inline)) void wd_finish(float res[9][8], const double *M, size_t ldm, int Cin,
                                                            int ci, int co0) {
    const __m256d h = _mm256_set1_pd(0.5);
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
            _mm_storeu_ps(res[3 * a + 1] + 4 * half,
                          _mm256_cvtpd_ps(_mm256_mul_pd(h, _mm256_sub_pd(gm[a][1], gm[a][2]))));
            _mm_storeu_ps(res[3 * a + 2] + 4 * half, _mm256_cvtpd_ps(_mm256_add_pd(s12, gm[a][3])));
        }
    }
}
