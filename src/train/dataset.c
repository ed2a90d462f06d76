#include "train/dataset.h"

#include "common/error.h"
#include "diffrestore.h"
#include "imgproc/imgproc.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char **v;
    int n, cap;
} strvec;

static int strvec_push(strvec *s, const char *x) {
    if (s->n == s->cap) {
        int nc = s->cap ? 2 * s->cap : 64;
        char **nv = realloc(s->v, sizeof(char *) * nc);
        if (!nv) return 0;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n] = strdup(x);
    return s->v[s->n++] != NULL;
}

/* The directories from the root down to the one being walked, by device and
 * inode: a symbolic link back to one of them is a loop, skipped. Links are
 * otherwise followed (a data set assembled from links works). */
typedef struct {
    dev_t dev[33];
    ino_t ino[33];
    int n;
} dir_chain;

static int walk(const char *root, const char *rel, strvec *out, dir_chain *chain) {
    if (chain->n > 32) return error_set(DR_ERR_LIMIT, "%s/%s: directories nested too deep (more than 32)", root, rel);
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) return error_set(DR_ERR_IO, "%s: cannot open directory: %s", path, strerror(errno));
    struct dirent *e;
    int rc = DR_OK;
    while (rc == DR_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ., .., hidden files and our own temp files */
        char sub[4096], full[8192];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            int loop = 0;
            for (int i = 0; i < chain->n && !loop; i++) loop = chain->dev[i] == st.st_dev && chain->ino[i] == st.st_ino;
            if (loop) continue; /* a link to a directory above: walked already */
            chain->dev[chain->n] = st.st_dev;
            chain->ino[chain->n] = st.st_ino;
            chain->n++;
            rc = walk(root, sub, out, chain);
            chain->n--;
        } else if (S_ISREG(st.st_mode) && !strvec_push(out, sub)) {
            rc = error_set(DR_ERR_NOMEM, "out of memory");
        }
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int list_files_recursive(const char *dir, char ***paths, int *n) {
    strvec s = {0};
    dir_chain chain = {.n = 0};
    struct stat st;
    if (stat(dir, &st) == 0) {
        chain.dev[0] = st.st_dev;
        chain.ino[0] = st.st_ino;
        chain.n = 1;
    }
    int rc = walk(dir, "", &s, &chain);
    if (rc != DR_OK) {
        free_file_list(s.v, s.n);
        return rc;
    }
    qsort(s.v, s.n, sizeof(char *), cmp_str);
    *paths = s.v;
    *n = s.n;
    return DR_OK;
}

int dataset_dir_has_file(const char *dir, dev_t dev, ino_t ino) {
    char **files = NULL;
    int n = 0, found = 0;
    if (list_files_recursive(dir, &files, &n) != DR_OK) return 0;
    for (int i = 0; i < n && !found; i++) {
        char full[8192];
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", dir, files[i]);
        found = stat(full, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
    }
    free_file_list(files, n);
    return found;
}

void free_file_list(char **paths, int n) {
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

void dataset_free(dataset *ds) {
    for (int i = 0; i < ds->n; i++) {
        free(ds->images[i].rgb);
        free(ds->paths[i]);
    }
    free(ds->images);
    free(ds->paths);
    memset(ds, 0, sizeof *ds);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

int dataset_load(dataset *ds, const char *dir, int min_side, void (*log)(const char *, void *), void *user) {
    memset(ds, 0, sizeof *ds);
    char **files;
    int nf;
    DR_TRY(list_files_recursive(dir, &files, &nf));
    ds->images = calloc(nf ? nf : 1, sizeof(ds_image));
    ds->paths = calloc(nf ? nf : 1, sizeof(char *));
    if (!ds->images || !ds->paths) {
        free_file_list(files, nf);
        dataset_free(ds);
        return error_set(DR_ERR_NOMEM, "out of memory");
    }
    ds->hash = 0xcbf29ce484222325ULL;
    char msg[8400];
    for (int i = 0; i < nf; i++) {
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, files[i]);
        dr_image img;
        if (dr_image_load(full, 0, &img, NULL) != DR_OK) {
            if (log) {
                snprintf(msg, sizeof msg, "skipping %s", dr_last_error());
                log(msg, user);
            }
            continue;
        }
        if (img.width < min_side || img.height < min_side) {
            if (log) {
                snprintf(msg, sizeof msg, "skipping %s: %dx%d is smaller than the %d-pixel patch", full, img.width,
                         img.height, min_side);
                log(msg, user);
            }
            dr_image_free(&img);
            continue;
        }
        ds_image *d = &ds->images[ds->n];
        d->w = img.width;
        d->h = img.height;
        d->rgb = malloc((size_t)img.width * img.height * 3);
        if (!d->rgb) {
            dr_image_free(&img);
            free_file_list(files, nf);
            dataset_free(ds);
            return error_set(DR_ERR_NOMEM, "out of memory loading %s", full);
        }
        const int shift = img.depth == 16 ? 8 : 0, gray = img.channels <= 2;
        for (size_t p = 0; p < (size_t)img.width * img.height; p++)
            for (int c = 0; c < 3; c++)
                d->rgb[p * 3 + c] = (unsigned char)(img.data[p * img.channels + (gray ? 0 : c)] >> shift);
        dr_image_free(&img);
        ds->paths[ds->n] = files[i];
        files[i] = NULL;
        ds->hash = fnv1a(ds->hash, ds->paths[ds->n], strlen(ds->paths[ds->n]) + 1);
        ds->hash = fnv1a(ds->hash, &d->w, sizeof d->w);
        ds->hash = fnv1a(ds->hash, &d->h, sizeof d->h);
        ds->n++;
    }
    free_file_list(files, nf);
    if (ds->n == 0) {
        dataset_free(ds);
        return error_set(DR_ERR_INVALID, "%s: no usable PNG or JPEG images (at least %dx%d)", dir, min_side, min_side);
    }
    return DR_OK;
}

size_t dataset_crop_tmp(const dataset *ds, int P, int render_size) {
    const size_t base = (size_t)3 * (4 * P) * (4 * P) + (size_t)3 * P * 4 * P;
    if (render_size <= 0) return base;
    int smax = 0; /* S <= min(w, h) of its image */
    for (int i = 0; i < ds->n; i++) {
        const int s = ds->images[i].w < ds->images[i].h ? ds->images[i].w : ds->images[i].h;
        if (s > smax) smax = s;
    }
    const size_t need = (size_t)3 * smax * P + (size_t)3 * smax; /* rows resampled [3, S, P] + one source row */
    return need > base ? need : base;
}

/* The render_size crop: the S x S square at (x0, y0) of im (flipped), straight
 * from its 8-bit pixels to out [3, P, P]: each source row resampled along x
 * into tmp [3, S, P], then the columns along y. */
static int crop_resample(const ds_image *im, int x0, int y0, int S, int flip, int P, float *out, float *tmp) {
    ip_resampler r;
    DR_TRY(ip_resampler_build(&r, S, P));
    float *rows = tmp, *src = tmp + (size_t)3 * S * P; /* [3, S, P], one source row [3, S] */
    const size_t sp = (size_t)S * P, pp = (size_t)P * P;
    for (int y = 0; y < S; y++) {
        const unsigned char *line = im->rgb + ((size_t)(y0 + y) * im->w + x0) * 3;
        for (int x = 0; x < S; x++) {
            const unsigned char *p = line + (size_t)(flip ? S - 1 - x : x) * 3;
            for (int c = 0; c < 3; c++) src[(size_t)c * S + x] = p[c] / 127.5f - 1.0f;
        }
        for (int c = 0; c < 3; c++)
            for (int o = 0; o < P; o++) {
                const float *w = r.w + (size_t)o * r.taps, *s = src + (size_t)c * S + r.start[o];
                float acc = 0.0f;
                for (int k = 0; k < r.taps; k++) acc += w[k] * s[k];
                rows[c * sp + (size_t)y * P + o] = acc;
            }
    }
    for (int c = 0; c < 3; c++)
        for (int o = 0; o < P; o++) {
            const float *w = r.w + (size_t)o * r.taps;
            float *d = out + c * pp + (size_t)o * P;
            for (int x = 0; x < P; x++) d[x] = 0.0f;
            for (int k = 0; k < r.taps; k++) {
                const float *s = rows + c * sp + (size_t)(r.start[o] + k) * P;
                for (int x = 0; x < P; x++) d[x] += w[k] * s[x];
            }
        }
    ip_resampler_free(&r);
    return DR_OK;
}

int dataset_random_crop(const dataset *ds, rng_state *rng, int P, int render_size, double zoom_max, float *out,
                        float *tmp) {
    const ds_image *im = &ds->images[rng_below(rng, (uint32_t)ds->n)];
    if (render_size > 0) {
        const int lng = im->w > im->h ? im->w : im->h, shrt = im->w < im->h ? im->w : im->h;
        const double z = exp(log(0.8) + (log(1.25) - log(0.8)) * rng_uniform(rng));
        long S = lround(P * (double)lng / (render_size * z));
        if (S < P) S = P;
        if (S > shrt) S = shrt;
        const int x0 = (int)rng_below(rng, (uint32_t)(im->w - S + 1));
        const int y0 = (int)rng_below(rng, (uint32_t)(im->h - S + 1));
        const int flip = rng_below(rng, 2);
        if (S > P) return crop_resample(im, x0, y0, (int)S, flip, P, out, tmp);
        const size_t pp = (size_t)P * P; /* S == P: the pixels as they are */
        for (int y = 0; y < P; y++)
            for (int x = 0; x < P; x++) {
                const unsigned char *p = im->rgb + ((size_t)(y0 + y) * im->w + (x0 + (flip ? P - 1 - x : x))) * 3;
                for (int c = 0; c < 3; c++) out[c * pp + (size_t)y * P + x] = p[c] / 127.5f - 1.0f;
            }
        return DR_OK;
    }
    int smax = im->w < im->h ? im->w : im->h;
    const int zmax = (int)(zoom_max * P); /* zoom_max <= 4: within dataset_crop_tmp's 4P */
    if (smax > zmax) smax = zmax;
    /* zoom: S uniform in log space between P and smax */
    double u = rng_uniform(rng);
    int S = (int)(P * pow((double)smax / P, u) + 0.5);
    if (S < P) S = P;
    if (S > smax) S = smax;
    const int x0 = (int)rng_below(rng, (uint32_t)(im->w - S + 1));
    const int y0 = (int)rng_below(rng, (uint32_t)(im->h - S + 1));
    const int flip = rng_below(rng, 2);
    float *src = S == P ? out : tmp; /* [3, S, S] */
    const size_t ss = (size_t)S * S;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            const unsigned char *p = im->rgb + ((size_t)(y0 + y) * im->w + (x0 + (flip ? S - 1 - x : x))) * 3;
            for (int c = 0; c < 3; c++) src[c * ss + (size_t)y * S + x] = p[c] / 127.5f - 1.0f;
        }
    if (S != P) DR_TRY(ip_resize(src, 3, S, S, out, P, P));
    return DR_OK;
}

void dataset_crop_turn(float *rgb, int P, int k, float *tmp) {
    if (k <= 0) return;
    const size_t pp = (size_t)P * P;
    memcpy(tmp, rgb, sizeof(float) * 3 * pp);
    for (int c = 0; c < 3; c++) {
        const float *s = tmp + c * pp;
        float *d = rgb + c * pp;
        for (int y = 0; y < P; y++)
            for (int x = 0; x < P; x++) {
                /* source pixel of the turned crop's (y, x): undo the transpose, then the mirror */
                const int sy0 = k & 2 ? x : y, sx = k & 2 ? y : x;
                const int sy = k & 1 ? P - 1 - sy0 : sy0;
                d[(size_t)y * P + x] = s[(size_t)sy * P + sx];
            }
    }
}

void dataset_crop_turn_random(float *rgb, int P, rng_state *rng, float *tmp) {
    dataset_crop_turn(rgb, P, (int)rng_below(rng, 4), tmp);
}
