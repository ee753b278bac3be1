// model.c — model files and checkpoints (model.h): the one module that
// writes, reads and validates model.h5 and ckpt.h5, and the one list of the
// SAE configuration's attribute names (CONFIG_ATTRS), which model.h5's writer
// and reader and check-step's CASE.h5 reader share.
//
// In:  a trained SAE (configuration, flat parameters, ModelInfo) or a
//      training state; or a file, which may lie: every number that becomes an
//      integer is checked whole and in range (h5io.h), every tensor's shape is
//      checked against d and m before anything is sized from it, and the flat
//      buffer is allocated only once the tensors have been read (a few KB of
//      file claiming d = m = 2^20 must not allocate 8 TB first).
// Out: the files (h5io.h's checked atomic writes), or the configuration and
//      parameters; every read error dies naming the file and the reason.
#include "stsae/io/model.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/io/h5io.h"

// --- attribute tables -------------------------------------------------------------

// One numeric root attribute and the struct member it holds.
typedef enum { A_INT, A_I64, A_F32, A_F64 } AttrKind;
enum {
    UP_TO_M = 1,       // an integer at most m
    POSITIVE = 2,      // a float > 0
    MODEL_ONLY = 4,    // not in CASE.h5 (m_high: CASE.h5 has high_frac)
    CASE_IF_AUXK = 8,  // CASE.h5: read only where the variant has AuxK (sae_config_init's k_aux > 0)
    CASE_OPTIONAL = 16 // CASE.h5: absent keeps the variant's default
};
typedef struct {
    const char *name;
    size_t off;
    AttrKind kind;
    long long lo;   // integers: the least value (the greatest: INT_MAX, or m with UP_TO_M)
    unsigned flags;
} Attr;

#define CFG(name, field, kind, lo, flags) {name, offsetof(SaeConfig, field), kind, lo, flags}
// The SAE's configuration after variant, d and m (SPEC §5's names: CASE.h5
// keeps them, with high_frac for m_high).
static const Attr CONFIG_ATTRS[] = {
    CFG("k", k, A_INT, 1, UP_TO_M),
    CFG("k_aux", k_aux, A_INT, 0, CASE_IF_AUXK),
    CFG("alpha", alpha, A_F32, 0, 0),
    CFG("beta", beta, A_F32, 0, 0),
    CFG("m_high", m_high, A_INT, 0, UP_TO_M | MODEL_ONLY),
    CFG("lambda_t", lambda_t, A_F32, 0, 0),
    CFG("lambda_s", lambda_s, A_F32, 0, 0),
    CFG("lambda_r", lambda_r, A_F32, 0, 0),
    CFG("tau", tau, A_F32, 0, POSITIVE),
    CFG("T_s", temp_s, A_F32, 0, POSITIVE | CASE_OPTIONAL),
};
#undef CFG

#define INFO(name, field, kind, lo) {name, offsetof(ModelInfo, field), kind, lo, 0}
// model.h5's record of the job (ModelInfo's numbers; name and hash are strings).
static const Attr INFO_ATTRS[] = {
    INFO("scale", scale, A_F32, 0),
    INFO("theta", theta, A_F32, 0),
    INFO("seed", seed, A_I64, LLONG_MIN),
    INFO("layer", layer, A_INT, 0),
    INFO("steps", steps, A_I64, 0),
    INFO("tokens", tokens, A_I64, 0),
    INFO("train_tokens_per_s", tokens_per_s, A_F64, 0),
    INFO("loss_total", loss[0], A_F64, 0),
    INFO("loss_rec", loss[1], A_F64, 0),
    INFO("loss_aux", loss[2], A_F64, 0),
    INFO("loss_high", loss[3], A_F64, 0),
    INFO("loss_temp", loss[4], A_F64, 0),
    INFO("loss_spat", loss[5], A_F64, 0),
    INFO("loss_rast", loss[6], A_F64, 0),
    INFO("l0", l0, A_F64, 0),
    INFO("dead_frac", dead_frac, A_F64, 0),
};
#undef INFO

#define N_OF(a) (sizeof(a) / sizeof(*(a)))

static double attr_get(const void *base, const Attr *a) {
    const char *p = (const char *)base + a->off;
    switch (a->kind) {
    case A_INT: return *(const int *)p;
    case A_I64: return (double)*(const int64_t *)p;
    case A_F32: return *(const float *)p;
    default: return *(const double *)p;
    }
}

// Reads attribute a of f into base (checked: integers whole and in range,
// configuration floats finite and, where POSITIVE, > 0).
static void attr_read(hid_t f, const char *path, const Attr *a, int m, int config, void *base) {
    char *p = (char *)base + a->off;
    if (a->kind == A_INT || a->kind == A_I64) {
        const long long hi = a->flags & UP_TO_M ? m : a->kind == A_INT ? INT_MAX : LLONG_MAX;
        const long long v = h5_attr_int(f, path, a->name, a->lo, hi);
        if (a->kind == A_INT) *(int *)p = (int)v;
        else *(int64_t *)p = v;
        return;
    }
    const double v = h5_attr_f64(f, path, a->name);
    if (config && !isfinite(v)) die("%s: root attribute %s = %g must be finite", path, a->name, v);
    if ((a->flags & POSITIVE) && !(v > 0.0)) die("%s: root attribute %s = %g must be > 0", path, a->name, v);
    if (a->kind == A_F32) *(float *)p = (float)v;
    else *(double *)p = v;
}

static void attrs_put(H5W *w, const Attr *t, size_t n, const void *base) {
    for (size_t i = 0; i < n; i++)
        h5w_attr_f64(w, t[i].name, attr_get(base, &t[i]));
}

// variant, d, m and CONFIG_ATTRS (model.h5's form).
static void put_config(H5W *w, const SaeConfig *cfg) {
    h5w_attr_str(w, "variant", sae_variant_name(cfg));
    h5w_attr_f64(w, "d", cfg->d);
    h5w_attr_f64(w, "m", cfg->m);
    attrs_put(w, CONFIG_ATTRS, N_OF(CONFIG_ATTRS), cfg);
}

void model_read_config(hid_t f, const char *path, SaeAttrForm form, int d, int m, SaeConfig *cfg) {
    char variant[64];
    h5_attr_str(f, path, "variant", variant, sizeof(variant));
    if (sae_config_init(cfg, variant, d, m) != 0) die("%s: unknown variant '%s'", path, variant);
    const int is_case = form == SAE_ATTRS_CASE;
    for (size_t i = 0; i < N_OF(CONFIG_ATTRS); i++) {
        const Attr *a = &CONFIG_ATTRS[i];
        if (is_case && (a->flags & MODEL_ONLY)) continue;
        if (is_case && (a->flags & CASE_IF_AUXK) && cfg->k_aux == 0) continue;
        if (is_case && (a->flags & CASE_OPTIONAL) && H5Aexists(f, a->name) <= 0) continue;
        attr_read(f, path, a, m, 1, cfg);
    }
    if (is_case) { // m_high from the fraction of m (BatchTopK only; required, ignored elsewhere)
        const double high_frac = h5_attr_f64(f, path, "high_frac");
        if (cfg->select == SEL_BATCHTOPK) {
            if (!(high_frac > 0.0 && high_frac <= 1.0)) die("%s: high_frac must be in (0, 1]", path);
            cfg->m_high = (int)floor(high_frac * m + 0.5);
        }
    }
}

// --- tensors ------------------------------------------------------------------------

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

// prefix/what, checked to be [d0] or [d0, d1] before it is read (h5io.h
// checks that the file stores what the shape claims), and finite.
static float *read_checked(hid_t f, const char *path, const char *prefix, const char *what, int rank,
                           hsize_t d0, hsize_t d1) {
    char name[128];
    hsize_t dims[2];
    snprintf(name, sizeof(name), "%s/%s", prefix, what);
    h5_dims(f, path, name, rank, dims);
    if (dims[0] != d0 || (rank == 2 && dims[1] != d1))
        die("%s: dataset '%s' has the wrong shape (expected %llu%s%llu)", path, name, (unsigned long long)d0,
            rank == 2 ? " x " : "", rank == 2 ? (unsigned long long)d1 : 0ull);
    float *a = h5_read_f32(f, path, name, rank, dims);
    const size_t n = (size_t)d0 * (rank == 2 ? d1 : 1);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) die("%s: dataset '%s' has a non-finite value at flat index %zu", path, name, i);
    return a;
}

float *model_read_tensors(hid_t f, const char *path, const char *prefix, const SaeConfig *cfg) {
    const int d = cfg->d, m = cfg->m;
    float *W_enc = read_checked(f, path, prefix, "W_enc", 2, (hsize_t)m, (hsize_t)d);
    float *b_enc = read_checked(f, path, prefix, "b_enc", 1, (hsize_t)m, 0);
    float *W_dec = read_checked(f, path, prefix, "W_dec", 2, (hsize_t)d, (hsize_t)m);
    float *b_dec = read_checked(f, path, prefix, "b_dec", 1, (hsize_t)d, 0);
    // sized only now that the file has shown it holds m x d values
    float *flat = xmalloc(sizeof(float) * sae_num_params(cfg));
    SaeTensors t;
    sae_carve(flat, cfg, &t);
    memcpy(t.W_enc, W_enc, sizeof(float) * (size_t)m * d);
    memcpy(t.b_enc, b_enc, sizeof(float) * (size_t)m);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < m; j++) t.D[(size_t)j * d + i] = W_dec[(size_t)i * m + j];
    memcpy(t.b_dec, b_dec, sizeof(float) * (size_t)d);
    free(W_enc);
    free(b_enc);
    free(W_dec);
    free(b_dec);
    return flat;
}

// --- model.h5 and ckpt.h5 -------------------------------------------------------------

static void hash_text(uint64_t h, char *buf, size_t cap) { snprintf(buf, cap, "%016" PRIx64, h); }

static uint64_t read_hash(hid_t f, const char *path) {
    char buf[64];
    h5_attr_str(f, path, "job_hash", buf, sizeof(buf));
    return strtoull(buf, NULL, 16);
}

uint64_t model_job_hash(const char *path) {
    hid_t f = h5_open_read(path);
    h5_check_format_version(f, path, MODEL_FORMAT_VERSION);
    const uint64_t h = read_hash(f, path);
    H5Fclose(f);
    return h;
}

int model_save(const char *path, const SaeConfig *cfg, const float *params, const ModelInfo *info, char *err,
               size_t cap) {
    H5W w;
    if (h5w_create(&w, path) != 0) return errorf(err, cap, "%s", w.err);
    h5w_format_version(&w, MODEL_FORMAT_VERSION);
    put_tensors(&w, "params", cfg, params);
    char h[32];
    hash_text(info->hash, h, sizeof(h));
    h5w_attr_str(&w, "job", info->name);
    h5w_attr_str(&w, "job_hash", h);
    put_config(&w, cfg);
    attrs_put(&w, INFO_ATTRS, N_OF(INFO_ATTRS), info);
    h5w_attr_str(&w, "gemm", info->gemm[0] ? info->gemm : "fp32");
    return h5w_commit(&w, err, cap);
}

float *model_load(const char *path, SaeConfig *cfg, ModelInfo *info) {
    hid_t f = h5_open_read(path);
    h5_check_format_version(f, path, MODEL_FORMAT_VERSION);
    const int d = (int)h5_attr_int(f, path, "d", 1, INT_MAX), m = (int)h5_attr_int(f, path, "m", 1, INT_MAX);
    model_read_config(f, path, SAE_ATTRS_MODEL, d, m, cfg);
    sae_config_resolve(cfg); // sparsemax / entmax15: L_temp when lambda_t > 0 (the variant table)
    memset(info, 0, sizeof(*info));
    h5_attr_str(f, path, "job", info->name, sizeof(info->name));
    info->hash = read_hash(f, path);
    for (size_t i = 0; i < N_OF(INFO_ATTRS); i++) attr_read(f, path, &INFO_ATTRS[i], m, 0, info);
    if (H5Aexists(f, "gemm") > 0) {
        h5_attr_str(f, path, "gemm", info->gemm, sizeof(info->gemm));
        if (strcmp(info->gemm, "fp32") && strcmp(info->gemm, "bf16"))
            die("%s: root attribute gemm = '%s' must be fp32 or bf16", path, info->gemm);
    } else {
        snprintf(info->gemm, sizeof(info->gemm), "fp32");
    }
    float *params = model_read_tensors(f, path, "params", cfg);
    H5Fclose(f);
    return params;
}

int ckpt_save(const char *path, const SaeConfig *cfg, const float *params, const float *m1, const float *m2,
              const int64_t *last_fired, const TrainState *st, char *err, size_t cap) {
    H5W w;
    if (h5w_create(&w, path) != 0) return errorf(err, cap, "%s", w.err);
    h5w_format_version(&w, CKPT_FORMAT_VERSION);
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

// A 1-D dataset of n values into out; its length is checked before it is read.
static void read_flat(hid_t f, const char *path, const char *name, size_t n, float *out) {
    hsize_t dims[1];
    h5_dims(f, path, name, 1, dims);
    if (dims[0] != n) die("%s: dataset '%s' has %llu values, this job's SAE %zu", path, name, (unsigned long long)dims[0], n);
    float *a = h5_read_f32(f, path, name, 1, dims);
    memcpy(out, a, sizeof(float) * n);
    free(a);
}

int ckpt_load(const char *path, const SaeConfig *cfg, float *params, float *m1, float *m2, int64_t *last_fired,
              TrainState *st) {
    if (access(path, F_OK) != 0) return -1;
    hid_t f = h5_open_read(path);
    h5_check_format_version(f, path, CKPT_FORMAT_VERSION);
    const uint64_t h = read_hash(f, path);
    if (h != st->hash)
        die("%s: checkpoint of another job (hash %016" PRIx64 ", this job %016" PRIx64 "); move it away to start over",
            path, h, st->hash);
    const size_t np = sae_num_params(cfg);
    read_flat(f, path, "params", np, params);
    read_flat(f, path, "adam_m", np, m1);
    read_flat(f, path, "adam_v", np, m2);
    hsize_t dims[1];
    h5_dims(f, path, "last_fired", 1, dims);
    if (dims[0] != (hsize_t)cfg->m) die("%s: dataset 'last_fired' has %llu entries, m = %d", path, (unsigned long long)dims[0], cfg->m);
    int64_t *lf = h5_read_i64(f, path, "last_fired", 1, dims);
    memcpy(last_fired, lf, sizeof(int64_t) * (size_t)cfg->m);
    free(lf);
    st->step = h5_attr_int(f, path, "step", 0, LLONG_MAX);
    st->tokens = h5_attr_int(f, path, "tokens", 0, LLONG_MAX);
    st->theta = (float)h5_attr_f64(f, path, "theta");
    st->scale = (float)h5_attr_f64(f, path, "scale");
    st->train_s = h5_attr_f64(f, path, "train_s");
    H5Fclose(f);
    for (size_t i = 0; i < np; i++)
        if (!isfinite(params[i]) || !isfinite(m1[i]) || !isfinite(m2[i]))
            die("%s: non-finite parameter or moment at flat index %zu", path, i);
    return 0;
}
