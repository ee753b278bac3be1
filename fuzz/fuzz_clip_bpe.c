// fuzz_clip_bpe.c — libFuzzer target: CLIP's tokenizer (clip_bpe.h) on a
// vocab.json, a merges.txt and a text, each of them fuzzed.
//
// In:  the input split at the first two lines "#--" into vocab.json's bytes,
//      merges.txt's bytes and the text (up to its first NUL), written into the
//      scratch directory (no tokenizer_config.json: the default special
//      tokens).
// Out: nothing; a crash, a sanitizer report, a leak or a failed check is a
//      finding. clip_bpe_open's documented error path is die(): it runs under
//      FUZZ_TRY, and then its message must name vocab.json or merges.txt.
//      clip_bpe_encode must not die: it returns -1 for a text that is not
//      UTF-8, else 2 <= n <= ctx ids, the start token first and the end token
//      last, then the pad token to ctx, every id in [0, vocab size), at ctx
//      77 and at ctx 2 and 5 (truncation).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "stsae/io/clip_bpe.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

// The part of [p, end) before the line "#--" (and *next after it), or the rest.
static size_t part(const uint8_t *p, const uint8_t *end, const uint8_t **next) {
    static const char sep[] = "\n#--\n";
    for (const uint8_t *q = p; q + 5 <= end; q++)
        if (!memcmp(q, sep, 5)) {
            *next = q + 5;
            return (size_t)(q - p);
        }
    *next = end;
    return (size_t)(end - p);
}

static void check_ids(const ClipBpe *t, const char *text, int ctx) {
    int32_t ids[80];
    const int n = clip_bpe_encode(t, text, ctx, ids);
    if (n < 0) return; // not UTF-8
    FUZZ_CHECK(n >= 2 && n <= ctx, "clip_bpe_encode gave %d ids at ctx %d", n, ctx);
    int32_t empty[80]; // start, end, then padding
    FUZZ_CHECK(clip_bpe_encode(t, "", ctx, empty) == 2, "the empty text is not start + end");
    FUZZ_CHECK(ids[0] == empty[0] && ids[n - 1] == empty[1], "not the start token first and the end token last");
    for (int i = n; i < ctx; i++) FUZZ_CHECK(ids[i] == empty[2], "id %d at %d, past the text, is not the pad token", ids[i], i);
    const int V = clip_bpe_vocab_size(t);
    for (int i = 0; i < ctx; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < V, "id %d at %d outside [0, %d)", ids[i], i, V);
    int32_t again[80];
    FUZZ_CHECK(clip_bpe_encode(t, text, ctx, again) == n && !memcmp(ids, again, sizeof(int32_t) * (size_t)ctx),
               "two encodings of the same text differ");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *end = data + size, *p = data, *next;
    size_t n = part(p, end, &next);
    fuzz_write("vocab.json", p, n);
    p = next;
    n = part(p, end, &next);
    fuzz_write("merges.txt", p, n);
    p = next;
    n = (size_t)(end - p);
    char *text = malloc(n + 1);
    memcpy(text, p, n);
    text[n] = 0;
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", fuzz_path(""));
    dir[strlen(dir) - 1] = 0; // no trailing '/'
    int died;
    ClipBpe *volatile t = NULL;
    FUZZ_TRY(died, t = clip_bpe_open(dir));
    if (died) {
        const char *msg = fuzz_died_msg();
        FUZZ_CHECK(strstr(msg, "vocab.json") || strstr(msg, "merges.txt"), "clip_bpe_open died naming neither file: %s",
                   msg);
        fuzz_note("refused", msg);
        free(text);
        return 0;
    }
    check_ids(t, text, 77);
    check_ids(t, text, 2);
    check_ids(t, text, 5);
    clip_bpe_close(t);
    free(text);
    return 0;
}
