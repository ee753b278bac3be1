// comm.h — communication between the ranks of one training job, behind one
// interface so that the NCCL path (CUDA issue) can drop in: the SaeReduce
// hooks the step uses for its global sums, and the allreduce of the flat
// gradient buffer. This is the MPI (CPU) implementation.
#ifndef STSAE_COMM_H
#define STSAE_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "stsae/sae/sae.h"

typedef struct {
    MPI_Comm comm;
    int rank, size;
    // code exchange (InfoNCE): per rank, rows and entries of the last gather
    int *rows, *ents, *row_off, *ent_off;
    int *row_len; // [cap_rows] entries of every row of the batch
    int64_t cap_rows;
} Comm;

// Once MPI has started: from here on die() (common.h) names the rank and,
// with several ranks, takes every rank down (MPI_Abort: a rank alone in
// exit() would leave the others waiting in their next collective).
void comm_world_started(void);

void comm_init(Comm *c, MPI_Comm comm);
void comm_free(Comm *c); // not the MPI communicator
// Hooks for sae_step: sums, code gather and gradient return over the ranks of c.
SaeReduce comm_reduce(Comm *c);
// Sums buf over the ranks of c, in place (n floats; the gradient buffer).
void comm_sum_f32(Comm *c, float *buf, size_t n);

// Every rank of comm checked something alike (a deck, a file); returns 1 when
// all found it ok, else 0 with rank 0 printing msg (its own) once, so that
// every rank can exit with an error together. Collective.
int comm_agree(MPI_Comm comm, int ok, const char *msg);

// The verdict on an error one rank may see alone (a write that failed, a full
// disk), so that every rank takes the same branch and makes the same next
// collective call. Every rank passes ok and, when !ok, its message in msg;
// returns 1 when every rank was ok, else 0 with msg (cap bytes) replaced, on
// every rank, by the message of the lowest failing rank (at most
// COMM_MSG_MAX - 1 characters of it). Collective over comm.
// timeout_s > 0 is the last resort for a rank that never arrives because it
// is still waiting inside a collective MPI-IO or HDF5 call that a failing
// rank left early (Open MPI's OMPIO does this after a failed write): after
// that many seconds the ranks that did arrive print their message and that
// they waited in vain, and call MPI_Abort (non-zero exit everywhere).
// timeout_s <= 0 waits as long as it takes (ranks of other training groups
// may still be working).
#define COMM_MSG_MAX 2048
int comm_agree_msg(MPI_Comm comm, int ok, char *msg, size_t cap, double timeout_s);

// The timeout_s for an agreement right after a collective write, when every
// rank should arrive within moments: 300 s, or the environment's
// STSAE_COLLECTIVE_TIMEOUT (seconds).
double comm_collective_timeout(void);

// Rank 0 prints seconds per stage with min / avg / max over the ranks of comm
// and each stage's share of the last one (the total). Collective.
void comm_stage_table(MPI_Comm comm, const char *const *names, const double *t, int n);

#endif
