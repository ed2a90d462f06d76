/*
 * train.c - `diffrestore train`: L_simple on random crops, AdamW with warmup
 * and clipping, an EMA of the weights, atomic checkpoints and exact resume.
 *
 * Reproducibility: every random draw of step s, sample b comes from its own
 * stream dr_rng_derive(seed, s, b) (crop, flip, degradation, t, noise), so a
 * run resumed at step s draws exactly what the uninterrupted run drew, and
 * samples can be prepared in parallel. The checkpoint holds parameters, EMA,
 * both Adam moments, the step and the options that shape the stream.
 *
 * Memory (llm.c): parameters, gradients, Adam m, Adam v and the EMA are each
 * one allocation of layout.n_floats.
 */
#include "api/model_internal.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/rng.h"
#include "diffusion/diffusion.h"
#include "modes/modes.h"
#include "nn/nn.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/optim.h"
#include "train/weighting.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define VAL_SEED_SALT 0x76616c6964617465ULL /* "validate" */
/* Crops per validation batch, whatever the training batch: the val set must
 * not change with the recipe, or runs at different batch sizes are measured
 * on different crops (16: every shipped model's batch, so the history keeps
 * its scale). */
#define VAL_BATCH 16

void dr_train_options_init(dr_train_options *o) {
    memset(o, 0, sizeof *o);
    dr_unet_config_parse(&o->config, "base=32,mult=1,2,2,4,res=2,attn=3,groups=8");
    o->steps = 10000;
    o->batch = 16;
    o->patch = 64;
    o->lr = 2e-4f;
    o->warmup_steps = 200;
    o->weight_decay = 0.0f;
    o->grad_clip = 1.0f;
    o->ema_decay = 0.999f;
    o->scale_min = 2.0f;
    o->scale_max = 4.0f;
    o->hole_min = 0.05f;
    o->hole_max = 0.5f;
    o->seed = 1;
    o->checkpoint_every = 250;
    o->val_every = 500;
    o->val_batches = 4;
    o->predict_v = 1;
    o->loss_weight = DR_LOSS_UNIFORM;
    o->snr_gamma = 5.0f;
    o->t_sampling = DR_T_UNIFORM;
    o->masks = DR_MASKS_LEGACY;
    o->scale_dist = DR_SCALE_DIST_UNIFORM;
    o->t_mean = 2.4f;
    o->t_std = 2.4f;
    o->val_seed = -1;
}

/* Everything one training step touches, built once. */
typedef struct {
    const train_state *st;
    mode_desc md;
    mode_train_options mo;
    mode_train_options mo_val; /* validation: legacy masks, uniform scales, whatever the recipe */
    int B, P;
    size_t np;                 /* P * P */
    float *x_in;               /* [B, in, P, P]: x_t then cond */
    float *target;             /* [B, out, P, P]: eps or v */
    float *gen;                /* [B, P * P]: 1 where the loss counts */
    float *y, *dy;             /* [B, out, P, P] */
    float *t;                  /* [B] timestep of each sample */
    float *w;                  /* [B] loss weight of each sample (Min-SNR; 1 when uniform) */
    float *work;               /* per-sample scratch: crop, example, tmp */
    size_t work_per_sample;
    unet_run run;
} batch_buffers;

static void batch_free(batch_buffers *bb) {
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
static int batch_build(batch_buffers *bb, const train_state *st, const dataset *ds, int B, int P, int run_B) {
    memset(bb, 0, sizeof *bb);
    bb->st = st;
    DR_TRY(mode_describe(st->info.mode, &bb->md));
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
        batch_free(bb);
        return dr_error(DR_ERR_NOMEM, "out of memory for a batch of %d at %dx%d", B, P, P);
    }
    int rc = unet_run_build(&bb->run, &st->L, run_B, P, P, 1);
    if (rc != DR_OK) batch_free(bb);
    return rc;
}

/* Sample b of a batch: crop, degrade, pick t and noise, build x_t and the
 * regression target. All draws come from rng (its own stream). */
static int make_sample(batch_buffers *bb, const dataset *ds, const dr_schedule *sch, dr_rng *rng, int b,
                       float target_scale, int val) {
    const train_state *st = bb->st;
    const int in = st->info.cfg.in_channels, out = st->info.cfg.out_channels;
    const size_t np = bb->np;
    float *w = bb->work + (size_t)b * bb->work_per_sample;
    float *rgb = w, *x0 = w + 3 * np, *tmp = w + 6 * np;
    float *xin = bb->x_in + (size_t)b * in * np, *tgt = bb->target + (size_t)b * out * np;
    float *gen = bb->gen + (size_t)b * np;
    DR_TRY(dataset_random_crop(ds, rng, bb->P, st->opt.render_size, rgb, tmp));
    /* target -> x0; cond goes straight into its channels of the input */
    /* validation keeps its fixed legacy masks and uniform scales, so val
     * numbers compare across --masks and --scale-dist recipes */
    DR_TRY(mode_make_example(st->info.mode, rgb, bb->P, val ? &bb->mo_val : &bb->mo, rng, x0,
                             xin + (size_t)out * np, gen, tmp));
    /* validation always draws t uniformly: runs with other t samplings compare on it */
    const int t = st->opt.t_sampling == DR_T_LOGNORMAL && !val
                      ? train_t_from_log_snr(sch, st->opt.t_mean + st->opt.t_std * dr_rng_normal(rng))
                      : (int)dr_rng_below(rng, (uint32_t)sch->T);
    const double ab = sch->alpha_bar[t], sa = sqrt(ab), sb = sqrt(1.0 - ab);
    bb->w[b] = st->opt.loss_weight == DR_LOSS_MIN_SNR
                   ? (float)train_min_snr_weight(ab, st->opt.snr_gamma, st->info.predict_v)
                   : 1.0f;
    float *xt = xin;                                               // [out, P, P]
    for (size_t i = 0; i < (size_t)out * np; i++) {
        const float e = dr_rng_normal(rng);
        const float z = x0[i] * target_scale;                      // x0 = target_scale * target
        const float keep = 1.0f - gen[i % np];                     // inpaint: known pixels stay clean
        xt[i] = keep > 0.5f ? z : (float)(sa * z + sb * e);
        tgt[i] = st->info.predict_v ? (float)(sa * e - sb * z) : e;
    }
    bb->t[b] = (float)t;
    return DR_OK;
}

/* Fill samples lo..hi-1 of the batch for (seed, step): inputs, targets, and t
 * in bb->t. */
static int fill_batch(batch_buffers *bb, const dataset *ds, const dr_schedule *sch, uint64_t seed, uint64_t step,
                      float target_scale, int val, int lo, int hi) {
    int rc = DR_OK;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int b = lo; b < hi; b++) {
        dr_rng rng;
        dr_rng_derive(&rng, seed, step, (uint64_t)b);
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
static double loss_and_grad(batch_buffers *bb, int want_grad, int weighted) {
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

static double grad_norm(const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

/* Measure the target's std over a few fixed crops, and set target_scale so
 * that x0 has std ~0.5 (MODEL.md: 0.5..1), rounded to a power of 2^(1/2). */
static float measure_target_scale(const train_state *st, const dataset *ds) {
    batch_buffers bb;
    if (batch_build(&bb, st, ds, 8, st->opt.patch, 1) != DR_OK) return 1.0f;
    const int out = st->info.cfg.out_channels;
    double s = 0, s2 = 0, n = 0;
    dr_schedule dummy = {0};
    dr_schedule_build(&dummy, 1000, 0);
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
    dr_schedule_free(&dummy);
    batch_free(&bb);
    if (n < 2) return 1.0f;
    double sd = sqrt(fmax(s2 / n - (s / n) * (s / n), 1e-12));
    double scale = 0.5 / sd;
    if (scale < 1.0) scale = 1.0; /* never shrink: RGB already spans -1..1 */
    return (float)pow(2.0, round(2.0 * log2(scale)) / 2.0);
}

/* Val loss of weights w (the EMA, or the raw parameters) on fixed crops, t
 * and noise (the same every time, so the numbers are comparable across
 * steps), plus the error of the implied x0 estimate in target units (clipped
 * to the valid range as the samplers do), which compares eps- and
 * v-prediction runs on one scale. */
static double val_loss(train_state *st, const float *w, batch_buffers *bb, const dataset *val, const dr_schedule *sch,
                       uint64_t vseed, double *x0_mse) {
    double sum = 0, xsum = 0, xcount = 0;
    const int out = st->info.cfg.out_channels;
    const size_t np = bb->np;
    const float ts = st->info.target_scale;
    for (int i = 0; i < st->opt.val_batches; i++) {
        if (fill_batch(bb, val, sch, vseed ^ VAL_SEED_SALT, (uint64_t)i, ts, 1, 0, bb->B) != DR_OK) return NAN;
        unet_forward(&bb->run, &st->L, w, bb->x_in, bb->t, bb->y);
        sum += loss_and_grad(bb, 0, 0);
        for (int b = 0; b < bb->B; b++) {
            const double ab = sch->alpha_bar[(int)bb->t[b]], sa = sqrt(ab), sb = sqrt(1 - ab);
            const float *x0 = bb->work + (size_t)b * bb->work_per_sample + 3 * np; /* unscaled target */
            const float *xt = bb->x_in + (size_t)b * st->info.cfg.in_channels * np;
            const float *y = bb->y + (size_t)b * out * np;
            for (size_t i2 = 0; i2 < (size_t)out * np; i2++) {
                if (bb->gen[(size_t)b * np + i2 % np] < 0.5f) continue;
                double e = st->info.predict_v ? sa * xt[i2] - sb * y[i2] : (xt[i2] - sb * y[i2]) / sa;
                e /= ts;
                e = e < -2 ? -2 : e > 2 ? 2 : e; /* every target lies within -2..2 */
                xsum += (e - x0[i2]) * (e - x0[i2]);
                xcount++;
            }
        }
    }
    *x0_mse = xsum / (xcount > 0 ? xcount : 1);
    return sum / st->opt.val_batches;
}

/* train --ema-probe: the probes' log sits beside the training log, its
 * ".csv" (if any) replaced by ".ema.csv" (run.ckpt.csv -> run.ckpt.ema.csv). */
static void probe_csv_path(char *buf, size_t n, const char *csv) {
    size_t len = strlen(csv);
    if (len >= 4 && !strcmp(csv + len - 4, ".csv")) len -= 4;
    snprintf(buf, n, "%.*s.ema.csv", (int)len, csv);
}

/* One row per probe: its val numbers on the same fixed crops as the main EMA's. */
static void probes_validate(train_state *st, const dr_train_options *o, const float *probes, FILE *pcsv,
                            batch_buffers *vb, const dataset *val, const dr_schedule *sch, uint64_t vseed) {
    if (!probes || !pcsv) return;
    for (int k = 0; k < o->n_ema_probe; k++) {
        double vx0 = NAN, vl = val_loss(st, probes + (size_t)k * st->L.n_floats, vb, val, sch, vseed, &vx0);
        fprintf(pcsv, "%d,%.2f,%.6g,%.6f,%.6f,%.6f\n", st->step, st->cpu_seconds, (double)o->ema_probe[k],
                ema_decay_at(o->ema_probe[k], st->step - 1), vl, vx0);
    }
    fflush(pcsv);
}

static void logf_(const dr_train_options *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const dr_train_options *o, const char *fmt, ...) {
    if (!o->log || (o->comm && o->comm->rank != 0)) return; /* rank 0 alone reports */
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    o->log(buf, o->user);
}

/* CPU time of the whole process (all threads): what an equal-CPU-time
 * comparison counts, whatever else the machine runs. */
static double cpu_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- one training step's gradient: a fixed tree over micro-batches
 *
 * The batch of B is cut into K = B / M micro-batches of M samples. A leaf
 * g(k, k + 1) is micro-batch k's gradient: its own forward and backward into
 * a zeroed buffer. Above the leaves, g(lo, hi) = g(lo, mid) + g(mid, hi) with
 * mid = lo + (hi - lo) / 2, and the batch's gradient is g(0, K), whoever
 * computes it. Alone, the whole tree is computed here. With N ranks (N <= K),
 * rank r owns micro-batches [r K / N, (r + 1) K / N); the "cover" nodes are
 * the largest subtrees inside one rank's range. Each rank computes its cover
 * nodes; the ranks exchange slice j of every cover node with rank j
 * (alltoallv: a reduce-scatter), rank j adds up the tree above the cover on
 * its slice, and an allgatherv spreads the slices. Every node is the same
 * float additions in the same order (and a + b == b + a), so any N gives one
 * process's gradient bit for bit. The exchange moves each parameter about
 * twice, as a ring all-reduce does, when every rank's range is one node (N a
 * power of 2 dividing K); otherwise a rank sends a few nodes. */

typedef struct {
    int lo, hi, owner, index; /* index: among the owner's cover nodes, left to right */
} cover_node;

typedef struct {
    const dr_train_comm *comm; /* NULL: alone */
    int N, rank, B, M, K;      /* ranks, this one, batch, micro-batch, leaves */
    int lo, hi;                /* this rank's samples */
    cover_node *cover;         /* every rank's, left to right */
    int n_cover, *n_owned;     /* [N] cover nodes of each rank */
    int height;                /* of the tree over B leaves */
    size_t n;                  /* floats of a gradient */
    float **gbuf;              /* [height + 1] full gradients (gbuf[0] = st->grads) */
    float **sbuf;              /* [height + 1] slices (N > 1) */
    float *send, *recv;        /* N > 1: the cover nodes, by destination slice; the received slices */
    size_t *sb, *sd, *rb, *rd; /* [N] bytes and displacements of the alltoallv */
    size_t *xb, *xd;           /* [N] of the allgathervs */
    double *dex;               /* doubles exchanged per step */
    double reduce_sec;         /* wall time of the last exchange of gradients */
} grad_tree;

static int rank_lo(int r, int N, int K) { return (int)((long long)r * K / N); }
/* rank r's first sample (r = N: B) */
static int rank_sample(const grad_tree *g, int r) { return rank_lo(r, g->N, g->K) * g->M; }
static int tree_height(int n) { return n <= 1 ? 0 : 1 + tree_height(n - n / 2); }
static size_t slice_lo(const grad_tree *g, int j) { return (size_t)((unsigned long long)j * g->n / g->N); }

static int cover_walk(grad_tree *g, int lo, int hi) {
    for (int r = 0; r < g->N; r++)
        if (rank_lo(r, g->N, g->K) <= lo && hi <= rank_lo(r + 1, g->N, g->K)) {
            g->cover[g->n_cover++] = (cover_node){lo, hi, r, g->n_owned[r]++};
            return 0;
        }
    const int mid = lo + (hi - lo) / 2;
    cover_walk(g, lo, mid);
    cover_walk(g, mid, hi);
    return 0;
}

static void grad_tree_free(grad_tree *g) {
    if (g->gbuf)
        for (int d = 1; d <= g->height; d++) free(g->gbuf[d]);
    if (g->sbuf)
        for (int d = 0; d <= g->height; d++) free(g->sbuf[d]);
    free(g->gbuf);
    free(g->sbuf);
    free(g->cover);
    free(g->n_owned);
    free(g->send);
    free(g->recv);
    free(g->sb);
    free(g->sd);
    free(g->rb);
    free(g->rd);
    free(g->xb);
    free(g->xd);
    free(g->dex);
    memset(g, 0, sizeof *g);
}

static int grad_tree_build(grad_tree *g, const dr_train_comm *comm, int B, int M, float *grads, size_t n) {
    memset(g, 0, sizeof *g);
    g->comm = comm && comm->size > 1 ? comm : NULL;
    g->N = g->comm ? comm->size : 1;
    g->rank = g->comm ? comm->rank : 0;
    g->B = B;
    g->M = M;
    g->K = B / M;
    g->n = n;
    if (M < 1 || B % M != 0)
        return dr_error(DR_ERR_INVALID, "train: the batch %d is not a multiple of the micro-batch %d", B, M);
    if (g->N > g->K)
        return dr_error(DR_ERR_INVALID,
                        "train: %d ranks, but a batch of %d has only %d micro-batches of %d: every rank needs at least one "
                        "(a smaller --micro-batch or a larger --batch; the run's result depends on both, not on the ranks)",
                        g->N, B, g->K, M);
    g->lo = rank_sample(g, g->rank);
    g->hi = rank_sample(g, g->rank + 1);
    g->height = tree_height(g->K);
    g->cover = calloc((size_t)2 * g->K, sizeof *g->cover);
    g->n_owned = calloc((size_t)g->N, sizeof *g->n_owned);
    g->gbuf = calloc((size_t)g->height + 1, sizeof *g->gbuf);
    g->dex = malloc(sizeof(double) * (3 * (size_t)B + 2 * (size_t)g->N));
    g->xb = malloc(sizeof(size_t) * g->N);
    g->xd = malloc(sizeof(size_t) * g->N);
    if (!g->cover || !g->n_owned || !g->gbuf || !g->dex || !g->xb || !g->xd) goto nomem;
    cover_walk(g, 0, g->K);
    g->gbuf[0] = grads;
    for (int d = 1; d <= g->height; d++)
        if (!(g->gbuf[d] = malloc(sizeof(float) * n))) goto nomem;
    if (g->N > 1) {
        const int mine = g->n_owned[g->rank];
        const size_t my_slice = slice_lo(g, g->rank + 1) - slice_lo(g, g->rank);
        g->sbuf = calloc((size_t)g->height + 1, sizeof *g->sbuf);
        g->sb = malloc(sizeof(size_t) * g->N);
        g->sd = malloc(sizeof(size_t) * g->N);
        g->rb = malloc(sizeof(size_t) * g->N);
        g->rd = malloc(sizeof(size_t) * g->N);
        g->send = malloc(sizeof(float) * n * mine);
        g->recv = malloc(sizeof(float) * my_slice * g->n_cover);
        if (!g->sbuf || !g->sb || !g->sd || !g->rb || !g->rd || !g->send || !g->recv) goto nomem;
        for (int d = 0; d <= g->height; d++)
            if (!(g->sbuf[d] = malloc(sizeof(float) * (my_slice ? my_slice : 1)))) goto nomem;
        size_t so = 0, ro = 0;
        for (int j = 0; j < g->N; j++) {
            g->sb[j] = sizeof(float) * (slice_lo(g, j + 1) - slice_lo(g, j)) * mine;
            g->sd[j] = so;
            so += g->sb[j];
            g->rb[j] = sizeof(float) * my_slice * g->n_owned[j];
            g->rd[j] = ro;
            ro += g->rb[j];
        }
    }
    return DR_OK;
nomem:
    grad_tree_free(g);
    return dr_error(DR_ERR_NOMEM, "out of memory for the gradient buffers of a batch of %d", B);
}

/* Every rank's doubles: rank r gives head + k * (its samples) of them, its
 * head values first. heads[r * head + i], per[b * k + i] for every sample b. */
static int exchange_doubles(grad_tree *g, const double *mine, int head, int k, double *heads, double *per) {
    const int nb = g->hi - g->lo;
    if (!g->comm) {
        memcpy(heads, mine, sizeof(double) * head);
        memcpy(per, mine + head, sizeof(double) * k * nb);
        return DR_OK;
    }
    size_t *cnt = g->xb, *dsp = g->xd, off = 0;
    for (int r = 0; r < g->N; r++) {
        cnt[r] = sizeof(double) * (head + (size_t)k * (rank_sample(g, r + 1) - rank_sample(g, r)));
        dsp[r] = off;
        off += cnt[r];
    }
    const int rc = g->comm->allgatherv(mine, g->dex, cnt, dsp, g->comm->user);
    if (rc != 0) return dr_error(DR_ERR_IO, "train: exchanging the step's numbers between ranks failed");
    for (int r = 0; r < g->N; r++) {
        const double *src = g->dex + dsp[r] / sizeof(double);
        const int rlo = rank_sample(g, r), rn = rank_sample(g, r + 1) - rlo;
        memcpy(heads + (size_t)r * head, src, sizeof(double) * head);
        memcpy(per + (size_t)rlo * k, src + head, sizeof(double) * k * rn);
    }
    return DR_OK;
}

typedef struct {
    batch_buffers *bb;
    const train_state *st;
    double count;   /* generated pixels times output channels, over the whole batch */
    double *loss_b; /* [B] each sample's weighted squared error sum */
} leaf_ctx;

/* Sample b's generated pixels (the loss counts them, times the channels). */
static double sample_count(const batch_buffers *bb, int b) {
    double c = 0;
    for (size_t i = 0; i < bb->np; i++) c += bb->gen[(size_t)b * bb->np + i];
    return c;
}

/* Sample b's weighted squared error sum, and its dy = d loss / d y, the
 * loss being the batch's sum over count (as loss_and_grad). */
static double sample_loss(batch_buffers *bb, int b, double count) {
    const int out = bb->st->info.cfg.out_channels;
    const size_t np = bb->np;
    const double wb = bb->w[b];
    double sum = 0;
    for (int c = 0; c < out; c++) {
        const size_t o = ((size_t)b * out + c) * np;
        for (size_t i = 0; i < np; i++) {
            const double g = wb * bb->gen[(size_t)b * np + i];
            const double d = (double)bb->y[o + i] - bb->target[o + i];
            sum += g * d * d;
            bb->dy[o + i] = (float)(2.0 * g * d / count);
        }
    }
    return sum;
}

/* Leaf: micro-batch k's gradient into gr (zeroed first), by its own forward
 * and backward (the run is planned for M samples). */
static int leaf_grad(grad_tree *g, leaf_ctx *c, int k, float *gr) {
    batch_buffers *bb = c->bb;
    const train_state *st = c->st;
    const size_t in = (size_t)st->info.cfg.in_channels * bb->np, out = (size_t)st->info.cfg.out_channels * bb->np;
    const size_t b0 = (size_t)k * g->M;
    memset(gr, 0, sizeof(float) * g->n);
    DR_TRY(unet_forward(&bb->run, &st->L, st->params, bb->x_in + b0 * in, bb->t + b0, bb->y + b0 * out));
    for (int b = (int)b0; b < (int)b0 + g->M; b++) c->loss_b[b] = sample_loss(bb, b, c->count);
    return unet_backward(&bb->run, &st->L, st->params, gr, bb->dy + b0 * out, NULL);
}

/* g(lo, hi) into gbuf[d]; the right half uses gbuf[d + 1]. */
static int node_grad(grad_tree *g, leaf_ctx *c, int lo, int hi, int d) {
    if (hi - lo == 1) return leaf_grad(g, c, lo, g->gbuf[d]);
    const int mid = lo + (hi - lo) / 2;
    DR_TRY(node_grad(g, c, lo, mid, d));
    DR_TRY(node_grad(g, c, mid, hi, d + 1));
    accumulate(g->gbuf[d], g->gbuf[d + 1], g->n);
    return DR_OK;
}

/* g(lo, hi) on this rank's slice into sbuf[d], from the received cover nodes. */
static void top_sum(grad_tree *g, int lo, int hi, int d) {
    const size_t len = slice_lo(g, g->rank + 1) - slice_lo(g, g->rank);
    for (int i = 0; i < g->n_cover; i++) {
        const cover_node *cn = &g->cover[i];
        if (cn->lo == lo && cn->hi == hi) {
            memcpy(g->sbuf[d], g->recv + g->rd[cn->owner] / sizeof(float) + (size_t)cn->index * len, sizeof(float) * len);
            return;
        }
    }
    const int mid = lo + (hi - lo) / 2;
    top_sum(g, lo, mid, d);
    top_sum(g, mid, hi, d + 1);
    float *a = g->sbuf[d];
    const float *b = g->sbuf[d + 1];
    for (size_t k = 0; k < len; k++) a[k] += b[k];
}

/* The batch's gradient g(0, B) into gbuf[0] (st->grads) on every rank;
 * c->loss_b filled for this rank's samples. */
static int tree_grad(grad_tree *g, leaf_ctx *c) {
    if (!g->comm) return node_grad(g, c, 0, g->K, 0);
    for (int i = 0; i < g->n_cover; i++) {
        const cover_node *cn = &g->cover[i];
        if (cn->owner != g->rank) continue;
        DR_TRY(node_grad(g, c, cn->lo, cn->hi, 0));
        for (int j = 0; j < g->N; j++) {
            const size_t s0 = slice_lo(g, j), len = slice_lo(g, j + 1) - s0;
            memcpy(g->send + g->sd[j] / sizeof(float) + (size_t)cn->index * len, g->gbuf[0] + s0, sizeof(float) * len);
        }
    }
    const double t0 = now_sec();
    if (g->comm->alltoallv(g->send, g->sb, g->sd, g->recv, g->rb, g->rd, g->comm->user) != 0)
        return dr_error(DR_ERR_IO, "train: exchanging gradients between ranks failed (alltoallv)");
    top_sum(g, 0, g->K, 0);
    for (int j = 0; j < g->N; j++) {
        g->xb[j] = sizeof(float) * (slice_lo(g, j + 1) - slice_lo(g, j));
        g->xd[j] = sizeof(float) * slice_lo(g, j);
    }
    if (g->comm->allgatherv(g->sbuf[0], g->gbuf[0], g->xb, g->xd, g->comm->user) != 0)
        return dr_error(DR_ERR_IO, "train: exchanging gradients between ranks failed (allgatherv)");
    g->reduce_sec = now_sec() - t0;
    return DR_OK;
}

/* Every file the run will write (checkpoint, log, exported weights) is
 * checked before any work: its directory exists, it is not a directory, it
 * lies outside the data and val folders, and it is none of the files read
 * (a data or val photo under another name, the --init weights). The one
 * exception is the documented continuation, --resume CKPT --out CKPT: the
 * checkpoint is replaced atomically by the newer one. */
static int same_file(const char *a, const struct stat *sa) {
    struct stat sb;
    return a && stat(a, &sb) == 0 && sb.st_dev == sa->st_dev && sb.st_ino == sa->st_ino;
}
static int check_output(const dr_train_options *o, const char *path, const char *what) {
    struct stat st;
    const int exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) return dr_error(DR_ERR_INVALID, "the %s %s is a directory: give a file name", what, path);
    const char *slash = strrchr(path, '/');
    if (slash && slash != path) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        struct stat ds;
        if (stat(dir, &ds) != 0 || !S_ISDIR(ds.st_mode))
            return dr_error(DR_ERR_INVALID, "cannot write the %s %s: the directory %s does not exist", what, path, dir);
    }
    const char *in[2] = {o->data_dir, o->val_dir}, *in_name[2] = {"training data", "validation data"};
    for (int i = 0; i < 2; i++)
        if (in[i] && dr_path_within(path, in[i]))
            return dr_error(DR_ERR_INVALID, "refusing to write the %s %s: it lies inside the %s folder %s (an output never goes into an input folder)",
                            what, path, in_name[i], in[i]);
    if (!exists) return DR_OK;
    if (same_file(o->init_path, &st))
        return dr_error(DR_ERR_INVALID, "refusing to write the %s %s: it is the --init weights", what, path);
    if (same_file(o->resume_path, &st) && path != o->out_path)
        return dr_error(DR_ERR_INVALID, "refusing to write the %s %s: it is the checkpoint being resumed", what, path);
    for (int i = 0; i < 2; i++)
        if (in[i] && dataset_dir_has_file(in[i], st.st_dev, st.st_ino))
            return dr_error(DR_ERR_INVALID, "refusing to write the %s %s: it is a file of the %s (another name for it)",
                            what, path, in_name[i]);
    return DR_OK;
}
static int check_outputs(const dr_train_options *o, int training) {
    DR_TRY(check_output(o, o->out_path, "checkpoint"));
    if (training) {
        char csv[4200];
        if (!o->log_path) snprintf(csv, sizeof csv, "%s.csv", o->out_path);
        DR_TRY(check_output(o, o->log_path ? o->log_path : csv, "training log"));
        if (o->n_ema_probe > 0) {
            if (!o->val_dir) return dr_error(DR_ERR_INVALID, "train: EMA probes are validated: they need --val DIR");
            char pp[4300];
            probe_csv_path(pp, sizeof pp, o->log_path ? o->log_path : csv);
            DR_TRY(check_output(o, pp, "EMA probes' log"));
        }
    }
    if (o->export_path) DR_TRY(check_output(o, o->export_path, "exported weights"));
    return DR_OK;
}

int dr_train(const dr_train_options *o) {
    if (!o->out_path) return dr_error(DR_ERR_INVALID, "train: an output checkpoint path is required");
    if (!o->data_dir && !(o->resume_path && o->steps <= 0))
        return dr_error(DR_ERR_INVALID, "train: --data is required");
    if (o->batch < 1 || o->batch > 1024 || o->patch < 8 || o->patch > 1024)
        return dr_error(DR_ERR_INVALID, "train: batch %d or patch %d out of range", o->batch, o->patch);
    if (o->resume_lr != 0 && (!o->resume_path || !(o->resume_lr > 0 && o->resume_lr <= 1)))
        return dr_error(DR_ERR_INVALID, "train: resume learning rate %g: 0 (keep), or 0..1 with a checkpoint to resume",
                        (double)o->resume_lr);
    if (o->render_size != 0 && (o->render_size < DR_RENDER_SIZE_MIN || o->render_size > DR_RENDER_SIZE_MAX))
        return dr_error(DR_ERR_INVALID, "train: render size %d: 0 (full resolution) or %d..%d", o->render_size,
                        DR_RENDER_SIZE_MIN, DR_RENDER_SIZE_MAX);
    const int root = !o->comm || o->comm->size <= 1 || o->comm->rank == 0;
    if (o->comm && o->comm->size > 1 &&
        (o->comm->rank < 0 || o->comm->rank >= o->comm->size || !o->comm->allgatherv || !o->comm->alltoallv))
        return dr_error(DR_ERR_INVALID, "train: rank %d of %d, or a collective missing", o->comm->rank, o->comm->size);
    if (root) DR_TRY(check_outputs(o, o->data_dir != NULL)); /* rank 0 alone writes them */
    train_state st;
    int rc;
    if (o->resume_path && o->init_path)
        return dr_error(DR_ERR_INVALID, "train: --resume and --init exclude each other");
    if (o->resume_path) {
        rc = checkpoint_load(&st, o->resume_path);
        if (rc != DR_OK) return rc;
        st.opt.steps = o->steps > 0 ? o->steps : st.opt.steps;
        st.opt.cancel = o->cancel;
        st.opt.progress = o->progress;
        st.opt.log = o->log;
        st.opt.user = o->user;
        st.opt.checkpoint_every = o->checkpoint_every;
        st.opt.val_every = o->val_every;
        st.opt.data_dir = o->data_dir;
        st.opt.val_dir = o->val_dir;
        st.opt.out_path = o->out_path;
        st.opt.export_path = o->export_path;
        st.opt.log_path = o->log_path;
        st.opt.budget_cpu_seconds = o->budget_cpu_seconds;
        st.opt.val_seed = o->val_seed;
        if (o->micro_batch > 0) st.opt.micro_batch = o->micro_batch; /* changes the sums' rounding only */
        logf_(o, "resumed %s at step %d of %d", o->resume_path, st.step, st.opt.steps);
        if (o->resume_lr > 0 && o->resume_lr != st.opt.lr) {
            logf_(o, "learning rate %g -> %g from step %d", (double)st.opt.lr, (double)o->resume_lr, st.step);
            st.opt.lr = o->resume_lr;
        }
    } else {
        if (o->target_scale > 0 && !(o->target_scale >= DR_TARGET_SCALE_MIN && o->target_scale <= DR_TARGET_SCALE_MAX))
            return dr_error(DR_ERR_INVALID, "train: --target-scale %g is outside %g..%g", o->target_scale,
                            DR_TARGET_SCALE_MIN, DR_TARGET_SCALE_MAX);
        if (o->init_path && o->target_scale > 0)
            return dr_error(DR_ERR_INVALID, "train: --target-scale cannot change the --init weights' target_scale");
        if (o->init_path) {
            /* the state comes from the weights: their mode when none is given */
            rc = train_state_from_weights(&st, o);
            if (rc != DR_OK) {
                train_state_free(&st);
                return rc;
            }
            logf_(o, "starting from %s (%d steps trained; its config, %s, prediction and target scale are used)",
                  o->init_path, st.init_steps, dr_mode_name(st.info.mode));
        } else {
            rc = train_state_new(&st, o);
            if (rc != DR_OK) return rc;
        }
    }
    st.opt.comm = o->comm;
    st.ranks = o->comm && o->comm->size > 1 ? o->comm->size : 1; /* written into the checkpoint */
    if (st.opt.micro_batch <= 0) { /* a new run's default: the whole batch alone, its share on each of N ranks */
        const int share = st.opt.batch / st.ranks;
        for (int m = share > 1 ? share : 1; m >= 1; m--)
            if (st.opt.batch % m == 0) {
                st.opt.micro_batch = m;
                break;
            }
    }
    if (st.opt.micro_batch > st.opt.batch || st.opt.batch % st.opt.micro_batch != 0) {
        const int mb = st.opt.micro_batch, b = st.opt.batch;
        train_state_free(&st);
        return dr_error(DR_ERR_INVALID, "train: --micro-batch %d must divide --batch %d", mb, b);
    }
    const dr_train_options *opt = &st.opt;
    if (opt->render_size > 0 && st.info.mode != DR_MODE_COLORIZE) {
        const dr_mode md = st.info.mode;
        train_state_free(&st);
        return dr_error(DR_ERR_INVALID, "train: --render-size is only for colorize, not %s", dr_mode_name(md));
    }
    if (opt->masks != DR_MASKS_LEGACY && st.info.mode != DR_MODE_INPAINT) {
        const dr_mode md = st.info.mode;
        train_state_free(&st);
        return dr_error(DR_ERR_INVALID, "train: --masks damage is only for inpaint, not %s", dr_mode_name(md));
    }
    if (opt->scale_dist != DR_SCALE_DIST_UNIFORM && st.info.mode != DR_MODE_SUPERRES) {
        const dr_mode md = st.info.mode;
        train_state_free(&st);
        return dr_error(DR_ERR_INVALID, "train: --scale-dist high is only for superres, not %s", dr_mode_name(md));
    }
    if (o->n_ema_probe < 0 || o->n_ema_probe > DR_EMA_PROBES_MAX) {
        train_state_free(&st);
        return dr_error(DR_ERR_INVALID, "train: %d EMA probes; at most %d", o->n_ema_probe, DR_EMA_PROBES_MAX);
    }
    for (int k = 0; k < o->n_ema_probe; k++)
        if (!(o->ema_probe[k] >= 0 && o->ema_probe[k] < 1)) {
            train_state_free(&st);
            return dr_error(DR_ERR_INVALID, "train: EMA probe decay %g is not in 0..1", (double)o->ema_probe[k]);
        }
    {
        /* a run killed while writing its checkpoint (SIGKILL, power loss)
         * leaves the temp file; the checkpoint itself is the previous one */
        const int stale = root ? dr_atomic_remove_stale(o->out_path) : 0;
        if (stale > 0) logf_(o, "removed %d stale temporary file%s of %s (a write was interrupted)", stale,
                             stale > 1 ? "s" : "", o->out_path);
    }
    dataset ds = {0}, val = {0};
    batch_buffers bb = {0}, vb = {0};
    grad_tree gt = {0};
    double *xd = NULL; /* the step's exchanged numbers: mine, heads, per sample */
    void (*note)(const char *, void *) = root ? o->log : NULL;
    dr_schedule sch = {0};
    FILE *csv = NULL, *pcsv = NULL;
    char csv_path[4200];
    float *probes = NULL; /* o->n_ema_probe EMAs of L.n_floats, one allocation (rank 0) */
    rc = dr_schedule_build(&sch, st.info.timesteps, st.info.schedule_linear);
    if (rc != DR_OK) goto done;
    if (st.step < opt->steps) {
        rc = dataset_load(&ds, o->data_dir, opt->patch, note, o->user);
        if (rc != DR_OK) goto done;
        if (st.step > 0 && st.data_hash != ds.hash) {
            rc = dr_error(DR_ERR_INVALID, "%s: the checkpoint was trained on different data than %s (file list differs)",
                          o->resume_path, o->data_dir);
            goto done;
        }
        st.data_hash = ds.hash;
        logf_(o, "%d training images from %s", ds.n, o->data_dir);
        if (o->val_dir && opt->val_every > 0 && root) { /* rank 0 alone validates */
            rc = dataset_load(&val, o->val_dir, opt->patch, note, o->user);
            if (rc != DR_OK) goto done;
            logf_(o, "%d validation images from %s", val.n, o->val_dir);
            rc = batch_build(&vb, &st, &val, VAL_BATCH, opt->patch, VAL_BATCH);
            if (rc != DR_OK) goto done;
        }
        if (st.info.target_scale <= 0) {
            st.info.target_scale = measure_target_scale(&st, &ds);
            const double ts = st.info.target_scale;
            if (!(ts >= DR_TARGET_SCALE_MIN && ts <= DR_TARGET_SCALE_MAX)) {
                /* e.g. colorize on gray photos: nothing to learn, and weights
                 * that no command would load; stop before the first step */
                rc = dr_error(DR_ERR_INVALID, "%s: the data gives target_scale %.4g, outside the %g..%g weights may hold: %s",
                              o->data_dir, ts, DR_TARGET_SCALE_MIN, DR_TARGET_SCALE_MAX,
                              st.info.mode == DR_MODE_COLORIZE
                                  ? "the photos have (almost) no colour, and colorize learns colour from colour photos"
                                  : "the targets are (almost) constant");
                goto done;
            }
            logf_(o, "target_scale %.4g (measured: x0 std ~0.5)", st.info.target_scale);
        }
        rc = grad_tree_build(&gt, o->comm, opt->batch, opt->micro_batch, st.grads, st.L.n_floats);
        if (rc != DR_OK) goto done;
        rc = batch_build(&bb, &st, &ds, opt->batch, opt->patch, opt->micro_batch);
        if (rc != DR_OK) goto done;
        if (!(xd = malloc(sizeof(double) * (6 * (size_t)opt->batch + 4 * (size_t)gt.N + 4)))) {
            rc = dr_error(DR_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (gt.N > 1)
            logf_(o, "data-parallel: %d ranks, samples %d..%d of each batch of %d on rank 0", gt.N, gt.lo, gt.hi - 1,
                  opt->batch);
        if (!root) goto no_log;
        snprintf(csv_path, sizeof csv_path, "%s", o->log_path ? o->log_path : "");
        if (!o->log_path) snprintf(csv_path, sizeof csv_path, "%s.csv", o->out_path);
        csv = fopen(csv_path, "a");
        if (!csv) {
            rc = dr_error(DR_ERR_IO, "%s: cannot open the training log", csv_path);
            goto done;
        }
        if (ftell(csv) == 0)
            fprintf(csv, "step,loss,loss_smooth,lr,grad_norm,t_mean,seconds,val_loss,val_x0_mse,cpu_seconds,val_x0_mse_params\n");
        if (o->n_ema_probe > 0 && vb.B) {
            /* every probe starts from the EMA the run starts with, so all the
             * decays share one history up to here and differ only after it */
            const size_t n = st.L.n_floats;
            if (!(probes = malloc(sizeof(float) * n * (size_t)o->n_ema_probe))) {
                rc = dr_error(DR_ERR_NOMEM, "out of memory (EMA probes)");
                goto done;
            }
            for (int k = 0; k < o->n_ema_probe; k++) memcpy(probes + (size_t)k * n, st.ema, sizeof(float) * n);
            char pp[4300];
            probe_csv_path(pp, sizeof pp, csv_path);
            if (!(pcsv = fopen(pp, "a"))) {
                rc = dr_error(DR_ERR_IO, "%s: cannot open the EMA probes' log", pp);
                goto done;
            }
            if (ftell(pcsv) == 0) fprintf(pcsv, "step,cpu_seconds,decay,decay_now,val_loss,val_x0_mse\n");
        }
    no_log:;
    }
    const uint64_t vseed = opt->val_seed >= 0 ? (uint64_t)opt->val_seed : opt->seed;
    double t_last = now_sec(), t_start = t_last;
    int steps_since = 0, last_ckpt_step = st.step;
    while (st.step < opt->steps) {
        if (opt->budget_cpu_seconds > 0 && st.cpu_seconds >= opt->budget_cpu_seconds) {
            /* an equal-CPU-time comparison: stop where the budget ends */
            if (st.step != last_ckpt_step && root) rc = checkpoint_save(&st, o->out_path);
            if (rc != DR_OK) goto done;
            logf_(o, "CPU budget of %.0f s reached at step %d (%.0f s of training CPU time); checkpoint %s",
                  opt->budget_cpu_seconds, st.step, st.cpu_seconds, o->out_path);
            if (vb.B && st.step % opt->val_every != 0) {
                /* the comparison needs the val numbers where the run ends: a
                 * row with only the validation columns */
                double vx0 = NAN, vx0p = NAN, vl = val_loss(&st, st.ema, &vb, &val, &sch, vseed, &vx0);
                val_loss(&st, st.params, &vb, &val, &sch, vseed, &vx0p);
                probes_validate(&st, o, probes, pcsv, &vb, &val, &sch, vseed);
                fprintf(csv, "%d,,,,,,%.2f,%.6f,%.6f,%.2f,%.6f\n", st.step, now_sec() - t_start, vl, vx0, st.cpu_seconds, vx0p);
                dr_train_progress pr = {.step = st.step, .steps = opt->steps, .loss_smooth = st.loss_smooth,
                                        .val_loss = vl, .val_x0_mse = vx0, .cpu_seconds = st.cpu_seconds,
                                        .is_val = 1};
                if (o->progress) o->progress(&pr, o->user);
            }
            break;
        }
        const double cpu0 = cpu_sec();
        const int B = opt->batch, nb = gt.hi - gt.lo;
        double *mine = xd, *heads = xd + 2 * (size_t)B + 2, *per = heads + 2 * (size_t)gt.N;
        rc = fill_batch(&bb, &ds, &sch, opt->seed, (uint64_t)st.step, st.info.target_scale, 0, gt.lo, gt.hi);
        if (rc != DR_OK) goto done;
        /* every rank's cancel request (all stop at the same step) and the
         * generated pixels of its samples (the loss's denominator is the batch's) */
        mine[0] = o->cancel && *o->cancel;
        for (int b = gt.lo; b < gt.hi; b++) mine[1 + b - gt.lo] = sample_count(&bb, b);
        if ((rc = exchange_doubles(&gt, mine, 1, 1, heads, per)) != DR_OK) goto done;
        int cancel = 0;
        for (int r = 0; r < gt.N; r++) cancel |= heads[r] != 0;
        if (cancel) {
            rc = root ? checkpoint_save(&st, o->out_path) : DR_OK;
            if (rc == DR_OK) rc = dr_error(DR_ERR_CANCELLED, "interrupted at step %d; checkpoint %s written", st.step, o->out_path);
            goto done;
        }
        double count = 0;
        for (int b = 0; b < B; b++) count += per[b];
        count *= st.info.cfg.out_channels;
        if (count <= 0) count = 1;
        leaf_ctx lc = {&bb, &st, count, per + B};
        if ((rc = tree_grad(&gt, &lc)) != DR_OK) goto done;
        /* every rank's CPU time and its samples' loss sums and t */
        mine[0] = cpu_sec() - cpu0;
        for (int b = gt.lo; b < gt.hi; b++) {
            mine[1 + 2 * (b - gt.lo)] = lc.loss_b[b];
            mine[2 + 2 * (b - gt.lo)] = bb.t[b];
        }
        (void)nb;
        if ((rc = exchange_doubles(&gt, mine, 1, 2, heads, per + 2 * (size_t)B)) != DR_OK) goto done;
        double loss = 0, tm = 0, step_cpu = 0;
        for (int b = 0; b < B; b++) {
            loss += per[2 * (size_t)B + 2 * b];
            tm += per[2 * (size_t)B + 2 * b + 1];
        }
        loss /= count;
        for (int r = 0; r < gt.N; r++) step_cpu += heads[r];
        if (!isfinite(loss)) {
            rc = dr_error(DR_ERR_NUMERIC, "loss is %g at step %d: stopped; the last checkpoint (step %d) is kept", loss,
                          st.step, last_ckpt_step);
            goto done;
        }
        double gn = grad_norm(st.grads, st.L.n_floats);
        if (!isfinite(gn)) {
            rc = dr_error(DR_ERR_NUMERIC, "gradient norm is %g at step %d: stopped; the last checkpoint (step %d) is kept",
                          gn, st.step, last_ckpt_step);
            goto done;
        }
        double lr = opt->lr * fmin(1.0, (st.step + 1.0) / fmax(1.0, opt->warmup_steps));
        double clip = opt->grad_clip > 0 && gn > opt->grad_clip ? opt->grad_clip / gn : 1.0;
        adamw_update(&st, lr, clip);
        ema_update(&st);
        for (int k = 0; probes && k < o->n_ema_probe; k++)
            ema_update_block(probes + (size_t)k * st.L.n_floats, st.params, st.L.n_floats, o->ema_probe[k], st.step);
        /* the step's own CPU time, validation and checkpoints excluded; with
         * several ranks, the sum of theirs up to the gradient (the same
         * number on every rank, so they stop on a CPU budget together) */
        st.cpu_seconds += gt.N > 1 ? step_cpu : cpu_sec() - cpu0;
        st.loss_smooth = st.step == 0 || st.loss_smooth <= 0 ? loss : 0.98 * st.loss_smooth + 0.02 * loss;
        st.step++;
        steps_since++;
        double now = now_sec();
        dr_train_progress pr = {.step = st.step, .steps = opt->steps, .loss = loss, .loss_smooth = st.loss_smooth,
                                .lr = lr, .grad_norm = gn, .cpu_seconds = st.cpu_seconds, .ranks = gt.N,
                                .reduce_seconds = gt.reduce_sec};
        pr.steps_per_sec = steps_since / fmax(now - t_last, 1e-9);
        double vl = NAN, vx0 = NAN, vx0p = NAN;
        if (vb.B && opt->val_every > 0 && st.step % opt->val_every == 0) {
            vl = val_loss(&st, st.ema, &vb, &val, &sch, vseed, &vx0);
            /* the raw parameters too: whether the EMA's averaging helps at this
             * horizon (the EMA decay lever, docs/TRAINING.md) */
            val_loss(&st, st.params, &vb, &val, &sch, vseed, &vx0p);
            probes_validate(&st, o, probes, pcsv, &vb, &val, &sch, vseed);
            pr.val_loss = vl;
            pr.val_x0_mse = vx0;
            pr.is_val = 1;
        }
        if (csv) {
            fprintf(csv, "%d,%.6f,%.6f,%.6g,%.4f,%.1f,%.2f,", st.step, loss, st.loss_smooth, lr, gn, tm / B, now - t_start);
            if (isfinite(vl)) fprintf(csv, "%.6f,%.6f", vl, vx0);
            else fputc(',', csv);
            fprintf(csv, ",%.2f,", st.cpu_seconds);
            if (isfinite(vx0p)) fprintf(csv, "%.6f", vx0p);
            fputc('\n', csv);
        }
        if (o->progress && root) o->progress(&pr, o->user);
        if (now - t_last > 30) { /* steps/s over a sliding window */
            t_last = now;
            steps_since = 0;
        }
        if ((opt->checkpoint_every > 0 && st.step % opt->checkpoint_every == 0) || st.step == opt->steps) {
            if (root) {
                fflush(csv);
                rc = checkpoint_save(&st, o->out_path);
            }
            if (rc != DR_OK) goto done;
            last_ckpt_step = st.step;
        }
    }
    if (o->export_path && root) rc = checkpoint_export(&st, o->export_path, 1);
done:
    if (csv) fclose(csv);
    if (pcsv) fclose(pcsv);
    free(probes);
    grad_tree_free(&gt);
    free(xd);
    batch_free(&bb);
    batch_free(&vb);
    dataset_free(&ds);
    dataset_free(&val);
    dr_schedule_free(&sch);
    train_state_free(&st);
    return rc;
}

int dr_train_validate(const dr_train_options *o, double *val_loss_out, double *val_x0_mse) {
    if (!o->val_dir) return dr_error(DR_ERR_INVALID, "train: validation needs --val");
    if (!!o->resume_path == !!o->init_path)
        return dr_error(DR_ERR_INVALID, "train: validation needs either a checkpoint (--resume) or weights (--init)");
    train_state st;
    int rc = o->resume_path ? checkpoint_load(&st, o->resume_path) : train_state_from_weights(&st, o);
    if (rc != DR_OK) {
        if (o->init_path) train_state_free(&st);
        return rc;
    }
    if (o->init_path) {
        st.opt.batch = o->batch;
        st.opt.patch = o->patch;
    }
    st.opt.val_batches = o->val_batches;
    const uint64_t vseed = o->val_seed >= 0 ? (uint64_t)o->val_seed : st.opt.seed;
    dataset val = {0};
    batch_buffers vb = {0};
    dr_schedule sch = {0};
    if ((rc = dr_schedule_build(&sch, st.info.timesteps, st.info.schedule_linear)) == DR_OK &&
        (rc = dataset_load(&val, o->val_dir, st.opt.patch, o->log, o->user)) == DR_OK &&
        (rc = batch_build(&vb, &st, &val, VAL_BATCH, st.opt.patch, VAL_BATCH)) == DR_OK) {
        *val_loss_out = val_loss(&st, o->resume_path && o->validate_params ? st.params : st.ema, &vb, &val, &sch, vseed,
                                 val_x0_mse);
        if (!isfinite(*val_loss_out)) rc = dr_error(DR_ERR_NUMERIC, "validation loss is not finite");
    }
    batch_free(&vb);
    dataset_free(&val);
    dr_schedule_free(&sch);
    train_state_free(&st);
    return rc;
}

int dr_train_export(const char *checkpoint, const char *out_path, int f16) {
    struct stat st_ck;
    if (checkpoint && stat(checkpoint, &st_ck) == 0 && same_file(out_path, &st_ck))
        return dr_error(DR_ERR_INVALID, "refusing to export into %s: it is the checkpoint being read", out_path);
    train_state st;
    DR_TRY(checkpoint_load(&st, checkpoint));
    int rc = checkpoint_export(&st, out_path, f16);
    train_state_free(&st);
    return rc;
}
