/* The inside of dr_model, shared by the library's modules (training and the
 * samplers need the layout and the parameter block; the public API does not). */
#ifndef DR_API_MODEL_INTERNAL_H
#define DR_API_MODEL_INTERNAL_H

#include "diffrestore.h"
#include "unet/unet.h"

/* The range of target_scale a weights file may hold (MODEL.md): checked at
 * load, when training measures it, and at export. */
#define DR_TARGET_SCALE_MIN 1e-3
#define DR_TARGET_SCALE_MAX 1e3

/* What the metadata says beyond the network's shape. */
typedef struct {
    dr_unet_config cfg;
    dr_mode mode;
    int timesteps;
    int schedule_linear; /* 0: cosine */
    int predict_v;       /* 0: eps */
    float target_scale;
    float scale_min, scale_max; /* superres */
    int render_size;            /* colorize: trained at this working long side (0: full resolution) */
} dr_model_info;

struct dr_model {
    dr_model_info info;
    unet_layout L;
    float *params;       /* L.n_floats, one allocation */
    dr_tensor_file meta; /* metadata only (provenance is kept on save) */
    unet_run run;        /* cached inference run for the last (B, H, W) */
};

int dr_mode_channels(dr_mode m, int *in, int *out);
int dr_model_config_from_meta(const dr_tensor_file *tf, const char *path, dr_model_info *mi);
int dr_model_meta_from_config(dr_tensor_file *tf, const dr_model_info *mi);
int dr_model_from_tensors(const dr_tensor_file *tf, const char *path, dr_model **out);
void dr_model_info_defaults(dr_model_info *mi, const dr_unet_config *cfg, dr_mode mode);

#endif
