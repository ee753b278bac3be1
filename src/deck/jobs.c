// jobs.c — grid expansion (see jobs.h).
//
// In:  a validated deck (train.grid, the train-level values), and the variant
//      table (sae/variants.h) for every rule that depends on the variant.
// Out: the job list, or one error naming the grid entry's file and line;
//      jobs_check: a verdict on every job against the data, the same on
//      every rank.
//
// An entry's `variant` is one name or a list of them; the variants are its
// slowest axis. For each variant, the entry's keys other than variant, name
// and seeds that the variant uses are its axes (each a list after
// validation: a lone value is a one-element list). Combination c is a
// mixed-radix number over those axes, last axis fastest; the seeds vary
// fastest of all.
#include "stsae/deck/jobs.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

#define MAX_JOBS 100000
#define CANON_CAP 1024

// The values a grid entry may set (its axes), with train-level defaults, and
// the variants they apply to (the variant table's SAE_USES_*; 0: every variant).
enum {
    K_LAMBDA, K_LAMBDA_T, K_LAMBDA_S, K_TAU, K_HIGH_FRAC, K_T_S, K_ALPHA, K_BETA, K_LR, K_K, K_EXPANSION, K_LAYER,
    N_KNOB
};
static const char *const KNOB[N_KNOB] = {"lambda", "lambda_t", "lambda_s", "tau",       "high_frac", "T_s",
                                         "alpha",  "beta",     "lr",       "k",         "expansion", "layer"};
static const unsigned KNOB_USES[N_KNOB] = {SAE_USES_LAMBDA,    SAE_USES_LAMBDA_T, SAE_USES_LAMBDA_S, SAE_USES_TAU,
                                           SAE_USES_HIGH_FRAC, SAE_USES_T_S,      SAE_USES_ALPHA,    SAE_USES_BETA,
                                           0,                  0,                 0,                 0};

// Train-level values every job shares that shape the trained SAE (in the
// hash), around the job's layer (train.layer, or its grid entry's): the
// canonical text reads "... features=F layer=L dead_tokens=...".
static const char *const SHARED_HEAD[] = {"features"};
static const char *const SHARED_TAIL[] = {"dead_tokens", "warmup_frac", "adam_beta1",   "adam_beta2", "adam_eps",
                                          "epochs",      "max_steps",   "streams",      "mix_clips",  "scale_sample",
                                          "theta_decay"};

typedef struct {
    const Deck *d;
    char *err;
    size_t cap;
    JobList *out;
    double base[N_KNOB]; // train-level values (NAN: none)
    int k_aux;
    int64_t batch[3];    // by JobBatch
    char shared_head[CANON_CAP], shared_tail[CANON_CAP];
} Ctx;

static int jfail(Ctx *c, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// "WHERE: KEY: message" with WHERE the key's file:line; returns -1.
static int jfail(Ctx *c, const char *key, const char *fmt, ...) {
    char where[512], msg[1024];
    deck_where(c->d, key, where, sizeof(where));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return deck_errorf(c->err, c->cap, where, key, "%s", msg);
}

uint64_t job_hash_text(const char *text) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

double job_lr(const Job *job, int d) {
    return job->lr > 0 ? job->lr : 2e-4 / sqrt((double)job->expansion * d / 16384.0);
}

int64_t job_latents(const Job *job, int d) { return (int64_t)job->expansion * d; }

int64_t job_m_high(const Job *job, int64_t m) {
    return job->high_frac > 0 ? (int64_t)floor(job->high_frac * (double)m + 0.5) : 0;
}

static int knob_of(const char *key) {
    for (int i = 0; i < N_KNOB; i++)
        if (!strcmp(KNOB[i], key)) return i;
    return -1;
}

// Does the variant use this value at all?
static int uses(const SaeVariant *v, int knob) { return !KNOB_USES[knob] || sae_variant_uses(v, KNOB_USES[knob]); }

static void num(char *buf, double v) { deck_format_num(v, buf, 32); }

// " key=value" for each train-level key (value "-" when absent) into out[CANON_CAP].
static void shared_text(const Deck *d, const char *const *keys, size_t n_keys, char *out) {
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < n_keys; i++) {
        char key[64];
        snprintf(key, sizeof(key), "train.%s", keys[i]);
        n += (size_t)snprintf(out + n, CANON_CAP - n, " %s=%s", keys[i], deck_has(d, key) ? deck_str(d, key) : "-");
    }
}

static void base_values(Ctx *c) {
    const Deck *d = c->d;
    for (int i = 0; i < N_KNOB; i++) {
        char key[64];
        snprintf(key, sizeof(key), "train.%s", KNOB[i]);
        c->base[i] = i == K_LAMBDA_T || i == K_LAMBDA_S ? NAN : deck_has(d, key) ? deck_num(d, key) : 0;
    }
    c->k_aux = (int)deck_int(d, "train.k_aux");
    c->batch[BATCH_TOKENS] = deck_int(d, "train.batch_tokens");
    c->batch[BATCH_CLIPS] = deck_int(d, "train.batch_clips");
    c->batch[BATCH_PAIRS] = deck_int(d, "train.batch_pairs");
    shared_text(d, SHARED_HEAD, sizeof(SHARED_HEAD) / sizeof(*SHARED_HEAD), c->shared_head);
    shared_text(d, SHARED_TAIL, sizeof(SHARED_TAIL) / sizeof(*SHARED_TAIL), c->shared_tail);
    // train.gemm shapes the SAE too, but only a value other than the default
    // enters the text: jobs trained before the key existed keep their hashes
    if (strcmp(deck_str(d, "train.gemm"), "fp32")) {
        const size_t n = strlen(c->shared_tail);
        snprintf(c->shared_tail + n, CANON_CAP - n, " gemm=%s", deck_str(d, "train.gemm"));
    }
}

// Every value of a job from its knobs, by its variant's row (jobs.h).
static void resolve(const Ctx *c, const SaeVariant *v, const double *kv, Job *j) {
    double lam = kv[K_LAMBDA];
    double lt = isnan(kv[K_LAMBDA_T]) ? lam : kv[K_LAMBDA_T];
    double ls = isnan(kv[K_LAMBDA_S]) ? lam : kv[K_LAMBDA_S];
    j->variant = v->name;
    j->rules = v;
    j->lambda_t = uses(v, K_LAMBDA_T) ? lt : 0;
    j->lambda_s = uses(v, K_LAMBDA_S) ? ls : 0;
    j->lambda_r = sae_variant_uses(v, SAE_USES_LAMBDA_R) ? lam : 0;
    int contrastive = j->lambda_t + j->lambda_s + j->lambda_r > 0;
    j->tau = contrastive ? kv[K_TAU] : 0;
    j->high_frac = uses(v, K_HIGH_FRAC) ? kv[K_HIGH_FRAC] : 0;
    j->beta = uses(v, K_BETA) ? kv[K_BETA] : 0;
    j->T_s = uses(v, K_T_S) ? kv[K_T_S] : 0;
    j->k_aux = v->auxk ? c->k_aux : 0;
    j->alpha = j->k_aux ? kv[K_ALPHA] : 0;
    j->k = (int)kv[K_K];
    j->expansion = (int)kv[K_EXPANSION];
    j->lr = kv[K_LR];
    j->layer = (int)kv[K_LAYER];
    j->batch_kind = sae_variant_batch(v, j->lambda_t);
    j->batch = c->batch[j->batch_kind];
    j->cost = j->expansion * (contrastive ? v->cost_nce : 1.0) * v->cost;
}

static void canonical(const Ctx *c, Job *j) {
    static const char *batch_name[] = {"tokens", "clips", "pairs"};
    char lt[32], ls[32], lr_[32], tau[32], hf[32], ts[32], al[32], be[32], lr[32] = "default";
    num(lt, j->lambda_t), num(ls, j->lambda_s), num(lr_, j->lambda_r), num(tau, j->tau);
    num(hf, j->high_frac), num(ts, j->T_s), num(al, j->alpha), num(be, j->beta);
    if (j->lr > 0) num(lr, j->lr);
    char buf[2 * CANON_CAP];
    snprintf(buf, sizeof(buf),
             "variant=%s lambda_t=%s lambda_s=%s lambda_r=%s tau=%s high_frac=%s T_s=%s k=%d k_aux=%d "
             "expansion=%d alpha=%s beta=%s lr=%s seed=%lld batch=%lld_%s%s layer=%d%s",
             j->variant, lt, ls, lr_, tau, hf, ts, j->k, j->k_aux, j->expansion, al, be, lr,
             (long long)j->seed, (long long)j->batch, batch_name[j->batch_kind], c->shared_head, j->layer,
             c->shared_tail);
    j->canon = memcpy(xmalloc(strlen(buf) + 1), buf, strlen(buf) + 1);
    j->hash = job_hash_text(j->canon);
}

static void push(Ctx *c, Job *j) {
    JobList *l = c->out;
    if ((l->n & (l->n - 1)) == 0) l->job = xrealloc(l->job, sizeof(Job) * (size_t)(l->n ? 2 * l->n : 1));
    j->index = l->n;
    l->job[l->n++] = *j;
}

// An entry's name: letters, digits and _ . + - only (it names directories).
static int check_name(Ctx *c, const char *ep) {
    char key[96];
    snprintf(key, sizeof(key), "%s.name", ep);
    if (!deck_has(c->d, key)) return 0;
    const char *s = deck_str(c->d, key);
    if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-") == strlen(s)) return 0;
    return jfail(c, key, "expected letters, digits and _ . + - only (got '%s')", s);
}

typedef struct {
    int n;
    int knob[N_KNOB], len[N_KNOB];
    char key[N_KNOB][96]; // "train.grid[e].lambda"
    long combos;
} Axes;

// The entry's variants (`variant`: one name, or a list of distinct names), in
// list order, into *var (malloc'd; the caller frees it), and their number;
// -1 after an error.
static int variants_of(Ctx *c, const char *ep, const SaeVariant ***var) {
    char key[96], el[128];
    snprintf(key, sizeof(key), "%s.variant", ep);
    snprintf(el, sizeof(el), "%s[0]", key);
    const int list = deck_has(c->d, el), n = list ? deck_len(c->d, key) : 1;
    const SaeVariant **v = xmalloc(sizeof(*v) * (size_t)n);
    for (int i = 0; i < n; i++) {
        snprintf(el, sizeof(el), "%s[%d]", key, i);
        const char *name = deck_str(c->d, list ? el : key);
        if (!(v[i] = sae_variant_find(name))) die("jobs: variant '%s' is in the schema but not in the variant table", name);
        for (int j = 0; j < i; j++)
            if (v[j] == v[i]) {
                free(v);
                return jfail(c, el, "variant %s is listed twice", name);
            }
    }
    *var = v;
    return n;
}

// The axes of variant var[vi] of an entry: the entry's values it uses, in
// file order. A value none of the entry's variants uses is an error; with
// several variants, a value applies to those that use it.
static int axes_of(Ctx *c, const char *ep, const SaeVariant *const *var, int nv, int vi, Axes *a) {
    a->n = 0;
    a->combos = 1;
    for (int i = 0; i < deck_len(c->d, ep); i++) {
        const char *name = deck_key_at(c->d, ep, i);
        int knob = knob_of(name), used = 0;
        if (knob < 0) continue; // variant, name, seeds
        snprintf(a->key[a->n], sizeof(a->key[0]), "%s.%s", ep, name);
        for (int v = 0; v < nv; v++) used |= uses(var[v], knob);
        if (!used && nv == 1) return jfail(c, a->key[a->n], "variant %s does not use %s", var[0]->name, name);
        if (!used) {
            char names[512] = "";
            for (int v = 0, n = 0; v < nv && n < (int)sizeof(names); v++)
                n += snprintf(names + n, sizeof(names) - (size_t)n, "%s%s", v ? ", " : "", var[v]->name);
            return jfail(c, a->key[a->n], "none of the variants %s uses %s", names, name);
        }
        if (!uses(var[vi], knob)) continue;
        a->knob[a->n] = knob;
        a->len[a->n] = deck_len(c->d, a->key[a->n]);
        a->combos *= a->len[a->n];
        if (a->combos > MAX_JOBS) return jfail(c, ep, "expands to more than %d jobs", MAX_JOBS);
        a->n++;
    }
    return 0;
}

// Knob values and the name of combination `combo` of an entry.
static void combination(const Ctx *c, const Axes *a, long combo, double *kv, char *name, size_t cap) {
    int digit[N_KNOB];
    for (int j = a->n - 1; j >= 0; j--) {
        digit[j] = (int)(combo % a->len[j]);
        combo /= a->len[j];
    }
    for (int j = 0; j < a->n; j++) {
        char el[128];
        snprintf(el, sizeof(el), "%s[%d]", a->key[j], digit[j]);
        kv[a->knob[j]] = deck_num(c->d, el);
        size_t n = strlen(name);
        snprintf(name + n, cap - n, "_%s%s", KNOB[a->knob[j]], deck_str(c->d, el));
    }
}

// An entry's jobs: its variants in list order (the slowest axis), then the
// combinations of each one's axes, then the seeds. Names: the entry's name, or
// the variant's; with a name and several variants, "NAME_VARIANT".
static int expand_entry(Ctx *c, int e) {
    char ep[64], key[96], seeds[96];
    const SaeVariant **var = NULL;
    int nv;
    snprintf(ep, sizeof(ep), "train.grid[%d]", e);
    if (check_name(c, ep) || (nv = variants_of(c, ep, &var)) < 0) return -1;
    snprintf(key, sizeof(key), "%s.name", ep);
    const char *entry_name = deck_has(c->d, key) ? deck_str(c->d, key) : NULL;
    snprintf(seeds, sizeof(seeds), "%s.seeds", ep);
    if (!deck_has(c->d, seeds)) strcpy(seeds, "train.seeds");
    int ns = deck_len(c->d, seeds), rc = 0;
    for (int vi = 0; vi < nv && !rc; vi++) {
        const SaeVariant *v = var[vi];
        Axes a;
        if ((rc = axes_of(c, ep, var, nv, vi, &a))) break;
        if (c->out->n + a.combos * ns > MAX_JOBS) {
            rc = jfail(c, ep, "the grid expands to more than %d jobs", MAX_JOBS);
            break;
        }
        for (long combo = 0; combo < a.combos; combo++) {
            double kv[N_KNOB];
            char name[sizeof(((Job *)0)->name) - 32]; // room for "_seed<int64>"
            memcpy(kv, c->base, sizeof(kv));
            if (!entry_name) snprintf(name, sizeof(name), "%s", v->name);
            else if (nv == 1) snprintf(name, sizeof(name), "%s", entry_name);
            else snprintf(name, sizeof(name), "%s_%s", entry_name, v->name);
            combination(c, &a, combo, kv, name, sizeof(name));
            for (int s = 0; s < ns; s++) {
                Job j = {.entry = e};
                char sk[128];
                snprintf(sk, sizeof(sk), "%s[%d]", seeds, s);
                resolve(c, v, kv, &j);
                j.seed = deck_int(c->d, sk);
                snprintf(j.name, sizeof(j.name), "%s_seed%lld", name, (long long)j.seed);
                canonical(c, &j);
                push(c, &j);
            }
        }
    }
    free(var);
    return rc;
}

static const Job *sort_jobs; // qsort has no context argument

static int by_hash(const void *x, const void *y) {
    const Job *a = &sort_jobs[*(const int *)x], *b = &sort_jobs[*(const int *)y];
    return a->hash != b->hash ? (a->hash > b->hash) - (a->hash < b->hash) : a->index - b->index;
}

static int by_name(const void *x, const void *y) {
    const Job *a = &sort_jobs[*(const int *)x], *b = &sort_jobs[*(const int *)y];
    int c = strcmp(a->name, b->name);
    return c ? c : a->index - b->index;
}

// The clash (same hash, or same name) whose later job comes first: sort, then
// compare neighbours. *first gets the earlier job of the pair; -1: none.
static int first_clash(const JobList *l, int *order, int (*cmp)(const void *, const void *), int *first) {
    int later = -1;
    for (int i = 0; i < l->n; i++) order[i] = i;
    sort_jobs = l->job;
    qsort(order, (size_t)l->n, sizeof(int), cmp);
    for (int i = 1; i < l->n; i++) {
        int a = order[i - 1], b = order[i], same = cmp == by_hash ? l->job[a].hash == l->job[b].hash
                                                                  : !strcmp(l->job[a].name, l->job[b].name);
        if (same && (later < 0 || b < later)) later = b, *first = a;
    }
    return later;
}

// Two jobs that would train the same SAE, or share a name, are an error
// naming both grid entries.
static int check_unique(Ctx *c) {
    const JobList *l = c->out;
    int *order = xmalloc(sizeof(int) * (size_t)(l->n ? l->n : 1)), a, b, named = 0;
    if ((b = first_clash(l, order, by_hash, &a)) < 0) named = (b = first_clash(l, order, by_name, &a)) >= 0;
    free(order);
    if (b < 0) return 0;
    const Job *ja = &l->job[a], *jb = &l->job[b];
    char ea[64], eb[64], where[512];
    snprintf(ea, sizeof(ea), "train.grid[%d]", ja->entry);
    snprintf(eb, sizeof(eb), "train.grid[%d]", jb->entry);
    deck_where(c->d, ea, where, sizeof(where));
    if (named) return jfail(c, eb, "job name '%s' is taken by a job of %s (%s): give the entries different names",
                            jb->name, ea, where);
    return jfail(c, eb, "job '%s' %s job '%s' of %s (%s)", jb->name,
                 strcmp(ja->canon, jb->canon) ? "has the hash (a collision) of" : "has the same values as", ja->name,
                 ea, where);
}

JobList *jobs_expand(const Deck *d, char *err, size_t errcap) {
    Ctx c = {.d = d, .err = err, .cap = errcap, .out = xcalloc(1, sizeof(JobList))};
    if (errcap) err[0] = 0;
    if (!deck_has(d, "train")) return c.out;
    base_values(&c);
    int bad = 0;
    for (int e = 0; e < deck_len(d, "train.grid") && !bad; e++) bad = expand_entry(&c, e);
    if (!bad) bad = check_unique(&c);
    if (!bad) return c.out;
    jobs_free(c.out);
    return NULL;
}

// --- the jobs against the data (jobs_check) ------------------------------------------

// The key that set a job's value of `knob`: its grid entry's own, else the
// train-level one.
static const char *knob_key(const Ctx *c, const Job *j, const char *knob, char *buf, size_t cap) {
    snprintf(buf, cap, "train.grid[%d].%s", j->entry, knob);
    if (!deck_has(c->d, buf)) snprintf(buf, cap, "train.%s", knob);
    return buf;
}

// The key that named a job's variant: its grid entry's `variant`, or the
// element of that list.
static const char *variant_key(const Ctx *c, const Job *j, char *buf, size_t cap) {
    snprintf(buf, cap, "train.grid[%d].variant", j->entry);
    for (int i = 0;; i++) {
        char el[64];
        snprintf(el, sizeof(el), "train.grid[%d].variant[%d]", j->entry, i);
        if (!deck_has(c->d, el)) return buf;
        if (!strcmp(deck_str(c->d, el), j->variant)) {
            snprintf(buf, cap, "%s", el);
            return buf;
        }
    }
}

static int check_job(Ctx *c, const Job *j, const DataShape *s) {
    static const char *batch_key[] = {"train.batch_tokens", "train.batch_clips", "train.batch_pairs"};
    static const char *unit[] = {"tokens", "clips", "pairs"};
    char key[96], var[128];
    const char *n = j->name;
    variant_key(c, j, var, sizeof(var));
    const int64_t m = job_latents(j, s->d), tn = (int64_t)s->T * s->H * s->W;
    int has_layer = !s->layers;
    for (int l = 0; l < s->n_layers && !has_layer; l++) has_layer = s->layers[l] == j->layer;
    if (!has_layer)
        return jfail(c, knob_key(c, j, "layer", key, sizeof(key)), "job %s: layer %d is not among the layers of %s",
                     n, j->layer, s->source);
    if (m > INT_MAX)
        return jfail(c, knob_key(c, j, "expansion", key, sizeof(key)),
                     "job %s: m = expansion x d = %d x %d = %lld latents is more than %d", n, j->expansion, s->d,
                     (long long)m, INT_MAX);
    if (j->k > m)
        return jfail(c, knob_key(c, j, "k", key, sizeof(key)),
                     "job %s: k = %d exceeds the m = %lld latents (expansion %d x d %d of %s)", n, j->k,
                     (long long)m, j->expansion, s->d, s->source);
    if (j->k_aux > m)
        return jfail(c, "train.k_aux",
                     "job %s: k_aux = %d exceeds the m = %lld latents (expansion %d x d %d of %s); at most m, "
                     "or 0 for no AuxK", n, j->k_aux, (long long)m, j->expansion, s->d, s->source);
    const int64_t mh = job_m_high(j, m);
    if (j->high_frac > 0 && (mh < 1 || mh >= m))
        return jfail(c, knob_key(c, j, "high_frac", key, sizeof(key)),
                     "job %s: high_frac %g of m = %lld latents gives a high-level group of m_h = %lld; +M needs "
                     "1 <= m_h < m", n, j->high_frac, (long long)m, (long long)mh);
    if (j->batch_kind == BATCH_CLIPS && s->T < 2)
        return jfail(c, var, "job %s: variant %s compares time steps and needs clips of T >= 2 (%s has T = %d)", n,
                     j->variant, s->source, s->T);
    if (j->rules->contrast == CTR_SEPARATE && s->W < 2)
        return jfail(c, var, "job %s: variant %s compares right neighbours and needs W >= 2 patches per row (%s has "
                     "W = %d)", n, j->variant, s->source, s->W);
    if (j->batch_kind == BATCH_PAIRS && (tn - 1) / 2 < 1)
        return jfail(c, var, "job %s: clips of T x H x W = %lld tokens hold no raster pair (%s; needs at least 3)", n,
                     (long long)tn, s->source);
    const int64_t tokens = j->batch_kind == BATCH_CLIPS ? j->batch * tn : j->batch_kind == BATCH_PAIRS ? 2 * j->batch
                                                                                                      : j->batch;
    if (tokens > INT_MAX)
        return jfail(c, batch_key[j->batch_kind], "job %s: a batch of %lld %s is %lld tokens, more than %d", n,
                     (long long)j->batch, unit[j->batch_kind], (long long)tokens, INT_MAX);
    if (j->batch_kind != BATCH_CLIPS && (int64_t)deck_int(c->d, "train.mix_clips") * tn > INT_MAX)
        return jfail(c, "train.mix_clips", "job %s: %lld clips of %lld tokens are more than %d tokens in a window", n,
                     (long long)deck_int(c->d, "train.mix_clips"), (long long)tn, INT_MAX);
    if (s->n_train < 0) return 0;
    if (j->batch_kind == BATCH_CLIPS && j->batch > s->n_train)
        return jfail(c, batch_key[j->batch_kind], "job %s: a batch of %lld clips exceeds the %lld training clips of %s",
                     n, (long long)j->batch, (long long)s->n_train, s->source);
    // an epoch: every training clip, token, or pair (train_data.h); one full batch at least
    const int64_t per_clip = j->batch_kind == BATCH_CLIPS ? 1 : j->batch_kind == BATCH_PAIRS ? (tn - 1) / 2 : tn;
    const int64_t epochs = deck_int(c->d, "train.epochs"), per_epoch = s->n_train * per_clip;
    if (per_epoch > INT64_MAX / epochs)
        return jfail(c, "train.epochs", "job %s: %lld epochs of %lld %s overflow a 64-bit count", n, (long long)epochs,
                     (long long)per_epoch, unit[j->batch_kind]);
    if (epochs * per_epoch < j->batch)
        return jfail(c, batch_key[j->batch_kind],
                     "job %s: the %lld training clips of %s hold %lld %s: no full batch of %lld %s in train.epochs = "
                     "%lld", n, (long long)s->n_train, s->source, (long long)per_epoch, unit[j->batch_kind],
                     (long long)j->batch, unit[j->batch_kind], (long long)epochs);
    return 0;
}

int jobs_check(const Deck *d, const JobList *jobs, const DataShape *data, char *err, size_t errcap) {
    Ctx c = {.d = d, .err = err, .cap = errcap};
    if (errcap) err[0] = 0;
    for (int i = 0; i < jobs->n; i++)
        if (check_job(&c, &jobs->job[i], data)) return -1;
    return 0;
}

void jobs_free(JobList *jobs) {
    if (!jobs) return;
    for (int i = 0; i < jobs->n; i++) free(jobs->job[i].canon);
    free(jobs->job);
    free(jobs);
}
