/* WebP decoding (lossy and lossless, with alpha; the first frame only is
 * refused for animations) and encoding (lossless, or lossy at a quality)
 * with libwebp. The EXIF chunk, found with libwebpdemux, gives the
 * orientation. WebP is 8-bit RGB(A): 16-bit images are reduced to 8 and
 * gray is written as RGB. */
#include "io/codecs.h"
#include "io/image_core.h"
#include "io/orient.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>
#include <webp/encode.h>
#include <webp/mux.h>

static const char *vp8_status(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated data";
    default: return "decoding failed";
    }
}

/* The orientation, and the ICCP, EXIF and XMP chunks (libwebpdemux). */
static int webp_metadata(const unsigned char *buf, size_t size, const char *name, int *orientation, dr_metadata *meta) {
    *orientation = 1;
    WebPData d = {buf, size};
    WebPDemuxer *dm = WebPDemux(&d);
    if (!dm) return DR_OK; /* a simple (VP8/VP8L) file the decoder judges */
    static const struct {
        const char *fourcc;
        uint32_t flag;
        const char *what;
    } parts[3] = {{"ICCP", ICCP_FLAG, "ICC profile"}, {"EXIF", EXIF_FLAG, "EXIF"}, {"XMP ", XMP_FLAG, "XMP"}};
    unsigned char **dst[3] = {&meta->icc, &meta->exif, &meta->xmp};
    size_t *dsz[3] = {&meta->icc_size, &meta->exif_size, &meta->xmp_size};
    const uint32_t flags = WebPDemuxGetI(dm, WEBP_FF_FORMAT_FLAGS);
    int rc = DR_OK;
    for (int i = 0; i < 3 && rc == DR_OK; i++) {
        WebPChunkIterator it;
        if (!(flags & parts[i].flag) || !WebPDemuxGetChunk(dm, parts[i].fourcc, 1, &it)) continue;
        if (i == 1) *orientation = io_exif_orientation(it.chunk.bytes, it.chunk.size);
        const unsigned char *p = it.chunk.bytes;
        size_t n = it.chunk.size;
        if (i == 1 && n >= 6 && memcmp(p, "Exif\0\0", 6) == 0) p += 6, n -= 6; /* some writers keep the APP1 header */
        rc = io_meta_set(dst[i], dsz[i], p, n, name, parts[i].what);
        WebPDemuxReleaseChunkIterator(&it);
    }
    WebPDemuxDelete(dm);
    return rc;
}

int io_webp_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                   dr_image_info *info, dr_metadata *meta) {
    WebPBitstreamFeatures f;
    VP8StatusCode s = WebPGetFeatures(buf, size, &f);
    if (s != VP8_STATUS_OK) return error_set(DR_ERR_FORMAT, "%s: invalid WebP: %s", name, vp8_status(s));
    if (f.has_animation) return error_set(DR_ERR_UNSUPPORTED, "%s: animated WebP is not supported", name);
    if (f.width <= 0 || f.height <= 0)
        return error_set(DR_ERR_FORMAT, "%s: invalid WebP: image size %dx%d", name, f.width, f.height);
    const int channels = f.has_alpha ? 4 : 3;
    if (info) {
        info->format = DR_FORMAT_WEBP;
        info->width = f.width;
        info->height = f.height;
        info->channels = channels;
        info->depth = 8;
        info->color_space = f.has_alpha ? DR_CS_RGBA : DR_CS_RGB;
    }
    int orientation;
    DR_TRY(webp_metadata(buf, size, name, &orientation, meta));
    if (info) info->orientation = orientation;
    if (!img) return DR_OK;
    DR_TRY(io_image_check_limit(name, f.width, f.height, max_pixels));
    dr_image out;
    int rc = dr_image_alloc(&out, f.width, f.height, channels, 8);
    if (rc != DR_OK) return error_prefix(rc, "%s", name);
    const size_t n = (size_t)f.width * f.height * channels;
    uint8_t *px = malloc(n);
    if (!px) {
        dr_image_free(&out);
        return error_set(DR_ERR_NOMEM, "%s: out of memory", name);
    }
    const int stride = f.width * channels;
    uint8_t *ok =
        f.has_alpha ? WebPDecodeRGBAInto(buf, size, px, n, stride) : WebPDecodeRGBInto(buf, size, px, n, stride);
    if (!ok) {
        free(px);
        dr_image_free(&out);
        return error_set(DR_ERR_FORMAT, "%s: invalid WebP: cannot decode the image data", name);
    }
    for (size_t i = 0; i < n; i++) out.data[i] = px[i];
    free(px);
    *img = out;
    return DR_OK;
}

int io_webp_encode(FILE *fp, const char *path, const dr_image *img, int quality, const io_out_meta *m) {
    const int w = img->width, h = img->height, c = img->channels;
    const int alpha = c == 2 || c == 4, oc = alpha ? 4 : 3;
    const size_t n = (size_t)w * h;
    uint8_t *px = malloc(n * oc);
    if (!px) return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) {
        const uint16_t *s = img->data + i * c;
        uint8_t v[4];
        for (int k = 0; k < c; k++)
            v[k] = img->depth == 16 ? (uint8_t)((s[k] * 255u + 32767u) / 65535u) : (uint8_t)s[k];
        uint8_t *d = px + i * oc;
        if (c <= 2)
            d[0] = d[1] = d[2] = v[0];
        else
            d[0] = v[0], d[1] = v[1], d[2] = v[2];
        if (alpha) d[3] = v[c - 1];
    }
    uint8_t *out = NULL;
    size_t size;
    if (quality <= 0)
        size = alpha ? WebPEncodeLosslessRGBA(px, w, h, w * 4, &out) : WebPEncodeLosslessRGB(px, w, h, w * 3, &out);
    else
        size = alpha ? WebPEncodeRGBA(px, w, h, w * 4, (float)quality, &out)
                     : WebPEncodeRGB(px, w, h, w * 3, (float)quality, &out);
    free(px);
    if (size == 0 || !out) {
        WebPFree(out);
        return error_set(DR_ERR_UNSUPPORTED, "%s: WebP encoding failed (%dx%d; WebP allows at most 16383x16383)", path,
                         w, h);
    }
    WebPData assembled = {out, size};
    int rc = DR_OK;
    if (m && (m->icc_size || m->exif_size || m->xmp_size)) {
        /* the chunks go in through libwebpmux, which also sets the VP8X flags */
        WebPData bits = {out, size};
        WebPMux *mux = WebPMuxCreate(&bits, 0);
        WebPData c;
        WebPMuxError e = mux ? WEBP_MUX_OK : WEBP_MUX_MEMORY_ERROR;
        if (e == WEBP_MUX_OK && m->icc_size)
            c = (WebPData){m->icc, m->icc_size}, e = WebPMuxSetChunk(mux, "ICCP", &c, 0);
        if (e == WEBP_MUX_OK && m->exif_size)
            c = (WebPData){m->exif, m->exif_size}, e = WebPMuxSetChunk(mux, "EXIF", &c, 0);
        if (e == WEBP_MUX_OK && m->xmp_size)
            c = (WebPData){m->xmp, m->xmp_size}, e = WebPMuxSetChunk(mux, "XMP ", &c, 0);
        WebPDataInit(&assembled);
        if (e == WEBP_MUX_OK) e = WebPMuxAssemble(mux, &assembled);
        WebPMuxDelete(mux);
        if (e != WEBP_MUX_OK)
            rc = error_set(DR_ERR_NOMEM, "%s: cannot add the metadata to the WebP (libwebpmux error %d)", path, (int)e);
    }
    if (rc == DR_OK && fwrite(assembled.bytes, 1, assembled.size, fp) != assembled.size)
        rc = error_set(DR_ERR_IO, "%s: write failed", path);
    if (assembled.bytes != out) WebPDataClear(&assembled);
    WebPFree(out);
    return rc;
}
