// common.h — what every file needs: fatal errors that say where (and a hook
// on them for the layer that knows the ranks, and for the fuzz targets),
// checked allocation, a wall clock, and a seeded RNG whose whole state is one
// word (so checkpoints can store it). No MPI here: base is below every layer.
#ifndef STSAE_COMMON_H
#define STSAE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define STSAE_VERSION "0.1.0"

// Prints "stsae: error: <msg> (file:line)" and exits 1. For errors this
// process alone sees: under MPI with several ranks the handler that comm.h
// installs names the rank and aborts every rank (MPI_Abort, non-zero exit
// everywhere). Errors every rank sees alike (a bad deck) are agreed on and
// reported once instead.
void stsae_die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
#define die(...) stsae_die_at(__FILE__, __LINE__, __VA_ARGS__)

// Where die() goes before it exits. With a handler set, stsae_die_at formats
// the whole message ("<msg> (file:line)", without the "stsae: error: "
// prefix) and calls handler(msg, ctx) before printing anything; a handler
// that does not return (MPI_Abort, longjmp) replaces the exit, one that
// returns falls through to the usual print and exit. Set by comm.h when MPI
// starts (several ranks: name the rank, abort them all) and by the fuzz
// targets (fuzz/: go on to the next input; what the dying call held is then
// leaked). NULL restores the usual behaviour.
typedef void (*StsaeDieHandler)(const char *msg, void *ctx);
void stsae_set_die_handler(StsaeDieHandler handler, void *ctx);

// Writes a message into err (cap bytes) and returns -1: the error path of the
// functions that report instead of dying (every rank reaches the same verdict).
int errorf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void *xmalloc_at(size_t bytes, const char *file, int line);
void *xcalloc_at(size_t n, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t bytes, const char *file, int line);
#define xmalloc(b) xmalloc_at((b), __FILE__, __LINE__)
#define xcalloc(n, s) xcalloc_at((n), (s), __FILE__, __LINE__)
#define xrealloc(p, b) xrealloc_at((p), (b), __FILE__, __LINE__)
char *xstrdup(const char *s); // malloc'ed copy; dies when out of memory

double wall_time(void); // seconds, monotonic
int thread_id(void);     // OpenMP thread number (0 outside parallel regions)
int max_threads(void);   // OpenMP threads a parallel region gets (1 without OpenMP)

// splitmix64: the state is one uint64_t.
uint64_t rng_next(uint64_t *state);
double rng_uniform(uint64_t *state);  // [0, 1)
double rng_normal(uint64_t *state);   // standard normal (Box-Muller)

// Test-only fault injection. In the `stsae-planted` build (STSAE_PLANTED
// defined) PLANTED("name") is true when the environment variable
// STSAE_PLANT equals "name"; the tests run that build and must fail. In the
// real build it is the constant 0 and compiles away.
#ifdef STSAE_PLANTED
int stsae_planted(const char *name);
#define PLANTED(name) stsae_planted(name)
#else
#define PLANTED(name) 0
#endif

#endif
