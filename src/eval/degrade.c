/* degrade.c - the evaluation cases of `diffrestore eval`: a ground-truth
 * image, degraded for a mode exactly as training degrades its crops
 * (src/modes/examples.c), plus the classical baseline and the contact sheet.
 * Pure image maths: no files, no processes. */
#include "eval/eval_internal.h"

#include "common/error.h"
#include "common/rng.h"
#include "modes/imgproc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The mask of image `index` comes from dr_rng_derive(seed, EVAL_STREAM, index):
 * a stream of its own, whatever else uses the seed. */
#define EVAL_STREAM 0x6576616cULL /* "eval" */
#define SHEET_GAP 2
#define SHEET_GAP_VALUE 128

void dr_eval_options_init(dr_eval_options *o) {
    memset(o, 0, sizeof *o);
    o->scale = 4.0;
    o->hole_min = 0.10;
    o->hole_max = 0.30;
    o->seed = 0;
    o->crop = 0;
    o->masks = DR_MASKS_LEGACY;
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

static int alloc_planes(float **p, size_t n) {
    *p = malloc(sizeof(float) * (n ? n : 1));
    return *p ? DR_OK : dr_error(DR_ERR_NOMEM, "eval: out of memory (%zu values)", n);
}

static int degrade_colorize(dr_eval_case *c) {
    const int w = c->truth.width, h = c->truth.height;
    const size_t np = (size_t)w * h;
    float *rgb = NULL, *ycc = NULL;
    int rc = alloc_planes(&rgb, 3 * np);
    if (rc == DR_OK) rc = alloc_planes(&ycc, 3 * np);
    if (rc == DR_OK) {
        ip_to_planar(&c->truth, rgb);
        ip_rgb_to_ycbcr(rgb, ycc, np);
        rc = dr_image_alloc(&c->input, w, h, 1, 8);
    }
    if (rc == DR_OK) {
        ip_from_planar(ycc, &c->input); /* plane 0: Y, rounded to 8 bits */
        rc = dr_image_alloc(&c->baseline, w, h, 3, 8);
    }
    if (rc == DR_OK)
        for (size_t i = 0; i < np; i++)
            for (int k = 0; k < 3; k++) c->baseline.data[i * 3 + k] = c->input.data[i];
    free(rgb);
    free(ycc);
    return rc;
}

static int degrade_inpaint(dr_eval_case *c, const dr_eval_options *o, int index) {
    const int w = c->truth.width, h = c->truth.height;
    const size_t np = (size_t)w * h;
    float *m = NULL;
    DR_TRY(alloc_planes(&m, np));
    if (o->masks != DR_MASKS_LEGACY && o->masks != DR_MASKS_DAMAGE) {
        free(m);
        return dr_error(DR_ERR_INVALID, "eval: unknown hole generator %d", (int)o->masks);
    }
    dr_rng rng;
    dr_rng_derive(&rng, o->seed, EVAL_STREAM, (uint64_t)index);
    double frac = o->masks == DR_MASKS_DAMAGE ? ip_damage_mask(&rng, m, h, w, o->hole_min, o->hole_max, NULL)
                                              : ip_random_mask(&rng, m, h, w, o->hole_min, o->hole_max);
    int rc = frac < 0 ? dr_error(DR_ERR_INVALID, "eval: bad hole range %g-%g", o->hole_min, o->hole_max) : DR_OK;
    if (rc == DR_OK) rc = dr_image_alloc(&c->mask, w, h, 1, 8);
    if (rc == DR_OK) rc = dr_image_alloc(&c->input, w, h, 3, 8);
    if (rc == DR_OK) {
        size_t holes = 0;
        for (size_t i = 0; i < np; i++) {
            const int hole = m[i] > 0.5f;
            holes += (size_t)hole;
            c->mask.data[i] = hole ? 255 : 0;
            for (int k = 0; k < 3; k++) c->input.data[i * 3 + k] = hole ? 0 : c->truth.data[i * 3 + k];
        }
        c->hole_fraction = (double)holes / (double)np;
    }
    free(m);
    return rc;
}

static int degrade_superres(dr_eval_case *c, const dr_eval_options *o) {
    const int w = c->truth.width, h = c->truth.height;
    long lw = lround(w / o->scale), lh = lround(h / o->scale);
    if (lw < 1) lw = 1;
    if (lh < 1) lh = 1;
    const size_t np = (size_t)w * h, nl = (size_t)lw * lh;
    float *hr = NULL, *lr = NULL;
    int rc = alloc_planes(&hr, 3 * np);
    if (rc == DR_OK) rc = alloc_planes(&lr, 3 * nl);
    if (rc == DR_OK) {
        ip_to_planar(&c->truth, hr);
        rc = ip_resize(hr, 3, h, w, lr, (int)lh, (int)lw); /* antialiased bicubic down */
    }
    if (rc == DR_OK) rc = dr_image_alloc(&c->input, (int)lw, (int)lh, 3, 8);
    if (rc == DR_OK) {
        ip_from_planar(lr, &c->input); /* the LR is an 8-bit image */
        ip_to_planar(&c->input, lr);   /* the baseline starts from those 8 bits */
        rc = ip_resize(lr, 3, (int)lh, (int)lw, hr, h, w);
    }
    if (rc == DR_OK) rc = dr_image_alloc(&c->baseline, w, h, 3, 8);
    if (rc == DR_OK) ip_from_planar(hr, &c->baseline);
    free(hr);
    free(lr);
    return rc;
}

int dr_eval_degrade(const dr_image *gt, dr_mode mode, const dr_eval_options *o, int index, dr_eval_case *c) {
    if (!c) return dr_error(DR_ERR_INVALID, "dr_eval_degrade: NULL case");
    memset(c, 0, sizeof *c);
    if (!o) return dr_error(DR_ERR_INVALID, "dr_eval_degrade: NULL options");
    DR_TRY(eval_check_image(gt, "the ground truth"));
    if (index < 0) return dr_error(DR_ERR_INVALID, "dr_eval_degrade: negative index %d", index);
    if (o->crop < 0) return dr_error(DR_ERR_INVALID, "dr_eval_degrade: negative crop %d", o->crop);
    if (mode == DR_MODE_SUPERRES && !(o->scale >= 1.0 && o->scale <= 64.0))
        return dr_error(DR_ERR_INVALID, "eval: scale %g is not within 1..64", o->scale);
    if (mode == DR_MODE_INPAINT &&
        !(o->hole_min >= 0 && o->hole_min <= o->hole_max && o->hole_max <= 1))
        return dr_error(DR_ERR_INVALID, "eval: hole range %g-%g is not within 0..1 with min <= max", o->hole_min,
                        o->hole_max);
    if (mode != DR_MODE_COLORIZE && mode != DR_MODE_INPAINT && mode != DR_MODE_SUPERRES)
        return dr_error(DR_ERR_INVALID, "dr_eval_degrade: unknown mode %d", (int)mode);
    c->mode = mode;
    int rc = make_truth(gt, o->crop, &c->truth);
    if (rc == DR_OK) {
        switch (mode) {
        case DR_MODE_COLORIZE: rc = degrade_colorize(c); break;
        case DR_MODE_INPAINT: rc = degrade_inpaint(c, o, index); break;
        default: rc = degrade_superres(c, o); break;
        }
    }
    if (rc != DR_OK) {
        dr_eval_case_free(c);
        c->mode = mode;
    }
    return rc;
}

/* ------------------------------------------------------------------ sheet */

static uint16_t to8(const dr_image *im, size_t i, int c) { return (uint16_t)lround(eval_px(im, i, c)); }

int dr_eval_sheet(const dr_eval_case *c, const dr_image *restored, dr_image *sheet) {
    if (!c || !sheet) return dr_error(DR_ERR_INVALID, "dr_eval_sheet: NULL argument");
    memset(sheet, 0, sizeof *sheet);
    DR_TRY(eval_check_image(&c->truth, "the ground truth"));
    DR_TRY(eval_check_image(&c->input, "the degraded input"));
    DR_TRY(eval_check_image(restored, "the restored image"));
    const int w = c->truth.width, h = c->truth.height;
    if (restored->width != w || restored->height != h)
        return dr_error(DR_ERR_INVALID, "dr_eval_sheet: the restored image is %dx%d but the ground truth is %dx%d",
                        restored->width, restored->height, w, h);
    if (c->mode == DR_MODE_INPAINT) DR_TRY(eval_check_same_size(&c->input, &c->truth, &c->mask, "sheet"));
    else if (c->mode == DR_MODE_COLORIZE) DR_TRY(eval_check_same_size(&c->input, &c->truth, NULL, "sheet"));
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
            if (c->mode == DR_MODE_SUPERRES) { /* nearest neighbour, centres aligned */
                int sx = (int)(((double)x + 0.5) * in->width / w), sy = (int)(((double)y + 0.5) * in->height / h);
                if (sx >= in->width) sx = in->width - 1;
                if (sy >= in->height) sy = in->height - 1;
                const size_t j = (size_t)sy * in->width + sx;
                for (int k = 0; k < 3; k++) d0[k] = to8(in, j, k);
            } else if (c->mode == DR_MODE_INPAINT && eval_in_region(&c->mask, i)) {
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
