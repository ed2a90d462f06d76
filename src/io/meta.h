/* meta.h - metadata blocks: the copies a decoder keeps, XMP provenance, IPTC, and what an encoder writes (meta.c). */
#ifndef DR_IO_META_H
#define DR_IO_META_H

#include "diffrestore.h"

#include <stddef.h>
#include <stdint.h>

/* What an encoder writes: the blocks ready for the file (NULL/0: none). */
typedef struct {
    const unsigned char *icc;
    size_t icc_size;
    unsigned char *exif;
    size_t exif_size; /* rewritten for the output */
    unsigned char *xmp;
    size_t xmp_size; /* with the provenance */
    const unsigned char *iptc;
    size_t iptc_size;
} io_out_meta;

/* Copy a metadata block into *dst (the first one found wins; an empty one is
 * ignored). Over DR_MAX_ICC_SIZE ("ICC profile") or DR_MAX_META_SIZE
 * (anything else): DR_ERR_LIMIT naming the file. The copy has a NUL after it. */
int io_meta_set(unsigned char **dst, size_t *dst_size, const void *src, size_t n, const char *name, const char *what);
/* XMP with the provenance properties added (a new packet when xmp is empty). */
int io_xmp_for_output(const unsigned char *xmp, size_t n, const char *const *prov, const char *name,
                      unsigned char **out, size_t *out_size);
/* The IPTC-IIM resource (8BIM 0x0404) of a Photoshop APP13 payload: 1 and
 * the span inside p, or 0 when there is none or the resources are malformed. */
int io_iptc_from_app13(const unsigned char *p, size_t n, const unsigned char **iptc, size_t *iptc_size);
int io_iptc_to_app13(const unsigned char *iptc, size_t n, unsigned char **out, size_t *out_size);

int io_out_meta_prepare(const dr_save_options *o, const dr_image *img, const char *path, io_out_meta *m);
void io_out_meta_free(io_out_meta *m);

#endif
