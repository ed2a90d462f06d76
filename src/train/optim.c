/* optim.c - AdamW and the weight EMA over the one-allocation parameter block. */
#include "train/optim.h"

#include "nn/nn.h"

#include <math.h>

/* AdamW; weight decay only on weights of rank >= 2 (not biases, not norms).
 * The arithmetic is double and IEEE (each division and the square root
 * correctly rounded), so it vectorizes without changing a bit: this file is
 * built with -fno-math-errno (CMakeLists.txt), which lets sqrt become one
 * vector instruction instead of a call that may set errno. */
void adamw_update(train_state *st, double lr, double clip_scale) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const double t = (double)st->step + 1;
    const double c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t);
    const unet_layout *L = &st->L;
    for (int p = 0; p < L->n_params; p++) {
        const unet_param *pr = &L->params[p];
        const double wd = pr->ndim >= 2 ? st->opt.weight_decay : 0.0;
        float *restrict w = st->params + pr->offset, *restrict m = st->adam_m + pr->offset;
        float *restrict v = st->adam_v + pr->offset;
        const float *restrict g = st->grads + pr->offset;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
        for (size_t i = 0; i < pr->numel; i++) {
            const double gi = g[i] * clip_scale;
            m[i] = (float)(b1 * m[i] + (1 - b1) * gi);
            v[i] = (float)(b2 * v[i] + (1 - b2) * gi * gi);
            const double upd = (m[i] / c1) / (sqrt(v[i] / c2) + eps);
            w[i] = (float)(w[i] - lr * (upd + wd * w[i]));
        }
    }
}

double ema_decay_at(double decay, int step) {
    const double warm = (1.0 + step) / (10.0 + step);
    return warm < decay ? warm : decay; /* early on the EMA follows the weights more closely */
}

void ema_update_block(float *ema, const float *params, size_t n, double decay, int step) {
    const double d = ema_decay_at(decay, step);
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (size_t i = 0; i < n; i++) ema[i] = (float)(d * ema[i] + (1 - d) * params[i]);
}

void ema_update(train_state *st) {
    ema_update_block(st->ema, st->params, st->L.n_floats, st->opt.ema_decay, st->ema_warmup_start + st->step);
}

double train_lr_at(const dr_train_options *o, int step) {
    double lr = o->lr * fmin(1.0, (step + 1.0) / fmax(1.0, o->warmup_steps));
    const int a0 = o->steps - o->anneal_steps; /* the anneal's first step */
    if (o->anneal_steps > 0 && o->anneal_stages > 0 && step >= a0) {
        /* stage k = 1..K of K equal stages: lr / 2^k (steps past the window
         * stay in its last stage) */
        long k = 1 + (long)(step - a0) * o->anneal_stages / o->anneal_steps;
        if (k > o->anneal_stages) k = o->anneal_stages;
        lr = ldexp(lr, -(int)k);
    }
    return lr;
}
