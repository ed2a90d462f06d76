/* diffrestore serve: the command line, the models, the signals. */
#include "../cli.h"
#include "../weights_path.h"
#include "serve.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define C "serve"

static void usage(FILE *f) {
    fprintf(f,
            "Usage: diffrestore serve [options]\n"
            "A local web page to restore photos (open it in a browser), and the JSON API\n"
            "behind it (docs/SERVE.md). Jobs run one at a time on all threads.\n\n"
            "      --port N            port (default 8642; 0: any free port)\n"
            "      --listen ADDR       address to bind (default 127.0.0.1: this machine only).\n"
            "                          Another address exposes the server to the network:\n"
            "                          anyone who reaches it can use it, and the page says so\n"
            "      --allow-host NAME   also accept requests for this host name (repeatable;\n"
            "                          IP addresses and localhost are always accepted)\n"
            "      --weights-dir DIR   the models: DIR/MODE.safetensors (default: the search\n"
            "                          order of the restore commands, see 'diffrestore\n"
            "                          colorize --help')\n"
            "      --queue N           jobs that may wait (default 8); more get 503 Busy\n"
            "      --jobs-per-client N jobs one address may have waiting or running (default 4)\n"
            "      --max-upload MB     largest request body (default 64)\n"
            "      --keep-minutes M    a finished job's result is kept M minutes after it was\n"
            "                          last asked for (default 10)\n"
            "      --abandon-seconds S a job nobody asks about for S seconds is cancelled\n"
            "                          (default 300)\n"
            "  -t, --threads N         threads per job (default: all cores)\n"
            "      --max-pixels N      refuse larger images (default 64000000)\n"
            "      --precision P       fp32, bf16 or auto (see 'diffrestore colorize --help')\n"
            "  -q, --quiet             print only the address and errors (not a line per job)\n"
            "  -v, --verbose           also libmicrohttpd's own errors\n"
            "  -h, --help              this help\n\n"
            "Ctrl-C or SIGTERM stops it: running jobs are cancelled, nothing is left behind.\n"
            "Example:\n"
            "  diffrestore serve            then open http://127.0.0.1:8642/\n");
}

enum {
    O_PORT = OPT_CMD_BASE,
    O_LISTEN,
    O_ALLOW_HOST,
    O_WEIGHTS_DIR,
    O_QUEUE,
    O_PER_CLIENT,
    O_MAX_UPLOAD,
    O_KEEP,
    O_ABANDON
};

static int is_loopback(const char *a) { return !strncmp(a, "127.", 4) || !strcmp(a, "::1"); }

/* The models, loaded once. The reasons a mode is missing go to stderr with
 * their paths; the API says only which mode and why in general (no server
 * path reaches a client). */
static void load_models(serve_state *s, const char *dir, int quiet) {
    for (int m = 1; m <= dr_mode_count() && m < SERVE_MAX_MODES; m++) {
        serve_model *sm = &s->models[m];
        const char *name = dr_mode_name((dr_mode)m);
        char *path = NULL;
        if (dir) {
            size_t n = strlen(dir) + strlen(name) + 32;
            path = malloc(n);
            if (path) snprintf(path, n, "%s/%s.safetensors", dir, name);
        } else {
            path = weights_locate((dr_mode)m);
        }
        char detail[1024];
        if (path && access(path, F_OK) != 0) {
            snprintf(detail, sizeof detail, "%s: %s", path, strerror(errno));
            free(path);
            path = NULL;
        } else if (!path) {
            snprintf(detail, sizeof detail, "no %s.safetensors found (see 'diffrestore %s --help')", name, name);
        }
        if (!path) {
            snprintf(sm->why, sizeof sm->why, "no %s weights on the server", name);
        } else {
            snprintf(sm->path, sizeof sm->path, "%s", path);
            dr_model *model = NULL;
            if (dr_model_load(path, &model) != DR_OK) {
                snprintf(sm->why, sizeof sm->why, "the server could not read its %s weights", name);
                snprintf(detail, sizeof detail, "%s", dr_last_error());
            } else if (dr_model_mode(model) != (dr_mode)m) {
                snprintf(sm->why, sizeof sm->why, "the server's %s weights are for another mode", name);
                snprintf(detail, sizeof detail, "%s holds %s weights", path, dr_mode_name(dr_model_mode(model)));
                dr_model_free(model);
            } else {
                sm->model = model;
            }
        }
        free(path);
        if (!sm->model)
            cli_eprintf("diffrestore serve: %s is not available: %s\n", name, detail);
        else if (!quiet)
            cli_eprintf("diffrestore serve: %s: %s\n", name, sm->path);
    }
}

int cmd_serve(int argc, char **argv) {
    cli_common com;
    cli_common_init(&com);
    serve_config cfg = {.queue_max = 8, .jobs_per_client = 4, .keep_seconds = 600, .abandon_seconds = 300};
    serve_http_config hc = {.listen = "127.0.0.1", .port = 8642, .max_upload = (size_t)64 << 20};
    const char *weights_dir = NULL;
    const char *allow[17] = {0};
    int n_allow = 0;
    static const struct option opts[] = {{"port", required_argument, 0, O_PORT},
                                         {"listen", required_argument, 0, O_LISTEN},
                                         {"allow-host", required_argument, 0, O_ALLOW_HOST},
                                         {"weights-dir", required_argument, 0, O_WEIGHTS_DIR},
                                         {"queue", required_argument, 0, O_QUEUE},
                                         {"jobs-per-client", required_argument, 0, O_PER_CLIENT},
                                         {"max-upload", required_argument, 0, O_MAX_UPLOAD},
                                         {"keep-minutes", required_argument, 0, O_KEEP},
                                         {"abandon-seconds", required_argument, 0, O_ABANDON},
                                         CLI_COMMON_LONGOPTS,
                                         {0, 0, 0, 0}};
    optind = 1;
    int o;
    long long v;
    double d;
    while ((o = getopt_long(argc, argv, "t:qvh", opts, NULL)) != -1) {
        switch (o) {
        case 'h': usage(stdout); return EXIT_DONE;
        case O_PORT:
            if (!cli_parse_int(optarg, 0, 65535, &v))
                return cli_usage_error(C, "--port needs 0..65535, got '%s'", optarg);
            hc.port = (int)v;
            break;
        case O_LISTEN: hc.listen = optarg; break;
        case O_ALLOW_HOST:
            if (n_allow >= 16) return cli_usage_error(C, "at most 16 --allow-host names");
            allow[n_allow++] = optarg;
            break;
        case O_WEIGHTS_DIR: weights_dir = optarg; break;
        case O_QUEUE:
            if (!cli_parse_int(optarg, 0, 1000, &v))
                return cli_usage_error(C, "--queue needs 0..1000, got '%s'", optarg);
            cfg.queue_max = (int)v;
            break;
        case O_PER_CLIENT:
            if (!cli_parse_int(optarg, 1, 1000, &v))
                return cli_usage_error(C, "--jobs-per-client needs 1..1000, got '%s'", optarg);
            cfg.jobs_per_client = (int)v;
            break;
        case O_MAX_UPLOAD:
            if (!cli_parse_double(optarg, 0.001, 4096, &d))
                return cli_usage_error(C, "--max-upload needs megabytes 0.001..4096, got '%s'", optarg);
            hc.max_upload = (size_t)(d * 1048576);
            break;
        case O_KEEP:
            if (!cli_parse_double(optarg, 0, 10080, &d))
                return cli_usage_error(C, "--keep-minutes needs 0..10080, got '%s'", optarg);
            cfg.keep_seconds = d * 60;
            break;
        case O_ABANDON:
            if (!cli_parse_double(optarg, 0.1, 86400, &d))
                return cli_usage_error(C, "--abandon-seconds needs 0.1..86400, got '%s'", optarg);
            cfg.abandon_seconds = d;
            break;
        case '?': return cli_usage_error(C, "unknown option (see --help)");
        default: {
            int r = cli_common_option(&com, o, optarg, C);
            if (r < 0) return EXIT_USAGE;
            if (r == 0 || o == 'o' || o == 'w' || o == OPT_OVERWRITE || o == OPT_QUALITY)
                return cli_usage_error(C, "option not used by serve (see --help)");
        }
        }
    }
    if (optind < argc) return cli_usage_error(C, "serve takes no file arguments, got '%s'", argv[optind]);
    hc.allow_hosts = allow;
    hc.exposed = !is_loopback(hc.listen);
    hc.verbose = com.verbose;
    cfg.threads = com.threads;
    cfg.log_jobs = !com.quiet;
    cli_apply_compute(&com, C);

    /* Signals are taken by this thread alone (sigtimedwait below): every
     * other thread starts with them blocked. A closed client must not kill
     * the server either. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    serve_state s;
    serve_state_init(&s, &cfg);
    load_models(&s, weights_dir, com.quiet);
    int any = 0;
    for (int m = 1; m <= dr_mode_count() && m < SERVE_MAX_MODES; m++) any |= s.models[m].model != NULL;
    if (!any) {
        cli_eprintf("diffrestore serve: no weights for any mode; give --weights-dir DIR with MODE.safetensors\n");
        serve_state_stop(&s);
        return EXIT_FAILED;
    }
    if (serve_state_start(&s) != 0) {
        cli_eprintf("diffrestore serve: cannot start the worker thread\n");
        serve_state_stop(&s);
        return EXIT_FAILED;
    }
    serve_limits lim = {.max_pixels = com.max_pixels};
    char err[512];
    serve_http *h = serve_http_start(&s, &hc, lim, err, sizeof err);
    if (!h) {
        cli_eprintf("diffrestore serve: %s\n", err);
        serve_state_stop(&s);
        return EXIT_FAILED;
    }
    const int v6 = strchr(hc.listen, ':') != NULL;
    printf("diffrestore serve: listening on http://%s%s%s:%d/\n", v6 ? "[" : "", hc.listen, v6 ? "]" : "",
           serve_http_port(h));
    fflush(stdout);
    if (hc.exposed)
        cli_eprintf("diffrestore serve: warning: bound to %s, not this machine only: anyone who can reach it can "
                    "restore photos on it\n",
                    hc.listen);
    if (!com.quiet) cli_eprintf("diffrestore serve: Ctrl-C stops it\n");

    struct timespec tick = {1, 0};
    int sig;
    for (;;) {
        sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM) break;
        pthread_mutex_lock(&s.mu);
        serve_jobs_expire(&s);
        pthread_mutex_unlock(&s.mu);
    }
    if (!com.quiet) cli_eprintf("diffrestore serve: stopping (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* stop taking work and wake every waiting event stream, then the HTTP
     * threads, then the worker (its job cancelled) */
    serve_state_quiesce(&s);
    serve_http_stop(h);
    serve_state_stop(&s);
    return EXIT_DONE;
}
