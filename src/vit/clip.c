// clip.c — CLIP's vision and text towers (clip.h) on the CPU: vit_ops.h's
// patchify, GEMMs, LayerNorm and pre-norm blocks, images a batch at a time
// (large enough GEMMs for the cores, a bounded workspace), texts one at a
// time over their own length (the causal mask makes the padding that
// `transformers` adds irrelevant to the end token's state).
#include "stsae/vit/clip.h"

#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

// Images per pass of the vision tower: 32 x 50 tokens at ViT-B/32.
enum { IMAGE_BATCH = 32 };

struct Clip {
    ClipWeights w;
    size_t cap_x, cap_cols, cap_pool; // floats
    float *x;                         // tokens [rows, D] of the tower running
    float *cols;                      // patch vectors [batch * G*G, 3*p*p]
    float *pool;                      // the pooled rows [batch, D], normalised
    BlockScratch s;
};

Clip *clip_create(const ClipWeights *w) {
    Clip *c = xcalloc(1, sizeof(Clip));
    c->w = *w;
    return c;
}

void clip_free(Clip *c) {
    if (!c) return;
    free(c->x);
    free(c->cols);
    free(c->pool);
    block_scratch_free(&c->s);
    free(c);
}

static void reserve(float **buf, size_t *cap, size_t n) {
    if (n <= *cap) return;
    *buf = scratch_regrow(*buf, n);
    *cap = n;
}

static void run_blocks(Clip *c, const ClipTower *t, int B, int n) {
    block_scratch_reserve(&c->s, &t->bs, (size_t)B * n, n);
    for (int l = 0; l < t->depth; l++) block_forward(c->x, &t->blk[l], &t->bs, B, n, &c->s);
}

void clip_image_forward(Clip *c, const float *pixels, int n, int S, float *out) {
    const ClipWeights *w = &c->w;
    if (S != w->img)
        die("%s: CLIP takes images of image_size = %d px (config.json), not %d px", w->source, w->img, S);
    const int D = w->vis.bs.D, G = S / w->p, N = G * G, K = 3 * w->p * w->p, seq = 1 + N;
    for (int i0 = 0; i0 < n; i0 += IMAGE_BATCH) {
        const int B = n - i0 < IMAGE_BATCH ? n - i0 : IMAGE_BATCH;
        reserve(&c->x, &c->cap_x, (size_t)B * seq * D);
        reserve(&c->cols, &c->cap_cols, (size_t)B * N * K);
        reserve(&c->pool, &c->cap_pool, (size_t)B * D);
        block_scratch_reserve(&c->s, &w->vis.bs, (size_t)B * seq, seq);
        // the B images as B one-frame "clips": patch rows (b, gy, gx)
        patchify(c->cols, pixels + (size_t)i0 * 3 * S * S, B, S, w->p, 1);
        matmul_forward(c->s.h, D, c->cols, w->patch_w, NULL, B * N, K, D);
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < seq; i++) {
                float *xr = c->x + ((size_t)b * seq + i) * D;
                const float *e = i ? c->s.h + ((size_t)b * N + i - 1) * D : w->cls, *q = w->pos + (size_t)i * D;
                for (int k = 0; k < D; k++) xr[k] = e[k] + q[k];
            }
        layernorm_forward(c->x, c->x, w->pre_w, w->pre_b, B * seq, D, w->vis.bs.eps);
        run_blocks(c, &w->vis, B, seq);
        for (int b = 0; b < B; b++) // the class tokens
            layernorm_forward(c->pool + (size_t)b * D, c->x + (size_t)b * seq * D, w->post_w, w->post_b, 1, D,
                              w->vis.bs.eps);
        matmul_forward(out + (size_t)i0 * w->E, w->E, c->pool, w->vproj, NULL, B, D, w->E);
    }
}

void clip_text_forward(Clip *c, const int32_t *ids, int len, float *out) {
    const ClipWeights *w = &c->w;
    const int D = w->txt.bs.D;
    if (len < 1 || len > w->ctx) die("%s: a text of %d tokens (max_position_embeddings %d)", w->source, len, w->ctx);
    int at = -1; // the end token
    for (int i = 0; i < len; i++) {
        if (ids[i] < 0 || ids[i] >= w->vocab) die("%s: token id %d outside the vocabulary (%d)", w->source, ids[i], w->vocab);
        if (w->eos_argmax ? at < 0 || ids[i] > ids[at] : at < 0 && ids[i] == w->eos_id) at = i;
    }
    if (at < 0) at = 0; // no end token: position 0, as transformers' argmax over a mask of zeros
    if (PLANTED("clip_pool_first")) at = 0;
    reserve(&c->x, &c->cap_x, (size_t)len * D);
    reserve(&c->pool, &c->cap_pool, (size_t)D);
    for (int i = 0; i < len; i++) {
        const float *e = w->tok + (size_t)ids[i] * D, *q = w->tpos + (size_t)i * D;
        float *xr = c->x + (size_t)i * D;
        for (int k = 0; k < D; k++) xr[k] = e[k] + q[k];
    }
    run_blocks(c, &w->txt, 1, len);
    layernorm_forward(c->pool, c->x + (size_t)at * D, w->final_w, w->final_b, 1, D, w->txt.bs.eps);
    matmul_forward(out, w->E, c->pool, w->tproj, NULL, 1, D, w->E);
}
