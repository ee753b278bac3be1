// text_hash_dump.c — prints text_hash_embed's vectors of the lines of stdin,
// for tests/test_text_hash.py (the reference implementation is there).
//   text_hash_dump DIM < texts   ->   one line of DIM numbers (%.9g) per text
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/metrics/text_hash.h"

int main(int argc, char **argv) {
    const int dim = argc > 1 ? atoi(argv[1]) : TEXT_HASH_DIM;
    if (dim < 1) die("usage: text_hash_dump DIM < texts");
    char line[4096];
    float *v = xmalloc(sizeof(float) * (size_t)dim);
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\n")] = 0;
        const char *t = line;
        text_hash_embed(&t, 1, dim, v);
        for (int i = 0; i < dim; i++) printf("%s%.9g", i ? " " : "", v[i]);
        printf("\n");
    }
    free(v);
    return 0;
}
