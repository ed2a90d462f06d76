/* The restore commands' options and help (see restore.h). */
#include "boxparse.h"
#include "restore.h"
#include "weights_path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ help */

static void print_help(dr_mode mode) {
    dr_params d;
    dr_params_init_mode(&d, mode);
    FILE *f = stdout;
    char pre[3][48]; /* what each preset runs for this mode */
    for (int q = 0; q < 3; q++) {
        dr_params x;
        dr_params_init_quality(&x, mode, (dr_quality)q);
        snprintf(pre[q], sizeof pre[q], "%s %d steps eta %g", dr_sampler_name(x.sampler), x.steps, x.eta);
    }
    const char *name = dr_mode_name(mode);
    const dr_mode_info *mi = dr_mode_get(mode); /* the usage, summary and options of the mode's table entry */
    fprintf(f, "Usage: diffrestore %s%s [options] INPUT...%s -o OUTPUT\n%s\n\n", name,
            (mi->flags & DR_MODE_TAKES_SCALE) ? " (--scale S | --width W | --height H)" : "",
            (mi->flags & DR_MODE_TAKES_MASK) ? " [--mask MASK | --box x,y,w,h...]" : "", mi->summary);
    if (mi->options_help[0]) fprintf(f, "%s\n", mi->options_help);
    fprintf(f,
            "Inputs and outputs:\n"
            "  INPUT                   PNG, JPEG, TIFF (first page) or WebP files and\n"
            "                          directories; EXIF orientation is applied on load\n"
            "  -o, --output PATH       one input: the output file (its extension picks PNG,\n"
            "                          JPEG, TIFF or WebP), or an existing directory; default\n"
            "                          NAME_%s.png beside the input. Several inputs or a\n"
            "                          directory: an output directory (created), mirroring\n"
            "                          the inputs' relative paths\n"
            "  -r, --recursive         walk input directories' subdirectories too\n"
            "      --format EXT        output type in a directory: png, jpg, tif, webp\n"
            "                          (default: each input's own format)\n"
            "      --quality Q         JPEG quality 1..100 (default 92); WebP is lossless\n"
            "                          unless Q is given (then lossy at Q). A preset name\n"
            "                          (fast, default, best) is --preset instead\n"
            "      --overwrite         replace existing outputs (never an input)\n"
            "      --skip-existing     skip inputs whose outputs exist (resume a batch)\n"
            "      --shard K/N         process only inputs number K, K+N, ... (0 <= K < N) of\n"
            "                          the sorted list; default from SLURM_ARRAY_TASK_ID and\n"
            "                          SLURM_ARRAY_TASK_COUNT when set\n"
            "      --max-pixels N      refuse larger inputs (default %lld)\n"
            "\n"
            "Colour and metadata:\n"
            "  An embedded ICC profile is honoured: the pixels are converted to sRGB\n"
            "  (Little CMS) for the model; without a profile, sRGB is assumed. Outputs\n"
            "  are sRGB, and embed the sRGB profile when the input had a profile.\n"
            "      --keep-profile      convert each output back to its input's profile and\n"
            "                          embed that profile instead\n"
            "  EXIF (orientation reset to 1, size updated, thumbnail dropped), XMP and IPTC\n"
            "  are copied where the output's format holds them (PNG and WebP have no IPTC;\n"
            "  TIFF keeps the EXIF's text fields only: camera, dates, lens, author ...);\n"
            "  what was dropped is said once per run. The XMP records\n"
            "  what was done: tool and version, mode, weights file and its SHA-256,\n"
            "  sampler, steps and seed (properties diffrestore:*).\n"
            "      --strip-metadata    write no EXIF, XMP, IPTC, provenance or sRGB profile\n"
            "                          (a --keep-profile output still embeds its profile)\n"
            "\n"
            "Sampling:\n"
            "      --preset P          fast, default or best (--quality P says the same);\n"
            "                          measured on the validation photos (docs/TUNING.md):\n"
            "                            fast:    %s\n"
            "                            default: %s\n"
            "                            best:    %s\n"
            "                          --sampler, --steps and --eta override the preset\n"
            "      --steps N           sampler steps (default %d)\n"
            "      --sampler S         ddim, dpmpp-sde, dpmpp or ddpm (default %s)\n"
            "      --eta E             noise of ddim and dpmpp-sde, 0..1 (default %g)\n"
            "      --spacing S         trailing, leading or linspace (default %s)\n"
            "      --guidance W        classifier-free guidance: the network runs twice a\n"
            "                          step, W > 1 pushes away from its unconditional\n"
            "                          prediction (colorize: stronger colours); needs\n"
            "                          weights trained with --cond-dropout (default: the\n"
            "                          weights' own guidance if they name one, else off)\n"
            "      --seed N|random     random seed (default %llu); random prints the seed\n"
            "      --samples N         N samples, written as NAME_1 .. NAME_N (default 1)\n"
            "      --reduce mean       write the mean of the samples as the one output\n"
            "      --uncertainty FILE  heat-map PNG of the samples' per-pixel spread (needs\n"
            "                          --samples 2 or more; a directory for several inputs)\n"
            "      --tile N            largest tile side in pixels; bigger images are tiled\n"
            "                          (default %d%s)\n"
            "      --tile-overlap N    overlap of tiles in pixels (default %d%s)\n"
            "\n"
            "Running:\n"
            "  -w, --weights FILE      weights (.safetensors) for %s\n"
            "  -t, --threads N         threads (default: all cores)\n"
            "      --precision P       fp32 (default, the reference), bf16 or auto: convs,\n"
            "                          linears and attention matmuls in bf16 with fp32\n"
            "                          sums (needs AVX512-BF16)\n"
            "      --progress[=KIND]   bar (default on a terminal), json (one JSON object per\n"
            "                          line on stdout: {\"file\",\"step\",\"steps\"} per step,\n"
            "                          {\"file\",\"done\":true,\"output\"} per image; failures\n"
            "                          {\"file\",\"error\"}, skips {\"file\",\"skipped\":true}) or none\n"
            "  -q, --quiet             no progress, notes or summary; errors only\n"
            "  -h, --help              this help\n"
            "\n"
            "Weights:\n",
            name, (long long)DR_DEFAULT_MAX_PIXELS, pre[DR_QUALITY_FAST], pre[DR_QUALITY_DEFAULT], pre[DR_QUALITY_BEST],
            d.steps, dr_sampler_name(d.sampler), d.eta, dr_spacing_name(d.spacing), (unsigned long long)d.seed, d.tile,
            d.tile ? "" : ": automatic", d.tile_overlap, d.tile_overlap ? "" : ": automatic", name);
    weights_print_search(f, mode);
    fprintf(f,
            "\n"
            "A failing input is reported (\"diffrestore: FILE: reason\") and the batch goes\n"
            "on; the summary \"N done, N failed, N skipped\" ends the run. Outputs are written\n"
            "whole or not at all. Ctrl-C (or SIGTERM) abandons the current image, keeps the\n"
            "finished ones, prints the summary and exits with 128 + the signal; a second\n"
            "Ctrl-C stops at once.\n"
            "Exit codes: 0 all done (or skipped), 1 some input failed, 2 usage error,\n"
            "130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM.\n");
}

/* ------------------------------------------------------------------ options */

enum {
    O_SEED = OPT_CMD_BASE,
    O_UNCERT,
    O_TILE,
    O_TILE_OVERLAP,
    O_PROGRESS,
    O_FORMAT,
    O_SKIP_EXISTING,
    O_SHARD,
    O_MASK,
    O_BOX,
    O_SCALE,
    O_WIDTH,
    O_HEIGHT,
    O_RENDER,
    O_KEEP_PROFILE,
    O_STRIP_METADATA
};

/* The sampling options restore has of its own: -1 handled, -2 not one of them, or an exit code. */
static int sampling_option(ropts *o, int opt, const char *arg) {
    const char *C = o->cmd;
    long long v;
    switch (opt) {
    case O_SEED:
        if (strcmp(arg, "random") == 0) {
            o->seed_random = 1;
        } else {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(arg, &end, 10);
            if (errno || !*arg || *end || arg[0] == '-' || arg[0] == '+')
                return cli_usage_error(C, "--seed needs a number or 'random', got '%s'", arg);
            o->p.seed = s;
            o->seed_random = 0;
        }
        return -1;
    case O_TILE:
        if (!cli_parse_int(arg, 0, 1 << 20, &v))
            return cli_usage_error(C, "--tile needs a size in pixels, got '%s'", arg);
        o->p.tile = (int)v;
        return -1;
    case O_TILE_OVERLAP:
        if (!cli_parse_int(arg, 0, 1 << 16, &v))
            return cli_usage_error(C, "--tile-overlap needs pixels, got '%s'", arg);
        o->p.tile_overlap = (int)v;
        return -1;
    default: return -2;
    }
}

/* The inputs' and outputs' options: -1 handled, -2 not one of them, or an exit code. */
static int files_option(ropts *o, int opt, const char *arg) {
    const char *C = o->cmd;
    switch (opt) {
    case 'r': o->recursive = 1; return -1;
    case O_UNCERT: o->uncertainty = arg; return -1;
    case O_PROGRESS:
        if (!arg || strcmp(arg, "bar") == 0)
            o->progress = PROG_BAR;
        else if (strcmp(arg, "json") == 0)
            o->progress = PROG_JSON;
        else if (strcmp(arg, "none") == 0)
            o->progress = PROG_NONE;
        else
            return cli_usage_error(C, "--progress must be bar, json or none, not '%s'", arg);
        o->progress_given = 1;
        return -1;
    case O_FORMAT:
        if (strcasecmp(arg, "png") == 0)
            o->format = "png";
        else if (strcasecmp(arg, "jpg") == 0 || strcasecmp(arg, "jpeg") == 0)
            o->format = "jpg";
        else if (strcasecmp(arg, "tif") == 0 || strcasecmp(arg, "tiff") == 0)
            o->format = "tif";
        else if (strcasecmp(arg, "webp") == 0)
            o->format = "webp";
        else
            return cli_usage_error(C, "--format must be png, jpg, tif or webp, not '%s'", arg);
        return -1;
    case O_SKIP_EXISTING: o->skip_existing = 1; return -1;
    case O_KEEP_PROFILE: o->keep_profile = 1; return -1;
    case O_STRIP_METADATA: o->strip_metadata = 1; return -1;
    case O_SHARD:
        if (!parse_shard(arg, &o->shard_k, &o->shard_n))
            return cli_usage_error(C, "--shard needs K/N with 0 <= K < N, got '%s'", arg);
        o->shard_given = 1;
        return -1;
    default: return -2;
    }
}

/* The options of the modes that take a mask (--mask, --box), a scale
 * (--scale, --width, --height) or a working resolution (--render-size). Given
 * to another mode, *mode_only records it (the usage error comes after the loop).
 * Returns -1 handled, -2 not one of them, or an exit code. */
static int mode_option(ropts *o, int opt, const char *arg, int *mode_only) {
    const char *C = o->cmd;
    long long v;
    double d;
    switch (opt) {
    case O_MASK:
        if (!cli_mode_takes(o->mode, DR_MODE_TAKES_MASK)) *mode_only = opt;
        o->mask = arg;
        return -1;
    case O_BOX: {
        if (!cli_mode_takes(o->mode, DR_MODE_TAKES_MASK)) {
            *mode_only = opt;
            return -1;
        }
        int bx, by, bw, bh;
        if (!cli_parse_box(arg, &bx, &by, &bw, &bh))
            return cli_usage_error(
                C, "--box needs x,y,w,h: integers within -1000000000..1000000000, w and h > 0, got '%s'", arg);
        box *nb = realloc(o->boxes, (size_t)(o->n_boxes + 1) * sizeof *nb);
        if (!nb) return cli_eprintf("diffrestore: out of memory\n"), EXIT_FAILED;
        o->boxes = nb;
        o->boxes[o->n_boxes++] = (box){bx, by, bw, bh};
        return -1;
    }
    case O_SCALE:
        if (!cli_mode_takes(o->mode, DR_MODE_TAKES_SCALE))
            *mode_only = opt;
        else if (!cli_parse_double(arg, 1, 64, &d))
            return cli_usage_error(C, "--scale needs a factor 1..64, got '%s'", arg);
        else
            o->p.scale = d;
        o->scale_given = 1;
        return -1;
    case O_RENDER:
        if (!cli_mode_takes(o->mode, DR_MODE_TAKES_RENDER_SIZE)) {
            *mode_only = opt;
            return -1;
        }
        if (!cli_parse_int(arg, 0, DR_RENDER_SIZE_MAX, &v) || (v > 0 && v < DR_RENDER_SIZE_MIN))
            return cli_usage_error(C, "--render-size needs 0 or %d..%d, got '%s'", DR_RENDER_SIZE_MIN,
                                   DR_RENDER_SIZE_MAX, arg);
        o->p.render_size = (int)v;
        return -1;
    case O_WIDTH:
    case O_HEIGHT:
        if (!cli_mode_takes(o->mode, DR_MODE_TAKES_SCALE)) {
            *mode_only = opt;
            return -1;
        }
        if (!cli_parse_int(arg, 1, 1 << 20, &v))
            return cli_usage_error(C, "--%s needs a size in pixels, got '%s'", opt == O_WIDTH ? "width" : "height",
                                   arg);
        if (opt == O_WIDTH)
            o->p.out_width = (int)v, o->width_given = 1;
        else
            o->p.out_height = (int)v, o->height_given = 1;
        return -1;
    default: return -2;
    }
}

/* The checks of the options together, after the loop: -1 to go on, or an exit code. */
static int check_options(ropts *o, int mode_only, int argc) {
    const char *C = o->cmd;
    if (mode_only) {
        const char *n = mode_only == O_MASK ? "--mask"
            : mode_only == O_BOX            ? "--box"
            : mode_only == O_SCALE          ? "--scale"
            : mode_only == O_WIDTH          ? "--width"
            : mode_only == O_RENDER         ? "--render-size"
                                            : "--height";
        char modes[128];
        cli_modes_with((mode_only == O_MASK || mode_only == O_BOX) ? DR_MODE_TAKES_MASK
                           : mode_only == O_RENDER                 ? DR_MODE_TAKES_RENDER_SIZE
                                                                   : DR_MODE_TAKES_SCALE,
                       modes, sizeof modes);
        return cli_usage_error(C, "%s is only for %s", n, modes);
    }
    if (o->c.preset_given) { /* the preset's sampler, steps and eta, unless given */
        dr_params q;
        dr_params_init_quality(&q, o->mode, (dr_quality)o->c.preset);
        if (!o->s.sampler_given) o->p.sampler = q.sampler;
        if (!o->s.steps_given) o->p.steps = q.steps;
        if (!o->s.eta_given) o->p.eta = q.eta;
    }
    if (optind >= argc) return cli_usage_error(C, "no input given");
    if (cli_mode_takes(o->mode, DR_MODE_TAKES_SCALE)) {
        if (!o->scale_given && !o->width_given && !o->height_given)
            return cli_usage_error(C, "give the output size: --scale S, --width W or --height H");
        if (o->scale_given && (o->width_given || o->height_given))
            return cli_usage_error(C, "--scale and --width/--height exclude each other");
    }
    if (o->mask && o->n_boxes) return cli_usage_error(C, "--mask and --box exclude each other");
    if (o->s.reduce_mean && o->s.samples < 2) return cli_usage_error(C, "--reduce mean needs --samples 2 or more");
    if (o->uncertainty && o->s.samples < 2) return cli_usage_error(C, "--uncertainty needs --samples 2 or more");
    if (o->skip_existing && o->c.overwrite)
        return cli_usage_error(C, "--skip-existing and --overwrite exclude each other");
    if (o->c.output && !*o->c.output) return cli_usage_error(C, "-o needs a path");
    if (o->uncertainty && !*o->uncertainty) return cli_usage_error(C, "--uncertainty needs a path");
    return -1;
}

int restore_parse_options(ropts *o, int argc, char **argv) {
    static const struct option longopts[] = {CLI_SAMPLING_LONGOPTS,
                                             {"seed", required_argument, 0, O_SEED},
                                             {"uncertainty", required_argument, 0, O_UNCERT},
                                             {"tile", required_argument, 0, O_TILE},
                                             {"tile-overlap", required_argument, 0, O_TILE_OVERLAP},
                                             {"progress", optional_argument, 0, O_PROGRESS},
                                             {"format", required_argument, 0, O_FORMAT},
                                             {"recursive", no_argument, 0, 'r'},
                                             {"skip-existing", no_argument, 0, O_SKIP_EXISTING},
                                             {"shard", required_argument, 0, O_SHARD},
                                             {"mask", required_argument, 0, O_MASK},
                                             {"box", required_argument, 0, O_BOX},
                                             {"scale", required_argument, 0, O_SCALE},
                                             {"width", required_argument, 0, O_WIDTH},
                                             {"height", required_argument, 0, O_HEIGHT},
                                             {"render-size", required_argument, 0, O_RENDER},
                                             {"preset", required_argument, 0, OPT_PRESET},
                                             {"keep-profile", no_argument, 0, O_KEEP_PROFILE},
                                             {"strip-metadata", no_argument, 0, O_STRIP_METADATA},
                                             CLI_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    const dr_mode mode = o->mode;
    memset(o, 0, sizeof *o);
    o->mode = mode;
    o->cmd = dr_mode_name(mode);
    cli_common_init(&o->c);
    dr_params_init_mode(&o->p, mode);
    o->s.samples = 1;
    o->progress = PROG_BAR;
    int opt, mode_only = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "r" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (opt == 'h') {
            print_help(o->mode);
            return EXIT_DONE;
        }
        int r = cli_sampling_option(&o->s, &o->p, opt, optarg, o->cmd);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        r = sampling_option(o, opt, optarg);
        if (r == -2) r = files_option(o, opt, optarg);
        if (r == -2) r = mode_option(o, opt, optarg, &mode_only);
        if (r == -2) {
            r = cli_common_option(&o->c, opt, optarg, o->cmd);
            if (r < 0) return EXIT_USAGE;
            if (r == 0) return cli_usage_error(o->cmd, "unknown option");
            r = -1;
        }
        if (r != -1) return r;
    }
    return check_options(o, mode_only, argc);
}
