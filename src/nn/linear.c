/*
 * Linear layer on top of cblas_sgemm. Called from outside any OpenMP region
 * with OpenBLAS single-threaded (nn_init_threads), so the result is the same
 * for any thread count. sgemm with beta = 1 gives the += of the backward.
 */
#include "nn/nn.h"

#include <string.h>

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B, int Cin, int Cout) {
    // out [B, Cout] starts as the bias (or 0), then += inp @ W^T
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * Cout;
        if (bias)
            memcpy(o, bias, (size_t)Cout * sizeof(float));
        else
            memset(o, 0, (size_t)Cout * sizeof(float));
    }
    // [B, Cin] x [Cout, Cin]^T -> [B, Cout]
    nn_gemm(0, 1, B, Cout, Cin, 1.0f, inp, Cin, weight, Cin, 1.0f, out, Cout);
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int B, int Cin, int Cout) {
    if (dinp) // dinp [B, Cin] += dout [B, Cout] @ W [Cout, Cin]
        nn_gemm(0, 0, B, Cin, Cout, 1.0f, dout, Cout, weight, Cin, 1.0f, dinp, Cin);
    if (dweight) // dW [Cout, Cin] += dout^T [Cout, B] @ inp [B, Cin]
        nn_gemm(1, 0, Cout, Cin, B, 1.0f, dout, Cout, inp, Cin, 1.0f, dweight, Cin);
    if (dbias) {
        for (int o = 0; o < Cout; o++) { // db [Cout] += sum over b, in order
            double s = 0.0;
            for (int b = 0; b < B; b++) s += dout[(size_t)b * Cout + o];
            dbias[o] += (float)s;
        }
    }
}
