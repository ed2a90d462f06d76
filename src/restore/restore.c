/*
 * restore.c - one image through a mode, the U-Net and a sampler.
 *
 * The diffusion runs on a canvas: the output's size padded by reflection to
 * a multiple of 2^(levels-1). x is [out_ch, H, W] on that canvas, cond is
 * [cond_ch, H, W]. The sampler sees the network only through predict(),
 * which runs the U-Net over overlapping tiles (when the canvas is larger
 * than the tile) and blends the outputs with raised-cosine weights, then
 * turns them into eps and x0 estimates. The mode's guarantees live in its
 * hooks (mode.h; src/modes/MODE.c): the x0 estimate clipped, projected or
 * held, and the output written from x.
 */
#include "restore/restore.h"

#include "common/error.h"
#include "common/rng.h"
#include "diffusion/diffusion.h"
#include "imgproc/imgproc.h"
#include "nn/nn.h"
#include "restore/tiling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TILE_BATCH        2 /* tiles per U-Net call */
#define MAX_CANVAS_PIXELS ((int64_t)1 << 28)

int restore_all_tiles = 0;

/* ------------------------------------------------------------------ context */

typedef struct {
    const restore_net *net_;
    const noise_schedule *sch;
    const mode_ops *ops;
    mode_job job; /* the canvas, cond, gen and the mode's state */
    int out_ch, in_ch;
    /* network plumbing */
    tiling tl;
    int *active; /* the tiles the network runs on: those holding a generated pixel */
    int n_active;
    unet_run run;
    float *tile_in, *tile_out, *tile_t;
    float *net; /* [out_ch, H, W] blended network output */
    /* classifier-free guidance (dr_params.guidance; NULL when off) */
    float *net_c; /* [out_ch, H, W] the conditional output of the step */
    float *cond0; /* [in_ch - out_ch, H, W] zeros: the unconditional input */
    double w;     /* the guidance weight in force (dr_params.guidance, AUTO resolved) */
    /* progress */
    const dr_params *p;
    int step_base, steps_total;
} restore_ctx;

static void ctx_free(restore_ctx *c) {
    if (c->ops && c->ops->free_state) c->ops->free_state(&c->job);
    free(c->job.cond);
    free(c->job.gen);
    tiling_free(&c->tl);
    free(c->active);
    unet_run_free(&c->run);
    free(c->tile_in);
    free(c->tile_out);
    free(c->tile_t);
    free(c->net);
    free(c->net_c);
    free(c->cond0);
    memset(c, 0, sizeof *c);
}

/* The network over the active tiles, blended into c->net. With a gen map
 * (inpaint) the tiles without a generated pixel are skipped: a generated
 * pixel gets blend weight only from tiles that contain it (all active), and
 * the network's output at known pixels is never used (the mode's clip_x0 and
 * hold_x put the known values back), so the result is bit-identical to
 * running every tile (tests/test_restore.c). */
static int run_network(restore_ctx *c, const float *xt, int t) {
    const int th = c->tl.th, tw = c->tl.tw, H = c->job.H, W = c->job.W;
    const size_t tp = (size_t)th * tw, canvas = (size_t)H * W;
    const int single = c->tl.n == 1 && c->n_active == 1;
    if (!single) memset(c->net, 0, sizeof(float) * c->out_ch * canvas);
    for (int k0 = 0; k0 < c->n_active; k0 += c->run.B) {
        const int nb = c->n_active - k0 < c->run.B ? c->n_active - k0 : c->run.B;
        for (int b = 0; b < c->run.B; b++) { /* gather: [x_t, cond] of each tile (the last repeats if short) */
            const tile_pos *tpz = &c->tl.pos[c->active[k0 + (b < nb ? b : nb - 1)]];
            float *dst = c->tile_in + (size_t)b * c->in_ch * tp;
            for (int ch = 0; ch < c->in_ch; ch++) {
                const float *src =
                    ch < c->out_ch ? xt + (size_t)ch * canvas : c->job.cond + (size_t)(ch - c->out_ch) * canvas;
                for (int y = 0; y < th; y++)
                    memcpy(dst + (size_t)ch * tp + (size_t)y * tw, src + (size_t)(tpz->y0 + y) * W + tpz->x0,
                           sizeof(float) * tw);
            }
            c->tile_t[b] = (float)t;
        }
        int rc =
            unet_forward(&c->run, c->net_->L, c->net_->params, c->tile_in, c->tile_t, single ? c->net : c->tile_out);
        if (rc != DR_OK) return rc;
        if (c->p->progress_tile) c->p->progress_tile(k0 + nb, c->n_active, c->p->user);
        if (c->p->cancel && *c->p->cancel) /* a large photo's step can take minutes: stop between tiles */
            return error_set(DR_ERR_CANCELLED, "cancelled in a sampler step, after %d of %d tiles", k0 + nb,
                             c->n_active);
        if (single) break;
        for (int b = 0; b < nb; b++) { /* scatter with blend weights */
            const int k = c->active[k0 + b];
            const tile_pos *tpz = &c->tl.pos[k];
            const float *wy = c->tl.wy + (size_t)k * th, *wx = c->tl.wx + (size_t)k * tw;
            const float *src = c->tile_out + (size_t)b * c->out_ch * tp;
            for (int ch = 0; ch < c->out_ch; ch++)
                for (int y = 0; y < th; y++) {
                    float *drow = c->net + (size_t)ch * canvas + (size_t)(tpz->y0 + y) * W + tpz->x0;
                    const float *srow = src + (size_t)ch * tp + (size_t)y * tw;
                    for (int x = 0; x < tw; x++) drow[x] += wy[y] * wx[x] * srow[x];
                }
        }
    }
    if (!single) {
        for (int ch = 0; ch < c->out_ch; ch++) {
            float *n = c->net + (size_t)ch * canvas;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
            for (size_t i = 0; i < canvas; i++) n[i] *= c->tl.inv_wsum[i];
        }
    }
    return DR_OK;
}

/* dr_params.guidance with DR_GUIDANCE_AUTO resolved to the weights' own */
static double guidance_of(const restore_net *net, const dr_params *p) {
    return p->guidance == DR_GUIDANCE_AUTO ? net->info->guidance : p->guidance;
}
static int guided(double w) { return w > 0 && w != 1; }

static int predict(void *user, const float *xt, int t, float *eps, float *x0) {
    restore_ctx *c = user;
    const size_t n = (size_t)c->out_ch * c->job.H * c->job.W;
    DR_TRY(run_network(c, xt, t)); // o_c [out_ch, H, W]
    if (c->net_c) {
        /* classifier-free guidance: o = o_u + w (o_c - o_u); x0 and eps are
         * linear in o at a given x_t, so this guides both */
        memcpy(c->net_c, c->net, sizeof(float) * n);
        float *cond = c->job.cond;
        c->job.cond = c->cond0;
        const int rc = run_network(c, xt, t); // o_u [out_ch, H, W]
        c->job.cond = cond;
        DR_TRY(rc);
        const float w = (float)c->w;
        float *o = c->net;
        const float *oc = c->net_c;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
        for (size_t i = 0; i < n; i++) o[i] += w * (oc[i] - o[i]);
    }
    const double ab = c->sch->alpha_bar[t], sa = sqrt(ab), sb = sqrt(1.0 - ab);
    /* a NaN or Inf from the network (overflow) would be clamped by the
     * sampler into a flat, wrong picture: stop instead, nothing is written */
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) num_threads(nn_threads())
    for (size_t i = 0; i < n; i++) bad |= !isfinite(c->net[i]);
    if (bad)
        return error_set(DR_ERR_NUMERIC, "the network produced a non-finite value at step t = %d: no output written",
                         t);
    const int v = c->net_->info->predict_v;
    const float *o = c->net;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (size_t i = 0; i < n; i++) {
        x0[i] = (float)diffusion_x0(sa, sb, v, xt[i], o[i]);
        eps[i] = (float)diffusion_eps(sa, sb, v, xt[i], o[i]);
    }
    return DR_OK;
}

static void x0_hook(void *user, float *x0, int t) {
    restore_ctx *c = user;
    (void)t;
    c->ops->clip_x0(&c->job, x0);
}

static void x_hook(void *user, float *x, int t_next) {
    restore_ctx *c = user;
    (void)t_next;
    if (c->ops->hold_x) c->ops->hold_x(&c->job, x);
}

static int on_progress(void *user, int step, int steps) {
    restore_ctx *c = user;
    (void)steps;
    if (c->p->progress) c->p->progress(c->step_base + step, c->steps_total, c->p->user);
    return c->p->cancel && *c->p->cancel;
}

/* ------------------------------------------------------------------ setup */

/* Colour planes of an image as unit RGB [3, h, w] (gray replicated). */
static int image_rgb_planes(const dr_image *img, float **out) {
    const size_t np = (size_t)img->width * img->height;
    DR_TRY(mode_alloc(out, 3 * np, "the input"));
    ip_to_planar(img, *out);
    if (img->channels <= 2) /* gray: replicate plane 0 */
        for (int c = 1; c < 3; c++) memcpy(*out + (size_t)c * np, *out, np * sizeof(float));
    return DR_OK;
}

static int ctx_network(restore_ctx *c) {
    const int f = 1 << (c->net_->info->cfg.n_levels - 1);
    const int tile = c->p->tile > 0 ? c->p->tile : DEFAULT_TILE;
    const int overlap = c->p->tile_overlap > 0 ? c->p->tile_overlap : DEFAULT_OVERLAP;
    DR_TRY(tiling_build(&c->tl, c->job.H, c->job.W, tile, overlap, f));
    c->active = malloc(sizeof(int) * c->tl.n);
    if (!c->active) return error_set(DR_ERR_NOMEM, "out of memory for %d tiles", c->tl.n);
    c->n_active = 0;
    const float *gen = c->job.gen;
    for (int k = 0; k < c->tl.n; k++) {
        int hole = !gen || restore_all_tiles;
        const tile_pos *tpz = &c->tl.pos[k];
        for (int y = 0; y < c->tl.th && !hole; y++)
            for (int x = 0; x < c->tl.tw && !hole; x++)
                hole = gen[(size_t)(tpz->y0 + y) * c->job.W + tpz->x0 + x] > 0.5f;
        if (hole) c->active[c->n_active++] = k;
    }
    const int B = c->tl.n < TILE_BATCH ? c->tl.n : TILE_BATCH;
    DR_TRY(unet_run_build(&c->run, c->net_->L, B, c->tl.th, c->tl.tw, 0));
    const size_t tp = (size_t)c->tl.th * c->tl.tw;
    DR_TRY(mode_alloc(&c->tile_in, (size_t)B * c->in_ch * tp, "tiles"));
    DR_TRY(mode_alloc(&c->tile_out, (size_t)B * c->out_ch * tp, "tiles"));
    DR_TRY(mode_alloc(&c->tile_t, (size_t)B, "tiles"));
    DR_TRY(mode_alloc(&c->net, (size_t)c->out_ch * c->job.H * c->job.W, "the network output"));
    if (guided(c->w)) {
        const size_t canvas = (size_t)c->job.H * c->job.W;
        DR_TRY(mode_alloc(&c->net_c, (size_t)c->out_ch * canvas, "guidance"));
        DR_TRY(mode_alloc(&c->cond0, (size_t)(c->in_ch - c->out_ch) * canvas, "guidance"));
        memset(c->cond0, 0, sizeof(float) * (size_t)(c->in_ch - c->out_ch) * canvas);
    }
    return DR_OK;
}

static int round_up(int v, int f) { return (v + f - 1) / f * f; }

static int ctx_build(restore_ctx *c, const restore_net *net, const noise_schedule *sch, const dr_image *in,
                     const dr_image *mask, const dr_params *p) {
    memset(c, 0, sizeof *c);
    c->net_ = net;
    c->sch = sch;
    c->p = p;
    c->w = guidance_of(net, p);
    c->ops = mode_ops_get(net->info->mode);
    if (!c->ops) return error_set(DR_ERR_INVALID, "model has no mode");
    mode_job *j = &c->job;
    j->ops = c->ops;
    j->info = net->info;
    j->p = p;
    j->ts = net->info->target_scale;
    c->out_ch = c->ops->info.out_channels;
    c->in_ch = net->info->cfg.in_channels;
    const int f = 1 << (net->info->cfg.n_levels - 1);
    j->h = j->oh = in->height;
    j->w = j->ow = in->width;
    if (c->ops->plan) DR_TRY(c->ops->plan(j, in));
    j->H = round_up(j->h, f);
    j->W = round_up(j->w, f);
    if ((int64_t)j->H * j->W > MAX_CANVAS_PIXELS)
        return error_set(DR_ERR_LIMIT, "image %dx%d is too large", j->w, j->h);
    float *rgb = NULL;
    DR_TRY(image_rgb_planes(in, &rgb));
    int rc = c->ops->build(j, in, mask, &rgb);
    free(rgb);
    if (rc == DR_OK) rc = ctx_network(c);
    return rc;
}

/* ------------------------------------------------------------------ output */

/* Unit RGB [3, canvas] result of the valid region -> out, with in's alpha. */
static int write_output(restore_ctx *c, const dr_image *in, const float *x, dr_image *out) {
    const mode_job *j = &c->job;
    const size_t np = (size_t)j->oh * j->ow;
    const int gray_in = in->channels <= 2, has_alpha = in->channels == 2 || in->channels == 4;
    const int color_out = (c->ops->info.flags & DR_MODE_COLOR_OUT) || !gray_in;
    const int channels = (color_out ? 3 : 1) + has_alpha;
    const unsigned maxv = in->depth == 16 ? 65535u : 255u;
    if (c->ops->write_begin) DR_TRY(c->ops->write_begin(&c->job, x));
    DR_TRY(dr_image_alloc(out, j->ow, j->oh, channels, in->depth));
    /* The conversions are per pixel, so they run over chunks of OUT_CHUNK
     * pixels in small planar buffers: two full-size [3, h, w] float copies
     * would be 400 MB more at the peak of a 4096x4096 superres. */
    enum { OUT_CHUNK = 16384 };
    float *rgb = malloc(sizeof(float) * 3 * OUT_CHUNK), *ycc = malloc(sizeof(float) * 3 * OUT_CHUNK);
    int rc = rgb && ycc ? DR_OK : error_set(DR_ERR_NOMEM, "out of memory for the output");
    for (size_t i0 = 0; rc == DR_OK && i0 < np; i0 += OUT_CHUNK) {
        const size_t k = np - i0 < OUT_CHUNK ? np - i0 : OUT_CHUNK; /* pixels in this chunk */
        c->ops->to_rgb(j, x, i0, k, rgb, ycc);
        if (!color_out) ip_rgb_to_ycbcr(rgb, ycc, k); /* gray in, gray out: the result's luma */
        for (size_t i = 0; i < k; i++) {
            uint16_t *o = out->data + (i0 + i) * channels;
            if (color_out)
                for (int ch = 0; ch < 3; ch++) o[ch] = mode_to_sample(rgb[ch * k + i], maxv);
            else
                o[0] = mode_to_sample(ycc[i], maxv);
        }
    }
    free(rgb);
    free(ycc);
    if (rc == DR_OK) {
        if (c->ops->finish)
            rc = c->ops->finish(j, in, out);
        else if (has_alpha)
            mode_copy_alpha(in, out);
    }
    if (rc != DR_OK) dr_image_free(out);
    return rc;
}

/* ------------------------------------------------------------------ API */

static int check_inputs(const restore_net *net, const dr_image *in, const dr_params *p) {
    if (!net || !in || !p) return error_set(DR_ERR_INVALID, "dr_restore: NULL argument");
    if (!in->data || in->width < 1 || in->height < 1 || in->channels < 1 || in->channels > 4 ||
        (in->depth != 8 && in->depth != 16))
        return error_set(DR_ERR_INVALID, "dr_restore: invalid input image");
    if (p->render_size != DR_RENDER_SIZE_AUTO && p->render_size != 0 &&
        (p->render_size < DR_RENDER_SIZE_MIN || p->render_size > DR_RENDER_SIZE_MAX))
        return error_set(DR_ERR_INVALID, "render size %d: 0 (full resolution) or %d..%d", p->render_size,
                         DR_RENDER_SIZE_MIN, DR_RENDER_SIZE_MAX);
    const mode_ops *ops = mode_ops_get(net->info->mode);
    if (p->render_size > 0 && !(ops && (ops->info.flags & DR_MODE_TAKES_RENDER_SIZE)))
        return error_set(DR_ERR_INVALID, "render size %d: a working resolution is only for colorize, not %s",
                         p->render_size, dr_mode_name(net->info->mode));
    if (!(p->guidance == DR_GUIDANCE_AUTO || (p->guidance >= 0 && p->guidance <= 20)))
        return error_set(DR_ERR_INVALID, "guidance %g: 0..20 (0 or 1: off)", p->guidance);
    if (guided(guidance_of(net, p)) && !(net->info->cond_dropout > 0))
        return error_set(DR_ERR_INVALID,
                         "guidance %g needs weights trained with conditioning dropout (train --cond-dropout); "
                         "these have no cond_dropout in their metadata",
                         p->guidance);
    if (p->steps < 1 || p->steps > net->info->timesteps)
        return error_set(DR_ERR_INVALID, "steps %d out of range 1..%d", p->steps, net->info->timesteps);
    return DR_OK;
}

int restore_samples(const restore_net *net, const dr_image *in, const dr_image *mask, const dr_params *p, int n,
                    dr_image *outs, dr_image *mean, dr_image *uncertainty) {
    DR_TRY(check_inputs(net, in, p));
    if (n < 1 || n > 1000) return error_set(DR_ERR_INVALID, "samples %d out of range 1..1000", n);
    noise_schedule sch;
    DR_TRY(noise_schedule_build(&sch, net->info->timesteps, net->info->schedule_linear));
    restore_ctx c;
    int rc = ctx_build(&c, net, &sch, in, mask, p);
    const size_t nx = (size_t)c.out_ch * c.job.H * c.job.W;
    float *x = NULL, *scratch = NULL;
    double *sum = NULL, *sum2 = NULL, *xsum = NULL;
    if (rc == DR_OK) rc = mode_alloc(&x, nx, "the sample");
    sample_options so = {p->sampler, p->steps, p->spacing, p->eta, 0};
    if (rc == DR_OK) rc = mode_alloc(&scratch, sample_scratch_floats(&so, nx), "the sampler");
    const size_t nout = 3 * (size_t)c.job.oh * c.job.ow;
    if (rc == DR_OK && (mean || uncertainty)) {
        sum = calloc(nout, sizeof(double));
        sum2 = calloc(nout, sizeof(double));
        if (!sum || !sum2) rc = error_set(DR_ERR_NOMEM, "out of memory");
    }
    /* colorize's mean is taken over the network's chroma and written once,
     * so the output keeps the input's luma exactly as a single sample does
     * (averaging the written RGB samples moved it by up to a level) */
    const int mean_of_x = mean && (c.ops->info.flags & DR_MODE_MEAN_OF_X);
    if (rc == DR_OK && mean_of_x && !(xsum = calloc(nx, sizeof(double))))
        rc = error_set(DR_ERR_NOMEM, "out of memory for the mean");
    denoiser dn = {predict, x0_hook, x_hook, on_progress, &c};
    c.steps_total = n * p->steps;
    for (int k = 0; rc == DR_OK && k < n; k++) {
        so.seed = p->seed + (uint64_t)k;
        c.step_base = k * p->steps;
        /* x_T: noise, with inpaint's known pixels already clean */
        rng_state rng;
        rng_derive(&rng, so.seed, 0, 0);
        rng_fill_normal(&rng, x, nx);
        x_hook(&c, x, sch.T - 1);
        rc = diffusion_sample(&sch, &so, &dn, x, nx, 0, scratch);
        if (rc != DR_OK) break;
        if (xsum)
            for (size_t i = 0; i < nx; i++) xsum[i] += x[i];
        dr_image tmp = {0};
        dr_image *dst = outs ? &outs[k] : &tmp;
        rc = write_output(&c, in, x, dst);
        if (rc == DR_OK && sum) { /* statistics on the written values, in unit terms */
            const unsigned maxv = dst->depth == 16 ? 65535u : 255u;
            const int cc = dst->channels - (dst->channels == 2 || dst->channels == 4);
            for (size_t i = 0; i < (size_t)c.job.oh * c.job.ow; i++)
                for (int ch = 0; ch < cc; ch++) {
                    const double v = dst->data[i * dst->channels + ch] / (double)maxv;
                    sum[ch * (size_t)c.job.oh * c.job.ow + i] += v;
                    sum2[ch * (size_t)c.job.oh * c.job.ow + i] += v * v;
                }
        }
        if (dst == &tmp) dr_image_free(&tmp);
    }
    if (rc == DR_OK && mean) { /* posterior mean: average of the samples, known pixels kept */
        dr_image first = {0};
        if (xsum) /* colorize: the mean chroma, written as a sample is */
            for (size_t i = 0; i < nx; i++) x[i] = (float)(xsum[i] / n);
        rc = write_output(&c, in, x, &first); /* same layout as the samples */
        if (rc == DR_OK && !xsum) {
            const unsigned maxv = first.depth == 16 ? 65535u : 255u;
            const int cc = first.channels - (first.channels == 2 || first.channels == 4);
            for (size_t i = 0; i < (size_t)c.job.oh * c.job.ow; i++) {
                if (c.job.gen && c.job.gen[(i / c.job.w) * c.job.W + i % c.job.w] < 0.5f) continue;
                for (int ch = 0; ch < cc; ch++)
                    first.data[i * first.channels + ch] =
                        (uint16_t)lround(fmin(fmax(sum[ch * (size_t)c.job.oh * c.job.ow + i] / n, 0.0), 1.0) * maxv);
            }
        }
        if (rc == DR_OK) *mean = first;
    }
    if (rc == DR_OK && uncertainty) { /* std over samples, mean over channels, as a heat map */
        rc = dr_image_alloc(uncertainty, c.job.ow, c.job.oh, 3, 8);
        const int cc = ((c.ops->info.flags & DR_MODE_COLOR_OUT) || in->channels > 2) ? 3 : 1;
        for (size_t i = 0; rc == DR_OK && i < (size_t)c.job.oh * c.job.ow; i++) {
            double s = 0;
            for (int ch = 0; ch < cc; ch++) {
                const double mu = sum[ch * (size_t)c.job.oh * c.job.ow + i] / n;
                s += sqrt(fmax(sum2[ch * (size_t)c.job.oh * c.job.ow + i] / n - mu * mu, 0.0));
            }
            const double u = fmin(1.0, s / cc / 0.125); /* full scale at a std of 1/8 of the range */
            uint16_t *o = uncertainty->data + i * 3;    /* black -> red -> yellow -> white */
            o[0] = (uint16_t)lround(255 * fmin(1.0, 3 * u));
            o[1] = (uint16_t)lround(255 * fmin(1.0, fmax(0.0, 3 * u - 1)));
            o[2] = (uint16_t)lround(255 * fmin(1.0, fmax(0.0, 3 * u - 2)));
        }
    }
    if (rc != DR_OK) {
        for (int k = 0; outs && k < n; k++) dr_image_free(&outs[k]);
        if (mean) dr_image_free(mean);
        if (uncertainty) dr_image_free(uncertainty);
    }
    free(x);
    free(scratch);
    free(sum);
    free(sum2);
    free(xsum);
    ctx_free(&c);
    noise_schedule_free(&sch);
    return rc;
}
