// infonce.h — the temporal, spatial and raster InfoNCE losses of SPEC §1 on
// sparse codes, exactly, without any dense [anchors x candidates] product.
//
// Cosine logits between codes with disjoint supports are exactly 0 and add
// exp(0) = 1 to a denominator; they also add nothing to any gradient on the
// kept entries (the partner's value there is 0). So each anchor's loss and
// gradient come from the candidates sharing a latent with it, found through a
// latent-major index of the candidate set, plus a count of the others.
//
// Two passes per group of anchors/candidates, each writing only the gradient
// of the token it owns, so there are no atomics and the result does not depend
// on the thread count:
//   A (per anchor a):    log Z_a, l(a), and dL/du_a = sum_c g_ac u_c / tau;
//   B (per candidate c): dL/du_c = sum_a g_ac u_a / tau, with the Z_a of A.
// with g_ac = softmax_ac - [c = positive(a)]. Then dL/du goes through the
// normalization u = z / max(||z||, 1e-8) onto dL/dz of the kept entries.
#ifndef STSAE_INFONCE_H
#define STSAE_INFONCE_H

#include "stsae/codes.h"
#include "stsae/sae.h"

typedef struct InfoNceWork InfoNceWork;
InfoNceWork *infonce_work_create(void);
void infonce_work_free(InfoNceWork *w);

typedef struct {
    double temp, spat, rast; // unweighted means over their anchors
} InfoNceLoss;

// Adds the gradient of lambda_t L_temp + lambda_s L_spat + lambda_r L_rast
// (the terms of cfg->contrast) to z->grad and returns the loss terms.
void infonce_step(const SaeConfig *cfg, const SaeBatch *b, SparseCodes *z, InfoNceWork *w,
                  InfoNceLoss *out);

#endif
