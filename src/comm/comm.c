// comm.c — MPI implementation of comm.h.
#define _POSIX_C_SOURCE 200809L // nanosleep
#include "stsae/comm/comm.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void comm_world_started(void) { stsae_set_die_handler(die_on_ranks, NULL); }

void comm_init(Comm *c, MPI_Comm comm) {
    c->comm = comm;
    mpiCheck(MPI_Comm_rank(comm, &c->rank));
    mpiCheck(MPI_Comm_size(comm, &c->size));
    c->rows = xcalloc((size_t)c->size, sizeof(int));
    c->ents = xcalloc((size_t)c->size, sizeof(int));
    c->row_off = xcalloc((size_t)c->size, sizeof(int));
    c->ent_off = xcalloc((size_t)c->size, sizeof(int));
    c->row_len = NULL;
    c->cap_rows = 0;
}

void comm_free(Comm *c) {
    free(c->rows);
    free(c->ents);
    free(c->row_off);
    free(c->ent_off);
    free(c->row_len);
}

static void sum_f64(void *ctx, double *buf, int n) {
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, ((Comm *)ctx)->comm));
}

static void sum_i64(void *ctx, int64_t *buf, int n) {
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_INT64_T, MPI_SUM, ((Comm *)ctx)->comm));
}

// MPI counts are int: a batch's codes must have fewer than 2^31 entries.
static int as_count(int64_t v, const char *what) {
    if (v > INT32_MAX) die("code exchange: %s exceeds 2^31 (%lld); use a smaller batch", what, (long long)v);
    return (int)v;
}

// Row and entry counts of every rank, their offsets, then the row lengths,
// latent indices and values, each with one Allgatherv.
static void gather_codes(void *ctx, const SparseCodes *mine, SparseCodes *all, int64_t *row0, int64_t *ent0) {
    Comm *c = ctx;
    int my[2] = {mine->n_rows, as_count(mine->nnz, "a rank's code entries")};
    int *both = xmalloc(sizeof(int) * 2 * (size_t)c->size);
    mpiCheck(MPI_Allgather(my, 2, MPI_INT, both, 2, MPI_INT, c->comm));
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
    *row0 = c->row_off[c->rank];
    *ent0 = c->ent_off[c->rank];
    if (nr + 1 > c->cap_rows) {
        c->row_len = xrealloc(c->row_len, sizeof(int) * (size_t)(nr + 1));
        c->cap_rows = nr + 1;
    }
    int *len = xmalloc(sizeof(int) * (size_t)(mine->n_rows + 1));
    for (int r = 0; r < mine->n_rows; r++) len[r] = (int)(mine->row_ptr[r + 1] - mine->row_ptr[r]);
    mpiCheck(MPI_Allgatherv(len, mine->n_rows, MPI_INT, c->row_len, c->rows, c->row_off, MPI_INT, c->comm));
    free(len);
    all->row_ptr = xrealloc(all->row_ptr, sizeof(int64_t) * (size_t)(nr + 1));
    codes_reserve(all, ne);
    all->n_rows = (int)nr;
    all->nnz = ne;
    all->row_ptr[0] = 0;
    for (int64_t r = 0; r < nr; r++) all->row_ptr[r + 1] = all->row_ptr[r] + c->row_len[r];
    mpiCheck(MPI_Allgatherv(mine->idx, c->ents[c->rank], MPI_INT32_T, all->idx, c->ents, c->ent_off, MPI_INT32_T,
                            c->comm));
    mpiCheck(MPI_Allgatherv(mine->val, c->ents[c->rank], MPI_FLOAT, all->val, c->ents, c->ent_off, MPI_FLOAT,
                            c->comm));
}

// One reduce-scatter over the entries, blocks in rank order (the counts of
// the last gather_codes).
static void return_grad(void *ctx, const float *all_buf, float *mine, int64_t n_mine) {
    Comm *c = ctx;
    if (n_mine != c->ents[c->rank]) die("code exchange: return_grad does not follow gather_codes");
    mpiCheck(MPI_Reduce_scatter(all_buf, mine, c->ents, MPI_FLOAT, MPI_SUM, c->comm));
}

SaeReduce comm_reduce(Comm *c) { return (SaeReduce){sum_f64, sum_i64, gather_codes, return_grad, c}; }

void comm_sum_f32(Comm *c, float *buf, size_t n) {
    // MPI counts are int: reduce in pieces of at most 2^30 floats
    const size_t piece = (size_t)1 << 30;
    for (size_t o = 0; o < n; o += piece) {
        int cnt = (int)(n - o < piece ? n - o : piece);
        mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buf + o, cnt, MPI_FLOAT, MPI_SUM, c->comm));
    }
}

void comm_stage_table(MPI_Comm comm, const char *const *names, const double *t, int n) {
    int rank, size;
    mpiCheck(MPI_Comm_rank(comm, &rank));
    mpiCheck(MPI_Comm_size(comm, &size));
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

int comm_agree(MPI_Comm comm, int ok, const char *msg) {
    int all = 0, rank = 0;
    mpiCheck(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, comm));
    mpiCheck(MPI_Comm_rank(comm, &rank));
    if (!all && rank == 0) fprintf(stderr, "%s\n", ok ? "stsae: error on another rank" : msg);
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

int comm_agree_msg(MPI_Comm comm, int ok, char *msg, size_t cap, double timeout_s) {
    int rank = 0, first = INT_MAX;
    mpiCheck(MPI_Comm_rank(comm, &rank));
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
