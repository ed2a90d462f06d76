/* image_core.h - what the codecs and image.c share about an image (image_core.c). Nothing here is public API. */
#ifndef DR_IO_IMAGE_CORE_H
#define DR_IO_IMAGE_CORE_H

#include "diffrestore.h"

#include <stddef.h>
#include <stdint.h>

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
const char *io_color_space_name(int cs);

/* max_pixels <= 0 means DR_DEFAULT_MAX_PIXELS. Returns DR_ERR_LIMIT (message
 * naming width x height and the limit) when width*height exceeds it. Called
 * by the decoders after the header and before any pixel allocation. */
int io_image_check_limit(const char *name, int64_t width, int64_t height, int64_t max_pixels);

/* Check that img describes a usable image (sizes, channels, depth, data). */
int io_image_validate(const dr_image *img, const char *name);

#endif
