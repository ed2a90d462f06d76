/* The inside of dr_model, shared by the library's modules (training and the
 * samplers need the layout and the parameter block; the public API does not). */
#ifndef DR_API_MODEL_INTERNAL_H
#define DR_API_MODEL_INTERNAL_H

#include "diffrestore.h"
#include "modes/mode.h"
#include "unet/unet.h"

struct dr_model {
    model_info info;
    unet_layout L;
    float *params;       /* L.n_floats, one allocation */
    dr_tensor_file meta; /* metadata only (provenance is kept on save) */
    unet_run run;        /* cached inference run for the last (B, H, W) */
};

int model_config_from_meta(const dr_tensor_file *tf, const char *path, model_info *mi);
int model_meta_from_config(dr_tensor_file *tf, const model_info *mi);
int model_from_tensors(const dr_tensor_file *tf, const char *path, dr_model **out);

#endif
