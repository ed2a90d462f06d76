/*
 * restore.c - dr_restore: one image through a mode, the U-Net and a sampler.
 *
 * The diffusion runs on a canvas: the output's size padded by reflection to
 * a multiple of 2^(levels-1). x is [out_ch, H, W] on that canvas, cond is
 * [cond_ch, H, W]. The sampler sees the network only through predict(),
 * which runs the U-Net over overlapping tiles (when the canvas is larger
 * than the tile) and blends the outputs with raised-cosine weights, then
 * turns them into eps and x0 estimates. The mode's guarantees live in the
 * hooks:
 *   colorize - x0 (chroma) clipped to its range; the output keeps the input's Y.
 *              At a working resolution (render_size) the canvas holds the
 *              luma downscaled to a long side of R; the chroma is brought back
 *              to the input's size by guided upsampling on the full-size Y
 *              (imgproc_guided.h), and the output's Y is still the input's.
 *   inpaint  - known pixels of x0 and of x hold the clean values at every
 *              step (Palette); the output copies known pixels bit for bit.
 *   superres - the residual x0 is clipped so up + residual stays in range, then
 *              projected exactly onto { HR : downscale(HR) = LR }.
 */
#include "api/model_internal.h"
#include "common/error.h"
#include "common/rng.h"
#include "diffusion/diffusion.h"
#include "modes/imgproc.h"
#include "modes/imgproc_guided.h"
#include "modes/modes.h"
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TILE 256
#define DEFAULT_OVERLAP 32
#define TILE_BATCH 2 /* tiles per U-Net call */
#define MAX_CANVAS_PIXELS ((int64_t)1 << 28)
#define POCS_ITERS 8 /* superres: projection / range alternations per step */

const char *dr_spacing_name(dr_spacing s) {
    switch (s) {
    case DR_SPACING_TRAILING: return "trailing";
    case DR_SPACING_LEADING: return "leading";
    case DR_SPACING_LINSPACE: return "linspace";
    default: return "?";
    }
}

int dr_spacing_from_name(const char *name, dr_spacing *out) {
    if (name && !strcmp(name, "trailing")) *out = DR_SPACING_TRAILING;
    else if (name && !strcmp(name, "leading")) *out = DR_SPACING_LEADING;
    else if (name && !strcmp(name, "linspace")) *out = DR_SPACING_LINSPACE;
    else return dr_error(DR_ERR_INVALID, "unknown spacing '%s' (trailing, leading, linspace)", name ? name : "");
    return DR_OK;
}

/* Mode-independent defaults (the "best" column of the table below for
 * superres and inpaint). */
void dr_params_init(dr_params *p) {
    memset(p, 0, sizeof *p);
    p->sampler = DR_SAMPLER_DDIM;
    p->steps = 20;
    p->eta = 1.0;
    p->spacing = DR_SPACING_TRAILING;
    p->seed = 0;
    p->tile = DEFAULT_TILE;
    p->tile_overlap = DEFAULT_OVERLAP;
    p->render_size = DR_RENDER_SIZE_AUTO;
}

/* The presets, one row per mode, from the sampler sweeps on the validation
 * photos (docs/TUNING.md, "Presets"; the rule is in the header).
 * - Re-injected noise (eta 1) averages the model's errors away: it is the
 *   most accurate at 20 steps for superres and inpaint.
 * - Superres: SDE-DPM-Solver++(2M) at 6 steps is within 0.1 dB and 0.02 HF
 *   ratio of DDIM eta 1 at 20, at under a third of the network evaluations.
 * - Inpaint: SDE-DPM-Solver++ loses 0.3-0.5 dB of hole PSNR at every step
 *   count (the known pixels are pasted back at each step, which breaks the
 *   multistep history it extrapolates from), so it keeps DDIM, at 14 steps.
 * - Colorize samples deterministically: eta 1 washes its colours out toward
 *   gray (colourfulness 0.44 of the ground truth's against 0.72). */
typedef struct {
    dr_sampler sampler;
    int steps;
    double eta;
} preset;

static const struct {
    dr_mode mode;
    preset q[3]; /* indexed by dr_quality: default, fast, best */
} presets[] = {
    {DR_MODE_COLORIZE, {{DR_SAMPLER_DDIM, 20, 0}, {DR_SAMPLER_DDIM, 4, 0}, {DR_SAMPLER_DDIM, 20, 0}}},
    {DR_MODE_INPAINT, {{DR_SAMPLER_DDIM, 14, 1}, {DR_SAMPLER_DDIM, 4, 1}, {DR_SAMPLER_DDIM, 20, 1}}},
    {DR_MODE_SUPERRES, {{DR_SAMPLER_DPMPP_2M_SDE, 6, 1}, {DR_SAMPLER_DPMPP_2M_SDE, 4, 1}, {DR_SAMPLER_DDIM, 20, 1}}},
};

static const char *const quality_names[] = {"default", "fast", "best"};

const char *dr_quality_name(dr_quality q) {
    return (unsigned)q < sizeof quality_names / sizeof *quality_names ? quality_names[q] : "?";
}

int dr_quality_from_name(const char *name, dr_quality *out) {
    for (size_t i = 0; name && i < sizeof quality_names / sizeof *quality_names; i++)
        if (!strcmp(name, quality_names[i])) {
            *out = (dr_quality)i;
            return DR_OK;
        }
    return dr_error(DR_ERR_INVALID, "unknown preset '%s' (" DR_QUALITY_NAMES ")", name ? name : "");
}

static const preset *preset_find(dr_mode mode, dr_quality q) {
    if ((unsigned)q >= sizeof quality_names / sizeof *quality_names) return NULL;
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++)
        if (presets[i].mode == mode) return &presets[i].q[q];
    return NULL;
}

static void preset_apply(dr_params *p, const preset *ps) {
    p->sampler = ps->sampler;
    p->steps = ps->steps;
    p->eta = ps->eta;
}

int dr_params_init_quality(dr_params *p, dr_mode mode, dr_quality q) {
    dr_params_init(p);
    const preset *ps = preset_find(mode, q);
    if (!ps) return dr_error(DR_ERR_INVALID, "dr_params_init_quality: unknown mode %d or preset %d", (int)mode, (int)q);
    preset_apply(p, ps);
    return DR_OK;
}

/* An unknown mode keeps dr_params_init's values (and sets no error). */
void dr_params_init_mode(dr_params *p, dr_mode mode) {
    dr_params_init(p);
    const preset *ps = preset_find(mode, DR_QUALITY_DEFAULT);
    if (ps) preset_apply(p, ps);
}

/* ------------------------------------------------------------------ tiles */

int restore_all_tiles = 0;

typedef struct {
    int y0, x0;
} tile_pos;

typedef struct {
    int th, tw;      /* tile size (all tiles the same) */
    int n;
    tile_pos *pos;
    float *wy, *wx;  /* per tile: blend weights along y [n][th] and x [n][tw] */
    float *inv_wsum; /* [H * W] 1 / sum of the weights covering each pixel */
} tiling;

static void tiling_free(tiling *t) {
    free(t->pos);
    free(t->wy);
    free(t->wx);
    free(t->inv_wsum);
    memset(t, 0, sizeof *t);
}

/* Origins along one axis: tiles of size ts covering [0, n), spaced evenly,
 * snapped to multiples of f (the U-Net's downsampling phase), the last one
 * ending at n. */
static int axis_origins(int n, int ts, int overlap, int f, int *org) {
    if (ts >= n) {
        org[0] = 0;
        return 1;
    }
    const int step = ts - overlap;
    const int cnt = (n - overlap + step - 1) / step;
    for (int i = 0; i < cnt; i++) {
        int o = (int)((double)i * (n - ts) / (cnt - 1) + 0.5);
        o = o / f * f;
        if (i == cnt - 1) o = n - ts;
        org[i] = o;
    }
    return cnt;
}

/* Raised-cosine ramp over the part of the tile that overlaps a neighbour. */
static void axis_weights(float *w, int ts, int origin, int n, int lo_neighbor_end, int hi_neighbor_start) {
    for (int i = 0; i < ts; i++) {
        const int g = origin + i;
        double v = 1.0;
        if (lo_neighbor_end > origin && g < lo_neighbor_end) { /* ramp up across [origin, lo_neighbor_end) */
            double r = (g - origin + 0.5) / (lo_neighbor_end - origin);
            v = fmin(v, 0.5 - 0.5 * cos(M_PI * r));
        }
        if (hi_neighbor_start < origin + ts && g >= hi_neighbor_start) {
            double r = (origin + ts - g - 0.5) / (origin + ts - hi_neighbor_start);
            v = fmin(v, 0.5 - 0.5 * cos(M_PI * r));
        }
        w[i] = (float)fmax(v, 1e-3); /* never exactly 0: every pixel keeps a weight */
        (void)n;
    }
}

static int tiling_build(tiling *t, int H, int W, int tile, int overlap, int f) {
    memset(t, 0, sizeof *t);
    int ts = tile / f * f;
    if (ts < f) ts = f;
    int ov = overlap / f * f;
    if (ov >= ts) ov = ts / 2 / f * f;
    t->th = H < ts ? H : ts;
    t->tw = W < ts ? W : ts;
    int oy[4096], ox[4096];
    if (H / (ts - ov > 0 ? ts - ov : 1) > 4000 || W / (ts - ov > 0 ? ts - ov : 1) > 4000)
        return dr_error(DR_ERR_LIMIT, "image needs too many tiles; use a larger --tile");
    const int ny = axis_origins(H, t->th, ov, f, oy), nx = axis_origins(W, t->tw, ov, f, ox);
    t->n = ny * nx;
    t->pos = malloc(sizeof(tile_pos) * t->n);
    t->wy = malloc(sizeof(float) * (size_t)t->n * t->th);
    t->wx = malloc(sizeof(float) * (size_t)t->n * t->tw);
    t->inv_wsum = calloc((size_t)H * W, sizeof(float));
    if (!t->pos || !t->wy || !t->wx || !t->inv_wsum) {
        tiling_free(t);
        return dr_error(DR_ERR_NOMEM, "out of memory for %d tiles", ny * nx);
    }
    for (int iy = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++) {
            const int k = iy * nx + ix;
            t->pos[k].y0 = oy[iy];
            t->pos[k].x0 = ox[ix];
            axis_weights(t->wy + (size_t)k * t->th, t->th, oy[iy], H, iy > 0 ? oy[iy - 1] + t->th : 0,
                         iy + 1 < ny ? oy[iy + 1] : H);
            axis_weights(t->wx + (size_t)k * t->tw, t->tw, ox[ix], W, ix > 0 ? ox[ix - 1] + t->tw : 0,
                         ix + 1 < nx ? ox[ix + 1] : W);
            for (int y = 0; y < t->th; y++)
                for (int x = 0; x < t->tw; x++)
                    t->inv_wsum[(size_t)(oy[iy] + y) * W + ox[ix] + x] +=
                        t->wy[(size_t)k * t->th + y] * t->wx[(size_t)k * t->tw + x];
        }
    for (size_t i = 0; i < (size_t)H * W; i++) t->inv_wsum[i] = 1.0f / t->inv_wsum[i];
    return DR_OK;
}

/* ------------------------------------------------------------------ context */

typedef struct {
    dr_model *m;
    const dr_schedule *sch;
    dr_mode mode;
    int out_ch, cond_ch, in_ch;
    int H, W;       /* canvas (padded) */
    int h, w;       /* the output's valid region, top-left of the canvas */
    int oh, ow;     /* the output's size: h x w, except colorize at a working resolution */
    float *y_full;  /* colorize at a working resolution: the input's Y [oh, ow] */
    float ts;       /* target_scale */
    float *cond;    /* [cond_ch, H, W] */
    float *known;   /* inpaint: [out_ch, H, W] clean x0; NULL otherwise */
    float *gen;     /* inpaint: [H * W], 1 = hole */
    int alpha_is_mask; /* inpaint without a mask image */
    /* superres */
    ip_projector proj;
    int has_proj;
    float *lr;      /* [3, hl, wl] */
    float *hr_tmp;  /* [3, h, w] + projection tmp */
    /* network plumbing */
    tiling tl;
    int *active;    /* the tiles the network runs on: inpaint, those holding a hole pixel; else all */
    int n_active;
    unet_run run;
    float *tile_in, *tile_out, *tile_t;
    float *net;     /* [out_ch, H, W] blended network output */
    /* progress */
    const dr_params *p;
    int step_base, steps_total;
} restore_ctx;

static void ctx_free(restore_ctx *c) {
    free(c->cond);
    free(c->y_full);
    free(c->known);
    free(c->gen);
    if (c->has_proj) ip_projector_free(&c->proj);
    free(c->lr);
    free(c->hr_tmp);
    tiling_free(&c->tl);
    free(c->active);
    unet_run_free(&c->run);
    free(c->tile_in);
    free(c->tile_out);
    free(c->tile_t);
    free(c->net);
    memset(c, 0, sizeof *c);
}

/* The network over the active tiles, blended into c->net. Inpaint skips the
 * tiles without a hole pixel: a hole pixel gets blend weight only from tiles
 * that contain it (all active), and the network's output at known pixels is
 * never used (x0_hook and x_hook put the known values back), so the result
 * is bit-identical to running every tile (tests/test_restore.c). */
static int run_network(restore_ctx *c, const float *xt, int t) {
    const int th = c->tl.th, tw = c->tl.tw, H = c->H, W = c->W;
    const size_t tp = (size_t)th * tw, canvas = (size_t)H * W;
    const int single = c->tl.n == 1 && c->n_active == 1;
    if (!single) memset(c->net, 0, sizeof(float) * c->out_ch * canvas);
    for (int k0 = 0; k0 < c->n_active; k0 += c->run.B) {
        const int nb = c->n_active - k0 < c->run.B ? c->n_active - k0 : c->run.B;
        for (int b = 0; b < c->run.B; b++) { /* gather: [x_t, cond] of each tile (the last repeats if short) */
            const tile_pos *tpz = &c->tl.pos[c->active[k0 + (b < nb ? b : nb - 1)]];
            float *dst = c->tile_in + (size_t)b * c->in_ch * tp;
            for (int ch = 0; ch < c->in_ch; ch++) {
                const float *src = ch < c->out_ch ? xt + (size_t)ch * canvas : c->cond + (size_t)(ch - c->out_ch) * canvas;
                for (int y = 0; y < th; y++)
                    memcpy(dst + (size_t)ch * tp + (size_t)y * tw, src + (size_t)(tpz->y0 + y) * W + tpz->x0,
                           sizeof(float) * tw);
            }
            c->tile_t[b] = (float)t;
        }
        int rc = unet_forward(&c->run, &c->m->L, c->m->params, c->tile_in, c->tile_t, single ? c->net : c->tile_out);
        if (rc != DR_OK) return rc;
        if (c->p->progress_tile) c->p->progress_tile(k0 + nb, c->n_active, c->p->user);
        if (c->p->cancel && *c->p->cancel) /* a large photo's step can take minutes: stop between tiles */
            return dr_error(DR_ERR_CANCELLED, "cancelled in a sampler step, after %d of %d tiles", k0 + nb,
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

static int predict(void *user, const float *xt, int t, float *eps, float *x0) {
    restore_ctx *c = user;
    DR_TRY(run_network(c, xt, t));
    const double ab = c->sch->alpha_bar[t], sa = sqrt(ab), sb = sqrt(1.0 - ab);
    const size_t n = (size_t)c->out_ch * c->H * c->W;
    /* a NaN or Inf from the network (overflow) would be clamped by the
     * sampler into a flat, wrong picture: stop instead, nothing is written */
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) num_threads(nn_threads())
    for (size_t i = 0; i < n; i++) bad |= !isfinite(c->net[i]);
    if (bad) return dr_error(DR_ERR_NUMERIC, "the network produced a non-finite value at step t = %d: no output written", t);
    const int v = c->m->info.predict_v;
    const float *o = c->net;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (size_t i = 0; i < n; i++) {
        if (v) { /* v = sa eps - sb x0 */
            x0[i] = (float)(sa * xt[i] - sb * o[i]);
            eps[i] = (float)(sb * xt[i] + sa * o[i]);
        } else {
            eps[i] = o[i];
            x0[i] = (float)((xt[i] - sb * o[i]) / sa);
        }
    }
    return DR_OK;
}

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

static void x0_hook(void *user, float *x0, int t) {
    restore_ctx *c = user;
    (void)t;
    const size_t canvas = (size_t)c->H * c->W;
    const float ts = c->ts;
    switch (c->mode) {
    case DR_MODE_COLORIZE:
        for (size_t i = 0; i < 2 * canvas; i++) x0[i] = clampf(x0[i], -ts, ts);
        break;
    case DR_MODE_INPAINT:
        for (size_t i = 0; i < 3 * canvas; i++)
            x0[i] = c->gen[i % canvas] > 0.5f ? clampf(x0[i], -ts, ts) : c->known[i];
        break;
    case DR_MODE_SUPERRES: {
        /* residual range: up + r within -1..1 */
        for (size_t i = 0; i < 3 * canvas; i++) {
            const float up = c->cond[i];
            x0[i] = clampf(x0[i], (-1.0f - up) * ts, (1.0f - up) * ts);
        }
        /* HR = up + r / ts on the valid region must downscale to LR exactly
         * and stay within -1..1: alternate the exact projection with the box
         * (POCS: both sets are convex), ending with the projection */
        const size_t hw = (size_t)c->h * c->w;
        float *hr = c->hr_tmp, *tmp = c->hr_tmp + 3 * hw;
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < c->h; y++)
                for (int x = 0; x < c->w; x++) {
                    const size_t ci = (size_t)ch * canvas + (size_t)y * c->W + x;
                    hr[(size_t)ch * hw + (size_t)y * c->w + x] = c->cond[ci] + x0[ci] / ts;
                }
        for (int it = 0; it < POCS_ITERS; it++) {
            ip_project(&c->proj, hr, c->lr, 3, tmp);
            int outside = 0;
            for (size_t i = 0; i < 3 * hw; i++)
                if (hr[i] < -1.0f || hr[i] > 1.0f) {
                    hr[i] = clampf(hr[i], -1.0f, 1.0f);
                    outside = 1;
                }
            if (!outside) break;
            if (it == POCS_ITERS - 1) ip_project(&c->proj, hr, c->lr, 3, tmp);
        }
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < c->h; y++)
                for (int x = 0; x < c->w; x++) {
                    const size_t ci = (size_t)ch * canvas + (size_t)y * c->W + x;
                    x0[ci] = (hr[(size_t)ch * hw + (size_t)y * c->w + x] - c->cond[ci]) * ts;
                }
        break;
    }
    default: break;
    }
}

static void x_hook(void *user, float *x, int t_next) {
    restore_ctx *c = user;
    (void)t_next;
    if (c->mode != DR_MODE_INPAINT) return;
    const size_t canvas = (size_t)c->H * c->W;
    for (size_t i = 0; i < 3 * canvas; i++)
        if (c->gen[i % canvas] < 0.5f) x[i] = c->known[i];
}

static int on_progress(void *user, int step, int steps) {
    restore_ctx *c = user;
    (void)steps;
    if (c->p->progress) c->p->progress(c->step_base + step, c->steps_total, c->p->user);
    return c->p->cancel && *c->p->cancel;
}

/* ------------------------------------------------------------------ setup */

static int alloc_f(float **p, size_t n, const char *what) {
    *p = malloc(sizeof(float) * (n ? n : 1));
    if (!*p) return dr_error(DR_ERR_NOMEM, "out of memory for %s (%zu values)", what, n);
    return DR_OK;
}

/* Colour planes of an image as unit RGB [3, h, w] (gray replicated). */
static int image_rgb_planes(const dr_image *img, float **out) {
    const size_t np = (size_t)img->width * img->height;
    DR_TRY(alloc_f(out, 3 * np, "the input"));
    ip_to_planar(img, *out);
    if (img->channels <= 2) /* gray: replicate plane 0 */
        for (int c = 1; c < 3; c++) memcpy(*out + (size_t)c * np, *out, np * sizeof(float));
    return DR_OK;
}

static int pad_planes(const float *in, int C, int h, int w, int H, int W, float **out, const char *what) {
    DR_TRY(alloc_f(out, (size_t)C * H * W, what));
    ip_pad_reflect(in, C, h, w, *out, H, W);
    return DR_OK;
}

static int ctx_network(restore_ctx *c) {
    const int f = 1 << (c->m->info.cfg.n_levels - 1);
    const int tile = c->p->tile > 0 ? c->p->tile : DEFAULT_TILE;
    const int overlap = c->p->tile_overlap > 0 ? c->p->tile_overlap : DEFAULT_OVERLAP;
    DR_TRY(tiling_build(&c->tl, c->H, c->W, tile, overlap, f));
    c->active = malloc(sizeof(int) * c->tl.n);
    if (!c->active) return dr_error(DR_ERR_NOMEM, "out of memory for %d tiles", c->tl.n);
    c->n_active = 0;
    for (int k = 0; k < c->tl.n; k++) {
        int hole = c->mode != DR_MODE_INPAINT || restore_all_tiles;
        const tile_pos *tpz = &c->tl.pos[k];
        for (int y = 0; y < c->tl.th && !hole; y++)
            for (int x = 0; x < c->tl.tw && !hole; x++) hole = c->gen[(size_t)(tpz->y0 + y) * c->W + tpz->x0 + x] > 0.5f;
        if (hole) c->active[c->n_active++] = k;
    }
    const int B = c->tl.n < TILE_BATCH ? c->tl.n : TILE_BATCH;
    DR_TRY(unet_run_build(&c->run, &c->m->L, B, c->tl.th, c->tl.tw, 0));
    const size_t tp = (size_t)c->tl.th * c->tl.tw;
    DR_TRY(alloc_f(&c->tile_in, (size_t)B * c->in_ch * tp, "tiles"));
    DR_TRY(alloc_f(&c->tile_out, (size_t)B * c->out_ch * tp, "tiles"));
    DR_TRY(alloc_f(&c->tile_t, (size_t)B, "tiles"));
    DR_TRY(alloc_f(&c->net, (size_t)c->out_ch * c->H * c->W, "the network output"));
    return DR_OK;
}

static int round_up(int v, int f) { return (v + f - 1) / f * f; }

/* colorize: the long side of the working resolution (0 = full resolution);
 * DR_RENDER_SIZE_AUTO takes the weights' render_size. Other modes: 0. */
static int render_size(const dr_model *m, const dr_params *p) {
    if (m->info.mode != DR_MODE_COLORIZE) return 0;
    return p->render_size < 0 ? m->info.render_size : p->render_size;
}

/* Output size for superres, checked against the weights' scale range. */
static int superres_size(const restore_ctx *c, const dr_image *in, const dr_params *p, int *ho, int *wo) {
    double sy, sx;
    if (p->scale > 0) {
        *ho = (int)lround(in->height * p->scale);
        *wo = (int)lround(in->width * p->scale);
    } else if (p->out_width > 0 || p->out_height > 0) {
        const double s = p->out_width > 0 ? (double)p->out_width / in->width : (double)p->out_height / in->height;
        *wo = p->out_width > 0 ? p->out_width : (int)lround(in->width * s);
        *ho = p->out_height > 0 ? p->out_height : (int)lround(in->height * s);
    } else {
        return dr_error(DR_ERR_INVALID, "superres needs a scale or an output width or height");
    }
    sy = (double)*ho / in->height;
    sx = (double)*wo / in->width;
    const double lo = c->m->info.scale_min, hi = c->m->info.scale_max, tol = 0.02;
    if (sy < lo - tol || sy > hi + tol || sx < lo - tol || sx > hi + tol)
        return dr_error(DR_ERR_INVALID, "scale %.3gx%.3g is outside the range these weights were trained for (%g to %g)",
                        sx, sy, lo, hi);
    if ((int64_t)*ho * *wo > MAX_CANVAS_PIXELS)
        return dr_error(DR_ERR_LIMIT, "output %dx%d is too large", *wo, *ho);
    return DR_OK;
}

/* Mask planes (1 = hole) from a mask image or from in's alpha. */
static int hole_mask(const dr_image *in, const dr_image *mask, float *gen) {
    const size_t np = (size_t)in->width * in->height;
    const dr_image *src = mask;
    int ch = 0;
    if (!mask) {
        if (in->channels != 2 && in->channels != 4)
            return dr_error(DR_ERR_INVALID, "inpaint needs a mask: give one, or an input with an alpha channel");
        src = in;
        ch = in->channels - 1;
    } else if (mask->width != in->width || mask->height != in->height) {
        return dr_error(DR_ERR_INVALID, "mask is %dx%d but the image is %dx%d", mask->width, mask->height, in->width,
                        in->height);
    }
    const unsigned maxv = src->depth == 16 ? 65535u : 255u;
    for (size_t i = 0; i < np; i++) {
        const unsigned v = src->data[i * src->channels + ch];
        gen[i] = mask ? (v > maxv / 2 ? 1.0f : 0.0f) : (v <= maxv / 2 ? 1.0f : 0.0f); /* alpha: transparent = hole */
    }
    return DR_OK;
}

static int ctx_build(restore_ctx *c, dr_model *m, const dr_schedule *sch, const dr_image *in, const dr_image *mask,
                     const dr_params *p) {
    memset(c, 0, sizeof *c);
    c->m = m;
    c->sch = sch;
    c->p = p;
    c->mode = m->info.mode;
    c->ts = m->info.target_scale;
    mode_desc md;
    DR_TRY(mode_describe(c->mode, &md));
    c->out_ch = md.target_ch;
    c->cond_ch = md.cond_ch;
    c->in_ch = m->info.cfg.in_channels;
    const int f = 1 << (m->info.cfg.n_levels - 1);
    const size_t np_in = (size_t)in->width * in->height;
    c->h = in->height;
    c->w = in->width;
    if (c->mode == DR_MODE_SUPERRES) DR_TRY(superres_size(c, in, p, &c->h, &c->w));
    if (c->mode == DR_MODE_COLORIZE) ip_render_dims(in->height, in->width, render_size(m, p), &c->h, &c->w);
    c->oh = c->mode == DR_MODE_COLORIZE ? in->height : c->h;
    c->ow = c->mode == DR_MODE_COLORIZE ? in->width : c->w;
    c->H = round_up(c->h, f);
    c->W = round_up(c->w, f);
    if ((int64_t)c->H * c->W > MAX_CANVAS_PIXELS) return dr_error(DR_ERR_LIMIT, "image %dx%d is too large", c->w, c->h);
    const size_t canvas = (size_t)c->H * c->W;
    float *rgb = NULL, *tmp = NULL;
    int rc = image_rgb_planes(in, &rgb);
    if (rc != DR_OK) return rc;
    switch (c->mode) {
    case DR_MODE_COLORIZE: { /* cond = Y */
        if ((rc = alloc_f(&tmp, 3 * np_in, "colour planes")) != DR_OK) break;
        ip_rgb_to_ycbcr(rgb, tmp, np_in);
        if (c->h == in->height && c->w == in->width) {
            rc = pad_planes(tmp, 1, c->h, c->w, c->H, c->W, &c->cond, "the condition");
            break;
        }
        /* at a working resolution: cond = Y downscaled (antialiased bicubic, in
         * the Cb plane: h * w < np_in); the full-resolution Y is kept as the
         * guide of the chroma's upsampling and as the output's luma */
        float *ylo = tmp + np_in;
        if ((rc = ip_resize(tmp, 1, in->height, in->width, ylo, c->h, c->w)) != DR_OK) break;
        if ((rc = pad_planes(ylo, 1, c->h, c->w, c->H, c->W, &c->cond, "the condition")) != DR_OK) break;
        float *y = realloc(tmp, sizeof(float) * np_in);
        c->y_full = y ? y : tmp;
        tmp = NULL;
        break;
    }
    case DR_MODE_INPAINT: { /* cond = [RGB * (1 - m), m]; known = RGB * ts */
        if ((rc = alloc_f(&tmp, 4 * np_in, "the condition")) != DR_OK) break;
        float *g = tmp + 3 * np_in;
        if ((rc = hole_mask(in, mask, g)) != DR_OK) break;
        c->alpha_is_mask = mask == NULL;
        for (int ch = 0; ch < 3; ch++)
            for (size_t i = 0; i < np_in; i++) tmp[ch * np_in + i] = rgb[ch * np_in + i] * (1.0f - g[i]);
        if ((rc = pad_planes(tmp, 4, c->h, c->w, c->H, c->W, &c->cond, "the condition")) != DR_OK) break;
        if ((rc = alloc_f(&c->gen, canvas, "the mask")) != DR_OK) break;
        memcpy(c->gen, c->cond + 3 * canvas, sizeof(float) * canvas);
        if ((rc = pad_planes(rgb, 3, c->h, c->w, c->H, c->W, &c->known, "the known pixels")) != DR_OK) break;
        for (size_t i = 0; i < 3 * canvas; i++) c->known[i] *= c->ts;
        break;
    }
    case DR_MODE_SUPERRES: { /* cond = up(LR) bicubic; project onto downscale(HR) = LR */
        c->lr = rgb;
        rgb = NULL;
        if ((rc = alloc_f(&tmp, 3 * (size_t)c->h * c->w, "the upscaled input")) != DR_OK) break;
        if ((rc = ip_resize(c->lr, 3, in->height, in->width, tmp, c->h, c->w)) != DR_OK) break;
        if ((rc = pad_planes(tmp, 3, c->h, c->w, c->H, c->W, &c->cond, "the condition")) != DR_OK) break;
        if ((rc = ip_projector_build(&c->proj, c->h, c->w, in->height, in->width)) != DR_OK) break;
        c->has_proj = 1;
        rc = alloc_f(&c->hr_tmp, 3 * (size_t)c->h * c->w + ip_project_tmp_floats(&c->proj, 3), "the projection");
        break;
    }
    default: rc = dr_error(DR_ERR_INVALID, "model has no mode");
    }
    free(rgb);
    free(tmp);
    if (rc == DR_OK) rc = ctx_network(c);
    return rc;
}

/* ------------------------------------------------------------------ output */

static uint16_t to_sample(float u, unsigned maxv) {
    double v = (u + 1.0) * 0.5 * maxv;
    v = v < 0 ? 0 : v > maxv ? maxv : v;
    return (uint16_t)lround(v);
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

/* colorize at a working resolution: the chroma of the valid region of x
 * (x0 = target_scale * chroma) upsampled to the output's size, guided by the
 * full-resolution Y, into *q [2, oh, ow] (allocated). */
static int upsample_chroma(const restore_ctx *c, const float *x, float **q) {
    const size_t canvas = (size_t)c->H * c->W, n = (size_t)c->h * c->w;
    float *lo = malloc(sizeof(float) * 3 * n);
    *q = malloc(sizeof(float) * 2 * (size_t)c->oh * c->ow);
    int rc = lo && *q ? DR_OK : dr_error(DR_ERR_NOMEM, "out of memory for the chroma at %dx%d", c->ow, c->oh);
    if (rc == DR_OK) {
        for (int y = 0; y < c->h; y++) /* [Y, Cb, Cr] of the valid region, unit values */
            for (int xx = 0; xx < c->w; xx++) {
                const size_t ci = (size_t)y * c->W + xx, i = (size_t)y * c->w + xx;
                lo[i] = c->cond[ci];
                lo[n + i] = x[ci] / c->ts;
                lo[2 * n + i] = x[canvas + ci] / c->ts;
            }
        rc = ip_guided_upsample(lo, lo + n, 2, c->h, c->w, c->y_full, c->oh, c->ow, IP_GUIDED_RADIUS, IP_GUIDED_EPS, *q);
    }
    free(lo);
    if (rc != DR_OK) {
        free(*q);
        *q = NULL;
    }
    return rc;
}

/* Unit RGB [3, canvas] result of the valid region -> out, with in's alpha. */
static int write_output(const restore_ctx *c, const dr_image *in, const float *x, dr_image *out) {
    const size_t canvas = (size_t)c->H * c->W, np = (size_t)c->oh * c->ow;
    const int gray_in = in->channels <= 2, has_alpha = in->channels == 2 || in->channels == 4;
    const int color_out = c->mode == DR_MODE_COLORIZE || !gray_in;
    const int channels = (color_out ? 3 : 1) + has_alpha;
    const unsigned maxv = in->depth == 16 ? 65535u : 255u;
    /* colorize's Y and chroma: the canvas (stride W, chroma x / ts), or at a
     * working resolution the full-resolution Y and the upsampled chroma
     * (stride ow, already in unit values: / 1 is exact) */
    const float *ysrc = c->cond, *csrc = x;
    float cdiv = c->ts, *q = NULL;
    size_t stride = (size_t)c->W, cplane = canvas;
    if (c->y_full) {
        DR_TRY(upsample_chroma(c, x, &q));
        ysrc = c->y_full;
        csrc = q;
        cdiv = 1.0f;
        stride = (size_t)c->ow;
        cplane = np;
    }
    int arc = dr_image_alloc(out, c->ow, c->oh, channels, in->depth);
    if (arc != DR_OK) {
        free(q);
        return arc;
    }
    /* The conversions are per pixel, so they run over chunks of OUT_CHUNK
     * pixels in small planar buffers: two full-size [3, h, w] float copies
     * would be 400 MB more at the peak of a 4096x4096 superres. */
    enum { OUT_CHUNK = 16384 };
    float *rgb = malloc(sizeof(float) * 3 * OUT_CHUNK), *ycc = malloc(sizeof(float) * 3 * OUT_CHUNK);
    if (!rgb || !ycc) {
        free(rgb);
        free(ycc);
        free(q);
        dr_image_free(out);
        return dr_error(DR_ERR_NOMEM, "out of memory for the output");
    }
    for (size_t i0 = 0; i0 < np; i0 += OUT_CHUNK) {
        const size_t k = np - i0 < OUT_CHUNK ? np - i0 : OUT_CHUNK; /* pixels in this chunk */
        size_t y = i0 / c->ow, xx = i0 % c->ow; /* walked along, not divided out per pixel */
        for (size_t j = 0; j < k; j++) {
            const size_t ci = y * c->W + xx;
            for (int ch = 0; ch < 3; ch++) {
                if (c->mode == DR_MODE_COLORIZE) { /* Y from the input, chroma generated */
                    const size_t cj = y * stride + xx;
                    ycc[ch * k + j] = ch == 0 ? ysrc[cj] : csrc[(ch - 1) * cplane + cj] / cdiv;
                }
                else if (c->mode == DR_MODE_SUPERRES)
                    rgb[ch * k + j] = c->cond[ch * canvas + ci] + x[ch * canvas + ci] / c->ts;
                else
                    rgb[ch * k + j] = x[ch * canvas + ci] / c->ts;
            }
            if (++xx == (size_t)c->ow) xx = 0, y++;
        }
        if (c->mode == DR_MODE_COLORIZE) {
            ip_ycbcr_to_rgb(ycc, rgb, k);
            gamut_map(ycc, rgb, k);
        }
        if (!color_out) ip_rgb_to_ycbcr(rgb, ycc, k); /* gray in, gray out: the result's luma */
        for (size_t j = 0; j < k; j++) {
            uint16_t *o = out->data + (i0 + j) * channels;
            if (color_out)
                for (int ch = 0; ch < 3; ch++) o[ch] = to_sample(rgb[ch * k + j], maxv);
            else
                o[0] = to_sample(ycc[j], maxv);
        }
    }
    free(rgb);
    free(ycc);
    free(q);
    /* inpaint: known pixels (colour and alpha) are the input's, bit for bit */
    if (c->mode == DR_MODE_INPAINT) {
        for (int y = 0; y < c->h; y++)
            for (int xx = 0; xx < c->w; xx++) {
                if (c->gen[(size_t)y * c->W + xx] > 0.5f) continue;
                const size_t i = (size_t)y * c->w + xx;
                const uint16_t *s = in->data + i * in->channels;
                uint16_t *o = out->data + i * channels;
                if (color_out && gray_in) o[0] = o[1] = o[2] = s[0];
                else for (int ch = 0; ch < (color_out ? 3 : 1); ch++) o[ch] = s[ch];
            }
    }
    if (has_alpha) {
        const int ain = in->channels - 1, aout = channels - 1;
        if (c->mode == DR_MODE_SUPERRES) { /* alpha upscaled bicubically */
            const size_t nin = (size_t)in->width * in->height;
            float *a = malloc(sizeof(float) * nin), *b = malloc(sizeof(float) * np);
            int rc = a && b ? DR_OK : dr_error(DR_ERR_NOMEM, "out of memory for alpha");
            if (rc == DR_OK) {
                for (size_t i = 0; i < nin; i++) a[i] = in->data[i * in->channels + ain] / (float)maxv * 2.0f - 1.0f;
                rc = ip_resize(a, 1, in->height, in->width, b, c->h, c->w);
            }
            for (size_t i = 0; rc == DR_OK && i < np; i++) out->data[i * channels + aout] = to_sample(b[i], maxv);
            free(a);
            free(b);
            if (rc != DR_OK) {
                dr_image_free(out);
                return rc;
            }
        } else {
            for (size_t i = 0; i < np; i++) out->data[i * channels + aout] = in->data[i * in->channels + ain];
            if (c->mode == DR_MODE_INPAINT && c->alpha_is_mask) /* the filled hole is no longer transparent */
                for (int y = 0; y < c->h; y++)
                    for (int xx = 0; xx < c->w; xx++)
                        if (c->gen[(size_t)y * c->W + xx] > 0.5f) out->data[((size_t)y * c->w + xx) * channels + aout] = (uint16_t)maxv;
        }
    }
    return DR_OK;
}

/* ------------------------------------------------------------------ API */

static int check_inputs(dr_model *m, const dr_image *in, const dr_params *p) {
    if (!m || !in || !p) return dr_error(DR_ERR_INVALID, "dr_restore: NULL argument");
    if (!in->data || in->width < 1 || in->height < 1 || in->channels < 1 || in->channels > 4 ||
        (in->depth != 8 && in->depth != 16))
        return dr_error(DR_ERR_INVALID, "dr_restore: invalid input image");
    if (p->render_size != DR_RENDER_SIZE_AUTO && p->render_size != 0 &&
        (p->render_size < DR_RENDER_SIZE_MIN || p->render_size > DR_RENDER_SIZE_MAX))
        return dr_error(DR_ERR_INVALID, "render size %d: 0 (full resolution) or %d..%d", p->render_size,
                        DR_RENDER_SIZE_MIN, DR_RENDER_SIZE_MAX);
    if (p->render_size > 0 && m->info.mode != DR_MODE_COLORIZE)
        return dr_error(DR_ERR_INVALID, "render size %d: a working resolution is only for colorize, not %s",
                        p->render_size, dr_mode_name(m->info.mode));
    if (p->steps < 1 || p->steps > m->info.timesteps)
        return dr_error(DR_ERR_INVALID, "steps %d out of range 1..%d", p->steps, m->info.timesteps);
    return DR_OK;
}

int dr_restore_samples(dr_model *m, const dr_image *in, const dr_image *mask, const dr_params *p, int n,
                       dr_image *outs, dr_image *mean, dr_image *uncertainty) {
    DR_TRY(check_inputs(m, in, p));
    if (n < 1 || n > 1000) return dr_error(DR_ERR_INVALID, "samples %d out of range 1..1000", n);
    dr_schedule sch;
    DR_TRY(dr_schedule_build(&sch, m->info.timesteps, m->info.schedule_linear));
    restore_ctx c;
    int rc = ctx_build(&c, m, &sch, in, mask, p);
    const size_t nx = (size_t)c.out_ch * c.H * c.W;
    float *x = NULL, *scratch = NULL;
    double *sum = NULL, *sum2 = NULL, *xsum = NULL;
    if (rc == DR_OK) rc = alloc_f(&x, nx, "the sample");
    dr_sample_options so = {p->sampler, p->steps, p->spacing, p->eta, 0};
    if (rc == DR_OK) rc = alloc_f(&scratch, dr_sample_scratch_floats(&so, nx), "the sampler");
    const size_t nout = 3 * (size_t)c.oh * c.ow;
    if (rc == DR_OK && (mean || uncertainty)) {
        sum = calloc(nout, sizeof(double));
        sum2 = calloc(nout, sizeof(double));
        if (!sum || !sum2) rc = dr_error(DR_ERR_NOMEM, "out of memory");
    }
    /* colorize's mean is taken over the network's chroma and written once,
     * so the output keeps the input's luma exactly as a single sample does
     * (averaging the written RGB samples moved it by up to a level) */
    const int mean_of_x = mean && c.mode == DR_MODE_COLORIZE;
    if (rc == DR_OK && mean_of_x && !(xsum = calloc(nx, sizeof(double))))
        rc = dr_error(DR_ERR_NOMEM, "out of memory for the mean");
    dr_denoiser dn = {predict, x0_hook, x_hook, on_progress, &c};
    c.steps_total = n * p->steps;
    for (int k = 0; rc == DR_OK && k < n; k++) {
        so.seed = p->seed + (uint64_t)k;
        c.step_base = k * p->steps;
        /* x_T: noise, with inpaint's known pixels already clean */
        dr_rng rng;
        dr_rng_derive(&rng, so.seed, 0, 0);
        dr_rng_fill_normal(&rng, x, nx);
        x_hook(&c, x, sch.T - 1);
        rc = dr_sample(&sch, &so, &dn, x, nx, 0, scratch);
        if (rc != DR_OK) break;
        if (xsum)
            for (size_t i = 0; i < nx; i++) xsum[i] += x[i];
        dr_image tmp = {0};
        dr_image *dst = outs ? &outs[k] : &tmp;
        rc = write_output(&c, in, x, dst);
        if (rc == DR_OK && sum) { /* statistics on the written values, in unit terms */
            const unsigned maxv = dst->depth == 16 ? 65535u : 255u;
            const int cc = dst->channels - (dst->channels == 2 || dst->channels == 4);
            for (size_t i = 0; i < (size_t)c.oh * c.ow; i++)
                for (int ch = 0; ch < cc; ch++) {
                    const double v = dst->data[i * dst->channels + ch] / (double)maxv;
                    sum[ch * (size_t)c.oh * c.ow + i] += v;
                    sum2[ch * (size_t)c.oh * c.ow + i] += v * v;
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
            for (size_t i = 0; i < (size_t)c.oh * c.ow; i++) {
                if (c.mode == DR_MODE_INPAINT && c.gen[(i / c.w) * c.W + i % c.w] < 0.5f) continue;
                for (int ch = 0; ch < cc; ch++)
                    first.data[i * first.channels + ch] =
                        (uint16_t)lround(fmin(fmax(sum[ch * (size_t)c.oh * c.ow + i] / n, 0.0), 1.0) * maxv);
            }
        }
        if (rc == DR_OK) *mean = first;
    }
    if (rc == DR_OK && uncertainty) { /* std over samples, mean over channels, as a heat map */
        rc = dr_image_alloc(uncertainty, c.ow, c.oh, 3, 8);
        const int cc = (c.mode == DR_MODE_COLORIZE || in->channels > 2) ? 3 : 1;
        for (size_t i = 0; rc == DR_OK && i < (size_t)c.oh * c.ow; i++) {
            double s = 0;
            for (int ch = 0; ch < cc; ch++) {
                const double mu = sum[ch * (size_t)c.oh * c.ow + i] / n;
                s += sqrt(fmax(sum2[ch * (size_t)c.oh * c.ow + i] / n - mu * mu, 0.0));
            }
            const double u = fmin(1.0, s / cc / 0.125); /* full scale at a std of 1/8 of the range */
            uint16_t *o = uncertainty->data + i * 3;      /* black -> red -> yellow -> white */
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
    dr_schedule_free(&sch);
    return rc;
}

int dr_restore(dr_model *m, const dr_image *in, const dr_image *mask, const dr_params *p, dr_image *out) {
    if (!out) return dr_error(DR_ERR_INVALID, "dr_restore: NULL output");
    memset(out, 0, sizeof *out);
    return dr_restore_samples(m, in, mask, p, 1, out, NULL, NULL);
}
