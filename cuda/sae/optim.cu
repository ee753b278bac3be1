// optim.cu — optim_step on the GPU (sae_cuda.h), the twin of
// src/sae/optim.c: Adam with bias correction and warm-up on the encoder and
// b_dec element by element; for each decoder row (one block per row), the
// projection of its gradient off the atom, Adam, and renormalization to unit
// length.
//
// In:  device flat buffers params, grads, m1, m2 (sae_carve layout), step t.
// Out: params, m1, m2 updated in place; the decoder rows of grads projected
//      (as on the CPU). Scalars (learning rate, bias corrections) are
//      computed on the host exactly as optim_step does.
#include <math.h>

#include "base/cuda_check.h"
#include "base/reduce.cuh"

extern "C" {
#include "stsae/sae/sae_cuda.h"
}

enum { DEC_THREADS = 128 };

__device__ __forceinline__ void adam_one(float *p, const float *g, float *m1, float *m2, size_t i, float b1, float b2,
                                         float step, float isc2, float eps) {
    float mi = b1 * m1[i] + (1.0f - b1) * g[i];
    float vi = b2 * m2[i] + (1.0f - b2) * g[i] * g[i];
    m1[i] = mi;
    m2[i] = vi;
    p[i] -= step * mi / (sqrtf(vi) * isc2 + eps);
}

__global__ void adam_range_kernel(float *p, const float *g, float *m1, float *m2, size_t n, float b1, float b2,
                                  float step, float isc2, float eps) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        adam_one(p, g, m1, m2, i, b1, b2, step, isc2, eps);
}

// One block per decoder row j (offset o = j * d into the decoder arrays).
__global__ void decoder_adam_kernel(float *D, float *gD, float *m1, float *m2, int d, float b1, float b2, float step,
                                    float isc2, float eps, int project, int renorm) {
    const size_t o = (size_t)blockIdx.x * d;
    float *w = D + o, *g = gD + o;
    if (project) {
        double gw = 0.0, ww = 0.0;
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            gw += (double)g[i] * w[i];
            ww += (double)w[i] * w[i];
        }
        gw = block_sum(gw);
        ww = block_sum(ww);
        if (ww > 0.0) {
            const float c = (float)(gw / ww);
            for (int i = threadIdx.x; i < d; i += blockDim.x) g[i] -= c * w[i];
        }
    }
    for (int i = threadIdx.x; i < d; i += blockDim.x) adam_one(w, g, m1 + o, m2 + o, (size_t)i, b1, b2, step, isc2, eps);
    if (renorm) {
        double ww = 0.0;
        for (int i = threadIdx.x; i < d; i += blockDim.x) ww += (double)w[i] * w[i];
        ww = block_sum(ww);
        if (ww > 0.0) {
            const float inv = (float)(1.0 / sqrt(ww));
            for (int i = threadIdx.x; i < d; i += blockDim.x) w[i] *= inv;
        }
    }
}

static int grid_for(size_t n, int threads) {
    size_t b = (n + threads - 1) / threads;
    return b > 65535 ? 65535 : (int)(b > 0 ? b : 1);
}

extern "C" void optim_step_cuda(const SaeConfig *cfg, const AdamConfig *a, int64_t t, float *params, float *grads,
                                float *m1, float *m2) {
    const int d = cfg->d, m = cfg->m;
    const float b1 = a->beta1, b2 = a->beta2, eps = a->eps;
    const AdamScalars sc = adam_scalars(a, t); // the CPU's own step scalars
    const float step = sc.step, isc2 = sc.isc2;
    const int project = sc.project, renorm = sc.renorm;
    SaeTensors p;
    sae_carve(params, cfg, &p);
    const size_t off_D = (size_t)(p.D - params), off_bdec = (size_t)(p.b_dec - params);
    adam_range_kernel<<<grid_for(off_D, 256), 256>>>(params, grads, m1, m2, off_D, b1, b2, step, isc2, eps);
    cudaCheckLaunch("adam_range_kernel");
    decoder_adam_kernel<<<m, DEC_THREADS>>>(params + off_D, grads + off_D, m1 + off_D, m2 + off_D, d, b1, b2, step,
                                            isc2, eps, project, renorm);
    cudaCheckLaunch("decoder_adam_kernel");
    adam_range_kernel<<<grid_for((size_t)d, 256), 256>>>(params + off_bdec, grads + off_bdec, m1 + off_bdec,
                                                         m2 + off_bdec, (size_t)d, b1, b2, step, isc2, eps);
    cudaCheckLaunch("adam_range_kernel");
    cudaCheck(cudaDeviceSynchronize());
}
