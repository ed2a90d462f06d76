/* make_seeds.c - writes the seed corpora of tests/fuzz/corpus/ (already
 * committed; rerun only to change them):
 *
 *   cmake --build build --target fuzz_make_seeds
 *   build/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus
 *
 * png/:          gray 1/8/16-bit, gray+alpha, RGB, RGBA, RGB 16-bit, palette
 *                with tRNS, RGB with tRNS, Adam7-interlaced RGB and gray 16
 * jpeg/:         baseline 4:2:0, 4:4:4, grayscale, progressive, progressive
 *                gray, restart markers, arithmetic coding, Adobe CMYK
 * safetensors/:  tiny models (colorize F32, inpaint F16 with attention,
 *                superres F16 with its scale range) and hand-made small files
 * maskbox/:      --box strings
 *
 * Every image is a few pixels (odd sizes, to reach the edge cases of chroma
 * subsampling and interlacing) so the seeds stay small: libFuzzer derives its
 * default -max_len from the largest seed. */
#include "diffrestore.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
/* jpeglib.h needs stdio.h first */
#include <jpeglib.h>

static const char *g_root;

static void die(const char *what) {
    fprintf(stderr, "make_seeds: %s\n", what);
    exit(1);
}

static FILE *open_out(const char *sub, const char *name) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", g_root, sub);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) die(dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    return f;
}

static unsigned sample(int x, int y, int c, unsigned maxv) {
    return (unsigned)((x * 37 + y * 91 + c * 53 + x * y * 7) % (maxv + 1));
}

/* ------------------------------------------------------------------ PNG */

static void png_seed(const char *name, int w, int h, int color_type, int depth, int interlace, int trns) {
    FILE *f = open_out("png", name);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info || setjmp(png_jmpbuf(png))) die(name);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {40, 80, 200}};
        png_set_PLTE(png, info, pal, 4);
        if (trns) {
            png_byte alpha[2] = {0, 128};
            png_set_tRNS(png, info, alpha, 2, NULL);
        }
    } else if (trns && color_type == PNG_COLOR_TYPE_RGB) {
        png_color_16 key = {0, 10, 20, 30, 0};
        png_set_tRNS(png, info, NULL, 0, &key);
    }
    png_write_info(png, info);
    int channels = color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_PALETTE ? 1
        : color_type == PNG_COLOR_TYPE_GRAY_ALPHA                                            ? 2
        : color_type == PNG_COLOR_TYPE_RGB                                                   ? 3
                                                                                             : 4;
    unsigned maxv = color_type == PNG_COLOR_TYPE_PALETTE ? 3 : (1u << depth) - 1;
    size_t rowbytes = ((size_t)w * channels * depth + 7) / 8;
    png_bytep img = calloc((size_t)h, rowbytes);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    if (!img || !rows) die("oom");
    for (int y = 0; y < h; y++) {
        rows[y] = img + (size_t)y * rowbytes;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++) {
                unsigned v = sample(x, y, c, maxv);
                size_t bit = ((size_t)x * channels + c) * depth;
                if (depth == 16) {
                    rows[y][bit / 8] = (png_byte)(v >> 8);
                    rows[y][bit / 8 + 1] = (png_byte)v;
                } else if (depth == 8) {
                    rows[y][bit / 8] = (png_byte)v;
                } else {
                    rows[y][bit / 8] |= (png_byte)(v << (8 - depth - bit % 8));
                }
            }
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(img);
    if (fclose(f) != 0) die(name);
}

/* ------------------------------------------------------------------ JPEG */

enum { J_PROGRESSIVE = 1, J_444 = 2, J_RESTART = 4, J_ARITH = 8 };

static void jpeg_seed(const char *name, int w, int h, J_COLOR_SPACE in_cs, int flags) {
    FILE *f = open_out("jpeg", name);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    int comps = in_cs == JCS_GRAYSCALE ? 1 : in_cs == JCS_CMYK ? 4 : 3;
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = in_cs;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 75, TRUE);
    if (in_cs == JCS_CMYK) jpeg_set_colorspace(&ci, JCS_CMYK); /* writes an Adobe marker */
    if (flags & J_444)
        for (int i = 0; i < ci.num_components; i++) ci.comp_info[i].h_samp_factor = ci.comp_info[i].v_samp_factor = 1;
    if (flags & J_PROGRESSIVE) jpeg_simple_progression(&ci);
    if (flags & J_RESTART) ci.restart_in_rows = 1;
    if (flags & J_ARITH) ci.arith_code = TRUE;
    jpeg_start_compress(&ci, TRUE);
    JSAMPLE *row = malloc((size_t)w * comps);
    if (!row) die("oom");
    while (ci.next_scanline < ci.image_height) {
        int y = (int)ci.next_scanline;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++) row[x * comps + c] = (JSAMPLE)sample(x, y, c, 255);
        JSAMPROW rp[1] = {row};
        jpeg_write_scanlines(&ci, rp, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(row);
    if (fclose(f) != 0) die(name);
}

/* ------------------------------------------------------------------ safetensors */

static void model_seed(const char *name, const char *spec, dr_mode mode, int f16) {
    dr_unet_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (dr_unet_config_parse(&cfg, spec) != DR_OK) die(dr_last_error());
    dr_model *m;
    if (dr_model_new_random(&cfg, mode, 1, &m) != DR_OK) die(dr_last_error());
    char path[1200];
    snprintf(path, sizeof path, "%s/safetensors", g_root);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) die(path);
    snprintf(path, sizeof path, "%s/safetensors/%s", g_root, name);
    remove(path);
    if (dr_model_save(m, path, f16) != DR_OK) die(dr_last_error());
    dr_model_free(m);
}

/* A safetensors file from its JSON header and data bytes. */
static void raw_seed(const char *name, const char *json, const unsigned char *data, size_t n) {
    FILE *f = open_out("safetensors", name);
    unsigned long long len = strlen(json);
    unsigned char hdr[8];
    for (int i = 0; i < 8; i++) hdr[i] = (unsigned char)(len >> (8 * i));
    if (fwrite(hdr, 1, 8, f) != 8 || fwrite(json, 1, len, f) != len || (n && fwrite(data, 1, n, f) != n)) die(name);
    if (fclose(f) != 0) die(name);
}

/* ------------------------------------------------------------------ masks */

static void text_seed(const char *name, const char *text) {
    FILE *f = open_out("maskbox", name);
    if (fputs(text, f) == EOF) die(name);
    if (fclose(f) != 0) die(name);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 2;
    }
    g_root = argv[1];
    if (mkdir(g_root, 0777) != 0 && errno != EEXIST) die(g_root);

    png_seed("gray1.png", 13, 5, PNG_COLOR_TYPE_GRAY, 1, 0, 0);
    png_seed("gray8.png", 7, 6, PNG_COLOR_TYPE_GRAY, 8, 0, 0);
    png_seed("gray16.png", 5, 4, PNG_COLOR_TYPE_GRAY, 16, 0, 0);
    png_seed("graya8.png", 6, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 0);
    png_seed("rgb8.png", 8, 8, PNG_COLOR_TYPE_RGB, 8, 0, 0);
    png_seed("rgba8.png", 5, 7, PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, 0);
    png_seed("rgb16.png", 4, 3, PNG_COLOR_TYPE_RGB, 16, 0, 0);
    png_seed("palette2_trns.png", 9, 4, PNG_COLOR_TYPE_PALETTE, 2, 0, 1);
    png_seed("palette8.png", 6, 6, PNG_COLOR_TYPE_PALETTE, 8, 0, 0);
    png_seed("rgb8_trns.png", 4, 4, PNG_COLOR_TYPE_RGB, 8, 0, 1);
    png_seed("rgb8_adam7.png", 11, 9, PNG_COLOR_TYPE_RGB, 8, 1, 0);
    png_seed("gray16_adam7.png", 9, 10, PNG_COLOR_TYPE_GRAY, 16, 1, 0);
    png_seed("rgba16_adam7.png", 3, 5, PNG_COLOR_TYPE_RGB_ALPHA, 16, 1, 0);

    jpeg_seed("baseline420.jpg", 17, 13, JCS_RGB, 0);
    jpeg_seed("baseline444.jpg", 9, 7, JCS_RGB, J_444);
    jpeg_seed("gray.jpg", 11, 9, JCS_GRAYSCALE, 0);
    jpeg_seed("progressive.jpg", 19, 11, JCS_RGB, J_PROGRESSIVE);
    jpeg_seed("progressive_gray.jpg", 10, 10, JCS_GRAYSCALE, J_PROGRESSIVE);
    jpeg_seed("restart.jpg", 24, 17, JCS_RGB, J_RESTART);
    jpeg_seed("arith.jpg", 8, 8, JCS_RGB, J_ARITH);
    jpeg_seed("cmyk_adobe.jpg", 8, 8, JCS_CMYK, 0);

    model_seed("colorize_f32.safetensors", "base=4,mult=1,res=1,attn=,groups=2", DR_MODE_COLORIZE, 0);
    model_seed("inpaint_attn_f16.safetensors", "base=4,mult=1,2,res=1,attn=1,groups=2", DR_MODE_INPAINT, 1);
    model_seed("superres_f16.safetensors", "base=2,mult=1,res=1,attn=,groups=1", DR_MODE_SUPERRES, 1);
    raw_seed("empty.safetensors", "{}", NULL, 0);
    raw_seed("meta_only.safetensors",
             "{\"__metadata__\":{\"format\":\"diffrestore-unet\",\"mode\":\"colorize\",\"in_channels\":\"3\","
             "\"out_channels\":\"2\",\"base_channels\":\"2\",\"channel_mult\":\"1\",\"num_res_blocks\":\"1\","
             "\"attention_levels\":\"\",\"groups\":\"1\",\"timesteps\":\"1000\",\"schedule\":\"cosine\","
             "\"prediction\":\"eps\"}}",
             NULL, 0);
    static const unsigned char f32x4[16] = {0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64};
    raw_seed("f32_2x2.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", f32x4, 16);
    /* F16 1.0, inf, a subnormal; then F32 1.0 */
    static const unsigned char mixed[10] = {0x00, 0x3c, 0x00, 0x7c, 0x01, 0x00, 0x00, 0x00, 0x80, 0x3f};
    raw_seed("f16_3_scalar.safetensors",
             "{\"v\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
             "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[6,10]},"
             "\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[10,10]},"
             "\"__metadata__\":{\"k\":\"v\"}}  ",
             mixed, sizeof mixed);

    text_seed("simple", "10,20,30,40");
    text_seed("negative", "-5,-5,10,10");
    text_seed("signs", "+1,+2,+3,+4");
    text_seed("limits", "1000000000,-1000000000,1000000000,1000000000");
    text_seed("multi", "0,0,4,4;2,2,8,8\n60,60,10,10");
    text_seed("outside", "1000,1000,5,5;0,0,1,1");
    text_seed("bad_zero", "1,2,0,4");
    text_seed("bad_short", "1,2,3");
    text_seed("bad_trailing", "1,2,3,4,");
    return 0;
}
