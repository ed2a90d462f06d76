/* codecs.h - the decoders and encoders behind image.c (png_io.c, jpeg_io.c, tiff_io.c, webp_io.c). */
#ifndef DR_IO_CODECS_H
#define DR_IO_CODECS_H

#include "diffrestore.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/meta.h"

/* Decoders. buf holds the whole file. With img == NULL only the header is
 * parsed and info filled (probe); otherwise img receives the pixels and is
 * left zeroed on failure. info may be NULL. Error messages start with name. */
int io_png_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                  dr_image_info *info, dr_metadata *meta);
int io_jpeg_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                   dr_image_info *info, dr_metadata *meta);
int io_tiff_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                   dr_image_info *info, dr_metadata *meta);
int io_webp_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels, dr_image *img,
                   dr_image_info *info, dr_metadata *meta);
/* The decoders leave info->orientation as stored (1..8) and img as stored;
 * image.c turns both upright. meta (never NULL) receives the ICC profile,
 * EXIF, XMP and IPTC as stored (io_meta_set); image.c uses and checks them. */

/* Encoders write to fp (the atomic writer's temp file); a write error gives
 * DR_ERR_IO naming path. img must have passed io_image_validate. */
int io_png_encode(FILE *fp, const char *path, const dr_image *img, const io_out_meta *m);
int io_jpeg_encode(FILE *fp, const char *path, const dr_image *img, int quality, const io_out_meta *m);
int io_tiff_encode(FILE *fp, const char *path, const dr_image *img, const io_out_meta *m);
/* quality <= 0: lossless. */
int io_webp_encode(FILE *fp, const char *path, const dr_image *img, int quality, const io_out_meta *m);

#endif
