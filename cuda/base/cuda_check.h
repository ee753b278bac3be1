// cuda_check.h — error checks for the CUDA sources: each failing call dies
// naming the call, the file and the line, and the CUDA / cuBLAS error.
#ifndef STSAE_CUDA_CHECK_H
#define STSAE_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "stsae/base/common.h"
}

#define cudaCheck(call)                                                                                  \
    do {                                                                                                 \
        cudaError_t err_ = (call);                                                                       \
        if (err_ != cudaSuccess)                                                                         \
            stsae_die_at(__FILE__, __LINE__, "%s: CUDA error %d (%s)", #call, (int)err_,                \
                         cudaGetErrorString(err_));                                                      \
    } while (0)

#define cublasCheck(call)                                                                                \
    do {                                                                                                 \
        cublasStatus_t st_ = (call);                                                                     \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                \
            stsae_die_at(__FILE__, __LINE__, "%s: cuBLAS error %d (%s)", #call, (int)st_,               \
                         cublasGetStatusString(st_));                                                    \
    } while (0)

// After a kernel launch: a launch error (bad configuration) names the kernel.
#define cudaCheckLaunch(name)                                                                            \
    do {                                                                                                 \
        cudaError_t err_ = cudaGetLastError();                                                           \
        if (err_ != cudaSuccess)                                                                         \
            stsae_die_at(__FILE__, __LINE__, "launch of %s: CUDA error %d (%s)", name, (int)err_,        \
                         cudaGetErrorString(err_));                                                      \
    } while (0)

#endif
