/*
 * test_unet_ref.c - the U-Net against PyTorch (llm.c's test_gpt2 pattern).
 *
 * tests/reference/make_dumps.py wrote, for several configs, the weights and
 * x, t, y, a target, the loss mean((y - target)^2) and every gradient, all
 * computed in float64. Here the C forward (inference and training runs), the
 * loss and every gradient must match, and a miss names the tensor.
 *
 * It also checks the other direction: tests/data/c_written.safetensors was
 * written by this C code (regenerated here and compared byte for byte) and
 * tests/data/c_written.io.safetensors holds PyTorch's forward on it.
 *
 * ResBlock dropout (training runs only): the mask drops about p of every
 * block's a2 and scales the rest by 1 / (1 - p), is the same whatever the
 * run's batch (it follows the global sample index), never touches an
 * inference run, and the gradient with a fixed mask matches finite
 * differences of the loss.
 *
 * `test_unet_ref --write-c-weights PATH` regenerates that weights file.
 */
#include "api/model_internal.h"
#include "nn/nn.h"
#include "testutil.h"
#include "unet/unet.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Y_TOL    1e-4 /* max |y - y_ref| / max |y_ref| */
#define GRAD_TOL 1e-3 /* max |g - g_ref| / max |g_ref|, per tensor */

static double rel_err(const float *a, const float *ref, size_t n) {
    double scale = test_max_abs(ref, n);
    return test_max_abs_diff(a, ref, n) / (scale > 0 ? scale : 1.0);
}

static const dr_tensor *need(const dr_tensor_file *tf, const char *name, const char *file) {
    const dr_tensor *t = dr_tensor_file_get(tf, name);
    CHECK(t != NULL, "%s: tensor '%s' missing", file, name);
    return t;
}

static void check_case(const char *name) {
    char wpath[1024], iopath[1024];
    snprintf(wpath, sizeof wpath, "%s/ref_%s.weights.safetensors", DR_TEST_DATA, name);
    snprintf(iopath, sizeof iopath, "%s/ref_%s.io.safetensors", DR_TEST_DATA, name);
    dr_model *m = NULL;
    dr_tensor_file io;
    int rc = dr_model_load(wpath, &m);
    CHECK(rc == DR_OK, "%s: load weights: %s", name, dr_last_error());
    rc |= dr_tensor_file_read(iopath, &io);
    CHECK(rc == DR_OK, "%s: load io: %s", name, dr_last_error());
    if (rc != DR_OK) {
        dr_model_free(m);
        return;
    }
    const dr_tensor *x = need(&io, "x", iopath), *t = need(&io, "t", iopath), *yref = need(&io, "y", iopath);
    const dr_tensor *target = need(&io, "target", iopath), *loss = need(&io, "loss", iopath);
    if (!x || !t || !yref || !target || !loss) goto out;
    const int B = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    const size_t ny = (size_t)yref->numel;
    float *y = malloc(ny * sizeof(float)), *y1 = malloc(ny * sizeof(float));

    /* 1. inference forward (lifetime-planned memory), with 2 threads and 1 */
    dr_set_threads(2);
    rc = dr_model_forward(m, x->data, t->data, B, H, W, y);
    CHECK(rc == DR_OK, "%s: forward: %s", name, dr_last_error());
    double e = rel_err(y, yref->data, ny);
    printf("%-6s inference y: max rel err %.2e (max |y| %.3f)\n", name, e, test_max_abs(yref->data, ny));
    CHECK(e <= Y_TOL, "%s: inference y: max rel err %.3e > %.0e", name, e, Y_TOL);
    dr_set_threads(1);
    rc = dr_model_forward(m, x->data, t->data, B, H, W, y1);
    CHECK(rc == DR_OK && memcmp(y, y1, ny * sizeof(float)) == 0, "%s: forward differs between 1 and 2 threads", name);
    dr_set_threads(2);

    /* 2. training forward + loss + backward */
    unet_run run;
    rc = unet_run_build(&run, &m->L, B, H, W, 1);
    CHECK(rc == DR_OK, "%s: train run: %s", name, dr_last_error());
    if (rc == DR_OK) {
        float *grads = calloc(m->L.n_floats, sizeof(float));
        float *dy = malloc(ny * sizeof(float)), *dx = calloc((size_t)x->numel, sizeof(float));
        unet_forward(&run, &m->L, m->params, x->data, t->data, y1);
        e = rel_err(y1, yref->data, ny);
        CHECK(e <= Y_TOL, "%s: training-run y: max rel err %.3e", name, e);
        double l = 0;
        for (size_t i = 0; i < ny; i++) {
            double d = (double)y1[i] - target->data[i];
            l += d * d;
            dy[i] = (float)(2.0 * d / (double)ny);
        }
        l /= (double)ny;
        double le = fabs(l - loss->data[0]) / fabs(loss->data[0]);
        printf("%-6s loss %.6f (ref %.6f), rel err %.2e\n", name, l, loss->data[0], le);
        CHECK(le <= 1e-5, "%s: loss %.8f vs ref %.8f", name, l, loss->data[0]);
        /* The run's tensor gradients are never zeroed: each backward sets every
         * one before reading it (unet_op.set_din). NaN there turns any gradient
         * read before it is written, or added to instead of set, into NaN. */
        for (size_t i = 0; i < run.grad_floats; i++) run.grad[i] = NAN;
        rc = unet_backward(&run, &m->L, m->params, grads, dy, dx);
        CHECK(rc == DR_OK, "%s: backward: %s", name, dr_last_error());
        double worst = 0;
        const char *worst_name = "";
        for (int i = 0; i < m->L.n_params; i++) {
            const unet_param *p = &m->L.params[i];
            char gname[160];
            snprintf(gname, sizeof gname, "grad.%s", p->name);
            const dr_tensor *g = need(&io, gname, iopath);
            if (!g) continue;
            CHECK((size_t)g->numel == p->numel, "%s: %s numel %lld vs %zu", name, gname, (long long)g->numel, p->numel);
            if ((size_t)g->numel != p->numel) continue;
            double ge = rel_err(grads + p->offset, g->data, p->numel);
            CHECK(ge <= GRAD_TOL, "%s: gradient of '%s': max rel err %.3e > %.0e", name, p->name, ge, GRAD_TOL);
            if (ge > worst) {
                worst = ge;
                worst_name = p->name;
            }
        }
        const dr_tensor *gx = need(&io, "grad.x", iopath);
        if (gx) {
            double ge = rel_err(dx, gx->data, (size_t)x->numel);
            CHECK(ge <= GRAD_TOL, "%s: gradient of x: max rel err %.3e", name, ge);
            if (ge > worst) {
                worst = ge;
                worst_name = "x";
            }
        }
        printf("%-6s %d parameter gradients + dx: worst rel err %.2e (%s)\n", name, m->L.n_params, worst, worst_name);
        /* 3. a second backward on the same run, over the first one's tensor
         * gradients, gives the same parameter gradients and dx bit for bit */
        float *grads2 = calloc(m->L.n_floats, sizeof(float)), *dx2 = calloc((size_t)x->numel, sizeof(float));
        rc = unet_backward(&run, &m->L, m->params, grads2, dy, dx2);
        CHECK(rc == DR_OK && memcmp(grads, grads2, m->L.n_floats * sizeof(float)) == 0 &&
                  memcmp(dx, dx2, (size_t)x->numel * sizeof(float)) == 0,
              "%s: a second backward on the same run gives other gradients", name);
        free(grads2);
        free(dx2);
        free(grads);
        free(dy);
        free(dx);
        unet_run_free(&run);
    }
    free(y);
    free(y1);
out:
    dr_tensor_file_free(&io);
    dr_model_free(m);
}

/* The C writer's file: fixed config, seed and metadata, so the bytes are stable. */
static int make_c_weights(dr_model **out) {
    dr_unet_config cfg = {0};
    int rc = dr_unet_config_parse(&cfg, "base=8,mult=1,2,res=1,attn=1,groups=4");
    if (rc != DR_OK) return rc;
    rc = dr_model_new_random(&cfg, DR_MODE_INPAINT, 1234, out);
    if (rc != DR_OK) return rc;
    return dr_tensor_file_set_meta(&(*out)->meta, "created", "2000-01-01T00:00:00Z");
}

static void check_c_written(void) {
    char path[1024], iopath[1024];
    snprintf(path, sizeof path, "%s/c_written.safetensors", DR_TEST_DATA);
    snprintf(iopath, sizeof iopath, "%s/c_written.io.safetensors", DR_TEST_DATA);
    dr_model *m = NULL;
    int rc = make_c_weights(&m);
    CHECK(rc == DR_OK, "make c weights: %s", dr_last_error());
    if (rc != DR_OK) return;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s/c.safetensors", test_tmpdir());
    rc = dr_model_save(m, tmp, 0);
    CHECK(rc == DR_OK, "save: %s", dr_last_error());
    dr_model_free(m);
    unsigned char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    FILE *f = fopen(tmp, "rb"), *g = fopen(path, "rb");
    CHECK(f && g, "open %s / %s", tmp, path);
    if (f && g) {
        fseek(f, 0, SEEK_END);
        na = (size_t)ftell(f);
        fseek(g, 0, SEEK_END);
        nb = (size_t)ftell(g);
        rewind(f);
        rewind(g);
        a = malloc(na);
        b = malloc(nb);
        CHECK(fread(a, 1, na, f) == na && fread(b, 1, nb, g) == nb, "read");
        CHECK(na == nb && memcmp(a, b, na) == 0, "the C writer no longer produces %s byte for byte", path);
    }
    if (f) fclose(f);
    if (g) fclose(g);
    free(a);
    free(b);
    remove(tmp);

    /* PyTorch loaded the C file and ran a forward: the C forward must agree. */
    dr_tensor_file io;
    rc = dr_model_load(path, &m);
    CHECK(rc == DR_OK, "load %s: %s", path, dr_last_error());
    rc |= dr_tensor_file_read(iopath, &io);
    CHECK(rc == DR_OK, "load %s: %s", iopath, dr_last_error());
    if (rc != DR_OK) {
        dr_model_free(m);
        return;
    }
    const dr_tensor *x = need(&io, "x", iopath), *t = need(&io, "t", iopath), *yref = need(&io, "y", iopath);
    if (x && t && yref) {
        float *y = malloc((size_t)yref->numel * sizeof(float));
        rc = dr_model_forward(m, x->data, t->data, (int)x->shape[0], (int)x->shape[2], (int)x->shape[3], y);
        double e = rel_err(y, yref->data, (size_t)yref->numel);
        printf("c_written: PyTorch forward on C-written weights vs C: max rel err %.2e\n", e);
        CHECK(rc == DR_OK && e <= Y_TOL, "c_written: C vs PyTorch y max rel err %.3e", e);
        free(y);
    }
    dr_tensor_file_free(&io);
    dr_model_free(m);
}

/* ------------------------------------------------------------------ dropout */

#define DROP_P    0.3f
#define DROP_SEED 0x1234abcdULL

/* sum_i w_i y_i: a loss whose dy is w */
static double lin_loss(const float *y, const float *w, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)w[i] * y[i];
    return s;
}

/* Every ResBlock's a2 of a training forward with dropout p: dropped elements
 * are 0, kept ones are nonzero (in the first block, whose input dropout has
 * not changed yet: the p = 0 run's times 1 / (1 - p) bit for bit), the
 * mask is unet_dropout_keep's, and about p of the elements drop. A run of
 * one sample with sample0 = 1 drops what sample 1 of the batch of 2 drops. */
static void test_dropout_mask(const dr_model *m, const float *x, const float *t, int B, int H, int W) {
    const unet_layout *L = &m->L;
    unet_run r0, rp, r1;
    const size_t nout = (size_t)B * L->cfg.out_channels * H * W;
    float *y = malloc(nout * sizeof(float));
    int rc = unet_run_build(&r0, L, B, H, W, 1);
    rc |= unet_run_build(&rp, L, B, H, W, 1);
    rc |= unet_run_build(&r1, L, 1, H, W, 1);
    CHECK(rc == DR_OK, "dropout runs: %s", dr_last_error());
    if (rc != DR_OK) return;
    rp.dropout = r1.dropout = DROP_P;
    rp.dropout_seed = r1.dropout_seed = DROP_SEED;
    r1.sample0 = 1;
    unet_forward(&r0, L, m->params, x, t, y);
    unet_forward(&rp, L, m->params, x, t, y);
    const size_t in1 = (size_t)L->cfg.in_channels * H * W;
    float *y1 = malloc(nout * sizeof(float));
    unet_forward(&r1, L, m->params, x + in1, t + 1, y1);
    const float scale = 1.0f / (1.0f - DROP_P);
    size_t n = 0, zeros = 0, bad_value = 0, bad_mask = 0, bad_split = 0;
    int blocks = 0, first = 1;
    for (int i = 0; i < L->n_ops; i++) {
        const float *a0 = unet_res_a2(&r0, L, i), *ap = unet_res_a2(&rp, L, i), *a1 = unet_res_a2(&r1, L, i);
        if (!a0) continue;
        blocks++;
        const unet_res *r = &L->res[L->ops[i].block];
        const int s = L->tensors[L->ops[i].in].shift;
        const size_t per = (size_t)r->cout * (H >> s) * (W >> s);
        for (int b = 0; b < B; b++)
            for (size_t e = 0; e < per; e++) {
                const float v0 = a0[b * per + e], vp = ap[b * per + e];
                const int keep = unet_dropout_keep(DROP_SEED, b, L->ops[i].block, e, DROP_P);
                n++;
                zeros += vp == 0.0f;
                if (first && (keep ? vp != v0 * scale : vp != 0.0f)) bad_value++;
                if (keep != (vp != 0.0f)) bad_mask++;
                if (b == 1 && (a1[e] == 0.0f) != (vp == 0.0f)) bad_split++;
            }
        first = 0;
    }
    const double frac = (double)zeros / (double)(n ? n : 1);
    printf("dropout p=%.2f: %zu of %zu a2 elements dropped (%.4f) over %d ResBlocks\n", DROP_P, zeros, n, frac, blocks);
    CHECK(blocks >= 2 && n > 10000, "dropout: %d ResBlocks, %zu elements checked", blocks, n);
    CHECK(fabs(frac - DROP_P) < 0.015, "dropout: %.4f of a2 dropped, expected %.2f", frac, DROP_P);
    CHECK(bad_value == 0, "dropout: %zu a2 elements are neither 0 nor the undropped value / (1 - p)", bad_value);
    CHECK(bad_mask == 0, "dropout: %zu elements disagree with unet_dropout_keep", bad_mask);
    CHECK(bad_split == 0, "dropout: %zu elements of sample 1 drop differently alone (sample0 = 1) than in the batch",
          bad_split);

    /* an inference run never drops, whatever its fields say */
    unet_run ri;
    float *yi = malloc(nout * sizeof(float)), *yr = malloc(nout * sizeof(float));
    rc = unet_run_build(&ri, L, B, H, W, 0);
    CHECK(rc == DR_OK, "inference run: %s", dr_last_error());
    if (rc == DR_OK) {
        unet_forward(&ri, L, m->params, x, t, yr);
        ri.dropout = DROP_P;
        ri.dropout_seed = DROP_SEED;
        unet_forward(&ri, L, m->params, x, t, yi);
        CHECK(memcmp(yi, yr, nout * sizeof(float)) == 0, "dropout changed an inference forward");
        unet_run_free(&ri);
    }
    free(yi);
    free(yr);
    free(y);
    free(y1);
    unet_run_free(&r0);
    unet_run_free(&rp);
    unet_run_free(&r1);
}

/* Finite differences of sum(w * y) with the mask fixed (dropout p, fixed
 * seed) against unet_backward's gradient: a few entries of every parameter
 * tensor, and of x. The same differences against the p = 0 gradient must
 * miss (the check sees the mask). */
static void test_dropout_gradient(const dr_model *m, const float *x, const float *t, int B, int H, int W) {
    const unet_layout *L = &m->L;
    const size_t nout = (size_t)B * L->cfg.out_channels * H * W, nx = (size_t)B * L->cfg.in_channels * H * W;
    float *P = malloc(L->n_floats * sizeof(float)), *g = calloc(L->n_floats, sizeof(float));
    float *g0 = calloc(L->n_floats, sizeof(float)), *y = malloc(nout * sizeof(float));
    float *w = malloc(nout * sizeof(float)), *dx = calloc(nx, sizeof(float)), *xx = malloc(nx * sizeof(float));
    memcpy(P, m->params, L->n_floats * sizeof(float));
    memcpy(xx, x, nx * sizeof(float));
    test_rng rng = {77};
    test_fill_normal(&rng, w, nout, 1.0f);
    unet_run R;
    int rc = unet_run_build(&R, L, B, H, W, 1);
    CHECK(rc == DR_OK, "fd run: %s", dr_last_error());
    if (rc != DR_OK) return;
    unet_forward(&R, L, P, xx, t, y); /* p = 0: the gradient the check must reject */
    unet_backward(&R, L, P, g0, w, NULL);
    R.dropout = DROP_P;
    R.dropout_seed = DROP_SEED;
    R.sample0 = 3;
    unet_forward(&R, L, P, xx, t, y);
    unet_backward(&R, L, P, g, w, dx);
    const float eps = 1e-2f;
    double worst = 0, worst0 = 0, gmax = 0;
    const char *worst_name = "";
    int checked = 0;
    for (int k = 0; k <= L->n_params; k++) {
        float *base = k < L->n_params ? P + L->params[k].offset : xx;
        const float *gk = k < L->n_params ? g + L->params[k].offset : dx;
        const float *gk0 = k < L->n_params ? g0 + L->params[k].offset : NULL;
        const size_t numel = k < L->n_params ? L->params[k].numel : nx;
        for (int j = 0; j < 3; j++) {
            const size_t e = (size_t)(test_rng_u64(&rng) % numel);
            const float keep = base[e];
            base[e] = keep + eps;
            unet_forward(&R, L, P, xx, t, y);
            const double lp = lin_loss(y, w, nout);
            base[e] = keep - eps;
            unet_forward(&R, L, P, xx, t, y);
            const double lm = lin_loss(y, w, nout);
            base[e] = keep;
            const double fd = (lp - lm) / (2.0 * eps);
            const double err = fabs(fd - gk[e]) / (fabs(fd) + fabs(gk[e]) + 5e-2);
            if (err > worst) {
                worst = err;
                worst_name = k < L->n_params ? L->params[k].name : "x";
            }
            if (gk0) {
                const double e0 = fabs(fd - gk0[e]) / (fabs(fd) + fabs(gk0[e]) + 5e-2);
                if (e0 > worst0) worst0 = e0;
            }
            if (fabs(gk[e]) > gmax) gmax = fabs(gk[e]);
            checked++;
        }
    }
    printf("dropout p=%.2f: %d finite differences, worst rel err %.2e (%s); against the p = 0 gradient %.2e\n", DROP_P,
           checked, worst, worst_name, worst0);
    CHECK(gmax > 0.1, "dropout fd: gradients too small to check (max %.3g)", gmax);
    CHECK(worst < 2e-2, "dropout fd: worst rel err %.3e (%s)", worst, worst_name);
    CHECK(worst0 > 10 * worst && worst0 > 0.1,
          "dropout fd: the p = 0 gradient passes too (%.3e): the check does not see the mask", worst0);
    unet_run_free(&R);
    free(P);
    free(g);
    free(g0);
    free(y);
    free(w);
    free(dx);
    free(xx);
}

static void test_dropout(void) {
    dr_model *m = NULL;
    dr_unet_config cfg = {0};
    int rc = dr_unet_config_parse(&cfg, "base=8,mult=1,2,res=1,attn=1,groups=4");
    rc |= dr_model_new_random(&cfg, DR_MODE_INPAINT, 4321, &m);
    CHECK(rc == DR_OK, "dropout model: %s", dr_last_error());
    if (rc != DR_OK) return;
    const int B = 2, H = 16, W = 16;
    const size_t nx = (size_t)B * m->L.cfg.in_channels * H * W;
    float *x = malloc(nx * sizeof(float)), t[2] = {37.0f, 611.0f};
    test_rng rng = {5};
    test_fill_normal(&rng, x, nx, 1.0f);
    test_dropout_mask(m, x, t, B, H, W);
    test_dropout_gradient(m, x, t, B, 8, 8);
    free(x);
    dr_model_free(m);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-c-weights") == 0) {
        dr_model *m = NULL;
        if (make_c_weights(&m) != DR_OK || dr_model_save(m, argv[2], 0) != DR_OK) {
            fprintf(stderr, "%s\n", dr_last_error());
            return 1;
        }
        dr_model_free(m);
        return 0;
    }
    const char *cases[] = {"tiny", "deep", "f16", "attn0"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(cases[i]);
    check_c_written();
    test_dropout();
    return test_summary("test_unet_ref");
}
