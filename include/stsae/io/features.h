// features.h — the feature file of SPEC §3: its one owner. The reader
// (training, evaluation, check: src/io/features.c), the parallel writer
// (`stsae extract`: src/io/features_write.c), the format_version both check,
// and the float16 type both share.
//
// Reading.
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
// - root attribute format_version: FEATURES_FORMAT_VERSION (1), or absent
//   (files written before it existed are version 1); another number is
//   refused, "FILE: format_version N, this stsae reads 1": a newer layout is
//   not read as if it were this one.
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

#include "stsae/comm/comm.h"  // Comm, COMM_MSG_MAX (the writer)
#include "stsae/io/inputs.h"  // ClipList (the writer)

// The layout version this stsae writes and reads: root attribute format_version.
#define FEATURES_FORMAT_VERSION 1

// 0 when f's root attribute format_version is FEATURES_FORMAT_VERSION or
// absent (version 1), else -1 with "FILE: format_version N, this stsae reads
// 1" in err (or what is wrong with the attribute: not one integer).
int features_check_version(hid_t f, const char *path, char *err, size_t cap);

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
// The same clip as float32 tokens times `scale` (x: T*N*d floats; h: T*N*d
// float16 scratch): what an SAE encodes (eval, browse).
void features_read_tokens(const FeatureFile *f, int clip, float scale, uint16_t *h, float *x);

// --- writing: `stsae extract` on every rank of a Comm ------------------------------
//
// The file is created (or reopened: a run that was stopped or killed) by all
// ranks of c together over MPI-IO (comm_h5_fapl), written round by round,
// then closed; the caller renames it into place with features_write_commit
// when every clip is done or failed. Every function here is collective over
// c and, except reopen and check, returns the ranks' agreed verdict: 1, or 0
// on every rank with w->err the first failing rank's message ("FILE: WHAT:
// REASON", e.g. a full disk's "No space left on device"). Each collective
// HDF5 call is checked and agreed on (comm_agree_msg) before the next, so a
// failure one rank sees stops every rank and none waits in a collective call
// the others left. A round's features are flushed to disk before their /done
// marks are written: /done never claims features that are not there.

// What the root attributes record and a reopened file must match.
typedef struct {
    const char *backbone, *digest, *pos_interp; // attributes backbone, weights_digest, pos_interp
    int final_norm, T_in, image_size;
    const int *layers; // extract.layers (kept by the caller while the writer lives)
    int n_layers;
    int T, H, W, N, d; // the backbone's output per clip
    // extract.clip: CLIP's weights digest (attribute clip_weights_digest) and
    // its embedding width E (/clip_embeddings [clips, E], written round by
    // round); NULL and 0 without CLIP
    const char *clip_digest;
    int clip_e;
} FeaturesSetup;

// The embeddings a new file gets beside the features: imported from files
// (extract.text_embeddings / clip_embeddings: /text_embeddings [labels, e],
// /clip_embeddings [clips, e]), or CLIP's label embeddings computed by the
// caller (text [labels, text_e], extract.clip). NULL / 0: none.
typedef struct {
    const char *text_file, *clip_file;
    const float *text;
    int text_e;
} FeaturesEmbeddings;

typedef struct {
    Comm *comm;
    char path[4200]; // the file written (OUT.partial), for the messages
    const int *layers;
    int n_layers, n_open;
    int T, N, d;
    hid_t file, dxpl;
    hid_t *feat; // one per layer
    hid_t clip;  // /clip_embeddings written round by round (clip_e > 0), else -1
    int clip_e;
    hid_t done, failed;
    char err[COMM_MSG_MAX]; // the agreed message of the failure that stopped the run
} FeatureWriter;

// Creates path (truncating it): every dataset, /done and /failed all zero,
// the labels, split, ids and label names of l, the embeddings of emb, an
// empty /clip_embeddings [clips, su->clip_e] where su->clip_e > 0, every root
// attribute (format_version included), then flushes it. On failure (0) the
// file holds no clip yet: it is closed and removed.
int features_write_create(FeatureWriter *w, Comm *c, const char *path, const FeaturesSetup *su, const ClipList *l,
                          const FeaturesEmbeddings *emb);
// Reopens path for writing and checks it was made by this setup for n_clips
// clips (format_version, backbone, digest, layers, T, N, d, T_in, image_size,
// final_norm, clips, and the CLIP digest: "none" or absent without CLIP). 0, or -1 with err naming what differs ("...; delete it
// or change extract.out"): the caller agrees (comm_agree), as on any check.
int features_write_reopen(FeatureWriter *w, Comm *c, const char *path, const FeaturesSetup *su, int n_clips, char *err,
                          size_t cap);
// The same checks on a finished file, opened read-only and closed again.
int features_write_check(Comm *c, const char *path, const FeaturesSetup *su, int n_clips, char *err, size_t cap);
// After create or reopen: opens the datasets and reads /done (n clips) into done.
int features_write_begin(FeatureWriter *w, uint8_t *done);
// One round: this rank's features of ok_clips[0..n_ok) (increasing file
// order; half[layer]: [n_ok, T, N, d] float16 bits) and, with CLIP, their
// clip_emb [n_ok, clip_e] (else NULL), flushed to disk, then ok_clips marked
// in /done and bad_clips[0..n_bad) in /failed. Every rank calls it, with
// n_ok = n_bad = 0 when it has nothing.
int features_write_round(FeatureWriter *w, const int *ok_clips, int n_ok, uint16_t *const *half,
                         const float *clip_emb, const int *bad_clips, int n_bad);
// The last marks flushed, /done and /failed read back (n clips each), and the
// file closed. On failure the file is closed too.
int features_write_end(FeatureWriter *w, uint8_t *done, uint8_t *failed);
// Closes the file after a failure (w->err is kept; every rank still waits
// for the others).
void features_write_abandon(FeatureWriter *w);
// Rank 0 renames the closed partial file to path and syncs its directory;
// 1, or 0 (agreed) with the message in err (cap bytes).
int features_write_commit(Comm *c, const char *partial, const char *path, char *err, size_t cap);

#endif
