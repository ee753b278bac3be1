// fuzz_inputs_ssv2.c — libFuzzer target: inputs_read_ssv2 (inputs.h), the
// Something-Something v2 annotation list and its labels.json.
//
// In:  labels.json's text up to the first NUL byte, the annotation JSON
//      after it (no NUL: an empty annotation file).
// Out: nothing; a crash, a sanitizer report, a leak, a die() (the reader
//      returns its errors) or a broken promise of inputs.h (inputs_check.h)
//      is a finding. Also: every path is VIDEOS/<id>.webm, every split -1
//      (one annotation file is one split) before the default split.
#include "inputs_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    const size_t n_labels = nul ? (size_t)(nul - data) : size;
    const char *labels = fuzz_write("labels.json", data, n_labels);
    const char *ann = nul ? fuzz_write("train.json", nul + 1, size - n_labels - 1) : fuzz_write("train.json", "", 0);
    ClipList l;
    char err[1024];
    memset(err, 0x55, sizeof(err));
    if (inputs_read_ssv2("VIDEOS", ann, labels, &l, err, sizeof(err)) != 0) {
        check_refusal(err, sizeof(err));
        return 0;
    }
    for (int i = 0; i < l.n; i++) {
        const char *p = l.clip[i].path, *id = l.clip[i].clip_id;
        const size_t n = strlen(id);
        FUZZ_CHECK(!strncmp(p, "VIDEOS/", 7) && !strncmp(p + 7, id, n) && !strcmp(p + 7 + n, ".webm"),
                   "clip %d: path '%s' for id '%s'", i, p, id);
        FUZZ_CHECK(l.clip[i].split == -1, "clip %d: split %d, not 'not given'", i, l.clip[i].split);
    }
    check_clip_list(&l);
    inputs_free(&l);
    return 0;
}
