// test_select.c — the selection kernels against brute force:
//   TopK and subset TopK against a full sort;
//   the batch k-th largest (radix select) against a full sort, and BatchTopK's
//   chunk-by-chunk candidates (with the rows they must redo) against the
//   same sort and against every row's entries;
//   sparsemax and entmax-1.5 against their definitions, the threshold found
//   by bisection in long double (not by the sort-based algorithm);
//   their backward passes against central finite differences in double.
// Prints "N passed, M failed"; exits 1 on any failure.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/sae/select.h"

static int passed, failed;

static void expect(int ok, const char *what, int trial) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s (trial %d)\n", what, trial);
    }
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static void fill(float *a, int n, uint64_t *s, double shift) {
    for (int i = 0; i < n; i++) a[i] = (float)(rng_normal(s) + shift);
}

// kept set of topk_row as a mask; brute force: sort, take the k largest
// positives of a (+ bias on odd trials). Every fourth trial is at the
// step's shape (m = 6144, k = 64: the block-maxima floor and the 16-wide
// scan), the others short rows of any length (the scan's tail).
static void test_topk(uint64_t *s, int trial) {
    const int wide = trial % 4 == 1;
    int m = wide ? 6144 - (int)(rng_uniform(s) * 8) : 50 + (int)(rng_uniform(s) * 300);
    int k = wide ? 64 : 1 + (int)(rng_uniform(s) * 40);
    double shift = trial % 3 == 0 ? -2.0 : 0.3; // sometimes fewer than k positives
    float *a = xmalloc(sizeof(float) * m), *v = xmalloc(sizeof(float) * m), *srt = xmalloc(sizeof(float) * m);
    float *bias = trial % 2 ? xmalloc(sizeof(float) * m) : NULL, val[64];
    int32_t idx[64];
    fill(a, m, s, shift);
    if (bias) fill(bias, m, s, 0.0);
    for (int j = 0; j < m; j++) v[j] = bias ? a[j] + bias[j] : a[j];
    memcpy(srt, v, sizeof(float) * m);
    qsort(srt, m, sizeof(float), cmp_desc);
    int n = topk_row(a, bias, m, k, idx, val);
    int want = 0;
    while (want < k && want < m && srt[want] > 0.0f) want++;
    int ok = n == want;
    for (int i = 0; ok && i < n; i++) ok = v[idx[i]] == val[i] && val[i] >= srt[want - 1];
    expect(ok, "topk_row", trial);
    // subset: every third index
    int32_t *cand = xmalloc(sizeof(int32_t) * (size_t)m);
    int nc = 0;
    for (int j = 0; j < m; j += 3) cand[nc++] = j;
    float *sub = xmalloc(sizeof(float) * (size_t)m);
    for (int i = 0; i < nc; i++) sub[i] = v[cand[i]];
    qsort(sub, nc, sizeof(float), cmp_desc);
    n = topk_row_subset(a, bias, cand, nc, k, idx, val);
    want = 0;
    while (want < k && want < nc && sub[want] > 0.0f) want++;
    ok = n == want;
    for (int i = 0; ok && i < n; i++) ok = idx[i] % 3 == 0 && val[i] >= sub[want - 1] && v[idx[i]] == val[i];
    expect(ok, "topk_row_subset", trial);
    free(a);
    free(v);
    free(bias);
    free(srt);
    free(cand);
    free(sub);
}

// BatchTopK's candidates (select.h), rows added in chunks of 1 to 8, each
// with a bound at a random cap (small caps make rows that must be redone;
// caps above a row's block count keep every positive entry), then the
// protocol of select.h: the threshold, the rows whose bound is above it
// computed "again" (copied from a) and redone, the threshold again. It must
// be the sorted answer, and each row's candidates >= it exactly the row's
// positive entries >= it.
static void test_batch_cands(const float *a, int rows, int m, int64_t kk, float want, uint64_t *s, int trial) {
    BatchCands c = {0};
    batch_cands_reset(&c);
    const int cap = 1 + (int)(rng_uniform(s) * (m / 8 + 2));
    for (int r0 = 0; r0 < rows;) {
        int nc = 1 + (int)(rng_uniform(s) * 8);
        if (nc > rows - r0) nc = rows - r0;
        batch_cands_add(&c, a + (size_t)r0 * m, nc, m, cap);
        r0 += nc;
    }
    float v = batch_cands_kth(&c, kk, NULL, NULL);
    int64_t *redo = xmalloc(sizeof(int64_t) * (size_t)rows);
    float *again = xmalloc(sizeof(float) * (size_t)rows * m);
    int nr = 0;
    for (int r = 0; r < rows; r++)
        if (c.bound[r] > v) {
            memcpy(again + (size_t)nr * m, a + (size_t)r * m, sizeof(float) * (size_t)m);
            redo[nr++] = r;
        }
    // every third trial the rows come back halved, as if their product
    // rounded differently (far more so): fewer entries than they had, so
    // the redo pads them with zeros; then only consistency can be asked of
    // it: v is the kk-th largest positive candidate, and each positive
    // candidate is its row's entry
    const int shrink = trial % 3 == 2;
    if (shrink)
        for (size_t i = 0; i < (size_t)nr * m; i++) again[i] *= 0.5f;
    if (nr) {
        batch_cands_redo(&c, redo, nr, again, m, v);
        v = batch_cands_kth(&c, kk, NULL, NULL);
    }
    if (shrink) {
        int ok = 1, np = 0;
        float *pos = xmalloc(sizeof(float) * (size_t)(c.cnt[rows] + 1));
        for (int r = 0, q = 0; r < rows; r++) {
            const int redone = q < nr && redo[q] == r;
            const float *row = redone ? again + (size_t)q++ * m : a + (size_t)r * m;
            for (int64_t e = c.cnt[r]; e < c.cnt[r + 1]; e++)
                if (c.cand[e] > 0.0f) {
                    ok = ok && row[c.cand_idx[e]] == c.cand[e];
                    pos[np++] = c.cand[e];
                }
        }
        qsort(pos, (size_t)np, sizeof(float), cmp_desc);
        expect(ok && v == (np > kk ? pos[kk - 1] : 0.0f), "batch_cands_redo of rows that shrank", trial);
        free(pos);
        free(redo);
        free(again);
        batch_cands_free(&c);
        return;
    }
    expect(v == want, "batch_cands_kth", trial);
    const uint32_t tiny_bits = 1u << 16; // what counts as positive: >= 2^-133 (select.h)
    float tiny;
    memcpy(&tiny, &tiny_bits, sizeof tiny);
    int ok = 1;
    for (int r = 0; ok && r < rows; r++) {
        const float *row = a + (size_t)r * m;
        int brute = 0, kept = 0;
        for (int j = 0; j < m; j++) brute += row[j] >= tiny && row[j] >= v;
        for (int64_t q = c.cnt[r]; q < c.cnt[r + 1]; q++)
            if (c.cand[q] >= v) {
                kept++;
                ok = ok && row[c.cand_idx[q]] == c.cand[q];
            }
        ok = ok && kept == brute;
    }
    expect(ok, "batch_cands kept set", trial);
    free(redo);
    free(again);
    batch_cands_free(&c);
}

static void test_kth(uint64_t *s, int trial) {
    int rows = 1 + (int)(rng_uniform(s) * 30), m = 20 + (int)(rng_uniform(s) * 200);
    int64_t n = (int64_t)rows * m;
    float *a = xmalloc(sizeof(float) * n), *srt = xmalloc(sizeof(float) * n);
    fill(a, (int)n, s, trial % 4 == 0 ? -2.5 : 0.0);
    if (trial % 5 == 1) for (int64_t i = 0; i < n; i++) a[i] *= 1e-30f; // tiny values: every bit level
    int np = 0;
    for (int64_t i = 0; i < n; i++)
        if (a[i] > 0.0f) srt[np++] = a[i];
    qsort(srt, np, sizeof(float), cmp_desc);
    int64_t kk = 1 + (int64_t)(rng_uniform(s) * (double)n * 0.6);
    float v = kth_largest_positive(a, rows, m, m, kk, NULL, NULL);
    float want = np > kk ? srt[kk - 1] : 0.0f; // at most kk positives: 0, keep them all
    expect(v == want, "kth_largest_positive", trial);
    test_batch_cands(a, rows, m, kk, want, s, trial);
    free(a);
    free(srt);
}

// The definition: z_i = f(v_i - t) with f(u) = max(u,0) (sparsemax) or
// max(u,0)^2 (entmax-1.5 on v/2), t such that sum z = 1, found by bisection.
static void simplex_ref(const long double *v, int m, int square, long double *z) {
    long double lo = -1e6L, hi = 1e6L;
    for (int it = 0; it < 400; it++) {
        long double t = 0.5L * (lo + hi), sum = 0.0L;
        for (int i = 0; i < m; i++) {
            long double u = v[i] - t;
            if (u > 0) sum += square ? u * u : u;
        }
        if (sum > 1.0L) lo = t; else hi = t;
    }
    long double t = 0.5L * (lo + hi);
    for (int i = 0; i < m; i++) {
        long double u = v[i] - t;
        z[i] = u > 0 ? (square ? u * u : u) : 0.0L;
    }
}

// z of the simplex map on the full row (dense), double
static void simplex_dense(const float *pre, int m, float inv_T, int entmax, double *z) {
    float *scr = xmalloc(sizeof(float) * m);
    int32_t *idx = xmalloc(sizeof(int32_t) * m);
    float *val = xmalloc(sizeof(float) * m);
    float t = entmax ? entmax15_threshold(pre, m, inv_T, scr) : sparsemax_threshold(pre, m, inv_T, scr);
    int n = entmax ? entmax15_fill(pre, m, inv_T, t, idx, val) : sparsemax_fill(pre, m, inv_T, t, idx, val);
    memset(z, 0, sizeof(double) * m);
    for (int i = 0; i < n; i++) z[idx[i]] = val[i];
    free(scr);
    free(idx);
    free(val);
}

static void test_simplex(uint64_t *s, int trial, int entmax) {
    int m = 10 + (int)(rng_uniform(s) * 200);
    float inv_T = (float)(0.3 + 3.0 * rng_uniform(s));
    long double sc = entmax ? 0.5L * inv_T : (long double)inv_T;
    float *pre = xmalloc(sizeof(float) * m);
    fill(pre, m, s, 0.0);
    for (int i = 0; i < m; i++) pre[i] *= 2.0f;
    double *z = xmalloc(sizeof(double) * m);
    long double *v = xmalloc(sizeof(long double) * m), *zr = xmalloc(sizeof(long double) * m);
    long double *zp = xmalloc(sizeof(long double) * m), *zm = xmalloc(sizeof(long double) * m);
    simplex_dense(pre, m, inv_T, entmax, z);
    for (int i = 0; i < m; i++) v[i] = pre[i] * sc;
    simplex_ref(v, m, entmax, zr);
    double err = 0.0, sum = 0.0;
    for (int i = 0; i < m; i++) {
        err = fmax(err, fabs(z[i] - (double)zr[i]));
        sum += z[i];
    }
    expect(err < 2e-5 && fabs(sum - 1.0) < 1e-4, entmax ? "entmax15 vs definition" : "sparsemax vs definition", trial);

    // backward: <dL/dpre, h> against central differences of <g, z(pre + eps h)>
    // taken on the definition in long double
    float *g = xmalloc(sizeof(float) * m), *h = xmalloc(sizeof(float) * m), *gs = xmalloc(sizeof(float) * m);
    float *zs = xmalloc(sizeof(float) * m);
    for (int i = 0; i < m; i++) {
        g[i] = (float)rng_normal(s);
        h[i] = (float)rng_normal(s);
    }
    int n = 0;
    for (int i = 0; i < m; i++)
        if (z[i] > 0.0) {
            gs[n] = g[i];
            zs[n++] = (float)z[i];
        }
    if (entmax) entmax15_backward(zs, gs, n, inv_T);
    else sparsemax_backward(zs, gs, n, inv_T);
    double analytic = 0.0;
    for (int i = 0, q = 0; i < m; i++)
        if (z[i] > 0.0) analytic += (double)gs[q++] * h[i];
    const long double eps = 1e-7L;
    for (int i = 0; i < m; i++) v[i] = (pre[i] + eps * h[i]) * sc;
    simplex_ref(v, m, entmax, zp);
    for (int i = 0; i < m; i++) v[i] = (pre[i] - eps * h[i]) * sc;
    simplex_ref(v, m, entmax, zm);
    long double fd = 0.0L;
    for (int i = 0; i < m; i++) fd += g[i] * (zp[i] - zm[i]) / (2.0L * eps);
    expect(fabs((double)fd - analytic) <= 1e-4 * (1.0 + fabs((double)fd)),
           entmax ? "entmax15 backward vs finite differences" : "sparsemax backward vs finite differences", trial);
    free(pre); free(z); free(v); free(zr); free(zp); free(zm); free(g); free(h); free(gs); free(zs);
}

int main(void) {
    uint64_t s = 12345;
    for (int t = 0; t < 200; t++) test_topk(&s, t);
    for (int t = 0; t < 100; t++) test_kth(&s, t);
    for (int t = 0; t < 100; t++) {
        test_simplex(&s, t, 0);
        test_simplex(&s, t, 1);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
