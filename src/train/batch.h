/* batch.h - a training batch: crops degraded by the mode, x_t and the
 * regression target; the loss and the validation numbers (batch.c). */
#ifndef DR_TRAIN_BATCH_H
#define DR_TRAIN_BATCH_H

#include "diffusion/diffusion.h"
#include "modes/mode.h"
#include "train/dataset.h"
#include "train/train_state.h"

#define VAL_SEED_SALT 0x76616c6964617465ULL /* "validate" */
/* Crops per validation batch, whatever the training batch: the val set must
 * not change with the recipe, or runs at different batch sizes are measured
 * on different crops (16: every shipped model's batch, so the history keeps
 * its scale). */
#define VAL_BATCH     16

/* Everything one training step touches, built once. */
typedef struct {
    const train_state *st;
    mode_train_options mo;
    mode_train_options mo_val; /* validation: legacy masks, uniform scales, whatever the recipe */
    int B, P;
    size_t np;     /* P * P */
    float *x_in;   /* [B, in, P, P]: x_t then cond */
    float *target; /* [B, out, P, P]: eps or v */
    float *gen;    /* [B, P * P]: 1 where the loss counts */
    float *y, *dy; /* [B, out, P, P] */
    float *t;      /* [B] timestep of each sample */
    float *w;      /* [B] loss weight of each sample (Min-SNR; 1 when uniform) */
    float *work;   /* per-sample scratch: crop, example, tmp */
    size_t work_per_sample;
    unet_run run;
} train_batch;

/* Validation crops per forward at patch P: the whole VAL_BATCH up to 128 pixels
 * (as every earlier validation ran), fewer above, so the activations stay those
 * of 16 crops of 128 (about 2.5 GB at 256 pixels instead of 10). */
int val_run_batch(int P);

void train_batch_free(train_batch *bb);
/* Buffers for a batch of B samples; the U-Net run is planned for run_B of
 * them at a time (training: 1, each sample's own forward and backward). */
int train_batch_build(train_batch *bb, const train_state *st, const dataset *ds, int B, int P, int run_B);
/* Fill samples lo..hi-1 of the batch for (seed, step): inputs, targets, and t
 * in bb->t. */
int fill_batch(train_batch *bb, const dataset *ds, const noise_schedule *sch, uint64_t seed, uint64_t step,
               float target_scale, int val, int lo, int hi);
/* Loss = mean of w_b (y - target)^2 over generated pixels (weighted: 0 for
 * validation); dy = d loss / d y when want_grad. */
double loss_and_grad(train_batch *bb, int want_grad, int weighted);
/* target_scale from the target's std over a few fixed crops (batch.c). */
float measure_target_scale(const train_state *st, const dataset *ds);
/* Val loss of weights w on fixed crops, t and noise; *x0_mse the implied x0's
 * error; band (DR_VAL_T_BANDS values, may be NULL) that error by noise level
 * and band_crops (may be NULL) the crops in each band. */
double val_loss(train_state *st, const float *w, train_batch *bb, const dataset *val, const noise_schedule *sch,
                uint64_t vseed, double *x0_mse, double *band, int *band_crops);

#endif
