/* diffrestore forward --weights W IN.safetensors OUT.safetensors
 * Reads x [N, in, H, W] and t [N], runs one U-Net forward, writes y. It lets
 * any PyTorch implementation of MODEL.md be checked against this tool. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *HELP = "Usage: diffrestore forward --weights W [options] IN.safetensors OUT.safetensors\n"
                          "Run one U-Net forward. IN holds tensors 'x' [N, in, H, W] and 't' [N] (float\n"
                          "timestep indices); OUT receives 'y' [N, out, H, W] as F32. H and W must be\n"
                          "multiples of 2^(levels-1).\n\n" CLI_COMMON_HELP;

int cmd_forward(int argc, char **argv) {
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS, {0, 0, 0, 0}};
    cli_common c;
    cli_common_init(&c);
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(HELP, stdout);
            return EXIT_DONE;
        }
        int r = cli_common_option(&c, opt, optarg, "forward");
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_usage_error("forward", "unknown option");
    }
    if (!c.weights) return cli_usage_error("forward", "--weights is required");
    if (argc - optind != 2) return cli_usage_error("forward", "needs IN.safetensors and OUT.safetensors");
    const char *in_path = argv[optind], *out_path = c.output ? c.output : argv[optind + 1];
    if (strcmp(in_path, out_path) == 0) return cli_usage_error("forward", "the output would overwrite the input");
    cli_apply_compute(&c, "forward");

    int rc = EXIT_FAILED;
    dr_model *m = NULL;
    dr_tensor_file in = {0}, out = {0};
    float *y = NULL;
    if (dr_model_load(c.weights, &m) != DR_OK || dr_tensor_file_read(in_path, &in) != DR_OK) {
        cli_report_error(NULL);
        goto done;
    }
    const dr_unet_config *cfg = dr_model_config(m);
    const dr_tensor *x = dr_tensor_file_get(&in, "x"), *t = dr_tensor_file_get(&in, "t");
    if (!x || !t || x->ndim != 4 || t->ndim != 1 || x->shape[0] != t->shape[0] || x->shape[1] != cfg->in_channels ||
        x->shape[0] < 1 || x->shape[0] > 4096 || x->shape[2] > 65536 || x->shape[3] > 65536) {
        fprintf(stderr, "diffrestore: %s: needs 'x' [N, %d, H, W] and 't' [N] (the weights take %d input channels)\n",
                in_path, cfg->in_channels, cfg->in_channels);
        goto done;
    }
    const int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
    size_t ny = (size_t)N * cfg->out_channels * H * W;
    y = malloc(ny * sizeof(float));
    if (!y) {
        cli_eprintf("diffrestore: out of memory\n");
        goto done;
    }
    if (dr_model_forward(m, x->data, t->data, N, H, W, y) != DR_OK) {
        cli_report_error(in_path);
        goto done;
    }
    int64_t shape[4] = {N, cfg->out_channels, H, W};
    if (dr_tensor_file_add(&out, "y", 4, shape, y) != DR_OK || dr_tensor_file_write(out_path, &out, 0) != DR_OK) {
        cli_report_error(NULL);
        goto done;
    }
    if (!c.quiet) cli_eprintf("wrote %s: y [%d, %d, %d, %d]\n", out_path, N, cfg->out_channels, H, W);
    rc = EXIT_DONE;
done:
    free(y);
    dr_tensor_file_free(&in);
    dr_tensor_file_free(&out);
    dr_model_free(m);
    return rc;
}
