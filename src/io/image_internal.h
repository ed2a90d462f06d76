/* Internal declarations shared by image.c (dispatch, alloc, save), png_io.c
 * and jpeg_io.c. Nothing here is public API. */
#ifndef DR_IO_IMAGE_INTERNAL_H
#define DR_IO_IMAGE_INTERNAL_H

#include "diffrestore.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Largest file dr_image_load / dr_image_probe will read into memory. */
#define DR_IMAGE_MAX_FILE_SIZE ((size_t)1 << 30)

/* Values of dr_image_info.color_space: the colour model *stored in the file*,
 * before any conversion (channels says what the decoder hands back). They
 * are informational only; nothing in the library branches on them.
 *   PNG:  GRAY, GRAY_ALPHA, RGB, RGBA, PALETTE (indexed colour).
 *   JPEG: GRAY (1 component), YCBCR (the usual JPEG), RGB (Adobe transform 0),
 *         CMYK, YCCK (both decoded to RGB), UNKNOWN (other component counts,
 *         refused by the decoder). */
enum {
    DR_CS_UNKNOWN = 0,
    DR_CS_GRAY = 1,
    DR_CS_GRAY_ALPHA = 2,
    DR_CS_RGB = 3,
    DR_CS_RGBA = 4,
    DR_CS_PALETTE = 5,
    DR_CS_YCBCR = 6,
    DR_CS_CMYK = 7,
    DR_CS_YCCK = 8
};

/* "gray", "gray+alpha", "RGB", "RGBA", "palette", "YCbCr", "CMYK", "YCCK" or
 * "unknown". */
const char *dr_color_space_name(int cs);
/* One line such as "PNG 640x480, 3 channels, 8-bit, RGB, interlaced". The
 * public header's comment on color_space refers to this function. */
void dr_image_info_describe(const dr_image_info *info, char *buf, size_t size);

/* max_pixels <= 0 means DR_DEFAULT_MAX_PIXELS. Returns DR_ERR_LIMIT (message
 * naming width x height and the limit) when width*height exceeds it. Called
 * by the decoders after the header and before any pixel allocation. */
int dr_image_check_limit(const char *name, int64_t width, int64_t height, int64_t max_pixels);

/* Check that img describes a usable image (sizes, channels, depth, data). */
int dr_image_validate(const dr_image *img, const char *name);

/* What an encoder writes: the blocks ready for the file (NULL/0: none). */
typedef struct {
    const unsigned char *icc; size_t icc_size;
    unsigned char *exif; size_t exif_size; /* rewritten for the output */
    unsigned char *xmp; size_t xmp_size;   /* with the provenance */
    const unsigned char *iptc; size_t iptc_size;
} dr_out_meta;

/* Decoders. buf holds the whole file. With img == NULL only the header is
 * parsed and info filled (probe); otherwise img receives the pixels and is
 * left zeroed on failure. info may be NULL. Error messages start with name. */
int dr_png_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels,
                   dr_image *img, dr_image_info *info, dr_metadata *meta);
int dr_jpeg_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels,
                   dr_image *img, dr_image_info *info, dr_metadata *meta);
int dr_tiff_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels,
                   dr_image *img, dr_image_info *info, dr_metadata *meta);
int dr_webp_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels,
                   dr_image *img, dr_image_info *info, dr_metadata *meta);
/* The decoders leave info->orientation as stored (1..8) and img as stored;
 * image.c turns both upright. meta (never NULL) receives the ICC profile,
 * EXIF, XMP and IPTC as stored (dr_meta_set); image.c uses and checks them. */

/* orient.c: the orientation tag (1..8) of an EXIF block (APP1 payload with
 * or without its "Exif\0\0" header), 1 when absent or invalid; and img
 * turned upright for an orientation (a new buffer; DR_OK for 1). */
int dr_exif_orientation(const unsigned char *buf, size_t size);
int dr_image_orient(dr_image *img, int orientation);

/* Encoders write to fp (the atomic writer's temp file); a write error gives
 * DR_ERR_IO naming path. img must have passed dr_image_validate. */
int dr_png_encode(FILE *fp, const char *path, const dr_image *img, const dr_out_meta *m);
int dr_jpeg_encode(FILE *fp, const char *path, const dr_image *img, int quality, const dr_out_meta *m);
int dr_tiff_encode(FILE *fp, const char *path, const dr_image *img, const dr_out_meta *m);
/* quality <= 0: lossless. */
int dr_webp_encode(FILE *fp, const char *path, const dr_image *img, int quality, const dr_out_meta *m);


/* ------------------------------------------------------------------ meta.c */
/* Copy a metadata block into *dst (the first one found wins; an empty one is
 * ignored). Over DR_MAX_ICC_SIZE ("ICC profile") or DR_MAX_META_SIZE
 * (anything else): DR_ERR_LIMIT naming the file. The copy has a NUL after it. */
int dr_meta_set(unsigned char **dst, size_t *dst_size, const void *src, size_t n, const char *name,
                const char *what);
/* Convert img (or, img NULL, check a stand-in of `channels`) from the profile
 * to sRGB. *converted: 1 when it was (0: no usable match, our own sRGB).
 * desc (may be NULL) receives the profile's description. */
int dr_icc_to_srgb(dr_image *img, int channels, const unsigned char *icc, size_t n, const char *name,
                   int *converted, char *desc, size_t desc_size);
/* EXIF (TIFF header on): DR_ERR_FORMAT naming the file when libexif finds
 * it corrupt (looping or out-of-range offsets, bad counts). */
int dr_exif_check(const unsigned char *exif, size_t n, const char *name);
/* EXIF for an output of width x height: orientation 1, PixelX/YDimension,
 * no thumbnail. *out is malloc'd, TIFF header on. */
int dr_exif_for_output(const unsigned char *exif, size_t n, int width, int height, const char *name,
                       unsigned char **out, size_t *out_size);
/* The EXIF text fields a TIFF keeps (its own IFD0 and EXIF sub-IFD):
 * dr_exif_text_tags[i], in the sub-IFD where dr_exif_text_in_exif[i].
 * dr_exif_text gives each as a malloc'd string or NULL. */
#define DR_EXIF_TEXT_TAGS 12
extern const int dr_exif_text_tags[DR_EXIF_TEXT_TAGS];
extern const int dr_exif_text_in_exif[DR_EXIF_TEXT_TAGS];
void dr_exif_text(const unsigned char *exif, size_t n, char *vals[DR_EXIF_TEXT_TAGS]);
/* A new EXIF block (TIFF header on, Intel order) holding the text tags
 * tags[i] = vals[i] (NULL or "" skipped), in the EXIF sub-IFD where
 * in_exif_ifd[i], else IFD0. *out stays NULL when there is nothing. */
int dr_exif_from_text(const int *in_exif_ifd, const int *tags, char *const *vals, int n, unsigned char **out,
                      size_t *out_size);
/* XMP with the provenance properties added (a new packet when xmp is empty). */
int dr_xmp_for_output(const unsigned char *xmp, size_t n, const char *const *prov, const char *name,
                      unsigned char **out, size_t *out_size);
/* The IPTC-IIM resource (8BIM 0x0404) of a Photoshop APP13 payload: 1 and
 * the span inside p, or 0 when there is none or the resources are malformed. */
int dr_iptc_from_app13(const unsigned char *p, size_t n, const unsigned char **iptc, size_t *iptc_size);
int dr_iptc_to_app13(const unsigned char *iptc, size_t n, unsigned char **out, size_t *out_size);

int dr_out_meta_prepare(const dr_save_options *o, const dr_image *img, const char *path, dr_out_meta *m);
void dr_out_meta_free(dr_out_meta *m);

#endif
