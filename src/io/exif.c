/* exif.c - EXIF with libexif: checking a block, rewriting it for an output
 * (orientation 1, new dimensions, no thumbnail), and the text fields a TIFF
 * keeps. Nothing here prints. */
#include "io/exif.h"

#include "common/error.h"

#include <libexif/exif-data.h>
#include <libexif/exif-log.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ EXIF (libexif) */

typedef struct {
    char msg[256];
    int nomem;
} exif_log_state;

/* libexif reports structural damage (a loop of IFD offsets, offsets or
 * counts past the end) only as debug messages before skipping the part; those
 * messages, and anything it logs as corrupt data, make the EXIF invalid. */
static void on_exif_log(ExifLog *log, ExifLogCode code, const char *domain, const char *fmt, va_list ap, void *data) {
    (void)log, (void)domain;
    static const char *damage[] = {"Recursive entry",     "Deep/expensive recursion", "Tag data past end",
                                   "Tag starts past end", "Tag data goes past end",   "Bogus offset of IFD1"};
    exif_log_state *s = data;
    if (code == EXIF_LOG_CODE_NO_MEMORY) s->nomem = 1;
    if (s->msg[0]) return;
    char m[256];
    vsnprintf(m, sizeof m, fmt, ap);
    int bad = code == EXIF_LOG_CODE_CORRUPT_DATA;
    for (size_t i = 0; i < sizeof damage / sizeof *damage && !bad; i++)
        bad = strncmp(m, damage[i], strlen(damage[i])) == 0;
    if (!bad) return;
    size_t k = strlen(m);
    if (k > 12 && strcmp(m + k - 12, " Skipping...") == 0) m[k - 12] = 0; /* we do not skip: we refuse */
    snprintf(s->msg, sizeof s->msg, "%s", m);
}

/* Load an EXIF block (TIFF header on) with libexif, as it is (no "fixing"). */
static ExifData *exif_open(const unsigned char *exif, size_t n, exif_log_state *st) {
    memset(st, 0, sizeof *st);
    if (n > DR_MAX_META_SIZE) return NULL;
    unsigned char *tmp = malloc(n + 6);
    if (!tmp) {
        st->nomem = 1;
        return NULL;
    }
    memcpy(tmp, "Exif\0\0", 6);
    memcpy(tmp + 6, exif, n);
    ExifData *ed = exif_data_new();
    ExifLog *log = exif_log_new();
    if (!ed || !log) {
        if (ed) exif_data_unref(ed);
        if (log) exif_log_unref(log);
        free(tmp);
        st->nomem = 1;
        return NULL;
    }
    exif_log_set_func(log, on_exif_log, st);
    exif_data_log(ed, log);
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_unset_option(ed, EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
    exif_data_set_option(ed, EXIF_DATA_OPTION_DONT_CHANGE_MAKER_NOTE);
    exif_data_load_data(ed, tmp, (unsigned int)(n + 6));
    exif_log_unref(log); /* ed keeps its reference */
    free(tmp);
    return ed;
}

int io_exif_check(const unsigned char *exif, size_t n, const char *name) {
    exif_log_state st;
    if (n < 8) return error_set(DR_ERR_FORMAT, "%s: invalid EXIF: %zu bytes", name, n);
    if (!(memcmp(exif, "II*\0", 4) == 0 || memcmp(exif, "MM\0*", 4) == 0))
        return error_set(DR_ERR_FORMAT, "%s: invalid EXIF: no TIFF header", name);
    ExifData *ed = exif_open(exif, n, &st);
    if (!ed) return error_set(st.nomem ? DR_ERR_NOMEM : DR_ERR_FORMAT, "%s: cannot read the EXIF", name);
    exif_data_unref(ed);
    if (st.nomem) return error_set(DR_ERR_NOMEM, "%s: out of memory reading the EXIF", name);
    if (st.msg[0]) return error_set(DR_ERR_FORMAT, "%s: invalid EXIF: %s", name, st.msg);
    return DR_OK;
}

/* Set a SHORT or LONG tag to v; with create, add it (as a LONG) when absent.
 * A SHORT too small for v becomes a LONG. */
static void set_uint(ExifData *ed, ExifIfd ifd, ExifTag tag, unsigned v, int create) {
    ExifContent *c = ed->ifd[ifd];
    ExifEntry *e = exif_content_get_entry(c, tag);
    ExifByteOrder bo = exif_data_get_byte_order(ed);
    if (e && e->format == EXIF_FORMAT_SHORT && e->data && e->size >= 2 && v <= 65535) {
        exif_set_short(e->data, bo, (ExifShort)v);
        return;
    }
    if (e && e->format == EXIF_FORMAT_LONG && e->data && e->size >= 4) {
        exif_set_long(e->data, bo, (ExifLong)v);
        return;
    }
    if (e)
        exif_content_remove_entry(c, e); /* another type or too small: replaced */
    else if (!create)
        return;
    ExifMem *mem = exif_mem_new_default();
    e = mem ? exif_entry_new_mem(mem) : NULL;
    unsigned char *d = mem ? exif_mem_alloc(mem, 4) : NULL;
    if (e && d) {
        e->tag = tag;
        e->format = EXIF_FORMAT_LONG;
        e->components = 1;
        e->size = 4;
        e->data = d;
        exif_set_long(d, bo, (ExifLong)v);
        exif_content_add_entry(c, e);
    } else if (d) {
        exif_mem_free(mem, d);
    }
    if (e) exif_entry_unref(e);
    if (mem) exif_mem_unref(mem);
}

int io_exif_for_output(const unsigned char *exif, size_t n, int width, int height, const char *name,
                       unsigned char **out, size_t *out_size) {
    *out = NULL, *out_size = 0;
    exif_log_state st;
    ExifData *ed = exif_open(exif, n, &st);
    if (!ed) return error_set(st.nomem ? DR_ERR_NOMEM : DR_ERR_FORMAT, "%s: cannot rewrite the EXIF", name);
    /* upright, the output's size, no thumbnail (it would show the old picture) */
    set_uint(ed, EXIF_IFD_0, EXIF_TAG_ORIENTATION, 1, 0);
    set_uint(ed, EXIF_IFD_EXIF, EXIF_TAG_PIXEL_X_DIMENSION, (unsigned)width, 1);
    set_uint(ed, EXIF_IFD_EXIF, EXIF_TAG_PIXEL_Y_DIMENSION, (unsigned)height, 1);
    if (ed->data) {
        /* exif_data_new() allocates with libexif's default allocator (free) */
        ExifMem *mem = exif_mem_new_default();
        if (mem) {
            exif_mem_free(mem, ed->data);
            exif_mem_unref(mem);
            ed->data = NULL;
            ed->size = 0;
        }
    }
    ExifContent *ifd1 = ed->ifd[EXIF_IFD_1];
    while (ifd1 && ifd1->count > 0) exif_content_remove_entry(ifd1, ifd1->entries[ifd1->count - 1]);
    unsigned char *buf = NULL;
    unsigned int size = 0;
    exif_data_save_data(ed, &buf, &size);
    exif_data_unref(ed);
    if (!buf || size < 6 + 8 || memcmp(buf, "Exif\0\0", 6) != 0) {
        free(buf);
        return error_set(DR_ERR_NOMEM, "%s: cannot write the EXIF", name);
    }
    memmove(buf, buf + 6, size - 6);
    *out = buf;
    *out_size = size - 6;
    return DR_OK;
}

/* The IFD0 text fields a TIFF writes in its own IFD0. vals[i] receives a
 * malloc'd string or NULL, for the tags of io_exif_text_tags. */
const int io_exif_text_tags[DR_EXIF_TEXT_TAGS] = {EXIF_TAG_MAKE,
                                                  EXIF_TAG_MODEL,
                                                  EXIF_TAG_DATE_TIME,
                                                  EXIF_TAG_ARTIST,
                                                  EXIF_TAG_COPYRIGHT,
                                                  EXIF_TAG_IMAGE_DESCRIPTION,
                                                  EXIF_TAG_SOFTWARE,
                                                  EXIF_TAG_DATE_TIME_ORIGINAL,
                                                  EXIF_TAG_DATE_TIME_DIGITIZED,
                                                  EXIF_TAG_LENS_MODEL,
                                                  EXIF_TAG_BODY_SERIAL_NUMBER,
                                                  EXIF_TAG_CAMERA_OWNER_NAME};
const int io_exif_text_in_exif[DR_EXIF_TEXT_TAGS] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1};

void io_exif_text(const unsigned char *exif, size_t n, char *vals[DR_EXIF_TEXT_TAGS]) {
    for (int i = 0; i < DR_EXIF_TEXT_TAGS; i++) vals[i] = NULL;
    exif_log_state st;
    ExifData *ed = exif_open(exif, n, &st);
    if (!ed) return;
    for (int i = 0; i < DR_EXIF_TEXT_TAGS; i++) {
        ExifEntry *e = exif_content_get_entry(ed->ifd[io_exif_text_in_exif[i] ? EXIF_IFD_EXIF : EXIF_IFD_0],
                                              (ExifTag)io_exif_text_tags[i]);
        if (!e || e->format != EXIF_FORMAT_ASCII || !e->data || e->size == 0) continue;
        char *s = malloc(e->size + 1);
        if (!s) continue;
        memcpy(s, e->data, e->size);
        s[e->size] = 0;
        if (s[0])
            vals[i] = s;
        else
            free(s);
    }
    exif_data_unref(ed);
}

int io_exif_from_text(const int *in_exif_ifd, const int *tags, char *const *vals, int n, unsigned char **out,
                      size_t *out_size) {
    *out = NULL, *out_size = 0;
    ExifData *ed = exif_data_new();
    ExifMem *mem = exif_mem_new_default();
    int rc = DR_OK, any = 0;
    if (!ed || !mem) rc = DR_ERR_NOMEM;
    if (ed) {
        exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
        exif_data_set_byte_order(ed, EXIF_BYTE_ORDER_INTEL);
    }
    for (int i = 0; i < n && rc == DR_OK; i++) {
        if (!vals[i] || !vals[i][0]) continue;
        size_t len = strlen(vals[i]) + 1;
        if (len > 65535) continue;
        ExifEntry *e = exif_entry_new_mem(mem);
        unsigned char *d = e ? exif_mem_alloc(mem, (ExifLong)len) : NULL;
        if (!e || !d) {
            if (d) exif_mem_free(mem, d);
            if (e) exif_entry_unref(e);
            rc = DR_ERR_NOMEM;
            break;
        }
        memcpy(d, vals[i], len);
        e->tag = (ExifTag)tags[i];
        e->format = EXIF_FORMAT_ASCII;
        e->components = len;
        e->size = (unsigned int)len;
        e->data = d;
        exif_content_add_entry(ed->ifd[in_exif_ifd[i] ? EXIF_IFD_EXIF : EXIF_IFD_0], e);
        exif_entry_unref(e);
        any = 1;
    }
    if (rc == DR_OK && any) {
        unsigned char *buf = NULL;
        unsigned int size = 0;
        exif_data_save_data(ed, &buf, &size);
        if (!buf || size < 6 + 8)
            rc = DR_ERR_NOMEM;
        else {
            memmove(buf, buf + 6, size - 6);
            *out = buf, *out_size = size - 6;
            buf = NULL;
        }
        free(buf);
    }
    if (ed) exif_data_unref(ed);
    if (mem) exif_mem_unref(mem);
    return rc;
}
