// vit.c — DINOv2 and VideoMAE from a Hugging Face directory (vit.h): the
// configuration and the checkpoint's tensors by their Hugging Face names,
// the position embeddings, and the forward pass of reference/backbones.md
// §4-§6, one clip at a time in a workspace reused across calls.
#include "stsae/vit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/common.h"
#include "stsae/hf.h"
#include "stsae/vit_ops.h"

typedef struct {
    const float *ln1_w, *ln1_b;         // [D]  norm1 / layernorm_before
    const float *wq, *wk, *wv, *wo;     // [D, D]
    const float *bq, *bk, *bv, *bo;     // [D]; bq, bk, bv NULL without qkv_bias (VideoMAE: bk always)
    const float *ls1, *ls2;             // [D]  LayerScale (DINOv2); NULL for VideoMAE
    const float *ln2_w, *ln2_b;         // [D]  norm2 / layernorm_after
    const float *w1, *b1;               // [F, D], [F]  fc1 / intermediate.dense
    const float *w2, *b2;               // [D, F], [D]  fc2 / output.dense
} VitBlock;

struct Vit {
    HfDir *hf;
    const char *model_type; // "dinov2" or "videomae"
    const char *prefix;     // "", "dinov2." or "videomae."
    int videomae;
    int D, depth, NH, F; // width, blocks, heads, MLP width
    int p, kt;           // patch side, tubelet frames (1 for DINOv2)
    int img, frames;     // config image_size, num_frames (VideoMAE)
    int M;               // DINOv2: side of the stored position grid (image_size / patch_size)
    float eps;
    const float *patch_w, *patch_b; // [D, 3*kt*p*p], [D]
    const float *cls, *pos;         // DINOv2: [D], [1 + M*M, D]
    const float *norm_w, *norm_b;   // final LayerNorm [D]; NULL when the model has none
    VitBlock *blk;
    BackboneOptions opt;

    int T_in, S;    // the input shape pos_tab was made for (0: none yet)
    float *pos_tab; // per sequence: DINOv2 [1 + N, D] (row 0 = cls + pos[0]); VideoMAE [T*N, D]

    // one clip's workspace (rows = tokens of all its sequences)
    size_t cap_rows, cap_cols, cap_work; // tokens, floats, floats
    float *x, *h, *att; // [rows, D]
    float *qkv;         // [rows, 3D]
    float *mlp;         // [rows, F]
    float *cols;        // patch vectors [T*N, 3*kt*p*p]
    float *work;        // attention scores
};

#define SHAPE1(a) 1, (const int64_t[]){(a)}
#define SHAPE2(a, b) 2, (const int64_t[]){(a), (b)}
#define SHAPE3(a, b, c) 3, (const int64_t[]){(a), (b), (c)}

// The tensor prefix + printf(fmt, ...), F32 of the given shape.
static const float *tensor(Vit *v, int rank, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const float *tensor(Vit *v, int rank, const int64_t *shape, const char *fmt, ...) {
    char name[256];
    int k = snprintf(name, sizeof(name), "%s", v->prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + k, sizeof(name) - (size_t)k, fmt, ap);
    va_end(ap);
    return hf_f32(v->hf, name, rank, shape);
}

static int positive(const Vit *v, const char *key) {
    int x = hf_cfg_int(v->hf, key);
    if (x < 1) die("%s: '%s' = %d must be >= 1", hf_config_path(v->hf), key, x);
    return x;
}

// Encoder keys sit under "<model_type>." in checkpoints saved from a model
// with a head (VideoMAEForPreTraining, Dinov2ForImageClassification) and
// under no prefix in base-model checkpoints; the patch embedding decides.
static const char *find_prefix(const Vit *v, const char *with_prefix, const char *usual) {
    char name[128];
    snprintf(name, sizeof(name), "%sembeddings.patch_embeddings.projection.weight", with_prefix);
    if (hf_has(v->hf, name)) return with_prefix;
    if (hf_has(v->hf, "embeddings.patch_embeddings.projection.weight")) return "";
    return usual; // absent either way: the lookup below names the usual key
}

static void read_config(Vit *v) {
    HfDir *hf = v->hf;
    const char *cfg = hf_config_path(hf);
    const char *mt = hf_cfg_str(hf, "model_type");
    if (!strcmp(mt, "dinov2")) {
        v->model_type = "dinov2";
    } else if (!strcmp(mt, "videomae")) {
        v->model_type = "videomae";
        v->videomae = 1;
    } else {
        die("%s: model_type '%s' is not supported (dinov2 or videomae; registers models are not)", cfg, mt);
    }
    v->D = positive(v, "hidden_size");
    v->depth = positive(v, "num_hidden_layers");
    v->NH = positive(v, "num_attention_heads");
    v->p = positive(v, "patch_size");
    v->img = positive(v, "image_size");
    if (v->D % v->NH) die("%s: hidden_size %d is not a multiple of num_attention_heads %d", cfg, v->D, v->NH);
    if (v->img < v->p) die("%s: image_size %d is smaller than patch_size %d", cfg, v->img, v->p);
    if (hf_cfg_int_opt(hf, "num_channels", 3) != 3) die("%s: num_channels must be 3 (RGB)", cfg);
    const char *act = hf_cfg_str_opt(hf, "hidden_act", "gelu");
    if (strcmp(act, "gelu") != 0) die("%s: hidden_act '%s' is not supported (gelu)", cfg, act);
    if (v->videomae) {
        v->F = positive(v, "intermediate_size");
        v->kt = positive(v, "tubelet_size");
        v->frames = positive(v, "num_frames");
        v->eps = (float)hf_cfg_num_opt(hf, "layer_norm_eps", 1e-12);
        if (v->frames % v->kt) die("%s: num_frames %d is not a multiple of tubelet_size %d", cfg, v->frames, v->kt);
    } else {
        double ratio = hf_cfg_num(hf, "mlp_ratio");
        v->F = (int)(v->D * ratio); // Dinov2MLP: int(hidden_size * mlp_ratio)
        if (v->F < 1) die("%s: mlp_ratio %g gives no MLP", cfg, ratio);
        v->kt = 1;
        v->M = v->img / v->p;
        v->eps = (float)hf_cfg_num_opt(hf, "layer_norm_eps", 1e-6);
        if (hf_cfg_bool_opt(hf, "use_swiglu_ffn", 0)) die("%s: use_swiglu_ffn is not supported", cfg);
    }
    if (!(v->eps > 0.0f)) die("%s: layer_norm_eps must be > 0", cfg);
}

static void bind_dinov2(Vit *v, int qkv_bias) {
    const int D = v->D, F = v->F, p = v->p;
    v->prefix = find_prefix(v, "dinov2.", "");
    v->patch_w = tensor(v, 4, (const int64_t[]){D, 3, p, p}, "embeddings.patch_embeddings.projection.weight");
    v->patch_b = tensor(v, SHAPE1(D), "embeddings.patch_embeddings.projection.bias");
    v->cls = tensor(v, SHAPE3(1, 1, D), "embeddings.cls_token");
    v->pos = tensor(v, SHAPE3(1, 1 + v->M * v->M, D), "embeddings.position_embeddings");
    for (int i = 0; i < v->depth; i++) {
        VitBlock *b = &v->blk[i];
        b->ln1_w = tensor(v, SHAPE1(D), "encoder.layer.%d.norm1.weight", i);
        b->ln1_b = tensor(v, SHAPE1(D), "encoder.layer.%d.norm1.bias", i);
        b->wq = tensor(v, SHAPE2(D, D), "encoder.layer.%d.attention.attention.query.weight", i);
        b->wk = tensor(v, SHAPE2(D, D), "encoder.layer.%d.attention.attention.key.weight", i);
        b->wv = tensor(v, SHAPE2(D, D), "encoder.layer.%d.attention.attention.value.weight", i);
        if (qkv_bias) {
            b->bq = tensor(v, SHAPE1(D), "encoder.layer.%d.attention.attention.query.bias", i);
            b->bk = tensor(v, SHAPE1(D), "encoder.layer.%d.attention.attention.key.bias", i);
            b->bv = tensor(v, SHAPE1(D), "encoder.layer.%d.attention.attention.value.bias", i);
        }
        b->wo = tensor(v, SHAPE2(D, D), "encoder.layer.%d.attention.output.dense.weight", i);
        b->bo = tensor(v, SHAPE1(D), "encoder.layer.%d.attention.output.dense.bias", i);
        b->ls1 = tensor(v, SHAPE1(D), "encoder.layer.%d.layer_scale1.lambda1", i);
        b->ln2_w = tensor(v, SHAPE1(D), "encoder.layer.%d.norm2.weight", i);
        b->ln2_b = tensor(v, SHAPE1(D), "encoder.layer.%d.norm2.bias", i);
        b->w1 = tensor(v, SHAPE2(F, D), "encoder.layer.%d.mlp.fc1.weight", i);
        b->b1 = tensor(v, SHAPE1(F), "encoder.layer.%d.mlp.fc1.bias", i);
        b->w2 = tensor(v, SHAPE2(D, F), "encoder.layer.%d.mlp.fc2.weight", i);
        b->b2 = tensor(v, SHAPE1(D), "encoder.layer.%d.mlp.fc2.bias", i);
        b->ls2 = tensor(v, SHAPE1(D), "encoder.layer.%d.layer_scale2.lambda1", i);
    }
    v->norm_w = tensor(v, SHAPE1(D), "layernorm.weight");
    v->norm_b = tensor(v, SHAPE1(D), "layernorm.bias");
}

// VideoMAE (BEiT-style attention): q_bias and v_bias, no key bias; no
// LayerScale; the final layernorm exists only without mean pooling.
static void bind_videomae(Vit *v, int qkv_bias) {
    const int D = v->D, F = v->F, p = v->p;
    v->prefix = find_prefix(v, "videomae.", "videomae.");
    v->patch_w = tensor(v, 5, (const int64_t[]){D, 3, v->kt, p, p}, "embeddings.patch_embeddings.projection.weight");
    v->patch_b = tensor(v, SHAPE1(D), "embeddings.patch_embeddings.projection.bias");
    for (int i = 0; i < v->depth; i++) {
        VitBlock *b = &v->blk[i];
        b->ln1_w = tensor(v, SHAPE1(D), "encoder.layer.%d.layernorm_before.weight", i);
        b->ln1_b = tensor(v, SHAPE1(D), "encoder.layer.%d.layernorm_before.bias", i);
        b->wq = tensor(v, SHAPE2(D, D), "encoder.layer.%d.attention.attention.query.weight", i);
        b->wk = tensor(v, SHAPE2(D, D), "encoder.layer.%d.attention.attention.key.weight", i);
        b->wv = tensor(v, SHAPE2(D, D), "encoder.layer.%d.attention.attention.value.weight", i);
        if (qkv_bias) {
            if (!PLANTED("bb_no_q_bias")) b->bq = tensor(v, SHAPE1(D), "encoder.layer.%d.attention.attention.q_bias", i);
            b->bv = tensor(v, SHAPE1(D), "encoder.layer.%d.attention.attention.v_bias", i);
        }
        b->wo = tensor(v, SHAPE2(D, D), "encoder.layer.%d.attention.output.dense.weight", i);
        b->bo = tensor(v, SHAPE1(D), "encoder.layer.%d.attention.output.dense.bias", i);
        b->ln2_w = tensor(v, SHAPE1(D), "encoder.layer.%d.layernorm_after.weight", i);
        b->ln2_b = tensor(v, SHAPE1(D), "encoder.layer.%d.layernorm_after.bias", i);
        b->w1 = tensor(v, SHAPE2(F, D), "encoder.layer.%d.intermediate.dense.weight", i);
        b->b1 = tensor(v, SHAPE1(F), "encoder.layer.%d.intermediate.dense.bias", i);
        b->w2 = tensor(v, SHAPE2(D, F), "encoder.layer.%d.output.dense.weight", i);
        b->b2 = tensor(v, SHAPE1(D), "encoder.layer.%d.output.dense.bias", i);
    }
    if (!hf_cfg_bool_opt(v->hf, "use_mean_pooling", 1)) {
        v->norm_w = tensor(v, SHAPE1(D), "layernorm.weight");
        v->norm_b = tensor(v, SHAPE1(D), "layernorm.bias");
    } else if (v->opt.final_norm) {
        die("%s: use_mean_pooling is true, so the model has no final layernorm for final_norm",
            hf_config_path(v->hf));
    }
}

Vit *vit_open(const char *dir, const BackboneOptions *opt) {
    Vit *v = xcalloc(1, sizeof(Vit));
    v->hf = hf_open(dir);
    v->opt = *opt;
    read_config(v);
    v->blk = xcalloc((size_t)v->depth, sizeof(VitBlock));
    int qkv_bias = hf_cfg_bool_opt(v->hf, "qkv_bias", 1);
    if (v->videomae)
        bind_videomae(v, qkv_bias);
    else
        bind_dinov2(v, qkv_bias);
    return v;
}

void vit_close(Vit *v) {
    if (!v) return;
    hf_close(v->hf);
    free(v->blk);
    free(v->pos_tab);
    free(v->x);
    free(v->h);
    free(v->att);
    free(v->qkv);
    free(v->mlp);
    free(v->cols);
    free(v->work);
    free(v);
}

const char *vit_name(const Vit *v) { return v->model_type; }
const char *vit_digest(Vit *v) { return hf_digest(v->hf); }
int vit_depth(const Vit *v) { return v->depth; }

BackboneShape vit_shape(const Vit *v, int T_in, int S) {
    const char *dir = hf_path(v->hf);
    if (T_in < 1 || S < 1) die("%s: clips of %d frames of %d px", dir, T_in, S);
    if (S % v->p) die("%s: frame size %d px is not a multiple of patch_size %d", dir, S, v->p);
    if (v->videomae && (T_in != v->frames || S != v->img))
        die("%s: VideoMAE takes clips of num_frames = %d frames of image_size = %d px (config.json), "
            "not %d frames of %d px",
            dir, v->frames, v->img, T_in, S);
    BackboneShape sh = {.T = T_in / v->kt, .H = S / v->p, .W = S / v->p, .d = v->D};
    sh.N = sh.H * sh.W;
    return sh;
}

// The position embeddings of one sequence for clips of T_in frames of S px.
static void make_pos_table(Vit *v, int T_in, int S) {
    if (v->T_in == T_in && v->S == S) return;
    const BackboneShape sh = vit_shape(v, T_in, S);
    const int D = v->D;
    free(v->pos_tab);
    if (v->videomae) {
        v->pos_tab = xmalloc(sizeof(float) * (size_t)sh.T * sh.N * D);
        sinusoid_table(v->pos_tab, sh.T * sh.N, D);
    } else {
        // row 0: CLS (its position embedding is never resampled); rows 1..N:
        // the M x M patch grid, resampled to H x W unless it already is H x W
        v->pos_tab = xmalloc(sizeof(float) * (size_t)(1 + sh.N) * D);
        for (int c = 0; c < D; c++) v->pos_tab[c] = v->cls[c] + v->pos[c];
        const float *grid = v->pos + D;
        if (sh.H == v->M && sh.W == v->M) {
            memcpy(v->pos_tab + D, grid, sizeof(float) * (size_t)sh.N * D);
        } else {
            float sy, sx;
            if (v->opt.pos_interp == POS_INTERP_META) { // scale_factor = (H + 0.1)/M; kernel uses 1/that
                sy = (float)(1.0 / (((double)sh.H + 0.1) / (double)v->M));
                sx = (float)(1.0 / (((double)sh.W + 0.1) / (double)v->M));
            } else { // size = (H, W)
                sy = (float)v->M / (float)sh.H;
                sx = (float)v->M / (float)sh.W;
            }
            if (PLANTED("bb_pos_scale")) sy = sx = (float)(v->M - 1) / (float)(sh.H - 1);
            bicubic_resample(v->pos_tab + D, grid, v->M, v->M, sh.H, sh.W, sy, sx, D);
        }
    }
    v->T_in = T_in;
    v->S = S;
}

static float *grow(float *buf, size_t n) {
    free(buf);
    return xmalloc(sizeof(float) * n);
}

// rows: tokens of one clip; n: tokens per sequence; cols: patch-vector floats
static void ensure_workspace(Vit *v, size_t rows, int n, size_t cols) {
    if (rows > v->cap_rows) {
        v->x = grow(v->x, rows * v->D);
        v->h = grow(v->h, rows * v->D);
        v->att = grow(v->att, rows * v->D);
        v->qkv = grow(v->qkv, rows * 3 * v->D);
        v->mlp = grow(v->mlp, rows * v->F);
        v->cap_rows = rows;
    }
    if (cols > v->cap_cols) {
        v->cols = grow(v->cols, cols);
        v->cap_cols = cols;
    }
    const size_t work = attention_work_floats(n);
    if (work > v->cap_work) {
        v->work = grow(v->work, work);
        v->cap_work = work;
    }
}

// One pre-norm block on x [B*n, D], in place.
static void block_forward(Vit *v, const VitBlock *b, int B, int n) {
    const int D = v->D, rows = B * n;
    layernorm_forward(v->h, v->x, b->ln1_w, b->ln1_b, rows, D, v->eps);
    matmul_forward(v->qkv, 3 * D, v->h, b->wq, b->bq, rows, D, D);
    matmul_forward(v->qkv + D, 3 * D, v->h, b->wk, b->bk, rows, D, D);
    matmul_forward(v->qkv + 2 * D, 3 * D, v->h, b->wv, b->bv, rows, D, D);
    attention_forward(v->att, v->qkv, B, n, D, v->NH, v->work);
    matmul_forward(v->h, D, v->att, b->wo, b->bo, rows, D, D);
    residual_forward(v->x, v->h, b->ls1, rows, D);
    layernorm_forward(v->h, v->x, b->ln2_w, b->ln2_b, rows, D, v->eps);
    matmul_forward(v->mlp, v->F, v->h, b->w1, b->b1, rows, D, v->F);
    gelu_forward(v->mlp, (size_t)rows * v->F);
    matmul_forward(v->h, D, v->mlp, b->w2, b->b2, rows, v->F, D);
    residual_forward(v->x, v->h, b->ls2, rows, D);
}

// The embedding output (hidden_states[0]) of one clip into x.
static void embed(Vit *v, const float *frames, int T_in, int S, const BackboneShape *sh, int n) {
    const int D = v->D, K = 3 * v->kt * v->p * v->p, patches = sh->T * sh->N;
    patchify(v->cols, frames, T_in, S, v->p, v->kt);
    if (v->videomae) { // one sequence of T*N tokens: patch embedding + sinusoid
        matmul_forward(v->x, D, v->cols, v->patch_w, v->patch_b, patches, K, D);
        residual_forward(v->x, v->pos_tab, NULL, patches, D);
        return;
    }
    // DINOv2: per frame [CLS, patches] + position embeddings
    matmul_forward(v->h, D, v->cols, v->patch_w, v->patch_b, patches, K, D);
    const float *pt = v->pos_tab;
#pragma omp parallel for collapse(2) schedule(static)
    for (int t = 0; t < sh->T; t++)
        for (int i = 0; i < n; i++) {
            float *xr = v->x + ((size_t)t * n + i) * D;
            if (i == 0) {
                memcpy(xr, pt, sizeof(float) * D);
            } else {
                const float *e = v->h + ((size_t)t * sh->N + i - 1) * D, *q = pt + (size_t)i * D;
                for (int c = 0; c < D; c++) xr[c] = e[c] + q[c];
            }
        }
}

void vit_forward(Vit *v, const float *pixels, int clips, int T_in, int S, const int *layers, int n_layers,
                 float *const *out) {
    const BackboneShape sh = vit_shape(v, T_in, S);
    make_pos_table(v, T_in, S);
    const int D = v->D, skip = v->videomae ? 0 : 1; // DINOv2 drops CLS
    const int B = v->videomae ? 1 : sh.T;            // sequences per clip
    const int n = v->videomae ? sh.T * sh.N : 1 + sh.N;
    const int keep = n - skip;
    const size_t clip_in = (size_t)T_in * 3 * S * S, clip_out = (size_t)sh.T * sh.N * D;
    ensure_workspace(v, (size_t)B * n, n, (size_t)sh.T * sh.N * 3 * v->kt * v->p * v->p);
    int last = -1;
    for (int j = 0; j < n_layers; j++) last = layers[j] > last ? layers[j] : last;

    for (int c = 0; c < clips; c++) {
        embed(v, pixels + c * clip_in, T_in, S, &sh, n);
        for (int l = 0; l <= last; l++) {
            block_forward(v, &v->blk[l], B, n);
            for (int j = 0; j < n_layers; j++) {
                if (layers[j] != l) continue;
                for (int b = 0; b < B; b++) {
                    float *dst = out[j] + c * clip_out + (size_t)b * keep * D;
                    const float *src = v->x + ((size_t)b * n + skip) * D;
                    if (v->opt.final_norm)
                        layernorm_forward(dst, src, v->norm_w, v->norm_b, keep, D, v->eps);
                    else
                        memcpy(dst, src, sizeof(float) * (size_t)keep * D);
                }
            }
        }
    }
}
