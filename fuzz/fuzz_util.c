// fuzz_util.c — scratch files, the byte reader and the die() trap of the fuzz
// targets (fuzz_util.h). The trap's leak exemption: while a FUZZ_TRY runs,
// sanitizer malloc/free hooks keep the blocks this thread allocated and has
// not freed in a fixed table (no allocation inside a hook); after a die()
// every block still in it is passed to __lsan_ignore_object.
#define _GNU_SOURCE // mkdtemp, nftw
#include "fuzz_util.h"

#include <ftw.h>
#include <hdf5.h>
#include <math.h>
#include <sanitizer/allocator_interface.h>
#include <sanitizer/lsan_interface.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"

static char scratch[512];
static int verbose;

int fuzz_verbose(void) { return verbose; }

void fuzz_note(const char *what, const char *msg) {
    if (verbose) fprintf(stderr, "fuzz: %s: %s\n", what, msg);
}

void fuzz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz: check failed: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void remove_scratch(void) {
    if (scratch[0]) nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

// --- die() trap -------------------------------------------------------------------------

jmp_buf fuzz_trap;
static int trap_armed;
static char died_msg[4096];

const char *fuzz_died_msg(void) { return died_msg; }

static void on_die(const char *msg, void *ctx) {
    (void)ctx;
    snprintf(died_msg, sizeof(died_msg), "%s", msg);
    if (!trap_armed) { // a die() where the function under test promised to return its error
        fprintf(stderr, "fuzz: die() outside FUZZ_TRY: %s\n", msg);
        abort();
    }
    fuzz_note("died", msg);
    longjmp(fuzz_trap, 1);
}

// Blocks allocated during the trapped call: open addressing on the address,
// deletion by backward shift. 2^18 slots (2 MiB); a call that keeps more
// blocks alive at once is not tracked past that (overflow counted).
enum { SLOTS = 1 << 18 };
static uintptr_t live[SLOTS];
static size_t n_live;
static int overflowed;
static __thread int tracking; // this thread, inside FUZZ_TRY

static size_t slot_of(uintptr_t p) { return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> 46) & (SLOTS - 1); }

static void on_malloc(const volatile void *ptr, size_t size) {
    (void)size;
    if (!tracking || !ptr) return;
    if (n_live >= SLOTS / 2) {
        overflowed = 1;
        return;
    }
    const uintptr_t p = (uintptr_t)ptr;
    size_t i = slot_of(p);
    while (live[i] && live[i] != p) i = (i + 1) & (SLOTS - 1);
    if (!live[i]) n_live++;
    live[i] = p;
}

static void on_free(const volatile void *ptr) {
    if (!tracking || !ptr || !n_live) return;
    const uintptr_t p = (uintptr_t)ptr;
    size_t i = slot_of(p);
    while (live[i] && live[i] != p) i = (i + 1) & (SLOTS - 1);
    if (!live[i]) return; // allocated before the call
    live[i] = 0;
    n_live--;
    for (size_t j = (i + 1) & (SLOTS - 1); live[j]; j = (j + 1) & (SLOTS - 1)) { // backward shift
        const size_t home = slot_of(live[j]);
        // live[j] may move to the hole at i unless its home lies cyclically in (i, j]
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            live[i] = live[j];
            live[j] = 0;
            i = j;
        }
    }
}

// The HDF5 objects open when the trap was set (the caller's: a FeatureFile
// read clip after clip), which the cleanup after a die() leaves alone.
enum { MAX_KEPT = 256 };
static hid_t kept[MAX_KEPT];
static ssize_t n_kept;

static int was_kept(hid_t id) {
    for (ssize_t i = 0; i < n_kept; i++)
        if (kept[i] == id) return 1;
    return 0;
}

// Closes the HDF5 objects of a kind the dead call opened and left open.
// (HDF5 1.10 lists no dataspace or transient datatype ids to an
// application, so those few bytes stay.)
static void close_kind(unsigned types, herr_t (*close)(hid_t)) {
    const ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, types);
    if (n <= 0) return;
    hid_t *ids = malloc(sizeof(hid_t) * (size_t)n);
    const ssize_t got = H5Fget_obj_ids(H5F_OBJ_ALL, types, (size_t)n, ids);
    for (ssize_t i = 0; i < got; i++) {
        if (was_kept(ids[i])) continue;
        H5E_BEGIN_TRY { close(ids[i]); }
        H5E_END_TRY;
    }
    free(ids);
}

static void close_hdf5(void) {
    close_kind(H5F_OBJ_ATTR, H5Aclose);
    close_kind(H5F_OBJ_DATASET, H5Dclose);
    close_kind(H5F_OBJ_GROUP, H5Gclose);
    close_kind(H5F_OBJ_DATATYPE, H5Tclose);
    close_kind(H5F_OBJ_FILE, H5Fclose); // a file the caller holds stays open through its kept objects
    H5Eclear2(H5E_DEFAULT);
}

void fuzz_trap_begin(void) {
    n_kept = H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_ALL, MAX_KEPT, kept);
    if (n_kept < 0) n_kept = 0;
    memset(live, 0, sizeof(live));
    n_live = 0;
    overflowed = 0;
    died_msg[0] = 0;
    trap_armed = 1;
    tracking = 1;
}

void fuzz_trap_end(int died) {
    tracking = 0;
    trap_armed = 0;
    if (!died) return;
    close_hdf5();
    if (overflowed && verbose) fprintf(stderr, "fuzz: more live blocks than the trap tracks\n");
    for (size_t i = 0; i < SLOTS && n_live; i++)
        if (live[i]) {
            __lsan_ignore_object((const void *)live[i]);
            live[i] = 0;
            n_live--;
        }
}

// --- set-up and scratch files -----------------------------------------------------------

void fuzz_setup(void) {
    const char *v = getenv("FUZZ_VERBOSE");
    verbose = v && *v && strcmp(v, "0") != 0;
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
    H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // as main() does: our messages name the file and object
    stsae_set_die_handler(on_die, NULL);
    __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
    const char *keep = getenv("FUZZ_SCRATCH"); // a directory to write into and keep (reading a crash's files)
    if (keep && *keep) {
        snprintf(scratch, sizeof(scratch), "%s", keep);
        return;
    }
    const char *tmp = getenv("TMPDIR");
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp && *tmp ? tmp : "/tmp";
    snprintf(scratch, sizeof(scratch), "%s/stsae-fuzz-XXXXXX", base);
    if (!mkdtemp(scratch)) {
        perror("fuzz: mkdtemp");
        exit(1);
    }
    atexit(remove_scratch);
}

const char *fuzz_path(const char *name) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof(buf[0]), "%s/%s", scratch, name);
    return p;
}

const char *fuzz_write(const char *name, const void *data, size_t n) {
    const char *p = fuzz_path(name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(p);
        abort();
    }
    return p;
}

// --- byte reader ------------------------------------------------------------------------

uint8_t fb_u8(FuzzBytes *b) {
    if (!b->n) return 0;
    b->n--;
    return *b->p++;
}

// (the low part first: two calls in one expression would be unsequenced)
uint16_t fb_u16(FuzzBytes *b) {
    const uint16_t lo = fb_u8(b);
    return (uint16_t)(lo | fb_u8(b) << 8);
}
uint32_t fb_u32(FuzzBytes *b) {
    const uint32_t lo = fb_u16(b);
    return lo | (uint32_t)fb_u16(b) << 16;
}
uint64_t fb_u64(FuzzBytes *b) {
    const uint64_t lo = fb_u32(b);
    return lo | (uint64_t)fb_u32(b) << 32;
}
int fb_pick(FuzzBytes *b, int n) { return n > 1 ? fb_u8(b) % n : 0; }
int fb_chance(FuzzBytes *b, int in256) { return b->n ? fb_u8(b) < in256 : in256 >= 128; }

uint64_t fb_count(FuzzBytes *b) {
    const int k = fb_u8(b);
    if (k < 160) return (uint64_t)(k % 10); // mostly small: the interesting files are small
    switch (k % 8) {
    case 0:
        return fb_u8(b);
    case 1:
        return fb_u16(b);
    case 2:
        return fb_u32(b);
    case 3:
        return 2147483647ull + (uint64_t)fb_pick(b, 3); // 2^31 - 1 .. 2^31 + 1
    case 4:
        return 4294967296ull - 1 + (uint64_t)fb_pick(b, 3);
    case 5:
        return 65535 + (uint64_t)fb_pick(b, 3);
    case 6:
        return fb_u64(b);
    default:
        return (uint64_t)1 << fb_pick(b, 64);
    }
}

double fb_double(FuzzBytes *b) {
    const int k = fb_u8(b);
    if (k < 128) return (double)(k % 12);
    switch (k % 10) {
    case 0:
        return (double)fb_count(b) + 0.5;
    case 1:
        return -1.0 - fb_pick(b, 3);
    case 2:
        return NAN;
    case 3:
        return INFINITY;
    case 4:
        return -INFINITY;
    case 5:
        return 1e300;
    case 6:
        return (double)fb_count(b);
    case 7:
        return 2147483648.0 * (1 + fb_pick(b, 4));
    default: {
        uint64_t u = fb_u64(b);
        double d;
        memcpy(&d, &u, sizeof(d));
        return d;
    }
    }
}

size_t fb_bytes(FuzzBytes *b, void *out, size_t max) { // from the end: choices keep their offsets
    const size_t n = max < b->n ? max : b->n;
    memcpy(out, b->p + b->n - n, n);
    b->n -= n;
    return n;
}
