// test_dp_step.c — data-parallel steps are exact: the batch is split over the
// ranks (uneven shares of tokens, whole clips or whole pairs; one rank may get
// none), each rank steps on its share with the MPI hooks (global mean, FVU
// denominators, BatchTopK threshold, the InfoNCE code exchange and the return
// of candidate gradients), the gradients are summed over ranks, and the
// result must equal the single-process step on the whole batch (every loss
// term, the BatchTopK threshold and the gradients within 1e-5 relative).
// Every rank builds the same data from the same seed. All ten variants, with
// dead latents so AuxK runs (dense and sparse paths).
// The ranks, the hooks and the gradient allreduce are comm.h's, as in stsae.
// Run under mpirun -np 1, 2 and 3. Rank 0 prints "N passed, M failed".
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/comm/comm.h"
#include "stsae/sae/sae.h"
#include "testutil.h"

int main(int argc, char **argv) {
    comm_world_init(&argc, &argv);
    Comm *comm = comm_world();
    const int rank = comm_rank(comm), size = comm_size(comm);
    SaeReduce red = comm_reduce(comm);
    const char *variants[] = {"standard", "standard+M", "frozen",     "sparsemax", "entmax15",
                              "temporal", "separate",   "temporal+M", "separate+M", "raster"};
    const int d = 20, m = 80;
    const int clips = 5, T = 3, H = 2, W = 3, pairs = 61;
    int passed = 0, failed = 0;
    for (size_t v = 0; v < sizeof(variants) / sizeof(*variants); v++)
        for (int dead_mode = 0; dead_mode < 2; dead_mode++) {
            SaeConfig cfg;
            sae_config_init(&cfg, variants[v], d, m);
            cfg.k = 5;
            cfg.k_aux = cfg.k_aux ? 6 : 0;
            cfg.alpha = 0.5f;
            cfg.tau = 0.5f;
            if (cfg.contrast == CTR_TEMPORAL || cfg.contrast == CTR_SEPARATE) cfg.lambda_t = 0.7f;
            if (cfg.contrast == CTR_SEPARATE) cfg.lambda_s = 0.4f;
            if (cfg.contrast == CTR_RASTER) cfg.lambda_r = 0.6f;
            // the whole batch, in units (tokens, clips or pairs) of unit_tok tokens
            const int by_clip = cfg.contrast == CTR_TEMPORAL || cfg.contrast == CTR_SEPARATE;
            const int unit_tok = by_clip ? T * H * W : cfg.contrast == CTR_RASTER ? 2 : 1;
            const int units = by_clip ? clips : cfg.contrast == CTR_RASTER ? pairs : 203;
            const int n = units * unit_tok;
            const size_t np = sae_num_params(&cfg);
            float *params = xmalloc(sizeof(float) * np), *g_all = xmalloc(sizeof(float) * np),
                  *g_dp = xmalloc(sizeof(float) * np), *x = xmalloc(sizeof(float) * (size_t)n * d);
            SaeTensors p, ta, td;
            sae_carve(params, &cfg, &p);
            sae_carve(g_all, &cfg, &ta);
            sae_carve(g_dp, &cfg, &td);
            sae_init(&cfg, &p, 5 + v, NULL);
            uint64_t s = 99 + v;
            for (int j = 0; j < m; j++) p.b_enc[j] = 0.05f * (float)rng_normal(&s);
            for (int i = 0; i < n * d; i++) x[i] = (float)rng_normal(&s) + 0.3f;
            uint8_t dead[80];
            // dense AuxK path (n_dead <= 4 k_aux) and sparse (more dead)
            for (int j = 0; j < m; j++) dead[j] = dead_mode ? j % 3 == 0 : j % 9 == 0;

            SaeBatch all = by_clip ? sae_batch_clips(clips, T, H, W)
                           : cfg.contrast == CTR_RASTER ? sae_batch_pairs(pairs) : sae_batch_tokens(n);
            SaeWork *w = sae_work_create(&cfg, n);
            SaeLosses La, Ld;
            sae_step(&cfg, &p, &ta, x, &all, dead, NULL, w, &La);

            // uneven shares [lo, hi); with 3 or more ranks rank 0 holds no token
            const int parts = size > 2 ? size - 1 : size;
            const int q = size > 2 ? rank - 1 : rank;
            const int lo = q < 0 ? 0 : (int)((int64_t)units * q * q / ((int64_t)parts * parts));
            const int hi = q < 0 ? 0 : (int)((int64_t)units * (q + 1) * (q + 1) / ((int64_t)parts * parts));
            SaeBatch mine = by_clip ? sae_batch_clips(hi - lo, T, H, W)
                            : cfg.contrast == CTR_RASTER ? sae_batch_pairs(hi - lo) : sae_batch_tokens(hi - lo);
            sae_step(&cfg, &p, &td, x + (size_t)lo * unit_tok * d, &mine, dead, &red, w, &Ld);
            comm_allreduce(comm, g_dp, np, COMM_F32, COMM_SUM, NULL);

            double err = max_rel(g_dp, g_all, np);
            const double la[] = {La.total, La.rec, La.aux, La.high, La.temp, La.spat, La.rast, La.l0, La.min_kept};
            const double ld[] = {Ld.total, Ld.rec, Ld.aux, Ld.high, Ld.temp, Ld.spat, Ld.rast, Ld.l0, Ld.min_kept};
            double lerr = 0.0;
            for (int t = 0; t < 9; t++) lerr = fmax(lerr, fabs(ld[t] - la[t]) / fmax(fabs(la[t]), 1e-12));
            int all_ok = err <= 1e-5 && lerr <= 1e-5 && La.total > 0; // then: on every rank
            comm_allreduce(comm, &all_ok, 1, COMM_I32, COMM_MIN, NULL);
            if (rank == 0)
                printf("%s %-10s dead %-6s ranks %d: grad rel %.1e, loss rel %.1e\n", all_ok ? "ok  " : "FAIL",
                       variants[v], dead_mode ? "many" : "few", size, err, lerr);
            all_ok ? passed++ : failed++;
            sae_work_free(w);
            free(params); free(g_all); free(g_dp); free(x);
        }
    if (rank == 0) printf("%d passed, %d failed\n", passed, failed);
    comm_world_finalize(); // frees the world's buffers: LeakSanitizer (the sanitizer job) checks the test too
    return failed ? 1 : 0;
}
