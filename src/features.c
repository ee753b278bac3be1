// features.c — reading the feature file of SPEC §3 (features.h).
#define _POSIX_C_SOURCE 200809L // strdup, strndup
#include "stsae/features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

#include "stsae/common.h"
#include "stsae/h5io.h"

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

static int attr_int(hid_t f, const char *name, int *out) {
    if (H5Aexists(f, name) <= 0) return -1;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    hid_t sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    double v = 0;
    herr_t rc = n == 1 ? H5Aread(a, H5T_NATIVE_DOUBLE, &v) : -1;
    H5Aclose(a);
    if (rc < 0 || v != floor(v) || v < 1 || v > 1e9) return -1;
    *out = (int)v;
    return 0;
}

// A 1-D dataset of n entries read as mtype into buf; 0, or -1 with err.
static int read_1d(const FeatureFile *f, const char *name, hid_t mtype, void *buf, char *err, size_t cap) {
    if (!h5_exists(f->file, name)) return errorf(err, cap, "%s: missing dataset '%s'", f->path, name);
    hid_t ds = H5Dopen2(f->file, name, H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[1] = {0};
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank == 1) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    int rc = 0;
    if (rank != 1 || dims[0] != (hsize_t)f->n_clips)
        rc = errorf(err, cap, "%s: dataset '%s' must be 1-D with one entry per clip (%d)", f->path, name, f->n_clips);
    else if (H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = errorf(err, cap, "%s: cannot read dataset '%s'", f->path, name);
    H5Dclose(ds);
    return rc;
}

// A 1-D dataset of strings (variable or fixed length) into *out (n entries, each malloc'ed).
static int read_strings(const FeatureFile *f, const char *name, int *n_out, char ***out, char *err, size_t cap) {
    if (!h5_exists(f->file, name)) return errorf(err, cap, "%s: missing dataset '%s'", f->path, name);
    hid_t ds = H5Dopen2(f->file, name, H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds);
    hsize_t dims[1] = {0};
    int rc = 0;
    if (H5Sget_simple_extent_ndims(sp) != 1 || H5Tget_class(t) != H5T_STRING) {
        rc = errorf(err, cap, "%s: dataset '%s' must be a 1-D list of strings", f->path, name);
    } else {
        H5Sget_simple_extent_dims(sp, dims, NULL);
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

int features_open(FeatureFile *f, const char *path, int layer, char *err, size_t cap) {
    memset(f, 0, sizeof(*f));
    f->file = f->dset = -1;
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->layer = layer;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        char partial[4200];
        snprintf(partial, sizeof(partial), "%s.partial", path);
        if (access(partial, F_OK) == 0)
            return errorf(err, cap, "%s: not there yet: %s exists, so the extraction has not finished (run stsae extract "
                                  "again to complete it)", path, partial);
        return errorf(err, cap, "%s: cannot open the feature file for reading", path);
    }
    fclose(fp);
    H5E_BEGIN_TRY { f->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f->file < 0) return errorf(err, cap, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
    const char *names[] = {"T", "H", "W", "N", "d"};
    int *vals[] = {&f->T, &f->H, &f->W, &f->N, &f->d};
    for (int i = 0; i < 5; i++)
        if (attr_int(f->file, names[i], vals[i]) != 0)
            return errorf(err, cap, "%s: root attribute '%s' is missing or not a positive integer", path, names[i]);
    if (f->N != f->H * f->W) return errorf(err, cap, "%s: attributes say N = %d but H x W = %d x %d", path, f->N, f->H, f->W);

    char dname[64];
    snprintf(dname, sizeof(dname), "/features/layer_%02d", layer);
    if (!h5_exists(f->file, dname)) {
        return errorf(err, cap, "%s: no features of layer %d (dataset '%s'); extract it (extract.layers) or pick another "
                              "train.layer", path, layer, dname);
    }
    f->dset = H5Dopen2(f->file, dname, H5P_DEFAULT);
    hid_t sp = H5Dget_space(f->dset), t = H5Dget_type(f->dset);
    hsize_t dims[4] = {0, 0, 0, 0};
    const int rank = H5Sget_simple_extent_ndims(sp);
    if (rank == 4) H5Sget_simple_extent_dims(sp, dims, NULL);
    const int is_half = H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 2;
    H5Sclose(sp);
    H5Tclose(t);
    if (rank != 4 || dims[1] != (hsize_t)f->T || dims[2] != (hsize_t)f->N || dims[3] != (hsize_t)f->d)
        return errorf(err, cap, "%s: dataset '%s' must be [clips, T=%d, N=%d, d=%d] (got %d dimensions: %llu x %llu x %llu x %llu)",
                    path, dname, f->T, f->N, f->d, rank, (unsigned long long)dims[0], (unsigned long long)dims[1],
                    (unsigned long long)dims[2], (unsigned long long)dims[3]);
    if (!is_half) return errorf(err, cap, "%s: dataset '%s' must be float16", path, dname);
    if (dims[0] < 1 || dims[0] > INT32_MAX) return errorf(err, cap, "%s: dataset '%s' holds no clip", path, dname);
    f->n_clips = (int)dims[0];

    f->labels = xmalloc(sizeof(int32_t) * (size_t)f->n_clips);
    f->split = xmalloc((size_t)f->n_clips);
    f->done = xmalloc((size_t)f->n_clips);
    if (read_1d(f, "/labels", H5T_NATIVE_INT32, f->labels, err, cap) || read_1d(f, "/split", H5T_NATIVE_UINT8, f->split, err, cap) ||
        read_1d(f, "/done", H5T_NATIVE_UINT8, f->done, err, cap))
        return -1;
    int n_ids = 0;
    if (read_strings(f, "/clip_ids", &n_ids, &f->clip_ids, err, cap)) return -1;
    if (n_ids != f->n_clips) return errorf(err, cap, "%s: /clip_ids has %d entries, the features %d clips", path, n_ids, f->n_clips);
    if (read_strings(f, "/label_names", &f->n_label_names, &f->label_names, err, cap)) return -1;
    for (int i = 0; i < f->n_clips; i++) {
        if (f->split[i] > 1) return errorf(err, cap, "%s: /split[%d] = %d (0 train, 1 test)", path, i, f->split[i]);
        if (f->labels[i] < -1 || f->labels[i] >= f->n_label_names)
            return errorf(err, cap, "%s: /labels[%d] = %d is not an index of /label_names (%d names; -1: none)", path, i,
                        f->labels[i], f->n_label_names);
    }
    return 0;
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
    if (rc < 0) die("%s: cannot read clip %d ('%s') of layer %d", f->path, clip, f->clip_ids[clip], f->layer);
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
