// train_prefetch.h — the next training batch read while the step runs: two
// buffers, one the step trains on, the other filled by a reader thread with
// the batch after it (train_data.h data_batch), so the read (HDF5, float16
// to float32, the scale) overlaps the step instead of preceding it.
//
// In:  a cohort's data loader and scale, the values of the largest batch,
//      the cohort's end (no batch at or after `last` is read ahead), and
//      whether the batches go to a GPU: then they are read as the file's
//      float16 values (data_batch_f16: half the bytes to upload, and the GPU
//      converts them with the CPU's bits) into pinned host memory (the upload
//      of a pinned buffer is a direct DMA; sae_cuda.h dev_host_alloc).
// Out: batch s and its tokens, for s = s0, s0 + 1, ... in order: the
//      same batches data_batch returns, so results do not change (the tests
//      of train: the same bits as before, on 1 to 3 ranks, resumed or not).
//
// Threads: the reader is the only thread that touches the loader (and so
// HDF5) while a read is under way; HDF5 is not thread-safe, so the caller
// calls prefetch_idle before it uses HDF5 itself (a checkpoint). The reader
// runs OpenMP code with one thread (the step has the cores). A read that
// dies (NaN features, a broken file) ends the process from the reader, with
// the loader's message, as it would from the main thread.
#ifndef STSAE_TRAIN_PREFETCH_H
#define STSAE_TRAIN_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

#include "stsae/stages/train_data.h"

typedef struct Prefetch Prefetch;

Prefetch *prefetch_start(DataLoader *dl, float scale, size_t values, int64_t last, int device);
// Batch s (the first call: any; then the one after the last call's): waits
// for its read (or reads it here when none is under way), then starts the
// read of s + 1 (when s + 1 < last) into the other buffer. Its tokens, valid
// until the next call: *x, scaled float32 (device 0), or *h, float16 as
// stored (device 1); the other is set to NULL.
SaeBatch prefetch_next(Prefetch *p, int64_t s, const float **x, const uint16_t **h);
// Returns when no read is under way (the one started stays done for the next call).
void prefetch_idle(Prefetch *p);
// Waits for a read under way, then frees everything.
void prefetch_free(Prefetch *p);

#endif
