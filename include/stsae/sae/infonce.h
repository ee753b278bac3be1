// infonce.h — the temporal, spatial and raster InfoNCE losses of SPEC §1 on
// sparse codes, exactly, without any dense [anchors x candidates] product.
//
// Cosine logits between codes with disjoint supports are exactly 0 and add
// exp(0) = 1 to a denominator; they also add nothing to any gradient on the
// kept entries (the partner's value there is 0). So each anchor's loss and
// gradient come from the candidates sharing a latent with it, found through a
// latent-major index of the candidate set, plus a count of the others.
//
// One pass per group of anchors and candidates: per anchor a, the dot
// products with the candidates sharing a latent, Z_a and l(a), then one more
// walk over the same lists adds g_ac u_c / tau to dL/du_a and g_ac u_a / tau
// to dL/du_c, with g_ac = softmax_ac - [c = positive(a)]. Candidates'
// gradients go to per-thread buffers summed in thread order (no atomics; the
// same bits on every run with the same thread count). Across ranks the same
// buffers are what a data-parallel job returns to each candidate's owner.
// Then dL/du goes through u = z / max(||z||, 1e-8) onto dL/dz.
//
// An anchor's row of logits is held either densely (every candidate, the
// untouched at 0) or as its touched set, chosen per group from how many
// list entries its anchors walk per candidate (infonce.c, run_group); the
// softmax is shifted by the row's largest logit, so a small temperature
// does not overflow it.
#ifndef STSAE_INFONCE_H
#define STSAE_INFONCE_H

#include "stsae/sae/codes.h"
#include "stsae/sae/sae.h"

typedef struct InfoNceWork InfoNceWork;
InfoNceWork *infonce_work_create(void);
void infonce_work_free(InfoNceWork *w);
// How many groups of the last infonce_step held their rows densely (for
// tests: each holding covers its own path).
int infonce_dense_groups(const InfoNceWork *w);

typedef struct {
    double temp, spat, rast; // unweighted means over their anchors
} InfoNceLoss;

// Adds the gradient of lambda_t L_temp + lambda_s L_spat + lambda_r L_rast
// (the terms of cfg->contrast) to z->grad and returns the loss terms.
// Data-parallel (red with gather_codes): z holds this rank's whole clips or
// pairs, b their geometry; the candidate sets are the whole batch's codes,
// gathered from every rank; this rank takes the anchors it owns, and the
// candidates' gradients go back to their owners through red->return_grad.
// The losses are the global means on every rank.
void infonce_step(const SaeConfig *cfg, const SaeBatch *b, SparseCodes *z, const SaeReduce *red,
                  InfoNceWork *w, InfoNceLoss *out);

#endif
