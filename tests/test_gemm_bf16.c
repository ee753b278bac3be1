// test_gemm_bf16.c — train.gemm: bf16 on the CPU (gemm_bf16.h, issue 18
// item 2), against independent references:
//   1. the product: pre = bf16(a) bf16(W)^T with fp32 accumulation, against
//      the same product of the rounded operands summed in double (brute
//      force; rounding by bf16_round, ties to even): within 1e-5 of its
//      largest entry, over two row counts (two oneDNN primitives, the
//      second call reusing the first's buffers). Against the plain fp32
//      product it must differ by 1e-4 to 1e-2 relative: bf16 rounding
//      happened, and no more than that (a fast path silently fp32, or
//      operands cut short, fails);
//   2. the losses: the same SAE (standard, and standard+M for BatchTopK; dead latents with
//      AuxK) trained 40 steps from the same start with fp32 and with bf16:
//      every step's reconstruction FVU within 2% of fp32's, the final one
//      printed (the bound README and RESULTS.md quote).
// Exits 77 (ctest: skipped) where the build has no oneDNN. Planted
// (bf16_truncate: operands truncated instead of rounded) must fail 1.
// Prints "N passed, M failed"; exits 1 on any failure.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "stsae/base/common.h"
#include "stsae/sae/gemm_bf16.h"
#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"

static double from_bf16(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v = {(uint32_t)h << 16};
    return v.f;
}

static void check_product(int n, int d, int m, uint64_t *s, GemmBf16 *g, const float *W) {
    float *a = xmalloc(sizeof(float) * (size_t)n * d), *pre = xmalloc(sizeof(float) * (size_t)n * m);
    for (size_t i = 0; i < (size_t)n * d; i++) a[i] = (float)rng_normal(s);
    gemm_bf16_apply(g, a, n, pre);
    double err_ref = 0.0, err_fp32 = 0.0, top = 0.0;
    for (int r = 0; r < n; r++)
        for (int j = 0; j < m; j++) {
            double ref = 0.0, f32 = 0.0;
            for (int i = 0; i < d; i++) {
                ref += from_bf16(bf16_round(a[(size_t)r * d + i])) * from_bf16(bf16_round(W[(size_t)j * d + i]));
                f32 += (double)a[(size_t)r * d + i] * W[(size_t)j * d + i];
            }
            const double got = pre[(size_t)r * m + j];
            err_ref = fmax(err_ref, fabs(got - ref));
            err_fp32 = fmax(err_fp32, fabs(got - f32));
            top = fmax(top, fabs(f32));
        }
    printf("product %d x %d x %d: %.2e of its largest entry from the rounded operands' product, %.2e from "
           "fp32's\n", n, m, d, err_ref / top, err_fp32 / top);
    char what[96];
    snprintf(what, sizeof what, "bf16 product (%d rows) = the rounded operands' product", n);
    expect(err_ref <= 1e-5 * top, what);
    snprintf(what, sizeof what, "bf16 product (%d rows) differs from fp32's by 1e-4..1e-2", n);
    expect(err_fp32 >= 1e-4 * top && err_fp32 <= 1e-2 * top, what);
    free(a);
    free(pre);
}

// 40 steps from the same start, fp32 then bf16; the worst relative FVU gap.
static void check_losses(const char *variant, uint64_t seed) {
    const int d = 64, m = 512, n = 512, steps = 40;
    SaeConfig cfg;
    sae_config_init(&cfg, variant, d, m);
    cfg.k = 16;
    cfg.k_aux = 32;
    uint64_t s = seed;
    float *x = xmalloc(sizeof(float) * (size_t)n * d), *basis = xmalloc(sizeof(float) * 8 * d);
    for (int i = 0; i < 8 * d; i++) basis[i] = (float)rng_normal(&s);
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++) {
            float v = 0.3f * (float)rng_normal(&s);
            for (int q = 0; q < 8; q++) v += 0.5f * (float)((r * 7 + q * 3) % 5 - 2) * basis[q * d + i];
            x[(size_t)r * d + i] = v;
        }
    uint8_t *dead = xcalloc((size_t)m, 1);
    for (int j = 0; j < m; j += 7) dead[j] = 1;
    const size_t np = sae_num_params(&cfg);
    double rec[2][40], worst = 0.0;
    for (int bf = 0; bf < 2; bf++) {
        float *params = xmalloc(sizeof(float) * np), *grads = xmalloc(sizeof(float) * np);
        float *m1 = xcalloc(np, sizeof(float)), *m2 = xcalloc(np, sizeof(float));
        SaeTensors p, g;
        sae_carve(params, &cfg, &p);
        sae_carve(grads, &cfg, &g);
        sae_init(&cfg, &p, 3, NULL);
        SaeWork *w = sae_work_create(&cfg, n);
        sae_work_set_math(w, bf ? SAE_GEMM_BF16 : SAE_GEMM_FP32);
        AdamConfig adam = adam_defaults(m, steps);
        const SaeBatch b = sae_batch_tokens(n);
        for (int t = 0; t < steps; t++) {
            SaeLosses L;
            sae_step(&cfg, &p, &g, x, &b, dead, NULL, w, &L);
            optim_step(&cfg, &adam, t + 1, params, grads, m1, m2);
            rec[bf][t] = L.rec;
        }
        sae_work_free(w);
        free(params), free(grads), free(m1), free(m2);
    }
    for (int t = 0; t < steps; t++) worst = fmax(worst, fabs(rec[1][t] - rec[0][t]) / rec[0][t]);
    printf("%s, 40 steps: FVU %.5f (fp32) -> %.5f, bf16 %.5f; worst step %.2e relative\n", variant, rec[0][0],
           rec[0][steps - 1], rec[1][steps - 1], worst);
    char what[96];
    snprintf(what, sizeof what, "%s: bf16 FVU within 2%% of fp32's at every step", variant);
    expect(worst <= 0.02, what);
    snprintf(what, sizeof what, "%s: bf16 training is not fp32's (some step differs)", variant);
    expect(worst > 0.0, what);
    free(x), free(basis), free(dead);
}

int main(void) {
    char why[256];
    const char *isa;
    int native;
    if (!gemm_bf16_available(why, sizeof why, &isa, &native)) {
        printf("skipped: %s\n", why);
        return 77;
    }
    printf("oneDNN on %s (%s bf16 products)\n", isa, native ? "native" : "no native");
    const int d = 96, m = 80;
    uint64_t s = 11;
    float *W = xmalloc(sizeof(float) * (size_t)m * d);
    for (size_t i = 0; i < (size_t)m * d; i++) W[i] = (float)(0.1 * rng_normal(&s));
    GemmBf16 *g = gemm_bf16_create(d, m);
    gemm_bf16_set_weights(g, W);
    check_product(37, d, m, &s, g, W);
    check_product(5, d, m, &s, g, W);
    gemm_bf16_free(g);
    free(W);
    check_losses("standard", 5);
    check_losses("standard+M", 6);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
