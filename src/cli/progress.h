/* Progress and reports on stderr, for every command: the progress line
 * (redrawn in place on a TTY, silent otherwise), and for the commands that
 * work through a list of images (restore, eval) the bar with its ETA, the
 * notes, the failure reports and the end of the run. */
#ifndef DR_CLI_PROGRESS_H
#define DR_CLI_PROGRESS_H

int progress_is_tty(void);
/* Format seconds as "1h02m", "3m05s" or "12s". */
void progress_fmt_eta(char *buf, int n, double seconds);
/* Redraw the current line (no newline) when stderr is a TTY. */
void progress_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* End the current line if one was drawn. */
void progress_done(void);

/* One run over a list of images. Set the options, zero the rest. */
typedef struct {
    /* options */
    int bar;               /* draw the bar (when stderr is a TTY) */
    int quiet;             /* no notes */
    int json;              /* failures also as one JSON object a line on stdout */
    const char *json_fail; /* what a JSON failure holds between "file" and "error" ("" or ",\"done\":false") */
    int count_always;      /* "[K/N]" in the bar even when N is 1 */
    /* state */
    int total, pos;          /* images of this run; the current one, from 1 */
    const char *cur;         /* the current image's name, for the bar */
    double t_item, sum_time; /* start of the current image; time of the finished ones */
    int n_timed;
    int failed; /* failures reported */
    int drawn;  /* the bar is on the screen */
} progress_run;

/* The image r->cur starts (its clock) / its restoration ended (for the ETA). */
void progress_item_start(progress_run *r);
void progress_item_timed(progress_run *r);
/* "[K/N] NAME [####----] step/steps  ETA 1m05s", or the name alone when steps is 0. */
void progress_bar(progress_run *r, int step, int steps);
/* Erase the bar if one is on the screen. */
void progress_clear(progress_run *r);
/* A note on stderr (not with quiet): the bar cleared, control characters escaped. */
void progress_note(progress_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "diffrestore: FILE: reason" on stderr (always; FILE is not repeated when the
 * reason starts with it), the same as JSON when r->json; counts r->failed. */
void progress_fail(progress_run *r, const char *file, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "diffrestore: interrupted (SIGINT): WHAT" after Ctrl-C or SIGTERM. */
void progress_interrupted(const char *what);
/* The exit code of a run: 128 + the signal when interrupted, else 1 when an image failed, else 0. */
int progress_exit_code(int interrupted, int failed);

#endif
