/* orient.h - the EXIF orientation (orient.c). */
#ifndef DR_IO_ORIENT_H
#define DR_IO_ORIENT_H

#include "diffrestore.h"

#include <stddef.h>
#include <stdint.h>

/* orient.c: the orientation tag (1..8) of an EXIF block (APP1 payload with
 * or without its "Exif\0\0" header), 1 when absent or invalid; and img
 * turned upright for an orientation (a new buffer; DR_OK for 1). */
int io_exif_orientation(const unsigned char *buf, size_t size);
int io_image_orient(dr_image *img, int orientation);

#endif
