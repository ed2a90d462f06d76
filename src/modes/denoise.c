/* denoise.c - the denoise mode: sensor noise and JPEG artefacts removed.
 *   target  RGB; cond the degraded RGB (in 6 / out 3)
 *   train   each crop gets Gaussian noise (std 5..50 levels), JPEG artefacts
 *           (quality 10..60), or JPEG then noise, a third of the time each;
 *           the degraded input is an 8-bit image, as at inference
 *   restore x0 clipped to its range; the output is x0, at the input's size
 *   eval    the truth JPEG-compressed at o->jpeg_quality (if > 0), then noise
 *           of std o->noise_sigma from a stream of its own per image; the
 *           baseline is that degraded input.
 * This file and one line of mode_table.c are the whole mode: the proof that
 * the table is the only place a mode is defined (docs/DESIGN.md). */
#include "modes/mode.h"

#include "common/error.h"
#include "imgproc/imgproc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOISE_MIN   5.0 /* training noise std, levels of 0..255 */
#define NOISE_MAX   50.0
#define JPEG_MIN    10 /* training JPEG quality */
#define JPEG_MAX    60
#define EVAL_STREAM 0x6e6f697365ULL /* "noise" */

/* x (unit RGB planes [3, h, w]) through a JPEG encoder and decoder at quality q */
static int jpeg_round_trip(float *x, int h, int w, int q) {
    dr_image im = {0}, back = {0};
    DR_TRY(dr_image_alloc(&im, w, h, 3, 8));
    ip_from_planar(x, &im);
    dr_save_options so;
    dr_save_options_init(&so);
    so.jpeg_quality = q;
    unsigned char *buf = NULL;
    size_t n = 0;
    int rc = dr_image_encode(DR_FORMAT_JPEG, &im, &so, "denoise", &buf, &n);
    if (rc == DR_OK) rc = dr_image_load_memory(buf, n, "denoise", 0, &back, NULL);
    if (rc == DR_OK && (back.width != w || back.height != h || back.channels != 3))
        rc = error_set(DR_ERR_FORMAT, "denoise: the JPEG round trip changed the image's layout");
    if (rc == DR_OK) ip_to_planar(&back, x);
    free(buf);
    dr_image_free(&im);
    dr_image_free(&back);
    return rc;
}

/* Gaussian noise of std sigma levels on unit values, from rng */
static void add_noise(float *x, size_t n, double sigma, rng_state *rng) {
    const float s = (float)(sigma / 127.5);
    for (size_t i = 0; i < n; i++) x[i] += s * rng_normal(rng);
}

static int denoise_example(const float *rgb, int P, const mode_train_options *o, rng_state *rng, float *target,
                           float *cond, float *gen, float *tmp) {
    (void)o, (void)gen, (void)tmp;
    const size_t n = (size_t)3 * P * P;
    memcpy(target, rgb, n * sizeof(float));
    memcpy(cond, rgb, n * sizeof(float));
    const uint32_t kind = rng_below(rng, 3); /* 0 noise, 1 JPEG, 2 JPEG then noise */
    if (kind >= 1) DR_TRY(jpeg_round_trip(cond, P, P, JPEG_MIN + (int)rng_below(rng, JPEG_MAX - JPEG_MIN + 1)));
    if (kind != 1) add_noise(cond, n, NOISE_MIN + (NOISE_MAX - NOISE_MIN) * rng_uniform(rng), rng);
    mode_quantize8(cond, n); /* the noisy input is an 8-bit image */
    return DR_OK;
}

static int denoise_build(mode_job *j, const dr_image *in, const dr_image *mask, float **rgb) {
    (void)mask;
    return mode_pad(j, *rgb, 3, in->height, in->width, &j->cond, "the condition");
}

static void denoise_clip(mode_job *j, float *x0) {
    const size_t n = (size_t)3 * j->H * j->W;
    for (size_t i = 0; i < n; i++) x0[i] = mode_clampf(x0[i], -j->ts, j->ts);
}

static int denoise_degrade(dr_eval_case *c, const dr_eval_options *o, int index) {
    if (!(o->noise_sigma >= 0 && o->noise_sigma <= 255))
        return error_set(DR_ERR_INVALID, "eval: noise %g is not within 0..255", o->noise_sigma);
    if (o->jpeg_quality < 0 || o->jpeg_quality > 100)
        return error_set(DR_ERR_INVALID, "eval: JPEG quality %d is not within 0..100", o->jpeg_quality);
    const int w = c->truth.width, h = c->truth.height;
    const size_t n = (size_t)3 * w * h;
    float *x = NULL;
    DR_TRY(mode_alloc(&x, n, "the noisy planes"));
    ip_to_planar(&c->truth, x);
    int rc = o->jpeg_quality > 0 ? jpeg_round_trip(x, h, w, o->jpeg_quality) : DR_OK;
    if (rc == DR_OK) {
        rng_state rng;
        rng_derive(&rng, o->seed, EVAL_STREAM, (uint64_t)index);
        add_noise(x, n, o->noise_sigma, &rng);
        rc = dr_image_alloc(&c->input, w, h, 3, 8);
    }
    if (rc == DR_OK) {
        ip_from_planar(x, &c->input); /* rounded and clamped to 8 bits */
        rc = dr_image_alloc(&c->baseline, w, h, 3, 8);
    }
    if (rc == DR_OK) memcpy(c->baseline.data, c->input.data, n * sizeof(uint16_t));
    free(x);
    return rc;
}

static int denoise_score(const dr_eval_case *c, const dr_image *out, dr_eval_metrics *m) {
    (void)c, (void)out, (void)m; /* PSNR and SSIM, common to every mode, say it all */
    return DR_OK;
}

static void denoise_eval_describe(const dr_eval_options *o, char *buf, size_t n) {
    if (o->jpeg_quality > 0)
        snprintf(buf, n, " JPEG %d, noise %g", o->jpeg_quality, o->noise_sigma);
    else
        snprintf(buf, n, " noise %g", o->noise_sigma);
}

static const char *const denoise_metrics[] = {NULL};

/* Presets: not tuned (no trained weights yet); those of inpaint, the other
 * mode whose target is the image itself. */
const mode_ops mode_denoise = {
    .info =
        {
            .mode = DR_MODE_DENOISE,
            .name = "denoise",
            .brief = "remove noise and JPEG artefacts (no trained weights yet)",
            .summary = "Remove noise and JPEG artefacts from photos.",
            .options_help = "",
            .baseline = "input",
            .in_channels = 6,
            .out_channels = 3,
            .flags = DR_MODE_EVAL_NOISE,
        },
    .presets = {{DR_SAMPLER_DDIM, 14, 1}, {DR_SAMPLER_DDIM, 4, 1}, {DR_SAMPLER_DDIM, 20, 1}},
    .flat_data = "the targets are (almost) constant",
    .make_example = denoise_example,
    .build = denoise_build,
    .clip_x0 = denoise_clip,
    .to_rgb = mode_to_rgb_x,
    .free_state = NULL,
    .eval_describe = denoise_eval_describe,
    .degrade = denoise_degrade,
    .eval_metrics = denoise_metrics,
    .score = denoise_score,
};
