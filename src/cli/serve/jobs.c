/* The job queue: jobs run one at a time on all threads, in a bounded queue,
 * on one worker thread. Every field of every job is guarded by s->mu; the
 * worker drops the lock while dr_restore runs (its progress callback takes it
 * for a moment to publish the step). */
#include "serve.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *job_state_name(job_state s) {
    switch (s) {
    case JOB_QUEUED: return "queued";
    case JOB_RUNNING: return "running";
    case JOB_DONE: return "done";
    case JOB_FAILED: return "failed";
    default: return "cancelled";
    }
}

double serve_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 128 bits from the kernel: ids cannot be guessed by another client. */
static int random_id(char id[33]) {
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f) return -1;
    size_t got = fread(b, 1, sizeof b, f);
    fclose(f);
    if (got != sizeof b) return -1;
    for (int i = 0; i < 16; i++) snprintf(id + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static uint64_t random_seed(void) {
    char id[33];
    if (random_id(id) != 0) return (uint64_t)time(NULL);
    return strtoull(id + 19, NULL, 16) & ((1ull << 53) - 1); /* 52 bits: exact in JSON */
}

static void job_free(job *j) {
    serve_request_free(&j->rq);
    free(j->result);
    free(j);
}

static void unlink_job(serve_state *s, job *j) {
    for (job **pp = &s->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            return;
        }
}

static void changed(serve_state *s, job *j) {
    j->version++;
    pthread_cond_broadcast(&s->changed);
}

int serve_state_init(serve_state *s, const serve_config *cfg) {
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->changed, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

job *serve_job_find(serve_state *s, const char *id) {
    for (job *j = s->jobs; j; j = j->next)
        if (j->t_touch >= 0 && strcmp(j->id, id) == 0) { /* t_touch < 0: removed, ending */
            j->t_touch = serve_now();
            return j;
        }
    return NULL;
}

int serve_job_position(serve_state *s, const job *j) {
    if (j->state != JOB_QUEUED) return 0;
    int pos = 1;
    for (const job *o = s->jobs; o; o = o->next) /* newest first: count the older queued ones */
        if (o != j && o->state == JOB_QUEUED && o->t_submit <= j->t_submit) pos++;
    return pos;
}

int serve_job_submit(serve_state *s, serve_request *rq, const char *client, char id[33], char *err, size_t errn) {
    if ((int)rq->mode >= SERVE_MAX_MODES || !s->models[rq->mode].model) {
        snprintf(err, errn, "%s: this server cannot %s", s->models[rq->mode].why, dr_mode_name(rq->mode));
        return 422;
    }
    job *j = calloc(1, sizeof *j);
    if (!j || random_id(j->id) != 0) {
        free(j);
        snprintf(err, errn, "the server is out of memory");
        return 503;
    }
    pthread_mutex_lock(&s->mu);
    serve_jobs_expire(s);
    int st = 0;
    int mine = 0;
    for (job *o = s->jobs; o; o = o->next)
        mine += (o->state == JOB_QUEUED || o->state == JOB_RUNNING) && strcmp(o->client, client) == 0;
    if (s->stopping) {
        st = 503;
        snprintf(err, errn, "the server is stopping");
    } else if (s->n_queued >= s->cfg.queue_max) {
        st = 503;
        snprintf(err, errn, "the server is busy: %d jobs are waiting. Try again in a moment.", s->n_queued);
    } else if (mine >= s->cfg.jobs_per_client) {
        st = 429;
        snprintf(err, errn, "you already have %d jobs waiting or running; wait for one to finish", mine);
    }
    if (st) {
        s->refused_total++;
        pthread_mutex_unlock(&s->mu);
        free(j);
        return st;
    }
    j->rq = *rq;
    memset(rq, 0, sizeof *rq);
    j->mode = j->rq.mode;
    if (!j->rq.seed_given) j->rq.params.seed = random_seed();
    j->seed = j->rq.params.seed;
    j->width = j->rq.image.width;
    j->height = j->rq.image.height;
    j->sampler_steps = j->rq.params.steps;
    snprintf(j->client, sizeof j->client, "%s", client);
    snprintf(j->name, sizeof j->name, "%s", j->rq.name);
    j->state = JOB_QUEUED;
    j->t_submit = j->t_touch = serve_now();
    j->next = s->jobs;
    s->jobs = j;
    s->n_queued++;
    memcpy(id, j->id, 33);
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void serve_job_remove(serve_state *s, job *j) {
    if (j->state == JOB_RUNNING) {
        /* the worker owns it until dr_restore returns: it frees it then */
        j->cancel = 1;
        j->t_touch = -1; /* marks "forget when it stops" */
        return;
    }
    if (j->state == JOB_QUEUED) {
        s->n_queued--;
        s->cancelled_total++;
    }
    unlink_job(s, j);
    j->state = JOB_CANCELLED;
    changed(s, j);
    job_free(j);
}

void serve_jobs_expire(serve_state *s) {
    double now = serve_now();
    job **pp = &s->jobs;
    while (*pp) {
        job *j = *pp;
        int ended = j->state == JOB_DONE || j->state == JOB_FAILED || j->state == JOB_CANCELLED;
        if (ended && now - j->t_touch > s->cfg.keep_seconds) {
            *pp = j->next;
            job_free(j);
            continue;
        }
        if (!ended && j->t_touch >= 0 && now - j->t_touch > s->cfg.abandon_seconds) {
            /* nobody has asked about it: the client went away */
            if (j->state == JOB_RUNNING) {
                j->cancel = 1;
                j->t_touch = -1;
            } else {
                *pp = j->next;
                s->n_queued--;
                s->cancelled_total++;
                job_free(j);
                continue;
            }
        }
        pp = &j->next;
    }
}

/* ------------------------------------------------------------------ worker */

typedef struct {
    serve_state *s;
    job *j;
} progress_ctx;

static void on_progress(int step, int steps, void *user) {
    progress_ctx *c = user;
    pthread_mutex_lock(&c->s->mu);
    c->j->step = step;
    c->j->steps = steps;
    c->j->tile = 0; /* the next step starts */
    changed(c->s, c->j);
    pthread_mutex_unlock(&c->s->mu);
}

static void on_tile(int tile, int tiles, void *user) {
    progress_ctx *c = user;
    pthread_mutex_lock(&c->s->mu);
    c->j->tile = tile;
    c->j->tiles = tiles;
    changed(c->s, c->j);
    pthread_mutex_unlock(&c->s->mu);
}

static void run_job(serve_state *s, job *j) {
    /* the request is the worker's alone while the job runs (state RUNNING) */
    serve_request *rq = &j->rq;
    dr_params p = rq->params;
    progress_ctx pc = {s, j};
    p.progress = on_progress;
    p.progress_tile = on_tile;
    p.user = &pc;
    p.cancel = &j->cancel;
    dr_image out = {0};
    int rc = dr_restore(s->models[j->mode].model, &rq->image, rq->have_mask ? &rq->mask : NULL, &p, &out);
    char msg[512] = "";
    unsigned char *bytes = NULL;
    size_t nbytes = 0;
    dr_format fmt = rq->result_input_format ? rq->in_format : DR_FORMAT_PNG;
    if (rc == DR_OK) {
        dr_save_options so;
        dr_save_options_init(&so);
        rc = dr_image_encode(fmt, &out, &so, "result", &bytes, &nbytes);
    }
    if (rc != DR_OK && rc != DR_ERR_CANCELLED) snprintf(msg, sizeof msg, "%s", dr_last_error());
    int ow = out.width, oh = out.height;
    dr_image_free(&out);
    serve_request_free(rq);

    pthread_mutex_lock(&s->mu);
    j->t_end = serve_now();
    if (rc == DR_OK) {
        j->state = JOB_DONE;
        j->result = bytes;
        j->result_size = nbytes;
        j->result_format = fmt;
        j->out_width = ow;
        j->out_height = oh;
        s->done_total++;
    } else if (rc == DR_ERR_CANCELLED) {
        j->state = JOB_CANCELLED;
        s->cancelled_total++;
    } else {
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof j->error, "%s", msg);
        s->failed_total++;
    }
    s->running = 0;
    changed(s, j);
    if (s->cfg.log_jobs) /* the client's address and the mode only: never the photo's name */
        fprintf(stderr, "diffrestore serve: %s %dx%d from %s: %s in %.1f s%s%s\n", dr_mode_name(j->mode), j->width,
                j->height, j->client, job_state_name(j->state), j->t_end - j->t_start, j->error[0] ? ": " : "",
                j->error);
    if (j->t_touch < 0) { /* removed or abandoned while it ran */
        unlink_job(s, j);
        job_free(j);
    } else {
        j->t_touch = serve_now();
    }
    pthread_mutex_unlock(&s->mu);
    malloc_trim(0); /* give the job's buffers back to the system: idle memory stays idle */
}

static void *worker_main(void *arg) {
    serve_state *s = arg;
    dr_set_threads(s->cfg.threads);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stopping && s->n_queued == 0) pthread_cond_wait(&s->work, &s->mu);
        if (s->stopping) break;
        job *next = NULL; /* the oldest queued job */
        for (job *j = s->jobs; j; j = j->next)
            if (j->state == JOB_QUEUED && (!next || j->t_submit <= next->t_submit)) next = j;
        if (!next) {
            s->n_queued = 0;
            continue;
        }
        next->state = JOB_RUNNING;
        next->t_start = serve_now();
        s->n_queued--;
        s->running = 1;
        changed(s, next);
        pthread_mutex_unlock(&s->mu);
        run_job(s, next);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int serve_state_start(serve_state *s) {
    if (pthread_create(&s->worker, NULL, worker_main, s) != 0) return -1;
    s->worker_started = 1;
    return 0;
}

void serve_state_quiesce(serve_state *s) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    for (job *j = s->jobs; j; j = j->next) j->cancel = 1;
    pthread_cond_broadcast(&s->work);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->mu);
}

void serve_state_stop(serve_state *s) {
    serve_state_quiesce(s);
    if (s->worker_started) pthread_join(s->worker, NULL);
    s->worker_started = 0;
    while (s->jobs) {
        job *j = s->jobs;
        s->jobs = j->next;
        job_free(j);
    }
    for (int m = 0; m < SERVE_MAX_MODES; m++) dr_model_free(s->models[m].model), s->models[m].model = NULL;
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->mu);
}
