// sae_cuda.h — the CUDA twin of the SAE training step (sae.h), of the
// optimizer step (optim.h) and of a clip's evaluation (eval.c), for the CUDA
// build (STSAE_HAVE_CUDA; a build without CUDA has sae_cuda_none.c, whose
// calls die saying so: callers check device_count() > 0 first).
//
// In:  the flat parameters and Adam moments in device memory (the sae_carve
//      layout of the CPU, so sae_carve on a device pointer gives the device
//      tensors), a batch of scaled tokens x [n, d] and the dead-latent mask
//      in device memory.
// Out: the same SaeLosses as sae_step (host struct) and the raw gradients in
//      a device flat buffer of the same layout; optim_step_cuda updates the
//      device parameters and moments in place; the dead-latent clocks
//      (sae_cuda_dead_mask, sae_cuda_fire) stay on the device.
//
// Variants (SaeVariant.cuda in variants.h): all ten. TopK (`standard`,
// `frozen`, `temporal`, `separate`, `raster`), BatchTopK and L_high (the +M
// variants), `sparsemax` and `entmax15` (with L_temp when lambda_t > 0), each
// with AuxK where its row has it; the InfoNCE terms on whole clips or pairs
// (cuda/sae/infonce.cu), their codes exchanged across ranks through red's
// device twins where it has them (comm_device.h: NCCL), else gather_codes /
// return_grad on the host.
//
// Determinism: no floating-point atomics. The kept latents of each token are
// sorted by latent index, the latent-major gradient pass walks each latent's
// entries in token order (a stable radix sort), and every sum is a fixed
// reduction tree (InfoNCE's pairs: sums in the order of a stable sort,
// infonce.cu), so a step gives the same bits run after run on one GPU.
// A tie at the k-th value of a TopK row keeps the lowest latent indices;
// BatchTopK keeps every value equal to its threshold, as the CPU does.
#ifndef STSAE_SAE_CUDA_H
#define STSAE_SAE_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"

// SaeGemmMath (sae.h) on the GPU: TF32 tensor cores (fp32 in and out,
// 10-bit mantissa products), or bf16 copies of x - b_dec and W_enc with fp32
// accumulation (cublasGemmEx).

// Device memory for flat buffers: n floats, zeroed. Dies on failure.
float *dev_alloc_floats(size_t n);
void dev_free(void *p);
void dev_upload(float *dev, const float *host, size_t n);
void dev_download(float *host, const float *dev, size_t n);
// The same for any type: bytes, zeroed; copies of bytes.
void *dev_alloc(size_t bytes);
// Pinned (page-locked) host memory, whose uploads are direct DMAs
// (cudaMallocHost); dev_host_free frees it. Dies on failure.
void *dev_host_alloc(size_t bytes);
void dev_host_free(void *p);
void dev_upload_bytes(void *dev, const void *host, size_t bytes);
void dev_download_bytes(void *host, const void *dev, size_t bytes);

// A batch from float16 features resident on the device (cuda/sae/tokens.cu):
// x[row, :] = float(feat[src[row] * d .. + d)) * scale for rows [0, n); feat
// and src (int64 token rows of feat; NULL: rows 0 .. n - 1, a batch uploaded
// as it is) and x on the device. The same bits as the CPU loader's
// conversion. Synchronous.
void dev_tokens_f16(const uint16_t *feat, const int64_t *src, int n, int d, float scale, float *x);

// The four flat buffers of training, each sae_num_params(cfg) floats on the
// device: parameters, gradients, Adam's first and second moments.
typedef struct {
    size_t n;
    float *params, *grads, *m1, *m2;
} SaeDeviceState;

void sae_device_state_create(SaeDeviceState *s, const SaeConfig *cfg); // all zero
void sae_device_state_free(SaeDeviceState *s);

typedef struct SaeCudaWork SaeCudaWork;
// Scratch (device and host) for batches of up to max_tok tokens of cfg's
// variant, and the cuBLAS handle. Encoder GEMMs run on chunks of at most 4096
// tokens; BatchTopK holds the batch's pre-activations, max_tok * m floats.
// Dies for a variant the CUDA step does not implement, k or k_aux above 512.
// The InfoNCE scratch grows with the batch's overlapping code pairs.
SaeCudaWork *sae_cuda_work_create(const SaeConfig *cfg, int max_tok, SaeGemmMath math);
void sae_cuda_work_free(SaeCudaWork *w);

// sae_step with device pointers: p and grad carved from device flat buffers,
// x [n_tok, d] on the device; dead: a device uint8 [m] (1 = dead; NULL or
// k_aux == 0: no AuxK) as sae_cuda_dead_mask makes it; red's hooks get host
// buffers (the step copies its few global sums and BatchTopK's histograms to
// the host and back; the InfoNCE variants also gather the batch's codes and
// return the candidates' gradients through them, as sae_step does).
// Synchronous: returns with grad complete.
void sae_step_cuda(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *grad, const float *x,
                   const SaeBatch *b, const uint8_t *dead, const SaeReduce *red, SaeCudaWork *w,
                   SaeLosses *out);

// The codes of the last sae_step_cuda on the host (sae_last_codes' twin):
// out made by codes_alloc (grown here as needed); each token's entries in
// latent order.
void sae_cuda_last_codes(SaeCudaWork *w, SparseCodes *out);

// Encode only (sae_encode's twin, for evaluation): the codes of x [n, d]
// (device, n <= the work's max_tok) with cfg's selection, BatchTopK keeping
// a > theta; they stay in w (sae_cuda_last_codes copies them out).
// Synchronous.
void sae_cuda_encode(const SaeConfig *cfg, const SaeTensors *p, const float *x, int n, float theta, SaeCudaWork *w);

// Evaluation on the GPU (eval.c with device: cuda), one clip at a time: what
// the CPU's evaluation computes from a clip's tokens and its encoder, so that
// only the codes (k per token) and a few [d] sums come back to the host,
// where the sparse metrics (clip values, lag-1, EMA smoothing) run.
// In:  the clip's float16 features h [T*N, d] (host, as features_read_clip
//      gives them), the model's scale and BatchTopK threshold theta, device
//      parameters p (sae_carve of a device buffer).
// Out: z, the codes (as sae_encode on the CPU: float16 -> float times scale,
//      the same bits as the CPU's tokens); zu, when not NULL, the union TopK
//      smoothing of z (metrics.h smooth_union_topk, its dot products on the
//      device); xh_mean [d], the token mean of the decode xhat = W_dec z +
//      b_dec over every latent; and, when x_mean is not NULL, the token mean
//      of the scaled tokens x [d] and R²'s sums (r2.h): sse = sum (x - xhat)^2,
//      sx, sxx [d] per channel, in double (sx, sxx summed in token order, as
//      r2_sum_add does).
typedef struct SaeCudaEval SaeCudaEval;
typedef struct {
    SparseCodes *z, *zu;  // made by codes_alloc (grown here)
    float *xh_mean;       // [d]
    float *x_mean;        // [d] or NULL (then no sums)
    double sse, *sx, *sxx; // sx, sxx [d] when x_mean
} SaeCudaClip;
SaeCudaEval *sae_cuda_eval_create(const SaeConfig *cfg, int T, int N);
void sae_cuda_eval_clip(SaeCudaEval *e, const SaeConfig *cfg, const SaeTensors *p, const uint16_t *h, float scale,
                        float theta, SaeCudaClip *out);
void sae_cuda_eval_free(SaeCudaEval *e);

// The dead-latent clocks on the device (the training loop's, SPEC §1 AuxK):
// last_fired [m] int64, the global token count when each latent was last
// kept. sae_cuda_dead_mask writes dead [m] (uint8, 1 where tokens -
// last_fired[j] >= dead_tokens) and returns how many are dead;
// sae_cuda_fire, after a step, sets last_fired[j] = tokens (the count after
// the step) for every latent the step kept for any token of the global batch
// (per-latent counts from the step's latent-major index, summed over the
// ranks when red is given: on the device through red->sum_i64_device where
// it is set, else through red->sum_i64 on the host).
int sae_cuda_dead_mask(SaeCudaWork *w, const int64_t *last_fired, int64_t tokens, int64_t dead_tokens,
                       uint8_t *dead);
void sae_cuda_fire(SaeCudaWork *w, const SaeReduce *red, int64_t tokens, int64_t *last_fired);

// optim_step on device flat buffers (decoder projection, Adam, renormalization).
void optim_step_cuda(const SaeConfig *cfg, const AdamConfig *a, int64_t t, float *params, float *grads,
                     float *m1, float *m2);

#endif
