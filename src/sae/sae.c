// sae.c — configuration (a variant's row of the table in variants.h, and the
// defaults of SPEC §1), parameters and the training step of the SAE (sae.h).
// The step, in order:
//   1. batch statistics: mean token and the FVU denominator (global);
//   2. encode in chunks: pre = (x - b_dec) W_enc^T + b_enc by sgemm (or by
//      the bf16 product of gemm_bf16.h: train.gemm: bf16), then per
//      token the selection (TopK / sparsemax / entmax) and AuxK's dead-latent
//      TopK, straight into CSR codes; BatchTopK keeps each chunk's
//      candidates (select.h) and selects against the global k*B-th largest
//      value once every chunk is in;
//   3. per token, fused: decode over the kept latents (xhat, and xhat_h for
//      Matryoshka), the loss terms, dL/dxhat, and dL/dz of every kept entry
//      (decoder row . dL/dxhat) while the token's decoder rows are in cache;
//      the same for AuxK (ehat) once its global denominator is known;
//   4. the InfoNCE terms on dL/dz;
//   5. through the selection to dL/dpre;
//   6. parameter gradients latent by latent over the latent-major index:
//      dD_j, dW_enc_j, db_enc_j; then db_dec.
#include "stsae/sae/sae.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/sae/gemm_bf16.h"
#include "stsae/sae/infonce.h"
#include "stsae/sae/select.h"
#include "stsae/sae/variants.h"

enum { GRAD_BLOCK_TOKENS = 1024 }; // tokens per block of the latent-major gradient pass (sae.h)

// Every rule that depends on the variant is its row of the table (variants.h).
int sae_config_init(SaeConfig *cfg, const char *variant, int d, int m) {
    const SaeVariant *v = sae_variant_find(variant);
    memset(cfg, 0, sizeof(*cfg));
    if (!v) return -1;
    cfg->d = d;
    cfg->m = m;
    cfg->k = SAE_DEFAULT_K;
    cfg->k_aux = v->auxk ? SAE_DEFAULT_K_AUX : 0;
    cfg->alpha = SAE_DEFAULT_ALPHA;
    cfg->beta = SAE_DEFAULT_BETA;
    cfg->tau = SAE_DEFAULT_TAU;
    cfg->temp_s = SAE_DEFAULT_T_S;
    cfg->select = v->select;
    cfg->contrast = sae_variant_contrast(v, 0.0); // an optional term waits for lambda_t: sae_config_resolve
    cfg->frozen_decoder = v->frozen_decoder;
    if (v->matryoshka) cfg->m_high = (int)floor(SAE_DEFAULT_HIGH_FRAC * m + 0.5);
    return 0;
}

void sae_config_resolve(SaeConfig *cfg) {
    const SaeVariant *v = sae_variant_of(cfg);
    if (v) cfg->contrast = sae_variant_contrast(v, cfg->lambda_t);
}

const char *sae_variant_name(const SaeConfig *cfg) {
    const SaeVariant *v = sae_variant_of(cfg);
    return v ? v->name : NULL;
}

size_t sae_num_params(const SaeConfig *cfg) {
    size_t d = (size_t)cfg->d, m = (size_t)cfg->m;
    return m * d + m + m * d + d;
}

void sae_carve(float *flat, const SaeConfig *cfg, SaeTensors *t) {
    size_t d = (size_t)cfg->d, m = (size_t)cfg->m;
    t->W_enc = flat;
    t->b_enc = t->W_enc + m * d;
    t->D = t->b_enc + m;
    t->b_dec = t->D + m * d;
}

void sae_init(const SaeConfig *cfg, SaeTensors *p, uint64_t seed, const float *mean) {
    const int d = cfg->d, m = cfg->m;
    uint64_t s = seed * 0x2545F4914F6CDD1Dull + 1;
    for (int j = 0; j < m; j++) {
        float *row = p->D + (size_t)j * d;
        double nrm = 0.0;
        for (int i = 0; i < d; i++) {
            row[i] = (float)rng_normal(&s);
            nrm += (double)row[i] * row[i];
        }
        float inv = (float)(1.0 / sqrt(nrm));
        for (int i = 0; i < d; i++) row[i] *= inv;
    }
    memcpy(p->W_enc, p->D, sizeof(float) * (size_t)m * d);
    memset(p->b_enc, 0, sizeof(float) * (size_t)m);
    for (int i = 0; i < d; i++) p->b_dec[i] = mean ? mean[i] : 0.0f;
}

SaeBatch sae_batch_tokens(int n) { return (SaeBatch){.n_tok = n}; }
SaeBatch sae_batch_clips(int clips, int T, int H, int W) {
    return (SaeBatch){.n_tok = clips * T * H * W, .clips = clips, .T = T, .H = H, .W = W};
}
SaeBatch sae_batch_pairs(int pairs) { return (SaeBatch){.n_tok = 2 * pairs, .pairs = pairs}; }

struct SaeWork {
    int d, m;
    int max_tok, rows_pre;   // rows_pre: rows of the pre buffer (a chunk)
    int chunk, grad_block;   // tokens per encoder GEMM (<= rows_pre) and per gradient block
    float *pre;              // [rows_pre, m]
    float *xc;               // [rows_pre, d]
    float *simplex_scratch;  // [threads, m]
    float *tau_row;          // [max_tok] sparsemax/entmax thresholds
    int32_t *dead_list;      // [m]
    SparseCodes z, aux;
    LatentIndex lz, laux;
    float *g, *gsum, *gaux;  // [max_tok, d]: dL/dxhat, + dL/dxhat_h, AuxK residual then dL/dehat
    double *row_sq, *row_sqh; // [max_tok] per-token squared distances
    double *gb;               // [m] db_enc accumulated over token blocks
    int64_t *cur, *cur_aux;   // [m] per-latent cursors into the latent indices
    // AuxK as dense products over the n_dead dead columns (aux_dense_*)
    float *za_d, *pa_d;       // [n, n_dead] aux codes, then dL/dpre on them
    float *eh_d;              // [n, d] ehat
    float *dd, *g1, *g2;      // [n_dead, d] dead decoder rows; their dD and dW_enc
    double *gbd;              // [n_dead] their db_enc
    int32_t *dead_pos;        // [m] column of a dead latent, -1 otherwise
    size_t cap_nd;            // n * n_dead allocated in za_d, pa_d
    int cap_eh, cap_dead;     // rows allocated in eh_d; dead rows in dd, g1, g2, gbd
    InfoNceWork *nce;
    BatchCands cands;           // BatchTopK's candidates, chunk by chunk
    int64_t batch_redo;         // BatchTopK: rows (of all ranks) encoded again in the last step
    GemmBf16 *bf16;             // train.gemm: bf16 (NULL: fp32)
    double phase[SAE_N_PHASES]; // the last step's seconds per phase
};

const char *const sae_phase_names[SAE_N_PHASES] = {"stats",    "gemm",  "select", "decode", "auxk",
                                                   "backward", "index", "grads",  "b_dec"};

const double *sae_step_phases(const SaeWork *w) { return w->phase; }

int64_t sae_step_batch_redo(const SaeWork *w) { return w->batch_redo; }

// Adds the time since *t to phase ph and restarts the clock.
static void phase_mark(SaeWork *w, SaePhase ph, double *t) {
    const double now = wall_time();
    w->phase[ph] += now - *t;
    *t = now;
}

SaeWork *sae_work_create(const SaeConfig *cfg, int max_tok) {
    const size_t d = (size_t)cfg->d, m = (size_t)cfg->m, n = (size_t)max_tok;
    SaeWork *w = xcalloc(1, sizeof(SaeWork));
    const int threads = max_threads();
    w->d = cfg->d;
    w->m = cfg->m;
    w->max_tok = max_tok;
    w->rows_pre = max_tok < SAE_CHUNK_TOKENS ? max_tok : SAE_CHUNK_TOKENS;
    w->chunk = w->rows_pre;
    w->grad_block = GRAD_BLOCK_TOKENS;
    w->pre = xmalloc(sizeof(float) * (size_t)w->rows_pre * m);
    w->xc = xmalloc(sizeof(float) * (size_t)w->rows_pre * d);
    w->simplex_scratch = xmalloc(sizeof(float) * (size_t)threads * m);
    w->tau_row = xmalloc(sizeof(float) * n);
    w->dead_list = xmalloc(sizeof(int32_t) * m);
    int64_t per_tok = cfg->select == SEL_TOPK ? cfg->k : 2 * cfg->k;
    codes_alloc(&w->z, max_tok, (int64_t)n * per_tok);
    codes_alloc(&w->aux, max_tok, cfg->k_aux > 0 ? (int64_t)n * cfg->k_aux : 1);
    w->gb = xmalloc(sizeof(double) * m);
    w->dead_pos = xmalloc(sizeof(int32_t) * m);
    w->cur = xmalloc(sizeof(int64_t) * m);
    w->cur_aux = xmalloc(sizeof(int64_t) * m);
    w->row_sq = xmalloc(sizeof(double) * n);
    w->row_sqh = xmalloc(sizeof(double) * n);
    w->g = xmalloc(sizeof(float) * n * d);
    w->gsum = cfg->m_high > 0 ? xmalloc(sizeof(float) * n * d) : NULL;
    w->gaux = cfg->k_aux > 0 ? xmalloc(sizeof(float) * n * d) : NULL;
    w->nce = cfg->contrast != CTR_NONE ? infonce_work_create() : NULL;
    return w;
}

void sae_work_free(SaeWork *w) {
    if (!w) return;
    free(w->pre);
    free(w->xc);
    free(w->simplex_scratch);
    free(w->tau_row);
    free(w->dead_list);
    codes_free(&w->z);
    codes_free(&w->aux);
    latent_index_free(&w->lz);
    latent_index_free(&w->laux);
    free(w->gb);
    free(w->dead_pos);
    free(w->za_d);
    free(w->pa_d);
    free(w->eh_d);
    free(w->dd);
    free(w->g1);
    free(w->g2);
    free(w->gbd);
    free(w->cur);
    free(w->cur_aux);
    free(w->row_sq);
    free(w->row_sqh);
    free(w->g);
    free(w->gsum);
    free(w->gaux);
    infonce_work_free(w->nce);
    gemm_bf16_free(w->bf16);
    batch_cands_free(&w->cands);
    free(w);
}

const SparseCodes *sae_last_codes(const SaeWork *w) { return &w->z; }

void sae_work_set_math(SaeWork *w, SaeGemmMath math) {
    if (math == SAE_GEMM_TF32) die("the encoder GEMM's TF32 math is for device: cuda only (CPU: fp32 or bf16)");
    gemm_bf16_free(w->bf16);
    w->bf16 = math == SAE_GEMM_BF16 ? gemm_bf16_create(w->d, w->m) : NULL;
}

void sae_work_set_blocks(SaeWork *w, int chunk_tokens, int grad_block_tokens) {
    if (chunk_tokens >= 1 && chunk_tokens <= w->rows_pre) w->chunk = chunk_tokens;
    if (grad_block_tokens >= 1) w->grad_block = grad_block_tokens;
}

// y += a x
static inline void axpy(int d, float a, const float *restrict x, float *restrict y) {
    for (int i = 0; i < d; i++) y[i] += a * x[i];
}

// w->pre[r] = (x[r0 + r] - b_dec) W_enc^T + b_enc for r < n. TopK adds the
// bias as it reads the row (pre is left without it: no row is written
// back), the others in a pass of their own here. The product is fp32's
// sgemm, or bf16's (bf16 non-NULL: its weights rounded from this W_enc).
static void encode_rows(const SaeConfig *cfg, const SaeTensors *p, const float *x, int r0, int n,
                        GemmBf16 *bf16, SaeWork *w) {
    const int d = cfg->d, m = cfg->m;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)(r0 + r) * d;
        float *xc = w->xc + (size_t)r * d;
        for (int i = 0; i < d; i++) xc[i] = xr[i] - p->b_dec[i];
    }
    if (bf16) {
        gemm_bf16_apply(bf16, w->xc, n, w->pre);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, d, 1.0f, w->xc, d, p->W_enc, d, 0.0f,
                    w->pre, m);
    }
    if (cfg->select != SEL_TOPK) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n; r++) axpy(m, 1.0f, p->b_enc, w->pre + (size_t)r * m);
    }
}

// Removes the gaps left by rows that kept fewer than `width` entries of their
// fixed slots [r * width, r * width + width), rows [r0, r0 + n) of c, whose
// entries start at c->row_ptr[r0]; counts[r] holds each row's count.
static void compact_rows(SparseCodes *c, int r0, int n, int width, const int *counts) {
    int64_t base = c->row_ptr[r0], at = base;
    for (int r = 0; r < n; r++) {
        int64_t from = base + (int64_t)r * width;
        if (from != at) {
            memmove(c->idx + at, c->idx + from, sizeof(int32_t) * (size_t)counts[r]);
            memmove(c->val + at, c->val + from, sizeof(float) * (size_t)counts[r]);
        }
        at += counts[r];
        c->row_ptr[r0 + r + 1] = at;
    }
    c->nnz = at;
}

// Per-row selection of a chunk of pre-activations (rows [r0, r0 + n) of the
// batch, held in w->pre) into z, and AuxK's codes into w->aux.
static void select_rows(const SaeConfig *cfg, const float *b_enc, int r0, int n, SparseCodes *z,
                        int n_dead, int k_aux_eff, SaeWork *w, int *counts) {
    const int m = cfg->m;
    float *pre = w->pre;
    if (cfg->select == SEL_TOPK) {
        codes_reserve(z, z->row_ptr[r0] + (int64_t)n * cfg->k);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n; r++) {
            int64_t e = z->row_ptr[r0] + (int64_t)r * cfg->k;
            counts[r] = topk_row(pre + (size_t)r * m, b_enc, m, cfg->k, z->idx + e, z->val + e);
        }
        compact_rows(z, r0, n, cfg->k, counts);
    } else if (cfg->select == SEL_SPARSEMAX || cfg->select == SEL_ENTMAX15) {
        const float inv_T = 1.0f / cfg->temp_s;
        const int sm = cfg->select == SEL_SPARSEMAX;
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n; r++) {
            const float *pr = pre + (size_t)r * m;
            float *scr = w->simplex_scratch + (size_t)thread_id() * m;
            float tau = sm ? sparsemax_threshold(pr, m, inv_T, scr) : entmax15_threshold(pr, m, inv_T, scr);
            w->tau_row[r0 + r] = tau;
            counts[r] = sm ? sparsemax_fill(pr, m, inv_T, tau, NULL, NULL)
                           : entmax15_fill(pr, m, inv_T, tau, NULL, NULL);
        }
        codes_set_rows(z, r0, n, counts);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n; r++) {
            const float *pr = pre + (size_t)r * m;
            int64_t e = z->row_ptr[r0 + r];
            if (sm) sparsemax_fill(pr, m, inv_T, w->tau_row[r0 + r], z->idx + e, z->val + e);
            else entmax15_fill(pr, m, inv_T, w->tau_row[r0 + r], z->idx + e, z->val + e);
        }
    }
    if (k_aux_eff > 0) {
        SparseCodes *xa = &w->aux;
        const float *aux_bias = cfg->select == SEL_TOPK ? b_enc : NULL; // (the others' pre holds it)
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n; r++) {
            int64_t e = xa->row_ptr[r0] + (int64_t)r * k_aux_eff;
            counts[r] = topk_row_subset(pre + (size_t)r * m, aux_bias, w->dead_list, n_dead, k_aux_eff,
                                        xa->idx + e, xa->val + e);
        }
        compact_rows(xa, r0, n, k_aux_eff, counts);
    }
}

// Appends to z rows [r0, r0 + n) keeping the entries of pre (one row per
// token) with a > 0 and a >= v (inclusive) or a > v. Both passes compare
// KEEP_GROUP entries at once (vector code); the second looks at a group one
// entry at a time only when one of them is kept (about k per row of m).
enum { KEEP_GROUP = 16 };
static void keep_above(const float *pre, int n, int m, float v, int inclusive, SparseCodes *z, int r0,
                       int *counts) {
    // a > 0 and a >= v  <=>  a >= lo; a > 0 and a > v  <=>  a > lo, with lo = max(v, 0) and
    // for the inclusive test with v <= 0 the strict a > 0 instead
    const float lo = v > 0.0f ? v : 0.0f;
    const int ge = inclusive && v > 0.0f;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        const float *pr = pre + (size_t)r * m;
        int c = 0;
#pragma omp simd reduction(+ : c)
        for (int j = 0; j < m; j++) c += ge ? pr[j] >= lo : pr[j] > lo;
        counts[r] = c;
    }
    codes_set_rows(z, r0, n, counts);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        const float *pr = pre + (size_t)r * m;
        int64_t e = z->row_ptr[r0 + r];
        int j = 0;
        for (; j < m; j += KEEP_GROUP) {
            const int end = m - j < KEEP_GROUP ? m : j + KEEP_GROUP;
            int hit = 0;
#pragma omp simd reduction(| : hit)
            for (int u = j; u < end; u++) hit |= ge ? pr[u] >= lo : pr[u] > lo;
            if (!hit) continue;
            for (int u = j; u < end; u++)
                if (ge ? pr[u] >= lo : pr[u] > lo) {
                    z->idx[e] = u;
                    z->val[e++] = pr[u];
                }
        }
    }
}

// BatchTopK, once every chunk's rows are in w->cands: keep a >= v, the
// global (k * tokens)-th largest activation. The rows whose bound is above
// v (they may have left out entries >= v) are encoded again, a chunk of
// them at a time, and v is found again over the new candidates
// (batch_cands_redo). Returns v.
static float select_batch(const SaeConfig *cfg, const SaeTensors *p, const float *x, int n, const SaeReduce *red,
                          SaeWork *w, int *counts) {
    const int d = cfg->d, m = cfg->m;
    BatchCands *c = &w->cands;
    int64_t n_glob = n;
    if (red) red->sum_i64(red->ctx, &n_glob, 1);
    const int64_t kk = (int64_t)cfg->k * n_glob;
    void (*sum)(void *, int64_t *, int) = red ? red->sum_i64 : NULL;
    void *ctx = red ? red->ctx : NULL;
    float v = batch_cands_kth(c, kk, sum, ctx);
    int64_t *redo = xmalloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    int64_t nr = 0;
    for (int r = 0; r < n; r++)
        if (c->bound[r] > v) redo[nr++] = r;
    int64_t nr_glob = nr;
    if (red) red->sum_i64(red->ctx, &nr_glob, 1);
    w->batch_redo = nr_glob;
    if (nr_glob > 0) {
        const float v0 = v;
        float *xg = xmalloc(sizeof(float) * (size_t)w->rows_pre * d);
        for (int64_t q0 = 0; q0 < nr; q0 += w->rows_pre) {
            const int nq = nr - q0 < w->rows_pre ? (int)(nr - q0) : w->rows_pre;
            for (int q = 0; q < nq; q++)
                memcpy(xg + (size_t)q * d, x + (size_t)redo[q0 + q] * d, sizeof(float) * (size_t)d);
            encode_rows(cfg, p, xg, 0, nq, w->bf16, w);
            batch_cands_redo(c, redo + q0, nq, w->pre, m, v0);
        }
        free(xg);
        v = batch_cands_kth(c, kk, sum, ctx);
    }
    free(redo);
    if (PLANTED("batchtopk_strict")) v = nextafterf(v, INFINITY);
    // every entry >= v (> 0) is a candidate: no pass over pre (a zero is a
    // place left over by batch_cands_redo)
    SparseCodes *z = &w->z;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        int k = 0;
        for (int64_t q = c->cnt[r]; q < c->cnt[r + 1]; q++) k += c->cand[q] >= v && c->cand[q] > 0.0f;
        counts[r] = k;
    }
    codes_set_rows(z, 0, n, counts);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        int64_t e = z->row_ptr[r];
        for (int64_t q = c->cnt[r]; q < c->cnt[r + 1]; q++)
            if (c->cand[q] >= v && c->cand[q] > 0.0f) {
                z->idx[e] = c->cand_idx[q];
                z->val[e++] = c->cand[q];
            }
    }
    return v;
}

static inline float dot(int d, const float *restrict a, const float *restrict b) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < d; i++) s += a[i] * b[i];
    return s;
}

static inline double sq_dist(int d, const float *restrict a, const float *restrict b) {
    double t = 0.0;
#pragma omp simd reduction(+ : t)
    for (int i = 0; i < d; i++) {
        double q = (double)a[i] - b[i];
        t += q * q;
    }
    return t;
}

// Sum of per-row values in row order: the same bits whatever the thread count.
static double sum_rows(const double *v, int n) {
    double s = 0.0;
    for (int r = 0; r < n; r++) s += v[r];
    return s;
}

// rows[r] = ||a_r - b||^2 for one fixed row b
static void sq_dist_rows(const float *a, const float *b, int n, int d, double *rows) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) rows[r] = sq_dist(d, a + (size_t)r * d, b);
}

// y += a0 x0 + a1 x1 + a2 x2 + a3 x3, added in that order in each column:
// the same sums as four axpy calls, with one load and one store of y per
// four rows instead of per row.
static inline void axpy4(int d, const float *a, const float *restrict x0, const float *restrict x1,
                         const float *restrict x2, const float *restrict x3, float *restrict y) {
    for (int i = 0; i < d; i++) y[i] = (((y[i] + a[0] * x0[i]) + a[1] * x1[i]) + a[2] * x2[i]) + a[3] * x3[i];
}

// Rows waiting to be added to one sum y, four a sweep (axpy4): batch_add
// queues a val * row, batch_flush adds what is left one row at a time. The
// additions in each column are in the order the rows were queued.
typedef struct {
    const float *row[4];
    float a[4];
    int n;
} RowBatch;

static inline void batch_add(RowBatch *b, int d, float a, const float *row, float *y) {
    b->row[b->n] = row;
    b->a[b->n++] = a;
    if (b->n == 4) {
        axpy4(d, b->a, b->row[0], b->row[1], b->row[2], b->row[3], y);
        b->n = 0;
    }
}

static inline void batch_flush(RowBatch *b, int d, float *y) {
    for (int u = 0; u < b->n; u++) axpy(d, b->a[u], b->row[u], y);
    b->n = 0;
}

// y += sum of val[q] D_idx[q] over the entries q < cnt whose latent is below
// mh (lo) or at or above it (!lo), in the entries' order
static void add_rows(const int32_t *idx, const float *val, int cnt, const float *D, int d, int mh, int lo,
                     float *y) {
    RowBatch b = {.n = 0};
    for (int q = 0; q < cnt; q++)
        if ((idx[q] < mh) == lo) batch_add(&b, d, val[q], D + (size_t)idx[q] * d, y);
    batch_flush(&b, d, y);
}

// grad[q] = D_idx[q] . (idx[q] < mh ? gh : g), four rows a sweep: four
// independent sums in flight instead of one chain of dependent additions
static void sparse_dots(const int32_t *idx, int cnt, const float *D, int d, int mh, const float *gh,
                        const float *g, float *grad) {
    int q = 0;
    for (; q + 4 <= cnt; q += 4) {
        const float *restrict r0 = D + (size_t)idx[q] * d, *restrict r1 = D + (size_t)idx[q + 1] * d;
        const float *restrict r2 = D + (size_t)idx[q + 2] * d, *restrict r3 = D + (size_t)idx[q + 3] * d;
        const float *restrict v0 = idx[q] < mh ? gh : g, *restrict v1 = idx[q + 1] < mh ? gh : g;
        const float *restrict v2 = idx[q + 2] < mh ? gh : g, *restrict v3 = idx[q + 3] < mh ? gh : g;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int i = 0; i < d; i++) {
            s0 += r0[i] * v0[i];
            s1 += r1[i] * v1[i];
            s2 += r2[i] * v2[i];
            s3 += r3[i] * v3[i];
        }
        grad[q] = s0;
        grad[q + 1] = s1;
        grad[q + 2] = s2;
        grad[q + 3] = s3;
    }
    for (; q < cnt; q++) grad[q] = dot(d, D + (size_t)idx[q] * d, idx[q] < mh ? gh : g);
}

// The reconstruction losses and their gradients, one token at a time so that
// the token's decoder rows are read once from memory and then reused from
// cache. For token r, with xhat = b_dec + sum z_j D_j and xhat_h its part over
// j < m_high:
//   g[r]    = gs (xhat - x)          (dL_rec/dxhat)
//   gsum[r] = g[r] + gsh (xhat_h - x) (adds dL_high/dxhat_h; Matryoshka only)
//   e[r]    = x - xhat                (AuxK's residual; e may be NULL)
//   sq[r] = ||x - xhat||^2, sqh[r] = ||x - xhat_h||^2
//   z->grad of each entry = D_j . (gsum[r] for j < m_high, else g[r])
static void decode_fused(const SparseCodes *z, const float *D, const float *b_dec, const float *x, int n,
                         int d, int mh, float gs, float gsh, float *g, float *gsum, float *e, double *sq,
                         double *sqh) {
#pragma omp parallel
    {
        float *xh = xmalloc(sizeof(float) * 2 * (size_t)d), *xhh = xh + d;
#pragma omp for schedule(static)
        for (int r = 0; r < n; r++) {
            const float *xr = x + (size_t)r * d;
            float *gr = g + (size_t)r * d;
            const int64_t q0 = z->row_ptr[r];
            const int cnt = (int)(z->row_ptr[r + 1] - q0);
            memset(xh, 0, sizeof(float) * (size_t)d);
            if (mh > 0) {
                add_rows(z->idx + q0, z->val + q0, cnt, D, d, mh, 1, xh);
                for (int i = 0; i < d; i++) xhh[i] = xh[i] + b_dec[i];
            }
            add_rows(z->idx + q0, z->val + q0, cnt, D, d, mh, 0, xh);
            for (int i = 0; i < d; i++) xh[i] += b_dec[i];
            sq[r] = sq_dist(d, xr, xh);
            for (int i = 0; i < d; i++) gr[i] = gs * (xh[i] - xr[i]);
            if (e)
                for (int i = 0; i < d; i++) e[(size_t)r * d + i] = xr[i] - xh[i];
            float *gh = gr;
            if (mh > 0) {
                gh = gsum + (size_t)r * d;
                sqh[r] = sq_dist(d, xr, xhh);
                for (int i = 0; i < d; i++) gh[i] = gr[i] + gsh * (xhh[i] - xr[i]);
            }
            sparse_dots(z->idx + q0, cnt, D, d, mh, gh, gr, z->grad + q0);
        }
        free(xh);
    }
}

// AuxK, one token at a time: ehat = sum zaux_j D_j (no bias),
// sq[r] = ||e - ehat||^2, then e[r] becomes dL/dehat = s (ehat - e) and each
// aux entry's grad D_j . that.
static void aux_fused(const SparseCodes *za, const float *D, int n, int d, float s, float *e, double *sq) {
#pragma omp parallel
    {
        float *eh = xmalloc(sizeof(float) * (size_t)d);
#pragma omp for schedule(static)
        for (int r = 0; r < n; r++) {
            float *er = e + (size_t)r * d;
            const int64_t q0 = za->row_ptr[r];
            int cnt = (int)(za->row_ptr[r + 1] - q0);
            if (PLANTED("aux_sparse_row") && cnt > 1) cnt--;
            memset(eh, 0, sizeof(float) * (size_t)d);
            add_rows(za->idx + q0, za->val + q0, cnt, D, d, 0, 0, eh);
            sq[r] = sq_dist(d, er, eh);
            for (int i = 0; i < d; i++) er[i] = s * (eh[i] - er[i]);
            sparse_dots(za->idx + q0, cnt, D, d, 0, er, er, za->grad + q0);
        }
        free(eh);
    }
}

// acc[i] = sum over rows of a[r][i], in double. Threads sum contiguous row
// blocks, combined in block order: the same result for the same thread count.
static void column_sums(const float *a, int n, int d, double *acc) {
    const int nt = max_threads();
    double *part = xcalloc((size_t)nt * d, sizeof(double));
#pragma omp parallel num_threads(nt)
    {
        double *mine = part + (size_t)thread_id() * d;
#pragma omp for schedule(static)
        for (int r = 0; r < n; r++) {
            const float *ar = a + (size_t)r * d;
#pragma omp simd
            for (int i = 0; i < d; i++) mine[i] += ar[i];
        }
    }
    for (int i = 0; i < d; i++) acc[i] = 0.0;
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < d; i++) acc[i] += part[(size_t)t * d + i];
    free(part);
}

// Global mean row of a (n local rows) into mean (float [d]); scratch double [d + 1].
static void global_mean(const float *a, int n, int d, const SaeReduce *red, double *acc, float *mean) {
    column_sums(a, n, d, acc);
    acc[d] = n;
    sae_sum_f64(red, acc, d + 1);
    for (int i = 0; i < d; i++) mean[i] = (float)(acc[i] / acc[d]);
}

// AuxK pays its way as dense products over the dead columns when few
// latents are dead: a token keeps k_aux of n_dead of them, so its aux code is
// dense there, and four sgemms of [n x n_dead x d] beat 4 gathers of k_aux
// decoder rows per token. Sparse (aux_fused + the latent pass) otherwise.
enum { AUX_DENSE_RATIO = 4 }; // dense while n_dead <= AUX_DENSE_RATIO * k_aux_eff

static void aux_dense_reserve(SaeWork *w, int n, int d, int nd) {
    if ((size_t)n * nd > w->cap_nd) {
        w->cap_nd = (size_t)n * nd;
        w->za_d = xrealloc(w->za_d, sizeof(float) * w->cap_nd);
        w->pa_d = xrealloc(w->pa_d, sizeof(float) * w->cap_nd);
    }
    if (n > w->cap_eh) {
        w->cap_eh = n;
        w->eh_d = xrealloc(w->eh_d, sizeof(float) * (size_t)n * d);
    }
    if (nd > w->cap_dead) {
        w->cap_dead = nd;
        w->dd = xrealloc(w->dd, sizeof(float) * (size_t)nd * d);
        w->g1 = xrealloc(w->g1, sizeof(float) * (size_t)nd * d);
        w->g2 = xrealloc(w->g2, sizeof(float) * (size_t)nd * d);
        w->gbd = xrealloc(w->gbd, sizeof(double) * (size_t)nd);
    }
}

// Dense AuxK forward and its gradient on the aux codes. In: e = x - xhat in
// e; out: sq[r] = ||e_r - ehat_r||^2, e = s (ehat - e) = dL/dehat, and pa_d =
// dL/dpre on the kept aux entries (0 elsewhere).
static void aux_dense_forward(const SaeConfig *cfg, const SaeTensors *p, SaeWork *w, int n, int nd,
                              float s, float *e, double *sq) {
    const int d = cfg->d;
    const SparseCodes *za = &w->aux;
    for (int j = 0; j < cfg->m; j++) w->dead_pos[j] = -1;
    for (int c = 0; c < nd; c++) {
        w->dead_pos[w->dead_list[c]] = c;
        memcpy(w->dd + (size_t)c * d, p->D + (size_t)w->dead_list[c] * d, sizeof(float) * (size_t)d);
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        float *zr = w->za_d + (size_t)r * nd;
        memset(zr, 0, sizeof(float) * (size_t)nd);
        for (int64_t q = za->row_ptr[r]; q < za->row_ptr[r + 1]; q++) zr[w->dead_pos[za->idx[q]]] = za->val[q];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, nd, 1.0f, w->za_d, nd, w->dd, d, 0.0f,
                w->eh_d, d);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        float *er = e + (size_t)r * d;
        const float *eh = w->eh_d + (size_t)r * d;
        sq[r] = sq_dist(d, er, eh);
        for (int i = 0; i < d; i++) er[i] = s * (eh[i] - er[i]);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nd, d, 1.0f, e, d, w->dd, d, 0.0f, w->pa_d, nd);
#pragma omp parallel for schedule(static)
    for (size_t q = 0; q < (size_t)n * nd; q++)
        if (!(w->za_d[q] > 0.0f)) w->pa_d[q] = 0.0f;
}

// Adds the dense AuxK parameter gradients of the dead latents:
// dD = zaux^T dL/dehat, dW_enc = pa^T (x - b_dec), db_enc = column sums of pa.
static void aux_dense_grads(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *grad, SaeWork *w,
                            const float *x, int n, int nd) {
    const int d = cfg->d;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nd, d, n, 1.0f, w->za_d, nd, w->gaux, d, 0.0f,
                w->g1, d);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nd, d, n, 1.0f, w->pa_d, nd, x, d, 0.0f, w->g2, d);
    column_sums(w->pa_d, n, nd, w->gbd);
#pragma omp parallel for schedule(static)
    for (int c = 0; c < nd; c++) {
        const int j = w->dead_list[c];
        const size_t o = (size_t)c * d;
        axpy(d, 1.0f, w->g2 + o, grad->W_enc + (size_t)j * d);
        axpy(d, (float)-w->gbd[c], p->b_dec, grad->W_enc + (size_t)j * d);
        if (!cfg->frozen_decoder) axpy(d, 1.0f, w->g1 + o, grad->D + (size_t)j * d);
        grad->b_enc[j] += (float)w->gbd[c];
    }
}

void sae_step(const SaeConfig *cfg, const SaeTensors *p, SaeTensors *grad, const float *x,
              const SaeBatch *b, const uint8_t *dead, const SaeReduce *red, SaeWork *w, SaeLosses *out) {
    const int d = cfg->d, m = cfg->m, n = b->n_tok;
    if (n > w->max_tok) die("batch of %d tokens exceeds the workspace (%d)", n, w->max_tok);
    memset(out, 0, sizeof(*out));
    double *acc = xmalloc(sizeof(double) * ((size_t)d + 4));
    float *mean = xmalloc(sizeof(float) * (size_t)d);
    int *counts = xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    memset(w->phase, 0, sizeof(w->phase));
    double clock = wall_time();

    // 1. batch statistics
    global_mean(x, n, d, red, acc, mean);
    const int64_t n_glob = (int64_t)acc[d];
    out->n_tok_global = n_glob;
    sq_dist_rows(x, mean, n, d, w->row_sq);
    double den[1] = {sum_rows(w->row_sq, n)};
    sae_sum_f64(red, den, 1);
    const double den_rec = den[0] > 0.0 ? den[0] : 1.0;
    phase_mark(w, SAE_PHASE_STATS, &clock);

    // 2. encode and select
    int n_dead = 0;
    if (dead && cfg->k_aux > 0)
        for (int j = 0; j < m; j++)
            if (dead[j]) w->dead_list[n_dead++] = j;
    out->n_dead = n_dead;
    const int k_aux_eff = n_dead < cfg->k_aux ? n_dead : cfg->k_aux;
    SparseCodes *z = &w->z, *za = &w->aux;
    z->n_rows = n;
    za->n_rows = n;
    z->row_ptr[0] = za->row_ptr[0] = 0;
    z->nnz = za->nnz = 0;
    if (k_aux_eff > 0) codes_reserve(za, (int64_t)n * k_aux_eff);
    const int aux_dense = k_aux_eff > 0 && n_dead <= AUX_DENSE_RATIO * k_aux_eff;
    const int aux_sparse = k_aux_eff > 0 && !aux_dense;
    if (w->bf16) gemm_bf16_set_weights(w->bf16, p->W_enc);
    if (cfg->select == SEL_BATCHTOPK) batch_cands_reset(&w->cands);
    for (int r0 = 0; r0 < n; r0 += w->chunk) {
        int nc = n - r0 < w->chunk ? n - r0 : w->chunk;
        encode_rows(cfg, p, x, r0, nc, w->bf16, w);
        phase_mark(w, SAE_PHASE_GEMM, &clock);
        if (cfg->select == SEL_BATCHTOPK) batch_cands_add(&w->cands, w->pre, nc, m, SAE_BATCH_CAND_PER_K * cfg->k);
        select_rows(cfg, p->b_enc, r0, nc, z, n_dead, k_aux_eff, w, counts);
        phase_mark(w, SAE_PHASE_SELECT, &clock);
    }
    if (cfg->select == SEL_BATCHTOPK) {
        out->min_kept = select_batch(cfg, p, x, n, red, w, counts);
        phase_mark(w, SAE_PHASE_SELECT, &clock);
    }
    if (k_aux_eff == 0) memset(za->row_ptr, 0, sizeof(int64_t) * ((size_t)n + 1));
    double l0[1] = {(double)z->nnz};
    sae_sum_f64(red, l0, 1);
    out->l0 = l0[0] / (double)(n_glob ? n_glob : 1);

    // 3. decode, losses, dL/dxhat and dL/dz per token
    const int mh = cfg->m_high;
    float grec = (float)(2.0 / den_rec);
    if (PLANTED("rec_scale")) grec *= 1.001f;
    decode_fused(z, p->D, p->b_dec, x, n, d, mh, grec, (float)(2.0 * cfg->beta / den_rec), w->g, w->gsum,
                 k_aux_eff > 0 ? w->gaux : NULL, w->row_sq, w->row_sqh);
    acc[0] = sum_rows(w->row_sq, n);
    acc[1] = mh > 0 ? sum_rows(w->row_sqh, n) : 0.0;
    sae_sum_f64(red, acc, 2);
    out->rec = acc[0] / den_rec;
    out->high = acc[1] / den_rec;
    phase_mark(w, SAE_PHASE_DECODE, &clock);
    if (k_aux_eff > 0) {
        // e = x - xhat (a constant) is in gaux; its FVU denominator first
        float *e = w->gaux;
        global_mean(e, n, d, red, acc, mean);
        sq_dist_rows(e, mean, n, d, w->row_sq);
        acc[1] = sum_rows(w->row_sq, n);
        sae_sum_f64(red, acc + 1, 1);
        const double aux_scale = fmin((double)n_dead / cfg->k_aux, 1.0);
        const double den_e = acc[1] > 0.0 ? acc[1] : 1.0;
        float s = (float)(cfg->alpha * aux_scale * 2.0 / den_e);
        if (PLANTED("aux_sign")) s = -s;
        if (aux_dense) {
            aux_dense_reserve(w, n, d, n_dead);
            aux_dense_forward(cfg, p, w, n, n_dead, s, e, w->row_sq);
        } else {
            aux_fused(za, p->D, n, d, s, e, w->row_sq);
        }
        acc[0] = sum_rows(w->row_sq, n);
        sae_sum_f64(red, acc, 1);
        out->aux = aux_scale * acc[0] / den_e;
    }
    phase_mark(w, SAE_PHASE_AUXK, &clock);

    // 4. InfoNCE; 5. the selection backward
    if (cfg->contrast != CTR_NONE) {
        InfoNceLoss nl;
        infonce_step(cfg, b, z, red, w->nce, &nl);
        out->temp = nl.temp;
        out->spat = nl.spat;
        out->rast = nl.rast;
    }
    if (cfg->select == SEL_SPARSEMAX || cfg->select == SEL_ENTMAX15) {
        const float inv_T = 1.0f / cfg->temp_s;
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n; r++) {
            int64_t e0 = z->row_ptr[r];
            int cnt = (int)(z->row_ptr[r + 1] - e0);
            if (cfg->select == SEL_SPARSEMAX) sparsemax_backward(z->val + e0, z->grad + e0, cnt, inv_T);
            else entmax15_backward(z->val + e0, z->grad + e0, cnt, inv_T);
        }
    }
    // TopK / BatchTopK: kept values are positive, so dL/dpre = dL/dz there.
    phase_mark(w, SAE_PHASE_BACKWARD, &clock);

    // 6. parameter gradients, latent by latent, in blocks of tokens whose x
    //    and dL/dxhat rows stay in cache (the index is sorted by token, so a
    //    cursor per latent walks it block after block)
    latent_index_build(&w->lz, z, m);
    if (aux_sparse) latent_index_build(&w->laux, za, m);
    phase_mark(w, SAE_PHASE_INDEX, &clock);
    const int frozen = cfg->frozen_decoder;
    // (at least one block: a rank holding no token still zeroes its gradients)
    for (int r0 = 0; r0 == 0 || r0 < n; r0 += w->grad_block) {
        const int r1 = n - r0 < w->grad_block ? n : r0 + w->grad_block;
#pragma omp parallel for schedule(dynamic, 8)
        for (int j = 0; j < m; j++) {
            float *gW = grad->W_enc + (size_t)j * d, *gD = grad->D + (size_t)j * d;
            if (r0 == 0) {
                memset(gW, 0, sizeof(float) * (size_t)d);
                memset(gD, 0, sizeof(float) * (size_t)d);
                w->gb[j] = 0.0;
                w->cur[j] = w->lz.col_ptr[j];
                if (aux_sparse) w->cur_aux[j] = w->laux.col_ptr[j];
            }
            for (int pass = 0; pass < 1 + aux_sparse; pass++) {
                const LatentIndex *li = pass ? &w->laux : &w->lz;
                const SparseCodes *c = pass ? za : z;
                const float *gd = pass ? w->gaux : j < mh ? w->gsum : w->g;
                int64_t t = pass ? w->cur_aux[j] : w->cur[j];
                // four tokens a sweep (RowBatch): the same sums, in the
                // same order, as one token at a time
                RowBatch bw = {.n = 0}, bd = {.n = 0};
                for (; t < li->col_ptr[j + 1] && li->row[t] < r1; t++) {
                    const int64_t e = li->ent[t];
                    const size_t r = (size_t)li->row[t];
                    batch_add(&bw, d, c->grad[e], x + r * d, gW);
                    batch_add(&bd, d, c->val[e], gd + r * d, gD);
                    w->gb[j] += c->grad[e];
                }
                batch_flush(&bw, d, gW);
                batch_flush(&bd, d, gD);
                if (pass) w->cur_aux[j] = t;
                else w->cur[j] = t;
            }
            if (r1 == n) {
                // gW_j = sum dpre (x - b_dec) = sum dpre x - (sum dpre) b_dec
                axpy(d, (float)-w->gb[j], p->b_dec, gW);
                grad->b_enc[j] = (float)w->gb[j];
                if (frozen) memset(gD, 0, sizeof(float) * (size_t)d);
            }
        }
    }
    if (aux_dense) aux_dense_grads(cfg, p, grad, w, x, n, n_dead);
    phase_mark(w, SAE_PHASE_GRADS, &clock);
    // db_dec = sum_r dL/dxhat_r (+ dL/dxhat_h_r) - W_enc^T db_enc
    column_sums(mh > 0 ? w->gsum : w->g, n, d, acc);
    for (int i = 0; i < d; i++) grad->b_dec[i] = (float)acc[i];
    cblas_sgemv(CblasRowMajor, CblasTrans, m, d, -1.0f, p->W_enc, d, grad->b_enc, 1, 1.0f, grad->b_dec, 1);
    if (frozen) memset(grad->b_dec, 0, sizeof(float) * (size_t)d);

    phase_mark(w, SAE_PHASE_BDEC, &clock);
    out->total = out->rec + cfg->alpha * out->aux + cfg->beta * out->high + cfg->lambda_t * out->temp +
                 cfg->lambda_s * out->spat + cfg->lambda_r * out->rast;
    free(acc);
    free(mean);
    free(counts);
}

void sae_encode(const SaeConfig *cfg, const SaeTensors *p, const float *x, int n, float theta,
                SaeWork *w, SparseCodes *out) {
    int *counts = xmalloc(sizeof(int) * (size_t)(w->rows_pre > 0 ? w->rows_pre : 1));
    out->n_rows = n;
    out->row_ptr[0] = 0;
    out->nnz = 0;
    for (int r0 = 0; r0 < n; r0 += w->chunk) {
        int nc = n - r0 < w->chunk ? n - r0 : w->chunk;
        encode_rows(cfg, p, x, r0, nc, NULL, w); // (evaluation: fp32 whatever the training)
        if (cfg->select == SEL_BATCHTOPK) keep_above(w->pre, nc, cfg->m, theta, 0, out, r0, counts);
        else select_rows(cfg, p->b_enc, r0, nc, out, 0, 0, w, counts);
    }
    free(counts);
}

void sae_decode(const SaeConfig *cfg, const SaeTensors *p, const SparseCodes *z, int n_latents, float *xhat) {
    const int d = cfg->d;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < z->n_rows; r++) {
        float *o = xhat + (size_t)r * d;
        memcpy(o, p->b_dec, sizeof(float) * (size_t)d);
        for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++)
            if (z->idx[e] < n_latents) axpy(d, z->val[e], p->D + (size_t)z->idx[e] * d, o);
    }
}
