// blas_setup.c — OpenBLAS kernel choice (blas_setup.h).
#define _GNU_SOURCE // setenv, execv
#include "stsae/base/blas_setup.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *blas_kernel(void) {
#ifdef OPENBLAS_VERSION
    return openblas_get_corename();
#else
    return "unknown";
#endif
}

void blas_prefer_avx512(char **argv) {
#if defined(OPENBLAS_VERSION) && (defined(__x86_64__) || defined(__i386__))
    if (getenv("OPENBLAS_CORETYPE") || getenv("STSAE_NO_BLAS_REEXEC")) return;
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")))
        return;
    const char *core = openblas_get_corename();
    if (strcasecmp(core, "haswell") && strncasecmp(core, "zen", 3)) return;
    setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1);
    execv("/proc/self/exe", argv); // returns only on failure: then go on as we are
    unsetenv("OPENBLAS_CORETYPE");
#else
    (void)argv;
#endif
}
