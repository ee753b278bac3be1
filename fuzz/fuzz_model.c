// fuzz_model.c — libFuzzer target, structure-aware: the model-file and
// checkpoint readers of model.h (model_load, model_job_hash, ckpt_load) and
// the h5io.h reads under them.
//
// In:  not a file: a description of one (fuzz_h5.h). The first byte picks
//      model.h5 (read by model_load, or model_job_hash alone) or ckpt.h5 (read
//      by ckpt_load for an SAE configuration the input also picks); the rest
//      decides every root attribute (variant, job, job_hash, d, m, k, k_aux,
//      alpha, ..., step, tokens: present or not, any numeric type, strings,
//      pairs, empty; values small, on the 2^31 edges, NaN, +-Inf, huge) and
//      every dataset (params/W_enc, b_enc, W_dec, b_dec; params, adam_m,
//      adam_v, last_fired: present or not, rank, dims agreeing with d and m or
//      not, float32 or any other type, values finite or not, written or left
//      unwritten so that a few bytes claim 2^40 values). The target writes
//      that file with the HDF5 API to a scratch file on /dev/shm, then runs
//      the reader.
// Out: nothing; a crash, a sanitizer report (UBSan's float-cast-overflow
//      included: a NaN or 1e300 attribute must not reach an int), a leak on a
//      path that returned, an allocation past libFuzzer's -malloc_limit_mb,
//      or a failed check is a finding. These readers report through die()
//      (their documented error path), so they run under FUZZ_TRY; a die
//      must name the file.
//
// Checks on success: model_load's configuration is one sae_config_init
// accepts, d, m >= 1, 1 <= k <= m, 0 <= m_high <= m, every parameter finite;
// ckpt_load's parameters and moments finite and its step >= 0.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_h5.h"
#include "stsae/io/model.h"
#include "stsae/sae/sae.h"

enum { MAX_WRITE = 4096 };

static const char *const VARIANTS[] = {"standard",  "temporal", "separate",   "raster",      "frozen",
                                       "sparsemax", "entmax15", "standard+M", "temporal+M",  "separate+M",
                                       "raster+M",  "",         "+M",         "standard+M+M"};
enum { N_VARIANTS = sizeof(VARIANTS) / sizeof(VARIANTS[0]) };

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

static double param_value(size_t i, void *vc) {
    (void)i;
    FuzzBytes *b = vc;
    const int k = fb_u8(b);
    return k < 248 ? (double)(k % 17 - 8) / 4.0 : fb_double(b);
}

static double fired_value(size_t i, void *vc) {
    (void)i;
    return (double)(fb_u8(vc) % 7);
}

// A claimed size: mostly small and positive, sometimes anything.
static uint64_t claim(FuzzBytes *b, int small) {
    return fb_chance(b, 216) ? 1 + (uint64_t)fb_pick(b, small) : fb_count(b);
}

// One dataset of rank/dims (perturbed at times), usually float32.
static void tensor(FuzzBytes *b, hid_t f, const char *name, int rank, hsize_t d0, hsize_t d1, hid_t usual,
                   double (*value)(size_t, void *)) {
    if (!fb_chance(b, 248)) return;
    hsize_t dims[H5S_MAX_RANK] = {d0, d1};
    if (fb_chance(b, 16)) {
        rank = fb_pick(b, 4);
        for (int i = 0; i < rank; i++) dims[i] = fb_chance(b, 128) ? dims[i] : fb_count(b);
    }
    hid_t t = fh_num_type(b, usual);
    fh_dataset(b, f, name, t, rank, dims, value, b, NULL, MAX_WRITE);
    H5Tclose(t);
}

static void model_file(FuzzBytes *b, const char *path) {
    hid_t f = fh_create(b, path);
    const int vi = fb_pick(b, N_VARIANTS);
    const uint64_t d = claim(b, 6), m = claim(b, 8);
    fh_attr_str(b, f, "variant", VARIANTS[vi]);
    fh_attr_str(b, f, "job", "job-0");
    char hash[32];
    snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)fb_u64(b));
    fh_attr_str(b, f, "job_hash", hash);
    const double k = 1.0 + fb_pick(b, 4), m_high = fb_pick(b, 2);
    const struct {
        const char *name;
        double v;
    } num[] = {{"d", (double)d},
               {"m", (double)m},
               {"k", k},
               {"k_aux", 4},
               {"alpha", 1.0 / 32},
               {"beta", 1},
               {"m_high", m_high},
               {"lambda_t", 0.5},
               {"lambda_s", 0},
               {"lambda_r", 0},
               {"tau", 0.1},
               {"T_s", 1},
               {"scale", 1.5},
               {"theta", 0},
               {"seed", 3},
               {"layer", 1},
               {"steps", 10},
               {"tokens", 1000},
               {"train_tokens_per_s", 5},
               {"loss_total", 1},
               {"loss_rec", 1},
               {"loss_aux", 0},
               {"loss_high", 0},
               {"loss_temp", 0},
               {"loss_spat", 0},
               {"loss_rast", 0},
               {"l0", 4},
               {"dead_frac", 0}};
    for (size_t i = 0; i < sizeof(num) / sizeof(num[0]); i++) fh_attr_num(b, f, num[i].name, num[i].v, H5T_IEEE_F64LE);
    tensor(b, f, "params/W_enc", 2, m, d, H5T_IEEE_F32LE, param_value);
    tensor(b, f, "params/b_enc", 1, m, 0, H5T_IEEE_F32LE, param_value);
    tensor(b, f, "params/W_dec", 2, d, m, H5T_IEEE_F32LE, param_value);
    tensor(b, f, "params/b_dec", 1, d, 0, H5T_IEEE_F32LE, param_value);
    H5Fclose(f);
}

static void ckpt_file(FuzzBytes *b, const char *path, const SaeConfig *cfg, const char *hash) {
    hid_t f = fh_create(b, path);
    const hsize_t np = (hsize_t)sae_num_params(cfg);
    fh_attr_str(b, f, "job_hash", hash);
    const char *names[] = {"step", "tokens", "theta", "scale", "train_s"};
    const double vals[] = {5, 640, 0, 1, 2.5};
    for (int i = 0; i < 5; i++) fh_attr_num(b, f, names[i], vals[i], H5T_IEEE_F64LE);
    tensor(b, f, "params", 1, np, 0, H5T_IEEE_F32LE, param_value);
    tensor(b, f, "adam_m", 1, np, 0, H5T_IEEE_F32LE, param_value);
    tensor(b, f, "adam_v", 1, np, 0, H5T_IEEE_F32LE, param_value);
    tensor(b, f, "last_fired", 1, (hsize_t)cfg->m, 0, H5T_STD_I64LE, fired_value);
    H5Fclose(f);
}

static void check_died(const char *path) {
    FUZZ_CHECK(strstr(fuzz_died_msg(), path) != NULL, "died without naming the file: %s", fuzz_died_msg());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzBytes in = {data, size}, *b = &in;
    const int mode = fb_pick(b, 3);
    int died;
    if (mode < 2) { // model.h5
        const char *path = fuzz_path("model.h5");
        model_file(b, path);
        FUZZ_CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "the writer left HDF5 objects open");
        if (mode == 1) {
            FUZZ_TRY(died, model_job_hash(path));
            if (died) check_died(path);
            return 0;
        }
        SaeConfig cfg;
        ModelInfo info;
        float *volatile params = NULL;
        FUZZ_TRY(died, params = model_load(path, &cfg, &info));
        if (died) {
            check_died(path);
            return 0;
        }
        SaeConfig ref;
        FUZZ_CHECK(sae_config_init(&ref, sae_variant_name(&cfg), cfg.d, cfg.m) == 0, "model_load's variant");
        FUZZ_CHECK(cfg.d >= 1 && cfg.m >= 1 && cfg.k >= 1 && cfg.k <= cfg.m && cfg.m_high >= 0 && cfg.m_high <= cfg.m,
                   "model_load accepted d %d, m %d, k %d, m_high %d", cfg.d, cfg.m, cfg.k, cfg.m_high);
        const size_t np = sae_num_params(&cfg);
        for (size_t i = 0; i < np; i++) FUZZ_CHECK(isfinite(params[i]), "model_load: parameter %zu not finite", i);
        free(params);
        FUZZ_CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "model_load left HDF5 objects open");
        return 0;
    }
    // ckpt.h5 for a configuration of the input's choice (small: the caller sizes the buffers)
    SaeConfig cfg;
    const char *variant = VARIANTS[fb_pick(b, 10)];
    const int d = 1 + fb_pick(b, 6), m = 1 + fb_pick(b, 8);
    if (sae_config_init(&cfg, variant, d, m) != 0) return 0;
    TrainState st = {.hash = fb_chance(b, 240) ? 0x1234abcdull : fb_u64(b)};
    const char *path = fuzz_path("ckpt.h5");
    ckpt_file(b, path, &cfg, fb_chance(b, 240) ? "000000001234abcd" : "not a hash");
    FUZZ_CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "the writer left HDF5 objects open");
    const size_t np = sae_num_params(&cfg);
    float *p = malloc(sizeof(float) * np), *m1 = malloc(sizeof(float) * np), *m2 = malloc(sizeof(float) * np);
    int64_t *fired = malloc(sizeof(int64_t) * (size_t)cfg.m);
    volatile int rc = -2;
    FUZZ_TRY(died, rc = ckpt_load(path, &cfg, p, m1, m2, fired, &st));
    if (died) {
        check_died(path);
    } else {
        FUZZ_CHECK(rc == 0, "ckpt_load of an existing file returned %d", rc);
        FUZZ_CHECK(st.step >= 0, "ckpt_load accepted step %lld", (long long)st.step);
        for (size_t i = 0; i < np; i++)
            FUZZ_CHECK(isfinite(p[i]) && isfinite(m1[i]) && isfinite(m2[i]), "ckpt_load: value %zu not finite", i);
        FUZZ_CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "ckpt_load left HDF5 objects open");
    }
    free(p);
    free(m1);
    free(m2);
    free(fired);
    return 0;
}
