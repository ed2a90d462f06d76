/*
 * test_nn - every layer of src/nn/nn.h, one test function per operation:
 *  (a) forward against a naive double-precision reference written here,
 *  (b) backward against central finite differences of L = sum(out * R) with a
 *      fixed random R (so dout = R), for the input and every parameter,
 *  (c) accumulation: backward twice gives 2x the gradients, NULL dinp works,
 *  (d) bit-identical results for 1, 2 and 3 threads (conv2d, groupnorm,
 *      attention), forward and backward.
 * The worst finite-difference error of each layer is printed at the end.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/vecmath.h"
#include "nn/conv2d_direct.h"
#include "nn/winograd.h"
#include "testutil.h"

/* ------------------------------------------------------------------ helpers */

/* Finite differences run on the float layers themselves. Their outputs carry
 * ~1e-7 relative rounding, which a step h turns into ~1e-7 / h of noise in
 * the difference quotient: with h = 1e-3 that is up to ~1e-3 absolute (seen on
 * GroupNorm), as large as a small gradient entry. h = 1e-2 brings it to ~1e-4
 * while the truncation error, O(h^2) for these smooth layers, stays ~1e-4
 * relative. Gradients here are O(0.1 .. 10), so an absolute floor of 5e-2
 * only relaxes entries that are far below the tensor's scale; a missing term,
 * a transposed weight or a wrong sign is off by far more than 1%. */
#ifndef FD_H
#define FD_H 1e-2 /* central-difference step on a float input */
#endif
#ifndef FD_FLOOR
#define FD_FLOOR 5e-2 /* absolute floor of the relative error's denominator */
#endif
#define FD_TOL     1e-2 /* max relative error of a gradient entry */
#define FD_SAMPLES 40   /* entries perturbed per tensor */
#define ACC_TOL    1e-5 /* backward twice vs 2x once, relative to max |grad| */

static float *falloc(size_t n) { // zeroed; never NULL, even for n == 0
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        perror("calloc");
        abort();
    }
    return p;
}

static float *fdup(const float *x, size_t n) {
    float *p = falloc(n);
    memcpy(p, x, n * sizeof(float));
    return p;
}

static float *frandn(test_rng *r, size_t n, float scale) {
    float *p = falloc(n);
    test_fill_normal(r, p, n, scale);
    return p;
}

/* Max |a - ref| over n values against a double reference. */
static double max_diff_d(const float *a, const double *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= m)) m = d; // NaN propagates
    }
    return m;
}

static double max_abs_d(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) abort();
    return p;
}

/* Worst finite-difference error seen per layer, printed by main. */
static struct {
    const char *layer;
    double worst;
} g_fd[16];
static int g_nfd;

static void fd_note(const char *layer, double err) {
    for (int i = 0; i < g_nfd; i++)
        if (!strcmp(g_fd[i].layer, layer)) {
            if (err > g_fd[i].worst) g_fd[i].worst = err;
            return;
        }
    if (g_nfd < 16) {
        g_fd[g_nfd].layer = layer;
        g_fd[g_nfd++].worst = err;
    }
}

/* The loss of a finite-difference check: forward() writes out [nout], then
 * L = sum(out * R) in double. Layer contexts embed this as their first member. */
typedef struct fd_ctx {
    void (*forward)(struct fd_ctx *);
    float *out;
    const float *R;
    size_t nout;
} fd_ctx;

static double fd_loss(fd_ctx *c) {
    c->forward(c);
    double L = 0;
    for (size_t i = 0; i < c->nout; i++) L += (double)c->out[i] * c->R[i];
    return L;
}

/* Compare grad [n] with central differences of the loss w.r.t. param [n] on up
 * to FD_SAMPLES random entries. The step actually taken, (float)(x+h) -
 * (float)(x-h), is the divisor, so float rounding of x +- h does not count. */
static void fd_check(const char *layer, const char *what, fd_ctx *c, float *param, const float *grad, size_t n,
                     test_rng *rng) {
    const size_t ns = n < FD_SAMPLES ? n : FD_SAMPLES;
    double worst = 0;
    size_t worst_i = 0;
    double worst_num = 0, worst_ana = 0;
    for (size_t s = 0; s < ns; s++) {
        const size_t i = n <= FD_SAMPLES ? s : (size_t)(test_rng_u64(rng) % n);
        const float x = param[i];
        const float xp = (float)(x + FD_H), xm = (float)(x - FD_H);
        param[i] = xp;
        const double Lp = fd_loss(c);
        param[i] = xm;
        const double Lm = fd_loss(c);
        param[i] = x;
        const double num = (Lp - Lm) / ((double)xp - (double)xm);
        const double ana = grad[i];
        double den = fabs(num) > fabs(ana) ? fabs(num) : fabs(ana);
        if (den < FD_FLOOR) den = FD_FLOOR;
        const double err = fabs(num - ana) / den;
        if (!(err <= worst)) {
            worst = err;
            worst_i = i;
            worst_num = num;
            worst_ana = ana;
        }
    }
    fd_note(layer, worst);
    CHECK(worst <= FD_TOL, "%s: d%s[%zu] analytic %.6g vs numeric %.6g (rel err %.3g)", layer, what, worst_i, worst_ana,
          worst_num, worst);
}

/* Backward called twice must give 2x once (+=, not =), up to the rounding of
 * adding partial sums into a non-zero destination. */
static void check_twice(const char *layer, const char *what, const float *once, const float *twice, size_t n) {
    const double scale = test_max_abs(once, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)twice[i] - 2.0 * (double)once[i]);
        if (!(d <= worst)) worst = d;
    }
    CHECK(scale > 0 && worst <= ACC_TOL * scale,
          "%s: d%s after two backward calls is not 2x one call (max diff %.3g, scale %.3g)", layer, what, worst, scale);
}

/* Equal values (a zero's sign may differ: 0 + -0 is +0), no NaN. */
static void check_equal(const char *layer, const char *what, const float *a, const float *b, size_t n) {
    const size_t bad = test_count_unequal(a, b, n);
    CHECK(bad == 0, "%s: %s: %zu of %zu values differ (max diff %.3g)", layer, what, bad, n,
          test_max_abs_diff(a, b, n));
}

static void check_same(const char *layer, const char *what, const float *a, const float *b, size_t n) {
    CHECK(memcmp(a, b, n * sizeof(float)) == 0, "%s: %s differs (max diff %.3g)", layer, what,
          test_max_abs_diff(a, b, n));
}

#define NTHREAD_CASES 3
static const int g_threads[NTHREAD_CASES] = {1, 2, 3};
#define DEFAULT_THREADS 2
static double g_wino_worst; /* worst Winograd rel err (test_conv2d_winograd) */

/* ------------------------------------------------------------------ conv2d */

static void conv2d_ref(double *out, const float *inp, const float *w, const float *bias, const conv2d_dims *d) {
    const int Ho = conv2d_out_h(d), Wo = conv2d_out_w(d), pad = d->K / 2;
    for (int b = 0; b < d->B; b++)
        for (int co = 0; co < d->Cout; co++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    double acc = bias[co];
                    for (int ci = 0; ci < d->Cin; ci++)
                        for (int ky = 0; ky < d->K; ky++)
                            for (int kx = 0; kx < d->K; kx++) {
                                const int iy = oy * d->stride + ky - pad;
                                const int ix = ox * d->stride + kx - pad;
                                if (iy < 0 || iy >= d->H || ix < 0 || ix >= d->W) continue;
                                acc += (double)w[((co * d->Cin + ci) * d->K + ky) * d->K + kx] *
                                    inp[((b * d->Cin + ci) * d->H + iy) * d->W + ix];
                            }
                    out[((b * d->Cout + co) * Ho + oy) * Wo + ox] = acc;
                }
}

typedef struct {
    fd_ctx base;
    const conv2d_dims *d;
    const float *inp, *w, *bias;
    float *scratch;
} conv_ctx;

static void conv_fwd(fd_ctx *c) {
    conv_ctx *x = (conv_ctx *)c;
    conv2d_forward(c->out, x->inp, x->w, x->bias, x->d, x->scratch);
}

static void conv2d_case(test_rng *rng, conv2d_dims d) {
    const int Ho = conv2d_out_h(&d), Wo = conv2d_out_w(&d);
    CHECK(Ho == (d.H + 2 * (d.K / 2) - d.K) / d.stride + 1 && Wo == (d.W + 2 * (d.K / 2) - d.K) / d.stride + 1,
          "conv2d: output size %dx%d", Ho, Wo);
    const size_t ni = (size_t)d.B * d.Cin * d.H * d.W, no = (size_t)d.B * d.Cout * Ho * Wo;
    const size_t nw = (size_t)d.Cout * d.Cin * d.K * d.K;
    float *inp = frandn(rng, ni, 1.0f), *w = frandn(rng, nw, 0.5f), *bias = frandn(rng, d.Cout, 0.5f);
    float *R = frandn(rng, no, 1.0f), *out = falloc(no);
    // exact sizes, so the sanitizer build catches any overrun of the scratch
    float *fs = falloc(conv2d_forward_scratch(&d)), *bs = falloc(conv2d_backward_scratch(&d));
    double *ref = dalloc(no);

    // (a) forward vs the direct 7-loop convolution
    conv2d_forward(out, inp, w, bias, &d, fs);
    conv2d_ref(ref, inp, w, bias, &d);
    const double scale = max_abs_d(ref, no) > 1 ? max_abs_d(ref, no) : 1;
    CHECK(max_diff_d(out, ref, no) <= 1e-5 * scale, "conv2d K=%d s=%d %dx%d Cin=%d Cout=%d: forward max diff %.3g", d.K,
          d.stride, d.H, d.W, d.Cin, d.Cout, max_diff_d(out, ref, no));

    // (b) backward vs finite differences, dout = R
    float *dinp = falloc(ni), *dw = falloc(nw), *db = falloc(d.Cout);
    conv2d_backward(dinp, dw, db, R, inp, w, &d, bs);
    float *inp_p = fdup(inp, ni), *w_p = fdup(w, nw), *b_p = fdup(bias, d.Cout);
    conv_ctx cx = {{conv_fwd, falloc(no), R, no}, &d, inp_p, w_p, b_p, fs};
    fd_check("conv2d", "inp", &cx.base, inp_p, dinp, ni, rng);
    fd_check("conv2d", "weight", &cx.base, w_p, dw, nw, rng);
    fd_check("conv2d", "bias", &cx.base, b_p, db, d.Cout, rng);

    // (c) accumulation, and NULL dinp leaves the parameter gradients unchanged
    float *dinp2 = fdup(dinp, ni), *dw2 = fdup(dw, nw), *db2 = fdup(db, d.Cout);
    conv2d_backward(dinp2, dw2, db2, R, inp, w, &d, bs);
    check_twice("conv2d", "inp", dinp, dinp2, ni);
    check_twice("conv2d", "weight", dw, dw2, nw);
    check_twice("conv2d", "bias", db, db2, d.Cout);
    float *dw3 = falloc(nw), *db3 = falloc(d.Cout);
    conv2d_backward(NULL, dw3, db3, R, inp, w, &d, bs);
    check_same("conv2d", "dweight with dinp=NULL", dw, dw3, nw);
    check_same("conv2d", "dbias with dinp=NULL", db, db3, d.Cout);
    float *dinp3 = falloc(ni);
    conv2d_backward(dinp3, NULL, NULL, R, inp, w, &d, bs);
    check_same("conv2d", "dinp with dweight=dbias=NULL", dinp, dinp3, ni);

    // (e) conv2d_backward_into sets dinp (NaN before: never read) to what (b)
    // accumulated into zeros; the parameter gradients still accumulate
    float *dinp4 = falloc(ni), *dw4 = fdup(dw, nw), *db4 = fdup(db, d.Cout);
    for (size_t i = 0; i < ni; i++) dinp4[i] = NAN;
    conv2d_backward_into(dinp4, dw4, db4, R, inp, w, &d, bs);
    check_equal("conv2d_backward_into", "dinp against conv2d_backward's from zeros", dinp, dinp4, ni);
    check_twice("conv2d_backward_into", "weight", dw, dw4, nw);
    check_twice("conv2d_backward_into", "bias", db, db4, d.Cout);
    free(dinp4), free(dw4), free(db4);

    free(inp), free(w), free(bias), free(R), free(out), free(fs), free(bs), free(ref);
    free(dinp), free(dw), free(db), free(inp_p), free(w_p), free(b_p), free(cx.base.out);
    free(dinp2), free(dw2), free(db2), free(dw3), free(db3), free(dinp3);
}

/* (d) forward and backward bit-identical for every thread count. */
static void conv2d_threads(test_rng *rng, conv2d_dims d) {
    const int Ho = conv2d_out_h(&d), Wo = conv2d_out_w(&d);
    const size_t ni = (size_t)d.B * d.Cin * d.H * d.W, no = (size_t)d.B * d.Cout * Ho * Wo;
    const size_t nw = (size_t)d.Cout * d.Cin * d.K * d.K;
    float *inp = frandn(rng, ni, 1.0f), *w = frandn(rng, nw, 0.5f), *bias = frandn(rng, d.Cout, 0.5f);
    float *R = frandn(rng, no, 1.0f);
    float *out[NTHREAD_CASES], *dinp[NTHREAD_CASES], *dw[NTHREAD_CASES], *db[NTHREAD_CASES];
    for (int t = 0; t < NTHREAD_CASES; t++) {
        nn_init_threads(g_threads[t]); // the forward scratch depends on the thread count
        float *fs = falloc(conv2d_forward_scratch(&d)), *bs = falloc(conv2d_backward_scratch(&d));
        out[t] = falloc(no), dinp[t] = falloc(ni), dw[t] = falloc(nw), db[t] = falloc(d.Cout);
        conv2d_forward(out[t], inp, w, bias, &d, fs);
        conv2d_backward(dinp[t], dw[t], db[t], R, inp, w, &d, bs);
        free(fs), free(bs);
    }
    nn_init_threads(DEFAULT_THREADS);
    for (int t = 1; t < NTHREAD_CASES; t++) {
        check_same("conv2d", "forward across thread counts", out[0], out[t], no);
        check_same("conv2d", "dinp across thread counts", dinp[0], dinp[t], ni);
        check_same("conv2d", "dweight across thread counts", dw[0], dw[t], nw);
        check_same("conv2d", "dbias across thread counts", db[0], db[t], d.Cout);
    }
    for (int t = 0; t < NTHREAD_CASES; t++) free(out[t]), free(dinp[t]), free(dw[t]), free(db[t]);
    free(inp), free(w), free(bias), free(R);
}

static void test_conv2d(void) {
    test_rng rng = {101};
    static const int sizes[][2] = {{7, 6}, {8, 5}}; // odd and even, H != W
    for (int K = 1; K <= 3; K += 2)
        for (int s = 1; s <= 2; s++)
            for (int z = 0; z < 2; z++) conv2d_case(&rng, (conv2d_dims){2, 3, sizes[z][0], sizes[z][1], 5, K, s});
    // Cin * 9 = 72 im2col rows: more than one block of the weight gradient
    conv2d_case(&rng, (conv2d_dims){2, 8, 5, 5, 4, 3, 1});
    // Cout >= 16: the backward-data pass runs through Winograd where it is built
    conv2d_case(&rng, (conv2d_dims){2, 4, 7, 6, 16, 3, 1});
    // large enough for several position chunks and weight blocks per sample
    conv2d_threads(&rng, (conv2d_dims){2, 8, 24, 23, 16, 3, 1});
    conv2d_threads(&rng, (conv2d_dims){2, 8, 24, 23, 16, 3, 2});
    conv2d_threads(&rng, (conv2d_dims){2, 8, 24, 23, 16, 1, 1});
}

/* ------------------------------------------------------------------ conv2d: Winograd */

/* dinp [B, Cin, H, W] += the backward-data pass of a 3x3 stride-1 pad-1 conv
 * with weights w [Cout, Cin, 3, 3], in double. */
static void conv3x3_bwd_data_ref(double *dinp, const float *dout, const float *w, int B, int Cin, int Cout, int H,
                                 int W) {
    for (int b = 0; b < B; b++)
        for (int co = 0; co < Cout; co++)
            for (int oy = 0; oy < H; oy++)
                for (int ox = 0; ox < W; ox++) {
                    const double g = dout[(((size_t)b * Cout + co) * H + oy) * W + ox];
                    for (int ci = 0; ci < Cin; ci++)
                        for (int t = 0; t < 9; t++) {
                            const int iy = oy + t / 3 - 1, ix = ox + t % 3 - 1;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            dinp[(((size_t)b * Cin + ci) * H + iy) * W + ix] +=
                                (double)w[((size_t)co * Cin + ci) * 9 + t] * g;
                        }
                }
}

/* The Winograd F(2x2, 3x3) kernel itself (whatever conv2d's rule picks):
 * forward and accumulating backward-data against the double reference on odd
 * and even sizes, with more tiles than one block, and bit-identical results
 * for 1, 2 and 3 threads. */
static void winograd_case(test_rng *rng, int B, int Cin, int Cout, int H, int W) {
    const conv2d_dims d = {B, Cin, H, W, Cout, 3, 1};
    const size_t ni = (size_t)B * Cin * H * W, no = (size_t)B * Cout * H * W, nw = (size_t)Cout * Cin * 9;
    float *inp = frandn(rng, ni, 1.0f), *w = frandn(rng, nw, 0.5f), *bias = frandn(rng, Cout, 0.5f);
    float *dout = frandn(rng, no, 1.0f), *dinp0 = frandn(rng, ni, 1.0f);
    double *ref = dalloc(no), *dref = dalloc(ni);
    conv2d_ref(ref, inp, w, bias, &d);
    for (size_t i = 0; i < ni; i++) dref[i] = dinp0[i];
    conv3x3_bwd_data_ref(dref, dout, w, B, Cin, Cout, H, W);
    const double fscale = max_abs_d(ref, no) > 1 ? max_abs_d(ref, no) : 1;
    const double bscale = max_abs_d(dref, ni) > 1 ? max_abs_d(dref, ni) : 1;
    float *out[NTHREAD_CASES], *dinp[NTHREAD_CASES];
    for (int t = 0; t < NTHREAD_CASES; t++) {
        nn_init_threads(g_threads[t]);
        const size_t fs = wino_scratch_floats(Cin, Cout), bs = wino_scratch_floats(Cout, Cin);
        float *scratch = falloc(fs > bs ? fs : bs); // exact size: the sanitizer build checks overruns
        out[t] = falloc(no);
        dinp[t] = fdup(dinp0, ni);
        wino_conv3x3(out[t], 0, inp, w, 0, bias, B, Cin, Cout, H, W, scratch);
        wino_conv3x3(dinp[t], 1, dout, w, 1, NULL, B, Cout, Cin, H, W, scratch);
        free(scratch);
    }
    nn_init_threads(DEFAULT_THREADS);
    const double fe = max_diff_d(out[0], ref, no) / fscale, be = max_diff_d(dinp[0], dref, ni) / bscale;
    CHECK(fe <= 1e-5, "winograd %dx%d Cin=%d Cout=%d B=%d: forward max rel err %.3g", H, W, Cin, Cout, B, fe);
    CHECK(be <= 1e-5, "winograd %dx%d Cin=%d Cout=%d B=%d: backward-data max rel err %.3g", H, W, Cin, Cout, B, be);
    for (int t = 1; t < NTHREAD_CASES; t++) {
        check_same("conv2d winograd", "forward across thread counts", out[0], out[t], no);
        check_same("conv2d winograd", "backward-data across thread counts", dinp[0], dinp[t], ni);
    }
    if (fe > g_wino_worst) g_wino_worst = fe;
    if (be > g_wino_worst) g_wino_worst = be;
    for (int t = 0; t < NTHREAD_CASES; t++) free(out[t]), free(dinp[t]);
    free(inp), free(w), free(bias), free(dout), free(dinp0), free(ref), free(dref);
}

static void test_conv2d_winograd(void) {
    if (!wino_supported()) {
        printf("  winograd: not in this build (no AVX-512), skipped\n");
        return;
    }
    test_rng rng = {151};
    static const int sizes[][2] = {{1, 1}, {2, 3}, {7, 5}, {16, 16}, {33, 20}, {20, 33}, {9, 64}, {3, 1}};
    for (int z = 0; z < (int)(sizeof sizes / sizeof *sizes); z++) {
        winograd_case(&rng, 2, 5, 11, sizes[z][0], sizes[z][1]);  // one tile block, odd channel counts
        winograd_case(&rng, 2, 40, 12, sizes[z][0], sizes[z][1]); // 144-tile blocks: several per call
    }
    winograd_case(&rng, 3, 17, 8, 8, 8); // lane groups across sample boundaries
    printf("  winograd F(2x2,3x3): worst rel err vs double %.3g\n", g_wino_worst);
}

/* ------------------------------------------------------------------ conv2d: 3x3 weight gradient */

/* The 3x3 stride-1 weight gradient against a double reference, by each path:
 * conv2d_backward (whatever its rule picks), Winograd F(3x3, 2x2) and the
 * direct GEMM over positions, called directly. Shapes with several channel
 * tiles, Cout not a multiple of 16, position chunks spanning samples (narrow
 * W) or single rows (wide W), odd sizes, a 1x1 image; dW accumulates into a
 * non-zero buffer; bit-identical for 1, 2 and 3 threads. */
#define DW_PATHS 3
static const char *const g_dw_path[DW_PATHS] = {"conv2d_backward", "winograd", "direct"};
static double g_dw_worst[DW_PATHS];

static void dweight_run(int path, float *dw, const float *dout, const float *inp, const float *w,
                        const conv2d_dims *d) {
    const int B = d->B, Cin = d->Cin, Cout = d->Cout, H = d->H, W = d->W;
    if (path == 0) {
        float *bs = falloc(conv2d_backward_scratch(d));
        conv2d_backward(NULL, dw, NULL, dout, inp, w, d, bs);
        free(bs);
    } else if (path == 1) {
        float *bs = falloc(wino_dweight_scratch_floats(B, Cin, Cout, H, W));
        wino_dweight3x3(dw, dout, inp, B, Cin, Cout, H, W, bs);
        free(bs);
    } else {
        const size_t nk = conv_direct_dweight_floats(B, Cin, Cout, H, W);
        float *bs = falloc(nk + conv_direct_pad_floats(B, Cin, H, W, 3));
        conv_direct_pad(bs + nk, inp, B, Cin, H, W);
        conv_direct_dweight3x3(dw, dout, bs + nk, B, Cin, Cout, H, W, bs);
        free(bs);
    }
}

static void dweight_case(test_rng *rng, int B, int Cin, int Cout, int H, int W) {
    const conv2d_dims d = {B, Cin, H, W, Cout, 3, 1};
    const size_t ni = (size_t)B * Cin * H * W, no = (size_t)B * Cout * H * W, nw = (size_t)Cout * Cin * 9;
    float *inp = frandn(rng, ni, 1.0f), *w = frandn(rng, nw, 0.5f), *dout = frandn(rng, no, 1.0f);
    float *dw0 = frandn(rng, nw, 1.0f);
    double *ref = dalloc(nw);
    for (int co = 0; co < Cout; co++)
        for (int ci = 0; ci < Cin; ci++)
            for (int t = 0; t < 9; t++) {
                double acc = dw0[((size_t)co * Cin + ci) * 9 + t];
                for (int b = 0; b < B; b++)
                    for (int y = 0; y < H; y++)
                        for (int x = 0; x < W; x++) {
                            const int iy = y + t / 3 - 1, ix = x + t % 3 - 1;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            acc += (double)dout[(((size_t)b * Cout + co) * H + y) * W + x] *
                                inp[(((size_t)b * Cin + ci) * H + iy) * W + ix];
                        }
                ref[((size_t)co * Cin + ci) * 9 + t] = acc;
            }
    const double scale = max_abs_d(ref, nw) > 1 ? max_abs_d(ref, nw) : 1;
    for (int path = 0; path < DW_PATHS; path++) {
        /* a path this build does not have (neither AVX-512 nor AVX2 + FMA) */
        if ((path == 1 && !wino_supported()) || (path == 2 && !conv_direct_supported(&d))) continue;
        float *dw[NTHREAD_CASES];
        for (int t = 0; t < NTHREAD_CASES; t++) {
            nn_init_threads(g_threads[t]);
            dw[t] = fdup(dw0, nw);
            dweight_run(path, dw[t], dout, inp, w, &d);
        }
        nn_init_threads(DEFAULT_THREADS);
        const double e = max_diff_d(dw[0], ref, nw) / scale;
        CHECK(e <= 1e-5, "conv2d dweight (%s) %dx%d Cin=%d Cout=%d B=%d: max rel err %.3g", g_dw_path[path], H, W, Cin,
              Cout, B, e);
        if (e > g_dw_worst[path]) g_dw_worst[path] = e;
        for (int t = 1; t < NTHREAD_CASES; t++)
            check_same("conv2d", "3x3 dweight across thread counts", dw[0], dw[t], nw);
        for (int t = 0; t < NTHREAD_CASES; t++) free(dw[t]);
    }
    free(inp), free(w), free(dout), free(dw0), free(ref);
}

static void test_conv2d_dweight(void) {
    test_rng rng = {171};
    dweight_case(&rng, 3, 11, 70, 9, 7);  // several channel tiles, chunks across samples
    dweight_case(&rng, 2, 5, 3, 3, 200);  // one 16-wide tile, one row per chunk
    dweight_case(&rng, 2, 20, 130, 1, 1); // 1x1 image: only the centre tap
    dweight_case(&rng, 1, 9, 48, 16, 16);
    dweight_case(&rng, 2, 40, 24, 33, 20); // Winograd: several tile chunks, odd H
    for (int path = 0; path < DW_PATHS; path++)
        printf("  conv2d 3x3 dweight (%s): worst rel err vs double %.3g\n", g_dw_path[path], g_dw_worst[path]);
}

/* ------------------------------------------------------------------ groupnorm */

static void groupnorm_ref(double *out, const float *inp, const float *gamma, const float *beta, int B, int C, int HW,
                          int G, int silu) {
    const int Cg = C / G;
    const size_t gs = (size_t)Cg * HW;
    for (int bg = 0; bg < B * G; bg++) {
        const float *x = inp + bg * gs;
        double m = 0, v = 0;
        for (size_t i = 0; i < gs; i++) m += x[i];
        m /= gs;
        for (size_t i = 0; i < gs; i++) v += (x[i] - m) * (x[i] - m);
        v /= gs;
        for (size_t i = 0; i < gs; i++) {
            const int c = (bg % G) * Cg + (int)(i / HW);
            double a = gamma[c] * (x[i] - m) / sqrt(v + 1e-5) + beta[c];
            out[bg * gs + i] = silu ? a / (1 + exp(-a)) : a;
        }
    }
}

typedef struct {
    fd_ctx base;
    const float *inp, *gamma, *beta;
    float *mean, *rstd;
    int B, C, HW, G, silu;
} gn_ctx;

static void gn_fwd(fd_ctx *c) {
    gn_ctx *x = (gn_ctx *)c;
    groupnorm_forward(c->out, x->mean, x->rstd, x->inp, x->gamma, x->beta, x->B, x->C, x->HW, x->G, x->silu);
}

static void groupnorm_case(int silu) {
    const char *name = silu ? "groupnorm_silu" : "groupnorm";
    test_rng rng = {silu ? 202 : 201};
    const int B = 2, C = 6, G = 3, HW = 5 * 3;
    const size_t n = (size_t)B * C * HW;
    float *inp = frandn(&rng, n, 2.0f), *R = frandn(&rng, n, 1.0f);
    for (size_t i = 0; i < n; i++) inp[i] += 3.0f; // a non-zero mean
    float *gamma = falloc(C), *beta = falloc(C);
    for (int c = 0; c < C; c++) {
        gamma[c] = 1.0f + 0.3f * test_rng_normal(&rng);
        beta[c] = 0.5f * test_rng_normal(&rng);
    }
    float *out = falloc(n), *mean = falloc(B * G), *rstd = falloc(B * G);
    double *ref = dalloc(n);

    // (a) forward vs double reference, then with a large offset (mean 1000,
    // std 1) where a one-pass float E[x^2] - E[x]^2 would lose every digit
    groupnorm_forward(out, mean, rstd, inp, gamma, beta, B, C, HW, G, silu);
    groupnorm_ref(ref, inp, gamma, beta, B, C, HW, G, silu);
    CHECK(max_diff_d(out, ref, n) <= 1e-5, "%s: forward max diff %.3g", name, max_diff_d(out, ref, n));
    {
        float *big = fdup(inp, n), *o2 = falloc(n), *m2 = falloc(B * G), *r2 = falloc(B * G);
        double *ref2 = dalloc(n);
        for (size_t i = 0; i < n; i++) big[i] = 1000.0f + 0.5f * (inp[i] - 3.0f);
        groupnorm_forward(o2, m2, r2, big, gamma, beta, B, C, HW, G, silu);
        groupnorm_ref(ref2, big, gamma, beta, B, C, HW, G, silu);
        // float inputs near 1000 and a float mean: ~1e-4 is what float allows
        CHECK(max_diff_d(o2, ref2, n) <= 2e-4, "%s: forward (offset 1000) max diff %.3g", name,
              max_diff_d(o2, ref2, n));
        free(big), free(o2), free(m2), free(r2), free(ref2);
    }

    // (b) finite differences for inp, gamma, beta
    float *dinp = falloc(n), *dg = falloc(C), *dbt = falloc(C);
    groupnorm_backward(dinp, dg, dbt, R, inp, mean, rstd, gamma, beta, B, C, HW, G, silu);
    float *inp_p = fdup(inp, n), *g_p = fdup(gamma, C), *b_p = fdup(beta, C);
    gn_ctx cx = {{gn_fwd, falloc(n), R, n}, inp_p, g_p, b_p, falloc(B * G), falloc(B * G), B, C, HW, G, silu};
    test_rng frng = {7};
    fd_check(name, "inp", &cx.base, inp_p, dinp, n, &frng);
    fd_check(name, "gamma", &cx.base, g_p, dg, C, &frng);
    fd_check(name, "beta", &cx.base, b_p, dbt, C, &frng);

    // (c) accumulation and NULL dinp
    float *dinp2 = fdup(dinp, n), *dg2 = fdup(dg, C), *db2 = fdup(dbt, C);
    groupnorm_backward(dinp2, dg2, db2, R, inp, mean, rstd, gamma, beta, B, C, HW, G, silu);
    check_twice(name, "inp", dinp, dinp2, n);
    check_twice(name, "gamma", dg, dg2, C);
    check_twice(name, "beta", dbt, db2, C);
    float *dg3 = falloc(C), *db3 = falloc(C);
    groupnorm_backward(NULL, dg3, db3, R, inp, mean, rstd, gamma, beta, B, C, HW, G, silu);
    check_same(name, "dgamma with dinp=NULL", dg, dg3, C);
    check_same(name, "dbeta with dinp=NULL", dbt, db3, C);

    free(inp), free(R), free(gamma), free(beta), free(out), free(mean), free(rstd), free(ref);
    free(dinp), free(dg), free(dbt), free(inp_p), free(g_p), free(b_p), free(cx.base.out);
    free(cx.mean), free(cx.rstd), free(dinp2), free(dg2), free(db2), free(dg3), free(db3);

    // (d) bit-identical forward / backward for 1, 2, 3 threads
    {
        const int Bt = 2, Ct = 64, Gt = 32, HWt = 17 * 13;
        const size_t nt = (size_t)Bt * Ct * HWt;
        test_rng trng = {silu ? 212 : 211};
        float *x = frandn(&trng, nt, 1.0f), *r = frandn(&trng, nt, 1.0f);
        float *ga = frandn(&trng, Ct, 1.0f), *be = frandn(&trng, Ct, 1.0f);
        float *o[NTHREAD_CASES], *di[NTHREAD_CASES], *dga[NTHREAD_CASES], *dbe[NTHREAD_CASES];
        float *mu = falloc(Bt * Gt), *rs = falloc(Bt * Gt);
        for (int t = 0; t < NTHREAD_CASES; t++) {
            nn_init_threads(g_threads[t]);
            o[t] = falloc(nt), di[t] = falloc(nt), dga[t] = falloc(Ct), dbe[t] = falloc(Ct);
            groupnorm_forward(o[t], mu, rs, x, ga, be, Bt, Ct, HWt, Gt, silu);
            groupnorm_backward(di[t], dga[t], dbe[t], r, x, mu, rs, ga, be, Bt, Ct, HWt, Gt, silu);
        }
        nn_init_threads(DEFAULT_THREADS);
        for (int t = 1; t < NTHREAD_CASES; t++) {
            check_same(name, "forward across thread counts", o[0], o[t], nt);
            check_same(name, "dinp across thread counts", di[0], di[t], nt);
            check_same(name, "dgamma across thread counts", dga[0], dga[t], Ct);
            check_same(name, "dbeta across thread counts", dbe[0], dbe[t], Ct);
        }
        for (int t = 0; t < NTHREAD_CASES; t++) free(o[t]), free(di[t]), free(dga[t]), free(dbe[t]);
        free(x), free(r), free(ga), free(be), free(mu), free(rs);
    }
}

static void test_groupnorm(void) { groupnorm_case(0); }
static void test_groupnorm_silu(void) { groupnorm_case(1); }

/* ------------------------------------------------------------------ silu */

typedef struct {
    fd_ctx base;
    const float *inp;
} silu_ctx;

static void silu_fwd(fd_ctx *c) { silu_forward(c->out, ((silu_ctx *)c)->inp, c->nout); }

static void test_silu(void) {
    test_rng rng = {301};
    const size_t n = 1000;
    float *inp = frandn(&rng, n, 3.0f), *R = frandn(&rng, n, 1.0f), *out = falloc(n);
    // extremes: exp overflow / underflow must give finite, correct limits
    static const float ext[] = {0.0f, -0.0f, 100.0f, -100.0f, 1000.0f, -1000.0f, 88.8f, -88.8f, -103.0f, 20.0f};
    float xe[10], ye[10];
    memcpy(xe, ext, sizeof ext);

    // (a) forward vs double reference, out-of-place and in place
    silu_forward(out, inp, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double x = inp[i], r = x / (1 + exp(-x));
        const double e = fabs(out[i] - r) / (fabs(r) > 1 ? fabs(r) : 1);
        if (!(e <= worst)) worst = e;
    }
    CHECK(worst <= 1e-6, "silu: forward max rel diff %.3g", worst);
    silu_forward(ye, xe, 10);
    for (int i = 0; i < 10; i++) {
        const double x = xe[i], r = x / (1 + exp(-x));
        CHECK(isfinite(ye[i]) && fabs(ye[i] - r) <= 1e-6 * (fabs(r) > 1 ? fabs(r) : 1), "silu(%g) = %g, expected %g", x,
              ye[i], r);
    }
    float *inplace = fdup(inp, n);
    silu_forward(inplace, inplace, n);
    check_same("silu", "in-place forward", out, inplace, n);

    // (b) finite differences
    float *dinp = falloc(n);
    silu_backward(dinp, R, inp, n);
    float *inp_p = fdup(inp, n);
    silu_ctx cx = {{silu_fwd, falloc(n), R, n}, inp_p};
    fd_check("silu", "inp", &cx.base, inp_p, dinp, n, &rng);
    float de[10], re[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    memset(de, 0, sizeof de);
    silu_backward(de, re, xe, 10);
    int finite = 1;
    for (int i = 0; i < 10; i++) finite &= isfinite(de[i]) != 0;
    CHECK(finite, "silu: backward at extreme inputs is not finite");

    // (c) accumulation and NULL dinp
    float *dinp2 = fdup(dinp, n);
    silu_backward(dinp2, R, inp, n);
    check_twice("silu", "inp", dinp, dinp2, n);
    silu_backward(NULL, R, inp, n);

    free(inp), free(R), free(out), free(inplace), free(dinp), free(inp_p), free(cx.base.out);
    free(dinp2);
}

/* ------------------------------------------------------------------ groupnorm, large shapes */

/* Double-precision GroupNorm backward from scratch (statistics in double). */
static void groupnorm_bwd_ref(double *dinp, double *dg, double *db, const float *dout, const float *inp,
                              const float *gamma, const float *beta, int B, int C, int HW, int G, int silu) {
    const int Cg = C / G;
    const size_t gs = (size_t)Cg * HW;
    double *dy = dalloc(gs), *xh = dalloc(gs);
    for (int c = 0; c < C; c++) dg[c] = db[c] = 0;
    for (int bg = 0; bg < B * G; bg++) {
        const float *x = inp + bg * gs;
        const float *d = dout + bg * gs;
        double m = 0, v = 0, s1 = 0, s2 = 0;
        for (size_t i = 0; i < gs; i++) m += x[i];
        m /= gs;
        for (size_t i = 0; i < gs; i++) v += (x[i] - m) * (x[i] - m);
        const double r = 1 / sqrt(v / gs + 1e-5);
        for (size_t i = 0; i < gs; i++) {
            const int c = (bg % G) * Cg + (int)(i / HW);
            xh[i] = (x[i] - m) * r;
            const double a = gamma[c] * xh[i] + beta[c], sg = 1 / (1 + exp(-a));
            dy[i] = silu ? d[i] * sg * (1 + a * (1 - sg)) : d[i];
            dg[c] += dy[i] * xh[i];
            db[c] += dy[i];
            s1 += dy[i] * gamma[c];
            s2 += dy[i] * gamma[c] * xh[i];
        }
        for (size_t i = 0; i < gs; i++) {
            const int c = (bg % G) * Cg + (int)(i / HW);
            dinp[bg * gs + i] = r * (dy[i] * gamma[c] - s1 / gs - xh[i] * s2 / gs);
        }
    }
    free(dy), free(xh);
}

/* max |a - ref| / max |ref| */
static double rel_diff_d(const float *a, const double *ref, size_t n) {
    const double s = max_abs_d(ref, n);
    return max_diff_d(a, ref, n) / (s > 0 ? s : 1);
}

/* Shapes the small test above does not reach: rows longer than a summation
 * chunk with a ragged tail, more (sample, channel) pairs than the backward's
 * row-sum buffer (several batch chunks), and more channels than it can hold
 * at all (per-channel parameter gradients). Backward against a double
 * reference and bit-identical across thread counts. */
static void groupnorm_large_case(int B, int C, int HW, int G, int silu, float offset) {
    test_rng rng = {(uint64_t)(B * 1000003 + C * 101 + HW * 7 + silu)};
    const size_t n = (size_t)B * C * HW;
    float *inp = frandn(&rng, n, 1.5f), *R = frandn(&rng, n, 1.0f);
    for (size_t i = 0; i < n; i++) inp[i] += offset;
    float *gamma = frandn(&rng, C, 0.5f), *beta = frandn(&rng, C, 0.5f);
    for (int c = 0; c < C; c++) gamma[c] += 1.0f;
    float *mean = falloc(B * G), *rstd = falloc(B * G), *out[NTHREAD_CASES], *di[NTHREAD_CASES], *dg[NTHREAD_CASES],
          *db[NTHREAD_CASES];
    for (int t = 0; t < NTHREAD_CASES; t++) {
        nn_init_threads(g_threads[t]);
        out[t] = falloc(n), di[t] = falloc(n), dg[t] = falloc(C), db[t] = falloc(C);
        groupnorm_forward(out[t], mean, rstd, inp, gamma, beta, B, C, HW, G, silu);
        groupnorm_backward(di[t], dg[t], db[t], R, inp, mean, rstd, gamma, beta, B, C, HW, G, silu);
    }
    nn_init_threads(DEFAULT_THREADS);
    double *ref = dalloc(n), *rdi = dalloc(n), *rdg = dalloc(C), *rdb = dalloc(C);
    groupnorm_ref(ref, inp, gamma, beta, B, C, HW, G, silu);
    groupnorm_bwd_ref(rdi, rdg, rdb, R, inp, gamma, beta, B, C, HW, G, silu);
    const double ef = max_diff_d(out[0], ref, n), ei = rel_diff_d(di[0], rdi, n), eg = rel_diff_d(dg[0], rdg, C),
                 eb = rel_diff_d(db[0], rdb, C);
    // float inputs near a large offset, and its float mean: ~1e-4 is what
    // float allows (see groupnorm_case); otherwise float rounding only
    const double tol = offset != 0.0f ? 2e-4 : 1e-5;
    CHECK(ef <= tol && ei <= 10 * tol && eg <= tol && eb <= tol,
          "groupnorm B%d C%d HW%d G%d silu%d offset %g: forward %.3g, dinp %.3g, dgamma %.3g, "
          "dbeta %.3g vs double reference",
          B, C, HW, G, silu, offset, ef, ei, eg, eb);
    char what[96];
    snprintf(what, sizeof what, "B%d C%d HW%d silu%d across thread counts", B, C, HW, silu);
    for (int t = 1; t < NTHREAD_CASES; t++) {
        check_same("groupnorm (large)", what, out[0], out[t], n);
        check_same("groupnorm (large)", what, di[0], di[t], n);
        check_same("groupnorm (large)", what, dg[0], dg[t], C);
        check_same("groupnorm (large)", what, db[0], db[t], C);
    }
    // parameter gradients alone: the same bits as with dinp
    float *dg2 = falloc(C), *db2 = falloc(C);
    groupnorm_backward(NULL, dg2, db2, R, inp, mean, rstd, gamma, beta, B, C, HW, G, silu);
    check_same("groupnorm (large)", "dgamma with dinp=NULL", dg[0], dg2, C);
    check_same("groupnorm (large)", "dbeta with dinp=NULL", db[0], db2, C);
    for (int t = 0; t < NTHREAD_CASES; t++) free(out[t]), free(di[t]), free(dg[t]), free(db[t]);
    free(inp), free(R), free(gamma), free(beta), free(mean), free(rstd), free(ref), free(rdi);
    free(rdg), free(rdb), free(dg2), free(db2);
}

static void test_groupnorm_large(void) {
    for (int silu = 0; silu <= 1; silu++) {
        groupnorm_large_case(2, 4, 1500 + 7, 2, silu, 0.0f);    // long rows, ragged tail
        groupnorm_large_case(2, 4, 1500 + 7, 2, silu, 1000.0f); // and a large mean
        groupnorm_large_case(5, 2048, 5, 4, silu, 0.0f);        // several batch chunks
        groupnorm_large_case(3, 2050, 3, 2, silu, 0.0f);        // per-channel fallback
        groupnorm_large_case(2, 64, 1, 4, silu, 0.0f);          // HW = 1
    }
}

/* The cached statistics against double on data built to break naive ones:
 * a large mean, an outlier as the first value (the shift of the sums), a
 * group dominated by between-channel offsets, constant data. mean must be the
 * float rounding of the true mean (to 0.51 ulp plus 1e-6 std), rstd within
 * 1e-6 relative. */
static double g_stats_worst_m, g_stats_worst_r; /* mean err / std, rstd rel err */

static void groupnorm_stats_case(const char *what, const float *x, int C, int HW) {
    float mean, rstd, *out = falloc((size_t)C * HW), *ga = falloc(C), *be = falloc(C);
    for (int c = 0; c < C; c++) ga[c] = 1.0f;
    groupnorm_forward(out, &mean, &rstd, x, ga, be, 1, C, HW, 1, 0);
    const size_t n = (size_t)C * HW;
    double m = 0, v = 0;
    for (size_t i = 0; i < n; i++) m += x[i];
    m /= n;
    for (size_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    v /= n;
    const double r = 1 / sqrt(v + 1e-5);
    const double ulp = nextafterf(fabsf((float)m), INFINITY) - fabsf((float)m);
    const double em = fabs(mean - m), er = fabs(rstd - r) / r;
    if (em / sqrt(v + 1e-5) > g_stats_worst_m) g_stats_worst_m = em / sqrt(v + 1e-5);
    if (er > g_stats_worst_r) g_stats_worst_r = er;
    CHECK(em <= 0.51 * ulp + 1e-6 * sqrt(v) && er <= 1e-6,
          "groupnorm stats (%s): mean %.9g vs %.9g, rstd %.9g vs %.9g (rel %.3g)", what, mean, m, rstd, r, er);
    free(out), free(ga), free(be);
}

static void test_groupnorm_stats(void) {
    test_rng rng = {404};
    const int C = 3, HW = 33337; // n = 100011: ragged chunks and tail
    const size_t n = (size_t)C * HW;
    float *x = falloc(n);
    test_fill_normal(&rng, x, n, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += 1000.0f;
    groupnorm_stats_case("mean 1000, std 1", x, C, HW);
    for (size_t i = 0; i < n; i++) x[i] = 1e4f + (x[i] - 1000.0f);
    groupnorm_stats_case("mean 1e4, std 1", x, C, HW);
    test_fill_normal(&rng, x, n, 1.0f);
    x[0] = 1e4f;
    groupnorm_stats_case("outlier first", x, C, HW);
    for (size_t i = 0; i < n; i++) x[i] = 0.1f * test_rng_normal(&rng) + 100.0f * (float)(i / HW);
    groupnorm_stats_case("channel offsets", x, C, HW);
    for (size_t i = 0; i < n; i++) x[i] = 5.0f;
    groupnorm_stats_case("constant", x, C, HW);
    printf("  groupnorm stats, hard cases: mean err <= %.3g std, rstd rel err <= %.3g\n", g_stats_worst_m,
           g_stats_worst_r);
    free(x);
}

/* ------------------------------------------------------------------ fast exp (nn/vecmath.h) */

/* vm_expf: relative error over a dense sweep of the range SiLU needs, the
 * limits (0, inf, NaN), and the AVX-512 version giving the same bits. */
static void test_vecmath_exp(void) {
    const int N = 4000000;
    double worst = 0, worst_x = 0;
    long differ = 0, differ_sig = 0;
    for (int i = 0; i <= N; i++) {
        const float x = -104.0f + (float)((double)i * 193.0 / N); // [-104, 89]
        const float y = vm_expf(x);
        const double r = exp((double)x);
        if (r >= 1.1754943508222875e-38 && r <= 3.4e38) { // normal results
            const double e = fabs(y - r) / r;
            if (!(e <= worst)) worst = e, worst_x = x;
        }
#if defined(__AVX512F__)
        float v[16];
        _mm512_storeu_ps(v, vm_exp_ps512(_mm512_set1_ps(x)));
        differ += memcmp(v, &y, sizeof y) != 0;
        _mm512_storeu_ps(v, vm_expneg_ps512(_mm512_set1_ps(-x)));
        differ += memcmp(v, &y, sizeof y) != 0;
#elif defined(__AVX2__) && defined(__FMA__)
        // the AVX2 exp (integer 2^n in two steps, no vscalefps), and its
        // sigmoids, which divide: vm_sigmoidf / vm_sigmoid2f's bits
        float v[8];
        _mm256_storeu_ps(v, vm_exp_ps256(_mm256_set1_ps(x)));
        differ += memcmp(v, &y, sizeof y) != 0;
        _mm256_storeu_ps(v, vm_expneg_ps256(_mm256_set1_ps(-x)));
        differ += memcmp(v, &y, sizeof y) != 0;
        const float sx = 0.5f * x, sg = vm_sigmoidf(sx); // sx in [-52, 45]
        float om1, om8[8];
        const float sg2 = vm_sigmoid2f(sx, &om1);
        _mm256_storeu_ps(v, vm_sigmoid_ps256(_mm256_set1_ps(sx)));
        differ_sig += memcmp(v, &sg, sizeof sg) != 0;
        __m256 vom;
        _mm256_storeu_ps(v, vm_sigmoid2_ps256(_mm256_set1_ps(sx), &vom));
        _mm256_storeu_ps(om8, vom);
        differ_sig += memcmp(v, &sg2, sizeof sg2) != 0 || memcmp(om8, &om1, sizeof om1) != 0;
#endif
    }
    for (float x = -1e-3f; x <= 1e-3f; x = nextafterf(x, 1.0f) + 1e-9f) { // near 0
        const double e = fabs(vm_expf(x) - exp((double)x)) / exp((double)x);
        if (!(e <= worst)) worst = e, worst_x = x;
    }
    printf("  vm_expf max rel err %.3g (at %g) over [-104, 89]\n", worst, worst_x);
    CHECK(worst <= 2e-7, "vm_expf: max rel err %.3g at %g", worst, worst_x);
    CHECK(differ == 0, "vector dr_exp / dr_expneg differ from vm_expf in %ld values", differ);
    CHECK(differ_sig == 0, "AVX2 sigmoids differ from vm_sigmoidf / vm_sigmoid2f in %ld values", differ_sig);
#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
    { // limits and NaN of the AVX2 exp (the integer 2^n has no scalef to lean on)
        const __m256 xs = _mm256_setr_ps(-1000.0f, -INFINITY, 1000.0f, 89.0f, INFINITY, NAN, -88.0f, 0.0f);
        float e[8], en[8], sg[8];
        _mm256_storeu_ps(e, vm_exp_ps256(xs));
        _mm256_storeu_ps(en, vm_expneg_ps256(_mm256_sub_ps(_mm256_setzero_ps(), xs)));
        _mm256_storeu_ps(sg, vm_sigmoid_ps256(xs));
        int ok = 1;
        for (int l = 0; l < 8; l++) // exp(x) and expneg(-x): the same bits
            ok &= memcmp(&e[l], &en[l], sizeof e[l]) == 0 || (isnan(e[l]) && isnan(en[l]));
        ok &= e[0] == 0.0f && e[1] == 0.0f && isinf(e[2]) && isinf(e[3]) && isinf(e[4]) && isnan(e[5]) &&
            e[6] == vm_expf(-88.0f) && e[7] == 1.0f;
        ok &= sg[0] == 0.0f && sg[1] == 0.0f && sg[2] == 1.0f && sg[4] == 1.0f && isnan(sg[5]);
        CHECK(ok, "AVX2 exp / sigmoid limits: exp(-1000) = %g, exp(1000) = %g, exp(NaN) = %g", e[0], e[2], e[5]);
    }
#endif
    CHECK(vm_expf(0.0f) == 1.0f && vm_expf(-1000.0f) == 0.0f && vm_expf(-INFINITY) == 0.0f,
          "vm_expf: exp(0) = %g, exp(-1000) = %g", vm_expf(0.0f), vm_expf(-1000.0f));
    CHECK(isinf(vm_expf(1000.0f)) && isinf(vm_expf(89.0f)) && isinf(vm_expf(INFINITY)),
          "vm_expf: exp(1000) = %g, exp(89) = %g", vm_expf(1000.0f), vm_expf(89.0f));
    CHECK(isnan(vm_expf(NAN)) && isnan(vm_sigmoidf(NAN)), "vm_expf: NaN does not propagate");
}

/* silu_forward / silu_backward (the vector path) over a dense sweep. */
static void test_silu_sweep(void) {
    const size_t n = 2000001;
    float *x = falloc(n), *y = falloc(n), *d = falloc(n), *one = falloc(n);
    for (size_t i = 0; i < n; i++) x[i] = -90.0f + (float)(180.0 * i / (n - 1)), one[i] = 1.0f;
    silu_forward(y, x, n);
    silu_backward(d, one, x, n);
    double wf = 0, wb = 0, wfx = 0, wbx = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        const double xd = x[i], s = 1 / (1 + exp(-xd));
        const double f = xd * s, g = s * (1 + xd * (1 - s));
        finite &= isfinite(y[i]) && isfinite(d[i]);
        // relative error, floored at 1e-20 (below x ~ -40; near x = -88.7
        // float's exp overflows and the result is 0, as with libm); the
        // derivative is measured against the size of its terms,
        // s (1 + |x| (1 - s)), since it crosses zero at x ~ -1.28
        const double ef = fabs(y[i] - f) / fmax(fabs(f), 1e-20);
        const double eb = fabs(d[i] - g) / fmax(s * (1 + fabs(xd) * (1 - s)), 1e-20);
        if (!(ef <= wf)) wf = ef, wfx = xd;
        if (!(eb <= wb)) wb = eb, wbx = xd;
    }
    printf("  silu sweep [-90, 90]: forward max rel err %.3g (at %g), backward %.3g (at %g)\n", wf, wfx, wb, wbx);
    CHECK(finite, "silu: non-finite value in the sweep");
    CHECK(wf <= 4e-7, "silu: forward max rel err %.3g at %g", wf, wfx);
    CHECK(wb <= 4e-7, "silu: backward max rel err %.3g at %g", wb, wbx);
    free(x), free(y), free(d), free(one);
}

/* ------------------------------------------------------------------ linear */

typedef struct {
    fd_ctx base;
    const float *inp, *w, *bias;
    int B, Cin, Cout;
} lin_ctx;

static void lin_fwd(fd_ctx *c) {
    lin_ctx *x = (lin_ctx *)c;
    linear_forward(c->out, x->inp, x->w, x->bias, x->B, x->Cin, x->Cout);
}

static void test_linear(void) {
    test_rng rng = {401};
    const int B = 3, Cin = 7, Cout = 5;
    const size_t ni = (size_t)B * Cin, no = (size_t)B * Cout, nw = (size_t)Cout * Cin;
    float *inp = frandn(&rng, ni, 1.0f), *w = frandn(&rng, nw, 0.5f), *bias = frandn(&rng, Cout, 1.0f);
    float *R = frandn(&rng, no, 1.0f), *out = falloc(no);
    double *ref = dalloc(no);

    // (a) forward: out[b, o] = bias[o] + sum_i inp[b, i] w[o, i]
    linear_forward(out, inp, w, bias, B, Cin, Cout);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < Cout; o++) {
            double acc = bias[o];
            for (int i = 0; i < Cin; i++) acc += (double)inp[b * Cin + i] * w[o * Cin + i];
            ref[b * Cout + o] = acc;
        }
    CHECK(max_diff_d(out, ref, no) <= 1e-5, "linear: forward max diff %.3g", max_diff_d(out, ref, no));

    // (b) finite differences
    float *dinp = falloc(ni), *dw = falloc(nw), *db = falloc(Cout);
    linear_backward(dinp, dw, db, R, inp, w, B, Cin, Cout);
    float *inp_p = fdup(inp, ni), *w_p = fdup(w, nw), *b_p = fdup(bias, Cout);
    lin_ctx cx = {{lin_fwd, falloc(no), R, no}, inp_p, w_p, b_p, B, Cin, Cout};
    fd_check("linear", "inp", &cx.base, inp_p, dinp, ni, &rng);
    fd_check("linear", "weight", &cx.base, w_p, dw, nw, &rng);
    fd_check("linear", "bias", &cx.base, b_p, db, Cout, &rng);

    // (c) accumulation and NULL dinp
    float *dinp2 = fdup(dinp, ni), *dw2 = fdup(dw, nw), *db2 = fdup(db, Cout);
    linear_backward(dinp2, dw2, db2, R, inp, w, B, Cin, Cout);
    check_twice("linear", "inp", dinp, dinp2, ni);
    check_twice("linear", "weight", dw, dw2, nw);
    check_twice("linear", "bias", db, db2, Cout);
    float *dw3 = falloc(nw), *db3 = falloc(Cout);
    linear_backward(NULL, dw3, db3, R, inp, w, B, Cin, Cout);
    check_same("linear", "dweight with dinp=NULL", dw, dw3, nw);
    check_same("linear", "dbias with dinp=NULL", db, db3, Cout);

    free(inp), free(w), free(bias), free(R), free(out), free(ref), free(dinp), free(dw), free(db);
    free(inp_p), free(w_p), free(b_p), free(cx.base.out), free(dinp2), free(dw2), free(db2);
    free(dw3), free(db3);
}

/* ------------------------------------------------------------------ attention */

static void attention_ref(double *out, double *att, const float *qkv, int B, int C, int N) {
    double *s = dalloc(N);
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * 3 * C * N, *k = q + C * N, *v = k + C * N;
        for (int i = 0; i < N; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < N; j++) {
                double d = 0;
                for (int c = 0; c < C; c++) d += (double)q[c * N + i] * k[c * N + j];
                s[j] = d / sqrt((double)C);
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < N; j++) sum += (s[j] = exp(s[j] - mx));
            for (int j = 0; j < N; j++) att[((size_t)b * N + i) * N + j] = s[j] / sum;
        }
        for (int c = 0; c < C; c++)
            for (int i = 0; i < N; i++) {
                double acc = 0;
                for (int j = 0; j < N; j++) acc += v[c * N + j] * att[((size_t)b * N + i) * N + j];
                out[((size_t)b * C + c) * N + i] = acc;
            }
    }
    free(s);
}

typedef struct {
    fd_ctx base;
    const float *qkv;
    float *att;
    int B, C, N;
} att_ctx;

static void att_fwd(fd_ctx *c) {
    att_ctx *x = (att_ctx *)c;
    attention_forward(c->out, x->att, x->qkv, x->B, x->C, x->N, NULL);
}

static void test_attention(void) {
    test_rng rng = {501};
    const int B = 2, C = 4, N = 37; // one full and one partial row block
    const size_t nq = (size_t)B * 3 * C * N, no = (size_t)B * C * N, na = (size_t)B * N * N;
    float *qkv = frandn(&rng, nq, 1.0f), *R = frandn(&rng, no, 1.0f);
    float *out = falloc(no), *att = falloc(na);
    float *fs = falloc(attention_forward_scratch(C, N)), *bs = falloc(attention_backward_scratch(C, N));
    double *ref = dalloc(no), *aref = dalloc(na);

    // (a) forward and cached attention vs reference; inference path (att NULL)
    attention_forward(out, att, qkv, B, C, N, NULL);
    attention_ref(ref, aref, qkv, B, C, N);
    CHECK(max_diff_d(out, ref, no) <= 1e-5, "attention: forward max diff %.3g", max_diff_d(out, ref, no));
    CHECK(max_diff_d(att, aref, na) <= 1e-6, "attention: att max diff %.3g", max_diff_d(att, aref, na));
    float *out_inf = falloc(no);
    attention_forward(out_inf, NULL, qkv, B, C, N, fs);
    check_same("attention", "forward with att=NULL (scratch)", out, out_inf, no);
    { // logits in the hundreds: max-subtraction keeps the softmax finite
        float *big = fdup(qkv, nq);
        for (size_t i = 0; i < nq; i++) big[i] *= 30.0f;
        attention_forward(out_inf, att, big, B, C, N, NULL);
        attention_ref(ref, aref, big, B, C, N);
        const double sc = max_abs_d(ref, no);
        CHECK(max_diff_d(out_inf, ref, no) <= 1e-3 * sc,
              "attention: forward with large logits max diff %.3g (scale %.3g)", max_diff_d(out_inf, ref, no), sc);
        attention_forward(out, att, qkv, B, C, N, NULL); // restore the cache
        free(big);
    }

    // (b) finite differences for q, k and v (all of qkv)
    float *dqkv = falloc(nq);
    attention_backward(dqkv, R, qkv, att, B, C, N, bs);
    float *qkv_p = fdup(qkv, nq);
    att_ctx cx = {{att_fwd, falloc(no), R, no}, qkv_p, falloc(na), B, C, N};
    for (int part = 0; part < 3; part++) { // q, k, v of sample 0 then sample 1
        static const char *names[] = {"q", "k", "v"};
        for (int b = 0; b < B; b++) {
            const size_t off = (size_t)b * 3 * C * N + (size_t)part * C * N;
            fd_check("attention", names[part], &cx.base, qkv_p + off, dqkv + off, (size_t)C * N, &rng);
        }
    }

    // (c) accumulation and NULL dqkv
    float *dqkv2 = fdup(dqkv, nq);
    attention_backward(dqkv2, R, qkv, att, B, C, N, bs);
    check_twice("attention", "qkv", dqkv, dqkv2, nq);
    attention_backward(NULL, R, qkv, att, B, C, N, bs);

    free(qkv), free(R), free(out), free(att), free(fs), free(bs), free(ref), free(aref);
    free(out_inf), free(dqkv), free(qkv_p), free(cx.base.out), free(cx.att), free(dqkv2);

    // (d) bit-identical for 1, 2, 3 threads: several row blocks per sample
    {
        const int Bt = 2, Ct = 16, Nt = 150;
        const size_t nqt = (size_t)Bt * 3 * Ct * Nt, nt = (size_t)Bt * Ct * Nt, nat = (size_t)Bt * Nt * Nt;
        test_rng trng = {511};
        float *x = frandn(&trng, nqt, 1.0f), *r = frandn(&trng, nt, 1.0f);
        float *fst = falloc(attention_forward_scratch(Ct, Nt)), *bst = falloc(attention_backward_scratch(Ct, Nt));
        float *o[NTHREAD_CASES], *oi[NTHREAD_CASES], *a[NTHREAD_CASES], *d[NTHREAD_CASES];
        for (int t = 0; t < NTHREAD_CASES; t++) {
            nn_init_threads(g_threads[t]);
            o[t] = falloc(nt), oi[t] = falloc(nt), a[t] = falloc(nat), d[t] = falloc(nqt);
            attention_forward(o[t], a[t], x, Bt, Ct, Nt, NULL);
            attention_forward(oi[t], NULL, x, Bt, Ct, Nt, fst);
            attention_backward(d[t], r, x, a[t], Bt, Ct, Nt, bst);
        }
        nn_init_threads(DEFAULT_THREADS);
        for (int t = 1; t < NTHREAD_CASES; t++) {
            check_same("attention", "forward across thread counts", o[0], o[t], nt);
            check_same("attention", "att across thread counts", a[0], a[t], nat);
            check_same("attention", "inference forward across thread counts", oi[0], oi[t], nt);
            check_same("attention", "dqkv across thread counts", d[0], d[t], nqt);
        }
        for (int t = 0; t < NTHREAD_CASES; t++) free(o[t]), free(oi[t]), free(a[t]), free(d[t]);
        free(x), free(r), free(fst), free(bst);
    }
}

/* ------------------------------------------------------------------ upsample */

typedef struct {
    fd_ctx base;
    const float *inp;
    int B, C, H, W;
} up_ctx;

static void up_fwd(fd_ctx *c) {
    up_ctx *x = (up_ctx *)c;
    upsample2x_forward(c->out, x->inp, x->B, x->C, x->H, x->W);
}

static void test_upsample(void) {
    test_rng rng = {601};
    const int B = 2, C = 3, H = 3, W = 5;
    const size_t ni = (size_t)B * C * H * W, no = ni * 4;
    float *inp = frandn(&rng, ni, 1.0f), *R = frandn(&rng, no, 1.0f), *out = falloc(no);

    // (a) out[b, c, y, x] = inp[b, c, y / 2, x / 2]
    upsample2x_forward(out, inp, B, C, H, W);
    int ok = 1;
    for (int bc = 0; bc < B * C; bc++)
        for (int y = 0; y < 2 * H; y++)
            for (int x = 0; x < 2 * W; x++)
                ok &= out[((size_t)bc * 2 * H + y) * 2 * W + x] == inp[((size_t)bc * H + y / 2) * W + x / 2];
    CHECK(ok, "upsample: forward differs from nearest-neighbour");

    // (b) finite differences
    float *dinp = falloc(ni);
    upsample2x_backward(dinp, R, B, C, H, W);
    float *inp_p = fdup(inp, ni);
    up_ctx cx = {{up_fwd, falloc(no), R, no}, inp_p, B, C, H, W};
    fd_check("upsample", "inp", &cx.base, inp_p, dinp, ni, &rng);

    // (c) accumulation and NULL dinp
    float *dinp2 = fdup(dinp, ni);
    upsample2x_backward(dinp2, R, B, C, H, W);
    check_twice("upsample", "inp", dinp, dinp2, ni);
    upsample2x_backward(NULL, R, B, C, H, W);

    free(inp), free(R), free(out), free(dinp), free(inp_p), free(cx.base.out), free(dinp2);
}

/* ------------------------------------------------------------------ concat */

typedef struct {
    fd_ctx base;
    const float *a, *b;
    int B, Ca, Cb, HW;
} cat_ctx;

static void cat_fwd(fd_ctx *c) {
    cat_ctx *x = (cat_ctx *)c;
    concat_forward(c->out, x->a, x->b, x->B, x->Ca, x->Cb, x->HW);
}

static void test_concat(void) {
    test_rng rng = {701};
    const int B = 2, Ca = 2, Cb = 3, HW = 7;
    const size_t na = (size_t)B * Ca * HW, nb = (size_t)B * Cb * HW, no = na + nb;
    float *a = frandn(&rng, na, 1.0f), *b = frandn(&rng, nb, 1.0f), *R = frandn(&rng, no, 1.0f);
    float *out = falloc(no);

    // (a) per sample: a's channels, then b's
    concat_forward(out, a, b, B, Ca, Cb, HW);
    int ok = 1;
    for (int s = 0; s < B; s++)
        for (int c = 0; c < Ca + Cb; c++)
            for (int i = 0; i < HW; i++) {
                const float want = c < Ca ? a[((size_t)s * Ca + c) * HW + i] : b[((size_t)s * Cb + c - Ca) * HW + i];
                ok &= out[((size_t)s * (Ca + Cb) + c) * HW + i] == want;
            }
    CHECK(ok, "concat: forward differs from the naive layout");

    // (b) finite differences
    float *da = falloc(na), *db = falloc(nb);
    concat_backward(da, db, R, B, Ca, Cb, HW);
    float *a_p = fdup(a, na), *b_p = fdup(b, nb);
    cat_ctx cx = {{cat_fwd, falloc(no), R, no}, a_p, b_p, B, Ca, Cb, HW};
    fd_check("concat", "a", &cx.base, a_p, da, na, &rng);
    fd_check("concat", "b", &cx.base, b_p, db, nb, &rng);

    // (c) accumulation; either gradient may be NULL
    float *da2 = fdup(da, na), *db2 = fdup(db, nb);
    concat_backward(da2, db2, R, B, Ca, Cb, HW);
    check_twice("concat", "a", da, da2, na);
    check_twice("concat", "b", db, db2, nb);
    float *da3 = falloc(na), *db3 = falloc(nb);
    concat_backward(da3, NULL, R, B, Ca, Cb, HW);
    concat_backward(NULL, db3, R, B, Ca, Cb, HW);
    check_same("concat", "da with db=NULL", da, da3, na);
    check_same("concat", "db with da=NULL", db, db3, nb);

    // (d) concat_backward_into sets the gradients it is told to (over NaN) and adds to the others
    float *da4 = falloc(na), *db4 = falloc(nb), *da5 = fdup(da, na), *db5 = falloc(nb);
    for (size_t i = 0; i < na; i++) da4[i] = NAN;
    for (size_t i = 0; i < nb; i++) db4[i] = db5[i] = NAN;
    concat_backward_into(da4, 1, db4, 1, R, B, Ca, Cb, HW);
    check_same("concat_into", "da set over NaN", da, da4, na);
    check_same("concat_into", "db set over NaN", db, db4, nb);
    concat_backward_into(da5, 0, db5, 1, R, B, Ca, Cb, HW);
    check_twice("concat_into", "da added (set_a 0)", da, da5, na);
    check_same("concat_into", "db set beside an added da", db, db5, nb);

    free(a), free(b), free(R), free(out), free(da), free(db), free(a_p), free(b_p);
    free(cx.base.out), free(da2), free(db2), free(da3), free(db3), free(da4), free(db4), free(da5), free(db5);
}

/* ------------------------------------------------------------------ channel bias, add */

typedef struct {
    fd_ctx base;
    const float *x, *v;
    int B, C, HW;
} cb_ctx;

static void cb_fwd(fd_ctx *c) { // in-place layer: copy x into out, then add
    cb_ctx *x = (cb_ctx *)c;
    memcpy(c->out, x->x, c->nout * sizeof(float));
    add_channel_bias_forward(c->out, x->v, x->B, x->C, x->HW);
}

static void test_add_channel_bias(void) {
    test_rng rng = {801};
    const int B = 2, C = 3, HW = 10;
    const size_t n = (size_t)B * C * HW, nv = (size_t)B * C;
    float *x = frandn(&rng, n, 1.0f), *v = frandn(&rng, nv, 1.0f), *R = frandn(&rng, n, 1.0f);

    // (a) x[b, c, i] += v[b, c]
    float *y = fdup(x, n);
    add_channel_bias_forward(y, v, B, C, HW);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= y[i] == x[i] + v[i / HW];
    CHECK(ok, "add_channel_bias: forward differs");

    // (b) finite differences for v (x's gradient is the identity)
    float *dv = falloc(nv);
    add_channel_bias_backward(dv, R, B, C, HW);
    float *v_p = fdup(v, nv);
    cb_ctx cx = {{cb_fwd, falloc(n), R, n}, x, v_p, B, C, HW};
    fd_check("add_channel_bias", "v", &cx.base, v_p, dv, nv, &rng);

    // (c) accumulation and NULL dv
    float *dv2 = fdup(dv, nv);
    add_channel_bias_backward(dv2, R, B, C, HW);
    check_twice("add_channel_bias", "v", dv, dv2, nv);
    add_channel_bias_backward(NULL, R, B, C, HW);

    free(x), free(v), free(R), free(y), free(dv), free(v_p), free(cx.base.out), free(dv2);
}

static void test_add(void) {
    test_rng rng = {851};
    const size_t n = 100;
    float *a = frandn(&rng, n, 1.0f), *b = frandn(&rng, n, 1.0f), *out = falloc(n);
    add_forward(out, a, b, n);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= out[i] == a[i] + b[i];
    CHECK(ok, "add_forward differs");
    float *al = fdup(a, n); // out aliasing a
    add_forward(al, al, b, n);
    check_same("add", "add_forward with out == a", out, al, n);
    float *acc = fdup(a, n);
    accumulate(acc, b, n);
    check_same("add", "accumulate", out, acc, n);
    free(a), free(b), free(out), free(al), free(acc);
}

/* ------------------------------------------------------------------ timestep embedding */

static void test_timestep_embedding(void) {
    static const float ts[] = {0.0f, 1.0f, 999.0f};
    static const int dims[] = {8, 32};
    for (int k = 0; k < 2; k++) {
        const int dim = dims[k], h = dim / 2;
        float out[3 * 32];
        timestep_embedding(out, ts, 3, dim);
        for (int b = 0; b < 3; b++) {
            double worst = 0;
            for (int i = 0; i < h; i++) { // f_i = 10000^(-i/h)
                const double f = pow(10000.0, -(double)i / h);
                const double c = cos(ts[b] * f), s = sin(ts[b] * f);
                const double e1 = fabs(out[b * dim + i] - c), e2 = fabs(out[b * dim + h + i] - s);
                if (e1 > worst) worst = e1;
                if (e2 > worst) worst = e2;
            }
            CHECK(worst <= 1e-6, "timestep_embedding t=%g dim=%d: max diff %.3g", ts[b], dim, worst);
        }
        int exact0 = 1; // t = 0: cos = 1 and sin = 0 exactly
        for (int i = 0; i < h; i++) exact0 &= out[i] == 1.0f && out[h + i] == 0.0f;
        CHECK(exact0, "timestep_embedding t=0 dim=%d is not [1..1, 0..0]", dim);
        CHECK(out[dim + 0] == (float)cos(1.0) && out[dim + h] == (float)sin(1.0),
              "timestep_embedding t=1 dim=%d: first frequency is not 1", dim);
    }
}

/* ------------------------------------------------------------------ main */

int main(void) {
    nn_init_threads(DEFAULT_THREADS);
    test_conv2d();
    test_conv2d_winograd();
    test_conv2d_dweight();
    test_groupnorm();
    test_groupnorm_silu();
    test_silu();
    test_groupnorm_large();
    test_groupnorm_stats();
    test_vecmath_exp();
    test_silu_sweep();
    test_linear();
    test_attention();
    test_upsample();
    test_concat();
    test_add_channel_bias();
    test_add();
    test_timestep_embedding();
    for (int i = 0; i < g_nfd; i++)
        printf("  worst finite-difference rel err %-18s %.3g\n", g_fd[i].layer, g_fd[i].worst);
    return test_summary("test_nn");
}
