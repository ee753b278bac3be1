// common.h — what the kernel harnesses of dev/cuda/ share (llm.c's
// dev/cuda/common.h): the command line, seeded random data, device buffers,
// validation against a CPU reference, and the timing of one version.
//
// In:  a harness's argv: `[VERSION] [--small] [--n N] [--m M] [--d D] [--k K]
//      [--reps R] [--plant]` (VERSION 0 or none: every version), its default
//      shape (the paper's, for a GPU) and its --small one (for the CUDA
//      emulation, where a block's threads run as fibers on one CPU thread).
// Out: one line per version and case — PASS/FAIL with the worst error, time
//      per call, an effective bandwidth and/or FLOP rate — and the exit
//      status: 0 when every version run passed, 1 when one failed, 2 on a bad
//      command line, 77 without a device (ctest's skip), as the GPU tests.
//
// Validation is against references in double written in the harness from
// the definition, never from the kernel's code; indices and counts must be
// equal, values within a relative tolerance (0: bit-equal). --plant changes
// one element of each version's result before it is compared (a realistic
// error: 1e-3 relative, or one index), which must make the harness fail: the
// proof that it can. Timing: one warm-up call, then cudaEvents around `reps`
// calls (a host clock under the emulation, where times mean nothing); no L2
// flush between calls, as the step runs these kernels back to back.
#ifndef STSAE_DEV_CUDA_COMMON_H
#define STSAE_DEV_CUDA_COMMON_H

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cuda_check.h"

// ---- the command line ----------------------------------------------------------------

typedef struct {
    int version; // 0: every version
    int n, m, d, k, reps;
    int plant;
} DevArgs;

// A shape: the defaults a harness gives dev_args.
static inline DevArgs dev_shape(int n, int m, int d, int k, int reps) {
    DevArgs a;
    memset(&a, 0, sizeof(a));
    a.n = n, a.m = m, a.d = d, a.k = k, a.reps = reps;
    return a;
}

static inline void dev_usage(const char *prog, int n_versions, const char *bad) {
    fprintf(stderr,
            "usage: %s [VERSION 1..%d; 0 or none: all] [--small] [--n N] [--m M] [--d D] [--k K] [--reps R] "
            "[--plant]\n(bad argument: %s)\n",
            prog, n_versions, bad);
    exit(2);
}

// Parses argv over the defaults `paper` (the GPU shape) or, with --small,
// `small`; the shape flags given win over both. Exits 2 on a bad argument
// or a version outside 0..n_versions.
static inline DevArgs dev_args(int argc, char **argv, int n_versions, DevArgs paper, DevArgs small) {
    int is_small = 0;
    for (int i = 1; i < argc; i++) is_small |= strcmp(argv[i], "--small") == 0;
    DevArgs a = is_small ? small : paper;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--small")) continue;
        if (!strcmp(s, "--plant")) {
            a.plant = 1;
            continue;
        }
        int *flag = !strcmp(s, "--n") ? &a.n : !strcmp(s, "--m") ? &a.m : !strcmp(s, "--d") ? &a.d
                  : !strcmp(s, "--k") ? &a.k : !strcmp(s, "--reps") ? &a.reps : NULL;
        char *end = NULL;
        if (flag) {
            if (i + 1 == argc) dev_usage(argv[0], n_versions, s);
            const long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > (1l << 30)) dev_usage(argv[0], n_versions, argv[i]);
            *flag = (int)v;
            continue;
        }
        const long v = strtol(s, &end, 10);
        if (!*s || *end || v < 0 || v > n_versions) dev_usage(argv[0], n_versions, s);
        a.version = (int)v;
    }
    return a;
}

// Prints the device (exits 77, skipped, without one) and the shape.
static inline void dev_start(const char *what, const DevArgs *a) {
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev < 1) {
        (void)cudaGetLastError();
        printf("%s: no CUDA device: skipped\n", what);
        exit(77);
    }
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
#ifdef STSAE_CUDA_EMU
    printf("%s on the CUDA emulation (HIP-CPU; times are not a GPU's)\n", what);
#else
    printf("%s on %s\n", what, prop.name);
#endif
    printf("shape: n %d  m %d  d %d  k %d  reps %d%s\n", a->n, a->m, a->d, a->k, a->reps,
           a->plant ? "  (--plant: every version must FAIL)" : "");
}

// ---- random data (splitmix64: the same numbers on every machine) ----------------------

typedef struct {
    uint64_t s;
} Rng;

static inline uint64_t rng_u64(Rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
// uniform in [0, 1)
static inline double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }
static inline double rng_normal(Rng *r) {
    const double u = 1.0 - rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}
static inline void fill_normal(float *a, size_t n, float scale, Rng *r) {
    for (size_t i = 0; i < n; i++) a[i] = (float)(scale * rng_normal(r));
}
// Codes of n tokens in fixed-width slots [n, width] as TopK writes them:
// count[r] latents per token (width; token 0 none, token 1 width / 2, the
// edge cases), distinct and increasing in idx[r width ..]; unused slots get
// latent 0.
static inline void random_codes(int n, int m, int width, int *count, int32_t *idx, Rng *r) {
    uint8_t *flags = (uint8_t *)calloc((size_t)m, 1);
    for (int t = 0; t < n; t++) {
        count[t] = t == 0 ? 0 : t == 1 ? width / 2 : width;
        for (int c = 0; c < count[t];) {
            const int j = (int)(rng_u64(r) % (uint64_t)m);
            if (!flags[j]) flags[j] = 1, c++;
        }
        int32_t *out = idx + (size_t)t * width;
        int c = 0;
        for (int j = 0; j < m; j++)
            if (flags[j]) out[c++] = j, flags[j] = 0;
        while (c < width) out[c++] = 0;
    }
    free(flags);
}

// The kept latent of such codes nearest to target: Matryoshka's m_high, so
// that its boundary is crossed (latent m_high itself is kept, by some token).
static inline int kept_latent_near(int n, int width, const int *count, const int32_t *idx, int target) {
    int best = target;
    for (int t = 0; t < n; t++)
        for (int s = 0; s < count[t]; s++) {
            const int j = idx[(size_t)t * width + s];
            if (best == target || abs(j - target) < abs(best - target)) best = j;
        }
    return best;
}

// ---- buffers -------------------------------------------------------------------------

// A host array of n T (dies on failure).
template <class T> static T *host_alloc(size_t n) {
    T *p = (T *)malloc(sizeof(T) * (n > 0 ? n : 1));
    if (!p) stsae_die_at(__FILE__, __LINE__, "out of host memory (%zu bytes)", sizeof(T) * n);
    return p;
}
// A device array of n T, never written (on the emulation its bytes are 0xFF,
// so a kernel that reads what nobody wrote shows it).
template <class T> static T *device_alloc(size_t n) {
    T *p = NULL;
    cudaCheck(cudaMalloc((void **)&p, sizeof(T) * (n > 0 ? n : 1)));
    return p;
}
// A device copy of host[0..n).
template <class T> static T *device_copy(const T *host, size_t n) {
    T *p = device_alloc<T>(n);
    cudaCheck(cudaMemcpy(p, host, sizeof(T) * n, cudaMemcpyHostToDevice));
    return p;
}
// host[0..n) = dev[0..n) (synchronizes the device).
template <class T> static void host_copy(T *host, const T *dev, size_t n) {
    cudaCheck(cudaDeviceSynchronize());
    cudaCheck(cudaMemcpy(host, dev, sizeof(T) * n, cudaMemcpyDeviceToHost));
}

// ---- validation ----------------------------------------------------------------------

// What one version's comparisons found: failing elements, and the worst
// error in units of the tolerance's scale (relative; 0 for exact matches).
typedef struct {
    long fails;
    double worst;
} Check;

// out[0..n) against ref: element i fails when |out - ref| > tol * max(|ref|,
// floor) with floor the mean |ref| of the array (a sum that cancels to near
// zero is judged on the scale of its neighbours), or when out is NaN or
// infinite; tol 0 asks for equal values. The first 5 failures are printed.
static inline void validate_result(Check *c, const char *name, const float *out, const double *ref, size_t n, double tol) {
    double floor_ = 0.0;
    for (size_t i = 0; i < n; i++) floor_ += fabs(ref[i]);
    floor_ = n ? floor_ / (double)n : 0.0;
    long shown = 0;
    for (size_t i = 0; i < n; i++) {
        const double scale = fabs(ref[i]) > floor_ ? fabs(ref[i]) : floor_;
        const double err = fabs((double)out[i] - ref[i]) / (scale > 0.0 ? scale : 1.0);
        if (err > c->worst || !isfinite(out[i])) c->worst = isfinite(out[i]) ? err : INFINITY;
        if (isfinite(out[i]) && err <= tol) continue;
        if (shown++ < 5) printf("    %s[%zu] = %.9g, reference %.9g (error %.3g)\n", name, i, out[i], ref[i], err);
        c->fails++;
    }
}
// Integer results (indices, counts): equal or failing (the worst error is
// the values').
static inline void validate_exact(Check *c, const char *name, const int32_t *out, const int32_t *ref, size_t n) {
    long shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (out[i] == ref[i]) continue;
        if (shown++ < 5) printf("    %s[%zu] = %d, reference %d\n", name, i, out[i], ref[i]);
        c->fails++;
    }
}
// --plant: the realistic errors a wrong kernel makes, one element each (the
// first non-zero value from the middle on, 1e-3 off; the middle index, 1 off)
static inline void plant_value(float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[(n / 2 + i) % n] != 0.0f) {
            a[(n / 2 + i) % n] *= 1.001f;
            return;
        }
}
static inline void plant_index(int32_t *a, size_t n) {
    if (n) a[n / 2] += 1;
}

// ---- timing and the report -----------------------------------------------------------

// Milliseconds per call of call(): one warm-up, then reps calls between two
// events on the default stream.
template <class F> static double time_ms(int reps, F &&call) {
    call();
    cudaEvent_t t0, t1;
    cudaCheck(cudaEventCreate(&t0));
    cudaCheck(cudaEventCreate(&t1));
    cudaCheck(cudaEventRecord(t0, 0));
    for (int i = 0; i < reps; i++) call();
    cudaCheck(cudaEventRecord(t1, 0));
    cudaCheck(cudaEventSynchronize(t1));
    float ms = 0.0f;
    cudaCheck(cudaEventElapsedTime(&ms, t0, t1));
    cudaCheck(cudaEventDestroy(t0));
    cudaCheck(cudaEventDestroy(t1));
    return ms / reps;
}

// One version's line; bytes / flops 0: not printed. Returns 1 when it failed.
static inline int report(int version, const char *name, const Check *c, double ms, double bytes, double flops) {
    printf("version %d (%s): %s (worst error %.3g)  %.4f ms/call", version, name, c->fails ? "FAIL" : "PASS",
           c->worst, ms);
    if (bytes > 0) printf("  %.1f GB/s", bytes / (ms * 1e6));
    if (flops > 0) printf("  %.1f GFLOP/s", flops / (ms * 1e6));
    if (c->fails) printf("  [%ld elements wrong]", c->fails);
    printf("\n");
    fflush(stdout);
    return c->fails != 0;
}

#endif
