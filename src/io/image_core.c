/* image_core.c - dr_image itself: allocation, checks, the decompression-bomb
 * limit, format and colour-space names. Below the codecs, which build images
 * with it; image.c (load, save) sits above them. */
#include "io/image_core.h"

#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Number of samples of a w x h x c image, or 0 if that would not fit in a
 * size_t as uint16 samples (the caller turns 0 into an error). */
static size_t sample_count(int width, int height, int channels) {
    size_t w = (size_t)width, h = (size_t)height, c = (size_t)channels;
    if (w == 0 || h == 0 || c == 0) return 0;
    if (w > SIZE_MAX / h) return 0;
    size_t px = w * h;
    if (px > SIZE_MAX / c / sizeof(uint16_t)) return 0;
    return px * c;
}

int dr_image_alloc(dr_image *img, int width, int height, int channels, int depth) {
    if (!img) return error_set(DR_ERR_INVALID, "dr_image_alloc: img is NULL");
    memset(img, 0, sizeof *img);
    if (width <= 0 || height <= 0)
        return error_set(DR_ERR_INVALID, "dr_image_alloc: invalid size %dx%d", width, height);
    if (channels < 1 || channels > 4)
        return error_set(DR_ERR_INVALID, "dr_image_alloc: invalid channel count %d", channels);
    if (depth != 8 && depth != 16)
        return error_set(DR_ERR_INVALID, "dr_image_alloc: invalid depth %d (8 or 16)", depth);
    size_t n = sample_count(width, height, channels);
    if (n == 0)
        return error_set(DR_ERR_LIMIT, "dr_image_alloc: %dx%dx%d image is too large for memory", width, height,
                         channels);
    uint16_t *data = calloc(n, sizeof *data);
    if (!data)
        return error_set(DR_ERR_NOMEM, "dr_image_alloc: out of memory for a %dx%dx%d image", width, height, channels);
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->depth = depth;
    img->data = data;
    return DR_OK;
}

void dr_image_free(dr_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

int io_image_validate(const dr_image *img, const char *name) {
    if (!img) return error_set(DR_ERR_INVALID, "%s: image is NULL", name);
    if (img->width <= 0 || img->height <= 0)
        return error_set(DR_ERR_INVALID, "%s: invalid image size %dx%d", name, img->width, img->height);
    if (img->channels < 1 || img->channels > 4)
        return error_set(DR_ERR_INVALID, "%s: invalid channel count %d", name, img->channels);
    if (img->depth != 8 && img->depth != 16)
        return error_set(DR_ERR_INVALID, "%s: invalid depth %d (8 or 16)", name, img->depth);
    if (sample_count(img->width, img->height, img->channels) == 0)
        return error_set(DR_ERR_INVALID, "%s: image size %dx%dx%d overflows", name, img->width, img->height,
                         img->channels);
    if (!img->data) return error_set(DR_ERR_INVALID, "%s: image has no pixel data", name);
    if (img->depth == 8) {
        /* Out-of-range 8-bit samples are a caller bug; refuse rather than
         * silently wrap or clip them in the encoders. */
        size_t n = sample_count(img->width, img->height, img->channels);
        for (size_t i = 0; i < n; i++)
            if (img->data[i] > 255) {
                size_t px = i / (size_t)img->channels;
                return error_set(DR_ERR_INVALID, "%s: sample value %u at (%zu, %zu) exceeds 255 in an 8-bit image",
                                 name, (unsigned)img->data[i], px % (size_t)img->width, px / (size_t)img->width);
            }
    }
    return DR_OK;
}

int io_image_check_limit(const char *name, int64_t width, int64_t height, int64_t max_pixels) {
    if (max_pixels <= 0) max_pixels = DR_DEFAULT_MAX_PIXELS;
    /* Both come from 16/31-bit header fields, so the product cannot overflow;
     * check anyway so the function is safe for any caller. */
    if (width <= 0 || height <= 0)
        return error_set(DR_ERR_FORMAT, "%s: invalid image size %lldx%lld", name, (long long)width, (long long)height);
    if (width > INT32_MAX || height > INT32_MAX || width > max_pixels / height)
        return error_set(DR_ERR_LIMIT, "%s: image is %lldx%lld, over the limit of %lld pixels", name, (long long)width,
                         (long long)height, (long long)max_pixels);
    return DR_OK;
}

/* ------------------------------------------------------------------ formats */

dr_format dr_format_detect(const void *head, size_t n) {
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const unsigned char *p = head;
    if (!p) return DR_FORMAT_UNKNOWN;
    if (n >= 8 && memcmp(p, png_sig, 8) == 0) return DR_FORMAT_PNG;
    /* SOI followed by the first marker's 0xFF. */
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return DR_FORMAT_JPEG;
    /* Classic TIFF (42) and BigTIFF (43), either byte order. */
    if (n >= 4 &&
        ((p[0] == 'I' && p[1] == 'I' && (p[2] == 42 || p[2] == 43) && p[3] == 0) ||
         (p[0] == 'M' && p[1] == 'M' && p[2] == 0 && (p[3] == 42 || p[3] == 43))))
        return DR_FORMAT_TIFF;
    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0) return DR_FORMAT_WEBP;
    return DR_FORMAT_UNKNOWN;
}

const char *dr_format_name(dr_format f) {
    switch (f) {
    case DR_FORMAT_PNG: return "PNG";
    case DR_FORMAT_JPEG: return "JPEG";
    case DR_FORMAT_TIFF: return "TIFF";
    case DR_FORMAT_WEBP: return "WebP";
    default: return "unknown";
    }
}

const char *io_color_space_name(int cs) {
    switch (cs) {
    case DR_CS_GRAY: return "gray";
    case DR_CS_GRAY_ALPHA: return "gray+alpha";
    case DR_CS_RGB: return "RGB";
    case DR_CS_RGBA: return "RGBA";
    case DR_CS_PALETTE: return "palette";
    case DR_CS_YCBCR: return "YCbCr";
    case DR_CS_CMYK: return "CMYK";
    case DR_CS_YCCK: return "YCCK";
    default: return "unknown";
    }
}

void dr_image_info_describe(const dr_image_info *info, char *buf, size_t size) {
    if (!buf || size == 0) return;
    if (!info) {
        snprintf(buf, size, "no image");
        return;
    }
    const char *scan = info->format == DR_FORMAT_JPEG ? "progressive" : "interlaced";
    int n =
        snprintf(buf, size, "%s %dx%d, %d channel%s, %d-bit, %s%s%s", dr_format_name(info->format), info->width,
                 info->height, info->channels, info->channels == 1 ? "" : "s", info->depth,
                 io_color_space_name(info->color_space), info->interlaced ? ", " : "", info->interlaced ? scan : "");
    if (info->orientation > 1 && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, ", EXIF orientation %d (applied)", info->orientation);
    if (info->icc_size && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ", ICC profile \"%s\" (%s)", info->icc_description,
                 info->icc_converted ? "converted to sRGB" : "not used");
}

/* ------------------------------------------------------------------ loading */
