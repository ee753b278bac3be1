// clip_model.c — a CLIP directory (clip_model.h): config.json's two towers
// with CLIPTextConfig's and CLIPVisionConfig's defaults, every tensor bound
// by its `transformers` name (hf.h checks dtype and shape), the tokenizer
// (clip_bpe.h), and the forward passes of vit/clip.h over them.
#include "stsae/io/clip_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/io/clip_bpe.h"
#include "stsae/io/hf.h"
#include "stsae/vit/clip.h"

struct ClipModel {
    HfDir *hf;
    ClipBpe *bpe;
    ClipWeights w;
    VitBlock *vblk, *tblk; // owned
    Clip *clip;
    int32_t *ids; // [ctx]
};

// The defaults of CLIPTextConfig / CLIPVisionConfig for the keys read here.
typedef struct {
    const char *tower; // "text" or "vision"
    int D, F, depth, NH;
} TowerDefaults;

// <tower>_config.key as a positive integer (def when absent).
static int tower_int(const ClipModel *m, const char *tower, const char *key, int def) {
    char k[128];
    snprintf(k, sizeof(k), "%s_config.%s", tower, key);
    const int v = hf_cfg_int_opt(m->hf, k, def);
    if (v < 1) die("%s: '%s' = %d must be >= 1", hf_config_path(m->hf), k, v);
    return v;
}

static void tower_config(ClipModel *m, const TowerDefaults *d, ClipTower *t, int causal) {
    const char *cfg = hf_config_path(m->hf), *tw = d->tower;
    char k[128];
    t->bs.D = tower_int(m, tw, "hidden_size", d->D);
    t->bs.F = tower_int(m, tw, "intermediate_size", d->F);
    t->depth = tower_int(m, tw, "num_hidden_layers", d->depth);
    t->bs.NH = tower_int(m, tw, "num_attention_heads", d->NH);
    if (t->bs.D % t->bs.NH)
        die("%s: %s_config.hidden_size %d is not a multiple of num_attention_heads %d", cfg, tw, t->bs.D, t->bs.NH);
    snprintf(k, sizeof(k), "%s_config.layer_norm_eps", tw);
    t->bs.eps = (float)hf_cfg_num_opt(m->hf, k, 1e-5);
    if (!(t->bs.eps > 0.0f)) die("%s: %s must be > 0", cfg, k);
    snprintf(k, sizeof(k), "%s_config.hidden_act", tw);
    const char *act = hf_cfg_str_opt(m->hf, k, "quick_gelu");
    if (!strcmp(act, "quick_gelu")) t->bs.act = ACT_QUICK_GELU;
    else if (!strcmp(act, "gelu")) t->bs.act = ACT_GELU;
    else die("%s: %s '%s' is not supported (quick_gelu or gelu)", cfg, k, act);
    t->bs.causal = causal;
}

// The tensors of one tower's blocks, under prefix ("text_model." or
// "vision_model."), after checking that the last one exists (a config.json
// claiming 2^31 - 1 layers dies naming it, not out of memory).
static VitBlock *bind_blocks(ClipModel *m, const char *prefix, const ClipTower *t) {
    const int D = t->bs.D, F = t->bs.F;
    char last[256];
    snprintf(last, sizeof(last), "%sencoder.layers.%d.self_attn.q_proj.weight", prefix, t->depth - 1);
    if (!hf_has(m->hf, last))
        die("%s: missing tensor '%s' (%s says num_hidden_layers %d)", hf_weights_path(m->hf), last,
            hf_config_path(m->hf), t->depth);
    VitBlock *blk = xcalloc((size_t)t->depth, sizeof(VitBlock));
    for (int i = 0; i < t->depth; i++) {
        VitBlock *b = &blk[i];
        const char *p = prefix;
        b->ln1_w = hf_f32_named(m->hf, p, HF_SHAPE1(D), "encoder.layers.%d.layer_norm1.weight", i);
        b->ln1_b = hf_f32_named(m->hf, p, HF_SHAPE1(D), "encoder.layers.%d.layer_norm1.bias", i);
        b->wq = hf_f32_named(m->hf, p, HF_SHAPE2(D, D), "encoder.layers.%d.self_attn.q_proj.weight", i);
        b->bq = hf_f32_named(m->hf, p, HF_SHAPE1(D), "encoder.layers.%d.self_attn.q_proj.bias", i);
        b->wk = hf_f32_named(m->hf, p, HF_SHAPE2(D, D), "encoder.layers.%d.self_attn.k_proj.weight", i);
        b->bk = hf_f32_named(m->hf, p, HF_SHAPE1(D), "encoder.layers.%d.self_attn.k_proj.bias", i);
        b->wv = hf_f32_named(m->hf, p, HF_SHAPE2(D, D), "encoder.layers.%d.self_attn.v_proj.weight", i);
        b->bv = hf_f32_named(m->hf, p, HF_SHAPE1(D), "encoder.layers.%d.self_attn.v_proj.bias", i);
        b->wo = hf_f32_named(m->hf, p, HF_SHAPE2(D, D), "encoder.layers.%d.self_attn.out_proj.weight", i);
        b->bo = hf_f32_named(m->hf, p, HF_SHAPE1(D), "encoder.layers.%d.self_attn.out_proj.bias", i);
        b->ln2_w = hf_f32_named(m->hf, p, HF_SHAPE1(D), "encoder.layers.%d.layer_norm2.weight", i);
        b->ln2_b = hf_f32_named(m->hf, p, HF_SHAPE1(D), "encoder.layers.%d.layer_norm2.bias", i);
        b->w1 = hf_f32_named(m->hf, p, HF_SHAPE2(F, D), "encoder.layers.%d.mlp.fc1.weight", i);
        b->b1 = hf_f32_named(m->hf, p, HF_SHAPE1(F), "encoder.layers.%d.mlp.fc1.bias", i);
        b->w2 = hf_f32_named(m->hf, p, HF_SHAPE2(D, F), "encoder.layers.%d.mlp.fc2.weight", i);
        b->b2 = hf_f32_named(m->hf, p, HF_SHAPE1(D), "encoder.layers.%d.mlp.fc2.bias", i);
    }
    return blk;
}

static void bind_vision(ClipModel *m) {
    static const TowerDefaults vd = {"vision", 768, 3072, 12, 12};
    ClipWeights *w = &m->w;
    const char *cfg = hf_config_path(m->hf);
    tower_config(m, &vd, &w->vis, 0);
    w->img = tower_int(m, "vision", "image_size", 224);
    w->p = tower_int(m, "vision", "patch_size", 32);
    if (tower_int(m, "vision", "num_channels", 3) != 3) die("%s: vision_config.num_channels must be 3 (RGB)", cfg);
    if (w->img % w->p)
        die("%s: vision_config.image_size %d is not a multiple of patch_size %d", cfg, w->img, w->p);
    const int D = w->vis.bs.D, p = w->p, G = w->img / p;
    w->patch_w =
        hf_f32_named(m->hf, "", 4, (const int64_t[]){D, 3, p, p}, "vision_model.embeddings.patch_embedding.weight");
    w->cls = hf_f32_named(m->hf, "", HF_SHAPE1(D), "vision_model.embeddings.class_embedding");
    w->pos =
        hf_f32_named(m->hf, "", HF_SHAPE2(1 + (int64_t)G * G, D), "vision_model.embeddings.position_embedding.weight");
    w->pre_w = hf_f32_named(m->hf, "", HF_SHAPE1(D), "vision_model.pre_layrnorm.weight");
    w->pre_b = hf_f32_named(m->hf, "", HF_SHAPE1(D), "vision_model.pre_layrnorm.bias");
    m->vblk = bind_blocks(m, "vision_model.", &w->vis);
    w->vis.blk = m->vblk;
    w->post_w = hf_f32_named(m->hf, "", HF_SHAPE1(D), "vision_model.post_layernorm.weight");
    w->post_b = hf_f32_named(m->hf, "", HF_SHAPE1(D), "vision_model.post_layernorm.bias");
    w->vproj = hf_f32_named(m->hf, "", HF_SHAPE2(w->E, D), "visual_projection.weight");
}

static void bind_text(ClipModel *m) {
    static const TowerDefaults td = {"text", 512, 2048, 12, 8};
    ClipWeights *w = &m->w;
    tower_config(m, &td, &w->txt, 1);
    w->vocab = tower_int(m, "text", "vocab_size", 49408);
    w->ctx = tower_int(m, "text", "max_position_embeddings", 77);
    if (w->ctx < 2) die("%s: text_config.max_position_embeddings must be >= 2", hf_config_path(m->hf));
    const int eos = hf_cfg_int_opt(m->hf, "text_config.eos_token_id", 49407);
    w->eos_argmax = eos == 2; // the original configs: pooled at the largest id
    w->eos_id = eos;
    const int D = w->txt.bs.D;
    w->tok = hf_f32_named(m->hf, "", HF_SHAPE2(w->vocab, D), "text_model.embeddings.token_embedding.weight");
    w->tpos = hf_f32_named(m->hf, "", HF_SHAPE2(w->ctx, D), "text_model.embeddings.position_embedding.weight");
    m->tblk = bind_blocks(m, "text_model.", &w->txt);
    w->txt.blk = m->tblk;
    w->final_w = hf_f32_named(m->hf, "", HF_SHAPE1(D), "text_model.final_layer_norm.weight");
    w->final_b = hf_f32_named(m->hf, "", HF_SHAPE1(D), "text_model.final_layer_norm.bias");
    w->tproj = hf_f32_named(m->hf, "", HF_SHAPE2(w->E, D), "text_projection.weight");
}

ClipModel *clip_model_open(const char *dir) {
    ClipModel *m = xcalloc(1, sizeof(ClipModel));
    m->hf = hf_open(dir);
    const char *cfg = hf_config_path(m->hf);
    const char *mt = hf_cfg_str(m->hf, "model_type");
    if (strcmp(mt, "clip") != 0) die("%s: model_type '%s' is not clip", cfg, mt);
    m->w.source = hf_path(m->hf);
    m->w.E = hf_cfg_int_opt(m->hf, "projection_dim", 512);
    if (m->w.E < 1) die("%s: projection_dim must be >= 1", cfg);
    bind_vision(m);
    bind_text(m);
    m->bpe = clip_bpe_open(dir);
    if (clip_bpe_vocab_size(m->bpe) > m->w.vocab)
        die("%s/vocab.json: ids up to %d, but %s says text_config.vocab_size %d", dir, clip_bpe_vocab_size(m->bpe) - 1,
            cfg, m->w.vocab);
    m->clip = clip_create(&m->w);
    m->ids = xmalloc(sizeof(int32_t) * (size_t)m->w.ctx);
    return m;
}

void clip_model_close(ClipModel *m) {
    if (!m) return;
    clip_free(m->clip);
    clip_bpe_close(m->bpe);
    hf_close(m->hf);
    free(m->vblk);
    free(m->tblk);
    free(m->ids);
    free(m);
}

const char *clip_model_path(const ClipModel *m) { return hf_path(m->hf); }
int clip_model_embed_dim(const ClipModel *m) { return m->w.E; }
int clip_model_image_size(const ClipModel *m) { return m->w.img; }
int clip_model_context(const ClipModel *m) { return m->w.ctx; }
const char *clip_model_digest(ClipModel *m) { return hf_digest(m->hf); }

void clip_model_embed_images(ClipModel *m, const float *pixels, int n, int S, float *out) {
    clip_image_forward(m->clip, pixels, n, S, out);
}

void clip_model_embed_clips(ClipModel *m, const float *pixels, int n, int T, int S, float *out) {
    const int E = m->w.E;
    float *f = xmalloc(sizeof(float) * (size_t)n * T * E);
    // clip by clip: a clip's embedding depends on its frames alone, never on
    // which clips share its batch (the same file on any number of ranks)
    for (int c = 0; c < n; c++)
        clip_image_forward(m->clip, pixels + (size_t)c * T * 3 * S * S, T, S, f + (size_t)c * T * E);
    for (int c = 0; c < n; c++) {
        float *o = out + (size_t)c * E;
        memset(o, 0, sizeof(float) * (size_t)E);
        for (int t = 0; t < T; t++) {
            const float *v = f + ((size_t)c * T + t) * E;
            double ss = 0.0;
            for (int q = 0; q < E; q++) ss += (double)v[q] * v[q];
            const float w = ss > 0.0 && !PLANTED("clip_pool_raw") ? (float)(1.0 / (sqrt(ss) * T)) : 1.0f / (float)T;
            for (int q = 0; q < E; q++) o[q] += w * v[q];
        }
    }
    free(f);
}

char *clip_model_query(const char *label) {
    char *q = xstrdup(label);
    size_t k = 0;
    for (const char *p = label; *p; p++)
        if (*p != '[' && *p != ']') q[k++] = *p;
    q[k] = 0;
    return q;
}

int clip_model_tokenize(const ClipModel *m, const char *text, const char *what, int32_t *ids) {
    const int n = clip_bpe_encode(m->bpe, text, m->w.ctx, ids);
    if (n < 0) die("%s: not valid UTF-8", what);
    return n;
}

void clip_model_embed_ids(ClipModel *m, const int32_t *ids, int n, float *out) {
    clip_text_forward(m->clip, ids, n, out);
}

void clip_model_embed_text(ClipModel *m, const char *text, const char *what, float *out) {
    clip_model_embed_ids(m, m->ids, clip_model_tokenize(m, text, what, m->ids), out);
}
