// cublas_v2.h (emulation) — host stand-ins for the cuBLAS calls of the
// project's .cu files: cublasSgemm, cublasGemmEx and
// cublasGemmStridedBatchedEx (fp32 operands: one cublasGemmEx per batch
// member), with cuBLAS's argument checks and its operand precision.
//
// In:  a handle (stream, math mode), column-major operands in (emulated)
//      device memory, alpha/beta on the host (CUBLAS_POINTER_MODE_HOST).
// Out: C = alpha op(A) op(B) + beta C (C not read when beta is 0), computed
//      on the handle's stream in turn with its kernels (an enqueued host
//      task: results are there after a stream synchronization, as on a GPU).
// Precision: products of operands rounded as the GPU's tensor cores take
//      them, accumulated in fp32 in k order:
//      - fp32 operands under CUBLAS_TF32_TENSOR_OP_MATH, or with
//        CUBLAS_COMPUTE_32F_FAST_TF32: rounded to TF32 (10-bit mantissa,
//        to nearest);
//      - CUBLAS_COMPUTE_32F_FAST_16BF: rounded to bf16 (7-bit mantissa);
//      - bf16 operands (CUDA_R_16BF): taken as they are (exact in fp32);
//      - otherwise (default math, CUBLAS_COMPUTE_32F(_PEDANTIC)) plain fp32.
//      cuBLAS's summation order (split-k, tiles) differs: results agree to
//      fp32 rounding, not bit for bit.
// Anything else (other types, compute types, other batched calls) is
// CUBLAS_STATUS_NOT_SUPPORTED or does not compile.
#ifndef STSAE_EMU_CUBLAS_V2_H
#define STSAE_EMU_CUBLAS_V2_H

#include <algorithm>
#include <execution>
#include <numeric>

#include "cuda_bf16.h"
#include "cuda_runtime.h"

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16
} cublasStatus_t;

typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;

typedef enum {
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_TENSOR_OP_MATH = 1,
    CUBLAS_PEDANTIC_MATH = 2,
    CUBLAS_TF32_TENSOR_OP_MATH = 3,
    CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION = 16
} cublasMath_t;

typedef enum {
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_16F = 2,
    CUDA_R_16BF = 14
} cudaDataType;
typedef cudaDataType cudaDataType_t;

typedef enum {
    CUBLAS_COMPUTE_16F = 64,
    CUBLAS_COMPUTE_16F_PEDANTIC = 65,
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    CUBLAS_COMPUTE_32F_FAST_16F = 74,
    CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
    CUBLAS_COMPUTE_64F = 70,
    CUBLAS_COMPUTE_64F_PEDANTIC = 71,
    CUBLAS_COMPUTE_32I = 72,
    CUBLAS_COMPUTE_32I_PEDANTIC = 73
} cublasComputeType_t;

typedef enum { CUBLAS_GEMM_DEFAULT = -1, CUBLAS_GEMM_DEFAULT_TENSOR_OP = 99 } cublasGemmAlgo_t;

struct cublasContext {
    hipStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};
typedef cublasContext *cublasHandle_t;

inline cublasStatus_t cublasCreate(cublasHandle_t *h) {
    if (!h) return CUBLAS_STATUS_INVALID_VALUE;
    *h = new cublasContext();
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasDestroy(cublasHandle_t h) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    hipStreamSynchronize(h->stream); // its pending products may still read the handle's state
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasGetStream(cublasHandle_t h, cudaStream_t *s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    *s = h->stream;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *m) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    *m = h->math;
    return CUBLAS_STATUS_SUCCESS;
}

inline const char *cublasGetStatusName(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "unknown cuBLAS status";
}
inline const char *cublasGetStatusString(cublasStatus_t s) { return cublasGetStatusName(s); }

namespace stsae_emu {

enum class Round { none, tf32, bf16 };

// To nearest, ties to even, keeping `keep` of the 23 mantissa bits.
inline float round_mantissa(float f, int keep) {
    std::uint32_t u = float_bits(f);
    if ((u & 0x7f800000u) == 0x7f800000u) return f; // inf, NaN
    const int drop = 23 - keep;
    const std::uint32_t half = 1u << (drop - 1), lsb = (u >> drop) & 1u;
    u = (u + half - 1u + lsb) & ~((1u << drop) - 1u);
    return bits_float(u);
}
inline float round_operand(float f, Round r) {
    return r == Round::tf32 ? round_mantissa(f, 10) : r == Round::bf16 ? round_mantissa(f, 7) : f;
}

template <typename T>
inline float load_operand(const void *p, std::size_t i) {
    return (float)static_cast<const T *>(p)[i];
}

// cuBLAS's argument checks of a gemm (column-major).
inline cublasStatus_t check_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                 int lda, int ldb, int ldc) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T && ta != CUBLAS_OP_C) ||
        (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T && tb != CUBLAS_OP_C))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k)) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldb < std::max(1, tb == CUBLAS_OP_N ? k : n)) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

// C [m, n] (column-major, ldc) = alpha op(A) op(B) + beta C, on the stream.
template <typename TA, typename TB, typename TC>
void gemm_on_stream(hipStream_t st, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                    const void *A, int lda, const void *B, int ldb, float beta, void *C, int ldc, Round rnd) {
    hip::detail::Stream *s = stsae_emu::enqueue_stream(st);
    s->apply([=](auto &&tasks) {
        tasks.emplace_back([=](auto &&) {
            std::vector<int> cols(n > 0 ? n : 0);
            std::iota(cols.begin(), cols.end(), 0);
            std::for_each(std::execution::par, cols.begin(), cols.end(), [&](int j) {
                std::vector<float> b(k > 0 ? k : 0);
                for (int p = 0; p < k; p++)
                    b[p] = round_operand(load_operand<TB>(B, tb == CUBLAS_OP_N ? p + (std::size_t)j * ldb
                                                                               : j + (std::size_t)p * ldb),
                                         rnd);
                for (int i = 0; i < m; i++) {
                    float acc = 0.0f;
                    for (int p = 0; p < k; p++) {
                        const float a = round_operand(
                            load_operand<TA>(A, ta == CUBLAS_OP_N ? i + (std::size_t)p * lda : p + (std::size_t)i * lda),
                            rnd);
                        acc += a * b[p];
                    }
                    TC *c = static_cast<TC *>(C) + i + (std::size_t)j * ldc;
                    *c = (TC)(beta == 0.0f ? alpha * acc : alpha * acc + beta * (float)*c);
                }
            });
        });
    });
}

} // namespace stsae_emu

inline cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const float *alpha, const float *A, int lda, const float *B, int ldb,
                                  const float *beta, float *C, int ldc) {
    const cublasStatus_t s = stsae_emu::check_gemm(h, ta, tb, m, n, k, lda, ldb, ldc);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    const stsae_emu::Round r = (h->math & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH ? stsae_emu::Round::tf32 : stsae_emu::Round::none;
    stsae_emu::gemm_on_stream<float, float, float>(h->stream, ta, tb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc, r);
    return CUBLAS_STATUS_SUCCESS;
}

inline cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                                   cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                   cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    (void)algo;
    const cublasStatus_t s = stsae_emu::check_gemm(h, ta, tb, m, n, k, lda, ldb, ldc);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC &&
        compute != CUBLAS_COMPUTE_32F_FAST_TF32 && compute != CUBLAS_COMPUTE_32F_FAST_16BF)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (Atype != Btype || (Atype != CUDA_R_32F && Atype != CUDA_R_16BF) || (Ctype != CUDA_R_32F && Ctype != CUDA_R_16BF))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (Atype == CUDA_R_16BF && compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    using stsae_emu::Round;
    Round r = Round::none;
    if (Atype == CUDA_R_32F) {
        if (compute == CUBLAS_COMPUTE_32F_FAST_TF32 ||
            (compute == CUBLAS_COMPUTE_32F && (h->math & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH))
            r = Round::tf32;
        else if (compute == CUBLAS_COMPUTE_32F_FAST_16BF)
            r = Round::bf16;
    }
    const float al = *static_cast<const float *>(alpha), be = *static_cast<const float *>(beta);
    if (Atype == CUDA_R_32F && Ctype == CUDA_R_32F)
        stsae_emu::gemm_on_stream<float, float, float>(h->stream, ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc, r);
    else if (Atype == CUDA_R_32F)
        stsae_emu::gemm_on_stream<float, float, __nv_bfloat16>(h->stream, ta, tb, m, n, k, al, A, lda, B, ldb, be, C,
                                                               ldc, r);
    else if (Ctype == CUDA_R_32F)
        stsae_emu::gemm_on_stream<__nv_bfloat16, __nv_bfloat16, float>(h->stream, ta, tb, m, n, k, al, A, lda, B, ldb,
                                                                       be, C, ldc, r);
    else
        stsae_emu::gemm_on_stream<__nv_bfloat16, __nv_bfloat16, __nv_bfloat16>(h->stream, ta, tb, m, n, k, al, A, lda,
                                                                               B, ldb, be, C, ldc, r);
    return CUBLAS_STATUS_SUCCESS;
}

inline cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                                                int lda, long long strideA, const void *B, cudaDataType Btype, int ldb,
                                                long long strideB, const void *beta, void *C, cudaDataType Ctype,
                                                int ldc, long long strideC, int batch, cublasComputeType_t compute,
                                                cublasGemmAlgo_t algo) {
    if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (Atype != CUDA_R_32F || Btype != CUDA_R_32F || Ctype != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    for (int i = 0; i < batch; i++) {
        const cublasStatus_t s =
            cublasGemmEx(h, ta, tb, m, n, k, alpha, static_cast<const float *>(A) + i * strideA, Atype, lda,
                         static_cast<const float *>(B) + i * strideB, Btype, ldb, beta,
                         static_cast<float *>(C) + i * strideC, Ctype, ldc, compute, algo);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}

#endif
