/* A job request: JSON in, a checked serve_request out. No I/O and no global
 * state, so the fuzzer (tests/fuzz/fuzz_serve.c) can drive it directly. */
#include "serve.h"

#include "../modes.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errn, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errn, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
    return status;
}

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62; /* '-' and '_': the URL-safe alphabet */
    if (c == '/' || c == '_') return 63;
    return -1;
}

int serve_base64_decode(const char *s, size_t n, unsigned char **out, size_t *outn) {
    *out = NULL;
    *outn = 0;
    /* a data URL: "data:image/png;base64,...." */
    if (n >= 5 && memcmp(s, "data:", 5) == 0) {
        const char *comma = memchr(s, ',', n);
        if (!comma) return -1;
        size_t skip = (size_t)(comma + 1 - s);
        s += skip;
        n -= skip;
    }
    unsigned char *buf = malloc(n / 4 * 3 + 3);
    if (!buf) return -1;
    size_t k = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) { /* a bad character, or data after the padding */
            free(buf);
            return -1;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[k++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (bits >= 6 || pad > 2) { /* a lone sixth bit group cannot end a byte */
        free(buf);
        return -1;
    }
    *out = buf;
    *outn = k;
    return 0;
}

void serve_request_free(serve_request *rq) {
    if (!rq) return;
    dr_image_free(&rq->image);
    dr_image_free(&rq->mask);
    memset(rq, 0, sizeof *rq);
}

/* A JSON number that is an integer within lo..hi. */
static int get_int(const cJSON *v, double lo, double hi, long long *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi) return 0;
    *out = (long long)d;
    return 1;
}

/* Decode a base64 image field into img. */
static int decode_image(const cJSON *v, const char *field, const serve_limits *lim, dr_image *img, dr_image_info *info,
                        char *err, size_t errn) {
    if (!cJSON_IsString(v) || !v->valuestring)
        return fail(err, errn, 400, "\"%s\" must be a string: the file's bytes in base64", field);
    unsigned char *bytes;
    size_t n;
    if (serve_base64_decode(v->valuestring, strlen(v->valuestring), &bytes, &n) != 0)
        return fail(err, errn, 400, "\"%s\" is not valid base64", field);
    if (n == 0) {
        free(bytes);
        return fail(err, errn, 400, "\"%s\" is empty", field);
    }
    int rc = dr_image_load_memory(bytes, n, field, lim->max_pixels, img, info);
    free(bytes);
    if (rc == DR_ERR_LIMIT) return fail(err, errn, 413, "%s", dr_last_error());
    if (rc == DR_ERR_NOMEM) return fail(err, errn, 413, "%s", dr_last_error());
    if (rc != DR_OK) return fail(err, errn, 415, "%s", dr_last_error());
    return 0;
}

static const char *const known_fields[] = {"mode",   "image",   "name",    "mask",  "boxes", "scale",  "width",
                                           "height", "quality", "sampler", "steps", "seed",  "format", NULL};

static int parse(const cJSON *root, const serve_limits *lim, serve_request *rq, char *err, size_t errn) {
    if (!cJSON_IsObject(root)) return fail(err, errn, 400, "the request must be a JSON object");
    for (const cJSON *it = root->child; it; it = it->next) {
        int known = 0;
        for (int i = 0; known_fields[i]; i++) known |= it->string && strcmp(it->string, known_fields[i]) == 0;
        if (!known) return fail(err, errn, 400, "unknown field \"%.64s\"", it->string ? it->string : "");
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "mode");
    char names[128];
    cli_modes_with(0, names, sizeof names);
    if (!cJSON_IsString(v) || !v->valuestring) return fail(err, errn, 400, "\"mode\" is missing: %s", names);
    rq->mode = dr_mode_from_name(v->valuestring);
    if (rq->mode == DR_MODE_NONE) return fail(err, errn, 400, "unknown mode \"%.32s\": %s", v->valuestring, names);
    const dr_mode mode = rq->mode;
    const int takes_mask = cli_mode_takes(mode, DR_MODE_TAKES_MASK),
              takes_scale = cli_mode_takes(mode, DR_MODE_TAKES_SCALE);

    /* the file name, for the download: letters, digits, '.', '-', '_' only */
    snprintf(rq->name, sizeof rq->name, "image");
    v = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (v) {
        if (!cJSON_IsString(v) || !v->valuestring) return fail(err, errn, 400, "\"name\" must be a string");
        const char *base = strrchr(v->valuestring, '/');
        base = base ? base + 1 : v->valuestring;
        size_t k = 0;
        for (const char *p = base; *p && k + 1 < sizeof rq->name; p++) {
            char c = *p;
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '_' || (c == '.' && k > 0);
            rq->name[k++] = ok ? c : '_';
        }
        if (k) rq->name[k] = 0;
        char *dot = strrchr(rq->name, '.');
        if (dot && dot != rq->name) *dot = 0; /* the extension follows the output format */
    }

    /* the preset first; the explicit fields then override it */
    rq->quality = DR_QUALITY_DEFAULT;
    v = cJSON_GetObjectItemCaseSensitive(root, "quality");
    if (v && (!cJSON_IsString(v) || dr_quality_from_name(v->valuestring, &rq->quality) != DR_OK))
        return fail(err, errn, 400, "\"quality\" must be one of " DR_QUALITY_NAMES);
    if (dr_params_init_quality(&rq->params, mode, rq->quality) != DR_OK)
        return fail(err, errn, 400, "no preset for this mode");
    v = cJSON_GetObjectItemCaseSensitive(root, "sampler");
    if (v && (!cJSON_IsString(v) || dr_sampler_from_name(v->valuestring, &rq->params.sampler) != DR_OK))
        return fail(err, errn, 400, "\"sampler\" must be one of " DR_SAMPLER_NAMES);
    long long ll;
    v = cJSON_GetObjectItemCaseSensitive(root, "steps");
    if (v) {
        if (!get_int(v, 1, 1000, &ll)) return fail(err, errn, 400, "\"steps\" must be an integer 1..1000");
        rq->params.steps = (int)ll;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (v) {
        if (!get_int(v, 0, 9007199254740991.0, &ll))
            return fail(err, errn, 400, "\"seed\" must be an integer 0..2^53-1");
        rq->params.seed = (uint64_t)ll;
        rq->seed_given = 1;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (v) {
        if (!cJSON_IsString(v) || (strcmp(v->valuestring, "png") && strcmp(v->valuestring, "input")))
            return fail(err, errn, 400, "\"format\" must be \"png\" or \"input\"");
        rq->result_input_format = strcmp(v->valuestring, "input") == 0;
    }

    /* fields that belong to one mode */
    const cJSON *mask = cJSON_GetObjectItemCaseSensitive(root, "mask");
    const cJSON *boxes = cJSON_GetObjectItemCaseSensitive(root, "boxes");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(root, "scale");
    const cJSON *width = cJSON_GetObjectItemCaseSensitive(root, "width");
    const cJSON *height = cJSON_GetObjectItemCaseSensitive(root, "height");
    if (!takes_mask && (mask || boxes)) {
        cli_modes_with(DR_MODE_TAKES_MASK, names, sizeof names);
        return fail(err, errn, 400, "\"%s\" is for %s, not %s", mask ? "mask" : "boxes", names, dr_mode_name(mode));
    }
    if (!takes_scale && (scale || width || height)) {
        cli_modes_with(DR_MODE_TAKES_SCALE, names, sizeof names);
        return fail(err, errn, 400, "\"%s\" is for %s, not %s",
                    scale       ? "scale"
                        : width ? "width"
                                : "height",
                    names, dr_mode_name(mode));
    }
    if (takes_scale) {
        if (!scale && !width && !height)
            return fail(err, errn, 400, "%s needs \"scale\", or \"width\" or \"height\" of the output",
                        dr_mode_name(mode));
        if (scale && (width || height))
            return fail(err, errn, 400, "\"scale\" and \"width\"/\"height\" exclude each other");
        if (scale) {
            if (!cJSON_IsNumber(scale) || !isfinite(scale->valuedouble) || scale->valuedouble < 1 ||
                scale->valuedouble > 64)
                return fail(err, errn, 400, "\"scale\" must be a number 1..64");
            rq->params.scale = scale->valuedouble;
        }
        if (width) {
            if (!get_int(width, 1, 1 << 20, &ll))
                return fail(err, errn, 400, "\"width\" must be an integer 1..1048576");
            rq->params.out_width = (int)ll;
        }
        if (height) {
            if (!get_int(height, 1, 1 << 20, &ll))
                return fail(err, errn, 400, "\"height\" must be an integer 1..1048576");
            rq->params.out_height = (int)ll;
        }
    }
    if (mask && !cJSON_IsString(mask))
        return fail(err, errn, 400, "\"mask\" must be a string: an image file in base64");
    if (boxes && !cJSON_IsArray(boxes)) return fail(err, errn, 400, "\"boxes\" must be an array of [x, y, w, h]");
    if (boxes && cJSON_GetArraySize(boxes) > SERVE_MAX_BOXES)
        return fail(err, errn, 400, "\"boxes\" has more than %d boxes", SERVE_MAX_BOXES);

    /* the image, last of the cheap checks */
    dr_image_info info;
    int st = decode_image(cJSON_GetObjectItemCaseSensitive(root, "image"), "image", lim, &rq->image, &info, err, errn);
    if (st) return st;
    rq->in_format = info.format;
    const int W = rq->image.width, H = rq->image.height;

    if (takes_scale) {
        /* the output's pixels count against the same limit as the input's */
        double ow = rq->params.scale > 0 ? W * rq->params.scale : rq->params.out_width;
        double oh = rq->params.scale > 0 ? H * rq->params.scale : rq->params.out_height;
        if (ow <= 0) ow = oh * W / H;
        if (oh <= 0) oh = ow * H / W;
        if (ow * oh > (double)lim->max_pixels)
            return fail(err, errn, 413, "the output would be %.0fx%.0f pixels, more than the limit of %lld", ow, oh,
                        (long long)lim->max_pixels);
    }
    if (takes_mask && (mask || boxes)) {
        if (dr_image_alloc(&rq->mask, W, H, 1, 8) != DR_OK) return fail(err, errn, 413, "%s", dr_last_error());
        rq->have_mask = 1;
        if (mask) {
            dr_image m;
            st = decode_image(mask, "mask", lim, &m, NULL, err, errn);
            if (st) return st;
            if (m.width != W || m.height != H) {
                st = fail(err, errn, 422, "the mask is %dx%d but the image is %dx%d: they must be the same size",
                          m.width, m.height, W, H);
                dr_image_free(&m);
                return st;
            }
            const unsigned half = m.depth == 16 ? 32767 : 127;
            for (size_t i = 0; i < (size_t)W * H; i++) rq->mask.data[i] = m.data[i * m.channels] > half ? 255 : 0;
            dr_image_free(&m);
        }
        int nb = boxes ? cJSON_GetArraySize(boxes) : 0;
        for (int b = 0; b < nb; b++) {
            const cJSON *box = cJSON_GetArrayItem(boxes, b);
            long long xywh[4];
            int ok = cJSON_IsArray(box) && cJSON_GetArraySize(box) == 4;
            for (int k = 0; ok && k < 4; k++) ok = get_int(cJSON_GetArrayItem(box, k), -(1 << 30), 1 << 30, &xywh[k]);
            if (!ok) return fail(err, errn, 400, "box %d must be [x, y, w, h] in whole pixels", b + 1);
            if (xywh[2] <= 0 || xywh[3] <= 0) return fail(err, errn, 400, "box %d has no area", b + 1);
            long long x0 = xywh[0] < 0 ? 0 : xywh[0], y0 = xywh[1] < 0 ? 0 : xywh[1];
            long long x1 = xywh[0] + xywh[2], y1 = xywh[1] + xywh[3];
            if (x1 > W) x1 = W;
            if (y1 > H) y1 = H;
            if (x0 >= x1 || y0 >= y1) return fail(err, errn, 422, "box %d lies outside the %dx%d image", b + 1, W, H);
            for (long long y = y0; y < y1; y++)
                for (long long x = x0; x < x1; x++) rq->mask.data[y * W + x] = 255;
        }
        size_t holes = 0;
        for (size_t i = 0; i < (size_t)W * H; i++) holes += rq->mask.data[i] != 0;
        if (!holes) return fail(err, errn, 422, "the mask marks no pixel to fill: paint over the damage first");
    } else if (takes_mask && rq->image.channels != 2 && rq->image.channels != 4) {
        return fail(err, errn, 422,
                    "%s needs a \"mask\", \"boxes\", or an image whose transparent pixels "
                    "are the holes",
                    dr_mode_name(mode));
    }
    return 0;
}

int serve_request_parse(const char *body, size_t n, const serve_limits *lim, serve_request *rq, char *err,
                        size_t errn) {
    memset(rq, 0, sizeof *rq);
    err[0] = 0;
    cJSON *root = cJSON_ParseWithLength(body, n);
    if (!root) return fail(err, errn, 400, "the request is not valid JSON");
    int st = parse(root, lim, rq, err, errn);
    cJSON_Delete(root);
    if (st) serve_request_free(rq);
    return st;
}
