// clip.h — the forward passes of CLIP's two towers (Radford et al. 2021, as
// `transformers`' CLIPModel computes them), pure compute over weights that a
// loader has bound (io/clip_model.h reads them from a Hugging Face directory):
// the neutral image embedding of Table 1's CLIP column and the text embedding
// of Table 5's queries (SPEC §2, §4). Both towers are stacks of the pre-norm
// blocks of vit_ops.h (quick GELU; causal attention in the text tower).
//
// In:  weights as pointers (ClipWeights, not copied: they outlive the Clip);
//      images float32 [n, 3, S, S] already preprocessed (S = the config's
//      image_size); token ids of one text with its start and end tokens.
// Out: the projected embeddings, float32 [n, E] / [E], before any L2
//      normalisation (CLIPModel's image_embeds / text_embeds without it).
//
// Vision: patch embedding (no bias), [class; patches] + position embeddings,
// pre_layrnorm, the blocks, post_layernorm of the class token, the visual
// projection (no bias). Text: token + position embeddings, the causal
// blocks, final_layer_norm, the hidden state at the end token, the text
// projection (no bias). The end token is found as `transformers` finds it:
// the first position holding eos_id, or, for configs whose text
// eos_token_id is 2 (the original checkpoints'), the position of the largest
// id (eos_argmax).
#ifndef STSAE_CLIP_H
#define STSAE_CLIP_H

#include <stdint.h>

#include "stsae/vit/vit.h"
#include "stsae/vit/vit_ops.h"

typedef struct {
    BlockShape bs;       // width D, heads, MLP width, eps, activation, causal
    int depth;
    const VitBlock *blk; // [depth]
} ClipTower;

typedef struct {
    const char *source; // the model directory (messages)
    int E;              // projection_dim
    // vision tower
    ClipTower vis;
    int img, p;                   // image_size, patch_size: (img/p)^2 patches
    const float *patch_w;         // [D, 3, p, p]
    const float *cls, *pos;       // [D], [1 + (img/p)^2, D]
    const float *pre_w, *pre_b;   // pre_layrnorm [D]
    const float *post_w, *post_b; // post_layernorm [D]
    const float *vproj;           // visual_projection [E, D]
    // text tower
    ClipTower txt;
    int vocab, ctx;                 // vocab_size, max_position_embeddings
    const float *tok, *tpos;        // [vocab, D], [ctx, D]
    const float *final_w, *final_b; // final_layer_norm [D]
    const float *tproj;             // text_projection [E, D]
    int eos_id, eos_argmax;
} ClipWeights;

typedef struct Clip Clip;

Clip *clip_create(const ClipWeights *w);
void clip_free(Clip *c);

// out [n, E] for n images [n, 3, S, S]; dies naming the model directory when
// S is not the model's image_size.
void clip_image_forward(Clip *c, const float *pixels, int n, int S, float *out);
// out [E] for the len ids of one text (1 <= len <= ctx, every id < vocab:
// dies naming the model directory otherwise).
void clip_text_forward(Clip *c, const int32_t *ids, int len, float *out);

#endif
