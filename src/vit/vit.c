// vit.c — the forward pass of DINOv2 and VideoMAE (vit.h) over bound
// weights: the position embeddings (resampled for DINOv2, sinusoids for
// VideoMAE), the pre-norm blocks of reference/backbones.md §4-§6, one clip
// at a time in a workspace reused across calls.
#include "stsae/vit/vit.h"

#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/vit/vit_ops.h"

struct Vit {
    VitWeights w;
    BackboneOptions opt;

    int T_in, S;    // the input shape pos_tab was made for (0: none yet)
    float *pos_tab; // per sequence: DINOv2 [1 + N, D] (row 0 = cls + pos[0]); VideoMAE [T*N, D]

    // one clip's workspace (rows = tokens of all its sequences)
    BlockShape bs;
    size_t cap_rows, cap_cols; // tokens, floats
    float *x;                  // [rows, D]
    float *cols;               // patch vectors [T*N, 3*kt*p*p]
    BlockScratch s;            // the blocks' buffers
};

Vit *vit_create(const VitWeights *w, const BackboneOptions *opt) {
    Vit *v = xcalloc(1, sizeof(Vit));
    v->w = *w;
    v->opt = *opt;
    v->bs = (BlockShape){.D = w->D, .NH = w->NH, .F = w->F, .eps = w->eps, .act = ACT_GELU};
    return v;
}

void vit_free(Vit *v) {
    if (!v) return;
    free(v->pos_tab);
    free(v->x);
    free(v->cols);
    block_scratch_free(&v->s);
    free(v);
}

BackboneShape vit_weights_shape(const VitWeights *w, int T_in, int S) {
    const char *dir = w->source;
    if (T_in < 1 || S < 1) die("%s: clips of %d frames of %d px", dir, T_in, S);
    if (S % w->p) die("%s: frame size %d px is not a multiple of patch_size %d", dir, S, w->p);
    if (w->videomae && (T_in != w->frames || S != w->img))
        die("%s: VideoMAE takes clips of num_frames = %d frames of image_size = %d px (config.json), "
            "not %d frames of %d px",
            dir, w->frames, w->img, T_in, S);
    BackboneShape sh = {.T = T_in / w->kt, .H = S / w->p, .W = S / w->p, .d = w->D};
    sh.N = sh.H * sh.W;
    return sh;
}

float *vit_pos_table(const VitWeights *w, const BackboneOptions *opt, int T_in, int S) {
    const BackboneShape sh = vit_weights_shape(w, T_in, S);
    const int D = w->D;
    if (w->videomae) {
        float *tab = xmalloc(sizeof(float) * (size_t)sh.T * sh.N * D);
        sinusoid_table(tab, sh.T * sh.N, D);
        return tab;
    }
    // row 0: CLS (its position embedding is never resampled); rows 1..N:
    // the M x M patch grid, resampled to H x W unless it already is H x W
    float *tab = xmalloc(sizeof(float) * (size_t)(1 + sh.N) * D);
    for (int c = 0; c < D; c++) tab[c] = w->cls[c] + w->pos[c];
    const float *grid = w->pos + D;
    if (sh.H == w->M && sh.W == w->M) {
        memcpy(tab + D, grid, sizeof(float) * (size_t)sh.N * D);
    } else {
        float sy, sx;
        if (opt->pos_interp == POS_INTERP_META) { // scale_factor = (H + 0.1)/M; kernel uses 1/that
            sy = (float)(1.0 / (((double)sh.H + 0.1) / (double)w->M));
            sx = (float)(1.0 / (((double)sh.W + 0.1) / (double)w->M));
        } else { // size = (H, W)
            sy = (float)w->M / (float)sh.H;
            sx = (float)w->M / (float)sh.W;
        }
        if (PLANTED("bb_pos_scale")) sy = sx = (float)(w->M - 1) / (float)(sh.H - 1);
        bicubic_resample(tab + D, grid, w->M, w->M, sh.H, sh.W, sy, sx, D);
    }
    return tab;
}

// The position embeddings of one sequence for clips of T_in frames of S px.
static void make_pos_table(Vit *v, int T_in, int S) {
    if (v->T_in == T_in && v->S == S) return;
    free(v->pos_tab);
    v->pos_tab = vit_pos_table(&v->w, &v->opt, T_in, S);
    v->T_in = T_in;
    v->S = S;
}

// rows: tokens of one clip; n: tokens per sequence; cols: patch-vector floats
static void ensure_workspace(Vit *v, size_t rows, int n, size_t cols) {
    if (rows > v->cap_rows) {
        v->x = scratch_regrow(v->x, rows * v->w.D);
        v->cap_rows = rows;
    }
    if (cols > v->cap_cols) {
        v->cols = scratch_regrow(v->cols, cols);
        v->cap_cols = cols;
    }
    block_scratch_reserve(&v->s, &v->bs, rows, n);
}

// The embedding output (hidden_states[0]) of one clip into x.
static void embed(Vit *v, const float *frames, int T_in, int S, const BackboneShape *sh, int n) {
    const int D = v->w.D, K = 3 * v->w.kt * v->w.p * v->w.p, patches = sh->T * sh->N;
    patchify(v->cols, frames, T_in, S, v->w.p, v->w.kt);
    if (v->w.videomae) { // one sequence of T*N tokens: patch embedding + sinusoid
        matmul_forward(v->x, D, v->cols, v->w.patch_w, v->w.patch_b, patches, K, D);
        residual_forward(v->x, v->pos_tab, NULL, patches, D);
        return;
    }
    // DINOv2: per frame [CLS, patches] + position embeddings
    matmul_forward(v->s.h, D, v->cols, v->w.patch_w, v->w.patch_b, patches, K, D);
    const float *pt = v->pos_tab;
#pragma omp parallel for collapse(2) schedule(static)
    for (int t = 0; t < sh->T; t++)
        for (int i = 0; i < n; i++) {
            float *xr = v->x + ((size_t)t * n + i) * D;
            if (i == 0) {
                memcpy(xr, pt, sizeof(float) * D);
            } else {
                const float *e = v->s.h + ((size_t)t * sh->N + i - 1) * D, *q = pt + (size_t)i * D;
                for (int c = 0; c < D; c++) xr[c] = e[c] + q[c];
            }
        }
}

void vit_forward(Vit *v, const float *pixels, int clips, int T_in, int S, const int *layers, int n_layers,
                 float *const *out) {
    const BackboneShape sh = vit_weights_shape(&v->w, T_in, S);
    make_pos_table(v, T_in, S);
    const int D = v->w.D, skip = v->w.videomae ? 0 : 1; // DINOv2 drops CLS
    const int B = v->w.videomae ? 1 : sh.T;            // sequences per clip
    const int n = v->w.videomae ? sh.T * sh.N : 1 + sh.N;
    const int keep = n - skip;
    const size_t clip_in = (size_t)T_in * 3 * S * S, clip_out = (size_t)sh.T * sh.N * D;
    ensure_workspace(v, (size_t)B * n, n, (size_t)sh.T * sh.N * 3 * v->w.kt * v->w.p * v->w.p);
    int last = -1;
    for (int j = 0; j < n_layers; j++) last = layers[j] > last ? layers[j] : last;

    for (int c = 0; c < clips; c++) {
        embed(v, pixels + c * clip_in, T_in, S, &sh, n);
        for (int l = 0; l <= last; l++) {
            block_forward(v->x, &v->w.blk[l], &v->bs, B, n, &v->s);
            for (int j = 0; j < n_layers; j++) {
                if (layers[j] != l) continue;
                for (int b = 0; b < B; b++) {
                    float *dst = out[j] + c * clip_out + (size_t)b * keep * D;
                    const float *src = v->x + ((size_t)b * n + skip) * D;
                    if (v->opt.final_norm)
                        layernorm_forward(dst, src, v->w.norm_w, v->w.norm_b, keep, D, v->w.eps);
                    else
                        memcpy(dst, src, sizeof(float) * (size_t)keep * D);
                }
            }
        }
    }
}
