#include "common/fileio.h"

#include "common/error.h"
#include "diffrestore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

int file_read_all(const char *path, size_t max_size, unsigned char **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; anything but a
     * regular file is refused before a byte is read */
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return error_set(DR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return error_set(DR_ERR_IO, "%s: not a regular file", path);
    }
    FILE *f = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        const int e = errno;
        close(fd);
        return error_set(DR_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    if ((unsigned long long)st.st_size > max_size) {
        fclose(f);
        return error_set(DR_ERR_LIMIT, "%s: file is %lld bytes, over the limit of %zu", path, (long long)st.st_size,
                         max_size);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return error_set(DR_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    if (n && fread(b, 1, n, f) != n) {
        int e = ferror(f) ? errno : 0;
        free(b);
        fclose(f);
        return error_set(DR_ERR_IO, "%s: read failed: %s", path, e ? strerror(e) : "short read");
    }
    fclose(f);
    *buf = b;
    *size = n;
    return DR_OK;
}

/* The temp name is ".<name>.tmpXXXXXX": 11 bytes more than the name. For a
 * name of more than 255 - 11 bytes (still legal) only its first 244 bytes go
 * into the temp name, which then stays within the 255-byte limit. */
enum { TMP_NAME_EXTRA = 11, NAME_LIMIT = 255 };
static int tmp_base_len(const char *base) {
    const size_t n = strlen(base);
    return (int)(n > NAME_LIMIT - TMP_NAME_EXTRA ? NAME_LIMIT - TMP_NAME_EXTRA : n);
}

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int file_atomic_open(file_atomic *w, const char *path, int overwrite) {
    memset(w, 0, sizeof *w);
    struct stat st;
    if (!overwrite && stat(path, &st) == 0)
        return error_set(DR_ERR_EXISTS, "%s: output exists (use --overwrite to replace it)", path);
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    if (!*base) return error_set(DR_ERR_INVALID, "%s: output path names a directory", path);
    size_t n = dirlen + strlen(base) + 16;
    w->tmp_path = malloc(n);
    w->path = str_dup(path);
    if (!w->tmp_path || !w->path) {
        free(w->tmp_path);
        free(w->path);
        memset(w, 0, sizeof *w);
        return error_set(DR_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(w->tmp_path, n, "%.*s.%.*s.tmpXXXXXX", (int)dirlen, path, tmp_base_len(base), base);
    int fd = mkstemp(w->tmp_path);
    if (fd < 0) {
        int e = errno;
        free(w->tmp_path);
        free(w->path);
        memset(w, 0, sizeof *w);
        return error_set(DR_ERR_IO, "%s: cannot create output: %s", path, strerror(e));
    }
    (void)fchmod(fd, 0644);    /* mkstemp uses 0600; outputs are ordinary files */
    w->fp = fdopen(fd, "w+b"); /* readable too: libtiff rereads a directory it patches */
    if (!w->fp) {
        int e = errno;
        close(fd);
        unlink(w->tmp_path);
        free(w->tmp_path);
        free(w->path);
        memset(w, 0, sizeof *w);
        return error_set(DR_ERR_IO, "%s: cannot open output: %s", path, strerror(e));
    }
    return DR_OK;
}

void file_atomic_abort(file_atomic *w) {
    if (w->fp) fclose(w->fp);
    if (w->tmp_path) unlink(w->tmp_path);
    free(w->tmp_path);
    free(w->path);
    memset(w, 0, sizeof *w);
}

int file_atomic_commit(file_atomic *w, int overwrite) {
    int rc = DR_OK;
    int e = 0;
    if (fflush(w->fp) != 0 || ferror(w->fp)) e = errno ? errno : EIO;
    if (!e && fsync(fileno(w->fp)) != 0 && errno != EINVAL) e = errno;
    if (fclose(w->fp) != 0 && !e) e = errno;
    w->fp = NULL;
    if (e) {
        rc = error_set(DR_ERR_IO, "%s: write failed: %s", w->path, strerror(e));
        file_atomic_abort(w);
        return rc;
    }
    if (overwrite) {
        if (rename(w->tmp_path, w->path) != 0) {
            rc = error_set(DR_ERR_IO, "%s: cannot rename into place: %s", w->path, strerror(errno));
            file_atomic_abort(w);
            return rc;
        }
    } else {
        /* link() fails if the target exists: a no-clobber rename with no race. */
        if (link(w->tmp_path, w->path) != 0) {
            e = errno;
            if (e == EEXIST) {
                rc = error_set(DR_ERR_EXISTS, "%s: output exists (use --overwrite to replace it)", w->path);
                file_atomic_abort(w);
                return rc;
            }
            /* Filesystems without hard links: check, then rename. */
            struct stat st;
            if (stat(w->path, &st) == 0) {
                rc = error_set(DR_ERR_EXISTS, "%s: output exists (use --overwrite to replace it)", w->path);
                file_atomic_abort(w);
                return rc;
            }
            if (rename(w->tmp_path, w->path) != 0) {
                rc = error_set(DR_ERR_IO, "%s: cannot rename into place: %s", w->path, strerror(errno));
                file_atomic_abort(w);
                return rc;
            }
        } else {
            unlink(w->tmp_path);
        }
    }
    free(w->tmp_path);
    free(w->path);
    memset(w, 0, sizeof *w);
    return DR_OK;
}

int file_atomic_remove_stale(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base) return 0; /* a directory, not a file: no writer of it */
    char dir[4096], prefix[1024];
    int dn;
    if (slash == path)
        dn = snprintf(dir, sizeof dir, "/");
    else if (slash)
        dn = snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        dn = snprintf(dir, sizeof dir, ".");
    if (dn < 0 || dn >= (int)sizeof dir) return 0; /* a truncated name would be another directory */
    if (snprintf(prefix, sizeof prefix, ".%.*s.tmp", tmp_base_len(base), base) >= (int)sizeof prefix) return 0;
    const size_t plen = strlen(prefix);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        /* exactly the prefix plus mkstemp's six characters from [A-Za-z0-9] */
        if (strncmp(e->d_name, prefix, plen) != 0 || strlen(e->d_name) != plen + 6) continue;
        int ok = 1;
        for (int i = 0; i < 6; i++) {
            const char ch = e->d_name[plen + i];
            ok &= (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        }
        if (!ok) continue;
        char full[8192];
        snprintf(full, sizeof full, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", e->d_name);
        struct stat st;
        if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) && unlink(full) == 0) n++;
    }
    closedir(d);
    return n;
}

int dr_path_within(const char *path, const char *dir) {
    struct stat ds;
    if (!path || !dir || stat(dir, &ds) != 0 || !S_ISDIR(ds.st_mode)) return 0;
    /* the nearest existing ancestor of path (path itself when it exists),
     * with its symbolic links resolved */
    char *p = strdup(*path ? path : ".");
    if (!p) return 0;
    char *real = NULL;
    while (!(real = realpath(p, NULL))) {
        char *slash = strrchr(p, '/');
        if (!slash) { /* a relative name in the current directory */
            free(p);
            p = strdup(".");
            if (!p) return 0;
        } else if (slash == p) {
            p[1] = '\0'; /* "/" */
        } else {
            *slash = '\0';
        }
    }
    free(p);
    /* then up to the root, comparing each directory with dir */
    int inside = 0;
    for (;;) {
        struct stat st;
        if (stat(real, &st) == 0 && st.st_dev == ds.st_dev && st.st_ino == ds.st_ino) {
            inside = 1;
            break;
        }
        char *slash = strrchr(real, '/');
        if (!slash || strcmp(real, "/") == 0) break;
        if (slash == real)
            real[1] = '\0';
        else
            *slash = '\0';
    }
    free(real);
    return inside;
}
