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
// And BatchTopK with rows that must be encoded again (k = 2: a row's
// candidates are bounded at its 8th block maximum; every tenth token scaled
// up has more entries than that above the threshold): the redo happens, in
// chunks of 7 rows too, the result does not depend on the chunks, the codes
// are every entry of the full pre-activations >= the threshold (sae_encode),
// and the threshold is the (k * tokens)-th largest of them.
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

// A step's buffers: parameters (sae_init with this seed), two gradient
// buffers carved alike, and room for n tokens of x (the caller fills it).
typedef struct {
    size_t np;
    float *params, *g1, *g2, *x;
    SaeTensors p, t1, t2;
} StepBufs;

static StepBufs bufs_make(const SaeConfig *cfg, int n, uint64_t seed) {
    StepBufs b = {.np = sae_num_params(cfg)};
    b.params = xmalloc(sizeof(float) * b.np);
    b.g1 = xmalloc(sizeof(float) * b.np);
    b.g2 = xmalloc(sizeof(float) * b.np);
    b.x = xmalloc(sizeof(float) * (size_t)n * cfg->d);
    sae_carve(b.params, cfg, &b.p);
    sae_carve(b.g1, cfg, &b.t1);
    sae_carve(b.g2, cfg, &b.t2);
    sae_init(cfg, &b.p, seed, NULL);
    return b;
}

static void bufs_free(StepBufs *b) {
    free(b->params);
    free(b->g1);
    free(b->g2);
    free(b->x);
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
        StepBufs sb = bufs_make(&cfg, b.n_tok, 3);
        const size_t np = sb.np;
        float *g1 = sb.g1, *g2 = sb.g2, *x = sb.x;
        SaeTensors p = sb.p, t1 = sb.t1, t2 = sb.t2;
        uint64_t s = 17 + v;
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
        bufs_free(&sb);
    }
    {
        // reuse: 40 tokens with 60 dead, then 200 with 10 (more rows of ehat,
        // fewer n x n_dead), then 40 with 30 again after 10 (more dead rows)
        SaeConfig cfg;
        sae_config_init(&cfg, "standard", d, m);
        cfg.k = 6;
        cfg.k_aux = 16;
        StepBufs sb = bufs_make(&cfg, 300, 11);
        const size_t np = sb.np;
        float *g1 = sb.g1, *g2 = sb.g2, *x = sb.x;
        SaeTensors p = sb.p, t1 = sb.t1, t2 = sb.t2;
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
        bufs_free(&sb);
    }
    {
        SaeConfig cfg;
        sae_config_init(&cfg, "standard+M", d, m);
        cfg.k = 2;
        const int n = 300;
        StepBufs sb = bufs_make(&cfg, n, 13);
        const size_t np = sb.np;
        float *g1 = sb.g1, *g2 = sb.g2, *x = sb.x;
        SaeTensors p = sb.p, t1 = sb.t1, t2 = sb.t2;
        uint64_t s = 9;
        for (int i = 0; i < n * d; i++) x[i] = (float)rng_normal(&s) * (i / d % 10 == 0 ? 4.0f : 1.0f);
        SaeBatch b = sae_batch_tokens(n);
        SaeWork *w1 = sae_work_create(&cfg, n), *w2 = sae_work_create(&cfg, n);
        sae_work_set_blocks(w2, 7, 5);
        SaeLosses L1, L2;
        sae_step(&cfg, &p, &t1, x, &b, NULL, NULL, w1, &L1);
        sae_step(&cfg, &p, &t2, x, &b, NULL, NULL, w2, &L2);
        const int64_t redo1 = sae_step_batch_redo(w1), redo2 = sae_step_batch_redo(w2);
        SparseCodes at, above;
        codes_alloc(&at, n, 16);
        codes_alloc(&above, n, 16);
        sae_encode(&cfg, &p, x, n, nextafterf(L1.min_kept, 0.0f), w1, &at); // >= v
        sae_encode(&cfg, &p, x, n, L1.min_kept, w1, &above);                // > v
        const int64_t kk = (int64_t)cfg.k * n;
        const int ok = redo1 > 0 && redo2 == redo1 && max_rel(g2, g1, np) <= 1e-6 && L1.total == L2.total &&
                       same_codes(sae_last_codes(w1), &at, m) && at.nnz >= kk && above.nnz < kk;
        printf("%s BatchTopK, %lld of %d rows encoded again: kept %lld (>= v), %lld (> v), k n = %lld\n",
               ok ? "ok  " : "FAIL", (long long)redo1, n, (long long)at.nnz, (long long)above.nnz, (long long)kk);
        if (ok) passed++;
        else failed++;
        codes_free(&at);
        codes_free(&above);
        sae_work_free(w1);
        sae_work_free(w2);
        bufs_free(&sb);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
