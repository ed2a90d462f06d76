/* icc.c - colour profiles with Little CMS: a profile's pixels converted to
 * sRGB on load and back on save, and our own sRGB profile. Nothing here prints. */
#include "io/icc.h"
#include "io/image_core.h"

#include "common/error.h"

#include <lcms2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
    if (!buf || !size) return error_set(DR_ERR_INVALID, "dr_srgb_profile: NULL argument");
    *buf = NULL, *size = 0;
    lcms_log l;
    cmsContext ctx = new_context(&l);
    cmsHPROFILE h = ctx ? cmsCreate_sRGBProfileTHR(ctx) : NULL;
    cmsUInt32Number n = 0;
    int rc = DR_OK;
    if (!h || !cmsSaveProfileToMem(h, NULL, &n) || n == 0)
        rc = error_set(DR_ERR_NOMEM, "cannot build the sRGB profile");
    else if (!(*buf = malloc(n)))
        rc = error_set(DR_ERR_NOMEM, "out of memory for the sRGB profile");
    else if (!cmsSaveProfileToMem(h, *buf, &n))
        rc = error_set(DR_ERR_NOMEM, "cannot build the sRGB profile");
    else
        *size = n;
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
        return error_set(DR_ERR_LIMIT, "%s: the ICC profile is %zu bytes, over the limit of %zu", name, n,
                         (size_t)DR_MAX_ICC_SIZE);
    if (n < 132)
        return error_set(DR_ERR_FORMAT, "%s: invalid ICC profile: %zu bytes, shorter than its header", name, n);
    uint32_t declared = (uint32_t)icc[0] << 24 | (uint32_t)icc[1] << 16 | (uint32_t)icc[2] << 8 | icc[3];
    if (declared > n)
        return error_set(DR_ERR_FORMAT, "%s: invalid ICC profile: it declares %u bytes but has %zu", name, declared, n);
    /* Little CMS reads tags only when asked; check the tag table up front
     * so a damaged profile is refused whole, not half used. */
    uint32_t count = (uint32_t)icc[128] << 24 | (uint32_t)icc[129] << 16 | (uint32_t)icc[130] << 8 | icc[131];
    if (declared < 132 || count > (declared - 132) / 12)
        return error_set(DR_ERR_FORMAT, "%s: invalid ICC profile: %u tags do not fit in its %u bytes", name, count,
                         declared);
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *e = icc + 132 + 12 * (size_t)i;
        uint32_t off = (uint32_t)e[4] << 24 | (uint32_t)e[5] << 16 | (uint32_t)e[6] << 8 | e[7];
        uint32_t len = (uint32_t)e[8] << 24 | (uint32_t)e[9] << 16 | (uint32_t)e[10] << 8 | e[11];
        if (off > declared || len > declared - off)
            return error_set(DR_ERR_FORMAT, "%s: invalid ICC profile: tag %u (%.4s) lies outside the profile", name, i,
                             (const char *)e);
    }
    cmsHPROFILE h = cmsOpenProfileFromMemTHR(ctx, icc, (cmsUInt32Number)n);
    if (!h)
        return error_set(DR_ERR_FORMAT, "%s: invalid ICC profile: %s", name, l->msg[0] ? l->msg : "cannot be parsed");
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
        return error_set(DR_ERR_NOMEM, "%s: out of memory for the colour conversion", name);
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
static int convert(dr_image *img, const unsigned char *icc, size_t n, const char *name, int direction, int *converted,
                   char *desc, size_t desc_size, int probe) {
    if (converted) *converted = 0;
    lcms_log l;
    cmsContext ctx = new_context(&l);
    if (!ctx) return error_set(DR_ERR_NOMEM, "%s: cannot start Little CMS", name);
    cmsHPROFILE prof = NULL, std = NULL;
    cmsHTRANSFORM t = NULL;
    int kind = 0, rc = open_profile(ctx, &l, icc, n, name, &prof, &kind, desc, desc_size);
    const int colour = img && img->channels >= 3 ? 3 : 1;
    if (rc != DR_OK) goto done;
    if (kind == 0 || (img && kind != colour)) {
        if (direction == 1)
            rc = error_set(DR_ERR_UNSUPPORTED, "%s: the ICC profile is for %s, the image is %s", name,
                           kind == 3       ? "RGB"
                               : kind == 1 ? "gray"
                                           : "another colour space",
                           colour == 3 ? "RGB" : "gray");
        goto done; /* on load: not used, the pixels count as sRGB */
    }
    if (direction == 0 && is_our_srgb(icc, n)) goto done;
    std = kind == 3 ? cmsCreate_sRGBProfileTHR(ctx) : srgb_gray(ctx);
    if (!std) {
        rc = error_set(DR_ERR_NOMEM, "%s: cannot build the sRGB profile", name);
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
        rc = error_set(DR_ERR_FORMAT, "%s: invalid ICC profile: %s", name,
                       l.msg[0] ? l.msg : "no colour transform can be built from it");
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

int io_icc_to_srgb(dr_image *img, int channels, const unsigned char *icc, size_t n, const char *name, int *converted,
                   char *desc, size_t desc_size) {
    if (img) return convert(img, icc, n, name, 0, converted, desc, desc_size, 0);
    /* probe: a stand-in 1x1 image gives the channel count */
    uint16_t px[4] = {0};
    dr_image one = {1, 1, channels, 8, px};
    return convert(&one, icc, n, name, 0, converted, desc, desc_size, 1);
}

int dr_image_from_srgb(dr_image *img, const void *icc, size_t icc_size, const char *name) {
    if (!name) name = "<image>";
    DR_TRY(io_image_validate(img, name));
    if (!icc || !icc_size) return error_set(DR_ERR_INVALID, "%s: no ICC profile given", name);
    return convert(img, icc, icc_size, name, 1, NULL, NULL, 0, 0);
}
