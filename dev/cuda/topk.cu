// topk.cu — harness of TopK per token (cuda/sae/select.cu's launch_topk_rows),
// in its two uses by the step: the k largest of pre + b_enc per token, and
// AuxK's k_aux largest over the dead latents only (a mask).
//
// In:  pre [n, m] ~ N(0, 1) with every fourth row rounded to multiples of 1/4
//      and b_enc [m] to 1/16 (exact ties at the k-th value, which must keep
//      the lowest latents), row 0 all negative (nothing kept) and row 1 with
//      k/2 positive entries (fewer than k); a mask of about a third of the latents (AuxK's dead
//      ones), k_aux = min(8 k, m / 12) (the paper's 512; about half the
//      positive dead entries).
// Out: per version and case, the kept (latent, value) slots [n, k] and counts
//      compared with a CPU reference — a full sort of each row by (value
//      descending, latent ascending), positive values only, the first k,
//      re-sorted by latent — which must match exactly (counts, latents and
//      value bits); then the time per call and the bandwidth of one read of pre.
//
//   ./dev_topk [VERSION] [--small] [--n N] [--m M] [--k K] [--reps R] [--plant]
//   version 1  naive: one block per token, k passes of a block-wide argmax
//              (value, then lowest latent) over the not yet taken entries
//   version 2  production: launch_topk_rows (radix select of the k-th value
//              in four 8-bit passes over the row, then the entries above it
//              and the ties in latent order)
#include <algorithm>

#include "common.h"
#include "sae/sae_ops.h"

// ---- CPU reference -------------------------------------------------------------------

// Row r's kept entries into slots [r k, r k + count[r]), latent order; unused
// slots get latent -1 and value 0 (as the comparison normalizes the device's).
// Returns the rows with a tie at the k-th value (the data must have some).
static int topk_reference(const float *pre, const float *b_enc, const uint8_t *mask, int n, int m, int k,
                          int32_t *idx, float *val, int32_t *count) {
    int ties = 0;
    int32_t *order = host_alloc<int32_t>((size_t)m);
    float *a = host_alloc<float>((size_t)m);
    for (int r = 0; r < n; r++) {
        int c = 0;
        for (int j = 0; j < m; j++) {
            a[j] = pre[(size_t)r * m + j] + b_enc[j];
            if (a[j] > 0.0f && (!mask || mask[j])) order[c++] = j;
        }
        std::sort(order, order + c, [&](int32_t x, int32_t y) { return a[x] > a[y] || (a[x] == a[y] && x < y); });
        ties += c > k && a[order[k]] == a[order[k - 1]];
        c = c < k ? c : k;
        std::sort(order, order + c);
        count[r] = c;
        for (int s = 0; s < k; s++) {
            idx[(size_t)r * k + s] = s < c ? order[s] : -1;
            val[(size_t)r * k + s] = s < c ? a[order[s]] : 0.0f;
        }
    }
    free(order);
    free(a);
    return ties;
}

// ---- version 1: naive ----------------------------------------------------------------

enum { NAIVE_THREADS = 256 };

// (v, j) ranks before (bv, bj): larger value, then lower latent (bj < 0: nothing yet)
__device__ __forceinline__ bool ranks_before(float v, int j, float bv, int bj) {
    return j >= 0 && (bj < 0 || v > bv || (v == bv && j < bj));
}

__global__ void topk_naive_kernel(const float *pre, const float *b_enc, const uint8_t *mask, int m, int k,
                                  int32_t *idx_out, float *val_out, int *count_out) {
    __shared__ float w_val[32], s_val[TOPK_MAX_K];
    __shared__ int w_idx[32], s_idx[TOPK_MAX_K];
    __shared__ float s_bv;
    __shared__ int s_bj;
    const float *row = pre + (size_t)blockIdx.x * m;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float pv = INFINITY; // the entry taken last: everything ranking before it is taken
    int pj = -1, cnt = 0;
    for (; cnt < k; cnt++) {
        float bv = 0.0f;
        int bj = -1;
        for (int j = threadIdx.x; j < m; j += blockDim.x) {
            const float v = b_enc ? row[j] + b_enc[j] : row[j];
            if (v <= 0.0f || (mask && !mask[j]) || v > pv || (v == pv && j <= pj)) continue; // not positive, or taken
            if (ranks_before(v, j, bv, bj)) bv = v, bj = j;
        }
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_down_sync(0xffffffffu, bv, o);
            const int oj = __shfl_down_sync(0xffffffffu, bj, o);
            if (ranks_before(ov, oj, bv, bj)) bv = ov, bj = oj;
        }
        if (lane == 0) w_val[warp] = bv, w_idx[warp] = bj;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int q = 1; q < (int)(blockDim.x >> 5); q++)
                if (ranks_before(w_val[q], w_idx[q], bv, bj)) bv = w_val[q], bj = w_idx[q];
            s_bv = bv, s_bj = bj;
            if (bj >= 0) s_val[cnt] = bv, s_idx[cnt] = bj;
        }
        __syncthreads();
        if (s_bj < 0) break;
        pv = s_bv, pj = s_bj;
    }
    // into latent order: each entry's rank among the taken latents
    const size_t o = (size_t)blockIdx.x * k;
    for (int t = threadIdx.x; t < cnt; t += blockDim.x) {
        int rank = 0;
        for (int s = 0; s < cnt; s++) rank += s_idx[s] < s_idx[t];
        idx_out[o + rank] = s_idx[t];
        val_out[o + rank] = s_val[t];
    }
    if (threadIdx.x == 0) count_out[blockIdx.x] = cnt;
}

static void topk_naive(const float *pre, const float *b_enc, const uint8_t *mask, int n, int m, int k, int32_t *idx,
                       float *val, int *count, cudaStream_t st) {
    topk_naive_kernel<<<n, NAIVE_THREADS, 0, st>>>(pre, b_enc, mask, m, k, idx, val, count);
    cudaCheckLaunch("topk_naive_kernel");
}

// ---- the harness ---------------------------------------------------------------------

typedef void (*TopkFn)(const float *pre, const float *b_enc, const uint8_t *mask, int n, int m, int k, int32_t *idx,
                       float *val, int *count, cudaStream_t st);
static const struct {
    const char *name;
    TopkFn fn;
} VERSIONS[] = {{"naive k argmax passes", topk_naive}, {"production launch_topk_rows", launch_topk_rows}};
enum { N_VERSIONS = sizeof(VERSIONS) / sizeof(VERSIONS[0]) };

int main(int argc, char **argv) {
    const DevArgs a = dev_args(argc, argv, N_VERSIONS, dev_shape(4096, 6144, 768, 64, 20), dev_shape(64, 256, 32, 8, 2));
    dev_start("dev/cuda/topk.cu: TopK per token and AuxK's TopK over a mask (launch_topk_rows)", &a);
    const int n = a.n, m = a.m, k = a.k;
    const int k_aux = std::max(1, std::min(std::min(8 * k, m / 12), (int)TOPK_MAX_K));
    if (k > TOPK_MAX_K) stsae_die_at(__FILE__, __LINE__, "k = %d above TOPK_MAX_K = %d", k, TOPK_MAX_K);
    Rng rng = {1};
    float *pre = host_alloc<float>((size_t)n * m), *b_enc = host_alloc<float>((size_t)m);
    uint8_t *mask = host_alloc<uint8_t>((size_t)m);
    fill_normal(pre, (size_t)n * m, 1.0f, &rng);
    fill_normal(b_enc, (size_t)m, 0.1f, &rng);
    for (int j = 0; j < m; j++) b_enc[j] = roundf(b_enc[j] * 16.0f) / 16.0f;
    for (int r = 0; r < n; r++) {
        float *row = pre + (size_t)r * m;
        for (int j = 0; j < m; j++) {
            if (r % 4 == 3) row[j] = roundf(row[j] * 4.0f) / 4.0f;
            if (r == 0) row[j] = -fabsf(row[j]) - 1.0f;
            if (r == 1) row[j] = j < k / 2 ? 1.0f + fabsf(row[j]) : -1.0f;
        }
    }
    for (int j = 0; j < m; j++) mask[j] = rng_uniform(&rng) < 1.0 / 3.0;

    const struct {
        const char *name;
        const uint8_t *mask;
        int k;
    } cases[] = {{"TopK", NULL, k}, {"AuxK", mask, k_aux}};
    float *d_pre = device_copy(pre, (size_t)n * m), *d_benc = device_copy(b_enc, (size_t)m);
    uint8_t *d_mask = device_copy(mask, (size_t)m);
    const size_t slots = (size_t)n * k_aux;
    int32_t *d_idx = device_alloc<int32_t>(slots), *ref_idx = host_alloc<int32_t>(slots);
    int32_t *out_idx = host_alloc<int32_t>(slots), *ref_cnt = host_alloc<int32_t>((size_t)n);
    int32_t *out_cnt = host_alloc<int32_t>((size_t)n);
    float *d_val = device_alloc<float>(slots), *ref_val = host_alloc<float>(slots), *out_val = host_alloc<float>(slots);
    double *ref_vald = host_alloc<double>(slots);
    int *d_cnt = device_alloc<int>((size_t)n);

    int failed = 0;
    for (int c = 0; c < 2; c++) {
        const int kc = cases[c].k;
        const int ties = topk_reference(pre, b_enc, cases[c].mask, n, m, kc, ref_idx, ref_val, ref_cnt);
        printf("%s k=%d: %d of %d rows with a tie at the k-th value\n", cases[c].name, kc, ties, n);
        for (size_t s = 0; s < (size_t)n * kc; s++) ref_vald[s] = ref_val[s];
        const uint8_t *dm = cases[c].mask ? d_mask : NULL;
        for (int v = 1; v <= N_VERSIONS; v++) {
            if (a.version && v != a.version) continue;
            const TopkFn fn = VERSIONS[v - 1].fn;
            fn(d_pre, d_benc, dm, n, m, kc, d_idx, d_val, d_cnt, 0);
            host_copy(out_idx, d_idx, (size_t)n * kc);
            host_copy(out_val, d_val, (size_t)n * kc);
            host_copy(out_cnt, d_cnt, (size_t)n);
            for (int r = 0; r < n; r++)
                for (int s = out_cnt[r] > 0 ? out_cnt[r] : 0; s < kc; s++)
                    out_idx[(size_t)r * kc + s] = -1, out_val[(size_t)r * kc + s] = 0.0f;
            if (a.plant) plant_index(out_idx, (size_t)n * kc);
            Check chk = {0, 0.0};
            validate_exact(&chk, "count", out_cnt, ref_cnt, (size_t)n);
            validate_exact(&chk, "idx", out_idx, ref_idx, (size_t)n * kc);
            validate_result(&chk, "val", out_val, ref_vald, (size_t)n * kc, 0.0);
            const double ms =
                time_ms(a.reps, [&] { fn(d_pre, d_benc, dm, n, m, kc, d_idx, d_val, d_cnt, 0); });
            char name[96];
            snprintf(name, sizeof(name), "%s, %s k=%d", VERSIONS[v - 1].name, cases[c].name, kc);
            failed |= report(v, name, &chk, ms, 4.0 * ((double)n * m + m), 0.0);
        }
    }
    cudaCheck(cudaFree(d_pre));
    cudaCheck(cudaFree(d_benc));
    cudaCheck(cudaFree(d_mask));
    cudaCheck(cudaFree(d_idx));
    cudaCheck(cudaFree(d_val));
    cudaCheck(cudaFree(d_cnt));
    free(pre), free(b_enc), free(mask), free(ref_idx), free(out_idx), free(ref_cnt), free(out_cnt);
    free(ref_val), free(out_val), free(ref_vald);
    return failed;
}
