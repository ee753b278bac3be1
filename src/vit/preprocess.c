// preprocess.c — PIL's resampling, HF's centre crop and normalisation (preprocess.h).
#include "stsae/vit/preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

#define PRECISION_BITS 22 // PIL's 8-bit path: 32 - 8 - 2

static const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};
// OPENAI_CLIP_MEAN / OPENAI_CLIP_STD of transformers' image_utils
static const float CLIP_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float CLIP_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static Preprocess make(int short_side, int crop, Resample filter) {
    Preprocess p = {.short_side = short_side, .crop = crop, .filter = filter};
    memcpy(p.mean, IMAGENET_MEAN, sizeof(p.mean));
    memcpy(p.std, IMAGENET_STD, sizeof(p.std));
    return p;
}

Preprocess preprocess_dinov2(void) { return make(256, 224, RESAMPLE_BICUBIC); }
Preprocess preprocess_videomae(void) { return make(224, 224, RESAMPLE_BILINEAR); }
Preprocess preprocess_square(int size) { return make(size, size, RESAMPLE_BILINEAR); }
Preprocess preprocess_openai_clip(int size) {
    Preprocess p = make(size, size, RESAMPLE_BICUBIC);
    memcpy(p.mean, CLIP_MEAN, sizeof(p.mean));
    memcpy(p.std, CLIP_STD, sizeof(p.std));
    return p;
}

// PIL's filters, written as in Resample.c (the same operations in the same order).
static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static double bicubic_filter(double x) {
    const double a = PLANTED("bicubic_torch_a") ? -0.75 : -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// The fixed-point weights of output indices [first, first + count) of a
// resize from n_in to n_out samples (PIL's precompute_coeffs followed by
// normalize_coeffs_8bpc). Output o reads inputs [lo[o], lo[o] + taps[o]).
typedef struct {
    int ksize;
    int *lo, *taps; // [count]
    int32_t *k;     // [count, ksize]
} Coeffs;

static void coeffs_make(Coeffs *c, int n_in, int n_out, int first, int count, Resample f) {
    double (*filter)(double) = f == RESAMPLE_BICUBIC ? bicubic_filter : bilinear_filter;
    double scale = (double)n_in / n_out, filterscale = scale < 1.0 || PLANTED("no_antialias") ? 1.0 : scale;
    double support = (f == RESAMPLE_BICUBIC ? 2.0 : 1.0) * filterscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->lo = xmalloc(sizeof(int) * (size_t)count);
    c->taps = xmalloc(sizeof(int) * (size_t)count);
    c->k = xcalloc((size_t)count * c->ksize, sizeof(int32_t));
    double *w = xmalloc(sizeof(double) * (size_t)c->ksize);
    for (int o = 0; o < count; o++) {
        int xx = first + o;
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > n_in) xmax = n_in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = filter((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->k + (size_t)o * c->ksize;
        for (int x = 0; x < xmax; x++) {
            if (ww != 0.0) w[x] /= ww;
            k[x] = w[x] < 0 ? (int32_t)(-0.5 + w[x] * (1 << PRECISION_BITS))
                            : (int32_t)(0.5 + w[x] * (1 << PRECISION_BITS));
        }
        c->lo[o] = xmin;
        c->taps[o] = xmax;
    }
    free(w);
}

static void coeffs_free(Coeffs *c) {
    free(c->lo);
    free(c->taps);
    free(c->k);
}

static inline uint8_t clip8(int32_t acc) {
    int32_t v = acc >> PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

// Everything that depends only on the frame size: the resized size, the crop
// window, both passes' weights, and the input rows the vertical pass reads.
typedef struct {
    int w, h, new_w, new_h, top, left, crop;
    int resize_x, resize_y; // PIL skips a pass whose size does not change
    Coeffs cx, cy;          // the crop's columns of w -> new_w, rows of h -> new_h
    int row0, rows;         // input rows [row0, row0 + rows) feed the crop's rows
    uint8_t *mid;           // [rows, crop, 3] after the horizontal pass
} Plan;

static void plan_make(Plan *pl, const Preprocess *p, int w, int h) {
    if (p->crop < 1 || p->short_side < p->crop)
        die("preprocess: crop %d must be in [1, short side %d]", p->crop, p->short_side);
    if (w < 1 || h < 1) die("preprocess: frame of size %dx%d", w, h);
    // HF get_resize_output_image_size(default_to_square=False): the short side
    // becomes short_side, the long one int(short_side * long / short)
    int shrt = w <= h ? w : h, lng = w <= h ? h : w;
    int new_long = (int)((double)((int64_t)p->short_side * lng) / shrt);
    pl->w = w;
    pl->h = h;
    pl->new_w = w <= h ? p->short_side : new_long;
    pl->new_h = w <= h ? new_long : p->short_side;
    pl->crop = p->crop;
    pl->top = (pl->new_h - p->crop) / 2;
    pl->left = (pl->new_w - p->crop) / 2;
    pl->resize_x = pl->new_w != w;
    pl->resize_y = pl->new_h != h;
    coeffs_make(&pl->cx, w, pl->new_w, pl->left, p->crop, p->filter);
    coeffs_make(&pl->cy, h, pl->new_h, pl->top, p->crop, p->filter);
    if (pl->resize_y) {
        int lo = h, hi = 0;
        for (int o = 0; o < p->crop; o++) {
            if (pl->cy.lo[o] < lo) lo = pl->cy.lo[o];
            if (pl->cy.lo[o] + pl->cy.taps[o] > hi) hi = pl->cy.lo[o] + pl->cy.taps[o];
        }
        pl->row0 = lo;
        pl->rows = hi - lo;
    } else {
        pl->row0 = pl->top;
        pl->rows = p->crop;
    }
    pl->mid = xmalloc((size_t)pl->rows * p->crop * 3);
}

static void plan_free(Plan *pl) {
    coeffs_free(&pl->cx);
    coeffs_free(&pl->cy);
    free(pl->mid);
}

static void resize_crop(Plan *pl, const uint8_t *rgb, uint8_t *out) {
    const int S = pl->crop, W = pl->w;
    // horizontal: input rows [row0, row0 + rows), the crop's columns
    for (int y = 0; y < pl->rows; y++) {
        const uint8_t *in = rgb + (size_t)(pl->row0 + y) * W * 3;
        uint8_t *mid = pl->mid + (size_t)y * S * 3;
        if (!pl->resize_x) {
            memcpy(mid, in + (size_t)pl->left * 3, (size_t)S * 3);
            continue;
        }
        for (int x = 0; x < S; x++) {
            const int32_t *k = pl->cx.k + (size_t)x * pl->cx.ksize;
            const uint8_t *px = in + (size_t)pl->cx.lo[x] * 3;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int t = 0; t < pl->cx.taps[x]; t++) {
                s0 += px[3 * t + 0] * k[t];
                s1 += px[3 * t + 1] * k[t];
                s2 += px[3 * t + 2] * k[t];
            }
            mid[3 * x + 0] = clip8(s0);
            mid[3 * x + 1] = clip8(s1);
            mid[3 * x + 2] = clip8(s2);
        }
    }
    // vertical: the crop's rows out of the intermediate rows
    if (!pl->resize_y) {
        memcpy(out, pl->mid, (size_t)S * S * 3);
        return;
    }
    for (int y = 0; y < S; y++) {
        const int32_t *k = pl->cy.k + (size_t)y * pl->cy.ksize;
        const uint8_t *col = pl->mid + (size_t)(pl->cy.lo[y] - pl->row0) * S * 3;
        uint8_t *o = out + (size_t)y * S * 3;
        for (int x = 0; x < 3 * S; x++) {
            int32_t s = 1 << (PRECISION_BITS - 1);
            for (int t = 0; t < pl->cy.taps[y]; t++) s += col[(size_t)t * S * 3 + x] * k[t];
            o[x] = clip8(s);
        }
    }
}

void preprocess_resize_crop(const Preprocess *p, const uint8_t *rgb, int w, int h, uint8_t *out) {
    Plan pl;
    plan_make(&pl, p, w, h);
    resize_crop(&pl, rgb, out);
    plan_free(&pl);
}

void preprocess_clip(const Preprocess *p, const uint8_t *rgb, int T, int w, int h, float *out) {
    Plan pl;
    plan_make(&pl, p, w, h);
    const int S = p->crop;
    const size_t plane = (size_t)S * S;
    uint8_t *u8 = xmalloc(plane * 3);
    // HF: rescale in float64 then cast to float32; normalize in float32
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)(v * (1.0 / 255.0)) - p->mean[c]) / p->std[c];
    for (int t = 0; t < T; t++) {
        resize_crop(&pl, rgb + (size_t)t * w * h * 3, u8);
        float *o = out + (size_t)t * 3 * plane;
        for (size_t i = 0; i < plane; i++)
            for (int c = 0; c < 3; c++) o[c * plane + i] = lut[c][u8[3 * i + c]];
    }
    free(u8);
    plan_free(&pl);
}
