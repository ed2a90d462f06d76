/* diffrestore eval's report: a table row or a JSON line per image, then
 * the means (see eval.h). */
#include "eval.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* MODE-SPECIFIC: the columns of a mode. */
static const metric_col *mode_cols(dr_mode mode, int *n) {
    switch (mode) {
    case DR_MODE_COLORIZE: *n = (int)(sizeof k_cols_colorize / sizeof *k_cols_colorize); return k_cols_colorize;
    case DR_MODE_INPAINT: *n = (int)(sizeof k_cols_inpaint / sizeof *k_cols_inpaint); return k_cols_inpaint;
    default: *n = (int)(sizeof k_cols_superres / sizeof *k_cols_superres); return k_cols_superres;
    }
}

/* MODE-SPECIFIC: the classical baseline each mode is compared with. */
static const char *baseline_name(dr_mode mode) {
    return mode == DR_MODE_COLORIZE ? "gray" : mode == DR_MODE_INPAINT ? "telea" : "bicubic";
}

static double col_value(const dr_eval_metrics *m, const metric_col *c) {
    return *(const double *)((const char *)m + c->off);
}

static void json_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.6g", v);
    else fputs("null", f);
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
    if (o->s.samples > 1) printf(", mean of %d samples", o->s.samples);
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
