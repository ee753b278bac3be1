// model.c — model files and checkpoints (model.h).
#include "stsae/io/model.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/io/h5io.h"

// The four tensors into w (W_dec transposed to [d, m]); 0, or -1 with w->err.
static int put_tensors(H5W *w, const char *prefix, const SaeConfig *cfg, const float *flat) {
    const int d = cfg->d, m = cfg->m;
    SaeTensors t;
    sae_carve((float *)flat, cfg, &t);
    char name[128];
    hsize_t dmd[2] = {(hsize_t)m, (hsize_t)d}, dm[1] = {(hsize_t)m}, ddm[2] = {(hsize_t)d, (hsize_t)m},
            dd[1] = {(hsize_t)d};
    float *wd = xmalloc(sizeof(float) * (size_t)m * d);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < m; j++) wd[(size_t)i * m + j] = t.D[(size_t)j * d + i];
    snprintf(name, sizeof(name), "%s/W_enc", prefix);
    h5w_f32(w, name, t.W_enc, 2, dmd);
    snprintf(name, sizeof(name), "%s/b_enc", prefix);
    h5w_f32(w, name, t.b_enc, 1, dm);
    snprintf(name, sizeof(name), "%s/W_dec", prefix);
    h5w_f32(w, name, wd, 2, ddm);
    snprintf(name, sizeof(name), "%s/b_dec", prefix);
    h5w_f32(w, name, t.b_dec, 1, dd);
    free(wd);
    return w->failed ? -1 : 0;
}

void model_write_tensors(hid_t f, const char *prefix, const SaeConfig *cfg, const float *flat) {
    char name[4096];
    if (H5Fget_name(f, name, sizeof(name)) < 0) snprintf(name, sizeof(name), "(unnamed HDF5 file)");
    H5W w;
    h5w_wrap(&w, f, name);
    if (put_tensors(&w, prefix, cfg, flat) != 0) die("%s", w.err);
}

static float *read_checked(hid_t f, const char *path, const char *prefix, const char *what, int rank,
                           hsize_t d0, hsize_t d1) {
    char name[128];
    hsize_t dims[2];
    snprintf(name, sizeof(name), "%s/%s", prefix, what);
    float *a = h5_read_f32(f, path, name, rank, dims);
    if (dims[0] != d0 || (rank == 2 && dims[1] != d1))
        die("%s: dataset '%s' has the wrong shape (expected %llu%s%llu)", path, name, (unsigned long long)d0,
            rank == 2 ? " x " : "", rank == 2 ? (unsigned long long)d1 : 0ull);
    const size_t n = (size_t)d0 * (rank == 2 ? d1 : 1);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) die("%s: dataset '%s' has a non-finite value at flat index %zu", path, name, i);
    return a;
}

void model_read_tensors(hid_t f, const char *path, const char *prefix, const SaeConfig *cfg, float *flat) {
    const int d = cfg->d, m = cfg->m;
    SaeTensors t;
    sae_carve(flat, cfg, &t);
    float *W_enc = read_checked(f, path, prefix, "W_enc", 2, (hsize_t)m, (hsize_t)d);
    float *b_enc = read_checked(f, path, prefix, "b_enc", 1, (hsize_t)m, 0);
    float *W_dec = read_checked(f, path, prefix, "W_dec", 2, (hsize_t)d, (hsize_t)m);
    float *b_dec = read_checked(f, path, prefix, "b_dec", 1, (hsize_t)d, 0);
    memcpy(t.W_enc, W_enc, sizeof(float) * (size_t)m * d);
    memcpy(t.b_enc, b_enc, sizeof(float) * (size_t)m);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < m; j++) t.D[(size_t)j * d + i] = W_dec[(size_t)i * m + j];
    memcpy(t.b_dec, b_dec, sizeof(float) * (size_t)d);
    free(W_enc);
    free(b_enc);
    free(W_dec);
    free(b_dec);
}

static const char *const LOSS_NAMES[7] = {"loss_total", "loss_rec",  "loss_aux", "loss_high",
                                          "loss_temp",  "loss_spat", "loss_rast"};

static void hash_text(uint64_t h, char *buf, size_t cap) { snprintf(buf, cap, "%016" PRIx64, h); }

static uint64_t read_hash(hid_t f, const char *path) {
    char buf[64];
    h5_attr_str(f, path, "job_hash", buf, sizeof(buf));
    return strtoull(buf, NULL, 16);
}

uint64_t model_job_hash(const char *path) {
    hid_t f = h5_open_read(path);
    const uint64_t h = read_hash(f, path);
    H5Fclose(f);
    return h;
}

int model_save(const char *path, const SaeConfig *cfg, const float *params, const ModelInfo *info, char *err,
               size_t cap) {
    H5W w;
    if (h5w_create(&w, path) != 0) return errorf(err, cap, "%s", w.err);
    put_tensors(&w, "params", cfg, params);
    char h[32];
    hash_text(info->hash, h, sizeof(h));
    h5w_attr_str(&w, "variant", sae_variant_name(cfg));
    h5w_attr_str(&w, "job", info->name);
    h5w_attr_str(&w, "job_hash", h);
    const struct {
        const char *name;
        double v;
    } num[] = {{"d", cfg->d},
               {"m", cfg->m},
               {"k", cfg->k},
               {"k_aux", cfg->k_aux},
               {"alpha", cfg->alpha},
               {"beta", cfg->beta},
               {"m_high", cfg->m_high},
               {"lambda_t", cfg->lambda_t},
               {"lambda_s", cfg->lambda_s},
               {"lambda_r", cfg->lambda_r},
               {"tau", cfg->tau},
               {"T_s", cfg->temp_s},
               {"scale", info->scale},
               {"theta", info->theta},
               {"seed", (double)info->seed},
               {"layer", info->layer},
               {"steps", (double)info->steps},
               {"tokens", (double)info->tokens},
               {"train_tokens_per_s", info->tokens_per_s}};
    for (size_t i = 0; i < sizeof(num) / sizeof(*num); i++) h5w_attr_f64(&w, num[i].name, num[i].v);
    for (int i = 0; i < 7; i++) h5w_attr_f64(&w, LOSS_NAMES[i], info->loss[i]);
    h5w_attr_f64(&w, "l0", info->l0);
    h5w_attr_f64(&w, "dead_frac", info->dead_frac);
    return h5w_commit(&w, err, cap);
}

float *model_load(const char *path, SaeConfig *cfg, ModelInfo *info) {
    hid_t f = h5_open_read(path);
    char variant[64];
    h5_attr_str(f, path, "variant", variant, sizeof(variant));
    const int d = (int)h5_attr_f64(f, path, "d"), m = (int)h5_attr_f64(f, path, "m");
    if (d < 1 || m < 1 || sae_config_init(cfg, variant, d, m) != 0)
        die("%s: not an stsae model (variant '%s', d %d, m %d)", path, variant, d, m);
    cfg->k = (int)h5_attr_f64(f, path, "k");
    cfg->k_aux = (int)h5_attr_f64(f, path, "k_aux");
    cfg->alpha = (float)h5_attr_f64(f, path, "alpha");
    cfg->beta = (float)h5_attr_f64(f, path, "beta");
    cfg->m_high = (int)h5_attr_f64(f, path, "m_high");
    cfg->lambda_t = (float)h5_attr_f64(f, path, "lambda_t");
    cfg->lambda_s = (float)h5_attr_f64(f, path, "lambda_s");
    cfg->lambda_r = (float)h5_attr_f64(f, path, "lambda_r");
    cfg->tau = (float)h5_attr_f64(f, path, "tau");
    cfg->temp_s = (float)h5_attr_f64(f, path, "T_s");
    if ((cfg->select == SEL_SPARSEMAX || cfg->select == SEL_ENTMAX15) && cfg->lambda_t > 0) cfg->contrast = CTR_TEMPORAL;
    if (cfg->k < 1 || cfg->k > m || cfg->m_high < 0 || cfg->m_high > m)
        die("%s: inconsistent attributes (k %d, m_high %d, m %d)", path, cfg->k, cfg->m_high, m);
    memset(info, 0, sizeof(*info));
    h5_attr_str(f, path, "job", info->name, sizeof(info->name));
    info->hash = read_hash(f, path);
    info->seed = (int64_t)h5_attr_f64(f, path, "seed");
    info->layer = (int)h5_attr_f64(f, path, "layer");
    info->scale = (float)h5_attr_f64(f, path, "scale");
    info->theta = (float)h5_attr_f64(f, path, "theta");
    info->steps = (int64_t)h5_attr_f64(f, path, "steps");
    info->tokens = (int64_t)h5_attr_f64(f, path, "tokens");
    info->tokens_per_s = h5_attr_f64(f, path, "train_tokens_per_s");
    for (int i = 0; i < 7; i++) info->loss[i] = h5_attr_f64(f, path, LOSS_NAMES[i]);
    info->l0 = h5_attr_f64(f, path, "l0");
    info->dead_frac = h5_attr_f64(f, path, "dead_frac");
    float *params = xmalloc(sizeof(float) * sae_num_params(cfg));
    model_read_tensors(f, path, "params", cfg, params);
    H5Fclose(f);
    return params;
}

int ckpt_save(const char *path, const SaeConfig *cfg, const float *params, const float *m1, const float *m2,
              const int64_t *last_fired, const TrainState *st, char *err, size_t cap) {
    H5W w;
    if (h5w_create(&w, path) != 0) return errorf(err, cap, "%s", w.err);
    hsize_t np = (hsize_t)sae_num_params(cfg), m = (hsize_t)cfg->m;
    h5w_f32(&w, "params", params, 1, &np);
    h5w_f32(&w, "adam_m", m1, 1, &np);
    h5w_f32(&w, "adam_v", m2, 1, &np);
    h5w_i64(&w, "last_fired", last_fired, 1, &m);
    char h[32];
    hash_text(st->hash, h, sizeof(h));
    h5w_attr_str(&w, "job_hash", h);
    h5w_attr_f64(&w, "step", (double)st->step);
    h5w_attr_f64(&w, "tokens", (double)st->tokens);
    h5w_attr_f64(&w, "theta", st->theta);
    h5w_attr_f64(&w, "scale", st->scale);
    h5w_attr_f64(&w, "train_s", st->train_s);
    return h5w_commit(&w, err, cap);
}

static void read_flat(hid_t f, const char *path, const char *name, size_t n, float *out) {
    hsize_t dims[1];
    float *a = h5_read_f32(f, path, name, 1, dims);
    if (dims[0] != n) die("%s: dataset '%s' has %llu values, this job's SAE %zu", path, name, (unsigned long long)dims[0], n);
    memcpy(out, a, sizeof(float) * n);
    free(a);
}

int ckpt_load(const char *path, const SaeConfig *cfg, float *params, float *m1, float *m2, int64_t *last_fired,
              TrainState *st) {
    if (access(path, F_OK) != 0) return -1;
    hid_t f = h5_open_read(path);
    const uint64_t h = read_hash(f, path);
    if (h != st->hash)
        die("%s: checkpoint of another job (hash %016" PRIx64 ", this job %016" PRIx64 "); move it away to start over",
            path, h, st->hash);
    const size_t np = sae_num_params(cfg);
    read_flat(f, path, "params", np, params);
    read_flat(f, path, "adam_m", np, m1);
    read_flat(f, path, "adam_v", np, m2);
    hsize_t dims[1];
    int64_t *lf = h5_read_i64(f, path, "last_fired", 1, dims);
    if (dims[0] != (hsize_t)cfg->m) die("%s: dataset 'last_fired' has %llu entries, m = %d", path, (unsigned long long)dims[0], cfg->m);
    memcpy(last_fired, lf, sizeof(int64_t) * (size_t)cfg->m);
    free(lf);
    st->step = (int64_t)h5_attr_f64(f, path, "step");
    st->tokens = (int64_t)h5_attr_f64(f, path, "tokens");
    st->theta = (float)h5_attr_f64(f, path, "theta");
    st->scale = (float)h5_attr_f64(f, path, "scale");
    st->train_s = h5_attr_f64(f, path, "train_s");
    H5Fclose(f);
    for (size_t i = 0; i < np; i++)
        if (!isfinite(params[i]) || !isfinite(m1[i]) || !isfinite(m2[i]))
            die("%s: non-finite parameter or moment at flat index %zu", path, i);
    if (st->step < 0) die("%s: attribute 'step' = %lld", path, (long long)st->step);
    return 0;
}
