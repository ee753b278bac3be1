// ridge.c — ridge regression with K-fold choice of alpha, and label
// retrieval by cosine (ridge.h).
//
// For a set T of training rows (mean mu, targets' mean ymu, Xc = X_T - mu,
// Yc = Y_T - ymu) the ridge solution is W(alpha) = B diag(1/(lam + alpha)) Q:
//   primal: Xc^T Xc = V diag(lam) V^T,  B = V,        Q = V^T Xc^T Yc  [p, e]
//   dual:   Xc Xc^T = U diag(lam) U^T,  B = Xc^T U,   Q = U^T Yc       [n_T, e]
// so validation rows Xv are predicted for every alpha as
// ymu + P diag(1/(lam + alpha)) Q with P = (Xv - mu) B, one eigensolve per fold.
#include "stsae/metrics/ridge.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

const double ridge_alphas[RIDGE_N_ALPHA] = {1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4};

typedef struct {
    const double *Xs; // [n, p] standardized
    const double *Y;  // [n, e]
    const double *G;  // [n, n] = Xs Xs^T (dual only)
    int n, p, e, dual;
} Data;

// The spectral form of one training set (see the top of the file).
typedef struct {
    int r;
    double *lam;   // [r]
    double *vec;   // primal V [p, p]; dual U [n_T, n_T] (eigenvectors in columns)
    double *Q;     // [r, e]
    double *mu;    // [p]
    double *ymu;   // [e]
} Spectral;

static void eigen(double *A, int r, double *lam) {
    if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', r, A, r, lam) != 0)
        die("ridge: the eigendecomposition of a %d x %d matrix failed", r, r);
}

// g [n]: g_i = mean over the training rows T of G_ic; returns m = mean of g over T.
// Then (x_a - mu).(x_b - mu) = G_ab - g_a - g_b + m, mu the mean over T.
static double gram_means(const Data *d, const int *T, int nT, double *g) {
    const int n = d->n;
    double m = 0.0;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int c = 0; c < nT; c++) s += d->G[(size_t)i * n + T[c]];
        g[i] = s / nT;
    }
    for (int c = 0; c < nT; c++) m += g[T[c]];
    return m / nT;
}

// Training rows T [nT] (ascending indices into the data).
static void spectral_fit(const Data *d, const int *T, int nT, Spectral *s) {
    const int p = d->p, e = d->e;
    s->mu = xcalloc((size_t)p, sizeof(double));
    s->ymu = xcalloc((size_t)e, sizeof(double));
    for (int a = 0; a < nT; a++) {
        for (int j = 0; j < p; j++) s->mu[j] += d->Xs[(size_t)T[a] * p + j];
        for (int j = 0; j < e; j++) s->ymu[j] += d->Y[(size_t)T[a] * e + j];
    }
    for (int j = 0; j < p; j++) s->mu[j] /= nT;
    for (int j = 0; j < e; j++) s->ymu[j] /= nT;
    double *Yc = xmalloc(sizeof(double) * (size_t)nT * e);
    for (int a = 0; a < nT; a++)
        for (int j = 0; j < e; j++) Yc[(size_t)a * e + j] = d->Y[(size_t)T[a] * e + j] - s->ymu[j];

    if (!d->dual) {
        s->r = p;
        double *Xc = xmalloc(sizeof(double) * (size_t)nT * p);
        for (int a = 0; a < nT; a++)
            for (int j = 0; j < p; j++) Xc[(size_t)a * p + j] = d->Xs[(size_t)T[a] * p + j] - s->mu[j];
        s->vec = xmalloc(sizeof(double) * (size_t)p * p);
        s->lam = xmalloc(sizeof(double) * (size_t)p);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, p, nT, 1.0, Xc, p, 0.0, s->vec, p);
        eigen(s->vec, p, s->lam);
        double *XtY = xmalloc(sizeof(double) * (size_t)p * e);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p, e, nT, 1.0, Xc, p, Yc, e, 0.0, XtY, e);
        s->Q = xmalloc(sizeof(double) * (size_t)p * e);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p, e, p, 1.0, s->vec, p, XtY, e, 0.0, s->Q, e);
        free(XtY);
        free(Xc);
    } else {
        const int n = d->n;
        s->r = nT;
        double *g = xmalloc(sizeof(double) * (size_t)n);
        const double m = gram_means(d, T, nT, g);
        s->vec = xmalloc(sizeof(double) * (size_t)nT * nT);
        s->lam = xmalloc(sizeof(double) * (size_t)nT);
        for (int a = 0; a < nT; a++)
            for (int c = 0; c < nT; c++)
                s->vec[(size_t)a * nT + c] = d->G[(size_t)T[a] * n + T[c]] - g[T[a]] - g[T[c]] + m;
        eigen(s->vec, nT, s->lam);
        s->Q = xmalloc(sizeof(double) * (size_t)nT * e);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nT, e, nT, 1.0, s->vec, nT, Yc, e, 0.0, s->Q, e);
        free(g);
    }
    free(Yc);
}

// P [nV, r] = (X_V - mu) B for the validation rows V (training rows T).
static double *spectral_project(const Data *d, const Spectral *s, const int *T, int nT, const int *V, int nV) {
    const int p = d->p, r = s->r;
    double *P = xmalloc(sizeof(double) * (size_t)nV * r);
    if (!d->dual) {
        double *Xv = xmalloc(sizeof(double) * (size_t)nV * p);
        for (int a = 0; a < nV; a++)
            for (int j = 0; j < p; j++) Xv[(size_t)a * p + j] = d->Xs[(size_t)V[a] * p + j] - s->mu[j];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nV, r, p, 1.0, Xv, p, s->vec, p, 0.0, P, r);
        free(Xv);
    } else {
        const int n = d->n;
        double *g = xmalloc(sizeof(double) * (size_t)n);
        const double m = gram_means(d, T, nT, g);
        double *Kv = xmalloc(sizeof(double) * (size_t)nV * nT);
        for (int a = 0; a < nV; a++)
            for (int c = 0; c < nT; c++)
                Kv[(size_t)a * nT + c] = d->G[(size_t)V[a] * n + T[c]] - g[V[a]] - g[T[c]] + m;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nV, r, nT, 1.0, Kv, nT, s->vec, nT, 0.0, P, r);
        free(Kv);
        free(g);
    }
    return P;
}

static void spectral_free(Spectral *s) {
    free(s->lam), free(s->vec), free(s->Q), free(s->mu), free(s->ymu);
    memset(s, 0, sizeof(*s));
}

// Mean squared error over the nV x e validation targets for one alpha.
static double fold_mse(const Data *d, const Spectral *s, const double *P, const int *V, int nV, double alpha,
                       double *PD, double *E) {
    const int r = s->r, e = d->e;
    for (int a = 0; a < nV; a++)
        for (int c = 0; c < r; c++) PD[(size_t)a * r + c] = P[(size_t)a * r + c] / (s->lam[c] + alpha);
    for (int a = 0; a < nV; a++)
        for (int j = 0; j < e; j++)
            E[(size_t)a * e + j] = d->Y[(size_t)V[a] * e + j] - (PLANTED("ridge_center") ? 0.0 : s->ymu[j]);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nV, e, r, 1.0, PD, r, s->Q, e, -1.0, E, e);
    double sse = 0.0;
    for (size_t i = 0; i < (size_t)nV * e; i++) sse += E[i] * E[i];
    return sse / ((double)nV * e);
}

void ridge_fit_cv(const float *X, const float *Y, int n, int p, int e, const double *alphas, int n_alpha,
                  int n_folds, double *cv_mse, Ridge *out) {
    if (n_folds < 2 || n_folds > n) die("ridge: %d-fold cross-validation needs 2 <= folds <= clips (%d)", n_folds, n);
    if (p < 1 || e < 1 || n_alpha < 1) die("ridge: need p, e and the number of alphas >= 1 (%d, %d, %d)", p, e, n_alpha);
    for (int a = 0; a < n_alpha; a++)
        if (!(alphas[a] > 0.0)) die("ridge: alpha %g must be > 0", alphas[a]);
    memset(out, 0, sizeof(*out));
    out->p = p;
    out->e = e;
    scaler_fit(&out->sc, X, n, p);
    double *Xs = xmalloc(sizeof(double) * (size_t)n * p);
    scaler_apply(&out->sc, X, n, NULL, Xs);
    double *Yd = xmalloc(sizeof(double) * (size_t)n * e);
    for (size_t i = 0; i < (size_t)n * e; i++) Yd[i] = Y[i];
    const int largest = n / n_folds + (n % n_folds != 0);
    Data d = {.Xs = Xs, .Y = Yd, .n = n, .p = p, .e = e, .dual = p > n - largest};
    double *G = NULL;
    if (d.dual) {
        G = xmalloc(sizeof(double) * (size_t)n * n);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, p, 1.0, Xs, p, 0.0, G, n);
        for (int i = 0; i < n; i++) // mirror: the folds read both triangles
            for (int j = 0; j < i; j++) G[(size_t)i * n + j] = G[(size_t)j * n + i];
        d.G = G;
    }

    double *mse = xcalloc((size_t)n_alpha, sizeof(double));
    int *T = xmalloc(sizeof(int) * (size_t)n), *V = xmalloc(sizeof(int) * (size_t)largest);
    double *PD = xmalloc(sizeof(double) * (size_t)largest * (d.dual ? n : p));
    double *E = xmalloc(sizeof(double) * (size_t)largest * e);
    for (int f = 0, v0 = 0; f < n_folds; f++) {
        const int nV = n / n_folds + (f < n % n_folds), v1 = v0 + nV;
        int nT = 0;
        for (int i = 0; i < n; i++)
            if (i < v0 || i >= v1) T[nT++] = i;
        for (int a = 0; a < nV; a++) V[a] = v0 + a;
        Spectral s;
        spectral_fit(&d, T, nT, &s);
        double *P = spectral_project(&d, &s, T, nT, V, nV);
        for (int a = 0; a < n_alpha; a++) mse[a] += fold_mse(&d, &s, P, V, nV, alphas[a], PD, E) / n_folds;
        free(P);
        spectral_free(&s);
        v0 = v1;
    }
    int best = 0;
    for (int a = 1; a < n_alpha; a++)
        if (mse[a] < mse[best]) best = a;
    out->alpha = alphas[best];
    if (cv_mse) memcpy(cv_mse, mse, sizeof(double) * (size_t)n_alpha);

    // refit on every training row: W = B diag(1/(lam + alpha)) Q, b = ymu - mu W
    for (int i = 0; i < n; i++) T[i] = i;
    Spectral s;
    spectral_fit(&d, T, n, &s);
    const int r = s.r;
    double *DQ = xmalloc(sizeof(double) * (size_t)r * e);
    for (int c = 0; c < r; c++)
        for (int j = 0; j < e; j++) DQ[(size_t)c * e + j] = s.Q[(size_t)c * e + j] / (s.lam[c] + out->alpha);
    out->W = xmalloc(sizeof(double) * (size_t)p * e);
    if (!d.dual) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p, e, p, 1.0, s.vec, p, DQ, e, 0.0, out->W, e);
    } else {
        double *M = xmalloc(sizeof(double) * (size_t)n * e); // U DQ, then W = Xc^T M
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, e, n, 1.0, s.vec, n, DQ, e, 0.0, M, e);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++) Xs[(size_t)i * p + j] -= s.mu[j];
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p, e, n, 1.0, Xs, p, M, e, 0.0, out->W, e);
        free(M);
    }
    out->b = xmalloc(sizeof(double) * (size_t)e);
    memcpy(out->b, s.ymu, sizeof(double) * (size_t)e);
    cblas_dgemv(CblasRowMajor, CblasTrans, p, e, -1.0, out->W, e, s.mu, 1, 1.0, out->b, 1);
    spectral_free(&s);
    free(DQ), free(PD), free(E), free(T), free(V), free(mse), free(G), free(Yd), free(Xs);
}

void ridge_predict(const Ridge *rg, const float *X, int n, double *out) {
    double *Xs = xmalloc(sizeof(double) * (size_t)n * rg->p);
    scaler_apply(&rg->sc, X, n, NULL, Xs);
    for (int i = 0; i < n; i++) memcpy(out + (size_t)i * rg->e, rg->b, sizeof(double) * (size_t)rg->e);
    if (n > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, rg->e, rg->p, 1.0, Xs, rg->p, rg->W, rg->e, 1.0,
                    out, rg->e);
    free(Xs);
}

void ridge_recall(const double *pred, int n, int e, const float *text, int n_labels, const int32_t *y,
                  double *r_at_1, double *r_at_5) {
    double *tn = xmalloc(sizeof(double) * (size_t)n_labels); // 1/||t_l|| (0 for a zero vector)
    for (int l = 0; l < n_labels; l++) {
        double s = 0.0;
        for (int j = 0; j < e; j++) s += (double)text[(size_t)l * e + j] * text[(size_t)l * e + j];
        tn[l] = s > 0.0 ? 1.0 / sqrt(s) : 0.0;
    }
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= n_labels) die("ridge: label %d of test clip %d is outside [0, %d)", y[i], i, n_labels);
    int hit1 = 0, hit5 = 0;
#pragma omp parallel for schedule(static) reduction(+ : hit1, hit5)
    for (int i = 0; i < n; i++) {
        const double *q = pred + (size_t)i * e;
        // the cosine up to the positive factor 1/||q||, which leaves the ranking alone
        double sy = 0.0;
        for (int j = 0; j < e; j++) sy += q[j] * text[(size_t)y[i] * e + j];
        sy *= tn[y[i]];
        int rank = 0; // labels ranked ahead of the true one
        for (int l = 0; l < n_labels; l++) {
            if (l == y[i]) continue;
            double s = 0.0;
            for (int j = 0; j < e; j++) s += q[j] * text[(size_t)l * e + j];
            s *= tn[l];
            rank += s > sy || (s == sy && l < y[i]);
        }
        hit1 += rank < 1;
        hit5 += rank < 5;
    }
    *r_at_1 = n > 0 ? (double)hit1 / n : NAN;
    *r_at_5 = n > 0 ? (double)hit5 / n : NAN;
    free(tn);
}

void ridge_free(Ridge *rg) {
    scaler_free(&rg->sc);
    free(rg->W);
    free(rg->b);
    memset(rg, 0, sizeof(*rg));
}

void ridge_retrieval(const float *Xtr, const int32_t *ytr, int ntr, const float *Xte, const int32_t *yte, int nte,
                     int p, const float *text, int n_labels, int e, RidgeResult *out) {
    float *Y = xmalloc(sizeof(float) * (size_t)ntr * e);
    for (int i = 0; i < ntr; i++) {
        if (ytr[i] < 0 || ytr[i] >= n_labels) die("ridge: label %d of training clip %d is outside [0, %d)", ytr[i], i, n_labels);
        memcpy(Y + (size_t)i * e, text + (size_t)ytr[i] * e, sizeof(float) * (size_t)e);
    }
    Ridge rg;
    ridge_fit_cv(Xtr, Y, ntr, p, e, ridge_alphas, RIDGE_N_ALPHA, RIDGE_FOLDS, NULL, &rg);
    double *pred = xmalloc(sizeof(double) * (size_t)nte * e);
    ridge_predict(&rg, Xte, nte, pred);
    out->alpha = rg.alpha;
    ridge_recall(pred, nte, e, text, n_labels, yte, &out->r_at_1, &out->r_at_5);
    free(pred);
    free(Y);
    ridge_free(&rg);
}
