// comm_device.cu — comm_device.h for the CUDA build (and, compiled for the
// CPU, the CUDA emulation, where <nccl.h> is cuda/emu/nccl.h).
//
// NCCL backend: one ncclComm per group, made from an id that the group's
// rank 0 draws and comm_bcast sends (MPI stays the launcher and the control
// channel, as in NVIDIA's multi-gpu-programming-models); the reduction runs
// on a stream of the communicator's own, created blocking (so it is ordered
// after the legacy default stream's kernels that wrote the buffer, and those
// after it wait for it), then the host waits for it. MPI backend: through a
// pinned host buffer that grows to the largest call.
// Creation is checked on every rank and agreed (comm_agree_msg): a failure on
// one rank (NCCL's init, a shared GPU) becomes the same error on all.
#include <cuda_runtime.h>
#ifdef STSAE_HAVE_NCCL
#include <nccl.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cuda_check.h"

extern "C" {
#include "stsae/comm/comm_device.h"
}

struct CommDevice {
    Comm *c;
    CommDeviceBackend backend;
    char describe[64];
    void *host;       // MPI backend: pinned staging buffer
    size_t host_bytes;
    CommCodesLayout layout; // the last InfoNCE code exchange's (comm_codes_layout)
#ifdef STSAE_HAVE_NCCL
    ncclComm_t nccl;
    cudaStream_t stream;
#endif
};

#ifdef STSAE_HAVE_NCCL
static ncclDataType_t nccl_type(CommType t) {
    switch (t) {
    case COMM_F32: return ncclFloat32;
    case COMM_F64: return ncclFloat64;
    case COMM_I32: return ncclInt32;
    case COMM_I64: return ncclInt64;
    case COMM_U8: return ncclUint8;
    }
    die("comm_device: unknown element type %d (a bug)", (int)t);
}

static ncclRedOp_t nccl_op(CommOp op) {
    switch (op) {
    case COMM_SUM: return ncclSum;
    case COMM_MAX: return ncclMax;
    case COMM_MIN: return ncclMin;
    }
    die("comm_device: unknown reduction %d (a bug)", (int)op);
}

// "nccl MAJOR.MINOR.PATCH" of the library loaded.
static void nccl_version(char *buf, size_t cap) {
    int v = 0;
    ncclGetVersion(&v);
    snprintf(buf, cap, "nccl %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
}

#define ncclCheck(call)                                                                                  \
    do {                                                                                                 \
        ncclResult_t r_ = (call);                                                                        \
        if (r_ != ncclSuccess)                                                                           \
            stsae_die_at(__FILE__, __LINE__, "%s: NCCL error %d (%s)", #call, (int)r_,                  \
                         ncclGetErrorString(r_));                                                        \
    } while (0)

// NCCL refuses two ranks on one GPU (and would fail deep in its init): 1 when
// this rank's GPU is its own within c, else 0 with the reason in msg. The
// emulation's stand-in lets every rank share its one device (so that 2 and 3
// ranks per job are tested through it), so it has nothing to check there.
static int own_gpu(Comm *c, char *msg, size_t cap) {
#ifdef STSAE_CUDA_EMU
    (void)c, (void)msg, (void)cap;
    return 1;
#else
    enum { NAME = 64 };
    struct Key {
        char host[NAME];
        char bus[NAME];
    } mine;
    memset(&mine, 0, sizeof(mine));
    gethostname(mine.host, NAME - 1);
    int dev = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetPCIBusId(mine.bus, NAME - 1, dev));
    const int n = comm_size(c), me = comm_rank(c);
    struct Key *all = (struct Key *)xmalloc(sizeof(struct Key) * (size_t)n);
    comm_allgather(c, &mine, all, sizeof(mine), COMM_U8, NULL);
    int ok = 1;
    for (int r = 0; r < n && ok; r++)
        if (r != me && !memcmp(&all[r], &mine, sizeof(mine))) {
            snprintf(msg, cap, "comm.backend: nccl, but ranks %d and %d of a training group share the GPU %s on %s "
                     "(NCCL needs one GPU per rank): run at most as many ranks per node as it has GPUs, or set "
                     "comm.backend: mpi (sums through host copies)", r < me ? r : me, r < me ? me : r, mine.bus,
                     mine.host);
            ok = 0;
        }
    free(all);
    return ok;
#endif
}
#endif

extern "C" CommDevice *comm_device_create(Comm *c, CommDeviceBackend backend, char *msg, size_t cap) {
    CommDevice *d = (CommDevice *)xcalloc(1, sizeof(CommDevice));
    d->c = c;
    d->backend = backend;
    msg[0] = 0;
    int ok = 1;
    if (backend == COMM_DEVICE_MPI) {
        snprintf(d->describe, sizeof(d->describe), "mpi (sums through host copies)");
    } else {
#ifdef STSAE_HAVE_NCCL
        ok = own_gpu(c, msg, cap);
        if (comm_agree_msg(c, ok, msg, cap, 0)) {
            ncclUniqueId id;
            memset(&id, 0, sizeof(id));
            if (comm_rank(c) == 0) ncclCheck(ncclGetUniqueId(&id));
            comm_bcast(c, &id, sizeof(id), COMM_U8, 0, NULL);
            const ncclResult_t r = ncclCommInitRank(&d->nccl, comm_size(c), id, comm_rank(c));
            ok = r == ncclSuccess;
            if (!ok) snprintf(msg, cap, "comm.backend: nccl: ncclCommInitRank failed: NCCL error %d (%s)", (int)r,
                              ncclGetErrorString(r));
            else
                cudaCheck(cudaStreamCreate(&d->stream));
            nccl_version(d->describe, sizeof(d->describe));
        } else {
            ok = 0;
        }
#else
        ok = 0;
        snprintf(msg, cap, "comm.backend: nccl, but this stsae was built without NCCL (configure with NCCL_HOME "
                 "set to where include/nccl.h and lib/libnccl.so are), or set comm.backend: mpi");
#endif
    }
    if (!comm_agree_msg(c, ok, msg, cap, 0)) {
        comm_device_free(d);
        return NULL;
    }
    return d;
}

extern "C" void comm_device_free(CommDevice *d) {
    if (!d) return;
#ifdef STSAE_HAVE_NCCL
    if (d->nccl) ncclCommDestroy(d->nccl);
    if (d->stream) cudaStreamDestroy(d->stream);
#endif
    if (d->host) cudaFreeHost(d->host);
    free(d);
}

extern "C" const char *comm_device_describe(const CommDevice *d) { return d->describe; }

extern "C" const char *comm_device_backends(void) {
#ifdef STSAE_HAVE_NCCL
    static char buf[64];
    nccl_version(buf, sizeof(buf) - 8);
    strcat(buf, ", mpi");
    return buf;
#else
    return "mpi (built without NCCL)";
#endif
}

// MPI backend: the pinned staging buffer, at least bytes.
static char *staging(CommDevice *d, size_t bytes) {
    if (bytes > d->host_bytes) {
        if (d->host) cudaCheck(cudaFreeHost(d->host));
        cudaCheck(cudaMallocHost(&d->host, bytes));
        d->host_bytes = bytes;
    }
    return (char *)d->host;
}

extern "C" void comm_device_allreduce(CommDevice *d, void *buf, size_t count, CommType t, CommOp op) {
    const size_t bytes = count * comm_type_size(t);
    if (d->backend == COMM_DEVICE_MPI) {
        if (comm_size(d->c) == 1) return;
        char *h = staging(d, bytes);
        cudaCheck(cudaMemcpy(h, buf, bytes, cudaMemcpyDeviceToHost));
        comm_allreduce(d->c, h, count, t, op, NULL);
        cudaCheck(cudaMemcpy(buf, h, bytes, cudaMemcpyHostToDevice));
        return;
    }
#ifdef STSAE_HAVE_NCCL
    const size_t n = PLANTED("nccl_bytes_count") ? bytes : count;
    ncclCheck(ncclAllReduce(buf, buf, n, nccl_type(t), nccl_op(op), d->nccl, d->stream));
    cudaCheck(cudaStreamSynchronize(d->stream));
#else
    die("comm_device: the NCCL backend in a build without NCCL (a bug: comm_device_create refuses it)");
#endif
}

extern "C" void comm_device_allgatherv(CommDevice *d, const void *send, void *recv, const int *counts,
                                       const int *displs, CommType t) {
    const size_t sz = comm_type_size(t);
    const int n = comm_size(d->c), me = comm_rank(d->c);
    if (d->backend == COMM_DEVICE_MPI) {
        size_t total = 0;
        for (int r = 0; r < n; r++)
            if ((size_t)displs[r] + (size_t)counts[r] > total) total = (size_t)displs[r] + (size_t)counts[r];
        const size_t mine = (size_t)counts[me] * sz;
        char *h = staging(d, mine + total * sz);
        if (mine) cudaCheck(cudaMemcpy(h, send, mine, cudaMemcpyDeviceToHost));
        comm_allgatherv(d->c, h, h + mine, counts, displs, t, NULL);
        if (total) cudaCheck(cudaMemcpy(recv, h + mine, total * sz, cudaMemcpyHostToDevice));
        return;
    }
#ifdef STSAE_HAVE_NCCL
    ncclCheck(ncclGroupStart());
    for (int r = 0; r < n; r++) {
        char *at = (char *)recv + (size_t)displs[r] * sz;
        ncclCheck(ncclBroadcast(r == me ? send : at, at, (size_t)counts[r], nccl_type(t), r, d->nccl, d->stream));
    }
    ncclCheck(ncclGroupEnd());
    cudaCheck(cudaStreamSynchronize(d->stream));
#else
    die("comm_device: the NCCL backend in a build without NCCL (a bug: comm_device_create refuses it)");
#endif
}

extern "C" void comm_device_reduce_scatterv(CommDevice *d, const void *send, void *recv, const int *counts,
                                            CommType t, CommOp op) {
    const size_t sz = comm_type_size(t);
    const int n = comm_size(d->c), me = comm_rank(d->c);
    if (d->backend == COMM_DEVICE_MPI) {
        size_t total = 0;
        for (int r = 0; r < n; r++) total += (size_t)counts[r];
        const size_t mine = (size_t)counts[me] * sz;
        char *h = staging(d, total * sz + mine);
        if (total) cudaCheck(cudaMemcpy(h, send, total * sz, cudaMemcpyDeviceToHost));
        comm_reduce_scatterv(d->c, h, h + total * sz, counts, t, op, NULL);
        if (mine) cudaCheck(cudaMemcpy(recv, h + total * sz, mine, cudaMemcpyHostToDevice));
        return;
    }
#ifdef STSAE_HAVE_NCCL
    ncclCheck(ncclGroupStart());
    size_t off = 0;
    for (int r = 0; r < n; r++) {
        ncclCheck(ncclReduce((const char *)send + off * sz, recv, (size_t)counts[r], nccl_type(t), nccl_op(op), r,
                             d->nccl, d->stream));
        off += (size_t)counts[r];
    }
    ncclCheck(ncclGroupEnd());
    cudaCheck(cudaStreamSynchronize(d->stream));
#else
    die("comm_device: the NCCL backend in a build without NCCL (a bug: comm_device_create refuses it)");
#endif
}

// --- the SaeReduce device twins (sae.h) ------------------------------------------------

static void sum_i64_device(void *ctx, int64_t *dev_buf, int n) {
    comm_device_allreduce((CommDevice *)ctx, dev_buf, (size_t)n, COMM_I64, COMM_SUM);
}

static void codes_layout_device(void *ctx, int rows_mine, int64_t nnz_mine, const int *row_len_mine,
                                int64_t *n_rows, int64_t *nnz, int64_t *row0, int64_t *ent0, const int **row_len) {
    CommDevice *d = (CommDevice *)ctx;
    d->layout = comm_codes_layout(d->c, rows_mine, nnz_mine, row_len_mine);
    *n_rows = d->layout.n_rows;
    *nnz = d->layout.nnz;
    *row0 = d->layout.row0;
    *ent0 = d->layout.ent0;
    *row_len = d->layout.row_len;
}

static void codes_entries_device(void *ctx, const int32_t *idx_mine, const float *val_mine, int32_t *idx_all,
                                 float *val_all) {
    CommDevice *d = (CommDevice *)ctx;
    comm_device_allgatherv(d, idx_mine, idx_all, d->layout.ents, d->layout.ent_off, COMM_I32);
    comm_device_allgatherv(d, val_mine, val_all, d->layout.ents, d->layout.ent_off, COMM_F32);
}

static void return_grad_device(void *ctx, const float *all_buf, float *mine) {
    CommDevice *d = (CommDevice *)ctx;
    comm_device_reduce_scatterv(d, all_buf, mine, d->layout.ents, COMM_F32, COMM_SUM);
}

extern "C" void comm_device_hooks(CommDevice *d, SaeReduce *red) {
    red->device_ctx = d;
    red->sum_i64_device = sum_i64_device;
    red->codes_layout_device = codes_layout_device;
    red->codes_entries_device = codes_entries_device;
    red->return_grad_device = return_grad_device;
}
