// vit.h — the forward passes of the backbones of SPEC §4, pure compute (no
// file, no MPI, HDF5 or YAML): the Hugging Face ViTs (DINOv2 per frame,
// VideoMAE per clip; reference/backbones.md §4-§6) over weights that a loader
// has bound (io/backbone.h reads them from a model directory, memory-mapped),
// and the built-in `pixels` and `motion` backbones. Users call backbone.h; the meaning of
// every shape and option is given there.
//
// In:  weights as pointers (VitWeights, not copied: they outlive the Vit),
//      preprocessed clips float32 [clips, T_in, 3, S, S], the blocks to emit.
// Out: per requested layer, float32 tokens [clips, T, N, d], one pass.
// Errors (a clip shape that does not fit the model) die naming the model's
// directory (VitWeights.source).
#ifndef STSAE_VIT_H
#define STSAE_VIT_H

typedef enum {
    POS_INTERP_HF,   // Hugging Face >= 4.45: F.interpolate(size=(H, W)), scale = M/H
    POS_INTERP_META, // original DINOv2 / HF < 4.45: scale_factor = (H + 0.1)/M, and no
                     // resampling at all when the grid already matches
} PosInterp;

// The GEMMs of the GPU forward (vit_cuda.h): fp32, or fp32 in and out with
// TF32 or bf16 tensor-core products (cuBLAS's CUBLAS_COMPUTE_32F_FAST_*).
typedef enum { VIT_MATH_FP32, VIT_MATH_TF32, VIT_MATH_BF16 } VitMath;

typedef struct {
    int final_norm;       // 1: apply the model's final LayerNorm to every emitted layer
    PosInterp pos_interp; // DINOv2 position-embedding resampling convention
    int patch;            // pixels and motion backbones: patch side in pixels (ignored by the ViTs)
    int cuda;             // 1: the ViTs run on this process's GPU (vit_cuda.h); the built-ins stay on the CPU
    VitMath math;         // cuda: the GEMMs' math
} BackboneOptions;

typedef struct {
    int T, H, W, N, d; // tokens per clip: T x N (N = H*W), each d channels
} BackboneShape;

// One pre-norm transformer block's weights.
typedef struct {
    const float *ln1_w, *ln1_b;         // [D]  norm1 / layernorm_before
    const float *wq, *wk, *wv, *wo;     // [D, D]
    const float *bq, *bk, *bv, *bo;     // [D]; bq, bk, bv NULL without qkv_bias (VideoMAE: bk always)
    const float *ls1, *ls2;             // [D]  LayerScale (DINOv2); NULL for VideoMAE
    const float *ln2_w, *ln2_b;         // [D]  norm2 / layernorm_after
    const float *w1, *b1;               // [F, D], [F]  fc1 / intermediate.dense
    const float *w2, *b2;               // [D, F], [D]  fc2 / output.dense
} VitBlock;

// A ViT's configuration and weights, as config.json and the checkpoint give them.
typedef struct {
    const char *source;     // the model directory (messages)
    const char *model_type; // "dinov2" or "videomae"
    int videomae;
    int D, depth, NH, F; // width, blocks, heads, MLP width
    int p, kt;           // patch side, tubelet frames (1 for DINOv2)
    int img, frames;     // config image_size, num_frames (VideoMAE)
    int M;               // DINOv2: side of the stored position grid (image_size / patch_size)
    float eps;
    const float *patch_w, *patch_b; // [D, 3*kt*p*p], [D]
    const float *cls, *pos;         // DINOv2: [D], [1 + M*M, D]
    const float *norm_w, *norm_b;   // final LayerNorm [D]; NULL when the model has none
    const VitBlock *blk;            // [depth]
} VitWeights;

typedef struct Vit Vit;

// The token grid of w for clips of T_in frames of S px; dies naming the model
// directory when they do not fit it.
BackboneShape vit_weights_shape(const VitWeights *w, int T_in, int S);
// The position embeddings of one sequence, malloc'd: DINOv2 [1 + N, D] (row
// 0 = cls + pos[0], then the grid resampled to H x W as opt->pos_interp says),
// VideoMAE [T*N, D] sinusoids. Shared by the CPU and the GPU forward.
float *vit_pos_table(const VitWeights *w, const BackboneOptions *opt, int T_in, int S);

Vit *vit_create(const VitWeights *w, const BackboneOptions *opt);
void vit_free(Vit *v);
void vit_forward(Vit *v, const float *pixels, int clips, int T_in, int S, const int *layers, int n_layers,
                 float *const *out);

// The pixels backbone (patch side `patch`): every requested layer gets the
// patches' normalized RGB values.
BackboneShape pixels_shape(int patch, int T_in, int S);
void pixels_forward(int patch, const float *pixels, int clips, int T_in, int S, int n_layers, float *const *out);

// The motion backbone (patch side `patch`, tubelets of 2 frames): every
// requested layer gets the motion-energy tokens defined in motion.c.
BackboneShape motion_shape(int patch, int T_in, int S);
void motion_forward(int patch, const float *pixels, int clips, int T_in, int S, int n_layers, float *const *out);

#endif
