// comm.c — the MPI implementation of comm.h: the world and its groups, the
// typed collectives (each one MPI call, or pieces of 2^30 elements where MPI's
// int counts need it), the SaeReduce hooks built on them, and the control
// calls (agreements with a timeout, the stage table).
#define _POSIX_C_SOURCE 200809L // nanosleep, setenv
#include "stsae/comm/comm.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm_mpi.h"
#include "stsae/base/common.h"

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

struct Comm {
    MPI_Comm comm;
    int rank, size;
    int split; // made by comm_split: its MPI communicator goes with it
    // code exchange (InfoNCE): per rank, rows and entries of the last gather
    int *rows, *ents, *row_off, *ent_off;
    int *row_len; // [cap_rows] entries of every row of the batch
    int64_t cap_rows;
};

static Comm world;
static int world_up;

MPI_Comm comm_mpi(const Comm *c) { return c->comm; }

int comm_is_open_mpi(void) {
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    return MPI_Get_library_version(lib, &len) == MPI_SUCCESS && strstr(lib, "Open MPI") != NULL;
}

static void die_on_ranks(const char *msg, void *ctx) {
    (void)ctx;
    int init = 0, fin = 0, size = 1, rank = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return; // the usual print and exit
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (size == 1) return;
    fprintf(stderr, "stsae: error (rank %d): %s\n", rank, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void comm_setup(Comm *c, MPI_Comm comm, int split) {
    memset(c, 0, sizeof(*c));
    c->comm = comm;
    c->split = split;
    mpiCheck(MPI_Comm_rank(comm, &c->rank));
    mpiCheck(MPI_Comm_size(comm, &c->size));
    c->rows = xcalloc((size_t)c->size, sizeof(int));
    c->ents = xcalloc((size_t)c->size, sizeof(int));
    c->row_off = xcalloc((size_t)c->size, sizeof(int));
    c->ent_off = xcalloc((size_t)c->size, sizeof(int));
    c->row_len = NULL;
    c->cap_rows = 0;
}

static void comm_release(Comm *c) {
    free(c->rows);
    free(c->ents);
    free(c->row_off);
    free(c->ent_off);
    free(c->row_len);
}

void comm_world_init(int *argc, char ***argv) {
    // ROMIO for parallel HDF5 files unless the user chose (comm.h); Open MPI
    // reads the setting from the environment, so it is set before MPI_Init
    if (comm_is_open_mpi() && !getenv("OMPI_MCA_io")) setenv("OMPI_MCA_io", "^ompio", 0);
    mpiCheck(MPI_Init(argc, argv));
    comm_setup(&world, MPI_COMM_WORLD, 0);
    world_up = 1;
    stsae_set_die_handler(die_on_ranks, NULL);
}

void comm_world_finalize(void) {
    if (!world_up) return;
    comm_release(&world);
    world_up = 0;
    MPI_Finalize();
}

Comm *comm_world(void) {
    if (!world_up) die("comm_world() before comm_world_init() (a bug)");
    return &world;
}

void comm_node_rank(Comm *c, int *rank, int *size) {
    MPI_Comm node;
    mpiCheck(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
    mpiCheck(MPI_Comm_rank(node, rank));
    mpiCheck(MPI_Comm_size(node, size));
    mpiCheck(MPI_Comm_free(&node));
}

Comm *comm_split(Comm *parent, int colour, int key) {
    MPI_Comm m;
    mpiCheck(MPI_Comm_split(parent->comm, colour, key, &m));
    Comm *c = xmalloc(sizeof(Comm));
    comm_setup(c, m, 1);
    return c;
}

void comm_free(Comm *c) {
    if (!c || c == &world) return;
    comm_release(c);
    if (c->split) MPI_Comm_free(&c->comm);
    free(c);
}

int comm_rank(const Comm *c) { return c->rank; }
int comm_size(const Comm *c) { return c->size; }

// --- typed collectives ---------------------------------------------------------------

static MPI_Datatype mpi_type(CommType t) {
    switch (t) {
    case COMM_F32: return MPI_FLOAT;
    case COMM_F64: return MPI_DOUBLE;
    case COMM_I32: return MPI_INT32_T;
    case COMM_I64: return MPI_INT64_T;
    case COMM_U8: return MPI_UINT8_T;
    }
    die("comm: unknown element type %d (a bug)", (int)t);
}

size_t comm_type_size(CommType t) {
    static const size_t size[] = {4, 8, 4, 8, 1};
    return size[t];
}

static MPI_Op mpi_op(CommOp op) {
    switch (op) {
    case COMM_SUM: return MPI_SUM;
    case COMM_MAX: return MPI_MAX;
    case COMM_MIN: return MPI_MIN;
    }
    die("comm: unknown reduction %d (a bug)", (int)op);
}

// This backend works on host buffers only.
static void host_only(void *stream, const char *call) {
    if (stream) die("comm: %s was given a stream: device buffers need the NCCL backend (a bug)", call);
}

// An MPI count: at most 2^31 - 1 elements.
static int mpi_count(size_t n, const char *call) {
    if (n > INT_MAX) die("comm: %s of %zu elements: MPI counts stop at 2^31 - 1", call, n);
    return (int)n;
}

enum { PIECE = 1 << 30 }; // elements per call where a collective goes in pieces

void comm_allreduce(Comm *c, void *buf, size_t count, CommType t, CommOp op, void *stream) {
    host_only(stream, "comm_allreduce");
    const size_t sz = comm_type_size(t);
    for (size_t o = 0; o < count; o += PIECE) {
        const int cnt = (int)(count - o < PIECE ? count - o : PIECE);
        mpiCheck(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + o * sz, cnt, mpi_type(t), mpi_op(op), c->comm));
    }
}

void comm_bcast(Comm *c, void *buf, size_t count, CommType t, int root, void *stream) {
    host_only(stream, "comm_bcast");
    const size_t sz = comm_type_size(t);
    for (size_t o = 0; o < count; o += PIECE) {
        const int cnt = (int)(count - o < PIECE ? count - o : PIECE);
        mpiCheck(MPI_Bcast((char *)buf + o * sz, cnt, mpi_type(t), root, c->comm));
    }
}

void comm_allgather(Comm *c, const void *send, void *recv, size_t count, CommType t, void *stream) {
    host_only(stream, "comm_allgather");
    const int n = mpi_count(count, "comm_allgather");
    mpiCheck(MPI_Allgather(send, n, mpi_type(t), recv, n, mpi_type(t), c->comm));
}

void comm_allgatherv(Comm *c, const void *send, void *recv, const int *counts, const int *displs, CommType t,
                     void *stream) {
    host_only(stream, "comm_allgatherv");
    mpiCheck(MPI_Allgatherv(send, counts[c->rank], mpi_type(t), recv, counts, displs, mpi_type(t), c->comm));
}

void comm_reduce_scatterv(Comm *c, const void *send, void *recv, const int *counts, CommType t, CommOp op,
                          void *stream) {
    host_only(stream, "comm_reduce_scatterv");
    mpiCheck(MPI_Reduce_scatter(send, recv, counts, mpi_type(t), mpi_op(op), c->comm));
}

void comm_gather(Comm *c, const void *send, void *recv, size_t count, CommType t, int root, void *stream) {
    host_only(stream, "comm_gather");
    const int n = mpi_count(count, "comm_gather");
    mpiCheck(MPI_Gather(send, n, mpi_type(t), recv, n, mpi_type(t), root, c->comm));
}

void comm_barrier(Comm *c, void *stream) {
    host_only(stream, "comm_barrier");
    mpiCheck(MPI_Barrier(c->comm));
}

// --- the SaeReduce hooks -------------------------------------------------------------

static void sum_f64(void *ctx, double *buf, int n) { comm_allreduce(ctx, buf, (size_t)n, COMM_F64, COMM_SUM, NULL); }

static void sum_i64(void *ctx, int64_t *buf, int n) { comm_allreduce(ctx, buf, (size_t)n, COMM_I64, COMM_SUM, NULL); }

// MPI counts are int: a batch's codes must have fewer than 2^31 entries.
static int as_count(int64_t v, const char *what) {
    if (v > INT32_MAX) die("code exchange: %s exceeds 2^31 (%lld); use a smaller batch", what, (long long)v);
    return (int)v;
}

CommCodesLayout comm_codes_layout(Comm *c, int rows_mine, int64_t nnz_mine, const int *row_len_mine) {
    int my[2] = {rows_mine, as_count(nnz_mine, "a rank's code entries")};
    int *both = xmalloc(sizeof(int) * 2 * (size_t)c->size);
    comm_allgather(c, my, both, 2, COMM_I32, NULL);
    int64_t nr = 0, ne = 0;
    for (int r = 0; r < c->size; r++) {
        c->rows[r] = both[2 * r];
        c->ents[r] = both[2 * r + 1];
        c->row_off[r] = as_count(nr, "the batch's tokens");
        c->ent_off[r] = as_count(ne, "the batch's code entries");
        nr += c->rows[r];
        ne += c->ents[r];
    }
    free(both);
    as_count(ne, "the batch's code entries");
    if (nr + 1 > c->cap_rows) {
        c->row_len = xrealloc(c->row_len, sizeof(int) * (size_t)(nr + 1));
        c->cap_rows = nr + 1;
    }
    comm_allgatherv(c, row_len_mine, c->row_len, c->rows, c->row_off, COMM_I32, NULL);
    return (CommCodesLayout){.n_rows = nr, .nnz = ne, .row0 = c->row_off[c->rank], .ent0 = c->ent_off[c->rank],
                             .ents = c->ents, .ent_off = c->ent_off, .row_len = c->row_len};
}

// The layout (comm_codes_layout), then the latent indices and values, each
// with one Allgatherv.
static void gather_codes(void *ctx, const SparseCodes *mine, SparseCodes *all, int64_t *row0, int64_t *ent0) {
    Comm *c = ctx;
    int *len = xmalloc(sizeof(int) * (size_t)(mine->n_rows + 1));
    for (int r = 0; r < mine->n_rows; r++) len[r] = (int)(mine->row_ptr[r + 1] - mine->row_ptr[r]);
    const CommCodesLayout g = comm_codes_layout(c, mine->n_rows, mine->nnz, len);
    free(len);
    *row0 = g.row0;
    *ent0 = g.ent0;
    all->row_ptr = xrealloc(all->row_ptr, sizeof(int64_t) * (size_t)(g.n_rows + 1));
    codes_reserve(all, g.nnz);
    all->n_rows = (int)g.n_rows;
    all->nnz = g.nnz;
    all->row_ptr[0] = 0;
    for (int64_t r = 0; r < g.n_rows; r++) all->row_ptr[r + 1] = all->row_ptr[r] + g.row_len[r];
    comm_allgatherv(c, mine->idx, all->idx, c->ents, c->ent_off, COMM_I32, NULL);
    comm_allgatherv(c, mine->val, all->val, c->ents, c->ent_off, COMM_F32, NULL);
}

// One reduce-scatter over the entries, blocks in rank order (the counts of
// the last gather_codes).
static void return_grad(void *ctx, const float *all_buf, float *mine, int64_t n_mine) {
    Comm *c = ctx;
    if (n_mine != c->ents[c->rank]) die("code exchange: return_grad does not follow gather_codes");
    comm_reduce_scatterv(c, all_buf, mine, c->ents, COMM_F32, COMM_SUM, NULL);
}

SaeReduce comm_reduce(Comm *c) {
    return (SaeReduce){.sum_f64 = sum_f64, .sum_i64 = sum_i64, .gather_codes = gather_codes,
                       .return_grad = return_grad, .ctx = c};
}

// --- control --------------------------------------------------------------------------

void comm_stage_table(Comm *c, const char *const *names, const double *t, int n) {
    const MPI_Comm comm = c->comm;
    const int rank = c->rank, size = c->size;
    double *mn = xmalloc(sizeof(double) * 3 * (size_t)n), *mx = mn + n, *sum = mn + 2 * n;
    mpiCheck(MPI_Reduce(t, mn, n, MPI_DOUBLE, MPI_MIN, 0, comm));
    mpiCheck(MPI_Reduce(t, mx, n, MPI_DOUBLE, MPI_MAX, 0, comm));
    mpiCheck(MPI_Reduce(t, sum, n, MPI_DOUBLE, MPI_SUM, 0, comm));
    if (rank == 0) {
        printf("\ntime per stage over %d rank%s (seconds)\n%-12s %10s %10s %10s %7s\n", size, size > 1 ? "s" : "",
               "stage", "min", "avg", "max", "share");
        for (int i = 0; i < n; i++)
            printf("%-12s %10.2f %10.2f %10.2f %6.1f%%\n", names[i], mn[i], sum[i] / size, mx[i],
                   100.0 * sum[i] / (sum[n - 1] > 0 ? sum[n - 1] : 1));
        fflush(stdout);
    }
    free(mn);
}

int comm_agree(Comm *c, int ok, const char *msg) {
    int all = 0;
    mpiCheck(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, c->comm));
    if (!all && c->rank == 0) fprintf(stderr, "%s\n", ok ? "stsae: error on another rank" : msg);
    return all;
}

double comm_collective_timeout(void) {
    const char *e = getenv("STSAE_COLLECTIVE_TIMEOUT");
    const double v = e ? atof(e) : 0.0;
    return v > 0 ? v : 300.0;
}

// Completes rq, polling (a rank that waits here leaves the CPU to the
// others); past the deadline (timeout_s > 0) this rank prints `mine` and
// takes every rank down.
static void wait_or_abort(MPI_Request *rq, MPI_Comm comm, double timeout_s, const char *mine) {
    const double t0 = wall_time();
    const struct timespec nap = {0, 200000}; // 0.2 ms
    for (;;) {
        int done = 0;
        mpiCheck(MPI_Test(rq, &done, MPI_STATUS_IGNORE));
        if (done) return;
        if (timeout_s > 0 && wall_time() - t0 > timeout_s) {
            int rank = 0;
            MPI_Comm_rank(MPI_COMM_WORLD, &rank);
            fprintf(stderr,
                    "stsae: error (rank %d): %s%sother ranks did not answer within %.0f s (left waiting inside a "
                    "collective call that failed elsewhere?): aborting every rank\n",
                    rank, mine ? mine : "", mine ? "; " : "", timeout_s);
            fflush(stderr);
            MPI_Abort(comm, 1);
        }
        nanosleep(&nap, NULL);
    }
}

int comm_agree_msg(Comm *c, int ok, char *msg, size_t cap, double timeout_s) {
    const MPI_Comm comm = c->comm;
    const int rank = c->rank;
    int first = INT_MAX;
    int mine = ok ? INT_MAX : rank;
    MPI_Request rq;
    mpiCheck(MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm, &rq));
    wait_or_abort(&rq, comm, timeout_s, ok ? NULL : msg);
    if (first == INT_MAX) return 1;
    char buf[COMM_MSG_MAX];
    memset(buf, 0, sizeof(buf));
    if (rank == first) snprintf(buf, sizeof(buf), "%s", msg);
    mpiCheck(MPI_Ibcast(buf, COMM_MSG_MAX, MPI_CHAR, first, comm, &rq));
    wait_or_abort(&rq, comm, timeout_s, ok ? NULL : msg);
    buf[COMM_MSG_MAX - 1] = 0;
    snprintf(msg, cap, "%s", buf);
    return 0;
}
