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

extern "C" const char *device_list(void) {
    static char buf[4096];
    size_t n = 0;
    buf[0] = 0;
    const int count = device_count();
    for (int i = 0; i < count && n < sizeof(buf) - 1; i++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
            cudaGetLastError();
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "GPU %d: (properties unreadable)\n", i);
            continue;
        }
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "GPU %d: %s, %.1f GiB, sm_%d%d, %d SMs\n", i, p.name,
                              (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.major, p.minor,
                              p.multiProcessorCount);
    }
    return buf;
}

extern "C" const char *device_describe(void) {
    static char buf[128];
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    snprintf(buf, sizeof(buf), "CUDA %d.%d runtime, %d device(s)", rt / 1000, (rt % 1000) / 10, device_count());
    return buf;
}

extern "C" double device_free_bytes(void) {
    size_t free_b = 0, total = 0;
    if (device_count() <= 0 || cudaMemGetInfo(&free_b, &total) != cudaSuccess) {
        cudaGetLastError();
        return 0.0;
    }
    return (double)free_b;
}

extern "C" int device_use(int i) {
    const int n = device_count();
    if (n <= 0) return -1;
    const int dev = (i % n + n) % n;
    if (cudaSetDevice(dev) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    return dev;
}
