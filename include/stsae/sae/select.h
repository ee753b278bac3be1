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

#include <stddef.h>
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
// The same value for a batch's rows of m (ld = m), from far fewer entries:
// the kk-th largest of the rows' strided block maxima (topk_row's blocks) is
// a bound at or below it, and only the positive entries at or above that
// bound (in the blocks whose maximum reaches it) are histogrammed. Costs one
// vector pass over the rows instead of two scattered histogram passes;
// holds m/8 floats per row meanwhile. sum_i64 is called the same number of
// times on every rank (a data-parallel job's ranks all take the same path).
// scratch (may be NULL: allocated for the call) keeps its buffers from one
// call to the next: a step's 13 MB (4096 tokens) freed and mapped again each
// time costs page faults and TLB shootdowns. When the answer v is > 0 it
// also holds the candidates, a superset of every entry >= v: row r's are
// cand[cnt[r] .. cnt[r + 1]) at columns cand_idx[...] (in no particular
// order), and n_rows is the rows' count; n_rows is -1 when v is 0 (then the
// rows' positive entries are the kept ones).
typedef struct {
    float *mx, *cand;
    int32_t *cand_idx;
    int64_t *cnt;
    int64_t n_rows;
    size_t cap_mx, cap_cand, cap_idx, cap_cnt;
} BatchKthScratch;
float batch_kth_largest(const float *a, int64_t n_rows, int m, int64_t kk,
                        void (*sum_i64)(void *ctx, int64_t *buf, int n), void *ctx, BatchKthScratch *scratch);
void batch_kth_scratch_free(BatchKthScratch *s);
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
