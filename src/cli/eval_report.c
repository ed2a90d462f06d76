/* diffrestore eval's report: a table row or a JSON line per image, then
 * the means (see eval.h). */
#include "eval.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ metrics shown per mode */

/* The columns of the mode, from the library's table (dr_eval_columns). */
#define MAX_COLS 16
typedef const dr_eval_column *colp;

static int mode_cols(dr_mode mode, colp *cols) { return dr_eval_columns(mode, cols, MAX_COLS); }

/* the classical baseline each mode is compared with */
static const char *baseline_name(dr_mode mode) { return dr_mode_get(mode)->baseline; }

static double col_value(const dr_eval_metrics *m, colp c) { return *(const double *)((const char *)m + c->offset); }

static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

/* ------------------------------------------------------------------ table */

static void table_header(ectx *x) {
    if (x->header_done || x->o->json) return;
    x->header_done = 1;
    const eopts *o = x->o;
    colp cols[MAX_COLS];
    const int n = mode_cols(o->mode, cols);
    char what[64];
    dr_eval_options_describe(o->mode, &o->e, what, sizeof what);
    printf("%s%s | %s | %s, %d steps", dr_mode_name(o->mode), what, x->weights_path, dr_sampler_name(o->p.sampler),
           o->p.steps);
    if (o->p.sampler == DR_SAMPLER_DDIM || o->p.sampler == DR_SAMPLER_DPMPP_2M_SDE) printf(", eta %g", o->p.eta);
    printf(", %s, seed %llu", dr_spacing_name(o->p.spacing), (unsigned long long)o->p.seed);
    if (cli_guidance(x->m, &o->p) > 0) printf(", guidance %g", cli_guidance(x->m, &o->p));
    if (o->s.samples > 1) printf(", mean of %d samples", o->s.samples);
    if (cli_mode_takes(o->mode, DR_MODE_TAKES_RENDER_SIZE)) { /* the working resolution in force */
        const char *mr = x->m ? dr_model_meta(x->m, "render_size") : NULL;
        const int r = o->p.render_size >= 0 ? o->p.render_size : mr ? atoi(mr) : 0;
        if (r > 0) printf(", render size %d", r);
    }
    if (o->e.crop > 0) printf(" | crop %d", o->e.crop);
    printf(" | baseline: %s\n", baseline_name(o->mode));
    char line[1024];
    int len = snprintf(line, sizeof line, "%-*s", x->name_w, "image");
    for (int k = 0; k < n && len < (int)sizeof line; k++)
        if (cols[k]->label) len += snprintf(line + len, sizeof line - len, " | %-17s", cols[k]->label);
    while (len > 0 && line[len - 1] == ' ') line[--len] = 0; /* no trailing blanks */
    printf("%s\n%-*s", line, x->name_w, "");
    for (int k = 0; k < n; k++)
        if (cols[k]->label) printf(" | %8s %8s", "model", baseline_name(o->mode));
    putchar('\n');
    fflush(stdout);
}

static void cell(colp c, const dr_eval_metrics *m) {
    char buf[32];
    const double v = m ? col_value(m, c) : NAN;
    if (isfinite(v))
        snprintf(buf, sizeof buf, c->fmt, v);
    else
        snprintf(buf, sizeof buf, "-");
    printf(" %8s", buf);
}

static void table_row(ectx *x, const char *name, const dr_eval_metrics *m, const dr_eval_metrics *b) {
    colp cols[MAX_COLS];
    const int n = mode_cols(x->o->mode, cols);
    int len = (int)strlen(name);
    if (len > x->name_w)
        printf("...%s", name + len - (x->name_w - 3));
    else
        printf("%-*s", x->name_w, name);
    for (int k = 0; k < n; k++) {
        if (!cols[k]->label) continue;
        printf(" |");
        cell(cols[k], m);
        cell(cols[k], b);
    }
    putchar('\n');
    fflush(stdout);
}

static void json_metrics(const ectx *x, const dr_eval_metrics *m) {
    colp cols[MAX_COLS];
    const int n = mode_cols(x->o->mode, cols);
    for (int k = 0; k < n; k++) {
        printf("%s\"%s\":", k ? "," : "", cols[k]->key);
        json_num(stdout, col_value(m, cols[k]));
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
    if (cli_mode_takes(x->o->mode, DR_MODE_TAKES_MASK)) {
        printf(",\"hole_fraction\":");
        json_num(stdout, c->hole_fraction);
    }
    if (cli_mode_takes(x->o->mode, DR_MODE_TAKES_SCALE))
        printf(",\"lr_width\":%d,\"lr_height\":%d", c->input.width, c->input.height);
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

void eval_report_mean(ectx *x) {
    dr_eval_metrics mm, mb;
    dr_eval_metrics_mean(x->model, x->n_model, &mm);
    dr_eval_metrics_mean(x->base, x->n_base, &mb);
    if (x->o->json) {
        printf("{\"mean\":true,\"mode\":\"%s\",\"images\":%d,\"failed\":%d,\"model\":{", dr_mode_name(x->o->mode),
               x->n_model, x->pr.failed);
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

void eval_report_item(ectx *x, const batch_item *it, const dr_eval_case *c, const dr_eval_metrics *m,
                      const dr_eval_metrics *b) {
    if (x->o->json) {
        json_row(x, it, c, m, b);
    } else {
        table_header(x);
        table_row(x, it->rel, m, b);
    }
}
