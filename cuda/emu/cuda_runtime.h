// cuda_runtime.h (emulation) — the CUDA runtime names the project's .cu files
// use, mapped to HIP-CPU's (stsae_emu.h says how kernels run on the CPU).
//
// In:  cudaMalloc, cudaMemcpy(Async), streams, events, errors, device queries
//      as the sources write them.
// Out: the same calls on HIP-CPU: device memory is host memory (cudaMalloc'd
//      bytes start as 0xFF, as garbage would), streams are HIP-CPU's
//      asynchronous queues (a result read before the stream is synchronized
//      can be stale, as on a GPU; stream 0 is one of ours with the legacy
//      default stream's ordering, stsae_emu.h says why), errors keep CUDA's
//      numbers. One emulated device; cudaRuntimeGetVersion reports 0 (no CUDA
//      runtime is involved).
// Only what the sources need and a few neighbours are mapped: a CUDA call
// missing here fails to compile, naming itself.
#ifndef STSAE_EMU_CUDA_RUNTIME_H
#define STSAE_EMU_CUDA_RUNTIME_H

#include "stsae_emu.h"

using cudaError_t = hipError_t;
using cudaStream_t = hipStream_t;
using cudaEvent_t = hipEvent_t;
using cudaMemcpyKind = hipMemcpyKind;
using cudaDeviceProp = hipDeviceProp_t;

#define cudaSuccess hipSuccess
#define cudaErrorInvalidValue hipErrorInvalidValue
#define cudaErrorMemoryAllocation hipErrorOutOfMemory
#define cudaErrorInitializationError hipErrorNotInitialized
#define cudaErrorInvalidConfiguration hipErrorInvalidConfiguration
#define cudaErrorInsufficientDriver hipErrorInsufficientDriver
#define cudaErrorNoDevice hipErrorNoDevice
#define cudaErrorInvalidDevice hipErrorInvalidDevice
#define cudaErrorNotReady hipErrorNotReady
#define cudaErrorIllegalAddress hipErrorIllegalAddress
#define cudaErrorLaunchOutOfResources hipErrorLaunchOutOfResources
#define cudaErrorLaunchFailure hipErrorLaunchFailure
#define cudaErrorNotSupported hipErrorNotSupported
#define cudaErrorUnknown hipErrorUnknown

#define cudaMemcpyHostToHost hipMemcpyHostToHost
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaMemcpyDefault hipMemcpyDefault
#define cudaStreamDefault hipStreamDefault
#define cudaStreamNonBlocking hipStreamNonBlocking
#define cudaEventDefault hipEventDefault
#define cudaEventDisableTiming hipEventDisableTiming

#define cudaGetErrorString hipGetErrorString
#define cudaGetErrorName hipGetErrorName
#define cudaGetLastError hipGetLastError
#define cudaPeekAtLastError hipPeekAtLastError
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDevice hipGetDevice
#define cudaSetDevice hipSetDevice
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaMemGetInfo hipMemGetInfo
#define cudaDeviceSynchronize hipDeviceSynchronize
#define cudaDeviceReset hipDeviceReset
#define cudaMallocHost hipHostMalloc
#define cudaFreeHost hipHostFree
#define cudaMemcpy hipMemcpy
#define cudaMemset hipMemset
#define cudaStreamCreate hipStreamCreate
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamDestroy hipStreamDestroy
#define cudaEventCreate hipEventCreate
#define cudaEventCreateWithFlags hipEventCreateWithFlags
#define cudaEventDestroy hipEventDestroy
#define cudaEventSynchronize hipEventSynchronize
#define cudaEventElapsedTime hipEventElapsedTime

// Stream 0 is a stream of the emulation's (stsae_emu.h, enqueue_stream).
inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, std::size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t st = nullptr) {
    return hipMemcpyAsync(dst, src, bytes, kind, stsae_emu::enqueue_stream(st));
}
inline cudaError_t cudaMemsetAsync(void *dst, int value, std::size_t bytes, cudaStream_t st = nullptr) {
    return hipMemsetAsync(dst, value, bytes, stsae_emu::enqueue_stream(st));
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t st = nullptr) {
    return hipEventRecord(e, stsae_emu::enqueue_stream(st));
}
inline cudaError_t cudaStreamWaitEvent(cudaStream_t st, cudaEvent_t e, unsigned int flags) {
    return hipStreamWaitEvent(stsae_emu::enqueue_stream(st), e, flags);
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t st) {
    return st ? hipStreamSynchronize(st) : hipDeviceSynchronize();
}
inline cudaError_t cudaStreamQuery(cudaStream_t st) { return hipStreamQuery(st ? st : stsae_emu::default_stream()); }

// Device memory: host memory whose bytes start as 0xFF (never zero by luck).
// Each block is recorded (start -> bytes) so that the NCCL stand-in (nccl.h)
// can check an element count against the allocation it reads.
namespace stsae_emu {
inline std::mutex &allocations_mutex() {
    static std::mutex m;
    return m;
}
inline std::map<std::uintptr_t, std::size_t> &allocations() {
    static std::map<std::uintptr_t, std::size_t> a;
    return a;
}
// The bytes from p to the end of the cudaMalloc'd block that holds p; 0 when
// no block holds it (a host pointer, or memory already freed).
inline std::size_t device_bytes_from(const void *p) {
    const std::uintptr_t u = reinterpret_cast<std::uintptr_t>(p);
    std::lock_guard<std::mutex> lock(allocations_mutex());
    auto it = allocations().upper_bound(u);
    if (it == allocations().begin()) return 0;
    --it;
    return u < it->first + it->second ? it->first + it->second - u : 0;
}
} // namespace stsae_emu

inline cudaError_t cudaMalloc(void **p, std::size_t bytes) {
    const hipError_t e = hipMalloc(p, bytes);
    if (e != hipSuccess) return e;
    if (bytes > 0 && !*p) return hipErrorOutOfMemory; // HIP-CPU does not check malloc
    if (bytes > 0) {
        std::memset(*p, 0xFF, bytes);
        std::lock_guard<std::mutex> lock(stsae_emu::allocations_mutex());
        stsae_emu::allocations()[reinterpret_cast<std::uintptr_t>(*p)] = bytes;
    }
    return hipSuccess;
}
inline cudaError_t cudaFree(void *p) {
    if (p) {
        std::lock_guard<std::mutex> lock(stsae_emu::allocations_mutex());
        stsae_emu::allocations().erase(reinterpret_cast<std::uintptr_t>(p));
    }
    return hipFree(p);
}
template <typename T>
inline cudaError_t cudaMalloc(T **p, std::size_t bytes) {
    return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}

inline cudaError_t cudaRuntimeGetVersion(int *v) {
    if (!v) return hipErrorInvalidValue;
    *v = 0;
    return hipSuccess;
}
inline cudaError_t cudaDriverGetVersion(int *v) { return cudaRuntimeGetVersion(v); }

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

// The opt-in for more than 48 KiB of dynamic shared memory (checked at launch).
template <typename... P>
inline cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return hipErrorNotSupported;
    if (value < 0 || (std::size_t)value > stsae_emu::kMaxDynamicShared) return hipErrorInvalidValue;
    std::lock_guard<std::mutex> lock(stsae_emu::attr_mutex());
    stsae_emu::max_dynamic_shared()[reinterpret_cast<const void *>(kernel)] = (std::size_t)value;
    return hipSuccess;
}

#endif
