/* imgproc.c - planar conversion, BT.601 YCbCr, bicubic resampling and
 * reflection padding (see imgproc.h). The projector is in imgproc_project.c,
 * the random masks in imgproc_mask.c. */
#include "imgproc/imgproc.h"

#include "common/error.h"
#include "nn/nn.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Sizes above this are a caller bug (or hostile input), not an image. */
#define IP_MAX_SIZE (1 << 20)

/* ------------------------------------------------------------ conversion */

static int colour_planes(int channels) { return channels >= 3 ? 3 : 1; }

void ip_to_planar(const dr_image *img, float *out) {
    const int nc = colour_planes(img->channels), ch = img->channels;
    const size_t npix = (size_t)img->width * img->height;
    /* Double so that 16-bit samples survive the trip through float exactly. */
    const double scale = 2.0 / (img->depth == 16 ? 65535.0 : 255.0);
    for (int c = 0; c < nc; c++) {
        float *o = out + (size_t)c * npix;
        const uint16_t *s = img->data + c;
        for (size_t i = 0; i < npix; i++) o[i] = (float)(s[i * ch] * scale - 1.0);
    }
}

void ip_from_planar(const float *in, dr_image *img) {
    const int nc = colour_planes(img->channels), ch = img->channels;
    const size_t npix = (size_t)img->width * img->height;
    const double maxval = img->depth == 16 ? 65535.0 : 255.0, half = maxval * 0.5;
    for (int c = 0; c < nc; c++) {
        const float *p = in + (size_t)c * npix;
        uint16_t *d = img->data + c;
        for (size_t i = 0; i < npix; i++) {
            double v = ((double)p[i] + 1.0) * half + 0.5;
            /* Written so that NaN lands on 0: converting NaN to an integer is UB. */
            if (!(v >= 0.0)) v = 0.0;
            if (v > maxval) v = maxval;
            d[i * ch] = (uint16_t)v;
        }
    }
}

void ip_gray_to_rgb(const float *gray, float *rgb, size_t npix) {
    for (int c = 0; c < 3; c++) memcpy(rgb + (size_t)c * npix, gray, npix * sizeof(float));
}

/* ------------------------------------------------------------ YCbCr */

/* MODEL.md's matrix. Its Y row sums to 1 and its chroma rows to 0, so on unit
 * values (u = v / 127.5 - 1) the offsets cancel: Y_unit = .299 r + .587 g +
 * .114 b and (Cb - 128) / 127.5 = -.168736 r - .331264 g + .5 b exactly. */
static const double k_fwd[3][3] = {
    {0.299, 0.587, 0.114},
    {-0.168736, -0.331264, 0.5},
    {0.5, -0.418688, -0.081312},
};

void ip_rgb_to_ycbcr(const float *rgb, float *ycc, size_t npix) {
    const float *r = rgb, *g = rgb + npix, *b = rgb + 2 * npix;
    for (size_t i = 0; i < npix; i++) {
        const double R = r[i], G = g[i], B = b[i];
        for (int k = 0; k < 3; k++) ycc[k * npix + i] = (float)(k_fwd[k][0] * R + k_fwd[k][1] * G + k_fwd[k][2] * B);
    }
}

void ip_ycbcr_to_rgb(const float *ycc, float *rgb, size_t npix) {
    /* The exact inverse of k_fwd (the JPEG constants 1.402, 1.772, ... are
     * rounded and would break the round trip at the 1e-4 level). */
    const double(*m)[3] = k_fwd;
    double inv[3][3];
    const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
        m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            /* cofactor of m[j][i], divided by det */
            const int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
            inv[i][j] = (m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]) / det;
        }
    const float *y = ycc, *cb = ycc + npix, *cr = ycc + 2 * npix;
    for (size_t i = 0; i < npix; i++) {
        const double Y = y[i], U = cb[i], V = cr[i];
        for (int k = 0; k < 3; k++) rgb[k * npix + i] = (float)(inv[k][0] * Y + inv[k][1] * U + inv[k][2] * V);
    }
}

/* ------------------------------------------------------------ resampling */

/* Keys' cubic convolution kernel with a = -0.5 (Catmull-Rom). Exactly 0 at
 * |x| = 1 and |x| >= 2, which lets an identity resampler have one tap. */
static double keys_cubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    return 0.0;
}

void ip_resampler_free(ip_resampler *r) {
    if (!r) return;
    free(r->start);
    free(r->w);
    memset(r, 0, sizeof *r);
}

int ip_resampler_build(ip_resampler *r, int in_size, int out_size) {
    if (!r) return error_set(DR_ERR_INVALID, "resampler: NULL argument");
    memset(r, 0, sizeof *r);
    if (in_size < 1 || out_size < 1 || in_size > IP_MAX_SIZE || out_size > IP_MAX_SIZE)
        return error_set(DR_ERR_INVALID, "resampler: bad sizes %d -> %d (must be 1..%d)", in_size, out_size,
                         IP_MAX_SIZE);
    const double scale = (double)in_size / out_size;
    /* Downscaling stretches the kernel by the factor (antialiasing); upscaling
     * samples plain bicubic. */
    const double stretch = scale > 1.0 ? scale : 1.0, support = 2.0 * stretch;
    /* Widest possible row before clamping: every integer within +-support. */
    const int maxn = (int)floor(2.0 * support) + 2;
    double *wd = malloc((size_t)out_size * maxn * sizeof(double));
    int *first = malloc((size_t)out_size * sizeof(int));
    int *last = malloc((size_t)out_size * sizeof(int));
    if (!wd || !first || !last) {
        free(wd), free(first), free(last);
        return error_set(DR_ERR_NOMEM, "resampler %d -> %d: out of memory", in_size, out_size);
    }

    /* Pass 1: each row's weights in double, folded onto the edge samples,
     * trimmed of exact zeros at both ends, normalised to sum 1. */
    for (int i = 0; i < out_size; i++) {
        const double center = (i + 0.5) * scale - 0.5;
        int lo = (int)ceil(center - support), hi = (int)floor(center + support);
        const int clo = lo < 0 ? 0 : lo > in_size - 1 ? in_size - 1 : lo;
        const int chi = hi < 0 ? 0 : hi > in_size - 1 ? in_size - 1 : hi;
        double *w = wd + (size_t)i * maxn;
        for (int k = 0; k <= chi - clo; k++) w[k] = 0.0;
        for (int j = lo; j <= hi; j++) {
            const int jc = j < 0 ? 0 : j > in_size - 1 ? in_size - 1 : j;
            w[jc - clo] += keys_cubic((j - center) / stretch);
        }
        int f = 0, l = chi - clo;
        while (f < l && w[f] == 0.0) f++;
        while (l > f && w[l] == 0.0) l--;
        double sum = 0.0;
        for (int k = f; k <= l; k++) sum += w[k];
        /* The kernel's integer samples sum to about `stretch` > 0, and folding
         * keeps every weight, so sum is never near 0. */
        for (int k = f; k <= l; k++) w[k] /= sum;
        if (f > 0) memmove(w, w + f, (size_t)(l - f + 1) * sizeof(double));
        first[i] = clo + f;
        last[i] = clo + l;
    }

    /* Starts must be non-decreasing (the projector relies on it to find which
     * rows overlap): take the suffix minimum, padding with leading zeros. */
    int taps = 1;
    int *st = malloc((size_t)out_size * sizeof(int));
    if (!st) {
        free(wd), free(first), free(last);
        return error_set(DR_ERR_NOMEM, "resampler %d -> %d: out of memory", in_size, out_size);
    }
    for (int i = out_size - 1, m = INT32_MAX; i >= 0; i--) {
        if (first[i] < m) m = first[i];
        st[i] = m;
        if (last[i] - st[i] + 1 > taps) taps = last[i] - st[i] + 1;
    }
    r->in_size = in_size;
    r->out_size = out_size;
    r->taps = taps;
    r->start = st;
    r->w = calloc((size_t)out_size * taps, sizeof(float));
    if (!r->w) {
        free(wd), free(first), free(last);
        ip_resampler_free(r);
        return error_set(DR_ERR_NOMEM, "resampler %d -> %d: out of memory", in_size, out_size);
    }
    for (int i = 0; i < out_size; i++) {
        /* Keep every row's window inside the input (taps <= in_size always). */
        if (st[i] > in_size - taps) st[i] = in_size - taps;
        const int off = first[i] - st[i];
        const double *w = wd + (size_t)i * maxn;
        for (int k = 0; k <= last[i] - first[i]; k++) r->w[(size_t)i * taps + off + k] = (float)w[k];
    }
    free(wd), free(first), free(last);
    return DR_OK;
}

/* Along the last axis: out [nrows, r->out_size] from in [nrows, r->in_size]. */
static void resample_rows(const float *in, float *out, size_t nrows, const ip_resampler *r) {
    const int ni = r->in_size, no = r->out_size, taps = r->taps;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (long long row = 0; row < (long long)nrows; row++) {
        const float *src = in + (size_t)row * ni;
        float *dst = out + (size_t)row * no;
        for (int o = 0; o < no; o++) {
            const float *w = r->w + (size_t)o * taps, *s = src + r->start[o];
            float acc = 0.0f;
            for (int k = 0; k < taps; k++) acc += w[k] * s[k];
            dst[o] = acc;
        }
    }
}

/* Along the middle axis: out [C, r->out_size, W] from in [C, r->in_size, W].
 * Whole rows are combined, so the inner loop runs along contiguous memory. */
static void resample_cols(const float *in, float *out, int C, int W, const ip_resampler *r) {
    const int ni = r->in_size, no = r->out_size, taps = r->taps;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (long long co = 0; co < (long long)C * no; co++) {
        const int c = (int)(co / no), o = (int)(co % no);
        const float *w = r->w + (size_t)o * taps;
        const float *src = in + ((size_t)c * ni + r->start[o]) * W;
        float *dst = out + (size_t)co * W;
        for (int j = 0; j < W; j++) dst[j] = 0.0f;
        for (int k = 0; k < taps; k++) {
            const float wk = w[k];
            const float *s = src + (size_t)k * W;
#pragma omp simd /* dst and src never overlap; element-wise, no reassociation */
            for (int j = 0; j < W; j++) dst[j] += wk * s[j];
        }
    }
}

void ip_resample(const float *in, float *out, int C, const ip_resampler *ry, const ip_resampler *rx, float *tmp) {
    const int H = ry->in_size, Ho = ry->out_size, W = rx->in_size, Wo = rx->out_size;
    /* The along-row pass is a gather that does not vectorise; the column pass
     * runs along contiguous rows and does. So when downscaling vertically,
     * shrink the columns first (fewer rows left to gather over), provided the
     * intermediate [C, Ho, W] fits the documented tmp size C * H * Wo. The
     * choice depends on the sizes only, so results stay reproducible. */
    if (Ho < H && (size_t)Ho * W <= (size_t)H * Wo) {
        resample_cols(in, tmp, C, W, ry);
        resample_rows(tmp, out, (size_t)C * Ho, rx);
    } else {
        resample_rows(in, tmp, (size_t)C * H, rx);
        resample_cols(tmp, out, C, Wo, ry);
    }
}

int ip_resize(const float *in, int C, int H, int W, float *out, int Ho, int Wo) {
    if (!in || !out) return error_set(DR_ERR_INVALID, "resize: NULL buffer");
    if (C < 1 || C > 4096) return error_set(DR_ERR_INVALID, "resize: bad channel count %d", C);
    ip_resampler ry, rx;
    int rc = ip_resampler_build(&ry, H, Ho);
    if (rc != DR_OK) return error_prefix(rc, "resize %dx%d -> %dx%d", W, H, Wo, Ho);
    rc = ip_resampler_build(&rx, W, Wo);
    if (rc != DR_OK) {
        ip_resampler_free(&ry);
        return error_prefix(rc, "resize %dx%d -> %dx%d", W, H, Wo, Ho);
    }
    if (H == Ho && W == Wo) {
        memcpy(out, in, (size_t)C * H * W * sizeof(float));
    } else {
        const size_t n = (size_t)C * H * Wo; /* each factor <= 2^20, C <= 2^12: no overflow in 64 bits */
        if (n > SIZE_MAX / sizeof(float)) rc = error_set(DR_ERR_LIMIT, "resize: image too large");
        float *tmp = rc == DR_OK ? malloc(n * sizeof(float)) : NULL;
        if (rc == DR_OK && !tmp) rc = error_set(DR_ERR_NOMEM, "resize %dx%d -> %dx%d: out of memory", W, H, Wo, Ho);
        if (rc == DR_OK) ip_resample(in, out, C, &ry, &rx, tmp);
        free(tmp);
    }
    ip_resampler_free(&ry);
    ip_resampler_free(&rx);
    return rc;
}

/* ------------------------------------------------------------ padding */

/* Mirror without repeating the edge: period 2 (n - 1), so any i >= 0 maps
 * inside even when the pad is many times the size. */
static int reflect_index(int i, int n) {
    if (n == 1) return 0;
    const int period = 2 * (n - 1);
    i %= period;
    return i < n ? i : period - i;
}

void ip_pad_reflect(const float *in, int C, int H, int W, float *out, int Hp, int Wp) {
    for (int c = 0; c < C; c++)
        for (int y = 0; y < Hp; y++) {
            const float *src = in + ((size_t)c * H + reflect_index(y, H)) * W;
            float *dst = out + ((size_t)c * Hp + y) * Wp;
            const int n = W < Wp ? W : Wp;
            memcpy(dst, src, (size_t)n * sizeof(float));
            for (int x = n; x < Wp; x++) dst[x] = src[reflect_index(x, W)];
        }
}

void ip_crop(const float *in, int C, int Hp, int Wp, float *out, int H, int W) {
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            memcpy(out + ((size_t)c * H + y) * W, in + ((size_t)c * Hp + y) * Wp, (size_t)W * sizeof(float));
}
