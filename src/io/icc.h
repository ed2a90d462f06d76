/* icc.h - colour profiles with Little CMS (icc.c). */
#ifndef DR_IO_ICC_H
#define DR_IO_ICC_H

#include "diffrestore.h"

#include <stddef.h>
#include <stdint.h>

/* Convert img (or, img NULL, check a stand-in of `channels`) from the profile
 * to sRGB. *converted: 1 when it was (0: no usable match, our own sRGB).
 * desc (may be NULL) receives the profile's description. */
int io_icc_to_srgb(dr_image *img, int channels, const unsigned char *icc, size_t n, const char *name, int *converted,
                   char *desc, size_t desc_size);

#endif
