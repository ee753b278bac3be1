// jobs.h — the grid of a deck expanded into training jobs (SPEC §1 "The grid").
//
// In:  a loaded deck (deck.h) with a train section; the variant table
//      (sae/variants.h) for every rule that depends on the variant.
// Out: the jobs, in a stable order: grid entries in file order; within an
//      entry, its variants in list order (`variant: [temporal, separate]`;
//      one name is a list of one), then for each variant the Cartesian
//      product of the entry's list-valued keys that it uses (keys in file
//      order, the last varying fastest); then one job per seed (the entry's
//      `seeds`, else train.seeds). Each job holds every value the SAE step
//      needs, resolved by its variant's row, a readable unique name, a hash
//      of its canonical text (run directories, checkpoint validation) and a
//      relative cost.
//
// Names: the entry's `name`, else the variant's, then `_KEYVALUE` per key of
// the entry that the variant uses (file order), then `_seedS`; an entry
// with a name and several variants names its jobs `NAME_VARIANT_...`.
// `{variant: [standard, temporal], lambda: [0.1, 1.0]}` gives standard_seed0,
// temporal_lambda0.1_seed0, temporal_lambda1_seed0: a key applies to the
// listed variants that use it, and the others expand as if it were absent.
// `layer` is a key like the others, used by every variant (the layer
// analysis: `{variant: standard, layer: [3, 7, 11]}` gives standard_layer3_seed0,
// ...): each job reads its own layer of the one feature file (train.features),
// and a job without one reads train.layer (whose canonical text, hence hash,
// is what it always was).
//
// Variant rules (the table's `uses`): a deck's `lambda` sets lambda_t
// (temporal, temporal+M, and sparsemax / entmax15 when lambda > 0),
// lambda_t = lambda_s (separate, separate+M) or lambda_r (raster); an
// entry's explicit lambda_t / lambda_s win. Values a variant does not use are
// 0 (tau without a contrastive term, high_frac and beta without +M, T_s
// without sparsemax / entmax15, k_aux and alpha with them), so that two jobs
// that would train the same SAE get the same canonical text. A grid entry
// that sets a value none of its variants uses is an error, and so are a
// variant listed twice and two jobs with the same text or the same name.
//
// Before anything trains, jobs_check tests every job against the data it will
// see (the width d and the T x H x W token grid of the feature file's layer,
// and its training clips): the things that would otherwise fail only when
// that job starts, after other jobs have trained (SPEC §1): m = expansion * d
// fits an int; its layer is among the data's (when DataShape.layers is known); k <= m and k_aux <= m; +M's high-level group
// m_h = round(high_frac * m) with 1 <= m_h < m; clip batches (temporal,
// separate, sparsemax with L_temp) need T >= 2, separate also W >= 2, raster
// a pair per clip (T * N >= 3); a global batch's tokens fit an int; and,
// when the training clips are known, a clip batch no larger than them and at
// least one full batch in train.epochs. `stsae train` calls it on every rank
// once the feature file is open; `stsae check` with the feature file's shape,
// or the shape the deck's extract section will produce.
//
// Cost model (rough, documented): an epoch is the same tokens for every job,
// and the encoder GEMM (m = expansion * d columns) dominates, so
// cost = expansion * (the row's cost_nce with a contrastive term: 1.25)
// * (the row's cost: 1.15 with +M, else 1).
#ifndef STSAE_JOBS_H
#define STSAE_JOBS_H

#include <stdint.h>

#include "stsae/deck/deck.h"
#include "stsae/sae/variants.h"

typedef SaeBatchKind JobBatch; // BATCH_TOKENS, BATCH_CLIPS, BATCH_PAIRS

typedef struct {
    int index;           // position in the expanded list
    int entry;           // train.grid[entry] made it
    char name[160];      // e.g. "temporal_lambda0.1_tau0.1_seed0" (the entry's name as prefix if given)
    const char *variant; // one of the variant names of SPEC §1 (rules->name)
    const SaeVariant *rules; // its row of the variant table
    double lambda_t, lambda_s, lambda_r, tau, high_frac, T_s, alpha, beta;
    int k, k_aux, expansion;
    int layer;           // the feature file's layer it trains on: its entry's `layer`, else train.layer
    double lr;           // 0: the default of SPEC §1, see job_lr
    int64_t seed;
    JobBatch batch_kind; // whole clips (contrastive by clip), raster pairs, or loose tokens
    int64_t batch;       // global batch size in those units
    char *canon;         // canonical text of every value that shapes the trained SAE
    uint64_t hash;       // FNV-1a 64 of canon
    double cost;         // relative, see above
} Job;

typedef struct {
    int n;
    Job *job;
} JobList;

// NULL on error, with one message in err naming the file, line and key; like
// deck_load it prints nothing and never exits, so all ranks fail together.
// A deck without a train section gives an empty list.
JobList *jobs_expand(const Deck *d, char *err, size_t errcap);
void jobs_free(JobList *jobs);

// The learning rate of a job on features of width d.
double job_lr(const Job *job, int d);

// m = expansion * d, in 64 bits (jobs_check refuses jobs where it exceeds INT_MAX).
int64_t job_latents(const Job *job, int d);
// +M: the high-level group m_h = round(high_frac * m); 0 without +M.
int64_t job_m_high(const Job *job, int64_t m);

// The data the jobs train on, for jobs_check.
typedef struct {
    int d, T, H, W;      // token width; tokens per clip T x H x W
    int64_t n_train;     // training clips; < 0: unknown (checks against the clips skipped)
    const char *source;  // where the shape comes from, for messages (a file, "the extract section")
    const int *layers;   // the layers it will have (extract.layers); NULL: each job's layer not checked here
    int n_layers;
} DataShape;

// Checks every job against the deck and the data (above). 0, or -1 with one
// message "WHERE: KEY: job NAME: what is wrong" for the first job (in index
// order) that cannot run, KEY being the deck key to change (the grid entry's
// own value when it sets one) and WHERE its file:line. Like jobs_expand it
// prints nothing and never exits: every rank reaches the same verdict.
int jobs_check(const Deck *d, const JobList *jobs, const DataShape *data, char *err, size_t errcap);

// FNV-1a, 64 bit, of a NUL-terminated text.
uint64_t job_hash_text(const char *text);

#endif
