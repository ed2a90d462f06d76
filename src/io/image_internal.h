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

/* Decoders. buf holds the whole file. With img == NULL only the header is
 * parsed and info filled (probe); otherwise img receives the pixels and is
 * left zeroed on failure. info may be NULL. Error messages start with name. */
int dr_png_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels,
                  dr_image *img, dr_image_info *info);
int dr_jpeg_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels,
                   dr_image *img, dr_image_info *info);
int dr_tiff_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels,
                   dr_image *img, dr_image_info *info);
int dr_webp_decode(const unsigned char *buf, size_t size, const char *name, int64_t max_pixels,
                   dr_image *img, dr_image_info *info);
/* The decoders leave info->orientation as stored (1..8) and img as stored;
 * image.c turns both upright. */

/* orient.c: the orientation tag (1..8) of an EXIF block (APP1 payload with
 * or without its "Exif\0\0" header), 1 when absent or invalid; and img
 * turned upright for an orientation (a new buffer; DR_OK for 1). */
int dr_exif_orientation(const unsigned char *buf, size_t size);
int dr_image_orient(dr_image *img, int orientation);

/* Encoders write to fp (the atomic writer's temp file); a write error gives
 * DR_ERR_IO naming path. img must have passed dr_image_validate. */
int dr_png_encode(FILE *fp, const char *path, const dr_image *img);
int dr_jpeg_encode(FILE *fp, const char *path, const dr_image *img, int quality);
int dr_tiff_encode(FILE *fp, const char *path, const dr_image *img);
/* quality <= 0: lossless. */
int dr_webp_encode(FILE *fp, const char *path, const dr_image *img, int quality);

#endif
