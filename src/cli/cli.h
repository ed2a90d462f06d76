/* Shared pieces of the diffrestore CLI. The CLI uses only include/diffrestore.h. */
#ifndef DR_CLI_H
#define DR_CLI_H

#include "diffrestore.h"
#include "modes.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>

/* Exit codes: 0 all done, 1 some input failed, 2 usage error. */
enum { EXIT_DONE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} cli_command;

/* Options every command accepts (getopt_long ids >= 1000 avoid short-option clashes). */
enum {
    OPT_OVERWRITE = 1000,
    OPT_VERSION,
    OPT_MAX_PIXELS,
    OPT_QUALITY,
    OPT_PRECISION,
    OPT_PRESET,
    OPT_STEPS, /* the sampling options of restore and eval (cli_sampling_option) */
    OPT_SAMPLER,
    OPT_ETA,
    OPT_SPACING,
    OPT_SAMPLES,
    OPT_REDUCE,
    OPT_GUIDANCE,
    OPT_CMD_BASE = 1100 /* commands number their own long-only options from here */
};

typedef struct {
    const char *output;  /* -o */
    const char *weights; /* -w */
    int threads;         /* -t, 0 = all cores */
    int quiet;           /* -q */
    int verbose;         /* -v: also what was passed over, and why */
    int overwrite;
    long long max_pixels;
    int quality;
    int quality_given; /* --quality was given (WebP is lossless without it) */
    int precision;     /* --precision: dr_precision */
    int preset;        /* --preset, or --quality fast|default|best: dr_quality */
    int preset_given;
} cli_common;

void cli_common_init(cli_common *c);
/* Handle a common option; returns 1 if handled, 0 if not common, -1 on a bad value. */
int cli_common_option(cli_common *c, int opt, const char *arg, const char *cmd);
/* Apply --threads and --precision (a warning on stderr when bf16 was asked
 * for on a CPU without it: the run goes on in fp32). */
void cli_apply_compute(const cli_common *c, const char *cmd);
/* The common long options, for appending to a command's table. */
#define CLI_COMMON_LONGOPTS                                                                                            \
    {"output", required_argument, 0, 'o'}, {"weights", required_argument, 0, 'w'},                                     \
        {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'}, {"verbose", no_argument, 0, 'v'},      \
        {"overwrite", no_argument, 0, OPT_OVERWRITE}, {"max-pixels", required_argument, 0, OPT_MAX_PIXELS},            \
        {"quality", required_argument, 0, OPT_QUALITY}, {"precision", required_argument, 0, OPT_PRECISION},            \
        {"version", no_argument, 0, OPT_VERSION}, {                                                                    \
        "help", no_argument, 0, 'h'                                                                                    \
    }
#define CLI_COMMON_SHORTOPTS "o:w:t:qvh"
#define CLI_COMMON_HELP                                                                                                \
    "Common options:\n"                                                                                                \
    "  -o, --output PATH     output file (or directory for several inputs)\n"                                          \
    "  -w, --weights FILE    weights (.safetensors); default: the shipped ones\n"                                      \
    "  -t, --threads N       threads (default: all cores)\n"                                                           \
    "  -q, --quiet           no progress output\n"                                                                     \
    "  -v, --verbose         also name what a folder walk passed over, and why\n"                                      \
    "      --overwrite       replace an existing output (never an input)\n"                                            \
    "      --max-pixels N    refuse larger images (default 64000000)\n"                                                \
    "      --quality Q       JPEG quality 1..100 (default 92); WebP: lossy at Q\n"                                     \
    "      --precision P     fp32 (default, the reference), bf16 (3x3 convolutions in\n"                               \
    "                        bf16 with fp32 sums; needs AVX512-BF16) or auto (bf16\n"                                  \
    "                        where the CPU has it); on AMX tiles where the CPU has\n"                                  \
    "                        them (DIFFRESTORE_AMX=0 keeps AVX512-BF16)\n"                                             \
    "      --version         print the version\n"                                                                      \
    "  -h, --help            this help\n"

/* The sampling options restore and eval share. */
typedef struct {
    int samples, reduce_mean;                                 /* --samples N, --reduce mean */
    int steps_given, sampler_given, eta_given, spacing_given; /* else the preset's */
} cli_sampling;
#define CLI_SAMPLING_LONGOPTS                                                                                          \
    {"steps", required_argument, 0, OPT_STEPS}, {"sampler", required_argument, 0, OPT_SAMPLER},                        \
        {"eta", required_argument, 0, OPT_ETA}, {"spacing", required_argument, 0, OPT_SPACING},                        \
        {"samples", required_argument, 0, OPT_SAMPLES}, {"reduce", required_argument, 0, OPT_REDUCE}, {                \
        "guidance", required_argument, 0, OPT_GUIDANCE                                                                 \
    }
/* Handle --steps, --sampler, --eta, --spacing, --guidance (into p), --samples and
 * --reduce (into s). Returns 1 if handled, 0 if not one of them, -1 after a
 * usage error. */
int cli_sampling_option(cli_sampling *s, dr_params *p, int opt, const char *arg, const char *cmd);

/* The guidance weight a restore of m with p runs (DR_GUIDANCE_AUTO: the
 * weights' metadata guidance); 0 when off. */
double cli_guidance(const dr_model *m, const dr_params *p);

/* Print "diffrestore CMD: message" and a hint, return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "diffrestore: <library error>" to stderr. */
void cli_report_error(const char *context);
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);
/* 1 when s is a number within lo..hi (stored in *out), 0 otherwise. */
int cli_parse_double(const char *s, double lo, double hi, double *out);
/* A range "A-B" of numbers with lo <= A <= B <= hi (or, when single_ok, a
 * number A alone: B = A). Returns 1 and sets *a, *b when valid. */
int cli_parse_range(const char *s, double lo, double hi, int single_ok, double *a, double *b);
/* Superres: the library accepts factors this far outside the weights' range;
 * the CLI's early checks (which name the range and fail before any work)
 * must not be stricter than the library. */
#define CLI_SCALE_TOL 0.02
/* 1 when factor f is within lo..hi give or take CLI_SCALE_TOL. */
static inline int cli_scale_fits(double f, double lo, double hi) {
    return !(f < lo - CLI_SCALE_TOL || f > hi + CLI_SCALE_TOL);
}
/* Monotonic seconds, for rates and ETAs. */
double cli_now(void);
/* SIGINT/SIGTERM raise cli_cancel (the library's cancel flag) and record the
 * signal in cli_signal. An inherited "ignore SIGINT" (a background job of a
 * script) is kept. second_stops: a second signal ends the process at once. */
extern volatile int cli_cancel;
extern volatile sig_atomic_t cli_signal;
void cli_catch_signals(int second_stops);
/* s as a JSON string literal (quotes and escapes included). */
void cli_json_str(FILE *f, const char *s);
/* s with control characters (file names can hold ESC) written as \xNN. */
void cli_fputs_safe(const char *s, FILE *f);
/* fprintf(stderr, ...) for messages that name files: control characters
 * other than the newline are written as \xNN. */
void cli_eprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cmd_info(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* diffrestore serve (serve/cmd_serve.c): the web page and its JSON API. */
int cmd_serve(int argc, char **argv);
/* diffrestore eval (cmd_eval.c): measure a model on ground-truth images. */
int cmd_eval(int argc, char **argv);
/* The restore commands (cmd_restore.c): one implementation, three modes. */
/* diffrestore MODE: restore photos with one mode of the library's table */
int cmd_restore(dr_mode mode, int argc, char **argv);

#endif
