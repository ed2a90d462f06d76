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
    return test_summary("test_unet_ref");
}
