// tokens.cu — a batch assembled on the device from float16 features resident
// there (sae_cuda.h dev_tokens_f16): train.c keeps a layer's training clips
// in GPU memory and the data loader only names each row's token
// (train_data.h data_batch_sources), so a step moves 8 bytes per token over
// PCIe instead of 4 d.
//
// The conversion is exact and the same as the CPU's (half_to_float, then one
// float multiply by the scale), so a batch assembled here has the bits of the
// one the CPU loader fills.
#include <stdint.h>

#include "base/cuda_check.h"

extern "C" {
#include "stsae/sae/sae_cuda.h"
}

// IEEE binary16 bits to float32, exactly (subnormals, infinities, NaN).
__device__ __forceinline__ float half_bits_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (e == 0) { // zero or subnormal: man * 2^-24, exact in float
        const float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (e == 31) return __uint_as_float(sign | 0x7f800000u | (man << 13));
    return __uint_as_float(sign | ((e + 112u) << 23) | (man << 13));
}

// One thread per value of the batch (n x d), consecutive threads along a row;
// row r from feat's row src[r] (src NULL: row r).
__global__ void tokens_f16_kernel(const uint16_t *feat, const int64_t *src, int64_t n, int d, float scale,
                                  float *x) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * d) return;
    const int64_t row = i / d, col = i % d;
    const float v = half_bits_to_float(feat[(src ? src[row] : row) * (int64_t)d + col]);
    x[i] = scale != 1.0f ? v * scale : v;
}

extern "C" void dev_tokens_f16(const uint16_t *feat, const int64_t *src, int n, int d, float scale, float *x) {
    if (n <= 0) return;
    const int64_t values = (int64_t)n * d;
    tokens_f16_kernel<<<(unsigned)((values + 255) / 256), 256>>>(feat, src, n, d, scale, x);
    cudaCheckLaunch("tokens_f16_kernel");
    cudaCheck(cudaDeviceSynchronize());
}
