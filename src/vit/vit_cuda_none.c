// vit_cuda_none.c — vit_cuda.h for a build without CUDA (no toolkit at
// configure time): every call dies saying so, with what to do. `stsae
// extract` refuses device: cuda before opening the backbone there
// (device_count() < 0), so these are reached only by a caller that skipped
// that check.
#include "stsae/base/common.h"
#include "stsae/vit/vit_cuda.h"

static void no_cuda(const char *call) {
    die("%s: this stsae was built without CUDA (no CUDA toolkit at configure time); install the toolkit "
        "(nvcc in /usr/local/cuda) and build again, or use device: cpu", call);
}

VitCuda *vit_cuda_create(const VitWeights *w, const BackboneOptions *opt) {
    (void)w, (void)opt;
    no_cuda("vit_cuda_create");
    return NULL;
}
void vit_cuda_free(VitCuda *v) { if (v) no_cuda("vit_cuda_free"); }
void vit_cuda_forward(VitCuda *v, const float *pixels, int clips, int T_in, int S, const int *layers, int n_layers,
                      float *const *out) {
    (void)v, (void)pixels, (void)clips, (void)T_in, (void)S, (void)layers, (void)n_layers, (void)out;
    no_cuda("vit_cuda_forward");
}
