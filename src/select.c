// select.c — TopK, batch k-th largest, sparsemax and entmax-1.5 (select.h).
#include "stsae/select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/common.h"

// Min-heap on val (root = smallest kept), idx carried along.
static void sift_down(float *val, int32_t *idx, int n, int i) {
    float v = val[i];
    int32_t x = idx[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && val[c + 1] < val[c]) c++;
        if (val[c] >= v) break;
        val[i] = val[c];
        idx[i] = idx[c];
        i = c;
    }
    val[i] = v;
    idx[i] = x;
}

static void sift_up(float *val, int32_t *idx, int i) {
    float v = val[i];
    int32_t x = idx[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (val[p] <= v) break;
        val[i] = val[p];
        idx[i] = idx[p];
        i = p;
    }
    val[i] = v;
    idx[i] = x;
}

// Offers (j, v) to a heap of capacity k holding n entries; thr = the value an
// entry must exceed to enter (0 until the heap is full, then its root).
static inline void heap_offer(float *val, int32_t *idx, int *n, int k, float *thr, int32_t j, float v) {
    if (*n < k) {
        val[*n] = v;
        idx[*n] = j;
        sift_up(val, idx, (*n)++);
        if (*n == k) *thr = val[0];
    } else {
        val[0] = v;
        idx[0] = j;
        sift_down(val, idx, k, 0);
        *thr = val[0];
    }
}

int topk_row(const float *a, int m, int k, int32_t *idx, float *val) {
    int n = 0;
    float thr = 0.0f;
    if (k <= 0) return 0;
    for (int j = 0; j < m; j++)
        if (a[j] > thr) heap_offer(val, idx, &n, k, &thr, j, a[j]);
    return n;
}

int topk_row_subset(const float *a, const int32_t *cand, int n_cand, int k, int32_t *idx, float *val) {
    int n = 0;
    float thr = 0.0f;
    if (k <= 0) return 0;
    for (int i = 0; i < n_cand; i++) {
        float v = a[cand[i]];
        if (v > thr) heap_offer(val, idx, &n, k, &thr, cand[i], v);
    }
    return n;
}

// Radix select on the IEEE bits of positive floats (monotone as unsigned
// integers): three passes of 11, 11 and 10 bits, each a histogram of the
// values whose higher bits match the prefix found so far.
float kth_largest_positive(const float *a, int64_t n_rows, int m, int64_t ld, int64_t kk,
                           void (*sum_i64)(void *ctx, int64_t *buf, int n), void *ctx) {
    enum { NB = 2048 };
    static const int shift[3] = {21, 10, 0};
    static const int bits[3] = {11, 11, 10};
    uint32_t prefix = 0, pmask = 0;
    int64_t *hist = xmalloc(sizeof(int64_t) * (NB + 1));
    for (int level = 0; level < 3; level++) {
        int nb = 1 << bits[level];
        memset(hist, 0, sizeof(int64_t) * (NB + 1));
#pragma omp parallel
        {
            int64_t local[NB];
            memset(local, 0, sizeof(local));
#pragma omp for schedule(static)
            for (int64_t r = 0; r < n_rows; r++) {
                const uint32_t *row = (const uint32_t *)(a + r * ld);
                for (int j = 0; j < m; j++) {
                    uint32_t u = row[j];
                    // positive, non-zero floats only: sign bit clear and u != 0
                    if ((int32_t)u > 0 && (u & pmask) == prefix)
                        local[(u >> shift[level]) & (uint32_t)(nb - 1)]++;
                }
            }
#pragma omp critical
            for (int i = 0; i < nb; i++) hist[i] += local[i];
        }
        if (sum_i64) sum_i64(ctx, hist, nb);
        if (level == 0) {
            int64_t total = 0;
            for (int i = 0; i < nb; i++) total += hist[i];
            if (total <= kk) {
                free(hist);
                return 0.0f;
            }
        }
        int64_t above = 0;
        int b = nb - 1;
        for (; b > 0; b--) {
            if (above + hist[b] >= kk) break;
            above += hist[b];
        }
        kk -= above;
        prefix |= (uint32_t)b << shift[level];
        pmask |= (uint32_t)(nb - 1) << shift[level];
    }
    free(hist);
    float v;
    memcpy(&v, &prefix, sizeof(v));
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
