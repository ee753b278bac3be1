// sae.cu — the SAE training step on one GPU (sae_cuda.h), the twin of
// sae_step (src/sae/sae.c) for TopK without AuxK (`standard`, `frozen`).
//
// In:  device parameters p (sae_carve layout), device tokens x [n, d], host
//      dead mask (must leave AuxK off), host SaeReduce hooks.
// Out: host SaeLosses (rec, total, l0, n_tok_global) and the device
//      gradient buffer grad.
//
// The step, in the order of the CPU one:
//   1. batch statistics: column sums of x (double) -> global mean -> per-row
//      squared distances -> the FVU denominator (global, through red);
//   2. per chunk of <= 4096 tokens: xc = x - b_dec, pre = xc W_enc^T by
//      cuBLAS (fp32, TF32 or bf16 in / fp32 accumulate), TopK per row with
//      b_enc added (select.cu) into fixed-width slots [n, k];
//   3. one block per token: xhat = b_dec + sum z_j D_j, ||x - xhat||^2,
//      dL/dxhat = 2 (xhat - x) / den into g, and dL/dz_j = D_j . g per entry;
//   4. a stable radix sort of the entries by latent (CUB) gives the
//      latent-major index; one block per latent sums, in token order,
//      dW_enc_j = sum dpre (x - b_dec), dD_j = sum z g, db_enc_j = sum dpre;
//   5. db_dec = sum_r g_r - W_enc^T db_enc, one thread per column.
// No floating-point atomics anywhere: run-to-run identical on one GPU.
#include <cub/device/device_radix_sort.cuh>
#include <cuda_bf16.h>
#include <math.h>
#include <string.h>

#include "base/cuda_check.h"
#include "base/reduce.cuh"
#include "sae/sae_ops.h"

extern "C" {
#include "stsae/sae/sae_cuda.h"
}

enum { CHUNK_TOKENS = 4096, ROW_THREADS = 128 };

struct SaeCudaWork {
    int max_tok, chunk, d, m, k;
    SaeGemmMath math;
    cublasHandle_t blas;
    cudaStream_t st;
    float *xc;                 // [chunk, d] x - b_dec (fp32 and TF32)
    __nv_bfloat16 *xb, *wb;    // [chunk, d], [m, d] bf16 copies (bf16 only)
    float *pre;                // [chunk, m]
    int32_t *idx;              // [max_tok, k] kept latents, sorted per token
    float *val, *zgrad;        // [max_tok, k] z and dL/dz (= dL/dpre for TopK)
    int *count;                // [max_tok] kept per token
    float *g;                  // [max_tok, d] dL/dxhat
    float *mean;               // [d]
    double *row_sq;            // [max_tok]
    double *dsum;              // [d + 1] column sums, then the scalar sums
    int32_t *key_in, *key_out; // [max_tok * k] latent of each slot (m: empty slot)
    int32_t *ent_in, *ent_out; // [max_tok * k] slot positions, latent-major after the sort
    int *col_ptr;              // [m + 1]
    void *sort_tmp;
    size_t sort_bytes;
    double *h_acc;             // host [d + 4]
    int *h_count;              // host [max_tok]
};

static void *dev_alloc_bytes(size_t bytes) {
    void *p = NULL;
    cudaCheck(cudaMalloc(&p, bytes > 0 ? bytes : 1));
    cudaCheck(cudaMemset(p, 0, bytes > 0 ? bytes : 1));
    return p;
}

extern "C" float *dev_alloc_floats(size_t n) { return (float *)dev_alloc_bytes(sizeof(float) * n); }
extern "C" void dev_free(void *p) {
    if (p) cudaCheck(cudaFree(p));
}
extern "C" void dev_upload(float *dev, const float *host, size_t n) {
    cudaCheck(cudaMemcpy(dev, host, sizeof(float) * n, cudaMemcpyHostToDevice));
}
extern "C" void dev_download(float *host, const float *dev, size_t n) {
    cudaCheck(cudaMemcpy(host, dev, sizeof(float) * n, cudaMemcpyDeviceToHost));
}

extern "C" void sae_device_state_create(SaeDeviceState *s, const SaeConfig *cfg) {
    s->n = sae_num_params(cfg);
    s->params = dev_alloc_floats(s->n);
    s->grads = dev_alloc_floats(s->n);
    s->m1 = dev_alloc_floats(s->n);
    s->m2 = dev_alloc_floats(s->n);
}

extern "C" void sae_device_state_free(SaeDeviceState *s) {
    dev_free(s->params);
    dev_free(s->grads);
    dev_free(s->m1);
    dev_free(s->m2);
    memset(s, 0, sizeof(*s));
}

// Bits the sort needs for keys 0..m (m marks an empty slot).
static int key_bits(int m) {
    int b = 1;
    while ((1ll << b) <= m) b++;
    return b;
}

extern "C" SaeCudaWork *sae_cuda_work_create(const SaeConfig *cfg, int max_tok, SaeGemmMath math) {
    if (cfg->select != SEL_TOPK) die("CUDA step: only TopK selection is implemented (variant %s)", sae_variant_name(cfg));
    if (cfg->k < 1 || cfg->k > TOPK_MAX_K) die("CUDA step: k = %d outside [1, %d]", cfg->k, TOPK_MAX_K);
    const size_t d = (size_t)cfg->d, m = (size_t)cfg->m, k = (size_t)cfg->k, n = (size_t)(max_tok > 0 ? max_tok : 1);
    SaeCudaWork *w = (SaeCudaWork *)xcalloc(1, sizeof(SaeCudaWork));
    w->max_tok = (int)n;
    w->chunk = n < CHUNK_TOKENS ? (int)n : CHUNK_TOKENS;
    w->d = cfg->d;
    w->m = cfg->m;
    w->k = cfg->k;
    w->math = math;
    cudaCheck(cudaStreamCreate(&w->st));
    cublasCheck(cublasCreate(&w->blas));
    cublasCheck(cublasSetStream(w->blas, w->st));
    cublasCheck(cublasSetMathMode(w->blas, math == SAE_GEMM_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    if (math == SAE_GEMM_BF16) {
        w->xb = (__nv_bfloat16 *)dev_alloc_bytes(sizeof(__nv_bfloat16) * (size_t)w->chunk * d);
        w->wb = (__nv_bfloat16 *)dev_alloc_bytes(sizeof(__nv_bfloat16) * m * d);
    } else {
        w->xc = dev_alloc_floats((size_t)w->chunk * d);
    }
    w->pre = dev_alloc_floats((size_t)w->chunk * m);
    w->idx = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * n * k);
    w->val = dev_alloc_floats(n * k);
    w->zgrad = dev_alloc_floats(n * k);
    w->count = (int *)dev_alloc_bytes(sizeof(int) * n);
    w->g = dev_alloc_floats(n * d);
    w->mean = dev_alloc_floats(d);
    w->row_sq = (double *)dev_alloc_bytes(sizeof(double) * n);
    w->dsum = (double *)dev_alloc_bytes(sizeof(double) * (d + 1));
    w->key_in = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * n * k);
    w->key_out = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * n * k);
    w->ent_in = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * n * k);
    w->ent_out = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * n * k);
    w->col_ptr = (int *)dev_alloc_bytes(sizeof(int) * (m + 1));
    cudaCheck(cub::DeviceRadixSort::SortPairs(NULL, w->sort_bytes, w->key_in, w->key_out, w->ent_in, w->ent_out,
                                              (int)(n * k), 0, key_bits(cfg->m), w->st));
    w->sort_tmp = dev_alloc_bytes(w->sort_bytes);
    w->h_acc = (double *)xmalloc(sizeof(double) * (d + 4));
    w->h_count = (int *)xmalloc(sizeof(int) * n);
    return w;
}

extern "C" void sae_cuda_work_free(SaeCudaWork *w) {
    if (!w) return;
    dev_free(w->xc);
    dev_free(w->xb);
    dev_free(w->wb);
    dev_free(w->pre);
    dev_free(w->idx);
    dev_free(w->val);
    dev_free(w->zgrad);
    dev_free(w->count);
    dev_free(w->g);
    dev_free(w->mean);
    dev_free(w->row_sq);
    dev_free(w->dsum);
    dev_free(w->key_in);
    dev_free(w->key_out);
    dev_free(w->ent_in);
    dev_free(w->ent_out);
    dev_free(w->col_ptr);
    dev_free(w->sort_tmp);
    cublasCheck(cublasDestroy(w->blas));
    cudaCheck(cudaStreamDestroy(w->st));
    free(w->h_acc);
    free(w->h_count);
    free(w);
}

// ---- kernels -------------------------------------------------------------------

// out[i] = sum_r a[r, i] in double, rows in order; one thread per column.
__global__ void column_sums_kernel(const float *a, int n, int d, double *out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= d) return;
    double s = 0.0;
    for (int r = 0; r < n; r++) s += a[(size_t)r * d + i];
    out[i] = s;
}

// sq[r] = ||a_r - b||^2 (double); one block per row.
__global__ void row_sq_dist_kernel(const float *a, const float *b, int d, double *sq) {
    const float *ar = a + (size_t)blockIdx.x * d;
    double t = 0.0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        double q = (double)ar[i] - b[i];
        t += q * q;
    }
    t = block_sum(t);
    if (threadIdx.x == 0) sq[blockIdx.x] = t;
}

// *out = sum of v[0..n) (one block; a fixed order).
__global__ void sum_f64_kernel(const double *v, int n, double *out) {
    double t = 0.0;
    for (int r = threadIdx.x; r < n; r += blockDim.x) t += v[r];
    t = block_sum(t);
    if (threadIdx.x == 0) *out = t;
}

// xc [n, d] = x - b_dec, as float or as bf16.
__global__ void sub_bias_kernel(const float *x, const float *b_dec, size_t n_el, int d, float *xc) {
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < n_el; q += (size_t)gridDim.x * blockDim.x)
        xc[q] = x[q] - b_dec[q % d];
}
__global__ void sub_bias_bf16_kernel(const float *x, const float *b_dec, size_t n_el, int d, __nv_bfloat16 *xb) {
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < n_el; q += (size_t)gridDim.x * blockDim.x)
        xb[q] = __float2bfloat16(x[q] - b_dec[q % d]);
}
__global__ void to_bf16_kernel(const float *a, size_t n_el, __nv_bfloat16 *b) {
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < n_el; q += (size_t)gridDim.x * blockDim.x)
        b[q] = __float2bfloat16(a[q]);
}

// One block per token r: xhat = b_dec + sum_s val_s D[idx_s] (entries in
// latent order), sq[r] = ||x_r - xhat||^2, g_r = gs (xhat - x_r), then one warp
// per entry: zgrad_s = D[idx_s] . g_r. Dynamic shared memory: d floats (g_r).
__global__ void decode_loss_kernel(const int32_t *idx, const float *val, const int *count, int k, const float *D,
                                   const float *b_dec, const float *x, int d, float gs, float *g, float *zgrad,
                                   double *sq) {
    extern __shared__ float sg[];
    const int r = blockIdx.x, cnt = count[r];
    const int32_t *ir = idx + (size_t)r * k;
    const float *vr = val + (size_t)r * k;
    const float *xr = x + (size_t)r * d;
    double t = 0.0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float xh = 0.0f;
        for (int s = 0; s < cnt; s++) xh += vr[s] * D[(size_t)ir[s] * d + i];
        xh += b_dec[i];
        double q = (double)xr[i] - xh;
        t += q * q;
        float gi = gs * (xh - xr[i]);
        g[(size_t)r * d + i] = gi;
        sg[i] = gi;
    }
    t = block_sum(t); // also orders the writes of sg before the reads below
    if (threadIdx.x == 0) sq[r] = t;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    for (int s = warp; s < cnt; s += n_warps) {
        const float *Dj = D + (size_t)ir[s] * d;
        float a = 0.0f;
        for (int i = lane; i < d; i += 32) a += Dj[i] * sg[i];
        for (int o = 16; o > 0; o >>= 1) a += __shfl_down_sync(0xffffffffu, a, o);
        if (lane == 0) zgrad[(size_t)r * k + s] = a;
    }
}

// Sort input: slot e = r * k + s holds latent idx[e] when s < count[r], else
// the empty key m; ent_in[e] = e.
__global__ void slot_keys_kernel(const int32_t *idx, const int *count, int n, int k, int m, int32_t *key,
                                 int32_t *ent) {
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n * k) return;
    key[e] = e % k < count[e / k] ? idx[e] : m;
    ent[e] = e;
}

// col_ptr[j] = first position of latent j in the sorted keys (j = 0..m).
__global__ void col_ptr_kernel(const int32_t *key, int n_ent, int m, int *col_ptr) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j > m) return;
    int lo = 0, hi = n_ent;
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (key[mid] < j) lo = mid + 1;
        else hi = mid;
    }
    col_ptr[j] = lo;
}

// One block per latent j, its entries in token order: dW_enc_j = sum dpre x_r
// - (sum dpre) b_dec, dD_j = sum z g_r (0 when frozen), db_enc_j = sum dpre.
__global__ void latent_grads_kernel(const int *col_ptr, const int32_t *ent, const float *val, const float *zgrad,
                                    int k, const float *x, const float *g, const float *b_dec, int d, int frozen,
                                    float *gW, float *gD, float *gb) {
    const int j = blockIdx.x, t0 = col_ptr[j], t1 = col_ptr[j + 1];
    double sb = 0.0; // every thread sums the same values in the same order
    for (int t = t0; t < t1; t++) sb += zgrad[ent[t]];
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float aw = 0.0f, ad = 0.0f;
        for (int t = t0; t < t1; t++) {
            const int e = ent[t];
            const size_t r = (size_t)(e / k);
            aw += zgrad[e] * x[r * d + i];
            ad += val[e] * g[r * d + i];
        }
        gW[(size_t)j * d + i] = aw + (float)-sb * b_dec[i];
        gD[(size_t)j * d + i] = frozen ? 0.0f : ad;
    }
    if (threadIdx.x == 0) gb[j] = (float)sb;
}

// db_dec[i] = sum_r g[r, i] - sum_j W_enc[j, i] db_enc[j]; one thread per column.
__global__ void bdec_grad_kernel(const float *g, int n, const float *W_enc, const float *gb, int m, int d,
                                 int frozen, float *gbd) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= d) return;
    double s = 0.0;
    for (int r = 0; r < n; r++) s += g[(size_t)r * d + i];
    float v = (float)s;
    double wb = 0.0;
    for (int j = 0; j < m; j++) wb += (double)W_enc[(size_t)j * d + i] * gb[j];
    gbd[i] = frozen ? 0.0f : (float)((double)v - wb);
}

// ---- the step ----------------------------------------------------------------------

static int grid_for(size_t n, int threads) {
    size_t b = (n + threads - 1) / threads;
    return b > 65535 ? 65535 : (int)(b > 0 ? b : 1);
}

// Threads per block for a loop over d: a multiple of 32, at most ROW_THREADS.
static int row_threads(int d) {
    int t = (d + 31) / 32 * 32;
    return t < ROW_THREADS ? (t > 0 ? t : 32) : ROW_THREADS;
}

// Sum of the n doubles at dev (device), returned to the host (synchronizes).
static double device_sum(SaeCudaWork *w, const double *dev, int n) {
    double s = 0.0;
    sum_f64_kernel<<<1, 256, 0, w->st>>>(dev, n, w->dsum);
    cudaCheckLaunch("sum_f64_kernel");
    cudaCheck(cudaMemcpyAsync(&s, w->dsum, sizeof(double), cudaMemcpyDeviceToHost, w->st));
    cudaCheck(cudaStreamSynchronize(w->st));
    return s;
}

// pre [nc, m] = (x[r0 ..] - b_dec) W_enc^T for the chunk of nc tokens.
static void encode_chunk(const SaeConfig *cfg, const SaeTensors *p, const float *x, int r0, int nc, SaeCudaWork *w) {
    const int d = cfg->d, m = cfg->m;
    const size_t n_el = (size_t)nc * d;
    const float one = 1.0f, zero = 0.0f;
    const float *xr = x + (size_t)r0 * d;
    if (w->math == SAE_GEMM_BF16) {
        sub_bias_bf16_kernel<<<grid_for(n_el, 256), 256, 0, w->st>>>(xr, p->b_dec, n_el, d, w->xb);
        cudaCheckLaunch("sub_bias_bf16_kernel");
        // row-major pre [nc, m] is column-major [m, nc] = W_enc [m, d] (col-major [d, m], transposed) x xc^T
        cublasCheck(cublasGemmEx(w->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, nc, d, &one, w->wb, CUDA_R_16BF, d, w->xb,
                                 CUDA_R_16BF, d, &zero, w->pre, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        sub_bias_kernel<<<grid_for(n_el, 256), 256, 0, w->st>>>(xr, p->b_dec, n_el, d, w->xc);
        cudaCheckLaunch("sub_bias_kernel");
        cublasCheck(cublasSgemm(w->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, nc, d, &one, p->W_enc, d, w->xc, d, &zero,
                                w->pre, m));
    }
}

extern "C" void sae_step_cuda(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *grad, const float *x,
                              const SaeBatch *b, const uint8_t *dead, const SaeReduce *red, SaeCudaWork *w,
                              SaeLosses *out) {
    const int d = cfg->d, m = cfg->m, k = cfg->k, n = b->n_tok;
    if (n > w->max_tok) die("batch of %d tokens exceeds the CUDA workspace (%d)", n, w->max_tok);
    if (d != w->d || m != w->m || k != w->k) die("CUDA step: configuration differs from its workspace");
    if (cfg->select != SEL_TOPK || cfg->contrast != CTR_NONE || cfg->m_high > 0)
        die("CUDA step: variant %s not implemented (TopK without InfoNCE or Matryoshka only)", sae_variant_name(cfg));
    memset(out, 0, sizeof(*out));
    int n_dead = 0;
    if (dead && cfg->k_aux > 0)
        for (int j = 0; j < m; j++) n_dead += dead[j] != 0;
    if (n_dead > 0) die("CUDA step: AuxK (%d dead latents, k_aux %d) not implemented", n_dead, cfg->k_aux);
    double *acc = w->h_acc;
    const int rt = row_threads(d);

    // 1. batch statistics
    column_sums_kernel<<<grid_for((size_t)d, 128), 128, 0, w->st>>>(x, n, d, w->dsum);
    cudaCheckLaunch("column_sums_kernel");
    cudaCheck(cudaMemcpyAsync(acc, w->dsum, sizeof(double) * d, cudaMemcpyDeviceToHost, w->st));
    cudaCheck(cudaStreamSynchronize(w->st));
    acc[d] = n;
    sae_sum_f64(red, acc, d + 1);
    const int64_t n_glob = (int64_t)acc[d];
    out->n_tok_global = n_glob;
    float *mean = (float *)xmalloc(sizeof(float) * (size_t)d);
    for (int i = 0; i < d; i++) mean[i] = (float)(acc[i] / acc[d]);
    cudaCheck(cudaMemcpyAsync(w->mean, mean, sizeof(float) * d, cudaMemcpyHostToDevice, w->st));
    if (n > 0) {
        row_sq_dist_kernel<<<n, rt, 0, w->st>>>(x, w->mean, d, w->row_sq);
        cudaCheckLaunch("row_sq_dist_kernel");
    }
    double den[1] = {n > 0 ? device_sum(w, w->row_sq, n) : 0.0}; // synchronizes: mean may be freed
    free(mean);
    sae_sum_f64(red, den, 1);
    const double den_rec = den[0] > 0.0 ? den[0] : 1.0;

    // 2. encode and select, chunk by chunk
    if (w->math == SAE_GEMM_BF16) {
        const size_t n_el = (size_t)m * d;
        to_bf16_kernel<<<grid_for(n_el, 256), 256, 0, w->st>>>(p->W_enc, n_el, w->wb);
        cudaCheckLaunch("to_bf16_kernel");
    }
    for (int r0 = 0; r0 < n; r0 += w->chunk) {
        const int nc = n - r0 < w->chunk ? n - r0 : w->chunk;
        encode_chunk(cfg, p, x, r0, nc, w);
        launch_topk_rows(w->pre, p->b_enc, nc, m, k, w->idx + (size_t)r0 * k, w->val + (size_t)r0 * k,
                         w->count + r0, w->st);
    }
    int64_t nnz = 0;
    if (n > 0) {
        cudaCheck(cudaMemcpyAsync(w->h_count, w->count, sizeof(int) * n, cudaMemcpyDeviceToHost, w->st));
        cudaCheck(cudaStreamSynchronize(w->st));
        for (int r = 0; r < n; r++) nnz += w->h_count[r];
    }
    double l0[1] = {(double)nnz};
    sae_sum_f64(red, l0, 1);
    out->l0 = l0[0] / (double)(n_glob ? n_glob : 1);

    // 3. decode, loss, dL/dxhat and dL/dz per token
    if (n > 0) {
        decode_loss_kernel<<<n, rt, sizeof(float) * d, w->st>>>(w->idx, w->val, w->count, k, p->D, p->b_dec, x, d,
                                                                (float)(2.0 / den_rec), w->g, w->zgrad, w->row_sq);
        cudaCheckLaunch("decode_loss_kernel");
    }
    acc[0] = n > 0 ? device_sum(w, w->row_sq, n) : 0.0;
    sae_sum_f64(red, acc, 1);
    out->rec = acc[0] / den_rec;

    // 4. latent-major index (stable: token order within a latent) and the
    //    per-latent gradients; a latent no token kept gets zeros
    const int n_ent = n * k;
    if (n_ent > 0) {
        slot_keys_kernel<<<grid_for((size_t)n_ent, 256), 256, 0, w->st>>>(w->idx, w->count, n, k, m, w->key_in,
                                                                           w->ent_in);
        cudaCheckLaunch("slot_keys_kernel");
        size_t bytes = w->sort_bytes;
        cudaCheck(cub::DeviceRadixSort::SortPairs(w->sort_tmp, bytes, w->key_in, w->key_out, w->ent_in, w->ent_out,
                                                  n_ent, 0, key_bits(m), w->st));
    }
    col_ptr_kernel<<<grid_for((size_t)m + 1, 256), 256, 0, w->st>>>(w->key_out, n_ent, m, w->col_ptr);
    cudaCheckLaunch("col_ptr_kernel");
    latent_grads_kernel<<<m, rt, 0, w->st>>>(w->col_ptr, w->ent_out, w->val, w->zgrad, k, x, w->g, p->b_dec, d,
                                             cfg->frozen_decoder, grad->W_enc, grad->D, grad->b_enc);
    cudaCheckLaunch("latent_grads_kernel");

    // 5. db_dec
    bdec_grad_kernel<<<grid_for((size_t)d, 128), 128, 0, w->st>>>(w->g, n, p->W_enc, grad->b_enc, m, d,
                                                                 cfg->frozen_decoder, grad->b_dec);
    cudaCheckLaunch("bdec_grad_kernel");
    cudaCheck(cudaStreamSynchronize(w->st));

    out->total = out->rec;
}
