// test_cuda_vit.c — the ViT forward on the GPU (vit_cuda.h) against the CPU
// forward (vit.h) on random weights written here: a DINOv2-like model (D =
// 32, 4 heads, 2 blocks, LayerScale, CLS, a 4 x 4 position grid resampled to
// 5 x 5 by HF's bicubic rule, final LayerNorm) on 2 clips of 3 frames, and a
// VideoMAE-like one (tubelets of 2 frames, no k bias, sinusoid positions) on
// 2 clips of 4 frames; every emitted layer (two, in reverse order) within
// 1e-4 relative in fp32, 2e-3 in TF32 and 1e-2 in bf16 GEMMs. (tests/
// test_backbone.py checks both forwards against PyTorch where the program and
// Python are at hand; this one needs neither, for the GPU machine.)
// Exits 77 where no device is present.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/comm/device.h"
#include "stsae/vit/vit.h"
#include "stsae/vit/vit_cuda.h"
#include "testutil.h"
#include "testutil_cuda.h"

enum { D = 32, NH = 4, F = 64, DEPTH = 2, P = 4, CLIPS = 2 };

// n floats ~ mean + sd N(0, 1), kept until the end of the test.
static float *rnd(uint64_t *s, size_t n, float mean, float sd) {
    float *a = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) a[i] = mean + sd * (float)rng_normal(s);
    return a;
}

static void make_model(VitWeights *w, VitBlock *blk, int videomae, uint64_t *s) {
    memset(w, 0, sizeof(*w));
    w->source = videomae ? "test videomae" : "test dinov2";
    w->model_type = videomae ? "videomae" : "dinov2";
    w->videomae = videomae;
    w->D = D, w->depth = DEPTH, w->NH = NH, w->F = F, w->p = P;
    w->kt = videomae ? 2 : 1;
    w->img = 16, w->frames = 4, w->M = 4;
    w->eps = videomae ? 1e-12f : 1e-6f;
    const size_t K = (size_t)3 * w->kt * P * P;
    w->patch_w = rnd(s, (size_t)D * K, 0.0f, 0.1f);
    w->patch_b = rnd(s, D, 0.0f, 0.1f);
    if (!videomae) {
        w->cls = rnd(s, D, 0.0f, 0.5f);
        w->pos = rnd(s, (1 + (size_t)w->M * w->M) * D, 0.0f, 0.5f);
    }
    w->norm_w = rnd(s, D, 1.0f, 0.1f);
    w->norm_b = rnd(s, D, 0.0f, 0.1f);
    const float sw = 1.0f / sqrtf((float)D);
    for (int l = 0; l < DEPTH; l++) {
        VitBlock *b = &blk[l];
        b->ln1_w = rnd(s, D, 1.0f, 0.1f), b->ln1_b = rnd(s, D, 0.0f, 0.1f);
        b->wq = rnd(s, D * D, 0.0f, sw), b->wk = rnd(s, D * D, 0.0f, sw), b->wv = rnd(s, D * D, 0.0f, sw);
        b->wo = rnd(s, D * D, 0.0f, sw);
        b->bq = rnd(s, D, 0.0f, 0.1f), b->bv = rnd(s, D, 0.0f, 0.1f), b->bo = rnd(s, D, 0.0f, 0.1f);
        b->bk = videomae ? NULL : rnd(s, D, 0.0f, 0.1f);
        b->ls1 = videomae ? NULL : rnd(s, D, 0.5f, 0.1f);
        b->ls2 = videomae ? NULL : rnd(s, D, 0.5f, 0.1f);
        b->ln2_w = rnd(s, D, 1.0f, 0.1f), b->ln2_b = rnd(s, D, 0.0f, 0.1f);
        b->w1 = rnd(s, (size_t)F * D, 0.0f, sw), b->b1 = rnd(s, F, 0.0f, 0.1f);
        b->w2 = rnd(s, (size_t)D * F, 0.0f, 1.0f / sqrtf((float)F)), b->b2 = rnd(s, D, 0.0f, 0.1f);
    }
    w->blk = blk;
}

static void free_model(VitWeights *w, VitBlock *blk) {
    free((void *)w->patch_w), free((void *)w->patch_b), free((void *)w->cls), free((void *)w->pos);
    free((void *)w->norm_w), free((void *)w->norm_b);
    for (int l = 0; l < DEPTH; l++) {
        const VitBlock *b = &blk[l];
        const float *t[] = {b->ln1_w, b->ln1_b, b->wq, b->wk, b->wv, b->wo, b->bq,    b->bk,    b->bv,
                            b->bo,    b->ls1,   b->ls2, b->ln2_w, b->ln2_b, b->w1, b->b1, b->w2, b->b2};
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) free((void *)t[i]);
    }
}

static void run_model(int videomae) {
    uint64_t s = videomae ? 17 : 13;
    VitWeights w;
    VitBlock blk[DEPTH];
    make_model(&w, blk, videomae, &s);
    const int T_in = videomae ? 4 : 3, S = videomae ? 16 : 20; // DINOv2: 5 x 5 patches from the 4 x 4 grid
    const int layers[2] = {1, 0};
    BackboneOptions opt = {.final_norm = 1, .pos_interp = POS_INTERP_HF};
    const BackboneShape sh = vit_weights_shape(&w, T_in, S);
    const size_t n_in = (size_t)CLIPS * T_in * 3 * S * S, n_out = (size_t)CLIPS * sh.T * sh.N * sh.d;
    float *pixels = rnd(&s, n_in, 0.0f, 1.0f);
    float *cpu[2] = {xmalloc(sizeof(float) * n_out), xmalloc(sizeof(float) * n_out)};
    float *gpu[2] = {xmalloc(sizeof(float) * n_out), xmalloc(sizeof(float) * n_out)};
    Vit *v = vit_create(&w, &opt);
    vit_forward(v, pixels, CLIPS, T_in, S, layers, 2, cpu);
    vit_free(v);
    const struct {
        VitMath math;
        const char *name;
        double tol;
    } maths[3] = {{VIT_MATH_FP32, "fp32", 1e-4}, {VIT_MATH_TF32, "tf32", 2e-3}, {VIT_MATH_BF16, "bf16", 1e-2}};
    char what[128];
    for (int q = 0; q < 3; q++) {
        opt.cuda = 1;
        opt.math = maths[q].math;
        VitCuda *vc = vit_cuda_create(&w, &opt);
        vit_cuda_forward(vc, pixels, CLIPS, T_in, S, layers, 2, gpu);
        vit_cuda_free(vc);
        for (int j = 0; j < 2; j++) {
            const double e = max_rel(gpu[j], cpu[j], n_out);
            snprintf(what, sizeof what, "%s, %s: layer %d (%d x %d x %d tokens)", w.model_type, maths[q].name,
                     layers[j], CLIPS, sh.T, sh.N);
            check(e <= maths[q].tol, what, e);
        }
    }
    free(pixels), free(cpu[0]), free(cpu[1]), free(gpu[0]), free(gpu[1]);
    free_model(&w, blk);
}

int main(void) {
    if (device_count() <= 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    device_use(0);
    run_model(0);
    run_model(1);
    return tally_report();
}
