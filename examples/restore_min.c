/* restore_min.c - restore one image with libdiffrestore.
 * Usage: restore_min WEIGHTS IN OUT [MASK]   (the mode comes from the weights;
 * superres upscales x2 or the smallest scale the weights support) */
#include <diffrestore.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s WEIGHTS IN OUT [MASK]\n", argv[0]);
        return 2;
    }
    dr_model *model = NULL;
    dr_image in = {0}, mask = {0}, out = {0};
    dr_params p;
    int rc = dr_model_load(argv[1], &model);
    if (rc == DR_OK) dr_params_init_mode(&p, dr_model_mode(model)); /* the measured defaults */
    p.scale = 2;
    if (rc == DR_OK) rc = dr_image_load(argv[2], 0, &in, NULL);
    if (rc == DR_OK && argc > 4) rc = dr_image_load(argv[4], 0, &mask, NULL);
    if (rc == DR_OK) rc = dr_restore(model, &in, argc > 4 ? &mask : NULL, &p, &out);
    if (rc == DR_OK) rc = dr_image_save(argv[3], &out, NULL);
    if (rc != DR_OK) fprintf(stderr, "restore_min: %s\n", dr_last_error());
    dr_image_free(&in);
    dr_image_free(&mask);
    dr_image_free(&out);
    dr_model_free(model);
    return rc == DR_OK ? 0 : 1;
}
