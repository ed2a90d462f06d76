/* colorize.c - the colorize mode: gray in, the chroma generated.
 *   target  Cb, Cr: (v - 128) / 127.5; cond Y / 127.5 - 1 (mode.h)
 *   restore x0 (chroma) clipped to its range; the output keeps the input's Y.
 *           At a working resolution (render_size) the canvas holds the luma
 *           downscaled to a long side of R; the chroma is brought back to the
 *           input's size by guided upsampling on the full-size Y
 *           (imgproc_guided.h), and the output's Y is still the input's.
 *   eval    the input is the truth's luma; the baseline is that gray image. */
#include "modes/mode.h"

#include "common/error.h"
#include "imgproc/imgproc.h"
#include "imgproc/imgproc_guided.h"
#include "imgproc/quality.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *y_full; /* at a working resolution: the input's Y [oh, ow]; NULL otherwise */
    float *q;      /* while writing at a working resolution: the upsampled chroma [2, oh, ow] */
} colorize_state;

static int colorize_example(const float *rgb, int P, const mode_train_options *o, rng_state *rng, float *target,
                            float *cond, float *gen, float *tmp) {
    (void)o, (void)rng, (void)gen;
    const size_t np = (size_t)P * P;
    float *ycc = tmp; // [3, P, P]
    ip_rgb_to_ycbcr(rgb, ycc, np);
    memcpy(cond, ycc, np * sizeof(float));            // Y / 127.5 - 1
    mode_quantize8(cond, np);                         // a gray input is 8-bit
    memcpy(target, ycc + np, 2 * np * sizeof(float)); // (Cb - 128) / 127.5, (Cr - 128) / 127.5
    return DR_OK;
}

/* the long side of the working resolution (0 = full resolution);
 * DR_RENDER_SIZE_AUTO takes the weights' render_size */
static int colorize_plan(mode_job *j, const dr_image *in) {
    const int r = j->p->render_size < 0 ? j->info->render_size : j->p->render_size;
    ip_render_dims(in->height, in->width, r, &j->h, &j->w);
    j->oh = in->height;
    j->ow = in->width;
    return DR_OK;
}

static int colorize_build(mode_job *j, const dr_image *in, const dr_image *mask, float **rgb) {
    (void)mask;
    const size_t np_in = (size_t)in->width * in->height;
    colorize_state *s = calloc(1, sizeof *s);
    if (!s) return error_set(DR_ERR_NOMEM, "out of memory");
    j->state = s;
    float *tmp = NULL;
    DR_TRY(mode_alloc(&tmp, 3 * np_in, "colour planes"));
    ip_rgb_to_ycbcr(*rgb, tmp, np_in);
    int rc;
    if (j->h == in->height && j->w == in->width) { /* cond = Y */
        rc = mode_pad(j, tmp, 1, j->h, j->w, &j->cond, "the condition");
        free(tmp);
        return rc;
    }
    /* at a working resolution: cond = Y downscaled (antialiased bicubic, in
     * the Cb plane: h * w < np_in); the full-resolution Y is kept as the
     * guide of the chroma's upsampling and as the output's luma */
    float *ylo = tmp + np_in;
    rc = ip_resize(tmp, 1, in->height, in->width, ylo, j->h, j->w);
    if (rc == DR_OK) rc = mode_pad(j, ylo, 1, j->h, j->w, &j->cond, "the condition");
    if (rc != DR_OK) {
        free(tmp);
        return rc;
    }
    float *y = realloc(tmp, sizeof(float) * np_in);
    s->y_full = y ? y : tmp;
    return DR_OK;
}

static void colorize_clip(mode_job *j, float *x0) {
    const size_t canvas = (size_t)j->H * j->W;
    const float ts = j->ts;
    for (size_t i = 0; i < 2 * canvas; i++) x0[i] = mode_clampf(x0[i], -ts, ts);
}

/* at a working resolution: the chroma of the valid region of x (x0 =
 * target_scale * chroma) upsampled to the output's size, guided by the
 * full-resolution Y, into s->q [2, oh, ow] */
static int colorize_write_begin(mode_job *j, const float *x) {
    colorize_state *s = j->state;
    free(s->q);
    s->q = NULL;
    if (!s->y_full) return DR_OK;
    const size_t canvas = (size_t)j->H * j->W, n = (size_t)j->h * j->w;
    float *lo = malloc(sizeof(float) * 3 * n);
    s->q = malloc(sizeof(float) * 2 * (size_t)j->oh * j->ow);
    int rc = lo && s->q ? DR_OK : error_set(DR_ERR_NOMEM, "out of memory for the chroma at %dx%d", j->ow, j->oh);
    if (rc == DR_OK) {
        for (int y = 0; y < j->h; y++) /* [Y, Cb, Cr] of the valid region, unit values */
            for (int xx = 0; xx < j->w; xx++) {
                const size_t ci = (size_t)y * j->W + xx, i = (size_t)y * j->w + xx;
                lo[i] = j->cond[ci];
                lo[n + i] = x[ci] / j->ts;
                lo[2 * n + i] = x[canvas + ci] / j->ts;
            }
        rc = ip_guided_upsample(lo, lo + n, 2, j->h, j->w, s->y_full, j->oh, j->ow, IP_GUIDED_RADIUS, IP_GUIDED_EPS,
                                s->q);
    }
    free(lo);
    if (rc != DR_OK) {
        free(s->q);
        s->q = NULL;
    }
    return rc;
}

/* Out-of-gamut colours are desaturated toward their own luma (chroma scaled
 * by the largest s in [0, 1] that keeps R, G, B within range), so the output's
 * Y equals the input's up to rounding, never changed by clipping. RGB is
 * affine in s along that line: rgb(s) = Y + s (rgb(1) - Y). */
static void gamut_map(const float *ycc, float *rgb, size_t np) {
    for (size_t i = 0; i < np; i++) {
        const float y = ycc[i];
        float s = 1.0f;
        for (int ch = 0; ch < 3; ch++) {
            const float d = rgb[ch * np + i] - y;
            if (y + d > 1.0f) s = fminf(s, (1.0f - y) / d);
            if (y + d < -1.0f) s = fminf(s, (-1.0f - y) / d);
        }
        if (s < 1.0f) {
            s = fmaxf(s, 0.0f);
            for (int ch = 0; ch < 3; ch++) rgb[ch * np + i] = y + s * (rgb[ch * np + i] - y);
        }
    }
}

/* Y from the input, chroma generated: the canvas (stride W, chroma x / ts),
 * or at a working resolution the full-resolution Y and the upsampled chroma
 * (stride ow, already in unit values: / 1 is exact) */
static void colorize_to_rgb(const mode_job *j, const float *x, size_t i0, size_t k, float *rgb, float *ycc) {
    const colorize_state *s = j->state;
    const float *ysrc = j->cond, *csrc = x;
    float cdiv = j->ts;
    size_t stride = (size_t)j->W, cplane = (size_t)j->H * j->W;
    if (s->y_full) {
        ysrc = s->y_full;
        csrc = s->q;
        cdiv = 1.0f;
        stride = (size_t)j->ow;
        cplane = (size_t)j->oh * j->ow;
    }
    size_t y = i0 / j->ow, xx = i0 % j->ow; /* walked along, not divided out per pixel */
    for (size_t i = 0; i < k; i++) {
        const size_t cj = y * stride + xx;
        for (int ch = 0; ch < 3; ch++) ycc[ch * k + i] = ch == 0 ? ysrc[cj] : csrc[(ch - 1) * cplane + cj] / cdiv;
        if (++xx == (size_t)j->ow) xx = 0, y++;
    }
    ip_ycbcr_to_rgb(ycc, rgb, k);
    gamut_map(ycc, rgb, k);
}

static void colorize_free(mode_job *j) {
    colorize_state *s = j->state;
    if (s) {
        free(s->y_full);
        free(s->q);
    }
    free(s);
    j->state = NULL;
}

static int colorize_degrade(dr_eval_case *c, const dr_eval_options *o, int index) {
    (void)o, (void)index;
    const int w = c->truth.width, h = c->truth.height;
    const size_t np = (size_t)w * h;
    float *rgb = NULL, *ycc = NULL;
    int rc = mode_alloc(&rgb, 3 * np, "the truth's planes");
    if (rc == DR_OK) rc = mode_alloc(&ycc, 3 * np, "the truth's planes");
    if (rc == DR_OK) {
        ip_to_planar(&c->truth, rgb);
        ip_rgb_to_ycbcr(rgb, ycc, np);
        rc = dr_image_alloc(&c->input, w, h, 1, 8);
    }
    if (rc == DR_OK) {
        ip_from_planar(ycc, &c->input); /* plane 0: Y, rounded to 8 bits */
        rc = dr_image_alloc(&c->baseline, w, h, 3, 8);
    }
    if (rc == DR_OK)
        for (size_t i = 0; i < np; i++)
            for (int k = 0; k < 3; k++) c->baseline.data[i * 3 + k] = c->input.data[i];
    free(rgb);
    free(ycc);
    return rc;
}

static int colorize_score(const dr_eval_case *c, const dr_image *out, dr_eval_metrics *m) {
    const size_t np = (size_t)out->width * out->height;
    DR_TRY(iq_check_same_size(out, &c->input, NULL, "luma difference"));
    DR_TRY(dr_eval_chroma_psnr(out, &c->truth, &m->chroma_psnr));
    DR_TRY(dr_eval_colorfulness(out, &m->colorfulness));
    DR_TRY(dr_eval_colorfulness(&c->truth, &m->colorfulness_gt));
    m->colorfulness_ratio = m->colorfulness_gt > 1e-9 ? m->colorfulness / m->colorfulness_gt : NAN;
    double mx = 0;
    for (size_t i = 0; i < np; i++) {
        const double d = fabs(iq_luma(out, i) - iq_luma(&c->input, i));
        if (d > mx) mx = d;
    }
    m->max_luma_diff = mx;
    return DR_OK;
}

static const char *const colorize_metrics[] = {"chroma_psnr",  "colorfulness_ratio", "max_luma_diff",
                                               "colorfulness", "colorfulness_gt",    NULL};

/* Presets: colorize samples deterministically; eta 1 washes its colours out
 * toward gray (colourfulness 0.44 of the ground truth's against 0.72). */
const mode_ops mode_colorize = {
    .info =
        {
            .mode = DR_MODE_COLORIZE,
            .name = "colorize",
            .brief = "colorize black-and-white photos",
            .summary = "Colorize black-and-white photos. The output's luma is the input's; colour\n"
                       "input is treated as gray (its luma is used).",
            .options_help = "Working resolution:\n"
                            "      --render-size R   colour the photo downscaled to a long side of R\n"
                            "                        (never upscaled) and bring the colour back to full\n"
                            "                        size guided by the full-size luma; 0 = full size.\n"
                            "                        Default: the weights' render_size (see 'diffrestore\n"
                            "                        info WEIGHTS'), else 0\n",
            .baseline = "gray",
            .in_channels = 3,
            .out_channels = 2,
            .flags = DR_MODE_TAKES_RENDER_SIZE | DR_MODE_COLOR_OUT | DR_MODE_MEAN_OF_X,
        },
    .presets = {{DR_SAMPLER_DDIM, 10, 0}, {DR_SAMPLER_DDIM, 4, 0}, {DR_SAMPLER_DDIM, 20, 0}},
    .flat_data = "the photos have (almost) no colour, and colorize learns colour from colour photos",
    .make_example = colorize_example,
    .plan = colorize_plan,
    .build = colorize_build,
    .clip_x0 = colorize_clip,
    .write_begin = colorize_write_begin,
    .to_rgb = colorize_to_rgb,
    .free_state = colorize_free,
    .degrade = colorize_degrade,
    .eval_metrics = colorize_metrics,
    .score = colorize_score,
};
