// features.c — reading the feature file of SPEC §3 (features.h); the
// format_version check the writer (features_write.c) shares.
//
// features_open trusts nothing the file states: every dimension is read as a
// 64-bit integer and every product (H x W, T x N x d, clips x that) is formed
// in 64 bits against the limits of features.h before anything is sized by it;
// datasets are checked for rank, shape and element type (the features must be
// IEEE float16: HDF5 would otherwise convert bfloat16 or float32 silently) and
// counted before they are read, and a count must be backed by bytes the file
// stores (`stored`): what is allocated is in proportion to the file, not to
// its claims (fuzz/fuzz_features.c writes files that lie, to check this).
// A failed open releases everything it had made.
#define _POSIX_C_SOURCE 200809L // strdup, strndup
#include "stsae/io/features.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

#include "stsae/base/common.h"
#include "stsae/io/h5io.h"
#include "stsae/io/inputs.h" // INPUTS_MAX_LABELS

enum { MAX_STRING = 65536 }; // bytes of one fixed-length string of /clip_ids or /label_names
enum { VLEN_REF = 4 };        // bytes a variable-length string takes in its dataset, at least (a heap reference)

hid_t features_half_type(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10); // sign at 15, exponent at 10 (5 bits), mantissa at 0 (10 bits)
    H5Tset_size(t, 2);                  // after set_fields: the fields must fit
    H5Tset_ebias(t, 15);
    return t;
}

static float h2f(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (e == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); // Inf, NaN
    } else if (e == 0) {
        if (!mant) {
            bits = sign;
        } else { // subnormal half: normalize
            int shift = 0;
            uint32_t mm = mant;
            while (!(mm & 0x400)) mm <<= 1, shift++;
            bits = sign | ((uint32_t)(127 - 15 - shift + 1) << 23) | ((mm & 0x3ff) << 13);
        }
    } else {
        bits = sign | ((e + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0); // Inf, NaN
    if (ax >= 0x477ff000u) return sign | 0x7c00;                                   // rounds past 65504
    if (ax < 0x38800000u) {                                                        // subnormal or zero
        if (ax < 0x33000000u) return sign;                                         // below half the smallest
        const uint32_t e = ax >> 23, mant = (ax & 0x7fffff) | 0x800000;
        const uint32_t shift = 126 - e; // 14 + (112 - e)
        uint32_t v = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (v & 1))) v++;
        return sign | (uint16_t)v;
    }
    uint32_t v = ((ax >> 13) - (112u << 10)); // rebias exponent 127 -> 15
    const uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (v & 1))) v++;
    return sign | (uint16_t)v;
}

void half_to_float(const uint16_t *h, float *out, size_t n) {
    size_t i = 0;
#ifdef __F16C__
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
#endif
    for (; i < n; i++) out[i] = h2f(h[i]);
}

void float_to_half(const float *in, uint16_t *h, size_t n) {
    size_t i = 0;
#ifdef __F16C__
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) h[i] = f2h(in[i]);
}

// 1 when t is IEEE binary16 (either byte order): what SPEC §3 stores.
static int is_ieee_half(hid_t t) {
    size_t spos, epos, esize, mpos, msize;
    if (H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) != 2 || H5Tget_precision(t) != 16 || H5Tget_offset(t) != 0 ||
        H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0)
        return 0;
    const H5T_order_t o = H5Tget_order(t);
    return spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 && H5Tget_ebias(t) == 15 &&
           H5Tget_norm(t) == H5T_NORM_IMPLIED && (o == H5T_ORDER_LE || o == H5T_ORDER_BE);
}

// The type of a dataset or attribute in words: "IEEE float16", "bfloat16",
// "float32", "int16", "a string", or what an odd float is made of.
static void type_text(hid_t t, char *out, size_t cap) {
    const H5T_class_t c = H5Tget_class(t);
    const size_t size = H5Tget_size(t);
    if (c == H5T_FLOAT) {
        size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
        H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize);
        const size_t bias = H5Tget_ebias(t);
        const char *order = H5Tget_order(t) == H5T_ORDER_BE ? " big-endian" : "";
        if (is_ieee_half(t)) snprintf(out, cap, "IEEE float16%s", order);
        else if (size == 2 && esize == 8 && msize == 7 && bias == 127) snprintf(out, cap, "bfloat16%s", order);
        else if (size == 4 && esize == 8 && msize == 23 && bias == 127) snprintf(out, cap, "float32%s", order);
        else if (size == 8 && esize == 11 && msize == 52 && bias == 1023) snprintf(out, cap, "float64%s", order);
        else
            snprintf(out, cap, "a %zu-byte float with %zu exponent bits (bias %zu) and %zu mantissa bits%s", size,
                     esize, bias, msize, order);
    } else if (c == H5T_INTEGER) {
        snprintf(out, cap, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", 8 * size);
    } else {
        static const char *const names[] = {"", "", "time", "a string", "a bitfield", "opaque data", "a compound",
                                            "a reference", "an enum", "variable-length data", "an array"};
        const int k = (int)c;
        snprintf(out, cap, "%s", k >= 2 && k <= 10 && names[k][0] ? names[k] : "an HDF5 type of unknown class");
    }
}

// "a x b x c" (at most H5S_MAX_RANK dims), or "a scalar".
static void dims_text(int rank, const hsize_t *dims, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    if (rank <= 0) snprintf(out, cap, "a scalar");
    for (int i = 0; i < rank && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%llu", i ? " x " : "", (unsigned long long)dims[i]);
}

// Root attribute `name`: one integer (any integer type, or a float holding a
// whole number) in 1 .. INT32_MAX; 0, or -1 with "FILE: root attribute ..." in err.
static int attr_dim(hid_t f, const char *path, const char *name, int *out, char *err, size_t cap) {
    if (H5Aexists(f, name) <= 0) return errorf(err, cap, "%s: root attribute '%s' is missing", path, name);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) return errorf(err, cap, "%s: cannot open root attribute '%s'", path, name);
    hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
    const hssize_t n = H5Sget_simple_extent_npoints(sp);
    const H5T_class_t c = H5Tget_class(t);
    char tt[160];
    type_text(t, tt, sizeof(tt));
    long long v = 0;
    int rc = 0;
    if (n != 1) {
        rc = errorf(err, cap, "%s: root attribute '%s' holds %lld values, expected one positive integer", path, name,
                    (long long)n);
    } else if (c == H5T_INTEGER) {
        if (H5Tget_sign(t) == H5T_SGN_NONE) {
            unsigned long long u = 0;
            rc = H5Aread(a, H5T_NATIVE_ULLONG, &u) < 0 ? -1 : 0;
            v = u > (unsigned long long)LLONG_MAX ? LLONG_MAX : (long long)u;
        } else {
            rc = H5Aread(a, H5T_NATIVE_LLONG, &v) < 0 ? -1 : 0;
        }
        if (rc) errorf(err, cap, "%s: cannot read root attribute '%s' (%s)", path, name, tt);
    } else if (c == H5T_FLOAT) {
        double x = 0;
        rc = H5Aread(a, H5T_NATIVE_DOUBLE, &x) < 0 ? -1 : 0;
        if (rc) errorf(err, cap, "%s: cannot read root attribute '%s' (%s)", path, name, tt);
        else if (x != floor(x) || !(fabs(x) < 9e18))
            rc = errorf(err, cap, "%s: root attribute '%s' = %.17g is not a whole number", path, name, x);
        else
            v = (long long)x;
    } else {
        rc = errorf(err, cap, "%s: root attribute '%s' is %s, expected a positive integer", path, name, tt);
    }
    if (rc == 0 && (v < 1 || v > INT32_MAX))
        rc = errorf(err, cap, "%s: root attribute '%s' = %lld is not in 1 .. %d", path, name, v, INT32_MAX);
    H5Tclose(t);
    H5Sclose(sp);
    H5Aclose(a);
    if (rc == 0) *out = (int)v;
    return rc;
}

int features_check_version(hid_t f, const char *path, char *err, size_t cap) {
    if (H5Aexists(f, "format_version") <= 0) return 0; // written before the attribute existed: version 1
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    if (a < 0) return errorf(err, cap, "%s: cannot open root attribute 'format_version'", path);
    hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
    const hssize_t n = H5Sget_simple_extent_npoints(sp);
    char tt[160];
    type_text(t, tt, sizeof(tt));
    long long v = 0;
    int rc = 0;
    if (H5Tget_class(t) != H5T_INTEGER)
        rc = errorf(err, cap, "%s: root attribute 'format_version' is %s, expected one integer", path, tt);
    else if (n != 1)
        rc = errorf(err, cap, "%s: root attribute 'format_version' holds %lld values, expected one integer", path,
                    (long long)n);
    else if (H5Aread(a, H5T_NATIVE_LLONG, &v) < 0)
        rc = errorf(err, cap, "%s: cannot read root attribute 'format_version' (%s)", path, tt);
    else if (v != FEATURES_FORMAT_VERSION)
        rc = errorf(err, cap, "%s: format_version %lld, this stsae reads %d", path, v, FEATURES_FORMAT_VERSION);
    H5Tclose(t);
    H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

// Opens dataset `name`; -1 with "FILE: ..." in err when it is missing or not a dataset.
static hid_t open_dataset(const FeatureFile *f, const char *name, char *err, size_t cap) {
    if (!h5_exists(f->file, name)) return errorf(err, cap, "%s: missing dataset '%s'", f->path, name);
    hid_t ds;
    H5E_BEGIN_TRY { ds = H5Dopen2(f->file, name, H5P_DEFAULT); }
    H5E_END_TRY;
    if (ds < 0) return errorf(err, cap, "%s: '%s' is not a dataset", f->path, name);
    return ds;
}

// 1 when dataset ds stores enough bytes for `claimed` bytes of values: all of
// them, or, behind a filter (compression), 1/MAX_RATIO of them. A dataset
// left to its fill value, or a few KB of file claiming 2^31 entries, is
// refused before any buffer is sized by the claim. *have: the bytes stored.
enum { MAX_RATIO = 1032 }; // deflate's best ratio
static int stored(hid_t ds, uint64_t claimed, uint64_t *have) {
    *have = H5Dget_storage_size(ds);
    hid_t dcpl = H5Dget_create_plist(ds);
    const int filtered = dcpl >= 0 && H5Pget_nfilters(dcpl) > 0;
    if (dcpl >= 0) H5Pclose(dcpl);
    return *have >= (filtered ? claimed / MAX_RATIO : claimed);
}

// "FILE: dataset 'NAME' claims N entries of B bytes but stores H bytes ...": -1.
static int not_stored(const FeatureFile *f, const char *name, uint64_t n, uint64_t bytes, uint64_t have, char *err,
                      size_t cap) {
    return errorf(err, cap, "%s: dataset '%s' claims %llu entries of %llu bytes but stores %llu bytes (unwritten or "
                            "truncated? compressed data count at most %d:1)", f->path, name, (unsigned long long)n,
                  (unsigned long long)bytes, (unsigned long long)have, MAX_RATIO);
}

// A 1-D integer dataset of one entry per clip, read as mtype into *buf
// (malloc'ed, elem bytes each, once its shape is checked); 0, or -1 with err.
static int read_1d(const FeatureFile *f, const char *name, hid_t mtype, size_t elem, void **buf, char *err,
                   size_t cap) {
    hid_t ds = open_dataset(f, name, err, cap);
    if (ds < 0) return -1;
    hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds);
    hsize_t dims[H5S_MAX_RANK] = {0};
    const int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
    char tt[160], dt[256];
    type_text(t, tt, sizeof(tt));
    dims_text(rank, dims, dt, sizeof(dt));
    int rc = 0;
    uint64_t have;
    if (rank != 1 || dims[0] != (hsize_t)f->n_clips)
        rc = errorf(err, cap, "%s: dataset '%s' has shape %s, expected one entry per clip (%d)", f->path, name, dt,
                    f->n_clips);
    else if (H5Tget_class(t) != H5T_INTEGER)
        rc = errorf(err, cap, "%s: dataset '%s' holds %s, expected integers", f->path, name, tt);
    else if (!stored(ds, (uint64_t)f->n_clips * H5Tget_size(t), &have))
        rc = not_stored(f, name, (uint64_t)f->n_clips, H5Tget_size(t), have, err, cap);
    if (rc == 0) {
        *buf = xmalloc(elem * (size_t)f->n_clips);
        if (H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) < 0)
            rc = errorf(err, cap, "%s: cannot read dataset '%s'", f->path, name);
    }
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

// A 1-D dataset of strings (variable or fixed length) into *out (n entries,
// each malloc'ed): exactly `want` of them, or (want < 0) at most `most`.
static int read_strings(const FeatureFile *f, const char *name, int want, int most, int *n_out, char ***out, char *err,
                        size_t cap) {
    hid_t ds = open_dataset(f, name, err, cap);
    if (ds < 0) return -1;
    hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds);
    hsize_t dims[H5S_MAX_RANK] = {0};
    const int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
    char tt[160], dt[256];
    type_text(t, tt, sizeof(tt));
    dims_text(rank, dims, dt, sizeof(dt));
    int rc = 0;
    uint64_t have;
    if (rank != 1 || H5Tget_class(t) != H5T_STRING) {
        rc = errorf(err, cap, "%s: dataset '%s' must be a 1-D list of strings (it holds %s, shape %s)", f->path, name,
                    tt, dt);
    } else if (want >= 0 && dims[0] != (hsize_t)want) {
        rc = errorf(err, cap, "%s: dataset '%s' has %llu entries, but '/features/layer_%02d' holds %d clips", f->path,
                    name, (unsigned long long)dims[0], f->layer, want);
    } else if (want < 0 && dims[0] > (hsize_t)most) {
        rc = errorf(err, cap, "%s: dataset '%s' has %llu entries, more than INPUTS_MAX_LABELS (%d)", f->path, name,
                    (unsigned long long)dims[0], most);
    } else if (H5Tis_variable_str(t) <= 0 && H5Tget_size(t) > MAX_STRING) {
        rc = errorf(err, cap, "%s: dataset '%s' holds strings of %zu bytes, more than %d", f->path, name,
                    H5Tget_size(t), MAX_STRING);
    } else if (!stored(ds, (uint64_t)dims[0] * (H5Tis_variable_str(t) > 0 ? VLEN_REF : H5Tget_size(t)), &have)) {
        rc = not_stored(f, name, (uint64_t)dims[0], H5Tis_variable_str(t) > 0 ? VLEN_REF : H5Tget_size(t), have, err,
                        cap);
    } else {
        const int n = (int)dims[0];
        char **s = xcalloc((size_t)n + 1, sizeof(char *));
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Tis_variable_str(t) > 0) {
            H5Tset_size(mt, H5T_VARIABLE);
            char **raw = xcalloc((size_t)n + 1, sizeof(char *));
            if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
                rc = errorf(err, cap, "%s: cannot read dataset '%s'", f->path, name);
            } else {
                for (int i = 0; i < n; i++) s[i] = strdup(raw[i] ? raw[i] : "");
                H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
            }
            free(raw);
        } else {
            const size_t sz = H5Tget_size(t);
            H5Tset_size(mt, sz);
            char *raw = xcalloc((size_t)n * sz + 1, 1);
            if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
                rc = errorf(err, cap, "%s: cannot read dataset '%s'", f->path, name);
            } else {
                for (int i = 0; i < n; i++) s[i] = strndup(raw + (size_t)i * sz, sz);
            }
            free(raw);
        }
        H5Tclose(mt);
        if (rc == 0) {
            *n_out = n;
            *out = s;
        } else {
            for (int i = 0; i < n; i++) free(s[i]);
            free(s);
        }
    }
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

// features_open's checks; on failure f may hold an open file and tables,
// which features_open releases.
static int open_checked(FeatureFile *f, const char *path, int layer, char *err, size_t cap) {
    memset(f, 0, sizeof(*f));
    f->file = f->dset = -1;
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->layer = layer;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        const int why = errno;
        char partial[4200];
        snprintf(partial, sizeof(partial), "%s.partial", path);
        if (access(partial, F_OK) == 0)
            return errorf(err, cap, "%s: not there yet: %s exists, so the extraction has not finished (run stsae extract "
                                  "again to complete it)", path, partial);
        return errorf(err, cap, "%s: cannot open the feature file for reading: %s", path, strerror(why));
    }
    fclose(fp);
    H5E_BEGIN_TRY { f->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f->file < 0) return errorf(err, cap, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
    if (features_check_version(f->file, path, err, cap) != 0) return -1;
    const char *names[] = {"T", "H", "W", "N", "d"};
    int *vals[] = {&f->T, &f->H, &f->W, &f->N, &f->d};
    for (int i = 0; i < 5; i++)
        if (attr_dim(f->file, path, names[i], vals[i], err, cap) != 0) return -1;
    if ((int64_t)f->N != (int64_t)f->H * f->W)
        return errorf(err, cap, "%s: root attributes say N = %d but H x W = %d x %d = %lld", path, f->N, f->H, f->W,
                      (long long)f->H * f->W);

    char dname[64];
    snprintf(dname, sizeof(dname), "/features/layer_%02d", layer);
    if (!h5_exists(f->file, dname)) {
        return errorf(err, cap, "%s: no features of layer %d (dataset '%s'); extract it (extract.layers) or pick another "
                              "train.layer", path, layer, dname);
    }
    if ((f->dset = open_dataset(f, dname, err, cap)) < 0) return -1;
    hid_t sp = H5Dget_space(f->dset), t = H5Dget_type(f->dset);
    hsize_t dims[H5S_MAX_RANK] = {0};
    const int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
    const int is_half = is_ieee_half(t);
    char tt[160], dt[256];
    type_text(t, tt, sizeof(tt));
    dims_text(rank, dims, dt, sizeof(dt));
    H5Sclose(sp);
    H5Tclose(t);
    if (rank != 4)
        return errorf(err, cap, "%s: dataset '%s' has %d dimensions (%s), expected 4: [clips, T, N, d]", path, dname,
                      rank, dt);
    if (dims[1] != (hsize_t)f->T || dims[2] != (hsize_t)f->N || dims[3] != (hsize_t)f->d)
        return errorf(err, cap,
                      "%s: dataset '%s' has shape %s, but the root attributes say [clips, T = %d, N = %d, d = %d]",
                      path, dname, dt, f->T, f->N, f->d);
    if (!is_half)
        return errorf(err, cap, "%s: dataset '%s' holds %s; the features must be IEEE float16 (SPEC §3: convert "
                                "bfloat16 or float32 before writing)", path, dname, tt);
    if (dims[0] < 1) return errorf(err, cap, "%s: dataset '%s' holds no clip", path, dname);
    if (dims[0] > INT32_MAX)
        return errorf(err, cap, "%s: dataset '%s' holds %llu clips, more than %d", path, dname,
                      (unsigned long long)dims[0], INT32_MAX);
    // T, N, d <= INT32_MAX each (attr_dim): T x N fits 64 bits, x d is checked
    uint64_t per_clip, total;
    const int over = __builtin_mul_overflow((uint64_t)f->T * (uint64_t)f->N, (uint64_t)f->d, &per_clip);
    if (over || per_clip > FEATURES_MAX_CLIP_VALUES) {
        char v[32] = "more than 2^64";
        if (!over) snprintf(v, sizeof(v), "%llu", (unsigned long long)per_clip);
        return errorf(err, cap,
                      "%s: dataset '%s': T x N x d = %d x %d x %d = %s values per clip, more than %d "
                      "(FEATURES_MAX_CLIP_VALUES)",
                      path, dname, f->T, f->N, f->d, v, FEATURES_MAX_CLIP_VALUES);
    }
    if (__builtin_mul_overflow(per_clip, (uint64_t)dims[0], &total) || total > (uint64_t)INT64_MAX / 2)
        return errorf(err, cap, "%s: dataset '%s': %llu clips of %llu values overflow 64 bits", path, dname,
                      (unsigned long long)dims[0], (unsigned long long)per_clip);
    f->n_clips = (int)dims[0];

    if (read_1d(f, "/labels", H5T_NATIVE_INT32, sizeof(int32_t), (void **)&f->labels, err, cap) ||
        read_1d(f, "/split", H5T_NATIVE_UINT8, 1, (void **)&f->split, err, cap) ||
        read_1d(f, "/done", H5T_NATIVE_UINT8, 1, (void **)&f->done, err, cap))
        return -1;
    // every clip marked done has its features in the file: so the caller's
    // per-clip buffers (T x N x d values) are backed by data in the file
    uint64_t n_done = 0, have;
    for (int i = 0; i < f->n_clips; i++) n_done += f->done[i] != 0;
    if (!stored(f->dset, n_done * per_clip * 2, &have))
        return errorf(err, cap, "%s: dataset '%s' stores %llu bytes, but %llu clips of %llu float16 values are marked "
                                "done (unwritten or truncated? compressed data count at most %d:1)", path, dname,
                      (unsigned long long)have, (unsigned long long)n_done, (unsigned long long)per_clip, MAX_RATIO);
    int n_ids = 0;
    if (read_strings(f, "/clip_ids", f->n_clips, f->n_clips, &n_ids, &f->clip_ids, err, cap)) return -1;
    if (read_strings(f, "/label_names", -1, INPUTS_MAX_LABELS, &f->n_label_names, &f->label_names, err, cap)) return -1;
    for (int i = 0; i < f->n_clips; i++) {
        if (f->split[i] > 1) return errorf(err, cap, "%s: /split[%d] = %d (0 train, 1 test)", path, i, f->split[i]);
        if (f->labels[i] < -1 || f->labels[i] >= f->n_label_names)
            return errorf(err, cap, "%s: /labels[%d] = %d is not an index of /label_names (%d names; -1: none)", path, i,
                        f->labels[i], f->n_label_names);
    }
    return 0;
}

int features_open(FeatureFile *f, const char *path, int layer, char *err, size_t cap) {
    if (open_checked(f, path, layer, err, cap) == 0) return 0;
    features_close(f); // nothing left open or allocated: callers need not close a file that failed
    return -1;
}

void features_close(FeatureFile *f) {
    if (f->dset >= 0) H5Dclose(f->dset);
    if (f->file >= 0) H5Fclose(f->file);
    for (int i = 0; f->clip_ids && i < f->n_clips; i++) free(f->clip_ids[i]);
    for (int i = 0; f->label_names && i < f->n_label_names; i++) free(f->label_names[i]);
    free(f->clip_ids);
    free(f->label_names);
    free(f->labels);
    free(f->split);
    free(f->done);
    memset(f, 0, sizeof(*f));
    f->file = f->dset = -1;
}

int features_clips(const FeatureFile *f, int which, int32_t **out) {
    int n = 0;
    *out = xmalloc(sizeof(int32_t) * (size_t)f->n_clips);
    for (int i = 0; i < f->n_clips; i++)
        if (f->split[i] == which && f->done[i]) (*out)[n++] = i;
    return n;
}

void features_read_clip(const FeatureFile *f, int clip, uint16_t *out) {
    hsize_t start[4] = {(hsize_t)clip, 0, 0, 0}, count[4] = {1, (hsize_t)f->T, (hsize_t)f->N, (hsize_t)f->d};
    hid_t fs = H5Dget_space(f->dset);
    hid_t ms = H5Screate_simple(4, count, NULL);
    hid_t ht = features_half_type();
    herr_t rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (rc >= 0) rc = H5Dread(f->dset, ht, ms, fs, H5P_DEFAULT, out);
    H5Tclose(ht);
    H5Sclose(ms);
    H5Sclose(fs);
    if (rc < 0) {
        char why[1024];
        h5_error_text(why, sizeof(why));
        die("%s: cannot read clip %d ('%s') of layer %d: %s", f->path, clip, f->clip_ids[clip], f->layer, why);
    }
    // a half is NaN or Inf exactly when its exponent bits are all ones
    const size_t n = (size_t)f->T * f->N * f->d;
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (size_t i = 0; i < n; i++) bad |= (out[i] & 0x7c00) == 0x7c00;
    if (bad) {
        size_t i = 0;
        while ((out[i] & 0x7c00) != 0x7c00) i++;
        const size_t tok = i / (size_t)f->d;
        die("%s: layer %d, clip %d ('%s'): non-finite feature (%s) at time step %zu, patch %zu, channel %zu", f->path,
            f->layer, clip, f->clip_ids[clip], (out[i] & 0x3ff) ? "NaN" : "Inf", tok / (size_t)f->N, tok % (size_t)f->N,
            i % (size_t)f->d);
    }
}

void features_read_tokens(const FeatureFile *f, int clip, float scale, uint16_t *h, float *x) {
    const size_t n = (size_t)f->T * f->N * f->d;
    features_read_clip(f, clip, h);
    half_to_float(h, x, n);
    if (scale != 1.0f)
        for (size_t i = 0; i < n; i++) x[i] *= scale;
}
