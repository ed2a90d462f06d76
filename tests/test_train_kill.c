/*
 * test_train_kill.c - SIGKILL at random moments of a training run, many
 * times, with the checkpoint written after every step so that many kills
 * land inside a checkpoint write (temp file written, fsync'd, renamed).
 *
 * Each round forks a child that runs dr_train (resuming from the checkpoint
 * when there is one) and kills it with SIGKILL. After every kill:
 *  - the checkpoint, if one was ever written, loads (checksum and all) and
 *    its step never goes back;
 *  - a temp file seen after the kill shows the kill hit a write; the next
 *    run removes it.
 * When a child finally reaches the last step, its state must equal, bit for
 * bit, that of an uninterrupted run: nothing was lost or replayed twice. Then
 * the chain starts over, until enough kills have landed inside a write.
 *
 * When to kill is taken from the child's own progress, not from a clock
 * started at fork: the child reports every finished step on a pipe from the
 * progress callback, which runs just before that step's checkpoint write.
 * The parent waits for 1-3 reports (or none: a kill during start-up and
 * resume), then kills after a delay drawn over one step-and-write cycle as
 * measured on this machine (the median of the last cycles seen). So the share
 * of kills that land in a write is about write time / cycle time, whatever
 * the time a resume takes (loading and verifying tens of MB) compared with a
 * step: an earlier version drew delays from fork over a span of a few steps,
 * and on machines where a resume takes longer than that span no chain ever
 * finished (issue 13).
 *
 * Bound: at most MAX_ROUNDS rounds, each one start-up (dataset, checkpoint
 * load) plus at most four cycles; about 20 rounds are needed in practice.
 *
 * All training runs happen in children: the parent never starts OpenMP's
 * thread pool, which does not survive fork().
 */
#include "testutil.h"
#include "train/checkpoint.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEPS         24
#define MAX_ROUNDS    400
#define MIN_MID_WRITE 5
#define MIN_KILLS     10

static char g_dir[1024], g_data[1100];

static void make_dataset(void) {
    snprintf(g_dir, sizeof g_dir, "%s", test_tmpdir());
    snprintf(g_data, sizeof g_data, "%s/data", g_dir);
    mkdir(g_data, 0755);
    test_rng r = {7};
    for (int k = 0; k < 3; k++) {
        dr_image img;
        if (dr_image_alloc(&img, 40, 36, 3, 8) != DR_OK) abort();
        for (size_t i = 0; i < (size_t)40 * 36 * 3; i++) img.data[i] = (uint16_t)(test_rng_u64(&r) % 256);
        char path[1200];
        snprintf(path, sizeof path, "%s/img%d.png", g_data, k);
        CHECK(dr_image_save(path, &img, NULL) == DR_OK, "save %s: %s", path, dr_last_error());
        dr_image_free(&img);
    }
}

/* Many parameters and little compute (one 8x8 patch a step), so that writing
 * the checkpoint (4 arrays of the parameters' size, plus fsync) takes most of
 * a step's time and most kills land inside a write. */
static dr_train_options options(const char *out, const char *resume) {
    dr_train_options o;
    dr_train_options_init(&o);
    o.mode = DR_MODE_INPAINT;
    dr_unet_config_parse(&o.config, "base=32,mult=1,2,2,res=1,attn=,groups=8");
    o.data_dir = g_data;
    o.out_path = out;
    o.resume_path = resume;
    o.steps = STEPS;
    o.batch = 1;
    o.patch = 8;
    o.lr = 1e-3f;
    o.warmup_steps = 3;
    o.checkpoint_every = 1;
    o.val_every = 0;
    o.seed = 11;
    o.target_scale = 1.0f;
    return o;
}

/* Child: train to STEPS, resuming if the checkpoint exists; exit 0 on
 * success. Every finished step is written (an int, atomic on a pipe) to
 * g_report_fd just before that step's checkpoint write begins. */
static int g_report_fd = -1;
static void report_step(const dr_train_progress *p, void *user) {
    (void)user;
    const int step = p->step;
    if (write(g_report_fd, &step, sizeof step) != (ssize_t)sizeof step) _exit(4);
}
typedef struct {
    pid_t pid;
    int fd; /* read end of the child's report pipe */
} child;
static child spawn_train(const char *out) {
    child c = {-1, -1};
    int fds[2];
    if (pipe(fds) != 0) return c;
    fflush(stdout);
    c.pid = fork();
    if (c.pid == 0) {
        close(fds[0]);
        g_report_fd = fds[1];
        dr_set_threads(1);
        struct stat st;
        dr_train_options o = options(out, stat(out, &st) == 0 ? out : NULL);
        o.progress = report_step;
        _exit(dr_train(&o) == DR_OK ? 0 : 3);
    }
    close(fds[1]);
    if (c.pid < 0)
        close(fds[0]);
    else
        c.fd = fds[0];
    return c;
}
/* The next report of the child: 1 (step in *step), 0 at end of file (the
 * child exited or died), -1 on a read error. */
static int next_report(const child *c, int *step) {
    size_t got = 0;
    while (got < sizeof *step) {
        const ssize_t n = read(c->fd, (char *)step + got, sizeof *step - got);
        if (n == 0) return 0;
        if (n < 0) return -1;
        got += (size_t)n;
    }
    return 1;
}

/* How many temp files of the checkpoint there are; the first one's name in
 * first (if given), so that a temp file left by an earlier kill (it stays
 * until the next run gets past its start) is not counted as a new hit. */
static int count_temps_named(const char *name, char *first, size_t n_first) {
    char prefix[256];
    snprintf(prefix, sizeof prefix, ".%s.tmp", name);
    DIR *d = opendir(g_dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    if (first && n_first) first[0] = 0;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            if (n == 0 && first) snprintf(first, n_first, "%s", e->d_name);
            n++;
        }
    closedir(d);
    return n;
}
static int count_temps(const char *name) { return count_temps_named(name, NULL, 0); }

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* The last cycles (report to report: a checkpoint write and a step) seen in
 * any run, and their median: the span a kill delay is drawn from. */
#define N_CYCLES 15
static double g_cycles[N_CYCLES];
static int g_n_cycles;
static void cycle_add(double ms) { g_cycles[g_n_cycles++ % N_CYCLES] = ms; }
static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double cycle_median(void) {
    const int n = g_n_cycles < N_CYCLES ? g_n_cycles : N_CYCLES;
    double v[N_CYCLES];
    memcpy(v, g_cycles, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n ? v[n / 2] : 1.0;
}

static void sleep_ms(double ms) {
    struct timespec ts = {(time_t)(ms / 1e3), (long)(fmod(ms, 1e3) * 1e6)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int main(void) {
    make_dataset();
    char ref[1200], kil[1200];
    snprintf(ref, sizeof ref, "%s/ref.ckpt", g_dir);
    snprintf(kil, sizeof kil, "%s/killed.ckpt", g_dir);

    /* the uninterrupted run: its start-up and its cycles */
    double t0 = now_ms(), t_prev = t0;
    int status = 0, step = 0, reports = 0;
    child c = spawn_train(ref);
    CHECK(c.pid > 0, "fork failed");
    if (c.pid <= 0) return test_summary("test_train_kill");
    double startup_ms = 0;
    while (next_report(&c, &step) == 1) {
        const double t = now_ms();
        if (reports++ == 0)
            startup_ms = t - t0;
        else
            cycle_add(t - t_prev);
        t_prev = t;
    }
    close(c.fd);
    CHECK(waitpid(c.pid, &status, 0) == c.pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "uninterrupted run failed (status %d)", status);
    CHECK(reports == STEPS, "the uninterrupted run reported %d steps, want %d", reports, STEPS);
    printf("uninterrupted: %d steps in %.0f ms: start-up %.0f ms, then a step and its checkpoint write in %.1f ms "
           "(median)\n",
           STEPS, now_ms() - t0, startup_ms, cycle_median());

    /* killed runs. Each round waits for 0-3 step reports of its child (0: a
     * kill during start-up or resume, after a delay up to the last start-up
     * seen), then kills after a delay uniform over one cycle. A run that
     * reaches the last step is compared with the uninterrupted one and the
     * chain starts over, until at least MIN_MID_WRITE kills hit a checkpoint
     * write. */
    test_rng r = {2024};
    int kills = 0, mid_write = 0, last_step = -1, finished = 0, loads = 0, round = 0, by_wait[4] = {0};
    char seen[256] = "", now_name[256];
    train_state a;
    const int ref_ok = checkpoint_load(&a, ref) == DR_OK;
    CHECK(ref_ok, "reference checkpoint: %s", dr_last_error());
    for (; ref_ok && round < MAX_ROUNDS && (mid_write < MIN_MID_WRITE || kills < MIN_KILLS || !finished); round++) {
        const int wait_for = (int)(test_rng_u64(&r) % 4);
        by_wait[wait_for]++;
        t0 = now_ms();
        c = spawn_train(kil);
        if (c.pid <= 0) {
            CHECK(0, "fork failed");
            break;
        }
        int eof = 0, seen_reports = 0;
        t_prev = t0;
        while (seen_reports < wait_for) {
            const int got = next_report(&c, &step);
            if (got != 1) {
                eof = 1; /* the run finished (or failed: checked below) */
                break;
            }
            const double t = now_ms();
            if (seen_reports++ == 0)
                startup_ms = t - t0;
            else
                cycle_add(t - t_prev);
            t_prev = t;
        }
        if (!eof) {
            sleep_ms((wait_for == 0 ? startup_ms : cycle_median()) * test_rng_uniform(&r));
            kill(c.pid, SIGKILL);
        }
        close(c.fd);
        if (waitpid(c.pid, &status, 0) != c.pid) {
            CHECK(0, "waitpid failed");
            break;
        }
        int done = 0;
        if (WIFEXITED(status)) {
            CHECK(WEXITSTATUS(status) == 0, "round %d: the training run failed (exit %d)", round, WEXITSTATUS(status));
            if (WEXITSTATUS(status) != 0) break;
            done = 1;
        } else {
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "round %d: unexpected status %d", round, status);
            kills++;
        }
        /* a kill inside a write leaves a temp file with a new (mkstemp) name */
        if (count_temps_named("killed.ckpt", now_name, sizeof now_name) > 0 && strcmp(now_name, seen) != 0) {
            mid_write++;
            snprintf(seen, sizeof seen, "%s", now_name);
        }
        struct stat st;
        if (stat(kil, &st) == 0) {
            train_state s;
            const int rc = checkpoint_load(&s, kil);
            CHECK(rc == DR_OK, "round %d: after SIGKILL the checkpoint does not load: %s", round, dr_last_error());
            if (rc != DR_OK) break;
            loads++;
            CHECK(s.step >= last_step, "round %d: checkpoint step went back %d -> %d", round, last_step, s.step);
            last_step = s.step;
            if (done) {
                /* the chain reached the end: it must be the uninterrupted run, bit for bit */
                const size_t n = a.L.n_floats * sizeof(float);
                CHECK(s.step == STEPS && a.step == STEPS, "steps %d %d", a.step, s.step);
                CHECK(s.L.n_floats == a.L.n_floats && memcmp(a.params, s.params, n) == 0,
                      "killed-and-resumed params differ from the uninterrupted run");
                CHECK(memcmp(a.ema, s.ema, n) == 0, "EMA differs");
                CHECK(memcmp(a.adam_m, s.adam_m, n) == 0 && memcmp(a.adam_v, s.adam_v, n) == 0, "Adam state differs");
                CHECK(a.loss_smooth == s.loss_smooth, "smoothed loss differs");
                CHECK(count_temps("killed.ckpt") == 0, "temp files left after a finished run");
                finished++;
                remove(kil); /* start the chain again */
                last_step = -1;
            }
            train_state_free(&s);
        } else {
            CHECK(last_step < 0, "round %d: the checkpoint disappeared", round);
            CHECK(!done, "round %d: a finished run left no checkpoint", round);
        }
    }
    printf("%d kills (%d during a checkpoint write), %d checkpoint loads, %d finished chains, %d rounds "
           "(waiting for 0/1/2/3 reports: %d/%d/%d/%d)\n",
           kills, mid_write, loads, finished, round, by_wait[0], by_wait[1], by_wait[2], by_wait[3]);
    CHECK(finished >= 1, "no killed chain finished in %d rounds", round);
    CHECK(kills >= MIN_KILLS, "only %d kills in %d rounds: the delays do not exercise the run", kills, round);
    CHECK(mid_write >= MIN_MID_WRITE, "only %d kills hit a checkpoint write in %d rounds", mid_write, round);
    if (ref_ok) train_state_free(&a);

    /* the checkpoints are tens of MB: do not leave them in TMPDIR */
    char path[1300];
    const char *names[] = {"ref.ckpt", "ref.ckpt.csv", "killed.ckpt", "killed.ckpt.csv"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        remove(path);
    }
    return test_summary("test_train_kill");
}
