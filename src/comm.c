// comm.c — MPI implementation of comm.h.
#include "stsae/comm.h"

#include <stdint.h>

#include "stsae/common.h"

#define mpiCheck(call)                                                                      \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        if (rc_ != MPI_SUCCESS) {                                                           \
            char msg_[MPI_MAX_ERROR_STRING];                                                \
            int len_ = 0;                                                                   \
            MPI_Error_string(rc_, msg_, &len_);                                             \
            stsae_die_at(__FILE__, __LINE__, "MPI call failed: %s: %s", #call, msg_);      \
        }                                                                                   \
    } while (0)

void comm_init(Comm *c, MPI_Comm comm) {
    c->comm = comm;
    mpiCheck(MPI_Comm_rank(comm, &c->rank));
    mpiCheck(MPI_Comm_size(comm, &c->size));
}

static void sum_f64(void *ctx, double *buf, int n) {
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, ((Comm *)ctx)->comm));
}

static void sum_i64(void *ctx, int64_t *buf, int n) {
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_INT64_T, MPI_SUM, ((Comm *)ctx)->comm));
}

SaeReduce comm_reduce(Comm *c) { return (SaeReduce){sum_f64, sum_i64, c}; }

void comm_sum_f32(Comm *c, float *buf, size_t n) {
    // MPI counts are int: reduce in pieces of at most 2^30 floats
    const size_t piece = (size_t)1 << 30;
    for (size_t o = 0; o < n; o += piece) {
        int cnt = (int)(n - o < piece ? n - o : piece);
        mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf + o, cnt, MPI_FLOAT, MPI_SUM, c->comm));
    }
}
