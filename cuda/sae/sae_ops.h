// sae_ops.h — launchers shared between the CUDA sources of the step
// (internal to cuda/). Kernels are reached only through these. All run on
// stream st and return without synchronizing.
#ifndef STSAE_CUDA_SAE_OPS_H
#define STSAE_CUDA_SAE_OPS_H

#include <cuda_runtime.h>
#include <stdint.h>

// Largest k the TopK kernel takes (its kept entries live in shared memory):
// also AuxK's k_aux.
enum { TOPK_MAX_K = 512 };
// Bins of a 16-bit histogram of float bits (BatchTopK's radix select).
enum { SEL_HIST_BINS = 1 << 16 };

// Per row r < n of pre [n, m]: a = pre[r] (+ b_enc when not NULL); among the
// latents with mask[j] != 0 (all when mask is NULL) the k largest positive
// a_j (all positive ones when fewer; ties at the k-th: lowest latent first)
// go to slots idx/val[r * k .. r * k + count[r]), sorted by latent index.
// One block per row (select.cu).
void launch_topk_rows(const float *pre, const float *b_enc, const uint8_t *mask, int n, int m, int k, int32_t *idx,
                      float *val, int *count, cudaStream_t st);

// pre [n, m] += b_enc per row.
void launch_add_bias_rows(float *pre, const float *b_enc, int n, int m, cudaStream_t st);
// hist [SEL_HIST_BINS] (zeroed here) of the n_el floats of a: level 0 the
// high 16 bits of every value, level 1 the low 16 bits of those whose high
// half is `high` (kth_largest_positive's two passes).
void launch_bits_histogram(const float *a, size_t n_el, int level, unsigned high, unsigned *hist, cudaStream_t st);
// BatchTopK's keep: per row of pre [n, m], the entries with a > 0 and a >= v:
// first their count, then (start[r] from the counts) the entries in latent order.
void launch_keep_count(const float *pre, int n, int m, float v, int *count, cudaStream_t st);
void launch_keep_fill(const float *pre, int n, int m, float v, const int *start, int32_t *idx, float *val,
                      cudaStream_t st);

// Sparsemax (entmax = 0, s = 1/T_s) or entmax-1.5 (entmax = 1, s = 0.5/T_s)
// of v = (pre + b_enc) s per row: the threshold tau[r] and the support's size
// count[r]; then the support in latent order from start[r]; and the backward
// in place on g (dL/dz in, dL/dpre out) with z the kept values.
void launch_simplex_threshold(const float *pre, const float *b_enc, int n, int m, float s, int entmax, float *tau,
                              int *count, cudaStream_t st);
void launch_simplex_fill(const float *pre, const float *b_enc, int n, int m, float s, int entmax, const float *tau,
                         const int *start, int32_t *idx, float *val, cudaStream_t st);
void launch_simplex_backward(const int *start, const int *count, const float *z, float *g, int n, float inv_T,
                             int entmax, cudaStream_t st);

#endif
