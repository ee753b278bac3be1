// vit_ops.c — the ViT operations on the CPU (vit_ops.h): OpenBLAS sgemm for
// every product, OpenMP loops with vectorizable exp/erf for the rest.
#include "stsae/vit/vit_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

// (Clamps are written as comparisons: fminf/fmaxf are library calls that
// stop vectorization unless -ffinite-math-only.)

// Query rows per attention task: bounds the score block of one thread to
// ATT_ROWS x n floats and gives enough tasks for many threads at VideoMAE's
// single long sequence.
enum { ATT_ROWS = 256 };

// erf in float to ~3e-7 absolute: the rational approximation of Eigen/XLA
// (odd numerator, even denominator in x^2 on [-4, 4]); branch-free, so loops
// calling it vectorize. GELU must be the exact erf form, not the tanh one.
static inline float erf_approx(float x) {
    x = x < -4.0f ? -4.0f : x > 4.0f ? 4.0f : x;
    const float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return x * p / q;
}

// exp in float to ~1e-7 relative on [-87.3, 88.3] (Cephes expf: Cody-Waite
// reduction by ln 2, degree-6 polynomial, 2^n built in the exponent bits).
// n = round(x / ln 2) by adding 1.5 * 2^23, which leaves n in the low bits
// of the sum: floorf would not vectorize without -fno-trapping-math.
static inline float exp_approx(float x) {
    const float shift = 12582912.0f; // 1.5 * 2^23
    x = x < -87.3f ? -87.3f : x > 88.3f ? 88.3f : x;
    const float t = x * 1.44269504088896341f + shift;
    int32_t t_bits, shift_bits;
    memcpy(&t_bits, &t, sizeof(t));
    memcpy(&shift_bits, &shift, sizeof(shift));
    const float n = t - shift;
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.0f;
    const int32_t bits = (t_bits - shift_bits + 127) << 23; // 2^n
    float two_n;
    memcpy(&two_n, &bits, sizeof(two_n));
    return y * two_n;
}

void patchify(float *out, const float *frames, int T_in, int S, int p, int kt) {
    const int G = S / p, T = T_in / kt, K = 3 * kt * p * p;
#pragma omp parallel for collapse(2) schedule(static)
    for (int t = 0; t < T; t++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                float *row = out + ((size_t)(t * G + gy) * G + gx) * K;
                for (int c = 0; c < 3; c++)
                    for (int dt = 0; dt < kt; dt++) {
                        const float *f = frames + ((size_t)(t * kt + dt) * 3 + c) * S * S;
                        for (int ky = 0; ky < p; ky++, row += p)
                            memcpy(row, f + (size_t)(gy * p + ky) * S + (size_t)gx * p, sizeof(float) * p);
                    }
            }
}

void layernorm_forward(float *out, const float *inp, const float *w, const float *b, int n, int C,
                       float eps) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        double s = 0.0, v = 0.0;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < C; j++) s += x[j];
        const float mean = (float)(s / C);
#pragma omp simd reduction(+ : v)
        for (int j = 0; j < C; j++) {
            const float dlt = x[j] - mean;
            v += dlt * dlt;
        }
        const float rstd = (float)(1.0 / sqrt(v / C + (double)eps));
#pragma omp simd
        for (int j = 0; j < C; j++) y[j] = (x[j] - mean) * rstd * w[j] + b[j];
    }
}

void matmul_forward(float *out, int ldo, const float *inp, const float *W, const float *bias, int n, int C,
                    int OC) {
    // the bias first, then C += A B^T: saves sgemm's separate pass that zeroes C for beta = 0
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * ldo;
        if (bias)
            memcpy(o, bias, sizeof(float) * OC);
        else
            memset(o, 0, sizeof(float) * OC);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, OC, C, 1.0f, inp, C, W, C, 1.0f, out, ldo);
}

void gelu_forward(float *x, size_t n) {
    if (PLANTED("bb_gelu_tanh")) { // the tanh approximation instead of erf
        for (size_t i = 0; i < n; i++)
            x[i] = 0.5f * x[i] * (1.0f + tanhf(0.7978845608f * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
        return;
    }
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erf_approx(x[i] * 0.70710678118654752f));
}

void quick_gelu_forward(float *x, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + exp_approx(-1.702f * x[i]));
}

void residual_forward(float *x, const float *y, const float *scale, int n, int C) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *xr = x + (size_t)i * C;
        const float *yr = y + (size_t)i * C;
        if (scale) {
#pragma omp simd
            for (int j = 0; j < C; j++) xr[j] += scale[j] * yr[j];
        } else {
#pragma omp simd
            for (int j = 0; j < C; j++) xr[j] += yr[j];
        }
    }
}

static void softmax_row(float *s, int n) {
    float mx = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        s[j] = exp_approx(s[j] - mx);
        sum += s[j];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < n; j++) s[j] *= inv;
}

size_t attention_work_floats(int n) { return (size_t)max_threads() * ATT_ROWS * (size_t)n; }

void attention_forward(float *out, const float *qkv, int B, int n, int C, int NH, int causal, float *work) {
    const int hd = C / NH, ld = 3 * C;
    const int nblk = (n + ATT_ROWS - 1) / ATT_ROWS, rb = (n + nblk - 1) / nblk;
    const float scale = 1.0f / sqrtf((float)hd);
    const int tasks = B * NH * nblk;
    // One (sequence, head, block of query rows) per task, each task's sgemms
    // on one thread. OpenBLAS (0.3.21, OpenMP build) called inside a parallel
    // region runs 10-25x slower than that unless told to use one thread.
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#pragma omp parallel for schedule(dynamic)
    for (int task = 0; task < tasks; task++) {
        const int blk = task % nblk, h = task / nblk % NH, b = task / (nblk * NH);
        const int r0 = blk * rb, rows = r0 + rb <= n ? rb : n - r0;
        const float *base = qkv + (size_t)b * n * ld + (size_t)h * hd;
        const float *q = base + (size_t)r0 * ld, *k = base + C, *v = base + 2 * C;
        float *s = work + (size_t)thread_id() * ATT_ROWS * n; // [rows, n]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, hd, scale, q, ld, k, ld, 0.0f, s, n);
        for (int r = 0; r < rows; r++) {
            // causal: query r0 + r sees keys 0 .. r0 + r; the rest weigh 0
            const int seen = causal && !PLANTED("clip_no_causal") ? r0 + r + 1 : n;
            softmax_row(s + (size_t)r * n, seen);
            if (seen < n) memset(s + (size_t)r * n + seen, 0, sizeof(float) * (size_t)(n - seen));
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, n, 1.0f, s, n, v, ld, 0.0f,
                    out + ((size_t)b * n + r0) * C + (size_t)h * hd, C);
    }
    openblas_set_num_threads(blas_threads);
}

float *scratch_regrow(float *buf, size_t n) {
    free(buf);
    return xmalloc(sizeof(float) * n);
}

void block_scratch_reserve(BlockScratch *s, const BlockShape *bs, size_t rows, int n) {
    if (rows > s->rows) {
        s->h = scratch_regrow(s->h, rows * bs->D);
        s->att = scratch_regrow(s->att, rows * bs->D);
        s->qkv = scratch_regrow(s->qkv, rows * 3 * bs->D);
        s->mlp = scratch_regrow(s->mlp, rows * bs->F);
        s->rows = rows;
    }
    const size_t work = attention_work_floats(n);
    if (work > s->work) {
        s->s = scratch_regrow(s->s, work);
        s->work = work;
    }
}

void block_scratch_free(BlockScratch *s) {
    free(s->h);
    free(s->att);
    free(s->qkv);
    free(s->mlp);
    free(s->s);
    memset(s, 0, sizeof(*s));
}

void block_forward(float *x, const VitBlock *b, const BlockShape *bs, int B, int n, BlockScratch *s) {
    const int D = bs->D, F = bs->F, rows = B * n;
    layernorm_forward(s->h, x, b->ln1_w, b->ln1_b, rows, D, bs->eps);
    matmul_forward(s->qkv, 3 * D, s->h, b->wq, b->bq, rows, D, D);
    matmul_forward(s->qkv + D, 3 * D, s->h, b->wk, b->bk, rows, D, D);
    matmul_forward(s->qkv + 2 * D, 3 * D, s->h, b->wv, b->bv, rows, D, D);
    attention_forward(s->att, s->qkv, B, n, D, bs->NH, bs->causal, s->s);
    matmul_forward(s->h, D, s->att, b->wo, b->bo, rows, D, D);
    residual_forward(x, s->h, b->ls1, rows, D);
    layernorm_forward(s->h, x, b->ln2_w, b->ln2_b, rows, D, bs->eps);
    matmul_forward(s->mlp, F, s->h, b->w1, b->b1, rows, D, F);
    if (bs->act == ACT_QUICK_GELU && !PLANTED("clip_exact_gelu"))
        quick_gelu_forward(s->mlp, (size_t)rows * F);
    else
        gelu_forward(s->mlp, (size_t)rows * F);
    matmul_forward(s->h, D, s->mlp, b->w2, b->b2, rows, F, D);
    residual_forward(x, s->h, b->ls2, rows, D);
}

// Taps of one axis: for output o, source indices idx[4o..4o+3] and weights
// w[4o..4o+3], as aten's bicubic kernel computes them (UpSample.h).
static void cubic_taps(int n_in, int n_out, float scale, int *idx, float *w) {
    const float A = -0.75f;
    for (int o = 0; o < n_out; o++) {
        const float real = scale * ((float)o + 0.5f) - 0.5f; // not clamped at 0 for cubic
        int i0 = (int)floorf(real);
        if (i0 > n_in - 1) i0 = n_in - 1;
        const float t = fminf(fmaxf(real - (float)i0, 0.0f), 1.0f);
        float x = t + 1.0f;
        w[4 * o + 0] = ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
        x = t;
        w[4 * o + 1] = ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
        x = 1.0f - t;
        w[4 * o + 2] = ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
        x = 2.0f - t;
        w[4 * o + 3] = ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
        for (int k = 0; k < 4; k++) {
            int i = i0 - 1 + k;
            idx[4 * o + k] = i < 0 ? 0 : i > n_in - 1 ? n_in - 1 : i;
        }
    }
}

void bicubic_resample(float *out, const float *inp, int in_h, int in_w, int out_h, int out_w, float scale_h,
                      float scale_w, int C) {
    int *iy = xmalloc(sizeof(int) * 4 * (size_t)out_h), *ix = xmalloc(sizeof(int) * 4 * (size_t)out_w);
    float *wy = xmalloc(sizeof(float) * 4 * (size_t)out_h), *wx = xmalloc(sizeof(float) * 4 * (size_t)out_w);
    cubic_taps(in_h, out_h, scale_h, iy, wy);
    cubic_taps(in_w, out_w, scale_w, ix, wx);
#pragma omp parallel for collapse(2) schedule(static)
    for (int oy = 0; oy < out_h; oy++)
        for (int ox = 0; ox < out_w; ox++) {
            float *o = out + ((size_t)oy * out_w + ox) * C;
            memset(o, 0, sizeof(float) * C);
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) {
                    const float wt = wy[4 * oy + a] * wx[4 * ox + b];
                    const float *src = inp + ((size_t)iy[4 * oy + a] * in_w + ix[4 * ox + b]) * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) o[c] += wt * src[c];
                }
        }
    free(iy);
    free(ix);
    free(wy);
    free(wx);
}

void sinusoid_table(float *out, int n, int C) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < C; j++) {
            const double ang = (double)i / pow(10000.0, 2.0 * (double)(j / 2) / (double)C);
            out[(size_t)i * C + j] = (float)(j % 2 == 0 ? sin(ang) : cos(ang));
        }
}
