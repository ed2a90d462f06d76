/* diffrestore bench: time the U-Net (forward or training step). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *HELP = "Usage: diffrestore bench [--weights W | --config SPEC] [options]\n"
                          "Time one U-Net forward (or, with --train, one training step: forward,\n"
                          "backward, AdamW) on random data and report the median over --iters runs,\n"
                          "GFLOP (2 x MACs of convolutions, linears and attention matmuls), GFLOP/s,\n"
                          "the time per layer kind and the peak RSS.\n\n"
                          "  -w, --weights W      take the config and mode from a weights file\n"
                          "      --config SPEC    U-Net config (default " DR_UNET_CONFIG_DEFAULT ")\n"
                          "  -m, --mode MODE      channel layout: colorize, inpaint or superres (default superres)\n"
                          "      --size H[xW]     input size (default 256)\n"
                          "      --batch B        batch size (default 1)\n"
                          "      --train          time a training step instead of a forward\n"
                          "      --dropout P      with --train: ResBlock dropout P in the step (default 0)\n"
                          "      --iters N        timed iterations after one warm-up (default 5)\n"
                          "      --json           one JSON object per measurement\n"
                          "  -t, --threads N      threads (default: all cores)\n"
                          "      --precision P    fp32 (default), bf16 or auto (bf16 where the CPU has it)\n"
                          "                       (the report says bf16-amx where AMX tiles ran it;\n"
                          "                       DIFFRESTORE_AMX=0 in the environment keeps AVX512-BF16)\n"
                          "  -h, --help           this help\n";

enum { O_CONFIG = OPT_CMD_BASE, O_SIZE, O_BATCH, O_TRAIN, O_ITERS, O_JSON, O_DROPOUT };

int cmd_bench(int argc, char **argv) {
    static const struct option longopts[] = {{"config", required_argument, 0, O_CONFIG},
                                             {"mode", required_argument, 0, 'm'},
                                             {"size", required_argument, 0, O_SIZE},
                                             {"batch", required_argument, 0, O_BATCH},
                                             {"train", no_argument, 0, O_TRAIN},
                                             {"iters", required_argument, 0, O_ITERS},
                                             {"json", no_argument, 0, O_JSON},
                                             {"dropout", required_argument, 0, O_DROPOUT},
                                             CLI_COMMON_LONGOPTS,
                                             {0, 0, 0, 0}};
    const char *C = "bench";
    cli_common c;
    cli_common_init(&c);
    dr_bench_options o;
    dr_bench_options_init(&o);
    dr_train_options defaults;
    dr_train_options_init(&defaults);
    dr_unet_config cfg = defaults.config;
    dr_mode mode = DR_MODE_SUPERRES;
    int json = 0, opt, have_config = 0;
    long long v;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "m:" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (opt) {
        case 'h': fputs(HELP, stdout); return EXIT_DONE;
        case O_CONFIG:
            if (dr_unet_config_parse(&cfg, optarg) != DR_OK) return cli_usage_error(C, "%s", dr_last_error());
            have_config = 1;
            break;
        case 'm':
            mode = dr_mode_from_name(optarg);
            if (mode == DR_MODE_NONE) return cli_usage_error(C, "unknown mode '%s'", optarg);
            break;
        case O_SIZE: {
            char *end;
            long h = strtol(optarg, &end, 10), w = h;
            if (*end == 'x') w = strtol(end + 1, &end, 10);
            if (*end || h < 8 || w < 8 || h > 16384 || w > 16384)
                return cli_usage_error(C, "--size needs H or HxW (8..16384)");
            o.height = (int)h;
            o.width = (int)w;
            break;
        }
        case O_BATCH:
            if (!cli_parse_int(optarg, 1, 1024, &v)) return cli_usage_error(C, "--batch needs 1..1024");
            o.batch = (int)v;
            break;
        case O_ITERS:
            if (!cli_parse_int(optarg, 1, 10000, &v)) return cli_usage_error(C, "--iters needs 1..10000");
            o.iters = (int)v;
            break;
        case O_TRAIN: o.train = 1; break;
        case O_DROPOUT: {
            double d;
            if (!cli_parse_double(optarg, 0, 1, &d) || !((float)d < 1))
                return cli_usage_error(C, "--dropout needs 0 <= P < 1, got '%s'", optarg);
            o.dropout = (float)d;
            break;
        }
        case O_JSON: json = 1; break;
        default: {
            int r = cli_common_option(&c, opt, optarg, C);
            if (r < 0) return EXIT_USAGE;
            if (r == 0) return cli_usage_error(C, "unknown option");
        }
        }
    }
    if (optind < argc) return cli_usage_error(C, "unexpected argument '%s'", argv[optind]);
    if (c.weights && have_config) return cli_usage_error(C, "give --weights or --config, not both");
    if (c.weights) {
        dr_model *m;
        if (dr_model_load(c.weights, &m) != DR_OK) {
            cli_report_error(NULL);
            return EXIT_FAILED;
        }
        cfg = *dr_model_config(m);
        mode = dr_model_mode(m);
        dr_model_free(m);
    }
    cli_apply_compute(&c, C);
    /* what ran, for the report: bf16 on AMX tiles, bf16, or fp32 */
    const char *prec = dr_amx_active() ? "bf16-amx" : dr_bf16_active() ? "bf16" : "fp32";
    dr_bench_result r;
    if (dr_bench(&cfg, mode, &o, &r) != DR_OK) {
        cli_report_error("bench");
        return EXIT_FAILED;
    }
    const char *what = o.train ? "train_step" : "forward";
    if (json) {
        printf("{\"what\":\"%s\",\"height\":%d,\"width\":%d,\"batch\":%d,\"threads\":%d,\"iters\":%d,"
               "\"ms_median\":%.3f,\"ms_min\":%.3f,\"ms_max\":%.3f,\"gflop\":%.4f,\"gflops\":%.2f,"
               "\"ms_conv\":%.3f,\"ms_norm\":%.3f,\"ms_attn\":%.3f,\"ms_linear\":%.3f,\"ms_other\":%.3f,"
               "\"peak_rss_mb\":%.1f,\"activation_mb\":%.1f,\"precision\":\"%s\"}\n",
               what, o.height, o.width, o.batch, dr_get_threads(), r.iters, r.ms_median, r.ms_min, r.ms_max, r.gflop,
               r.gflops, r.ms_conv, r.ms_norm, r.ms_attn, r.ms_linear, r.ms_other, r.peak_rss_mb,
               r.activation_bytes / 1048576.0, prec);
    } else {
        printf("%s %dx%d batch %d, %d threads, %s, %d iters: median %.2f ms (min %.2f, max %.2f)\n", what, o.height,
               o.width, o.batch, dr_get_threads(), prec, r.iters, r.ms_median, r.ms_min, r.ms_max);
        printf("  %.3f GFLOP, %.1f GFLOP/s\n", r.gflop, r.gflops);
        printf("  per iteration: conv %.2f ms, norm %.2f ms, attention %.2f ms, linear %.2f ms, other %.2f ms\n",
               r.ms_conv, r.ms_norm, r.ms_attn, r.ms_linear, r.ms_other);
        printf("  activations %.1f MB, peak RSS %.1f MB\n", r.activation_bytes / 1048576.0, r.peak_rss_mb);
    }
    return EXIT_DONE;
}
