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
 * Within a task, WG_L consecutive tiles are one vector lane group (16 zmm or
 * 8 ymm lanes), read by plain loads when they lie in one tile row ("fast"
 * group) and by gathers otherwise. The GEMM runs on slices of WG_NS tiles
 * (three lane groups) and WG_MR output channels, and each product is
 * transformed back to the output at once, so M stays in L1.
 *
 * This file is the driver (tiling, threading, the transforms' loops), written
 * once; the micro-kernels (vector type, loads and masks, GEMMs, bf16) are in
 * winograd_avx512.h and winograd_avx2.h, one of which the build includes.
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

/* For the weight gradient's micro-kernels (wd_gemm): the row of input channel
 * i of the tile when i < nci, else row 0 (its sums are dropped, so the loop
 * has one shape); the double accumulation of rows i < nci (WDK_ADD1, per
 * instruction set). */
#define WD_VROW(i) (v + (nci > (i) ? (i) : 0) * vs)
#define WDK_ADD(i)                                                                                                     \
    do {                                                                                                               \
        if ((i) < nci) {                                                                                               \
            WDK_ADD1(i, 0);                                                                                            \
            if (NV > 1) WDK_ADD1(i, 1);                                                                                \
        }                                                                                                              \
    } while (0)

#if defined(__AVX512F__)
#include "nn/winograd_avx512.h"
#elif defined(__AVX2__) && defined(__FMA__)
#include "nn/winograd_avx2.h"
#endif

#if defined(WG_L)
#include <omp.h>

int wino_supported(void) { return 1; }
int wino_bf16_built(void) { return WG_BF16; }

/* Tiles per block: V [16][Cin][NT] of about WG_VBUDGET floats, a multiple of
 * the slice. Depends only on Cin (so the blocking, hence every result, is
 * independent of the thread count). */
static int wg_block_tiles(int Cin) {
    int s = WG_VBUDGET / (16 * WG_NS * (Cin > 0 ? Cin : 1));
    if (s < 1) s = 1;
    if (s > WG_MAXNT / WG_NS) s = WG_MAXNT / WG_NS;
    return s * WG_NS;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }
/* V is [NT / WG_NS slices][16 k][Cin][WG_NS tiles]: the GEMM of (slice, k)
 * reads one contiguous stream. Floats per V_k of a slice: one cache line more
 * than needed, so the 16 rows a transform writes do not share an L1 set. */
static size_t wg_ks_floats(int Cin) { return (size_t)WG_NS * Cin + 16; }
static size_t wg_u_floats(int Cin, int Cout) {
    return round16((size_t)16 * ((Cout + WG_MR - 1) / WG_MR) * WG_MR * Cin);
}
static size_t wg_thread_floats(int Cin) {
    return (size_t)(wg_block_tiles(Cin) / WG_NS) * 16 * wg_ks_floats(Cin) + (size_t)16 * 2 * WG_MR * WG_NS;
}

#if WG_AMX
static size_t wg_amx_u_words(int Cin, int Cout) { return (size_t)16 * wg_nb2(Cout) * WG_MR * wg_npp(Cin); }
#endif

size_t wino_scratch_floats(int Cin, int Cout) {
    return wg_u_floats(Cin, Cout) + (size_t)nn_threads() * wg_thread_floats(Cin)
#if WG_BF16
        + wg_u_floats(Cin + 1, Cout) / 2 + 16 /* the bf16 pairs of U (half of U's floats, bf16.c) */
#endif
#if WG_AMX
        + wg_amx_u_words(Cin, Cout) + 16 /* U's rows for the AMX tiles */
#endif
        ;
}

typedef struct {
    int B, Cin, Cout, H, W, tw, nt; /* nt: tiles per sample */
    long total;                     /* B * nt */
    int NT;                         /* tiles per block */
    size_t KS;                      /* floats of V per (slice, k) */
} wg_geom;

static wg_geom wg_geom_make(int B, int Cin, int Cout, int H, int W) {
    wg_geom g;
    g.B = B, g.Cin = Cin, g.Cout = Cout, g.H = H, g.W = W;
    g.tw = (W + 1) / 2;
    g.nt = ((H + 1) / 2) * g.tw;
    g.total = (long)B * g.nt;
    g.NT = 0, g.KS = 0;
    return g;
}

/* The group of WG_L consecutive tiles from t0. */
static __attribute__((noinline)) void wg_describe(wg_group *gr, const wg_geom *g, long t0, int Cin_stride,
                                                  int Cout_stride) {
    const int H = g->H, W = g->W;
    const size_t HW = (size_t)H * W;
    const long b0 = t0 / g->nt;
    const int r0 = (int)(t0 % g->nt), ty0 = r0 / g->tw, tx0 = r0 % g->tw;
    memset(gr, 0, sizeof *gr);
    if (tx0 + WG_L <= g->tw) { /* one tile row of one sample */
        const int iy = 2 * ty0 - 1, ix = 2 * tx0 - 1;
        gr->fast = 1;
        gr->in_off = (ptrdiff_t)((size_t)b0 * Cin_stride * HW) + (ptrdiff_t)iy * W + ix;
        gr->out_off = (ptrdiff_t)((size_t)b0 * Cout_stride * HW) + (ptrdiff_t)(2 * ty0) * W + 2 * tx0;
        for (int r = 0; r < 4; r++)
            if (iy + r >= 0 && iy + r < H) gr->rows |= 1 << r;
        if (2 * ty0 + 1 < H) gr->rows |= 16;
        wg_fast_masks(gr, ix, 2 * tx0, W);
        return;
    }
    int idx[WG_L];
    unsigned rm[4] = {0}, cm[4] = {0};
    gr->in_off = (ptrdiff_t)((size_t)b0 * Cin_stride * HW);
    for (int l = 0; l < WG_L; l++) {
        const long t = t0 + wg_lane_tile(l);
        idx[l] = 0;
        gr->lane_out[l] = -1;
        if (t >= g->total) continue;
        const long b = t / g->nt;
        const int r = (int)(t % g->nt), ty = r / g->tw, tx = r % g->tw;
        const int iy = 2 * ty - 1, ix = 2 * tx - 1;
        idx[l] = (int)((size_t)(b - b0) * Cin_stride * HW) + iy * W + ix;
        for (int k = 0; k < 4; k++) {
            if (iy + k >= 0 && iy + k < H) rm[k] |= 1u << l;
            if (ix + k >= 0 && ix + k < W) cm[k] |= 1u << l;
        }
        gr->lane_out[l] = (ptrdiff_t)((size_t)b * Cout_stride * HW) + (ptrdiff_t)(2 * ty) * W + 2 * tx;
        gr->lane_fl[l] = (unsigned char)((2 * tx + 1 < W ? 1 : 0) | (2 * ty + 1 < H ? 2 : 0));
    }
    wg_slow_masks(gr, idx, rm, cm);
}

/* v = B^T d B for WG_L patches at once (d[row][col], v[4 * i + j]). */
static inline __attribute__((always_inline)) void wg_tf_in(wg_vf v[16], wg_vf d[4][4]) {
    wg_vf t[4][4];
    for (int r = 0; r < 4; r++) {
        t[r][0] = wg_sub(d[r][0], d[r][2]);
        t[r][1] = wg_add(d[r][1], d[r][2]);
        t[r][2] = wg_sub(d[r][2], d[r][1]);
        t[r][3] = wg_sub(d[r][1], d[r][3]);
    }
    for (int c = 0; c < 4; c++) {
        v[0 + c] = wg_sub(t[0][c], t[2][c]);
        v[4 + c] = wg_add(t[1][c], t[2][c]);
        v[8 + c] = wg_sub(t[2][c], t[1][c]);
        v[12 + c] = wg_sub(t[1][c], t[3][c]);
    }
}

/* The GEMM micro-kernels (wg_gemm), one instance per number of lane groups. */
static __attribute__((noinline)) void wg_gemm1(float *M, const float *V, size_t vs, const float *U, int Cin) {
    wg_gemm(M, V, vs, U, Cin, 1);
}
static __attribute__((noinline)) void wg_gemm2(float *M, const float *V, size_t vs, const float *U, int Cin) {
    wg_gemm(M, V, vs, U, Cin, 2);
}
static __attribute__((noinline)) void wg_gemm3(float *M, const float *V, size_t vs, const float *U, int Cin) {
    wg_gemm(M, V, vs, U, Cin, 3);
}

/* The transforms of input channels [ci0, ci1) for the ng groups of a block:
 * group gi, channel ci, matrix k in [k0, k1) goes to V + (gi / 3) * ss +
 * (gi % 3) * WG_L + ci * cs + (k - k0) * ks (three groups make a GEMM slice). */
typedef struct {
    size_t ss, cs, ks;
    int k0, k1;
} wg_vlayout;
/* v = B^T d B of channel ci's patches for the WG_L tiles of group gr. */
static inline __attribute__((always_inline)) void wg_patch(wg_vf v[16], const wg_group *gr, const float *in, int ci,
                                                           const wg_geom *g) {
    const int Cin = g->Cin, W = g->W;
    const size_t HW = (size_t)g->H * W;
    const wg_vf z = wg_zero();
    wg_vf d[4][4];
    if (gr->fast) {
        const float *p = in + gr->in_off + (ptrdiff_t)(ci * HW);
        if (ci + WG_PF < Cin) /* the same rows WG_PF channels ahead: they come from memory */
            for (int r = 0; r < 4; r++)
                if (gr->rows >> r & 1) wg_prefetch_row(p + (ptrdiff_t)(WG_PF * HW) + (ptrdiff_t)r * W);
        for (int r = 0; r < 4; r++) {
            if (!(gr->rows >> r & 1)) {
                d[r][0] = d[r][1] = d[r][2] = d[r][3] = z;
                continue;
            }
            wg_load_row(d[r], gr, p + (ptrdiff_t)r * W);
        }
    } else {
        const float *base = in + gr->in_off + (ptrdiff_t)(ci * HW);
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++) d[r][c] = wg_gather(gr, base, r, c, W);
    }
    wg_tf_in(v, d);
}

static __attribute__((noinline)) void wg_input(float *V, const wg_vlayout *L, const float *in, const wg_group *grs,
                                               int ng, const wg_geom *g) {
    for (int ci = 0; ci < g->Cin; ci++) {
        for (int gi = 0; gi < ng; gi++) {
            wg_vf v[16];
            wg_patch(v, &grs[gi], in, ci, g);
            float *dst = V + (size_t)(gi / 3) * L->ss + (size_t)(gi % 3) * WG_L + (size_t)ci * L->cs;
            for (int k = L->k0; k < L->k1; k++) wg_storeu(dst + (k - L->k0) * L->ks, v[k]);
        }
    }
}

#if WG_BF16
/* wg_input for the bf16 GEMMs, all channels: the transforms of channels 2p and
 * 2p + 1 (zero past Cin) go straight to row p of channel pairs, in the layout
 * and rounding the GEMMs read (wg_store_pair). V is written once, at half the
 * bytes, and never read back to be packed: bit for bit what transforming in
 * fp32 and then packing V in place gave. */
static WG_BF16_TARGET __attribute__((noinline)) void wg_input_bf16(float *V, const wg_vlayout *L, const float *in,
                                                                   const wg_group *grs, int ng, const wg_geom *g) {
    const int Cin = g->Cin, np = (Cin + 1) / 2;
    for (int p = 0; p < np; p++) {
        for (int gi = 0; gi < ng; gi++) {
            wg_vf a[16], b[16];
            wg_patch(a, &grs[gi], in, 2 * p, g);
            if (2 * p + 1 < Cin)
                wg_patch(b, &grs[gi], in, 2 * p + 1, g);
            else
                for (int k = 0; k < 16; k++) b[k] = wg_zero();
            float *dst = V + (size_t)(gi / 3) * L->ss + (size_t)(gi % 3) * WG_L + (size_t)p * L->cs;
            for (int k = L->k0; k < L->k1; k++) wg_store_pair(dst + (k - L->k0) * L->ks, a[k], b[k]);
        }
    }
}

/* wg_input for the bf16 weight gradient (wino_dweight3x3's layout: the tiles
 * of a chunk in one row per channel and matrix): word q of a row holds tiles
 * 2q and 2q + 1 as bf16, zero from tile n on, as wd_gemm_bf reads them.
 * Written once, never read back to be packed. */
static WG_BF16_TARGET __attribute__((noinline)) void
wd_input_bf16(float *V, const wg_vlayout *L, const float *in, const wg_group *grs, int ng, int n, const wg_geom *g) {
    for (int ci = 0; ci < g->Cin; ci++) {
        for (int gi = 0; gi < ng; gi++) {
            wg_vf v[16];
            wg_patch(v, &grs[gi], in, ci, g);
            const int left = n - WG_L * gi;
            const __mmask16 live = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            float *dst = V + (size_t)ci * L->cs + (size_t)gi * (WG_L / 2);
            for (int k = L->k0; k < L->k1; k++) wd_store_tiles(dst + (k - L->k0) * L->ks, live, v[k]);
        }
    }
}
#endif

/* out (=, or +=) A^T M A (+ bias) for output channels co0 + m, m < mmax, and
 * the nv groups grs[0..nv) whose products are Mb[k][m][WG_L * j + lane]. */
static __attribute__((noinline)) void wg_output(float *out, int accumulate, const float *bias, const float *Mb,
                                                size_t ks, const wg_group *grs, int nv, int co0, int mmax,
                                                const wg_geom *g) {
    const int W = g->W;
    const size_t HW = (size_t)g->H * W;
    for (int m = 0; m < mmax; m++) {
        const int co = co0 + m;
        const wg_vf bv = wg_set1(!accumulate && bias ? bias[co] : 0.0f);
        for (int j = 0; j < nv; j++) {
            const wg_group *gr = &grs[j];
            const float *src = Mb + (size_t)m * WG_NS + WG_L * j;
            wg_vf s[4][2];
            for (int i = 0; i < 4; i++) { /* s = M A, row i */
                const wg_vf m0 = wg_loadu(src + (size_t)(4 * i + 0) * ks);
                const wg_vf m1 = wg_loadu(src + (size_t)(4 * i + 1) * ks);
                const wg_vf m2 = wg_loadu(src + (size_t)(4 * i + 2) * ks);
                const wg_vf m3 = wg_loadu(src + (size_t)(4 * i + 3) * ks);
                s[i][0] = wg_add(wg_add(m0, m1), m2);
                s[i][1] = wg_sub(wg_sub(m1, m2), m3);
            }
            wg_vf y[2][2];
            for (int c = 0; c < 2; c++) {
                y[0][c] = wg_add(wg_add(wg_add(s[0][c], s[1][c]), s[2][c]), bv);
                y[1][c] = wg_add(wg_sub(wg_sub(s[1][c], s[2][c]), s[3][c]), bv);
            }
            if (gr->fast) {
                float *o = out + gr->out_off + (ptrdiff_t)((size_t)co * HW);
                for (int r = 0; r < 2; r++, o += W) {
                    if (r == 1 && !(gr->rows & 16)) break;
                    wg_store_row(o, y[r][0], y[r][1], gr, accumulate);
                }
            } else {
                float yv[4][WG_L] __attribute__((aligned(64)));
                wg_storeu(yv[0], y[0][0]);
                wg_storeu(yv[1], y[0][1]);
                wg_storeu(yv[2], y[1][0]);
                wg_storeu(yv[3], y[1][1]);
                for (int l = 0; l < WG_L; l++) {
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
    wg_geom g = wg_geom_make(B, Cin, Cout, H, W);
    g.NT = wg_block_tiles(Cin);
    g.KS = wg_ks_floats(Cin);
    const int nb = (Cout + WG_MR - 1) / WG_MR;
    const long ntask = (g.total + g.NT - 1) / g.NT;
    float *Upk = scratch, *thr = scratch + wg_u_floats(Cin, Cout);
    const size_t tf = wg_thread_floats(Cin);
    const wg_vlayout vl = {16 * g.KS, WG_NS, g.KS, 0, 16};
#if WG_BF16
    const int bf = nn_use_bf16(), np = (Cin + 1) / 2;
    uint32_t *Ubf = (uint32_t *)(void *)(thr + (size_t)nn_threads() * tf);
#endif
#if WG_AMX
    /* npp <= Cin from 16 channels on (the zeroed rows stay inside V_k) */
    const int amx = bf && nn_use_amx() && Cin >= 16, npp = wg_npp(Cin), nb2 = wg_nb2(Cout);
    uint32_t *Uam = Ubf + wg_u_floats(Cin + 1, Cout) / 2 + 16;
#endif
#pragma omp parallel num_threads(nn_threads())
    {
        wg_weights(Upk, w, flip, Cin, Cout); /* omp for: ends with a barrier */
#if WG_AMX
        if (amx)
            wg_weights_amx(Uam, Upk, Cin, Cout); /* likewise */
        else
#endif
#if WG_BF16
            if (bf)
            wg_weights_bf16(Ubf, Upk, Cin, Cout); /* likewise */
#endif
        float *V = thr + (size_t)omp_get_thread_num() * tf;
#if WG_AMX
        if (amx) { /* V's pair rows np..npp-1 of every slice and k: zero (wg_gemm_amx) */
            for (int s = 0; s < g.NT / WG_NS; s++)
                for (int k = 0; k < 16; k++)
                    memset(V + (size_t)s * 16 * g.KS + (size_t)k * g.KS + (size_t)np * WG_NS, 0,
                           sizeof(float) * (size_t)(npp - np) * WG_NS);
            wg_amx_config();
        }
#endif
        float *Mb = V + (size_t)(g.NT / WG_NS) * 16 * g.KS; /* [16][WG_MR][WG_NS] */
        wg_group grs[WG_MAXNT / WG_L];
#pragma omp for schedule(static)
        for (long task = 0; task < ntask; task++) {
            const long t0 = task * g.NT;
            const int nvalid = g.total - t0 < g.NT ? (int)(g.total - t0) : g.NT;
            const int ng = (nvalid + WG_L - 1) / WG_L;
            for (int gi = 0; gi < ng; gi++) wg_describe(&grs[gi], &g, t0 + WG_L * gi, Cin, Cout);
#if WG_BF16
            if (bf)
                wg_input_bf16(V, &vl, in, grs, ng, &g);
            else
#endif
                wg_input(V, &vl, in, grs, ng, &g);
            for (int s = 0; s < ng; s += 3) {
                const int nv = ng - s < 3 ? ng - s : 3;
#if WG_AMX
                if (amx) { /* two blocks of WG_MR channels per tile: M [16 k][16][WG_NS] */
                    for (int jb = 0; jb < nb; jb += 2) {
                        for (int k = 0; k < 16; k++)
                            wg_gemm_amx(Mb + (size_t)k * 2 * WG_MR * WG_NS, V + (size_t)(s / 3) * 16 * g.KS + k * g.KS,
                                        Uam + ((size_t)k * nb2 + jb) * WG_MR * npp, npp, nv);
                        for (int h = 0; h < 2 && jb + h < nb; h++) {
                            const int c0 = (jb + h) * WG_MR, mmax = Cout - c0 < WG_MR ? Cout - c0 : WG_MR;
                            wg_output(out, accumulate, bias, Mb + (size_t)h * WG_MR * WG_NS, (size_t)2 * WG_MR * WG_NS,
                                      grs + s, nv, c0, mmax, &g);
                        }
                    }
                    continue;
                }
#endif
                for (int jb = 0; jb < nb; jb++) {
                    for (int k = 0; k < 16; k++) {
                        float *M = Mb + (size_t)k * WG_MR * WG_NS;
                        const float *Vk = V + (size_t)(s / 3) * 16 * g.KS + k * g.KS;
                        const float *Uk = Upk + ((size_t)k * nb + jb) * Cin * WG_MR;
#if WG_BF16
                        if (bf) {
                            const uint32_t *Ub = Ubf + ((size_t)k * nb + jb) * np * WG_MR;
                            if (nv == 3)
                                wg_gemm_bf3(M, Vk, Ub, np);
                            else if (nv == 2)
                                wg_gemm_bf2(M, Vk, Ub, np);
                            else
                                wg_gemm_bf1(M, Vk, Ub, np);
                            continue;
                        }
#endif
                        if (nv == 3)
                            wg_gemm3(M, Vk, WG_NS, Uk, Cin);
                        else if (nv == 2)
                            wg_gemm2(M, Vk, WG_NS, Uk, Cin);
                        else
                            wg_gemm1(M, Vk, WG_NS, Uk, Cin);
                    }
                    const int mmax = Cout - jb * WG_MR < WG_MR ? Cout - jb * WG_MR : WG_MR;
                    wg_output(out, accumulate, bias, Mb, (size_t)WG_MR * WG_NS, grs + s, nv, jb * WG_MR, mmax, &g);
                }
            }
        }
#if WG_AMX
        if (amx) wg_amx_release();
#endif
    }
}

/* ---- weight gradient by Winograd F(3x3, 2x2).
 * By the transposition principle, a tile's share of the weight gradient is
 *     dW_tile = G^T [ (A Y A^T) (.) (B^T d B) ] G
 * with Y the tile's 2x2 of dout, d its 4x4 input patch (the forward's V) and
 * A = (A^T)^T = [[1,0],[1,1],[1,-1],[0,-1]]. Summed over all tiles of all
 * samples: M_k [Cout][Cin] = sum_t Z_k[co][t] V_k[ci][t] with Z = A Y A^T
 * (16 GEMMs whose reduction runs over tiles), then dW = G^T M G.
 * Tiles go in chunks of TC: per chunk a task transforms the input
 * (V [16][Cin][TC]) and dout (Z [16][TC][ldz], channels contiguous, padded
 * to a whole vector), then runs the GEMMs, split by (k, WD_CT-channel tile of
 * Cout, WD_CI input channels), into double accumulators M [16][Cin][ldz].
 * Every M entry sums the tiles in one fixed order, whatever the thread count. */
#define WD_KG 2 /* tasks: groups of 16 / WD_KG matrices k */

static int wd_ldz(int Cout) { return (Cout + WG_L - 1) & ~(WG_L - 1); }
static int wd_chunk(int Cin, int Cout) { /* a multiple of WG_L so lane groups start tile rows where they can */
    int t = (WD_BUDGET / (Cin + wd_ldz(Cout))) & ~(WG_L - 1);
    return t < WD_TCMIN ? WD_TCMIN : t > 768 ? 768 : t;
}
static size_t wd_vk(int Cin, int TC) { return (size_t)Cin * TC + 16; }
static size_t wd_zk(int Cout, int TC) { return (size_t)TC * wd_ldz(Cout) + 16; }

size_t wino_dweight_scratch_floats(int B, int Cin, int Cout, int H, int W) {
    const int TC = wd_chunk(Cin, Cout);
    return 2 * (size_t)16 * Cin * wd_ldz(Cout) + 16 * wd_vk(Cin, TC) + 16 * wd_zk(Cout, TC) +
        (size_t)B * H * W * wd_ldz(Cout);
}

/* The weight gradient's micro-kernels (wd_gemm), for 1 or 2 vectors of output channels. */
static __attribute__((noinline)) void wd_gemm1(double *m, size_t ldm, const float *z, int ldz, const float *v,
                                               size_t vs, int n, int nci) {
    wd_gemm(m, ldm, z, ldz, v, vs, n, nci, 1);
}
static __attribute__((noinline)) void wd_gemm2(double *m, size_t ldm, const float *z, int ldz, const float *v,
                                               size_t vs, int n, int nci) {
    wd_gemm(m, ldm, z, ldz, v, vs, n, nci, 2);
}

/* The rows a[i] = (A Y)[i] of one tile's 2x2 of dout Y at p, output
 * channels co0..co0+WG_L-1; the matrices of row i are then (a, a + b, a - b,
 * -b) for (a, b) = a[i]. */
static inline __attribute__((always_inline)) void wd_tile_rows(wg_vf a[4][2], const float *p, int ldz, int W, int right,
                                                               int below, int co0) {
    const wg_vf zero = wg_zero();
    const wg_vf y00 = wg_loadu(p + co0);
    const wg_vf y01 = right ? wg_loadu(p + ldz + co0) : zero;
    const wg_vf y10 = below ? wg_loadu(p + (size_t)W * ldz + co0) : zero;
    const wg_vf y11 = right && below ? wg_loadu(p + (size_t)(W + 1) * ldz + co0) : zero;
    /* A Y: rows (y00, y01), (y00 + y10, y01 + y11), (y00 - y10, y01 - y11), (-y10, -y11) */
    a[0][0] = y00, a[0][1] = y01;
    a[1][0] = wg_add(y00, y10), a[1][1] = wg_add(y01, y11);
    a[2][0] = wg_sub(y00, y10), a[2][1] = wg_sub(y01, y11);
    a[3][0] = wg_sub(zero, y10), a[3][1] = wg_sub(zero, y11);
}

/* Z[k - 4 * i0][wd_zrow(t)][co], for the matrices k of rows i0..i1-1 of the
 * 4x4, the tiles t0 + t, t < n (at the row of the lane that V has them in),
 * and all ldz output channels: Z = A Y A^T of the tile's 2x2 of dout (zero
 * past the edges), read from the transposed dout GT [B*H*W][ldz] (a tile
 * reads 4 rows of GT, sequentially per tile row). Rows from n up to
 * wd_gemm_tiles(n) are zeroed, so the GEMM can run over whole groups. */
static __attribute__((noinline)) void wd_ztransform(float *Z, size_t zk, int ldz, const float *GT, long t0, int n,
                                                    int i0, int i1, const wg_geom *g) {
    const int H = g->H, W = g->W;
    const size_t HW = (size_t)H * W;
    const wg_vf zero = wg_zero();
    long b = t0 / g->nt;
    int r = (int)(t0 % g->nt), ty = r / g->tw, tx = r % g->tw;
    for (int t = n; t < wd_gemm_tiles(n); t++)
        for (int i = i0; i < i1; i++)
            for (int j = 0; j < 4; j++)
                memset(Z + (size_t)(4 * (i - i0) + j) * zk + wd_zrow(t) * ldz, 0, ldz * sizeof(float));
    for (int t = 0; t < n; t++) {
        const float *p = GT + ((size_t)b * HW + (size_t)(2 * ty) * W + 2 * tx) * ldz;
        const int right = 2 * tx + 1 < W, below = 2 * ty + 1 < H;
        for (int co0 = 0; co0 < ldz; co0 += WG_L) {
            wg_vf a[4][2];
            wd_tile_rows(a, p, ldz, W, right, below, co0);
            float *dst = Z + wd_zrow(t) * ldz + co0;
            for (int i = i0; i < i1; i++) { /* matrices 4 * (i - i0) + j */
                float *di = dst + (size_t)4 * (i - i0) * zk;
                wg_storeu(di, a[i][0]);
                wg_storeu(di + zk, wg_add(a[i][0], a[i][1]));
                wg_storeu(di + 2 * zk, wg_sub(a[i][0], a[i][1]));
                wg_storeu(di + 3 * zk, wg_sub(zero, a[i][1]));
            }
        }
        if (++tx == g->tw) {
            tx = 0;
            if (++ty == (H + 1) / 2) ty = 0, b++;
        }
    }
}

#if WG_BF16
/* wd_ztransform for the bf16 weight gradient: tiles 2q and 2q + 1 (zero past
 * tile n) go straight to word rows q of Z as pairs (wg_store_pair), the layout
 * wd_gemm_bf reads; the same values, rounded once, as transforming in fp32
 * and packing Z in place. */
static WG_BF16_TARGET __attribute__((noinline)) void
wd_ztransform_bf16(float *Z, size_t zk, int ldz, const float *GT, long t0, int n, int i0, int i1, const wg_geom *g) {
    const int H = g->H, W = g->W;
    const size_t HW = (size_t)H * W;
    const wg_vf zero = wg_zero();
    long b = t0 / g->nt;
    int r = (int)(t0 % g->nt), ty = r / g->tw, tx = r % g->tw;
    for (int q = 0; q < (n + 1) / 2; q++) {
        const float *p[2] = {NULL, NULL};
        int right[2] = {0, 0}, below[2] = {0, 0};
        for (int h = 0; h < 2 && 2 * q + h < n; h++) {
            p[h] = GT + ((size_t)b * HW + (size_t)(2 * ty) * W + 2 * tx) * ldz;
            right[h] = 2 * tx + 1 < W, below[h] = 2 * ty + 1 < H;
            if (++tx == g->tw) {
                tx = 0;
                if (++ty == (H + 1) / 2) ty = 0, b++;
            }
        }
        for (int co0 = 0; co0 < ldz; co0 += WG_L) {
            wg_vf a[4][2], c[4][2] = {{zero, zero}, {zero, zero}, {zero, zero}, {zero, zero}};
            wd_tile_rows(a, p[0], ldz, W, right[0], below[0], co0);
            /* no second tile (odd n, last pair): its half stays zeros (0 + 0 and 0 - 0 are +0) */
            if (p[1]) wd_tile_rows(c, p[1], ldz, W, right[1], below[1], co0);
            float *dst = Z + (size_t)q * ldz + co0;
            for (int i = i0; i < i1; i++) { /* matrices 4 * (i - i0) + j */
                float *di = dst + (size_t)4 * (i - i0) * zk;
                wg_store_pair(di, a[i][0], c[i][0]);
                wg_store_pair(di + zk, wg_add(a[i][0], a[i][1]), wg_add(c[i][0], c[i][1]));
                wg_store_pair(di + 2 * zk, wg_sub(a[i][0], a[i][1]), wg_sub(c[i][0], c[i][1]));
                wg_store_pair(di + 3 * zk, wg_sub(zero, a[i][1]), wg_sub(zero, c[i][1]));
            }
        }
    }
}
#endif

void wino_dweight3x3(float *dweight, const float *dout, const float *in, int B, int Cin, int Cout, int H, int W,
                     float *scratch) {
    const wg_geom g = wg_geom_make(B, Cin, Cout, H, W);
    const int ldz = wd_ldz(Cout), TC = wd_chunk(Cin, Cout), ncv = ldz / WG_L, ntile = (ldz + WD_CT - 1) / WD_CT;
    const size_t vk = wd_vk(Cin, TC), zk = wd_zk(Cout, TC), ldm = (size_t)ldz;
    const size_t HW = (size_t)H * W;
    const int npb = (int)((HW + WG_L - 1) / WG_L);
#if WG_BF16
    const int bf = nn_use_bf16();
#endif
#if WG_AMX
    const int amx = bf && nn_use_amx();
#endif
    double *M = (double *)(void *)scratch; /* [16][Cin][ldz] */
    float *Vc = scratch + 2 * (size_t)16 * Cin * ldz, *Zc = Vc + 16 * vk, *GT = Zc + 16 * zk;
    const long nchunk = (g.total + TC - 1) / TC;
#pragma omp parallel num_threads(nn_threads())
    {
        wg_group grs[768 / WG_L];
#pragma omp for schedule(static)
        for (int r = 0; r < 16 * Cin; r++) memset(M + (size_t)r * ldm, 0, ldm * sizeof(double));
#pragma omp for schedule(static)
        for (long it = 0; it < (long)B * npb * ncv; it++) { /* GT = dout transposed, WG_L x WG_L blocks */
            const int cv = (int)(it % ncv), b = (int)(it / ncv / npb);
            const size_t p0 = (size_t)(it / ncv % npb) * WG_L;
            wd_transpose(GT, ldz, dout, b, WG_L * cv, p0, HW - p0 < WG_L ? (int)(HW - p0) : WG_L, Cout, HW);
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
#if WG_AMX
            if (amx) wd_amx_config(Cin % 16);
#endif
            for (long c = 0; c < nchunk; c++) { /* chunks in order */
                const long t0 = c * TC;
                const int n = g.total - t0 < TC ? (int)(g.total - t0) : TC, ng = (n + WG_L - 1) / WG_L;
                for (int gi = 0; gi < ng; gi++) wg_describe(&grs[gi], &g, t0 + WG_L * gi, Cin, Cout);
#if WG_BF16
                if (bf)
                    wd_input_bf16(Vt, &vl, in, grs, ng, n, &g);
                else
#endif
                    wg_input(Vt, &vl, in, grs, ng, &g);
#if WG_BF16
                if (bf)
                    wd_ztransform_bf16(Zt, zk, ldz, GT, t0, n, i0, i1, &g);
                else
#endif
                    wd_ztransform(Zt, zk, ldz, GT, t0, n, i0, i1, &g);
#if WG_AMX
                if (amx) {
                    /* pairs nq..npp-1 zero in both operands (stale from an
                     * earlier chunk or call otherwise): npp <= TC / 2 + 8 <= TC,
                     * within a V row and within Z's rows */
                    const int nq = (n + 1) / 2, npp = (nq + 15) & ~15;
                    for (int kk = 0; kk < nk; kk++) {
                        for (int ci = 0; ci < Cin; ci++)
                            memset(Vt + kk * vk + (size_t)ci * TC + nq, 0, sizeof(float) * (size_t)(npp - nq));
                        memset(Zt + kk * zk + (size_t)nq * ldz, 0, sizeof(float) * (size_t)(npp - nq) * ldz);
                    }
                    for (int kk = 0; kk < nk; kk++)
                        for (int jt = 0; jt < ntile; jt++) {
                            const int co0 = jt * WD_CT, nv = ldz - co0 >= 2 * WG_L ? 2 : 1;
                            for (int ci0 = 0; ci0 < Cin; ci0 += 16)
                                wd_gemm_amx(M + ((size_t)(4 * i0 + kk) * Cin + ci0) * ldm + co0, ldm,
                                            Zt + kk * zk + co0, ldz, Vt + kk * vk + (size_t)ci0 * TC, (size_t)TC, npp,
                                            Cin - ci0 < 16 ? Cin - ci0 : 16, nv);
                        }
                    continue;
                }
#endif
                for (int kk = 0; kk < nk; kk++)
                    for (int jt = 0; jt < ntile; jt++) {
                        const int co0 = jt * WD_CT, nv = ldz - co0 >= 2 * WG_L ? 2 : 1;
                        for (int ci0 = 0; ci0 < Cin; ci0 += WD_CI) {
                            const int nci = Cin - ci0 < WD_CI ? Cin - ci0 : WD_CI;
                            double *m = M + ((size_t)(4 * i0 + kk) * Cin + ci0) * ldm + co0;
                            const float *z = Zt + kk * zk + co0, *v = Vt + kk * vk + (size_t)ci0 * TC;
#if WG_BF16
                            if (bf && nv == 2)
                                wd_gemm_bf2(m, ldm, z, ldz, v, (size_t)TC, (n + 1) / 2, nci);
                            else if (bf)
                                wd_gemm_bf1(m, ldm, z, ldz, v, (size_t)TC, (n + 1) / 2, nci);
                            else
#endif
                                if (nv == 2)
                                wd_gemm2(m, ldm, z, ldz, v, (size_t)TC, wd_gemm_tiles(n), nci);
                            else
                                wd_gemm1(m, ldm, z, ldz, v, (size_t)TC, wd_gemm_tiles(n), nci);
                        }
                    }
            }
#if WG_AMX
            if (amx) wg_amx_release();
#endif
        }
        /* dW[co][ci] += G^T M G for 8 output channels at once: a task reads
         * one whole cache line from each of the 16 matrices, where one
         * channel at a time would touch 16 lines for every 9 outputs (the
         * lines are 1 KB+ apart, and this loop was 20% of the whole weight
         * gradient). Channels past Cout (up to ldz, zeroed by the memset
         * above) are computed and dropped. */
        const int nco8 = (Cout + 7) / 8;
#pragma omp for schedule(static)
        for (int it = 0; it < nco8 * Cin; it++) {
            const int co0 = (it / Cin) * 8, ci = it % Cin, nco = Cout - co0 < 8 ? Cout - co0 : 8;
            float res[9][8];
            wd_finish(res, M, ldm, Cin, ci, co0);
            for (int m = 0; m < nco; m++) {
                float *dw = dweight + ((size_t)(co0 + m) * Cin + ci) * 9;
                for (int t = 0; t < 9; t++) dw[t] += res[t][m];
            }
        }
    }
}

#else /* neither AVX-512 nor AVX2 + FMA: conv2d.c never takes this path */

int wino_supported(void) { return 0; }
int wino_bf16_built(void) { return 0; }
size_t wino_scratch_floats(int Cin, int Cout) { return 0 * (size_t)(Cin + Cout); }
size_t wino_dweight_scratch_floats(int B, int Cin, int Cout, int H, int W) {
    return 0 * (size_t)(B + Cin + Cout + H + W);
}
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
