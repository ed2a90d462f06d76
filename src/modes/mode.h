/*
 * mode.h - a restoration mode is one file and one entry of mode_table
 * (mode_table.c): colorize.c, inpaint.c, superres.c each define a mode_ops,
 * and training, sampling, evaluation, the model loader and the CLI iterate
 * over the table instead of switching on the mode (docs/DESIGN.md, "Modes").
 *
 *   mode      target (x0 / target_scale)       cond                       in/out
 *   colorize  Cb, Cr: (v - 128) / 127.5        Y / 127.5 - 1              3 / 2
 *   inpaint   RGB                              RGB * (1 - hole), hole     7 / 3
 *   superres  HR - up(LR)                      up(LR), bicubic            6 / 3
 *
 * A "gen" map marks the pixels the diffusion generates: 1 everywhere except
 * inpaint's known pixels, which hold their clean x0 in x_t and are left out
 * of the loss (Palette's convention).
 *
 * A mode sees the restore only through a mode_job: the canvas (the output's
 * valid region h x w padded to H x W), its condition and gen map, and a state
 * of its own. It never sees the network or the sampler.
 */
#ifndef DR_MODES_MODE_H
#define DR_MODES_MODE_H

#include "common/rng.h"
#include "diffrestore.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* The range of target_scale a weights file may hold (MODEL.md): checked at
 * load, when training measures it, and at export. */
#define DR_TARGET_SCALE_MIN 1e-3
#define DR_TARGET_SCALE_MAX 1e3

/* What a weights file's metadata says beyond the network's shape. */
typedef struct {
    dr_unet_config cfg;
    dr_mode mode;
    int timesteps;
    int schedule_linear; /* 0: cosine */
    int predict_v;       /* 0: eps */
    float target_scale;
    float scale_min, scale_max; /* DR_MODE_TAKES_SCALE: the factors trained for; 1 otherwise */
    int render_size;            /* DR_MODE_TAKES_RENDER_SIZE: trained at this working long side (0: full resolution) */
    /* the fraction of training examples whose conditioning was zeroed (0: none): such
     * weights also model the unconditional case, which classifier-free guidance needs */
    float cond_dropout;
    /* the guidance weight restore uses by default (metadata guidance; 0: none,
     * and only with cond_dropout) */
    float guidance;
} model_info;

/* Options of the training degradations (each mode reads its own). */
typedef struct {
    float scale_min, scale_max; /* superres: factor range (2 .. 4) */
    float hole_min, hole_max;   /* inpaint: hole fraction range (0.05 .. 0.5) */
    dr_train_masks masks;       /* inpaint: ip_random_mask (legacy) or ip_damage_mask */
    dr_scale_dist scale_dist;   /* superres: how the factor is drawn per example */
} mode_train_options;

/* One restore in progress, as the mode sees it. */
typedef struct {
    const struct mode_ops *ops;
    const model_info *info;
    const dr_params *p;
    int H, W;    /* canvas (padded) */
    int h, w;    /* the output's valid region, top-left of the canvas */
    int oh, ow;  /* the output's size: h x w, except colorize at a working resolution */
    float ts;    /* target_scale */
    float *cond; /* [cond_ch, H, W] */
    float *gen;  /* [H * W], 1 = generated; NULL: every pixel is */
    void *state; /* the mode's own, freed by ops->free_state */
} mode_job;

typedef struct {
    dr_sampler sampler;
    int steps;
    double eta;
} mode_preset;

typedef struct mode_ops {
    dr_mode_info info;      /* what the public dr_mode_get returns: name, channels, DR_MODE_* flags */
    mode_preset presets[3]; /* indexed by dr_quality: default, fast, best (docs/TUNING.md) */
    const char *flat_data;  /* why training data can give a constant target (the target_scale message) */

    /* training: the mode's defaults of the degradation options (NULL: none) */
    void (*train_defaults)(mode_train_options *o);
    /* One training example from a clean RGB crop (unit values, planar [3, P, P]):
     * target [target_ch, P, P] (not yet multiplied by target_scale), cond
     * [cond_ch, P, P], gen [P * P] (set to 1 by the caller). tmp: mode_example_tmp(P). */
    int (*make_example)(const float *rgb, int P, const mode_train_options *o, rng_state *rng, float *target,
                        float *cond, float *gen, float *tmp);

    /* restore, in this order */
    /* the valid region h x w and the output's size oh x ow (NULL: the input's size) */
    int (*plan)(mode_job *j, const dr_image *in);
    /* cond, gen and the state, on the canvas; rgb: the input as unit RGB [3, ih, iw]
     * (gray replicated), which the mode may take (then it sets *rgb = NULL) */
    int (*build)(mode_job *j, const dr_image *in, const dr_image *mask, float **rgb);
    /* the x0 estimate of a step: clip to the target's range, project, hold known pixels */
    void (*clip_x0)(mode_job *j, float *x0);
    /* x after a step (and x_T): known pixels held clean (NULL: nothing) */
    void (*hold_x)(const mode_job *j, float *x);
    /* before the pixels are written (NULL: nothing) */
    int (*write_begin)(mode_job *j, const float *x);
    /* k output pixels from pixel i0 (row-major over oh x ow) as unit RGB [3, k];
     * ycc: [3, k] scratch */
    void (*to_rgb)(const mode_job *j, const float *x, size_t i0, size_t k, float *rgb, float *ycc);
    /* after the pixels: known pixels and alpha (NULL: alpha copied from the input) */
    int (*finish)(const mode_job *j, const dr_image *in, dr_image *out);
    void (*free_state)(mode_job *j);

    /* evaluation: the options that shape the cases, for a report's title (NULL: none) */
    void (*eval_describe)(const dr_eval_options *o, char *buf, size_t n);
    /* evaluation: the degraded input (and baseline, mask) of c->truth */
    int (*degrade)(dr_eval_case *c, const dr_eval_options *o, int index);
    /* the dr_eval_metrics fields the mode reports beyond PSNR and SSIM, in its
     * table's order (NULL-terminated; dr_eval_columns), and how it measures them */
    const char *const *eval_metrics;
    int (*score)(const dr_eval_case *c, const dr_image *out, dr_eval_metrics *m);
} mode_ops;

/* The table: NULL for an unknown mode. */
const mode_ops *mode_ops_get(dr_mode mode);
const mode_ops *mode_ops_by_name(const char *name);

/* "colorize, inpaint, ..." into buf: every mode's name, for messages. */
void mode_names(char *buf, size_t n);
/* The U-Net's in/out channels of mode: DR_OK, or DR_ERR_INVALID for an unknown mode. */
int mode_channels(dr_mode mode, int *in, int *out);

/* Defaults of the training degradations: every mode's train_defaults. */
void mode_train_options_init(mode_train_options *o);
/* Defaults of a model description for cfg and mode. */
void model_info_defaults(model_info *mi, const dr_unet_config *cfg, dr_mode mode);

/* The superres factor of one example, from one uniform draw u of rng:
 *   uniform: s = A + (B - A) u;
 *   high:    density of x = (s - A) / (B - A) on [0, 1] is (1 + 2x) / 2
 *            (3x as likely at B as at A), by inversion of its CDF
 *            (x + x^2) / 2: x = (sqrt(1 + 8u) - 1) / 2. Mean x 7/12, var 11/144.
 * A == B gives A. */
double mode_draw_scale(const mode_train_options *o, rng_state *rng);

/* tmp floats of make_example for a P x P crop */
size_t mode_example_tmp(int P);
/* One training example of mode (mode_ops.make_example, gen set to 1 first). */
int mode_make_example(dr_mode mode, const float *rgb, int P, const mode_train_options *o, rng_state *rng, float *target,
                      float *cond, float *gen, float *tmp);

/* ------------------------------------------------------ shared by the modes */

/* Inputs at inference are 8-bit images: quantize a synthetic degraded input
 * (values -1..1) the same way, so training sees what sampling will see. */
void mode_quantize8(float *x, size_t n);
/* *p = n floats, or DR_ERR_NOMEM naming what */
int mode_alloc(float **p, size_t n, const char *what);
/* C planes h x w padded by reflection to the job's canvas, into *out (allocated) */
int mode_pad(const mode_job *j, const float *in, int C, int h, int w, float **out, const char *what);
/* to_rgb of a mode whose x0 is the RGB image itself: x / target_scale */
void mode_to_rgb_x(const mode_job *j, const float *x, size_t i0, size_t k, float *rgb, float *ycc);
/* the input's alpha, unchanged, into out's last channel */
void mode_copy_alpha(const dr_image *in, dr_image *out);

/* A unit value (-1..1) as a sample of 0..maxv. */
static inline uint16_t mode_to_sample(float u, unsigned maxv) {
    double v = (u + 1.0) * 0.5 * maxv;
    v = v < 0 ? 0 : v > maxv ? maxv : v;
    return (uint16_t)lround(v);
}

static inline float mode_clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

#endif
