// synth.c — the synthetic video set (synth.h): scene generation per action
// template, rendering, encoding, and the lists.
//
// A clip is a pure function of (seed, clip index): its own RNG stream draws
// the scene; each object's state (position, angle, scale, opacity) is laid
// out per frame by the template's motion; frames are rendered in float RGB
// (background crop at the camera offset, objects with 1-pixel antialiased
// edges, flicker, noise), rounded to uint8 and encoded.
#define _POSIX_C_SOURCE 200809L // fileno, fsync
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/base/progress.h"
#include "stsae/comm/comm.h"
#include "stsae/deck/options.h"
#include "stsae/io/inputs.h"
#include "stsae/io/video.h"
#include "stsae/stages/stage.h"
#include "stsae/stages/synth.h"

#define PI 3.14159265358979323846

enum {
    PUSH_LR, PUSH_RL, MOVE_UP, MOVE_DOWN, FALLING, TURN_CW, TURN_CCW, CLOSER, AWAY, APPEARING, DISAPPEARING,
    NEXT_TO, COLLIDING, PRETENDING, N_TEMPLATES
};
static const char *const TEMPLATE_NAMES[N_TEMPLATES] = {
    "Pushing something from left to right",
    "Pushing something from right to left",
    "Moving something up",
    "Moving something down",
    "Something falling",
    "Turning something clockwise",
    "Turning something counterclockwise",
    "Moving something closer to the camera",
    "Moving something away from the camera",
    "Something appearing",
    "Something disappearing",
    "Putting something next to something",
    "Something colliding with something",
    "Pretending to push something",
};

enum { SH_CIRCLE, SH_TRIANGLE, SH_SQUARE, SH_PENTAGON, SH_HEXAGON, SH_RING, SH_CROSS, SH_ELLIPSE, N_SHAPES };
enum { PAT_HALF, PAT_STRIPES, PAT_DOT, N_PATTERNS };

#define MAX_OBJ 8
#define PAN_MARGIN 6 // pixels of background beyond the frame on each side
#define ACTOR_V 0.7  // least brightness (HSV value) of an actor; backgrounds are 0.1 .. 0.6, distractors 0.4 .. 1

typedef struct {
    int shape, pattern;
    float c1[3], c2[3];
    float r;                            // radius in pixels at scale 1
    float *x, *y, *ang, *scale, *alpha; // [F] per frame, world pixels
} Obj;

typedef struct {
    int S, F;
    int n_obj;
    Obj obj[MAX_OBJ];
    float *bg;      // [S + 2M, S + 2M, 3]
    int *pan_x, *pan_y; // [F] camera offset, pixels
    float *gain;    // [F] flicker
    float noise;    // standard deviation, in grey levels
} Scene;

static double unif(uint64_t *st, double a, double b) { return a + (b - a) * rng_uniform(st); }
static int pick(uint64_t *st, int n) { return (int)(rng_next(st) % (uint64_t)n); }
static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

static void hsv(double h, double s, double v, float *rgb) {
    double c = v * s, hp = fmod(h, 1.0) * 6.0, x = c * (1 - fabs(fmod(hp, 2.0) - 1)), m = v - c;
    double r = 0, g = 0, b = 0;
    switch ((int)hp) {
    case 0: r = c, g = x; break;
    case 1: r = x, g = c; break;
    case 2: g = c, b = x; break;
    case 3: g = x, b = c; break;
    case 4: r = x, b = c; break;
    default: r = c, b = x; break;
    }
    rgb[0] = (float)(r + m), rgb[1] = (float)(g + m), rgb[2] = (float)(b + m);
}

// A new object with random looks; its motion arrays start static at (x, y).
static Obj *add_obj(Scene *sc, uint64_t *st, double r, double x, double y, double v_lo) {
    Obj *o = &sc->obj[sc->n_obj++];
    o->shape = pick(st, N_SHAPES);
    o->pattern = pick(st, N_PATTERNS);
    double h = rng_uniform(st);
    hsv(h, unif(st, 0.5, 1.0), unif(st, v_lo, 1.0), o->c1);
    hsv(h + unif(st, 0.25, 0.75), unif(st, 0.3, 1.0), unif(st, v_lo - 0.2, 1.0), o->c2);
    o->r = (float)r;
    float **arr[5] = {&o->x, &o->y, &o->ang, &o->scale, &o->alpha};
    for (int k = 0; k < 5; k++) *arr[k] = xmalloc(sizeof(float) * (size_t)sc->F);
    double a0 = unif(st, 0, 2 * PI);
    for (int t = 0; t < sc->F; t++) o->x[t] = (float)x, o->y[t] = (float)y, o->ang[t] = (float)a0, o->scale[t] = 1,
                                     o->alpha[t] = 1;
    return o;
}

// Progress of an action running from u0 to u1 (fractions of the clip) at frame t.
static double progress(const Scene *sc, int t, double u0, double u1) {
    return clamp01(((double)t / (sc->F - 1) - u0) / (u1 - u0));
}

// When an action runs (from u0 to u1, fractions of the clip) and a little
// rotation that is not turning: drawn first for every template, in this order.
typedef struct {
    double u0, u1, spin;
} Timing;

// Push left/right, move up/down: the actor crosses D pixels along one axis,
// drifting a little across it.
static void act_translate(Scene *sc, uint64_t *st, int k, const Timing *tm) {
    const double S = sc->S;
    const int F = sc->F;
    double r = unif(st, 0.07, 0.13) * S, D = unif(st, 0.3, 0.55) * S;
    double along0 = (S - D) / 2 + unif(st, -0.12, 0.12) * S, across = unif(st, 0.25, 0.75) * S, drift = unif(st, -0.04, 0.04) * S;
    Obj *a = add_obj(sc, st, r, 0, 0, ACTOR_V);
    for (int t = 0; t < F; t++) {
        double s = progress(sc, t, tm->u0, tm->u1), p = along0 + D * s;
        if (k == PUSH_RL || k == MOVE_UP) p = S - p;
        double q = across + drift * s;
        a->x[t] = (float)(k == PUSH_LR || k == PUSH_RL ? p : q);
        a->y[t] = (float)(k == PUSH_LR || k == PUSH_RL ? q : p);
        a->ang[t] += (float)(tm->spin * s);
    }
}

// Falling: accelerating down, tumbling.
static void act_fall(Scene *sc, uint64_t *st, const Timing *tm) {
    const double S = sc->S;
    const int F = sc->F;
    double r = unif(st, 0.07, 0.13) * S, y0 = unif(st, 0.1, 0.35) * S, D = unif(st, 0.35, 0.55) * S;
    double x0 = unif(st, 0.2, 0.8) * S, uf = tm->u0 + unif(st, 0.3, 0.6), tumble = unif(st, -1.5, 1.5);
    Obj *a = add_obj(sc, st, r, x0, y0, ACTOR_V);
    for (int t = 0; t < F; t++) {
        double s = progress(sc, t, tm->u0, uf);
        a->y[t] = (float)(y0 + D * s * s);
        a->ang[t] += (float)(tumble * s);
    }
}

// Turning clockwise or counter-clockwise in place.
static void act_turn(Scene *sc, uint64_t *st, int k, const Timing *tm) {
    const double S = sc->S;
    const int F = sc->F;
    double r = unif(st, 0.1, 0.16) * S, turn = unif(st, 0.5, 2.0) * PI * (k == TURN_CW ? 1 : -1);
    Obj *a = add_obj(sc, st, r, unif(st, 0.3, 0.7) * S, unif(st, 0.3, 0.7) * S, ACTOR_V);
    for (int t = 0; t < F; t++) a->ang[t] += (float)(turn * progress(sc, t, tm->u0, tm->u1)); // y down: + is clockwise
}

// Coming closer (growing) or moving away (shrinking).
static void act_scale(Scene *sc, uint64_t *st, int k, const Timing *tm) {
    const double S = sc->S;
    const int F = sc->F;
    double r = unif(st, 0.06, 0.1) * S, f = unif(st, 1.8, 2.6);
    Obj *a = add_obj(sc, st, k == CLOSER ? r : r * f, unif(st, 0.3, 0.7) * S, unif(st, 0.3, 0.7) * S, ACTOR_V);
    for (int t = 0; t < F; t++) {
        double s = progress(sc, t, tm->u0, tm->u1);
        a->scale[t] = (float)(k == CLOSER ? 1 + (f - 1) * s : 1 / (1 + (f - 1) * s));
        a->ang[t] += (float)(tm->spin * s);
    }
}

// Appearing or disappearing: a fade of random length at a random time.
static void act_fade(Scene *sc, uint64_t *st, int k, const Timing *tm) {
    const double S = sc->S;
    const int F = sc->F;
    double r = unif(st, 0.07, 0.14) * S, ua = unif(st, 0.25, 0.75), fade = unif(st, 1.0, 4.0) / (F - 1);
    Obj *a = add_obj(sc, st, r, unif(st, 0.2, 0.8) * S, unif(st, 0.2, 0.8) * S, ACTOR_V);
    for (int t = 0; t < F; t++) {
        double s = progress(sc, t, ua, ua + fade);
        a->alpha[t] = (float)(k == APPEARING ? s : 1 - s);
        a->ang[t] += (float)(tm->spin * progress(sc, t, tm->u0, tm->u1));
    }
}

// Putting next to: the actor comes to rest beside a second object.
static void act_next_to(Scene *sc, uint64_t *st, const Timing *tm) {
    const double S = sc->S;
    const int F = sc->F;
    double rb = unif(st, 0.07, 0.12) * S, ra = unif(st, 0.06, 0.11) * S, th = unif(st, 0, 2 * PI);
    double bx = unif(st, 0.3, 0.7) * S, by = unif(st, 0.3, 0.7) * S, gap = unif(st, 0.0, 0.04) * S;
    double D = unif(st, 0.25, 0.45) * S;
    add_obj(sc, st, rb, bx, by, ACTOR_V);
    Obj *a = add_obj(sc, st, ra, 0, 0, ACTOR_V);
    double tx = bx + (ra + rb + gap) * cos(th), ty = by + (ra + rb + gap) * sin(th);
    for (int t = 0; t < F; t++) {
        double s = progress(sc, t, tm->u0, tm->u1);
        a->x[t] = (float)(tx + D * (1 - s) * cos(th));
        a->y[t] = (float)(ty + D * (1 - s) * sin(th));
        a->ang[t] += (float)(tm->spin * s);
    }
}

// Colliding: two objects meet and bounce apart (the shared timing unused).
static void act_collide(Scene *sc, uint64_t *st) {
    const double S = sc->S;
    const int F = sc->F;
    double ra = unif(st, 0.06, 0.11) * S, rb = unif(st, 0.06, 0.11) * S, th = unif(st, 0, 2 * PI);
    double mx = unif(st, 0.4, 0.6) * S, my = unif(st, 0.4, 0.6) * S, D = unif(st, 0.15, 0.3) * S;
    double uc = unif(st, 0.35, 0.65), back = unif(st, 0.3, 0.8) * D / uc; // pixels per clip after the hit
    Obj *o[2] = {add_obj(sc, st, ra, 0, 0, ACTOR_V), add_obj(sc, st, rb, 0, 0, ACTOR_V)};
    for (int t = 0; t < F; t++) {
        double u = (double)t / (F - 1);
        double gap = u < uc ? D * (1 - u / uc) : back * (u - uc);
        for (int j = 0; j < 2; j++) {
            double sgn = j ? 1 : -1, dist = (j ? rb : ra) + gap;
            o[j]->x[t] = (float)(mx + sgn * dist * cos(th));
            o[j]->y[t] = (float)(my + sgn * dist * sin(th));
        }
    }
}

// Pretending: out a little and back.
static void act_pretend(Scene *sc, uint64_t *st, const Timing *tm) {
    const double S = sc->S;
    const int F = sc->F;
    double r = unif(st, 0.07, 0.13) * S, th = unif(st, 0, 2 * PI), amp = unif(st, 0.03, 0.07) * S;
    double x0 = unif(st, 0.25, 0.75) * S, y0 = unif(st, 0.25, 0.75) * S;
    Obj *a = add_obj(sc, st, r, x0, y0, ACTOR_V);
    for (int t = 0; t < F; t++) {
        double b = sin(PI * progress(sc, t, tm->u0, tm->u1));
        a->x[t] = (float)(x0 + amp * b * cos(th));
        a->y[t] = (float)(y0 + amp * b * sin(th));
    }
}

// The actor(s) of template k, each template's steps in its function above.
static void make_action(Scene *sc, uint64_t *st, int k) {
    Timing tm;
    tm.u0 = unif(st, 0.0, 0.2);
    tm.u1 = unif(st, 0.8, 1.0);
    tm.spin = unif(st, -0.3, 0.3);
    switch (k) {
    case PUSH_LR: case PUSH_RL: case MOVE_UP: case MOVE_DOWN: act_translate(sc, st, k, &tm); break;
    case FALLING: act_fall(sc, st, &tm); break;
    case TURN_CW: case TURN_CCW: act_turn(sc, st, k, &tm); break;
    case CLOSER: case AWAY: act_scale(sc, st, k, &tm); break;
    case APPEARING: case DISAPPEARING: act_fade(sc, st, k, &tm); break;
    case NEXT_TO: act_next_to(sc, st, &tm); break;
    case COLLIDING: act_collide(sc, st); break;
    default: act_pretend(sc, st, &tm); break; // PRETENDING
    }
}

// Distractors: static, drifting or slowly turning objects.
static void make_distractors(Scene *sc, uint64_t *st, int max_n) {
    const double S = sc->S;
    int n = pick(st, max_n + 1);
    for (int i = 0; i < n && sc->n_obj < MAX_OBJ; i++) {
        Obj *o = add_obj(sc, st, unif(st, 0.03, 0.08) * S, unif(st, 0.1, 0.9) * S, unif(st, 0.1, 0.9) * S, 0.4);
        int kind = pick(st, 10);
        double th = unif(st, 0, 2 * PI), D = unif(st, 0.05, 0.3) * S, turn = unif(st, -1.5, 1.5);
        for (int t = 0; t < sc->F; t++) {
            double u = (double)t / (sc->F - 1);
            if (kind >= 5 && kind < 8) o->x[t] += (float)(D * u * cos(th)), o->y[t] += (float)(D * u * sin(th));
            if (kind >= 8) o->ang[t] += (float)(turn * u);
        }
    }
    // draw order: shuffle, so that distractors pass in front of actors and behind
    for (int i = sc->n_obj - 1; i > 0; i--) {
        int j = pick(st, i + 1);
        Obj t = sc->obj[i];
        sc->obj[i] = sc->obj[j];
        sc->obj[j] = t;
    }
}

static void make_background(Scene *sc, uint64_t *st) {
    const int B = sc->S + 2 * PAN_MARGIN;
    float ca[3], cb[3];
    double h = rng_uniform(st);
    double v = unif(st, 0.1, 0.4), contrast = unif(st, 0.05, 0.2);
    hsv(h, unif(st, 0.0, 0.5), v, ca);
    hsv(h + unif(st, -0.2, 0.2), unif(st, 0.0, 0.5), v + contrast, cb);
    int kind = pick(st, 3);
    double fx[3], fy[3], ph[3], cell = unif(st, 5, 18);
    for (int j = 0; j < 3; j++) {
        double th = unif(st, 0, PI), f = unif(st, 0.05, 0.45);
        fx[j] = f * cos(th), fy[j] = f * sin(th), ph[j] = unif(st, 0, 2 * PI);
    }
    sc->bg = xmalloc(sizeof(float) * (size_t)B * B * 3);
    for (int y = 0; y < B; y++)
        for (int x = 0; x < B; x++) {
            double m;
            if (kind == 0) m = 0.5 + 0.5 * sin(fx[0] * x + fy[0] * y + ph[0]); // stripes
            else if (kind == 1) m = ((int)(x / cell) + (int)(y / cell)) & 1; // checks
            else m = 0.5 + (sin(fx[0] * x + fy[0] * y + ph[0]) + sin(fx[1] * x + fy[1] * y + ph[1]) +
                            sin(fx[2] * x + fy[2] * y + ph[2])) / 6; // blobs
            double grain = unif(st, -0.03, 0.03);
            float *p = sc->bg + ((size_t)y * B + x) * 3;
            for (int c = 0; c < 3; c++) p[c] = (float)(ca[c] + (cb[c] - ca[c]) * m + grain);
        }
}

static void make_scene(Scene *sc, uint64_t *st, int k, int S, int F, int max_distractors, double noise) {
    memset(sc, 0, sizeof(*sc));
    sc->S = S, sc->F = F, sc->noise = (float)noise;
    make_background(sc, st);
    make_action(sc, st, k);
    make_distractors(sc, st, max_distractors);
    sc->pan_x = xmalloc(sizeof(int) * (size_t)F);
    sc->pan_y = xmalloc(sizeof(int) * (size_t)F);
    sc->gain = xmalloc(sizeof(float) * (size_t)F);
    int pan = pick(st, 2);
    double th = unif(st, 0, 2 * PI), D = unif(st, 2, PAN_MARGIN);
    for (int t = 0; t < F; t++) {
        double u = (double)t / (F - 1);
        sc->pan_x[t] = pan ? (int)lround(D * u * cos(th)) : 0;
        sc->pan_y[t] = pan ? (int)lround(D * u * sin(th)) : 0;
        sc->gain[t] = (float)unif(st, 0.97, 1.03);
    }
}

static void free_scene(Scene *sc) {
    for (int i = 0; i < sc->n_obj; i++) {
        Obj *o = &sc->obj[i];
        free(o->x), free(o->y), free(o->ang), free(o->scale), free(o->alpha);
    }
    free(sc->bg), free(sc->pan_x), free(sc->pan_y), free(sc->gain);
}

// Signed distance to the shape's edge in units of its radius (< 0 inside).
static float shape_sd(int shape, float qx, float qy) {
    float ax = fabsf(qx), ay = fabsf(qy);
    switch (shape) {
    case SH_CIRCLE: return sqrtf(qx * qx + qy * qy) - 1;
    case SH_RING: return fabsf(sqrtf(qx * qx + qy * qy) - 0.7f) - 0.3f;
    case SH_CROSS: return fminf(fmaxf(ax - 1, ay - 0.35f), fmaxf(ax - 0.35f, ay - 1));
    case SH_ELLIPSE: return (sqrtf(qx * qx + qy * qy / 0.3025f) - 1) * 0.55f;
    default: { // regular polygon of circumradius 1
        int n = shape == SH_TRIANGLE ? 3 : shape == SH_SQUARE ? 4 : shape == SH_PENTAGON ? 5 : 6;
        float d = -1e9f;
        for (int j = 0; j < n; j++) {
            float th = (float)(2 * PI * j / n);
            d = fmaxf(d, qx * cosf(th) + qy * sinf(th));
        }
        return d - cosf((float)PI / n);
    }
    }
}

static void draw_obj(const Scene *sc, const Obj *o, int t, float *img) {
    const int S = sc->S;
    const float R = o->r * o->scale[t], al = o->alpha[t];
    if (al <= 0 || R < 0.5f) return;
    const float cx = o->x[t] - (float)sc->pan_x[t], cy = o->y[t] - (float)sc->pan_y[t];
    const float ca = cosf(o->ang[t]), sa = sinf(o->ang[t]), ext = R * 1.05f + 1.5f;
    int x0 = (int)floorf(cx - ext), x1 = (int)ceilf(cx + ext), y0 = (int)floorf(cy - ext), y1 = (int)ceilf(cy + ext);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > S - 1) x1 = S - 1;
    if (y1 > S - 1) y1 = S - 1;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float dx = (x + 0.5f - cx) / R, dy = (y + 0.5f - cy) / R;
            float qx = ca * dx + sa * dy, qy = -sa * dx + ca * dy; // rotate by -angle
            float cov = 0.5f - shape_sd(o->shape, qx, qy) * R;
            if (cov <= 0) continue;
            if (cov > 1) cov = 1;
            int second = o->pattern == PAT_HALF      ? qx > 0
                         : o->pattern == PAT_STRIPES ? sinf(7 * qx) > 0
                                                     : (qx - 0.45f) * (qx - 0.45f) + qy * qy < 0.12f;
            const float *c = second ? o->c2 : o->c1;
            float w = cov * al, shade = 1 - 0.15f * (qx + qy) * 0.5f; // light from the top left
            float *p = img + ((size_t)y * S + x) * 3;
            for (int ch = 0; ch < 3; ch++) p[ch] += w * (c[ch] * shade - p[ch]);
        }
}

static void render(const Scene *sc, int t, uint64_t *st, float *img, uint8_t *rgb) {
    const int S = sc->S, B = S + 2 * PAN_MARGIN;
    for (int y = 0; y < S; y++)
        memcpy(img + (size_t)y * S * 3,
               sc->bg + ((size_t)(y + PAN_MARGIN + sc->pan_y[t]) * B + PAN_MARGIN + sc->pan_x[t]) * 3,
               sizeof(float) * (size_t)S * 3);
    for (int i = 0; i < sc->n_obj; i++) draw_obj(sc, &sc->obj[i], t, img);
    const float g = 255.0f * sc->gain[t], sd = sc->noise * 0.8660254f; // sum of 4 uniforms: var 1/3
    for (size_t i = 0; i < (size_t)S * S * 3; i++) {
        uint64_t b = rng_next(st);
        float n = (float)((b & 0xFFFF) + ((b >> 16) & 0xFFFF) + ((b >> 32) & 0xFFFF) + (b >> 48)) / 32768.0f - 2.0f;
        float v = img[i] * g + sd * n + 0.5f;
        rgb[i] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
    }
}

typedef struct {
    const char *out_dir, *codec, *ext;
    int S, F, fps, quality, distractors;
    double noise;
    uint64_t seed;
} SynthConfig;

static void make_clip(const SynthConfig *c, int i, int k) {
    uint64_t st = (c->seed << 32) + (uint64_t)i;
    rng_next(&st);
    Scene sc;
    make_scene(&sc, &st, k, c->S, c->F, c->distractors, c->noise);
    char name[64], err[1024];
    snprintf(name, sizeof(name), "videos/synth_%06d.%s", i, c->ext);
    char *path = path_join(c->out_dir, name);
    VideoWriter *w = video_writer_open(path, c->codec, c->S, c->S, c->fps, c->quality, err, sizeof(err));
    if (!w) die("%s", err);
    float *img = xmalloc(sizeof(float) * (size_t)c->S * c->S * 3);
    uint8_t *rgb = xmalloc((size_t)c->S * c->S * 3);
    for (int t = 0; t < c->F; t++) {
        render(&sc, t, &st, img, rgb);
        if (video_writer_frame(w, rgb, err, sizeof(err)) != 0) die("%s", err);
    }
    if (video_writer_close(w, 1, err, sizeof(err)) != 0) die("%s", err);
    free(img);
    free(rgb);
    free(path);
    free_scene(&sc);
}

// A CSV field, quoted when it must be.
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"#") && s[0] != ' ' && s[0] && s[strlen(s) - 1] != ' ') {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

// clips.csv, labels.txt, synth.yaml
static void write_lists(const SynthConfig *c, const Stage *st, int n, double test_frac) {
    // label index = rank of the name in byte order, as inputs_read_csv numbers names
    int rank_of[N_TEMPLATES], by_rank[N_TEMPLATES];
    for (int k = 0; k < N_TEMPLATES; k++) {
        rank_of[k] = 0;
        for (int j = 0; j < N_TEMPLATES; j++) rank_of[k] += strcmp(TEMPLATE_NAMES[j], TEMPLATE_NAMES[k]) < 0;
        by_rank[rank_of[k]] = k;
    }
    ClipList l = {.clip = xcalloc((size_t)n, sizeof(ClipEntry)), .n = n, .n_labels = N_TEMPLATES};
    for (int i = 0; i < n; i++) l.clip[i] = (ClipEntry){NULL, NULL, rank_of[i % N_TEMPLATES], -1};
    inputs_default_split(&l, test_frac, c->seed);

    char tmp[4200], *path = path_join(c->out_dir, "clips.csv");
    FILE *f = path_create_tmp(path, tmp, sizeof(tmp));
    fprintf(f, "path,label,split\n");
    for (int i = 0; i < n; i++) {
        fprintf(f, "videos/synth_%06d.%s,", i, c->ext);
        csv_field(f, TEMPLATE_NAMES[i % N_TEMPLATES]);
        fprintf(f, ",%s\n", l.clip[i].split ? "test" : "train");
    }
    path_commit(f, tmp, path);
    free(path);
    free(l.clip);

    path = path_join(c->out_dir, "labels.txt");
    f = path_create_tmp(path, tmp, sizeof(tmp));
    for (int r = 0; r < N_TEMPLATES; r++) fprintf(f, "%s\n", TEMPLATE_NAMES[by_rank[r]]);
    path_commit(f, tmp, path);
    free(path);

    path = path_join(c->out_dir, "synth.yaml");
    f = path_create_tmp(path, tmp, sizeof(tmp));
    stage_write_deck(st, f);
    path_commit(f, tmp, path);
    free(path);
}

static const StageSpec SYNTH_STAGE = {"synth", "synth", NULL, NULL};

int synth_main(int argc, char **argv) {
    Stage st;
    int rc = stage_start(&st, &SYNTH_STAGE, argc, argv);
    if (rc != 0) {
        stage_finish(&st);
        return rc;
    }
    SynthOptions o;
    synth_options_resolve(st.deck, &o);
    const int rank = st.rank, size = st.size, n = o.clips;
    char *out_dir = path_join(o.run_dir, o.out);
    SynthConfig c = {
        .out_dir = out_dir,
        .codec = o.codec,
        .ext = !strcmp(o.codec, "mpeg4") ? "mp4" : !strcmp(o.codec, "mjpeg") ? "avi" : "mkv",
        .S = o.size,
        .F = o.frames,
        .fps = o.fps,
        .quality = o.quality,
        .distractors = o.distractors,
        .noise = o.noise,
        .seed = o.seed,
    };
    if (rank == 0) {
        char *videos = path_join(out_dir, "videos");
        if (path_mkdirs(videos, st.err, sizeof(st.err)) != 0) die("%s", st.err);
        free(videos);
        printf("synth: %d clips (%d actions) of %d frames at %dx%d, %s, on %d rank%s x %d thread%s -> %s\n", n,
               N_TEMPLATES, c.F, c.S, c.S, o.codec, size, size > 1 ? "s" : "", max_threads(),
               max_threads() > 1 ? "s" : "", out_dir);
        fflush(stdout);
    }
    comm_barrier(st.world, NULL);

    const double t0 = wall_time();
    Progress pr;
    progress_start(&pr, t0, 1.0, 0);
    int done = 0, mine = (n - rank + size - 1) / size;
#pragma omp parallel for schedule(dynamic, 1)
    for (int j = 0; j < mine; j++) {
        int i = rank + j * size;
        make_clip(&c, i, i % N_TEMPLATES);
        int now;
#pragma omp atomic capture
        now = ++done;
        // rank 0's first thread prints, its count times the ranks standing for all
        if (rank == 0 && thread_id() == 0) {
            const double t = wall_time();
            const int64_t all = now * size < n ? (int64_t)now * size : n;
            if (progress_due(&pr, t, 0)) {
                char eta[32];
                progress_eta_text(&pr, all, n, t, eta, sizeof(eta));
                printf("synth: %lld/%d clips, %.1f clips/s, ETA %s\n", (long long)all, n, progress_rate(&pr, all, t),
                       eta);
                fflush(stdout);
            }
        }
    }
    comm_barrier(st.world, NULL);
    if (rank == 0) {
        write_lists(&c, &st, n, o.test_frac);
        double el = wall_time() - t0;
        printf("synth: %d clips in %.2f s (%.1f clips/s); list %s/clips.csv, names %s/labels.txt\n", n, el, n / el,
               out_dir, out_dir);
    }
    free(out_dir);
    stage_finish(&st);
    return 0;
}
