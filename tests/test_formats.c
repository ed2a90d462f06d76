/* TIFF and WebP input/output and EXIF orientation (TIFF, WebP, PNG eXIf, JPEG), on the committed
 * fixtures of data/formats/ (made by Pillow, tiffcp and a hand-written
 * TIFF; see make_fixtures.py there) and on round trips through the encoders. */
#include "testutil.h"

#include "diffrestore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX DR_TEST_DATA "/formats/"
enum { W = 7, H = 5 };

static unsigned v8(int x, int y, int c) { return (unsigned)(x * 37 + y * 11 + c * 50) % 256; }
static unsigned v16(int x, int y, int c) { return (v8(x, y, c) * 257 + (unsigned)x) & 0xFFFF; }

/* Largest |difference| between img and the pattern in channels 0..nc-1
 * (pattern channel pc[k] for image channel k), -1 on a size mismatch. */
static long pattern_diff(const dr_image *img, int depth16) {
    if (img->width != W || img->height != H) return -1;
    long worst = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < img->channels; c++) {
                long want = depth16 ? v16(x, y, c) : v8(x, y, c);
                long d = labs((long)img->data[((size_t)y * W + x) * img->channels + c] - want);
                if (d > worst) worst = d;
            }
    return worst;
}

static long image_diff(const dr_image *a, const dr_image *b) {
    if (a->width != b->width || a->height != b->height || a->channels != b->channels) return -1;
    long worst = 0;
    for (size_t i = 0, n = (size_t)a->width * a->height * a->channels; i < n; i++) {
        long d = labs((long)a->data[i] - (long)b->data[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

static void check_fixture(const char *file, int channels, int depth, long tol) {
    char path[512];
    snprintf(path, sizeof path, FIX "%s", file);
    dr_image img;
    dr_image_info info;
    int rc = dr_image_load(path, 0, &img, &info);
    CHECK(rc == DR_OK, "%s loads: %s", file, dr_last_error());
    if (rc != DR_OK) return;
    CHECK(img.channels == channels && img.depth == depth, "%s: %d channels %d-bit, want %d %d-bit", file, img.channels,
          img.depth, channels, depth);
    long d = pattern_diff(&img, depth == 16);
    CHECK(d >= 0 && d <= tol, "%s: pixels differ from the pattern by %ld (tolerance %ld)", file, d, tol);
    dr_image_info probe;
    CHECK(dr_image_probe(path, &probe) == DR_OK && probe.width == img.width && probe.height == img.height &&
              probe.channels == img.channels && probe.depth == img.depth,
          "%s: probe agrees with the decode", file);
    dr_image_free(&img);
}

static void test_tiff_read(void) {
    check_fixture("gray16_lzw.tif", 1, 16, 0);
    check_fixture("graya16_lzw.tif", 2, 16, 0);
    check_fixture("rgb16_lzw.tif", 3, 16, 0);
    check_fixture("rgba16_lzw.tif", 4, 16, 0);
    check_fixture("rgb16_tiled_deflate.tif", 3, 16, 0);
    check_fixture("gray8_none.tif", 1, 8, 0);
    check_fixture("graya8_none.tif", 2, 8, 0);
    check_fixture("rgb8_packbits.tif", 3, 8, 0);
    check_fixture("rgba8_deflate.tif", 4, 8, 0);
    check_fixture("palette8.tif", 3, 8, 0);
    check_fixture("multipage.tif", 3, 8, 0); /* the first page */
    dr_image_info info;
    CHECK(dr_image_probe(FIX "rgb16_lzw.tif", &info) == DR_OK && info.format == DR_FORMAT_TIFF, "TIFF format reported");
    /* JPEG-in-TIFF: 16x16, lossy. */
    dr_image img;
    CHECK(dr_image_load(FIX "rgb8_jpeg.tif", 0, &img, NULL) == DR_OK && img.width == 16 && img.height == 16 &&
              img.channels == 3,
          "JPEG-in-TIFF loads: %s", dr_last_error());
    dr_image_free(&img);
}

static void test_webp_read(void) {
    check_fixture("rgba8_lossless.webp", 4, 8, 0);
    check_fixture("rgb8_lossless.webp", 3, 8, 0);
    dr_image img;
    dr_image_info info;
    CHECK(dr_image_load(FIX "rgb8_lossy.webp", 0, &img, &info) == DR_OK && img.width == 32 && img.height == 24 &&
              img.channels == 3 && info.format == DR_FORMAT_WEBP,
          "lossy WebP loads: %s", dr_last_error());
    dr_image_free(&img);
}

/* Write img to name in the temp dir, read it back. */
static int round_trip(const dr_image *img, const char *name, int webp_quality, dr_image *back) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    unlink(path);
    dr_save_options o;
    dr_save_options_init(&o);
    o.webp_quality = webp_quality;
    int rc = dr_image_save(path, img, &o);
    CHECK(rc == DR_OK, "save %s: %s", name, dr_last_error());
    if (rc != DR_OK) return rc;
    rc = dr_image_load(path, 0, back, NULL);
    CHECK(rc == DR_OK, "load %s: %s", name, dr_last_error());
    return rc;
}

static void make_pattern(dr_image *img, int channels, int depth) {
    dr_image_alloc(img, W, H, channels, depth);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < channels; c++)
                img->data[((size_t)y * W + x) * channels + c] = (uint16_t)(depth == 16 ? v16(x, y, c) : v8(x, y, c));
}

static void test_round_trips(void) {
    for (int depth = 8; depth <= 16; depth += 8)
        for (int ch = 1; ch <= 4; ch++) {
            dr_image img, back;
            make_pattern(&img, ch, depth);
            char name[64];
            snprintf(name, sizeof name, "rt_%d_%d.tiff", ch, depth);
            if (round_trip(&img, name, 0, &back) == DR_OK) {
                CHECK(back.depth == depth && back.channels == ch, "%s keeps %d channels at %d bits (got %d, %d)", name,
                      ch, depth, back.channels, back.depth);
                CHECK(image_diff(&img, &back) == 0, "%s: pixels identical", name);
                dr_image_free(&back);
            }
            /* WebP: lossless 8-bit RGB(A); gray becomes RGB, 16 bits become 8. */
            snprintf(name, sizeof name, "rt_%d_%d.webp", ch, depth);
            if (round_trip(&img, name, 0, &back) == DR_OK) {
                int alpha = ch == 2 || ch == 4;
                CHECK(back.depth == 8 && back.channels == (alpha ? 4 : 3), "%s: 8-bit %s", name,
                      alpha ? "RGBA" : "RGB");
                long worst = 0;
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        const uint16_t *s = img.data + ((size_t)y * W + x) * ch;
                        const uint16_t *b = back.data + ((size_t)y * W + x) * back.channels;
                        for (int k = 0; k < back.channels; k++) {
                            int sk = ch <= 2 ? (k == 3 ? 1 : 0) : k;
                            long want = depth == 16 ? (s[sk] * 255L + 32767) / 65535 : s[sk];
                            long d = labs(want - b[k]);
                            if (d > worst) worst = d;
                        }
                    }
                CHECK(worst == 0, "%s: lossless pixels off by %ld", name, worst);
                dr_image_free(&back);
            }
            dr_image_free(&img);
        }
    /* Lossy WebP: close, not equal. A smooth 64x64 ramp. */
    dr_image img, back;
    dr_image_alloc(&img, 64, 64, 3, 8);
    for (int i = 0; i < 64 * 64; i++)
        for (int c = 0; c < 3; c++) img.data[i * 3 + c] = (uint16_t)((i % 64) * 2 + (i / 64) + c * 20);
    if (round_trip(&img, "lossy.webp", 90, &back) == DR_OK) {
        long d = image_diff(&img, &back);
        CHECK(d >= 0 && d <= 24, "lossy WebP q90 within 24 levels (got %ld)", d);
        dr_image_free(&back);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/bad_quality.webp", test_tmpdir());
    dr_save_options o;
    dr_save_options_init(&o);
    o.webp_quality = 101;
    CHECK(dr_image_save(path, &img, &o) == DR_ERR_INVALID, "WebP quality 101 refused");
    CHECK(access(path, F_OK) != 0, "nothing written for a refused WebP");
    dr_image_free(&img);
}

static void test_orientation(void) {
    dr_image up, upbig;
    CHECK(dr_image_load(FIX "upright.png", 0, &up, NULL) == DR_OK, "upright.png");
    CHECK(dr_image_load(FIX "upright_big.png", 0, &upbig, NULL) == DR_OK, "upright_big.png");
    for (int o = 1; o <= 8; o++) {
        char path[512];
        const char *ext[3] = {"tif", "webp", "png"};
        for (int e = 0; e < 3; e++) {
            snprintf(path, sizeof path, FIX "orient%d.%s", o, ext[e]);
            dr_image img;
            dr_image_info info;
            if (dr_image_load(path, 0, &img, &info) != DR_OK) {
                CHECK(0, "%s: %s", path, dr_last_error());
                continue;
            }
            CHECK(info.orientation == o, "orient%d.%s: orientation %d reported", o, ext[e], info.orientation);
            CHECK(info.width == W && info.height == H, "orient%d.%s: upright size in info", o, ext[e]);
            CHECK(image_diff(&img, &up) == 0, "orient%d.%s is upright and identical to upright.png", o, ext[e]);
            dr_image_info probe;
            CHECK(dr_image_probe(path, &probe) == DR_OK && probe.width == W && probe.height == H &&
                      probe.orientation == o,
                  "orient%d.%s: probe gives the upright size", o, ext[e]);
            dr_image_free(&img);
        }
        /* JPEG: against Pillow's own decode turned upright (ImageOps.exif_transpose). */
        snprintf(path, sizeof path, FIX "orient%d.jpg", o);
        dr_image img, pil;
        dr_image_info info;
        char ref[512];
        snprintf(ref, sizeof ref, FIX "orient%d_pil.png", o);
        if (dr_image_load(path, 0, &img, &info) == DR_OK && dr_image_load(ref, 0, &pil, NULL) == DR_OK) {
            CHECK(info.orientation == o && img.width == W * 8 && img.height == H * 8,
                  "orient%d.jpg: %dx%d, orientation %d", o, img.width, img.height, info.orientation);
            long d = image_diff(&img, &pil);
            CHECK(d >= 0 && d <= 1, "orient%d.jpg matches Pillow's upright decode (max diff %ld)", o, d);
            long u = image_diff(&img, &upbig);
            CHECK(u >= 0 && u <= 8, "orient%d.jpg is close to the upright original (max diff %ld)", o, u);
            dr_image_free(&img);
            dr_image_free(&pil);
        } else {
            CHECK(0, "orient%d.jpg: %s", o, dr_last_error());
        }
    }
    dr_image_free(&up);
    dr_image_free(&upbig);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *b = malloc(1 << 20);
    *n = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static void test_bad_input(void) {
    const char *files[] = {FIX "rgb16_lzw.tif", FIX "rgb16_tiled_deflate.tif", FIX "rgba8_lossless.webp",
                           FIX "rgb8_lossy.webp", FIX "palette8.tif"};
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        size_t n;
        unsigned char *b = slurp(files[f], &n);
        CHECK(b != NULL, "read %s", files[f]);
        if (!b) continue;
        /* Truncations: every one refused with a message naming the input. */
        int refused = 0, tried = 0;
        for (size_t cut = 8; cut < n; cut += (n / 23) + 1) {
            dr_image img;
            int rc = dr_image_load_memory(b, cut, "cut.bin", 0, &img, NULL);
            tried++;
            if (rc != DR_OK) {
                refused++;
                CHECK(img.data == NULL, "failed load leaves no data");
                CHECK(strstr(dr_last_error(), "cut.bin") != NULL, "message names the file: %s", dr_last_error());
            } else {
                dr_image_free(&img);
            }
        }
        CHECK(refused == tried, "%s: %d of %d truncations refused", files[f], refused, tried);
        free(b);
    }
    /* A TIFF that claims 100000 x 100000 pixels: the pixel limit, before any allocation. */
    unsigned char hdr[] = {'I', 'I',  42,   0,    8, 0, 0, 0, 3, 0, 0, 1, 4, 0,    1,    0,    0,
                           0,   0xA0, 0x86, 0x01, 0, 1, 1, 4, 0, 1, 0, 0, 0, 0xA0, 0x86, 0x01, 0,
                           2,   1,    3,    0,    1, 0, 0, 0, 8, 0, 0, 0, 0, 0,    0,    0};
    dr_image img;
    int rc = dr_image_load_memory(hdr, sizeof hdr, "huge.tif", 0, &img, NULL);
    CHECK(rc == DR_ERR_LIMIT || rc == DR_ERR_FORMAT, "huge TIFF refused (%s: %s)", dr_status_name(rc), dr_last_error());
    /* 256 x 5 pixels but 65281 samples per pixel (found by fuzz_tiff): libtiff would
     * size a 167 MB strip buffer; refused from the header, naming the count. */
    {
        size_t n;
        unsigned char *b = slurp(DR_SOURCE_DIR "/tests/fuzz/regressions/tiff/spp65281-huge-strip.tif", &n);
        CHECK(b != NULL, "read the spp regression");
        if (b) {
            rc = dr_image_load_memory(b, n, "spp.tif", 0, &img, NULL);
            CHECK(rc == DR_ERR_UNSUPPORTED && strstr(dr_last_error(), "65281 samples per pixel") &&
                      strstr(dr_last_error(), "spp.tif"),
                  "65281 samples per pixel refused (%s: %s)", dr_status_name(rc), dr_last_error());
            free(b);
        }
    }
    unsigned char magic_t[] = {'M', 'M', 0, 42}, magic_w[] = "RIFF\1\0\0\0WEBPVP8 ";
    CHECK(dr_format_detect(magic_t, 4) == DR_FORMAT_TIFF, "TIFF magic (big-endian)");
    CHECK(dr_format_detect(magic_w, 16) == DR_FORMAT_WEBP, "WebP magic");
    CHECK(dr_format_detect(magic_w, 11) == DR_FORMAT_UNKNOWN, "short WebP magic");
}

int main(void) {
    test_tiff_read();
    test_webp_read();
    test_round_trips();
    test_orientation();
    test_bad_input();
    return test_summary("test_formats");
}
