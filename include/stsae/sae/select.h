// select.h — the activation selections of SPEC §1, one token row at a time:
// TopK (a lower bound from strided block maxima, then a walk of the few
// blocks above it with a running threshold, a buffer of 2k and an O(k)
// selection when it fills; no sort), TopK over a subset (AuxK's dead
// latents), the exact k-th largest of a whole batch (radix select on the
// float bits in two 16-bit passes, whose histograms a data-parallel job sums
// over ranks; values below 2^-133, bits 0x00010000, count as zero),
// BatchTopK's candidates gathered chunk by chunk (so that a batch's
// pre-activations are never held whole), and sparsemax / entmax-1.5 (exact,
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
// n_rows rows (kk >= 1). If at most kk values are positive it returns 0
// (keep every positive value). sum_i64 (may be NULL) sums a histogram over
// the ranks of a job, so the threshold is that of the global batch.
float kth_largest_positive(const float *a, int64_t n_rows, int m, int64_t ld, int64_t kk,
                           void (*sum_i64)(void *ctx, int64_t *buf, int n), void *ctx);
// Its step (and its CUDA twin's): the index of the bucket, from the top of
// hist[lo, hi), holding the kk-th largest; kk becomes the rank inside it.
int radix_find_bucket(const int64_t *hist, int lo, int hi, int64_t *kk);

// BatchTopK's selection without the batch's whole pre-activation matrix
// (805 MB at 32k tokens and m = 6144): the rows are added chunk by chunk,
// as the encoder makes them, and each keeps its candidates, the positive
// entries at or above a bound t_r of its own. t_r is at or below the cap-th
// largest of the row's strided block maxima (topk_row's blocks), so a row
// keeps at least cap entries (about 1.2 cap at cap = 4k = 256, m = 6144:
// 300 entries, 2.4 KB a row) or, with fewer than cap blocks (t_r = 0),
// every positive entry. What a row leaves out is below t_r.
//   The batch's threshold v (the kk-th largest positive value, as
// kth_largest_positive) is then found among the candidates: it is their
// kk-th largest unless some row has t_r > v, because only then can an entry
// >= v have been left out. Those rows (rare: a row with more than about cap
// entries above v) the caller computes again in full and hands to
// batch_cands_redo, which replaces their candidates by their entries >= the
// first v; the kk-th largest of that set is the answer (every entry >= it
// is there). Then every entry >= v is a candidate: row r's are
// cand[cnt[r] .. cnt[r + 1]) at columns cand_idx[...], in column order.
// The buffers are kept from one step to the next (a step's tens of MB freed
// and mapped again cost page faults and TLB shootdowns). A data-parallel
// job's ranks each add their own rows; batch_cands_kth sums its histograms
// over them (sum_i64) and must be called on every rank.
typedef struct {
    int64_t n_rows;    // rows added since the reset
    int64_t *cnt;      // [n_rows + 1] row r's candidates: [cnt[r], cnt[r + 1])
    float *bound;      // [n_rows] t_r: row r left out no positive entry >= it
    float *cand;       // [cnt[n_rows]] the candidates' values
    int32_t *cand_idx; // ... and columns
    size_t cap_cnt, cap_bound, cap_cand, cap_idx;
} BatchCands;
void batch_cands_reset(BatchCands *c);
// Appends n rows of m (pre, row after row) with a bound at or below each
// row's cap-th largest block maximum.
void batch_cands_add(BatchCands *c, const float *pre, int n, int m, int cap);
// The kk-th largest positive candidate (0 when at most kk are positive).
float batch_cands_kth(BatchCands *c, int64_t kk, void (*sum_i64)(void *ctx, int64_t *buf, int n), void *ctx);
// Rows rows[0..nr) (ascending, each with bound > v), computed again in full
// (pre: nr rows of m), replace their candidates with their positive entries
// >= v, in place (the later rows move up). A row whose product, computed
// again, rounds to fewer such entries than it had keeps its old length, the
// rest zeros (which count for nothing, in the threshold or among the kept).
void batch_cands_redo(BatchCands *c, const int64_t *rows, int nr, const float *pre, int m, float v);
void batch_cands_free(BatchCands *c);

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
