/* winograd.h - Winograd F(2x2, 3x3) for the 3x3 stride-1 (padding 1)
 * convolution behind conv2d.c, and F(3x3, 2x2) for its weight gradient (see
 * the .c for the method). Internal to src/nn. */
#ifndef DR_NN_WINOGRAD_H
#define DR_NN_WINOGRAD_H

#include <stddef.h>

/* 1 when this build has the kernel (AVX-512, or AVX2 + FMA). */
int wino_supported(void);

/* 1 when it also has the bf16 GEMMs (the AVX-512 build): without them an
 * AVX2 build runs its 3x3 convolutions in fp32 even under nn_use_bf16. */
int wino_bf16_built(void);

/* Floats of scratch wino_conv3x3 needs for these channel counts at the
 * thread count set by nn_init_threads: the transformed weights plus one
 * tile block (input transforms and products) per thread. */
size_t wino_scratch_floats(int Cin, int Cout);

/* out [B][Cout][H][W] (=, or += when accumulate) the 3x3 stride-1 pad-1
 * convolution of in [B][Cin][H][W], plus bias (may be NULL; only used when not
 * accumulating). The weights are w [Cout][Cin][3][3], or with flip the
 * backward-data kernel of a forward conv with weights w [Cin][Cout][3][3]
 * (the transposed, flipped kernel w'[o][i][t] = w[i][o][8 - t]).
 * Bit-identical for any thread count. Any H, W >= 1. */
void wino_conv3x3(float *out, int accumulate, const float *in, const float *w, int flip, const float *bias, int B,
                  int Cin, int Cout, int H, int W, float *scratch);

/* dW [Cout][Cin][3][3] += the weight gradient of a 3x3 stride-1 pad-1 conv
 * from dout [B][Cout][H][W] and its input in [B][Cin][H][W], by Winograd
 * F(3x3, 2x2). scratch: wino_dweight_scratch_floats floats,
 * 8-byte aligned (it starts with double accumulators). Tiles are summed in
 * one fixed order: bit-identical for any thread count. */
size_t wino_dweight_scratch_floats(int B, int Cin, int Cout, int H, int W);
void wino_dweight3x3(float *dweight, const float *dout, const float *in, int B, int Cin, int Cout, int H, int W,
                     float *scratch);

#endif
