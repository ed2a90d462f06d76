/* PNG decoding and encoding with libpng 1.6.
 *
 * libpng reports errors by calling our error callback, which must not return:
 * it longjmps back to the setjmp in read_body/write_body. Everything that has
 * to be released after such a jump (libpng structs, row pointers, the pixel
 * buffer) lives in a reader/writer struct owned by the *caller* of the
 * function that calls setjmp, so no local of the setjmp frame is needed after
 * the jump and nothing needs to be volatile. */
#include "io/codecs.h"
#include "io/image_core.h"
#include "io/orient.h"

#include "common/error.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

typedef struct {
    char msg[256]; /* libpng's message; copied because it may live on the stack */
    int truncated; /* the read callback ran past the end of the data */
    int io_errno;  /* the write callback failed with this errno */
} png_errstate;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_errstate *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

/* Warnings are for recoverable problems (a bad ancillary chunk CRC, an odd
 * iCCP profile): the image still decodes correctly, so they are dropped. The
 * library never prints. */
static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* libpng spells it "Out of memory" or "Out of Memory"; compare case-blind. */
static int is_oom(const char *msg) {
    static const char key[] = "out of memory";
    for (const char *p = msg; *p; p++)
        if (strncasecmp(p, key, sizeof key - 1) == 0) return 1;
    return 0;
}

/* ------------------------------------------------------------------ reading */

/* The orientation in an eXIf chunk before the first IDAT, found by walking
 * the chunk headers in place (libpng is told to skip eXIf unread, see
 * io_png_decode; CRCs were checked by libpng's pass over the same chunks). */
static int exif_orientation(const unsigned char *buf, size_t size) {
    size_t pos = 8;
    while (pos + 12 <= size) {
        uint32_t len =
            (uint32_t)buf[pos] << 24 | (uint32_t)buf[pos + 1] << 16 | (uint32_t)buf[pos + 2] << 8 | buf[pos + 3];
        const unsigned char *type = buf + pos + 4;
        if (len > size - pos - 12 || memcmp(type, "IDAT", 4) == 0) break;
        if (memcmp(type, "eXIf", 4) == 0) return io_exif_orientation(buf + pos + 8, len);
        pos += 12 + (size_t)len;
    }
    return 1;
}

/* zlib data of a chunk into a new buffer of at most max bytes (+ a NUL).
 * DR_ERR_LIMIT when it would be larger, DR_ERR_FORMAT when corrupt. */
static int inflate_chunk(const unsigned char *p, size_t n, size_t max, const char *name, const char *what,
                         unsigned char **out, size_t *out_size) {
    *out = NULL, *out_size = 0;
    size_t cap = n * 4 + 1024 < max ? n * 4 + 1024 : max;
    unsigned char *b = malloc(cap + 1);
    if (!b) return error_set(DR_ERR_NOMEM, "%s: out of memory for the %s", name, what);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) {
        free(b);
        return error_set(DR_ERR_NOMEM, "%s: cannot inflate the %s", name, what);
    }
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    int zr, rc = DR_OK;
    for (;;) {
        z.next_out = b + z.total_out;
        z.avail_out = (uInt)(cap - z.total_out);
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr == Z_STREAM_END) break;
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = error_set(DR_ERR_FORMAT, "%s: invalid PNG: the %s is corrupt (%s)", name, what,
                           z.msg ? z.msg : "zlib error");
            break;
        }
        if (z.avail_out == 0) {
            if (cap >= max) {
                rc = error_set(DR_ERR_LIMIT, "%s: the %s is over the limit of %zu bytes", name, what, max);
                break;
            }
            size_t ncap = cap * 2 < max ? cap * 2 : max;
            unsigned char *nb = realloc(b, ncap + 1);
            if (!nb) {
                rc = error_set(DR_ERR_NOMEM, "%s: out of memory for the %s", name, what);
                break;
            }
            b = nb, cap = ncap;
        } else if (z.avail_in == 0) {
            rc = error_set(DR_ERR_FORMAT, "%s: invalid PNG: the %s is truncated", name, what);
            break;
        }
    }
    size_t got = z.total_out;
    inflateEnd(&z);
    if (rc != DR_OK) {
        free(b);
        return rc;
    }
    b[got] = 0;
    *out = b, *out_size = got;
    return DR_OK;
}

/* The ICC profile (iCCP), EXIF (eXIf) and XMP (iTXt XML:com.adobe.xmp), by
 * walking the chunks in place up to IEND. */
static int read_metadata(const unsigned char *buf, size_t size, const char *name, dr_metadata *meta) {
    size_t pos = 8;
    while (pos + 12 <= size) {
        uint32_t len =
            (uint32_t)buf[pos] << 24 | (uint32_t)buf[pos + 1] << 16 | (uint32_t)buf[pos + 2] << 8 | buf[pos + 3];
        const unsigned char *type = buf + pos + 4, *d = buf + pos + 8;
        if (len > size - pos - 12 || memcmp(type, "IEND", 4) == 0) break;
        if (memcmp(type, "iCCP", 4) == 0 && !meta->icc) {
            const unsigned char *z = memchr(d, 0, len < 80 ? len : 80);
            if (!z || (size_t)(z - d) + 2 > len || z[1] != 0)
                return error_set(DR_ERR_FORMAT, "%s: invalid PNG: malformed iCCP chunk", name);
            unsigned char *icc;
            size_t n;
            DR_TRY(inflate_chunk(z + 2, len - (size_t)(z - d) - 2, DR_MAX_ICC_SIZE, name, "ICC profile", &icc, &n));
            meta->icc = icc, meta->icc_size = n;
            if (n == 0) free(icc), meta->icc = NULL;
        } else if (memcmp(type, "eXIf", 4) == 0) {
            DR_TRY(io_meta_set(&meta->exif, &meta->exif_size, d, len, name, "EXIF"));
        } else if (memcmp(type, "iTXt", 4) == 0 && !meta->xmp && len >= 18 && memcmp(d, "XML:com.adobe.xmp", 18) == 0) {
            /* keyword\0, compression flag, method, language\0, translated keyword\0, text */
            size_t q = 18;
            if (q + 2 > len) return error_set(DR_ERR_FORMAT, "%s: invalid PNG: malformed XMP iTXt chunk", name);
            int compressed = d[q];
            q += 2;
            for (int k = 0; k < 2; k++) {
                const unsigned char *e = memchr(d + q, 0, len - q);
                if (!e) return error_set(DR_ERR_FORMAT, "%s: invalid PNG: malformed XMP iTXt chunk", name);
                q = (size_t)(e - d) + 1;
            }
            if (compressed) {
                unsigned char *x;
                size_t n;
                DR_TRY(inflate_chunk(d + q, len - q, DR_MAX_META_SIZE, name, "XMP", &x, &n));
                meta->xmp = x, meta->xmp_size = n;
                if (n == 0) free(x), meta->xmp = NULL;
            } else {
                DR_TRY(io_meta_set(&meta->xmp, &meta->xmp_size, d + q, len - q, name, "XMP"));
            }
        }
        pos += 12 + (size_t)len;
    }
    return DR_OK;
}

typedef struct {
    png_errstate err;
    const char *name;
    const unsigned char *buf;
    size_t size, pos;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    dr_image img;
} png_reader;

static void read_from_memory(png_structp png, png_bytep out, size_t n) {
    png_reader *r = png_get_io_ptr(png);
    if (n > r->size - r->pos) {
        r->err.truncated = 1;
        png_error(png, "truncated PNG data");
    }
    memcpy(out, r->buf + r->pos, n);
    r->pos += n;
}

static int color_space_of(int color_type) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return DR_CS_GRAY;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return DR_CS_GRAY_ALPHA;
    case PNG_COLOR_TYPE_RGB: return DR_CS_RGB;
    case PNG_COLOR_TYPE_RGB_ALPHA: return DR_CS_RGBA;
    case PNG_COLOR_TYPE_PALETTE: return DR_CS_PALETTE;
    default: return DR_CS_UNKNOWN;
    }
}

/* Rows were decoded as bytes into the start of each row's uint16 slot
 * (stride = width*channels*2 bytes); widen them in place to host uint16. */
static void widen_rows(dr_image *img) {
    size_t n = (size_t)img->width * (size_t)img->channels;
    for (int y = 0; y < img->height; y++) {
        uint16_t *row = img->data + (size_t)y * n;
        const unsigned char *b = (const unsigned char *)row;
        if (img->depth == 16) {
            /* Big-endian pairs: sample i occupies exactly bytes 2i, 2i+1. */
            for (size_t i = 0; i < n; i++) row[i] = (uint16_t)(b[2 * i] << 8 | b[2 * i + 1]);
        } else {
            /* Backwards, so byte i is read before sample i (bytes 2i, 2i+1)
             * overwrites it; earlier bytes are never touched. */
            for (size_t i = n; i-- > 0;) {
                uint16_t v = b[i];
                row[i] = v;
            }
        }
    }
}

static int read_failed(png_reader *r) {
    if (r->err.truncated) return error_set(DR_ERR_FORMAT, "%s: truncated PNG data", r->name);
    if (is_oom(r->err.msg)) return error_set(DR_ERR_NOMEM, "%s: out of memory decoding PNG", r->name);
    return error_set(DR_ERR_FORMAT, "%s: invalid PNG: %s", r->name, r->err.msg);
}

static int read_body(png_reader *r, int64_t max_pixels, int want_pixels, dr_image_info *info, dr_metadata *meta) {
    if (setjmp(png_jmpbuf(r->png))) return read_failed(r);

    /* Our own pixel limit decides, with a DR_ERR_LIMIT; libpng's default
     * 1,000,000 per side would otherwise turn big images into a format error. */
    png_set_user_limits(r->png, 0x7fffffff, 0x7fffffff);
    png_set_read_fn(r->png, r, read_from_memory);
    png_read_info(r->png, r->info);

    png_uint_32 w, h;
    int bit_depth, color_type, interlace;
    png_get_IHDR(r->png, r->info, &w, &h, &bit_depth, &color_type, &interlace, NULL, NULL);

    /* Palette -> RGB, gray below 8 bits -> 8, tRNS -> a real alpha channel.
     * 16-bit samples are left big-endian and swapped by widen_rows. The
     * decoded layout is derived from the header here: png_read_update_info
     * allocates (and zeroes) row buffers of the header's width, so it must
     * not run before the pixel limit is checked, nor for a probe. */
    const int trns = png_get_valid(r->png, r->info, PNG_INFO_tRNS) != 0;
    int channels;
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: channels = 1 + trns; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: channels = 2; break;
    case PNG_COLOR_TYPE_PALETTE:
    case PNG_COLOR_TYPE_RGB: channels = 3 + trns; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: channels = 4; break;
    default: return error_set(DR_ERR_UNSUPPORTED, "%s: PNG colour type %d", r->name, color_type);
    }
    int depth = bit_depth == 16 ? 16 : 8;
    if (info) {
        info->format = DR_FORMAT_PNG;
        info->width = (int)w;
        info->height = (int)h;
        info->channels = channels;
        info->depth = depth;
        info->interlaced = interlace != PNG_INTERLACE_NONE;
        info->color_space = color_space_of(color_type);
        info->orientation = exif_orientation(r->buf, r->size);
    }
    DR_TRY(read_metadata(r->buf, r->size, r->name, meta));
    if (!want_pixels) return DR_OK;

    DR_TRY(io_image_check_limit(r->name, w, h, max_pixels));
    if (color_type == PNG_COLOR_TYPE_PALETTE || bit_depth < 8 || trns) png_set_expand(r->png);
    (void)png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);
    if (png_get_channels(r->png, r->info) != channels || png_get_bit_depth(r->png, r->info) != depth)
        return error_set(DR_ERR_UNSUPPORTED, "%s: PNG decodes to %d channels of %d bits", r->name,
                         png_get_channels(r->png, r->info), png_get_bit_depth(r->png, r->info));
    size_t row_bytes = (size_t)w * (size_t)channels * (size_t)(depth / 8);
    if (png_get_rowbytes(r->png, r->info) != row_bytes)
        return error_set(DR_ERR_UNSUPPORTED, "%s: unexpected PNG row layout", r->name);
    int rc = dr_image_alloc(&r->img, (int)w, (int)h, channels, depth);
    if (rc != DR_OK) return error_prefix(rc, "%s", r->name);
    r->rows = malloc((size_t)h * sizeof *r->rows);
    if (!r->rows) return error_set(DR_ERR_NOMEM, "%s: out of memory", r->name);
    size_t stride = (size_t)w * (size_t)channels; /* in uint16 samples */
    for (png_uint_32 y = 0; y < h; y++) r->rows[y] = (png_bytep)(r->img.data + (size_t)y * stride);

    png_read_image(r->png, r->rows);
    /* Read through IEND: a file cut anywhere, even after the last IDAT, is
     * refused rather than half-trusted. */
    png_read_end(r->png, NULL);
    widen_rows(&r->img);
    return DR_OK;
}

int io_png_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                  dr_image_info *info, dr_metadata *meta) {
    png_reader r;
    memset(&r, 0, sizeof r);
    r.name = name;
    r.buf = buf;
    r.size = size;
    r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r.err, on_png_error, on_png_warning);
    if (!r.png) return error_set(DR_ERR_NOMEM, "%s: cannot create PNG reader", name);
    r.info = png_create_info_struct(r.png);
    /* Skip the ancillary chunks the decoder does not use, unread: libpng
     * would buffer (and zero) each one at its claimed length, and its
     * "chunk data is too large" check is only a benign error (a warning)
     * when reading, so a tiny file could make it allocate up to 2 GB. */
    static const png_byte skip[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0"
                                   "pHYs\0sBIT\0sCAL\0sPLT\0sRGB\0tEXt\0tIME\0zTXt";
    png_set_keep_unknown_chunks(r.png, PNG_HANDLE_CHUNK_NEVER, skip, (int)(sizeof skip / 5));
    int rc;
    if (!r.info)
        rc = error_set(DR_ERR_NOMEM, "%s: cannot create PNG reader", name);
    else
        rc = read_body(&r, max_pixels, img != NULL, info, meta);
    png_destroy_read_struct(&r.png, r.info ? &r.info : NULL, NULL);
    free(r.rows);
    if (rc == DR_OK && img)
        *img = r.img;
    else
        dr_image_free(&r.img);
    return rc;
}

/* ------------------------------------------------------------------ writing */

typedef struct {
    png_errstate err;
    FILE *fp;
    png_structp png;
    png_infop info;
    unsigned char *row;
} png_writer;

static void write_to_file(png_structp png, png_bytep data, size_t n) {
    png_writer *w = png_get_io_ptr(png);
    errno = 0;
    if (fwrite(data, 1, n, w->fp) != n) {
        w->err.io_errno = errno ? errno : EIO;
        png_error(png, "write failed");
    }
}

static void flush_file(png_structp png) {
    png_writer *w = png_get_io_ptr(png);
    errno = 0;
    if (fflush(w->fp) != 0) {
        w->err.io_errno = errno ? errno : EIO;
        png_error(png, "write failed");
    }
}

static int write_body(png_writer *w, const char *path, const dr_image *img, const io_out_meta *m) {
    if (setjmp(png_jmpbuf(w->png))) {
        if (w->err.io_errno) return error_set(DR_ERR_IO, "%s: write failed: %s", path, strerror(w->err.io_errno));
        if (is_oom(w->err.msg)) return error_set(DR_ERR_NOMEM, "%s: out of memory writing PNG", path);
        return error_set(DR_ERR_INVALID, "%s: cannot encode PNG: %s", path, w->err.msg);
    }
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_user_limits(w->png, 0x7fffffff, 0x7fffffff);
    png_set_write_fn(w->png, w, write_to_file, flush_file);
    png_set_IHDR(w->png, w->info, (png_uint_32)img->width, (png_uint_32)img->height, img->depth, types[img->channels],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (m && m->icc_size) {
        /* libpng checks the profile against the colour type; a mismatch is
         * an error here, not a silent drop */
        png_set_iCCP(w->png, w->info, "ICC profile", PNG_COMPRESSION_TYPE_BASE, m->icc, (png_uint_32)m->icc_size);
        if (!png_get_valid(w->png, w->info, PNG_INFO_iCCP))
            return error_set(DR_ERR_INVALID, "%s: libpng refused the ICC profile for this image", path);
    }
    if (m && m->exif_size) {
        if (m->exif_size > 0x7fffffff) return error_set(DR_ERR_UNSUPPORTED, "%s: EXIF too large for PNG", path);
        png_set_eXIf_1(w->png, w->info, (png_uint_32)m->exif_size, m->exif);
    }
    if (m && m->xmp_size) {
        png_text t;
        memset(&t, 0, sizeof t);
        t.compression = PNG_ITXT_COMPRESSION_NONE;
        t.key = "XML:com.adobe.xmp";
        t.text = (char *)m->xmp;
        t.itxt_length = m->xmp_size;
        t.lang = "";
        t.lang_key = "";
        png_set_text(w->png, w->info, &t, 1);
    }
    png_write_info(w->png, w->info);

    size_t n = (size_t)img->width * (size_t)img->channels;
    w->row = malloc(n * (size_t)(img->depth / 8));
    if (!w->row) return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
    for (int y = 0; y < img->height; y++) {
        const uint16_t *src = img->data + (size_t)y * n;
        if (img->depth == 16) {
            for (size_t i = 0; i < n; i++) { /* PNG is big-endian */
                w->row[2 * i] = (unsigned char)(src[i] >> 8);
                w->row[2 * i + 1] = (unsigned char)(src[i] & 0xff);
            }
        } else {
            for (size_t i = 0; i < n; i++) w->row[i] = (unsigned char)src[i];
        }
        png_write_row(w->png, w->row);
    }
    png_write_end(w->png, NULL);
    return DR_OK;
}

int io_png_encode(FILE *fp, const char *path, const dr_image *img, const io_out_meta *m) {
    png_writer w;
    memset(&w, 0, sizeof w);
    w.fp = fp;
    w.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &w.err, on_png_error, on_png_warning);
    if (!w.png) return error_set(DR_ERR_NOMEM, "%s: cannot create PNG writer", path);
    w.info = png_create_info_struct(w.png);
    int rc;
    if (!w.info)
        rc = error_set(DR_ERR_NOMEM, "%s: cannot create PNG writer", path);
    else
        rc = write_body(&w, path, img, m);
    png_destroy_write_struct(&w.png, w.info ? &w.info : NULL);
    free(w.row);
    return rc;
}
