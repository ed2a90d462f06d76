/* bench.c - time a U-Net forward or training step, with a per-kind breakdown. */
#include "common/error.h"
#include "common/rng.h"
#include "nn/nn.h"
#include "train/checkpoint.h"
#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

void dr_bench_options_init(dr_bench_options *o) {
    memset(o, 0, sizeof *o);
    o->height = o->width = 256;
    o->batch = 1;
    o->iters = 5;
}

/* 2 x multiply-accumulates of one forward at (B, H, W). */
static double forward_flop(const unet_layout *L, int B, int H, int W) {
    double f = 0;
    const double C = L->cfg.base_channels;
    f += 2.0 * B * (C * 4 * C + 16 * C * C); /* time embedding */
    for (int i = 0; i < L->n_ops; i++) {
        const unet_op *op = &L->ops[i];
        const int s = L->tensors[op->in].shift;
        const double hw = (double)(H >> s) * (W >> s);
        if (op->kind == UOP_CONV) {
            const double ohw = (double)(H >> L->tensors[op->out].shift) * (W >> L->tensors[op->out].shift);
            f += 2.0 * B * ohw * L->tensors[op->out].c * L->tensors[op->in].c * op->k * op->k;
        } else if (op->kind == UOP_RES) {
            const unet_res *r = &L->res[op->block];
            f += 2.0 * B * hw * 9.0 * r->cout * (r->cin + r->cout);
            if (r->cin != r->cout) f += 2.0 * B * hw * r->cout * r->cin;
            f += 2.0 * B * 4 * C * r->cout;
        } else if (op->kind == UOP_ATTN) {
            const double c = L->attn[op->block].c;
            f += 2.0 * B * hw * (3 * c * c + c * c); /* qkv, proj */
            f += 2.0 * B * 2 * hw * hw * c;          /* q^T k and v a^T */
        }
    }
    return f;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int dr_bench(const dr_unet_config *cfg, dr_mode mode, const dr_bench_options *o, dr_bench_result *r) {
    memset(r, 0, sizeof *r);
    if (o->iters < 1 || o->iters > 10000) return error_set(DR_ERR_INVALID, "bench: iters %d out of range", o->iters);
    if (!(o->dropout >= 0 && o->dropout < 1))
        return error_set(DR_ERR_INVALID, "bench: dropout %g: 0 <= dropout < 1", (double)o->dropout);
    dr_train_options to;
    dr_train_options_init(&to);
    to.mode = mode;
    to.config = *cfg;
    train_state st;
    DR_TRY(train_state_new(&st, &to));
    unet_init_params(&st.L, st.params, 1); /* no zero-init: realistic activations */
    const int B = o->batch, H = o->height, W = o->width;
    const size_t nx = (size_t)B * st.info.cfg.in_channels * H * W, ny = (size_t)B * st.info.cfg.out_channels * H * W;
    float *x = malloc(nx * sizeof(float)), *y = malloc(ny * sizeof(float)), *t = malloc(B * sizeof(float));
    double *ms = malloc(sizeof(double) * o->iters);
    unet_run run;
    int rc = unet_run_build(&run, &st.L, B, H, W, o->train);
    if (rc != DR_OK || !x || !y || !t || !ms) {
        if (rc == DR_OK) {
            rc = error_set(DR_ERR_NOMEM, "bench: out of memory");
            unet_run_free(&run);
        }
        goto done;
    }
    rng_state rng;
    rng_seed(&rng, 42);
    rng_fill_normal(&rng, x, nx);
    for (int b = 0; b < B; b++) t[b] = (float)rng_below(&rng, 1000);
    double prof[NN_PROF_N] = {0};
    for (int it = -1; it < o->iters; it++) { /* it = -1: warm-up */
        memset(nn_prof_sec, 0, sizeof nn_prof_sec);
        nn_prof_on = 1;
        double t0 = nn_prof_now();
        run.dropout = o->train ? o->dropout : 0;
        run.dropout_seed = (uint64_t)st.step;
        unet_forward(&run, &st.L, st.params, x, t, y);
        if (o->train) {
            for (size_t i = 0; i < ny; i++) y[i] *= 1e-3f; /* use y as dy */
            memset(st.grads, 0, st.L.n_floats * sizeof(float));
            unet_backward(&run, &st.L, st.params, st.grads, y, NULL);
            adamw_update(&st, 1e-6, 1.0);
            st.step++;
        }
        double dt = nn_prof_now() - t0;
        nn_prof_on = 0;
        if (it < 0) continue;
        ms[it] = dt * 1e3;
        for (int k = 0; k < NN_PROF_N; k++) prof[k] += nn_prof_sec[k];
    }
    r->activation_bytes = unet_run_bytes(&run);
    unet_run_free(&run);
    r->iters = o->iters;
    double total = 0;
    for (int i = 0; i < o->iters; i++) total += ms[i];
    qsort(ms, o->iters, sizeof(double), cmp_double);
    r->ms_median = o->iters % 2 ? ms[o->iters / 2] : 0.5 * (ms[o->iters / 2 - 1] + ms[o->iters / 2]);
    r->ms_min = ms[0];
    r->ms_max = ms[o->iters - 1];
    r->gflop = forward_flop(&st.L, B, H, W) * (o->train ? 3.0 : 1.0) * 1e-9;
    r->gflops = r->gflop / (r->ms_median * 1e-3);
    r->ms_conv = prof[NN_PROF_CONV] * 1e3 / o->iters;
    r->ms_norm = prof[NN_PROF_NORM] * 1e3 / o->iters;
    r->ms_attn = prof[NN_PROF_ATTN] * 1e3 / o->iters;
    r->ms_linear = prof[NN_PROF_LINEAR] * 1e3 / o->iters;
    r->ms_other = total / o->iters - r->ms_conv - r->ms_norm - r->ms_attn - r->ms_linear;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) r->peak_rss_mb = ru.ru_maxrss / 1024.0;
done:
    free(x);
    free(y);
    free(t);
    free(ms);
    train_state_free(&st);
    return rc;
}
