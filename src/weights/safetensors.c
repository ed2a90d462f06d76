/*
 * safetensors.c - read and write safetensors files (MODEL.md, "Weights file").
 *
 * Layout: u64 little-endian header length N, N bytes of JSON, then the data.
 * The reader trusts nothing: every number in the header is range-checked
 * before it is used, the tensors must tile the data region exactly (no
 * overlap, no hole, nothing past the end) and every size must equal
 * dtype x shape. Errors name the file and, where there is one, the tensor.
 */
#include "common/error.h"
#include "common/fileio.h"
#include "weights/f16.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER  (64u << 20)       /* 64 MiB of JSON is far beyond any real model */
#define ST_MAX_FILE    ((size_t)8 << 30) /* 8 GiB */
#define ST_MAX_TENSORS 100000            /* a U-Net has a few hundred */
#define ST_MAX_META    4096              /* metadata entries (set_meta is a linear search) */

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void dr_tensor_file_free(dr_tensor_file *tf) {
    if (!tf) return;
    for (int i = 0; i < tf->n_tensors; i++) {
        free(tf->tensors[i].name);
        free(tf->tensors[i].data);
    }
    free(tf->tensors);
    for (int i = 0; i < tf->n_meta; i++) {
        free(tf->meta_keys[i]);
        free(tf->meta_values[i]);
    }
    free(tf->meta_keys);
    free(tf->meta_values);
    memset(tf, 0, sizeof *tf);
}

const dr_tensor *dr_tensor_file_get(const dr_tensor_file *tf, const char *name) {
    for (int i = 0; i < tf->n_tensors; i++)
        if (strcmp(tf->tensors[i].name, name) == 0) return &tf->tensors[i];
    return NULL;
}

const char *dr_tensor_file_meta(const dr_tensor_file *tf, const char *key) {
    for (int i = 0; i < tf->n_meta; i++)
        if (strcmp(tf->meta_keys[i], key) == 0) return tf->meta_values[i];
    return NULL;
}

static int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

int dr_tensor_file_add(dr_tensor_file *tf, const char *name, int ndim, const int64_t *shape, const float *data) {
    if (!name || !*name || ndim < 0 || ndim > DR_MAX_DIMS)
        return error_set(DR_ERR_INVALID, "tensor '%s': bad name or rank %d", name ? name : "", ndim);
    if (strcmp(name, "__metadata__") == 0) return error_set(DR_ERR_INVALID, "tensor name '__metadata__' is reserved");
    if (dr_tensor_file_get(tf, name)) return error_set(DR_ERR_INVALID, "tensor '%s' added twice", name);
    int64_t numel = shape_numel(ndim, shape);
    if (numel < 0 || (uint64_t)numel > SIZE_MAX / sizeof(float))
        return error_set(DR_ERR_INVALID, "tensor '%s': bad shape", name);
    dr_tensor *nt = realloc(tf->tensors, sizeof(dr_tensor) * (tf->n_tensors + 1));
    if (!nt) return error_set(DR_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    tf->tensors = nt;
    dr_tensor *t = &tf->tensors[tf->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = dup_str(name);
    t->data = malloc(numel ? (size_t)numel * sizeof(float) : 1);
    if (!t->name || !t->data) {
        free(t->name);
        free(t->data);
        return error_set(DR_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = numel;
    if (data && numel)
        memcpy(t->data, data, (size_t)numel * sizeof(float));
    else if (numel)
        memset(t->data, 0, (size_t)numel * sizeof(float));
    tf->n_tensors++;
    return DR_OK;
}

int dr_tensor_file_set_meta(dr_tensor_file *tf, const char *key, const char *value) {
    if (!key || !value) return error_set(DR_ERR_INVALID, "metadata key and value must be set");
    for (int i = 0; i < tf->n_meta; i++) {
        if (strcmp(tf->meta_keys[i], key) == 0) {
            char *v = dup_str(value);
            if (!v) return error_set(DR_ERR_NOMEM, "out of memory");
            free(tf->meta_values[i]);
            tf->meta_values[i] = v;
            return DR_OK;
        }
    }
    char **nk = realloc(tf->meta_keys, sizeof(char *) * (tf->n_meta + 1));
    if (!nk) return error_set(DR_ERR_NOMEM, "out of memory");
    tf->meta_keys = nk;
    char **nv = realloc(tf->meta_values, sizeof(char *) * (tf->n_meta + 1));
    if (!nv) return error_set(DR_ERR_NOMEM, "out of memory");
    tf->meta_values = nv;
    char *k = dup_str(key), *v = dup_str(value);
    if (!k || !v) {
        free(k);
        free(v);
        return error_set(DR_ERR_NOMEM, "out of memory");
    }
    tf->meta_keys[tf->n_meta] = k;
    tf->meta_values[tf->n_meta] = v;
    tf->n_meta++;
    return DR_OK;
}

/* A JSON number that is a non-negative integer exactly representable. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || floor(v) != v) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int cmp_keys(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

typedef struct {
    uint64_t begin, end;
    int idx;
} st_span;

static int span_cmp(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

int dr_tensor_file_read_memory(const void *buf, size_t size, const char *name, dr_tensor_file *tf) {
    memset(tf, 0, sizeof *tf);
    const unsigned char *p = buf;
    if (size == 0) return error_set(DR_ERR_FORMAT, "%s: empty file (0 bytes), not a safetensors file", name);
    /* an image given where weights were expected: say so, not "header length ..." */
    const dr_format img = dr_format_detect(buf, size);
    if (img != DR_FORMAT_UNKNOWN)
        return error_set(DR_ERR_FORMAT, "%s: not a safetensors file: it is a %s image", name, dr_format_name(img));
    if (size < 8) return error_set(DR_ERR_FORMAT, "%s: too short for a safetensors file (%zu bytes)", name, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > size - 8)
        return error_set(DR_ERR_FORMAT, "%s: header length %llu is larger than the file (%zu bytes)", name,
                         (unsigned long long)hlen, size);
    if (hlen > ST_MAX_HEADER)
        return error_set(DR_ERR_LIMIT, "%s: header length %llu is over the limit", name, (unsigned long long)hlen);
    const char *json = (const char *)p + 8;
    const unsigned char *data = p + 8 + hlen;
    const uint64_t dsize = size - 8 - hlen;

    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &endp, 0);
    if (!root) return error_set(DR_ERR_FORMAT, "%s: header is not valid JSON", name);
    /* Allow only trailing spaces (padding) after the JSON value. */
    for (const char *q = endp; q && q < json + hlen; q++)
        if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t' && *q != '\0') {
            cJSON_Delete(root);
            return error_set(DR_ERR_FORMAT, "%s: trailing bytes after the JSON header", name);
        }
    int rc = DR_OK;
    st_span *spans = NULL;
    if (!cJSON_IsObject(root)) {
        rc = error_set(DR_ERR_FORMAT, "%s: header is not a JSON object", name);
        goto done;
    }
    int count = cJSON_GetArraySize(root);
    spans = calloc(count ? (size_t)count : 1, sizeof *spans);
    tf->tensors = calloc(count ? (size_t)count : 1, sizeof(dr_tensor));
    if (!spans || !tf->tensors) {
        rc = error_set(DR_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    if (count > ST_MAX_TENSORS) {
        rc = error_set(DR_ERR_LIMIT, "%s: %d header entries, over the limit of %d", name, count, ST_MAX_TENSORS);
        goto done;
    }
    /* Duplicate keys are ambiguous (which one would a reader pick?): sort the
     * names and compare neighbours, O(n log n) however many keys there are. */
    {
        const char **keys = malloc(sizeof(char *) * (count ? (size_t)count : 1));
        if (!keys) {
            rc = error_set(DR_ERR_NOMEM, "%s: out of memory", name);
            goto done;
        }
        int nk = 0;
        for (cJSON *it = root->child; it; it = it->next) keys[nk++] = it->string ? it->string : "";
        qsort(keys, nk, sizeof(char *), cmp_keys);
        for (int i = 1; i < nk; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                rc = error_set(DR_ERR_FORMAT, "%s: key '%s' appears twice in the header", name, keys[i]);
                break;
            }
        free(keys);
        if (rc != DR_OK) goto done;
    }
    int nspan = 0, seen_meta = 0;
    for (cJSON *it = root->child; it; it = it->next) {
        const char *key = it->string ? it->string : "";
        if (strcmp(key, "__metadata__") == 0) {
            if (seen_meta++ || !cJSON_IsObject(it)) {
                rc = error_set(DR_ERR_FORMAT, "%s: __metadata__ must be one object of strings", name);
                goto done;
            }
            if (cJSON_GetArraySize(it) > ST_MAX_META) {
                rc = error_set(DR_ERR_LIMIT, "%s: more than %d metadata entries", name, ST_MAX_META);
                goto done;
            }
            for (cJSON *m = it->child; m; m = m->next) {
                if (!cJSON_IsString(m) || !m->string) {
                    rc =
                        error_set(DR_ERR_FORMAT, "%s: metadata '%s' is not a string", name, m->string ? m->string : "");
                    goto done;
                }
                if ((rc = dr_tensor_file_set_meta(tf, m->string, m->valuestring)) != DR_OK) goto done;
            }
            continue;
        }
        if (!*key) {
            rc = error_set(DR_ERR_FORMAT, "%s: empty tensor name", name);
            goto done;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo) ||
            cJSON_GetArraySize(jo) != 2) {
            rc = error_set(DR_ERR_FORMAT, "%s: tensor '%s': needs dtype, shape and data_offsets", name, key);
            goto done;
        }
        int esize;
        if (strcmp(jd->valuestring, "F32") == 0)
            esize = 4;
        else if (strcmp(jd->valuestring, "F16") == 0)
            esize = 2;
        else {
            rc = error_set(DR_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported (F32 or F16)", name, key,
                           jd->valuestring);
            goto done;
        }
        int ndim = cJSON_GetArraySize(js);
        if (ndim > DR_MAX_DIMS) {
            rc = error_set(DR_ERR_UNSUPPORTED, "%s: tensor '%s': rank %d is over %d", name, key, ndim, DR_MAX_DIMS);
            goto done;
        }
        dr_tensor *t = &tf->tensors[tf->n_tensors];
        t->ndim = ndim;
        int k = 0;
        for (cJSON *d = js->child; d; d = d->next, k++) {
            uint64_t v;
            if (!json_uint(d, &v) || v > (1ull << 40)) {
                rc = error_set(DR_ERR_FORMAT, "%s: tensor '%s': bad shape entry", name, key);
                goto done;
            }
            t->shape[k] = (int64_t)v;
        }
        t->numel = shape_numel(ndim, t->shape);
        if (t->numel < 0) {
            rc = error_set(DR_ERR_FORMAT, "%s: tensor '%s': bad shape (element count overflows)", name, key);
            goto done;
        }
        uint64_t b0, b1;
        if (!json_uint(jo->child, &b0) || !json_uint(jo->child->next, &b1) || b0 > b1 || b1 > dsize) {
            rc = error_set(DR_ERR_FORMAT, "%s: tensor '%s': data_offsets out of range (data is %llu bytes)", name, key,
                           (unsigned long long)dsize);
            goto done;
        }
        if (t->numel < 0 || (uint64_t)t->numel > dsize / (uint64_t)esize ||
            (uint64_t)t->numel * (uint64_t)esize != b1 - b0) {
            rc = error_set(DR_ERR_FORMAT, "%s: tensor '%s': %llu bytes do not match %s x shape", name, key,
                           (unsigned long long)(b1 - b0), jd->valuestring);
            goto done;
        }
        t->name = dup_str(key);
        t->data = malloc(t->numel ? (size_t)t->numel * sizeof(float) : 1);
        tf->n_tensors++; /* owns name/data now, freed on error */
        if (!t->name || !t->data) {
            rc = error_set(DR_ERR_NOMEM, "%s: tensor '%s': out of memory", name, key);
            goto done;
        }
        const unsigned char *src = data + b0;
        if (esize == 4) {
            memcpy(t->data, src, (size_t)t->numel * 4); /* little-endian host assumed (x86-64, arm64) */
        } else {
            for (int64_t i = 0; i < t->numel; i++)
                t->data[i] = f16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        }
        spans[nspan].begin = b0;
        spans[nspan].end = b1;
        spans[nspan].idx = tf->n_tensors - 1;
        nspan++;
    }
    /* The tensors must tile the data exactly: sorted spans touch end to begin. */
    qsort(spans, nspan, sizeof *spans, span_cmp);
    uint64_t pos = 0;
    for (int i = 0; i < nspan; i++) {
        if (spans[i].begin < pos) {
            rc = error_set(DR_ERR_FORMAT, "%s: tensor '%s' overlaps another tensor's data", name,
                           tf->tensors[spans[i].idx].name);
            goto done;
        }
        if (spans[i].begin > pos) {
            rc = error_set(DR_ERR_FORMAT, "%s: hole in the data before tensor '%s'", name,
                           tf->tensors[spans[i].idx].name);
            goto done;
        }
        pos = spans[i].end;
    }
    if (pos != dsize)
        rc = error_set(DR_ERR_FORMAT, "%s: %llu bytes after the last tensor", name, (unsigned long long)(dsize - pos));
done:
    free(spans);
    cJSON_Delete(root);
    if (rc != DR_OK) dr_tensor_file_free(tf);
    return rc;
}

int dr_tensor_file_read(const char *path, dr_tensor_file *tf) {
    memset(tf, 0, sizeof *tf);
    unsigned char *buf;
    size_t n;
    DR_TRY(file_read_all(path, ST_MAX_FILE, &buf, &n));
    int rc = dr_tensor_file_read_memory(buf, n, path, tf);
    free(buf);
    return rc;
}

int dr_tensor_file_write(const char *path, const dr_tensor_file *tf, int dtype_f16) {
    const int esize = dtype_f16 ? 2 : 4;
    cJSON *root = cJSON_CreateObject();
    if (!root) return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
    int rc = DR_OK;
    char *json = NULL;
    if (tf->n_meta) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; meta && i < tf->n_meta; i++)
            if (!cJSON_AddStringToObject(meta, tf->meta_keys[i], tf->meta_values[i])) meta = NULL;
        if (!meta) {
            cJSON_Delete(root);
            return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < tf->n_tensors; i++) {
        const dr_tensor *t = &tf->tensors[i];
        cJSON *o = cJSON_AddObjectToObject(root, t->name);
        cJSON *sh = o ? cJSON_AddArrayToObject(o, "shape") : NULL;
        cJSON *of = sh ? cJSON_AddArrayToObject(o, "data_offsets") : NULL;
        int ok = of && cJSON_AddStringToObject(o, "dtype", dtype_f16 ? "F16" : "F32");
        for (int k = 0; ok && k < t->ndim; k++) ok = cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[k]));
        uint64_t end = off + (uint64_t)t->numel * esize;
        ok = ok && cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off)) &&
            cJSON_AddItemToArray(of, cJSON_CreateNumber((double)end));
        if (!ok) {
            cJSON_Delete(root);
            return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
        }
        off = end;
    }
    json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
    size_t jlen = strlen(json);
    size_t padded = (jlen + 7) & ~(size_t)7; /* data starts 8-byte aligned */

    file_atomic w;
    rc = file_atomic_open(&w, path, 1);
    if (rc != DR_OK) {
        free(json);
        return rc;
    }
    unsigned char hdr[8];
    for (int i = 0; i < 8; i++) hdr[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(hdr, 1, 8, w.fp) == 8 && fwrite(json, 1, jlen, w.fp) == jlen;
    for (size_t i = jlen; ok && i < padded; i++) ok = fputc(' ', w.fp) != EOF;
    free(json);
    unsigned char chunk[8192];
    for (int i = 0; ok && i < tf->n_tensors; i++) {
        const dr_tensor *t = &tf->tensors[i];
        if (!dtype_f16) {
            ok = t->numel == 0 || fwrite(t->data, 4, (size_t)t->numel, w.fp) == (size_t)t->numel;
            continue;
        }
        int64_t j = 0;
        while (ok && j < t->numel) {
            size_t n = 0;
            for (; n + 2 <= sizeof chunk && j < t->numel; j++, n += 2) {
                uint16_t h = f32_to_f16(t->data[j]);
                chunk[n] = (unsigned char)h;
                chunk[n + 1] = (unsigned char)(h >> 8);
            }
            ok = fwrite(chunk, 1, n, w.fp) == n;
        }
    }
    if (!ok) {
        file_atomic_abort(&w);
        return error_set(DR_ERR_IO, "%s: write failed", path);
    }
    return file_atomic_commit(&w, 1);
}
