// blas_setup.h — make OpenBLAS use the best kernel this CPU can run.
//
// OpenBLAS picks its kernels when the library loads, from the CPU model it
// recognises, unless OPENBLAS_CORETYPE names one. Releases that do not know a
// new AVX-512 CPU (AMD Zen 4 / Zen 5 before OpenBLAS 0.3.22) fall back to
// their AVX2 "Haswell" or "Zen" kernels; the SkylakeX kernels run sgemm about
// twice as fast there (measured on this machine's Zen 5: ~80 -> ~165 GFLOP/s
// per core). The choice can only be changed through OPENBLAS_CORETYPE, read at
// load time; so when OpenBLAS chose Haswell or Zen on a CPU with AVX-512 (F,
// BW, DQ, VL) and OPENBLAS_CORETYPE is not set, the program sets it to
// SKYLAKEX and re-executes itself, before anything else (before MPI_Init).
// An OPENBLAS_CORETYPE already set is respected (this development machine's
// environment sets it to Haswell; unset, OpenBLAS 0.3.21 picks Cooperlake
// here by itself). STSAE_NO_BLAS_REEXEC=1 turns the re-execution off.
#ifndef STSAE_BLAS_SETUP_H
#define STSAE_BLAS_SETUP_H

void blas_prefer_avx512(char **argv);
// The kernel family OpenBLAS runs ("Haswell", "SkylakeX", ...), for reports.
const char *blas_kernel(void);

#endif
