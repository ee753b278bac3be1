// hf.c — Hugging Face model directories: config.json and model.safetensors (hf.h).
//
// The safetensors header is hostile input until proven otherwise: every
// element and byte count is computed with overflow checks, every dtype must
// be one the format defines, and the tensors' data_offsets must tile the data
// section exactly (sorted, no overlap, no gap, nothing after the last), as the
// reference implementation requires; only then is any tensor read.
#define _POSIX_C_SOURCE 200809L // fstat, mmap, open
#include "stsae/io/hf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"

enum { HF_MAX_RANK = 8 };
#define HF_MAX_HEADER 100000000ull // bytes of JSON header: the format's own limit

typedef struct {
    const char *name; // points into the parsed header
    const char *dtype;
    int rank;
    int64_t shape[HF_MAX_RANK];
    uint64_t begin, end; // byte offsets into the data section
} HfEntry;

struct HfDir {
    char *dir, *config_path, *weights_path;
    cJSON *config;
    cJSON *header;
    const uint8_t *map; // the whole safetensors file
    size_t size;
    const uint8_t *data; // map + 8 + header length
    uint64_t data_size;
    HfEntry *entries;
    int n_entries;
    void **copies; // tensors copied for alignment, freed by hf_close
    int n_copies;
    char digest[32];
};

// "dir/file", or a copy of dir when file is NULL
static char *join(const char *dir, const char *file) {
    size_t n = strlen(dir) + (file ? strlen(file) : 0) + 2;
    char *s = xmalloc(n);
    snprintf(s, n, file ? "%s/%s" : "%s", dir, file);
    return s;
}

// --- config.json ------------------------------------------------------------

static int read_config(HfDir *m, char *err, size_t ecap) {
    size_t n = 0;
    char *buf = path_read_all(m->config_path, &n, err, ecap);
    if (!buf) {
        if (strstr(err, ": cannot open: ")) // one more word for the usual mistake
            snprintf(err + strlen(err), ecap - strlen(err), " (not a Hugging Face model directory?)");
        return -1;
    }
    m->config = cJSON_ParseWithLength(buf, n);
    int rc = 0;
    if (!m->config) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= buf && at <= buf + n ? (long)(at - buf) : -1;
        rc = errorf(err, ecap, "%s: not valid JSON (error near byte %ld)", m->config_path, off);
    } else if (!cJSON_IsObject(m->config)) {
        rc = errorf(err, ecap, "%s: not a JSON object", m->config_path);
    }
    free(buf);
    return rc;
}

// key, or a dotted path into nested objects ("vision_config.hidden_size").
static const cJSON *cfg_item(const HfDir *m, const char *key, int required) {
    const cJSON *v = m->config;
    for (const char *k = key; v;) {
        const char *dot = strchr(k, '.');
        const size_t n = dot ? (size_t)(dot - k) : strlen(k);
        char part[256];
        if (n >= sizeof(part)) die("%s: key '%s' too long", m->config_path, key);
        memcpy(part, k, n);
        part[n] = 0;
        if (!cJSON_IsObject(v)) die("%s: key '%.*s' must be an object", m->config_path, (int)(k - 1 - key), key);
        v = cJSON_GetObjectItemCaseSensitive(v, part);
        if (!dot) break;
        k = dot + 1;
    }
    if (!v && required) die("%s: missing key '%s'", m->config_path, key);
    return v;
}

static int as_int(const HfDir *m, const char *key, const cJSON *v) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 2147483647.0)
        die("%s: key '%s' must be an integer", m->config_path, key);
    return (int)v->valuedouble;
}

static double as_num(const HfDir *m, const char *key, const cJSON *v) {
    if (!cJSON_IsNumber(v)) die("%s: key '%s' must be a number", m->config_path, key);
    return v->valuedouble;
}

static const char *as_str(const HfDir *m, const char *key, const cJSON *v) {
    if (!cJSON_IsString(v)) die("%s: key '%s' must be a string", m->config_path, key);
    return v->valuestring;
}

int hf_cfg_int(const HfDir *m, const char *key) { return as_int(m, key, cfg_item(m, key, 1)); }

int hf_cfg_int_opt(const HfDir *m, const char *key, int def) {
    const cJSON *v = cfg_item(m, key, 0);
    return v ? as_int(m, key, v) : def;
}

double hf_cfg_num(const HfDir *m, const char *key) { return as_num(m, key, cfg_item(m, key, 1)); }

double hf_cfg_num_opt(const HfDir *m, const char *key, double def) {
    const cJSON *v = cfg_item(m, key, 0);
    return v ? as_num(m, key, v) : def;
}

int hf_cfg_bool_opt(const HfDir *m, const char *key, int def) {
    const cJSON *v = cfg_item(m, key, 0);
    if (!v) return def;
    if (!cJSON_IsBool(v)) die("%s: key '%s' must be true or false", m->config_path, key);
    return cJSON_IsTrue(v);
}

const char *hf_cfg_str(const HfDir *m, const char *key) { return as_str(m, key, cfg_item(m, key, 1)); }

const char *hf_cfg_str_opt(const HfDir *m, const char *key, const char *def) {
    const cJSON *v = cfg_item(m, key, 0);
    return v ? as_str(m, key, v) : def;
}

// --- model.safetensors --------------------------------------------------------

// Bits per element of a safetensors dtype (every one the format defines), or 0.
static int dtype_bits(const char *dt) {
    static const struct { const char *name; int bits; } table[] = {
        {"F64", 64},    {"F32", 32},    {"F16", 16},     {"BF16", 16},    {"I64", 64},    {"I32", 32},
        {"I16", 16},    {"I8", 8},      {"U64", 64},     {"U32", 32},     {"U16", 16},    {"U8", 8},
        {"BOOL", 8},    {"F8_E4M3", 8}, {"F8_E5M2", 8},  {"F8_E8M0", 8},  {"C64", 64},    {"F6_E2M3", 6},
        {"F6_E3M2", 6}, {"F4", 4}};
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (!strcmp(dt, table[i].name)) return table[i].bits;
    return 0;
}

// A non-negative integer below 2^53 held by a JSON number, or -1.
static int64_t json_index(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double x = v->valuedouble;
    if (x < 0.0 || x != floor(x) || x >= 9007199254740992.0) return -1;
    return (int64_t)x;
}

static int parse_entry(HfDir *m, const cJSON *item, HfEntry *e, char *err, size_t cap) {
    const char *path = m->weights_path, *name = item->string;
    e->name = name;
    if (!cJSON_IsObject(item)) return errorf(err, cap, "%s: header entry '%s' is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt)) return errorf(err, cap, "%s: tensor '%s' has no dtype string", path, name);
    if (!cJSON_IsArray(sh)) return errorf(err, cap, "%s: tensor '%s' has no shape array", path, name);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return errorf(err, cap, "%s: tensor '%s' has no data_offsets [begin, end]", path, name);
    e->dtype = dt->valuestring;
    const int bits = dtype_bits(e->dtype);
    if (!bits)
        return errorf(err, cap, "%s: tensor '%s' has unknown dtype '%s' (not a safetensors dtype)", path, name,
                      e->dtype);
    e->rank = cJSON_GetArraySize(sh);
    if (e->rank > HF_MAX_RANK)
        return errorf(err, cap, "%s: tensor '%s' has %d dimensions (at most %d)", path, name, e->rank, HF_MAX_RANK);
    uint64_t numel = 1, nbits;
    for (int i = 0; i < e->rank; i++) {
        e->shape[i] = json_index(cJSON_GetArrayItem(sh, i));
        if (e->shape[i] < 0)
            return errorf(err, cap, "%s: tensor '%s': shape entry %d is not an integer 0 .. 2^53", path, name, i);
        if (__builtin_mul_overflow(numel, (uint64_t)e->shape[i], &numel))
            return errorf(err, cap, "%s: tensor '%s': its shape's element count overflows 64 bits", path, name);
    }
    if (__builtin_mul_overflow(numel, (uint64_t)bits, &nbits))
        return errorf(err, cap, "%s: tensor '%s': %llu elements of %s: the byte count overflows 64 bits", path, name,
                      (unsigned long long)numel, e->dtype);
    if (nbits % 8)
        return errorf(err, cap, "%s: tensor '%s': %llu elements of %s do not fill whole bytes", path, name,
                      (unsigned long long)numel, e->dtype);
    const uint64_t need = nbits / 8;
    int64_t b = json_index(cJSON_GetArrayItem(off, 0)), en = json_index(cJSON_GetArrayItem(off, 1));
    if (b < 0 || en < b)
        return errorf(err, cap, "%s: tensor '%s' has invalid data_offsets (two integers 0 .. 2^53, begin <= end)", path,
                      name);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    if (e->end > m->data_size)
        return errorf(err, cap,
                      "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data (%llu bytes; "
                      "truncated file?)",
                      path, name, (unsigned long long)e->begin, (unsigned long long)e->end,
                      (unsigned long long)m->data_size);
    if (e->end - e->begin != need)
        return errorf(err, cap, "%s: tensor '%s': data_offsets span %llu bytes, but %s of that shape needs %llu", path,
                      name, (unsigned long long)(e->end - e->begin), e->dtype, (unsigned long long)need);
    return 0;
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp((*(const HfEntry *const *)a)->name, (*(const HfEntry *const *)b)->name);
}

static int cmp_entry_offsets(const void *a, const void *b) {
    const HfEntry *x = *(const HfEntry *const *)a, *y = *(const HfEntry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

// No name twice; the data_offsets tile [0, data_size) exactly.
static int check_layout(const HfDir *m, char *err, size_t cap) {
    const char *path = m->weights_path;
    const int n = m->n_entries;
    const HfEntry **ord = xmalloc(sizeof(HfEntry *) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) ord[i] = &m->entries[i];
    qsort(ord, (size_t)n, sizeof(HfEntry *), cmp_entry_name);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++)
        if (!strcmp(ord[i]->name, ord[i - 1]->name))
            rc = errorf(err, cap, "%s: tensor '%s' is listed twice in the header", path, ord[i]->name);
    if (rc == 0) qsort(ord, (size_t)n, sizeof(HfEntry *), cmp_entry_offsets);
    uint64_t at = 0; // where the data covered so far ends
    for (int i = 0; i < n && rc == 0; i++) {
        const HfEntry *e = ord[i];
        if (e->begin < at)
            rc = errorf(err, cap, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu]: their data_offsets overlap",
                        path, ord[i - 1]->name, (unsigned long long)ord[i - 1]->begin,
                        (unsigned long long)ord[i - 1]->end, e->name, (unsigned long long)e->begin,
                        (unsigned long long)e->end);
        else if (e->begin > at)
            rc = errorf(
                err, cap,
                "%s: no tensor holds data bytes [%llu, %llu) (before tensor '%s'): data_offsets must leave no gap",
                path, (unsigned long long)at, (unsigned long long)e->begin, e->name);
        at = e->end;
    }
    if (rc == 0 && at != m->data_size)
        rc = errorf(
            err, cap,
            "%s: %llu bytes after the last tensor%s%s%s (the data section holds %llu; trailing bytes are not allowed)",
            path, (unsigned long long)(m->data_size - at), n ? " ('" : "", n ? ord[n - 1]->name : "", n ? "')" : "",
            (unsigned long long)m->data_size);
    free(ord);
    return rc;
}

static int read_weights(HfDir *m, char *err, size_t cap) {
    const char *path = m->weights_path;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return errorf(err, cap, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        const int why = errno;
        close(fd);
        return errorf(err, cap, "%s: cannot stat: %s", path, strerror(why));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return errorf(err, cap, "%s: not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return errorf(err, cap, "%s: %lld bytes, too short for a safetensors header (truncated file?)", path,
                      (long long)st.st_size);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_errno = errno;
    close(fd);
    if (p == MAP_FAILED)
        return errorf(err, cap, "%s: cannot map %lld bytes: %s", path, (long long)st.st_size, strerror(map_errno));
    m->map = p; // hf_close unmaps it, whatever fails below
    m->size = (size_t)st.st_size;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | m->map[i];
    if (hlen > m->size - 8)
        return errorf(err, cap, "%s: header length %llu runs past the end of the file (%zu bytes; truncated file?)",
                      path, (unsigned long long)hlen, m->size);
    if (hlen > HF_MAX_HEADER)
        return errorf(err, cap, "%s: header length %llu is over the format's limit of %llu bytes", path,
                      (unsigned long long)hlen, HF_MAX_HEADER);
    m->data = m->map + 8 + hlen;
    m->data_size = m->size - 8 - hlen;
    m->header = cJSON_ParseWithLength((const char *)m->map + 8, (size_t)hlen);
    if (!m->header || !cJSON_IsObject(m->header))
        return errorf(err, cap, "%s: the header is not a valid JSON object", path);
    int n = 0;
    for (const cJSON *it = m->header->child; it; it = it->next) n++;
    m->entries = xcalloc((size_t)n, sizeof(HfEntry));
    for (const cJSON *it = m->header->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) {
            if (!cJSON_IsObject(it)) return errorf(err, cap, "%s: the header's '__metadata__' is not an object", path);
            continue;
        }
        if (parse_entry(m, it, &m->entries[m->n_entries++], err, cap) != 0) return -1;
    }
    return check_layout(m, err, cap);
}

HfDir *hf_try_open(const char *dir, char *err, size_t cap) {
    HfDir *m = xcalloc(1, sizeof(HfDir));
    m->dir = join(dir, NULL);
    m->config_path = join(dir, "config.json");
    m->weights_path = join(dir, "model.safetensors");
    if (read_config(m, err, cap) != 0 || read_weights(m, err, cap) != 0) {
        hf_close(m);
        return NULL;
    }
    return m;
}

HfDir *hf_open(const char *dir) {
    char err[8192]; // two paths and a tensor name fit
    HfDir *m = hf_try_open(dir, err, sizeof(err));
    if (!m) die("%s", err);
    return m;
}

void hf_close(HfDir *m) {
    if (!m) return;
    for (int i = 0; i < m->n_copies; i++) free(m->copies[i]);
    free(m->copies);
    free(m->entries);
    cJSON_Delete(m->header);
    cJSON_Delete(m->config);
    if (m->map) munmap((void *)m->map, m->size);
    free(m->dir);
    free(m->config_path);
    free(m->weights_path);
    free(m);
}

const char *hf_path(const HfDir *m) { return m->dir; }
const char *hf_config_path(const HfDir *m) { return m->config_path; }
const char *hf_weights_path(const HfDir *m) { return m->weights_path; }

static const HfEntry *find(const HfDir *m, const char *name) {
    for (int i = 0; i < m->n_entries; i++)
        if (!strcmp(m->entries[i].name, name)) return &m->entries[i];
    return NULL;
}

int hf_has(const HfDir *m, const char *name) { return find(m, name) != NULL; }

static void shape_text(char *out, size_t cap, int rank, const int64_t *shape) {
    size_t k = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < rank && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(out + k, cap - k, "]");
}

const float *hf_f32_named(HfDir *m, const char *prefix, int rank, const int64_t *shape, const char *fmt, ...) {
    char name[512];
    const int k = snprintf(name, sizeof(name), "%s", prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + k, sizeof(name) - (size_t)k, fmt, ap);
    va_end(ap);
    return hf_f32(m, name, rank, shape);
}

const float *hf_f32(HfDir *m, const char *name, int rank, const int64_t *shape) {
    const HfEntry *e = find(m, name);
    if (!e) die("%s: missing tensor '%s'", m->weights_path, name);
    if (strcmp(e->dtype, "F32") != 0)
        die("%s: tensor '%s' has dtype %s, expected F32", m->weights_path, name, e->dtype);
    int same = e->rank == rank;
    for (int i = 0; same && i < rank; i++) same = e->shape[i] == shape[i];
    if (!same) {
        char got[160], want[160];
        shape_text(got, sizeof(got), e->rank, e->shape);
        shape_text(want, sizeof(want), rank, shape);
        die("%s: tensor '%s' has shape %s, expected %s from %s", m->weights_path, name, got, want,
            m->config_path);
    }
    const uint8_t *p = m->data + e->begin;
    if ((uintptr_t)p % sizeof(float) == 0) return (const float *)p;
    void *copy = xmalloc((size_t)(e->end - e->begin));
    memcpy(copy, p, (size_t)(e->end - e->begin));
    m->copies = xrealloc(m->copies, sizeof(void *) * (size_t)(m->n_copies + 1));
    m->copies[m->n_copies++] = copy;
    return copy;
}

const char *hf_digest(HfDir *m) {
    if (!m->digest[0]) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < m->size; i++) h = (h ^ m->map[i]) * 0x100000001b3ull;
        snprintf(m->digest, sizeof(m->digest), "fnv1a64:%016llx", (unsigned long long)h);
    }
    return m->digest;
}
