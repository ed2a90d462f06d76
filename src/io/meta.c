/* meta.c - metadata blocks: the copies a decoder keeps, the provenance added
 * to XMP, the IPTC resource of a JPEG's Photoshop APP13 segment, and what an
 * output carries (ICC: icc.c, EXIF: exif.c). Nothing here prints. */
#include "io/meta.h"
#include "io/image_core.h"
#include "io/icc.h"
#include "io/exif.h"

#include "common/error.h"

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

int io_meta_set(unsigned char **dst, size_t *dst_size, const void *src, size_t n, const char *name, const char *what) {
    size_t max = strcmp(what, "ICC profile") == 0 ? DR_MAX_ICC_SIZE : DR_MAX_META_SIZE;
    if (n > max) return error_set(DR_ERR_LIMIT, "%s: the %s is %zu bytes, over the limit of %zu", name, what, n, max);
    if (*dst) return DR_OK; /* the first one found wins */
    if (n == 0) return DR_OK;
    unsigned char *p = malloc(n + 1);
    if (!p) return error_set(DR_ERR_NOMEM, "%s: out of memory for the %s", name, what);
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
            if ((unsigned char)*s < 32 && *s != '\t')
                puts_(b, " ");
            else
                put(b, s, 1);
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

int io_xmp_for_output(const unsigned char *xmp, size_t n, const char *const *prov, const char *name,
                      unsigned char **out, size_t *out_size) {
    *out = NULL, *out_size = 0;
    for (const char *const *kv = prov; kv && kv[0]; kv += 2)
        if (!valid_key(kv[0]) || !kv[1])
            return error_set(DR_ERR_INVALID, "%s: provenance key '%s' is not letters and digits (or has no value)",
                             name, kv[0]);
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
            return error_set(DR_ERR_NOMEM, "%s: out of memory for the XMP", name);
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
        puts_(&b,
              "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
              "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
              "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n");
        put(&b, d.p, d.n);
        puts_(&b, "</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"w\"?>");
    }
    free(d.p);
    free(kept.p);
    if (b.oom || d.oom) {
        free(b.p);
        return error_set(DR_ERR_NOMEM, "%s: out of memory for the XMP", name);
    }
    *out = (unsigned char *)b.p;
    *out_size = b.n;
    return DR_OK;
}

/* ------------------------------------------------------------------ IPTC in Photoshop APP13 */

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int io_iptc_from_app13(const unsigned char *p, size_t n, const unsigned char **iptc, size_t *iptc_size) {
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

int io_iptc_to_app13(const unsigned char *iptc, size_t n, unsigned char **out, size_t *out_size) {
    static const char sig[] = "Photoshop 3.0";
    size_t total = sizeof sig + 4 + 2 + 2 + 4 + n + (n & 1);
    unsigned char *b = malloc(total);
    if (!b) return DR_ERR_NOMEM;
    size_t q = 0;
    memcpy(b, sig, sizeof sig), q += sizeof sig;
    memcpy(b + q, "8BIM", 4), q += 4;
    b[q++] = 0x04, b[q++] = 0x04;
    b[q++] = 0, b[q++] = 0; /* empty name, padded */
    b[q++] = (unsigned char)(n >> 24), b[q++] = (unsigned char)(n >> 16), b[q++] = (unsigned char)(n >> 8),
    b[q++] = (unsigned char)n;
    memcpy(b + q, iptc, n), q += n;
    if (n & 1) b[q++] = 0;
    *out = b;
    *out_size = q;
    return DR_OK;
}

/* ------------------------------------------------------------------ an output's metadata */

void io_out_meta_free(io_out_meta *m) {
    free(m->exif);
    free(m->xmp);
    memset(m, 0, sizeof *m);
}

int io_out_meta_prepare(const dr_save_options *o, const dr_image *img, const char *path, io_out_meta *m) {
    memset(m, 0, sizeof *m);
    const dr_metadata *in = o->metadata;
    if (in && in->icc_size) {
        if (in->icc_size > DR_MAX_ICC_SIZE)
            return error_set(DR_ERR_LIMIT, "%s: the ICC profile is %zu bytes, over the limit of %zu", path,
                             in->icc_size, (size_t)DR_MAX_ICC_SIZE);
        m->icc = in->icc, m->icc_size = in->icc_size;
    }
    if (in && in->iptc_size) m->iptc = in->iptc, m->iptc_size = in->iptc_size;
    if (in && in->exif_size) {
        int rc = io_exif_for_output(in->exif, in->exif_size, img->width, img->height, path, &m->exif, &m->exif_size);
        if (rc != DR_OK) return rc;
    }
    if (o->provenance && o->provenance[0]) {
        int rc =
            io_xmp_for_output(in ? in->xmp : NULL, in ? in->xmp_size : 0, o->provenance, path, &m->xmp, &m->xmp_size);
        if (rc != DR_OK) {
            io_out_meta_free(m);
            return rc;
        }
    } else if (in && in->xmp_size) {
        unsigned char *x = malloc(in->xmp_size + 1);
        if (!x) {
            io_out_meta_free(m);
            return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
        }
        memcpy(x, in->xmp, in->xmp_size);
        x[in->xmp_size] = 0;
        m->xmp = x, m->xmp_size = in->xmp_size;
    }
    return DR_OK;
}
