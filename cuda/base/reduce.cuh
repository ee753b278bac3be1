// reduce.cuh — the block-wide sum the CUDA kernels share: warp shuffles,
// then every thread adds the warp sums in warp order, so the result is the
// same bits on every run and every thread gets it. blockDim.x must be a
// multiple of 32; every thread of the block must call it.
#ifndef STSAE_REDUCE_CUH
#define STSAE_REDUCE_CUH

__device__ __forceinline__ double block_sum(double v) {
    __shared__ double part[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads(); // a previous call's readers are done with part
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    double t = 0.0;
    for (int q = 0; q < (int)(blockDim.x >> 5); q++) t += part[q];
    return t;
}

#endif
