// scaler.h — per-column standardization of clip features, as scikit-learn's
// StandardScaler: the training split's mean and population standard deviation
// (float64), a constant column scaled by 1. The learned evaluations (probe.h,
// ridge.h) fit on standardized training features and apply the same
// statistics to the test split; the causal ablation (SPEC §2.8) zeroes raw
// columns before standardizing, so the mask lives here too.
#ifndef STSAE_SCALER_H
#define STSAE_SCALER_H

#include <stdint.h>

typedef struct {
    int p;
    double *mean;  // [p]
    double *scale; // [p] population std, 1 where the column is constant
} Scaler;

// X [n, p] row-major float32 (n >= 1). A column is constant when its variance
// is within the two-pass rounding bound sklearn uses
// (var <= n eps var + (n |mean| eps)^2).
void scaler_fit(Scaler *s, const float *X, int n, int p);
// out [n, p] float64 = (X - mean) / scale. zero_mask [p] (or NULL): columns
// with a non-zero entry take the raw value 0 before standardizing.
void scaler_apply(const Scaler *s, const float *X, int n, const uint8_t *zero_mask, double *out);
void scaler_free(Scaler *s);

#endif
