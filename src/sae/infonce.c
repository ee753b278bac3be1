// infonce.c — sparse, exact InfoNCE over token sets (infonce.h).
#include "stsae/sae/infonce.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

// A set of tokens (the anchors or the candidates of a group) with the
// latent-major index of their normalized codes: for latent j, the positions
// t in [col_ptr[j], col_ptr[j+1]) hold member mem[t] (in member order), its
// value u[t] and the index ent[t] of that entry in the token-major codes.
typedef struct {
    int n;
    int32_t *tok;     // [n] token id of member i
    int64_t *col_ptr; // [m + 1]
    int32_t *mem;     // [nnz]
    float *u;         // [nnz]
    int64_t *ent;     // [nnz]
    int64_t nnz;
} TokSet;

// One group: anchors A (member i is an anchor when pos[i] >= 0, its positive
// being member pos[i] of C), candidates C; self_excluded: A and C are the same
// set and an anchor is not its own candidate.
typedef struct {
    const TokSet *A, *C;
    const int32_t *pos;
    int self_excluded;
    float w;       // lambda / (anchors of this loss)
    double *loss;  // sum of l(a) is added here
} Group;

// Per thread: the dot products of one anchor with the candidates it touches,
// and the candidates' gradients accumulated over the thread's anchors.
typedef struct {
    float *acc;      // [max set]
    uint8_t *mark;   // [max set]
    int32_t *touched;
    float *ex;       // [max set] the touched's exp (sparse rows)
    float *gc;       // [cap_gc] per position of the candidate set's index
    int64_t cap_gc;
} Scratch;

struct InfoNceWork {
    TokSet *sets;
    int cap_sets;
    int32_t *pos_same, *pos_next; // [max set]: i, and i + 1 where a right neighbour exists
    float *u, *gu;                // [nnz] per entry of z
    float *norm;                  // [tokens]
    int cap_set, n_threads;
    int64_t cap_nnz;
    int cap_tok;
    Scratch *scr;
    SparseCodes all;   // data-parallel: the codes of the whole batch (every rank's, in rank order)
    float *gu_mine;    // data-parallel: this rank's entries of dL/du, summed over ranks
    int64_t cap_mine;
    int dense_groups;  // groups of the last step whose rows were dense (run_group)
};

InfoNceWork *infonce_work_create(void) { return xcalloc(1, sizeof(InfoNceWork)); }

int infonce_dense_groups(const InfoNceWork *w) { return w->dense_groups; }

static void tokset_free(TokSet *s) {
    free(s->tok);
    free(s->col_ptr);
    free(s->mem);
    free(s->u);
    free(s->ent);
}

static void scratch_free(Scratch *s) {
    free(s->acc);
    free(s->mark);
    free(s->touched);
    free(s->ex);
    free(s->gc);
}

void infonce_work_free(InfoNceWork *w) {
    if (!w) return;
    for (int i = 0; i < w->cap_sets; i++) tokset_free(&w->sets[i]);
    free(w->sets);
    free(w->pos_same);
    free(w->pos_next);
    free(w->u);
    free(w->gu);
    free(w->norm);
    for (int t = 0; t < w->n_threads; t++) scratch_free(&w->scr[t]);
    free(w->scr);
    if (w->all.row_ptr) codes_free(&w->all);
    free(w->gu_mine);
    free(w);
}

static void work_reserve(InfoNceWork *w, int n_sets, int max_set, const SparseCodes *z) {
    if (n_sets > w->cap_sets) {
        w->sets = xrealloc(w->sets, sizeof(TokSet) * (size_t)n_sets);
        memset(w->sets + w->cap_sets, 0, sizeof(TokSet) * (size_t)(n_sets - w->cap_sets));
        w->cap_sets = n_sets;
    }
    const int threads = max_threads();
    if (max_set > w->cap_set || threads != w->n_threads) {
        for (int t = 0; t < w->n_threads; t++) scratch_free(&w->scr[t]);
        const int cap = max_set > w->cap_set ? max_set : w->cap_set;
        w->scr = xrealloc(w->scr, sizeof(Scratch) * (size_t)threads);
        memset(w->scr, 0, sizeof(Scratch) * (size_t)threads);
        for (int t = 0; t < threads; t++) {
            w->scr[t].acc = xmalloc(sizeof(float) * (size_t)cap);
            w->scr[t].mark = xcalloc((size_t)cap, 1);
            w->scr[t].touched = xmalloc(sizeof(int32_t) * (size_t)cap);
            w->scr[t].ex = xmalloc(sizeof(float) * (size_t)cap);
        }
        w->n_threads = threads;
        w->pos_same = xrealloc(w->pos_same, sizeof(int32_t) * (size_t)cap);
        w->pos_next = xrealloc(w->pos_next, sizeof(int32_t) * (size_t)cap);
        w->cap_set = cap;
    }
    if (z->nnz > w->cap_nnz) {
        w->u = xrealloc(w->u, sizeof(float) * (size_t)z->nnz);
        w->gu = xrealloc(w->gu, sizeof(float) * (size_t)z->nnz);
        w->cap_nnz = z->nnz;
    }
    if (z->n_rows > w->cap_tok) {
        w->norm = xrealloc(w->norm, sizeof(float) * (size_t)z->n_rows);
        w->cap_tok = z->n_rows;
    }
}

// Members are tokens first + (i / per_block) * block_stride + i % per_block
// for i < n (every layout's sets are arithmetic: one time step of every clip
// is a run of clip-major blocks).
static void tokset_build(TokSet *s, const SparseCodes *z, const float *u, int m, int n,
                         int per_block, int block_stride, int first) {
    s->n = n;
    s->tok = xrealloc(s->tok, sizeof(int32_t) * (size_t)n);
    s->col_ptr = xrealloc(s->col_ptr, sizeof(int64_t) * ((size_t)m + 1));
    for (int i = 0; i < n; i++) s->tok[i] = first + (i / per_block) * block_stride + i % per_block;
    memset(s->col_ptr, 0, sizeof(int64_t) * ((size_t)m + 1));
    int64_t nnz = 0;
    for (int i = 0; i < n; i++) {
        int r = s->tok[i];
        for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) s->col_ptr[z->idx[e] + 1]++;
        nnz += z->row_ptr[r + 1] - z->row_ptr[r];
    }
    for (int j = 0; j < m; j++) s->col_ptr[j + 1] += s->col_ptr[j];
    s->nnz = nnz;
    s->mem = xrealloc(s->mem, sizeof(int32_t) * (size_t)(nnz ? nnz : 1));
    s->u = xrealloc(s->u, sizeof(float) * (size_t)(nnz ? nnz : 1));
    s->ent = xrealloc(s->ent, sizeof(int64_t) * (size_t)(nnz ? nnz : 1));
    int64_t *next = xmalloc(sizeof(int64_t) * (size_t)m);
    memcpy(next, s->col_ptr, sizeof(int64_t) * (size_t)m);
    for (int i = 0; i < n; i++) {
        int r = s->tok[i];
        for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) {
            int64_t q = next[z->idx[e]]++;
            s->mem[q] = i;
            s->u[q] = u[e];
            s->ent[q] = e;
        }
    }
    free(next);
}

// exp(x) for x <= 0 (the logits are shifted by their maximum), in plain
// arithmetic the compiler vectorizes: x = k ln2 + r with |r| <= ln2/2, e^r by
// its degree-6 Taylor polynomial (relative error below 2e-7 there; float
// rounding adds about as much), times 2^k built in the exponent bits.
// Exactly 1 at 0 (an untouched candidate's term); below -87 it returns
// 2^-126 instead of a smaller number, nothing beside a denominator >= 1.
static inline float exp_nonpos(float x) {
    x = x > -87.0f ? x : -87.0f; // (fmaxf is a call that stops the vectorizer)
    const float k = (x * 1.44269504f + 12582912.0f) - 12582912.0f; // round to nearest
    const float r = (x - k * 0.693145752f) - k * 1.42860677e-6f;    // ln 2 in two parts
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = ((int32_t)k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// acc[c] = u_r . u_c for every member c of C sharing a latent with token r;
// returns how many were touched.
static inline int gather_dots(const SparseCodes *z, const float *u, int r, const TokSet *C, Scratch *sc) {
    int nt = 0;
    for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) {
        const float ue = u[e];
        const int j = z->idx[e];
        for (int64_t t = C->col_ptr[j]; t < C->col_ptr[j + 1]; t++) {
            const int c = C->mem[t];
            if (!sc->mark[c]) {
                sc->mark[c] = 1;
                sc->acc[c] = 0.0f;
                sc->touched[nt++] = c;
            }
            sc->acc[c] += ue * C->u[t];
        }
    }
    return nt;
}

// Drops member `self` from the touched set (it is not a candidate of itself):
// its acc becomes 0 so it adds nothing to the gradients. Returns the new count.
static inline int drop_self(Scratch *sc, int nt, int self) {
    if (self < 0 || !sc->mark[self]) return nt;
    sc->acc[self] = 0.0f;
    for (int x = 0; x < nt; x++)
        if (sc->touched[x] == self) {
            sc->touched[x] = sc->touched[nt - 1];
            sc->touched[nt - 1] = self; // still marked, so it is cleared with the rest
            return nt - 1;
        }
    return nt;
}

// The shifted exponentials of a row of n dot products: v[i] becomes
// exp(v[i] inv_tau - mx), mx = inv_tau max(0, max v) (0 at least: the logit
// of a candidate sharing no latent), so no temperature overflows them;
// returns Z, their sum plus n_zero exp(-mx) for n_zero candidates of logit 0
// not in v, and mx in *mx_out. Vector code (exp_nonpos); the sum in a loop of
// its own (in the one before it, a double sum is not vectorized).
static inline double exp_shifted(float *v, int n, float inv_tau, double n_zero, float *mx_out) {
    float mx = 0.0f;
#pragma omp simd reduction(max : mx)
    for (int i = 0; i < n; i++) mx = v[i] > mx ? v[i] : mx;
    mx *= inv_tau;
#pragma omp simd
    for (int i = 0; i < n; i++) v[i] = exp_nonpos(v[i] * inv_tau - mx);
    double Z = n_zero * exp_nonpos(-mx);
#pragma omp simd reduction(+ : Z)
    for (int i = 0; i < n; i++) Z += v[i];
    *mx_out = mx;
    return Z;
}

// One anchor's row: acc[c] = u_a . u_c over the touched set becomes
// g_ac = w/tau (softmax_ac - [c = q]); the untouched (logit 0) are counted.
// Returns l(a); *n_all: the touched count, self included (the marks to
// clear). Not inlined: inside the OpenMP region the compiler reloads sc's
// pointers in every loop and vectorizes none of them.
__attribute__((noinline)) static double anchor_row(const SparseCodes *z, const float *u, int r, const TokSet *C,
                                                   int q, int self, float inv_tau, float wt, Scratch *sc,
                                                   int *n_all) {
    *n_all = gather_dots(z, u, r, C, sc);
    const int nt = drop_self(sc, *n_all, self);
    float *acc = sc->acc, *ex = sc->ex;
    const int32_t *touched = sc->touched;
    const float s_q = sc->mark[q] ? acc[q] * inv_tau : 0.0f;
    for (int x = 0; x < nt; x++) ex[x] = acc[touched[x]];
    float mx;
    const double Z = exp_shifted(ex, nt, inv_tau, C->n - (self >= 0) - nt + PLANTED("nce_candidate"), &mx);
    const float g = (float)(1.0 / Z) * wt;
    for (int x = 0; x < nt; x++) acc[touched[x]] = ex[x] * g - (touched[x] == q ? wt : 0.0f);
    return mx + log(Z) - s_q;
}

// acc[c] += u_r . u_c for every member c of C sharing a latent with token r
// (acc zero beforehand: a dense row of the group's logits).
static inline void scatter_dots(const SparseCodes *z, const float *u, int r, const TokSet *C, float *acc) {
    for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) {
        const float ue = u[e];
        const int j = z->idx[e];
        const int32_t *mem = C->mem;
        const float *uc = C->u;
        for (int64_t t = C->col_ptr[j]; t < C->col_ptr[j + 1]; t++) acc[mem[t]] += ue * uc[t];
    }
}

// One anchor's row held densely: acc[c] = u_a . u_c for every candidate (0
// where none of a's latents is shared) becomes g_ac = w/tau (softmax_ac -
// [c = q]), self's 0; returns l(a). Not inlined, as anchor_row.
__attribute__((noinline)) static double anchor_dense(const SparseCodes *z, const float *u, int r, const TokSet *C,
                                                     int q, int self, float inv_tau, float wt, float *acc) {
    const int n = C->n;
    memset(acc, 0, sizeof(float) * (size_t)n);
    scatter_dots(z, u, r, C, acc);
    if (self >= 0) acc[self] = 0.0f;
    const float s_q = acc[q] * inv_tau;
    float mx;
    double Z = exp_shifted(acc, n, inv_tau, PLANTED("nce_candidate"), &mx);
    if (self >= 0) {
        Z -= acc[self];
        acc[self] = 0.0f;
    }
    const float g = (float)(1.0 / Z) * wt;
#pragma omp simd
    for (int c = 0; c < n; c++) acc[c] *= g;
    acc[q] -= wt;
    return mx + log(Z) - s_q;
}

// One pass over the anchors of a group. Per anchor a: the dot products with
// the candidates sharing a latent, Z_a, l(a) and g_ac (anchor_dense or
// anchor_row); then one more walk over the same lists adds g_ac u_c to the
// anchor's gradient and g_ac u_a to the candidate's, the latter in the
// thread's buffer gc (indexed like C's lists), summed into gu after the loop
// in thread order. The static schedule makes the result the same on every
// run with the same thread count.
//
// Dense or touched-set rows: which costs less depends on how many list
// entries an anchor walks (`walk`) against how many candidates there are.
// On bench_step's clips an anchor walks 0.95 entries per candidate and
// shares a latent with half of them; tracking that touched set mispredicts
// a branch per entry, and a dense row (zeroed, scattered into, then four
// vector passes) took the temporal step's InfoNCE from 260 to 125 ms. At
// 0.05 entries per candidate (k = 12) the touched set was 1.5x faster, at
// 0.08 they were even (Zen 4, 2 threads, 2048 candidates): rows are dense
// from walk >= n_C / DENSE_RATIO on. The choice is per group, from the data;
// both give the same loss and gradients to float rounding.
#define DENSE_RATIO 12
static void run_group(InfoNceWork *w, const Group *g, const SparseCodes *z, float inv_tau) {
    const TokSet *A = g->A, *C = g->C;
    const float *u = w->u;
    float *gu = w->gu;
    const float wt = g->w * inv_tau;
    const int nthreads = w->n_threads;
    for (int th = 0; th < nthreads; th++) {
        Scratch *sc = &w->scr[th];
        if (C->nnz > sc->cap_gc) {
            sc->gc = xrealloc(sc->gc, sizeof(float) * (size_t)C->nnz);
            sc->cap_gc = C->nnz;
        }
        memset(sc->gc, 0, sizeof(float) * (size_t)C->nnz);
    }
    // (over every member of A, not only this rank's anchors: every rank of a
    // data-parallel job makes the same choice)
    int64_t walk = 0;
    for (int i = 0; i < A->n; i++) {
        const int r = A->tok[i];
        for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++)
            walk += C->col_ptr[z->idx[e] + 1] - C->col_ptr[z->idx[e]];
    }
    const int dense = DENSE_RATIO * walk >= (int64_t)A->n * C->n;
    w->dense_groups += dense;
    double loss = 0.0;
#pragma omp parallel num_threads(nthreads) reduction(+ : loss)
    {
        Scratch *sc = &w->scr[thread_id()];
#pragma omp for schedule(static, 16)
        for (int i = 0; i < A->n; i++) {
            const int q = g->pos[i];
            if (q < 0) continue;
            const int self = g->self_excluded && !PLANTED("nce_self") ? i : -1;
            const int r = A->tok[i];
            int n_all = 0;
            loss += dense ? anchor_dense(z, u, r, C, q, self, inv_tau, wt, sc->acc)
                          : anchor_row(z, u, r, C, q, self, inv_tau, wt, sc, &n_all);
            const float *gac = sc->acc;
            for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) {
                const int j = z->idx[e];
                const float ua = u[e];
                float s = 0.0f;
                float *gc = sc->gc;
#pragma omp simd reduction(+ : s)
                for (int64_t t = C->col_ptr[j]; t < C->col_ptr[j + 1]; t++) {
                    const float ga = gac[C->mem[t]];
                    s += ga * C->u[t];
                    gc[t] += ga * ua;
                }
                gu[e] += s;
            }
            for (int x = 0; x < n_all; x++) sc->mark[sc->touched[x]] = 0;
        }
        // candidates' gradients: each position of C's lists is one entry of z
#pragma omp for schedule(static)
        for (int64_t t = 0; t < C->nnz; t++) {
            float s = 0.0f;
            for (int th = 0; th < nthreads; th++) s += w->scr[th].gc[t];
            gu[C->ent[t]] += s;
        }
    }
    *g->loss += loss;
}

// The member range [lo, hi) of a group's anchor index that this rank owns
// keeps its positives; the others are not anchors here (their owners take
// them). pos_*: the positives of every member.
static void own_anchors(int32_t *pos, int n, int lo, int hi) {
    for (int i = 0; i < n; i++)
        if (i < lo || i >= hi) pos[i] = -1;
}

void infonce_step(const SaeConfig *cfg, const SaeBatch *b, SparseCodes *z, const SaeReduce *red,
                  InfoNceWork *w, InfoNceLoss *out) {
    memset(out, 0, sizeof(*out));
    w->dense_groups = 0;
    if (cfg->contrast == CTR_NONE) return;
    const int m = cfg->m;
    const float inv_tau = 1.0f / cfg->tau;
    // Z: the codes of the whole batch; this rank's rows start at row0, its
    // entries at ent0 (a single process: Z is z itself).
    const SparseCodes *Z = z;
    int64_t row0 = 0, ent0 = 0;
    if (red && red->gather_codes) {
        if (!w->all.row_ptr) codes_alloc(&w->all, 0, 0);
        red->gather_codes(red->ctx, z, &w->all, &row0, &ent0);
        Z = &w->all;
    }
    const int per_unit = cfg->contrast == CTR_RASTER ? 2 : b->T * b->H * b->W; // tokens per pair / clip
    if (per_unit <= 0 || Z->n_rows % per_unit) die("InfoNCE: the ranks' batches are not whole clips or pairs");
    const int units = Z->n_rows / per_unit, unit0 = (int)(row0 / per_unit), my_units = z->n_rows / per_unit;
    int n_sets, max_set;
    if (cfg->contrast == CTR_RASTER) {
        n_sets = 2;
        max_set = units;
    } else {
        if (b->T < 2) // jobs_check refuses such jobs before training: this is an assertion
            die("the temporal loss needs whole clips of at least 2 steps; this batch has %d clips of T = %d", b->clips,
                b->T);
        n_sets = b->T;
        max_set = units * b->H * b->W;
    }
    work_reserve(w, n_sets, max_set, Z);

    // u = z / max(||z||, 1e-8), per entry; gu = dL/du
#pragma omp parallel for schedule(static)
    for (int r = 0; r < Z->n_rows; r++) {
        double s = 0.0;
        for (int64_t e = Z->row_ptr[r]; e < Z->row_ptr[r + 1]; e++) s += (double)Z->val[e] * Z->val[e];
        float nrm = (float)sqrt(s);
        if (nrm < 1e-8f) nrm = 1e-8f;
        w->norm[r] = nrm;
        for (int64_t e = Z->row_ptr[r]; e < Z->row_ptr[r + 1]; e++) {
            w->u[e] = Z->val[e] / nrm;
            w->gu[e] = 0.0f;
        }
    }

    double sums[3] = {0.0, 0.0, 0.0}; // temp, spat, rast: sums of l over this rank's anchors
    double n_temp = 0, n_spat = 0, n_rast = 0;
    if (cfg->contrast == CTR_RASTER) {
        const int P = units;
        // set 0, the anchors: tokens 2i; set 1, their partners: tokens 2i+1
#pragma omp parallel for schedule(static, 1)
        for (int t = 0; t < 2; t++) tokset_build(&w->sets[t], Z, w->u, m, P, 1, 2, t);
        for (int i = 0; i < P; i++) w->pos_same[i] = i;
        own_anchors(w->pos_same, P, unit0, unit0 + my_units);
        n_rast = P;
        Group g = {&w->sets[0], &w->sets[1], w->pos_same, 0, (float)(cfg->lambda_r / n_rast), &sums[2]};
        run_group(w, &g, Z, inv_tau);
    } else {
        const int B = units, T = b->T, W = b->W, N = b->H * b->W, n = B * N;
        // set t: the tokens of step t of every clip, member i = clip * N + p
#pragma omp parallel for schedule(dynamic, 1)
        for (int t = 0; t < T; t++) tokset_build(&w->sets[t], Z, w->u, m, n, N, T * N, t * N);
        for (int i = 0; i < n; i++) {
            w->pos_same[i] = i;
            w->pos_next[i] = (i % N) % W < W - 1 ? i + 1 : -1;
        }
        own_anchors(w->pos_same, n, unit0 * N, (unit0 + my_units) * N);
        own_anchors(w->pos_next, n, unit0 * N, (unit0 + my_units) * N);
        n_temp = (double)B * (T - 1) * N;
        n_spat = (double)B * T * b->H * (W - 1);
        for (int t = 0; t + 1 < T; t++) {
            Group g = {&w->sets[t], &w->sets[t + 1], w->pos_same, 0, (float)(cfg->lambda_t / n_temp), &sums[0]};
            run_group(w, &g, Z, inv_tau);
        }
        if (cfg->contrast == CTR_SEPARATE && W > 1) {
            for (int t = 0; t < T; t++) {
                Group g = {&w->sets[t], &w->sets[t], w->pos_next, 1, (float)(cfg->lambda_s / n_spat), &sums[1]};
                run_group(w, &g, Z, inv_tau);
            }
        }
    }
    if (red) red->sum_f64(red->ctx, sums, 3);
    out->temp = n_temp > 0 ? sums[0] / n_temp : 0.0;
    out->spat = n_spat > 0 ? sums[1] / n_spat : 0.0;
    out->rast = n_rast > 0 ? sums[2] / n_rast : 0.0;

    // candidates' gradients back to their owners: this rank's entries of gu,
    // summed over the ranks
    const float *u = w->u + ent0;
    const float *gu = w->gu + ent0;
    if (Z != z) {
        if (z->nnz > w->cap_mine) {
            w->gu_mine = xrealloc(w->gu_mine, sizeof(float) * (size_t)z->nnz);
            w->cap_mine = z->nnz;
        }
        red->return_grad(red->ctx, w->gu, w->gu_mine, z->nnz);
        gu = w->gu_mine;
    }
    const float *norm = w->norm + row0;

    // through the normalization: dL/dz = (gu - u (u . gu)) / ||z||
    // (or gu / 1e-8 where the norm is clamped)
#pragma omp parallel for schedule(static)
    for (int r = 0; r < z->n_rows; r++) {
        float nrm = norm[r];
        double dot = 0.0;
        int clamped = nrm <= 1e-8f || PLANTED("nce_norm");
        if (!clamped)
            for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) dot += (double)u[e] * gu[e];
        for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++)
            z->grad[e] += (float)((gu[e] - (clamped ? 0.0 : u[e] * dot)) / nrm);
    }
}
