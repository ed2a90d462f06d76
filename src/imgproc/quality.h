/* quality.h - pixel access and checks shared by the quality metrics, the
 * evaluation cases and the modes' scores (iq_: image quality). */
#ifndef DR_IMGPROC_QUALITY_H
#define DR_IMGPROC_QUALITY_H

#include "diffrestore.h"

#include <stddef.h>

/* Sample c (0..2) of pixel i on the 0..255 scale: gray images give their
 * first channel for every c; 16-bit samples are scaled by 255/65535. */
static inline double iq_px(const dr_image *im, size_t i, int c) {
    const int ch = im->channels >= 3 ? c : 0;
    const double v = im->data[i * (size_t)im->channels + ch];
    return im->depth == 16 ? v * (255.0 / 65535.0) : v;
}

/* Luma Y = .299 R + .587 G + .114 B of pixel i, 0..255, unrounded. */
static inline double iq_luma(const dr_image *im, size_t i) {
    if (im->channels < 3) return iq_px(im, i, 0);
    return 0.299 * iq_px(im, i, 0) + 0.587 * iq_px(im, i, 1) + 0.114 * iq_px(im, i, 2);
}

/* 1 when pixel i of region is selected (first channel above half its range). */
static inline int iq_in_region(const dr_image *region, size_t i) {
    if (!region) return 1;
    const unsigned maxv = region->depth == 16 ? 65535u : 255u;
    return region->data[i * (size_t)region->channels] > maxv / 2;
}

/* DR_OK when img is a valid image (name for the message). */
int iq_check_image(const dr_image *img, const char *name);
/* DR_OK when a and b (and region, if not NULL) have the same size. */
int iq_check_same_size(const dr_image *a, const dr_image *b, const dr_image *region, const char *what);

#endif
