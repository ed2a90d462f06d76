/* dataset.h - training images: every PNG/JPEG below a directory, decoded
 * once into memory as 8-bit RGB, and random crops from them. */
#ifndef DR_TRAIN_DATASET_H
#define DR_TRAIN_DATASET_H

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
 * zoom (the crop covers S x S source pixels, P <= S <= min(w, h, 4P),
 * resampled to P with antialiasing, for scale variety), a random position
 * and a random horizontal flip. tmp: at least 3 * (4P)^2 + 3 * P * 4P floats. */
int dataset_random_crop(const dataset *ds, dr_rng *rng, int P, float *out, float *tmp);
size_t dataset_crop_tmp(int P);

/* Every path (relative to dir) below dir that is a file, sorted. */
int list_files_recursive(const char *dir, char ***paths, int *n);
void free_file_list(char **paths, int n);

#endif
