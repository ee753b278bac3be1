// check_step.c — the check-step subcommand (tools/check.h): one training step
// of a CASE.h5 (SPEC §5) into OUT.h5, for checking against the reference.
// CASE.h5's SAE configuration is read through model.h (model_read_config, its
// CASE form), the one owner of those attribute names; its parameters through
// model_read_tensors, as eval reads a model.h5's.
// --device cuda: the same step, and the same optimizer run, by the CUDA twin
// (sae_cuda.h, fp32 encoder GEMM), for every variant (their `cuda` column);
// exit 77 saying "no CUDA device" where the build has no CUDA or the machine
// no device.
#include "stsae/tools/check.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/comm/device.h"
#include "stsae/io/h5io.h"
#include "stsae/io/model.h" // model_read_config, model_read_tensors, model_write_tensors
#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"
#include "stsae/sae/variants.h"
#ifdef STSAE_HAVE_CUDA
#include "stsae/sae/sae_cuda.h"
#endif

typedef struct {
    SaeConfig cfg;
    SaeBatch batch;
    float *params;  // flat, sae_carve layout
    float *x;
    uint8_t *dead;
    int optim_steps;
    AdamConfig adam;
} Case;

static void require_finite(const float *a, size_t n, const char *path, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i])) die("%s: %s has a non-finite value (NaN or Inf) at flat index %zu", path, what, i);
}

// CASE.h5 (SPEC §5): d and m from the parameters' shapes, the configuration
// through model.h's reader of the SAE's attributes (CASE form), the batch,
// the dead mask, the parameters, and the optional optimizer settings.
static void load_case(const char *path, Case *c) {
    hid_t f = h5_open_read(path);
    hsize_t dw[2], db[1], dd[2], dbd[1], dx[4], dm[1];
    h5_dims(f, path, "params/W_enc", 2, dw);
    h5_dims(f, path, "params/b_enc", 1, db);
    h5_dims(f, path, "params/W_dec", 2, dd);
    h5_dims(f, path, "params/b_dec", 1, dbd);
    if (dw[0] < 1 || dw[1] < 1 || dw[0] > INT_MAX || dw[1] > INT_MAX)
        die("%s: params/W_enc is [%llu,%llu]: m and d must be in [1, %d]", path, (unsigned long long)dw[0],
            (unsigned long long)dw[1], INT_MAX);
    const int m = (int)dw[0], d = (int)dw[1];
    if (db[0] != (hsize_t)m || dd[0] != (hsize_t)d || dd[1] != (hsize_t)m || dbd[0] != (hsize_t)d)
        die("%s: parameter shapes disagree: W_enc [%d,%d], b_enc [%llu], W_dec [%llu,%llu], b_dec [%llu]",
            path, m, d, (unsigned long long)db[0], (unsigned long long)dd[0], (unsigned long long)dd[1],
            (unsigned long long)dbd[0]);
    SaeConfig *cfg = &c->cfg;
    model_read_config(f, path, SAE_ATTRS_CASE, d, m, cfg);
    const char *variant = sae_variant_name(cfg);
    const int T = (int)h5_attr_int(f, path, "T", 0, INT_MAX), H = (int)h5_attr_int(f, path, "H", 0, INT_MAX),
              W = (int)h5_attr_int(f, path, "W", 0, INT_MAX);

    // the batch: [B,T,N,d] clips, [P,2,d] pairs or [n,d] tokens
    if (!h5_exists(f, "batch/x")) die("%s: missing dataset 'batch/x'", path);
    hid_t ds = H5Dopen2(f, "batch/x", H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(sp);
    H5Sclose(sp);
    H5Dclose(ds);
    if (rank < 2 || rank > 4) die("%s: batch/x must have 2, 3 or 4 dimensions, has %d", path, rank);
    c->x = h5_read_f32(f, path, "batch/x", rank, dx);
    if (dx[rank - 1] != (hsize_t)d) die("%s: batch/x has width %llu, the SAE %d", path, (unsigned long long)dx[rank - 1], d);
    if (rank == 4) {
        if (dx[1] != (hsize_t)T || dx[2] != (hsize_t)H * W)
            die("%s: batch/x is [%llu,%llu,%llu,%d] but T=%d, H*W=%d", path, (unsigned long long)dx[0],
                (unsigned long long)dx[1], (unsigned long long)dx[2], d, T, H * W);
        c->batch = sae_batch_clips((int)dx[0], T, H, W);
    } else if (rank == 3) {
        if (dx[1] != 2) die("%s: a 3-D batch/x must be raster pairs [P,2,d]", path);
        c->batch = sae_batch_pairs((int)dx[0]);
    } else {
        c->batch = sae_batch_tokens((int)dx[0]);
    }
    if (rank == 4) sae_config_resolve(cfg); // whole clips: sparsemax / entmax15 with L_temp when lambda_t > 0
    if ((cfg->contrast == CTR_TEMPORAL || cfg->contrast == CTR_SEPARATE) && rank != 4)
        die("%s: variant %s needs whole clips, batch/x [B,T,N,d]", path, variant);
    if ((cfg->contrast == CTR_TEMPORAL || cfg->contrast == CTR_SEPARATE) && T < 2)
        die("%s: variant %s needs T >= 2", path, variant);
    if (cfg->contrast == CTR_RASTER && rank != 3)
        die("%s: variant raster needs pairs, batch/x [P,2,d]", path);
    c->dead = h5_read_u8(f, path, "state/dead", 1, dm);
    if (dm[0] != (hsize_t)m) die("%s: state/dead has %llu entries, m = %d", path, (unsigned long long)dm[0], m);

    require_finite(c->x, (size_t)c->batch.n_tok * d, path, "batch/x");
    c->params = model_read_tensors(f, path, "params", cfg); // also rejects NaN / Inf

    c->optim_steps = (int)h5_attr_int_opt(f, path, "optim_steps", 0, INT_MAX, 0);
    c->adam = adam_defaults(m, 100);
    c->adam.lr = (float)h5_attr_f64_opt(f, path, "lr", c->adam.lr);
    c->adam.warmup_steps = h5_attr_int_opt(f, path, "warmup_steps", 1, LLONG_MAX, 1);
    c->adam.beta1 = (float)h5_attr_f64_opt(f, path, "adam_beta1", 0.9);
    c->adam.beta2 = (float)h5_attr_f64_opt(f, path, "adam_beta2", 0.999);
    c->adam.eps = (float)h5_attr_f64_opt(f, path, "adam_eps", 1e-8);
    H5Fclose(f);
}

#ifdef STSAE_HAVE_CUDA
// The CPU flow of check_step_main on the device: the first step's losses and
// gradients (host grads), then optim_steps steps with Adam from the case's
// parameters (totals, theta; the final parameters back in c->params).
static void run_cuda(Case *c, const char *path, float *grads, SaeLosses *L, double *totals, double *theta) {
    SaeConfig *cfg = &c->cfg;
    const SaeVariant *v = sae_variant_of(cfg);
    if (!v || !v->cuda)
        die("%s: check-step --device cuda: variant %s has no CUDA step (sae_cuda.h)", path, sae_variant_name(cfg));
    const SaeBatch b = c->batch;
    const int d = cfg->d, m = cfg->m, n = b.n_tok;
    const size_t np = sae_num_params(cfg);
    SaeDeviceState st;
    sae_device_state_create(&st, cfg);
    dev_upload(st.params, c->params, np);
    float *x_dev = dev_alloc_floats((size_t)n * d);
    dev_upload(x_dev, c->x, (size_t)n * d);
    uint8_t *dead_dev = dev_alloc((size_t)m);
    dev_upload_bytes(dead_dev, c->dead, (size_t)m);
    SaeTensors pd, gd;
    sae_carve(st.params, cfg, &pd);
    sae_carve(st.grads, cfg, &gd);
    SaeCudaWork *w = sae_cuda_work_create(cfg, n, SAE_GEMM_FP32);
    sae_step_cuda(cfg, &pd, &gd, x_dev, &b, dead_dev, NULL, w, L);
    dev_download(grads, st.grads, np);
    for (int t = 1; t <= c->optim_steps; t++) {
        SaeLosses Lt;
        sae_step_cuda(cfg, &pd, &gd, x_dev, &b, dead_dev, NULL, w, &Lt);
        totals[t - 1] = Lt.total;
        *theta = t == 1 ? Lt.min_kept : 0.99 * *theta + 0.01 * Lt.min_kept;
        optim_step_cuda(cfg, &c->adam, t, st.params, st.grads, st.m1, st.m2);
    }
    if (c->optim_steps > 0) dev_download(c->params, st.params, np);
    sae_cuda_work_free(w);
    dev_free(x_dev);
    dev_free(dead_dev);
    sae_device_state_free(&st);
}
#endif

int check_step_main(int argc, char **argv) {
    const char *usage = "usage: stsae check-step [--device cpu|cuda] CASE.h5 OUT.h5";
    const char *files[2] = {NULL, NULL};
    int n_files = 0, cuda = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            const char *dv = argv[++i];
            if (strcmp(dv, "cpu") && strcmp(dv, "cuda")) die("check-step: --device cpu or cuda, not '%s'", dv);
            cuda = !strcmp(dv, "cuda");
        } else if (n_files < 2 && strncmp(argv[i], "--", 2)) {
            files[n_files++] = argv[i];
        } else {
            die("%s", usage);
        }
    }
    if (n_files != 2) die("%s", usage);
    if (cuda && device_count() <= 0) {
        printf("check-step: no CUDA device (%s)\n", device_describe());
        return 77;
    }
    const char *case_path = files[0], *out_path = files[1];
    Case c;
    load_case(case_path, &c);
    const SaeConfig *cfg = &c.cfg;
    const size_t np = sae_num_params(cfg);
    float *grads = xmalloc(sizeof(float) * np);
    double *totals = xmalloc(sizeof(double) * (size_t)(c.optim_steps > 0 ? c.optim_steps : 1));
    double theta = 0.0;
    SaeLosses L;
    SaeWork *w = NULL;
    if (cuda) {
#ifdef STSAE_HAVE_CUDA
        run_cuda(&c, case_path, grads, &L, totals, &theta);
#endif
    } else {
        SaeTensors p, g;
        sae_carve(c.params, cfg, &p);
        sae_carve(grads, cfg, &g);
        w = sae_work_create(cfg, c.batch.n_tok);
        sae_step(cfg, &p, &g, c.x, &c.batch, c.dead, NULL, w, &L);
    }

    hid_t f = h5_create_tmp(out_path);
    h5_write_scalar(f, "loss/rec", L.rec);
    h5_write_scalar(f, "loss/aux", L.aux);
    h5_write_scalar(f, "loss/total", L.total);
    if (cfg->m_high > 0) h5_write_scalar(f, "loss/high", L.high);
    if (cfg->contrast == CTR_TEMPORAL || cfg->contrast == CTR_SEPARATE) h5_write_scalar(f, "loss/temp", L.temp);
    if (cfg->contrast == CTR_SEPARATE) h5_write_scalar(f, "loss/spat", L.spat);
    if (cfg->contrast == CTR_RASTER) h5_write_scalar(f, "loss/rast", L.rast);
    model_write_tensors(f, "grad", cfg, grads);

    if (c.optim_steps > 0) {
        if (!cuda) {
            SaeTensors p, g;
            sae_carve(c.params, cfg, &p);
            sae_carve(grads, cfg, &g);
            float *m1 = xcalloc(np, sizeof(float)), *m2 = xcalloc(np, sizeof(float));
            for (int t = 1; t <= c.optim_steps; t++) {
                sae_step(cfg, &p, &g, c.x, &c.batch, c.dead, NULL, w, &L);
                totals[t - 1] = L.total;
                theta = t == 1 ? L.min_kept : 0.99 * theta + 0.01 * L.min_kept;
                optim_step(cfg, &c.adam, t, c.params, grads, m1, m2);
            }
            free(m1);
            free(m2);
        }
        hsize_t n = (hsize_t)c.optim_steps;
        h5_write_f64(f, "optim/loss_total", totals, 1, &n);
        model_write_tensors(f, "optim", cfg, c.params);
        if (cfg->select == SEL_BATCHTOPK) h5_write_scalar(f, "optim/theta", theta);
    }
    h5_commit(f, out_path);
    if (w) sae_work_free(w);
    free(totals);
    free(grads);
    free(c.params);
    free(c.x);
    free(c.dead);
    return 0;
}
