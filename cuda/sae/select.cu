// select.cu — the activation selections of SPEC §1 on the GPU, the twins of
// src/sae/select.c (select.h): TopK per token (also over a subset: AuxK's
// dead latents), the exact k-th largest of a whole batch (BatchTopK) and its
// keep-above pass, and sparsemax / entmax-1.5 with T_s (threshold, support,
// backward).
//
// In:  pre [n, m] (an encoder GEMM), optionally b_enc [m] added on the fly.
// Out: kept entries (latent, value), per token sorted by latent index, in
//      slots the caller gives (fixed width k for TopK, CSR starts for the
//      others), and their count per token.
//
// TopK: one block per token; a radix select on the bits of the positive
// values (positive IEEE floats order like their bits as unsigned integers) in
// four passes of 8 bits with a 256-bin histogram in shared memory finds the
// exact k-th largest value T; a pass keeps the values above T, and one more
// the ties at T in latent order, so that a tie at the k-th value keeps the
// lowest latent indices (the CPU's selection keeps an unspecified one; ties
// have measure zero on real data). k <= TOPK_MAX_K; the row is read from L2
// once per pass. Non-positive values are never kept, as on the CPU.
//
// Batch k-th largest: the CPU's radix select (two 16-bit passes over the
// float bits, histograms summed over ranks through the same SaeReduce hook
// on the host) with device histograms (integer atomics: exact counts, the
// same on every run). Keep-above and the simplex fills write each token's
// entries in latent order through a block-wide scan, no atomics.
//
// Sparsemax / entmax-1.5: one block per token; the candidates (values above
// max - 1 of v = (pre + b_enc) s) are gathered in shared memory (2 m floats),
// ranked into descending order, and one thread runs the CPU's threshold loop
// in double on them, so tau has the same bits as the CPU's for the same pre.
// The backward (Jacobian-vector product) is one thread per token, in the
// CPU's order. No floating-point atomics anywhere.
#include <string.h>

#include "base/cuda_check.h"
#include "sae/sae_ops.h"

extern "C" {
#include "stsae/sae/select.h" // radix_find_bucket
}

enum { TOPK_THREADS = 256, SEL_THREADS = 256 };

// Exclusive prefix sum of flag over the block's threads in thread order;
// *total gets the block's sum. Every thread of the block calls it;
// blockDim.x a multiple of 32.
__device__ __forceinline__ int block_excl_scan(int flag, int *total) {
    __shared__ int s_warp[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    const unsigned bal = __ballot_sync(0xffffffffu, flag != 0);
    const int before = (int)__popc(bal & ((1u << lane) - 1u));
    __syncthreads(); // a previous call's readers are done with s_warp
    if (lane == 0) s_warp[warp] = (int)__popc(bal);
    __syncthreads();
    int off = 0, tot = 0;
    for (int q = 0; q < n_warps; q++) {
        off += q < warp ? s_warp[q] : 0;
        tot += s_warp[q];
    }
    *total = tot;
    return off + before;
}

// Block-wide sum of an int (exact: any order gives the same).
__device__ __forceinline__ int block_count(int c) {
    __shared__ int s_c;
    __syncthreads();
    if (threadIdx.x == 0) s_c = 0;
    __syncthreads();
    if (c) atomicAdd(&s_c, c);
    __syncthreads();
    return s_c;
}

__device__ __forceinline__ unsigned topk_key(float v) { return v > 0.0f ? __float_as_uint(v) : 0u; }

__global__ void topk_rows_kernel(const float *pre, const float *b_enc, const uint8_t *mask, int m, int k,
                                 int32_t *idx_out, float *val_out, int *count_out) {
    __shared__ unsigned hist[256];
    __shared__ unsigned s_prefix, s_total;
    __shared__ int s_need, s_ngt;
    __shared__ int32_t s_idx[TOPK_MAX_K];
    __shared__ float s_val[TOPK_MAX_K];
    const float *row = pre + (size_t)blockIdx.x * m;
#define TOPK_VALUE(j) (b_enc ? row[j] + b_enc[j] : row[j])
#define TOPK_KEY(j, v) (mask && !mask[j] ? 0u : topk_key(v))
    unsigned prefix = 0; // the bits of T found so far
    int need = k;        // rank of T among the keys that match prefix
    unsigned total = 0;  // positive (candidate) entries of the row
    for (int pass = 0; pass < 4; pass++) {
        const int shift = 24 - 8 * pass;
        for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
        __syncthreads();
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            const float v = TOPK_VALUE(j);
            unsigned u = TOPK_KEY(j, v);
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
    if (threadIdx.x == 0) s_ngt = 0;
    __syncthreads();
    // the values above T (k - need of them; their order is fixed by the sort below)
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        const float v = TOPK_VALUE(j);
        if (TOPK_KEY(j, v) > T) {
            int q = atomicAdd(&s_ngt, 1);
            s_idx[q] = j;
            s_val[q] = v;
        }
    }
    // the ties at T, in latent order, fill the last `need` slots
    if (T > 0u) {
        int seen = 0; // the same in every thread
        for (int j0 = 0; j0 < m && seen < need; j0 += blockDim.x) {
            const int j = j0 + threadIdx.x;
            float v = 0.0f;
            int flag = 0;
            if (j < m) {
                v = TOPK_VALUE(j);
                flag = TOPK_KEY(j, v) == T;
            }
            int tot;
            const int pos = seen + block_excl_scan(flag, &tot);
            if (flag && pos < need) {
                s_idx[k - need + pos] = j;
                s_val[k - need + pos] = v;
            }
            seen += tot;
        }
    }
#undef TOPK_VALUE
#undef TOPK_KEY
    __syncthreads();
    // rank sort by latent index (k <= TOPK_MAX_K entries, distinct indices)
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

void launch_topk_rows(const float *pre, const float *b_enc, const uint8_t *mask, int n, int m, int k, int32_t *idx,
                      float *val, int *count, cudaStream_t st) {
    if (k < 1 || k > TOPK_MAX_K) stsae_die_at(__FILE__, __LINE__, "CUDA TopK: k = %d outside [1, %d]", k, TOPK_MAX_K);
    if (n <= 0) return;
    topk_rows_kernel<<<n, TOPK_THREADS, 0, st>>>(pre, b_enc, mask, m, k, idx, val, count);
    cudaCheckLaunch("topk_rows_kernel");
}

// ---- BatchTopK -------------------------------------------------------------------

__global__ void add_bias_rows_kernel(float *pre, const float *b_enc, size_t n_el, int m) {
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < n_el; q += (size_t)gridDim.x * blockDim.x)
        pre[q] += b_enc[q % m];
}

static int grid_for(size_t n, int threads) {
    size_t b = (n + threads - 1) / threads;
    return b > 65535 ? 65535 : (int)(b > 0 ? b : 1);
}

void launch_add_bias_rows(float *pre, const float *b_enc, int n, int m, cudaStream_t st) {
    const size_t n_el = (size_t)n * m;
    if (n_el == 0) return;
    add_bias_rows_kernel<<<grid_for(n_el, 256), 256, 0, st>>>(pre, b_enc, n_el, m);
    cudaCheckLaunch("add_bias_rows_kernel");
}

// level 0: hist[bits >> 16]++ over everything; level 1: hist[bits & 0xFFFF]++
// over the entries whose high half is `high` (as histogram() in select.c).
__global__ void bits_hist_kernel(const unsigned *a, size_t n_el, int level, unsigned high, unsigned *hist) {
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < n_el; q += (size_t)gridDim.x * blockDim.x) {
        const unsigned u = a[q];
        if (level == 0) atomicAdd(&hist[u >> 16], 1u);
        else if (u >> 16 == high) atomicAdd(&hist[u & 0xFFFFu], 1u);
    }
}

void launch_bits_histogram(const float *a, size_t n_el, int level, unsigned high, unsigned *hist, cudaStream_t st) {
    cudaCheck(cudaMemsetAsync(hist, 0, sizeof(unsigned) * SEL_HIST_BINS, st));
    if (n_el == 0) return;
    bits_hist_kernel<<<grid_for(n_el, 256), 256, 0, st>>>((const unsigned *)a, n_el, level, high, hist);
    cudaCheckLaunch("bits_hist_kernel");
}

// One level of the device histogram of a, into b->h64 on the host.
static void histogram_to_host(const float *a, size_t n_el, int level, unsigned high, const SelHistBufs *b,
                              cudaStream_t st) {
    launch_bits_histogram(a, n_el, level, high, b->hist, st);
    cudaCheck(cudaMemcpyAsync(b->h32, b->hist, sizeof(unsigned) * SEL_HIST_BINS, cudaMemcpyDeviceToHost, st));
    cudaCheck(cudaStreamSynchronize(st));
    for (int i = 0; i < SEL_HIST_BINS; i++) b->h64[i] = b->h32[i];
}

float kth_largest_positive_cuda(const float *a, size_t n_el, int64_t kk, const SaeReduce *red, const SelHistBufs *b,
                                cudaStream_t st) {
    enum { POS = 1 << 15 };
    histogram_to_host(a, n_el, 0, 0, b, st);
    if (red) red->sum_i64(red->ctx, b->h64 + 1, POS - 1);
    int64_t total = 0;
    for (int i = 1; i < POS; i++) total += b->h64[i];
    if (total <= kk) return 0.0f;
    const uint32_t high = (uint32_t)radix_find_bucket(b->h64, 1, POS, &kk);
    histogram_to_host(a, n_el, 1, high, b, st);
    if (red) red->sum_i64(red->ctx, b->h64, SEL_HIST_BINS);
    const uint32_t low = (uint32_t)radix_find_bucket(b->h64, 0, SEL_HIST_BINS, &kk);
    const uint32_t bits = high << 16 | low;
    float v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

// count[r] = entries of row r with a > 0 and a >= v; one block per row.
__global__ void keep_count_kernel(const float *pre, int m, float v, int *count) {
    const float *row = pre + (size_t)blockIdx.x * m;
    int c = 0;
    for (int j = threadIdx.x; j < m; j += blockDim.x) c += row[j] > 0.0f && row[j] >= v;
    c = block_count(c);
    if (threadIdx.x == 0) count[blockIdx.x] = c;
}

// The same entries, in latent order, to idx/val from start[r].
__global__ void keep_fill_kernel(const float *pre, int m, float v, const int *start, int32_t *idx, float *val) {
    const float *row = pre + (size_t)blockIdx.x * m;
    int at = start[blockIdx.x];
    for (int j0 = 0; j0 < m; j0 += blockDim.x) {
        const int j = j0 + threadIdx.x;
        const float a = j < m ? row[j] : 0.0f;
        const int flag = j < m && a > 0.0f && a >= v;
        int tot;
        const int pos = at + block_excl_scan(flag, &tot);
        if (flag) {
            idx[pos] = j;
            val[pos] = a;
        }
        at += tot;
    }
}

void launch_keep_count(const float *pre, int n, int m, float v, int *count, cudaStream_t st) {
    if (n <= 0) return;
    keep_count_kernel<<<n, SEL_THREADS, 0, st>>>(pre, m, v, count);
    cudaCheckLaunch("keep_count_kernel");
}

void launch_keep_fill(const float *pre, int n, int m, float v, const int *start, int32_t *idx, float *val,
                      cudaStream_t st) {
    if (n <= 0) return;
    keep_fill_kernel<<<n, SEL_THREADS, 0, st>>>(pre, m, v, start, idx, val);
    cudaCheckLaunch("keep_fill_kernel");
}

// ---- sparsemax / entmax-1.5 --------------------------------------------------------

// Block-wide max of a float (exact: any order gives the same).
__device__ __forceinline__ float block_max(float v) {
    __shared__ float s_part[32];
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) s_part[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = s_part[0];
    for (int q = 1; q < (int)(blockDim.x >> 5); q++) t = fmaxf(t, s_part[q]);
    return t;
}

// One block per row: v = (pre + b_enc) s; tau as sparsemax_threshold
// (entmax = 0) or entmax15_threshold (entmax = 1, s already halved) computes
// it, and the support's size. Dynamic shared memory: 2 m floats.
__global__ void simplex_threshold_kernel(const float *pre, const float *b_enc, int m, float s, int entmax,
                                         float *tau_out, int *count_out) {
    extern __shared__ float sh[];
    float *cand = sh, *sorted = sh + m;
    __shared__ int s_n;
    __shared__ float s_tau;
    const float *row = pre + (size_t)blockIdx.x * m;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < m; j += blockDim.x) mx = fmaxf(mx, (row[j] + b_enc[j]) * s);
    mx = block_max(mx);
    if (threadIdx.x == 0) s_n = 0;
    __syncthreads();
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        const float v = (row[j] + b_enc[j]) * s;
        if (v > mx - 1.0f) cand[atomicAdd(&s_n, 1)] = v; // order undone by the ranking below
    }
    __syncthreads();
    const int n = s_n;
    for (int t = threadIdx.x; t < n; t += blockDim.x) {
        const float mine = cand[t];
        int rank = 0;
        for (int q = 0; q < n; q++) rank += cand[q] > mine || (cand[q] == mine && q < t);
        sorted[rank] = mine;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double cum = 0.0, cum2 = 0.0, tau = 0.0;
        for (int i = 0; i < n; i++) {
            const double x = sorted[i];
            cum += x;
            if (!entmax) {
                if (1.0 + (i + 1) * x > cum) tau = (cum - 1.0) / (i + 1);
            } else {
                cum2 += x * x;
                const double rho = i + 1, mean = cum / rho;
                const double ss = rho * (cum2 / rho - mean * mean);
                const double delta = (1.0 - ss) / rho;
                const double tt = mean - sqrt(delta > 0.0 ? delta : 0.0);
                if (tt <= x) tau = tt;
            }
        }
        s_tau = (float)tau;
    }
    __syncthreads();
    const float tau = s_tau;
    int c = 0;
    for (int j = threadIdx.x; j < m; j += blockDim.x) c += (row[j] + b_enc[j]) * s - tau > 0.0f;
    c = block_count(c);
    if (threadIdx.x == 0) {
        tau_out[blockIdx.x] = tau;
        count_out[blockIdx.x] = c;
    }
}

// The support of row r in latent order from start[r]: max(v - tau, 0)
// (sparsemax) or its square (entmax-1.5).
__global__ void simplex_fill_kernel(const float *pre, const float *b_enc, int m, float s, int entmax,
                                    const float *tau, const int *start, int32_t *idx, float *val) {
    const float *row = pre + (size_t)blockIdx.x * m;
    const float t = tau[blockIdx.x];
    int at = start[blockIdx.x];
    for (int j0 = 0; j0 < m; j0 += blockDim.x) {
        const int j = j0 + threadIdx.x;
        const float dlt = j < m ? (row[j] + b_enc[j]) * s - t : 0.0f;
        const int flag = dlt > 0.0f;
        int tot;
        const int pos = at + block_excl_scan(flag, &tot);
        if (flag) {
            idx[pos] = j;
            val[pos] = entmax ? dlt * dlt : dlt;
        }
        at += tot;
    }
}

void launch_simplex_threshold(const float *pre, const float *b_enc, int n, int m, float s, int entmax, float *tau,
                              int *count, cudaStream_t st) {
    if (n <= 0) return;
    const size_t shmem = sizeof(float) * 2 * (size_t)m;
    if (shmem > 48 * 1024) {
        if (shmem > 227 * 1024) stsae_die_at(__FILE__, __LINE__, "CUDA sparsemax/entmax: m = %d too large", m);
        cudaCheck(cudaFuncSetAttribute(simplex_threshold_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)shmem));
    }
    simplex_threshold_kernel<<<n, SEL_THREADS, shmem, st>>>(pre, b_enc, m, s, entmax, tau, count);
    cudaCheckLaunch("simplex_threshold_kernel");
}

void launch_simplex_fill(const float *pre, const float *b_enc, int n, int m, float s, int entmax, const float *tau,
                         const int *start, int32_t *idx, float *val, cudaStream_t st) {
    if (n <= 0) return;
    simplex_fill_kernel<<<n, SEL_THREADS, 0, st>>>(pre, b_enc, m, s, entmax, tau, start, idx, val);
    cudaCheckLaunch("simplex_fill_kernel");
}

// One thread per row, the CPU's sums in the CPU's order (sparsemax_backward,
// entmax15_backward).
__global__ void simplex_backward_kernel(const int *start, const int *count, const float *z, float *g, int n,
                                        float inv_T, int entmax) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    const int e0 = start[r], cnt = count[r];
    if (!entmax) {
        double mean = 0.0;
        for (int i = 0; i < cnt; i++) mean += g[e0 + i];
        mean = cnt ? mean / cnt : 0.0;
        for (int i = 0; i < cnt; i++) g[e0 + i] = (float)((g[e0 + i] - mean) * inv_T);
    } else {
        double gs = 0.0, ss = 0.0;
        for (int i = 0; i < cnt; i++) {
            const double sq = sqrt((double)z[e0 + i]);
            gs += g[e0 + i] * sq;
            ss += sq;
        }
        const double q = ss > 0.0 ? gs / ss : 0.0;
        for (int i = 0; i < cnt; i++) {
            const double sq = sqrt((double)z[e0 + i]);
            g[e0 + i] = (float)((g[e0 + i] - q) * sq * inv_T);
        }
    }
}

void launch_simplex_backward(const int *start, const int *count, const float *z, float *g, int n, float inv_T,
                             int entmax, cudaStream_t st) {
    if (n <= 0) return;
    simplex_backward_kernel<<<grid_for((size_t)n, 128), 128, 0, st>>>(start, count, z, g, n, inv_T, entmax);
    cudaCheckLaunch("simplex_backward_kernel");
}
