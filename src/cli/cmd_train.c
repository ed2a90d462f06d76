/* diffrestore train: train a model for one mode, with checkpoints and resume. */
#include "cli.h"
#include "progress.h"
#include "train_mpi.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char *HELP = "Usage: diffrestore train --mode MODE --data DIR --out CKPT [options]\n"
                          "Train a model on every PNG and JPEG below DIR. The checkpoint CKPT (weights,\n"
                          "EMA, Adam state, step) is written atomically every --checkpoint-every steps\n"
                          "and on Ctrl-C / SIGTERM; --resume continues exactly where it stopped.\n\n"
                          "  -m, --mode MODE          %s\n"
                          "      --data DIR           training images (recursive)\n"
                          "      --val DIR            validation images: val loss every --val-every steps\n"
                          "      --out CKPT           checkpoint file to write\n"
                          "      --resume CKPT        continue from a checkpoint (config, options and\n"
                          "                           random stream come from it)\n"
                          "      --init WEIGHTS       start from a weights file (e.g. the shipped ones):\n"
                          "                           its config, conventions and scale range, a fresh\n"
                          "                           Adam state; the EMA goes on averaging at its\n"
                          "                           full decay\n"
                          "      --export FILE        at the end, write the EMA weights as F16 safetensors\n"
                          "                           (with --resume and no --steps: export only)\n"
                          "      --config SPEC        U-Net, default " DR_UNET_CONFIG_DEFAULT "\n"
                          "      --steps N            total steps (default 10000)\n"
                          "      --batch B            batch size (default 16): the global batch, whatever\n"
                          "                           the number of ranks\n"
                          "      --micro-batch M      samples per forward and backward, M divides B\n"
                          "                           (default: B alone, B / ranks under MPI; kept on\n"
                          "                           --resume); the result depends on B and M, never\n"
                          "                           on the number of ranks (up to B / M)\n"
                          "      --patch P            crop size (default 64)\n"
                          "      --lr LR              AdamW learning rate (default 2e-4); with --resume,\n"
                          "                           the rate from the checkpoint's step on\n"
                          "      --warmup N           linear warmup steps (default 200)\n"
                          "      --anneal N[:K]       the run's last N steps (before --steps) in K equal\n"
                          "                           stages at LR/2, LR/4 ... LR/2^K (default K 2: the\n"
                          "                           two halvings of docs/TRAINING.md); with --resume:\n"
                          "                           from the checkpoint's step on (0: none, default)\n"
                          "      --weight-decay W     AdamW weight decay on weights (default 0)\n"
                          "      --clip C             gradient norm clip (default 1, 0 = off)\n"
                          "      --ema D              EMA decay (default 0.999)\n"
                          "      --dropout P          ResBlock dropout in training only (default 0);\n"
                          "                           restore never drops (with --resume: from the\n"
                          "                           checkpoint's step on)\n"
                          "      --cond-dropout P     zero each example's conditioning (the gray,\n"
                          "                           masked or small image) with probability P, so the\n"
                          "                           model also learns the unconditional case that\n"
                          "                           restore --guidance needs (default 0; kept on\n"
                          "                           --resume)\n"
                          "      --augment A          how training crops are turned: flip (a random\n"
                          "                           left-right mirror) or dihedral (also up-down and\n"
                          "                           transposed: all 8 rotations and mirrors) (default\n"
                          "                           flip; with --resume: from the checkpoint's step on)\n"
                          "      --zoom-max Z         full-resolution crops cover P..Z*P source pixels,\n"
                          "                           log-uniform, resampled to P: 1 = the photos' own\n"
                          "                           pixels only, the scale eval and restore see; 1..4\n"
                          "                           (default 4; validation always 4; with --resume:\n"
                          "                           from the checkpoint's step on)\n"
                          "      --ema-probe D[,D...] up to 4 more EMAs with these decays, from the EMA\n"
                          "                           the run starts with, validated beside it into\n"
                          "                           OUT.ema.csv (not saved in checkpoints): which\n"
                          "                           decay is best at this horizon, in one run\n"
                          "      --prediction P       v or eps (default v: docs/TRAINING.md's A/B)\n"
                          "      --loss-weight W      uniform, or min-snr[:GAMMA] (Min-SNR-gamma, default\n"
                          "                           gamma 5) (default uniform)\n"
                          "      --t-sampling S       uniform, or lognormal[:MEAN,STD] of the log-SNR\n"
                          "                           (default MEAN 2.4, STD 2.4, as EDM) (default uniform)\n"
                          "      --budget-cpu-minutes M  stop (checkpoint written, exit 0) once the run's\n"
                          "                           training CPU time, summed over resumes, reaches M:\n"
                          "                           recipes compared at equal CPU time\n"
                          "      --val-seed S         fixed validation crops, t and noise of seed S\n"
                          "                           (default: the training --seed)\n"
                          "      --val-batches N      validation crops: N batches of 16 (default 4: 64\n"
                          "                           crops); batch i is the same whatever N, so 32\n"
                          "                           extends the default's crops to 512\n"
                          "      --val-patch P        the validation crops' size while training (default:\n"
                          "                           the training --patch), e.g. 256 for restore's tiles;\n"
                          "                           measurement only, any resume may change it\n"
                          "      --validate[=params]  only print the val loss and x0 MSE of --init WEIGHTS\n"
                          "                           or --resume CKPT (its EMA; =params: its raw\n"
                          "                           parameters) on --val DIR's crops of --patch\n"
                          "                           pixels (default 64, whatever the model trained\n"
                          "                           at), then the x0 MSE by fifths of t (x0_by_t:\n"
                          "                           LO-HI MSE CROPS per band; the training log's\n"
                          "                           val_x0_band0..4), and exit\n"
                          "      --schedule S         cosine or linear (default cosine)\n"
                          "      --target-scale X     x0 = X * target (default: measured from the data)\n"
                          "      --scales A-B         superres scale factors (default %g-%g)\n"
                          "      --scale-dist D       superres: how each crop's factor is drawn in --scales:\n"
                          "                           uniform, or high (density rising linearly to 3x at\n"
                          "                           the top: mean 2 + 2 * 7/12 = 3.17 for 2-4)\n"
                          "                           (default uniform)\n"
                          "      --holes A-B          inpaint hole fraction (default %g-%g), for both\n"
                          "                           --masks generators\n"
                          "      --masks M            inpaint training masks: legacy (brush strokes and\n"
                          "                           boxes) or damage (thin scratches and branching\n"
                          "                           cracks, blotches, brush strokes, boxes)\n"
                          "                           (default legacy); validation always uses legacy\n"
                          "      --render-size R      colorize: crops from the photo as if downscaled to a\n"
                          "                           long side of R (x0.8-1.25 jitter), the working\n"
                          "                           resolution restore then uses (default 0: full size);\n"
                          "                           with --resume CKPT --export W only: the working\n"
                          "                           size written into W for restore\n"
                          "      --guidance W         with --resume CKPT --export W only: the\n"
                          "                           classifier-free guidance weight written into W,\n"
                          "                           restore's default for it (0..20; the checkpoint\n"
                          "                           must have trained with --cond-dropout)\n"
                          "      --seed S             random seed (default 1)\n"
                          "      --checkpoint-every N (default 250)\n"
                          "      --val-every N        (default 500)\n"
                          "      --log FILE           CSV log (default CKPT.csv)\n"
                          "  -t, --threads N          threads (default: all cores)\n"
                          "      --precision P        fp32 (default, the reference), bf16 or auto: convs,\n"
                          "                           linears and attention matmuls in bf16 with fp32 sums\n"
                          "                           (AVX512-BF16); weights, Adam state, GroupNorm, softmax\n"
                          "                           and loss stay fp32\n"
                          "  -q, --quiet              no progress line\n"
                          "  -h, --help               this help\n"
                          "Data-parallel on a cluster (a CLI built with MPI): launch the same command\n"
                          "with mpirun or srun, e.g.\n"
                          "  mpirun -np 4 -x OMP_NUM_THREADS=8 diffrestore train --mode superres \\\n"
                          "      --data DIR --out CKPT --batch 16\n"
                          "Each rank computes B / ranks samples of every batch; the gradients are summed\n"
                          "in a fixed order, so the run equals one process's with the same --batch and\n"
                          "--micro-batch bit for bit (ranks <= B / M; `info CKPT` shows both).\n"
                          "Rank 0 writes the checkpoint, log and export; any --resume works with any\n"
                          "number of ranks. A rank that fails takes the job down.\n"
                          "Outputs (checkpoint, log, export) never go into --data or --val and never\n"
                          "replace a file the run reads; their directories must exist.\n"
                          "Exit codes: 0 done, 1 failed, 2 usage error, 130 stopped by Ctrl-C (SIGINT),\n"
                          "143 by SIGTERM (the checkpoint is written first).\n";

typedef struct {
    int quiet;
    double reduce_sum; /* ranks > 1: the gradient exchange's wall time, summed */
    int reduce_steps;
} train_ui;

static void on_progress(const dr_train_progress *p, void *user) {
    train_ui *ui = user;
    if (p->ranks > 1 && !p->is_val) {
        ui->reduce_sum += p->reduce_seconds;
        ui->reduce_steps++;
    }
    char eta[32];
    progress_fmt_eta(eta, sizeof eta, (p->steps - p->step) / (p->steps_per_sec > 0 ? p->steps_per_sec : 1e-9));
    if (p->is_val) {
        progress_done();
        fprintf(stderr, "step %d: val loss %.5f, val x0 mse %.5f, noisiest fifth of t %.5f (train loss %.5f)\n",
                p->step, p->val_loss, p->val_x0_mse, p->val_x0_band[DR_VAL_T_BANDS - 1], p->loss_smooth);
    }
    if (!ui->quiet)
        progress_line("step %d/%d  loss %.5f (smoothed %.5f)  lr %.2g  |g| %.3f  %.2f steps/s  ETA %s", p->step,
                      p->steps, p->loss, p->loss_smooth, p->lr, p->grad_norm, p->steps_per_sec, eta);
}

static void on_log(const char *msg, void *user) {
    (void)user;
    progress_done();
    cli_eprintf("diffrestore train: %s\n", msg);
}

static int parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    float v = strtof(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

enum {
    O_DATA = OPT_CMD_BASE,
    O_VAL,
    O_OUT,
    O_RESUME,
    O_EXPORT,
    O_CONFIG,
    O_STEPS,
    O_BATCH,
    O_PATCH,
    O_LR,
    O_WARMUP,
    O_WD,
    O_CLIP,
    O_EMA,
    O_PRED,
    O_SCHED,
    O_TSCALE,
    O_SCALES,
    O_HOLES,
    O_SEED,
    O_CKPT_EVERY,
    O_VAL_EVERY,
    O_LOG,
    O_INIT,
    O_LOSS_WEIGHT,
    O_T_SAMPLING,
    O_BUDGET,
    O_VAL_SEED,
    O_VAL_BATCHES,
    O_VALIDATE,
    O_RENDER,
    O_MASKS,
    O_SCALE_DIST,
    O_MICRO,
    O_EMA_PROBE,
    O_DROPOUT,
    O_AUGMENT,
    O_ZOOM_MAX,
    O_ANNEAL,
    O_VAL_PATCH,
    O_COND_DROPOUT,
    O_GUIDANCE
};

/* "NAME" or "NAME:ARGS": ARGS after the colon, or NULL */
static const char *name_args(const char *s, const char *name) {
    const size_t n = strlen(name);
    if (strncmp(s, name, n) != 0) return NULL;
    if (s[n] == '\0') return "";
    return s[n] == ':' ? s + n + 1 : NULL;
}

/* Set one metadata key of an exported (F16) weights file in place. */
static int export_set_meta(const char *path, const char *key, const char *value) {
    dr_tensor_file tf;
    int rc = dr_tensor_file_read(path, &tf);
    if (rc != DR_OK) return rc;
    if ((rc = dr_tensor_file_set_meta(&tf, key, value)) == DR_OK) rc = dr_tensor_file_write(path, &tf, 1);
    dr_tensor_file_free(&tf);
    return rc;
}

/* "--batch, --seed": the long names of the options of kept[] whose bit is set
 * in given */
static void kept_names(const int *kept, unsigned n, unsigned given, const struct option *longopts, char *names,
                       size_t size) {
    size_t len = 0;
    names[0] = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!(given >> i & 1)) continue;
        const char *name = "mode";
        for (const struct option *lo = longopts; lo->name; lo++)
            if (lo->val == kept[i]) name = lo->name;
        len += (size_t)snprintf(names + len, len < size ? size - len : 0, "%s--%s", len ? ", " : "", name);
    }
}

int cmd_train(int argc, char **argv) {
    static const struct option longopts[] = {{"mode", required_argument, 0, 'm'},
                                             {"data", required_argument, 0, O_DATA},
                                             {"val", required_argument, 0, O_VAL},
                                             {"out", required_argument, 0, O_OUT},
                                             {"resume", required_argument, 0, O_RESUME},
                                             {"export", required_argument, 0, O_EXPORT},
                                             {"config", required_argument, 0, O_CONFIG},
                                             {"steps", required_argument, 0, O_STEPS},
                                             {"batch", required_argument, 0, O_BATCH},
                                             {"patch", required_argument, 0, O_PATCH},
                                             {"lr", required_argument, 0, O_LR},
                                             {"warmup", required_argument, 0, O_WARMUP},
                                             {"weight-decay", required_argument, 0, O_WD},
                                             {"clip", required_argument, 0, O_CLIP},
                                             {"ema", required_argument, 0, O_EMA},
                                             {"ema-probe", required_argument, 0, O_EMA_PROBE},
                                             {"dropout", required_argument, 0, O_DROPOUT},
                                             {"cond-dropout", required_argument, 0, O_COND_DROPOUT},
                                             {"guidance", required_argument, 0, O_GUIDANCE},
                                             {"augment", required_argument, 0, O_AUGMENT},
                                             {"zoom-max", required_argument, 0, O_ZOOM_MAX},
                                             {"anneal", required_argument, 0, O_ANNEAL},
                                             {"prediction", required_argument, 0, O_PRED},
                                             {"schedule", required_argument, 0, O_SCHED},
                                             {"target-scale", required_argument, 0, O_TSCALE},
                                             {"scales", required_argument, 0, O_SCALES},
                                             {"holes", required_argument, 0, O_HOLES},
                                             {"masks", required_argument, 0, O_MASKS},
                                             {"scale-dist", required_argument, 0, O_SCALE_DIST},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"checkpoint-every", required_argument, 0, O_CKPT_EVERY},
                                             {"val-every", required_argument, 0, O_VAL_EVERY},
                                             {"log", required_argument, 0, O_LOG},
                                             {"init", required_argument, 0, O_INIT},
                                             {"loss-weight", required_argument, 0, O_LOSS_WEIGHT},
                                             {"t-sampling", required_argument, 0, O_T_SAMPLING},
                                             {"budget-cpu-minutes", required_argument, 0, O_BUDGET},
                                             {"val-seed", required_argument, 0, O_VAL_SEED},
                                             {"val-batches", required_argument, 0, O_VAL_BATCHES},
                                             {"val-patch", required_argument, 0, O_VAL_PATCH},
                                             {"validate", optional_argument, 0, O_VALIDATE},
                                             {"render-size", required_argument, 0, O_RENDER},
                                             {"micro-batch", required_argument, 0, O_MICRO},
                                             CLI_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    const char *C = "train";
    dr_train_options o;
    dr_train_options_init(&o);
    cli_common c;
    cli_common_init(&c);
    int steps_given = 0, validate = 0, render_given = 0, lr_given = 0, opt;
    double guidance = -1; /* --guidance: written into an export */
    long long v;
    double lo, hi;
    optind = 1;
    /* options a checkpoint stores: on --resume they are kept, whatever is given */
    static const int kept[] = {'m',           O_CONFIG,     O_BATCH, O_PATCH,      O_WARMUP, O_WD,          O_CLIP,
                               O_EMA,         O_PRED,       O_SCHED, O_TSCALE,     O_SCALES, O_HOLES,       O_SEED,
                               O_LOSS_WEIGHT, O_T_SAMPLING, O_MASKS, O_SCALE_DIST, O_RENDER, O_COND_DROPOUT};
    unsigned kept_given = 0; /* bit i: kept[i] was given */
    /* of those, the ones --init takes from the weights (--mode must match them and
     * --target-scale is refused, in dr_train) */
    unsigned kept_by_weights = 0;
    for (unsigned i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (kept[i] == O_CONFIG || kept[i] == O_PRED || kept[i] == O_SCHED || kept[i] == O_SCALES)
            kept_by_weights |= 1u << i;
    while ((opt = getopt_long(argc, argv, "m:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        for (unsigned i = 0; i < sizeof kept / sizeof kept[0]; i++)
            if (opt == kept[i]) kept_given |= 1u << i;
        switch (opt) {
        case 'h': {
            char modes[128];
            cli_modes_with(0, modes, sizeof modes);
            dr_train_options d;
            dr_train_options_init(&d);
            printf(HELP, modes, d.scale_min, d.scale_max, d.hole_min, d.hole_max);
            return EXIT_DONE;
        }
        case 'm':
            o.mode = dr_mode_from_name(optarg);
            if (o.mode == DR_MODE_NONE) {
                char modes[128];
                cli_modes_with(0, modes, sizeof modes);
                return cli_usage_error(C, "--mode must be %s, not '%s'", modes, optarg);
            }
            break;
        case O_DATA: o.data_dir = optarg; break;
        case O_VAL: o.val_dir = optarg; break;
        case O_OUT: o.out_path = optarg; break;
        case O_RESUME: o.resume_path = optarg; break;
        case O_INIT: o.init_path = optarg; break;
        case O_EXPORT: o.export_path = optarg; break;
        case O_LOG: o.log_path = optarg; break;
        case O_CONFIG:
            if (dr_unet_config_parse(&o.config, optarg) != DR_OK) return cli_usage_error(C, "%s", dr_last_error());
            break;
        case O_STEPS:
            if (!cli_parse_int(optarg, 0, 100000000, &v))
                return cli_usage_error(C, "--steps needs a number, got '%s'", optarg);
            o.steps = (int)v;
            steps_given = 1;
            break;
        case O_BATCH:
            if (!cli_parse_int(optarg, 1, 1024, &v))
                return cli_usage_error(C, "--batch needs 1..1024, got '%s'", optarg);
            o.batch = (int)v;
            break;
        case O_MICRO:
            if (!cli_parse_int(optarg, 1, 1024, &v))
                return cli_usage_error(C, "--micro-batch needs 1..1024, got '%s'", optarg);
            o.micro_batch = (int)v;
            break;
        case O_PATCH:
            if (!cli_parse_int(optarg, 8, 1024, &v))
                return cli_usage_error(C, "--patch needs 8..1024, got '%s'", optarg);
            o.patch = (int)v;
            break;
        case O_SEED:
            if (!cli_parse_int(optarg, 0, (long long)(~0ULL >> 1), &v))
                return cli_usage_error(C, "--seed needs a number");
            o.seed = (uint64_t)v;
            break;
        case O_CKPT_EVERY:
            if (!cli_parse_int(optarg, 1, 100000000, &v))
                return cli_usage_error(C, "--checkpoint-every needs a positive number");
            o.checkpoint_every = (int)v;
            break;
        case O_VAL_EVERY:
            if (!cli_parse_int(optarg, 1, 100000000, &v))
                return cli_usage_error(C, "--val-every needs a positive number");
            o.val_every = (int)v;
            break;
        case O_LR:
            if (!parse_float(optarg, 0, 1, &o.lr) || !(o.lr > 0)) return cli_usage_error(C, "--lr needs 0..1, above 0");
            lr_given = 1;
            break;
        case O_WARMUP:
            if (!parse_float(optarg, 0, 1e8f, &o.warmup_steps)) return cli_usage_error(C, "--warmup needs >= 0");
            break;
        case O_WD:
            if (!parse_float(optarg, 0, 1, &o.weight_decay)) return cli_usage_error(C, "--weight-decay needs 0..1");
            break;
        case O_CLIP:
            if (!parse_float(optarg, 0, 1e6f, &o.grad_clip)) return cli_usage_error(C, "--clip needs >= 0");
            break;
        case O_EMA:
            if (!parse_float(optarg, 0, 0.999999f, &o.ema_decay)) return cli_usage_error(C, "--ema needs 0..1");
            break;
        case O_DROPOUT:
            if (!parse_float(optarg, 0, 1, &o.dropout) || !(o.dropout < 1))
                return cli_usage_error(C, "--dropout needs 0 <= P < 1, got '%s'", optarg);
            o.resume_dropout = 1; /* with --resume: from the checkpoint's step on */
            break;
        case O_GUIDANCE:
            if (!cli_parse_double(optarg, 0, 20, &guidance))
                return cli_usage_error(C, "--guidance needs 0..20, got '%s'", optarg);
            break;
        case O_COND_DROPOUT:
            if (!parse_float(optarg, 0, 1, &o.cond_dropout) || !(o.cond_dropout < 1))
                return cli_usage_error(C, "--cond-dropout needs 0 <= P < 1, got '%s'", optarg);
            break;
        case O_EMA_PROBE: {
            o.n_ema_probe = 0;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (o.n_ema_probe == DR_EMA_PROBES_MAX)
                    return cli_usage_error(C, "--ema-probe takes at most %d decays, got '%s'", DR_EMA_PROBES_MAX,
                                           optarg);
                if (!parse_float(tok, 0, 0.999999f, &o.ema_probe[o.n_ema_probe++]))
                    return cli_usage_error(C, "--ema-probe needs decays in 0..1 separated by commas, got '%s'", optarg);
            }
            if (o.n_ema_probe == 0) return cli_usage_error(C, "--ema-probe needs at least one decay");
            break;
        }
        case O_LOSS_WEIGHT: {
            const char *a = name_args(optarg, "min-snr");
            if (!strcmp(optarg, "uniform"))
                o.loss_weight = DR_LOSS_UNIFORM;
            else if (a && (!*a || parse_float(a, 0.001f, 1000, &o.snr_gamma)))
                o.loss_weight = DR_LOSS_MIN_SNR;
            else
                return cli_usage_error(
                    C, "--loss-weight must be uniform or min-snr[:GAMMA] with GAMMA in 0.001..1000, not '%s'", optarg);
            break;
        }
        case O_T_SAMPLING: {
            const char *a = name_args(optarg, "lognormal");
            if (!strcmp(optarg, "uniform"))
                o.t_sampling = DR_T_UNIFORM;
            else if (a && !*a)
                o.t_sampling = DR_T_LOGNORMAL;
            else if (a) {
                char *end;
                float m = strtof(a, &end), sd;
                if (end == a || *end != ',' || !parse_float(end + 1, 0.001f, 50, &sd) || !(m >= -50 && m <= 50))
                    return cli_usage_error(
                        C, "--t-sampling lognormal:MEAN,STD needs MEAN in -50..50 and STD in 0.001..50, not '%s'", a);
                o.t_sampling = DR_T_LOGNORMAL;
                o.t_mean = m;
                o.t_std = sd;
            } else
                return cli_usage_error(C, "--t-sampling must be uniform or lognormal[:MEAN,STD], not '%s'", optarg);
            break;
        }
        case O_BUDGET: {
            float m;
            if (!parse_float(optarg, 0.01f, 1e7f, &m))
                return cli_usage_error(C, "--budget-cpu-minutes needs a positive number of minutes, not '%s'", optarg);
            o.budget_cpu_seconds = 60.0 * m;
            break;
        }
        case O_VALIDATE:
            validate = 1;
            if (optarg && strcmp(optarg, "params") == 0)
                o.validate_params = 1;
            else if (optarg && strcmp(optarg, "ema") != 0)
                return cli_usage_error(C, "--validate takes =ema or =params, not '%s'", optarg);
            break;
        case O_VAL_SEED:
            if (!cli_parse_int(optarg, 0, (long long)(~0ULL >> 1), &v))
                return cli_usage_error(C, "--val-seed needs a number");
            o.val_seed = v;
            break;
        case O_VAL_BATCHES:
            if (!cli_parse_int(optarg, 1, 4096, &v)) return cli_usage_error(C, "--val-batches needs 1..4096");
            o.val_batches = (int)v;
            break;
        case O_VAL_PATCH:
            if (!cli_parse_int(optarg, 8, 1024, &v)) return cli_usage_error(C, "--val-patch needs 8..1024");
            o.val_patch = (int)v;
            break;
        case O_TSCALE:
            if (!parse_float(optarg, 0.001f, 1000, &o.target_scale))
                return cli_usage_error(C, "--target-scale needs 0.001..1000");
            break;
        case O_PRED:
            if (strcmp(optarg, "eps") && strcmp(optarg, "v"))
                return cli_usage_error(C, "--prediction must be eps or v");
            o.predict_v = strcmp(optarg, "v") == 0;
            break;
        case O_SCHED:
            if (strcmp(optarg, "cosine") && strcmp(optarg, "linear"))
                return cli_usage_error(C, "--schedule must be cosine or linear");
            o.schedule_linear = strcmp(optarg, "linear") == 0;
            break;
        case O_SCALES:
            if (!cli_parse_range(optarg, 1, 8, 1, &lo, &hi))
                return cli_usage_error(C, "--scales needs A-B within 1..8, got '%s'", optarg);
            o.scale_min = (float)lo, o.scale_max = (float)hi;
            break;
        case O_RENDER:
            if (!cli_parse_int(optarg, 0, DR_RENDER_SIZE_MAX, &v) || (v > 0 && v < DR_RENDER_SIZE_MIN))
                return cli_usage_error(C, "--render-size needs 0 or %d..%d, got '%s'", DR_RENDER_SIZE_MIN,
                                       DR_RENDER_SIZE_MAX, optarg);
            o.render_size = (int)v;
            render_given = 1;
            break;
        case O_MASKS:
            if (!strcmp(optarg, "legacy"))
                o.masks = DR_MASKS_LEGACY;
            else if (!strcmp(optarg, "damage"))
                o.masks = DR_MASKS_DAMAGE;
            else
                return cli_usage_error(C, "--masks must be legacy or damage, not '%s'", optarg);
            break;
        case O_AUGMENT:
            if (!strcmp(optarg, "flip"))
                o.augment = DR_AUGMENT_FLIP;
            else if (!strcmp(optarg, "dihedral"))
                o.augment = DR_AUGMENT_DIHEDRAL;
            else
                return cli_usage_error(C, "--augment must be flip or dihedral, not '%s'", optarg);
            o.resume_augment = 1; /* with --resume: from the checkpoint's step on */
            break;
        case O_ANNEAL: { /* N or N:K */
            char buf[64];
            long long n = 0, k = 2;
            snprintf(buf, sizeof buf, "%s", optarg);
            char *colon = strchr(buf, ':');
            if (colon) *colon = 0;
            if (strlen(optarg) >= sizeof buf || !cli_parse_int(buf, 0, 100000000, &n) ||
                (colon && !cli_parse_int(colon + 1, 1, 8, &k)) || (n > 0 && n < k))
                return cli_usage_error(C, "--anneal needs N or N:K, N >= 0 steps in K = 1..8 stages (N >= K), got '%s'",
                                       optarg);
            o.anneal_steps = (int)n;
            o.anneal_stages = (int)k;
            o.resume_anneal = 1; /* with --resume: from the checkpoint's step on */
            break;
        }
        case O_ZOOM_MAX: {
            double z;
            if (!cli_parse_double(optarg, 1, 4, &z))
                return cli_usage_error(C, "--zoom-max needs 1..4, got '%s'", optarg);
            o.zoom_max = z;
            o.resume_zoom_max = 1;
            break;
        }
        case O_SCALE_DIST:
            if (!strcmp(optarg, "uniform"))
                o.scale_dist = DR_SCALE_DIST_UNIFORM;
            else if (!strcmp(optarg, "high"))
                o.scale_dist = DR_SCALE_DIST_HIGH;
            else
                return cli_usage_error(C, "--scale-dist must be uniform or high, not '%s'", optarg);
            break;
        case O_HOLES:
            if (!cli_parse_range(optarg, 0, 0.95, 1, &lo, &hi))
                return cli_usage_error(C, "--holes needs A-B within 0..0.95, got '%s'", optarg);
            o.hole_min = (float)lo, o.hole_max = (float)hi;
            break;
        default: {
            int r = cli_common_option(&c, opt, optarg, C);
            if (r < 0) return EXIT_USAGE;
            if (r == 0) return cli_usage_error(C, "unknown option");
        }
        }
    }
    if (optind < argc) return cli_usage_error(C, "unexpected argument '%s'", argv[optind]);
    cli_apply_compute(&c, C);
    if (o.resume_path && o.init_path) return cli_usage_error(C, "--resume and --init exclude each other");
    if (lr_given && o.resume_path) o.resume_lr = o.lr; /* a resumed run keeps its rate unless --lr says otherwise */
    if (validate) {
        if (!o.val_dir) return cli_usage_error(C, "--validate needs --val DIR");
        if (!!o.resume_path == !!o.init_path)
            return cli_usage_error(C, "--validate needs --init WEIGHTS or --resume CKPT");
        if (o.validate_params && !o.resume_path)
            return cli_usage_error(C, "--validate=params needs --resume CKPT (a weights file has only the EMA)");
        dr_val_result r;
        if (dr_train_validate_bands(&o, &r) != DR_OK) {
            cli_report_error("train");
            return EXIT_FAILED;
        }
        printf("val_loss %.6f val_x0_mse %.6f\n", r.val_loss, r.val_x0_mse);
        /* the same error by noise level: "x0_by_t LO-HI MSE CROPS" per band (no
         * "val_x0_mse" on this line: scripts take the line above by that word) */
        printf("x0_by_t");
        for (int k = 0; k < DR_VAL_T_BANDS; k++) {
            const int T = r.timesteps;
            printf(" %d-%d %.6g %d", k * T / DR_VAL_T_BANDS, (k + 1) * T / DR_VAL_T_BANDS - 1, r.x0_band[k],
                   r.band_crops[k]);
        }
        printf("\n");
        return EXIT_DONE;
    }
    /* export only: --resume CKPT --export FILE, no --steps */
    if (o.resume_path && o.export_path && !steps_given && !o.data_dir) {
        if (render_given) { /* checked before anything is written */
            dr_tensor_file ck;
            if (dr_tensor_file_read(o.resume_path, &ck) != DR_OK) {
                cli_report_error(NULL);
                return EXIT_FAILED;
            }
            const char *m = dr_tensor_file_meta(&ck, "mode");
            char mode[32];
            snprintf(mode, sizeof mode, "%s", m ? m : "this one");
            dr_tensor_file_free(&ck);
            if (!cli_mode_takes(dr_mode_from_name(mode), DR_MODE_TAKES_RENDER_SIZE)) {
                char modes[128];
                cli_modes_with(DR_MODE_TAKES_RENDER_SIZE, modes, sizeof modes);
                return cli_usage_error(C, "--render-size is only for %s models, not %s", modes, mode);
            }
        }
        if (dr_train_export(o.resume_path, o.export_path, 1) != DR_OK) {
            cli_report_error(NULL);
            return EXIT_FAILED;
        }
        if (render_given) {
            /* the working size restore uses by default, written into the
             * weights (a model trained on full-size crops can still colour
             * at a working size: docs/TUNING.md) */
            char rs[32];
            snprintf(rs, sizeof rs, "%d", o.render_size);
            if (export_set_meta(o.export_path, "render_size", rs) != DR_OK) {
                cli_report_error(NULL);
                remove(o.export_path); /* no output without the working size asked for */
                return EXIT_FAILED;
            }
        }
        if (guidance >= 0) {
            /* restore's default guidance for these weights; loading the result
             * checks it as restore will (cond_dropout present) */
            char gs[32];
            snprintf(gs, sizeof gs, "%.9g", guidance);
            int rc = export_set_meta(o.export_path, "guidance", gs);
            dr_model *check = NULL;
            if (rc == DR_OK) rc = dr_model_load(o.export_path, &check);
            dr_model_free(check);
            if (rc != DR_OK) {
                cli_report_error(NULL);
                remove(o.export_path); /* no weights with a guidance they cannot run */
                return EXIT_FAILED;
            }
        }
        if (!c.quiet) cli_eprintf("wrote %s\n", o.export_path);
        return EXIT_DONE;
    }
    if (guidance >= 0) return cli_usage_error(C, "--guidance is only for an export: --resume CKPT --export W");
    if (!o.resume_path && !o.init_path && o.mode == DR_MODE_NONE) return cli_usage_error(C, "--mode is required");
    if (!o.data_dir) return cli_usage_error(C, "--data is required");
    if (!o.out_path) return cli_usage_error(C, "--out is required");
    /* say so: a user who gives --batch on --resume, or --scales on --init,
     * expects it to apply */
    if (o.resume_path && kept_given) {
        char names[512];
        kept_names(kept, sizeof kept / sizeof kept[0], kept_given, longopts, names, sizeof names);
        cli_eprintf("diffrestore train: note: %s: kept from the checkpoint %s on --resume, not changed (of the recipe, "
                    "only --lr, --dropout, --augment, --zoom-max, --anneal and --steps apply to a resumed run)\n",
                    names, o.resume_path);
    }
    if (o.init_path && (kept_given & kept_by_weights)) {
        char names[512];
        kept_names(kept, sizeof kept / sizeof kept[0], kept_given & kept_by_weights, longopts, names, sizeof names);
        cli_eprintf("diffrestore train: note: %s: taken from the weights %s on --init, not changed (the weights fix "
                    "the network's shape and conventions, and a superres model's scale range)\n",
                    names, o.init_path);
    }
    if (!steps_given && o.resume_path) o.steps = 0; /* keep the checkpoint's target */
    if (o.micro_batch > 0 && o.batch % o.micro_batch != 0 && !o.resume_path)
        return cli_usage_error(C, "--micro-batch %d must divide --batch %d", o.micro_batch, o.batch);
    /* under mpirun / srun: one rank of a data-parallel run */
    dr_train_comm comm = {0};
    const int ranks = train_mpi_start(NULL, NULL, &comm);
    char who[48] = "train";
    if (ranks > 1) {
        o.comm = &comm;
        snprintf(who, sizeof who, "train (rank %d of %d)", comm.rank, comm.size);
        if (comm.rank != 0) c.quiet = 1; /* rank 0 reports */
    }
    train_ui ui = {c.quiet, 0, 0};
    o.progress = on_progress;
    o.log = on_log;
    o.user = &ui;
    o.cancel = &cli_cancel;
    cli_catch_signals(0); /* further signals only repeat the request: the checkpoint is being written */
    int rc = dr_train(&o);
    progress_done();
    if (rc == DR_ERR_CANCELLED) {
        /* the exit code of every command: 128 + the signal (130 SIGINT, 143 SIGTERM) */
        if (!ui.quiet || ranks == 1) cli_eprintf("diffrestore train: %s\n", dr_last_error());
        train_mpi_finish(); /* every rank stopped at the same step */
        return 128 + (cli_signal ? (int)cli_signal : SIGINT);
    }
    if (rc != DR_OK) {
        cli_report_error(who);
        /* the other ranks would wait for this one for ever: end the job */
        if (ranks > 1) train_mpi_abort(EXIT_FAILED);
        return EXIT_FAILED;
    }
    if (ranks > 1 && comm.rank == 0 && ui.reduce_steps > 0 && !c.quiet)
        cli_eprintf("%d ranks: gradient exchange %.1f ms per step (mean of %d steps)\n", ranks,
                    1e3 * ui.reduce_sum / ui.reduce_steps, ui.reduce_steps);
    train_mpi_finish();
    if (!c.quiet)
        cli_eprintf("done: %s%s%s\n", o.out_path, o.export_path ? ", " : "", o.export_path ? o.export_path : "");
    return EXIT_DONE;
}
