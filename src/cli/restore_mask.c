/* The mask of an input, for a mode that takes one (inpaint), from --box, --mask FILE,
 * --mask DIR (paired by relative path) or the input's alpha channel
 * (see restore.h). */
#include "restore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int image_max(const dr_image *im) { return im->depth == 16 ? 65535 : 255; }

/* Any layout -> 1-channel 8-bit, 255 where the mask is white (> half range):
 * gray uses its first channel, colour its luma; alpha is ignored. */
static int mask_from_image(const dr_image *src, dr_image *dst, long long *holes) {
    if (dr_image_alloc(dst, src->width, src->height, 1, 8) != DR_OK) return -1;
    long long maxv = image_max(src), n = (long long)src->width * src->height, h = 0;
    for (long long i = 0; i < n; i++) {
        const uint16_t *px = src->data + i * src->channels;
        int hole;
        if (src->channels >= 3)
            hole = 2 * (299LL * px[0] + 587LL * px[1] + 114LL * px[2]) > 1000 * maxv;
        else
            hole = 2LL * px[0] > maxv;
        dst->data[i] = hole ? 255 : 0;
        h += hole;
    }
    *holes = h;
    return 0;
}

/* Holes of the alpha channel (transparent, alpha <= half range). */
static long long alpha_holes(const dr_image *im) {
    long long maxv = image_max(im), n = (long long)im->width * im->height, h = 0;
    int a = im->channels - 1;
    for (long long i = 0; i < n; i++) h += !(2LL * im->data[i * im->channels + a] > maxv);
    return h;
}

static int path_exists(const char *p, struct stat *st) { return stat(p, st) == 0; }

static char *find_mask_in_dir(run *x, const batch_item *it) {
    const char *rel = x->batch ? it->rel : restore_base_of(it->path);
    static const char *exts[] = {"png", "jpg", "jpeg", "tif", "tiff", "webp",
                                 "PNG", "JPG", "JPEG", "TIF", "TIFF", "WEBP"};
    struct stat st;
    char *p = path_join(x->o->mask, rel);
    if (p && path_exists(p, &st) && S_ISREG(st.st_mode)) return p;
    free(p);
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        char *name = path_set_ext(rel, exts[i]);
        p = name ? path_join(x->o->mask, name) : NULL;
        free(name);
        if (p && path_exists(p, &st) && S_ISREG(st.st_mode)) return p;
        free(p);
    }
    return NULL;
}

/* Build the item's mask into *mask (1-channel 8-bit, 255 = hole), or leave
 * *use_alpha set when the input's alpha is the mask. Returns 0, or -1 after
 * reporting the failure. */
int restore_build_mask(run *x, const batch_item *it, const dr_image *img, dr_image *mask, int *use_alpha,
                       long long *holes, char **mask_path) {
    const ropts *o = x->o;
    *use_alpha = 0;
    *mask_path = NULL;
    if (o->n_boxes > 0) {
        if (dr_image_alloc(mask, img->width, img->height, 1, 8) != DR_OK) {
            progress_fail(&x->pr, it->path, "%s", dr_last_error());
            return -1;
        }
        for (int i = 0; i < o->n_boxes; i++) {
            const box *b = &o->boxes[i];
            long long x0 = b->x < 0 ? 0 : b->x, y0 = b->y < 0 ? 0 : b->y;
            long long x1 = b->x + b->w > img->width ? img->width : b->x + b->w;
            long long y1 = b->y + b->h > img->height ? img->height : b->y + b->h;
            if (x1 <= x0 || y1 <= y0) {
                progress_fail(&x->pr, it->path, "--box %lld,%lld,%lld,%lld lies outside the %dx%d image", b->x, b->y,
                              b->w, b->h, img->width, img->height);
                return -1;
            }
            for (long long yy = y0; yy < y1; yy++)
                for (long long xx = x0; xx < x1; xx++) mask->data[yy * img->width + xx] = 255;
        }
        long long h = 0, n = (long long)img->width * img->height;
        for (long long i = 0; i < n; i++) h += mask->data[i] != 0;
        *holes = h;
        return 0;
    }
    if (!o->mask) {
        if (img->channels != 2 && img->channels != 4) {
            progress_fail(&x->pr, it->path,
                          "the image has no alpha channel to use as the mask: give --mask MASK or --box x,y,w,h");
            return -1;
        }
        *use_alpha = 1;
        *holes = alpha_holes(img);
        return 0;
    }
    const dr_image *src;
    dr_image loaded = {0};
    const char *mpath;
    if (x->mask_is_dir) {
        *mask_path = find_mask_in_dir(x, it);
        if (!*mask_path) {
            progress_fail(
                &x->pr, it->path,
                "no mask for it in %s (looked for the same relative name as .png, .jpg, .jpeg, .tif, .tiff or .webp)",
                o->mask);
            return -1;
        }
        mpath = *mask_path;
        if (dr_image_load(mpath, o->c.max_pixels, &loaded, NULL) != DR_OK) {
            progress_fail(&x->pr, it->path, "mask %s", dr_last_error());
            return -1;
        }
        src = &loaded;
    } else {
        mpath = o->mask;
        src = &x->shared_mask;
    }
    if (src->width != img->width || src->height != img->height) {
        progress_fail(&x->pr, it->path, "the mask %s is %dx%d but the image is %dx%d", mpath, src->width, src->height,
                      img->width, img->height);
        dr_image_free(&loaded);
        return -1;
    }
    int rc = mask_from_image(src, mask, holes);
    dr_image_free(&loaded);
    if (rc != 0) {
        progress_fail(&x->pr, it->path, "%s", dr_last_error());
        return -1;
    }
    return 0;
}
