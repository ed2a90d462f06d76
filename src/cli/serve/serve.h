/* diffrestore serve: a local web page and a JSON API over the public library
 * (docs/SERVE.md). Three parts, each usable on its own:
 *   request.c  a job request (JSON) -> a checked serve_request; no I/O, fuzzed
 *   jobs.c     the bounded queue and the one worker thread that runs dr_restore
 *   http.c     libmicrohttpd: routing, limits, Host/Origin checks, SSE
 * cmd_serve.c parses the command line and wires them together. */
#ifndef DR_SERVE_H
#define DR_SERVE_H

#include "diffrestore.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ requests */

#define SERVE_MAX_BOXES 64
#define SERVE_NAME_MAX  128

#define SERVE_MAX_MODES 16 /* more than the library's modes (checked at start) */

typedef struct {
    int64_t max_pixels; /* per image (the decompression-bomb limit) */
} serve_limits;

typedef struct {
    dr_mode mode;
    dr_image image;      /* decoded, upright, sRGB */
    dr_format in_format; /* the upload's format */
    dr_image mask;       /* inpaint: 1 channel, 255 = hole (from "mask" and/or "boxes"); else empty */
    int have_mask;
    dr_params params; /* the mode's preset, then the request's sampler, steps, seed, size */
    dr_quality quality;
    int seed_given;
    int result_input_format;   /* 1: encode the result in the upload's format; 0: PNG */
    char name[SERVE_NAME_MAX]; /* the upload's file name, sanitised ("image" if none) */
} serve_request;

/* Parse a job request body (a JSON object, docs/SERVE.md). Returns 0 and
 * fills rq, or an HTTP status (400 malformed or wrong field, 413 over a limit,
 * 415 an image that cannot be decoded, 422 a mask that does not fit) with a
 * sentence in err. The mode's weights are not consulted here. */
int serve_request_parse(const char *body, size_t n, const serve_limits *lim, serve_request *rq, char *err, size_t errn);
void serve_request_free(serve_request *rq);

/* Base64 (RFC 4648, '=' padding optional, whitespace ignored) into a malloc'd
 * buffer; a "data:...;base64," prefix is skipped. -1 on a bad character. */
int serve_base64_decode(const char *s, size_t n, unsigned char **out, size_t *outn);

/* ------------------------------------------------------------------ jobs */

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED } job_state;
const char *job_state_name(job_state s);

typedef struct job {
    char id[33]; /* 128 random bits, hex */
    char client[64];
    char name[SERVE_NAME_MAX]; /* the upload's name, for the download */
    job_state state;
    serve_request rq; /* freed once the job ends */
    dr_mode mode;
    uint64_t seed;
    int width, height; /* the input's size */
    int step, steps;   /* sampler steps done, of: dr_params.progress */
    int tile, tiles;   /* tiles done in the current step, of: dr_params.progress_tile */
    int sampler_steps;
    unsigned char *result; /* encoded output, once done */
    size_t result_size;
    dr_format result_format;
    int out_width, out_height;
    char error[512];
    volatile int cancel;
    double t_submit, t_start, t_end, t_touch; /* monotonic seconds */
    uint64_t version;                         /* bumped on every change, for event streams */
    struct job *next;
} job;

typedef struct {
    dr_model *model; /* NULL: not available */
    char path[1024];
    char why[256]; /* why not available */
} serve_model;

typedef struct {
    int queue_max;          /* queued jobs (the running one not counted) */
    int jobs_per_client;    /* queued + running per client address */
    double keep_seconds;    /* a finished job is kept this long after its last request */
    double abandon_seconds; /* a queued or running job nobody asked about this long is cancelled */
    int threads;
    int log_jobs; /* a line on stderr as each job ends */
} serve_config;

typedef struct {
    serve_config cfg;
    serve_model models[SERVE_MAX_MODES]; /* by dr_mode: 1 .. dr_mode_count() */
    pthread_mutex_t mu;
    pthread_cond_t work;    /* a job was queued, or stopping */
    pthread_cond_t changed; /* any job changed (progress, state) */
    job *jobs;              /* every job in memory, newest first */
    int n_queued;
    int running;
    int stopping;
    uint64_t done_total, failed_total, cancelled_total, refused_total;
    pthread_t worker;
    int worker_started;
} serve_state;

int serve_state_init(serve_state *s, const serve_config *cfg);
/* Starts the worker thread. */
int serve_state_start(serve_state *s);
/* Takes no more jobs, cancels every job and wakes every waiting thread (the
 * worker, the event streams); the state stays valid. */
void serve_state_quiesce(serve_state *s);
/* serve_state_quiesce, then joins the worker and frees everything. */
void serve_state_stop(serve_state *s);

/* Queue a parsed request (taken over: rq is cleared). Returns 0 and the
 * job's id, or an HTTP status: 503 queue full, 429 too many for this client,
 * 422 no weights for the mode, 503 stopping; err says why. Locks s->mu. */
int serve_job_submit(serve_state *s, serve_request *rq, const char *client, char id[33], char *err, size_t errn);
/* With s->mu held: the job, or NULL. Touches it (it is not abandoned). */
job *serve_job_find(serve_state *s, const char *id);
/* With s->mu held: cancel a queued or running job and forget it. */
void serve_job_remove(serve_state *s, job *j);
/* With s->mu held: drop finished jobs past keep_seconds, cancel abandoned ones. */
void serve_jobs_expire(serve_state *s);
/* With s->mu held: the queue position of a queued job (1 = next), else 0. */
int serve_job_position(serve_state *s, const job *j);
double serve_now(void);

/* ------------------------------------------------------------------ http */

typedef struct {
    const char *listen; /* address to bind */
    int port;
    int exposed;              /* bound to something other than loopback */
    size_t max_upload;        /* request body bytes */
    const char **allow_hosts; /* extra Host names accepted (NULL-terminated) */
    int verbose;
} serve_http_config;

typedef struct serve_http serve_http;
/* Start the daemon (its own threads); NULL with a message in err on failure. */
serve_http *serve_http_start(serve_state *s, const serve_http_config *hc, serve_limits lim, char *err, size_t errn);
/* The port actually bound (when --port 0 asked for any). */
int serve_http_port(const serve_http *h);
void serve_http_stop(serve_http *h);

/* The embedded page (generated at build time from src/cli/serve/page/). */
typedef struct {
    const char *path; /* "/index.html" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t size;
} serve_page_file;
extern const serve_page_file serve_page_files[];
extern const int serve_page_count;

#endif
