/* Image objects, format detection, and the load/probe/save entry points that
 * dispatch to png_io.c and jpeg_io.c. */
#include "io/image_internal.h"

#include "common/error.h"
#include "common/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ objects */

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
    if (!img) return dr_error(DR_ERR_INVALID, "dr_image_alloc: img is NULL");
    memset(img, 0, sizeof *img);
    if (width <= 0 || height <= 0)
        return dr_error(DR_ERR_INVALID, "dr_image_alloc: invalid size %dx%d", width, height);
    if (channels < 1 || channels > 4)
        return dr_error(DR_ERR_INVALID, "dr_image_alloc: invalid channel count %d", channels);
    if (depth != 8 && depth != 16)
        return dr_error(DR_ERR_INVALID, "dr_image_alloc: invalid depth %d (8 or 16)", depth);
    size_t n = sample_count(width, height, channels);
    if (n == 0)
        return dr_error(DR_ERR_LIMIT, "dr_image_alloc: %dx%dx%d image is too large for memory",
                        width, height, channels);
    uint16_t *data = calloc(n, sizeof *data);
    if (!data)
        return dr_error(DR_ERR_NOMEM, "dr_image_alloc: out of memory for a %dx%dx%d image",
                        width, height, channels);
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

int dr_image_validate(const dr_image *img, const char *name) {
    if (!img) return dr_error(DR_ERR_INVALID, "%s: image is NULL", name);
    if (img->width <= 0 || img->height <= 0)
        return dr_error(DR_ERR_INVALID, "%s: invalid image size %dx%d", name, img->width,
                        img->height);
    if (img->channels < 1 || img->channels > 4)
        return dr_error(DR_ERR_INVALID, "%s: invalid channel count %d", name, img->channels);
    if (img->depth != 8 && img->depth != 16)
        return dr_error(DR_ERR_INVALID, "%s: invalid depth %d (8 or 16)", name, img->depth);
    if (sample_count(img->width, img->height, img->channels) == 0)
        return dr_error(DR_ERR_INVALID, "%s: image size %dx%dx%d overflows", name, img->width,
                        img->height, img->channels);
    if (!img->data) return dr_error(DR_ERR_INVALID, "%s: image has no pixel data", name);
    if (img->depth == 8) {
        /* Out-of-range 8-bit samples are a caller bug; refuse rather than
         * silently wrap or clip them in the encoders. */
        size_t n = sample_count(img->width, img->height, img->channels);
        for (size_t i = 0; i < n; i++)
            if (img->data[i] > 255) {
                size_t px = i / (size_t)img->channels;
                return dr_error(DR_ERR_INVALID,
                                "%s: sample value %u at (%zu, %zu) exceeds 255 in an 8-bit image",
                                name, (unsigned)img->data[i], px % (size_t)img->width,
                                px / (size_t)img->width);
            }
    }
    return DR_OK;
}

int dr_image_check_limit(const char *name, int64_t width, int64_t height, int64_t max_pixels) {
    if (max_pixels <= 0) max_pixels = DR_DEFAULT_MAX_PIXELS;
    /* Both come from 16/31-bit header fields, so the product cannot overflow;
     * check anyway so the function is safe for any caller. */
    if (width <= 0 || height <= 0)
        return dr_error(DR_ERR_FORMAT, "%s: invalid image size %lldx%lld", name,
                        (long long)width, (long long)height);
    if (width > INT32_MAX || height > INT32_MAX || width > max_pixels / height)
        return dr_error(DR_ERR_LIMIT, "%s: image is %lldx%lld, over the limit of %lld pixels",
                        name, (long long)width, (long long)height, (long long)max_pixels);
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
    if (n >= 4 && ((p[0] == 'I' && p[1] == 'I' && (p[2] == 42 || p[2] == 43) && p[3] == 0) ||
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

const char *dr_color_space_name(int cs) {
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
    int n = snprintf(buf, size, "%s %dx%d, %d channel%s, %d-bit, %s%s%s",
                     dr_format_name(info->format), info->width, info->height, info->channels,
                     info->channels == 1 ? "" : "s", info->depth,
                     dr_color_space_name(info->color_space), info->interlaced ? ", " : "",
                     info->interlaced ? scan : "");
    if (info->orientation > 1 && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, ", EXIF orientation %d (applied)", info->orientation);
    if (info->icc_size && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ", ICC profile \"%s\" (%s)", info->icc_description,
                 info->icc_converted ? "converted to sRGB" : "not used");
}

/* ------------------------------------------------------------------ loading */

static int decode_stored(const void *buf, size_t size, const char *name, int64_t max_pixels,
                         dr_image *img, dr_image_info *info, dr_metadata *meta) {
    if (size == 0) return dr_error(DR_ERR_FORMAT, "%s: empty file", name);
    switch (dr_format_detect(buf, size)) {
    case DR_FORMAT_PNG: return dr_png_decode(buf, size, name, max_pixels, img, info, meta);
    case DR_FORMAT_JPEG: return dr_jpeg_decode(buf, size, name, max_pixels, img, info, meta);
    case DR_FORMAT_TIFF: return dr_tiff_decode(buf, size, name, max_pixels, img, info, meta);
    case DR_FORMAT_WEBP: return dr_webp_decode(buf, size, name, max_pixels, img, info, meta);
    default: return dr_error(DR_ERR_UNSUPPORTED, "%s: not a PNG, JPEG, TIFF or WebP file", name);
    }
}

/* Decode, turn the pixels and the reported size upright by the file's
 * orientation (the decoders report it as stored), and convert them to sRGB
 * by the embedded ICC profile. With want_meta the metadata is checked and
 * handed over in *meta; otherwise only the profile is used. */
static int decode(const void *buf, size_t size, const char *name, int64_t max_pixels,
                  dr_image *img, dr_image_info *info, dr_metadata *meta, int want_meta) {
    dr_image_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    memset(meta, 0, sizeof *meta);
    int rc = decode_stored(buf, size, name, max_pixels, img, info, meta);
    if (rc != DR_OK) goto fail;
    if (info->orientation < 1 || info->orientation > 8) info->orientation = 1;
    if (info->orientation >= 5) {
        int t = info->width;
        info->width = info->height;
        info->height = t;
    }
    if (img) {
        rc = dr_image_orient(img, info->orientation);
        if (rc != DR_OK) {
            rc = dr_error_prefix(rc, "%s", name);
            goto fail;
        }
    }
    if (meta->icc) {
        info->icc_size = meta->icc_size;
        rc = dr_icc_to_srgb(img, info->channels, meta->icc, meta->icc_size, name, &info->icc_converted,
                            info->icc_description, sizeof info->icc_description);
        if (rc != DR_OK) goto fail;
    }
    if (want_meta && meta->exif && (rc = dr_exif_check(meta->exif, meta->exif_size, name)) != DR_OK) goto fail;
    info->exif_size = meta->exif_size;
    info->xmp_size = meta->xmp_size;
    info->iptc_size = meta->iptc_size;
    return DR_OK;
fail:
    if (img) dr_image_free(img);
    dr_metadata_free(meta);
    return rc;
}

int dr_image_load_memory_meta(const void *buf, size_t size, const char *name, int64_t max_pixels,
                              dr_image *img, dr_image_info *info, dr_metadata *meta) {
    if (!name) name = "<memory>";
    if (info) memset(info, 0, sizeof *info);
    if (meta) memset(meta, 0, sizeof *meta);
    if (!img) return dr_error(DR_ERR_INVALID, "%s: img is NULL", name);
    memset(img, 0, sizeof *img);
    if (!buf && size) return dr_error(DR_ERR_INVALID, "%s: buffer is NULL", name);
    dr_metadata m;
    int rc = decode(buf, size, name, max_pixels, img, info, &m, meta != NULL);
    if (rc != DR_OK) {
        dr_image_free(img); /* decoders already do; keep the contract local */
        if (info) memset(info, 0, sizeof *info);
        return rc;
    }
    if (meta) *meta = m;
    else dr_metadata_free(&m);
    return DR_OK;
}

int dr_image_load_memory(const void *buf, size_t size, const char *name, int64_t max_pixels,
                         dr_image *img, dr_image_info *info) {
    return dr_image_load_memory_meta(buf, size, name, max_pixels, img, info, NULL);
}

int dr_image_load_meta(const char *path, int64_t max_pixels, dr_image *img, dr_image_info *info,
                       dr_metadata *meta) {
    if (info) memset(info, 0, sizeof *info);
    if (img) memset(img, 0, sizeof *img);
    if (meta) memset(meta, 0, sizeof *meta);
    if (!path) return dr_error(DR_ERR_INVALID, "dr_image_load: path is NULL");
    if (!img) return dr_error(DR_ERR_INVALID, "%s: img is NULL", path);
    unsigned char *buf;
    size_t size;
    DR_TRY(dr_file_read_all(path, DR_IMAGE_MAX_FILE_SIZE, &buf, &size));
    int rc = dr_image_load_memory_meta(buf, size, path, max_pixels, img, info, meta);
    free(buf);
    return rc;
}

int dr_image_load(const char *path, int64_t max_pixels, dr_image *img, dr_image_info *info) {
    return dr_image_load_meta(path, max_pixels, img, info, NULL);
}

int dr_image_probe(const char *path, dr_image_info *info) {
    if (!path) return dr_error(DR_ERR_INVALID, "dr_image_probe: path is NULL");
    if (!info) return dr_error(DR_ERR_INVALID, "%s: info is NULL", path);
    memset(info, 0, sizeof *info);
    /* The whole file is read: a JPEG's SOF can sit behind up to megabytes of
     * APPn metadata, and the files are bounded by DR_IMAGE_MAX_FILE_SIZE. */
    unsigned char *buf;
    size_t size;
    DR_TRY(dr_file_read_all(path, DR_IMAGE_MAX_FILE_SIZE, &buf, &size));
    dr_metadata m;
    int rc = decode(buf, size, path, 0, NULL, info, &m, 0);
    dr_metadata_free(&m);
    free(buf);
    if (rc != DR_OK) memset(info, 0, sizeof *info);
    return rc;
}

/* ------------------------------------------------------------------ saving */

void dr_save_options_init(dr_save_options *o) {
    if (!o) return;
    o->jpeg_quality = 92;
    o->webp_quality = 0;
    o->overwrite = 0;
    o->metadata = NULL;
    o->provenance = NULL;
}

/* The output format from the extension of the file name (not the directory). */
dr_format dr_format_from_path(const char *path) {
    if (!path) return DR_FORMAT_UNKNOWN;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return DR_FORMAT_UNKNOWN; /* "x" or ".png" (a hidden name) */
    if (strcasecmp(dot, ".png") == 0) return DR_FORMAT_PNG;
    if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0) return DR_FORMAT_JPEG;
    if (strcasecmp(dot, ".tif") == 0 || strcasecmp(dot, ".tiff") == 0) return DR_FORMAT_TIFF;
    if (strcasecmp(dot, ".webp") == 0) return DR_FORMAT_WEBP;
    return DR_FORMAT_UNKNOWN;
}

/* What saving and encoding share: the image and the quality checked for fmt. */
static int check_encode(dr_format fmt, const dr_image *img, const dr_save_options *o, const char *name) {
    DR_TRY(dr_image_validate(img, name));
    if (fmt == DR_FORMAT_JPEG && (o->jpeg_quality < 1 || o->jpeg_quality > 100))
        return dr_error(DR_ERR_INVALID, "%s: JPEG quality %d is not within 1..100", name, o->jpeg_quality);
    if (fmt == DR_FORMAT_WEBP && (o->webp_quality < 0 || o->webp_quality > 100))
        return dr_error(DR_ERR_INVALID, "%s: WebP quality %d is not within 0..100", name, o->webp_quality);
    return DR_OK;
}

/* The encoder of fmt into fp (PNG, JPEG, TIFF or WebP). */
static int encode_fp(dr_format fmt, FILE *fp, const char *name, const dr_image *img, const dr_save_options *o,
                     const dr_out_meta *m) {
    switch (fmt) {
    case DR_FORMAT_PNG: return dr_png_encode(fp, name, img, m);
    case DR_FORMAT_JPEG: return dr_jpeg_encode(fp, name, img, o->jpeg_quality, m);
    case DR_FORMAT_TIFF: return dr_tiff_encode(fp, name, img, m);
    default: return dr_webp_encode(fp, name, img, o->webp_quality, m);
    }
}

int dr_image_save(const char *path, const dr_image *img, const dr_save_options *opts) {
    if (!path || !*path) return dr_error(DR_ERR_INVALID, "dr_image_save: empty output path");
    dr_save_options o;
    dr_save_options_init(&o);
    if (opts) o = *opts;
    DR_TRY(dr_image_validate(img, path));
    dr_format fmt = dr_format_from_path(path);
    if (fmt == DR_FORMAT_UNKNOWN)
        return dr_error(DR_ERR_INVALID, "%s: unknown output extension, use .png, .jpg, .tif or .webp", path);
    DR_TRY(check_encode(fmt, img, &o, path));

    dr_out_meta m;
    DR_TRY(dr_out_meta_prepare(&o, img, path, &m));
    dr_atomic_file w;
    int rc = dr_atomic_open(&w, path, o.overwrite);
    if (rc != DR_OK) {
        dr_out_meta_free(&m);
        return rc;
    }
    rc = encode_fp(fmt, w.fp, path, img, &o, &m);
    dr_out_meta_free(&m);
    if (rc != DR_OK) {
        dr_atomic_abort(&w); /* removes the temp file; the message is already set */
        return rc;
    }
    /* commit flushes, fsyncs and closes: late write errors (disk full) surface here. */
    return dr_atomic_commit(&w, o.overwrite);
}

int dr_image_encode(dr_format fmt, const dr_image *img, const dr_save_options *opts, const char *name,
                    unsigned char **buf, size_t *size) {
    if (!buf || !size) return dr_error(DR_ERR_INVALID, "dr_image_encode: buf or size is NULL");
    *buf = NULL;
    *size = 0;
    if (!name) name = "image";
    dr_save_options o;
    dr_save_options_init(&o);
    if (opts) o = *opts;
    if (fmt != DR_FORMAT_PNG && fmt != DR_FORMAT_JPEG && fmt != DR_FORMAT_TIFF && fmt != DR_FORMAT_WEBP)
        return dr_error(DR_ERR_INVALID, "%s: cannot encode format %d", name, (int)fmt);
    DR_TRY(check_encode(fmt, img, &o, name));
    dr_out_meta m;
    DR_TRY(dr_out_meta_prepare(&o, img, name, &m));
    /* An anonymous temporary file (unlinked at creation, so nothing is left
     * behind even on a crash): every encoder writes to a FILE and libtiff
     * seeks, which a memory stream cannot read back. */
    FILE *fp = tmpfile();
    if (!fp) {
        dr_out_meta_free(&m);
        return dr_error(DR_ERR_IO, "%s: cannot create a temporary file: %s", name, strerror(errno));
    }
    int rc = encode_fp(fmt, fp, name, img, &o, &m);
    dr_out_meta_free(&m);
    long len = -1;
    if (rc == DR_OK) {
        if (fflush(fp) != 0 || fseek(fp, 0, SEEK_END) != 0 || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0)
            rc = dr_error(DR_ERR_IO, "%s: temporary file: %s", name, strerror(errno));
    }
    if (rc == DR_OK) {
        *buf = malloc(len > 0 ? (size_t)len : 1);
        if (!*buf) rc = dr_error(DR_ERR_NOMEM, "%s: out of memory for %ld encoded bytes", name, len);
        else if (fread(*buf, 1, (size_t)len, fp) != (size_t)len) {
            free(*buf);
            *buf = NULL;
            rc = dr_error(DR_ERR_IO, "%s: cannot read the temporary file back", name);
        } else *size = (size_t)len;
    }
    fclose(fp);
    return rc;
}
