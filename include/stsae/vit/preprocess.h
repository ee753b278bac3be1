// preprocess.h — a clip's RGB24 frames into a backbone's input pixels, exactly
// as the Hugging Face image processors do it on their default ("slow") PIL
// path (SPEC §4, reference/backbones.md §3):
//
//   resize so that the shorter side is `short_side` (the longer one becomes
//   int(short_side * long / short), truncated) with PIL's BICUBIC (a = -0.5)
//   or BILINEAR filter, antialiased when shrinking; centre crop crop x crop
//   (top = (h - crop) / 2, left = (w - crop) / 2, floored); x / 255 in double,
//   cast to float32; (x - mean) / std in float32.
//
// The resampling is PIL's own (libImaging/Resample.c), bit for bit: separable,
// horizontal pass first into a uint8 image, then vertical; the filter's support
// scaled by the shrink factor; weights normalised in double, then rounded to
// 22-bit fixed point; each pass rounds and clips to uint8. Only the rows and
// columns the crop keeps are computed (each output pixel depends on its own
// weights alone, so this changes no value).
//
// In: frames [T, h, w, 3] uint8. Out: float32 [T, 3, crop, crop] (frames
// first, as VideoMAE's pixel_values and SPEC §4's /pixels file).
#ifndef STSAE_PREPROCESS_H
#define STSAE_PREPROCESS_H

#include <stdint.h>

typedef enum { RESAMPLE_BILINEAR, RESAMPLE_BICUBIC } Resample;

typedef struct {
    int short_side;        // >= crop
    int crop;
    Resample filter;
    float mean[3], std[3]; // per RGB channel, applied after x / 255
} Preprocess;

// DINOv2 (BitImageProcessor): short side 256 bicubic, crop 224, ImageNet mean/std.
Preprocess preprocess_dinov2(void);
// VideoMAE: short side 224 bilinear, crop 224, ImageNet mean/std.
Preprocess preprocess_videomae(void);
// CLIP (CLIPImageProcessor): short side `size` (the model's image_size, 224)
// bicubic, crop size x size, OpenAI's CLIP mean/std.
Preprocess preprocess_openai_clip(int size);
// The `pixels` backbone at frame size `size`: short side = crop = size, bilinear, ImageNet.
Preprocess preprocess_square(int size);

// Resize and crop only, one frame rgb [h, w, 3] -> out [crop, crop, 3] uint8
// (what PIL's resize and HF's centre crop give).
void preprocess_resize_crop(const Preprocess *p, const uint8_t *rgb, int w, int h, uint8_t *out);

// The whole pipeline, T frames rgb [T, h, w, 3] -> out [T, 3, crop, crop].
void preprocess_clip(const Preprocess *p, const uint8_t *rgb, int T, int w, int h, float *out);

#endif
