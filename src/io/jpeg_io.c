/* JPEG decoding and encoding with libjpeg-turbo's libjpeg API.
 *
 * libjpeg reports fatal errors through error_exit and must not return from
 * it: ours longjmps back to the setjmp in read_body/write_body. As in
 * png_io.c, everything released after a jump lives in a reader/writer struct
 * owned by the caller of the setjmp function, so nothing needs volatile.
 *
 * libjpeg only *warns* about corrupt or truncated data (and fills the missing
 * part with gray); a restoration tool must not silently work on such a
 * picture, so every corrupt-data warning is promoted to an error. */
#include "io/codecs.h"
#include "io/image_core.h"
#include "io/orient.h"

#include "common/error.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
/* jpeglib.h needs stdio.h (FILE, via image_internal.h) first. */
#include <jpeglib.h>
#include <jerror.h>

/* Progressive JPEGs may have any number of scans and each one re-walks the
 * coefficient buffer; real encoders emit about ten. The cap stops crafted
 * files from burning minutes of CPU (libjpeg-turbo's own tools use 500). */
#define MAX_SCANS           500
/* Our own message code for the scan limit, outside libjpeg's table. */
#define CODE_TOO_MANY_SCANS (-1000)

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us cinfo->err */
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int code;     /* msg_code of the failure */
    int io_errno; /* errno of a failed write (JERR_FILE_WRITE) */
} jpeg_errstate;

static void on_jpeg_error(j_common_ptr cinfo) {
    jpeg_errstate *e = (jpeg_errstate *)cinfo->err;
    /* jpeg_stdio_dest raises JERR_FILE_WRITE right after the failing
     * fwrite/ferror, so errno still describes it. */
    if (e->pub.msg_code == JERR_FILE_WRITE && !e->io_errno) e->io_errno = errno ? errno : EIO;
    e->code = e->pub.msg_code;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

static void on_jpeg_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return; /* trace output */
    int code = cinfo->err->msg_code;
    /* Odd metadata that does not affect the pixels. */
    if (code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM) return;
    /* Everything else is "Corrupt JPEG data: ..." or "Premature end of JPEG
     * file" (JWRN_JPEG_EOF): refuse the file. */
    on_jpeg_error(cinfo);
}

static void on_jpeg_output(j_common_ptr cinfo) { (void)cinfo; /* never print */ }

static void init_errors(jpeg_errstate *e) {
    jpeg_std_error(&e->pub);
    e->pub.error_exit = on_jpeg_error;
    e->pub.emit_message = on_jpeg_message;
    e->pub.output_message = on_jpeg_output;
}

/* ------------------------------------------------------------------ reading */

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_errstate err;
    struct jpeg_progress_mgr progress;
    const char *name;
    JSAMPLE *row;
    JOCTET *icc; /* jpeg_read_icc_profile's buffer */
    unsigned int icc_len;
    dr_image img;
} jpeg_reader;

static void on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > MAX_SCANS) {
        jpeg_errstate *e = (jpeg_errstate *)cinfo->err;
        e->code = CODE_TOO_MANY_SCANS;
        snprintf(e->msg, sizeof e->msg, "more than %d scans", MAX_SCANS);
        longjmp(e->jb, 1);
    }
}

static int read_failed(jpeg_reader *r) {
    const char *name = r->name, *msg = r->err.msg;
    switch (r->err.code) {
    case JWRN_JPEG_EOF: return error_set(DR_ERR_FORMAT, "%s: truncated JPEG data", name);
    case JERR_OUT_OF_MEMORY: return error_set(DR_ERR_NOMEM, "%s: out of memory decoding JPEG", name);
    case JERR_BAD_PRECISION:
    case JERR_NOT_COMPILED: return error_set(DR_ERR_UNSUPPORTED, "%s: unsupported JPEG: %s", name, msg);
    case CODE_TOO_MANY_SCANS: return error_set(DR_ERR_LIMIT, "%s: JPEG has %s", name, msg);
    default: return error_set(DR_ERR_FORMAT, "%s: invalid JPEG: %s", name, msg);
    }
}

/* (a*b)/255 rounded, for a, b in 0..255. */
static inline unsigned mul255(unsigned a, unsigned b) { return (a * b + 127) / 255; }

static void convert_row(uint16_t *dst, const JSAMPLE *src, int width, int channels, int cmyk, int inverted) {
    if (!cmyk) {
        for (size_t i = 0, n = (size_t)width * (size_t)channels; i < n; i++) dst[i] = src[i];
        return;
    }
    for (int x = 0; x < width; x++, src += 4, dst += 3) {
        /* Adobe (Photoshop) CMYK is stored inverted: 255 means no ink, so
         * the remaining light is simply c*k. Plain CMYK: 255 is full ink. */
        unsigned c = src[0], m = src[1], y = src[2], k = src[3];
        if (!inverted) c = 255 - c, m = 255 - m, y = 255 - y, k = 255 - k;
        dst[0] = (uint16_t)mul255(c, k);
        dst[1] = (uint16_t)mul255(m, k);
        dst[2] = (uint16_t)mul255(y, k);
    }
}

static int read_body(jpeg_reader *r, const unsigned char *buf, size_t size, int64_t max_pixels, int want_pixels,
                     dr_image_info *info, dr_metadata *meta) {
    if (setjmp(r->err.jb)) return read_failed(r);
    j_decompress_ptr ci = &r->cinfo;
    jpeg_create_decompress(ci);
    r->progress.progress_monitor = on_progress;
    ci->progress = &r->progress;
    jpeg_mem_src(ci, buf, (unsigned long)size);
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xFFFF);  /* EXIF (orientation), XMP */
    jpeg_save_markers(ci, JPEG_APP0 + 2, 0xFFFF);  /* ICC profile */
    jpeg_save_markers(ci, JPEG_APP0 + 13, 0xFFFF); /* IPTC (Photoshop resources) */
    (void)jpeg_read_header(ci, TRUE);
    int orientation = 1, have_exif = 0;
    static const char xmp_sig[] = "http://ns.adobe.com/xap/1.0/";
    for (jpeg_saved_marker_ptr mk = ci->marker_list; mk; mk = mk->next) {
        if (mk->marker == JPEG_APP0 + 1 && mk->data_length >= 14 && !have_exif &&
            memcmp(mk->data, "Exif\0\0", 6) == 0) {
            orientation = io_exif_orientation(mk->data, mk->data_length);
            have_exif = 1;
            DR_TRY(io_meta_set(&meta->exif, &meta->exif_size, mk->data + 6, mk->data_length - 6, r->name, "EXIF"));
        } else if (mk->marker == JPEG_APP0 + 1 && mk->data_length > sizeof xmp_sig &&
                   memcmp(mk->data, xmp_sig, sizeof xmp_sig) == 0) {
            DR_TRY(io_meta_set(&meta->xmp, &meta->xmp_size, mk->data + sizeof xmp_sig, mk->data_length - sizeof xmp_sig,
                               r->name, "XMP"));
        } else if (mk->marker == JPEG_APP0 + 13) {
            const unsigned char *iptc;
            size_t n;
            if (io_iptc_from_app13(mk->data, mk->data_length, &iptc, &n))
                DR_TRY(io_meta_set(&meta->iptc, &meta->iptc_size, iptc, n, r->name, "IPTC"));
        }
    }
    /* The profile may span several APP2 markers; libjpeg reassembles it (a
     * malformed sequence is a warning, which fails the file). */
    if (jpeg_read_icc_profile(ci, &r->icc, &r->icc_len))
        DR_TRY(io_meta_set(&meta->icc, &meta->icc_size, r->icc, r->icc_len, r->name, "ICC profile"));

    int cs, channels = 3;
    J_COLOR_SPACE out = JCS_RGB;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE: cs = DR_CS_GRAY, channels = 1, out = JCS_GRAYSCALE; break;
    case JCS_YCbCr: cs = DR_CS_YCBCR; break;
    case JCS_RGB: cs = DR_CS_RGB; break;
    case JCS_CMYK: cs = DR_CS_CMYK, out = JCS_CMYK; break;
    case JCS_YCCK: cs = DR_CS_YCCK, out = JCS_CMYK; break; /* libjpeg turns YCCK into CMYK */
    default:
        return error_set(DR_ERR_UNSUPPORTED, "%s: JPEG with %d components is not supported", r->name,
                         ci->num_components);
    }
    if (info) {
        info->format = DR_FORMAT_JPEG;
        info->width = (int)ci->image_width;
        info->height = (int)ci->image_height;
        info->channels = channels;
        info->depth = 8;
        info->interlaced = ci->progressive_mode ? 1 : 0;
        info->color_space = cs;
        info->orientation = orientation;
    }
    if (!want_pixels) return DR_OK;

    DR_TRY(io_image_check_limit(r->name, ci->image_width, ci->image_height, max_pixels));
    int rc = dr_image_alloc(&r->img, (int)ci->image_width, (int)ci->image_height, channels, 8);
    if (rc != DR_OK) return error_prefix(rc, "%s", r->name);
    ci->out_color_space = out;
    (void)jpeg_start_decompress(ci);
    int in_comps = out == JCS_CMYK ? 4 : channels;
    if ((int)ci->output_width != r->img.width || (int)ci->output_height != r->img.height ||
        ci->output_components != in_comps)
        return error_set(DR_ERR_FORMAT, "%s: JPEG decoder output does not match its header", r->name);
    r->row = malloc((size_t)ci->output_width * (size_t)in_comps);
    if (!r->row) return error_set(DR_ERR_NOMEM, "%s: out of memory", r->name);
    size_t stride = (size_t)r->img.width * (size_t)channels;
    while (ci->output_scanline < ci->output_height) {
        JDIMENSION y = ci->output_scanline;
        JSAMPROW rows[1] = {r->row};
        /* A memory source never suspends, so 0 lines would be a decoder bug;
         * refuse rather than loop forever. */
        if (jpeg_read_scanlines(ci, rows, 1) != 1)
            return error_set(DR_ERR_FORMAT, "%s: JPEG decoder returned no data", r->name);
        convert_row(r->img.data + (size_t)y * stride, r->row, r->img.width, channels, out == JCS_CMYK,
                    ci->saw_Adobe_marker);
    }
    /* Reads up to EOI, so data cut anywhere before it is reported. */
    (void)jpeg_finish_decompress(ci);
    return DR_OK;
}

int io_jpeg_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                   dr_image_info *info, dr_metadata *meta) {
#if SIZE_MAX > ULONG_MAX
    /* jpeg_mem_src takes an unsigned long. */
    if (size > ULONG_MAX) return error_set(DR_ERR_LIMIT, "%s: JPEG data too large", name);
#endif
    jpeg_reader *r = calloc(1, sizeof *r);
    if (!r) return error_set(DR_ERR_NOMEM, "%s: out of memory", name);
    r->name = name;
    init_errors(&r->err);
    r->cinfo.err = &r->err.pub;
    int rc = read_body(r, buf, size, max_pixels, img != NULL, info, meta);
    jpeg_destroy_decompress(&r->cinfo); /* safe on a struct create never finished */
    free(r->row);
    free(r->icc);
    if (rc == DR_OK && img)
        *img = r->img;
    else
        dr_image_free(&r->img);
    free(r);
    return rc;
}

/* ------------------------------------------------------------------ writing */

typedef struct {
    struct jpeg_compress_struct cinfo;
    jpeg_errstate err;
    JSAMPLE *row;
    unsigned char *app13; /* freed by io_jpeg_encode, also after a longjmp */
} jpeg_writer;

static int write_failed(jpeg_writer *w, const char *path) {
    if (w->err.io_errno) return error_set(DR_ERR_IO, "%s: write failed: %s", path, strerror(w->err.io_errno));
    if (w->err.code == JERR_OUT_OF_MEMORY) return error_set(DR_ERR_NOMEM, "%s: out of memory writing JPEG", path);
    return error_set(DR_ERR_INVALID, "%s: cannot encode JPEG: %s", path, w->err.msg);
}

static void write_marker(j_compress_ptr ci, int marker, const char *sig, size_t sig_len, const unsigned char *data,
                         size_t n) {
    jpeg_write_m_header(ci, marker, (unsigned int)(sig_len + n));
    for (size_t i = 0; i < sig_len; i++) jpeg_write_m_byte(ci, (unsigned char)sig[i]);
    for (size_t i = 0; i < n; i++) jpeg_write_m_byte(ci, data[i]);
}

/* A marker segment holds at most 65533 bytes of payload. */
#define JPEG_MAX_PAYLOAD 65533u

static int write_body(jpeg_writer *w, FILE *fp, const char *path, const dr_image *img, int quality,
                      const io_out_meta *m) {
    if (setjmp(w->err.jb)) return write_failed(w, path);
    j_compress_ptr ci = &w->cinfo;
    jpeg_create_compress(ci);
    jpeg_stdio_dest(ci, fp);

    /* JPEG stores gray or RGB only: alpha (channel 2 of gray+alpha, 4 of
     * RGBA) is dropped. */
    int gray = img->channels <= 2;
    ci->image_width = (JDIMENSION)img->width;
    ci->image_height = (JDIMENSION)img->height;
    ci->input_components = gray ? 1 : 3;
    ci->in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(ci);
    jpeg_set_quality(ci, quality, TRUE);
    if (!gray && quality >= 90) {
        /* At high quality the default 4:2:0 chroma subsampling would be the
         * dominant loss; use 4:4:4 like most photo tools do. */
        ci->comp_info[0].h_samp_factor = 1;
        ci->comp_info[0].v_samp_factor = 1;
    }
    ci->optimize_coding = TRUE;

    int comps = ci->input_components;
    w->row = malloc((size_t)img->width * (size_t)comps);
    if (!w->row) return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
    errno = 0;
    jpeg_start_compress(ci, TRUE);
    /* Metadata right after SOI/JFIF: EXIF, XMP (APP1), ICC (APP2), IPTC (APP13). */
    if (m && m->exif_size) {
        if (m->exif_size > JPEG_MAX_PAYLOAD - 6)
            return error_set(DR_ERR_UNSUPPORTED, "%s: the EXIF (%zu bytes) does not fit in a JPEG APP1 segment", path,
                             m->exif_size);
        write_marker(ci, JPEG_APP0 + 1, "Exif\0\0", 6, m->exif, m->exif_size);
    }
    if (m && m->xmp_size) {
        static const char sig[] = "http://ns.adobe.com/xap/1.0/";
        if (m->xmp_size > JPEG_MAX_PAYLOAD - sizeof sig)
            return error_set(DR_ERR_UNSUPPORTED, "%s: the XMP (%zu bytes) does not fit in a JPEG APP1 segment", path,
                             m->xmp_size);
        write_marker(ci, JPEG_APP0 + 1, sig, sizeof sig, m->xmp, m->xmp_size);
    }
    if (m && m->icc_size) jpeg_write_icc_profile(ci, m->icc, (unsigned int)m->icc_size);
    if (m && m->iptc_size) {
        size_t n;
        if (io_iptc_to_app13(m->iptc, m->iptc_size, &w->app13, &n) != DR_OK)
            return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
        if (n > JPEG_MAX_PAYLOAD)
            return error_set(DR_ERR_UNSUPPORTED, "%s: the IPTC (%zu bytes) does not fit in a JPEG APP13 segment", path,
                             m->iptc_size);
        write_marker(ci, JPEG_APP0 + 13, "", 0, w->app13, n);
    }
    size_t stride = (size_t)img->width * (size_t)img->channels;
    while (ci->next_scanline < ci->image_height) {
        const uint16_t *src = img->data + (size_t)ci->next_scanline * stride;
        for (int x = 0; x < img->width; x++, src += img->channels)
            for (int c = 0; c < comps; c++) {
                uint32_t v = src[c];
                /* 16 -> 8 bits, rounded to nearest. */
                if (img->depth == 16) v = (v * 255u + 32767u) / 65535u;
                w->row[(size_t)x * (size_t)comps + (size_t)c] = (JSAMPLE)v;
            }
        JSAMPROW rows[1] = {w->row};
        (void)jpeg_write_scanlines(ci, rows, 1);
    }
    jpeg_finish_compress(ci); /* flushes through fp; JERR_FILE_WRITE on failure */
    return DR_OK;
}

int io_jpeg_encode(FILE *fp, const char *path, const dr_image *img, int quality, const io_out_meta *m) {
    if (img->width > JPEG_MAX_DIMENSION || img->height > JPEG_MAX_DIMENSION)
        return error_set(DR_ERR_UNSUPPORTED, "%s: JPEG cannot store %dx%d (max %d per side)", path, img->width,
                         img->height, (int)JPEG_MAX_DIMENSION);
    jpeg_writer *w = calloc(1, sizeof *w);
    if (!w) return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
    init_errors(&w->err);
    w->cinfo.err = &w->err.pub;
    int rc = write_body(w, fp, path, img, quality, m);
    jpeg_destroy_compress(&w->cinfo);
    free(w->row);
    free(w->app13);
    free(w);
    return rc;
}
