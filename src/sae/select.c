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

// The buffer of TopK's running threshold: entries above thr are appended;
// when 2k are held, a selection keeps the k largest and raises thr to the
// k-th. The selections are O(k) and rare.
typedef struct {
    float *v, thr;
    int32_t *i;
    int n, k;
} TopkBuf;

static inline void topk_push(TopkBuf *b, float v, int32_t j) {
    b->v[b->n] = v;
    b->i[b->n] = j;
    if (++b->n == 2 * b->k) {
        b->thr = select_top(b->v, b->i, b->n, b->k);
        b->n = b->k;
    }
}

enum { STRIDE = 8 }; // a row of m is seen as STRIDE slices of m / STRIDE; a block is a column of them
enum { BISECT = 12 }; // bisection steps toward the k-th largest block maximum

// How many of v[0..n) are >= c.
static int count_at_least(const float *restrict v, int n, float c) {
    int cnt = 0;
#pragma omp simd reduction(+ : cnt)
    for (int i = 0; i < n; i++) cnt += v[i] >= c;
    return cnt;
}

// TopK of a whole row v = a + bias (bias may be NULL) without looking at
// most entries twice. The row's first nb * STRIDE entries (nb = m / STRIDE)
// form nb blocks {i, i + nb, ..., i + (STRIDE - 1) nb}, so that the block
// maxima mx[i] are elementwise maxima of STRIDE contiguous slices (vector
// code, no horizontal step). Let t be at most the k-th largest block
// maximum: the k blocks holding the largest maxima have an entry >= t each,
// so every entry of the top k is >= t, and it lies in a block whose maximum
// is >= t, or in the tail (the last m - nb * STRIDE entries). Only those
// blocks (about k of them) and the tail are walked. mx: scratch of nb
// floats, nb >= k.
static void topk_blocks(const float *restrict a, const float *restrict bias, int m, TopkBuf *b, float *mx) {
    const int nb = m / STRIDE, k = b->k;
    if (bias) {
#pragma omp simd
        for (int i = 0; i < nb; i++) mx[i] = a[i] + bias[i];
        for (int s = 1; s < STRIDE; s++) {
            const float *as = a + (size_t)s * nb, *bs = bias + (size_t)s * nb;
#pragma omp simd
            for (int i = 0; i < nb; i++) mx[i] = as[i] + bs[i] > mx[i] ? as[i] + bs[i] : mx[i];
        }
    } else {
        memcpy(mx, a, sizeof(float) * (size_t)nb);
        for (int s = 1; s < STRIDE; s++) {
            const float *as = a + (size_t)s * nb;
#pragma omp simd
            for (int i = 0; i < nb; i++) mx[i] = as[i] > mx[i] ? as[i] : mx[i];
        }
    }
    // t: a bound at or below the k-th largest maximum (then at least k
    // maxima are >= t), by bisection between the smallest and the largest:
    // each step counts the maxima >= the midpoint in vector code, where an
    // exact selection would be a branch mispredicted per compare
    float lo = INFINITY, hi = -INFINITY;
#pragma omp simd reduction(min : lo) reduction(max : hi)
    for (int i = 0; i < nb; i++) {
        lo = mx[i] < lo ? mx[i] : lo;
        hi = mx[i] > hi ? mx[i] : hi;
    }
    if (count_at_least(mx, nb, hi) >= k) lo = hi;
    for (int it = 0; it < BISECT && lo < hi; it++) {
        const float mid = lo + 0.5f * (hi - lo);
        if (count_at_least(mx, nb, mid) >= k) lo = mid;
        else hi = mid;
    }
    const float t = lo;
    b->thr = t > 0.0f ? nextafterf(t, 0.0f) : 0.0f; // v > thr  <=>  v >= t (only positives count)
    for (int i = 0; i < nb; i++) {
        if (!(mx[i] > b->thr)) continue;
        for (int s = 0; s < STRIDE; s++) {
            const int j = i + s * nb;
            const float v = bias ? a[j] + bias[j] : a[j];
            if (v > b->thr) topk_push(b, v, j);
        }
    }
    for (int j = nb * STRIDE; j < m - PLANTED("topk_tail"); j++) {
        const float v = bias ? a[j] + bias[j] : a[j];
        if (v > b->thr) topk_push(b, v, j);
    }
}

// The k largest positive v_j = a[j] + bias[j] (bias may be NULL) over
// j = cand[i] (or j = i when cand is NULL), into (idx, val); returns how many.
static int topk_core(const float *a, const float *bias, const int32_t *cand, int n_cand, int k, int32_t *idx,
                     float *val) {
    enum { STACK = 2048, BLOCKS = 1024 };
    if (k <= 0) return 0;
    const int cap = 2 * k;
    float sv[STACK];
    int32_t si[STACK];
    TopkBuf b = {.v = cap <= STACK ? sv : xmalloc(sizeof(float) * (size_t)cap),
                 .i = cap <= STACK ? si : xmalloc(sizeof(int32_t) * (size_t)cap),
                 .k = k};
    if (!cand && n_cand / STRIDE >= k) {
        const int nb = n_cand / STRIDE;
        float smx[BLOCKS];
        float *mx = nb <= BLOCKS ? smx : xmalloc(sizeof(float) * (size_t)nb);
        topk_blocks(a, bias, n_cand, &b, mx);
        if (mx != smx) free(mx);
    } else {
        for (int i = 0; i < n_cand; i++) {
            const int32_t j = cand ? cand[i] : i;
            const float v = bias ? a[j] + bias[j] : a[j];
            if (v > b.thr) topk_push(&b, v, j);
        }
    }
    if (b.n > k) {
        select_top(b.v, b.i, b.n, k);
        b.n = k;
    }
    memcpy(val, b.v, sizeof(float) * (size_t)b.n);
    memcpy(idx, b.i, sizeof(int32_t) * (size_t)b.n);
    if (b.v != sv) {
        free(b.v);
        free(b.i);
    }
    return b.n;
}

int topk_row(const float *a, const float *bias, int m, int k, int32_t *idx, float *val) {
    return topk_core(a, bias, NULL, m, k, idx, val);
}

int topk_row_subset(const float *a, const float *bias, const int32_t *cand, int n_cand, int k, int32_t *idx,
                    float *val) {
    return topk_core(a, bias, cand, n_cand, k, idx, val);
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

// kth_largest_positive, where all = 1 returns 0 when at most kk values are
// positive, all = 0 only when fewer are (with exactly kk, the smallest).
static float kth_select(const float *a, int64_t n_rows, int m, int64_t ld, int64_t kk, int all,
                        void (*sum_i64)(void *ctx, int64_t *buf, int n), void *ctx) {
    int64_t *hist = xmalloc(sizeof(int64_t) * HALF);
    histogram(a, n_rows, m, ld, 0, 0, hist);
    if (sum_i64) sum_i64(ctx, hist + 1, POS - 1);
    int64_t total = 0;
    for (int i = 1; i < POS; i++) total += hist[i];
    if (all ? total <= kk : total < kk) {
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

float kth_largest_positive(const float *a, int64_t n_rows, int m, int64_t ld, int64_t kk,
                           void (*sum_i64)(void *ctx, int64_t *buf, int n), void *ctx) {
    return kth_select(a, n_rows, m, ld, kk, 1, sum_i64, ctx);
}

// 1 when the float with these bits counts as positive here (high half in [1, POS))
static inline int positive_bits(uint32_t u) { return (u >> 16) - 1u < (uint32_t)POS - 1u; }

// The positive entries >= t of one row of m (in the blocks whose maximum mx
// reaches t, and in the tail) into (val, idx); returns how many. val NULL:
// only counts them.
static int64_t row_candidates(const float *row, int m, const float *mx, float t, float *val, int32_t *idx) {
    const int nb = m / STRIDE, tail_end = m - PLANTED("batch_kth_tail");
    const uint32_t *bits = (const uint32_t *)row;
    int64_t c = 0;
    for (int i = 0; i < nb; i++) {
        if (!(mx[i] >= t)) continue;
        for (int q = 0; q < STRIDE; q++) {
            const int j = i + q * nb;
            if (positive_bits(bits[j]) && row[j] >= t) {
                if (val) val[c] = row[j], idx[c] = j;
                c++;
            }
        }
    }
    for (int j = nb * STRIDE; j < tail_end; j++)
        if (positive_bits(bits[j]) && row[j] >= t) {
            if (val) val[c] = row[j], idx[c] = j;
            c++;
        }
    return c;
}

enum { CAND_ROW = 4096 }; // the candidates are histogrammed as rows of this many (zero-padded)

// buf holds at least n elements of size el afterwards (grown, never shrunk).
static void *reserve(void *buf, size_t *cap, size_t n, size_t el) {
    if (n <= *cap) return buf;
    free(buf);
    *cap = n;
    return xmalloc(el * n);
}

void batch_kth_scratch_free(BatchKthScratch *s) {
    free(s->mx);
    free(s->cand);
    free(s->cand_idx);
    free(s->cnt);
    memset(s, 0, sizeof(*s));
}

float batch_kth_largest(const float *a, int64_t n_rows, int m, int64_t kk,
                        void (*sum_i64)(void *ctx, int64_t *buf, int n), void *ctx, BatchKthScratch *scratch) {
    const int nb = m / STRIDE;
    BatchKthScratch own = {0}, *sc = scratch ? scratch : &own;
    sc->n_rows = -1; // no candidates kept (yet)
    if (nb < 1) return kth_largest_positive(a, n_rows, m, m, kk, sum_i64, ctx);
    // 1. every row's block maxima (topk_blocks' strided blocks) and the positives
    float *mx = sc->mx = reserve(sc->mx, &sc->cap_mx, (size_t)(n_rows > 0 ? n_rows : 1) * nb, sizeof(float));
    int64_t *cnt = sc->cnt = reserve(sc->cnt, &sc->cap_cnt, (size_t)n_rows + 1, sizeof(int64_t));
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n_rows; r++) {
        const float *row = a + r * m;
        float *mr = mx + r * nb;
        memcpy(mr, row, sizeof(float) * (size_t)nb);
        for (int q = 1; q < STRIDE; q++) {
            const float *sl = row + (size_t)q * nb;
#pragma omp simd
            for (int i = 0; i < nb; i++) mr[i] = sl[i] > mr[i] ? sl[i] : mr[i];
        }
        const uint32_t *bits = (const uint32_t *)row;
        int64_t c = 0;
#pragma omp simd reduction(+ : c)
        for (int j = 0; j < m; j++) c += positive_bits(bits[j]);
        cnt[r] = c;
    }
    int64_t pos = 0;
    for (int64_t r = 0; r < n_rows; r++) pos += cnt[r];
    if (sum_i64) sum_i64(ctx, &pos, 1);
    float v = 0.0f;
    if (pos > kk) {
        // 2. t <= the answer: the kk-th largest block maximum (kk entries of
        //    distinct blocks are >= it), 0 when too few maxima are positive
        const float t = kth_largest_positive(mx, n_rows, nb, nb, kk, sum_i64, ctx);
        // 3. the candidates: the positive entries >= t, found in the blocks
        //    whose maximum is >= t (and the tails); the answer is among them,
        //    and at least kk of them are (pos > kk), so it is their kk-th largest
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < n_rows; r++) cnt[r] = row_candidates(a + r * m, m, mx + r * nb, t, NULL, NULL);
        int64_t n_c = 0;
        for (int64_t r = 0; r < n_rows; r++) {
            const int64_t c = cnt[r];
            cnt[r] = n_c;
            n_c += c;
        }
        cnt[n_rows] = n_c;
        int32_t *cidx = sc->cand_idx =
            reserve(sc->cand_idx, &sc->cap_idx, (size_t)(n_c > 0 ? n_c : 1), sizeof(int32_t));
        const int64_t rows_c = (n_c + CAND_ROW - 1) / CAND_ROW;
        const size_t n_pad = (size_t)(rows_c > 0 ? rows_c : 1) * CAND_ROW;
        float *cand = sc->cand = reserve(sc->cand, &sc->cap_cand, n_pad, sizeof(float));
        memset(cand + n_c, 0, sizeof(float) * (n_pad - (size_t)n_c)); // (zeros count for nothing)
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < n_rows; r++)
            row_candidates(a + r * m, m, mx + r * nb, t, cand + cnt[r], cidx + cnt[r]);
        v = kth_select(cand, rows_c, CAND_ROW, CAND_ROW, kk, 0, sum_i64, ctx);
        sc->n_rows = n_rows;
    }
    batch_kth_scratch_free(&own);
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
