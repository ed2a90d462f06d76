/*
 * test_train.c - dr_train on a tiny generated data set:
 *  - the loss of a tiny model falls well below its starting value;
 *  - a run stopped and resumed reaches exactly (bit for bit) the state of an
 *    uninterrupted run: parameters, EMA, both Adam moments, step;
 *  - a damaged or truncated checkpoint is refused with a clear error;
 *  - a diverging run stops on the non-finite loss and keeps its last good
 *    checkpoint; cancel writes a checkpoint; export writes loadable F16 weights;
 *  - colorize crops at a working resolution (render_size): the crop covers the
 *    expected share of the photo, never upscales, stays within its tmp; the
 *    default draws today's crops; the option is kept by checkpoint and export
 *    and resume stays exact;
 *  - ResBlock dropout: the same run bit for bit at 1 and 2 threads, an exact
 *    resume, kept by the checkpoint and overridden on resume, out-of-range
 *    values refused, and validation never drops (the logged val numbers are
 *    those of the checkpoint, and of its exported weights).
 */
#include "testutil.h"
#include "common/fileio.h"
#include "imgproc/imgproc.h"
#include "modes/mode.h"
#include "train/batch.h"
#include "train/checkpoint.h"
#include "train/weighting.h"
#include "train/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[1024], g_data[1100];

static void make_dataset(void) {
    snprintf(g_dir, sizeof g_dir, "%s", test_tmpdir());
    snprintf(g_data, sizeof g_data, "%s/data", g_dir);
    mkdir(g_data, 0755);
    char sub[1200];
    snprintf(sub, sizeof sub, "%s/sub", g_data);
    mkdir(sub, 0755);
    test_rng r = {99};
    for (int k = 0; k < 4; k++) {
        dr_image img;
        dr_image_alloc(&img, 48 + 8 * k, 40, 3, 8);
        const double fr = 0.05 + 0.03 * k, ph = test_rng_uniform(&r) * 6;
        for (int y = 0; y < img.height; y++)
            for (int x = 0; x < img.width; x++)
                for (int c = 0; c < 3; c++) {
                    double v = 0.5 + 0.4 * sin(fr * (x + 2 * y) + ph + c * 1.3);
                    img.data[((size_t)y * img.width + x) * 3 + c] = (uint16_t)lround(v * 255);
                }
        char path[1300];
        snprintf(path, sizeof path, "%s/%s/img%d.%s", g_data, k % 2 ? "sub" : ".", k, k == 3 ? "jpg" : "png");
        CHECK(dr_image_save(path, &img, NULL) == DR_OK, "save %s: %s", path, dr_last_error());
        dr_image_free(&img);
    }
    /* a file that is not an image: skipped with a note, not fatal */
    char path[1300];
    snprintf(path, sizeof path, "%s/notes.txt", g_data);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("not an image\n", f);
        fclose(f);
    }
}

static int g_notes;
static void count_log(const char *msg, void *user) {
    (void)user;
    (void)msg;
    g_notes++;
}

static dr_train_options base_options(dr_mode mode, const char *out) {
    dr_train_options o;
    dr_train_options_init(&o);
    o.mode = mode;
    dr_unet_config_parse(&o.config, "base=8,mult=1,2,res=1,attn=1,groups=2");
    o.data_dir = g_data;
    o.out_path = out;
    o.batch = 4;
    o.patch = 16;
    o.lr = 2e-3f;
    o.warmup_steps = 5;
    o.checkpoint_every = 1000;
    o.val_every = 0;
    o.seed = 3;
    o.log = count_log;
    return o;
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

static double csv_loss_mean(const char *csv, int from, int to) {
    FILE *f = fopen(csv, "r");
    if (!f) return NAN;
    char line[512];
    double s = 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        int step;
        double loss;
        if (sscanf(line, "%d,%lf", &step, &loss) == 2 && step >= from && step <= to) s += loss, n++;
    }
    fclose(f);
    return n ? s / n : NAN;
}

static void test_loss_falls(void) {
    char out[1200], csv[1300];
    path_in(out, sizeof out, "falls.ckpt");
    snprintf(csv, sizeof csv, "%s.csv", out);
    dr_train_options o = base_options(DR_MODE_COLORIZE, out);
    o.steps = 150;
    g_notes = 0;
    int rc = dr_train(&o);
    CHECK(rc == DR_OK, "train: %s", dr_last_error());
    CHECK(g_notes >= 1, "the non-image file was not reported");
    double first = csv_loss_mean(csv, 1, 10), last = csv_loss_mean(csv, 131, 150);
    printf("loss: steps 1-10 %.4f, steps 131-150 %.4f\n", first, last);
    CHECK(last < 0.5 * first, "loss did not fall enough: %.4f -> %.4f", first, last);
}

static int load_state(const char *path, train_state *st) {
    int rc = checkpoint_load(st, path);
    CHECK(rc == DR_OK, "load %s: %s", path, dr_last_error());
    return rc;
}

static void test_resume_exact(void) {
    char a[1200], b[1200];
    path_in(a, sizeof a, "straight.ckpt");
    path_in(b, sizeof b, "resumed.ckpt");
    for (int mode = 1; mode <= dr_mode_count(); mode++) { /* every mode of the table */
        dr_train_options o = base_options((dr_mode)mode, a);
        o.steps = 12;
        o.target_scale = 2.0f;
        if (mode == DR_MODE_INPAINT) { /* the recipe options shape the stream too */
            o.loss_weight = DR_LOSS_MIN_SNR;
            o.t_sampling = DR_T_LOGNORMAL;
            o.masks = DR_MASKS_DAMAGE;
        }
        if (mode == DR_MODE_SUPERRES) o.scale_dist = DR_SCALE_DIST_HIGH;
        CHECK(dr_train(&o) == DR_OK, "straight run: %s", dr_last_error());
        dr_train_options p = base_options((dr_mode)mode, b);
        p.steps = 5;
        p.target_scale = 2.0f;
        p.loss_weight = o.loss_weight;
        p.t_sampling = o.t_sampling;
        p.masks = o.masks; /* the resumed half (q) gets them from the checkpoint only */
        p.scale_dist = o.scale_dist;
        CHECK(dr_train(&p) == DR_OK, "first half: %s", dr_last_error());
        dr_train_options q = base_options((dr_mode)mode, b);
        q.resume_path = b;
        q.steps = 12;
        CHECK(dr_train(&q) == DR_OK, "resumed half: %s", dr_last_error());
        train_state s1, s2;
        if (load_state(a, &s1) != DR_OK) return;
        if (load_state(b, &s2) != DR_OK) {
            train_state_free(&s1);
            return;
        }
        const size_t n = s1.L.n_floats * sizeof(float);
        CHECK(s1.step == 12 && s2.step == 12, "steps %d %d", s1.step, s2.step);
        CHECK(s2.opt.masks == o.masks && s2.opt.scale_dist == o.scale_dist, "%s: masks %d scale_dist %d kept",
              dr_mode_name((dr_mode)mode), (int)s2.opt.masks, (int)s2.opt.scale_dist);
        CHECK(memcmp(s1.params, s2.params, n) == 0, "%s: resumed params differ", dr_mode_name((dr_mode)mode));
        CHECK(memcmp(s1.ema, s2.ema, n) == 0, "%s: resumed EMA differs", dr_mode_name((dr_mode)mode));
        CHECK(memcmp(s1.adam_m, s2.adam_m, n) == 0 && memcmp(s1.adam_v, s2.adam_v, n) == 0,
              "%s: resumed Adam state differs", dr_mode_name((dr_mode)mode));
        CHECK(s1.loss_smooth == s2.loss_smooth, "%s: smoothed loss differs", dr_mode_name((dr_mode)mode));
        train_state_free(&s1);
        train_state_free(&s2);
    }
}

/* --lr on --resume: the rate from the checkpoint's step on. The same rate as
 * the checkpoint's is the exact resume; another one changes the run from
 * there and is stored; a resume rate without a checkpoint, or out of range,
 * is refused. */
static void test_resume_lr(void) {
    char a[1200], b[1200];
    path_in(a, sizeof a, "lr_straight.ckpt");
    path_in(b, sizeof b, "lr_resumed.ckpt");
    dr_train_options o = base_options(DR_MODE_COLORIZE, a);
    o.steps = 10;
    o.target_scale = 2.0f;
    CHECK(dr_train(&o) == DR_OK, "straight run: %s", dr_last_error());
    train_state s1, s2;
    if (load_state(a, &s1) != DR_OK) return;
    const size_t n = s1.L.n_floats * sizeof(float);
    for (int k = 0; k < 2; k++) { /* k 0: the checkpoint's own rate; k 1: a quarter of it */
        dr_train_options p = base_options(DR_MODE_COLORIZE, b);
        p.steps = 6;
        p.target_scale = 2.0f;
        CHECK(dr_train(&p) == DR_OK, "first half: %s", dr_last_error());
        dr_train_options q = base_options(DR_MODE_COLORIZE, b);
        q.resume_path = b;
        q.steps = 10;
        q.resume_lr = k ? o.lr / 4 : o.lr;
        CHECK(dr_train(&q) == DR_OK, "resumed half at lr %g: %s", (double)q.resume_lr, dr_last_error());
        if (load_state(b, &s2) != DR_OK) break;
        CHECK(s2.step == 10 && s2.opt.lr == q.resume_lr, "k %d: step %d, stored lr %g (want %g)", k, s2.step,
              (double)s2.opt.lr, (double)q.resume_lr);
        const int same = memcmp(s1.params, s2.params, n) == 0 && memcmp(s1.ema, s2.ema, n) == 0;
        CHECK(k ? !same : same, k ? "a new rate changes the resumed run" : "the same rate resumes exactly");
        if (k) { /* and the rate from step 6 on is the new one: the last update is smaller */
            double d1 = 0, d2 = 0;
            train_state s0;
            dr_train_options r = base_options(DR_MODE_COLORIZE, b);
            r.steps = 6;
            r.target_scale = 2.0f;
            CHECK(dr_train(&r) == DR_OK, "first half again: %s", dr_last_error());
            if (load_state(b, &s0) == DR_OK) {
                for (size_t i = 0; i < s1.L.n_floats; i++) {
                    d1 += fabs((double)s1.params[i] - s0.params[i]);
                    d2 += fabs((double)s2.params[i] - s0.params[i]);
                }
                CHECK(d2 < 0.5 * d1, "steps 6..10 moved the weights %g at lr/4 against %g at lr", d2, d1);
                train_state_free(&s0);
            }
        }
        train_state_free(&s2);
    }
    train_state_free(&s1);
    dr_train_options bad = base_options(DR_MODE_COLORIZE, b);
    bad.resume_lr = 1e-3f; /* no checkpoint to resume */
    CHECK(dr_train(&bad) == DR_ERR_INVALID && strstr(dr_last_error(), "resume learning rate"),
          "resume_lr without resume_path refused: %s", dr_last_error());
    bad.resume_path = b;
    bad.resume_lr = 2.0f;
    CHECK(dr_train(&bad) == DR_ERR_INVALID, "resume_lr 2 refused: %s", dr_last_error());
}

static void flip_byte(const char *path, long offset_from_end) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    fseek(f, -offset_from_end, SEEK_END);
    int c = fgetc(f);
    fseek(f, -offset_from_end, SEEK_END);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void test_bad_checkpoints(void) {
    char a[1200], cp[1300];
    path_in(a, sizeof a, "straight.ckpt");
    snprintf(cp, sizeof cp, "%s.bad", a);
    train_state st;
    /* a flipped bit in the tensor data: only the checksum can tell */
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", a, cp);
    CHECK(system(cmd) == 0, "copy");
    flip_byte(cp, 100);
    int rc = checkpoint_load(&st, cp);
    CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "checksum") && strstr(dr_last_error(), cp), "flipped bit: %s",
          dr_last_error());
    /* truncated */
    CHECK(truncate(cp, 4000) == 0, "truncate");
    rc = checkpoint_load(&st, cp);
    CHECK(rc != DR_OK && strstr(dr_last_error(), cp), "truncated: %s", dr_last_error());
    /* a weights file is not a checkpoint */
    char w[1024];
    snprintf(w, sizeof w, "%s/ref_tiny.weights.safetensors", DR_TEST_DATA);
    rc = checkpoint_load(&st, w);
    CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "not a diffrestore training checkpoint"),
          "weights as ckpt: %s", dr_last_error());
    /* resuming from a damaged checkpoint is refused, and it is left as it was */
    dr_train_options o = base_options(DR_MODE_COLORIZE, cp);
    o.resume_path = cp;
    o.steps = 20;
    CHECK(dr_train(&o) != DR_OK, "resumed from a damaged checkpoint");
    struct stat sb;
    CHECK(stat(cp, &sb) == 0 && sb.st_size == 4000, "the damaged checkpoint was modified");
}

static void test_divergence_and_cancel(void) {
    char out[1200];
    path_in(out, sizeof out, "diverge.ckpt");
    dr_train_options o = base_options(DR_MODE_SUPERRES, out);
    o.steps = 4;
    o.target_scale = 1.0f;
    CHECK(dr_train(&o) == DR_OK, "good start: %s", dr_last_error());
    o.resume_path = out;
    o.steps = 200;
    o.lr = 1e30f; /* overwritten by the checkpoint's own lr on resume... */
    train_state st;
    if (load_state(out, &st) != DR_OK) return;
    /* poison the weights so the next forward is not finite, and save as a
     * valid checkpoint: the run must stop and keep that last good file */
    for (size_t i = 0; i < st.L.n_floats; i++) st.params[i] = 1e30f;
    char poisoned[1300];
    snprintf(poisoned, sizeof poisoned, "%s.poison", out);
    CHECK(checkpoint_save(&st, poisoned) == DR_OK, "save poisoned");
    train_state_free(&st);
    o.resume_path = poisoned;
    o.out_path = poisoned;
    int rc = dr_train(&o);
    CHECK(rc == DR_ERR_NUMERIC && strstr(dr_last_error(), "step 4"), "divergence: rc %d %s", rc, dr_last_error());
    CHECK(checkpoint_load(&st, poisoned) == DR_OK && st.step == 4, "the last good checkpoint is not kept");
    train_state_free(&st);

    /* cancel before the first step: a checkpoint is written, DR_ERR_CANCELLED */
    char c2[1300];
    snprintf(c2, sizeof c2, "%s/cancel.ckpt", g_dir);
    volatile int flag = 1;
    dr_train_options q = base_options(DR_MODE_INPAINT, c2);
    q.steps = 50;
    q.cancel = &flag;
    rc = dr_train(&q);
    CHECK(rc == DR_ERR_CANCELLED, "cancel: rc %d", rc);
    CHECK(checkpoint_load(&st, c2) == DR_OK && st.step == 0, "cancel did not leave a loadable checkpoint");
    train_state_free(&st);
}

static void test_export(void) {
    char a[1200], w[1300];
    path_in(a, sizeof a, "falls.ckpt");
    snprintf(w, sizeof w, "%s/exported.safetensors", g_dir);
    CHECK(dr_train_export(a, w, 1) == DR_OK, "export: %s", dr_last_error());
    dr_model *m = NULL;
    int rc = dr_model_load(w, &m);
    CHECK(rc == DR_OK, "load export: %s", dr_last_error());
    if (rc == DR_OK) {
        CHECK(dr_model_mode(m) == DR_MODE_COLORIZE, "mode");
        CHECK(dr_model_meta(m, "train_steps") && strcmp(dr_model_meta(m, "train_steps"), "150") == 0, "train_steps");
        CHECK(dr_model_meta(m, "created") && dr_model_meta(m, "train_data"), "provenance");
        /* the checkpoint remembers its data directory, so an export-only run names it */
        const char *td = dr_model_meta(m, "train_data");
        CHECK(td && strstr(td, g_data), "train_data '%s' does not name %s", td ? td : "(none)", g_data);
        dr_model_free(m);
    }
}

/* --init: a second run starts from exported weights. Its parameters and EMA
 * start as those weights exactly (the F16 values), its config and target
 * scale come from the file whatever the options say, its loss starts where
 * the first run ended (not at the fresh-init level), and the exported
 * train_steps add up. Wrong mode, --init with --resume, and a file that is
 * not weights are refused. */
static void test_init_from_weights(void) {
    char w[1300], c[1200], csv[1300], w2[1300];
    snprintf(w, sizeof w, "%s/exported.safetensors", g_dir);
    path_in(c, sizeof c, "init.ckpt");
    snprintf(csv, sizeof csv, "%s.csv", c);
    snprintf(w2, sizeof w2, "%s/init-exported.safetensors", g_dir);
    dr_model *m = NULL;
    if (dr_model_load(w, &m) != DR_OK) {
        CHECK(0, "load %s: %s", w, dr_last_error());
        return;
    }
    dr_train_options o = base_options(DR_MODE_COLORIZE, c);
    dr_unet_config_parse(&o.config, "base=16,mult=1,res=1,attn=,groups=4"); /* ignored: the file's config wins */
    o.init_path = w;
    o.steps = 1;
    o.lr = 0.0f; /* one step that changes nothing: the checkpoint holds the initial state */
    CHECK(dr_train(&o) == DR_OK, "init, 1 step at lr 0: %s", dr_last_error());
    train_state st;
    if (load_state(c, &st) == DR_OK) {
        CHECK(st.L.n_floats == m->L.n_floats, "config not taken from the weights: %zu vs %zu floats", st.L.n_floats,
              m->L.n_floats);
        if (st.L.n_floats == m->L.n_floats) {
            CHECK(memcmp(st.params, m->params, st.L.n_floats * sizeof(float)) == 0, "params != the init weights");
            CHECK(memcmp(st.ema, m->params, st.L.n_floats * sizeof(float)) == 0, "EMA != the init weights");
        }
        CHECK(st.init_steps == 150 && st.step == 1, "init_steps %d step %d", st.init_steps, st.step);
        CHECK(st.info.target_scale == m->info.target_scale, "target_scale %g vs %g", st.info.target_scale,
              m->info.target_scale);
        train_state_free(&st);
    }
    /* continue 20 steps: the loss starts near where the first run ended */
    remove(c);
    remove(csv);
    o.steps = 20;
    o.lr = 2e-3f;
    CHECK(dr_train(&o) == DR_OK, "init, 20 steps: %s", dr_last_error());
    char falls_csv[1300];
    snprintf(falls_csv, sizeof falls_csv, "%s/falls.ckpt.csv", g_dir);
    const double fresh = csv_loss_mean(falls_csv, 1, 10), cont = csv_loss_mean(csv, 1, 10);
    printf("init: loss steps 1-10 %.4f from the weights, %.4f fresh\n", cont, fresh);
    CHECK(cont < 0.6 * fresh, "training from the weights starts like a fresh model: %.4f vs %.4f", cont, fresh);
    CHECK(dr_train_export(c, w2, 1) == DR_OK, "export: %s", dr_last_error());
    dr_model *m2 = NULL;
    if (dr_model_load(w2, &m2) == DR_OK) {
        const char *ts = dr_model_meta(m2, "train_steps"), *td = dr_model_meta(m2, "train_data");
        CHECK(ts && strcmp(ts, "170") == 0, "train_steps '%s', want 150 + 20", ts ? ts : "(none)");
        CHECK(td && strstr(td, "continuing from weights of 150 steps"), "train_data '%s'", td ? td : "(none)");
        dr_model_free(m2);
    } else {
        CHECK(0, "load %s: %s", w2, dr_last_error());
    }
    /* no --mode: the weights' mode is used */
    {
        dr_train_options nm = base_options(DR_MODE_NONE, c);
        nm.init_path = w;
        nm.steps = 1;
        remove(c);
        CHECK(dr_train(&nm) == DR_OK, "--init without --mode: %s", dr_last_error());
        train_state s2;
        if (load_state(c, &s2) == DR_OK) {
            CHECK(s2.info.mode == DR_MODE_COLORIZE, "--init without --mode: mode %d", (int)s2.info.mode);
            train_state_free(&s2);
        }
    }
    /* refusals */
    dr_train_options bad = base_options(DR_MODE_SUPERRES, c);
    bad.init_path = w;
    bad.steps = 1;
    CHECK(dr_train(&bad) == DR_ERR_INVALID && strstr(dr_last_error(), "weights for colorize"), "wrong mode: %s",
          dr_last_error());
    bad = base_options(DR_MODE_COLORIZE, c);
    bad.init_path = w;
    bad.resume_path = c;
    CHECK(dr_train(&bad) == DR_ERR_INVALID, "--init with --resume accepted");
    bad = base_options(DR_MODE_COLORIZE, c);
    bad.init_path = csv;
    bad.steps = 1;
    CHECK(dr_train(&bad) != DR_OK && strstr(dr_last_error(), csv), "a CSV as --init: %s", dr_last_error());
    dr_model_free(m);
}

/* file_atomic_remove_stale removes exactly the temp files of one writer */
static void touch(const char *dir, const char *name) {
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
}
static int exists_in(const char *dir, const char *name) {
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}
static void test_remove_stale(void) {
    char d[1200], path[1300];
    snprintf(d, sizeof d, "%s/stale", g_dir);
    mkdir(d, 0755);
    const char *keep[] = {"..tmpABCDEF", ".x.ckpt.tmpAB", ".x.ckpt.tmpAB-DEF", ".y.ckpt.tmpABCDEF", "x.ckpt"};
    for (int i = 0; i < 5; i++) touch(d, keep[i]);
    touch(d, ".x.ckpt.tmpA1b2C3");
    touch(d, ".x.ckpt.tmpZZZZZZ");
    snprintf(path, sizeof path, "%s/", d);
    CHECK(file_atomic_remove_stale(path) == 0, "a directory path removed something");
    snprintf(path, sizeof path, "%s/x.ckpt", d);
    CHECK(file_atomic_remove_stale(path) == 2, "x.ckpt: want its 2 temp files removed");
    CHECK(!exists_in(d, ".x.ckpt.tmpA1b2C3") && !exists_in(d, ".x.ckpt.tmpZZZZZZ"), "x.ckpt's temp files remain");
    for (int i = 0; i < 5; i++) CHECK(exists_in(d, keep[i]), "%s was removed", keep[i]);
}

/* Min-SNR-gamma: the weight on the network's own loss makes it min(SNR, gamma)
 * times the loss of the implied x0 estimate. Checked by building that x0
 * estimate from random predictions at many t (double precision), and at
 * closed-form points. */
static void test_min_snr_weight(void) {
    noise_schedule sch = {0};
    CHECK(noise_schedule_build(&sch, 1000, 0) == DR_OK, "schedule");
    test_rng r = {5};
    double worst = 0;
    static const int ts[] = {0, 1, 10, 100, 250, 400, 500, 600, 750, 900, 990, 999};
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
        const double ab = sch.alpha_bar[ts[k]], sa = sqrt(ab), sb = sqrt(1 - ab), snr = ab / (1 - ab);
        for (int v = 0; v <= 1; v++) {
            double net = 0, x0l = 0; /* sum of squared errors: network target, implied x0 */
            for (int i = 0; i < 64; i++) {
                const double x0 = test_rng_normal(&r) * 0.5, e = test_rng_normal(&r);
                const double xt = sa * x0 + sb * e, err = test_rng_normal(&r) * 0.1;
                double x0hat;
                if (v) { /* v = sa e - sb x0; x0 = sa xt - sb v */
                    const double vt = sa * e - sb * x0, vh = vt + err;
                    x0hat = sa * xt - sb * vh;
                } else { /* x0 = (xt - sb eps) / sa */
                    x0hat = (xt - sb * (e + err)) / sa;
                }
                net += err * err;
                x0l += (x0hat - x0) * (x0hat - x0);
            }
            const double want = fmin(snr, 5.0) * x0l, got = train_min_snr_weight(ab, 5.0, v) * net;
            const double rel = fabs(got - want) / fmax(want, 1e-300);
            if (rel > worst) worst = rel;
            CHECK(rel < 1e-9, "t %d %s: weighted loss %.17g, min(SNR,5) x0 loss %.17g", ts[k], v ? "v" : "eps", got,
                  want);
        }
    }
    CHECK(fabs(train_min_snr_weight(0.5, 5, 1) - 0.5) < 1e-15, "SNR 1, v: 1/2");
    CHECK(fabs(train_min_snr_weight(0.5, 5, 0) - 1.0) < 1e-15, "SNR 1, eps: 1");
    CHECK(fabs(train_min_snr_weight(0.9, 5, 1) - 0.5) < 1e-12, "SNR 9, v: 5/10");
    CHECK(fabs(train_min_snr_weight(0.9, 5, 0) - 5.0 / 9) < 1e-12, "SNR 9, eps: 5/9");
    CHECK(fabs(train_min_snr_weight(0.9, 20, 1) - 0.9) < 1e-12, "SNR 9 < gamma 20, v: 9/10");
    printf("min-snr: worst relative error %.2e over %zu t\n", worst, sizeof ts / sizeof ts[0]);
    /* the log-SNR of each t maps back to it; between two, to the nearer;
     * beyond the ends, to the ends */
    int bad = 0;
    for (int t = 0; t < sch.T; t++) {
        const double ls = log(sch.alpha_bar[t]) - log1p(-sch.alpha_bar[t]);
        if (train_t_from_log_snr(&sch, ls) != t) bad++;
        if (t + 1 < sch.T) {
            const double ls1 = log(sch.alpha_bar[t + 1]) - log1p(-sch.alpha_bar[t + 1]);
            if (train_t_from_log_snr(&sch, ls - 0.2 * (ls - ls1)) != t) bad++;
            if (train_t_from_log_snr(&sch, ls - 0.8 * (ls - ls1)) != t + 1) bad++;
        }
    }
    CHECK(bad == 0, "log-SNR to t: %d mismatches", bad);
    CHECK(train_t_from_log_snr(&sch, 1e9) == 0 && train_t_from_log_snr(&sch, -1e9) == sch.T - 1, "clamped ends");
    noise_schedule_free(&sch);
}

/* Fields of a CSV line (commas, no quoting): how many, and the first n of them. */
static int csv_fields(char *line, char **fld, int n) {
    line[strcspn(line, "\n")] = '\0';
    int k = 0;
    for (char *p = line;; p++) {
        if (k < n) fld[k] = p;
        k++;
        if (!(p = strchr(p, ','))) break;
        *p = '\0';
    }
    return k;
}

/* Rows after the header of the CSV log at path: how many (*rows), and how
 * many of them do not have want fields (the return). */
static int csv_rows_not_of_width(const char *path, int want, int *rows) {
    char line[1024], *fld[1];
    int off = 0;
    *rows = 0;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    if (fgets(line, sizeof line, f))
        while (fgets(line, sizeof line, f)) {
            (*rows)++;
            off += csv_fields(line, fld, 1) != want;
        }
    fclose(f);
    return off;
}

/* The x0 MSE by noise level (DR_VAL_T_BANDS): the bands partition the val
 * crops, their crop-weighted mean is the whole x0 MSE (colorize: every pixel
 * counts, all crops one size), the noisiest band is the hardest, training logs
 * the same bands that --validate measures, and a log begun before the band
 * columns existed keeps its shape on resume. */
static void test_val_bands(void) {
    char out[1200], csv[1300];
    path_in(out, sizeof out, "bands.ckpt");
    snprintf(csv, sizeof csv, "%s.csv", out);
    remove(csv);
    dr_train_options o = base_options(DR_MODE_COLORIZE, out);
    o.steps = 4;
    o.val_dir = g_data;
    o.val_every = 2;
    CHECK(dr_train(&o) == DR_OK, "bands run: %s", dr_last_error());
    dr_train_options v = base_options(DR_MODE_COLORIZE, NULL);
    v.resume_path = out;
    v.val_dir = g_data;
    dr_val_result r;
    CHECK(dr_train_validate_bands(&v, &r) == DR_OK, "validate bands: %s", dr_last_error());
    int crops = 0;
    double wsum = 0;
    for (int k = 0; k < DR_VAL_T_BANDS; k++) {
        crops += r.band_crops[k];
        CHECK(r.band_crops[k] == 0 ? isnan(r.x0_band[k]) : isfinite(r.x0_band[k]) && r.x0_band[k] > 0,
              "band %d: %d crops, x0 %g", k, r.band_crops[k], r.x0_band[k]);
        if (r.band_crops[k]) wsum += r.band_crops[k] * r.x0_band[k];
    }
    CHECK(r.timesteps == 1000, "timesteps %d", r.timesteps);
    CHECK(crops == 4 * 16, "the bands hold %d crops, the val set 64", crops);
    CHECK(fabs(wsum / crops - r.val_x0_mse) <= 1e-9 * r.val_x0_mse, "bands' mean %.12g, x0 mse %.12g", wsum / crops,
          r.val_x0_mse);
    /* near t = 0 x0 is almost x_t; near T it is all the network's guess */
    CHECK(r.band_crops[0] > 0 && r.band_crops[DR_VAL_T_BANDS - 1] > 0 &&
              r.x0_band[DR_VAL_T_BANDS - 1] > 4 * r.x0_band[0],
          "noisiest band %g, cleanest %g", r.x0_band[DR_VAL_T_BANDS - 1], r.x0_band[0]);
    double vl = NAN, vx = NAN;
    CHECK(dr_train_validate(&v, &vl, &vx) == DR_OK && vl == r.val_loss && vx == r.val_x0_mse,
          "dr_train_validate %.9g / %.9g, with bands %.9g / %.9g", vl, vx, r.val_loss, r.val_x0_mse);
    /* the log: a header naming the bands, and the last (validation) row's
     * bands are what --validate measures */
    FILE *f = fopen(csv, "r");
    CHECK(f != NULL, "open %s", csv);
    if (!f) return;
    char line[1024], last[1024] = "", head[1024] = "";
    if (fgets(head, sizeof head, f))
        while (fgets(line, sizeof line, f)) snprintf(last, sizeof last, "%s", line);
    fclose(f);
    char *fld[16];
    CHECK(strstr(head, ",val_x0_mse_params,val_x0_band0,val_x0_band1,val_x0_band2,val_x0_band3,val_x0_band4\n") != NULL,
          "header: %s", head);
    const int nf = csv_fields(last, fld, 16);
    CHECK(nf == 16 && atoi(fld[0]) == 4, "last row: %d fields, step %s", nf, nf > 0 ? fld[0] : "?");
    for (int k = 0; nf == 16 && k < DR_VAL_T_BANDS; k++) {
        const double logged = *fld[11 + k] ? atof(fld[11 + k]) : NAN;
        CHECK(r.band_crops[k] == 0 ? isnan(logged) : fabs(logged - r.x0_band[k]) <= 1e-5 * r.x0_band[k],
              "band %d logged %g, validated %g", k, logged, r.x0_band[k]);
    }
    /* a row without validation has the same 16 fields, the bands empty */
    int rows = 0, short_rows = csv_rows_not_of_width(csv, 16, &rows);
    CHECK(rows == 4 && short_rows == 0, "%d rows, %d of them not 16 fields", rows, short_rows);
    /* a log with the old header: the resumed run appends rows of its 11 columns */
    f = fopen(csv, "w");
    if (f) {
        fprintf(
            f, "step,loss,loss_smooth,lr,grad_norm,t_mean,seconds,val_loss,val_x0_mse,cpu_seconds,val_x0_mse_params\n");
        fclose(f);
    }
    dr_train_options q = base_options(DR_MODE_COLORIZE, out);
    q.resume_path = out;
    q.steps = 6;
    q.val_dir = g_data;
    q.val_every = 2;
    CHECK(dr_train(&q) == DR_OK, "resume with an old log: %s", dr_last_error());
    const int other = csv_rows_not_of_width(csv, 11, &rows);
    CHECK(rows == 2 && other == 0, "old log: %d rows appended, %d not of its 11 columns", rows, other);
    /* a run killed mid-row (stdio wrote part of its buffer) left a row
     * without its newline: the resumed run cuts it, not glues to it */
    f = fopen(csv, "a");
    if (f) {
        fputs("99,0.5,0.", f);
        fclose(f);
    }
    q.steps = 8;
    CHECK(dr_train(&q) == DR_OK, "resume after a torn row: %s", dr_last_error());
    const int glued = csv_rows_not_of_width(csv, 11, &rows);
    int torn = 0;
    f = fopen(csv, "r");
    if (f) {
        while (fgets(line, sizeof line, f)) torn += strncmp(line, "99,", 3) == 0;
        fclose(f);
    }
    CHECK(rows == 4 && glued == 0 && torn == 0, "torn row: %d rows, %d not of 11 columns, %d torn rows left", rows,
          glued, torn);
}

static int csv_last(const char *csv, int *step, double *val_x0, double *cpu, double *val_x0_params) {
    FILE *f = fopen(csv, "r");
    if (!f) return 0;
    char line[512], last[512] = "";
    while (fgets(line, sizeof line, f)) snprintf(last, sizeof last, "%s", line);
    fclose(f);
    /* step,loss,loss_smooth,lr,grad_norm,t_mean,seconds,val_loss,val_x0_mse,cpu_seconds,val_x0_mse_params */
    char *fld[11];
    if (csv_fields(last, fld, 11) < 11) return 0;
    *step = atoi(fld[0]);
    *val_x0 = *fld[8] ? atof(fld[8]) : NAN;
    *cpu = atof(fld[9]);
    *val_x0_params = *fld[10] ? atof(fld[10]) : NAN;
    return 1;
}

/* --budget-cpu-minutes: the run stops where its training CPU time reaches
 * the budget, with a checkpoint, the CPU time in it and a validation row;
 * a larger budget resumes it. The new recipe options survive the checkpoint,
 * and a bad value in one is refused. */
static void test_budget_and_recipe_options(void) {
    char out[1200], csv[1300], bad[1200];
    path_in(out, sizeof out, "budget.ckpt");
    snprintf(csv, sizeof csv, "%s.csv", out);
    dr_train_options o = base_options(DR_MODE_INPAINT, out);
    o.steps = 100000;
    o.val_dir = g_data;
    o.val_every = 1000;
    o.loss_weight = DR_LOSS_MIN_SNR;
    o.snr_gamma = 3.0f;
    o.t_sampling = DR_T_LOGNORMAL;
    o.t_mean = 1.5f;
    o.t_std = 2.0f;
    o.budget_cpu_seconds = 0.3;
    CHECK(dr_train(&o) == DR_OK, "budget run: %s", dr_last_error());
    train_state st;
    if (load_state(out, &st) != DR_OK) return;
    const int step1 = st.step;
    CHECK(st.step > 0 && st.step < 100000, "stopped at step %d", st.step);
    CHECK(st.cpu_seconds >= 0.3 && st.cpu_seconds < 0.3 + 30, "cpu_seconds %g", st.cpu_seconds);
    CHECK(st.opt.loss_weight == DR_LOSS_MIN_SNR && st.opt.snr_gamma == 3.0f, "loss weight kept: %d %g",
          (int)st.opt.loss_weight, st.opt.snr_gamma);
    CHECK(st.opt.t_sampling == DR_T_LOGNORMAL && st.opt.t_mean == 1.5f && st.opt.t_std == 2.0f,
          "t sampling kept: %d %g %g", (int)st.opt.t_sampling, st.opt.t_mean, st.opt.t_std);
    int cstep = -1;
    double vx0 = NAN, cpu = 0, vx0p = NAN;
    CHECK(csv_last(csv, &cstep, &vx0, &cpu, &vx0p) && cstep == step1 && isfinite(vx0) && cpu >= 0.3 && isfinite(vx0p) &&
              vx0p != vx0,
          "last CSV row: step %d val x0 %g cpu %g, raw parameters' val x0 %g", cstep, vx0, cpu, vx0p);
    const double cpu1 = st.cpu_seconds;
    train_state_free(&st);
    /* --validate measures a checkpoint exactly as training logged it */
    {
        dr_train_options v = base_options(DR_MODE_INPAINT, NULL);
        v.resume_path = out;
        v.val_dir = g_data;
        double vl = NAN, vx = NAN;
        CHECK(dr_train_validate(&v, &vl, &vx) == DR_OK, "validate: %s", dr_last_error());
        CHECK(fabs(vx - vx0) <= 1e-6 * fmax(1, vx0), "validated x0 mse %.9g, logged %.9g", vx, vx0);
        v.validate_params = 1; /* the raw parameters, as logged beside the EMA */
        CHECK(dr_train_validate(&v, &vl, &vx) == DR_OK, "validate params: %s", dr_last_error());
        CHECK(fabs(vx - vx0p) <= 1e-6 * fmax(1, vx0p), "validated params' x0 mse %.9g, logged %.9g", vx, vx0p);
        v.validate_params = 0;
        v.resume_path = NULL;
        v.val_dir = NULL;
        CHECK(dr_train_validate(&v, &vl, &vx) != DR_OK, "validate without --val or a model must fail");
    }
    /* the val crops do not depend on the training batch: a checkpoint trained
     * at batch 4 logs what its weights validate to at any --batch */
    {
        char w[1300];
        snprintf(w, sizeof w, "%s.w.safetensors", out);
        CHECK(dr_train_export(out, w, 0) == DR_OK, "export: %s", dr_last_error());
        double vl4 = NAN, vx4 = NAN, vl16 = NAN, vx16 = NAN;
        dr_train_options v = base_options(DR_MODE_INPAINT, NULL);
        v.init_path = w;
        v.val_dir = g_data;
        v.batch = 4;
        CHECK(dr_train_validate(&v, &vl4, &vx4) == DR_OK, "validate weights at batch 4: %s", dr_last_error());
        v.batch = 16;
        CHECK(dr_train_validate(&v, &vl16, &vx16) == DR_OK, "validate weights at batch 16: %s", dr_last_error());
        CHECK(vl4 == vl16 && vx4 == vx16, "val at batch 4 %.9g / %.9g, at 16 %.9g / %.9g: the val set moved", vl4, vx4,
              vl16, vx16);
        CHECK(fabs(vx16 - vx0) <= 1e-6 * fmax(1, vx0), "weights validate to %.9g, the batch-4 run logged %.9g", vx16,
              vx0);
        /* --val-batches: more crops, the first 4 batches those of the default */
        v.val_batches = 1;
        double vl1 = NAN, vx1 = NAN, vl8 = NAN, vx8 = NAN;
        CHECK(dr_train_validate(&v, &vl1, &vx1) == DR_OK, "validate 1 batch: %s", dr_last_error());
        v.val_batches = 8;
        CHECK(dr_train_validate(&v, &vl8, &vx8) == DR_OK, "validate 8 batches: %s", dr_last_error());
        CHECK(isfinite(vl1) && isfinite(vl8) && vl1 != vl16 && vl8 != vl16 && vx8 != vx16,
              "1, 4 and 8 batches must measure different crops: %.9g %.9g %.9g", vl1, vl16, vl8);
        v.val_batches = 0;
        CHECK(dr_train_validate(&v, &vl1, &vx1) != DR_OK && strstr(dr_last_error(), "validation batches"),
              "0 validation batches must be refused: %s", dr_last_error());
        v.val_batches = 4;
        remove(w);
    }
    /* a larger budget continues the same run (the resumed options come from the checkpoint) */
    dr_train_options q = base_options(DR_MODE_INPAINT, out);
    q.resume_path = out;
    q.steps = 100000;
    q.budget_cpu_seconds = cpu1 + 0.3;
    CHECK(dr_train(&q) == DR_OK, "resumed budget run: %s", dr_last_error());
    if (load_state(out, &st) != DR_OK) return;
    CHECK(st.step > step1 && st.cpu_seconds >= cpu1 + 0.3, "resumed: step %d > %d, cpu %g", st.step, step1,
          st.cpu_seconds);
    CHECK(st.opt.loss_weight == DR_LOSS_MIN_SNR && st.opt.t_sampling == DR_T_LOGNORMAL, "options kept on resume");
    train_state_free(&st);
    /* a checkpoint whose loss_weight is not one we know is refused */
    dr_tensor_file tf;
    CHECK(dr_tensor_file_read(out, &tf) == DR_OK, "read %s", out);
    path_in(bad, sizeof bad, "bad_weight.ckpt");
    CHECK(dr_tensor_file_set_meta(&tf, "loss_weight", "cubic") == DR_OK, "set meta");
    CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
    dr_tensor_file_free(&tf);
    CHECK(checkpoint_load(&st, bad) != DR_OK && strstr(dr_last_error(), "loss_weight"), "bogus loss_weight: %s",
          dr_last_error());
}

/* ---- --masks and --scale-dist (issue 14 levers 4b and 5) */

/* The drawn superres factors follow the documented laws: mean and a
 * 10-bin histogram, tolerances 5 standard errors of the sample size. */
static void test_scale_dist(void) {
    const int N = 200000;
    for (int d = 0; d < 2; d++) {
        mode_train_options mo;
        mode_train_options_init(&mo);
        mo.scale_min = 2.0f;
        mo.scale_max = 4.0f;
        mo.scale_dist = d ? DR_SCALE_DIST_HIGH : DR_SCALE_DIST_UNIFORM;
        rng_state rng;
        rng_seed(&rng, 12345);
        int hist[10] = {0}, in_range = 1;
        double sum = 0;
        for (int i = 0; i < N; i++) {
            const double s = mode_draw_scale(&mo, &rng);
            in_range &= s >= 2.0 && s <= 4.0;
            const double x = (s - 2.0) / 2.0;
            sum += x;
            hist[x >= 1.0 ? 9 : (int)(x * 10)]++;
        }
        /* x = (s - A) / (B - A): uniform mean 1/2 var 1/12; high density
         * (1 + 2x) / 2, CDF (x + x^2) / 2, mean 7/12 var 11/144 */
        const double mean = d ? 7.0 / 12 : 0.5, var = d ? 11.0 / 144 : 1.0 / 12;
        const double got = sum / N, tol = 5 * sqrt(var / N);
        printf("  scale-dist %s: mean x %.5f (law %.5f +- %.5f), hist", d ? "high" : "uniform", got, mean, tol);
        for (int b = 0; b < 10; b++) printf(" %d", hist[b]);
        printf("\n");
        CHECK(in_range, "factors within 2..4");
        CHECK(fabs(got - mean) < tol, "%s: mean %.5f, law %.5f +- %.5f", d ? "high" : "uniform", got, mean, tol);
        for (int b = 0; b < 10; b++) {
            const double a = b / 10.0, c = (b + 1) / 10.0;
            const double p = d ? 0.5 * (c + c * c) - 0.5 * (a + a * a) : 0.1;
            const double want = p * N, sd = sqrt(N * p * (1 - p));
            CHECK(fabs(hist[b] - want) < 5 * sd, "%s: bin %d has %d, law %.0f +- %.0f", d ? "high" : "uniform", b,
                  hist[b], want, 5 * sd);
        }
    }
    /* high puts 62.5% of the crops in the top half of the range (uniform 50%) */
    mode_train_options mo;
    mode_train_options_init(&mo);
    mo.scale_min = mo.scale_max = 3.0f;
    mo.scale_dist = DR_SCALE_DIST_HIGH;
    rng_state rng;
    rng_seed(&rng, 1);
    CHECK(mode_draw_scale(&mo, &rng) == 3.0, "A == B gives A");
    /* the uniform law draws exactly what it drew before the option existed */
    mode_train_options_init(&mo);
    rng_state r1, r2;
    rng_seed(&r1, 99);
    rng_seed(&r2, 99);
    const double s1 = mode_draw_scale(&mo, &r1), s2 = 2.0 + 2.0 * rng_uniform(&r2);
    CHECK(s1 == s2, "uniform: %.17g == %.17g", s1, s2);
}

/* The checkpoint keys: absent (older checkpoints) loads as legacy/uniform, an
 * unknown value is refused; validation ignores --masks (fixed legacy masks);
 * the options are refused for the wrong mode. */
static void test_masks_option(void) {
    char out[1200], bad[1200];
    path_in(out, sizeof out, "damage.ckpt");
    path_in(bad, sizeof bad, "damage_bad.ckpt");
    dr_train_options o = base_options(DR_MODE_INPAINT, out);
    o.steps = 2;
    o.masks = DR_MASKS_DAMAGE;
    CHECK(dr_train(&o) == DR_OK, "damage run: %s", dr_last_error());
    dr_tensor_file tf;
    if (dr_tensor_file_read(out, &tf) != DR_OK) {
        CHECK(0, "read %s", out);
        return;
    }
    CHECK(dr_tensor_file_meta(&tf, "masks") && !strcmp(dr_tensor_file_meta(&tf, "masks"), "damage") &&
              dr_tensor_file_meta(&tf, "scale_dist") && !strcmp(dr_tensor_file_meta(&tf, "scale_dist"), "uniform"),
          "checkpoint keys masks=damage scale_dist=uniform");
    /* validation of the damage-trained checkpoint ... */
    dr_train_options v = base_options(DR_MODE_INPAINT, NULL);
    v.resume_path = out;
    v.val_dir = g_data;
    double vl1 = NAN, vx1 = NAN, vl2 = NAN, vx2 = NAN;
    CHECK(dr_train_validate(&v, &vl1, &vx1) == DR_OK, "validate: %s", dr_last_error());
    /* ... equals that of the same state without the keys (an older checkpoint: legacy) */
    for (int i = 0; i < tf.n_meta; i++)
        if (!strcmp(tf.meta_keys[i], "masks") || !strcmp(tf.meta_keys[i], "scale_dist")) tf.meta_keys[i][0] = 'X';
    CHECK(dr_tensor_file_meta(&tf, "masks") == NULL, "key removed");
    CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
    train_state st;
    if (load_state(bad, &st) == DR_OK) {
        CHECK(st.opt.masks == DR_MASKS_LEGACY && st.opt.scale_dist == DR_SCALE_DIST_UNIFORM,
              "no keys: legacy masks, uniform scales");
        train_state_free(&st);
    }
    v.resume_path = bad;
    CHECK(dr_train_validate(&v, &vl2, &vx2) == DR_OK, "validate legacy: %s", dr_last_error());
    CHECK(vl1 == vl2 && vx1 == vx2, "val ignores --masks: %.9g %.9g vs %.9g %.9g", vl1, vx1, vl2, vx2);
    /* unknown values are refused with the key's name */
    CHECK(dr_tensor_file_set_meta(&tf, "masks", "cracks") == DR_OK, "set meta");
    CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
    CHECK(checkpoint_load(&st, bad) == DR_ERR_FORMAT && strstr(dr_last_error(), "masks 'cracks'"), "bogus masks: %s",
          dr_last_error());
    CHECK(dr_tensor_file_set_meta(&tf, "masks", "legacy") == DR_OK, "set meta");
    CHECK(dr_tensor_file_set_meta(&tf, "scale_dist", "low") == DR_OK, "set meta");
    CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
    CHECK(checkpoint_load(&st, bad) == DR_ERR_FORMAT && strstr(dr_last_error(), "scale_dist 'low'"),
          "bogus scale_dist: %s", dr_last_error());
    dr_tensor_file_free(&tf);
    /* the wrong mode */
    dr_train_options w = base_options(DR_MODE_COLORIZE, bad);
    w.steps = 1;
    w.masks = DR_MASKS_DAMAGE;
    CHECK(dr_train(&w) == DR_ERR_INVALID && strstr(dr_last_error(), "only for inpaint"), "colorize with damage: %s",
          dr_last_error());
    w = base_options(DR_MODE_INPAINT, bad);
    w.steps = 1;
    w.scale_dist = DR_SCALE_DIST_HIGH;
    CHECK(dr_train(&w) == DR_ERR_INVALID && strstr(dr_last_error(), "only for superres"), "inpaint with high: %s",
          dr_last_error());
}

/* ---- render_size crops */

/* A w x h image whose R is x * sx, G is y * sy, B 128 (8-bit levels). */
static ds_image ramp_image(int w, int h, int sx, int sy) {
    ds_image im = {w, h, malloc((size_t)w * h * 3)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = im.rgb + ((size_t)y * w + x) * 3;
            p[0] = (unsigned char)(x * sx), p[1] = (unsigned char)(y * sy), p[2] = 128;
        }
    return im;
}

/* Slope of a crop's channel c along x (dir 0) or y (dir 1), in 8-bit levels
 * per crop pixel, over the interior (3 .. P-4: clear of the window's edges). */
static double crop_slope(const float *out, int P, int c, int dir) {
    double s = 0;
    for (int r = 3; r <= P - 4; r++) {
        const float *p = out + (size_t)c * P * P;
        const float a = dir ? p[3 * P + r] : p[r * P + 3], b = dir ? p[(P - 4) * P + r] : p[r * P + P - 4];
        s += (b - a) * 127.5 / (P - 7);
    }
    return s / (P - 6);
}

static void test_render_crops(void) {
    const int P = 16, R = 64;
    /* A 256 x 192 photo at R = 64 is the photo shrunk 4x (times z in 0.8..1.25):
     * a 16-pixel crop covers S = 64 / z source pixels, which the ramps measure
     * as the crop's slope (S / P levels per pixel, the same along x and y). */
    ds_image im = ramp_image(256, 192, 1, 1);
    dataset ds = {0};
    ds.n = 1;
    ds.images = &im;
    float *out = malloc(sizeof(float) * 3 * P * P);
    const size_t nt = dataset_crop_tmp(&ds, P, R);
    float *tmp = malloc(sizeof(float) * nt);
    double smin = 1e9, smax = 0, logsum = 0, worst_xy = 0;
    int flips = 0, n = 400, err = 0;
    for (int i = 0; i < n; i++) {
        rng_state rng;
        rng_derive(&rng, 5, (uint64_t)i, 0);
        if (dataset_random_crop(&ds, &rng, P, R, 4.0, out, tmp) != DR_OK) {
            err++;
            continue;
        }
        const double sx = crop_slope(out, P, 0, 0), sy = crop_slope(out, P, 1, 1);
        const double S = sy * P;
        flips += sx < 0;
        worst_xy = fmax(worst_xy, fabs(fabs(sx) - sy) * P);
        smin = fmin(smin, S), smax = fmax(smax, S);
        logsum += log(S / 64.0);
    }
    printf("render crops 256x192 at R %d, P %d: S %.1f..%.1f (want 51.2..80), mean log(S/64) %.3f, %d/%d flipped, "
           "|S_x - S_y| <= %.3f\n",
           R, P, smin, smax, logsum / n, flips, n, worst_xy);
    CHECK(err == 0, "%d crops failed: %s", err, dr_last_error());
    CHECK(smin > 64 / 1.25 - 0.6 && smax < 64 / 0.8 + 0.6, "crop sides %.1f..%.1f outside 64 / (0.8..1.25)", smin,
          smax);
    CHECK(smin < 54 && smax > 76, "zoom jitter does not span 0.8..1.25: S %.1f..%.1f", smin, smax);
    CHECK(fabs(logsum / n) < 0.03, "zoom not centred on the working scale: mean log(S/64) %.3f", logsum / n);
    CHECK(worst_xy < 0.5, "crop not square: |S_x - S_y| up to %.3f", worst_xy);
    CHECK(flips > n / 4 && flips < 3 * n / 4, "%d of %d crops flipped", flips, n);

    /* a photo smaller than the working size is never upscaled: S = P, the
     * pixels themselves (slope exactly 1 level per pixel) */
    ds_image small = ramp_image(48, 40, 1, 1);
    ds.images = &small;
    double worst = 0;
    for (int i = 0; i < 50; i++) {
        rng_state rng;
        rng_derive(&rng, 6, (uint64_t)i, 0);
        CHECK(dataset_random_crop(&ds, &rng, P, R, 4.0, out, tmp) == DR_OK, "small crop: %s", dr_last_error());
        worst = fmax(worst, fabs(fabs(crop_slope(out, P, 0, 0)) - 1.0) + fabs(crop_slope(out, P, 1, 1) - 1.0));
    }
    CHECK(worst < 1e-4, "a small photo was resampled (slope off by %.3g)", worst);

    /* S clamped to the short side, and the tmp size holds: canaries after it */
    ds_image wide = ramp_image(900, 300, 0, 0);
    ds.images = &wide;
    const int P2 = 8, R2 = 16;
    const size_t nt2 = dataset_crop_tmp(&ds, P2, R2);
    CHECK(nt2 > dataset_crop_tmp(&ds, P2, 0), "render crops need more tmp here (%zu)", nt2);
    float *tmp2 = malloc(sizeof(float) * (nt2 + 64));
    for (int i = 0; i < 64; i++) tmp2[nt2 + i] = -12345.0f;
    for (int i = 0; i < 20; i++) {
        rng_state rng;
        rng_derive(&rng, 7, (uint64_t)i, 0);
        CHECK(dataset_random_crop(&ds, &rng, P2, R2, 4.0, out, tmp2) == DR_OK, "wide crop: %s", dr_last_error());
    }
    int canary = 1;
    for (int i = 0; i < 64; i++) canary &= tmp2[nt2 + i] == -12345.0f;
    CHECK(canary, "render crop wrote past dataset_crop_tmp");
    free(tmp2);

    /* render_size 0: today's crops - an image, S log-uniform in P..min(w, h, 4P),
     * a position, a flip, then ip_resize - drawn in that order */
    ds_image imgs[2] = {ramp_image(200, 150, 1, 1), ramp_image(90, 120, 2, 2)};
    ds.n = 2;
    ds.images = imgs;
    float *want = malloc(sizeof(float) * 3 * P * P), *src = malloc(sizeof(float) * 3 * 4 * P * 4 * P);
    int same = 1, native = 1;
    const double zooms[3] = {4.0, 2.5, 1.0}; /* --zoom-max: the default, a cap, the photos' own pixels */
    for (int i = 0; i < 120; i++) {
        const double zm = zooms[i % 3];
        rng_state a, b;
        rng_derive(&a, 8, (uint64_t)i, 0);
        b = a;
        CHECK(dataset_random_crop(&ds, &a, P, 0, zm, out, tmp) == DR_OK, "crop: %s", dr_last_error());
        const ds_image *m = &imgs[rng_below(&b, 2)];
        int sm = m->w < m->h ? m->w : m->h;
        if (sm > (int)(zm * P)) sm = (int)(zm * P);
        int S = (int)(P * pow((double)sm / P, rng_uniform(&b)) + 0.5);
        S = S < P ? P : S > sm ? sm : S;
        const int x0 = (int)rng_below(&b, (uint32_t)(m->w - S + 1)), y0 = (int)rng_below(&b, (uint32_t)(m->h - S + 1));
        const int flip = rng_below(&b, 2);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                for (int c = 0; c < 3; c++)
                    src[(size_t)c * S * S + (size_t)y * S + x] =
                        m->rgb[((size_t)(y0 + y) * m->w + x0 + (flip ? S - 1 - x : x)) * 3 + c] / 127.5f - 1.0f;
        if (S == P)
            memcpy(want, src, sizeof(float) * 3 * P * P);
        else
            ip_resize(src, 3, S, S, want, P, P);
        same &= memcmp(want, out, sizeof(float) * 3 * P * P) == 0;
        same &= rng_u64(&a) == rng_u64(&b); /* and the stream is left where it was */
        if (zm == 1.0) native &= S == P;
    }
    CHECK(same, "render_size 0 no longer draws today's crops (zoom_max 4, 2.5 and 1)");
    CHECK(native, "zoom_max 1 resampled a crop");
    free(want);
    free(src);
    for (int k = 0; k < 2; k++) free(imgs[k].rgb);
    free(im.rgb);
    free(small.rgb);
    free(wide.rgb);
    free(out);
    free(tmp);
}

/* --render-size through dr_train: resume stays exact, the checkpoint and the
 * exported weights carry render_size, a checkpoint without it (as every one
 * before it) loads as 0, and other modes refuse it. */
static void test_render_train(void) {
    char a[1200], b[1200], w[1300];
    path_in(a, sizeof a, "render-straight.ckpt");
    path_in(b, sizeof b, "render-resumed.ckpt");
    snprintf(w, sizeof w, "%s/render.safetensors", g_dir);
    dr_train_options o = base_options(DR_MODE_COLORIZE, a);
    o.steps = 10;
    o.target_scale = 2.0f;
    o.render_size = 24;
    CHECK(dr_train(&o) == DR_OK, "straight run: %s", dr_last_error());
    dr_train_options p = base_options(DR_MODE_COLORIZE, b);
    p.steps = 4;
    p.target_scale = 2.0f;
    p.render_size = 24;
    CHECK(dr_train(&p) == DR_OK, "first half: %s", dr_last_error());
    dr_train_options q = base_options(DR_MODE_COLORIZE, b);
    q.resume_path = b;
    q.steps = 10; /* render_size comes from the checkpoint */
    CHECK(dr_train(&q) == DR_OK, "resumed half: %s", dr_last_error());
    train_state s1, s2;
    if (load_state(a, &s1) == DR_OK) {
        if (load_state(b, &s2) == DR_OK) {
            const size_t n = s1.L.n_floats * sizeof(float);
            CHECK(s1.opt.render_size == 24 && s2.opt.render_size == 24, "render_size in the checkpoints: %d %d",
                  s1.opt.render_size, s2.opt.render_size);
            CHECK(s2.step == 10 && memcmp(s1.params, s2.params, n) == 0 && memcmp(s1.ema, s2.ema, n) == 0 &&
                      memcmp(s1.adam_m, s2.adam_m, n) == 0 && memcmp(s1.adam_v, s2.adam_v, n) == 0,
                  "render_size 24: the resumed run differs from the straight one");
            train_state_free(&s2);
        }
        train_state_free(&s1);
    }
    /* the crops differ from full-resolution ones: a run without it ends elsewhere */
    char c0[1200];
    path_in(c0, sizeof c0, "render0.ckpt");
    dr_train_options z = base_options(DR_MODE_COLORIZE, c0);
    z.steps = 10;
    z.target_scale = 2.0f;
    CHECK(dr_train(&z) == DR_OK, "render 0 run: %s", dr_last_error());
    dr_tensor_file tf;
    if (dr_tensor_file_read(c0, &tf) == DR_OK) {
        CHECK(dr_tensor_file_meta(&tf, "render_size") == NULL, "a render 0 checkpoint names a render_size");
        dr_tensor_file_free(&tf);
    }
    if (load_state(c0, &s1) == DR_OK) {
        CHECK(s1.opt.render_size == 0, "a checkpoint without render_size loads %d", s1.opt.render_size);
        if (load_state(a, &s2) == DR_OK) {
            CHECK(memcmp(s1.params, s2.params, s1.L.n_floats * sizeof(float)) != 0, "render_size changed nothing");
            train_state_free(&s2);
        }
        train_state_free(&s1);
    }
    CHECK(dr_train_export(a, w, 1) == DR_OK, "export: %s", dr_last_error());
    dr_model *m = NULL;
    if (dr_model_load(w, &m) == DR_OK) {
        const char *v = dr_model_meta(m, "render_size");
        CHECK(v && !strcmp(v, "24"), "exported render_size '%s'", v ? v : "(none)");
        dr_model_free(m);
    } else {
        CHECK(0, "load %s: %s", w, dr_last_error());
    }
    dr_train_options bad = base_options(DR_MODE_SUPERRES, c0);
    bad.steps = 1;
    bad.render_size = 24;
    remove(c0);
    CHECK(dr_train(&bad) == DR_ERR_INVALID && strstr(dr_last_error(), "colorize"), "superres with render size: %s",
          dr_last_error());
    bad = base_options(DR_MODE_COLORIZE, c0);
    bad.steps = 1;
    bad.render_size = 8;
    CHECK(dr_train(&bad) == DR_ERR_INVALID, "render size 8 accepted");
}

/* --ema-probe: a probe with the main EMA's decay validates to exactly the
 * main EMA's numbers, a probe of decay 0 to the raw parameters' (the EMA of
 * decay 0 is the weights), and another decay to neither; bad probes are
 * refused. The probes' log sits beside the training log. */
static void test_ema_probes(void) {
    char out[1200], csv[1300], pcsv[1300];
    path_in(out, sizeof out, "probe.ckpt");
    snprintf(csv, sizeof csv, "%s.csv", out);
    snprintf(pcsv, sizeof pcsv, "%s.ema.csv", out);
    dr_train_options o = base_options(DR_MODE_INPAINT, out);
    o.steps = 12;
    o.val_dir = g_data;
    o.val_every = 4;
    o.ema_decay = 0.9f;
    o.n_ema_probe = 3;
    o.ema_probe[0] = 0.9f;
    o.ema_probe[1] = 0.0f;
    o.ema_probe[2] = 0.2f; /* below the warmup from step 2 on, so it differs by step 4 */
    CHECK(dr_train(&o) == DR_OK, "probe run: %s", dr_last_error());
    /* the main log's val rows: step -> (x0 EMA, x0 params) */
    double ema_x0[13], par_x0[13];
    for (int i = 0; i < 13; i++) ema_x0[i] = par_x0[i] = NAN;
    FILE *f = fopen(csv, "r");
    CHECK(f != NULL, "training log %s", csv);
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *fld[11] = {0};
        int n = 0;
        line[strcspn(line, "\n")] = '\0';
        for (char *p = line; p && n < 11; n++) {
            fld[n] = p;
            char *c = strchr(p, ',');
            if (c) *c = '\0';
            p = c ? c + 1 : NULL;
        }
        const int st = atoi(fld[0]);
        if (n == 11 && st >= 1 && st <= 12 && *fld[8]) ema_x0[st] = atof(fld[8]), par_x0[st] = atof(fld[10]);
    }
    if (f) fclose(f);
    f = fopen(pcsv, "r");
    CHECK(f != NULL, "probes' log %s", pcsv);
    int rows = 0, same_ema = 0, same_raw = 0, other = 0, header = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "step,cpu_seconds,decay,decay_now,val_loss,val_x0_mse", 52)) {
            header++;
            continue;
        }
        int st;
        double cpu, decay, now, vl, vx0;
        if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf", &st, &cpu, &decay, &now, &vl, &vx0) != 6 || st < 1 || st > 12)
            continue;
        rows++;
        if (decay == 0.9) same_ema += vx0 == ema_x0[st] && fabs(now - fmin(0.9f, st / (9.0 + st))) < 1e-6;
        if (decay == 0) same_raw += vx0 == par_x0[st] && now == 0;
        if (decay == 0.2) other += vx0 != ema_x0[st] && vx0 != par_x0[st] && isfinite(vx0);
    }
    if (f) fclose(f);
    CHECK(header == 1 && rows == 9, "probes' log: header %d, %d rows (3 validations x 3 probes)", header, rows);
    CHECK(same_ema == 3, "a probe of the main decay validates as the main EMA (%d of 3)", same_ema);
    CHECK(same_raw == 3, "a probe of decay 0 validates as the raw parameters (%d of 3)", same_raw);
    CHECK(other == 3, "a probe of another decay gives other numbers (%d of 3)", other);

    dr_train_options b = o;
    path_in(out, sizeof out, "probe_bad.ckpt");
    b.out_path = out;
    b.ema_probe[1] = 1.0f;
    CHECK(dr_train(&b) == DR_ERR_INVALID && strstr(dr_last_error(), "probe"), "decay 1 refused: %s", dr_last_error());
    b = o;
    b.out_path = out;
    b.n_ema_probe = DR_EMA_PROBES_MAX + 1;
    CHECK(dr_train(&b) == DR_ERR_INVALID, "too many probes refused: %s", dr_last_error());
    b = o;
    b.out_path = out;
    b.val_dir = NULL;
    CHECK(dr_train(&b) == DR_ERR_INVALID && strstr(dr_last_error(), "--val"), "probes without val refused: %s",
          dr_last_error());
    CHECK(access(out, F_OK) != 0, "a refused run writes no checkpoint");
}

static int same_state(const train_state *a, const train_state *b) {
    const size_t n = a->L.n_floats * sizeof(float);
    return a->step == b->step && memcmp(a->params, b->params, n) == 0 && memcmp(a->ema, b->ema, n) == 0 &&
        memcmp(a->adam_m, b->adam_m, n) == 0 && memcmp(a->adam_v, b->adam_v, n) == 0;
}

static void test_dropout(void) {
    char a[1200], b[1200], c[1200], w[1200], csv[1300];
    path_in(a, sizeof a, "drop.ckpt");
    path_in(b, sizeof b, "drop_b.ckpt");
    path_in(c, sizeof c, "drop_c.ckpt");
    path_in(w, sizeof w, "drop.safetensors");
    snprintf(csv, sizeof csv, "%s.csv", a);
    /* the reference: 6 steps at dropout 0.5, validated at the end (2 threads) */
    dr_train_options o = base_options(DR_MODE_COLORIZE, a);
    o.steps = 6;
    o.target_scale = 2.0f;
    o.dropout = 0.5f;
    o.val_dir = g_data;
    o.val_every = 6;
    o.val_batches = 1;
    CHECK(dr_train(&o) == DR_OK, "dropout run: %s", dr_last_error());
    train_state s1, s2;
    if (load_state(a, &s1) != DR_OK) return;
    CHECK(s1.opt.dropout == 0.5f, "checkpoint dropout %g, want 0.5", (double)s1.opt.dropout);
    /* 1 thread: the same bits */
    dr_train_options p = o;
    p.out_path = b;
    p.val_dir = NULL;
    p.val_every = 0;
    dr_set_threads(1);
    CHECK(dr_train(&p) == DR_OK, "dropout run, 1 thread: %s", dr_last_error());
    dr_set_threads(2);
    if (load_state(b, &s2) == DR_OK) {
        CHECK(same_state(&s1, &s2), "dropout: 1 and 2 threads train differently");
        train_state_free(&s2);
    }
    /* without dropout: another run (the option does something) */
    remove(b);
    p.dropout = 0;
    CHECK(dr_train(&p) == DR_OK, "run without dropout: %s", dr_last_error());
    if (load_state(b, &s2) == DR_OK) {
        CHECK(!same_state(&s1, &s2), "dropout 0.5 trains the same as 0");
        CHECK(s2.opt.dropout == 0, "checkpoint dropout %g, want 0", (double)s2.opt.dropout);
        train_state_free(&s2);
    }
    /* stopped at step 3 and resumed: exact, the dropout coming from the checkpoint */
    remove(b);
    p.dropout = 0.5f;
    p.steps = 3;
    CHECK(dr_train(&p) == DR_OK, "first half: %s", dr_last_error());
    dr_train_options q = base_options(DR_MODE_COLORIZE, b);
    q.resume_path = b;
    q.steps = 6;
    CHECK(dr_train(&q) == DR_OK, "resumed half: %s", dr_last_error());
    if (load_state(b, &s2) == DR_OK) {
        CHECK(same_state(&s1, &s2), "dropout: the resumed run differs");
        train_state_free(&s2);
    }
    /* resumed with another dropout: stored, and the run changes from step 3 */
    remove(b);
    CHECK(dr_train(&p) == DR_OK, "first half again: %s", dr_last_error());
    q.resume_dropout = 1;
    q.dropout = 0.1f;
    CHECK(dr_train(&q) == DR_OK, "resumed at dropout 0.1: %s", dr_last_error());
    if (load_state(b, &s2) == DR_OK) {
        CHECK(s2.opt.dropout == 0.1f && s2.step == 6, "resumed: dropout %g, step %d", (double)s2.opt.dropout, s2.step);
        CHECK(!same_state(&s1, &s2), "dropout 0.1 from step 3 trains the same as 0.5");
        train_state_free(&s2);
    }
    /* micro-batches of 1: the sums round differently (the checkpoints differ
     * as without dropout), but each sample drops what it dropped in the
     * batch of 4, so the losses of steps 6..8 (the output conv starts at 0:
     * the first steps' losses hardly see the masks) agree to the log's 6
     * digits; other masks (dropout 0.45, nested in 0.5's) move them by more */
    char csvb[1300], csvc[1300];
    snprintf(csvb, sizeof csvb, "%s.csv", b);
    snprintf(csvc, sizeof csvc, "%s.csv", c);
    for (int k = 0; k < 3; k++) { /* k 0: micro-batch 4 (the reference); 1: micro-batch 1; 2: dropout 0.45 */
        remove(k ? b : c);
        remove(k ? csvb : csvc);
        p = o;
        p.out_path = k ? b : c;
        p.val_dir = NULL;
        p.val_every = 0;
        p.steps = 8;
        p.micro_batch = k == 1 ? 1 : 4;
        p.dropout = k == 2 ? 0.45f : o.dropout;
        CHECK(dr_train(&p) == DR_OK, "micro-batch %d: %s", p.micro_batch, dr_last_error());
        if (k == 0) continue;
        double worst = 0;
        for (int s = 6; s <= 8; s++) {
            const double la = csv_loss_mean(csvc, s, s), lb = csv_loss_mean(csvb, s, s);
            const double d = fabs(la - lb) / la;
            if (!(d <= worst)) worst = d;
        }
        printf("dropout %.2f, micro-batch %d: worst relative loss difference %.2e at steps 6..8\n", (double)p.dropout,
               p.micro_batch, worst);
        if (k == 1) CHECK(worst <= 2e-6, "micro-batch 1: losses differ by %.3e from micro-batch 4's", worst);
        if (k == 2) CHECK(worst > 1e-4, "other masks: losses differ by only %.3e (the check cannot fail)", worst);
    }
    remove(c);
    /* out of range: refused */
    dr_train_options bad = base_options(DR_MODE_COLORIZE, c);
    const float bad_p[3] = {1.0f, -0.1f, NAN};
    for (int k = 0; k < 3; k++) {
        bad.dropout = bad_p[k];
        CHECK(dr_train(&bad) == DR_ERR_INVALID && strstr(dr_last_error(), "dropout"), "dropout %g refused: %s",
              (double)bad_p[k], dr_last_error());
    }
    CHECK(access(c, F_OK) != 0, "a refused run writes no checkpoint");
    /* validation never drops: the logged val x0 MSE is the checkpoint's (which
     * says dropout 0.5) and its exported weights' (which say nothing) */
    int step = 0;
    double logged = NAN, cpu, vp, v_ck = NAN, x_ck = NAN, v_w = NAN, x_w = NAN;
    CHECK(csv_last(csv, &step, &logged, &cpu, &vp) && step == 6 && isfinite(logged), "val row: step %d, x0 %g", step,
          logged);
    dr_train_options v = base_options(DR_MODE_COLORIZE, c);
    v.val_dir = g_data;
    v.val_batches = 1;
    v.resume_path = a;
    CHECK(dr_train_validate(&v, &v_ck, &x_ck) == DR_OK, "validate the checkpoint: %s", dr_last_error());
    CHECK(dr_train_export(a, w, 0) == DR_OK, "export: %s", dr_last_error());
    v.resume_path = NULL;
    v.init_path = w;
    CHECK(dr_train_validate(&v, &v_w, &x_w) == DR_OK, "validate the weights: %s", dr_last_error());
    printf("dropout 0.5: val x0 MSE logged %.6f, checkpoint %.6f, exported weights %.6f\n", logged, x_ck, x_w);
    CHECK(fabs(x_ck - logged) <= 1e-6 && x_ck == x_w && v_ck == v_w,
          "validation dropped: logged %.6f, checkpoint %.8f (loss %.8f), weights %.8f (loss %.8f)", logged, x_ck, v_ck,
          x_w, v_w);
    train_state_free(&s1);
}

/* ---- --augment dihedral: the crop's 8 rotations and mirrors */

/* dataset_crop_turn after the crop's own left-right mirror gives the 8
 * elements of the square's symmetry group, each once: checked against
 * rotations and mirrors written out here on a crop whose every value
 * differs (so no two transforms can agree by chance). */
static void test_crop_turn(void) {
    enum { P = 5 };
    const size_t pp = (size_t)P * P;
    float img[3 * P * P], got[8][3 * P * P], want[8][3 * P * P], tmp[3 * P * P];
    for (size_t i = 0; i < 3 * pp; i++) img[i] = (float)i;
    /* want[r + 4 m]: rotated r quarter turns (counter-clockwise: (y, x) <- (x, P-1-y)), after m mirrors */
    for (int m = 0; m < 2; m++)
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < P; y++)
                    for (int x = 0; x < P; x++) {
                        int sy = y, sx = x;
                        for (int q = 0; q < r; q++) { /* undo one quarter turn */
                            const int ty = sx, tx = P - 1 - sy;
                            sy = ty, sx = tx;
                        }
                        if (m) sx = P - 1 - sx;
                        want[r + 4 * m][c * pp + (size_t)y * P + x] = img[c * pp + (size_t)sy * P + sx];
                    }
    for (int f = 0; f < 2; f++)
        for (int k = 0; k < 4; k++) {
            float *g = got[k + 4 * f];
            for (int c = 0; c < 3; c++) /* the crop's own mirror */
                for (int y = 0; y < P; y++)
                    for (int x = 0; x < P; x++)
                        g[c * pp + (size_t)y * P + x] = img[c * pp + (size_t)y * P + (f ? P - 1 - x : x)];
            dataset_crop_turn(g, P, k, tmp);
        }
    /* k = 0 leaves the crop; 1 mirrors it up-down: row y is row P-1-y */
    CHECK(!memcmp(got[0], img, sizeof img), "turn 0 changed the crop");
    CHECK(got[1][0] == img[(P - 1) * P] && got[1][P - 1] == img[(P - 1) * P + P - 1], "turn 1 is not up-down");
    CHECK(got[2][1] == img[P] && got[2][P] == img[1], "turn 2 is not a transpose");
    int hits[8] = {0};
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            if (!memcmp(got[i], want[j], sizeof img)) hits[j]++;
    for (int j = 0; j < 8; j++)
        CHECK(hits[j] == 1, "rotation %d x %d, mirror %d: made by %d of the 8 (flip, turn) pairs, want 1", j % 4, 90,
              j / 4, hits[j]);
    /* the random turn draws the 4 equally often: 5 standard errors */
    enum { N = 40000 };
    int seen[4] = {0};
    rng_state rng;
    rng_seed(&rng, 7);
    float cur[3 * P * P];
    for (int i = 0; i < N; i++) {
        memcpy(cur, img, sizeof img);
        dataset_crop_turn_random(cur, P, &rng, tmp);
        for (int k = 0; k < 4; k++) /* got[k]: img turned by k */
            if (!memcmp(cur, got[k], sizeof img)) seen[k]++;
    }
    const double sd = sqrt(N * 0.25 * 0.75);
    for (int k = 0; k < 4; k++)
        CHECK(fabs(seen[k] - N / 4.0) < 5 * sd, "turn %d drawn %d times of %d, want %.0f +- %.0f", k, seen[k], N,
              N / 4.0, 5 * sd);
}

/* The option reaches the run and the checkpoint, resumes exactly, can be
 * changed on resume, and never turns the validation crops. */
static void test_augment(void) {
    char a[1200], b[1200], bad[1200];
    path_in(a, sizeof a, "aug.ckpt");
    path_in(b, sizeof b, "aug_b.ckpt");
    path_in(bad, sizeof bad, "aug_bad.ckpt");
    dr_train_options o = base_options(DR_MODE_SUPERRES, a);
    o.steps = 6;
    o.augment = DR_AUGMENT_DIHEDRAL;
    CHECK(dr_train(&o) == DR_OK, "dihedral run: %s", dr_last_error());
    train_state s1, s2;
    if (load_state(a, &s1) != DR_OK) return;
    CHECK(s1.opt.augment == DR_AUGMENT_DIHEDRAL, "checkpoint augment %d, want dihedral", (int)s1.opt.augment);
    /* flip: another run, and its checkpoint has no augment key (as before the option) */
    dr_train_options p = o;
    p.out_path = b;
    p.augment = DR_AUGMENT_FLIP;
    CHECK(dr_train(&p) == DR_OK, "flip run: %s", dr_last_error());
    dr_tensor_file tf;
    if (dr_tensor_file_read(b, &tf) == DR_OK) {
        CHECK(dr_tensor_file_meta(&tf, "augment") == NULL, "a flip checkpoint writes an augment key");
        dr_tensor_file_free(&tf);
    }
    if (load_state(b, &s2) == DR_OK) {
        CHECK(!same_state(&s1, &s2), "dihedral trains the same as flip");
        CHECK(s2.opt.augment == DR_AUGMENT_FLIP, "checkpoint augment %d, want flip", (int)s2.opt.augment);
        train_state_free(&s2);
    }
    /* stopped at step 3 and resumed: exact, the option coming from the checkpoint */
    remove(b);
    p.augment = DR_AUGMENT_DIHEDRAL;
    p.steps = 3;
    CHECK(dr_train(&p) == DR_OK, "first half: %s", dr_last_error());
    dr_train_options q = base_options(DR_MODE_SUPERRES, b);
    q.resume_path = b;
    q.steps = 6;
    CHECK(dr_train(&q) == DR_OK, "resumed half: %s", dr_last_error());
    if (load_state(b, &s2) == DR_OK) {
        CHECK(same_state(&s1, &s2), "dihedral: the resumed run differs");
        train_state_free(&s2);
    }
    /* resumed with flip: stored, and the run changes from step 3 */
    remove(b);
    CHECK(dr_train(&p) == DR_OK, "first half again: %s", dr_last_error());
    q.resume_augment = 1;
    q.augment = DR_AUGMENT_FLIP;
    CHECK(dr_train(&q) == DR_OK, "resumed with flip: %s", dr_last_error());
    if (load_state(b, &s2) == DR_OK) {
        CHECK(s2.opt.augment == DR_AUGMENT_FLIP && s2.step == 6, "resumed: augment %d, step %d", (int)s2.opt.augment,
              s2.step);
        CHECK(!same_state(&s1, &s2), "flip from step 3 trains the same as dihedral");
        train_state_free(&s2);
    }
    /* validation is not turned: the dihedral checkpoint validates as the same
     * state with the key removed (a flip checkpoint) */
    dr_train_options v = base_options(DR_MODE_SUPERRES, NULL);
    v.resume_path = a;
    v.val_dir = g_data;
    double vl1 = NAN, vx1 = NAN, vl2 = NAN, vx2 = NAN;
    CHECK(dr_train_validate(&v, &vl1, &vx1) == DR_OK, "validate: %s", dr_last_error());
    if (dr_tensor_file_read(a, &tf) != DR_OK) {
        CHECK(0, "read %s", a);
        train_state_free(&s1);
        return;
    }
    CHECK(dr_tensor_file_meta(&tf, "augment") && !strcmp(dr_tensor_file_meta(&tf, "augment"), "dihedral"),
          "checkpoint key augment=dihedral");
    for (int i = 0; i < tf.n_meta; i++)
        if (!strcmp(tf.meta_keys[i], "augment")) tf.meta_keys[i][0] = 'X';
    CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
    v.resume_path = bad;
    CHECK(dr_train_validate(&v, &vl2, &vx2) == DR_OK, "validate without the key: %s", dr_last_error());
    CHECK(vl1 == vl2 && vx1 == vx2, "validation turned its crops: %.9g %.9g vs %.9g %.9g", vl1, vx1, vl2, vx2);
    /* an unknown value is refused with the key's name; a bad enum too */
    CHECK(dr_tensor_file_set_meta(&tf, "augment", "rot45") == DR_OK, "set meta");
    CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
    CHECK(checkpoint_load(&s2, bad) == DR_ERR_FORMAT && strstr(dr_last_error(), "augment 'rot45'"), "bogus augment: %s",
          dr_last_error());
    dr_tensor_file_free(&tf);
    remove(bad);
    dr_train_options w = base_options(DR_MODE_SUPERRES, bad);
    w.augment = (dr_train_augment)7;
    CHECK(dr_train(&w) == DR_ERR_INVALID && strstr(dr_last_error(), "augment 7"), "augment 7: %s", dr_last_error());
    CHECK(access(bad, F_OK) != 0, "a refused run writes no checkpoint");
    train_state_free(&s1);
}

/* --zoom-max: reaches the run and the checkpoint (no key at the default 4),
 * resumes exactly, can be changed on resume, leaves validation alone, and a
 * bad value is refused from the options and from a checkpoint. */
static void test_zoom_max(void) {
    char a[1200], b[1200], bad[1200];
    path_in(a, sizeof a, "zoom.ckpt");
    path_in(b, sizeof b, "zoom_b.ckpt");
    path_in(bad, sizeof bad, "zoom_bad.ckpt");
    dr_train_options o = base_options(DR_MODE_SUPERRES, a);
    o.steps = 6;
    o.zoom_max = 1;
    CHECK(dr_train(&o) == DR_OK, "zoom 1 run: %s", dr_last_error());
    train_state s1, s2;
    if (load_state(a, &s1) != DR_OK) return;
    CHECK(s1.opt.zoom_max == 1, "checkpoint zoom_max %g, want 1", s1.opt.zoom_max);
    dr_train_options p = o;
    p.out_path = b;
    p.zoom_max = 4;
    CHECK(dr_train(&p) == DR_OK, "zoom 4 run: %s", dr_last_error());
    dr_tensor_file tf;
    if (dr_tensor_file_read(b, &tf) == DR_OK) {
        CHECK(dr_tensor_file_meta(&tf, "zoom_max") == NULL, "a default checkpoint writes a zoom_max key");
        dr_tensor_file_free(&tf);
    }
    if (load_state(b, &s2) == DR_OK) {
        CHECK(!same_state(&s1, &s2), "zoom_max 1 trains the same as 4");
        CHECK(s2.opt.zoom_max == 4, "checkpoint zoom_max %g, want 4", s2.opt.zoom_max);
        train_state_free(&s2);
    }
    /* stopped at step 3 and resumed: exact, zoom_max from the checkpoint */
    remove(b);
    p.zoom_max = 1;
    p.steps = 3;
    CHECK(dr_train(&p) == DR_OK, "first half: %s", dr_last_error());
    dr_train_options q = base_options(DR_MODE_SUPERRES, b);
    q.resume_path = b;
    q.steps = 6;
    CHECK(dr_train(&q) == DR_OK, "resumed half: %s", dr_last_error());
    if (load_state(b, &s2) == DR_OK) {
        CHECK(same_state(&s1, &s2), "zoom_max 1: the resumed run differs");
        train_state_free(&s2);
    }
    /* resumed with zoom_max 4: stored, and the run changes from step 3 */
    remove(b);
    CHECK(dr_train(&p) == DR_OK, "first half again: %s", dr_last_error());
    q.resume_zoom_max = 1;
    q.zoom_max = 4;
    CHECK(dr_train(&q) == DR_OK, "resumed at zoom 4: %s", dr_last_error());
    if (load_state(b, &s2) == DR_OK) {
        CHECK(s2.opt.zoom_max == 4 && s2.step == 6, "resumed: zoom_max %g, step %d", s2.opt.zoom_max, s2.step);
        CHECK(!same_state(&s1, &s2), "zoom 4 from step 3 trains the same as zoom 1");
        train_state_free(&s2);
    }
    /* validation keeps the full zoom range: the zoom-1 checkpoint validates as
     * the same state without its key */
    dr_train_options v = base_options(DR_MODE_SUPERRES, NULL);
    v.resume_path = a;
    v.val_dir = g_data;
    double vl1 = NAN, vx1 = NAN, vl2 = NAN, vx2 = NAN;
    CHECK(dr_train_validate(&v, &vl1, &vx1) == DR_OK, "validate: %s", dr_last_error());
    if (dr_tensor_file_read(a, &tf) != DR_OK) {
        CHECK(0, "read %s", a);
        train_state_free(&s1);
        return;
    }
    CHECK(dr_tensor_file_meta(&tf, "zoom_max") && atof(dr_tensor_file_meta(&tf, "zoom_max")) == 1,
          "checkpoint key zoom_max=1");
    for (int i = 0; i < tf.n_meta; i++)
        if (!strcmp(tf.meta_keys[i], "zoom_max")) tf.meta_keys[i][0] = 'X';
    CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
    v.resume_path = bad;
    CHECK(dr_train_validate(&v, &vl2, &vx2) == DR_OK, "validate without the key: %s", dr_last_error());
    CHECK(vl1 == vl2 && vx1 == vx2, "validation used zoom_max: %.9g %.9g vs %.9g %.9g", vl1, vx1, vl2, vx2);
    /* out of range in a checkpoint, and in the options */
    CHECK(dr_tensor_file_set_meta(&tf, "zoom_max", "5") == DR_OK, "set meta");
    CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
    CHECK(checkpoint_load(&s2, bad) == DR_ERR_FORMAT && strstr(dr_last_error(), "'zoom_max' out of range"),
          "zoom_max 5 in a checkpoint: %s", dr_last_error());
    dr_tensor_file_free(&tf);
    remove(bad);
    dr_train_options w = base_options(DR_MODE_SUPERRES, bad);
    w.zoom_max = 0.5;
    CHECK(dr_train(&w) == DR_ERR_INVALID && strstr(dr_last_error(), "zoom_max 0.5"), "zoom_max 0.5: %s",
          dr_last_error());
    CHECK(access(bad, F_OK) != 0, "a refused run writes no checkpoint");
    train_state_free(&s1);
}

/* --val-patch: a run validates on crops of that size (the logged val x0 MSE is
 * what --validate gives its checkpoint at that patch, not at the training
 * patch); it is not stored; bad sizes are refused. */
static void test_val_patch(void) {
    char a[1200], csv[1300];
    path_in(a, sizeof a, "valpatch.ckpt");
    snprintf(csv, sizeof csv, "%s.csv", a);
    dr_train_options o = base_options(DR_MODE_SUPERRES, a);
    o.steps = 4;
    o.val_dir = g_data;
    o.val_every = 4;
    o.val_batches = 1;
    o.val_patch = 32;
    CHECK(dr_train(&o) == DR_OK, "run with --val-patch 32: %s", dr_last_error());
    int step = 0;
    double logged = NAN, cpu, vp, l32 = NAN, x32 = NAN, l16 = NAN, x16 = NAN;
    CHECK(csv_last(csv, &step, &logged, &cpu, &vp) && step == 4 && isfinite(logged), "val row: step %d, x0 %g", step,
          logged);
    dr_train_options v = base_options(DR_MODE_SUPERRES, NULL);
    v.resume_path = a;
    v.val_dir = g_data;
    v.val_batches = 1;
    v.patch = 32;
    CHECK(dr_train_validate(&v, &l32, &x32) == DR_OK, "validate at 32: %s", dr_last_error());
    v.patch = 16;
    CHECK(dr_train_validate(&v, &l16, &x16) == DR_OK, "validate at 16: %s", dr_last_error());
    printf("--val-patch 32: logged %.6f, validated at 32 %.6f, at 16 %.6f\n", logged, x32, x16);
    CHECK(fabs(x32 - logged) <= 1e-6, "logged %.6f is not the x0 MSE at 32 (%.8f)", logged, x32);
    CHECK(fabs(x16 - logged) > 1e-5, "the x0 MSE at 16 (%.8f) is the logged one: the check cannot fail", x16);
    dr_tensor_file tf;
    if (dr_tensor_file_read(a, &tf) == DR_OK) {
        CHECK(dr_tensor_file_meta(&tf, "val_patch") == NULL, "val_patch stored in the checkpoint");
        dr_tensor_file_free(&tf);
    }
    /* large validation crops go through the network a few at a time: the same
     * numbers as all 16 at once to the last printed digit (the fp32 GEMMs of
     * another width may round a last bit differently; val_run_batch keeps 16 up
     * to 128 pixels, so those numbers are the bits they always were) */
    CHECK(val_run_batch(64) == 16 && val_run_batch(128) == 16 && val_run_batch(256) == 4 && val_run_batch(512) == 1,
          "val_run_batch: %d %d %d %d", val_run_batch(64), val_run_batch(128), val_run_batch(256), val_run_batch(512));
    train_state st;
    if (load_state(a, &st) == DR_OK) {
        dataset val = {0};
        noise_schedule sch = {0};
        train_batch b16 = {0}, b4 = {0};
        st.opt.val_batches = 1;
        if (noise_schedule_build(&sch, st.info.timesteps, st.info.schedule_linear) == DR_OK &&
            dataset_load(&val, g_data, 32, NULL, NULL) == DR_OK &&
            train_batch_build(&b16, &st, &val, VAL_BATCH, 32, VAL_BATCH) == DR_OK &&
            train_batch_build(&b4, &st, &val, VAL_BATCH, 32, 4) == DR_OK) {
            double m16 = NAN, m4 = NAN;
            const double l16v = val_loss(&st, st.ema, &b16, &val, &sch, 1, &m16, NULL, NULL);
            const double l4v = val_loss(&st, st.ema, &b4, &val, &sch, 1, &m4, NULL, NULL);
            printf("validation 16 at once %.9g %.9g, 4 at a time %.9g %.9g\n", l16v, m16, l4v, m4);
            CHECK(isfinite(l16v) && fabs(l4v - l16v) <= 1e-7 * l16v && fabs(m4 - m16) <= 1e-7 * m16,
                  "4 at a time: %.9g %.9g, 16: %.9g %.9g", l4v, m4, l16v, m16);
        } else
            CHECK(0, "validation batches: %s", dr_last_error());
        train_batch_free(&b16);
        train_batch_free(&b4);
        dataset_free(&val);
        noise_schedule_free(&sch);
        train_state_free(&st);
    }
    const int bad_p[2] = {4, 2048};
    for (int k = 0; k < 2; k++) {
        dr_train_options b = base_options(DR_MODE_SUPERRES, a);
        b.val_patch = bad_p[k];
        CHECK(dr_train(&b) == DR_ERR_INVALID && strstr(dr_last_error(), "validation patch"), "val patch %d: %s",
              bad_p[k], dr_last_error());
    }
}

/* ---- cond_dropout (classifier-free guidance): a fraction of the training
 * examples has its conditioning zeroed, everything else as without it; the
 * checkpoint and the exported weights carry it; validation never drops. */
static int cond_zero(const train_batch *bb, int b, int in, int out) {
    const float *c = bb->x_in + ((size_t)b * in + out) * bb->np;
    for (size_t i = 0; i < (size_t)(in - out) * bb->np; i++)
        if (c[i] != 0) return 0;
    return 1;
}

static void test_cond_dropout(void) {
    dataset ds = {0};
    if (dataset_load(&ds, g_data, 16, NULL, NULL) != DR_OK) {
        CHECK(0, "dataset: %s", dr_last_error());
        return;
    }
    noise_schedule sch;
    CHECK(noise_schedule_build(&sch, 1000, 0) == DR_OK, "schedule");
    const dr_mode modes[2] = {DR_MODE_COLORIZE, DR_MODE_INPAINT};
    for (int mi = 0; mi < 2; mi++) {
        const int B = 200;
        train_state s0, s1;
        train_batch b0, b1;
        dr_train_options o = base_options(modes[mi], NULL);
        if (train_state_new(&s0, &o) != DR_OK) {
            CHECK(0, "state: %s", dr_last_error());
            continue;
        }
        o.cond_dropout = 0.25f;
        if (train_state_new(&s1, &o) != DR_OK) {
            CHECK(0, "state: %s", dr_last_error());
            train_state_free(&s0);
            continue;
        }
        CHECK(s1.info.cond_dropout == 0.25f, "the state's model info has cond_dropout %g",
              (double)s1.info.cond_dropout);
        const int in = s0.info.cfg.in_channels, out = s0.info.cfg.out_channels;
        if (train_batch_build(&b0, &s0, &ds, B, 16, 1) != DR_OK ||
            train_batch_build(&b1, &s1, &ds, B, 16, 1) != DR_OK) {
            CHECK(0, "batch: %s", dr_last_error());
            train_state_free(&s0);
            train_state_free(&s1);
            continue;
        }
        for (int val = 0; val <= 1; val++) {
            CHECK(fill_batch(&b0, &ds, &sch, 9, 4, 2.0f, val, 0, B) == DR_OK, "fill: %s", dr_last_error());
            CHECK(fill_batch(&b1, &ds, &sch, 9, 4, 2.0f, val, 0, B) == DR_OK, "fill: %s", dr_last_error());
            int dropped = 0, same_rest = 1, same_kept = 1, zero0 = 0;
            for (int b = 0; b < B; b++) {
                const size_t base = (size_t)b * in * b0.np, nx = (size_t)out * b0.np, nc = (size_t)(in - out) * b0.np;
                zero0 += cond_zero(&b0, b, in, out);
                const int z = cond_zero(&b1, b, in, out);
                dropped += z;
                /* x_t, target and t are the same draws with and without it */
                same_rest &= !memcmp(b0.x_in + base, b1.x_in + base, nx * sizeof(float)) &&
                    !memcmp(b0.target + (size_t)b * nx, b1.target + (size_t)b * nx, nx * sizeof(float)) &&
                    b0.t[b] == b1.t[b];
                if (!z) same_kept &= !memcmp(b0.x_in + base + nx, b1.x_in + base + nx, nc * sizeof(float));
            }
            printf("cond_dropout 0.25, %s, %s: %d of %d examples without conditioning\n", dr_mode_name(modes[mi]),
                   val ? "validation" : "training", dropped, B);
            CHECK(zero0 == 0, "%s: %d examples without conditioning at cond_dropout 0", dr_mode_name(modes[mi]), zero0);
            CHECK(same_rest, "%s: cond_dropout changed x_t, the target or t", dr_mode_name(modes[mi]));
            CHECK(same_kept, "%s: cond_dropout changed a kept conditioning", dr_mode_name(modes[mi]));
            if (val)
                CHECK(dropped == 0, "%s: validation dropped %d conditionings", dr_mode_name(modes[mi]), dropped);
            else /* binomial(200, 0.25): mean 50, sd 6.1 */
                CHECK(dropped >= 26 && dropped <= 74, "%s: %d of %d dropped at 0.25", dr_mode_name(modes[mi]), dropped,
                      B);
        }
        train_batch_free(&b0);
        train_batch_free(&b1);
        train_state_free(&s0);
        train_state_free(&s1);
    }
    noise_schedule_free(&sch);
    dataset_free(&ds);

    /* a run: the checkpoint and its export carry it, a resume keeps it, and a
     * run without it writes no key (weights as before the option) */
    char a[1200], w[1200], b[1200];
    path_in(a, sizeof a, "cd.ckpt");
    path_in(w, sizeof w, "cd.safetensors");
    path_in(b, sizeof b, "cd_none.ckpt");
    dr_train_options o = base_options(DR_MODE_COLORIZE, a);
    o.steps = 2;
    o.cond_dropout = 0.1f;
    CHECK(dr_train(&o) == DR_OK, "cond_dropout run: %s", dr_last_error());
    dr_train_options r = base_options(DR_MODE_COLORIZE, a);
    r.resume_path = a;
    r.steps = 3;
    CHECK(dr_train(&r) == DR_OK, "resumed: %s", dr_last_error());
    train_state st;
    if (load_state(a, &st) == DR_OK) {
        CHECK(st.info.cond_dropout == 0.1f && st.step == 3, "resumed checkpoint: cond_dropout %g step %d",
              (double)st.info.cond_dropout, st.step);
        train_state_free(&st);
    }
    CHECK(dr_train_export(a, w, 1) == DR_OK, "export: %s", dr_last_error());
    dr_model *m = NULL;
    if (dr_model_load(w, &m) == DR_OK) {
        const char *v = dr_model_meta(m, "cond_dropout");
        CHECK(v && fabs(atof(v) - 0.1) < 1e-7, "exported cond_dropout '%s'", v ? v : "(none)");
        dr_model_free(m);
    } else
        CHECK(0, "load %s: %s", w, dr_last_error());
    dr_train_options p = base_options(DR_MODE_COLORIZE, b);
    p.steps = 1;
    CHECK(dr_train(&p) == DR_OK, "plain run: %s", dr_last_error());
    dr_tensor_file tf;
    if (dr_tensor_file_read(b, &tf) == DR_OK) {
        CHECK(dr_tensor_file_meta(&tf, "cond_dropout") == NULL, "a run without it writes a cond_dropout key");
        /* a bad value in a file is refused with the key's name */
        CHECK(dr_tensor_file_set_meta(&tf, "cond_dropout", "1") == DR_OK, "set meta");
        CHECK(dr_tensor_file_write(b, &tf, 0) == DR_OK, "write");
        CHECK(checkpoint_load(&st, b) == DR_ERR_FORMAT && strstr(dr_last_error(), "cond_dropout"),
              "cond_dropout 1 in a checkpoint: %s", dr_last_error());
        dr_tensor_file_free(&tf);
    }
    p.cond_dropout = 1.0f;
    CHECK(dr_train(&p) == DR_ERR_INVALID && strstr(dr_last_error(), "cond_dropout"), "cond_dropout 1: %s",
          dr_last_error());
}

/* The EMA warm-up after --init counts the weights' steps: with 150 steps
 * behind them, the first update uses d = min(0.999, 151 / 160), not the
 * fresh start's 1 / 10, so the EMA keeps the weights' averaging. The start is
 * stored (ema_warmup_start), kept exactly on resume, absent (0: the old rule)
 * in older checkpoints and refused out of range. */
static void test_ema_warmup_from_init(void) {
    char w[1300], c[1200], c2[1200], bad[1200];
    snprintf(w, sizeof w, "%s/exported.safetensors", g_dir);
    path_in(c, sizeof c, "ema_init.ckpt");
    path_in(c2, sizeof c2, "ema_init2.ckpt");
    path_in(bad, sizeof bad, "ema_init_bad.ckpt");
    dr_model *m = NULL;
    if (dr_model_load(w, &m) != DR_OK) {
        CHECK(0, "load %s: %s", w, dr_last_error());
        return;
    }
    dr_train_options o = base_options(DR_MODE_COLORIZE, c);
    o.init_path = w;
    o.steps = 1;
    CHECK(dr_train(&o) == DR_OK, "init, 1 step: %s", dr_last_error());
    train_state st, s2;
    if (load_state(c, &st) != DR_OK) {
        dr_model_free(m);
        return;
    }
    CHECK(st.init_steps == 150 && st.ema_warmup_start == 150, "init_steps %d, ema_warmup_start %d", st.init_steps,
          st.ema_warmup_start);
    const double d = 151.0 / 160.0; /* ema_decay_at(0.999, 150 + 0) */
    double worst = 0, moved = 0;
    for (size_t i = 0; i < st.L.n_floats && st.L.n_floats == m->L.n_floats; i++) {
        const double want = d * m->params[i] + (1 - d) * st.params[i];
        worst = fmax(worst, fabs(st.ema[i] - want) / (fabs(want) + 1e-6));
        moved = fmax(moved, fabs((double)st.params[i] - m->params[i]));
    }
    CHECK(st.L.n_floats == m->L.n_floats && moved > 0, "the step moved no weight (%g)", moved);
    CHECK(worst < 1e-5, "EMA after one step off d = 151/160 by %g (relative)", worst);
    train_state_free(&st);
    /* straight to 4 steps, against 2 then resumed to 4: the same state */
    o.steps = 4;
    CHECK(dr_train(&o) == DR_OK, "init, 4 steps: %s", dr_last_error());
    dr_train_options p = o;
    p.out_path = c2;
    p.steps = 2;
    CHECK(dr_train(&p) == DR_OK, "init, 2 steps: %s", dr_last_error());
    dr_train_options q = base_options(DR_MODE_COLORIZE, c2);
    q.resume_path = c2;
    q.steps = 4;
    CHECK(dr_train(&q) == DR_OK, "resumed to 4: %s", dr_last_error());
    if (load_state(c, &st) == DR_OK) {
        if (load_state(c2, &s2) == DR_OK) {
            CHECK(same_state(&st, &s2) && s2.ema_warmup_start == 150, "the resumed run differs (warm-up start %d)",
                  s2.ema_warmup_start);
            train_state_free(&s2);
        }
        train_state_free(&st);
    }
    /* an older checkpoint (no key): the fresh start's rule, so its run goes on
     * as it started; the resumed EMA then differs from the new rule's */
    dr_tensor_file tf;
    p.steps = 2;
    CHECK(dr_train(&p) == DR_OK, "init, 2 steps again: %s", dr_last_error());
    if (dr_tensor_file_read(c2, &tf) == DR_OK) {
        CHECK(dr_tensor_file_meta(&tf, "ema_warmup_start") != NULL, "an --init checkpoint without ema_warmup_start");
        for (int i = 0; i < tf.n_meta; i++)
            if (!strcmp(tf.meta_keys[i], "ema_warmup_start")) tf.meta_keys[i][0] = 'X';
        CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
        if (load_state(bad, &s2) == DR_OK) {
            CHECK(s2.ema_warmup_start == 0, "no key: ema_warmup_start %d, want 0", s2.ema_warmup_start);
            train_state_free(&s2);
        }
        q.resume_path = bad;
        q.out_path = bad;
        CHECK(dr_train(&q) == DR_OK, "old checkpoint resumed to 4: %s", dr_last_error());
        if (load_state(c, &st) == DR_OK) {
            if (load_state(bad, &s2) == DR_OK) {
                CHECK(memcmp(st.params, s2.params, st.L.n_floats * sizeof(float)) == 0, "the weights differ");
                CHECK(memcmp(st.ema, s2.ema, st.L.n_floats * sizeof(float)) != 0, "the old rule gave the same EMA");
                train_state_free(&s2);
            }
            train_state_free(&st);
        }
        CHECK(dr_tensor_file_set_meta(&tf, "ema_warmup_start", "-1") == DR_OK, "set meta");
        CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
        CHECK(checkpoint_load(&s2, bad) == DR_ERR_FORMAT && strstr(dr_last_error(), "ema_warmup_start"),
              "ema_warmup_start -1: %s", dr_last_error());
        dr_tensor_file_free(&tf);
    }
    /* a fresh run writes no key */
    dr_train_options f = base_options(DR_MODE_COLORIZE, c2);
    f.steps = 1;
    CHECK(dr_train(&f) == DR_OK, "fresh run: %s", dr_last_error());
    if (dr_tensor_file_read(c2, &tf) == DR_OK) {
        CHECK(dr_tensor_file_meta(&tf, "ema_warmup_start") == NULL, "a fresh run writes ema_warmup_start");
        dr_tensor_file_free(&tf);
    }
    remove(bad);
    dr_model_free(m);
}

/* --anneal: the rate of each step (the log's lr column: warmup, constant,
 * then K equal stages at lr / 2 ... lr / 2^K over the last N steps before
 * `steps`), stored in the checkpoint (no key without it), exact across a
 * resume that keeps it and one that sets it, and bad values refused from the
 * options and from a checkpoint. */
static volatile int g_anneal_cancel;
static void anneal_stop_at_6(const dr_train_progress *p, void *user) {
    (void)user;
    if (p->step == 6) g_anneal_cancel = 1;
}
static int csv_lrs(const char *csv, double *lr, int n) {
    FILE *f = fopen(csv, "r");
    if (!f) return 0;
    char line[512];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        char *fld[16];
        if (csv_fields(line, fld, 16) < 4) continue;
        const int step = atoi(fld[0]);
        if (step >= 1 && step <= n) lr[step - 1] = atof(fld[3]), rows++;
    }
    fclose(f);
    return rows;
}
static void test_anneal(void) {
    char a[1200], b[1200], csv[1300], bad[1200];
    path_in(a, sizeof a, "anneal.ckpt");
    path_in(b, sizeof b, "anneal_b.ckpt");
    path_in(bad, sizeof bad, "anneal_bad.ckpt");
    snprintf(csv, sizeof csv, "%s.csv", a);
    dr_train_options o = base_options(DR_MODE_SUPERRES, a);
    o.steps = 8;
    o.warmup_steps = 1;
    o.anneal_steps = 4; /* steps 5..8 (1-based): two stages of 2 */
    o.anneal_stages = 2;
    CHECK(dr_train(&o) == DR_OK, "anneal run: %s", dr_last_error());
    double lr[8] = {0};
    CHECK(csv_lrs(csv, lr, 8) == 8, "8 rows of lr in %s", csv);
    const double want[8] = {1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25};
    for (int i = 0; i < 8; i++)
        CHECK(fabs(lr[i] - want[i] * o.lr) <= 1e-6 * o.lr, "step %d: lr %g, want %g", i + 1, lr[i], want[i] * o.lr);
    /* three stages over 7 steps of 10: stage k holds steps a0 + floor((k-1) 7 / 3).. */
    remove(csv);
    dr_train_options o3 = o;
    o3.steps = 10;
    o3.anneal_steps = 7;
    o3.anneal_stages = 3;
    CHECK(dr_train(&o3) == DR_OK, "3-stage run: %s", dr_last_error());
    double lr3[10] = {0};
    CHECK(csv_lrs(csv, lr3, 10) == 10, "10 rows of lr in %s", csv);
    const double want3[10] = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125};
    for (int i = 0; i < 10; i++)
        CHECK(fabs(lr3[i] - want3[i] * o.lr) <= 1e-6 * o.lr, "3 stages, step %d: lr %g, want %g", i + 1, lr3[i],
              want3[i] * o.lr);
    CHECK(dr_train(&o) == DR_OK, "anneal run again: %s", dr_last_error());
    train_state s1, s2;
    if (load_state(a, &s1) != DR_OK) return;
    CHECK(s1.opt.anneal_steps == 4 && s1.opt.anneal_stages == 2, "checkpoint anneal %d:%d, want 4:2",
          s1.opt.anneal_steps, s1.opt.anneal_stages);
    /* the same run without the anneal: differs, and writes no key */
    dr_train_options p = o;
    p.out_path = b;
    p.anneal_steps = 0;
    CHECK(dr_train(&p) == DR_OK, "plain run: %s", dr_last_error());
    dr_tensor_file tf;
    if (dr_tensor_file_read(b, &tf) == DR_OK) {
        CHECK(dr_tensor_file_meta(&tf, "anneal_steps") == NULL && dr_tensor_file_meta(&tf, "anneal_stages") == NULL,
              "a run without --anneal writes anneal keys");
        dr_tensor_file_free(&tf);
    }
    if (load_state(b, &s2) == DR_OK) {
        CHECK(!same_state(&s1, &s2), "the anneal trains the same as a constant rate");
        CHECK(s2.opt.anneal_steps == 0, "plain checkpoint anneal_steps %d", s2.opt.anneal_steps);
        train_state_free(&s2);
    }
    /* stopped at step 6 (inside the window) and resumed with nothing given:
     * the checkpoint's anneal, exactly */
    remove(b);
    p = o;
    p.out_path = b;
    g_anneal_cancel = 0;
    p.cancel = &g_anneal_cancel;
    p.progress = anneal_stop_at_6;
    CHECK(dr_train(&p) == DR_ERR_CANCELLED, "stopped at step 6: %s", dr_last_error());
    dr_train_options q = base_options(DR_MODE_SUPERRES, b);
    q.resume_path = b;
    q.steps = 0; /* the checkpoint's */
    CHECK(dr_train(&q) == DR_OK, "resumed: %s", dr_last_error());
    if (load_state(b, &s2) == DR_OK) {
        CHECK(s2.step == 8 && same_state(&s1, &s2), "anneal: the resumed run differs (step %d)", s2.step);
        train_state_free(&s2);
    }
    /* a constant-rate run to step 4 resumed with the anneal set: the same run */
    remove(b);
    p = o;
    p.out_path = b;
    p.steps = 4;
    p.anneal_steps = 0;
    CHECK(dr_train(&p) == DR_OK, "constant first half: %s", dr_last_error());
    q.steps = 8;
    q.resume_anneal = 1;
    q.anneal_steps = 4;
    q.anneal_stages = 2;
    CHECK(dr_train(&q) == DR_OK, "resumed with the anneal: %s", dr_last_error());
    if (load_state(b, &s2) == DR_OK) {
        CHECK(same_state(&s1, &s2), "an anneal set on resume differs from the straight run");
        CHECK(s2.opt.anneal_steps == 4 && s2.opt.anneal_stages == 2, "stored anneal %d:%d", s2.opt.anneal_steps,
              s2.opt.anneal_stages);
        train_state_free(&s2);
    }
    train_state_free(&s1);
    /* bad values: in the options, and in a checkpoint */
    dr_train_options w = base_options(DR_MODE_SUPERRES, bad);
    const int bad_opts[][2] = {{4, 0}, {4, 9}, {1, 2}, {-1, 2}};
    for (int i = 0; i < 4; i++) {
        w.anneal_steps = bad_opts[i][0];
        w.anneal_stages = bad_opts[i][1];
        CHECK(dr_train(&w) == DR_ERR_INVALID && strstr(dr_last_error(), "anneal"), "anneal %d:%d: %s", bad_opts[i][0],
              bad_opts[i][1], dr_last_error());
    }
    const char *bad_keys[][2] = {{"anneal_stages", "9"}, {"anneal_steps", "-4"}, {"anneal_steps", "1"}};
    for (int i = 0; i < 3; i++) {
        if (dr_tensor_file_read(a, &tf) != DR_OK) {
            CHECK(0, "read %s", a);
            return;
        }
        CHECK(dr_tensor_file_set_meta(&tf, bad_keys[i][0], bad_keys[i][1]) == DR_OK, "set meta");
        CHECK(dr_tensor_file_write(bad, &tf, 0) == DR_OK, "write %s", bad);
        dr_tensor_file_free(&tf);
        train_state st;
        CHECK(checkpoint_load(&st, bad) == DR_ERR_FORMAT && strstr(dr_last_error(), "anneal"), "checkpoint %s=%s: %s",
              bad_keys[i][0], bad_keys[i][1], dr_last_error());
    }
    remove(bad);
}

int main(void) {
    dr_set_threads(2);
    make_dataset();
    test_loss_falls();
    test_resume_exact();
    test_resume_lr();
    test_bad_checkpoints();
    test_divergence_and_cancel();
    test_export();
    test_init_from_weights();
    test_ema_warmup_from_init();
    test_remove_stale();
    test_min_snr_weight();
    test_budget_and_recipe_options();
    test_scale_dist();
    test_masks_option();
    test_render_crops();
    test_render_train();
    test_ema_probes();
    test_dropout();
    test_crop_turn();
    test_augment();
    test_zoom_max();
    test_anneal();
    test_val_patch();
    test_cond_dropout();
    test_val_bands();
    return test_summary("test_train");
}
