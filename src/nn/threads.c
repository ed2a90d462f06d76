#include "nn/nn.h"

#include <omp.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

static int g_nn_threads = 0;

void nn_init_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    g_nn_threads = n;
    openblas_set_num_threads(1);
}

int nn_threads(void) {
    if (g_nn_threads <= 0) nn_init_threads(0);
    return g_nn_threads;
}

int nn_prof_on;
double nn_prof_sec[NN_PROF_N];

double nn_prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
