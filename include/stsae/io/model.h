// model.h — a trained SAE and a training checkpoint on disk (HDF5, one file
// each, written under a temporary name, synced and renamed, every return
// checked: a kill or a full disk never leaves a half-written file under the
// final name, and a model.h5 that exists is a finished job). model.c is the
// one module that writes, reads and validates both formats, and holds the
// one list of the SAE configuration's attribute names (check-step reads a
// CASE.h5's configuration through it).
//
// model.h5 (the product of a job; eval reads it): params/W_enc [m,d],
// params/b_enc [m], params/W_dec [d,m] (SPEC's orientation), params/b_dec [d],
// and root attributes: format_version (MODEL_FORMAT_VERSION), every SaeConfig
// value (variant, d, m, k, k_aux, alpha, beta, m_high, lambda_t, lambda_s,
// lambda_r, tau, T_s), the input scale s, BatchTopK's theta, and the job's
// name, hash, seed, layer, steps, tokens, training tokens/s and the last
// step's losses (loss_total, loss_rec, ...), l0 and dead_frac; gemm, the
// encoder GEMM's math in training (train.gemm: "fp32" or "bf16"; absent in
// files written before it, read as fp32).
//
// ckpt.h5 (resume): format_version (CKPT_FORMAT_VERSION), the flat parameter
// buffer and both Adam moments (sae_carve layout), the dead-latent clocks, and
// the step, tokens, theta, scale and job hash; enough that a resumed run
// continues bit for bit (train_data.h makes the data a function of the step).
//
// Readers check format_version (absent: 1, a file from before versions; any
// other number is refused, h5io.h), every integer attribute whole and in
// range, and every tensor's shape before anything is sized from it; they die
// naming the file and the reason.
#ifndef STSAE_MODEL_H
#define STSAE_MODEL_H

#include <hdf5.h>
#include <stdint.h>

#include "stsae/sae/sae.h"

// The format versions this stsae writes and reads.
#define MODEL_FORMAT_VERSION 1
#define CKPT_FORMAT_VERSION 1

typedef struct {
    char name[160];
    uint64_t hash;
    int64_t seed;
    int layer;
    float scale;         // training happened on scale * x
    float theta;         // BatchTopK evaluation threshold (0 for other selections)
    int64_t steps, tokens;
    double tokens_per_s; // training throughput of the job (global tokens / s)
    // the last training step: loss terms (total, rec, aux, high, temp, spat,
    // rast), mean L0 and the dead fraction
    double loss[7], l0, dead_frac;
    char gemm[8];        // the encoder GEMM's math in training (train.gemm: fp32, bf16); files
                         // written before the attribute existed read as fp32
} ModelInfo;

// The four tensors of a flat buffer under prefix/ (W_dec written as [d, m]),
// and back into a flat buffer (malloc'ed, allocated once the tensors are
// read); the read checks the shapes against cfg and that every value is
// finite. Both die naming the file, the dataset and the reason (check-step).
void model_write_tensors(hid_t f, const char *prefix, const SaeConfig *cfg, const float *flat);
float *model_read_tensors(hid_t f, const char *path, const char *prefix, const SaeConfig *cfg);

// Where a file keeps the SAE's configuration (root attributes, the names of
// SPEC §5: variant, k, k_aux, alpha, beta, lambda_t, lambda_s, lambda_r, tau,
// T_s):
//   SAE_ATTRS_MODEL  model.h5: all of them, m_high as a count; all required.
//   SAE_ATTRS_CASE   check-step's CASE.h5 (SPEC §5): high_frac (a share of m,
//                    applied for BatchTopK only) instead of m_high; k_aux read
//                    only where the variant has AuxK; T_s optional.
typedef enum { SAE_ATTRS_MODEL, SAE_ATTRS_CASE } SaeAttrForm;
// Fills cfg from the variant attribute and the others of `form`, for an SAE of
// width d and m latents (the caller's: model.h5's attributes, CASE.h5's
// tensor shapes). Dies naming the file for an unknown variant, a missing
// attribute, an integer not whole or out of range (1 <= k <= m, 0 <= m_high
// <= m, k_aux >= 0), a float not finite, tau or T_s not > 0, high_frac
// outside (0, 1].
void model_read_config(hid_t f, const char *path, SaeAttrForm form, int d, int m, SaeConfig *cfg);

// Writes path (via path.tmp, renamed once synced: h5io.h). 0, or -1 with
// "FILE: what: reason" in err (cap bytes) and no file left behind; the caller
// decides how the ranks stop (a full disk is one rank's error).
int model_save(const char *path, const SaeConfig *cfg, const float *params, const ModelInfo *info, char *err,
               size_t cap);
// Reads a model file: fills cfg and info, returns the flat parameters (malloc'ed).
float *model_load(const char *path, SaeConfig *cfg, ModelInfo *info);
// The job hash of a model file alone (resume checks; dies naming the file).
uint64_t model_job_hash(const char *path);

typedef struct {
    int64_t step;   // optimizer steps done
    int64_t tokens; // global tokens seen
    float theta, scale;
    uint64_t hash;  // the job's
    double train_s; // seconds of training so far (for tokens/s across restarts)
} TrainState;

// As model_save: 0, or -1 with the message in err; a failed save leaves the
// previous checkpoint (if any) in place.
int ckpt_save(const char *path, const SaeConfig *cfg, const float *params, const float *m1, const float *m2,
              const int64_t *last_fired, const TrainState *st, char *err, size_t cap);
// 0: loaded; -1: no checkpoint at path. Dies naming the file if it is
// unreadable, of another job (hash) or of another shape.
int ckpt_load(const char *path, const SaeConfig *cfg, float *params, float *m1, float *m2, int64_t *last_fired,
              TrainState *st);

#endif
