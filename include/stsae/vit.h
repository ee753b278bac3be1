// vit.h — the Hugging Face ViT backbones (DINOv2, VideoMAE) that backbone.h
// dispatches to: the model read from its directory (hf.h) and its forward
// pass built from vit_ops.h. Callers outside backbone.c use backbone.h; the
// meaning of every argument is given there.
#ifndef STSAE_VIT_H
#define STSAE_VIT_H

#include "stsae/backbone.h"

typedef struct Vit Vit;

Vit *vit_open(const char *dir, const BackboneOptions *opt);
void vit_close(Vit *v);
const char *vit_name(const Vit *v); // "dinov2" or "videomae"
const char *vit_digest(Vit *v);
int vit_depth(const Vit *v);
BackboneShape vit_shape(const Vit *v, int T_in, int S);
void vit_forward(Vit *v, const float *pixels, int clips, int T_in, int S, const int *layers, int n_layers,
                 float *const *out);

#endif
