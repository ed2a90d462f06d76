/*
 * diffusion.h - noise schedules and samplers (MODEL.md, "Diffusion").
 *
 * The samplers know nothing about modes or the U-Net: they see the network
 * only through a denoiser callback, which returns eps and x0 estimates for
 * x_t at a timestep index (tiling, v-prediction, conditioning all live behind
 * it). Two optional hooks let a mode enforce its guarantees:
 *   x0_hook - edit each step's x0 estimate (clip to the valid range, paste back
 *             known pixels, back-project for super-resolution); the sampler then
 *             recomputes eps from the edited x0 so the update stays consistent;
 *   x_hook  - edit x after each update (inpaint: known pixels hold x0).
 */
#ifndef DR_DIFFUSION_H
#define DR_DIFFUSION_H

#include "common/rng.h"
#include "diffrestore.h" /* dr_sampler, dr_spacing */

#include <stddef.h>

typedef struct {
    int T;
    double *beta;      /* [T] */
    double *alpha_bar; /* [T], alpha_bar[t] = prod_{s<=t} (1 - beta[s]) */
} noise_schedule;

/* linear = 0: cosine (Nichol & Dhariwal, s = 0.008, beta clipped at 0.999);
 * linear = 1: beta from 1e-4 to 0.02 evenly spaced over T. */
int noise_schedule_build(noise_schedule *s, int T, int linear);
void noise_schedule_free(noise_schedule *s);

/* MODEL.md's conventions, one value at a time, at sa = sqrt(ab), sb =
 * sqrt(1 - ab): x_t = sa x0 + sb eps; the network's output o is v = sa eps -
 * sb x0 (predict_v) or eps. Training, validation, restore and the samplers'
 * tests all convert through these, in double. */
static inline double diffusion_xt(double sa, double sb, double x0, double eps) { return sa * x0 + sb * eps; }
/* the regression target of (x0, eps) */
static inline double diffusion_target(double sa, double sb, int predict_v, double x0, double eps) {
    return predict_v ? sa * eps - sb * x0 : eps;
}
/* the estimates of x0 and eps from the output o at x_t */
static inline double diffusion_x0(double sa, double sb, int predict_v, double xt, double o) {
    return predict_v ? sa * xt - sb * o : (xt - sb * o) / sa;
}
static inline double diffusion_eps(double sa, double sb, int predict_v, double xt, double o) {
    return predict_v ? sb * xt + sa * o : o;
}

/* x_t = sqrt(ab) x0 + sqrt(1 - ab) eps, elementwise over n values. */
void diffusion_q_sample(float *xt, const float *x0, const float *eps, size_t n, double alpha_bar);
/* v = sqrt(ab) eps - sqrt(1 - ab) x0 (the v-prediction target). */
void diffusion_v_target(float *v, const float *x0, const float *eps, size_t n, double alpha_bar);

/* The `steps` timestep indices a sampler visits, in DESCENDING order, into
 * out[steps]. leading: {0, T/S, 2T/S, ...} (starts at 950 for T=1000, S=20);
 * trailing: round(T - i T/S) - 1 for i = 0..S-1 (starts at T-1);
 * linspace: round(linspace(T-1, 0, S)). Indices are strictly decreasing. */
int diffusion_timesteps(int T, int steps, dr_spacing spacing, int *out);

typedef struct {
    /* Fill eps and x0 estimates for x_t (n values) at timestep index t. */
    int (*predict)(void *user, const float *xt, int t, float *eps, float *x0);
    void (*x0_hook)(void *user, float *x0, int t);    /* may be NULL */
    void (*x_hook)(void *user, float *x, int t_next); /* may be NULL; t_next = -1 at the end */
    /* Called after each step; non-zero return cancels (DR_ERR_CANCELLED). */
    int (*progress)(void *user, int step, int steps); /* may be NULL */
    void *user;
} denoiser;

typedef struct {
    dr_sampler sampler;
    int steps; /* visited timesteps; DDPM with steps == T is the full chain */
    dr_spacing spacing;
    double eta;    /* DDIM only: 0 deterministic, 1 DDPM-like */
    uint64_t seed; /* noise for x_T and for stochastic steps */
} sample_options;

/* Scratch diffusion_sample needs for n values: eps and x0 always; a third buffer
 * for the noise of stochastic steps (DDPM, DDIM with eta > 0) or for
 * DPM-Solver++'s previous x0 (never both). On a 4096x4096 superres canvas one
 * buffer is 200 MB, so the deterministic default does not pay for it. */
size_t sample_scratch_floats(const sample_options *o, size_t n);

/* Sample n values: x holds the result (x0) on return. If init_noise, x is
 * first filled with N(0, 1) noise from the seed (stream 0); otherwise x is
 * taken as given x_T. The noise of step i comes from rng_derive(seed, 1, i),
 * drawn sequentially, so results do not depend on the thread count.
 * scratch: at least sample_scratch_floats(o, n) floats. */
int diffusion_sample(const noise_schedule *s, const sample_options *o, const denoiser *d, float *x, size_t n,
                     int init_noise, float *scratch);

#endif
