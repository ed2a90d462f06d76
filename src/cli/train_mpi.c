/* train_mpi.c - dr_train_comm on MPI for `diffrestore train` (train_mpi.h). */
#include "train_mpi.h"

#include <stdlib.h>

#ifdef DR_HAVE_MPI
#include <limits.h>
#include <mpi.h>

static int started;

int train_mpi_built(void) { return 1; }

/* Launched by a launcher: Open MPI's mpirun, MPICH's hydra or Slurm's srun
 * (PMI-2 or PMIx). A plain `diffrestore train` runs alone, without MPI. */
static int launched(void) { return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK"); }

/* Byte counts to 4-byte words: every buffer exchanged holds floats or doubles. */
static int words(const size_t *bytes, const size_t *displs, int n, int *cnt, int *dsp) {
    for (int i = 0; i < n; i++) {
        if (bytes[i] % 4 || displs[i] % 4 || bytes[i] / 4 > INT_MAX || displs[i] / 4 > INT_MAX) return -1;
        cnt[i] = (int)(bytes[i] / 4);
        dsp[i] = (int)(displs[i] / 4);
    }
    return 0;
}

static int mpi_allgatherv(const void *send, void *recv, const size_t *send_bytes, const size_t *displs, void *user) {
    (void)user;
    int size, rank, rc = -1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int *cnt = malloc(sizeof(int) * 2 * size);
    if (cnt && words(send_bytes, displs, size, cnt, cnt + size) == 0)
        rc = MPI_Allgatherv(send, cnt[rank], MPI_UINT32_T, recv, cnt, cnt + size, MPI_UINT32_T, MPI_COMM_WORLD) ==
                MPI_SUCCESS
            ? 0
            : -1;
    free(cnt);
    return rc;
}

static int mpi_alltoallv(const void *send, const size_t *send_bytes, const size_t *send_displs, void *recv,
                         const size_t *recv_bytes, const size_t *recv_displs, void *user) {
    (void)user;
    int size, rc = -1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int *c = malloc(sizeof(int) * 4 * size);
    if (c && words(send_bytes, send_displs, size, c, c + size) == 0 &&
        words(recv_bytes, recv_displs, size, c + 2 * size, c + 3 * size) == 0)
        rc = MPI_Alltoallv(send, c, c + size, MPI_UINT32_T, recv, c + 2 * size, c + 3 * size, MPI_UINT32_T,
                           MPI_COMM_WORLD) == MPI_SUCCESS
            ? 0
            : -1;
    free(c);
    return rc;
}

int train_mpi_start(int *argc, char ***argv, dr_train_comm *comm) {
    if (!launched()) return 1;
    int provided = 0;
    /* only the main thread calls MPI; the OpenMP threads compute */
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    started = 1;
    /* a failed collective ends the job rather than returning (the default,
     * stated: a rank that dies takes the others down) */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &comm->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &comm->size);
    comm->allgatherv = mpi_allgatherv;
    comm->alltoallv = mpi_alltoallv;
    comm->user = NULL;
    return comm->size;
}

void train_mpi_abort(int code) {
    if (started) MPI_Abort(MPI_COMM_WORLD, code);
}

void train_mpi_finish(void) {
    if (started) MPI_Finalize();
    started = 0;
}

#else

int train_mpi_built(void) { return 0; }
int train_mpi_start(int *argc, char ***argv, dr_train_comm *comm) {
    (void)argc, (void)argv, (void)comm;
    return 1;
}
void train_mpi_abort(int code) { (void)code; }
void train_mpi_finish(void) {}

#endif
