/* conv2d_direct.h - the AVX-512 / AVX2 direct convolution behind conv2d.c (see the
 * .c for the method). Internal to src/nn. */
#ifndef DR_NN_CONV2D_DIRECT_H
#define DR_NN_CONV2D_DIRECT_H

#include "nn/nn.h"

#include <stddef.h>

/* 1 when this build has the kernel and d is a shape it handles
 * (3x3 or 1x1, stride 1). */
int conv_direct_supported(const conv2d_dims *d);

/* Pack w [Cout][Cin][T] into [Cout/8][Cin][T][8] blocks. flip: pack the
 * transposed, flipped kernel of a backward-data pass instead, reading w as
 * [Cin_new][Cout_new][T] (the original [Cout][Cin] with roles swapped). */
size_t conv_direct_pack_floats(int Cout, int Cin, int K);
void conv_direct_pack(float *wpk, const float *w, int Cout, int Cin, int T, int flip);

/* Zero-framed flat planes for 3x3: B * C planes of conv_direct_plane(H, W)
 * floats each. The plane of sample b, channel c, starts at (b*C + c) * plane;
 * pixel (y, x) is at (y + 1) * (W + 2) + x + 1. */
size_t conv_direct_plane(int H, int W);
size_t conv_direct_pad_floats(int B, int C, int H, int W, int K);
void conv_direct_pad(float *pad, const float *in, int B, int C, int H, int W);

/* out (=, or += when accumulate) the convolution of `in` (padded planes for
 * K = 3, the raw input for K = 1) with packed weights, plus bias (only when
 * not accumulating). tail_scratch: conv_direct_tail_floats(Cin) floats. */
size_t conv_direct_tail_floats(int Cin);
void conv_direct_run(float *out, int accumulate, const float *in, const float *wpk, const float *bias, int B, int Cin,
                     int Cout, int H, int W, int K, float *tail_scratch);

/* dW [Cout][Cin][3][3] += the weight gradient of a 3x3 stride-1 conv, from
 * dout [B][Cout][H][W] and the padded input planes xpad (conv_direct_pad).
 * scratch: conv_direct_dweight_floats floats, 8-byte aligned (it starts with
 * double accumulators). Positions are summed in one fixed order; thread-count
 * independent. */
size_t conv_direct_dweight_floats(int B, int Cin, int Cout, int H, int W);
void conv_direct_dweight3x3(float *dweight, const float *dout, const float *xpad, int B, int Cin, int Cout, int H,
                            int W, float *scratch);

#endif
