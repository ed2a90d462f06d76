/* test_eval.c - the evaluation metrics and degradations of `diffrestore eval`
 * (the "evaluation" section of diffrestore.h): known cases computed by hand or
 * by naive code written here, independently of src/eval/. */
#include "diffrestore.h"
#include "testutil.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

static dr_image make(int w, int h, int ch) {
    dr_image im;
    if (dr_image_alloc(&im, w, h, ch, 8) != DR_OK) {
        fprintf(stderr, "alloc failed\n");
        exit(1);
    }
    return im;
}

/* A smooth colour pattern with some texture, values within lo..hi. */
static dr_image pattern(int w, int h, int lo, int hi, uint64_t seed) {
    dr_image im = make(w, h, 3);
    test_rng r = {seed};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double v = 0.5 + 0.3 * sin(0.37 * x * (c + 1) + 0.21 * y) + 0.15 * cos(0.13 * y * (c + 2)) +
                    0.1 * (test_rng_uniform(&r) - 0.5);
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                im.data[((size_t)y * w + x) * 3 + c] = (uint16_t)lround(lo + v * (hi - lo));
            }
    return im;
}

static dr_image copy(const dr_image *a) {
    dr_image b = make(a->width, a->height, a->channels);
    memcpy(b.data, a->data, sizeof(uint16_t) * (size_t)a->width * a->height * a->channels);
    return b;
}

static int same_image(const dr_image *a, const dr_image *b) {
    return a->width == b->width && a->height == b->height && a->channels == b->channels && a->depth == b->depth &&
        memcmp(a->data, b->data, sizeof(uint16_t) * (size_t)a->width * a->height * a->channels) == 0;
}

static double luma(const dr_image *im, size_t i) {
    const uint16_t *p = im->data + i * im->channels;
    return im->channels >= 3 ? 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2] : p[0];
}

/* Naive SSIM: the full 2-D Gaussian window at every valid position. */
static double naive_ssim(const dr_image *a, const dr_image *b, int win) {
    const int W = a->width, H = a->height, r = win / 2;
    double g[32], gs = 0;
    for (int k = 0; k < win; k++) gs += (g[k] = exp(-(double)(k - r) * (k - r) / (2 * 1.5 * 1.5)));
    for (int k = 0; k < win; k++) g[k] /= gs;
    const double C1 = 6.5025, C2 = 58.5225, total_n = (double)(H - win + 1) * (W - win + 1);
    double total = 0;
    for (int y = 0; y + win <= H; y++)
        for (int x = 0; x + win <= W; x++) {
            double ma = 0, mb = 0, aa = 0, bb = 0, ab = 0;
            for (int i = 0; i < win; i++)
                for (int j = 0; j < win; j++) {
                    const size_t p = (size_t)(y + i) * W + x + j;
                    const double w = g[i] * g[j], va = luma(a, p), vb = luma(b, p);
                    ma += w * va, mb += w * vb, aa += w * va * va, bb += w * vb * vb, ab += w * va * vb;
                }
            total += (2 * ma * mb + C1) * (2 * (ab - ma * mb) + C2) /
                ((ma * ma + mb * mb + C1) * (aa - ma * ma + bb - mb * mb + C2));
        }
    return total / total_n;
}

/* ------------------------------------------------------------ PSNR */

static void test_psnr(void) {
    dr_image a = pattern(40, 30, 20, 200, 1), b = copy(&a);
    double p = 0, s = 0;
    CHECK(dr_eval_psnr(&a, &b, NULL, &p) == DR_OK && p == DR_EVAL_PSNR_CAP, "identical images: PSNR %g, want 99", p);
    CHECK(DR_EVAL_PSNR_CAP == 99.0, "the cap is 99 dB");
    CHECK(dr_eval_ssim(&a, &b, &s) == DR_OK && fabs(s - 1.0) < 1e-12, "identical images: SSIM %.15g, want 1", s);
    const int ks[] = {1, 3, 7, 50};
    for (int t = 0; t < 4; t++) {
        const int k = ks[t];
        for (size_t i = 0; i < (size_t)40 * 30 * 3; i++) b.data[i] = a.data[i] + k; /* a <= 200, no clipping */
        CHECK(dr_eval_psnr(&a, &b, NULL, &p) == DR_OK, "psnr");
        const double want = 20 * log10(255.0 / k);
        CHECK(fabs(p - want) < 1e-9, "offset of %d levels: PSNR %.12f, want 20 log10(255/%d) = %.12f", k, p, k, want);
        CHECK(dr_eval_psnr(&b, &a, NULL, &p) == DR_OK && fabs(p - want) < 1e-9, "PSNR is symmetric");
    }
    /* a region: offset only inside it -> the region's PSNR is the offset's, outside is 99 */
    dr_image reg = make(40, 30, 1), inv = make(40, 30, 1);
    for (size_t i = 0; i < (size_t)40 * 30; i++) {
        const int in = (i % 40) < 10;
        reg.data[i] = in ? 255 : 0;
        inv.data[i] = in ? 0 : 255;
        for (int c = 0; c < 3; c++) b.data[i * 3 + c] = (uint16_t)(a.data[i * 3 + c] + (in ? 5 : 0));
    }
    CHECK(dr_eval_psnr(&a, &b, &reg, &p) == DR_OK && fabs(p - 20 * log10(255.0 / 5)) < 1e-9, "region PSNR %g", p);
    CHECK(dr_eval_psnr(&a, &b, &inv, &p) == DR_OK && p == 99.0, "outside the changed region: %g", p);
    dr_image empty = make(40, 30, 1);
    CHECK(dr_eval_psnr(&a, &b, &empty, &p) == DR_OK && isnan(p), "an empty region gives NaN, got %g", p);
    /* a 16-bit image counts on the 0..255 scale */
    dr_image a16;
    dr_image_alloc(&a16, 40, 30, 3, 16);
    for (size_t i = 0; i < (size_t)40 * 30 * 3; i++) a16.data[i] = (uint16_t)(a.data[i] * 257);
    CHECK(dr_eval_psnr(&a, &a16, NULL, &p) == DR_OK && p == 99.0, "16-bit copy: PSNR %g", p);
    /* size mismatch is an error */
    dr_image c = make(41, 30, 3);
    CHECK(dr_eval_psnr(&a, &c, NULL, &p) == DR_ERR_INVALID, "different sizes are refused");
    CHECK(dr_eval_ssim(&a, &c, &s) == DR_ERR_INVALID, "different sizes are refused (SSIM)");
    dr_image_free(&a);
    dr_image_free(&b);
    dr_image_free(&c);
    dr_image_free(&reg);
    dr_image_free(&inv);
    dr_image_free(&empty);
    dr_image_free(&a16);
}

/* ------------------------------------------------------------ SSIM */

static void test_ssim(void) {
    dr_image a = pattern(37, 29, 0, 255, 2), b = pattern(37, 29, 10, 240, 3), inv = copy(&a);
    for (size_t i = 0; i < (size_t)37 * 29 * 3; i++) inv.data[i] = (uint16_t)(255 - a.data[i]);
    double s = 0;
    CHECK(dr_eval_ssim(&a, &inv, &s) == DR_OK && s < 0, "SSIM against the inverted copy %g, want < 0", s);
    CHECK(dr_eval_ssim(&a, &b, &s) == DR_OK, "ssim");
    const double ref = naive_ssim(&a, &b, 11);
    CHECK(fabs(s - ref) < 1e-10, "SSIM %.15f against a naive 2-D window %.15f", s, ref);
    CHECK(s > -1 && s < 1, "SSIM of different images within (-1, 1): %g", s);
    double s2 = 0;
    CHECK(dr_eval_ssim(&b, &a, &s2) == DR_OK && fabs(s - s2) < 1e-12, "SSIM is symmetric");
    /* smaller than the window: the largest odd window that fits (7 for 8 x 9) */
    dr_image sa = pattern(9, 8, 0, 255, 4), sb = pattern(9, 8, 0, 255, 5);
    CHECK(dr_eval_ssim(&sa, &sb, &s) == DR_OK && fabs(s - naive_ssim(&sa, &sb, 7)) < 1e-10,
          "small image: SSIM %g against the 7-window %g", s, naive_ssim(&sa, &sb, 7));
    dr_image one = make(1, 1, 3);
    CHECK(dr_eval_ssim(&one, &one, &s) == DR_OK && fabs(s - 1) < 1e-12, "1x1 image: SSIM %g", s);
    dr_image_free(&a);
    dr_image_free(&b);
    dr_image_free(&inv);
    dr_image_free(&sa);
    dr_image_free(&sb);
    dr_image_free(&one);
}

/* ------------------------------------------------------------ colour */

static void test_colour(void) {
    /* gray: rg = 0 and yb = 0 everywhere -> M = 0 (RGB with R = G = B, and a 1-channel image) */
    dr_image g = pattern(20, 10, 0, 255, 6), g1 = make(20, 10, 1);
    for (size_t i = 0; i < 200; i++) {
        g.data[i * 3 + 1] = g.data[i * 3 + 2] = g.data[i * 3];
        g1.data[i] = g.data[i * 3];
    }
    double m = -1;
    CHECK(dr_eval_colorfulness(&g, &m) == DR_OK && m == 0.0, "gray RGB image: colourfulness %g, want 0", m);
    CHECK(dr_eval_colorfulness(&g1, &m) == DR_OK && m == 0.0, "1-channel image: colourfulness %g, want 0", m);

    /* two colours, half the pixels each: pure red (255, 0, 0) and pure blue (0, 0, 255).
     * red: rg = 255, yb = 127.5;  blue: rg = 0, yb = -255.
     * mu_rg = 127.5, sd_rg = 127.5; mu_yb = -63.75, sd_yb = 191.25 (population).
     * M = sqrt(127.5^2 + 191.25^2) + 0.3 sqrt(127.5^2 + 63.75^2)
     *   = 229.85389... + 0.3 * 142.54933... = 272.61869... */
    dr_image two = make(8, 4, 3);
    for (size_t i = 0; i < 32; i++) {
        const int red = i % 2 == 0;
        two.data[i * 3 + 0] = red ? 255 : 0;
        two.data[i * 3 + 1] = 0;
        two.data[i * 3 + 2] = red ? 0 : 255;
    }
    const double want = sqrt(127.5 * 127.5 + 191.25 * 191.25) + 0.3 * sqrt(127.5 * 127.5 + 63.75 * 63.75);
    CHECK(dr_eval_colorfulness(&two, &m) == DR_OK && fabs(m - want) < 1e-9, "red/blue: M %.10f, want %.10f", m, want);
    CHECK(fabs(want - 272.61869) < 1e-4, "hand value of M: %.6f", want);

    /* chroma PSNR of a gray output against a colour ground truth: the gray output's
     * chroma is 128 (up to rounding), so the MSE is the mean of (Cb-128)^2 + (Cr-128)^2
     * of the truth over two channels */
    dr_image gt = pattern(24, 16, 0, 255, 7), gray = make(24, 16, 3);
    double sse = 0;
    for (size_t i = 0; i < (size_t)24 * 16; i++) {
        const double R = gt.data[i * 3], G = gt.data[i * 3 + 1], B = gt.data[i * 3 + 2];
        const uint16_t y = (uint16_t)lround(0.299 * R + 0.587 * G + 0.114 * B);
        gray.data[i * 3] = gray.data[i * 3 + 1] = gray.data[i * 3 + 2] = y;
        const double cb = -0.168736 * R - 0.331264 * G + 0.5 * B, cr = 0.5 * R - 0.418688 * G - 0.081312 * B;
        sse += cb * cb + cr * cr;
    }
    const double cwant = 10 * log10(255.0 * 255.0 / (sse / (2.0 * 24 * 16)));
    double cp = 0;
    CHECK(dr_eval_chroma_psnr(&gray, &gt, &cp) == DR_OK && fabs(cp - cwant) < 1e-6,
          "chroma PSNR of a gray output %.9f, want %.9f", cp, cwant);
    CHECK(dr_eval_chroma_psnr(&gt, &gt, &cp) == DR_OK && cp == 99.0, "identical chroma: %g", cp);
    dr_image_free(&g);
    dr_image_free(&g1);
    dr_image_free(&two);
    dr_image_free(&gt);
    dr_image_free(&gray);
}

/* ------------------------------------------------------------ detail */

static void test_hf(void) {
    dr_image a = pattern(32, 24, 0, 255, 8), blur = copy(&a);
    for (int y = 0; y < 24; y++) /* 3x3 box blur, edges clamped */
        for (int x = 0; x < 32; x++)
            for (int c = 0; c < 3; c++) {
                int s = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int yy = y + dy < 0 ? 0
                            : y + dy > 23   ? 23
                                            : y + dy,
                            xx = x + dx < 0 ? 0
                            : x + dx > 31   ? 31
                                            : x + dx;
                        s += a.data[((size_t)yy * 32 + xx) * 3 + c];
                    }
                blur.data[((size_t)y * 32 + x) * 3 + c] = (uint16_t)((s + 4) / 9);
            }
    double r = 0;
    CHECK(dr_eval_hf_ratio(&blur, &a, NULL, &r) == DR_OK && r < 1 && r > 0, "blurred / sharp HF ratio %g, want < 1", r);
    CHECK(dr_eval_hf_ratio(&a, &blur, NULL, &r) == DR_OK && r > 1, "sharp / blurred HF ratio %g, want > 1", r);
    CHECK(dr_eval_hf_ratio(&a, &a, NULL, &r) == DR_OK && r == 1.0, "same image: ratio %g", r);

    /* the gradient by hand: a 3x2 gray image [0 10 30; 5 5 5]
     * |grad| = |dx| + |dy| per pixel: row 0: (10 + 5) (20 + 5) (0 + 25), row 1: 0 0 0
     * (nothing past the last column or row) -> sum 65 */
    dr_image h = make(3, 2, 1), flat = make(3, 2, 1);
    const uint16_t v[6] = {0, 10, 30, 5, 5, 5};
    for (int i = 0; i < 6; i++) h.data[i] = v[i], flat.data[i] = (uint16_t)(i == 0 ? 7 : 0);
    /* flat [7 0 0; 0 0 0]: |grad| = 7 + 7 at pixel 0, 0 elsewhere -> sum 14; ratio 65 / 14 */
    CHECK(dr_eval_hf_ratio(&h, &flat, NULL, &r) == DR_OK && fabs(r - 65.0 / 14.0) < 1e-12,
          "hand gradients: %g, want 65/14", r);
    dr_image zero = make(3, 2, 1);
    CHECK(dr_eval_hf_ratio(&h, &zero, NULL, &r) == DR_OK && isnan(r), "no detail in the reference: NaN, got %g", r);
    dr_image_free(&a);
    dr_image_free(&blur);
    dr_image_free(&h);
    dr_image_free(&flat);
    dr_image_free(&zero);
}

/* ------------------------------------------------------------ degradations */

static void test_degrade(void) {
    dr_eval_options o;
    dr_eval_options_init(&o);
    CHECK(o.scale == 4 && o.hole_min == 0.10 && o.hole_max == 0.30 && o.crop == 0 && o.seed == 0, "defaults");
    dr_image gt = pattern(37, 23, 0, 255, 9);
    dr_eval_case c;

    /* superres: LR = round(H/s) x round(W/s), the baseline at HR size */
    const double scales[] = {2, 2.5, 3, 4};
    for (int k = 0; k < 4; k++) {
        o.scale = scales[k];
        CHECK(dr_eval_degrade(&gt, DR_MODE_SUPERRES, &o, 0, &c) == DR_OK, "superres degrade");
        const int lw = (int)lround(37 / scales[k]), lh = (int)lround(23 / scales[k]);
        CHECK(c.input.width == lw && c.input.height == lh, "scale %g: LR %dx%d, want %dx%d", scales[k], c.input.width,
              c.input.height, lw, lh);
        CHECK(c.input.channels == 3 && c.input.depth == 8, "LR is 8-bit RGB");
        CHECK(c.baseline.width == 37 && c.baseline.height == 23 && c.baseline.channels == 3,
              "bicubic baseline at HR size");
        CHECK(same_image(&c.truth, &gt), "truth is the image (no crop)");
        dr_eval_metrics m;
        CHECK(dr_eval_score(&c, &c.truth, &m) == DR_OK, "score the truth");
        CHECK(m.psnr == 99 && fabs(m.ssim - 1) < 1e-12 && m.hf_ratio == 1.0, "truth scores perfectly");
        CHECK(m.consistency_psnr > 45, "the truth downscales to the LR within rounding: %g dB", m.consistency_psnr);
        CHECK(isnan(m.hole_psnr) && isnan(m.chroma_psnr), "other modes' metrics are NaN");
        dr_image big = make(38, 23, 3);
        CHECK(dr_eval_score(&c, &big, &m) == DR_ERR_INVALID, "an output of another size is refused");
        dr_image_free(&big);
        dr_image sheet;
        CHECK(dr_eval_sheet(&c, &c.baseline, &sheet) == DR_OK && sheet.width == 3 * 37 + 4 && sheet.height == 23 &&
                  sheet.channels == 3,
              "sheet size");
        /* panel 1 is the LR by nearest neighbour: its top-left pixel is the LR's */
        CHECK(memcmp(sheet.data, c.input.data, 3 * sizeof(uint16_t)) == 0, "sheet panel 1 starts with LR(0,0)");
        dr_image_free(&sheet);
        dr_eval_case_free(&c);
    }
    o.scale = 0.5;
    CHECK(dr_eval_degrade(&gt, DR_MODE_SUPERRES, &o, 0, &c) == DR_ERR_INVALID, "scale < 1 is refused");
    o.scale = 4;

    /* colorize: the input is the 1-channel luma rounded to 8 bits */
    CHECK(dr_eval_degrade(&gt, DR_MODE_COLORIZE, &o, 0, &c) == DR_OK, "colorize degrade");
    CHECK(c.input.channels == 1 && c.input.depth == 8 && c.input.width == 37 && c.input.height == 23,
          "colorize input is 1-channel 8-bit");
    double worst = 0;
    for (size_t i = 0; i < (size_t)37 * 23; i++) worst = fmax(worst, fabs(c.input.data[i] - luma(&gt, i)));
    CHECK(worst <= 0.5 + 1e-4, "input is round(Y): worst %g", worst);
    CHECK(c.baseline.channels == 3 && c.baseline.data[0] == c.input.data[0] && c.baseline.data[2] == c.input.data[0],
          "gray baseline is the input as RGB");
    dr_eval_metrics m;
    CHECK(dr_eval_score(&c, &c.baseline, &m) == DR_OK, "score the gray baseline");
    CHECK(m.colorfulness == 0 && m.colorfulness_ratio == 0 && m.max_luma_diff < 1e-9, "gray baseline: M 0, dY 0");
    CHECK(dr_eval_score(&c, &c.truth, &m) == DR_OK && m.max_luma_diff <= 0.5 + 1e-4 && m.colorfulness_ratio == 1,
          "truth: |dY| %g <= 0.5, colourfulness ratio 1", m.max_luma_diff);
    dr_eval_case_free(&c);

    /* inpaint: mask fraction within range, deterministic per (seed, index) */
    dr_image big = pattern(64, 48, 0, 255, 10);
    dr_eval_case c2, c3;
    for (int idx = 0; idx < 6; idx++) {
        CHECK(dr_eval_degrade(&big, DR_MODE_INPAINT, &o, idx, &c) == DR_OK, "inpaint degrade");
        size_t holes = 0;
        int known_ok = 1, holes_black = 1, binary = 1;
        for (size_t i = 0; i < (size_t)64 * 48; i++) {
            const int h = c.mask.data[i] == 255;
            binary &= c.mask.data[i] == 0 || c.mask.data[i] == 255;
            holes += (size_t)h;
            for (int k = 0; k < 3; k++) {
                if (!h && c.input.data[i * 3 + k] != big.data[i * 3 + k]) known_ok = 0;
                if (h && c.input.data[i * 3 + k] != 0) holes_black = 0;
            }
        }
        const double f = (double)holes / (64.0 * 48);
        CHECK(f >= 0.10 && f <= 0.30, "index %d: hole fraction %g within 0.10..0.30", idx, f);
        CHECK(fabs(f - c.hole_fraction) < 1e-12, "hole_fraction reported");
        CHECK(known_ok && holes_black, "input: known pixels of the truth, holes black");
        CHECK(binary, "mask is 0/255");
        CHECK(c.mask.channels == 1 && c.input.channels == 3, "mask 1 channel, input RGB");
        CHECK(dr_eval_degrade(&big, DR_MODE_INPAINT, &o, idx, &c2) == DR_OK && same_image(&c.mask, &c2.mask) &&
                  same_image(&c.input, &c2.input),
              "same seed and index: the same mask");
        CHECK(dr_eval_degrade(&big, DR_MODE_INPAINT, &o, idx + 1, &c3) == DR_OK && !same_image(&c.mask, &c3.mask),
              "another index: another mask");
        dr_eval_case_free(&c2);
        dr_eval_case_free(&c3);
        o.seed = 1;
        CHECK(dr_eval_degrade(&big, DR_MODE_INPAINT, &o, idx, &c2) == DR_OK && !same_image(&c.mask, &c2.mask),
              "another seed: another mask");
        o.seed = 0;
        dr_eval_case_free(&c2);
        CHECK(dr_eval_score(&c, &c.truth, &m) == DR_OK && m.max_known_diff == 0 && m.hole_psnr == 99 &&
                  m.hole_hf_ratio == 1,
              "truth as output: known diff 0, hole PSNR 99");
        dr_image bad = copy(&c.truth);
        for (size_t i = 0; i < (size_t)64 * 48; i++)
            if (c.mask.data[i] == 0) {
                bad.data[i * 3 + 1] += 3;
                break;
            }
        CHECK(dr_eval_score(&c, &bad, &m) == DR_OK && m.max_known_diff == 3 && m.hole_psnr == 99,
              "a changed known pixel shows: %g", m.max_known_diff);
        dr_image_free(&bad);
        if (idx == 0) {
            dr_image sheet;
            CHECK(dr_eval_sheet(&c, &c.truth, &sheet) == DR_OK, "inpaint sheet");
            int magenta_ok = 1;
            for (size_t i = 0; i < (size_t)64 * 48; i++) {
                const size_t y = i / 64, x = i % 64;
                const uint16_t *p = sheet.data + (y * sheet.width + x) * 3;
                if (c.mask.data[i] && !(p[0] == 255 && p[1] == 0 && p[2] == 255)) magenta_ok = 0;
                if (!c.mask.data[i] && memcmp(p, big.data + i * 3, 6) != 0) magenta_ok = 0;
                const uint16_t *q = sheet.data + (y * sheet.width + 2 * (64 + 2) + x) * 3; /* panel 3: truth */
                if (memcmp(q, big.data + i * 3, 6) != 0) magenta_ok = 0;
            }
            CHECK(magenta_ok, "sheet: holes magenta, known pixels and truth as they are");
            dr_image_free(&sheet);
        }
        dr_eval_case_free(&c);
    }
    o.hole_min = 0.4, o.hole_max = 0.2;
    CHECK(dr_eval_degrade(&big, DR_MODE_INPAINT, &o, 0, &c) == DR_ERR_INVALID, "hole range min > max is refused");
    dr_eval_options_init(&o);

    /* inpaint --masks damage: the other generator, under the same contract
     * (range, determinism, known pixels kept); its shapes are test_imgproc's */
    CHECK(o.masks == DR_MASKS_LEGACY, "legacy masks by default");
    dr_image big2 = pattern(128, 96, 0, 255, 11);
    int differs = 0;
    for (int idx = 0; idx < 8; idx++) {
        dr_eval_case cl, cd, cd2;
        o.masks = DR_MASKS_LEGACY;
        CHECK(dr_eval_degrade(&big2, DR_MODE_INPAINT, &o, idx, &cl) == DR_OK, "legacy degrade");
        o.masks = DR_MASKS_DAMAGE;
        CHECK(dr_eval_degrade(&big2, DR_MODE_INPAINT, &o, idx, &cd) == DR_OK &&
                  dr_eval_degrade(&big2, DR_MODE_INPAINT, &o, idx, &cd2) == DR_OK && same_image(&cd.mask, &cd2.mask),
              "damage: the same seed and index give the same mask");
        differs += !same_image(&cl.mask, &cd.mask);
        size_t holes = 0;
        int known_ok = 1, binary = 1;
        for (size_t i = 0; i < (size_t)128 * 96; i++) {
            const int h = cd.mask.data[i] == 255;
            binary &= cd.mask.data[i] == 0 || cd.mask.data[i] == 255;
            holes += (size_t)h;
            for (int k = 0; k < 3; k++)
                if (h ? cd.input.data[i * 3 + k] != 0 : cd.input.data[i * 3 + k] != big2.data[i * 3 + k]) known_ok = 0;
        }
        const double f = (double)holes / (128.0 * 96);
        CHECK(binary && known_ok, "damage %d: binary mask, known pixels kept, holes black", idx);
        CHECK(f >= 0.10 && f <= 0.30 && fabs(f - cd.hole_fraction) < 1e-12, "damage %d: hole fraction %g in 0.10..0.30",
              idx, f);
        dr_eval_case_free(&cl);
        dr_eval_case_free(&cd);
        dr_eval_case_free(&cd2);
    }
    CHECK(differs == 8, "damage masks differ from legacy ones (%d of 8)", differs);
    o.masks = (dr_train_masks)7;
    CHECK(dr_eval_degrade(&big2, DR_MODE_INPAINT, &o, 0, &c) == DR_ERR_INVALID, "an unknown generator is refused");
    dr_image_free(&big2);
    dr_eval_options_init(&o);

    /* crop: centred, a shorter side kept whole; gray 16-bit ground truth -> 8-bit RGB */
    dr_image g16;
    dr_image_alloc(&g16, 50, 30, 1, 16);
    for (size_t i = 0; i < 1500; i++) g16.data[i] = (uint16_t)(i * 43 % 65536);
    o.crop = 20;
    CHECK(dr_eval_degrade(&g16, DR_MODE_COLORIZE, &o, 0, &c) == DR_OK, "crop degrade");
    CHECK(c.truth.width == 20 && c.truth.height == 20 && c.truth.channels == 3 && c.truth.depth == 8, "20x20 RGB crop");
    int crop_ok = 1;
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 20; x++) {
            const unsigned v = g16.data[(size_t)(y + 5) * 50 + x + 15];
            const unsigned want = (unsigned)lround(v * 255.0 / 65535.0);
            for (int k = 0; k < 3; k++) crop_ok &= c.truth.data[((size_t)y * 20 + x) * 3 + k] == want;
        }
    CHECK(crop_ok, "crop at (15, 5), 16-bit rounded to 8");
    dr_eval_case_free(&c);
    o.crop = 40;
    CHECK(dr_eval_degrade(&g16, DR_MODE_SUPERRES, &o, 0, &c) == DR_OK && c.truth.width == 40 && c.truth.height == 30,
          "crop 40 of 50x30: 40x30, got %dx%d", c.truth.width, c.truth.height);
    dr_eval_case_free(&c);
    dr_image_free(&g16);
    dr_image_free(&big);
    dr_image_free(&gt);
}

/* ------------------------------------------------------------ means, end to end */

static void test_mean(void) {
    dr_eval_metrics m[3], mean;
    for (int i = 0; i < 3; i++) {
        memset(&m[i], 0, sizeof m[i]);
        m[i].psnr = 10 * (i + 1);
        m[i].hole_psnr = i == 1 ? NAN : 30;
        m[i].hf_ratio = NAN;
    }
    dr_eval_metrics_mean(m, 3, &mean);
    CHECK(mean.psnr == 20 && mean.hole_psnr == 30 && isnan(mean.hf_ratio) && mean.ssim == 0,
          "mean over the finite values: %g %g %g", mean.psnr, mean.hole_psnr, mean.hf_ratio);
    dr_eval_metrics_mean(NULL, 0, &mean);
    CHECK(isnan(mean.psnr), "mean of nothing is NaN");
}

/* denoise: noise of the asked std, from a stream of (seed, index) only; JPEG
 * first when asked; the baseline is the noisy input; bad levels refused. */
/* The report columns: PSNR and SSIM first for every mode, then the mode's
 * own, each naming the field its offset points at; none for an unknown mode. */
static void test_columns(void) {
    const dr_eval_column *cols[32];
    CHECK(dr_eval_columns(DR_MODE_NONE, cols, 32) == 0, "no columns for an unknown mode");
    for (int k = 1; k <= dr_mode_count(); k++) {
        const int n = dr_eval_columns((dr_mode)k, cols, 32);
        CHECK(n >= 2 && !strcmp(cols[0]->key, "psnr") && !strcmp(cols[1]->key, "ssim"), "%s: %d columns",
              dr_mode_name((dr_mode)k), n);
        for (int i = 0; i < n; i++) {
            dr_eval_metrics m;
            memset(&m, 0, sizeof m);
            *(double *)((char *)&m + cols[i]->offset) = 7.5;
            dr_eval_metrics mean;
            dr_eval_metrics_mean(&m, 1, &mean);
            CHECK(*(const double *)((const char *)&mean + cols[i]->offset) == 7.5 &&
                      (cols[i]->label == NULL) == (cols[i]->fmt == NULL),
                  "%s: column %s", dr_mode_name((dr_mode)k), cols[i]->key);
        }
        CHECK(dr_eval_columns((dr_mode)k, cols, 1) == 1, "max is honoured");
    }
    const int nc = dr_eval_columns(DR_MODE_COLORIZE, cols, 32);
    CHECK(nc == 7 && !strcmp(cols[2]->key, "chroma_psnr") && !strcmp(cols[4]->key, "max_luma_diff") &&
              cols[2]->offset == offsetof(dr_eval_metrics, chroma_psnr),
          "colorize's columns (%d)", nc);
    CHECK(dr_eval_columns(DR_MODE_DENOISE, cols, 32) == 2, "denoise: PSNR and SSIM only");
}

static void test_denoise_degrade(void) {
    dr_image gt = pattern(64, 48, 60, 190, 3);
    dr_eval_options o;
    dr_eval_options_init(&o);
    CHECK(o.noise_sigma == 25 && o.jpeg_quality == 0, "denoise defaults: %g, %d", o.noise_sigma, o.jpeg_quality);
    dr_eval_case c, c2, c3;
    CHECK(dr_eval_degrade(&gt, DR_MODE_DENOISE, &o, 2, &c) == DR_OK, "denoise degrade: %s", dr_last_error());
    double s2 = 0, s1 = 0;
    const size_t n = (size_t)3 * 64 * 48;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)c.input.data[i] - c.truth.data[i];
        s1 += d;
        s2 += d * d;
    }
    const double sd = sqrt(s2 / n - (s1 / n) * (s1 / n));
    CHECK(fabs(sd - 25) < 1.5 && fabs(s1 / n) < 1.0, "noise std %.2f (want 25), mean %.2f", sd, s1 / n);
    CHECK(c.baseline.width == 64 && memcmp(c.baseline.data, c.input.data, n * sizeof(uint16_t)) == 0,
          "the baseline is the noisy input");
    CHECK(dr_eval_degrade(&gt, DR_MODE_DENOISE, &o, 2, &c2) == DR_OK && same_image(&c.input, &c2.input),
          "the same (seed, index): the same noise");
    CHECK(dr_eval_degrade(&gt, DR_MODE_DENOISE, &o, 3, &c3) == DR_OK && !same_image(&c.input, &c3.input),
          "another index: other noise");
    dr_eval_case_free(&c2);
    dr_eval_case_free(&c3);
    o.noise_sigma = 0;
    o.jpeg_quality = 20;
    CHECK(dr_eval_degrade(&gt, DR_MODE_DENOISE, &o, 2, &c2) == DR_OK && !same_image(&c2.input, &c2.truth),
          "JPEG at 20 alone changes the image");
    o.jpeg_quality = 0;
    CHECK(dr_eval_degrade(&gt, DR_MODE_DENOISE, &o, 2, &c3) == DR_OK && same_image(&c3.input, &c3.truth),
          "no noise and no JPEG: the truth itself");
    dr_eval_case_free(&c2);
    dr_eval_case_free(&c3);
    o.noise_sigma = -1;
    CHECK(dr_eval_degrade(&gt, DR_MODE_DENOISE, &o, 2, &c2) == DR_ERR_INVALID, "negative noise refused");
    o.noise_sigma = 25;
    o.jpeg_quality = 101;
    CHECK(dr_eval_degrade(&gt, DR_MODE_DENOISE, &o, 2, &c2) == DR_ERR_INVALID, "JPEG quality 101 refused");
    dr_eval_case_free(&c);
    dr_image_free(&gt);
}

static void test_restore_scores(void) {
    /* the whole path on a tiny random model: restore the degraded input, score it,
     * twice with the same seed -> the same numbers */
    dr_unet_config cfg;
    memset(&cfg, 0, sizeof cfg);
    CHECK(dr_unet_config_parse(&cfg, "base=8,mult=1,2,res=1,attn=,groups=2") == DR_OK, "config");
    dr_image gt = pattern(20, 18, 0, 255, 11);
    for (int k = 0; k < dr_mode_count(); k++) { /* every mode of the table */
        const dr_mode mode = (dr_mode)(k + 1);
        const dr_mode_info *mi = dr_mode_get(mode);
        dr_model *model = NULL;
        CHECK(dr_model_new_random(&cfg, mode, 1, &model) == DR_OK, "model");
        if (!model) continue;
        dr_eval_options o;
        dr_eval_options_init(&o);
        o.scale = 2;
        o.seed = 5;
        dr_eval_metrics m[2];
        for (int run = 0; run < 2; run++) {
            dr_eval_case c;
            dr_image out = {0};
            dr_params p;
            dr_params_init(&p);
            p.steps = 2;
            p.seed = 5;
            if ((mi->flags & DR_MODE_TAKES_SCALE)) p.out_width = 20, p.out_height = 18;
            CHECK(dr_eval_degrade(&gt, mode, &o, 3, &c) == DR_OK, "degrade");
            CHECK(dr_restore(model, &c.input, (mi->flags & DR_MODE_TAKES_MASK) ? &c.mask : NULL, &p, &out) == DR_OK,
                  "restore: %s", dr_last_error());
            CHECK(dr_eval_score(&c, &out, &m[run]) == DR_OK, "score: %s", dr_last_error());
            if (mode == DR_MODE_COLORIZE)
                CHECK(m[run].max_luma_diff <= 0.5 + 1e-3, "colorize keeps Y: %g", m[run].max_luma_diff);
            if (mode == DR_MODE_INPAINT) CHECK(m[run].max_known_diff == 0, "inpaint keeps known pixels");
            if (mode == DR_MODE_SUPERRES)
                CHECK(m[run].consistency_psnr > 40, "superres consistent: %g", m[run].consistency_psnr);
            dr_image_free(&out);
            dr_eval_case_free(&c);
        }
        CHECK(memcmp(&m[0], &m[1], sizeof m[0]) == 0 || (m[0].psnr == m[1].psnr && m[0].ssim == m[1].ssim),
              "%s: the same seed gives the same scores", dr_mode_name(mode));
        dr_model_free(model);
    }
    dr_image_free(&gt);
}

int main(void) {
    test_psnr();
    test_ssim();
    test_colour();
    test_hf();
    test_degrade();
    test_mean();
    test_columns();
    test_denoise_degrade();
    test_restore_scores();
    return test_summary("test_eval");
}
