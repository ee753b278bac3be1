// sae.h — the sparse autoencoder of SPEC §1: configuration, parameters carved
// out of one flat buffer, and one training step (forward + hand-written
// backward) for every variant.
//
// In:  the parameters, a batch of already-scaled tokens x [n, d] laid out as
//      whole clips [clips, T, H*W, d], raster pairs [P, 2, d] or loose tokens,
//      and the dead-latent mask (AuxK).
// Out: every loss term and the raw gradients of the total loss, in a flat
//      buffer with the same layout as the parameters, so that the allreduce,
//      the optimizer and a checkpoint each touch one buffer.
//
// Pure compute: no MPI, HDF5 or YAML. Quantities that must be taken over the
// global batch of a data-parallel job (FVU sums, the BatchTopK threshold) go
// through the optional SaeReduce hooks; NULL means this process holds the
// whole batch.
//
// Cost: the encoder forward is the only dense GEMM (cblas_sgemm over chunks
// of tokens). Everything else is O(k d) per token: selection by a bounded
// heap, decoder forward/backward and the encoder weight gradient over the
// kept latents only, the InfoNCE terms from overlapping code pairs (infonce.h).
#ifndef STSAE_SAE_H
#define STSAE_SAE_H

#include <stddef.h>
#include <stdint.h>

#include "stsae/sae/codes.h"

typedef enum { SEL_TOPK, SEL_BATCHTOPK, SEL_SPARSEMAX, SEL_ENTMAX15 } SaeSelect;
typedef enum { CTR_NONE, CTR_TEMPORAL, CTR_SEPARATE, CTR_RASTER } SaeContrast;

typedef struct {
    int d;              // input width
    int m;              // dictionary size
    int k;              // kept latents per token (TopK), or per token on average (BatchTopK)
    int k_aux;          // AuxK latents per token (0: AuxK off)
    SaeSelect select;
    SaeContrast contrast;
    int m_high;         // Matryoshka high-level group size; 0 = no L_high
    int frozen_decoder; // W_dec and b_dec get zero gradient (only the encoder trains)
    float alpha;        // AuxK weight
    float beta;         // L_high weight
    float lambda_t, lambda_s, lambda_r; // InfoNCE weights (temporal, spatial, raster)
    float tau;          // InfoNCE temperature
    float temp_s;       // sparsemax / entmax input temperature T_s
} SaeConfig;

// Fills cfg from a variant name of SPEC §1 ("standard", "temporal", "separate",
// "raster", "standard+M", "temporal+M", "separate+M", "sparsemax", "entmax15",
// "frozen": its row of the table in variants.h) and the defaults of SPEC §1.
// Returns 0, or -1 for an unknown name. An optional InfoNCE term (sparsemax,
// entmax15) starts off: set the weights, then call sae_config_resolve.
int sae_config_init(SaeConfig *cfg, const char *variant, int d, int m);
// Once cfg's weights are set: the InfoNCE term of its variant at
// cfg->lambda_t (sparsemax and entmax15 train with L_temp when lambda_t > 0).
void sae_config_resolve(SaeConfig *cfg);
// The canonical name of cfg's variant (inverse of sae_config_init, also after
// sae_config_resolve); NULL for a configuration no variant describes.
const char *sae_variant_name(const SaeConfig *cfg);

// Named tensors carved out of one flat buffer, in this order.
// Storage note: the decoder is held as its transpose, one contiguous row per
// latent (row j = column j of SPEC's W_dec [d, m]), because every decoder
// access is "the atoms of the kept latents". File I/O transposes.
typedef struct {
    float *W_enc; // [m, d]
    float *b_enc; // [m]
    float *D;     // [m, d]   D[j*d + i] = W_dec[i, j]
    float *b_dec; // [d]
} SaeTensors;

size_t sae_num_params(const SaeConfig *cfg);
void sae_carve(float *flat, const SaeConfig *cfg, SaeTensors *t);

// Initialization of SPEC §1: decoder rows random unit vectors from `seed`,
// W_enc = D (= W_dec^T), b_enc = 0, b_dec = mean (may be NULL: zeros).
void sae_init(const SaeConfig *cfg, SaeTensors *p, uint64_t seed, const float *mean);

// Geometry of a batch. Exactly one layout is used:
//   clips > 0: x is [clips, T, H*W, d], tokens in (clip, t, r, c) order;
//   pairs > 0: x is [pairs, 2, d], token 2i is an anchor, 2i+1 its partner;
//   otherwise: x is [n_tok, d] loose tokens.
typedef struct {
    int n_tok;
    int clips, T, H, W;
    int pairs;
} SaeBatch;

SaeBatch sae_batch_tokens(int n);
SaeBatch sae_batch_clips(int clips, int T, int H, int W);
SaeBatch sae_batch_pairs(int pairs);

// Global reductions for data-parallel steps (comm.h implements them over the
// ranks of a job). sum_f64 / sum_i64 sum a buffer element-wise over the ranks,
// in place. The InfoNCE variants also exchange codes: gather_codes
// concatenates every rank's codes, rows and entries in rank order, into *all
// and gives this rank's first row and entry in it; return_grad takes one float
// per entry of `all`, sums it over the ranks, and writes the n_mine sums of
// this rank's entries to mine.
// The device twins (optional, for the CUDA step; comm_device.h sets them, on
// device_ctx): the same exchanges on buffers in device memory, synchronous.
// Where they are NULL the step stages its buffers through the host hooks.
// sum_i64_device is sum_i64's. The code exchange comes in three calls so that
// the step can size its buffers between them: codes_layout_device gathers
// every rank's rows and entries (host counts; this rank's row lengths in
// row_len_mine) and gives the batch's rows, entries, this rank's first row
// and entry, and every row's length (*row_len, host, valid until the next
// exchange); codes_entries_device then gathers the entries (device idx and
// val, this rank's nnz_mine of the layout) in rank order; return_grad_device
// is return_grad on device buffers (one float per entry of the batch in,
// this rank's summed entries out).
typedef struct {
    void (*sum_f64)(void *ctx, double *buf, int n);
    void (*sum_i64)(void *ctx, int64_t *buf, int n);
    void (*gather_codes)(void *ctx, const SparseCodes *mine, SparseCodes *all, int64_t *row0, int64_t *ent0);
    void (*return_grad)(void *ctx, const float *all_buf, float *mine, int64_t n_mine);
    void *ctx;
    void *device_ctx;
    void (*sum_i64_device)(void *device_ctx, int64_t *dev_buf, int n);
    void (*codes_layout_device)(void *device_ctx, int rows_mine, int64_t nnz_mine, const int *row_len_mine,
                                int64_t *n_rows, int64_t *nnz, int64_t *row0, int64_t *ent0, const int **row_len);
    void (*codes_entries_device)(void *device_ctx, const int32_t *idx_mine, const float *val_mine, int32_t *idx_all,
                                 float *val_all);
    void (*return_grad_device)(void *device_ctx, const float *all_buf, float *mine);
} SaeReduce;

// buf summed over the ranks in place, or left as it is for one process (red
// NULL). The step (sae.c) and its CUDA twin (cuda/sae/sae.cu) both use this one.
static inline void sae_sum_f64(const SaeReduce *red, double *buf, int n) {
    if (red) red->sum_f64(red->ctx, buf, n);
}

typedef struct {
    double rec, aux, high, temp, spat, rast, total;
    double l0;           // mean kept latents per token
    float min_kept;      // BatchTopK: the smallest kept activation of the global batch (theta's EMA)
    int n_dead;          // dead latents in the mask given
    int64_t n_tok_global;
} SaeLosses;

typedef struct SaeWork SaeWork;
// Scratch for batches of up to max_tok tokens. The encoder works in chunks of
// SAE_CHUNK_TOKENS tokens (pre-activations: chunk * m floats); BatchTopK
// keeps each token's candidates meanwhile (select.h: at least
// SAE_BATCH_CAND_PER_K * k of them, about 1.2 times that on the benchmark's
// data; 8 bytes each).
enum { SAE_CHUNK_TOKENS = 2048, SAE_BATCH_CAND_PER_K = 4 };
SaeWork *sae_work_create(const SaeConfig *cfg, int max_tok);
void sae_work_free(SaeWork *w);
// Tuning (and tests): tokens per encoder GEMM chunk (at most the default,
// 2048) and tokens per block of the latent-major gradient pass (default 1024:
// a block's x and dL/dxhat rows, 2 x 1024 x d floats, 6 MB at d = 768, stay in
// the last-level cache while every latent's rows gather from them; each block
// then reads and writes the gradient rows once more, which costs less:
// benchmarks/RESULTS.md, 4096 -> 1024 took the standard step's pass from 57
// to 32 ms on a Zen 4). Results depend on neither beyond float rounding.
void sae_work_set_blocks(SaeWork *w, int chunk_tokens, int grad_block_tokens);

// Math of the encoder GEMM, the step's only dense product (train.gemm): plain
// fp32, TF32 (the GPU only), or bf16 copies of x - b_dec and W_enc with fp32
// accumulation. The CPU step does bf16 through gemm_bf16.h (oneDNN; dies
// where the build has none: check gemm_bf16_available first); the backward
// pass stays fp32. Evaluation (sae_encode) is fp32 whatever the training.
typedef enum { SAE_GEMM_FP32, SAE_GEMM_TF32, SAE_GEMM_BF16 } SaeGemmMath;
void sae_work_set_math(SaeWork *w, SaeGemmMath math);

// One forward + backward. x: [n_tok, d] scaled tokens. dead: uint8 [m], 1 = dead
// (NULL or k_aux == 0: no AuxK). grad: overwritten with the gradient of the
// local tokens' share of the global total loss (sum it over ranks).
// red: NULL for a single process. Data-parallel, every rank holds whole clips
// (temporal, separate) or whole pairs (raster) of the global batch.
void sae_step(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *grad,
              const float *x, const SaeBatch *b, const uint8_t *dead,
              const SaeReduce *red, SaeWork *w, SaeLosses *out);

// Where the last sae_step's time went (wall seconds per phase; the phases
// cover the whole call): batch statistics, the encoder sgemm (with the
// x - b_dec rows it multiplies, and the bias pass of the selections other
// than TopK, which adds it during its own scan), the selection (bias, TopK / BatchTopK /
// simplex, AuxK's dead-latent TopK), the fused decode + loss + dL/dz, AuxK's
// forward, InfoNCE and the selection's backward, the latent index, the
// latent-major gradient pass (with AuxK's dense gradients) and db_dec.
// bench_step --phases prints them; nothing else reads them.
typedef enum {
    SAE_PHASE_STATS,
    SAE_PHASE_GEMM,
    SAE_PHASE_SELECT,
    SAE_PHASE_DECODE,
    SAE_PHASE_AUXK,
    SAE_PHASE_BACKWARD,
    SAE_PHASE_INDEX,
    SAE_PHASE_GRADS,
    SAE_PHASE_BDEC,
    SAE_N_PHASES
} SaePhase;
extern const char *const sae_phase_names[SAE_N_PHASES];
const double *sae_step_phases(const SaeWork *w);
// BatchTopK: the rows of the last step (all ranks) encoded a second time
// because their candidates could have missed the threshold (select.h's
// batch_cands_redo; inside the select phase). bench_step prints it.
int64_t sae_step_batch_redo(const SaeWork *w);

// The codes of the last sae_step (token-major, for the dead-latent counters
// and evaluation).
const SparseCodes *sae_last_codes(const SaeWork *w);

// Encode only (evaluation): codes of x with the selection of cfg; BatchTopK
// uses the fixed threshold theta (keep a_j > theta).
void sae_encode(const SaeConfig *cfg, const SaeTensors *p, const float *x, int n,
                float theta, SaeWork *w, SparseCodes *out);

// Decode (evaluation): xhat [z->n_rows, d] = W_dec z + b_dec; with
// n_latents < m only the latents j < n_latents count (the +M high-level group).
void sae_decode(const SaeConfig *cfg, const SaeTensors *p, const SparseCodes *z, int n_latents, float *xhat);

#endif
