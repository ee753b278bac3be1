// check_clip.c — `stsae check-clip MODEL IN.h5 OUT.h5` (tools/check.h): CLIP's
// image and text embeddings (io/clip_model.h) of inputs given in a file, for
// comparison with `transformers`' CLIPModel and CLIPTokenizer
// (tests/test_clip.py).
//
// IN.h5:  /pixels float32 [n, 3, S, S] (preprocessed; S = image_size) and/or
//         /texts, variable-length UTF-8 strings [t]; at least one of them.
// OUT.h5: /image_embeddings float32 [n, E] (with /pixels), /text_embeddings
//         float32 [t, E] and /token_ids int32 [t, ctx] (with /texts): the
//         projected embeddings before L2 normalisation, the ids padded to
//         ctx (77) as CLIPTokenizer(padding="max_length", truncation=True).
// stdout: one line: the weights digest, E, the counts and the seconds of
//         each tower.
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "stsae/base/common.h"
#include "stsae/io/clip_model.h"
#include "stsae/io/h5io.h"
#include "stsae/tools/check.h"

int check_clip_main(int argc, char **argv) {
    if (argc != 3) die("usage: stsae check-clip MODEL IN.h5 OUT.h5");
    const char *model = argv[0], *in_path = argv[1], *out_path = argv[2];

    hid_t f = h5_open_read(in_path);
    const int has_pixels = h5_exists(f, "pixels"), has_texts = h5_exists(f, "texts");
    if (!has_pixels && !has_texts) die("%s: holds neither /pixels nor /texts", in_path);
    hsize_t dims[4] = {0};
    float *pixels = NULL;
    if (has_pixels) {
        pixels = h5_read_f32(f, in_path, "pixels", 4, dims);
        if (dims[0] < 1 || dims[1] != 3 || dims[2] < 1 || dims[2] != dims[3] || dims[2] > 65536)
            die("%s: /pixels is [%llu, %llu, %llu, %llu], expected [n, 3, S, S]", in_path,
                (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
                (unsigned long long)dims[3]);
        const size_t total = (size_t)dims[0] * 3 * dims[2] * dims[3];
        for (size_t i = 0; i < total; i++)
            if (!isfinite(pixels[i])) die("%s: /pixels has a non-finite value at flat index %zu", in_path, i);
    }
    int n_texts = 0;
    char **texts = has_texts ? h5_read_strings(f, in_path, "texts", &n_texts) : NULL;
    H5Fclose(f);

    ClipModel *m = clip_model_open(model);
    const int E = clip_model_embed_dim(m), ctx = clip_model_context(m), n = (int)dims[0];
    float *img = has_pixels ? xmalloc(sizeof(float) * (size_t)n * E) : NULL;
    double t_img = 0.0, t_txt = 0.0;
    if (has_pixels) {
        const double t0 = wall_time();
        clip_model_embed_images(m, pixels, n, (int)dims[2], img);
        t_img = wall_time() - t0;
    }
    float *txt = xmalloc(sizeof(float) * ((size_t)n_texts * E + 1));
    int32_t *ids = xmalloc(sizeof(int32_t) * ((size_t)n_texts * ctx + 1));
    const double t0 = wall_time();
    for (int i = 0; i < n_texts; i++) {
        char what[4200];
        snprintf(what, sizeof(what), "%s: /texts[%d]", in_path, i);
        int32_t *row = ids + (size_t)i * ctx;
        clip_model_embed_ids(m, row, clip_model_tokenize(m, texts[i], what, row), txt + (size_t)i * E);
    }
    t_txt = wall_time() - t0;

    hid_t g = h5_create_tmp(out_path);
    if (has_pixels) h5_write_f32(g, "image_embeddings", img, 2, (const hsize_t[]){(hsize_t)n, (hsize_t)E});
    if (has_texts) {
        h5_write_f32(g, "text_embeddings", txt, 2, (const hsize_t[]){(hsize_t)n_texts, (hsize_t)E});
        h5_write_i32(g, "token_ids", ids, 2, (const hsize_t[]){(hsize_t)n_texts, (hsize_t)ctx});
    }
    h5_commit(g, out_path);
    printf("clip digest %s E %d images %d seconds %.3f texts %d seconds %.3f\n", clip_model_digest(m), E,
           has_pixels ? n : 0, t_img, n_texts, t_txt);
    clip_model_close(m);
    for (int i = 0; i < n_texts; i++) free(texts[i]);
    free(texts);
    free(pixels);
    free(img);
    free(txt);
    free(ids);
    return 0;
}
