// scaler.c — StandardScaler statistics and their application (scaler.h).
#include "stsae/metrics/scaler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "stsae/base/common.h"

void scaler_fit(Scaler *s, const float *X, int n, int p) {
    if (n < 1 || p < 1) die("scaler_fit: need n >= 1 and p >= 1 (n = %d, p = %d)", n, p);
    s->p = p;
    s->mean = xcalloc((size_t)p, sizeof(double));
    s->scale = xcalloc((size_t)p, sizeof(double));
    double *var = xcalloc((size_t)p, sizeof(double));
    for (int i = 0; i < n; i++) // row order: streams X once per pass
        for (int j = 0; j < p; j++) s->mean[j] += X[(size_t)i * p + j];
    for (int j = 0; j < p; j++) s->mean[j] /= n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < p; j++) {
            double d = X[(size_t)i * p + j] - s->mean[j];
            var[j] += d * d;
        }
    for (int j = 0; j < p; j++) {
        var[j] /= n;
        double bound = n * DBL_EPSILON * var[j] + pow(n * s->mean[j] * DBL_EPSILON, 2);
        s->scale[j] = var[j] <= bound ? 1.0 : sqrt(var[j]);
    }
    free(var);
}

void scaler_apply(const Scaler *s, const float *X, int n, const uint8_t *zero_mask, double *out) {
    const int p = s->p;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *x = X + (size_t)i * p;
        double *o = out + (size_t)i * p;
        for (int j = 0; j < p; j++) {
            double v = zero_mask && zero_mask[j] ? (PLANTED("ablate_standardized") ? s->mean[j] : 0.0) : x[j];
            o[j] = (v - s->mean[j]) / s->scale[j];
        }
    }
}

void scaler_free(Scaler *s) {
    free(s->mean);
    free(s->scale);
    s->mean = s->scale = NULL;
}
