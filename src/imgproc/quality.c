/* quality.c - image quality metrics, the measures of `diffrestore eval` (see
 * the "evaluation" section of diffrestore.h for the definitions). Everything is
 * computed in double on the 0..255 scale, in a fixed order, so the numbers
 * do not depend on the thread count. */
#include "imgproc/quality.h"

#include "common/error.h"
#include "imgproc/imgproc.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ checks */

int iq_check_image(const dr_image *img, const char *name) {
    if (!img || !img->data || img->width < 1 || img->height < 1 || img->channels < 1 || img->channels > 4 ||
        (img->depth != 8 && img->depth != 16))
        return error_set(DR_ERR_INVALID, "eval: %s is not a valid image", name);
    return DR_OK;
}

int iq_check_same_size(const dr_image *a, const dr_image *b, const dr_image *region, const char *what) {
    DR_TRY(iq_check_image(a, "the first image"));
    DR_TRY(iq_check_image(b, "the second image"));
    if (a->width != b->width || a->height != b->height)
        return error_set(DR_ERR_INVALID, "%s: the images are %dx%d and %dx%d", what, a->width, a->height, b->width,
                         b->height);
    if (region) {
        DR_TRY(iq_check_image(region, "the region"));
        if (region->width != a->width || region->height != a->height)
            return error_set(DR_ERR_INVALID, "%s: the region is %dx%d but the images are %dx%d", what, region->width,
                             region->height, a->width, a->height);
    }
    return DR_OK;
}

/* ------------------------------------------------------------------ PSNR */

static double psnr_from(double sse, double count) {
    if (count <= 0) return NAN;
    if (sse <= 0) return DR_EVAL_PSNR_CAP;
    const double p = 10.0 * log10(255.0 * 255.0 / (sse / count));
    return p > DR_EVAL_PSNR_CAP ? DR_EVAL_PSNR_CAP : p;
}

int dr_eval_psnr(const dr_image *a, const dr_image *b, const dr_image *region, double *psnr) {
    DR_TRY(iq_check_same_size(a, b, region, "PSNR"));
    const size_t np = (size_t)a->width * a->height;
    double sse = 0, count = 0;
    for (size_t i = 0; i < np; i++) {
        if (!iq_in_region(region, i)) continue;
        for (int c = 0; c < 3; c++) {
            const double d = iq_px(a, i, c) - iq_px(b, i, c);
            sse += d * d;
        }
        count += 3;
    }
    *psnr = psnr_from(sse, count);
    return DR_OK;
}

int dr_eval_chroma_psnr(const dr_image *a, const dr_image *b, double *psnr) {
    DR_TRY(iq_check_same_size(a, b, NULL, "chroma PSNR"));
    const size_t np = (size_t)a->width * a->height;
    double sse = 0;
    for (size_t i = 0; i < np; i++) {
        const double ra = iq_px(a, i, 0), ga = iq_px(a, i, 1), ba = iq_px(a, i, 2);
        const double rb = iq_px(b, i, 0), gb = iq_px(b, i, 1), bb = iq_px(b, i, 2);
        const double cba = 128 - 0.168736 * ra - 0.331264 * ga + 0.5 * ba;
        const double cra = 128 + 0.5 * ra - 0.418688 * ga - 0.081312 * ba;
        const double cbb = 128 - 0.168736 * rb - 0.331264 * gb + 0.5 * bb;
        const double crb = 128 + 0.5 * rb - 0.418688 * gb - 0.081312 * bb;
        sse += (cba - cbb) * (cba - cbb) + (cra - crb) * (cra - crb);
    }
    *psnr = psnr_from(sse, 2.0 * (double)np);
    return DR_OK;
}

/* ------------------------------------------------------------------ SSIM */

#define SSIM_WIN   11
#define SSIM_SIGMA 1.5

int dr_eval_ssim(const dr_image *a, const dr_image *b, double *ssim) {
    DR_TRY(iq_check_same_size(a, b, NULL, "SSIM"));
    const int H = a->height, W = a->width;
    int win = SSIM_WIN, small = H < W ? H : W;
    if (small < win) win = small % 2 ? small : small - 1;
    const int r = win / 2, Wv = W - win + 1, Hv = H - win + 1;
    double g[SSIM_WIN], gs = 0;
    for (int k = 0; k < win; k++) {
        g[k] = exp(-(double)(k - r) * (k - r) / (2.0 * SSIM_SIGMA * SSIM_SIGMA));
        gs += g[k];
    }
    for (int k = 0; k < win; k++) g[k] /= gs;
    const double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
    /* ring of the last `win` rows, filtered horizontally: 5 quantities
     * (mean a, mean b, a^2, b^2, ab) x win rows x Wv */
    double *ring = malloc(sizeof(double) * 5 * (size_t)win * Wv);
    double *ya = malloc(sizeof(double) * W), *yb = malloc(sizeof(double) * W);
    if (!ring || !ya || !yb) {
        free(ring);
        free(ya);
        free(yb);
        return error_set(DR_ERR_NOMEM, "SSIM: out of memory for a %dx%d image", W, H);
    }
    const size_t plane = (size_t)win * Wv;
    double total = 0;
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            ya[x] = iq_luma(a, (size_t)y * W + x);
            yb[x] = iq_luma(b, (size_t)y * W + x);
        }
        const size_t slot = (size_t)(y % win) * Wv;
        for (int x = 0; x < Wv; x++) {
            double s[5] = {0, 0, 0, 0, 0};
            for (int k = 0; k < win; k++) {
                const double va = ya[x + k], vb = yb[x + k], w = g[k];
                s[0] += w * va;
                s[1] += w * vb;
                s[2] += w * (va * va);
                s[3] += w * (vb * vb);
                s[4] += w * (va * vb);
            }
            for (int q = 0; q < 5; q++) ring[q * plane + slot + x] = s[q];
        }
        if (y < win - 1) continue;
        const int y0 = y - win + 1; /* the output row: input rows y0 .. y */
        for (int x = 0; x < Wv; x++) {
            double s[5] = {0, 0, 0, 0, 0};
            for (int k = 0; k < win; k++) {
                const size_t o = (size_t)((y0 + k) % win) * Wv + x;
                for (int q = 0; q < 5; q++) s[q] += g[k] * ring[q * plane + o];
            }
            const double ma = s[0], mb = s[1];
            const double va = s[2] - ma * ma, vb = s[3] - mb * mb, cov = s[4] - ma * mb;
            total += ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
        }
    }
    free(ring);
    free(ya);
    free(yb);
    *ssim = total / ((double)Hv * Wv);
    return DR_OK;
}

/* ------------------------------------------------------------------ colour */

int dr_eval_colorfulness(const dr_image *img, double *m) {
    DR_TRY(iq_check_image(img, "the image"));
    const size_t np = (size_t)img->width * img->height;
    double srg = 0, syb = 0;
    for (size_t i = 0; i < np; i++) {
        const double R = iq_px(img, i, 0), G = iq_px(img, i, 1), B = iq_px(img, i, 2);
        srg += R - G;
        syb += 0.5 * (R + G) - B;
    }
    const double mrg = srg / (double)np, myb = syb / (double)np;
    double vrg = 0, vyb = 0; /* two passes: no cancellation */
    for (size_t i = 0; i < np; i++) {
        const double R = iq_px(img, i, 0), G = iq_px(img, i, 1), B = iq_px(img, i, 2);
        const double drg = R - G - mrg, dyb = 0.5 * (R + G) - B - myb;
        vrg += drg * drg;
        vyb += dyb * dyb;
    }
    vrg /= (double)np;
    vyb /= (double)np;
    *m = sqrt(vrg + vyb) + 0.3 * sqrt(mrg * mrg + myb * myb);
    return DR_OK;
}

/* ------------------------------------------------------------------ detail */

/* Mean |grad Y| over the region (forward differences, 0 past the edge);
 * NaN for an empty region. */
static double mean_gradient(const dr_image *im, const dr_image *region) {
    const int H = im->height, W = im->width;
    double sum = 0, count = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const size_t i = (size_t)y * W + x;
            if (!iq_in_region(region, i)) continue;
            const double v = iq_luma(im, i);
            double gsum = 0;
            if (x + 1 < W) gsum += fabs(iq_luma(im, i + 1) - v);
            if (y + 1 < H) gsum += fabs(iq_luma(im, i + (size_t)W) - v);
            sum += gsum;
            count += 1;
        }
    return count > 0 ? sum / count : NAN;
}

int dr_eval_hf_ratio(const dr_image *out, const dr_image *ref, const dr_image *region, double *ratio) {
    DR_TRY(iq_check_same_size(out, ref, region, "high-frequency ratio"));
    const double go = mean_gradient(out, region), gr = mean_gradient(ref, region);
    *ratio = (isnan(go) || isnan(gr) || !(gr > 1e-12)) ? NAN : go / gr;
    return DR_OK;
}

int dr_eval_consistency_psnr(const dr_image *hr, const dr_image *lr, double *psnr) {
    DR_TRY(iq_check_image(hr, "the output"));
    DR_TRY(iq_check_image(lr, "the low-resolution input"));
    if (lr->width > hr->width || lr->height > hr->height)
        return error_set(DR_ERR_INVALID, "consistency: the LR %dx%d is larger than the output %dx%d", lr->width,
                         lr->height, hr->width, hr->height);
    const size_t nh = (size_t)hr->width * hr->height, nl = (size_t)lr->width * lr->height;
    float *up = malloc(sizeof(float) * 3 * nh), *down = malloc(sizeof(float) * 3 * nl);
    if (!up || !down) {
        free(up);
        free(down);
        return error_set(DR_ERR_NOMEM, "consistency: out of memory");
    }
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < nh; i++) up[(size_t)c * nh + i] = (float)(iq_px(hr, i, c) / 127.5 - 1.0);
    int rc = ip_resize(up, 3, hr->height, hr->width, down, lr->height, lr->width);
    if (rc == DR_OK) {
        double sse = 0;
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < nl; i++) {
                const double d = ((double)down[(size_t)c * nl + i] + 1.0) * 127.5 - iq_px(lr, i, c);
                sse += d * d;
            }
        *psnr = psnr_from(sse, 3.0 * (double)nl);
    }
    free(up);
    free(down);
    return rc;
}
