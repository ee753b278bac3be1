// blas_naive.c — a naive reference for the few CBLAS calls of the
// pure-compute layers (cmake/blas_naive/cblas.h), linked instead of OpenBLAS
// by a GPU-core build on a machine without it (the GPU machine: CUDA, no
// OpenBLAS, nothing installable; tests/gpu/run.sh). Slow by design: plain
// loops, OpenMP over output columns, fp32 products summed in double; it
// serves as the CPU reference of the GPU tests, never for training or for
// CPU timings.
//
// In:  cblas_sgemm / cblas_sgemv arguments (row- or column-major, either
//      transpose), with CBLAS's meaning; openblas_set_num_threads.
// Out: C (y) = alpha op(A) op(B) (x) + beta C (y); C (y) is not read when
//      beta is 0, as in BLAS. Bad arguments (negative sizes, short leading
//      dimensions) die naming the call, where OpenBLAS would print and return.
#include <cblas.h>
#include <stddef.h>

#include "stsae/base/common.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int blas_threads = 0; // 0: OpenMP's default

int openblas_get_num_threads(void) {
#ifdef _OPENMP
    return blas_threads > 0 ? blas_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

void openblas_set_num_threads(int n) { blas_threads = n > 0 ? n : 0; }

static int threads_for(double flops) {
    const int t = openblas_get_num_threads();
    return flops < 1e5 ? 1 : t; // small products: no team
}

// Column-major C [m, n] = alpha op(A) op(B) + beta C.
static void sgemm_col(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc) {
#pragma omp parallel for schedule(static) num_threads(threads_for(2.0 * m * n * k))
    for (int j = 0; j < n; j++) {
        float *c = C + (size_t)j * ldc;
        for (int i = 0; i < m; i++) {
            double s = 0.0;
            if (!ta && !tb)
                for (int p = 0; p < k; p++) s += (double)A[i + (size_t)p * lda] * B[p + (size_t)j * ldb];
            else if (!ta)
                for (int p = 0; p < k; p++) s += (double)A[i + (size_t)p * lda] * B[j + (size_t)p * ldb];
            else if (!tb)
                for (int p = 0; p < k; p++) s += (double)A[p + (size_t)i * lda] * B[p + (size_t)j * ldb];
            else
                for (int p = 0; p < k; p++) s += (double)A[p + (size_t)i * lda] * B[j + (size_t)p * ldb];
            c[i] = beta == 0.0f ? (float)(alpha * s) : (float)(alpha * s + (double)beta * c[i]);
        }
    }
}

static void check_ld(const char *call, const char *name, int ld, int rows) {
    if (ld < (rows > 1 ? rows : 1)) die("%s (naive BLAS): %s = %d < %d", call, name, ld, rows > 1 ? rows : 1);
}

void cblas_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M < 0 || N < 0 || K < 0) die("cblas_sgemm (naive BLAS): M %d, N %d, K %d", M, N, K);
    const int tA = ta != CblasNoTrans, tB = tb != CblasNoTrans;
    if (M == 0 || N == 0) return;
    if (order == CblasColMajor) {
        check_ld("cblas_sgemm", "lda", lda, tA ? K : M);
        check_ld("cblas_sgemm", "ldb", ldb, tB ? N : K);
        check_ld("cblas_sgemm", "ldc", ldc, M);
        sgemm_col(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
        // row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T
        check_ld("cblas_sgemm", "lda", lda, tA ? M : K);
        check_ld("cblas_sgemm", "ldb", ldb, tB ? K : N);
        check_ld("cblas_sgemm", "ldc", ldc, N);
        sgemm_col(tB, tA, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
    }
}

void cblas_sgemv(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, int M, int N, float alpha, const float *A, int lda,
                 const float *x, int incx, float beta, float *y, int incy) {
    if (M < 0 || N < 0 || incx == 0 || incy == 0) die("cblas_sgemv (naive BLAS): M %d, N %d, incx %d, incy %d", M, N, incx, incy);
    // element (i, j) of the stored M x N matrix
    const int col = order == CblasColMajor;
    check_ld("cblas_sgemv", "lda", lda, col ? M : N);
    const int trans = ta != CblasNoTrans;
    const int ny = trans ? N : M, nx = trans ? M : N;
    if (ny == 0) return;
    const size_t x0 = incx > 0 ? 0 : (size_t)(nx - 1) * (size_t)(-incx);
    const size_t y0 = incy > 0 ? 0 : (size_t)(ny - 1) * (size_t)(-incy);
#pragma omp parallel for schedule(static) num_threads(threads_for(2.0 * M * N))
    for (int r = 0; r < ny; r++) {
        double s = 0.0;
        for (int q = 0; q < nx; q++) {
            const int i = trans ? q : r, j = trans ? r : q; // (row, column) of the stored matrix
            const float a = col ? A[i + (size_t)j * lda] : A[(size_t)i * lda + j];
            s += (double)a * x[(ptrdiff_t)x0 + (ptrdiff_t)q * incx];
        }
        float *yr = y + (ptrdiff_t)y0 + (ptrdiff_t)r * incy;
        *yr = beta == 0.0f ? (float)(alpha * s) : (float)(alpha * s + (double)beta * *yr);
    }
}
