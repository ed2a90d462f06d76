/* fuzz_safetensors.c - the safetensors parser (src/weights/safetensors.c)
 * and the weights loader behind dr_model_load (model_from_tensors in
 * src/api/model.c: metadata -> config, config -> parameter layout, every
 * tensor's name and shape against the layout).
 *
 * The parser bounds every allocation by the input's length (F16 tensors
 * become F32: at most twice the input). The model loader checks every
 * tensor's name and shape against the config's layout before it allocates
 * the parameter block (finding F1 in docs/RELIABILITY.md was the reverse
 * order: a few hundred bytes of metadata asked for hundreds of GB), so any
 * config the metadata describes is handed to it here; -malloc_limit_mb
 * catches a regression. */
#include "fuzz.h"

#include "api/model_internal.h"
#include "diffrestore.h"

#include <math.h>
#include <string.h>

static void check_file(const dr_tensor_file *tf, size_t size) {
    FUZZ_CHECK(tf->n_tensors >= 0 && tf->n_meta >= 0);
    uint64_t total = 0;
    for (int i = 0; i < tf->n_tensors; i++) {
        const dr_tensor *t = &tf->tensors[i];
        FUZZ_CHECK(t->name && t->name[0]);
        FUZZ_CHECK(strcmp(t->name, "__metadata__") != 0);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= DR_MAX_DIMS);
        int64_t n = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            n *= t->shape[d];
        }
        FUZZ_CHECK(n == t->numel);
        FUZZ_CHECK(t->data != NULL);
        /* Touch every element: ASan sees a short buffer. */
        volatile float sink = 0;
        for (int64_t j = 0; j < t->numel; j++) sink += t->data[j];
        (void)sink;
        total += (uint64_t)t->numel;
        /* Names are unique: the lookup finds this very tensor. */
        FUZZ_CHECK(dr_tensor_file_get(tf, t->name) == t);
    }
    /* Every element came from at least 2 bytes of the input (F16). */
    FUZZ_CHECK(total <= size / 2);
    for (int i = 0; i < tf->n_meta; i++) {
        FUZZ_CHECK(tf->meta_keys[i] && tf->meta_values[i]);
        FUZZ_CHECK(dr_tensor_file_meta(tf, tf->meta_keys[i]) != NULL);
    }
}

static void try_model(const dr_tensor_file *tf) {
    model_info mi;
    if (model_config_from_meta(tf, "fuzz", &mi) != DR_OK) {
        /* The loader must refuse the same file, without allocating a model. */
        dr_model *m = (dr_model *)1;
        FUZZ_CHECK(model_from_tensors(tf, "fuzz", &m) != DR_OK);
        FUZZ_CHECK(m == NULL);
        return;
    }
    FUZZ_CHECK(dr_unet_config_validate(&mi.cfg) == DR_OK);
    const int64_t n_params = dr_unet_config_num_params(&mi.cfg);
    FUZZ_CHECK(n_params > 0);
    dr_model *m = NULL;
    int rc = model_from_tensors(tf, "fuzz", &m);
    if (rc != DR_OK) {
        FUZZ_CHECK(rc < 0 && m == NULL);
        return;
    }
    FUZZ_CHECK(m != NULL);
    /* A model loads only when the file holds exactly its parameters. */
    int64_t total = 0;
    for (int i = 0; i < tf->n_tensors; i++) total += tf->tensors[i].numel;
    FUZZ_CHECK(total == n_params);
    FUZZ_CHECK(memcmp(dr_model_config(m), &mi.cfg, sizeof mi.cfg) == 0);
    FUZZ_CHECK(dr_model_mode(m) == mi.mode);
    FUZZ_CHECK(dr_model_meta(m, "format") != NULL);
    double smin = 0, smax = 0;
    dr_model_scale_range(m, &smin, &smax);
    FUZZ_CHECK(smin >= 1.0 && smin <= smax && smax <= 16.0);
    dr_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dr_tensor_file tf;
    memset(&tf, 0xA5, sizeof tf); /* the reader must reset it */
    int rc = dr_tensor_file_read_memory(data, size, "fuzz", &tf);
    if (rc != DR_OK) {
        FUZZ_CHECK(rc < 0);
        FUZZ_CHECK(tf.n_tensors == 0 && tf.tensors == NULL && tf.n_meta == 0);
        FUZZ_CHECK(dr_last_error() != NULL);
        dr_tensor_file_free(&tf);
        return 0;
    }
    check_file(&tf, size);
    try_model(&tf);
    dr_tensor_file_free(&tf);
    return 0;
}
