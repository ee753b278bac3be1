// check_metrics.c — `stsae check-metrics IN.h5 OUT.h5`: the label-free metrics
// of metrics.h on codes given in a file, for comparison with an independent
// reference (tests/test_metrics.py, numpy brute force).
//
// IN.h5:  /codes float32 [clips, T, N, m] (dense; zeros are not kept),
//         /labels int32 [clips], /embeddings float32 [clips, e] (unit rows),
//         root attributes `ema` (the EMA factor) and `use_max` (0 or 1).
// OUT.h5: /rho [m], /ms [m], /top_clips [m, 8] (float64), scalars /lag1,
//         /frac_low, /ms_mean, /purity_mean, /purity_max, /jaccard, /l0, and
//         /ema_codes [clips, T, N, m] (the EMA-smoothed codes), /clip_values
//         [clips, m]. Purity uses the 3 latents with the largest mean clip
//         value (tests are small).
// With /x and /xhat float32 [n, d] in IN.h5 (inputs and reconstructions),
// also R² (r2.h): /r2 streamed in blocks of R2_BLOCK rows (so the sums cross
// blocks, as eval's clips do) and /r2_rows whole.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/io/h5io.h"
#include "stsae/metrics/metrics.h"
#include "stsae/metrics/r2.h"
#include "stsae/sae/codes.h"
#include "stsae/tools/check.h"

// Dense rows [n, m] -> sparse codes (non-zeros only).
static void to_sparse(const float *x, int n, int m, SparseCodes *z) {
    z->n_rows = n;
    z->row_ptr = xrealloc(z->row_ptr, sizeof(int64_t) * ((size_t)n + 1));
    z->row_ptr[0] = 0;
    int64_t o = 0;
    codes_reserve(z, (int64_t)n * m);
    for (int r = 0; r < n; r++) {
        for (int j = 0; j < m; j++)
            if (x[(size_t)r * m + j] != 0.0f) z->idx[o] = j, z->val[o++] = x[(size_t)r * m + j];
        z->row_ptr[r + 1] = o;
    }
    z->nnz = o;
}

// R² of IN.h5's /x and /xhat, both forms, into o (when IN.h5 has them).
#define R2_BLOCK 7
static void check_r2(hid_t f, const char *in, hid_t o) {
    if (!h5_exists(f, "/x")) return;
    hsize_t dx[2], dh[2];
    float *x = h5_read_f32(f, in, "/x", 2, dx), *xh = h5_read_f32(f, in, "/xhat", 2, dh);
    if (dx[0] != dh[0] || dx[1] != dh[1]) die("%s: /x and /xhat differ in shape", in);
    const int n = (int)dx[0], d = (int)dx[1];
    R2Sum r;
    r2_sum_init(&r, d);
    for (int i = 0; i < n; i += R2_BLOCK)
        r2_sum_add(&r, x + (size_t)i * d, xh + (size_t)i * d, n - i < R2_BLOCK ? n - i : R2_BLOCK);
    h5_write_scalar(o, "r2", r2_sum_value(&r));
    h5_write_scalar(o, "r2_rows", r2_rows(x, xh, n, d));
    r2_sum_free(&r);
    free(x), free(xh);
}

int check_metrics_main(int argc, char **argv) {
    if (argc != 2) die("usage: stsae check-metrics IN.h5 OUT.h5");
    const char *in = argv[0], *out = argv[1];
    hid_t f = h5_open_read(in);
    hsize_t dz[4], dl[1], de[2];
    float *Z = h5_read_f32(f, in, "/codes", 4, dz);
    float *E = h5_read_f32(f, in, "/embeddings", 2, de);
    float *labf = h5_read_f32(f, in, "/labels", 1, dl);
    const float a = (float)h5_attr_f64(f, in, "ema");
    const int use_max = (int)h5_attr_f64(f, in, "use_max");
    const int clips = (int)dz[0], T = (int)dz[1], N = (int)dz[2], m = (int)dz[3], e = (int)de[1], tn = T * N;
    if (de[0] != dz[0] || dl[0] != dz[0]) die("%s: /codes, /labels and /embeddings disagree on the clips", in);
    int32_t *labels = xmalloc(sizeof(int32_t) * (size_t)clips);
    for (int c = 0; c < clips; c++) labels[c] = (int32_t)labf[c];

    SparseCodes z, zs;
    codes_alloc(&z, tn, 0);
    codes_alloc(&zs, tn, 0);
    Lag1 l;
    lag1_init(&l, m);
    float *V = xmalloc(sizeof(float) * (size_t)clips * m), *scratch = xcalloc((size_t)m, sizeof(float));
    float *ema = xcalloc((size_t)clips * tn * m, sizeof(float));
    double nnz = 0;
    for (int c = 0; c < clips; c++) {
        to_sparse(Z + (size_t)c * tn * m, tn, m, &z);
        lag1_add_sparse(&l, &z, T, N);
        clip_values_sparse(&z, m, use_max, V + (size_t)c * m);
        nnz += (double)z.nnz;
        smooth_ema(&z, T, N, m, a, scratch, &zs);
        for (int r = 0; r < tn; r++)
            for (int64_t q = zs.row_ptr[r]; q < zs.row_ptr[r + 1]; q++)
                ema[((size_t)c * tn + r) * m + zs.idx[q]] = zs.val[q];
    }
    double *rho = xmalloc(sizeof(double) * (size_t)m), *ms = xmalloc(sizeof(double) * (size_t)m), frac;
    const double lag1 = lag1_finish(&l, rho, &frac);
    const double ms_mean = monosemanticity(V, clips, m, E, e, ms);
    int32_t *top = xmalloc(sizeof(int32_t) * (size_t)m * 8);
    top_clips(V, clips, m, top);
    double pm, px;
    action_purity(V, clips, m, top, labels, 3, &pm, &px);
    uint8_t *live = xmalloc((size_t)m);
    for (int j = 0; j < m; j++) live[j] = l.nz[j] > 0;
    const double jac = jaccard_uniqueness(top, m, live);

    hid_t o = h5_create_tmp(out);
    check_r2(f, in, o);
    H5Fclose(f);
    hsize_t dm[1] = {(hsize_t)m}, dt[2] = {(hsize_t)m, 8}, dv[2] = {(hsize_t)clips, (hsize_t)m};
    h5_write_f64(o, "rho", rho, 1, dm);
    h5_write_f64(o, "ms", ms, 1, dm);
    double *t = xmalloc(sizeof(double) * (size_t)m * 8);
    for (size_t i = 0; i < (size_t)m * 8; i++) t[i] = top[i];
    h5_write_f64(o, "top_clips", t, 2, dt);
    h5_write_scalar(o, "lag1", lag1);
    h5_write_scalar(o, "frac_low", frac);
    h5_write_scalar(o, "ms_mean", ms_mean);
    h5_write_scalar(o, "purity_mean", pm);
    h5_write_scalar(o, "purity_max", px);
    h5_write_scalar(o, "jaccard", jac);
    h5_write_scalar(o, "l0", nnz / ((double)clips * tn));
    h5_write_f32(o, "ema_codes", ema, 4, dz);
    h5_write_f32(o, "clip_values", V, 2, dv);
    h5_commit(o, out);
    lag1_free(&l);
    codes_free(&z), codes_free(&zs);
    free(Z), free(E), free(labf), free(labels), free(V), free(scratch), free(ema), free(rho), free(ms), free(top),
        free(live), free(t);
    return 0;
}
