/* diffrestore colorize | inpaint | superres: restore photos, one file or a
 * batch of directories. One implementation; the mode picks the options.
 *
 * Flow: parse and check options (exit 2 on misuse) -> collect and sort the
 * inputs -> shard -> load and check the weights -> per input: plan outputs,
 * refuse to touch inputs or existing files, decode, build the mask, restore,
 * save (atomic, and only after success) -> summary -> exit 0/1/130. */
#include "batch.h"
#include "boxparse.h"
#include "cli.h"
#include "progress.h"
#include "weights_path.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { PROG_NONE = 0, PROG_BAR = 1, PROG_JSON = 2 };
/* The library accepts factors this far outside the weights' range; the early
 * checks here (which name the range and fail before any work) must not be
 * stricter than the library. */
#define SCALE_TOL 0.02

typedef struct {
    long long x, y, w, h;
} box;

typedef struct {
    dr_mode mode;
    const char *cmd;
    cli_common c;
    dr_params p;
    int samples, reduce_mean;
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
    int steps_given, sampler_given, eta_given; /* else the preset's */
    int keep_profile, strip_metadata;
} ropts;

typedef struct {
    ropts *o;
    dr_model *m;
    char *weights_path;
    batch_list b;
    char **outs;        /* primary output of every item (sorted list order) */
    int batch;          /* several inputs or a directory: -o is a directory */
    int out_is_dir;     /* single input with -o DIR */
    int unc_is_dir;
    int mask_is_dir;
    dr_image shared_mask; /* --mask FILE, as 1-channel 8-bit (255 = hole) */
    int have_shared_mask;
    double scale_min, scale_max;
    int have_range;
    dr_save_options save;
    /* progress */
    int total, pos;
    const char *cur_file;
    double t_image, sum_image_time;
    int n_timed;
    int bar_drawn;
    int done, failed, skipped;
    /* metadata */
    char weights_sha256[65];
    unsigned char *srgb_icc; /* the sRGB profile embedded in outputs of inputs that had a profile */
    size_t srgb_icc_size;
    unsigned dropped[5];     /* per output dr_format: DR_META_* parts left out, reported once */
    int exif_partial;        /* EXIF into a TIFF: only its IFD0 text fields */
    int profile_mismatch;    /* --keep-profile impossible for some output (gray/RGB) */
} run;



/* ------------------------------------------------------------------ output helpers */

static void bar_clear(run *x) {
    if (x->bar_drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        x->bar_drawn = 0;
    }
}

/* A note on stderr (silenced by -q). */
static void note(run *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(run *x, const char *fmt, ...) {
    if (x->o->c.quiet) return;
    bar_clear(x);
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_fputs_safe(msg, stderr);
    fputc('\n', stderr);
}


/* The tail of a long name, for the progress line. */
static const char *short_name(const char *s, int max) {
    int n = (int)strlen(s);
    return n <= max ? s : s + (n - max);
}

static void bar_draw(run *x, int step, int steps) {
    if (x->o->progress != PROG_BAR || !progress_is_tty()) return;
    char eta[32] = "--", bar[24];
    double t = cli_now() - x->t_image;
    if (step > 0 && steps > 0) {
        double cur_rem = t / step * (steps - step);
        double per_image = x->n_timed ? x->sum_image_time / x->n_timed : t / step * steps;
        progress_fmt_eta(eta, sizeof eta, cur_rem + per_image * (x->total - x->pos));
    }
    int w = 20, fill = steps > 0 ? (int)((long long)w * step / steps) : 0;
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '-';
    bar[w] = 0;
    fputs("\r\033[K", stderr);
    if (x->total > 1) fprintf(stderr, "[%d/%d] ", x->pos, x->total);
    if (steps > 0) cli_eprintf("%s [%s] %d/%d  ETA %s", short_name(x->cur_file, 40), bar, step, steps, eta);
    else cli_eprintf("%s", short_name(x->cur_file, 60));
    fflush(stderr);
    x->bar_drawn = 1;
}

static void on_progress(int step, int steps, void *user) {
    run *x = user;
    if (x->o->progress == PROG_JSON) {
        fputs("{\"file\":", stdout);
        cli_json_str(stdout, x->cur_file);
        printf(",\"step\":%d,\"steps\":%d}\n", step, steps);
        fflush(stdout);
    }
    bar_draw(x, step, steps);
}

/* "diffrestore: <file>: <reason>" on stderr (always), an error event in JSON. */
static int item_fail(run *x, const char *file, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int item_fail(run *x, const char *file, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bar_clear(x);
    size_t fn = strlen(file);
    /* library messages usually start with the file already */
    fputs("diffrestore: ", stderr);
    if (!(strncmp(msg, file, fn) == 0 && msg[fn] == ':')) {
        cli_fputs_safe(file, stderr);
        fputs(": ", stderr);
    }
    cli_fputs_safe(msg, stderr);
    fputc('\n', stderr);
    if (x->o->progress == PROG_JSON) {
        fputs("{\"file\":", stdout);
        cli_json_str(stdout, file);
        fputs(",\"done\":false,\"error\":", stdout);
        cli_json_str(stdout, msg);
        fputs("}\n", stdout);
        fflush(stdout);
    }
    x->failed++;
    return 0;
}

/* ------------------------------------------------------------------ masks */

static int image_max(const dr_image *im) { return im->depth == 16 ? 65535 : 255; }

/* Any layout -> 1-channel 8-bit, 255 where the mask is white (> half range):
 * gray uses its first channel, colour its luma; alpha is ignored. */
static int mask_from_image(const dr_image *src, dr_image *dst, long long *holes) {
    if (dr_image_alloc(dst, src->width, src->height, 1, 8) != DR_OK) return -1;
    long long maxv = image_max(src), n = (long long)src->width * src->height, h = 0;
    for (long long i = 0; i < n; i++) {
        const uint16_t *px = src->data + i * src->channels;
        int hole;
        if (src->channels >= 3) hole = 2 * (299LL * px[0] + 587LL * px[1] + 114LL * px[2]) > 1000 * maxv;
        else hole = 2LL * px[0] > maxv;
        dst->data[i] = hole ? 255 : 0;
        h += hole;
    }
    *holes = h;
    return 0;
}

/* Holes of the alpha channel (transparent, alpha <= half range). */
static long long alpha_holes(const dr_image *im) {
    long long maxv = image_max(im), n = (long long)im->width * im->height, h = 0;
    int a = im->channels - 1;
    for (long long i = 0; i < n; i++) h += !(2LL * im->data[i * im->channels + a] > maxv);
    return h;
}

/* ------------------------------------------------------------------ planning */

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

static const char *base_of(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Primary output of an item. */
static char *primary_output(run *x, const batch_item *it) {
    const ropts *o = x->o;
    if (x->batch || x->out_is_dir) {
        char *name = path_set_ext(x->batch ? it->rel : base_of(it->path), item_ext(o, it->path));
        char *r = name ? path_join(o->c.output, name) : NULL;
        free(name);
        return r;
    }
    if (o->c.output) return strdup(o->c.output);
    /* default: <stem>_<mode>.<ext> beside the input */
    char *with_ext = path_set_ext(it->path, out_ext(o));
    char suffix[32];
    snprintf(suffix, sizeof suffix, "_%s", dr_mode_name(o->mode));
    char *r = with_ext ? path_add_suffix(with_ext, suffix) : NULL;
    free(with_ext);
    return r;
}

static char *uncertainty_output(run *x, const batch_item *it) {
    const ropts *o = x->o;
    if (!o->uncertainty) return NULL;
    if (x->batch || x->unc_is_dir) {
        char *name = path_set_ext(x->batch ? it->rel : base_of(it->path), "png");
        char *r = name ? path_join(o->uncertainty, name) : NULL;
        free(name);
        return r;
    }
    return strdup(o->uncertainty);
}

typedef struct {
    const char *path;
    int index;
} name_ref;

static int cmp_name_ref(const void *a, const void *b) {
    const name_ref *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Two inputs whose outputs have the same name (a.png and a.jpg, or the same
 * relative name in two input directories): the later one in the sorted list
 * fails. Done over the full list, so every shard agrees. */
static int mark_collisions(run *x) {
    int n = x->b.n;
    if (n < 2) return 0;
    name_ref *r = malloc((size_t)n * sizeof *r);
    if (!r) return -1;
    for (int i = 0; i < n; i++) r[i] = (name_ref){x->outs[i], i};
    qsort(r, (size_t)n, sizeof *r, cmp_name_ref);
    for (int i = 1; i < n; i++) {
        if (strcmp(r[i].path, r[i - 1].path) != 0) continue;
        int first = i - 1;
        while (first > 0 && strcmp(r[first - 1].path, r[i].path) == 0) first--;
        batch_item *it = &x->b.items[r[i].index];
        if (it->error) continue;
        char msg[1024];
        snprintf(msg, sizeof msg, "its output %s would also be the output of %s", r[i].path,
                 x->b.items[r[first].index].path);
        it->error = strdup(msg);
    }
    free(r);
    return 0;
}

/* ------------------------------------------------------------------ one input */

static int path_exists(const char *p, struct stat *st) { return stat(p, st) == 0; }

static char *find_mask_in_dir(run *x, const batch_item *it) {
    const char *rel = x->batch ? it->rel : base_of(it->path);
    static const char *exts[] = {"png", "jpg", "jpeg", "tif", "tiff", "webp",
                                 "PNG", "JPG", "JPEG", "TIF", "TIFF", "WEBP"};
    struct stat st;
    char *p = path_join(x->o->mask, rel);
    if (p && path_exists(p, &st) && S_ISREG(st.st_mode)) return p;
    free(p);
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        char *name = path_set_ext(rel, exts[i]);
        p = name ? path_join(x->o->mask, name) : NULL;
        free(name);
        if (p && path_exists(p, &st) && S_ISREG(st.st_mode)) return p;
        free(p);
    }
    return NULL;
}

/* Build the item's mask into *mask (1-channel 8-bit, 255 = hole), or leave
 * *use_alpha set when the input's alpha is the mask. Returns 0, or -1 after
 * item_fail. */
static int build_mask(run *x, const batch_item *it, const dr_image *img, dr_image *mask, int *use_alpha,
                      long long *holes, char **mask_path) {
    const ropts *o = x->o;
    *use_alpha = 0;
    *mask_path = NULL;
    if (o->n_boxes > 0) {
        if (dr_image_alloc(mask, img->width, img->height, 1, 8) != DR_OK) {
            item_fail(x, it->path, "%s", dr_last_error());
            return -1;
        }
        for (int i = 0; i < o->n_boxes; i++) {
            const box *b = &o->boxes[i];
            long long x0 = b->x < 0 ? 0 : b->x, y0 = b->y < 0 ? 0 : b->y;
            long long x1 = b->x + b->w > img->width ? img->width : b->x + b->w;
            long long y1 = b->y + b->h > img->height ? img->height : b->y + b->h;
            if (x1 <= x0 || y1 <= y0) {
                item_fail(x, it->path, "--box %lld,%lld,%lld,%lld lies outside the %dx%d image", b->x, b->y, b->w,
                          b->h, img->width, img->height);
                return -1;
            }
            for (long long yy = y0; yy < y1; yy++)
                for (long long xx = x0; xx < x1; xx++) mask->data[yy * img->width + xx] = 255;
        }
        long long h = 0, n = (long long)img->width * img->height;
        for (long long i = 0; i < n; i++) h += mask->data[i] != 0;
        *holes = h;
        return 0;
    }
    if (!o->mask) {
        if (img->channels != 2 && img->channels != 4) {
            item_fail(x, it->path,
                      "the image has no alpha channel to use as the mask: give --mask MASK or --box x,y,w,h");
            return -1;
        }
        *use_alpha = 1;
        *holes = alpha_holes(img);
        return 0;
    }
    const dr_image *src;
    dr_image loaded = {0};
    const char *mpath;
    if (x->mask_is_dir) {
        *mask_path = find_mask_in_dir(x, it);
        if (!*mask_path) {
            item_fail(x, it->path, "no mask for it in %s (looked for the same relative name as .png, .jpg, .jpeg, .tif, .tiff or .webp)",
                      o->mask);
            return -1;
        }
        mpath = *mask_path;
        if (dr_image_load(mpath, o->c.max_pixels, &loaded, NULL) != DR_OK) {
            item_fail(x, it->path, "mask %s", dr_last_error());
            return -1;
        }
        src = &loaded;
    } else {
        mpath = o->mask;
        src = &x->shared_mask;
    }
    if (src->width != img->width || src->height != img->height) {
        item_fail(x, it->path, "the mask %s is %dx%d but the image is %dx%d", mpath, src->width, src->height,
                  img->width, img->height);
        dr_image_free(&loaded);
        return -1;
    }
    int rc = mask_from_image(src, mask, holes);
    dr_image_free(&loaded);
    if (rc != 0) {
        item_fail(x, it->path, "%s", dr_last_error());
        return -1;
    }
    return 0;
}

static void free_names(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Save one output of an input with its metadata: EXIF, XMP, IPTC and the
 * provenance unless --strip-metadata; in sRGB (with the sRGB profile when the
 * input had a profile it was converted from), or converted back to the
 * input's profile with --keep-profile. im may be converted in place. */
static int save_output(run *x, const char *file, dr_image *im, const dr_metadata *meta,
                       const dr_image_info *info, int sample, int copy) {
    const ropts *o = x->o;
    dr_metadata sm;
    memset(&sm, 0, sizeof sm);
    if (!o->strip_metadata && meta) {
        sm.exif = meta->exif, sm.exif_size = meta->exif_size;
        sm.xmp = meta->xmp, sm.xmp_size = meta->xmp_size;
        sm.iptc = meta->iptc, sm.iptc_size = meta->iptc_size;
    }
    if (meta && meta->icc && info->icc_converted) {
        int kept = 0;
        /* WebP stores gray as RGB, which a gray profile cannot describe */
        if (o->keep_profile && dr_format_from_path(file) == DR_FORMAT_WEBP && im->channels <= 2) {
            x->profile_mismatch = 1;
        } else if (o->keep_profile) {
            int rc = dr_image_from_srgb(im, meta->icc, meta->icc_size, file);
            if (rc == DR_OK) sm.icc = meta->icc, sm.icc_size = meta->icc_size, kept = 1;
            else if (rc == DR_ERR_UNSUPPORTED) x->profile_mismatch = 1;
            else return rc;
        }
        if (!kept && !o->strip_metadata && im->channels >= 3) sm.icc = x->srgb_icc, sm.icc_size = x->srgb_icc_size;
    }
    char seed[64], steps[16];
    const char *prov[32];
    int n = 0;
    if (!o->strip_metadata) {
        if (o->samples > 1 && o->reduce_mean)
            snprintf(seed, sizeof seed, "%llu-%llu (mean of %d samples)", (unsigned long long)o->p.seed,
                     (unsigned long long)(o->p.seed + (uint64_t)o->samples - 1), o->samples);
        else
            snprintf(seed, sizeof seed, "%llu", (unsigned long long)(o->p.seed + (uint64_t)sample));
        snprintf(steps, sizeof steps, "%d", o->p.steps);
        const char *wname = strrchr(x->weights_path, '/');
        prov[n++] = "Tool", prov[n++] = "diffrestore " DR_VERSION_STRING;
        prov[n++] = "Mode", prov[n++] = dr_mode_name(o->mode);
        prov[n++] = "Weights", prov[n++] = wname ? wname + 1 : x->weights_path;
        prov[n++] = "WeightsSHA256", prov[n++] = x->weights_sha256;
        if (copy) {
            prov[n++] = "Note", prov[n++] = "the mask had no hole: a copy of the input";
        } else {
            prov[n++] = "Sampler", prov[n++] = dr_sampler_name(o->p.sampler);
            prov[n++] = "Steps", prov[n++] = steps;
            prov[n++] = "Seed", prov[n++] = seed;
        }
        prov[n] = NULL;
    }
    dr_save_options so = x->save;
    so.metadata = &sm;
    so.provenance = o->strip_metadata ? NULL : prov;
    dr_format f = dr_format_from_path(file);
    unsigned lost = dr_metadata_unsupported(f, &sm);
    if (lost & DR_META_EXIF) sm.exif = NULL, sm.exif_size = 0;
    if (lost & DR_META_XMP) sm.xmp = NULL, sm.xmp_size = 0; /* the provenance gets a packet of its own */
    if (lost & DR_META_IPTC) sm.iptc = NULL, sm.iptc_size = 0;
    if ((unsigned)f < 5) {
        x->dropped[f] |= lost;
        if (f == DR_FORMAT_TIFF && sm.exif_size) x->exif_partial = 1;
    }
    return dr_image_save(file, im, &so);
}

/* The parts of the inputs' metadata the outputs' formats could not hold, once per run. */
static void report_dropped(run *x) {
    static const char *parts[4] = {"ICC profile", "EXIF", "XMP", "IPTC"};
    for (int f = 1; f < 5; f++) {
        if (!x->dropped[f]) continue;
        char list[128] = "";
        for (int b = 0; b < 4; b++)
            if (x->dropped[f] & (1u << b)) {
                if (list[0]) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, parts[b], sizeof list - strlen(list) - 1);
            }
        note(x, "diffrestore: note: %s of the inputs dropped from the %s outputs (%s)", list,
             dr_format_name((dr_format)f),
             f == DR_FORMAT_JPEG ? "too large for a JPEG marker segment" : "the format has no place for it");
    }
    if (x->exif_partial)
        note(x, "diffrestore: note: TIFF outputs keep only the EXIF's text fields (Make, Model, DateTime, Artist, "
                "Copyright, ImageDescription, Software, DateTimeOriginal, DateTimeDigitized, LensModel, "
                "BodySerialNumber, CameraOwnerName); the rest of the EXIF was dropped from them");
    if (x->profile_mismatch)
        note(x, "diffrestore: note: --keep-profile: a gray profile cannot describe a colour output (or the other way "
                "round, or a gray WebP, which is stored as RGB); those outputs were written in sRGB");
}

/* Process one input. Returns 1 when the run was interrupted during it. */
static int process_item(run *x, batch_item *it, const char *primary) {
    const ropts *o = x->o;
    x->cur_file = it->path;
    if (it->error) return item_fail(x, it->path, "%s", it->error);

    /* ---- the files this input produces */
    int n_files = (o->samples > 1 && !o->reduce_mean) ? o->samples : 1;
    char **files = calloc((size_t)n_files + 1, sizeof *files);
    if (!files) return item_fail(x, it->path, "out of memory");
    int interrupted = 0;
    dr_image img = {0}, mask = {0}, unc = {0}, mean = {0}, *outs = NULL;
    dr_image_info info;
    dr_metadata meta;
    memset(&info, 0, sizeof info);
    memset(&meta, 0, sizeof meta);
    char *mask_path = NULL;
    for (int k = 0; k < n_files; k++) {
        if (n_files == 1) files[k] = strdup(primary);
        else {
            char suffix[24];
            snprintf(suffix, sizeof suffix, "_%d", k + 1);
            files[k] = path_add_suffix(primary, suffix);
        }
        if (!files[k]) {
            item_fail(x, it->path, "out of memory");
            goto out;
        }
    }
    char *unc_path = uncertainty_output(x, it);
    files[n_files] = unc_path; /* may be NULL */
    int n_all = n_files + (unc_path != NULL);

    /* ---- skip, refuse, or prepare directories */
    struct stat st;
    if (o->skip_existing) {
        int all = 1;
        /* an empty file is no finished output: outputs are written whole */
        for (int k = 0; k < n_files && all; k++) all = path_exists(files[k], &st) && st.st_size > 0;
        if (all) {
            x->skipped++;
            if (o->progress == PROG_JSON) {
                fputs("{\"file\":", stdout);
                cli_json_str(stdout, it->path);
                fputs(",\"skipped\":true,\"output\":", stdout);
                cli_json_str(stdout, files[0]);
                fputs("}\n", stdout);
                fflush(stdout);
            }
            goto out;
        }
    }
    for (int k = 0; k < n_all; k++) {
        if (!path_exists(files[k], &st)) continue;
        if (batch_is_input(&x->b, st.st_dev, st.st_ino)) {
            item_fail(x, it->path, "refusing to write %s: it is an input file (an output never replaces an input)",
                      files[k]);
            goto out;
        }
        if (S_ISDIR(st.st_mode)) {
            item_fail(x, it->path, "cannot write %s: it is a directory", files[k]);
            goto out;
        }
        if (o->skip_existing && S_ISREG(st.st_mode) && st.st_size == 0) {
            /* e.g. a placeholder, or a copy that failed: nothing to keep */
            if (unlink(files[k]) != 0) {
                item_fail(x, it->path, "cannot replace the empty file %s: %s", files[k], strerror(errno));
                goto out;
            }
            note(x, "diffrestore: %s was empty (0 bytes): not a finished output, restored again", files[k]);
            continue;
        }
        if (!o->c.overwrite) {
            item_fail(x, it->path, "%s exists (use --overwrite to replace it, or --skip-existing to skip it)",
                      files[k]);
            goto out;
        }
    }
    for (int k = 0; k < n_all; k++) {
        char *dir = path_dirname(files[k]);
        const char *bad;
        if (!dir) {
            item_fail(x, it->path, "out of memory");
            goto out;
        }
        if (mkdir_p(dir, &bad) != 0) {
            item_fail(x, it->path, "cannot write %s: cannot create the directory %s: %s", files[k], bad,
                      strerror(errno));
            free(dir);
            goto out;
        }
        free(dir);
    }

    /* ---- decode and prepare */
    if (x->total > 0) bar_draw(x, 0, 0);
    /* With --strip-metadata only the ICC profile is needed (for --keep-profile);
     * the loader then checks no EXIF. */
    if (dr_image_load_meta(it->path, o->c.max_pixels, &img, &info,
                           (o->strip_metadata && !o->keep_profile) ? NULL : &meta) != DR_OK) {
        const char *hint = o->strip_metadata ? "" : " (--strip-metadata restores it without its metadata)";
        item_fail(x, it->path, "%s%s", dr_last_error(), strstr(dr_last_error(), "EXIF") ? hint : "");
        goto out;
    }
    const dr_image *maskp = NULL;
    int use_alpha = 0;
    if (o->mode == DR_MODE_INPAINT) {
        long long holes;
        if (build_mask(x, it, &img, &mask, &use_alpha, &holes, &mask_path) != 0) goto out;
        if (mask_path && path_exists(mask_path, &st)) {
            for (int k = 0; k < n_all; k++) {
                struct stat so;
                if (path_exists(files[k], &so) && so.st_dev == st.st_dev && so.st_ino == st.st_ino) {
                    item_fail(x, it->path, "refusing to write %s: it is the mask", files[k]);
                    goto out;
                }
            }
        }
        if (holes == 0) {
            /* nothing to fill: the output is the input */
            note(x, "diffrestore: %s: the mask has no hole; the output is a copy of the input", it->path);
            for (int k = 0; k < n_files; k++)
                if (save_output(x, files[k], &img, &meta, &info, k, 1) != DR_OK) {
                    item_fail(x, it->path, "%s", dr_last_error());
                    goto out;
                }
            if (unc_path) { /* zero spread everywhere: a black map */
                if (dr_image_alloc(&unc, img.width, img.height, 3, 8) != DR_OK ||
                    dr_image_save(unc_path, &unc, &x->save) != DR_OK) {
                    item_fail(x, it->path, "%s", dr_last_error());
                    goto out;
                }
            }
            goto done;
        }
        maskp = use_alpha ? NULL : &mask;
    }
    if (o->mode == DR_MODE_SUPERRES && x->have_range && (o->width_given || o->height_given)) {
        double f[2] = {o->width_given ? (double)o->p.out_width / img.width : 0,
                       o->height_given ? (double)o->p.out_height / img.height : 0};
        for (int i = 0; i < 2; i++) {
            if (f[i] == 0) continue;
            if (f[i] < x->scale_min - SCALE_TOL || f[i] > x->scale_max + SCALE_TOL) {
                item_fail(x, it->path, "--%s %d means a factor of %.3g for this %dx%d image, outside %g..%g of %s",
                          i ? "height" : "width", i ? o->p.out_height : o->p.out_width, f[i], img.width, img.height,
                          x->scale_min, x->scale_max, x->weights_path);
                goto out;
            }
        }
    }

    /* ---- restore */
    dr_params p = o->p;
    p.progress = on_progress;
    p.user = x;
    p.cancel = &cli_cancel;
    x->t_image = cli_now();
    bar_draw(x, 0, 0);
    int rc;
    if (o->samples == 1 && !unc_path) {
        outs = calloc(1, sizeof *outs);
        rc = outs ? dr_restore(x->m, &img, maskp, &p, &outs[0]) : DR_ERR_NOMEM;
    } else {
        /* with --reduce mean the samples themselves are not kept (outs NULL) */
        outs = o->reduce_mean ? NULL : calloc((size_t)o->samples, sizeof *outs);
        rc = (outs || o->reduce_mean) ? dr_restore_samples(x->m, &img, maskp, &p, o->samples, outs,
                                                           o->reduce_mean ? &mean : NULL, unc_path ? &unc : NULL)
                                      : DR_ERR_NOMEM;
    }
    if (rc == DR_ERR_CANCELLED || (rc != DR_OK && cli_cancel)) {
        interrupted = 1;
        goto out;
    }
    if (rc != DR_OK) {
        item_fail(x, it->path, "%s", rc == DR_ERR_NOMEM && !outs && !o->reduce_mean ? "out of memory" : dr_last_error());
        goto out;
    }
    x->sum_image_time += cli_now() - x->t_image;
    x->n_timed++;

    /* ---- save: only complete results, each atomically */
    for (int k = 0; k < n_files; k++) {
        dr_image *im = o->reduce_mean ? &mean : &outs[k];
        if (save_output(x, files[k], im, &meta, &info, k, 0) != DR_OK) {
            item_fail(x, it->path, "%s", dr_last_error());
            goto out;
        }
    }
    if (unc_path && dr_image_save(unc_path, &unc, &x->save) != DR_OK) {
        item_fail(x, it->path, "%s", dr_last_error());
        goto out;
    }

done:
    x->done++;
    if (!o->c.quiet) {
        bar_clear(x);
        cli_eprintf("%s -> %s%s%s\n", it->path, files[0], n_files > 1 ? " ..." : "",
                unc_path ? " (+ uncertainty)" : "");
    }
    if (o->progress == PROG_JSON) {
        fputs("{\"file\":", stdout);
        cli_json_str(stdout, it->path);
        fputs(",\"done\":true,\"output\":", stdout);
        cli_json_str(stdout, files[0]);
        if (n_files > 1) {
            fputs(",\"outputs\":[", stdout);
            for (int k = 0; k < n_files; k++) {
                if (k) fputc(',', stdout);
                cli_json_str(stdout, files[k]);
            }
            fputc(']', stdout);
        }
        if (unc_path) {
            fputs(",\"uncertainty\":", stdout);
            cli_json_str(stdout, unc_path);
        }
        fputs("}\n", stdout);
        fflush(stdout);
    }

out:
    if (outs) {
        for (int k = 0; k < o->samples; k++) dr_image_free(&outs[k]);
        free(outs);
    }
    dr_image_free(&img);
    dr_image_free(&mask);
    dr_image_free(&unc);
    dr_image_free(&mean);
    dr_metadata_free(&meta);
    free(mask_path);
    free_names(files, n_files + 1);
    return interrupted;
}

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
    switch (mode) {
    case DR_MODE_COLORIZE:
        fprintf(f, "Usage: diffrestore colorize [options] INPUT... -o OUTPUT\n"
                   "Colorize black-and-white photos. The output's luma is the input's; colour\n"
                   "input is treated as gray (its luma is used).\n\n"
                   "Working resolution:\n"
                   "      --render-size R   colour the photo downscaled to a long side of R\n"
                   "                        (never upscaled) and bring the colour back to full\n"
                   "                        size guided by the full-size luma; 0 = full size.\n"
                   "                        Default: the weights' render_size (see 'diffrestore\n"
                   "                        info WEIGHTS'), else 0\n\n");
        break;
    case DR_MODE_INPAINT:
        fprintf(f, "Usage: diffrestore inpaint [options] INPUT... [--mask MASK | --box x,y,w,h...] -o OUTPUT\n"
                   "Fill holes in photos. Known pixels are kept bit for bit.\n\n"
                   "Where the holes are:\n"
                   "      --mask MASK       an image of the same size, white (> half range) where\n"
                   "                        the hole is; any layout (gray: first channel, colour:\n"
                   "                        luma). A directory: masks paired by relative path, with\n"
                   "                        the same name as .png, .jpg, .jpeg, .tif(f) or .webp.\n"
                   "                        Masks are in the upright frame: the input's EXIF\n"
                   "                        orientation is applied before the mask is used\n"
                   "      --box x,y,w,h     a rectangular hole (repeatable); boxes reaching past\n"
                   "                        the edge are clipped, one entirely outside is an error\n"
                   "  (neither)             the input's alpha channel: transparent = hole\n"
                   "  A mask without any hole gives a copy of the input (with a note).\n\n");
        break;
    default:
        fprintf(f, "Usage: diffrestore superres (--scale S | --width W | --height H) [options] INPUT... -o OUTPUT\n"
                   "Upscale photos. Downscaling the output gives back the input.\n\n"
                   "Output size (one of):\n"
                   "      --scale S         factor, within the weights' range (see 'diffrestore\n"
                   "                        info WEIGHTS': scale_min..scale_max)\n"
                   "      --width W         output width (with --height too: both fixed;\n"
                   "      --height H        alone: the other keeps the aspect ratio)\n\n");
    }
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
            name, (long long)DR_DEFAULT_MAX_PIXELS, pre[DR_QUALITY_FAST], pre[DR_QUALITY_DEFAULT],
            pre[DR_QUALITY_BEST], d.steps, dr_sampler_name(d.sampler), d.eta,
            dr_spacing_name(d.spacing), (unsigned long long)d.seed, d.tile, d.tile ? "" : ": automatic", d.tile_overlap,
            d.tile_overlap ? "" : ": automatic", name);
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
    O_STEPS = OPT_CMD_BASE, O_SAMPLER, O_ETA, O_SEED, O_SAMPLES, O_REDUCE, O_UNCERT, O_TILE, O_TILE_OVERLAP,
    O_SPACING, O_PROGRESS, O_FORMAT, O_SKIP_EXISTING, O_SHARD, O_MASK, O_BOX, O_SCALE, O_WIDTH, O_HEIGHT,
    O_RENDER, O_KEEP_PROFILE, O_STRIP_METADATA
};


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

/* Parse argv into o. Returns -1 to go on, or an exit code. */
static int parse_options(ropts *o, int argc, char **argv) {
    static const struct option longopts[] = {
        {"steps", required_argument, 0, O_STEPS},
        {"sampler", required_argument, 0, O_SAMPLER},
        {"eta", required_argument, 0, O_ETA},
        {"seed", required_argument, 0, O_SEED},
        {"samples", required_argument, 0, O_SAMPLES},
        {"reduce", required_argument, 0, O_REDUCE},
        {"uncertainty", required_argument, 0, O_UNCERT},
        {"tile", required_argument, 0, O_TILE},
        {"tile-overlap", required_argument, 0, O_TILE_OVERLAP},
        {"spacing", required_argument, 0, O_SPACING},
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
    const char *C = o->cmd;
    int opt, mode_only = 0;
    long long v;
    double d;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "r" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'h': print_help(o->mode); return EXIT_DONE;
        case 'r': o->recursive = 1; break;
        case O_STEPS:
            if (!cli_parse_int(optarg, 1, 100000, &v)) return cli_usage_error(C, "--steps needs 1..100000, got '%s'", optarg);
            o->p.steps = (int)v;
            o->steps_given = 1;
            break;
        case O_SAMPLER:
            if (dr_sampler_from_name(optarg, &o->p.sampler) != DR_OK)
                return cli_usage_error(C, "--sampler must be one of " DR_SAMPLER_NAMES ", not '%s'", optarg);
            o->sampler_given = 1;
            break;
        case O_ETA:
            if (!cli_parse_double(optarg, 0, 1, &d)) return cli_usage_error(C, "--eta needs 0..1, got '%s'", optarg);
            o->p.eta = d;
            o->eta_given = 1;
            break;
        case O_SEED:
            if (strcmp(optarg, "random") == 0) {
                o->seed_random = 1;
            } else {
                char *end;
                errno = 0;
                unsigned long long s = strtoull(optarg, &end, 10);
                if (errno || !*optarg || *end || optarg[0] == '-' || optarg[0] == '+')
                    return cli_usage_error(C, "--seed needs a number or 'random', got '%s'", optarg);
                o->p.seed = s;
                o->seed_random = 0;
            }
            break;
        case O_SAMPLES:
            if (!cli_parse_int(optarg, 1, 1000, &v)) return cli_usage_error(C, "--samples needs 1..1000, got '%s'", optarg);
            o->samples = (int)v;
            break;
        case O_REDUCE:
            if (strcmp(optarg, "mean") != 0) return cli_usage_error(C, "--reduce supports only 'mean', not '%s'", optarg);
            o->reduce_mean = 1;
            break;
        case O_UNCERT: o->uncertainty = optarg; break;
        case O_TILE:
            if (!cli_parse_int(optarg, 0, 1 << 20, &v)) return cli_usage_error(C, "--tile needs a size in pixels, got '%s'", optarg);
            o->p.tile = (int)v;
            break;
        case O_TILE_OVERLAP:
            if (!cli_parse_int(optarg, 0, 1 << 16, &v)) return cli_usage_error(C, "--tile-overlap needs pixels, got '%s'", optarg);
            o->p.tile_overlap = (int)v;
            break;
        case O_SPACING:
            if (dr_spacing_from_name(optarg, &o->p.spacing) != DR_OK) return cli_usage_error(C, "%s", dr_last_error());
            break;
        case O_PROGRESS:
            if (!optarg || strcmp(optarg, "bar") == 0) o->progress = PROG_BAR;
            else if (strcmp(optarg, "json") == 0) o->progress = PROG_JSON;
            else if (strcmp(optarg, "none") == 0) o->progress = PROG_NONE;
            else return cli_usage_error(C, "--progress must be bar, json or none, not '%s'", optarg);
            o->progress_given = 1;
            break;
        case O_FORMAT:
            if (strcasecmp(optarg, "png") == 0) o->format = "png";
            else if (strcasecmp(optarg, "jpg") == 0 || strcasecmp(optarg, "jpeg") == 0) o->format = "jpg";
            else if (strcasecmp(optarg, "tif") == 0 || strcasecmp(optarg, "tiff") == 0) o->format = "tif";
            else if (strcasecmp(optarg, "webp") == 0) o->format = "webp";
            else return cli_usage_error(C, "--format must be png, jpg, tif or webp, not '%s'", optarg);
            break;
        case O_SKIP_EXISTING: o->skip_existing = 1; break;
        case O_KEEP_PROFILE: o->keep_profile = 1; break;
        case O_STRIP_METADATA: o->strip_metadata = 1; break;
        case O_SHARD:
            if (!parse_shard(optarg, &o->shard_k, &o->shard_n))
                return cli_usage_error(C, "--shard needs K/N with 0 <= K < N, got '%s'", optarg);
            o->shard_given = 1;
            break;
        case O_MASK:
            if (o->mode != DR_MODE_INPAINT) mode_only = opt;
            o->mask = optarg;
            break;
        case O_BOX: {
            if (o->mode != DR_MODE_INPAINT) {
                mode_only = opt;
                break;
            }
            int bx, by, bw, bh;
            if (!cli_parse_box(optarg, &bx, &by, &bw, &bh))
                return cli_usage_error(C, "--box needs x,y,w,h: integers within -1000000000..1000000000, w and h > 0, got '%s'", optarg);
            box *nb = realloc(o->boxes, (size_t)(o->n_boxes + 1) * sizeof *nb);
            if (!nb) return cli_eprintf("diffrestore: out of memory\n"), EXIT_FAILED;
            o->boxes = nb;
            o->boxes[o->n_boxes++] = (box){bx, by, bw, bh};
            break;
        }
        case O_SCALE:
            if (o->mode != DR_MODE_SUPERRES) mode_only = opt;
            else if (!cli_parse_double(optarg, 1, 64, &d)) return cli_usage_error(C, "--scale needs a factor 1..64, got '%s'", optarg);
            else o->p.scale = d;
            o->scale_given = 1;
            break;
        case O_RENDER:
            if (o->mode != DR_MODE_COLORIZE) {
                mode_only = opt;
                break;
            }
            if (!cli_parse_int(optarg, 0, DR_RENDER_SIZE_MAX, &v) || (v > 0 && v < DR_RENDER_SIZE_MIN))
                return cli_usage_error(C, "--render-size needs 0 or %d..%d, got '%s'", DR_RENDER_SIZE_MIN,
                                       DR_RENDER_SIZE_MAX, optarg);
            o->p.render_size = (int)v;
            break;
        case O_WIDTH:
        case O_HEIGHT:
            if (o->mode != DR_MODE_SUPERRES) {
                mode_only = opt;
                break;
            }
            if (!cli_parse_int(optarg, 1, 1 << 20, &v))
                return cli_usage_error(C, "--%s needs a size in pixels, got '%s'", opt == O_WIDTH ? "width" : "height", optarg);
            if (opt == O_WIDTH) o->p.out_width = (int)v, o->width_given = 1;
            else o->p.out_height = (int)v, o->height_given = 1;
            break;
        default: {
            int r = cli_common_option(&o->c, opt, optarg, C);
            if (r < 0) return EXIT_USAGE;
            if (r == 0) return cli_usage_error(C, "unknown option");
        }
        }
    }
    if (mode_only) {
        const char *n = mode_only == O_MASK ? "--mask" : mode_only == O_BOX ? "--box" : mode_only == O_SCALE ? "--scale"
                        : mode_only == O_WIDTH ? "--width" : mode_only == O_RENDER ? "--render-size" : "--height";
        return cli_usage_error(C, "%s is only for %s", n,
                               (mode_only == O_MASK || mode_only == O_BOX) ? "inpaint"
                               : mode_only == O_RENDER                     ? "colorize"
                                                                           : "superres");
    }
    if (o->c.preset_given) { /* the preset's sampler, steps and eta, unless given */
        dr_params q;
        dr_params_init_quality(&q, o->mode, (dr_quality)o->c.preset);
        if (!o->sampler_given) o->p.sampler = q.sampler;
        if (!o->steps_given) o->p.steps = q.steps;
        if (!o->eta_given) o->p.eta = q.eta;
    }
    if (optind >= argc) return cli_usage_error(C, "no input given");
    if (o->mode == DR_MODE_SUPERRES) {
        if (!o->scale_given && !o->width_given && !o->height_given)
            return cli_usage_error(C, "give the output size: --scale S, --width W or --height H");
        if (o->scale_given && (o->width_given || o->height_given))
            return cli_usage_error(C, "--scale and --width/--height exclude each other");
    }
    if (o->mask && o->n_boxes) return cli_usage_error(C, "--mask and --box exclude each other");
    if (o->reduce_mean && o->samples < 2) return cli_usage_error(C, "--reduce mean needs --samples 2 or more");
    if (o->uncertainty && o->samples < 2) return cli_usage_error(C, "--uncertainty needs --samples 2 or more");
    if (o->skip_existing && o->c.overwrite) return cli_usage_error(C, "--skip-existing and --overwrite exclude each other");
    if (o->c.output && !*o->c.output) return cli_usage_error(C, "-o needs a path");
    if (o->uncertainty && !*o->uncertainty) return cli_usage_error(C, "--uncertainty needs a path");
    return -1;
}

/* ------------------------------------------------------------------ the command */

static int add_skip_dir(file_id *skip, int *n, const char *path) {
    struct stat st;
    if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        skip[*n].dev = st.st_dev;
        skip[*n].ino = st.st_ino;
        (*n)++;
        return 1;
    }
    return 0;
}

static int restore_main(dr_mode mode, int argc, char **argv) {
    ropts o;
    memset(&o, 0, sizeof o);
    o.mode = mode;
    o.cmd = dr_mode_name(mode);
    const char *C = o.cmd;
    cli_common_init(&o.c);
    dr_params_init_mode(&o.p, mode);
    o.samples = 1;
    o.progress = PROG_BAR;
    run x;
    memset(&x, 0, sizeof x);
    x.o = &o;
    int code = parse_options(&o, argc, argv);
    if (code >= 0) goto end;
    code = EXIT_FAILED;
    if (o.c.quiet && !o.progress_given) o.progress = PROG_NONE;
    if (o.c.quiet && o.progress == PROG_BAR) o.progress = PROG_NONE;
    cli_apply_compute(&o.c, C);

    /* ---- what kind of run */
    char **inputs = argv + optind;
    int n_inputs = argc - optind;
    x.batch = n_inputs > 1 || is_dir(inputs[0]);
    if (x.batch) {
        if (!o.c.output) {
            code = cli_usage_error(C, "%s need -o DIR", n_inputs > 1 ? "several inputs" : "a directory input");
            goto end;
        }
        struct stat st;
        if (stat(o.c.output, &st) == 0 && !S_ISDIR(st.st_mode)) {
            code = cli_usage_error(C, "-o %s is a file: %s need an output directory", o.c.output,
                                   n_inputs > 1 ? "several inputs" : "a directory input");
            goto end;
        }
        if (o.uncertainty && stat(o.uncertainty, &st) == 0 && !S_ISDIR(st.st_mode)) {
            code = cli_usage_error(C, "--uncertainty %s is a file: with several inputs it is a directory", o.uncertainty);
            goto end;
        }
    } else {
        if (o.c.output) {
            x.out_is_dir = is_dir(o.c.output) || ends_with_slash(o.c.output);
            if (!x.out_is_dir) {
                if (!path_has_image_ext(o.c.output)) {
                    code = cli_usage_error(C, "-o %s: the name must end in .png, .jpg, .jpeg, .tif, .tiff or .webp (or be a directory)",
                                           o.c.output);
                    goto end;
                }
                if (o.format && !same_ext_kind(o.c.output, o.format)) {
                    code = cli_usage_error(C, "-o %s does not match --format %s", o.c.output, o.format);
                    goto end;
                }
            }
        }
        if (o.uncertainty) {
            x.unc_is_dir = is_dir(o.uncertainty) || ends_with_slash(o.uncertainty);
            if (!x.unc_is_dir && !path_has_image_ext(o.uncertainty)) {
                code = cli_usage_error(C, "--uncertainty %s: the name must end in .png, .jpg, .jpeg, .tif, .tiff or .webp", o.uncertainty);
                goto end;
            }
        }
    }

    /* ---- shard */
    if (!o.shard_given) {
        char msg[256];
        int r = shard_from_slurm(&o.shard_k, &o.shard_n, msg, sizeof msg);
        if (r < 0) {
            code = cli_usage_error(C, "%s", msg);
            goto end;
        }
        if (r > 0 && !o.c.quiet)
            cli_eprintf("diffrestore: shard %d/%d from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT\n", o.shard_k,
                    o.shard_n);
        if (r == 0) o.shard_k = 0, o.shard_n = 1;
    }

    /* ---- the mask (file or directory) */
    struct stat mst;
    if (o.mask) {
        if (stat(o.mask, &mst) != 0) {
            cli_eprintf("diffrestore: %s: %s\n", o.mask, strerror(errno));
            goto end;
        }
        x.mask_is_dir = S_ISDIR(mst.st_mode);
    }

    /* ---- with -r, an output folder inside an input folder would hold files
     * that the walk reads as inputs (and --overwrite would replace them) */
    if (o.recursive) {
        const char *outs[2] = {x.batch ? o.c.output : NULL, x.batch ? o.uncertainty : NULL};
        for (int i = 0; i < n_inputs; i++)
            for (int k = 0; k < 2; k++)
                if (outs[k] && is_dir(inputs[i]) && dr_path_within(outs[k], inputs[i])) {
                    code = cli_usage_error(C, "%s %s lies inside the input folder %s walked with -r: choose a folder outside it",
                                           k ? "--uncertainty" : "-o", outs[k], inputs[i]);
                    goto end;
                }
    }

    /* ---- inputs, in a deterministic order */
    file_id skip[3];
    int n_skip = 0;
    if (x.batch) {
        add_skip_dir(skip, &n_skip, o.c.output);
        add_skip_dir(skip, &n_skip, o.uncertainty);
    }
    if (x.mask_is_dir) add_skip_dir(skip, &n_skip, o.mask);
    if (batch_collect(&x.b, inputs, n_inputs, o.recursive, skip, n_skip) != 0) {
        cli_eprintf("diffrestore: out of memory\n");
        goto end;
    }
    batch_sort(&x.b);
    /* hidden image files and FIFOs in the folders: counted as skipped, named under -v */
    x.skipped += x.b.n_ignored;
    if (o.c.verbose)
        for (int i = 0; i < x.b.n_ignored; i++) cli_eprintf("diffrestore: %s\n", x.b.ignored[i]);
    if (x.b.n == 0) {
        cli_eprintf("diffrestore: no PNG or JPEG files in %s%s\n", n_inputs == 1 ? inputs[0] : "the inputs",
                x.b.subdirs ? " (it has subdirectories: use -r to include them)" : "");
        goto end;
    }
    if (o.mask && !x.mask_is_dir && batch_add_id(&x.b, mst.st_dev, mst.st_ino) != 0) goto end;
    x.outs = calloc((size_t)x.b.n, sizeof *x.outs);
    if (!x.outs) goto end;
    for (int i = 0; i < x.b.n; i++)
        if (!(x.outs[i] = primary_output(&x, &x.b.items[i]))) {
            cli_eprintf("diffrestore: out of memory\n");
            goto end;
        }
    if (mark_collisions(&x) != 0) goto end;
    for (int i = 0; i < x.b.n; i++) x.total += i % o.shard_n == o.shard_k;

    /* ---- weights */
    if (weights_load(o.c.weights, mode, C, &x.m, &x.weights_path) != 0) goto end;
    if (!o.strip_metadata && dr_file_sha256(x.weights_path, x.weights_sha256) != DR_OK) {
        cli_report_error(NULL);
        goto end;
    }
    if (dr_srgb_profile(&x.srgb_icc, &x.srgb_icc_size) != DR_OK) {
        cli_report_error(NULL);
        goto end;
    }
    if (mode == DR_MODE_SUPERRES) {
        dr_model_scale_range(x.m, &x.scale_min, &x.scale_max);
        x.have_range = x.scale_min > 0 && x.scale_max >= x.scale_min;
        if (x.have_range && o.scale_given && (o.p.scale < x.scale_min - SCALE_TOL || o.p.scale > x.scale_max + SCALE_TOL)) {
            cli_eprintf("diffrestore: %s: --scale %g is outside the range these weights were trained for: %g..%g\n",
                    x.weights_path, o.p.scale, x.scale_min, x.scale_max);
            goto end;
        }
    }
    if (o.mask && !x.mask_is_dir) {
        /* kept as loaded; converted per image after the size check */
        if (dr_image_load(o.mask, o.c.max_pixels, &x.shared_mask, NULL) != DR_OK) {
            cli_eprintf("diffrestore: mask %s\n", dr_last_error());
            goto end;
        }
        x.have_shared_mask = 1;
    }

    /* ---- output directories */
    if (x.batch) {
        const char *bad;
        if (mkdir_p(o.c.output, &bad) != 0) {
            cli_eprintf("diffrestore: cannot create the output directory %s: %s: %s\n", o.c.output, bad,
                    strerror(errno));
            goto end;
        }
        if (o.uncertainty && mkdir_p(o.uncertainty, &bad) != 0) {
            cli_eprintf("diffrestore: cannot create the uncertainty directory %s: %s: %s\n", o.uncertainty, bad,
                    strerror(errno));
            goto end;
        }
        struct stat a, b;
        if (o.uncertainty && stat(o.c.output, &a) == 0 && stat(o.uncertainty, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            code = cli_usage_error(C, "--uncertainty must be another directory than -o");
            goto end;
        }
    } else if (o.uncertainty) {
        for (int i = 0; i < x.b.n; i++) {
            char *u = uncertainty_output(&x, &x.b.items[i]);
            int same = u && strcmp(u, x.outs[i]) == 0;
            free(u);
            if (same) {
                code = cli_usage_error(C, "--uncertainty and -o name the same file");
                goto end;
            }
        }
    }

    /* ---- seed, signals */
    if (o.seed_random) {
        o.p.seed = random_seed();
        fprintf(stderr, "seed: %llu\n", (unsigned long long)o.p.seed);
    }
    dr_save_options_init(&x.save);
    x.save.jpeg_quality = o.c.quality;
    /* WebP is lossless unless --quality is given. */
    x.save.webp_quality = o.c.quality_given ? o.c.quality : 0;
    x.save.overwrite = o.c.overwrite;
    cli_catch_signals(1); /* a second Ctrl-C stops at once */

    /* ---- the work */
    int interrupted = 0, not_processed = 0;
    for (int i = 0; i < x.b.n; i++) {
        if (i % o.shard_n != o.shard_k) continue;
        if (interrupted || cli_cancel) {
            interrupted = 1;
            not_processed++;
            continue;
        }
        x.pos++;
        if (process_item(&x, &x.b.items[i], x.outs[i])) {
            interrupted = 1;
            not_processed++;
        }
    }
    bar_clear(&x);
    report_dropped(&x);
    if (interrupted)
        cli_eprintf("diffrestore: interrupted (%s): the current image was abandoned, finished outputs are kept\n",
                cli_signal == SIGTERM ? "SIGTERM" : "SIGINT");
    if (!o.c.quiet || interrupted) {
        fprintf(stderr, "%d done, %d failed, %d skipped", x.done, x.failed, x.skipped);
        if (interrupted) fprintf(stderr, ", %d not processed", not_processed);
        if (o.shard_n > 1) fprintf(stderr, " (shard %d/%d: %d of %d inputs)", o.shard_k, o.shard_n, x.total, x.b.n);
        fputc('\n', stderr);
    }
    code = interrupted ? 128 + (cli_signal ? (int)cli_signal : SIGINT) : x.failed ? EXIT_FAILED : EXIT_DONE;

end:
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

int cmd_colorize(int argc, char **argv) { return restore_main(DR_MODE_COLORIZE, argc, argv); }
int cmd_inpaint(int argc, char **argv) { return restore_main(DR_MODE_INPAINT, argc, argv); }
int cmd_superres(int argc, char **argv) { return restore_main(DR_MODE_SUPERRES, argc, argv); }
