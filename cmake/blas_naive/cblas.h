// cblas.h (naive reference) — put on the include path, instead of OpenBLAS's,
// by a GPU-core build that found no OpenBLAS (STSAE_GPU_CORE_ONLY, or
// STSAE_BLAS_NAIVE=ON); implemented by src/base/blas_naive.c.
//
// In/out: the CBLAS calls the pure-compute layers base, sae and vit make
// (cblas_sgemm, cblas_sgemv) and vit's OpenBLAS thread calls, with the
// standard CBLAS meaning. A slow, plain-loop reference for GPU machines,
// where the CPU step only serves as the GPU tests' reference: never for
// training or timing the CPU path. It defines no OPENBLAS_VERSION, so
// blas_kernel() reports "unknown".
#ifndef STSAE_BLAS_NAIVE_CBLAS_H
#define STSAE_BLAS_NAIVE_CBLAS_H

#define STSAE_BLAS_NAIVE 1

#ifdef __cplusplus
extern "C" {
#endif

typedef enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 } CBLAS_ORDER;
typedef enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 } CBLAS_TRANSPOSE;
typedef CBLAS_ORDER CBLAS_LAYOUT;

// C [M, N] = alpha op(A) op(B) + beta C (C not read when beta is 0)
void cblas_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
// y = alpha op(A) x + beta y (y not read when beta is 0)
void cblas_sgemv(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, int M, int N, float alpha, const float *A, int lda,
                 const float *x, int incx, float beta, float *y, int incy);

// OpenBLAS's thread control: the reference runs on OpenMP's threads.
int openblas_get_num_threads(void);
void openblas_set_num_threads(int n);

#ifdef __cplusplus
}
#endif

#endif
