// pyreader_encode.c — stsae's own encode and decode of saved tokens, for
// tests/test_pyreader.py (the Python reader, analysis/stsae.py, against it)
// and tests/test_export.py (exports loaded by SAELens, against it).
//
// usage: pyreader_encode MODEL.h5 TOKENS.h5 OUT.h5
// In:  a model.h5 (model_load: the same checks as eval) and TOKENS.h5 with
//      /x [n, d] float32, raw features (the feature file's units).
// Out: OUT.h5 with /z [n, m] (dense codes) and /xhat [n, d] (reconstruction in
//      the units of x), computed exactly as `stsae eval` computes them
//      (src/stages/eval.c): x times the model's scale s in float32,
//      sae_encode with the model's theta (BatchTopK's evaluation threshold),
//      sae_decode over all m latents, times 1/s.
// Exit 0, or dies naming the file and the reason.
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/io/h5io.h"
#include "stsae/io/model.h"
#include "stsae/sae/codes.h"
#include "stsae/sae/sae.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.h5 TOKENS.h5 OUT.h5\n", argv[0]);
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    SaeConfig cfg;
    ModelInfo info;
    float *params = model_load(argv[1], &cfg, &info);
    SaeTensors p;
    sae_carve(params, &cfg, &p);
    hid_t f = h5_open_read(argv[2]);
    hsize_t dims[2];
    float *x = h5_read_f32(f, argv[2], "x", 2, dims);
    H5Fclose(f);
    if (dims[1] != (hsize_t)cfg.d) die("%s: /x has %llu channels, the model d = %d", argv[2], (unsigned long long)dims[1], cfg.d);
    const int n = (int)dims[0], d = cfg.d, m = cfg.m;
    const float s = info.scale, inv_s = 1.0f / s; // as eval: load_clip's x * s, reconstructions * (1/s)
    for (size_t i = 0; i < (size_t)n * d; i++) x[i] *= s;
    SaeWork *w = sae_work_create(&cfg, n);
    SparseCodes z;
    codes_alloc(&z, n, (int64_t)n * cfg.k);
    sae_encode(&cfg, &p, x, n, info.theta, w, &z);
    float *xh = xmalloc(sizeof(float) * (size_t)n * d);
    sae_decode(&cfg, &p, &z, m, xh);
    for (size_t i = 0; i < (size_t)n * d; i++) xh[i] *= inv_s;
    float *zd = xcalloc((size_t)n * m, sizeof(float));
    for (int r = 0; r < n; r++)
        for (int64_t e = z.row_ptr[r]; e < z.row_ptr[r + 1]; e++) zd[(size_t)r * m + z.idx[e]] = z.val[e];
    H5W o;
    char err[9000];
    if (h5w_create(&o, argv[3]) != 0) die("%s", o.err);
    hsize_t dz[2] = {(hsize_t)n, (hsize_t)m}, dx[2] = {(hsize_t)n, (hsize_t)d};
    h5w_f32(&o, "z", zd, 2, dz);
    h5w_f32(&o, "xhat", xh, 2, dx);
    if (h5w_commit(&o, err, sizeof(err)) != 0) die("%s", err);
    sae_work_free(w);
    codes_free(&z);
    free(params), free(x), free(xh), free(zd);
    return 0;
}
