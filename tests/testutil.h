// testutil.h — small helpers shared by the C tests.
#ifndef STSAE_TESTUTIL_H
#define STSAE_TESTUTIL_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/sae/codes.h"

// max |a - b| / max |b| (or the plain max difference where b is all zero)
static inline double max_rel(const float *a, const float *b, size_t n) {
    double mx = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs((double)a[i] - b[i]));
        ref = fmax(ref, fabs((double)b[i]));
    }
    return ref > 0.0 ? mx / ref : mx;
}

// Two sets of codes row by row: *same_support when every row keeps the same
// latents (each row sorted by latent first); returns max |a - b| / max |b|
// over the values (INFINITY where the shapes differ).
static inline int codes_entry_cmp(const void *a, const void *b) {
    const int32_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}
static inline double codes_diff(const SparseCodes *a, const SparseCodes *b, int *same_support) {
    *same_support = a->n_rows == b->n_rows && a->nnz == b->nnz;
    if (!*same_support) return INFINITY;
    double mx = 0.0, ref = 0.0;
    int32_t(*pa)[2] = xmalloc(sizeof(int32_t[2]) * (size_t)(a->nnz + 1));
    int32_t(*pb)[2] = xmalloc(sizeof(int32_t[2]) * (size_t)(b->nnz + 1));
    for (int r = 0; r < a->n_rows && *same_support; r++) {
        int64_t a0 = a->row_ptr[r], na = a->row_ptr[r + 1] - a0, b0 = b->row_ptr[r], nb = b->row_ptr[r + 1] - b0;
        if (na != nb) {
            *same_support = 0;
            break;
        }
        for (int64_t q = 0; q < na; q++) {
            pa[q][0] = a->idx[a0 + q];
            memcpy(&pa[q][1], &a->val[a0 + q], sizeof(float));
            pb[q][0] = b->idx[b0 + q];
            memcpy(&pb[q][1], &b->val[b0 + q], sizeof(float));
        }
        qsort(pa, (size_t)na, sizeof(pa[0]), codes_entry_cmp);
        qsort(pb, (size_t)nb, sizeof(pb[0]), codes_entry_cmp);
        for (int64_t q = 0; q < na; q++) {
            float va, vb;
            memcpy(&va, &pa[q][1], sizeof(float));
            memcpy(&vb, &pb[q][1], sizeof(float));
            if (pa[q][0] != pb[q][0]) *same_support = 0;
            mx = fmax(mx, fabs((double)va - vb));
            ref = fmax(ref, fabs((double)vb));
        }
    }
    free(pa);
    free(pb);
    return ref > 0.0 ? mx / ref : mx;
}

#endif
