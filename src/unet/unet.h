/*
 * unet.h - the U-Net of MODEL.md: parameter layout, forward and backward.
 *
 * Three small structs, llama2.c style:
 *  - unet_layout: what the config implies. The parameter table (names and
 *    shapes exactly as the PyTorch state_dict, offsets into ONE float block),
 *    and the forward pass as a flat list of ops over numbered tensors.
 *    Parameters, gradients and each Adam moment are separate blocks of
 *    layout.n_floats with the same offsets.
 *  - unet_run: the activation memory for one (batch, H, W) and a mode:
 *    training keeps every activation for the backward; inference plans the
 *    tensors' lifetimes so memory stays at a few of the largest activations.
 *  - the weights themselves are just `const float *params`.
 */
#ifndef DR_UNET_H
#define DR_UNET_H

#include "diffrestore.h"

#include <stddef.h>

#define UNET_NO_PARAM ((size_t)-1)

typedef struct {
    char *name; /* e.g. "down.0.res.1.conv1.weight" */
    int ndim;
    int shape[4];
    size_t offset, numel; /* in floats, into the parameter block */
} unet_param;

/* Offsets of a weight/bias pair (conv, linear, or GroupNorm gamma/beta). */
typedef struct {
    size_t w, b;
} unet_wb;

typedef struct {
    int cin, cout;
    unet_wb norm1, conv1, temb, norm2, conv2, skip; /* skip.w == UNET_NO_PARAM: identity */
} unet_res;

typedef struct {
    int c;
    unet_wb norm, qkv, proj;
} unet_attn;

typedef enum {
    UOP_CONV,     /* conv k x k, stride s: in -> out */
    UOP_RES,      /* ResBlock (uses the time embedding) */
    UOP_ATTN,     /* AttnBlock */
    UOP_CONCAT,   /* out = concat(in, in2) on channels */
    UOP_UPSAMPLE, /* nearest x2 */
    UOP_GNSILU    /* silu(groupnorm(in)) */
} unet_op_kind;

typedef struct {
    unet_op_kind kind;
    int in, in2, out; /* tensor ids; in2 only for CONCAT */
    int block;        /* index into res[] / attn[] */
    unet_wb p;        /* CONV, GNSILU parameters */
    int k, stride;    /* CONV */
    /* The backward visits the ops in reverse, and the first of them to write
     * a tensor's gradient sets it instead of adding to it (the later ones
     * add), so the run's gradient buffer is never zeroed. Never set for x
     * (tensor 0: the caller's dx, which the backward adds to). */
    unsigned char set_din, set_din2;
} unet_op;

typedef struct {
    int c;     /* channels */
    int shift; /* spatial size is (H >> shift) x (W >> shift) */
} unet_tensor;

typedef struct {
    dr_unet_config cfg;
    int n_params;
    unet_param *params;
    size_t n_floats; /* total parameter floats */
    unet_wb lin1, lin2;
    int n_res, n_attn;
    unet_res *res;
    unet_attn *attn;
    int n_ops, n_tensors;
    unet_op *ops;
    unet_tensor *tensors; /* tensor 0 is the input x, tensor n_tensors-1 the output y */
} unet_layout;

int unet_layout_build(unet_layout *L, const dr_unet_config *cfg);
void unet_layout_free(unet_layout *L);
const unet_param *unet_layout_find(const unet_layout *L, const char *name);

/* Default init (PyTorch's: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights
 * and biases, GroupNorm gamma 1 beta 0), from a seed. */
void unet_init_params(const unet_layout *L, float *params, uint64_t seed);

typedef struct {
    int B, H, W, train, threads;
    size_t *toff;     /* offset of each tensor in act (UNET_NO_PARAM for x and y) */
    size_t *cacheoff; /* train: each op's cache; inference: all ops share offset temp */
    float *act;       /* activations, tensors and caches, one allocation */
    float *grad;      /* train: one gradient buffer per tensor, same offsets as toff (no caches);
                         each backward sets every one before reading it (unet_op.set_din) */
    float *scratch;   /* conv / attention scratch and backward temporaries */
    float *emb;       /* [B, 4C] time-embedding chain: sin, e1, s1, emb, semb */
    float *demb;      /* train: [B, 4C] x 3 gradients of the chain */
    size_t act_floats, scratch_floats;
    size_t grad_floats; /* train: the tensors' part of act (toff), which grad mirrors */
    const float *x;     /* the last forward's input (train: needed by the backward) */
    const float *t;
    float *y;
    /* ResBlock dropout (training runs only; inference never drops): each
     * ResBlock's a2 = silu(norm2(h)) is zeroed with probability dropout and
     * the rest scaled by 1 / (1 - dropout) before conv2. The mask is a hash of
     * (dropout_seed, sample0 + the sample's index in the run, the block, the
     * element within the sample), so a sample drops the same elements
     * whatever the run's batch, the threads or the ranks. 0 after build. */
    float dropout;
    uint64_t dropout_seed;
    int sample0; /* global index of the run's first sample */
} unet_run;

/* Plan and allocate activations for a batch of B at H x W. */
int unet_run_build(unet_run *R, const unet_layout *L, int B, int H, int W, int train);
void unet_run_free(unet_run *R);
/* Bytes the run holds (activations + scratch). */
size_t unet_run_bytes(const unet_run *R);

/* y [B, out, H, W] = eps_theta(x [B, in, H, W], t [B]). In training mode the
 * run keeps x, t and every activation for unet_backward. */
int unet_forward(unet_run *R, const unet_layout *L, const float *params, const float *x, const float *t, float *y);
/* Accumulate d loss / d params into grads (and d loss / d x into dx if not
 * NULL), given dy = d loss / d y. Needs a training-mode forward just before. */
int unet_backward(unet_run *R, const unet_layout *L, const float *params, float *grads, const float *dy, float *dx);
/* Whether ResBlock dropout at p keeps element elem of global sample `sample`
 * in block `block` (the mask unet_forward applies; for tests). */
int unet_dropout_keep(uint64_t seed, int sample, int block, size_t elem, float p);
/* A training run's cached conv2 input a2 of ResBlock op i ([B, cout, h, w],
 * after dropout), or NULL if op i is not a ResBlock (for tests). */
const float *unet_res_a2(const unet_run *R, const unet_layout *L, int i);

#endif
