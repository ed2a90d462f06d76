/*
 * gemm.c - the GEMM behind the linears, attention, the 1x1 and the im2col
 * (stride-2) convolutions: cblas_sgemm on the fp32 path, and on the bf16 path
 * (nn_use_bf16) our own AVX512-BF16 kernel (issue 21 item 3).
 *
 * Why our own: Debian's OpenBLAS 0.3.21 declares cblas_sbgemm in cblas.h but
 * the shared library does not export it (built without BUILD_BFLOAT16), and
 * OPENBLAS_CORETYPE=Haswell would pick kernels without bf16 anyway.
 *
 * Method (Goto-style, one thread per call like the sgemm calls it replaces):
 * K is cut into blocks of GB_KP pairs of k. Per block of GB_MC rows, A is
 * packed once into panels of GB_MR rows, each k pair as one 32-bit word
 * (bf16 of A[m][2p] in the low half, A[m][2p + 1] in the high half, zero past
 * K), the layout vdpbf16ps reads; then, per GB_NR columns, B is packed the
 * same way (word (p, n) = bf16 B[2p][n], B[2p + 1][n]) into an L1-sized panel
 * and the micro-kernel multiplies GB_MR x GB_NR with fp32 accumulators
 * (vdpbf16ps: two exact bf16 products added to an fp32 lane). Each K block's
 * sum is then added to C in fp32: C = beta C + alpha acc for the first
 * block, C += alpha acc after. Rounding float -> bf16 is round-to-nearest-even
 * (vcvtneps2bf16, as nn_bf16_round_hw).
 *
 * Every C element is computed by the same sequence of instructions whatever
 * its position in the blocking, so a result depends only on the call's
 * arguments (thread-count independence holds as for sgemm). The packing
 * buffers live on the stack (about 80 KB), so the GEMM allocates nothing.
 */
#include "nn/nn.h"

#include <cblas.h>
#include <stdint.h>
#include <string.h>

void nn_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc) {
    if (nn_use_bf16() && nn_gemm_bf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0) return;
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                A, lda, B, ldb, beta, C, ldc);
}

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 12 || defined(__clang__))
#include <immintrin.h>

#include "nn/amx.h"

#define GB_MR     8   /* rows per micro-kernel: broadcast words */
#define GB_NR     32  /* columns per micro-kernel: 2 zmm of fp32 accumulators */
#define GB_KP     128 /* k pairs per K block (256 k) */
#define GB_MC     64  /* rows per packed A block: 64 x 128 words = 32 KB */
#define GB_TARGET __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))

/* dst[p * W + j] = pair(src(2p, j), src(2p + 1, j)) for p < np, j < W, where
 * the k axis runs down the rows of src: src(k, j) = src[k * ld + j], valid for
 * k < kn and j < w (zero elsewhere). Used for B not transposed (W = GB_NR)
 * and A transposed (W = GB_MR). */
static GB_TARGET void pack_krows(uint32_t *dst, const float *src, size_t ld, int kn, int np, int w, int W) {
    const __mmask16 m0 = w >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << w) - 1);
    const __mmask16 m1 = w >= 32 ? (__mmask16)0xFFFF : w > 16 ? (__mmask16)((1u << (w - 16)) - 1) : 0;
    for (int p = 0; p < np; p++) {
        const int k = 2 * p;
        const float *r0 = src + (size_t)k * ld, *r1 = r0 + ld;
        const __mmask16 e0 = k < kn ? 0xFFFF : 0, e1 = k + 1 < kn ? 0xFFFF : 0;
        for (int j = 0; j < W; j += 16) {
            const __mmask16 m = j == 0 ? m0 : m1;
            const __m512 a = _mm512_maskz_loadu_ps(m & e0, r0 + j);
            const __m512 b = _mm512_maskz_loadu_ps(m & e1, r1 + j);
            const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
            const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b));
            const __m512i wd = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
            if (W - j >= 16)
                _mm512_storeu_si512(dst + (size_t)p * W + j, wd);
            else
                _mm512_mask_storeu_epi32(dst + (size_t)p * W + j, (__mmask16)((1u << (W - j)) - 1), wd);
        }
    }
}

/* In-register transpose of 16 x 16 32-bit words: word j of r[i] becomes word
 * i of r[j] (pairs of rows, then of pairs, then 128-bit lanes twice). */
static GB_TARGET inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_i32x4(r[h + i], r[h + i + 4], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    }
}

/* dst[p * W + j] = pair(src(j, 2p), src(j, 2p + 1)): the k axis runs along
 * the rows of src, src(j, k) = src[j * ld + k], valid for j < w, k < kn. Used
 * for A not transposed (W = GB_MR) and B transposed (W = GB_NR). A row's bf16
 * values in order are already its pair words; 16 rows x 16 pairs at a time
 * are transposed in registers, so that each dst row goes out as one store
 * (16 scalar stores per row of src before: the top of this GEMM's profile). */
static GB_TARGET void pack_kcols(uint32_t *dst, const float *src, size_t ld, int kn, int np, int w, int W) {
    for (int j0 = 0; j0 < W; j0 += 16) {
        const int wj = W - j0 < 16 ? W - j0 : 16; /* words of a dst row from these rows */
        const __mmask16 sm = wj >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << wj) - 1);
        for (int p0 = 0; p0 < np; p0 += 16) {
            const int k0 = 2 * p0, left = kn - k0;
            const __mmask16 ma = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            const __mmask16 mb = left >= 32 ? (__mmask16)0xFFFF : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
            __m512i r[16];
            for (int j = 0; j < 16; j++) {
                if (j >= wj || j0 + j >= w) { /* rows past w (and past W) are zeros */
                    r[j] = _mm512_setzero_si512();
                    continue;
                }
                const float *row = src + (size_t)(j0 + j) * ld + k0;
                const __m512 a = _mm512_maskz_loadu_ps(ma, row), b = _mm512_maskz_loadu_ps(mb, row + 16);
                r[j] = (__m512i)_mm512_cvtne2ps_pbh(b, a); /* bf16 k0..k0+31 in order: pair words */
            }
            transpose16(r);
            const int n = np - p0 < 16 ? np - p0 : 16;
            for (int q = 0; q < n; q++) _mm512_mask_storeu_epi32(dst + (size_t)(p0 + q) * W + j0, sm, r[q]);
        }
    }
}

/* C[mr x nr] (ldc) = (first ? beta C : C) + alpha acc, acc holding rows of
 * 32 floats (64-byte aligned): the end of both micro-kernels. */
static GB_TARGET void gb_store_block(float *C, size_t ldc, const float *acc, int mr, int nr, float alpha, float beta,
                                     int first) {
    const __mmask16 n0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 n1 = nr >= 32 ? (__mmask16)0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int m = 0; m < mr; m++) {
        float *c = C + (size_t)m * ldc;
        for (int h = 0; h < 2; h++) {
            const __mmask16 mk = h ? n1 : n0;
            if (!mk) continue;
            __m512 old;
            if (!first)
                old = _mm512_maskz_loadu_ps(mk, c + 16 * h);
            else if (beta == 0.0f) /* C is not read (it may hold anything), as in BLAS */
                old = _mm512_setzero_ps();
            else
                old = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mk, c + 16 * h));
            _mm512_mask_storeu_ps(c + 16 * h, mk, _mm512_fmadd_ps(va, _mm512_load_ps(acc + m * 32 + 16 * h), old));
        }
    }
}

/* C[mr x nr] (ldc) = (first ? beta C : C) + alpha * (A panel x B panel). */
static GB_TARGET __attribute__((noinline)) void gb_kernel(const uint32_t *Ap, const uint32_t *Bp, int np, float *C,
                                                          size_t ldc, int mr, int nr, float alpha, float beta,
                                                          int first) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    for (int p = 0; p < np; p++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(Bp + (size_t)p * GB_NR);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(Bp + (size_t)p * GB_NR + 16);
        const uint32_t *a = Ap + (size_t)p * GB_MR;
#define GB_ROW(m)                                                                                                      \
    do {                                                                                                               \
        const __m512bh am = (__m512bh)_mm512_set1_epi32((int)a[m]);                                                    \
        c##m##0 = _mm512_dpbf16_ps(c##m##0, am, b0);                                                                   \
        c##m##1 = _mm512_dpbf16_ps(c##m##1, am, b1);                                                                   \
    } while (0)
        GB_ROW(0);
        GB_ROW(1);
        GB_ROW(2);
        GB_ROW(3);
        GB_ROW(4);
        GB_ROW(5);
        GB_ROW(6);
        GB_ROW(7);
#undef GB_ROW
    }
    float acc[GB_MR * 32] __attribute__((aligned(64)));
    const __m512 c[GB_MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                                {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
    for (int m = 0; m < mr; m++) {
        _mm512_store_ps(acc + m * 32, c[m][0]);
        _mm512_store_ps(acc + m * 32 + 16, c[m][1]);
    }
    gb_store_block(C, ldc, acc, mr, nr, alpha, beta, first);
}

/* ---- C = alpha A B^T (+ beta C) with A [M, K] and B [N, K] both read along
 * k: the weight gradients (dout x input^T), attention's AV and dq, linear
 * forward. Here the pair packing above would transpose both operands
 * (scalar strided stores, 2x the kernel's own time on the U-Net's 1x1
 * weight gradients), so this path instead converts rows to bf16 as they are
 * (contiguous, vcvtne2ps2bf16) and takes 4 x 4 dot products at once: 32 k
 * per vdpbf16ps into 16-lane fp32 partial sums, reduced across lanes in a
 * fixed order at the end of each K block. */
#define NT_KB 512 /* k per block: a bf16 row of 1 KB */
#define NT_NB 32  /* B rows converted per block: 32 KB */

/* dst[0..kp) = bf16 of src[0..kn), zero from kn to kp (a multiple of 32) */
static GB_TARGET void row_bf16(uint16_t *dst, const float *src, int kn, int kp) {
    for (int k = 0; k < kp; k += 32) {
        const int left = kn - k;
        const __mmask16 ma = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
        const __mmask16 mb = left >= 32 ? (__mmask16)0xFFFF : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
        const __m512 a = _mm512_maskz_loadu_ps(ma, src + k), b = _mm512_maskz_loadu_ps(mb, src + k + 16);
        _mm512_storeu_si512(dst + k, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
}

/* 4 rows of A (stride NT_KB) x 4 rows of B: C[mr x nr] update as gb_kernel. */
static GB_TARGET __attribute__((noinline)) void nt_kernel(const uint16_t *A, const uint16_t *B, int kp, float *C,
                                                          size_t ldc, int mr, int nr, float alpha, float beta,
                                                          int first) {
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    for (int k = 0; k < kp; k += 32) {
        __m512bh a[4], b[4];
        for (int i = 0; i < 4; i++) a[i] = (__m512bh)_mm512_loadu_si512(A + (size_t)i * NT_KB + k);
        for (int j = 0; j < 4; j++) b[j] = (__m512bh)_mm512_loadu_si512(B + (size_t)j * NT_KB + k);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], a[i], b[j]);
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float *c = C + (size_t)i * ldc + j;
            const float sum = _mm512_reduce_add_ps(acc[i][j]);
            const float old = !first ? *c : beta == 0.0f ? 0.0f : beta * *c;
            *c = old + alpha * sum;
        }
}

static GB_TARGET void gemm_nt_bf16(int M, int N, int K, float alpha, const float *A, size_t lda, const float *B,
                                   size_t ldb, float beta, float *C, size_t ldc) {
    uint16_t Ab[4 * NT_KB] __attribute__((aligned(64)));
    uint16_t Bb[NT_NB * NT_KB] __attribute__((aligned(64)));
    for (int k0 = 0; k0 < K || (k0 == 0 && K == 0); k0 += NT_KB) {
        const int kn = K - k0 < NT_KB ? K - k0 : NT_KB, kp = (kn + 31) & ~31, first = k0 == 0;
        for (int n0 = 0; n0 < N; n0 += NT_NB) {
            const int nb = N - n0 < NT_NB ? N - n0 : NT_NB, nb4 = (nb + 3) & ~3;
            for (int j = 0; j < nb4; j++) /* rows past N are zero */
                row_bf16(Bb + (size_t)j * NT_KB, B + (size_t)(n0 + (j < nb ? j : 0)) * ldb + k0, j < nb ? kn : 0, kp);
            for (int m0 = 0; m0 < M; m0 += 4) {
                const int mr = M - m0 < 4 ? M - m0 : 4;
                for (int i = 0; i < 4; i++)
                    row_bf16(Ab + (size_t)i * NT_KB, A + (size_t)(m0 + (i < mr ? i : 0)) * lda + k0, i < mr ? kn : 0,
                             kp);
                for (int j = 0; j < nb; j += 4)
                    nt_kernel(Ab, Bb + (size_t)j * NT_KB, kp, C + (size_t)m0 * ldc + n0 + j, ldc, mr,
                              nb - j < 4 ? nb - j : 4, alpha, beta, first);
            }
        }
        if (K == 0) break;
    }
}

static GB_TARGET void gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, size_t lda,
                                const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    uint32_t Apk[GB_MC * GB_KP] __attribute__((aligned(64)));
    uint32_t Bpk[GB_KP * GB_NR] __attribute__((aligned(64)));
    for (int k0 = 0; k0 < K || (k0 == 0 && K == 0); k0 += 2 * GB_KP) {
        const int kn = K - k0 < 2 * GB_KP ? K - k0 : 2 * GB_KP, np = (kn + 1) / 2;
        const int first = k0 == 0;
        for (int m0 = 0; m0 < M; m0 += GB_MC) {
            const int mc = M - m0 < GB_MC ? M - m0 : GB_MC;
            for (int i = 0; i < mc; i += GB_MR) { /* A rows m0 + i .. , k from k0 */
                const int w = mc - i < GB_MR ? mc - i : GB_MR;
                uint32_t *dst = Apk + (size_t)(i / GB_MR) * np * GB_MR;
                if (ta) /* A(m, k) = A[k * lda + m] */
                    pack_krows(dst, A + (size_t)k0 * lda + m0 + i, lda, kn, np, w, GB_MR);
                else
                    pack_kcols(dst, A + (size_t)(m0 + i) * lda + k0, lda, kn, np, w, GB_MR);
            }
            for (int n0 = 0; n0 < N; n0 += GB_NR) {
                const int nr = N - n0 < GB_NR ? N - n0 : GB_NR;
                if (tb) /* B(k, n) = B[n * ldb + k] */
                    pack_kcols(Bpk, B + (size_t)n0 * ldb + k0, ldb, kn, np, nr, GB_NR);
                else
                    pack_krows(Bpk, B + (size_t)k0 * ldb + n0, ldb, kn, np, nr, GB_NR);
                for (int i = 0; i < mc; i += GB_MR)
                    gb_kernel(Apk + (size_t)(i / GB_MR) * np * GB_MR, Bpk, np, C + (size_t)(m0 + i) * ldc + n0, ldc,
                              mc - i < GB_MR ? mc - i : GB_MR, nr, alpha, beta, first);
            }
        }
        if (K == 0) break;
    }
}

/* ---- The AMX kernel (nn_amx_available): the same blocking with tiles. A
 * tile is 16 rows of 64 bytes; TDPBF16PS adds to a 16 x 16 fp32 tile the
 * products of an A tile (16 rows x 16 k pairs: each row a row of A in bf16,
 * k in order, which is its pair words) and a B tile (16 k pairs x 16
 * columns: pair words (p, n), as pack_krows and pack_kcols write them). The
 * micro-kernel keeps a 32 x 32 block of C in four tiles (two when the block
 * has at most 16 rows or columns) and steps k by 32. K blocks of GA_KP
 * pairs are zero-padded to whole tiles in both operands (a zero in one
 * alone would not do: 0 x NaN is NaN) and added to C as gb_kernel does. */
#define GA_KP     128 /* k pairs per K block (256 k) */
#define GA_MC     128 /* rows per packed A block: 4 panels of 32 rows, 64 KB */
#define GA_TARGET NN_AMX_TARGET

/* Tiles 0..7, each 16 rows. */
static GA_TARGET void amx_config(void) {
    static const uint8_t rows[8] = {16, 16, 16, 16, 16, 16, 16, 16};
    nn_amx_configure(rows);
}

/* A panel of 32 rows: dst[r * npp + p] = pair(A(r, 2p), A(r, 2p + 1)) for
 * r < 32, p < npp (zero for rows >= w and k >= kn); A(r, k) = src[r * ld + k]
 * (ta = 0) or src[k * ld + r] (ta = 1, packed as B's columns, then turned). */
static GA_TARGET void amx_pack_a(uint32_t *dst, const float *src, size_t ld, int ta, int kn, int npp, int w) {
    if (!ta) {
        for (int r = 0; r < 32; r++)
            row_bf16((uint16_t *)(dst + (size_t)r * npp), r < w ? src + (size_t)r * ld : src, r < w ? kn : 0, 2 * npp);
        return;
    }
    uint32_t tmp[GA_KP * 32] __attribute__((aligned(64)));
    pack_krows(tmp, src, ld, kn, npp, w, 32);
    for (int r = 0; r < 32; r++)
        for (int p = 0; p < npp; p++) dst[(size_t)r * npp + p] = tmp[(size_t)p * 32 + r];
}

/* C[mr x nr] (ldc) = (first ? beta C : C) + alpha * (A panel x B panel), the
 * panels npp pairs deep (a multiple of 16). */
static GA_TARGET __attribute__((noinline)) void amx_kernel(const uint32_t *Ap, const uint32_t *Bp, int npp, float *C,
                                                           size_t ldc, int mr, int nr, float alpha, float beta,
                                                           int first) {
    float acc[32 * 32] __attribute__((aligned(64)));
    const size_t as = (size_t)npp * 4; /* bytes per A row */
    const uint32_t *A1 = Ap + (size_t)16 * npp;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    if (mr > 16 && nr > 16)
        for (int p = 0; p < npp; p += 16) {
            _tile_loadd(4, Ap + p, as);
            _tile_loadd(5, A1 + p, as);
            _tile_loadd(6, Bp + (size_t)p * 32, 128);
            _tile_loadd(7, Bp + (size_t)p * 32 + 16, 128);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    else if (nr > 16) /* rows 0..15 only */
        for (int p = 0; p < npp; p += 16) {
            _tile_loadd(4, Ap + p, as);
            _tile_loadd(6, Bp + (size_t)p * 32, 128);
            _tile_loadd(7, Bp + (size_t)p * 32 + 16, 128);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
        }
    else if (mr > 16) /* columns 0..15 only */
        for (int p = 0; p < npp; p += 16) {
            _tile_loadd(4, Ap + p, as);
            _tile_loadd(5, A1 + p, as);
            _tile_loadd(6, Bp + (size_t)p * 32, 128);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(2, 5, 6);
        }
    else
        for (int p = 0; p < npp; p += 16) {
            _tile_loadd(4, Ap + p, as);
            _tile_loadd(6, Bp + (size_t)p * 32, 128);
            _tile_dpbf16ps(0, 4, 6);
        }
    _tile_stored(0, acc, 128);
    _tile_stored(1, acc + 16, 128);
    _tile_stored(2, acc + 16 * 32, 128);
    _tile_stored(3, acc + 16 * 32 + 16, 128);
    gb_store_block(C, ldc, acc, mr, nr, alpha, beta, first);
}

static GA_TARGET void gemm_amx(int ta, int tb, int M, int N, int K, float alpha, const float *A, size_t lda,
                               const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    uint32_t Apk[GA_MC * GA_KP] __attribute__((aligned(64)));
    uint32_t Bpk[GA_KP * 32] __attribute__((aligned(64)));
    amx_config();
    for (int k0 = 0; k0 < K || (k0 == 0 && K == 0); k0 += 2 * GA_KP) {
        const int kn = K - k0 < 2 * GA_KP ? K - k0 : 2 * GA_KP, np = (kn + 1) / 2, npp = (np + 15) & ~15;
        const int first = k0 == 0;
        for (int m0 = 0; m0 < M; m0 += GA_MC) {
            const int mc = M - m0 < GA_MC ? M - m0 : GA_MC;
            for (int i = 0; i < mc; i += 32) /* A rows m0 + i .., k from k0 */
                amx_pack_a(Apk + (size_t)(i / 32) * 32 * npp,
                           ta ? A + (size_t)k0 * lda + m0 + i : A + (size_t)(m0 + i) * lda + k0, lda, ta, kn, npp,
                           mc - i < 32 ? mc - i : 32);
            for (int n0 = 0; n0 < N; n0 += 32) {
                const int nr = N - n0 < 32 ? N - n0 : 32;
                if (tb) { /* B(k, n) = B[n * ldb + k]; pair rows np.. zero */
                    if (np > 0) pack_kcols(Bpk, B + (size_t)n0 * ldb + k0, ldb, kn, np, nr, 32);
                    memset(Bpk + (size_t)np * 32, 0, sizeof(uint32_t) * (size_t)(npp - np) * 32);
                } else {
                    pack_krows(Bpk, B + (size_t)k0 * ldb + n0, ldb, kn, npp, nr, 32);
                }
                for (int i = 0; i < mc; i += 32)
                    amx_kernel(Apk + (size_t)(i / 32) * 32 * npp, Bpk, npp, C + (size_t)(m0 + i) * ldc + n0, ldc,
                               mc - i < 32 ? mc - i : 32, nr, alpha, beta, first);
            }
        }
        if (K == 0) break;
    }
    _tile_release();
}

int nn_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                 int ldb, float beta, float *C, int ldc) {
    if (!nn_bf16_available()) return -1;
    if (M <= 0 || N <= 0) return 0;
    if (nn_amx_available())
        gemm_amx(transA, transB, M, N, K, alpha, A, (size_t)lda, B, (size_t)ldb, beta, C, (size_t)ldc);
    else if (!transA && transB && K >= 2048) /* measured: below, the lane reductions cost more than the packing */
        gemm_nt_bf16(M, N, K, alpha, A, (size_t)lda, B, (size_t)ldb, beta, C, (size_t)ldc);
    else
        gemm_bf16(transA, transB, M, N, K, alpha, A, (size_t)lda, B, (size_t)ldb, beta, C, (size_t)ldc);
    return 0;
}
#else
int nn_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                 int ldb, float beta, float *C, int ldc) {
    (void)transA, (void)transB, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda;
    (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
    return -1;
}
#endif
