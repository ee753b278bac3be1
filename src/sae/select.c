// select.c — TopK, batch k-th largest, BatchTopK's candidates, sparsemax and
// entmax-1.5 (select.h).
#include "stsae/sae/select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

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

// The strided block maxima of a row v = a + bias (bias may be NULL): with
// nb = m / STRIDE, block i is {i, i + nb, ..., i + (STRIDE - 1) nb}, so that
// mx[i] is an elementwise maximum of STRIDE contiguous slices (vector code,
// no horizontal step). The last m - nb * STRIDE entries (the tail) are in no
// block.
static void block_maxima(const float *restrict a, const float *restrict bias, int m, float *restrict mx) {
    const int nb = m / STRIDE;
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
}

// A bound t at or below the k-th largest of mx[0..nb) (nb >= k >= 1: then
// at least k of them are >= t), by bisection between the smallest and the
// largest: each step counts the maxima >= the midpoint in vector code, where
// an exact selection would be a branch mispredicted per compare.
static float block_bound(const float *mx, int nb, int k) {
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
    return lo;
}

// TopK of a whole row v = a + bias (bias may be NULL) without looking at
// most entries twice. Let t be at most the k-th largest block maximum
// (block_bound): the k blocks holding the largest maxima have an entry >= t
// each, so every entry of the top k is >= t, and it lies in a block whose
// maximum is >= t, or in the tail. Only those blocks (about k of them) and
// the tail are walked. mx: scratch of nb = m / STRIDE floats, nb >= k.
static void topk_blocks(const float *restrict a, const float *restrict bias, int m, TopkBuf *b, float *mx) {
    const int nb = m / STRIDE;
    block_maxima(a, bias, m, mx);
    const float t = block_bound(mx, nb, b->k);
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

// The smallest value that counts as positive here (bits 0x00010000, high
// half 1: the radix select's first bucket of positives).
static float smallest_positive(void) {
    const uint32_t bits = 1u << 16;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

// The entries >= lo (lo >= smallest_positive()) of a whole row of m, in
// column order, into (val, idx); returns how many. val NULL: only counts
// them. AVX-512 compares 16 at a time and packs the hits with a compress
// (into a register, then a masked store: the memory form is slow on Zen 4).
static int64_t row_at_least(const float *restrict row, int m, float lo, float *restrict val,
                            int32_t *restrict idx) {
    const int end = m - (PLANTED("batch_cand_rest") ? m % 16 : 0);
    int64_t c = 0;
    if (!val) {
#pragma omp simd reduction(+ : c)
        for (int j = 0; j < end; j++) c += row[j] >= lo;
        return c;
    }
    int j = 0;
#ifdef __AVX512F__
    const __m512 vlo = _mm512_set1_ps(lo);
    const __m512i sixteen = _mm512_set1_epi32(16);
    __m512i col = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; j + 16 <= end; j += 16) {
        const __m512 v = _mm512_loadu_ps(row + j);
        const __mmask16 hit = _mm512_cmp_ps_mask(v, vlo, _CMP_GE_OQ);
        if (hit) {
            const __mmask16 first = (__mmask16)((1u << __builtin_popcount(hit)) - 1u);
            _mm512_mask_storeu_ps(val + c, first, _mm512_maskz_compress_ps(hit, v));
            _mm512_mask_storeu_epi32(idx + c, first, _mm512_maskz_compress_epi32(hit, col));
            c += __builtin_popcount(hit);
        }
        col = _mm512_add_epi32(col, sixteen);
    }
#endif
    for (; j < end; j++)
        if (row[j] >= lo) {
            val[c] = row[j];
            idx[c++] = j;
        }
    return c;
}

// buf holds at least n elements of size el afterwards (grown by half again,
// never shrunk; its first n_keep elements kept).
static void *reserve(void *buf, size_t *cap, size_t n, size_t el, size_t n_keep) {
    if (n <= *cap) return buf;
    *cap = n + n / 2;
    void *grown = xmalloc(el * *cap);
    if (n_keep) memcpy(grown, buf, el * n_keep);
    free(buf);
    return grown;
}

void batch_cands_free(BatchCands *c) {
    free(c->cnt);
    free(c->bound);
    free(c->cand);
    free(c->cand_idx);
    memset(c, 0, sizeof(*c));
}

void batch_cands_reset(BatchCands *c) {
    c->n_rows = 0;
    c->cnt = reserve(c->cnt, &c->cap_cnt, 1, sizeof(int64_t), 0);
    c->cnt[0] = 0;
}

// Room for n_rows + n rows and for n_cand candidates in all.
static void grow(BatchCands *c, int64_t n, int64_t n_cand) {
    const size_t rows = (size_t)(c->n_rows + n), had = (size_t)c->cnt[c->n_rows];
    c->cnt = reserve(c->cnt, &c->cap_cnt, rows + 1, sizeof(int64_t), (size_t)c->n_rows + 1);
    c->bound = reserve(c->bound, &c->cap_bound, rows, sizeof(float), (size_t)c->n_rows);
    c->cand = reserve(c->cand, &c->cap_cand, (size_t)n_cand, sizeof(float), had);
    c->cand_idx = reserve(c->cand_idx, &c->cap_idx, (size_t)n_cand, sizeof(int32_t), had);
}

void batch_cands_add(BatchCands *c, const float *pre, int n, int m, int cap) {
    if (n <= 0) return;
    const int nb = m / STRIDE;
    const float tiny = smallest_positive();
    grow(c, n, 0);
    const int64_t r0 = c->n_rows;
    int64_t *end = c->cnt + r0 + 1; // end[r]: one past row r0 + r's candidates
    // per row: its bound t_r (0 when the row has fewer than cap blocks:
    // every positive entry) and how many entries reach it
#pragma omp parallel
    {
        float *mx = xmalloc(sizeof(float) * (size_t)(nb > 0 ? nb : 1));
#pragma omp for schedule(static)
        for (int r = 0; r < n; r++) {
            const float *row = pre + (size_t)r * m;
            float t = 0.0f;
            if (cap >= 1 && nb >= cap) {
                block_maxima(row, NULL, m, mx);
                t = block_bound(mx, nb, cap);
            }
            c->bound[r0 + r] = t > 0.0f ? t : 0.0f;
            end[r] = row_at_least(row, m, t > tiny ? t : tiny, NULL, NULL);
        }
        free(mx);
    }
    for (int r = 0; r < n; r++) end[r] += end[r - 1];
    grow(c, n, end[n - 1]);
    end = c->cnt + r0 + 1;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        const float t = c->bound[r0 + r];
        row_at_least(pre + (size_t)r * m, m, t > tiny ? t : tiny, c->cand + end[r - 1], c->cand_idx + end[r - 1]);
    }
    c->n_rows = r0 + n;
}

enum { CAND_ROW = 4096 }; // the candidates are histogrammed as rows of this many (zero-padded)

float batch_cands_kth(BatchCands *c, int64_t kk, void (*sum_i64)(void *ctx, int64_t *buf, int n), void *ctx) {
    const size_t n_c = (size_t)c->cnt[c->n_rows];
    const size_t rows_c = (n_c + CAND_ROW - 1) / CAND_ROW, n_pad = (rows_c > 0 ? rows_c : 1) * CAND_ROW;
    c->cand = reserve(c->cand, &c->cap_cand, n_pad, sizeof(float), n_c);
    memset(c->cand + n_c, 0, sizeof(float) * (n_pad - n_c)); // (zeros count for nothing)
    return kth_largest_positive(c->cand, (int64_t)rows_c, CAND_ROW, CAND_ROW, kk, sum_i64, ctx);
}

void batch_cands_redo(BatchCands *c, const int64_t *rows, int nr, const float *pre, int m, float v) {
    if (nr <= 0 || PLANTED("batch_cand_redo")) return;
    const float tiny = smallest_positive(), lo = v > tiny ? v : tiny;
    const int64_t n_rows = c->n_rows, old_total = c->cnt[n_rows];
    // each row grows: its old candidates, those >= t_r > v, are among the
    // new. (Should a product computed again round differently and give a
    // row fewer, it keeps its old length, the rest zeros: they count for
    // nothing, in the threshold or among the kept.)
    int64_t *add = xmalloc(sizeof(int64_t) * (size_t)nr), shift = 0;
    for (int q = 0; q < nr; q++) {
        add[q] = row_at_least(pre + (size_t)q * m, m, lo, NULL, NULL) - (c->cnt[rows[q] + 1] - c->cnt[rows[q]]);
        if (add[q] < 0) add[q] = 0;
        shift += add[q];
    }
    c->cand = reserve(c->cand, &c->cap_cand, (size_t)(old_total + shift), sizeof(float), (size_t)old_total);
    c->cand_idx = reserve(c->cand_idx, &c->cap_idx, (size_t)(old_total + shift), sizeof(int32_t), (size_t)old_total);
    c->cnt[n_rows] = old_total + shift;
    // in place, from the last row down to the first redone one: each row
    // moves up by what the redone rows before it (and itself) grew, so a
    // row's new place never covers the rows below it that are yet to move
    int64_t next_beg = old_total; // old start of row r + 1
    for (int64_t r = n_rows - 1, q = nr - 1; q >= 0; r--) {
        const int64_t beg = c->cnt[r], len = next_beg - beg;
        next_beg = beg;
        if (rows[q] == r) {
            shift -= add[q];
            const int64_t got = row_at_least(pre + (size_t)q * m, m, lo, c->cand + beg + shift, c->cand_idx + beg + shift);
            for (int64_t e = beg + shift + got; e < beg + shift + len + add[q]; e++) {
                c->cand[e] = 0.0f;
                c->cand_idx[e] = 0;
            }
            c->bound[r] = v;
            q--;
        } else if (shift) {
            memmove(c->cand + beg + shift, c->cand + beg, sizeof(float) * (size_t)len);
            memmove(c->cand_idx + beg + shift, c->cand_idx + beg, sizeof(int32_t) * (size_t)len);
        }
        c->cnt[r] = beg + shift;
    }
    free(add);
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
