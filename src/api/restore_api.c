/* restore_api.c - dr_restore and dr_restore_samples: a model's network and
 * description handed to the restore engine (src/restore/). */
#include "api/model_internal.h"

#include "common/error.h"
#include "restore/restore.h"

#include <string.h>

int dr_restore_samples(dr_model *m, const dr_image *in, const dr_image *mask, const dr_params *p, int n, dr_image *outs,
                       dr_image *mean, dr_image *uncertainty) {
    if (!m) return error_set(DR_ERR_INVALID, "dr_restore: NULL argument");
    const restore_net net = {&m->info, &m->L, m->params};
    return restore_samples(&net, in, mask, p, n, outs, mean, uncertainty);
}

int dr_restore(dr_model *m, const dr_image *in, const dr_image *mask, const dr_params *p, dr_image *out) {
    if (!out) return error_set(DR_ERR_INVALID, "dr_restore: NULL output");
    memset(out, 0, sizeof *out);
    return dr_restore_samples(m, in, mask, p, 1, out, NULL, NULL);
}
