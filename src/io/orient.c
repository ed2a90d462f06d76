/* EXIF orientation: reading the tag with libexif and turning an image
 * upright. */
#include "io/orient.h"
#include "io/image_core.h"

#include "common/error.h"

#include <libexif/exif-data.h>
#include <stdlib.h>
#include <string.h>

int io_exif_orientation(const unsigned char *buf, size_t size) {
    /* libexif wants the "Exif\0\0" header of an APP1 payload; WebP's EXIF
     * chunk usually starts straight at the TIFF header. */
    static const unsigned char hdr[6] = {'E', 'x', 'i', 'f', 0, 0};
    if (!buf || size < 8 || size > (1u << 24)) return 1;
    unsigned char *tmp = NULL;
    if (memcmp(buf, hdr, 6) != 0) {
        tmp = malloc(size + 6);
        if (!tmp) return 1;
        memcpy(tmp, hdr, 6);
        memcpy(tmp + 6, buf, size);
        buf = tmp, size += 6;
    }
    int o = 1;
    ExifData *ed = exif_data_new();
    if (ed) {
        exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
        exif_data_load_data(ed, buf, (unsigned int)size);
        ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
        if (e && e->format == EXIF_FORMAT_SHORT && e->components >= 1 && e->data && e->size >= 2) {
            int v = exif_get_short(e->data, exif_data_get_byte_order(ed));
            if (v >= 1 && v <= 8) o = v;
        }
        exif_data_unref(ed);
    }
    free(tmp);
    return o;
}

int io_image_orient(dr_image *img, int orientation) {
    if (orientation <= 1 || orientation > 8) return DR_OK;
    const int w = img->width, h = img->height, c = img->channels;
    const int swap = orientation >= 5;
    dr_image out;
    DR_TRY(dr_image_alloc(&out, swap ? h : w, swap ? w : h, c, img->depth));
    for (int Y = 0; Y < out.height; Y++)
        for (int X = 0; X < out.width; X++) {
            int x, y;
            switch (orientation) {
            case 2: x = w - 1 - X, y = Y; break;
            case 3: x = w - 1 - X, y = h - 1 - Y; break;
            case 4: x = X, y = h - 1 - Y; break;
            case 5: x = Y, y = X; break;
            case 6: x = Y, y = h - 1 - X; break;
            case 7: x = w - 1 - Y, y = h - 1 - X; break;
            default: x = w - 1 - Y, y = X; break; /* 8 */
            }
            memcpy(out.data + ((size_t)Y * out.width + X) * c, img->data + ((size_t)y * w + x) * c,
                   (size_t)c * sizeof *out.data);
        }
    dr_image_free(img);
    *img = out;
    return DR_OK;
}
