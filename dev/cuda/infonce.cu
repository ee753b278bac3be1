// infonce.cu — harness of the step's InfoNCE terms on sparse codes
// (cuda/sae/infonce.cu through infonce_step_cuda): the temporal, spatial and
// raster losses of SPEC §1 and their gradient on dL/dz.
//
// In:  codes as the step holds them on the device (fixed-width slots [n, k],
//      k distinct latents per token in increasing order, values |N(0,1)| +
//      0.1; token 0 keeps none, so its norm is clamped, token 1 k/2; unused
//      slots hold NaN). Tokens are whole clips of T x H x W (16 x 16 x 16 at
//      the default n = 32768: the paper's 8 clips of DINOv2 patches; 3 x 2 x 3
//      below 4096 tokens) or, for the raster case, n/16 pairs (at least 32).
//      A token keeps a quarter of its latents from the same patch one step
//      before and a quarter from its left neighbour (half from its anchor for
//      a raster partner), as a trained SAE's codes overlap, the rest uniform.
// Out: per version and case (temporal, separate = temporal + spatial,
//      raster), the loss means and dL/dz on the kept entries (dL/dz starts at
//      zero: the step adds the InfoNCE gradient to the decode's), compared
//      with a CPU reference in double written from the definition: per
//      anchor, the cosine logits with every candidate sharing a latent (found
//      through a latent-major list of the group's candidates), exp(0) for each of the
//      others, l(a) = log Z_a - s_aq / tau; then dL/du on the kept entries and
//      dL/dz = (dL/du - u (u . dL/du)) / ||z||. Losses within 1e-5, gradients
//      within 1e-4 of the array's scale (fp32 sums in other orders); then the
//      time per call (no rate: the work is the overlapping pairs, data-
//      dependent).
//   Weights: lambda_t = lambda_r = 1, lambda_s = 0.6, tau = 0.1.
//
//   ./dev_infonce [VERSION] [--small] [--n N] [--m M] [--k K] [--reps R] [--plant]
//   version 1  naive: every (anchor, candidate) pair of a group, a thread
//              each, merging the two latent lists into a dense logit matrix
//              [A, C]; a thread per anchor for Z, l(a) and the pair
//              gradients; a thread per kept entry of the anchors (then of the
//              candidates) walking all candidates (anchors), a binary search
//              in each; a thread per token for the normalization
//   version 2  production: infonce_step_cuda (one process: red NULL)
#include "common.h"
#include "sae/sae_ops.h"

static const float LAMBDA_T = 1.0f, LAMBDA_S = 0.6f, LAMBDA_R = 1.0f, TAU = 0.1f;

// ---- the batch and its groups ----------------------------------------------------------

typedef struct {
    int raster;
    int n, units;  // tokens; clips or pairs
    int T, H, W;   // clips
    int k;         // slot width
    int *start, *count;
    int32_t *idx;
    float *val;
} Batch;

// Token of (clip, t, p) / of pair i's anchor (s 0) or partner (s 1).
static int clip_token(const Batch *b, int clip, int t, int p) { return (clip * b->T + t) * b->H * b->W + p; }

// Codes of b's tokens (see the header): count[r] latents, distinct, increasing.
static void make_codes(Batch *b, int m, Rng *rng) {
    const int n = b->n, k = b->k, hw = b->H * b->W;
    b->start = host_alloc<int>((size_t)n), b->count = host_alloc<int>((size_t)n);
    b->idx = host_alloc<int32_t>((size_t)n * k), b->val = host_alloc<float>((size_t)n * k);
    uint8_t *flags = (uint8_t *)calloc((size_t)m, 1);
    for (int r = 0; r < n; r++) {
        const int want = r == 0 ? 0 : r == 1 ? k / 2 : k;
        int got = 0;
        // the neighbours it inherits from: (t-1, p) and (t, p-1) of its clip, or its anchor
        int from[2] = {-1, -1}, share[2] = {0, 0};
        if (b->raster) {
            if (r % 2) from[0] = r - 1, share[0] = want / 2;
        } else {
            const int p = r % hw, t = r / hw % b->T;
            if (t > 0) from[0] = r - hw, share[0] = want / 4;
            if (p % b->W > 0) from[1] = r - 1, share[1] = want / 4;
        }
        for (int f = 0; f < 2; f++) {
            if (from[f] < 0) continue;
            const int32_t *src = b->idx + (size_t)from[f] * k;
            for (int s = 0, taken = 0; s < b->count[from[f]] && taken < share[f]; s++)
                if (rng_u64(rng) % 2 && !flags[src[s]]) flags[src[s]] = 1, got++, taken++;
        }
        while (got < want) {
            const int j = (int)(rng_u64(rng) % (uint64_t)m);
            if (!flags[j]) flags[j] = 1, got++;
        }
        b->start[r] = r * k, b->count[r] = want;
        int c = 0;
        for (int j = 0; j < m && c < want; j++)
            if (flags[j]) b->idx[(size_t)r * k + c] = j, b->val[(size_t)r * k + c] = (float)(fabs(rng_normal(rng)) + 0.1), c++, flags[j] = 0;
        for (; c < k; c++) b->idx[(size_t)r * k + c] = 0, b->val[(size_t)r * k + c] = NAN;
    }
    free(flags);
}

// One group of SPEC §1: anchors anc[a] with positives pos[a] (an index into
// cand), candidates cand[c]; self: the anchor is among the candidates and is
// left out; w: the loss weight over the global anchor count; kind 0 temporal,
// 1 spatial, 2 raster.
typedef struct {
    int n_a, n_c, self, kind;
    int *anc, *pos, *cand;
    float w;
} Group;

// The groups of b (temporal: t -> t+1; separate adds spatial t -> t, anchors
// with a right neighbour; raster: anchors -> partners); returns how many.
static int make_groups(const Batch *b, int separate, Group **out) {
    const int n_max = b->raster ? 1 : 2 * b->T;
    Group *g = (Group *)calloc((size_t)n_max, sizeof(Group));
    int n = 0;
    if (b->raster) {
        Group *q = &g[n++];
        q->n_a = q->n_c = b->units, q->kind = 2, q->w = LAMBDA_R / (float)b->units;
        q->anc = host_alloc<int>((size_t)b->units), q->pos = host_alloc<int>((size_t)b->units);
        q->cand = host_alloc<int>((size_t)b->units);
        for (int i = 0; i < b->units; i++) q->anc[i] = 2 * i, q->cand[i] = 2 * i + 1, q->pos[i] = i;
        *out = g;
        return n;
    }
    const int hw = b->H * b->W, set = b->units * hw;
    const double n_temp = (double)b->units * (b->T - 1) * hw, n_spat = (double)b->units * b->T * b->H * (b->W - 1);
    for (int kind = 0; kind < (separate && b->W > 1 ? 2 : 1); kind++)
        for (int t = 0; t + (kind == 0) < b->T; t++) {
            Group *q = &g[n++];
            q->kind = kind, q->self = kind == 1, q->n_c = set;
            q->w = kind == 0 ? (float)(LAMBDA_T / n_temp) : (float)(LAMBDA_S / n_spat);
            q->anc = host_alloc<int>((size_t)set), q->pos = host_alloc<int>((size_t)set);
            q->cand = host_alloc<int>((size_t)set);
            const int tc = kind == 0 ? t + 1 : t;
            for (int c = 0; c < set; c++) q->cand[c] = clip_token(b, c / hw, tc, c % hw);
            for (int c = 0; c < set; c++) {
                if (kind == 1 && c % hw % b->W == b->W - 1) continue; // no right neighbour
                q->anc[q->n_a] = clip_token(b, c / hw, t, c % hw);
                q->pos[q->n_a++] = kind == 0 ? c : c + 1;
            }
        }
    *out = g;
    return n;
}

// ---- CPU reference ---------------------------------------------------------------------

// Losses (unweighted means per kind) and dL/dz per slot, in double.
static void infonce_reference(const Batch *b, int m, const Group *g, int n_groups, double loss[3], double *dz) {
    const int n = b->n, k = b->k;
    double *nrm = host_alloc<double>((size_t)n), *gu = host_alloc<double>((size_t)n * k);
    for (int r = 0; r < n; r++) {
        double s = 0.0;
        for (int e = 0; e < b->count[r]; e++) s += (double)b->val[(size_t)r * k + e] * b->val[(size_t)r * k + e];
        nrm[r] = fmax(sqrt(s), 1e-8);
    }
    memset(gu, 0, sizeof(double) * (size_t)n * k);
    double sums[3] = {0, 0, 0}, counts[3] = {0, 0, 0};
    int *lat_ptr = host_alloc<int>((size_t)m + 1), *fill = host_alloc<int>((size_t)m);
    int *lat_c = NULL, *lat_slot = NULL, *touched = NULL;
    double *s_ac = NULL;
    for (int q = 0; q < n_groups; q++) {
        const Group *gr = &g[q];
        // the candidates' entries by latent: lat_ptr [m + 1] into (candidate, slot)
        memset(lat_ptr, 0, sizeof(int) * ((size_t)m + 1));
        for (int c = 0; c < gr->n_c; c++)
            for (int e = 0; e < b->count[gr->cand[c]]; e++) lat_ptr[b->idx[(size_t)gr->cand[c] * k + e] + 1]++;
        for (int j = 0; j < m; j++) lat_ptr[j + 1] += lat_ptr[j];
        lat_c = (int *)realloc(lat_c, sizeof(int) * ((size_t)lat_ptr[m] + 1));
        lat_slot = (int *)realloc(lat_slot, sizeof(int) * ((size_t)lat_ptr[m] + 1));
        memcpy(fill, lat_ptr, sizeof(int) * (size_t)m);
        for (int c = 0; c < gr->n_c; c++)
            for (int e = 0; e < b->count[gr->cand[c]]; e++) {
                const int slot = gr->cand[c] * k + e, l = fill[b->idx[slot]]++;
                lat_c[l] = c, lat_slot[l] = slot;
            }
        s_ac = (double *)realloc(s_ac, sizeof(double) * (size_t)gr->n_c);
        touched = (int *)realloc(touched, sizeof(int) * (size_t)gr->n_c);
        for (int c = 0; c < gr->n_c; c++) s_ac[c] = NAN; // NaN: no shared latent
        for (int a = 0; a < gr->n_a; a++) {
            const int ta = gr->anc[a];
            int n_t = 0;
            for (int pass = 0; pass < 2; pass++) {
                double Z = 0.0;
                if (pass == 1) { // Z_a and l(a) from the logits of pass 0
                    Z = (double)(gr->n_c - gr->self - n_t);
                    for (int i = 0; i < n_t; i++) Z += exp(s_ac[touched[i]] / TAU);
                    const double s_q = isnan(s_ac[gr->pos[a]]) ? 0.0 : s_ac[gr->pos[a]];
                    sums[gr->kind] += log(Z) - s_q / TAU;
                    counts[gr->kind] += 1;
                }
                for (int e = 0; e < b->count[ta]; e++) {
                    const int j = b->idx[(size_t)ta * k + e];
                    const double ua = b->val[(size_t)ta * k + e] / nrm[ta];
                    for (int l = lat_ptr[j]; l < lat_ptr[j + 1]; l++) {
                        const int c = lat_c[l], tc = gr->cand[c];
                        if (gr->self && tc == ta) continue;
                        const double uc = b->val[lat_slot[l]] / nrm[tc];
                        if (pass == 0) { // the logits of the candidates sharing a latent
                            if (isnan(s_ac[c])) s_ac[c] = 0.0, touched[n_t++] = c;
                            s_ac[c] += ua * uc;
                            continue;
                        }
                        // dL/du on the shared entries: g_ac = w / tau (softmax - [c = q])
                        const double gac = gr->w / TAU * (exp(s_ac[c] / TAU) / Z - (c == gr->pos[a]));
                        gu[(size_t)ta * k + e] += gac * uc;
                        gu[lat_slot[l]] += gac * ua;
                    }
                }
            }
            for (int i = 0; i < n_t; i++) s_ac[touched[i]] = NAN;
        }
    }
    for (int i = 0; i < 3; i++) loss[i] = counts[i] > 0 ? sums[i] / counts[i] : 0.0;
    for (int r = 0; r < n; r++) {
        double dot = 0.0;
        for (int e = 0; e < b->count[r]; e++) dot += b->val[(size_t)r * k + e] / nrm[r] * gu[(size_t)r * k + e];
        for (int e = 0; e < b->count[r]; e++)
            dz[(size_t)r * k + e] = (gu[(size_t)r * k + e] - b->val[(size_t)r * k + e] / nrm[r] * dot) / nrm[r];
    }
    free(nrm), free(gu), free(lat_ptr), free(fill), free(lat_c), free(lat_slot), free(s_ac), free(touched);
}

// ---- version 1: naive ------------------------------------------------------------------

// u_j of token r, 0 where r does not keep j (a binary search of its list)
__device__ float u_at(const int *start, const int *count, const int32_t *idx, const float *val, const float *nrm,
                      int r, int j) {
    int lo = start[r], hi = start[r] + count[r];
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (idx[mid] < j) lo = mid + 1;
        else hi = mid;
    }
    return lo < start[r] + count[r] && idx[lo] == j ? val[lo] / nrm[r] : 0.0f;
}

__global__ void norm_naive_kernel(const int *start, const int *count, const float *val, int n, float *nrm) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    float s = 0.0f;
    for (int e = start[r]; e < start[r] + count[r]; e++) s += val[e] * val[e];
    nrm[r] = fmaxf(sqrtf(s), 1e-8f);
}

// S[a, c] = u_a . u_c by merging the two increasing lists (the self pair is
// computed too and never read)
__global__ void logits_naive_kernel(const int *start, const int *count, const int32_t *idx, const float *val,
                                    const float *nrm, const int *anc, const int *cand, int n_a, int n_c, float *S) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n_a * n_c) return;
    const int ta = anc[i / n_c], tc = cand[i % n_c];
    int p = start[ta], q = start[tc];
    const int pe = p + count[ta], qe = q + count[tc];
    float s = 0.0f;
    while (p < pe && q < qe) {
        if (idx[p] < idx[q]) p++;
        else if (idx[p] > idx[q]) q++;
        else s += val[p++] * val[q++];
    }
    S[i] = s / (nrm[ta] * nrm[tc]);
}

// per anchor: Z, l(a), then S[a, :] becomes g_ac = w / tau (softmax - [c = q])
__global__ void anchors_naive_kernel(const int *anc, const int *cand, const int *pos, int n_a, int n_c, int self,
                                     float inv_tau, float w, float *S, double *loss) {
    const int a = blockIdx.x * blockDim.x + threadIdx.x;
    if (a >= n_a) return;
    float *row = S + (size_t)a * n_c;
    double Z = 0.0;
    for (int c = 0; c < n_c; c++)
        if (!(self && cand[c] == anc[a])) Z += exp((double)row[c] * inv_tau);
    loss[a] = log(Z) - (double)row[pos[a]] * inv_tau;
    for (int c = 0; c < n_c; c++)
        row[c] = self && cand[c] == anc[a] ? 0.0f
                                           : (float)(w * inv_tau * (exp((double)row[c] * inv_tau) / Z - (c == pos[a])));
}

// dL/du of the kept entries of one side: side 0, anchor a's entry e sums
// g_ac u_cj over the candidates; side 1, candidate c's over the anchors
__global__ void grads_naive_kernel(const int *start, const int *count, const int32_t *idx, const float *val,
                                   const float *nrm, const int *anc, const int *cand, int n_a, int n_c, int width,
                                   int side, const float *G, float *gu) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int n_own = side == 0 ? n_a : n_c;
    if (i >= (int64_t)n_own * width) return;
    const int o = (int)(i / width), e = (int)(i % width);
    const int t = side == 0 ? anc[o] : cand[o];
    if (e >= count[t]) return;
    const int j = idx[start[t] + e];
    const int n_other = side == 0 ? n_c : n_a;
    float s = 0.0f;
    for (int x = 0; x < n_other; x++) {
        const int tx = side == 0 ? cand[x] : anc[x];
        const float gx = side == 0 ? G[(size_t)o * n_c + x] : G[(size_t)x * n_c + o];
        if (gx != 0.0f) s += gx * u_at(start, count, idx, val, nrm, tx, j);
    }
    gu[start[t] + e] += s;
}

// dL/dz = (gu - u (u . gu)) / ||z|| on each token's kept entries
__global__ void unnormalize_naive_kernel(const int *start, const int *count, const float *val, const float *nrm,
                                         const float *gu, int n, float *dz) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    float dot = 0.0f;
    for (int e = start[r]; e < start[r] + count[r]; e++) dot += val[e] / nrm[r] * gu[e];
    for (int e = start[r]; e < start[r] + count[r]; e++) dz[e] += (gu[e] - val[e] / nrm[r] * dot) / nrm[r];
}

// ---- the harness -----------------------------------------------------------------------

typedef struct {
    const Batch *b;
    int n_groups;
    const Group *g;
    int **anc, **cand, **pos; // the groups on the device
    int *start, *count;
    int32_t *idx;
    float *val, *dz, *nrm, *gu, *S;
    double *loss; // per anchor of the largest group
    double *h_loss;
    SaeConfig cfg;
    SaeBatch sb;
    InfoNceCudaWork *work;
} Ctx;

static void naive_call(Ctx *x, double loss[3]) {
    const Batch *b = x->b;
    const int n = b->n;
    cudaCheck(cudaMemset(x->dz, 0, sizeof(float) * (size_t)n * b->k));
    cudaCheck(cudaMemset(x->gu, 0, sizeof(float) * (size_t)n * b->k));
    norm_naive_kernel<<<(n + 127) / 128, 128>>>(x->start, x->count, x->val, n, x->nrm);
    cudaCheckLaunch("norm_naive_kernel");
    double sums[3] = {0, 0, 0}, counts[3] = {0, 0, 0};
    for (int q = 0; q < x->n_groups; q++) {
        const Group *gr = &x->g[q];
        const int64_t pairs = (int64_t)gr->n_a * gr->n_c;
        logits_naive_kernel<<<(unsigned)((pairs + 127) / 128), 128>>>(x->start, x->count, x->idx, x->val, x->nrm,
                                                                       x->anc[q], x->cand[q], gr->n_a, gr->n_c, x->S);
        cudaCheckLaunch("logits_naive_kernel");
        anchors_naive_kernel<<<(gr->n_a + 127) / 128, 128>>>(x->anc[q], x->cand[q], x->pos[q], gr->n_a, gr->n_c,
                                                              gr->self, 1.0f / TAU, gr->w, x->S, x->loss);
        cudaCheckLaunch("anchors_naive_kernel");
        for (int side = 0; side < 2; side++) {
            const int64_t th = (int64_t)(side == 0 ? gr->n_a : gr->n_c) * b->k;
            grads_naive_kernel<<<(unsigned)((th + 127) / 128), 128>>>(x->start, x->count, x->idx, x->val, x->nrm,
                                                                       x->anc[q], x->cand[q], gr->n_a, gr->n_c, b->k,
                                                                       side, x->S, x->gu);
            cudaCheckLaunch("grads_naive_kernel");
        }
        host_copy(x->h_loss, x->loss, (size_t)gr->n_a);
        for (int a = 0; a < gr->n_a; a++) sums[gr->kind] += x->h_loss[a];
        counts[gr->kind] += gr->n_a;
    }
    unnormalize_naive_kernel<<<(n + 127) / 128, 128>>>(x->start, x->count, x->val, x->nrm, x->gu, n, x->dz);
    cudaCheckLaunch("unnormalize_naive_kernel");
    for (int i = 0; i < 3; i++) loss[i] = counts[i] > 0 ? sums[i] / counts[i] : 0.0;
}

static void production_call(Ctx *x, double loss[3]) {
    cudaCheck(cudaMemset(x->dz, 0, sizeof(float) * (size_t)x->b->n * x->b->k));
    const DevCodesView zv = {x->b->n, x->start, x->count, x->idx, x->val, x->dz};
    InfoNceLoss l;
    infonce_step_cuda(&x->cfg, &x->sb, &zv, NULL, x->work, &l, 0);
    loss[0] = l.temp, loss[1] = l.spat, loss[2] = l.rast;
}

typedef void (*NceFn)(Ctx *x, double loss[3]);
static const struct {
    const char *name;
    NceFn call;
} VERSIONS[] = {{"naive dense pairs", naive_call}, {"production infonce_step_cuda", production_call}};
enum { N_VERSIONS = sizeof(VERSIONS) / sizeof(VERSIONS[0]) };

// The batch of a case: clips of T x H x W, or pairs (see the header).
static Batch make_batch(int raster, int n_arg, int m, int k, Rng *rng) {
    Batch b;
    memset(&b, 0, sizeof(b));
    b.raster = raster, b.k = k;
    if (raster) {
        b.units = n_arg / 16 > 32 ? n_arg / 16 : 32, b.n = 2 * b.units;
    } else {
        const int big = n_arg >= 4096;
        b.T = big ? 16 : 3, b.H = big ? 16 : 2, b.W = big ? 16 : 3;
        const int per = b.T * b.H * b.W;
        b.units = n_arg / per > 1 ? n_arg / per : 1, b.n = b.units * per;
    }
    make_codes(&b, m, rng);
    return b;
}

int main(int argc, char **argv) {
    const DevArgs a = dev_args(argc, argv, N_VERSIONS, dev_shape(32768, 6144, 768, 64, 3), dev_shape(72, 64, 32, 6, 1));
    dev_start("dev/cuda/infonce.cu: temporal, spatial and raster InfoNCE on sparse codes (infonce_step_cuda)", &a);
    static const char *CASES[] = {"temporal", "separate", "raster"};
    int failed = 0;
    for (int cs = 0; cs < 3; cs++) {
        Rng rng = {11u + (uint64_t)cs};
        const Batch b = make_batch(cs == 2, a.n, a.m, a.k, &rng);
        Group *g = NULL;
        const int n_groups = make_groups(&b, cs == 1, &g);
        const size_t slots = (size_t)b.n * b.k;
        double ref_loss[3], *ref_dz = host_alloc<double>(slots);
        infonce_reference(&b, a.m, g, n_groups, ref_loss, ref_dz);
        printf("case %s: %d tokens (%s), %d groups; reference losses temp %.6f spat %.6f rast %.6f\n", CASES[cs],
               b.n, cs == 2 ? "pairs" : "clips", n_groups, ref_loss[0], ref_loss[1], ref_loss[2]);

        Ctx x;
        memset(&x, 0, sizeof(x));
        x.b = &b, x.g = g, x.n_groups = n_groups;
        x.anc = host_alloc<int *>((size_t)n_groups), x.cand = host_alloc<int *>((size_t)n_groups);
        x.pos = host_alloc<int *>((size_t)n_groups);
        size_t max_pairs = 1, max_a = 1;
        for (int q = 0; q < n_groups; q++) {
            x.anc[q] = device_copy(g[q].anc, (size_t)g[q].n_a), x.pos[q] = device_copy(g[q].pos, (size_t)g[q].n_a);
            x.cand[q] = device_copy(g[q].cand, (size_t)g[q].n_c);
            if ((size_t)g[q].n_a * g[q].n_c > max_pairs) max_pairs = (size_t)g[q].n_a * g[q].n_c;
            if ((size_t)g[q].n_a > max_a) max_a = (size_t)g[q].n_a;
        }
        x.start = device_copy(b.start, (size_t)b.n), x.count = device_copy(b.count, (size_t)b.n);
        x.idx = device_copy(b.idx, slots), x.val = device_copy(b.val, slots);
        x.dz = device_alloc<float>(slots), x.gu = device_alloc<float>(slots), x.nrm = device_alloc<float>((size_t)b.n);
        x.loss = device_alloc<double>(max_a), x.h_loss = host_alloc<double>(max_a);
        if (sae_config_init(&x.cfg, CASES[cs], a.d, a.m) != 0) stsae_die_at(__FILE__, __LINE__, "variant %s", CASES[cs]);
        x.cfg.k = a.k, x.cfg.tau = TAU, x.cfg.lambda_t = cs < 2 ? LAMBDA_T : 0.0f;
        x.cfg.lambda_s = cs == 1 ? LAMBDA_S : 0.0f, x.cfg.lambda_r = cs == 2 ? LAMBDA_R : 0.0f;
        x.sb = cs == 2 ? sae_batch_pairs(b.units) : sae_batch_clips(b.units, b.T, b.H, b.W);
        x.work = infonce_work_create_cuda(a.m);

        float *out = host_alloc<float>(slots), *used = host_alloc<float>(slots);
        double *ref_used = host_alloc<double>(slots);
        for (int v = 1; v <= N_VERSIONS; v++) {
            if (a.version && v != a.version) continue;
            if (v == 1) x.S = device_alloc<float>(max_pairs);
            double loss[3];
            VERSIONS[v - 1].call(&x, loss);
            host_copy(out, x.dz, slots);
            size_t u = 0;
            for (int r = 0; r < b.n; r++)
                for (int e = 0; e < b.count[r]; e++) used[u] = out[(size_t)r * b.k + e], ref_used[u++] = ref_dz[(size_t)r * b.k + e];
            Check chk = {0, 0.0};
            if (a.plant) plant_value(used, u);
            validate_result(&chk, "dL/dz", used, ref_used, u, 1e-4);
            static const char *LOSS[] = {"L_temp", "L_spat", "L_rast"};
            for (int i = 0; i < 3; i++) {
                const float l = (float)loss[i];
                validate_result(&chk, LOSS[i], &l, &ref_loss[i], 1, 1e-5);
            }
            const double ms = time_ms(a.reps, [&] {
                double l[3];
                VERSIONS[v - 1].call(&x, l);
            });
            if (v == 1) {
                cudaCheck(cudaFree(x.S));
                x.S = NULL;
            }
            char name[96];
            snprintf(name, sizeof(name), "%s, %s", VERSIONS[v - 1].name, CASES[cs]);
            failed |= report(v, name, &chk, ms, 0.0, 0.0);
        }
        infonce_work_free_cuda(x.work);
        for (int q = 0; q < n_groups; q++) {
            cudaCheck(cudaFree(x.anc[q]));
            cudaCheck(cudaFree(x.pos[q]));
            cudaCheck(cudaFree(x.cand[q]));
            free(g[q].anc), free(g[q].pos), free(g[q].cand);
        }
        int *dev_i[] = {x.start, x.count, x.idx};
        float *dev_f[] = {x.val, x.dz, x.gu, x.nrm};
        for (int *p : dev_i) cudaCheck(cudaFree(p));
        for (float *p : dev_f) cudaCheck(cudaFree(p));
        cudaCheck(cudaFree(x.loss));
        free(x.anc), free(x.cand), free(x.pos), free(x.h_loss), free(g);
        free(b.start), free(b.count), free(b.idx), free(b.val), free(ref_dz), free(out), free(used), free(ref_used);
    }
    return failed;
}
