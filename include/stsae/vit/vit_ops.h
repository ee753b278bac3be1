// vit_ops.h — the operations of a ViT forward pass on the CPU (DINOv2,
// VideoMAE, CLIP's two towers; reference/backbones.md §4-§5), each a pure
// function on row-major float32 buffers, so that vit.c and clip.c read as the
// models and a CUDA twin can take the same names and arguments (llm.c style),
// and the pre-norm transformer block that all of them are made of.
//
// Tokens are rows: a buffer [n, C] holds n tokens of C channels. GEMMs are
// OpenBLAS cblas_sgemm; everything else is an OpenMP loop over rows. Called
// outside a parallel region (they open their own).
#ifndef STSAE_VIT_OPS_H
#define STSAE_VIT_OPS_H

#include <stddef.h>

#include "stsae/vit/vit.h"

// Patch vectors of a stack of frames [T_in, 3, S, S] for a patch p x p and a
// tubelet of kt frames: out [(T_in/kt) * (S/p)^2, 3*kt*p*p], row (t, gy, gx)
// in row-major order, column (c, dt, ky, kx), i.e. the Conv2d/Conv3d kernel
// layout [out, c, (kt,) p, p] of the checkpoints flattened.
void patchify(float *out, const float *frames, int T_in, int S, int p, int kt);

// out[i, :] = (inp[i, :] - mean) / sqrt(var + eps) * w + b over C channels
// (biased variance), for n rows.
void layernorm_forward(float *out, const float *inp, const float *w, const float *b, int n, int C,
                       float eps);

// out[n, OC] (row stride ldo) = inp[n, C] . W[OC, C]^T + bias[OC]; bias may be
// NULL (zero). W is nn.Linear's [out_features, in_features].
void matmul_forward(float *out, int ldo, const float *inp, const float *W, const float *bias, int n, int C,
                    int OC);

// x = GELU(x), exact (erf) form, over n values.
void gelu_forward(float *x, size_t n);

// x = x * sigmoid(1.702 x) (CLIP's "quick_gelu"), over n values.
void quick_gelu_forward(float *x, size_t n);

// x[n, C] += scale[C] * y[n, C] (LayerScale); scale may be NULL (1).
void residual_forward(float *x, const float *y, const float *scale, int n, int C);

// Multi-head self-attention of B independent sequences of n tokens each:
// qkv [B*n, 3C] holds q | k | v per token (head h in columns h*C/NH ..);
// out [B*n, C] = concat over heads of softmax(q_h k_h^T / sqrt(C/NH)) v_h;
// causal: token i attends to tokens 0..i only (CLIP's text tower).
// work: attention_work_floats(n) floats.
size_t attention_work_floats(int n);
void attention_forward(float *out, const float *qkv, int B, int n, int C, int NH, int causal, float *work);

// The MLP activation of a block.
typedef enum { ACT_GELU, ACT_QUICK_GELU } VitAct;

// What a pre-norm block is, beyond its weights: width, heads, MLP width, the
// LayerNorm epsilon, the MLP activation and whether attention is causal.
typedef struct {
    int D, NH, F;
    float eps;
    VitAct act;
    int causal;
} BlockShape;

// buf freed and n floats allocated in its place (the contents are not kept:
// work buffers that only grow).
float *scratch_regrow(float *buf, size_t n);

// block_forward's work buffers, grown by block_scratch_reserve and reused
// across calls (a zeroed struct is an empty one).
typedef struct {
    size_t rows, work;            // capacities: tokens, attention floats
    float *h, *att, *qkv, *mlp, *s; // [rows, D] x2, [rows, 3D], [rows, F], attention scores
} BlockScratch;
// Room for `rows` tokens in sequences of n tokens.
void block_scratch_reserve(BlockScratch *s, const BlockShape *bs, size_t rows, int n);
void block_scratch_free(BlockScratch *s);

// One pre-norm transformer block on x [B*n, D] (B sequences of n tokens), in
// place: x += ls1 * O(attn(LN1(x))), then x += ls2 * fc2(act(fc1(LN2(x))))
// (ls1 / ls2: LayerScale where the block has it). s must have room for B*n
// tokens in sequences of n.
void block_forward(float *x, const VitBlock *b, const BlockShape *bs, int B, int n, BlockScratch *s);

// PyTorch's bicubic resampling (F.interpolate mode="bicubic",
// align_corners=False, no antialias: A = -0.75, clamped border taps, source
// coordinate scale*(o + 0.5) - 0.5) of a channels-last grid inp
// [in_h, in_w, C] to out [out_h, out_w, C]. scale_h / scale_w are the
// source-pixel scales the kernel uses (in/out for `size=`, 1/scale_factor for
// `scale_factor=`).
void bicubic_resample(float *out, const float *inp, int in_h, int in_w, int out_h, int out_w, float scale_h,
                      float scale_w, int C);

// VideoMAE's fixed 1-D sinusoid table out [n, C]: angle n / 10000^(2*(j/2)/C),
// sin on even j, cos on odd j, in double, then rounded to float.
void sinusoid_table(float *out, int n, int C);

#endif
