/* train_state.c - a training state: fresh, or from a weights file (--init). */
#include "train/train_state.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

void train_state_free(train_state *st) {
    unet_layout_free(&st->L);
    free(st->params);
    free(st->grads);
    free(st->adam_m);
    free(st->adam_v);
    free(st->ema);
    memset(st, 0, sizeof *st);
}

int train_state_alloc(train_state *st) {
    DR_TRY(unet_layout_build(&st->L, &st->info.cfg));
    const size_t n = st->L.n_floats;
    st->params = calloc(n, sizeof(float));
    st->grads = calloc(n, sizeof(float));
    st->adam_m = calloc(n, sizeof(float));
    st->adam_v = calloc(n, sizeof(float));
    st->ema = calloc(n, sizeof(float));
    if (!st->params || !st->grads || !st->adam_m || !st->adam_v || !st->ema) {
        train_state_free(st);
        return error_set(DR_ERR_NOMEM, "out of memory for training state (%zu parameters)", n);
    }
    return DR_OK;
}

int train_state_new(train_state *st, const dr_train_options *o) {
    memset(st, 0, sizeof *st);
    st->opt = *o;
    int in = 0, out = 0;
    DR_TRY(mode_channels(o->mode, &in, &out));
    dr_unet_config cfg = o->config;
    cfg.in_channels = in;
    cfg.out_channels = out;
    model_info_defaults(&st->info, &cfg, o->mode);
    st->info.predict_v = o->predict_v;
    st->info.schedule_linear = o->schedule_linear;
    st->info.target_scale = o->target_scale; /* 0: measured by dr_train */
    st->info.render_size = o->render_size;   /* saved with the model metadata (render_size) */
    st->info.cond_dropout = o->cond_dropout; /* and cond_dropout */
    if (mode_ops_get(o->mode)->info.flags & DR_MODE_TAKES_SCALE) {
        st->info.scale_min = o->scale_min;
        st->info.scale_max = o->scale_max;
    }
    DR_TRY(train_state_alloc(st));
    unet_init_params(&st->L, st->params, o->seed);
    for (int i = 0; i < st->L.n_params; i++) {
        const unet_param *p = &st->L.params[i];
        if (strstr(p->name, ".conv2.") || strstr(p->name, ".proj.") || strncmp(p->name, "out_conv.", 9) == 0)
            memset(st->params + p->offset, 0, p->numel * sizeof(float));
    }
    memcpy(st->ema, st->params, st->L.n_floats * sizeof(float));
    return DR_OK;
}

int train_state_from_weights(train_state *st, const dr_train_options *o) {
    memset(st, 0, sizeof *st);
    st->opt = *o;
    const char *path = o->init_path;
    dr_model *m = NULL;
    DR_TRY(dr_model_load(path, &m));
    if (o->mode != DR_MODE_NONE && m->info.mode != o->mode) {
        const dr_mode have = m->info.mode;
        dr_model_free(m);
        return error_set(DR_ERR_INVALID, "%s: weights for %s, but training %s", path, dr_mode_name(have),
                         dr_mode_name(o->mode));
    }
    const char *ts = dr_tensor_file_meta(&m->meta, "train_steps");
    char *end = NULL;
    const long steps = ts ? strtol(ts, &end, 10) : 0;
    if (ts && (end == ts || *end || ts[0] == '+' || ts[0] == ' ' || steps < 0 || steps > 1000000000L)) {
        dr_model_free(m);
        return error_set(DR_ERR_FORMAT, "%s: metadata train_steps = '%s' is not a step count", path, ts);
    }
    /* the weights' model description wins over the options: the network
     * must keep the shape and the conventions it was trained with */
    st->info = m->info;
    st->opt.mode = m->info.mode;
    st->opt.config = m->info.cfg;
    st->opt.predict_v = m->info.predict_v;
    st->opt.schedule_linear = m->info.schedule_linear;
    st->opt.target_scale = m->info.target_scale;
    st->opt.scale_min = m->info.scale_min;
    st->opt.scale_max = m->info.scale_max;
    /* the crops' working scale is this run's choice, not the weights' */
    st->info.render_size = o->render_size;
    st->info.cond_dropout = o->cond_dropout; /* likewise: this run's */
    st->info.guidance = 0;                   /* chosen at export (train --guidance), not inherited */
    int rc = train_state_alloc(st);
    if (rc == DR_OK) {
        memcpy(st->params, m->params, st->L.n_floats * sizeof(float));
        memcpy(st->ema, m->params, st->L.n_floats * sizeof(float));
        st->init_steps = (int)steps;
        st->ema_warmup_start = (int)steps;
    }
    dr_model_free(m);
    return rc;
}
