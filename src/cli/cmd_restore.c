/* diffrestore colorize | inpaint | superres: restore photos, one file or a
 * batch of directories. One implementation; the mode picks the options.
 *
 * Flow: parse and check options (exit 2 on misuse) -> collect and sort the
 * inputs -> shard -> load and check the weights -> per input: plan outputs,
 * refuse to touch inputs or existing files, decode, build the mask, restore,
 * save (atomic, and only after success) -> summary -> exit 0/1/130. */
#include "restore.h"
#include "weights_path.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t random_seed(void) {
    uint32_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, &s, sizeof s);
        close(fd);
        if (n == (ssize_t)sizeof s) return s;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint32_t)(ts.tv_sec * 1000003u ^ ts.tv_nsec ^ (uint32_t)getpid() * 2654435761u);
}

static int ends_with_slash(const char *s) {
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '/';
}

static int same_ext_kind(const char *path, const char *format) {
    const char *e = path_ext(path);
    int jpg = strcasecmp(e, "jpg") == 0 || strcasecmp(e, "jpeg") == 0;
    int tif = strcasecmp(e, "tif") == 0 || strcasecmp(e, "tiff") == 0;
    if (strcmp(format, "jpg") == 0) return jpg;
    if (strcmp(format, "tif") == 0) return tif;
    return strcasecmp(e, format) == 0;
}

/* ------------------------------------------------------------------ outputs */

static const char *out_ext(const ropts *o) { return o->format ? o->format : "png"; }

/* In a batch (or -o DIR) without --format, each output keeps its input's format. */
static const char *item_ext(const ropts *o, const char *input) {
    if (o->format) return o->format;
    switch (dr_format_from_path(input)) {
    case DR_FORMAT_JPEG: return "jpg";
    case DR_FORMAT_TIFF: return "tif";
    case DR_FORMAT_WEBP: return "webp";
    default: return "png";
    }
}

/* Primary output of an item. */
static char *primary_output(run *x, const batch_item *it) {
    const ropts *o = x->o;
    if (x->batch || x->out_is_dir)
        return batch_out_path(o->c.output, x->batch ? it->rel : restore_base_of(it->path), item_ext(o, it->path), "");
    if (o->c.output) return strdup(o->c.output);
    /* default: <stem>_<mode>.<ext> beside the input */
    char suffix[32];
    snprintf(suffix, sizeof suffix, "_%s", dr_mode_name(o->mode));
    return batch_out_path(NULL, it->path, out_ext(o), suffix);
}

/* Two inputs whose outputs have the same name (a.png and a.jpg, or the same
 * relative name in two input directories): the later one fails. */
static void collision_msg(char *msg, size_t n, const char *output, const char *first, void *user) {
    (void)user;
    snprintf(msg, n, "its output %s would also be the output of %s", output, first);
}

/* ------------------------------------------------------------------ planning */

/* One input file, or a batch (several inputs or a directory: -o is a
 * directory). Returns -1 to go on, or an exit code. */
static int check_run_kind(run *x, char **inputs, int n_inputs) {
    const ropts *o = x->o;
    const char *C = o->cmd;
    x->batch = n_inputs > 1 || is_dir(inputs[0]);
    if (x->batch) {
        const char *what = n_inputs > 1 ? "several inputs" : "a directory input";
        if (!o->c.output) return cli_usage_error(C, "%s need -o DIR", what);
        struct stat st;
        if (stat(o->c.output, &st) == 0 && !S_ISDIR(st.st_mode))
            return cli_usage_error(C, "-o %s is a file: %s need an output directory", o->c.output, what);
        if (o->uncertainty && stat(o->uncertainty, &st) == 0 && !S_ISDIR(st.st_mode))
            return cli_usage_error(C, "--uncertainty %s is a file: with several inputs it is a directory",
                                   o->uncertainty);
        return -1;
    }
    if (o->c.output) {
        x->out_is_dir = is_dir(o->c.output) || ends_with_slash(o->c.output);
        if (!x->out_is_dir) {
            if (!path_has_image_ext(o->c.output))
                return cli_usage_error(
                    C, "-o %s: the name must end in .png, .jpg, .jpeg, .tif, .tiff or .webp (or be a directory)",
                    o->c.output);
            if (o->format && !same_ext_kind(o->c.output, o->format))
                return cli_usage_error(C, "-o %s does not match --format %s", o->c.output, o->format);
        }
    }
    if (o->uncertainty) {
        x->unc_is_dir = is_dir(o->uncertainty) || ends_with_slash(o->uncertainty);
        if (!x->unc_is_dir && !path_has_image_ext(o->uncertainty))
            return cli_usage_error(C, "--uncertainty %s: the name must end in .png, .jpg, .jpeg, .tif, .tiff or .webp",
                                   o->uncertainty);
    }
    return -1;
}

/* --shard, else SLURM's array task, else all. Returns -1 to go on, or an exit code. */
static int resolve_shard(ropts *o) {
    if (o->shard_given) return -1;
    char msg[256];
    int r = shard_from_slurm(&o->shard_k, &o->shard_n, msg, sizeof msg);
    if (r < 0) return cli_usage_error(o->cmd, "%s", msg);
    if (r > 0 && !o->c.quiet)
        cli_eprintf("diffrestore: shard %d/%d from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT\n", o->shard_k,
                    o->shard_n);
    if (r == 0) o->shard_k = 0, o->shard_n = 1;
    return -1;
}

/* With -r, an output folder inside an input folder would hold files that
 * the walk reads as inputs (and --overwrite would replace them). Returns -1
 * to go on, or an exit code. */
static int check_outputs_outside(run *x, char **inputs, int n_inputs) {
    const ropts *o = x->o;
    if (!o->recursive) return -1;
    const char *outs[2] = {x->batch ? o->c.output : NULL, x->batch ? o->uncertainty : NULL};
    for (int i = 0; i < n_inputs; i++)
        for (int k = 0; k < 2; k++)
            if (outs[k] && is_dir(inputs[i]) && dr_path_within(outs[k], inputs[i]))
                return cli_usage_error(
                    o->cmd, "%s %s lies inside the input folder %s walked with -r: choose a folder outside it",
                    k ? "--uncertainty" : "-o", outs[k], inputs[i]);
    return -1;
}

/* The inputs in a deterministic order, their outputs and the collisions.
 * mst: the --mask file's stat. Returns 0, or -1 after the message. */
static int plan_inputs(run *x, char **inputs, int n_inputs, const struct stat *mst) {
    const ropts *o = x->o;
    file_id skip[3];
    int n_skip = 0;
    if (x->batch) {
        batch_skip_dir(skip, &n_skip, o->c.output);
        batch_skip_dir(skip, &n_skip, o->uncertainty);
    }
    if (x->mask_is_dir) batch_skip_dir(skip, &n_skip, o->mask);
    if (batch_collect(&x->b, inputs, n_inputs, o->recursive, skip, n_skip) != 0) {
        cli_eprintf("diffrestore: out of memory\n");
        return -1;
    }
    batch_sort(&x->b);
    /* hidden image files and FIFOs in the folders: counted as skipped, named under -v */
    x->skipped += x->b.n_ignored;
    if (o->c.verbose)
        for (int i = 0; i < x->b.n_ignored; i++) cli_eprintf("diffrestore: %s\n", x->b.ignored[i]);
    if (x->b.n == 0) {
        cli_eprintf("diffrestore: no PNG or JPEG files in %s%s\n", n_inputs == 1 ? inputs[0] : "the inputs",
                    x->b.subdirs ? " (it has subdirectories: use -r to include them)" : "");
        return -1;
    }
    if (o->mask && !x->mask_is_dir && batch_add_id(&x->b, mst->st_dev, mst->st_ino) != 0) return -1;
    x->outs = calloc((size_t)x->b.n, sizeof *x->outs);
    if (!x->outs) return -1;
    for (int i = 0; i < x->b.n; i++)
        if (!(x->outs[i] = primary_output(x, &x->b.items[i]))) {
            cli_eprintf("diffrestore: out of memory\n");
            return -1;
        }
    if (batch_mark_collisions(&x->b, x->outs, collision_msg, NULL) != 0) return -1;
    for (int i = 0; i < x->b.n; i++) x->pr.total += i % o->shard_n == o->shard_k;
    return 0;
}

/* The weights and what the outputs need of them; the shared mask. Returns
 * 0, or -1 after the message. */
static int load_model(run *x) {
    const ropts *o = x->o;
    if (weights_load(o->c.weights, o->mode, o->cmd, &x->m, &x->weights_path) != 0) return -1;
    if (!o->strip_metadata && dr_file_sha256(x->weights_path, x->weights_sha256) != DR_OK) {
        cli_report_error(NULL);
        return -1;
    }
    if (dr_srgb_profile(&x->srgb_icc, &x->srgb_icc_size) != DR_OK) {
        cli_report_error(NULL);
        return -1;
    }
    if (cli_mode_takes(o->mode, DR_MODE_TAKES_SCALE)) { /* --scale within the weights' range */
        dr_model_scale_range(x->m, &x->scale_min, &x->scale_max);
        x->have_range = x->scale_min > 0 && x->scale_max >= x->scale_min;
        if (x->have_range && o->scale_given && !cli_scale_fits(o->p.scale, x->scale_min, x->scale_max)) {
            cli_eprintf("diffrestore: %s: --scale %g is outside the range these weights were trained for: %g..%g\n",
                        x->weights_path, o->p.scale, x->scale_min, x->scale_max);
            return -1;
        }
    }
    if (o->mask && !x->mask_is_dir) {
        /* kept as loaded; converted per image after the size check */
        if (dr_image_load(o->mask, o->c.max_pixels, &x->shared_mask, NULL) != DR_OK) {
            cli_eprintf("diffrestore: mask %s\n", dr_last_error());
            return -1;
        }
        x->have_shared_mask = 1;
    }
    return 0;
}

/* Create the output directories of a batch; the uncertainty maps apart from
 * the outputs. Returns -1 to go on, or an exit code. */
static int make_output_dirs(run *x) {
    const ropts *o = x->o;
    if (x->batch) {
        const char *bad;
        if (mkdir_p(o->c.output, &bad) != 0) {
            cli_eprintf("diffrestore: cannot create the output directory %s: %s: %s\n", o->c.output, bad,
                        strerror(errno));
            return EXIT_FAILED;
        }
        if (o->uncertainty && mkdir_p(o->uncertainty, &bad) != 0) {
            cli_eprintf("diffrestore: cannot create the uncertainty directory %s: %s: %s\n", o->uncertainty, bad,
                        strerror(errno));
            return EXIT_FAILED;
        }
        struct stat a, b;
        if (o->uncertainty && stat(o->c.output, &a) == 0 && stat(o->uncertainty, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino)
            return cli_usage_error(o->cmd, "--uncertainty must be another directory than -o");
    } else if (o->uncertainty) {
        for (int i = 0; i < x->b.n; i++) {
            char *u = restore_uncertainty_output(x, &x->b.items[i]);
            int same = u && strcmp(u, x->outs[i]) == 0;
            free(u);
            if (same) return cli_usage_error(o->cmd, "--uncertainty and -o name the same file");
        }
    }
    return -1;
}

/* ------------------------------------------------------------------ the run */

/* Every input of the shard, the notes and the summary. Returns the exit code. */
static int restore_all(run *x) {
    const ropts *o = x->o;
    int interrupted = 0, not_processed = 0;
    for (int i = 0; i < x->b.n; i++) {
        if (i % o->shard_n != o->shard_k) continue;
        if (interrupted || cli_cancel) {
            interrupted = 1;
            not_processed++;
            continue;
        }
        x->pr.pos++;
        if (restore_item(x, &x->b.items[i], x->outs[i])) {
            interrupted = 1;
            not_processed++;
        }
    }
    progress_clear(&x->pr);
    restore_report_dropped(x);
    if (interrupted) progress_interrupted("the current image was abandoned, finished outputs are kept");
    if (!o->c.quiet || interrupted) {
        fprintf(stderr, "%d done, %d failed, %d skipped", x->done, x->pr.failed, x->skipped);
        if (interrupted) fprintf(stderr, ", %d not processed", not_processed);
        if (o->shard_n > 1)
            fprintf(stderr, " (shard %d/%d: %d of %d inputs)", o->shard_k, o->shard_n, x->pr.total, x->b.n);
        fputc('\n', stderr);
    }
    return progress_exit_code(interrupted, x->pr.failed);
}

/* Everything before the work: -1 to go on, or an exit code. */
static int prepare(run *x, int argc, char **argv) {
    ropts *o = x->o;
    char **inputs = argv + optind;
    const int n_inputs = argc - optind;
    int code;
    if ((code = check_run_kind(x, inputs, n_inputs)) >= 0 || (code = resolve_shard(o)) >= 0) return code;
    struct stat mst; /* the mask (file or directory) */
    memset(&mst, 0, sizeof mst);
    if (o->mask) {
        if (stat(o->mask, &mst) != 0) {
            cli_eprintf("diffrestore: %s: %s\n", o->mask, strerror(errno));
            return EXIT_FAILED;
        }
        x->mask_is_dir = S_ISDIR(mst.st_mode);
    }
    if ((code = check_outputs_outside(x, inputs, n_inputs)) >= 0) return code;
    if (plan_inputs(x, inputs, n_inputs, &mst) != 0 || load_model(x) != 0) return EXIT_FAILED;
    if ((code = make_output_dirs(x)) >= 0) return code;
    if (o->seed_random) {
        o->p.seed = random_seed();
        fprintf(stderr, "seed: %llu\n", (unsigned long long)o->p.seed);
    }
    dr_save_options_init(&x->save);
    x->save.jpeg_quality = o->c.quality;
    /* WebP is lossless unless --quality is given. */
    x->save.webp_quality = o->c.quality_given ? o->c.quality : 0;
    x->save.overwrite = o->c.overwrite;
    return -1;
}

static int restore_main(dr_mode mode, int argc, char **argv) {
    ropts o;
    memset(&o, 0, sizeof o);
    o.mode = mode;
    run x;
    memset(&x, 0, sizeof x);
    x.o = &o;
    int code = restore_parse_options(&o, argc, argv);
    if (code < 0) {
        if (o.c.quiet && !o.progress_given) o.progress = PROG_NONE;
        if (o.c.quiet && o.progress == PROG_BAR) o.progress = PROG_NONE;
        x.pr.bar = o.progress == PROG_BAR;
        x.pr.quiet = o.c.quiet;
        x.pr.json = o.progress == PROG_JSON;
        x.pr.json_fail = ",\"done\":false";
        cli_apply_compute(&o.c, o.cmd);
        code = prepare(&x, argc, argv);
    }
    if (code < 0) {
        cli_catch_signals(1); /* a second Ctrl-C stops at once */
        code = restore_all(&x);
    }
    if (x.outs)
        for (int i = 0; i < x.b.n; i++) free(x.outs[i]);
    free(x.outs);
    batch_free(&x.b);
    dr_image_free(&x.shared_mask);
    dr_model_free(x.m);
    free(x.weights_path);
    free(x.srgb_icc);
    free(o.boxes);
    fflush(stdout);
    return code;
}

int cmd_restore(dr_mode mode, int argc, char **argv) { return restore_main(mode, argc, argv); }
