// check_backbone.c — `stsae check-backbone MODEL IN.h5 OUT.h5` (tools/check.h): one
// backbone forward on pixels given in a file, for comparison with an
// independent reference (tests/test_backbone.py).
//
// IN.h5:  /pixels float32 [clips, T_in, 3, S, S] (normalized); root attributes
//         layers (integers), final_norm (0/1, default 0), pos_interp ("hf" or
//         "meta", default "hf"), patch (the pixels and motion backbones only),
//         device ("cpu" or "cuda", default "cpu": the ViTs on this process's
//         GPU, vit_cuda.h) and math ("fp32", "tf32" or "bf16", default "fp32":
//         the GPU's GEMMs).
// OUT.h5: /layer_LL float32 [clips, T, N, d] per requested layer LL.
// stdout: one line: backbone, weights digest and the token grid.
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/comm/device.h"
#include "stsae/io/backbone.h"
#include "stsae/io/h5io.h"
#include "stsae/tools/check.h"

enum { MAX_LAYERS = 64 };

int check_backbone_main(int argc, char **argv) {
    if (argc != 3) die("usage: stsae check-backbone MODEL IN.h5 OUT.h5");
    const char *model = argv[0], *in_path = argv[1], *out_path = argv[2];

    hid_t f = h5_open_read(in_path);
    int layers[MAX_LAYERS];
    const int n_layers = h5_attr_ints(f, in_path, "layers", layers, MAX_LAYERS);
    BackboneOptions opt = {.final_norm = h5_attr_f64_opt(f, in_path, "final_norm", 0.0) != 0.0,
                           .pos_interp = POS_INTERP_HF};
    char word[32] = "hf";
    if (H5Aexists(f, "pos_interp") > 0) h5_attr_str(f, in_path, "pos_interp", word, sizeof(word));
    if (backbone_pos_interp(word, &opt.pos_interp) != 0)
        die("%s: attribute 'pos_interp' is '%s', expected hf or meta", in_path, word);
    snprintf(word, sizeof(word), "cpu");
    if (H5Aexists(f, "device") > 0) h5_attr_str(f, in_path, "device", word, sizeof(word));
    if (strcmp(word, "cpu") != 0 && strcmp(word, "cuda") != 0)
        die("%s: attribute 'device' is '%s', expected cpu or cuda", in_path, word);
    opt.cuda = !strcmp(word, "cuda");
    if (opt.cuda && device_use(0) < 0)
        die("%s: device cuda, but %s", in_path, device_count() < 0 ? "this stsae was built without CUDA" : "no CUDA device is present");
    snprintf(word, sizeof(word), "fp32");
    if (H5Aexists(f, "math") > 0) h5_attr_str(f, in_path, "math", word, sizeof(word));
    if (backbone_math(word, &opt.math) != 0)
        die("%s: attribute 'math' is '%s', expected fp32, tf32 or bf16", in_path, word);
    if (backbone_builtin(model)) {
        double p = h5_attr_f64(f, in_path, "patch");
        if (!(p >= 1.0 && p <= 4096.0 && p == floor(p)))
            die("%s: attribute 'patch' must be an integer >= 1", in_path);
        opt.patch = (int)p;
    }
    hsize_t dims[5];
    float *pixels = h5_read_f32(f, in_path, "pixels", 5, dims);
    H5Fclose(f);
    if (dims[0] < 1 || dims[1] < 1 || dims[2] != 3 || dims[3] < 1 || dims[3] != dims[4] || dims[3] > 65536)
        die("%s: /pixels is [%llu, %llu, %llu, %llu, %llu], expected [clips, T_in, 3, S, S]", in_path,
            (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
            (unsigned long long)dims[3], (unsigned long long)dims[4]);
    const int clips = (int)dims[0], T_in = (int)dims[1], S = (int)dims[3];
    const size_t n_in = (size_t)clips * T_in * 3 * S * S;
    for (size_t i = 0; i < n_in; i++)
        if (!isfinite(pixels[i])) die("%s: /pixels has a non-finite value at flat index %zu", in_path, i);

    Backbone *bb = backbone_open(model, &opt);
    backbone_check_layers(bb, layers, n_layers, in_path);
    const BackboneShape sh = backbone_shape(bb, T_in, S);
    const size_t n_out = (size_t)clips * sh.T * sh.N * sh.d;
    float *out[MAX_LAYERS];
    for (int j = 0; j < n_layers; j++) out[j] = xmalloc(sizeof(float) * n_out);

    const double t0 = wall_time();
    backbone_forward(bb, pixels, clips, T_in, S, layers, n_layers, out);
    const double seconds = wall_time() - t0;

    hid_t g = h5_create_tmp(out_path);
    const hsize_t odims[4] = {(hsize_t)clips, (hsize_t)sh.T, (hsize_t)sh.N, (hsize_t)sh.d};
    for (int j = 0; j < n_layers; j++) {
        char name[32];
        snprintf(name, sizeof(name), "layer_%02d", layers[j]);
        h5_write_f32(g, name, out[j], 4, odims);
        free(out[j]);
    }
    h5_commit(g, out_path);
    printf("backbone %s digest %s T %d H %d W %d N %d d %d clips %d seconds %.3f\n", backbone_name(bb),
           backbone_digest(bb), sh.T, sh.H, sh.W, sh.N, sh.d, clips, seconds);
    backbone_close(bb);
    free(pixels);
    return 0;
}
