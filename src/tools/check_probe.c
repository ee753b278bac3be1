// check_probe.c — `stsae check-probe IN.h5 OUT.h5` (hidden; for the tests):
// the learned evaluations of SPEC §2.5, §2.8 and §2.10 on features given in a
// file, so that tests/test_probe.py can compare them with scikit-learn.
//
// IN.h5:  train/X float32 [n, p], train/y int [n], test/X [m, p], test/y [m];
//         root attribute n_class; optional attributes C (1), max_iter (1000),
//         gtol (1e-6), ftol (PROBE_FTOL; 0: run to gtol), ablate (integers:
//         top-n ablations to score); optional
//         text float32 [n_class, e] (then the ridge retrieval runs too).
// OUT.h5: probe/{accuracy, train_accuracy, loss, grad_norm, iterations,
//         stop (ProbeStop)} scalars, probe/W [n_model, p], probe/b, probe/classes,
//         probe/pred [m], probe/rank [p], probe/ablate_accuracy [len(ablate)];
//         with text: ridge/{alpha, r_at_1, r_at_5} scalars, ridge/alphas,
//         ridge/cv_mse, ridge/W [p, e], ridge/b [e].
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/io/h5io.h"
#include "stsae/metrics/probe.h"
#include "stsae/metrics/ridge.h"
#include "stsae/tools/check.h"

#define MAX_ABLATE 64

typedef struct {
    int n, p;
    float *X;
    int32_t *y;
} Split;

static void read_split(hid_t f, const char *path, const char *name, int p_expect, Split *s) {
    char ds[64];
    hsize_t dx[2], dy[1];
    snprintf(ds, sizeof(ds), "%s/X", name);
    s->X = h5_read_f32(f, path, ds, 2, dx);
    snprintf(ds, sizeof(ds), "%s/y", name);
    int64_t *y = h5_read_i64(f, path, ds, 1, dy);
    if (dy[0] != dx[0])
        die("%s: %s/X has %llu rows but %s/y %llu labels", path, name, (unsigned long long)dx[0], name,
            (unsigned long long)dy[0]);
    if (p_expect >= 0 && dx[1] != (hsize_t)p_expect)
        die("%s: %s/X has %llu columns, train/X %d", path, name, (unsigned long long)dx[1], p_expect);
    s->n = (int)dx[0];
    s->p = (int)dx[1];
    s->y = xmalloc(sizeof(int32_t) * (size_t)s->n);
    for (int i = 0; i < s->n; i++) s->y[i] = (int32_t)y[i];
    free(y);
}

static void write_probe(hid_t out, const Probe *pr, const Split *tr, const Split *te, const int *ablate, int n_ablate) {
    const int p = pr->p, K = pr->n_model;
    h5_write_scalar(out, "probe/accuracy", probe_accuracy(pr, te->X, te->y, te->n));
    h5_write_scalar(out, "probe/train_accuracy", probe_accuracy(pr, tr->X, tr->y, tr->n));
    h5_write_scalar(out, "probe/loss", pr->loss);
    h5_write_scalar(out, "probe/grad_norm", pr->grad_norm);
    h5_write_scalar(out, "probe/iterations", pr->iterations);
    h5_write_scalar(out, "probe/stop", pr->stop);
    hsize_t dW[2] = {(hsize_t)K, (hsize_t)p}, dK[1] = {(hsize_t)K}, dp[1] = {(hsize_t)p},
            dm[1] = {(hsize_t)te->n}, da[1] = {(hsize_t)n_ablate};
    h5_write_f64(out, "probe/W", pr->W, 2, dW);
    h5_write_f64(out, "probe/b", pr->b, 1, dK);
    int cap = p > te->n ? p : te->n;
    if (K > cap) cap = K;
    int64_t *buf = xmalloc(sizeof(int64_t) * (size_t)cap);
    for (int k = 0; k < K; k++) buf[k] = pr->classes[k];
    h5_write_i64(out, "probe/classes", buf, 1, dK);
    int32_t *i32 = xmalloc(sizeof(int32_t) * (size_t)(p > te->n ? p : te->n));
    probe_predict(pr, te->X, te->n, NULL, i32);
    for (int i = 0; i < te->n; i++) buf[i] = i32[i];
    h5_write_i64(out, "probe/pred", buf, 1, dm);
    probe_rank_features(pr, i32);
    for (int j = 0; j < p; j++) buf[j] = i32[j];
    h5_write_i64(out, "probe/rank", buf, 1, dp);
    if (n_ablate > 0) {
        uint8_t *mask = xmalloc((size_t)p);
        double acc[MAX_ABLATE];
        for (int a = 0; a < n_ablate; a++) {
            memset(mask, 0, (size_t)p);
            for (int j = 0; j < ablate[a] && j < p; j++) mask[i32[j]] = 1;
            acc[a] = probe_accuracy_without(pr, te->X, te->y, te->n, mask);
        }
        h5_write_f64(out, "probe/ablate_accuracy", acc, 1, da);
        free(mask);
    }
    free(i32);
    free(buf);
}

static void write_ridge(hid_t out, const Split *tr, const Split *te, const float *text, int n_labels, int e) {
    for (int i = 0; i < tr->n; i++)
        if (tr->y[i] >= n_labels) die("check-probe: train label %d has no text embedding (%d)", tr->y[i], n_labels);
    float *Y = xmalloc(sizeof(float) * (size_t)tr->n * e);
    for (int i = 0; i < tr->n; i++) memcpy(Y + (size_t)i * e, text + (size_t)tr->y[i] * e, sizeof(float) * (size_t)e);
    Ridge rg;
    double cv[RIDGE_N_ALPHA];
    ridge_fit_cv(tr->X, Y, tr->n, tr->p, e, ridge_alphas, RIDGE_N_ALPHA, RIDGE_FOLDS, cv, &rg);
    double *pred = xmalloc(sizeof(double) * (size_t)te->n * e), r1, r5;
    ridge_predict(&rg, te->X, te->n, pred);
    ridge_recall(pred, te->n, e, text, n_labels, te->y, &r1, &r5);
    h5_write_scalar(out, "ridge/alpha", rg.alpha);
    h5_write_scalar(out, "ridge/r_at_1", r1);
    h5_write_scalar(out, "ridge/r_at_5", r5);
    hsize_t dA[1] = {RIDGE_N_ALPHA}, dW[2] = {(hsize_t)tr->p, (hsize_t)e}, de[1] = {(hsize_t)e};
    h5_write_f64(out, "ridge/alphas", ridge_alphas, 1, dA);
    h5_write_f64(out, "ridge/cv_mse", cv, 1, dA);
    h5_write_f64(out, "ridge/W", rg.W, 2, dW);
    h5_write_f64(out, "ridge/b", rg.b, 1, de);
    ridge_free(&rg);
    free(pred);
    free(Y);
}

int check_probe_main(int argc, char **argv) {
    if (argc != 2) die("usage: stsae check-probe IN.h5 OUT.h5");
    const char *in_path = argv[0], *out_path = argv[1];
    hid_t f = h5_open_read(in_path);
    Split tr, te;
    read_split(f, in_path, "train", -1, &tr);
    read_split(f, in_path, "test", tr.p, &te);
    const int n_class = (int)h5_attr_f64(f, in_path, "n_class");
    const double C = h5_attr_f64_opt(f, in_path, "C", 1.0);
    const int max_iter = (int)h5_attr_f64_opt(f, in_path, "max_iter", 1000);
    const double gtol = h5_attr_f64_opt(f, in_path, "gtol", 1e-6);
    const double ftol = h5_attr_f64_opt(f, in_path, "ftol", PROBE_FTOL);
    int ablate[MAX_ABLATE], n_ablate = 0;
    if (H5Aexists(f, "ablate") > 0) n_ablate = h5_attr_ints(f, in_path, "ablate", ablate, MAX_ABLATE);
    float *text = NULL;
    hsize_t dt[2] = {0, 0};
    if (h5_exists(f, "text")) text = h5_read_f32(f, in_path, "text", 2, dt);
    H5Fclose(f);

    Probe pr;
    probe_fit_ftol(tr.X, tr.y, tr.n, tr.p, n_class, C, max_iter, gtol, ftol, &pr);
    hid_t out = h5_create_tmp(out_path);
    write_probe(out, &pr, &tr, &te, ablate, n_ablate);
    if (text) write_ridge(out, &tr, &te, text, (int)dt[0], (int)dt[1]);
    h5_commit(out, out_path);
    probe_free(&pr);
    free(text), free(tr.X), free(tr.y), free(te.X), free(te.y);
    return 0;
}
