/* Image I/O: round trips, files made directly with libpng/libjpeg (interlaced,
 * palette, tRNS, progressive, CMYK/YCCK), a corrupt/truncated corpus, size
 * limits, and the atomic writer's guarantees (no clobber, no partial or temp
 * file after any failure, disk full). */
#include "diffrestore.h"
#include "io/image_core.h"
#include "io/codecs.h"
#include "io/meta.h"
#include "io/icc.h"
#include "io/exif.h"
#include "io/orient.h" /* DR_CS_* values, dr_image_info_describe */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

static char g_dir[4096];

/* ------------------------------------------------------------------ helpers */

/* Paths in the test directory; a small ring so a few can be live at once. */
static const char *tpath(const char *name) {
    static char ring[8][4600];
    static int next;
    char *p = ring[next++ % 8];
    snprintf(p, sizeof ring[0], "%s/%s", g_dir, name);
    return p;
}

static int write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(buf, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static unsigned char *read_file(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && len > 0 && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) *n = (size_t)len;
    return b;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Temp files of the atomic writer look like ".<name>.tmpXXXXXX". */
static int count_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strstr(e->d_name, ".tmp")) n++;
    closedir(d);
    return n;
}

static int msg_names(const char *name) {
    const char *m = dr_last_error();
    return m && *m && strstr(m, name) != NULL;
}

static void fill_random(dr_image *img, test_rng *rng) {
    size_t n = (size_t)img->width * img->height * img->channels;
    uint32_t mask = img->depth == 16 ? 0xffff : 0xff;
    for (size_t i = 0; i < n; i++) img->data[i] = (uint16_t)(test_rng_u64(rng) & mask);
}

/* Smooth content with a little noise: what JPEG is meant for, so the error
 * bound below measures the codec path, not JPEG on white noise. */
static void fill_smooth(dr_image *img, test_rng *rng) {
    double scale = img->depth == 16 ? 257.0 : 1.0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            for (int c = 0; c < img->channels; c++) {
                double v = 128 + 90 * sin(x * 0.11 + c * 1.3) * cos(y * 0.07 + c) + 4 * (test_rng_uniform(rng) - 0.5);
                if (v < 0) v = 0;
                if (v > 255) v = 255;
                img->data[((size_t)y * img->width + x) * img->channels + c] = (uint16_t)lround(v * scale);
            }
}

static int same_image(const dr_image *a, const dr_image *b) {
    if (a->width != b->width || a->height != b->height || a->channels != b->channels || a->depth != b->depth) return 0;
    size_t n = (size_t)a->width * a->height * a->channels;
    return memcmp(a->data, b->data, n * sizeof *a->data) == 0;
}

/* Mean and max |a - ref| over the first `ch` channels of each pixel, with ref
 * reduced to 8 bits like the JPEG writer does. */
static void jpeg_error_stats(const dr_image *ref, const dr_image *got, int ch, double *mean, int *max) {
    double sum = 0;
    int mx = 0;
    size_t px = (size_t)ref->width * ref->height;
    for (size_t i = 0; i < px; i++)
        for (int c = 0; c < ch; c++) {
            unsigned r = ref->data[i * ref->channels + c];
            if (ref->depth == 16) r = (r * 255u + 32767u) / 65535u;
            int d = abs((int)got->data[i * got->channels + c] - (int)r);
            sum += d;
            if (d > mx) mx = d;
        }
    *mean = sum / (double)(px * ch);
    *max = mx;
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Append a PNG chunk with a correct CRC; returns the new length. */
static size_t put_chunk(unsigned char *out, size_t at, const char *type, const unsigned char *data, uint32_t len) {
    put32(out + at, len);
    memcpy(out + at + 4, type, 4);
    if (len) memcpy(out + at + 8, data, len);
    put32(out + at + 8 + len, crc32_of(out + at + 4, 4 + (size_t)len));
    return at + 12 + len;
}

/* ------------------------------------------------------------------ writers using the libraries directly */

typedef struct {
    int w, h, bit_depth, color_type, interlace;
    const png_color *pal;
    int npal;
    const png_byte *trns; /* palette alpha */
    int ntrns;
    const png_color_16 *trans_color; /* gray/RGB key */
    const unsigned char *rows;       /* packed rows, PNG byte order */
    size_t rowbytes;
} png_spec;

static int write_png_spec(const char *path, const png_spec *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    png_bytep *rowp = malloc((size_t)s->h * sizeof *rowp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!rowp || !png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rowp);
        fclose(f);
        return -1;
    }
    for (int y = 0; y < s->h; y++) rowp[y] = (png_bytep)(s->rows + (size_t)y * s->rowbytes);
    png_init_io(png, f);
    png_set_IHDR(png, info, s->w, s->h, s->bit_depth, s->color_type, s->interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (s->pal) png_set_PLTE(png, info, s->pal, s->npal);
    if (s->trns || s->trans_color) png_set_tRNS(png, info, s->trns, s->ntrns, s->trans_color);
    png_write_info(png, info);
    png_write_image(png, rowp); /* does the Adam7 passes itself */
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rowp);
    return fclose(f) == 0 ? 0 : -1;
}

typedef struct {
    int w, h, comps;
    J_COLOR_SPACE in_cs;
    int jpeg_cs;  /* -1: default for in_cs, else passed to jpeg_set_colorspace */
    int no_adobe; /* suppress the Adobe marker libjpeg writes for CMYK */
    int progressive, quality;
    const unsigned char *pixels;
} jpeg_spec;

/* libjpeg's default error handler exits the process: acceptable in a test. */
static int write_jpeg_spec(const char *path, const jpeg_spec *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)s->w;
    ci.image_height = (JDIMENSION)s->h;
    ci.input_components = s->comps;
    ci.in_color_space = s->in_cs;
    jpeg_set_defaults(&ci);
    if (s->jpeg_cs >= 0) jpeg_set_colorspace(&ci, (J_COLOR_SPACE)s->jpeg_cs);
    if (s->jpeg_cs == JCS_YCCK) /* no chroma subsampling: keep flat test blocks flat */
        for (int c = 0; c < ci.num_components; c++) ci.comp_info[c].h_samp_factor = ci.comp_info[c].v_samp_factor = 1;
    if (s->no_adobe) ci.write_Adobe_marker = FALSE;
    jpeg_set_quality(&ci, s->quality, TRUE);
    if (s->progressive) jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(s->pixels + (size_t)ci.next_scanline * s->w * s->comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return fclose(f) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ tests */

static void test_alloc(void) {
    dr_image img;
    CHECK(dr_image_alloc(&img, 0, 5, 3, 8) == DR_ERR_INVALID, "zero width");
    CHECK(dr_image_alloc(&img, 5, -1, 3, 8) == DR_ERR_INVALID, "negative height");
    CHECK(dr_image_alloc(&img, 5, 5, 0, 8) == DR_ERR_INVALID, "0 channels");
    CHECK(dr_image_alloc(&img, 5, 5, 5, 8) == DR_ERR_INVALID, "5 channels");
    CHECK(dr_image_alloc(&img, 5, 5, 3, 12) == DR_ERR_INVALID, "depth 12");
    CHECK(img.data == NULL && img.width == 0, "failed alloc leaves the image zeroed");
    CHECK(dr_image_alloc(NULL, 5, 5, 3, 8) == DR_ERR_INVALID, "NULL image");
    int rc = dr_image_alloc(&img, 2000000000, 2000000000, 4, 16);
    CHECK(rc == DR_ERR_LIMIT || rc == DR_ERR_NOMEM, "huge alloc refused (%s)", dr_status_name(rc));
    CHECK(img.data == NULL, "huge alloc leaves no data");

    CHECK(dr_image_alloc(&img, 7, 3, 2, 16) == DR_OK, "alloc: %s", dr_last_error());
    int zero = 1;
    for (int i = 0; i < 7 * 3 * 2; i++) zero &= img.data[i] == 0;
    CHECK(zero && img.width == 7 && img.height == 3 && img.channels == 2 && img.depth == 16,
          "alloc is zero-filled with the given shape");
    dr_image_free(&img);
    CHECK(img.data == NULL && img.width == 0, "free zeroes the struct");
    dr_image_free(&img); /* a zeroed struct */
    dr_image_free(NULL);
}

static void test_format_detect(void) {
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char jpg[4] = {0xFF, 0xD8, 0xFF, 0xE0};
    CHECK(dr_format_detect(png, 8) == DR_FORMAT_PNG, "PNG magic");
    CHECK(dr_format_detect(png, 7) == DR_FORMAT_UNKNOWN, "short PNG magic");
    CHECK(dr_format_detect(jpg, 4) == DR_FORMAT_JPEG, "JPEG magic");
    CHECK(dr_format_detect(jpg, 3) == DR_FORMAT_JPEG, "JPEG magic, 3 bytes");
    CHECK(dr_format_detect(jpg, 2) == DR_FORMAT_UNKNOWN, "2 bytes of JPEG");
    CHECK(dr_format_detect("GIF89a", 6) == DR_FORMAT_UNKNOWN, "GIF");
    CHECK(dr_format_detect(NULL, 10) == DR_FORMAT_UNKNOWN, "NULL");
    CHECK(strcmp(dr_format_name(DR_FORMAT_PNG), "PNG") == 0, "name PNG");
    CHECK(strcmp(dr_format_name(DR_FORMAT_JPEG), "JPEG") == 0, "name JPEG");
    CHECK(strcmp(dr_format_name(DR_FORMAT_UNKNOWN), "unknown") == 0, "name unknown");
    CHECK(strcmp(dr_format_name((dr_format)42), "unknown") == 0, "name of a bad value");
}

static void test_png_roundtrip(void) {
    static const int sizes[][2] = {{1, 1}, {37, 23}};
    static const int color_spaces[5] = {0, DR_CS_GRAY, DR_CS_GRAY_ALPHA, DR_CS_RGB, DR_CS_RGBA};
    test_rng rng = {1};
    dr_save_options o;
    dr_save_options_init(&o);
    CHECK(o.jpeg_quality == 92 && o.overwrite == 0, "save option defaults");
    o.overwrite = 1;
    for (int s = 0; s < 2; s++)
        for (int ch = 1; ch <= 4; ch++)
            for (int depth = 8; depth <= 16; depth += 8) {
                dr_image a, b;
                dr_image_info info;
                if (dr_image_alloc(&a, sizes[s][0], sizes[s][1], ch, depth) != DR_OK) continue;
                fill_random(&a, &rng);
                const char *p = tpath(s ? "rt.PNG" : "rt.png"); /* extension is case-blind */
                int rc = dr_image_save(p, &a, &o);
                CHECK(rc == DR_OK, "save %dx%d ch%d d%d: %s", a.width, a.height, ch, depth, dr_last_error());
                rc = dr_image_load(p, 0, &b, &info);
                CHECK(rc == DR_OK, "load ch%d d%d: %s", ch, depth, dr_last_error());
                CHECK(same_image(&a, &b), "PNG round trip is bit-exact: %dx%d ch%d d%d", a.width, a.height, ch, depth);
                CHECK(info.format == DR_FORMAT_PNG && info.channels == ch && info.depth == depth &&
                          info.width == a.width && info.height == a.height && !info.interlaced &&
                          info.color_space == color_spaces[ch],
                      "info for ch%d d%d", ch, depth);
                dr_image_info pi;
                CHECK(dr_image_probe(p, &pi) == DR_OK && memcmp(&pi, &info, sizeof pi) == 0,
                      "probe agrees with load for ch%d d%d", ch, depth);
                dr_image_free(&a);
                dr_image_free(&b);
            }
}

static void test_jpeg_roundtrip(void) {
    test_rng rng = {2};
    dr_save_options o;
    dr_save_options_init(&o);
    o.overwrite = 1;
    o.jpeg_quality = 95;
    for (int ch = 1; ch <= 4; ch++)
        for (int depth = 8; depth <= 16; depth += 8) {
            dr_image a, b;
            dr_image_info info;
            if (dr_image_alloc(&a, 61, 45, ch, depth) != DR_OK) continue;
            fill_smooth(&a, &rng);
            const char *p = tpath(ch == 3 ? "rt.jpeg" : "rt.JPG");
            CHECK(dr_image_save(p, &a, &o) == DR_OK, "save jpeg ch%d: %s", ch, dr_last_error());
            CHECK(dr_image_load(p, 0, &b, &info) == DR_OK, "load jpeg: %s", dr_last_error());
            int want = ch <= 2 ? 1 : 3; /* alpha dropped, gray stays gray */
            CHECK(b.channels == want && b.depth == 8 && b.width == 61 && b.height == 45,
                  "JPEG from ch%d d%d gives %d channels of 8 bits (got %d, %d)", ch, depth, want, b.channels, b.depth);
            CHECK(info.format == DR_FORMAT_JPEG && !info.interlaced && info.channels == want &&
                      info.color_space == (want == 1 ? DR_CS_GRAY : DR_CS_YCBCR),
                  "jpeg info ch%d", ch);
            if (b.channels == want) {
                double mean;
                int max;
                jpeg_error_stats(&a, &b, want, &mean, &max);
                CHECK(mean < 1.5 && max < 16, "JPEG q95 ch%d d%d error mean %.3f max %d", ch, depth, mean, max);
            }
            dr_image_free(&a);
            dr_image_free(&b);
        }

    /* 16 -> 8 bits rounds to nearest: flat images survive q100 exactly-ish. */
    static const uint16_t levels[] = {0, 128, 129, 32767, 32896, 65407, 65535};
    for (size_t k = 0; k < sizeof levels / sizeof *levels; k++) {
        dr_image a, b;
        dr_image_alloc(&a, 16, 16, 1, 16);
        for (int i = 0; i < 256; i++) a.data[i] = levels[k];
        o.jpeg_quality = 100;
        dr_image_save(tpath("flat.jpg"), &a, &o);
        int rc = dr_image_load(tpath("flat.jpg"), 0, &b, NULL);
        unsigned want = (levels[k] * 255u + 32767u) / 65535u;
        CHECK(rc == DR_OK && abs((int)b.data[77] - (int)want) <= 1, "16-bit %u -> 8-bit %u (got %u)", levels[k], want,
              rc == DR_OK ? b.data[77] : 0);
        dr_image_free(&a);
        dr_image_free(&b);
    }

    /* Quality is validated, and a refused save creates nothing. */
    dr_image a;
    dr_image_alloc(&a, 8, 8, 3, 8);
    for (int q = -1; q <= 101; q += 102) {
        o.jpeg_quality = q;
        const char *p = tpath("badq.jpg");
        CHECK(dr_image_save(p, &a, &o) == DR_ERR_INVALID && msg_names(p), "quality %d refused", q);
        CHECK(!file_exists(p), "no file after a refused quality");
    }
    o.jpeg_quality = 1;
    CHECK(dr_image_save(tpath("q1.jpg"), &a, &o) == DR_OK, "quality 1 is valid");
    dr_image_free(&a);
}

static void test_magic_not_extension(void) {
    test_rng rng = {3};
    dr_image a, b;
    dr_image_info info;
    dr_image_alloc(&a, 9, 5, 3, 8);
    fill_random(&a, &rng);
    CHECK(dr_image_save(tpath("really_png.png"), &a, NULL) == DR_OK, "save");
    CHECK(rename(tpath("really_png.png"), tpath("really_png.jpg")) == 0, "rename");
    CHECK(dr_image_load(tpath("really_png.jpg"), 0, &b, &info) == DR_OK && info.format == DR_FORMAT_PNG &&
              same_image(&a, &b),
          "a PNG named .jpg loads as PNG: %s", dr_last_error());
    dr_image_free(&b);
    CHECK(dr_image_save(tpath("really_jpg.jpg"), &a, NULL) == DR_OK, "save jpg");
    CHECK(rename(tpath("really_jpg.jpg"), tpath("really_jpg.png")) == 0, "rename");
    CHECK(dr_image_load(tpath("really_jpg.png"), 0, &b, &info) == DR_OK && info.format == DR_FORMAT_JPEG &&
              b.channels == 3,
          "a JPEG named .png loads as JPEG");
    dr_image_free(&b);

    /* Memory loading with info == NULL, and garbage after IEND/EOI is ignored. */
    size_t n;
    unsigned char *buf = read_file(tpath("really_png.jpg"), &n);
    unsigned char *ext = buf ? malloc(n + 100) : NULL;
    if (ext) {
        memcpy(ext, buf, n);
        memset(ext + n, 0xAB, 100);
        CHECK(dr_image_load_memory(ext, n + 100, "tail.png", 0, &b, NULL) == DR_OK && same_image(&a, &b),
              "trailing bytes after IEND are ignored: %s", dr_last_error());
        dr_image_free(&b);
    }
    free(buf);
    free(ext);
    dr_image_free(&a);
}

static void test_png_variants(void) {
    test_rng rng = {4};
    dr_image img;
    dr_image_info info;

    /* Interlaced 8-bit RGB and 16-bit gray+alpha. */
    for (int v = 0; v < 2; v++) {
        int w = v ? 9 : 33, h = v ? 11 : 17, ch = v ? 2 : 3, bps = v ? 2 : 1;
        size_t rb = (size_t)w * ch * bps;
        unsigned char *rows = malloc(rb * h);
        for (size_t i = 0; i < rb * h; i++) rows[i] = (unsigned char)test_rng_u64(&rng);
        png_spec s = {w,
                      h,
                      8 * bps,
                      v ? PNG_COLOR_TYPE_GRAY_ALPHA : PNG_COLOR_TYPE_RGB,
                      PNG_INTERLACE_ADAM7,
                      NULL,
                      0,
                      NULL,
                      0,
                      NULL,
                      rows,
                      rb};
        CHECK(write_png_spec(tpath("adam7.png"), &s) == 0, "write interlaced");
        int rc = dr_image_load(tpath("adam7.png"), 0, &img, &info);
        int ok = rc == DR_OK && img.width == w && img.height == h && img.channels == ch && img.depth == 8 * bps &&
            info.interlaced == 1;
        for (size_t i = 0; ok && i < (size_t)w * h * ch; i++) {
            unsigned want = bps == 2 ? (unsigned)(rows[2 * i] << 8 | rows[2 * i + 1]) : rows[i];
            ok = img.data[i] == want;
        }
        CHECK(ok, "interlaced PNG %d decodes exactly: %s", v, dr_last_error());
        dr_image_free(&img);
        free(rows);
    }

    /* 4-bit palette with tRNS on the first 3 entries -> RGBA; without -> RGB. */
    png_color pal[16];
    for (int i = 0; i < 16; i++) pal[i] = (png_color){(png_byte)(i * 16), (png_byte)(255 - i * 16), (png_byte)(i * 7)};
    static const png_byte trns[3] = {0, 128, 200};
    int w = 13, h = 7;
    size_t rb = (size_t)(w * 4 + 7) / 8;
    unsigned char rows[7 * 7];
    memset(rows, 0, sizeof rows);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int idx = (x + 3 * y) % 16;
            rows[y * rb + x / 2] |= (unsigned char)(x % 2 ? idx : idx << 4);
        }
    for (int with_trns = 0; with_trns < 2; with_trns++) {
        png_spec s = {w,
                      h,
                      4,
                      PNG_COLOR_TYPE_PALETTE,
                      PNG_INTERLACE_NONE,
                      pal,
                      16,
                      with_trns ? trns : NULL,
                      with_trns ? 3 : 0,
                      NULL,
                      rows,
                      rb};
        CHECK(write_png_spec(tpath("pal.png"), &s) == 0, "write palette");
        int rc = dr_image_load(tpath("pal.png"), 0, &img, &info);
        int ch = with_trns ? 4 : 3;
        int ok = rc == DR_OK && img.channels == ch && img.depth == 8 && info.channels == ch &&
            info.color_space == DR_CS_PALETTE;
        for (int y = 0; ok && y < h; y++)
            for (int x = 0; ok && x < w; x++) {
                int idx = (x + 3 * y) % 16;
                const uint16_t *p = img.data + ((size_t)y * w + x) * ch;
                ok = p[0] == pal[idx].red && p[1] == pal[idx].green && p[2] == pal[idx].blue &&
                    (ch == 3 || p[3] == (idx < 3 ? trns[idx] : 255));
            }
        CHECK(ok, "palette PNG (tRNS %d) expands correctly: %s", with_trns, dr_last_error());
        dr_image_free(&img);
    }

    /* Gray at 1 and 2 bits expands to 8 (0..255 scale). */
    for (int bits = 1; bits <= 2; bits++) {
        int gw = 19, gh = 5;
        size_t grb = (size_t)(gw * bits + 7) / 8;
        unsigned char g[5 * 5];
        memset(g, 0, sizeof g);
        int maxv = (1 << bits) - 1;
        for (int y = 0; y < gh; y++)
            for (int x = 0; x < gw; x++) {
                int v = (x + y) % (maxv + 1);
                int bit = x * bits;
                g[y * grb + bit / 8] |= (unsigned char)(v << (8 - bits - bit % 8));
            }
        png_spec s = {gw, gh, bits, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, NULL, g, grb};
        CHECK(write_png_spec(tpath("lowbit.png"), &s) == 0, "write %d-bit gray", bits);
        int rc = dr_image_load(tpath("lowbit.png"), 0, &img, &info);
        int ok = rc == DR_OK && img.channels == 1 && img.depth == 8;
        for (int y = 0; ok && y < gh; y++)
            for (int x = 0; ok && x < gw; x++) ok = img.data[y * gw + x] == ((x + y) % (maxv + 1)) * 255 / maxv;
        CHECK(ok, "%d-bit gray expands to 8 bits: %s", bits, dr_last_error());
        dr_image_free(&img);
    }

    /* tRNS key colour on 8-bit gray -> gray+alpha; on 16-bit RGB -> RGBA 16. */
    {
        unsigned char g[8 * 8];
        for (int i = 0; i < 64; i++) g[i] = (unsigned char)(i % 5 == 0 ? 77 : i * 3);
        png_color_16 key = {0, 0, 0, 0, 77};
        png_spec s = {8, 8, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, &key, g, 8};
        CHECK(write_png_spec(tpath("graykey.png"), &s) == 0, "write gray tRNS");
        int rc = dr_image_load(tpath("graykey.png"), 0, &img, &info);
        int ok = rc == DR_OK && img.channels == 2 && img.depth == 8 && info.color_space == DR_CS_GRAY;
        for (int i = 0; ok && i < 64; i++)
            ok = img.data[2 * i] == g[i] && img.data[2 * i + 1] == (g[i] == 77 ? 0 : 255);
        CHECK(ok, "gray tRNS gives an alpha channel: %s", dr_last_error());
        dr_image_free(&img);
    }
    {
        int rw = 6, rh = 4;
        unsigned char px[6 * 4 * 6];
        for (int i = 0; i < rw * rh; i++) {
            unsigned v[3] = {1000, 2000, 3000};
            if (i % 3) v[0] = (unsigned)(i * 2500), v[1] = 65535u - (unsigned)i, v[2] = (unsigned)i;
            for (int c = 0; c < 3; c++) {
                px[i * 6 + 2 * c] = (unsigned char)(v[c] >> 8);
                px[i * 6 + 2 * c + 1] = (unsigned char)v[c];
            }
        }
        png_color_16 key = {0, 1000, 2000, 3000, 0};
        png_spec s = {rw, rh, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, NULL, 0, NULL, 0, &key, px, (size_t)rw * 6};
        CHECK(write_png_spec(tpath("rgbkey.png"), &s) == 0, "write RGB16 tRNS");
        int rc = dr_image_load(tpath("rgbkey.png"), 0, &img, &info);
        int ok = rc == DR_OK && img.channels == 4 && img.depth == 16 && info.color_space == DR_CS_RGB;
        for (int i = 0; ok && i < rw * rh; i++) {
            for (int c = 0; c < 3; c++) ok &= img.data[4 * i + c] == (px[i * 6 + 2 * c] << 8 | px[i * 6 + 2 * c + 1]);
            ok &= img.data[4 * i + 3] == (i % 3 ? 65535 : 0);
        }
        CHECK(ok, "RGB16 tRNS gives a 16-bit alpha channel: %s", dr_last_error());
        dr_image_free(&img);
    }
}

static void test_jpeg_variants(void) {
    test_rng rng = {5};
    dr_image img, ref;
    dr_image_info info;

    /* Progressive RGB. */
    dr_image_alloc(&ref, 40, 30, 3, 8);
    fill_smooth(&ref, &rng);
    unsigned char *px = malloc(40 * 30 * 3);
    for (int i = 0; i < 40 * 30 * 3; i++) px[i] = (unsigned char)ref.data[i];
    jpeg_spec js = {40, 30, 3, JCS_RGB, -1, 0, 1, 95, px};
    CHECK(write_jpeg_spec(tpath("prog.jpg"), &js) == 0, "write progressive");
    int rc = dr_image_load(tpath("prog.jpg"), 0, &img, &info);
    CHECK(rc == DR_OK && img.channels == 3 && info.interlaced == 1 && info.color_space == DR_CS_YCBCR,
          "progressive JPEG loads: %s", dr_last_error());
    if (rc == DR_OK) {
        double mean;
        int max;
        jpeg_error_stats(&ref, &img, 3, &mean, &max);
        CHECK(mean < 2.5 && max < 40, "progressive JPEG error mean %.3f max %d", mean, max);
        char desc[128];
        dr_image_info_describe(&info, desc, sizeof desc);
        CHECK(strcmp(desc, "JPEG 40x30, 3 channels, 8-bit, YCbCr, progressive") == 0, "describe: '%s'", desc);
    }
    dr_image_free(&img);
    dr_image_free(&ref);
    free(px);

    /* CMYK: four flat 8x8 blocks (exact at q100). Adobe-marked files store
     * inverted ink (Photoshop); files without the marker store plain ink. */
    static const unsigned char ink[4][4] = {{0, 0, 0, 0}, {255, 0, 0, 0}, {0, 128, 255, 64}, {30, 60, 90, 120}};
    unsigned char cmyk[16 * 16 * 4];
    for (int mode = 0; mode < 3; mode++) { /* 0 Adobe CMYK, 1 plain CMYK, 2 YCCK */
        int inverted = mode != 1;
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++) {
                const unsigned char *k = ink[(y / 8) * 2 + x / 8];
                for (int c = 0; c < 4; c++) cmyk[(y * 16 + x) * 4 + c] = (unsigned char)(inverted ? 255 - k[c] : k[c]);
            }
        jpeg_spec cs = {16, 16, 4, JCS_CMYK, mode == 2 ? JCS_YCCK : -1, mode == 1, 0, 100, cmyk};
        CHECK(write_jpeg_spec(tpath("cmyk.jpg"), &cs) == 0, "write CMYK");
        rc = dr_image_load(tpath("cmyk.jpg"), 0, &img, &info);
        int ok = rc == DR_OK && img.channels == 3 && img.depth == 8 &&
            info.color_space == (mode == 2 ? DR_CS_YCCK : DR_CS_CMYK);
        int maxd = 0;
        for (int y = 0; ok && y < 16; y++)
            for (int x = 0; x < 16; x++) {
                const unsigned char *k = ink[(y / 8) * 2 + x / 8];
                for (int c = 0; c < 3; c++) {
                    int want = ((255 - k[c]) * (255 - k[3]) + 127) / 255;
                    int d = abs((int)img.data[(y * 16 + x) * 3 + c] - want);
                    if (d > maxd) maxd = d;
                }
            }
        CHECK(ok && maxd <= 3, "CMYK mode %d -> RGB (max error %d): %s", mode, maxd, rc ? dr_last_error() : "");
        dr_image_free(&img);
    }

    /* Grayscale written directly: one channel. */
    unsigned char g[24 * 8];
    for (int i = 0; i < 24 * 8; i++) g[i] = (unsigned char)(i % 24 * 10);
    jpeg_spec gs = {24, 8, 1, JCS_GRAYSCALE, -1, 0, 0, 100, g};
    CHECK(write_jpeg_spec(tpath("gray.jpg"), &gs) == 0, "write gray jpeg");
    CHECK(dr_image_probe(tpath("gray.jpg"), &info) == DR_OK && info.channels == 1 && info.depth == 8 &&
              info.width == 24 && info.height == 8 && info.color_space == DR_CS_GRAY,
          "probe gray JPEG");
}

/* Truncations at every 1/16, small offsets and the last bytes: all refused. */
static void truncation_corpus(const unsigned char *buf, size_t len, const char *fname, size_t magic) {
    size_t cuts[16 + 65 + 3];
    int n = 0;
    for (int k = 0; k < 16; k++) cuts[n++] = len * (size_t)k / 16;
    for (size_t k = 0; k <= 64 && k < len; k++) cuts[n++] = k;
    cuts[n++] = len - 1;
    cuts[n++] = len - 2;
    cuts[n++] = len > 12 ? len - 12 : 1; /* PNG: exactly the IEND chunk missing */
    const char *p = tpath(fname);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        size_t c = cuts[i];
        dr_image img;
        write_file(p, buf, c);
        int rc = dr_image_load(p, 0, &img, NULL);
        int want = c == 0 ? DR_ERR_FORMAT : c < magic ? DR_ERR_UNSUPPORTED : DR_ERR_FORMAT;
        int ok = rc == want && msg_names(p) && img.data == NULL && img.width == 0;
        if (ok && c >= magic) ok = strstr(dr_last_error(), "truncated") != NULL;
        if (ok && c == 0) ok = strstr(dr_last_error(), "empty file") != NULL;
        if (!ok && bad++ < 5)
            CHECK(0, "%s cut at %zu/%zu: %s (%s), want %s", fname, c, len, dr_status_name(rc), dr_last_error(),
                  dr_status_name(want));
        dr_image_free(&img);
    }
    CHECK(bad == 0, "%s: all %d truncations refused with a 'truncated' message (%d not)", fname, n, bad);
}

/* Bit flips: either an error naming the file or an image with sane sizes. */
static int flip_corpus(const unsigned char *buf, size_t len, const char *fname, uint64_t seed) {
    test_rng rng = {seed};
    unsigned char *m = malloc(len);
    int errors = 0, bad = 0;
    for (int i = 0; i < 100; i++) {
        memcpy(m, buf, len);
        size_t pos = (size_t)(test_rng_u64(&rng) % len);
        m[pos] ^= (unsigned char)(1u << (test_rng_u64(&rng) % 8));
        dr_image img;
        dr_image_info info;
        int rc = dr_image_load_memory(m, len, fname, 0, &img, &info);
        int ok;
        if (rc == DR_OK) {
            ok = img.data && img.width > 0 && img.height > 0 && img.channels >= 1 && img.channels <= 4 &&
                (int64_t)img.width * img.height <= DR_DEFAULT_MAX_PIXELS && info.width == img.width &&
                info.channels == img.channels;
        } else {
            errors++;
            ok = msg_names(fname) && img.data == NULL &&
                (rc == DR_ERR_FORMAT || rc == DR_ERR_UNSUPPORTED || rc == DR_ERR_LIMIT);
        }
        if (!ok && bad++ < 5) CHECK(0, "%s flip at %zu: %s (%s)", fname, pos, dr_status_name(rc), dr_last_error());
        dr_image_free(&img);
    }
    CHECK(bad == 0, "%s: every bit flip gives an error or a sane image", fname);
    free(m);
    return errors;
}

static void test_corrupt_corpus(void) {
    test_rng rng = {6};
    dr_image a;
    dr_save_options o;
    dr_save_options_init(&o);
    dr_image_alloc(&a, 64, 48, 3, 8);
    fill_smooth(&a, &rng);
    CHECK(dr_image_save(tpath("sample.png"), &a, &o) == DR_OK, "sample png");
    CHECK(dr_image_save(tpath("sample.jpg"), &a, &o) == DR_OK, "sample jpg");
    dr_image_free(&a);
    size_t plen, jlen, qlen;
    unsigned char *png = read_file(tpath("sample.png"), &plen);
    unsigned char *jpg = read_file(tpath("sample.jpg"), &jlen);
    unsigned char *prog = read_file(tpath("prog.jpg"), &qlen); /* from test_jpeg_variants */
    if (!png || !jpg || !prog) {
        CHECK(0, "cannot read samples");
        free(png), free(jpg), free(prog);
        return;
    }
    /* Every strict prefix of a PNG (up to IEND) or JPEG (up to EOI) is refused. */
    truncation_corpus(png, plen, "cut.png", 8);
    truncation_corpus(jpg, jlen, "cut.jpg", 3);
    truncation_corpus(prog, qlen, "cutprog.jpg", 3);

    /* Every critical PNG byte is under a CRC (or is the signature/length), so
     * each flip is an error; JPEG has no checksum and may decode garbage. */
    int perr = flip_corpus(png, plen, "flip.png", 7);
    CHECK(perr == 100, "every PNG bit flip is detected (%d/100)", perr);
    int jerr = flip_corpus(jpg, jlen, "flip.jpg", 8);
    CHECK(jerr > 0, "some JPEG bit flips are detected (%d/100)", jerr);
    flip_corpus(prog, qlen, "flipprog.jpg", 9);
    free(png);
    free(jpg);
    free(prog);
}

static void test_bad_files(void) {
    dr_image img;
    dr_image_info info;
    const char *p = tpath("empty.png");
    write_file(p, "", 0);
    CHECK(dr_image_load(p, 0, &img, &info) == DR_ERR_FORMAT && msg_names(p) && strstr(dr_last_error(), "empty file"),
          "zero-byte file: %s", dr_last_error());
    CHECK(dr_image_probe(p, &info) == DR_ERR_FORMAT, "probe zero-byte file");
    p = tpath("text.png");
    write_file(p, "hello, this is not an image\n", 28);
    CHECK(dr_image_load(p, 0, &img, &info) == DR_ERR_UNSUPPORTED && msg_names(p) &&
              strstr(dr_last_error(), "not a PNG, JPEG, TIFF or WebP file"),
          "text file named .png: %s", dr_last_error());
    p = tpath("missing.png");
    CHECK(dr_image_load(p, 0, &img, NULL) == DR_ERR_IO && msg_names(p), "missing file");
    CHECK(dr_image_load(g_dir, 0, &img, NULL) == DR_ERR_IO, "a directory");
    CHECK(dr_image_load(NULL, 0, &img, NULL) == DR_ERR_INVALID, "NULL path");
    CHECK(dr_image_load_memory(NULL, 0, "mem", 0, &img, NULL) == DR_ERR_FORMAT && msg_names("mem"),
          "empty memory buffer");
}

static void test_limits(void) {
    /* A PNG whose IHDR (valid CRC) claims 100000 x 100000, then a token IDAT. */
    unsigned char f[128];
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(f, sig, 8);
    unsigned char ihdr[13];
    put32(ihdr, 100000);
    put32(ihdr + 4, 100000);
    ihdr[8] = 8, ihdr[9] = 2, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0;
    size_t n = put_chunk(f, 8, "IHDR", ihdr, 13);
    static const unsigned char z[8] = {0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00};
    n = put_chunk(f, n, "IDAT", z, sizeof z);
    n = put_chunk(f, n, "IEND", NULL, 0);
    const char *p = tpath("huge.png");
    write_file(p, f, n);
    dr_image img;
    dr_image_info info;
    /* LIMIT, not NOMEM: the check happens before any pixel allocation (60 GB). */
    int rc = dr_image_load(p, 0, &img, NULL);
    CHECK(rc == DR_ERR_LIMIT && msg_names(p) && strstr(dr_last_error(), "100000x100000") && img.data == NULL,
          "huge PNG: %s %s", dr_status_name(rc), dr_last_error());
    CHECK(dr_image_probe(p, &info) == DR_OK && info.width == 100000 && info.height == 100000,
          "probe reports the huge size without decoding: %s", dr_last_error());

    /* A JPEG whose SOF claims 65500 x 65500. */
    dr_image a;
    dr_image_alloc(&a, 16, 16, 3, 8);
    dr_save_options o;
    dr_save_options_init(&o);
    o.overwrite = 1;
    dr_image_save(tpath("small.jpg"), &a, &o);
    size_t len;
    unsigned char *j = read_file(tpath("small.jpg"), &len);
    int patched = 0;
    for (size_t i = 2; j && i + 9 < len && j[i] == 0xFF;) {
        int m = j[i + 1];
        size_t seg = (size_t)(j[i + 2] << 8 | j[i + 3]);
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            j[i + 5] = 0xFF, j[i + 6] = 0xDC, j[i + 7] = 0xFF, j[i + 8] = 0xDC; /* 65500 */
            patched = 1;
            break;
        }
        i += 2 + seg;
    }
    CHECK(patched, "found the SOF marker");
    p = tpath("huge.jpg");
    if (j) write_file(p, j, len);
    rc = dr_image_load(p, 0, &img, NULL);
    CHECK(rc == DR_ERR_LIMIT && msg_names(p) && strstr(dr_last_error(), "65500x65500"), "huge JPEG: %s %s",
          dr_status_name(rc), dr_last_error());
    free(j);

    /* max_pixels is inclusive; <= 0 means the default. */
    p = tpath("small.png");
    dr_image_save(p, &a, &o);
    CHECK(dr_image_load(p, 256, &img, NULL) == DR_OK, "exactly at the limit loads");
    dr_image_free(&img);
    CHECK(dr_image_load(p, 255, &img, NULL) == DR_ERR_LIMIT, "one pixel over is refused");
    CHECK(dr_image_load(tpath("small.jpg"), 255, &img, NULL) == DR_ERR_LIMIT, "JPEG limit");
    CHECK(dr_image_load(p, -5, &img, NULL) == DR_OK, "negative limit means the default");
    dr_image_free(&img);
    dr_image_free(&a);
}

static void test_save_semantics(void) {
    test_rng rng = {10};
    dr_image a, b, c;
    dr_save_options o;
    dr_save_options_init(&o);
    dr_image_alloc(&a, 10, 10, 3, 8);
    dr_image_alloc(&b, 12, 8, 1, 16);
    fill_random(&a, &rng);
    fill_random(&b, &rng);

    const char *p = tpath("keep.png");
    CHECK(dr_image_save(p, &a, &o) == DR_OK, "first save");
    size_t n0, n1;
    unsigned char *before = read_file(p, &n0);
    int rc = dr_image_save(p, &b, &o);
    CHECK(rc == DR_ERR_EXISTS && msg_names(p), "existing output without overwrite: %s", dr_status_name(rc));
    unsigned char *after = read_file(p, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0, "old file unchanged");
    free(before);
    free(after);
    o.overwrite = 1;
    CHECK(dr_image_save(p, &b, &o) == DR_OK, "overwrite: %s", dr_last_error());
    CHECK(dr_image_load(p, 0, &c, NULL) == DR_OK && same_image(&b, &c), "file replaced");
    dr_image_free(&c);

    /* Bad extensions and bad images: refused before anything is created. */
    static const char *bad_ext[] = {"x.bmp", "x", "x.png.txt", ".png", "x.jp"};
    for (size_t i = 0; i < sizeof bad_ext / sizeof *bad_ext; i++) {
        p = tpath(bad_ext[i]);
        rc = dr_image_save(p, &a, &o);
        CHECK(rc == DR_ERR_INVALID && msg_names(p) &&
                  strstr(dr_last_error(), "unknown output extension, use .png, .jpg, .tif or .webp"),
              "extension of %s refused: %s", bad_ext[i], dr_last_error());
        CHECK(!file_exists(p), "nothing created for %s", bad_ext[i]);
    }
    dr_image bad = a;
    bad.channels = 5;
    CHECK(dr_image_save(tpath("bad1.png"), &bad, &o) == DR_ERR_INVALID, "5 channels refused");
    bad = a;
    bad.depth = 12;
    CHECK(dr_image_save(tpath("bad2.png"), &bad, &o) == DR_ERR_INVALID, "depth 12 refused");
    bad = a;
    bad.data = NULL;
    CHECK(dr_image_save(tpath("bad3.png"), &bad, &o) == DR_ERR_INVALID, "no data refused");
    bad = a;
    bad.width = 0;
    CHECK(dr_image_save(tpath("bad4.jpg"), &bad, &o) == DR_ERR_INVALID, "width 0 refused");
    CHECK(dr_image_save(tpath("bad5.png"), NULL, &o) == DR_ERR_INVALID, "NULL image refused");
    a.data[17] = 300; /* out of range for 8 bits */
    CHECK(dr_image_save(tpath("bad6.png"), &a, &o) == DR_ERR_INVALID, "8-bit sample 300 refused");
    a.data[17] = 3;
    for (int i = 1; i <= 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "bad%d.%s", i, i == 4 ? "jpg" : "png");
        CHECK(!file_exists(tpath(name)), "nothing created for %s", name);
    }

    /* Unwritable destinations: an error naming the path and no file. */
    p = tpath("no/such/dir/x.png");
    CHECK(dr_image_save(p, &a, &o) == DR_ERR_IO && msg_names(p), "nonexistent dir: %s", dr_last_error());
    write_file(tpath("plainfile"), "x", 1);
    p = tpath("plainfile/x.png");
    CHECK(dr_image_save(p, &a, &o) == DR_ERR_IO && msg_names(p), "parent is a file: %s", dr_last_error());
    if (geteuid() != 0) { /* root ignores directory permissions */
        const char *ro = tpath("ro");
        mkdir(ro, 0555);
        chmod(ro, 0555);
        p = tpath("ro/x.jpg");
        CHECK(dr_image_save(p, &a, &o) == DR_ERR_IO && msg_names(p), "read-only dir: %s", dr_last_error());
        CHECK(!file_exists(p) && count_temp_files(ro) == 0, "nothing left in the read-only dir");
        chmod(ro, 0755);
    }
    CHECK(count_temp_files(g_dir) == 0, "no temp files left after failed saves");
    dr_image_free(&a);
    dr_image_free(&b);
}

/* A full disk, simulated with RLIMIT_FSIZE in a child: the writes fail with
 * EFBIG, the save reports DR_ERR_IO, and nothing is left behind. */
static void test_disk_full(void) {
    const char *dir = tpath("full");
    mkdir(dir, 0755);
    static const char *names[] = {"big.png", "big.jpg"};
    for (int k = 0; k < 2; k++) {
        char path[4700];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            struct rlimit rl = {64 * 1024, 64 * 1024};
            signal(SIGXFSZ, SIG_IGN);
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
            dr_image img;
            test_rng rng = {11};
            if (dr_image_alloc(&img, 512, 512, k ? 3 : 4, k ? 8 : 16) != DR_OK) _exit(11);
            fill_random(&img, &rng); /* incompressible: far over 64 KiB either way */
            dr_save_options o;
            dr_save_options_init(&o);
            o.jpeg_quality = 100;
            int rc = dr_image_save(path, &img, &o);
            int named = strstr(dr_last_error(), path) != NULL;
            dr_image_free(&img);
            _exit(rc == DR_ERR_IO ? (named ? 0 : 13) : 12);
        }
        int st = -1;
        CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/wait");
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "%s on a full disk gives DR_ERR_IO naming the path (child status %d)", names[k],
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        CHECK(!file_exists(path), "no output after a failed write of %s", names[k]);
        CHECK(count_temp_files(dir) == 0, "no temp file after a failed write of %s", names[k]);
    }
}

/* Remove the test directory (recursively; it holds two subdirectories). */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4700];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            chmod(p, 0755);
            remove_tree(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* dr_image_encode: the same bytes as dr_image_save writes, in every format,
 * and they decode back; bad arguments are refused with buf NULL. */
static void test_encode_memory(void) {
    static const struct {
        dr_format f;
        const char *ext;
        int ch, depth;
    } cases[] = {
        {DR_FORMAT_PNG, "png", 3, 8},   {DR_FORMAT_PNG, "png", 4, 16},  {DR_FORMAT_JPEG, "jpg", 3, 8},
        {DR_FORMAT_TIFF, "tif", 1, 16}, {DR_FORMAT_WEBP, "webp", 4, 8},
    };
    test_rng rng = {42};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        dr_image img;
        CHECK(dr_image_alloc(&img, 37, 23, cases[i].ch, cases[i].depth) == DR_OK, "alloc");
        fill_smooth(&img, &rng);
        char path[4200];
        snprintf(path, sizeof path, "%s/encode_%zu.%s", g_dir, i, cases[i].ext);
        CHECK(dr_image_save(path, &img, NULL) == DR_OK, "save %s: %s", path, dr_last_error());
        unsigned char *buf = NULL;
        size_t n = 0;
        CHECK(dr_image_encode(cases[i].f, &img, NULL, "mem", &buf, &n) == DR_OK, "encode %s: %s", cases[i].ext,
              dr_last_error());
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL, "open %s", path);
        unsigned char *file = malloc(n + 1);
        size_t got = f ? fread(file, 1, n + 1, f) : 0;
        if (f) fclose(f);
        CHECK(got == n && buf && memcmp(buf, file, n) == 0, "%s: encode gives the saved file's %zu bytes (%zu)",
              cases[i].ext, got, n);
        dr_image back;
        CHECK(dr_image_load_memory(buf, n, "mem", 0, &back, NULL) == DR_OK && back.width == 37 && back.height == 23,
              "%s: the encoded bytes decode", cases[i].ext);
        dr_image_free(&back);
        free(file);
        free(buf);
        dr_image_free(&img);
    }
    dr_image img;
    CHECK(dr_image_alloc(&img, 4, 4, 3, 8) == DR_OK, "alloc");
    unsigned char *buf = (unsigned char *)1;
    size_t n = 7;
    CHECK(dr_image_encode(DR_FORMAT_UNKNOWN, &img, NULL, "x", &buf, &n) == DR_ERR_INVALID && buf == NULL && n == 0,
          "unknown format refused");
    dr_save_options o;
    dr_save_options_init(&o);
    o.jpeg_quality = 0;
    CHECK(dr_image_encode(DR_FORMAT_JPEG, &img, &o, "x", &buf, &n) == DR_ERR_INVALID && buf == NULL,
          "JPEG quality 0 refused");
    dr_image bad = {0};
    CHECK(dr_image_encode(DR_FORMAT_PNG, &bad, NULL, "x", &buf, &n) != DR_OK && buf == NULL, "empty image refused");
    dr_image_free(&img);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s", test_tmpdir());
    test_alloc();
    test_format_detect();
    test_png_roundtrip();
    test_jpeg_roundtrip();
    test_magic_not_extension();
    test_png_variants();
    test_jpeg_variants();
    test_corrupt_corpus();
    test_bad_files();
    test_limits();
    test_save_semantics();
    test_disk_full();
    test_encode_memory();
    if (g_test_fail == 0) remove_tree(g_dir); /* keep the evidence on failure */
    return test_summary("test_image");
}
