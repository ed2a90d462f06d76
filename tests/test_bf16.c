/* test_bf16.c - the bf16 path (issue 21 item 3): the hardware float -> bf16
 * conversion against a software round-to-nearest-even reference; bf16 vs fp32
 * agreement of the 3x3 convolutions (forward, backward-data, weight gradient)
 * at U-Net shapes with stated tolerances; the bf16 GEMM (gemm.c) and the ops
 * on it (linear, 1x1 and stride-2 convs, attention), each against the fp32
 * op and, much more tightly, a software emulation (operands rounded with
 * nn_bf16_round_sw, sums in double); thread-count independence of the bf16
 * path; and that everything falls back to fp32, and says so, on a CPU
 * without AVX512-BF16 (simulated with nn_bf16_hide, and for real when the
 * CPU lacks it: the hw checks are then reported as SKIPPED, not passed).
 * Last, whole restores: each mode's shipped weights on a shipped sample, at
 * the mode's default sampler, bf16 against fp32 through the public API
 * (issue 21: agreement >= 45 dB PSNR; inpaint also over the hole alone). */
#include "nn/nn.h"
#include "nn/winograd.h"
#include "testutil.h"

#include <diffrestore.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_conversion(void) {
    enum { N = 4096 };
    float x[N];
    uint16_t hw[N];
    test_rng r = {7};
    for (int i = 0; i < N; i++) {
        const uint32_t u = (uint32_t)test_rng_u64(&r);
        x[i] = from_bits(u);
    }
    /* exact ties and near-ties, both parities, both signs */
    x[0] = from_bits(0x3F808000u); /* 1.00390625: tie, even below -> down */
    x[1] = from_bits(0x3F818000u); /* tie, odd below -> up */
    x[2] = from_bits(0x3F808001u); /* just above a tie -> up */
    x[3] = from_bits(0x3F807FFFu); /* just below a tie -> down */
    x[4] = from_bits(0xBF818000u);
    x[5] = from_bits(0x7F7FFFFFu); /* FLT_MAX rounds to inf */
    x[6] = 0.0f, x[7] = -0.0f, x[8] = INFINITY, x[9] = -INFINITY;
    x[10] = from_bits(0x00000001u), x[11] = from_bits(0x807FFFFFu); /* denormals: to zero */
    CHECK(nn_bf16_round_sw(x[0]) == 0x3F80 && nn_bf16_round_sw(x[1]) == 0x3F82 && nn_bf16_round_sw(x[2]) == 0x3F81 &&
              nn_bf16_round_sw(x[3]) == 0x3F80 && nn_bf16_round_sw(x[5]) == 0x7F80,
          "software bf16 rounding: ties to even");
    if (nn_bf16_round_hw(hw, x, N) != 0) {
        printf("SKIP hardware bf16 conversion: this CPU has no AVX512-BF16\n");
        return;
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        const uint16_t sw = nn_bf16_round_sw(x[i]);
        const int nan = x[i] != x[i];
        if (nan ? (hw[i] & 0x7F80) != 0x7F80 || !(hw[i] & 0x7F) : hw[i] != sw) {
            if (bad++ < 5) printf("  x %08x hw %04x sw %04x\n", (unsigned)to_bits(x[i]), hw[i], sw);
        }
    }
    CHECK(bad == 0, "vcvtneps2bf16 == software RNE on %d values (%d differ)", N, bad);
}

typedef struct {
    float *out, *dinp, *dw, *db;
} conv_res;

static conv_res run_conv(const conv2d_dims *d, const float *inp, const float *w, const float *bias, const float *g) {
    const size_t nin = (size_t)d->B * d->Cin * d->H * d->W, nout = (size_t)d->B * d->Cout * d->H * d->W;
    const size_t nw = (size_t)d->Cout * d->Cin * 9;
    conv_res r = {falloc(nout), falloc(nin), falloc(nw), falloc(d->Cout)};
    const size_t nfs = conv2d_forward_scratch(d), nbs = conv2d_backward_scratch(d);
    float *fs = falloc(nfs), *bs = falloc(nbs);
    /* scratch full of NaN: the U-Net hands every layer scratch that the
     * previous one left, so a kernel may not count on what it did not write */
    memset(fs, 0xFF, sizeof(float) * nfs);
    memset(bs, 0xFF, sizeof(float) * nbs);
    conv2d_forward(r.out, inp, w, bias, d, fs);
    conv2d_backward(r.dinp, r.dw, r.db, g, inp, w, d, bs);
    free(fs);
    free(bs);
    return r;
}
static void free_res(conv_res *r) { free(r->out), free(r->dinp), free(r->dw), free(r->db); }

/* max |a - b| / max |b| */
static double rel(const float *a, const float *b, size_t n) {
    const double m = test_max_abs(b, n);
    return test_max_abs_diff(a, b, n) / (m > 0 ? m : 1);
}

/* bf16 vs fp32 for one shape; tolerances: the products are of bf16 values
 * (8-bit significands, relative error <= 2^-8 per factor), summed in fp32,
 * so a sum of n terms of random sign is off by about 2^-8 sqrt(n) of its
 * terms' size: 2% of the largest output is a loose bound for n <= 2304. */
static void test_agreement(int B, int Cin, int Cout, int H, int W) {
    conv2d_dims d = {B, Cin, H, W, Cout, 3, 1};
    const size_t nin = (size_t)B * Cin * H * W, nout = (size_t)B * Cout * H * W, nw = (size_t)Cout * Cin * 9;
    float *inp = falloc(nin), *w = falloc(nw), *bias = falloc(Cout), *g = falloc(nout);
    test_rng r = {(uint64_t)(B * 1000 + Cin * 10 + Cout)};
    test_fill_normal(&r, inp, nin, 1.0f);
    test_fill_normal(&r, w, nw, 1.0f / sqrtf(9.0f * Cin));
    test_fill_normal(&r, bias, Cout, 0.1f);
    test_fill_normal(&r, g, nout, 1.0f);
    nn_set_precision(NN_PREC_FP32);
    conv_res a = run_conv(&d, inp, w, bias, g);
    CHECK(nn_set_precision(NN_PREC_BF16) == 0 && nn_use_bf16(), "bf16 selected");
    conv_res b = run_conv(&d, inp, w, bias, g);
    const double eo = rel(b.out, a.out, nout), ex = rel(b.dinp, a.dinp, nin), ew = rel(b.dw, a.dw, nw);
    printf("  %dx%dx%d %d->%d: rel max err out %.2e dinp %.2e dW %.2e\n", B, H, W, Cin, Cout, eo, ex, ew);
    if (wino_supported() && !wino_bf16_built() && Cin >= 16) {
        /* an AVX2 Winograd build on a CPU with bf16: its 3x3 convs stay fp32 */
        static int said;
        if (!said++)
            printf("SKIP (bf16 3x3 convs NOT tested): this build's Winograd kernels are AVX2, without bf16 GEMMs, "
                   "so the 3x3 convs run fp32 under bf16; checked: they equal fp32 exactly\n");
        CHECK(eo == 0 && test_max_abs_diff(b.dw, a.dw, nw) == 0, "AVX2 Winograd under bf16 is the fp32 path: %.2e", eo);
    } else {
        CHECK(eo < 2e-2 && eo > 0, "forward bf16 within 2%% (and not the fp32 path): %.2e", eo);
    }
    CHECK(ex < 2e-2, "backward-data bf16 within 2%%: %.2e", ex);
    CHECK(ew < 2e-2, "weight gradient bf16 within 2%%: %.2e", ew);
    CHECK(test_max_abs_diff(b.db, a.db, Cout) == 0, "bias gradient stays fp32");
    /* thread-count independence of the bf16 path */
    nn_init_threads(1);
    conv_res c = run_conv(&d, inp, w, bias, g);
    nn_init_threads(2);
    CHECK(memcmp(c.out, b.out, nout * 4) == 0 && memcmp(c.dinp, b.dinp, nin * 4) == 0 &&
              memcmp(c.dw, b.dw, nw * 4) == 0,
          "bf16 results bit-identical for 1 and 2 threads");
    if (nn_amx_available() && wino_bf16_built() && Cin >= 16) {
        /* the AMX tiles multiply the same bf16 products as vdpbf16ps and sum
         * them in fp32 in another order: the two paths agree to fp32
         * rounding (1e-5 of the largest output), three orders of magnitude
         * inside bf16's distance from fp32, so a mispaired channel, a lost
         * K step or unzeroed padding shows */
        nn_amx_hide(1);
        conv_res v = run_conv(&d, inp, w, bias, g);
        nn_amx_hide(0);
        const double vo = rel(b.out, v.out, nout), vx = rel(b.dinp, v.dinp, nin), vw = rel(b.dw, v.dw, nw);
        printf("    AMX against vdpbf16ps: rel max diff out %.2e dinp %.2e dW %.2e\n", vo, vx, vw);
        CHECK(vo < 1e-5 && vx < 1e-5 && vw < 1e-5, "AMX and vdpbf16ps agree to fp32 rounding: %.2e %.2e %.2e", vo, vx,
              vw);
        free_res(&v);
    }
    nn_set_precision(NN_PREC_FP32);
    free_res(&a), free_res(&b), free_res(&c);
    free(inp), free(w), free(bias), free(g);
}

/* ==== bf16 GEMM paths (gemm.c): linears, attention, 1x1 and stride-2 convs.
 *
 * Every check compares element by element against two references, each
 * with a bound from the element's sum of term magnitudes S = sum |a_k b_k|
 * (+ |bias or accumulated value|) over its n-term reduction:
 *  - the software emulation: operands rounded with nn_bf16_round_sw, products
 *    and sums in double. The kernel's only further error is fp32 summation,
 *    at most (n + 16) 2^-24 S (Higham's gamma_n, + the block/bias adds);
 *    dropping or mispairing one term of a random sum is off by ~S / n, far
 *    outside it for the n used here (n <= 2048, checked below).
 *  - the fp32 op (nn_gemm on the fp32 path): bf16 keeps 8 significant bits
 *    (7 stored), so a bf16 operand is within a relative 2^-8 of the float
 *    and a product within 2^-7 + 2^-16 of it: bound (2^-7 + 2^-15) S +
 *    2 (n + 16) 2^-24 S (both paths' fp32 sums).
 * And the bf16 result must differ from fp32's somewhere (the bf16 path ran). */
#define U24 (1.0 / 16777216.0)
typedef struct {
    double worst_sw, worst_fp; /* max |err| / bound: <= 1 passes */
    double rel_sw, rel_fp;     /* max |err| / max |ref|, for the log */
    int differs;
} cmp_res;

static cmp_res compare(const float *hw, const double *ref, const double *sabs, const float *fp, size_t cnt,
                       int nterms) {
    cmp_res c = {0, 0, 0, 0, 0};
    double mref = 0, esw = 0, efp = 0;
    for (size_t i = 0; i < cnt; i++) {
        const double S = sabs[i] + 1e-30, tsw = (nterms + 16) * U24 * S;
        const double tfp = (1.0 / 128 + 1.0 / 32768) * S + 2 * tsw;
        const double dsw = fabs((double)hw[i] - ref[i]), dfp = fabs((double)hw[i] - fp[i]);
        if (dsw / tsw > c.worst_sw) c.worst_sw = dsw / tsw;
        if (dfp / tfp > c.worst_fp) c.worst_fp = dfp / tfp;
        if (hw[i] != hw[i] || fp[i] != fp[i]) c.worst_sw = c.worst_fp = INFINITY;
        mref = fmax(mref, fabs(ref[i]));
        esw = fmax(esw, dsw), efp = fmax(efp, dfp);
        c.differs |= hw[i] != fp[i];
    }
    c.rel_sw = esw / (mref > 0 ? mref : 1), c.rel_fp = efp / (mref > 0 ? mref : 1);
    return c;
}

static void check_cmp(const char *what, cmp_res c) {
    printf("  %-28s vs sw-emulated %.2e (bound used %.3f), vs fp32 %.2e (bound used %.3f)\n", what, c.rel_sw,
           c.worst_sw, c.rel_fp, c.worst_fp);
    CHECK(c.worst_sw <= 1.0, "%s: within (n+16) 2^-24 S of the bf16 software emulation (%.3f of the bound)", what,
          c.worst_sw);
    CHECK(c.worst_fp <= 1.0, "%s: within 2^-7 S of fp32 (%.3f of the bound)", what, c.worst_fp);
    CHECK(c.differs, "%s: differs from fp32 somewhere (the bf16 path ran)", what);
}

static double rb(float x) { /* bf16 value of x, as the kernels round it */
    const uint32_t u = (uint32_t)nn_bf16_round_sw(x) << 16;
    return (double)from_bits(u);
}

/* Software GEMM reference: ref = beta C0 + alpha sum_k rb(op(A)) rb(op(B)), S likewise in magnitudes. */
static void gemm_ref(double *ref, double *sabs, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, const float *C0, int ldc) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0, sa = 0;
            for (int k = 0; k < K; k++) {
                const double a = rb(ta ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k]);
                const double b = rb(tb ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n]);
                s += a * b, sa += fabs(a * b);
            }
            const double c0 = beta != 0.0f ? (double)beta * C0[(size_t)m * ldc + n] : 0.0;
            ref[(size_t)m * N + n] = c0 + alpha * s;
            sabs[(size_t)m * N + n] = fabs(c0) + fabs(alpha) * sa;
        }
}

/* The software emulation itself, on any CPU: against fp32 sgemm it must sit
 * within the 2^-7 S bound and differ from it (the operands really were
 * rounded), so the reference the hw kernels are held to is sound. */
static void test_sw_reference(void) {
    test_rng r = {5};
    for (int t = 0; t < 4; t++) {
        const int M = 13, N = 37, K = 300, ta = t & 1, tb = t >> 1, lda = ta ? M : K, ldb = tb ? K : N;
        float *A = falloc((size_t)M * K), *B = falloc((size_t)K * N), *F = falloc((size_t)M * N);
        double *ref = malloc(sizeof(double) * M * N), *sabs = malloc(sizeof(double) * M * N);
        test_fill_normal(&r, A, (size_t)M * K, 1.0f), test_fill_normal(&r, B, (size_t)K * N, 1.0f);
        nn_set_precision(NN_PREC_FP32);
        nn_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, F, N);
        gemm_ref(ref, sabs, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, NULL, N);
        double worst = 0, maxd = 0;
        for (int i = 0; i < M * N; i++) {
            const double d = fabs(F[i] - ref[i]);
            worst = fmax(worst, d / ((1.0 / 128 + 1.0 / 32768) * sabs[i] + 2 * (K + 16) * U24 * sabs[i]));
            maxd = fmax(maxd, d / sabs[i]);
        }
        CHECK(worst <= 1.0 && maxd > 1e-5,
              "sw bf16 GEMM reference ta%d tb%d: within 2^-7 S of fp32 (%.3f) and not fp32 (%.1e)", ta, tb, worst,
              maxd);
        free(A), free(B), free(F), free(ref), free(sabs);
    }
}

/* Fill the stack below the caller with NaN bytes, so a GEMM that counts on
 * zeros in packing buffers (on its stack) that it did not write shows. */
static __attribute__((noinline)) void stack_poison(void) {
    volatile unsigned char buf[256 * 1024];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = 0xFF;
}

/* nn_gemm_bf16 on its own: every transpose case, odd sizes and K tails,
 * K over one 256-k block, the A B^T path for K >= 2048 (with tails), alpha /
 * beta, beta = 0 over NaN, ldc > N. */
static void test_gemm(void) {
    static const int shapes[][3] = {{1, 1, 1},     {8, 32, 2},   {7, 33, 5},     {17, 47, 130},
                                    {64, 96, 257}, {9, 70, 700}, {40, 31, 2048}, {5, 9, 2101}};
    test_rng r = {11};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int t = 0; t < 4; t++) {
            const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], ta = t & 1, tb = t >> 1;
            const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
            const float alpha = t == 1 ? 0.125f : 1.0f, beta = t == 0 ? 0.0f : t == 2 ? 1.0f : -0.5f;
            float *A = falloc((size_t)(ta ? K : M) * lda), *B = falloc((size_t)(tb ? N : K) * ldb);
            float *C0 = falloc((size_t)M * ldc), *C = falloc((size_t)M * ldc), *F = falloc((size_t)M * ldc);
            double *ref = malloc(sizeof(double) * M * N), *sabs = malloc(sizeof(double) * M * N);
            test_fill_normal(&r, A, (size_t)(ta ? K : M) * lda, 1.0f);
            test_fill_normal(&r, B, (size_t)(tb ? N : K) * ldb, 1.0f);
            test_fill_normal(&r, C0, (size_t)M * ldc, 1.0f);
            for (size_t i = 0; i < (size_t)M * ldc; i++) C[i] = F[i] = beta == 0.0f ? NAN : C0[i];
            stack_poison();
            CHECK(nn_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0, "gemm_bf16 ran");
            nn_set_precision(NN_PREC_FP32);
            nn_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, F, ldc); /* cblas_sgemm */
            gemm_ref(ref, sabs, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc);
            float *c = falloc((size_t)M * N), *f = falloc((size_t)M * N);
            int pad_ok = 1;
            for (int m = 0; m < M; m++) {
                memcpy(c + (size_t)m * N, C + (size_t)m * ldc, N * 4),
                    memcpy(f + (size_t)m * N, F + (size_t)m * ldc, N * 4);
                for (int j = N; j < ldc; j++)
                    pad_ok &= memcmp(&C[(size_t)m * ldc + j],
                                     beta == 0.0f ? &F[(size_t)m * ldc + j] : &C0[(size_t)m * ldc + j], 4) == 0;
            }
            char what[64];
            snprintf(what, sizeof what, "gemm %dx%dx%d ta%d tb%d", M, N, K, ta, tb);
            cmp_res cr = compare(c, ref, sabs, f, (size_t)M * N, K);
            if (K == 1) cr.differs = 1; /* one product of bf16-exact values may equal fp32's */
            check_cmp(what, cr);
            CHECK(pad_ok, "%s: nothing written past N in a row of C", what);
            if (K >= 5) { /* the tight bound rejects a kernel that drops one term */
                const double a = rb(ta ? A[0] : A[0]), b = rb(tb ? B[0] : B[0]);
                const double dropped = fabs(alpha * a * b), bound = (K + 16) * U24 * sabs[0];
                CHECK(dropped > bound || dropped < 1e-3 * sabs[0] / K,
                      "%s: a dropped term (%.2e) would exceed the sw bound (%.2e)", what, dropped, bound);
            }
            free(A), free(B), free(C0), free(C), free(F), free(ref), free(sabs), free(c), free(f);
        }
}

/* linear_forward / linear_backward on the bf16 path (U-Net shapes: batch 16,
 * the time embedding's 128 -> 512 and a block's 512 -> 64). */
static void test_linear(int B, int Cin, int Cout) {
    const size_t ni = (size_t)B * Cin, no = (size_t)B * Cout, nw = (size_t)Cout * Cin;
    float *x = falloc(ni), *w = falloc(nw), *bias = falloc(Cout), *g = falloc(no);
    test_rng r = {(uint64_t)(Cin * 7 + Cout)};
    test_fill_normal(&r, x, ni, 1.0f), test_fill_normal(&r, w, nw, 0.1f);
    test_fill_normal(&r, bias, Cout, 0.1f), test_fill_normal(&r, g, no, 1.0f);
    float *o[2], *dx[2], *dw[2], *db[2];
    for (int bf = 0; bf < 2; bf++) {
        nn_set_precision(bf ? NN_PREC_BF16 : NN_PREC_FP32);
        o[bf] = falloc(no), dx[bf] = falloc(ni), dw[bf] = falloc(nw), db[bf] = falloc(Cout);
        linear_forward(o[bf], x, w, bias, B, Cin, Cout);
        linear_backward(dx[bf], dw[bf], db[bf], g, x, w, B, Cin, Cout);
    }
    nn_set_precision(NN_PREC_FP32);
    double *ref = malloc(sizeof(double) * (ni + no + nw)), *sab = malloc(sizeof(double) * (ni + no + nw));
    char what[64];
    /* out = bias + x W^T: the GEMM adds to the bias already in C (beta 1) */
    for (int b = 0; b < B; b++)
        for (int co = 0; co < Cout; co++) {
            double s = bias[co], sa = fabs(bias[co]);
            for (int ci = 0; ci < Cin; ci++) {
                const double t = rb(x[(size_t)b * Cin + ci]) * rb(w[(size_t)co * Cin + ci]);
                s += t, sa += fabs(t);
            }
            ref[(size_t)b * Cout + co] = s, sab[(size_t)b * Cout + co] = sa;
        }
    snprintf(what, sizeof what, "linear fwd %d %d->%d", B, Cin, Cout);
    check_cmp(what, compare(o[1], ref, sab, o[0], no, Cin));
    for (int b = 0; b < B; b++) /* dx = g W */
        for (int ci = 0; ci < Cin; ci++) {
            double s = 0, sa = 0;
            for (int co = 0; co < Cout; co++) {
                const double t = rb(g[(size_t)b * Cout + co]) * rb(w[(size_t)co * Cin + ci]);
                s += t, sa += fabs(t);
            }
            ref[(size_t)b * Cin + ci] = s, sab[(size_t)b * Cin + ci] = sa;
        }
    snprintf(what, sizeof what, "linear dinp %d %d->%d", B, Cin, Cout);
    check_cmp(what, compare(dx[1], ref, sab, dx[0], ni, Cout));
    for (int co = 0; co < Cout; co++) /* dW = g^T x */
        for (int ci = 0; ci < Cin; ci++) {
            double s = 0, sa = 0;
            for (int b = 0; b < B; b++) {
                const double t = rb(g[(size_t)b * Cout + co]) * rb(x[(size_t)b * Cin + ci]);
                s += t, sa += fabs(t);
            }
            ref[(size_t)co * Cin + ci] = s, sab[(size_t)co * Cin + ci] = sa;
        }
    snprintf(what, sizeof what, "linear dW %d %d->%d", B, Cin, Cout);
    check_cmp(what, compare(dw[1], ref, sab, dw[0], nw, B));
    CHECK(memcmp(db[0], db[1], Cout * 4) == 0, "linear dbias stays fp32 (bit-identical)");
    for (int bf = 0; bf < 2; bf++) free(o[bf]), free(dx[bf]), free(dw[bf]), free(db[bf]);
    free(ref), free(sab), free(x), free(w), free(bias), free(g);
}

/* conv2d (K = 1 stride 1: the skips and attention projections; K = 3 stride
 * 2: the downsamplers, im2col + GEMM) forward, dinp and dW on the bf16 path,
 * with a direct double reference; dbias stays fp32. Thread-count independent. */
static void test_conv_gemm(int B, int Cin, int Cout, int H, int W, int K, int st) {
    conv2d_dims d = {B, Cin, H, W, Cout, K, st};
    const int Ho = conv2d_out_h(&d), Wo = conv2d_out_w(&d), pad = K / 2, T = K * K;
    const size_t nin = (size_t)B * Cin * H * W, nout = (size_t)B * Cout * Ho * Wo, nw = (size_t)Cout * Cin * T;
    float *inp = falloc(nin), *w = falloc(nw), *bias = falloc(Cout), *g = falloc(nout);
    test_rng r = {(uint64_t)(B * 1000 + Cin * 10 + Cout + K)};
    test_fill_normal(&r, inp, nin, 1.0f), test_fill_normal(&r, w, nw, 1.0f / sqrtf((float)T * Cin));
    test_fill_normal(&r, bias, Cout, 0.1f), test_fill_normal(&r, g, nout, 1.0f);
    float *o[3], *dx[3], *dw[3], *db[3];
    for (int v = 0; v < 3; v++) { /* fp32, bf16 at 2 threads, bf16 at 1 thread */
        nn_set_precision(v ? NN_PREC_BF16 : NN_PREC_FP32);
        nn_init_threads(v == 2 ? 1 : 2);
        o[v] = falloc(nout), dx[v] = falloc(nin), dw[v] = falloc(nw), db[v] = falloc(Cout);
        float *fs = falloc(conv2d_forward_scratch(&d)), *bs = falloc(conv2d_backward_scratch(&d));
        conv2d_forward(o[v], inp, w, bias, &d, fs);
        conv2d_backward(dx[v], dw[v], db[v], g, inp, w, &d, bs);
        float *dxi = falloc(nin); /* conv2d_backward_into: the same values, dinp never read */
        for (size_t i = 0; i < nin; i++) dxi[i] = NAN;
        conv2d_backward_into(dxi, NULL, NULL, g, inp, w, &d, bs);
        const size_t bad = test_count_unequal(dxi, dx[v], nin);
        CHECK(bad == 0, "conv%dx%d/%d %s: conv2d_backward_into differs from conv2d_backward in %zu of %zu", K, K, st,
              v ? "bf16" : "fp32", bad, nin);
        free(fs), free(bs), free(dxi);
    }
    nn_init_threads(2);
    nn_set_precision(NN_PREC_FP32);
    const size_t nmax = nout > nin ? (nout > nw ? nout : nw) : (nin > nw ? nin : nw);
    double *ro = calloc(nmax, 8), *so = calloc(nmax, 8), *rx = calloc(nin, 8), *sx = calloc(nin, 8);
    double *rw = calloc(nw, 8), *sw = calloc(nw, 8);
    for (int b = 0; b < B; b++)
        for (int co = 0; co < Cout; co++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    const size_t oi = (((size_t)b * Cout + co) * Ho + oy) * Wo + ox;
                    const double gv = rb(g[oi]);
                    double s = bias[co], sa = fabs(bias[co]);
                    for (int ci = 0; ci < Cin; ci++)
                        for (int t = 0; t < T; t++) {
                            const int iy = oy * st + t / K - pad, ix = ox * st + t % K - pad;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            const size_t ii = (((size_t)b * Cin + ci) * H + iy) * W + ix,
                                         wi = ((size_t)co * Cin + ci) * T + t;
                            const double xv = rb(inp[ii]), wv = rb(w[wi]);
                            s += xv * wv, sa += fabs(xv * wv);
                            rx[ii] += gv * wv, sx[ii] += fabs(gv * wv);
                            rw[wi] += gv * xv, sw[wi] += fabs(gv * xv);
                        }
                    ro[oi] = s, so[oi] = sa;
                }
    char what[80];
    snprintf(what, sizeof what, "conv%dx%d/%d fwd %d %dx%d %d->%d", K, K, st, B, H, W, Cin, Cout);
    check_cmp(what, compare(o[1], ro, so, o[0], nout, Cin * T));
    snprintf(what, sizeof what, "conv%dx%d/%d dinp %d %dx%d %d->%d", K, K, st, B, H, W, Cin, Cout);
    check_cmp(what, compare(dx[1], rx, sx, dx[0], nin, Cout * T));
    snprintf(what, sizeof what, "conv%dx%d/%d dW %d %dx%d %d->%d", K, K, st, B, H, W, Cin, Cout);
    check_cmp(what, compare(dw[1], rw, sw, dw[0], nw, B * Ho * Wo));
    CHECK(memcmp(db[0], db[1], Cout * 4) == 0, "conv dbias stays fp32 (bit-identical)");
    CHECK(memcmp(o[1], o[2], nout * 4) == 0 && memcmp(dx[1], dx[2], nin * 4) == 0 && memcmp(dw[1], dw[2], nw * 4) == 0,
          "conv%dx%d/%d bf16: bit-identical for 1 and 2 threads", K, K, st);
    for (int v = 0; v < 3; v++) free(o[v]), free(dx[v]), free(dw[v]), free(db[v]);
    free(ro), free(so), free(rx), free(sx), free(rw), free(sw), free(inp), free(w), free(bias), free(g);
}

/* attention_forward / attention_backward on the bf16 path (the U-Net's 8x8
 * level: C 128, N 64; and an N that is not a multiple of the 32-row blocks).
 * Reference, in double: S = rb(q)^T rb(k) / sqrt(C), A = softmax(S) (checked
 * against the att cache with the bound exp(2 (C+16) 2^-24 S_abs) - 1 per
 * row, from the logits' fp32-sum bound), out = rb(v) rb(att)^T with the
 * kernel's own att (an exact emulation of that GEMM: the sw bound applies);
 * backward: dv = rb(dout) rb(A) (exact emulation), dA = rb(dout)^T rb(v),
 * dS = A (dA - rowsum(dA A)) from the fp32 A, dq = rb(k) rb(dS)^T / sqrt(C),
 * dk = rb(q) rb(dS) / sqrt(C). The kernel rounds its own fp32 dS, which can
 * land on the other side of a bf16 rounding boundary than the double dS: for
 * dq and dk the sw bound gets one bf16 half-ulp per term, 2^-9 S, on top
 * (still 4x tighter than the fp32 bound; dv and out keep the tight bound).
 * Against fp32, dq and dk get twice the GEMM bound: their dS operand already
 * carries dA's bf16 error. */
static void test_attention(int B, int C, int N) {
    const size_t nq = (size_t)B * 3 * C * N, no = (size_t)B * C * N, na = (size_t)B * N * N;
    float *qkv = falloc(nq), *g = falloc(no);
    test_rng r = {(uint64_t)(C * 100 + N)};
    test_fill_normal(&r, qkv, nq, 1.0f), test_fill_normal(&r, g, no, 1.0f);
    float *o[2], *att[2], *dq[2];
    float *sc = falloc(attention_backward_scratch(C, N) + attention_forward_scratch(C, N));
    for (int bf = 0; bf < 2; bf++) {
        nn_set_precision(bf ? NN_PREC_BF16 : NN_PREC_FP32);
        o[bf] = falloc(no), att[bf] = falloc(na), dq[bf] = falloc(nq);
        attention_forward(o[bf], att[bf], qkv, B, C, N, sc);
        attention_backward(dq[bf], g, qkv, att[bf], B, C, N, sc);
    }
    nn_set_precision(NN_PREC_FP32);
    const double scale = 1.0 / sqrt((double)C);
    double *ro = calloc(no, 8), *so = calloc(no, 8), *rq = calloc(nq, 8), *sq = calloc(nq, 8);
    double *S = calloc((size_t)N * N, 8), *dS = calloc((size_t)N * N, 8);
    float *ofp = falloc(no), *dqfp = falloc(nq); /* the fp32 op on the bf16 path's att: same A for both */
    float *sc2 = falloc(attention_backward_scratch(C, N));
    attention_backward(dqfp, g, qkv, att[1], B, C, N, sc2);
    double worst_att = 0, rel_att_fp = 0;
    int nterm_bad = 0;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * 3 * C * N, *k = q + (size_t)C * N, *v = k + (size_t)C * N;
        const float *A = att[1] + (size_t)b * N * N, *Af = att[0] + (size_t)b * N * N;
        const float *dO = g + (size_t)b * C * N;
        for (int i = 0; i < N; i++) {
            double mx = -INFINITY, sum = 0, sab = 0;
            for (int j = 0; j < N; j++) {
                double s = 0, sa = 0;
                for (int c = 0; c < C; c++) {
                    const double t = rb(q[(size_t)c * N + i]) * rb(k[(size_t)c * N + j]);
                    s += t, sa += fabs(t);
                }
                S[(size_t)i * N + j] = s * scale, mx = fmax(mx, s * scale), sab = fmax(sab, sa * scale);
            }
            for (int j = 0; j < N; j++) sum += exp(S[(size_t)i * N + j] - mx);
            const double tol = expm1(2 * (C + 16) * U24 * sab) + 8 * U24 * N; /* + expf and the fp32 normalisation */
            for (int j = 0; j < N; j++) {
                const double a = exp(S[(size_t)i * N + j] - mx) / sum,
                             e = fabs(A[(size_t)i * N + j] - a) / (a * tol + 1e-30);
                worst_att = fmax(worst_att, e);
                rel_att_fp = fmax(rel_att_fp, fabs(A[(size_t)i * N + j] - Af[(size_t)i * N + j]));
            }
        }
        for (int c = 0; c < C; c++) /* out = v att^T, on the kernel's own att */
            for (int i = 0; i < N; i++) {
                double s = 0, sa = 0;
                for (int j = 0; j < N; j++) {
                    const double t = rb(v[(size_t)c * N + j]) * rb(A[(size_t)i * N + j]);
                    s += t, sa += fabs(t);
                }
                ro[(size_t)b * C * N + (size_t)c * N + i] = s, so[(size_t)b * C * N + (size_t)c * N + i] = sa;
            }
        for (int i = 0; i < N; i++) { /* dS from the kernel's fp32 A */
            double dot = 0;
            for (int j = 0; j < N; j++) {
                double s = 0;
                for (int c = 0; c < C; c++) s += rb(dO[(size_t)c * N + i]) * rb(v[(size_t)c * N + j]);
                dS[(size_t)i * N + j] = s, dot += s * A[(size_t)i * N + j];
            }
            for (int j = 0; j < N; j++) dS[(size_t)i * N + j] = A[(size_t)i * N + j] * (dS[(size_t)i * N + j] - dot);
        }
        double *rqb = rq + (size_t)b * 3 * C * N, *sqb = sq + (size_t)b * 3 * C * N;
        for (int c = 0; c < C; c++)
            for (int i = 0; i < N; i++) {
                double s0 = 0, a0 = 0, s1 = 0, a1 = 0, s2 = 0, a2 = 0;
                for (int j = 0; j < N; j++) {
                    const double t0 = rb(k[(size_t)c * N + j]) * rb((float)dS[(size_t)i * N + j]) * scale;
                    const double t1 = rb(q[(size_t)c * N + j]) * rb((float)dS[(size_t)j * N + i]) * scale;
                    const double t2 = rb(dO[(size_t)c * N + j]) * rb(A[(size_t)j * N + i]);
                    s0 += t0, a0 += fabs(t0), s1 += t1, a1 += fabs(t1), s2 += t2, a2 += fabs(t2);
                }
                rqb[(size_t)c * N + i] = s0, sqb[(size_t)c * N + i] = a0;
                rqb[(size_t)(C + c) * N + i] = s1, sqb[(size_t)(C + c) * N + i] = a1;
                rqb[(size_t)(2 * C + c) * N + i] = s2, sqb[(size_t)(2 * C + c) * N + i] = a2;
            }
    }
    (void)nterm_bad, (void)ofp;
    char what[64];
    printf("  attention %d C%d N%d: att vs sw softmax %.3f of the bound, max |att bf16 - att fp32| %.2e\n", B, C, N,
           worst_att, rel_att_fp);
    CHECK(worst_att <= 1.0, "attention att: within the logits' fp32 bound of the emulated softmax (%.3f)", worst_att);
    CHECK(rel_att_fp > 0 && rel_att_fp < 0.02, "attention att: bf16 != fp32 and within 0.02 (probabilities): %.2e",
          rel_att_fp);
    /* out: the fp32 reference is the fp32 op's own out (its att differs by the logits' bf16 error) */
    float *ofp2 = falloc(no);
    nn_set_precision(NN_PREC_FP32);
    snprintf(what, sizeof what, "attention out C%d N%d", C, N);
    {
        cmp_res cr = compare(o[1], ro, so, o[0], no, N);
        cr.worst_fp = 0; /* compared below, against fp32 on the same att */
        check_cmp(what, cr);
    }
    /* the fp32 out on the bf16 path's att (AV GEMM only) for the fp32 bound */
    for (int b = 0; b < B; b++)
        nn_gemm(0, 1, C, N, N, 1.0f, qkv + (size_t)b * 3 * C * N + (size_t)2 * C * N, N, att[1] + (size_t)b * N * N, N,
                0.0f, ofp2 + (size_t)b * C * N, N);
    snprintf(what, sizeof what, "attention out(att) C%d N%d", C, N);
    check_cmp(what, compare(o[1], ro, so, ofp2, no, N));
    /* dv exact emulation; dq, dk with the rounding-boundary allowance (see above) */
    for (int part = 0; part < 3; part++) {
        const size_t cnt = (size_t)C * N;
        float *hw = falloc((size_t)B * cnt), *fp = falloc((size_t)B * cnt);
        double *rr = malloc(8 * B * cnt), *ss = malloc(8 * B * cnt);
        for (int b = 0; b < B; b++) {
            const size_t off = (size_t)b * 3 * C * N + (size_t)part * cnt;
            memcpy(hw + b * cnt, dq[1] + off, cnt * 4), memcpy(fp + b * cnt, dqfp + off, cnt * 4);
            memcpy(rr + b * cnt, rq + off, cnt * 8), memcpy(ss + b * cnt, sq + off, cnt * 8);
        }
        cmp_res cr = compare(hw, rr, ss, fp, (size_t)B * cnt, N);
        if (part < 2) { /* re-score against (n+16) 2^-24 S + 2^-9 S */
            double worst = 0;
            for (size_t i = 0; i < (size_t)B * cnt; i++)
                worst = fmax(worst, fabs(hw[i] - rr[i]) / ((N + 16) * U24 * ss[i] + ss[i] / 512 + 1e-30));
            cr.worst_sw = worst;
            /* vs fp32: dS itself comes from dA's bf16 GEMM, a second 2^-7 stage */
            cr.worst_fp /= 2;
        }
        snprintf(what, sizeof what, "attention %s C%d N%d", part == 0 ? "dq" : part == 1 ? "dk" : "dv", C, N);
        check_cmp(what, cr);
        free(hw), free(fp), free(rr), free(ss);
    }
    for (int bf = 0; bf < 2; bf++) free(o[bf]), free(att[bf]), free(dq[bf]);
    free(qkv), free(g), free(sc), free(sc2), free(ro), free(so), free(rq), free(sq), free(S), free(dS), free(ofp),
        free(dqfp), free(ofp2);
}

/* One output channel's NaN weights stay in that channel, on the path the
 * precision picks: fp32, vdpbf16ps or AMX. The bf16 kernels pad the channel
 * pairs past Cin (odd Cin here) and the blocks of output channels past Cout
 * (33 = 4 blocks of 8 and one of 1); a padding that read the next block's
 * weights instead of zeros multiplies them by V's zeroed rows, which hides
 * finite values but not NaN: 0 x NaN is NaN in a neighbouring channel.
 * The scratch starts as NaN, so V's padding rows are zeros only if the
 * kernel wrote them. */
static void test_channel_isolation(int prec, const char *path) {
    enum { B = 1, CIN = 17, COUT = 33, H = 9, W = 11, BAD = 8 };
    conv2d_dims d = {B, CIN, H, W, COUT, 3, 1};
    const size_t nin = (size_t)B * CIN * H * W, nw = (size_t)COUT * CIN * 9, hw = (size_t)H * W;
    float *inp = falloc(nin), *w = falloc(nw), *out = falloc((size_t)B * COUT * hw);
    test_rng r = {11};
    test_fill_normal(&r, inp, nin, 1.0f);
    test_fill_normal(&r, w, nw, 0.05f);
    for (size_t i = 0; i < (size_t)CIN * 9; i++) w[(size_t)BAD * CIN * 9 + i] = NAN;
    const size_t nfs = conv2d_forward_scratch(&d);
    float *fs = falloc(nfs);
    memset(fs, 0xFF, sizeof(float) * nfs); /* NaN, as run_conv's: padding the kernel did not zero shows */
    nn_set_precision(prec);
    conv2d_forward(out, inp, w, NULL, &d, fs);
    nn_set_precision(NN_PREC_FP32);
    int leaked = 0, kept = 1;
    for (int c = 0; c < COUT; c++)
        for (size_t i = 0; i < hw; i++) {
            const int fin = isfinite(out[(size_t)c * hw + i]);
            if (c == BAD)
                kept &= !fin;
            else
                leaked += !fin;
        }
    CHECK(kept && leaked == 0, "%s: channel %d's NaN weights stay in it (%d values of other channels not finite)", path,
          BAD, leaked);
    free(inp), free(w), free(out), free(fs);
}

/* Without AVX512-BF16: BF16 is refused, AUTO runs fp32, results are fp32's bits. */
static void test_fallback(void) {
    conv2d_dims d = {2, 32, 12, 10, 24, 3, 1};
    const size_t nin = 2 * 32 * 120, nout = 2 * 24 * 120, nw = 24 * 32 * 9;
    float *inp = falloc(nin), *w = falloc(nw), *g = falloc(nout);
    test_rng r = {3};
    test_fill_normal(&r, inp, nin, 1.0f);
    test_fill_normal(&r, w, nw, 0.05f);
    test_fill_normal(&r, g, nout, 1.0f);
    nn_set_precision(NN_PREC_FP32);
    conv_res a = run_conv(&d, inp, w, NULL, g);
    nn_bf16_hide(1);
    CHECK(!nn_bf16_available(), "hidden: not available");
    CHECK(nn_set_precision(NN_PREC_BF16) == -1 && nn_precision() == NN_PREC_FP32, "hidden: BF16 refused, fp32 kept");
    CHECK(nn_set_precision(NN_PREC_AUTO) == 0 && !nn_use_bf16(), "hidden: AUTO runs fp32");
    uint16_t h;
    const float one = 1.0f;
    CHECK(nn_bf16_round_hw(&h, &one, 1) == -1, "hidden: no hardware conversion");
    float c = 7.0f;
    CHECK(nn_gemm_bf16(0, 0, 1, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, &c, 1) == -1 && c == 7.0f,
          "hidden: no bf16 GEMM (returns -1, C untouched)");
    CHECK(!nn_amx_available() && !nn_use_amx(), "hidden bf16: no AMX either");
    conv_res b = run_conv(&d, inp, w, NULL, g);
    CHECK(memcmp(a.out, b.out, nout * 4) == 0 && memcmp(a.dinp, b.dinp, nin * 4) == 0 &&
              memcmp(a.dw, b.dw, nw * 4) == 0,
          "hidden: AUTO gives fp32's bits");
    nn_bf16_hide(0);
    nn_set_precision(NN_PREC_FP32);
    free_res(&a), free_res(&b);
    free(inp), free(w), free(g);
}

/* The AMX switch of the public API: dr_amx_available says what the machine
 * has whatever dr_set_amx said; dr_amx_active follows dr_set_amx and the
 * precision; off, the layers run the vdpbf16ps kernels (nn_use_amx 0). */
static void test_amx_switch(void) {
    const int has = nn_amx_available();
    CHECK(dr_amx_available() == has, "dr_amx_available %d, the kernels see %d", dr_amx_available(), has);
    dr_set_precision(DR_PRECISION_FP32);
    CHECK(!dr_amx_active(), "fp32: AMX not active");
    CHECK(dr_set_precision(DR_PRECISION_BF16) == DR_OK && dr_amx_active() == has, "bf16: AMX active where available");
    dr_set_amx(0);
    CHECK(!dr_amx_active() && !nn_use_amx() && nn_use_bf16(), "dr_set_amx(0): bf16 without AMX");
    CHECK(dr_amx_available() == has, "dr_set_amx(0) does not change dr_amx_available");
    dr_set_amx(1);
    CHECK(dr_amx_active() == has, "dr_set_amx(1): AMX active again where available");
    dr_set_precision(DR_PRECISION_FP32);
}

/* PSNR in dB of two same-shape images (over the pixels where sel[i] != 0 when
 * sel is given; 8-bit peak 255, 16-bit 65535); INFINITY when they are equal. */
static double image_psnr(const dr_image *a, const dr_image *b, const unsigned char *sel) {
    double se = 0;
    size_t n = 0;
    const size_t np = (size_t)a->width * a->height;
    for (size_t i = 0; i < np; i++) {
        if (sel && !sel[i]) continue;
        for (int c = 0; c < a->channels; c++) {
            const double d = (double)a->data[i * a->channels + c] - b->data[i * b->channels + c];
            se += d * d;
            n++;
        }
    }
    const double peak = a->depth == 16 ? 65535.0 : 255.0;
    return se == 0 || n == 0 ? INFINITY : 10 * log10(peak * peak * n / se);
}

/* One restore with the weights W at precision P (default sampler of the mode). */
static int restore_at(dr_model *m, dr_precision prec, const dr_image *in, const dr_image *mask, double scale,
                      dr_image *out) {
    dr_params p;
    dr_params_init_mode(&p, dr_model_mode(m));
    p.seed = 5;
    if (scale > 0) p.scale = scale;
    if (dr_set_precision(prec) != DR_OK) return -1;
    const int rc = dr_restore(m, in, mask, &p, out);
    dr_set_precision(DR_PRECISION_FP32);
    return rc;
}

/* Restore a shipped sample with a shipped model in fp32 and in bf16: the two
 * outputs agree to >= 45 dB (and over inpaint's holes alone too). */
static void test_restore_agreement(const char *mode, const char *image, const char *maskfile, double scale) {
    char wpath[1024], ipath[1024], mpath[1024];
    snprintf(wpath, sizeof wpath, "%s/weights/%s.safetensors", DR_SOURCE_DIR, mode);
    snprintf(ipath, sizeof ipath, "%s/samples/%s", DR_SOURCE_DIR, image);
    dr_model *m = NULL;
    dr_image in = {0}, mask = {0}, a = {0}, b = {0};
    int ok = dr_model_load(wpath, &m) == DR_OK;
    CHECK(ok, "%s: load %s: %s", mode, wpath, dr_last_error());
    ok = ok && dr_image_load(ipath, 0, &in, NULL) == DR_OK;
    CHECK(ok, "%s: load %s", mode, ipath);
    if (ok && maskfile) {
        snprintf(mpath, sizeof mpath, "%s/samples/%s", DR_SOURCE_DIR, maskfile);
        ok = dr_image_load(mpath, 0, &mask, NULL) == DR_OK;
        CHECK(ok, "%s: load %s", mode, mpath);
    }
    if (ok) {
        const int ra = restore_at(m, DR_PRECISION_FP32, &in, maskfile ? &mask : NULL, scale, &a);
        const int rb = restore_at(m, DR_PRECISION_BF16, &in, maskfile ? &mask : NULL, scale, &b);
        ok = ra == DR_OK && rb == DR_OK;
        CHECK(ok, "%s: restores ran (fp32 %d, bf16 %d): %s", mode, ra, rb, dr_last_error());
    }
    if (ok) {
        ok = a.width == b.width && a.height == b.height && a.channels == b.channels && a.depth == b.depth;
        CHECK(ok, "%s: same output shape", mode);
    }
    if (ok) {
        const double all = image_psnr(&a, &b, NULL);
        printf("  restore %s (%s, %dx%d): bf16 against fp32 %.1f dB", mode, image, a.width, a.height, all);
        CHECK(all >= 45.0, "%s: bf16 agrees with fp32 to %.2f dB (>= 45)", mode, all);
        if (maskfile) { /* the hole: mask's first channel above half its range */
            const size_t np = (size_t)mask.width * mask.height;
            unsigned char *sel = calloc(np, 1);
            const int half = mask.depth == 16 ? 32767 : 127;
            size_t nh = 0;
            for (size_t i = 0; sel && i < np; i++) nh += sel[i] = mask.data[i * mask.channels] > half;
            const double hole = image_psnr(&a, &b, sel);
            printf(", hole (%zu px) %.1f dB", nh, hole);
            CHECK(sel && nh > 0 && hole >= 45.0, "%s: bf16 agrees with fp32 over the hole to %.2f dB (>= 45)", mode,
                  hole);
            free(sel);
        }
        printf("\n");
        /* and the bf16 path really ran: the outputs are not fp32's bits */
        CHECK(isfinite(all), "%s: bf16 output differs from fp32's (the bf16 kernels ran)", mode);
    }
    dr_image_free(&in), dr_image_free(&mask), dr_image_free(&a), dr_image_free(&b);
    dr_model_free(m);
}

int main(void) {
    nn_init_threads(2);
    test_conversion();
    test_fallback();
    test_sw_reference();
    if (!nn_bf16_available()) {
        printf("SKIP (hardware bf16 path NOT tested): this CPU has no AVX512-BF16, so the bf16 Winograd convs, "
               "GEMM, linears, 1x1 / stride-2 convs, attention and the whole-restore agreement did not run; only the "
               "software reference, "
               "the conversion reference and the fp32 fallback were checked\n");
        return test_summary("test_bf16");
    }
    test_amx_switch();
    if (nn_amx_available())
        printf("AMX: the GEMM and the 3x3 convs run on AMX tiles; checked against the vdpbf16ps kernels too\n");
    else
        printf("SKIP (AMX path NOT tested): this CPU has no AMX-BF16, or Linux did not grant the tile state\n");
    test_agreement(16, 64, 64, 16, 16);
    test_agreement(4, 32, 32, 24, 20);
    test_agreement(2, 128, 64, 8, 8);
    test_agreement(1, 17, 33, 9, 11); /* odd channels and sizes */
    test_agreement(3, 256, 128, 5, 7);
    test_agreement(1, 24, 16, 9, 9); /* 25 tiles: the weight gradient's last tile pair is half empty */
    test_agreement(3, 16, 16, 5, 5); /* 27 tiles over 3 samples */
    test_channel_isolation(NN_PREC_FP32, "fp32");
    test_channel_isolation(NN_PREC_BF16, nn_amx_available() ? "bf16 on AMX" : "bf16 on vdpbf16ps");
    if (nn_amx_available()) {
        nn_amx_hide(1);
        test_channel_isolation(NN_PREC_BF16, "bf16 on vdpbf16ps");
        nn_amx_hide(0);
    }
    test_gemm();
    if (nn_amx_available()) { /* and the vdpbf16ps kernels, which run where there is no AMX */
        nn_amx_hide(1);
        test_gemm();
        nn_amx_hide(0);
    }
    test_linear(16, 128, 512);
    test_linear(3, 513, 65);
    test_conv_gemm(16, 128, 384, 8, 8, 1, 1); /* attention qkv at 8x8 */
    test_conv_gemm(2, 96, 64, 16, 16, 1, 1);  /* a skip */
    test_conv_gemm(3, 65, 67, 7, 9, 1, 1);    /* odd channels (>= 64: use_direct) and sizes */
    test_conv_gemm(2, 64, 64, 16, 16, 3, 2);  /* a downsampler */
    test_conv_gemm(1, 19, 21, 9, 7, 3, 2);    /* odd */
    test_attention(2, 128, 64);
    test_attention(1, 40, 45);
    test_restore_agreement("superres", "mountains_128x96.png", NULL, 2.0);
    test_restore_agreement("colorize", "kitten_gray.png", NULL, 0);
    test_restore_agreement("inpaint", "boats_scratched.png", "boats_mask.png", 0);
    return test_summary("test_bf16");
}
