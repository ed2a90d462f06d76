/* The HTTP side of `diffrestore serve`, on libmicrohttpd: one thread per
 * connection (so an event stream can wait for its job), the page embedded at
 * build time, a JSON API (docs/SERVE.md). Nothing a client sends is ever
 * used as a path: the page is a fixed table, jobs are looked up by id. */
#include "serve.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

struct serve_http {
    struct MHD_Daemon *d;
    serve_state *s;
    serve_http_config hc;
    serve_limits lim;
    int port;
};

/* Per request: the body as it arrives. */
typedef struct {
    char *body;
    size_t n, cap;
    int too_large;
} req_ctx;

/* ------------------------------------------------------------------ replies */

static void add_common_headers(struct MHD_Response *r, int api) {
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    if (api) MHD_add_response_header(r, "Cache-Control", "no-store");
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, const void *data, size_t n,
                             int api) {
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    add_common_headers(r, api);
    if (status == 503 || status == 429) MHD_add_response_header(r, "Retry-After", status == 503 ? "5" : "10");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, cJSON *j) {
    char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!txt) return reply(c, 500, "text/plain", "out of memory\n", 14, 1);
    enum MHD_Result r = reply(c, status, "application/json", txt, strlen(txt), 1);
    free(txt);
    return r;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", msg);
    cJSON_AddNumberToObject(j, "status", status);
    return reply_json(c, status, j);
}

/* ------------------------------------------------------------------ checks */

/* A Host the page may be reached by. DNS rebinding needs a name that the
 * attacker's DNS points at us, so IP literals are safe; "localhost" resolves
 * here only; other names must be listed with --allow-host. */
static int host_allowed(const serve_http *h, const char *host) {
    if (!host || !*host) return 0;
    char name[256];
    size_t n;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (!end) return 0;
        n = (size_t)(end - host - 1);
        if (n >= sizeof name) return 0;
        memcpy(name, host + 1, n);
        name[n] = 0;
        if (end[1] && end[1] != ':') return 0;
        struct in6_addr a6;
        return inet_pton(AF_INET6, name, &a6) == 1;
    }
    const char *colon = strchr(host, ':');
    n = colon ? (size_t)(colon - host) : strlen(host);
    if (n == 0 || n >= sizeof name) return 0;
    memcpy(name, host, n);
    name[n] = 0;
    if (colon) {
        for (const char *p = colon + 1; *p; p++)
            if (*p < '0' || *p > '9') return 0;
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1) return 1;
    if (strcasecmp(name, "localhost") == 0) return 1;
    for (const char **a = h->hc.allow_hosts; a && *a; a++)
        if (strcasecmp(name, *a) == 0) return 1;
    return 0;
}

/* A state-changing request from a browser carries Origin: it must be this
 * page's own origin (another site's page may not submit or cancel jobs). */
static int origin_ok(const char *origin, const char *host) {
    if (!origin) return 1; /* not a browser (curl), or a same-origin GET */
    const char *p = strstr(origin, "://");
    if (!p) return 0;
    return strcasecmp(p + 3, host) == 0;
}

static void client_of(struct MHD_Connection *c, char *buf, size_t n) {
    snprintf(buf, n, "?");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)n);
}

/* ------------------------------------------------------------------ JSON views */

static const char *format_ext(dr_format f) {
    switch (f) {
    case DR_FORMAT_JPEG: return "jpg";
    case DR_FORMAT_TIFF: return "tif";
    case DR_FORMAT_WEBP: return "webp";
    default: return "png";
    }
}

static const char *format_type(dr_format f) {
    switch (f) {
    case DR_FORMAT_JPEG: return "image/jpeg";
    case DR_FORMAT_TIFF: return "image/tiff";
    case DR_FORMAT_WEBP: return "image/webp";
    default: return "image/png";
    }
}

/* With s->mu held. */
static cJSON *job_json(serve_state *s, const job *j) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "state", job_state_name(j->state));
    cJSON_AddStringToObject(o, "mode", dr_mode_name(j->mode));
    cJSON_AddNumberToObject(o, "seed", (double)j->seed);
    cJSON_AddNumberToObject(o, "width", j->width);
    cJSON_AddNumberToObject(o, "height", j->height);
    cJSON_AddNumberToObject(o, "position", serve_job_position(s, j));
    /* progress: sampler steps done, and tiles done within the step running */
    const int steps = j->steps > 0 ? j->steps : j->sampler_steps;
    double frac = 0;
    if (steps > 0) frac = (j->step + (j->tiles > 0 && j->tile < j->tiles ? (double)j->tile / j->tiles : 0)) / steps;
    if (j->state == JOB_DONE) frac = 1;
    cJSON_AddNumberToObject(o, "progress", frac);
    cJSON_AddNumberToObject(o, "step", j->step);
    cJSON_AddNumberToObject(o, "steps", steps);
    cJSON_AddNumberToObject(o, "tile", j->tile);
    cJSON_AddNumberToObject(o, "tiles", j->tiles);
    double now = serve_now();
    if (j->t_start > 0) cJSON_AddNumberToObject(o, "seconds", (j->t_end > 0 ? j->t_end : now) - j->t_start);
    if (j->state == JOB_DONE) {
        char url[80];
        snprintf(url, sizeof url, "/api/jobs/%s/result", j->id);
        cJSON_AddStringToObject(o, "result", url);
        cJSON_AddStringToObject(o, "result_type", format_type(j->result_format));
        cJSON_AddNumberToObject(o, "result_bytes", (double)j->result_size);
        cJSON_AddNumberToObject(o, "out_width", j->out_width);
        cJSON_AddNumberToObject(o, "out_height", j->out_height);
    }
    if (j->state == JOB_FAILED) cJSON_AddStringToObject(o, "error", j->error);
    return o;
}

static enum MHD_Result get_status(serve_http *h, struct MHD_Connection *c) {
    serve_state *s = h->s;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", dr_version());
    cJSON_AddStringToObject(o, "listen", h->hc.listen);
    cJSON_AddNumberToObject(o, "port", h->port);
    cJSON_AddBoolToObject(o, "exposed", h->hc.exposed);
    cJSON_AddNumberToObject(o, "threads", dr_get_threads());
    cJSON_AddBoolToObject(o, "bf16", dr_bf16_active());
    cJSON_AddNumberToObject(o, "max_upload", (double)h->hc.max_upload);
    cJSON_AddNumberToObject(o, "max_pixels", (double)h->lim.max_pixels);
    pthread_mutex_lock(&s->mu);
    serve_jobs_expire(s);
    int in_memory = 0;
    for (job *j = s->jobs; j; j = j->next) in_memory++;
    cJSON_AddNumberToObject(o, "queued", s->n_queued);
    cJSON_AddNumberToObject(o, "running", s->running);
    cJSON_AddNumberToObject(o, "queue_max", s->cfg.queue_max);
    cJSON_AddNumberToObject(o, "jobs_per_client", s->cfg.jobs_per_client);
    cJSON_AddNumberToObject(o, "jobs_in_memory", in_memory);
    cJSON_AddNumberToObject(o, "done", (double)s->done_total);
    cJSON_AddNumberToObject(o, "failed", (double)s->failed_total);
    cJSON_AddNumberToObject(o, "cancelled", (double)s->cancelled_total);
    cJSON_AddNumberToObject(o, "refused", (double)s->refused_total);
    pthread_mutex_unlock(&s->mu);
    return reply_json(c, 200, o);
}

static enum MHD_Result get_models(serve_http *h, struct MHD_Connection *c) {
    cJSON *arr = cJSON_CreateArray();
    for (int m = 1; m <= dr_mode_count() && m < SERVE_MAX_MODES; m++) {
        const serve_model *sm = &h->s->models[m];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "mode", dr_mode_name((dr_mode)m));
        cJSON_AddBoolToObject(o, "available", sm->model != NULL);
        if (!sm->model) {
            cJSON_AddStringToObject(o, "why", sm->why);
        } else {
            const char *base = strrchr(sm->path, '/');
            cJSON_AddStringToObject(o, "file", base ? base + 1 : sm->path);
            static const char *const keys[] = {"train_steps", "created", "prediction", "render_size", NULL};
            cJSON *meta = cJSON_AddObjectToObject(o, "meta");
            for (int k = 0; keys[k]; k++) {
                const char *v = dr_model_meta(sm->model, keys[k]);
                if (v) cJSON_AddStringToObject(meta, keys[k], v);
            }
            if (dr_mode_get((dr_mode)m)->flags & DR_MODE_TAKES_SCALE) {
                double lo, hi;
                dr_model_scale_range(sm->model, &lo, &hi);
                cJSON_AddNumberToObject(o, "scale_min", lo);
                cJSON_AddNumberToObject(o, "scale_max", hi);
            }
            cJSON *pr = cJSON_AddObjectToObject(o, "presets");
            for (int q = DR_QUALITY_DEFAULT; q <= DR_QUALITY_BEST; q++) {
                dr_params p;
                dr_params_init_quality(&p, (dr_mode)m, (dr_quality)q);
                cJSON *e = cJSON_AddObjectToObject(pr, dr_quality_name((dr_quality)q));
                cJSON_AddStringToObject(e, "sampler", dr_sampler_name(p.sampler));
                cJSON_AddNumberToObject(e, "steps", p.steps);
            }
        }
        cJSON_AddItemToArray(arr, o);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "models", arr);
    return reply_json(c, 200, root);
}

static enum MHD_Result post_job(serve_http *h, struct MHD_Connection *c, req_ctx *rc) {
    char err[768];
    serve_request rq;
    int st = serve_request_parse(rc->body ? rc->body : "", rc->n, &h->lim, &rq, err, sizeof err);
    if (st) return reply_error(c, st, "%s", err);
    char client[64], id[33];
    client_of(c, client, sizeof client);
    st = serve_job_submit(h->s, &rq, client, id, err, sizeof err);
    serve_request_free(&rq);
    if (st) return reply_error(c, st, "%s", err);
    pthread_mutex_lock(&h->s->mu);
    job *j = serve_job_find(h->s, id);
    cJSON *o = j ? job_json(h->s, j) : NULL;
    pthread_mutex_unlock(&h->s->mu);
    if (!o) return reply_error(c, 410, "the job ended before it could be described");
    char loc[64];
    snprintf(loc, sizeof loc, "/api/jobs/%s", id);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!txt) return reply_error(c, 500, "out of memory");
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Location", loc);
    add_common_headers(r, 1);
    enum MHD_Result ret = MHD_queue_response(c, 202, r);
    MHD_destroy_response(r);
    return ret;
}

/* ------------------------------------------------------------------ events */

typedef struct {
    serve_http *h;
    char id[33];
    uint64_t seen;
    int ended;
} sse_ctx;

/* Server-Sent Events: one "progress" event per change, "end" with the final
 * state, a comment every 2 s so a closed client is noticed (and the job kept
 * alive while someone watches). */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    sse_ctx *x = cls;
    serve_state *s = x->h->s;
    if (x->ended) return MHD_CONTENT_READER_END_OF_STREAM;
    pthread_mutex_lock(&s->mu);
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += 2;
    ssize_t n = 0;
    for (;;) {
        if (s->stopping) {
            n = snprintf(buf, max,
                         "event: end\ndata: {\"id\":\"%s\",\"state\":\"cancelled\",\"error\":\"the server "
                         "is stopping\"}\n\n",
                         x->id);
            x->ended = 1;
            break;
        }
        job *j = serve_job_find(s, x->id);
        if (!j) {
            n = snprintf(buf, max, "event: end\ndata: {\"id\":\"%s\",\"state\":\"gone\"}\n\n", x->id);
            x->ended = 1;
            break;
        }
        if (j->version != x->seen) {
            x->seen = j->version;
            int ended = j->state == JOB_DONE || j->state == JOB_FAILED || j->state == JOB_CANCELLED;
            cJSON *o = job_json(s, j);
            char *txt = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            n = snprintf(buf, max, "event: %s\ndata: %s\n\n", ended ? "end" : "progress", txt ? txt : "{}");
            free(txt);
            if (n < 0 || (size_t)n >= max) n = snprintf(buf, max, ": event too large\n\n");
            x->ended = ended;
            break;
        }
        if (pthread_cond_timedwait(&s->changed, &s->mu, &dl) == ETIMEDOUT) {
            n = snprintf(buf, max, ": keep-alive\n\n");
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static enum MHD_Result get_events(serve_http *h, struct MHD_Connection *c, const char *id) {
    sse_ctx *x = calloc(1, sizeof *x);
    if (!x) return reply_error(c, 503, "out of memory");
    x->h = h;
    snprintf(x->id, sizeof x->id, "%s", id);
    x->seen = (uint64_t)-1;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8192, sse_read, x, free);
    if (!r) {
        free(x);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    add_common_headers(r, 1);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result job_route(serve_http *h, struct MHD_Connection *c, const char *method, const char *rest) {
    /* rest: "ID", "ID/events" or "ID/result" */
    char id[33];
    size_t n = strcspn(rest, "/");
    const char *sub = rest[n] == '/' ? rest + n + 1 : NULL;
    if (n != 32) return reply_error(c, 404, "no such job");
    for (size_t i = 0; i < 32; i++)
        if (!((rest[i] >= '0' && rest[i] <= '9') || (rest[i] >= 'a' && rest[i] <= 'f')))
            return reply_error(c, 404, "no such job");
    memcpy(id, rest, 32);
    id[32] = 0;
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    serve_state *s = h->s;
    if (sub && !strcmp(sub, "events")) {
        if (!is_get) return reply_error(c, 405, "use GET for the events");
        pthread_mutex_lock(&s->mu);
        int found = serve_job_find(s, id) != NULL;
        pthread_mutex_unlock(&s->mu);
        if (!found) return reply_error(c, 404, "no such job: it ended long ago, was cancelled, or never existed");
        return get_events(h, c, id);
    }
    if (sub && strcmp(sub, "result")) return reply_error(c, 404, "no such resource");
    pthread_mutex_lock(&s->mu);
    job *j = serve_job_find(s, id);
    if (!j) {
        pthread_mutex_unlock(&s->mu);
        return reply_error(c, 404, "no such job: it ended long ago, was cancelled, or never existed");
    }
    if (sub) { /* the result */
        if (!is_get) {
            pthread_mutex_unlock(&s->mu);
            return reply_error(c, 405, "use GET for the result");
        }
        if (j->state != JOB_DONE) {
            job_state st = j->state;
            char msg[600];
            snprintf(msg, sizeof msg, "%s", j->error);
            pthread_mutex_unlock(&s->mu);
            if (st == JOB_FAILED) return reply_error(c, 409, "the job failed: %s", msg);
            return reply_error(c, 409, "the job is %s: there is no result yet", job_state_name(st));
        }
        struct MHD_Response *r = MHD_create_response_from_buffer(j->result_size, j->result, MHD_RESPMEM_MUST_COPY);
        char disp[SERVE_NAME_MAX + 64];
        snprintf(disp, sizeof disp, "attachment; filename=\"%s_%s.%s\"", j->name[0] ? j->name : "restored",
                 dr_mode_name(j->mode), format_ext(j->result_format));
        const char *type = format_type(j->result_format);
        pthread_mutex_unlock(&s->mu);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, "Content-Type", type);
        MHD_add_response_header(r, "Content-Disposition", disp);
        add_common_headers(r, 1);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (is_get) {
        cJSON *o = job_json(s, j);
        pthread_mutex_unlock(&s->mu);
        return reply_json(c, 200, o);
    }
    if (!strcmp(method, "DELETE")) {
        const char *was = job_state_name(j->state);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "was", was);
        cJSON_AddStringToObject(o, "state",
                                j->state == JOB_QUEUED || j->state == JOB_RUNNING ? "cancelled" : "removed");
        serve_job_remove(s, j);
        pthread_mutex_unlock(&s->mu);
        return reply_json(c, 200, o);
    }
    pthread_mutex_unlock(&s->mu);
    return reply_error(c, 405, "%s is not allowed here: use GET or DELETE", method);
}

/* ------------------------------------------------------------------ routing */

static enum MHD_Result route(serve_http *h, struct MHD_Connection *c, const char *url, const char *method,
                             req_ctx *rc) {
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (strncmp(url, "/api/", 5) != 0) {
        if (!is_get) return reply_error(c, 405, "%s is not allowed here", method);
        const char *want = strcmp(url, "/") == 0 ? "/index.html" : url;
        for (int i = 0; i < serve_page_count; i++)
            if (!strcmp(want, serve_page_files[i].path)) {
                struct MHD_Response *r = MHD_create_response_from_buffer(
                    serve_page_files[i].size, (void *)serve_page_files[i].data, MHD_RESPMEM_PERSISTENT);
                if (!r) return MHD_NO;
                MHD_add_response_header(r, "Content-Type", serve_page_files[i].type);
                MHD_add_response_header(r, "Content-Security-Policy",
                                        "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
                                        "style-src 'self'; script-src 'self'; frame-ancestors 'none'");
                MHD_add_response_header(r, "Cache-Control", "no-cache");
                add_common_headers(r, 0);
                enum MHD_Result ret = MHD_queue_response(c, 200, r);
                MHD_destroy_response(r);
                return ret;
            }
        return reply_error(c, 404, "no such page");
    }
    if (!strcmp(url, "/api/status")) {
        if (!is_get) return reply_error(c, 405, "use GET for the status");
        return get_status(h, c);
    }
    if (!strcmp(url, "/api/models")) {
        if (!is_get) return reply_error(c, 405, "use GET for the models");
        return get_models(h, c);
    }
    if (!strcmp(url, "/api/jobs")) {
        if (strcmp(method, "POST")) return reply_error(c, 405, "use POST to submit a job");
        if (rc->too_large)
            return reply_error(c, 413, "the request is larger than the limit of %zu bytes", h->hc.max_upload);
        return post_job(h, c, rc);
    }
    if (!strncmp(url, "/api/jobs/", 10)) return job_route(h, c, method, url + 10);
    return reply_error(c, 404, "no such API endpoint");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    serve_http *h = cls;
    req_ctx *rc = *con_cls;
    if (!rc) {
        /* first call: the headers are in, the body is not. Refuse early what
         * can be refused from the headers alone. */
        rc = calloc(1, sizeof *rc);
        if (!rc) return MHD_NO;
        *con_cls = rc;
        const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
        if (!host_allowed(h, host))
            return reply_error(c, 403,
                               "Host \"%.100s\" is not accepted: open the page at http://127.0.0.1:%d/, or "
                               "start the server with --allow-host NAME",
                               host ? host : "", h->port);
        int changes = strcmp(method, "GET") && strcmp(method, "HEAD");
        if (changes && !origin_ok(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin"), host))
            return reply_error(c, 403, "a page from another site may not use this server");
        if (!strcmp(method, "POST")) {
            const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
            if (!ct || strncasecmp(ct, "application/json", 16) != 0)
                return reply_error(c, 415, "send the job as JSON (Content-Type: application/json)");
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            if (cl && strtoull(cl, NULL, 10) > h->hc.max_upload)
                return reply_error(c, 413, "the request is %s bytes, more than the limit of %zu", cl, h->hc.max_upload);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rc->too_large || rc->n + n > h->hc.max_upload) { /* a chunked body over the limit: drop it */
            rc->too_large = 1;
            free(rc->body);
            rc->body = NULL;
            rc->n = rc->cap = 0;
            return MHD_YES;
        }
        if (rc->n + n + 1 > rc->cap) {
            size_t cap = rc->cap ? rc->cap * 2 : 65536;
            while (cap < rc->n + n + 1) cap *= 2;
            if (cap > h->hc.max_upload + 1) cap = h->hc.max_upload + 1;
            char *b = realloc(rc->body, cap);
            if (!b) {
                rc->too_large = 1;
                return MHD_YES;
            }
            rc->body = b;
            rc->cap = cap;
        }
        memcpy(rc->body + rc->n, upload, n);
        rc->n += n;
        rc->body[rc->n] = 0;
        return MHD_YES;
    }
    return route(h, c, url, method, rc);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    req_ctx *rc = *con_cls;
    if (rc) {
        free(rc->body);
        free(rc);
        *con_cls = NULL;
    }
}

serve_http *serve_http_start(serve_state *s, const serve_http_config *hc, serve_limits lim, char *err, size_t errn) {
    serve_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    h->s = s;
    h->hc = *hc;
    h->lim = lim;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
    if (hc->verbose) flags |= MHD_USE_ERROR_LOG;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, hc->listen, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)hc->port);
    } else if (inet_pton(AF_INET6, hc->listen, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)hc->port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errn, "--listen %s: not an IPv4 or IPv6 address", hc->listen);
        free(h);
        return NULL;
    }
    h->d = MHD_start_daemon(flags, (uint16_t)hc->port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errn, "cannot listen on %s port %d: %s", hc->listen, hc->port,
                 errno ? strerror(errno) : "libmicrohttpd refused to start");
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di && di->port ? di->port : hc->port;
    return h;
}

int serve_http_port(const serve_http *h) { return h->port; }

void serve_http_stop(serve_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    free(h);
}
