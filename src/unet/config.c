/* config.c - the U-Net's hyper-parameters: parse, validate, count. */
#include "unet/unet.h"

#include "common/error.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Parse a comma list of small positive integers ("1,2,2,4"); empty is allowed
 * when allow_empty. Returns the count or -1. */
static int parse_int_list(const char *s, size_t len, int *out, int max, int allow_empty) {
    int n = 0;
    size_t i = 0;
    if (len == 0) return allow_empty ? 0 : -1;
    while (i < len) {
        if (!isdigit((unsigned char)s[i])) return -1;
        long v = 0;
        while (i < len && isdigit((unsigned char)s[i])) {
            v = v * 10 + (s[i] - '0');
            if (v > 100000) return -1;
            i++;
        }
        if (n >= max) return -1;
        out[n++] = (int)v;
        if (i < len) {
            if (s[i] != ',') return -1;
            i++;
            if (i == len) return -1; /* trailing comma */
        }
    }
    return n;
}

int dr_unet_config_parse(dr_unet_config *cfg, const char *spec) {
    /* Keys are separated by commas too, so a value runs until the next "key=". */
    static const char *keys[] = {"base", "mult", "res", "attn", "groups", "in", "out"};
    const char *p = spec;
    while (*p) {
        const char *eq = strchr(p, '=');
        if (!eq) return error_set(DR_ERR_INVALID, "config '%s': expected key=value at '%s'", spec, p);
        size_t klen = (size_t)(eq - p);
        int which = -1;
        for (int i = 0; i < (int)(sizeof keys / sizeof *keys); i++)
            if (strlen(keys[i]) == klen && strncmp(p, keys[i], klen) == 0) which = i;
        if (which < 0)
            return error_set(DR_ERR_INVALID, "config '%s': unknown key '%.*s' (base, mult, res, attn, groups, in, out)",
                             spec, (int)klen, p);
        const char *v = eq + 1, *end = v;
        /* the value ends at the comma that starts the next "key=" */
        for (;;) {
            const char *c = strchr(end, ',');
            if (!c) {
                end = v + strlen(v);
                break;
            }
            const char *e2 = c + 1;
            while (*e2 && isalpha((unsigned char)*e2)) e2++;
            if (*e2 == '=' && e2 > c + 1) {
                end = c;
                break;
            }
            end = c + 1;
        }
        size_t vlen = (size_t)(end - v);
        int vals[DR_MAX_LEVELS + 1];
        int n = parse_int_list(v, vlen, vals, DR_MAX_LEVELS, which == 3);
        if (n < 0 || (which != 1 && which != 3 && n != 1))
            return error_set(DR_ERR_INVALID, "config '%s': bad value for '%.*s'", spec, (int)klen, p);
        switch (which) {
        case 0: cfg->base_channels = vals[0]; break;
        case 1:
            cfg->n_levels = n;
            for (int i = 0; i < n; i++) cfg->channel_mult[i] = vals[i];
            break;
        case 2: cfg->num_res_blocks = vals[0]; break;
        case 3:
            memset(cfg->attention, 0, sizeof cfg->attention);
            for (int i = 0; i < n; i++) {
                if (vals[i] >= DR_MAX_LEVELS)
                    return error_set(DR_ERR_INVALID, "config '%s': attention level %d out of range", spec, vals[i]);
                cfg->attention[vals[i]] = 1;
            }
            break;
        case 4: cfg->groups = vals[0]; break;
        case 5: cfg->in_channels = vals[0]; break;
        case 6: cfg->out_channels = vals[0]; break;
        }
        p = *end ? end + 1 : end;
    }
    return DR_OK;
}

int dr_unet_config_validate(const dr_unet_config *c) {
    if (c->in_channels < 1 || c->in_channels > 64 || c->out_channels < 1 || c->out_channels > 64)
        return error_set(DR_ERR_INVALID, "config: in/out channels %d/%d out of range 1..64", c->in_channels,
                         c->out_channels);
    if (c->base_channels < 2 || c->base_channels > 1024 || c->base_channels % 2)
        return error_set(DR_ERR_INVALID, "config: base_channels %d must be even, 2..1024", c->base_channels);
    if (c->n_levels < 1 || c->n_levels > DR_MAX_LEVELS)
        return error_set(DR_ERR_INVALID, "config: %d levels, need 1..%d", c->n_levels, DR_MAX_LEVELS);
    if (c->num_res_blocks < 1 || c->num_res_blocks > 8)
        return error_set(DR_ERR_INVALID, "config: num_res_blocks %d out of range 1..8", c->num_res_blocks);
    if (c->groups < 1) return error_set(DR_ERR_INVALID, "config: groups %d must be positive", c->groups);
    if (c->base_channels % c->groups)
        return error_set(DR_ERR_INVALID, "config: groups %d must divide base_channels %d", c->groups, c->base_channels);
    for (int l = 0; l < c->n_levels; l++)
        if (c->channel_mult[l] < 1 || c->channel_mult[l] > 64)
            return error_set(DR_ERR_INVALID, "config: channel_mult[%d] = %d out of range 1..64", l, c->channel_mult[l]);
    for (int l = c->n_levels; l < DR_MAX_LEVELS; l++)
        if (c->attention[l])
            return error_set(DR_ERR_INVALID, "config: attention on level %d, but there are %d levels", l, c->n_levels);
    return DR_OK;
}
