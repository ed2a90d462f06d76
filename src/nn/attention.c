/*
 * Single-head self-attention core over N positions (see nn.h).
 *
 * Per sample, with q, k, v the [C, N] slices of qkv [3C, N]:
 *   S = q^T k / sqrt(C)              [N, N], row i = query i
 *   A = softmax over each row of S   (max-subtracted)
 *   out = v A^T                      [C, N]: out[c, i] = sum_j v[c, j] A[i, j]
 * Backward:
 *   dv = dout A                      [C, N]
 *   dA = dout^T v                    [N, N]
 *   dS = A * (dA - rowsum(dA * A))
 *   dq = k dS^T / sqrt(C),  dk = q dS / sqrt(C)
 *
 * Work is split into blocks of ATT_BLOCK rows (queries) or columns (keys), a
 * fixed partition independent of the thread count; each block is one sgemm
 * call from one thread (OpenBLAS single-threaded), so every output element is
 * computed by the same call whatever the number of threads.
 */
#include "nn/nn.h"

#include <math.h>

#define ATT_BLOCK 32 /* rows / columns per work item */

size_t attention_forward_scratch(int C, int N) { return (size_t)N * N; }  // one A [N, N]
size_t attention_backward_scratch(int C, int N) { return (size_t)N * N; } // one dA/dS [N, N]

/* In-place softmax of one row of n logits; sum in double, fixed order. */
static void softmax_row(float *s, int n) {
    float mx = s[0];
    for (int j = 1; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
        s[j] = expf(s[j] - mx); // <= 1: no overflow
        sum += s[j];
    }
    const float inv = (float)(1.0 / sum); // sum >= 1 (the max term is 1)
    for (int j = 0; j < n; j++) s[j] *= inv;
}

void attention_forward(float *out, float *att, const float *qkv, int B, int C, int N, float *scratch) {
    const float scale = 1.0f / sqrtf((float)C);
    const int nblk = (N + ATT_BLOCK - 1) / ATT_BLOCK;
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * 3 * C * N; // [C, N]
        const float *k = q + (size_t)C * N;           // [C, N]
        const float *v = k + (size_t)C * N;           // [C, N]
        float *o = out + (size_t)b * C * N;           // [C, N]
        // inference keeps only one sample's A in the scratch, so samples run one after another
        float *A = att ? att + (size_t)b * N * N : scratch; // [N, N]
#pragma omp parallel for schedule(static) num_threads(nn_threads())
        for (int blk = 0; blk < nblk; blk++) { // queries i0 .. i0+nb-1
            const int i0 = blk * ATT_BLOCK;
            const int nb = N - i0 < ATT_BLOCK ? N - i0 : ATT_BLOCK;
            float *Ab = A + (size_t)i0 * N; // [nb, N]
            // S[i0:i0+nb, :] = scale * q[:, i0:i0+nb]^T k       [nb, C] x [C, N]
            nn_gemm(1, 0, nb, N, C, scale, q + i0, N, k, N, 0.0f, Ab, N);
            for (int r = 0; r < nb; r++) softmax_row(Ab + (size_t)r * N, N);
            // out[:, i0:i0+nb] = v A[i0:i0+nb, :]^T              [C, N] x [N, nb]
            nn_gemm(0, 1, C, nb, N, 1.0f, v, N, Ab, N, 0.0f, o + i0, N);
        }
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int C, int N,
                        float *scratch) {
    if (!dqkv) return; // nothing to compute
    const float scale = 1.0f / sqrtf((float)C);
    const int nblk = (N + ATT_BLOCK - 1) / ATT_BLOCK;
    float *dS = scratch; // [N, N], dA then dS
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * 3 * C * N; // [C, N]
        const float *k = q + (size_t)C * N;
        const float *v = k + (size_t)C * N;
        const float *A = att + (size_t)b * N * N;   // [N, N]
        const float *dO = dout + (size_t)b * C * N; // [C, N]
        float *dq = dqkv + (size_t)b * 3 * C * N;   // [C, N]
        float *dk = dq + (size_t)C * N;
        float *dv = dk + (size_t)C * N;
#pragma omp parallel num_threads(nn_threads())
        {
            // phase 1, per block of query rows: dA, dS and the dq columns of those queries
#pragma omp for schedule(static)
            for (int blk = 0; blk < nblk; blk++) {
                const int i0 = blk * ATT_BLOCK;
                const int nb = N - i0 < ATT_BLOCK ? N - i0 : ATT_BLOCK;
                float *dSb = dS + (size_t)i0 * N; // [nb, N]
                // dA[i0:i0+nb, :] = dout[:, i0:i0+nb]^T v        [nb, C] x [C, N]
                nn_gemm(1, 0, nb, N, C, 1.0f, dO + i0, N, v, N, 0.0f, dSb, N);
                for (int r = 0; r < nb; r++) { // softmax backward, row by row
                    float *d = dSb + (size_t)r * N;
                    const float *a = A + (size_t)(i0 + r) * N;
                    double dot = 0.0; // sum_j dA_ij A_ij
                    for (int j = 0; j < N; j++) dot += (double)d[j] * a[j];
                    const float dotf = (float)dot;
                    for (int j = 0; j < N; j++) d[j] = a[j] * (d[j] - dotf);
                }
                // dq[:, i0:i0+nb] += scale * k dS[i0:i0+nb, :]^T  [C, N] x [N, nb]
                nn_gemm(0, 1, C, nb, N, scale, k, N, dSb, N, 1.0f, dq + i0, N);
            }
            // (implicit barrier: dk needs every row of dS)
            // phase 2, per block of key columns: dk and dv, each a sum over all queries
#pragma omp for schedule(static)
            for (int blk = 0; blk < nblk; blk++) {
                const int j0 = blk * ATT_BLOCK;
                const int nb = N - j0 < ATT_BLOCK ? N - j0 : ATT_BLOCK;
                // dk[:, j0:j0+nb] += scale * q dS[:, j0:j0+nb]    [C, N] x [N, nb]
                nn_gemm(0, 0, C, nb, N, scale, q, N, dS + j0, N, 1.0f, dk + j0, N);
                // dv[:, j0:j0+nb] += dout A[:, j0:j0+nb]           [C, N] x [N, nb]
                nn_gemm(0, 0, C, nb, N, 1.0f, dO, N, A + j0, N, 1.0f, dv + j0, N);
            }
        }
    }
}
