// fuzz_inputs_k400.c — libFuzzer target: inputs_read_k400 (inputs.h), the
// Kinetics-400 CSV `label,youtube_id,time_start,time_end,split` (with or
// without a header naming the columns in any order).
//
// In:  the CSV file's bytes. Out: nothing; a crash, a sanitizer report, a
//      leak, a die() (the reader returns its errors) or a broken promise of
//      inputs.h (inputs_check.h) is a finding. Also: every path is
//      VIDEOS/<id>.mp4 and no label is a number.
#include "inputs_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *csv = fuzz_write("k400.csv", data, size);
    ClipList l;
    char err[1024];
    memset(err, 0x55, sizeof(err));
    if (inputs_read_k400("VIDEOS", csv, &l, err, sizeof(err)) != 0) {
        check_refusal(err, sizeof(err));
        return 0;
    }
    for (int i = 0; i < l.n; i++) {
        const char *p = l.clip[i].path, *id = l.clip[i].clip_id;
        const size_t n = strlen(id);
        FUZZ_CHECK(!strncmp(p, "VIDEOS/", 7) && !strncmp(p + 7, id, n) && !strcmp(p + 7 + n, ".mp4"),
                   "clip %d: path '%s' for id '%s'", i, p, id);
    }
    check_clip_list(&l);
    inputs_free(&l);
    return 0;
}
