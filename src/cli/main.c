/* diffrestore - command-line front end. Each command lives in its own file
 * and reaches the library only through include/diffrestore.h. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The restore commands are the library's modes (dr_mode_get), one each:
 * cmd_restore. These are the others. */
static const cli_command g_commands[] = {
    {"info", "show an image's format and size, or a weights file's metadata", cmd_info},
    {"train", "train a model for one mode, with checkpoints and resume", cmd_train},
    {"eval", "measure a model against classical baselines on ground-truth images", cmd_eval},
    {"forward", "run one U-Net forward on tensors from a safetensors file", cmd_forward},
    {"bench", "time the U-Net forward or training step", cmd_bench},
    {"serve", "a local web page to restore photos (brush for inpainting masks)", cmd_serve},
};
#define N_COMMANDS (sizeof g_commands / sizeof *g_commands)

void cli_common_init(cli_common *c) {
    memset(c, 0, sizeof *c);
    c->max_pixels = DR_DEFAULT_MAX_PIXELS;
    c->quality = 92;
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int cli_parse_double(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

int cli_parse_range(const char *s, double lo, double hi, int single_ok, double *a, double *b) {
    if (!s || !*s) return 0;
    const char *dash = strchr(s + 1, '-'); /* A may have a sign */
    if (!dash) return single_ok && cli_parse_double(s, lo, hi, a) && (*b = *a, 1);
    char left[64];
    size_t n = (size_t)(dash - s);
    if (n >= sizeof left) return 0;
    memcpy(left, s, n);
    left[n] = 0;
    return cli_parse_double(left, lo, hi, a) && cli_parse_double(dash + 1, lo, hi, b) && *a <= *b;
}

volatile int cli_cancel;
volatile sig_atomic_t cli_signal;

static void on_signal(int sig) {
    cli_signal = sig;
    cli_cancel = 1;
}

void cli_catch_signals(int second_stops) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = second_stops ? SA_RESETHAND : 0;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

int cli_common_option(cli_common *c, int opt, const char *arg, const char *cmd) {
    long long v;
    switch (opt) {
    case 'o': c->output = arg; return 1;
    case 'w': c->weights = arg; return 1;
    case 'q': c->quiet = 1; return 1;
    case 'v': c->verbose = 1; return 1;
    case OPT_OVERWRITE: c->overwrite = 1; return 1;
    case 't':
        if (!cli_parse_int(arg, 0, 1024, &v))
            return cli_usage_error(cmd, "--threads needs a number 0..1024, got '%s'", arg), -1;
        c->threads = (int)v;
        return 1;
    case OPT_MAX_PIXELS:
        if (!cli_parse_int(arg, 1, (long long)1 << 40, &v))
            return cli_usage_error(cmd, "--max-pixels needs a positive number, got '%s'", arg), -1;
        c->max_pixels = v;
        return 1;
    case OPT_VERSION:
        printf("diffrestore %s\n", dr_version());
        exit(EXIT_DONE); /* the CLI may exit; the library never does */
    case OPT_PRECISION:
        if (!strcmp(arg, "fp32"))
            c->precision = DR_PRECISION_FP32;
        else if (!strcmp(arg, "bf16"))
            c->precision = DR_PRECISION_BF16;
        else if (!strcmp(arg, "auto"))
            c->precision = DR_PRECISION_AUTO;
        else
            return cli_usage_error(cmd, "--precision needs fp32, bf16 or auto, got '%s'", arg), -1;
        return 1;
    case OPT_PRESET:
    case OPT_QUALITY: {
        /* --quality names a sampling preset or an encoder quality */
        dr_quality q;
        if (dr_quality_from_name(arg, &q) == DR_OK) {
            c->preset = (int)q;
            c->preset_given = 1;
            return 1;
        }
        if (opt == OPT_PRESET) return cli_usage_error(cmd, "--preset needs " DR_QUALITY_NAMES ", got '%s'", arg), -1;
    }
        if (!cli_parse_int(arg, 1, 100, &v))
            return cli_usage_error(cmd, "--quality needs 1..100 or a preset (" DR_QUALITY_NAMES "), got '%s'", arg), -1;
        c->quality = (int)v;
        c->quality_given = 1;
        return 1;
    default: return 0;
    }
}

int cli_sampling_option(cli_sampling *s, dr_params *p, int opt, const char *arg, const char *cmd) {
    long long v;
    double d;
    switch (opt) {
    case OPT_STEPS:
        if (!cli_parse_int(arg, 1, 100000, &v))
            return cli_usage_error(cmd, "--steps needs 1..100000, got '%s'", arg), -1;
        p->steps = (int)v;
        s->steps_given = 1;
        return 1;
    case OPT_SAMPLER:
        if (dr_sampler_from_name(arg, &p->sampler) != DR_OK)
            return cli_usage_error(cmd, "--sampler must be one of " DR_SAMPLER_NAMES ", not '%s'", arg), -1;
        s->sampler_given = 1;
        return 1;
    case OPT_ETA:
        if (!cli_parse_double(arg, 0, 1, &d)) return cli_usage_error(cmd, "--eta needs 0..1, got '%s'", arg), -1;
        p->eta = d;
        s->eta_given = 1;
        return 1;
    case OPT_SPACING:
        if (dr_spacing_from_name(arg, &p->spacing) != DR_OK) return cli_usage_error(cmd, "%s", dr_last_error()), -1;
        s->spacing_given = 1;
        return 1;
    case OPT_GUIDANCE:
        if (!cli_parse_double(arg, 0, 20, &d)) return cli_usage_error(cmd, "--guidance needs 0..20, got '%s'", arg), -1;
        p->guidance = d;
        return 1;
    case OPT_SAMPLES:
        if (!cli_parse_int(arg, 1, 1000, &v)) return cli_usage_error(cmd, "--samples needs 1..1000, got '%s'", arg), -1;
        s->samples = (int)v;
        return 1;
    case OPT_REDUCE:
        if (strcmp(arg, "mean") != 0) return cli_usage_error(cmd, "--reduce supports only 'mean', not '%s'", arg), -1;
        s->reduce_mean = 1;
        return 1;
    default: return 0;
    }
}

double cli_guidance(const dr_model *m, const dr_params *p) {
    double w = p->guidance;
    if (w == DR_GUIDANCE_AUTO) {
        const char *g = m ? dr_model_meta(m, "guidance") : NULL;
        w = g ? atof(g) : 0;
    }
    return w > 0 && w != 1 ? w : 0;
}

void cli_apply_compute(const cli_common *c, const char *cmd) {
    dr_set_threads(c->threads);
    /* DIFFRESTORE_AMX=0: bf16 on the AVX512-BF16 kernels where the CPU has
     * AMX (to compare them; scripts/golden_check.sh runs both revisions so) */
    const char *amx = getenv("DIFFRESTORE_AMX");
    dr_set_amx(!(amx && !strcmp(amx, "0")));
    if (dr_set_precision((dr_precision)c->precision) != DR_OK)
        fprintf(stderr, "diffrestore %s: warning: %s\n", cmd, dr_last_error());
}

void cli_fputs_safe(const char *s, FILE *f) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p); /* ESC and friends would drive the terminal */
        else
            fputc(*p, f);
}

void cli_eprintf(const char *fmt, ...) {
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (const unsigned char *q = (const unsigned char *)msg; *q; q++)
        if ((*q < 0x20 && *q != '\n') || *q == 0x7f)
            fprintf(stderr, "\\x%02x", *q);
        else
            fputc(*q, stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "diffrestore%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    cli_fputs_safe(msg, stderr);
    fprintf(stderr, "\nTry 'diffrestore %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

void cli_report_error(const char *context) {
    fputs("diffrestore: ", stderr);
    if (context) fprintf(stderr, "%s: ", context);
    cli_fputs_safe(dr_last_error(), stderr);
    fputc('\n', stderr);
}

static void print_help(FILE *f) {
    fprintf(f,
            "Usage: diffrestore COMMAND [options] INPUT...\n"
            "Restore photos with a conditional diffusion model, on the CPU.\n\n"
            "Commands:\n");
    for (int m = 1; m <= dr_mode_count(); m++) {
        const dr_mode_info *mi = dr_mode_get((dr_mode)m);
        fprintf(f, "  %-10s %s\n", mi->name, mi->brief);
    }
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-10s %s\n", g_commands[i].name, g_commands[i].summary);
    fprintf(f,
            "\n'diffrestore COMMAND --help' describes a command's options.\n"
            "Exit codes: 0 all done, 1 some input failed, 2 usage error.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        print_help(stdout);
        return EXIT_DONE;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("diffrestore %s\n", dr_version());
        return EXIT_DONE;
    }
    const dr_mode mode = dr_mode_from_name(cmd);
    if (mode != DR_MODE_NONE) return cmd_restore(mode, argc - 1, argv + 1);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, g_commands[i].name) == 0) return g_commands[i].run(argc - 1, argv + 1);
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
}
