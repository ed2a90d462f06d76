/*
 * imgproc_guided.h - colour at a working resolution: the working size of an
 * image, and guided upsampling of low-resolution planes (the chroma predicted
 * there) to full resolution with the full-resolution luma as the guide.
 *
 * Guided upsampling is the fast guided filter (He & Sun 2015, "Fast Guided
 * Filter", arXiv:1505.00996) built on the guided filter of He, Sun & Tang
 * (ECCV 2010 / TPAMI 2013). At low resolution, over every window of
 * (2r + 1)^2 pixels, the planes p are fitted as an affine function of the
 * guide I:
 *     a = cov(I, p) / (var(I) + eps),   b = mean(p) - a mean(I)
 * (window means over the pixels inside the image: the box sum divided by the
 * count of pixels it covers). a and b are averaged over the same windows
 * (A, B), upsampled bilinearly (half-pixel centres, edges clamped: PyTorch's
 * interpolate(mode="bilinear", align_corners=False)) and applied to the
 * full-resolution guide:  q = up(A) * I_full + up(B).
 * O(N): box sums by summed-area tables at low resolution, one pass at full
 * resolution. Statistics are accumulated in double.
 */
#ifndef DR_MODES_IMGPROC_GUIDED_H
#define DR_MODES_IMGPROC_GUIDED_H

#include <stddef.h>

/* Defaults of restore (docs/TUNING.md, "Colorize at a working resolution"):
 * the window radius in low-resolution pixels and eps on unit values (-1..1). */
#define IP_GUIDED_RADIUS 1
#define IP_GUIDED_EPS    1e-2

/* The working size of an h x w image for a long side of R: unchanged when
 * R <= 0 or max(h, w) <= R (never upscaled); otherwise the long side becomes
 * R and the short one round(short * R / long), at least 1. */
void ip_render_dims(int h, int w, int R, int *hr, int *wr);

/* q [C, H, W] from p_lo [C, h, w], the guide at low resolution g_lo [h, w]
 * and at full resolution g [H, W] (H >= h, W >= w not required, but that is
 * the use). radius >= 0, eps > 0. DR_ERR_INVALID on bad arguments,
 * DR_ERR_NOMEM. Deterministic and independent of the thread count. */
int ip_guided_upsample(const float *g_lo, const float *p_lo, int C, int h, int w, const float *g, int H, int W,
                       int radius, double eps, float *q);

#endif
