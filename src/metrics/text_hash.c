// text_hash.c — hashed words and word pairs of label texts (text_hash.h).
#include "stsae/metrics/text_hash.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

static void add_item(const char *s, size_t n, int dim, double *v) {
    const uint64_t h = fnv1a(s, n);
    v[h % (uint64_t)dim] += (h >> 63) ? -1.0 : 1.0;
}

static int is_word_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

void text_hash_embed(const char *const *texts, int n, int dim, float *out) {
    char prev[512], cur[256];
    double *v = xmalloc(sizeof(double) * (size_t)dim);
    for (int t = 0; t < n; t++) {
        memset(v, 0, sizeof(double) * (size_t)dim);
        size_t np = 0;
        for (const char *p = texts[t]; *p;) {
            if (!is_word_char(*p)) {
                p++;
                continue;
            }
            size_t nc = 0;
            for (; is_word_char(*p); p++)
                if (nc < sizeof(cur) - 1) cur[nc++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
            add_item(cur, nc, dim, v);
            if (np && !PLANTED("text_hash_no_pairs")) { // the pair "prev cur"
                prev[np] = ' ';
                memcpy(prev + np + 1, cur, nc);
                add_item(prev, np + 1 + nc, dim, v);
            }
            memcpy(prev, cur, nc);
            np = nc;
        }
        double s = 0.0;
        for (int i = 0; i < dim; i++) s += v[i] * v[i];
        const double inv = s > 0.0 ? 1.0 / sqrt(s) : 0.0;
        for (int i = 0; i < dim; i++) out[(size_t)t * dim + i] = (float)(v[i] * inv);
    }
    free(v);
}
