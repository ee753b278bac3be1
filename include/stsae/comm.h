// comm.h — communication between the ranks of one training job, behind one
// interface so that the NCCL path (CUDA issue) can drop in: the SaeReduce
// hooks the step uses for its global sums, and the allreduce of the flat
// gradient buffer. This is the MPI (CPU) implementation.
#ifndef STSAE_COMM_H
#define STSAE_COMM_H

#include <mpi.h>
#include <stddef.h>

#include "stsae/sae.h"

typedef struct {
    MPI_Comm comm;
    int rank, size;
} Comm;

void comm_init(Comm *c, MPI_Comm comm);
// Hooks summing over the ranks of c (for sae_step).
SaeReduce comm_reduce(Comm *c);
// Sums buf over the ranks of c, in place (n floats; the gradient buffer).
void comm_sum_f32(Comm *c, float *buf, size_t n);

#endif
