// probe.c — the multinomial logistic probe (probe.h): standardize, optionally
// move to the row space of the features, L-BFGS on the softmax objective,
// weights back in feature space.
#include "stsae/metrics/probe.h"

#include <cblas.h>
#include <lapacke.h>
#include <lbfgs.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

// Row-space directions whose eigenvalue of Xs Xs^T is below this fraction of
// the largest are dropped: at most a 1e-5 relative singular value, so their
// share of any logit is negligible (and the centering's null direction, whose
// eigenvalue is rounding noise, goes with them).
#define ROW_SPACE_RTOL 1e-10

// What L-BFGS minimizes: logits = Z A^T + b, Z [n, r], A [K, r], b [K];
// x = [A row-major, b].
typedef struct {
    const double *Z;    // [n, r]
    const int32_t *yk;  // [n] class index in [0, K)
    int n, r, K;
    double inv_C;
    double *R;          // [n, K] scratch: logits, then softmax - one-hot
    double *row_loss;   // [n]
    double gtol, ftol;
    double f_prev;      // f at the previous iterate (NAN before the first evaluation)
    int iterations;     // accepted iterates so far
    int stop;           // set by progress(): PROBE_STOP_GTOL or _FTOL
} Objective;

static lbfgsfloatval_t evaluate(void *inst, const lbfgsfloatval_t *x, lbfgsfloatval_t *g, const int nvar,
                                const lbfgsfloatval_t step) {
    Objective *o = inst;
    const int n = o->n, r = o->r, K = o->K;
    const double *A = x, *b = x + (size_t)K * r;
    double *gA = g, *gb = g + (size_t)K * r;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, K, r, 1.0, o->Z, r, A, r, 0.0, o->R, K);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        double *l = o->R + (size_t)i * K;
        double mx = -INFINITY;
        for (int k = 0; k < K; k++) {
            l[k] += b[k];
            if (l[k] > mx) mx = l[k];
        }
        const double ly = l[o->yk[i]] - mx;
        double s = 0.0;
        for (int k = 0; k < K; k++) {
            l[k] = exp(l[k] - mx);
            s += l[k];
        }
        o->row_loss[i] = log(s) - ly;
        const double inv_s = 1.0 / s;
        for (int k = 0; k < K; k++) l[k] *= inv_s;
        l[o->yk[i]] -= 1.0;
    }
    double f = 0.0, a2 = 0.0;
    for (int i = 0; i < n; i++) f += o->row_loss[i];
    for (size_t j = 0; j < (size_t)K * r; j++) a2 += A[j] * A[j];
    f += 0.5 * o->inv_C * a2;
    if (isnan(o->f_prev)) o->f_prev = f; // the starting point
    // gA = R^T Z + A / C; gb = column sums of R
    memcpy(gA, A, sizeof(double) * (size_t)K * r);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, r, n, 1.0, o->R, K, o->Z, r, o->inv_C, gA, r);
    memset(gb, 0, sizeof(double) * (size_t)K);
    for (int i = 0; i < n && !PLANTED("probe_intercept"); i++)
        for (int k = 0; k < K; k++) gb[k] += o->R[(size_t)i * K + k];
    return f;
}

// After each accepted iterate: the stops of scipy's L-BFGS-B as sklearn
// runs it (gradient, relative reduction of f), the gradient in the 2-norm.
static int progress(void *inst, const lbfgsfloatval_t *x, const lbfgsfloatval_t *g, const lbfgsfloatval_t fx,
                    const lbfgsfloatval_t xnorm, const lbfgsfloatval_t gnorm, const lbfgsfloatval_t step, int nvar,
                    int k, int ls) {
    Objective *o = inst;
    o->iterations++;
    const double f_prev = o->f_prev;
    o->f_prev = fx;
    if (gnorm <= o->gtol) o->stop = PROBE_STOP_GTOL;
    else if (f_prev - fx <= o->ftol * fmax(fmax(fabs(f_prev), fabs(fx)), 1.0)) o->stop = PROBE_STOP_FTOL;
    return o->stop; // non-zero ends lbfgs()
}

// The row space of Xs [n, p] (p > n): G = Xs Xs^T = U diag(w) U^T. Returns G
// overwritten by U (eigenvectors in columns, ascending w) and w; *r is the
// number of kept directions, the last *r columns.
static double *row_space(const double *Xs, int n, int p, double *w, int *r) {
    double *G = xmalloc(sizeof(double) * (size_t)n * n);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, p, 1.0, Xs, p, 0.0, G, n);
    if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, G, n, w) != 0)
        die("probe_fit: the eigendecomposition of the %d x %d Gram matrix failed", n, n);
    int keep = 0;
    while (keep < n && w[n - 1 - keep] > ROW_SPACE_RTOL * w[n - 1]) keep++;
    *r = keep;
    return G;
}

int probe_fit_ftol(const float *X, const int32_t *y, int n, int p, int n_class, double C, int max_iter, double gtol,
                   double ftol, Probe *out) {
    if (n < 1 || p < 1 || n_class < 1) die("probe_fit: need n, p, n_class >= 1 (%d, %d, %d)", n, p, n_class);
    if (!(C > 0.0) || max_iter < 1 || !(gtol >= 0.0) || !(ftol >= 0.0))
        die("probe_fit: need C > 0, max_iter >= 1, gtol >= 0, ftol >= 0 (%g, %d, %g, %g)", C, max_iter, gtol, ftol);
    memset(out, 0, sizeof(*out));
    out->p = p;
    out->n_class = n_class;
    out->C = C;

    // the modelled classes: those present, ascending
    int32_t *slot = xmalloc(sizeof(int32_t) * (size_t)n_class);
    for (int c = 0; c < n_class; c++) slot[c] = -1;
    for (int i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= n_class) die("probe_fit: label %d of clip %d is outside [0, %d)", y[i], i, n_class);
        slot[y[i]] = 0;
    }
    int K = 0;
    for (int c = 0; c < n_class; c++)
        if (slot[c] == 0) slot[c] = K++;
    out->n_model = K;
    out->classes = xmalloc(sizeof(int32_t) * (size_t)K);
    for (int c = 0; c < n_class; c++)
        if (slot[c] >= 0) out->classes[slot[c]] = c;
    int32_t *yk = xmalloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) yk[i] = slot[y[i]];
    free(slot);

    scaler_fit(&out->sc, X, n, p);
    out->W = xcalloc((size_t)K * p, sizeof(double));
    out->b = xcalloc((size_t)K, sizeof(double));
    if (K == 1) { // one class: nothing to separate, f = 0 at W = 0
        out->stop = PROBE_STOP_GTOL;
        free(yk);
        return 0;
    }
    double *Xs = xmalloc(sizeof(double) * (size_t)n * p);
    scaler_apply(&out->sc, X, n, NULL, Xs);

    // the design: Xs itself, or (p > n) its row-space coordinates Z = U_r S_r,
    // an isometry of the weights (W = A S_r^-1 U_r^T Xs) the iterates never leave
    int r = p;
    double *Z = Xs, *U = NULL, *w = NULL;
    if (p > n) {
        w = xmalloc(sizeof(double) * (size_t)n);
        U = row_space(Xs, n, p, w, &r);
        if (r == 0) { // every column constant: Xs = 0, keep the (trivial) full form
            free(U);
            free(w);
            U = w = NULL;
            r = p;
        } else {
            Z = xmalloc(sizeof(double) * (size_t)n * r);
            for (int i = 0; i < n; i++)
                for (int c = 0; c < r; c++)
                    Z[(size_t)i * r + c] = U[(size_t)i * n + (n - r + c)] * sqrt(w[n - r + c]);
        }
    }

    Objective o = {.Z = Z, .yk = yk, .n = n, .r = r, .K = K, .inv_C = (PLANTED("probe_penalty") ? 0.5 : 1.0) / C,
                   .gtol = gtol, .ftol = ftol,
                   .f_prev = NAN};
    o.R = xmalloc(sizeof(double) * (size_t)n * K);
    o.row_loss = xmalloc(sizeof(double) * (size_t)n);
    const int nvar = K * r + K;
    lbfgsfloatval_t *x = lbfgs_malloc(nvar), *g = lbfgs_malloc(nvar);
    if (!x || !g) die("probe_fit: out of memory for %d L-BFGS variables", nvar);
    memset(x, 0, sizeof(double) * (size_t)nvar);
    lbfgs_parameter_t par;
    lbfgs_parameter_init(&par);
    par.m = 10;                 // scipy's L-BFGS-B maxcor
    par.epsilon = 0.0;          // the stops are progress()'s
    par.max_linesearch = 20;    // scipy's maxls
    // liblbfgs 1.10's More-Thuente search can step back out of its bracket
    // and then fail (a "rounding error") far from the optimum; backtracking to
    // the Armijo and Wolfe conditions needs about as few evaluations.
    par.linesearch = LBFGS_LINESEARCH_BACKTRACKING_WOLFE;
    // A failed line search restarts L-BFGS from the last accepted point; a
    // restart that cannot take one step means rounding has the last word.
    for (;;) {
        const int before = o.iterations;
        par.max_iterations = max_iter - before;
        const int ret = lbfgs(nvar, x, NULL, evaluate, progress, &o, &par);
        if (o.stop) break;
        if (ret == LBFGS_ALREADY_MINIMIZED) { // a zero gradient at the start
            o.stop = PROBE_STOP_GTOL;
            break;
        }
        if (o.iterations >= max_iter) {
            o.stop = PROBE_STOP_MAX_ITER;
            break;
        }
        if (o.iterations == before) {
            o.stop = PROBE_STOP_LINE_SEARCH;
            break;
        }
    }
    // the point lbfgs() returns (the last accepted one on a line-search failure)
    out->loss = evaluate(&o, x, g, nvar, 0.0);
    double g2 = 0.0;
    for (int j = 0; j < nvar; j++) g2 += g[j] * g[j];
    out->grad_norm = sqrt(g2);
    out->iterations = o.iterations;
    out->stop = o.stop;

    memcpy(out->b, x + (size_t)K * r, sizeof(double) * (size_t)K);
    if (Z == Xs) {
        memcpy(out->W, x, sizeof(double) * (size_t)K * p);
    } else {
        // W = (A S_r^-1 U_r^T) Xs
        double *AS = xmalloc(sizeof(double) * (size_t)K * r);
        double *M = xmalloc(sizeof(double) * (size_t)K * n);
        for (int k = 0; k < K; k++)
            for (int c = 0; c < r; c++)
                AS[(size_t)k * r + c] = x[(size_t)k * r + c] / (PLANTED("probe_row_space") ? w[n - r + c] : sqrt(w[n - r + c]));
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, n, r, 1.0, AS, r, U + (n - r), n, 0.0, M, n);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, K, p, n, 1.0, M, n, Xs, p, 0.0, out->W, p);
        free(AS);
        free(M);
        free(Z);
        free(U);
        free(w);
    }
    lbfgs_free(x);
    lbfgs_free(g);
    free(o.R);
    free(o.row_loss);
    free(Xs);
    free(yk);
    return out->stop == PROBE_STOP_GTOL || out->stop == PROBE_STOP_FTOL ? 0 : 1;
}

int probe_fit(const float *X, const int32_t *y, int n, int p, int n_class, double C, int max_iter, double gtol,
              Probe *out) {
    return probe_fit_ftol(X, y, n, p, n_class, C, max_iter, gtol, PROBE_FTOL, out);
}

// Rows per block of prediction: bounds the float64 copy of X.
#define PREDICT_ROWS 512

void probe_predict(const Probe *pr, const float *X, int n, const uint8_t *zero_mask, int32_t *pred) {
    const int p = pr->p, K = pr->n_model;
    const int rows = n < PREDICT_ROWS ? n : PREDICT_ROWS;
    double *Xs = xmalloc(sizeof(double) * (size_t)rows * p);
    double *L = xmalloc(sizeof(double) * (size_t)rows * K);
    for (int i0 = 0; i0 < n; i0 += rows) {
        const int nb = n - i0 < rows ? n - i0 : rows;
        scaler_apply(&pr->sc, X + (size_t)i0 * p, nb, zero_mask, Xs);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, K, p, 1.0, Xs, p, pr->W, p, 0.0, L, K);
        for (int i = 0; i < nb; i++) {
            const double *l = L + (size_t)i * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (l[k] + pr->b[k] > l[best] + pr->b[best]) best = k;
            pred[i0 + i] = pr->classes[best];
        }
    }
    free(Xs);
    free(L);
}

double probe_accuracy_without(const Probe *pr, const float *X, const int32_t *y, int n, const uint8_t *zero_mask) {
    if (n < 1) return NAN;
    int32_t *pred = xmalloc(sizeof(int32_t) * (size_t)n);
    probe_predict(pr, X, n, zero_mask, pred);
    int hit = 0;
    for (int i = 0; i < n; i++) hit += pred[i] == y[i];
    free(pred);
    return (double)hit / n;
}

double probe_accuracy(const Probe *pr, const float *X, const int32_t *y, int n) {
    return probe_accuracy_without(pr, X, y, n, NULL);
}

void probe_weight_norms(const Probe *pr, double *norm) {
    for (int j = 0; j < pr->p; j++) norm[j] = 0.0;
    for (int k = 0; k < pr->n_model; k++)
        for (int j = 0; j < pr->p; j++) norm[j] += pr->W[(size_t)k * pr->p + j] * pr->W[(size_t)k * pr->p + j];
    for (int j = 0; j < pr->p; j++) norm[j] = sqrt(norm[j]);
}

typedef struct {
    double norm;
    int32_t j;
} Ranked;

static int by_norm_desc(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->norm != y->norm) return x->norm > y->norm ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

void probe_rank_features(const Probe *pr, int32_t *order) {
    const int p = pr->p;
    double *norm = xmalloc(sizeof(double) * (size_t)p);
    Ranked *rk = xmalloc(sizeof(Ranked) * (size_t)p);
    probe_weight_norms(pr, norm);
    for (int j = 0; j < p; j++) rk[j] = (Ranked){norm[j], j};
    qsort(rk, (size_t)p, sizeof(Ranked), by_norm_desc);
    for (int j = 0; j < p; j++) order[j] = rk[j].j;
    free(rk);
    free(norm);
}

void probe_free(Probe *pr) {
    scaler_free(&pr->sc);
    free(pr->classes);
    free(pr->W);
    free(pr->b);
    memset(pr, 0, sizeof(*pr));
}
