// comm.h — every collective of stsae goes through here: the ranks of the run
// (the world), the groups it is split into, and typed collectives between
// them, so that an NCCL backend can drop in beside this MPI one (as NVIDIA's
// multi-gpu-programming-models has its mpi/ and nccl/ twins, differing only
// in their communication calls). Nothing outside src/comm names MPI; main()
// starts and ends the world here, the stages only hold Comm handles.
//
// In:  buffers, with an element count and an element type (never bytes: a
//      byte count given to NCCL as an element count is the classic bug), and
//      an optional stream: NULL on the CPU path (host buffers, MPI). The
//      control calls (comm_agree*, comm_stage_table) take host values only.
// Out: the buffers reduced, broadcast or gathered, the same on every rank
//      (MPI promises identical allreduce results on every rank); the ranks'
//      verdicts on errors some rank saw; die()'s rank-aware handler.
//
// This is the MPI implementation (src/comm/comm.c). Its reductions are
// MPI_Allreduce / MPI_Reduce_scatter of the caller's buffers with the
// caller's operation, so the sums of a data-parallel step are exactly those
// of MPI (SaeReduce's exactness over any number of ranks rests on that).
//
// The NCCL twin (device buffers; the CUDA issue), what each call becomes:
// - comm_world_init: MPI as here (the NCCL path still needs it to start the
//   ranks and exchange the id), then the local rank from
//   MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) chooses the GPU
//   (cudaSetDevice(local % devices), before any NCCL call); rank 0 makes the
//   ncclUniqueId, it is broadcast over MPI, and every rank calls
//   ncclCommInitRank. comm_split: MPI_Comm_split by colour (contiguous ranks:
//   a group stays on one node), then the same id exchange on the group (or
//   ncclCommSplit, NCCL >= 2.18). Never more ranks per node than GPUs.
// - counts stay element counts (size_t in NCCL); CommType maps to ncclFloat32,
//   ncclFloat64, ncclInt32, ncclInt64, ncclUint8; CommOp to ncclSum, ncclMax,
//   ncclMin.
// - stream != NULL: a cudaStream_t; the call is enqueued on it (llm.c: an
//   event recorded on the compute stream, the NCCL stream waits on it) and
//   returns without synchronizing the host; the caller orders what follows.
// - comm_allreduce -> ncclAllReduce in place; comm_bcast -> ncclBroadcast;
//   comm_allgather -> ncclAllGather; comm_allgatherv (NCCL has no v-form) ->
//   one ncclBroadcast per rank from its block, inside ncclGroupStart/End;
//   comm_reduce_scatterv -> one ncclReduce per rank (rank r's block to root
//   r) inside a group (ncclReduceScatter needs equal counts); comm_gather ->
//   ncclSend/ncclRecv in a group; comm_barrier -> an allreduce of one int on
//   the stream, then cudaStreamSynchronize. NCCL sums in its own order: the
//   device path equals the CPU one within float precision, not bit for bit.
// - the control calls stay on MPI in both backends (host values, a timeout).
#ifndef STSAE_COMM_H
#define STSAE_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "stsae/sae/sae.h" // SaeReduce

// A communicator: the world, or a group split from it. Opaque; its rank and
// size by comm_rank / comm_size.
typedef struct Comm Comm;

typedef enum { COMM_F32, COMM_F64, COMM_I32, COMM_I64, COMM_U8 } CommType;
typedef enum { COMM_SUM, COMM_MAX, COMM_MIN } CommOp;
// Bytes of one element of type t.
size_t comm_type_size(CommType t);

// --- the world and its groups -----------------------------------------------------

// Starts the ranks (MPI_Init; main() calls it once, before any stage) and
// installs die()'s handler (common.h): from here on die() names the rank and,
// with several ranks, takes every rank down (MPI_Abort: a rank alone in
// exit() would leave the others waiting in their next collective).
// Before MPI_Init, under Open MPI, it sets OMPI_MCA_io=^ompio unless the user
// set OMPI_MCA_io: parallel HDF5 files (comm_h5_fapl) then go through ROMIO,
// because OMPIO 4.1 lets a collective write whose pwritev failed (a full
// disk) return success on every rank; the failure surfaces later in one
// rank's MPI_File_sync while the others wait in its barrier (seen here: clips
// marked done over features never written, every rank hung). ROMIO returns
// the failed write's error on every rank.
void comm_world_init(int *argc, char ***argv);
// Frees the world's buffers and ends MPI (after every split group is freed).
void comm_world_finalize(void);
// The world: every rank of the run (valid between init and finalize).
Comm *comm_world(void);
// Collective over parent: the ranks of parent with the same colour form one
// group, ordered by key. comm_free it.
Comm *comm_split(Comm *parent, int colour, int key);
// Frees a group made by comm_split; comm_free(comm_world()) does nothing.
void comm_free(Comm *c);
// This rank's index among c's ranks on its node (the ranks that share its
// memory: MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)) and how many they are;
// collective over c. Chooses a rank's GPU (device_use).
void comm_node_rank(Comm *c, int *rank, int *size);
int comm_rank(const Comm *c);
int comm_size(const Comm *c);

// --- typed collectives (every rank of c calls them, in the same order) ------------
// count: elements of type t. stream: NULL (host buffers) in this backend.
// MPI counts are int: comm_allreduce and comm_bcast go in pieces of 2^30
// elements; the others die past 2^31 - 1 elements.

// buf[0..count) reduced elementwise over the ranks with op, in place.
void comm_allreduce(Comm *c, void *buf, size_t count, CommType t, CommOp op, void *stream);
// root's buf[0..count) to every rank.
void comm_bcast(Comm *c, void *buf, size_t count, CommType t, int root, void *stream);
// Every rank's count elements, in rank order, into recv (size x count).
void comm_allgather(Comm *c, const void *send, void *recv, size_t count, CommType t, void *stream);
// Every rank's send (counts[rank] elements) into recv at displs[r] (elements).
void comm_allgatherv(Comm *c, const void *send, void *recv, const int *counts, const int *displs, CommType t,
                     void *stream);
// send holds one block per rank, counts[r] elements each, back to back in
// rank order; reduced over the ranks with op, block r lands in rank r's recv.
void comm_reduce_scatterv(Comm *c, const void *send, void *recv, const int *counts, CommType t, CommOp op,
                          void *stream);
// Every rank's count elements, in rank order, into root's recv (size x
// count; recv is not used on the other ranks and may be NULL there).
void comm_gather(Comm *c, const void *send, void *recv, size_t count, CommType t, int root, void *stream);
// Returns when every rank of c has called it.
void comm_barrier(Comm *c, void *stream);

// Hooks for sae_step: sums, code gather and gradient return over the ranks
// of c (built on the calls above; the host path).
SaeReduce comm_reduce(Comm *c);

// The layout of the InfoNCE code exchange (the first half of comm_reduce's
// gather_codes; comm_device.h's device exchange uses it too): every rank's
// row count and entry count (rows_mine, nnz_mine) and every row's length
// (row_len_mine[rows_mine]) gathered over c, in rank order. The arrays are
// c's and hold until the next exchange on c. Collective; dies past 2^31
// entries (MPI counts).
typedef struct {
    int64_t n_rows, nnz;      // the whole batch
    int64_t row0, ent0;       // this rank's first row and entry in it
    const int *ents, *ent_off; // [ranks] entries of each rank and their offsets
    const int *row_len;       // [n_rows] entries of every row of the batch
} CommCodesLayout;
CommCodesLayout comm_codes_layout(Comm *c, int rows_mine, int64_t nnz_mine, const int *row_len_mine);

// --- control: verdicts and timings (host values, always MPI) ----------------------

// Every rank of c checked something alike (a deck, a file); returns 1 when
// all found it ok, else 0 with rank 0 printing msg (its own) once, so that
// every rank can exit with an error together. Collective.
int comm_agree(Comm *c, int ok, const char *msg);

// The verdict on an error one rank may see alone (a write that failed, a full
// disk), so that every rank takes the same branch and makes the same next
// collective call. Every rank passes ok and, when !ok, its message in msg;
// returns 1 when every rank was ok, else 0 with msg (cap bytes) replaced, on
// every rank, by the message of the lowest failing rank (at most
// COMM_MSG_MAX - 1 characters of it). Collective over c.
// timeout_s > 0 is the last resort for a rank that never arrives because it
// is still waiting inside a collective MPI-IO or HDF5 call that a failing
// rank left early (Open MPI's OMPIO does this after a failed write): after
// that many seconds the ranks that did arrive print their message and that
// they waited in vain, and call MPI_Abort (non-zero exit everywhere).
// timeout_s <= 0 waits as long as it takes (ranks of other training groups
// may still be working).
#define COMM_MSG_MAX 2048
int comm_agree_msg(Comm *c, int ok, char *msg, size_t cap, double timeout_s);

// The timeout_s for an agreement right after a collective write, when every
// rank should arrive within moments: 300 s, or the environment's
// STSAE_COLLECTIVE_TIMEOUT (seconds).
double comm_collective_timeout(void);

// Rank 0 prints seconds per stage with min / avg / max over the ranks of c
// and each stage's share of the last one (the total). Collective.
void comm_stage_table(Comm *c, const char *const *names, const double *t, int n);

#endif
