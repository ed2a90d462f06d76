/* params.c - dr_params: the restore options' defaults, and each mode's
 * sampling presets (fast, default, best). */
#include "restore/restore.h"

#include "common/error.h"
#include "modes/mode.h"

#include <string.h>

/* Mode-independent defaults (the "best" column of the table below for
 * superres and inpaint). */
void dr_params_init(dr_params *p) {
    memset(p, 0, sizeof *p);
    p->sampler = DR_SAMPLER_DDIM;
    p->steps = 20;
    p->eta = 1.0;
    p->spacing = DR_SPACING_TRAILING;
    p->seed = 0;
    p->tile = DEFAULT_TILE;
    p->tile_overlap = DEFAULT_OVERLAP;
    p->render_size = DR_RENDER_SIZE_AUTO;
    p->guidance = DR_GUIDANCE_AUTO;
}

static const char *const quality_names[] = {"default", "fast", "best"};

const char *dr_quality_name(dr_quality q) {
    return (unsigned)q < sizeof quality_names / sizeof *quality_names ? quality_names[q] : "?";
}

int dr_quality_from_name(const char *name, dr_quality *out) {
    for (size_t i = 0; name && i < sizeof quality_names / sizeof *quality_names; i++)
        if (!strcmp(name, quality_names[i])) {
            *out = (dr_quality)i;
            return DR_OK;
        }
    return error_set(DR_ERR_INVALID, "unknown preset '%s' (" DR_QUALITY_NAMES ")", name ? name : "");
}

/* The presets are each mode's row (mode_ops.presets), from the sampler
 * sweeps on the validation photos (docs/TUNING.md, "Presets"; the rule is in
 * the header). Re-injected noise (eta 1) averages the model's errors away: it
 * is the most accurate at 20 steps for superres and inpaint. */
static const mode_preset *preset_find(dr_mode mode, dr_quality q) {
    const mode_ops *ops = mode_ops_get(mode);
    if ((unsigned)q >= sizeof quality_names / sizeof *quality_names || !ops) return NULL;
    return &ops->presets[q];
}

static void preset_apply(dr_params *p, const mode_preset *ps) {
    p->sampler = ps->sampler;
    p->steps = ps->steps;
    p->eta = ps->eta;
}

int dr_params_init_quality(dr_params *p, dr_mode mode, dr_quality q) {
    dr_params_init(p);
    const mode_preset *ps = preset_find(mode, q);
    if (!ps)
        return error_set(DR_ERR_INVALID, "dr_params_init_quality: unknown mode %d or preset %d", (int)mode, (int)q);
    preset_apply(p, ps);
    return DR_OK;
}

/* An unknown mode keeps dr_params_init's values (and sets no error). */
void dr_params_init_mode(dr_params *p, dr_mode mode) {
    dr_params_init(p);
    const mode_preset *ps = preset_find(mode, DR_QUALITY_DEFAULT);
    if (ps) preset_apply(p, ps);
}
