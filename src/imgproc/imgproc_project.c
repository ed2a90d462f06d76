/* imgproc_project.c - exact projection onto {x : D x = y} for the
 * super-resolution guarantee (MODEL.md: downscaling the output gives back the
 * input). See imgproc.h.
 *
 * D = Dy (x) Dx acts on an HR image X [Ho, Wo] as Dy X Dx^T, so
 * D D^T = (Dy Dy^T) (x) (Dx Dx^T) and its inverse is Gy^-1 (x) Gx^-1: the
 * correction is X += Dy^T (Gy^-1 R Gx^-1) Dx with R = Y - Dy X Dx^T.
 * Each Gram matrix is banded (two LR rows interact only if their supports
 * overlap), symmetric positive definite, and factored once by a banded
 * Cholesky in double. */
#include "imgproc/imgproc.h"

#include "common/error.h"
#include "nn/nn.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Banded storage: row i holds L(i, i - k) at [i * (b + 1) + k], k = 0..b. */
#define LB(L, b, i, j) ((L)[(size_t)(i) * ((b) + 1) + ((i) - (j))])

/* Half bandwidth of D D^T: the furthest row whose window still overlaps.
 * Starts are non-decreasing (ip_resampler_build guarantees it), so a sweep
 * with two pointers finds it. */
static int gram_bandwidth(const ip_resampler *r) {
    int b = 0;
    for (int i = 0, i2 = 0; i < r->out_size; i++) {
        if (i2 < i) i2 = i;
        while (i2 + 1 < r->out_size && r->start[i2 + 1] < r->start[i] + r->taps) i2++;
        if (i2 - i > b) b = i2 - i;
    }
    return b;
}

/* Factor G = D D^T (from the float weights D actually uses) into *out. */
static int gram_cholesky(const ip_resampler *r, int b, double **out) {
    const int n = r->out_size, taps = r->taps;
    double *L = malloc((size_t)n * (b + 1) * sizeof(double));
    if (!L) return error_set(DR_ERR_NOMEM, "projector: out of memory (%d x %d band)", n, b + 1);
    for (int i = 0; i < n; i++) {
        const int j0 = i - b < 0 ? 0 : i - b;
        for (int j = j0; j <= i; j++) {
            /* G(i, j): overlap of the two windows. */
            double g = 0.0;
            const int si = r->start[i], sj = r->start[j];
            const int lo = si > sj ? si : sj;
            const int hi = (si < sj ? si : sj) + taps; /* exclusive; windows have equal length */
            for (int t = lo; t < hi; t++)
                g += (double)r->w[(size_t)i * taps + (t - si)] * r->w[(size_t)j * taps + (t - sj)];
            for (int p = j0; p < j; p++) g -= LB(L, b, i, p) * LB(L, b, j, p);
            if (j < i) {
                LB(L, b, i, j) = g / LB(L, b, j, j);
            } else {
                /* A Gram matrix of independent rows has pivots well above 0;
                 * a tiny one means D has (nearly) dependent rows. */
                double diag = 0.0;
                for (int k = 0; k < taps; k++) diag += (double)r->w[(size_t)i * taps + k] * r->w[(size_t)i * taps + k];
                if (!(g > 1e-10 * diag)) {
                    free(L);
                    return error_set(DR_ERR_NUMERIC,
                                     "projector: Gram matrix of the %d -> %d downscaler is not positive "
                                     "definite (row %d)",
                                     r->in_size, n, i);
                }
                LB(L, b, i, i) = sqrt(g);
            }
        }
    }
    *out = L;
    return DR_OK;
}

void ip_projector_free(ip_projector *p) {
    if (!p) return;
    ip_resampler_free(&p->dy);
    ip_resampler_free(&p->dx);
    free(p->ly);
    free(p->lx);
    memset(p, 0, sizeof *p);
}

int ip_projector_build(ip_projector *p, int H_hr, int W_hr, int H_lr, int W_lr) {
    if (!p) return error_set(DR_ERR_INVALID, "projector: NULL argument");
    memset(p, 0, sizeof *p);
    p->row_bufs = nn_threads();
    /* A D with more rows than columns cannot have D D^T invertible. */
    if (H_lr > H_hr || W_lr > W_hr)
        return error_set(DR_ERR_INVALID, "projector: LR %dx%d is larger than HR %dx%d", W_lr, H_lr, W_hr, H_hr);
    int rc = ip_resampler_build(&p->dy, H_hr, H_lr);
    if (rc == DR_OK) rc = ip_resampler_build(&p->dx, W_hr, W_lr);
    if (rc == DR_OK) {
        p->by = gram_bandwidth(&p->dy);
        p->bx = gram_bandwidth(&p->dx);
        rc = gram_cholesky(&p->dy, p->by, &p->ly);
    }
    if (rc == DR_OK) rc = gram_cholesky(&p->dx, p->bx, &p->lx);
    if (rc != DR_OK) {
        ip_projector_free(p);
        return error_prefix(rc, "projector %dx%d -> %dx%d", W_hr, H_hr, W_lr, H_lr);
    }
    return DR_OK;
}

/* Solve G z = r in place for every column of z [C, n, W] (G = L L^T, n x n).
 * Columns are processed in blocks so the inner loops run along rows; sums in
 * double, storage in float. */
#define COL_BLOCK 64
static void solve_cols(float *z, int C, int n, int W, const double *L, int b) {
    const int nblk = (W + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (long long cb = 0; cb < (long long)C * nblk; cb++) {
        const int c = (int)(cb / nblk), j0 = (int)(cb % nblk) * COL_BLOCK;
        const int nj = W - j0 < COL_BLOCK ? W - j0 : COL_BLOCK;
        float *zc = z + (size_t)c * n * W + j0;
        double acc[COL_BLOCK];
        for (int i = 0; i < n; i++) { /* L w = r */
            float *zi = zc + (size_t)i * W;
            for (int j = 0; j < nj; j++) acc[j] = zi[j];
            for (int p = i - b < 0 ? 0 : i - b; p < i; p++) {
                const double l = LB(L, b, i, p);
                const float *zp = zc + (size_t)p * W;
#pragma omp simd
                for (int j = 0; j < nj; j++) acc[j] -= l * zp[j];
            }
            const double d = LB(L, b, i, i);
            for (int j = 0; j < nj; j++) zi[j] = (float)(acc[j] / d);
        }
        for (int i = n - 1; i >= 0; i--) { /* L^T z = w */
            float *zi = zc + (size_t)i * W;
            for (int j = 0; j < nj; j++) acc[j] = zi[j];
            const int q1 = i + b < n - 1 ? i + b : n - 1;
            for (int q = i + 1; q <= q1; q++) {
                const double l = LB(L, b, q, i);
                const float *zq = zc + (size_t)q * W;
#pragma omp simd
                for (int j = 0; j < nj; j++) acc[j] -= l * zq[j];
            }
            const double d = LB(L, b, i, i);
            for (int j = 0; j < nj; j++) zi[j] = (float)(acc[j] / d);
        }
    }
}

/* Solve G z = r in place along every row of z [nrows, n]. */
static void solve_rows(float *z, size_t nrows, int n, const double *L, int b) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (long long row = 0; row < (long long)nrows; row++) {
        float *zr = z + (size_t)row * n;
        for (int i = 0; i < n; i++) {
            double acc = zr[i];
            for (int p = i - b < 0 ? 0 : i - b; p < i; p++) acc -= LB(L, b, i, p) * zr[p];
            zr[i] = (float)(acc / LB(L, b, i, i));
        }
        for (int i = n - 1; i >= 0; i--) {
            double acc = zr[i];
            const int q1 = i + b < n - 1 ? i + b : n - 1;
            for (int q = i + 1; q <= q1; q++) acc -= LB(L, b, q, i) * zr[q];
            zr[i] = (float)(acc / LB(L, b, i, i));
        }
    }
}

/* out [nrows, r->in_size] = in [nrows, r->out_size] times D (i.e. D^T applied
 * to each row). A scatter, but each row belongs to one thread. */
static void adjoint_rows(const float *in, float *out, size_t nrows, const ip_resampler *r) {
    const int ni = r->in_size, no = r->out_size, taps = r->taps;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (long long row = 0; row < (long long)nrows; row++) {
        const float *src = in + (size_t)row * no;
        float *dst = out + (size_t)row * ni;
        for (int j = 0; j < ni; j++) dst[j] = 0.0f;
        for (int o = 0; o < no; o++) {
            const float *w = r->w + (size_t)o * taps;
            float *d = dst + r->start[o];
            const float v = src[o];
            for (int k = 0; k < taps; k++) d[k] += w[k] * v;
        }
    }
}

/* First output row whose window ends after input row k (starts are sorted). */
static int first_covering(const ip_resampler *r, int k) {
    int lo = 0, hi = r->out_size; /* answer in [lo, hi] */
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (r->start[mid] + r->taps > k)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* x [C, r->in_size, W] += D^T applied along the middle axis of
 * in [C, r->out_size, W]. Written as a gather over the LR rows whose window
 * covers each HR row, so every output row has one owner and a fixed order.
 * Each row is summed from zero in a per-thread row buffer (rowbuf:
 * nbufs rows of W) and then added to x, so no full-size copy of the
 * correction is needed. */
static void adjoint_cols_add(const float *in, float *x, int C, int W, const ip_resampler *r, float *rowbuf, int nbufs) {
    const int ni = r->in_size, no = r->out_size, taps = r->taps;
    const int nt = nn_threads() < nbufs ? nn_threads() : nbufs; /* never more threads than buffers */
#pragma omp parallel for schedule(static) num_threads(nt > 0 ? nt : 1)
    for (long long ck = 0; ck < (long long)C * ni; ck++) {
        const int c = (int)(ck / ni), k = (int)(ck % ni);
        float *dst = rowbuf + (size_t)omp_get_thread_num() * W;
        for (int j = 0; j < W; j++) dst[j] = 0.0f;
        for (int o = first_covering(r, k); o < no && r->start[o] <= k; o++) {
            const float w = r->w[(size_t)o * taps + (k - r->start[o])];
            if (w == 0.0f) continue;
            const float *s = in + ((size_t)c * no + o) * W;
#pragma omp simd /* dst and src never overlap; element-wise, no reassociation */
            for (int j = 0; j < W; j++) dst[j] += w * s[j];
        }
        float *xr = x + (size_t)ck * W;
        for (int j = 0; j < W; j++) xr[j] += dst[j];
    }
}

size_t ip_project_tmp_floats(const ip_projector *p, int C) {
    const size_t Ho = (size_t)p->dy.in_size, Wo = (size_t)p->dx.in_size, H = (size_t)p->dy.out_size,
                 W = (size_t)p->dx.out_size;
    const size_t a1 = C * Ho * W, a2 = C * H * Wo; /* ip_resample's intermediate; D^T along rows */
    return (a1 > a2 ? a1 : a2) + C * H * W + (size_t)p->row_bufs * Wo;
}

void ip_project(const ip_projector *p, float *x, const float *y, int C, float *tmp) {
    const int Ho = p->dy.in_size, Wo = p->dx.in_size, H = p->dy.out_size, W = p->dx.out_size;
    const size_t nlr = (size_t)C * H * W, na1 = (size_t)C * Ho * W, na2 = (size_t)C * H * Wo;
    /* tmp: a (ip_resample's intermediate, then D^T along rows), r (LR), row buffers */
    float *a = tmp, *r = tmp + (na1 > na2 ? na1 : na2), *rows = r + nlr;

    /* r = y - D x, with the very same arithmetic as ip_resample so that an x
     * already consistent with y gives r = 0 exactly and is left untouched. */
    ip_resample(x, r, C, &p->dy, &p->dx, a);
    int any = 0;
    for (size_t i = 0; i < nlr; i++) {
        r[i] = y[i] - r[i];
        any |= r[i] != 0.0f;
    }
    if (!any) return;

    /* r' = Gy^-1 r Gx^-1 */
    solve_cols(r, C, H, W, p->ly, p->by);
    solve_rows(r, (size_t)C * H, W, p->lx, p->bx);

    /* x += Dy^T r' Dx */
    adjoint_rows(r, a, (size_t)C * H, &p->dx); /* a: [C, H, Wo] */
    adjoint_cols_add(a, x, C, Wo, &p->dy, rows, p->row_bufs);
}
