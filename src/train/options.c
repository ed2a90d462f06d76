/* options.c - dr_train_options_init: the training recipe's defaults (the
 * degradations' come from each mode, src/modes/MODE.c). */
#include "diffrestore.h"
#include "modes/mode.h"

#include <string.h>

void dr_train_options_init(dr_train_options *o) {
    memset(o, 0, sizeof *o);
    dr_unet_config_parse(&o->config, DR_UNET_CONFIG_DEFAULT);
    o->steps = 10000;
    o->batch = 16;
    o->patch = 64;
    o->lr = 2e-4f;
    o->warmup_steps = 200;
    o->weight_decay = 0.0f;
    o->grad_clip = 1.0f;
    o->ema_decay = 0.999f;
    mode_train_options mo; /* each mode's defaults (src/modes/MODE.c) */
    mode_train_options_init(&mo);
    o->scale_min = mo.scale_min;
    o->scale_max = mo.scale_max;
    o->hole_min = mo.hole_min;
    o->hole_max = mo.hole_max;
    o->seed = 1;
    o->checkpoint_every = 250;
    o->val_every = 500;
    o->val_batches = 4;
    o->predict_v = 1;
    o->loss_weight = DR_LOSS_UNIFORM;
    o->snr_gamma = 5.0f;
    o->t_sampling = DR_T_UNIFORM;
    o->masks = DR_MASKS_LEGACY;
    o->scale_dist = DR_SCALE_DIST_UNIFORM;
    o->augment = DR_AUGMENT_FLIP;
    o->zoom_max = 4;
    o->anneal_stages = 2; /* anneal_steps 0: no anneal */
    o->t_mean = 2.4f;
    o->t_std = 2.4f;
    o->val_seed = -1;
}
