// select.c — TopK, batch k-th largest, sparsemax and entmax-1.5 (select.h).
#include "stsae/sae/select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

// Reorders val[0..n) (idx alongside) so that val[0..k) are the k largest,
// and returns the k-th largest (Wirth's selection, descending).
static float select_top(float *val, int32_t *idx, int n, int k) {
    int l = 0, r = n - 1, t = k - 1;
    while (l < r) {
        float x = val[t];
        int i = l, j = r;
        do {
            while (val[i] > x) i++;
            while (x > val[j]) j--;
            if (i <= j) {
                float tv = val[i];
                val[i] = val[j];
                val[j] = tv;
                int32_t ti = idx[i];
                idx[i] = idx[j];
                idx[j] = ti;
                i++;
                j--;
            }
        } while (i <= j);
        if (j < t) l = i;
        if (t < i) r = j;
    }
    return val[t];
}

// A threshold below which no entry of the k largest of a[0..m) can lie: split
// the row into k blocks; every block maximum is >= the smallest one, so at
// least k entries are. Returns a value just below that smallest maximum (so a
// strict ">" keeps it), or 0 when the row is too short to pay off.
static float topk_floor(const float *a, int m, int k) {
    if (m < 8 * k) return 0.0f;
    const int bs = m / k;
    float lo = INFINITY;
    for (int b = 0; b < k; b++) {
        const float *blk = a + (size_t)b * bs;
        const int len = b == k - 1 ? m - b * bs : bs;
        float mx = blk[0];
#pragma omp simd reduction(max : mx)
        for (int i = 1; i < len; i++) mx = blk[i] > mx ? blk[i] : mx;
        lo = mx < lo ? mx : lo;
    }
    return lo > 0.0f ? nextafterf(lo, 0.0f) : 0.0f;
}

// The k largest positive a[j] over j = cand[i] (or j = i when cand is NULL).
// Entries above the running threshold are appended to a buffer of 2k; when
// it fills, a selection keeps the k largest and raises the threshold to the
// k-th. Each element costs one compare; the selections are O(k) and rare.
// Over a whole row the threshold starts at topk_floor, so only a few percent
// of the entries reach the buffer.
static int topk_core(const float *a, const int32_t *cand, int n_cand, int k, int32_t *idx, float *val) {
    enum { STACK = 2048 };
    if (k <= 0) return 0;
    const int cap = 2 * k;
    float sv[STACK];
    int32_t si[STACK];
    float *bv = cap <= STACK ? sv : xmalloc(sizeof(float) * (size_t)cap);
    int32_t *bi = cap <= STACK ? si : xmalloc(sizeof(int32_t) * (size_t)cap);
    float thr = cand ? 0.0f : topk_floor(a, n_cand, k);
    int n = 0;
    for (int i = 0; i < n_cand; i++) {
        int32_t j = cand ? cand[i] : i;
        float v = a[j];
        if (v > thr) {
            bv[n] = v;
            bi[n] = j;
            if (++n == cap) {
                thr = select_top(bv, bi, n, k);
                n = k;
            }
        }
    }
    if (n > k) {
        select_top(bv, bi, n, k);
        n = k;
    }
    memcpy(val, bv, sizeof(float) * (size_t)n);
    memcpy(idx, bi, sizeof(int32_t) * (size_t)n);
    if (bv != sv) {
        free(bv);
        free(bi);
    }
    return n;
}

int topk_row(const float *a, int m, int k, int32_t *idx, float *val) {
    return topk_core(a, NULL, m, k, idx, val);
}

int topk_row_subset(const float *a, const int32_t *cand, int n_cand, int k, int32_t *idx, float *val) {
    return topk_core(a, cand, n_cand, k, idx, val);
}

// Radix select on the IEEE bits of positive floats (monotone as unsigned
// integers) in two passes of 16 bits: a branch-free histogram of the high
// halves over everything, then a histogram of the low halves over the one
// bucket that holds the answer. Values below the smallest normal float (high
// half 0) count as zero.
enum { HALF = 1 << 16, POS = 1 << 15 }; // high halves of positive floats: [1, POS)

static void histogram(const float *a, int64_t n_rows, int m, int64_t ld, int level, uint32_t high,
                      int64_t *hist) {
    memset(hist, 0, sizeof(int64_t) * HALF);
#pragma omp parallel
    {
        uint32_t *local = xcalloc(HALF, sizeof(uint32_t));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n_rows; r++) {
            const uint32_t *row = (const uint32_t *)(a + r * ld);
            if (level == 0) {
                for (int j = 0; j < m; j++) local[row[j] >> 16]++;
            } else {
                for (int j = 0; j < m; j++)
                    if (row[j] >> 16 == high) local[row[j] & 0xFFFF]++;
            }
        }
#pragma omp critical
        for (int i = 0; i < HALF; i++) hist[i] += local[i];
        free(local);
    }
}

int radix_find_bucket(const int64_t *hist, int lo, int hi, int64_t *kk) {
    int64_t above = 0;
    int b = hi - 1;
    for (; b > lo; b--) {
        if (above + hist[b] >= *kk) break;
        above += hist[b];
    }
    *kk -= above;
    return b;
}

float kth_largest_positive(const float *a, int64_t n_rows, int m, int64_t ld, int64_t kk,
                           void (*sum_i64)(void *ctx, int64_t *buf, int n), void *ctx) {
    int64_t *hist = xmalloc(sizeof(int64_t) * HALF);
    histogram(a, n_rows, m, ld, 0, 0, hist);
    if (sum_i64) sum_i64(ctx, hist + 1, POS - 1);
    int64_t total = 0;
    for (int i = 1; i < POS; i++) total += hist[i];
    if (total <= kk) {
        free(hist);
        return 0.0f;
    }
    uint32_t high = (uint32_t)radix_find_bucket(hist, 1, POS, &kk);
    histogram(a, n_rows, m, ld, 1, high, hist);
    if (sum_i64) sum_i64(ctx, hist, HALF);
    uint32_t low = (uint32_t)radix_find_bucket(hist, 0, HALF, &kk);
    free(hist);
    uint32_t bits = high << 16 | low;
    float v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

static int cmp_desc(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return (a < b) - (a > b);
}

// Copies into scratch the entries of v = pre * inv_T * scale that can be in
// the support (those above max - 1: the threshold is never below it, since the
// largest output is at most 1), sorted in descending order. Returns the count.
static int support_candidates(const float *pre, int m, float s, float *scratch) {
    float mx = -INFINITY;
    for (int j = 0; j < m; j++) mx = fmaxf(mx, pre[j] * s);
    int n = 0;
    for (int j = 0; j < m; j++)
        if (pre[j] * s > mx - 1.0f) scratch[n++] = pre[j] * s;
    qsort(scratch, (size_t)n, sizeof(float), cmp_desc);
    return n;
}

float sparsemax_threshold(const float *pre, int m, float inv_T, float *scratch) {
    int n = support_candidates(pre, m, inv_T, scratch);
    double cum = 0.0, tau = 0.0;
    for (int i = 0; i < n; i++) {
        cum += scratch[i];
        if (1.0 + (i + 1) * (double)scratch[i] > cum) tau = (cum - 1.0) / (i + 1);
    }
    return (float)tau;
}

float entmax15_threshold(const float *pre, int m, float inv_T, float *scratch) {
    int n = support_candidates(pre, m, 0.5f * inv_T, scratch);
    double cum = 0.0, cum2 = 0.0, tau_star = 0.0;
    for (int i = 0; i < n; i++) {
        double x = scratch[i];
        cum += x;
        cum2 += x * x;
        double rho = i + 1, mean = cum / rho;
        double ss = rho * (cum2 / rho - mean * mean);
        double delta = (1.0 - ss) / rho;
        double tau = mean - sqrt(delta > 0.0 ? delta : 0.0);
        if (tau <= x) tau_star = tau;
    }
    return (float)tau_star;
}

// The support of max(v - tau, 0) (square = 0) or max(v - tau, 0)^2 (square = 1)
// with v = pre * s.
static int simplex_fill(const float *pre, int m, float s, float tau, int square, int32_t *idx, float *val) {
    int n = 0;
    for (int j = 0; j < m; j++) {
        float dlt = pre[j] * s - tau;
        if (dlt > 0.0f) {
            if (idx) {
                idx[n] = j;
                val[n] = square ? dlt * dlt : dlt;
            }
            n++;
        }
    }
    return n;
}

int sparsemax_fill(const float *pre, int m, float inv_T, float tau, int32_t *idx, float *val) {
    return simplex_fill(pre, m, inv_T, tau, 0, idx, val);
}

int entmax15_fill(const float *pre, int m, float inv_T, float tau, int32_t *idx, float *val) {
    return simplex_fill(pre, m, 0.5f * inv_T, tau, 1, idx, val);
}

void sparsemax_backward(const float *z, float *g, int n, float inv_T) {
    (void)z;
    double mean = 0.0;
    for (int i = 0; i < n; i++) mean += g[i];
    mean = n && !PLANTED("simplex_mean") ? mean / n : 0.0;
    for (int i = 0; i < n; i++) g[i] = (float)((g[i] - mean) * inv_T);
}

void entmax15_backward(const float *z, float *g, int n, float inv_T) {
    double gs = 0.0, ss = 0.0;
    for (int i = 0; i < n; i++) {
        double s = sqrt((double)z[i]);
        gs += g[i] * s;
        ss += s;
    }
    double q = ss > 0.0 ? gs / ss : 0.0;
    for (int i = 0; i < n; i++) {
        double s = sqrt((double)z[i]);
        g[i] = (float)((g[i] - q) * s * inv_T);
    }
}
