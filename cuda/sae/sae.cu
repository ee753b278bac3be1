// sae.cu — the SAE training step on one GPU (sae_cuda.h), the twin of
// sae_step (src/sae/sae.c) for every variant: TopK (`standard`, `frozen`,
// `temporal`, `separate`, `raster`), BatchTopK with Matryoshka's L_high
// (the +M variants), sparsemax and entmax-1.5 with T_s, each with AuxK
// where its row has it and its InfoNCE terms (infonce.cu); the dead-latent
// clocks; and the encoder alone for evaluation (sae_cuda_encode: step 2 below
// chunk by chunk, BatchTopK keeping a > theta, its fixed threshold).
//
// In:  device parameters p (sae_carve layout), device tokens x [n, d] (whole
//      clips or pairs for the InfoNCE terms, as sae_step's), a device dead
//      mask (AuxK), host SaeReduce hooks.
// Out: host SaeLosses (rec, aux, high, temp, spat, rast, total, l0,
//      min_kept, n_dead, n_tok_global) and the device gradient buffer grad.
//
// The step, in the order of the CPU one:
//   1. batch statistics: column sums of x (double) -> global mean -> per-row
//      squared distances -> the FVU denominator (global, through red);
//   2. per chunk of <= 4096 tokens: xc = x - b_dec, pre = xc W_enc^T by
//      cuBLAS (fp32, TF32 or bf16 in / fp32 accumulate), then the selection
//      (select.cu): TopK per row with b_enc added into fixed-width slots
//      [n, k]; sparsemax / entmax threshold and support size per row, then
//      the support into CSR rows; AuxK's TopK over the dead latents into
//      slots [n, k_aux]. BatchTopK holds the whole batch's pre [n, m]: the
//      global (k * B)-th largest by the CPU's radix select (histograms on the
//      device, summed over ranks through red), then keep a >= it in CSR rows;
//   3. one block per token: xhat = b_dec + sum z_j D_j (and xhat_h over
//      j < m_high), the squared errors, dL/dxhat (+ dL/dxhat_h), AuxK's
//      residual e = x - xhat, and dL/dz_j = D_j . dL/dxhat(_h) per entry;
//   4. AuxK: e's FVU denominator (global), then one block per token:
//      ehat = sum zaux_j D_j, ||e - ehat||^2, dL/dehat, dL/dzaux per entry;
//   5. InfoNCE (infonce.cu): the temporal / spatial / raster terms from the
//      overlapping code pairs, added to dL/dz (the codes of the other ranks
//      exchanged through red's host hooks);
//   6. sparsemax / entmax: their backward onto dL/dpre (TopK: the same);
//   7. a stable radix sort of the entries by latent (CUB) gives the
//      latent-major index of the codes (and of AuxK's); one block per latent
//      sums, in token order (the codes', then AuxK's), dW_enc_j =
//      sum dpre (x - b_dec), dD_j = sum z dL/dxhat, db_enc_j = sum dpre;
//   8. db_dec = sum_r dL/dxhat_r - W_enc^T db_enc, one thread per column.
// AuxK runs sparse (gathers of the k_aux dead rows per token), where the CPU
// switches to dense GEMMs over the dead columns when few are dead: the same
// sums in another order. No floating-point atomics anywhere: run-to-run
// identical on one GPU.
#include <cub/device/device_radix_sort.cuh>
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/cuda_check.h"
#include "base/reduce.cuh"
#include "sae/sae_ops.h"

extern "C" {
#include "stsae/sae/sae_cuda.h"
#include "stsae/sae/variants.h"
}

enum { CHUNK_TOKENS = 4096, ROW_THREADS = 128 };

// Entries of a batch's codes on the device: token r's are the slots
// [start[r], start[r] + count[r]) of idx / val / grad, sorted by latent
// (TopK and AuxK: fixed-width slots r * width, some unused; the others: CSR
// rows). The sort buffers give the latent-major index.
struct DevCodes {
    int cap;                     // slots allocated
    int n_slots;                 // slots in use: n * width, or the entries of CSR rows
    int width;                   // fixed width (0: CSR rows)
    int *start, *count;          // [max_tok]
    int32_t *idx;                // [cap] latent
    float *val, *grad;           // [cap] z, then dL/dz (dL/dpre after the selection's backward)
    int32_t *row;                // [cap] token of each slot
    int32_t *key_in, *key_out;   // [cap] latent of each slot (m: an unused slot)
    int32_t *ent_in, *ent_out;   // [cap] slot positions, latent-major after the sort
    int *col_ptr;                // [m + 1]
    void *sort_tmp;
    size_t sort_bytes;
};

struct SaeCudaWork {
    int max_tok, chunk, d, m, k, k_aux, m_high;
    SaeSelect select;
    SaeGemmMath math;
    cublasHandle_t blas;
    cudaStream_t st;
    float *xc;                 // [chunk, d] x - b_dec (fp32 and TF32)
    __nv_bfloat16 *xb, *wb;    // [chunk, d], [m, d] bf16 copies (bf16 only)
    float *pre;                // [chunk, m], BatchTopK [max_tok, m]
    DevCodes z, aux;           // the codes, AuxK's codes
    int last_n;                // tokens of the last step
    float *tau;                // [max_tok] sparsemax / entmax thresholds
    float *g, *gsum, *gaux;    // [max_tok, d]: dL/dxhat, + dL/dxhat_h (+M), e then dL/dehat (AuxK)
    float *mean;               // [d]
    double *row_sq, *row_sqh;  // [max_tok]
    double *dsum;              // [d + 1] column sums, then the scalar sums
    unsigned *hist;            // [SEL_HIST_BINS] BatchTopK
    int64_t *fired;            // [m] kept counts (dead-latent clocks)
    double *h_acc;             // host [d + 4]
    int *h_start, *h_count;    // host [max_tok + 1]
    unsigned *h_hist32;        // host [SEL_HIST_BINS]
    int64_t *h_hist, *h_fired; // host [SEL_HIST_BINS], [m]
    InfoNceCudaWork *nce;      // the InfoNCE terms (infonce.cu); NULL without
};

static void *dev_alloc_bytes(size_t bytes) {
    void *p = NULL;
    cudaCheck(cudaMalloc(&p, bytes > 0 ? bytes : 1));
    cudaCheck(cudaMemset(p, 0, bytes > 0 ? bytes : 1));
    return p;
}

extern "C" void *dev_alloc(size_t bytes) { return dev_alloc_bytes(bytes); }
extern "C" void *dev_host_alloc(size_t bytes) {
    void *p = NULL;
    cudaCheck(cudaMallocHost(&p, bytes > 0 ? bytes : 1));
    return p;
}
extern "C" void dev_host_free(void *p) {
    if (p) cudaCheck(cudaFreeHost(p));
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
extern "C" void dev_upload_bytes(void *dev, const void *host, size_t bytes) {
    cudaCheck(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));
}
extern "C" void dev_download_bytes(void *host, const void *dev, size_t bytes) {
    cudaCheck(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost));
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

// Slots for at least `need` entries; the first `keep` entries of idx and val
// survive (a CSR batch grows chunk by chunk).
static void codes_grow(DevCodes *c, int64_t need, int keep, int m, cudaStream_t st) {
    if (need <= c->cap) return;
    if (need > INT32_MAX / 2) die("CUDA step: %lld code entries exceed the device index", (long long)need);
    const int cap = (int)(need > 2ll * c->cap ? need : 2ll * c->cap);
    int32_t *idx = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * cap);
    float *val = (float *)dev_alloc_bytes(sizeof(float) * cap);
    if (keep > 0) {
        cudaCheck(cudaMemcpyAsync(idx, c->idx, sizeof(int32_t) * keep, cudaMemcpyDeviceToDevice, st));
        cudaCheck(cudaMemcpyAsync(val, c->val, sizeof(float) * keep, cudaMemcpyDeviceToDevice, st));
    }
    cudaCheck(cudaStreamSynchronize(st));
    dev_free(c->idx);
    dev_free(c->val);
    dev_free(c->grad);
    dev_free(c->row);
    dev_free(c->key_in);
    dev_free(c->key_out);
    dev_free(c->ent_in);
    dev_free(c->ent_out);
    dev_free(c->sort_tmp);
    c->idx = idx;
    c->val = val;
    c->grad = (float *)dev_alloc_bytes(sizeof(float) * cap);
    c->row = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * cap);
    c->key_in = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * cap);
    c->key_out = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * cap);
    c->ent_in = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * cap);
    c->ent_out = (int32_t *)dev_alloc_bytes(sizeof(int32_t) * cap);
    c->sort_bytes = 0;
    cudaCheck(cub::DeviceRadixSort::SortPairs(NULL, c->sort_bytes, c->key_in, c->key_out, c->ent_in, c->ent_out, cap,
                                              0, key_bits(m), st));
    c->sort_tmp = dev_alloc_bytes(c->sort_bytes);
    c->cap = cap;
}

static void codes_create(DevCodes *c, int max_tok, int m, int64_t cap, cudaStream_t st) {
    memset(c, 0, sizeof(*c));
    c->start = (int *)dev_alloc_bytes(sizeof(int) * (size_t)max_tok);
    c->count = (int *)dev_alloc_bytes(sizeof(int) * (size_t)max_tok);
    c->col_ptr = (int *)dev_alloc_bytes(sizeof(int) * ((size_t)m + 1));
    codes_grow(c, cap > 0 ? cap : 1, 0, m, st);
}

static void codes_destroy(DevCodes *c) {
    dev_free(c->start);
    dev_free(c->count);
    dev_free(c->col_ptr);
    dev_free(c->idx);
    dev_free(c->val);
    dev_free(c->grad);
    dev_free(c->row);
    dev_free(c->key_in);
    dev_free(c->key_out);
    dev_free(c->ent_in);
    dev_free(c->ent_out);
    dev_free(c->sort_tmp);
    memset(c, 0, sizeof(*c));
}

extern "C" SaeCudaWork *sae_cuda_work_create(const SaeConfig *cfg, int max_tok, SaeGemmMath math) {
    const SaeVariant *v = sae_variant_of(cfg);
    if (!v || !v->cuda) die("CUDA step: variant %s is not implemented", v ? v->name : "(unknown)");
    if (cfg->k < 1 || cfg->k > TOPK_MAX_K) die("CUDA step: k = %d outside [1, %d]", cfg->k, TOPK_MAX_K);
    if (cfg->k_aux > TOPK_MAX_K) die("CUDA step: k_aux = %d above %d", cfg->k_aux, TOPK_MAX_K);
    const size_t d = (size_t)cfg->d, m = (size_t)cfg->m, k = (size_t)cfg->k, n = (size_t)(max_tok > 0 ? max_tok : 1);
    SaeCudaWork *w = (SaeCudaWork *)xcalloc(1, sizeof(SaeCudaWork));
    w->max_tok = (int)n;
    w->chunk = n < CHUNK_TOKENS ? (int)n : CHUNK_TOKENS;
    w->d = cfg->d;
    w->m = cfg->m;
    w->k = cfg->k;
    w->k_aux = cfg->k_aux > 0 ? cfg->k_aux : 0;
    w->m_high = cfg->m_high;
    w->select = cfg->select;
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
    w->pre = dev_alloc_floats((cfg->select == SEL_BATCHTOPK ? n : (size_t)w->chunk) * m);
    // TopK: k slots per token; the others start at 2 k per token and grow
    codes_create(&w->z, (int)n, cfg->m, (int64_t)n * (cfg->select == SEL_TOPK ? k : 2 * k), w->st);
    codes_create(&w->aux, (int)n, cfg->m, (int64_t)n * (w->k_aux > 0 ? w->k_aux : 1), w->st);
    w->tau = dev_alloc_floats(n);
    w->g = dev_alloc_floats(n * d);
    if (cfg->m_high > 0) w->gsum = dev_alloc_floats(n * d);
    if (w->k_aux > 0) w->gaux = dev_alloc_floats(n * d);
    w->mean = dev_alloc_floats(d);
    w->row_sq = (double *)dev_alloc_bytes(sizeof(double) * n);
    w->row_sqh = (double *)dev_alloc_bytes(sizeof(double) * n);
    w->dsum = (double *)dev_alloc_bytes(sizeof(double) * (d + 1));
    if (cfg->select == SEL_BATCHTOPK) w->hist = (unsigned *)dev_alloc_bytes(sizeof(unsigned) * SEL_HIST_BINS);
    w->fired = (int64_t *)dev_alloc_bytes(sizeof(int64_t) * m);
    w->h_acc = (double *)xmalloc(sizeof(double) * (d + 4));
    w->h_start = (int *)xmalloc(sizeof(int) * (n + 1));
    w->h_count = (int *)xmalloc(sizeof(int) * n);
    w->h_hist32 = (unsigned *)xmalloc(sizeof(unsigned) * SEL_HIST_BINS);
    w->h_hist = (int64_t *)xmalloc(sizeof(int64_t) * SEL_HIST_BINS);
    w->h_fired = (int64_t *)xmalloc(sizeof(int64_t) * m);
    if (cfg->contrast != CTR_NONE) w->nce = infonce_work_create_cuda(cfg->m);
    return w;
}

extern "C" void sae_cuda_work_free(SaeCudaWork *w) {
    if (!w) return;
    dev_free(w->xc);
    dev_free(w->xb);
    dev_free(w->wb);
    dev_free(w->pre);
    codes_destroy(&w->z);
    codes_destroy(&w->aux);
    dev_free(w->tau);
    dev_free(w->g);
    dev_free(w->gsum);
    dev_free(w->gaux);
    dev_free(w->mean);
    dev_free(w->row_sq);
    dev_free(w->row_sqh);
    dev_free(w->dsum);
    dev_free(w->hist);
    dev_free(w->fired);
    cublasCheck(cublasDestroy(w->blas));
    cudaCheck(cudaStreamDestroy(w->st));
    free(w->h_acc);
    free(w->h_start);
    free(w->h_count);
    free(w->h_hist32);
    free(w->h_hist);
    free(w->h_fired);
    infonce_work_free_cuda(w->nce);
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

// *out = number of non-zero flags (one block; exact).
__global__ void count_flags_kernel(const uint8_t *f, int n, double *out) {
    double t = 0.0;
    for (int r = threadIdx.x; r < n; r += blockDim.x) t += f[r] != 0;
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

// Threads per block for a loop over d: a multiple of 32, at most ROW_THREADS.
static int row_threads(int d) {
    int t = (d + 31) / 32 * 32;
    return t < ROW_THREADS ? (t > 0 ? t : 32) : ROW_THREADS;
}

// One block per token r (decode_fused of sae.c): with the entries in latent
// order, xhat_h = b_dec + sum_{j < mh} z_j D_j, xhat = xhat_h + the rest;
// sq[r] = ||x_r - xhat||^2, sqh[r] = ||x_r - xhat_h||^2 (mh > 0);
// g_r = gs (xhat - x_r); gsum_r = g_r + gsh (xhat_h - x_r) (mh > 0);
// e_r = x_r - xhat (AuxK's residual, e not NULL); then one warp per entry:
// zgrad = D_j . (j < mh ? gsum_r : g_r). Dynamic shared memory: 2 d floats.
__global__ void decode_loss_kernel(const int *start, const int *count, const int32_t *idx, const float *val,
                                   const float *D, const float *b_dec, const float *x, int d, int mh, float gs,
                                   float gsh, float *g, float *gsum, float *e, float *zgrad, double *sq, double *sqh) {
    extern __shared__ float sg[]; // [d] g_r, then [d] gsum_r
    const int r = blockIdx.x, cnt = count[r];
    const int32_t *ir = idx + start[r];
    const float *vr = val + start[r];
    const float *xr = x + (size_t)r * d;
    double t = 0.0, th = 0.0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float xh = 0.0f;
        int s = 0;
        for (; s < cnt && ir[s] < mh; s++) xh += vr[s] * D[(size_t)ir[s] * d + i];
        const float xhh = xh + b_dec[i];
        for (; s < cnt; s++) xh += vr[s] * D[(size_t)ir[s] * d + i];
        xh += b_dec[i];
        const double q = (double)xr[i] - xh;
        t += q * q;
        const float gi = gs * (xh - xr[i]);
        g[(size_t)r * d + i] = gi;
        sg[i] = gi;
        if (e) e[(size_t)r * d + i] = xr[i] - xh;
        if (mh > 0) {
            const double qh = (double)xr[i] - xhh;
            th += qh * qh;
            const float gh = gi + gsh * (xhh - xr[i]);
            gsum[(size_t)r * d + i] = gh;
            sg[d + i] = gh;
        }
    }
    t = block_sum(t); // also orders the writes of sg before the reads below
    th = block_sum(th);
    if (threadIdx.x == 0) {
        sq[r] = t;
        if (mh > 0) sqh[r] = th;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    for (int s = warp; s < cnt; s += n_warps) {
        const float *Dj = D + (size_t)ir[s] * d;
        const float *gj = ir[s] < mh ? sg + d : sg;
        float a = 0.0f;
        for (int i = lane; i < d; i += 32) a += Dj[i] * gj[i];
        for (int o = 16; o > 0; o >>= 1) a += __shfl_down_sync(0xffffffffu, a, o);
        if (lane == 0) zgrad[start[r] + s] = a;
    }
}

void launch_decode_loss(const int *start, const int *count, const int32_t *idx, const float *val, const float *D,
                        const float *b_dec, const float *x, int n, int d, int mh, float gs, float gsh, float *g,
                        float *gsum, float *e, float *zgrad, double *sq, double *sqh, cudaStream_t st) {
    if (n <= 0) return;
    decode_loss_kernel<<<n, row_threads(d), sizeof(float) * 2 * d, st>>>(start, count, idx, val, D, b_dec, x, d, mh,
                                                                         gs, gsh, g, gsum, e, zgrad, sq, sqh);
    cudaCheckLaunch("decode_loss_kernel");
}

// AuxK, one block per token r (aux_fused of sae.c): ehat = sum zaux_j D_j
// (no bias), sq[r] = ||e_r - ehat||^2, e_r becomes dL/dehat = s (ehat - e_r),
// then one warp per entry: zgrad = D_j . e_r. Dynamic shared memory: d floats.
__global__ void aux_loss_kernel(const int *start, const int *count, const int32_t *idx, const float *val,
                                const float *D, int d, float s, float *e, float *zgrad, double *sq) {
    extern __shared__ float se[];
    const int r = blockIdx.x, cnt = count[r];
    const int32_t *ir = idx + start[r];
    const float *vr = val + start[r];
    float *er = e + (size_t)r * d;
    double t = 0.0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float eh = 0.0f;
        for (int q = 0; q < cnt; q++) eh += vr[q] * D[(size_t)ir[q] * d + i];
        const double dq = (double)er[i] - eh;
        t += dq * dq;
        const float gi = s * (eh - er[i]);
        er[i] = gi;
        se[i] = gi;
    }
    t = block_sum(t);
    if (threadIdx.x == 0) sq[r] = t;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    for (int q = warp; q < cnt; q += n_warps) {
        const float *Dj = D + (size_t)ir[q] * d;
        float a = 0.0f;
        for (int i = lane; i < d; i += 32) a += Dj[i] * se[i];
        for (int o = 16; o > 0; o >>= 1) a += __shfl_down_sync(0xffffffffu, a, o);
        if (lane == 0) zgrad[start[r] + q] = a;
    }
}

void launch_aux_loss(const int *start, const int *count, const int32_t *idx, const float *val, const float *D, int n,
                     int d, float s, float *e, float *zgrad, double *sq, cudaStream_t st) {
    if (n <= 0) return;
    aux_loss_kernel<<<n, row_threads(d), sizeof(float) * d, st>>>(start, count, idx, val, D, d, s, e, zgrad, sq);
    cudaCheckLaunch("aux_loss_kernel");
}

// Sort input: every slot unused (key m), ent_in[e] = e.
__global__ void slot_init_kernel(int n_slots, int m, int32_t *key, int32_t *ent) {
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n_slots) return;
    key[e] = m;
    ent[e] = e;
}

// Then the used slots of each token: their latent, and the token.
__global__ void slot_rows_kernel(const int *start, const int *count, const int32_t *idx, int n, int32_t *key,
                                 int32_t *row) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    for (int e = start[r]; e < start[r] + count[r]; e++) {
        key[e] = idx[e];
        row[e] = r;
    }
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

// One block per latent j, its entries in token order: the codes' (a_*, with
// dL/dxhat_r from g, or gsum for j < mh), then AuxK's (b_*, with ga; b_col
// NULL: none), the CPU's order within a gradient block. dW_enc_j = sum dpre
// x_r - (sum dpre) b_dec, dD_j = sum z dL/dxhat_r (0 when frozen), db_enc_j =
// sum dpre. a_ent / b_ent are slot positions, a_row / b_row their tokens.
__global__ void latent_grads_kernel(const int *a_col, const int32_t *a_ent, const int32_t *a_row, const float *a_val,
                                    const float *a_grad, const int *b_col, const int32_t *b_ent, const int32_t *b_row,
                                    const float *b_val, const float *b_grad, const float *x, const float *g,
                                    const float *gsum, int mh, const float *ga, const float *b_dec, int d, int frozen,
                                    float *gW, float *gD, float *gb) {
    const int j = blockIdx.x;
    const int a0 = a_col[j], a1 = a_col[j + 1];
    const int b0 = b_col ? b_col[j] : 0, b1 = b_col ? b_col[j + 1] : 0;
    const float *gd = j < mh ? gsum : g;
    double sb = 0.0; // every thread sums the same values in the same order
    for (int t = a0; t < a1; t++) sb += a_grad[a_ent[t]];
    for (int t = b0; t < b1; t++) sb += b_grad[b_ent[t]];
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float aw = 0.0f, ad = 0.0f;
        for (int t = a0; t < a1; t++) {
            const int e = a_ent[t];
            const size_t r = (size_t)a_row[e];
            aw += a_grad[e] * x[r * d + i];
            ad += a_val[e] * gd[r * d + i];
        }
        for (int t = b0; t < b1; t++) {
            const int e = b_ent[t];
            const size_t r = (size_t)b_row[e];
            aw += b_grad[e] * x[r * d + i];
            ad += b_val[e] * ga[r * d + i];
        }
        gW[(size_t)j * d + i] = aw + (float)-sb * b_dec[i];
        gD[(size_t)j * d + i] = frozen ? 0.0f : ad;
    }
    if (threadIdx.x == 0) gb[j] = (float)sb;
}

void launch_latent_grads(const int *a_col, const int32_t *a_ent, const int32_t *a_row, const float *a_val,
                         const float *a_grad, const int *b_col, const int32_t *b_ent, const int32_t *b_row,
                         const float *b_val, const float *b_grad, const float *x, const float *g, const float *gsum,
                         int mh, const float *ga, const float *b_dec, int m, int d, int frozen, float *gW, float *gD,
                         float *gb, cudaStream_t st) {
    if (m <= 0) return;
    latent_grads_kernel<<<m, row_threads(d), 0, st>>>(a_col, a_ent, a_row, a_val, a_grad, b_col, b_ent, b_row, b_val,
                                                      b_grad, x, g, gsum, mh, ga, b_dec, d, frozen, gW, gD, gb);
    cudaCheckLaunch("latent_grads_kernel");
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

// fired[j] = entries of latent j in the latent-major index.
__global__ void kept_counts_kernel(const int *col_ptr, int m, int64_t *fired) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < m) fired[j] = col_ptr[j + 1] - col_ptr[j];
}

__global__ void fire_kernel(const int64_t *fired, int m, int64_t tokens, int64_t *last_fired) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < m && fired[j]) last_fired[j] = tokens;
}

__global__ void dead_mask_kernel(const int64_t *last_fired, int m, int64_t tokens, int64_t dead_tokens,
                                 uint8_t *dead) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < m) dead[j] = tokens - last_fired[j] >= dead_tokens;
}

// ---- the step ----------------------------------------------------------------------

static int grid_for(size_t n, int threads) {
    size_t b = (n + threads - 1) / threads;
    return b > 65535 ? 65535 : (int)(b > 0 ? b : 1);
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

// Global mean row of a [n, d] (device) into w->mean, through red; acc: host
// scratch [d + 1] (global_mean of sae.c). Returns the global row count.
static double device_global_mean(SaeCudaWork *w, const float *a, int n, const SaeReduce *red, double *acc) {
    const int d = w->d;
    column_sums_kernel<<<grid_for((size_t)d, 128), 128, 0, w->st>>>(a, n, d, w->dsum);
    cudaCheckLaunch("column_sums_kernel");
    cudaCheck(cudaMemcpyAsync(acc, w->dsum, sizeof(double) * d, cudaMemcpyDeviceToHost, w->st));
    cudaCheck(cudaStreamSynchronize(w->st));
    acc[d] = n;
    sae_sum_f64(red, acc, d + 1);
    float *mean = (float *)xmalloc(sizeof(float) * (size_t)d);
    for (int i = 0; i < d; i++) mean[i] = (float)(acc[i] / acc[d]);
    cudaCheck(cudaMemcpyAsync(w->mean, mean, sizeof(float) * d, cudaMemcpyHostToDevice, w->st));
    cudaCheck(cudaStreamSynchronize(w->st));
    free(mean);
    return acc[d];
}

// The local sum of ||a_r - mean||^2 (device rows a [n, d], w->mean).
static double device_sq_to_mean(SaeCudaWork *w, const float *a, int n) {
    if (n <= 0) return 0.0;
    row_sq_dist_kernel<<<n, row_threads(w->d), 0, w->st>>>(a, w->mean, w->d, w->row_sq);
    cudaCheckLaunch("row_sq_dist_kernel");
    return device_sum(w, w->row_sq, n);
}

// pre rows [nc, m] at out = (x[r0 ..] - b_dec) W_enc^T for the chunk of nc tokens.
static void encode_chunk(const SaeConfig *cfg, const SaeTensors *p, const float *x, int r0, int nc, float *out,
                         SaeCudaWork *w) {
    const int d = cfg->d, m = cfg->m;
    const size_t n_el = (size_t)nc * d;
    const float one = 1.0f, zero = 0.0f;
    const float *xr = x + (size_t)r0 * d;
    if (w->math == SAE_GEMM_BF16) {
        sub_bias_bf16_kernel<<<grid_for(n_el, 256), 256, 0, w->st>>>(xr, p->b_dec, n_el, d, w->xb);
        cudaCheckLaunch("sub_bias_bf16_kernel");
        // row-major pre [nc, m] is column-major [m, nc] = W_enc [m, d] (col-major [d, m], transposed) x xc^T
        cublasCheck(cublasGemmEx(w->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, nc, d, &one, w->wb, CUDA_R_16BF, d, w->xb,
                                 CUDA_R_16BF, d, &zero, out, CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        sub_bias_kernel<<<grid_for(n_el, 256), 256, 0, w->st>>>(xr, p->b_dec, n_el, d, w->xc);
        cudaCheckLaunch("sub_bias_kernel");
        cublasCheck(cublasSgemm(w->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, nc, d, &one, p->W_enc, d, w->xc, d, &zero, out,
                                m));
    }
}

// Fixed-width slots for n tokens: start[r] = r * width (counts come from the kernel).
static void codes_fixed(SaeCudaWork *w, DevCodes *c, int n, int width) {
    codes_grow(c, (int64_t)n * width, 0, w->m, w->st);
    for (int r = 0; r < n; r++) w->h_start[r] = r * width;
    if (n > 0) {
        cudaCheck(cudaMemcpyAsync(c->start, w->h_start, sizeof(int) * n, cudaMemcpyHostToDevice, w->st));
        cudaCheck(cudaStreamSynchronize(w->st));
    }
    c->width = width;
    c->n_slots = n * width;
}

// CSR rows [r0, r0 + nc) of c from their counts (device, c->count + r0),
// after the c->n_slots entries of the rows before: sets their starts on the
// device and makes room (keeping the entries before).
static void codes_csr_rows(SaeCudaWork *w, DevCodes *c, int r0, int nc) {
    if (nc <= 0) return;
    cudaCheck(cudaMemcpyAsync(w->h_count, c->count + r0, sizeof(int) * nc, cudaMemcpyDeviceToHost, w->st));
    cudaCheck(cudaStreamSynchronize(w->st));
    int64_t at = c->n_slots;
    for (int r = 0; r < nc; r++) {
        w->h_start[r] = (int)at;
        at += w->h_count[r];
    }
    codes_grow(c, at, c->n_slots, w->m, w->st);
    cudaCheck(cudaMemcpyAsync(c->start + r0, w->h_start, sizeof(int) * nc, cudaMemcpyHostToDevice, w->st));
    cudaCheck(cudaStreamSynchronize(w->st));
    c->width = 0;
    c->n_slots = (int)at;
}

// The latent-major index of c (n tokens): a stable sort of the slots by latent.
static void codes_index(SaeCudaWork *w, DevCodes *c, int n) {
    const int m = w->m, ns = c->n_slots;
    if (ns > 0) {
        slot_init_kernel<<<grid_for((size_t)ns, 256), 256, 0, w->st>>>(ns, m, c->key_in, c->ent_in);
        cudaCheckLaunch("slot_init_kernel");
        slot_rows_kernel<<<grid_for((size_t)n, 128), 128, 0, w->st>>>(c->start, c->count, c->idx, n, c->key_in, c->row);
        cudaCheckLaunch("slot_rows_kernel");
        size_t bytes = c->sort_bytes;
        cudaCheck(cub::DeviceRadixSort::SortPairs(c->sort_tmp, bytes, c->key_in, c->key_out, c->ent_in, c->ent_out, ns,
                                                  0, key_bits(m), w->st));
    }
    col_ptr_kernel<<<grid_for((size_t)m + 1, 256), 256, 0, w->st>>>(c->key_out, ns, m, c->col_ptr);
    cudaCheckLaunch("col_ptr_kernel");
}

// kth_largest_positive of select.c over w->pre [n, m] (select.cu's twin:
// histograms made on the device, summed over the ranks on the host).
static float batch_kth_largest(SaeCudaWork *w, int n, int64_t kk, const SaeReduce *red) {
    const SelHistBufs bufs = {w->hist, w->h_hist32, w->h_hist};
    return kth_largest_positive_cuda(w->pre, (size_t)n * w->m, kk, red, &bufs, w->st);
}

// Dies unless w was made for cfg and holds n tokens.
static void check_work(const SaeConfig *cfg, int n, const SaeCudaWork *w) {
    if (n > w->max_tok) die("batch of %d tokens exceeds the CUDA workspace (%d)", n, w->max_tok);
    if (cfg->d != w->d || cfg->m != w->m || cfg->k != w->k || cfg->select != w->select || cfg->m_high != w->m_high ||
        (cfg->k_aux > 0 ? cfg->k_aux : 0) != w->k_aux || (cfg->contrast != CTR_NONE) != (w->nce != NULL))
        die("CUDA step: configuration differs from its workspace");
}

// The codes' slots for n tokens before the selection: TopK's fixed width k,
// the others' CSR rows filled chunk by chunk (codes_csr_rows).
static void codes_begin(SaeCudaWork *w, const SaeConfig *cfg, int n) {
    if (cfg->select == SEL_TOPK) codes_fixed(w, &w->z, n, cfg->k);
    else w->z.n_slots = 0;
}

// Step 2 chunk by chunk (all but the training step's BatchTopK, which needs
// the whole batch): the codes of x [n, d] into w->z, after codes_begin; with
// k_aux_eff > 0 AuxK's TopK over the dead latents into w->aux (its slots made
// by the caller); BatchTopK (evaluation, sae_cuda_encode) keeps a > theta.
static void select_chunks(const SaeConfig *cfg, const SaeTensors *p, const float *x, int n, const uint8_t *dead,
                          int k_aux_eff, float theta, SaeCudaWork *w) {
    const int m = cfg->m, k = cfg->k;
    const int entmax = cfg->select == SEL_ENTMAX15;
    const float inv_T = 1.0f / cfg->temp_s, s_simplex = entmax ? 0.5f * inv_T : inv_T;
    DevCodes *z = &w->z, *za = &w->aux;
    // keep a > theta: the kernels keep a >= v, and the float after theta is the least a > theta
    const float v_keep = nextafterf(theta, INFINITY);
    for (int r0 = 0; r0 < n; r0 += w->chunk) {
        const int nc = n - r0 < w->chunk ? n - r0 : w->chunk;
        encode_chunk(cfg, p, x, r0, nc, w->pre, w);
        if (cfg->select == SEL_BATCHTOPK) {
            launch_add_bias_rows(w->pre, p->b_enc, nc, m, w->st);
            launch_keep_count(w->pre, nc, m, v_keep, z->count + r0, w->st);
            codes_csr_rows(w, z, r0, nc);
            launch_keep_fill(w->pre, nc, m, v_keep, z->start + r0, z->idx, z->val, w->st);
        } else if (cfg->select != SEL_TOPK) { // sparsemax, entmax-1.5
            launch_simplex_threshold(w->pre, p->b_enc, nc, m, s_simplex, entmax, w->tau + r0, z->count + r0, w->st);
            codes_csr_rows(w, z, r0, nc);
            launch_simplex_fill(w->pre, p->b_enc, nc, m, s_simplex, entmax, w->tau + r0, z->start + r0, z->idx,
                                z->val, w->st);
        } else {
            launch_topk_rows(w->pre, p->b_enc, NULL, nc, m, k, z->idx + (size_t)r0 * k, z->val + (size_t)r0 * k,
                             z->count + r0, w->st);
        }
        if (k_aux_eff > 0)
            launch_topk_rows(w->pre, p->b_enc, dead, nc, m, k_aux_eff, za->idx + (size_t)r0 * k_aux_eff,
                             za->val + (size_t)r0 * k_aux_eff, za->count + r0, w->st);
    }
}

extern "C" void sae_step_cuda(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *grad, const float *x,
                              const SaeBatch *b, const uint8_t *dead, const SaeReduce *red, SaeCudaWork *w,
                              SaeLosses *out) {
    const int d = cfg->d, m = cfg->m, k = cfg->k, n = b->n_tok;
    check_work(cfg, n, w);
    memset(out, 0, sizeof(*out));
    double *acc = w->h_acc;
    DevCodes *z = &w->z, *za = &w->aux;
    w->last_n = n;

    // dead latents (AuxK)
    int n_dead = 0;
    if (dead && w->k_aux > 0) {
        count_flags_kernel<<<1, 256, 0, w->st>>>(dead, m, w->dsum);
        cudaCheckLaunch("count_flags_kernel");
        double nd = 0.0;
        cudaCheck(cudaMemcpyAsync(&nd, w->dsum, sizeof(double), cudaMemcpyDeviceToHost, w->st));
        cudaCheck(cudaStreamSynchronize(w->st));
        n_dead = (int)nd;
    }
    out->n_dead = n_dead;
    const int k_aux_eff = n_dead < w->k_aux ? n_dead : w->k_aux;

    // 1. batch statistics
    const double n_glob_d = device_global_mean(w, x, n, red, acc);
    const int64_t n_glob = (int64_t)n_glob_d;
    out->n_tok_global = n_glob;
    double den[1] = {device_sq_to_mean(w, x, n)};
    sae_sum_f64(red, den, 1);
    const double den_rec = den[0] > 0.0 ? den[0] : 1.0;

    // 2. encode and select
    if (w->math == SAE_GEMM_BF16) {
        const size_t n_el = (size_t)m * d;
        to_bf16_kernel<<<grid_for(n_el, 256), 256, 0, w->st>>>(p->W_enc, n_el, w->wb);
        cudaCheckLaunch("to_bf16_kernel");
    }
    const int simplex = cfg->select == SEL_SPARSEMAX || cfg->select == SEL_ENTMAX15;
    const int entmax = cfg->select == SEL_ENTMAX15;
    const float inv_T = 1.0f / cfg->temp_s;
    codes_begin(w, cfg, n);
    if (k_aux_eff > 0) codes_fixed(w, za, n, k_aux_eff);
    else za->n_slots = 0;
    if (cfg->select == SEL_BATCHTOPK) {
        for (int r0 = 0; r0 < n; r0 += w->chunk) {
            const int nc = n - r0 < w->chunk ? n - r0 : w->chunk;
            encode_chunk(cfg, p, x, r0, nc, w->pre + (size_t)r0 * m, w);
        }
        launch_add_bias_rows(w->pre, p->b_enc, n, m, w->st);
        const float v = batch_kth_largest(w, n, (int64_t)k * n_glob, red);
        out->min_kept = v;
        launch_keep_count(w->pre, n, m, v, z->count, w->st);
        codes_csr_rows(w, z, 0, n);
        launch_keep_fill(w->pre, n, m, v, z->start, z->idx, z->val, w->st);
        if (k_aux_eff > 0)
            launch_topk_rows(w->pre, NULL, dead, n, m, k_aux_eff, za->idx, za->val, za->count, w->st);
    } else {
        select_chunks(cfg, p, x, n, dead, k_aux_eff, 0.0f, w);
    }
    int64_t nnz = 0;
    if (n > 0) {
        cudaCheck(cudaMemcpyAsync(w->h_count, z->count, sizeof(int) * n, cudaMemcpyDeviceToHost, w->st));
        cudaCheck(cudaStreamSynchronize(w->st));
        for (int r = 0; r < n; r++) nnz += w->h_count[r];
    }
    double l0[1] = {(double)nnz};
    sae_sum_f64(red, l0, 1);
    out->l0 = l0[0] / (double)(n_glob ? n_glob : 1);

    // 3. decode, losses, dL/dxhat (+ dL/dxhat_h) and dL/dz per token
    const int mh = cfg->m_high;
    const float grec = (float)(2.0 / den_rec);
    launch_decode_loss(z->start, z->count, z->idx, z->val, p->D, p->b_dec, x, n, d, mh, grec,
                       (float)(2.0 * cfg->beta / den_rec), w->g, w->gsum, k_aux_eff > 0 ? w->gaux : NULL, z->grad,
                       w->row_sq, w->row_sqh, w->st);
    acc[0] = n > 0 ? device_sum(w, w->row_sq, n) : 0.0;
    acc[1] = mh > 0 && n > 0 ? device_sum(w, w->row_sqh, n) : 0.0;
    sae_sum_f64(red, acc, 2);
    out->rec = acc[0] / den_rec;
    out->high = acc[1] / den_rec;

    // 4. AuxK: e = x - xhat (a constant) is in gaux; its FVU denominator first
    if (k_aux_eff > 0) {
        device_global_mean(w, w->gaux, n, red, acc);
        acc[1] = device_sq_to_mean(w, w->gaux, n);
        sae_sum_f64(red, acc + 1, 1);
        const double aux_scale = fmin((double)n_dead / cfg->k_aux, 1.0);
        const double den_e = acc[1] > 0.0 ? acc[1] : 1.0;
        const float s = (float)(cfg->alpha * aux_scale * 2.0 / den_e);
        launch_aux_loss(za->start, za->count, za->idx, za->val, p->D, n, d, s, w->gaux, za->grad, w->row_sq, w->st);
        acc[0] = n > 0 ? device_sum(w, w->row_sq, n) : 0.0;
        sae_sum_f64(red, acc, 1);
        out->aux = aux_scale * acc[0] / den_e;
    }

    // 5. InfoNCE onto dL/dz (infonce.cu)
    if (cfg->contrast != CTR_NONE) {
        const DevCodesView zv = sae_cuda_codes_view(w);
        InfoNceLoss nl;
        infonce_step_cuda(cfg, b, &zv, red, w->nce, &nl, w->st);
        out->temp = nl.temp;
        out->spat = nl.spat;
        out->rast = nl.rast;
    }

    // 6. the selection backward (TopK / BatchTopK: kept values are positive,
    //    so dL/dpre = dL/dz there)
    if (simplex) launch_simplex_backward(z->start, z->count, z->val, z->grad, n, inv_T, entmax, w->st);

    // 7. latent-major indices (stable: token order within a latent) and the
    //    per-latent gradients; a latent no token kept gets zeros
    codes_index(w, z, n);
    if (k_aux_eff > 0) codes_index(w, za, n);
    const int ax = k_aux_eff > 0;
    launch_latent_grads(z->col_ptr, z->ent_out, z->row, z->val, z->grad, ax ? za->col_ptr : NULL, za->ent_out, za->row,
                        za->val, za->grad, x, w->g, w->gsum, mh, w->gaux, p->b_dec, m, d, cfg->frozen_decoder,
                        grad->W_enc, grad->D, grad->b_enc, w->st);

    // 8. db_dec
    bdec_grad_kernel<<<grid_for((size_t)d, 128), 128, 0, w->st>>>(mh > 0 ? w->gsum : w->g, n, p->W_enc, grad->b_enc,
                                                                 m, d, cfg->frozen_decoder, grad->b_dec);
    cudaCheckLaunch("bdec_grad_kernel");
    cudaCheck(cudaStreamSynchronize(w->st));

    out->total = out->rec + cfg->alpha * out->aux + cfg->beta * out->high + cfg->lambda_t * out->temp +
                 cfg->lambda_s * out->spat + cfg->lambda_r * out->rast;
}

extern "C" void sae_cuda_encode(const SaeConfig *cfg, const SaeTensors *p, const float *x, int n, float theta,
                                SaeCudaWork *w) {
    check_work(cfg, n, w);
    w->last_n = n;
    codes_begin(w, cfg, n);
    select_chunks(cfg, p, x, n, NULL, 0, theta, w);
    cudaCheck(cudaStreamSynchronize(w->st));
}

DevCodesView sae_cuda_codes_view(SaeCudaWork *w) {
    const DevCodes *z = &w->z;
    const DevCodesView v = {w->last_n, z->start, z->count, z->idx, z->val, z->grad};
    return v;
}

cudaStream_t sae_cuda_stream(const SaeCudaWork *w) { return w->st; }

extern "C" void sae_cuda_last_codes(SaeCudaWork *w, SparseCodes *out) {
    const DevCodes *z = &w->z;
    const int n = w->last_n;
    int *start = (int *)xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    int *count = (int *)xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    int32_t *idx = (int32_t *)xmalloc(sizeof(int32_t) * (size_t)(z->n_slots > 0 ? z->n_slots : 1));
    float *val = (float *)xmalloc(sizeof(float) * (size_t)(z->n_slots > 0 ? z->n_slots : 1));
    if (n > 0) {
        dev_download_bytes(start, z->start, sizeof(int) * n);
        dev_download_bytes(count, z->count, sizeof(int) * n);
    }
    if (z->n_slots > 0) {
        dev_download_bytes(idx, z->idx, sizeof(int32_t) * z->n_slots);
        dev_download_bytes(val, z->val, sizeof(float) * z->n_slots);
    }
    codes_from_slots(out, n, start, 0, count, idx, val);
    free(start);
    free(count);
    free(idx);
    free(val);
}

extern "C" int sae_cuda_dead_mask(SaeCudaWork *w, const int64_t *last_fired, int64_t tokens, int64_t dead_tokens,
                                  uint8_t *dead) {
    const int m = w->m;
    dead_mask_kernel<<<grid_for((size_t)m, 256), 256, 0, w->st>>>(last_fired, m, tokens, dead_tokens, dead);
    cudaCheckLaunch("dead_mask_kernel");
    count_flags_kernel<<<1, 256, 0, w->st>>>(dead, m, w->dsum);
    cudaCheckLaunch("count_flags_kernel");
    double nd = 0.0;
    cudaCheck(cudaMemcpyAsync(&nd, w->dsum, sizeof(double), cudaMemcpyDeviceToHost, w->st));
    cudaCheck(cudaStreamSynchronize(w->st));
    return (int)nd;
}

extern "C" void sae_cuda_fire(SaeCudaWork *w, const SaeReduce *red, int64_t tokens, int64_t *last_fired) {
    const int m = w->m;
    kept_counts_kernel<<<grid_for((size_t)m, 256), 256, 0, w->st>>>(w->z.col_ptr, m, w->fired);
    cudaCheckLaunch("kept_counts_kernel");
    if (red && red->sum_i64_device) {
        cudaCheck(cudaStreamSynchronize(w->st)); // the counts, before another stream reads them
        red->sum_i64_device(red->device_ctx, w->fired, m);
    } else if (red) {
        cudaCheck(cudaMemcpyAsync(w->h_fired, w->fired, sizeof(int64_t) * m, cudaMemcpyDeviceToHost, w->st));
        cudaCheck(cudaStreamSynchronize(w->st));
        red->sum_i64(red->ctx, w->h_fired, m);
        cudaCheck(cudaMemcpyAsync(w->fired, w->h_fired, sizeof(int64_t) * m, cudaMemcpyHostToDevice, w->st));
    }
    fire_kernel<<<grid_for((size_t)m, 256), 256, 0, w->st>>>(w->fired, m, tokens, last_fired);
    cudaCheckLaunch("fire_kernel");
    cudaCheck(cudaStreamSynchronize(w->st));
}
