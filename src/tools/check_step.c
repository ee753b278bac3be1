// check_step.c — the check-step subcommand (tools/check.h).
#include "stsae/tools/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/io/h5io.h"
#include "stsae/io/model.h" // model_read_tensors, model_write_tensors
#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"

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

// The dimensions of a dataset of `rank` dimensions (dies naming it otherwise).
static void dims_of(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims) {
    if (!h5_exists(f, dset)) die("%s: missing dataset '%s'", path, dset);
    hid_t ds = H5Dopen2(f, dset, H5P_DEFAULT), sp = H5Dget_space(ds);
    const int r = H5Sget_simple_extent_ndims(sp);
    if (r == rank) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(ds);
    if (r != rank) die("%s: dataset '%s' has %d dimensions, expected %d", path, dset, r, rank);
}

static void load_case(const char *path, Case *c) {
    hid_t f = h5_open_read(path);
    char variant[64];
    h5_attr_str(f, path, "variant", variant, sizeof(variant));
    hsize_t dw[2], db[1], dd[2], dbd[1], dx[4], dm[1];
    dims_of(f, path, "params/W_enc", 2, dw);
    const int m = (int)dw[0], d = (int)dw[1];
    dims_of(f, path, "params/b_enc", 1, db);
    dims_of(f, path, "params/W_dec", 2, dd);
    dims_of(f, path, "params/b_dec", 1, dbd);
    if (db[0] != (hsize_t)m || dd[0] != (hsize_t)d || dd[1] != (hsize_t)m || dbd[0] != (hsize_t)d)
        die("%s: parameter shapes disagree: W_enc [%d,%d], b_enc [%llu], W_dec [%llu,%llu], b_dec [%llu]",
            path, m, d, (unsigned long long)db[0], (unsigned long long)dd[0], (unsigned long long)dd[1],
            (unsigned long long)dbd[0]);
    SaeConfig *cfg = &c->cfg;
    if (sae_config_init(cfg, variant, d, m) != 0) die("%s: unknown variant '%s'", path, variant);
    cfg->k = (int)h5_attr_f64(f, path, "k");
    if (cfg->k_aux > 0) cfg->k_aux = (int)h5_attr_f64(f, path, "k_aux");
    cfg->alpha = (float)h5_attr_f64(f, path, "alpha");
    cfg->beta = (float)h5_attr_f64(f, path, "beta");
    cfg->lambda_t = (float)h5_attr_f64(f, path, "lambda_t");
    cfg->lambda_s = (float)h5_attr_f64(f, path, "lambda_s");
    cfg->lambda_r = (float)h5_attr_f64(f, path, "lambda_r");
    cfg->tau = (float)h5_attr_f64(f, path, "tau");
    cfg->temp_s = (float)h5_attr_f64_opt(f, path, "T_s", 1.0);
    double high_frac = h5_attr_f64(f, path, "high_frac");
    const int T = (int)h5_attr_f64(f, path, "T"), H = (int)h5_attr_f64(f, path, "H"),
              W = (int)h5_attr_f64(f, path, "W");
    if (cfg->k < 1 || cfg->k > m) die("%s: k = %d must be in [1, m = %d]", path, cfg->k, m);
    if (cfg->k_aux < 0) die("%s: k_aux = %d must be >= 0", path, cfg->k_aux);
    if (!(cfg->tau > 0.0f)) die("%s: tau must be > 0", path);
    if (!(cfg->temp_s > 0.0f)) die("%s: T_s must be > 0", path);
    if (cfg->select == SEL_BATCHTOPK) {
        if (!(high_frac > 0.0 && high_frac <= 1.0)) die("%s: high_frac must be in (0, 1]", path);
        cfg->m_high = (int)floor(high_frac * m + 0.5);
    }

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
    int simplex = cfg->select == SEL_SPARSEMAX || cfg->select == SEL_ENTMAX15;
    if (simplex && rank == 4 && cfg->lambda_t > 0.0f) cfg->contrast = CTR_TEMPORAL;
    if ((cfg->contrast == CTR_TEMPORAL || cfg->contrast == CTR_SEPARATE) && rank != 4)
        die("%s: variant %s needs whole clips, batch/x [B,T,N,d]", path, variant);
    if ((cfg->contrast == CTR_TEMPORAL || cfg->contrast == CTR_SEPARATE) && T < 2)
        die("%s: variant %s needs T >= 2", path, variant);
    if (cfg->contrast == CTR_RASTER && rank != 3)
        die("%s: variant raster needs pairs, batch/x [P,2,d]", path);
    c->dead = h5_read_u8(f, path, "state/dead", 1, dm);
    if (dm[0] != (hsize_t)m) die("%s: state/dead has %llu entries, m = %d", path, (unsigned long long)dm[0], m);

    require_finite(c->x, (size_t)c->batch.n_tok * d, path, "batch/x");
    c->params = xmalloc(sizeof(float) * sae_num_params(cfg));
    model_read_tensors(f, path, "params", cfg, c->params); // also rejects NaN / Inf

    c->optim_steps = (int)h5_attr_f64_opt(f, path, "optim_steps", 0);
    if (c->optim_steps < 0) die("%s: optim_steps must be >= 0", path);
    c->adam = adam_defaults(m, 100);
    c->adam.lr = (float)h5_attr_f64_opt(f, path, "lr", c->adam.lr);
    c->adam.warmup_steps = (int64_t)h5_attr_f64_opt(f, path, "warmup_steps", 1);
    c->adam.beta1 = (float)h5_attr_f64_opt(f, path, "adam_beta1", 0.9);
    c->adam.beta2 = (float)h5_attr_f64_opt(f, path, "adam_beta2", 0.999);
    c->adam.eps = (float)h5_attr_f64_opt(f, path, "adam_eps", 1e-8);
    if (c->adam.warmup_steps < 1) die("%s: warmup_steps must be >= 1", path);
    H5Fclose(f);
}

int check_step_main(int argc, char **argv) {
    if (argc != 2) die("usage: stsae check-step CASE.h5 OUT.h5");
    const char *case_path = argv[0], *out_path = argv[1];
    Case c;
    load_case(case_path, &c);
    const SaeConfig *cfg = &c.cfg;
    const size_t np = sae_num_params(cfg);
    float *grads = xmalloc(sizeof(float) * np);
    SaeTensors p, g;
    sae_carve(c.params, cfg, &p);
    sae_carve(grads, cfg, &g);
    SaeWork *w = sae_work_create(cfg, c.batch.n_tok);
    SaeLosses L;
    sae_step(cfg, &p, &g, c.x, &c.batch, c.dead, NULL, w, &L);

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
        float *m1 = xcalloc(np, sizeof(float)), *m2 = xcalloc(np, sizeof(float));
        double *totals = xmalloc(sizeof(double) * (size_t)c.optim_steps);
        double theta = 0.0;
        for (int t = 1; t <= c.optim_steps; t++) {
            sae_step(cfg, &p, &g, c.x, &c.batch, c.dead, NULL, w, &L);
            totals[t - 1] = L.total;
            theta = t == 1 ? L.min_kept : 0.99 * theta + 0.01 * L.min_kept;
            optim_step(cfg, &c.adam, t, c.params, grads, m1, m2);
        }
        hsize_t n = (hsize_t)c.optim_steps;
        h5_write_f64(f, "optim/loss_total", totals, 1, &n);
        model_write_tensors(f, "optim", cfg, c.params);
        if (cfg->select == SEL_BATCHTOPK) h5_write_scalar(f, "optim/theta", theta);
        free(m1);
        free(m2);
        free(totals);
    }
    h5_commit(f, out_path);
    sae_work_free(w);
    free(grads);
    free(c.params);
    free(c.x);
    free(c.dead);
    return 0;
}
