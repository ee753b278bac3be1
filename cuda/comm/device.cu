// device.cu — device.h for the CUDA build: counts devices without failing
// where the toolkit is installed but no driver or GPU is present (error 35,
// cudaErrorInsufficientDriver, or 100, cudaErrorNoDevice).
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" {
#include "stsae/comm/device.h"
}

extern "C" int device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky error
        return 0;
    }
    return n;
}

extern "C" const char *device_describe(void) {
    static char buf[128];
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    snprintf(buf, sizeof(buf), "CUDA %d.%d runtime, %d device(s)", rt / 1000, (rt % 1000) / 10, device_count());
    return buf;
}
