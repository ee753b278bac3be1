// test_cuda_step.c — the CUDA step (sae_cuda.h) against the CPU step (sae.h)
// on the same small random case: `standard` and `frozen` (TopK, AuxK off),
// d = 32, m = 128, k = 8, 300 tokens.
// Losses (rec, total, l0) and the four gradients W_enc, b_enc, D, b_dec must
// agree to 1e-4 relative in fp32, and a second CUDA step must give the same
// bits (no atomics). Then one Adam step from both gradients (CPU optim_step,
// CUDA optim_step_cuda) must give the same parameters and moments to 1e-4.
// TF32 and bf16 encoder GEMMs run the step too, checked loosely (1e-2 on
// the loss): they may change which latents are kept. And dev_tokens_f16
// (batches from float16 features resident on the device) against an
// independent conversion of every float16 value, bit for bit.
// Exits 77 ("no CUDA device: skipped") where no device or driver is present.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/comm/device.h"
#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"
#include "stsae/sae/sae_cuda.h"
#include "testutil.h"
#include "testutil_cuda.h"

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-30); }

static void run_variant(const char *variant) {
    const int d = 32, m = 128, n = 300;
    SaeConfig cfg;
    if (sae_config_init(&cfg, variant, d, m) != 0) die("unknown variant %s", variant);
    cfg.k = 8;
    const size_t np = sae_num_params(&cfg);
    float *params = xmalloc(sizeof(float) * np), *g_cpu = xmalloc(sizeof(float) * np),
          *g_gpu = xmalloc(sizeof(float) * np), *g_again = xmalloc(sizeof(float) * np),
          *x = xmalloc(sizeof(float) * (size_t)n * d);
    SaeTensors p, gc;
    sae_carve(params, &cfg, &p);
    sae_carve(g_cpu, &cfg, &gc);
    sae_init(&cfg, &p, 7, NULL);
    uint64_t s = 29;
    for (int j = 0; j < m; j++) p.b_enc[j] = 0.05f * (float)rng_normal(&s);
    for (int i = 0; i < d; i++) p.b_dec[i] = 0.1f * (float)rng_normal(&s);
    for (int i = 0; i < n * d; i++) x[i] = (float)rng_normal(&s);
    const SaeBatch b = sae_batch_tokens(n);

    SaeWork *wc = sae_work_create(&cfg, n);
    SaeLosses Lc;
    sae_step(&cfg, &p, &gc, x, &b, NULL, NULL, wc, &Lc);

    CudaCase cc;
    cuda_case_open(&cc, &cfg, params, x, n, NULL);
    SaeLosses Lg;
    cuda_case_step(&cc, &cfg, &b, g_gpu, &Lg, NULL);
    char what[96];
    snprintf(what, sizeof what, "%s: rec loss", variant);
    check(rel(Lg.rec, Lc.rec) <= 1e-4 && rel(Lg.total, Lc.total) <= 1e-4, what, rel(Lg.rec, Lc.rec));
    snprintf(what, sizeof what, "%s: l0 and tokens", variant);
    check(Lg.l0 == Lc.l0 && Lg.n_tok_global == Lc.n_tok_global, what, fabs(Lg.l0 - Lc.l0));
    check_grads(variant, &cfg, g_gpu, g_cpu, 1e-4);

    // the same step again: the same bits
    SaeLosses L2;
    cuda_case_step(&cc, &cfg, &b, g_again, &L2, NULL);
    snprintf(what, sizeof what, "%s: repeated step bit-identical", variant);
    check(memcmp(g_again, g_gpu, sizeof(float) * np) == 0 && L2.rec == Lg.rec, what, max_rel(g_again, g_gpu, np));

    // one Adam step from the same gradients (the CPU ones on both sides)
    AdamConfig a = adam_defaults(m, 1000);
    a.lr = 1e-2f;
    float *m1 = xcalloc(np, sizeof(float)), *m2 = xcalloc(np, sizeof(float)), *back = xmalloc(sizeof(float) * np);
    dev_upload(cc.st.grads, g_cpu, np);
    optim_step_cuda(&cfg, &a, 1, cc.st.params, cc.st.grads, cc.st.m1, cc.st.m2);
    optim_step(&cfg, &a, 1, params, g_cpu, m1, m2);
    dev_download(back, cc.st.params, np);
    double ep = max_rel(back, params, np);
    dev_download(back, cc.st.m1, np);
    double e1 = max_rel(back, m1, np);
    dev_download(back, cc.st.m2, np);
    double e2 = max_rel(back, m2, np);
    snprintf(what, sizeof what, "%s: Adam step (params, m1, m2)", variant);
    check(ep <= 1e-4 && e1 <= 1e-4 && e2 <= 1e-4, what, fmax(ep, fmax(e1, e2)));

    // lower-precision encoder GEMMs, from the updated parameters, against fp32
    dev_download(params, cc.st.params, np);
    SaeLosses Lf;
    sae_step(&cfg, &p, &gc, x, &b, NULL, NULL, wc, &Lf);
    const SaeGemmMath maths[2] = {SAE_GEMM_TF32, SAE_GEMM_BF16};
    const char *names[2] = {"tf32", "bf16"};
    for (int q = 0; q < 2; q++) {
        SaeCudaWork *wm = sae_cuda_work_create(&cfg, n, maths[q]);
        SaeLosses Lm;
        sae_step_cuda(&cfg, &cc.pd, &cc.gd, cc.x_dev, &b, NULL, NULL, wm, &Lm);
        snprintf(what, sizeof what, "%s: %s encoder, rec loss", variant, names[q]);
        check(rel(Lm.rec, Lf.rec) <= 1e-2, what, rel(Lm.rec, Lf.rec));
        sae_cuda_work_free(wm);
    }

    cuda_case_close(&cc);
    sae_work_free(wc);
    free(params); free(g_cpu); free(g_gpu); free(g_again); free(x); free(m1); free(m2); free(back);
}

// float16 bits as a value, written independently of the kernel (ldexpf).
static float half_ref(uint16_t h) {
    const int e = (h >> 10) & 31, m = h & 1023;
    const float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(1024 + m), e - 25);
    return (h & 0x8000) ? -v : v;
}

// dev_tokens_f16 (a batch from resident float16 features): every one of the
// 65536 float16 values, rows gathered in a shuffled order, times a scale.
static void check_tokens_f16(void) {
    enum { D = 16, ROWS = 65536 / D, N = 3000 };
    uint16_t *h = malloc(sizeof(uint16_t) * 65536);
    int64_t src[N];
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    uint64_t st = 7;
    for (int i = 0; i < N; i++) src[i] = (int64_t)(rng_next(&st) % ROWS);
    uint16_t *dfeat = dev_alloc(sizeof(uint16_t) * 65536);
    int64_t *dsrc = dev_alloc(sizeof(src));
    float *dx = dev_alloc_floats((size_t)N * D), *x = malloc(sizeof(float) * N * D);
    dev_upload_bytes(dfeat, h, sizeof(uint16_t) * 65536);
    dev_upload_bytes(dsrc, src, sizeof(src));
    const float scales[2] = {1.0f, 0.37f};
    for (int k = 0; k < 2; k++) {
        dev_tokens_f16(dfeat, dsrc, N, D, scales[k], dx);
        dev_download(x, dx, (size_t)N * D);
        int bad = 0;
        for (int r = 0; r < N; r++)
            for (int j = 0; j < D; j++) {
                const float want = half_ref(h[src[r] * D + j]) * (scales[k] != 1.0f ? scales[k] : 1.0f);
                const float got = x[(size_t)r * D + j];
                bad += isnan(want) ? !isnan(got) : memcmp(&want, &got, sizeof(float)) != 0;
            }
        check(bad == 0, scales[k] == 1.0f ? "dev_tokens_f16: every float16 value, exact"
                                          : "dev_tokens_f16: every float16 value times a scale, exact", bad);
    }
    dev_free(dfeat), dev_free(dsrc), dev_free(dx);
    free(h), free(x);
}

int main(void) {
    if (device_count() <= 0) {
        printf("no CUDA device: skipped (%s)\n", device_describe());
        return 77;
    }
    printf("%s", device_list());
    check(strncmp(device_list(), "GPU 0: ", 7) == 0 && strstr(device_list(), "GiB, sm_"), "device_list: GPU 0 named",
          0.0);
    run_variant("standard");
    run_variant("frozen");
    check_tokens_f16();
    return tally_report();
}
