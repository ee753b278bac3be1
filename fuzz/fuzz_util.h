// fuzz_util.h — what the libFuzzer targets of fuzz/ share: scratch files,
// a byte reader for structure-aware targets, and a trap for die().
//
// In:  the fuzz input (bytes); the readers under test, which take paths.
// Out: files in a private scratch directory (tmpfs /dev/shm when it exists,
//      else $TMPDIR or /tmp; removed at exit), and a verdict per call: the
//      call returned, or it died (die()) and the target goes on.
//
// Why a trap: readers that report through die() (hf.h's getters, model.h,
// h5io.h, features_read_clip) would exit, which libFuzzer counts as a crash.
// FUZZ_TRY runs a statement with common.h's die handler set to longjmp back.
// A reader's die() is its documented error path, so what the dying call held
// is not a leak of ours: the real program exits there. The trap therefore
// (1) closes every HDF5 object the call opened and left open (files,
// datasets, groups, named datatypes, attributes; those open before it, the
// caller's, stay), so the next input can rewrite the same file, and (2) tells
// LeakSanitizer to ignore every heap block allocated during the call and not
// freed (sanitizer malloc/free hooks track them), while leaks of a call that
// returned are still reported. A die() outside FUZZ_TRY is a crash: a
// function documented to return its errors must not die.
#ifndef STSAE_FUZZ_UTIL_H
#define STSAE_FUZZ_UTIL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

// Once, from LLVMFuzzerInitialize: HDF5's printing off, file locking off,
// the die handler, the scratch directory. FUZZ_VERBOSE=1 in the environment
// prints every message a reader returns or dies with, FUZZ_SCRATCH=DIR
// writes the scratch files there and keeps them (for reading a crash).
void fuzz_setup(void);
int fuzz_verbose(void);
// Prints "fuzz: <what>: <msg>" when FUZZ_VERBOSE is set.
void fuzz_note(const char *what, const char *msg);

// "<scratch>/<name>" (a static buffer per call slot: at most 4 alive at once).
const char *fuzz_path(const char *name);
// Writes n bytes to fuzz_path(name) (replacing it); returns that path.
const char *fuzz_write(const char *name, const void *data, size_t n);

// A failed check of a target's oracle: prints the message and aborts (a crash
// for libFuzzer, with the input saved).
void fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
#define FUZZ_CHECK(cond, ...)                                                                                          \
    do {                                                                                                               \
        if (!(cond)) fuzz_fail(__VA_ARGS__);                                                                           \
    } while (0)

// --- die() trap ---------------------------------------------------------------------

extern jmp_buf fuzz_trap;
void fuzz_trap_begin(void);
void fuzz_trap_end(int died);
const char *fuzz_died_msg(void); // the last die() message caught

// Runs the statements; sets died to 1 when they ended in die(), else 0.
// Locals assigned inside and read after a die must be volatile (setjmp).
#define FUZZ_TRY(died, ...)                                                                                            \
    do {                                                                                                               \
        fuzz_trap_begin();                                                                                             \
        if (setjmp(fuzz_trap) == 0) {                                                                                  \
            __VA_ARGS__;                                                                                               \
            fuzz_trap_end(0);                                                                                          \
            (died) = 0;                                                                                                \
        } else {                                                                                                       \
            fuzz_trap_end(1);                                                                                          \
            (died) = 1;                                                                                                \
        }                                                                                                              \
    } while (0)

// --- reading a structure from the input ----------------------------------------------

typedef struct {
    const uint8_t *p;
    size_t n;
} FuzzBytes;

// Once the input is used up every choice takes its likelier outcome (0 for
// numbers, fb_chance's more probable answer), so that the empty input, and
// every short one, describes the usual, valid object (so does a byte of 100
// in every position: fuzz/seeds.py).
uint8_t fb_u8(FuzzBytes *b);
uint16_t fb_u16(FuzzBytes *b);
uint32_t fb_u32(FuzzBytes *b);
uint64_t fb_u64(FuzzBytes *b);
int fb_pick(FuzzBytes *b, int n);       // 0 .. n-1
int fb_chance(FuzzBytes *b, int in256); // 1 with probability in256/256
// A size or count as a file might claim one: mostly small (0 .. 9), sometimes
// a byte, 16 or 32 bits, 2^31 +- 1, 2^32, or any 64-bit value.
uint64_t fb_count(FuzzBytes *b);
// A double as a file might hold one: small integers, halves, 0, -1, huge,
// NaN, +-Inf, or any bit pattern.
double fb_double(FuzzBytes *b);
// Up to max bytes (fewer when the input runs out), into out; returns the
// count. Data bytes come from the input's end and choices from its front, so
// a choice keeps its offset however much data an earlier object took, and a
// mutation of one choice leaves the others where they were.
size_t fb_bytes(FuzzBytes *b, void *out, size_t max);

#endif
