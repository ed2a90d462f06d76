/* imgproc_mask.c - random free-form hole masks for inpainting (see imgproc.h).
 *
 * Shapes follow the "irregular mask" generators of DeepFill v2 / Palette /
 * LaMa: random walks of a thick round brush (several vertices, random turns
 * and lengths, width relative to the image size), plus occasional filled
 * boxes. Sizes are relative to min(H, W), so the masks look alike from 8x8
 * to 4096x4096.
 *
 * To cover the whole [min_frac, max_frac] range rather than pile up at
 * min_frac, each attempt draws a target fraction uniformly in the range and
 * adds shapes until the hole reaches it. Every piece (a box, one segment of
 * a stroke) is measured before it is painted and dropped if it would push
 * the hole above max_frac, so the result never exceeds max_frac; the
 * attempt only fails if it cannot reach min_frac (a range too narrow for the
 * brush), and the next attempt uses a thinner brush. */
#include "imgproc/imgproc.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MASK_ATTEMPTS    6
#define MASK_MAX_SHAPES  1000 /* per attempt: bounds the time when shapes keep overlapping */
#define MASK_MAX_REJECTS 40   /* consecutive pieces refused for exceeding max_frac */

typedef struct {
    float *m;
    int H, W;
    int64_t count, max_count;
} canvas;

static const double k_pi = 3.14159265358979323846;

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Count the pixels of a box that are not yet holes; paint them if `paint`. */
static int64_t box_op(canvas *cv, int x0, int y0, int x1, int y1, int paint) {
    int64_t n = 0;
    for (int y = y0; y < y1; y++) {
        float *row = cv->m + (size_t)y * cv->W;
        for (int x = x0; x < x1; x++)
            if (row[x] == 0.0f) {
                n++;
                if (paint) row[x] = 1.0f;
            }
    }
    return n;
}

/* The same for a capsule: pixel centres within radius rad of the segment
 * (ax, ay)-(bx, by), i.e. a round brush dragged along it. */
static int64_t capsule_op(canvas *cv, double ax, double ay, double bx, double by, double rad, int paint) {
    const int x0 = clampi((int)floor(fmin(ax, bx) - rad - 0.5), 0, cv->W);
    const int x1 = clampi((int)ceil(fmax(ax, bx) + rad + 0.5), 0, cv->W);
    const int y0 = clampi((int)floor(fmin(ay, by) - rad - 0.5), 0, cv->H);
    const int y1 = clampi((int)ceil(fmax(ay, by) + rad + 0.5), 0, cv->H);
    const double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy, r2 = rad * rad;
    int64_t n = 0;
    for (int y = y0; y < y1; y++) {
        float *row = cv->m + (size_t)y * cv->W;
        const double py = y + 0.5 - ay;
        for (int x = x0; x < x1; x++) {
            if (row[x] != 0.0f) continue;
            const double px = x + 0.5 - ax;
            double t = len2 > 0.0 ? (px * dx + py * dy) / len2 : 0.0;
            t = t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
            const double ex = px - t * dx, ey = py - t * dy;
            if (ex * ex + ey * ey <= r2) {
                n++;
                if (paint) row[x] = 1.0f;
            }
        }
    }
    return n;
}

/* Mirror a coordinate back into [0, n] (the walk bounces off the borders). */
static double bounce(double v, double n, int *flipped) {
    *flipped = 0;
    if (v < 0.0) v = -v, *flipped = 1;
    if (v > n) v = 2.0 * n - v, *flipped = 1;
    return v < 0.0 ? 0.0 : v > n ? n : v;
}

/* Returns 1 if a piece was refused because it would exceed max_count. */
static int draw_box(canvas *cv, rng_state *rng, double size_scale) {
    const double fw = (0.1 + 0.3 * rng_uniform(rng)) * size_scale;
    const double fh = (0.1 + 0.3 * rng_uniform(rng)) * size_scale;
    int bw = (int)lround(fw * cv->W), bh = (int)lround(fh * cv->H);
    bw = clampi(bw, 1, cv->W);
    bh = clampi(bh, 1, cv->H);
    const int x0 = (int)rng_below(rng, (uint32_t)(cv->W - bw + 1));
    const int y0 = (int)rng_below(rng, (uint32_t)(cv->H - bh + 1));
    const int64_t n = box_op(cv, x0, y0, x0 + bw, y0 + bh, 0);
    if (cv->count + n > cv->max_count) return 1;
    box_op(cv, x0, y0, x0 + bw, y0 + bh, 1);
    cv->count += n;
    return 0;
}

static int draw_stroke(canvas *cv, rng_state *rng, double size_scale, int64_t target) {
    const double S = cv->H < cv->W ? cv->H : cv->W;
    double rad = 0.5 * S * (0.03 + 0.09 * rng_uniform(rng)) * size_scale;
    if (rad < 0.75) rad = 0.75; /* always covers the pixel under the brush */
    const int nseg = 4 + (int)rng_below(rng, 9);
    double x = rng_uniform(rng) * cv->W, y = rng_uniform(rng) * cv->H;
    double ang = 2.0 * k_pi * rng_uniform(rng);
    for (int s = 0; s < nseg && cv->count < target; s++) {
        /* Turn by up to +-110 degrees: winding strokes, not straight bars. */
        ang += (rng_uniform(rng) - 0.5) * 1.2 * k_pi;
        const double len = S * (0.05 + 0.2 * rng_uniform(rng));
        int fx, fy;
        const double nx = bounce(x + len * cos(ang), cv->W, &fx);
        const double ny = bounce(y + len * sin(ang), cv->H, &fy);
        if (fx) ang = k_pi - ang;
        if (fy) ang = -ang;
        const int64_t n = capsule_op(cv, x, y, nx, ny, rad, 0);
        if (cv->count + n > cv->max_count) return s == 0;
        capsule_op(cv, x, y, nx, ny, rad, 1);
        cv->count += n;
        x = nx, y = ny;
    }
    return 0;
}

/* One attempt from a cleared mask; deterministic in the rng state. */
static void mask_attempt(canvas *cv, rng_state *rng, int64_t min_count, double min_frac, double max_frac,
                         double size_scale) {
    const int64_t npix = (int64_t)cv->H * cv->W;
    memset(cv->m, 0, (size_t)npix * sizeof(float));
    cv->count = 0;
    const double tf = min_frac + (max_frac - min_frac) * rng_uniform(rng);
    int64_t target = (int64_t)ceil(tf * (double)npix);
    if (target < min_count) target = min_count;
    if (target > cv->max_count) target = cv->max_count;
    int rejects = 0;
    for (int shape = 0; shape < MASK_MAX_SHAPES && cv->count < target && rejects < MASK_MAX_REJECTS; shape++) {
        const int refused =
            rng_uniform(rng) < 0.2 ? draw_box(cv, rng, size_scale) : draw_stroke(cv, rng, size_scale, target);
        rejects = refused ? rejects + 1 : 0;
    }
}

double ip_random_mask(rng_state *rng, float *m, int H, int W, double min_frac, double max_frac) {
    if (!rng || !m || H < 1 || W < 1 || !(min_frac <= max_frac)) return -1.0;
    if (min_frac < 0.0) min_frac = 0.0;
    if (max_frac > 1.0) max_frac = 1.0;
    if (!(min_frac <= max_frac)) return -1.0; /* e.g. both above 1 or below 0 */
    const int64_t npix = (int64_t)H * W;
    canvas cv = {m, H, W, 0, (int64_t)floor(max_frac * (double)npix)};
    /* Never an empty hole (an inpainting loss averages over hole pixels). */
    int64_t min_count = (int64_t)ceil(min_frac * (double)npix);
    if (min_count < 1) min_count = 1;

    if (cv.max_count < 1) { /* max_frac allows no pixel at all */
        memset(m, 0, (size_t)npix * sizeof(float));
        return 0.0;
    }

    int best = -1;
    int64_t best_count = -1;
    rng_state starts[MASK_ATTEMPTS];
    double scales[MASK_ATTEMPTS];
    for (int a = 0; a < MASK_ATTEMPTS; a++) {
        starts[a] = *rng;
        scales[a] = a == 0 ? 1.0 : scales[a - 1] * 0.7;
        mask_attempt(&cv, rng, min_count, min_frac, max_frac, scales[a]);
        if (cv.count >= min_count) return (double)cv.count / (double)npix;
        if (cv.count > best_count) best = a, best_count = cv.count;
    }
    /* No attempt reached min_frac (it is within one brush dab of max_frac):
     * redraw the fullest one from its saved rng state instead of keeping a
     * second mask buffer, then leave the rng where the attempts left it. */
    if (best != MASK_ATTEMPTS - 1) {
        const rng_state after = *rng;
        *rng = starts[best];
        mask_attempt(&cv, rng, min_count, min_frac, max_frac, scales[best]);
        *rng = after;
    }
    return (double)cv.count / (double)npix;
}

/* ---- the "damage" generator (train --masks damage, issue 14 lever 4b) ----
 *
 * Masks shaped like the damage of old photos, four kinds of pieces:
 *   scratches and cracks  polylines 1..4 px wide (absolute, not relative:
 *                         real scratches are thin at any size), long and
 *                         nearly straight (scratch) or jagged (crack), each
 *                         vertex possibly starting a shorter branch;
 *   blotches and stains   irregular blobs: a star-shaped region whose radius
 *                         is R (1 + sum of 3 random harmonics of amplitude
 *                         <= 0.45 in total), R 4..20% of min(H, W);
 *   brush strokes         the legacy generator's thick random walks;
 *   boxes                 the legacy generator's filled boxes.
 * Each mask draws a dominant kind (scratch 30%, blotch 30%, brush 25%,
 * box 15%); each piece is the dominant kind with probability 0.6, else any
 * kind uniformly, so masks are mostly one kind of damage with some mixing.
 * The area follows the same rule as ip_random_mask: a target drawn
 * uniformly in [min_frac, max_frac], pieces added until it is reached, a
 * piece that would exceed max_frac refused, retries with smaller pieces. */

#define DMG_SCRATCH 0
#define DMG_BLOTCH  1
#define DMG_BRUSH   2
#define DMG_BOX     3

/* Count (and paint) the pixels of a blob not yet holes. */
static int64_t blob_op(canvas *cv, double cx, double cy, double R, const double *amp, const double *ph, int paint) {
    const double rmax = R * 1.45 + 1.0;
    const int x0 = clampi((int)floor(cx - rmax), 0, cv->W), x1 = clampi((int)ceil(cx + rmax), 0, cv->W);
    const int y0 = clampi((int)floor(cy - rmax), 0, cv->H), y1 = clampi((int)ceil(cy + rmax), 0, cv->H);
    int64_t n = 0;
    for (int y = y0; y < y1; y++) {
        float *row = cv->m + (size_t)y * cv->W;
        for (int x = x0; x < x1; x++) {
            if (row[x] != 0.0f) continue;
            const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
            const double th = atan2(dy, dx);
            double r = 1.0;
            for (int k = 0; k < 3; k++) r += amp[k] * sin((k + 2) * th + ph[k]);
            r *= R;
            if (r < 0.75) r = 0.75;
            if (dx * dx + dy * dy <= r * r) {
                n++;
                if (paint) row[x] = 1.0f;
            }
        }
    }
    return n;
}

static int draw_blotch(canvas *cv, rng_state *rng, double size_scale) {
    const double S = cv->H < cv->W ? cv->H : cv->W;
    const double R = S * (0.04 + 0.16 * rng_uniform(rng)) * size_scale;
    const double cx = rng_uniform(rng) * cv->W, cy = rng_uniform(rng) * cv->H;
    double amp[3], ph[3], total = 0.0;
    for (int k = 0; k < 3; k++) {
        amp[k] = rng_uniform(rng);
        ph[k] = 2.0 * k_pi * rng_uniform(rng);
        total += amp[k];
    }
    const double a = 0.45 * rng_uniform(rng) / (total > 0.0 ? total : 1.0);
    for (int k = 0; k < 3; k++) amp[k] *= a;
    const int64_t n = blob_op(cv, cx, cy, R < 0.75 ? 0.75 : R, amp, ph, 0);
    if (cv->count + n > cv->max_count) return 1;
    blob_op(cv, cx, cy, R < 0.75 ? 0.75 : R, amp, ph, 1);
    cv->count += n;
    return 0;
}

/* One polyline from (x, y) at angle ang; `depth` > 0 allows branches. */
static int draw_polyline(canvas *cv, rng_state *rng, double x, double y, double ang, double rad, double len_total,
                         double turn, int depth, int64_t target) {
    const int nseg = 3 + (int)rng_below(rng, 6);
    const double seg = len_total / nseg;
    for (int s = 0; s < nseg && cv->count < target; s++) {
        ang += (rng_uniform(rng) - 0.5) * turn;
        const double len = seg * (0.6 + 0.8 * rng_uniform(rng));
        const double nx = x + len * cos(ang), ny = y + len * sin(ang);
        const int64_t n = capsule_op(cv, x, y, nx, ny, rad, 0);
        if (cv->count + n > cv->max_count) return s == 0;
        capsule_op(cv, x, y, nx, ny, rad, 1);
        cv->count += n;
        x = nx, y = ny;
        if (x < -rad || y < -rad || x > cv->W + rad || y > cv->H + rad) break; /* left the image */
        if (depth > 0 && rng_uniform(rng) < 0.25) {
            const double side = rng_uniform(rng) < 0.5 ? -1.0 : 1.0;
            draw_polyline(cv, rng, x, y, ang + side * (0.3 + 0.6 * rng_uniform(rng)) * k_pi / 2,
                          rad > 0.75 ? rad * 0.75 : rad, len_total * (0.2 + 0.3 * rng_uniform(rng)), turn, depth - 1,
                          target);
        }
    }
    return 0;
}

static int draw_scratch(canvas *cv, rng_state *rng, int64_t target) {
    const double S = cv->H < cv->W ? cv->H : cv->W;
    const int width = 1 + (int)rng_below(rng, 4);             /* 1..4 px */
    const double rad = 0.5 * width < 0.5 ? 0.5 : 0.5 * width; /* centres within w/2: w px across */
    const int crack = rng_uniform(rng) < 0.5;
    const double len = S * (crack ? 0.3 + 0.6 * rng_uniform(rng) : 0.5 + 1.0 * rng_uniform(rng));
    const double x = rng_uniform(rng) * cv->W, y = rng_uniform(rng) * cv->H;
    const double ang = 2.0 * k_pi * rng_uniform(rng);
    return draw_polyline(cv, rng, x, y, ang, rad, len, crack ? 0.9 * k_pi : 0.12 * k_pi, crack ? 2 : 1, target);
}

static int pick_kind(rng_state *rng) {
    const double u = rng_uniform(rng);
    return u < 0.30 ? DMG_SCRATCH : u < 0.60 ? DMG_BLOTCH : u < 0.85 ? DMG_BRUSH : DMG_BOX;
}

static void damage_attempt(canvas *cv, rng_state *rng, int64_t min_count, double min_frac, double max_frac,
                           double size_scale, unsigned *kinds) {
    const int64_t npix = (int64_t)cv->H * cv->W;
    memset(cv->m, 0, (size_t)npix * sizeof(float));
    cv->count = 0;
    *kinds = 0;
    const double tf = min_frac + (max_frac - min_frac) * rng_uniform(rng);
    int64_t target = (int64_t)ceil(tf * (double)npix);
    if (target < min_count) target = min_count;
    if (target > cv->max_count) target = cv->max_count;
    const int dominant = pick_kind(rng);
    int rejects = 0;
    for (int shape = 0; shape < MASK_MAX_SHAPES && cv->count < target && rejects < MASK_MAX_REJECTS; shape++) {
        const int kind = rng_uniform(rng) < 0.6 ? dominant : (int)rng_below(rng, 4);
        const int64_t before = cv->count;
        int refused;
        switch (kind) {
        case DMG_SCRATCH: refused = draw_scratch(cv, rng, target); break;
        case DMG_BLOTCH: refused = draw_blotch(cv, rng, size_scale); break;
        case DMG_BRUSH: refused = draw_stroke(cv, rng, size_scale, target); break;
        default: refused = draw_box(cv, rng, size_scale); break;
        }
        if (cv->count > before) *kinds |= 1u << kind;
        rejects = refused ? rejects + 1 : 0;
    }
}

double ip_damage_mask(rng_state *rng, float *m, int H, int W, double min_frac, double max_frac, unsigned *kinds) {
    unsigned k_dummy;
    if (!kinds) kinds = &k_dummy;
    *kinds = 0;
    if (!rng || !m || H < 1 || W < 1 || !(min_frac <= max_frac)) return -1.0;
    if (min_frac < 0.0) min_frac = 0.0;
    if (max_frac > 1.0) max_frac = 1.0;
    if (!(min_frac <= max_frac)) return -1.0;
    const int64_t npix = (int64_t)H * W;
    canvas cv = {m, H, W, 0, (int64_t)floor(max_frac * (double)npix)};
    int64_t min_count = (int64_t)ceil(min_frac * (double)npix);
    if (min_count < 1) min_count = 1;
    if (cv.max_count < 1) {
        memset(m, 0, (size_t)npix * sizeof(float));
        return 0.0;
    }
    int best = -1;
    int64_t best_count = -1;
    rng_state starts[MASK_ATTEMPTS];
    double scales[MASK_ATTEMPTS];
    for (int a = 0; a < MASK_ATTEMPTS; a++) {
        starts[a] = *rng;
        scales[a] = a == 0 ? 1.0 : scales[a - 1] * 0.7;
        damage_attempt(&cv, rng, min_count, min_frac, max_frac, scales[a], kinds);
        if (cv.count >= min_count) return (double)cv.count / (double)npix;
        if (cv.count > best_count) best = a, best_count = cv.count;
    }
    if (best != MASK_ATTEMPTS - 1) { /* as ip_random_mask: redraw the fullest attempt */
        const rng_state after = *rng;
        *rng = starts[best];
        damage_attempt(&cv, rng, min_count, min_frac, max_frac, scales[best], kinds);
        *rng = after;
    }
    return (double)cv.count / (double)npix;
}
