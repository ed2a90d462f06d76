/* ICC profiles and metadata (issue 16): the Adobe RGB fixtures converted to
 * sRGB against a reference made by Pillow's ImageCms, the conversion back,
 * malformed and huge profiles, EXIF with a loop of IFD offsets, metadata read
 * from each format and written back (round trips through the encoders), the
 * provenance XMP, and SHA-256. Fixtures: data/meta/ (make_meta_fixtures.sh).
 * exiftool reads the outputs in test_cli_metadata.sh. */
#include "testutil.h"

#include "diffrestore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX DR_TEST_DATA "/meta/"

/* Max |a - b| over the colour samples, b's depth scaled to a's when they differ. */
static long max_diff(const dr_image *a, const dr_image *b) {
    if (a->width != b->width || a->height != b->height || a->channels != b->channels) return 1L << 30;
    long m = 0;
    size_t n = (size_t)a->width * a->height * a->channels;
    for (size_t i = 0; i < n; i++) {
        long va = a->data[i], vb = b->data[i];
        if (a->depth == 16 && b->depth == 8) vb *= 257;
        long d = va > vb ? va - vb : vb - va;
        if (d > m) m = d;
    }
    return m;
}

static int load(const char *name, dr_image *img, dr_image_info *info, dr_metadata *meta) {
    char path[512];
    snprintf(path, sizeof path, FIX "%s", name);
    return dr_image_load_meta(path, 0, img, info, meta);
}

/* Adobe RGB JPEG -> sRGB, against Pillow ImageCms (perceptual intent, Little
 * CMS underneath, the same libjpeg-turbo decode). Tolerance: 1 level at 8
 * bits (rounding of the two code paths); measured 0 here. 16 bits: the same
 * pixels times 257, within 2 levels of 8 bits (514) of the 8-bit reference. */
static void test_adobe_rgb(void) {
    dr_image a = {0}, ref = {0}, a16 = {0};
    dr_image_info info;
    CHECK(load("adobe.jpg", &a, &info, NULL) == DR_OK, "load adobe.jpg: %s", dr_last_error());
    CHECK(info.icc_size == 580 && info.icc_converted == 1, "adobe.jpg profile %zu bytes, converted %d", info.icc_size,
          info.icc_converted);
    CHECK(strstr(info.icc_description, "Adobe RGB") != NULL, "description '%s'", info.icc_description);
    CHECK(load("adobe_srgb_ref.png", &ref, &info, NULL) == DR_OK && info.icc_size == 0, "load the reference");
    long d = max_diff(&a, &ref);
    printf("adobe.jpg -> sRGB: max difference to Pillow ImageCms %ld (tolerance 1)\n", d);
    CHECK(d <= 1, "adobe.jpg converted to sRGB differs from ImageCms by %ld levels", d);
    dr_image raw = {0};
    CHECK(load("adobe16.png", &a16, &info, NULL) == DR_OK && a16.depth == 16 && info.icc_converted,
          "load adobe16.png: %s", dr_last_error());
    long d16 = max_diff(&a16, &ref);
    printf("adobe16.png -> sRGB: max difference to the 8-bit reference x 257: %ld (tolerance 514)\n", d16);
    CHECK(d16 <= 514, "16-bit conversion differs by %ld", d16);

    /* sRGB -> Adobe RGB (dr_image_from_srgb), saved with the profile and
     * loaded again (-> sRGB): the sRGB pixels come back within 2 levels (two
     * 8-bit roundings, the second in Adobe RGB's coarser steps) */
    dr_metadata m;
    CHECK(load("adobe.jpg", &raw, &info, &m) == DR_OK && m.icc_size == 580, "adobe.jpg with its profile");
    dr_image_free(&raw);
    dr_image back = a;
    size_t n = (size_t)a.width * a.height * a.channels;
    back.data = malloc(n * sizeof *back.data);
    if (back.data) {
        memcpy(back.data, a.data, n * sizeof *back.data);
        CHECK(dr_image_from_srgb(&back, m.icc, m.icc_size, "back") == DR_OK, "from sRGB: %s", dr_last_error());
        long changed = 0;
        for (size_t i = 0; i < n; i++) changed += back.data[i] != a.data[i];
        CHECK(changed > (long)n / 2, "the conversion to Adobe RGB changed %ld of %zu samples", changed, n);
        char path[512];
        snprintf(path, sizeof path, "%s/adobe_back.png", test_tmpdir());
        dr_save_options so;
        dr_save_options_init(&so);
        dr_metadata only_icc = {0};
        only_icc.icc = m.icc, only_icc.icc_size = m.icc_size;
        so.metadata = &only_icc;
        CHECK(dr_image_save(path, &back, &so) == DR_OK, "save in Adobe RGB: %s", dr_last_error());
        dr_image again = {0};
        CHECK(dr_image_load(path, 0, &again, &info) == DR_OK && info.icc_converted, "reload: %s", dr_last_error());
        long db = max_diff(&again, &a);
        printf("sRGB -> Adobe RGB -> sRGB at 8 bits: max difference %ld (tolerance 2)\n", db);
        CHECK(db <= 2, "round trip off by %ld levels", db);
        dr_image_free(&again);
        free(back.data);
    }
    /* a gray image cannot take an RGB profile */
    dr_image g;
    if (dr_image_alloc(&g, 2, 2, 1, 8) == DR_OK) {
        CHECK(dr_image_from_srgb(&g, m.icc, m.icc_size, "gray") == DR_ERR_UNSUPPORTED, "gray image, RGB profile");
        dr_image_free(&g);
    }
    /* our own sRGB profile is a no-op on load */
    unsigned char *srgb;
    size_t srgb_n;
    CHECK(dr_srgb_profile(&srgb, &srgb_n) == DR_OK && srgb_n > 132, "sRGB profile");
    dr_metadata_free(&m);
    dr_image_free(&raw);
    dr_image_free(&a);
    dr_image_free(&a16);
    dr_image_free(&ref);
    free(srgb);
}

static void test_bad_profiles_and_exif(void) {
    dr_image img;
    dr_image_info info;
    dr_metadata m;
    memset(&img, 0xA5, sizeof img);
    int rc = load("bad_icc.jpg", &img, &info, &m);
    CHECK(rc == DR_ERR_FORMAT, "bad_icc.jpg: %s", dr_status_name(rc));
    CHECK(strstr(dr_last_error(), "bad_icc.jpg") && strstr(dr_last_error(), "ICC"), "message: %s", dr_last_error());
    CHECK(img.data == NULL && m.icc == NULL, "nothing kept after a bad profile");
    rc = dr_image_load(FIX "bad_icc.jpg", 0, &img, NULL);
    CHECK(rc == DR_ERR_FORMAT, "bad profile refused without metadata too");
    rc = load("huge_icc.png", &img, &info, &m);
    CHECK(rc == DR_ERR_LIMIT && strstr(dr_last_error(), "huge_icc.png") && strstr(dr_last_error(), "ICC"),
          "huge_icc.png: %s: %s", dr_status_name(rc), dr_last_error());
    CHECK(dr_image_probe(FIX "huge_icc.png", &info) == DR_ERR_LIMIT, "the probe refuses it too");
    /* EXIF with an IFD pointing back at itself: refused with the metadata,
     * the orientation alone (plain load) is read as before */
    rc = load("exif_loop.jpg", &img, &info, &m);
    CHECK(rc == DR_ERR_FORMAT && strstr(dr_last_error(), "exif_loop.jpg") && strstr(dr_last_error(), "EXIF"),
          "exif_loop.jpg: %s: %s", dr_status_name(rc), dr_last_error());
    CHECK(img.data == NULL && m.exif == NULL, "nothing kept after a bad EXIF");
    CHECK(dr_image_load(FIX "exif_loop.jpg", 0, &img, NULL) == DR_OK, "plain load of exif_loop.jpg");
    dr_image_free(&img);
    /* a profile over the limit is refused on save, before any file exists */
    char path[512];
    snprintf(path, sizeof path, "%s/huge.png", test_tmpdir());
    dr_image small;
    if (dr_image_alloc(&small, 2, 2, 3, 8) == DR_OK) {
        dr_metadata big = {0};
        big.icc_size = DR_MAX_ICC_SIZE + 1;
        big.icc = calloc(1, big.icc_size);
        dr_save_options so;
        dr_save_options_init(&so);
        so.metadata = &big;
        CHECK(big.icc && dr_image_save(path, &small, &so) == DR_ERR_LIMIT, "huge profile refused on save");
        CHECK(access(path, F_OK) != 0, "nothing written");
        dr_metadata_free(&big);
        dr_image_free(&small);
    }
}

static int has(const unsigned char *p, size_t n, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; p && i + k <= n; i++)
        if (memcmp(p + i, s, k) == 0) return 1;
    return 0;
}

/* Each format's metadata read, and written back through each encoder. */
static void test_metadata_round_trips(void) {
    static const char *inputs[] = {"meta.jpg", "meta.png", "meta.tif", "meta.webp"};
    /* what each input holds: exif, xmp, iptc (TIFF: its EXIF's text fields) */
    static const int holds[4][3] = {{1, 1, 1}, {1, 1, 0}, {1, 1, 1}, {1, 1, 0}};
    static const char *outs[] = {"o.jpg", "o.png", "o.tif", "o.webp"};
    for (int i = 0; i < 4; i++) {
        dr_image img;
        dr_image_info info;
        dr_metadata m;
        int rc = load(inputs[i], &img, &info, &m);
        CHECK(rc == DR_OK, "%s: %s", inputs[i], dr_last_error());
        if (rc != DR_OK) continue;
        CHECK(info.icc_converted && m.icc_size == 580, "%s: Adobe RGB profile", inputs[i]);
        CHECK(!!m.exif_size == holds[i][0] && !!m.xmp_size == holds[i][1] && !!m.iptc_size == holds[i][2],
              "%s: exif %zu xmp %zu iptc %zu", inputs[i], m.exif_size, m.xmp_size, m.iptc_size);
        CHECK(has(m.xmp, m.xmp_size, "Harbour at dawn"), "%s: XMP title", inputs[i]);
        if (m.iptc_size) CHECK(has(m.iptc, m.iptc_size, "Boats in the harbour"), "%s: IPTC caption", inputs[i]);
        if (i == 0) CHECK(img.width == 16 && img.height == 24 && info.orientation == 6, "meta.jpg upright");
        for (int k = 0; k < 4; k++) {
            char path[512];
            snprintf(path, sizeof path, "%s/%d%s", test_tmpdir(), i, outs[k]);
            const char *prov[] = {"Tool", "diffrestore test", "Seed", "42 <&\">", NULL};
            dr_save_options so;
            dr_save_options_init(&so);
            so.metadata = &m;
            so.provenance = prov;
            rc = dr_image_save(path, &img, &so);
            CHECK(rc == DR_OK, "%s -> %s: %s", inputs[i], outs[k], dr_last_error());
            dr_image back;
            dr_image_info bi;
            dr_metadata bm;
            rc = dr_image_load_meta(path, 0, &back, &bi, &bm);
            CHECK(rc == DR_OK, "reload %s: %s", path, dr_last_error());
            if (rc != DR_OK) continue;
            dr_format f = dr_format_from_path(path);
            unsigned lost = dr_metadata_unsupported(f, &m);
            CHECK(bi.orientation == 1, "%s: orientation reset (%d)", path, bi.orientation);
            CHECK(bm.icc_size == m.icc_size && memcmp(bm.icc, m.icc, m.icc_size) == 0, "%s: profile kept", path);
            CHECK(has(bm.xmp, bm.xmp_size, "Harbour at dawn") &&
                      has(bm.xmp, bm.xmp_size, "diffrestore:Seed=\"42 &lt;&amp;&quot;&gt;\""),
                  "%s: XMP and escaped provenance", path);
            if (m.iptc_size && !(lost & DR_META_IPTC))
                CHECK(bm.iptc_size == m.iptc_size && memcmp(bm.iptc, m.iptc, m.iptc_size) == 0, "%s: IPTC bytes kept",
                      path);
            if (lost & DR_META_IPTC) CHECK(bm.iptc_size == 0, "%s: no IPTC in this format", path);
            if (m.exif_size) {
                /* TIFF keeps the text fields: the camera and the capture date */
                CHECK(bm.exif_size > 0 && has(bm.exif, bm.exif_size, "DiffCam"), "%s: EXIF Make kept", path);
                CHECK(has(bm.exif, bm.exif_size, "2001:02:03 04:05:06"), "%s: EXIF DateTimeOriginal kept", path);
                CHECK(!has(bm.exif, bm.exif_size, "\xFF\xD8\xFF"), "%s: thumbnail dropped", path);
            }
            dr_metadata_free(&bm);
            dr_image_free(&back);
        }
        dr_metadata_free(&m);
        dr_image_free(&img);
    }
    dr_metadata all = {0};
    unsigned char b = 1;
    all.icc = all.exif = all.xmp = all.iptc = &b;
    all.icc_size = all.exif_size = all.xmp_size = all.iptc_size = 1;
    CHECK(dr_metadata_unsupported(DR_FORMAT_JPEG, &all) == 0 && dr_metadata_unsupported(DR_FORMAT_TIFF, &all) == 0,
          "JPEG and TIFF hold everything");
    CHECK(dr_metadata_unsupported(DR_FORMAT_PNG, &all) == DR_META_IPTC &&
              dr_metadata_unsupported(DR_FORMAT_WEBP, &all) == DR_META_IPTC,
          "PNG and WebP hold no IPTC");
    /* a provenance key that is not a name is refused */
    dr_image one;
    if (dr_image_alloc(&one, 1, 1, 3, 8) == DR_OK) {
        char path[512];
        snprintf(path, sizeof path, "%s/badkey.png", test_tmpdir());
        const char *prov[] = {"a b", "x", NULL};
        dr_save_options so;
        dr_save_options_init(&so);
        so.provenance = prov;
        CHECK(dr_image_save(path, &one, &so) == DR_ERR_INVALID && access(path, F_OK) != 0, "bad key refused, no file");
        dr_image_free(&one);
    }
}

static void test_sha256(void) {
    char path[512], hex[65];
    snprintf(path, sizeof path, "%s/abc", test_tmpdir());
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("abc", f);
        fclose(f);
    }
    CHECK(dr_file_sha256(path, hex) == DR_OK &&
              strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
          "sha256(abc) = %s", hex);
    /* 56..64 bytes: the padding spills into a second block */
    f = fopen(path, "wb");
    if (f) {
        fputs("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", f);
        fclose(f);
    }
    CHECK(dr_file_sha256(path, hex) == DR_OK &&
              strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0,
          "sha256(448 bits) = %s", hex);
    CHECK(dr_file_sha256("/nonexistent/x", hex) == DR_ERR_IO, "missing file");
}

int main(void) {
    test_adobe_rgb();
    test_bad_profiles_and_exif();
    test_metadata_round_trips();
    test_sha256();
    return test_summary("test_colour_meta");
}
