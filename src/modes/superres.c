/* superres.c - the superres mode: an image enlarged by a factor.
 *   target  the residual HR - up(LR); cond up(LR), bicubic (mode.h)
 *   restore the residual x0 is clipped so up + residual stays in range, then
 *           projected exactly onto { HR : downscale(HR) = LR }.
 *   eval    the input is the truth downscaled (antialiased bicubic) to 8 bits;
 *           the baseline is its bicubic upscale. */
#include "modes/mode.h"

#include "common/error.h"
#include "imgproc/imgproc.h"
#include "imgproc/quality.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POCS_ITERS        8 /* projection / range alternations per step */
#define MAX_OUTPUT_PIXELS ((int64_t)1 << 28)
/* a requested size may round the factor slightly outside the weights' range */
#define SCALE_TOLERANCE   0.02

typedef struct {
    ip_projector proj;
    int has_proj;
    float *lr;     /* [3, ih, iw]: the input */
    float *hr_tmp; /* [3, h, w] + projection tmp */
} superres_state;

static void superres_defaults(mode_train_options *o) {
    o->scale_min = 2.0f;
    o->scale_max = 4.0f;
}

static int superres_example(const float *rgb, int P, const mode_train_options *o, rng_state *rng, float *target,
                            float *cond, float *gen, float *tmp) {
    (void)gen;
    const size_t np = (size_t)P * P;
    double s = mode_draw_scale(o, rng);
    int lr = (int)lround(P / s);
    if (lr < 1) lr = 1;
    float *low = tmp;                                                 // [3, lr, lr]
    DR_TRY(ip_resize(rgb, 3, P, P, low, lr, lr));                     // antialiased bicubic down
    mode_quantize8(low, (size_t)3 * lr * lr);                         // the LR input is an 8-bit image
    DR_TRY(ip_resize(low, 3, lr, lr, cond, P, P));                    // up(LR), bicubic
    for (size_t i = 0; i < 3 * np; i++) target[i] = rgb[i] - cond[i]; // residual HR - up(LR)
    return DR_OK;
}

/* Output size from the scale or the requested width/height, checked against
 * the weights' scale range. */
static int superres_plan(mode_job *j, const dr_image *in) {
    const dr_params *p = j->p;
    int ho, wo;
    if (p->scale > 0) {
        ho = (int)lround(in->height * p->scale);
        wo = (int)lround(in->width * p->scale);
    } else if (p->out_width > 0 || p->out_height > 0) {
        const double s = p->out_width > 0 ? (double)p->out_width / in->width : (double)p->out_height / in->height;
        wo = p->out_width > 0 ? p->out_width : (int)lround(in->width * s);
        ho = p->out_height > 0 ? p->out_height : (int)lround(in->height * s);
    } else {
        return error_set(DR_ERR_INVALID, "superres needs a scale or an output width or height");
    }
    const double sy = (double)ho / in->height, sx = (double)wo / in->width;
    const double lo = j->info->scale_min, hi = j->info->scale_max, tol = SCALE_TOLERANCE;
    if (sy < lo - tol || sy > hi + tol || sx < lo - tol || sx > hi + tol)
        return error_set(DR_ERR_INVALID,
                         "scale %.3gx%.3g is outside the range these weights were trained for (%g to %g)", sx, sy, lo,
                         hi);
    if ((int64_t)ho * wo > MAX_OUTPUT_PIXELS) return error_set(DR_ERR_LIMIT, "output %dx%d is too large", wo, ho);
    j->h = j->oh = ho;
    j->w = j->ow = wo;
    return DR_OK;
}

/* cond = up(LR) bicubic; project onto downscale(HR) = LR */
static int superres_build(mode_job *j, const dr_image *in, const dr_image *mask, float **rgb) {
    (void)mask;
    superres_state *s = calloc(1, sizeof *s);
    if (!s) return error_set(DR_ERR_NOMEM, "out of memory");
    j->state = s;
    s->lr = *rgb;
    *rgb = NULL;
    float *tmp = NULL;
    int rc = mode_alloc(&tmp, 3 * (size_t)j->h * j->w, "the upscaled input");
    if (rc == DR_OK) rc = ip_resize(s->lr, 3, in->height, in->width, tmp, j->h, j->w);
    if (rc == DR_OK) rc = mode_pad(j, tmp, 3, j->h, j->w, &j->cond, "the condition");
    if (rc == DR_OK) rc = ip_projector_build(&s->proj, j->h, j->w, in->height, in->width);
    if (rc == DR_OK) {
        s->has_proj = 1;
        rc = mode_alloc(&s->hr_tmp, 3 * (size_t)j->h * j->w + ip_project_tmp_floats(&s->proj, 3), "the projection");
    }
    free(tmp);
    return rc;
}

static void superres_clip(mode_job *j, float *x0) {
    superres_state *s = j->state;
    const size_t canvas = (size_t)j->H * j->W;
    const float ts = j->ts;
    /* residual range: up + r within -1..1 */
    for (size_t i = 0; i < 3 * canvas; i++) {
        const float up = j->cond[i];
        x0[i] = mode_clampf(x0[i], (-1.0f - up) * ts, (1.0f - up) * ts);
    }
    /* HR = up + r / ts on the valid region must downscale to LR exactly
     * and stay within -1..1: alternate the exact projection with the box
     * (POCS: both sets are convex), ending with the projection */
    const size_t hw = (size_t)j->h * j->w;
    float *hr = s->hr_tmp, *tmp = s->hr_tmp + 3 * hw;
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < j->h; y++)
            for (int x = 0; x < j->w; x++) {
                const size_t ci = (size_t)ch * canvas + (size_t)y * j->W + x;
                hr[(size_t)ch * hw + (size_t)y * j->w + x] = j->cond[ci] + x0[ci] / ts;
            }
    for (int it = 0; it < POCS_ITERS; it++) {
        ip_project(&s->proj, hr, s->lr, 3, tmp);
        int outside = 0;
        for (size_t i = 0; i < 3 * hw; i++)
            if (hr[i] < -1.0f || hr[i] > 1.0f) {
                hr[i] = mode_clampf(hr[i], -1.0f, 1.0f);
                outside = 1;
            }
        if (!outside) break;
        if (it == POCS_ITERS - 1) ip_project(&s->proj, hr, s->lr, 3, tmp);
    }
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < j->h; y++)
            for (int x = 0; x < j->w; x++) {
                const size_t ci = (size_t)ch * canvas + (size_t)y * j->W + x;
                x0[ci] = (hr[(size_t)ch * hw + (size_t)y * j->w + x] - j->cond[ci]) * ts;
            }
}

static void superres_to_rgb(const mode_job *j, const float *x, size_t i0, size_t k, float *rgb, float *ycc) {
    (void)ycc;
    const size_t canvas = (size_t)j->H * j->W;
    size_t y = i0 / j->ow, xx = i0 % j->ow;
    for (size_t i = 0; i < k; i++) {
        const size_t ci = y * j->W + xx;
        for (int ch = 0; ch < 3; ch++) rgb[ch * k + i] = j->cond[ch * canvas + ci] + x[ch * canvas + ci] / j->ts;
        if (++xx == (size_t)j->ow) xx = 0, y++;
    }
}

/* alpha upscaled bicubically */
static int superres_finish(const mode_job *j, const dr_image *in, dr_image *out) {
    if (in->channels != 2 && in->channels != 4) return DR_OK;
    const int ain = in->channels - 1, aout = out->channels - 1;
    const unsigned maxv = in->depth == 16 ? 65535u : 255u;
    const size_t nin = (size_t)in->width * in->height, np = (size_t)j->oh * j->ow;
    float *a = malloc(sizeof(float) * nin), *b = malloc(sizeof(float) * np);
    int rc = a && b ? DR_OK : error_set(DR_ERR_NOMEM, "out of memory for alpha");
    if (rc == DR_OK) {
        for (size_t i = 0; i < nin; i++) a[i] = in->data[i * in->channels + ain] / (float)maxv * 2.0f - 1.0f;
        rc = ip_resize(a, 1, in->height, in->width, b, j->h, j->w);
    }
    for (size_t i = 0; rc == DR_OK && i < np; i++) out->data[i * out->channels + aout] = mode_to_sample(b[i], maxv);
    free(a);
    free(b);
    return rc;
}

static void superres_free(mode_job *j) {
    superres_state *s = j->state;
    if (s) {
        if (s->has_proj) ip_projector_free(&s->proj);
        free(s->lr);
        free(s->hr_tmp);
    }
    free(s);
    j->state = NULL;
}

static int superres_degrade(dr_eval_case *c, const dr_eval_options *o, int index) {
    (void)index;
    if (!(o->scale >= 1.0 && o->scale <= 64.0))
        return error_set(DR_ERR_INVALID, "eval: scale %g is not within 1..64", o->scale);
    const int w = c->truth.width, h = c->truth.height;
    long lw = lround(w / o->scale), lh = lround(h / o->scale);
    if (lw < 1) lw = 1;
    if (lh < 1) lh = 1;
    const size_t np = (size_t)w * h, nl = (size_t)lw * lh;
    float *hr = NULL, *lr = NULL;
    int rc = mode_alloc(&hr, 3 * np, "the truth's planes");
    if (rc == DR_OK) rc = mode_alloc(&lr, 3 * nl, "the low resolution planes");
    if (rc == DR_OK) {
        ip_to_planar(&c->truth, hr);
        rc = ip_resize(hr, 3, h, w, lr, (int)lh, (int)lw); /* antialiased bicubic down */
    }
    if (rc == DR_OK) rc = dr_image_alloc(&c->input, (int)lw, (int)lh, 3, 8);
    if (rc == DR_OK) {
        ip_from_planar(lr, &c->input); /* the LR is an 8-bit image */
        ip_to_planar(&c->input, lr);   /* the baseline starts from those 8 bits */
        rc = ip_resize(lr, 3, (int)lh, (int)lw, hr, h, w);
    }
    if (rc == DR_OK) rc = dr_image_alloc(&c->baseline, w, h, 3, 8);
    if (rc == DR_OK) ip_from_planar(hr, &c->baseline);
    free(hr);
    free(lr);
    return rc;
}

static int superres_score(const dr_eval_case *c, const dr_image *out, dr_eval_metrics *m) {
    DR_TRY(dr_eval_hf_ratio(out, &c->truth, NULL, &m->hf_ratio));
    return dr_eval_consistency_psnr(out, &c->input, &m->consistency_psnr);
}

static void superres_eval_describe(const dr_eval_options *o, char *buf, size_t n) {
    snprintf(buf, n, " x%g", o->scale);
}

static const char *const superres_metrics[] = {"hf_ratio", "consistency_psnr", NULL};

/* Presets: SDE-DPM-Solver++(2M) at 6 steps is within 0.1 dB and 0.02 HF ratio
 * of DDIM eta 1 at 20, at under a third of the network evaluations. */
const mode_ops mode_superres = {
    .info =
        {
            .mode = DR_MODE_SUPERRES,
            .name = "superres",
            .brief = "upscale photos by a factor or to a size",
            .summary = "Upscale photos. Downscaling the output gives back the input.",
            .options_help = "Output size (one of):\n"
                            "      --scale S         factor, within the weights' range (see 'diffrestore\n"
                            "                        info WEIGHTS': scale_min..scale_max)\n"
                            "      --width W         output width (with --height too: both fixed;\n"
                            "      --height H        alone: the other keeps the aspect ratio)\n",
            .baseline = "bicubic",
            .in_channels = 6,
            .out_channels = 3,
            .flags = DR_MODE_TAKES_SCALE,
        },
    .presets = {{DR_SAMPLER_DPMPP_2M_SDE, 6, 1}, {DR_SAMPLER_DPMPP_2M_SDE, 4, 1}, {DR_SAMPLER_DDIM, 20, 1}},
    .flat_data = "the targets are (almost) constant",
    .train_defaults = superres_defaults,
    .make_example = superres_example,
    .plan = superres_plan,
    .build = superres_build,
    .clip_x0 = superres_clip,
    .to_rgb = superres_to_rgb,
    .finish = superres_finish,
    .free_state = superres_free,
    .eval_describe = superres_eval_describe,
    .degrade = superres_degrade,
    .eval_metrics = superres_metrics,
    .score = superres_score,
};
