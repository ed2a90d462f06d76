/*
 * unet.c - run the op list of layout.c forward and backward.
 *
 * Memory: every tensor and every op's cache lives in one activation block.
 * Training keeps them all (the backward reads them). Inference plans the
 * tensors' lifetimes (first fit, freeing a tensor after its last reader) and
 * gives all ops one shared cache region, so a forward holds the skip stack
 * plus a few working tensors, never the whole graph.
 */
#include "unet/unet.h"

#include "common/error.h"
#include "nn/nn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16 /* 64-byte alignment for each buffer */

static size_t align_up(size_t n) { return (n + ALIGN_FLOATS - 1) & ~(size_t)(ALIGN_FLOATS - 1); }

static size_t tensor_floats(const unet_layout *L, const unet_run *R, int id) {
    const unet_tensor *t = &L->tensors[id];
    return (size_t)R->B * t->c * (size_t)(R->H >> t->shift) * (size_t)(R->W >> t->shift);
}

/* The pieces of an op's cache, in floats (B included). */
typedef struct {
    size_t mean1, rstd1, a1, h, tb, mean2, rstd2, a2, sk, total; /* RES */
} res_cache;
typedef struct {
    size_t mean, rstd, n, qkv, att, o, total; /* ATTN */
} attn_cache;

static res_cache res_cache_layout(int B, int G, int cin, int cout, size_t hw) {
    res_cache c;
    size_t o = 0;
    c.mean1 = o;
    o += align_up((size_t)B * G);
    c.rstd1 = o;
    o += align_up((size_t)B * G);
    c.a1 = o;
    o += align_up((size_t)B * cin * hw);
    c.h = o;
    o += align_up((size_t)B * cout * hw);
    c.tb = o;
    o += align_up((size_t)B * cout);
    c.mean2 = o;
    o += align_up((size_t)B * G);
    c.rstd2 = o;
    o += align_up((size_t)B * G);
    c.a2 = o;
    o += align_up((size_t)B * cout * hw);
    c.sk = o;
    o += cin != cout ? align_up((size_t)B * cout * hw) : 0;
    c.total = o;
    return c;
}

static attn_cache attn_cache_layout(int B, int G, int c, size_t hw, int train) {
    attn_cache a;
    size_t o = 0;
    a.mean = o;
    o += align_up((size_t)B * G);
    a.rstd = o;
    o += align_up((size_t)B * G);
    a.n = o;
    o += align_up((size_t)B * c * hw);
    a.qkv = o;
    o += align_up((size_t)B * 3 * c * hw);
    a.att = o;
    o += train ? align_up((size_t)B * hw * hw) : 0;
    a.o = o;
    o += align_up((size_t)B * c * hw);
    a.total = o;
    return a;
}

static size_t op_hw(const unet_layout *L, const unet_run *R, int tensor) {
    int s = L->tensors[tensor].shift;
    return (size_t)(R->H >> s) * (size_t)(R->W >> s);
}

static size_t op_cache_floats(const unet_layout *L, const unet_run *R, const unet_op *op) {
    const int G = L->cfg.groups;
    switch (op->kind) {
    case UOP_RES: {
        const unet_res *r = &L->res[op->block];
        return res_cache_layout(R->B, G, r->cin, r->cout, op_hw(L, R, op->in)).total;
    }
    case UOP_ATTN: return attn_cache_layout(R->B, G, L->attn[op->block].c, op_hw(L, R, op->in), R->train).total;
    case UOP_GNSILU: return 2 * align_up((size_t)R->B * G);
    default: return 0;
    }
}

static conv2d_dims conv_dims(int B, int cin, int h, int w, int cout, int k, int stride) {
    conv2d_dims d = {B, cin, h, w, cout, k, stride};
    return d;
}

/* Scratch: conv/attention workspace, then (training) three backward temporaries. */
static void scratch_needs(const unet_layout *L, const unet_run *R, size_t *work, size_t *btmp) {
    size_t ws = 0, bt = 0;
    for (int i = 0; i < L->n_ops; i++) {
        const unet_op *op = &L->ops[i];
        const int s = L->tensors[op->in].shift, h = R->H >> s, w = R->W >> s;
        const size_t hw = (size_t)h * w;
        conv2d_dims d[4];
        int nd = 0;
        if (op->kind == UOP_CONV) {
            d[nd++] = conv_dims(R->B, L->tensors[op->in].c, h, w, L->tensors[op->out].c, op->k, op->stride);
        } else if (op->kind == UOP_RES) {
            const unet_res *r = &L->res[op->block];
            d[nd++] = conv_dims(R->B, r->cin, h, w, r->cout, 3, 1);
            d[nd++] = conv_dims(R->B, r->cout, h, w, r->cout, 3, 1);
            d[nd++] = conv_dims(R->B, r->cin, h, w, r->cout, 1, 1);
            size_t m = (size_t)R->B * (r->cin > r->cout ? r->cin : r->cout) * hw;
            if (3 * align_up(m) + align_up((size_t)R->B * r->cout) > bt)
                bt = 3 * align_up(m) + align_up((size_t)R->B * r->cout);
        } else if (op->kind == UOP_ATTN) {
            const int c = L->attn[op->block].c;
            d[nd++] = conv_dims(R->B, c, h, w, 3 * c, 1, 1);
            d[nd++] = conv_dims(R->B, c, h, w, c, 1, 1);
            size_t a = R->train ? attention_backward_scratch(c, (int)hw) : attention_forward_scratch(c, (int)hw);
            if (a > ws) ws = a;
            size_t m = 5 * align_up((size_t)R->B * c * hw); /* do, dqkv (3c), dn */
            if (m > bt) bt = m;
        }
        for (int j = 0; j < nd; j++) {
            size_t f = conv2d_forward_scratch(&d[j]);
            if (R->train) {
                size_t bk = conv2d_backward_scratch(&d[j]);
                if (bk > f) f = bk;
            }
            if (f > ws) ws = f;
        }
    }
    *work = align_up(ws);
    *btmp = R->train ? bt : 0;
}

/* First-fit placement of tensors by lifetime (inference). */
typedef struct {
    size_t off, size;
    int tensor;
} live_span;

static int plan_inference(const unet_layout *L, unet_run *R, size_t *total) {
    const int nt = L->n_tensors;
    int *last = malloc(sizeof(int) * nt);
    live_span *live = malloc(sizeof(live_span) * nt);
    if (!last || !live) {
        free(last);
        free(live);
        return error_set(DR_ERR_NOMEM, "out of memory planning the U-Net");
    }
    for (int i = 0; i < nt; i++) last[i] = -1;
    for (int i = 0; i < L->n_ops; i++) {
        last[L->ops[i].in] = i;
        if (L->ops[i].in2 >= 0) last[L->ops[i].in2] = i;
    }
    int nlive = 0;
    size_t peak = 0;
    for (int i = 0; i < L->n_ops; i++) {
        const unet_op *op = &L->ops[i];
        if (op->out != nt - 1) { /* y is the caller's buffer */
            size_t need = align_up(tensor_floats(L, R, op->out)), at = 0;
            /* live is sorted by offset: find the first gap that fits */
            int pos = 0;
            for (; pos < nlive; pos++) {
                if (live[pos].off >= at + need) break;
                at = live[pos].off + live[pos].size;
            }
            memmove(&live[pos + 1], &live[pos], sizeof(live_span) * (nlive - pos));
            live[pos].off = at;
            live[pos].size = need;
            live[pos].tensor = op->out;
            nlive++;
            R->toff[op->out] = at;
            if (at + need > peak) peak = at + need;
        }
        for (int j = 0; j < nlive; j++) { /* free tensors read for the last time */
            if (last[live[j].tensor] == i) {
                memmove(&live[j], &live[j + 1], sizeof(live_span) * (nlive - j - 1));
                nlive--;
                j--;
            }
        }
    }
    size_t cache = 0;
    for (int i = 0; i < L->n_ops; i++) {
        size_t c = op_cache_floats(L, R, &L->ops[i]);
        if (c > cache) cache = c;
    }
    for (int i = 0; i < L->n_ops; i++) R->cacheoff[i] = peak;
    *total = peak + cache;
    free(last);
    free(live);
    return DR_OK;
}

void unet_run_free(unet_run *R) {
    if (!R) return;
    free(R->toff);
    free(R->cacheoff);
    free(R->act);
    free(R->grad);
    free(R->scratch);
    free(R->emb);
    free(R->demb);
    memset(R, 0, sizeof *R);
}

size_t unet_run_bytes(const unet_run *R) {
    size_t n = R->act_floats + R->scratch_floats;
    if (R->grad) n += R->grad_floats;
    return n * sizeof(float);
}

int unet_run_build(unet_run *R, const unet_layout *L, int B, int H, int W, int train) {
    memset(R, 0, sizeof *R);
    const int f = 1 << (L->cfg.n_levels - 1);
    if (B < 1 || H < f || W < f || H % f || W % f)
        return error_set(DR_ERR_INVALID, "U-Net input %dx%d (batch %d): H and W must be positive multiples of %d", H, W,
                         B, f);
    if ((int64_t)H * W > (int64_t)1 << 26)
        return error_set(DR_ERR_LIMIT, "U-Net input %dx%d is too large for one pass (tile it)", H, W);
    R->B = B;
    R->H = H;
    R->W = W;
    R->train = train;
    R->threads = nn_threads();
    R->toff = malloc(sizeof(size_t) * L->n_tensors);
    R->cacheoff = malloc(sizeof(size_t) * L->n_ops);
    if (!R->toff || !R->cacheoff) goto nomem;
    for (int i = 0; i < L->n_tensors; i++) R->toff[i] = UNET_NO_PARAM;
    size_t total = 0;
    if (train) {
        for (int i = 1; i < L->n_tensors - 1; i++) {
            R->toff[i] = total;
            total += align_up(tensor_floats(L, R, i));
        }
        R->grad_floats = total; /* the caches after the tensors have no gradient */
        for (int i = 0; i < L->n_ops; i++) {
            R->cacheoff[i] = total;
            total += op_cache_floats(L, R, &L->ops[i]);
        }
    } else {
        int rc = plan_inference(L, R, &total);
        if (rc != DR_OK) {
            unet_run_free(R);
            return rc;
        }
    }
    R->act_floats = total;
    size_t work, btmp;
    scratch_needs(L, R, &work, &btmp);
    R->scratch_floats = work + btmp;
    const size_t E = (size_t)B * 4 * L->cfg.base_channels;
    R->act = malloc(sizeof(float) * (total ? total : 1));
    R->scratch = malloc(sizeof(float) * (R->scratch_floats ? R->scratch_floats : 1));
    R->emb = malloc(sizeof(float) * 5 * E);
    if (!R->act || !R->scratch || !R->emb) goto nomem;
    if (train) {
        R->grad = malloc(sizeof(float) * (R->grad_floats ? R->grad_floats : 1));
        R->demb = malloc(sizeof(float) * 3 * E);
        if (!R->grad || !R->demb) goto nomem;
    }
    return DR_OK;
nomem:
    unet_run_free(R);
    return error_set(DR_ERR_NOMEM, "out of memory for U-Net activations (%dx%d, batch %d)", H, W, B);
}

/* ------------------------------------------------------------------ forward */

static float *tensor_ptr(const unet_layout *L, unet_run *R, int id) {
    if (id == 0) return (float *)R->x;
    if (id == L->n_tensors - 1) return R->y;
    return R->act + R->toff[id];
}

/* ------------------------------------------------------------------ dropout */

static uint64_t mix64(uint64_t z) { /* splitmix64's finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The stream of (seed, global sample, block); element i's draw is its
 * (i + 1)-th splitmix64 output, so no mask is ever stored. */
static uint64_t dropout_stream(uint64_t seed, int sample, int block) {
    const uint64_t k = mix64(seed ^ 0x64726f706f7574ULL) ^ ((uint64_t)(uint32_t)sample * 0xd1342543de82ef95ULL);
    return mix64(mix64(k) ^ ((uint64_t)(uint32_t)block * 0xaf251af3b0f025b5ULL));
}

static uint64_t dropout_threshold(float p) { return (uint64_t)((double)p * 4294967296.0); }

static int dropout_keep_in(uint64_t stream, size_t elem, uint64_t thr) {
    return (mix64(stream + (uint64_t)(elem + 1) * 0x9e3779b97f4a7c15ULL) >> 32) >= thr;
}

int unet_dropout_keep(uint64_t seed, int sample, int block, size_t elem, float p) {
    return dropout_keep_in(dropout_stream(seed, sample, block), elem, dropout_threshold(p));
}

/* a [B, n] (n = C x hw per sample): a *= keep / (1 - p), elementwise. The
 * forward applies it to a2, the backward to d a2 (the same mask). */
static void dropout_apply(const unet_run *R, float *a, int block, size_t n) {
    const uint64_t thr = dropout_threshold(R->dropout);
    const float scale = 1.0f / (1.0f - R->dropout);
    const int B = R->B;
    const size_t chunk = 4096, nch = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (long long j = 0; j < (long long)B * (long long)nch; j++) {
        const int b = (int)(j / (long long)nch);
        const size_t lo = (size_t)(j % (long long)nch) * chunk, hi = lo + chunk < n ? lo + chunk : n;
        const uint64_t st = dropout_stream(R->dropout_seed, R->sample0 + b, block);
        float *ab = a + (size_t)b * n;
        for (size_t i = lo; i < hi; i++) ab[i] = dropout_keep_in(st, i, thr) ? ab[i] * scale : 0.0f;
    }
}

const float *unet_res_a2(const unet_run *R, const unet_layout *L, int i) {
    if (!R->train || i < 0 || i >= L->n_ops || L->ops[i].kind != UOP_RES) return NULL;
    const unet_res *r = &L->res[L->ops[i].block];
    const res_cache k = res_cache_layout(R->B, L->cfg.groups, r->cin, r->cout, op_hw(L, R, L->ops[i].in));
    return R->act + R->cacheoff[i] + k.a2;
}

/* ------------------------------------------------------------------ ResBlock */

static void res_forward(unet_run *R, const unet_layout *L, const float *P, const unet_op *op) {
    const unet_res *r = &L->res[op->block];
    const int B = R->B, G = L->cfg.groups, s = L->tensors[op->in].shift;
    const int h = R->H >> s, w = R->W >> s, E = 4 * L->cfg.base_channels;
    const size_t hw = (size_t)h * w;
    const float *x = tensor_ptr(L, R, op->in); // [B, cin, h, w]
    float *out = tensor_ptr(L, R, op->out);    // [B, cout, h, w]
    float *c = R->act + R->cacheoff[op - L->ops];
    res_cache k = res_cache_layout(B, G, r->cin, r->cout, hw);
    const float *semb = R->emb + 4 * (size_t)B * E; // silu(emb) [B, E]
    conv2d_dims d1 = conv_dims(B, r->cin, h, w, r->cout, 3, 1);
    conv2d_dims d2 = conv_dims(B, r->cout, h, w, r->cout, 3, 1);
    NN_TIMED(NN_PROF_NORM,
             groupnorm_forward(c + k.a1, c + k.mean1, c + k.rstd1, x, P + r->norm1.w, P + r->norm1.b, B, r->cin,
                               (int)hw, G, 1)); // a1 = silu(norm1(x)) [B, cin, hw]
    NN_TIMED(NN_PROF_CONV,
             conv2d_forward(c + k.h, c + k.a1, P + r->conv1.w, P + r->conv1.b, &d1, R->scratch)); // h [B, cout, hw]
    NN_TIMED(NN_PROF_LINEAR,
             linear_forward(c + k.tb, semb, P + r->temb.w, P + r->temb.b, B, E, r->cout)); // tb [B, cout]
    add_channel_bias_forward(c + k.h, c + k.tb, B, r->cout, (int)hw);                      // h += tb[:, :, None]
    NN_TIMED(NN_PROF_NORM,
             groupnorm_forward(c + k.a2, c + k.mean2, c + k.rstd2, c + k.h, P + r->norm2.w, P + r->norm2.b, B, r->cout,
                               (int)hw, G, 1)); // a2 = silu(norm2(h))
    if (R->train && R->dropout > 0)
        dropout_apply(R, c + k.a2, op->block, (size_t)r->cout * hw); // a2 = dropout(a2), kept for conv2's backward
    NN_TIMED(NN_PROF_CONV,
             conv2d_forward(out, c + k.a2, P + r->conv2.w, P + r->conv2.b, &d2, R->scratch)); // out = conv2(a2)
    if (r->skip.w != UNET_NO_PARAM) {
        conv2d_dims ds = conv_dims(B, r->cin, h, w, r->cout, 1, 1);
        NN_TIMED(NN_PROF_CONV,
                 conv2d_forward(c + k.sk, x, P + r->skip.w, P + r->skip.b, &ds, R->scratch)); // sk [B, cout, hw]
        add_forward(out, out, c + k.sk, (size_t)B * r->cout * hw);                            // out += skip(x)
    } else {
        add_forward(out, out, x, (size_t)B * r->cout * hw); // out += x
    }
}

static void attn_forward_op(unet_run *R, const unet_layout *L, const float *P, const unet_op *op) {
    const unet_attn *a = &L->attn[op->block];
    const int B = R->B, G = L->cfg.groups, s = L->tensors[op->in].shift, c = a->c;
    const int h = R->H >> s, w = R->W >> s, N = h * w;
    const float *x = tensor_ptr(L, R, op->in); // [B, c, N]
    float *out = tensor_ptr(L, R, op->out);    // [B, c, N]
    float *cc = R->act + R->cacheoff[op - L->ops];
    attn_cache k = attn_cache_layout(B, G, c, (size_t)N, R->train);
    conv2d_dims dq = conv_dims(B, c, h, w, 3 * c, 1, 1), dp = conv_dims(B, c, h, w, c, 1, 1);
    NN_TIMED(NN_PROF_NORM,
             groupnorm_forward(cc + k.n, cc + k.mean, cc + k.rstd, x, P + a->norm.w, P + a->norm.b, B, c, N, G, 0));
    NN_TIMED(NN_PROF_CONV,
             conv2d_forward(cc + k.qkv, cc + k.n, P + a->qkv.w, P + a->qkv.b, &dq, R->scratch)); // qkv [B, 3c, N]
    NN_TIMED(NN_PROF_ATTN,
             attention_forward(cc + k.o, R->train ? cc + k.att : NULL, cc + k.qkv, B, c, N, R->scratch)); // o [B, c, N]
    NN_TIMED(NN_PROF_CONV, conv2d_forward(out, cc + k.o, P + a->proj.w, P + a->proj.b, &dp, R->scratch)); // proj(o)
    add_forward(out, out, x, (size_t)B * c * N); // out = x + proj(o)
}

static void time_embed_forward(unet_run *R, const unet_layout *L, const float *P, const float *t) {
    const int B = R->B, C = L->cfg.base_channels, E = 4 * C;
    float *sin = R->emb, *e1 = R->emb + (size_t)B * E, *s1 = e1 + (size_t)B * E;
    float *emb = s1 + (size_t)B * E, *semb = emb + (size_t)B * E;
    timestep_embedding(sin, t, B, C);                                                         // [B, C]
    NN_TIMED(NN_PROF_LINEAR, linear_forward(e1, sin, P + L->lin1.w, P + L->lin1.b, B, C, E)); // [B, 4C]
    silu_forward(s1, e1, (size_t)B * E);
    NN_TIMED(NN_PROF_LINEAR, linear_forward(emb, s1, P + L->lin2.w, P + L->lin2.b, B, E, E)); // emb [B, 4C]
    silu_forward(semb, emb, (size_t)B * E); // what every ResBlock reads
}

int unet_forward(unet_run *R, const unet_layout *L, const float *P, const float *x, const float *t, float *y) {
    if (R->threads != nn_threads())
        return error_set(DR_ERR_INVALID, "U-Net run was planned for %d threads, now %d: rebuild it", R->threads,
                         nn_threads());
    R->x = x;
    R->t = t;
    R->y = y;
    time_embed_forward(R, L, P, t);
    for (int i = 0; i < L->n_ops; i++) {
        const unet_op *op = &L->ops[i];
        const int s = L->tensors[op->in].shift, h = R->H >> s, w = R->W >> s;
        const size_t hw = (size_t)h * w;
        float *in = tensor_ptr(L, R, op->in), *out = tensor_ptr(L, R, op->out);
        switch (op->kind) {
        case UOP_CONV: {
            conv2d_dims d = conv_dims(R->B, L->tensors[op->in].c, h, w, L->tensors[op->out].c, op->k, op->stride);
            NN_TIMED(NN_PROF_CONV, conv2d_forward(out, in, P + op->p.w, P + op->p.b, &d, R->scratch));
            break;
        }
        case UOP_RES: res_forward(R, L, P, op); break;
        case UOP_ATTN: attn_forward_op(R, L, P, op); break;
        case UOP_CONCAT:
            concat_forward(out, in, tensor_ptr(L, R, op->in2), R->B, L->tensors[op->in].c, L->tensors[op->in2].c,
                           (int)hw);
            break;
        case UOP_UPSAMPLE: upsample2x_forward(out, in, R->B, L->tensors[op->in].c, h, w); break;
        case UOP_GNSILU: {
            float *c = R->act + R->cacheoff[i];
            NN_TIMED(NN_PROF_NORM,
                     groupnorm_forward(out, c, c + align_up((size_t)R->B * L->cfg.groups), in, P + op->p.w, P + op->p.b,
                                       R->B, L->tensors[op->in].c, (int)hw, L->cfg.groups, 1));
            break;
        }
        }
    }
    return DR_OK;
}

/* ------------------------------------------------------------------ backward */

static float *grad_ptr(const unet_layout *L, unet_run *R, int id, float *dx, const float *dy) {
    if (id == 0) return dx;
    if (id == L->n_tensors - 1) return (float *)dy;
    return R->grad + R->toff[id];
}

/* d x = d y, set or added to (unet_op.set_din) */
static void grad_pass(float *dx, int set, const float *dy, size_t n) {
    if (!dx) return;
    if (set)
        memcpy(dx, dy, n * sizeof(float));
    else
        accumulate(dx, dy, n);
}

static void res_backward(unet_run *R, const unet_layout *L, const float *P, float *Gp, const unet_op *op, float *dx,
                         const float *dout) {
    const unet_res *r = &L->res[op->block];
    const int B = R->B, G = L->cfg.groups, s = L->tensors[op->in].shift;
    const int h = R->H >> s, w = R->W >> s, E = 4 * L->cfg.base_channels;
    const size_t hw = (size_t)h * w;
    const float *x = tensor_ptr(L, R, op->in);
    const float *c = R->act + R->cacheoff[op - L->ops];
    res_cache k = res_cache_layout(B, G, r->cin, r->cout, hw);
    const float *semb = R->emb + 4 * (size_t)B * E;
    float *dsemb = R->demb; // [B, E], accumulated over blocks
    size_t work, btmp;
    scratch_needs(L, R, &work, &btmp);
    const size_t m = align_up((size_t)B * (r->cin > r->cout ? r->cin : r->cout) * hw);
    float *da2 = R->scratch + work, *dh = da2 + m, *da1 = dh + m, *dtb = da1 + m;
    conv2d_dims d1 = conv_dims(B, r->cin, h, w, r->cout, 3, 1);
    conv2d_dims d2 = conv_dims(B, r->cout, h, w, r->cout, 3, 1);
    const size_t nout = (size_t)B * r->cout * hw;
    if (r->skip.w != UNET_NO_PARAM) { // out = skip(x) + conv2(a2)
        conv2d_dims ds = conv_dims(B, r->cin, h, w, r->cout, 1, 1);
        NN_TIMED(NN_PROF_CONV,
                 (op->set_din ? conv2d_backward_into : conv2d_backward)(dx, Gp + r->skip.w, Gp + r->skip.b, dout, x,
                                                                        P + r->skip.w, &ds, R->scratch));
    } else {
        grad_pass(dx, op->set_din, dout, nout);
    }
    /* da2 and da1 have one contribution each: set (_into), not zeroed and added to */
    NN_TIMED(
        NN_PROF_CONV,
        conv2d_backward_into(da2, Gp + r->conv2.w, Gp + r->conv2.b, dout, c + k.a2, P + r->conv2.w, &d2, R->scratch));
    if (R->dropout > 0) dropout_apply(R, da2, op->block, (size_t)r->cout * hw); // through the same mask
    memset(dh, 0, nout * sizeof(float));
    NN_TIMED(NN_PROF_NORM,
             groupnorm_backward(dh, Gp + r->norm2.w, Gp + r->norm2.b, da2, c + k.h, c + k.mean2, c + k.rstd2,
                                P + r->norm2.w, P + r->norm2.b, B, r->cout, (int)hw, G, 1));
    memset(dtb, 0, (size_t)B * r->cout * sizeof(float));
    add_channel_bias_backward(dtb, dh, B, r->cout, (int)hw); // dtb [B, cout] = sum_hw dh
    NN_TIMED(NN_PROF_LINEAR,
             linear_backward(dsemb, Gp + r->temb.w, Gp + r->temb.b, dtb, semb, P + r->temb.w, B, E, r->cout));
    NN_TIMED(
        NN_PROF_CONV,
        conv2d_backward_into(da1, Gp + r->conv1.w, Gp + r->conv1.b, dh, c + k.a1, P + r->conv1.w, &d1, R->scratch));
    NN_TIMED(NN_PROF_NORM,
             groupnorm_backward(dx, Gp + r->norm1.w, Gp + r->norm1.b, da1, x, c + k.mean1, c + k.rstd1, P + r->norm1.w,
                                P + r->norm1.b, B, r->cin, (int)hw, G, 1));
}

static void attn_backward_op(unet_run *R, const unet_layout *L, const float *P, float *Gp, const unet_op *op, float *dx,
                             const float *dout) {
    const unet_attn *a = &L->attn[op->block];
    const int B = R->B, G = L->cfg.groups, s = L->tensors[op->in].shift, c = a->c;
    const int h = R->H >> s, w = R->W >> s, N = h * w;
    const float *x = tensor_ptr(L, R, op->in);
    const float *cc = R->act + R->cacheoff[op - L->ops];
    attn_cache k = attn_cache_layout(B, G, c, (size_t)N, 1);
    size_t work, btmp;
    scratch_needs(L, R, &work, &btmp);
    const size_t n1 = (size_t)B * c * N;
    float *d_o = R->scratch + work, *dqkv = d_o + align_up(n1), *dn = dqkv + 3 * align_up(n1);
    conv2d_dims dq = conv_dims(B, c, h, w, 3 * c, 1, 1), dp = conv_dims(B, c, h, w, c, 1, 1);
    grad_pass(dx, op->set_din, dout, n1); // out = x + proj(o)
    /* d_o and dn have one contribution each: set (_into), not zeroed and added to */
    NN_TIMED(NN_PROF_CONV,
             conv2d_backward_into(d_o, Gp + a->proj.w, Gp + a->proj.b, dout, cc + k.o, P + a->proj.w, &dp, R->scratch));
    memset(dqkv, 0, 3 * n1 * sizeof(float));
    NN_TIMED(NN_PROF_ATTN, attention_backward(dqkv, d_o, cc + k.qkv, cc + k.att, B, c, N, R->scratch));
    NN_TIMED(NN_PROF_CONV,
             conv2d_backward_into(dn, Gp + a->qkv.w, Gp + a->qkv.b, dqkv, cc + k.n, P + a->qkv.w, &dq, R->scratch));
    NN_TIMED(NN_PROF_NORM,
             groupnorm_backward(dx, Gp + a->norm.w, Gp + a->norm.b, dn, x, cc + k.mean, cc + k.rstd, P + a->norm.w,
                                P + a->norm.b, B, c, N, G, 0));
}

int unet_backward(unet_run *R, const unet_layout *L, const float *P, float *Gp, const float *dy, float *dx) {
    if (!R->train || !R->grad) return error_set(DR_ERR_INVALID, "unet_backward needs a training-mode run");
    const int B = R->B, C = L->cfg.base_channels, E = 4 * C;
    memset(R->demb, 0, 3 * (size_t)B * E * sizeof(float));
    for (int i = L->n_ops - 1; i >= 0; i--) {
        const unet_op *op = &L->ops[i];
        const int s = L->tensors[op->in].shift, h = R->H >> s, w = R->W >> s;
        const size_t hw = (size_t)h * w;
        float *din = grad_ptr(L, R, op->in, dx, dy);
        const float *dout = grad_ptr(L, R, op->out, dx, dy);
        const float *in = tensor_ptr(L, R, op->in);
        switch (op->kind) {
        case UOP_CONV: {
            conv2d_dims d = conv_dims(B, L->tensors[op->in].c, h, w, L->tensors[op->out].c, op->k, op->stride);
            NN_TIMED(NN_PROF_CONV,
                     (op->set_din ? conv2d_backward_into : conv2d_backward)(din, Gp + op->p.w, Gp + op->p.b, dout, in,
                                                                            P + op->p.w, &d, R->scratch));
            break;
        }
        case UOP_RES: res_backward(R, L, P, Gp, op, din, dout); break;
        case UOP_ATTN: attn_backward_op(R, L, P, Gp, op, din, dout); break;
        case UOP_CONCAT:
            concat_backward_into(din, op->set_din, grad_ptr(L, R, op->in2, dx, dy), op->set_din2, dout, B,
                                 L->tensors[op->in].c, L->tensors[op->in2].c, (int)hw);
            break;
        case UOP_UPSAMPLE: // adds only: zero a gradient it is the first to write
            if (op->set_din) memset(din, 0, (size_t)B * L->tensors[op->in].c * hw * sizeof(float));
            upsample2x_backward(din, dout, B, L->tensors[op->in].c, h, w);
            break;
        case UOP_GNSILU: {
            const float *c = R->act + R->cacheoff[i];
            if (op->set_din) memset(din, 0, (size_t)B * L->tensors[op->in].c * hw * sizeof(float)); // as UPSAMPLE
            NN_TIMED(NN_PROF_NORM,
                     groupnorm_backward(din, Gp + op->p.w, Gp + op->p.b, dout, in, c,
                                        c + align_up((size_t)B * L->cfg.groups), P + op->p.w, P + op->p.b, B,
                                        L->tensors[op->in].c, (int)hw, L->cfg.groups, 1));
            break;
        }
        }
    }
    /* time embedding: semb = silu(emb), emb = lin2(s1), s1 = silu(e1), e1 = lin1(sin) */
    float *sin = R->emb, *e1 = R->emb + (size_t)B * E, *s1 = e1 + (size_t)B * E, *emb = s1 + (size_t)B * E;
    float *dsemb = R->demb, *demb = dsemb + (size_t)B * E, *ds1 = demb + (size_t)B * E;
    silu_backward(demb, dsemb, emb, (size_t)B * E);
    NN_TIMED(NN_PROF_LINEAR, linear_backward(ds1, Gp + L->lin2.w, Gp + L->lin2.b, demb, s1, P + L->lin2.w, B, E, E));
    float *de1 = dsemb; /* dsemb is consumed: reuse it for d e1 */
    memset(de1, 0, (size_t)B * E * sizeof(float));
    silu_backward(de1, ds1, e1, (size_t)B * E);
    NN_TIMED(NN_PROF_LINEAR, linear_backward(NULL, Gp + L->lin1.w, Gp + L->lin1.b, de1, sin, P + L->lin1.w, B, C, E));
    return DR_OK;
}
