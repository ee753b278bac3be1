// codes.c — CSR sparse codes and their latent-major index (codes.h).
#include "stsae/sae/codes.h"

#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

void codes_alloc(SparseCodes *c, int n_rows, int64_t cap) {
    memset(c, 0, sizeof(*c));
    c->n_rows = n_rows;
    c->row_ptr = xcalloc((size_t)n_rows + 1, sizeof(int64_t));
    codes_reserve(c, cap);
}

void codes_reserve(SparseCodes *c, int64_t cap) {
    if (cap <= c->cap) return;
    c->idx = xrealloc(c->idx, sizeof(int32_t) * (size_t)cap);
    c->val = xrealloc(c->val, sizeof(float) * (size_t)cap);
    c->grad = xrealloc(c->grad, sizeof(float) * (size_t)cap);
    c->cap = cap;
}

void codes_set_rows(SparseCodes *c, int r0, int n, const int *counts) {
    for (int r = 0; r < n; r++) c->row_ptr[r0 + r + 1] = c->row_ptr[r0 + r] + counts[r];
    c->nnz = c->row_ptr[r0 + n];
    codes_reserve(c, c->nnz);
}

void codes_from_slots(SparseCodes *c, int n, const int *start, int width, const int *count, const int32_t *idx,
                      const float *val) {
    if (c->n_rows < n || !c->row_ptr) {
        codes_free(c);
        codes_alloc(c, n, 0);
    }
    c->n_rows = n;
    c->row_ptr[0] = 0;
    codes_set_rows(c, 0, n, count);
    for (int r = 0; r < n; r++) {
        const size_t from = start ? (size_t)start[r] : (size_t)r * (size_t)width;
        memcpy(c->idx + c->row_ptr[r], idx + from, sizeof(int32_t) * (size_t)count[r]);
        memcpy(c->val + c->row_ptr[r], val + from, sizeof(float) * (size_t)count[r]);
    }
}

void codes_free(SparseCodes *c) {
    free(c->row_ptr);
    free(c->idx);
    free(c->val);
    free(c->grad);
    memset(c, 0, sizeof(*c));
}

void latent_index_build(LatentIndex *li, const SparseCodes *c, int m) {
    if (li->m != m) {
        li->col_ptr = xrealloc(li->col_ptr, sizeof(int64_t) * ((size_t)m + 1));
        li->m = m;
    }
    if (li->cap < c->nnz) {
        li->ent = xrealloc(li->ent, sizeof(int64_t) * (size_t)c->nnz);
        li->row = xrealloc(li->row, sizeof(int32_t) * (size_t)c->nnz);
        li->cap = c->nnz;
    }
    memset(li->col_ptr, 0, sizeof(int64_t) * ((size_t)m + 1));
    for (int64_t e = 0; e < c->nnz; e++) li->col_ptr[c->idx[e] + 1]++;
    for (int j = 0; j < m; j++) li->col_ptr[j + 1] += li->col_ptr[j];
    int64_t *next = xmalloc(sizeof(int64_t) * (size_t)m);
    memcpy(next, li->col_ptr, sizeof(int64_t) * (size_t)m);
    for (int r = 0; r < c->n_rows; r++)
        for (int64_t e = c->row_ptr[r]; e < c->row_ptr[r + 1]; e++) {
            int64_t q = next[c->idx[e]]++;
            li->ent[q] = e;
            li->row[q] = r;
        }
    free(next);
}

void latent_index_free(LatentIndex *li) {
    free(li->col_ptr);
    free(li->ent);
    free(li->row);
    memset(li, 0, sizeof(*li));
}
