/*
 * test_safetensors.c - the safetensors reader/writer and the weights loader.
 *
 * Valid files round-trip (F32 exactly, F16 as IEEE half); every malformed or
 * malicious header MODEL.md lists is refused with a message naming the file
 * (and the tensor, where there is one); truncations at every byte and random
 * bit flips never crash (run under ASan in CI) and never half-load.
 */
#include "api/model_internal.h"
#include "testutil.h"
#include "weights/f16.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *NAME = "mem.safetensors";

/* Build a file image from a JSON header and n data bytes (pattern-filled). */
static unsigned char *make_file(const char *json, size_t ndata, size_t *size) {
    size_t jl = strlen(json);
    *size = 8 + jl + ndata;
    unsigned char *b = malloc(*size);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)jl >> (8 * i));
    memcpy(b + 8, json, jl);
    for (size_t i = 0; i < ndata; i++) b[8 + jl + i] = (unsigned char)(i * 7);
    return b;
}

/* Expect the header to be refused with a message containing `want`. */
static void expect_bad(const char *json, size_t ndata, const char *want, int line) {
    size_t n;
    unsigned char *b = make_file(json, ndata, &n);
    dr_tensor_file tf;
    int rc = dr_tensor_file_read_memory(b, n, NAME, &tf);
    test_check(rc != DR_OK, __FILE__, line, "accepted bad header: %s", json);
    test_check(strstr(dr_last_error(), NAME) != NULL, __FILE__, line, "message does not name the file: %s",
               dr_last_error());
    test_check(strstr(dr_last_error(), want) != NULL, __FILE__, line, "message '%s' lacks '%s'", dr_last_error(), want);
    test_check(tf.n_tensors == 0 && tf.tensors == NULL, __FILE__, line, "failed read left tensors behind");
    free(b);
}
#define EXPECT_BAD(json, ndata, want) expect_bad(json, ndata, want, __LINE__)

static void test_header_validation(void) {
    /* valid baseline: two F32 tensors tiling 24 bytes */
    size_t n;
    unsigned char *b =
        make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F16\",\"shape\":[2,4],\"data_offsets\":[8,24]},\"__metadata__\":{\"k\":\"v\"}}",
                  24, &n);
    dr_tensor_file tf;
    int rc = dr_tensor_file_read_memory(b, n, NAME, &tf);
    CHECK(rc == DR_OK, "valid file refused: %s", dr_last_error());
    if (rc == DR_OK) {
        CHECK(tf.n_tensors == 2 && dr_tensor_file_get(&tf, "b")->numel == 8, "tensor count/shape");
        CHECK(strcmp(dr_tensor_file_meta(&tf, "k"), "v") == 0, "metadata");
        dr_tensor_file_free(&tf);
    }
    free(b);

    EXPECT_BAD("{not json", 0, "not valid JSON");
    EXPECT_BAD("[1,2]", 0, "not a JSON object");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8, "trailing");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 8, "'a'"); /* past the end */
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "do not match"); /* size */
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "out of range");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, "overlaps");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "hole");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "after the last tensor");
    EXPECT_BAD("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "not supported");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "bad shape");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, "bad shape");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,8]}}", 8,
               "bad shape");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1048576,1048576,1048576],\"data_offsets\":[0,8]}}", 8,
               "do not match"); /* numel overflows 64-bit bytes */
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
               16, "twice");
    EXPECT_BAD("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
    EXPECT_BAD("{\"a\":5}", 0, "'a'");
    EXPECT_BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "rank");

    /* header length larger than the file, and absurdly large */
    unsigned char small[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    rc = dr_tensor_file_read_memory(small, sizeof small, NAME, &tf);
    CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "larger than the file"), "huge N: %s", dr_last_error());
    rc = dr_tensor_file_read_memory(small, 5, NAME, &tf);
    CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "too short"), "5-byte file: %s", dr_last_error());
    rc = dr_tensor_file_read_memory(small, 0, NAME, &tf);
    CHECK(rc == DR_ERR_FORMAT, "empty file accepted");
}

static void test_f16(void) {
    /* every half converts to a float and back to the same half (NaNs stay NaN) */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        uint16_t back = f32_to_f16(f);
        int is_nan = ((h >> 10) & 0x1f) == 31 && (h & 0x3ff);
        if (is_nan ? !isnan(f) : back != h) bad++;
    }
    CHECK(bad == 0, "%d halves do not round-trip", bad);
    /* rounding: nearest, ties to even; overflow to inf; tiny to zero */
    CHECK(f32_to_f16(1.0f) == 0x3c00 && f32_to_f16(-2.0f) == 0xc000, "exact values");
    CHECK(f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "tie rounds to even (down)");
    CHECK(f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02, "tie rounds to even (up)");
    CHECK(f32_to_f16(65520.0f) == 0x7c00 && f32_to_f16(65519.0f) == 0x7bff, "overflow boundary");
    CHECK(f32_to_f16(5.96e-8f) == 0x0001 && f32_to_f16(2.9e-8f) == 0x0000, "subnormal boundary");
    CHECK(fabsf(f16_to_f32(0x3555) - 0.333251953f) < 1e-9f, "1/3 in half");
}

static void test_round_trip(void) {
    const char *dir = test_tmpdir();
    char path[1100];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    dr_tensor_file tf = {0};
    float a[6] = {1.5f, -2.25f, 0.1f, 1e-3f, 3e4f, -0.0f};
    int64_t sa[2] = {2, 3}, sb[1] = {0};
    CHECK(dr_tensor_file_add(&tf, "a.weight", 2, sa, a) == DR_OK, "add a");
    CHECK(dr_tensor_file_add(&tf, "empty", 1, sb, NULL) == DR_OK, "add empty");
    CHECK(dr_tensor_file_add(&tf, "a.weight", 2, sa, a) != DR_OK, "duplicate add accepted");
    CHECK(dr_tensor_file_set_meta(&tf, "format", "x") == DR_OK, "meta");
    for (int f16 = 0; f16 <= 1; f16++) {
        CHECK(dr_tensor_file_write(path, &tf, f16) == DR_OK, "write: %s", dr_last_error());
        dr_tensor_file rd;
        int rc = dr_tensor_file_read(path, &rd);
        CHECK(rc == DR_OK, "read back: %s", dr_last_error());
        if (rc != DR_OK) continue;
        const dr_tensor *t = dr_tensor_file_get(&rd, "a.weight");
        CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3, "shape back");
        for (int i = 0; t && i < 6; i++) {
            float want = f16 ? f16_to_f32(f32_to_f16(a[i])) : a[i];
            CHECK(memcmp(&t->data[i], &want, 4) == 0, "value %d (f16=%d): %g vs %g", i, f16, t->data[i], want);
        }
        CHECK(dr_tensor_file_get(&rd, "empty") && dr_tensor_file_get(&rd, "empty")->numel == 0, "empty tensor");
        CHECK(strcmp(dr_tensor_file_meta(&rd, "format"), "x") == 0, "meta back");
        dr_tensor_file_free(&rd);
    }
    dr_tensor_file_free(&tf);
    remove(path);
}

/* Every truncation and many bit flips of a real weights file: no crash, and a
 * refused file leaves nothing allocated (ASan/LSan checks the rest). */
static void test_corruption(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/ref_tiny.weights.safetensors", DR_TEST_DATA);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    rewind(f);
    unsigned char *buf = malloc(n), *cp = malloc(n);
    CHECK(fread(buf, 1, n, f) == n, "read");
    fclose(f);
    size_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    int accepted = 0, refused_clean = 0;
    /* truncation: every byte of the header region, then every 97th byte */
    for (size_t cut = 0; cut < n; cut += (cut < hlen + 16 ? 1 : 97)) {
        dr_tensor_file tf;
        int rc = dr_tensor_file_read_memory(buf, cut, NAME, &tf);
        if (rc == DR_OK)
            accepted++, dr_tensor_file_free(&tf);
        else
            refused_clean += strstr(dr_last_error(), NAME) != NULL;
    }
    CHECK(accepted == 0, "%d truncated files were accepted", accepted);
    CHECK(refused_clean > 0, "no refusal named the file");
    /* bit flips through the model loader: anything accepted must still be a
     * complete, valid model (flips in float data are legitimately accepted) */
    test_rng r = {12345};
    int model_ok = 0, model_refused = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(cp, buf, n);
        int nflip = 1 + (int)(test_rng_u64(&r) % 3);
        for (int k = 0; k < nflip; k++) {
            size_t pos = it % 2 ? (size_t)(test_rng_u64(&r) % (hlen + 8)) : (size_t)(test_rng_u64(&r) % n);
            cp[pos] ^= (unsigned char)(1u << (test_rng_u64(&r) % 8));
        }
        dr_tensor_file tf;
        if (dr_tensor_file_read_memory(cp, n, NAME, &tf) != DR_OK) {
            model_refused++;
            continue;
        }
        dr_model *m = NULL;
        if (model_from_tensors(&tf, NAME, &m) == DR_OK) {
            model_ok++;
            CHECK(m->L.n_params == tf.n_tensors, "accepted model with %d tensors for %d params", tf.n_tensors,
                  m->L.n_params);
            dr_model_free(m);
        } else {
            model_refused++;
        }
        dr_tensor_file_free(&tf);
    }
    printf("bit flips: %d models loaded, %d refused\n", model_ok, model_refused);
    CHECK(model_refused > 1000, "too few refusals (%d): is the header checked?", model_refused);
    free(buf);
    free(cp);
}

/* The weights loader on top: missing, extra, mis-shaped tensors, bad config. */
static void test_model_loader(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/ref_tiny.weights.safetensors", DR_TEST_DATA);
    dr_tensor_file tf;
    int rc = dr_tensor_file_read(path, &tf);
    CHECK(rc == DR_OK, "read %s", path);
    if (rc != DR_OK) return;
    dr_model *m = NULL;
    CHECK(model_from_tensors(&tf, "w.safetensors", &m) == DR_OK, "valid weights refused: %s", dr_last_error());
    dr_model_free(m);

    /* wrong shape: pretend in_conv.weight is [8, 7, 3, 2] */
    dr_tensor *t = (dr_tensor *)dr_tensor_file_get(&tf, "in_conv.weight");
    t->shape[3] = 2;
    rc = model_from_tensors(&tf, "w.safetensors", &m);
    CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "'in_conv.weight'") &&
              strstr(dr_last_error(), "w.safetensors"),
          "shape mismatch: %s", dr_last_error());
    t->shape[3] = 3;
    /* missing: rename a tensor -> one extra + one missing */
    char *old = t->name;
    t->name = "in_conv.weightX";
    rc = model_from_tensors(&tf, "w.safetensors", &m);
    CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "in_conv.weightX"), "extra tensor: %s", dr_last_error());
    t->name = old;
    /* config that does not match the tensors */
    dr_tensor_file_set_meta(&tf, "base_channels", "16");
    rc = model_from_tensors(&tf, "w.safetensors", &m);
    CHECK(rc == DR_ERR_FORMAT, "config mismatch accepted");
    dr_tensor_file_set_meta(&tf, "base_channels", "8");
    /* mode whose channels do not match */
    dr_tensor_file_set_meta(&tf, "mode", "colorize");
    rc = model_from_tensors(&tf, "w.safetensors", &m);
    CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "colorize"), "mode mismatch: %s", dr_last_error());
    dr_tensor_file_set_meta(&tf, "mode", "inpaint");
    dr_tensor_file_set_meta(&tf, "format", "something-else");
    rc = model_from_tensors(&tf, "w.safetensors", &m);
    CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "not a diffrestore"), "format: %s", dr_last_error());
    dr_tensor_file_set_meta(&tf, "format", "diffrestore-unet");
    dr_tensor_file_set_meta(&tf, "prediction", "x0");
    rc = model_from_tensors(&tf, "w.safetensors", &m);
    CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "prediction"), "prediction: %s", dr_last_error());
    dr_tensor_file_set_meta(&tf, "prediction", "v");
    rc = model_from_tensors(&tf, "w.safetensors", &m);
    CHECK(rc == DR_OK && m->info.predict_v == 1, "v prediction not honoured");
    dr_model_free(m);
    dr_tensor_file_free(&tf);

    /* F16 save -> load is within half precision, and metadata survives */
    dr_unet_config cfg = {0};
    CHECK(dr_unet_config_parse(&cfg, "base=8,mult=1,2,res=1,attn=,groups=2") == DR_OK, "parse");
    rc = dr_model_new_random(&cfg, DR_MODE_SUPERRES, 7, &m);
    CHECK(rc == DR_OK, "new random: %s", dr_last_error());
    char out[1100];
    snprintf(out, sizeof out, "%s/m16.safetensors", test_tmpdir());
    CHECK(dr_model_save(m, out, 1) == DR_OK, "save f16: %s", dr_last_error());
    dr_model *m2 = NULL;
    rc = dr_model_load(out, &m2);
    CHECK(rc == DR_OK, "load f16: %s", dr_last_error());
    if (rc == DR_OK) {
        double e = test_max_abs_diff(m->params, m2->params, m->L.n_floats);
        CHECK(e < 1e-3, "f16 weights differ by %g", e);
        CHECK(strcmp(dr_model_meta(m2, "scale_max"), "4") == 0, "scale_max metadata: %s",
              dr_model_meta(m2, "scale_max"));
        CHECK(dr_model_meta(m2, "created") != NULL, "created metadata");
        dr_model_free(m2);
    }
    dr_model_free(m);
    remove(out);
}

static void test_config_parse(void) {
    dr_unet_config c = {0};
    CHECK(dr_unet_config_parse(&c, "base=32,mult=1,2,2,4,res=2,attn=,groups=8") == DR_OK, "parse: %s", dr_last_error());
    CHECK(c.base_channels == 32 && c.n_levels == 4 && c.channel_mult[3] == 4 && c.num_res_blocks == 2 &&
              c.groups == 8 && !c.attention[0] && !c.attention[3],
          "parsed values");
    CHECK(dr_unet_config_parse(&c, "attn=2,3") == DR_OK && c.attention[2] && c.attention[3] && !c.attention[1],
          "attn list");
    CHECK(dr_unet_config_parse(&c, "bogus=3") == DR_ERR_INVALID, "unknown key accepted");
    CHECK(dr_unet_config_parse(&c, "mult=1,,2") == DR_ERR_INVALID, "empty list item accepted");
    CHECK(dr_unet_config_parse(&c, "base=") == DR_ERR_INVALID, "empty base accepted");
    c.in_channels = 3;
    c.out_channels = 2;
    c.groups = 5;
    CHECK(dr_unet_config_validate(&c) == DR_ERR_INVALID, "groups not dividing channels accepted");
}

int main(void) {
    test_header_validation();
    test_f16();
    test_round_trip();
    test_corruption();
    test_model_loader();
    test_config_parse();
    return test_summary("test_safetensors");
}
