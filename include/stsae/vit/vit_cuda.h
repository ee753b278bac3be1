// vit_cuda.h — the forward pass of vit.h (DINOv2 per frame, VideoMAE per
// clip) on one GPU, for `stsae extract` with device: cuda (io/backbone.h
// picks it when BackboneOptions.cuda is set). The CUDA build has
// cuda/vit/vit.cu; a build without CUDA has src/vit/vit_cuda_none.c, whose
// calls die saying so (extract checks device_count() first).
//
// In:  the same VitWeights (host pointers: they are copied to the GPU once,
//      ~350 MB for a base model) and options as vit_create, host pixels
//      [clips, T_in, 3, S, S].
// Out: the same host buffers as vit_forward, per requested layer [clips, T,
//      N, d], from one pass per clip.
// The operations are vit_ops.h's, one kernel each (LayerNorm with double
// sums as the CPU's, GELU with erff, LayerScale in the residual), the
// products cuBLAS GEMMs in opt->math (fp32; TF32 or bf16 tensor-core
// products with fp32 accumulation), attention per sequence as two strided
// batched GEMMs over the heads with a row softmax between. Results equal the
// CPU forward to float rounding in fp32 (1e-4 relative on the test models),
// to ~1e-3 with TF32.
#ifndef STSAE_VIT_CUDA_H
#define STSAE_VIT_CUDA_H

#include "stsae/vit/vit.h"

typedef struct VitCuda VitCuda;

VitCuda *vit_cuda_create(const VitWeights *w, const BackboneOptions *opt);
void vit_cuda_free(VitCuda *v);
void vit_cuda_forward(VitCuda *v, const float *pixels, int clips, int T_in, int S, const int *layers, int n_layers,
                      float *const *out);

#endif
