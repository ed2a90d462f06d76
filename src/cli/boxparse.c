/* boxparse.c - the inpaint command's --box x,y,w,h parser (see boxparse.h). */
#include "boxparse.h"

#include <errno.h>
#include <stdlib.h>

int cli_parse_box(const char *s, int *x, int *y, int *w, int *h) {
    long long v[4];
    const char *p = s;
    for (int i = 0; i < 4; i++) {
        char *end;
        errno = 0;
        if (!((*p >= '0' && *p <= '9') || *p == '-' || *p == '+')) return 0;
        v[i] = strtoll(p, &end, 10);
        if (errno || end == p || v[i] < -1000000000LL || v[i] > 1000000000LL) return 0;
        p = end;
        if (i < 3) {
            if (*p != ',') return 0;
            p++;
        }
    }
    if (*p || v[2] <= 0 || v[3] <= 0) return 0;
    /* within +-1e9: every value fits an int */
    *x = (int)v[0];
    *y = (int)v[1];
    *w = (int)v[2];
    *h = (int)v[3];
    return 1;
}
