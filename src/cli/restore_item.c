/* One input of a restore command: its output files (planned, checked,
 * skipped), decode, mask, restore, save with metadata, report (see restore.h). */
#include "restore.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *restore_base_of(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

char *restore_uncertainty_output(run *x, const batch_item *it) {
    const ropts *o = x->o;
    if (!o->uncertainty) return NULL;
    if (x->batch || x->unc_is_dir)
        return batch_out_path(o->uncertainty, x->batch ? it->rel : restore_base_of(it->path), "png", "");
    return strdup(o->uncertainty);
}

static int path_exists(const char *p, struct stat *st) { return stat(p, st) == 0; }

static void on_progress(int step, int steps, void *user) {
    run *x = user;
    if (x->o->progress == PROG_JSON) {
        fputs("{\"file\":", stdout);
        cli_json_str(stdout, x->pr.cur);
        printf(",\"step\":%d,\"steps\":%d}\n", step, steps);
        fflush(stdout);
    }
    progress_bar(&x->pr, step, steps);
}

/* Save one output of an input with its metadata: EXIF, XMP, IPTC and the
 * provenance unless --strip-metadata; in sRGB (with the sRGB profile when the
 * input had a profile it was converted from), or converted back to the
 * input's profile with --keep-profile. im may be converted in place. */
static int save_output(run *x, const char *file, dr_image *im, const dr_metadata *meta, const dr_image_info *info,
                       int sample, int copy) {
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
            if (rc == DR_OK)
                sm.icc = meta->icc, sm.icc_size = meta->icc_size, kept = 1;
            else if (rc == DR_ERR_UNSUPPORTED)
                x->profile_mismatch = 1;
            else
                return rc;
        }
        if (!kept && !o->strip_metadata && im->channels >= 3) sm.icc = x->srgb_icc, sm.icc_size = x->srgb_icc_size;
    }
    char seed[64], steps[16], guidance[32];
    const char *prov[32];
    int n = 0;
    if (!o->strip_metadata) {
        if (o->s.samples > 1 && o->s.reduce_mean)
            snprintf(seed, sizeof seed, "%llu-%llu (mean of %d samples)", (unsigned long long)o->p.seed,
                     (unsigned long long)(o->p.seed + (uint64_t)o->s.samples - 1), o->s.samples);
        else
            snprintf(seed, sizeof seed, "%llu", (unsigned long long)(o->p.seed + (uint64_t)sample));
        snprintf(steps, sizeof steps, "%d", o->p.steps);
        snprintf(guidance, sizeof guidance, "%g", cli_guidance(x->m, &o->p));
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
            if (cli_guidance(x->m, &o->p) > 0) prov[n++] = "Guidance", prov[n++] = guidance;
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
void restore_report_dropped(run *x) {
    static const char *parts[4] = {"ICC profile", "EXIF", "XMP", "IPTC"};
    for (int f = 1; f < 5; f++) {
        if (!x->dropped[f]) continue;
        char list[128] = "";
        for (int b = 0; b < 4; b++)
            if (x->dropped[f] & (1u << b)) {
                if (list[0]) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, parts[b], sizeof list - strlen(list) - 1);
            }
        progress_note(&x->pr, "diffrestore: note: %s of the inputs dropped from the %s outputs (%s)", list,
                      dr_format_name((dr_format)f),
                      f == DR_FORMAT_JPEG ? "too large for a JPEG marker segment" : "the format has no place for it");
    }
    if (x->exif_partial)
        progress_note(
            &x->pr,
            "diffrestore: note: TIFF outputs keep only the EXIF's text fields (Make, Model, DateTime, Artist, "
            "Copyright, ImageDescription, Software, DateTimeOriginal, DateTimeDigitized, LensModel, "
            "BodySerialNumber, CameraOwnerName); the rest of the EXIF was dropped from them");
    if (x->profile_mismatch)
        progress_note(
            &x->pr,
            "diffrestore: note: --keep-profile: a gray profile cannot describe a colour output (or the other way "
            "round, or a gray WebP, which is stored as RGB); those outputs were written in sRGB");
}

/* The state of one input. */
typedef struct {
    batch_item *it;
    char **files; /* the n_files outputs, then the uncertainty map (or NULL) */
    int n_files, n_all;
    char *unc_path; /* files[n_files] */
    dr_image img, mask, unc, mean, *outs;
    dr_image_info info;
    dr_metadata meta;
    char *mask_path;
} item;

static void item_free(run *x, item *t) {
    if (t->outs) {
        for (int k = 0; k < x->o->s.samples; k++) dr_image_free(&t->outs[k]);
        free(t->outs);
    }
    dr_image_free(&t->img);
    dr_image_free(&t->mask);
    dr_image_free(&t->unc);
    dr_image_free(&t->mean);
    dr_metadata_free(&t->meta);
    free(t->mask_path);
    if (t->files)
        for (int k = 0; k <= t->n_files; k++) free(t->files[k]);
    free(t->files);
}

/* The files this input produces: NAME, or NAME_1 .. NAME_N for several
 * samples, and the uncertainty map. Returns 0, or -1 after the report. */
static int plan_files(run *x, item *t, const char *primary) {
    const ropts *o = x->o;
    t->n_files = (o->s.samples > 1 && !o->s.reduce_mean) ? o->s.samples : 1;
    t->files = calloc((size_t)t->n_files + 1, sizeof *t->files);
    if (!t->files) return progress_fail(&x->pr, t->it->path, "out of memory"), -1;
    for (int k = 0; k < t->n_files; k++) {
        char suffix[24];
        snprintf(suffix, sizeof suffix, "_%d", k + 1);
        t->files[k] = t->n_files == 1 ? strdup(primary) : path_add_suffix(primary, suffix);
        if (!t->files[k]) return progress_fail(&x->pr, t->it->path, "out of memory"), -1;
    }
    t->unc_path = restore_uncertainty_output(x, t->it);
    t->files[t->n_files] = t->unc_path; /* may be NULL */
    t->n_all = t->n_files + (t->unc_path != NULL);
    return 0;
}

/* --skip-existing: all outputs there. Returns 1 when the input is skipped. */
static int skip_done(run *x, item *t) {
    if (!x->o->skip_existing || !batch_outputs_done(t->files, t->n_files)) return 0;
    x->skipped++;
    if (x->o->progress == PROG_JSON) {
        fputs("{\"file\":", stdout);
        cli_json_str(stdout, t->it->path);
        fputs(",\"skipped\":true,\"output\":", stdout);
        cli_json_str(stdout, t->files[0]);
        fputs("}\n", stdout);
        fflush(stdout);
    }
    return 1;
}

/* Refuse to write over an input, a directory or (without --overwrite) an
 * existing file; create the directories. Returns 0, or -1 after the report. */
static int check_files(run *x, item *t) {
    const ropts *o = x->o;
    const char *in = t->it->path;
    struct stat st;
    for (int k = 0; k < t->n_all; k++) {
        const char *f = t->files[k];
        if (!path_exists(f, &st)) continue;
        if (batch_is_input(&x->b, st.st_dev, st.st_ino))
            return progress_fail(&x->pr, in,
                                 "refusing to write %s: it is an input file (an output never replaces an input)", f),
                   -1;
        if (S_ISDIR(st.st_mode)) return progress_fail(&x->pr, in, "cannot write %s: it is a directory", f), -1;
        if (o->skip_existing && S_ISREG(st.st_mode) && st.st_size == 0) {
            /* e.g. a placeholder, or a copy that failed: nothing to keep */
            if (unlink(f) != 0)
                return progress_fail(&x->pr, in, "cannot replace the empty file %s: %s", f, strerror(errno)), -1;
            progress_note(&x->pr, "diffrestore: %s was empty (0 bytes): not a finished output, restored again", f);
            continue;
        }
        if (!o->c.overwrite)
            return progress_fail(&x->pr, in, "%s exists (use --overwrite to replace it, or --skip-existing to skip it)",
                                 f),
                   -1;
    }
    for (int k = 0; k < t->n_all; k++) {
        char msg[1024];
        if (batch_mkdir_parent(t->files[k], msg, sizeof msg) != 0)
            return progress_fail(&x->pr, in, "cannot write %s: %s", t->files[k], msg), -1;
    }
    return 0;
}

/* A mode that takes a mask (DR_MODE_TAKES_MASK): the mask, never written over; a mask without a
 * hole gives copies of the input. Returns 0 to restore (*maskp set), 1 when
 * the copies are written, -1 after the report. */
static int mask_prepare(run *x, item *t, const dr_image **maskp) {
    const char *in = t->it->path;
    long long holes;
    int use_alpha = 0;
    struct stat st, so;
    if (restore_build_mask(x, t->it, &t->img, &t->mask, &use_alpha, &holes, &t->mask_path) != 0) return -1;
    if (t->mask_path && path_exists(t->mask_path, &st))
        for (int k = 0; k < t->n_all; k++)
            if (path_exists(t->files[k], &so) && so.st_dev == st.st_dev && so.st_ino == st.st_ino)
                return progress_fail(&x->pr, in, "refusing to write %s: it is the mask", t->files[k]), -1;
    *maskp = use_alpha ? NULL : &t->mask;
    if (holes != 0) return 0;
    /* nothing to fill: the output is the input */
    progress_note(&x->pr, "diffrestore: %s: the mask has no hole; the output is a copy of the input", in);
    for (int k = 0; k < t->n_files; k++)
        if (save_output(x, t->files[k], &t->img, &t->meta, &t->info, k, 1) != DR_OK)
            return progress_fail(&x->pr, in, "%s", dr_last_error()), -1;
    if (t->unc_path) { /* zero spread everywhere: a black map */
        if (dr_image_alloc(&t->unc, t->img.width, t->img.height, 3, 8) != DR_OK ||
            dr_image_save(t->unc_path, &t->unc, &x->save) != DR_OK)
            return progress_fail(&x->pr, in, "%s", dr_last_error()), -1;
    }
    return 1;
}

/* A mode that takes a scale (DR_MODE_TAKES_SCALE): --width / --height mean a factor within the
 * weights' range. Returns 0, or -1 after the report. */
static int scale_check_size(run *x, item *t) {
    const ropts *o = x->o;
    if (!x->have_range || !(o->width_given || o->height_given)) return 0;
    const double f[2] = {o->width_given ? (double)o->p.out_width / t->img.width : 0,
                         o->height_given ? (double)o->p.out_height / t->img.height : 0};
    for (int i = 0; i < 2; i++)
        if (f[i] != 0 && !cli_scale_fits(f[i], x->scale_min, x->scale_max))
            return progress_fail(&x->pr, t->it->path,
                                 "--%s %d means a factor of %.3g for this %dx%d image, outside %g..%g of %s",
                                 i ? "height" : "width", i ? o->p.out_height : o->p.out_width, f[i], t->img.width,
                                 t->img.height, x->scale_min, x->scale_max, x->weights_path),
                   -1;
    return 0;
}

/* Decode the input and prepare what the mode needs. Returns 0 to restore,
 * 1 when the input is done without restoring, -1 after the report. */
static int load_input(run *x, item *t, const dr_image **maskp) {
    const ropts *o = x->o;
    progress_bar(&x->pr, 0, 0);
    /* With --strip-metadata only the ICC profile is needed (for --keep-profile);
     * the loader then checks no EXIF. */
    if (dr_image_load_meta(t->it->path, o->c.max_pixels, &t->img, &t->info,
                           (o->strip_metadata && !o->keep_profile) ? NULL : &t->meta) != DR_OK) {
        const char *hint = o->strip_metadata ? "" : " (--strip-metadata restores it without its metadata)";
        progress_fail(&x->pr, t->it->path, "%s%s", dr_last_error(), strstr(dr_last_error(), "EXIF") ? hint : "");
        return -1;
    }
    *maskp = NULL;
    if (cli_mode_takes(o->mode, DR_MODE_TAKES_MASK)) {
        int r = mask_prepare(x, t, maskp);
        if (r != 0) return r;
    }
    if (cli_mode_takes(o->mode, DR_MODE_TAKES_SCALE) && scale_check_size(x, t) != 0) return -1;
    return 0;
}

/* Restore and save: only complete results, each atomically. Returns 0, 1
 * when interrupted, -1 after the report. */
static int restore_and_save(run *x, item *t, const dr_image *maskp) {
    const ropts *o = x->o;
    dr_params p = o->p;
    p.progress = on_progress;
    p.user = x;
    p.cancel = &cli_cancel;
    progress_item_start(&x->pr);
    progress_bar(&x->pr, 0, 0);
    int rc;
    if (o->s.samples == 1 && !t->unc_path) {
        t->outs = calloc(1, sizeof *t->outs);
        rc = t->outs ? dr_restore(x->m, &t->img, maskp, &p, &t->outs[0]) : DR_ERR_NOMEM;
    } else {
        /* with --reduce mean the samples themselves are not kept (outs NULL) */
        t->outs = o->s.reduce_mean ? NULL : calloc((size_t)o->s.samples, sizeof *t->outs);
        rc = (t->outs || o->s.reduce_mean)
            ? dr_restore_samples(x->m, &t->img, maskp, &p, o->s.samples, t->outs, o->s.reduce_mean ? &t->mean : NULL,
                                 t->unc_path ? &t->unc : NULL)
            : DR_ERR_NOMEM;
    }
    if (rc == DR_ERR_CANCELLED || (rc != DR_OK && cli_cancel)) return 1;
    if (rc != DR_OK)
        return progress_fail(&x->pr, t->it->path, "%s",
                             rc == DR_ERR_NOMEM && !t->outs && !o->s.reduce_mean ? "out of memory" : dr_last_error()),
               -1;
    progress_item_timed(&x->pr);
    for (int k = 0; k < t->n_files; k++) {
        dr_image *im = o->s.reduce_mean ? &t->mean : &t->outs[k];
        if (save_output(x, t->files[k], im, &t->meta, &t->info, k, 0) != DR_OK)
            return progress_fail(&x->pr, t->it->path, "%s", dr_last_error()), -1;
    }
    if (t->unc_path && dr_image_save(t->unc_path, &t->unc, &x->save) != DR_OK)
        return progress_fail(&x->pr, t->it->path, "%s", dr_last_error()), -1;
    return 0;
}

/* "INPUT -> OUTPUT" on stderr, the done event in JSON. */
static void report_done(run *x, const item *t) {
    const ropts *o = x->o;
    x->done++;
    if (!o->c.quiet) {
        progress_clear(&x->pr);
        cli_eprintf("%s -> %s%s%s\n", t->it->path, t->files[0], t->n_files > 1 ? " ..." : "",
                    t->unc_path ? " (+ uncertainty)" : "");
    }
    if (o->progress != PROG_JSON) return;
    fputs("{\"file\":", stdout);
    cli_json_str(stdout, t->it->path);
    fputs(",\"done\":true,\"output\":", stdout);
    cli_json_str(stdout, t->files[0]);
    if (t->n_files > 1) {
        fputs(",\"outputs\":[", stdout);
        for (int k = 0; k < t->n_files; k++) {
            if (k) fputc(',', stdout);
            cli_json_str(stdout, t->files[k]);
        }
        fputc(']', stdout);
    }
    if (t->unc_path) {
        fputs(",\"uncertainty\":", stdout);
        cli_json_str(stdout, t->unc_path);
    }
    fputs("}\n", stdout);
    fflush(stdout);
}

int restore_item(run *x, batch_item *it, const char *primary) {
    x->pr.cur = it->path;
    if (it->error) {
        progress_fail(&x->pr, it->path, "%s", it->error);
        return 0;
    }
    item t;
    memset(&t, 0, sizeof t);
    t.it = it;
    int interrupted = 0;
    if (plan_files(x, &t, primary) == 0 && !skip_done(x, &t) && check_files(x, &t) == 0) {
        const dr_image *maskp = NULL;
        int r = load_input(x, &t, &maskp);
        if (r == 0) {
            r = restore_and_save(x, &t, maskp);
            interrupted = r == 1;
        } else if (r == 1) {
            r = 0; /* done without restoring */
        }
        if (r == 0) report_done(x, &t);
    }
    item_free(x, &t);
    return interrupted;
}
