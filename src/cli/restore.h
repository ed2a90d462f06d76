/* The restore commands (colorize, inpaint, superres): one implementation,
 * shared by cmd_restore.c (the run), restore_options.c (options and help),
 * restore_item.c (one input: outputs, restore, save) and restore_mask.c
 * (inpaint's masks). */
#ifndef DR_CLI_RESTORE_H
#define DR_CLI_RESTORE_H

#include "batch.h"
#include "cli.h"
#include "progress.h"

enum { PROG_NONE = 0, PROG_BAR = 1, PROG_JSON = 2 };

typedef struct {
    long long x, y, w, h;
} box;

/* The options. */
typedef struct {
    dr_mode mode;
    const char *cmd;
    cli_common c;
    dr_params p;
    cli_sampling s; /* --steps, --sampler, --eta, --spacing, --samples, --reduce */
    const char *uncertainty;
    const char *mask;
    box *boxes;
    int n_boxes;
    int progress, progress_given;
    const char *format; /* "png", "jpg", "tif", "webp" or NULL */
    int recursive, skip_existing;
    int shard_k, shard_n, shard_given;
    int seed_random;
    int scale_given, width_given, height_given;
    int keep_profile, strip_metadata;
} ropts;

/* One run. */
typedef struct {
    ropts *o;
    dr_model *m;
    char *weights_path;
    batch_list b;
    char **outs;    /* primary output of every item (sorted list order) */
    int batch;      /* several inputs or a directory: -o is a directory */
    int out_is_dir; /* single input with -o DIR */
    int unc_is_dir;
    int mask_is_dir;
    dr_image shared_mask; /* --mask FILE, as loaded */
    int have_shared_mask;
    double scale_min, scale_max;
    int have_range;
    dr_save_options save;
    progress_run pr; /* the bar, notes, failures (pr.failed) */
    int done, skipped;
    /* metadata */
    char weights_sha256[65];
    unsigned char *srgb_icc; /* the sRGB profile embedded in outputs of inputs that had a profile */
    size_t srgb_icc_size;
    unsigned dropped[5];  /* per output dr_format: DR_META_* parts left out, reported once */
    int exif_partial;     /* EXIF into a TIFF: only its IFD0 text fields */
    int profile_mismatch; /* --keep-profile impossible for some output (gray/RGB) */
} run;

/* restore_options.c: parse argv into o (defaults set first). Returns -1 to
 * go on, or an exit code (help printed, or a usage error). */
int restore_parse_options(ropts *o, int argc, char **argv);

/* restore_item.c */
/* Process one input. Returns 1 when the run was interrupted during it. */
int restore_item(run *x, batch_item *it, const char *primary);
/* The uncertainty map's path of an item (NULL without --uncertainty). */
char *restore_uncertainty_output(run *x, const batch_item *it);
/* The parts of the inputs' metadata the outputs' formats could not hold, once per run. */
void restore_report_dropped(run *x);
/* The last component of a path. */
const char *restore_base_of(const char *p);

/* restore_mask.c (inpaint): build the item's mask into *mask (1-channel
 * 8-bit, 255 = hole), or set *use_alpha when the input's alpha is the mask.
 * Returns 0, or -1 after reporting the failure. */
int restore_build_mask(run *x, const batch_item *it, const dr_image *img, dr_image *mask, int *use_alpha,
                       long long *holes, char **mask_path);

#endif
