// metrics.c — streamed label-free metrics of SPEC §2 (metrics.h).
#include "stsae/metrics/metrics.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/sae/select.h"

void lag1_init(Lag1 *l, int m) {
    memset(l, 0, sizeof(*l));
    l->m = m;
    l->s1 = xcalloc((size_t)m, sizeof(double));
    l->s2 = xcalloc((size_t)m, sizeof(double));
    l->p = xcalloc((size_t)m, sizeof(double));
    l->a = xcalloc((size_t)m, sizeof(double));
    l->b = xcalloc((size_t)m, sizeof(double));
    l->nz = xcalloc((size_t)m, sizeof(int64_t));
}

void lag1_free(Lag1 *l) {
    free(l->s1), free(l->s2), free(l->p), free(l->a), free(l->b), free(l->nz);
    memset(l, 0, sizeof(*l));
}

void lag1_add_sparse(Lag1 *l, const SparseCodes *z, int T, int N) {
    const int m = l->m;
    float *row = xcalloc((size_t)m, sizeof(float)); // z at (t, p), scattered
    for (int r = 0; r < T * N; r++)
        for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) {
            const int j = z->idx[e];
            const double v = z->val[e];
            l->s1[j] += v;
            l->s2[j] += v * v;
            l->nz[j] += v != 0.0;
            const int t = r / N;
            if (t < T - 1) l->a[j] += v;
            if (t > 0) l->b[j] += v;
        }
    // pairs (t, p), (t+1, p): products over the shared support
    for (int t = 0; t + 1 < T; t++)
        for (int q = 0; q < N; q++) {
            const int r0 = t * N + q, r1 = r0 + N;
            for (int64_t e = z->row_ptr[r0]; e < z->row_ptr[r0 + 1]; e++) row[z->idx[e]] = z->val[e];
            for (int64_t e = z->row_ptr[r1]; e < z->row_ptr[r1 + 1]; e++)
                l->p[z->idx[e]] += (double)row[z->idx[e]] * z->val[e];
            for (int64_t e = z->row_ptr[r0]; e < z->row_ptr[r0 + 1]; e++) row[z->idx[e]] = 0.0f;
        }
    l->n_tok += (double)T * N;
    l->n_pairs += (double)(T - 1) * N;
    free(row);
}

void lag1_add_dense(Lag1 *l, const float *x, int T, int N) {
    const int m = l->m;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < m; j++) {
        double s1 = 0, s2 = 0, p = 0, a = 0, b = 0;
        int64_t nz = 0;
        for (int r = 0; r < T * N; r++) {
            const double v = x[(size_t)r * m + j];
            s1 += v;
            s2 += v * v;
            nz += v != 0.0;
            if (r < (T - 1) * N) {
                a += v;
                p += v * x[(size_t)(r + N) * m + j];
            }
            if (r >= N) b += v;
        }
        l->s1[j] += s1, l->s2[j] += s2, l->p[j] += p, l->a[j] += a, l->b[j] += b, l->nz[j] += nz;
    }
    l->n_tok += (double)T * N;
    l->n_pairs += (double)(T - 1) * N;
}

double lag1_finish(const Lag1 *l, double *rho, double *frac_low) {
    double sum = 0.0;
    int live = 0, low = 0;
    for (int j = 0; j < l->m; j++) {
        const double mu = l->s1[j] / l->n_tok, var = l->s2[j] / l->n_tok - mu * mu;
        // zero variance: never active, or the same value everywhere
        if (!(var > 1e-12 * (l->s2[j] / l->n_tok)) || l->n_pairs <= 0) {
            rho[j] = NAN;
            continue;
        }
        const double cov = (l->p[j] - mu * (l->a[j] + l->b[j]) + l->n_pairs * mu * mu) / l->n_pairs;
        rho[j] = cov / var;
        sum += rho[j];
        live++;
        low += rho[j] < 0.3;
    }
    *frac_low = live ? (double)low / live : NAN;
    return live ? sum / live : NAN;
}

void clip_values_sparse(const SparseCodes *z, int m, int use_max, float *out) {
    double *acc = xcalloc((size_t)m, sizeof(double));
    for (int64_t e = 0; e < z->row_ptr[z->n_rows]; e++) {
        const int j = z->idx[e];
        if (use_max) acc[j] = fmax(acc[j], z->val[e]);
        else acc[j] += z->val[e];
    }
    for (int j = 0; j < m; j++) out[j] = (float)(use_max ? acc[j] : acc[j] / (z->n_rows ? z->n_rows : 1));
    free(acc);
}

double monosemanticity(const float *V, int clips, int m, const float *E, int e, double *ms) {
    // W [clips, m]: min-max normalized clip values; S = W^T E [m, e]
    float *W = xmalloc(sizeof(float) * (size_t)clips * m), *S = xmalloc(sizeof(float) * (size_t)m * e);
    double *sw = xcalloc((size_t)m, sizeof(double)), *sw2 = xcalloc((size_t)m, sizeof(double));
    uint8_t *live = xcalloc((size_t)m, 1);
#pragma omp parallel for schedule(static)
    for (int j = 0; j < m; j++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int c = 0; c < clips; c++) {
            const float v = V[(size_t)c * m + j];
            lo = fminf(lo, v);
            hi = fmaxf(hi, v);
        }
        live[j] = hi > lo;
        const float inv = live[j] ? 1.0f / (hi - lo) : 0.0f;
        double a = 0, b = 0;
        for (int c = 0; c < clips; c++) {
            const float w = live[j] ? (V[(size_t)c * m + j] - lo) * inv : 0.0f;
            W[(size_t)c * m + j] = w;
            a += w;
            b += (double)w * w;
        }
        sw[j] = a, sw2[j] = b;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, e, clips, 1.0f, W, m, E, e, 0.0f, S, e);
    double sum = 0.0;
    int n = 0;
    for (int j = 0; j < m; j++) {
        const double den = sw[j] * sw[j] - sw2[j];
        if (!live[j] || !(den > 0.0)) {
            ms[j] = NAN;
            continue;
        }
        double num = 0.0;
        for (int i = 0; i < e; i++) num += (double)S[(size_t)j * e + i] * S[(size_t)j * e + i];
        ms[j] = (num - sw2[j]) / den;
        sum += ms[j];
        n++;
    }
    free(W), free(S), free(sw), free(sw2), free(live);
    return n ? sum / n : NAN;
}

void top_clips(const float *V, int clips, int m, int32_t *top) {
#pragma omp parallel for schedule(static)
    for (int j = 0; j < m; j++) {
        int32_t *t = top + (size_t)j * 8;
        int n = 0;
        for (int c = 0; c < clips; c++) {
            const float v = V[(size_t)c * m + j];
            // insertion into the sorted top list (ties: the earlier clip stays first)
            int pos = n < 8 ? n : 8;
            while (pos > 0 && V[(size_t)t[pos - 1] * m + j] < v) pos--;
            if (pos >= 8) continue;
            for (int q = (n < 8 ? n : 7); q > pos; q--) t[q] = t[q - 1];
            t[pos] = c;
            if (n < 8) n++;
        }
        for (; n < 8; n++) t[n] = -1;
    }
}

void action_purity(const float *V, int clips, int m, const int32_t *top, const int32_t *labels, int n_top,
                   double *mean, double *max) {
    double *avg = xcalloc((size_t)m, sizeof(double));
    for (int c = 0; c < clips; c++)
        for (int j = 0; j < m; j++) avg[j] += V[(size_t)c * m + j];
    int32_t *order = xmalloc(sizeof(int32_t) * (size_t)m);
    for (int j = 0; j < m; j++) order[j] = j;
    // the n_top latents with the largest mean clip value (partial selection sort; ties: lower index)
    if (n_top > m) n_top = m;
    for (int i = 0; i < n_top; i++) {
        int best = i;
        for (int q = i + 1; q < m; q++)
            if (avg[order[q]] > avg[order[best]]) best = q;
        int32_t t = order[i];
        order[i] = order[best];
        order[best] = t;
    }
    double s = 0.0, mx = 0.0;
    for (int i = 0; i < n_top; i++) {
        const int32_t *t = top + (size_t)order[i] * 8;
        int best = 0;
        for (int a = 0; a < 8; a++) {
            if (t[a] < 0) continue;
            int cnt = 0;
            for (int b = 0; b < 8; b++) cnt += t[b] >= 0 && labels[t[b]] == labels[t[a]];
            if (cnt > best) best = cnt;
        }
        s += best / 8.0;
        mx = fmax(mx, best / 8.0);
    }
    *mean = n_top ? s / n_top : NAN;
    *max = n_top ? mx : NAN;
    free(avg), free(order);
}

double jaccard_uniqueness(const int32_t *top, int m, const uint8_t *live) {
    // inverted index clip -> latents whose top-8 holds it; then per latent a,
    // the overlap with every later latent through the clips of a
    int clips = 0;
    for (size_t i = 0; i < (size_t)m * 8; i++)
        if (top[i] + 1 > clips) clips = top[i] + 1;
    int64_t *ptr = xcalloc((size_t)clips + 1, sizeof(int64_t));
    int64_t n_live = 0;
    for (int j = 0; j < m; j++) {
        if (!live[j]) continue;
        n_live++;
        for (int q = 0; q < 8; q++)
            if (top[(size_t)j * 8 + q] >= 0) ptr[top[(size_t)j * 8 + q] + 1]++;
    }
    for (int c = 0; c < clips; c++) ptr[c + 1] += ptr[c];
    int32_t *lat = xmalloc(sizeof(int32_t) * (size_t)(ptr[clips] + 1));
    int64_t *fill = xmalloc(sizeof(int64_t) * (size_t)(clips + 1));
    memcpy(fill, ptr, sizeof(int64_t) * (size_t)(clips + 1));
    for (int j = 0; j < m; j++)
        if (live[j])
            for (int q = 0; q < 8; q++)
                if (top[(size_t)j * 8 + q] >= 0) lat[fill[top[(size_t)j * 8 + q]]++] = j;
    double sum = 0.0;
#pragma omp parallel reduction(+ : sum)
    {
        int *cnt = xcalloc((size_t)m, sizeof(int));
        int32_t *touched = xmalloc(sizeof(int32_t) * (size_t)m);
#pragma omp for schedule(dynamic, 64)
        for (int a = 0; a < m; a++) {
            if (!live[a]) continue;
            int nt = 0, size_a = 0;
            for (int q = 0; q < 8; q++) {
                const int c = top[(size_t)a * 8 + q];
                if (c < 0) continue;
                size_a++;
                for (int64_t i = ptr[c]; i < ptr[c + 1]; i++) {
                    const int b = lat[i];
                    if (b <= a) continue;
                    if (!cnt[b]++) touched[nt++] = b;
                }
            }
            for (int i = 0; i < nt; i++) {
                const int b = touched[i];
                int size_b = 0;
                for (int q = 0; q < 8; q++) size_b += top[(size_t)b * 8 + q] >= 0;
                sum += (double)cnt[b] / (size_a + size_b - cnt[b]);
                cnt[b] = 0;
            }
        }
        free(cnt), free(touched);
    }
    free(ptr), free(lat), free(fill);
    const double pairs = (double)n_live * (n_live - 1) / 2.0;
    return pairs > 0 ? sum / pairs : NAN;
}

void smooth_ema(const SparseCodes *z, int T, int N, int m, float a, float *scratch, SparseCodes *out) {
    // per position: the state's support (in first-seen order) and values in scratch
    int32_t *sup = xmalloc(sizeof(int32_t) * (size_t)m);
    uint8_t *mark = xcalloc((size_t)m, 1);
    int64_t nnz = 0;
    out->n_rows = T * N;
    out->row_ptr = xrealloc(out->row_ptr, sizeof(int64_t) * ((size_t)T * N + 1));
    // rows are written position by position: count first, then fill
    int64_t *len = xcalloc((size_t)T * N, sizeof(int64_t));
    for (int pass = 0; pass < 2; pass++) {
        for (int q = 0; q < N; q++) {
            int ns = 0;
            for (int t = 0; t < T; t++) {
                const int r = t * N + q;
                for (int i = 0; i < ns; i++) scratch[sup[i]] *= a;
                const float w = t == 0 ? 1.0f : 1.0f - a;
                for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) {
                    const int j = z->idx[e];
                    if (!mark[j]) {
                        mark[j] = 1;
                        sup[ns++] = j;
                        scratch[j] = 0.0f;
                    }
                    scratch[j] += w * z->val[e];
                }
                if (pass == 0) {
                    len[r] = ns;
                } else {
                    int64_t o = out->row_ptr[r];
                    for (int i = 0; i < ns; i++, o++) {
                        out->idx[o] = sup[i];
                        out->val[o] = scratch[sup[i]];
                    }
                }
            }
            for (int i = 0; i < ns; i++) scratch[sup[i]] = 0.0f, mark[sup[i]] = 0;
        }
        if (pass == 0) {
            out->row_ptr[0] = 0;
            for (int r = 0; r < T * N; r++) out->row_ptr[r + 1] = out->row_ptr[r] + len[r];
            nnz = out->row_ptr[T * N];
            codes_reserve(out, nnz);
            out->nnz = nnz;
        }
    }
    free(sup), free(len), free(mark);
}

void smooth_union_topk(const SaeConfig *cfg, const SaeTensors *p, const float *x, const SparseCodes *z, int T, int N,
                       SparseCodes *out) {
    const int d = cfg->d, k = cfg->k, n = T * N;
    out->n_rows = n;
    out->row_ptr = xrealloc(out->row_ptr, sizeof(int64_t) * ((size_t)n + 1));
    out->row_ptr[0] = 0;
    codes_reserve(out, (int64_t)n * k);
    int32_t *cand = xmalloc(sizeof(int32_t) * (size_t)cfg->m);
    uint8_t *mark = xcalloc((size_t)cfg->m, 1);
    float *a = xmalloc(sizeof(float) * (size_t)cfg->m), *xc = xmalloc(sizeof(float) * (size_t)d);
    int64_t o = 0;
    for (int r = 0; r < n; r++) {
        if (r < N) { // step 0: as is
            codes_reserve(out, o + (z->row_ptr[r + 1] - z->row_ptr[r]) + (int64_t)(n - r) * k);
            for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++, o++) out->idx[o] = z->idx[e], out->val[o] = z->val[e];
            out->row_ptr[r + 1] = o;
            continue;
        }
        // the union of the supports at t-1 and t (the two rows are r-N and r)
        int nc = 0;
        const int64_t spans[2][2] = {{z->row_ptr[r - N], z->row_ptr[r - N + 1]}, {z->row_ptr[r], z->row_ptr[r + 1]}};
        for (int s = 0; s < 2; s++)
            for (int64_t e = spans[s][0]; e < spans[s][1]; e++)
                if (!mark[z->idx[e]]) mark[z->idx[e]] = 1, cand[nc++] = z->idx[e];
        for (int i = 0; i < nc; i++) mark[cand[i]] = 0;
        // a_j = max(a_t-1,j, a_t,j) for the candidates (pre-activations of both steps)
        for (int i = 0; i < nc; i++) a[cand[i]] = -INFINITY;
        for (int s = 0; s < 2; s++) {
            const size_t row = (size_t)(s ? r : r - N);
            for (int i = 0; i < d; i++) xc[i] = x[row * d + i] - p->b_dec[i];
            for (int i = 0; i < nc; i++) {
                const int j = cand[i];
                a[j] = fmaxf(a[j], cblas_sdot(d, p->W_enc + (size_t)j * d, 1, xc, 1) + p->b_enc[j]);
            }
        }
        const int kept = topk_row_subset(a, NULL, cand, nc, k, out->idx + o, out->val + o);
        o += kept;
        out->row_ptr[r + 1] = o;
    }
    out->nnz = o;
    free(cand), free(mark), free(a), free(xc);
}
