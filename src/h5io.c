// h5io.c — checked HDF5 helpers and atomic file writes (h5io.h).
#define _POSIX_C_SOURCE 200809L // fsync, open
#include "stsae/h5io.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/common.h"

hid_t h5_open_read(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) die("%s: cannot open for reading", path);
    fclose(fp);
    hid_t f = -1;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f < 0) die("%s: not a readable HDF5 file (truncated or corrupt?)", path);
    return f;
}

int h5_exists(hid_t f, const char *dset) {
    // walk the path one link at a time: H5Lexists fails on missing parents
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", dset);
    for (char *s = buf + 1;; s++) {
        char c = *s;
        if (c == '/' || c == 0) {
            *s = 0;
            htri_t e = H5Lexists(f, buf, H5P_DEFAULT);
            if (e <= 0) return 0;
            if (c == 0) return 1;
            *s = '/';
        }
    }
}

static hid_t open_attr(hid_t f, const char *path, const char *name, int required) {
    htri_t e = H5Aexists(f, name);
    if (e <= 0) {
        if (required) die("%s: missing root attribute '%s'", path, name);
        return -1;
    }
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) die("%s: cannot open attribute '%s'", path, name);
    return a;
}

static double read_attr_f64(hid_t a, const char *path, const char *name) {
    hid_t sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    hid_t t = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(t);
    H5Tclose(t);
    if (n != 1 || (cls != H5T_INTEGER && cls != H5T_FLOAT))
        die("%s: attribute '%s' must be one number", path, name);
    double v;
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) die("%s: cannot read attribute '%s'", path, name);
    return v;
}

double h5_attr_f64(hid_t f, const char *path, const char *name) {
    hid_t a = open_attr(f, path, name, 1);
    double v = read_attr_f64(a, path, name);
    H5Aclose(a);
    return v;
}

double h5_attr_f64_opt(hid_t f, const char *path, const char *name, double def) {
    hid_t a = open_attr(f, path, name, 0);
    if (a < 0) return def;
    double v = read_attr_f64(a, path, name);
    H5Aclose(a);
    return v;
}

void h5_attr_str(hid_t f, const char *path, const char *name, char *out, size_t cap) {
    hid_t a = open_attr(f, path, name, 1);
    hid_t t = H5Aget_type(a);
    if (H5Tget_class(t) != H5T_STRING) die("%s: attribute '%s' must be a string", path, name);
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &s) < 0) die("%s: cannot read attribute '%s'", path, name);
        snprintf(out, cap, "%s", s ? s : "");
        H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(t);
        char *s = xcalloc(sz + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, s) < 0) die("%s: cannot read attribute '%s'", path, name);
        snprintf(out, cap, "%s", s);
        free(s);
        H5Tclose(mt);
    }
    H5Tclose(t);
    H5Aclose(a);
}

int h5_attr_ints(hid_t f, const char *path, const char *name, int *out, int cap) {
    hid_t a = open_attr(f, path, name, 1);
    hid_t sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    hid_t t = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(t);
    H5Tclose(t);
    if (cls != H5T_INTEGER || n < 1 || n > cap)
        die("%s: attribute '%s' must be 1 to %d integers", path, name, cap);
    if (H5Aread(a, H5T_NATIVE_INT, out) < 0) die("%s: cannot read attribute '%s'", path, name);
    H5Aclose(a);
    return (int)n;
}

static void *read_ds(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims, hid_t mtype,
                     size_t elem) {
    if (!h5_exists(f, dset)) die("%s: missing dataset '%s'", path, dset);
    hid_t ds = H5Dopen2(f, dset, H5P_DEFAULT);
    if (ds < 0) die("%s: cannot open dataset '%s'", path, dset);
    hid_t sp = H5Dget_space(ds);
    int r = H5Sget_simple_extent_ndims(sp);
    if (r != rank) die("%s: dataset '%s' has %d dimensions, expected %d", path, dset, r, rank);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    void *buf = xmalloc(n * elem);
    if (H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        die("%s: cannot read dataset '%s' as %s", path, dset,
            mtype == H5T_NATIVE_FLOAT ? "float32" : mtype == H5T_NATIVE_UINT8 ? "uint8" : "int64");
    H5Dclose(ds);
    return buf;
}

float *h5_read_f32(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims) {
    return read_ds(f, path, dset, rank, dims, H5T_NATIVE_FLOAT, sizeof(float));
}

uint8_t *h5_read_u8(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims) {
    return read_ds(f, path, dset, rank, dims, H5T_NATIVE_UINT8, 1);
}

int64_t *h5_read_i64(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims) {
    return read_ds(f, path, dset, rank, dims, H5T_NATIVE_INT64, sizeof(int64_t));
}

hid_t h5_create_tmp(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) die("%s: cannot create", tmp);
    return f;
}

void h5_commit(hid_t f, const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (H5Fclose(f) < 0) die("%s: cannot close", tmp);
    // durable, then atomic: fsync the file, rename, fsync the directory
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) die("%s: cannot sync to disk", tmp);
    close(fd);
    if (rename(tmp, path) != 0) die("%s: cannot rename to %s", tmp, path);
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof(dir), ".");
    fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

// Creates the intermediate groups of dset ("a/b/c" -> a, a/b).
static hid_t link_props(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

static void write_ds(hid_t f, const char *dset, const void *data, int rank, const hsize_t *dims,
                     hid_t ftype, hid_t mtype) {
    hid_t sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = link_props();
    hid_t ds = H5Dcreate2(f, dset, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0) die("cannot create dataset '%s'", dset);
    h5Check(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    H5Dclose(ds);
    H5Pclose(lcpl);
    H5Sclose(sp);
}

void h5_write_f32(hid_t f, const char *dset, const float *data, int rank, const hsize_t *dims) {
    write_ds(f, dset, data, rank, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
}

void h5_write_f64(hid_t f, const char *dset, const double *data, int rank, const hsize_t *dims) {
    write_ds(f, dset, data, rank, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE);
}

void h5_write_i64(hid_t f, const char *dset, const int64_t *data, int rank, const hsize_t *dims) {
    write_ds(f, dset, data, rank, dims, H5T_STD_I64LE, H5T_NATIVE_INT64);
}

void h5_write_scalar(hid_t f, const char *dset, double v) { h5_write_f64(f, dset, &v, 0, NULL); }

void h5_set_attr_f64(hid_t f, const char *name, double v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &v) < 0) die("cannot write attribute '%s'", name);
    H5Aclose(a);
    H5Sclose(sp);
}

// Variable-length UTF-8 strings (as h5py writes str); H5Tclose it.
static hid_t vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

void h5_set_attr_str(hid_t f, const char *name, const char *v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t t = vlen_utf8();
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, &v) < 0) die("cannot write attribute '%s'", name);
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
}

void h5_write_strings(hid_t f, const char *dset, char *const *s, size_t n) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t t = vlen_utf8(), sp = H5Screate_simple(1, dims, NULL), lcpl = link_props();
    hid_t ds = H5Dcreate2(f, dset, t, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0) die("cannot create dataset '%s'", dset);
    if (n) h5Check(H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s));
    H5Dclose(ds);
    H5Pclose(lcpl);
    H5Sclose(sp);
    H5Tclose(t);
}

void h5_set_attr_ints(hid_t obj, const char *name, const int *v, int n) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_INT, v) < 0) die("cannot write attribute '%s'", name);
    H5Aclose(a);
    H5Sclose(sp);
}
