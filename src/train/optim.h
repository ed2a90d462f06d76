/* optim.h - the optimizer step and the EMA of the weights. */
#ifndef DR_TRAIN_OPTIM_H
#define DR_TRAIN_OPTIM_H

#include "train/train_state.h"

/* AdamW (b1 0.9, b2 0.999, eps 1e-8, bias-corrected) on st->params from
 * st->grads scaled by clip_scale; weight decay only on tensors of rank >= 2. */
void adamw_update(train_state *st, double lr, double clip_scale);
/* ema = d ema + (1 - d) params, d = min(ema_decay, (1 + s) / (10 + s)) with
 * s = st->ema_warmup_start + st->step. */
void ema_update(train_state *st);
/* The same update for any EMA block of n floats (ema_update's, and the
 * probes' of train --ema-probe) with decay cap `decay` at step `step`. */
void ema_update_block(float *ema, const float *params, size_t n, double decay, int step);
double ema_decay_at(double decay, int step);
/* The learning rate of step `step` (0-based): the linear warmup, then o->lr,
 * then the anneal's halvings over the last o->anneal_steps before o->steps. */
double train_lr_at(const dr_train_options *o, int step);

#endif
