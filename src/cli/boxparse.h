/* boxparse.h - the inpaint command's --box x,y,w,h parser, on its own so a
 * fuzzer (tests/fuzz/fuzz_maskbox.c) can link it without the rest of the CLI. */
#ifndef DR_CLI_BOXPARSE_H
#define DR_CLI_BOXPARSE_H

/* Parse "x,y,w,h": four decimal integers (an optional sign, no spaces),
 * each within -1000000000..1000000000, separated by single commas, nothing
 * after the fourth, w > 0 and h > 0. Returns 1 and sets *x, *y, *w, *h on
 * success; returns 0 and leaves them untouched otherwise. */
int cli_parse_box(const char *s, int *x, int *y, int *w, int *h);

#endif
