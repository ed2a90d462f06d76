/*
 * model.c - dr_model: a U-Net's weights plus the metadata that describes
 * them (MODEL.md, "Weights file"), and a cached inference run.
 */
#include "api/model_internal.h"

#include "common/error.h"
#include "nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>

const char *dr_mode_name(dr_mode m) {
    const mode_ops *ops = mode_ops_get(m);
    return ops ? ops->info.name : "none";
}

dr_mode dr_mode_from_name(const char *name) {
    const mode_ops *ops = mode_ops_by_name(name);
    return ops ? ops->info.mode : DR_MODE_NONE;
}

void dr_set_threads(int n) { nn_init_threads(n); }
int dr_get_threads(void) { return nn_threads(); }

int dr_set_precision(dr_precision p) {
    if (p != DR_PRECISION_FP32 && p != DR_PRECISION_BF16 && p != DR_PRECISION_AUTO)
        return error_set(DR_ERR_UNSUPPORTED, "unknown precision %d", (int)p);
    if (nn_set_precision((int)p) != 0)
        return error_set(DR_ERR_UNSUPPORTED, "bf16 needs AVX512-BF16, which this CPU does not have (fp32 is used)");
    return DR_OK;
}
dr_precision dr_get_precision(void) { return (dr_precision)nn_precision(); }
int dr_bf16_active(void) { return nn_use_bf16(); }
static int g_amx_off;
int dr_amx_available(void) {
    nn_amx_hide(0); /* what the machine has, whatever dr_set_amx said */
    const int a = nn_amx_available();
    nn_amx_hide(g_amx_off);
    return a;
}
void dr_set_amx(int on) { nn_amx_hide(g_amx_off = !on); }
int dr_amx_active(void) { return nn_use_amx(); }

/* ------------------------------------------------------------------ metadata */

static int meta_int(const dr_tensor_file *tf, const char *path, const char *key, int lo, int hi, int *out) {
    const char *v = dr_tensor_file_meta(tf, key);
    if (!v) return error_set(DR_ERR_FORMAT, "%s: metadata '%s' is missing", path, key);
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi)
        return error_set(DR_ERR_FORMAT, "%s: metadata '%s' = '%s' is not an integer in %d..%d", path, key, v, lo, hi);
    *out = (int)x;
    return DR_OK;
}

static int meta_float(const dr_tensor_file *tf, const char *path, const char *key, double def, double lo, double hi,
                      double *out) {
    const char *v = dr_tensor_file_meta(tf, key);
    if (!v) {
        *out = def;
        return DR_OK;
    }
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi))
        return error_set(DR_ERR_FORMAT, "%s: metadata '%s' = '%s' is not a number in %g..%g", path, key, v, lo, hi);
    *out = x;
    return DR_OK;
}

/* Parse "1,2,2,4" (or "" when allow_empty) into ints. */
static int meta_list(const dr_tensor_file *tf, const char *path, const char *key, int allow_empty, int *vals, int *n) {
    const char *v = dr_tensor_file_meta(tf, key);
    if (!v) return error_set(DR_ERR_FORMAT, "%s: metadata '%s' is missing", path, key);
    *n = 0;
    const char *p = v;
    if (!*p) {
        if (allow_empty) return DR_OK;
        return error_set(DR_ERR_FORMAT, "%s: metadata '%s' is empty", path, key);
    }
    for (;;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 4096 || *n >= DR_MAX_LEVELS)
            return error_set(DR_ERR_FORMAT, "%s: metadata '%s' = '%s' is not a list of small integers", path, key, v);
        vals[(*n)++] = (int)x;
        if (!*end) return DR_OK;
        if (*end != ',') return error_set(DR_ERR_FORMAT, "%s: metadata '%s' = '%s' is not a comma list", path, key, v);
        p = end + 1;
    }
}

int model_config_from_meta(const dr_tensor_file *tf, const char *path, model_info *mi) {
    memset(mi, 0, sizeof *mi);
    dr_unet_config *c = &mi->cfg;
    const char *fmt = dr_tensor_file_meta(tf, "format");
    if (!fmt || strcmp(fmt, "diffrestore-unet") != 0)
        return error_set(DR_ERR_FORMAT, "%s: not a diffrestore weights file (metadata format = '%s')", path,
                         fmt ? fmt : "(missing)");
    const char *mode = dr_tensor_file_meta(tf, "mode");
    mi->mode = dr_mode_from_name(mode);
    if (mi->mode == DR_MODE_NONE) {
        char names[128];
        mode_names(names, sizeof names);
        return error_set(DR_ERR_FORMAT, "%s: unknown mode '%s' (%s)", path, mode ? mode : "(missing)", names);
    }
    int vals[DR_MAX_LEVELS], n;
    DR_TRY(meta_int(tf, path, "in_channels", 1, 64, &c->in_channels));
    DR_TRY(meta_int(tf, path, "out_channels", 1, 64, &c->out_channels));
    DR_TRY(meta_int(tf, path, "base_channels", 2, 1024, &c->base_channels));
    DR_TRY(meta_int(tf, path, "num_res_blocks", 1, 8, &c->num_res_blocks));
    DR_TRY(meta_int(tf, path, "groups", 1, 1024, &c->groups));
    DR_TRY(meta_list(tf, path, "channel_mult", 0, vals, &n));
    c->n_levels = n;
    for (int i = 0; i < n; i++) c->channel_mult[i] = vals[i];
    DR_TRY(meta_list(tf, path, "attention_levels", 1, vals, &n));
    for (int i = 0; i < n; i++) {
        if (vals[i] >= c->n_levels)
            return error_set(DR_ERR_FORMAT, "%s: attention level %d, but the model has %d levels", path, vals[i],
                             c->n_levels);
        c->attention[vals[i]] = 1;
    }
    int in = 0, out = 0;
    mode_channels(mi->mode, &in, &out);
    if (c->in_channels != in || c->out_channels != out)
        return error_set(DR_ERR_FORMAT, "%s: mode %s needs %d/%d in/out channels, metadata says %d/%d", path, mode, in,
                         out, c->in_channels, c->out_channels);
    int rc = dr_unet_config_validate(c);
    if (rc != DR_OK) return error_prefix(DR_ERR_FORMAT, "%s", path);
    DR_TRY(meta_int(tf, path, "timesteps", 2, 100000, &mi->timesteps));
    const char *sched = dr_tensor_file_meta(tf, "schedule");
    if (!sched || (strcmp(sched, "cosine") && strcmp(sched, "linear")))
        return error_set(DR_ERR_FORMAT, "%s: schedule '%s' is not cosine or linear", path, sched ? sched : "(missing)");
    mi->schedule_linear = strcmp(sched, "linear") == 0;
    const char *pred = dr_tensor_file_meta(tf, "prediction");
    if (!pred || (strcmp(pred, "eps") && strcmp(pred, "v")))
        return error_set(DR_ERR_FORMAT, "%s: prediction '%s' is not eps or v", path, pred ? pred : "(missing)");
    mi->predict_v = strcmp(pred, "v") == 0;
    double ts;
    DR_TRY(meta_float(tf, path, "target_scale", 1.0, DR_TARGET_SCALE_MIN, DR_TARGET_SCALE_MAX, &ts));
    mi->target_scale = (float)ts;
    double smin = 1, smax = 1;
    const mode_ops *ops = mode_ops_get(mi->mode);
    if (ops->info.flags & DR_MODE_TAKES_SCALE) {
        DR_TRY(meta_float(tf, path, "scale_min", 2.0, 1.0, 16.0, &smin));
        DR_TRY(meta_float(tf, path, "scale_max", 4.0, 1.0, 16.0, &smax));
        if (smin > smax) return error_set(DR_ERR_FORMAT, "%s: scale_min %g > scale_max %g", path, smin, smax);
    }
    mi->scale_min = (float)smin;
    mi->scale_max = (float)smax;
    /* optional (docs/TRAINING.md): the working resolution colorize was trained at */
    mi->render_size = 0;
    if (dr_tensor_file_meta(tf, "render_size")) {
        DR_TRY(meta_int(tf, path, "render_size", 0, DR_RENDER_SIZE_MAX, &mi->render_size));
        if (mi->render_size > 0 &&
            (!(ops->info.flags & DR_MODE_TAKES_RENDER_SIZE) || mi->render_size < DR_RENDER_SIZE_MIN))
            return error_set(DR_ERR_FORMAT, "%s: metadata render_size = %d (only colorize, %d..%d)", path,
                             mi->render_size, DR_RENDER_SIZE_MIN, DR_RENDER_SIZE_MAX);
    }
    /* optional (docs/TRAINING.md, "Classifier-free guidance"): absent in weights
     * trained without it */
    mi->cond_dropout = 0;
    if (dr_tensor_file_meta(tf, "cond_dropout")) {
        double cd;
        DR_TRY(meta_float(tf, path, "cond_dropout", 0.0, 0.0, 1.0, &cd));
        if (!(cd < 1)) return error_set(DR_ERR_FORMAT, "%s: metadata cond_dropout = %g (0 <= it < 1)", path, cd);
        mi->cond_dropout = (float)cd;
    }
    /* optional: the guidance weight the weights ship with (dr_params.guidance's AUTO) */
    mi->guidance = 0;
    if (dr_tensor_file_meta(tf, "guidance")) {
        double g;
        DR_TRY(meta_float(tf, path, "guidance", 0.0, 0.0, 20.0, &g));
        if (g > 0 && g != 1 && !(mi->cond_dropout > 0))
            return error_set(DR_ERR_FORMAT, "%s: metadata guidance = %g needs cond_dropout (classifier-free guidance)",
                             path, g);
        mi->guidance = (float)g;
    }
    return DR_OK;
}

static void fmt_list(char *buf, size_t n, const int *v, int count) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < count && o < n; i++) o += (size_t)snprintf(buf + o, n - o, i ? ",%d" : "%d", v[i]);
}

int model_meta_from_config(dr_tensor_file *tf, const model_info *mi) {
    const dr_unet_config *c = &mi->cfg;
    char buf[128];
    int att[DR_MAX_LEVELS], na = 0;
    for (int l = 0; l < c->n_levels; l++)
        if (c->attention[l]) att[na++] = l;
#define SETI(k, v)                                                                                                     \
    do {                                                                                                               \
        snprintf(buf, sizeof buf, "%d", (v));                                                                          \
        DR_TRY(dr_tensor_file_set_meta(tf, k, buf));                                                                   \
    } while (0)
#define SETF(k, v)                                                                                                     \
    do {                                                                                                               \
        snprintf(buf, sizeof buf, "%.9g", (double)(v));                                                                \
        DR_TRY(dr_tensor_file_set_meta(tf, k, buf));                                                                   \
    } while (0)
    DR_TRY(dr_tensor_file_set_meta(tf, "format", "diffrestore-unet"));
    DR_TRY(dr_tensor_file_set_meta(tf, "format_version", "1"));
    DR_TRY(dr_tensor_file_set_meta(tf, "mode", dr_mode_name(mi->mode)));
    SETI("in_channels", c->in_channels);
    SETI("out_channels", c->out_channels);
    SETI("base_channels", c->base_channels);
    fmt_list(buf, sizeof buf, c->channel_mult, c->n_levels);
    DR_TRY(dr_tensor_file_set_meta(tf, "channel_mult", buf));
    SETI("num_res_blocks", c->num_res_blocks);
    fmt_list(buf, sizeof buf, att, na);
    DR_TRY(dr_tensor_file_set_meta(tf, "attention_levels", buf));
    SETI("groups", c->groups);
    SETI("timesteps", mi->timesteps);
    DR_TRY(dr_tensor_file_set_meta(tf, "schedule", mi->schedule_linear ? "linear" : "cosine"));
    DR_TRY(dr_tensor_file_set_meta(tf, "prediction", mi->predict_v ? "v" : "eps"));
    SETF("target_scale", mi->target_scale);
    if (mode_ops_get(mi->mode)->info.flags & DR_MODE_TAKES_SCALE) {
        SETF("scale_min", mi->scale_min);
        SETF("scale_max", mi->scale_max);
    }
    if (mi->render_size > 0) SETI("render_size", mi->render_size);
    if (mi->cond_dropout > 0) SETF("cond_dropout", mi->cond_dropout);
    if (mi->guidance > 0) SETF("guidance", mi->guidance);
#undef SETI
#undef SETF
    return DR_OK;
}

/* ------------------------------------------------------------------ model */

void dr_model_free(dr_model *m) {
    if (!m) return;
    unet_run_free(&m->run);
    unet_layout_free(&m->L);
    free(m->params);
    dr_tensor_file_free(&m->meta);
    free(m);
}

static int model_alloc(const model_info *mi, dr_model **out) {
    *out = NULL;
    dr_model *m = calloc(1, sizeof *m);
    if (!m) return error_set(DR_ERR_NOMEM, "out of memory");
    m->info = *mi;
    int rc = unet_layout_build(&m->L, &mi->cfg);
    if (rc != DR_OK) {
        free(m);
        return rc;
    }
    const size_t n_floats = m->L.n_floats;
    m->params = malloc(sizeof(float) * n_floats);
    if (!m->params) {
        dr_model_free(m);
        return error_set(DR_ERR_NOMEM, "out of memory for %zu parameters", n_floats);
    }
    *out = m;
    return DR_OK;
}

/* Every tensor must be a parameter of the layout, with its shape, once, and
 * none may be missing. Checked before the parameter block is allocated, so a
 * small file whose metadata claims a huge config cannot make us allocate. */
static int check_tensors(const dr_tensor_file *tf, const char *path, const unet_layout *L) {
    if (tf->n_tensors > L->n_params) {
        for (int i = 0; i < tf->n_tensors; i++)
            if (!unet_layout_find(L, tf->tensors[i].name))
                return error_set(DR_ERR_FORMAT, "%s: tensor '%s' is not a parameter of this config", path,
                                 tf->tensors[i].name);
    }
    for (int i = 0; i < tf->n_tensors; i++) {
        const dr_tensor *t = &tf->tensors[i];
        const unet_param *p = unet_layout_find(L, t->name);
        if (!p) return error_set(DR_ERR_FORMAT, "%s: tensor '%s' is not a parameter of this config", path, t->name);
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char want[64] = "", got[64] = "";
            size_t o = 0;
            for (int d = 0; d < p->ndim && o < sizeof want; d++)
                o += snprintf(want + o, sizeof want - o, d ? ",%d" : "%d", p->shape[d]);
            o = 0;
            for (int d = 0; d < t->ndim && o < sizeof got; d++)
                o += snprintf(got + o, sizeof got - o, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            return error_set(DR_ERR_FORMAT, "%s: tensor '%s' has shape [%s], the config needs [%s]", path, t->name, got,
                             want);
        }
    }
    /* names are unique in a file (the reader checks), so equal counts mean
     * every parameter is present */
    if (tf->n_tensors != L->n_params)
        for (int i = 0; i < L->n_params; i++)
            if (!dr_tensor_file_get(tf, L->params[i].name))
                return error_set(DR_ERR_FORMAT, "%s: tensor '%s' is missing", path, L->params[i].name);
    return DR_OK;
}

int model_from_tensors(const dr_tensor_file *tf, const char *path, dr_model **out) {
    *out = NULL;
    model_info mi;
    DR_TRY(model_config_from_meta(tf, path, &mi));
    unet_layout L;
    DR_TRY(unet_layout_build(&L, &mi.cfg));
    int rc = check_tensors(tf, path, &L);
    unet_layout_free(&L);
    if (rc != DR_OK) return rc;
    dr_model *m;
    DR_TRY(model_alloc(&mi, &m));
    for (int i = 0; i < tf->n_tensors; i++) {
        const unet_param *p = unet_layout_find(&m->L, tf->tensors[i].name);
        memcpy(m->params + p->offset, tf->tensors[i].data, p->numel * sizeof(float));
        /* one pass: a NaN or Inf weight would restore to black, silently */
        const float *v = m->params + p->offset;
        for (size_t k = 0; k < p->numel; k++)
            if (!isfinite(v[k])) {
                rc = error_set(DR_ERR_FORMAT,
                               "%s: tensor '%s' holds a non-finite value (%g at element %zu): damaged weights", path,
                               tf->tensors[i].name, (double)v[k], k);
                dr_model_free(m);
                return rc;
            }
    }
    for (int i = 0; rc == DR_OK && i < tf->n_meta; i++)
        rc = dr_tensor_file_set_meta(&m->meta, tf->meta_keys[i], tf->meta_values[i]);
    if (rc != DR_OK) {
        dr_model_free(m);
        return rc;
    }
    *out = m;
    return DR_OK;
}

int dr_model_load(const char *path, dr_model **out) {
    *out = NULL;
    dr_tensor_file tf;
    DR_TRY(dr_tensor_file_read(path, &tf));
    int rc = model_from_tensors(&tf, path, out);
    dr_tensor_file_free(&tf);
    return rc;
}

int dr_model_new_random(const dr_unet_config *cfg, dr_mode mode, uint64_t seed, dr_model **out) {
    *out = NULL;
    int in = 0, out_c = 0;
    DR_TRY(mode_channels(mode, &in, &out_c));
    dr_unet_config c = *cfg;
    c.in_channels = in;
    c.out_channels = out_c;
    model_info mi;
    model_info_defaults(&mi, &c, mode);
    dr_model *m;
    DR_TRY(model_alloc(&mi, &m));
    unet_init_params(&m->L, m->params, seed);
    char buf[64];
    snprintf(buf, sizeof buf, "random init, seed %llu", (unsigned long long)seed);
    int rc = dr_tensor_file_set_meta(&m->meta, "train_data", buf);
    if (rc == DR_OK) rc = dr_tensor_file_set_meta(&m->meta, "train_steps", "0");
    if (rc != DR_OK) {
        dr_model_free(m);
        return rc;
    }
    *out = m;
    return DR_OK;
}

int dr_model_save(const dr_model *m, const char *path, int dtype_f16) {
    dr_tensor_file tf = {0};
    int rc = DR_OK;
    for (int i = 0; rc == DR_OK && i < m->meta.n_meta; i++)
        rc = dr_tensor_file_set_meta(&tf, m->meta.meta_keys[i], m->meta.meta_values[i]);
    if (rc == DR_OK) rc = model_meta_from_config(&tf, &m->info);
    if (rc == DR_OK && !dr_tensor_file_meta(&tf, "created")) {
        char buf[32];
        time_t now = time(NULL);
        struct tm tmv;
        gmtime_r(&now, &tmv);
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
        rc = dr_tensor_file_set_meta(&tf, "created", buf);
    }
    for (int i = 0; rc == DR_OK && i < m->L.n_params; i++) {
        const unet_param *p = &m->L.params[i];
        int64_t shape[4];
        for (int d = 0; d < p->ndim; d++) shape[d] = p->shape[d];
        rc = dr_tensor_file_add(&tf, p->name, p->ndim, shape, m->params + p->offset);
    }
    if (rc == DR_OK) rc = dr_tensor_file_write(path, &tf, dtype_f16);
    dr_tensor_file_free(&tf);
    return rc;
}

const dr_unet_config *dr_model_config(const dr_model *m) { return &m->info.cfg; }
dr_mode dr_model_mode(const dr_model *m) { return m->info.mode; }
void dr_model_scale_range(const dr_model *m, double *scale_min, double *scale_max) {
    *scale_min = m->info.scale_min;
    *scale_max = m->info.scale_max;
}
const char *dr_model_meta(const dr_model *m, const char *key) { return dr_tensor_file_meta(&m->meta, key); }

int dr_model_forward(dr_model *m, const float *x, const float *t, int n, int h, int w, float *y) {
    if (!m || !x || !t || !y) return error_set(DR_ERR_INVALID, "dr_model_forward: NULL argument");
    if (m->run.act == NULL || m->run.B != n || m->run.H != h || m->run.W != w || m->run.threads != nn_threads()) {
        unet_run_free(&m->run);
        DR_TRY(unet_run_build(&m->run, &m->L, n, h, w, 0));
    }
    return unet_forward(&m->run, &m->L, m->params, x, t, y);
}
