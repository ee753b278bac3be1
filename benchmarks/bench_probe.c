// bench_probe.c — fit time of the learned evaluations (probe.h, ridge.h) on
// features given in a file (the IN.h5 of `stsae check-probe`, written by
// benchmarks/bench_probe.py, which times scikit-learn on the same data).
//
// usage: bench_probe IN.h5 [--reps N] [--no-ridge]
// Prints one JSON line: the shape, the threads, the median seconds of
// probe_fit and (when IN.h5 has text) of ridge_retrieval over N runs, the
// probe's iterations, final loss and gradient norm, test accuracy, the ridge
// alpha and R@1 / R@5.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/io/h5io.h"
#include "stsae/metrics/probe.h"
#include "stsae/metrics/ridge.h"

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int32_t *read_labels(hid_t f, const char *path, const char *dset, hsize_t *n) {
    int64_t *y = h5_read_i64(f, path, dset, 1, n);
    int32_t *out = xmalloc(sizeof(int32_t) * (size_t)n[0]);
    for (hsize_t i = 0; i < n[0]; i++) out[i] = (int32_t)y[i];
    free(y);
    return out;
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage: bench_probe IN.h5 [--reps N] [--no-ridge]");
    const char *path = argv[1];
    int reps = 1, ridge = 1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-ridge")) ridge = 0;
        else die("unknown option %s", argv[i]);
    }
    if (reps < 1 || reps > 64) die("--reps must be in [1, 64]");
    hid_t f = h5_open_read(path);
    hsize_t dtr[2], dte[2], ntr[1], nte[1], dt[2];
    float *Xtr = h5_read_f32(f, path, "train/X", 2, dtr), *Xte = h5_read_f32(f, path, "test/X", 2, dte);
    int32_t *ytr = read_labels(f, path, "train/y", ntr), *yte = read_labels(f, path, "test/y", nte);
    const int n_class = (int)h5_attr_f64(f, path, "n_class");
    float *text = ridge && h5_exists(f, "text") ? h5_read_f32(f, path, "text", 2, dt) : NULL;
    H5Fclose(f);
    const int n = (int)dtr[0], p = (int)dtr[1], m = (int)dte[0];

    double tp[64], tr[64], acc = 0.0;
    Probe pr;
    RidgeResult rr = {0};
    for (int r = 0; r < reps; r++) {
        double t0 = wall_time();
        probe_fit(Xtr, ytr, n, p, n_class, 1.0, 1000, 1e-6, &pr);
        tp[r] = wall_time() - t0;
        acc = probe_accuracy(&pr, Xte, yte, m);
        if (r + 1 < reps) probe_free(&pr);
        if (text) {
            t0 = wall_time();
            ridge_retrieval(Xtr, ytr, n, Xte, yte, m, p, text, (int)dt[0], (int)dt[1], &rr);
            tr[r] = wall_time() - t0;
        }
    }
    qsort(tp, (size_t)reps, sizeof(double), cmp);
    printf("{\"n\": %d, \"p\": %d, \"n_class\": %d, \"threads\": %d, \"probe_s\": %.4f, \"iterations\": %d, "
           "\"loss\": %.9g, \"grad_norm\": %.3g, \"accuracy\": %.6f",
           n, p, n_class, max_threads(), tp[reps / 2], pr.iterations, pr.loss, pr.grad_norm, acc);
    if (text) {
        qsort(tr, (size_t)reps, sizeof(double), cmp);
        printf(", \"ridge_s\": %.4f, \"alpha\": %g, \"r_at_1\": %.6f, \"r_at_5\": %.6f", tr[reps / 2], rr.alpha,
               rr.r_at_1, rr.r_at_5);
    }
    printf("}\n");
    probe_free(&pr);
    free(Xtr), free(Xte), free(ytr), free(yte), free(text);
    return 0;
}
