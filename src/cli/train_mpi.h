/* train_mpi.h - the MPI side of `diffrestore train` (data-parallel training).
 *
 * The library never calls MPI: these functions hand it the collectives
 * (dr_train_comm) when the command was launched by mpirun or srun and the
 * CLI was built with MPI (CMake DR_MPI). Without MPI they report one rank. */
#ifndef DR_CLI_TRAIN_MPI_H
#define DR_CLI_TRAIN_MPI_H

#include "diffrestore.h"

/* 1 when the CLI was built with MPI. */
int train_mpi_built(void);
/* When launched by an MPI launcher (and built with MPI): initialise MPI and
 * fill comm; returns the number of ranks (1 otherwise: comm untouched). */
int train_mpi_start(int *argc, char ***argv, dr_train_comm *comm);
/* Take every rank down (a failed rank must not leave the others waiting). */
void train_mpi_abort(int code);
void train_mpi_finish(void);

#endif
