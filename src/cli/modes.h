/* modes.h - the CLI's view of the library's table of modes (dr_mode_get):
 * what a mode takes, and the names for messages. */
#ifndef DR_CLI_MODES_H
#define DR_CLI_MODES_H

#include "diffrestore.h"

#include <stddef.h>

/* Whether mode takes flag (DR_MODE_TAKES_* and the others, from the table). */
static inline int cli_mode_takes(dr_mode mode, unsigned flag) {
    const dr_mode_info *mi = dr_mode_get(mode);
    return mi && (mi->flags & flag);
}
/* The names of the modes that take flag ("superres"; "a or b"), or of every
 * mode when flag is 0 ("colorize, inpaint, superres or denoise"), into buf. */
void cli_modes_with(unsigned flag, char *buf, size_t n);

#endif
