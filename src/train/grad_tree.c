/* grad_tree.c - one training step's gradient: a fixed tree over micro-batches
 *
 * The batch of B is cut into K = B / M micro-batches of M samples. A leaf
 * g(k, k + 1) is micro-batch k's gradient: its own forward and backward into
 * a zeroed buffer. Above the leaves, g(lo, hi) = g(lo, mid) + g(mid, hi) with
 * mid = lo + (hi - lo) / 2, and the batch's gradient is g(0, K), whoever
 * computes it. Alone, the whole tree is computed here. With N ranks (N <= K),
 * rank r owns micro-batches [r K / N, (r + 1) K / N); the "cover" nodes are
 * the largest subtrees inside one rank's range. Each rank computes its cover
 * nodes; the ranks exchange slice j of every cover node with rank j
 * (alltoallv: a reduce-scatter), rank j adds up the tree above the cover on
 * its slice, and an allgatherv spreads the slices. Every node is the same
 * float additions in the same order (and a + b == b + a), so any N gives one
 * process's gradient bit for bit. The exchange moves each parameter about
 * twice, as a ring all-reduce does, when every rank's range is one node (N a
 * power of 2 dividing K); otherwise a rank sends a few nodes. */

#include "train/grad_tree.h"

#include "common/error.h"
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int rank_lo(int r, int N, int K) { return (int)((long long)r * K / N); }
/* rank r's first sample (r = N: B) */
static int rank_sample(const grad_tree *g, int r) { return rank_lo(r, g->N, g->K) * g->M; }
static int tree_height(int n) { return n <= 1 ? 0 : 1 + tree_height(n - n / 2); }
static size_t slice_lo(const grad_tree *g, int j) { return (size_t)((unsigned long long)j * g->n / g->N); }

static int cover_walk(grad_tree *g, int lo, int hi) {
    for (int r = 0; r < g->N; r++)
        if (rank_lo(r, g->N, g->K) <= lo && hi <= rank_lo(r + 1, g->N, g->K)) {
            g->cover[g->n_cover++] = (cover_node){lo, hi, r, g->n_owned[r]++};
            return 0;
        }
    const int mid = lo + (hi - lo) / 2;
    cover_walk(g, lo, mid);
    cover_walk(g, mid, hi);
    return 0;
}

void grad_tree_free(grad_tree *g) {
    if (g->gbuf)
        for (int d = 1; d <= g->height; d++) free(g->gbuf[d]);
    if (g->sbuf)
        for (int d = 0; d <= g->height; d++) free(g->sbuf[d]);
    free(g->gbuf);
    free(g->sbuf);
    free(g->cover);
    free(g->n_owned);
    free(g->send);
    free(g->recv);
    free(g->sb);
    free(g->sd);
    free(g->rb);
    free(g->rd);
    free(g->xb);
    free(g->xd);
    free(g->dex);
    memset(g, 0, sizeof *g);
}

int grad_tree_build(grad_tree *g, const dr_train_comm *comm, int B, int M, float *grads, size_t n) {
    memset(g, 0, sizeof *g);
    g->comm = comm && comm->size > 1 ? comm : NULL;
    g->N = g->comm ? comm->size : 1;
    g->rank = g->comm ? comm->rank : 0;
    g->B = B;
    g->M = M;
    g->K = B / M;
    g->n = n;
    if (M < 1 || B % M != 0)
        return error_set(DR_ERR_INVALID, "train: the batch %d is not a multiple of the micro-batch %d", B, M);
    if (g->N > g->K)
        return error_set(
            DR_ERR_INVALID,
            "train: %d ranks, but a batch of %d has only %d micro-batches of %d: every rank needs at least one "
            "(a smaller --micro-batch or a larger --batch; the run's result depends on both, not on the ranks)",
            g->N, B, g->K, M);
    g->lo = rank_sample(g, g->rank);
    g->hi = rank_sample(g, g->rank + 1);
    g->height = tree_height(g->K);
    g->cover = calloc((size_t)2 * g->K, sizeof *g->cover);
    g->n_owned = calloc((size_t)g->N, sizeof *g->n_owned);
    g->gbuf = calloc((size_t)g->height + 1, sizeof *g->gbuf);
    g->dex = malloc(sizeof(double) * (3 * (size_t)B + 2 * (size_t)g->N));
    g->xb = malloc(sizeof(size_t) * g->N);
    g->xd = malloc(sizeof(size_t) * g->N);
    if (!g->cover || !g->n_owned || !g->gbuf || !g->dex || !g->xb || !g->xd) goto nomem;
    cover_walk(g, 0, g->K);
    g->gbuf[0] = grads;
    for (int d = 1; d <= g->height; d++)
        if (!(g->gbuf[d] = malloc(sizeof(float) * n))) goto nomem;
    if (g->N > 1) {
        const int mine = g->n_owned[g->rank];
        const size_t my_slice = slice_lo(g, g->rank + 1) - slice_lo(g, g->rank);
        g->sbuf = calloc((size_t)g->height + 1, sizeof *g->sbuf);
        g->sb = malloc(sizeof(size_t) * g->N);
        g->sd = malloc(sizeof(size_t) * g->N);
        g->rb = malloc(sizeof(size_t) * g->N);
        g->rd = malloc(sizeof(size_t) * g->N);
        g->send = malloc(sizeof(float) * n * mine);
        g->recv = malloc(sizeof(float) * my_slice * g->n_cover);
        if (!g->sbuf || !g->sb || !g->sd || !g->rb || !g->rd || !g->send || !g->recv) goto nomem;
        for (int d = 0; d <= g->height; d++)
            if (!(g->sbuf[d] = malloc(sizeof(float) * (my_slice ? my_slice : 1)))) goto nomem;
        size_t so = 0, ro = 0;
        for (int j = 0; j < g->N; j++) {
            g->sb[j] = sizeof(float) * (slice_lo(g, j + 1) - slice_lo(g, j)) * mine;
            g->sd[j] = so;
            so += g->sb[j];
            g->rb[j] = sizeof(float) * my_slice * g->n_owned[j];
            g->rd[j] = ro;
            ro += g->rb[j];
        }
    }
    return DR_OK;
nomem:
    grad_tree_free(g);
    return error_set(DR_ERR_NOMEM, "out of memory for the gradient buffers of a batch of %d", B);
}

/* Every rank's doubles: rank r gives head + k * (its samples) of them, its
 * head values first. heads[r * head + i], per[b * k + i] for every sample b. */
int exchange_doubles(grad_tree *g, const double *mine, int head, int k, double *heads, double *per) {
    const int nb = g->hi - g->lo;
    if (!g->comm) {
        memcpy(heads, mine, sizeof(double) * head);
        memcpy(per, mine + head, sizeof(double) * k * nb);
        return DR_OK;
    }
    size_t *cnt = g->xb, *dsp = g->xd, off = 0;
    for (int r = 0; r < g->N; r++) {
        cnt[r] = sizeof(double) * (head + (size_t)k * (rank_sample(g, r + 1) - rank_sample(g, r)));
        dsp[r] = off;
        off += cnt[r];
    }
    const int rc = g->comm->allgatherv(mine, g->dex, cnt, dsp, g->comm->user);
    if (rc != 0) return error_set(DR_ERR_IO, "train: exchanging the step's numbers between ranks failed");
    for (int r = 0; r < g->N; r++) {
        const double *src = g->dex + dsp[r] / sizeof(double);
        const int rlo = rank_sample(g, r), rn = rank_sample(g, r + 1) - rlo;
        memcpy(heads + (size_t)r * head, src, sizeof(double) * head);
        memcpy(per + (size_t)rlo * k, src + head, sizeof(double) * k * rn);
    }
    return DR_OK;
}

/* Sample b's generated pixels (the loss counts them, times the channels). */
double train_sample_count(const train_batch *bb, int b) {
    double c = 0;
    for (size_t i = 0; i < bb->np; i++) c += bb->gen[(size_t)b * bb->np + i];
    return c;
}

/* Sample b's weighted squared error sum, and its dy = d loss / d y, the
 * loss being the batch's sum over count (as loss_and_grad). */
static double sample_loss(train_batch *bb, int b, double count) {
    const int out = bb->st->info.cfg.out_channels;
    const size_t np = bb->np;
    const double wb = bb->w[b];
    double sum = 0;
    for (int c = 0; c < out; c++) {
        const size_t o = ((size_t)b * out + c) * np;
        for (size_t i = 0; i < np; i++) {
            const double g = wb * bb->gen[(size_t)b * np + i];
            const double d = (double)bb->y[o + i] - bb->target[o + i];
            sum += g * d * d;
            bb->dy[o + i] = (float)(2.0 * g * d / count);
        }
    }
    return sum;
}

/* Leaf: micro-batch k's gradient into gr (zeroed first), by its own forward
 * and backward (the run is planned for M samples). */
static int leaf_grad(grad_tree *g, leaf_ctx *c, int k, float *gr) {
    train_batch *bb = c->bb;
    const train_state *st = c->st;
    const size_t in = (size_t)st->info.cfg.in_channels * bb->np, out = (size_t)st->info.cfg.out_channels * bb->np;
    const size_t b0 = (size_t)k * g->M;
    memset(gr, 0, sizeof(float) * g->n);
    bb->run.sample0 = (int)b0; /* the dropout mask follows the sample, not the micro-batch */
    DR_TRY(unet_forward(&bb->run, &st->L, st->params, bb->x_in + b0 * in, bb->t + b0, bb->y + b0 * out));
    for (int b = (int)b0; b < (int)b0 + g->M; b++) c->loss_b[b] = sample_loss(bb, b, c->count);
    return unet_backward(&bb->run, &st->L, st->params, gr, bb->dy + b0 * out, NULL);
}

/* g(lo, hi) into gbuf[d]; the right half uses gbuf[d + 1]. */
static int node_grad(grad_tree *g, leaf_ctx *c, int lo, int hi, int d) {
    if (hi - lo == 1) return leaf_grad(g, c, lo, g->gbuf[d]);
    const int mid = lo + (hi - lo) / 2;
    DR_TRY(node_grad(g, c, lo, mid, d));
    DR_TRY(node_grad(g, c, mid, hi, d + 1));
    accumulate(g->gbuf[d], g->gbuf[d + 1], g->n);
    return DR_OK;
}

/* g(lo, hi) on this rank's slice into sbuf[d], from the received cover nodes. */
static void top_sum(grad_tree *g, int lo, int hi, int d) {
    const size_t len = slice_lo(g, g->rank + 1) - slice_lo(g, g->rank);
    for (int i = 0; i < g->n_cover; i++) {
        const cover_node *cn = &g->cover[i];
        if (cn->lo == lo && cn->hi == hi) {
            memcpy(g->sbuf[d], g->recv + g->rd[cn->owner] / sizeof(float) + (size_t)cn->index * len,
                   sizeof(float) * len);
            return;
        }
    }
    const int mid = lo + (hi - lo) / 2;
    top_sum(g, lo, mid, d);
    top_sum(g, mid, hi, d + 1);
    float *a = g->sbuf[d];
    const float *b = g->sbuf[d + 1];
    for (size_t k = 0; k < len; k++) a[k] += b[k];
}

/* The batch's gradient g(0, B) into gbuf[0] (st->grads) on every rank;
 * c->loss_b filled for this rank's samples. */
int tree_grad(grad_tree *g, leaf_ctx *c) {
    if (!g->comm) return node_grad(g, c, 0, g->K, 0);
    for (int i = 0; i < g->n_cover; i++) {
        const cover_node *cn = &g->cover[i];
        if (cn->owner != g->rank) continue;
        DR_TRY(node_grad(g, c, cn->lo, cn->hi, 0));
        for (int j = 0; j < g->N; j++) {
            const size_t s0 = slice_lo(g, j), len = slice_lo(g, j + 1) - s0;
            memcpy(g->send + g->sd[j] / sizeof(float) + (size_t)cn->index * len, g->gbuf[0] + s0, sizeof(float) * len);
        }
    }
    const double t0 = now_sec();
    if (g->comm->alltoallv(g->send, g->sb, g->sd, g->recv, g->rb, g->rd, g->comm->user) != 0)
        return error_set(DR_ERR_IO, "train: exchanging gradients between ranks failed (alltoallv)");
    top_sum(g, 0, g->K, 0);
    for (int j = 0; j < g->N; j++) {
        g->xb[j] = sizeof(float) * (slice_lo(g, j + 1) - slice_lo(g, j));
        g->xd[j] = sizeof(float) * slice_lo(g, j);
    }
    if (g->comm->allgatherv(g->sbuf[0], g->gbuf[0], g->xb, g->xd, g->comm->user) != 0)
        return error_set(DR_ERR_IO, "train: exchanging gradients between ranks failed (allgatherv)");
    g->reduce_sec = now_sec() - t0;
    return DR_OK;
}
