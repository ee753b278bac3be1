// optim.c — decoder projection, Adam with warm-up, renormalization (optim.h).
#include "stsae/optim.h"

#include <math.h>
#include <stddef.h>

#include "stsae/common.h"

AdamConfig adam_defaults(int m, int64_t total_steps) {
    AdamConfig a;
    a.lr = (float)(2e-4 / sqrt(m / 16384.0));
    a.beta1 = 0.9f;
    a.beta2 = 0.999f;
    a.eps = 1e-8f;
    a.warmup_steps = total_steps / 100 > 1 ? total_steps / 100 : 1;
    return a;
}

float adam_lr(const AdamConfig *a, int64_t t) {
    if (PLANTED("no_warmup")) return a->lr;
    return t >= a->warmup_steps ? a->lr : a->lr * (float)t / (float)a->warmup_steps;
}

void decoder_project_grad(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *g) {
    const int d = cfg->d;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < cfg->m; j++) {
        const float *w = p->D + (size_t)j * d;
        float *gj = g->D + (size_t)j * d;
        double gw = 0.0, ww = 0.0;
#pragma omp simd reduction(+ : gw, ww)
        for (int i = 0; i < d; i++) {
            gw += (double)gj[i] * w[i];
            ww += (double)w[i] * w[i];
        }
        if (ww <= 0.0) continue;
        float c = (float)(gw / ww);
        for (int i = 0; i < d; i++) gj[i] -= c * w[i];
    }
}

void decoder_renorm(const SaeConfig *cfg, SaeTensors *p) {
    const int d = cfg->d;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < cfg->m; j++) {
        float *w = p->D + (size_t)j * d;
        double ww = 0.0;
#pragma omp simd reduction(+ : ww)
        for (int i = 0; i < d; i++) ww += (double)w[i] * w[i];
        if (ww <= 0.0) continue;
        float inv = (float)(1.0 / sqrt(ww));
        for (int i = 0; i < d; i++) w[i] *= inv;
    }
}

void optim_step(const SaeConfig *cfg, const AdamConfig *a, int64_t t, float *params, float *grads,
                float *m1, float *m2) {
    SaeTensors p, g;
    sae_carve(params, cfg, &p);
    sae_carve(grads, cfg, &g);
    if (!PLANTED("no_projection")) decoder_project_grad(cfg, &p, &g);
    const float lr = adam_lr(a, t), b1 = a->beta1, b2 = a->beta2, eps = a->eps;
    float c1 = (float)(1.0 - pow(b1, (double)t)), c2 = (float)(1.0 - pow(b2, (double)t));
    if (PLANTED("no_bias_correction")) c1 = c2 = 1.0f;
    const float step = lr / c1, inv_sqrt_c2 = 1.0f / sqrtf(c2);
    const ptrdiff_t n = (ptrdiff_t)sae_num_params(cfg);
#pragma omp parallel for simd schedule(static)
    for (ptrdiff_t i = 0; i < n; i++) {
        float gi = grads[i];
        float mi = b1 * m1[i] + (1.0f - b1) * gi;
        float vi = b2 * m2[i] + (1.0f - b2) * gi * gi;
        m1[i] = mi;
        m2[i] = vi;
        params[i] -= step * mi / (sqrtf(vi) * inv_sqrt_c2 + eps);
    }
    if (!PLANTED("no_renorm")) decoder_renorm(cfg, &p);
}
