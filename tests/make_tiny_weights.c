/* Test helper for tests/test_cli_restore.sh (built, not run by ctest):
 *
 *   make_tiny_weights MODE OUT.safetensors [CONFIG]
 *       random-init weights of a tiny U-Net for MODE (colorize, inpaint, superres);
 *       CONFIG: another U-Net config string (default base=8,mult=1,2,res=1,attn=,groups=2)
 *   make_tiny_weights --image OUT.png|jpg W H CHANNELS DEPTH SEED
 *       a smooth random image (CHANNELS 1..4, DEPTH 8 or 16)
 *   make_tiny_weights --mask OUT.png W H X Y BW BH
 *       a 1-channel 8-bit mask, white (hole) inside the box, black elsewhere
 *   make_tiny_weights --punch IN OUT X Y BW BH
 *       IN (which has alpha) with alpha 0 (transparent: a hole) inside the box
 *   make_tiny_weights --size FILE
 *       prints "WxH CHANNELS DEPTH"
 *   make_tiny_weights --compare A B [MASK]
 *       prints the largest absolute sample difference between A and B over the
 *       known pixels (MASK black, or every pixel without MASK); exit 1 when the
 *       images' layouts differ
 *
 * Uses only the public header. */
#include "diffrestore.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
    fprintf(stderr, "make_tiny_weights: %s: %s\n", what, dr_last_error());
    return 1;
}

static int make_weights(const char *mode_name, const char *out, const char *config) {
    dr_mode mode = dr_mode_from_name(mode_name);
    if (mode == DR_MODE_NONE) {
        fprintf(stderr, "make_tiny_weights: unknown mode '%s'\n", mode_name);
        return 2;
    }
    dr_unet_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (dr_unet_config_parse(&cfg, config ? config : "base=8,mult=1,2,res=1,attn=,groups=2") != DR_OK)
        return fail("config");
    dr_model *m;
    if (dr_model_new_random(&cfg, mode, 1, &m) != DR_OK) return fail("new model");
    int rc = dr_model_save(m, out, 0);
    dr_model_free(m);
    return rc == DR_OK ? 0 : fail(out);
}

static uint64_t g_state;
static double urand(void) {
    g_state = g_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(g_state >> 11) / 9007199254740992.0;
}

static int make_image(char **a) {
    int w = atoi(a[1]), h = atoi(a[2]), ch = atoi(a[3]), depth = atoi(a[4]);
    g_state = strtoull(a[5], NULL, 10) * 2654435761ULL + 1;
    dr_image img;
    if (dr_image_alloc(&img, w, h, ch, depth) != DR_OK) return fail("alloc");
    const double maxv = depth == 16 ? 65535.0 : 255.0;
    for (int c = 0; c < ch; c++) {
        double fx = 1 + 3 * urand(), fy = 1 + 3 * urand(), px = 6.28 * urand(), py = 6.28 * urand();
        int is_alpha = (ch == 2 || ch == 4) && c == ch - 1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double v = 0.5 + 0.25 * sin(fx * x / w * 6.28 + px) + 0.2 * cos(fy * y / h * 6.28 + py);
                if (is_alpha) v = 1; /* opaque: the tests punch holes where they want them */
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                img.data[((size_t)y * w + x) * ch + c] = (uint16_t)lround(v * maxv);
            }
    }
    int rc = dr_image_save(a[0], &img, NULL);
    dr_image_free(&img);
    return rc == DR_OK ? 0 : fail(a[0]);
}

static int make_mask(char **a) {
    int w = atoi(a[1]), h = atoi(a[2]), bx = atoi(a[3]), by = atoi(a[4]), bw = atoi(a[5]), bh = atoi(a[6]);
    dr_image img;
    if (dr_image_alloc(&img, w, h, 1, 8) != DR_OK) return fail("alloc");
    for (int y = by; y < by + bh; y++)
        for (int x = bx; x < bx + bw; x++)
            if (x >= 0 && y >= 0 && x < w && y < h) img.data[(size_t)y * w + x] = 255;
    int rc = dr_image_save(a[0], &img, NULL);
    dr_image_free(&img);
    return rc == DR_OK ? 0 : fail(a[0]);
}

static int punch(char **a) {
    dr_image img;
    if (dr_image_load(a[0], 0, &img, NULL) != DR_OK) return fail(a[0]);
    int bx = atoi(a[2]), by = atoi(a[3]), bw = atoi(a[4]), bh = atoi(a[5]);
    if (img.channels != 2 && img.channels != 4) {
        fprintf(stderr, "make_tiny_weights: %s has no alpha\n", a[0]);
        dr_image_free(&img);
        return 1;
    }
    for (int y = by; y < by + bh; y++)
        for (int x = bx; x < bx + bw; x++)
            if (x >= 0 && y >= 0 && x < img.width && y < img.height)
                img.data[((size_t)y * img.width + x) * img.channels + img.channels - 1] = 0;
    int rc = dr_image_save(a[1], &img, NULL);
    dr_image_free(&img);
    return rc == DR_OK ? 0 : fail(a[1]);
}

static int print_size(const char *path) {
    dr_image_info info;
    if (dr_image_probe(path, &info) != DR_OK) return fail(path);
    printf("%dx%d %d %d\n", info.width, info.height, info.channels, info.depth);
    return 0;
}

static int compare(const char *pa, const char *pb, const char *pm) {
    dr_image a, b, m = {0};
    if (dr_image_load(pa, 0, &a, NULL) != DR_OK) return fail(pa);
    if (dr_image_load(pb, 0, &b, NULL) != DR_OK) return fail(pb);
    if (pm && dr_image_load(pm, 0, &m, NULL) != DR_OK) return fail(pm);
    if (a.width != b.width || a.height != b.height || a.channels != b.channels || a.depth != b.depth ||
        (pm && (m.width != a.width || m.height != a.height))) {
        fprintf(stderr, "make_tiny_weights: %s and %s differ in layout\n", pa, pb);
        return 1;
    }
    int maxd = 0;
    size_t n = (size_t)a.width * a.height;
    for (size_t i = 0; i < n; i++) {
        if (pm && 2 * m.data[i * m.channels] > (m.depth == 16 ? 65535 : 255)) continue; /* hole */
        for (int c = 0; c < a.channels; c++) {
            int d = abs((int)a.data[i * a.channels + c] - (int)b.data[i * b.channels + c]);
            if (d > maxd) maxd = d;
        }
    }
    printf("%d\n", maxd);
    dr_image_free(&a);
    dr_image_free(&b);
    dr_image_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    if ((argc == 3 || argc == 4) && argv[1][0] != '-')
        return make_weights(argv[1], argv[2], argc == 4 ? argv[3] : NULL);
    if (argc == 8 && strcmp(argv[1], "--image") == 0) return make_image(argv + 2);
    if (argc == 9 && strcmp(argv[1], "--mask") == 0) return make_mask(argv + 2);
    if (argc == 8 && strcmp(argv[1], "--punch") == 0) return punch(argv + 2);
    if (argc == 3 && strcmp(argv[1], "--size") == 0) return print_size(argv[2]);
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "--compare") == 0)
        return compare(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    fprintf(stderr,
            "usage: make_tiny_weights MODE OUT.safetensors\n"
            "       make_tiny_weights --image OUT W H CHANNELS DEPTH SEED\n"
            "       make_tiny_weights --mask OUT W H X Y BW BH\n"
            "       make_tiny_weights --punch IN OUT X Y BW BH\n"
            "       make_tiny_weights --size FILE\n"
            "       make_tiny_weights --compare A B [MASK]\n");
    return 2;
}
