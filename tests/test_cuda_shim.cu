// test_cuda_shim.cu — the CUDA semantics the emulation (cuda/emu/) must
// reproduce, checked against expectations written from CUDA's documentation:
// run emulated (cuda_shim_emu, label cuda-emu) it tests the shim; run on a
// device (cuda_shim, label cuda, CUDA builds) it shows that the expectations
// are CUDA's own, so the two runs agreeing is what makes the cuda-emu route
// trustworthy.
//
// In:  nothing (small fixed cases). Out: one line per failed check, a summary,
//      exit 0 / 1; 77 (skipped) on a CUDA build without a device.
// Checks: __shfl_{down,up,xor,}_sync at widths 32/16/8, in a full and in a
//      partial (8-lane) warp, and in a 2-D block (warps follow x-fastest
//      linear indices); warps that shuffle different numbers of times before
//      a __syncthreads; __ballot_sync; launch errors (1025 threads, an empty
//      grid, 64 KiB of dynamic shared memory before and after
//      cudaFuncSetAttribute); cub::DeviceRadixSort::SortPairs stable on a bit
//      range and on signed keys, its too-small temp storage error; bf16
//      rounding to nearest even; cublasSgemm's lda check; a strided batched
//      cublasGemmStridedBatchedEx member by member; stream 0 in issue
//      order, and in order with a blocking stream. Emulation only: the
//      0xFF fill of unwritten dynamic shared memory, TF32 operand rounding.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cub/device/device_radix_sort.cuh>
#include <vector>

static int fails, checks;
#define CHECK(c, ...)                                                                                                  \
    do {                                                                                                               \
        checks++;                                                                                                      \
        if (!(c)) {                                                                                                    \
            fails++;                                                                                                   \
            printf("FAIL line %d: ", __LINE__);                                                                        \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
        }                                                                                                              \
    } while (0)

__global__ void shfl_kernel(int *out, int width) {
    const int t = threadIdx.x, v = 1000 + t;
    out[t * 4 + 0] = __shfl_down_sync(0xffffffffu, v, 3, width);
    out[t * 4 + 1] = __shfl_up_sync(0xffffffffu, v, 2, width);
    out[t * 4 + 2] = __shfl_xor_sync(0xffffffffu, v, 5, width);
    out[t * 4 + 3] = __shfl_sync(0xffffffffu, v, 7, width);
}

// warp w shuffles w times, then the block meets at a barrier
__global__ void diverge_kernel(int *out) {
    __shared__ int s[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    int a = lane;
    for (int r = 0; r < warp; r++) a += __shfl_xor_sync(0xffffffffu, a, 1 << (r % 5));
    if (lane == 0) s[warp] = a;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = s[(warp + 1) % n_warps];
    const unsigned b = __ballot_sync(0xffffffffu, lane % 3 == 0);
    if (lane == 0) out[gridDim.x * blockDim.x + blockIdx.x * n_warps + warp] = (int)b;
}

__global__ void dyn_kernel(float *out, int n) {
    extern __shared__ float sh[];
    if (threadIdx.x < n) sh[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = sh[threadIdx.x];
}

__global__ void two_d_kernel(int *out) {
    const int lin = threadIdx.x + blockDim.x * threadIdx.y;
    out[lin] = __shfl_down_sync(0xffffffffu, lin, 1);
}

static void check_shuffles(int *d) {
    std::vector<int> h(4096); // as large as d
    for (int width : {32, 16, 8})
        for (int nt : {64, 40}) { // 40: a second warp of 8 lanes
            shfl_kernel<<<1, nt>>>(d, width);
            cudaMemcpy(h.data(), d, sizeof(int) * nt * 4, cudaMemcpyDeviceToHost);
            for (int t = 0; t < nt; t++) {
                const int lane = t & 31, base = t - lane, seg = lane / width * width, in = lane % width;
                const bool partial = nt - base < 32;
                const int e0 = in + 3 < width ? 1000 + t + 3 : 1000 + t;
                const int e1 = in >= 2 ? 1000 + t - 2 : 1000 + t;
                const int x = lane ^ 5, e2 = x / width > lane / width ? 1000 + t : 1000 + base + x;
                const int e3 = 1000 + base + seg + 7 % width;
                // a lane that reads a lane the partial warp does not have: undefined in CUDA, not checked
                const int hi = nt - base;
                const bool ok = (e0 - 1000 - base >= hi || h[t * 4] == e0) && (h[t * 4 + 1] == e1) &&
                                (e2 - 1000 - base >= hi || h[t * 4 + 2] == e2) &&
                                (e3 - 1000 - base >= hi || h[t * 4 + 3] == e3);
                CHECK(ok, "shuffles, width %d, %d threads%s, thread %d: %d %d %d %d, expected %d %d %d %d", width, nt,
                      partial ? " (partial warp)" : "", t, h[t * 4], h[t * 4 + 1], h[t * 4 + 2], h[t * 4 + 3], e0, e1,
                      e2, e3);
            }
        }
    two_d_kernel<<<1, dim3(16, 4)>>>(d);
    cudaMemcpy(h.data(), d, sizeof(int) * 64, cudaMemcpyDeviceToHost);
    for (int l = 0; l < 64; l++)
        CHECK(h[l] == ((l & 31) < 31 ? l + 1 : l), "2-D block (16 x 4), linear thread %d: %d", l, h[l]);

    const int blocks = 3, threads = 128, n_warps = threads / 32;
    diverge_kernel<<<blocks, threads>>>(d);
    cudaMemcpy(h.data(), d, sizeof(int) * (blocks * threads + blocks * n_warps), cudaMemcpyDeviceToHost);
    unsigned ballot = 0;
    for (int l = 0; l < 32; l++) ballot |= (l % 3 == 0 ? 1u : 0u) << l;
    for (int w = 0; w < n_warps; w++) {
        std::vector<int> a(32);
        for (int l = 0; l < 32; l++) a[l] = l;
        for (int r = 0; r < w; r++) {
            std::vector<int> b(32);
            for (int l = 0; l < 32; l++) b[l] = a[l] + a[l ^ (1 << (r % 5))];
            a = b;
        }
        const int reader = (w + n_warps - 1) % n_warps; // warp that reads warp w's sum
        for (int bl = 0; bl < blocks; bl++) {
            CHECK(h[bl * threads + reader * 32 + 5] == a[0], "divergent warps: block %d, warp %d's sum %d, expected %d",
                  bl, w, h[bl * threads + reader * 32 + 5], a[0]);
            CHECK((unsigned)h[blocks * threads + bl * n_warps + w] == ballot, "ballot: block %d, warp %d: 0x%08x", bl,
                  w, (unsigned)h[blocks * threads + bl * n_warps + w]);
        }
    }
}

// One link of a chain: it finds the count its predecessor left, or poisons it.
__global__ void link_kernel(int *count, int i) {
    if (threadIdx.x == 0 && blockIdx.x == 0) *count = *count == i ? i + 1 : -1000000;
}

// Work on stream 0 runs in issue order, and an asynchronous copy and the
// synchronization after it see the work before them (HIP-CPU's own null
// stream runs its tasks on two threads at once); the legacy stream 0 also
// orders itself with a blocking stream of ours: links alternating between
// the two run in turn. (The old emulation failed the first case 18 times in
// 20 runs on 2 cores, the second always.)
static void check_stream_order(int *d) {
    enum { LINKS = 1000, EVERY = 50 };
    cudaStream_t st;
    CHECK(cudaStreamCreate(&st) == cudaSuccess, "cudaStreamCreate");
    for (int mixed = 0; mixed < 2; mixed++) {
        std::vector<int> seen(LINKS / EVERY, -1);
        CHECK(cudaMemset(d, 0, sizeof(int)) == cudaSuccess, "cudaMemset");
        for (int i = 0; i < LINKS; i++) {
            const cudaStream_t s = mixed && i % 2 ? st : 0;
            link_kernel<<<4, 256, 0, s>>>(d, i); // 1024 fibers: the next is issued while one runs
            if ((i + 1) % EVERY == 0)
                cudaMemcpyAsync(&seen[(i + 1) / EVERY - 1], d, sizeof(int), cudaMemcpyDeviceToHost, s);
        }
        CHECK(cudaStreamSynchronize(0) == cudaSuccess && cudaStreamSynchronize(st) == cudaSuccess,
              "cudaStreamSynchronize");
        int bad = 0;
        for (int j = 0; j < LINKS / EVERY; j++) bad += seen[j] != (j + 1) * EVERY;
        CHECK(bad == 0, "%s: %d of %d copies saw another count (first %d, last %d; want %d, %d)",
              mixed ? "links alternating between stream 0 and a stream" : "links on stream 0", bad, LINKS / EVERY,
              seen[0], seen[LINKS / EVERY - 1], EVERY, LINKS);
    }
    cudaStreamDestroy(st);
}

static void check_launches(float *f) {
    cudaGetLastError();
    dyn_kernel<<<2, 64, 64 * sizeof(float)>>>(f, 60);
    CHECK(cudaGetLastError() == cudaSuccess, "a good launch");
    std::vector<float> h(128);
    cudaMemcpy(h.data(), f, sizeof(float) * 128, cudaMemcpyDeviceToHost);
    CHECK(h[5] == 5.0f && h[64 + 59] == 59.0f, "dynamic shared memory: %g %g", h[5], h[64 + 59]);
#ifdef STSAE_CUDA_EMU
    CHECK(std::isnan(h[62]) && std::isnan(h[64 + 63]), "unwritten dynamic shared memory reads as NaN: %g %g", h[62],
          h[64 + 63]);
#endif
    dyn_kernel<<<1, 1025>>>(f, 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "1025 threads per block: invalid configuration");
    dyn_kernel<<<0, 32>>>(f, 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "an empty grid: invalid configuration");
    dyn_kernel<<<1, 32, 64 * 1024>>>(f, 1);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue, "64 KiB of dynamic shared memory without the opt-in");
    CHECK(cudaFuncSetAttribute(dyn_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess,
          "cudaFuncSetAttribute");
    dyn_kernel<<<1, 32, 64 * 1024>>>(f, 1);
    CHECK(cudaGetLastError() == cudaSuccess, "64 KiB of dynamic shared memory after the opt-in");
    cudaDeviceSynchronize();
}

static void check_sort(void) {
    const int n = 1000;
    std::vector<int> k(n), v(n);
    unsigned s = 1;
    for (int i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        k[i] = (int)(s >> 8) - (1 << 22); // negative and positive
        v[i] = i;
    }
    int *kd, *ko, *vd, *vo;
    cudaMalloc(&kd, sizeof(int) * n);
    cudaMalloc(&ko, sizeof(int) * n);
    cudaMalloc(&vd, sizeof(int) * n);
    cudaMalloc(&vo, sizeof(int) * n);
    cudaMemcpy(kd, k.data(), sizeof(int) * n, cudaMemcpyHostToDevice);
    cudaMemcpy(vd, v.data(), sizeof(int) * n, cudaMemcpyHostToDevice);
    for (int bits : {5, 32}) {
        size_t bytes = 0;
        cub::DeviceRadixSort::SortPairs(nullptr, bytes, kd, ko, vd, vo, n, 0, bits);
        void *tmp;
        cudaMalloc(&tmp, bytes);
        size_t small = bytes - 1;
        CHECK(cub::DeviceRadixSort::SortPairs(tmp, small, kd, ko, vd, vo, n, 0, bits) == cudaErrorInvalidValue,
              "radix sort with too little temporary storage");
        CHECK(cub::DeviceRadixSort::SortPairs(tmp, bytes, kd, ko, vd, vo, n, 0, bits) == cudaSuccess, "radix sort");
        std::vector<int> hk(n), hv(n), order(n);
        cudaMemcpy(hk.data(), ko, sizeof(int) * n, cudaMemcpyDeviceToHost);
        cudaMemcpy(hv.data(), vo, sizeof(int) * n, cudaMemcpyDeviceToHost);
        for (int i = 0; i < n; i++) order[i] = i;
        auto key = [&](int i) { return bits == 32 ? (long long)k[i] : (long long)(k[i] & 31); };
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key(a) < key(b); });
        int bad = 0;
        for (int i = 0; i < n; i++) bad += hv[i] != order[i] || hk[i] != k[order[i]];
        CHECK(bad == 0, "radix sort on bits [0, %d): %d entries differ from a stable sort", bits, bad);
        cudaFree(tmp);
    }
    cudaFree(kd);
    cudaFree(ko);
    cudaFree(vd);
    cudaFree(vo);
}

static void check_numbers(void) {
    CHECK(__bfloat162float(__float2bfloat16(1.0f + 1.0f / 256)) == 1.0f, "bf16: a tie rounds to even (down)");
    CHECK(__bfloat162float(__float2bfloat16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256, "bf16: a tie rounds to even (up)");
    CHECK(__bfloat162float(__float2bfloat16(-2.5f)) == -2.5f, "bf16: exact values stay");
    float *A, *B, *C;
    cudaMalloc(&A, sizeof(float) * 4);
    cudaMalloc(&B, sizeof(float) * 4);
    cudaMalloc(&C, sizeof(float) * 4);
    const float a = 1.0f + 1.0f / 4096, b = 1.0f, one = 1.0f, zero = 0.0f;
    float c = 0.0f;
    cudaMemcpy(A, &a, sizeof a, cudaMemcpyHostToDevice);
    cudaMemcpy(B, &b, sizeof b, cudaMemcpyHostToDevice);
    cublasHandle_t h;
    cublasCreate(&h);
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, A, 1, B, 1, &zero, C, 1) == CUBLAS_STATUS_SUCCESS,
          "sgemm");
    cudaMemcpy(&c, C, sizeof c, cudaMemcpyDeviceToHost);
    CHECK(c == a, "fp32 sgemm keeps 23 bits: %.9g", c);
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 1, &one, A, 1, B, 1, &zero, C, 2) ==
              CUBLAS_STATUS_INVALID_VALUE,
          "sgemm with lda < m: CUBLAS_STATUS_INVALID_VALUE");
#ifdef STSAE_CUDA_EMU // cuBLAS may pick a non-tensor-core kernel for 1 x 1 x 1
    cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH);
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, A, 1, B, 1, &zero, C, 1);
    cudaMemcpy(&c, C, sizeof c, cudaMemcpyDeviceToHost);
    CHECK(c == 1.0f, "TF32 sgemm rounds operands to 10 bits: %.9g", c);
#endif
    // strided batched: member i is A[i] B[i] (1 x 1 x 1, strides 1)
    const float a2[2] = {2.0f, 3.0f}, b2[2] = {5.0f, 7.0f};
    float c2[2] = {0.0f, 0.0f};
    cudaMemcpy(A, a2, sizeof a2, cudaMemcpyHostToDevice);
    cudaMemcpy(B, b2, sizeof b2, cudaMemcpyHostToDevice);
    CHECK(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, A, CUDA_R_32F, 1, 1, B, CUDA_R_32F,
                                     1, 1, &zero, C, CUDA_R_32F, 1, 1, 2, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
          "strided batched gemm");
    cudaMemcpy(c2, C, sizeof c2, cudaMemcpyDeviceToHost);
    CHECK(c2[0] == 10.0f && c2[1] == 21.0f, "strided batched gemm: member by member (%g, %g)", c2[0], c2[1]);
    cublasDestroy(h);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
}

int main(void) {
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
        cudaGetLastError();
        printf("no CUDA device: skipped\n");
        return 77;
    }
    int *d;
    float *f;
    cudaMalloc(&d, sizeof(int) * 4096);
    cudaMalloc(&f, sizeof(float) * 256);
    check_shuffles(d);
    check_launches(f);
    check_sort();
    check_numbers();
    check_stream_order(d);
    cudaFree(d);
    cudaFree(f);
    printf("%d passed, %d failed\n", checks - fails, fails);
    return fails ? 1 : 0;
}
