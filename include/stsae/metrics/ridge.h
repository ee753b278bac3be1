// ridge.h — text-video retrieval by ridge regression (SPEC §2.10).
//
// In: clip features X [n, p] (float32, raw) of the train split with their
// labels, the test split likewise, and one text embedding per label
// text [n_labels, e]. Each training clip's target is its label's embedding.
// Out: R@1 and R@5 on the test split: the fraction of test clips whose true
// label is among the 1 / 5 labels whose embeddings have the largest cosine
// with the clip's predicted embedding (ties: the lower label first).
//
// The regression is scikit-learn's
//   GridSearchCV(Ridge(alpha), {"alpha": alphas}, cv=KFold(n_folds),
//                scoring="neg_mean_squared_error")
// on features standardized with the whole train split's statistics
// (scaler.h): per fold, Ridge centres X and Y on the fold's training rows
// (an unpenalized intercept) and minimizes ||Xc W - Yc||^2 + alpha ||W||^2;
// the folds are contiguous blocks (the first n % n_folds one row longer);
// the alpha with the lowest mean validation MSE (over rows and outputs,
// then over folds; the first on ties) is refitted on the whole train split.
// Each fold is solved once for every alpha through the eigendecomposition of
// Xc^T Xc (p x p) or, when p exceeds the fold's training rows, of the centred
// Gram matrix Xc Xc^T (from one Gram matrix of the whole split).
#ifndef STSAE_RIDGE_H
#define STSAE_RIDGE_H

#include <stdint.h>

#include "stsae/metrics/scaler.h"

// SPEC's grid: 10^-2 .. 10^4, one per decade.
#define RIDGE_N_ALPHA 7
extern const double ridge_alphas[RIDGE_N_ALPHA];
#define RIDGE_FOLDS 5

typedef struct {
    int p, e;
    Scaler sc;    // the train split's statistics
    double alpha; // the chosen alpha
    double *W;    // [p, e] on standardized features
    double *b;    // [e]
} Ridge;

// X [n, p], Y [n, e] row-major; alphas > 0; 2 <= n_folds <= n. cv_mse
// [n_alpha] (or NULL) receives each alpha's mean validation MSE.
void ridge_fit_cv(const float *X, const float *Y, int n, int p, int e, const double *alphas, int n_alpha,
                  int n_folds, double *cv_mse, Ridge *out);
// out [n, e] = standardize(X) W + b.
void ridge_predict(const Ridge *rg, const float *X, int n, double *out);
// R@1, R@5 of predicted embeddings pred [n, e] against text [n_labels, e]
// for true labels y [n] (a zero vector has cosine 0 with everything).
void ridge_recall(const double *pred, int n, int e, const float *text, int n_labels, const int32_t *y,
                  double *r_at_1, double *r_at_5);
void ridge_free(Ridge *rg);

typedef struct {
    double alpha, r_at_1, r_at_5;
} RidgeResult;

// The whole §2.10 evaluation: fit on (Xtr, text[ytr]) with ridge_alphas and
// RIDGE_FOLDS folds, recall on (Xte, yte). Labels must lie in [0, n_labels).
void ridge_retrieval(const float *Xtr, const int32_t *ytr, int ntr, const float *Xte, const int32_t *yte, int nte,
                     int p, const float *text, int n_labels, int e, RidgeResult *out);

#endif
