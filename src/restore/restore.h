/*
 * restore.h - one image through a mode, the U-Net and a sampler: the engine
 * of dr_restore (the public entry points in src/api/ hand it a model's
 * network and description).
 */
#ifndef DR_RESTORE_RESTORE_H
#define DR_RESTORE_RESTORE_H

#include "diffrestore.h"
#include "modes/mode.h"
#include "unet/unet.h"

#define DEFAULT_TILE    256
#define DEFAULT_OVERLAP 32

/* What the restore needs of a model. */
typedef struct {
    const model_info *info;
    const unet_layout *L;
    const float *params; /* L->n_floats */
} restore_net;

/* dr_restore_samples on net (see diffrestore.h). */
int restore_samples(const restore_net *net, const dr_image *in, const dr_image *mask, const dr_params *p, int n,
                    dr_image *outs, dr_image *mean, dr_image *uncertainty);

/* Tests only: when set, inpaint runs the network on every tile, the
 * reference that skipping the tiles without holes must equal bit for bit. */
extern int restore_all_tiles;

#endif
