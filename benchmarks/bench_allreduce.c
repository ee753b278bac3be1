// bench_allreduce.c — the communication of one data-parallel training step
// at the paper's shape, on the MPI path (comm.h): the allreduce of the flat
// gradient buffer (2 m d + m + d floats; 37.8 MB for d = 768, m = 6144), the
// sum of the dead-latent counts (m int64), and, for the InfoNCE variants, the
// code exchange (allgather of k indices and values per token) and the return
// of the candidate gradients (reduce-scatter).
//
// usage: mpirun -np R bench_allreduce [--d 768] [--expansion 8] [--k 64]
//                                     [--tokens 32768] [--reps 10]
// Prints, from rank 0, the median seconds of each and the bus bandwidth of the
// gradient allreduce (2 (R-1)/R x bytes / time, the ring formula).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/comm/comm.h"
#include "stsae/sae/codes.h"

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof(double), cmp);
    return t[n / 2];
}

int main(int argc, char **argv) {
    comm_world_init(&argc, &argv);
    int d = 768, expansion = 8, k = 64, tokens = 32768, reps = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--d")) d = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--expansion")) expansion = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--k")) k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens")) tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else die("unknown option %s", argv[i]);
    }
    Comm *c = comm_world();
    const int rank = comm_rank(c), size = comm_size(c);
    SaeReduce red = comm_reduce(c);
    const int m = expansion * d;
    const size_t np = 2 * (size_t)m * d + (size_t)m + (size_t)d;
    float *g = xcalloc(np, sizeof(float));
    int64_t *cnt = xcalloc((size_t)m, sizeof(int64_t));
    // this rank's share of a batch of codes
    const int mine = tokens / size;
    SparseCodes z, all;
    codes_alloc(&z, mine, (int64_t)mine * k);
    codes_alloc(&all, 0, 0);
    uint64_t s = 1 + (uint64_t)rank;
    for (int r = 0; r < mine; r++) {
        z.row_ptr[r + 1] = z.row_ptr[r] + k;
        for (int j = 0; j < k; j++) {
            z.idx[(int64_t)r * k + j] = (int32_t)(rng_next(&s) % (uint64_t)m);
            z.val[(int64_t)r * k + j] = (float)rng_uniform(&s);
        }
    }
    z.nnz = (int64_t)mine * k;
    float *back = xmalloc(sizeof(float) * (size_t)z.nnz + 1);
    double *t_grad = xmalloc(sizeof(double) * (size_t)reps), *t_cnt = xmalloc(sizeof(double) * (size_t)reps),
           *t_gather = xmalloc(sizeof(double) * (size_t)reps), *t_return = xmalloc(sizeof(double) * (size_t)reps);
    for (int rep = -1; rep < reps; rep++) { // one warm-up
        comm_barrier(c, NULL);
        double t0 = wall_time();
        comm_allreduce(c, g, np, COMM_F32, COMM_SUM, NULL);
        double t1 = wall_time();
        red.sum_i64(red.ctx, cnt, m);
        double t2 = wall_time();
        int64_t row0, ent0;
        red.gather_codes(red.ctx, &z, &all, &row0, &ent0);
        double t3 = wall_time();
        red.return_grad(red.ctx, all.val, back, z.nnz);
        double t4 = wall_time();
        if (rep >= 0) {
            t_grad[rep] = t1 - t0;
            t_cnt[rep] = t2 - t1;
            t_gather[rep] = t3 - t2;
            t_return[rep] = t4 - t3;
        }
    }
    if (rank == 0) {
        const double tg = median(t_grad, reps), bytes = 4.0 * (double)np;
        printf("ranks %d, d %d, m %d, k %d, batch %d tokens (%d per rank)\n", size, d, m, k, tokens, mine);
        printf("gradient allreduce  %8.2f ms  (%.1f MB, bus bandwidth %.2f GB/s)\n", 1e3 * tg, bytes / 1e6,
               size > 1 ? 2.0 * (size - 1) / size * bytes / tg / 1e9 : 0.0);
        printf("dead counts         %8.3f ms  (%d int64)\n", 1e3 * median(t_cnt, reps), m);
        printf("code allgather      %8.2f ms  (%.1f MB of codes in all)\n", 1e3 * median(t_gather, reps),
               (double)tokens * k * 8 / 1e6);
        printf("gradient return     %8.2f ms  (reduce-scatter)\n", 1e3 * median(t_return, reps));
    }
    codes_free(&z);
    codes_free(&all);
    free(g), free(cnt), free(back), free(t_grad), free(t_cnt), free(t_gather), free(t_return);
    comm_world_finalize();
    return 0;
}
