// motion.c — the built-in `motion` backbone (vit.h): training-free
// spatio-temporal motion-energy features, the classical low-level video
// descriptor (Adelson & Bergen 1985's opponent motion energy from quadrature
// Gabor pairs; the "motion-energy model" of Nishimoto et al. 2011). It needs
// no download, knows nothing of any label, and its clip-pooled tokens carry
// what moves in which direction, what appears and what fades — which pooled
// raw pixels cannot (an action and its time reverse pool to the same mean).
// On the synthetic set its raw-feature probe is about 5x chance where pixels
// and random-weight backbones stay below 1.6x (benchmarks/RESULTS.md).
//
// In:  normalized clips [clips, T_in, 3, S, S]; T_in even, patch P even >= 4
//      and S a multiple of P.
// Out: tokens [clips, T = T_in/2, N = (S/P)^2, d = 324]: the token of
//      tubelet t (frames f0 = 2t, f1 = 2t+1) and patch (r, c) is four cells
//      (the patch's 2 x 2 quarters, row-major: index = cell*81 + f) of 81
//      features each:
//        f = (s*8 + o)*3 + {0, 1, 2}, scale s < 3, orientation o < 8:
//            sqrt(max(+Im(z1 conj z0), 0)), sqrt(max(-Im(z1 conj z0), 0)),
//            (|z0| + |z1|)/2
//          — motion along +u and along -u, u = (cos θ, sin θ) in (x right,
//          y down), and the oriented contrast energy; each the mean over the
//          cell's sample points;
//        f = 72 + c*3 + {0, 1, 2}, channel c < 3: the mean over the cell's
//          pixels of max(x1 - x0, 0), max(x0 - x1, 0) and (x0 + x1)/2 —
//          brightening, darkening, colour.
//      z_f(p) = sum over |qx|, |qy| <= h of g(q) Y_f(p + q) (a correlation),
//        Y = 0.299 R + 0.587 G + 0.114 B of the normalized channels,
//        samples outside the frame mirrored (half-sample symmetric:
//        Y[-1] = Y[0], Y[S] = Y[S-1], repeated for large kernels),
//        g(q) = e(qx) e(qy) exp(i 2π (qx cos θ + qy sin θ)/λ) / (Σ_x e(x))^2,
//        e(x) = exp(-x^2 / 2σ^2), σ = 0.56 λ (one octave), h = ceil(3σ),
//        θ = o π/8, λ = P/4 * 2^s (4, 8, 16 px for P = 16).
//      A pattern moving by δ along +u between f0 and f1 gives
//      z1 = z0 exp(i 2π δ/λ): Im(z1 conj z0) > 0.
//      Gain control (the divisive normalization of V1 and motion-energy
//      models, Heeger 1992, here with one pool per tubelet): the 72 Gabor
//      and the 6 brightening/darkening features are divided by ē + 1e-3,
//      ē the mean energy feature of the tubelet (over its cells, scales and
//      orientations). Features then read relative to the scene's contrast
//      and sit within a decade of each other and of the colours (without it,
//      the colour means' variance is ~5000x the motion features', and an SAE
//      trained on one global scale would see nothing but colour).
//      Sample points: every pixel p = j*st + st/2 (integer division) in each
//      axis, stride st = max(1, floor(λ/4)) — the energies are smooth at that
//      scale, and the coarse scales cost 4x and 16x less.
// Every requested layer gets the same tokens (no blocks).
//
// Cost: about 10 Mflop per frame at S = 64 (separable: one horizontal pass
// at the sample columns of every row, one vertical pass at the samples);
// tubelets run in parallel (OpenMP), each with its own scratch.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/vit/vit.h"

#define MOTION_SCALES 3
#define MOTION_ORIENT 8
#define MOTION_PER_CELL (MOTION_SCALES * MOTION_ORIENT * 3 + 9)
#define MOTION_D (4 * MOTION_PER_CELL)

#define PI 3.14159265358979323846

BackboneShape motion_shape(int patch, int T_in, int S) {
    if (patch < 4 || patch % 2) die("motion backbone: patch = %d must be even and >= 4", patch);
    if (T_in < 2 || T_in % 2) die("motion backbone: clips of %d frames: the frame count must be even (tubelets of 2)", T_in);
    if (S < patch || S % patch) die("motion backbone: frame size %d px is not a multiple of the patch %d", S, patch);
    BackboneShape sh = {.T = T_in / 2, .H = S / patch, .W = S / patch, .d = MOTION_D};
    sh.N = sh.H * sh.W;
    return sh;
}

// One scale's filters: 1-D complex kernels per orientation (x and y factors),
// the mirrored index of every tap position, and the sample points.
typedef struct {
    int h, st, ns;       // half width, stride, samples per axis
    int *pos;            // [ns] sample coordinates
    int *mirror;         // [S + 2h]: mirror[i + h] = the pixel read at i, -h <= i < S + h
    float *kx, *ky;      // [MOTION_ORIENT][2h+1][2] (re, im)
    int *cell_of;        // [ns] the cell index (along the axis) of each sample: pos / (P/2)
    float *cell_w;       // [S/(P/2)] 1 / samples per cell along the axis
} Scale;

static int mirror_index(int i, int S) {
    const int period = 2 * S;
    int m = ((i % period) + period) % period;
    if (PLANTED("bb_motion_mirror") && m >= S) return period - m < S ? period - m : 0; // no edge repeat
    return m < S ? m : period - 1 - m;
}

static void scale_init(Scale *sc, int s, int P, int S) {
    const double lambda = P / 4.0 * (double)(1 << s), sigma = 0.56 * lambda;
    sc->h = (int)ceil(3.0 * sigma);
    sc->st = (int)floor(lambda / 4.0) > 1 ? (int)floor(lambda / 4.0) : 1;
    const int h = sc->h, taps = 2 * h + 1, half = P / 2, ncell = S / half;
    sc->ns = (S - sc->st / 2 + sc->st - 1) / sc->st;
    sc->pos = xmalloc(sizeof(int) * (size_t)sc->ns);
    sc->cell_of = xmalloc(sizeof(int) * (size_t)sc->ns);
    sc->cell_w = xcalloc((size_t)ncell, sizeof(float));
    for (int j = 0; j < sc->ns; j++) {
        sc->pos[j] = j * sc->st + sc->st / 2;
        sc->cell_of[j] = sc->pos[j] / half;
        sc->cell_w[sc->cell_of[j]] += 1.0f;
    }
    for (int c = 0; c < ncell; c++) sc->cell_w[c] = 1.0f / sc->cell_w[c];
    sc->mirror = xmalloc(sizeof(int) * (size_t)(S + 2 * h));
    for (int i = -h; i < S + h; i++) sc->mirror[i + h] = mirror_index(i, S);
    double esum = 0.0;
    for (int q = -h; q <= h; q++) esum += exp(-(double)q * q / (2.0 * sigma * sigma));
    sc->kx = xmalloc(sizeof(float) * (size_t)MOTION_ORIENT * taps * 2);
    sc->ky = xmalloc(sizeof(float) * (size_t)MOTION_ORIENT * taps * 2);
    for (int o = 0; o < MOTION_ORIENT; o++) {
        const double th = o * PI / MOTION_ORIENT, fx = cos(th) * 2.0 * PI / lambda, fy = sin(th) * 2.0 * PI / lambda;
        for (int q = -h; q <= h; q++) {
            const double e = exp(-(double)q * q / (2.0 * sigma * sigma)) / esum;
            float *x = sc->kx + ((size_t)o * taps + (q + h)) * 2, *y = sc->ky + ((size_t)o * taps + (q + h)) * 2;
            x[0] = (float)(e * cos(fx * q)), x[1] = (float)(e * sin(fx * q));
            y[0] = (float)(e * cos(fy * q)), y[1] = (float)(e * sin(fy * q));
        }
    }
}

static void scale_free(Scale *sc) {
    free(sc->pos), free(sc->mirror), free(sc->kx), free(sc->ky), free(sc->cell_of), free(sc->cell_w);
}

// z [ns*ns][2] of frame Y [S*S] at orientation o; row [S*ns][2] scratch.
static void gabor(const Scale *sc, int o, const float *Y, int S, float *row, float *z) {
    const int h = sc->h, taps = 2 * h + 1, ns = sc->ns;
    const float *kx = sc->kx + (size_t)o * taps * 2, *ky = sc->ky + (size_t)o * taps * 2;
    for (int y = 0; y < S; y++) {
        const float *Yr = Y + (size_t)y * S;
        for (int j = 0; j < ns; j++) {
            const int *m = sc->mirror + sc->pos[j]; // m[q + h] reads pixel pos + q
            float re = 0.0f, im = 0.0f;
            for (int q = 0; q < taps; q++) {
                const float v = Yr[m[q]];
                re += kx[2 * q] * v, im += kx[2 * q + 1] * v;
            }
            row[((size_t)y * ns + j) * 2] = re, row[((size_t)y * ns + j) * 2 + 1] = im;
        }
    }
    for (int i = 0; i < ns; i++) {
        const int *m = sc->mirror + sc->pos[i];
        for (int j = 0; j < ns; j++) {
            float re = 0.0f, im = 0.0f;
            for (int q = 0; q < taps; q++) {
                const float *r = row + ((size_t)m[q] * ns + j) * 2;
                re += ky[2 * q] * r[0] - ky[2 * q + 1] * r[1];
                im += ky[2 * q] * r[1] + ky[2 * q + 1] * r[0];
            }
            z[((size_t)i * ns + j) * 2] = re, z[((size_t)i * ns + j) * 2 + 1] = im;
        }
    }
}

// The token grid's features of one tubelet: x0, x1 the two frames [3, S, S],
// out [N, d]; work: scratch of motion_work_floats(S).
static size_t motion_work_floats(int S) { return (size_t)S * S * 2 + (size_t)S * S * 2 * 3; }

static void tubelet(const Scale *scales, int P, int S, const float *x0, const float *x1, float *out, float *work) {
    const int G = S / P, half = P / 2;
    const size_t SS = (size_t)S * S;
    float *Y0 = work, *Y1 = work + SS, *row = work + 2 * SS, *z0 = row + SS * 2, *z1 = z0 + SS * 2;
    for (size_t i = 0; i < SS; i++) {
        Y0[i] = 0.299f * x0[i] + 0.587f * x0[SS + i] + 0.114f * x0[2 * SS + i];
        Y1[i] = 0.299f * x1[i] + 0.587f * x1[SS + i] + 0.114f * x1[2 * SS + i];
    }
    memset(out, 0, sizeof(float) * (size_t)G * G * MOTION_D);
    // feature f of cell (cy, cx) of the frame: token (cy/2, cx/2), cell (cy%2)*2 + cx%2
#define FEAT(cy, cx, f) \
    out[((size_t)((cy) / 2) * G + (cx) / 2) * MOTION_D + (((cy) % 2) * 2 + (cx) % 2) * MOTION_PER_CELL + (f)]
    for (int s = 0; s < MOTION_SCALES; s++) {
        const Scale *sc = &scales[s];
        const int ns = sc->ns;
        for (int o = 0; o < MOTION_ORIENT; o++) {
            gabor(sc, o, Y0, S, row, z0);
            gabor(sc, o, Y1, S, row, z1);
            const int f = (s * MOTION_ORIENT + o) * 3;
            for (int i = 0; i < ns; i++)
                for (int j = 0; j < ns; j++) {
                    const float *a = z0 + ((size_t)i * ns + j) * 2, *b = z1 + ((size_t)i * ns + j) * 2;
                    const float cross = b[1] * a[0] - b[0] * a[1]; // Im(z1 conj z0)
                    const float w = sc->cell_w[sc->cell_of[i]] * sc->cell_w[sc->cell_of[j]];
                    const int cy = sc->cell_of[i], cx = sc->cell_of[j];
                    FEAT(cy, cx, f) += w * sqrtf(cross > 0.0f ? cross : 0.0f);
                    FEAT(cy, cx, f + 1) += w * sqrtf(cross < 0.0f ? -cross : 0.0f);
                    FEAT(cy, cx, f + 2) += w * 0.5f * (hypotf(a[0], a[1]) + hypotf(b[0], b[1]));
                }
        }
    }
    const float inv = 1.0f / (float)(half * half);
    for (int c = 0; c < 3; c++) {
        const float *p0 = x0 + c * SS, *p1 = x1 + c * SS;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                const float a = p0[(size_t)y * S + x], b = p1[(size_t)y * S + x], dv = b - a;
                const int cy = y / half, cx = x / half, f = MOTION_SCALES * MOTION_ORIENT * 3 + c * 3;
                FEAT(cy, cx, f) += inv * (dv > 0.0f ? dv : 0.0f);
                FEAT(cy, cx, f + 1) += inv * (dv < 0.0f ? -dv : 0.0f);
                FEAT(cy, cx, f + 2) += inv * 0.5f * (a + b);
            }
    }
#undef FEAT
    const int n_cells = G * G * 4;
    double e = 0.0;
    for (int k = 0; k < n_cells; k++)
        for (int j = 0; j < MOTION_SCALES * MOTION_ORIENT; j++) e += out[(size_t)k * MOTION_PER_CELL + j * 3 + 2];
    const float gain = (float)(1.0 / (e / ((double)n_cells * MOTION_SCALES * MOTION_ORIENT) + 1e-3));
    for (int k = 0; k < n_cells; k++) {
        float *cell = out + (size_t)k * MOTION_PER_CELL;
        for (int j = 0; j < MOTION_SCALES * MOTION_ORIENT * 3; j++) cell[j] *= gain;
        for (int c = 0; c < 3; c++) cell[MOTION_SCALES * MOTION_ORIENT * 3 + c * 3] *= gain,
                                    cell[MOTION_SCALES * MOTION_ORIENT * 3 + c * 3 + 1] *= gain;
    }
}

void motion_forward(int patch, const float *pixels, int clips, int T_in, int S, int n_layers, float *const *out) {
    const BackboneShape sh = motion_shape(patch, T_in, S);
    Scale scales[MOTION_SCALES];
    for (int s = 0; s < MOTION_SCALES; s++) scale_init(&scales[s], s, patch, S);
    const size_t frame = (size_t)3 * S * S, tok = (size_t)sh.N * sh.d;
    const int tasks = clips * sh.T;
#pragma omp parallel
    {
        float *work = xmalloc(sizeof(float) * motion_work_floats(S));
#pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < tasks; k++) {
            const int c = k / sh.T, t = k % sh.T;
            const float *x0 = pixels + ((size_t)c * T_in + 2 * t) * frame;
            tubelet(scales, patch, S, x0, x0 + frame, out[0] + (size_t)k * tok, work);
        }
        free(work);
    }
    for (int j = 1; j < n_layers; j++) memcpy(out[j], out[0], sizeof(float) * (size_t)tasks * tok);
    for (int s = 0; s < MOTION_SCALES; s++) scale_free(&scales[s]);
}
