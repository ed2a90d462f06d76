/* Seeded RNG for initialisation, training noise and sampling: xoshiro256**
 * seeded through splitmix64. The state is plain data so checkpoints can save
 * it and a resumed run draws the same numbers. */
#ifndef DR_COMMON_RNG_H
#define DR_COMMON_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_state;

void rng_seed(rng_state *r, uint64_t seed);
uint64_t rng_u64(rng_state *r);
double rng_uniform(rng_state *r);             /* [0, 1) */
uint32_t rng_below(rng_state *r, uint32_t n); /* [0, n) */
float rng_normal(rng_state *r);               /* N(0, 1), Box-Muller */
void rng_fill_normal(rng_state *r, float *x, size_t n);
/* Derive an independent stream, e.g. one per (sample, step), so results do
 * not depend on the order threads draw in. */
void rng_derive(rng_state *out, uint64_t seed, uint64_t a, uint64_t b);

#endif
