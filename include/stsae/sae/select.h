// select.h — the activation selections of SPEC §1, one token row at a time:
// TopK (a lower bound from strided block maxima, then a walk of the few
// blocks above it with a running threshold, a buffer of 2k and an O(k)
// selection when it fills; no sort), TopK over a subset (AuxK's dead latents), the exact k-th largest of a
// whole batch (radix select on the float bits in two 16-bit passes, whose
// histograms a data-parallel job sums over ranks; values below the smallest
// normal float count as zero), and sparsemax / entmax-1.5 (exact,
// sort-based, Peters et al. 2019) with their Jacobian-vector products.
//
// Only positive activations are ever kept: a kept zero changes nothing in the
// forward pass and gets no gradient through the ReLU.
#ifndef STSAE_SELECT_H
#define STSAE_SELECT_H

#include <stdint.h>

// k largest positive entries of v = a + bias over [0..m) (bias may be NULL:
// v = a; the training step passes b_enc, so the pre-activation row is read
// once and never written back): writes up to k (idx, val = v) in no
// particular order and returns how many.
int topk_row(const float *a, const float *bias, int m, int k, int32_t *idx, float *val);
// The same over j in cand[0..n_cand) only.
int topk_row_subset(const float *a, const float *bias, const int32_t *cand, int n_cand, int k,
                    int32_t *idx, float *val);

// The kk-th largest positive value among the rows a[r*ld .. r*ld + m) of all
// n_rows rows (kk >= 1). If fewer than kk values are positive it returns 0
// (keep every positive value). sum_i64 (may be NULL) sums a histogram over
// the ranks of a job, so the threshold is that of the global batch.
float kth_largest_positive(const float *a, int64_t n_rows, int m, int64_t ld, int64_t kk,
                           void (*sum_i64)(void *ctx, int64_t *buf, int n), void *ctx);
// Its step (and its CUDA twin's): the index of the bucket, from the top of
// hist[lo, hi), holding the kk-th largest; kk becomes the rank inside it.
int radix_find_bucket(const int64_t *hist, int lo, int hi, int64_t *kk);

// Sparsemax / entmax-1.5 of v = pre * inv_T over one row of length m.
// *_threshold returns tau such that the output is max(v - tau, 0)
// (sparsemax) or max(v/2 - tau, 0)^2 (entmax-1.5). scratch: m floats.
float sparsemax_threshold(const float *pre, int m, float inv_T, float *scratch);
float entmax15_threshold(const float *pre, int m, float inv_T, float *scratch);
// Writes the support entries (idx, val) of that output for threshold tau and
// returns their number; with idx == NULL it only counts them.
int sparsemax_fill(const float *pre, int m, float inv_T, float tau, int32_t *idx, float *val);
int entmax15_fill(const float *pre, int m, float inv_T, float tau, int32_t *idx, float *val);

// In place: g holds dL/dz on the n support entries with values z; on return it
// holds dL/dpre (the inv_T of v = pre * inv_T included).
void sparsemax_backward(const float *z, float *g, int n, float inv_T);
void entmax15_backward(const float *z, float *g, int n, float inv_T);

#endif
