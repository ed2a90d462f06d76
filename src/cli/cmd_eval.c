/* diffrestore eval: measure a model on ground-truth photos.
 *
 * Flow: parse options (exit 2 on misuse) -> collect the images below --data
 * (recursive, sorted by relative path) -> load the weights -> inpaint only:
 * write every degraded input and mask, and run OpenCV's Telea inpainting on
 * them once (scripts/telea_baseline.py, when python3-opencv is there) ->
 * per image: decode, degrade (dr_eval_degrade), restore (dr_restore), score
 * the result and the baseline (dr_eval_score), write NAME.png and
 * NAME_sheet.png under --out, print a table row or a JSON line -> the means
 * -> exit 0, or 1 when an image failed.
 *
 * The library does the image maths; this file owns files and processes (the
 * library never starts one). */
#include "batch.h"
#include "cli.h"
#include "progress.h"
#include "weights_path.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CMD "eval"
#define DEFAULT_PYTHON "/usr/bin/python3"
#define TELEA_SCRIPT "telea_baseline.py"
#define DEFAULT_TELEA_RADIUS 3
/* The library accepts factors this far outside the weights' range. */
#define SCALE_TOL 0.02

/* ------------------------------------------------------------------ metrics shown per mode */

typedef struct {
    const char *key;   /* JSON name */
    const char *label; /* table header; NULL: JSON only */
    size_t off;        /* in dr_eval_metrics */
    const char *fmt;   /* table format */
} metric_col;

#define M(f) offsetof(dr_eval_metrics, f)
static const metric_col k_cols_colorize[] = {
    {"psnr", "PSNR dB", M(psnr), "%.2f"},
    {"ssim", "SSIM", M(ssim), "%.4f"},
    {"chroma_psnr", "chroma PSNR", M(chroma_psnr), "%.2f"},
    {"colorfulness_ratio", "colorful/GT", M(colorfulness_ratio), "%.3f"},
    {"max_luma_diff", "max |dY|", M(max_luma_diff), "%.3f"},
    {"colorfulness", NULL, M(colorfulness), NULL},
    {"colorfulness_gt", NULL, M(colorfulness_gt), NULL},
};
static const metric_col k_cols_inpaint[] = {
    {"psnr", "PSNR dB", M(psnr), "%.2f"},
    {"ssim", "SSIM", M(ssim), "%.4f"},
    {"hole_psnr", "hole PSNR", M(hole_psnr), "%.2f"},
    {"hole_hf_ratio", "hole HF", M(hole_hf_ratio), "%.3f"},
    {"max_known_diff", "max known", M(max_known_diff), "%.0f"},
};
static const metric_col k_cols_superres[] = {
    {"psnr", "PSNR dB", M(psnr), "%.2f"},
    {"ssim", "SSIM", M(ssim), "%.4f"},
    {"hf_ratio", "HF ratio", M(hf_ratio), "%.3f"},
    {"consistency_psnr", "consist. dB", M(consistency_psnr), "%.2f"},
};
#undef M

static const metric_col *mode_cols(dr_mode mode, int *n) {
    switch (mode) {
    case DR_MODE_COLORIZE: *n = (int)(sizeof k_cols_colorize / sizeof *k_cols_colorize); return k_cols_colorize;
    case DR_MODE_INPAINT: *n = (int)(sizeof k_cols_inpaint / sizeof *k_cols_inpaint); return k_cols_inpaint;
    default: *n = (int)(sizeof k_cols_superres / sizeof *k_cols_superres); return k_cols_superres;
    }
}

static const char *baseline_name(dr_mode mode) {
    return mode == DR_MODE_COLORIZE ? "gray" : mode == DR_MODE_INPAINT ? "telea" : "bicubic";
}

static double col_value(const dr_eval_metrics *m, const metric_col *c) {
    return *(const double *)((const char *)m + c->off);
}

/* ------------------------------------------------------------------ state */

typedef struct {
    dr_mode mode;
    const char *data, *out, *weights;
    dr_params p;
    dr_eval_options e;
    int samples, reduce_mean;
    int json, quiet, threads, precision;
    long long max_pixels;
    int telea_radius;
    int scale_given, holes_given, masks_given, render_given;
    int sampler_given, steps_given, eta_given, spacing_given; /* else the preset's */
    int preset;                                               /* dr_quality */
} eopts;

typedef struct {
    eopts *o;
    dr_model *m;
    char *weights_path;
    batch_list b;
    char **names;    /* per item: NAME.png relative to the output directory (NULL on OOM) */
    /* Telea (inpaint) */
    int telea_ok;    /* the script ran: NAME_telea.png files are there to score */
    char *telea_dir; /* where NAME_input/_mask/_telea.png live: --out, or telea_tmp */
    char *telea_tmp; /* a mkdtemp directory removed at the end */
    /* results */
    dr_eval_metrics *model, *base;
    int n_model, n_base;
    int done, failed;
    int name_w;      /* table: width of the name column */
    int header_done;
    /* progress */
    int bar, total, pos;
    const char *cur;
    double t_image, sum_time;
    int n_timed;
} ectx;



/* ------------------------------------------------------------------ output helpers */

static void bar_clear(ectx *x) {
    if (x->bar) progress_line("%s", "");
}

static void note(ectx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(ectx *x, const char *fmt, ...) {
    if (x->o->quiet) return;
    bar_clear(x);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}


static void json_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.6g", v);
    else fputs("null", f);
}

static const char *short_name(const char *s, int max) {
    int n = (int)strlen(s);
    return n <= max ? s : s + (n - max);
}

static void bar_draw(ectx *x, int step, int steps) {
    if (!x->bar) return;
    char eta[32] = "--", bar[24];
    const double t = cli_now() - x->t_image;
    if (step > 0 && steps > 0) {
        const double per_image = x->n_timed ? x->sum_time / x->n_timed : t / step * steps;
        progress_fmt_eta(eta, sizeof eta, t / step * (steps - step) + per_image * (x->total - x->pos));
    }
    const int w = 20, fill = steps > 0 ? (int)((long long)w * step / steps) : 0;
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '-';
    bar[w] = 0;
    if (steps > 0)
        progress_line("[%d/%d] %s [%s] %d/%d  ETA %s", x->pos, x->total, short_name(x->cur, 40), bar, step, steps, eta);
    else progress_line("[%d/%d] %s", x->pos, x->total, short_name(x->cur, 60));
}

static void on_progress(int step, int steps, void *user) { bar_draw(user, step, steps); }

/* "diffrestore: FILE: reason" on stderr, and an error line in JSON. */
static void item_fail(ectx *x, const char *file, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void item_fail(ectx *x, const char *file, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bar_clear(x);
    size_t fn = strlen(file);
    if (strncmp(msg, file, fn) == 0 && msg[fn] == ':') cli_eprintf("diffrestore: %s\n", msg);
    else cli_eprintf("diffrestore: %s: %s\n", file, msg);
    if (x->o->json) {
        fputs("{\"file\":", stdout);
        cli_json_str(stdout, file);
        fputs(",\"error\":", stdout);
        cli_json_str(stdout, msg);
        fputs("}\n", stdout);
        fflush(stdout);
    }
    x->failed++;
}

/* ------------------------------------------------------------------ table */

static void table_header(ectx *x) {
    if (x->header_done || x->o->json) return;
    x->header_done = 1;
    const eopts *o = x->o;
    int n;
    const metric_col *cols = mode_cols(o->mode, &n);
    char what[64] = "";
    if (o->mode == DR_MODE_SUPERRES) snprintf(what, sizeof what, " x%g", o->e.scale);
    else if (o->mode == DR_MODE_INPAINT)
        snprintf(what, sizeof what, " holes %g-%g%s", o->e.hole_min, o->e.hole_max,
                 o->e.masks == DR_MASKS_DAMAGE ? " damage" : "");
    printf("%s%s | %s | %s, %d steps", dr_mode_name(o->mode), what, x->weights_path, dr_sampler_name(o->p.sampler),
           o->p.steps);
    if (o->p.sampler == DR_SAMPLER_DDIM || o->p.sampler == DR_SAMPLER_DPMPP_2M_SDE) printf(", eta %g", o->p.eta);
    printf(", %s, seed %llu", dr_spacing_name(o->p.spacing), (unsigned long long)o->p.seed);
    if (o->samples > 1) printf(", mean of %d samples", o->samples);
    if (o->mode == DR_MODE_COLORIZE) { /* the working resolution in force */
        const char *mr = x->m ? dr_model_meta(x->m, "render_size") : NULL;
        const int r = o->p.render_size >= 0 ? o->p.render_size : mr ? atoi(mr) : 0;
        if (r > 0) printf(", render size %d", r);
    }
    if (o->e.crop > 0) printf(" | crop %d", o->e.crop);
    printf(" | baseline: %s\n", baseline_name(o->mode));
    char line[1024];
    int len = snprintf(line, sizeof line, "%-*s", x->name_w, "image");
    for (int k = 0; k < n && len < (int)sizeof line; k++)
        if (cols[k].label) len += snprintf(line + len, sizeof line - len, " | %-17s", cols[k].label);
    while (len > 0 && line[len - 1] == ' ') line[--len] = 0; /* no trailing blanks */
    printf("%s\n%-*s", line, x->name_w, "");
    for (int k = 0; k < n; k++)
        if (cols[k].label) printf(" | %8s %8s", "model", baseline_name(o->mode));
    putchar('\n');
    fflush(stdout);
}

static void cell(const metric_col *c, const dr_eval_metrics *m) {
    char buf[32];
    const double v = m ? col_value(m, c) : NAN;
    if (isfinite(v)) snprintf(buf, sizeof buf, c->fmt, v);
    else snprintf(buf, sizeof buf, "-");
    printf(" %8s", buf);
}

static void table_row(ectx *x, const char *name, const dr_eval_metrics *m, const dr_eval_metrics *b) {
    int n;
    const metric_col *cols = mode_cols(x->o->mode, &n);
    int len = (int)strlen(name);
    if (len > x->name_w) printf("...%s", name + len - (x->name_w - 3));
    else printf("%-*s", x->name_w, name);
    for (int k = 0; k < n; k++) {
        if (!cols[k].label) continue;
        printf(" |");
        cell(&cols[k], m);
        cell(&cols[k], b);
    }
    putchar('\n');
    fflush(stdout);
}

static void json_metrics(const ectx *x, const dr_eval_metrics *m) {
    int n;
    const metric_col *cols = mode_cols(x->o->mode, &n);
    for (int k = 0; k < n; k++) {
        printf("%s\"%s\":", k ? "," : "", cols[k].key);
        json_num(stdout, col_value(m, &cols[k]));
    }
}

static void json_row(ectx *x, const batch_item *it, const dr_eval_case *c, const dr_eval_metrics *m,
                     const dr_eval_metrics *b) {
    fputs("{\"file\":", stdout);
    cli_json_str(stdout, it->rel);
    printf(",\"path\":");
    cli_json_str(stdout, it->path);
    printf(",\"index\":%d,\"mode\":\"%s\",\"width\":%d,\"height\":%d", it->index, dr_mode_name(x->o->mode),
           c->truth.width, c->truth.height);
    if (x->o->mode == DR_MODE_INPAINT) {
        printf(",\"hole_fraction\":");
        json_num(stdout, c->hole_fraction);
    }
    if (x->o->mode == DR_MODE_SUPERRES) printf(",\"lr_width\":%d,\"lr_height\":%d", c->input.width, c->input.height);
    printf(",\"model\":{");
    json_metrics(x, m);
    printf("},\"baseline\":");
    if (b) {
        printf("{\"name\":\"%s\",", baseline_name(x->o->mode));
        json_metrics(x, b);
        putchar('}');
    } else {
        fputs("null", stdout);
    }
    puts("}");
    fflush(stdout);
}

static void print_mean(ectx *x) {
    dr_eval_metrics mm, mb;
    dr_eval_metrics_mean(x->model, x->n_model, &mm);
    dr_eval_metrics_mean(x->base, x->n_base, &mb);
    if (x->o->json) {
        printf("{\"mean\":true,\"mode\":\"%s\",\"images\":%d,\"failed\":%d,\"model\":{", dr_mode_name(x->o->mode),
               x->n_model, x->failed);
        json_metrics(x, &mm);
        printf("},\"baseline\":");
        if (x->n_base > 0) {
            printf("{\"name\":\"%s\",\"images\":%d,", baseline_name(x->o->mode), x->n_base);
            json_metrics(x, &mb);
            putchar('}');
        } else {
            fputs("null", stdout);
        }
        puts("}");
    } else {
        table_header(x);
        char name[32];
        snprintf(name, sizeof name, "mean (%d)", x->n_model);
        table_row(x, name, x->n_model ? &mm : NULL, x->n_base ? &mb : NULL);
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------ files and processes */

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* The file NAME<suffix>.png of an item under dir (Telea files in a temp
 * directory are named by index: no subdirectories, no collisions). */
static char *item_file(const ectx *x, const batch_item *it, const char *dir, const char *suffix) {
    if (x->telea_tmp && dir == x->telea_dir) {
        char name[64];
        snprintf(name, sizeof name, "%06d%s.png", it->index, suffix);
        return path_join(dir, name);
    }
    const char *name = x->names[it->index];
    char *with = suffix[0] ? path_add_suffix(name, suffix) : strdup(name);
    char *r = with ? path_join(dir, with) : NULL;
    free(with);
    return r;
}

/* Save, creating directories, never over an input. Returns 0 or prints nothing
 * and returns -1 with msg set. */
static int save_output(ectx *x, const char *path, const dr_image *img, char *msg, size_t msg_n) {
    struct stat st;
    if (stat(path, &st) == 0 && batch_is_input(&x->b, st.st_dev, st.st_ino)) {
        snprintf(msg, msg_n, "refusing to write %s: it is an input (ground-truth) file", path);
        return -1;
    }
    char *dir = path_dirname(path);
    const char *bad;
    if (!dir) {
        snprintf(msg, msg_n, "out of memory");
        return -1;
    }
    if (mkdir_p(dir, &bad) != 0) {
        snprintf(msg, msg_n, "cannot create the directory %s: %s", bad, strerror(errno));
        free(dir);
        return -1;
    }
    free(dir);
    dr_save_options so;
    dr_save_options_init(&so);
    so.overwrite = 1; /* eval's outputs are results of the run: a rerun replaces them */
    if (dr_image_save(path, img, &so) != DR_OK) {
        snprintf(msg, msg_n, "%s", dr_last_error());
        return -1;
    }
    return 0;
}

/* Run argv[0] (PATH lookup when it has no slash) and wait. The child's
 * stdout goes to our stderr (stdout carries the table or JSON), or both to
 * /dev/null when silent. Returns the exit status, 128 + signal, or -1. */
static int run_process(char *const argv[], int silent) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (silent) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
        } else {
            dup2(2, 1);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static const char *python_path(void) {
    const char *p = getenv("DIFFRESTORE_PYTHON");
    return p && *p ? p : DEFAULT_PYTHON;
}

/* scripts/telea_baseline.py: $DIFFRESTORE_TELEA_SCRIPT, then beside the
 * executable (../scripts, scripts), then the installed data directory. */
static char *find_telea_script(char *tried, size_t tried_n) {
    const char *env = getenv("DIFFRESTORE_TELEA_SCRIPT");
    tried[0] = 0;
    char cand[4][PATH_MAX + 64];
    int n = 0;
    if (env && *env) snprintf(cand[n++], sizeof cand[0], "%s", env);
    char dir[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (len > 0) {
        dir[len] = 0;
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = 0;
            snprintf(cand[n++], sizeof cand[0], "%s/../scripts/%s", dir, TELEA_SCRIPT);
            snprintf(cand[n++], sizeof cand[0], "%s/scripts/%s", dir, TELEA_SCRIPT);
        }
    }
#ifdef DR_INSTALL_DATADIR
    snprintf(cand[n++], sizeof cand[0], "%s/scripts/%s", DR_INSTALL_DATADIR, TELEA_SCRIPT);
#endif
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(cand[i], &st) == 0 && S_ISREG(st.st_mode)) return strdup(cand[i]);
        size_t k = strlen(tried);
        snprintf(tried + k, tried_n - k, "%s%s", k ? ", " : "", cand[i]);
    }
    return NULL;
}

/* Remove our mkdtemp directory: its files (the script writes nothing else
 * there), then the directory. */
static void remove_tmp_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *p = path_join(dir, e->d_name);
            if (p) unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Load and degrade item it. Returns DR_OK, or an error with dr_last_error(). */
static int load_case(ectx *x, const batch_item *it, dr_eval_case *c) {
    dr_image img = {0};
    int rc = dr_image_load(it->path, x->o->max_pixels, &img, NULL);
    if (rc != DR_OK) return rc;
    rc = dr_eval_degrade(&img, x->o->mode, &x->o->e, it->index, c);
    dr_image_free(&img);
    return rc;
}

/* inpaint: write every degraded input and mask (into --out, or a temp
 * directory for Telea alone), run the Telea script once. Any problem only
 * costs the baseline (a note says why); with --out the inputs and masks are
 * written either way, so the baseline can be run elsewhere. */
static void telea_prepare(ectx *x) {
    const eopts *o = x->o;
    const char *py = python_path();
    char *check[] = {(char *)py, "-c", "import cv2", NULL};
    char tried[4 * (PATH_MAX + 64) + 16];
    char *script = NULL;
    if (run_process(check, 1) != 0) {
        bar_clear(x);
        fprintf(stderr, "Telea baseline skipped: install python3-opencv (%s -c \"import cv2\" failed)\n", py);
    } else if (!(script = find_telea_script(tried, sizeof tried))) {
        bar_clear(x);
        fprintf(stderr, "Telea baseline skipped: %s not found (tried %s; set DIFFRESTORE_TELEA_SCRIPT)\n", TELEA_SCRIPT,
                tried);
    }
    if (!script && !o->out) return;
    if (o->out) {
        x->telea_dir = strdup(o->out);
    } else {
        const char *tmp = getenv("TMPDIR");
        char *tmpl = path_join(tmp && *tmp ? tmp : "/tmp", "diffrestore-eval-XXXXXX");
        if (tmpl && mkdtemp(tmpl)) {
            x->telea_tmp = tmpl;
            x->telea_dir = strdup(tmpl);
        } else {
            bar_clear(x);
            fprintf(stderr, "Telea baseline skipped: cannot create a temporary directory: %s\n", strerror(errno));
            free(tmpl);
            free(script);
            return;
        }
    }
    if (!x->telea_dir) {
        free(script);
        return;
    }
    int written = 0;
    for (int i = 0; i < x->b.n && !cli_cancel; i++) {
        const batch_item *it = &x->b.items[i];
        if (it->error || !x->names[i]) continue;
        if (x->bar) progress_line("Telea baseline: preparing %d/%d", i + 1, x->b.n);
        dr_eval_case c;
        if (load_case(x, it, &c) != DR_OK) continue; /* reported in the main pass */
        char *fi = item_file(x, it, x->telea_dir, "_input"), *fm = item_file(x, it, x->telea_dir, "_mask"),
             *ft = item_file(x, it, x->telea_dir, "_telea");
        char msg[1024];
        if (fi && fm && ft) {
            unlink(ft); /* never score a stale result */
            if (save_output(x, fi, &c.input, msg, sizeof msg) == 0 && save_output(x, fm, &c.mask, msg, sizeof msg) == 0)
                written++;
        }
        free(fi);
        free(fm);
        free(ft);
        dr_eval_case_free(&c);
    }
    if (script && written > 0 && !cli_cancel) {
        char radius[16];
        snprintf(radius, sizeof radius, "%d", o->telea_radius);
        char *argv[] = {(char *)py, script, x->telea_dir, "--radius", radius, NULL};
        if (x->bar) progress_line("Telea baseline: inpainting %d image%s", written, written == 1 ? "" : "s");
        int rc = run_process(argv, 0);
        bar_clear(x);
        if (rc != 0 && !cli_cancel)
            cli_eprintf("diffrestore: Telea baseline: %s %s exited with %d; images without a NAME_telea.png "
                            "have no baseline\n", py, script, rc);
        x->telea_ok = 1; /* score whatever it wrote */
    }
    free(script);
}

/* ------------------------------------------------------------------ one image */

/* Returns 1 when interrupted. */
static int eval_item(ectx *x, const batch_item *it) {
    const eopts *o = x->o;
    x->cur = it->rel;
    if (it->error) {
        item_fail(x, it->path, "%s", it->error);
        return 0;
    }
    if (!x->names[it->index]) {
        item_fail(x, it->path, "out of memory");
        return 0;
    }
    x->t_image = cli_now();
    bar_draw(x, 0, 0);
    dr_eval_case c;
    dr_image out = {0}, base_img = {0}, sheet = {0};
    dr_eval_metrics mm, bm;
    int have_base = 0, interrupted = 0;
    char *telea = NULL, *f_out = NULL, *f_sheet = NULL;
    if (load_case(x, it, &c) != DR_OK) {
        item_fail(x, it->path, "%s", dr_last_error());
        return 0;
    }
    /* ---- restore */
    dr_params p = o->p;
    p.progress = on_progress;
    p.user = x;
    p.cancel = &cli_cancel;
    if (o->mode == DR_MODE_SUPERRES) { /* exactly the ground truth's size */
        p.scale = 0;
        p.out_width = c.truth.width;
        p.out_height = c.truth.height;
    }
    const dr_image *mask = o->mode == DR_MODE_INPAINT ? &c.mask : NULL;
    int rc = o->samples > 1 ? dr_restore_samples(x->m, &c.input, mask, &p, o->samples, NULL, &out, NULL)
                            : dr_restore(x->m, &c.input, mask, &p, &out);
    if (rc == DR_ERR_CANCELLED || (rc != DR_OK && cli_cancel)) {
        interrupted = 1;
        goto end;
    }
    if (rc != DR_OK) {
        item_fail(x, it->path, "%s", dr_last_error());
        goto end;
    }
    x->sum_time += cli_now() - x->t_image;
    x->n_timed++;
    /* ---- score the model and the baseline */
    if (dr_eval_score(&c, &out, &mm) != DR_OK) {
        item_fail(x, it->path, "%s", dr_last_error());
        goto end;
    }
    if (o->mode != DR_MODE_INPAINT) {
        if (dr_eval_score(&c, &c.baseline, &bm) != DR_OK) {
            item_fail(x, it->path, "baseline: %s", dr_last_error());
            goto end;
        }
        have_base = 1;
    } else if (x->telea_ok) {
        telea = item_file(x, it, x->telea_dir, "_telea");
        if (telea && file_exists(telea)) {
            if (dr_image_load(telea, 0, &base_img, NULL) != DR_OK) note(x, "diffrestore: Telea baseline: %s", dr_last_error());
            else if (dr_eval_score(&c, &base_img, &bm) != DR_OK)
                note(x, "diffrestore: Telea baseline %s: %s", telea, dr_last_error());
            else have_base = 1;
        } else {
            note(x, "diffrestore: %s: no Telea result (%s)", it->path, telea ? telea : "out of memory");
        }
    }
    /* ---- outputs */
    if (o->out) {
        char msg[2048];
        f_out = item_file(x, it, o->out, "");
        f_sheet = item_file(x, it, o->out, "_sheet");
        if (!f_out || !f_sheet) {
            item_fail(x, it->path, "out of memory");
            goto end;
        }
        if (dr_eval_sheet(&c, &out, &sheet) != DR_OK) {
            item_fail(x, it->path, "%s", dr_last_error());
            goto end;
        }
        if (save_output(x, f_out, &out, msg, sizeof msg) != 0 || save_output(x, f_sheet, &sheet, msg, sizeof msg) != 0) {
            item_fail(x, it->path, "%s", msg);
            goto end;
        }
    }
    /* ---- report */
    x->model[x->n_model++] = mm;
    if (have_base) x->base[x->n_base++] = bm;
    x->done++;
    bar_clear(x);
    if (o->json) {
        json_row(x, it, &c, &mm, have_base ? &bm : NULL);
    } else {
        table_header(x);
        table_row(x, it->rel, &mm, have_base ? &bm : NULL);
    }
end:
    dr_eval_case_free(&c);
    dr_image_free(&out);
    dr_image_free(&base_img);
    dr_image_free(&sheet);
    free(telea);
    free(f_out);
    free(f_sheet);
    return interrupted;
}

/* ------------------------------------------------------------------ help and options */

static void print_help(void) {
    dr_params d;
    dr_params_init(&d);
    dr_eval_options e;
    dr_eval_options_init(&e);
    printf("Usage: diffrestore eval --mode colorize|inpaint|superres --data DIR [options]\n"
           "Measure a model on ground-truth photos: each image is degraded as training\n"
           "degrades (colorize: its luma rounded to 8 bits; inpaint: random holes;\n"
           "superres: an antialiased bicubic downscale rounded to 8 bits), restored, and\n"
           "scored against the original beside a classical baseline (colorize: the gray\n"
           "input; inpaint: OpenCV's Telea; superres: bicubic upscaling). Prints a table,\n"
           "one row per image and their mean. The same --seed gives the same numbers.\n"
           "\n"
           "What to measure:\n"
           "      --mode M            colorize, inpaint or superres (required)\n"
           "      --data DIR          ground-truth PNG and JPEG files below DIR, walked\n"
           "                          recursively, in sorted order of relative path\n"
           "                          (a single file works too) (required)\n"
           "      --scale S           superres: the LR is round(H/S) x round(W/S) and is\n"
           "                          restored to exactly H x W (default %g)\n"
           "      --holes A-B         inpaint: hole fraction range, 0 <= A <= B <= 1\n"
           "                          (default %.2f-%.2f); each image's mask depends only on\n"
           "                          --seed and its position in the sorted list\n"
           "      --masks G           inpaint: the hole generator, legacy (brush strokes\n"
           "                          and boxes) or damage (scratches, cracks, blotches,\n"
           "                          strokes and boxes, as on old photos) (default legacy)\n"
           "      --crop N            score the centred N x N crop (a side shorter than N\n"
           "                          is kept whole) (default 0: the whole image)\n"
           "      --max-pixels N      refuse larger images (default %lld)\n"
           "\n"
           "Sampling:\n"
           "  -w, --weights FILE      weights (.safetensors) for the mode; default: see below\n"
           "      --preset P          fast, default or best: the sampler, steps and eta the\n"
           "                          restore commands' --preset runs for the mode (default:\n"
           "                          default; 'diffrestore MODE --help' lists them)\n"
           "      --steps N           sampler steps (default: the preset's)\n"
           "      --sampler S         ddim, dpmpp-sde, dpmpp or ddpm (default: the preset's)\n"
           "      --eta E             noise of ddim and dpmpp-sde, 0..1 (default: the preset's)\n"
           "      --spacing S         trailing, leading or linspace (default %s)\n"
           "      --seed N            seed of the sampler and of the inpaint masks (default %llu)\n"
           "      --tile N            largest tile side in pixels; bigger images are tiled\n"
           "                          (default: the library's, as for the restore commands)\n"
           "      --render-size R     colorize: run the network on the luma downscaled to a\n"
           "                          long side of R, the chroma upsampled guided by the\n"
           "                          full-size luma; 0 = full size (default: the weights'\n"
           "                          render_size, else 0)\n"
           "      --samples N         restore N samples per image and score their\n"
           "                          per-pixel mean (default 1); needs --reduce mean\n"
           "      --reduce mean       the reduction of the samples (mean is the only one)\n"
           "\n"
           "Output:\n"
           "  -o, --out DIR           write NAME.png (the restoration) and NAME_sheet.png\n"
           "                          (degraded | restored | ground truth; superres shows the\n"
           "                          LR by nearest neighbour, inpaint the holes in magenta);\n"
           "                          inpaint also NAME_input.png, NAME_mask.png and\n"
           "                          NAME_telea.png. NAME mirrors the relative path. Files\n"
           "                          from an earlier run are replaced; inputs never\n"
           "                          (default: no files)\n"
           "      --json              one JSON object per line on stdout instead of the\n"
           "                          table: {\"file\",\"model\":{...},\"baseline\":{...}} per\n"
           "                          image, {\"file\",\"error\"} per failure, then\n"
           "                          {\"mean\":true,...}; NaN is null\n"
           "      --telea-radius R    inpaint: radius of the Telea baseline (default %d)\n"
           "  -t, --threads N         threads (default: all cores)\n"
           "      --precision P       fp32 (default), bf16 or auto: see restore --help\n"
           "  -q, --quiet             no progress or notes; errors only\n"
           "  -h, --help              this help\n"
           "\n"
           "Metrics (on the 8-bit values of the written images; means are plain means\n"
           "over the images):\n"
           "  all       PSNR over R, G, B (peak 255; %g dB when identical, never more);\n"
           "            SSIM of the luma (Gaussian window 11, sigma 1.5, valid region)\n"
           "  colorize  chroma PSNR over Cb, Cr (BT.601); colorfulness (Hasler &\n"
           "            Suesstrunk) of the output over the ground truth's; max |Y_out - Y_in|\n"
           "            (the luma is kept: about 0.5 at most)\n"
           "  inpaint   hole PSNR (hole pixels only); hole HF: mean |grad Y| over the hole,\n"
           "            output over ground truth; max known: the largest change of a known\n"
           "            pixel (0: they are kept bit for bit)\n"
           "  superres  HF ratio: mean |grad Y|, output over ground truth; consist.:\n"
           "            PSNR of the output downscaled by the same resampler against the LR\n"
           "\n"
           "The Telea baseline runs scripts/%s (found beside the executable,\n"
           "or $DIFFRESTORE_TELEA_SCRIPT) with %s (or $DIFFRESTORE_PYTHON)\n"
           "when 'import cv2' works there; otherwise it is skipped with a note (apt-get\n"
           "install python3-opencv).\n"
           "\n"
           "Weights:\n",
           e.scale, e.hole_min, e.hole_max, (long long)DR_DEFAULT_MAX_PIXELS, dr_spacing_name(d.spacing), (unsigned long long)d.seed, DEFAULT_TELEA_RADIUS, DR_EVAL_PSNR_CAP,
           TELEA_SCRIPT, DEFAULT_PYTHON);
    printf("  -w FILE if given, else the first that exists of $DIFFRESTORE_WEIGHTS (a file,\n"
           "  or a directory holding MODE.safetensors), weights/MODE.safetensors beside the\n"
           "  executable, the installed weights (as for 'diffrestore colorize --help').\n"
           "\n"
           "A bad image is reported (\"diffrestore: FILE: reason\") and skipped; the others\n"
           "are still evaluated. Ctrl-C stops after printing the mean so far.\n"
           "Exit codes: 0 all evaluated, 1 some image failed, 2 usage error, 130/143\n"
           "interrupted.\n");
}

enum {
    O_MODE = OPT_CMD_BASE, O_DATA, O_SCALE, O_HOLES, O_MASKS, O_CROP, O_STEPS, O_SAMPLER, O_ETA, O_SPACING, O_SEED,
    O_SAMPLES, O_REDUCE, O_JSON, O_TELEA_RADIUS, O_TILE, O_RENDER
};


/* "A-B" with 0 <= A <= B <= 1. */
static int parse_holes(const char *s, double *a, double *b) {
    if (!s || !*s) return 0;
    const char *dash = strchr(s + 1, '-');
    if (!dash) return 0;
    char left[64];
    size_t n = (size_t)(dash - s);
    if (n >= sizeof left) return 0;
    memcpy(left, s, n);
    left[n] = 0;
    return cli_parse_double(left, 0, 1, a) && cli_parse_double(dash + 1, 0, 1, b) && *a <= *b;
}

/* Returns -1 to go on, or an exit code. */
static int parse_options(eopts *o, int argc, char **argv) {
    static const struct option longopts[] = {
        {"mode", required_argument, 0, O_MODE},
        {"data", required_argument, 0, O_DATA},
        {"scale", required_argument, 0, O_SCALE},
        {"holes", required_argument, 0, O_HOLES},
        {"masks", required_argument, 0, O_MASKS},
        {"crop", required_argument, 0, O_CROP},
        {"steps", required_argument, 0, O_STEPS},
        {"sampler", required_argument, 0, O_SAMPLER},
        {"eta", required_argument, 0, O_ETA},
        {"spacing", required_argument, 0, O_SPACING},
        {"seed", required_argument, 0, O_SEED},
        {"samples", required_argument, 0, O_SAMPLES},
        {"reduce", required_argument, 0, O_REDUCE},
        {"json", no_argument, 0, O_JSON},
        {"telea-radius", required_argument, 0, O_TELEA_RADIUS},
        {"tile", required_argument, 0, O_TILE},
        {"render-size", required_argument, 0, O_RENDER},
        {"out", required_argument, 0, 'o'},
        {"output", required_argument, 0, 'o'},
        {"weights", required_argument, 0, 'w'},
        {"threads", required_argument, 0, 't'},
        {"precision", required_argument, 0, OPT_PRECISION},
        {"preset", required_argument, 0, OPT_PRESET},
        {"quiet", no_argument, 0, 'q'},
        {"max-pixels", required_argument, 0, OPT_MAX_PIXELS},
        {"version", no_argument, 0, OPT_VERSION},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int opt;
    long long v;
    double d;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:w:t:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'h': print_help(); return EXIT_DONE;
        case OPT_VERSION: printf("diffrestore %s\n", dr_version()); return EXIT_DONE;
        case O_MODE:
            o->mode = dr_mode_from_name(optarg);
            if (o->mode == DR_MODE_NONE)
                return cli_usage_error(CMD, "--mode must be colorize, inpaint or superres, not '%s'", optarg);
            break;
        case O_DATA: o->data = optarg; break;
        case O_SCALE:
            if (!cli_parse_double(optarg, 1, 64, &d)) return cli_usage_error(CMD, "--scale needs a factor 1..64, got '%s'", optarg);
            o->e.scale = d;
            o->scale_given = 1;
            break;
        case O_HOLES:
            if (!parse_holes(optarg, &o->e.hole_min, &o->e.hole_max))
                return cli_usage_error(CMD, "--holes needs A-B with 0 <= A <= B <= 1 (e.g. 0.10-0.30), got '%s'", optarg);
            o->holes_given = 1;
            break;
        case O_MASKS:
            if (!strcmp(optarg, "legacy")) o->e.masks = DR_MASKS_LEGACY;
            else if (!strcmp(optarg, "damage")) o->e.masks = DR_MASKS_DAMAGE;
            else return cli_usage_error(CMD, "--masks must be legacy or damage, not '%s'", optarg);
            o->masks_given = 1;
            break;
        case O_CROP:
            if (!cli_parse_int(optarg, 0, 1 << 20, &v)) return cli_usage_error(CMD, "--crop needs a size in pixels, got '%s'", optarg);
            o->e.crop = (int)v;
            break;
        case O_STEPS:
            if (!cli_parse_int(optarg, 1, 100000, &v)) return cli_usage_error(CMD, "--steps needs 1..100000, got '%s'", optarg);
            o->p.steps = (int)v;
            o->steps_given = 1;
            break;
        case O_SAMPLER:
            if (dr_sampler_from_name(optarg, &o->p.sampler) != DR_OK)
                return cli_usage_error(CMD, "--sampler must be one of " DR_SAMPLER_NAMES ", not '%s'", optarg);
            o->sampler_given = 1;
            break;
        case O_ETA:
            if (!cli_parse_double(optarg, 0, 1, &d)) return cli_usage_error(CMD, "--eta needs 0..1, got '%s'", optarg);
            o->p.eta = d;
            o->eta_given = 1;
            break;
        case O_SPACING:
            if (dr_spacing_from_name(optarg, &o->p.spacing) != DR_OK) return cli_usage_error(CMD, "%s", dr_last_error());
            o->spacing_given = 1;
            break;
        case O_RENDER: {
            long long v;
            if (!cli_parse_int(optarg, 0, DR_RENDER_SIZE_MAX, &v) || (v > 0 && v < DR_RENDER_SIZE_MIN))
                return cli_usage_error(CMD, "--render-size needs 0 or %d..%d, got '%s'", DR_RENDER_SIZE_MIN,
                                       DR_RENDER_SIZE_MAX, optarg);
            o->p.render_size = (int)v;
            o->render_given = 1;
            break;
        }
        case O_TILE: {
            long long v;
            if (!cli_parse_int(optarg, 16, 1 << 20, &v)) return cli_usage_error(CMD, "--tile needs a size in pixels (>= 16), got '%s'", optarg);
            o->p.tile = (int)v;
            break;
        }
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || !*optarg || *end || optarg[0] == '-' || optarg[0] == '+')
                return cli_usage_error(CMD, "--seed needs a number, got '%s'", optarg);
            o->p.seed = s;
            o->e.seed = s;
            break;
        }
        case O_SAMPLES:
            if (!cli_parse_int(optarg, 1, 1000, &v)) return cli_usage_error(CMD, "--samples needs 1..1000, got '%s'", optarg);
            o->samples = (int)v;
            break;
        case O_REDUCE:
            if (strcmp(optarg, "mean") != 0) return cli_usage_error(CMD, "--reduce supports only 'mean', not '%s'", optarg);
            o->reduce_mean = 1;
            break;
        case O_JSON: o->json = 1; break;
        case O_TELEA_RADIUS:
            if (!cli_parse_int(optarg, 1, 100, &v)) return cli_usage_error(CMD, "--telea-radius needs 1..100, got '%s'", optarg);
            o->telea_radius = (int)v;
            break;
        case 'o': o->out = optarg; break;
        case 'w': o->weights = optarg; break;
        case 'q': o->quiet = 1; break;
        case 't':
            if (!cli_parse_int(optarg, 0, 1024, &v)) return cli_usage_error(CMD, "--threads needs a number 0..1024, got '%s'", optarg);
            o->threads = (int)v;
            break;
        case OPT_PRESET: {
            dr_quality q;
            if (dr_quality_from_name(optarg, &q) != DR_OK)
                return cli_usage_error(CMD, "--preset needs " DR_QUALITY_NAMES ", got '%s'", optarg);
            o->preset = (int)q;
            break;
        }
        case OPT_PRECISION: {
            cli_common cc;
            cli_common_init(&cc);
            if (cli_common_option(&cc, opt, optarg, CMD) < 0) return EXIT_USAGE;
            o->precision = cc.precision;
            break;
        }
        case OPT_MAX_PIXELS:
            if (!cli_parse_int(optarg, 1, (long long)1 << 40, &v))
                return cli_usage_error(CMD, "--max-pixels needs a positive number, got '%s'", optarg);
            o->max_pixels = v;
            break;
        default: return cli_usage_error(CMD, "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s' (the images come from --data DIR)", argv[optind]);
    if (o->mode == DR_MODE_NONE) return cli_usage_error(CMD, "--mode is required (colorize, inpaint or superres)");
    { /* --mode may come after the sampling options: fill in the mode's defaults now */
        dr_params d;
        dr_params_init_quality(&d, o->mode, (dr_quality)o->preset);
        if (!o->sampler_given) o->p.sampler = d.sampler;
        if (!o->steps_given) o->p.steps = d.steps;
        if (!o->eta_given) o->p.eta = d.eta;
        if (!o->spacing_given) o->p.spacing = d.spacing;
    }
    if (!o->data || !*o->data) return cli_usage_error(CMD, "--data DIR is required");
    if (o->scale_given && o->mode != DR_MODE_SUPERRES) return cli_usage_error(CMD, "--scale is only for superres");
    if (o->holes_given && o->mode != DR_MODE_INPAINT) return cli_usage_error(CMD, "--holes is only for inpaint");
    if (o->masks_given && o->mode != DR_MODE_INPAINT) return cli_usage_error(CMD, "--masks is only for inpaint");
    if (o->render_given && o->mode != DR_MODE_COLORIZE) return cli_usage_error(CMD, "--render-size is only for colorize");
    if (o->samples > 1 && !o->reduce_mean)
        return cli_usage_error(CMD, "--samples %d needs --reduce mean (the mean of the samples is scored)", o->samples);
    if (o->reduce_mean && o->samples < 2) return cli_usage_error(CMD, "--reduce mean needs --samples 2 or more");
    if (o->out && !*o->out) return cli_usage_error(CMD, "--out needs a directory");
    return -1;
}

/* ------------------------------------------------------------------ the command */

/* NAME.png of every item; with --out, the later (in sorted order) of two
 * items with the same NAME fails: a.png and a.jpg would write the same files. */
static const char *const *g_sort_names;
static int cmp_name_index(const void *a, const void *b) {
    const int i = *(const int *)a, j = *(const int *)b;
    const int c = strcmp(g_sort_names[i], g_sort_names[j]);
    return c ? c : (i > j) - (i < j);
}

static int plan_names(ectx *x) {
    x->names = calloc((size_t)x->b.n + 1, sizeof *x->names);
    if (!x->names) return -1;
    for (int i = 0; i < x->b.n; i++) {
        x->names[i] = path_set_ext(x->b.items[i].rel, "png");
        if (!x->names[i]) return -1;
    }
    if (!x->o->out || x->b.n < 2) return 0;
    int *ord = malloc(sizeof(int) * (size_t)x->b.n);
    if (!ord) return -1;
    for (int i = 0; i < x->b.n; i++) ord[i] = i;
    g_sort_names = (const char *const *)x->names;
    qsort(ord, (size_t)x->b.n, sizeof *ord, cmp_name_index);
    int first = 0;
    for (int k = 1; k < x->b.n; k++) {
        if (strcmp(x->names[ord[k]], x->names[ord[first]]) != 0) {
            first = k;
            continue;
        }
        batch_item *it = &x->b.items[ord[k]];
        if (it->error) continue;
        char msg[1024];
        snprintf(msg, sizeof msg, "its outputs (%s in %s) would also be those of %s", x->names[ord[k]], x->o->out,
                 x->b.items[ord[first]].path);
        it->error = strdup(msg);
        if (!it->error) {
            free(ord);
            return -1;
        }
    }
    free(ord);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    eopts o;
    memset(&o, 0, sizeof o);
    dr_params_init(&o.p);
    dr_eval_options_init(&o.e);
    o.e.seed = o.p.seed;
    o.samples = 1;
    o.max_pixels = DR_DEFAULT_MAX_PIXELS;
    o.telea_radius = DEFAULT_TELEA_RADIUS;
    ectx x;
    memset(&x, 0, sizeof x);
    x.o = &o;
    int code = parse_options(&o, argc, argv);
    if (code >= 0) return code;
    code = EXIT_FAILED;
    {
        cli_common cc;
        cli_common_init(&cc);
        cc.threads = o.threads, cc.precision = o.precision;
        cli_apply_compute(&cc, CMD);
    }
    x.bar = !o.quiet && progress_is_tty();

    /* ---- the images */
    struct stat dst, ost;
    if (stat(o.data, &dst) != 0) {
        cli_eprintf("diffrestore: %s: %s\n", o.data, strerror(errno));
        goto end;
    }
    if (o.out && stat(o.out, &ost) == 0 && !S_ISDIR(ost.st_mode)) {
        code = cli_usage_error(CMD, "--out %s is a file: it must be a directory", o.out);
        goto end;
    }
    /* --data is walked recursively: an output folder inside it would hold
     * files that are ground truth to the walk (and would be replaced) */
    if (o.out && dr_path_within(o.out, o.data)) {
        code = cli_usage_error(CMD, "--out %s lies inside --data %s: choose an output folder outside the ground truth",
                               o.out, o.data);
        goto end;
    }
    char *inputs[1] = {(char *)o.data};
    if (batch_collect(&x.b, inputs, 1, 1, NULL, 0) != 0 || (batch_sort(&x.b), plan_names(&x) != 0)) {
        cli_eprintf("diffrestore: out of memory\n");
        goto end;
    }
    if (x.b.n == 0) {
        cli_eprintf("diffrestore: no PNG or JPEG files in %s\n", o.data);
        goto end;
    }
    x.total = x.b.n;
    x.model = calloc((size_t)x.b.n, sizeof *x.model);
    x.base = calloc((size_t)x.b.n, sizeof *x.base);
    if (!x.model || !x.base) {
        cli_eprintf("diffrestore: out of memory\n");
        goto end;
    }
    x.name_w = 8;
    for (int i = 0; i < x.b.n; i++) {
        int n = (int)strlen(x.b.items[i].rel);
        if (n > x.name_w) x.name_w = n;
    }
    if (x.name_w > 40) x.name_w = 40;

    /* ---- weights */
    if (weights_load(o.weights, o.mode, CMD, &x.m, &x.weights_path) != 0) goto end;
    if (o.mode == DR_MODE_SUPERRES) {
        double lo, hi;
        dr_model_scale_range(x.m, &lo, &hi);
        if (lo > 0 && hi >= lo && (o.e.scale < lo - SCALE_TOL || o.e.scale > hi + SCALE_TOL)) {
            cli_eprintf("diffrestore: %s: --scale %g is outside the range these weights were trained for: %g..%g\n",
                    x.weights_path, o.e.scale, lo, hi);
            goto end;
        }
    }
    if (o.out) {
        const char *bad;
        if (mkdir_p(o.out, &bad) != 0) {
            cli_eprintf("diffrestore: cannot create the output directory %s: %s: %s\n", o.out, bad, strerror(errno));
            goto end;
        }
    }

    /* ---- signals */
    cli_catch_signals(1); /* a second Ctrl-C stops at once */
    /* a closed stdout (| head) stops the run through ferror below, so the
     * temporary Telea directory is still removed */
    signal(SIGPIPE, SIG_IGN);

    /* ---- the work */
    if (o.mode == DR_MODE_INPAINT) telea_prepare(&x);
    int interrupted = cli_cancel != 0, broken = 0;
    for (int i = 0; i < x.b.n && !interrupted && !broken; i++) {
        x.pos = i + 1;
        interrupted = eval_item(&x, &x.b.items[i]) || cli_cancel;
        broken = ferror(stdout) != 0;
    }
    bar_clear(&x);
    if (broken) {
        code = 128 + SIGPIPE;
        goto end;
    }
    print_mean(&x);
    if (interrupted)
        cli_eprintf("diffrestore: interrupted (%s): the mean covers the images evaluated so far\n",
                cli_signal == SIGTERM ? "SIGTERM" : "SIGINT");
    if (!o.quiet || interrupted || x.failed)
        fprintf(stderr, "%d evaluated, %d failed%s\n", x.done, x.failed,
                interrupted ? ", the rest not evaluated" : "");
    code = interrupted ? 128 + (cli_signal ? (int)cli_signal : SIGINT) : x.failed ? EXIT_FAILED : EXIT_DONE;

end:
    if (x.telea_tmp) remove_tmp_dir(x.telea_tmp);
    free(x.telea_tmp);
    free(x.telea_dir);
    if (x.names)
        for (int i = 0; i < x.b.n; i++) free(x.names[i]);
    free(x.names);
    batch_free(&x.b);
    free(x.model);
    free(x.base);
    dr_model_free(x.m);
    free(x.weights_path);
    fflush(stdout);
    return code;
}
