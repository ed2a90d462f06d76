/*
 * test_diffusion - schedules, timesteps, forward process and samplers of
 * src/diffusion/diffusion.h, one test function per property:
 *  - schedules against closed forms computed here independently;
 *  - timestep spacings on hand-checked cases, plus invariants over a sweep;
 *  - q_sample / v_target inversion identities;
 *  - every sampler x spacing x schedule with an exact fixed-x0 oracle: the
 *    result is x0 and the intermediate x lie on the right trajectory
 *    (deterministic samplers) or have the right marginal (stochastic ones);
 *  - a 2-point mixture with its exact posterior-mean denoiser: samples land on
 *    the modes in the right proportions (catches sign and scale errors);
 *  - single updates against formulas written out here (DDPM eps form, DDIM
 *    with an edited x0, the DPM-Solver++(2M) second-order step);
 *  - determinism (seed independence of DDIM eta 0, bit-identical runs and
 *    thread counts), hook order, cancellation, errors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "diffusion/diffusion.h"
#include "nn/nn.h"
#include "testutil.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static const char *sampler_str(dr_sampler k) { return dr_sampler_name(k); }
static const char *spacing_str(dr_spacing sp) {
    return sp == DR_SPACING_TRAILING ? "trailing" : sp == DR_SPACING_LEADING ? "leading" : "linspace";
}

/* ------------------------------------------------------------------ schedule */

/* Nichol & Dhariwal's f(t) = cos(((t/T) + s)/(1 + s) * pi/2)^2, s = 0.008. */
static double cos_f(double t, double T) {
    const double c = cos((t / T + 0.008) / 1.008 * (M_PI / 2.0));
    return c * c;
}

static double rel_err(double a, double b) { return fabs(a - b) / fabs(b); }

static void test_schedule(void) {
    const int T = 1000;
    noise_schedule c, l;
    CHECK(noise_schedule_build(&c, T, 0) == DR_OK, "cosine build: %s", dr_last_error());
    CHECK(noise_schedule_build(&l, T, 1) == DR_OK, "linear build: %s", dr_last_error());
    CHECK(c.T == T && l.T == T, "T stored");

    /* Cosine, 0-based: alpha_bar[t] = f(t+1)/f(0) while no beta is clipped
     * (telescoping product of 1 - beta_s = f(s+1)/f(s)). Only beta[999] clips:
     * 1 - f(1000)/f(999) ~ 1 > 0.999, so alpha_bar[999] = 0.001 f(999)/f(0). */
    const int ts[] = {0, 1, 499, 998};
    for (size_t k = 0; k < sizeof ts / sizeof *ts; k++) {
        const int t = ts[k];
        const double want = cos_f(t + 1, T) / cos_f(0, T);
        CHECK(rel_err(c.alpha_bar[t], want) < 1e-9, "cosine alpha_bar[%d] = %.17g, closed form %.17g", t,
              c.alpha_bar[t], want);
    }
    const double want999 = 0.001 * cos_f(999, T) / cos_f(0, T);
    CHECK(rel_err(c.alpha_bar[999], want999) < 1e-9, "cosine alpha_bar[999] = %.17g, want %.17g", c.alpha_bar[999],
          want999);
    CHECK(c.beta[999] == 0.999, "cosine beta[999] = %.17g, want exactly the clip 0.999", c.beta[999]);
    CHECK(c.beta[998] < 0.999 && rel_err(c.beta[998], 1.0 - cos_f(999, T) / cos_f(998, T)) < 1e-12,
          "cosine beta[998] = %.17g unclipped", c.beta[998]);
    /* MODEL.md: "about 2e-9". Analytically 0.001 sin^2(pi/2 / 1008) / f(0) = 2.4286e-9. */
    CHECK(c.alpha_bar[999] > 2.42e-9 && c.alpha_bar[999] < 2.44e-9, "cosine alpha_bar[999] = %.6g not ~2.43e-9",
          c.alpha_bar[999]);
    CHECK(rel_err(c.beta[0], 1.0 - cos_f(1, T) / cos_f(0, T)) < 1e-9 && c.beta[0] > 0, "cosine beta[0] = %.17g",
          c.beta[0]);

    /* Linear: beta_t = (1e-4 (T-1-t) + 0.02 t) / (T-1); alpha_bar[t] =
     * exp(sum_{s<=t} log1p(-beta_s)), a different evaluation of the product. */
    const int tl[] = {0, 1, 499, 998, 999};
    for (size_t k = 0; k < sizeof tl / sizeof *tl; k++) {
        const int t = tl[k];
        double lsum = 0.0;
        for (int s = 0; s <= t; s++) lsum += log1p(-(1e-4 * (T - 1 - s) + 0.02 * s) / (T - 1));
        const double want = exp(lsum);
        CHECK(rel_err(l.alpha_bar[t], want) < 1e-9, "linear alpha_bar[%d] = %.17g, closed form %.17g", t,
              l.alpha_bar[t], want);
    }
    CHECK(fabs(l.beta[0] - 1e-4) < 1e-15 && fabs(l.beta[999] - 0.02) < 1e-15, "linear beta ends %.17g %.17g", l.beta[0],
          l.beta[999]);

    /* Both: beta in (0, 0.999], alpha_bar strictly decreasing in (0, 1) and
     * equal to the running product of its betas. */
    int mono = 1, prod = 1, range = 1;
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < 2; k++) {
            const noise_schedule *s = k ? &l : &c;
            if (!(s->beta[t] > 0 && s->beta[t] <= 0.999)) range = 0;
            if (!(s->alpha_bar[t] > 0 && s->alpha_bar[t] < 1)) range = 0;
            if (t > 0 && !(s->alpha_bar[t] < s->alpha_bar[t - 1])) mono = 0;
            const double prev = t ? s->alpha_bar[t - 1] : 1.0;
            if (rel_err(s->alpha_bar[t], prev * (1.0 - s->beta[t])) > 1e-15) prod = 0;
        }
    }
    CHECK(range, "beta in (0, 0.999], alpha_bar in (0, 1)");
    CHECK(mono, "alpha_bar strictly decreasing");
    CHECK(prod, "alpha_bar[t] = alpha_bar[t-1] (1 - beta[t])");
    printf("alpha_bar[999]: cosine %.6e, linear %.6e\n", c.alpha_bar[999], l.alpha_bar[999]);

    /* Small T: T = 1 cosine is a single clipped step. */
    noise_schedule one;
    CHECK(noise_schedule_build(&one, 1, 0) == DR_OK && one.beta[0] == 0.999, "cosine T = 1");
    noise_schedule_free(&one);
    CHECK(one.beta == NULL && one.alpha_bar == NULL, "free clears the struct");
    noise_schedule_free(&one); /* double free is harmless */

    noise_schedule bad;
    error_clear();
    CHECK(noise_schedule_build(&bad, 0, 0) == DR_ERR_INVALID && dr_last_error()[0], "T = 0 rejected");
    error_clear();
    CHECK(noise_schedule_build(&bad, 10, 2) == DR_ERR_INVALID && dr_last_error()[0], "linear = 2 rejected");
    error_clear();
    CHECK(noise_schedule_build(NULL, 10, 0) == DR_ERR_INVALID && dr_last_error()[0], "NULL schedule rejected");

    noise_schedule_free(&c);
    noise_schedule_free(&l);
}

/* ----------------------------------------------------------------- timesteps */

static void check_ts(int T, int S, dr_spacing sp, const int *want) {
    int *got = malloc((size_t)S * sizeof *got);
    const int rc = diffusion_timesteps(T, S, sp, got);
    CHECK(rc == DR_OK, "timesteps(%d, %d, %s): %s", T, S, spacing_str(sp), dr_last_error());
    int ok = rc == DR_OK, first_bad = -1;
    for (int i = 0; ok && i < S; i++)
        if (got[i] != want[i]) {
            ok = 0;
            first_bad = i;
        }
    CHECK(ok, "timesteps(%d, %d, %s)[%d] = %d, want %d", T, S, spacing_str(sp), first_bad,
          first_bad >= 0 ? got[first_bad] : 0, first_bad >= 0 ? want[first_bad] : 0);
    free(got);
}

static void test_timesteps(void) {
    int want[1000];
    /* (1000, 20) */
    for (int i = 0; i < 20; i++) want[i] = 950 - 50 * i;
    check_ts(1000, 20, DR_SPACING_LEADING, want);
    for (int i = 0; i < 20; i++) want[i] = 999 - 50 * i;
    check_ts(1000, 20, DR_SPACING_TRAILING, want);
    for (int i = 0; i < 20; i++)
        want[i] = (int)nearbyint(999.0 * (19 - i) / 19.0); /* no ties: 19 does not divide 999 j */
    check_ts(1000, 20, DR_SPACING_LINSPACE, want);
    CHECK(want[0] == 999 && want[1] == 946 && want[18] == 53 && want[19] == 0, "linspace(999, 0, 20) spot values");
    /* (1000, 1000): every spacing visits 999..0 */
    for (int i = 0; i < 1000; i++) want[i] = 999 - i;
    check_ts(1000, 1000, DR_SPACING_LEADING, want);
    check_ts(1000, 1000, DR_SPACING_TRAILING, want);
    check_ts(1000, 1000, DR_SPACING_LINSPACE, want);
    /* (1000, 1): leading's only index is 0; trailing and linspace start at T-1 */
    want[0] = 0;
    check_ts(1000, 1, DR_SPACING_LEADING, want);
    want[0] = 999;
    check_ts(1000, 1, DR_SPACING_TRAILING, want);
    check_ts(1000, 1, DR_SPACING_LINSPACE, want);
    /* (10, 3): leading 3*{2,1,0}; trailing round(10, 6.67, 3.33) - 1; linspace round(9, 4.5, 0)
     * with numpy's ties-to-even 4.5 -> 4. */
    const int l103[] = {6, 3, 0}, t103[] = {9, 6, 2}, s103[] = {9, 4, 0};
    check_ts(10, 3, DR_SPACING_LEADING, l103);
    check_ts(10, 3, DR_SPACING_TRAILING, t103);
    check_ts(10, 3, DR_SPACING_LINSPACE, s103);
    /* (10, 4) trailing: round(10, 7.5, 5, 2.5) - 1, ties to even as np.round */
    const int t104[] = {9, 7, 4, 1};
    check_ts(10, 4, DR_SPACING_TRAILING, t104);

    /* Invariants over a sweep: strictly decreasing in [0, T-1]; trailing and
     * linspace start at T-1; linspace (S > 1) and leading end at 0. */
    const int Ts[] = {1, 2, 3, 7, 10, 64, 999, 1000};
    int inv_ok = 1;
    for (size_t k = 0; k < sizeof Ts / sizeof *Ts; k++) {
        const int T = Ts[k];
        for (int S = 1; S <= T; S++) {
            for (int sp = 0; sp < 3; sp++) {
                if (diffusion_timesteps(T, S, (dr_spacing)sp, want) != DR_OK) {
                    inv_ok = 0;
                    continue;
                }
                for (int i = 0; i < S; i++)
                    if (want[i] < 0 || want[i] >= T || (i && want[i] >= want[i - 1])) inv_ok = 0;
                if (sp == DR_SPACING_TRAILING && want[0] != T - 1) inv_ok = 0;
                if (sp == DR_SPACING_LINSPACE && (want[0] != T - 1 || (S > 1 && want[S - 1] != 0))) inv_ok = 0;
                if (sp == DR_SPACING_LEADING && want[S - 1] != 0) inv_ok = 0;
            }
        }
    }
    CHECK(inv_ok, "timestep invariants over the sweep");

    const struct {
        int T, S, sp;
    } bad[] = {{1000, 0, 0}, {1000, 1001, 0}, {1000, -1, 1}, {10, 11, 2}, {0, 1, 0}, {1000, 10, 3}, {1000, 10, -1}};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        error_clear();
        const int rc = diffusion_timesteps(bad[k].T, bad[k].S, (dr_spacing)bad[k].sp, want);
        CHECK(rc == DR_ERR_INVALID && dr_last_error()[0], "timesteps(%d, %d, %d) -> %d, want DR_ERR_INVALID", bad[k].T,
              bad[k].S, bad[k].sp, rc);
    }
    error_clear();
    CHECK(diffusion_timesteps(1000, 10, DR_SPACING_TRAILING, NULL) == DR_ERR_INVALID && dr_last_error()[0], "NULL out");
}

/* ----------------------------------------------------------- q_sample / v */

static void test_q_sample_v(void) {
    const size_t n = 4096;
    float *x0 = falloc(n), *eps = falloc(n), *xt = falloc(n), *v = falloc(n);
    test_rng r = {11};
    test_fill_normal(&r, x0, n, 1.0f);
    test_fill_normal(&r, eps, n, 1.0f);
    const double abs_[] = {2.4286e-9, 1e-4, 0.01, 0.5, 0.99, 0.99996};
    for (size_t k = 0; k < sizeof abs_ / sizeof *abs_; k++) {
        const double ab = abs_[k], a = sqrt(ab), b = sqrt(1 - ab);
        diffusion_q_sample(xt, x0, eps, n, ab);
        diffusion_v_target(v, x0, eps, n, ab);
        double e_xt = 0, e_v = 0, e_x0 = 0, e_eps = 0;
        for (size_t i = 0; i < n; i++) {
            e_xt = fmax(e_xt, fabs(xt[i] - (a * x0[i] + b * eps[i])));
            e_v = fmax(e_v, fabs(v[i] - (a * eps[i] - b * x0[i])));
            /* (x_t, v) is a rotation of (x0, eps) by the angle atan(b/a):
             * x0 = a x_t - b v and eps = b x_t + a v. */
            e_x0 = fmax(e_x0, fabs(x0[i] - (a * xt[i] - b * v[i])));
            e_eps = fmax(e_eps, fabs(eps[i] - (b * xt[i] + a * v[i])));
        }
        /* values are O(1) (max ~4): one float rounding of each of x_t, v */
        CHECK(e_xt < 1e-6 && e_v < 1e-6, "ab = %g: q_sample err %.3g, v err %.3g", ab, e_xt, e_v);
        CHECK(e_x0 < 2e-6 && e_eps < 2e-6, "ab = %g: x0 recovery err %.3g, eps recovery err %.3g", ab, e_x0, e_eps);
    }
    free(x0);
    free(eps);
    free(xt);
    free(v);
}

/* --------------------------------------------------------- fixed-x0 oracle */

typedef struct {
    const noise_schedule *s;
    const float *x0;
    size_t n;
    int calls;
    float *eps_init; /* eps implied by the first x_t: the deterministic trajectory */
    int first_t;
    int stochastic;               /* check the marginal's moments instead of the trajectory */
    double traj_err;              /* deterministic: max |x - (sqrt(ab) x0 + sqrt(1-ab) eps_init)| */
    double mom_err;               /* stochastic: max over steps of |mean| and |var - 1| of the implied eps */
    const float *expect_first_xt; /* if set, the first x_t must equal it bit for bit */
    int first_xt_ok;
} fixed_oracle;

static int fixed_predict(void *user, const float *xt, int t, float *eps, float *x0) {
    fixed_oracle *o = user;
    const double ab = o->s->alpha_bar[t], a = sqrt(ab), b = sqrt(1 - ab);
    for (size_t i = 0; i < o->n; i++) {
        x0[i] = o->x0[i];
        eps[i] = (float)((xt[i] - a * o->x0[i]) / b);
    }
    if (o->calls == 0) {
        memcpy(o->eps_init, eps, o->n * sizeof *eps);
        o->first_t = t;
        if (o->expect_first_xt) o->first_xt_ok = memcmp(xt, o->expect_first_xt, o->n * sizeof *xt) == 0;
    }
    o->calls++;
    return DR_OK;
}

static void fixed_x_hook(void *user, float *x, int t_next) {
    fixed_oracle *o = user;
    if (t_next < 0) return;
    const double ab = o->s->alpha_bar[t_next], a = sqrt(ab), b = sqrt(1 - ab);
    if (!o->stochastic) {
        for (size_t i = 0; i < o->n; i++)
            o->traj_err = fmax(o->traj_err, fabs(x[i] - (a * o->x0[i] + b * o->eps_init[i])));
    } else {
        double m = 0, m2 = 0;
        for (size_t i = 0; i < o->n; i++) {
            const double e = (x[i] - a * o->x0[i]) / b;
            m += e;
            m2 += e * e;
        }
        m /= o->n;
        const double var = m2 / o->n - m * m;
        o->mom_err = fmax(o->mom_err, fmax(fabs(m), fabs(var - 1)));
    }
}

static void test_oracle(void) {
    const size_t n = 8192;
    float *x0 = falloc(n), *x = falloc(n), *z = falloc(n), *eps_init = falloc(n), *scratch = falloc(4 * n);
    float *noise0 = falloc(n);
    test_rng r = {21};
    test_fill_normal(&r, x0, n, 0.5f);
    test_fill_normal(&r, z, n, 1.0f);

    const struct {
        dr_sampler k;
        int steps;
        double eta;
    } cfg[] = {{DR_SAMPLER_DDPM, 1000, 0},      {DR_SAMPLER_DDPM, 50, 0},          {DR_SAMPLER_DDIM, 20, 0},
               {DR_SAMPLER_DDIM, 50, 0},        {DR_SAMPLER_DDIM, 20, 1},          {DR_SAMPLER_DDIM, 50, 1},
               {DR_SAMPLER_DPMPP_2M, 10, 0},    {DR_SAMPLER_DPMPP_2M, 20, 0},      {DR_SAMPLER_DPMPP_2M_SDE, 10, 0},
               {DR_SAMPLER_DPMPP_2M_SDE, 8, 1}, {DR_SAMPLER_DPMPP_2M_SDE, 12, 0.5}};
    const size_t ncfg = sizeof cfg / sizeof *cfg;
    double worst_final[sizeof cfg / sizeof *cfg] = {0}, worst_traj[sizeof cfg / sizeof *cfg] = {0};

    for (int lin = 0; lin < 2; lin++) {
        noise_schedule s;
        CHECK(noise_schedule_build(&s, 1000, lin) == DR_OK, "schedule");
        for (size_t c = 0; c < ncfg; c++) {
            for (int sp = 0; sp < 3; sp++) {
                /* Start on the forward process at the first visited step, so the
                 * marginals of a stochastic sampler are exactly N(sqrt(ab) x0, 1-ab). */
                int ts[1000];
                diffusion_timesteps(1000, cfg[c].steps, (dr_spacing)sp, ts);
                diffusion_q_sample(x, x0, z, n, s.alpha_bar[ts[0]]);
                const int stochastic = cfg[c].k == DR_SAMPLER_DDPM || cfg[c].eta > 0;
                fixed_oracle o = {&s, x0, n, 0, eps_init, -1, stochastic, 0, 0, NULL, 0};
                denoiser d = {fixed_predict, NULL, fixed_x_hook, NULL, &o};
                sample_options opt = {cfg[c].k, cfg[c].steps, (dr_spacing)sp, cfg[c].eta, 1234 + c};
                /* exactly the scratch the sampler asks for (ASan builds catch an overrun) */
                const size_t ns = sample_scratch_floats(&opt, n);
                CHECK(ns == (cfg[c].k == DR_SAMPLER_DDIM && cfg[c].eta == 0 ? 2 : 3) * n, "%s eta %g: scratch %zu",
                      sampler_str(cfg[c].k), cfg[c].eta, ns);
                float *exact = falloc(ns);
                const int rc = diffusion_sample(&s, &opt, &d, x, n, 0, exact);
                free(exact);
                CHECK(rc == DR_OK, "%s steps %d %s: %s", sampler_str(cfg[c].k), cfg[c].steps, spacing_str(sp),
                      dr_last_error());
                CHECK(o.calls == cfg[c].steps && o.first_t == ts[0], "predict called %d times, first t %d", o.calls,
                      o.first_t);
                const double err = test_max_abs_diff(x, x0, n);
                worst_final[c] = fmax(worst_final[c], err);
                CHECK(err < 1e-4, "%s %s steps %d eta %g %s: final max err %.3g", lin ? "linear" : "cosine",
                      sampler_str(cfg[c].k), cfg[c].steps, cfg[c].eta, spacing_str(sp), err);
                if (!stochastic) {
                    /* DDIM eta 0 and DPM-Solver++ with an exact constant x0 are exact
                     * integrators: x stays at sqrt(ab) x0 + sqrt(1-ab) eps_init. */
                    worst_traj[c] = fmax(worst_traj[c], o.traj_err);
                    CHECK(o.traj_err < 1e-5, "%s %s steps %d %s: trajectory err %.3g", lin ? "linear" : "cosine",
                          sampler_str(cfg[c].k), cfg[c].steps, spacing_str(sp), o.traj_err);
                } else {
                    /* DDPM / DDIM eta 1 keep the forward marginal: the implied eps
                     * has mean 0 and variance 1 at every visited step (n = 8192:
                     * standard errors 0.011 and 0.016). */
                    worst_traj[c] = fmax(worst_traj[c], o.mom_err);
                    CHECK(o.mom_err < 0.1, "%s %s steps %d eta %g %s: marginal moment err %.3g",
                          lin ? "linear" : "cosine", sampler_str(cfg[c].k), cfg[c].steps, cfg[c].eta, spacing_str(sp),
                          o.mom_err);
                }
            }
        }
        /* init_noise: x_T is N(0, 1) from rng_derive(seed, 0, 0), drawn in order. */
        rng_state g;
        rng_derive(&g, 77, 0, 0);
        for (size_t i = 0; i < n; i++) noise0[i] = rng_normal(&g);
        fixed_oracle o = {&s, x0, n, 0, eps_init, -1, 0, 0, 0, noise0, 0};
        denoiser d = {fixed_predict, NULL, NULL, NULL, &o};
        sample_options opt = {DR_SAMPLER_DDPM, 20, DR_SPACING_TRAILING, 0, 77};
        memset(x, 0, n * sizeof *x);
        CHECK(diffusion_sample(&s, &opt, &d, x, n, 1, scratch) == DR_OK, "init_noise run");
        CHECK(o.first_xt_ok, "init noise is rng_derive(seed, 0, 0) drawn sequentially");
        CHECK(test_max_abs_diff(x, x0, n) < 1e-4, "init_noise run recovers x0");
        noise_schedule_free(&s);
    }
    for (size_t c = 0; c < ncfg; c++)
        printf("oracle %-8s steps %4d eta %g: final max err %.3g, %s %.3g\n", sampler_str(cfg[c].k), cfg[c].steps,
               cfg[c].eta, worst_final[c],
               cfg[c].k == DR_SAMPLER_DDPM || cfg[c].eta > 0 ? "marginal moment err" : "trajectory max err",
               worst_traj[c]);
    free(x0);
    free(x);
    free(z);
    free(eps_init);
    free(scratch);
    free(noise0);
}

/* ------------------------------------------------------- 2-point mixture */

/* x0 = M0 with probability P0, M1 otherwise, independently per value. The
 * exact optimal denoiser is the posterior mean
 *   E[x0 | x_t] = sum_k w_k m_k,  w_k ∝ p_k exp(-(x_t - sqrt(ab) m_k)^2 / (2 (1 - ab))). */
#define MIX_M0 (-0.6)
#define MIX_M1 0.8
#define MIX_P1 0.6

typedef struct {
    const noise_schedule *s;
    int last_t;       /* the last visited t: x at that level is checked */
    double near_frac; /* fraction of x within 5 sigma of a scaled mode at last_t */
} mix_oracle;

static int mix_predict(void *user, const float *xt, int t, float *eps, float *x0, size_t n) {
    mix_oracle *o = user;
    const double ab = o->s->alpha_bar[t], a = sqrt(ab), s2 = 1 - ab;
    for (size_t i = 0; i < n; i++) {
        const double d0 = xt[i] - a * MIX_M0, d1 = xt[i] - a * MIX_M1;
        /* log-odds of mode 1 over mode 0; logistic form avoids overflow */
        const double lo = log(MIX_P1 / (1 - MIX_P1)) + (d0 * d0 - d1 * d1) / (2 * s2);
        const double w1 = lo > 0 ? 1.0 / (1.0 + exp(-lo)) : exp(lo) / (1.0 + exp(lo));
        const double m = MIX_M0 + w1 * (MIX_M1 - MIX_M0);
        x0[i] = (float)m;
        eps[i] = (float)((xt[i] - a * m) / sqrt(s2));
    }
    return DR_OK;
}

/* denoiser's predict has no n: the tests bind it through the user struct. */
typedef struct {
    mix_oracle m;
    size_t n;
    float *x_at_last_t;
} mix_user;

static int mix_predict_cb(void *user, const float *xt, int t, float *eps, float *x0) {
    mix_user *u = user;
    return mix_predict(&u->m, xt, t, eps, x0, u->n);
}

static void mix_x_hook(void *user, float *x, int t_next) {
    mix_user *u = user;
    if (t_next == u->m.last_t) memcpy(u->x_at_last_t, x, u->n * sizeof *x);
}

static void test_mixture(void) {
    const size_t n = 8192;
    float *x = falloc(n), *xl = falloc(n), *scratch = falloc(4 * n);
    const struct {
        dr_sampler k;
        int steps;
        double eta;
    } cfg[] = {{DR_SAMPLER_DDPM, 1000, 0}, {DR_SAMPLER_DDPM, 50, 0},     {DR_SAMPLER_DDIM, 50, 0},
               {DR_SAMPLER_DDIM, 50, 1},   {DR_SAMPLER_DPMPP_2M, 20, 0}, {DR_SAMPLER_DPMPP_2M_SDE, 20, 1}};
    for (int lin = 0; lin < 2; lin++) {
        noise_schedule s;
        noise_schedule_build(&s, 1000, lin);
        for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
            int ts[1000];
            diffusion_timesteps(1000, cfg[c].steps, DR_SPACING_TRAILING, ts);
            mix_user u = {{&s, ts[cfg[c].steps - 1], 0}, n, xl};
            denoiser d = {mix_predict_cb, NULL, mix_x_hook, NULL, &u};
            sample_options opt = {cfg[c].k, cfg[c].steps, DR_SPACING_TRAILING, cfg[c].eta, 99 + c};
            CHECK(diffusion_sample(&s, &opt, &d, x, n, 1, scratch) == DR_OK, "mixture sample: %s", dr_last_error());
            /* Output: a mode within 0.05, in the right proportion (sd of the
             * fraction ~0.0054 for n = 8192). */
            size_t near = 0, ones = 0;
            for (size_t i = 0; i < n; i++) {
                if (fabs(x[i] - MIX_M0) < 0.05 || fabs(x[i] - MIX_M1) < 0.05) near++;
                if (x[i] > 0.5 * (MIX_M0 + MIX_M1)) ones++;
            }
            const double fnear = (double)near / n, f1 = (double)ones / n;
            /* x at the last visited level must look like the forward marginal:
             * within 5 sigma of sqrt(ab) m_k. A wrong scale or sign ends elsewhere. */
            const double ab = s.alpha_bar[u.m.last_t], a = sqrt(ab), sg = sqrt(1 - ab);
            size_t close = 0;
            for (size_t i = 0; i < n; i++)
                if (fabs(xl[i] - a * MIX_M0) < 5 * sg || fabs(xl[i] - a * MIX_M1) < 5 * sg) close++;
            const double fclose = (double)close / n;
            printf("mixture %s %-8s steps %4d eta %g: %.4f near a mode, %.4f at +0.8 (want 0.6), "
                   "x at t=%d within 5 sigma: %.4f\n",
                   lin ? "linear" : "cosine", sampler_str(cfg[c].k), cfg[c].steps, cfg[c].eta, fnear, f1, u.m.last_t,
                   fclose);
            CHECK(fnear > 0.95, "mixture %s: only %.4f near a mode", sampler_str(cfg[c].k), fnear);
            CHECK(fabs(f1 - MIX_P1) < 0.03, "mixture %s: mode-1 fraction %.4f, want %.2f", sampler_str(cfg[c].k), f1,
                  MIX_P1);
            CHECK(fclose > 0.99, "mixture %s: x at t=%d within 5 sigma for %.4f", sampler_str(cfg[c].k), u.m.last_t,
                  fclose);
        }
        noise_schedule_free(&s);
    }
    free(x);
    free(xl);
    free(scratch);
}

/* ----------------------------------------------- single updates vs formulas */

/* Predictor with a fixed eps per call; x0 consistent with it. */
typedef struct {
    const noise_schedule *s;
    size_t n;
    const float *e;
    float *x_after; /* x after the first step (copied by the x_hook) */
    int hooks;
    float clip;           /* x0_hook clips to [-clip, clip] when > 0 */
    float *x0_seen;       /* the edited x0 of the first step */
    float scale_per_call; /* DPM++ test: x0 varies from call to call */
    int calls;
    float *x0_base;
    float *x_after2;
} step_user;

static int step_predict(void *user, const float *xt, int t, float *eps, float *x0) {
    step_user *u = user;
    const double ab = u->s->alpha_bar[t];
    if (u->x0_base) {
        /* x0 = base (1 + scale * call), eps consistent with it */
        const double f = 1.0 + u->scale_per_call * u->calls;
        for (size_t i = 0; i < u->n; i++) {
            x0[i] = (float)(u->x0_base[i] * f);
            eps[i] = (float)((xt[i] - sqrt(ab) * x0[i]) / sqrt(1 - ab));
        }
    } else {
        for (size_t i = 0; i < u->n; i++) {
            eps[i] = u->e[i];
            x0[i] = (float)((xt[i] - sqrt(1 - ab) * u->e[i]) / sqrt(ab));
        }
    }
    u->calls++;
    return DR_OK;
}

static void step_x0_hook(void *user, float *x0, int t) {
    step_user *u = user;
    for (size_t i = 0; i < u->n; i++) x0[i] = fminf(fmaxf(x0[i], -u->clip), u->clip);
    if (u->x0_seen && u->calls == 1) memcpy(u->x0_seen, x0, u->n * sizeof *x0);
}

static void step_x_hook(void *user, float *x, int t_next) {
    step_user *u = user;
    u->hooks++;
    if (u->hooks == 1) memcpy(u->x_after, x, u->n * sizeof *x);
    if (u->hooks == 2 && u->x_after2) memcpy(u->x_after2, x, u->n * sizeof *x);
}

static int cancel_after_1(void *user, int step, int steps) { return step >= 1; }
static int cancel_after_2(void *user, int step, int steps) { return step >= 2; }

static void test_ddpm_eps_form(void) {
    const size_t n = 2048;
    float *x = falloc(n), *xin = falloc(n), *e = falloc(n), *xa = falloc(n), *scratch = falloc(4 * n);
    test_rng r = {31};
    test_fill_normal(&r, xin, n, 1.0f);
    test_fill_normal(&r, e, n, 1.0f);
    const struct {
        int steps;
        dr_spacing sp;
    } cfg[] = {
        {1000, DR_SPACING_TRAILING}, {20, DR_SPACING_TRAILING}, {20, DR_SPACING_LEADING}, {7, DR_SPACING_LINSPACE}};
    for (int lin = 0; lin < 2; lin++) {
        noise_schedule s;
        noise_schedule_build(&s, 1000, lin);
        for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
            int ts[1000];
            diffusion_timesteps(1000, cfg[c].steps, cfg[c].sp, ts);
            const double ab_t = s.alpha_bar[ts[0]], ab_p = s.alpha_bar[ts[1]];
            step_user u = {&s, n, e, xa, 0, 0, NULL, 0, 0, NULL, NULL};
            denoiser d = {step_predict, NULL, step_x_hook, cancel_after_1, &u};
            const uint64_t seed = 4242 + c;
            sample_options opt = {DR_SAMPLER_DDPM, cfg[c].steps, cfg[c].sp, 0, seed};
            memcpy(x, xin, n * sizeof *x);
            CHECK(diffusion_sample(&s, &opt, &d, x, n, 0, scratch) == DR_ERR_CANCELLED, "cancel after one step");
            /* The eps form with respaced alpha' = ab_t / ab_prev:
             *   x_prev = (x_t - (1 - alpha') / sqrt(1 - ab_t) eps) / sqrt(alpha') + sigma z,
             *   sigma^2 = (1 - alpha') (1 - ab_prev) / (1 - ab_t), z from stream (1, 0). */
            const double al = ab_t / ab_p, sigma = sqrt((1 - al) * (1 - ab_p) / (1 - ab_t));
            rng_state g;
            rng_derive(&g, seed, 1, 0);
            double err = 0, scale = 0;
            for (size_t i = 0; i < n; i++) {
                const double z = rng_normal(&g);
                const double want = (xin[i] - (1 - al) / sqrt(1 - ab_t) * e[i]) / sqrt(al) + sigma * z;
                err = fmax(err, fabs(xa[i] - want));
                scale = fmax(scale, fabs(want));
            }
            /* relative to the largest value: x0 carries float rounding amplified
             * by 1/sqrt(ab_t) (2e4 at cosine t = 999) */
            CHECK(err < 1e-5 * scale, "%s DDPM %s steps %d (t %d -> %d): eps form err %.3g (scale %.3g)",
                  lin ? "linear" : "cosine", spacing_str(cfg[c].sp), cfg[c].steps, ts[0], ts[1], err, scale);
        }
        noise_schedule_free(&s);
    }
    free(x);
    free(xin);
    free(e);
    free(xa);
    free(scratch);
}

/* DDIM with an x0_hook: the update must use the edited x0 and the eps
 * recomputed from it, x_prev = sqrt(ab_prev) x0' + sqrt(1 - ab_prev) eps',
 * eps' = (x_t - sqrt(ab_t) x0') / sqrt(1 - ab_t). */
static void test_ddim_edited_x0(void) {
    const size_t n = 2048;
    float *x = falloc(n), *xin = falloc(n), *e = falloc(n), *xa = falloc(n), *x0s = falloc(n);
    float *scratch = falloc(4 * n);
    test_rng r = {41};
    noise_schedule s;
    noise_schedule_build(&s, 1000, 0);
    int ts[20];
    diffusion_timesteps(1000, 20, DR_SPACING_TRAILING, ts);
    /* Step 0 from t = 999 with x ~ N(0,1): x0 = (x - sqrt(1-ab) e)/sqrt(ab) is
     * ~1e4 in size, so the clip to [-1, 1] edits almost every value. */
    test_fill_normal(&r, xin, n, 1.0f);
    test_fill_normal(&r, e, n, 1.0f);
    step_user u = {&s, n, e, xa, 0, 1.0f, x0s, 0, 0, NULL, NULL};
    denoiser d = {step_predict, step_x0_hook, step_x_hook, cancel_after_1, &u};
    sample_options opt = {DR_SAMPLER_DDIM, 20, DR_SPACING_TRAILING, 0, 5};
    memcpy(x, xin, n * sizeof *x);
    CHECK(diffusion_sample(&s, &opt, &d, x, n, 0, scratch) == DR_ERR_CANCELLED, "cancel after one step");
    const double a_t = s.alpha_bar[ts[0]], a_p = s.alpha_bar[ts[1]];
    double err = 0;
    size_t edited = 0;
    for (size_t i = 0; i < n; i++) {
        const double x0c = x0s[i];
        const double epsc = (xin[i] - sqrt(a_t) * x0c) / sqrt(1 - a_t);
        const double want = sqrt(a_p) * x0c + sqrt(1 - a_p) * epsc;
        err = fmax(err, fabs(xa[i] - want));
        if (fabs(x0c) == 1.0) edited++;
    }
    CHECK(edited > n / 2, "x0_hook clipped %zu of %zu", edited, n);
    CHECK(err < 1e-5, "DDIM with edited x0: err %.3g", err);
    noise_schedule_free(&s);
    free(x);
    free(xin);
    free(e);
    free(xa);
    free(x0s);
    free(scratch);
}

/* DPM-Solver++(2M): two steps with x0 estimates that differ between calls, so
 * the second step's D = (1 + 1/(2r)) x0 - 1/(2r) x0_last is exercised. */
static void test_dpmpp_steps(void) {
    const size_t n = 2048;
    float *x = falloc(n), *xin = falloc(n), *base = falloc(n), *x1 = falloc(n), *x2 = falloc(n);
    float *scratch = falloc(4 * n);
    test_rng r = {51};
    test_fill_normal(&r, xin, n, 1.0f);
    test_fill_normal(&r, base, n, 0.5f);
    for (int lin = 0; lin < 2; lin++) {
        noise_schedule s;
        noise_schedule_build(&s, 1000, lin);
        int ts[10];
        diffusion_timesteps(1000, 10, DR_SPACING_LINSPACE, ts); /* uneven steps: r != 1 */
        step_user u = {&s, n, NULL, x1, 0, 0, NULL, 0.25f, 0, base, x2};
        denoiser d = {step_predict, NULL, step_x_hook, cancel_after_2, &u};
        sample_options opt = {DR_SAMPLER_DPMPP_2M, 10, DR_SPACING_LINSPACE, 0, 5};
        memcpy(x, xin, n * sizeof *x);
        CHECK(diffusion_sample(&s, &opt, &d, x, n, 0, scratch) == DR_ERR_CANCELLED, "cancel after two steps");
        double lam[3], al[3], sg[3];
        for (int k = 0; k < 3; k++) {
            const double ab = s.alpha_bar[ts[k]];
            al[k] = sqrt(ab);
            sg[k] = sqrt(1 - ab);
            lam[k] = log(al[k] / sg[k]);
        }
        const double h0 = lam[1] - lam[0], h1 = lam[2] - lam[1], rr = h0 / h1;
        double e1 = 0, e2 = 0, sc = 0;
        for (size_t i = 0; i < n; i++) {
            const double d0 = (float)(base[i] * 1.0f), d1 = (float)(base[i] * 1.25f);
            /* first order: x1 = sigma1/sigma0 x0 - alpha1 (e^-h0 - 1) D0 */
            const double w1 = sg[1] / sg[0] * xin[i] - al[1] * (exp(-h0) - 1) * d0;
            e1 = fmax(e1, fabs(x1[i] - w1));
            /* second order: D = (1 + 1/(2r)) D1 - 1/(2r) D0 */
            const double D = (1 + 1 / (2 * rr)) * d1 - 1 / (2 * rr) * d0;
            const double w2 = sg[2] / sg[1] * x1[i] - al[2] * (exp(-h1) - 1) * D;
            e2 = fmax(e2, fabs(x2[i] - w2));
            sc = fmax(sc, fabs(w2));
        }
        CHECK(e1 < 1e-5 && e2 < 1e-5 * fmax(1, sc), "%s DPM++2M steps: err %.3g, %.3g (t %d %d %d, r %.3f)",
              lin ? "linear" : "cosine", e1, e2, ts[0], ts[1], ts[2], rr);
        noise_schedule_free(&s);
    }
    free(x);
    free(xin);
    free(base);
    free(x1);
    free(x2);
    free(scratch);
}

/* SDE-DPM-Solver++(2M) against the two samplers it generalises:
 * - eta 0 is DPM-Solver++(2M), bit for bit (same coefficients, same order);
 * - eta 1 with an x0 estimate that does not change between steps (so the
 *   second-order correction is zero) is the DDPM posterior step, noise from
 *   the same stream (1, i): x after 3 steps agrees to float rounding.
 * Then a second-order check: with x0 estimates that differ between steps and
 * eta 0.5, x after two steps matches the formula evaluated here in double. */
typedef struct {
    const noise_schedule *s;
    const float *base;
    size_t n;
    int calls;
    float growth; /* x0 = base (1 + growth calls) */
} const_user;

static int const_predict(void *user, const float *xt, int t, float *eps, float *x0) {
    const_user *u = user;
    const double ab = u->s->alpha_bar[t], a = sqrt(ab), b = sqrt(1 - ab);
    const float f = 1.0f + u->growth * (float)u->calls;
    for (size_t i = 0; i < u->n; i++) {
        x0[i] = u->base[i] * f;
        eps[i] = (float)((xt[i] - a * x0[i]) / b);
    }
    u->calls++;
    return DR_OK;
}

static int cancel_after_3(void *user, int step, int steps) { return step >= 3; }

static void test_dpmpp_sde(void) {
    const size_t n = 4096;
    float *xin = falloc(n), *base = falloc(n), *a = falloc(n), *b = falloc(n), *scratch = falloc(4 * n);
    test_rng r = {71};
    test_fill_normal(&r, xin, n, 1.0f);
    test_fill_normal(&r, base, n, 0.5f);
    for (int lin = 0; lin < 2; lin++) {
        noise_schedule s;
        noise_schedule_build(&s, 1000, lin);
        /* eta 0 == DPM-Solver++(2M), whole run, x0 changing every step */
        for (int sp = 0; sp < 3; sp++) {
            const_user u = {&s, base, n, 0, 0.1f};
            denoiser d = {const_predict, NULL, NULL, NULL, &u};
            sample_options o1 = {DR_SAMPLER_DPMPP_2M, 12, (dr_spacing)sp, 0, 3};
            sample_options o2 = {DR_SAMPLER_DPMPP_2M_SDE, 12, (dr_spacing)sp, 0, 3};
            memcpy(a, xin, n * sizeof *a);
            memcpy(b, xin, n * sizeof *b);
            CHECK(diffusion_sample(&s, &o1, &d, a, n, 0, scratch) == DR_OK, "dpmpp run");
            u.calls = 0;
            CHECK(diffusion_sample(&s, &o2, &d, b, n, 0, scratch) == DR_OK, "dpmpp-sde run");
            CHECK(memcmp(a, b, n * sizeof *a) == 0, "%s %s: dpmpp-sde eta 0 differs from dpmpp",
                  lin ? "linear" : "cosine", spacing_str(sp));
        }
        /* eta 1, constant x0: the DDPM posterior step */
        for (int sp = 0; sp < 3; sp++) {
            const_user u = {&s, base, n, 0, 0};
            denoiser d = {const_predict, NULL, NULL, cancel_after_3, &u};
            sample_options o1 = {DR_SAMPLER_DDPM, 10, (dr_spacing)sp, 0, 11};
            sample_options o2 = {DR_SAMPLER_DPMPP_2M_SDE, 10, (dr_spacing)sp, 1, 11};
            memcpy(a, xin, n * sizeof *a);
            memcpy(b, xin, n * sizeof *b);
            CHECK(diffusion_sample(&s, &o1, &d, a, n, 0, scratch) == DR_ERR_CANCELLED, "ddpm 3 steps");
            u.calls = 0;
            CHECK(diffusion_sample(&s, &o2, &d, b, n, 0, scratch) == DR_ERR_CANCELLED, "dpmpp-sde 3 steps");
            double err = 0, sc = 0;
            for (size_t i = 0; i < n; i++) {
                err = fmax(err, fabs(a[i] - b[i]));
                sc = fmax(sc, fabs(a[i]));
            }
            CHECK(err < 1e-5 * fmax(1, sc), "%s %s: dpmpp-sde eta 1 vs ddpm after 3 steps: err %.3g (scale %.3g)",
                  lin ? "linear" : "cosine", spacing_str(sp), err, sc);
        }
        /* eta 0.5, x0 changing: the formula in double, two steps */
        {
            const double eta = 0.5;
            int ts[10];
            diffusion_timesteps(1000, 10, DR_SPACING_LINSPACE, ts);
            const_user u = {&s, base, n, 0, 0.25f};
            denoiser d = {const_predict, NULL, NULL, cancel_after_2, &u};
            sample_options o = {DR_SAMPLER_DPMPP_2M_SDE, 10, DR_SPACING_LINSPACE, eta, 21};
            memcpy(b, xin, n * sizeof *b);
            CHECK(diffusion_sample(&s, &o, &d, b, n, 0, scratch) == DR_ERR_CANCELLED, "dpmpp-sde 2 steps");
            double al[3], sg[3], lam[3];
            for (int k = 0; k < 3; k++) {
                al[k] = sqrt(s.alpha_bar[ts[k]]);
                sg[k] = sqrt(1 - s.alpha_bar[ts[k]]);
                lam[k] = log(al[k] / sg[k]);
            }
            const double h0 = lam[1] - lam[0], h1 = lam[2] - lam[1], rr = h0 / h1;
            rng_state g0, g1;
            rng_derive(&g0, 21, 1, 0);
            rng_derive(&g1, 21, 1, 1);
            double err = 0, sc = 0;
            for (size_t i = 0; i < n; i++) {
                const double d0 = base[i], d1 = (float)(base[i] * 1.25f);
                const double z0 = rng_normal(&g0), z1 = rng_normal(&g1);
                const double x1 = sg[1] / sg[0] * exp(-eta * h0) * xin[i] + al[1] * (1 - exp(-(1 + eta) * h0)) * d0 +
                    sg[1] * sqrt(1 - exp(-2 * eta * h0)) * z0;
                const double D = (1 + 1 / (2 * rr)) * d1 - 1 / (2 * rr) * d0;
                const double x2 = sg[2] / sg[1] * exp(-eta * h1) * x1 + al[2] * (1 - exp(-(1 + eta) * h1)) * D +
                    sg[2] * sqrt(1 - exp(-2 * eta * h1)) * z1;
                err = fmax(err, fabs(b[i] - x2));
                sc = fmax(sc, fabs(x2));
            }
            CHECK(err < 1e-5 * fmax(1, sc), "%s dpmpp-sde eta 0.5 two steps: err %.3g (scale %.3g)",
                  lin ? "linear" : "cosine", err, sc);
        }
        noise_schedule_free(&s);
    }
    /* names: the public name parses back, aliases too, junk is refused */
    dr_sampler k;
    CHECK(dr_sampler_from_name("dpmpp-sde", &k) == DR_OK && k == DR_SAMPLER_DPMPP_2M_SDE, "dpmpp-sde name");
    CHECK(dr_sampler_from_name("dpm++2m-sde", &k) == DR_OK && k == DR_SAMPLER_DPMPP_2M_SDE, "dpm++2m-sde alias");
    for (int i = 0; i <= (int)DR_SAMPLER_DPMPP_2M_SDE; i++)
        CHECK(dr_sampler_from_name(dr_sampler_name((dr_sampler)i), &k) == DR_OK && k == (dr_sampler)i,
              "name round trip %d", i);
    CHECK(dr_sampler_from_name("dpmpp-ode", &k) == DR_ERR_INVALID && strstr(dr_last_error(), "dpmpp-sde"),
          "unknown name lists the samplers: '%s'", dr_last_error());
    free(xin);
    free(base);
    free(a);
    free(b);
    free(scratch);
}

/* ------------------------------------------------------------- determinism */

static void run_mix(const noise_schedule *s, dr_sampler k, int steps, double eta, uint64_t seed, int init_noise,
                    const float *xin, float *x, size_t n, float *scratch) {
    mix_user u = {{s, -2, 0}, n, NULL};
    denoiser d = {mix_predict_cb, NULL, NULL, NULL, &u};
    sample_options opt = {k, steps, DR_SPACING_TRAILING, eta, seed};
    if (xin) memcpy(x, xin, n * sizeof *x);
    const int rc = diffusion_sample(s, &opt, &d, x, n, init_noise, scratch);
    CHECK(rc == DR_OK, "run_mix: %s", dr_last_error());
}

static void test_determinism(void) {
    const size_t n = 1 << 16; /* above the parallel threshold */
    float *xin = falloc(n), *a = falloc(n), *b = falloc(n), *scratch = falloc(4 * n);
    test_rng r = {61};
    test_fill_normal(&r, xin, n, 1.0f);
    noise_schedule s;
    noise_schedule_build(&s, 1000, 0);

    /* DDIM eta 0 with a given x_T ignores the seed. */
    run_mix(&s, DR_SAMPLER_DDIM, 20, 0, 1, 0, xin, a, n, scratch);
    run_mix(&s, DR_SAMPLER_DDIM, 20, 0, 999, 0, xin, b, n, scratch);
    CHECK(memcmp(a, b, n * sizeof *a) == 0, "DDIM eta 0: seed changed the result");
    run_mix(&s, DR_SAMPLER_DDIM, 20, 0, 1, 0, xin, b, n, scratch);
    CHECK(memcmp(a, b, n * sizeof *a) == 0, "DDIM eta 0: two runs differ");
    /* Stochastic samplers: same seed same bits; another seed differs. */
    run_mix(&s, DR_SAMPLER_DDPM, 20, 0, 5, 1, NULL, a, n, scratch);
    run_mix(&s, DR_SAMPLER_DDPM, 20, 0, 5, 1, NULL, b, n, scratch);
    CHECK(memcmp(a, b, n * sizeof *a) == 0, "DDPM: two runs with one seed differ");
    run_mix(&s, DR_SAMPLER_DDPM, 20, 0, 6, 1, NULL, b, n, scratch);
    CHECK(memcmp(a, b, n * sizeof *a) != 0, "DDPM: different seeds gave identical output");

    /* Thread count: 1 vs 2 threads, bit for bit, every sampler. */
    const struct {
        dr_sampler k;
        double eta;
    } cfg[] = {{DR_SAMPLER_DDPM, 0},
               {DR_SAMPLER_DDIM, 0},
               {DR_SAMPLER_DDIM, 0.7},
               {DR_SAMPLER_DPMPP_2M, 0},
               {DR_SAMPLER_DPMPP_2M_SDE, 1}};
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
        nn_init_threads(1);
        run_mix(&s, cfg[c].k, 15, cfg[c].eta, 8, 1, NULL, a, n, scratch);
        nn_init_threads(2);
        run_mix(&s, cfg[c].k, 15, cfg[c].eta, 8, 1, NULL, b, n, scratch);
        CHECK(memcmp(a, b, n * sizeof *a) == 0, "%s eta %g: 1 vs 2 threads differ", sampler_str(cfg[c].k), cfg[c].eta);
    }
    nn_init_threads(0);
    noise_schedule_free(&s);
    free(xin);
    free(a);
    free(b);
    free(scratch);
}

/* ------------------------------------------------------------------- hooks */

enum { EV_PREDICT = 1, EV_X0 = 2, EV_X = 3, EV_PROGRESS = 4 };

typedef struct {
    int ev[256][3]; /* kind, value, value2 */
    int nev;
    int cancel_at; /* progress returns non-zero at this step (0: never) */
    int fail_at;   /* predict returns DR_ERR_NUMERIC at this call (0: never) */
    int calls;
    size_t n;
} hook_log;

static void log_ev(hook_log *h, int kind, int a, int b) {
    if (h->nev < 256) {
        h->ev[h->nev][0] = kind;
        h->ev[h->nev][1] = a;
        h->ev[h->nev][2] = b;
    }
    h->nev++;
}

static int hook_predict(void *user, const float *xt, int t, float *eps, float *x0) {
    hook_log *h = user;
    h->calls++;
    if (h->fail_at && h->calls == h->fail_at) return error_set(DR_ERR_NUMERIC, "test: predictor failure");
    for (size_t i = 0; i < h->n; i++) {
        x0[i] = 0.5f;
        eps[i] = xt[i];
    }
    log_ev(h, EV_PREDICT, t, 0);
    return DR_OK;
}
static void hook_x0(void *user, float *x0, int t) { log_ev(user, EV_X0, t, 0); }
static void hook_x(void *user, float *x, int t_next) { log_ev(user, EV_X, t_next, 0); }
static int hook_progress(void *user, int step, int steps) {
    hook_log *h = user;
    log_ev(h, EV_PROGRESS, step, steps);
    return h->cancel_at && step == h->cancel_at;
}

static void test_hooks(void) {
    const size_t n = 64;
    float *x = falloc(n), *scratch = falloc(4 * n);
    noise_schedule s;
    noise_schedule_build(&s, 1000, 0);
    for (int k = 0; k < 3; k++) {
        const int S = 10;
        int ts[10];
        diffusion_timesteps(1000, S, DR_SPACING_LEADING, ts);
        hook_log *h = calloc(1, sizeof *h);
        h->n = n;
        denoiser d = {hook_predict, hook_x0, hook_x, hook_progress, h};
        sample_options opt = {(dr_sampler)k, S, DR_SPACING_LEADING, 0.5, 3};
        CHECK(diffusion_sample(&s, &opt, &d, x, n, 1, scratch) == DR_OK, "hooks run: %s", dr_last_error());
        /* per step, in order: predict(t), x0_hook(t), x_hook(t_next), progress(i+1, S) */
        int ok = h->nev == 4 * S;
        for (int i = 0; ok && i < S; i++) {
            int(*e)[3] = h->ev + 4 * i;
            const int t_next = i + 1 < S ? ts[i + 1] : -1;
            ok = e[0][0] == EV_PREDICT && e[0][1] == ts[i] && e[1][0] == EV_X0 && e[1][1] == ts[i] && e[2][0] == EV_X &&
                e[2][1] == t_next && e[3][0] == EV_PROGRESS && e[3][1] == i + 1 && e[3][2] == S;
        }
        CHECK(ok, "%s: hook order / arguments wrong (%d events)", sampler_str((dr_sampler)k), h->nev);

        /* Cancel at step 3: DR_ERR_CANCELLED right after step 3's hooks. */
        memset(h, 0, sizeof *h);
        h->n = n;
        h->cancel_at = 3;
        error_clear();
        CHECK(diffusion_sample(&s, &opt, &d, x, n, 1, scratch) == DR_ERR_CANCELLED && dr_last_error()[0], "%s: cancel",
              sampler_str((dr_sampler)k));
        CHECK(h->calls == 3 && h->nev == 12 && h->ev[11][0] == EV_PROGRESS && h->ev[11][1] == 3,
              "%s: cancelled after %d predicts, %d events", sampler_str((dr_sampler)k), h->calls, h->nev);

        /* A predictor failure is returned as is. */
        memset(h, 0, sizeof *h);
        h->n = n;
        h->fail_at = 2;
        CHECK(diffusion_sample(&s, &opt, &d, x, n, 1, scratch) == DR_ERR_NUMERIC &&
                  strstr(dr_last_error(), "predictor"),
              "%s: predict error propagates: %s", sampler_str((dr_sampler)k), dr_last_error());
        CHECK(h->calls == 2 && h->nev == 4, "%s: stopped at the failing predict (%d events)",
              sampler_str((dr_sampler)k), h->nev);
        free(h);
    }
    noise_schedule_free(&s);
    free(x);
    free(scratch);
}

/* ----------------------------------------------------------------- errors */

static int never_called(void *user, const float *xt, int t, float *eps, float *x0) {
    (*(int *)user)++;
    return DR_OK;
}

static void test_invalid(void) {
    const size_t n = 16;
    float *x = falloc(n), *scratch = falloc(4 * n);
    noise_schedule s;
    noise_schedule_build(&s, 1000, 0);
    int called = 0;
    denoiser d = {never_called, NULL, NULL, NULL, &called};
    const sample_options good = {DR_SAMPLER_DDIM, 20, DR_SPACING_TRAILING, 0, 1};
    sample_options o;
    struct {
        const char *what;
        sample_options o;
    } cases[] = {
        {"sampler 4", good}, {"sampler -1", good}, {"steps 0", good}, {"steps T+1", good},
        {"eta -0.1", good},  {"eta NaN", good},    {"eta inf", good}, {"spacing 3", good},
    };
    cases[0].o.sampler = (dr_sampler)4;
    cases[1].o.sampler = (dr_sampler)-1;
    cases[2].o.steps = 0;
    cases[3].o.steps = 1001;
    cases[4].o.eta = -0.1;
    cases[5].o.eta = NAN;
    cases[6].o.eta = INFINITY;
    cases[7].o.spacing = (dr_spacing)3;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        error_clear();
        const int rc = diffusion_sample(&s, &cases[k].o, &d, x, n, 1, scratch);
        CHECK(rc == DR_ERR_INVALID && dr_last_error()[0], "%s: rc %d, message '%s'", cases[k].what, rc,
              dr_last_error());
    }
    o = good;
    denoiser nopred = {NULL, NULL, NULL, NULL, NULL};
    error_clear();
    CHECK(diffusion_sample(&s, &o, &nopred, x, n, 1, scratch) == DR_ERR_INVALID && dr_last_error()[0], "NULL predict");
    error_clear();
    CHECK(diffusion_sample(&s, &o, &d, NULL, n, 1, scratch) == DR_ERR_INVALID && dr_last_error()[0], "NULL x");
    error_clear();
    CHECK(diffusion_sample(&s, &o, &d, x, n, 1, NULL) == DR_ERR_INVALID && dr_last_error()[0], "NULL scratch");
    error_clear();
    CHECK(diffusion_sample(&s, NULL, &d, x, n, 1, scratch) == DR_ERR_INVALID && dr_last_error()[0], "NULL options");
    error_clear();
    CHECK(diffusion_sample(&s, &o, &d, x, 0, 1, scratch) == DR_ERR_INVALID && dr_last_error()[0], "n = 0");
    noise_schedule empty = {0, NULL, NULL};
    error_clear();
    CHECK(diffusion_sample(&empty, &o, &d, x, n, 1, scratch) == DR_ERR_INVALID && dr_last_error()[0],
          "unbuilt schedule");
    /* A hand-made schedule whose alpha_bar does not decrease would make the
     * DDPM variance negative: rejected before any step. */
    double flat_beta[10], flat_ab[10];
    for (int t = 0; t < 10; t++) {
        flat_beta[t] = 0.1;
        flat_ab[t] = 0.5;
    }
    noise_schedule flat = {10, flat_beta, flat_ab};
    sample_options o10 = {DR_SAMPLER_DDPM, 5, DR_SPACING_TRAILING, 0, 1};
    error_clear();
    CHECK(diffusion_sample(&flat, &o10, &d, x, n, 1, scratch) == DR_ERR_INVALID && strstr(dr_last_error(), "alpha_bar"),
          "non-decreasing alpha_bar: '%s'", dr_last_error());
    CHECK(called == 0, "predict called %d times on invalid input", called);
    noise_schedule_free(&s);
    free(x);
    free(scratch);
}

int main(void) {
    test_schedule();
    test_timesteps();
    test_q_sample_v();
    test_oracle();
    test_mixture();
    test_ddpm_eps_form();
    test_ddim_edited_x0();
    test_dpmpp_steps();
    test_dpmpp_sde();
    test_determinism();
    test_hooks();
    test_invalid();
    return test_summary("test_diffusion");
}
