// train_data.c — training batches from the feature file (train_data.h).
#include "stsae/stages/train_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

// A window of one stream: clips [w * mix, ...) of the stream in epoch e, their
// features (float16) and the seeded order of their items.
typedef struct {
    int64_t e, w; // -1: empty
    int n_clips;
    int32_t *clip;    // [mix] the clips (indices into the file)
    uint16_t *feat;   // [mix, T*N, d] (NULL: sources only)
    uint32_t *order;  // [n_clips * ipc] item = clip slot * ipc + item in clip
    uint8_t *offset;  // [mix] raster pair offset o of each clip
} Window;

typedef struct {
    int64_t e;   // -1: empty
    int32_t *perm;
} EpochPerm;

struct DataLoader {
    const FeatureFile *f;
    DataConfig c;
    int32_t *train;
    int n_train;
    int tn, d;          // tokens per clip, width
    int ipc;            // items per clip (tokens: T*N; pairs: (T*N - 1) / 2)
    int S;              // streams in use (min(streams, n_train))
    int s0, s1;         // this rank's streams
    int64_t c0, c1;     // this rank's clips of a clip batch
    EpochPerm ep[2];
    int next_ep;
    Window *win;        // [2 per local stream]
    uint16_t *clipbuf;  // [T*N*d] one clip (clip batches)
    double read_s;
};

static uint64_t mix64(uint64_t a, uint64_t b) {
    uint64_t s = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
    return rng_next(&s);
}

// The seeded permutation of the training clips in epoch e (Fisher-Yates).
static const int32_t *epoch_perm(DataLoader *dl, int64_t e) {
    for (int i = 0; i < 2; i++)
        if (dl->ep[i].e == e) return dl->ep[i].perm;
    EpochPerm *p = &dl->ep[dl->next_ep];
    dl->next_ep ^= 1;
    p->e = e;
    memcpy(p->perm, dl->train, sizeof(int32_t) * (size_t)dl->n_train);
    uint64_t st = mix64(mix64(dl->c.seed, 0x5eedull), (uint64_t)e);
    for (int i = dl->n_train - 1; i > 0; i--) {
        int j = (int)(rng_next(&st) % (uint64_t)(i + 1));
        int32_t t = p->perm[i];
        p->perm[i] = p->perm[j];
        p->perm[j] = t;
    }
    return p->perm;
}

static void read_clip(DataLoader *dl, int clip, uint16_t *out) {
    double t0 = wall_time();
    features_read_clip(dl->f, clip, out);
    dl->read_s += wall_time() - t0;
}

static int64_t stream_clips(const DataLoader *dl, int s) { return (dl->n_train - s + dl->S - 1) / dl->S; }
static int64_t stream_batch(const DataLoader *dl, int s) {
    return dl->c.batch / dl->S + (s < dl->c.batch % dl->S);
}

DataLoader *data_create(const FeatureFile *f, const int32_t *train, int n_train, const DataConfig *c) {
    DataLoader *dl = xcalloc(1, sizeof(DataLoader));
    dl->f = f;
    dl->c = *c;
    dl->n_train = n_train;
    dl->train = xmalloc(sizeof(int32_t) * (size_t)(n_train ? n_train : 1));
    memcpy(dl->train, train, sizeof(int32_t) * (size_t)n_train);
    dl->tn = f->T * f->N;
    dl->d = f->d;
    if (n_train < 1) die("%s: no training clip (split 0, done) in the feature file", f->path);
    for (int i = 0; i < 2; i++) {
        dl->ep[i].e = -1;
        dl->ep[i].perm = xmalloc(sizeof(int32_t) * (size_t)n_train);
    }
    if (c->kind == BATCH_CLIPS) {
        if (c->batch > n_train)
            die("train.batch_clips = %lld exceeds the %d training clips of %s", (long long)c->batch, n_train, f->path);
        dl->c0 = c->batch * c->rank / c->size;
        dl->c1 = c->batch * (c->rank + 1) / c->size;
        if (!c->sources_only) dl->clipbuf = xmalloc(sizeof(uint16_t) * (size_t)dl->tn * dl->d);
        return dl;
    }
    dl->ipc = c->kind == BATCH_PAIRS ? (dl->tn - 1) / 2 : dl->tn;
    if (dl->ipc < 1) die("%s: clips of %d tokens hold no raster pair", f->path, dl->tn);
    dl->S = c->streams < n_train ? c->streams : n_train;
    dl->s0 = (int)((int64_t)dl->S * c->rank / c->size);
    dl->s1 = (int)((int64_t)dl->S * (c->rank + 1) / c->size);
    const int nl = dl->s1 - dl->s0;
    dl->win = xcalloc((size_t)(2 * (nl ? nl : 1)), sizeof(Window));
    for (int i = 0; i < 2 * nl; i++) {
        Window *w = &dl->win[i];
        w->e = w->w = -1;
        w->clip = xmalloc(sizeof(int32_t) * (size_t)c->mix_clips);
        if (!c->sources_only) w->feat = xmalloc(sizeof(uint16_t) * (size_t)c->mix_clips * dl->tn * dl->d);
        w->order = xmalloc(sizeof(uint32_t) * (size_t)c->mix_clips * dl->ipc);
        w->offset = xmalloc((size_t)c->mix_clips);
    }
    return dl;
}

void data_free(DataLoader *dl) {
    if (!dl) return;
    for (int i = 0; i < 2; i++) free(dl->ep[i].perm);
    for (int i = 0; dl->win && i < 2 * (dl->s1 - dl->s0); i++) {
        free(dl->win[i].clip);
        free(dl->win[i].feat);
        free(dl->win[i].order);
        free(dl->win[i].offset);
    }
    free(dl->win);
    free(dl->clipbuf);
    free(dl->train);
    free(dl);
}

int64_t data_steps(const DataLoader *dl, int epochs) {
    const int64_t per_epoch = dl->c.kind == BATCH_CLIPS ? dl->n_train : (int64_t)dl->n_train * dl->ipc;
    return (int64_t)epochs * per_epoch / dl->c.batch;
}

int data_max_local_tokens(const DataLoader *dl) {
    if (dl->c.kind == BATCH_CLIPS) return (int)((dl->c1 - dl->c0) * dl->tn);
    int64_t n = 0;
    for (int s = dl->s0; s < dl->s1; s++) n += stream_batch(dl, s);
    return (int)(dl->c.kind == BATCH_PAIRS ? 2 * n : n);
}

double data_read_seconds(const DataLoader *dl) { return dl->read_s; }

// The window (e, w) of local stream s, loaded into one of its two slots (the
// one not holding `keep`).
static Window *window(DataLoader *dl, int s, int64_t e, int64_t w, const Window *keep) {
    Window *slot = &dl->win[2 * (s - dl->s0)];
    for (int i = 0; i < 2; i++)
        if (slot[i].e == e && slot[i].w == w) return &slot[i];
    Window *x = &slot[0] == keep ? &slot[1] : &slot[0];
    const int mix = dl->c.mix_clips, S = dl->S;
    const int64_t n_s = stream_clips(dl, s);
    const int64_t first = w * mix;
    x->e = e;
    x->w = w;
    x->n_clips = (int)(n_s - first < mix ? n_s - first : mix);
    const int32_t *perm = epoch_perm(dl, e);
    uint64_t st = mix64(mix64(mix64(dl->c.seed, (uint64_t)s + 1), (uint64_t)e), (uint64_t)w);
    for (int c = 0; c < x->n_clips; c++) {
        x->clip[c] = perm[(first + c) * S + s];
        if (x->feat) read_clip(dl, x->clip[c], x->feat + (size_t)c * dl->tn * dl->d);
        x->offset[c] = (uint8_t)(rng_next(&st) & 1);
    }
    const uint32_t n_items = (uint32_t)x->n_clips * (uint32_t)dl->ipc;
    for (uint32_t i = 0; i < n_items; i++) x->order[i] = i;
    for (uint32_t i = n_items - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(rng_next(&st) % (uint64_t)(i + 1));
        uint32_t t = x->order[i];
        x->order[i] = x->order[j];
        x->order[j] = t;
    }
    return x;
}

// The batch's rows in order, each as its window (NULL for whole clips), the
// clip's slot in it, the clip and the token: what data_batch copies and
// data_batch_sources names.
typedef void (*RowFn)(DataLoader *dl, const Window *w, int slot, int clip, int token, size_t row, void *arg);

static SaeBatch walk_batch(DataLoader *dl, int64_t step, RowFn row_fn, void *arg) {
    const FeatureFile *f = dl->f;
    if (dl->c.kind == BATCH_CLIPS) {
        size_t row = 0;
        for (int64_t i = dl->c0; i < dl->c1; i++) {
            const int64_t p = step * dl->c.batch + i;
            const int clip = epoch_perm(dl, p / dl->n_train)[p % dl->n_train];
            for (int t = 0; t < dl->tn; t++, row++) row_fn(dl, NULL, 0, clip, t, row, arg);
        }
        return sae_batch_clips((int)(dl->c1 - dl->c0), f->T, f->H, f->W);
    }
    const int pairs = dl->c.kind == BATCH_PAIRS;
    const int64_t win_items = (int64_t)dl->c.mix_clips * dl->ipc;
    size_t row = 0;
    for (int s = dl->s0; s < dl->s1; s++) {
        const int64_t b_s = stream_batch(dl, s), per_epoch = stream_clips(dl, s) * dl->ipc;
        const Window *cur = NULL;
        for (int64_t q = step * b_s; q < (step + 1) * b_s; q++) {
            const int64_t e = q / per_epoch, r = q % per_epoch;
            const Window *w = window(dl, s, e, r / win_items, cur);
            cur = w;
            const uint32_t item = w->order[r % win_items];
            const int c = (int)(item / (uint32_t)dl->ipc), j = (int)(item % (uint32_t)dl->ipc);
            const int t0 = pairs ? 2 * j + w->offset[c] : j;
            for (int k = 0; k < 1 + pairs; k++, row++) row_fn(dl, w, c, w->clip[c], t0 + k, row, arg);
        }
    }
    return pairs ? sae_batch_pairs((int)(row / 2)) : sae_batch_tokens((int)row);
}

typedef struct {
    float *x;    // float32 times scale, or
    uint16_t *h; // float16 as stored
    float scale;
} CopyArg;

// A row's token, float16 to float32 times the scale (or as it is stored, to
// h) (whole clips: the clip read once, at its first token; its tokens follow
// in order).
static void copy_row(DataLoader *dl, const Window *w, int slot, int clip, int token, size_t row, void *arg) {
    CopyArg *a = arg;
    const size_t d = (size_t)dl->d;
    const uint16_t *src;
    if (w) {
        src = w->feat + ((size_t)slot * dl->tn + (size_t)token) * d;
    } else {
        if (token == 0) read_clip(dl, clip, dl->clipbuf);
        src = dl->clipbuf + (size_t)token * d;
    }
    if (a->h) {
        memcpy(a->h + row * d, src, sizeof(uint16_t) * d);
        return;
    }
    float *dst = a->x + row * d;
    half_to_float(src, dst, d);
    if (a->scale != 1.0f)
        for (size_t i = 0; i < d; i++) dst[i] *= a->scale;
}

SaeBatch data_batch(DataLoader *dl, int64_t step, float scale, float *x) {
    if (dl->c.sources_only) die("data_batch on a loader made for sources only (a bug)");
    CopyArg a = {x, NULL, scale};
    return walk_batch(dl, step, copy_row, &a);
}

SaeBatch data_batch_f16(DataLoader *dl, int64_t step, uint16_t *h) {
    if (dl->c.sources_only) die("data_batch_f16 on a loader made for sources only (a bug)");
    CopyArg a = {NULL, h, 1.0f};
    return walk_batch(dl, step, copy_row, &a);
}

static void source_row(DataLoader *dl, const Window *w, int slot, int clip, int token, size_t row, void *arg) {
    (void)w, (void)slot;
    ((int64_t *)arg)[row] = (int64_t)clip * dl->tn + token;
}

SaeBatch data_batch_sources(DataLoader *dl, int64_t step, int64_t *src) {
    return walk_batch(dl, step, source_row, src);
}

float data_input_scale(const FeatureFile *f, const int32_t *train, int n_train, int64_t sample_tokens, Comm *comm,
                       float *mean_scaled) {
    const int rank = comm_rank(comm), size = comm_size(comm);
    const int d = f->d, tn = f->T * f->N;
    const int n_sc = n_train < 64 ? n_train : 64;
    int64_t per = (sample_tokens + n_sc - 1) / n_sc;
    if (per > tn) per = tn;
    // per sampled clip: sum ||x||^2, token count, sum x (d)
    const size_t row = (size_t)d + 2;
    double *acc = xcalloc((size_t)n_sc * row, sizeof(double));
    uint16_t *h = xmalloc(sizeof(uint16_t) * (size_t)tn * d);
    float *v = xmalloc(sizeof(float) * (size_t)d);
    for (int i = rank; i < n_sc; i += size) {
        const int clip = train[(int64_t)(2 * i + 1) * n_train / (2 * n_sc)];
        features_read_clip(f, clip, h);
        double *a = acc + (size_t)i * row;
        for (int64_t u = 0; u < per; u++) {
            const int64_t tok = (2 * u + 1) * tn / (2 * per);
            half_to_float(h + (size_t)tok * d, v, (size_t)d);
            for (int c = 0; c < d; c++) {
                a[0] += (double)v[c] * v[c];
                a[2 + c] += v[c];
            }
            a[1] += 1.0;
        }
    }
    comm_allreduce(comm, acc, (size_t)n_sc * row, COMM_F64, COMM_SUM, NULL);
    double *tot = xcalloc(row, sizeof(double));
    for (int i = 0; i < n_sc; i++)
        for (size_t c = 0; c < row; c++) tot[c] += acc[(size_t)i * row + c];
    if (!(tot[0] > 0.0)) die("%s: layer %d: the sampled training tokens are all zero; no input scale", f->path, f->layer);
    const double s = sqrt((double)d * tot[1] / tot[0]);
    for (int c = 0; c < d; c++) mean_scaled[c] = (float)(s * tot[2 + c] / tot[1]);
    free(acc);
    free(tot);
    free(h);
    free(v);
    return (float)s;
}
