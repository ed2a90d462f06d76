/* fuzz_image.c - PNG, JPEG, TIFF and WebP decoding (src/io/), with the EXIF
 * orientation parser (libexif) and the orientation transform, on arbitrary
 * bytes, with and without the metadata (ICC profile, EXIF, XMP, IPTC).
 *
 * Built four times: fuzz_png (FUZZ_FORMAT=1, DR_FORMAT_PNG), fuzz_jpeg
 * (FUZZ_FORMAT=2), fuzz_tiff (3) and fuzz_webp (4); each skips inputs whose magic bytes are
 * not its format, so the run time goes to its decoder. Without FUZZ_FORMAT
 * every input is decoded.
 *
 * Per input: dr_format_detect on every prefix length up to 16; the header-only
 * probe (the decoder with img == NULL, what dr_image_probe runs); the full
 * decode with a 4-megapixel limit (so no input can ask for more than
 * 4M x 4 channels x 2 bytes = 32 MB of pixels). On success the image must be
 * sane (sizes > 0 and within the limit, channels 1..4, depth 8 or 16, data
 * non-NULL, 8-bit samples <= 255) and agree with the info the decode and the
 * probe returned. On failure the image must be left zeroed. No input may
 * raise the process's peak RSS by more than FUZZ_MAX_RSS_GROWTH_MB.
 *
 * PNG protects every chunk with a CRC, so nearly every mutation of a PNG
 * dies at the first CRC check. A PNG input is therefore decoded twice: as
 * it is, and with every chunk's CRC recomputed, which lets mutated header
 * fields, chunk orders and palettes through to the decoder. */
#include "fuzz.h"

#include "diffrestore.h"
#include "io/image_core.h"
#include "io/codecs.h"
#include "io/meta.h"
#include "io/icc.h"
#include "io/exif.h"
#include "io/orient.h"

#include <string.h>
#include <sys/resource.h>

#define FUZZ_MAX_PIXELS        (4LL * 1000 * 1000)
#define FUZZ_MAX_RSS_GROWTH_MB 256

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* Recompute the CRC of every whole chunk after the signature. Returns 1 if
 * anything changed. */
static int fix_png_crcs(uint8_t *d, size_t size) {
    int changed = 0;
    size_t pos = 8;
    while (pos + 12 <= size) {
        uint32_t len = (uint32_t)d[pos] << 24 | (uint32_t)d[pos + 1] << 16 | (uint32_t)d[pos + 2] << 8 | d[pos + 3];
        if (len > size - pos - 12) break;
        uint32_t crc = crc32_png(d + pos + 4, (size_t)len + 4);
        uint8_t *c = d + pos + 8 + len;
        uint8_t want[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
        if (memcmp(c, want, 4) != 0) {
            memcpy(c, want, 4);
            changed = 1;
        }
        pos += 12 + (size_t)len;
    }
    return changed;
}

static void decode_one(const uint8_t *data, size_t size);

/* Peak resident memory of the process so far, in MB. */
static long peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return ru.ru_maxrss / 1024;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* With the 4-megapixel limit no input may need more than the 32 MB of
     * pixels plus the decoders' buffers: an input that raises the peak RSS
     * by more than FUZZ_MAX_RSS_GROWTH_MB fails (libFuzzer's own -malloc_limit_mb only
     * sees single allocations, and the plain regression driver has none). */
    const long before = peak_rss_mb();
    decode_one(data, size);
    if (size >= 8 && dr_format_detect(data, size) == DR_FORMAT_PNG) {
        uint8_t *copy = malloc(size);
        if (!copy) return 0;
        memcpy(copy, data, size);
        if (fix_png_crcs(copy, size)) decode_one(copy, size);
        free(copy);
    }
    const long grown = peak_rss_mb() - before;
    if (grown > FUZZ_MAX_RSS_GROWTH_MB) fprintf(stderr, "fuzz_image: one input raised the peak RSS by %ld MB\n", grown);
    FUZZ_CHECK(grown <= FUZZ_MAX_RSS_GROWTH_MB);
    /* The EXIF parser on the raw bytes too (looping IFDs, bad counts). */
    int o = io_exif_orientation(data, size);
    FUZZ_CHECK(o >= 1 && o <= 8);
    return 0;
}

static void decode_one(const uint8_t *data, size_t size) {
    for (size_t n = 0; n <= size && n <= 16; n++) {
        dr_format f = dr_format_detect(data, n);
        FUZZ_CHECK(f == DR_FORMAT_UNKNOWN || f == DR_FORMAT_PNG || f == DR_FORMAT_JPEG || f == DR_FORMAT_TIFF ||
                   f == DR_FORMAT_WEBP);
        FUZZ_CHECK(dr_format_name(f) != NULL);
    }
    const dr_format fmt = dr_format_detect(data, size);
#ifdef FUZZ_FORMAT
    if ((int)fmt != FUZZ_FORMAT) return;
#endif

    /* Header only (probe). */
    dr_image_info probe;
    memset(&probe, 0, sizeof probe);
    int prc = DR_ERR_UNSUPPORTED;
    dr_metadata pm;
    memset(&pm, 0, sizeof pm);
    if (fmt == DR_FORMAT_PNG) prc = io_png_decode(data, size, "fuzz", FUZZ_MAX_PIXELS, NULL, &probe, &pm);
    if (fmt == DR_FORMAT_JPEG) prc = io_jpeg_decode(data, size, "fuzz", FUZZ_MAX_PIXELS, NULL, &probe, &pm);
    if (fmt == DR_FORMAT_TIFF) prc = io_tiff_decode(data, size, "fuzz", FUZZ_MAX_PIXELS, NULL, &probe, &pm);
    if (fmt == DR_FORMAT_WEBP) prc = io_webp_decode(data, size, "fuzz", FUZZ_MAX_PIXELS, NULL, &probe, &pm);
    /* the raw blocks within their limits */
    FUZZ_CHECK(pm.icc_size <= DR_MAX_ICC_SIZE && pm.exif_size <= DR_MAX_META_SIZE);
    FUZZ_CHECK(pm.xmp_size <= DR_MAX_META_SIZE && pm.iptc_size <= DR_MAX_META_SIZE);
    FUZZ_CHECK(!pm.icc == !pm.icc_size && !pm.exif == !pm.exif_size);
    dr_metadata_free(&pm);
    /* The decoders report the stored size; the loader the upright one. */
    if (prc == DR_OK && probe.orientation >= 5) {
        int t = probe.width;
        probe.width = probe.height;
        probe.height = t;
    }
    if (prc == DR_OK) {
        FUZZ_CHECK(probe.format == fmt);
        FUZZ_CHECK(probe.width > 0 && probe.height > 0); /* the probe does not apply the pixel limit */
        FUZZ_CHECK(probe.channels >= 1 && probe.channels <= 4);
        FUZZ_CHECK(probe.depth == 8 || probe.depth == 16);
        FUZZ_CHECK(probe.orientation >= 1 && probe.orientation <= 8);
        char line[256];
        dr_image_info_describe(&probe, line, sizeof line);
        FUZZ_CHECK(strlen(line) < sizeof line);
    } else {
        FUZZ_CHECK(prc < 0);
        FUZZ_CHECK(dr_last_error() != NULL);
    }

    /* Full decode. */
    dr_image img;
    dr_image_info info;
    memset(&img, 0xA5, sizeof img); /* the loader must reset it */
    int rc = dr_image_load_memory(data, size, "fuzz", FUZZ_MAX_PIXELS, &img, &info);
    if (rc != DR_OK) {
        FUZZ_CHECK(rc < 0);
        FUZZ_CHECK(img.data == NULL && img.width == 0 && img.height == 0);
        FUZZ_CHECK(dr_status_name(rc) != NULL && dr_last_error() != NULL);
        dr_image_free(&img);
        return;
    }
    FUZZ_CHECK(img.data != NULL);
    FUZZ_CHECK(img.width > 0 && img.height > 0);
    FUZZ_CHECK((int64_t)img.width * img.height <= FUZZ_MAX_PIXELS);
    FUZZ_CHECK(img.channels >= 1 && img.channels <= 4);
    FUZZ_CHECK(img.depth == 8 || img.depth == 16);
    FUZZ_CHECK(info.format == fmt);
    FUZZ_CHECK(info.width == img.width && info.height == img.height);
    FUZZ_CHECK(info.channels == img.channels && info.depth == img.depth);
    /* A file whose header parses must also probe, with the same answer. */
    FUZZ_CHECK(prc == DR_OK);
    FUZZ_CHECK(probe.width == info.width && probe.height == info.height);
    FUZZ_CHECK(probe.channels == info.channels && probe.depth == info.depth);
    FUZZ_CHECK(probe.interlaced == info.interlaced && probe.color_space == info.color_space);
    FUZZ_CHECK(probe.orientation == info.orientation);
    /* With the metadata: the same pixels, or a refusal of the metadata
     * (e.g. a corrupt EXIF); the blocks within their limits and as info says. */
    dr_image mimg;
    dr_image_info minfo;
    dr_metadata meta;
    int mrc = dr_image_load_memory_meta(data, size, "fuzz", FUZZ_MAX_PIXELS, &mimg, &minfo, &meta);
    if (mrc == DR_OK) {
        FUZZ_CHECK(mimg.width == img.width && mimg.height == img.height && mimg.channels == img.channels);
        FUZZ_CHECK(memcmp(mimg.data, img.data, (size_t)img.width * img.height * img.channels * 2) == 0);
        FUZZ_CHECK(minfo.exif_size == meta.exif_size && minfo.xmp_size == meta.xmp_size &&
                   minfo.iptc_size == meta.iptc_size && minfo.icc_size == meta.icc_size);
        FUZZ_CHECK(meta.icc_size <= DR_MAX_ICC_SIZE && meta.exif_size <= DR_MAX_META_SIZE);
        dr_image_free(&mimg);
        dr_metadata_free(&meta);
    } else {
        FUZZ_CHECK(mrc == DR_ERR_FORMAT || mrc == DR_ERR_LIMIT || mrc == DR_ERR_NOMEM);
        FUZZ_CHECK(mimg.data == NULL && meta.exif == NULL && meta.icc == NULL && meta.xmp == NULL);
    }
    /* Touch every sample (ASan sees a short buffer) and check the range. */
    const size_t n = (size_t)img.width * img.height * img.channels;
    unsigned maxv = 0;
    for (size_t i = 0; i < n; i++)
        if (img.data[i] > maxv) maxv = img.data[i];
    if (img.depth == 8) FUZZ_CHECK(maxv <= 255);
    dr_image_free(&img);
    FUZZ_CHECK(img.data == NULL);
}
