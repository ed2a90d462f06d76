/* Seeded RNG for initialisation, training noise and sampling: xoshiro256**
 * seeded through splitmix64. The state is plain data so checkpoints can save
 * it and a resumed run draws the same numbers. */
#ifndef DR_COMMON_RNG_H
#define DR_COMMON_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} dr_rng;

void dr_rng_seed(dr_rng *r, uint64_t seed);
uint64_t dr_rng_u64(dr_rng *r);
double dr_rng_uniform(dr_rng *r);             /* [0, 1) */
uint32_t dr_rng_below(dr_rng *r, uint32_t n); /* [0, n) */
float dr_rng_normal(dr_rng *r);               /* N(0, 1), Box-Muller */
void dr_rng_fill_normal(dr_rng *r, float *x, size_t n);
/* Derive an independent stream, e.g. one per (sample, step), so results do
 * not depend on the order threads draw in. */
void dr_rng_derive(dr_rng *out, uint64_t seed, uint64_t a, uint64_t b);

#endif
