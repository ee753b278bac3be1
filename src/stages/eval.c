// eval.c — `stsae eval DECK`: the metrics of SPEC §2 for every trained job and
// for the raw features (eval.h). Each eval.h5 is written whole and on disk or
// not at all (h5io.h); a write that fails on one rank (a full disk) ends the
// run on every rank with status 1 and that rank's message (file, dataset or
// attribute, reason), once every rank's items are through.
//
// The deck is read once (stage.h's start-up, with the eval section's defaults
// where the deck has none) into EvalOptions (options.h). The feature file is
// read one layer at a time: train.layer with its raw row RUN_DIR/raw, then
// each other layer a job trains on (the layer analysis: `layer` in the grid)
// with its raw row RUN_DIR/raw_layerL; every row records its `layer`.
// device: cuda: each rank on its node's GPU (stage_use_device); a clip's
// encode, decode, R²'s sums and union TopK smoothing run there (sae_cuda.h
// sae_cuda_eval_clip: the float16 features up, the codes back), the sparse
// metrics, probes and retrieval on the CPU, as for device: cpu.
// eval_main reads as its steps (start, options, device, then per layer:
// feature file, labels and embeddings, items);
// eval_job as the parts of one job's evaluation (model, clips encoded, token
// metrics, clip metrics, probes, ablation, smoothing, retrieval, the job's
// description, eval.h5), each a function below; one cleanup each.
#define _POSIX_C_SOURCE 200809L // access
#include "stsae/stages/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/base/progress.h"
#include "stsae/comm/comm.h"
#include "stsae/deck/options.h"
#include "stsae/io/features.h"
#include "stsae/io/h5io.h"
#include "stsae/io/model.h"
#include "stsae/metrics/metrics.h"
#include "stsae/metrics/probe.h"
#include "stsae/metrics/r2.h"
#include "stsae/metrics/ridge.h"
#include "stsae/metrics/text_hash.h"
#include "stsae/sae/sae.h"
#include "stsae/sae/sae_cuda.h"
#include "stsae/stages/stage.h"

static const StageSpec EVAL_STAGE = {"eval", "train", "(its jobs are evaluated)", "eval"};

// Everything the items share: the options, the clips, labels and embeddings;
// eval_cleanup frees whatever of it exists.
typedef struct {
    Stage st;
    EvalOptions opt;
    int have_opt;
    int device;       // device: cuda: each clip encoded, decoded and summed on this rank's GPU
    char *feat_path;  // run_dir/train.features
    FeatureFile f;    // open when f_open
    int f_open;
    int32_t *train, *test;
    int n_train, n_test;
    int32_t *y_train, *y_test;
    int n_class;
    float *E;     // [n_test, e] unit clip embeddings of the test clips
    int e;
    float *text;  // [n_class, e_text] label text embeddings, or NULL
    int e_text;
    const char *text_from; // what made them (eval.h5's text_embedder), or NULL
    char clip_digest[128]; // the CLIP weights that made the file's embeddings (extract.clip), or ""
    char ms_from[400];     // what the clip embeddings of MS are (eval.h5's ms_embedder)
    char text_buf[400];    // text_from when it names CLIP's weights
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
    probe_fit(Xtr, ev->y_train, ev->n_train, p, ev->n_class, 1.0, ev->opt.probe_max_iter, 1e-6, &pr);
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

// Writes eval.h5 (eval.h); wnorm, the firing statistics (lag, NULL for the
// raw row) and the timeline (tl [T, TIMELINE_LATENTS] of the latents tl_lat
// on clip tl_clip) may be NULL. Under a temporary name,
// every return checked (h5io.h): 0, or -1 with the file, the object and the
// reason in err, and no eval.h5 (the item counts as not evaluated).
static int write_eval(const char *path, const Row *row, const char *job, const char *variant, int m, const double *rho,
                      const double *ms, const int32_t *top, const float *mean_value, const double *wnorm,
                      const Lag1 *fire, int T,
                      const int32_t *tl_lat, const float *tl, const char *tl_clip, const double *sec,
                      const char *text_from, const char *ms_from, char *err, size_t cap) {
    H5W w;
    if (h5w_create(&w, path) != 0) return errorf(err, cap, "%s", w.err);
    h5w_format_version(&w, EVAL_FORMAT_VERSION);
    h5w_attr_str(&w, "job", job);
    h5w_attr_str(&w, "variant", variant);
    if (text_from) h5w_attr_str(&w, "text_embedder", text_from);
    h5w_attr_str(&w, "ms_embedder", ms_from);
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
    if (fire) { // per latent over the test tokens: how often it fires, and its mean value when it does
        double *fr = xmalloc(sizeof(double) * (size_t)m), *act = xmalloc(sizeof(double) * (size_t)m);
        for (int j = 0; j < m; j++) {
            fr[j] = fire->n_tok > 0 ? (double)fire->nz[j] / fire->n_tok : 0.0;
            act[j] = fire->nz[j] > 0 ? fire->s1[j] / (double)fire->nz[j] : 0.0;
        }
        h5w_f64(&w, "freq", fr, 1, dm);
        h5w_f64(&w, "mean_act", act, 1, dm);
        free(fr), free(act);
    }
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
static int eval_raw(const Eval *ev, const char *name, const char *path, char *err, size_t cap) {
    const int T = ev->f.T, N = ev->f.N, d = ev->f.d, tn = T * N;
    uint16_t *h = xmalloc(sizeof(uint16_t) * (size_t)tn * d);
    float *x = xmalloc(sizeof(float) * (size_t)tn * d);
    float *Xtr = xmalloc(sizeof(float) * (size_t)ev->n_train * d), *Xte = xmalloc(sizeof(float) * (size_t)ev->n_test * d);
    Lag1 l;
    lag1_init(&l, d);
    for (int i = 0; i < ev->n_train; i++) {
        features_read_tokens(&ev->f, ev->train[i], 1.0f, h, x);
        token_mean(x, tn, d, Xtr + (size_t)i * d);
    }
    for (int i = 0; i < ev->n_test; i++) {
        features_read_tokens(&ev->f, ev->test[i], 1.0f, h, x);
        token_mean(x, tn, d, Xte + (size_t)i * d);
        lag1_add_dense(&l, x, T, N);
    }
    Row row = {.n = 0};
    double *rho = xmalloc(sizeof(double) * (size_t)d), *ms = xmalloc(sizeof(double) * (size_t)d), frac;
    put(&row, "layer", ev->f.layer);
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
    const int rc = write_eval(path, &row, name, "raw", d, rho, ms, top, mv, NULL, NULL, 0, NULL, NULL, NULL, NULL,
                              ev->text_from, ev->ms_from, err, cap);
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

// One job's evaluation: the model, what its clips gave, the row being
// filled and the seconds per part; job_free frees it.
typedef struct {
    const Eval *ev;
    const Job *job;
    SaeConfig cfg;
    ModelInfo info;
    float *params;
    SaeTensors p;
    int T, N, d, m, tn;
    int n_sm;             // smoothings evaluated (§2.9, a standard SAE's codes): the EMA factors, then union TopK
    Pooled P[2];          // 0 train, 1 test clips
    Lag1 l, ls[17];       // lag-1 of the test clips' codes, and of each smoothing
    R2Sum r2;             // the test tokens' R² (on s x: R² is scale-free)
    double l0;            // codes' non-zeros over the test tokens
    float *Xte;           // [n_test, d] the test clips' means (original space)
    int32_t tl_lat[TIMELINE_LATENTS];
    float *tl;            // [T, TIMELINE_LATENTS] the first test clip's timeline
    Row row;
    double *rho, *ms, *wnorm;
    uint8_t *live;
    int32_t *top;
    Probe pr;             // the codes' probe (the ablation's), when have_pr
    int have_pr;
    SaeCudaEval *dev;     // device: cuda: the clip's evaluation on the GPU (sae_cuda.h), else NULL
    float *dparams;       // the parameters on the GPU, carved into dp
    SaeTensors dp;
    double sec[N_S], tq, t_job;
} JobEval;

// Adds the seconds since the last lap to part k.
static void lap(JobEval *je, int k) {
    je->sec[k] += wall_time() - je->tq;
    je->tq = wall_time();
}

// The job's model, checked against the features and the job (dies naming the
// file otherwise).
static void load_model(JobEval *je, const char *model_path) {
    const Eval *ev = je->ev;
    je->params = model_load(model_path, &je->cfg, &je->info);
    if (je->cfg.d != ev->f.d) die("%s: d = %d, the features %d", model_path, je->cfg.d, ev->f.d);
    if (je->info.layer != ev->f.layer)
        die("%s: trained on layer %d, job %s is of layer %d", model_path, je->info.layer, je->job->name, ev->f.layer);
    if (je->info.hash != je->job->hash)
        die("%s: trained for another version of job %s (hash); retrain or move it away", model_path, je->job->name);
    sae_carve(je->params, &je->cfg, &je->p);
    je->T = ev->f.T, je->N = ev->f.N, je->d = je->cfg.d, je->m = je->cfg.m, je->tn = je->T * je->N;
    je->n_sm = str_eq(sae_variant_name(&je->cfg), "standard") ? ev->opt.n_smooth + 1 : 0;
    if (ev->device) {
        const size_t n = sae_num_params(&je->cfg);
        je->dparams = dev_alloc_floats(n);
        dev_upload(je->dparams, je->params, n);
        sae_carve(je->dparams, &je->cfg, &je->dp);
        je->dev = sae_cuda_eval_create(&je->cfg, je->T, je->N);
    }
}

// One clip's buffers: its features, codes, reconstruction, smoothed codes.
typedef struct {
    SaeWork *w;           // CPU only
    SparseCodes z, zs, zu; // codes, a smoothing's, the union TopK's from the GPU
    uint16_t *h;
    float *x, *xh;        // [T*N, d] tokens and decode (CPU only)
    float *scratch;
    double *sx, *sxx;     // [d] R²'s sums of a clip from the GPU
} ClipBuf;

// Clip i of list `part` on the CPU: its codes into b->z, the clip mean of
// the reconstruction into P->R (original space); for a test clip also R²'s
// sums and the clip's mean token into Xte.
static void encode_cpu(JobEval *je, ClipBuf *b, int part, int i, int clip) {
    const int tn = je->tn, d = je->d, m = je->m;
    const float s = je->info.scale, inv_s = 1.0f / s;
    float *R = je->P[part].R + (size_t)i * d;
    features_read_tokens(&je->ev->f, clip, s, b->h, b->x);
    lap(je, S_READ);
    sae_encode(&je->cfg, &je->p, b->x, tn, je->info.theta, b->w, &b->z);
    sae_decode(&je->cfg, &je->p, &b->z, m, b->xh);
    lap(je, S_ENCODE);
    token_mean(b->xh, tn, d, R);
    for (int q = 0; q < d; q++) R[q] *= inv_s;
    if (part) {
        r2_sum_add(&je->r2, b->x, b->xh, tn);
        float *X = je->Xte + (size_t)i * d;
        token_mean(b->x, tn, d, X);
        for (int q = 0; q < d; q++) X[q] *= inv_s;
    }
    lap(je, S_TOKEN);
}

// encode_cpu's twin on the GPU (sae_cuda.h): the same outputs, and the union
// TopK smoothing into b->zu when the job has smoothings.
static void encode_device(JobEval *je, ClipBuf *b, int part, int i, int clip) {
    const int d = je->d;
    const float inv_s = 1.0f / je->info.scale;
    float *R = je->P[part].R + (size_t)i * d, *X = part ? je->Xte + (size_t)i * d : NULL;
    features_read_clip(&je->ev->f, clip, b->h);
    lap(je, S_READ);
    SaeCudaClip c = {.z = &b->z, .zu = je->n_sm ? &b->zu : NULL, .xh_mean = R, .x_mean = X, .sx = b->sx, .sxx = b->sxx};
    sae_cuda_eval_clip(je->dev, &je->cfg, &je->dp, b->h, je->info.scale, je->info.theta, &c);
    lap(je, S_ENCODE);
    for (int q = 0; q < d; q++) R[q] *= inv_s;
    if (part) {
        r2_sum_add_sums(&je->r2, je->tn, c.sse, c.sx, c.sxx);
        for (int q = 0; q < d; q++) X[q] *= inv_s;
    }
    lap(je, S_TOKEN);
}

// Clip i of list `part` encoded and decoded (on the CPU or the GPU): its
// clip values (codes, each smoothing) and reconstruction mean; for a test
// clip also every token-level sum (lag-1, L0, R², the clip mean, the
// timeline of the first).
static void eval_clip(JobEval *je, ClipBuf *b, int part, int i, int clip) {
    const Eval *ev = je->ev;
    const int T = je->T, N = je->N, m = je->m;
    Pooled *P = &je->P[part];
    if (je->dev) encode_device(je, b, part, i, clip);
    else encode_cpu(je, b, part, i, clip);
    clip_values_sparse(&b->z, m, ev->opt.use_max, P->V + (size_t)i * m);
    lap(je, S_TOKEN);
    for (int k = 0; k < je->n_sm; k++) {
        const SparseCodes *zs = &b->zs;
        if (k < ev->opt.n_smooth) smooth_ema(&b->z, T, N, m, (float)ev->opt.smooth[k], b->scratch, &b->zs);
        else if (je->dev) zs = &b->zu; // made on the GPU with the codes
        else smooth_union_topk(&je->cfg, &je->p, b->x, &b->z, T, N, &b->zs);
        clip_values_sparse(zs, m, ev->opt.use_max, P->Vs[k] + (size_t)i * m);
        if (part) lag1_add_sparse(&je->ls[k], zs, T, N);
    }
    lap(je, S_SMOOTH);
    if (!part) return;
    // the test clips' sparse metrics
    if (i == 0) timeline(&b->z, T, N, m, je->tl_lat, je->tl);
    lag1_add_sparse(&je->l, &b->z, T, N);
    je->l0 += (double)b->z.nnz;
    lap(je, S_TOKEN);
}

// Every clip of both lists through eval_clip, with a progress line every
// eval.progress_every seconds.
static void encode_clips(JobEval *je) {
    const Eval *ev = je->ev;
    const int d = je->d, m = je->m, tn = je->tn;
    ClipBuf b = {.w = je->dev ? NULL : sae_work_create(&je->cfg, tn)};
    codes_alloc(&b.z, tn, (int64_t)tn * je->cfg.k);
    codes_alloc(&b.zs, tn, 0);
    codes_alloc(&b.zu, tn, 0);
    b.h = xmalloc(sizeof(uint16_t) * (size_t)tn * d);
    if (je->dev) { // the tokens and their decode stay on the GPU
        b.sx = xmalloc(sizeof(double) * (size_t)d);
        b.sxx = xmalloc(sizeof(double) * (size_t)d);
    } else {
        b.x = xmalloc(sizeof(float) * (size_t)tn * d);
        b.xh = xmalloc(sizeof(float) * (size_t)tn * d);
    }
    b.scratch = xcalloc((size_t)m, sizeof(float));
    const int n_of[2] = {ev->n_train, ev->n_test};
    const int32_t *clips_of[2] = {ev->train, ev->test};
    Progress pr;
    progress_start(&pr, je->t_job, ev->opt.progress_every, 0);
    for (int part = 0; part < 2; part++) { // 0 train, 1 test
        const int n = n_of[part];
        je->P[part].V = xmalloc(sizeof(float) * (size_t)n * m);
        je->P[part].R = xmalloc(sizeof(float) * (size_t)n * d);
        for (int k = 0; k < je->n_sm; k++) je->P[part].Vs[k] = xmalloc(sizeof(float) * (size_t)n * m);
        for (int i = 0; i < n; i++) {
            const double now = wall_time();
            if (progress_due(&pr, now, 0)) {
                const int64_t done = part ? n_of[0] + i : i, all = n_of[0] + n_of[1];
                char eta[32];
                progress_eta_text(&pr, done, all, now, eta, sizeof(eta));
                printf("eval: %s: %lld/%lld clips, %.1f clips/s, ETA %s\n", je->job->name, (long long)done,
                       (long long)all, progress_rate(&pr, (double)done, now), eta);
                fflush(stdout);
            }
            eval_clip(je, &b, part, i, clips_of[part][i]);
        }
    }
    if (b.w) sae_work_free(b.w);
    codes_free(&b.z), codes_free(&b.zs), codes_free(&b.zu);
    free(b.h), free(b.x), free(b.xh), free(b.scratch), free(b.sx), free(b.sxx);
}

// R², clip R², lag-1, L0 and dead latents of the test clips.
static void token_metrics(JobEval *je) {
    const Eval *ev = je->ev;
    const int d = je->d, m = je->m;
    Row *row = &je->row;
    const double n_tok = (double)ev->n_test * je->tn;
    put(row, "layer", ev->f.layer);
    put(row, "r2", r2_sum_value(&je->r2));
    // clip-pooled R^2 on the clip means (original space)
    put(row, "r2_clip", r2_rows(je->Xte, je->P[1].R, ev->n_test, d));
    je->rho = xmalloc(sizeof(double) * (size_t)m);
    je->ms = xmalloc(sizeof(double) * (size_t)m);
    double frac;
    put(row, "lag1", lag1_finish(&je->l, je->rho, &frac));
    put(row, "frac_lag1_below_0.3", frac);
    je->live = xmalloc((size_t)m);
    int n_live = 0;
    for (int j = 0; j < m; j++) n_live += je->live[j] = je->l.nz[j] > 0;
    put(row, "l0", je->l0 / n_tok);
    put(row, "dead_frac", 1.0 - (double)n_live / m);
    je->top = xmalloc(sizeof(int32_t) * (size_t)m * 8);
}

// Probes: codes (kept for the ablation), reconstructions, the +M high-level group.
static void probes(JobEval *je) {
    const Eval *ev = je->ev;
    const int m = je->m, m_high = je->cfg.m_high;
    Row *row = &je->row;
    put(row, "probe", probe_score(ev, je->P[0].V, je->P[1].V, m, &je->pr));
    je->have_pr = 1;
    put(row, "probe_recon", probe_score(ev, je->P[0].R, je->P[1].R, je->d, NULL));
    if (m_high > 0) {
        float *Htr = xmalloc(sizeof(float) * (size_t)ev->n_train * m_high);
        float *Hte = xmalloc(sizeof(float) * (size_t)ev->n_test * m_high);
        const int n_of[2] = {ev->n_train, ev->n_test};
        for (int part = 0; part < 2; part++)
            for (int i = 0; i < n_of[part]; i++)
                memcpy((part ? Hte : Htr) + (size_t)i * m_high, je->P[part].V + (size_t)i * m,
                       sizeof(float) * (size_t)m_high);
        put(row, "probe_high", probe_score(ev, Htr, Hte, m_high, NULL));
        free(Htr), free(Hte);
    } else {
        put(row, "probe_high", NAN);
    }
}

// Causal ablation (§2.8): zero the top-n latents by probe-weight norm, or n
// random ones (eval.random_draws draws, seeded by the job).
static void ablation(JobEval *je) {
    const Eval *ev = je->ev;
    const int m = je->m;
    const Probe *pr = &je->pr;
    je->wnorm = xmalloc(sizeof(double) * (size_t)m);
    int32_t *rank = xmalloc(sizeof(int32_t) * (size_t)m);
    probe_weight_norms(pr, je->wnorm);
    probe_rank_features(pr, rank);
    uint8_t *drop = xmalloc((size_t)m);
    uint64_t rs = mix_seed(je->job->seed, 0xab1a7e);
    int32_t *perm = xmalloc(sizeof(int32_t) * (size_t)m);
    for (int a = 0; a < ev->opt.n_ablate; a++) {
        const int64_t n = ev->opt.ablate[a] < m ? ev->opt.ablate[a] : m;
        char name[40];
        memset(drop, 0, (size_t)m);
        for (int64_t i = 0; i < n; i++) drop[rank[i]] = 1;
        snprintf(name, sizeof(name), "ablate_top_%lld", (long long)ev->opt.ablate[a]);
        put(&je->row, name, probe_accuracy_without(pr, je->P[1].V, ev->y_test, ev->n_test, drop));
        double acc = 0.0;
        for (int r = 0; r < ev->opt.random_draws; r++) {
            for (int j = 0; j < m; j++) perm[j] = j;
            for (int64_t i = 0; i < n; i++) { // partial Fisher-Yates: n random latents
                const int64_t q = i + (int64_t)(rng_next(&rs) % (uint64_t)(m - i));
                int32_t t = perm[i];
                perm[i] = perm[q];
                perm[q] = t;
            }
            memset(drop, 0, (size_t)m);
            for (int64_t i = 0; i < n; i++) drop[perm[i]] = 1;
            acc += probe_accuracy_without(pr, je->P[1].V, ev->y_test, ev->n_test, drop);
        }
        snprintf(name, sizeof(name), "ablate_rand_%lld", (long long)ev->opt.ablate[a]);
        put(&je->row, name, acc / ev->opt.random_draws);
    }
    free(rank), free(drop), free(perm);
}

// Post-hoc smoothing (§2.9): rho and probe of the smoothed codes.
static void smoothing_probes(JobEval *je) {
    const Eval *ev = je->ev;
    const int m = je->m;
    for (int k = 0; k < je->n_sm; k++) {
        char name[40], tag[24];
        if (k < ev->opt.n_smooth) snprintf(tag, sizeof(tag), "ema%g", ev->opt.smooth[k]);
        else snprintf(tag, sizeof(tag), "union");
        double *rs_ = xmalloc(sizeof(double) * (size_t)m), fl;
        snprintf(name, sizeof(name), "lag1_%s", tag);
        put(&je->row, name, lag1_finish(&je->ls[k], rs_, &fl));
        snprintf(name, sizeof(name), "probe_%s", tag);
        put(&je->row, name, probe_score(ev, je->P[0].Vs[k], je->P[1].Vs[k], m, NULL));
        free(rs_);
    }
}

// Ridge retrieval of the codes and of the reconstructions.
static void retrievals(JobEval *je) {
    double r1, r5;
    retrieval(je->ev, je->P[0].V, je->P[1].V, je->m, &r1, &r5);
    put(&je->row, "r_at_1", r1);
    put(&je->row, "r_at_5", r5);
    retrieval(je->ev, je->P[0].R, je->P[1].R, je->d, &r1, &r5);
    put(&je->row, "r_at_1_recon", r1);
    put(&je->row, "r_at_5_recon", r5);
}

// The job's description, for the report (0: the variant has no such value ->
// empty in results.csv).
static void describe_job(JobEval *je) {
    const Job *job = je->job;
    Row *row = &je->row;
    const double lam = job->lambda_t > 0 ? job->lambda_t : job->lambda_r;
    put(row, "lambda", lam > 0 ? lam : NAN);
    put(row, "lambda_s", job->lambda_s > 0 ? job->lambda_s : NAN);
    put(row, "tau", job->tau > 0 ? job->tau : NAN);
    put(row, "high_frac", job->high_frac > 0 ? job->high_frac : NAN);
    put(row, "T_s", job->T_s > 0 ? job->T_s : NAN);
    put(row, "seed", (double)job->seed);
    put(row, "train_tokens_per_s", je->info.tokens_per_s);
}

static void job_free(JobEval *je) {
    if (je->dev) sae_cuda_eval_free(je->dev), dev_free(je->dparams);
    if (je->have_pr) probe_free(&je->pr);
    lag1_free(&je->l);
    for (int k = 0; k < je->n_sm; k++) lag1_free(&je->ls[k]);
    r2_sum_free(&je->r2);
    for (int part = 0; part < 2; part++) {
        free(je->P[part].V), free(je->P[part].R);
        for (int k = 0; k < je->n_sm; k++) free(je->P[part].Vs[k]);
    }
    free(je->params), free(je->Xte), free(je->tl), free(je->rho), free(je->ms), free(je->live), free(je->top),
        free(je->wnorm);
}

// One job's row (as eval_raw): 0, or -1 with err.
static int eval_job(const Eval *ev, const Job *job, const char *model_path, const char *path, char *err, size_t cap) {
    JobEval je;
    memset(&je, 0, sizeof(je));
    je.ev = ev, je.job = job;
    load_model(&je, model_path);
    lag1_init(&je.l, je.m);
    for (int k = 0; k < je.n_sm; k++) lag1_init(&je.ls[k], je.m);
    r2_sum_init(&je.r2, je.d);
    je.Xte = xmalloc(sizeof(float) * (size_t)ev->n_test * je.d);
    je.tl = xcalloc((size_t)je.T * TIMELINE_LATENTS, sizeof(float));
    je.tq = je.t_job = wall_time();
    encode_clips(&je);
    token_metrics(&je);
    lap(&je, S_TOKEN);
    clip_metrics(ev, je.P[1].V, je.m, je.live, je.ms, je.top, &je.row);
    lap(&je, S_CLIP);
    probes(&je);
    lap(&je, S_PROBE);
    ablation(&je);
    lap(&je, S_ABLATE);
    smoothing_probes(&je);
    lap(&je, S_SMOOTH_PROBE);
    retrievals(&je);
    lap(&je, S_RETRIEVAL);
    je.sec[S_TOTAL] = wall_time() - je.t_job;
    describe_job(&je);
    float *mv = xmalloc(sizeof(float) * (size_t)je.m);
    column_means(je.P[1].V, ev->n_test, je.m, mv);
    const int rc = write_eval(path, &je.row, job->name, job->variant, je.m, je.rho, je.ms, je.top, mv, je.wnorm, &je.l, je.T,
                              je.tl_lat, je.tl, ev->f.clip_ids[ev->test[0]], je.sec, ev->text_from, ev->ms_from, err, cap);
    free(mv);
    job_free(&je);
    return rc;
}

// Unit clip embeddings of the test clips: the mean raw token (eval.embeddings
// raw) or the file's /clip_embeddings (clip); ms_from says which.
static void clip_embeddings(Eval *ev) {
    const int d = ev->f.d, tn = ev->f.T * ev->f.N;
    if (!ev->opt.clip_embeddings) {
        char bb[64] = "backbone";
        if (H5Aexists(ev->f.file, "backbone") > 0) h5_attr_str(ev->f.file, ev->f.path, "backbone", bb, sizeof(bb));
        snprintf(ev->ms_from, sizeof(ev->ms_from), "the mean %s token of each clip (eval.embeddings: raw)", bb);
    }
    else if (ev->clip_digest[0])
        snprintf(ev->ms_from, sizeof(ev->ms_from), "CLIP image embeddings, the mean of each clip's unit frame "
                 "embeddings (extract.clip, weights %s)", ev->clip_digest);
    else
        snprintf(ev->ms_from, sizeof(ev->ms_from), "the feature file's imported /clip_embeddings");
    if (ev->opt.clip_embeddings) {
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
            features_read_tokens(&ev->f, ev->test[i], 1.0f, h, x);
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

// The deck's eval section (and the grid) resolved once, agreed over the
// ranks. 0, or -1 (rank 0 said why).
static int resolve_options(Eval *ev) {
    ev->have_opt = 1;
    const int ok = eval_options_resolve(ev->st.deck, &ev->opt, ev->st.err, sizeof(ev->st.err)) == 0;
    return stage_agree(&ev->st, ok) ? 0 : -1;
}

// The layers evaluated: train.layer first (its raw row is `raw`), then every
// other layer a job trains on, in grid order (raw rows `raw_layerL`). Returns
// how many (out: room for jobs + 1).
static int eval_layers(const EvalOptions *o, int *out) {
    int n = 0;
    out[n++] = o->layer;
    for (int i = 0; i < o->jobs->n; i++) {
        int seen = 0;
        for (int l = 0; l < n && !seen; l++) seen = out[l] == o->jobs->job[i].layer;
        if (!seen) out[n++] = o->jobs->job[i].layer;
    }
    return n;
}

// Layer `layer` of the feature file the jobs trained on, with training and
// test clips (agreed). 0, or -1.
static int open_features(Eval *ev, int layer) {
    Stage *st = &ev->st;
    ev->feat_path = path_join(ev->opt.run_dir, ev->opt.features);
    ev->f_open = features_open(&ev->f, ev->feat_path, layer, st->err, sizeof(st->err)) == 0;
    if (!stage_agree(st, ev->f_open)) return -1;
    ev->n_train = features_clips(&ev->f, 0, &ev->train);
    ev->n_test = features_clips(&ev->f, 1, &ev->test);
    snprintf(st->err, sizeof(st->err),
             "%s: evaluation needs training and test clips (split 0 and 1, done); it has %d and %d", ev->feat_path,
             ev->n_train, ev->n_test);
    return stage_agree(st, ev->n_train > 0 && ev->n_test > 0) ? 0 : -1;
}

// The clips' labels, the label text embeddings (when the file has them) and
// the test clips' unit embeddings.
static void read_labels(Eval *ev) {
    ev->clip_digest[0] = 0; // "none" or absent: the embeddings (if any) were imported
    if (H5Aexists(ev->f.file, "clip_weights_digest") > 0)
        h5_attr_str(ev->f.file, ev->f.path, "clip_weights_digest", ev->clip_digest, sizeof(ev->clip_digest));
    if (!strcmp(ev->clip_digest, "none")) ev->clip_digest[0] = 0;
    ev->y_train = xmalloc(sizeof(int32_t) * (size_t)ev->n_train);
    ev->y_test = xmalloc(sizeof(int32_t) * (size_t)ev->n_test);
    labels_of(ev, ev->train, ev->n_train, ev->y_train);
    labels_of(ev, ev->test, ev->n_test, ev->y_test);
    ev->n_class = ev->f.n_label_names;
    if (h5_exists(ev->f.file, "/text_embeddings")) {
        hsize_t dims[2];
        ev->text = h5_read_f32(ev->f.file, ev->f.path, "/text_embeddings", 2, dims);
        if (dims[0] != (hsize_t)ev->n_class)
            die("%s: /text_embeddings has %llu rows, /label_names %d", ev->feat_path, (unsigned long long)dims[0],
                ev->n_class);
        ev->e_text = (int)dims[1];
        if (ev->clip_digest[0]) {
            snprintf(ev->text_buf, sizeof(ev->text_buf), "CLIP text embeddings of the label names (extract.clip, weights %s)",
                     ev->clip_digest);
            ev->text_from = ev->text_buf;
        } else {
            ev->text_from = "the feature file's imported /text_embeddings";
        }
    } else if (ev->opt.text_stand_in && ev->n_class > 0) {
        ev->e_text = TEXT_HASH_DIM;
        ev->text = xmalloc(sizeof(float) * (size_t)ev->n_class * TEXT_HASH_DIM);
        text_hash_embed((const char *const *)ev->f.label_names, ev->n_class, TEXT_HASH_DIM, ev->text);
        ev->text_from = "hashed words and word pairs of the label names (stsae's stand-in, no CLIP)";
    }
    clip_embeddings(ev);
}

// The raw row of the open layer: its name (`raw` for train.layer, else
// `raw_layerL`), which is also its directory under run_dir.
static void raw_name(const Eval *ev, char *name, size_t cap) {
    if (ev->f.layer == ev->opt.layer) snprintf(name, cap, "raw");
    else snprintf(name, cap, "raw_layer%d", ev->f.layer);
}

// Item -1 (the open layer's raw row) or job `item`: evaluated unless its
// eval.h5 exists (skipped) or it has no model (missing). 0, or -1 with werr
// (a failed write).
static int eval_item(Eval *ev, int item, const char *raw_dir, int *done_here, int *skipped, int *missing,
                     char *werr, size_t cap) {
    const JobList *jobs = ev->opt.jobs;
    char *dir = item < 0 ? strdup(raw_dir) : NULL, raw[64];
    if (item >= 0) {
        char *jd = path_join(ev->opt.run_dir, "jobs");
        dir = path_join(jd, jobs->job[item].name);
        free(jd);
    }
    char *out = path_join(dir, "eval.h5"), *model = path_join(dir, "model.h5");
    raw_name(ev, raw, sizeof(raw));
    const char *name = item < 0 ? raw : jobs->job[item].name;
    int failed = 0;
    if (access(out, F_OK) == 0) {
        (*skipped)++;
    } else if (item >= 0 && access(model, F_OK) != 0) {
        printf("eval: %s: not trained (no %s); skipped\n", name, model);
        (*missing)++;
    } else {
        const double t1 = wall_time();
        failed = (item < 0 ? eval_raw(ev, raw, out, werr, cap) : eval_job(ev, &jobs->job[item], model, out, werr, cap)) != 0;
        if (!failed) {
            (*done_here)++;
            printf("eval [rank %d]: %s in %.1f s -> %s\n", ev->st.rank, name, wall_time() - t1, out);
            fflush(stdout);
        }
    }
    free(dir), free(out), free(model);
    return failed ? -1 : 0;
}

// The open layer's items: its raw row, then every trained job of that
// layer; dealt round-robin over the ranks. A rank whose write fails (a full
// disk) stops its items; the others learn it when theirs are through, and
// every rank exits 1 naming the file and the reason (the items whose eval.h5
// exists stay done). The exit status.
static int run_items(Eval *ev) {
    Stage *st = &ev->st;
    char raw[64];
    raw_name(ev, raw, sizeof(raw));
    char *raw_dir = path_join(ev->opt.run_dir, raw);
    char werr[COMM_MSG_MAX] = "";
    int ok = st->rank != 0 || path_mkdirs(raw_dir, werr, sizeof(werr)) == 0;
    int failed = !comm_agree_msg(st->world, ok, werr, sizeof(werr), 0);
    const double t0 = wall_time();
    int done_here = 0, skipped = 0, missing = 0;
    for (int item = -1, k = 0; item < ev->opt.jobs->n && !failed; item++) {
        if (item >= 0 && ev->opt.jobs->job[item].layer != ev->f.layer) continue;
        if (k++ % st->size != st->rank) continue;
        failed = eval_item(ev, item, raw_dir, &done_here, &skipped, &missing, werr, sizeof(werr)) != 0;
    }
    free(raw_dir);
    if (!comm_agree_msg(st->world, !failed, werr, sizeof(werr), 0)) {
        fprintf(stderr, "stsae: error (rank %d): eval: %s\n", st->rank, werr);
        fflush(stderr);
        return 1;
    }
    int counts[3] = {done_here, skipped, missing};
    comm_allreduce(st->world, counts, 3, COMM_I32, COMM_SUM, NULL);
    if (st->rank == 0)
        printf("eval: layer %d: %d items evaluated, %d already done, %d jobs not trained, in %.1f s on %d ranks\n",
               ev->f.layer, counts[0], counts[1], counts[2], wall_time() - t0, st->size);
    return 0;
}

// Frees what open_features and read_labels made for one layer.
static void close_layer(Eval *ev) {
    free(ev->feat_path);
    free(ev->train), free(ev->test), free(ev->y_train), free(ev->y_test), free(ev->E), free(ev->text);
    if (ev->f_open) features_close(&ev->f);
    ev->feat_path = NULL, ev->f_open = 0;
    ev->train = ev->test = ev->y_train = ev->y_test = NULL;
    ev->E = ev->text = NULL;
    ev->text_from = NULL;
}

// Frees what eval_main made, whichever step it stopped at.
static void eval_cleanup(Eval *ev) {
    close_layer(ev);
    if (ev->have_opt) eval_options_free(&ev->opt);
    stage_finish(&ev->st);
}

int eval_main(int argc, char **argv) {
    Eval *ev = xcalloc(1, sizeof(Eval));
    int rc = stage_start(&ev->st, &EVAL_STAGE, argc, argv);
    if (rc) goto out;
    rc = 1;
    if (resolve_options(ev)) goto out;
    if ((ev->device = stage_use_device(&ev->st, ev->opt.device)) < 0) goto out;
    int *layers = xmalloc(sizeof(int) * (size_t)(ev->opt.jobs->n + 1));
    const int n_layers = eval_layers(&ev->opt, layers);
    for (int l = 0; l < n_layers; l++) { // one layer of the feature file open at a time
        if (open_features(ev, layers[l])) {
            rc = 1;
            break;
        }
        read_labels(ev);
        rc = run_items(ev);
        close_layer(ev);
        if (rc) break;
    }
    free(layers);
out:
    eval_cleanup(ev);
    free(ev);
    return rc;
}
