// r2.h — the reconstruction R² of SPEC §2: the share of the inputs' variance
// that a reconstruction explains, pooled over channels,
//     R² = 1 - sum_rows,q (x_q - xh_q)^2 / sum_q sum_rows (x_q - mean_q)^2,
// which is scikit-learn's r2_score(x, xh, multioutput="variance_weighted")
// (except that a constant channel's errors count here; r2_score leaves them out).
//
// In:  rows of inputs x and their reconstructions xh, both [rows, d] float32,
//      d channels per row. Either streamed (R2Sum: the tokens of one clip at a
//      time, as eval reads them, never all tokens at once) or whole (r2_rows:
//      a [n, d] matrix in memory, such as the clip means).
// Out: R² as a double; NAN-free only where some channel varies (a zero
//      denominator gives -inf or NaN, as the formula says; callers pass real
//      data).
//
// Why here: pure compute (no MPI, no HDF5), so the metric is tested against
// an independent reference on its own (tests/test_metrics.py, through `stsae
// check-metrics`) instead of only through a whole eval run. Sums are float64
// and in row order; the two forms are kept as eval always computed them
// (streamed: sums of x and x² per channel; whole: the mean first, then the
// centred sum), so eval.h5's numbers are unchanged to the bit.
#ifndef STSAE_R2_H
#define STSAE_R2_H

#include <stdint.h>

// Streamed: r2_sum_init, r2_sum_add per block of rows, r2_sum_value, then
// r2_sum_free.
typedef struct {
    int d;
    double rows;     // rows added
    double sse;      // sum of (x - xh)^2 over rows and channels
    double *sx, *sxx; // [d] sums of x and x^2 per channel
} R2Sum;

void r2_sum_init(R2Sum *r, int d);
void r2_sum_free(R2Sum *r);
// x, xh [rows, d]
void r2_sum_add(R2Sum *r, const float *x, const float *xh, int64_t rows);
// rows already summed elsewhere (the GPU's evaluation, sae_cuda.h): their
// sse and per-channel sx, sxx [d] added.
void r2_sum_add_sums(R2Sum *r, int64_t rows, double sse, const double *sx, const double *sxx);
// 1 - sse / sum_q (sxx_q - sx_q^2 / rows)
double r2_sum_value(const R2Sum *r);

// Whole: R² of n rows x, xh [n, d] in memory, by two passes per channel (its
// mean, then the centred squares).
double r2_rows(const float *x, const float *xh, int n, int d);

#endif
