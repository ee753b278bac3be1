// variants.h — the one table of SAE variants (SPEC §1 "Variants and batches"):
// every rule that tells one variant from another, one row per variant.
//
// In:  a variant's name (a deck's grid entry, a model file's or a CASE file's
//      `variant` attribute), or an SaeConfig made from one.
// Out: its row: the selection (TopK, BatchTopK, sparsemax, entmax-1.5), its
//      InfoNCE term (and whether that term is optional: sparsemax and
//      entmax15 train with L_temp only when lambda_t > 0), Matryoshka, a
//      frozen decoder, AuxK, the deck values that apply to it, the batch it
//      trains on, and its cost factors; and the names joined by '|', the
//      allowed values of the deck's `variant`.
//
// Readers: the deck schema (the allowed names), the grid expansion (which
// values apply, batch kind, cost: deck/jobs.h), sae_config_init (the step's
// configuration and its defaults, below), a training job's SaeConfig
// (stages/train_job.c), check-step, a model file's reader (sae_config_resolve)
// and the report (which jobs have a T_s). Adding a variant is one row in
// variants.c and its loss (sae.c / infonce.c / select.c); the names of the
// rows are the contract of SPEC §1 and §5, so never rename one.
//
// Pure compute: no deck, no files.
#ifndef STSAE_VARIANTS_H
#define STSAE_VARIANTS_H

#include "stsae/sae/sae.h"

// What a job's global batch is made of (deck: train.batch_tokens,
// train.batch_clips, train.batch_pairs).
typedef enum { BATCH_TOKENS, BATCH_CLIPS, BATCH_PAIRS } SaeBatchKind;

// The deck values that apply to a variant (bits of SaeVariant.uses, and of
// sae_variant_uses). A deck's single `lambda` sets every weight the variant
// uses: lambda_t (temporal), lambda_t = lambda_s (separate), lambda_r
// (raster); a grid entry's own lambda_t / lambda_s win.
enum {
    SAE_USES_LAMBDA_T = 1 << 0,  // temporal InfoNCE weight
    SAE_USES_LAMBDA_S = 1 << 1,  // spatial (right-neighbour) InfoNCE weight
    SAE_USES_LAMBDA_R = 1 << 2,  // raster InfoNCE weight (set by `lambda` only)
    SAE_USES_TAU = 1 << 3,       // InfoNCE temperature
    SAE_USES_HIGH_FRAC = 1 << 4, // Matryoshka high-level share of m
    SAE_USES_T_S = 1 << 5,       // sparsemax / entmax input temperature
    // derived, never in a row: alpha from auxk, beta from matryoshka, lambda from any weight
    SAE_USES_ALPHA = 1 << 6,
    SAE_USES_BETA = 1 << 7,
    SAE_USES_LAMBDA = SAE_USES_LAMBDA_T | SAE_USES_LAMBDA_S | SAE_USES_LAMBDA_R,
};

typedef struct {
    const char *name;      // SPEC §1: "standard", "temporal+M", ...
    SaeSelect select;      // TopK, BatchTopK (+M), sparsemax, entmax-1.5
    SaeContrast contrast;  // its InfoNCE term (CTR_NONE: none)
    int contrast_optional; // the term only when lambda_t > 0 (sparsemax, entmax15)
    int matryoshka;        // L_high over the first round(high_frac m) latents
    int frozen_decoder;    // only the encoder trains
    int auxk;              // AuxK on (k_aux, alpha)
    unsigned uses;         // SAE_USES_LAMBDA_T ... SAE_USES_T_S
    SaeBatchKind batch;    // its batch (tokens when an optional term is off)
    double cost_nce;       // cost factor while its InfoNCE term has a weight > 0
    double cost;           // cost factor always (+M: BatchTopK and L_high)
    int cuda;              // sae_step_cuda (sae_cuda.h) implements it, InfoNCE terms included
} SaeVariant;

// The rows, in the order of SPEC §1's table (the order `stsae check` and the
// schema list them in).
extern const SaeVariant sae_variants[];
extern const int sae_n_variants;

// "|standard|temporal|...|frozen": every name, each after a '|'. Use
// SAE_VARIANT_CHOICES, a constant that a static table (the deck schema) can hold.
extern const char sae_variant_bars[];
#define SAE_VARIANT_CHOICES (sae_variant_bars + 1) // "standard|temporal|...|frozen"

// The row of a name; NULL for an unknown name (or NULL).
const SaeVariant *sae_variant_find(const char *name);
// The row that describes cfg (made by sae_config_init, whatever
// sae_config_resolve did since): matched on selection, frozen decoder and
// InfoNCE term; NULL for a configuration no row describes.
const SaeVariant *sae_variant_of(const SaeConfig *cfg);

// Whether a deck value applies: any bit of `what` (SAE_USES_*).
int sae_variant_uses(const SaeVariant *v, unsigned what);
// The InfoNCE term it trains with at temporal weight lambda_t: the row's,
// except that an optional term is off unless lambda_t > 0.
SaeContrast sae_variant_contrast(const SaeVariant *v, double lambda_t);
// Its batch at temporal weight lambda_t: the row's, except loose tokens
// while an optional term is off.
SaeBatchKind sae_variant_batch(const SaeVariant *v, double lambda_t);

// The defaults of SPEC §1 that sae_config_init gives every variant; a row
// without AuxK gets k_aux = 0, a Matryoshka row m_high = round(0.2 m).
#define SAE_DEFAULT_K 64
#define SAE_DEFAULT_K_AUX 512
#define SAE_DEFAULT_ALPHA (1.0f / 32.0f)
#define SAE_DEFAULT_BETA 1.0f
#define SAE_DEFAULT_TAU 0.1f
#define SAE_DEFAULT_T_S 1.0f
#define SAE_DEFAULT_HIGH_FRAC 0.2

#endif
