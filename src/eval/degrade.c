/* degrade.c - the evaluation cases of `diffrestore eval`: a ground-truth
 * image, degraded for a mode exactly as training degrades its crops (the
 * mode's degrade, src/modes/MODE.c), plus the classical baseline and the
 * contact sheet.
 * Pure image maths: no files, no processes. */
#include "imgproc/quality.h"

#include "common/error.h"
#include "common/rng.h"
#include "imgproc/imgproc.h"
#include "modes/mode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SHEET_GAP       2
#define SHEET_GAP_VALUE 128

void dr_eval_options_init(dr_eval_options *o) {
    memset(o, 0, sizeof *o);
    o->scale = 4.0;
    o->hole_min = 0.10;
    o->hole_max = 0.30;
    o->seed = 0;
    o->crop = 0;
    o->masks = DR_MASKS_LEGACY;
    o->noise_sigma = 25.0;
    o->jpeg_quality = 0;
}

void dr_eval_options_describe(dr_mode mode, const dr_eval_options *o, char *buf, size_t n) {
    const mode_ops *ops = mode_ops_get(mode);
    if (n) buf[0] = 0;
    if (ops && ops->eval_describe && o && n) ops->eval_describe(o, buf, n);
}

void dr_eval_case_free(dr_eval_case *c) {
    if (!c) return;
    dr_image_free(&c->truth);
    dr_image_free(&c->input);
    dr_image_free(&c->mask);
    dr_image_free(&c->baseline);
    memset(c, 0, sizeof *c);
}

/* gt (any layout) -> 8-bit RGB, the centred crop of at most crop x crop. */
static int make_truth(const dr_image *gt, int crop, dr_image *t) {
    const int w = crop > 0 && crop < gt->width ? crop : gt->width;
    const int h = crop > 0 && crop < gt->height ? crop : gt->height;
    const int x0 = (gt->width - w) / 2, y0 = (gt->height - h) / 2;
    DR_TRY(dr_image_alloc(t, w, h, 3, 8));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint16_t *s = gt->data + ((size_t)(y0 + y) * gt->width + x0 + x) * gt->channels;
            uint16_t *d = t->data + ((size_t)y * w + x) * 3;
            for (int c = 0; c < 3; c++) {
                const unsigned v = s[gt->channels >= 3 ? c : 0];
                d[c] = (uint16_t)(gt->depth == 16 ? (v * 255u + 32767u) / 65535u : v);
            }
        }
    return DR_OK;
}

int dr_eval_degrade(const dr_image *gt, dr_mode mode, const dr_eval_options *o, int index, dr_eval_case *c) {
    if (!c) return error_set(DR_ERR_INVALID, "dr_eval_degrade: NULL case");
    memset(c, 0, sizeof *c);
    if (!o) return error_set(DR_ERR_INVALID, "dr_eval_degrade: NULL options");
    DR_TRY(iq_check_image(gt, "the ground truth"));
    if (index < 0) return error_set(DR_ERR_INVALID, "dr_eval_degrade: negative index %d", index);
    if (o->crop < 0) return error_set(DR_ERR_INVALID, "dr_eval_degrade: negative crop %d", o->crop);
    const mode_ops *ops = mode_ops_get(mode);
    if (!ops) return error_set(DR_ERR_INVALID, "dr_eval_degrade: unknown mode %d", (int)mode);
    c->mode = mode;
    int rc = make_truth(gt, o->crop, &c->truth);
    if (rc == DR_OK) rc = ops->degrade(c, o, index);
    if (rc != DR_OK) {
        dr_eval_case_free(c);
        c->mode = mode;
    }
    return rc;
}

/* ------------------------------------------------------------------ sheet */

static uint16_t to8(const dr_image *im, size_t i, int c) { return (uint16_t)lround(iq_px(im, i, c)); }

int dr_eval_sheet(const dr_eval_case *c, const dr_image *restored, dr_image *sheet) {
    if (!c || !sheet) return error_set(DR_ERR_INVALID, "dr_eval_sheet: NULL argument");
    memset(sheet, 0, sizeof *sheet);
    DR_TRY(iq_check_image(&c->truth, "the ground truth"));
    DR_TRY(iq_check_image(&c->input, "the degraded input"));
    DR_TRY(iq_check_image(restored, "the restored image"));
    const int w = c->truth.width, h = c->truth.height;
    if (restored->width != w || restored->height != h)
        return error_set(DR_ERR_INVALID, "dr_eval_sheet: the restored image is %dx%d but the ground truth is %dx%d",
                         restored->width, restored->height, w, h);
    const mode_ops *ops = mode_ops_get(c->mode);
    const unsigned flags = ops ? ops->info.flags : 0;
    if (flags & DR_MODE_TAKES_MASK)
        DR_TRY(iq_check_same_size(&c->input, &c->truth, &c->mask, "sheet"));
    else if (ops && !(flags & DR_MODE_TAKES_SCALE))
        DR_TRY(iq_check_same_size(&c->input, &c->truth, NULL, "sheet"));
    const int sw = 3 * w + 2 * SHEET_GAP;
    DR_TRY(dr_image_alloc(sheet, sw, h, 3, 8));
    for (size_t i = 0; i < (size_t)sw * h * 3; i++) sheet->data[i] = SHEET_GAP_VALUE;
    const dr_image *in = &c->input;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t i = (size_t)y * w + x;
            uint16_t *d0 = sheet->data + ((size_t)y * sw + x) * 3;
            uint16_t *d1 = d0 + (size_t)(w + SHEET_GAP) * 3, *d2 = d1 + (size_t)(w + SHEET_GAP) * 3;
            /* panel 1: what the model was given, at the truth's size */
            if (flags & DR_MODE_TAKES_SCALE) { /* nearest neighbour, centres aligned */
                int sx = (int)(((double)x + 0.5) * in->width / w), sy = (int)(((double)y + 0.5) * in->height / h);
                if (sx >= in->width) sx = in->width - 1;
                if (sy >= in->height) sy = in->height - 1;
                const size_t j = (size_t)sy * in->width + sx;
                for (int k = 0; k < 3; k++) d0[k] = to8(in, j, k);
            } else if ((flags & DR_MODE_TAKES_MASK) && iq_in_region(&c->mask, i)) {
                d0[0] = 255, d0[1] = 0, d0[2] = 255; /* the hole, magenta */
            } else {
                for (int k = 0; k < 3; k++) d0[k] = to8(in, i, k);
            }
            for (int k = 0; k < 3; k++) {
                d1[k] = to8(restored, i, k);
                d2[k] = to8(&c->truth, i, k);
            }
        }
    return DR_OK;
}
