/*
 * bf16.c - run-time choice of the bf16 path (issue 21 item 3) and the
 * float -> bf16 conversion it uses.
 *
 * The bf16 kernels (winograd.c) are compiled with a target attribute, so the
 * build needs no -march support for AVX512-BF16; they only run when
 * nn_bf16_available() says the CPU has it (cpuid through
 * __builtin_cpu_supports) AND the caller asked for them with
 * nn_set_precision(NN_PREC_BF16 or NN_PREC_AUTO). fp32 stays the default and
 * the reference path.
 *
 * Conversion: round to nearest even, as vcvtneps2bf16 does; the instruction
 * treats denormal inputs as zero (so does nn_bf16_round_sw, the software
 * reference the tests compare it with).
 */
#include "nn/nn.h"

#include <string.h>

static int g_prec = NN_PREC_FP32;
static int g_hide = 0;

void nn_bf16_hide(int hide) { g_hide = hide; }

int nn_bf16_available(void) {
    if (g_hide) return 0;
#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 12 || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

/* AMX: cpuid leaf 7 says AMX-TILE (edx bit 24) and AMX-BF16 (bit 22), and
 * Linux lets the process use the tile data: it is off until asked for
 * (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA, feature 18; the grant is
 * process-wide, so asking once is enough). Remembered after the first call. */
static int g_amx_hide = 0;
void nn_amx_hide(int hide) { g_amx_hide = hide; }

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && (__GNUC__ >= 12 || defined(__clang__))
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
static int amx_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(d & (1u << 24)) || !(d & (1u << 22))) return 0;
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
}
#else
static int amx_probe(void) { return 0; }
#endif

int nn_amx_available(void) {
    static int avail = -1;
    if (g_amx_hide || !nn_bf16_available()) return 0;
    if (avail < 0) avail = amx_probe();
    return avail;
}

int nn_use_amx(void) { return nn_use_bf16() && nn_amx_available(); }

int nn_set_precision(int prec) {
    if (prec != NN_PREC_FP32 && prec != NN_PREC_BF16 && prec != NN_PREC_AUTO) return -1;
    if (prec == NN_PREC_BF16 && !nn_bf16_available()) {
        g_prec = NN_PREC_FP32;
        return -1;
    }
    g_prec = prec;
    return 0;
}

int nn_precision(void) { return g_prec; }

int nn_use_bf16(void) {
    static int avail = -1;
    if (g_prec == NN_PREC_FP32 || g_hide) return 0;
    if (avail < 0) avail = nn_bf16_available();
    return avail;
}

uint16_t nn_bf16_round_sw(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7F800000u) == 0x7F800000u) /* inf / nan: keep nan quiet */
        return (uint16_t)((u >> 16) | ((u & 0x007FFFFFu) ? 0x0040u : 0u));
    if ((u & 0x7F800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u); /* denormal or zero: DAZ */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#if defined(__x86_64__) && defined(__GNUC__) && (__GNUC__ >= 12 || defined(__clang__))
#include <immintrin.h>
__attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"))) static void round_hw(uint16_t *dst, const float *src,
                                                                                     size_t n) {
    size_t i = 0;
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m256bh b = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16(dst + i, m, (__m256i)b);
    }
}
int nn_bf16_round_hw(uint16_t *dst, const float *src, size_t n) {
    if (!nn_bf16_available()) return -1;
    round_hw(dst, src, n);
    return 0;
}
#else
int nn_bf16_round_hw(uint16_t *dst, const float *src, size_t n) {
    (void)dst, (void)src, (void)n;
    return -1;
}
#endif
