// fuzz_inputs_csv.c — libFuzzer target: inputs_read_csv (inputs.h), the
// `path,label[,split]` clip list.
//
// In:  the CSV file's bytes, as they are (NUL bytes included: a line with
//      one is cut there, as the reader sees it).
// Out: nothing; a crash, a sanitizer report, a leak, a die() (the reader
//      returns its errors) or a broken promise of inputs.h (inputs_check.h)
//      is a finding.
#include "inputs_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *csv = fuzz_write("clips.csv", data, size);
    ClipList l;
    char err[1024];
    memset(err, 0x55, sizeof(err));
    if (inputs_read_csv(csv, &l, err, sizeof(err)) != 0) {
        check_refusal(err, sizeof(err));
        return 0;
    }
    check_clip_list(&l);
    inputs_free(&l);
    return 0;
}
