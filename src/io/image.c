/* image.c - load, probe, save and encode: the entry points that dispatch to
 * the codecs (png_io.c, jpeg_io.c, tiff_io.c, webp_io.c) and apply the
 * orientation and colour metadata. dr_image itself is image_core.c. */
#include "io/image_core.h"
#include "io/codecs.h"
#include "io/meta.h"
#include "io/icc.h"
#include "io/exif.h"
#include "io/orient.h"

#include "common/error.h"
#include "common/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int decode_stored(const void *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                         dr_image_info *info, dr_metadata *meta) {
    if (size == 0) return error_set(DR_ERR_FORMAT, "%s: empty file", name);
    switch (dr_format_detect(buf, size)) {
    case DR_FORMAT_PNG: return io_png_decode(buf, size, name, max_pixels, img, info, meta);
    case DR_FORMAT_JPEG: return io_jpeg_decode(buf, size, name, max_pixels, img, info, meta);
    case DR_FORMAT_TIFF: return io_tiff_decode(buf, size, name, max_pixels, img, info, meta);
    case DR_FORMAT_WEBP: return io_webp_decode(buf, size, name, max_pixels, img, info, meta);
    default: return error_set(DR_ERR_UNSUPPORTED, "%s: not a PNG, JPEG, TIFF or WebP file", name);
    }
}

/* Decode, turn the pixels and the reported size upright by the file's
 * orientation (the decoders report it as stored), and convert them to sRGB
 * by the embedded ICC profile. With want_meta the metadata is checked and
 * handed over in *meta; otherwise only the profile is used. */
static int decode(const void *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                  dr_image_info *info, dr_metadata *meta, int want_meta) {
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
        rc = io_image_orient(img, info->orientation);
        if (rc != DR_OK) {
            rc = error_prefix(rc, "%s", name);
            goto fail;
        }
    }
    if (meta->icc) {
        info->icc_size = meta->icc_size;
        rc = io_icc_to_srgb(img, info->channels, meta->icc, meta->icc_size, name, &info->icc_converted,
                            info->icc_description, sizeof info->icc_description);
        if (rc != DR_OK) goto fail;
    }
    if (want_meta && meta->exif && (rc = io_exif_check(meta->exif, meta->exif_size, name)) != DR_OK) goto fail;
    info->exif_size = meta->exif_size;
    info->xmp_size = meta->xmp_size;
    info->iptc_size = meta->iptc_size;
    return DR_OK;
fail:
    if (img) dr_image_free(img);
    dr_metadata_free(meta);
    return rc;
}

int dr_image_load_memory_meta(const void *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                              dr_image_info *info, dr_metadata *meta) {
    if (!name) name = "<memory>";
    if (info) memset(info, 0, sizeof *info);
    if (meta) memset(meta, 0, sizeof *meta);
    if (!img) return error_set(DR_ERR_INVALID, "%s: img is NULL", name);
    memset(img, 0, sizeof *img);
    if (!buf && size) return error_set(DR_ERR_INVALID, "%s: buffer is NULL", name);
    dr_metadata m;
    int rc = decode(buf, size, name, max_pixels, img, info, &m, meta != NULL);
    if (rc != DR_OK) {
        dr_image_free(img); /* decoders already do; keep the contract local */
        if (info) memset(info, 0, sizeof *info);
        return rc;
    }
    if (meta)
        *meta = m;
    else
        dr_metadata_free(&m);
    return DR_OK;
}

int dr_image_load_memory(const void *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                         dr_image_info *info) {
    return dr_image_load_memory_meta(buf, size, name, max_pixels, img, info, NULL);
}

int dr_image_load_meta(const char *path, int64_t max_pixels, dr_image *img, dr_image_info *info, dr_metadata *meta) {
    if (info) memset(info, 0, sizeof *info);
    if (img) memset(img, 0, sizeof *img);
    if (meta) memset(meta, 0, sizeof *meta);
    if (!path) return error_set(DR_ERR_INVALID, "dr_image_load: path is NULL");
    if (!img) return error_set(DR_ERR_INVALID, "%s: img is NULL", path);
    unsigned char *buf;
    size_t size;
    DR_TRY(file_read_all(path, DR_IMAGE_MAX_FILE_SIZE, &buf, &size));
    int rc = dr_image_load_memory_meta(buf, size, path, max_pixels, img, info, meta);
    free(buf);
    return rc;
}

int dr_image_load(const char *path, int64_t max_pixels, dr_image *img, dr_image_info *info) {
    return dr_image_load_meta(path, max_pixels, img, info, NULL);
}

int dr_image_probe(const char *path, dr_image_info *info) {
    if (!path) return error_set(DR_ERR_INVALID, "dr_image_probe: path is NULL");
    if (!info) return error_set(DR_ERR_INVALID, "%s: info is NULL", path);
    memset(info, 0, sizeof *info);
    /* The whole file is read: a JPEG's SOF can sit behind up to megabytes of
     * APPn metadata, and the files are bounded by DR_IMAGE_MAX_FILE_SIZE. */
    unsigned char *buf;
    size_t size;
    DR_TRY(file_read_all(path, DR_IMAGE_MAX_FILE_SIZE, &buf, &size));
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
    DR_TRY(io_image_validate(img, name));
    if (fmt == DR_FORMAT_JPEG && (o->jpeg_quality < 1 || o->jpeg_quality > 100))
        return error_set(DR_ERR_INVALID, "%s: JPEG quality %d is not within 1..100", name, o->jpeg_quality);
    if (fmt == DR_FORMAT_WEBP && (o->webp_quality < 0 || o->webp_quality > 100))
        return error_set(DR_ERR_INVALID, "%s: WebP quality %d is not within 0..100", name, o->webp_quality);
    return DR_OK;
}

/* The encoder of fmt into fp (PNG, JPEG, TIFF or WebP). */
static int encode_fp(dr_format fmt, FILE *fp, const char *name, const dr_image *img, const dr_save_options *o,
                     const io_out_meta *m) {
    switch (fmt) {
    case DR_FORMAT_PNG: return io_png_encode(fp, name, img, m);
    case DR_FORMAT_JPEG: return io_jpeg_encode(fp, name, img, o->jpeg_quality, m);
    case DR_FORMAT_TIFF: return io_tiff_encode(fp, name, img, m);
    default: return io_webp_encode(fp, name, img, o->webp_quality, m);
    }
}

int dr_image_save(const char *path, const dr_image *img, const dr_save_options *opts) {
    if (!path || !*path) return error_set(DR_ERR_INVALID, "dr_image_save: empty output path");
    dr_save_options o;
    dr_save_options_init(&o);
    if (opts) o = *opts;
    DR_TRY(io_image_validate(img, path));
    dr_format fmt = dr_format_from_path(path);
    if (fmt == DR_FORMAT_UNKNOWN)
        return error_set(DR_ERR_INVALID, "%s: unknown output extension, use .png, .jpg, .tif or .webp", path);
    DR_TRY(check_encode(fmt, img, &o, path));

    io_out_meta m;
    DR_TRY(io_out_meta_prepare(&o, img, path, &m));
    file_atomic w;
    int rc = file_atomic_open(&w, path, o.overwrite);
    if (rc != DR_OK) {
        io_out_meta_free(&m);
        return rc;
    }
    rc = encode_fp(fmt, w.fp, path, img, &o, &m);
    io_out_meta_free(&m);
    if (rc != DR_OK) {
        file_atomic_abort(&w); /* removes the temp file; the message is already set */
        return rc;
    }
    /* commit flushes, fsyncs and closes: late write errors (disk full) surface here. */
    return file_atomic_commit(&w, o.overwrite);
}

int dr_image_encode(dr_format fmt, const dr_image *img, const dr_save_options *opts, const char *name,
                    unsigned char **buf, size_t *size) {
    if (!buf || !size) return error_set(DR_ERR_INVALID, "dr_image_encode: buf or size is NULL");
    *buf = NULL;
    *size = 0;
    if (!name) name = "image";
    dr_save_options o;
    dr_save_options_init(&o);
    if (opts) o = *opts;
    if (fmt != DR_FORMAT_PNG && fmt != DR_FORMAT_JPEG && fmt != DR_FORMAT_TIFF && fmt != DR_FORMAT_WEBP)
        return error_set(DR_ERR_INVALID, "%s: cannot encode format %d", name, (int)fmt);
    DR_TRY(check_encode(fmt, img, &o, name));
    io_out_meta m;
    DR_TRY(io_out_meta_prepare(&o, img, name, &m));
    /* An anonymous temporary file (unlinked at creation, so nothing is left
     * behind even on a crash): every encoder writes to a FILE and libtiff
     * seeks, which a memory stream cannot read back. */
    FILE *fp = tmpfile();
    if (!fp) {
        io_out_meta_free(&m);
        return error_set(DR_ERR_IO, "%s: cannot create a temporary file: %s", name, strerror(errno));
    }
    int rc = encode_fp(fmt, fp, name, img, &o, &m);
    io_out_meta_free(&m);
    long len = -1;
    if (rc == DR_OK) {
        if (fflush(fp) != 0 || fseek(fp, 0, SEEK_END) != 0 || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0)
            rc = error_set(DR_ERR_IO, "%s: temporary file: %s", name, strerror(errno));
    }
    if (rc == DR_OK) {
        *buf = malloc(len > 0 ? (size_t)len : 1);
        if (!*buf)
            rc = error_set(DR_ERR_NOMEM, "%s: out of memory for %ld encoded bytes", name, len);
        else if (fread(*buf, 1, (size_t)len, fp) != (size_t)len) {
            free(*buf);
            *buf = NULL;
            rc = error_set(DR_ERR_IO, "%s: cannot read the temporary file back", name);
        } else
            *size = (size_t)len;
    }
    fclose(fp);
    return rc;
}
