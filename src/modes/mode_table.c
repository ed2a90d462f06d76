/* mode_table.c - the one table of modes, and what the modes share.
 * A new mode: its file (see colorize.c for the shape) and one line here. */
#include "modes/mode.h"

#include "common/error.h"
#include "imgproc/imgproc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const mode_ops mode_colorize, mode_inpaint, mode_superres, mode_denoise;

/* in dr_mode order: mode_table[m - 1] is mode m */
static const mode_ops *const mode_table[] = {
    &mode_colorize,
    &mode_inpaint,
    &mode_superres,
    &mode_denoise,
};
#define N_MODES ((int)(sizeof mode_table / sizeof *mode_table))

const mode_ops *mode_ops_get(dr_mode mode) {
    const int i = (int)mode - 1;
    return i >= 0 && i < N_MODES && mode_table[i]->info.mode == mode ? mode_table[i] : NULL;
}

int dr_mode_count(void) { return N_MODES; }

const dr_mode_info *dr_mode_get(dr_mode mode) {
    const mode_ops *ops = mode_ops_get(mode);
    return ops ? &ops->info : NULL;
}

const mode_ops *mode_ops_by_name(const char *name) {
    for (int i = 0; name && i < N_MODES; i++)
        if (!strcmp(mode_table[i]->info.name, name)) return mode_table[i];
    return NULL;
}

void mode_names(char *buf, size_t n) {
    size_t o = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < N_MODES && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? ", " : "", mode_table[i]->info.name);
}

int mode_channels(dr_mode mode, int *in, int *out) {
    const mode_ops *ops = mode_ops_get(mode);
    if (!ops) return error_set(DR_ERR_INVALID, "unknown mode %d", (int)mode);
    *in = ops->info.in_channels;
    *out = ops->info.out_channels;
    return DR_OK;
}

void mode_train_options_init(mode_train_options *o) {
    memset(o, 0, sizeof *o);
    o->scale_min = o->scale_max = 1.0f;
    o->masks = DR_MASKS_LEGACY;
    o->scale_dist = DR_SCALE_DIST_UNIFORM;
    for (int i = 0; i < N_MODES; i++)
        if (mode_table[i]->train_defaults) mode_table[i]->train_defaults(o);
}

void model_info_defaults(model_info *mi, const dr_unet_config *cfg, dr_mode mode) {
    memset(mi, 0, sizeof *mi);
    mi->cfg = *cfg;
    mi->mode = mode;
    mi->timesteps = 1000;
    mi->target_scale = 1.0f;
    mi->scale_min = mi->scale_max = 1.0f;
    const mode_ops *ops = mode_ops_get(mode);
    if (ops && (ops->info.flags & DR_MODE_TAKES_SCALE)) {
        mode_train_options t;
        mode_train_options_init(&t);
        mi->scale_min = t.scale_min;
        mi->scale_max = t.scale_max;
    }
}

double mode_draw_scale(const mode_train_options *o, rng_state *rng) {
    const double u = rng_uniform(rng);
    const double x = o->scale_dist == DR_SCALE_DIST_HIGH ? 0.5 * (sqrt(1.0 + 8.0 * u) - 1.0) : u;
    return o->scale_min + (o->scale_max - o->scale_min) * x;
}

size_t mode_example_tmp(int P) {
    /* ycc [3, P, P], or LR [3, P, P] at most plus a resize buffer */
    return (size_t)3 * P * P * 3;
}

int mode_make_example(dr_mode mode, const float *rgb, int P, const mode_train_options *o, rng_state *rng, float *target,
                      float *cond, float *gen, float *tmp) {
    const mode_ops *ops = mode_ops_get(mode);
    if (!ops) return error_set(DR_ERR_INVALID, "unknown mode %d", (int)mode);
    const size_t np = (size_t)P * P;
    for (size_t i = 0; i < np; i++) gen[i] = 1.0f;
    return ops->make_example(rgb, P, o, rng, target, cond, gen, tmp);
}

void mode_quantize8(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = roundf((x[i] + 1.0f) * 127.5f);
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        x[i] = v / 127.5f - 1.0f;
    }
}

int mode_alloc(float **p, size_t n, const char *what) {
    *p = malloc(sizeof(float) * (n ? n : 1));
    if (!*p) return error_set(DR_ERR_NOMEM, "out of memory for %s (%zu values)", what, n);
    return DR_OK;
}

int mode_pad(const mode_job *j, const float *in, int C, int h, int w, float **out, const char *what) {
    DR_TRY(mode_alloc(out, (size_t)C * j->H * j->W, what));
    ip_pad_reflect(in, C, h, w, *out, j->H, j->W);
    return DR_OK;
}

void mode_to_rgb_x(const mode_job *j, const float *x, size_t i0, size_t k, float *rgb, float *ycc) {
    (void)ycc;
    const size_t canvas = (size_t)j->H * j->W;
    size_t y = i0 / j->ow, xx = i0 % j->ow; /* walked along, not divided out per pixel */
    for (size_t i = 0; i < k; i++) {
        const size_t ci = y * j->W + xx;
        for (int ch = 0; ch < 3; ch++) rgb[ch * k + i] = x[ch * canvas + ci] / j->ts;
        if (++xx == (size_t)j->ow) xx = 0, y++;
    }
}

void mode_copy_alpha(const dr_image *in, dr_image *out) {
    const size_t np = (size_t)out->width * out->height;
    const int ain = in->channels - 1, aout = out->channels - 1;
    for (size_t i = 0; i < np; i++) out->data[i * out->channels + aout] = in->data[i * in->channels + ain];
}
