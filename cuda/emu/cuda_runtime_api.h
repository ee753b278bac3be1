// cuda_runtime_api.h (emulation) — the same names as cuda_runtime.h here.
#include "cuda_runtime.h"
