// probe.h — the linear probe of SPEC §2.5 and the causal ablation of §2.8.
//
// In: clip features X [n, p] (float32, raw: raw features, SAE codes or
// reconstructions) with labels y in [0, n_class). Out: a multinomial logistic
// regression on the standardized features (scaler.h), the same minimizer as
// scikit-learn 1.2's LogisticRegression(C=C, solver="lbfgs",
// multi_class="multinomial"):
//
//   minimize  f(W, b) = sum_i -log softmax(W xs_i + b)[y_i] + ||W||^2 / (2 C)
//
// (sum, not mean, over samples; the intercept b is not penalized), by
// L-BFGS (liblbfgs, 10 corrections as scipy's L-BFGS-B) from W = 0, b = 0
// with the stops scipy's L-BFGS-B applies for sklearn: ||grad f|| <= gtol
// (here the 2-norm, stricter than scipy's max-norm), a relative reduction
// (f_prev - f) / max(|f_prev|, |f|, 1) <= ftol (scipy's factr 1e7 times the
// machine epsilon: PROBE_FTOL), or max_iter iterations. When p > n the
// problem is solved in the n-dimensional row space of the standardized
// features (an orthonormal change of variables: L-BFGS takes the same
// steps); the products are float64 BLAS.
//
// Classes: like sklearn, only the labels present in y are modelled (row k of
// W is label classes[k]); an absent label is never predicted. Unlike
// sklearn's default for exactly two classes (binary "ovr"), two classes are
// also fitted as a softmax, as SPEC says; one class alone needs no fit (W = 0,
// every prediction that class).
#ifndef STSAE_PROBE_H
#define STSAE_PROBE_H

#include <stdint.h>

#include "stsae/metrics/scaler.h"

typedef struct {
    int p, n_class;     // features; labels live in [0, n_class)
    int n_model;        // classes present in the training labels
    int32_t *classes;   // [n_model] ascending
    Scaler sc;          // training statistics
    double *W;          // [n_model, p] on standardized features
    double *b;          // [n_model]
    double C;
    double loss;        // f at the solution
    double grad_norm;   // ||grad f||_2 at the solution
    int iterations;     // L-BFGS iterations taken
    int stop;           // why it stopped: ProbeStop
} Probe;

typedef enum {
    PROBE_STOP_GTOL = 1,    // gradient norm <= gtol (or nothing to fit)
    PROBE_STOP_FTOL,        // relative reduction <= ftol
    PROBE_STOP_MAX_ITER,    // max_iter iterations
    PROBE_STOP_LINE_SEARCH, // no step decreases f any more (rounding)
} ProbeStop;

#define PROBE_FTOL 2.220446049250313e-09 // scipy L-BFGS-B's default factr * DBL_EPSILON

// Fits the probe; X [n, p] row-major. Dies on a label outside [0, n_class)
// or n < 1. Returns 0 when it stopped on gtol or ftol, 1 on max_iter or a
// line search that found no decrease (the probe is still usable: the last
// accepted point). probe_fit uses ftol = PROBE_FTOL; ftol = 0 runs to gtol.
int probe_fit(const float *X, const int32_t *y, int n, int p, int n_class, double C, int max_iter,
              double gtol, Probe *out);
int probe_fit_ftol(const float *X, const int32_t *y, int n, int p, int n_class, double C, int max_iter,
                   double gtol, double ftol, Probe *out);
// pred [n]: the most probable modelled label (the first on ties, as argmax).
// zero_mask [p] (or NULL): the raw columns where it is non-zero are set to 0
// before standardizing with the training statistics (no refit): the ablation.
void probe_predict(const Probe *pr, const float *X, int n, const uint8_t *zero_mask, int32_t *pred);
// Fraction of the n clips predicted correctly; _without: with zero_mask.
double probe_accuracy(const Probe *pr, const float *X, const int32_t *y, int n);
double probe_accuracy_without(const Probe *pr, const float *X, const int32_t *y, int n, const uint8_t *zero_mask);
// norm [p]: each feature's L2 norm of its weights over the modelled classes.
void probe_weight_norms(const Probe *pr, double *norm);
// order [p]: the features by decreasing weight norm (ties by index): the
// top-n ablation zeroes order[0..n).
void probe_rank_features(const Probe *pr, int32_t *order);
void probe_free(Probe *pr);

#endif
