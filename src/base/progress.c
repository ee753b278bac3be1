// progress.c — the progress line's bookkeeping and arithmetic (progress.h).
#include "stsae/base/progress.h"

#include <math.h>
#include <stdio.h>

void progress_start(Progress *p, double now, double every, int64_t done0) {
    p->t0 = now;
    p->every = every;
    p->t_last = now;
    p->done0 = done0;
}

int progress_due(Progress *p, double now, int force) {
    if (!force && now - p->t_last < p->every) return 0;
    p->t_last = now;
    return 1;
}

double progress_rate(const Progress *p, double units, double now) {
    const double elapsed = now - p->t0;
    return units / (elapsed > 0 ? elapsed : 1e-9);
}

double progress_eta(const Progress *p, int64_t done, int64_t total, double now) {
    const int64_t since = done - p->done0;
    if (since <= 0) return INFINITY;
    return (double)(total - done) * (now - p->t0) / (double)since;
}

void progress_duration_text(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

void progress_eta_text(const Progress *p, int64_t done, int64_t total, double now, char *buf, size_t cap) {
    progress_duration_text(progress_eta(p, done, total, now), buf, cap);
}
