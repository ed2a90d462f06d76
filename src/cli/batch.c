/* Batch plumbing for the restore commands (see batch.h). */
#include "batch.h"

#include "diffrestore.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ paths */

char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    while (a > 1 && dir[a - 1] == '/') a--;
    int slash = !(a == 1 && dir[0] == '/');
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    if (slash) s[a++] = '/';
    memcpy(s + a, name, b + 1);
    return s;
}

/* Offset of the extension's dot in the last component, or strlen when none.
 * A leading dot (".hidden") is not an extension. */
static size_t ext_dot(const char *path) {
    size_t n = strlen(path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return n;
    return (size_t)(dot - path);
}

const char *path_ext(const char *path) {
    size_t d = ext_dot(path);
    return path[d] ? path + d + 1 : path + d;
}

int path_has_image_ext(const char *path) {
    const char *e = path_ext(path);
    return strcasecmp(e, "png") == 0 || strcasecmp(e, "jpg") == 0 || strcasecmp(e, "jpeg") == 0 ||
        strcasecmp(e, "tif") == 0 || strcasecmp(e, "tiff") == 0 || strcasecmp(e, "webp") == 0;
}

char *path_set_ext(const char *rel, const char *ext) {
    size_t d = ext_dot(rel), e = strlen(ext);
    char *s = malloc(d + e + 2);
    if (!s) return NULL;
    memcpy(s, rel, d);
    s[d] = '.';
    memcpy(s + d + 1, ext, e + 1);
    return s;
}

char *path_add_suffix(const char *path, const char *suffix) {
    size_t d = ext_dot(path), n = strlen(path), k = strlen(suffix);
    char *s = malloc(n + k + 1);
    if (!s) return NULL;
    memcpy(s, path, d);
    memcpy(s + d, suffix, k);
    memcpy(s + d + k, path + d, n - d + 1);
    return s;
}

char *path_dirname(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    while (n > 0 && path[n - 1] != '/') n--;
    while (n > 1 && path[n - 1] == '/') n--;
    if (n == 0) return strdup(".");
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, path, n);
    s[n] = 0;
    return s;
}

int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int mkdir_p(const char *path, const char **failed) {
    static char buf[4096];
    size_t n = strlen(path);
    *failed = path;
    if (n == 0) return 0;
    if (n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        if (buf[i - 1] == '/') continue; /* "a//b" */
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0) {
            int e = errno;
            struct stat st;
            if (stat(buf, &st) != 0) {
                errno = e;
                *failed = buf;
                return -1;
            }
            if (!S_ISDIR(st.st_mode)) {
                errno = ENOTDIR;
                *failed = buf;
                return -1;
            }
        }
        buf[i] = c;
    }
    return 0;
}

/* ------------------------------------------------------------------ list */

static int add_item(batch_list *b, const char *path, const char *rel, const char *error) {
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 64;
        batch_item *it = realloc(b->items, (size_t)cap * sizeof *it);
        if (!it) return -1;
        b->items = it;
        b->cap = cap;
    }
    batch_item *it = &b->items[b->n];
    memset(it, 0, sizeof *it);
    it->path = strdup(path);
    it->rel = strdup(rel);
    it->error = error ? strdup(error) : NULL;
    if (!it->path || !it->rel || (error && !it->error)) {
        free(it->path);
        free(it->rel);
        free(it->error);
        return -1;
    }
    b->n++;
    return 0;
}

static int add_ignored(batch_list *b, const char *path, const char *reason) {
    if (b->n_ignored == b->cap_ignored) {
        int cap = b->cap_ignored ? b->cap_ignored * 2 : 16;
        char **v = realloc(b->ignored, (size_t)cap * sizeof *v);
        if (!v) return -1;
        b->ignored = v;
        b->cap_ignored = cap;
    }
    const size_t n = strlen(path) + strlen(reason) + 3;
    char *e = malloc(n);
    if (!e) return -1;
    snprintf(e, n, "%s: %s", path, reason);
    b->ignored[b->n_ignored++] = e;
    return 0;
}

int batch_add_id(batch_list *b, dev_t dev, ino_t ino) {
    if (b->n_ids == b->cap_ids) {
        int cap = b->cap_ids ? b->cap_ids * 2 : 64;
        file_id *p = realloc(b->ids, (size_t)cap * sizeof *p);
        if (!p) return -1;
        b->ids = p;
        b->cap_ids = cap;
    }
    b->ids[b->n_ids].dev = dev;
    b->ids[b->n_ids].ino = ino;
    b->n_ids++;
    return 0;
}

static int cmp_id(const void *a, const void *b) {
    const file_id *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

int batch_is_input(const batch_list *b, dev_t dev, ino_t ino) {
    file_id key = {dev, ino};
    if (b->n_sorted > 0 && bsearch(&key, b->ids, (size_t)b->n_sorted, sizeof key, cmp_id)) return 1;
    for (int i = b->n_sorted; i < b->n_ids; i++)
        if (b->ids[i].dev == dev && b->ids[i].ino == ino) return 1;
    return 0;
}

static int looks_like_image(const char *path) {
    unsigned char head[16];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    return dr_format_detect(head, n) != DR_FORMAT_UNKNOWN;
}

static int skipped_dir(const struct stat *st, const file_id *skip, int n_skip) {
    for (int i = 0; i < n_skip; i++)
        if (skip[i].dev == st->st_dev && skip[i].ino == st->st_ino) return 1;
    return 0;
}

/* The directories from the walked input down to the current one: a link to
 * one of them is a loop, not followed (the same rule as the training data's
 * walk: links are followed, loops are not). */
typedef struct {
    file_id d[64];
    int n;
} dir_chain;

static int walk(batch_list *b, const char *dir, const char *rel, int recursive, const file_id *skip, int n_skip,
                dir_chain *chain) {
    DIR *d = opendir(dir);
    if (!d) {
        char msg[512];
        snprintf(msg, sizeof msg, "cannot read the directory: %s", strerror(errno));
        return add_item(b, dir, rel[0] ? rel : ".", msg);
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') { /* hidden, . and .. */
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && path_has_image_ext(e->d_name)) {
                char *hp = path_join(dir, e->d_name);
                rc = hp ? add_ignored(b, hp, "skipped: a hidden file") : -1;
                free(hp);
            }
            continue;
        }
        char *path = path_join(dir, e->d_name);
        char *r = rel[0] ? path_join(rel, e->d_name) : strdup(e->d_name);
        if (!path || !r) {
            free(path);
            free(r);
            rc = -1;
            break;
        }
        struct stat lst, st;
        if (lstat(path, &lst) != 0) {
            /* vanished between readdir and lstat: nothing to do */
        } else if (S_ISLNK(lst.st_mode) && stat(path, &st) != 0) {
            /* dangling link: an image name is worth a message, others are ignored */
            if (path_has_image_ext(path)) rc = add_item(b, path, r, "broken symbolic link");
        } else {
            if (!S_ISLNK(lst.st_mode)) st = lst;
            if (S_ISDIR(st.st_mode)) {
                int loop = 0;
                for (int i = 0; i < chain->n && !loop; i++)
                    loop = chain->d[i].dev == st.st_dev && chain->d[i].ino == st.st_ino;
                if (loop || skipped_dir(&st, skip, n_skip)) {
                    /* a link back up (walked already); never into the output dirs */
                } else if (recursive) {
                    if (chain->n == 64) {
                        rc = add_item(b, path, r, "directories nested too deep (more than 64)");
                    } else {
                        chain->d[chain->n++] = (file_id){st.st_dev, st.st_ino};
                        rc = walk(b, path, r, recursive, skip, n_skip, chain);
                        chain->n--;
                    }
                } else {
                    b->subdirs = 1;
                }
            } else if (S_ISREG(st.st_mode)) {
                if (path_has_image_ext(path) || looks_like_image(path)) {
                    rc = add_item(b, path, r, NULL);
                    if (rc == 0) rc = batch_add_id(b, st.st_dev, st.st_ino);
                }
            } else {
                rc = add_ignored(b, path, "skipped: not a regular file (a FIFO, socket or device)");
            }
        }
        free(path);
        free(r);
    }
    closedir(d);
    return rc;
}

static const char *base_name(const char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && p[s - 1] != '/') s--;
    return p + s;
}

int batch_collect(batch_list *b, char *const *inputs, int n_inputs, int recursive, const file_id *skip, int n_skip) {
    for (int i = 0; i < n_inputs; i++) {
        const char *in = inputs[i];
        struct stat st;
        if (stat(in, &st) != 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "%s", strerror(errno));
            if (add_item(b, in, base_name(in), msg) != 0) return -1;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            b->any_dir = 1;
            dir_chain chain = {.n = 1};
            chain.d[0] = (file_id){st.st_dev, st.st_ino};
            if (walk(b, in, "", recursive, skip, n_skip, &chain) != 0) return -1;
        } else {
            if (add_item(b, in, base_name(in), S_ISREG(st.st_mode) ? NULL : "not a regular file") != 0) return -1;
            if (batch_add_id(b, st.st_dev, st.st_ino) != 0) return -1;
        }
    }
    return 0;
}

static int cmp_item(const void *a, const void *b) {
    const batch_item *x = a, *y = b;
    int c = strcmp(x->rel, y->rel);
    return c ? c : strcmp(x->path, y->path);
}

void batch_sort(batch_list *b) {
    if (b->n > 1) qsort(b->items, (size_t)b->n, sizeof *b->items, cmp_item);
    for (int i = 0; i < b->n; i++) b->items[i].index = i;
    if (b->n_ids > 1) qsort(b->ids, (size_t)b->n_ids, sizeof *b->ids, cmp_id);
    b->n_sorted = b->n_ids;
}

void batch_free(batch_list *b) {
    for (int i = 0; i < b->n; i++) {
        free(b->items[i].path);
        free(b->items[i].rel);
        free(b->items[i].error);
    }
    free(b->items);
    for (int i = 0; i < b->n_ignored; i++) free(b->ignored[i]);
    free(b->ignored);
    free(b->ids);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------ shards */

static int parse_nonneg(const char *s, const char **end, long *out) {
    if (!isdigit((unsigned char)*s)) return 0;
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || v < 0 || v > 1000000000L) return 0;
    *end = e;
    *out = v;
    return 1;
}

int parse_shard(const char *s, int *k, int *n) {
    const char *p;
    long a, c;
    if (!s || !parse_nonneg(s, &p, &a) || *p != '/' || !parse_nonneg(p + 1, &p, &c) || *p) return 0;
    if (c < 1 || a >= c) return 0;
    *k = (int)a;
    *n = (int)c;
    return 1;
}

int shard_from_slurm(int *k, int *n, char *msg, size_t msg_n) {
    const char *id_s = getenv("SLURM_ARRAY_TASK_ID"), *count_s = getenv("SLURM_ARRAY_TASK_COUNT");
    if (!id_s || !count_s || !*id_s || !*count_s) return 0;
    const char *min_s = getenv("SLURM_ARRAY_TASK_MIN"), *step_s = getenv("SLURM_ARRAY_TASK_STEP");
    const char *end;
    long id, count, mn = 0, step = 1;
    if (!parse_nonneg(id_s, &end, &id) || *end || !parse_nonneg(count_s, &end, &count) || *end || count < 1) {
        snprintf(msg, msg_n, "SLURM_ARRAY_TASK_ID=%s / SLURM_ARRAY_TASK_COUNT=%s are not a task number and a count",
                 id_s, count_s);
        return -1;
    }
    if (min_s && *min_s && (!parse_nonneg(min_s, &end, &mn) || *end)) mn = 0;
    if (step_s && *step_s && (!parse_nonneg(step_s, &end, &step) || *end || step < 1)) step = 1;
    long idx = id - mn;
    if (idx < 0 || idx % step != 0 || idx / step >= count) {
        snprintf(msg, msg_n,
                 "SLURM_ARRAY_TASK_ID=%ld does not fit SLURM_ARRAY_TASK_COUNT=%ld (min %ld, step %ld): use --shard K/N",
                 id, count, mn, step);
        return -1;
    }
    *k = (int)(idx / step);
    *n = (int)count;
    return 1;
}

/* ------------------------------------------------------------------ outputs */

int batch_skip_dir(file_id *skip, int *n, const char *path) {
    struct stat st;
    if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        skip[*n].dev = st.st_dev;
        skip[*n].ino = st.st_ino;
        (*n)++;
        return 1;
    }
    return 0;
}

char *batch_out_path(const char *dir, const char *rel, const char *ext, const char *suffix) {
    char *name = path_set_ext(rel, ext);
    if (name && suffix && suffix[0]) {
        char *with = path_add_suffix(name, suffix);
        free(name);
        name = with;
    }
    if (!name || !dir) return name;
    char *r = path_join(dir, name);
    free(name);
    return r;
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

int batch_mark_collisions(batch_list *b, char *const *outputs, batch_collision_msg why, void *user) {
    const int n = b->n;
    if (n < 2) return 0;
    name_ref *r = malloc((size_t)n * sizeof *r);
    if (!r) return -1;
    for (int i = 0; i < n; i++) r[i] = (name_ref){outputs[i], i};
    qsort(r, (size_t)n, sizeof *r, cmp_name_ref);
    int first = 0, rc = 0;
    for (int k = 1; k < n && rc == 0; k++) {
        if (strcmp(r[k].path, r[first].path) != 0) {
            first = k;
            continue;
        }
        batch_item *it = &b->items[r[k].index];
        if (it->error) continue;
        char msg[1024];
        why(msg, sizeof msg, r[k].path, b->items[r[first].index].path, user);
        if (!(it->error = strdup(msg))) rc = -1;
    }
    free(r);
    return rc;
}

int batch_outputs_done(char *const *files, int n) {
    struct stat st;
    for (int k = 0; k < n; k++)
        if (stat(files[k], &st) != 0 || st.st_size <= 0) return 0;
    return 1;
}

int batch_mkdir_parent(const char *path, char *msg, size_t msg_n) {
    char *dir = path_dirname(path);
    const char *bad;
    if (!dir) {
        snprintf(msg, msg_n, "out of memory");
        return -1;
    }
    int rc = mkdir_p(dir, &bad);
    if (rc != 0) snprintf(msg, msg_n, "cannot create the directory %s: %s", bad, strerror(errno));
    free(dir);
    return rc;
}
