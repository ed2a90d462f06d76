/* inpaint.c - the inpaint mode: holes filled, known pixels kept.
 *   target  RGB; cond RGB * (1 - hole), hole (mode.h)
 *   restore known pixels of x0 and of x hold the clean values at every step
 *           (Palette); the output copies known pixels bit for bit. The mask is
 *           an image (white = hole) or, without one, the input's alpha
 *           (transparent = hole), and then the filled holes become opaque.
 *   eval    holes drawn by the training generators at a fixed seed per image;
 *           the baseline (OpenCV's Telea) comes from scripts/telea_baseline.py. */
#include "modes/mode.h"

#include "common/error.h"
#include "imgproc/imgproc.h"
#include "imgproc/quality.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The mask of image `index` comes from rng_derive(seed, EVAL_STREAM, index):
 * a stream of its own, whatever else uses the seed. */
#define EVAL_STREAM 0x6576616cULL /* "eval" */

typedef struct {
    float *known;      /* [3, H, W] clean x0 (RGB * target_scale) */
    int alpha_is_mask; /* no mask image: the holes are the input's transparent pixels */
} inpaint_state;

static void inpaint_defaults(mode_train_options *o) {
    o->hole_min = 0.05f;
    o->hole_max = 0.5f;
}

static int inpaint_example(const float *rgb, int P, const mode_train_options *o, rng_state *rng, float *target,
                           float *cond, float *gen, float *tmp) {
    (void)tmp;
    const size_t np = (size_t)P * P;
    if (o->masks == DR_MASKS_DAMAGE)
        ip_damage_mask(rng, gen, P, P, o->hole_min, o->hole_max, NULL);
    else
        ip_random_mask(rng, gen, P, P, o->hole_min, o->hole_max); // gen = hole
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < np; i++) {
            target[c * np + i] = rgb[c * np + i];
            cond[c * np + i] = rgb[c * np + i] * (1.0f - gen[i]); // holes set to 0
        }
    memcpy(cond + 3 * np, gen, np * sizeof(float)); // the mask, 1 = hole
    return DR_OK;
}

/* Mask planes (1 = hole) from a mask image or from in's alpha. */
static int hole_mask(const dr_image *in, const dr_image *mask, float *gen) {
    const size_t np = (size_t)in->width * in->height;
    const dr_image *src = mask;
    int ch = 0;
    if (!mask) {
        if (in->channels != 2 && in->channels != 4)
            return error_set(DR_ERR_INVALID, "inpaint needs a mask: give one, or an input with an alpha channel");
        src = in;
        ch = in->channels - 1;
    } else if (mask->width != in->width || mask->height != in->height) {
        return error_set(DR_ERR_INVALID, "mask is %dx%d but the image is %dx%d", mask->width, mask->height, in->width,
                         in->height);
    }
    const unsigned maxv = src->depth == 16 ? 65535u : 255u;
    for (size_t i = 0; i < np; i++) {
        const unsigned v = src->data[i * src->channels + ch];
        gen[i] = mask ? (v > maxv / 2 ? 1.0f : 0.0f) : (v <= maxv / 2 ? 1.0f : 0.0f); /* alpha: transparent = hole */
    }
    return DR_OK;
}

/* cond = [RGB * (1 - m), m]; known = RGB * ts */
static int inpaint_build(mode_job *j, const dr_image *in, const dr_image *mask, float **rgbp) {
    const float *rgb = *rgbp;
    const size_t np_in = (size_t)in->width * in->height, canvas = (size_t)j->H * j->W;
    inpaint_state *s = calloc(1, sizeof *s);
    if (!s) return error_set(DR_ERR_NOMEM, "out of memory");
    j->state = s;
    float *tmp = NULL;
    DR_TRY(mode_alloc(&tmp, 4 * np_in, "the condition"));
    float *g = tmp + 3 * np_in;
    int rc = hole_mask(in, mask, g);
    if (rc == DR_OK) {
        s->alpha_is_mask = mask == NULL;
        for (int ch = 0; ch < 3; ch++)
            for (size_t i = 0; i < np_in; i++) tmp[ch * np_in + i] = rgb[ch * np_in + i] * (1.0f - g[i]);
        rc = mode_pad(j, tmp, 4, j->h, j->w, &j->cond, "the condition");
    }
    if (rc == DR_OK) rc = mode_alloc(&j->gen, canvas, "the mask");
    if (rc == DR_OK) {
        memcpy(j->gen, j->cond + 3 * canvas, sizeof(float) * canvas);
        rc = mode_pad(j, rgb, 3, j->h, j->w, &s->known, "the known pixels");
    }
    if (rc == DR_OK)
        for (size_t i = 0; i < 3 * canvas; i++) s->known[i] *= j->ts;
    free(tmp);
    return rc;
}

static void inpaint_clip(mode_job *j, float *x0) {
    const inpaint_state *s = j->state;
    const size_t canvas = (size_t)j->H * j->W;
    const float ts = j->ts;
    for (size_t i = 0; i < 3 * canvas; i++)
        x0[i] = j->gen[i % canvas] > 0.5f ? mode_clampf(x0[i], -ts, ts) : s->known[i];
}

static void inpaint_hold(const mode_job *j, float *x) {
    const inpaint_state *s = j->state;
    const size_t canvas = (size_t)j->H * j->W;
    for (size_t i = 0; i < 3 * canvas; i++)
        if (j->gen[i % canvas] < 0.5f) x[i] = s->known[i];
}

/* known pixels (colour and alpha) are the input's, bit for bit */
static int inpaint_finish(const mode_job *j, const dr_image *in, dr_image *out) {
    const inpaint_state *s = j->state;
    const int gray_in = in->channels <= 2, has_alpha = in->channels == 2 || in->channels == 4;
    const int channels = out->channels, color_out = channels - has_alpha == 3;
    for (int y = 0; y < j->h; y++)
        for (int xx = 0; xx < j->w; xx++) {
            if (j->gen[(size_t)y * j->W + xx] > 0.5f) continue;
            const size_t i = (size_t)y * j->w + xx;
            const uint16_t *sp = in->data + i * in->channels;
            uint16_t *o = out->data + i * channels;
            if (color_out && gray_in)
                o[0] = o[1] = o[2] = sp[0];
            else
                for (int ch = 0; ch < (color_out ? 3 : 1); ch++) o[ch] = sp[ch];
        }
    if (!has_alpha) return DR_OK;
    mode_copy_alpha(in, out);
    if (s->alpha_is_mask) { /* the filled hole is no longer transparent */
        const unsigned maxv = in->depth == 16 ? 65535u : 255u;
        for (int y = 0; y < j->h; y++)
            for (int xx = 0; xx < j->w; xx++)
                if (j->gen[(size_t)y * j->W + xx] > 0.5f)
                    out->data[((size_t)y * j->w + xx) * channels + channels - 1] = (uint16_t)maxv;
    }
    return DR_OK;
}

static void inpaint_free(mode_job *j) {
    inpaint_state *s = j->state;
    if (s) free(s->known);
    free(s);
    j->state = NULL;
}

static int inpaint_degrade(dr_eval_case *c, const dr_eval_options *o, int index) {
    if (!(o->hole_min >= 0 && o->hole_min <= o->hole_max && o->hole_max <= 1))
        return error_set(DR_ERR_INVALID, "eval: hole range %g-%g is not within 0..1 with min <= max", o->hole_min,
                         o->hole_max);
    if (o->masks != DR_MASKS_LEGACY && o->masks != DR_MASKS_DAMAGE)
        return error_set(DR_ERR_INVALID, "eval: unknown hole generator %d", (int)o->masks);
    const int w = c->truth.width, h = c->truth.height;
    const size_t np = (size_t)w * h;
    float *m = NULL;
    DR_TRY(mode_alloc(&m, np, "the eval mask"));
    rng_state rng;
    rng_derive(&rng, o->seed, EVAL_STREAM, (uint64_t)index);
    double frac = o->masks == DR_MASKS_DAMAGE ? ip_damage_mask(&rng, m, h, w, o->hole_min, o->hole_max, NULL)
                                              : ip_random_mask(&rng, m, h, w, o->hole_min, o->hole_max);
    int rc = frac < 0 ? error_set(DR_ERR_INVALID, "eval: bad hole range %g-%g", o->hole_min, o->hole_max) : DR_OK;
    if (rc == DR_OK) rc = dr_image_alloc(&c->mask, w, h, 1, 8);
    if (rc == DR_OK) rc = dr_image_alloc(&c->input, w, h, 3, 8);
    if (rc == DR_OK) {
        size_t holes = 0;
        for (size_t i = 0; i < np; i++) {
            const int hole = m[i] > 0.5f;
            holes += (size_t)hole;
            c->mask.data[i] = hole ? 255 : 0;
            for (int k = 0; k < 3; k++) c->input.data[i * 3 + k] = hole ? 0 : c->truth.data[i * 3 + k];
        }
        c->hole_fraction = (double)holes / (double)np;
    }
    free(m);
    return rc;
}

static int inpaint_score(const dr_eval_case *c, const dr_image *out, dr_eval_metrics *m) {
    const size_t np = (size_t)out->width * out->height;
    DR_TRY(iq_check_same_size(out, &c->input, &c->mask, "inpaint scores"));
    DR_TRY(dr_eval_psnr(out, &c->truth, &c->mask, &m->hole_psnr));
    DR_TRY(dr_eval_hf_ratio(out, &c->truth, &c->mask, &m->hole_hf_ratio));
    double mx = 0;
    for (size_t i = 0; i < np; i++) {
        if (iq_in_region(&c->mask, i)) continue;
        for (int ch = 0; ch < 3; ch++) {
            const double d = fabs(iq_px(out, i, ch) - iq_px(&c->input, i, ch));
            if (d > mx) mx = d;
        }
    }
    m->max_known_diff = mx;
    return DR_OK;
}

static void inpaint_eval_describe(const dr_eval_options *o, char *buf, size_t n) {
    snprintf(buf, n, " holes %g-%g%s", o->hole_min, o->hole_max, o->masks == DR_MASKS_DAMAGE ? " damage" : "");
}

static const char *const inpaint_metrics[] = {"hole_psnr", "hole_hf_ratio", "max_known_diff", NULL};

/* Presets: SDE-DPM-Solver++ loses 0.3-0.5 dB of hole PSNR at every step count
 * (the known pixels are pasted back at each step, which breaks the multistep
 * history it extrapolates from), so inpaint keeps DDIM; eta 1 (re-injected
 * noise) averages the model's errors away. 17 steps: the fewest within 0.1 dB
 * and 0.02 HF ratio of the 20-step reference with milestone 8's weights (14
 * were enough for milestone 5's; docs/TUNING.md). */
const mode_ops mode_inpaint = {
    .info =
        {
            .mode = DR_MODE_INPAINT,
            .name = "inpaint",
            .brief = "fill holes given by a mask, boxes or the alpha channel",
            .summary = "Fill holes in photos. Known pixels are kept bit for bit.",
            .options_help = "Where the holes are:\n"
                            "      --mask MASK       an image of the same size, white (> half range) where\n"
                            "                        the hole is; any layout (gray: first channel, colour:\n"
                            "                        luma). A directory: masks paired by relative path, with\n"
                            "                        the same name as .png, .jpg, .jpeg, .tif(f) or .webp.\n"
                            "                        Masks are in the upright frame: the input's EXIF\n"
                            "                        orientation is applied before the mask is used\n"
                            "      --box x,y,w,h     a rectangular hole (repeatable); boxes reaching past\n"
                            "                        the edge are clipped, one entirely outside is an error\n"
                            "  (neither)             the input's alpha channel: transparent = hole\n"
                            "  A mask without any hole gives a copy of the input (with a note).\n",
            .baseline = "telea",
            .in_channels = 7,
            .out_channels = 3,
            .flags = DR_MODE_TAKES_MASK | DR_MODE_BASELINE_EXTERNAL,
        },
    .presets = {{DR_SAMPLER_DDIM, 17, 1}, {DR_SAMPLER_DDIM, 4, 1}, {DR_SAMPLER_DDIM, 20, 1}},
    .flat_data = "the targets are (almost) constant",
    .train_defaults = inpaint_defaults,
    .make_example = inpaint_example,
    .build = inpaint_build,
    .clip_x0 = inpaint_clip,
    .hold_x = inpaint_hold,
    .to_rgb = mode_to_rgb_x,
    .finish = inpaint_finish,
    .free_state = inpaint_free,
    .eval_describe = inpaint_eval_describe,
    .degrade = inpaint_degrade,
    .eval_metrics = inpaint_metrics,
    .score = inpaint_score,
};
