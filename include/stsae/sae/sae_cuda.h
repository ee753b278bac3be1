// sae_cuda.h — the CUDA twin of the SAE training step (sae.h) and of the
// optimizer step (optim.h), for the CUDA build only (STSAE_HAVE_CUDA; no
// CPU-only stub: callers check device_count() > 0 first).
//
// In:  the flat parameters and Adam moments in device memory (the sae_carve
//      layout of the CPU, so sae_carve on a device pointer gives the device
//      tensors), a batch of scaled tokens x [n, d] in device memory.
// Out: the same SaeLosses as sae_step (host struct) and the raw gradients in
//      a device flat buffer of the same layout; optim_step_cuda updates the
//      device parameters and moments in place.
//
// Variants: `standard` TopK and `frozen` (TopK, no decoder gradient). AuxK is
// not implemented: sae_step_cuda dies if dead latents are given with
// k_aux > 0 (the CPU step's AuxK would be active). BatchTopK (+M), sparsemax,
// entmax-1.5 and the InfoNCE variants die as not implemented.
//
// Determinism: no floating-point atomics. The kept latents of each token are
// sorted by latent index, the latent-major gradient pass walks each latent's
// entries in token order (a stable radix sort), and every sum is a fixed
// reduction tree, so a step gives the same bits run after run on one GPU.
// Ties at the k-th value of a TopK row (measure zero on real data) are
// broken in no fixed order.
#ifndef STSAE_SAE_CUDA_H
#define STSAE_SAE_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"

// Math of the encoder GEMM (the only dense product): plain fp32, TF32 tensor
// cores (fp32 in and out, 10-bit mantissa products), or bf16 copies of
// x - b_dec and W_enc with fp32 accumulation (cublasGemmEx).
typedef enum { SAE_GEMM_FP32, SAE_GEMM_TF32, SAE_GEMM_BF16 } SaeGemmMath;

// Device memory for flat buffers: n floats, zeroed. Dies on failure.
float *dev_alloc_floats(size_t n);
void dev_free(void *p);
void dev_upload(float *dev, const float *host, size_t n);
void dev_download(float *host, const float *dev, size_t n);

// The four flat buffers of training, each sae_num_params(cfg) floats on the
// device: parameters, gradients, Adam's first and second moments.
typedef struct {
    size_t n;
    float *params, *grads, *m1, *m2;
} SaeDeviceState;

void sae_device_state_create(SaeDeviceState *s, const SaeConfig *cfg); // all zero
void sae_device_state_free(SaeDeviceState *s);

typedef struct SaeCudaWork SaeCudaWork;
// Scratch (device and pinned host) for batches of up to max_tok tokens, and
// the cuBLAS handle. Encoder GEMMs run on chunks of at most 4096 tokens.
SaeCudaWork *sae_cuda_work_create(const SaeConfig *cfg, int max_tok, SaeGemmMath math);
void sae_cuda_work_free(SaeCudaWork *w);

// sae_step with device pointers: p and grad carved from device flat buffers,
// x [n_tok, d] on the device; dead is a host array (or NULL) as for sae_step;
// red's hooks get host buffers (the step copies its few global sums to the
// host and back). Synchronous: returns with grad complete.
void sae_step_cuda(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *grad, const float *x,
                   const SaeBatch *b, const uint8_t *dead, const SaeReduce *red, SaeCudaWork *w,
                   SaeLosses *out);

// optim_step on device flat buffers (decoder projection, Adam, renormalization).
void optim_step_cuda(const SaeConfig *cfg, const AdamConfig *a, int64_t t, float *params, float *grads,
                     float *m1, float *m2);

#endif
