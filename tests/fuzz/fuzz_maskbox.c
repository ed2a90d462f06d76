/* fuzz_maskbox.c - inpainting masks from untrusted sizes and strings.
 *
 *  1. cli_parse_box (src/cli/boxparse.c, the inpaint command's --box parser)
 *     on the whole input as a string: on success the values obey the
 *     documented bounds and print back to a string that parses to the same
 *     values.
 *  2. The input split at ';' and newlines into up to 16 box strings, parsed
 *     the same way and rasterised into a 1-channel 8-bit dr_image of a small
 *     size taken from the input (1..64 x 1..64), with the clipping of the
 *     inpaint command's build_mask (src/cli/cmd_restore.c; it is static there,
 *     so rasterise() below mirrors it line for line: keep the two in step).
 *     Checked against a per-pixel oracle: hole pixels are exactly the pixels
 *     inside some box, and a box that misses the image is reported.
 *  3. ip_random_mask (src/imgproc/imgproc_mask.c, the training and eval hole
 *     generator) with a small size, fractions (including out-of-range, crossed
 *     and NaN ones) and a seed taken from the input, against its contract in
 *     src/imgproc/imgproc.h. */
#include "fuzz.h"

#include "cli/boxparse.h"
#include "common/rng.h"
#include "diffrestore.h"
#include "imgproc/imgproc.h"

#include <math.h>
#include <string.h>

#define MAX_BOXES 16
#define MAX_SIDE  64

typedef struct {
    long long x, y, w, h; /* as cmd_restore.c stores them */
} box;

static int in_range(int v) { return v >= -1000000000 && v <= 1000000000; }

static void check_parse(const char *s) {
    int x = 7, y = 7, w = 7, h = 7;
    if (!cli_parse_box(s, &x, &y, &w, &h)) {
        FUZZ_CHECK(x == 7 && y == 7 && w == 7 && h == 7); /* untouched on failure */
        return;
    }
    FUZZ_CHECK(in_range(x) && in_range(y) && in_range(w) && in_range(h));
    FUZZ_CHECK(w > 0 && h > 0);
    char buf[64];
    snprintf(buf, sizeof buf, "%d,%d,%d,%d", x, y, w, h);
    int x2, y2, w2, h2;
    FUZZ_CHECK(cli_parse_box(buf, &x2, &y2, &w2, &h2));
    FUZZ_CHECK(x2 == x && y2 == y && w2 == w && h2 == h);
}

/* build_mask's --box branch. Returns the hole count, or -1 when a box lies
 * outside the image (the command fails the item). */
static long long rasterise(const box *boxes, int n_boxes, dr_image *mask) {
    for (int i = 0; i < n_boxes; i++) {
        const box *b = &boxes[i];
        long long x0 = b->x < 0 ? 0 : b->x, y0 = b->y < 0 ? 0 : b->y;
        long long x1 = b->x + b->w > mask->width ? mask->width : b->x + b->w;
        long long y1 = b->y + b->h > mask->height ? mask->height : b->y + b->h;
        if (x1 <= x0 || y1 <= y0) return -1;
        for (long long yy = y0; yy < y1; yy++)
            for (long long xx = x0; xx < x1; xx++) mask->data[yy * mask->width + xx] = 255;
    }
    long long h = 0, n = (long long)mask->width * mask->height;
    for (long long i = 0; i < n; i++) h += mask->data[i] != 0;
    return h;
}

static void check_boxes(const char *s, int W, int H) {
    box boxes[MAX_BOXES];
    int n = 0;
    char piece[128];
    const char *p = s;
    while (n < MAX_BOXES) {
        size_t len = strcspn(p, ";\n");
        if (len < sizeof piece) {
            memcpy(piece, p, len);
            piece[len] = 0;
            int x, y, w, h;
            if (cli_parse_box(piece, &x, &y, &w, &h)) boxes[n++] = (box){x, y, w, h};
        }
        if (!p[len]) break;
        p += len + 1;
    }
    if (n == 0) return;
    dr_image mask;
    FUZZ_CHECK(dr_image_alloc(&mask, W, H, 1, 8) == DR_OK);
    long long holes = rasterise(boxes, n, &mask);
    int any_outside = 0;
    for (int i = 0; i < n; i++) {
        const box *b = &boxes[i];
        if (b->x >= W || b->y >= H || b->x + b->w <= 0 || b->y + b->h <= 0) any_outside = 1;
    }
    if (any_outside) {
        FUZZ_CHECK(holes == -1);
    } else {
        long long expect = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int inside = 0;
                for (int i = 0; i < n && !inside; i++)
                    inside = x >= boxes[i].x && x < boxes[i].x + boxes[i].w && y >= boxes[i].y &&
                        y < boxes[i].y + boxes[i].h;
                FUZZ_CHECK(mask.data[(size_t)y * W + x] == (inside ? 255 : 0));
                expect += inside;
            }
        FUZZ_CHECK(holes == expect && holes > 0);
    }
    dr_image_free(&mask);
}

static uint64_t fnv1a(const uint8_t *d, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ d[i]) * 1099511628211ULL;
    return h;
}

static double frac_of(uint8_t b) {
    if (b == 0xFF) return NAN;
    return b / 200.0 - 0.1; /* -0.1 .. 1.17 */
}

static void check_random_mask(const uint8_t *data, size_t size) {
    if (size < 4) return;
    const int H = 1 + data[0] % MAX_SIDE, W = 1 + data[1] % MAX_SIDE;
    const double lo = frac_of(data[2]), hi = frac_of(data[3]);
    rng_state rng;
    rng_seed(&rng, fnv1a(data, size));
    float m[MAX_SIDE * MAX_SIDE];
    const int64_t npix = (int64_t)H * W;
    for (int64_t i = 0; i < npix; i++) m[i] = -7.0f;
    double f = ip_random_mask(&rng, m, H, W, lo, hi);
    const double clo = lo < 0 ? 0 : lo, chi = hi > 1 ? 1 : hi;
    if (!(lo <= hi) || !(clo <= chi)) {
        FUZZ_CHECK(f == -1.0);
        return;
    }
    FUZZ_CHECK(f >= 0.0 && f <= 1.0);
    int64_t count = 0;
    for (int64_t i = 0; i < npix; i++) {
        FUZZ_CHECK(m[i] == 0.0f || m[i] == 1.0f);
        count += m[i] == 1.0f;
    }
    FUZZ_CHECK(f == (double)count / (double)npix);
    const int64_t max_count = (int64_t)floor(chi * (double)npix);
    FUZZ_CHECK(count <= max_count);            /* never above max_frac */
    if (max_count >= 1) FUZZ_CHECK(count > 0); /* never empty unless max_frac allows no pixel */
    /* Deterministic for a given rng state. */
    rng_state rng2;
    rng_seed(&rng2, fnv1a(data, size));
    float m2[MAX_SIDE * MAX_SIDE];
    FUZZ_CHECK(ip_random_mask(&rng2, m2, H, W, lo, hi) == f);
    FUZZ_CHECK(memcmp(m, m2, (size_t)npix * sizeof *m) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    check_parse(s);
    const int W = size ? 1 + data[0] % MAX_SIDE : 8, H = size ? 1 + data[size - 1] % MAX_SIDE : 8;
    check_boxes(s, W, H);
    free(s);
    check_random_mask(data, size);
    return 0;
}
