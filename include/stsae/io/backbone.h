// backbone.h — the frozen feature extractors of SPEC §4 behind one interface:
// the built-in `pixels` and `motion` backbones and the Hugging Face ViTs (DINOv2 per frame,
// VideoMAE per clip; reference/backbones.md), each opened from its
// description (a model directory is read and its weights bound here; the
// forward passes are vit.h's pure compute), so that `stsae extract` and the
// checks share it.
//
// In:  preprocessed clips, float32 pixels [clips, T_in, 3, S, S] (already
//      rescaled and normalized), and the block indices to emit.
// Out: per requested layer L, float32 patch tokens [clips, T, N, d] with
//      N = H*W in row-major (r, c) order: the output of block L (0-based,
//      Hugging Face hidden_states[L+1]), before the final LayerNorm unless
//      options.final_norm. All requested layers come from one pass.
//
//   DINOv2   T = T_in, H = W = S/patch, d = hidden; every frame is one
//            sequence [CLS, patches]; CLS is dropped. Position embeddings are
//            resampled bicubically to H x W when the grid differs (pos_interp).
//   VideoMAE T = T_in/tubelet, H = W = S/patch, d = hidden; the clip is one
//            sequence ordered (t, h, w), all tokens kept. Like Hugging Face it
//            needs T_in = num_frames and S = image_size of config.json.
//   pixels   T = T_in, H = W = S/patch, d = 3*patch^2: the token of patch
//            (t, r, c) is that patch's normalized RGB values in (channel, row,
//            column) order. It has no blocks: every requested layer index
//            gets these same tokens, and final_norm has no effect.
//   motion   T = T_in/2, H = W = S/patch, d = 324: training-free motion-energy
//            features of each tubelet of 2 frames (oriented Gabor energy, its
//            direction of motion, brightening/darkening and colour, per
//            quarter of the patch; defined in vit/motion.c). No blocks, like
//            pixels; it needs an even T_in and an even patch >= 4.
//
// Typical use (stsae extract):
//   Backbone *bb = backbone_open(deck_value, &opt);  // "pixels", "motion" or a model directory
//   backbone_check_layers(bb, layers, n_layers, "deck.yaml: extract.layers");
//   BackboneShape sh = backbone_shape(bb, T_in, S);  // T, H, W, N, d of the feature file
//   ... backbone_digest(bb) for the file's attributes ...
//   for each batch: backbone_forward(bb, pixels, clips, T_in, S, layers, n_layers, out);
//   backbone_close(bb);
// Errors (a bad model directory or checkpoint, sizes that do not fit, a layer
// out of range) die with one line naming the file or model.
//
// Memory: weights are read in place from the memory-mapped checkpoint; the
// workspace holds one clip's activations (DINOv2-B, 16 frames at 224 px:
// about 140 MB; VideoMAE-B: about 60 MB) and is reused across calls; clips
// of a batch run one after the other, each using every OpenMP thread
// (OMP_NUM_THREADS), GEMMs through OpenBLAS.
#ifndef STSAE_BACKBONE_H
#define STSAE_BACKBONE_H

#include "stsae/vit/vit.h" // PosInterp, BackboneOptions, BackboneShape

typedef struct Backbone Backbone;

// "hf" or "meta" -> *out; returns 0, or -1 for any other word.
int backbone_pos_interp(const char *word, PosInterp *out);
// "fp32", "tf32" or "bf16" -> *out (the GPU forward's GEMMs); 0, or -1.
int backbone_math(const char *word, VitMath *out);

// 1 when spec names a built-in backbone ("pixels" or "motion"), read from no
// directory.
int backbone_builtin(const char *spec);

// spec: "pixels", "motion", or a Hugging Face model directory (config.json with
// model_type dinov2 or videomae, and model.safetensors).
Backbone *backbone_open(const char *spec, const BackboneOptions *opt);
void backbone_close(Backbone *bb);

const char *backbone_name(const Backbone *bb);   // "pixels", "motion", "dinov2" or "videomae"
const char *backbone_digest(Backbone *bb);       // hf.h's weights digest; "none" for the built-ins
int backbone_depth(const Backbone *bb);          // number of blocks (0 for the built-ins)

// Dies with "<where>: layer ..." unless every layer is a block index in
// [0, depth) (any index >= 0 for the built-ins) and no layer repeats; `where` names
// the source of the list (a deck key, a file).
void backbone_check_layers(const Backbone *bb, const int *layers, int n_layers, const char *where);
// The token grid for clips of T_in frames of S x S pixels; dies naming the
// model when they do not fit it (S not a multiple of the patch, ...).
BackboneShape backbone_shape(const Backbone *bb, int T_in, int S);

// pixels [clips, T_in, 3, S, S] -> out[l] [clips, T, N, d] for layers[l],
// l < n_layers (caller-owned buffers of backbone_shape's size per clip).
void backbone_forward(Backbone *bb, const float *pixels, int clips, int T_in, int S, const int *layers,
                      int n_layers, float *const *out);

#endif
