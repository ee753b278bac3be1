// select.cu — TopK of each encoder row on the GPU, the twin of
// topk_row (select.h) with the bias b_enc added on the fly.
//
// In:  pre [n, m] (the encoder GEMM of a chunk), b_enc [m], k <= TOPK_MAX_K.
// Out: per row, up to k (latent, value) slots in a fixed-width layout
//      idx/val [n, k] and the count [n]; entries sorted by latent index.
//
// One block per token: a radix select on the bits of the positive values
// (positive IEEE floats order like their bits as unsigned integers) in four
// passes of 8 bits with a 256-bin histogram in shared memory finds the exact
// k-th largest value T; a last pass keeps the values above T and as many
// equal to T as complete k (which of several ties: not fixed). The row is
// read from global memory (L2) once per pass; m up to 32768 is 5 x 128 KiB.
// Non-positive values are never kept, as on the CPU.
#include "base/cuda_check.h"
#include "sae/sae_ops.h"

enum { TOPK_THREADS = 256 };

__device__ __forceinline__ unsigned topk_key(float v) { return v > 0.0f ? __float_as_uint(v) : 0u; }

__global__ void topk_rows_kernel(const float *pre, const float *b_enc, int m, int k, int32_t *idx_out,
                                 float *val_out, int *count_out) {
    __shared__ unsigned hist[256];
    __shared__ unsigned s_prefix, s_total;
    __shared__ int s_need, s_ngt, s_neq;
    __shared__ int32_t s_idx[TOPK_MAX_K];
    __shared__ float s_val[TOPK_MAX_K];
    const float *row = pre + (size_t)blockIdx.x * m;
    unsigned prefix = 0; // the bits of T found so far
    int need = k;        // rank of T among the keys that match prefix
    unsigned total = 0;  // positive entries of the row
    for (int pass = 0; pass < 4; pass++) {
        const int shift = 24 - 8 * pass;
        for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
        __syncthreads();
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            unsigned u = topk_key(row[j] + b_enc[j]);
            if (u == 0u || (pass > 0 && (u >> (shift + 8)) != (prefix >> (shift + 8)))) continue;
            atomicAdd(&hist[(u >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            if (pass == 0) {
                unsigned t = 0;
                for (int b = 0; b < 256; b++) t += hist[b];
                s_total = t;
            }
            unsigned above = 0;
            int b = 255;
            for (; b > 0; b--) {
                if (above + hist[b] >= (unsigned)need) break;
                above += hist[b];
            }
            s_prefix = prefix | (unsigned)b << shift;
            s_need = need - (int)above;
        }
        __syncthreads();
        total = s_total;
        if (total <= (unsigned)k) break; // keep every positive entry
        prefix = s_prefix;
        need = s_need;
    }
    const unsigned T = total <= (unsigned)k ? 0u : prefix;
    const int cnt = total <= (unsigned)k ? (int)total : k;
    if (threadIdx.x == 0) {
        s_ngt = 0;
        s_neq = 0;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        const float v = row[j] + b_enc[j];
        const unsigned u = topk_key(v);
        if (u > T) {
            int q = atomicAdd(&s_ngt, 1);
            s_idx[q] = j;
            s_val[q] = v;
        } else if (T > 0u && u == T) {
            int q = atomicAdd(&s_neq, 1);
            if (q < need) { // ties fill the slots above the k - need larger values
                s_idx[k - 1 - q] = j;
                s_val[k - 1 - q] = v;
            }
        }
    }
    __syncthreads();
    // rank sort by latent index (k <= 128 entries, distinct indices)
    const size_t o = (size_t)blockIdx.x * k;
    for (int t = threadIdx.x; t < cnt; t += blockDim.x) {
        const int32_t mine = s_idx[t];
        int rank = 0;
        for (int s = 0; s < cnt; s++) rank += s_idx[s] < mine;
        idx_out[o + rank] = mine;
        val_out[o + rank] = s_val[t];
    }
    if (threadIdx.x == 0) count_out[blockIdx.x] = cnt;
}

void launch_topk_rows(const float *pre, const float *b_enc, int n, int m, int k, int32_t *idx, float *val,
                      int *count, cudaStream_t st) {
    if (k < 1 || k > TOPK_MAX_K) stsae_die_at(__FILE__, __LINE__, "CUDA TopK: k = %d outside [1, %d]", k, TOPK_MAX_K);
    if (n <= 0) return;
    topk_rows_kernel<<<n, TOPK_THREADS, 0, st>>>(pre, b_enc, m, k, idx, val, count);
    cudaCheckLaunch("topk_rows_kernel");
}
