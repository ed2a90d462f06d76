/* bench_allreduce.c - time the gradient exchange of data-parallel training on
 * its own: MPI_Allreduce (sum) of N floats, and what `diffrestore train` does
 * with one cover node per rank (MPI_Alltoallv of N/ranks slices, the local
 * add, MPI_Allgatherv). Median over the repetitions of the slowest rank's
 * time, each repetition after a barrier.
 *
 *   mpicc -O2 scripts/bench_allreduce.c -o bench_allreduce
 *   mpirun -np 2 ./bench_allreduce [FLOATS (default 4500000)] [REPS (default 20)]
 * (in a container: OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none;
 * as root: --allow-run-as-root) */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const long n = argc > 1 ? atol(argv[1]) : 4500000;
    const int reps = argc > 2 ? atoi(argv[2]) : 20;
    float *g = malloc(sizeof(float) * n), *r = malloc(sizeof(float) * n), *s = malloc(sizeof(float) * n);
    int *cnt = malloc(sizeof(int) * size), *dsp = malloc(sizeof(int) * size);
    int *rc = malloc(sizeof(int) * size), *rd = malloc(sizeof(int) * size);
    double *t1 = malloc(sizeof(double) * reps), *t2 = malloc(sizeof(double) * reps);
    for (long i = 0; i < n; i++) g[i] = (float)(i % 1000) * 1e-3f + rank;
    for (int j = 0; j < size; j++) {
        dsp[j] = (int)(n * j / size);
        cnt[j] = (int)(n * (j + 1) / size) - dsp[j];
    }
    const int mine = cnt[rank];
    for (int j = 0; j < size; j++) {
        rc[j] = mine;
        rd[j] = j * mine;
    }
    for (int k = -1; k < reps; k++) { /* k = -1: warm-up */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(g, r, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double a = MPI_Wtime() - t0, amax;
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        MPI_Alltoallv(g, cnt, dsp, MPI_FLOAT, s, rc, rd, MPI_FLOAT, MPI_COMM_WORLD);
        for (int j = 1; j < size; j++)
            for (int i = 0; i < mine; i++) s[i] += s[(long)j * mine + i];
        MPI_Allgatherv(s, mine, MPI_FLOAT, r, cnt, dsp, MPI_FLOAT, MPI_COMM_WORLD);
        double b = MPI_Wtime() - t0, bmax;
        MPI_Reduce(&a, &amax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        MPI_Reduce(&b, &bmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        if (k >= 0) t1[k] = amax, t2[k] = bmax;
    }
    if (rank == 0) {
        qsort(t1, reps, sizeof *t1, cmp);
        qsort(t2, reps, sizeof *t2, cmp);
        printf("%d ranks, %ld floats (%.1f MB): MPI_Allreduce median %.2f ms (min %.2f, max %.2f); "
               "alltoallv + add + allgatherv median %.2f ms (min %.2f, max %.2f)\n",
               size, n, n * 4e-6, 1e3 * t1[reps / 2], 1e3 * t1[0], 1e3 * t1[reps - 1], 1e3 * t2[reps / 2], 1e3 * t2[0],
               1e3 * t2[reps - 1]);
    }
    MPI_Finalize();
    return 0;
}
