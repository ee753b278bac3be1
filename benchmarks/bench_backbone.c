// bench_backbone.c — clips/s of the backbone forward (backbone.h) at the real
// ViT-B shapes, from random weights written to a temporary Hugging Face
// directory (config.json + model.safetensors), so no download is needed.
//
//   bench_backbone [--models dinov2,videomae,pixels] [--reps N] [--clips C]
//                  [--layers 3,7,11] [--final-norm] [--json] [--device cuda [--math fp32|tf32|bf16]]
// Shapes: hidden 768, 12 blocks, 12 heads, MLP 3072. DINOv2: patch 14,
// position grid 37 x 37 (image_size 518, resampled to 16 x 16), 16 frames of
// 224 px per clip, i.e. 16 sequences of 257 tokens. VideoMAE: patch 16,
// tubelet 2, 16 frames of 224 px, one sequence of 1568 tokens. pixels:
// patch 16. Each figure is the median of N timed calls of C clips after one
// warm-up call; OMP_NUM_THREADS sets the threads. The OpenBLAS kernel in use
// is printed: OpenBLAS 0.3.21 does not know AMD Zen 4 and falls back to its
// Haswell kernel; OPENBLAS_CORETYPE=SKYLAKEX selects the AVX-512 one.
// The PyTorch baseline is bench_torch_backbone.py (same shapes and layers).
// --device cuda: the ViTs on GPU 0 (vit_cuda.h) with the GEMMs in --math
// (default fp32); the pixels backbone stays on the CPU; the timed calls
// include the pixels' upload and the features' download.
#define _POSIX_C_SOURCE 200809L // mkdtemp, mkdir
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h> // openblas_get_corename: OpenBLAS picks its kernel at load time (OPENBLAS_CORETYPE)

#include "stsae/base/common.h"
#include "stsae/comm/device.h"
#include "stsae/io/backbone.h"

enum { D = 768, DEPTH = 12, HEADS = 12, MLP = 3072, FRAMES = 16, SIZE = 224 };

typedef struct {
    char name[96];
    int rank;
    long long shape[5];
    float mean, spread; // uniform in mean +- spread
} Spec;

static long long numel(const Spec *s) {
    long long n = 1;
    for (int i = 0; i < s->rank; i++) n *= s->shape[i];
    return n;
}

static int add(Spec *list, int n, float mean, float spread, int rank, long long a, long long b, long long c,
               long long d, long long e, const char *fmt, int layer) {
    Spec *s = &list[n];
    snprintf(s->name, sizeof(s->name), fmt, layer);
    s->rank = rank;
    long long sh[5] = {a, b, c, d, e};
    memcpy(s->shape, sh, sizeof(sh));
    s->mean = mean;
    s->spread = spread;
    return n + 1;
}

// The encoder tensors of a ViT-B checkpoint in Hugging Face naming.
static int vit_specs(Spec *t, int videomae) {
    const float w = 0.035f; // uniform +-0.035: std 0.02, the models' initializer range
    const char *pre = videomae ? "videomae." : "";
    char f[128];
    int n = 0;
#define ADD(mean, spread, rank, a, b, c, d, e, leaf, i)                                                         \
    (snprintf(f, sizeof(f), "%s%s", pre, leaf), n = add(t, n, mean, spread, rank, a, b, c, d, e, f, i))
    if (videomae) {
        ADD(0, w, 5, D, 3, 2, 16, 16, "embeddings.patch_embeddings.projection.weight", 0);
    } else {
        ADD(0, w, 4, D, 3, 14, 14, 0, "embeddings.patch_embeddings.projection.weight", 0);
        ADD(0, w, 3, 1, 1, D, 0, 0, "embeddings.cls_token", 0);
        ADD(0, w, 3, 1, 1 + 37 * 37, D, 0, 0, "embeddings.position_embeddings", 0);
    }
    ADD(0, w, 1, D, 0, 0, 0, 0, "embeddings.patch_embeddings.projection.bias", 0);
    for (int i = 0; i < DEPTH; i++) {
        const char *n1 = videomae ? "encoder.layer.%d.layernorm_before" : "encoder.layer.%d.norm1";
        const char *n2 = videomae ? "encoder.layer.%d.layernorm_after" : "encoder.layer.%d.norm2";
        char leaf[96];
        snprintf(leaf, sizeof(leaf), "%s.weight", n1);
        ADD(1, 0.1f, 1, D, 0, 0, 0, 0, leaf, i);
        snprintf(leaf, sizeof(leaf), "%s.bias", n1);
        ADD(0, w, 1, D, 0, 0, 0, 0, leaf, i);
        ADD(0, w, 2, D, D, 0, 0, 0, "encoder.layer.%d.attention.attention.query.weight", i);
        ADD(0, w, 2, D, D, 0, 0, 0, "encoder.layer.%d.attention.attention.key.weight", i);
        ADD(0, w, 2, D, D, 0, 0, 0, "encoder.layer.%d.attention.attention.value.weight", i);
        if (videomae) {
            ADD(0, w, 1, D, 0, 0, 0, 0, "encoder.layer.%d.attention.attention.q_bias", i);
            ADD(0, w, 1, D, 0, 0, 0, 0, "encoder.layer.%d.attention.attention.v_bias", i);
        } else {
            ADD(0, w, 1, D, 0, 0, 0, 0, "encoder.layer.%d.attention.attention.query.bias", i);
            ADD(0, w, 1, D, 0, 0, 0, 0, "encoder.layer.%d.attention.attention.key.bias", i);
            ADD(0, w, 1, D, 0, 0, 0, 0, "encoder.layer.%d.attention.attention.value.bias", i);
        }
        ADD(0, w, 2, D, D, 0, 0, 0, "encoder.layer.%d.attention.output.dense.weight", i);
        ADD(0, w, 1, D, 0, 0, 0, 0, "encoder.layer.%d.attention.output.dense.bias", i);
        snprintf(leaf, sizeof(leaf), "%s.weight", n2);
        ADD(1, 0.1f, 1, D, 0, 0, 0, 0, leaf, i);
        snprintf(leaf, sizeof(leaf), "%s.bias", n2);
        ADD(0, w, 1, D, 0, 0, 0, 0, leaf, i);
        if (videomae) {
            ADD(0, w, 2, MLP, D, 0, 0, 0, "encoder.layer.%d.intermediate.dense.weight", i);
            ADD(0, w, 1, MLP, 0, 0, 0, 0, "encoder.layer.%d.intermediate.dense.bias", i);
            ADD(0, w, 2, D, MLP, 0, 0, 0, "encoder.layer.%d.output.dense.weight", i);
            ADD(0, w, 1, D, 0, 0, 0, 0, "encoder.layer.%d.output.dense.bias", i);
        } else {
            ADD(0.1f, 0.05f, 1, D, 0, 0, 0, 0, "encoder.layer.%d.layer_scale1.lambda1", i);
            ADD(0.1f, 0.05f, 1, D, 0, 0, 0, 0, "encoder.layer.%d.layer_scale2.lambda1", i);
            ADD(0, w, 2, MLP, D, 0, 0, 0, "encoder.layer.%d.mlp.fc1.weight", i);
            ADD(0, w, 1, MLP, 0, 0, 0, 0, "encoder.layer.%d.mlp.fc1.bias", i);
            ADD(0, w, 2, D, MLP, 0, 0, 0, "encoder.layer.%d.mlp.fc2.weight", i);
            ADD(0, w, 1, D, 0, 0, 0, 0, "encoder.layer.%d.mlp.fc2.bias", i);
        }
    }
    ADD(1, 0.1f, 1, D, 0, 0, 0, 0, "layernorm.weight", 0);
    ADD(0, w, 1, D, 0, 0, 0, 0, "layernorm.bias", 0);
#undef ADD
    return n;
}

static void write_model(const char *dir, int videomae) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    if (!fp) die("%s: cannot create", path);
    if (videomae)
        fprintf(fp, "{\"model_type\": \"videomae\", \"hidden_size\": %d, \"num_hidden_layers\": %d, "
                    "\"num_attention_heads\": %d, \"intermediate_size\": %d, \"hidden_act\": \"gelu\", "
                    "\"layer_norm_eps\": 1e-12, \"qkv_bias\": true, \"image_size\": 224, \"patch_size\": 16, "
                    "\"num_channels\": 3, \"num_frames\": 16, \"tubelet_size\": 2, \"use_mean_pooling\": false}\n",
                D, DEPTH, HEADS, MLP);
    else
        fprintf(fp, "{\"model_type\": \"dinov2\", \"hidden_size\": %d, \"num_hidden_layers\": %d, "
                    "\"num_attention_heads\": %d, \"mlp_ratio\": 4, \"hidden_act\": \"gelu\", "
                    "\"layer_norm_eps\": 1e-06, \"qkv_bias\": true, \"use_swiglu_ffn\": false, "
                    "\"image_size\": 518, \"patch_size\": 14, \"num_channels\": 3}\n",
                D, DEPTH, HEADS);
    fclose(fp);

    Spec *t = xmalloc(sizeof(Spec) * 256);
    const int n = vit_specs(t, videomae);
    size_t cap = 1 << 16, len = 0;
    char *hdr = xmalloc(cap);
    long long off = 0;
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(hdr + len, cap - len, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", i ? "," : "",
                                t[i].name);
        for (int k = 0; k < t[i].rank; k++)
            len += (size_t)snprintf(hdr + len, cap - len, "%s%lld", k ? "," : "", t[i].shape[k]);
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%lld,%lld]}", off, off + 4 * numel(&t[i]));
        off += 4 * numel(&t[i]);
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    if (len >= cap) die("bench_backbone: header buffer too small");
    while (len % 8) hdr[len++] = ' ';
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    fp = fopen(path, "wb");
    if (!fp) die("%s: cannot create", path);
    unsigned char lenb[8];
    for (int k = 0; k < 8; k++) lenb[k] = (unsigned char)((uint64_t)len >> (8 * k));
    fwrite(lenb, 1, 8, fp);
    fwrite(hdr, 1, len, fp);
    uint64_t rng = 12345;
    float *buf = xmalloc(sizeof(float) * (size_t)(1 + 37 * 37) * D * 4);
    for (int i = 0; i < n; i++) {
        const long long m = numel(&t[i]);
        for (long long j = 0; j < m; j++)
            buf[j] = t[i].mean + t[i].spread * (float)(2.0 * rng_uniform(&rng) - 1.0);
        if (fwrite(buf, sizeof(float), (size_t)m, fp) != (size_t)m) die("%s: write failed", path);
    }
    if (fclose(fp) != 0) die("%s: write failed", path);
    free(buf);
    free(hdr);
    free(t);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *models = "dinov2,videomae";
    char layer_list[128] = "3,7,11";
    int reps = 3, clips = 1, json = 0, final_norm = 0, cuda = 0;
    VitMath math = VIT_MATH_FP32;
    const char *math_word = "fp32";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--clips") && i + 1 < argc) clips = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) snprintf(layer_list, sizeof(layer_list), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--final-norm")) final_norm = 1;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc && !strcmp(argv[i + 1], "cuda")) cuda = 1, i++;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc && !strcmp(argv[i + 1], "cpu")) i++;
        else if (!strcmp(argv[i], "--math") && i + 1 < argc && backbone_math(argv[i + 1], &math) == 0)
            math_word = argv[++i];
        else {
            fprintf(stderr, "usage: bench_backbone [--models dinov2,videomae,pixels] [--reps N] [--clips C] "
                            "[--layers 3,7,11] [--final-norm] [--json] [--device cpu|cuda] [--math fp32|tf32|bf16]\n");
            return 2;
        }
    }
    if (cuda && device_use(0) < 0) die("bench_backbone: --device cuda, but %s", device_describe());
    if (reps < 1) reps = 1;
    if (clips < 1) clips = 1;
    int layers[16], n_layers = 0;
    for (char *s = strtok(layer_list, ","); s && n_layers < 16; s = strtok(NULL, ",")) layers[n_layers++] = atoi(s);

    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/stsae_bench_backbone_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) die("%s: cannot create a temporary directory", dir);

    const size_t n_in = (size_t)clips * FRAMES * 3 * SIZE * SIZE;
    float *pixels = xmalloc(sizeof(float) * n_in);
    uint64_t rng = 7;
    for (size_t i = 0; i < n_in; i++) pixels[i] = (float)(2.0 * rng_uniform(&rng) - 1.0) * 1.7f;
    if (!json) {
        printf("# OpenBLAS kernel %s\n", openblas_get_corename());
        if (cuda) printf("# %s# ViTs on GPU 0, GEMMs %s\n", device_list(), math_word);
        printf("%-9s %6s %8s %10s %10s %8s\n", "backbone", "clips", "threads", "seconds", "clips/s", "tokens");
    }
    char list[256];
    snprintf(list, sizeof(list), "%s", models);
    for (char *m = strtok(list, ","); m; m = strtok(NULL, ",")) {
        BackboneOptions opt = {.final_norm = final_norm, .pos_interp = POS_INTERP_HF, .patch = 16, .cuda = cuda,
                               .math = math};
        const int pixels_bb = !strcmp(m, "pixels");
        if (!pixels_bb && strcmp(m, "dinov2") && strcmp(m, "videomae")) die("bench_backbone: unknown model '%s'", m);
        char mdir[600];
        snprintf(mdir, sizeof(mdir), "%s/%s", dir, m);
        if (!pixels_bb) {
            if (mkdir(mdir, 0700) != 0) die("%s: cannot create", mdir);
            write_model(mdir, !strcmp(m, "videomae"));
        }
        Backbone *bb = backbone_open(pixels_bb ? "pixels" : mdir, &opt);
        const BackboneShape sh = backbone_shape(bb, FRAMES, SIZE);
        float *out[16];
        for (int j = 0; j < n_layers; j++) out[j] = xmalloc(sizeof(float) * (size_t)clips * sh.T * sh.N * sh.d);
        double *t = xmalloc(sizeof(double) * (size_t)reps);
        for (int r = -1; r < reps; r++) { // r = -1: warm-up
            const double t0 = wall_time();
            backbone_forward(bb, pixels, clips, FRAMES, SIZE, layers, n_layers, out);
            if (r >= 0) t[r] = wall_time() - t0;
        }
        qsort(t, (size_t)reps, sizeof(double), cmp_double);
        const double sec = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
        if (json)
            printf("{\"backbone\": \"%s\", \"clips\": %d, \"seconds\": %.4f, \"clips_per_s\": %.4f, \"threads\": %d, "
                   "\"blas_kernel\": \"%s\", \"device\": \"%s\", \"math\": \"%s\"}\n",
                   m, clips, sec, clips / sec, max_threads(), openblas_get_corename(), cuda && !pixels_bb ? "cuda" : "cpu",
                   cuda && !pixels_bb ? math_word : "fp32");
        else
            printf("%-9s %6d %8d %10.3f %10.4f %8d\n", m, clips, max_threads(), sec, clips / sec, sh.T * sh.N);
        fflush(stdout);
        for (int j = 0; j < n_layers; j++) free(out[j]);
        free(t);
        backbone_close(bb);
        if (!pixels_bb) {
            char p[700];
            snprintf(p, sizeof(p), "%s/config.json", mdir);
            unlink(p);
            snprintf(p, sizeof(p), "%s/model.safetensors", mdir);
            unlink(p);
            rmdir(mdir);
        }
    }
    rmdir(dir);
    free(pixels);
    return 0;
}
