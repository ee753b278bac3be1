// comm_device.h — collectives on device buffers (device: cuda) between the
// ranks of a group, in one of two backends (the deck's comm.backend):
//   nccl  NCCL (ncclAllReduce on the device buffers, GPU to GPU over NVLink,
//         PCIe or the network): the id made by the group's rank 0 with
//         ncclGetUniqueId and broadcast over MPI (comm_bcast), then
//         ncclCommInitRank on every rank. NCCL refuses two ranks on one GPU,
//         so creation checks that no two ranks of the group share one.
//   mpi   host-staged: the buffer copied to pinned host memory, summed with
//         comm_allreduce (MPI), copied back. Slower, but ranks may share a
//         GPU (the one-GPU test machine runs 2 and 3 ranks per job this way).
// In:  a Comm group (comm.h) whose ranks each bound their GPU (device_use);
//      device buffers with element counts (never bytes) and a CommType.
// Out: the buffer reduced over the group's ranks, in place, complete when the
//      call returns (the next kernel on any stream, and the host, see it).
//      NCCL sums in its own order (ring or tree): the NCCL backend equals the
//      MPI one within float rounding, not bit for bit; one rank is a copy.
// The CUDA build implements it in cuda/comm/comm_device.cu (NCCL where the
// configure step found it: STSAE_HAVE_NCCL), the CPU-only build in
// src/comm/comm_device_none.c (dies: no device buffers exist there). Under
// the CUDA emulation (tests, label cuda-emu) NCCL is cuda/emu/nccl.h, a
// stand-in over MPI that checks every count and type against the buffers.
#ifndef STSAE_COMM_DEVICE_H
#define STSAE_COMM_DEVICE_H

#include <stddef.h>

#include "stsae/comm/comm.h"

typedef enum { COMM_DEVICE_NCCL, COMM_DEVICE_MPI } CommDeviceBackend;

typedef struct CommDevice CommDevice;

// Collective over c. Returns the communicator, or NULL on every rank with
// the lowest failing rank's reason in msg (cap bytes) on every rank: NCCL
// asked of a build without it, two ranks of c on one GPU under NCCL, or
// NCCL's own error. c must outlive it.
CommDevice *comm_device_create(Comm *c, CommDeviceBackend backend, char *msg, size_t cap);
void comm_device_free(CommDevice *d);
// "nccl 2.21.5" or "mpi (sums through host copies)": for the run's device line.
const char *comm_device_describe(const CommDevice *d);
// What this build offers (`stsae version`): "nccl 2.21.5, mpi", "mpi (built
// without NCCL)" or "none (built without CUDA)".
const char *comm_device_backends(void);

// buf: count elements of type t in device memory, reduced over the group's
// ranks with op, in place. Collective over the group; synchronous.
void comm_device_allreduce(CommDevice *d, void *buf, size_t count, CommType t, CommOp op);
// comm_allgatherv on device buffers: every rank's send (counts[rank]
// elements) into recv at displs[r]. NCCL has no v-form: one ncclBroadcast
// per rank from its block, inside ncclGroupStart/End.
void comm_device_allgatherv(CommDevice *d, const void *send, void *recv, const int *counts, const int *displs,
                            CommType t);
// comm_reduce_scatterv on device buffers: send holds one block per rank,
// counts[r] elements each, back to back; block r reduced over the ranks lands
// in rank r's recv. NCCL's ReduceScatter needs equal counts: one ncclReduce
// per rank (rank r's block to root r), inside a group.
void comm_device_reduce_scatterv(CommDevice *d, const void *send, void *recv, const int *counts, CommType t,
                                 CommOp op);

// red (comm_reduce of the same group) with its device twins set (sae.h): the
// CUDA step's per-latent counts and its InfoNCE code exchange over d.
void comm_device_hooks(CommDevice *d, SaeReduce *red);

#endif
