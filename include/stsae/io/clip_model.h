// clip_model.h — a CLIP model from a Hugging Face directory as published
// (openai/clip-vit-base-patch32, or any size of the same architecture:
// config.json with text_config and vision_config, model.safetensors,
// vocab.json, merges.txt, tokenizer_config.json optional), read without
// Python: the weights memory-mapped and bound to vit/clip.h's towers, the
// tokenizer of io/clip_bpe.h (SPEC §2's CLIP embeddings, §4).
//
// In:  the directory. Out: image embeddings of preprocessed images, text
//      embeddings of strings (and their token ids), float32, projected and
//      not normalised (CLIPModel's image_embeds / text_embeds before its L2
//      normalisation); the weights' digest for the files that record them.
//
// config.json: model_type "clip"; text_config and vision_config keys absent
// from the file take CLIPTextConfig's / CLIPVisionConfig's defaults (as
// `transformers` does for configs saved with only the values that differ);
// hidden_act quick_gelu or gelu; num_channels 3. Every tensor is read by its
// `transformers` name with its dtype and shape checked (hf.h), the checkpoint
// of a CLIPModel (text_model., vision_model., visual_projection,
// text_projection). Every error is one line naming the file and the key or
// tensor, then exit 1.
#ifndef STSAE_CLIP_MODEL_H
#define STSAE_CLIP_MODEL_H

#include <stdint.h>

typedef struct ClipModel ClipModel;

ClipModel *clip_model_open(const char *dir);
void clip_model_close(ClipModel *m); // NULL is a no-op

const char *clip_model_path(const ClipModel *m);
int clip_model_embed_dim(const ClipModel *m);   // projection_dim E
int clip_model_image_size(const ClipModel *m);  // vision_config.image_size
int clip_model_context(const ClipModel *m);     // text_config.max_position_embeddings (77)
const char *clip_model_digest(ClipModel *m);    // of model.safetensors (hf.h)

// out [n, E] for images [n, 3, S, S] preprocessed as CLIP's processor does
// (vit/preprocess.h); S must be image_size.
void clip_model_embed_images(ClipModel *m, const float *pixels, int n, int S, float *out);

// out [n, E] for n clips of T frames each, pixels [n, T, 3, S, S]: the mean
// over the clip's frames of their unit-length image embeddings (CLIP4Clip's
// mean pooling; eval normalises the result again).
void clip_model_embed_clips(ClipModel *m, const float *pixels, int n, int T, int S, float *out);

// The text a label name is embedded as (malloc'ed): the name with SSv2's
// template brackets removed ("Pushing [something] from left to right" ->
// "Pushing something from left to right"), as the paper's queries read;
// case and white space are the tokenizer's business.
char *clip_model_query(const char *label);

// The token ids of text, [ctx] with ctx = clip_model_context (start, the
// text truncated, end, padding); returns the count before padding. Dies
// naming `what` (where the text came from: "IN.h5: /texts[2]")
// when the text is not valid UTF-8.
int clip_model_tokenize(const ClipModel *m, const char *text, const char *what, int32_t *ids);

// out [E] for the n ids of one text (clip_model_tokenize's, before the padding).
void clip_model_embed_ids(ClipModel *m, const int32_t *ids, int n, float *out);
// out [E] for text: tokenized as above, then embedded.
void clip_model_embed_text(ClipModel *m, const char *text, const char *what, float *out);

#endif
