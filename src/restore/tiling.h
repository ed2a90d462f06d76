/*
 * tiling.h - overlapping tiles over the canvas, blended with raised-cosine
 * weights, so a large image runs through the U-Net a tile at a time.
 */
#ifndef DR_RESTORE_TILING_H
#define DR_RESTORE_TILING_H

typedef struct {
    int y0, x0;
} tile_pos;

typedef struct {
    int th, tw; /* tile size (all tiles the same) */
    int n;
    tile_pos *pos;
    float *wy, *wx;  /* per tile: blend weights along y [n][th] and x [n][tw] */
    float *inv_wsum; /* [H * W] 1 / sum of the weights covering each pixel */
} tiling;

/* Tiles of at most tile x tile (multiples of f, the U-Net's downsampling
 * phase) over H x W, overlapping by about overlap. */
int tiling_build(tiling *t, int H, int W, int tile, int overlap, int f);
void tiling_free(tiling *t);

#endif
