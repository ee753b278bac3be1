// fuzz_hf_config.c — libFuzzer target: a Hugging Face directory's
// config.json through hf.h (hf_try_open, then every getter on every key the
// ViT loader asks for, plain and _opt forms).
//
// In:  config.json's bytes; the directory's model.safetensors is a fixed,
//      valid one-tensor file, so only the configuration varies.
// Out: nothing; a crash, a sanitizer report, a leak, a die() of hf_try_open
//      (it returns its errors) or a failed check is a finding. The getters'
//      documented error path is die() (a missing key, a wrong type): they run
//      under FUZZ_TRY, and then their message must name config.json and the
//      key. Values must be what the JSON says (an int getter's value is an
//      integer within int, a string getter's a string of the object).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "stsae/io/hf.h"

static const char *const KEYS[] = {"model_type",
                                   "hidden_size",
                                   "num_hidden_layers",
                                   "num_attention_heads",
                                   "patch_size",
                                   "image_size",
                                   "num_channels",
                                   "hidden_act",
                                   "intermediate_size",
                                   "tubelet_size",
                                   "num_frames",
                                   "layer_norm_eps",
                                   "mlp_ratio",
                                   "use_swiglu_ffn",
                                   "use_mean_pooling",
                                   "qkv_bias",
                                   "",
                                   "__proto__"};
enum { N_KEYS = sizeof(KEYS) / sizeof(KEYS[0]) };

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    // one F32 tensor "w" of shape [2]: header {...} padded to 8 bytes, then 8 data bytes
    const char hdr[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}    ";
    const size_t h = sizeof(hdr) - 1;
    unsigned char buf[8 + sizeof(hdr) + 8];
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(h >> (8 * i));
    memcpy(buf + 8, hdr, h);
    const float w[2] = {1.5f, -2.0f};
    memcpy(buf + 8 + h, w, sizeof(w));
    fuzz_write("model.safetensors", buf, 8 + h + sizeof(w));
    return 0;
}

static void check_named(const char *key) {
    const char *msg = fuzz_died_msg();
    FUZZ_CHECK(strstr(msg, "config.json") && strstr(msg, key), "getter of '%s' died without naming it: %s", key, msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write("config.json", data, size);
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", fuzz_path(""));
    dir[strlen(dir) - 1] = 0; // no trailing '/'
    char err[8192];
    memset(err, 0x55, sizeof(err));
    HfDir *m = hf_try_open(dir, err, sizeof(err));
    if (!m) {
        FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0], "hf_try_open failed without a message");
        FUZZ_CHECK(strstr(err, "config.json") != NULL, "the valid model.safetensors was blamed: %s", err);
        fuzz_note("refused", err);
        return 0;
    }
    // an independent parse of the same bytes, to compare values with
    cJSON *ref = cJSON_ParseWithLength((const char *)data, size);
    FUZZ_CHECK(ref && cJSON_IsObject(ref), "hf_try_open accepted what cJSON does not parse as an object");
    for (int i = 0; i < N_KEYS; i++) {
        const char *key = KEYS[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ref, key);
        int died;
        volatile int iv = 0;
        volatile double dv = 0;
        const char *volatile sv = NULL;
        FUZZ_TRY(died, iv = hf_cfg_int(m, key));
        if (died)
            check_named(key);
        else
            FUZZ_CHECK(cJSON_IsNumber(v) && v->valuedouble == (double)iv, "hf_cfg_int('%s') = %d", key, iv);
        FUZZ_TRY(died, iv = hf_cfg_int_opt(m, key, -7));
        if (died)
            check_named(key);
        else
            FUZZ_CHECK(v ? cJSON_IsNumber(v) && v->valuedouble == (double)iv : iv == -7, "hf_cfg_int_opt('%s') = %d",
                       key, iv);
        FUZZ_TRY(died, dv = hf_cfg_num(m, key));
        if (died)
            check_named(key);
        else
            FUZZ_CHECK(cJSON_IsNumber(v) && (v->valuedouble == dv || (isnan(dv) && isnan(v->valuedouble))),
                       "hf_cfg_num('%s') = %g", key, dv);
        FUZZ_TRY(died, dv = hf_cfg_num_opt(m, key, 0.25));
        if (died) check_named(key);
        FUZZ_TRY(died, iv = hf_cfg_bool_opt(m, key, 2));
        if (died)
            check_named(key);
        else
            FUZZ_CHECK(v ? cJSON_IsBool(v) && iv == cJSON_IsTrue(v) : iv == 2, "hf_cfg_bool_opt('%s') = %d", key, iv);
        FUZZ_TRY(died, sv = hf_cfg_str(m, key));
        if (died)
            check_named(key);
        else
            FUZZ_CHECK(cJSON_IsString(v) && !strcmp(sv, v->valuestring), "hf_cfg_str('%s')", key);
        FUZZ_TRY(died, sv = hf_cfg_str_opt(m, key, "default"));
        if (died)
            check_named(key);
        else
            FUZZ_CHECK(sv && strlen(sv) < (size_t)-1, "hf_cfg_str_opt('%s')", key);
    }
    cJSON_Delete(ref);
    const int64_t shape[1] = {2};
    const float *w = hf_f32(m, "w", 1, shape);
    FUZZ_CHECK(w[0] == 1.5f && w[1] == -2.0f, "tensor 'w' read back wrong");
    hf_close(m);
    return 0;
}
