// test_infonce.c — the sparse InfoNCE of infonce.c against brute force: the
// normalized codes as dense rows in double, every group's full matrix of
// logits, a log-softmax shifted by its maximum, the analytic gradient onto u,
// then through u = z / max(||z||, 1e-8) onto z. Nothing is shared with
// infonce.c but the layout of the sets (SPEC §1).
//
// Cases: temporal, separate and raster, each with codes whose anchors share
// a latent with most candidates (few latents in use: infonce.c holds the
// rows densely) and with few (codes spread over many latents: the touched
// sets), checked to have taken that path (infonce_dense_groups); a set size
// that is no multiple of the vector width; a token with no code; and a
// temperature of 0.004, whose logits up to 250 overflowed the float exp the
// code used before its softmax was shifted. Each: the loss terms to 1e-6
// relative and dL/dz to 1e-5 of its largest entry (3e-8 and 1.3e-6
// measured).
// Planted faults (STSAE_PLANT=nce_self, nce_candidate, nce_norm; the
// stsae_core_planted build) make it fail: tests/CMakeLists.txt runs those,
// WILL_FAIL.
// Prints "N passed, M failed"; exits 1 on any failure.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/sae/infonce.h"

static int passed, failed;

static void expect(int ok, const char *what, const char *name, double got, double bound) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s: %s = %.3g (bound %.3g)\n", name, what, got, bound);
    }
}

typedef struct {
    const char *name;
    SaeContrast contrast;
    int clips, T, H, W; // clips (temporal, separate)
    int pairs;          // raster
    int m, used, k;     // dictionary; latents the codes draw from; kept per token
    float tau;
    int dense;          // the path infonce.c must take: 1 dense rows, 0 touched sets
} Case;

// Random codes: k distinct latents of the first `used` per token (values in
// [0.05, 1)), some kept from the token before, so that neighbours (and a
// raster anchor and its partner) share latents; token `empty` keeps nothing.
static void make_codes(SparseCodes *z, int n, const Case *c, int empty, uint64_t seed) {
    codes_alloc(z, n, (int64_t)n * c->k);
    uint64_t s = seed;
    int32_t *prev = xmalloc(sizeof(int32_t) * (size_t)c->k);
    z->row_ptr[0] = 0;
    int64_t at = 0;
    for (int r = 0; r < n; r++) {
        if (r != empty) {
            for (int a = 0; a < c->k; a++) {
                int j, dup;
                do {
                    // each of the first half of a token's latents is its
                    // predecessor's with probability 1/2
                    j = r > 0 && a < c->k / 2 && rng_uniform(&s) < 0.5 ? prev[a]
                                                                      : (int)(rng_next(&s) % (uint64_t)c->used);
                    dup = 0;
                    for (int b = 0; b < a; b++) dup |= z->idx[at - a + b] == j;
                    if (dup) prev[a] = (int)(rng_next(&s) % (uint64_t)c->used);
                } while (dup);
                prev[a] = j;
                z->idx[at] = j;
                z->val[at] = (float)(0.05 + 0.95 * rng_uniform(&s));
                z->grad[at] = 0.0f;
                at++;
            }
        }
        z->row_ptr[r + 1] = at;
    }
    z->nnz = at;
    free(prev);
}

// The loss of one group on dense rows U [n_tok, m] (double): anchors a_i
// (i < n, pos[i] >= 0) against candidates c_0..c_{n-1}, positive c_pos[i];
// self: c_i is not a candidate of a_i. Adds w dl/du to GU; returns the sum
// of l over the anchors.
static double ref_group(const double *U, double *GU, int m, int n, const int *a_tok, const int *c_tok,
                        const int *pos, int self, double inv_tau, double w) {
    double *s = xmalloc(sizeof(double) * (size_t)n);
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        if (pos[i] < 0) continue;
        const double *ua = U + (size_t)a_tok[i] * m;
        double mx = -INFINITY;
        for (int c = 0; c < n; c++) {
            if (self && c == i) continue;
            const double *uc = U + (size_t)c_tok[c] * m;
            double dot = 0.0;
            for (int j = 0; j < m; j++) dot += ua[j] * uc[j];
            s[c] = dot * inv_tau;
            mx = fmax(mx, s[c]);
        }
        double Z = 0.0;
        for (int c = 0; c < n; c++)
            if (!(self && c == i)) Z += exp(s[c] - mx);
        total += mx + log(Z) - s[pos[i]];
        for (int c = 0; c < n; c++) {
            if (self && c == i) continue;
            const double g = w * inv_tau * (exp(s[c] - mx) / Z - (c == pos[i]));
            double *ga = GU + (size_t)a_tok[i] * m, *gc = GU + (size_t)c_tok[c] * m;
            const double *uc = U + (size_t)c_tok[c] * m;
            for (int j = 0; j < m; j++) {
                ga[j] += g * uc[j];
                gc[j] += g * ua[j];
            }
        }
    }
    free(s);
    return total;
}

static void run_case(const Case *c, uint64_t seed) {
    SaeConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.m = c->m;
    cfg.k = c->k;
    cfg.contrast = c->contrast;
    cfg.tau = c->tau;
    cfg.lambda_t = c->contrast == CTR_TEMPORAL || c->contrast == CTR_SEPARATE ? 0.7f : 0.0f;
    cfg.lambda_s = c->contrast == CTR_SEPARATE ? 0.4f : 0.0f;
    cfg.lambda_r = c->contrast == CTR_RASTER ? 0.9f : 0.0f;
    const SaeBatch b = c->contrast == CTR_RASTER ? sae_batch_pairs(c->pairs) : sae_batch_clips(c->clips, c->T, c->H, c->W);
    const int n = b.n_tok, m = c->m;
    SparseCodes z;
    make_codes(&z, n, c, n / 3, seed);

    InfoNceWork *w = infonce_work_create();
    InfoNceLoss got;
    infonce_step(&cfg, &b, &z, NULL, w, &got);
    const int dense = infonce_dense_groups(w);

    // brute force
    double *U = xcalloc((size_t)n * m, sizeof(double)), *GU = xcalloc((size_t)n * m, sizeof(double));
    double *nrm = xmalloc(sizeof(double) * (size_t)n);
    for (int r = 0; r < n; r++) {
        double ss = 0.0;
        for (int64_t e = z.row_ptr[r]; e < z.row_ptr[r + 1]; e++) ss += (double)z.val[e] * z.val[e];
        nrm[r] = fmax(sqrt(ss), 1e-8);
        for (int64_t e = z.row_ptr[r]; e < z.row_ptr[r + 1]; e++) U[(size_t)r * m + z.idx[e]] = z.val[e] / nrm[r];
    }
    const double inv_tau = 1.0 / c->tau;
    double want_t = 0.0, want_s = 0.0, want_r = 0.0;
    if (c->contrast == CTR_RASTER) {
        const int P = c->pairs;
        int *at = xmalloc(sizeof(int) * (size_t)P), *ct = xmalloc(sizeof(int) * (size_t)P), *pos = xmalloc(sizeof(int) * (size_t)P);
        for (int i = 0; i < P; i++) {
            at[i] = 2 * i;
            ct[i] = 2 * i + 1;
            pos[i] = i;
        }
        want_r = ref_group(U, GU, m, P, at, ct, pos, 0, inv_tau, cfg.lambda_r / P) / P;
        free(at);
        free(ct);
        free(pos);
    } else {
        const int B = c->clips, T = c->T, W = c->W, N = c->H * c->W, ns = B * N;
        int *tok = xmalloc(sizeof(int) * (size_t)T * ns), *same = xmalloc(sizeof(int) * (size_t)ns),
            *next = xmalloc(sizeof(int) * (size_t)ns);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < ns; i++) tok[t * ns + i] = (i / N) * T * N + t * N + i % N;
        for (int i = 0; i < ns; i++) {
            same[i] = i;
            next[i] = (i % N) % W < W - 1 ? i + 1 : -1;
        }
        const double n_t = (double)B * (T - 1) * N, n_s = (double)B * T * c->H * (W - 1);
        for (int t = 0; t + 1 < T; t++)
            want_t += ref_group(U, GU, m, ns, tok + t * ns, tok + (t + 1) * ns, same, 0, inv_tau, cfg.lambda_t / n_t);
        want_t /= n_t;
        if (c->contrast == CTR_SEPARATE) {
            for (int t = 0; t < T; t++)
                want_s += ref_group(U, GU, m, ns, tok + t * ns, tok + t * ns, next, 1, inv_tau, cfg.lambda_s / n_s);
            want_s /= n_s;
        }
        free(tok);
        free(same);
        free(next);
    }
    // through the normalization, entry by entry of z
    double err = 0.0, ref = 0.0;
    for (int r = 0; r < n; r++) {
        double dot = 0.0;
        for (int j = 0; j < m; j++) dot += U[(size_t)r * m + j] * GU[(size_t)r * m + j];
        for (int64_t e = z.row_ptr[r]; e < z.row_ptr[r + 1]; e++) {
            const size_t o = (size_t)r * m + z.idx[e];
            const double g = (GU[o] - U[o] * dot) / nrm[r];
            err = fmax(err, fabs(z.grad[e] - g));
            ref = fmax(ref, fabs(g));
        }
    }
    const double d_t = fabs(got.temp - want_t) / fmax(want_t, 1e-30), d_s = fabs(got.spat - want_s) / fmax(want_s, 1e-30),
                 d_r = fabs(got.rast - want_r) / fmax(want_r, 1e-30), d_g = ref > 0.0 ? err / ref : err;
    printf("%-28s temp %.6f spat %.6f rast %.6f | rel. errors %.1e %.1e %.1e, dL/dz %.1e | dense groups %d\n", c->name,
           got.temp, got.spat, got.rast, d_t, d_s, d_r, d_g, dense);
    expect(isfinite(got.temp) && isfinite(got.spat) && isfinite(got.rast) && d_t <= 1e-6 && d_s <= 1e-6 && d_r <= 1e-6,
           "loss terms, largest relative error", c->name, fmax(d_t, fmax(d_s, d_r)), 1e-6);
    expect(d_g <= 1e-5, "dL/dz, error over its largest entry", c->name, d_g, 1e-5);
    expect(c->dense ? dense > 0 : dense == 0, "groups held densely (1: some, 0: none)", c->name, dense, c->dense);
    free(U);
    free(GU);
    free(nrm);
    codes_free(&z);
    infonce_work_free(w);
}

int main(void) {
    const Case cases[] = {
        {"temporal, dense rows", CTR_TEMPORAL, 3, 4, 3, 5, 0, 96, 12, 6, 0.1f, 1},
        {"temporal, touched sets", CTR_TEMPORAL, 3, 4, 3, 5, 0, 4096, 4096, 3, 0.1f, 0},
        {"separate, dense rows", CTR_SEPARATE, 2, 3, 4, 5, 0, 64, 10, 5, 0.2f, 1},
        {"separate, touched sets", CTR_SEPARATE, 2, 3, 6, 8, 0, 4096, 4096, 3, 0.2f, 0},
        {"raster, dense rows", CTR_RASTER, 0, 0, 0, 0, 37, 64, 8, 4, 0.1f, 1},
        {"raster, touched sets", CTR_RASTER, 0, 0, 0, 0, 201, 2048, 2048, 4, 0.1f, 0},
        {"temporal, 51 per set", CTR_TEMPORAL, 3, 3, 1, 17, 0, 128, 16, 6, 0.07f, 1},
        {"separate, tau 0.004, dense", CTR_SEPARATE, 2, 3, 3, 4, 0, 64, 6, 4, 0.004f, 1},
        {"temporal, tau 0.004, touched", CTR_TEMPORAL, 3, 3, 3, 4, 0, 4096, 4096, 3, 0.004f, 0},
    };
    const int n_cases = (int)(sizeof(cases) / sizeof(cases[0]));
    for (int i = 0; i < n_cases; i++) run_case(&cases[i], 1000 + (uint64_t)i);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
