// testutil.h — small helpers shared by the C tests.
#ifndef STSAE_TESTUTIL_H
#define STSAE_TESTUTIL_H

#include <math.h>
#include <stddef.h>

// max |a - b| / max |b| (or the plain max difference where b is all zero)
static inline double max_rel(const float *a, const float *b, size_t n) {
    double mx = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)a[i] - b[i]));
        ref = fmax(ref, fabs((double)b[i]));
    }
    return ref > 0.0 ? mx / ref : mx;
}

#endif
