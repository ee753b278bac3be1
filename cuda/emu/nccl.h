// nccl.h — the NCCL stand-in of the CUDA emulation (stsae_emu.h): NCCL's C
// API, as cuda/comm/comm_device.cu calls it, carried out over MPI between the
// ranks of the run, so that the NCCL backend of `device: cuda` training runs
// on 1, 2 and 3 ranks in CI with no GPU and no NCCL.
//
// In:  the calls as NCCL takes them: device buffers (here host memory that
//      cudaMalloc recorded, cuda_runtime.h), element counts, ncclDataType_t,
//      ncclRedOp_t, a communicator from ncclCommInitRank and a stream.
// Out: the same results NCCL gives (sums over the ranks), with what NCCL
//      itself would not check made fatal, naming the call:
//      - every buffer must lie in one cudaMalloc'd block for count elements of
//        its type (a byte count passed as an element count, the classic bug,
//        runs past the block's end: llm.c once did this);
//      - every rank of the communicator must pass the same count, type,
//        operation and root (NCCL would hang or sum garbage);
//      - a known type and operation; a communicator that was initialized.
//      A failed check prints "nccl stand-in: ..." and aborts the process (a
//      test sees a non-zero exit), as a GPU fault would.
// How: ncclGetUniqueId writes the calling rank's MPI_COMM_WORLD rank and a
// serial number into the id; ncclCommInitRank sends each member's world rank
// to the id's maker, which sends the list back, and the members form an MPI
// communicator of their own with MPI_Comm_create_group (collective over the
// members only, like ncclCommInitRank). Each collective first waits for the
// device (so it reads what the kernels before it wrote, as NCCL's stream
// order promises), then runs the MPI call on the host, in the calling thread,
// before it returns: stronger ordering than NCCL's, never weaker. Group calls
// (ncclGroupStart/End) run each call as it comes; every rank issues them in
// the same order. One emulated device is shared by every rank, which real
// NCCL refuses (comm_device.cu checks for that outside the emulation).
#ifndef STSAE_EMU_NCCL_H
#define STSAE_EMU_NCCL_H

// MPI's C API only (Open MPI's C++ bindings declare a CommType of their own)
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdarg>

#include "cuda_runtime.h"

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6
} ncclResult_t;
typedef enum {
    ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclUint32 = 3, ncclInt64 = 4, ncclUint64 = 5,
    ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9
} ncclDataType_t;
typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;
#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;
#define NCCL_VERSION_CODE 0
#define NCCL_MAJOR 0
#define NCCL_MINOR 0

struct ncclComm {
    MPI_Comm mpi;
    int rank, size;
};
typedef struct ncclComm *ncclComm_t;

namespace stsae_emu {

[[noreturn]] inline void nccl_fail(const char *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
inline void nccl_fail(const char *call, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "nccl stand-in: %s: %s\n", call, msg);
    std::fflush(stderr);
    std::abort();
}

struct NcclIdBody {
    std::uint32_t magic;
    int world_root;
    int serial;
};
constexpr std::uint32_t nccl_id_magic = 0x5AEC0CC1u;
constexpr int nccl_tag_base = 0x5AE00; // p2p tags of the id exchange (serial added)

inline MPI_Datatype nccl_mpi_type(const char *call, ncclDataType_t t, std::size_t *size) {
    switch (t) {
    case ncclInt8: *size = 1; return MPI_INT8_T;
    case ncclUint8: *size = 1; return MPI_UINT8_T;
    case ncclInt32: *size = 4; return MPI_INT32_T;
    case ncclUint32: *size = 4; return MPI_UINT32_T;
    case ncclInt64: *size = 8; return MPI_INT64_T;
    case ncclUint64: *size = 8; return MPI_UINT64_T;
    case ncclFloat32: *size = 4; return MPI_FLOAT;
    case ncclFloat64: *size = 8; return MPI_DOUBLE;
    default: nccl_fail(call, "data type %d is not emulated (or not an ncclDataType_t)", (int)t);
    }
}
inline MPI_Op nccl_mpi_op(const char *call, ncclRedOp_t op) {
    switch (op) {
    case ncclSum: return MPI_SUM;
    case ncclMax: return MPI_MAX;
    case ncclMin: return MPI_MIN;
    default: nccl_fail(call, "operation %d is not emulated (or not an ncclRedOp_t)", (int)op);
    }
}
inline void nccl_check_comm(const char *call, ncclComm_t c) {
    if (!c || c->mpi == MPI_COMM_NULL) nccl_fail(call, "the communicator was not initialized (or was destroyed)");
}
// buf must hold count elements of size bytes inside one cudaMalloc'd block.
inline void nccl_check_buffer(const char *call, const char *which, const void *buf, std::size_t count,
                              std::size_t size) {
    if (count == 0) return;
    const std::size_t have = device_bytes_from(buf);
    if (have == 0)
        nccl_fail(call, "%s %p is not device memory (no cudaMalloc'd block holds it)", which, buf);
    if (count > have / size)
        nccl_fail(call, "%s: %zu elements of %zu bytes run past the end of its cudaMalloc'd block (%zu bytes from "
                  "it: %zu elements; a byte count given as an element count?)", which, count, size, have,
                  have / size);
}
// Every rank passes the same signature (count, type, op, root).
inline void nccl_check_same(const char *call, ncclComm_t c, std::size_t count, int type, int op, int root) {
    long long mine[4] = {(long long)count, type, op, root}, lo[4], hi[4];
    MPI_Allreduce(mine, lo, 4, MPI_LONG_LONG, MPI_MIN, c->mpi);
    MPI_Allreduce(mine, hi, 4, MPI_LONG_LONG, MPI_MAX, c->mpi);
    for (int i = 0; i < 4; i++)
        if (lo[i] != hi[i])
            nccl_fail(call, "the ranks disagree on the %s (rank %d passed %lld; the ranks passed %lld to %lld)",
                      i == 0 ? "count" : i == 1 ? "data type" : i == 2 ? "operation" : "root", c->rank, mine[i],
                      lo[i], hi[i]);
}
// An MPI count for a call the emulation makes in one piece.
inline int nccl_mpi_count(const char *call, std::size_t count) {
    if (count > (std::size_t)INT_MAX) nccl_fail(call, "%zu elements: more than the emulation sends", count);
    return (int)count;
}
// Before the call reads its buffers: everything enqueued so far on the
// device, the call's stream and the others (a stream created blocking follows
// the legacy default stream's work; waiting for all of it is never weaker).
inline void nccl_wait(cudaStream_t st) {
    (void)st;
    if (cudaDeviceSynchronize() != cudaSuccess) nccl_fail("stream", "the device failed before the call");
}

} // namespace stsae_emu

inline const char *ncclGetErrorString(ncclResult_t r) {
    return r == ncclSuccess ? "no error" : "nccl stand-in error";
}
inline ncclResult_t ncclGetVersion(int *v) {
    *v = 0;
    return ncclSuccess;
}
inline ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    static int serial = 0;
    std::memset(id, 0, sizeof(*id));
    stsae_emu::NcclIdBody b = {stsae_emu::nccl_id_magic, 0, serial++ % 4096};
    MPI_Comm_rank(MPI_COMM_WORLD, &b.world_root);
    std::memcpy(id->internal, &b, sizeof(b));
    return ncclSuccess;
}
inline ncclResult_t ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank) {
    const char *call = "ncclCommInitRank";
    stsae_emu::NcclIdBody b;
    std::memcpy(&b, id.internal, sizeof(b));
    if (b.magic != stsae_emu::nccl_id_magic) stsae_emu::nccl_fail(call, "the id was not made by ncclGetUniqueId");
    if (nranks < 1 || rank < 0 || rank >= nranks) stsae_emu::nccl_fail(call, "rank %d of %d", rank, nranks);
    int world = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &world);
    const int tag = stsae_emu::nccl_tag_base + b.serial;
    std::vector<int> worlds((std::size_t)nranks, -1);
    if (world == b.world_root) {
        if (rank != 0) stsae_emu::nccl_fail(call, "the id's maker must be rank 0 (it is rank %d)", rank);
        worlds[0] = world;
        for (int i = 1; i < nranks; i++) {
            int pair[2];
            MPI_Recv(pair, 2, MPI_INT, MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (pair[0] <= 0 || pair[0] >= nranks || worlds[(std::size_t)pair[0]] >= 0)
                stsae_emu::nccl_fail(call, "two ranks claim rank %d (or it is out of range)", pair[0]);
            worlds[(std::size_t)pair[0]] = pair[1];
        }
        for (int i = 1; i < nranks; i++) MPI_Send(worlds.data(), nranks, MPI_INT, worlds[(std::size_t)i], tag,
                                                  MPI_COMM_WORLD);
    } else {
        int pair[2] = {rank, world};
        MPI_Send(pair, 2, MPI_INT, b.world_root, tag, MPI_COMM_WORLD);
        MPI_Recv(worlds.data(), nranks, MPI_INT, b.world_root, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    MPI_Group wg, g;
    MPI_Comm_group(MPI_COMM_WORLD, &wg);
    MPI_Group_incl(wg, nranks, worlds.data(), &g);
    ncclComm_t c = new ncclComm{MPI_COMM_NULL, rank, nranks};
    MPI_Comm_create_group(MPI_COMM_WORLD, g, tag, &c->mpi);
    MPI_Group_free(&g);
    MPI_Group_free(&wg);
    *out = c;
    return ncclSuccess;
}
inline ncclResult_t ncclCommDestroy(ncclComm_t c) {
    if (c) {
        if (c->mpi != MPI_COMM_NULL) MPI_Comm_free(&c->mpi);
        delete c;
    }
    return ncclSuccess;
}
inline ncclResult_t ncclGroupStart(void) { return ncclSuccess; }
inline ncclResult_t ncclGroupEnd(void) { return ncclSuccess; }

inline ncclResult_t ncclAllReduce(const void *send, void *recv, std::size_t count, ncclDataType_t t,
                                  ncclRedOp_t op, ncclComm_t c, cudaStream_t st) {
    const char *call = "ncclAllReduce";
    stsae_emu::nccl_check_comm(call, c);
    std::size_t size = 0;
    const MPI_Datatype mt = stsae_emu::nccl_mpi_type(call, t, &size);
    const MPI_Op mo = stsae_emu::nccl_mpi_op(call, op);
    stsae_emu::nccl_check_buffer(call, "sendbuff", send, count, size);
    stsae_emu::nccl_check_buffer(call, "recvbuff", recv, count, size);
    stsae_emu::nccl_check_same(call, c, count, (int)t, (int)op, 0);
    stsae_emu::nccl_wait(st);
    for (std::size_t done = 0; done < count;) { // MPI counts are int
        const int n = (int)std::min<std::size_t>(count - done, (std::size_t)1 << 30);
        char *r = static_cast<char *>(recv) + done * size;
        const char *s = static_cast<const char *>(send) + done * size;
        MPI_Allreduce(s == r ? MPI_IN_PLACE : s, r, n, mt, mo, c->mpi);
        done += (std::size_t)n;
    }
    return ncclSuccess;
}
inline ncclResult_t ncclBroadcast(const void *send, void *recv, std::size_t count, ncclDataType_t t, int root,
                                  ncclComm_t c, cudaStream_t st) {
    const char *call = "ncclBroadcast";
    stsae_emu::nccl_check_comm(call, c);
    std::size_t size = 0;
    const MPI_Datatype mt = stsae_emu::nccl_mpi_type(call, t, &size);
    if (root < 0 || root >= c->size) stsae_emu::nccl_fail(call, "root %d of %d ranks", root, c->size);
    if (c->rank == root) stsae_emu::nccl_check_buffer(call, "sendbuff", send, count, size);
    stsae_emu::nccl_check_buffer(call, "recvbuff", recv, count, size);
    stsae_emu::nccl_check_same(call, c, count, (int)t, 0, root);
    stsae_emu::nccl_wait(st);
    if (c->rank == root && send != recv) std::memcpy(recv, send, count * size);
    MPI_Bcast(recv, stsae_emu::nccl_mpi_count(call, count), mt, root, c->mpi);
    return ncclSuccess;
}
inline ncclResult_t ncclReduce(const void *send, void *recv, std::size_t count, ncclDataType_t t, ncclRedOp_t op,
                               int root, ncclComm_t c, cudaStream_t st) {
    const char *call = "ncclReduce";
    stsae_emu::nccl_check_comm(call, c);
    std::size_t size = 0;
    const MPI_Datatype mt = stsae_emu::nccl_mpi_type(call, t, &size);
    const MPI_Op mo = stsae_emu::nccl_mpi_op(call, op);
    if (root < 0 || root >= c->size) stsae_emu::nccl_fail(call, "root %d of %d ranks", root, c->size);
    stsae_emu::nccl_check_buffer(call, "sendbuff", send, count, size);
    if (c->rank == root) stsae_emu::nccl_check_buffer(call, "recvbuff", recv, count, size);
    stsae_emu::nccl_check_same(call, c, count, (int)t, (int)op, root);
    stsae_emu::nccl_wait(st);
    const bool in_place = c->rank == root && send == recv;
    MPI_Reduce(in_place ? MPI_IN_PLACE : send, recv, stsae_emu::nccl_mpi_count(call, count), mt, mo, root, c->mpi);
    return ncclSuccess;
}

#endif
