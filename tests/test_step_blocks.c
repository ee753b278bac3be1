// test_step_blocks.c — the step's result must not depend on how its work is
// cut: every variant, with dead latents, run once with the default chunk and
// gradient-block sizes (one block at these sizes) and once with tiny ones
// (many encoder chunks, many token blocks in the latent-major gradient pass).
// The reference tests use small batches, so this is what exercises the
// multi-block paths. Losses and gradients must agree to 1e-6 relative.
// Also: sae_encode (evaluation) reproduces the step's codes (sae_last_codes),
// BatchTopK with theta just below the step's smallest kept activation.
// And a workspace reused across steps of different sizes and dead sets gives
// the result of a fresh one (AuxK's dense buffers grow as needed).
// Prints "N passed, M failed"; exits 1 on any failure.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/sae/sae.h"
#include "testutil.h"

// Same kept (latent, value) pairs, row by row, in any order within a row.
static int same_codes(const SparseCodes *a, const SparseCodes *b, int m) {
    if (a->n_rows != b->n_rows || a->nnz != b->nnz) return 0;
    float *dense = xcalloc((size_t)m, sizeof(float));
    int ok = 1;
    for (int r = 0; r < a->n_rows && ok; r++) {
        if (a->row_ptr[r + 1] - a->row_ptr[r] != b->row_ptr[r + 1] - b->row_ptr[r]) ok = 0;
        for (int64_t e = a->row_ptr[r]; ok && e < a->row_ptr[r + 1]; e++) dense[a->idx[e]] = a->val[e];
        for (int64_t e = b->row_ptr[r]; ok && e < b->row_ptr[r + 1]; e++) ok = dense[b->idx[e]] == b->val[e];
        for (int64_t e = a->row_ptr[r]; e < a->row_ptr[r + 1]; e++) dense[a->idx[e]] = 0.0f;
    }
    free(dense);
    return ok;
}

int main(void) {
    const char *variants[] = {"standard", "temporal", "separate", "raster", "standard+M",
                              "temporal+M", "separate+M", "sparsemax", "entmax15", "frozen"};
    const int d = 24, m = 96;
    int passed = 0, failed = 0;
    for (size_t v = 0; v < sizeof(variants) / sizeof(*variants); v++) {
        SaeConfig cfg;
        if (sae_config_init(&cfg, variants[v], d, m) != 0) return 2;
        cfg.k = 6;
        cfg.k_aux = cfg.k_aux ? 16 : 0;
        cfg.alpha = 0.5f;
        cfg.lambda_t = cfg.contrast == CTR_TEMPORAL || cfg.contrast == CTR_SEPARATE ? 0.3f : 0.0f;
        cfg.lambda_s = cfg.contrast == CTR_SEPARATE ? 0.3f : 0.0f;
        cfg.lambda_r = cfg.contrast == CTR_RASTER ? 0.3f : 0.0f;
        SaeBatch b = cfg.contrast == CTR_RASTER ? sae_batch_pairs(150)
                     : cfg.contrast != CTR_NONE ? sae_batch_clips(3, 4, 5, 5)
                                                : sae_batch_tokens(300);
        const size_t np = sae_num_params(&cfg);
        float *params = xmalloc(sizeof(float) * np), *g1 = xmalloc(sizeof(float) * np),
              *g2 = xmalloc(sizeof(float) * np);
        float *x = xmalloc(sizeof(float) * (size_t)b.n_tok * d);
        uint64_t s = 17 + v;
        SaeTensors p, t1, t2;
        sae_carve(params, &cfg, &p);
        sae_carve(g1, &cfg, &t1);
        sae_carve(g2, &cfg, &t2);
        sae_init(&cfg, &p, 3, NULL);
        for (int j = 0; j < m; j++) p.b_enc[j] = 0.05f * (float)rng_normal(&s);
        for (int i = 0; i < b.n_tok * d; i++) x[i] = (float)rng_normal(&s);
        uint8_t dead[96];
        for (int j = 0; j < m; j++) dead[j] = j % 5 == 0;
        SaeWork *w1 = sae_work_create(&cfg, b.n_tok), *w2 = sae_work_create(&cfg, b.n_tok);
        sae_work_set_blocks(w2, 7, 5);
        SaeLosses L1, L2;
        sae_step(&cfg, &p, &t1, x, &b, dead, NULL, w1, &L1);
        sae_step(&cfg, &p, &t2, x, &b, dead, NULL, w2, &L2);
        double err = max_rel(g2, g1, np);
        double lerr = fabs(L1.total - L2.total) / fmax(fabs(L1.total), 1e-12);
        if (err <= 1e-6 && lerr <= 1e-6) {
            passed++;
            printf("ok   %-11s grad rel %.1e, loss rel %.1e\n", variants[v], err, lerr);
        } else {
            failed++;
            printf("FAIL %-11s grad rel %.1e, loss rel %.1e\n", variants[v], err, lerr);
        }
        SparseCodes enc;
        codes_alloc(&enc, b.n_tok, 16);
        sae_encode(&cfg, &p, x, b.n_tok, nextafterf(L1.min_kept, 0.0f), w1, &enc);
        if (same_codes(sae_last_codes(w1), &enc, m)) {
            passed++;
        } else {
            failed++;
            printf("FAIL %-11s sae_encode differs from the step's codes\n", variants[v]);
        }
        codes_free(&enc);
        sae_work_free(w1);
        sae_work_free(w2);
        free(params); free(g1); free(g2); free(x);
    }
    {
        // reuse: 40 tokens with 60 dead, then 200 with 10 (more rows of ehat,
        // fewer n x n_dead), then 40 with 30 again after 10 (more dead rows)
        SaeConfig cfg;
        sae_config_init(&cfg, "standard", d, m);
        cfg.k = 6;
        cfg.k_aux = 16;
        const size_t np = sae_num_params(&cfg);
        float *params = xmalloc(sizeof(float) * np), *g1 = xmalloc(sizeof(float) * np),
              *g2 = xmalloc(sizeof(float) * np), *x = xmalloc(sizeof(float) * 300 * d);
        SaeTensors p, t1, t2;
        sae_carve(params, &cfg, &p);
        sae_carve(g1, &cfg, &t1);
        sae_carve(g2, &cfg, &t2);
        sae_init(&cfg, &p, 11, NULL);
        uint64_t s = 5;
        for (int i = 0; i < 300 * d; i++) x[i] = (float)rng_normal(&s);
        const int steps[3][2] = {{40, 60}, {200, 10}, {40, 30}}; // tokens, dead (all dense AuxK)
        SaeWork *reused = sae_work_create(&cfg, 300);
        int ok = 1;
        for (int q = 0; q < 3; q++) {
            uint8_t dead[96];
            for (int j = 0; j < m; j++) dead[j] = j < steps[q][1];
            SaeBatch bq = sae_batch_tokens(steps[q][0]);
            SaeWork *fresh = sae_work_create(&cfg, 300);
            SaeLosses L1, L2;
            sae_step(&cfg, &p, &t1, x, &bq, dead, NULL, reused, &L1);
            sae_step(&cfg, &p, &t2, x, &bq, dead, NULL, fresh, &L2);
            ok = ok && max_rel(g1, g2, np) == 0.0 && L1.total == L2.total;
            sae_work_free(fresh);
        }
        if (ok) {
            passed++;
            printf("ok   workspace reuse across sizes and dead sets\n");
        } else {
            failed++;
            printf("FAIL workspace reuse across sizes and dead sets\n");
        }
        sae_work_free(reused);
        free(params); free(g1); free(g2); free(x);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
