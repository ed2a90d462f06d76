/*
 * train.c - `diffrestore train`: L_simple on random crops, AdamW with warmup
 * and clipping, an EMA of the weights, atomic checkpoints and exact resume.
 *
 * Reproducibility: every random draw of step s, sample b comes from its own
 * stream rng_derive(seed, s, b) (crop, flip, degradation, t, noise), so a
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
#include "modes/mode.h"
#include "nn/nn.h"
#include "train/checkpoint.h"
#include "train/grad_tree.h"
#include "train/batch.h"
#include "train/dataset.h"
#include "train/optim.h"
#include "train/weighting.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

/* A log whose last row a killed run left unfinished (no newline: stdio had
 * written part of its buffer) would have the resumed run's first row glued
 * to it. Cut the file back to its last newline; csv is open for appending,
 * at its end. 0, or -1 on an I/O error. */
static int csv_drop_torn_row(FILE *csv) {
    long end = ftell(csv), cut = end;
    if (end <= 0) return end < 0 ? -1 : 0;
    for (int c = 0; cut > 0; cut--) {
        if (fseek(csv, cut - 1, SEEK_SET) != 0 || (c = fgetc(csv)) == EOF) return -1;
        if (c == '\n') break;
    }
    if (cut == 0) { /* not one whole line (a torn header): end it, keep it */
        if (fseek(csv, 0, SEEK_END) != 0 || fputc('\n', csv) == EOF) return -1;
    } else if (cut < end && (fflush(csv) != 0 || ftruncate(fileno(csv), (off_t)cut) != 0))
        return -1;
    return fseek(csv, 0, SEEK_END);
}

/* The seed of step s's dropout masks: its own stream of the run's seed. */
static uint64_t dropout_step_seed(uint64_t seed, int step) {
    rng_state r;
    rng_derive(&r, seed ^ 0x64726f706f7574ULL /* "dropout" */, (uint64_t)step, 0);
    return rng_u64(&r);
}

static double grad_norm(const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
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
                            train_batch *vb, const dataset *val, const noise_schedule *sch, uint64_t vseed) {
    if (!probes || !pcsv) return;
    for (int k = 0; k < o->n_ema_probe; k++) {
        double vx0 = NAN, vl = val_loss(st, probes + (size_t)k * st->L.n_floats, vb, val, sch, vseed, &vx0, NULL, NULL);
        fprintf(pcsv, "%d,%.2f,%.6g,%.6f,%.6f,%.6f\n", st->step, st->cpu_seconds, (double)o->ema_probe[k],
                ema_decay_at(o->ema_probe[k], st->ema_warmup_start + st->step - 1), vl, vx0);
    }
    fflush(pcsv);
}

/* The training log's x0 MSE by noise level: DR_VAL_T_BANDS more columns at the
 * end of each row (empty on rows without validation). A log begun before they
 * existed keeps its header and its columns (bands = 0). */
static void csv_bands_write(FILE *csv, int bands, const double *band) {
    if (!bands) return;
    for (int k = 0; k < DR_VAL_T_BANDS; k++) {
        fputc(',', csv);
        if (band && isfinite(band[k])) fprintf(csv, "%.6g", band[k]);
    }
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
    if (exists && S_ISDIR(st.st_mode))
        return error_set(DR_ERR_INVALID, "the %s %s is a directory: give a file name", what, path);
    const char *slash = strrchr(path, '/');
    if (slash && slash != path) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        struct stat ds;
        if (stat(dir, &ds) != 0 || !S_ISDIR(ds.st_mode))
            return error_set(DR_ERR_INVALID, "cannot write the %s %s: the directory %s does not exist", what, path,
                             dir);
    }
    const char *in[2] = {o->data_dir, o->val_dir}, *in_name[2] = {"training data", "validation data"};
    for (int i = 0; i < 2; i++)
        if (in[i] && dr_path_within(path, in[i]))
            return error_set(DR_ERR_INVALID,
                             "refusing to write the %s %s: it lies inside the %s folder %s (an output never goes into "
                             "an input folder)",
                             what, path, in_name[i], in[i]);
    if (!exists) return DR_OK;
    if (same_file(o->init_path, &st))
        return error_set(DR_ERR_INVALID, "refusing to write the %s %s: it is the --init weights", what, path);
    if (same_file(o->resume_path, &st) && path != o->out_path)
        return error_set(DR_ERR_INVALID, "refusing to write the %s %s: it is the checkpoint being resumed", what, path);
    for (int i = 0; i < 2; i++)
        if (in[i] && dataset_dir_has_file(in[i], st.st_dev, st.st_ino))
            return error_set(DR_ERR_INVALID,
                             "refusing to write the %s %s: it is a file of the %s (another name for it)", what, path,
                             in_name[i]);
    return DR_OK;
}
static int check_outputs(const dr_train_options *o, int training) {
    DR_TRY(check_output(o, o->out_path, "checkpoint"));
    if (training) {
        char csv[4200];
        if (!o->log_path) snprintf(csv, sizeof csv, "%s.csv", o->out_path);
        DR_TRY(check_output(o, o->log_path ? o->log_path : csv, "training log"));
        if (o->n_ema_probe > 0) {
            if (!o->val_dir) return error_set(DR_ERR_INVALID, "train: EMA probes are validated: they need --val DIR");
            char pp[4300];
            probe_csv_path(pp, sizeof pp, o->log_path ? o->log_path : csv);
            DR_TRY(check_output(o, pp, "EMA probes' log"));
        }
    }
    if (o->export_path) DR_TRY(check_output(o, o->export_path, "exported weights"));
    return DR_OK;
}

int dr_train(const dr_train_options *o) {
    if (!o->out_path) return error_set(DR_ERR_INVALID, "train: an output checkpoint path is required");
    if (!o->data_dir && !(o->resume_path && o->steps <= 0))
        return error_set(DR_ERR_INVALID, "train: --data is required");
    if (o->batch < 1 || o->batch > 1024 || o->patch < 8 || o->patch > 1024)
        return error_set(DR_ERR_INVALID, "train: batch %d or patch %d out of range", o->batch, o->patch);
    if (o->val_patch != 0 && (o->val_patch < 8 || o->val_patch > 1024))
        return error_set(DR_ERR_INVALID, "train: validation patch %d: 0 (the training patch) or 8..1024", o->val_patch);
    if (o->val_batches < 1 || o->val_batches > 4096)
        return error_set(DR_ERR_INVALID, "train: %d validation batches; 1..4096", o->val_batches);
    if (o->resume_lr != 0 && (!o->resume_path || !(o->resume_lr > 0 && o->resume_lr <= 1)))
        return error_set(DR_ERR_INVALID,
                         "train: resume learning rate %g: 0 (keep), or 0..1 with a checkpoint to resume",
                         (double)o->resume_lr);
    if (!(o->dropout >= 0 && o->dropout < 1))
        return error_set(DR_ERR_INVALID, "train: dropout %g: 0 <= dropout < 1", (double)o->dropout);
    if (o->augment != DR_AUGMENT_FLIP && o->augment != DR_AUGMENT_DIHEDRAL)
        return error_set(DR_ERR_INVALID, "train: augment %d: flip (%d) or dihedral (%d)", (int)o->augment,
                         (int)DR_AUGMENT_FLIP, (int)DR_AUGMENT_DIHEDRAL);
    if (!(o->cond_dropout >= 0 && o->cond_dropout < 1))
        return error_set(DR_ERR_INVALID, "train: cond_dropout %g: 0 <= cond_dropout < 1", (double)o->cond_dropout);
    if (!(o->zoom_max >= 1 && o->zoom_max <= 4))
        return error_set(DR_ERR_INVALID, "train: zoom_max %g: 1..4", o->zoom_max);
    if (!(o->anneal_stages >= 1 && o->anneal_stages <= 8) ||
        !(o->anneal_steps == 0 || o->anneal_steps >= o->anneal_stages))
        return error_set(DR_ERR_INVALID, "train: anneal %d steps in %d stages: 1..8 stages of at least one step",
                         o->anneal_steps, o->anneal_stages);
    if (o->render_size != 0 && (o->render_size < DR_RENDER_SIZE_MIN || o->render_size > DR_RENDER_SIZE_MAX))
        return error_set(DR_ERR_INVALID, "train: render size %d: 0 (full resolution) or %d..%d", o->render_size,
                         DR_RENDER_SIZE_MIN, DR_RENDER_SIZE_MAX);
    const int root = !o->comm || o->comm->size <= 1 || o->comm->rank == 0;
    if (o->comm && o->comm->size > 1 &&
        (o->comm->rank < 0 || o->comm->rank >= o->comm->size || !o->comm->allgatherv || !o->comm->alltoallv))
        return error_set(DR_ERR_INVALID, "train: rank %d of %d, or a collective missing", o->comm->rank, o->comm->size);
    if (root) DR_TRY(check_outputs(o, o->data_dir != NULL)); /* rank 0 alone writes them */
    train_state st;
    int rc;
    if (o->resume_path && o->init_path)
        return error_set(DR_ERR_INVALID, "train: --resume and --init exclude each other");
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
        st.opt.val_batches = o->val_batches; /* measurement only: the training stream is the same */
        st.opt.val_patch = o->val_patch;     /* the same */
        if (o->micro_batch > 0) st.opt.micro_batch = o->micro_batch; /* changes the sums' rounding only */
        logf_(o, "resumed %s at step %d of %d", o->resume_path, st.step, st.opt.steps);
        if (o->resume_lr > 0 && o->resume_lr != st.opt.lr) {
            logf_(o, "learning rate %g -> %g from step %d", (double)st.opt.lr, (double)o->resume_lr, st.step);
            st.opt.lr = o->resume_lr;
        }
        if (o->resume_dropout && o->dropout != st.opt.dropout) {
            logf_(o, "dropout %g -> %g from step %d", (double)st.opt.dropout, (double)o->dropout, st.step);
            st.opt.dropout = o->dropout;
        }
        if (o->resume_augment && o->augment != st.opt.augment) {
            logf_(o, "augment %s -> %s from step %d", st.opt.augment == DR_AUGMENT_DIHEDRAL ? "dihedral" : "flip",
                  o->augment == DR_AUGMENT_DIHEDRAL ? "dihedral" : "flip", st.step);
            st.opt.augment = o->augment;
        }
        if (o->resume_zoom_max && o->zoom_max != st.opt.zoom_max) {
            logf_(o, "zoom_max %g -> %g from step %d", st.opt.zoom_max, o->zoom_max, st.step);
            st.opt.zoom_max = o->zoom_max;
        }
        if (o->resume_anneal && (o->anneal_steps != st.opt.anneal_steps || o->anneal_stages != st.opt.anneal_stages)) {
            logf_(o, "anneal %d:%d -> %d:%d from step %d", st.opt.anneal_steps, st.opt.anneal_stages, o->anneal_steps,
                  o->anneal_stages, st.step);
            st.opt.anneal_steps = o->anneal_steps;
            st.opt.anneal_stages = o->anneal_stages;
        }
    } else {
        if (o->target_scale > 0 && !(o->target_scale >= DR_TARGET_SCALE_MIN && o->target_scale <= DR_TARGET_SCALE_MAX))
            return error_set(DR_ERR_INVALID, "train: --target-scale %g is outside %g..%g", o->target_scale,
                             DR_TARGET_SCALE_MIN, DR_TARGET_SCALE_MAX);
        if (o->init_path && o->target_scale > 0)
            return error_set(DR_ERR_INVALID, "train: --target-scale cannot change the --init weights' target_scale");
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
        return error_set(DR_ERR_INVALID, "train: --micro-batch %d must divide --batch %d", mb, b);
    }
    const dr_train_options *opt = &st.opt;
    const mode_ops *ops = mode_ops_get(st.info.mode);
    const char *only = !ops                                                      ? ""
        : opt->render_size > 0 && !(ops->info.flags & DR_MODE_TAKES_RENDER_SIZE) ? "--render-size is only for colorize"
        : opt->masks != DR_MASKS_LEGACY && !(ops->info.flags & DR_MODE_TAKES_MASK)
        ? "--masks damage is only for inpaint"
        : opt->scale_dist != DR_SCALE_DIST_UNIFORM && !(ops->info.flags & DR_MODE_TAKES_SCALE)
        ? "--scale-dist high is only for superres"
        : NULL;
    if (!ops || only) {
        const dr_mode md = st.info.mode;
        train_state_free(&st);
        if (!ops) return error_set(DR_ERR_INVALID, "train: unknown mode %d", (int)md);
        return error_set(DR_ERR_INVALID, "train: %s, not %s", only, dr_mode_name(md));
    }
    if (o->n_ema_probe < 0 || o->n_ema_probe > DR_EMA_PROBES_MAX) {
        train_state_free(&st);
        return error_set(DR_ERR_INVALID, "train: %d EMA probes; at most %d", o->n_ema_probe, DR_EMA_PROBES_MAX);
    }
    for (int k = 0; k < o->n_ema_probe; k++)
        if (!(o->ema_probe[k] >= 0 && o->ema_probe[k] < 1)) {
            train_state_free(&st);
            return error_set(DR_ERR_INVALID, "train: EMA probe decay %g is not in 0..1", (double)o->ema_probe[k]);
        }
    {
        /* a run killed while writing its checkpoint (SIGKILL, power loss)
         * leaves the temp file; the checkpoint itself is the previous one */
        const int stale = root ? file_atomic_remove_stale(o->out_path) : 0;
        if (stale > 0)
            logf_(o, "removed %d stale temporary file%s of %s (a write was interrupted)", stale, stale > 1 ? "s" : "",
                  o->out_path);
    }
    dataset ds = {0}, val = {0};
    train_batch bb = {0}, vb = {0};
    grad_tree gt = {0};
    double *xd = NULL; /* the step's exchanged numbers: mine, heads, per sample */
    void (*note)(const char *, void *) = root ? o->log : NULL;
    noise_schedule sch = {0};
    FILE *csv = NULL, *pcsv = NULL;
    int csv_bands = 0; /* the log has the x0-by-noise-level columns */
    char csv_path[4200];
    float *probes = NULL; /* o->n_ema_probe EMAs of L.n_floats, one allocation (rank 0) */
    rc = noise_schedule_build(&sch, st.info.timesteps, st.info.schedule_linear);
    if (rc != DR_OK) goto done;
    if (st.step < opt->steps) {
        rc = dataset_load(&ds, o->data_dir, opt->patch, note, o->user);
        if (rc != DR_OK) goto done;
        if (st.step > 0 && st.data_hash != ds.hash) {
            rc = error_set(DR_ERR_INVALID,
                           "%s: the checkpoint was trained on different data than %s (file list differs)",
                           o->resume_path, o->data_dir);
            goto done;
        }
        st.data_hash = ds.hash;
        logf_(o, "%d training images from %s", ds.n, o->data_dir);
        if (o->val_dir && opt->val_every > 0 && root) { /* rank 0 alone validates */
            const int vp = opt->val_patch > 0 ? opt->val_patch : opt->patch;
            rc = dataset_load(&val, o->val_dir, vp, note, o->user);
            if (rc != DR_OK) goto done;
            logf_(o, "%d validation images from %s (%d crops of %d pixels)", val.n, o->val_dir,
                  opt->val_batches * VAL_BATCH, vp);
            rc = train_batch_build(&vb, &st, &val, VAL_BATCH, vp, val_run_batch(vp));
            if (rc != DR_OK) goto done;
        }
        if (st.info.target_scale <= 0) {
            st.info.target_scale = measure_target_scale(&st, &ds);
            const double ts = st.info.target_scale;
            if (!(ts >= DR_TARGET_SCALE_MIN && ts <= DR_TARGET_SCALE_MAX)) {
                /* e.g. colorize on gray photos: nothing to learn, and weights
                 * that no command would load; stop before the first step */
                rc = error_set(
                    DR_ERR_INVALID, "%s: the data gives target_scale %.4g, outside the %g..%g weights may hold: %s",
                    o->data_dir, ts, DR_TARGET_SCALE_MIN, DR_TARGET_SCALE_MAX, mode_ops_get(st.info.mode)->flat_data);
                goto done;
            }
            logf_(o, "target_scale %.4g (measured: x0 std ~0.5)", st.info.target_scale);
        }
        rc = grad_tree_build(&gt, o->comm, opt->batch, opt->micro_batch, st.grads, st.L.n_floats);
        if (rc != DR_OK) goto done;
        rc = train_batch_build(&bb, &st, &ds, opt->batch, opt->patch, opt->micro_batch);
        if (rc != DR_OK) goto done;
        if (!(xd = malloc(sizeof(double) * (6 * (size_t)opt->batch + 4 * (size_t)gt.N + 4)))) {
            rc = error_set(DR_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (gt.N > 1)
            logf_(o, "data-parallel: %d ranks, samples %d..%d of each batch of %d on rank 0", gt.N, gt.lo, gt.hi - 1,
                  opt->batch);
        if (!root) goto no_log;
        snprintf(csv_path, sizeof csv_path, "%s", o->log_path ? o->log_path : "");
        if (!o->log_path) snprintf(csv_path, sizeof csv_path, "%s.csv", o->out_path);
        csv = fopen(csv_path, "a+"); /* writes append; reads start at the header */
        if (!csv) {
            rc = error_set(DR_ERR_IO, "%s: cannot open the training log", csv_path);
            goto done;
        }
        char head[512];
        if (!fgets(head, sizeof head, csv)) {
            fprintf(csv,
                    "step,loss,loss_smooth,lr,grad_norm,t_mean,seconds,val_loss,val_x0_mse,cpu_seconds,val_x0_mse_"
                    "params");
            for (int k = 0; k < DR_VAL_T_BANDS; k++) fprintf(csv, ",val_x0_band%d", k);
            fputc('\n', csv);
            csv_bands = 1;
        } else
            csv_bands = strstr(head, ",val_x0_band0") != NULL;
        fseek(csv, 0, SEEK_END); /* C: a write after a read needs a seek between them */
        if (csv_drop_torn_row(csv) != 0) {
            rc = error_set(DR_ERR_IO, "%s: cannot cut the training log's unfinished last row", csv_path);
            goto done;
        }
        if (o->n_ema_probe > 0 && vb.B) {
            /* every probe starts from the EMA the run starts with, so all the
             * decays share one history up to here and differ only after it */
            const size_t n = st.L.n_floats;
            if (!(probes = malloc(sizeof(float) * n * (size_t)o->n_ema_probe))) {
                rc = error_set(DR_ERR_NOMEM, "out of memory (EMA probes)");
                goto done;
            }
            for (int k = 0; k < o->n_ema_probe; k++) memcpy(probes + (size_t)k * n, st.ema, sizeof(float) * n);
            char pp[4300];
            probe_csv_path(pp, sizeof pp, csv_path);
            if (!(pcsv = fopen(pp, "a"))) {
                rc = error_set(DR_ERR_IO, "%s: cannot open the EMA probes' log", pp);
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
                double vx0 = NAN, vx0p = NAN, band[DR_VAL_T_BANDS];
                double vl = val_loss(&st, st.ema, &vb, &val, &sch, vseed, &vx0, band, NULL);
                val_loss(&st, st.params, &vb, &val, &sch, vseed, &vx0p, NULL, NULL);
                probes_validate(&st, o, probes, pcsv, &vb, &val, &sch, vseed);
                fprintf(csv, "%d,,,,,,%.2f,%.6f,%.6f,%.2f,%.6f", st.step, now_sec() - t_start, vl, vx0, st.cpu_seconds,
                        vx0p);
                csv_bands_write(csv, csv_bands, band);
                fputc('\n', csv);
                dr_train_progress pr = {.step = st.step,
                                        .steps = opt->steps,
                                        .loss_smooth = st.loss_smooth,
                                        .val_loss = vl,
                                        .val_x0_mse = vx0,
                                        .cpu_seconds = st.cpu_seconds,
                                        .is_val = 1};
                memcpy(pr.val_x0_band, band, sizeof band);
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
        for (int b = gt.lo; b < gt.hi; b++) mine[1 + b - gt.lo] = train_sample_count(&bb, b);
        if ((rc = exchange_doubles(&gt, mine, 1, 1, heads, per)) != DR_OK) goto done;
        int cancel = 0;
        for (int r = 0; r < gt.N; r++) cancel |= heads[r] != 0;
        if (cancel) {
            rc = root ? checkpoint_save(&st, o->out_path) : DR_OK;
            if (rc == DR_OK)
                rc = error_set(DR_ERR_CANCELLED, "interrupted at step %d; checkpoint %s written", st.step, o->out_path);
            goto done;
        }
        double count = 0;
        for (int b = 0; b < B; b++) count += per[b];
        count *= st.info.cfg.out_channels;
        if (count <= 0) count = 1;
        /* ResBlock dropout: the step's mask seed (leaf_grad gives each
         * micro-batch its first sample's index in the batch) */
        bb.run.dropout = opt->dropout;
        bb.run.dropout_seed = dropout_step_seed(opt->seed, st.step);
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
            rc = error_set(DR_ERR_NUMERIC, "loss is %g at step %d: stopped; the last checkpoint (step %d) is kept",
                           loss, st.step, last_ckpt_step);
            goto done;
        }
        double gn = grad_norm(st.grads, st.L.n_floats);
        if (!isfinite(gn)) {
            rc = error_set(DR_ERR_NUMERIC,
                           "gradient norm is %g at step %d: stopped; the last checkpoint (step %d) is kept", gn,
                           st.step, last_ckpt_step);
            goto done;
        }
        double lr = train_lr_at(opt, st.step);
        double clip = opt->grad_clip > 0 && gn > opt->grad_clip ? opt->grad_clip / gn : 1.0;
        adamw_update(&st, lr, clip);
        ema_update(&st);
        for (int k = 0; probes && k < o->n_ema_probe; k++)
            ema_update_block(probes + (size_t)k * st.L.n_floats, st.params, st.L.n_floats, o->ema_probe[k],
                             st.ema_warmup_start + st.step);
        /* the step's own CPU time, validation and checkpoints excluded; with
         * several ranks, the sum of theirs up to the gradient (the same
         * number on every rank, so they stop on a CPU budget together) */
        st.cpu_seconds += gt.N > 1 ? step_cpu : cpu_sec() - cpu0;
        st.loss_smooth = st.step == 0 || st.loss_smooth <= 0 ? loss : 0.98 * st.loss_smooth + 0.02 * loss;
        st.step++;
        steps_since++;
        double now = now_sec();
        dr_train_progress pr = {.step = st.step,
                                .steps = opt->steps,
                                .loss = loss,
                                .loss_smooth = st.loss_smooth,
                                .lr = lr,
                                .grad_norm = gn,
                                .cpu_seconds = st.cpu_seconds,
                                .ranks = gt.N,
                                .reduce_seconds = gt.reduce_sec};
        pr.steps_per_sec = steps_since / fmax(now - t_last, 1e-9);
        double vl = NAN, vx0 = NAN, vx0p = NAN, band[DR_VAL_T_BANDS];
        for (int k = 0; k < DR_VAL_T_BANDS; k++) band[k] = pr.val_x0_band[k] = NAN;
        if (vb.B && opt->val_every > 0 && st.step % opt->val_every == 0) {
            vl = val_loss(&st, st.ema, &vb, &val, &sch, vseed, &vx0, band, NULL);
            /* the raw parameters too: whether the EMA's averaging helps at this
             * horizon (the EMA decay lever, docs/TRAINING.md) */
            val_loss(&st, st.params, &vb, &val, &sch, vseed, &vx0p, NULL, NULL);
            probes_validate(&st, o, probes, pcsv, &vb, &val, &sch, vseed);
            memcpy(pr.val_x0_band, band, sizeof band);
            pr.val_loss = vl;
            pr.val_x0_mse = vx0;
            pr.is_val = 1;
        }
        if (csv) {
            fprintf(csv, "%d,%.6f,%.6f,%.6g,%.4f,%.1f,%.2f,", st.step, loss, st.loss_smooth, lr, gn, tm / B,
                    now - t_start);
            if (isfinite(vl))
                fprintf(csv, "%.6f,%.6f", vl, vx0);
            else
                fputc(',', csv);
            fprintf(csv, ",%.2f,", st.cpu_seconds);
            if (isfinite(vx0p)) fprintf(csv, "%.6f", vx0p);
            csv_bands_write(csv, csv_bands, band);
            fputc('\n', csv);
            fflush(csv); /* whole rows: a run killed between steps leaves no half row */
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
    train_batch_free(&bb);
    train_batch_free(&vb);
    dataset_free(&ds);
    dataset_free(&val);
    noise_schedule_free(&sch);
    train_state_free(&st);
    return rc;
}

int dr_train_validate(const dr_train_options *o, double *val_loss_out, double *val_x0_mse) {
    dr_val_result r;
    DR_TRY(dr_train_validate_bands(o, &r));
    *val_loss_out = r.val_loss;
    *val_x0_mse = r.val_x0_mse;
    return DR_OK;
}

int dr_train_validate_bands(const dr_train_options *o, dr_val_result *r) {
    if (!o || !r) return error_set(DR_ERR_INVALID, "train: validation needs options and a result");
    r->val_loss = r->val_x0_mse = NAN;
    r->timesteps = 0;
    for (int k = 0; k < DR_VAL_T_BANDS; k++) {
        r->x0_band[k] = NAN;
        r->band_crops[k] = 0;
    }
    if (!o->val_dir) return error_set(DR_ERR_INVALID, "train: validation needs --val");
    if (!!o->resume_path == !!o->init_path)
        return error_set(DR_ERR_INVALID, "train: validation needs either a checkpoint (--resume) or weights (--init)");
    if (o->val_batches < 1 || o->val_batches > 4096)
        return error_set(DR_ERR_INVALID, "train: %d validation batches; 1..4096", o->val_batches);
    train_state st;
    int rc = o->resume_path ? checkpoint_load(&st, o->resume_path) : train_state_from_weights(&st, o);
    if (rc != DR_OK) {
        if (o->init_path) train_state_free(&st);
        return rc;
    }
    if (o->init_path) st.opt.batch = o->batch;
    /* the crop size is the caller's, for a checkpoint too (not the one it trained at):
     * models trained at different patch sizes are then measured on the same crops */
    st.opt.patch = o->patch;
    st.opt.val_batches = o->val_batches;
    const uint64_t vseed = o->val_seed >= 0 ? (uint64_t)o->val_seed : st.opt.seed;
    dataset val = {0};
    train_batch vb = {0};
    noise_schedule sch = {0};
    if ((rc = noise_schedule_build(&sch, st.info.timesteps, st.info.schedule_linear)) == DR_OK &&
        (rc = dataset_load(&val, o->val_dir, st.opt.patch, o->log, o->user)) == DR_OK &&
        (rc = train_batch_build(&vb, &st, &val, VAL_BATCH, st.opt.patch, val_run_batch(st.opt.patch))) == DR_OK) {
        r->val_loss = val_loss(&st, o->resume_path && o->validate_params ? st.params : st.ema, &vb, &val, &sch, vseed,
                               &r->val_x0_mse, r->x0_band, r->band_crops);
        r->timesteps = sch.T;
        if (!isfinite(r->val_loss)) rc = error_set(DR_ERR_NUMERIC, "validation loss is not finite");
    }
    train_batch_free(&vb);
    dataset_free(&val);
    noise_schedule_free(&sch);
    train_state_free(&st);
    return rc;
}

int dr_train_export(const char *checkpoint, const char *out_path, int f16) {
    struct stat st_ck;
    if (checkpoint && stat(checkpoint, &st_ck) == 0 && same_file(out_path, &st_ck))
        return error_set(DR_ERR_INVALID, "refusing to export into %s: it is the checkpoint being read", out_path);
    train_state st;
    DR_TRY(checkpoint_load(&st, checkpoint));
    int rc = checkpoint_export(&st, out_path, f16);
    train_state_free(&st);
    return rc;
}
