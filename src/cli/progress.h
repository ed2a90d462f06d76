/* Progress lines on stderr: redrawn in place on a TTY, silent otherwise. */
#ifndef DR_CLI_PROGRESS_H
#define DR_CLI_PROGRESS_H

int progress_is_tty(void);
/* Format seconds as "1h02m", "3m05s" or "12s". */
void progress_fmt_eta(char *buf, int n, double seconds);
/* Redraw the current line (no newline) when stderr is a TTY. */
void progress_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* End the current line if one was drawn. */
void progress_done(void);

#endif
