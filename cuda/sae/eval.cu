// eval.cu — one clip's evaluation on the GPU (sae_cuda.h sae_cuda_eval_*),
// the twin of the dense part of eval.c's eval_clip: the clip's float16
// features go up once, and what the CPU computes from its T*N tokens and the
// encoder (the codes, the decode, the union TopK smoothing's dot products,
// R²'s sums, the token means) is computed here; what comes back is the codes
// (k per token), the smoothed codes and a few [d] sums, so the host's share
// (clip values, lag-1, the EMA smoothing, all O(entries)) stays small.
//
// Per clip, on the work's stream:
//   1. h [n, d] float16 up; x = float(h) * scale (tokens.cu's exact
//      conversion: the CPU's bits);
//   2. the codes: sae_cuda_encode (sae.cu), BatchTopK keeping a > theta;
//   3. one block per token: xhat = b_dec + sum z_j D_j over every latent, and
//      ||x - xhat||^2 in double;
//   4. one thread per channel: sum x, sum x^2, sum xhat over the tokens in
//      token order, in double (r2_sum_add's order for the first two);
//   5. union TopK (metrics.h smooth_union_topk), one block per token r = t N
//      + p with t > 0: the candidates are the union of the (latent-ordered)
//      supports of rows r - N and r, merged; one warp per candidate takes
//      a_j = max over the two rows of (x - b_dec) . W_enc_j + b_enc_j; the k
//      largest positive a_j are kept (ties: lowest latent), in latent order.
//      Rows of t = 0 keep their codes.
// Sums here run in other orders than the CPU's (the decode's, the dot
// products'), so numbers agree to float rounding, not to the bit.
#include <math.h>
#include <stdint.h>

#include "base/cuda_check.h"
#include "base/reduce.cuh"
#include "sae/sae_ops.h"

extern "C" {
#include "stsae/base/common.h"
#include "stsae/sae/codes.h"
#include "stsae/sae/sae_cuda.h"
}

enum { EVAL_THREADS = 128 };

struct SaeCudaEval {
    int T, N, n, d, m, k;
    SaeCudaWork *w;       // the encoder's work (sae.cu), fp32 GEMMs
    cudaStream_t st;      // w's stream
    uint16_t *h16;        // [n, d] the clip's float16 features
    float *x, *xh;        // [n, d] scaled tokens, decode
    double *row_sq;       // [n] ||x - xhat||^2
    double *col;          // [3 d] sum x, sum x^2, sum xhat per channel
    int32_t *u_idx;       // [n, k] union TopK slots
    float *u_val;         // [n, k]
    int *u_count;         // [n]
    double *h_col, *h_row; // host [3 d], [n]
    int *h_count;         // host [n]
    int32_t *h_idx;       // host [n, k]
    float *h_val;         // host [n, k]
};

// 3. xhat_r = b_dec + sum_s val_s D_idx_s (entries in latent order); sq[r] =
// ||x_r - xhat_r||^2.
__global__ void eval_decode_kernel(const int *start, const int *count, const int32_t *idx, const float *val,
                                   const float *D, const float *b_dec, const float *x, int d, float *xh, double *sq) {
    const int r = blockIdx.x, cnt = count[r];
    const int32_t *ir = idx + start[r];
    const float *vr = val + start[r];
    double t = 0.0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = b_dec[i];
        for (int s = 0; s < cnt; s++) v += vr[s] * D[(size_t)ir[s] * d + i];
        xh[(size_t)r * d + i] = v;
        const double q = (double)x[(size_t)r * d + i] - v;
        t += q * q;
    }
    t = block_sum(t);
    if (threadIdx.x == 0) sq[r] = t;
}

// 4. Per channel q, over the n tokens in order: col[q] = sum x, col[d + q] =
// sum x^2, col[2 d + q] = sum xhat.
__global__ void eval_columns_kernel(const float *x, const float *xh, int n, int d, double *col) {
    const int q = blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= d) return;
    double sx = 0.0, sxx = 0.0, sh = 0.0;
    for (int r = 0; r < n; r++) {
        const double v = x[(size_t)r * d + q];
        sx += v;
        sxx += v * v;
        sh += xh[(size_t)r * d + q];
    }
    col[q] = sx;
    col[d + q] = sxx;
    col[2 * d + q] = sh;
}

// 5. Union TopK of row r = blockIdx.x (see the header), the previous step's
// row being r - back (back = N; planted: 0, the union's values of step t
// alone). Dynamic shared memory: 2 d floats (the two rows' x - b_dec), then
// 2 k candidates' latent, value and kept flag.
__global__ void eval_union_kernel(const int *start, const int *count, const int32_t *idx, const float *val,
                                  const float *x, const float *W_enc, const float *b_enc, const float *b_dec, int N,
                                  int back, int d, int k, int32_t *u_idx, float *u_val, int *u_count) {
    extern __shared__ float sh[];
    float *xa = sh, *xb = sh + d;
    int32_t *cand = (int32_t *)(sh + 2 * d);
    float *a = (float *)(cand + 2 * k);
    int *keep = (int *)(a + 2 * k);
    __shared__ int nc_sh;
    const int r = blockIdx.x;
    if (r < N) { // step 0: as is
        for (int s = threadIdx.x; s < count[r]; s += blockDim.x) {
            u_idx[(size_t)r * k + s] = idx[start[r] + s];
            u_val[(size_t)r * k + s] = val[start[r] + s];
        }
        if (threadIdx.x == 0) u_count[r] = count[r];
        return;
    }
    const int ra = r - back;
    if (threadIdx.x == 0) { // merge the two latent-ordered supports
        const int32_t *ia = idx + start[r - N], *ib = idx + start[r];
        const int na = count[r - N], nb = count[r];
        int i = 0, j = 0, c = 0;
        while (i < na || j < nb) {
            if (j == nb || (i < na && ia[i] < ib[j])) cand[c++] = ia[i++];
            else if (i == na || ib[j] < ia[i]) cand[c++] = ib[j++];
            else cand[c++] = ia[i++], j++;
        }
        nc_sh = c;
    }
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        xa[i] = x[(size_t)ra * d + i] - b_dec[i];
        xb[i] = x[(size_t)r * d + i] - b_dec[i];
    }
    __syncthreads();
    const int nc = nc_sh;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    for (int c = warp; c < nc; c += n_warps) {
        const float *wj = W_enc + (size_t)cand[c] * d;
        float sa = 0.0f, sb = 0.0f;
        for (int i = lane; i < d; i += 32) {
            sa += wj[i] * xa[i];
            sb += wj[i] * xb[i];
        }
        for (int o = 16; o > 0; o >>= 1) {
            sa += __shfl_down_sync(0xffffffffu, sa, o);
            sb += __shfl_down_sync(0xffffffffu, sb, o);
        }
        if (lane == 0) a[c] = fmaxf(sa + b_enc[cand[c]], sb + b_enc[cand[c]]);
    }
    __syncthreads();
    // kept: positive and among the k largest (ties: the lower latent first)
    for (int c = threadIdx.x; c < nc; c += blockDim.x) {
        int rank = 0;
        for (int o = 0; o < nc; o++) rank += a[o] > a[c] || (a[o] == a[c] && cand[o] < cand[c]);
        keep[c] = a[c] > 0.0f && rank < k;
    }
    __syncthreads();
    for (int c = threadIdx.x; c < nc; c += blockDim.x) {
        if (!keep[c]) continue;
        int pos = 0;
        for (int o = 0; o < c; o++) pos += keep[o];
        u_idx[(size_t)r * k + pos] = cand[c];
        u_val[(size_t)r * k + pos] = a[c];
    }
    if (threadIdx.x == 0) {
        int kept = 0;
        for (int o = 0; o < nc; o++) kept += keep[o];
        u_count[r] = kept;
    }
}

extern "C" SaeCudaEval *sae_cuda_eval_create(const SaeConfig *cfg, int T, int N) {
    SaeCudaEval *e = (SaeCudaEval *)xcalloc(1, sizeof(SaeCudaEval));
    const int n = T * N;
    const size_t d = (size_t)cfg->d, k = (size_t)cfg->k;
    e->T = T, e->N = N, e->n = n, e->d = cfg->d, e->m = cfg->m, e->k = cfg->k;
    e->w = sae_cuda_work_create(cfg, n, SAE_GEMM_FP32);
    e->st = sae_cuda_stream(e->w);
    e->h16 = (uint16_t *)dev_alloc(sizeof(uint16_t) * n * d);
    e->x = dev_alloc_floats(n * d);
    e->xh = dev_alloc_floats(n * d);
    e->row_sq = (double *)dev_alloc(sizeof(double) * n);
    e->col = (double *)dev_alloc(sizeof(double) * 3 * d);
    e->u_idx = (int32_t *)dev_alloc(sizeof(int32_t) * n * k);
    e->u_val = dev_alloc_floats(n * k);
    e->u_count = (int *)dev_alloc(sizeof(int) * n);
    e->h_col = (double *)xmalloc(sizeof(double) * 3 * d);
    e->h_row = (double *)xmalloc(sizeof(double) * n);
    e->h_count = (int *)xmalloc(sizeof(int) * n);
    e->h_idx = (int32_t *)xmalloc(sizeof(int32_t) * n * k);
    e->h_val = (float *)xmalloc(sizeof(float) * n * k);
    return e;
}

extern "C" void sae_cuda_eval_free(SaeCudaEval *e) {
    if (!e) return;
    sae_cuda_work_free(e->w);
    dev_free(e->h16), dev_free(e->x), dev_free(e->xh), dev_free(e->row_sq), dev_free(e->col);
    dev_free(e->u_idx), dev_free(e->u_val), dev_free(e->u_count);
    free(e->h_col), free(e->h_row), free(e->h_count), free(e->h_idx), free(e->h_val);
    free(e);
}

// The union TopK slots [n, k] into the CSR codes out.
static void union_to_host(SaeCudaEval *e, SparseCodes *out) {
    const int n = e->n, k = e->k;
    cudaCheck(cudaMemcpyAsync(e->h_count, e->u_count, sizeof(int) * n, cudaMemcpyDeviceToHost, e->st));
    cudaCheck(cudaMemcpyAsync(e->h_idx, e->u_idx, sizeof(int32_t) * n * k, cudaMemcpyDeviceToHost, e->st));
    cudaCheck(cudaMemcpyAsync(e->h_val, e->u_val, sizeof(float) * n * k, cudaMemcpyDeviceToHost, e->st));
    cudaCheck(cudaStreamSynchronize(e->st));
    codes_from_slots(out, n, NULL, k, e->h_count, e->h_idx, e->h_val);
}

extern "C" void sae_cuda_eval_clip(SaeCudaEval *e, const SaeConfig *cfg, const SaeTensors *p, const uint16_t *h,
                                   float scale, float theta, SaeCudaClip *out) {
    const int n = e->n, d = e->d, k = e->k;
    if (cfg->d != d || cfg->m != e->m || cfg->k != k) die("CUDA evaluation: configuration differs from its workspace");
    if (out->zu && cfg->select != SEL_TOPK) die("CUDA evaluation: union TopK needs TopK codes (at most k per token)");
    // 1. the tokens
    dev_upload_bytes(e->h16, h, sizeof(uint16_t) * (size_t)n * d);
    dev_tokens_f16(e->h16, NULL, n, d, scale, e->x);
    // 2. the codes
    sae_cuda_encode(cfg, p, e->x, n, theta, e->w);
    const DevCodesView z = sae_cuda_codes_view(e->w);
    // 3. the decode and its squared errors
    const int threads = EVAL_THREADS;
    eval_decode_kernel<<<n, threads, 0, e->st>>>(z.start, z.count, z.idx, z.val, p->D, p->b_dec, e->x, d, e->xh,
                                                 e->row_sq);
    cudaCheckLaunch("eval_decode_kernel");
    // 4. per-channel sums
    eval_columns_kernel<<<(d + threads - 1) / threads, threads, 0, e->st>>>(e->x, e->xh, n, d, e->col);
    cudaCheckLaunch("eval_columns_kernel");
    // 5. union TopK
    if (out->zu) {
        const size_t shmem = sizeof(float) * 2 * d + (size_t)2 * k * (sizeof(int32_t) + sizeof(float) + sizeof(int));
        eval_union_kernel<<<n, threads, shmem, e->st>>>(z.start, z.count, z.idx, z.val, e->x, p->W_enc, p->b_enc,
                                                       p->b_dec, e->N, PLANTED("eval_union_one_step") ? 0 : e->N,
                                                       d, k, e->u_idx, e->u_val, e->u_count);
        cudaCheckLaunch("eval_union_kernel");
    }
    cudaCheck(cudaMemcpyAsync(e->h_col, e->col, sizeof(double) * 3 * d, cudaMemcpyDeviceToHost, e->st));
    cudaCheck(cudaMemcpyAsync(e->h_row, e->row_sq, sizeof(double) * n, cudaMemcpyDeviceToHost, e->st));
    cudaCheck(cudaStreamSynchronize(e->st));
    sae_cuda_last_codes(e->w, out->z);
    if (out->zu) union_to_host(e, out->zu);
    for (int q = 0; q < d; q++) out->xh_mean[q] = (float)(e->h_col[2 * d + q] / n);
    if (out->x_mean) {
        out->sse = 0.0;
        for (int r = 0; r < n; r++) out->sse += e->h_row[r];
        for (int q = 0; q < d; q++) {
            out->x_mean[q] = (float)(e->h_col[q] / n);
            out->sx[q] = e->h_col[q];
            out->sxx[q] = e->h_col[d + q];
        }
    }
}
