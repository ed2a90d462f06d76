/*
 * SiLU: out = x * sigmoid(x), elementwise. Each value is independent, so the
 * OpenMP split cannot change any result. exp is the fast expf of vecmath.h
 * (AVX-512, AVX2 + FMA or portable; max rel err ~1e-7, libm's limits:
 * exp(-x) overflow gives sigmoid 0 and silu -0, never NaN); the derivative
 * uses 1 - s = exp(-x) s, accurate where s ~ 1.
 */
#include "nn/nn.h"
#include "nn/vecmath.h"

/* Below this many values a parallel region costs more than it saves. */
#define SILU_PAR_MIN 32768
/* Values per parallel work item (a multiple of 16). */
#define SILU_BLOCK   4096

#if defined(__AVX512F__)
static inline __m512 silu_ps(__m512 x) { return vm_silu_ps512(x); }

/* dinp + dout * s * (1 + x (1 - s)), s = sigmoid(x) */
static inline __m512 silu_bwd_ps(__m512 di, __m512 d, __m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 om; // 1 - s, accurate near s = 1
    const __m512 s = vm_sigmoid2_ps512(x, &om);
    return _mm512_fmadd_ps(_mm512_mul_ps(d, s), _mm512_fmadd_ps(x, om, one), di);
}

static void silu_fwd_block(float *out, const float *inp, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, silu_ps(_mm512_loadu_ps(inp + i)));
    if (i < n) {
        const __mmask16 k = vm_mask16_(n - i);
        _mm512_mask_storeu_ps(out + i, k, silu_ps(_mm512_maskz_loadu_ps(k, inp + i)));
    }
}

static void silu_bwd_block(float *dinp, const float *dout, const float *inp, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dinp + i,
                         silu_bwd_ps(_mm512_loadu_ps(dinp + i), _mm512_loadu_ps(dout + i), _mm512_loadu_ps(inp + i)));
    if (i < n) {
        const __mmask16 k = vm_mask16_(n - i);
        _mm512_mask_storeu_ps(dinp + i, k,
                              silu_bwd_ps(_mm512_maskz_loadu_ps(k, dinp + i), _mm512_maskz_loadu_ps(k, dout + i),
                                          _mm512_maskz_loadu_ps(k, inp + i)));
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
/* 8 lanes (ymm) with a masked tail. The sigmoid divides here (see vecmath.h)
 * and the exp is vm_expf's bits, so the forward gives the portable code's
 * bits; the backward can differ from it in the last rounding (~0.5% of
 * values), as the compiler contracts the portable expression differently. */
static inline __m256 silu_ps(__m256 x) { return vm_silu_ps256(x); }

/* dinp + dout * s * (1 + x (1 - s)), s = sigmoid(x) */
static inline __m256 silu_bwd_ps(__m256 di, __m256 d, __m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 om; // 1 - s, accurate near s = 1
    const __m256 s = vm_sigmoid2_ps256(x, &om);
    return _mm256_fmadd_ps(_mm256_mul_ps(d, s), _mm256_fmadd_ps(x, om, one), di);
}

static void silu_fwd_block(float *out, const float *inp, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_ps(_mm256_loadu_ps(inp + i)));
    if (i < n) {
        const __m256i k = vm_mask8_((ptrdiff_t)(n - i));
        _mm256_maskstore_ps(out + i, k, silu_ps(_mm256_maskload_ps(inp + i, k)));
    }
}

static void silu_bwd_block(float *dinp, const float *dout, const float *inp, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dinp + i,
                         silu_bwd_ps(_mm256_loadu_ps(dinp + i), _mm256_loadu_ps(dout + i), _mm256_loadu_ps(inp + i)));
    if (i < n) {
        const __m256i k = vm_mask8_((ptrdiff_t)(n - i));
        _mm256_maskstore_ps(dinp + i, k,
                            silu_bwd_ps(_mm256_maskload_ps(dinp + i, k), _mm256_maskload_ps(dout + i, k),
                                        _mm256_maskload_ps(inp + i, k)));
    }
}
#else
static void silu_fwd_block(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float x = inp[i];
        out[i] = x / (1.0f + vm_expf(-x));
    }
}

static void silu_bwd_block(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float x = inp[i];
        float om;
        const float s = vm_sigmoid2f(x, &om);
        dinp[i] += dout[i] * s * (1.0f + x * om);
    }
}
#endif

void silu_forward(float *out, const float *inp, size_t n) {
    // out may alias inp: each block is read before its slots are written
    const size_t nblk = (n + SILU_BLOCK - 1) / SILU_BLOCK;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n >= SILU_PAR_MIN)
    for (size_t j = 0; j < nblk; j++) {
        const size_t i = j * SILU_BLOCK, len = n - i < SILU_BLOCK ? n - i : SILU_BLOCK;
        silu_fwd_block(out + i, inp + i, len);
    }
}

void silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (!dinp) return; // no input gradient wanted
    const size_t nblk = (n + SILU_BLOCK - 1) / SILU_BLOCK;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n >= SILU_PAR_MIN)
    for (size_t j = 0; j < nblk; j++) {
        const size_t i = j * SILU_BLOCK, len = n - i < SILU_BLOCK ? n - i : SILU_BLOCK;
        silu_bwd_block(dinp + i, dout + i, inp + i, len);
    }
}
