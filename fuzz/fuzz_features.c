// fuzz_features.c — libFuzzer target, structure-aware: the feature-file
// reader of features.h (features_open, features_clips, features_read_clip,
// features_close).
//
// In:  not a file: a description of one (fuzz_h5.h). The input decides what a
//      valid HDF5 file claims: the root attributes T, H, W, N, d (present or
//      not, any integer or float type, strings, pairs, empty; values small,
//      on the 2^31 and 2^32 edges, NaN, huge), /features/layer_LL (present,
//      the layer asked for or another, rank 0..5, dims agreeing with the
//      attributes or not, float16 either byte order, bfloat16, float32,
//      integers or a float whose bit fields the input chooses, chunked or
//      contiguous, written from the input's bytes or left unwritten so that a
//      few bytes claim 2^40 values), /labels, /split, /done (types, ranks,
//      lengths, values), /clip_ids and /label_names (variable or fixed-length
//      strings of any size, any count). The target writes that file with the
//      HDF5 API to a scratch file on /dev/shm, then runs the reader on it.
// Out: nothing; a crash, a sanitizer report, a leak, an allocation past
//      libFuzzer's -malloc_limit_mb (a file of a few KB must not make the
//      reader allocate gigabytes), a die() where features.h promises a
//      returned error, or a failed check is a finding.
//
// Checks: a refused file leaves nothing open and nothing allocated (the
// target does not call features_close then: LeakSanitizer and HDF5's open-
// object count see what is left); an accepted one has dimensions >= 1 with
// N = H x W and T x N x d within FEATURES_MAX_CLIP_VALUES, labels -1 ..
// names-1, splits 0 or 1, an id per clip; features_clips lists valid
// indices in order; features_read_clip (its documented error path is die(),
// run under FUZZ_TRY) returns no NaN or Inf, and exactly the float16 bits the
// input wrote (byte-swapped for big-endian files: HDF5 converts).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_h5.h"
#include "stsae/io/features.h"

enum { MAX_WRITE = 4096 }; // elements written per dataset; more are left unwritten

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

typedef struct {
    FuzzBytes *b;
    int n_names;
    int kind; // 0 labels, 1 split / done
} IntCtx;

static double int_value(size_t i, void *vc) {
    (void)i;
    IntCtx *c = vc;
    const int k = fb_u8(c->b);
    if (k >= 250) return fb_double(c->b);
    return c->kind == 0 ? (double)(k % (c->n_names + 2)) - 1 : (double)(k % 3 == 2 ? k % 5 : k % 2);
}

typedef struct {
    FuzzBytes *b;
    char buf[8][24];
    int k;
} StrCtx;

// Short ids from the input, mostly distinct ("c<i>"), sometimes raw bytes.
static const char *str_value(size_t i, void *vc) {
    StrCtx *c = vc;
    char *s = c->buf[c->k++ & 7];
    if (fb_chance(c->b, 16)) {
        const size_t n = fb_bytes(c->b, s, (size_t)fb_pick(c->b, 23));
        s[n] = 0;
        return fb_chance(c->b, 8) ? NULL : s;
    }
    snprintf(s, 24, "c%zu", i);
    return s;
}

// A claimed dimension: mostly small and positive, sometimes anything.
static uint64_t claim(FuzzBytes *b) { return fb_chance(b, 216) ? 1 + (uint64_t)fb_pick(b, 4) : fb_count(b); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzBytes in = {data, size}, *b = &in;
    const int layer = fb_pick(b, 3);
    const char *path = fuzz_path("features.h5");
    hid_t f = fh_create(b, path);

    // what the file claims
    const uint64_t clips = claim(b), T = claim(b), H = claim(b), W = claim(b), d = claim(b);
    const uint64_t N = fb_chance(b, 232) ? H * W : fb_count(b);
    const char *names[5] = {"T", "H", "W", "N", "d"};
    const uint64_t vals[5] = {T, H, W, N, d};
    for (int i = 0; i < 5; i++) fh_attr_num(b, f, names[i], (double)vals[i], H5T_STD_I64LE);
    const int n_names = fb_chance(b, 224) ? 1 + fb_pick(b, 4) : (int)(fb_count(b) % 70000);

    // /features/layer_LL
    char dname[64];
    snprintf(dname, sizeof(dname), "/features/layer_%02d", fb_chance(b, 232) ? layer : fb_pick(b, 3));
    int rank = 4;
    hsize_t dims[H5S_MAX_RANK] = {clips, T, N, d};
    if (fb_chance(b, 24)) {
        rank = fb_pick(b, 6);
        for (int i = 0; i < rank; i++) dims[i] = fb_chance(b, 128) ? dims[i] : fb_count(b);
    }
    hid_t ftype = fh_num_type(b, H5T_STD_I8LE); // replaced by float16 below, mostly
    if (fb_chance(b, 224)) {
        H5Tclose(ftype);
        ftype = features_half_type();
        if (fb_chance(b, 64)) H5Tset_order(ftype, H5T_ORDER_BE);
    }
    // IEEE float16 in either byte order: the only type the reader may accept
    hid_t half_le = features_half_type(), half_be = features_half_type();
    H5Tset_order(half_be, H5T_ORDER_BE);
    const int be = H5Tequal(ftype, half_be) > 0, ieee_half = be || H5Tequal(ftype, half_le) > 0;
    H5Tclose(half_le);
    H5Tclose(half_be);
    int have_feat = 0;
    unsigned char *raw = NULL; // the features' bytes as written, when written
    if (fb_chance(b, 8)) {     // a group where the dataset should be
        H5E_BEGIN_TRY {
            hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
            H5Pset_create_intermediate_group(lcpl, 1);
            hid_t g = H5Gcreate2(f, dname, lcpl, H5P_DEFAULT, H5P_DEFAULT);
            if (g >= 0) H5Gclose(g);
            H5Pclose(lcpl);
        }
        H5E_END_TRY;
    } else if (fb_chance(b, 248)) {
        have_feat = fh_dataset(b, f, dname, ftype, rank, dims, NULL, NULL, &raw, MAX_WRITE) == 0;
    }
    H5Tclose(ftype);

    // per-clip tables
    IntCtx ic = {b, n_names, 0};
    const char *tables[3] = {"/labels", "/split", "/done"};
    for (int i = 0; i < 3; i++) {
        if (!fb_chance(b, 248)) continue;
        ic.kind = i > 0;
        hsize_t n[2] = {fb_chance(b, 232) ? clips : fb_count(b), 1};
        hid_t t = fh_num_type(b, i == 0 ? H5T_STD_I32LE : H5T_STD_U8LE);
        fh_dataset(b, f, tables[i], t, fb_chance(b, 8) ? 2 : 1, n, int_value, &ic, NULL, MAX_WRITE);
        H5Tclose(t);
    }
    StrCtx sc = {.b = b};
    if (fb_chance(b, 248))
        fh_strings(b, f, "/clip_ids", fb_chance(b, 232) ? clips : fb_count(b), str_value, &sc, MAX_WRITE);
    if (fb_chance(b, 248)) fh_strings(b, f, "/label_names", (hsize_t)n_names, str_value, &sc, MAX_WRITE);
    if (fb_chance(b, 8)) fh_attr_num(b, f, "extra", 1, H5T_STD_I32LE);
    H5Fclose(f);
    FUZZ_CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "the writer left HDF5 objects open");

    // the reader
    FeatureFile ff;
    char err[8192];
    memset(err, 0x55, sizeof(err));
    if (features_open(&ff, path, layer, err, sizeof(err)) != 0) {
        FUZZ_CHECK(memchr(err, 0, sizeof(err)) && err[0], "features_open failed without a message");
        FUZZ_CHECK(strstr(err, path) != NULL, "the message does not name the file: %s", err);
        FUZZ_CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0,
                   "features_open failed and left %lld HDF5 objects open: %s",
                   (long long)H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), err);
        fuzz_note("refused", err);
        free(raw);
        return 0; // no features_close: a failed open must leave nothing behind
    }
    FUZZ_CHECK(ff.n_clips >= 1 && ff.T >= 1 && ff.H >= 1 && ff.W >= 1 && ff.d >= 1, "accepted dims < 1");
    FUZZ_CHECK((int64_t)ff.N == (int64_t)ff.H * ff.W, "accepted N != H x W");
    const uint64_t per_clip = (uint64_t)ff.T * (uint64_t)ff.N * (uint64_t)ff.d;
    FUZZ_CHECK(per_clip <= FEATURES_MAX_CLIP_VALUES, "accepted %llu values per clip", (unsigned long long)per_clip);
    FUZZ_CHECK(have_feat && ieee_half, "accepted features that are not IEEE float16");
    for (int i = 0; i < ff.n_clips; i++) {
        FUZZ_CHECK(ff.labels[i] >= -1 && ff.labels[i] < ff.n_label_names, "labels[%d] = %d", i, ff.labels[i]);
        FUZZ_CHECK(ff.split[i] <= 1, "split[%d] = %d", i, ff.split[i]);
        FUZZ_CHECK(ff.clip_ids[i] != NULL, "clip %d has no id", i);
    }
    for (int k = 0; k < ff.n_label_names; k++) FUZZ_CHECK(ff.label_names[k] != NULL, "label %d has no name", k);
    for (int which = 0; which < 2; which++) {
        int32_t *sel = NULL;
        const int n = features_clips(&ff, which, &sel);
        FUZZ_CHECK(n >= 0 && n <= ff.n_clips, "features_clips gave %d of %d", n, ff.n_clips);
        for (int i = 0; i < n; i++)
            FUZZ_CHECK(sel[i] >= 0 && sel[i] < ff.n_clips && (i == 0 || sel[i] > sel[i - 1]) &&
                           ff.split[sel[i]] == which && ff.done[sel[i]],
                       "features_clips: entry %d is clip %d", i, sel[i]);
        free(sel);
    }
    // the clips' values: exactly the float16 bits the input wrote, when it wrote them
    if (per_clip <= (1u << 18)) {
        uint16_t *out = malloc(sizeof(uint16_t) * (size_t)per_clip);
        for (int c = 0; c < ff.n_clips && c < 3; c++) {
            int died;
            FUZZ_TRY(died, features_read_clip(&ff, c, out));
            if (died) {
                FUZZ_CHECK(strstr(fuzz_died_msg(), path) != NULL, "features_read_clip died without naming the file");
                continue;
            }
            for (size_t i = 0; i < per_clip; i++) {
                FUZZ_CHECK((out[i] & 0x7c00) != 0x7c00, "features_read_clip returned a NaN or Inf (clip %d)", c);
                if (!raw) continue;
                const unsigned char *w = raw + 2 * ((size_t)c * per_clip + i);
                const uint16_t want = be ? (uint16_t)(w[0] << 8 | w[1]) : (uint16_t)(w[0] | w[1] << 8);
                FUZZ_CHECK(out[i] == want, "clip %d value %zu: read 0x%04x, written 0x%04x", c, i, out[i], want);
            }
        }
        free(out);
    }
    free(raw);
    features_close(&ff);
    FUZZ_CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0, "features_close left HDF5 objects open");
    return 0;
}
