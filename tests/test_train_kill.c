/*
 * test_train_kill.c - SIGKILL at random moments of a training run, many
 * times, with the checkpoint written after every step so that most kills
 * land inside a checkpoint write (temp file written, fsync'd, renamed).
 *
 * Each round forks a child that runs dr_train (resuming from the checkpoint
 * when there is one) and kills it with SIGKILL after a random delay. After
 * every kill:
 *  - the checkpoint, if one was ever written, loads (checksum and all) and
 *    its step never goes back;
 *  - a temp file seen after the kill shows the kill hit a write; the next
 *    run removes it.
 * When a child finally reaches the last step, its state must equal, bit for
 * bit, that of an uninterrupted run: nothing was lost or replayed twice. Then
 * the chain starts over, until enough kills have landed inside a write.
 *
 * All training runs happen in children: the parent never starts OpenMP's
 * thread pool, which does not survive fork().
 */
#include "testutil.h"
#include "train/checkpoint.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEPS 24
#define MAX_ROUNDS 600
#define MIN_MID_WRITE 5

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

/* Child: train to STEPS, resuming if the checkpoint exists; exit 0 on success. */
static pid_t spawn_train(const char *out) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dr_set_threads(1);
        struct stat st;
        dr_train_options o = options(out, stat(out, &st) == 0 ? out : NULL);
        _exit(dr_train(&o) == DR_OK ? 0 : 3);
    }
    return pid;
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

int main(void) {
    make_dataset();
    char ref[1200], kil[1200];
    snprintf(ref, sizeof ref, "%s/ref.ckpt", g_dir);
    snprintf(kil, sizeof kil, "%s/killed.ckpt", g_dir);

    /* the uninterrupted run, and how long it takes */
    const double t0 = now_ms();
    int status = 0;
    pid_t p = spawn_train(ref);
    CHECK(p > 0 && waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "uninterrupted run failed (status %d)", status);
    const double run_ms = now_ms() - t0;
    printf("uninterrupted: %d steps in %.0f ms\n", STEPS, run_ms);

    /* killed runs: each delay is uniform in [2 ms, 2 ms + 4 steps' time].
     * A run that reaches the last step is compared with the uninterrupted one
     * and the chain starts over, until at least MIN_MID_WRITE kills hit a
     * checkpoint write (how many do depends on the machine and the build:
     * sanitizers slow the steps more than the writes). */
    test_rng r = {2024};
    const double span = 4.0 * run_ms / STEPS;
    int kills = 0, mid_write = 0, last_step = -1, finished = 0, loads = 0, round = 0;
    char seen[256] = "", now_name[256];
    train_state a;
    const int ref_ok = checkpoint_load(&a, ref) == DR_OK;
    CHECK(ref_ok, "reference checkpoint: %s", dr_last_error());
    for (; ref_ok && round < MAX_ROUNDS && (mid_write < MIN_MID_WRITE || !finished); round++) {
        const unsigned delay_us = (unsigned)((2.0 + span * test_rng_uniform(&r)) * 1e3);
        p = spawn_train(kil);
        if (p <= 0) {
            CHECK(0, "fork failed");
            break;
        }
        usleep(delay_us);
        kill(p, SIGKILL);
        if (waitpid(p, &status, 0) != p) {
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
    printf("%d kills (%d during a checkpoint write), %d checkpoint loads, %d finished chains, %d rounds\n", kills,
           mid_write, loads, finished, round);
    CHECK(finished >= 1, "no killed chain finished in %d rounds", MAX_ROUNDS);
    CHECK(kills >= 10, "only %d kills: the delays do not exercise the run", kills);
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
