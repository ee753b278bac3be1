// optim.c — decoder projection, Adam with warm-up, renormalization (optim.h).
#include "stsae/sae/optim.h"

#include <math.h>
#include <stddef.h>

#include "stsae/base/common.h"

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

// Adam on n contiguous parameters.
static inline void adam_range(float *restrict p, const float *restrict g, float *restrict m1,
                              float *restrict m2, size_t n, float b1, float b2, float step,
                              float inv_sqrt_c2, float eps) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float mi = b1 * m1[i] + (1.0f - b1) * g[i];
        float vi = b2 * m2[i] + (1.0f - b2) * g[i] * g[i];
        m1[i] = mi;
        m2[i] = vi;
        p[i] -= step * mi / (sqrtf(vi) * inv_sqrt_c2 + eps);
    }
}

// Removes from the gradient row g its component along the atom w.
static inline void project_row(const float *restrict w, float *restrict g, int d) {
    double gw = 0.0, ww = 0.0;
#pragma omp simd reduction(+ : gw, ww)
    for (int i = 0; i < d; i++) {
        gw += (double)g[i] * w[i];
        ww += (double)w[i] * w[i];
    }
    if (ww <= 0.0) return;
    float c = (float)(gw / ww);
    for (int i = 0; i < d; i++) g[i] -= c * w[i];
}

static inline void normalize_row(float *w, int d) {
    double ww = 0.0;
#pragma omp simd reduction(+ : ww)
    for (int i = 0; i < d; i++) ww += (double)w[i] * w[i];
    if (ww <= 0.0) return;
    float inv = (float)(1.0 / sqrt(ww));
    for (int i = 0; i < d; i++) w[i] *= inv;
}

void decoder_project_grad(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *g) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < cfg->m; j++) project_row(p->D + (size_t)j * cfg->d, g->D + (size_t)j * cfg->d, cfg->d);
}

void decoder_renorm(const SaeConfig *cfg, SaeTensors *p) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < cfg->m; j++) normalize_row(p->D + (size_t)j * cfg->d, cfg->d);
}

// One sweep: the encoder and b_dec by blocks, the decoder row by row
// (projection, Adam, renormalization while the row is in cache).
AdamScalars adam_scalars(const AdamConfig *a, int64_t t) {
    float c1 = (float)(1.0 - pow(a->beta1, (double)t)), c2 = (float)(1.0 - pow(a->beta2, (double)t));
    if (PLANTED("no_bias_correction")) c1 = c2 = 1.0f;
    return (AdamScalars){adam_lr(a, t) / c1, 1.0f / sqrtf(c2), !PLANTED("no_projection"), !PLANTED("no_renorm")};
}

void optim_step(const SaeConfig *cfg, const AdamConfig *a, int64_t t, float *params, float *grads,
                float *m1, float *m2) {
    const int d = cfg->d, m = cfg->m;
    const float b1 = a->beta1, b2 = a->beta2, eps = a->eps;
    const AdamScalars sc = adam_scalars(a, t);
    const float step = sc.step, isc2 = sc.isc2;
    const int project = sc.project, renorm = sc.renorm;
    SaeTensors p;
    sae_carve(params, cfg, &p);
    const size_t off_D = (size_t)(p.D - params), off_bdec = (size_t)(p.b_dec - params);
    const size_t enc = off_D; // W_enc and b_enc: everything before D
    enum { BLOCK = 4096 };
    const int64_t n_blocks = (int64_t)((enc + BLOCK - 1) / BLOCK);
#pragma omp parallel
    {
#pragma omp for schedule(static) nowait
        for (int64_t b = 0; b < n_blocks; b++) {
            size_t i0 = (size_t)b * BLOCK, n = enc - i0 < BLOCK ? enc - i0 : BLOCK;
            adam_range(params + i0, grads + i0, m1 + i0, m2 + i0, n, b1, b2, step, isc2, eps);
        }
#pragma omp for schedule(static)
        for (int j = 0; j < m; j++) {
            size_t o = off_D + (size_t)j * d;
            if (project) project_row(params + o, grads + o, d);
            adam_range(params + o, grads + o, m1 + o, m2 + o, (size_t)d, b1, b2, step, isc2, eps);
            if (renorm) normalize_row(params + o, d);
        }
    }
    adam_range(params + off_bdec, grads + off_bdec, m1 + off_bdec, m2 + off_bdec, (size_t)d, b1, b2, step,
               isc2, eps);
}
