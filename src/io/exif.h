/* exif.h - EXIF with libexif (exif.c). */
#ifndef DR_IO_EXIF_H
#define DR_IO_EXIF_H

#include "diffrestore.h"

#include <stddef.h>
#include <stdint.h>

/* EXIF (TIFF header on): DR_ERR_FORMAT naming the file when libexif finds
 * it corrupt (looping or out-of-range offsets, bad counts). */
int io_exif_check(const unsigned char *exif, size_t n, const char *name);
/* EXIF for an output of width x height: orientation 1, PixelX/YDimension,
 * no thumbnail. *out is malloc'd, TIFF header on. */
int io_exif_for_output(const unsigned char *exif, size_t n, int width, int height, const char *name,
                       unsigned char **out, size_t *out_size);
/* The EXIF text fields a TIFF keeps (its own IFD0 and EXIF sub-IFD):
 * io_exif_text_tags[i], in the sub-IFD where io_exif_text_in_exif[i].
 * io_exif_text gives each as a malloc'd string or NULL. */
#define DR_EXIF_TEXT_TAGS 12
extern const int io_exif_text_tags[DR_EXIF_TEXT_TAGS];
extern const int io_exif_text_in_exif[DR_EXIF_TEXT_TAGS];
void io_exif_text(const unsigned char *exif, size_t n, char *vals[DR_EXIF_TEXT_TAGS]);
/* A new EXIF block (TIFF header on, Intel order) holding the text tags
 * tags[i] = vals[i] (NULL or "" skipped), in the EXIF sub-IFD where
 * in_exif_ifd[i], else IFD0. *out stays NULL when there is nothing. */
int io_exif_from_text(const int *in_exif_ifd, const int *tags, char *const *vals, int n, unsigned char **out,
                      size_t *out_size);

#endif
