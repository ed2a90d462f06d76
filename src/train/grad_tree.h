/* grad_tree.h - one training step's gradient as a fixed tree over
 * micro-batches, the same bits alone or over N ranks (grad_tree.c). */
#ifndef DR_TRAIN_GRAD_TREE_H
#define DR_TRAIN_GRAD_TREE_H

#include "train/batch.h"

typedef struct {
    int lo, hi, owner, index; /* index: among the owner's cover nodes, left to right */
} cover_node;

typedef struct {
    const dr_train_comm *comm; /* NULL: alone */
    int N, rank, B, M, K;      /* ranks, this one, batch, micro-batch, leaves */
    int lo, hi;                /* this rank's samples */
    cover_node *cover;         /* every rank's, left to right */
    int n_cover, *n_owned;     /* [N] cover nodes of each rank */
    int height;                /* of the tree over B leaves */
    size_t n;                  /* floats of a gradient */
    float **gbuf;              /* [height + 1] full gradients (gbuf[0] = st->grads) */
    float **sbuf;              /* [height + 1] slices (N > 1) */
    float *send, *recv;        /* N > 1: the cover nodes, by destination slice; the received slices */
    size_t *sb, *sd, *rb, *rd; /* [N] bytes and displacements of the alltoallv */
    size_t *xb, *xd;           /* [N] of the allgathervs */
    double *dex;               /* doubles exchanged per step */
    double reduce_sec;         /* wall time of the last exchange of gradients */
} grad_tree;

typedef struct {
    train_batch *bb;
    const train_state *st;
    double count;   /* generated pixels times output channels, over the whole batch */
    double *loss_b; /* [B] each sample's weighted squared error sum */
} leaf_ctx;

int grad_tree_build(grad_tree *g, const dr_train_comm *comm, int B, int M, float *grads, size_t n);
void grad_tree_free(grad_tree *g);
/* The batch's gradient g(0, B) into gbuf[0] (st->grads) on every rank;
 * c->loss_b filled for this rank's samples. */
int tree_grad(grad_tree *g, leaf_ctx *c);
/* Every rank's k doubles per sample after head doubles of its own (see grad_tree.c). */
int exchange_doubles(grad_tree *g, const double *mine, int head, int k, double *heads, double *per);
/* Sample b's generated pixels (the loss counts them, times the channels). */
double train_sample_count(const train_batch *bb, int b);

#endif
