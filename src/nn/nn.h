/*
 * nn.h - the U-Net's layers, each a forward/backward pair (llm.c style).
 *
 * Rules every layer follows:
 *  - Tensors are NCHW float32, row-major. B = batch, C = channels, HW = H*W.
 *  - Every buffer belongs to the caller. Layers allocate nothing, except the
 *    convolution which takes a caller-sized scratch workspace.
 *  - X_backward ACCUMULATES (+=) into dinp and into parameter gradients, so the
 *    caller zeroes parameter gradients once per step and skip connections
 *    just add up. The *_into variants are the exceptions: they set the input
 *    gradients they are told to (conv2d_backward_into: always), for ones with
 *    no earlier contribution this step, so the caller need not zero them.
 *    A NULL dinp means "no input gradient needed" (e.g. the first layer).
 *  - Results do not depend on the number of OpenMP threads: work is split on
 *    fixed boundaries and every reduction runs in a fixed order.
 */
#ifndef DR_NN_H
#define DR_NN_H

#include <stddef.h>
#include <stdint.h>

/* ---- conv2d: kernel K in {1, 3}, padding K/2, stride 1 or 2, with bias.
 * weight [Cout, Cin, K, K], bias [Cout], inp [B, Cin, H, W],
 * out [B, Cout, Ho, Wo] with Ho = (H + 2*(K/2) - K) / stride + 1. */
typedef struct {
    int B, Cin, H, W, Cout, K, stride;
} conv2d_dims;

int conv2d_out_h(const conv2d_dims *d);
int conv2d_out_w(const conv2d_dims *d);
/* Floats of scratch the forward / backward need, for the thread count set by
 * nn_init_threads (a workspace must be re-sized when that changes). */
size_t conv2d_forward_scratch(const conv2d_dims *d);
size_t conv2d_backward_scratch(const conv2d_dims *d);
void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, const conv2d_dims *d,
                    float *scratch);
void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, const conv2d_dims *d, float *scratch);
/* The same, but dinp = (not +=) the input gradient, so dinp needs no zeroing
 * and is never read (dweight, dbias still accumulate). For a dinp that has no
 * other contribution: it saves zeroing it and reading the zeros back. */
void conv2d_backward_into(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, const conv2d_dims *d, float *scratch);

/* ---- GroupNorm over G groups of C/G channels, eps 1e-5, affine.
 * mean, rstd: [B*G] cache written by forward, read by backward.
 * silu != 0 fuses a SiLU after the affine transform (out = silu(norm(x))):
 * the backward then needs the same flag and recomputes the pre-SiLU value. */
void groupnorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma, const float *beta,
                       int B, int C, int HW, int G, int silu);
void groupnorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                        const float *mean, const float *rstd, const float *gamma, const float *beta, int B, int C,
                        int HW, int G, int silu);

/* ---- SiLU, elementwise over n values: out = x * sigmoid(x). out may equal inp. */
void silu_forward(float *out, const float *inp, size_t n);
void silu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* ---- Linear: out [B, Cout] = inp [B, Cin] @ weight[Cout, Cin]^T + bias. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int B, int Cin, int Cout);
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int B, int Cin, int Cout);

/* ---- Single-head self-attention core over N = H*W positions.
 * qkv [B, 3C, N] (channels q, k, v), out [B, C, N]:
 *   a = softmax_over_keys(q^T k / sqrt(C))   [N queries, N keys]
 *   out[c, i] = sum_j v[c, j] a[i, j]
 * att [B, N, N] caches a for the backward (may be NULL for inference, then
 * scratch of attention_forward_scratch floats is used instead). */
size_t attention_forward_scratch(int C, int N);
size_t attention_backward_scratch(int C, int N);
void attention_forward(float *out, float *att, const float *qkv, int B, int C, int N, float *scratch);
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int C, int N,
                        float *scratch);

/* ---- Nearest-neighbour x2 upsampling: inp [B, C, H, W] -> out [B, C, 2H, 2W]. */
void upsample2x_forward(float *out, const float *inp, int B, int C, int H, int W);
void upsample2x_backward(float *dinp, const float *dout, int B, int C, int H, int W);

/* ---- Channel concat: a [B, Ca, HW], b [B, Cb, HW] -> out [B, Ca+Cb, HW], a first. */
void concat_forward(float *out, const float *a, const float *b, int B, int Ca, int Cb, int HW);
void concat_backward(float *da, float *db, const float *dout, int B, int Ca, int Cb, int HW);
/* The same, but sets da (set_a != 0) and db (set_b != 0) instead of adding to
 * them: for gradients with no earlier contribution this step. */
void concat_backward_into(float *da, int set_a, float *db, int set_b, const float *dout, int B, int Ca, int Cb, int HW);

/* ---- Add a per-(sample, channel) vector: x [B, C, HW] += v [B, C]. */
void add_channel_bias_forward(float *x, const float *v, int B, int C, int HW);
void add_channel_bias_backward(float *dv, const float *dout, int B, int C, int HW);

/* ---- Elementwise add: out = a + b (out may alias a or b). Backward is the
 * identity into both inputs, done by the caller's accumulation. */
void add_forward(float *out, const float *a, const float *b, size_t n);
/* dst += src */
void accumulate(float *dst, const float *src, size_t n);

/* ---- Sinusoidal timestep embedding: out [B, dim] with h = dim/2,
 * f_i = exp(-ln(10000) i / h), out = [cos(t f_0..f_{h-1}), sin(t f_0..f_{h-1})].
 * t is not learned, so there is no backward. */
void timestep_embedding(float *out, const float *t, int B, int dim);

/* ---- Threads: set the thread count the layers use (n <= 0: all cores) and
 * keep OpenBLAS single-threaded, since every sgemm is issued from inside our
 * own OpenMP partition of the work. nn_threads() reads it back. */
void nn_init_threads(int n);
int nn_threads(void);

/* ---- Precision (bf16.c). NN_PREC_FP32 (default) is the reference path.
 * NN_PREC_BF16 / NN_PREC_AUTO: the 3x3 Winograd convolutions (forward and
 * both gradients) and every nn_gemm (linears, attention's matmuls, 1x1 and
 * stride-2 convs) multiply in bf16 (vdpbf16ps, fp32 accumulation) where the
 * CPU has AVX512-BF16, found at run time; elsewhere fp32. nn_set_precision
 * returns -1 (and keeps fp32) for BF16 on a CPU without it, or a bad value.
 * Global like nn_init_threads: set it before running layers. */
enum { NN_PREC_FP32 = 0, NN_PREC_BF16 = 1, NN_PREC_AUTO = 2 };
int nn_bf16_available(void);
int nn_set_precision(int prec);
int nn_precision(void);
int nn_use_bf16(void); /* 1 when the bf16 kernels run now */
/* Tests: behave as if the CPU had no AVX512-BF16 (1) or as it is (0). */
void nn_bf16_hide(int hide);
/* AMX (Sapphire Rapids and later): the bf16 GEMM's tile kernel. Available
 * when the CPU has AMX-TILE and AMX-BF16 and Linux grants the tile state;
 * used when the bf16 path runs (nn_use_bf16) and AMX is available. The
 * multiply is the same (bf16 operands, exact products, fp32 sums); the
 * order of the fp32 sums differs from vdpbf16ps's. */
int nn_amx_available(void);
int nn_use_amx(void);
/* Tests: behave as if the CPU had no AMX (1) or as it is (0). */
void nn_amx_hide(int hide);
/* float -> bf16 bits, round to nearest even, denormal inputs as zero:
 * software reference, and the hardware conversion (-1 without AVX512-BF16). */
uint16_t nn_bf16_round_sw(float f);
int nn_bf16_round_hw(uint16_t *dst, const float *src, size_t n);

/* ---- GEMM (gemm.c), row-major with cblas_sgemm's meaning:
 * C [M, N] = alpha op(A) op(B) + beta C, op(X) = X or X^T (trans != 0);
 * beta = 0 does not read C. nn_gemm is the one the layers call: cblas_sgemm,
 * or the bf16 kernel when nn_use_bf16(). nn_gemm_bf16 always runs the bf16
 * kernel (bf16 operands rounded to nearest even, exact products, fp32
 * accumulation) and returns -1, doing nothing, without AVX512-BF16.
 * Single-threaded: callers split the work (as for sgemm, nn_init_threads). */
void nn_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);
int nn_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                 int ldb, float beta, float *C, int ldc);

/* ---- Profiling by layer kind (for `diffrestore bench`): when enabled, the
 * U-Net wraps each layer call in NN_TIMED and the seconds add up here. */
typedef enum { NN_PROF_CONV, NN_PROF_NORM, NN_PROF_ATTN, NN_PROF_LINEAR, NN_PROF_N } nn_prof_kind;
extern int nn_prof_on;
extern double nn_prof_sec[NN_PROF_N];
double nn_prof_now(void);
#define NN_TIMED(kind, call)                                                                                           \
    do {                                                                                                               \
        if (nn_prof_on) {                                                                                              \
            double nn_t0_ = nn_prof_now();                                                                             \
            call;                                                                                                      \
            nn_prof_sec[kind] += nn_prof_now() - nn_t0_;                                                               \
        } else {                                                                                                       \
            call;                                                                                                      \
        }                                                                                                              \
    } while (0)

#endif
