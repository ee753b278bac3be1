// fuzz_safetensors.c — libFuzzer target: the safetensors reader of hf.h
// (hf_try_open's header validation, hf_has, hf_f32, hf_digest).
//
// In:  model.safetensors' bytes, as they are; config.json is "{}".
// Out: nothing; a crash, a sanitizer report, a leak, a die() of hf_try_open
//      (it returns its errors) or a failed check is a finding.
//
// Checks, against an independent reading of the same bytes (the header
// parsed here with cJSON): an accepted file has a header length within the
// file, and every tensor the header names is there (hf_has); hf_f32 of every
// F32 tensor with its own shape returns exactly the bytes at its
// data_offsets (the data section starts at 8 + header length), so an offset
// or length off by anything is caught even where ASan cannot see (the data
// are read from a memory mapping); hf_f32 with another shape or of a non-F32
// tensor dies naming the file and the tensor (under FUZZ_TRY); hf_digest is
// the FNV-1a 64 of the whole input.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "stsae/io/hf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    fuzz_write("config.json", "{}", 2);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write("model.safetensors", data, size);
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", fuzz_path(""));
    dir[strlen(dir) - 1] = 0;
    char err[8192];
    memset(err, 0x55, sizeof(err));
    HfDir *m = hf_try_open(dir, err, sizeof(err));
    if (!m) {
        FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0], "hf_try_open failed without a message");
        FUZZ_CHECK(strstr(err, "model.safetensors") != NULL, "the message does not name the file: %s", err);
        fuzz_note("refused", err);
        return 0;
    }
    FUZZ_CHECK(size >= 8, "accepted a file of %zu bytes", size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    FUZZ_CHECK(hlen <= size - 8, "accepted header length %" PRIu64 " in a file of %zu bytes", hlen, size);
    const uint8_t *base = data + 8 + hlen;
    const uint64_t data_size = size - 8 - hlen;
    cJSON *h = cJSON_ParseWithLength((const char *)data + 8, (size_t)hlen);
    FUZZ_CHECK(h && cJSON_IsObject(h), "accepted a header cJSON does not parse as an object");
    for (const cJSON *t = h->child; t; t = t->next) {
        if (!strcmp(t->string, "__metadata__")) continue;
        FUZZ_CHECK(hf_has(m, t->string), "tensor '%s' of the header is not found", t->string);
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        FUZZ_CHECK(cJSON_IsString(dt) && cJSON_IsArray(sh) && cJSON_IsArray(off), "accepted entry '%s'", t->string);
        const int rank = cJSON_GetArraySize(sh);
        FUZZ_CHECK(rank <= 8, "accepted rank %d", rank);
        int64_t shape[9];
        uint64_t numel = 1;
        for (int i = 0; i < rank; i++) {
            shape[i] = (int64_t)cJSON_GetArrayItem(sh, i)->valuedouble;
            numel *= (uint64_t)shape[i];
        }
        const uint64_t b = (uint64_t)cJSON_GetArrayItem(off, 0)->valuedouble;
        const uint64_t e = (uint64_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        FUZZ_CHECK(b <= e && e <= data_size, "accepted data_offsets [%" PRIu64 ", %" PRIu64 "] of %" PRIu64 " bytes", b,
                   e, data_size);
        int died;
        const float *volatile w = NULL;
        FUZZ_TRY(died, w = hf_f32(m, t->string, rank, shape));
        if (strcmp(dt->valuestring, "F32") != 0) {
            FUZZ_CHECK(died && strstr(fuzz_died_msg(), "dtype"), "hf_f32 of a %s tensor did not refuse it",
                       dt->valuestring);
            continue;
        }
        FUZZ_CHECK(!died, "hf_f32 refused F32 tensor '%s' with its own shape: %s", t->string, fuzz_died_msg());
        FUZZ_CHECK(e - b == 4 * numel, "accepted F32 '%s': %" PRIu64 " bytes for %" PRIu64 " values", t->string, e - b,
                   numel);
        FUZZ_CHECK(numel == 0 || memcmp((const void *)w, base + b, (size_t)(e - b)) == 0,
                   "hf_f32('%s') is not the bytes at its data_offsets", t->string);
        // a wrong shape: one more dimension of 1, or the first one off by one
        int64_t other[9];
        memcpy(other, shape, sizeof(other));
        int other_rank = rank;
        if (rank)
            other[0] += 1;
        else
            other[other_rank++] = 1;
        FUZZ_TRY(died, w = hf_f32(m, t->string, other_rank, other));
        FUZZ_CHECK(died && strstr(fuzz_died_msg(), "model.safetensors") && strstr(fuzz_died_msg(), "shape"),
                   "hf_f32 with a wrong shape did not die naming the file and the shape");
    }
    cJSON_Delete(h);
    int died;
    const float *volatile w = NULL;
    FUZZ_TRY(died, w = hf_f32(m, "no such tensor \x01", 0, NULL));
    FUZZ_CHECK(died && !w, "hf_f32 of a missing tensor returned");
    uint64_t fnv = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; i++) fnv = (fnv ^ data[i]) * 0x100000001b3ull;
    char want[32];
    snprintf(want, sizeof(want), "fnv1a64:%016" PRIx64, fnv);
    FUZZ_CHECK(!strcmp(hf_digest(m), want), "hf_digest %s, expected %s", hf_digest(m), want);
    hf_close(m);
    return 0;
}
