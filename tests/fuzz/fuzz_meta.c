/* fuzz_meta.c - the colour-profile and metadata parsers (src/io/meta.c) on
 * arbitrary bytes, each given the whole input:
 *   - as an ICC profile: the up-front checks, Little CMS's parser, the
 *     conversion of small RGB and gray images (8 and 16 bits) to sRGB and
 *     back (dr_image_from_srgb);
 *   - as an EXIF block: io_exif_check (libexif, with its reports of loops
 *     and offsets past the end), io_exif_for_output, io_exif_text, the
 *     orientation parser;
 *   - as a Photoshop APP13 payload: io_iptc_from_app13;
 *   - as an XMP packet: io_xmp_for_output with provenance (a packet without
 *     an RDF end is malformed and replaced by a new one; an earlier
 *     provenance block of ours is replaced: exactly one in the output).
 * Invariants: every failure is a negative status with a message naming the
 * input; a profile over DR_MAX_ICC_SIZE is DR_ERR_LIMIT; a rewritten EXIF of
 * a valid one is valid again, upright, with the new size; the IPTC span
 * lies inside the input and survives io_iptc_to_app13; the XMP keeps a
 * well-formed input and holds the provenance. */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"

#include "diffrestore.h"
#include "io/image_core.h"
#include "io/codecs.h"
#include "io/meta.h"
#include "io/icc.h"
#include "io/exif.h"
#include "io/orient.h"

#include <string.h>

static int named(void) { return strstr(dr_last_error(), "fuzz") != NULL; }

static void icc(const uint8_t *d, size_t n) {
    for (int c = 1; c <= 4; c++)
        for (int depth = 8; depth <= 16; depth += 8) {
            dr_image img;
            if (dr_image_alloc(&img, 3, 2, c, depth) != DR_OK) return;
            const unsigned maxv = depth == 16 ? 65535 : 255;
            for (size_t i = 0; i < 3 * 2 * (size_t)c; i++) img.data[i] = (uint16_t)(i * 37 % (maxv + 1));
            int conv = -1;
            char desc[64];
            int rc = io_icc_to_srgb(&img, c, d, n, "fuzz", &conv, desc, sizeof desc);
            if (rc != DR_OK) {
                FUZZ_CHECK(rc < 0 && named());
                if (n > DR_MAX_ICC_SIZE) FUZZ_CHECK(rc == DR_ERR_LIMIT);
            } else {
                FUZZ_CHECK(conv == 0 || conv == 1);
                FUZZ_CHECK(memchr(desc, 0, sizeof desc) != NULL);
                for (size_t i = 0; i < 3 * 2 * (size_t)c; i++) FUZZ_CHECK(img.data[i] <= maxv);
                rc = dr_image_from_srgb(&img, d, n, "fuzz");
                FUZZ_CHECK(rc == DR_OK || (rc < 0 && named()));
                if (rc == DR_OK)
                    for (size_t i = 0; i < 3 * 2 * (size_t)c; i++) FUZZ_CHECK(img.data[i] <= maxv);
            }
            dr_image_free(&img);
        }
}

static void exif(const uint8_t *d, size_t n) {
    int o = io_exif_orientation(d, n);
    FUZZ_CHECK(o >= 1 && o <= 8);
    char *vals[DR_EXIF_TEXT_TAGS];
    io_exif_text(d, n, vals);
    for (int i = 0; i < DR_EXIF_TEXT_TAGS; i++) free(vals[i]);
    int rc = io_exif_check(d, n, "fuzz");
    if (rc != DR_OK) {
        FUZZ_CHECK(rc < 0 && named());
        return;
    }
    unsigned char *out;
    size_t out_n;
    rc = io_exif_for_output(d, n, 70000, 3, "fuzz", &out, &out_n);
    FUZZ_CHECK(rc == DR_OK || (rc < 0 && named()));
    if (rc != DR_OK) return;
    FUZZ_CHECK(out && out_n >= 8);
    FUZZ_CHECK(io_exif_orientation(out, out_n) == 1);
    free(out);
}

static void iptc(const uint8_t *d, size_t n) {
    const unsigned char *p;
    size_t k;
    if (!io_iptc_from_app13(d, n, &p, &k)) return;
    FUZZ_CHECK(p >= d && k <= n && (size_t)(p - d) <= n - k);
    unsigned char *app13;
    size_t m;
    if (io_iptc_to_app13(p, k, &app13, &m) != DR_OK) return;
    const unsigned char *p2;
    size_t k2;
    FUZZ_CHECK(io_iptc_from_app13(app13, m, &p2, &k2) == 1);
    FUZZ_CHECK(k2 == k && memcmp(p2, p, k) == 0);
    free(app13);
}

static void xmp(const uint8_t *d, size_t n) {
    const char *prov[] = {"Tool", "fuzz <&\"'>", "Seed", "1", NULL};
    unsigned char *out;
    size_t m;
    if (io_xmp_for_output(d, n, prov, "fuzz", &out, &m) != DR_OK) return;
    /* a packet with an RDF end keeps all of itself; anything else is replaced */
    if (memmem(d, n, "</rdf:RDF>", 10) && !memmem(d, n, "xmlns:diffrestore=", 18)) FUZZ_CHECK(m > n);
    /* exactly one provenance block: an earlier one of ours is replaced */
    static const char ours[] = "<rdf:Description rdf:about=\"\" xmlns:diffrestore=\"" DR_XMP_NS "\"";
    const unsigned char *first = memmem(out, m, ours, sizeof ours - 1);
    FUZZ_CHECK(first != NULL);
    const unsigned char *rest = first + 1;
    FUZZ_CHECK(memmem(rest, m - (size_t)(rest - out), ours, sizeof ours - 1) == NULL);
    FUZZ_CHECK(memmem(out, m, "diffrestore:Tool=\"fuzz &lt;&amp;&quot;'&gt;\"", 43) != NULL);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    icc(data, size);
    exif(data, size);
    iptc(data, size);
    xmp(data, size);
    return 0;
}
