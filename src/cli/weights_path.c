/* Where the restore commands find their weights (see weights_path.h). */
#include "weights_path.h"

#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PLACES 6

typedef struct {
    char path[PATH_MAX + 64];
    char why[96]; /* where the candidate came from */
} place;

/* Directory of the running executable ("" when unknown). */
static void exe_dir(char *buf, size_t n) {
    buf[0] = 0;
    ssize_t len = readlink("/proc/self/exe", buf, n - 1);
    if (len <= 0) {
        buf[0] = 0;
        return;
    }
    buf[len] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash)
        buf[0] = 0;
    else if (slash == buf)
        buf[1] = 0;
    else
        *slash = 0;
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* The candidates after -w, in order. */
static int candidates(dr_mode mode, place *pl) {
    const char *name = dr_mode_name(mode);
    int n = 0;
    const char *env = getenv("DIFFRESTORE_WEIGHTS");
    if (env && *env) {
        struct stat st;
        if (stat(env, &st) != 0) {
            snprintf(pl[n].path, sizeof pl[n].path, "%s", env);
            snprintf(pl[n].why, sizeof pl[n].why, "$DIFFRESTORE_WEIGHTS: %s", strerror(errno));
        } else if (!S_ISDIR(st.st_mode)) {
            snprintf(pl[n].path, sizeof pl[n].path, "%s", env);
            snprintf(pl[n].why, sizeof pl[n].why, "$DIFFRESTORE_WEIGHTS");
        } else {
            snprintf(pl[n].path, sizeof pl[n].path, "%s/%s.safetensors", env, name);
            snprintf(pl[n].why, sizeof pl[n].why, "$DIFFRESTORE_WEIGHTS directory");
        }
        n++;
    }
    char dir[PATH_MAX];
    exe_dir(dir, sizeof dir);
    if (dir[0]) {
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent)
            *slash = 0;
        else
            snprintf(parent, sizeof parent, "/");
        snprintf(pl[n].path, sizeof pl[n].path, "%s%sweights/%s.safetensors", parent, strcmp(parent, "/") ? "/" : "",
                 name);
        snprintf(pl[n].why, sizeof pl[n].why, "beside the executable");
        n++;
        snprintf(pl[n].path, sizeof pl[n].path, "%s%sweights/%s.safetensors", dir, strcmp(dir, "/") ? "/" : "", name);
        snprintf(pl[n].why, sizeof pl[n].why, "beside the executable");
        n++;
    }
#ifdef DR_INSTALL_DATADIR
    snprintf(pl[n].path, sizeof pl[n].path, "%s/weights/%s.safetensors", DR_INSTALL_DATADIR, name);
    snprintf(pl[n].why, sizeof pl[n].why, "installed");
    n++;
#endif
    return n;
}

char *weights_locate(dr_mode mode) {
    place pl[MAX_PLACES];
    int n = candidates(mode, pl);
    for (int i = 0; i < n; i++)
        if (is_file(pl[i].path)) return strdup(pl[i].path);
    return NULL;
}

char *weights_find(const char *explicit_path, dr_mode mode, const char *cmd) {
    if (explicit_path) {
        char *p = strdup(explicit_path);
        if (!p) cli_eprintf("diffrestore %s: out of memory\n", cmd);
        return p;
    }
    char *found = weights_locate(mode);
    if (found) return found;
    place pl[MAX_PLACES];
    int n = candidates(mode, pl);
    cli_eprintf("diffrestore %s: no %s weights found; tried:\n", cmd, dr_mode_name(mode));
    const char *env = getenv("DIFFRESTORE_WEIGHTS");
    if (!env || !*env) fprintf(stderr, "  $DIFFRESTORE_WEIGHTS (not set)\n");
    for (int i = 0; i < n; i++) fprintf(stderr, "  %s (%s)\n", pl[i].path, pl[i].why);
    /* the other modes' weights found where these were looked for: the install
     * is fine, this mode has not been trained (shipped) yet */
    char found_modes[128] = "";
    size_t o = 0;
    for (int m = 1; m <= dr_mode_count(); m++) {
        char *p = m == (int)mode ? NULL : weights_locate((dr_mode)m);
        if (p && o < sizeof found_modes)
            o += (size_t)snprintf(found_modes + o, sizeof found_modes - o, "%s%s", o ? ", " : "",
                                  dr_mode_name((dr_mode)m));
        free(p);
    }
    if (found_modes[0])
        fprintf(stderr,
                "%s has no trained weights yet (those found here are for %s).\n"
                "Train them: 'diffrestore train --mode %s --data DIR --out CKPT', then\n"
                "'diffrestore train --resume CKPT --export FILE' (see 'diffrestore train --help').\n",
                dr_mode_name(mode), found_modes, dr_mode_name(mode));
    fprintf(stderr,
            "Give a weights file with -w FILE, or set DIFFRESTORE_WEIGHTS to a file or to a\n"
            "directory holding %s.safetensors.\n",
            dr_mode_name(mode));
    return NULL;
}

int weights_load(const char *explicit_path, dr_mode mode, const char *cmd, dr_model **out, char **path_out) {
    *out = NULL;
    if (path_out) *path_out = NULL;
    char *path = weights_find(explicit_path, mode, cmd);
    if (!path) return -1;
    dr_model *m = NULL;
    if (dr_model_load(path, &m) != DR_OK) {
        const char *msg = dr_last_error();
        size_t pn = strlen(path);
        if (strncmp(msg, path, pn) == 0 && msg[pn] == ':')
            cli_eprintf("diffrestore: %s\n", msg);
        else
            cli_eprintf("diffrestore: %s: %s\n", path, msg);
        free(path);
        return -1;
    }
    if (dr_model_mode(m) != mode) {
        cli_eprintf("diffrestore: %s: these weights are for %s, not %s\n", path, dr_mode_name(dr_model_mode(m)),
                    dr_mode_name(mode));
        dr_model_free(m);
        free(path);
        return -1;
    }
    *out = m;
    if (path_out)
        *path_out = path;
    else
        free(path);
    return 0;
}

void weights_print_search(FILE *f, dr_mode mode) {
    place pl[MAX_PLACES];
    int n = candidates(mode, pl);
    fprintf(f, "  -w FILE if given, else the first that exists of:\n");
    const char *env = getenv("DIFFRESTORE_WEIGHTS");
    if (!env || !*env)
        fprintf(f, "    $DIFFRESTORE_WEIGHTS (a file, or a directory holding %s.safetensors; not set)\n",
                dr_mode_name(mode));
    for (int i = 0; i < n; i++) fprintf(f, "    %s\n", pl[i].path);
}
