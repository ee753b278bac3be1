// bench_step.c — tokens/s of one full training step (sae_step + optimizer)
// per variant at the paper's shape, beside the time of the encoder sgemm
// alone on the same batch: the step's only dense product, so the ratio
// step/sgemm says how much everything sparse costs on top of it.
//
//   bench_step [--device cpu|cuda] [--variants a,b,..] [--reps N] [--dead-frac F]
//              [--scale S] [--math fp32,tf32,bf16] [--shape d,m,k,k_aux] [--json]
//              [--phases] [--blocks CHUNK,GRAD] [--gemm fp32|bf16]
// (default: every variant of the table, sae/variants.h, in its order; with
// --device cuda every variant the CUDA step covers, its `cuda` column)
// --device cuda: sae_step_cuda + optim_step_cuda (sae_cuda.h) per variant and
// encoder-GEMM math (--math, default all three), on the same batches as the
// CPU's (whole clips, pairs with their InfoNCE terms; sparsemax and entmax15
// on tokens, lambda_t = 0), beside the cuBLAS encoder GEMM alone in the
// same math (and its TF/s; peak_TF/s: the same math's 8192^3 GEMM, measured
// once) and the peak device memory of the variant (cudaMemGetInfo before the
// variant's allocations, the lowest free figure after them and each step).
// Exits 77 saying "no CUDA device" where the build has no CUDA or the machine
// no device. Linked against the emulated twins (bench_step_emu, a smoke test
// of tests/CMakeLists.txt) it runs the step on the CPU: times meaningless, no
// GEMM alone and no memory figure ("-"). --shape: other dims for such runs.
// Shapes (SPEC §1, paper): d=768, m=6144, k=64, k_aux=512; standard and +M:
// 4096 tokens; temporal/separate (+M): 8 clips x 16 x 256; raster: 2048
// pairs; sparsemax/entmax15 and frozen as standard. --scale shrinks the number
// of tokens (clips, pairs) for a quick run. --phases (CPU): where the step's
// time goes, the median seconds of each phase of sae_step (sae.h,
// sae_step_phases) and of the optimizer, and BatchTopK's rows encoded a
// second time, a line (or JSON object) per variant after its figures. --blocks (CPU): the step's encoder chunk and gradient
// block in tokens (sae_work_set_blocks), for tuning them. --gemm bf16 (CPU):
// the step with train.gemm: bf16 (gemm_bf16.h, oneDNN), beside both the fp32
// sgemm and the bf16 product alone (weights rounded + product: bf16_s). Data: Gaussian tokens with a
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
#include "stsae/comm/device.h"
#include "stsae/sae/gemm_bf16.h"
#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"
#include "stsae/sae/variants.h"
#ifdef STSAE_HAVE_CUDA
#include "stsae/sae/sae_cuda.h"
#endif
#if defined(STSAE_HAVE_CUDA) && !defined(STSAE_CUDA_EMU)
#define BENCH_CUDA_DIRECT 1 // cudaMemGetInfo and cuBLAS from here (the emulation's headers are C++)
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

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

// The variant's InfoNCE weights (0.1 for the terms its row has; sparsemax and
// entmax15 keep theirs off) and its batch at the paper's shape times scale;
// per_clip: tokens per clip (or pair) for make_tokens.
static SaeBatch bench_batch(SaeConfig *cfg, double scale, int *per_clip) {
    cfg->lambda_t = cfg->contrast == CTR_TEMPORAL || cfg->contrast == CTR_SEPARATE ? 0.1f : 0.0f;
    cfg->lambda_s = cfg->contrast == CTR_SEPARATE ? 0.1f : 0.0f;
    cfg->lambda_r = cfg->contrast == CTR_RASTER ? 0.1f : 0.0f;
    if (cfg->contrast == CTR_TEMPORAL || cfg->contrast == CTR_SEPARATE) {
        *per_clip = 16 * 256;
        return sae_batch_clips((int)fmax(1.0, floor(8 * scale + 0.5)), 16, 16, 16);
    }
    if (cfg->contrast == CTR_RASTER) {
        *per_clip = 2;
        return sae_batch_pairs((int)fmax(1.0, floor(2048 * scale + 0.5)));
    }
    *per_clip = 1;
    return sae_batch_tokens((int)fmax(64.0, floor(4096 * scale + 0.5)));
}

#ifdef STSAE_HAVE_CUDA
static const char *math_name(SaeGemmMath math) {
    return math == SAE_GEMM_BF16 ? "bf16" : math == SAE_GEMM_TF32 ? "tf32" : "fp32";
}

#ifdef BENCH_CUDA_DIRECT
static void cuda_ok(cudaError_t e, const char *what) {
    if (e != cudaSuccess) die("bench_step: %s: %s", what, cudaGetErrorString(e));
}
static void blas_ok(cublasStatus_t e, const char *what) {
    if (e != CUBLAS_STATUS_SUCCESS) die("bench_step: %s: cuBLAS status %d", what, (int)e);
}

static size_t dev_free_bytes(void) {
    size_t fr = 0, tot = 0;
    cuda_ok(cudaMemGetInfo(&fr, &tot), "cudaMemGetInfo");
    return fr;
}

// Median seconds of reps of C[rows, cols] = A[rows, inner] B[cols, inner]^T
// (row-major, as the step's encoder: pre = xc W_enc^T) in the given math, on
// buffers of its own (contents irrelevant to the time).
static double gemm_seconds(cublasHandle_t h, SaeGemmMath math, int rows, int cols, int inner, int reps) {
    const size_t el = math == SAE_GEMM_BF16 ? 2 : 4;
    void *a, *b;
    float *c;
    cuda_ok(cudaMalloc(&a, el * (size_t)rows * inner), "cudaMalloc");
    cuda_ok(cudaMalloc(&b, el * (size_t)cols * inner), "cudaMalloc");
    cuda_ok(cudaMalloc((void **)&c, sizeof(float) * (size_t)rows * cols), "cudaMalloc");
    cuda_ok(cudaMemset(a, 0x3c, el * (size_t)rows * inner), "cudaMemset"); // ~0.01 (fp32), ~0.011 (bf16)
    cuda_ok(cudaMemset(b, 0x3c, el * (size_t)cols * inner), "cudaMemset");
    blas_ok(cublasSetMathMode(h, math == SAE_GEMM_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
            "cublasSetMathMode");
    cudaEvent_t e0, e1;
    cuda_ok(cudaEventCreate(&e0), "cudaEventCreate");
    cuda_ok(cudaEventCreate(&e1), "cudaEventCreate");
    const float one = 1.0f, zero = 0.0f;
    double *t = xmalloc(sizeof(double) * (size_t)(reps + 1));
    for (int r = 0; r <= reps; r++) { // r = 0: warm-up (cuBLAS's heuristics, the clocks)
        cuda_ok(cudaEventRecord(e0, 0), "cudaEventRecord");
        // column-major C^T [cols, rows] = B (col-major [inner, cols])^T x A^T (col-major [inner, rows])
        if (math == SAE_GEMM_BF16)
            blas_ok(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, cols, rows, inner, &one, b, CUDA_R_16BF, inner, a,
                                 CUDA_R_16BF, inner, &zero, c, CUDA_R_32F, cols, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx");
        else
            blas_ok(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, cols, rows, inner, &one, (const float *)b, inner,
                                (const float *)a, inner, &zero, c, cols),
                    "cublasSgemm");
        cuda_ok(cudaEventRecord(e1, 0), "cudaEventRecord");
        cuda_ok(cudaEventSynchronize(e1), "cudaEventSynchronize");
        float ms = 0.0f;
        cuda_ok(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
        t[r] = 1e-3 * ms;
    }
    const double med = median(t + 1, reps);
    free(t);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    return med;
}
#endif

// One covered variant in one math: the step + Adam, the GEMM alone, the memory.
static void bench_cuda_one(const SaeVariant *row, SaeGemmMath math, int d, int m, int k, int k_aux, double scale,
                           double dead_frac, int reps, int json, double peak_tfs, void *blas) {
    SaeConfig cfg;
    if (sae_config_init(&cfg, row->name, d, m) != 0) die("bench_step: unknown variant '%s'", row->name);
    if (k > 0) cfg.k = k;
    if (k_aux >= 0 && cfg.k_aux > 0) cfg.k_aux = k_aux;
    int per_clip;
    const SaeBatch b = bench_batch(&cfg, scale, &per_clip);
    const int n = b.n_tok;
#ifdef BENCH_CUDA_DIRECT
    cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    const size_t free0 = dev_free_bytes();
    size_t free_min = free0;
#define MEM_MARK() (cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize"), \
                    free_min = dev_free_bytes() < free_min ? dev_free_bytes() : free_min)
#else
#define MEM_MARK() ((void)0)
#endif
    const size_t np = sae_num_params(&cfg);
    float *params = xmalloc(sizeof(float) * np), *x = xmalloc(sizeof(float) * (size_t)n * d);
    make_tokens(x, n, d, per_clip, 7);
    SaeTensors p, pd, gd;
    sae_carve(params, &cfg, &p);
    sae_init(&cfg, &p, 1, NULL);
    uint8_t *dead = xcalloc((size_t)m, 1);
    uint64_t s = 99;
    for (int j = 0; j < m; j++) dead[j] = rng_uniform(&s) < dead_frac;
    SaeDeviceState st;
    sae_device_state_create(&st, &cfg);
    dev_upload(st.params, params, np);
    float *x_dev = dev_alloc_floats((size_t)n * d);
    dev_upload(x_dev, x, (size_t)n * d);
    uint8_t *dead_dev = dev_alloc((size_t)m);
    dev_upload_bytes(dead_dev, dead, (size_t)m);
    sae_carve(st.params, &cfg, &pd);
    sae_carve(st.grads, &cfg, &gd);
    SaeCudaWork *w = sae_cuda_work_create(&cfg, n, math);
    MEM_MARK();
    AdamConfig adam = adam_defaults(m, 1000);
    SaeLosses L;
    double *ts = xmalloc(sizeof(double) * (size_t)(reps + 1));
    for (int r = 0; r <= reps; r++) { // r = 0 is the warm-up
        double t0 = wall_time();
        sae_step_cuda(&cfg, &pd, &gd, x_dev, &b, dead_frac > 0 ? dead_dev : NULL, NULL, w, &L);
        optim_step_cuda(&cfg, &adam, r + 1, st.params, st.grads, st.m1, st.m2);
#ifdef BENCH_CUDA_DIRECT
        cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
#endif
        ts[r] = wall_time() - t0;
        MEM_MARK();
    }
    const double step = median(ts + 1, reps);
    double gemm = NAN, peak_mib = NAN;
#ifdef BENCH_CUDA_DIRECT
    peak_mib = (double)(free0 - free_min) / (1024.0 * 1024.0);
#endif
    sae_cuda_work_free(w);
    dev_free(x_dev);
    dev_free(dead_dev);
    sae_device_state_free(&st);
#ifdef BENCH_CUDA_DIRECT
    gemm = gemm_seconds((cublasHandle_t)blas, math, n, m, d, reps);
#else
    (void)blas;
#endif
#undef MEM_MARK
    const double gemm_tfs = 2.0 * n * (double)m * d / gemm * 1e-12;
    if (json)
        printf("{\"device\":\"cuda\",\"variant\":\"%s\",\"math\":\"%s\",\"tokens\":%d,\"step_s\":%.6f,\"gemm_s\":%.6f,"
               "\"tokens_per_s\":%.1f,\"gemm_tflops\":%.2f,\"peak_tflops\":%.2f,\"peak_mem_mib\":%.1f,\"l0\":%.2f,"
               "\"dead_frac\":%.3f}\n",
               row->name, math_name(math), n, step, isnan(gemm) ? -1.0 : gemm, n / step,
               isnan(gemm) ? -1.0 : gemm_tfs, isnan(peak_tfs) ? -1.0 : peak_tfs,
               isnan(peak_mib) ? -1.0 : peak_mib, L.l0, dead_frac);
    else if (isnan(gemm))
        printf("%-11s %4s %7d %9.3f %9s %12.0f %9s %7s %7s %8s %6.1f\n", row->name, math_name(math), n, 1e3 * step,
               "-", n / step, "-", "-", "-", "-", L.l0);
    else
        printf("%-11s %4s %7d %9.3f %9.3f %12.0f %9.2f %7.1f %7.1f %8.1f %6.1f\n", row->name, math_name(math), n,
               1e3 * step, 1e3 * gemm, n / step, step / gemm, gemm_tfs, peak_tfs, peak_mib, L.l0);
    fflush(stdout);
    free(params); free(x); free(dead); free(ts);
}
#endif

// --device cuda: every covered variant (or those named) in every math asked for.
static int bench_cuda(const char *variants, const char *maths, int d, int m, int k, int k_aux, double scale,
                      double dead_frac, int reps, int json) {
    const int nd = device_count();
    if (nd <= 0) {
        printf("bench_step: no CUDA device (%s)\n", device_describe());
        return 77;
    }
#ifndef STSAE_HAVE_CUDA
    (void)variants; (void)maths; (void)d; (void)m; (void)k; (void)k_aux; (void)scale; (void)dead_frac; (void)reps;
    (void)json;
    return 77;
#else
    SaeGemmMath math[3];
    int n_math = 0;
    char mlist[64];
    snprintf(mlist, sizeof mlist, "%s", maths);
    for (char *t = strtok(mlist, ","); t && n_math < 3; t = strtok(NULL, ",")) {
        if (!strcmp(t, "fp32")) math[n_math++] = SAE_GEMM_FP32;
        else if (!strcmp(t, "tf32")) math[n_math++] = SAE_GEMM_TF32;
        else if (!strcmp(t, "bf16")) math[n_math++] = SAE_GEMM_BF16;
        else {
            fprintf(stderr, "bench_step: unknown --math '%s' (fp32, tf32, bf16)\n", t);
            return 2;
        }
    }
    char every[512] = "";
    for (int i = 0, n = 0; i < sae_n_variants && n < (int)sizeof(every); i++)
        if (sae_variants[i].cuda)
            n += snprintf(every + n, sizeof(every) - (size_t)n, "%s%s", n ? "," : "", sae_variants[i].name);
    if (!variants) variants = every;
    void *blas = NULL;
    double peak[3] = {NAN, NAN, NAN};
#ifdef BENCH_CUDA_DIRECT
    cublasHandle_t h;
    blas_ok(cublasCreate(&h), "cublasCreate");
    blas = h;
    for (int q = 0; q < n_math; q++)
        peak[q] = 2.0 * 8192.0 * 8192.0 * 8192.0 / gemm_seconds(h, math[q], 8192, 8192, 8192, reps) * 1e-12;
#endif
    if (!json) {
        printf("# %s%s; d=%d m=%d, step = sae_step_cuda + optim_step_cuda, dead_frac %.3f\n", device_describe(),
#ifdef STSAE_CUDA_EMU
               " (CUDA EMULATION on the CPU: times are not GPU times)",
#else
               "",
#endif
               d, m, dead_frac);
        printf("%-11s %4s %7s %9s %9s %12s %9s %7s %7s %8s %6s\n", "variant", "math", "tokens", "step_ms", "gemm_ms",
               "tokens/s", "step/gemm", "gemm_TF", "peak_TF", "mem_MiB", "L0");
    }
    char list[512];
    snprintf(list, sizeof(list), "%s", variants);
    int bad = 0;
    for (char *v = strtok(list, ","); v; v = strtok(NULL, ",")) {
        const SaeVariant *row = NULL;
        for (int i = 0; i < sae_n_variants; i++)
            if (!strcmp(sae_variants[i].name, v)) row = &sae_variants[i];
        if (!row) {
            fprintf(stderr, "bench_step: unknown variant '%s'\n", v);
            return 2;
        }
        if (!row->cuda) {
            fprintf(stderr, "bench_step: variant '%s' has no CUDA step yet (sae_cuda.h): skipped\n", v);
            bad = 1;
            continue;
        }
        // strtok is not reentrant: bench_cuda_one parses nothing
        for (int q = 0; q < n_math; q++)
            bench_cuda_one(row, math[q], d, m, k, k_aux, scale, dead_frac, reps, json, peak[q], blas);
    }
#ifdef BENCH_CUDA_DIRECT
    cublasDestroy(h);
#endif
    return bad ? 1 : 0;
#endif
}

int main(int argc, char **argv) {
    char every[512] = "";
    for (int i = 0, n = 0; i < sae_n_variants && n < (int)sizeof(every); i++)
        n += snprintf(every + n, sizeof(every) - (size_t)n, "%s%s", i ? "," : "", sae_variants[i].name);
    const char *variants = every;
    int reps = 3, json = 0, cuda = 0, variants_given = 0, phases = 0, chunk = 0, grad_block = 0, bf16 = 0;
    int d = 768, m = 6144, k = 0, k_aux = -1; // k, k_aux: the variant's defaults (SPEC: 64, 512)
    const char *maths = "fp32,tf32,bf16";
    double dead_frac = 0.0, scale = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--variants") && i + 1 < argc) variants = argv[++i], variants_given = 1;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            const char *dv = argv[++i];
            if (strcmp(dv, "cpu") && strcmp(dv, "cuda")) {
                fprintf(stderr, "bench_step: --device cpu or cuda, not '%s'\n", dv);
                return 2;
            }
            cuda = !strcmp(dv, "cuda");
        } else if (!strcmp(argv[i], "--math") && i + 1 < argc) maths = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            if (sscanf(argv[++i], "%d,%d,%d,%d", &d, &m, &k, &k_aux) < 2 || d < 1 || m < 1) {
                fprintf(stderr, "bench_step: --shape d,m[,k[,k_aux]]\n");
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dead-frac") && i + 1 < argc) dead_frac = atof(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc) scale = atof(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--phases")) phases = 1;
        else if (!strcmp(argv[i], "--gemm") && i + 1 < argc) {
            const char *gm = argv[++i];
            if (strcmp(gm, "fp32") && strcmp(gm, "bf16")) {
                fprintf(stderr, "bench_step: --gemm fp32 or bf16, not '%s'\n", gm);
                return 2;
            }
            bf16 = !strcmp(gm, "bf16");
        }
        else if (!strcmp(argv[i], "--blocks") && i + 1 < argc) {
            if (sscanf(argv[++i], "%d,%d", &chunk, &grad_block) != 2) {
                fprintf(stderr, "bench_step: --blocks CHUNK,GRAD (tokens)\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_step [--device cpu|cuda] [--variants a,b] [--reps N] [--dead-frac F] "
                            "[--scale S] [--math fp32,tf32,bf16] [--shape d,m,k,k_aux] [--json] [--phases] "
                            "[--blocks CHUNK,GRAD] [--gemm fp32|bf16]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (cuda) return bench_cuda(variants_given ? variants : NULL, maths, d, m, k, k_aux, scale, dead_frac, reps, json);
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
        if (k > 0) cfg.k = k;
        if (k_aux >= 0 && cfg.k_aux > 0) cfg.k_aux = k_aux;
        int per_clip;
        const SaeBatch b = bench_batch(&cfg, scale, &per_clip);
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
        if (chunk > 0 || grad_block > 0) sae_work_set_blocks(w, chunk, grad_block);
        if (bf16) {
            char why[256];
            if (!gemm_bf16_available(why, sizeof why, NULL, NULL)) {
                fprintf(stderr, "bench_step: --gemm bf16: %s\n", why);
                return 77;
            }
            sae_work_set_math(w, SAE_GEMM_BF16);
        }
        SaeLosses L;
        double *ts = xmalloc(sizeof(double) * (reps + 1)), *tg = xmalloc(sizeof(double) * (reps + 1));
        double *tp = xmalloc(sizeof(double) * (SAE_N_PHASES + 1) * (reps + 1)); // [phase][rep], optimizer last
        for (int r = 0; r <= reps; r++) { // r = 0 is the warm-up
            double t0 = wall_time();
            sae_step(&cfg, &p, &g, x, &b, dead, NULL, w, &L);
            double t1 = wall_time();
            optim_step(&cfg, &adam, r + 1, params, grads, m1, m2);
            ts[r] = wall_time() - t0;
            for (int q = 0; q < SAE_N_PHASES; q++) tp[q * (reps + 1) + r] = sae_step_phases(w)[q];
            tp[SAE_N_PHASES * (reps + 1) + r] = ts[r] - (t1 - t0);
        }
        float *pre = xmalloc(sizeof(float) * (size_t)n * m);
        for (int r = 0; r <= reps; r++) {
            double t0 = wall_time();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, d, 1.0f, x, d, p.W_enc, d, 0.0f, pre, m);
            tg[r] = wall_time() - t0;
        }
        const double gemm = median(tg + 1, reps);
        double bf16_s = NAN;
        if (bf16) {
            GemmBf16 *gb = gemm_bf16_create(d, m);
            for (int r = 0; r <= reps; r++) {
                double t0 = wall_time();
                gemm_bf16_set_weights(gb, p.W_enc);
                gemm_bf16_apply(gb, x, n, pre);
                tg[r] = wall_time() - t0;
            }
            bf16_s = median(tg + 1, reps);
            gemm_bf16_free(gb);
        }
        free(pre);
        const double step = median(ts + 1, reps);
        if (json)
            printf("{\"variant\":\"%s\",\"gemm\":\"%s\",\"tokens\":%d,\"step_s\":%.6f,\"sgemm_s\":%.6f,"
                   "\"bf16_s\":%.6f,\"tokens_per_s\":%.1f,\"l0\":%.2f,\"dead_frac\":%.3f,\"threads\":%d}\n",
                   v, bf16 ? "bf16" : "fp32", n, step, gemm, bf16 ? bf16_s : -1.0, n / step, L.l0, dead_frac,
                   threads);
        else if (bf16)
            printf("%-11s %7d %10.4f %10.4f %12.0f %9.2f %6.1f  (bf16: its product alone %.4f s)\n", v, n, step, gemm,
                   n / step, step / gemm, L.l0, bf16_s);
        else
            printf("%-11s %7d %10.4f %10.4f %12.0f %9.2f %6.1f\n", v, n, step, gemm, n / step, step / gemm, L.l0);
        if (phases) {
            printf(json ? "{\"variant\":\"%s\",\"phases_s\":{" : "  %s phases (ms):", v);
            for (int q = 0; q <= SAE_N_PHASES; q++) {
                const char *name = q < SAE_N_PHASES ? sae_phase_names[q] : "optimizer";
                const double t = median(tp + q * (reps + 1) + 1, reps);
                if (json) printf("%s\"%s\":%.6f", q ? "," : "", name, t);
                else printf(" %s %.1f", name, 1e3 * t);
            }
            // BatchTopK: the rows of the last step encoded a second time (select.h)
            printf(json ? "},\"batch_redo\":%lld}\n" : " (rows encoded again: %lld)\n",
                   (long long)sae_step_batch_redo(w));
        }
        fflush(stdout);
        sae_work_free(w);
        free(params); free(grads); free(m1); free(m2); free(x); free(dead); free(ts); free(tg); free(tp);
    }
    return 0;
}
