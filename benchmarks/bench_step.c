// bench_step.c — tokens/s of one full training step (sae_step + optimizer)
// per variant at the paper's shape, beside the time of the encoder sgemm
// alone on the same batch: the step's only dense product, so the ratio
// step/sgemm says how much everything sparse costs on top of it.
//
//   bench_step [--variants a,b,..] [--reps N] [--dead-frac F] [--scale S] [--json]
// (default: every variant of the table, sae/variants.h, in its order)
// Shapes (SPEC §1, paper): d=768, m=6144, k=64, k_aux=512; standard and +M:
// 4096 tokens; temporal/separate (+M): 8 clips x 16 x 256; raster: 2048
// pairs; sparsemax/entmax15 and frozen as standard. --scale shrinks the number
// of tokens (clips, pairs) for a quick run. Data: Gaussian tokens with a
// low-rank, temporally smooth component so codes overlap as on real features.
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "stsae/base/common.h"
#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"
#include "stsae/sae/variants.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, n, sizeof(double), cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

// x[n, d]: per clip a slowly drifting mixture of 32 shared directions plus noise
static void make_tokens(float *x, int n, int d, int per_clip, uint64_t seed) {
    uint64_t s = seed;
    enum { R = 32 };
    float *basis = xmalloc(sizeof(float) * R * d);
    for (int i = 0; i < R * d; i++) basis[i] = (float)rng_normal(&s);
    float coef[R];
    for (int r = 0; r < n; r++) {
        if (r % per_clip == 0)
            for (int q = 0; q < R; q++) coef[q] = (float)rng_normal(&s);
        else
            for (int q = 0; q < R; q++) coef[q] = 0.95f * coef[q] + 0.3f * (float)rng_normal(&s);
        float *xr = x + (size_t)r * d;
        for (int i = 0; i < d; i++) xr[i] = 0.5f * (float)rng_normal(&s);
        for (int q = 0; q < R; q++)
            for (int i = 0; i < d; i++) xr[i] += 0.2f * coef[q] * basis[q * d + i];
    }
    free(basis);
}

int main(int argc, char **argv) {
    char every[512] = "";
    for (int i = 0, n = 0; i < sae_n_variants && n < (int)sizeof(every); i++)
        n += snprintf(every + n, sizeof(every) - (size_t)n, "%s%s", i ? "," : "", sae_variants[i].name);
    const char *variants = every;
    int reps = 3, json = 0;
    double dead_frac = 0.0, scale = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--variants") && i + 1 < argc) variants = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dead-frac") && i + 1 < argc) dead_frac = atof(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "usage: bench_step [--variants a,b] [--reps N] [--dead-frac F] [--scale S] [--json]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    const int d = 768, m = 6144;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    if (!json)
        printf("%-11s %7s %10s %10s %12s %9s %6s\n", "variant", "tokens", "step_s", "sgemm_s", "tokens/s",
               "step/gemm", "L0");
    char list[512];
    snprintf(list, sizeof(list), "%s", variants);
    for (char *v = strtok(list, ","); v; v = strtok(NULL, ",")) {
        SaeConfig cfg;
        if (sae_config_init(&cfg, v, d, m) != 0) {
            fprintf(stderr, "bench_step: unknown variant '%s'\n", v);
            return 2;
        }
        cfg.lambda_t = cfg.contrast == CTR_TEMPORAL || cfg.contrast == CTR_SEPARATE ? 0.1f : 0.0f;
        cfg.lambda_s = cfg.contrast == CTR_SEPARATE ? 0.1f : 0.0f;
        cfg.lambda_r = cfg.contrast == CTR_RASTER ? 0.1f : 0.0f;
        SaeBatch b;
        int per_clip;
        if (cfg.contrast == CTR_TEMPORAL || cfg.contrast == CTR_SEPARATE) {
            int clips = (int)fmax(1.0, floor(8 * scale + 0.5));
            b = sae_batch_clips(clips, 16, 16, 16);
            per_clip = 16 * 256;
        } else if (cfg.contrast == CTR_RASTER) {
            b = sae_batch_pairs((int)fmax(1.0, floor(2048 * scale + 0.5)));
            per_clip = 2;
        } else {
            b = sae_batch_tokens((int)fmax(64.0, floor(4096 * scale + 0.5)));
            per_clip = 1;
        }
        const int n = b.n_tok;
        size_t np = sae_num_params(&cfg);
        float *params = xmalloc(sizeof(float) * np), *grads = xmalloc(sizeof(float) * np);
        float *m1 = xcalloc(np, sizeof(float)), *m2 = xcalloc(np, sizeof(float));
        float *x = xmalloc(sizeof(float) * (size_t)n * d);
        make_tokens(x, n, d, per_clip, 7);
        SaeTensors p, g;
        sae_carve(params, &cfg, &p);
        sae_carve(grads, &cfg, &g);
        sae_init(&cfg, &p, 1, NULL);
        uint8_t *dead = xcalloc((size_t)m, 1);
        uint64_t s = 99;
        for (int j = 0; j < m; j++) dead[j] = rng_uniform(&s) < dead_frac;
        AdamConfig adam = adam_defaults(m, 1000);
        SaeWork *w = sae_work_create(&cfg, n);
        SaeLosses L;
        double *ts = xmalloc(sizeof(double) * (reps + 1)), *tg = xmalloc(sizeof(double) * (reps + 1));
        for (int r = 0; r <= reps; r++) { // r = 0 is the warm-up
            double t0 = wall_time();
            sae_step(&cfg, &p, &g, x, &b, dead, NULL, w, &L);
            optim_step(&cfg, &adam, r + 1, params, grads, m1, m2);
            ts[r] = wall_time() - t0;
        }
        float *pre = xmalloc(sizeof(float) * (size_t)n * m);
        for (int r = 0; r <= reps; r++) {
            double t0 = wall_time();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, d, 1.0f, x, d, p.W_enc, d, 0.0f, pre, m);
            tg[r] = wall_time() - t0;
        }
        free(pre);
        double step = median(ts + 1, reps), gemm = median(tg + 1, reps);
        if (json)
            printf("{\"variant\":\"%s\",\"tokens\":%d,\"step_s\":%.6f,\"sgemm_s\":%.6f,\"tokens_per_s\":%.1f,"
                   "\"l0\":%.2f,\"dead_frac\":%.3f,\"threads\":%d}\n",
                   v, n, step, gemm, n / step, L.l0, dead_frac, threads);
        else
            printf("%-11s %7d %10.4f %10.4f %12.0f %9.2f %6.1f\n", v, n, step, gemm, n / step, step / gemm, L.l0);
        fflush(stdout);
        sae_work_free(w);
        free(params); free(grads); free(m1); free(m2); free(x); free(dead); free(ts); free(tg);
    }
    return 0;
}
