/*
 * modes.h - what each restoration mode generates and conditions on
 * (MODEL.md, "Modes"), for training examples and for sampling.
 *
 *   mode      target (x0 / target_scale)       cond                       in/out
 *   colorize  Cb, Cr: (v - 128) / 127.5        Y / 127.5 - 1              3 / 2
 *   inpaint   RGB                              RGB * (1 - hole), hole     7 / 3
 *   superres  HR - up(LR)                      up(LR), bicubic            6 / 3
 *
 * A "gen" map marks the pixels the diffusion generates: 1 everywhere except
 * inpaint's known pixels, which hold their clean x0 in x_t and are left out
 * of the loss (Palette's convention).
 */
#ifndef DR_MODES_H
#define DR_MODES_H

#include "common/rng.h"
#include "diffrestore.h"

#include <stddef.h>

typedef struct {
    dr_mode mode;
    int target_ch, cond_ch; /* out_channels, in_channels - out_channels */
} mode_desc;

int mode_describe(dr_mode mode, mode_desc *d);

/* Tests only: when set, inpaint runs the network on every tile, the
 * reference that skipping the tiles without holes must equal bit for bit. */
extern int restore_all_tiles;

/* Options of the training degradations. */
typedef struct {
    float scale_min, scale_max;       /* superres: factor range (2 .. 4) */
    float hole_min, hole_max;         /* inpaint: hole fraction range (0.05 .. 0.5) */
    dr_train_masks masks;             /* inpaint: ip_random_mask (legacy) or ip_damage_mask */
    dr_scale_dist scale_dist;         /* superres: how the factor is drawn per example */
} mode_train_options;

void mode_train_options_init(mode_train_options *o);

/* The superres factor of one example, from one uniform draw u of rng:
 *   uniform: s = A + (B - A) u;
 *   high:    density of x = (s - A) / (B - A) on [0, 1] is (1 + 2x) / 2
 *            (3x as likely at B as at A), by inversion of its CDF
 *            (x + x^2) / 2: x = (sqrt(1 + 8u) - 1) / 2. Mean x 7/12, var 11/144.
 * A == B gives A. */
double mode_draw_scale(const mode_train_options *o, dr_rng *rng);

/* One training example from a clean RGB crop (unit values, planar [3, P, P]):
 * target [target_ch, P, P] (not yet multiplied by target_scale), cond
 * [cond_ch, P, P], gen [P * P]. tmp: at least mode_example_tmp(P) floats.
 * Returns DR_OK or an error (allocation in the resampler). */
size_t mode_example_tmp(int P);
int mode_make_example(dr_mode mode, const float *rgb, int P, const mode_train_options *o, dr_rng *rng,
                      float *target, float *cond, float *gen, float *tmp);

#endif
