// fuzz_deck.c — libFuzzer target: deck_load (deck.h) with stsae's schema
// (deck_schema.h) and command-line overrides.
//
// In:  the deck's YAML text up to the first NUL byte; after it, up to 8
//      overrides ("train.k=32"), each ended by a NUL. A plain deck file (the
//      seeds: inputs/*.yaml, fuzz/corpus/deck/) is an input with none.
// Out: nothing; a crash, a sanitizer report, a leak, a die() (deck_load is
//      pure: it returns its errors) or a failed check is a finding.
//
// Checks beyond "does not crash": a refused deck has a non-empty,
// NUL-terminated message that fits errcap; a loaded deck, written back with
// deck_write, loads again (deck.h: "YAML that deck_load reads back to the
// same deck") and writes the same text again, byte for byte.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "stsae/deck/deck.h"
#include "stsae/deck/deck_schema.h"

enum { MAX_OVER = 8 };

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

// The text deck_write gives for d, malloc'ed and NUL-terminated.
static char *written(const Deck *d, const char *name, size_t *len) {
    const char *p = fuzz_path(name);
    FILE *f = fopen(p, "wb");
    FUZZ_CHECK(f, "cannot write %s", p);
    deck_write(d, f);
    fclose(f);
    f = fopen(p, "rb");
    FUZZ_CHECK(f, "cannot read %s", p);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    FUZZ_CHECK(fread(s, 1, (size_t)n, f) == (size_t)n, "short read of %s", p);
    fclose(f);
    s[n] = 0;
    *len = (size_t)n;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    const size_t deck_len = nul ? (size_t)(nul - data) : size;
    const char *path = fuzz_write("deck.yaml", data, deck_len);

    // the overrides: NUL-terminated strings after the deck (a last one without
    // its NUL is ignored, so every override is a C string of the input)
    char *over[MAX_OVER];
    int n_over = 0;
    for (size_t at = deck_len + 1; at < size && n_over < MAX_OVER;) {
        const uint8_t *end = memchr(data + at, 0, size - at);
        if (!end) break;
        over[n_over++] = (char *)data + at;
        at = (size_t)(end - data) + 1;
    }

    char err[1024];
    memset(err, 0x55, sizeof(err));
    Deck *d = deck_load(path, stsae_schema, n_over, over, err, sizeof(err));
    if (!d) {
        FUZZ_CHECK(memchr(err, 0, sizeof(err)) != NULL, "deck_load's message is not NUL-terminated");
        FUZZ_CHECK(err[0] != 0, "deck_load refused the deck without a message");
        fuzz_note("refused", err);
        return 0;
    }
    size_t n1, n2;
    char *text1 = written(d, "written1.yaml", &n1);
    deck_free(d);
    d = deck_load(fuzz_path("written1.yaml"), stsae_schema, 0, NULL, err, sizeof(err));
    if (!d) fuzz_fail("deck_write's output does not load again: %s\n--- written:\n%s", err, text1);
    char *text2 = written(d, "written2.yaml", &n2);
    deck_free(d);
    if (n1 != n2 || memcmp(text1, text2, n1) != 0)
        fuzz_fail("deck_write's output, loaded and written again, differs:\n--- first:\n%s\n--- second:\n%s", text1,
                  text2);
    free(text1);
    free(text2);
    return 0;
}
