/* dataset.h - training images: every PNG/JPEG below a directory, decoded
 * once into memory as 8-bit RGB, and random crops from them. */
#ifndef DR_TRAIN_DATASET_H
#define DR_TRAIN_DATASET_H

#include <sys/types.h>

#include "common/rng.h"

#include <stdint.h>

typedef struct {
    int w, h;
    unsigned char *rgb; /* [h, w, 3] */
} ds_image;

typedef struct {
    int n;
    ds_image *images;
    char **paths;
    uint64_t hash; /* of the sorted relative paths and sizes: a resume checks it */
} dataset;

/* Load every decodable image with both sides >= min_side. Files that are not
 * images or fail to decode are skipped and reported through log (if set).
 * Fails if no image is left. */
int dataset_load(dataset *ds, const char *dir, int min_side, void (*log)(const char *, void *), void *user);
void dataset_free(dataset *ds);

/* A random P x P crop as planar unit RGB [3, P, P]: a random image, a random
 * zoom, a random position and a random horizontal flip; the crop covers
 * S x S source pixels, resampled to P with antialiasing (ip_resampler).
 *   render_size 0: P <= S <= min(w, h, zoom_max P), log-uniform (scale
 *     variety; zoom_max 1..4, 1: the photo's own pixels).
 *   render_size R > 0 (colorize at a working resolution): the photo as if
 *     downscaled so that its long side is R * z, z log-uniform in 0.8..1.25:
 *     S = round(P * max(w, h) / (R * z)), clamped to P..min(w, h) (never
 *     upscaled; a crop always fits).
 * tmp: at least dataset_crop_tmp(ds, P, render_size) floats. */
int dataset_random_crop(const dataset *ds, rng_state *rng, int P, int render_size, double zoom_max, float *out,
                        float *tmp);
size_t dataset_crop_tmp(const dataset *ds, int P, int render_size);
/* Turn a crop rgb [3, P, P] in place by k (0..3): 1 mirrors it up-down, 2
 * transposes it, 3 does both (mirror, then transpose). With the crop's own
 * random left-right mirror, k uniform in 0..3 gives each of the square's 8
 * rotations and mirrors with probability 1/8 (train --augment dihedral).
 * tmp: at least 3 P^2 floats. */
void dataset_crop_turn(float *rgb, int P, int k, float *tmp);
/* dataset_crop_turn by a k drawn uniformly in 0..3 from rng. */
void dataset_crop_turn_random(float *rgb, int P, rng_state *rng, float *tmp);

/* Every path (relative to dir) below dir that is a file, sorted. */
int list_files_recursive(const char *dir, char ***paths, int *n);
/* 1 if one of the files below dir (as the data set walks it) is (dev, ino). */
int dataset_dir_has_file(const char *dir, dev_t dev, ino_t ino);
void free_file_list(char **paths, int n);

#endif
