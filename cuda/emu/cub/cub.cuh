// cub.cuh (emulation) — the parts of CUB the emulation provides (today
// cub::DeviceRadixSort, device/device_radix_sort.cuh); anything else of CUB
// named by a source fails to compile, naming itself.
#ifndef STSAE_EMU_CUB_CUH
#define STSAE_EMU_CUB_CUH
#include "device/device_radix_sort.cuh"
#endif
