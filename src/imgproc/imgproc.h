/*
 * imgproc.h - the image maths the modes and training share: planar float
 * conversion, BT.601 YCbCr, separable bicubic resampling with explicit
 * weights (so super-resolution can project exactly onto "downscales to the
 * input"), reflection padding, and random hole masks.
 *
 * Planar images are float [C, H, W], row-major, like one sample of an NCHW
 * tensor. "Unit" values are the model's range: v / 127.5 - 1 for 8-bit data
 * (MODEL.md), i.e. -1..1.
 */
#ifndef DR_MODES_IMGPROC_H
#define DR_MODES_IMGPROC_H

#include "common/rng.h"
#include "diffrestore.h"

#include <stddef.h>

/* ---- conversion between dr_image (interleaved uint16, depth 8 or 16) and
 * planar unit floats. Colour channels only: gray -> 1 plane, RGB -> 3; alpha is
 * handled by the caller. to_planar: out [nc, H, W] with nc = 1 for gray(+a)
 * and 3 for RGB(A), value = s / maxval * 2 - 1 (maxval 255 or 65535).
 * from_planar: rounds to nearest, clamps, writes the colour channels of img
 * (img already allocated with the right size/channels/depth; a gray image
 * takes plane 0, an RGB image planes 0..2). */
void ip_to_planar(const dr_image *img, float *out);
void ip_from_planar(const float *in, dr_image *img);
/* gray planes -> RGB planes (copy) */
void ip_gray_to_rgb(const float *gray, float *rgb, size_t npix);

/* ---- YCbCr, BT.601 full range (MODEL.md), on unit values. Planar [3, npix]
 * unit RGB in, with R, G, B = (u + 1) * 127.5; out:
 *   ycc[0] = Y / 127.5 - 1,  ycc[1] = (Cb - 128) / 127.5,  ycc[2] = (Cr - 128) / 127.5
 * with Y = .299R + .587G + .114B, Cb = 128 - .168736R - .331264G + .5B,
 * Cr = 128 + .5R - .418688G - .081312B. ip_ycbcr_to_rgb is the exact inverse
 * of that matrix (not the rounded JPEG constants 1.402, 1.772, ...): the two
 * round-trip to float rounding. Neither clips. */
void ip_rgb_to_ycbcr(const float *rgb, float *ycc, size_t npix);
void ip_ycbcr_to_rgb(const float *ycc, float *rgb, size_t npix);

/* ---- separable bicubic resampling (Keys a = -0.5, i.e. Catmull-Rom),
 * antialiased when downscaling (the kernel is stretched by in/out), edges
 * clamped (weights that fall outside are folded onto the edge sample). Pixel
 * centres are aligned (half-pixel convention, as PIL / OpenCV INTER_CUBIC
 * with antialias / torch antialias=True). Each output sample i is
 * sum_k w[i*taps + k] * in[start[i] + k]. */
typedef struct {
    int in_size, out_size, taps;
    int *start; /* [out_size] */
    float *w;   /* [out_size * taps], each row sums to 1 */
} ip_resampler;

/* in_size, out_size in 1..2^20 (else DR_ERR_INVALID). start[] is
 * non-decreasing and every window lies inside the input. */
int ip_resampler_build(ip_resampler *r, int in_size, int out_size);
void ip_resampler_free(ip_resampler *r);

/* out [C, Ho, Wo] = resample(in [C, H, W]) with ry (H -> Ho) and rx (W -> Wo).
 * tmp: at least C * H * Wo floats. */
void ip_resample(const float *in, float *out, int C, const ip_resampler *ry, const ip_resampler *rx, float *tmp);
/* Convenience: allocates the resamplers and tmp. in and out must not
 * overlap. DR_ERR_INVALID on bad sizes, DR_ERR_NOMEM. */
int ip_resize(const float *in, int C, int H, int W, float *out, int Ho, int Wo);

/* ---- exact projection for super-resolution consistency.
 * D = the downscaler (Ho x Wo -> H x W) built from ry (Ho -> H), rx (Wo -> W).
 * Given x [C, Ho, Wo] and y [C, H, W], replace x by the closest point (in
 * least squares) with D x = y:  x += D^T (D D^T)^{-1} (y - D x).
 * D D^T is separable, (Dy Dy^T) kron (Dx Dx^T); each factor is a small banded
 * SPD matrix solved by banded Cholesky, factored once in ip_projector_build. */
typedef struct {
    ip_resampler dy, dx; /* the downscalers */
    int by, bx;          /* half bandwidths of the Gram matrices */
    double *ly, *lx;     /* banded Cholesky factors */
    int row_bufs;        /* per-thread row buffers in tmp: nn_threads() at build time */
} ip_projector;

/* Needs H_lr <= H_hr and W_lr <= W_hr (DR_ERR_INVALID otherwise);
 * DR_ERR_NUMERIC if a Gram matrix is not positive definite. The projector is
 * built for the thread count in force: ip_project never uses more threads
 * than that for its row buffers. */
int ip_projector_build(ip_projector *p, int H_hr, int W_hr, int H_lr, int W_lr);
void ip_projector_free(ip_projector *p);
/* x [C, H_hr, W_hr], y [C, H_lr, W_lr]; tmp: at least
 * ip_project_tmp_floats(p, C) floats (about a quarter of x at x4, plus one
 * row per thread). If D x already equals y (as ip_resample computes it), x
 * is left bit for bit unchanged. */
size_t ip_project_tmp_floats(const ip_projector *p, int C);
void ip_project(const ip_projector *p, float *x, const float *y, int C, float *tmp);

/* ---- padding: out [C, Hp, Wp] from in [C, H, W] by reflection (no edge
 * repeat: ... 2 1 | 0 1 2 ... | ...), Hp >= H, Wp >= W, padded at the bottom
 * and right only. Works when the pad exceeds the size (reflects repeatedly). */
void ip_pad_reflect(const float *in, int C, int H, int W, float *out, int Hp, int Wp);
void ip_crop(const float *in, int C, int Hp, int Wp, float *out, int H, int W);

/* ---- random hole masks: m [H * W], 1 = hole, 0 = known. Free-form brush
 * strokes (random walks of thick round brushes) and filled boxes, added until
 * the hole reaches a target fraction drawn uniformly in [min_frac, max_frac]
 * (so fractions spread over the range). A piece that would push the hole
 * above max_frac is not drawn, so the result never exceeds max_frac; if an
 * attempt cannot reach min_frac it retries with a thinner brush (bounded),
 * then keeps the fullest attempt. The hole is never empty unless max_frac
 * allows no pixel. Returns the achieved fraction, or -1 on bad arguments
 * (NULL, H or W < 1, min_frac > max_frac or NaN). Deterministic for a given
 * rng state. */
double ip_random_mask(rng_state *rng, float *m, int H, int W, double min_frac, double max_frac);

/* The same contract for masks shaped like old-photo damage (train --masks
 * damage): thin scratches and branching cracks (polylines 1..4 px wide),
 * irregular blotches and stains, free-form brush strokes and boxes, mixed
 * (imgproc_mask.c describes the law). kinds (may be NULL) receives a bit
 * per kind of piece painted: 1 scratch/crack, 2 blotch, 4 brush, 8 box. */
double ip_damage_mask(rng_state *rng, float *m, int H, int W, double min_frac, double max_frac, unsigned *kinds);

#endif
