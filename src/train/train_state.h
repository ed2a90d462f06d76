/* train_state.h - what training holds: the options, the model description,
 * and parameters, gradients, Adam's moments and the EMA, one allocation each
 * (train_state.c). */
#ifndef DR_TRAIN_TRAIN_STATE_H
#define DR_TRAIN_TRAIN_STATE_H

#include "api/model_internal.h"

typedef struct {
    dr_train_options opt; /* string fields are the caller's; not saved */
    model_info info;
    unet_layout L;
    float *params, *grads, *adam_m, *adam_v, *ema; /* L.n_floats each */
    int step;
    int init_steps; /* train_steps of the --init weights (0 for a fresh start) */
    /* The EMA's warm-up cap min(decay, (1 + s) / (10 + s)) counts s from this
     * step: init_steps for a run started with --init (the weights are an EMA
     * already, so a continued lineage keeps averaging over its full horizon);
     * 0 for a fresh start, and in checkpoints written before it existed
     * (their runs go on as they started). */
    int ema_warmup_start;
    double loss_smooth;
    double cpu_seconds; /* training CPU time so far, summed over resumes (0 in older checkpoints) */
    int ranks;          /* how many ranks trained the last steps (metadata 'ranks'; 1 in older checkpoints) */
    uint64_t data_hash;
    char data_dir[512]; /* where the data came from, for the exported weights' provenance */
} train_state;

/* A fresh state: ADM-style init (the last conv of every residual branch and
 * the output conv start at zero, so the network starts as an identity-ish map
 * and the loss starts at the target's variance). */
int train_state_new(train_state *st, const dr_train_options *o);
void train_state_free(train_state *st);
/* A state whose weights and EMA are o->init_path's (train --init): it takes
 * that file's config, model metadata and train_steps; o->mode, if set, must
 * match. Adam starts at zero. */
int train_state_from_weights(train_state *st, const dr_train_options *o);

/* params, grads, Adam's moments and the EMA for st->L (built from st->info). */
int train_state_alloc(train_state *st);

#endif
