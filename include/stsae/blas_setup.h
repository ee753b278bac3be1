// blas_setup.h — make OpenBLAS use the best kernel this CPU can run.
//
// OpenBLAS picks its kernels when the library loads, from the CPU model it
// recognises. OpenBLAS 0.3.21 (Debian 12) does not know AMD Zen 4 / Zen 5 and
// falls back to its AVX2 "Haswell" kernels although the CPU runs AVX-512;
// its SkylakeX kernels then run sgemm about twice as fast (measured here:
// ~80 -> ~165 GFLOP/s per core). The choice can only be changed through the
// OPENBLAS_CORETYPE environment variable, read at load time; so when OpenBLAS
// chose Haswell or Zen on a CPU with AVX-512 (F, BW, DQ, VL) and the user set
// no OPENBLAS_CORETYPE, the program sets it and re-executes itself, before
// anything else happens (before MPI_Init). STSAE_NO_BLAS_REEXEC=1 turns this off.
#ifndef STSAE_BLAS_SETUP_H
#define STSAE_BLAS_SETUP_H

void blas_prefer_avx512(char **argv);
// The kernel family OpenBLAS runs ("Haswell", "SkylakeX", ...), for reports.
const char *blas_kernel(void);

#endif
