// features.h — the feature file of SPEC §3, read side (training and
// evaluation), and the float16 type both sides share.
//
// In:  the path of a feature file written by `stsae extract` (or by anyone
//      following SPEC §3: h5py with float16 does), and a layer.
// Out: the layout (clips, T, H, W, N, d), the per-clip labels, split, done
//      mask and ids, and any clip's features of that layer as float16 bits
//      (one HDF5 chunk per clip: one read), converted to float32 on demand.
//
// Reading is independent and serial (the sec2 driver, read-only): ranks of
// different training groups read the same file at their own pace, so no read
// is collective. Every check that can fail on a user's file (missing layer,
// wrong shapes, wrong type, clips not done) is reported by features_open as a
// message naming the file and dataset (or attribute) and what was found, so
// every rank can fail together.
//
// What features_open accepts, and why:
// - /features/layer_LL must be IEEE binary16 (sign bit 15, 5 exponent bits,
//   bias 15, 10 mantissa bits; either byte order), rank 4 [clips, T, N, d].
//   Anything else (bfloat16, float32, integers) is refused naming the type
//   found: HDF5 would convert it to float16 silently on read, rounding
//   bfloat16's range away or doubling the file for nothing. Write float16
//   (h5py: dtype=np.float16; from bfloat16 or float32, convert first).
// - root attributes T, H, W, N, d: one integer each (any integer type, or a
//   float holding a whole number), 1 .. 2^31-1, with N = H x W (in 64 bits)
//   and T, N, d equal to the dataset's dims.
// - per clip T x N x d <= FEATURES_MAX_CLIP_VALUES (2^31 - 1 values, 4 GiB of
//   float16; real clips are a few million) so that the readers' int token and
//   value counts cannot overflow; clips <= 2^31 - 1; every product in 64 bits.
// - /labels, /split, /done: integer datasets of one entry per clip; /clip_ids
//   one string per clip; /label_names at most INPUTS_MAX_LABELS (inputs.h)
//   strings; fixed-length strings at most 64 KiB each. Counts are checked
//   before anything is allocated from them, against the limits above and
//   against the data the file holds: a dataset must store the bytes it
//   claims (1/1032 of them when compressed: deflate's best ratio), and
//   /features the data of every clip /done marks, so that a small file
//   cannot make the reader (or, through T x N x d, its callers) allocate
//   gigabytes for values it does not contain.
#ifndef STSAE_FEATURES_H
#define STSAE_FEATURES_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

// The most values (T x N x d) one clip of a feature file may hold.
#define FEATURES_MAX_CLIP_VALUES 2147483647

// IEEE binary16 little-endian, as h5py reads float16 (HDF5 1.10 has no
// predefined half type). H5Tclose it after use.
hid_t features_half_type(void);

// float16 bits <-> float32 (round to nearest even; F16C when compiled for it).
void half_to_float(const uint16_t *h, float *out, size_t n);
void float_to_half(const float *in, uint16_t *h, size_t n);

typedef struct {
    char path[4096];
    int layer;
    hid_t file, dset;
    int n_clips, T, H, W, N, d;
    int32_t *labels;   // [n_clips]
    uint8_t *split;    // [n_clips] 0 train, 1 test
    uint8_t *done;     // [n_clips] 1 when the clip's features are written
    char **clip_ids;   // [n_clips]
    int n_label_names;
    char **label_names;
} FeatureFile;

// Opens `path` and checks it against SPEC §3 for `layer`: 0 on success, -1
// with one message in err ("FILE: dataset ...: what is wrong") and nothing
// left open or allocated (f is then closed: features_close on it is a no-op).
int features_open(FeatureFile *f, const char *path, int layer, char *err, size_t errcap);
void features_close(FeatureFile *f);

// Clips with split == which (0 train, 1 test) whose features are done, in file
// order; returns their number, *out malloc'ed.
int features_clips(const FeatureFile *f, int which, int32_t **out);

// One clip's features of the layer, T*N*d float16 values (token-major, the
// file's layout). Dies naming the file, layer and clip (index and id) if the
// read fails or a value is NaN or Inf.
void features_read_clip(const FeatureFile *f, int clip, uint16_t *out);

#endif
