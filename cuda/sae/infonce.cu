// infonce.cu — the CUDA twin of infonce.c (infonce.h): the temporal, spatial
// and raster InfoNCE losses of SPEC §1 on sparse codes, exactly, on the
// device, without any dense [anchors x candidates] product and without
// floating-point atomics.
//
// In:  this rank's codes as the step holds them (sae_ops.h DevCodesView: z
//      and dL/dz from the decode and AuxK, per token in latent order), the
//      batch's geometry, the weights; data-parallel, the SaeReduce hooks.
// Out: the gradient of lambda_t L_temp + lambda_s L_spat + lambda_r L_rast
//      added to dL/dz (before the selection's backward, step 4 of sae.c), and
//      the loss terms (global means, as infonce_step gives them).
//
// As on the CPU, a logit between codes with disjoint supports is exactly 0:
// it adds exp(0) = 1 to Z_a and nothing to any gradient, so only pairs
// sharing a latent are visited. Per step:
//   1. the codes of the whole batch in CSR (one rank: this rank's, compacted
//      on the device; several: exchange_codes, the one place that talks to
//      the other ranks, gathers them on the device through red's device
//      twins (NCCL: comm_device.h) or else on the host (red->gather_codes));
//      u = z / max(||z||, 1e-8) per token;
//   2. the latent-major index of every set (a time step of every clip, or
//      the anchors / partners of the pairs): a stable radix sort (CUB) of the
//      entries by (set, latent), so each latent's list is in member order;
//   3. per group (anchor set A, candidate set C: temporal t -> t+1, spatial
//      t -> t with self excluded, raster anchors -> partners), over the
//      anchors this rank owns: every contribution u_aj u_cj of a shared
//      latent j is written at a fixed place (anchor-major: anchor, its
//      entries in latent order, C_j in member order; the offsets are a
//      prefix sum of the list lengths), keyed (anchor, candidate); a stable
//      radix sort of the keys makes each pair (a, c) one run, whose
//      contributions, summed in run order, give s_ac in the CPU's order
//      (latent order). Per anchor (a warp): Z_a = (|C| - self - touched) +
//      sum exp(s_ac / tau), l(a) = log Z_a - s_aq / tau, and per run
//      g_ac = w / tau (softmax - [c = positive]) in place of s_ac;
//   4. the gradients, each a sum in a fixed order: dL/du_aj = sum over C_j of
//      g_ac u_cj (a warp per anchor, one entry at a time), then candidate-
//      major dL/du_cj += sum over the owned anchors in A_j of g_ac u_aj (a
//      thread per entry of C's index, walking A_j in member order and finding
//      each contribution's run through its anchor entry's offset). No entry is
//      written by two threads of one launch, so no atomics, and the same bits
//      on every run.
//   5. the candidates' gradients back to their owners (red->return_grad_device,
//      or red->return_grad on the host), then through the normalization: dL/dz = (gu - u (u . gu)) /
//      ||z|| (gu / 1e-8 where the norm is clamped), added to dL/dz.
// Sums differ from the CPU's only in order (Z_a, the candidates' gradients,
// the loss means): the CPU's thread buffers vs the warps here.
// Memory: about 60 bytes (CUB's sort scratch included) per contribution of
// the largest group (sum over latents of |A_j| |C_j|), reused group to group.
#include <cub/device/device_radix_sort.cuh>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/cuda_check.h"
#include "base/reduce.cuh"
#include "sae/sae_ops.h"

extern "C" {
#include "stsae/sae/sae_cuda.h"
}

enum { NCE_WARPS = 4, NCE_THREADS = 32 * NCE_WARPS };

// Members of a set as tokens (infonce.c's tokset_build): member i of set s is
// token (i / per_block) * stride + s * per_block + i % per_block. Time step s
// of every clip: per_block = H W, stride = T H W; raster anchors (s = 0) and
// partners (s = 1): per_block = 1, stride = 2.
// (Kernels take the two ints: a struct argument defeats the emulation's simd clones.)
struct NceLayout {
    int per_block, stride;
};
__device__ __forceinline__ int set_token(int per_block, int stride, int s, int i) {
    return (i / per_block) * stride + s * per_block + i % per_block;
}
__device__ __forceinline__ int token_set(int per_block, int stride, int r) { return (r % stride) / per_block; }
__device__ __forceinline__ int token_member(int per_block, int stride, int r) {
    return (r / stride) * per_block + r % per_block;
}

// One group: the anchors anc[0..n) (members of set sa this rank owns, in
// member order), anchor a's positive is member a + pos_off of set sc; self:
// sa = sc and an anchor is not its own candidate.
struct NceGroup {
    int sa, sc, list, pos_off, self, kind; // list: which anchor list; kind: 0 temp, 1 spat, 2 rast
    float w;                               // lambda / (anchors of this loss, global)
};

struct InfoNceCudaWork {
    int m;
    // 1. the whole batch's codes (CSR, rows in rank order), u, dL/du, norms
    int n_rows, nnz, cap_rows, cap_ent;
    int *rp;                          // [cap_rows + 1]
    int32_t *idx, *emem;              // [cap_ent] latent; member of the entry's token
    float *val, *u, *gu, *norm;       // [cap_ent] x3, [cap_rows]
    int *h_rp, *h_count;              // host [cap_rows + 1]
    // 2. the index: set s's entries of latent j at positions [col[s m + j], col[s m + j + 1])
    int32_t *ikey_in, *ikey_out;      // [cap_ent] s m + j
    int32_t *ient_in, *ient_out;      // [cap_ent] entry of each position
    int32_t *imem;                    // [cap_ent] member of each position
    float *iu;                        // [cap_ent] u of each position
    int32_t *eoff;                    // [cap_ent] the group's first contribution of an anchor entry (-1: none)
    int *col, cap_col;                // [cap_col]
    void *isort;
    size_t isort_bytes;
    // 3. anchors: the two lists (same: a, next: a with a right neighbour), per-anchor scratch
    int cap_anc, n_anc[2];
    int32_t *anc[2], *h_anc;          // [cap_anc]
    int *tot, *aoff, *arange;         // [cap_anc + 1]
    int *h_aoff;                      // host [cap_anc + 1]
    double *loss;                     // [cap_anc]
    // contributions of a group
    int64_t cap_q;
    uint64_t *qkey_in, *qkey_out;     // (anchor, candidate)
    int32_t *qid_in, *qid_out, *run;  // place, sorted; run start of each place
    float *prod, *sg;                 // u_aj u_cj per place; s_ac then g_ac per run start
    void *qsort;
    size_t qsort_bytes;
    double *gsum, *h_gsum;            // [cap_groups] sum of l(a) per group
    int cap_groups;
    // 5. data-parallel: the host side of the exchange, and this rank's dL/du
    SparseCodes h_mine, h_all;
    float *h_gu, *h_gu_mine, *gu_mine;
    int cap_h_gu, cap_mine;
    // the device exchange (red's device twins): this rank's entries, sent
    int32_t *idx_mine;
    float *val_mine;
    int cap_send;
};

// ---- kernels -------------------------------------------------------------------

__device__ __forceinline__ double warp_sum_f64(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_sum_f32(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max_f32(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ int warp_sum_int(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// CSR rows of this rank's codes: row r's entries from rp[r], copied from its slots.
__global__ void nce_compact_kernel(const int *start, const int *count, const int32_t *idx, const float *val, int n,
                                   const int *rp, int32_t *out_idx, float *out_val) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    for (int s = 0; s < count[r]; s++) {
        out_idx[rp[r] + s] = idx[start[r] + s];
        out_val[rp[r] + s] = val[start[r] + s];
    }
}

// Per token: norm = max(||z||, 1e-8) (the sum in double), u = z / norm,
// dL/du = 0; and the index's sort input: key (set, latent), the entry, and
// the member of the token.
__global__ void nce_prepare_kernel(const int *rp, const int32_t *idx, const float *val, int n, int m, int per_block,
                                   int stride,
                                   float *norm, float *u, float *gu, int32_t *key, int32_t *ent, int32_t *emem) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    double s = 0.0;
    for (int e = rp[r]; e < rp[r + 1]; e++) s += (double)val[e] * val[e];
    float nrm = (float)sqrt(s);
    if (nrm < 1e-8f) nrm = 1e-8f;
    norm[r] = nrm;
    const int set = token_set(per_block, stride, r), mem = token_member(per_block, stride, r);
    for (int e = rp[r]; e < rp[r + 1]; e++) {
        u[e] = val[e] / nrm;
        gu[e] = 0.0f;
        key[e] = set * m + idx[e];
        ent[e] = e;
        emem[e] = mem;
    }
}

// The first position whose key is >= b * step, for b < n_bounds (keys sorted).
template <typename K>
__device__ __forceinline__ int lower_bound_of(const K *key, int n, K v) {
    int lo = 0, hi = n;
    while (lo < hi) {
        const int mid = (lo + hi) >> 1;
        if (key[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}
__global__ void nce_bounds32_kernel(const int32_t *key, int n, int n_bounds, int *out) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < n_bounds) out[b] = lower_bound_of(key, n, (int32_t)b);
}
__global__ void nce_bounds64_kernel(const uint64_t *key, int n, int n_bounds, uint64_t step, int *out) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < n_bounds) out[b] = lower_bound_of(key, n, (uint64_t)b * step);
}

// Each position of the sorted index: its member and u.
__global__ void nce_gather_index_kernel(const int32_t *ent, int nnz, const int32_t *emem, const float *u, int32_t *imem,
                                        float *iu) {
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= nnz) return;
    imem[p] = emem[ent[p]];
    iu[p] = u[ent[p]];
}

// tot[x] = contributions of anchor x: sum over its entries of |C_j|.
__global__ void nce_count_kernel(const int32_t *anc, int n, int per_block, int stride, int sa, const int *ccol,
                                 const int *rp,
                                 const int32_t *idx, int *tot) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    if (x >= n) return;
    const int r = set_token(per_block, stride, sa, anc[x]);
    int t = 0;
    for (int e = rp[r]; e < rp[r + 1]; e++) t += ccol[idx[e] + 1] - ccol[idx[e]];
    tot[x] = t;
}

// A warp per anchor x: its contributions from aoff[x] on, entry by entry
// (latent order), C_j in member order: key (x, c), place, u_aj u_cj; and
// eoff[e] = the first place of anchor entry e. ccol: C's lists (col + sc m).
__global__ void nce_enumerate_kernel(const int32_t *anc, int n, int per_block, int stride, int sa, int n_c,
                                     const int *ccol,
                                     const int32_t *imem, const float *iu, const int *rp, const int32_t *idx,
                                     const float *u, const int *aoff, int32_t *eoff, uint64_t *qkey, int32_t *qid,
                                     float *prod) {
    const int x = blockIdx.x * NCE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (x >= n) return;
    const int r = set_token(per_block, stride, sa, anc[x]);
    int q = aoff[x];
    for (int e = rp[r]; e < rp[r + 1]; e++) {
        const int c0 = ccol[idx[e]], c1 = ccol[idx[e] + 1];
        const float ua = u[e];
        if (lane == 0) eoff[e] = q;
        for (int t = c0 + lane; t < c1; t += 32) {
            const int qq = q + t - c0;
            qkey[qq] = (uint64_t)x * (uint64_t)n_c + (uint64_t)imem[t];
            qid[qq] = qq;
            prod[qq] = ua * iu[t];
        }
        q += c1 - c0;
    }
}

// Each run of equal keys (one pair a, c): s_ac = its contributions summed in
// run order (latent order) at the run's start; run[place] = that start.
__global__ void nce_runs_kernel(const uint64_t *qkey, const int32_t *qid, int n_q, const float *prod, int32_t *run,
                                float *sg) {
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n_q || (p > 0 && qkey[p] == qkey[p - 1])) return;
    float s = 0.0f;
    int t = p;
    do {
        s += prod[qid[t]];
        run[qid[t]] = p;
        t++;
    } while (t < n_q && qkey[t] == qkey[p]);
    sg[p] = s;
}

// A warp per anchor x (positions [arange[x], arange[x+1]) of the sorted
// keys): Z_a, l(a) into loss[x], and g_ac = wt (softmax_ac - [c = q]) in
// place of s_ac at each run start (0 for the anchor itself when excluded).
// The softmax is shifted by the row's largest logit (0 at least: the
// untouched candidates'), so no temperature overflows expf (as infonce.c).
// extra: candidates added to Z (a planted fault's; 0).
__global__ void nce_loss_kernel(const int32_t *anc, int n, int n_c, int pos_off, int self_excluded, float wt,
                                float inv_tau, int extra, const int *arange, const uint64_t *qkey, float *sg,
                                double *loss) {
    const int x = blockIdx.x * NCE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (x >= n) return;
    const int lo = arange[x], hi = arange[x + 1], q = anc[x] + pos_off, self = self_excluded ? anc[x] : -1;
    const uint64_t base = (uint64_t)x * (uint64_t)n_c;
    float mx = 0.0f;
    for (int p = lo + lane; p < hi; p += 32) {
        const int c = (int)(qkey[p] - base);
        if ((p > lo && qkey[p] == qkey[p - 1]) || c == self) continue;
        mx = fmaxf(mx, sg[p] * inv_tau);
    }
    mx = warp_max_f32(mx);
    double Z = 0.0;
    int nt = 0;
    float s_q = 0.0f;
    for (int p = lo + lane; p < hi; p += 32) {
        const int c = (int)(qkey[p] - base);
        if ((p > lo && qkey[p] == qkey[p - 1]) || c == self) continue;
        const float s = sg[p] * inv_tau;
        Z += expf(s - mx);
        nt++;
        if (c == q) s_q = s;
    }
    Z = warp_sum_f64(Z);
    nt = warp_sum_int(nt);
    s_q = warp_sum_f32(s_q); // one lane at most holds it
    Z += (double)(n_c - (self >= 0) - nt + extra) * exp(-(double)mx);
    if (lane == 0) loss[x] = mx + log(Z) - s_q;
    const float inv_Z = (float)(1.0 / Z);
    for (int p = lo + lane; p < hi; p += 32) {
        const int c = (int)(qkey[p] - base);
        if (p > lo && qkey[p] == qkey[p - 1]) continue;
        sg[p] = c == self ? 0.0f : (expf(sg[p] * inv_tau - mx) * inv_Z - (float)(c == q)) * wt;
    }
}

// *out = sum of v[0..n) (one block, a fixed order).
__global__ void nce_sum_kernel(const double *v, int n, double *out) {
    double t = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) t += v[i];
    t = block_sum(t);
    if (threadIdx.x == 0) *out = t;
}

// A warp per anchor x: dL/du_aj += sum over C_j of g_ac u_cj, per entry.
__global__ void nce_anchor_grad_kernel(const int32_t *anc, int n, int per_block, int stride, int sa, const int *ccol,
                                       const float *iu, const int *rp, const int32_t *idx, const int32_t *eoff,
                                       const int32_t *run, const float *sg, float *gu) {
    const int x = blockIdx.x * NCE_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (x >= n) return;
    const int r = set_token(per_block, stride, sa, anc[x]);
    for (int e = rp[r]; e < rp[r + 1]; e++) {
        const int c0 = ccol[idx[e]], c1 = ccol[idx[e] + 1], q0 = eoff[e] - c0;
        float s = 0.0f;
        for (int t = c0 + lane; t < c1; t += 32) s += sg[run[q0 + t]] * iu[t];
        s = warp_sum_f32(s);
        if (lane == 0) gu[e] += s;
    }
}

// A thread per position t of C's index (set sc, latent j): dL/du_cj += sum
// over the owned anchors in A_j (member order) of g_ac u_aj. acol / ccol: the
// lists of A and C (col + sa m, col + sc m).
__global__ void nce_cand_grad_kernel(int sc, int m, const int *acol, const int *ccol, const int32_t *ikey,
                                     const int32_t *ient, const float *iu, const int32_t *eoff, const int32_t *run,
                                     const float *sg, float *gu) {
    const int t = ccol[0] + blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= ccol[m]) return;
    const int j = ikey[t] - sc * m, dt = t - ccol[j];
    float s = 0.0f;
    for (int pa = acol[j]; pa < acol[j + 1]; pa++) {
        const int q0 = eoff[ient[pa]];
        if (q0 >= 0) s += sg[run[q0 + dt]] * iu[pa];
    }
    gu[ient[t]] += s;
}

// Through u = z / max(||z||, 1e-8), per token r of this rank (row row0 + r of
// the batch): dL/dz += (gu - u (u . gu)) / ||z||, or gu / 1e-8 where clamped.
// gm: this rank's dL/du, entry e of the batch at gm[e - ent0].
__global__ void nce_unnormalize_kernel(const int *start, const int *count, int n, const int *rp, int row0, int ent0,
                                       const float *norm, const float *u, const float *gm, int clamp_all,
                                       float *grad) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    const float nrm = norm[row0 + r];
    const int e0 = rp[row0 + r];
    const int clamped = nrm <= 1e-8f || clamp_all;
    double dot = 0.0;
    if (!clamped)
        for (int s = 0; s < count[r]; s++) dot += (double)u[e0 + s] * gm[e0 + s - ent0];
    for (int s = 0; s < count[r]; s++)
        grad[start[r] + s] += (float)((gm[e0 + s - ent0] - (clamped ? 0.0 : u[e0 + s] * dot)) / nrm);
}

// ---- memory --------------------------------------------------------------------

static int nce_grid(int64_t n, int threads) {
    const int64_t b = (n + threads - 1) / threads;
    return b > 0 ? (int)b : 1;
}

// Bits of the keys 0..max.
static int bits_for(uint64_t max) {
    int b = 1;
    while (b < 64 && (max >> b) != 0) b++;
    return b;
}

template <typename T>
static void renew(T **p, int64_t n) {
    dev_free(*p);
    *p = (T *)dev_alloc(sizeof(T) * (size_t)(n > 0 ? n : 1));
}

// Room for a batch of n_rows tokens and nnz entries (contents not kept).
static void reserve_codes(InfoNceCudaWork *w, int n_rows, int64_t nnz) {
    if (nnz > INT32_MAX / 2)
        die("CUDA InfoNCE: %lld code entries in the batch exceed the device index", (long long)nnz);
    if (n_rows > w->cap_rows || !w->h_rp) {
        w->cap_rows = n_rows;
        renew(&w->rp, n_rows + 1);
        renew(&w->norm, n_rows);
        w->h_rp = (int *)xrealloc(w->h_rp, sizeof(int) * ((size_t)n_rows + 1));
        w->h_count = (int *)xrealloc(w->h_count, sizeof(int) * ((size_t)n_rows + 1));
    }
    if (nnz > w->cap_ent) {
        const int cap = (int)nnz;
        w->cap_ent = cap;
        renew(&w->idx, cap), renew(&w->emem, cap), renew(&w->val, cap), renew(&w->u, cap), renew(&w->gu, cap);
        renew(&w->ikey_in, cap), renew(&w->ikey_out, cap), renew(&w->ient_in, cap), renew(&w->ient_out, cap);
        renew(&w->imem, cap), renew(&w->iu, cap), renew(&w->eoff, cap);
        dev_free(w->isort);
        w->isort_bytes = 0;
        cudaCheck(cub::DeviceRadixSort::SortPairs(NULL, w->isort_bytes, w->ikey_in, w->ikey_out, w->ient_in,
                                                  w->ient_out, cap));
        w->isort = dev_alloc(w->isort_bytes);
    }
}

static void reserve_anchors(InfoNceCudaWork *w, int n) {
    if (n <= w->cap_anc) return;
    w->cap_anc = n;
    renew(&w->anc[0], n), renew(&w->anc[1], n), renew(&w->loss, n);
    renew(&w->tot, n + 1), renew(&w->aoff, n + 1), renew(&w->arange, n + 1);
    w->h_anc = (int32_t *)xrealloc(w->h_anc, sizeof(int32_t) * (size_t)n);
    w->h_aoff = (int *)xrealloc(w->h_aoff, sizeof(int) * ((size_t)n + 1));
}

static void reserve_contributions(InfoNceCudaWork *w, int64_t n_q) {
    if (n_q > INT32_MAX / 2)
        die("CUDA InfoNCE: %lld overlapping code pairs in one group exceed the device index; use a smaller batch",
            (long long)n_q);
    if (n_q <= w->cap_q) return;
    const int64_t cap = n_q > 2 * w->cap_q ? n_q : 2 * w->cap_q;
    w->cap_q = cap;
    renew(&w->qkey_in, cap), renew(&w->qkey_out, cap), renew(&w->qid_in, cap), renew(&w->qid_out, cap);
    renew(&w->run, cap), renew(&w->prod, cap), renew(&w->sg, cap);
    dev_free(w->qsort);
    w->qsort_bytes = 0;
    cudaCheck(cub::DeviceRadixSort::SortPairs(NULL, w->qsort_bytes, w->qkey_in, w->qkey_out, w->qid_in, w->qid_out,
                                              (int)cap));
    w->qsort = dev_alloc(w->qsort_bytes);
}

InfoNceCudaWork *infonce_work_create_cuda(int m) {
    InfoNceCudaWork *w = (InfoNceCudaWork *)xcalloc(1, sizeof(InfoNceCudaWork));
    w->m = m;
    codes_alloc(&w->h_mine, 0, 0);
    codes_alloc(&w->h_all, 0, 0);
    return w;
}

void infonce_work_free_cuda(InfoNceCudaWork *w) {
    if (!w) return;
    void *dev[] = {w->rp,      w->idx,      w->emem,    w->val,  w->u,      w->gu,     w->norm,  w->ikey_in,
                   w->ikey_out, w->ient_in, w->ient_out, w->imem, w->iu,     w->eoff,   w->col,   w->isort,
                   w->anc[0],  w->anc[1],   w->tot,     w->aoff, w->arange, w->loss,   w->qkey_in, w->qkey_out,
                   w->qid_in,  w->qid_out,  w->run,     w->prod, w->sg,     w->qsort,  w->gsum,  w->gu_mine,
                   w->idx_mine, w->val_mine};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) dev_free(dev[i]);
    free(w->h_rp);
    free(w->h_count);
    free(w->h_anc);
    free(w->h_aoff);
    free(w->h_gsum);
    free(w->h_gu);
    free(w->h_gu_mine);
    codes_free(&w->h_mine);
    codes_free(&w->h_all);
    free(w);
}

// ---- the step ------------------------------------------------------------------

// This rank's codes compacted into the batch buffers (CSR, rows 0..z->n):
// the row pointers from the counts on the host; returns the entries.
static int compact_codes(InfoNceCudaWork *w, const DevCodesView *z, cudaStream_t st) {
    const int n = z->n;
    reserve_codes(w, n, 0);
    if (n > 0) {
        cudaCheck(cudaMemcpyAsync(w->h_count, z->count, sizeof(int) * n, cudaMemcpyDeviceToHost, st));
        cudaCheck(cudaStreamSynchronize(st));
    }
    int64_t nnz = 0;
    w->h_rp[0] = 0;
    for (int r = 0; r < n; r++) {
        nnz += w->h_count[r];
        if (nnz > INT32_MAX / 2) die("CUDA InfoNCE: too many code entries on this rank (%lld)", (long long)nnz);
        w->h_rp[r + 1] = (int)nnz;
    }
    reserve_codes(w, n, nnz);
    cudaCheck(cudaMemcpyAsync(w->rp, w->h_rp, sizeof(int) * ((size_t)n + 1), cudaMemcpyHostToDevice, st));
    if (n > 0) {
        nce_compact_kernel<<<nce_grid(n, 128), 128, 0, st>>>(z->start, z->count, z->idx, z->val, n, w->rp, w->idx,
                                                             w->val);
        cudaCheckLaunch("nce_compact_kernel");
    }
    w->n_rows = n;
    w->nnz = (int)nnz;
    return (int)nnz;
}

// The batch's row pointers (host and device) from every row's length.
static void set_rows(InfoNceCudaWork *w, int64_t n_rows, const int *row_len, cudaStream_t st) {
    w->h_rp[0] = 0;
    for (int64_t r = 0; r < n_rows; r++) w->h_rp[r + 1] = w->h_rp[r] + row_len[r];
    cudaCheck(cudaMemcpyAsync(w->rp, w->h_rp, sizeof(int) * ((size_t)n_rows + 1), cudaMemcpyHostToDevice, st));
}

// The exchange on device buffers (red's device twins: NCCL, comm_device.h):
// the layout over the host, then this rank's entries, moved aside (the batch
// buffers are resized for the whole batch), gathered into them.
static void exchange_codes_device(InfoNceCudaWork *w, int n_mine, int nnz, const SaeReduce *red, int *row0,
                                  int *ent0, cudaStream_t st) {
    int64_t n_rows = 0, nnz_all = 0, r0 = 0, e0 = 0;
    const int *row_len = NULL;
    red->codes_layout_device(red->device_ctx, n_mine, nnz, w->h_count, &n_rows, &nnz_all, &r0, &e0, &row_len);
    if (nnz > w->cap_send || !w->idx_mine) {
        renew(&w->idx_mine, nnz);
        renew(&w->val_mine, nnz);
        w->cap_send = nnz;
    }
    if (nnz > 0) {
        cudaCheck(cudaMemcpyAsync(w->idx_mine, w->idx, sizeof(int32_t) * nnz, cudaMemcpyDeviceToDevice, st));
        cudaCheck(cudaMemcpyAsync(w->val_mine, w->val, sizeof(float) * nnz, cudaMemcpyDeviceToDevice, st));
    }
    cudaCheck(cudaStreamSynchronize(st));
    reserve_codes(w, (int)n_rows, nnz_all);
    set_rows(w, n_rows, row_len, st);
    cudaCheck(cudaStreamSynchronize(st));
    red->codes_entries_device(red->device_ctx, w->idx_mine, w->val_mine, w->idx, w->val);
    w->n_rows = (int)n_rows;
    w->nnz = (int)nnz_all;
    *row0 = (int)r0;
    *ent0 = (int)e0;
}

// The exchange (the one place that talks to the other ranks): the whole
// batch's codes, every rank's rows in rank order, into the batch buffers;
// this rank's first row and entry in them. On the device through red's
// device twins where it has them, else through the host (gather_codes). One
// rank (red without gather_codes, or NULL): its own codes, row0 = ent0 = 0.
// Returns this rank's entries.
static int exchange_codes(InfoNceCudaWork *w, const DevCodesView *z, const SaeReduce *red, int *row0, int *ent0,
                           cudaStream_t st) {
    const int nnz = compact_codes(w, z, st);
    *row0 = *ent0 = 0;
    if (!red || !red->gather_codes) return nnz;
    if (red->codes_layout_device) {
        exchange_codes_device(w, z->n, nnz, red, row0, ent0, st);
        return nnz;
    }
    SparseCodes *mine = &w->h_mine, *all = &w->h_all;
    if (z->n > mine->n_rows) {
        codes_free(mine);
        codes_alloc(mine, z->n, 0);
    }
    codes_reserve(mine, nnz > 0 ? nnz : 1);
    mine->n_rows = z->n;
    mine->nnz = nnz;
    for (int r = 0; r <= z->n; r++) mine->row_ptr[r] = w->h_rp[r];
    if (nnz > 0) {
        cudaCheck(cudaMemcpyAsync(mine->idx, w->idx, sizeof(int32_t) * nnz, cudaMemcpyDeviceToHost, st));
        cudaCheck(cudaMemcpyAsync(mine->val, w->val, sizeof(float) * nnz, cudaMemcpyDeviceToHost, st));
        cudaCheck(cudaStreamSynchronize(st));
    }
    int64_t r0 = 0, e0 = 0;
    red->gather_codes(red->ctx, mine, all, &r0, &e0);
    reserve_codes(w, all->n_rows, all->nnz);
    for (int r = 0; r <= all->n_rows; r++) w->h_rp[r] = (int)all->row_ptr[r];
    cudaCheck(cudaMemcpyAsync(w->rp, w->h_rp, sizeof(int) * ((size_t)all->n_rows + 1), cudaMemcpyHostToDevice, st));
    if (all->nnz > 0) {
        cudaCheck(cudaMemcpyAsync(w->idx, all->idx, sizeof(int32_t) * all->nnz, cudaMemcpyHostToDevice, st));
        cudaCheck(cudaMemcpyAsync(w->val, all->val, sizeof(float) * all->nnz, cudaMemcpyHostToDevice, st));
    }
    cudaCheck(cudaStreamSynchronize(st));
    w->n_rows = all->n_rows;
    w->nnz = (int)all->nnz;
    *row0 = (int)r0;
    *ent0 = (int)e0;
    return nnz;
}

// This rank's dL/du (device): the candidates' gradients summed over the
// ranks through red->return_grad_device or red->return_grad (the exchange's
// other half), or the batch's own for one rank.
static const float *return_grads(InfoNceCudaWork *w, const SaeReduce *red, int nnz_mine, cudaStream_t st) {
    if (!red || !red->gather_codes) return w->gu;
    if (red->return_grad_device) {
        if (nnz_mine > w->cap_mine || !w->gu_mine) {
            renew(&w->gu_mine, nnz_mine);
            w->cap_mine = nnz_mine;
        }
        cudaCheck(cudaStreamSynchronize(st));
        red->return_grad_device(red->device_ctx, w->gu, w->gu_mine);
        return w->gu_mine;
    }
    if (w->nnz > w->cap_h_gu) {
        w->h_gu = (float *)xrealloc(w->h_gu, sizeof(float) * (size_t)w->nnz);
        w->cap_h_gu = w->nnz;
    }
    if (nnz_mine > w->cap_mine || !w->gu_mine) {
        w->h_gu_mine = (float *)xrealloc(w->h_gu_mine, sizeof(float) * (size_t)(nnz_mine > 0 ? nnz_mine : 1));
        renew(&w->gu_mine, nnz_mine);
        w->cap_mine = nnz_mine;
    }
    if (w->nnz > 0) cudaCheck(cudaMemcpyAsync(w->h_gu, w->gu, sizeof(float) * w->nnz, cudaMemcpyDeviceToHost, st));
    cudaCheck(cudaStreamSynchronize(st));
    red->return_grad(red->ctx, w->h_gu, w->h_gu_mine, nnz_mine);
    if (nnz_mine > 0)
        cudaCheck(cudaMemcpyAsync(w->gu_mine, w->h_gu_mine, sizeof(float) * nnz_mine, cudaMemcpyHostToDevice, st));
    return w->gu_mine;
}

// u, norms and the latent-major index of the n_sets sets of the batch.
static void build_index(InfoNceCudaWork *w, NceLayout g, int n_sets, cudaStream_t st) {
    const int m = w->m, n = w->n_rows, nnz = w->nnz, n_col = n_sets * m + 1;
    if (n_col > w->cap_col) {
        renew(&w->col, n_col);
        w->cap_col = n_col;
    }
    if (n > 0) {
        nce_prepare_kernel<<<nce_grid(n, 128), 128, 0, st>>>(w->rp, w->idx, w->val, n, m, g.per_block, g.stride,
                                                             w->norm, w->u, w->gu, w->ikey_in, w->ient_in, w->emem);
        cudaCheckLaunch("nce_prepare_kernel");
    }
    if (nnz > 0) {
        size_t bytes = w->isort_bytes;
        cudaCheck(cub::DeviceRadixSort::SortPairs(w->isort, bytes, w->ikey_in, w->ikey_out, w->ient_in, w->ient_out,
                                                  nnz, 0, bits_for((uint64_t)n_sets * m), st));
        nce_gather_index_kernel<<<nce_grid(nnz, 256), 256, 0, st>>>(w->ient_out, nnz, w->emem, w->u, w->imem, w->iu);
        cudaCheckLaunch("nce_gather_index_kernel");
    }
    nce_bounds32_kernel<<<nce_grid(n_col, 256), 256, 0, st>>>(w->ikey_out, nnz, n_col, w->col);
    cudaCheckLaunch("nce_bounds32_kernel");
}

// The group's contributions: per anchor counts, their prefix sum on the host
// (also the total, for the buffers), then the keyed places. Returns the total.
static int enumerate_group(InfoNceCudaWork *w, const NceGroup *gr, NceLayout g, int n_c, cudaStream_t st) {
    const int n = w->n_anc[gr->list], m = w->m;
    const int32_t *anc = w->anc[gr->list];
    const int *ccol = w->col + gr->sc * m;
    nce_count_kernel<<<nce_grid(n, 128), 128, 0, st>>>(anc, n, g.per_block, g.stride, gr->sa, ccol, w->rp,
                                                      w->idx, w->tot);
    cudaCheckLaunch("nce_count_kernel");
    int *h_tot = w->h_count; // n <= the batch's rows
    cudaCheck(cudaMemcpyAsync(h_tot, w->tot, sizeof(int) * n, cudaMemcpyDeviceToHost, st));
    cudaCheck(cudaStreamSynchronize(st));
    int64_t q = 0;
    for (int x = 0; x < n; x++) {
        w->h_aoff[x] = (int)q; // (int: reserve_contributions dies beyond INT32_MAX / 2)
        q += h_tot[x];
    }
    reserve_contributions(w, q);
    // (h_aoff is rewritten by the next group after its synchronization above)
    cudaCheck(cudaMemcpyAsync(w->aoff, w->h_aoff, sizeof(int) * n, cudaMemcpyHostToDevice, st));
    cudaCheck(cudaMemsetAsync(w->eoff, 0xFF, sizeof(int32_t) * (size_t)(w->nnz > 0 ? w->nnz : 1), st));
    nce_enumerate_kernel<<<nce_grid(n, NCE_WARPS), NCE_THREADS, 0, st>>>(
        anc, n, g.per_block, g.stride, gr->sa, n_c, ccol, w->imem, w->iu, w->rp, w->idx, w->u, w->aoff, w->eoff,
        w->qkey_in, w->qid_in, w->prod);
    cudaCheckLaunch("nce_enumerate_kernel");
    return (int)q;
}

// One group (infonce.c's run_group): sums of l(a) into gsum[gi], dL/du into gu.
static void run_group(InfoNceCudaWork *w, const NceGroup *gr, NceLayout g, int n_c, float inv_tau, int gi,
                      cudaStream_t st) {
    const int n = w->n_anc[gr->list], m = w->m;
    const int32_t *anc = w->anc[gr->list];
    if (n == 0) {
        cudaCheck(cudaMemsetAsync(w->gsum + gi, 0, sizeof(double), st));
        return;
    }
    const int n_q = enumerate_group(w, gr, g, n_c, st);
    if (n_q > 0) {
        size_t bytes = w->qsort_bytes;
        cudaCheck(cub::DeviceRadixSort::SortPairs(w->qsort, bytes, w->qkey_in, w->qkey_out, w->qid_in, w->qid_out,
                                                  n_q, 0, bits_for((uint64_t)n * (uint64_t)n_c), st));
        nce_runs_kernel<<<nce_grid(n_q, 256), 256, 0, st>>>(w->qkey_out, w->qid_out, n_q, w->prod, w->run, w->sg);
        cudaCheckLaunch("nce_runs_kernel");
    }
    nce_bounds64_kernel<<<nce_grid(n + 1, 256), 256, 0, st>>>(w->qkey_out, n_q, n + 1, (uint64_t)n_c, w->arange);
    cudaCheckLaunch("nce_bounds64_kernel");
    const int extra = PLANTED("cuda_nce_candidate"), self = gr->self && !PLANTED("cuda_nce_self");
    nce_loss_kernel<<<nce_grid(n, NCE_WARPS), NCE_THREADS, 0, st>>>(anc, n, n_c, gr->pos_off, self, gr->w * inv_tau,
                                                                     inv_tau, extra, w->arange, w->qkey_out, w->sg,
                                                                     w->loss);
    cudaCheckLaunch("nce_loss_kernel");
    nce_sum_kernel<<<1, 256, 0, st>>>(w->loss, n, w->gsum + gi);
    cudaCheckLaunch("nce_sum_kernel");
    const int *acol = w->col + gr->sa * m, *ccol = w->col + gr->sc * m;
    nce_anchor_grad_kernel<<<nce_grid(n, NCE_WARPS), NCE_THREADS, 0, st>>>(
        anc, n, g.per_block, g.stride, gr->sa, ccol, w->iu, w->rp, w->idx, w->eoff, w->run, w->sg, w->gu);
    cudaCheckLaunch("nce_anchor_grad_kernel");
    // a thread per entry of the batch, at most: C's positions are fewer
    nce_cand_grad_kernel<<<nce_grid(w->nnz, 128), 128, 0, st>>>(gr->sc, m, acol, ccol, w->ikey_out, w->ient_out, w->iu,
                                                                w->eoff, w->run, w->sg, w->gu);
    cudaCheckLaunch("nce_cand_grad_kernel");
}

// The anchors this rank owns, members [lo, hi) of a set: list 0 every one
// (temporal, raster; positive a), list 1 those with a right neighbour
// (spatial; positive a + 1; W = 0: none).
static void upload_anchors(InfoNceCudaWork *w, int lo, int hi, int per_block, int W, cudaStream_t st) {
    reserve_anchors(w, hi - lo);
    for (int list = 0; list < 2; list++) {
        int n = 0;
        for (int i = lo; i < hi; i++)
            if (list == 0 || (W > 0 && (i % per_block) % W < W - 1)) w->h_anc[n++] = i;
        w->n_anc[list] = n;
        if (n > 0) {
            cudaCheck(cudaMemcpyAsync(w->anc[list], w->h_anc, sizeof(int32_t) * n, cudaMemcpyHostToDevice, st));
            cudaCheck(cudaStreamSynchronize(st)); // h_anc is rewritten next
        }
    }
}

// The groups of cfg's losses (infonce_step's order) into gr; returns how many.
// n_loss: the anchors of each loss over the global batch, for the weights.
static int make_groups(const SaeConfig *cfg, int T, int W, const double n_loss[3], NceGroup *gr) {
    int n = 0;
    if (cfg->contrast == CTR_RASTER) {
        gr[n++] = NceGroup{0, 1, 0, 0, 0, 2, (float)(cfg->lambda_r / n_loss[2])};
        return n;
    }
    for (int t = 0; t + 1 < T; t++) gr[n++] = NceGroup{t, t + 1, 0, 0, 0, 0, (float)(cfg->lambda_t / n_loss[0])};
    if (cfg->contrast == CTR_SEPARATE && W > 1)
        for (int t = 0; t < T; t++) gr[n++] = NceGroup{t, t, 1, 1, 1, 1, (float)(cfg->lambda_s / n_loss[1])};
    return n;
}

void infonce_step_cuda(const SaeConfig *cfg, const SaeBatch *b, const DevCodesView *z, const SaeReduce *red,
                       InfoNceCudaWork *w, InfoNceLoss *out, cudaStream_t st) {
    memset(out, 0, sizeof(*out));
    if (cfg->contrast == CTR_NONE) return;
    if (cfg->m != w->m) die("CUDA InfoNCE: m = %d differs from its workspace (%d)", cfg->m, w->m);
    const int raster = cfg->contrast == CTR_RASTER;
    if (!raster && b->T < 2) // jobs_check refuses such jobs before training: an assertion, as on the CPU
        die("the temporal loss needs whole clips of at least 2 steps; this batch has %d clips of T = %d", b->clips,
            b->T);
    int row0, ent0;
    const int nnz_mine = exchange_codes(w, z, red, &row0, &ent0, st);
    const int per_unit = raster ? 2 : b->T * b->H * b->W; // tokens per pair / clip
    if (per_unit <= 0 || w->n_rows % per_unit || z->n % per_unit)
        die("CUDA InfoNCE: the ranks' batches are not whole clips or pairs");
    const int units = w->n_rows / per_unit, unit0 = row0 / per_unit, my_units = z->n / per_unit;
    const NceLayout g = raster ? NceLayout{1, 2} : NceLayout{b->H * b->W, per_unit};
    const int n_sets = raster ? 2 : b->T, n_c = units * g.per_block; // members per set
    build_index(w, g, n_sets, st);
    upload_anchors(w, unit0 * g.per_block, (unit0 + my_units) * g.per_block, g.per_block, raster ? 0 : b->W, st);

    const double n_loss[3] = {raster ? 0.0 : (double)units * (b->T - 1) * g.per_block,
                              cfg->contrast == CTR_SEPARATE ? (double)units * b->T * b->H * (b->W - 1) : 0.0,
                              raster ? (double)units : 0.0};
    NceGroup *gr = (NceGroup *)xmalloc(sizeof(NceGroup) * (size_t)(2 * n_sets));
    const int n_groups = make_groups(cfg, b->T, b->W, n_loss, gr);
    if (n_groups > w->cap_groups) {
        renew(&w->gsum, n_groups);
        w->h_gsum = (double *)xrealloc(w->h_gsum, sizeof(double) * (size_t)n_groups);
        w->cap_groups = n_groups;
    }
    const float inv_tau = 1.0f / cfg->tau;
    for (int q = 0; q < n_groups; q++) run_group(w, &gr[q], g, n_c, inv_tau, q, st);

    // the loss sums of this rank's anchors, per loss in group order, then over the ranks
    double sums[3] = {0.0, 0.0, 0.0};
    cudaCheck(cudaMemcpyAsync(w->h_gsum, w->gsum, sizeof(double) * n_groups, cudaMemcpyDeviceToHost, st));
    cudaCheck(cudaStreamSynchronize(st));
    for (int q = 0; q < n_groups; q++) sums[gr[q].kind] += w->h_gsum[q];
    sae_sum_f64(red, sums, 3);
    out->temp = n_loss[0] > 0 ? sums[0] / n_loss[0] : 0.0;
    out->spat = n_loss[1] > 0 ? sums[1] / n_loss[1] : 0.0;
    out->rast = n_loss[2] > 0 ? sums[2] / n_loss[2] : 0.0;
    free(gr);

    const float *gm = return_grads(w, red, nnz_mine, st);
    if (z->n > 0) {
        nce_unnormalize_kernel<<<nce_grid(z->n, 128), 128, 0, st>>>(z->start, z->count, z->n, w->rp, row0, ent0,
                                                                    w->norm, w->u, gm, PLANTED("cuda_nce_norm"),
                                                                    z->grad);
        cudaCheckLaunch("nce_unnormalize_kernel");
    }
}
