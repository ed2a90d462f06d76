/* examples.c - training examples for each mode (see modes.h). */
#include "modes/modes.h"

#include "common/error.h"
#include "modes/imgproc.h"

#include <math.h>
#include <string.h>

int mode_describe(dr_mode mode, mode_desc *d) {
    d->mode = mode;
    switch (mode) {
    case DR_MODE_COLORIZE: d->target_ch = 2; d->cond_ch = 1; return DR_OK;
    case DR_MODE_INPAINT: d->target_ch = 3; d->cond_ch = 4; return DR_OK;
    case DR_MODE_SUPERRES: d->target_ch = 3; d->cond_ch = 3; return DR_OK;
    default: return dr_error(DR_ERR_INVALID, "unknown mode %d", (int)mode);
    }
}

void mode_train_options_init(mode_train_options *o) {
    o->scale_min = 2.0f;
    o->scale_max = 4.0f;
    o->hole_min = 0.05f;
    o->hole_max = 0.5f;
    o->masks = DR_MASKS_LEGACY;
    o->scale_dist = DR_SCALE_DIST_UNIFORM;
}

double mode_draw_scale(const mode_train_options *o, dr_rng *rng) {
    const double u = dr_rng_uniform(rng);
    const double x = o->scale_dist == DR_SCALE_DIST_HIGH ? 0.5 * (sqrt(1.0 + 8.0 * u) - 1.0) : u;
    return o->scale_min + (o->scale_max - o->scale_min) * x;
}

size_t mode_example_tmp(int P) {
    /* ycc [3, P, P], or LR [3, P, P] at most plus a resize buffer */
    return (size_t)3 * P * P * 3;
}

/* Inputs at inference are 8-bit images: quantize the synthetic degraded
 * input the same way, so training sees what sampling will see. */
static void quantize8(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = roundf((x[i] + 1.0f) * 127.5f);
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        x[i] = v / 127.5f - 1.0f;
    }
}

int mode_make_example(dr_mode mode, const float *rgb, int P, const mode_train_options *o, dr_rng *rng,
                      float *target, float *cond, float *gen, float *tmp) {
    const size_t np = (size_t)P * P;
    for (size_t i = 0; i < np; i++) gen[i] = 1.0f;
    switch (mode) {
    case DR_MODE_COLORIZE: {
        float *ycc = tmp;                                  // [3, P, P]
        ip_rgb_to_ycbcr(rgb, ycc, np);
        memcpy(cond, ycc, np * sizeof(float));             // Y / 127.5 - 1
        quantize8(cond, np);                               // a gray input is 8-bit
        memcpy(target, ycc + np, 2 * np * sizeof(float));  // (Cb - 128) / 127.5, (Cr - 128) / 127.5
        return DR_OK;
    }
    case DR_MODE_INPAINT: {
        if (o->masks == DR_MASKS_DAMAGE) ip_damage_mask(rng, gen, P, P, o->hole_min, o->hole_max, NULL);
        else ip_random_mask(rng, gen, P, P, o->hole_min, o->hole_max); // gen = hole
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < np; i++) {
                target[c * np + i] = rgb[c * np + i];
                cond[c * np + i] = rgb[c * np + i] * (1.0f - gen[i]); // holes set to 0
            }
        memcpy(cond + 3 * np, gen, np * sizeof(float));    // the mask, 1 = hole
        return DR_OK;
    }
    case DR_MODE_SUPERRES: {
        double s = mode_draw_scale(o, rng);
        int lr = (int)lround(P / s);
        if (lr < 1) lr = 1;
        float *low = tmp;                                  // [3, lr, lr]
        DR_TRY(ip_resize(rgb, 3, P, P, low, lr, lr));      // antialiased bicubic down
        quantize8(low, (size_t)3 * lr * lr);               // the LR input is an 8-bit image
        DR_TRY(ip_resize(low, 3, lr, lr, cond, P, P));     // up(LR), bicubic
        for (size_t i = 0; i < 3 * np; i++) target[i] = rgb[i] - cond[i]; // residual HR - up(LR)
        return DR_OK;
    }
    default: return dr_error(DR_ERR_INVALID, "unknown mode %d", (int)mode);
    }
}
