/* batch.c - a training batch (batch.h). */
#include "train/batch.h"

#include "common/error.h"
#include "common/rng.h"
#include "nn/nn.h"
#include "train/weighting.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void train_batch_free(train_batch *bb) {
    free(bb->x_in);
    free(bb->target);
    free(bb->gen);
    free(bb->y);
    free(bb->dy);
    free(bb->t);
    free(bb->w);
    free(bb->work);
    unet_run_free(&bb->run);
    memset(bb, 0, sizeof *bb);
}

/* Buffers for a batch of B samples; the U-Net run is planned for run_B of
 * them at a time (training: 1, each sample's own forward and backward). */
int train_batch_build(train_batch *bb, const train_state *st, const dataset *ds, int B, int P, int run_B) {
    memset(bb, 0, sizeof *bb);
    bb->st = st;
    if (!mode_ops_get(st->info.mode)) return error_set(DR_ERR_INVALID, "unknown mode %d", (int)st->info.mode);
    mode_train_options_init(&bb->mo);
    bb->mo.scale_min = st->opt.scale_min;
    bb->mo.scale_max = st->opt.scale_max;
    bb->mo.hole_min = st->opt.hole_min;
    bb->mo.hole_max = st->opt.hole_max;
    bb->mo_val = bb->mo;
    bb->mo.masks = st->opt.masks;
    bb->mo.scale_dist = st->opt.scale_dist;
    bb->B = B;
    bb->P = P;
    bb->np = (size_t)P * P;
    const int in = st->info.cfg.in_channels, out = st->info.cfg.out_channels;
    size_t crop_tmp = dataset_crop_tmp(ds, P, st->opt.render_size), ex_tmp = mode_example_tmp(P);
    bb->work_per_sample = 3 * bb->np + 3 * bb->np + (crop_tmp > ex_tmp ? crop_tmp : ex_tmp);
    bb->x_in = malloc(sizeof(float) * B * in * bb->np);
    bb->target = malloc(sizeof(float) * B * out * bb->np);
    bb->gen = malloc(sizeof(float) * B * bb->np);
    bb->y = malloc(sizeof(float) * B * out * bb->np);
    bb->dy = malloc(sizeof(float) * B * out * bb->np);
    bb->work = malloc(sizeof(float) * B * bb->work_per_sample);
    bb->t = malloc(sizeof(float) * B);
    bb->w = malloc(sizeof(float) * B);
    if (!bb->x_in || !bb->target || !bb->gen || !bb->y || !bb->dy || !bb->work || !bb->t || !bb->w) {
        train_batch_free(bb);
        return error_set(DR_ERR_NOMEM, "out of memory for a batch of %d at %dx%d", B, P, P);
    }
    int rc = unet_run_build(&bb->run, &st->L, run_B, P, P, 1);
    if (rc != DR_OK) train_batch_free(bb);
    return rc;
}

/* Sample b of a batch: crop, degrade, pick t and noise, build x_t and the
 * regression target. All draws come from rng (its own stream). */
static int make_sample(train_batch *bb, const dataset *ds, const noise_schedule *sch, rng_state *rng, int b,
                       float target_scale, int val) {
    const train_state *st = bb->st;
    const int in = st->info.cfg.in_channels, out = st->info.cfg.out_channels;
    const size_t np = bb->np;
    float *w = bb->work + (size_t)b * bb->work_per_sample;
    float *rgb = w, *x0 = w + 3 * np, *tmp = w + 6 * np;
    float *xin = bb->x_in + (size_t)b * in * np, *tgt = bb->target + (size_t)b * out * np;
    float *gen = bb->gen + (size_t)b * np;
    /* validation keeps the full zoom range, so val numbers compare across --zoom-max recipes */
    DR_TRY(dataset_random_crop(ds, rng, bb->P, st->opt.render_size, val ? 4.0 : st->opt.zoom_max, rgb, tmp));
    /* drawn only when on, so flip runs keep their random stream; validation
     * crops are never turned: every recipe validates on the same crops */
    if (st->opt.augment == DR_AUGMENT_DIHEDRAL && !val) dataset_crop_turn_random(rgb, bb->P, rng, tmp);
    /* target -> x0; cond goes straight into its channels of the input */
    /* validation keeps its fixed legacy masks and uniform scales, so val
     * numbers compare across --masks and --scale-dist recipes */
    DR_TRY(mode_make_example(st->info.mode, rgb, bb->P, val ? &bb->mo_val : &bb->mo, rng, x0, xin + (size_t)out * np,
                             gen, tmp));
    /* validation always draws t uniformly: runs with other t samplings compare on it */
    const int t = st->opt.t_sampling == DR_T_LOGNORMAL && !val
        ? train_t_from_log_snr(sch, st->opt.t_mean + st->opt.t_std * rng_normal(rng))
        : (int)rng_below(rng, (uint32_t)sch->T);
    const double ab = sch->alpha_bar[t], sa = sqrt(ab), sb = sqrt(1.0 - ab);
    bb->w[b] = st->opt.loss_weight == DR_LOSS_MIN_SNR
        ? (float)train_min_snr_weight(ab, st->opt.snr_gamma, st->info.predict_v)
        : 1.0f;
    float *xt = xin; // [out, P, P]
    for (size_t i = 0; i < (size_t)out * np; i++) {
        const float e = rng_normal(rng);
        const float z = x0[i] * target_scale;  // x0 = target_scale * target
        const float keep = 1.0f - gen[i % np]; // inpaint: known pixels stay clean
        xt[i] = keep > 0.5f ? z : (float)diffusion_xt(sa, sb, z, e);
        tgt[i] = (float)diffusion_target(sa, sb, st->info.predict_v, z, e);
    }
    /* conditioning dropout: the last draw of the sample, so runs without it
     * keep their random stream; validation always conditions */
    if (!val && st->info.cond_dropout > 0 && rng_uniform(rng) < st->info.cond_dropout)
        memset(xin + (size_t)out * np, 0, sizeof(float) * (size_t)(in - out) * np);
    bb->t[b] = (float)t;
    return DR_OK;
}

/* Fill samples lo..hi-1 of the batch for (seed, step): inputs, targets, and t
 * in bb->t. */
int fill_batch(train_batch *bb, const dataset *ds, const noise_schedule *sch, uint64_t seed, uint64_t step,
               float target_scale, int val, int lo, int hi) {
    int rc = DR_OK;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int b = lo; b < hi; b++) {
        rng_state rng;
        rng_derive(&rng, seed, step, (uint64_t)b);
        int r = make_sample(bb, ds, sch, &rng, b, target_scale, val);
        if (r != DR_OK) {
#pragma omp critical
            rc = r;
        }
    }
    return rc;
}

/* Loss = mean of w_b (y - target)^2 over generated pixels, w_b the sample's
 * loss weight (weighted: 1 for validation, which is always unweighted so that
 * runs with different weightings compare); dy = d loss / d y. */
double loss_and_grad(train_batch *bb, int want_grad, int weighted) {
    const int out = bb->st->info.cfg.out_channels;
    const size_t np = bb->np;
    double sum = 0, count = 0;
    for (int b = 0; b < bb->B; b++)
        for (size_t i = 0; i < np; i++) count += bb->gen[(size_t)b * np + i];
    count *= out;
    if (count <= 0) count = 1;
    for (int b = 0; b < bb->B; b++)
        for (int c = 0; c < out; c++) {
            const size_t o = ((size_t)b * out + c) * np;
            const double wb = weighted ? bb->w[b] : 1.0;
            for (size_t i = 0; i < np; i++) {
                const double g = wb * bb->gen[(size_t)b * np + i];
                const double d = (double)bb->y[o + i] - bb->target[o + i];
                sum += g * d * d;
                if (want_grad) bb->dy[o + i] = (float)(2.0 * g * d / count);
            }
        }
    return sum / count;
}

/* Measure the target's std over a few fixed crops, and set target_scale so
 * that x0 has std ~0.5 (MODEL.md: 0.5..1), rounded to a power of 2^(1/2). */
float measure_target_scale(const train_state *st, const dataset *ds) {
    train_batch bb;
    if (train_batch_build(&bb, st, ds, 8, st->opt.patch, 1) != DR_OK) return 1.0f;
    const int out = st->info.cfg.out_channels;
    double s = 0, s2 = 0, n = 0;
    noise_schedule dummy = {0};
    noise_schedule_build(&dummy, 1000, 0);
    for (int rep = 0; rep < 8; rep++) {
        if (fill_batch(&bb, ds, &dummy, st->opt.seed ^ 0x5ca1e, (uint64_t)rep, 1.0f, 1, 0, bb.B) != DR_OK) break;
        /* with target_scale 1, x0 of generated pixels = the target: recover it
         * from the work buffers' example (x0 slot) */
        for (int b = 0; b < bb.B; b++) {
            const float *x0 = bb.work + (size_t)b * bb.work_per_sample + 3 * bb.np;
            for (int c = 0; c < out; c++)
                for (size_t i = 0; i < bb.np; i++) {
                    if (bb.gen[(size_t)b * bb.np + i] < 0.5f) continue;
                    double v = x0[(size_t)c * bb.np + i];
                    s += v;
                    s2 += v * v;
                    n++;
                }
        }
    }
    noise_schedule_free(&dummy);
    train_batch_free(&bb);
    if (n < 2) return 1.0f;
    double sd = sqrt(fmax(s2 / n - (s / n) * (s / n), 1e-12));
    double scale = 0.5 / sd;
    if (scale < 1.0) scale = 1.0; /* never shrink: RGB already spans -1..1 */
    return (float)pow(2.0, round(2.0 * log2(scale)) / 2.0);
}

int val_run_batch(int P) {
    int rb = VAL_BATCH; /* a divisor of VAL_BATCH */
    while (rb > 1 && (long long)rb * P * P > (long long)VAL_BATCH * 128 * 128) rb /= 2;
    return rb;
}

/* Val loss of weights w (the EMA, or the raw parameters) on fixed crops, t
 * and noise (the same every time, so the numbers are comparable across
 * steps), plus the error of the implied x0 estimate in target units (clipped
 * to the valid range as the samplers do), which compares eps- and
 * v-prediction runs on one scale. */
double val_loss(train_state *st, const float *w, train_batch *bb, const dataset *val, const noise_schedule *sch,
                uint64_t vseed, double *x0_mse, double *band, int *band_crops) {
    double sum = 0, xsum = 0, xcount = 0;
    double bsum[DR_VAL_T_BANDS] = {0}, bcount[DR_VAL_T_BANDS] = {0};
    int bcrops[DR_VAL_T_BANDS] = {0};
    const int out = st->info.cfg.out_channels;
    const size_t np = bb->np;
    const float ts = st->info.target_scale;
    /* what the caller sees if a batch fails: no numbers, not stale ones */
    *x0_mse = NAN;
    for (int k = 0; k < DR_VAL_T_BANDS; k++) {
        if (band) band[k] = NAN;
        if (band_crops) band_crops[k] = 0;
    }
    for (int i = 0; i < st->opt.val_batches; i++) {
        if (fill_batch(bb, val, sch, vseed ^ VAL_SEED_SALT, (uint64_t)i, ts, 1, 0, bb->B) != DR_OK) return NAN;
        const int in = st->info.cfg.in_channels, rb = bb->run.B; /* rb divides B (val_run_batch) */
        for (int b0 = 0; b0 < bb->B; b0 += rb)
            unet_forward(&bb->run, &st->L, w, bb->x_in + (size_t)b0 * in * np, bb->t + b0,
                         bb->y + (size_t)b0 * out * np);
        sum += loss_and_grad(bb, 0, 0);
        for (int b = 0; b < bb->B; b++) {
            const double ab = sch->alpha_bar[(int)bb->t[b]], sa = sqrt(ab), sb = sqrt(1 - ab);
            const float *x0 = bb->work + (size_t)b * bb->work_per_sample + 3 * np; /* unscaled target */
            const float *xt = bb->x_in + (size_t)b * st->info.cfg.in_channels * np;
            const float *y = bb->y + (size_t)b * out * np;
            const int k = (int)((long long)bb->t[b] * DR_VAL_T_BANDS / sch->T); /* t < T: k < DR_VAL_T_BANDS */
            double csum = 0, ccount = 0;
            for (size_t i2 = 0; i2 < (size_t)out * np; i2++) {
                if (bb->gen[(size_t)b * np + i2 % np] < 0.5f) continue;
                double e = diffusion_x0(sa, sb, st->info.predict_v, xt[i2], y[i2]);
                e /= ts;
                e = e < -2 ? -2 : e > 2 ? 2 : e; /* every target lies within -2..2 */
                csum += (e - x0[i2]) * (e - x0[i2]);
                ccount++;
            }
            xsum += csum;
            xcount += ccount;
            bsum[k] += csum;
            bcount[k] += ccount;
            bcrops[k]++;
        }
    }
    *x0_mse = xsum / (xcount > 0 ? xcount : 1);
    for (int k = 0; k < DR_VAL_T_BANDS; k++) {
        if (band) band[k] = bcount[k] > 0 ? bsum[k] / bcount[k] : NAN;
        if (band_crops) band_crops[k] = bcrops[k];
    }
    return sum / st->opt.val_batches;
}
