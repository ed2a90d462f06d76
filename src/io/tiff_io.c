/* TIFF decoding and encoding with libtiff, from and to memory/FILE* through
 * TIFFClientOpen. Only the first page (directory) of a multi-page file is
 * read.
 *
 * Contiguous 8/16-bit gray, gray+alpha, RGB and RGBA (strips or tiles, any
 * codec libtiff has) are read sample by sample so 16 bits stay 16 bits;
 * everything else (palette, YCbCr, JPEG-in-TIFF with YCbCr, bilevel,
 * separate planes, CMYK ...) goes through libtiff's RGBA reader at 8 bits.
 * libtiff's messages go to a per-file handler, never to stderr; its single
 * allocations are capped so absurd strip or tile sizes fail cleanly. */
#include "io/codecs.h"
#include "io/image_core.h"
#include "io/exif.h"
#include "io/orient.h"

#include "common/error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

#define TIFF_MAX_SAMPLES 16 /* samples per pixel accepted (colour, alpha, extras) */

#define TIFF_MAX_ALLOC ((tmsize_t)256 << 20)

typedef struct {
    const unsigned char *buf; /* reading */
    size_t size, pos;
    FILE *fp; /* writing */
    char msg[256];
} tiff_io;

static tmsize_t mem_read(thandle_t h, void *dst, tmsize_t n) {
    tiff_io *m = h;
    if (n <= 0 || m->pos >= m->size) return 0;
    size_t k = m->size - m->pos < (size_t)n ? m->size - m->pos : (size_t)n;
    memcpy(dst, m->buf + m->pos, k);
    m->pos += k;
    return (tmsize_t)k;
}
static tmsize_t mem_write(thandle_t h, void *src, tmsize_t n) {
    (void)h, (void)src, (void)n;
    return -1;
}
static toff_t mem_seek(thandle_t h, toff_t off, int whence) {
    tiff_io *m = h;
    uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
    if (off > UINT64_MAX - base) return (toff_t)-1;
    m->pos = (size_t)(base + off);
    return m->pos;
}
static int mem_close(thandle_t h) {
    (void)h;
    return 0;
}
static toff_t mem_size(thandle_t h) { return ((tiff_io *)h)->size; }
static int no_map(thandle_t h, void **base, toff_t *size) {
    (void)h, (void)base, (void)size;
    return 0;
}
static void no_unmap(thandle_t h, void *base, toff_t size) { (void)h, (void)base, (void)size; }

static tmsize_t file_read(thandle_t h, void *dst, tmsize_t n) {
    return (tmsize_t)fread(dst, 1, (size_t)n, ((tiff_io *)h)->fp);
}
static tmsize_t file_write(thandle_t h, void *src, tmsize_t n) {
    size_t k = fwrite(src, 1, (size_t)n, ((tiff_io *)h)->fp);
    return k == (size_t)n ? n : -1;
}
static toff_t file_seek(thandle_t h, toff_t off, int whence) {
    FILE *fp = ((tiff_io *)h)->fp;
    if (fseeko(fp, (off_t)off, whence) != 0) return (toff_t)-1;
    return (toff_t)ftello(fp);
}
static toff_t file_size(thandle_t h) {
    FILE *fp = ((tiff_io *)h)->fp;
    off_t cur = ftello(fp);
    fseeko(fp, 0, SEEK_END);
    off_t end = ftello(fp);
    fseeko(fp, cur, SEEK_SET);
    return (toff_t)end;
}

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif, (void)module;
    tiff_io *m = user;
    if (!m->msg[0]) vsnprintf(m->msg, sizeof m->msg, fmt, ap); /* keep the first */
    return 1;
}
static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1; /* silenced */
}

static TIFF *open_tiff(tiff_io *m, const char *name, const char *mode, int writing) {
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) return NULL;
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, TIFF_MAX_ALLOC);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, m);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, m);
    TIFF *t = writing
        ? TIFFClientOpenExt(name, mode, m, file_read, file_write, file_seek, mem_close, file_size, no_map, no_unmap,
                            opts)
        : TIFFClientOpenExt(name, mode, m, mem_read, mem_write, mem_seek, mem_close, mem_size, no_map, no_unmap, opts);
    TIFFOpenOptionsFree(opts);
    return t;
}

static int tiff_fail(tiff_io *m, const char *name, const char *what) {
    return error_set(DR_ERR_FORMAT, "%s: invalid TIFF: %s", name, m->msg[0] ? m->msg : what);
}

/* 1: the contiguous gray/RGB(A) 8/16-bit layout read sample by sample. */
static int direct_layout(TIFF *t, uint16_t spp, uint16_t bps, uint16_t photo) {
    uint16_t planar = PLANARCONFIG_CONTIG, fmt = SAMPLEFORMAT_UINT;
    TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &fmt);
    if (planar != PLANARCONFIG_CONTIG || fmt != SAMPLEFORMAT_UINT) return 0;
    if (bps != 8 && bps != 16) return 0;
    if (photo == PHOTOMETRIC_MINISBLACK) return spp == 1 || spp == 2;
    if (photo == PHOTOMETRIC_RGB) return spp == 3 || spp == 4;
    return 0;
}

static void put_samples(uint16_t *dst, const unsigned char *src, size_t n, int bps) {
    if (bps == 8)
        for (size_t i = 0; i < n; i++) dst[i] = src[i];
    else
        for (size_t i = 0; i < n; i++) memcpy(&dst[i], src + 2 * i, 2); /* libtiff swabs to host */
}

static int read_direct(TIFF *t, tiff_io *m, const char *name, dr_image *img, int bps) {
    const int w = img->width, h = img->height, c = img->channels;
    const size_t bpsmp = (size_t)bps / 8;
    if (TIFFIsTiled(t)) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
        if (tw == 0 || th == 0 || tw > (1u << 20) || th > (1u << 20) ||
            (uint64_t)tw * th * (uint64_t)c * bpsmp > (uint64_t)TIFF_MAX_ALLOC)
            return error_set(DR_ERR_FORMAT, "%s: invalid TIFF: tile size %ux%u", name, tw, th);
        tmsize_t ts = TIFFTileSize(t);
        if (ts <= 0 || (uint64_t)ts < (uint64_t)tw * th * (uint64_t)c * bpsmp)
            return tiff_fail(m, name, "bad tile size");
        unsigned char *tb = _TIFFmalloc(ts);
        if (!tb) return error_set(DR_ERR_NOMEM, "%s: out of memory", name);
        memset(tb, 0, (size_t)ts); /* a short tile leaves zeros, not heap (as the raster above) */
        for (uint32_t y0 = 0; y0 < (uint32_t)h; y0 += th)
            for (uint32_t x0 = 0; x0 < (uint32_t)w; x0 += tw) {
                if (TIFFReadTile(t, tb, x0, y0, 0, 0) < 0) {
                    _TIFFfree(tb);
                    return tiff_fail(m, name, "cannot read a tile");
                }
                uint32_t cw = (uint32_t)w - x0 < tw ? (uint32_t)w - x0 : tw;
                uint32_t ch = (uint32_t)h - y0 < th ? (uint32_t)h - y0 : th;
                for (uint32_t y = 0; y < ch; y++)
                    put_samples(img->data + (((size_t)(y0 + y) * w) + x0) * c, tb + (size_t)y * tw * c * bpsmp,
                                (size_t)cw * c, bps);
            }
        _TIFFfree(tb);
        return DR_OK;
    }
    tmsize_t ls = TIFFScanlineSize(t);
    if (ls <= 0 || (uint64_t)ls < (uint64_t)w * c * bpsmp) return tiff_fail(m, name, "bad scanline size");
    unsigned char *lb = _TIFFmalloc(ls);
    if (!lb) return error_set(DR_ERR_NOMEM, "%s: out of memory", name);
    memset(lb, 0, (size_t)ls);
    for (int y = 0; y < h; y++) {
        if (TIFFReadScanline(t, lb, (uint32_t)y, 0) < 0) {
            _TIFFfree(lb);
            return tiff_fail(m, name, "cannot read a row");
        }
        put_samples(img->data + (size_t)y * w * c, lb, (size_t)w * c, bps);
    }
    _TIFFfree(lb);
    return DR_OK;
}

static int read_rgba(TIFF *t, tiff_io *m, const char *name, dr_image *img, int gray, int alpha) {
    char emsg[1024] = "";
    TIFFRGBAImage ri;
    if (!TIFFRGBAImageOK(t, emsg) || !TIFFRGBAImageBegin(&ri, t, 0, emsg))
        return error_set(DR_ERR_UNSUPPORTED, "%s: unsupported TIFF: %s", name, emsg);
    /* Rows in stored order: the orientation is applied by image.c. */
    ri.req_orientation = ri.orientation;
    const size_t n = (size_t)img->width * img->height;
    /* Zeroed: TIFFRGBAImageGet can report success while a corrupt strip (a
     * JPEG-in-TIFF stream that ends early, found by fuzz_tiff) leaves pixels
     * unwritten; they must come out the same (black) every time, never heap. */
    uint32_t *raster = calloc(n, sizeof *raster);
    if (!raster) {
        TIFFRGBAImageEnd(&ri);
        return error_set(DR_ERR_NOMEM, "%s: out of memory", name);
    }
    int ok = TIFFRGBAImageGet(&ri, raster, (uint32_t)img->width, (uint32_t)img->height);
    TIFFRGBAImageEnd(&ri);
    if (!ok) {
        free(raster);
        return tiff_fail(m, name, "cannot decode the image");
    }
    const int c = img->channels;
    for (size_t i = 0; i < n; i++) {
        uint32_t p = raster[i];
        uint16_t *d = img->data + i * c;
        if (gray)
            d[0] = (uint16_t)TIFFGetR(p);
        else
            d[0] = (uint16_t)TIFFGetR(p), d[1] = (uint16_t)TIFFGetG(p), d[2] = (uint16_t)TIFFGetB(p);
        if (alpha) d[c - 1] = (uint16_t)TIFFGetA(p);
    }
    free(raster);
    return DR_OK;
}

/* ICC (34675), XMP (700), IPTC (33723) of the first directory. */
static int read_metadata(TIFF *t, const char *name, dr_metadata *meta) {
    uint32_t n = 0;
    void *d = NULL;
    if (TIFFGetField(t, TIFFTAG_ICCPROFILE, &n, &d) && d && n)
        DR_TRY(io_meta_set(&meta->icc, &meta->icc_size, d, n, name, "ICC profile"));
    n = 0, d = NULL;
    if (TIFFGetField(t, TIFFTAG_XMLPACKET, &n, &d) && d && n)
        DR_TRY(io_meta_set(&meta->xmp, &meta->xmp_size, d, n, name, "XMP"));
    n = 0, d = NULL;
    if (TIFFGetField(t, TIFFTAG_RICHTIFFIPTC, &n, &d) && d && n) {
        /* libtiff counts this tag in its stored units: bytes, or LONGs when
         * the file typed it LONG (as Photoshop and exiftool do) */
        const TIFFField *f = TIFFFieldWithTag(t, TIFFTAG_RICHTIFFIPTC);
        size_t unit = f && (TIFFFieldDataType(f) == TIFF_LONG || TIFFFieldDataType(f) == TIFF_SLONG) ? 4 : 1;
        if (n > DR_MAX_META_SIZE / unit)
            return error_set(DR_ERR_LIMIT, "%s: the IPTC is over the limit of %zu bytes", name,
                             (size_t)DR_MAX_META_SIZE);
        DR_TRY(io_meta_set(&meta->iptc, &meta->iptc_size, d, (size_t)n * unit, name, "IPTC"));
    }
    return DR_OK;
}

/* A TIFF's EXIF is its own IFD0 and EXIF sub-IFD, mixed with the image's
 * tags. Its text fields (the camera, the dates, the author) are gathered
 * into a new EXIF block; the other EXIF values (exposure, lens ...) are not
 * read from TIFF files. */
static int read_exif(TIFF *t, const char *name, dr_metadata *meta) {
    const int *tags = io_exif_text_tags, *in_exif = io_exif_text_in_exif;
    enum { N = DR_EXIF_TEXT_TAGS };
    char *vals[N] = {0};
    int found = 0;
    for (int i = 0; i < N; i++) {
        char *v = NULL;
        if (!in_exif[i] && TIFFGetField(t, (uint32_t)tags[i], &v) && v && (vals[i] = strdup(v))) found = 1;
    }
    uint64_t off = 0;
    if (TIFFGetField(t, TIFFTAG_EXIFIFD, &off) && off && TIFFReadEXIFDirectory(t, off))
        for (int i = 0; i < N; i++) {
            char *v = NULL;
            if (in_exif[i] && TIFFGetField(t, (uint32_t)tags[i], &v) && v && (vals[i] = strdup(v))) found = 1;
        }
    int rc = DR_OK;
    if (found && !meta->exif) {
        unsigned char *e;
        size_t n;
        rc = io_exif_from_text(in_exif, tags, vals, N, &e, &n);
        if (rc != DR_OK)
            rc = error_set(rc, "%s: out of memory for the EXIF", name);
        else
            meta->exif = e, meta->exif_size = n;
    }
    for (int i = 0; i < N; i++) free(vals[i]);
    return rc;
}

int io_tiff_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                   dr_image_info *info, dr_metadata *meta) {
    tiff_io m = {.buf = buf, .size = size};
    TIFF *t = open_tiff(&m, name, "rm", 0);
    if (!t) return tiff_fail(&m, name, "cannot open");
    dr_image out = {0};
    int rc = DR_OK;
    uint32_t w = 0, h = 0;
    uint16_t spp = 1, bps = 1, photo = PHOTOMETRIC_MINISBLACK, orient = ORIENTATION_TOPLEFT;
    uint16_t nextra = 0, *extra = NULL;
    if (!TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h)) {
        rc = tiff_fail(&m, name, "no image size");
        goto done;
    }
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(t, TIFFTAG_ORIENTATION, &orient);
    TIFFGetFieldDefaulted(t, TIFFTAG_EXTRASAMPLES, &nextra, &extra);
    if (!TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photo)) photo = spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
    if (w == 0 || h == 0 || w > INT32_MAX || h > INT32_MAX) {
        rc = error_set(DR_ERR_FORMAT, "%s: invalid TIFF: image size %ux%u", name, w, h);
        goto done;
    }
    /* libtiff sizes its strip and tile buffers by the samples per pixel, so a
     * header claiming thousands of them asks for gigabytes whatever the pixel
     * count; real photos carry at most colour, alpha and a few extras */
    if (spp < 1 || spp > TIFF_MAX_SAMPLES) {
        rc = error_set(DR_ERR_UNSUPPORTED, "%s: unsupported TIFF: %u samples per pixel (at most %d)", name, spp,
                       TIFF_MAX_SAMPLES);
        goto done;
    }
    const int direct = direct_layout(t, spp, bps, photo);
    const int gray = photo == PHOTOMETRIC_MINISBLACK || photo == PHOTOMETRIC_MINISWHITE;
    const int alpha = direct ? (spp == 2 || spp == 4) : nextra > 0;
    const int channels = direct ? spp : (gray ? 1 : 3) + alpha;
    const int depth = direct ? bps : 8;
    int cs = DR_CS_UNKNOWN;
    switch (photo) {
    case PHOTOMETRIC_MINISBLACK:
    case PHOTOMETRIC_MINISWHITE: cs = alpha ? DR_CS_GRAY_ALPHA : DR_CS_GRAY; break;
    case PHOTOMETRIC_RGB: cs = alpha ? DR_CS_RGBA : DR_CS_RGB; break;
    case PHOTOMETRIC_PALETTE: cs = DR_CS_PALETTE; break;
    case PHOTOMETRIC_YCBCR: cs = DR_CS_YCBCR; break;
    case PHOTOMETRIC_SEPARATED: cs = DR_CS_CMYK; break;
    default: break;
    }
    if (info) {
        info->format = DR_FORMAT_TIFF;
        info->width = (int)w;
        info->height = (int)h;
        info->channels = channels;
        info->depth = depth;
        info->color_space = cs;
        info->orientation = orient >= 1 && orient <= 8 ? orient : 1;
    }
    if ((rc = read_metadata(t, name, meta)) != DR_OK) goto done;
    if (!img) {
        rc = read_exif(t, name, meta);
        goto done;
    }
    if ((rc = io_image_check_limit(name, w, h, max_pixels)) != DR_OK) goto done;
    if ((rc = dr_image_alloc(&out, (int)w, (int)h, channels, depth)) != DR_OK) {
        rc = error_prefix(rc, "%s", name);
        goto done;
    }
    rc = direct ? read_direct(t, &m, name, &out, bps) : read_rgba(t, &m, name, &out, gray, alpha);
    if (rc == DR_OK) rc = read_exif(t, name, meta); /* last: it leaves the image's directory */
done:
    TIFFClose(t);
    if (rc == DR_OK && img)
        *img = out;
    else
        dr_image_free(&out);
    return rc;
}

int io_tiff_encode(FILE *fp, const char *path, const dr_image *img, const io_out_meta *om) {
    tiff_io m = {.fp = fp};
    TIFF *t = open_tiff(&m, path, "w", 1);
    if (!t) return error_set(DR_ERR_IO, "%s: cannot start the TIFF: %s", path, m.msg);
    const int w = img->width, h = img->height, c = img->channels, bps = img->depth;
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)w);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)h);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)c);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, (uint16_t)bps);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, c >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    TIFFSetField(t, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(t, 0));
    if (c == 2 || c == 4) {
        uint16_t ex = EXTRASAMPLE_UNASSALPHA;
        TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &ex);
    }
    if (om && om->icc_size) TIFFSetField(t, TIFFTAG_ICCPROFILE, (uint32_t)om->icc_size, om->icc);
    if (om && om->xmp_size) TIFFSetField(t, TIFFTAG_XMLPACKET, (uint32_t)om->xmp_size, om->xmp);
    if (om && om->iptc_size) TIFFSetField(t, TIFFTAG_RICHTIFFIPTC, (uint32_t)om->iptc_size, om->iptc);
    /* The EXIF's text fields: the IFD0 ones are TIFF tags of the same
     * numbers; the sub-IFD ones go into an EXIF directory written after the
     * image's, whose offset is then patched into the image's directory. */
    char *vals[DR_EXIF_TEXT_TAGS] = {0};
    int sub = 0;
    if (om && om->exif_size) {
        io_exif_text(om->exif, om->exif_size, vals);
        for (int i = 0; i < DR_EXIF_TEXT_TAGS; i++) {
            if (vals[i] && !io_exif_text_in_exif[i]) TIFFSetField(t, (uint32_t)io_exif_text_tags[i], vals[i]);
            if (vals[i] && io_exif_text_in_exif[i]) sub = 1;
        }
        if (sub) TIFFSetField(t, TIFFTAG_EXIFIFD, (uint64_t)0); /* reserves the entry */
    }
    size_t rowb = (size_t)w * c * (bps / 8);
    unsigned char *row = malloc(rowb);
    int rc = DR_OK;
    if (!row) rc = error_set(DR_ERR_NOMEM, "%s: out of memory", path);
    for (int y = 0; rc == DR_OK && y < h; y++) {
        const uint16_t *s = img->data + (size_t)y * w * c;
        for (size_t i = 0; i < (size_t)w * c; i++) {
            if (bps == 8)
                row[i] = (unsigned char)s[i];
            else
                memcpy(row + 2 * i, &s[i], 2);
        }
        if (TIFFWriteScanline(t, row, (uint32_t)y, 0) < 0)
            rc = error_set(DR_ERR_IO, "%s: cannot write the TIFF: %s", path, m.msg[0] ? m.msg : "write failed");
    }
    free(row);
    if (rc == DR_OK && !TIFFWriteDirectory(t))
        rc = error_set(DR_ERR_IO, "%s: cannot write the TIFF: %s", path, m.msg[0] ? m.msg : "write failed");
    if (rc == DR_OK && sub) {
        uint64_t off = 0;
        int ok = TIFFCreateEXIFDirectory(t) == 0 && TIFFSetField(t, EXIFTAG_EXIFVERSION, "0232");
        for (int i = 0; ok && i < DR_EXIF_TEXT_TAGS; i++)
            if (vals[i] && io_exif_text_in_exif[i]) ok = TIFFSetField(t, (uint32_t)io_exif_text_tags[i], vals[i]);
        ok = ok && TIFFWriteCustomDirectory(t, &off) && off;
        ok = ok && TIFFSetDirectory(t, 0) && TIFFSetField(t, TIFFTAG_EXIFIFD, off) && TIFFRewriteDirectory(t);
        if (!ok)
            rc = error_set(DR_ERR_IO, "%s: cannot write the TIFF's EXIF directory: %s", path,
                           m.msg[0] ? m.msg : "libtiff failed");
    }
    for (int i = 0; i < DR_EXIF_TEXT_TAGS; i++) free(vals[i]);
    TIFFClose(t);
    return rc;
}
