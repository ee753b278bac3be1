// test_cuda_eval.c — a clip's evaluation on the GPU (sae_cuda.h
// sae_cuda_eval_clip) against references computed here on the CPU, for
// standard (with the union TopK smoothing), standard+M (BatchTopK's fixed
// threshold theta), sparsemax and entmax-1.5 on a random clip (d = 32,
// m = 128, T = 5 steps of N = 16 positions, float16 features, scale 0.7):
//   - the tokens: float16 -> float by ldexp here (independent of tokens.cu),
//     times the scale; their per-channel sums and sums of squares in token
//     order, in double, and their token mean: the same bits;
//   - the codes: the CPU's sae_encode on those tokens (the same latents per
//     token, values within 1e-4); BatchTopK with theta at a value some
//     activations equal exactly (theta is the 40th largest pre-activation):
//     the GPU keeps a > theta only, as the CPU;
//   - the decode's token mean (from the CPU's sae_decode) within 1e-5, and
//     the squared error sum within 1e-5 relative;
//   - union TopK (standard): brute force here in double, from the definition
//     of metrics.h (at t > 0, among the union of the supports of rows t-1 and
//     t, the k largest positive max(pre_t-1, pre_t)): the same latents,
//     values within 1e-4.
// Each on the device (label cuda) or on the emulation (cuda-emu); exits 77
// where no device is present.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/comm/device.h"
#include "stsae/sae/sae.h"
#include "stsae/sae/sae_cuda.h"
#include "testutil.h"
#include "testutil_cuda.h"

enum { D = 32, M = 128, T = 5, NP = 16, N = T * NP, K = 8 };
static const float SCALE = 0.7f;

// IEEE binary16 bits to float, written out here (normal and subnormal values).
static float half_ref(uint16_t h) {
    const int e = (h >> 10) & 0x1f, man = h & 0x3ff;
    const double v = e == 0 ? ldexp(man, -24) : ldexp(1024 + man, e - 25);
    return (float)(h & 0x8000 ? -v : v);
}

// Random float16 features: normal values of magnitude up to ~4, a few subnormal.
static void make_clip(uint16_t *h, uint64_t *s) {
    for (int i = 0; i < N * D; i++) {
        const uint64_t r = rng_next(s);
        const int e = i % 97 == 0 ? 0 : 9 + (int)(r % 8); // exponents 9..16: 2^-6 .. 2
        h[i] = (uint16_t)((r >> 8 & 1) << 15 | e << 10 | (r >> 16 & 0x3ff));
    }
}

// pre [N, M] = (x - b_dec) W_enc^T + b_enc in double.
static void pre_ref(const SaeTensors *p, const float *x, double *pre) {
    for (int r = 0; r < N; r++)
        for (int j = 0; j < M; j++) {
            double a = p->b_enc[j];
            for (int i = 0; i < D; i++) a += ((double)x[r * D + i] - p->b_dec[i]) * p->W_enc[j * D + i];
            pre[r * M + j] = a;
        }
}

// Union TopK by its definition, into zu (CSR, latent order).
static void union_ref(const SparseCodes *z, const double *pre, SparseCodes *zu) {
    codes_alloc(zu, N, (int64_t)N * K);
    zu->row_ptr[0] = 0;
    int64_t o = 0;
    for (int r = 0; r < N; r++) {
        uint8_t in[M] = {0};
        double a[M];
        for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) in[z->idx[e]] = 1;
        if (r >= NP)
            for (int64_t e = z->row_ptr[r - NP]; e < z->row_ptr[r - NP + 1]; e++) in[z->idx[e]] = 1;
        for (int j = 0; j < M; j++) a[j] = r >= NP ? fmax(pre[(r - NP) * M + j], pre[r * M + j]) : 0.0;
        uint8_t keep[M] = {0};
        if (r < NP) {
            for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) keep[z->idx[e]] = 1, a[z->idx[e]] = z->val[e];
        } else {
            for (int q = 0; q < K; q++) { // the largest positive candidate not yet kept
                int best = -1;
                for (int j = 0; j < M; j++)
                    if (in[j] && !keep[j] && a[j] > 0.0 && (best < 0 || a[j] > a[best])) best = j;
                if (best >= 0) keep[best] = 1;
            }
        }
        for (int j = 0; j < M; j++)
            if (keep[j]) zu->idx[o] = j, zu->val[o++] = (float)a[j];
        zu->row_ptr[r + 1] = o;
    }
    zu->n_rows = N;
    zu->nnz = o;
}

static void run_case(const char *variant, float temp_s) {
    SaeConfig cfg;
    if (sae_config_init(&cfg, variant, D, M) != 0) die("unknown variant %s", variant);
    cfg.k = K;
    if (temp_s > 0) cfg.temp_s = temp_s;
    const size_t np = sae_num_params(&cfg);
    float *params = xmalloc(sizeof(float) * np), *x = xmalloc(sizeof(float) * N * D);
    float *xh = xmalloc(sizeof(float) * N * D);
    double *pre = xmalloc(sizeof(double) * N * M);
    uint16_t *h = xmalloc(sizeof(uint16_t) * N * D);
    SaeTensors p;
    sae_carve(params, &cfg, &p);
    sae_init(&cfg, &p, 11, NULL);
    uint64_t s = 5;
    for (int j = 0; j < M; j++) p.b_enc[j] = 0.05f * (float)rng_normal(&s);
    for (int i = 0; i < D; i++) p.b_dec[i] = 0.1f * (float)rng_normal(&s);
    make_clip(h, &s);
    for (int i = 0; i < N * D; i++) x[i] = half_ref(h[i]) * SCALE;
    pre_ref(&p, x, pre);
    // theta: the 40th largest activation as the CPU computes it, so that one equals it exactly
    float theta = 0.0f;
    if (cfg.select == SEL_BATCHTOPK) {
        SaeWork *w1 = sae_work_create(&cfg, N);
        SparseCodes zall;
        codes_alloc(&zall, N, (int64_t)N * M);
        sae_encode(&cfg, &p, x, N, -INFINITY, w1, &zall); // every positive activation
        float *v = xmalloc(sizeof(float) * (size_t)(zall.nnz + 1));
        memcpy(v, zall.val, sizeof(float) * (size_t)zall.nnz);
        for (int64_t i = 0; i < 40; i++) // partial selection sort: v[39] the 40th largest
            for (int64_t q = i + 1; q < zall.nnz; q++)
                if (v[q] > v[i]) {
                    const float t = v[i];
                    v[i] = v[q], v[q] = t;
                }
        theta = v[39];
        free(v);
        codes_free(&zall);
        sae_work_free(w1);
    }

    // the CPU's codes and decode
    SaeWork *wc = sae_work_create(&cfg, N);
    SparseCodes zc, zg, zug, zur;
    codes_alloc(&zc, N, (int64_t)N * M);
    sae_encode(&cfg, &p, x, N, theta, wc, &zc);
    sae_decode(&cfg, &p, &zc, M, xh);
    double sx[D], sxx[D], sh[D], sse = 0.0;
    float x_mean[D], xh_mean[D];
    for (int i = 0; i < D; i++) {
        sx[i] = sxx[i] = sh[i] = 0.0;
        for (int r = 0; r < N; r++) {
            const double v = x[r * D + i], e = v - xh[r * D + i];
            sx[i] += v;
            sxx[i] += v * v;
            sh[i] += xh[r * D + i];
            sse += e * e;
        }
        x_mean[i] = (float)(sx[i] / N);
        xh_mean[i] = (float)(sh[i] / N);
    }

    // the GPU's
    const int want_union = cfg.select == SEL_TOPK;
    float *dparams = dev_alloc_floats(np);
    dev_upload(dparams, params, np);
    SaeTensors pd;
    sae_carve(dparams, &cfg, &pd);
    SaeCudaEval *ev = sae_cuda_eval_create(&cfg, T, NP);
    codes_alloc(&zg, N, 1);
    codes_alloc(&zug, N, 1);
    double gsx[D], gsxx[D];
    float gx_mean[D], gxh_mean[D];
    SaeCudaClip c = {.z = &zg, .zu = want_union ? &zug : NULL, .xh_mean = gxh_mean, .x_mean = gx_mean,
                     .sx = gsx, .sxx = gsxx};
    sae_cuda_eval_clip(ev, &cfg, &pd, h, SCALE, theta, &c);

    char what[128];
#define WHAT(...) (snprintf(what, sizeof what, __VA_ARGS__), what)
    check(!memcmp(gsx, sx, sizeof sx) && !memcmp(gsxx, sxx, sizeof sxx) && !memcmp(gx_mean, x_mean, sizeof x_mean),
          WHAT("%s: tokens' sums and mean (the same bits)", variant), 0.0);
    int same = 0;
    const double ez = codes_diff(&zg, &zc, &same);
    check(same && ez <= 1e-4 && zc.nnz > 0, WHAT("%s: codes (%lld entries; same latents, values)", variant,
                                                   (long long)zc.nnz), ez);
    if (cfg.select == SEL_BATCHTOPK) {
        int above = 1;
        for (int64_t e = 0; e < zg.nnz; e++) above &= zg.val[e] > theta;
        check(above && zc.nnz == 39, WHAT("%s: theta keeps a > theta only (39 of 40)", variant), fabs(zc.nnz - 39.0));
    }
    const double exh = max_rel(gxh_mean, xh_mean, D);
    check(exh <= 1e-5, WHAT("%s: decode's token mean", variant), exh);
    const double esse = fabs(c.sse - sse) / sse;
    check(esse <= 1e-5, WHAT("%s: squared error sum (%.4g)", variant, sse), esse);
    if (want_union) {
        union_ref(&zg, pre, &zur);
        const double eu = codes_diff(&zug, &zur, &same);
        int changed = 0; // the smoothing moved some row's support off the codes'
        for (int r = NP; r < N && !changed; r++)
            for (int64_t e = zur.row_ptr[r]; e < zur.row_ptr[r + 1]; e++) {
                int found = 0;
                for (int64_t q = zg.row_ptr[r]; q < zg.row_ptr[r + 1]; q++) found |= zg.idx[q] == zur.idx[e];
                changed |= !found;
            }
        check(same && eu <= 1e-4 && changed, WHAT("%s: union TopK (same latents, values)", variant), eu);
        codes_free(&zur);
    }

    sae_cuda_eval_free(ev);
    dev_free(dparams);
    codes_free(&zc), codes_free(&zg), codes_free(&zug);
    sae_work_free(wc);
    free(params), free(x), free(xh), free(pre), free(h);
}

int main(void) {
    if (device_count() <= 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    device_use(0);
    run_case("standard", 0.0f);
    run_case("standard+M", 0.0f);
    run_case("sparsemax", 0.5f);
    run_case("entmax15", 0.5f);
    return tally_report();
}
