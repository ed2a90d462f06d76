/* test_imgproc.c - planar conversion, YCbCr, resampling, the super-resolution
 * projector, reflection padding and random masks (src/imgproc/imgproc.h), and
 * the working size and guided upsampling (src/imgproc/imgproc_guided.h). */
#include "common/rng.h"
#include "diffrestore.h"
#include "imgproc/imgproc.h"
#include "imgproc/imgproc_guided.h"
#include "nn/nn.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ helpers */

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Keys cubic, a = -0.5, written out independently of the library. */
static double ref_kernel(double x) {
    x = fabs(x);
    if (x < 1) return 1.5 * x * x * x - 2.5 * x * x + 1;
    if (x < 2) return -0.5 * x * x * x + 2.5 * x * x - 4 * x + 2;
    return 0;
}

/* Naive dense reference of the resampler: out x in matrix in double. Every
 * input index in a wide range is visited; out-of-range indices are clamped. */
static double *ref_matrix(int in, int out) {
    double *m = calloc((size_t)in * out, sizeof(double));
    const double s = (double)in / out, st = s > 1 ? s : 1;
    for (int i = 0; i < out; i++) {
        const double c = (i + 0.5) * s - 0.5;
        double sum = 0;
        for (int j = -in - 8; j < 2 * in + 8; j++) {
            const double w = ref_kernel((j - c) / st);
            if (w == 0) continue;
            const int jc = j < 0 ? 0 : j >= in ? in - 1 : j;
            m[(size_t)i * in + jc] += w;
            sum += w;
        }
        for (int j = 0; j < in; j++) m[(size_t)i * in + j] /= sum;
    }
    return m;
}

/* The resampler as a dense matrix. */
static double *dense_of(const ip_resampler *r) {
    double *m = calloc((size_t)r->in_size * r->out_size, sizeof(double));
    for (int i = 0; i < r->out_size; i++)
        for (int k = 0; k < r->taps; k++) m[(size_t)i * r->in_size + r->start[i] + k] += r->w[(size_t)i * r->taps + k];
    return m;
}

/* ------------------------------------------------------------ conversion */

static void test_planar_roundtrip(void) {
    const int depths[2] = {8, 16}, W = 13, H = 7;
    for (int d = 0; d < 2; d++)
        for (int ch = 1; ch <= 4; ch++) {
            const int depth = depths[d], maxv = depth == 16 ? 65535 : 255;
            const int nc = ch >= 3 ? 3 : 1;
            const int has_alpha = ch == 2 || ch == 4;
            dr_image a, b;
            CHECK(dr_image_alloc(&a, W, H, ch, depth) == DR_OK, "alloc");
            CHECK(dr_image_alloc(&b, W, H, ch, depth) == DR_OK, "alloc");
            test_rng rng = {(uint64_t)(depth * 10 + ch)};
            const size_t ns = (size_t)W * H * ch;
            for (size_t i = 0; i < ns; i++) a.data[i] = (uint16_t)(test_rng_u64(&rng) % (maxv + 1));
            a.data[0] = 0;
            a.data[ch] = (uint16_t)maxv;                                                /* the extremes */
            for (size_t i = 0; i < ns; i++) b.data[i] = (uint16_t)(i * 7 % (maxv + 1)); /* alpha sentinel */
            float *p = malloc((size_t)nc * W * H * sizeof(float));
            ip_to_planar(&a, p);
            int range_ok = 1;
            for (size_t i = 0; i < (size_t)nc * W * H; i++) range_ok &= p[i] >= -1.0f && p[i] <= 1.0f;
            CHECK(range_ok, "planar values in -1..1 (depth %d ch %d)", depth, ch);
            CHECK(p[0] == -1.0f && p[1] == 1.0f, "0 -> -1 and max -> 1 (depth %d ch %d)", depth, ch);
            /* value = s / maxval * 2 - 1, plane-major */
            const int c_last = nc - 1;
            const size_t pix = 17;
            CHECK(fabs(p[(size_t)c_last * W * H + pix] - (a.data[pix * ch + c_last] * 2.0 / maxv - 1.0)) < 1e-6,
                  "planar layout (depth %d ch %d)", depth, ch);
            ip_from_planar(p, &b);
            int colour_ok = 1, alpha_ok = 1;
            for (size_t i = 0; i < (size_t)W * H; i++) {
                for (int c = 0; c < nc; c++) colour_ok &= b.data[i * ch + c] == a.data[i * ch + c];
                if (has_alpha) alpha_ok &= b.data[i * ch + ch - 1] == (uint16_t)((i * ch + ch - 1) * 7 % (maxv + 1));
            }
            CHECK(colour_ok, "planar round trip exact (depth %d ch %d)", depth, ch);
            CHECK(alpha_ok, "alpha untouched (depth %d ch %d)", depth, ch);
            free(p);
            dr_image_free(&a);
            dr_image_free(&b);
        }
}

static void test_from_planar_clamps(void) {
    dr_image img;
    CHECK(dr_image_alloc(&img, 4, 1, 1, 8) == DR_OK, "alloc");
    const float p[4] = {-3.0f, 5.0f, NAN, 0.0f};
    ip_from_planar(p, &img);
    CHECK(img.data[0] == 0 && img.data[1] == 255 && img.data[2] == 0, "clamped to 0..255, NaN -> 0");
    CHECK(img.data[3] == 128, "0.0 -> 127.5 rounds to 128 (got %u)", img.data[3]);
    dr_image_free(&img);
    float g[2] = {0.25f, -0.5f}, rgb[6];
    ip_gray_to_rgb(g, rgb, 2);
    CHECK(rgb[0] == g[0] && rgb[3] == g[1] && rgb[4] == g[0] && rgb[5] == g[1], "gray to rgb copies");
}

/* ------------------------------------------------------------ YCbCr */

static void test_ycbcr_known(void) {
    const double cols[6][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}, {0, 0, 0}, {128, 128, 128}};
    const size_t n = 6;
    float rgb[18], ycc[18];
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) rgb[c * n + i] = (float)(cols[i][c] / 127.5 - 1.0);
    ip_rgb_to_ycbcr(rgb, ycc, n);
    double err = 0;
    for (size_t i = 0; i < n; i++) {
        /* MODEL.md, on 0..255 values (from the float unit values, as the library sees them) */
        const double R = (rgb[i] + 1.0) * 127.5, G = (rgb[n + i] + 1.0) * 127.5, B = (rgb[2 * n + i] + 1.0) * 127.5;
        const double Y = .299 * R + .587 * G + .114 * B;
        const double Cb = 128 - .168736 * R - .331264 * G + .5 * B;
        const double Cr = 128 + .5 * R - .418688 * G - .081312 * B;
        const double e[3] = {Y / 127.5 - 1, (Cb - 128) / 127.5, (Cr - 128) / 127.5};
        for (int c = 0; c < 3; c++) err = fmax(err, fabs(ycc[c * n + i] - e[c]));
    }
    CHECK(err < 1e-6, "YCbCr of known colours matches MODEL.md (err %.3g)", err);
    /* Sanity of the conventions: white has Y = 1, grays have no chroma, pure
     * blue has Cb = +1 (Cb = 255.5 - 128 = 127.5 -> 1). */
    CHECK(fabs(ycc[3] - 1.0) < 1e-6 && fabs(ycc[4] + 1.0) < 1e-6, "white Y = 1, black Y = -1");
    CHECK(fabs(ycc[n + 2] - 1.0) < 1e-6 && fabs(ycc[2 * n + 0] - 1.0) < 1e-6, "blue Cb = 1, red Cr = 1");
    for (int i = 3; i < 6; i++)
        CHECK(fabs(ycc[n + i]) < 1e-6 && fabs(ycc[2 * n + i]) < 1e-6, "gray %d has zero chroma", i);
    CHECK(fabs(ycc[5] - (128 / 127.5 - 1)) < 1e-6, "gray 128: Y = 128 / 127.5 - 1");
}

static void test_ycbcr_roundtrip(void) {
    const size_t n = 10000;
    float *rgb = malloc(3 * n * sizeof(float)), *ycc = malloc(3 * n * sizeof(float)),
          *back = malloc(3 * n * sizeof(float));
    test_rng rng = {42};
    for (size_t i = 0; i < 3 * n; i++) rgb[i] = test_rng_uniform(&rng) * 2.0f - 1.0f;
    ip_rgb_to_ycbcr(rgb, ycc, n);
    ip_ycbcr_to_rgb(ycc, back, n);
    const double err = test_max_abs_diff(rgb, back, 3 * n);
    CHECK(err < 1e-5, "rgb -> ycc -> rgb max err %.3g", err);
    free(rgb), free(ycc), free(back);
}

/* ------------------------------------------------------------ resampling */

static void test_resampler_rows_sum(void) {
    const int sizes[][2] = {{8, 4},   {4, 8}, {100, 37}, {37, 100}, {1, 5},    {5, 1},  {20, 20},
                            {64, 16}, {3, 2}, {2, 3},    {1000, 7}, {7, 1000}, {50, 20}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        ip_resampler r;
        CHECK(ip_resampler_build(&r, sizes[s][0], sizes[s][1]) == DR_OK, "build %d -> %d", sizes[s][0], sizes[s][1]);
        double worst = 0;
        int inside = 1, monotone = 1;
        for (int i = 0; i < r.out_size; i++) {
            double sum = 0;
            for (int k = 0; k < r.taps; k++) sum += r.w[(size_t)i * r.taps + k];
            worst = fmax(worst, fabs(sum - 1));
            inside &= r.start[i] >= 0 && r.start[i] + r.taps <= r.in_size;
            if (i) monotone &= r.start[i] >= r.start[i - 1];
        }
        CHECK(worst < 1e-6, "%d -> %d: rows sum to 1 (err %.3g)", sizes[s][0], sizes[s][1], worst);
        CHECK(inside && monotone, "%d -> %d: windows inside and sorted", sizes[s][0], sizes[s][1]);
        if (sizes[s][0] == sizes[s][1]) CHECK(r.taps == 1, "identity has one tap");
        ip_resampler_free(&r);
    }
}

static void test_resampler_vs_reference(void) {
    const int sizes[][2] = {{8, 4}, {4, 8}, {100, 37}, {37, 100}, {9, 4}, {5, 1}, {3, 7}, {30, 12}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int in = sizes[s][0], out = sizes[s][1];
        ip_resampler r;
        CHECK(ip_resampler_build(&r, in, out) == DR_OK, "build");
        double *a = dense_of(&r), *b = ref_matrix(in, out);
        double err = 0;
        for (size_t i = 0; i < (size_t)in * out; i++) err = fmax(err, fabs(a[i] - b[i]));
        CHECK(err < 1e-6, "%d -> %d matches the naive reference (err %.3g)", in, out, err);
        free(a), free(b);
        ip_resampler_free(&r);
    }
    /* Hand-derived values for 8 -> 4: centre of output 0 is 0.5, kernel
     * stretched by 2, taps at j = -3..4 -> x = (j - 0.5) / 2. Indices < 0 fold
     * onto 0. */
    {
        double w[8], sum = 0;
        for (int j = -3; j <= 4; j++) sum += w[j + 3] = ref_kernel((j - 0.5) / 2);
        const double w0 = (w[0] + w[1] + w[2] + w[3]) / sum; /* j = -3..0 all land on 0 */
        ip_resampler r;
        ip_resampler_build(&r, 8, 4);
        double *a = dense_of(&r);
        CHECK(fabs(a[0] - w0) < 1e-7 && fabs(a[4] - w[7] / sum) < 1e-7, "8 -> 4 row 0 by hand");
        /* x = -1.75 and 1.75: 0.5 * 1.75^3 ... = -0.0234375 each, middle taps symmetric */
        CHECK(fabs(ref_kernel(1.75) + 0.0234375) < 1e-12, "kernel value at 1.75");
        free(a);
        ip_resampler_free(&r);
    }
    /* 4 -> 8: output 1 has centre 0.25; taps j = -1..2 at x = -1.25, -0.25,
     * 0.75, 1.75 (plain bicubic, sums to 1 already). */
    {
        ip_resampler r;
        ip_resampler_build(&r, 4, 8);
        double *a = dense_of(&r);
        const double wm1 = ref_kernel(-1.25), w0 = ref_kernel(-0.25), w1 = ref_kernel(0.75), w2 = ref_kernel(1.75);
        CHECK(fabs(wm1 + w0 + w1 + w2 - 1) < 1e-12, "bicubic taps sum to 1");
        CHECK(fabs(a[4 + 0] - (wm1 + w0)) < 1e-7 && fabs(a[4 + 1] - w1) < 1e-7 && fabs(a[4 + 2] - w2) < 1e-7 &&
                  a[4 + 3] == 0,
              "4 -> 8 row 1 by hand");
        free(a);
        ip_resampler_free(&r);
    }
}

static void test_resize_constant(void) {
    const int C = 3, H = 17, W = 23, Ho = 9, Wo = 40;
    float *in = malloc((size_t)C * H * W * sizeof(float)), *out = malloc((size_t)C * Ho * Wo * sizeof(float));
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H * W; i++) in[c * H * W + i] = 0.3f * (c + 1) - 0.5f;
    CHECK(ip_resize(in, C, H, W, out, Ho, Wo) == DR_OK, "resize");
    double err = 0;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < Ho * Wo; i++) err = fmax(err, fabs(out[c * Ho * Wo + i] - (0.3f * (c + 1) - 0.5f)));
    CHECK(err < 1e-6, "constant stays constant (err %.3g)", err);
    free(in), free(out);
}

static void test_resize_up_down(void) {
    const int H = 32, W = 40;
    float *a = malloc((size_t)H * W * sizeof(float)), *up = malloc((size_t)4 * H * W * sizeof(float)),
          *back = malloc((size_t)H * W * sizeof(float));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) a[y * W + x] = (float)(0.5 * sin(0.2 * x) + 0.4 * cos(0.15 * y + 0.3));
    CHECK(ip_resize(a, 1, H, W, up, 2 * H, 2 * W) == DR_OK, "up");
    CHECK(ip_resize(up, 1, 2 * H, 2 * W, back, H, W) == DR_OK, "down");
    double err = 0;
    for (int y = 4; y < H - 4; y++)
        for (int x = 4; x < W - 4; x++) err = fmax(err, fabs(back[y * W + x] - a[y * W + x]));
    CHECK(err < 2e-3, "up x2 then down x2 ~ identity in the interior (err %.3g)", err);
    free(a), free(up), free(back);
}

static void test_resize_ramp(void) {
    const int sizes[][2] = {{40, 20}, {60, 20}, {100, 37}, {20, 50}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int in = sizes[s][0], out = sizes[s][1];
        float *a = malloc((size_t)in * 2 * sizeof(float)), *b = malloc((size_t)out * 2 * sizeof(float));
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < in; x++) a[y * in + x] = (float)x / in;
        CHECK(ip_resize(a, 1, 2, in, b, 2, out) == DR_OK, "resize ramp");
        /* A linear function sampled at the output centres. */
        const double sc = (double)in / out, margin = 3 * (sc > 1 ? sc : 1);
        double err = 0;
        for (int i = 0; i < out; i++) {
            const double c = (i + 0.5) * sc - 0.5;
            if (c < margin || c > in - 1 - margin) continue;
            err = fmax(err, fabs(b[out + i] - c / in));
        }
        /* Exact (to rounding) when the factor is an integer and the taps sit
         * symmetrically around each centre; otherwise the stretched kernel's
         * samples are lopsided and reproduce a line only to ~1% of a step
         * (PIL's antialias filter behaves the same). */
        const int integer_factor = in % out == 0 || out > in;
        const double tol = integer_factor ? 1e-5 : 0.01 / in;
        CHECK(err < tol, "%d -> %d: a ramp stays a ramp in the interior (err %.3g)", in, out, err);
        free(a), free(b);
    }
}

static void test_resize_errors(void) {
    float in[16] = {0}, out[16];
    CHECK(ip_resize(in, 1, 4, 4, out, 0, 4) == DR_ERR_INVALID, "out height 0");
    CHECK(ip_resize(in, 1, 4, 4, out, 4, -2) == DR_ERR_INVALID, "negative width");
    CHECK(ip_resize(in, 1, 0, 4, out, 4, 4) == DR_ERR_INVALID, "in height 0");
    CHECK(ip_resize(in, 1, 4, 4, out, (1 << 20) + 1, 1) == DR_ERR_INVALID, "over the size limit");
    CHECK(ip_resize(in, 0, 4, 4, out, 2, 2) == DR_ERR_INVALID, "no channels");
    CHECK(ip_resize(NULL, 1, 4, 4, out, 2, 2) == DR_ERR_INVALID, "NULL input");
    CHECK(strlen(dr_last_error()) > 0, "an error message is set");
    ip_resampler r;
    CHECK(ip_resampler_build(&r, 5, 0) == DR_ERR_INVALID && r.w == NULL, "resampler to 0");
    ip_projector p;
    CHECK(ip_projector_build(&p, 10, 10, 20, 5) == DR_ERR_INVALID, "projector LR larger than HR");
    CHECK(ip_resize(in, 1, 4, 4, out, 4, 4) == DR_OK && out[0] == 0, "same size is a copy");
}

/* ------------------------------------------------------------ projector */

static double residual(const ip_projector *p, const float *x, const float *y, int C) {
    const int H = p->dy.out_size, W = p->dx.out_size, Ho = p->dy.in_size;
    float *dx = malloc((size_t)C * H * W * sizeof(float)), *t = malloc((size_t)C * Ho * W * sizeof(float));
    ip_resample(x, dx, C, &p->dy, &p->dx, t);
    const double r = test_max_abs_diff(dx, y, (size_t)C * H * W);
    free(dx), free(t);
    return r;
}

static void test_projector(void) {
    const int cases[][4] = {/* HR h, w -> LR h, w */
                            {30, 40, 15, 20}, {45, 60, 15, 20}, {60, 80, 15, 20}, {35, 50, 14, 20},
                            {33, 47, 11, 16}, {21, 20, 20, 20}, {64, 64, 64, 16}, {100, 7, 37, 3}};
    const int C = 3;
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        const int Ho = cases[s][0], Wo = cases[s][1], H = cases[s][2], W = cases[s][3];
        const size_t nhr = (size_t)C * Ho * Wo, nlr = (size_t)C * H * W;
        ip_projector p;
        int rc = ip_projector_build(&p, Ho, Wo, H, W);
        CHECK(rc == DR_OK, "projector %dx%d -> %dx%d builds: %s", Wo, Ho, W, H, dr_last_error());
        if (rc != DR_OK) continue;
        float *x0 = malloc(nhr * sizeof(float)), *x = malloc(nhr * sizeof(float)), *x2 = malloc(nhr * sizeof(float)),
              *y = malloc(nlr * sizeof(float)), *y2 = malloc(nlr * sizeof(float)),
              *tmp = malloc(ip_project_tmp_floats(&p, C) * sizeof(float)),
              *t = malloc(nhr * sizeof(float)); /* tmp: exactly what it asks for (ASan catches more) */
        test_rng rng = {1000 + s};
        test_fill_normal(&rng, x0, nhr, 1.0f);
        test_fill_normal(&rng, y, nlr, 1.0f);
        memcpy(x, x0, nhr * sizeof(float));
        const double before = residual(&p, x, y, C);
        ip_project(&p, x, y, C, tmp);
        const double after = residual(&p, x, y, C);
        printf("  projector %2dx%-3d -> %2dx%-2d (scale %.3g x %.3g): |Dx - y|_inf %.3g before, %.3g after\n", Wo, Ho,
               W, H, (double)Wo / W, (double)Ho / H, before, after);
        CHECK(after < 1e-4, "%dx%d -> %dx%d: |Dx - y| = %.3g after projection", Wo, Ho, W, H, after);

        memcpy(x2, x, nhr * sizeof(float));
        ip_project(&p, x2, y, C, tmp);
        const double idem = test_max_abs_diff(x, x2, nhr);
        CHECK(idem < 1e-5, "%dx%d -> %dx%d: idempotent (change %.3g)", Wo, Ho, W, H, idem);

        /* The change lies in the row space of D: projecting x onto
         * {D z = D x0} must return x0 (the minimum-norm correction). */
        ip_resample(x0, y2, C, &p.dy, &p.dx, t);
        memcpy(x2, x, nhr * sizeof(float));
        ip_project(&p, x2, y2, C, tmp);
        const double back = test_max_abs_diff(x2, x0, nhr);
        CHECK(back < 1e-5, "%dx%d -> %dx%d: correction in the row space of D (err %.3g)", Wo, Ho, W, H, back);

        /* An x that already downscales to y is left bit for bit alone. */
        memcpy(x2, x0, nhr * sizeof(float));
        ip_project(&p, x2, y2, C, tmp);
        CHECK(memcmp(x2, x0, nhr * sizeof(float)) == 0, "%dx%d -> %dx%d: consistent x unchanged", Wo, Ho, W, H);

        free(x0), free(x), free(x2), free(y), free(y2), free(tmp), free(t);
        ip_projector_free(&p);
    }
}

/* Results must not depend on the thread count. */
static void test_threads_invariant(void) {
    const int C = 3, Ho = 75, Wo = 130, H = 30, W = 52;
    const size_t nhr = (size_t)C * Ho * Wo, nlr = (size_t)C * H * W;
    float *x = malloc(nhr * sizeof(float)), *xa = malloc(nhr * sizeof(float)), *xb = malloc(nhr * sizeof(float)),
          *y = malloc(nlr * sizeof(float)), *ua = malloc(nhr * sizeof(float)), *ub = malloc(nhr * sizeof(float));
    test_rng rng = {77};
    test_fill_normal(&rng, x, nhr, 1.0f);
    test_fill_normal(&rng, y, nlr, 1.0f);
    const int saved = nn_threads();
    nn_init_threads(1); /* built and sized at 1 thread, then used at 3: no more row buffers than sized (ASan) */
    ip_projector p;
    CHECK(ip_projector_build(&p, Ho, Wo, H, W) == DR_OK, "build");
    float *tmp = malloc(ip_project_tmp_floats(&p, C) * sizeof(float));
    nn_init_threads(1);
    memcpy(xa, x, nhr * sizeof(float));
    ip_project(&p, xa, y, C, tmp);
    ip_resize(y, C, H, W, ua, Ho, Wo);
    nn_init_threads(3);
    memcpy(xb, x, nhr * sizeof(float));
    ip_project(&p, xb, y, C, tmp);
    ip_resize(y, C, H, W, ub, Ho, Wo);
    nn_init_threads(saved);
    CHECK(memcmp(xa, xb, nhr * sizeof(float)) == 0, "projection identical with 1 and 3 threads");
    CHECK(memcmp(ua, ub, nhr * sizeof(float)) == 0, "resize identical with 1 and 3 threads");
    ip_projector_free(&p);
    free(x), free(xa), free(xb), free(y), free(tmp), free(ua), free(ub);
}

/* ------------------------------------------------------------ padding */

static void test_pad_1d(void) {
    float in[5] = {0, 1, 2, 3, 4}, out[10];
    ip_pad_reflect(in, 1, 1, 5, out, 1, 8);
    const float e[8] = {0, 1, 2, 3, 4, 3, 2, 1};
    CHECK(memcmp(out, e, sizeof e) == 0, "W=5 -> 8: 0 1 2 3 4 3 2 1");
    /* pad larger than the image: reflects again */
    float in3[3] = {0, 1, 2};
    ip_pad_reflect(in3, 1, 1, 3, out, 1, 10);
    const float e3[10] = {0, 1, 2, 1, 0, 1, 2, 1, 0, 1};
    CHECK(memcmp(out, e3, sizeof e3) == 0, "W=3 -> 10 reflects repeatedly");
    float in2[2] = {5, 6};
    ip_pad_reflect(in2, 1, 1, 2, out, 1, 5);
    const float e2[5] = {5, 6, 5, 6, 5};
    CHECK(memcmp(out, e2, sizeof e2) == 0, "W=2 -> 5");
}

static void test_pad_one_pixel(void) {
    float in[2] = {0.25f, -0.75f}, out[2 * 3 * 4];
    ip_pad_reflect(in, 2, 1, 1, out, 3, 4);
    int ok = 1;
    for (int i = 0; i < 12; i++) ok &= out[i] == 0.25f && out[12 + i] == -0.75f;
    CHECK(ok, "1x1 image pads with its one value (per channel)");
    /* 1-pixel-wide column */
    float col[3] = {1, 2, 3}, o2[5 * 3];
    ip_pad_reflect(col, 1, 3, 1, o2, 5, 3);
    const float e[15] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 2, 2, 2, 1, 1, 1};
    CHECK(memcmp(o2, e, sizeof e) == 0, "3x1 -> 5x3");
}

/* Reference reflection by walking with a direction (independent of the
 * modulo formula in the library). */
static int walk_reflect(int i, int n) {
    if (n == 1) return 0;
    int pos = 0, dir = 1;
    for (int k = 0; k < i; k++) {
        if (pos + dir < 0 || pos + dir >= n) dir = -dir;
        pos += dir;
    }
    return pos;
}

static void test_pad_2d_and_crop(void) {
    const int C = 2, H = 3, W = 5, Hp = 11, Wp = 17;
    float in[2 * 3 * 5], out[2 * 11 * 17], back[2 * 3 * 5];
    for (int i = 0; i < C * H * W; i++) in[i] = (float)i;
    ip_pad_reflect(in, C, H, W, out, Hp, Wp);
    int ok = 1;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < Hp; y++)
            for (int x = 0; x < Wp; x++)
                ok &= out[(c * Hp + y) * Wp + x] == in[(c * H + walk_reflect(y, H)) * W + walk_reflect(x, W)];
    CHECK(ok, "2-D padding (pad > size) matches a walking reference");
    ip_crop(out, C, Hp, Wp, back, H, W);
    CHECK(memcmp(in, back, sizeof in) == 0, "crop inverts pad");
    float same[2 * 3 * 5];
    ip_pad_reflect(in, C, H, W, same, H, W);
    CHECK(memcmp(in, same, sizeof in) == 0, "no pad is a copy");
}

/* ------------------------------------------------------------ masks */

static void test_mask_fractions(void) {
    const double ranges[2][2] = {{0.05, 0.5}, {0.1, 0.3}};
    const int sizes[2] = {64, 256};
    for (int r = 0; r < 2; r++)
        for (int s = 0; s < 2; s++) {
            const int n = sizes[s];
            float *m = malloc((size_t)n * n * sizeof(float));
            int in_range = 0, binary = 1, agree = 1;
            double lo = 1, hi = 0, t0 = now_sec();
            for (int seed = 0; seed < 50; seed++) {
                rng_state rng;
                rng_seed(&rng, (uint64_t)seed + 1);
                const double f = ip_random_mask(&rng, m, n, n, ranges[r][0], ranges[r][1]);
                size_t cnt = 0;
                for (size_t i = 0; i < (size_t)n * n; i++) {
                    binary &= m[i] == 0.0f || m[i] == 1.0f;
                    cnt += m[i] == 1.0f;
                }
                agree &= fabs((double)cnt / ((double)n * n) - f) < 1e-12;
                in_range += f >= ranges[r][0] && f <= ranges[r][1];
                lo = fmin(lo, f), hi = fmax(hi, f);
            }
            const double ms = (now_sec() - t0) * 1000 / 50;
            printf("  masks %3dx%-3d [%.2f, %.2f]: %d/50 in range, fractions %.3f..%.3f, %.2f ms each\n", n, n,
                   ranges[r][0], ranges[r][1], in_range, lo, hi, ms);
            CHECK(in_range == 50, "%dx%d [%.2f, %.2f]: %d of 50 in range", n, n, ranges[r][0], ranges[r][1], in_range);
            CHECK(binary, "mask values are 0 or 1");
            CHECK(agree, "returned fraction matches the mask");
            /* The fractions spread over the range instead of piling up at min. */
            CHECK(hi - lo > 0.4 * (ranges[r][1] - ranges[r][0]), "fractions spread (%.3f..%.3f)", lo, hi);
            free(m);
        }
}

static void test_mask_deterministic(void) {
    const int n = 96;
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float));
    rng_state r1, r2;
    rng_seed(&r1, 1234);
    rng_seed(&r2, 1234);
    const double fa = ip_random_mask(&r1, a, n, n, 0.05, 0.5);
    const double fb = ip_random_mask(&r2, b, n, n, 0.05, 0.5);
    CHECK(fa == fb && memcmp(a, b, (size_t)n * n * sizeof(float)) == 0, "same seed, same mask");
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0, "same rng state afterwards");
    ip_random_mask(&r1, a, n, n, 0.05, 0.5);
    CHECK(memcmp(a, b, (size_t)n * n * sizeof(float)) != 0, "the next draw differs");
    free(a), free(b);
}

static void test_mask_sizes(void) {
    /* extremes of size and aspect, and a narrow range that needs retries */
    const int dims[][2] = {{8, 8}, {8, 200}, {4096, 4096}, {1, 1}, {3, 50}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const int H = dims[d][0], W = dims[d][1];
        float *m = malloc((size_t)H * W * sizeof(float));
        rng_state rng;
        rng_seed(&rng, 9 + d);
        const double t0 = now_sec();
        const double f = ip_random_mask(&rng, m, H, W, 0.1, 0.3);
        const double ms = (now_sec() - t0) * 1000;
        if (H == 4096) printf("  masks 4096x4096: %.1f ms\n", ms);
        const int tiny = H * W < 10; /* 1x1 cannot be in [0.1, 0.3] */
        CHECK(tiny ? f == 1.0 || f == 0.0 : (f >= 0.1 && f <= 0.3), "%dx%d: fraction %.3f", H, W, f);
        free(m);
    }
    {
        float m[64 * 64];
        rng_state rng;
        rng_seed(&rng, 5);
        int ok = 1;
        for (int i = 0; i < 20; i++) {
            const double f = ip_random_mask(&rng, m, 64, 64, 0.2, 0.205);
            ok &= f >= 0.2 && f <= 0.205;
        }
        CHECK(ok, "narrow range [0.2, 0.205] is reached");
    }
    float m[16];
    rng_state rng;
    rng_seed(&rng, 1);
    CHECK(ip_random_mask(&rng, m, 4, 4, 0.5, 0.2) < 0, "min > max rejected");
    CHECK(ip_random_mask(&rng, m, 0, 4, 0.1, 0.2) < 0, "zero height rejected");
    CHECK(ip_random_mask(&rng, m, 4, 4, NAN, 0.2) < 0, "NaN rejected");
}

/* train --masks damage: the area distribution over many seeds (histogram of
 * the hole fraction in 9 bins of 0.05 over [0.05, 0.5]), every kind of
 * damage present, binary masks, determinism per seed, the range respected. */
static void test_damage_mask(void) {
    const int sizes[2] = {64, 128}, seeds[2] = {600, 150};
    for (int s = 0; s < 2; s++) {
        const int n = sizes[s], N = seeds[s];
        float *m = malloc((size_t)n * n * sizeof(float)), *m2 = malloc((size_t)n * n * sizeof(float));
        int hist[9] = {0}, in_range = 0, binary = 1, agree = 1, same = 1, kind_count[4] = {0};
        unsigned all = 0;
        double sum = 0;
        for (int seed = 0; seed < N; seed++) {
            rng_state rng, rng2;
            rng_seed(&rng, (uint64_t)seed + 77);
            rng2 = rng;
            unsigned kinds = 0, kinds2 = 0;
            const double f = ip_damage_mask(&rng, m, n, n, 0.05, 0.5, &kinds);
            const double f2 = ip_damage_mask(&rng2, m2, n, n, 0.05, 0.5, &kinds2);
            same &= f == f2 && kinds == kinds2 && memcmp(m, m2, (size_t)n * n * sizeof(float)) == 0;
            size_t cnt = 0;
            for (size_t i = 0; i < (size_t)n * n; i++) {
                binary &= m[i] == 0.0f || m[i] == 1.0f;
                cnt += m[i] == 1.0f;
            }
            agree &= fabs((double)cnt / ((double)n * n) - f) < 1e-12;
            in_range += f >= 0.05 && f <= 0.5;
            int bin = (int)((f - 0.05) / 0.05);
            hist[bin < 0 ? 0 : bin > 8 ? 8 : bin]++;
            sum += f;
            all |= kinds;
            for (int k = 0; k < 4; k++) kind_count[k] += (kinds >> k) & 1;
        }
        printf("  damage masks %dx%d, %d seeds: mean %.3f, hist", n, n, N, sum / N);
        for (int b = 0; b < 9; b++) printf(" %d", hist[b]);
        printf("; kinds scratch %d blotch %d brush %d box %d\n", kind_count[0], kind_count[1], kind_count[2],
               kind_count[3]);
        CHECK(in_range == N, "%dx%d: %d of %d in [0.05, 0.5]", n, n, in_range, N);
        CHECK(binary, "damage mask values are 0 or 1");
        CHECK(agree, "returned fraction matches the mask");
        CHECK(same, "same seed, same damage mask and kinds");
        CHECK(all == 15u, "all four kinds appear (bits %x)", all);
        /* the target is uniform over the range and pieces overshoot it a
         * little: every bin holds between 0.4x and 2x the uniform share */
        for (int b = 0; b < 9; b++)
            CHECK(hist[b] >= 0.4 * N / 9 && hist[b] <= 2.0 * N / 9, "%dx%d: bin %d has %d of %d", n, n, b, hist[b], N);
        CHECK(sum / N > 0.24 && sum / N < 0.34, "mean fraction %.3f near the range's middle", sum / N);
        for (int k = 0; k < 4; k++)
            CHECK(kind_count[k] >= N / 10, "kind %d in %d of %d masks (>= 10%%)", k, kind_count[k], N);
        free(m), free(m2);
    }
    /* the --holes range bounds the damage too, narrow ranges included */
    float m[64 * 64];
    rng_state rng;
    rng_seed(&rng, 3);
    int ok = 1;
    for (int i = 0; i < 30; i++) {
        const double f = ip_damage_mask(&rng, m, 64, 64, 0.2, 0.21, NULL);
        ok &= f >= 0.2 && f <= 0.21;
    }
    CHECK(ok, "damage: narrow range [0.2, 0.21] is reached");
    rng_seed(&rng, 4);
    int ok2 = 1;
    for (int i = 0; i < 30; i++) ok2 &= ip_damage_mask(&rng, m, 64, 64, 0.1, 0.3, NULL) >= 0.1;
    CHECK(ok2, "damage: range 0.1-0.3 respected");
    unsigned k = 99;
    CHECK(ip_damage_mask(&rng, m, 4, 4, 0.5, 0.2, &k) < 0 && k == 0, "damage: min > max rejected");
    CHECK(ip_damage_mask(&rng, m, 0, 4, 0.1, 0.2, NULL) < 0, "damage: zero height rejected");
}

/* ------------------------------------------------------------ guided upsampling */

static void test_render_dims(void) {
    static const int cases[][5] = {/* h, w, R -> hr, wr */
                                   {3000, 4000, 256, 192, 256}, {4000, 3000, 384, 384, 288}, {683, 1024, 256, 171, 256},
                                   {100, 50, 256, 100, 50},     {256, 256, 256, 256, 256},   {257, 256, 256, 256, 255},
                                   {1000, 1, 64, 64, 1},        {500, 300, 0, 500, 300},     {500, 300, -1, 500, 300}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int hr, wr;
        ip_render_dims(cases[k][0], cases[k][1], cases[k][2], &hr, &wr);
        CHECK(hr == cases[k][3] && wr == cases[k][4], "render dims %dx%d at %d: got %dx%d, want %dx%d", cases[k][1],
              cases[k][0], cases[k][2], wr, hr, cases[k][4], cases[k][3]);
    }
}

static const dr_tensor *ref_tensor(const dr_tensor_file *tf, const char *name, int64_t numel) {
    const dr_tensor *t = dr_tensor_file_get(tf, name);
    CHECK(t && t->numel == numel, "reference tensor %s missing or of the wrong size", name);
    return t && t->numel == numel ? t : NULL;
}

/* Against tests/reference/guided_upsample.py (explicit window loops in float64
 * and PyTorch's bilinear interpolation), on its fixed images. */
static void test_guided_vs_reference(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/guided_ref.safetensors", DR_TEST_DATA);
    dr_tensor_file tf;
    if (dr_tensor_file_read(path, &tf) != DR_OK) {
        CHECK(0, "read %s: %s", path, dr_last_error());
        return;
    }
    static const char *names[] = {"a", "b", "c"};
    for (int k = 0; k < 3; k++) {
        char key[64];
        snprintf(key, sizeof key, "%s.g_lo", names[k]);
        const dr_tensor *glo = dr_tensor_file_get(&tf, key);
        snprintf(key, sizeof key, "%s.g", names[k]);
        const dr_tensor *g = dr_tensor_file_get(&tf, key);
        CHECK(glo && g && glo->ndim == 2 && g->ndim == 2, "case %s: guides", names[k]);
        if (!glo || !g || glo->ndim != 2 || g->ndim != 2) continue;
        const int h = (int)glo->shape[0], w = (int)glo->shape[1], H = (int)g->shape[0], W = (int)g->shape[1];
        snprintf(key, sizeof key, "%s.p_lo", names[k]);
        const dr_tensor *p = ref_tensor(&tf, key, 2LL * h * w);
        snprintf(key, sizeof key, "%s.q", names[k]);
        const dr_tensor *q = ref_tensor(&tf, key, 2LL * H * W);
        snprintf(key, sizeof key, "%s.radius", names[k]);
        const char *rs = dr_tensor_file_meta(&tf, key);
        snprintf(key, sizeof key, "%s.eps", names[k]);
        const char *es = dr_tensor_file_meta(&tf, key);
        CHECK(rs && es, "case %s: radius and eps in the metadata", names[k]);
        if (!p || !q || !rs || !es) continue;
        float *out = malloc(sizeof(float) * 2 * H * W), *out1 = malloc(sizeof(float) * 2 * H * W);
        int rc = ip_guided_upsample(glo->data, p->data, 2, h, w, g->data, H, W, atoi(rs), atof(es), out);
        CHECK(rc == DR_OK, "guided upsampling: %s", dr_last_error());
        const double d = test_max_abs_diff(out, q->data, 2 * (size_t)H * W);
        printf("guided case %s (%dx%d -> %dx%d, r %s, eps %s): max |C - reference| %.3g (|q| max %.3f)\n", names[k], w,
               h, W, H, rs, es, d, test_max_abs(q->data, 2 * (size_t)H * W));
        CHECK(d < 1e-6, "case %s: guided upsampling differs from the reference by %.3g", names[k], d);
        /* the thread count does not change a bit */
        const int th = nn_threads();
        nn_init_threads(1);
        ip_guided_upsample(glo->data, p->data, 2, h, w, g->data, H, W, atoi(rs), atof(es), out1);
        nn_init_threads(th);
        CHECK(memcmp(out, out1, sizeof(float) * 2 * H * W) == 0, "case %s: 1 thread differs", names[k]);
        free(out);
        free(out1);
    }
    dr_tensor_file_free(&tf);
}

/* Properties that hold whatever the reference says: a chroma that is an
 * affine function of the guide with no texture to fit (constant planes) comes
 * back constant, and the error paths. */
static void test_guided_properties(void) {
    enum { h = 6, w = 9, H = 17, W = 25 };
    float glo[h * w], plo[2 * h * w], g[H * W], q[2 * H * W];
    for (int i = 0; i < h * w; i++) glo[i] = (float)sin(0.7 * i), plo[i] = 0.25f, plo[h * w + i] = -0.5f;
    for (int i = 0; i < H * W; i++) g[i] = (float)cos(0.3 * i);
    CHECK(ip_guided_upsample(glo, plo, 2, h, w, g, H, W, 2, 1e-3, q) == DR_OK, "constant planes");
    double e0 = 0, e1 = 0;
    for (int i = 0; i < H * W; i++) e0 = fmax(e0, fabs(q[i] - 0.25)), e1 = fmax(e1, fabs(q[H * W + i] + 0.5));
    CHECK(e0 < 1e-6 && e1 < 1e-6, "constant chroma stays constant (errors %.3g, %.3g)", e0, e1);
    CHECK(ip_guided_upsample(glo, plo, 2, h, w, g, H, W, -1, 1e-3, q) == DR_ERR_INVALID, "negative radius");
    CHECK(ip_guided_upsample(glo, plo, 2, h, w, g, H, W, 2, 0.0, q) == DR_ERR_INVALID, "eps 0");
    CHECK(ip_guided_upsample(glo, plo, 0, h, w, g, H, W, 2, 1e-3, q) == DR_ERR_INVALID, "no planes");
    CHECK(ip_guided_upsample(NULL, plo, 2, h, w, g, H, W, 2, 1e-3, q) == DR_ERR_INVALID, "NULL guide");
}

int main(void) {
    test_planar_roundtrip();
    test_from_planar_clamps();
    test_ycbcr_known();
    test_ycbcr_roundtrip();
    test_resampler_rows_sum();
    test_resampler_vs_reference();
    test_resize_constant();
    test_resize_up_down();
    test_resize_ramp();
    test_resize_errors();
    test_projector();
    test_threads_invariant();
    test_pad_1d();
    test_pad_one_pixel();
    test_pad_2d_and_crop();
    test_mask_fractions();
    test_mask_deterministic();
    test_mask_sizes();
    test_damage_mask();
    test_render_dims();
    test_guided_vs_reference();
    test_guided_properties();
    return test_summary("test_imgproc");
}
