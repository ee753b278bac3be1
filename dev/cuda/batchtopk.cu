// batchtopk.cu — harness of BatchTopK's selection on the device
// (cuda/sae/select.cu): the global (k n)-th largest positive value v of a
// batch's pre-activations [n, m] (kth_largest_positive_cuda: a radix select
// in two 16-bit passes, launch_bits_histogram on the device and the buckets
// found on the host), then the entries a > 0, a >= v of each token in latent
// order (launch_keep_count, the starts on the host, launch_keep_fill).
//
// In:  pre [n, m] ~ N(0, 1) (b_enc already added, as the step does), kk = k n.
//      At the paper's shape (25 M values) values repeat, so the threshold
//      usually has ties, all of which are kept (a >= v).
// Out: per version, the threshold, the counts per token and the CSR rows
//      (latent, value) compared with a CPU reference — nth_element over the
//      positive values (those whose bits have a non-zero high half, as the
//      radix select counts them; 0 when at most kk are), then a scan of each
//      row — which must match exactly; the time of the whole selection (host
//      round trips included) and the bandwidth of one read of pre.
//
//   ./dev_batchtopk [VERSION] [--small] [--n N] [--m M] [--k K] [--reps R] [--plant]
//   version 1  naive: the threshold bit by bit (31 counting passes over the
//              batch, each with a host round trip), then one thread per token
//              scanning its row for the counts and again for the entries
//   version 2  production: kth_largest_positive_cuda, launch_keep_count,
//              launch_keep_fill
#include <algorithm>
#include <functional>
#include <vector>

#include "common.h"
#include "sae/sae_ops.h"

// ---- CPU reference -------------------------------------------------------------------

static uint32_t float_bits(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

// The threshold v; count[r] and the rows' entries, row after row.
static float batchtopk_reference(const float *pre, int n, int m, int64_t kk, int32_t *count,
                                 std::vector<int32_t> &idx, std::vector<float> &val) {
    std::vector<float> pos;
    for (size_t q = 0; q < (size_t)n * m; q++) {
        const uint32_t u = float_bits(pre[q]);
        if (u < 0x80000000u && u >> 16 != 0) pos.push_back(pre[q]);
    }
    float v = 0.0f;
    if ((int64_t)pos.size() > kk) {
        std::nth_element(pos.begin(), pos.begin() + (kk - 1), pos.end(), std::greater<float>());
        v = pos[kk - 1];
    }
    idx.clear(), val.clear();
    for (int r = 0; r < n; r++) {
        const size_t start = idx.size();
        for (int j = 0; j < m; j++) {
            const float a = pre[(size_t)r * m + j];
            if (a > 0.0f && a >= v) idx.push_back(j), val.push_back(a);
        }
        count[r] = (int32_t)(idx.size() - start);
    }
    return v;
}

// ---- what both versions share --------------------------------------------------------

typedef struct {
    SelHistBufs hist;              // version 2
    unsigned long long *d_counter; // version 1
    int *h_count, *h_start;        // host [n + 1]
} Work;

// start (device, [n]) from count (device): an exclusive scan on the host, as
// the step's codes_csr_rows; returns the entries.
static int csr_starts(const int *count, int n, int *start, Work *w) {
    host_copy(w->h_count, count, (size_t)n);
    int at = 0;
    for (int r = 0; r < n; r++) w->h_start[r] = at, at += w->h_count[r];
    cudaCheck(cudaMemcpy(start, w->h_start, sizeof(int) * n, cudaMemcpyHostToDevice));
    return at;
}

// A version: the threshold, the counts, the starts and the entries (idx /
// val with room for every positive entry); returns the threshold.
typedef float (*BatchFn)(const float *pre, int n, int m, int64_t kk, int *count, int *start, int32_t *idx,
                         float *val, Work *w);

// ---- version 1: naive ----------------------------------------------------------------

// *counter += the positive entries (non-zero high half) whose bits are >= t
__global__ void count_at_least_kernel(const unsigned *a, size_t n_el, unsigned t, unsigned long long *counter) {
    unsigned long long c = 0;
    for (size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x; q < n_el; q += (size_t)gridDim.x * blockDim.x)
        c += a[q] < 0x80000000u && a[q] >> 16 != 0 && a[q] >= t;
    if (c) atomicAdd(counter, c);
}

// one thread per token: its entries a > 0, a >= v (count, then fill from start)
__global__ void keep_naive_kernel(const float *pre, int n, int m, float v, int *count, const int *start,
                                  int32_t *idx, float *val) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    const float *row = pre + (size_t)r * m;
    int at = start ? start[r] : 0;
    for (int j = 0; j < m; j++) {
        if (!(row[j] > 0.0f && row[j] >= v)) continue;
        if (start) idx[at] = j, val[at] = row[j];
        at++;
    }
    if (!start) count[r] = at;
}

static unsigned long long count_at_least(const float *pre, size_t n_el, unsigned t, Work *w) {
    cudaCheck(cudaMemset(w->d_counter, 0, sizeof(unsigned long long)));
    const size_t blocks = std::min<size_t>((n_el + 255) / 256, 4096);
    count_at_least_kernel<<<(int)blocks, 256>>>((const unsigned *)pre, n_el, t, w->d_counter);
    cudaCheckLaunch("count_at_least_kernel");
    unsigned long long c = 0;
    host_copy(&c, w->d_counter, 1);
    return c;
}

static float batchtopk_naive(const float *pre, int n, int m, int64_t kk, int *count, int *start, int32_t *idx,
                             float *val, Work *w) {
    const size_t n_el = (size_t)n * m;
    unsigned bits = 0; // the largest t with at least kk entries >= t
    if (count_at_least(pre, n_el, 0x10000u, w) > (unsigned long long)kk)
        for (int b = 30; b >= 0; b--)
            if (count_at_least(pre, n_el, bits | 1u << b, w) >= (unsigned long long)kk) bits |= 1u << b;
    float v;
    memcpy(&v, &bits, sizeof(v));
    const int blocks = (n + 127) / 128;
    keep_naive_kernel<<<blocks, 128>>>(pre, n, m, v, count, nullptr, nullptr, nullptr);
    cudaCheckLaunch("keep_naive_kernel");
    csr_starts(count, n, start, w);
    keep_naive_kernel<<<blocks, 128>>>(pre, n, m, v, count, start, idx, val);
    cudaCheckLaunch("keep_naive_kernel");
    return v;
}

// ---- version 2: production -----------------------------------------------------------

static float batchtopk_production(const float *pre, int n, int m, int64_t kk, int *count, int *start, int32_t *idx,
                                  float *val, Work *w) {
    const float v = kth_largest_positive_cuda(pre, (size_t)n * m, kk, NULL, &w->hist, 0);
    launch_keep_count(pre, n, m, v, count, 0);
    csr_starts(count, n, start, w);
    launch_keep_fill(pre, n, m, v, start, idx, val, 0);
    return v;
}

// ---- the harness ---------------------------------------------------------------------

static const struct {
    const char *name;
    BatchFn fn;
} VERSIONS[] = {{"naive bitwise threshold and row scans", batchtopk_naive},
                {"production 16-bit radix select", batchtopk_production}};
enum { N_VERSIONS = sizeof(VERSIONS) / sizeof(VERSIONS[0]) };

int main(int argc, char **argv) {
    const DevArgs a = dev_args(argc, argv, N_VERSIONS, dev_shape(4096, 6144, 768, 64, 10), dev_shape(64, 256, 32, 8, 2));
    dev_start("dev/cuda/batchtopk.cu: BatchTopK's (k n)-th largest and keep (kth_largest_positive_cuda, "
              "launch_keep_count/fill)", &a);
    const int n = a.n, m = a.m;
    const int64_t kk = (int64_t)a.k * n;
    const size_t n_el = (size_t)n * m;
    Rng rng = {2};
    float *pre = host_alloc<float>(n_el);
    fill_normal(pre, n_el, 1.0f, &rng);
    int32_t *ref_count = host_alloc<int32_t>((size_t)n);
    std::vector<int32_t> ref_idx;
    std::vector<float> ref_val;
    const float ref_v = batchtopk_reference(pre, n, m, kk, ref_count, ref_idx, ref_val);
    const size_t n_ref = ref_idx.size();
    printf("threshold %.9g: %zu entries kept for k n = %lld\n", ref_v, n_ref, (long long)kk);
    std::vector<double> ref_vald(ref_val.begin(), ref_val.end());
    const double ref_vd = ref_v;

    Work w;
    w.hist.hist = device_alloc<unsigned>(SEL_HIST_BINS);
    w.hist.h32 = host_alloc<unsigned>(SEL_HIST_BINS);
    w.hist.h64 = host_alloc<int64_t>(SEL_HIST_BINS);
    w.d_counter = device_alloc<unsigned long long>(1);
    w.h_count = host_alloc<int>((size_t)n + 1);
    w.h_start = host_alloc<int>((size_t)n + 1);
    float *d_pre = device_copy(pre, n_el);
    int *d_count = device_alloc<int>((size_t)n), *d_start = device_alloc<int>((size_t)n);
    // room for every positive entry, whatever a wrong threshold keeps
    int32_t *d_idx = device_alloc<int32_t>(n_el), *out_idx = host_alloc<int32_t>(n_ref);
    float *d_val = device_alloc<float>(n_el), *out_val = host_alloc<float>(n_ref);
    int32_t *out_count = host_alloc<int32_t>((size_t)n);

    int failed = 0;
    for (int v = 1; v <= N_VERSIONS; v++) {
        if (a.version && v != a.version) continue;
        const BatchFn fn = VERSIONS[v - 1].fn;
        float thr = fn(d_pre, n, m, kk, d_count, d_start, d_idx, d_val, &w);
        host_copy(out_count, d_count, (size_t)n);
        host_copy(out_idx, d_idx, n_ref);
        host_copy(out_val, d_val, n_ref);
        if (a.plant) plant_value(&thr, 1);
        Check chk = {0, 0.0};
        validate_result(&chk, "threshold", &thr, &ref_vd, 1, 0.0);
        validate_exact(&chk, "count", out_count, ref_count, (size_t)n);
        validate_exact(&chk, "idx", out_idx, ref_idx.data(), n_ref);
        validate_result(&chk, "val", out_val, ref_vald.data(), n_ref, 0.0);
        const double ms = time_ms(a.reps, [&] { fn(d_pre, n, m, kk, d_count, d_start, d_idx, d_val, &w); });
        failed |= report(v, VERSIONS[v - 1].name, &chk, ms, 4.0 * n_el, 0.0);
    }
    cudaCheck(cudaFree(w.hist.hist));
    cudaCheck(cudaFree(w.d_counter));
    cudaCheck(cudaFree(d_pre));
    cudaCheck(cudaFree(d_count));
    cudaCheck(cudaFree(d_start));
    cudaCheck(cudaFree(d_idx));
    cudaCheck(cudaFree(d_val));
    free(w.hist.h32), free(w.hist.h64), free(w.h_count), free(w.h_start);
    free(pre), free(ref_count), free(out_idx), free(out_val), free(out_count);
    return failed;
}
