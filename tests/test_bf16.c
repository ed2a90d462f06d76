/* test_bf16.c - the bf16 path (issue 21 item 3): the hardware float -> bf16
 * conversion against a software round-to-nearest-even reference; bf16 vs fp32
 * agreement of the 3x3 convolutions (forward, backward-data, weight gradient)
 * at U-Net shapes with stated tolerances; thread-count independence of the
 * bf16 path; and that everything falls back to fp32, and says so, on a CPU
 * without AVX512-BF16 (simulated with nn_bf16_hide, and for real when the
 * CPU lacks it). */
#include "nn/nn.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_conversion(void) {
    enum { N = 4096 };
    float x[N];
    uint16_t hw[N];
    test_rng r = {7};
    for (int i = 0; i < N; i++) {
        const uint32_t u = (uint32_t)test_rng_u64(&r);
        x[i] = from_bits(u);
    }
    /* exact ties and near-ties, both parities, both signs */
    x[0] = from_bits(0x3F808000u); /* 1.00390625: tie, even below -> down */
    x[1] = from_bits(0x3F818000u); /* tie, odd below -> up */
    x[2] = from_bits(0x3F808001u); /* just above a tie -> up */
    x[3] = from_bits(0x3F807FFFu); /* just below a tie -> down */
    x[4] = from_bits(0xBF818000u);
    x[5] = from_bits(0x7F7FFFFFu); /* FLT_MAX rounds to inf */
    x[6] = 0.0f, x[7] = -0.0f, x[8] = INFINITY, x[9] = -INFINITY;
    x[10] = from_bits(0x00000001u), x[11] = from_bits(0x807FFFFFu); /* denormals: to zero */
    CHECK(nn_bf16_round_sw(x[0]) == 0x3F80 && nn_bf16_round_sw(x[1]) == 0x3F82 &&
              nn_bf16_round_sw(x[2]) == 0x3F81 && nn_bf16_round_sw(x[3]) == 0x3F80 &&
              nn_bf16_round_sw(x[5]) == 0x7F80,
          "software bf16 rounding: ties to even");
    if (nn_bf16_round_hw(hw, x, N) != 0) {
        printf("SKIP hardware bf16 conversion: this CPU has no AVX512-BF16\n");
        return;
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        const uint16_t sw = nn_bf16_round_sw(x[i]);
        const int nan = x[i] != x[i];
        if (nan ? (hw[i] & 0x7F80) != 0x7F80 || !(hw[i] & 0x7F) : hw[i] != sw) {
            if (bad++ < 5) printf("  x %08x hw %04x sw %04x\n", (unsigned)to_bits(x[i]), hw[i], sw);
        }
    }
    CHECK(bad == 0, "vcvtneps2bf16 == software RNE on %d values (%d differ)", N, bad);
}

typedef struct {
    float *out, *dinp, *dw, *db;
} conv_res;

static conv_res run_conv(const conv2d_dims *d, const float *inp, const float *w, const float *bias, const float *g) {
    const size_t nin = (size_t)d->B * d->Cin * d->H * d->W, nout = (size_t)d->B * d->Cout * d->H * d->W;
    const size_t nw = (size_t)d->Cout * d->Cin * 9;
    conv_res r = {falloc(nout), falloc(nin), falloc(nw), falloc(d->Cout)};
    float *fs = falloc(conv2d_forward_scratch(d)), *bs = falloc(conv2d_backward_scratch(d));
    conv2d_forward(r.out, inp, w, bias, d, fs);
    conv2d_backward(r.dinp, r.dw, r.db, g, inp, w, d, bs);
    free(fs);
    free(bs);
    return r;
}
static void free_res(conv_res *r) { free(r->out), free(r->dinp), free(r->dw), free(r->db); }

/* max |a - b| / max |b| */
static double rel(const float *a, const float *b, size_t n) {
    const double m = test_max_abs(b, n);
    return test_max_abs_diff(a, b, n) / (m > 0 ? m : 1);
}

/* bf16 vs fp32 for one shape; tolerances: the products are of bf16 values
 * (8-bit significands, relative error <= 2^-8 per factor), summed in fp32,
 * so a sum of n terms of random sign is off by about 2^-8 sqrt(n) of its
 * terms' size: 2% of the largest output is a loose bound for n <= 2304. */
static void test_agreement(int B, int Cin, int Cout, int H, int W) {
    conv2d_dims d = {B, Cin, H, W, Cout, 3, 1};
    const size_t nin = (size_t)B * Cin * H * W, nout = (size_t)B * Cout * H * W, nw = (size_t)Cout * Cin * 9;
    float *inp = falloc(nin), *w = falloc(nw), *bias = falloc(Cout), *g = falloc(nout);
    test_rng r = {(uint64_t)(B * 1000 + Cin * 10 + Cout)};
    test_fill_normal(&r, inp, nin, 1.0f);
    test_fill_normal(&r, w, nw, 1.0f / sqrtf(9.0f * Cin));
    test_fill_normal(&r, bias, Cout, 0.1f);
    test_fill_normal(&r, g, nout, 1.0f);
    nn_set_precision(NN_PREC_FP32);
    conv_res a = run_conv(&d, inp, w, bias, g);
    CHECK(nn_set_precision(NN_PREC_BF16) == 0 && nn_use_bf16(), "bf16 selected");
    conv_res b = run_conv(&d, inp, w, bias, g);
    const double eo = rel(b.out, a.out, nout), ex = rel(b.dinp, a.dinp, nin), ew = rel(b.dw, a.dw, nw);
    printf("  %dx%dx%d %d->%d: rel max err out %.2e dinp %.2e dW %.2e\n", B, H, W, Cin, Cout, eo, ex, ew);
    CHECK(eo < 2e-2 && eo > 0, "forward bf16 within 2%% (and not the fp32 path): %.2e", eo);
    CHECK(ex < 2e-2, "backward-data bf16 within 2%%: %.2e", ex);
    CHECK(ew < 2e-2, "weight gradient bf16 within 2%%: %.2e", ew);
    CHECK(test_max_abs_diff(b.db, a.db, Cout) == 0, "bias gradient stays fp32");
    /* thread-count independence of the bf16 path */
    nn_init_threads(1);
    conv_res c = run_conv(&d, inp, w, bias, g);
    nn_init_threads(2);
    CHECK(memcmp(c.out, b.out, nout * 4) == 0 && memcmp(c.dinp, b.dinp, nin * 4) == 0 &&
              memcmp(c.dw, b.dw, nw * 4) == 0,
          "bf16 results bit-identical for 1 and 2 threads");
    nn_set_precision(NN_PREC_FP32);
    free_res(&a), free_res(&b), free_res(&c);
    free(inp), free(w), free(bias), free(g);
}

/* Without AVX512-BF16: BF16 is refused, AUTO runs fp32, results are fp32's bits. */
static void test_fallback(void) {
    conv2d_dims d = {2, 32, 12, 10, 24, 3, 1};
    const size_t nin = 2 * 32 * 120, nout = 2 * 24 * 120, nw = 24 * 32 * 9;
    float *inp = falloc(nin), *w = falloc(nw), *g = falloc(nout);
    test_rng r = {3};
    test_fill_normal(&r, inp, nin, 1.0f);
    test_fill_normal(&r, w, nw, 0.05f);
    test_fill_normal(&r, g, nout, 1.0f);
    nn_set_precision(NN_PREC_FP32);
    conv_res a = run_conv(&d, inp, w, NULL, g);
    nn_bf16_hide(1);
    CHECK(!nn_bf16_available(), "hidden: not available");
    CHECK(nn_set_precision(NN_PREC_BF16) == -1 && nn_precision() == NN_PREC_FP32, "hidden: BF16 refused, fp32 kept");
    CHECK(nn_set_precision(NN_PREC_AUTO) == 0 && !nn_use_bf16(), "hidden: AUTO runs fp32");
    uint16_t h;
    const float one = 1.0f;
    CHECK(nn_bf16_round_hw(&h, &one, 1) == -1, "hidden: no hardware conversion");
    conv_res b = run_conv(&d, inp, w, NULL, g);
    CHECK(memcmp(a.out, b.out, nout * 4) == 0 && memcmp(a.dinp, b.dinp, nin * 4) == 0 &&
              memcmp(a.dw, b.dw, nw * 4) == 0,
          "hidden: AUTO gives fp32's bits");
    nn_bf16_hide(0);
    nn_set_precision(NN_PREC_FP32);
    free_res(&a), free_res(&b);
    free(inp), free(w), free(g);
}

int main(void) {
    nn_init_threads(2);
    test_conversion();
    test_fallback();
    if (!nn_bf16_available()) {
        printf("SKIP bf16 convolution agreement: this CPU has no AVX512-BF16 (the fp32 path ran instead)\n");
        return test_summary("test_bf16");
    }
    test_agreement(16, 64, 64, 16, 16);
    test_agreement(4, 32, 32, 24, 20);
    test_agreement(2, 128, 64, 8, 8);
    test_agreement(1, 17, 33, 9, 11); /* odd channels and sizes */
    test_agreement(3, 256, 128, 5, 7);
    return test_summary("test_bf16");
}
