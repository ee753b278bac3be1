// sae_ops.h — launchers shared between the CUDA sources of the step
// (internal to cuda/). Kernels are reached only through these. All run on
// stream st and return without synchronizing.
#ifndef STSAE_CUDA_SAE_OPS_H
#define STSAE_CUDA_SAE_OPS_H

#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "stsae/sae/sae.h"      // SaeReduce
#include "stsae/sae/sae_cuda.h" // SaeCudaWork
}

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
// BatchTopK's threshold: kth_largest_positive (select.h) of the n_el floats
// at a (device, kk >= 1), from the two histograms above, summed over the
// ranks through red (NULL: one process) on the host. Buffers: hist on the
// device, h32 and h64 on the host, SEL_HIST_BINS each. Synchronizes st.
typedef struct {
    unsigned *hist, *h32;
    int64_t *h64;
} SelHistBufs;
float kth_largest_positive_cuda(const float *a, size_t n_el, int64_t kk, const SaeReduce *red, const SelHistBufs *b,
                                cudaStream_t st);
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

// ---- the step's per-token and per-latent kernels (sae.cu: each kernel's comment
// there says what it computes; the harnesses of dev/cuda/ check them) ----
// Decode, squared errors and gradients of n tokens with codes (start, count,
// idx, val) in latent order: xhat = b_dec + sum z_j D_j (xhat_h over j < mh);
// sq / sqh [n] the rows' squared errors; g [n, d] = gs (xhat - x), gsum =
// g + gsh (xhat_h - x) (mh > 0), e = x - xhat (not NULL: AuxK's residual);
// zgrad per entry D_j . (j < mh ? gsum : g).
void launch_decode_loss(const int *start, const int *count, const int32_t *idx, const float *val, const float *D,
                        const float *b_dec, const float *x, int n, int d, int mh, float gs, float gsh, float *g,
                        float *gsum, float *e, float *zgrad, double *sq, double *sqh, cudaStream_t st);
// AuxK's: ehat = sum zaux_j D_j; sq [n] = ||e - ehat||^2; e [n, d] becomes
// s (ehat - e); zgrad per entry D_j . (the new e).
void launch_aux_loss(const int *start, const int *count, const int32_t *idx, const float *val, const float *D, int n,
                     int d, float s, float *e, float *zgrad, double *sq, cudaStream_t st);
// Per latent j < m from the latent-major index of the codes (a_col [m + 1]
// into a_ent, slot positions in token order; a_row the slots' tokens) and of
// AuxK's (b_*; b_col NULL: none): dW_enc_j = sum dpre (x_r - b_dec), dD_j =
// sum z dL/dxhat_r (g, gsum for j < mh, ga for AuxK's; 0 when frozen),
// db_enc_j = sum dpre (dpre: a_grad / b_grad, z: a_val / b_val).
void launch_latent_grads(const int *a_col, const int32_t *a_ent, const int32_t *a_row, const float *a_val,
                         const float *a_grad, const int *b_col, const int32_t *b_ent, const int32_t *b_row,
                         const float *b_val, const float *b_grad, const float *x, const float *g, const float *gsum,
                         int mh, const float *ga, const float *b_dec, int m, int d, int frozen, float *gW, float *gD,
                         float *gb, cudaStream_t st);

// ---- InfoNCE (infonce.cu, the twin of infonce.h) ----
extern "C" {
#include "stsae/sae/infonce.h" // InfoNceLoss
}
// A batch's codes on the device as the step holds them (sae.cu's DevCodes):
// token r's entries are the slots [start[r], start[r] + count[r]) of idx /
// val / grad, in latent order; grad holds dL/dz.
typedef struct {
    int n; // tokens
    const int *start, *count;
    const int32_t *idx;
    const float *val;
    float *grad;
} DevCodesView;

// The codes of the last sae_step_cuda or sae_cuda_encode (sae.cu), and the
// stream the work runs on (eval.cu's kernels follow it there).
DevCodesView sae_cuda_codes_view(SaeCudaWork *w);
cudaStream_t sae_cuda_stream(const SaeCudaWork *w);

typedef struct InfoNceCudaWork InfoNceCudaWork;
InfoNceCudaWork *infonce_work_create_cuda(int m);
void infonce_work_free_cuda(InfoNceCudaWork *w);
// infonce_step on the device: adds the gradient of the InfoNCE terms of
// cfg->contrast to z->grad and returns the loss terms (global means). red:
// as infonce_step's (host hooks; the codes are exchanged through the host).
// Synchronizes the stream (the group sizes and the exchange go through the host).
void infonce_step_cuda(const SaeConfig *cfg, const SaeBatch *b, const DevCodesView *z, const SaeReduce *red,
                       InfoNceCudaWork *w, InfoNceLoss *out, cudaStream_t st);

#endif
