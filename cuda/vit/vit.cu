// vit.cu — the ViT forward of vit.c on one GPU (vit_cuda.h): the weights
// copied to the device once; per clip the pixels go up, the patches are
// embedded, the pre-norm blocks run up to the last requested layer, and each
// requested layer's tokens (the final LayerNorm applied when asked; DINOv2's
// CLS dropped) come back to the host. vit.c is the model this follows step
// by step; the position table is vit.c's own (vit_pos_table), uploaded.
//
// Per block, on x [rows, D] (rows = B sequences of n tokens):
//   h = LN1(x); q, k, v = h Wq^T + bq, ... into qkv [rows, 3D];
//   per sequence: scores [NH, n, n] = q k^T / sqrt(hd) (one strided batched
//   GEMM over the heads), a softmax per row, att = scores v (another);
//   x += ls1 * (att Wo^T + bo); h = LN2(x); x += ls2 * (GELU(h W1^T + b1) W2^T + b2).
// Every product is matmul(): the bias written into the output first, then
// cuBLAS adds the product (beta = 1), as vit_ops.c's matmul_forward does.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/cuda_check.h"
#include "base/reduce.cuh"

extern "C" {
#include "stsae/base/common.h"
#include "stsae/vit/vit_cuda.h"
}

enum { ROW_THREADS = 128, ELEM_THREADS = 256 };

struct VitCuda {
    VitWeights w;             // host pointers (the model's description)
    VitWeights dw;            // the same with device pointers (dw.blk: host array of device blocks)
    VitBlock *dblk;           // [depth]
    BackboneOptions opt;
    cublasHandle_t blas;
    cudaStream_t st;
    cublasComputeType_t compute;
    int T_in, S;              // the input shape pos was made for (0: none yet)
    float *pos;               // device position table (vit_pos_table)
    size_t cap_rows, cap_cols, cap_scores, cap_pix, cap_out; // floats (cap_rows: tokens)
    float *x, *h, *att, *qkv, *mlp, *cols, *scores, *pix, *out; // device workspace
};

static float *dev_floats(size_t n) {
    float *p = NULL;
    cudaCheck(cudaMalloc(&p, sizeof(float) * (n > 0 ? n : 1)));
    return p;
}

// A host tensor of n floats on the device (NULL stays NULL).
static const float *upload(const float *host, size_t n) {
    if (!host) return NULL;
    float *d = dev_floats(n);
    cudaCheck(cudaMemcpy(d, host, sizeof(float) * n, cudaMemcpyHostToDevice));
    return d;
}

static int grid_for(size_t n, int threads) { return (int)((n + threads - 1) / threads); }

// ---- kernels (vit_ops.h's operations) ----

// patchify: out [(T_in/kt) * G * G, 3 kt p p], row (t, gy, gx), column (c, dt, ky, kx).
__global__ void patchify_kernel(const float *frames, int T, int S, int p, int kt, float *out) {
    const int G = S / p, K = 3 * kt * p * p;
    const size_t total = (size_t)T * G * G * K;
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int col = (int)(i % K);
    const size_t row = i / K;
    const int gx = (int)(row % G), gy = (int)(row / G % G), t = (int)(row / ((size_t)G * G));
    const int kx = col % p, ky = col / p % p, dt = col / (p * p) % kt, c = col / (p * p * kt);
    out[i] = frames[((size_t)(t * kt + dt) * 3 + c) * S * S + (size_t)(gy * p + ky) * S + gx * p + kx];
}

// out[i * ldo + j] = bias[j] (0 without bias), j < OC.
__global__ void bias_rows_kernel(float *out, int ldo, const float *bias, int n, int OC) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n * OC) return;
    const int j = (int)(i % OC);
    out[i / OC * ldo + j] = bias ? bias[j] : 0.0f;
}

// One block per row: the CPU's LayerNorm (mean and variance summed in double).
__global__ void layernorm_kernel(float *out, const float *inp, const float *w, const float *b, int C, float eps) {
    const float *x = inp + (size_t)blockIdx.x * C;
    float *y = out + (size_t)blockIdx.x * C;
    double s = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += x[j];
    const float mean = (float)(block_sum(s) / C);
    double v = 0.0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        const float dlt = x[j] - mean;
        v += dlt * dlt;
    }
    const float rstd = (float)(1.0 / sqrt(block_sum(v) / C + (double)eps));
    for (int j = threadIdx.x; j < C; j += blockDim.x) y[j] = (x[j] - mean) * rstd * w[j] + b[j];
}

// GELU, the exact erf form (planted: the tanh approximation).
__global__ void gelu_kernel(float *x, size_t n, int tanh_form) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = x[i];
    x[i] = tanh_form ? 0.5f * v * (1.0f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)))
                     : 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}

// x [n, C] += scale * y (scale NULL: 1).
__global__ void residual_kernel(float *x, const float *y, const float *scale, int n, int C) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n * C) return;
    x[i] += scale ? scale[i % C] * y[i] : y[i];
}

// One block per row of scores [rows, n]: softmax in place.
__global__ void softmax_kernel(float *s, int n) {
    __shared__ float red[32];
    float *r = s + (size_t)blockIdx.x * n;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, r[j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = red[0];
    for (int q = 1; q < (int)(blockDim.x >> 5); q++) mx = fmaxf(mx, red[q]);
    double sum = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        r[j] = expf(r[j] - mx);
        sum += r[j];
    }
    const float inv = (float)(1.0 / block_sum(sum));
    for (int j = threadIdx.x; j < n; j += blockDim.x) r[j] *= inv;
}

// DINOv2's embedding output: per frame t, row 0 = pos[0] (cls + its
// position), row i = patch embedding e[t, i - 1] + pos[i].
__global__ void dinov2_embed_kernel(float *x, const float *e, const float *pos, int T, int N, int D) {
    const int n = N + 1;
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)T * n * D) return;
    const int c = (int)(i % D), tok = (int)(i / D % n), t = (int)(i / ((size_t)n * D));
    x[i] = tok == 0 ? pos[c] : e[((size_t)t * N + tok - 1) * D + c] + pos[(size_t)tok * D + c];
}

// rows [keep, D] of each of B sequences of n rows from `skip` on, packed.
__global__ void gather_rows_kernel(float *out, const float *x, int B, int n, int skip, int D) {
    const int keep = n - skip;
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * keep * D) return;
    const size_t row = i / D;
    const int b = (int)(row / keep), r = (int)(row % keep);
    out[i] = x[((size_t)b * n + skip + r) * D + i % D];
}

// ---- the model ----

// out [n, OC] (leading dimension ldo) = inp [n, C] W^T + bias (W [OC, C]).
static void matmul(VitCuda *v, float *out, int ldo, const float *inp, const float *W, const float *bias, int n, int C,
                   int OC) {
    bias_rows_kernel<<<grid_for((size_t)n * OC, ELEM_THREADS), ELEM_THREADS, 0, v->st>>>(out, ldo, bias, n, OC);
    cudaCheckLaunch("bias_rows_kernel");
    const float one = 1.0f;
    // row-major out [n, OC] is column-major [OC, n] = W (column-major [C, OC], transposed) x inp^T
    cublasCheck(cublasGemmEx(v->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, n, C, &one, W, CUDA_R_32F, C, inp, CUDA_R_32F, C,
                             &one, out, CUDA_R_32F, ldo, v->compute, CUBLAS_GEMM_DEFAULT));
}

static void layernorm(VitCuda *v, float *out, const float *inp, const float *w, const float *b, int n) {
    layernorm_kernel<<<n, ROW_THREADS, 0, v->st>>>(out, inp, w, b, v->w.D, v->w.eps);
    cudaCheckLaunch("layernorm_kernel");
}

static void residual(VitCuda *v, float *x, const float *y, const float *scale, int n) {
    residual_kernel<<<grid_for((size_t)n * v->w.D, ELEM_THREADS), ELEM_THREADS, 0, v->st>>>(x, y, scale, n, v->w.D);
    cudaCheckLaunch("residual_kernel");
}

// Multi-head self-attention of B sequences of n tokens: qkv [B n, 3D] -> att [B n, D].
static void attention(VitCuda *v, int B, int n) {
    const int D = v->w.D, NH = v->w.NH, hd = D / NH, ld = 3 * D;
    const float scale = 1.0f / sqrtf((float)hd), one = 1.0f, zero = 0.0f;
    const long long nn = (long long)n * n;
    for (int b = 0; b < B; b++) {
        const float *q = v->qkv + (size_t)b * n * ld, *k = q + D, *val = q + 2 * D;
        // per head: scores row-major [n_q, n_k] = column-major [n_k, n_q] = k (as [hd, n_k], transposed) x q
        cublasCheck(cublasGemmStridedBatchedEx(v->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, hd, &scale, k, CUDA_R_32F, ld,
                                               hd, q, CUDA_R_32F, ld, hd, &zero, v->scores, CUDA_R_32F, n, nn, NH,
                                               v->compute, CUBLAS_GEMM_DEFAULT));
        softmax_kernel<<<NH * n, ROW_THREADS, 0, v->st>>>(v->scores, n);
        cudaCheckLaunch("softmax_kernel");
        // per head: att row-major [n_q, hd] (ld D) = column-major [hd, n_q] = v (as [hd, n_k]) x scores
        cublasCheck(cublasGemmStridedBatchedEx(v->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, n, n, &one, val, CUDA_R_32F, ld,
                                               hd, v->scores, CUDA_R_32F, n, nn, &zero, v->att + (size_t)b * n * D,
                                               CUDA_R_32F, D, hd, NH, v->compute, CUBLAS_GEMM_DEFAULT));
    }
}

// One pre-norm block on x [B n, D], in place (vit.c's block_forward).
static void block_forward(VitCuda *v, const VitBlock *b, int B, int n) {
    const int D = v->w.D, F = v->w.F, rows = B * n;
    layernorm(v, v->h, v->x, b->ln1_w, b->ln1_b, rows);
    matmul(v, v->qkv, 3 * D, v->h, b->wq, b->bq, rows, D, D);
    matmul(v, v->qkv + D, 3 * D, v->h, b->wk, b->bk, rows, D, D);
    matmul(v, v->qkv + 2 * D, 3 * D, v->h, b->wv, b->bv, rows, D, D);
    attention(v, B, n);
    matmul(v, v->h, D, v->att, b->wo, b->bo, rows, D, D);
    residual(v, v->x, v->h, b->ls1, rows);
    layernorm(v, v->h, v->x, b->ln2_w, b->ln2_b, rows);
    matmul(v, v->mlp, F, v->h, b->w1, b->b1, rows, D, F);
    const size_t n_el = (size_t)rows * F;
    gelu_kernel<<<grid_for(n_el, ELEM_THREADS), ELEM_THREADS, 0, v->st>>>(v->mlp, n_el, PLANTED("bb_gelu_tanh"));
    cudaCheckLaunch("gelu_kernel");
    matmul(v, v->h, D, v->mlp, b->w2, b->b2, rows, F, D);
    residual(v, v->x, v->h, b->ls2, rows);
}

// The embedding output (hidden_states[0]) of the clip in v->pix into x.
static void embed(VitCuda *v, int S, const BackboneShape *sh) {
    const int D = v->w.D, K = 3 * v->w.kt * v->w.p * v->w.p, patches = sh->T * sh->N;
    patchify_kernel<<<grid_for((size_t)patches * K, ELEM_THREADS), ELEM_THREADS, 0, v->st>>>(v->pix, sh->T, S, v->w.p,
                                                                                           v->w.kt, v->cols);
    cudaCheckLaunch("patchify_kernel");
    if (v->w.videomae) { // one sequence of T*N tokens: patch embedding + sinusoid
        matmul(v, v->x, D, v->cols, v->dw.patch_w, v->dw.patch_b, patches, K, D);
        residual(v, v->x, v->pos, NULL, patches);
        return;
    }
    matmul(v, v->h, D, v->cols, v->dw.patch_w, v->dw.patch_b, patches, K, D);
    const size_t n_el = (size_t)sh->T * (sh->N + 1) * D;
    dinov2_embed_kernel<<<grid_for(n_el, ELEM_THREADS), ELEM_THREADS, 0, v->st>>>(v->x, v->h, v->pos, sh->T, sh->N, D);
    cudaCheckLaunch("dinov2_embed_kernel");
}

// *buf holds at least n floats (its contents are not kept).
static void grow(float **buf, size_t *cap, size_t n) {
    if (n <= *cap) return;
    if (*buf) cudaCheck(cudaFree(*buf));
    *buf = dev_floats(n);
    *cap = n;
}

extern "C" VitCuda *vit_cuda_create(const VitWeights *w, const BackboneOptions *opt) {
    VitCuda *v = (VitCuda *)xcalloc(1, sizeof(VitCuda));
    v->w = *w;
    v->opt = *opt;
    const size_t D = (size_t)w->D, F = (size_t)w->F, K = (size_t)3 * w->kt * w->p * w->p;
    v->dw = *w;
    v->dw.patch_w = upload(w->patch_w, D * K);
    v->dw.patch_b = upload(w->patch_b, D);
    if (!w->videomae) {
        v->dw.cls = upload(w->cls, D);
        v->dw.pos = upload(w->pos, (1 + (size_t)w->M * w->M) * D);
    }
    v->dw.norm_w = upload(w->norm_w, D);
    v->dw.norm_b = upload(w->norm_b, D);
    v->dblk = (VitBlock *)xcalloc((size_t)w->depth, sizeof(VitBlock));
    for (int l = 0; l < w->depth; l++) {
        const VitBlock *b = &w->blk[l];
        VitBlock *o = &v->dblk[l];
        o->ln1_w = upload(b->ln1_w, D), o->ln1_b = upload(b->ln1_b, D);
        o->wq = upload(b->wq, D * D), o->wk = upload(b->wk, D * D), o->wv = upload(b->wv, D * D);
        o->wo = upload(b->wo, D * D);
        o->bq = upload(b->bq, D), o->bk = upload(b->bk, D), o->bv = upload(b->bv, D), o->bo = upload(b->bo, D);
        o->ls1 = upload(b->ls1, D), o->ls2 = upload(b->ls2, D);
        o->ln2_w = upload(b->ln2_w, D), o->ln2_b = upload(b->ln2_b, D);
        o->w1 = upload(b->w1, F * D), o->b1 = upload(b->b1, F);
        o->w2 = upload(b->w2, D * F), o->b2 = upload(b->b2, D);
    }
    v->dw.blk = v->dblk;
    cudaCheck(cudaStreamCreate(&v->st));
    cublasCheck(cublasCreate(&v->blas));
    cublasCheck(cublasSetStream(v->blas, v->st));
    v->compute = opt->math == VIT_MATH_TF32   ? CUBLAS_COMPUTE_32F_FAST_TF32
                 : opt->math == VIT_MATH_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                              : CUBLAS_COMPUTE_32F;
    return v;
}

static void free_dev(const void *p) {
    if (p) cudaCheck(cudaFree((void *)p));
}

extern "C" void vit_cuda_free(VitCuda *v) {
    if (!v) return;
    free_dev(v->dw.patch_w), free_dev(v->dw.patch_b), free_dev(v->dw.cls), free_dev(v->dw.pos);
    free_dev(v->dw.norm_w), free_dev(v->dw.norm_b);
    for (int l = 0; l < v->w.depth; l++) {
        const VitBlock *o = &v->dblk[l];
        const float *t[] = {o->ln1_w, o->ln1_b, o->wq, o->wk, o->wv, o->wo, o->bq,    o->bk,    o->bv,
                            o->bo,    o->ls1,   o->ls2, o->ln2_w, o->ln2_b, o->w1, o->b1, o->w2, o->b2};
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) free_dev(t[i]);
    }
    free(v->dblk);
    float *ws[] = {v->pos, v->x, v->h, v->att, v->qkv, v->mlp, v->cols, v->scores, v->pix, v->out};
    for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) free_dev(ws[i]);
    cublasDestroy(v->blas);
    cudaStreamDestroy(v->st);
    free(v);
}

// The position table and the workspace for clips of T_in frames of S px.
static void prepare(VitCuda *v, int T_in, int S, const BackboneShape *sh, int B, int n) {
    const size_t D = (size_t)v->w.D;
    if (v->T_in != T_in || v->S != S) {
        float *tab = vit_pos_table(&v->w, &v->opt, T_in, S);
        const size_t rows = v->w.videomae ? (size_t)sh->T * sh->N : 1 + (size_t)sh->N;
        free_dev(v->pos);
        v->pos = (float *)upload(tab, rows * D);
        free(tab);
        v->T_in = T_in, v->S = S;
    }
    const size_t rows = (size_t)B * n, cols = (size_t)sh->T * sh->N * 3 * v->w.kt * v->w.p * v->w.p;
    if (rows > v->cap_rows) { // the token buffers, all of rows tokens
        float **bufs[] = {&v->x, &v->h, &v->att, &v->qkv, &v->mlp};
        const size_t width[] = {D, D, D, 3 * D, (size_t)v->w.F};
        for (int i = 0; i < 5; i++) {
            size_t had = 0; // a new size for each
            grow(bufs[i], &had, rows * width[i]);
        }
        v->cap_rows = rows;
    }
    grow(&v->cols, &v->cap_cols, cols);
    grow(&v->scores, &v->cap_scores, (size_t)v->w.NH * n * n);
    grow(&v->pix, &v->cap_pix, (size_t)T_in * 3 * S * S);
    grow(&v->out, &v->cap_out, (size_t)sh->T * sh->N * D);
}

extern "C" void vit_cuda_forward(VitCuda *v, const float *pixels, int clips, int T_in, int S, const int *layers,
                                 int n_layers, float *const *out) {
    const BackboneShape sh = vit_weights_shape(&v->w, T_in, S);
    const int D = v->w.D, skip = v->w.videomae ? 0 : 1; // DINOv2 drops CLS
    const int B = v->w.videomae ? 1 : sh.T;            // sequences per clip
    const int n = v->w.videomae ? sh.T * sh.N : 1 + sh.N;
    const size_t clip_in = (size_t)T_in * 3 * S * S, clip_out = (size_t)sh.T * sh.N * D;
    prepare(v, T_in, S, &sh, B, n);
    int last = -1;
    for (int j = 0; j < n_layers; j++) last = layers[j] > last ? layers[j] : last;
    for (int c = 0; c < clips; c++) {
        cudaCheck(cudaMemcpyAsync(v->pix, pixels + c * clip_in, sizeof(float) * clip_in, cudaMemcpyHostToDevice,
                                  v->st));
        embed(v, S, &sh);
        for (int l = 0; l <= last; l++) {
            block_forward(v, &v->dblk[l], B, n);
            for (int j = 0; j < n_layers; j++) {
                if (layers[j] != l) continue;
                const size_t n_el = (size_t)B * (n - skip) * D;
                gather_rows_kernel<<<grid_for(n_el, ELEM_THREADS), ELEM_THREADS, 0, v->st>>>(v->out, v->x, B, n, skip,
                                                                                            D);
                cudaCheckLaunch("gather_rows_kernel");
                if (v->opt.final_norm) // in place, row by row
                    layernorm(v, v->out, v->out, v->dw.norm_w, v->dw.norm_b, B * (n - skip));
                cudaCheck(cudaMemcpyAsync(out[j] + c * clip_out, v->out, sizeof(float) * clip_out,
                                          cudaMemcpyDeviceToHost, v->st));
            }
        }
        cudaCheck(cudaStreamSynchronize(v->st));
    }
}
