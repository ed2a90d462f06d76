/*
 * layout.c - from a config to the parameter table and the list of ops.
 *
 * The walk below is MODEL.md's data flow, line for line; it both names the
 * parameters (exactly the PyTorch state_dict keys) and records the ops, so the
 * names and the computation cannot drift apart.
 */
#include "unet/unet.h"

#include "common/error.h"
#include "common/rng.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unet_layout *L;
    int cap_params, cap_ops, cap_tensors, cap_res, cap_attn;
    int nomem;
} builder;

static void *grow(void *p, int *cap, int need, size_t elem, int *nomem) {
    if (need <= *cap) return p;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(p, (size_t)nc * elem);
    if (!q) {
        *nomem = 1;
        return NULL;
    }
    *cap = nc;
    return q;
}

static size_t add_param(builder *b, int ndim, const int *shape, const char *fmt, ...) {
    unet_layout *L = b->L;
    void *np = grow(L->params, &b->cap_params, L->n_params + 1, sizeof(unet_param), &b->nomem);
    if (!np) return UNET_NO_PARAM;
    L->params = np;
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    unet_param *p = &L->params[L->n_params];
    memset(p, 0, sizeof *p);
    p->name = strdup(name);
    if (!p->name) {
        b->nomem = 1;
        return UNET_NO_PARAM;
    }
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->offset = L->n_floats;
    L->n_floats += p->numel;
    L->n_params++;
    return p->offset;
}

/* "<prefix>.weight" (shape) and "<prefix>.bias" (shape[0]). */
static unet_wb add_wb(builder *b, const char *prefix, int ndim, int s0, int s1, int s2, int s3) {
    int shape[4] = {s0, s1, s2, s3};
    unet_wb wb;
    wb.w = add_param(b, ndim, shape, "%s.weight", prefix);
    wb.b = add_param(b, 1, shape, "%s.bias", prefix);
    return wb;
}
static unet_wb add_conv(builder *b, const char *prefix, int cout, int cin, int k) {
    return add_wb(b, prefix, 4, cout, cin, k, k);
}
static unet_wb add_norm(builder *b, const char *prefix, int c) { return add_wb(b, prefix, 1, c, 0, 0, 0); }

static int new_tensor(builder *b, int c, int shift) {
    unet_layout *L = b->L;
    void *np = grow(L->tensors, &b->cap_tensors, L->n_tensors + 1, sizeof(unet_tensor), &b->nomem);
    if (!np) return 0;
    L->tensors = np;
    L->tensors[L->n_tensors].c = c;
    L->tensors[L->n_tensors].shift = shift;
    return L->n_tensors++;
}

static unet_op *new_op(builder *b, unet_op_kind kind, int in, int out) {
    unet_layout *L = b->L;
    void *np = grow(L->ops, &b->cap_ops, L->n_ops + 1, sizeof(unet_op), &b->nomem);
    if (!np) return NULL;
    L->ops = np;
    unet_op *op = &L->ops[L->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->in = in;
    op->in2 = -1;
    op->out = out;
    return op;
}

/* The ops' outputs get their tensor at creation; the final output tensor must
 * be the last id, so out_conv's output is created last. */
static int op_conv(builder *b, const char *name, int in, int cout, int k, int stride) {
    unet_wb p = add_conv(b, name, cout, b->L->tensors[in].c, k);
    int out = new_tensor(b, cout, b->L->tensors[in].shift + (stride == 2));
    unet_op *op = new_op(b, UOP_CONV, in, out);
    if (op) {
        op->p = p;
        op->k = k;
        op->stride = stride;
    }
    return out;
}

static int op_res(builder *b, const char *prefix, int in, int cout) {
    unet_layout *L = b->L;
    void *np = grow(L->res, &b->cap_res, L->n_res + 1, sizeof(unet_res), &b->nomem);
    if (!np) return in;
    L->res = np;
    unet_res *r = &L->res[L->n_res];
    const int cin = L->tensors[in].c, temb = 4 * L->cfg.base_channels;
    char name[128];
    r->cin = cin;
    r->cout = cout;
    snprintf(name, sizeof name, "%s.norm1", prefix);
    r->norm1 = add_norm(b, name, cin);
    snprintf(name, sizeof name, "%s.conv1", prefix);
    r->conv1 = add_conv(b, name, cout, cin, 3);
    snprintf(name, sizeof name, "%s.temb", prefix);
    r->temb = add_wb(b, name, 2, cout, temb, 0, 0);
    snprintf(name, sizeof name, "%s.norm2", prefix);
    r->norm2 = add_norm(b, name, cout);
    snprintf(name, sizeof name, "%s.conv2", prefix);
    r->conv2 = add_conv(b, name, cout, cout, 3);
    r->skip.w = r->skip.b = UNET_NO_PARAM;
    if (cin != cout) {
        snprintf(name, sizeof name, "%s.skip", prefix);
        r->skip = add_conv(b, name, cout, cin, 1);
    }
    int out = new_tensor(b, cout, L->tensors[in].shift);
    unet_op *op = new_op(b, UOP_RES, in, out);
    if (op) op->block = L->n_res;
    L->n_res++;
    return out;
}

static int op_attn(builder *b, const char *prefix, int in) {
    unet_layout *L = b->L;
    void *np = grow(L->attn, &b->cap_attn, L->n_attn + 1, sizeof(unet_attn), &b->nomem);
    if (!np) return in;
    L->attn = np;
    unet_attn *a = &L->attn[L->n_attn];
    const int c = L->tensors[in].c;
    char name[128];
    a->c = c;
    snprintf(name, sizeof name, "%s.norm", prefix);
    a->norm = add_norm(b, name, c);
    snprintf(name, sizeof name, "%s.qkv", prefix);
    a->qkv = add_conv(b, name, 3 * c, c, 1);
    snprintf(name, sizeof name, "%s.proj", prefix);
    a->proj = add_conv(b, name, c, c, 1);
    int out = new_tensor(b, c, L->tensors[in].shift);
    unet_op *op = new_op(b, UOP_ATTN, in, out);
    if (op) op->block = L->n_attn;
    L->n_attn++;
    return out;
}

void unet_layout_free(unet_layout *L) {
    if (!L) return;
    for (int i = 0; i < L->n_params; i++) free(L->params[i].name);
    free(L->params);
    free(L->res);
    free(L->attn);
    free(L->ops);
    free(L->tensors);
    memset(L, 0, sizeof *L);
}

/* Mark, for each op, whether the backward's first write of its input
 * gradients sets them (unet_op.set_din). Every tensor between x and y must be
 * some op's input, or its producer's backward would read a gradient that
 * nothing wrote. "First in the backward's order" is only the first write if
 * the ops are listed in an order the forward can run them (each reads tensors
 * that x or an earlier op made, and makes one no other op makes) and nothing
 * reads y, whose gradient is the caller's dy: checked first. */
static int plan_grad_writes(unet_layout *L) {
    const int y = L->n_tensors - 1;
    unsigned char *made = calloc((size_t)L->n_tensors, 1);
    if (!made) return error_set(DR_ERR_NOMEM, "out of memory building the U-Net layout");
    made[0] = 1; // x
    for (int i = 0; i < L->n_ops; i++) {
        const unet_op *op = &L->ops[i];
        if (!made[op->in] || (op->in2 >= 0 && !made[op->in2]) || made[op->out] || op->in == y || op->in2 == y) {
            free(made);
            return error_set(DR_ERR_INVALID, "U-Net layout: op %d is out of the forward's order or reads y", i);
        }
        made[op->out] = 1;
    }
    free(made);
    unsigned char *seen = calloc((size_t)L->n_tensors, 1);
    if (!seen) return error_set(DR_ERR_NOMEM, "out of memory building the U-Net layout");
    for (int i = L->n_ops - 1; i >= 0; i--) { // the backward's order
        unet_op *op = &L->ops[i];
        op->set_din = op->in > 0 && !seen[op->in];
        seen[op->in] = 1;
        if (op->in2 >= 0) {
            op->set_din2 = op->in2 > 0 && !seen[op->in2];
            seen[op->in2] = 1;
        }
    }
    int unread = 0;
    for (int t = 1; t < L->n_tensors - 1; t++) unread += !seen[t];
    free(seen);
    if (unread) return error_set(DR_ERR_INVALID, "U-Net layout: %d tensors no op reads", unread);
    return DR_OK;
}

int unet_layout_build(unet_layout *L, const dr_unet_config *cfg) {
    memset(L, 0, sizeof *L);
    DR_TRY(dr_unet_config_validate(cfg));
    L->cfg = *cfg;
    builder bb = {.L = L}, *b = &bb;
    const int C = cfg->base_channels, NL = cfg->n_levels, R = cfg->num_res_blocks;
    char name[128];
    int stack[DR_MAX_LEVELS * 16 + 2], sp = 0;

    L->lin1 = add_wb(b, "time_embed.lin1", 2, 4 * C, C, 0, 0);
    L->lin2 = add_wb(b, "time_embed.lin2", 2, 4 * C, 4 * C, 0, 0);
    int x = new_tensor(b, cfg->in_channels, 0); // tensor 0: x [in, H, W]
    int h = op_conv(b, "in_conv", x, C, 3, 1);  // [C, H, W]
    stack[sp++] = h;
    for (int l = 0; l < NL; l++) {
        for (int k = 0; k < R; k++) {
            snprintf(name, sizeof name, "down.%d.res.%d", l, k);
            h = op_res(b, name, h, C * cfg->channel_mult[l]); // [C m_l, H/2^l, W/2^l]
            if (cfg->attention[l]) {
                snprintf(name, sizeof name, "down.%d.attn.%d", l, k);
                h = op_attn(b, name, h);
            }
            stack[sp++] = h;
        }
        if (l < NL - 1) {
            snprintf(name, sizeof name, "down.%d.downsample", l);
            h = op_conv(b, name, h, L->tensors[h].c, 3, 2); // [C m_l, H/2^(l+1), ...]
            stack[sp++] = h;
        }
    }
    h = op_res(b, "mid.res1", h, L->tensors[h].c);
    h = op_attn(b, "mid.attn", h);
    h = op_res(b, "mid.res2", h, L->tensors[h].c);
    for (int l = NL - 1; l >= 0; l--) {
        for (int k = 0; k <= R; k++) {
            int s = stack[--sp];
            int cat = new_tensor(b, L->tensors[h].c + L->tensors[s].c, L->tensors[h].shift);
            unet_op *op = new_op(b, UOP_CONCAT, h, cat); // [c_h + c_skip, ...], h first
            if (op) op->in2 = s;
            snprintf(name, sizeof name, "up.%d.res.%d", l, k);
            h = op_res(b, name, cat, C * cfg->channel_mult[l]);
            if (cfg->attention[l]) {
                snprintf(name, sizeof name, "up.%d.attn.%d", l, k);
                h = op_attn(b, name, h);
            }
        }
        if (l > 0) {
            int u = new_tensor(b, L->tensors[h].c, L->tensors[h].shift - 1);
            new_op(b, UOP_UPSAMPLE, h, u); // nearest x2
            snprintf(name, sizeof name, "up.%d.upsample", l);
            h = op_conv(b, name, u, L->tensors[u].c, 3, 1);
        }
    }
    unet_wb on = add_norm(b, "out_norm", L->tensors[h].c);
    int a = new_tensor(b, L->tensors[h].c, 0);
    unet_op *op = new_op(b, UOP_GNSILU, h, a);
    if (op) op->p = on;
    op_conv(b, "out_conv", a, cfg->out_channels, 3, 1); // last tensor: y [out, H, W]
    if (b->nomem) {
        unet_layout_free(L);
        return error_set(DR_ERR_NOMEM, "out of memory building the U-Net layout");
    }
    const int rc = plan_grad_writes(L);
    if (rc != DR_OK) unet_layout_free(L);
    return rc;
}

const unet_param *unet_layout_find(const unet_layout *L, const char *name) {
    for (int i = 0; i < L->n_params; i++)
        if (strcmp(L->params[i].name, name) == 0) return &L->params[i];
    return NULL;
}

void unet_init_params(const unet_layout *L, float *params, uint64_t seed) {
    rng_state rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < L->n_params; i++) {
        const unet_param *p = &L->params[i];
        float *w = params + p->offset;
        const char *suffix = strrchr(p->name, '.');
        int is_norm = strstr(p->name, "norm") != NULL;
        if (is_norm) { /* GroupNorm: gamma 1, beta 0 */
            float v = strcmp(suffix, ".weight") == 0 ? 1.0f : 0.0f;
            for (size_t j = 0; j < p->numel; j++) w[j] = v;
            continue;
        }
        /* fan_in of the weight this parameter belongs to: for a bias, that of
         * the weight just before it in the table. */
        const unet_param *wp = strcmp(suffix, ".bias") == 0 && i > 0 ? &L->params[i - 1] : p;
        size_t fan_in = 1;
        for (int d = 1; d < wp->ndim; d++) fan_in *= (size_t)wp->shape[d];
        float bound = 1.0f / sqrtf((float)fan_in);
        for (size_t j = 0; j < p->numel; j++) w[j] = (float)((2.0 * rng_uniform(&rng) - 1.0) * bound);
    }
}

/* The parameter count of a config: its layout's size. */
int64_t dr_unet_config_num_params(const dr_unet_config *cfg) {
    unet_layout L;
    if (unet_layout_build(&L, cfg) != DR_OK) return -1;
    int64_t n = (int64_t)L.n_floats;
    unet_layout_free(&L);
    return n;
}
