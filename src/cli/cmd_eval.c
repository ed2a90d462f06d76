/* diffrestore eval: measure a model on ground-truth photos.
 *
 * Flow: parse options (exit 2 on misuse) -> collect the images below --data
 * (recursive, sorted by relative path) -> load the weights -> per image:
 * decode, degrade (dr_eval_degrade), restore (dr_restore), score the result
 * and the baseline (dr_eval_score), write NAME.png and NAME_sheet.png under
 * --out, print a table row or a JSON line -> the means -> exit 0, or 1 when
 * an image failed.
 *
 * inpaint's baseline, OpenCV's Telea, runs outside: --inputs-only writes
 * the degraded inputs and masks, scripts/telea_baseline.py fills them, and
 * --baseline-dir scores its NAME_telea.png (scripts/eval_val.sh does all
 * three). The library does the image maths; this command owns the files. */
#include "eval.h"
#include "weights_path.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CMD EVAL_CMD

/* ------------------------------------------------------------------ help and options */

static void print_help(void) {
    dr_params d;
    dr_params_init(&d);
    dr_eval_options e;
    dr_eval_options_init(&e);
    char modes[128];
    cli_modes_with(0, modes, sizeof modes);
    printf("Usage: diffrestore eval --mode MODE --data DIR [options]\n"
           "Measure a model on ground-truth photos: each image is degraded as training\n"
           "degrades (colorize: its luma rounded to 8 bits; inpaint: random holes;\n"
           "superres: an antialiased bicubic downscale rounded to 8 bits; denoise: JPEG\n"
           "artefacts and/or Gaussian noise), restored, and scored against the original\n"
           "beside a classical baseline (colorize: the gray input; inpaint: OpenCV's\n"
           "Telea; superres: bicubic upscaling; denoise: the noisy input). Prints a table,\n"
           "one row per image and their mean. The same --seed gives the same numbers.\n"
           "\n"
           "What to measure:\n"
           "      --mode M            %s (required)\n"
           "      --data DIR          ground-truth PNG and JPEG files below DIR, walked\n"
           "                          recursively, in sorted order of relative path\n"
           "                          (a single file works too) (required)\n"
           "      --scale S           superres: the LR is round(H/S) x round(W/S) and is\n"
           "                          restored to exactly H x W (default %g)\n"
           "      --holes A-B         inpaint: hole fraction range, 0 <= A <= B <= 1\n"
           "                          (default %.2f-%.2f); each image's mask depends only on\n"
           "                          --seed and its position in the sorted list\n"
           "      --masks G           inpaint: the hole generator, legacy (brush strokes\n"
           "                          and boxes) or damage (scratches, cracks, blotches,\n"
           "                          strokes and boxes, as on old photos) (default legacy)\n"
           "      --noise S           denoise: Gaussian noise of std S on 0..255, from a\n"
           "                          stream of --seed and the image's position (default %g)\n"
           "      --jpeg Q            denoise: JPEG-compress at quality Q first (default 0:\n"
           "                          not)\n"
           "      --crop N            score the centred N x N crop (a side shorter than N\n"
           "                          is kept whole) (default 0: the whole image)\n"
           "      --max-pixels N      refuse larger images (default %lld)\n"
           "\n"
           "Sampling:\n"
           "  -w, --weights FILE      weights (.safetensors) for the mode; default: see below\n"
           "      --preset P          fast, default or best: the sampler, steps and eta the\n"
           "                          restore commands' --preset runs for the mode (default:\n"
           "                          default; 'diffrestore MODE --help' lists them)\n"
           "      --steps N           sampler steps (default: the preset's)\n"
           "      --sampler S         ddim, dpmpp-sde, dpmpp or ddpm (default: the preset's)\n"
           "      --eta E             noise of ddim and dpmpp-sde, 0..1 (default: the preset's)\n"
           "      --spacing S         trailing, leading or linspace (default %s)\n"
           "      --guidance W        classifier-free guidance weight (restore --help;\n"
           "                          default: the weights' own, else off)\n"
           "      --seed N            seed of the sampler and of the inpaint masks (default %llu)\n"
           "      --tile N            largest tile side in pixels; bigger images are tiled\n"
           "                          (default: the library's, as for the restore commands)\n"
           "      --render-size R     colorize: run the network on the luma downscaled to a\n"
           "                          long side of R, the chroma upsampled guided by the\n"
           "                          full-size luma; 0 = full size (default: the weights'\n"
           "                          render_size, else 0)\n"
           "      --samples N         restore N samples per image and score their\n"
           "                          per-pixel mean (default 1); needs --reduce mean\n"
           "      --reduce mean       the reduction of the samples (mean is the only one)\n"
           "\n"
           "Output:\n"
           "  -o, --out DIR           write NAME.png (the restoration) and NAME_sheet.png\n"
           "                          (degraded | restored | ground truth; superres shows the\n"
           "                          LR by nearest neighbour, inpaint the holes in magenta);\n"
           "                          inpaint also NAME_input.png and NAME_mask.png (the\n"
           "                          baseline's inputs). NAME mirrors the relative path.\n"
           "                          Files from an earlier run are replaced; inputs never\n"
           "                          (default: no files)\n"
           "      --json              one JSON object per line on stdout instead of the\n"
           "                          table: {\"file\",\"model\":{...},\"baseline\":{...}} per\n"
           "                          image, {\"file\",\"error\"} per failure, then\n"
           "                          {\"mean\":true,...}; NaN is null\n"
           "      --baseline-dir DIR  inpaint: score DIR/NAME_telea.png as the baseline\n"
           "                          (what scripts/telea_baseline.py writes; see below)\n"
           "      --inputs-only       inpaint: only write NAME_input.png and NAME_mask.png\n"
           "                          under --out (no weights needed), for the baseline\n"
           "  -t, --threads N         threads (default: all cores)\n"
           "      --precision P       fp32 (default), bf16 or auto: see restore --help\n"
           "  -q, --quiet             no progress or notes; errors only\n"
           "  -h, --help              this help\n"
           "\n"
           "Metrics (on the 8-bit values of the written images; means are plain means\n"
           "over the images):\n"
           "  all       PSNR over R, G, B (peak 255; %g dB when identical, never more);\n"
           "            SSIM of the luma (Gaussian window 11, sigma 1.5, valid region)\n"
           "  colorize  chroma PSNR over Cb, Cr (BT.601); colorfulness (Hasler &\n"
           "            Suesstrunk) of the output over the ground truth's; max |Y_out - Y_in|\n"
           "            (the luma is kept: about 0.5 at most)\n"
           "  inpaint   hole PSNR (hole pixels only); hole HF: mean |grad Y| over the hole,\n"
           "            output over ground truth; max known: the largest change of a known\n"
           "            pixel (0: they are kept bit for bit)\n"
           "  superres  HF ratio: mean |grad Y|, output over ground truth; consist.:\n"
           "            PSNR of the output downscaled by the same resampler against the LR\n"
           "\n"
           "inpaint's Telea baseline (OpenCV: apt-get install python3-opencv) runs\n"
           "outside, on the degraded inputs of the same --data, --seed, --holes, --masks\n"
           "and --crop (scripts/eval_val.sh does these three steps):\n"
           "  diffrestore eval --mode inpaint --data D --out O --inputs-only\n"
           "  python3 scripts/telea_baseline.py O [--radius R]    (default radius 3)\n"
           "  diffrestore eval --mode inpaint --data D --out O --baseline-dir O\n"
           "Without --baseline-dir that baseline is skipped with a note.\n"
           "\n"
           "Weights:\n",
           modes, e.scale, e.hole_min, e.hole_max, e.noise_sigma, (long long)DR_DEFAULT_MAX_PIXELS,
           dr_spacing_name(d.spacing), (unsigned long long)d.seed, DR_EVAL_PSNR_CAP);
    printf("  -w FILE if given, else the first that exists of $DIFFRESTORE_WEIGHTS (a file,\n"
           "  or a directory holding MODE.safetensors), weights/MODE.safetensors beside the\n"
           "  executable, the installed weights (as for 'diffrestore colorize --help').\n"
           "\n"
           "A bad image is reported (\"diffrestore: FILE: reason\") and skipped; the others\n"
           "are still evaluated. Ctrl-C stops after printing the mean so far.\n"
           "Exit codes: 0 all evaluated, 1 some image failed, 2 usage error, 130/143\n"
           "interrupted.\n");
}

enum {
    O_MODE = OPT_CMD_BASE,
    O_DATA,
    O_SCALE,
    O_HOLES,
    O_MASKS,
    O_CROP,
    O_SEED,
    O_JSON,
    O_BASELINE_DIR,
    O_INPUTS_ONLY,
    O_TILE,
    O_RENDER,
    O_NOISE,
    O_JPEG
};

/* The sampling options eval has of its own: -1 handled, -2 not one of them, or an exit code. */
static int sampling_option(eopts *o, int opt, const char *arg) {
    switch (opt) {
    case O_RENDER: {
        long long v;
        if (!cli_parse_int(arg, 0, DR_RENDER_SIZE_MAX, &v) || (v > 0 && v < DR_RENDER_SIZE_MIN))
            return cli_usage_error(CMD, "--render-size needs 0 or %d..%d, got '%s'", DR_RENDER_SIZE_MIN,
                                   DR_RENDER_SIZE_MAX, arg);
        o->p.render_size = (int)v;
        o->render_given = 1;
        break;
    }
    case O_TILE: {
        long long v;
        if (!cli_parse_int(arg, 16, 1 << 20, &v))
            return cli_usage_error(CMD, "--tile needs a size in pixels (>= 16), got '%s'", arg);
        o->p.tile = (int)v;
        break;
    }
    case O_SEED: {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(arg, &end, 10);
        if (errno || !*arg || *end || arg[0] == '-' || arg[0] == '+')
            return cli_usage_error(CMD, "--seed needs a number, got '%s'", arg);
        o->p.seed = s;
        o->e.seed = s;
        break;
    }
    case OPT_PRESET: {
        dr_quality q;
        if (dr_quality_from_name(arg, &q) != DR_OK)
            return cli_usage_error(CMD, "--preset needs " DR_QUALITY_NAMES ", got '%s'", arg);
        o->preset = (int)q;
        break;
    }
    case OPT_PRECISION: {
        cli_common cc;
        cli_common_init(&cc);
        if (cli_common_option(&cc, opt, arg, CMD) < 0) return EXIT_USAGE;
        o->precision = cc.precision;
        break;
    }
    default: return -2;
    }
    return -1;
}

/* What to measure, where the results go, how to run: -1 handled, -2 not one
 * of them, or an exit code. */
static int data_option(eopts *o, int opt, const char *arg) {
    long long v;
    double d;
    switch (opt) {
    case O_MODE:
        o->mode = dr_mode_from_name(arg);
        if (o->mode == DR_MODE_NONE) {
            char modes[128];
            cli_modes_with(0, modes, sizeof modes);
            return cli_usage_error(CMD, "--mode must be %s, not '%s'", modes, arg);
        }
        break;
    case O_DATA: o->data = arg; break;
    case O_SCALE:
        if (!cli_parse_double(arg, 1, 64, &d))
            return cli_usage_error(CMD, "--scale needs a factor 1..64, got '%s'", arg);
        o->e.scale = d;
        o->scale_given = 1;
        break;
    case O_HOLES:
        if (!cli_parse_range(arg, 0, 1, 0, &o->e.hole_min, &o->e.hole_max))
            return cli_usage_error(CMD, "--holes needs A-B with 0 <= A <= B <= 1 (e.g. 0.10-0.30), got '%s'", arg);
        o->holes_given = 1;
        break;
    case O_MASKS:
        if (!strcmp(arg, "legacy"))
            o->e.masks = DR_MASKS_LEGACY;
        else if (!strcmp(arg, "damage"))
            o->e.masks = DR_MASKS_DAMAGE;
        else
            return cli_usage_error(CMD, "--masks must be legacy or damage, not '%s'", arg);
        o->masks_given = 1;
        break;
    case O_NOISE:
        if (!cli_parse_double(arg, 0, 255, &d))
            return cli_usage_error(CMD, "--noise needs a std 0..255, got '%s'", arg);
        o->e.noise_sigma = d;
        o->noise_given = 1;
        break;
    case O_JPEG:
        if (!cli_parse_int(arg, 0, 100, &v))
            return cli_usage_error(CMD, "--jpeg needs a quality 0..100, got '%s'", arg);
        o->e.jpeg_quality = (int)v;
        o->noise_given = 1;
        break;
    case O_CROP:
        if (!cli_parse_int(arg, 0, 1 << 20, &v))
            return cli_usage_error(CMD, "--crop needs a size in pixels, got '%s'", arg);
        o->e.crop = (int)v;
        break;
    case O_JSON: o->json = 1; break;
    case O_BASELINE_DIR: o->baseline_dir = arg; break;
    case O_INPUTS_ONLY: o->inputs_only = 1; break;
    case 'o': o->out = arg; break;
    case 'w': o->weights = arg; break;
    case 'q': o->quiet = 1; break;
    case 't':
        if (!cli_parse_int(arg, 0, 1024, &v))
            return cli_usage_error(CMD, "--threads needs a number 0..1024, got '%s'", arg);
        o->threads = (int)v;
        break;
    case OPT_MAX_PIXELS:
        if (!cli_parse_int(arg, 1, (long long)1 << 40, &v))
            return cli_usage_error(CMD, "--max-pixels needs a positive number, got '%s'", arg);
        o->max_pixels = v;
        break;
    default: return -2;
    }
    return -1;
}

/* The checks of the options together, after the loop: -1 to go on, or an exit code. */
static int check_options(eopts *o, int argc, char **argv) {
    if (optind < argc)
        return cli_usage_error(CMD, "unexpected argument '%s' (the images come from --data DIR)", argv[optind]);
    char modes[128];
    if (o->mode == DR_MODE_NONE) {
        cli_modes_with(0, modes, sizeof modes);
        return cli_usage_error(CMD, "--mode is required (%s)", modes);
    }
    { /* --mode may come after the sampling options: fill in the mode's defaults now */
        dr_params d;
        dr_params_init_quality(&d, o->mode, (dr_quality)o->preset);
        if (!o->s.sampler_given) o->p.sampler = d.sampler;
        if (!o->s.steps_given) o->p.steps = d.steps;
        if (!o->s.eta_given) o->p.eta = d.eta;
        if (!o->s.spacing_given) o->p.spacing = d.spacing;
    }
    if (!o->data || !*o->data) return cli_usage_error(CMD, "--data DIR is required");
    /* an option of the modes whose table entry takes it */
    const struct {
        int given;
        unsigned flag;
        const char *name;
    } only[] = {{o->scale_given, DR_MODE_TAKES_SCALE, "--scale"},
                {o->holes_given, DR_MODE_TAKES_MASK, "--holes"},
                {o->masks_given, DR_MODE_TAKES_MASK, "--masks"},
                {o->render_given, DR_MODE_TAKES_RENDER_SIZE, "--render-size"},
                {o->noise_given, DR_MODE_EVAL_NOISE, "--noise and --jpeg"},
                {o->baseline_dir != NULL, DR_MODE_BASELINE_EXTERNAL, "--baseline-dir"},
                {o->inputs_only, DR_MODE_BASELINE_EXTERNAL, "--inputs-only"}};
    for (size_t k = 0; k < sizeof only / sizeof *only; k++)
        if (only[k].given && !cli_mode_takes(o->mode, only[k].flag)) {
            cli_modes_with(only[k].flag, modes, sizeof modes);
            return cli_usage_error(CMD, "%s %s only for %s", only[k].name, strchr(only[k].name, ' ') ? "are" : "is",
                                   modes);
        }
    if (o->s.samples > 1 && !o->s.reduce_mean)
        return cli_usage_error(CMD, "--samples %d needs --reduce mean (the mean of the samples is scored)",
                               o->s.samples);
    if (o->s.reduce_mean && o->s.samples < 2) return cli_usage_error(CMD, "--reduce mean needs --samples 2 or more");
    if (o->out && !*o->out) return cli_usage_error(CMD, "--out needs a directory");
    if (o->inputs_only && !o->out) return cli_usage_error(CMD, "--inputs-only needs --out DIR");
    if (o->inputs_only && o->baseline_dir)
        return cli_usage_error(CMD, "--inputs-only and --baseline-dir exclude each other");
    if (o->baseline_dir && !is_dir(o->baseline_dir))
        return cli_usage_error(CMD, "--baseline-dir %s is not a directory", o->baseline_dir);
    return -1;
}

/* Returns -1 to go on, or an exit code. */
static int parse_options(eopts *o, int argc, char **argv) {
    static const struct option longopts[] = {CLI_SAMPLING_LONGOPTS,
                                             {"mode", required_argument, 0, O_MODE},
                                             {"data", required_argument, 0, O_DATA},
                                             {"scale", required_argument, 0, O_SCALE},
                                             {"holes", required_argument, 0, O_HOLES},
                                             {"masks", required_argument, 0, O_MASKS},
                                             {"crop", required_argument, 0, O_CROP},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"json", no_argument, 0, O_JSON},
                                             {"baseline-dir", required_argument, 0, O_BASELINE_DIR},
                                             {"inputs-only", no_argument, 0, O_INPUTS_ONLY},
                                             {"tile", required_argument, 0, O_TILE},
                                             {"render-size", required_argument, 0, O_RENDER},
                                             {"noise", required_argument, 0, O_NOISE},
                                             {"jpeg", required_argument, 0, O_JPEG},
                                             {"out", required_argument, 0, 'o'},
                                             {"output", required_argument, 0, 'o'},
                                             {"weights", required_argument, 0, 'w'},
                                             {"threads", required_argument, 0, 't'},
                                             {"precision", required_argument, 0, OPT_PRECISION},
                                             {"preset", required_argument, 0, OPT_PRESET},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"max-pixels", required_argument, 0, OPT_MAX_PIXELS},
                                             {"version", no_argument, 0, OPT_VERSION},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "o:w:t:qh", longopts, NULL)) != -1) {
        if (opt == 'h') {
            print_help();
            return EXIT_DONE;
        }
        if (opt == OPT_VERSION) {
            printf("diffrestore %s\n", dr_version());
            return EXIT_DONE;
        }
        int r = cli_sampling_option(&o->s, &o->p, opt, optarg, CMD);
        if (r < 0) return EXIT_USAGE;
        if (r > 0) continue;
        r = sampling_option(o, opt, optarg);
        if (r == -2) r = data_option(o, opt, optarg);
        if (r == -2) return cli_usage_error(CMD, "unknown option");
        if (r != -1) return r;
    }
    return check_options(o, argc, argv);
}

/* ------------------------------------------------------------------ the command */

/* With --out, the later (in sorted order) of two items with the same NAME
 * fails: a.png and a.jpg would write the same files. */
static void collision_msg(char *msg, size_t n, const char *output, const char *first, void *user) {
    const eopts *o = user;
    snprintf(msg, n, "its outputs (%s in %s) would also be those of %s", output, o->out, first);
}

/* NAME.png of every item, and the collisions of the names. */
static int plan_names(ectx *x) {
    x->names = calloc((size_t)x->b.n + 1, sizeof *x->names);
    if (!x->names) return -1;
    for (int i = 0; i < x->b.n; i++)
        if (!(x->names[i] = batch_out_path(NULL, x->b.items[i].rel, "png", ""))) return -1;
    if (!x->o->out) return 0;
    return batch_mark_collisions(&x->b, x->names, collision_msg, x->o);
}

/* --data exists; --out is a directory outside it. Returns -1 to go on, or an exit code. */
static int check_paths(const eopts *o) {
    struct stat dst, ost;
    if (stat(o->data, &dst) != 0) {
        cli_eprintf("diffrestore: %s: %s\n", o->data, strerror(errno));
        return EXIT_FAILED;
    }
    if (o->out && stat(o->out, &ost) == 0 && !S_ISDIR(ost.st_mode))
        return cli_usage_error(CMD, "--out %s is a file: it must be a directory", o->out);
    /* --data is walked recursively: an output folder inside it would hold
     * files that are ground truth to the walk (and would be replaced) */
    if (o->out && dr_path_within(o->out, o->data))
        return cli_usage_error(CMD, "--out %s lies inside --data %s: choose an output folder outside the ground truth",
                               o->out, o->data);
    return -1;
}

/* The images below --data in sorted order, their names, the results' room.
 * Returns 0, or -1 after the message. */
static int plan_images(ectx *x) {
    const eopts *o = x->o;
    char *inputs[1] = {(char *)o->data};
    if (batch_collect(&x->b, inputs, 1, 1, NULL, 0) != 0 || (batch_sort(&x->b), plan_names(x) != 0)) {
        cli_eprintf("diffrestore: out of memory\n");
        return -1;
    }
    if (x->b.n == 0) {
        cli_eprintf("diffrestore: no PNG or JPEG files in %s\n", o->data);
        return -1;
    }
    x->pr.total = x->b.n;
    x->model = calloc((size_t)x->b.n, sizeof *x->model);
    x->base = calloc((size_t)x->b.n, sizeof *x->base);
    if (!x->model || !x->base) {
        cli_eprintf("diffrestore: out of memory\n");
        return -1;
    }
    x->name_w = 8;
    for (int i = 0; i < x->b.n; i++) {
        int n = (int)strlen(x->b.items[i].rel);
        if (n > x->name_w) x->name_w = n;
    }
    if (x->name_w > 40) x->name_w = 40;
    return 0;
}

/* The weights (not for --inputs-only) and the output directory. Returns 0,
 * or -1 after the message. */
static int prepare_run(ectx *x) {
    const eopts *o = x->o;
    if (!o->inputs_only) {
        if (weights_load(o->weights, o->mode, CMD, &x->m, &x->weights_path) != 0) return -1;
        if (cli_mode_takes(o->mode, DR_MODE_TAKES_SCALE)) { /* --scale within the weights' range */
            double lo, hi;
            dr_model_scale_range(x->m, &lo, &hi);
            if (lo > 0 && hi >= lo && !cli_scale_fits(o->e.scale, lo, hi)) {
                cli_eprintf("diffrestore: %s: --scale %g is outside the range these weights were trained for: %g..%g\n",
                            x->weights_path, o->e.scale, lo, hi);
                return -1;
            }
        }
    }
    const char *bad;
    if (o->out && mkdir_p(o->out, &bad) != 0) {
        cli_eprintf("diffrestore: cannot create the output directory %s: %s: %s\n", o->out, bad, strerror(errno));
        return -1;
    }
    return 0;
}

/* --inputs-only: the baseline's inputs, nothing else. Returns the exit code. */
static int write_inputs_only(ectx *x) {
    const int written = eval_write_inputs(x, 1);
    const int interrupted = cli_cancel != 0;
    if (interrupted) progress_interrupted("the rest not written");
    if (!x->o->quiet || interrupted || x->pr.failed)
        fprintf(stderr, "%d inputs and masks written under %s, %d failed\n", written, x->o->out, x->pr.failed);
    return progress_exit_code(interrupted, x->pr.failed);
}

/* Every image, the means and the summary. Returns the exit code. */
static int eval_all(ectx *x) {
    const eopts *o = x->o;
    if (cli_mode_takes(o->mode, DR_MODE_BASELINE_EXTERNAL)) { /* the baseline's inputs and results */
        char suffix[40], name[32];
        eval_baseline_names(o->mode, suffix, sizeof suffix, name, sizeof name);
        if (!o->baseline_dir)
            fprintf(stderr,
                    "%s baseline skipped: no --baseline-dir (scripts/%s_baseline.py writes one: "
                    "see 'diffrestore eval --help')\n",
                    name, dr_mode_get(o->mode)->baseline);
        if (o->out) eval_write_inputs(x, 0); /* failures are reported by the main pass */
    }
    int interrupted = cli_cancel != 0, broken = 0;
    for (int i = 0; i < x->b.n && !interrupted && !broken; i++) {
        x->pr.pos = i + 1;
        interrupted = eval_item(x, &x->b.items[i]) || cli_cancel;
        broken = ferror(stdout) != 0;
    }
    progress_clear(&x->pr);
    if (broken) return 128 + SIGPIPE;
    eval_report_mean(x);
    if (interrupted) progress_interrupted("the mean covers the images evaluated so far");
    if (!o->quiet || interrupted || x->pr.failed)
        fprintf(stderr, "%d evaluated, %d failed%s\n", x->done, x->pr.failed,
                interrupted ? ", the rest not evaluated" : "");
    return progress_exit_code(interrupted, x->pr.failed);
}

int cmd_eval(int argc, char **argv) {
    eopts o;
    memset(&o, 0, sizeof o);
    dr_params_init(&o.p);
    dr_eval_options_init(&o.e);
    o.e.seed = o.p.seed;
    o.s.samples = 1;
    o.max_pixels = DR_DEFAULT_MAX_PIXELS;
    ectx x;
    memset(&x, 0, sizeof x);
    x.o = &o;
    int code = parse_options(&o, argc, argv);
    if (code >= 0) return code;
    cli_common cc;
    cli_common_init(&cc);
    cc.threads = o.threads, cc.precision = o.precision;
    cli_apply_compute(&cc, CMD);
    x.pr.bar = !o.quiet;
    x.pr.quiet = o.quiet;
    x.pr.json = o.json;
    x.pr.json_fail = "";
    x.pr.count_always = 1;
    code = check_paths(&o);
    if (code < 0) code = plan_images(&x) != 0 || prepare_run(&x) != 0 ? EXIT_FAILED : -1;
    if (code < 0) {
        cli_catch_signals(1); /* a second Ctrl-C stops at once */
        /* a closed stdout (| head) stops the run through ferror (exit 141) */
        signal(SIGPIPE, SIG_IGN);
        code = o.inputs_only ? write_inputs_only(&x) : eval_all(&x);
    }
    if (x.names)
        for (int i = 0; i < x.b.n; i++) free(x.names[i]);
    free(x.names);
    batch_free(&x.b);
    free(x.model);
    free(x.base);
    dr_model_free(x.m);
    free(x.weights_path);
    fflush(stdout);
    return code;
}
