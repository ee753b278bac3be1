// testutil_cuda.h — what the CUDA step's tests share: their tally of checks,
// and one step's inputs on the device (parameters, tokens, dead mask) with a
// workspace, and the step.
//
// In:  a configuration, its flat parameters (np floats, the host layout of
//      sae_carve), n tokens x [n, d] and the dead mask [m] (may be NULL).
// Out: CudaCase: the device state (parameters and gradients), x and the mask
//      on the device, their carved tensors and an FP32 workspace for n
//      tokens; cuda_case_step runs sae_step_cuda on them and downloads the
//      gradient (np floats) and, if z is given, the codes.
#ifndef STSAE_TESTUTIL_CUDA_H
#define STSAE_TESTUTIL_CUDA_H

#include <stdio.h>

#include "stsae/comm/device.h"
#include "stsae/sae/sae.h"
#include "stsae/sae/sae_cuda.h"
#include "testutil.h"

// The tally: a line per check (ok / FAIL, what, its error); worst_rel, the
// largest error below 1 of a passing check (relative differences).
static int passed, failed;
static double worst_rel;

static void check(int ok, const char *what, double err) {
    if (ok) {
        passed++;
        if (err > worst_rel && err < 1.0) worst_rel = err;
    } else {
        failed++;
    }
    printf("%s %-56s %.2e\n", ok ? "ok  " : "FAIL", what, err);
}

// The summary lines; the exit status (0: every check passed).
static int tally_report(void) {
    printf("largest relative difference of a passing check: %.2e\n", worst_rel);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

// The four gradients (flat, sae_carve's layout) of the device against the
// CPU's: a check each, max_rel within tol.
static inline void check_grads(const char *name, const SaeConfig *cfg, const float *g_dev, const float *g_cpu, double tol) {
    SaeTensors gd, gc;
    sae_carve((float *)g_dev, cfg, &gd);
    sae_carve((float *)g_cpu, cfg, &gc);
    const size_t md = (size_t)cfg->m * cfg->d;
    const struct {
        const char *name;
        const float *a, *b;
        size_t n;
    } parts[4] = {{"dW_enc", gd.W_enc, gc.W_enc, md},
                  {"db_enc", gd.b_enc, gc.b_enc, (size_t)cfg->m},
                  {"dD", gd.D, gc.D, md},
                  {"db_dec", gd.b_dec, gc.b_dec, (size_t)cfg->d}};
    char what[128];
    for (int q = 0; q < 4; q++) {
        const double e = max_rel(parts[q].a, parts[q].b, parts[q].n);
        snprintf(what, sizeof what, "%s: %s", name, parts[q].name);
        check(e <= tol, what, e);
    }
}

typedef struct {
    SaeDeviceState st;
    float *x_dev;
    uint8_t *dead_dev;
    SaeTensors pd, gd;
    SaeCudaWork *wg;
    size_t np;
} CudaCase;

static inline void cuda_case_open(CudaCase *cc, const SaeConfig *cfg, const float *params, const float *x, int n,
                                  const uint8_t *dead) {
    cc->np = sae_num_params(cfg);
    sae_device_state_create(&cc->st, cfg);
    cc->x_dev = dev_alloc_floats((size_t)n * cfg->d);
    cc->dead_dev = dead ? dev_alloc((size_t)cfg->m) : NULL;
    dev_upload(cc->x_dev, x, (size_t)n * cfg->d);
    dev_upload(cc->st.params, params, cc->np);
    if (dead) dev_upload_bytes(cc->dead_dev, dead, (size_t)cfg->m);
    sae_carve(cc->st.params, cfg, &cc->pd);
    sae_carve(cc->st.grads, cfg, &cc->gd);
    cc->wg = sae_cuda_work_create(cfg, n, SAE_GEMM_FP32);
}

static inline void cuda_case_step(CudaCase *cc, const SaeConfig *cfg, const SaeBatch *b, float *grad, SaeLosses *L,
                                  SparseCodes *z) {
    sae_step_cuda(cfg, &cc->pd, &cc->gd, cc->x_dev, b, cc->dead_dev, NULL, cc->wg, L);
    dev_download(grad, cc->st.grads, cc->np);
    if (z) sae_cuda_last_codes(cc->wg, z);
}

static inline void cuda_case_close(CudaCase *cc) {
    sae_cuda_work_free(cc->wg);
    dev_free(cc->x_dev);
    if (cc->dead_dev) dev_free(cc->dead_dev);
    sae_device_state_free(&cc->st);
}

#endif
