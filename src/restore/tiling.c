/* tiling.c - the tiles of a canvas and their blend weights (tiling.h). */
#include "restore/tiling.h"

#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void tiling_free(tiling *t) {
    free(t->pos);
    free(t->wy);
    free(t->wx);
    free(t->inv_wsum);
    memset(t, 0, sizeof *t);
}

/* Origins along one axis: tiles of size ts covering [0, n), spaced evenly,
 * snapped to multiples of f (the U-Net's downsampling phase), the last one
 * ending at n. */
static int axis_origins(int n, int ts, int overlap, int f, int *org) {
    if (ts >= n) {
        org[0] = 0;
        return 1;
    }
    const int step = ts - overlap;
    const int cnt = (n - overlap + step - 1) / step;
    for (int i = 0; i < cnt; i++) {
        int o = (int)((double)i * (n - ts) / (cnt - 1) + 0.5);
        o = o / f * f;
        if (i == cnt - 1) o = n - ts;
        org[i] = o;
    }
    return cnt;
}

/* Raised-cosine ramp over the part of the tile that overlaps a neighbour. */
static void axis_weights(float *w, int ts, int origin, int n, int lo_neighbor_end, int hi_neighbor_start) {
    for (int i = 0; i < ts; i++) {
        const int g = origin + i;
        double v = 1.0;
        if (lo_neighbor_end > origin && g < lo_neighbor_end) { /* ramp up across [origin, lo_neighbor_end) */
            double r = (g - origin + 0.5) / (lo_neighbor_end - origin);
            v = fmin(v, 0.5 - 0.5 * cos(M_PI * r));
        }
        if (hi_neighbor_start < origin + ts && g >= hi_neighbor_start) {
            double r = (origin + ts - g - 0.5) / (origin + ts - hi_neighbor_start);
            v = fmin(v, 0.5 - 0.5 * cos(M_PI * r));
        }
        w[i] = (float)fmax(v, 1e-3); /* never exactly 0: every pixel keeps a weight */
        (void)n;
    }
}

int tiling_build(tiling *t, int H, int W, int tile, int overlap, int f) {
    memset(t, 0, sizeof *t);
    int ts = tile / f * f;
    if (ts < f) ts = f;
    int ov = overlap / f * f;
    if (ov >= ts) ov = ts / 2 / f * f;
    t->th = H < ts ? H : ts;
    t->tw = W < ts ? W : ts;
    int oy[4096], ox[4096];
    if (H / (ts - ov > 0 ? ts - ov : 1) > 4000 || W / (ts - ov > 0 ? ts - ov : 1) > 4000)
        return error_set(DR_ERR_LIMIT, "image needs too many tiles; use a larger --tile");
    const int ny = axis_origins(H, t->th, ov, f, oy), nx = axis_origins(W, t->tw, ov, f, ox);
    t->n = ny * nx;
    t->pos = malloc(sizeof(tile_pos) * t->n);
    t->wy = malloc(sizeof(float) * (size_t)t->n * t->th);
    t->wx = malloc(sizeof(float) * (size_t)t->n * t->tw);
    t->inv_wsum = calloc((size_t)H * W, sizeof(float));
    if (!t->pos || !t->wy || !t->wx || !t->inv_wsum) {
        tiling_free(t);
        return error_set(DR_ERR_NOMEM, "out of memory for %d tiles", ny * nx);
    }
    for (int iy = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++) {
            const int k = iy * nx + ix;
            t->pos[k].y0 = oy[iy];
            t->pos[k].x0 = ox[ix];
            axis_weights(t->wy + (size_t)k * t->th, t->th, oy[iy], H, iy > 0 ? oy[iy - 1] + t->th : 0,
                         iy + 1 < ny ? oy[iy + 1] : H);
            axis_weights(t->wx + (size_t)k * t->tw, t->tw, ox[ix], W, ix > 0 ? ox[ix - 1] + t->tw : 0,
                         ix + 1 < nx ? ox[ix + 1] : W);
            for (int y = 0; y < t->th; y++)
                for (int x = 0; x < t->tw; x++)
                    t->inv_wsum[(size_t)(oy[iy] + y) * W + ox[ix] + x] +=
                        t->wy[(size_t)k * t->th + y] * t->wx[(size_t)k * t->tw + x];
        }
    for (size_t i = 0; i < (size_t)H * W; i++) t->inv_wsum[i] = 1.0f / t->inv_wsum[i];
    return DR_OK;
}
