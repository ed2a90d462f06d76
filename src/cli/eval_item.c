/* diffrestore eval: one image (degrade, restore, score beside the
 * baseline, write the outputs), and inpaint's degraded inputs and masks for
 * the Telea baseline (see eval.h). */
#include "eval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* The file NAME<suffix>.png of an item under dir. */
static char *item_file(const ectx *x, const batch_item *it, const char *dir, const char *suffix) {
    return batch_out_path(dir, x->names[it->index], "png", suffix);
}

/* Save, creating directories, never over an input. Returns 0, or -1 with msg set. */
static int save_output(ectx *x, const char *path, const dr_image *img, char *msg, size_t msg_n) {
    struct stat st;
    if (stat(path, &st) == 0 && batch_is_input(&x->b, st.st_dev, st.st_ino)) {
        snprintf(msg, msg_n, "refusing to write %s: it is an input (ground-truth) file", path);
        return -1;
    }
    if (batch_mkdir_parent(path, msg, msg_n) != 0) return -1;
    dr_save_options so;
    dr_save_options_init(&so);
    so.overwrite = 1; /* eval's outputs are results of the run: a rerun replaces them */
    if (dr_image_save(path, img, &so) != DR_OK) {
        snprintf(msg, msg_n, "%s", dr_last_error());
        return -1;
    }
    return 0;
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

int eval_write_inputs(ectx *x, int report) {
    const eopts *o = x->o;
    int written = 0;
    for (int i = 0; i < x->b.n && !cli_cancel; i++) {
        const batch_item *it = &x->b.items[i];
        if (it->error || !x->names[i]) {
            if (report) progress_fail(&x->pr, it->path, "%s", it->error ? it->error : "out of memory");
            continue;
        }
        x->pr.pos = i + 1;
        x->pr.cur = it->rel;
        progress_bar(&x->pr, 0, 0);
        dr_eval_case c;
        if (load_case(x, it, &c) != DR_OK) {
            if (report) progress_fail(&x->pr, it->path, "%s", dr_last_error());
            continue;
        }
        char *fi = item_file(x, it, o->out, "_input"), *fm = item_file(x, it, o->out, "_mask");
        char msg[1024] = "out of memory";
        if (fi && fm && save_output(x, fi, &c.input, msg, sizeof msg) == 0 &&
            save_output(x, fm, &c.mask, msg, sizeof msg) == 0)
            written++;
        else if (report)
            progress_fail(&x->pr, it->path, "%s", msg);
        free(fi);
        free(fm);
        dr_eval_case_free(&c);
    }
    progress_clear(&x->pr);
    return written;
}

static void on_progress(int step, int steps, void *user) {
    ectx *x = user;
    progress_bar(&x->pr, step, steps);
}

void eval_baseline_names(dr_mode mode, char *suffix, size_t ns, char *name, size_t nn) {
    const char *b = dr_mode_get(mode)->baseline;
    snprintf(suffix, ns, "_%s", b);
    snprintf(name, nn, "%s", b);
    if (name[0] >= 'a' && name[0] <= 'z') name[0] = (char)(name[0] - 'a' + 'A');
}

/* The baseline's metrics into *bm: most modes' baselines come with the case
 * (colorize's gray input, superres' bicubic upscale); an external one
 * (DR_MODE_BASELINE_EXTERNAL: inpaint's Telea) is read from --baseline-dir. Returns 1 when scored, 0 when there is none
 * (a note says why), -1 after the report. */
static int score_baseline(ectx *x, const batch_item *it, const dr_eval_case *c, dr_eval_metrics *bm) {
    const eopts *o = x->o;
    if (!cli_mode_takes(o->mode, DR_MODE_BASELINE_EXTERNAL)) {
        if (dr_eval_score(c, &c->baseline, bm) != DR_OK)
            return progress_fail(&x->pr, it->path, "baseline: %s", dr_last_error()), -1;
        return 1;
    }
    if (!o->baseline_dir) return 0;
    int scored = 0;
    dr_image img = {0};
    char suffix[40], name[32]; /* DIR/NAME_telea.png; "Telea" in messages */
    eval_baseline_names(o->mode, suffix, sizeof suffix, name, sizeof name);
    char *telea = item_file(x, it, o->baseline_dir, suffix);
    if (telea && file_exists(telea)) {
        if (dr_image_load(telea, 0, &img, NULL) != DR_OK)
            progress_note(&x->pr, "diffrestore: %s baseline: %s", name, dr_last_error());
        else if (dr_eval_score(c, &img, bm) != DR_OK)
            progress_note(&x->pr, "diffrestore: %s baseline %s: %s", name, telea, dr_last_error());
        else
            scored = 1;
    } else {
        progress_note(&x->pr, "diffrestore: %s: no %s result (%s)", it->path, name, telea ? telea : "out of memory");
    }
    dr_image_free(&img);
    free(telea);
    return scored;
}

/* NAME.png and NAME_sheet.png under --out. Returns 0, or -1 after the report. */
static int write_outputs(ectx *x, const batch_item *it, const dr_eval_case *c, const dr_image *out) {
    char msg[2048];
    dr_image sheet = {0};
    char *f_out = item_file(x, it, x->o->out, ""), *f_sheet = item_file(x, it, x->o->out, "_sheet");
    int rc = -1;
    if (!f_out || !f_sheet)
        progress_fail(&x->pr, it->path, "out of memory");
    else if (dr_eval_sheet(c, out, &sheet) != DR_OK)
        progress_fail(&x->pr, it->path, "%s", dr_last_error());
    else if (save_output(x, f_out, out, msg, sizeof msg) != 0 || save_output(x, f_sheet, &sheet, msg, sizeof msg) != 0)
        progress_fail(&x->pr, it->path, "%s", msg);
    else
        rc = 0;
    dr_image_free(&sheet);
    free(f_out);
    free(f_sheet);
    return rc;
}

/* Restore the degraded case into *out. Returns DR_OK or the library's code. */
static int restore_case(ectx *x, const dr_eval_case *c, dr_image *out) {
    const eopts *o = x->o;
    dr_params p = o->p;
    p.progress = on_progress;
    p.user = x;
    p.cancel = &cli_cancel;
    if (cli_mode_takes(o->mode, DR_MODE_TAKES_SCALE)) { /* exactly the ground truth's size */
        p.scale = 0;
        p.out_width = c->truth.width;
        p.out_height = c->truth.height;
    }
    const dr_image *mask = cli_mode_takes(o->mode, DR_MODE_TAKES_MASK) ? &c->mask : NULL;
    return o->s.samples > 1 ? dr_restore_samples(x->m, &c->input, mask, &p, o->s.samples, NULL, out, NULL)
                            : dr_restore(x->m, &c->input, mask, &p, out);
}

int eval_item(ectx *x, const batch_item *it) {
    x->pr.cur = it->rel;
    if (it->error) {
        progress_fail(&x->pr, it->path, "%s", it->error);
        return 0;
    }
    if (!x->names[it->index]) {
        progress_fail(&x->pr, it->path, "out of memory");
        return 0;
    }
    progress_item_start(&x->pr);
    progress_bar(&x->pr, 0, 0);
    dr_eval_case c;
    dr_image out = {0};
    dr_eval_metrics mm, bm;
    if (load_case(x, it, &c) != DR_OK) {
        progress_fail(&x->pr, it->path, "%s", dr_last_error());
        return 0;
    }
    int interrupted = 0, have_base = 0;
    const int rc = restore_case(x, &c, &out);
    if (rc == DR_ERR_CANCELLED || (rc != DR_OK && cli_cancel)) {
        interrupted = 1;
    } else if (rc != DR_OK) {
        progress_fail(&x->pr, it->path, "%s", dr_last_error());
    } else {
        progress_item_timed(&x->pr);
        if (dr_eval_score(&c, &out, &mm) != DR_OK)
            progress_fail(&x->pr, it->path, "%s", dr_last_error());
        else if ((have_base = score_baseline(x, it, &c, &bm)) >= 0 &&
                 (!x->o->out || write_outputs(x, it, &c, &out) == 0)) {
            x->model[x->n_model++] = mm;
            if (have_base) x->base[x->n_base++] = bm;
            x->done++;
            progress_clear(&x->pr);
            eval_report_item(x, it, &c, &mm, have_base ? &bm : NULL);
        }
    }
    dr_eval_case_free(&c);
    dr_image_free(&out);
    return interrupted;
}
