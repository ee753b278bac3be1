// device.h — what accelerators this build and this machine have. The CUDA
// build implements it in cuda/comm/device.cu, the CPU-only build in
// src/comm/device_none.c, so callers never need #ifdefs.
#ifndef STSAE_DEVICE_H
#define STSAE_DEVICE_H

// Number of usable CUDA devices; 0 when the build has CUDA but no device or
// driver is present; -1 when the build has no CUDA at all.
int device_count(void);
// One line describing the backend, e.g. "CUDA 13.0 runtime, 0 devices".
const char *device_describe(void);
// One line per device ("GPU 0: NVIDIA H200, 139.8 GiB, sm_90, 132 SMs"), each
// ending in a newline; "" without devices (`stsae version` prints them).
const char *device_list(void);
// Binds the calling process to device i % device_count() (cudaSetDevice,
// before its first allocation on a device) and returns that device; -1
// without devices. train.c passes the rank's index on its node, so the ranks
// of a node spread over its GPUs (and share them when there are more ranks).
int device_use(int i);
// Free memory of the calling process's device in bytes (cudaMemGetInfo); 0
// without a device.
double device_free_bytes(void);

#endif
