// test_progress.c — the progress line's bookkeeping (base/progress.h) on
// made-up times: when a line is due (forced, after `every` seconds, not
// before), the rate since the start, the time left from the mean pace of the
// items done since the start (a resumed job counts from its checkpoint), and
// the short duration text ("?" when nothing is known yet).
// Prints "N passed, M failed"; exits 1 on any failure.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "stsae/base/progress.h"

static int passed, failed;

static void check(int ok, const char *what) {
    if (ok) passed++;
    else {
        failed++;
        printf("FAIL %s\n", what);
    }
}

static void check_text(double s, const char *want) {
    char buf[32], what[96];
    progress_duration_text(s, buf, sizeof(buf));
    snprintf(what, sizeof(what), "duration %g: '%s', expected '%s'", s, buf, want);
    check(!strcmp(buf, want), what);
}

int main(void) {
    Progress p;
    progress_start(&p, 100.0, 10.0, 40); // resumed at item 40 of 240, a line every 10 s
    check(!progress_due(&p, 105.0, 0), "no line 5 s after the start");
    check(progress_due(&p, 105.0, 1), "a forced line (the first item)");
    check(!progress_due(&p, 114.0, 0), "no line 9 s after the last");
    check(progress_due(&p, 115.0, 0), "a line 10 s after the last");
    check(!progress_due(&p, 116.0, 0), "the line marks the time");
    // 60 items in 20 s since the start: 3 items/s, 140 left: 46.67 s
    check(fabs(progress_rate(&p, 60.0, 120.0) - 3.0) < 1e-12, "rate since the start");
    check(fabs(progress_eta(&p, 100, 240, 120.0) - 140.0 / 3.0) < 1e-9, "eta from the items done since the start");
    check(isinf(progress_eta(&p, 40, 240, 120.0)), "eta unknown before any item since the start");
    check(progress_rate(&p, 5.0, 100.0) > 0, "a rate at the start is finite and positive");
    char eta[32];
    progress_eta_text(&p, 40, 240, 120.0, eta, sizeof(eta));
    check(!strcmp(eta, "?"), "unknown eta as '?'");
    progress_eta_text(&p, 100, 240, 120.0, eta, sizeof(eta));
    check(!strcmp(eta, "47s"), "eta text");
    check_text(0.0, "0s");
    check_text(59.4, "59s");
    check_text(187.0, "3m07s");
    check_text(7500.0, "2h05m");
    check_text(-1.0, "?");
    check_text(NAN, "?");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
