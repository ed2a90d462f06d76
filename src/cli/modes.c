/* The CLI's view of the table of modes (see modes.h). */
#include "modes.h"

#include <stdio.h>

void cli_modes_with(unsigned flag, char *buf, size_t n) {
    int names[16], k = 0;
    for (int m = 1; m <= dr_mode_count() && k < 16; m++)
        if (!flag || (dr_mode_get((dr_mode)m)->flags & flag)) names[k++] = m;
    size_t o = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < k && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s",
                              i == 0           ? ""
                                  : i == k - 1 ? " or "
                                               : ", ",
                              dr_mode_name((dr_mode)names[i]));
}
