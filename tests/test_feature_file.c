// test_feature_file.c — features_open (features.h) on feature files written
// here with the HDF5 C API, good and hostile:
//   good: IEEE float16 little- and big-endian features open and read back
//   exactly; attributes stored as int64, int32 or whole doubles; root
//   attribute format_version 1, or none (files written before it existed);
//   refused, each with one message naming the file, the dataset or attribute
//   and what was found: bfloat16, float32 and int16 features (the type found
//   is named); a 3-D features dataset (its rank and real dims, not
//   "0 x 0 x 0 x 0"); attributes that disagree with the dataset's shape;
//   H x W overflowing 32 bits (65536 x 65537, which an int product wraps to
//   65536 = N); T x N x d per clip past 2^31 - 1 values; an attribute that is a
//   string; /labels stored as float; /clip_ids with fewer entries than clips
//   (then features_close must not run past them); more than
//   INPUTS_MAX_LABELS label names; a missing file (the system's reason);
//   format_version 2 ("FILE: format_version 2, this stsae reads 1"), 0, and
//   a string format_version.
// Usage: test_feature_file DIR (a scratch directory). Prints "N passed, M
// failed"; exits 1 on any failure.
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/io/features.h"
#include "stsae/io/h5io.h"
#include "stsae/io/inputs.h"

#include "expect.h"

static char dir[512];

enum { F16LE, F16BE, BF16, F32, I16 };

typedef struct {
    int clips, T, H, W, N, d;    // attributes (N: as written, may differ from H * W)
    hsize_t dims[4];              // the features dataset's shape; rank 4 unless rank3
    int rank3;                    // write a 3-D features dataset
    int type;                     // F16LE ...
    int write_data;               // write values (small files only)
    int string_T;                 // attribute T as a string
    int float_labels;             // /labels as float32
    int n_ids;                    // entries of /clip_ids
    int n_names;                  // entries of /label_names
    int version;                  // root attribute format_version (int64); 0: none
    int string_version;           // format_version as the string "1"
} Spec;

static Spec good(void) {
    Spec s = {.clips = 3, .T = 2, .H = 2, .W = 3, .N = 6, .d = 4, .type = F16LE, .write_data = 1, .n_ids = 3,
              .n_names = 2};
    return s;
}

static hid_t feature_type(int type) {
    hid_t t;
    switch (type) {
    case F16BE:
        t = features_half_type();
        H5Tset_order(t, H5T_ORDER_BE);
        return t;
    case BF16: // bfloat16: float32's sign and exponent, 7 mantissa bits
        t = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(t, 15, 7, 8, 0, 7);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 127);
        return t;
    case F32: return H5Tcopy(H5T_IEEE_F32LE);
    case I16: return H5Tcopy(H5T_STD_I16LE);
    default: return features_half_type();
    }
}

static void attr_i64(hid_t f, const char *name, long long v) {
    hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    H5Sclose(sp);
}

static void write_1d(hid_t f, const char *name, hid_t ftype, hid_t mtype, const void *buf, hsize_t n) {
    hid_t sp = H5Screate_simple(1, &n, NULL), ds = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    H5Sclose(sp);
}

// Writes the file; returns its path (static).
static const char *write_features(const char *name, const Spec *s) {
    static char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        printf("cannot create %s\n", path);
        exit(1);
    }
    if (s->version) attr_i64(f, "format_version", s->version);
    if (s->string_version) h5_set_attr_str(f, "format_version", "1");
    const char *an[] = {"T", "H", "W", "N", "d"};
    const int av[] = {s->T, s->H, s->W, s->N, s->d};
    for (int i = 0; i < 5; i++) {
        if (i == 0 && s->string_T) {
            h5_set_attr_str(f, "T", "4");
            continue;
        }
        attr_i64(f, an[i], av[i]);
    }
    hsize_t dims[4] = {(hsize_t)s->clips, (hsize_t)s->T, (hsize_t)s->N, (hsize_t)s->d};
    if (s->dims[0]) memcpy(dims, s->dims, sizeof(dims));
    hid_t g = H5Gcreate2(f, "features", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    hid_t sp = H5Screate_simple(s->rank3 ? 3 : 4, dims, NULL), t = feature_type(s->type);
    hid_t ds = H5Dcreate2(f, "/features/layer_00", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0) {
        printf("cannot create the features of %s\n", path);
        exit(1);
    }
    if (s->write_data) {
        const size_t n = (size_t)dims[0] * dims[1] * dims[2] * (s->rank3 ? 1 : dims[3]);
        float *x = malloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++) x[i] = (float)((int)(i % 23) - 11) * 0.25f; // exact in every type
        H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
        free(x);
    }
    H5Dclose(ds);
    H5Tclose(t);
    H5Sclose(sp);
    int32_t lab[64];
    float flab[64];
    uint8_t one[64], zero[64];
    char *ids[64];
    for (int i = 0; i < 64; i++) {
        lab[i] = i % 2;
        flab[i] = 0.5f + (float)(i % 2);
        one[i] = 1, zero[i] = 0;
        ids[i] = malloc(16);
        snprintf(ids[i], 16, "clip%02d", i);
    }
    const int nc = s->clips < 64 ? s->clips : 64;
    if (s->float_labels) write_1d(f, "labels", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, flab, (hsize_t)nc);
    else write_1d(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, lab, (hsize_t)nc);
    write_1d(f, "split", H5T_STD_U8LE, H5T_NATIVE_UINT8, zero, (hsize_t)nc);
    write_1d(f, "done", H5T_STD_U8LE, H5T_NATIVE_UINT8, one, (hsize_t)nc);
    h5_write_strings(f, "clip_ids", ids, (size_t)s->n_ids);
    char **names = malloc(sizeof(char *) * (size_t)s->n_names);
    for (int i = 0; i < s->n_names; i++) names[i] = i < 64 ? ids[i] : ids[63];
    h5_write_strings(f, "label_names", names, (size_t)s->n_names);
    free(names);
    for (int i = 0; i < 64; i++) free(ids[i]);
    H5Fclose(f);
    return path;
}

// features_open must fail with a message holding every one of words[] (NULL-terminated).
static void expect_refused(const char *name, const Spec *s, const char *const *words, const char *what) {
    const char *path = write_features(name, s);
    FeatureFile ff;
    char err[4096] = "";
    int rc = features_open(&ff, path, 0, err, sizeof(err));
    features_close(&ff);
    int ok = rc != 0 && strstr(err, path);
    for (int i = 0; words[i]; i++) ok = ok && strstr(err, words[i]);
    expect(ok, what);
    if (!ok) {
        printf("     rc %d, got '%s'\n     want words:", rc, err);
        for (int i = 0; words[i]; i++) printf(" '%s'", words[i]);
        printf("\n");
    } else {
        printf("ok   %-44s %s\n", what, err + strlen(dir) + 1);
    }
}

static void test_good(int type, int version, const char *what) {
    Spec s = good();
    s.type = type;
    s.version = version;
    const char *path = write_features("good.h5", &s);
    FeatureFile ff;
    char err[4096] = "";
    int rc = features_open(&ff, path, 0, err, sizeof(err));
    expect(rc == 0 && ff.n_clips == 3 && ff.T == 2 && ff.N == 6 && ff.d == 4 && ff.n_label_names == 2, what);
    if (rc != 0) {
        printf("     %s\n", err);
        features_close(&ff);
        return;
    }
    uint16_t h[48];
    float x[48];
    features_read_clip(&ff, 1, h);
    half_to_float(h, x, 48);
    int same = 1;
    for (size_t i = 0; i < 48; i++) same &= x[i] == (float)((int)((48 + i) % 23) - 11) * 0.25f;
    expect(same, "clip 1 reads back exactly");
    features_close(&ff);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_feature_file DIR\n");
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s", argv[1]);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    test_good(F16LE, 0, "IEEE float16 little-endian opens");
    test_good(F16BE, 0, "IEEE float16 big-endian opens");
    test_good(F16LE, FEATURES_FORMAT_VERSION, "format_version 1 opens");

    // a layout this stsae does not know is refused, naming both versions
    Spec v = good();
    v.version = 2;
    expect_refused("version2.h5", &v, (const char *[]){"format_version 2, this stsae reads 1", NULL},
                   "format_version 2 refused, both versions named");
    v.version = -1; // attr_i64 writes it as is: not 0, so present
    expect_refused("version_neg.h5", &v, (const char *[]){"format_version -1, this stsae reads 1", NULL},
                   "format_version -1 refused");
    v = good();
    v.string_version = 1;
    expect_refused("version_str.h5", &v, (const char *[]){"'format_version'", "a string", "one integer", NULL},
                   "format_version a string refused");

    Spec s = good();
    s.type = BF16;
    expect_refused("bf16.h5", &s, (const char *[]){"'/features/layer_00'", "bfloat16", "IEEE float16", NULL},
                   "bfloat16 features refused, type named");
    s.type = F32;
    expect_refused("f32.h5", &s, (const char *[]){"'/features/layer_00'", "float32", "IEEE float16", NULL},
                   "float32 features refused, type named");
    s.type = I16;
    expect_refused("i16.h5", &s, (const char *[]){"'/features/layer_00'", "int16", NULL},
                   "int16 features refused, type named");

    s = good();
    s.rank3 = 1;
    s.dims[0] = 3, s.dims[1] = 2, s.dims[2] = 24;
    expect_refused("rank3.h5", &s, (const char *[]){"'/features/layer_00'", "3 dimensions", "3 x 2 x 24", NULL},
                   "3-D features: rank and real dims named");

    s = good();
    s.dims[0] = 3, s.dims[1] = 5, s.dims[2] = 6, s.dims[3] = 4;
    expect_refused("shape.h5", &s, (const char *[]){"'/features/layer_00'", "3 x 5 x 6 x 4", "T = 2", NULL},
                   "attribute T disagrees with the dataset's shape");

    // H x W = 65536 x 65537 = 2^32 + 65536: an int product wraps to 65536 = N
    s = good();
    s.clips = 1, s.T = 1, s.H = 65536, s.W = 65537, s.N = 65536, s.d = 1, s.write_data = 0, s.n_ids = 1;
    expect_refused("hw.h5", &s, (const char *[]){"N = 65536", "65536 x 65537", NULL}, "H x W past 2^32 refused");

    // T x N x d = 10^6 x 1000 x 1000 = 10^12 values per clip (no data written: the file stays small)
    s = good();
    s.clips = 1, s.T = 1000000, s.H = 10, s.W = 100, s.N = 1000, s.d = 1000, s.write_data = 0, s.n_ids = 1;
    expect_refused("tnd.h5", &s, (const char *[]){"'/features/layer_00'", "1000000000000 values per clip", NULL},
                   "T x N x d past 2^31 - 1 refused");

    s = good();
    s.string_T = 1;
    expect_refused("attr_str.h5", &s, (const char *[]){"attribute 'T'", "string", NULL}, "attribute T a string refused");

    s = good();
    s.float_labels = 1;
    expect_refused("flab.h5", &s, (const char *[]){"'/labels'", "float32", NULL}, "/labels stored as float refused");

    s = good();
    s.n_ids = 1;
    expect_refused("ids.h5", &s, (const char *[]){"'/clip_ids'", "1 entries", "3 clips", NULL},
                   "/clip_ids shorter than the clips refused (and closed safely)");

    s = good();
    s.n_names = INPUTS_MAX_LABELS + 1;
    expect_refused("names.h5", &s, (const char *[]){"'/label_names'", "65537", NULL},
                   "more than INPUTS_MAX_LABELS label names refused");

    FeatureFile ff;
    char err[4096] = "", path[1024];
    snprintf(path, sizeof(path), "%s/nonexistent.h5", dir);
    int rc = features_open(&ff, path, 0, err, sizeof(err));
    features_close(&ff);
    expect(rc != 0 && strstr(err, path) && strstr(err, "No such file or directory"),
           "missing file: the system's reason");
    if (rc == 0 || !strstr(err, "No such file")) printf("     got '%s'\n", err);

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
