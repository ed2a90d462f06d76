/* diffrestore eval, shared by cmd_eval.c (options, help, the run),
 * eval_item.c (one image: degrade, restore, score, write) and eval_report.c
 * (the table and the JSON lines). */
#ifndef DR_CLI_EVAL_H
#define DR_CLI_EVAL_H

#include "batch.h"
#include "cli.h"
#include "progress.h"

#define EVAL_CMD "eval"

/* The options. */
typedef struct {
    dr_mode mode;
    const char *data, *out, *weights;
    const char *baseline_dir; /* inpaint: where NAME_telea.png are (scripts/telea_baseline.py) */
    int inputs_only;          /* inpaint: only write NAME_input.png and NAME_mask.png */
    dr_params p;
    dr_eval_options e;
    cli_sampling s; /* --steps, --sampler, --eta, --spacing, --samples, --reduce */
    int json, quiet, threads, precision;
    long long max_pixels;
    int scale_given, holes_given, masks_given, render_given, noise_given;
    int preset; /* dr_quality */
} eopts;

/* One run. */
typedef struct {
    eopts *o;
    dr_model *m;
    char *weights_path;
    batch_list b;
    char **names; /* per item: NAME.png relative to the output directory (NULL on OOM) */
    /* results */
    dr_eval_metrics *model, *base;
    int n_model, n_base;
    int done;
    int name_w; /* table: width of the name column */
    int header_done;
    progress_run pr; /* the bar, notes, failures (pr.failed) */
} ectx;

/* eval_item.c */
/* Evaluate one image. Returns 1 when interrupted. */
/* An external baseline's file suffix ("_telea") and its name in messages ("Telea"). */
void eval_baseline_names(dr_mode mode, char *suffix, size_t ns, char *name, size_t nn);
int eval_item(ectx *x, const batch_item *it);
/* inpaint: write every image's degraded input and mask (NAME_input.png,
 * NAME_mask.png under --out), the inputs of the Telea baseline. report: name
 * the failures (else they are left to the main pass). Returns how many were
 * written. */
int eval_write_inputs(ectx *x, int report);

/* eval_report.c: a table row or a JSON line per image (b: the baseline's
 * metrics, or NULL), then the means. */
void eval_report_item(ectx *x, const batch_item *it, const dr_eval_case *c, const dr_eval_metrics *m,
                      const dr_eval_metrics *b);
void eval_report_mean(ectx *x);

#endif
