// options.h — a deck resolved ONCE into typed option structs, one per stage,
// which the stages take instead of the deck (no stage reads a deck by key).
//
// In:  a loaded, schema-checked deck (deck.h: every value present, typed and
//      in its range, defaults filled in), and what only the run knows (the
//      number of ranks).
// Out: a plain struct per stage whose fields are the deck's keys (same names,
//      C types, units as the schema's help says), and the grid's jobs
//      (jobs.h) for train; or one message in the deck's format, `FILE:LINE:
//      key: what is wrong` (deck_errorf, deck_where), for what the schema
//      alone cannot check. Like deck_load it prints nothing and never exits,
//      so every rank reaches the same verdict and the ranks leave together.
//
// Why: the deck's names and its look-ups stay in this layer; a stage reads
// fields the compiler checks (a misspelt key is a build error, not a die()
// at run time), and a reader sees in one struct every option a stage obeys
// (the saev `Config` resolved once and passed down).
//
// One section per stage below, each `XOptions`, `x_options_resolve` and
// `x_options_free`; add a stage's section in the same form (a field per key
// of the stage's schema rows, resolved in options.c's matching section).
#ifndef STSAE_OPTIONS_H
#define STSAE_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "stsae/deck/deck.h"
#include "stsae/deck/jobs.h"

// ============================== train ============================================
// The deck's top-level keys and its train section (deck_schema.c), and the
// jobs of train.grid. run_dir, features, device and comm_backend are the deck's text
// (valid while the deck lives).
typedef struct {
    const char *run_dir;      // everything a run writes goes under it
    const char *device;       // "cpu" | "cuda"
    const char *comm_backend; // "nccl" | "mpi": sums between GPUs (device: cuda)
    const char *features;     // train.features, relative to run_dir (each job's layer: Job.layer)
    int ranks_per_job;        // divides the ranks of the run (checked)
    int lockstep;             // at most this many jobs of a group trained together on the same batches
    double lockstep_gb;       // and at most this much memory per rank for them together (estimated)
    const char *gemm;         // "fp32" | "bf16": the encoder GEMM's math (train.gemm)
    const char *gemm_isa;     // bf16 on the CPU: the instruction set oneDNN runs (gemm_bf16_available)
    int gemm_native;          // ... and whether it has bf16 products
    const char *device_features; // "auto" | "resident" | "stream": device: cuda batches from GPU memory or the file
    int streams, mix_clips;   // data streams of loose tokens and pairs; clips per stream window
    int epochs;
    int64_t max_steps;        // INT64_MAX when absent (no limit)
    double warmup_frac;       // linear warm-up share of the steps
    double adam_beta1, adam_beta2, adam_eps;
    int64_t dead_tokens;      // a latent unused this long is dead
    double theta_decay;       // BatchTopK threshold EMA decay
    double checkpoint_every;  // seconds; 0: only on stop requests
    double progress_every;    // seconds between progress lines
    int64_t scale_sample;     // tokens sampled for the input scale
    JobList *jobs;            // the grid expanded (jobs.h); owned
    const Deck *deck;         // for train_options_check's messages only (FILE:LINE of a job's keys)
} TrainOptions;

// Resolves d's train section for a run of n_ranks ranks. 0, or -1 with one
// message in err: the grid's (jobs_expand), or `FILE:LINE:
// train.ranks_per_job: R does not divide the N ranks of the run`. The deck
// must have a train section (stage.h checks it). train_options_free after
// either.
int train_options_resolve(const Deck *d, int n_ranks, TrainOptions *o, char *err, size_t cap);
void train_options_free(TrainOptions *o);

// Every job against the data it will train on (jobs_check: k <= m, batches,
// T, W, ...), before any job trains. 0, or -1 with `FILE:LINE: key: job NAME:
// ...` in err.
int train_options_check(const TrainOptions *o, const DataShape *data, char *err, size_t cap);

// ============================== run ==============================================
// What `stsae run` needs to chain the stages: which sections the deck has
// (a stage runs when its section is there; eval and report with train), and
// run_dir (the stop file between stages, the report). Nothing to free.
typedef struct {
    const char *run_dir;
    int has_synth, has_extract, has_train;
} RunOptions;

void run_options_resolve(const Deck *d, RunOptions *o);

// ============================== extract ==========================================
// The deck's extract section (deck_schema.c). Paths are the deck's text,
// relative to run_dir (valid while the deck lives); NULL where the deck has
// none.
typedef enum { EXTRACT_CSV, EXTRACT_SSV2, EXTRACT_K400, EXTRACT_PIXELS } ExtractInputKind;

// extract.input: exactly one of its keys (the schema's DECK_ONE_OF).
typedef struct {
    ExtractInputKind kind;
    const char *csv;          // csv: the list; k400: its CSV
    const char *videos;       // ssv2, k400: the directory of the videos
    const char *annotations;  // ssv2: the annotation JSON
    const char *labels;       // ssv2: labels.json
    const char *pixels;       // pixels: the HDF5 of preprocessed /pixels
} ExtractInput;

typedef struct {
    const char *run_dir;
    const char *device;          // "cpu" | "cuda"
    ExtractInput input;
    const char *backbone;        // "pixels", "motion", or a Hugging Face model directory
    int *layers, n_layers;       // extract.layers (blocks whose output is saved); owned
    char layers_where[600];      // "FILE:LINE: extract.layers", for the layer check's message
    int final_norm;              // extract.final_norm
    const char *pos_interp;      // "hf" | "meta"
    const char *gpu_math;        // "fp32" | "tf32" | "bf16": device: cuda's backbone GEMMs
    const char *out;             // the feature file
    int frames, patch, image_size, batch_clips;
    double test_frac;            // test share of each label's clips without a split
    uint64_t split_seed;
    double max_failed_frac;
    const char *text_embeddings, *clip_embeddings; // to import, or NULL
    const char *clip;            // extract.clip: a CLIP directory whose embeddings extract computes, or NULL
    char clip_where[600];        // "FILE:LINE" of extract.clip (messages)
} ExtractOptions;

// Resolves d's extract section (the deck must have one; stage.h checks it).
// Cannot fail: the schema has checked every value. extract_options_free after.
void extract_options_resolve(const Deck *d, ExtractOptions *o);
void extract_options_free(ExtractOptions *o);

// ============================== synth ============================================
// The deck's synth section (deck_schema.c): the synthetic video set. run_dir,
// out and codec are the deck's text (valid while the deck lives). Nothing to
// free.
typedef struct {
    const char *run_dir, *out, *codec; // the set goes to run_dir/out; codec: mpeg4, mjpeg, ffv1, vp9
    int clips, size, frames, fps, quality, distractors;
    double noise, test_frac;
    uint64_t seed;
} SynthOptions;

// Resolves d's synth section (the deck must have one; stage.h checks it).
// Cannot fail: the schema has checked every value and its range.
void synth_options_resolve(const Deck *d, SynthOptions *o);

// ============================== eval =============================================
// The deck's eval section (its defaults where the deck has none: stage.h's
// fill), the feature file the jobs trained on (train.features, train.layer)
// and the jobs of train.grid, whose models are evaluated.
#define EVAL_MAX_LIST 16
typedef struct {
    const char *run_dir;
    const char *device;          // "cpu" | "cuda" (each clip encoded and decoded on the rank's GPU; eval.c)
    const char *features;        // train.features, relative to run_dir
    int layer;                   // train.layer: the raw row `raw` (each job: its own layer, Job.layer)
    int clip_embeddings;         // eval.embeddings: 1 clip (the file's /clip_embeddings), 0 raw
    int text_stand_in;           // eval.text_stand_in: 1 hashed (text_hash.h) where the file has no /text_embeddings
    int use_max;                 // eval.clip_value: 1 max, 0 mean
    int probe_max_iter, random_draws;
    int n_ablate;                // eval.ablate_n, its first EVAL_MAX_LIST entries
    int64_t ablate[EVAL_MAX_LIST];
    int n_smooth;                // eval.smoothing, its first EVAL_MAX_LIST entries
    double smooth[EVAL_MAX_LIST];
    double progress_every;       // seconds between progress lines
    JobList *jobs;               // the grid expanded (jobs.h); owned
} EvalOptions;

// 0, or -1 with the grid's message (jobs_expand) in err. The deck must have
// a train section (stage.h checks it). eval_options_free after either.
int eval_options_resolve(const Deck *d, EvalOptions *o, char *err, size_t cap);
void eval_options_free(EvalOptions *o);

// ============================== report ===========================================
// What `stsae report RUN_DIR` and `stsae browse RUN_DIR` need of the deck a
// run was trained with (RUN_DIR/train.yaml, loaded here without overrides):
// the jobs in grid order, the feature file, the clip list (its videos for the
// montages and the browser's frames) and the report section.
typedef struct {
    Deck *deck;                  // owned: the saved deck (the strings below live in it)
    JobList *jobs;               // owned
    const char *features;        // train.features
    int layer;                   // train.layer
    int has_extract;             // the deck has an extract section, so input is set
    ExtractInput input;
    int browse;                  // report.browse: report also writes RUN_DIR/browser/
    int browse_latents;          // report.browse_latents: latent pages per job
} ReportOptions;

// 0, or -1 with deck.h's or the grid's message in err. report_options_free
// after either.
int report_options_load(const char *deck_path, ReportOptions *o, char *err, size_t cap);
void report_options_free(ReportOptions *o);

#endif
