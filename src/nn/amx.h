/*
 * amx.h - the tile configuration shared by the AMX kernels (gemm.c,
 * winograd_avx512.h). A configuration names, per tile register 0..7, its
 * rows (0: unused) and bytes per row (64, a whole tile row, wherever the
 * tile is used). It is per thread: each kernel loads its own before its
 * tiles and releases them after.
 */
#ifndef NN_AMX_H
#define NN_AMX_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define NN_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512bf16,avx512f,avx512bw,avx512vl")))

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} nn_amx_tilecfg;

/* Tile t gets rows[t] rows of 64 bytes (none when rows[t] is 0). */
static inline NN_AMX_TARGET void nn_amx_configure(const uint8_t rows[8]) {
    nn_amx_tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.rows[t] = rows[t];
        c.colsb[t] = rows[t] ? 64 : 0;
    }
    _tile_loadconfig(&c);
}

#endif
