#include "train/checkpoint.h"

#include "common/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CKPT_FORMAT "diffrestore-checkpoint"

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t state_checksum(const float *const arrays[4], size_t n, int step) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int k = 0; k < 4; k++) h = fnv1a(h, arrays[k], n * sizeof(float));
    return fnv1a(h, &step, sizeof step);
}

int checkpoint_save(const train_state *st, const char *path) {
    dr_tensor_file tf = {0};
    const size_t n = st->L.n_floats;
    const int64_t shape[1] = {(int64_t)n};
    const float *arrays[4] = {st->params, st->ema, st->adam_m, st->adam_v};
    static const char *names[4] = {"params", "ema", "adam_m", "adam_v"};
    const dr_train_options *o = &st->opt;
    char buf[128];
    int rc = model_meta_from_config(&tf, &st->info);
    for (int k = 0; rc == DR_OK && k < 4; k++) rc = dr_tensor_file_add(&tf, names[k], 1, shape, arrays[k]);
#define SET(key, fmt, val)                                                                                             \
    do {                                                                                                               \
        if (rc == DR_OK) {                                                                                             \
            snprintf(buf, sizeof buf, fmt, val);                                                                       \
            rc = dr_tensor_file_set_meta(&tf, key, buf);                                                               \
        }                                                                                                              \
    } while (0)
    SET("format", "%s", CKPT_FORMAT);
    SET("step", "%d", st->step);
    SET("init_steps", "%d", st->init_steps);
    if (st->ema_warmup_start > 0) SET("ema_warmup_start", "%d", st->ema_warmup_start); /* absent: 0 */
    SET("steps", "%d", o->steps);
    SET("loss_smooth", "%.17g", st->loss_smooth);
    SET("data_hash", "%016" PRIx64, st->data_hash);
    if (rc == DR_OK) rc = dr_tensor_file_set_meta(&tf, "data_dir", st->opt.data_dir ? st->opt.data_dir : st->data_dir);
    SET("checksum", "%016" PRIx64, state_checksum(arrays, n, st->step));
    SET("batch", "%d", o->batch);
    SET("patch", "%d", o->patch);
    SET("lr", "%.9g", o->lr);
    SET("warmup_steps", "%.9g", o->warmup_steps);
    SET("weight_decay", "%.9g", o->weight_decay);
    SET("grad_clip", "%.9g", o->grad_clip);
    SET("ema_decay", "%.9g", o->ema_decay);
    SET("seed", "%" PRIu64, o->seed);
    SET("hole_min", "%.9g", o->hole_min);
    SET("hole_max", "%.9g", o->hole_max);
    SET("val_batches", "%d", o->val_batches);
    SET("loss_weight", "%s", o->loss_weight == DR_LOSS_MIN_SNR ? "min_snr" : "uniform");
    SET("snr_gamma", "%.9g", o->snr_gamma);
    SET("t_sampling", "%s", o->t_sampling == DR_T_LOGNORMAL ? "lognormal" : "uniform");
    SET("t_mean", "%.9g", o->t_mean);
    SET("t_std", "%.9g", o->t_std);
    SET("masks", "%s", o->masks == DR_MASKS_DAMAGE ? "damage" : "legacy");
    SET("scale_dist", "%s", o->scale_dist == DR_SCALE_DIST_HIGH ? "high" : "uniform");
    SET("cpu_seconds", "%.17g", st->cpu_seconds);
    SET("ranks", "%d", st->ranks > 0 ? st->ranks : 1);
    SET("micro_batch", "%d", o->micro_batch);
    if (o->dropout > 0) SET("dropout", "%.9g", o->dropout);                  /* absent: 0, as every older checkpoint */
    if (o->augment == DR_AUGMENT_DIHEDRAL) SET("augment", "%s", "dihedral"); /* absent: flip, as every older one */
    if (o->zoom_max != 4) SET("zoom_max", "%.17g", o->zoom_max);             /* absent: 4, as every older one */
    /* absent: no anneal, as every older one */
    if (o->anneal_steps > 0) {
        SET("anneal_steps", "%d", o->anneal_steps);
        SET("anneal_stages", "%d", o->anneal_stages);
    }
#undef SET
    if (rc == DR_OK) rc = dr_tensor_file_write(path, &tf, 0);
    dr_tensor_file_free(&tf);
    return rc;
}

static int meta_num(const dr_tensor_file *tf, const char *path, const char *key, double *out) {
    const char *v = dr_tensor_file_meta(tf, key);
    char *end;
    if (!v || !*v) return error_set(DR_ERR_FORMAT, "%s: checkpoint metadata '%s' is missing", path, key);
    *out = strtod(v, &end);
    if (*end) return error_set(DR_ERR_FORMAT, "%s: checkpoint metadata '%s' = '%s' is not a number", path, key, v);
    return DR_OK;
}

static int meta_hex(const dr_tensor_file *tf, const char *path, const char *key, uint64_t *out) {
    const char *v = dr_tensor_file_meta(tf, key);
    char *end;
    if (!v || !*v) return error_set(DR_ERR_FORMAT, "%s: checkpoint metadata '%s' is missing", path, key);
    *out = strtoull(v, &end, 16);
    if (*end) return error_set(DR_ERR_FORMAT, "%s: checkpoint metadata '%s' is not hex", path, key);
    return DR_OK;
}

int checkpoint_load(train_state *st, const char *path) {
    memset(st, 0, sizeof *st);
    dr_tensor_file tf;
    DR_TRY(dr_tensor_file_read(path, &tf));
    int rc = DR_OK;
    const char *fmt = dr_tensor_file_meta(&tf, "format");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0) {
        rc = error_set(DR_ERR_FORMAT, "%s: not a diffrestore training checkpoint (format '%s')", path, fmt ? fmt : "");
        goto fail;
    }
    /* The model part of the metadata is a weights file's: parse it as one. */
    if ((rc = dr_tensor_file_set_meta(&tf, "format", "diffrestore-unet")) != DR_OK) goto fail;
    if ((rc = model_config_from_meta(&tf, path, &st->info)) != DR_OK) goto fail;
    if ((rc = train_state_alloc(st)) != DR_OK) goto fail;
    static const char *names[4] = {"params", "ema", "adam_m", "adam_v"};
    float *dst[4] = {st->params, st->ema, st->adam_m, st->adam_v};
    for (int k = 0; k < 4; k++) {
        const dr_tensor *t = dr_tensor_file_get(&tf, names[k]);
        if (!t || t->ndim != 1 || (size_t)t->numel != st->L.n_floats) {
            rc = error_set(DR_ERR_FORMAT, "%s: tensor '%s' is missing or has the wrong size for the config", path,
                           names[k]);
            goto fail;
        }
        memcpy(dst[k], t->data, st->L.n_floats * sizeof(float));
    }
    if (tf.n_tensors != 4) {
        rc = error_set(DR_ERR_FORMAT, "%s: %d tensors, a checkpoint has 4", path, tf.n_tensors);
        goto fail;
    }
    double v;
    dr_train_options_init(&st->opt);
    st->opt.mode = st->info.mode;
    st->opt.config = st->info.cfg;
#define NUM(key, field, type)                                                                                          \
    do {                                                                                                               \
        if ((rc = meta_num(&tf, path, key, &v)) != DR_OK) goto fail;                                                   \
        st->opt.field = (type)v;                                                                                       \
    } while (0)
    NUM("steps", steps, int);
    NUM("batch", batch, int);
    NUM("patch", patch, int);
    NUM("lr", lr, float);
    NUM("warmup_steps", warmup_steps, float);
    NUM("weight_decay", weight_decay, float);
    NUM("grad_clip", grad_clip, float);
    NUM("ema_decay", ema_decay, float);
    NUM("hole_min", hole_min, float);
    NUM("hole_max", hole_max, float);
    NUM("val_batches", val_batches, int);
    /* keys added later: older checkpoints lack them and keep the defaults
     * they were trained with (uniform weight and t, no CPU time recorded) */
#define OPT_NUM(key, field, type, lo, hi)                                                                              \
    do {                                                                                                               \
        if (!dr_tensor_file_meta(&tf, key)) break;                                                                     \
        if ((rc = meta_num(&tf, path, key, &v)) != DR_OK) goto fail;                                                   \
        if (!(v >= (lo) && v <= (hi))) {                                                                               \
            rc = error_set(DR_ERR_FORMAT, "%s: checkpoint metadata '%s' out of range", path, key);                     \
            goto fail;                                                                                                 \
        }                                                                                                              \
        field = (type)v;                                                                                               \
    } while (0)
    OPT_NUM("snr_gamma", st->opt.snr_gamma, float, 1e-3, 1e3);
    OPT_NUM("t_mean", st->opt.t_mean, float, -50, 50);
    OPT_NUM("t_std", st->opt.t_std, float, 1e-3, 50);
    OPT_NUM("cpu_seconds", st->cpu_seconds, double, 0, 1e12);
    st->ranks = 1; /* older checkpoints: written by one process */
    OPT_NUM("ranks", st->ranks, int, 1, 1e7);
    st->opt.micro_batch = st->opt.batch; /* older checkpoints: one forward and backward per batch */
    OPT_NUM("micro_batch", st->opt.micro_batch, int, 1, 1024);
    if (st->opt.batch % st->opt.micro_batch != 0) {
        rc = error_set(DR_ERR_FORMAT, "%s: checkpoint micro_batch %d does not divide its batch %d", path,
                       st->opt.micro_batch, st->opt.batch);
        goto fail;
    }
    OPT_NUM("dropout", st->opt.dropout, float, 0, 0.99999994); /* the largest float below 1 */
    st->opt.zoom_max = 4;                                      /* older checkpoints: the zoom every run had */
    OPT_NUM("zoom_max", st->opt.zoom_max, double, 1, 4);
    OPT_NUM("anneal_steps", st->opt.anneal_steps, int, 0, 1e9); /* older checkpoints: 0, none */
    OPT_NUM("anneal_stages", st->opt.anneal_stages, int, 1, 8);
    if (st->opt.anneal_steps > 0 && st->opt.anneal_steps < st->opt.anneal_stages) {
        rc = error_set(DR_ERR_FORMAT, "%s: checkpoint anneal_steps %d is fewer than its %d stages", path,
                       st->opt.anneal_steps, st->opt.anneal_stages);
        goto fail;
    }
    st->init_steps = 0; /* came with train --init; older checkpoints have none */
    OPT_NUM("init_steps", st->init_steps, int, 0, 1e9);
    st->ema_warmup_start = 0; /* the EMA warm-up's start (train --init runs since session 53) */
    OPT_NUM("ema_warmup_start", st->ema_warmup_start, int, 0, 1e9);
#undef OPT_NUM
#undef NUM
    {
        const char *lw = dr_tensor_file_meta(&tf, "loss_weight"), *ts = dr_tensor_file_meta(&tf, "t_sampling");
        if (lw && strcmp(lw, "uniform") && strcmp(lw, "min_snr")) {
            rc = error_set(DR_ERR_FORMAT, "%s: checkpoint loss_weight '%s' is not uniform or min_snr", path, lw);
            goto fail;
        }
        if (ts && strcmp(ts, "uniform") && strcmp(ts, "lognormal")) {
            rc = error_set(DR_ERR_FORMAT, "%s: checkpoint t_sampling '%s' is not uniform or lognormal", path, ts);
            goto fail;
        }
        st->opt.loss_weight = lw && !strcmp(lw, "min_snr") ? DR_LOSS_MIN_SNR : DR_LOSS_UNIFORM;
        st->opt.t_sampling = ts && !strcmp(ts, "lognormal") ? DR_T_LOGNORMAL : DR_T_UNIFORM;
        /* issue 14 lever 4b/5: absent in older checkpoints, which trained
         * with the legacy masks and uniform scales */
        const char *mk = dr_tensor_file_meta(&tf, "masks"), *sd = dr_tensor_file_meta(&tf, "scale_dist");
        if (mk && strcmp(mk, "legacy") && strcmp(mk, "damage")) {
            rc = error_set(DR_ERR_FORMAT, "%s: checkpoint masks '%s' is not legacy or damage", path, mk);
            goto fail;
        }
        if (sd && strcmp(sd, "uniform") && strcmp(sd, "high")) {
            rc = error_set(DR_ERR_FORMAT, "%s: checkpoint scale_dist '%s' is not uniform or high", path, sd);
            goto fail;
        }
        st->opt.masks = mk && !strcmp(mk, "damage") ? DR_MASKS_DAMAGE : DR_MASKS_LEGACY;
        st->opt.scale_dist = sd && !strcmp(sd, "high") ? DR_SCALE_DIST_HIGH : DR_SCALE_DIST_UNIFORM;
        const char *ag = dr_tensor_file_meta(&tf, "augment"); /* absent: flip (every run before it) */
        if (ag && strcmp(ag, "flip") && strcmp(ag, "dihedral")) {
            rc = error_set(DR_ERR_FORMAT, "%s: checkpoint augment '%s' is not flip or dihedral", path, ag);
            goto fail;
        }
        st->opt.augment = ag && !strcmp(ag, "dihedral") ? DR_AUGMENT_DIHEDRAL : DR_AUGMENT_FLIP;
    }
    st->opt.scale_min = st->info.scale_min;
    st->opt.scale_max = st->info.scale_max;
    st->opt.predict_v = st->info.predict_v;
    st->opt.schedule_linear = st->info.schedule_linear;
    st->opt.target_scale = st->info.target_scale;
    st->opt.render_size = st->info.render_size; /* metadata render_size; absent in older checkpoints: 0 */
    if ((rc = meta_num(&tf, path, "step", &v)) != DR_OK) goto fail;
    st->step = (int)v;
    if ((rc = meta_num(&tf, path, "loss_smooth", &v)) != DR_OK) goto fail;
    st->loss_smooth = v;
    {
        const char *sv = dr_tensor_file_meta(&tf, "seed");
        if (!sv) {
            rc = error_set(DR_ERR_FORMAT, "%s: checkpoint metadata 'seed' is missing", path);
            goto fail;
        }
        st->opt.seed = strtoull(sv, NULL, 10);
    }
    {
        const char *dd = dr_tensor_file_meta(&tf, "data_dir"); /* absent in older checkpoints */
        snprintf(st->data_dir, sizeof st->data_dir, "%s", dd ? dd : "");
    }
    uint64_t sum;
    if ((rc = meta_hex(&tf, path, "data_hash", &st->data_hash)) != DR_OK) goto fail;
    if ((rc = meta_hex(&tf, path, "checksum", &sum)) != DR_OK) goto fail;
    const float *arrays[4] = {st->params, st->ema, st->adam_m, st->adam_v};
    if (sum != state_checksum(arrays, st->L.n_floats, st->step)) {
        rc = error_set(DR_ERR_FORMAT, "%s: checksum mismatch: the checkpoint is damaged", path);
        goto fail;
    }
    if (st->opt.batch < 1 || st->opt.patch < 8 || st->step < 0) {
        rc = error_set(DR_ERR_FORMAT, "%s: checkpoint options out of range", path);
        goto fail;
    }
    dr_tensor_file_free(&tf);
    return DR_OK;
fail:
    dr_tensor_file_free(&tf);
    train_state_free(st);
    return rc;
}

int checkpoint_export(const train_state *st, const char *path, int f16) {
    const double ts = st->info.target_scale;
    if (!(ts >= DR_TARGET_SCALE_MIN && ts <= DR_TARGET_SCALE_MAX))
        return error_set(DR_ERR_INVALID, "%s: target_scale %.4g is outside %g..%g: these weights would not load", path,
                         ts, DR_TARGET_SCALE_MIN, DR_TARGET_SCALE_MAX);
    dr_tensor_file tf = {0};
    char buf[1024];
    int rc = model_meta_from_config(&tf, &st->info);
    for (int i = 0; rc == DR_OK && i < st->L.n_params; i++) {
        const unet_param *p = &st->L.params[i];
        int64_t shape[4];
        for (int d = 0; d < p->ndim; d++) shape[d] = p->shape[d];
        rc = dr_tensor_file_add(&tf, p->name, p->ndim, shape, st->ema + p->offset);
    }
    if (rc == DR_OK) {
        snprintf(buf, sizeof buf, "%d", st->init_steps + st->step);
        rc = dr_tensor_file_set_meta(&tf, "train_steps", buf);
    }
    if (rc == DR_OK) {
        char cont[64] = "";
        if (st->init_steps) snprintf(cont, sizeof cont, ", continuing from weights of %d steps", st->init_steps);
        const char *dir = st->opt.data_dir ? st->opt.data_dir : st->data_dir[0] ? st->data_dir : "training data";
        snprintf(buf, sizeof buf,
                 "%.512s (data hash %016" PRIx64 "), batch %d, patch %d, lr %g, EMA %g, seed %" PRIu64 "%s", dir,
                 st->data_hash, st->opt.batch, st->opt.patch, st->opt.lr, st->opt.ema_decay, st->opt.seed, cont);
        rc = dr_tensor_file_set_meta(&tf, "train_data", buf);
    }
    if (rc == DR_OK) {
        time_t now = time(NULL);
        struct tm tmv;
        gmtime_r(&now, &tmv);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
        rc = dr_tensor_file_set_meta(&tf, "created", buf);
    }
    if (rc == DR_OK) rc = dr_tensor_file_write(path, &tf, f16);
    dr_tensor_file_free(&tf);
    return rc;
}
