// export.c — `stsae export` (export.h): a model.h5 in SAELens's or sparsify's
// on-disk format, the input scale folded into the weights.
//
// In:  JOB_DIR or MODEL.h5, --format, OUT_DIR.
// Out: OUT_DIR/cfg.json and one safetensors file. A safetensors file is an
//      8-byte little-endian header length, a JSON header naming each tensor's
//      dtype, shape and [begin, end) byte range of the data that follows (the
//      ranges tile the data in order, from 0), padded with spaces so that the
//      data starts 8-byte aligned, then the raw little-endian float32 data.
//      Written by hand: one writer, a few tensors, no dependency.
#define _POSIX_C_SOURCE 200809L // stat
#include "stsae/tools/export.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/io/model.h"
#include "stsae/sae/sae.h"

typedef struct {
    const char *name;
    const float *data;
    int rank;
    int64_t dims[2];
} Tensor;

static size_t tensor_bytes(const Tensor *t) {
    size_t n = sizeof(float);
    for (int i = 0; i < t->rank; i++) n *= (size_t)t->dims[i];
    return n;
}

// One safetensors file of float32 tensors (see the top of this file).
static void write_safetensors(const char *path, const Tensor *t, int n) {
    size_t cap = 256 + (size_t)n * 256, len = 0, off = 0;
    char *h = xmalloc(cap);
    len += (size_t)snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        const size_t b = tensor_bytes(&t[i]);
        len += (size_t)snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t[i].name);
        for (int r = 0; r < t[i].rank; r++)
            len += (size_t)snprintf(h + len, cap - len, "%s%" PRId64, r ? "," : "", t[i].dims[r]);
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + b);
        off += b;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len % 8) h[len++] = ' '; // data 8-byte aligned (8 + len)
    char tmp[4200];
    FILE *f = path_create_tmp(path, tmp, sizeof(tmp));
    unsigned char hl[8];
    for (int i = 0; i < 8; i++) hl[i] = (unsigned char)((uint64_t)len >> (8 * i));
    fwrite(hl, 1, 8, f);
    fwrite(h, 1, len, f);
    const uint32_t probe = 1;
    const int little = *(const unsigned char *)&probe == 1;
    for (int i = 0; i < n; i++) {
        const size_t b = tensor_bytes(&t[i]);
        if (little) {
            fwrite(t[i].data, 1, b, f);
        } else { // big-endian hosts: swap each float's bytes
            const unsigned char *p = (const unsigned char *)t[i].data;
            for (size_t q = 0; q < b; q += 4) {
                const unsigned char s[4] = {p[q + 3], p[q + 2], p[q + 1], p[q]};
                fwrite(s, 1, 4, f);
            }
        }
    }
    path_commit(f, tmp, path); // dies naming the file on a short write or a full disk
    free(h);
}

// s, escaped for a JSON string (job names are plain, but a deck may say anything).
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

// The stsae record shared by both cfg.json files (ignored by the loaders'
// configuration, kept for whoever reads the file).
static void stsae_record(FILE *f, const char *model_path, const SaeConfig *cfg, const ModelInfo *info) {
    fprintf(f, "\"stsae_job\": ");
    json_str(f, info->name);
    fprintf(f, ", \"stsae_variant\": ");
    json_str(f, sae_variant_name(cfg));
    fprintf(f, ", \"stsae_model\": ");
    json_str(f, model_path);
    fprintf(f, ", \"stsae_input_scale\": %.9g, \"stsae_theta\": %.9g, \"stsae_layer\": %d, \"stsae_m_high\": %d, "
               "\"stsae_note\": \"raw features in; the input scale is folded into W_enc, b_dec and W_dec "
               "(decoder rows have norm 1/stsae_input_scale)\"",
            (double)info->scale, (double)info->theta, info->layer, cfg->m_high);
}

static void usage(void) {
    fprintf(stderr, "usage: stsae export JOB_DIR|MODEL.h5 --format saelens|sparsify OUT_DIR\n");
}

int export_main(int argc, char **argv) {
    const char *src = NULL, *format = NULL, *out = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) format = argv[++i];
        else if (!strncmp(argv[i], "--format=", 9)) format = argv[i] + 9;
        else if (!src) src = argv[i];
        else if (!out) out = argv[i];
        else return usage(), 2;
    }
    if (!src || !format || !out) return usage(), 2;
    const int saelens = !strcmp(format, "saelens"), sparsify = !strcmp(format, "sparsify");
    if (!strcmp(format, "dictionary_learning")) {
        fprintf(stderr, "stsae export: dictionary_learning keeps a pickled PyTorch state dict (ae.pt), which stsae "
                        "does not write; load the weights with analysis/stsae.py (Model.W_enc, ...) and save them "
                        "with torch\n");
        return 1;
    }
    if (!saelens && !sparsify) {
        fprintf(stderr, "stsae export: unknown format '%s' (saelens, sparsify)\n", format);
        return 2;
    }
    struct stat st;
    char *model_path = stat(src, &st) == 0 && S_ISDIR(st.st_mode) ? path_join(src, "model.h5") : path_join(NULL, src);
    if (stat(model_path, &st) != 0) {
        fprintf(stderr, "stsae export: %s: no such model file (a job directory holds model.h5 once trained)\n",
                model_path);
        free(model_path);
        return 1;
    }
    SaeConfig cfg;
    ModelInfo info;
    float *params = model_load(model_path, &cfg, &info);
    const char *variant = sae_variant_name(&cfg);
    const int topk = cfg.select == SEL_TOPK, btopk = cfg.select == SEL_BATCHTOPK;
    if (!topk && !(btopk && saelens)) {
        fprintf(stderr, "stsae export: %s: variant %s cannot be expressed in %s (%s)\n", model_path, variant, format,
                btopk ? "sparsify has TopK only, no threshold form; SAELens's jumprelu has one"
                      : "neither SAELens nor sparsify has a sparsemax / entmax activation");
        free(params), free(model_path);
        return 1;
    }
    const int d = cfg.d, m = cfg.m;
    const float s = PLANTED("export_no_scale") ? 1.0f : info.scale, inv_s = 1.0f / s;
    SaeTensors p;
    sae_carve(params, &cfg, &p);
    float *W_dec = xmalloc(sizeof(float) * (size_t)m * d), *b_dec = xmalloc(sizeof(float) * (size_t)d);
    float *W_enc = xmalloc(sizeof(float) * (size_t)m * d), *thr = xmalloc(sizeof(float) * (size_t)m);
    for (size_t i = 0; i < (size_t)m * d; i++) W_dec[i] = p.D[i] * inv_s; // D is [m, d] already
    for (int i = 0; i < d; i++) b_dec[i] = p.b_dec[i] * inv_s;
    for (int j = 0; j < m; j++) thr[j] = PLANTED("export_theta_zero") ? 0.0f : info.theta;
    char err[1024];
    if (path_mkdirs(out, err, sizeof(err)) != 0) die("stsae export: %s", err);
    char *cfg_path = path_join(out, "cfg.json"), tmp[4200];
    if (saelens) {
        for (int j = 0; j < m; j++) // SAELens W_enc [d_in, d_sae]
            for (int i = 0; i < d; i++) W_enc[(size_t)i * m + j] = s * p.W_enc[(size_t)j * d + i];
        Tensor t[5] = {{"W_dec", W_dec, 2, {m, d}}, {"W_enc", W_enc, 2, {d, m}}, {"b_dec", b_dec, 1, {d, 0}},
                       {"b_enc", p.b_enc, 1, {m, 0}}, {"threshold", thr, 1, {m, 0}}};
        char *w_path = path_join(out, "sae_weights.safetensors");
        write_safetensors(w_path, t, btopk ? 5 : 4);
        FILE *f = path_create_tmp(cfg_path, tmp, sizeof(tmp));
        fprintf(f, "{\"architecture\": \"%s\", \"d_in\": %d, \"d_sae\": %d, ", btopk ? "jumprelu" : "topk", d, m);
        if (topk) fprintf(f, "\"k\": %d, \"rescale_acts_by_decoder_norm\": false, ", cfg.k);
        fprintf(f, "\"dtype\": \"float32\", \"device\": \"cpu\", \"apply_b_dec_to_input\": true, "
                   "\"normalize_activations\": \"none\", \"reshape_activations\": \"none\", "
                   "\"metadata\": {\"model_name\": ");
        json_str(f, info.name);
        fprintf(f, ", \"hook_name\": \"stsae.layer_%02d\", ", info.layer);
        stsae_record(f, model_path, &cfg, &info);
        fprintf(f, "}}\n");
        path_commit(f, tmp, cfg_path);
        printf("stsae export: %s (%s, d %d, m %d) -> %s/{cfg.json, sae_weights.safetensors} as SAELens %s\n",
               model_path, variant, d, m, out, btopk ? "jumprelu (threshold = theta)" : "topk");
        free(w_path);
    } else {
        for (size_t i = 0; i < (size_t)m * d; i++) W_enc[i] = s * p.W_enc[i]; // encoder.weight [m, d]
        Tensor t[4] = {{"encoder.weight", W_enc, 2, {m, d}}, {"encoder.bias", p.b_enc, 1, {m, 0}},
                       {"W_dec", W_dec, 2, {m, d}}, {"b_dec", b_dec, 1, {d, 0}}};
        char *w_path = path_join(out, "sae.safetensors");
        write_safetensors(w_path, t, 4);
        FILE *f = path_create_tmp(cfg_path, tmp, sizeof(tmp));
        fprintf(f, "{\"activation\": \"topk\", \"expansion_factor\": %d, \"normalize_decoder\": false, "
                   "\"num_latents\": %d, \"k\": %d, \"multi_topk\": false, \"skip_connection\": false, "
                   "\"transcode\": false, \"d_in\": %d, ",
                m % d == 0 ? m / d : 1, m, cfg.k, d);
        stsae_record(f, model_path, &cfg, &info);
        fprintf(f, "}\n");
        path_commit(f, tmp, cfg_path);
        printf("stsae export: %s (%s, d %d, m %d) -> %s/{cfg.json, sae.safetensors} as sparsify topk\n", model_path,
               variant, d, m, out);
        free(w_path);
    }
    free(cfg_path), free(W_dec), free(b_dec), free(W_enc), free(thr), free(params), free(model_path);
    return 0;
}
