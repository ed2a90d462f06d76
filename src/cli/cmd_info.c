/* diffrestore info FILE...: what an image or a weights file is. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>
#include <string.h>

static const char *HELP =
    "Usage: diffrestore info [options] FILE...\n"
    "Print an image's format, size, channels and bit depth, its ICC profile (without\n"
    "one, sRGB is assumed) and the EXIF, XMP and IPTC metadata it holds, or a weights\n"
    "file's metadata and tensor count. The type is found from the file's bytes.\n\n" CLI_COMMON_HELP;

static int is_safetensors_name(const char *path) {
    size_t n = strlen(path);
    return n > 12 && strcmp(path + n - 12, ".safetensors") == 0;
}

static int info_one(const char *path) {
    unsigned char head[16] = {0};
    /* O_NONBLOCK: a FIFO must not block the command; only regular files */
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        cli_eprintf("diffrestore: %s: cannot open: %s\n", path, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        cli_eprintf("diffrestore: %s: not a regular file\n", path);
        return 1;
    }
    if (st.st_size == 0) {
        close(fd);
        cli_eprintf("diffrestore: %s: empty file (0 bytes)\n", path);
        return 1;
    }
    const ssize_t got = read(fd, head, sizeof head);
    close(fd);
    const size_t n = got > 0 ? (size_t)got : 0;
    dr_format fmt = dr_format_detect(head, n);
    if (fmt != DR_FORMAT_UNKNOWN) {
        dr_image_info info;
        if (dr_image_probe(path, &info) != DR_OK) {
            cli_report_error(NULL);
            return 1;
        }
        static const char *layouts[] = {"?", "gray", "gray+alpha", "RGB", "RGBA"};
        char orient[128] = "";
        if (info.orientation > 1)
            snprintf(orient, sizeof orient, ", EXIF orientation %d (applied on load; size shown upright)",
                     info.orientation);
        printf("%s: %s %dx%d, %d channel%s (%s), %d-bit%s%s\n", path, dr_format_name(info.format), info.width,
               info.height, info.channels, info.channels == 1 ? "" : "s",
               layouts[info.channels >= 1 && info.channels <= 4 ? info.channels : 0], info.depth,
               info.interlaced ? (info.format == DR_FORMAT_PNG ? ", interlaced" : ", progressive") : "", orient);
        if (info.icc_size)
            printf("  ICC profile: \"%s\", %zu bytes (%s)\n", info.icc_description, info.icc_size,
                   info.icc_converted ? "converted to sRGB on load"
                                      : "not used: its colour space does not match, or it is sRGB already");
        else
            printf("  ICC profile: none (sRGB assumed)\n");
        if (info.exif_size || info.xmp_size || info.iptc_size) {
            printf("  metadata:");
            if (info.exif_size) printf(" EXIF %zu bytes", info.exif_size);
            if (info.xmp_size) printf("%s XMP %zu bytes", info.exif_size ? "," : "", info.xmp_size);
            if (info.iptc_size) printf("%s IPTC %zu bytes", info.exif_size || info.xmp_size ? "," : "", info.iptc_size);
            printf("\n");
        } else {
            printf("  metadata: none\n");
        }
        return 0;
    }
    if (!is_safetensors_name(path) && n >= 8 && head[8] != '{') {
        cli_eprintf("diffrestore: %s: not a PNG, JPEG, TIFF, WebP or safetensors file\n", path);
        return 1;
    }
    dr_tensor_file tf;
    if (dr_tensor_file_read(path, &tf) != DR_OK) {
        cli_report_error(NULL);
        return 1;
    }
    long long numel = 0;
    for (int i = 0; i < tf.n_tensors; i++) numel += tf.tensors[i].numel;
    printf("%s: safetensors, %d tensors, %lld values\n", path, tf.n_tensors, numel);
    for (int i = 0; i < tf.n_meta; i++) printf("  %s = %s\n", tf.meta_keys[i], tf.meta_values[i]);
    const char *format = dr_tensor_file_meta(&tf, "format");
    if (format && strcmp(format, "diffrestore-checkpoint") == 0) {
        /* data-parallel training: how many processes trained the last steps */
        const char *r = dr_tensor_file_meta(&tf, "ranks");
        if (r)
            printf("  checkpoint written by %s rank%s\n", r, strcmp(r, "1") ? "s" : "");
        else
            printf("  checkpoint written by 1 rank (an older checkpoint: no 'ranks' key)\n");
    }
    dr_tensor_file_free(&tf);
    return 0;
}

int cmd_info(int argc, char **argv) {
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
        int r = cli_common_option(&c, opt, optarg, "info");
        if (r < 0) return EXIT_USAGE;
        if (r == 0) return cli_usage_error("info", "unknown option");
    }
    if (optind >= argc) return cli_usage_error("info", "no input file given");
    int failed = 0;
    for (int i = optind; i < argc; i++) failed |= info_one(argv[i]);
    return failed ? EXIT_FAILED : EXIT_DONE;
}
