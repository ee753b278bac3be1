// variants.c — the variant table (variants.h): one row per variant of SPEC §1.
//
// In:  nothing (the table is constant); names and SaeConfigs to look up.
// Out: the rows, and the names joined by '|' for the deck schema, both made
//      from the one list below (SAE_VARIANT_ROWS), so that a name cannot be
//      in one and missing from the other.
//
// The columns, as in SaeVariant: select, contrast, optional (the InfoNCE term
// only when lambda_t > 0), +M (Matryoshka), frozen (decoder), auxk, uses (the
// deck values that apply), batch, cost_nce (factor while the InfoNCE term has
// a weight > 0), cost (factor always), cuda (the CUDA step, cuda/sae/sae.cu
// with cuda/sae/infonce.cu, implements the row; every row today). The
// cost model is rough and documented in deck/jobs.h: the encoder GEMM dominates, an InfoNCE term adds
// a quarter, +M's BatchTopK and L_high 15%.
#include "stsae/sae/variants.h"

#include <string.h>

#define NCE_T (SAE_USES_LAMBDA_T | SAE_USES_TAU)                       // L_temp
#define NCE_TS (SAE_USES_LAMBDA_T | SAE_USES_LAMBDA_S | SAE_USES_TAU)  // L_temp + L_spat
#define NCE_R (SAE_USES_LAMBDA_R | SAE_USES_TAU)                       // L_rast
#define HF SAE_USES_HIGH_FRAC                                          // L_high
#define TS SAE_USES_T_S                                                // soft selection

// clang-format off
#define SAE_VARIANT_ROWS(X)                                                                                          \
    /* name          select          contrast      optional +M frozen auxk uses         batch         cost_nce cost  cuda */ \
    X("standard",    SEL_TOPK,       CTR_NONE,     0,       0, 0,     1,   0,           BATCH_TOKENS, 1.0,     1.0,  1)    \
    X("temporal",    SEL_TOPK,       CTR_TEMPORAL, 0,       0, 0,     1,   NCE_T,       BATCH_CLIPS,  1.25,    1.0,  1)    \
    X("separate",    SEL_TOPK,       CTR_SEPARATE, 0,       0, 0,     1,   NCE_TS,      BATCH_CLIPS,  1.25,    1.0,  1)    \
    X("raster",      SEL_TOPK,       CTR_RASTER,   0,       0, 0,     1,   NCE_R,       BATCH_PAIRS,  1.25,    1.0,  1)    \
    X("standard+M",  SEL_BATCHTOPK,  CTR_NONE,     0,       1, 0,     1,   HF,          BATCH_TOKENS, 1.0,     1.15, 1)    \
    X("temporal+M",  SEL_BATCHTOPK,  CTR_TEMPORAL, 0,       1, 0,     1,   NCE_T | HF,  BATCH_CLIPS,  1.25,    1.15, 1)    \
    X("separate+M",  SEL_BATCHTOPK,  CTR_SEPARATE, 0,       1, 0,     1,   NCE_TS | HF, BATCH_CLIPS,  1.25,    1.15, 1)    \
    X("sparsemax",   SEL_SPARSEMAX,  CTR_TEMPORAL, 1,       0, 0,     0,   NCE_T | TS,  BATCH_CLIPS,  1.25,    1.0,  1)    \
    X("entmax15",    SEL_ENTMAX15,   CTR_TEMPORAL, 1,       0, 0,     0,   NCE_T | TS,  BATCH_CLIPS,  1.25,    1.0,  1)    \
    X("frozen",      SEL_TOPK,       CTR_NONE,     0,       0, 1,     1,   0,           BATCH_TOKENS, 1.0,     1.0,  1)
// clang-format on

#define ROW(n, sel, ctr, opt, mat, frz, aux, use, bat, nce, cst, cu)                                              \
    {.name = n, .select = sel, .contrast = ctr, .contrast_optional = opt, .matryoshka = mat, .frozen_decoder = frz, \
     .auxk = aux, .uses = use, .batch = bat, .cost_nce = nce, .cost = cst, .cuda = cu},
#define BAR_NAME(n, ...) "|" n

const SaeVariant sae_variants[] = {SAE_VARIANT_ROWS(ROW)};
const int sae_n_variants = (int)(sizeof(sae_variants) / sizeof(*sae_variants));
const char sae_variant_bars[] = SAE_VARIANT_ROWS(BAR_NAME);

const SaeVariant *sae_variant_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < sae_n_variants; i++)
        if (!strcmp(sae_variants[i].name, name)) return &sae_variants[i];
    return NULL;
}

const SaeVariant *sae_variant_of(const SaeConfig *cfg) {
    for (int i = 0; i < sae_n_variants; i++) {
        const SaeVariant *v = &sae_variants[i];
        if (v->select == cfg->select && v->frozen_decoder == !!cfg->frozen_decoder &&
            (cfg->contrast == v->contrast || (v->contrast_optional && cfg->contrast == CTR_NONE)))
            return v;
    }
    return NULL;
}

int sae_variant_uses(const SaeVariant *v, unsigned what) {
    unsigned u = v->uses;
    if (v->auxk) u |= SAE_USES_ALPHA;
    if (v->matryoshka) u |= SAE_USES_BETA;
    return (u & what) != 0;
}

SaeContrast sae_variant_contrast(const SaeVariant *v, double lambda_t) {
    return v->contrast_optional && !(lambda_t > 0) ? CTR_NONE : v->contrast;
}

SaeBatchKind sae_variant_batch(const SaeVariant *v, double lambda_t) {
    return v->contrast_optional && !(lambda_t > 0) ? BATCH_TOKENS : v->batch;
}
