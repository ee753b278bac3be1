// hf.h — a Hugging Face model directory, read without Python: `config.json`
// (parsed with cJSON) and `model.safetensors` (memory-mapped, SPEC §4,
// reference/backbones.md §2.0).
//
// In:  a directory path. Out: configuration values by key, and float32
//      tensors by name, each checked against the shape the caller derives from
//      the configuration; a digest of the weights for the feature file.
//
// Every failure is one line naming the file and the key or tensor (bad JSON,
// a missing key, a truncated file, offsets past its end, a missing tensor, a
// wrong dtype or shape) and, for a file that cannot be opened or read, the
// system's reason; then exit 1 (hf_try_open: returned instead): the loader
// never crashes on a bad checkpoint. The safetensors header is validated in
// full when the directory is opened, as the reference implementation does:
// header length within the file and at most 100 MB; each tensor a known
// dtype, at most 8 dimensions of integers below 2^53, its element and byte
// counts computed with overflow checks and equal to its data_offsets' span;
// no tensor named twice; the data_offsets tiling the data section exactly
// (no overlap, no gap, no byte after the last tensor). Tensor data are read in place from the mapping
// (copied only when a tensor is not 4-byte aligned). Little-endian hosts
// only, like the format.
#ifndef STSAE_HF_H
#define STSAE_HF_H

#include <stddef.h>
#include <stdint.h>

typedef struct HfDir HfDir;

HfDir *hf_open(const char *dir); // dies with the one line on any failure
// The same, returning NULL with the line in err (cap bytes; 8 KiB always
// holds it) instead of dying, everything it had opened released: the fuzz
// targets' entry (fuzz/fuzz_safetensors.c), and for callers that decide
// themselves how the ranks stop.
HfDir *hf_try_open(const char *dir, char *err, size_t cap);
void hf_close(HfDir *m); // NULL is a no-op

const char *hf_path(const HfDir *m);         // the directory as given
const char *hf_config_path(const HfDir *m);  // <dir>/config.json, for messages
const char *hf_weights_path(const HfDir *m); // <dir>/model.safetensors, for messages

// config.json values, by key or by a dotted path into nested objects
// ("text_config.hidden_size"). The plain forms die naming config.json and the key when
// it is absent or of the wrong type; the _opt forms return `def` when absent
// (a present value of the wrong type is still an error).
int hf_cfg_int(const HfDir *m, const char *key);
int hf_cfg_int_opt(const HfDir *m, const char *key, int def);
double hf_cfg_num(const HfDir *m, const char *key);
double hf_cfg_num_opt(const HfDir *m, const char *key, double def);
int hf_cfg_bool_opt(const HfDir *m, const char *key, int def);
const char *hf_cfg_str(const HfDir *m, const char *key);
const char *hf_cfg_str_opt(const HfDir *m, const char *key, const char *def);

// 1 when the checkpoint holds a tensor of that name (any dtype).
int hf_has(const HfDir *m, const char *name);
// The tensor `name`, which must be F32 with exactly `rank` dimensions equal
// to shape[0..rank). The pointer lives until hf_close.
const float *hf_f32(HfDir *m, const char *name, int rank, const int64_t *shape);
// The same for the tensor named prefix + printf(fmt, ...) ("dinov2." +
// "encoder.layer.%d.norm1.weight"); prefix may be "".
const float *hf_f32_named(HfDir *m, const char *prefix, int rank, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
// A shape argument pair for the two above: HF_SHAPE2(D, F) is
// `2, (const int64_t[]){D, F}`.
#define HF_SHAPE1(a) 1, (const int64_t[]){(a)}
#define HF_SHAPE2(a, b) 2, (const int64_t[]){(a), (b)}
#define HF_SHAPE3(a, b, c) 3, (const int64_t[]){(a), (b), (c)}

// 64-bit FNV-1a over every byte of model.safetensors, as "fnv1a64:" and 16
// lower-case hex digits. Computed on the first call (one pass over the file).
const char *hf_digest(HfDir *m);

#endif
