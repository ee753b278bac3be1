// eval.c — `stsae eval DECK`: the metrics of SPEC §2 for every trained job and
// for the raw features (eval.h). Each eval.h5 is written whole and on disk or
// not at all (h5io.h); a write that fails on one rank (a full disk) ends the
// run on every rank with status 1 and that rank's message (file, dataset or
// attribute, reason), once every rank's items are through.
#define _POSIX_C_SOURCE 200809L // access
#include "stsae/stages/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/comm/comm.h"
#include "stsae/deck/deck.h"
#include "stsae/deck/deck_schema.h"
#include "stsae/deck/jobs.h"
#include "stsae/io/features.h"
#include "stsae/io/h5io.h"
#include "stsae/io/model.h"
#include "stsae/metrics/metrics.h"
#include "stsae/metrics/probe.h"
#include "stsae/metrics/ridge.h"
#include "stsae/sae/sae.h"

// Everything the items share: the clips, labels, embeddings and options.
typedef struct {
    const Deck *deck;
    const char *run_dir;
    FeatureFile f;
    int32_t *train, *test;
    int n_train, n_test;
    int32_t *y_train, *y_test;
    int n_class;
    float *E;     // [n_test, e] unit clip embeddings of the test clips
    int e;
    float *text;  // [n_class, e_text] label text embeddings, or NULL
    int e_text;
    int use_max, max_iter, draws, n_ablate, n_smooth;
    int64_t ablate[16];
    double smooth[16];
    double progress_every;
} Eval;

// One result row: named numbers (NAN: does not apply), then written as
// attributes of eval.h5.
typedef struct {
    char name[64][40];
    double v[64];
    int n;
} Row;

static void put(Row *r, const char *name, double v) {
    if (r->n == 64) die("eval: too many result columns");
    snprintf(r->name[r->n], sizeof(r->name[0]), "%s", name);
    r->v[r->n++] = v;
}

static int str_eq(const char *a, const char *b) { return strcmp(a, b) == 0; }

static uint64_t mix_seed(int64_t seed, uint64_t salt) {
    uint64_t s = (uint64_t)seed * 0x9e3779b97f4a7c15ull ^ salt;
    return rng_next(&s);
}

// A clip's features as float32 times `scale` (x: T*N*d floats; h: scratch).
static void load_clip(const Eval *ev, int clip, float scale, uint16_t *h, float *x) {
    const size_t n = (size_t)ev->f.T * ev->f.N * ev->f.d;
    features_read_clip(&ev->f, clip, h);
    half_to_float(h, x, n);
    if (scale != 1.0f)
        for (size_t i = 0; i < n; i++) x[i] *= scale;
}

// Row means of x [n, d] into out [d].
static void token_mean(const float *x, int n, int d, float *out) {
    for (int i = 0; i < d; i++) {
        double s = 0.0;
        for (int r = 0; r < n; r++) s += x[(size_t)r * d + i];
        out[i] = (float)(s / n);
    }
}

static void labels_of(const Eval *ev, const int32_t *clips, int n, int32_t *y) {
    for (int i = 0; i < n; i++) y[i] = ev->f.labels[clips[i]];
}

// Linear probe: fit on the train rows, accuracy on the test rows. keep: the
// fitted probe is kept there (NULL: freed).
static double probe_score(const Eval *ev, const float *Xtr, const float *Xte, int p, Probe *keep) {
    Probe pr;
    probe_fit(Xtr, ev->y_train, ev->n_train, p, ev->n_class, 1.0, ev->max_iter, 1e-6, &pr);
    const double acc = probe_accuracy(&pr, Xte, ev->y_test, ev->n_test);
    if (keep) *keep = pr;
    else probe_free(&pr);
    return acc;
}

// Ridge retrieval R@1, R@5 of clip features (NAN without text embeddings).
static void retrieval(const Eval *ev, const float *Xtr, const float *Xte, int p, double *r1, double *r5) {
    *r1 = *r5 = NAN;
    if (!ev->text) return;
    RidgeResult rr;
    ridge_retrieval(Xtr, ev->y_train, ev->n_train, Xte, ev->y_test, ev->n_test, p, ev->text, ev->n_class, ev->e_text,
                    &rr);
    *r1 = rr.r_at_1;
    *r5 = rr.r_at_5;
}

// The label-free clip-level metrics of a [n_test, m] clip-value matrix.
static void clip_metrics(const Eval *ev, const float *V, int m, const uint8_t *live, double *ms, int32_t *top, Row *row) {
    put(row, "ms", monosemanticity(V, ev->n_test, m, ev->E, ev->e, ms));
    top_clips(V, ev->n_test, m, top);
    double pm, px;
    action_purity(V, ev->n_test, m, top, ev->y_test, 50, &pm, &px);
    put(row, "purity_mean", pm);
    put(row, "purity_max", px);
    put(row, "jaccard", jaccard_uniqueness(top, m, live));
}

// Seconds per part of a job's evaluation (eval.h5 /seconds, in this order).
enum { S_READ, S_ENCODE, S_TOKEN, S_SMOOTH, S_CLIP, S_PROBE, S_ABLATE, S_SMOOTH_PROBE, S_RETRIEVAL, S_TOTAL, N_S };
static const char *const S_NAMES = "read,encode+decode,token metrics,smoothing,MS+purity+jaccard,probes,"
                                   "ablation,smoothing probes,retrieval,total";

// The activation timeline of one clip (the paper's flicker figure): the
// TIMELINE_LATENTS latents with the largest total activation over the clip,
// each at the position where its total is largest, and its value there at
// every step, tl [T, n] (0 where it is not kept: the flicker).
#define TIMELINE_LATENTS 8
static void timeline(const SparseCodes *z, int T, int N, int m, int32_t *lat, float *tl) {
    double *tot = xcalloc((size_t)m, sizeof(double)), *at = xmalloc(sizeof(double) * (size_t)N);
    for (int64_t e = 0; e < z->row_ptr[z->n_rows]; e++) tot[z->idx[e]] += z->val[e];
    for (int q = 0; q < TIMELINE_LATENTS; q++) {
        int best = 0;
        for (int j = 1; j < m; j++)
            if (tot[j] > tot[best]) best = j;
        lat[q] = best;
        tot[best] = -1.0;
        // its position: the largest total over the steps
        for (int p = 0; p < N; p++) at[p] = 0.0;
        for (int r = 0; r < T * N; r++)
            for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++)
                if (z->idx[e] == best) at[r % N] += z->val[e];
        int pb = 0;
        for (int p = 1; p < N; p++)
            if (at[p] > at[pb]) pb = p;
        for (int t = 0; t < T; t++)
            for (int64_t e = z->row_ptr[t * N + pb]; e < z->row_ptr[t * N + pb + 1]; e++)
                if (z->idx[e] == best) tl[(size_t)t * TIMELINE_LATENTS + q] = z->val[e];
    }
    free(tot), free(at);
}

// Writes eval.h5 (eval.h); wnorm and the timeline (tl [T, TIMELINE_LATENTS]
// of the latents tl_lat on clip tl_clip) may be NULL. Under a temporary name,
// every return checked (h5io.h): 0, or -1 with the file, the object and the
// reason in err, and no eval.h5 (the item counts as not evaluated).
static int write_eval(const char *path, const Row *row, const char *job, const char *variant, int m, const double *rho,
                      const double *ms, const int32_t *top, const float *mean_value, const double *wnorm, int T,
                      const int32_t *tl_lat, const float *tl, const char *tl_clip, const double *sec, char *err,
                      size_t cap) {
    H5W w;
    if (h5w_create(&w, path) != 0) return errorf(err, cap, "%s", w.err);
    h5w_format_version(&w, EVAL_FORMAT_VERSION);
    h5w_attr_str(&w, "job", job);
    h5w_attr_str(&w, "variant", variant);
    for (int i = 0; i < row->n; i++) h5w_attr_f64(&w, row->name[i], row->v[i]);
    hsize_t dm[1] = {(hsize_t)m}, dt[2] = {(hsize_t)m, 8};
    h5w_f64(&w, "rho", rho, 1, dm);
    h5w_f64(&w, "ms", ms, 1, dm);
    double *t = xmalloc(sizeof(double) * (size_t)m * 8);
    for (size_t i = 0; i < (size_t)m * 8; i++) t[i] = top[i];
    h5w_f64(&w, "top_clips", t, 2, dt);
    free(t);
    h5w_f32(&w, "mean_clip_value", mean_value, 1, dm);
    if (wnorm) h5w_f64(&w, "probe_weight_norm", wnorm, 1, dm);
    if (sec) {
        hsize_t ds[1] = {N_S};
        h5w_f64(&w, "seconds", sec, 1, ds);
        h5w_attr_str(&w, "seconds_names", S_NAMES);
    }
    if (tl) {
        hsize_t dt2[2] = {(hsize_t)T, TIMELINE_LATENTS}, dl[1] = {TIMELINE_LATENTS};
        h5w_f32(&w, "timeline", tl, 2, dt2);
        double l[TIMELINE_LATENTS];
        for (int q = 0; q < TIMELINE_LATENTS; q++) l[q] = tl_lat[q];
        h5w_f64(&w, "timeline_latents", l, 1, dl);
        h5w_attr_str(&w, "timeline_clip", tl_clip);
    }
    return h5w_commit(&w, err, cap);
}

static void column_means(const float *V, int n, int m, float *out) {
    for (int j = 0; j < m; j++) {
        double s = 0.0;
        for (int c = 0; c < n; c++) s += V[(size_t)c * m + j];
        out[j] = (float)(s / (n ? n : 1));
    }
}

// The raw features as a row of their own: lag-1 over the d channels, the
// clip-level metrics over channels, probe and retrieval. 0, or -1 with err
// (writing eval.h5 failed).
static int eval_raw(const Eval *ev, const char *path, char *err, size_t cap) {
    const int T = ev->f.T, N = ev->f.N, d = ev->f.d, tn = T * N;
    uint16_t *h = xmalloc(sizeof(uint16_t) * (size_t)tn * d);
    float *x = xmalloc(sizeof(float) * (size_t)tn * d);
    float *Xtr = xmalloc(sizeof(float) * (size_t)ev->n_train * d), *Xte = xmalloc(sizeof(float) * (size_t)ev->n_test * d);
    Lag1 l;
    lag1_init(&l, d);
    for (int i = 0; i < ev->n_train; i++) {
        load_clip(ev, ev->train[i], 1.0f, h, x);
        token_mean(x, tn, d, Xtr + (size_t)i * d);
    }
    for (int i = 0; i < ev->n_test; i++) {
        load_clip(ev, ev->test[i], 1.0f, h, x);
        token_mean(x, tn, d, Xte + (size_t)i * d);
        lag1_add_dense(&l, x, T, N);
    }
    Row row = {.n = 0};
    double *rho = xmalloc(sizeof(double) * (size_t)d), *ms = xmalloc(sizeof(double) * (size_t)d), frac;
    put(&row, "lag1", lag1_finish(&l, rho, &frac));
    put(&row, "frac_lag1_below_0.3", frac);
    uint8_t *live = xmalloc((size_t)d);
    for (int j = 0; j < d; j++) live[j] = !isnan(rho[j]);
    int32_t *top = xmalloc(sizeof(int32_t) * (size_t)d * 8);
    clip_metrics(ev, Xte, d, live, ms, top, &row);
    put(&row, "probe", probe_score(ev, Xtr, Xte, d, NULL));
    double r1, r5;
    retrieval(ev, Xtr, Xte, d, &r1, &r5);
    put(&row, "r_at_1", r1);
    put(&row, "r_at_5", r5);
    float *mv = xmalloc(sizeof(float) * (size_t)d);
    column_means(Xte, ev->n_test, d, mv);
    const int rc = write_eval(path, &row, "raw", "raw", d, rho, ms, top, mv, NULL, 0, NULL, NULL, NULL, NULL, err, cap);
    lag1_free(&l);
    free(h), free(x), free(Xtr), free(Xte), free(rho), free(ms), free(live), free(top), free(mv);
    return rc;
}

// Per clip list: clip values of the codes (and of each smoothing) and clip
// means of the reconstruction (original space).
typedef struct {
    float *V;        // [clips, m]
    float *R;        // [clips, d]
    float *Vs[17];   // smoothed codes' clip values: EMA per factor, then union TopK
} Pooled;

// One job's row (as eval_raw): 0, or -1 with err.
static int eval_job(const Eval *ev, const Job *job, const char *model_path, const char *path, char *err, size_t cap) {
    SaeConfig cfg;
    ModelInfo info;
    float *params = model_load(model_path, &cfg, &info);
    if (cfg.d != ev->f.d) die("%s: d = %d, the features %d", model_path, cfg.d, ev->f.d);
    if (info.hash != job->hash)
        die("%s: trained for another version of job %s (hash); retrain or move it away", model_path, job->name);
    SaeTensors p;
    sae_carve(params, &cfg, &p);
    const int T = ev->f.T, N = ev->f.N, d = cfg.d, m = cfg.m, tn = T * N;
    const float s = info.scale, inv_s = 1.0f / s;
    const int smooth = str_eq(sae_variant_name(&cfg), "standard"); // §2.9: a standard SAE's codes
    const int n_sm = smooth ? ev->n_smooth + 1 : 0;
    SaeWork *w = sae_work_create(&cfg, tn);
    SparseCodes z, zs;
    codes_alloc(&z, tn, (int64_t)tn * cfg.k);
    codes_alloc(&zs, tn, 0);
    uint16_t *h = xmalloc(sizeof(uint16_t) * (size_t)tn * d);
    float *x = xmalloc(sizeof(float) * (size_t)tn * d), *xh = xmalloc(sizeof(float) * (size_t)tn * d);
    float *scratch = xcalloc((size_t)m, sizeof(float));
    Pooled P[2];
    const int n_of[2] = {ev->n_train, ev->n_test};
    const int32_t *clips_of[2] = {ev->train, ev->test};
    Lag1 l, ls[17];
    lag1_init(&l, m);
    for (int k = 0; k < n_sm; k++) lag1_init(&ls[k], m);
    double sse = 0.0, l0 = 0.0;
    double *sx = xcalloc((size_t)d, sizeof(double)), *sxx = xcalloc((size_t)d, sizeof(double));
    float *Xte = xmalloc(sizeof(float) * (size_t)ev->n_test * d);
    int32_t tl_lat[TIMELINE_LATENTS];
    float *tl = xcalloc((size_t)T * TIMELINE_LATENTS, sizeof(float));
    double sec[N_S] = {0}, tq = wall_time(), t_print = tq;
    const double t_job = tq;
#define LAP(k) (sec[k] += wall_time() - tq, tq = wall_time())
    for (int part = 0; part < 2; part++) { // 0 train, 1 test
        const int n = n_of[part];
        P[part].V = xmalloc(sizeof(float) * (size_t)n * m);
        P[part].R = xmalloc(sizeof(float) * (size_t)n * d);
        for (int k = 0; k < n_sm; k++) P[part].Vs[k] = xmalloc(sizeof(float) * (size_t)n * m);
        for (int i = 0; i < n; i++) {
            if (wall_time() - t_print >= ev->progress_every) {
                const double done = (double)(part ? n_of[0] + i : i), all = n_of[0] + n_of[1];
                const double el = wall_time() - t_job;
                printf("eval: %s: %.0f/%.0f clips, %.1f clips/s, ETA %.0f s\n", job->name, done, all, done / el,
                       (all - done) * el / (done > 0 ? done : 1));
                fflush(stdout);
                t_print = wall_time();
            }
            load_clip(ev, clips_of[part][i], s, h, x);
            LAP(S_READ);
            sae_encode(&cfg, &p, x, tn, info.theta, w, &z);
            sae_decode(&cfg, &p, &z, m, xh);
            LAP(S_ENCODE);
            clip_values_sparse(&z, m, ev->use_max, P[part].V + (size_t)i * m);
            token_mean(xh, tn, d, P[part].R + (size_t)i * d);
            for (int q = 0; q < d; q++) P[part].R[(size_t)i * d + q] *= inv_s;
            LAP(S_TOKEN);
            for (int k = 0; k < n_sm; k++) {
                if (k < ev->n_smooth) smooth_ema(&z, T, N, m, (float)ev->smooth[k], scratch, &zs);
                else smooth_union_topk(&cfg, &p, x, &z, T, N, &zs);
                clip_values_sparse(&zs, m, ev->use_max, P[part].Vs[k] + (size_t)i * m);
                if (part) lag1_add_sparse(&ls[k], &zs, T, N);
            }
            LAP(S_SMOOTH);
            if (!part) continue;
            // the test clips: every token-level metric (R^2 is scale-free: on s x)
            if (i == 0) timeline(&z, T, N, m, tl_lat, tl);
            lag1_add_sparse(&l, &z, T, N);
            l0 += (double)z.nnz;
            for (size_t r = 0; r < (size_t)tn; r++)
                for (int q = 0; q < d; q++) {
                    const double xv = x[r * d + q], e = xv - xh[r * d + q];
                    sse += e * e;
                    sx[q] += xv;
                    sxx[q] += xv * xv;
                }
            token_mean(x, tn, d, Xte + (size_t)i * d);
            for (int q = 0; q < d; q++) Xte[(size_t)i * d + q] *= inv_s;
            LAP(S_TOKEN);
        }
    }
    Row row = {.n = 0};
    const double n_tok = (double)ev->n_test * tn;
    double den = 0.0;
    for (int q = 0; q < d; q++) den += sxx[q] - sx[q] * sx[q] / n_tok;
    put(&row, "r2", 1.0 - sse / den);
    // clip-pooled R^2 on the clip means (original space)
    double cs = 0.0, cd = 0.0;
    for (int q = 0; q < d; q++) {
        double mu = 0.0;
        for (int i = 0; i < ev->n_test; i++) mu += Xte[(size_t)i * d + q];
        mu /= ev->n_test;
        for (int i = 0; i < ev->n_test; i++) {
            const double a = Xte[(size_t)i * d + q], b = P[1].R[(size_t)i * d + q];
            cs += (a - b) * (a - b);
            cd += (a - mu) * (a - mu);
        }
    }
    put(&row, "r2_clip", 1.0 - cs / cd);
    double *rho = xmalloc(sizeof(double) * (size_t)m), *ms = xmalloc(sizeof(double) * (size_t)m), frac;
    put(&row, "lag1", lag1_finish(&l, rho, &frac));
    put(&row, "frac_lag1_below_0.3", frac);
    uint8_t *live = xmalloc((size_t)m);
    int n_live = 0;
    for (int j = 0; j < m; j++) n_live += live[j] = l.nz[j] > 0;
    put(&row, "l0", l0 / n_tok);
    put(&row, "dead_frac", 1.0 - (double)n_live / m);
    int32_t *top = xmalloc(sizeof(int32_t) * (size_t)m * 8);
    LAP(S_TOKEN);
    clip_metrics(ev, P[1].V, m, live, ms, top, &row);
    LAP(S_CLIP);

    // probes: codes (kept for the ablation), reconstructions, the +M high-level group
    Probe pr;
    put(&row, "probe", probe_score(ev, P[0].V, P[1].V, m, &pr));
    put(&row, "probe_recon", probe_score(ev, P[0].R, P[1].R, d, NULL));
    if (cfg.m_high > 0) {
        float *Htr = xmalloc(sizeof(float) * (size_t)ev->n_train * cfg.m_high);
        float *Hte = xmalloc(sizeof(float) * (size_t)ev->n_test * cfg.m_high);
        for (int part = 0; part < 2; part++)
            for (int i = 0; i < n_of[part]; i++)
                memcpy((part ? Hte : Htr) + (size_t)i * cfg.m_high, P[part].V + (size_t)i * m,
                       sizeof(float) * (size_t)cfg.m_high);
        put(&row, "probe_high", probe_score(ev, Htr, Hte, cfg.m_high, NULL));
        free(Htr), free(Hte);
    } else {
        put(&row, "probe_high", NAN);
    }
    LAP(S_PROBE);
    // causal ablation (§2.8): zero the top-n latents by probe-weight norm, or n random ones
    double *wnorm = xmalloc(sizeof(double) * (size_t)m);
    int32_t *rank = xmalloc(sizeof(int32_t) * (size_t)m);
    probe_weight_norms(&pr, wnorm);
    probe_rank_features(&pr, rank);
    uint8_t *drop = xmalloc((size_t)m);
    uint64_t rs = mix_seed(job->seed, 0xab1a7e);
    int32_t *perm = xmalloc(sizeof(int32_t) * (size_t)m);
    for (int a = 0; a < ev->n_ablate; a++) {
        const int64_t n = ev->ablate[a] < m ? ev->ablate[a] : m;
        char name[40];
        memset(drop, 0, (size_t)m);
        for (int64_t i = 0; i < n; i++) drop[rank[i]] = 1;
        snprintf(name, sizeof(name), "ablate_top_%lld", (long long)ev->ablate[a]);
        put(&row, name, probe_accuracy_without(&pr, P[1].V, ev->y_test, ev->n_test, drop));
        double acc = 0.0;
        for (int r = 0; r < ev->draws; r++) {
            for (int j = 0; j < m; j++) perm[j] = j;
            for (int64_t i = 0; i < n; i++) { // partial Fisher-Yates: n random latents
                const int64_t q = i + (int64_t)(rng_next(&rs) % (uint64_t)(m - i));
                int32_t t = perm[i];
                perm[i] = perm[q];
                perm[q] = t;
            }
            memset(drop, 0, (size_t)m);
            for (int64_t i = 0; i < n; i++) drop[perm[i]] = 1;
            acc += probe_accuracy_without(&pr, P[1].V, ev->y_test, ev->n_test, drop);
        }
        snprintf(name, sizeof(name), "ablate_rand_%lld", (long long)ev->ablate[a]);
        put(&row, name, acc / ev->draws);
    }
    LAP(S_ABLATE);
    // post-hoc smoothing (§2.9): rho and probe of the smoothed codes
    for (int k = 0; k < n_sm; k++) {
        char name[40], tag[24];
        if (k < ev->n_smooth) snprintf(tag, sizeof(tag), "ema%g", ev->smooth[k]);
        else snprintf(tag, sizeof(tag), "union");
        double *rs_ = xmalloc(sizeof(double) * (size_t)m), fl;
        snprintf(name, sizeof(name), "lag1_%s", tag);
        put(&row, name, lag1_finish(&ls[k], rs_, &fl));
        snprintf(name, sizeof(name), "probe_%s", tag);
        put(&row, name, probe_score(ev, P[0].Vs[k], P[1].Vs[k], m, NULL));
        free(rs_);
    }
    LAP(S_SMOOTH_PROBE);
    double r1, r5;
    retrieval(ev, P[0].V, P[1].V, m, &r1, &r5);
    put(&row, "r_at_1", r1);
    put(&row, "r_at_5", r5);
    retrieval(ev, P[0].R, P[1].R, d, &r1, &r5);
    put(&row, "r_at_1_recon", r1);
    put(&row, "r_at_5_recon", r5);
    LAP(S_RETRIEVAL);
#undef LAP
    sec[S_TOTAL] = wall_time() - t_job;
    // the job's description, for the report
    // (0: the variant has no such value -> empty in results.csv)
    const double lam = job->lambda_t > 0 ? job->lambda_t : job->lambda_r;
    put(&row, "lambda", lam > 0 ? lam : NAN);
    put(&row, "lambda_s", job->lambda_s > 0 ? job->lambda_s : NAN);
    put(&row, "tau", job->tau > 0 ? job->tau : NAN);
    put(&row, "high_frac", job->high_frac > 0 ? job->high_frac : NAN);
    put(&row, "T_s", job->T_s > 0 ? job->T_s : NAN);
    put(&row, "seed", (double)job->seed);
    put(&row, "train_tokens_per_s", info.tokens_per_s);
    float *mv = xmalloc(sizeof(float) * (size_t)m);
    column_means(P[1].V, ev->n_test, m, mv);
    const int rc = write_eval(path, &row, job->name, job->variant, m, rho, ms, top, mv, wnorm, T, tl_lat, tl,
                              ev->f.clip_ids[ev->test[0]], sec, err, cap);

    probe_free(&pr);
    lag1_free(&l);
    for (int k = 0; k < n_sm; k++) lag1_free(&ls[k]);
    for (int part = 0; part < 2; part++) {
        free(P[part].V), free(P[part].R);
        for (int k = 0; k < n_sm; k++) free(P[part].Vs[k]);
    }
    sae_work_free(w);
    codes_free(&z), codes_free(&zs);
    free(params), free(h), free(x), free(xh), free(scratch), free(sx), free(sxx), free(Xte), free(rho), free(ms),
        free(live), free(top), free(wnorm), free(rank), free(drop), free(perm), free(mv), free(tl);
    return rc;
}

// Unit clip embeddings of the test clips: the mean raw token (eval.embeddings
// raw) or the file's /clip_embeddings (clip).
static void clip_embeddings(Eval *ev) {
    const int d = ev->f.d, tn = ev->f.T * ev->f.N;
    if (str_eq(deck_str(ev->deck, "eval.embeddings"), "clip")) {
        hsize_t dims[2];
        float *all = h5_read_f32(ev->f.file, ev->f.path, "/clip_embeddings", 2, dims);
        if (dims[0] != (hsize_t)ev->f.n_clips)
            die("%s: /clip_embeddings has %llu rows, the file %d clips", ev->f.path, (unsigned long long)dims[0], ev->f.n_clips);
        ev->e = (int)dims[1];
        ev->E = xmalloc(sizeof(float) * (size_t)ev->n_test * ev->e);
        for (int i = 0; i < ev->n_test; i++)
            memcpy(ev->E + (size_t)i * ev->e, all + (size_t)ev->test[i] * ev->e, sizeof(float) * (size_t)ev->e);
        free(all);
    } else {
        ev->e = d;
        ev->E = xmalloc(sizeof(float) * (size_t)ev->n_test * d);
        uint16_t *h = xmalloc(sizeof(uint16_t) * (size_t)tn * d);
        float *x = xmalloc(sizeof(float) * (size_t)tn * d);
        for (int i = 0; i < ev->n_test; i++) {
            load_clip(ev, ev->test[i], 1.0f, h, x);
            token_mean(x, tn, d, ev->E + (size_t)i * d);
        }
        free(h), free(x);
    }
    for (int i = 0; i < ev->n_test; i++) {
        float *v = ev->E + (size_t)i * ev->e;
        double s = 0.0;
        for (int q = 0; q < ev->e; q++) s += (double)v[q] * v[q];
        const float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int q = 0; q < ev->e; q++) v[q] *= inv;
    }
}

int eval_main(int argc, char **argv) {
    Comm *world = comm_world();
    const int rank = comm_rank(world), size = comm_size(world);
    if (argc < 1) {
        if (rank == 0) fprintf(stderr, "usage: stsae eval DECK [key=value ...]\n");
        return 2;
    }
    char err[1024] = "";
    Deck *d = deck_load(argv[0], stsae_schema, argc - 1, argv + 1, err, sizeof(err));
    if (d && !deck_has(d, "eval")) { // no eval section: its defaults
        char **over = xmalloc(sizeof(char *) * (size_t)argc);
        for (int i = 1; i < argc; i++) over[i - 1] = argv[i];
        over[argc - 1] = "eval={}";
        deck_free(d);
        d = deck_load(argv[0], stsae_schema, argc, over, err, sizeof(err));
        free(over);
    }
    JobList *jobs = d ? jobs_expand(d, err, sizeof(err)) : NULL;
    if (jobs && !deck_has(d, "train")) snprintf(err, sizeof(err), "%s: the deck has no train section (its jobs are evaluated)", argv[0]);
    if (!comm_agree(world, jobs && deck_has(d, "train"), err)) {
        return 1;
    }
    Eval ev;
    memset(&ev, 0, sizeof(ev));
    ev.deck = d;
    ev.run_dir = deck_str(d, "run_dir");
    char *feat_path = path_join(ev.run_dir, deck_str(d, "train.features"));
    int ok = features_open(&ev.f, feat_path, (int)deck_int(d, "train.layer"), err, sizeof(err)) == 0;
    if (!comm_agree(world, ok, err)) {
        return 1;
    }
    ev.n_train = features_clips(&ev.f, 0, &ev.train);
    ev.n_test = features_clips(&ev.f, 1, &ev.test);
    snprintf(err, sizeof(err), "%s: evaluation needs training and test clips (split 0 and 1, done); it has %d and %d",
             feat_path, ev.n_train, ev.n_test);
    if (!comm_agree(world, ev.n_train > 0 && ev.n_test > 0, err)) {
        return 1;
    }
    ev.y_train = xmalloc(sizeof(int32_t) * (size_t)ev.n_train);
    ev.y_test = xmalloc(sizeof(int32_t) * (size_t)ev.n_test);
    labels_of(&ev, ev.train, ev.n_train, ev.y_train);
    labels_of(&ev, ev.test, ev.n_test, ev.y_test);
    ev.n_class = ev.f.n_label_names;
    ev.use_max = str_eq(deck_str(d, "eval.clip_value"), "max");
    ev.max_iter = (int)deck_int(d, "eval.probe_max_iter");
    ev.draws = (int)deck_int(d, "eval.random_draws");
    ev.n_ablate = deck_len(d, "eval.ablate_n") < 16 ? deck_len(d, "eval.ablate_n") : 16;
    for (int i = 0; i < ev.n_ablate; i++) {
        char key[64];
        snprintf(key, sizeof(key), "eval.ablate_n[%d]", i);
        ev.ablate[i] = deck_int(d, key);
    }
    ev.progress_every = deck_num(d, "eval.progress_every");
    ev.n_smooth = deck_len(d, "eval.smoothing") < 16 ? deck_len(d, "eval.smoothing") : 16;
    for (int i = 0; i < ev.n_smooth; i++) {
        char key[64];
        snprintf(key, sizeof(key), "eval.smoothing[%d]", i);
        ev.smooth[i] = deck_num(d, key);
    }
    if (h5_exists(ev.f.file, "/text_embeddings")) {
        hsize_t dims[2];
        ev.text = h5_read_f32(ev.f.file, ev.f.path, "/text_embeddings", 2, dims);
        if (dims[0] != (hsize_t)ev.n_class)
            die("%s: /text_embeddings has %llu rows, /label_names %d", feat_path, (unsigned long long)dims[0], ev.n_class);
        ev.e_text = (int)dims[1];
    }
    clip_embeddings(&ev);

    // the items: raw, then every trained job; dealt round-robin over the ranks
    char *raw_dir = path_join(ev.run_dir, "raw");
    char werr[COMM_MSG_MAX] = "";
    ok = rank != 0 || path_mkdirs(raw_dir, werr, sizeof(werr)) == 0;
    int failed = !comm_agree_msg(world, ok, werr, sizeof(werr), 0);
    const double t0 = wall_time();
    int done_here = 0, skipped = 0, missing = 0;
    // a rank whose write fails (a full disk) stops its items; the others
    // learn it when theirs are through, and every rank exits 1 naming the
    // file and the reason (the items whose eval.h5 exists stay done)
    for (int item = 0; item <= jobs->n && !failed; item++) {
        if (item % size != rank) continue;
        char *dir = item == 0 ? strdup(raw_dir) : NULL;
        if (item > 0) {
            char *jd = path_join(ev.run_dir, "jobs");
            dir = path_join(jd, jobs->job[item - 1].name);
            free(jd);
        }
        char *out = path_join(dir, "eval.h5"), *model = path_join(dir, "model.h5");
        const char *name = item == 0 ? "raw" : jobs->job[item - 1].name;
        if (access(out, F_OK) == 0) {
            skipped++;
        } else if (item > 0 && access(model, F_OK) != 0) {
            printf("eval: %s: not trained (no %s); skipped\n", name, model);
            missing++;
        } else {
            const double t1 = wall_time();
            failed = (item == 0 ? eval_raw(&ev, out, werr, sizeof(werr))
                                : eval_job(&ev, &jobs->job[item - 1], model, out, werr, sizeof(werr))) != 0;
            if (!failed) {
                done_here++;
                printf("eval [rank %d]: %s in %.1f s -> %s\n", rank, name, wall_time() - t1, out);
                fflush(stdout);
            }
        }
        free(dir), free(out), free(model);
    }
    if (!comm_agree_msg(world, !failed, werr, sizeof(werr), 0)) {
        fprintf(stderr, "stsae: error (rank %d): eval: %s\n", rank, werr);
        fflush(stderr);
        free(raw_dir), free(feat_path);
        free(ev.train), free(ev.test), free(ev.y_train), free(ev.y_test), free(ev.E), free(ev.text);
        features_close(&ev.f);
        jobs_free(jobs);
        deck_free(d);
        return 1;
    }
    int counts[3] = {done_here, skipped, missing};
    comm_allreduce(world, counts, 3, COMM_I32, COMM_SUM, NULL);
    if (rank == 0)
        printf("eval: %d items evaluated, %d already done, %d jobs not trained, in %.1f s on %d ranks\n", counts[0],
               counts[1], counts[2], wall_time() - t0, size);
    free(raw_dir), free(feat_path);
    free(ev.train), free(ev.test), free(ev.y_train), free(ev.y_test), free(ev.E), free(ev.text);
    features_close(&ev.f);
    jobs_free(jobs);
    deck_free(d);
    return 0;
}
