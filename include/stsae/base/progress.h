// progress.h — the progress line of a long loop (items done of a total, the
// rate, the time left), written once for every stage. Pure: no MPI, no I/O,
// no clock of its own (the caller passes wall_time()), so it is the same on
// every rank and testable with made-up times.
//
// In:  the time the counting starts and the items already done then (a
//      resumed job counts from its checkpoint), the seconds between lines;
//      at each item (a step, a clip), the time and the items done.
// Out: whether a line is due now (progress_due: the caller decides who
//      prints, typically rank 0 or a group's lead, and only that rank asks,
//      since asking marks the line printed); the rate in items (or any unit
//      counted since the start, such as tokens) per second; the time left,
//      from the mean pace since the start; that time as short text
//      ("42s", "3m07s", "2h05m", "?" when unknown).
//
// How a stage adopts it (train_job.c is the model): progress_start when the
// loop starts; in the loop, on the printing rank,
//     if (progress_due(&pr, now, first_or_last)) {
//         char eta[32];
//         progress_eta_text(&pr, done, total, now, eta, sizeof(eta));
//         printf("...: %lld/%lld ..., %.1f clips/s, ETA %s\n", ..., progress_rate(&pr, done - done0, now), eta);
//     }
// The stage keeps its own words; only the bookkeeping and the arithmetic live
// here (extract, eval and synth each had a copy of them).
#ifndef STSAE_PROGRESS_H
#define STSAE_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double t0;      // when counting started (wall_time())
    double every;   // seconds between lines
    double t_last;  // when the last line was due; t0 before the first
    int64_t done0;  // items already done at t0
} Progress;

void progress_start(Progress *p, double now, double every, int64_t done0);

// 1 when a line is due at `now`: force (the caller's first or last item), or
// `every` seconds since the last line (since the start before the first one).
// Marks the line printed.
int progress_due(Progress *p, double now, int force);

// units / (now - t0): the rate of anything counted since the start.
double progress_rate(const Progress *p, double units, double now);

// Seconds left to reach total from done, at the mean pace since the start;
// +inf when nothing was done since the start (unknown).
double progress_eta(const Progress *p, int64_t done, int64_t total, double now);

// A duration as short text: "42s", "3m07s", "2h05m"; "?" for a negative or
// non-finite one.
void progress_duration_text(double seconds, char *buf, size_t cap);

// progress_duration_text of progress_eta.
void progress_eta_text(const Progress *p, int64_t done, int64_t total, double now, char *buf, size_t cap);

#endif
