/* Where the restore commands find their weights. */
#ifndef DR_CLI_WEIGHTS_PATH_H
#define DR_CLI_WEIGHTS_PATH_H

#include "diffrestore.h"

#include <stdio.h>

/* The weights file for mode, in this order:
 *   1. explicit (-w FILE), if given;
 *   2. $DIFFRESTORE_WEIGHTS: a file, or a directory holding MODE.safetensors;
 *   3. <dir of the executable>/../weights/MODE.safetensors;
 *   4. <dir of the executable>/weights/MODE.safetensors;
 *   5. DR_INSTALL_DATADIR/weights/MODE.safetensors (set by CMake).
 * Returns a malloc'd path, or NULL after printing an error (naming cmd) that
 * lists every place tried. */
char *weights_find(const char *explicit_path, dr_mode mode, const char *cmd);

/* The first existing file of the search order (2.-5. above), malloc'd, or
 * NULL (nothing found, or out of memory), printing nothing. */
char *weights_locate(dr_mode mode);

/* weights_find, dr_model_load, and a check that the weights are for mode.
 * Prints the error and returns -1, or returns 0 with *out (and *path_out,
 * malloc'd, when path_out is not NULL). */
int weights_load(const char *explicit_path, dr_mode mode, const char *cmd, dr_model **out, char **path_out);

/* The search order, for --help. */
void weights_print_search(FILE *f, dr_mode mode);

#endif
