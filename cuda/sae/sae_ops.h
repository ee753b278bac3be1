// sae_ops.h — launchers shared between the CUDA sources of the step
// (internal to cuda/). Kernels are reached only through these.
#ifndef STSAE_CUDA_SAE_OPS_H
#define STSAE_CUDA_SAE_OPS_H

#include <cuda_runtime.h>
#include <stdint.h>

// Largest k the TopK kernel takes (its kept entries live in shared memory).
enum { TOPK_MAX_K = 128 };

// Per row r < n of pre [n, m]: a = pre[r] + b_enc; the k largest positive a_j
// (all positive ones when fewer) go to slots idx/val[r * k .. r * k + count[r]),
// sorted by latent index. One block per row (select.cu).
void launch_topk_rows(const float *pre, const float *b_enc, int n, int m, int k, int32_t *idx, float *val,
                      int *count, cudaStream_t st);

#endif
