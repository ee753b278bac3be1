// r2.c — the reconstruction R², streamed and whole (r2.h).
#include "stsae/metrics/r2.h"

#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

void r2_sum_init(R2Sum *r, int d) {
    memset(r, 0, sizeof(*r));
    r->d = d;
    r->sx = xcalloc((size_t)d, sizeof(double));
    r->sxx = xcalloc((size_t)d, sizeof(double));
}

void r2_sum_free(R2Sum *r) {
    free(r->sx), free(r->sxx);
    memset(r, 0, sizeof(*r));
}

void r2_sum_add(R2Sum *r, const float *x, const float *xh, int64_t rows) {
    const int d = r->d;
    double sse = r->sse;
    for (size_t i = 0; i < (size_t)rows; i++)
        for (int q = 0; q < d; q++) {
            const double xv = x[i * d + q], e = xv - xh[i * d + q];
            sse += e * e;
            r->sx[q] += xv;
            r->sxx[q] += xv * xv;
        }
    r->sse = sse;
    r->rows += (double)rows;
}

void r2_sum_add_sums(R2Sum *r, int64_t rows, double sse, const double *sx, const double *sxx) {
    for (int q = 0; q < r->d; q++) {
        r->sx[q] += sx[q];
        r->sxx[q] += sxx[q];
    }
    r->sse += sse;
    r->rows += (double)rows;
}

double r2_sum_value(const R2Sum *r) {
    double den = 0.0;
    // (planted: the total sum of squares about 0 instead of the mean)
    const double centre = PLANTED("r2_uncentred") ? 0.0 : 1.0;
    for (int q = 0; q < r->d; q++) den += r->sxx[q] - centre * r->sx[q] * r->sx[q] / r->rows;
    return 1.0 - r->sse / den;
}

double r2_rows(const float *x, const float *xh, int n, int d) {
    double se = 0.0, ss = 0.0;
    for (int q = 0; q < d; q++) {
        double mu = 0.0;
        for (int i = 0; i < n; i++) mu += x[(size_t)i * d + q];
        mu /= n;
        for (int i = 0; i < n; i++) {
            const double a = x[(size_t)i * d + q], b = xh[(size_t)i * d + q];
            se += (a - b) * (a - b);
            ss += (a - mu) * (a - mu);
        }
    }
    return 1.0 - se / ss;
}
