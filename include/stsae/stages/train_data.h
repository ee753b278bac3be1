// train_data.h — training batches from the feature file (SPEC §1 "Variants and
// batches"), for one rank of a data-parallel job.
//
// In:  the open feature file, the training clips, the job's batch kind and
//      global batch size, its seed, and this rank's place in its group.
// Out: for training step g, this rank's share of global batch g as scaled
//      float32 tokens, laid out as sae_step wants it (loose tokens, whole
//      clips, or raster pairs).
//
// The global batch of step g is a pure function of (seed, g), never of the
// number of ranks: the ranks of a group take contiguous shares of it, so 1, 2
// or 3 ranks train on the same tokens, and resuming at step g needs no state
// but g (checkpoints store the step).
//
//  - Whole clips (temporal, separate): epoch e visits the training clips in a
//    seeded permutation; the clip sequence runs on across epochs; batch g is
//    clips [g B, (g + 1) B) of it. Rank r of R reads clips [B r / R, B (r+1) / R).
//  - Loose tokens (standard, +M, frozen, sparsemax) and raster pairs: S
//    streams (train.streams, fixed by the deck so that it does not depend on
//    R). Stream s owns the clips of the epoch permutation at positions
//    i = s (mod S); it reads them `mix_clips` at a time (a window) and emits
//    the window's items (tokens; or adjacent raster pairs (i, i+1), i = 2j + o,
//    o a seeded per-clip offset) in a seeded random order: the mixing buffer.
//    Global batch g is items [g b_s, (g + 1) b_s) of every stream, b_s = B / S
//    (the first B mod S streams one more), in stream order; rank r serves the
//    streams [S r / R, S (r + 1) / R).
//
// An epoch is one pass over every training token (raster: every token once
// as part of a pair); training runs floor(epochs * items / B) steps.
#ifndef STSAE_TRAIN_DATA_H
#define STSAE_TRAIN_DATA_H

#include <stdint.h>

#include "stsae/comm/comm.h"
#include "stsae/deck/jobs.h" // JobBatch
#include "stsae/io/features.h"
#include "stsae/sae/sae.h" // SaeBatch

typedef struct {
    JobBatch kind;
    int64_t batch;   // global batch: tokens, clips or pairs
    int streams;     // S (tokens, pairs)
    int mix_clips;   // clips per stream window
    uint64_t seed;
    int rank, size;  // this rank in its group
    int sources_only; // the loader names the batches' tokens (data_batch_sources) and reads nothing
} DataConfig;

typedef struct DataLoader DataLoader;

// train: the training clips (indices into f), n_train of them; the loader keeps
// a copy. Dies with a message naming the deck keys if the batch cannot be made
// (e.g. more clips per batch than training clips).
DataLoader *data_create(const FeatureFile *f, const int32_t *train, int n_train, const DataConfig *c);
void data_free(DataLoader *dl);

// Steps in `epochs` epochs.
int64_t data_steps(const DataLoader *dl, int epochs);
// The most tokens this rank's share of any batch holds.
int data_max_local_tokens(const DataLoader *dl);
// Fills x with this rank's share of global batch `step` (0-based), every value
// multiplied by scale, and returns its geometry. Reads what it needs.
SaeBatch data_batch(DataLoader *dl, int64_t step, float scale, float *x);
// The same batch as the file stores it, float16 unscaled (h: as many values):
// for the GPU, which converts it (sae_cuda.h dev_tokens_f16, the same bits).
SaeBatch data_batch_f16(DataLoader *dl, int64_t step, uint16_t *h);
// The same batch named instead of read (features resident elsewhere, e.g. on
// the GPU: DataConfig.sources_only): src[row] = clip * T*N + token, the
// token's place in the layer (clip: its index in the file), for every row of
// the batch that data_batch would fill, in the same order.
SaeBatch data_batch_sources(DataLoader *dl, int64_t step, int64_t *src);
// Seconds spent reading the file so far (for the timing table).
double data_read_seconds(const DataLoader *dl);

// The input scale of SPEC §1 and the mean of the scaled sample (b_dec's
// initial value, d floats), from about `sample_tokens` tokens of `n_clips`
// evenly spaced training clips. The ranks of comm share the reading; the sums
// are taken in clip order, so every rank count gives the same bits.
float data_input_scale(const FeatureFile *f, const int32_t *train, int n_train, int64_t sample_tokens, Comm *comm,
                       float *mean_scaled);

#endif
