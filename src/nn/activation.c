/*
 * SiLU: out = x * sigmoid(x), elementwise. Each value is independent, so the
 * OpenMP split cannot change any result.
 */
#include "nn/nn.h"

#include <math.h>

/* Below this many values a parallel region costs more than it saves. */
#define SILU_PAR_MIN 32768

void silu_forward(float *out, const float *inp, size_t n) {
    // out may alias inp: each value is read once before its slot is written
#pragma omp parallel for schedule(static) num_threads(nn_threads()) \
    if (n >= SILU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float x = inp[i];
        out[i] = x / (1.0f + expf(-x));          // exp overflow -> x/inf = -0, no NaN
    }
}

void silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    if (!dinp) return;                           // no input gradient wanted
#pragma omp parallel for schedule(static) num_threads(nn_threads()) \
    if (n >= SILU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        const float x = inp[i];
        const float s = 1.0f / (1.0f + expf(-x));
        dinp[i] += dout[i] * s * (1.0f + x * (1.0f - s));    // d(x s)/dx = s + x s (1 - s)
    }
}
