// codes.h — sparse codes: the kept latents of a batch of tokens in CSR form,
// token-major (row = token), and the latent-major transpose the backward pass
// and the InfoNCE losses walk.
//
// Every SAE code has k of m non-zeros, so everything after the encoder GEMM
// is done on these lists, never on dense [tokens, m] arrays.
#ifndef STSAE_CODES_H
#define STSAE_CODES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_rows;        // tokens
    int64_t nnz;
    int64_t cap;       // allocated entries
    int64_t *row_ptr;  // [n_rows + 1]
    int32_t *idx;      // [cap] latent index
    float *val;        // [cap] kept value z
    float *grad;       // [cap] scratch: dL/dz, then dL/dpre of the entry
} SparseCodes;

void codes_alloc(SparseCodes *c, int n_rows, int64_t cap);
void codes_reserve(SparseCodes *c, int64_t cap); // grows idx/val/grad, keeps contents
void codes_free(SparseCodes *c);
// Rows [r0, r0 + n) will hold counts[r] entries each: sets their row_ptr (and
// nnz) from row_ptr[r0] on and makes room for the entries.
void codes_set_rows(SparseCodes *c, int r0, int n, const int *counts);
// c made of n rows held in slots (the GPU's layout, copied to the host): row
// r's count[r] entries at idx/val[start[r] ..] (start NULL: at r * width).
// c is made by codes_alloc and grown here as needed.
void codes_from_slots(SparseCodes *c, int n, const int *start, int width, const int *count, const int32_t *idx,
                      const float *val);

// Latent-major view of a SparseCodes: for latent j, entries
// ent[col_ptr[j] .. col_ptr[j+1]) are positions into the token-major arrays,
// sorted by token (a stable counting sort, so sums over them are in a fixed
// order whatever the thread count).
typedef struct {
    int m;
    int64_t *col_ptr;  // [m + 1]
    int64_t *ent;      // [nnz] entry position in the token-major arrays
    int32_t *row;      // [nnz] token of that entry
    int64_t cap;
} LatentIndex;

void latent_index_build(LatentIndex *li, const SparseCodes *c, int m);
void latent_index_free(LatentIndex *li);

#endif
