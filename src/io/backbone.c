// backbone.c — one interface over the feature extractors (backbone.h): the
// built-in `pixels` and `motion` backbones and the Hugging Face ViTs, whose configuration
// and tensors are read here from the model directory (config.json, the
// memory-mapped model.safetensors: hf.h) by their Hugging Face names and
// bound to vit.h's forward pass, or to vit_cuda.h's on the GPU when the
// options say cuda.
#include "stsae/io/backbone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/io/hf.h"
#include "stsae/vit/vit.h"
#include "stsae/vit/vit_cuda.h"

// A ViT read from a model directory: the mapped checkpoint, the tensor
// prefix, the bound weights and the forward pass over them.
typedef struct {
    HfDir *hf;
    const char *prefix; // "", "dinov2." or "videomae."
    VitWeights w;
    VitBlock *blk; // w.blk, owned
    BackboneOptions opt;
    Vit *vit;      // the CPU forward, or NULL
    VitCuda *cuda; // the GPU forward (opt.cuda), or NULL
} HfVit;

struct Backbone {
    HfVit *vit; // NULL: a built-in backbone
    int motion; // the built-in: 0 pixels, 1 motion
    int patch;
};

static int positive(const HfVit *v, const char *key) {
    int x = hf_cfg_int(v->hf, key);
    if (x < 1) die("%s: '%s' = %d must be >= 1", hf_config_path(v->hf), key, x);
    return x;
}

// Encoder keys sit under "<model_type>." in checkpoints saved from a model
// with a head (VideoMAEForPreTraining, Dinov2ForImageClassification) and
// under no prefix in base-model checkpoints; the patch embedding decides.
static const char *find_prefix(const HfVit *v, const char *with_prefix, const char *usual) {
    char name[128];
    snprintf(name, sizeof(name), "%sembeddings.patch_embeddings.projection.weight", with_prefix);
    if (hf_has(v->hf, name)) return with_prefix;
    if (hf_has(v->hf, "embeddings.patch_embeddings.projection.weight")) return "";
    return usual; // absent either way: the lookup below names the usual key
}

static void read_config(HfVit *v) {
    HfDir *hf = v->hf;
    const char *cfg = hf_config_path(hf);
    const char *mt = hf_cfg_str(hf, "model_type");
    if (!strcmp(mt, "dinov2")) {
        v->w.model_type = "dinov2";
    } else if (!strcmp(mt, "videomae")) {
        v->w.model_type = "videomae";
        v->w.videomae = 1;
    } else {
        die("%s: model_type '%s' is not supported (dinov2 or videomae; registers models are not)", cfg, mt);
    }
    v->w.D = positive(v, "hidden_size");
    v->w.depth = positive(v, "num_hidden_layers");
    v->w.NH = positive(v, "num_attention_heads");
    v->w.p = positive(v, "patch_size");
    v->w.img = positive(v, "image_size");
    if (v->w.D % v->w.NH) die("%s: hidden_size %d is not a multiple of num_attention_heads %d", cfg, v->w.D, v->w.NH);
    if (v->w.img < v->w.p) die("%s: image_size %d is smaller than patch_size %d", cfg, v->w.img, v->w.p);
    if (hf_cfg_int_opt(hf, "num_channels", 3) != 3) die("%s: num_channels must be 3 (RGB)", cfg);
    const char *act = hf_cfg_str_opt(hf, "hidden_act", "gelu");
    if (strcmp(act, "gelu") != 0) die("%s: hidden_act '%s' is not supported (gelu)", cfg, act);
    if (v->w.videomae) {
        v->w.F = positive(v, "intermediate_size");
        v->w.kt = positive(v, "tubelet_size");
        v->w.frames = positive(v, "num_frames");
        v->w.eps = (float)hf_cfg_num_opt(hf, "layer_norm_eps", 1e-12);
        if (v->w.frames % v->w.kt) die("%s: num_frames %d is not a multiple of tubelet_size %d", cfg, v->w.frames, v->w.kt);
    } else {
        double ratio = hf_cfg_num(hf, "mlp_ratio");
        v->w.F = (int)(v->w.D * ratio); // Dinov2MLP: int(hidden_size * mlp_ratio)
        if (v->w.F < 1) die("%s: mlp_ratio %g gives no MLP", cfg, ratio);
        v->w.kt = 1;
        v->w.M = v->w.img / v->w.p;
        v->w.eps = (float)hf_cfg_num_opt(hf, "layer_norm_eps", 1e-6);
        if (hf_cfg_bool_opt(hf, "use_swiglu_ffn", 0)) die("%s: use_swiglu_ffn is not supported", cfg);
    }
    if (!(v->w.eps > 0.0f)) die("%s: layer_norm_eps must be > 0", cfg);
}

static void bind_dinov2(HfVit *v, int qkv_bias) {
    const int D = v->w.D, F = v->w.F, p = v->w.p;
    v->w.patch_w = hf_f32_named(v->hf, v->prefix, 4, (const int64_t[]){D, 3, p, p},
                                "embeddings.patch_embeddings.projection.weight");
    v->w.patch_b = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "embeddings.patch_embeddings.projection.bias");
    v->w.cls = hf_f32_named(v->hf, v->prefix, HF_SHAPE3(1, 1, D), "embeddings.cls_token");
    v->w.pos = hf_f32_named(v->hf, v->prefix, HF_SHAPE3(1, 1 + v->w.M * v->w.M, D), "embeddings.position_embeddings");
    for (int i = 0; i < v->w.depth; i++) {
        VitBlock *b = &v->blk[i];
        b->ln1_w = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.norm1.weight", i);
        b->ln1_b = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.norm1.bias", i);
        b->wq = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(D, D), "encoder.layer.%d.attention.attention.query.weight", i);
        b->wk = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(D, D), "encoder.layer.%d.attention.attention.key.weight", i);
        b->wv = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(D, D), "encoder.layer.%d.attention.attention.value.weight", i);
        if (qkv_bias) {
            b->bq = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.attention.attention.query.bias", i);
            b->bk = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.attention.attention.key.bias", i);
            b->bv = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.attention.attention.value.bias", i);
        }
        b->wo = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(D, D), "encoder.layer.%d.attention.output.dense.weight", i);
        b->bo = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.attention.output.dense.bias", i);
        b->ls1 = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.layer_scale1.lambda1", i);
        b->ln2_w = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.norm2.weight", i);
        b->ln2_b = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.norm2.bias", i);
        b->w1 = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(F, D), "encoder.layer.%d.mlp.fc1.weight", i);
        b->b1 = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(F), "encoder.layer.%d.mlp.fc1.bias", i);
        b->w2 = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(D, F), "encoder.layer.%d.mlp.fc2.weight", i);
        b->b2 = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.mlp.fc2.bias", i);
        b->ls2 = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.layer_scale2.lambda1", i);
    }
    v->w.norm_w = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "layernorm.weight");
    v->w.norm_b = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "layernorm.bias");
}

// VideoMAE (BEiT-style attention): q_bias and v_bias, no key bias; no
// LayerScale; the final layernorm exists only without mean pooling.
static void bind_videomae(HfVit *v, int qkv_bias) {
    const int D = v->w.D, F = v->w.F, p = v->w.p;
    v->w.patch_w = hf_f32_named(v->hf, v->prefix, 5, (const int64_t[]){D, 3, v->w.kt, p, p},
                                "embeddings.patch_embeddings.projection.weight");
    v->w.patch_b = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "embeddings.patch_embeddings.projection.bias");
    for (int i = 0; i < v->w.depth; i++) {
        VitBlock *b = &v->blk[i];
        b->ln1_w = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.layernorm_before.weight", i);
        b->ln1_b = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.layernorm_before.bias", i);
        b->wq = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(D, D), "encoder.layer.%d.attention.attention.query.weight", i);
        b->wk = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(D, D), "encoder.layer.%d.attention.attention.key.weight", i);
        b->wv = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(D, D), "encoder.layer.%d.attention.attention.value.weight", i);
        if (qkv_bias) {
            if (!PLANTED("bb_no_q_bias"))
                b->bq = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.attention.attention.q_bias", i);
            b->bv = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.attention.attention.v_bias", i);
        }
        b->wo = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(D, D), "encoder.layer.%d.attention.output.dense.weight", i);
        b->bo = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.attention.output.dense.bias", i);
        b->ln2_w = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.layernorm_after.weight", i);
        b->ln2_b = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.layernorm_after.bias", i);
        b->w1 = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(F, D), "encoder.layer.%d.intermediate.dense.weight", i);
        b->b1 = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(F), "encoder.layer.%d.intermediate.dense.bias", i);
        b->w2 = hf_f32_named(v->hf, v->prefix, HF_SHAPE2(D, F), "encoder.layer.%d.output.dense.weight", i);
        b->b2 = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "encoder.layer.%d.output.dense.bias", i);
    }
    if (!hf_cfg_bool_opt(v->hf, "use_mean_pooling", 1)) {
        v->w.norm_w = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "layernorm.weight");
        v->w.norm_b = hf_f32_named(v->hf, v->prefix, HF_SHAPE1(D), "layernorm.bias");
    } else if (v->opt.final_norm) {
        die("%s: use_mean_pooling is true, so the model has no final layernorm for final_norm",
            hf_config_path(v->hf));
    }
}

// Reads the configuration and binds every tensor (by its Hugging Face name,
// shape checked) of the model directory `dir`.
static HfVit *hf_vit_open(const char *dir, const BackboneOptions *opt) {
    HfVit *v = xcalloc(1, sizeof(HfVit));
    v->hf = hf_open(dir);
    v->opt = *opt;
    v->w.source = hf_path(v->hf);
    read_config(v);
    v->prefix = v->w.videomae ? find_prefix(v, "videomae.", "videomae.") : find_prefix(v, "dinov2.", "");
    // the last block before sizing blk from num_hidden_layers: a config.json
    // claiming 2^31 - 1 blocks over a small checkpoint dies naming the missing
    // tensor, not "out of memory" (both architectures name this one alike)
    char last[256];
    snprintf(last, sizeof(last), "%sencoder.layer.%d.attention.attention.query.weight", v->prefix, v->w.depth - 1);
    if (!hf_has(v->hf, last))
        die("%s: missing tensor '%s' (%s says num_hidden_layers %d)", hf_weights_path(v->hf), last,
            hf_config_path(v->hf), v->w.depth);
    v->blk = xcalloc((size_t)v->w.depth, sizeof(VitBlock));
    v->w.blk = v->blk;
    int qkv_bias = hf_cfg_bool_opt(v->hf, "qkv_bias", 1);
    if (v->w.videomae)
        bind_videomae(v, qkv_bias);
    else
        bind_dinov2(v, qkv_bias);
    if (opt->cuda) v->cuda = vit_cuda_create(&v->w, opt);
    else v->vit = vit_create(&v->w, opt);
    return v;
}

static void hf_vit_close(HfVit *v) {
    if (!v) return;
    vit_free(v->vit);
    vit_cuda_free(v->cuda);
    hf_close(v->hf);
    free(v->blk);
    free(v);
}

int backbone_pos_interp(const char *word, PosInterp *out) {
    if (!strcmp(word, "hf")) *out = POS_INTERP_HF;
    else if (!strcmp(word, "meta")) *out = POS_INTERP_META;
    else return -1;
    return 0;
}

int backbone_math(const char *word, VitMath *out) {
    if (!strcmp(word, "fp32")) *out = VIT_MATH_FP32;
    else if (!strcmp(word, "tf32")) *out = VIT_MATH_TF32;
    else if (!strcmp(word, "bf16")) *out = VIT_MATH_BF16;
    else return -1;
    return 0;
}

int backbone_builtin(const char *spec) { return !strcmp(spec, "pixels") || !strcmp(spec, "motion"); }

Backbone *backbone_open(const char *spec, const BackboneOptions *opt) {
    Backbone *bb = xcalloc(1, sizeof(Backbone));
    if (backbone_builtin(spec)) {
        bb->motion = !strcmp(spec, "motion");
        if (opt->patch < 1) die("%s backbone: patch = %d must be >= 1", spec, opt->patch);
        bb->patch = opt->patch;
    } else {
        bb->vit = hf_vit_open(spec, opt);
    }
    return bb;
}

void backbone_close(Backbone *bb) {
    if (!bb) return;
    hf_vit_close(bb->vit);
    free(bb);
}

const char *backbone_name(const Backbone *bb) {
    return bb->vit ? bb->vit->w.model_type : bb->motion ? "motion" : "pixels";
}
const char *backbone_digest(Backbone *bb) { return bb->vit ? hf_digest(bb->vit->hf) : "none"; }
int backbone_depth(const Backbone *bb) { return bb->vit ? bb->vit->w.depth : 0; }

void backbone_check_layers(const Backbone *bb, const int *layers, int n_layers, const char *where) {
    const int depth = backbone_depth(bb);
    if (n_layers < 1) die("%s: no layer requested", where);
    for (int j = 0; j < n_layers; j++) {
        if (layers[j] < 0 || (bb->vit && layers[j] >= depth))
            die("%s: layer %d out of range for the %s backbone (blocks 0..%d)", where, layers[j], backbone_name(bb),
                depth - 1);
        for (int i = 0; i < j; i++)
            if (layers[i] == layers[j]) die("%s: layer %d requested twice", where, layers[j]);
    }
}

BackboneShape backbone_shape(const Backbone *bb, int T_in, int S) {
    if (bb->vit) return vit_weights_shape(&bb->vit->w, T_in, S);
    return bb->motion ? motion_shape(bb->patch, T_in, S) : pixels_shape(bb->patch, T_in, S);
}

void backbone_forward(Backbone *bb, const float *pixels, int clips, int T_in, int S, const int *layers,
                      int n_layers, float *const *out) {
    backbone_check_layers(bb, layers, n_layers, "backbone_forward");
    if (bb->vit && bb->vit->cuda)
        vit_cuda_forward(bb->vit->cuda, pixels, clips, T_in, S, layers, n_layers, out);
    else if (bb->vit)
        vit_forward(bb->vit->vit, pixels, clips, T_in, S, layers, n_layers, out);
    else if (bb->motion)
        motion_forward(bb->patch, pixels, clips, T_in, S, n_layers, out);
    else
        pixels_forward(bb->patch, pixels, clips, T_in, S, n_layers, out);
}
