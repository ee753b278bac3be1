// common.c — fatal errors and their hook, checked allocation, clock, RNG
// (see common.h).
#define _POSIX_C_SOURCE 200809L // clock_gettime, CLOCK_MONOTONIC
#include "stsae/base/common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static StsaeDieHandler die_handler; // NULL: print and exit
static void *die_ctx;

void stsae_set_die_handler(StsaeDieHandler handler, void *ctx) {
    die_handler = handler;
    die_ctx = ctx;
}

void stsae_die_at(const char *file, int line, const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k < sizeof(msg)) snprintf(msg + k, sizeof(msg) - (size_t)k, " (%s:%d)", file, line);
    if (die_handler) die_handler(msg, die_ctx); // may not return
    fprintf(stderr, "stsae: error: %s\n", msg);
    fflush(stderr);
    exit(1);
}

int errorf(char *err, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

void *xmalloc_at(size_t bytes, const char *file, int line) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) stsae_die_at(file, line, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *xcalloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) stsae_die_at(file, line, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *xrealloc_at(void *p, size_t bytes, const char *file, int line) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) stsae_die_at(file, line, "out of memory reallocating %zu bytes", bytes);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double rng_uniform(uint64_t *state) { return (double)(rng_next(state) >> 11) * 0x1.0p-53; }

double rng_normal(uint64_t *state) {
    double u1 = rng_uniform(state), u2 = rng_uniform(state);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#ifdef STSAE_PLANTED
int stsae_planted(const char *name) {
    const char *e = getenv("STSAE_PLANT");
    return e && strcmp(e, name) == 0;
}
#endif
