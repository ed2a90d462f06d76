/* Colour profiles and metadata: ICC conversion with Little CMS, EXIF
 * checking and rewriting with libexif, the provenance added to XMP, and the
 * IPTC resource of a JPEG's Photoshop APP13 segment. Nothing here prints. */
#include "io/image_internal.h"

#include "common/error.h"

#include <lcms2.h>
#include <pthread.h>
#include <libexif/exif-data.h>
#include <libexif/exif-log.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void dr_metadata_free(dr_metadata *m) {
    if (!m) return;
    free(m->icc);
    free(m->exif);
    free(m->xmp);
    free(m->iptc);
    memset(m, 0, sizeof *m);
}

int dr_meta_set(unsigned char **dst, size_t *dst_size, const void *src, size_t n, const char *name,
                const char *what) {
    size_t max = strcmp(what, "ICC profile") == 0 ? DR_MAX_ICC_SIZE : DR_MAX_META_SIZE;
    if (n > max)
        return dr_error(DR_ERR_LIMIT, "%s: the %s is %zu bytes, over the limit of %zu", name, what, n, max);
    if (*dst) return DR_OK; /* the first one found wins */
    if (n == 0) return DR_OK;
    unsigned char *p = malloc(n + 1);
    if (!p) return dr_error(DR_ERR_NOMEM, "%s: out of memory for the %s", name, what);
    memcpy(p, src, n);
    p[n] = 0; /* XMP is used as a string */
    *dst = p;
    *dst_size = n;
    return DR_OK;
}

unsigned dr_metadata_unsupported(dr_format f, const dr_metadata *m) {
    if (!m) return 0;
    unsigned have = (m->icc_size ? DR_META_ICC : 0) | (m->exif_size ? DR_META_EXIF : 0) |
                    (m->xmp_size ? DR_META_XMP : 0) | (m->iptc_size ? DR_META_IPTC : 0);
    switch (f) {
    case DR_FORMAT_JPEG: {
        /* one APP1 segment each (65533 bytes less the signature), with room
         * for the EXIF's new size entries and for the provenance */
        unsigned big = 0;
        if (m->exif_size > DR_JPEG_MAX_EXIF) big |= DR_META_EXIF;
        if (m->xmp_size > DR_JPEG_MAX_XMP) big |= DR_META_XMP;
        if (m->iptc_size > DR_JPEG_MAX_EXIF) big |= DR_META_IPTC;
        return big;
    }
    case DR_FORMAT_TIFF: return 0;
    case DR_FORMAT_PNG:
    case DR_FORMAT_WEBP: return have & DR_META_IPTC;
    default: return have;
    }
}

/* ------------------------------------------------------------------ ICC (Little CMS) */

typedef struct {
    char msg[256];
} lcms_log;

static void on_lcms_error(cmsContext ctx, cmsUInt32Number code, const char *text) {
    (void)code;
    lcms_log *l = cmsGetContextUserData(ctx);
    if (l && !l->msg[0]) snprintf(l->msg, sizeof l->msg, "%s", text ? text : "error");
}

static cmsContext new_context(lcms_log *l) {
    memset(l, 0, sizeof *l);
    cmsContext ctx = cmsCreateContext(NULL, l);
    if (ctx) cmsSetLogErrorHandlerTHR(ctx, on_lcms_error);
    return ctx;
}

/* sRGB's gray: D50 white, the sRGB tone curve. */
static cmsHPROFILE srgb_gray(cmsContext ctx) {
    static const cmsFloat64Number p[5] = {2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045};
    cmsToneCurve *c = cmsBuildParametricToneCurve(ctx, 4, p);
    if (!c) return NULL;
    cmsHPROFILE h = cmsCreateGrayProfileTHR(ctx, cmsD50_xyY(), c);
    cmsFreeToneCurve(c);
    return h;
}

int dr_srgb_profile(unsigned char **buf, size_t *size) {
    if (!buf || !size) return dr_error(DR_ERR_INVALID, "dr_srgb_profile: NULL argument");
    *buf = NULL, *size = 0;
    lcms_log l;
    cmsContext ctx = new_context(&l);
    cmsHPROFILE h = ctx ? cmsCreate_sRGBProfileTHR(ctx) : NULL;
    cmsUInt32Number n = 0;
    int rc = DR_OK;
    if (!h || !cmsSaveProfileToMem(h, NULL, &n) || n == 0) rc = dr_error(DR_ERR_NOMEM, "cannot build the sRGB profile");
    else if (!(*buf = malloc(n))) rc = dr_error(DR_ERR_NOMEM, "out of memory for the sRGB profile");
    else if (!cmsSaveProfileToMem(h, *buf, &n)) rc = dr_error(DR_ERR_NOMEM, "cannot build the sRGB profile");
    else *size = n;
    if (rc != DR_OK) free(*buf), *buf = NULL;
    if (h) cmsCloseProfile(h);
    if (ctx) cmsDeleteContext(ctx);
    return rc;
}

/* Our sRGB profile's bytes, built once (every load with a profile compares). */
static unsigned char *g_srgb;
static size_t g_srgb_size;
static pthread_once_t g_srgb_once = PTHREAD_ONCE_INIT;
static void build_srgb(void) {
    if (dr_srgb_profile(&g_srgb, &g_srgb_size) != DR_OK) g_srgb = NULL, g_srgb_size = 0;
}

static int is_our_srgb(const unsigned char *icc, size_t n) {
    pthread_once(&g_srgb_once, build_srgb);
    return g_srgb && g_srgb_size == n && memcmp(g_srgb, icc, n) == 0;
}

/* Open and check a profile; fill desc. *kind: 3 RGB, 1 gray, 0 another colour space. */
static int open_profile(cmsContext ctx, lcms_log *l, const unsigned char *icc, size_t n, const char *name,
                        cmsHPROFILE *out, int *kind, char *desc, size_t desc_size) {
    *out = NULL;
    if (n > DR_MAX_ICC_SIZE)
        return dr_error(DR_ERR_LIMIT, "%s: the ICC profile is %zu bytes, over the limit of %zu", name, n,
                        (size_t)DR_MAX_ICC_SIZE);
    if (n < 132) return dr_error(DR_ERR_FORMAT, "%s: invalid ICC profile: %zu bytes, shorter than its header", name, n);
    uint32_t declared = (uint32_t)icc[0] << 24 | (uint32_t)icc[1] << 16 | (uint32_t)icc[2] << 8 | icc[3];
    if (declared > n)
        return dr_error(DR_ERR_FORMAT, "%s: invalid ICC profile: it declares %u bytes but has %zu", name,
                        declared, n);
    /* Little CMS reads tags only when asked; check the tag table up front
     * so a damaged profile is refused whole, not half used. */
    uint32_t count = (uint32_t)icc[128] << 24 | (uint32_t)icc[129] << 16 | (uint32_t)icc[130] << 8 | icc[131];
    if (declared < 132 || count > (declared - 132) / 12)
        return dr_error(DR_ERR_FORMAT, "%s: invalid ICC profile: %u tags do not fit in its %u bytes", name, count, declared);
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *e = icc + 132 + 12 * (size_t)i;
        uint32_t off = (uint32_t)e[4] << 24 | (uint32_t)e[5] << 16 | (uint32_t)e[6] << 8 | e[7];
        uint32_t len = (uint32_t)e[8] << 24 | (uint32_t)e[9] << 16 | (uint32_t)e[10] << 8 | e[11];
        if (off > declared || len > declared - off)
            return dr_error(DR_ERR_FORMAT, "%s: invalid ICC profile: tag %u (%.4s) lies outside the profile", name, i,
                            (const char *)e);
    }
    cmsHPROFILE h = cmsOpenProfileFromMemTHR(ctx, icc, (cmsUInt32Number)n);
    if (!h)
        return dr_error(DR_ERR_FORMAT, "%s: invalid ICC profile: %s", name, l->msg[0] ? l->msg : "cannot be parsed");
    cmsColorSpaceSignature cs = cmsGetColorSpace(h);
    *kind = cs == cmsSigRgbData ? 3 : cs == cmsSigGrayData ? 1 : 0;
    if (desc && desc_size) {
        desc[0] = 0;
        cmsUInt32Number k = cmsGetProfileInfoASCII(h, cmsInfoDescription, "en", "US", desc, (cmsUInt32Number)desc_size);
        if (k == 0) desc[0] = 0;
        desc[desc_size - 1] = 0;
        for (char *p = desc; *p; p++)
            if ((unsigned char)*p < 32 || (unsigned char)*p > 126) *p = '?';
    }
    *out = h;
    return DR_OK;
}

/* Transform img's colour channels (not alpha) through t, row by row. */
static int apply(cmsHTRANSFORM t, dr_image *img, int colour, const char *name) {
    const int w = img->width, c = img->channels;
    uint16_t *in = malloc((size_t)w * colour * sizeof *in), *out = malloc((size_t)w * colour * sizeof *out);
    if (!in || !out) {
        free(in), free(out);
        return dr_error(DR_ERR_NOMEM, "%s: out of memory for the colour conversion", name);
    }
    for (int y = 0; y < img->height; y++) {
        uint16_t *row = img->data + (size_t)y * w * c;
        for (int x = 0; x < w; x++)
            for (int k = 0; k < colour; k++) in[(size_t)x * colour + k] = row[(size_t)x * c + k];
        if (img->depth == 8) {
            unsigned char *b = (unsigned char *)in, *o = (unsigned char *)out;
            for (size_t i = 0; i < (size_t)w * colour; i++) b[i] = (unsigned char)in[i];
            cmsDoTransform(t, b, o, (cmsUInt32Number)w);
            for (size_t i = (size_t)w * colour; i-- > 0;) out[i] = o[i]; /* widen backwards */
        } else {
            cmsDoTransform(t, in, out, (cmsUInt32Number)w);
        }
        for (int x = 0; x < w; x++)
            for (int k = 0; k < colour; k++) row[(size_t)x * c + k] = out[(size_t)x * colour + k];
    }
    free(in), free(out);
    return DR_OK;
}

/* direction 0: profile -> sRGB; 1: sRGB -> profile. probe: img only gives
 * the channel count; the profile is opened and checked but no transform is
 * built (the load builds it, and may still refuse the profile then). */
static int convert(dr_image *img, const unsigned char *icc, size_t n, const char *name, int direction,
                   int *converted, char *desc, size_t desc_size, int probe) {
    if (converted) *converted = 0;
    lcms_log l;
    cmsContext ctx = new_context(&l);
    if (!ctx) return dr_error(DR_ERR_NOMEM, "%s: cannot start Little CMS", name);
    cmsHPROFILE prof = NULL, std = NULL;
    cmsHTRANSFORM t = NULL;
    int kind = 0, rc = open_profile(ctx, &l, icc, n, name, &prof, &kind, desc, desc_size);
    const int colour = img && img->channels >= 3 ? 3 : 1;
    if (rc != DR_OK) goto done;
    if (kind == 0 || (img && kind != colour)) {
        if (direction == 1)
            rc = dr_error(DR_ERR_UNSUPPORTED, "%s: the ICC profile is for %s, the image is %s", name,
                          kind == 3 ? "RGB" : kind == 1 ? "gray" : "another colour space", colour == 3 ? "RGB" : "gray");
        goto done; /* on load: not used, the pixels count as sRGB */
    }
    if (direction == 0 && is_our_srgb(icc, n)) goto done;
    std = kind == 3 ? cmsCreate_sRGBProfileTHR(ctx) : srgb_gray(ctx);
    if (!std) {
        rc = dr_error(DR_ERR_NOMEM, "%s: cannot build the sRGB profile", name);
        goto done;
    }
    if (probe) {
        if (converted) *converted = 1;
        goto done;
    }
    cmsUInt32Number fmt = kind == 3 ? TYPE_RGB_16 : TYPE_GRAY_16;
    if (img && img->depth == 8) fmt = kind == 3 ? TYPE_RGB_8 : TYPE_GRAY_8;
    t = direction == 0 ? cmsCreateTransformTHR(ctx, prof, fmt, std, fmt, INTENT_PERCEPTUAL, 0)
                       : cmsCreateTransformTHR(ctx, std, fmt, prof, fmt, INTENT_PERCEPTUAL, 0);
    if (!t) {
        rc = dr_error(DR_ERR_FORMAT, "%s: invalid ICC profile: %s", name, l.msg[0] ? l.msg : "no colour transform can be built from it");
        goto done;
    }
    rc = apply(t, img, colour, name);
    if (converted) *converted = rc == DR_OK;
done:
    if (t) cmsDeleteTransform(t);
    if (std) cmsCloseProfile(std);
    if (prof) cmsCloseProfile(prof);
    cmsDeleteContext(ctx);
    return rc;
}

int dr_icc_to_srgb(dr_image *img, int channels, const unsigned char *icc, size_t n, const char *name,
                   int *converted, char *desc, size_t desc_size) {
    if (img) return convert(img, icc, n, name, 0, converted, desc, desc_size, 0);
    /* probe: a stand-in 1x1 image gives the channel count */
    uint16_t px[4] = {0};
    dr_image one = {1, 1, channels, 8, px};
    return convert(&one, icc, n, name, 0, converted, desc, desc_size, 1);
}

int dr_image_from_srgb(dr_image *img, const void *icc, size_t icc_size, const char *name) {
    if (!name) name = "<image>";
    DR_TRY(dr_image_validate(img, name));
    if (!icc || !icc_size) return dr_error(DR_ERR_INVALID, "%s: no ICC profile given", name);
    return convert(img, icc, icc_size, name, 1, NULL, NULL, 0, 0);
}

/* ------------------------------------------------------------------ EXIF (libexif) */

typedef struct {
    char msg[256];
    int nomem;
} exif_log_state;

/* libexif reports structural damage (a loop of IFD offsets, offsets or
 * counts past the end) only as debug messages before skipping the part; those
 * messages, and anything it logs as corrupt data, make the EXIF invalid. */
static void on_exif_log(ExifLog *log, ExifLogCode code, const char *domain, const char *fmt, va_list ap, void *data) {
    (void)log, (void)domain;
    static const char *damage[] = {"Recursive entry", "Deep/expensive recursion", "Tag data past end",
                                   "Tag starts past end", "Tag data goes past end", "Bogus offset of IFD1"};
    exif_log_state *s = data;
    if (code == EXIF_LOG_CODE_NO_MEMORY) s->nomem = 1;
    if (s->msg[0]) return;
    char m[256];
    vsnprintf(m, sizeof m, fmt, ap);
    int bad = code == EXIF_LOG_CODE_CORRUPT_DATA;
    for (size_t i = 0; i < sizeof damage / sizeof *damage && !bad; i++) bad = strncmp(m, damage[i], strlen(damage[i])) == 0;
    if (!bad) return;
    size_t k = strlen(m);
    if (k > 12 && strcmp(m + k - 12, " Skipping...") == 0) m[k - 12] = 0; /* we do not skip: we refuse */
    snprintf(s->msg, sizeof s->msg, "%s", m);
}

/* Load an EXIF block (TIFF header on) with libexif, as it is (no "fixing"). */
static ExifData *exif_open(const unsigned char *exif, size_t n, exif_log_state *st) {
    memset(st, 0, sizeof *st);
    if (n > DR_MAX_META_SIZE) return NULL;
    unsigned char *tmp = malloc(n + 6);
    if (!tmp) {
        st->nomem = 1;
        return NULL;
    }
    memcpy(tmp, "Exif\0\0", 6);
    memcpy(tmp + 6, exif, n);
    ExifData *ed = exif_data_new();
    ExifLog *log = exif_log_new();
    if (!ed || !log) {
        if (ed) exif_data_unref(ed);
        if (log) exif_log_unref(log);
        free(tmp);
        st->nomem = 1;
        return NULL;
    }
    exif_log_set_func(log, on_exif_log, st);
    exif_data_log(ed, log);
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_unset_option(ed, EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
    exif_data_set_option(ed, EXIF_DATA_OPTION_DONT_CHANGE_MAKER_NOTE);
    exif_data_load_data(ed, tmp, (unsigned int)(n + 6));
    exif_log_unref(log); /* ed keeps its reference */
    free(tmp);
    return ed;
}

int dr_exif_check(const unsigned char *exif, size_t n, const char *name) {
    exif_log_state st;
    if (n < 8) return dr_error(DR_ERR_FORMAT, "%s: invalid EXIF: %zu bytes", name, n);
    if (!(memcmp(exif, "II*\0", 4) == 0 || memcmp(exif, "MM\0*", 4) == 0))
        return dr_error(DR_ERR_FORMAT, "%s: invalid EXIF: no TIFF header", name);
    ExifData *ed = exif_open(exif, n, &st);
    if (!ed) return dr_error(st.nomem ? DR_ERR_NOMEM : DR_ERR_FORMAT, "%s: cannot read the EXIF", name);
    exif_data_unref(ed);
    if (st.nomem) return dr_error(DR_ERR_NOMEM, "%s: out of memory reading the EXIF", name);
    if (st.msg[0]) return dr_error(DR_ERR_FORMAT, "%s: invalid EXIF: %s", name, st.msg);
    return DR_OK;
}

/* Set a SHORT or LONG tag to v; with create, add it (as a LONG) when absent.
 * A SHORT too small for v becomes a LONG. */
static void set_uint(ExifData *ed, ExifIfd ifd, ExifTag tag, unsigned v, int create) {
    ExifContent *c = ed->ifd[ifd];
    ExifEntry *e = exif_content_get_entry(c, tag);
    ExifByteOrder bo = exif_data_get_byte_order(ed);
    if (e && e->format == EXIF_FORMAT_SHORT && e->data && e->size >= 2 && v <= 65535) {
        exif_set_short(e->data, bo, (ExifShort)v);
        return;
    }
    if (e && e->format == EXIF_FORMAT_LONG && e->data && e->size >= 4) {
        exif_set_long(e->data, bo, (ExifLong)v);
        return;
    }
    if (e) exif_content_remove_entry(c, e); /* another type or too small: replaced */
    else if (!create) return;
    ExifMem *mem = exif_mem_new_default();
    e = mem ? exif_entry_new_mem(mem) : NULL;
    unsigned char *d = mem ? exif_mem_alloc(mem, 4) : NULL;
    if (e && d) {
        e->tag = tag;
        e->format = EXIF_FORMAT_LONG;
        e->components = 1;
        e->size = 4;
        e->data = d;
        exif_set_long(d, bo, (ExifLong)v);
        exif_content_add_entry(c, e);
    } else if (d) {
        exif_mem_free(mem, d);
    }
    if (e) exif_entry_unref(e);
    if (mem) exif_mem_unref(mem);
}

int dr_exif_for_output(const unsigned char *exif, size_t n, int width, int height, const char *name,
                       unsigned char **out, size_t *out_size) {
    *out = NULL, *out_size = 0;
    exif_log_state st;
    ExifData *ed = exif_open(exif, n, &st);
    if (!ed) return dr_error(st.nomem ? DR_ERR_NOMEM : DR_ERR_FORMAT, "%s: cannot rewrite the EXIF", name);
    /* upright, the output's size, no thumbnail (it would show the old picture) */
    set_uint(ed, EXIF_IFD_0, EXIF_TAG_ORIENTATION, 1, 0);
    set_uint(ed, EXIF_IFD_EXIF, EXIF_TAG_PIXEL_X_DIMENSION, (unsigned)width, 1);
    set_uint(ed, EXIF_IFD_EXIF, EXIF_TAG_PIXEL_Y_DIMENSION, (unsigned)height, 1);
    if (ed->data) {
        /* exif_data_new() allocates with libexif's default allocator (free) */
        ExifMem *mem = exif_mem_new_default();
        if (mem) {
            exif_mem_free(mem, ed->data);
            exif_mem_unref(mem);
            ed->data = NULL;
            ed->size = 0;
        }
    }
    ExifContent *ifd1 = ed->ifd[EXIF_IFD_1];
    while (ifd1 && ifd1->count > 0) exif_content_remove_entry(ifd1, ifd1->entries[ifd1->count - 1]);
    unsigned char *buf = NULL;
    unsigned int size = 0;
    exif_data_save_data(ed, &buf, &size);
    exif_data_unref(ed);
    if (!buf || size < 6 + 8 || memcmp(buf, "Exif\0\0", 6) != 0) {
        free(buf);
        return dr_error(DR_ERR_NOMEM, "%s: cannot write the EXIF", name);
    }
    memmove(buf, buf + 6, size - 6);
    *out = buf;
    *out_size = size - 6;
    return DR_OK;
}

/* The IFD0 text fields a TIFF writes in its own IFD0. vals[i] receives a
 * malloc'd string or NULL, for the tags of dr_exif_text_tags. */
const int dr_exif_text_tags[DR_EXIF_TEXT_TAGS] = {
    EXIF_TAG_MAKE, EXIF_TAG_MODEL, EXIF_TAG_DATE_TIME, EXIF_TAG_ARTIST, EXIF_TAG_COPYRIGHT,
    EXIF_TAG_IMAGE_DESCRIPTION, EXIF_TAG_SOFTWARE, EXIF_TAG_DATE_TIME_ORIGINAL, EXIF_TAG_DATE_TIME_DIGITIZED,
    EXIF_TAG_LENS_MODEL, EXIF_TAG_BODY_SERIAL_NUMBER, EXIF_TAG_CAMERA_OWNER_NAME};
const int dr_exif_text_in_exif[DR_EXIF_TEXT_TAGS] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1};

void dr_exif_text(const unsigned char *exif, size_t n, char *vals[DR_EXIF_TEXT_TAGS]) {
    for (int i = 0; i < DR_EXIF_TEXT_TAGS; i++) vals[i] = NULL;
    exif_log_state st;
    ExifData *ed = exif_open(exif, n, &st);
    if (!ed) return;
    for (int i = 0; i < DR_EXIF_TEXT_TAGS; i++) {
        ExifEntry *e = exif_content_get_entry(ed->ifd[dr_exif_text_in_exif[i] ? EXIF_IFD_EXIF : EXIF_IFD_0],
                                              (ExifTag)dr_exif_text_tags[i]);
        if (!e || e->format != EXIF_FORMAT_ASCII || !e->data || e->size == 0) continue;
        char *s = malloc(e->size + 1);
        if (!s) continue;
        memcpy(s, e->data, e->size);
        s[e->size] = 0;
        if (s[0]) vals[i] = s;
        else free(s);
    }
    exif_data_unref(ed);
}

int dr_exif_from_text(const int *in_exif_ifd, const int *tags, char *const *vals, int n, unsigned char **out,
                      size_t *out_size) {
    *out = NULL, *out_size = 0;
    ExifData *ed = exif_data_new();
    ExifMem *mem = exif_mem_new_default();
    int rc = DR_OK, any = 0;
    if (!ed || !mem) rc = DR_ERR_NOMEM;
    if (ed) {
        exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
        exif_data_set_byte_order(ed, EXIF_BYTE_ORDER_INTEL);
    }
    for (int i = 0; i < n && rc == DR_OK; i++) {
        if (!vals[i] || !vals[i][0]) continue;
        size_t len = strlen(vals[i]) + 1;
        if (len > 65535) continue;
        ExifEntry *e = exif_entry_new_mem(mem);
        unsigned char *d = e ? exif_mem_alloc(mem, (ExifLong)len) : NULL;
        if (!e || !d) {
            if (d) exif_mem_free(mem, d);
            if (e) exif_entry_unref(e);
            rc = DR_ERR_NOMEM;
            break;
        }
        memcpy(d, vals[i], len);
        e->tag = (ExifTag)tags[i];
        e->format = EXIF_FORMAT_ASCII;
        e->components = len;
        e->size = (unsigned int)len;
        e->data = d;
        exif_content_add_entry(ed->ifd[in_exif_ifd[i] ? EXIF_IFD_EXIF : EXIF_IFD_0], e);
        exif_entry_unref(e);
        any = 1;
    }
    if (rc == DR_OK && any) {
        unsigned char *buf = NULL;
        unsigned int size = 0;
        exif_data_save_data(ed, &buf, &size);
        if (!buf || size < 6 + 8) rc = DR_ERR_NOMEM;
        else {
            memmove(buf, buf + 6, size - 6);
            *out = buf, *out_size = size - 6;
            buf = NULL;
        }
        free(buf);
    }
    if (ed) exif_data_unref(ed);
    if (mem) exif_mem_unref(mem);
    return rc;
}

/* ------------------------------------------------------------------ XMP provenance */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }
static void put_escaped(sbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': puts_(b, "&lt;"); break;
        case '>': puts_(b, "&gt;"); break;
        case '&': puts_(b, "&amp;"); break;
        case '"': puts_(b, "&quot;"); break;
        default:
            if ((unsigned char)*s < 32 && *s != '\t') puts_(b, " ");
            else put(b, s, 1);
        }
    }
}

static int valid_key(const char *k) {
    if (!k || !((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z'))) return 0;
    for (; *k; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9'))) return 0;
    return 1;
}

/* Find s in [p, p+n) (no terminator needed). */
static const char *find(const char *p, size_t n, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, s, k) == 0) return p + i;
    return NULL;
}

int dr_xmp_for_output(const unsigned char *xmp, size_t n, const char *const *prov, const char *name,
                      unsigned char **out, size_t *out_size) {
    *out = NULL, *out_size = 0;
    for (const char *const *kv = prov; kv && kv[0]; kv += 2)
        if (!valid_key(kv[0]) || !kv[1])
            return dr_error(DR_ERR_INVALID, "%s: provenance key '%s' is not letters and digits (or has no value)", name,
                            kv[0]);
    sbuf d = {0};
    puts_(&d, "<rdf:Description rdf:about=\"\" xmlns:diffrestore=\"" DR_XMP_NS "\"");
    for (const char *const *kv = prov; kv && kv[0]; kv += 2) {
        puts_(&d, "\n   diffrestore:");
        puts_(&d, kv[0]);
        puts_(&d, "=\"");
        put_escaped(&d, kv[1]);
        puts_(&d, "\"");
    }
    puts_(&d, "/>\n");
    sbuf b = {0};
    /* A restored photo restored again: the earlier provenance block (written
     * by us, so found by its exact opening) is replaced, not repeated. */
    static const char ours[] = "<rdf:Description rdf:about=\"\" xmlns:diffrestore=\"" DR_XMP_NS "\"";
    sbuf kept = {0};
    if (xmp && n) {
        const char *p = (const char *)xmp, *stop = p + n;
        for (;;) {
            const char *o = find(p, (size_t)(stop - p), ours);
            const char *close = o ? find(o, (size_t)(stop - o), "/>") : NULL;
            if (!close) break;
            put(&kept, p, (size_t)(o - p));
            p = close + 2;
            if (p < stop && *p == '\n') p++;
        }
        put(&kept, p, (size_t)(stop - p));
        if (kept.oom) {
            free(d.p);
            free(kept.p);
            return dr_error(DR_ERR_NOMEM, "%s: out of memory for the XMP", name);
        }
        xmp = (const unsigned char *)kept.p, n = kept.n;
    }
    const char *x = (const char *)xmp;
    const char *end = xmp && n ? find(x, n, "</rdf:RDF>") : NULL;
    if (end) {
        /* into the existing packet, before the end of its RDF */
        put(&b, x, (size_t)(end - x));
        put(&b, d.p, d.n);
        put(&b, end, n - (size_t)(end - x));
    } else {
        puts_(&b, "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
                  "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
                  "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n");
        put(&b, d.p, d.n);
        puts_(&b, "</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"w\"?>");
    }
    free(d.p);
    free(kept.p);
    if (b.oom || d.oom) {
        free(b.p);
        return dr_error(DR_ERR_NOMEM, "%s: out of memory for the XMP", name);
    }
    *out = (unsigned char *)b.p;
    *out_size = b.n;
    return DR_OK;
}

/* ------------------------------------------------------------------ IPTC in Photoshop APP13 */

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

int dr_iptc_from_app13(const unsigned char *p, size_t n, const unsigned char **iptc, size_t *iptc_size) {
    static const char sig[] = "Photoshop 3.0";
    *iptc = NULL, *iptc_size = 0;
    if (n < sizeof sig || memcmp(p, sig, sizeof sig) != 0) return 0;
    size_t pos = sizeof sig; /* the signature and its NUL */
    /* resources: "8BIM", id (2), Pascal name padded to even, size (4), data padded to even */
    while (pos + 4 + 2 + 2 + 4 <= n) {
        if (memcmp(p + pos, "8BIM", 4) != 0) return 0;
        unsigned id = (unsigned)p[pos + 4] << 8 | p[pos + 5];
        size_t q = pos + 6;
        size_t name_len = 1 + (size_t)p[q];
        if (name_len & 1) name_len++;
        if (name_len > n - q || n - q - name_len < 4) return 0;
        q += name_len;
        uint32_t size = be32(p + q);
        q += 4;
        if (size > n - q) return 0;
        if (id == 0x0404) {
            *iptc = p + q;
            *iptc_size = size;
            return 1;
        }
        size_t adv = (size_t)size + (size & 1);
        if (adv > n - q) return 0;
        pos = q + adv;
    }
    return 0;
}

int dr_iptc_to_app13(const unsigned char *iptc, size_t n, unsigned char **out, size_t *out_size) {
    static const char sig[] = "Photoshop 3.0";
    size_t total = sizeof sig + 4 + 2 + 2 + 4 + n + (n & 1);
    unsigned char *b = malloc(total);
    if (!b) return DR_ERR_NOMEM;
    size_t q = 0;
    memcpy(b, sig, sizeof sig), q += sizeof sig;
    memcpy(b + q, "8BIM", 4), q += 4;
    b[q++] = 0x04, b[q++] = 0x04;
    b[q++] = 0, b[q++] = 0; /* empty name, padded */
    b[q++] = (unsigned char)(n >> 24), b[q++] = (unsigned char)(n >> 16), b[q++] = (unsigned char)(n >> 8), b[q++] = (unsigned char)n;
    memcpy(b + q, iptc, n), q += n;
    if (n & 1) b[q++] = 0;
    *out = b;
    *out_size = q;
    return DR_OK;
}

/* ------------------------------------------------------------------ an output's metadata */

void dr_out_meta_free(dr_out_meta *m) {
    free(m->exif);
    free(m->xmp);
    memset(m, 0, sizeof *m);
}

int dr_out_meta_prepare(const dr_save_options *o, const dr_image *img, const char *path, dr_out_meta *m) {
    memset(m, 0, sizeof *m);
    const dr_metadata *in = o->metadata;
    if (in && in->icc_size) {
        if (in->icc_size > DR_MAX_ICC_SIZE)
            return dr_error(DR_ERR_LIMIT, "%s: the ICC profile is %zu bytes, over the limit of %zu", path,
                            in->icc_size, (size_t)DR_MAX_ICC_SIZE);
        m->icc = in->icc, m->icc_size = in->icc_size;
    }
    if (in && in->iptc_size) m->iptc = in->iptc, m->iptc_size = in->iptc_size;
    if (in && in->exif_size) {
        int rc = dr_exif_for_output(in->exif, in->exif_size, img->width, img->height, path, &m->exif, &m->exif_size);
        if (rc != DR_OK) return rc;
    }
    if (o->provenance && o->provenance[0]) {
        int rc = dr_xmp_for_output(in ? in->xmp : NULL, in ? in->xmp_size : 0, o->provenance, path, &m->xmp,
                                   &m->xmp_size);
        if (rc != DR_OK) {
            dr_out_meta_free(m);
            return rc;
        }
    } else if (in && in->xmp_size) {
        unsigned char *x = malloc(in->xmp_size + 1);
        if (!x) {
            dr_out_meta_free(m);
            return dr_error(DR_ERR_NOMEM, "%s: out of memory", path);
        }
        memcpy(x, in->xmp, in->xmp_size);
        x[in->xmp_size] = 0;
        m->xmp = x, m->xmp_size = in->xmp_size;
    }
    return DR_OK;
}
