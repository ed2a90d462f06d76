#include "progress.h"

#include "cli.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int g_drawn;

int progress_is_tty(void) { return isatty(2); }

void progress_fmt_eta(char *buf, int n, double s) {
    if (!(s >= 0) || s > 359999) {
        snprintf(buf, n, "--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%dh%02dm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, n, "%dm%02ds", t / 60, t % 60);
    else
        snprintf(buf, n, "%ds", t);
}

void progress_line(const char *fmt, ...) {
    if (!progress_is_tty()) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
    g_drawn = 1;
}

void progress_done(void) {
    if (g_drawn) fputc('\n', stderr);
    g_drawn = 0;
}

/* ------------------------------------------------------------------ a run over images */

void progress_item_start(progress_run *r) { r->t_item = cli_now(); }

void progress_item_timed(progress_run *r) {
    r->sum_time += cli_now() - r->t_item;
    r->n_timed++;
}

/* The tail of a long name. */
static const char *short_name(const char *s, int max) {
    int n = (int)strlen(s);
    return n <= max ? s : s + (n - max);
}

void progress_bar(progress_run *r, int step, int steps) {
    if (!r->bar || !progress_is_tty()) return;
    char eta[32] = "--", bar[24];
    const double t = cli_now() - r->t_item;
    if (step > 0 && steps > 0) {
        const double per_image = r->n_timed ? r->sum_time / r->n_timed : t / step * steps;
        progress_fmt_eta(eta, sizeof eta, t / step * (steps - step) + per_image * (r->total - r->pos));
    }
    const int w = 20, fill = steps > 0 ? (int)((long long)w * step / steps) : 0;
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '-';
    bar[w] = 0;
    fputs("\r\033[K", stderr);
    if (r->total > 1 || r->count_always) fprintf(stderr, "[%d/%d] ", r->pos, r->total);
    if (steps > 0)
        cli_eprintf("%s [%s] %d/%d  ETA %s", short_name(r->cur, 40), bar, step, steps, eta);
    else
        cli_eprintf("%s", short_name(r->cur, 60));
    fflush(stderr);
    r->drawn = 1;
}

void progress_clear(progress_run *r) {
    if (r->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        r->drawn = 0;
    }
}

void progress_note(progress_run *r, const char *fmt, ...) {
    if (r->quiet) return;
    progress_clear(r);
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_fputs_safe(msg, stderr);
    fputc('\n', stderr);
}

void progress_fail(progress_run *r, const char *file, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    progress_clear(r);
    size_t fn = strlen(file);
    /* library messages usually start with the file already */
    fputs("diffrestore: ", stderr);
    if (!(strncmp(msg, file, fn) == 0 && msg[fn] == ':')) {
        cli_fputs_safe(file, stderr);
        fputs(": ", stderr);
    }
    cli_fputs_safe(msg, stderr);
    fputc('\n', stderr);
    if (r->json) {
        fputs("{\"file\":", stdout);
        cli_json_str(stdout, file);
        fputs(r->json_fail ? r->json_fail : "", stdout);
        fputs(",\"error\":", stdout);
        cli_json_str(stdout, msg);
        fputs("}\n", stdout);
        fflush(stdout);
    }
    r->failed++;
}

void progress_interrupted(const char *what) {
    cli_eprintf("diffrestore: interrupted (%s): %s\n", cli_signal == SIGTERM ? "SIGTERM" : "SIGINT", what);
}

int progress_exit_code(int interrupted, int failed) {
    return interrupted ? 128 + (cli_signal ? (int)cli_signal : SIGINT) : failed ? EXIT_FAILED : EXIT_DONE;
}
