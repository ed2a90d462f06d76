/*
 * test_restore.c - dr_restore's guarantees (MODEL.md, "Modes"), checked on
 * random weights because they must hold whatever the weights are:
 *   colorize: output Y == input Y up to rounding;
 *   inpaint:  known pixels bit-exact (8/16-bit, mask or alpha);
 *   superres: downscale(output) == input to within rounding (PSNR >= 40 dB);
 * plus seeds (bit-identical across runs and thread counts), any image size,
 * tiling (bounded difference from untiled, no seam energy at tile borders),
 * samples/mean/uncertainty, the error paths, and colorize at a working
 * resolution (render_size: output at full size, luma kept, 0 unchanged).
 */
#include "api/model_internal.h"
#include "common/error.h"
#include "diffrestore.h"
#include "imgproc/imgproc.h"
#include "modes/mode.h"
#include "restore/restore.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static dr_model *tiny_model(dr_mode mode, const char *spec) {
    dr_unet_config cfg = {0};
    dr_model *m = NULL;
    CHECK(dr_unet_config_parse(&cfg, spec) == DR_OK, "config");
    int rc = dr_model_new_random(&cfg, mode, 7, &m);
    CHECK(rc == DR_OK, "new model: %s", dr_last_error());
    return m;
}

/* A smooth colourful test image with some texture. */
static void make_image(dr_image *img, int w, int h, int channels, int depth, int seed) {
    CHECK(dr_image_alloc(img, w, h, channels, depth) == DR_OK, "alloc");
    const unsigned maxv = depth == 16 ? 65535 : 255;
    test_rng r = {(uint64_t)seed};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++) {
                double v = 0.5 + 0.35 * sin(0.13 * x * (c + 1) + 0.07 * y + seed) + 0.1 * (test_rng_uniform(&r) - 0.5);
                if (c == 3 || (channels == 2 && c == 1)) v = (x + y) % 5 == 0 ? 0.0 : 1.0; /* alpha */
                img->data[((size_t)y * w + x) * channels + c] = (uint16_t)lround(fmin(fmax(v, 0), 1) * maxv);
            }
}

static double luma(const dr_image *img, size_t i) {
    const uint16_t *p = img->data + i * img->channels;
    if (img->channels <= 2) return p[0];
    return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
}

static dr_params fast_params(void) {
    dr_params p;
    dr_params_init(&p);
    p.steps = 4;
    p.seed = 11;
    return p;
}

static void test_colorize(void) {
    dr_model *m = tiny_model(DR_MODE_COLORIZE, "base=8,mult=1,2,res=1,attn=1,groups=2");
    const int cases[][3] = {{37, 29, 1}, {40, 24, 3}, {33, 17, 4}, {20, 20, 2}};
    for (int depth = 8; depth <= 16; depth += 8)
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            dr_image in, out = {0};
            make_image(&in, cases[k][0], cases[k][1], cases[k][2], depth, (int)k);
            dr_params p = fast_params();
            int rc = dr_restore(m, &in, NULL, &p, &out);
            CHECK(rc == DR_OK, "colorize: %s", dr_last_error());
            if (rc == DR_OK) {
                const int has_alpha = in.channels % 2 == 0;
                CHECK(out.width == in.width && out.height == in.height && out.channels == 3 + has_alpha &&
                          out.depth == depth,
                      "colorize output shape %dx%dx%d", out.width, out.height, out.channels);
                double worst = 0, chroma = 0;
                for (size_t i = 0; i < (size_t)in.width * in.height; i++) {
                    worst = fmax(worst, fabs(luma(&out, i) - luma(&in, i)));
                    chroma += abs((int)out.data[i * out.channels] - (int)out.data[i * out.channels + 2]);
                    if (has_alpha)
                        CHECK(out.data[i * out.channels + 3] == in.data[i * in.channels + in.channels - 1],
                              "alpha kept");
                }
                /* rounding of three channels moves Y by at most half a level */
                CHECK(worst <= 0.5 + 1e-6, "colorize %dx%dx%d/%d: max luma diff %.3f levels", in.width, in.height,
                      in.channels, depth, worst);
                CHECK(chroma > 0, "colorize produced no colour at all");
                if (k == 0 && depth == 8) printf("colorize: max luma diff %.3f levels (8-bit)\n", worst);
            }
            dr_image_free(&in);
            dr_image_free(&out);
        }
    dr_model_free(m);
}

static void test_inpaint(void) {
    dr_model *m = tiny_model(DR_MODE_INPAINT, "base=8,mult=1,2,res=1,attn=,groups=2");
    for (int depth = 8; depth <= 16; depth += 8)
        for (int channels = 1; channels <= 4; channels++) {
            dr_image in, mask, out = {0};
            make_image(&in, 45, 31, channels, depth, channels);
            CHECK(dr_image_alloc(&mask, 45, 31, 1, 8) == DR_OK, "mask");
            for (int y = 0; y < 31; y++)
                for (int x = 0; x < 45; x++)
                    mask.data[y * 45 + x] = (x > 8 && x < 20 && y > 5) || (x + y) % 11 == 0 ? 255 : 0;
            dr_params p = fast_params();
            int rc = dr_restore(m, &in, &mask, &p, &out);
            CHECK(rc == DR_OK, "inpaint: %s", dr_last_error());
            if (rc == DR_OK) {
                CHECK(out.channels == channels && out.depth == depth, "inpaint keeps the layout (%d ch)", out.channels);
                long diff = 0, hole_changed = 0;
                for (size_t i = 0; i < (size_t)45 * 31; i++)
                    for (int c = 0; c < channels; c++) {
                        const int d = out.data[i * channels + c] != in.data[i * channels + c];
                        if (mask.data[i])
                            hole_changed += d;
                        else
                            diff += d;
                    }
                CHECK(diff == 0, "inpaint %d ch/%d-bit: %ld known samples changed", channels, depth, diff);
                CHECK(hole_changed > 0, "inpaint changed nothing in the hole");
                if (channels == 3 && depth == 8) printf("inpaint: known-pixel diff %ld samples\n", diff);
            }
            dr_image_free(&out);
            /* the alpha channel as the mask: transparent = hole */
            if (channels == 2 || channels == 4) {
                rc = dr_restore(m, &in, NULL, &p, &out);
                CHECK(rc == DR_OK, "inpaint via alpha: %s", dr_last_error());
                long diff = 0;
                const unsigned maxv = depth == 16 ? 65535 : 255;
                for (size_t i = 0; rc == DR_OK && i < (size_t)45 * 31; i++) {
                    if (in.data[i * channels + channels - 1] <= maxv / 2) continue;
                    for (int c = 0; c < channels; c++) diff += out.data[i * channels + c] != in.data[i * channels + c];
                }
                CHECK(diff == 0, "inpaint via alpha: %ld known samples changed", diff);
                dr_image_free(&out);
            } else {
                rc = dr_restore(m, &in, NULL, &p, &out);
                CHECK(rc == DR_ERR_INVALID && strstr(dr_last_error(), "mask"), "no mask, no alpha: %s",
                      dr_last_error());
            }
            /* a mask of the wrong size */
            dr_image bad;
            CHECK(dr_image_alloc(&bad, 44, 31, 1, 8) == DR_OK, "alloc");
            rc = dr_restore(m, &in, &bad, &p, &out);
            CHECK(rc == DR_ERR_INVALID && strstr(dr_last_error(), "44x31") && strstr(dr_last_error(), "45x31"),
                  "wrong mask size: %s", dr_last_error());
            dr_image_free(&bad);
            dr_image_free(&in);
            dr_image_free(&mask);
        }
    dr_model_free(m);
}

/* PSNR (8-bit scale) of downscale(out) against in, over colour channels. */
static double consistency_psnr(const dr_image *in, const dr_image *out) {
    const int cc = in->channels <= 2 ? 1 : 3;
    const size_t nin = (size_t)in->width * in->height, nout = (size_t)out->width * out->height;
    float *hr = malloc(sizeof(float) * 3 * nout), *lr = malloc(sizeof(float) * 3 * nin),
          *ref = malloc(sizeof(float) * 3 * nin);
    ip_to_planar(out, hr);
    ip_to_planar(in, ref);
    ip_resize(hr, cc, out->height, out->width, lr, in->height, in->width);
    double se = 0;
    for (size_t i = 0; i < cc * nin; i++) {
        double d = (lr[i] - ref[i]) * 127.5;
        se += d * d;
    }
    free(hr);
    free(lr);
    free(ref);
    double mse = se / (cc * nin);
    return mse > 0 ? 10 * log10(255.0 * 255.0 / mse) : 99.0;
}

static void test_superres(void) {
    dr_model *m = tiny_model(DR_MODE_SUPERRES, "base=8,mult=1,2,res=1,attn=,groups=2");
    const double scales[] = {2, 3, 4, 2.5};
    for (size_t k = 0; k < sizeof scales / sizeof *scales; k++) {
        dr_image in, out = {0};
        make_image(&in, 23, 17, k == 1 ? 1 : 3, 8, (int)k);
        dr_params p = fast_params();
        p.scale = scales[k];
        int rc = dr_restore(m, &in, NULL, &p, &out);
        CHECK(rc == DR_OK, "superres x%g: %s", scales[k], dr_last_error());
        if (rc == DR_OK) {
            CHECK(out.width == (int)lround(23 * scales[k]) && out.height == (int)lround(17 * scales[k]),
                  "superres x%g size %dx%d", scales[k], out.width, out.height);
            double psnr = consistency_psnr(&in, &out);
            printf("superres x%g: consistency PSNR %.2f dB\n", scales[k], psnr);
            CHECK(psnr >= 40.0, "superres x%g: consistency PSNR %.2f dB < 40", scales[k], psnr);
        }
        dr_image_free(&out);
        dr_image_free(&in);
    }
    /* width / height keep the aspect ratio; out of range is an error naming it */
    dr_image in, out = {0};
    make_image(&in, 20, 10, 4, 8, 3);
    dr_params p = fast_params();
    p.out_width = 60;
    int rc = dr_restore(m, &in, NULL, &p, &out);
    CHECK(rc == DR_OK && out.width == 60 && out.height == 30 && out.channels == 4, "superres --width: %s",
          dr_last_error());
    dr_image_free(&out);
    p.out_width = 0;
    p.scale = 6;
    rc = dr_restore(m, &in, NULL, &p, &out);
    CHECK(rc == DR_ERR_INVALID && strstr(dr_last_error(), "2 to 4"), "scale out of range: %s", dr_last_error());
    p.scale = 0;
    rc = dr_restore(m, &in, NULL, &p, &out);
    CHECK(rc == DR_ERR_INVALID, "superres without a size accepted");
    dr_image_free(&in);
    dr_model_free(m);
}

static int images_equal(const dr_image *a, const dr_image *b) {
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
        memcmp(a->data, b->data, sizeof(uint16_t) * a->width * a->height * a->channels) == 0;
}

static void test_seeds(void) {
    dr_model *m = tiny_model(DR_MODE_COLORIZE, "base=8,mult=1,2,res=1,attn=1,groups=2");
    dr_image in, a = {0}, b = {0}, c = {0}, d = {0};
    make_image(&in, 40, 32, 3, 8, 5);
    dr_params p = fast_params();
    p.sampler = DR_SAMPLER_DDPM; /* stochastic at every step */
    p.tile = 16;                 /* several tiles */
    p.tile_overlap = 8;
    dr_set_threads(2);
    CHECK(dr_restore(m, &in, NULL, &p, &a) == DR_OK, "restore");
    CHECK(dr_restore(m, &in, NULL, &p, &b) == DR_OK, "restore");
    dr_set_threads(1);
    CHECK(dr_restore(m, &in, NULL, &p, &c) == DR_OK, "restore");
    dr_set_threads(2);
    p.seed++;
    CHECK(dr_restore(m, &in, NULL, &p, &d) == DR_OK, "restore");
    CHECK(images_equal(&a, &b), "same seed, two runs: outputs differ");
    CHECK(images_equal(&a, &c), "same seed, 1 vs 2 threads: outputs differ");
    CHECK(!images_equal(&a, &d), "different seeds gave the same output");
    dr_image_free(&a);
    dr_image_free(&b);
    dr_image_free(&c);
    dr_image_free(&d);
    dr_image_free(&in);
    dr_model_free(m);
}

/* The table of modes: every entry consistent with the names, the channels a
 * model of that mode gets and the flags its restore honours; nothing outside
 * 1 .. dr_mode_count(). */
static void test_mode_table(void) {
    CHECK(dr_mode_get(DR_MODE_NONE) == NULL && dr_mode_get((dr_mode)(dr_mode_count() + 1)) == NULL,
          "modes outside 1..%d have no entry", dr_mode_count());
    CHECK(dr_mode_from_name("none") == DR_MODE_NONE && dr_mode_from_name(NULL) == DR_MODE_NONE, "unknown names");
    for (int k = 1; k <= dr_mode_count(); k++) {
        const dr_mode_info *mi = dr_mode_get((dr_mode)k);
        CHECK(mi && mi->mode == (dr_mode)k, "mode %d: entry", k);
        if (!mi) continue;
        CHECK(dr_mode_from_name(mi->name) == mi->mode && !strcmp(dr_mode_name(mi->mode), mi->name), "%s: name",
              mi->name);
        CHECK(mi->summary && mi->summary[0] && mi->options_help && mi->baseline && mi->baseline[0], "%s: texts",
              mi->name);
        CHECK(mi->out_channels >= 1 && mi->in_channels > mi->out_channels, "%s: %d/%d channels", mi->name,
              mi->in_channels, mi->out_channels);
        dr_model *m = tiny_model(mi->mode, "base=8,mult=1,2,res=1,attn=,groups=2");
        const dr_unet_config *c = dr_model_config(m);
        CHECK(c->in_channels == mi->in_channels && c->out_channels == mi->out_channels, "%s: the model's channels",
              mi->name);
        /* a working resolution only where the table says so */
        dr_params p;
        dr_params_init_mode(&p, mi->mode);
        p.steps = 1;
        p.scale = 2;
        p.render_size = DR_RENDER_SIZE_MIN;
        dr_image in, out = {0};
        make_image(&in, 16, 12, 4, 8, 5);
        const int rc = dr_restore(m, &in, NULL, &p, &out);
        CHECK((rc == DR_OK) == !!(mi->flags & DR_MODE_TAKES_RENDER_SIZE), "%s: render_size %s", mi->name,
              rc == DR_OK ? "accepted" : dr_last_error());
        /* the output: the input's size unless the mode takes a scale; colour where the table says */
        dr_image_free(&out);
        p.render_size = DR_RENDER_SIZE_AUTO;
        dr_image gray;
        make_image(&gray, 16, 12, 1, 8, 6);
        dr_image *src = (mi->flags & DR_MODE_TAKES_MASK) ? &in : &gray;
        CHECK(dr_restore(m, src, NULL, &p, &out) == DR_OK, "%s: %s", mi->name, dr_last_error());
        const int scaled = !!(mi->flags & DR_MODE_TAKES_SCALE);
        CHECK(out.width == (scaled ? 32 : 16) && out.height == (scaled ? 24 : 12), "%s: %dx%d out", mi->name, out.width,
              out.height);
        if (src == &gray)
            CHECK(out.channels == ((mi->flags & DR_MODE_COLOR_OUT) ? 3 : 1), "%s: %d channels from gray", mi->name,
                  out.channels);
        dr_image_free(&out);
        dr_image_free(&gray);
        dr_image_free(&in);
        dr_model_free(m);
    }
}

/* The per-mode presets (docs/TUNING.md, "Presets"): each differs from
 * dr_params_init only in sampler, steps and eta; the default preset is
 * dr_params_init_mode; fast <= default <= best in network evaluations; best is
 * the 20-step DDIM reference; colorize never injects noise; bad modes and
 * presets are refused; and each mode restores with each preset. */
static void test_mode_defaults(void) {
    dr_params base;
    dr_params_init(&base);
    CHECK(base.sampler == DR_SAMPLER_DDIM && base.steps == 20 && base.eta == 1.0 && base.spacing == DR_SPACING_TRAILING,
          "dr_params_init: %s %d eta %g", dr_sampler_name(base.sampler), base.steps, base.eta);
    CHECK(base.render_size == DR_RENDER_SIZE_AUTO, "dr_params_init: render_size %d, want AUTO", base.render_size);
    dr_mode modes[8];
    const int n_modes = dr_mode_count();
    CHECK(n_modes >= 4 && n_modes <= 8, "%d modes", n_modes);
    for (int k = 0; k < n_modes && k < 8; k++) modes[k] = (dr_mode)(k + 1);
    const dr_quality qs[] = {DR_QUALITY_FAST, DR_QUALITY_DEFAULT, DR_QUALITY_BEST};
    for (int k = 0; k < n_modes && k < 8; k++) {
        dr_params p, d;
        dr_params_init_mode(&d, modes[k]);
        CHECK(dr_params_init_quality(&p, modes[k], DR_QUALITY_DEFAULT) == DR_OK && memcmp(&p, &d, sizeof p) == 0,
              "%s: dr_params_init_mode is not the default preset", dr_mode_name(modes[k]));
        int last_steps = 0;
        for (int q = 0; q < 3; q++) {
            CHECK(dr_params_init_quality(&p, modes[k], qs[q]) == DR_OK, "%s %s: %s", dr_mode_name(modes[k]),
                  dr_quality_name(qs[q]), dr_last_error());
            const char *what = dr_quality_name(qs[q]);
            CHECK(p.steps >= 1 && p.steps <= 20 && p.steps >= last_steps, "%s %s: %d steps (previous preset %d)",
                  dr_mode_name(modes[k]), what, p.steps, last_steps);
            last_steps = p.steps;
            CHECK(p.eta >= 0 && p.eta <= 1, "%s %s: eta %g", dr_mode_name(modes[k]), what, p.eta);
            if (modes[k] == DR_MODE_COLORIZE)
                CHECK(p.eta == 0, "colorize %s: eta %g, want 0 (eta 1 washes colour out)", what, p.eta);
            if (qs[q] == DR_QUALITY_BEST)
                CHECK(p.sampler == DR_SAMPLER_DDIM && p.steps == 20, "%s best: %s %d, want ddim 20",
                      dr_mode_name(modes[k]), dr_sampler_name(p.sampler), p.steps);
            dr_params r = p;
            r.sampler = base.sampler;
            r.steps = base.steps;
            r.eta = base.eta;
            CHECK(memcmp(&r, &base, sizeof r) == 0,
                  "%s %s: more than sampler, steps and eta differ from dr_params_init", dr_mode_name(modes[k]), what);
            p.scale = 2;
            dr_model *m = tiny_model(modes[k], "base=8,mult=1,2,res=1,attn=1,groups=2");
            dr_image in, out = {0};
            make_image(&in, 24, 20, 4, 8, 3); /* RGBA: inpaint takes the holes from the alpha */
            CHECK(dr_restore(m, &in, NULL, &p, &out) == DR_OK, "%s with preset %s: %s", dr_mode_name(modes[k]), what,
                  dr_last_error());
            dr_image_free(&out);
            dr_image_free(&in);
            dr_model_free(m);
        }
    }
    /* names round-trip; bad names, presets and modes are refused, p stays at dr_params_init */
    for (int q = 0; q < 3; q++) {
        dr_quality back;
        CHECK(dr_quality_from_name(dr_quality_name(qs[q]), &back) == DR_OK && back == qs[q], "preset name %d", q);
    }
    dr_quality back;
    CHECK(dr_quality_from_name("turbo", &back) == DR_ERR_INVALID && strstr(dr_last_error(), "fast"),
          "unknown preset name: '%s'", dr_last_error());
    CHECK(dr_quality_from_name(NULL, &back) == DR_ERR_INVALID, "NULL preset name");
    dr_params p;
    CHECK(dr_params_init_quality(&p, DR_MODE_NONE, DR_QUALITY_FAST) == DR_ERR_INVALID &&
              memcmp(&p, &base, sizeof p) == 0,
          "mode NONE: refused, p at dr_params_init");
    CHECK(dr_params_init_quality(&p, DR_MODE_SUPERRES, (dr_quality)3) == DR_ERR_INVALID &&
              memcmp(&p, &base, sizeof p) == 0,
          "preset 3: refused, p at dr_params_init");
    error_clear();
    dr_params_init_mode(&p, DR_MODE_NONE);
    CHECK(memcmp(&p, &base, sizeof p) == 0 && dr_last_error()[0] == 0,
          "dr_params_init_mode(NONE): dr_params_init, no error");
}

/* Mean |d/dx| + |d/dy| of channel 0 over pixel pairs straddling a column set
 * vs all other pairs. */
static void seam_energy(const dr_image *img, const int *cols, int ncols, double *at, double *elsewhere) {
    double s_at = 0, s_el = 0;
    long n_at = 0, n_el = 0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x + 1 < img->width; x++) {
            double g = fabs((double)img->data[((size_t)y * img->width + x + 1) * img->channels] -
                            img->data[((size_t)y * img->width + x) * img->channels]);
            int on = 0;
            for (int k = 0; k < ncols; k++) on |= x + 1 == cols[k];
            if (on)
                s_at += g, n_at++;
            else
                s_el += g, n_el++;
        }
    *at = s_at / (n_at ? n_at : 1);
    *elsewhere = s_el / (n_el ? n_el : 1);
}

static void test_tiling(void) {
    dr_model *m = tiny_model(DR_MODE_SUPERRES, "base=8,mult=1,2,res=1,attn=,groups=2");
    dr_image in, whole = {0}, tiled = {0};
    make_image(&in, 48, 24, 3, 8, 9);
    dr_params p = fast_params();
    p.scale = 2; /* canvas 96 x 48 */
    p.tile = 512;
    CHECK(dr_restore(m, &in, NULL, &p, &whole) == DR_OK, "untiled: %s", dr_last_error());
    p.tile = 32;
    p.tile_overlap = 16;
    CHECK(dr_restore(m, &in, NULL, &p, &tiled) == DR_OK, "tiled: %s", dr_last_error());
    if (whole.data && tiled.data) {
        double mad = 0;
        size_t n = (size_t)whole.width * whole.height * 3;
        for (size_t i = 0; i < n; i++) mad += abs((int)whole.data[i] - (int)tiled.data[i]);
        mad /= n;
        printf("tiling: mean |tiled - untiled| = %.3f levels\n", mad);
        CHECK(mad < 8.0, "tiled output differs from untiled by %.2f levels on average", mad);
        /* tile borders of a 96-wide canvas with 32-pixel tiles, 16 overlap:
         * origins 0, 16?, ... whatever they are, seams would sit at multiples
         * of 8 here; compare gradient energy on those columns with the rest */
        int cols[16], nc = 0;
        for (int x = 8; x < whole.width; x += 8) cols[nc++] = x;
        double at, el;
        seam_energy(&tiled, cols, nc, &at, &el);
        printf("tiling: gradient energy at possible tile borders %.2f, elsewhere %.2f\n", at, el);
        CHECK(at <= 1.25 * el + 0.5, "seams: gradient energy at tile borders %.2f vs %.2f elsewhere", at, el);
        double ca = consistency_psnr(&in, &tiled);
        CHECK(ca >= 40.0, "tiled superres consistency %.2f dB", ca);
    }
    dr_image_free(&whole);
    dr_image_free(&tiled);
    dr_image_free(&in);
    dr_model_free(m);
}

static void test_samples(void) {
    dr_model *m = tiny_model(DR_MODE_INPAINT, "base=8,mult=1,2,res=1,attn=,groups=2");
    dr_image in, mask, outs[3] = {{0}}, mean = {0}, unc = {0};
    make_image(&in, 24, 24, 3, 8, 2);
    CHECK(dr_image_alloc(&mask, 24, 24, 1, 8) == DR_OK, "mask");
    for (int i = 0; i < 24 * 24; i++) mask.data[i] = (i % 24) > 12 ? 255 : 0;
    dr_params p = fast_params();
    int rc = dr_restore_samples(m, &in, &mask, &p, 3, outs, &mean, &unc);
    CHECK(rc == DR_OK, "samples: %s", dr_last_error());
    if (rc == DR_OK) {
        CHECK(!images_equal(&outs[0], &outs[1]), "samples 1 and 2 are identical");
        CHECK(mean.width == 24 && unc.width == 24 && unc.channels == 3 && unc.depth == 8, "mean / uncertainty shape");
        long known_diff = 0, hot_hole = 0, hot_known = 0;
        for (int i = 0; i < 24 * 24; i++) {
            for (int c = 0; c < 3; c++) known_diff += !mask.data[i] && mean.data[i * 3 + c] != in.data[i * 3 + c];
            if (mask.data[i])
                hot_hole += unc.data[i * 3];
            else
                hot_known += unc.data[i * 3];
        }
        CHECK(known_diff == 0, "mean changed %ld known samples", known_diff);
        CHECK(hot_known == 0 && hot_hole > 0, "uncertainty: known %ld (want 0), hole %ld (want > 0)", hot_known,
              hot_hole);
        /* sample k of the call is the same as a single call with seed + k */
        dr_image single = {0};
        p.seed += 1;
        CHECK(dr_restore(m, &in, &mask, &p, &single) == DR_OK && images_equal(&single, &outs[1]),
              "sample 2 of a call differs from a call with seed + 1");
        dr_image_free(&single);
    }
    for (int k = 0; k < 3; k++) dr_image_free(&outs[k]);
    dr_image_free(&mean);
    dr_image_free(&unc);
    dr_image_free(&in);
    dr_image_free(&mask);
    dr_model_free(m);
}

static int cancel_at_step(int step, int steps, void *user) {
    (void)steps;
    int *flag = user;
    (void)step;
    return *flag;
}
static void progress_cb(int step, int steps, void *user) {
    int *calls = user;
    calls[0]++;
    calls[1] = step;
    calls[2] = steps;
}

static volatile int g_cancel;
static void cancel_cb(int step, int steps, void *user) {
    (void)steps;
    (void)user;
    if (step >= 2) g_cancel = 1;
}

static void test_progress_cancel(void) {
    (void)cancel_at_step;
    dr_model *m = tiny_model(DR_MODE_COLORIZE, "base=8,mult=1,2,res=1,attn=,groups=2");
    dr_image in, out = {0};
    make_image(&in, 16, 16, 1, 8, 1);
    dr_params p = fast_params();
    int calls[3] = {0};
    p.progress = progress_cb;
    p.user = calls;
    CHECK(dr_restore(m, &in, NULL, &p, &out) == DR_OK, "restore");
    CHECK(calls[0] == 4 && calls[1] == 4 && calls[2] == 4, "progress: %d calls, last %d/%d", calls[0], calls[1],
          calls[2]);
    dr_image_free(&out);
    p.progress = cancel_cb;
    p.cancel = &g_cancel;
    int rc = dr_restore(m, &in, NULL, &p, &out);
    CHECK(rc == DR_ERR_CANCELLED && out.data == NULL, "cancel: rc %d", rc);
    dr_image_free(&in);
    dr_model_free(m);
}

/* Tile progress within a step, and a cancel raised between two tiles of one
 * step stops the call there (a large photo's step can take minutes). */
typedef struct {
    int tile_calls, last_tile, last_tiles, steps_seen, cancel_at_tile;
    volatile int cancel;
} tile_watch;
static void tile_cb(int tile, int tiles, void *user) {
    tile_watch *w = user;
    w->tile_calls++;
    CHECK(tile >= 1 && tile <= tiles && (w->tile_calls == 1 || tile > w->last_tile || tile <= 4),
          "tile progress %d of %d after %d", tile, tiles, w->last_tile);
    w->last_tile = tile;
    w->last_tiles = tiles;
    if (w->cancel_at_tile && w->tile_calls == w->cancel_at_tile) w->cancel = 1;
}
static void step_cb(int step, int steps, void *user) {
    tile_watch *w = user;
    w->steps_seen = step;
}

static void test_tile_progress_cancel(void) {
    dr_model *m = tiny_model(DR_MODE_COLORIZE, "base=8,mult=1,2,res=1,attn=,groups=2");
    dr_image in, out = {0};
    make_image(&in, 100, 70, 1, 8, 3);
    dr_params p = fast_params();
    p.tile = 48; /* 100x70 in 48-pixel tiles with 16 of overlap: 3 x 2 tiles */
    p.tile_overlap = 16;
    tile_watch w = {0};
    p.progress = step_cb;
    p.progress_tile = tile_cb;
    p.user = &w;
    CHECK(dr_restore(m, &in, NULL, &p, &out) == DR_OK, "tiled restore: %s", dr_last_error());
    CHECK(w.last_tiles >= 4 && w.last_tile == w.last_tiles && w.steps_seen == 4, "tiles %d/%d, steps %d", w.last_tile,
          w.last_tiles, w.steps_seen);
    const int per_step = w.tile_calls / 4;
    CHECK(per_step >= 1 && w.tile_calls == 4 * per_step, "%d tile calls over 4 steps", w.tile_calls);
    dr_image_free(&out);
    /* cancel after the first batch of tiles of step 1, only when there is a second batch */
    if (per_step > 1) {
        tile_watch c = {0};
        c.cancel_at_tile = 1;
        p.user = &c;
        p.cancel = &c.cancel;
        int rc = dr_restore(m, &in, NULL, &p, &out);
        CHECK(rc == DR_ERR_CANCELLED && out.data == NULL && c.tile_calls == 1 && c.steps_seen == 0,
              "cancel between tiles: rc %d, %d tile calls, %d steps", rc, c.tile_calls, c.steps_seen);
    } else {
        CHECK(0, "the tiles ran in one batch: this test needs several (%d tiles)", w.last_tiles);
    }
    dr_image_free(&in);
    dr_model_free(m);
}

/* A large input: peak memory follows the tile, not the image. */
static void test_large(void) {
    dr_model *m = tiny_model(DR_MODE_COLORIZE, "base=8,mult=1,2,res=1,attn=,groups=2");
    dr_image in, out = {0};
    make_image(&in, 1536, 1024, 1, 8, 4);
    dr_params p = fast_params();
    p.steps = 1;
    p.tile = 128;
    int rc = dr_restore(m, &in, NULL, &p, &out);
    CHECK(rc == DR_OK, "large: %s", dr_last_error());
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double mb = ru.ru_maxrss / 1024.0;
    printf("colorize 1536x1024 (tile 128): peak RSS %.0f MB\n", mb);
    /* canvas buffers are ~6 x 2 x 1.5M floats = 75 MB; U-Net tiles are small */
    CHECK(mb < 400, "peak RSS %.0f MB for a 1.5 MP image", mb);
    dr_image_free(&out);
    dr_image_free(&in);
    dr_model_free(m);
}

static int same_image(const dr_image *a, const dr_image *b) {
    return a->width == b->width && a->height == b->height && a->channels == b->channels && a->depth == b->depth &&
        memcmp(a->data, b->data, sizeof(uint16_t) * a->width * a->height * a->channels) == 0;
}

/* Colorize at a working resolution: the network runs on the luma downscaled to
 * a long side of R, the chroma comes back guided by the full-size luma. The
 * output has the input's size and luma; R = 0, AUTO without metadata and R >=
 * the long side are all today's full-resolution output, bit for bit. (That
 * output was also checked equal, bit for bit, to the library before
 * render_size existed, on this test's inputs: see docs/TUNING.md.) */
static void test_render_size(void) {
    dr_model *m = tiny_model(DR_MODE_COLORIZE, "base=8,mult=1,2,res=1,attn=1,groups=2");
    static const int cases[][4] = {{150, 90, 3, 8}, {61, 100, 2, 16}}; /* w, h, channels, depth */
    for (int k = 0; k < 2; k++) {
        dr_image in, full = {0}, autod = {0}, big = {0}, lo = {0};
        make_image(&in, cases[k][0], cases[k][1], cases[k][2], cases[k][3], 40 + k);
        const int lng = in.width > in.height ? in.width : in.height;
        dr_params p = fast_params();
        p.tile = 64; /* the full-resolution runs are tiled */
        p.render_size = 0;
        CHECK(dr_restore(m, &in, NULL, &p, &full) == DR_OK, "render 0: %s", dr_last_error());
        p.render_size = DR_RENDER_SIZE_AUTO;
        CHECK(dr_restore(m, &in, NULL, &p, &autod) == DR_OK, "render auto: %s", dr_last_error());
        p.render_size = lng;
        CHECK(dr_restore(m, &in, NULL, &p, &big) == DR_OK, "render %d: %s", lng, dr_last_error());
        CHECK(same_image(&full, &autod), "case %d: AUTO (no metadata) differs from render size 0", k);
        CHECK(same_image(&full, &big), "case %d: render size = the long side differs from full resolution", k);
        p.render_size = 48;
        int rc = dr_restore(m, &in, NULL, &p, &lo);
        CHECK(rc == DR_OK, "render 48: %s", dr_last_error());
        if (rc == DR_OK) {
            const int has_alpha = in.channels % 2 == 0;
            CHECK(lo.width == in.width && lo.height == in.height && lo.channels == 3 + has_alpha &&
                      lo.depth == in.depth,
                  "case %d: output %dx%dx%d/%d", k, lo.width, lo.height, lo.channels, lo.depth);
            double worst = 0;
            int alpha_ok = 1;
            for (size_t i = 0; i < (size_t)in.width * in.height; i++) {
                worst = fmax(worst, fabs(luma(&lo, i) - luma(&in, i)));
                if (has_alpha) alpha_ok &= lo.data[i * lo.channels + 3] == in.data[i * in.channels + in.channels - 1];
            }
            printf("colorize render 48, %dx%d %d-bit: max luma diff %.3f levels\n", in.width, in.height, in.depth,
                   worst);
            CHECK(worst <= 0.5 + 1e-6, "case %d: render 48 moved the luma by %.3f levels", k, worst);
            CHECK(alpha_ok, "case %d: alpha not kept", k);
            CHECK(!same_image(&lo, &full), "case %d: render 48 gave the full-resolution output", k);
        }
        dr_image_free(&lo);
        /* several samples, their mean and spread: all at the input's size */
        dr_image outs[2] = {{0}}, mean = {0}, unc = {0};
        rc = dr_restore_samples(m, &in, NULL, &p, 2, outs, &mean, &unc);
        CHECK(rc == DR_OK, "samples at render 48: %s", dr_last_error());
        if (rc == DR_OK)
            CHECK(outs[1].width == in.width && outs[1].height == in.height && mean.width == in.width &&
                      mean.height == in.height && unc.width == in.width && unc.height == in.height,
                  "case %d: samples, mean, uncertainty at the input's size", k);
        if (rc == DR_OK) { /* the mean keeps the luma as a sample does, and is near the samples' average */
            double worst = 0, to_avg = 0, between = 0;
            const int cc = mean.channels >= 3 ? 3 : 1;
            for (size_t i = 0; i < (size_t)in.width * in.height; i++) {
                worst = fmax(worst, fabs(luma(&mean, i) - luma(&in, i)));
                for (int ch = 0; ch < cc; ch++) {
                    const double a = outs[0].data[i * outs[0].channels + ch],
                                 b = outs[1].data[i * outs[1].channels + ch];
                    to_avg += fabs(mean.data[i * mean.channels + ch] - 0.5 * (a + b));
                    between += fabs(a - b);
                }
            }
            printf("colorize mean of 2, %dx%d %d-bit: max luma diff %.3f levels; |mean - average| %.3g, "
                   "|sample 0 - sample 1| %.3g (sums)\n",
                   in.width, in.height, in.depth, worst, to_avg, between);
            CHECK(worst <= 0.5 + 1e-6, "case %d: the mean moved the luma by %.3f levels", k, worst);
            /* equal up to the gamut clipping of each sample (random weights clip a lot) */
            CHECK(between > 0 && to_avg < 0.25 * between, "case %d: the mean is far from the samples' average", k);
            CHECK(!same_image(&mean, &outs[0]) && !same_image(&mean, &outs[1]), "case %d: the mean is a sample", k);
        }
        dr_image_free(&outs[0]);
        dr_image_free(&outs[1]);
        dr_image_free(&mean);
        dr_image_free(&unc);
        dr_image_free(&full);
        dr_image_free(&autod);
        dr_image_free(&big);
        dr_image_free(&in);
    }

    /* the weights' render_size is what AUTO uses */
    char path[1200];
    snprintf(path, sizeof path, "%s/render.safetensors", test_tmpdir());
    CHECK(dr_model_save(m, path, 0) == DR_OK, "save: %s", dr_last_error());
    dr_tensor_file tf;
    CHECK(dr_tensor_file_read(path, &tf) == DR_OK, "read: %s", dr_last_error());
    CHECK(dr_tensor_file_meta(&tf, "render_size") == NULL, "a model without render_size writes none");
    dr_tensor_file_set_meta(&tf, "render_size", "48");
    CHECK(dr_tensor_file_write(path, &tf, 0) == DR_OK, "write: %s", dr_last_error());
    dr_model *m48 = NULL;
    CHECK(dr_model_load(path, &m48) == DR_OK, "load with render_size: %s", dr_last_error());
    if (m48) {
        const char *v = dr_model_meta(m48, "render_size");
        CHECK(v && !strcmp(v, "48"), "render_size metadata kept");
        dr_image in, a = {0}, b = {0};
        make_image(&in, 90, 70, 1, 8, 5);
        dr_params p = fast_params();
        CHECK(dr_restore(m48, &in, NULL, &p, &a) == DR_OK, "auto: %s", dr_last_error());
        p.render_size = 48;
        CHECK(dr_restore(m48, &in, NULL, &p, &b) == DR_OK, "48: %s", dr_last_error());
        CHECK(a.data && b.data && same_image(&a, &b), "AUTO does not follow the weights' render_size");
        dr_image_free(&b);
        p.render_size = 0;
        CHECK(dr_restore(m48, &in, NULL, &p, &b) == DR_OK, "0: %s", dr_last_error());
        CHECK(a.data && b.data && !same_image(&a, &b), "render 0 does not override the weights' render_size");
        dr_image_free(&a);
        dr_image_free(&b);
        dr_image_free(&in);
        /* saved again, the key survives */
        CHECK(dr_model_save(m48, path, 0) == DR_OK, "save again: %s", dr_last_error());
        dr_model_free(m48);
        m48 = NULL;
        CHECK(dr_model_load(path, &m48) == DR_OK && m48 && dr_model_meta(m48, "render_size") &&
                  !strcmp(dr_model_meta(m48, "render_size"), "48"),
              "render_size survives a save");
        dr_model_free(m48);
    }
    static const char *bad[] = {"abc", "-5", "8", "99999999"};
    for (int i = 0; i < 4; i++) {
        dr_tensor_file_set_meta(&tf, "render_size", bad[i]);
        dr_tensor_file_write(path, &tf, 0);
        dr_model *mb = NULL;
        const int rc = dr_model_load(path, &mb);
        CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "render_size"), "render_size '%s' accepted (%s)", bad[i],
              dr_last_error());
        dr_model_free(mb);
    }
    dr_tensor_file_free(&tf);

    /* errors */
    dr_image in, out = {0};
    make_image(&in, 40, 30, 3, 8, 6);
    dr_params p = fast_params();
    p.render_size = 8;
    CHECK(dr_restore(m, &in, NULL, &p, &out) == DR_ERR_INVALID, "render size 8 accepted");
    p.render_size = -2;
    CHECK(dr_restore(m, &in, NULL, &p, &out) == DR_ERR_INVALID, "render size -2 accepted");
    dr_model *sr = tiny_model(DR_MODE_SUPERRES, "base=8,mult=1,2,res=1,attn=1,groups=2");
    p.render_size = 64;
    p.scale = 2;
    CHECK(dr_restore(sr, &in, NULL, &p, &out) == DR_ERR_INVALID && strstr(dr_last_error(), "colorize"),
          "render size on superres accepted");
    p.render_size = DR_RENDER_SIZE_AUTO;
    CHECK(dr_restore(sr, &in, NULL, &p, &out) == DR_OK, "superres with AUTO: %s", dr_last_error());
    dr_image_free(&out);
    dr_model_free(sr);
    dr_image_free(&in);
    dr_model_free(m);
}

/* Weights holding NaN or Inf are refused at load, naming the file and the
 * tensor (issue 20: they restored to black, silently), in F32 and F16. */
static void test_nonfinite_weights(void) {
    dr_model *m = tiny_model(DR_MODE_COLORIZE, "base=8,mult=1,2,res=1,attn=1,groups=2");
    if (!m) return;
    char path[1200];
    snprintf(path, sizeof path, "%s/nan.safetensors", test_tmpdir());
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int f16 = 0; f16 <= 1; f16++)
        for (int k = 0; k < 3; k++) {
            CHECK(dr_model_save(m, path, f16) == DR_OK, "save: %s", dr_last_error());
            dr_tensor_file tf;
            if (dr_tensor_file_read(path, &tf) != DR_OK) {
                CHECK(0, "read: %s", dr_last_error());
                continue;
            }
            dr_tensor *t = &tf.tensors[tf.n_tensors / 2];
            t->data[t->numel / 3] = bad[k];
            char name[256];
            snprintf(name, sizeof name, "%s", t->name);
            CHECK(dr_tensor_file_write(path, &tf, f16) == DR_OK, "write: %s", dr_last_error());
            dr_tensor_file_free(&tf);
            dr_model *m2 = NULL;
            const int rc = dr_model_load(path, &m2);
            CHECK(rc != DR_OK && m2 == NULL, "weights with %g (f16 %d) loaded", (double)bad[k], f16);
            CHECK(strstr(dr_last_error(), "nan.safetensors") && strstr(dr_last_error(), name) &&
                      strstr(dr_last_error(), "non-finite"),
                  "message names the file and tensor: %s", dr_last_error());
            dr_model_free(m2);
        }
    dr_model *m3 = NULL;
    CHECK(dr_model_save(m, path, 1) == DR_OK && dr_model_load(path, &m3) == DR_OK, "finite weights load: %s",
          dr_last_error());
    dr_model_free(m3);
    m3 = NULL;
    /* finite weights whose forward overflows: the restore fails, no output */
    dr_tensor_file tf;
    if (dr_model_save(m, path, 0) == DR_OK && dr_tensor_file_read(path, &tf) == DR_OK) {
        for (int i = 0; i < tf.n_tensors; i++)
            if (strcmp(tf.tensors[i].name, "out_conv.weight") == 0)
                for (int64_t k = 0; k < tf.tensors[i].numel; k++) tf.tensors[i].data[k] = 3e38f;
        CHECK(dr_tensor_file_write(path, &tf, 0) == DR_OK, "write: %s", dr_last_error());
        dr_tensor_file_free(&tf);
        CHECK(dr_model_load(path, &m3) == DR_OK, "huge finite weights load: %s", dr_last_error());
        if (m3) {
            dr_image in, out = {0};
            make_image(&in, 24, 20, 1, 8, 3);
            dr_params p;
            dr_params_init_mode(&p, DR_MODE_COLORIZE);
            p.steps = 2;
            const int rc = dr_restore(m3, &in, NULL, &p, &out);
            CHECK(rc == DR_ERR_NUMERIC && out.data == NULL, "overflowing model: rc %d (%s)", rc, dr_last_error());
            dr_image_free(&in);
            dr_image_free(&out);
            dr_model_free(m3);
        }
    }
    dr_model_free(m);
}

/* Inpaint runs the network only on tiles that hold a hole pixel; the output
 * must be bit-identical to running every tile (restore_all_tiles), for holes
 * in some tiles only, one hole pixel, and every tile, at 1 and 2 threads,
 * with DDIM eta 1 (noise) and the DPM++ sampler. */
static void test_inpaint_hole_tiles(void) {
    dr_model *m = tiny_model(DR_MODE_INPAINT, "base=8,mult=1,2,res=1,attn=1,groups=2");
    if (!m) return;
    dr_image in, mask;
    make_image(&in, 100, 76, 3, 8, 21);
    CHECK(dr_image_alloc(&mask, 100, 76, 1, 8) == DR_OK, "mask");
    for (int c = 0; c < 3; c++) {
        memset(mask.data, 0, sizeof(uint16_t) * 100 * 76);
        if (c == 0) /* a scratch in the top-left corner and a blot bottom right */
            for (int y = 0; y < 76; y++)
                for (int x = 0; x < 100; x++)
                    mask.data[y * 100 + x] = ((x - y > 2 && x - y < 5 && x < 30) || (x > 80 && y > 60)) ? 255 : 0;
        else if (c == 1)
            mask.data[40 * 100 + 50] = 255; /* one pixel */
        else
            for (int i = 0; i < 100 * 76; i += 7) mask.data[i] = 255; /* holes in every tile */
        for (int threads = 1; threads <= 2; threads++)
            for (int sampler = 0; sampler < 2; sampler++) {
                dr_set_threads(threads);
                dr_params p = fast_params();
                p.tile = 32;
                p.tile_overlap = 8;
                p.steps = 3;
                if (sampler)
                    p.sampler = DR_SAMPLER_DPMPP_2M;
                else
                    p.eta = 1.0;
                dr_image skip = {0}, all = {0};
                restore_all_tiles = 0;
                CHECK(dr_restore(m, &in, &mask, &p, &skip) == DR_OK, "hole tiles: %s", dr_last_error());
                restore_all_tiles = 1;
                CHECK(dr_restore(m, &in, &mask, &p, &all) == DR_OK, "all tiles: %s", dr_last_error());
                restore_all_tiles = 0;
                const size_t n = (size_t)100 * 76 * 3;
                CHECK(skip.data && all.data && memcmp(skip.data, all.data, n * sizeof(uint16_t)) == 0,
                      "mask %d, %d threads, sampler %d: skipping the tiles without holes changed the output", c,
                      threads, sampler);
                dr_image_free(&skip);
                dr_image_free(&all);
            }
    }
    dr_set_threads(2);
    dr_image_free(&in);
    dr_image_free(&mask);
    dr_model_free(m);
}

/* Classifier-free guidance (dr_params.guidance): off at 0 and 1 (bit for bit
 * the plain restore), refused without cond_dropout in the weights or out of
 * range; the unconditional run is the same network on the same x_t with the
 * conditioning zeroed, so a network blind to its conditioning is unchanged by
 * any weight; and a network that sees it is changed, the more the higher the
 * weight. */
static double mean_abs_diff(const dr_image *a, const dr_image *b) {
    const size_t n = (size_t)a->width * a->height * a->channels;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)a->data[i] - b->data[i]);
    return s / (double)n;
}

static void test_guidance(void) {
    const dr_mode modes[3] = {DR_MODE_COLORIZE, DR_MODE_INPAINT, DR_MODE_SUPERRES};
    for (int mi = 0; mi < 3; mi++) {
        dr_model *m = tiny_model(modes[mi], "base=8,mult=1,2,res=1,attn=1,groups=2");
        if (!m) continue;
        const char *name = dr_mode_name(modes[mi]);
        dr_image in, mask = {0}, off = {0}, one = {0}, g2 = {0}, g4 = {0};
        make_image(&in, 40, 36, 3, 8, 5);
        const dr_image *mk = NULL;
        if (modes[mi] == DR_MODE_INPAINT) {
            CHECK(dr_image_alloc(&mask, 40, 36, 1, 8) == DR_OK, "mask");
            for (int y = 0; y < 36; y++)
                for (int x = 0; x < 40; x++) mask.data[y * 40 + x] = (x > 10 && x < 30 && y > 8 && y < 26) ? 255 : 0;
            mk = &mask;
        }
        dr_params p = fast_params();
        CHECK(p.guidance == DR_GUIDANCE_AUTO, "dr_params_init's guidance %g, want AUTO", p.guidance);
        if (modes[mi] == DR_MODE_SUPERRES) p.scale = 2;
        /* weights without cond_dropout: refused, nothing written */
        p.guidance = 2;
        int rc = dr_restore(m, &in, mk, &p, &g2);
        CHECK(rc == DR_ERR_INVALID && strstr(dr_last_error(), "cond_dropout") && g2.data == NULL,
              "%s: guidance without cond_dropout: rc %d (%s)", name, rc, dr_last_error());
        m->info.cond_dropout = 0.1f;
        p.guidance = 20.5;
        CHECK(dr_restore(m, &in, mk, &p, &g2) == DR_ERR_INVALID && g2.data == NULL, "%s: guidance 20.5 accepted", name);
        p.guidance = -2;
        CHECK(dr_restore(m, &in, mk, &p, &g2) == DR_ERR_INVALID && g2.data == NULL, "%s: guidance -2 accepted", name);
        p.guidance = 0;
        CHECK(dr_restore(m, &in, mk, &p, &off) == DR_OK, "%s: off: %s", name, dr_last_error());
        p.guidance = 1;
        CHECK(dr_restore(m, &in, mk, &p, &one) == DR_OK, "%s: 1: %s", name, dr_last_error());
        p.guidance = 2;
        CHECK(dr_restore(m, &in, mk, &p, &g2) == DR_OK, "%s: 2: %s", name, dr_last_error());
        p.guidance = 4;
        CHECK(dr_restore(m, &in, mk, &p, &g4) == DR_OK, "%s: 4: %s", name, dr_last_error());
        /* DR_GUIDANCE_AUTO (dr_params_init's): the weights' own weight, off without one */
        dr_image a0 = {0}, a2 = {0};
        p.guidance = DR_GUIDANCE_AUTO;
        CHECK(dr_restore(m, &in, mk, &p, &a0) == DR_OK, "%s: auto, none: %s", name, dr_last_error());
        m->info.guidance = 2;
        CHECK(dr_restore(m, &in, mk, &p, &a2) == DR_OK, "%s: auto, 2: %s", name, dr_last_error());
        m->info.guidance = 0;
        if (off.data && one.data && g2.data && g4.data && a0.data && a2.data) {
            const size_t n = (size_t)off.width * off.height * off.channels;
            CHECK(!memcmp(off.data, one.data, n * sizeof(uint16_t)), "%s: guidance 1 differs from off", name);
            CHECK(!memcmp(off.data, a0.data, n * sizeof(uint16_t)), "%s: auto without a weight is not off", name);
            CHECK(!memcmp(g2.data, a2.data, n * sizeof(uint16_t)), "%s: auto is not the weights' guidance 2", name);
            const double d2 = mean_abs_diff(&off, &g2), d4 = mean_abs_diff(&off, &g4);
            printf("guidance, %s: mean |out - off| %.3f levels at 2, %.3f at 4\n", name, d2, d4);
            CHECK(d2 > 0.05 && d4 > 1.5 * d2, "%s: guidance changes too little: %.3f at 2, %.3f at 4", name, d2, d4);
        }
        dr_image_free(&g2);
        dr_image_free(&a0);
        dr_image_free(&a2);
        /* blind to its conditioning (in_conv's weights of those channels
         * zeroed): the unconditional run is the conditional one */
        const int in_ch = m->info.cfg.in_channels, out_ch = m->info.cfg.out_channels;
        const unet_param *pc = NULL;
        for (int i = 0; i < m->L.n_params; i++)
            if (!strcmp(m->L.params[i].name, "in_conv.weight")) pc = &m->L.params[i];
        CHECK(pc && pc->shape[1] == in_ch, "in_conv.weight [C, %d, 3, 3]", in_ch);
        if (pc && off.data) {
            float *wt = m->params + pc->offset;
            for (int co = 0; co < pc->shape[0]; co++)
                for (int ci = out_ch; ci < in_ch; ci++)
                    memset(wt + ((size_t)co * in_ch + ci) * 9, 0, 9 * sizeof(float));
            dr_image b0 = {0}, b4 = {0};
            p.guidance = 0;
            CHECK(dr_restore(m, &in, mk, &p, &b0) == DR_OK, "%s: blind off: %s", name, dr_last_error());
            p.guidance = 4;
            CHECK(dr_restore(m, &in, mk, &p, &b4) == DR_OK, "%s: blind 4: %s", name, dr_last_error());
            if (b0.data && b4.data)
                CHECK(!memcmp(b0.data, b4.data, (size_t)b0.width * b0.height * b0.channels * sizeof(uint16_t)),
                      "%s: a network blind to its conditioning is changed by guidance", name);
            dr_image_free(&b0);
            dr_image_free(&b4);
        }
        if (mi == 0) {
            char path[1200];
            snprintf(path, sizeof path, "%s/cfg.safetensors", test_tmpdir());
            m->info.guidance = 1.5f;
            dr_model *m2 = NULL;
            CHECK(dr_model_save(m, path, 1) == DR_OK && dr_model_load(path, &m2) == DR_OK, "round trip: %s",
                  dr_last_error());
            if (m2)
                CHECK(m2->info.cond_dropout == 0.1f && m2->info.guidance == 1.5f, "loaded cond_dropout %g guidance %g",
                      (double)m2->info.cond_dropout, (double)m2->info.guidance);
            dr_model_free(m2);
            m2 = NULL;
            m->info.cond_dropout = 0;
            CHECK(dr_model_save(m, path, 1) == DR_OK, "save: %s", dr_last_error());
            CHECK(dr_model_load(path, &m2) == DR_ERR_FORMAT && !m2 && strstr(dr_last_error(), "cfg.safetensors") &&
                      strstr(dr_last_error(), "guidance"),
                  "guidance without cond_dropout loaded: %s", dr_last_error());
            dr_model_free(m2);
        }
        dr_image_free(&off);
        dr_image_free(&one);
        dr_image_free(&g4);
        dr_image_free(&mask);
        dr_image_free(&in);
        dr_model_free(m);
    }
}

int main(void) {
    test_colorize();
    test_inpaint();
    test_superres();
    test_seeds();
    test_mode_table();
    test_mode_defaults();
    test_tiling();
    test_samples();
    test_progress_cancel();
    test_tile_progress_cancel();
    test_large();
    test_render_size();
    test_nonfinite_weights();
    test_inpaint_hole_tiles();
    test_guidance();
    return test_summary("test_restore");
}
