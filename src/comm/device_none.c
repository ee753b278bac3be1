// device_none.c — device.h for a build without CUDA.
#include "stsae/comm/device.h"

int device_count(void) { return -1; }
const char *device_describe(void) { return "CPU only (built without CUDA)"; }
const char *device_list(void) { return ""; }
int device_use(int i) { (void)i; return -1; }
double device_free_bytes(void) { return 0.0; }
