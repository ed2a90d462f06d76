#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static int g_drawn;

int progress_is_tty(void) { return isatty(2); }

void progress_fmt_eta(char *buf, int n, double s) {
    if (!(s >= 0) || s > 359999) {
        snprintf(buf, n, "--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%dh%02dm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%dm%02ds", t / 60, t % 60);
    else snprintf(buf, n, "%ds", t);
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
