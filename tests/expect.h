// expect.h — the check counters of the C unit tests (test_inputs, test_jobs,
// test_feature_file, test_video): expect() counts a check and prints the
// failed ones; expect_str() also shows both strings. A test prints
// "N passed, M failed" at its end and exits non-zero when `failed`.
// Header-only: one test program per .c file, so the statics are that program's.
#ifndef STSAE_TESTS_EXPECT_H
#define STSAE_TESTS_EXPECT_H
#include <stdio.h>
#include <string.h>

static int passed, failed;

static inline void expect(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s\n", what);
    }
}

static inline void expect_str(const char *got, const char *want, const char *what) {
    int ok = got && !strcmp(got, want);
    expect(ok, what);
    if (!ok) printf("     got  '%s'\n     want '%s'\n", got ? got : "(null)", want);
}

#endif
