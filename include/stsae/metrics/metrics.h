// metrics.h — the label-free evaluation metrics of SPEC §2, streamed clip by
// clip (never all tokens of all clips at once), for SAE codes (sparse) and for
// raw features (dense channels).
//
// In:  one clip at a time: its codes [T*N tokens, CSR over m latents] or dense
//      rows [T*N, m]; the tokens are in (t, p) order, so token t*N + p and
//      (t+1)*N + p are the same position one step apart.
// Out: lag-1 temporal coherence per latent (SPEC §2.2), L0 and dead latents
//      (§2.6), each clip's value per latent (mean, or max, over its tokens) for
//      the clip-level metrics, which take the [clips, m] matrix of clip values:
//      MonoSemanticity (§2.3, one GEMM against the clip embeddings), action
//      purity (§2.4), Jaccard uniqueness of top-8 clip sets (§2.7); and the two
//      post-hoc smoothings of §2.9 applied to one clip's codes.
//
// All sums are float64 and in clip order, so a job's metrics do not depend on
// the thread count.
#ifndef STSAE_METRICS_H
#define STSAE_METRICS_H

#include <stdint.h>

#include "stsae/sae/codes.h"
#include "stsae/sae/sae.h"

// Lag-1 coherence of m channels: rho_j = mean over (clip, p, t < T-1) of
// (z_t - mu)(z_t+1 - mu) / var, mu and var over all tokens.
typedef struct {
    int m;
    double n_tok, n_pairs;
    double *s1, *s2;   // sums of z and z^2 over all tokens
    double *p, *a, *b; // sums over pairs of z_t z_t+1, z_t, z_t+1
    int64_t *nz;       // tokens where the channel is non-zero
} Lag1;

void lag1_init(Lag1 *l, int m);
void lag1_free(Lag1 *l);
// One clip of T steps and N positions: sparse codes (rows t*N + p) ...
void lag1_add_sparse(Lag1 *l, const SparseCodes *z, int T, int N);
// ... or dense rows x [T*N, m].
void lag1_add_dense(Lag1 *l, const float *x, int T, int N);
// rho [m] (NAN for zero-variance channels); returns the mean over the others
// and the fraction of them with rho < 0.3 in *frac_low.
double lag1_finish(const Lag1 *l, double *rho, double *frac_low);

// Clip values of one clip: out[j] = mean (or max when use_max) over its n
// token rows of z_j.
void clip_values_sparse(const SparseCodes *z, int m, int use_max, float *out);

// MonoSemanticity per latent from clip values V [clips, m] and unit clip
// embeddings E [clips, e]: w = min-max normalized V[:, j];
// MS_j = (||sum_c w_c E_c||^2 - sum_c w_c^2) / ((sum_c w_c)^2 - sum_c w_c^2).
// ms[j] = NAN where latent j is constant over the clips (not live) or the
// denominator vanishes. Returns the mean over the others.
double monosemanticity(const float *V, int clips, int m, const float *E, int e, double *ms);

// Top-8 clips of each latent by clip value (ties: lower clip index first),
// top [m, 8] clip indices.
void top_clips(const float *V, int clips, int m, int32_t *top);

// Action purity: for the n_top latents with the largest mean clip value, the
// count of the most common label among their top-8 clips over 8; mean and max.
void action_purity(const float *V, int clips, int m, const int32_t *top, const int32_t *labels, int n_top,
                   double *mean, double *max);

// Mean Jaccard index of the top-8 clip sets over all pairs of live latents
// (live[j] != 0).
double jaccard_uniqueness(const int32_t *top, int m, const uint8_t *live);

// The post-hoc smoothings of §2.9 of one clip's codes (T steps of N
// positions, rows t*N + p), written to out (its rows and entries replaced):
// EMA over time per position, zs_t = a zs_t-1 + (1 - a) z_t with zs_0 = z_0
// (the support of zs_t is the union of the supports so far; `scratch`: m floats);
void smooth_ema(const SparseCodes *z, int T, int N, int m, float a, float *scratch, SparseCodes *out);
// Temporal union TopK: at step t > 0, among the latents of the union of the
// supports of z at t-1 and t, the k largest of a_j = relu(max(pre_t-1,j,
// pre_t,j)) (pre from the encoder; x are the clip's scaled tokens [T*N, d]).
// Our reading of SPEC §2.9's "top k of a restricted to the union": with a of
// step t alone the union adds nothing (TopK already took the k largest of
// a_t), so a feature of t-1 competes with its value at t-1. Step 0 is kept.
void smooth_union_topk(const SaeConfig *cfg, const SaeTensors *p, const float *x, const SparseCodes *z, int T, int N,
                       SparseCodes *out);

#endif
