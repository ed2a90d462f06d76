/* score.c - dr_eval_score: the metrics of every mode (PSNR, SSIM) and then
 * the mode's own (mode_ops.score), and their mean over a set. */
#include "common/error.h"
#include "imgproc/quality.h"
#include "modes/mode.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* ------------------------------------------------------------------ all of a mode */

/* Every field of dr_eval_metrics (all double): the one table of metrics, for
 * the field-by-field loops and the reports (dr_eval_columns). */
#define COL(f, label, fmt)                                                                                             \
    { #f, label, fmt, offsetof(dr_eval_metrics, f) }
static const dr_eval_column k_fields[] = {
    COL(psnr, "PSNR dB", "%.2f"),
    COL(ssim, "SSIM", "%.4f"),
    COL(chroma_psnr, "chroma PSNR", "%.2f"),
    COL(colorfulness, NULL, NULL),
    COL(colorfulness_gt, NULL, NULL),
    COL(colorfulness_ratio, "colorful/GT", "%.3f"),
    COL(max_luma_diff, "max |dY|", "%.3f"),
    COL(hole_psnr, "hole PSNR", "%.2f"),
    COL(hole_hf_ratio, "hole HF", "%.3f"),
    COL(max_known_diff, "max known", "%.0f"),
    COL(hf_ratio, "HF ratio", "%.3f"),
    COL(consistency_psnr, "consist. dB", "%.2f"),
};
#undef COL
#define N_FIELDS (sizeof k_fields / sizeof *k_fields)
_Static_assert(sizeof(dr_eval_metrics) == N_FIELDS * sizeof(double), "k_fields must list every field");

int dr_eval_columns(dr_mode mode, const dr_eval_column **cols, int max) {
    const mode_ops *ops = mode_ops_get(mode);
    if (!ops) return 0;
    int n = 0;
    for (int k = 0; k < 2 && n < max; k++) cols[n++] = &k_fields[k]; /* psnr, ssim: every mode */
    for (const char *const *key = ops->eval_metrics; key && *key && n < max; key++)
        for (size_t k = 2; k < N_FIELDS; k++)
            if (!strcmp(k_fields[k].key, *key)) {
                cols[n++] = &k_fields[k];
                break;
            }
    return n;
}

static double *field(dr_eval_metrics *m, size_t k) { return (double *)((char *)m + k_fields[k].offset); }
static double cfield(const dr_eval_metrics *m, size_t k) {
    return *(const double *)((const char *)m + k_fields[k].offset);
}

static void metrics_nan(dr_eval_metrics *m) {
    for (size_t k = 0; k < N_FIELDS; k++) *field(m, k) = NAN;
}

int dr_eval_score(const dr_eval_case *c, const dr_image *out, dr_eval_metrics *m) {
    if (!c || !out || !m) return error_set(DR_ERR_INVALID, "dr_eval_score: NULL argument");
    metrics_nan(m);
    DR_TRY(iq_check_image(&c->truth, "the ground truth"));
    DR_TRY(iq_check_image(&c->input, "the degraded input"));
    DR_TRY(iq_check_image(out, "the restored image"));
    if (out->width != c->truth.width || out->height != c->truth.height)
        return error_set(DR_ERR_INVALID, "the restored image is %dx%d but the ground truth is %dx%d", out->width,
                         out->height, c->truth.width, c->truth.height);
    DR_TRY(dr_eval_psnr(out, &c->truth, NULL, &m->psnr));
    DR_TRY(dr_eval_ssim(out, &c->truth, &m->ssim));
    const mode_ops *ops = mode_ops_get(c->mode);
    if (!ops) return error_set(DR_ERR_INVALID, "dr_eval_score: unknown mode %d", (int)c->mode);
    return ops->score(c, out, m);
}

void dr_eval_metrics_mean(const dr_eval_metrics *m, int n, dr_eval_metrics *mean) {
    for (size_t k = 0; k < N_FIELDS; k++) {
        double s = 0;
        int cnt = 0;
        for (int i = 0; m && i < n; i++) {
            const double v = cfield(&m[i], k);
            if (isfinite(v)) {
                s += v;
                cnt++;
            }
        }
        *field(mean, k) = cnt ? s / cnt : NAN;
    }
}
