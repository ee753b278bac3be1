// fuzz_h5.c — HDF5 objects as a fuzz input describes them (fuzz_h5.h).
#include "fuzz_h5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/io/features.h" // features_half_type

hid_t fh_create(FuzzBytes *b, const char *path) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fb_chance(b, 64)) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    FUZZ_CHECK(f >= 0, "cannot create %s", path);
    return f;
}

// A float whose layout the input decides: 1..8 bytes, exponent and mantissa
// sizes, bias and normalization; half-like sizes are likelier.
static hid_t odd_float(FuzzBytes *b) {
    const size_t size = fb_chance(b, 128) ? 2 : 1 + (size_t)fb_pick(b, 8);
    const size_t prec = 8 * size;
    const size_t esize = 1 + (size_t)fb_pick(b, (int)(prec - 2 < 15 ? prec - 2 : 15));
    const size_t msize = prec - 1 - esize;
    hid_t t = H5Tcopy(H5T_IEEE_F64LE);
    herr_t rc = 0;
    H5E_BEGIN_TRY {
        rc |= H5Tset_fields(t, prec - 1, msize, esize, 0, msize);
        rc |= H5Tset_precision(t, prec);
        rc |= H5Tset_size(t, size);
        const size_t usual_bias = ((size_t)1 << (esize - 1)) - 1;
        rc |= H5Tset_ebias(t, fb_chance(b, 200) ? usual_bias : (size_t)fb_u8(b));
        if (fb_chance(b, 32)) rc |= H5Tset_norm(t, fb_chance(b, 128) ? H5T_NORM_MSBSET : H5T_NORM_NONE);
        if (fb_chance(b, 64)) rc |= H5Tset_order(t, H5T_ORDER_BE);
    }
    H5E_END_TRY;
    if (rc < 0) {
        H5Tclose(t);
        return features_half_type();
    }
    return t;
}

hid_t fh_num_type(FuzzBytes *b, hid_t usual) {
    if (!fb_chance(b, 40)) return H5Tcopy(usual);
    hid_t t;
    switch (fb_pick(b, 16)) {
    case 0:
        return features_half_type();
    case 1:
        t = features_half_type();
        H5Tset_order(t, H5T_ORDER_BE);
        return t;
    case 2: // bfloat16: float32's sign and exponent, 7 mantissa bits
        t = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(t, 15, 7, 8, 0, 7);
        H5Tset_size(t, 2);
        H5Tset_ebias(t, 127);
        return t;
    case 3:
        return H5Tcopy(H5T_IEEE_F32LE);
    case 4:
        return H5Tcopy(H5T_IEEE_F32BE);
    case 5:
        return H5Tcopy(H5T_IEEE_F64LE);
    case 6:
        return H5Tcopy(H5T_STD_I8LE);
    case 7:
        return H5Tcopy(H5T_STD_U8LE);
    case 8:
        return H5Tcopy(H5T_STD_I16LE);
    case 9:
        return H5Tcopy(H5T_STD_I32BE);
    case 10:
        return H5Tcopy(H5T_STD_U32LE);
    case 11:
        return H5Tcopy(H5T_STD_I64LE);
    case 12:
        return H5Tcopy(H5T_STD_U64BE);
    case 13:
        return H5Tcopy(H5T_STD_B8LE); // a bitfield: neither integer nor float
    case 14:                          // float16's layout with another bias
        t = features_half_type();
        H5Tset_ebias(t, 16);
        return t;
    default:
        return odd_float(b);
    }
}

static hid_t vlen_str(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

// Writes attribute name of type t and space sp from buf in memory type mt.
static void put_attr(hid_t loc, const char *name, hid_t t, hid_t sp, hid_t mt, const void *buf) {
    H5E_BEGIN_TRY {
        hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) {
            if (buf) H5Awrite(a, mt, buf);
            H5Aclose(a);
        }
    }
    H5E_END_TRY;
}

void fh_attr_num(FuzzBytes *b, hid_t loc, const char *name, double value, hid_t usual) {
    if (fb_chance(b, 24)) value = fb_double(b);
    const int mode = fb_chance(b, 224) ? 0 : 1 + fb_pick(b, 6);
    if (mode == 1) return;        // absent
    if (mode == 2 || mode == 6) { // a string: the number as text, or fixed-length text
        char text[64];
        snprintf(text, sizeof(text), "%.17g", value);
        hid_t t = mode == 2 ? vlen_str() : H5Tcopy(H5T_C_S1);
        if (mode == 6) H5Tset_size(t, strlen(text) + 1);
        hid_t sp = H5Screate(H5S_SCALAR);
        const char *p = text;
        put_attr(loc, name, t, sp, t, mode == 2 ? (const void *)&p : text);
        H5Sclose(sp);
        H5Tclose(t);
        return;
    }
    hid_t t = fh_num_type(b, usual), sp;
    double v[2] = {value, fb_chance(b, 128) ? value : fb_double(b)};
    if (mode == 0) {
        sp = H5Screate(H5S_SCALAR);
    } else if (mode == 3) { // a pair
        const hsize_t two = 2;
        sp = H5Screate_simple(1, &two, NULL);
    } else if (mode == 4) {
        sp = H5Screate(H5S_NULL);
    } else { // 1-D, empty
        const hsize_t zero = 0;
        sp = H5Screate_simple(1, &zero, NULL);
    }
    put_attr(loc, name, t, sp, H5T_NATIVE_DOUBLE, mode == 4 ? NULL : v);
    H5Sclose(sp);
    H5Tclose(t);
}

void fh_attr_str(FuzzBytes *b, hid_t loc, const char *name, const char *s) {
    char text[80];
    if (fb_chance(b, 16)) { // other text from the input (NUL-free, maybe empty)
        const size_t n = fb_bytes(b, text, (size_t)fb_pick(b, sizeof(text)));
        text[n] = 0;
        s = text;
    }
    const int mode = fb_chance(b, 224) ? 0 : 1 + fb_pick(b, 5);
    if (mode == 1) return;
    hid_t sp = H5Screate(H5S_SCALAR);
    if (mode == 0 || mode == 4) { // variable-length; mode 4: a pair of them
        hid_t t = vlen_str();
        const char *p[2] = {s, s};
        if (mode == 4) {
            H5Sclose(sp);
            const hsize_t two = 2;
            sp = H5Screate_simple(1, &two, NULL);
        }
        put_attr(loc, name, t, sp, t, p);
        H5Tclose(t);
    } else if (mode == 2) { // fixed-length: its own length, shorter, or huge
        size_t n = strlen(s) + (size_t)fb_pick(b, 2);
        if (fb_chance(b, 64)) n = fb_pick(b, 2) ? (size_t)fb_pick(b, (int)n + 1) : (size_t)fb_count(b) % (1u << 20);
        if (n == 0) n = 1;
        char *buf = calloc(n + 1, 1);
        memcpy(buf, s, strlen(s) < n ? strlen(s) : n);
        hid_t t = H5Tcopy(H5T_C_S1);
        if (fb_chance(b, 64)) H5Tset_strpad(t, H5T_STR_NULLPAD);
        if (H5Tset_size(t, n) >= 0) put_attr(loc, name, t, sp, t, buf);
        H5Tclose(t);
        free(buf);
    } else if (mode == 3) { // a number
        const double v = fb_double(b);
        put_attr(loc, name, H5T_IEEE_F64LE, sp, H5T_NATIVE_DOUBLE, &v);
    } else { // empty (null dataspace)
        H5Sclose(sp);
        sp = H5Screate(H5S_NULL);
        hid_t t = vlen_str();
        put_attr(loc, name, t, sp, t, NULL);
        H5Tclose(t);
    }
    H5Sclose(sp);
}

// The element count of dims, or 0 on overflow past 2^62.
static uint64_t count_of(int rank, const hsize_t *dims) {
    uint64_t n = 1;
    for (int i = 0; i < rank; i++)
        if (__builtin_mul_overflow(n, (uint64_t)dims[i], &n) || n > (1ull << 62)) return 0;
    return n;
}

// A dataset-creation property list: chunked (one chunk per first-dimension
// entry, as stsae extract writes, or smaller), maybe compressed, maybe with a
// NaN fill value; or contiguous.
static hid_t make_dcpl(FuzzBytes *b, int rank, const hsize_t *dims, hid_t type) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int chunkable = rank > 0;
    hsize_t chunk[H5S_MAX_RANK];
    uint64_t elems = 1;
    for (int i = 0; i < rank && chunkable; i++) {
        chunk[i] = i == 0 ? 1 : dims[i];
        if (fb_chance(b, 16) && chunk[i] > 1) chunk[i] = 1 + chunk[i] / 2;
        chunkable = dims[i] > 0 && chunk[i] <= 0xffffffffu && !__builtin_mul_overflow(elems, chunk[i], &elems);
    }
    chunkable = chunkable && elems * H5Tget_size(type) < (1ull << 31);
    if (chunkable && fb_chance(b, 160)) {
        H5E_BEGIN_TRY {
            H5Pset_chunk(dcpl, rank, chunk);
            if (fb_chance(b, 32)) H5Pset_deflate(dcpl, 1);
        }
        H5E_END_TRY;
    }
    if (H5Tget_class(type) == H5T_FLOAT && fb_chance(b, 16)) {
        const double nan = __builtin_nan("");
        H5E_BEGIN_TRY { H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &nan); }
        H5E_END_TRY;
    }
    return dcpl;
}

int fh_dataset(FuzzBytes *b, hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
               double (*value)(size_t i, void *ctx), void *ctx, unsigned char **raw, size_t max_write) {
    if (raw) *raw = NULL;
    hid_t sp = -1, ds = -1, lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    H5E_BEGIN_TRY { sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL); }
    H5E_END_TRY;
    if (sp >= 0) {
        hid_t dcpl = make_dcpl(b, rank, dims, type);
        H5E_BEGIN_TRY { ds = H5Dcreate2(loc, name, type, sp, lcpl, dcpl, H5P_DEFAULT); }
        H5E_END_TRY;
        H5Pclose(dcpl);
    }
    H5Pclose(lcpl);
    const uint64_t n = count_of(rank, dims);
    if (ds >= 0 && n > 0 && n <= max_write) {
        const size_t size = H5Tget_size(type);
        if (raw) {
            unsigned char *buf = calloc((size_t)n, size);
            fb_bytes(b, buf, (size_t)n * size);
            herr_t rc = -1;
            H5E_BEGIN_TRY { rc = H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); }
            H5E_END_TRY;
            if (rc >= 0)
                *raw = buf;
            else
                free(buf);
        } else {
            double *buf = malloc(sizeof(double) * (size_t)n);
            for (size_t i = 0; i < n; i++) buf[i] = value(i, ctx);
            H5E_BEGIN_TRY { H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); }
            H5E_END_TRY;
            free(buf);
        }
    }
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    return ds >= 0 ? 0 : -1;
}

int fh_strings(FuzzBytes *b, hid_t loc, const char *name, hsize_t n, const char *(*s)(size_t i, void *ctx), void *ctx,
               size_t max_write) {
    const int fixed = fb_chance(b, 48);
    size_t size = 0;
    hid_t t;
    if (fixed) {
        size = 1 + (size_t)fb_pick(b, 16);
        if (fb_chance(b, 32)) size = (size_t)fb_count(b);
        t = H5Tcopy(H5T_C_S1);
        if (size == 0 || size > (1u << 30) || H5Tset_size(t, size) < 0) {
            H5Tclose(t);
            return -1;
        }
        if (fb_chance(b, 64)) H5Tset_strpad(t, H5T_STR_NULLPAD);
    } else {
        t = vlen_str();
    }
    if (fb_chance(b, 32)) H5Tset_cset(t, H5T_CSET_ASCII);
    hsize_t dims[2] = {n, 1};
    const int rank = fb_chance(b, 8) ? fb_pick(b, 3) : 1;
    hid_t sp = -1, ds = -1, lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    H5E_BEGIN_TRY {
        sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
        if (sp >= 0) {
            hid_t dcpl = make_dcpl(b, rank, dims, t);
            ds = H5Dcreate2(loc, name, t, sp, lcpl, dcpl, H5P_DEFAULT);
            H5Pclose(dcpl);
        }
    }
    H5E_END_TRY;
    H5Pclose(lcpl);
    const uint64_t count = count_of(rank, dims);
    if (ds >= 0 && count > 0 && count <= max_write && (!fixed || count * size <= (1u << 24))) {
        if (fixed) {
            char *buf = calloc((size_t)count, size);
            for (size_t i = 0; i < count; i++) {
                const char *x = s(i, ctx);
                if (x) memcpy(buf + i * size, x, strlen(x) < size ? strlen(x) : size);
            }
            H5E_BEGIN_TRY { H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); }
            H5E_END_TRY;
            free(buf);
        } else {
            const char **buf = malloc(sizeof(char *) * (size_t)count);
            for (size_t i = 0; i < count; i++) buf[i] = s(i, ctx);
            H5E_BEGIN_TRY { H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); }
            H5E_END_TRY;
            free(buf);
        }
    }
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    H5Tclose(t);
    return ds >= 0 ? 0 : -1;
}
