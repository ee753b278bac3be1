// h5io.c — HDF5 error reasons, checked reads, checked atomic writes (h5io.h).
#define _POSIX_C_SOURCE 200809L // fsync, open
#include "stsae/io/h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"

// --- why a call failed ------------------------------------------------------------

typedef struct {
    char sys[256];   // the system's text a driver recorded ("error message = '...'"), innermost
    char desc[512];  // the innermost entry's description, one line
    char func[128];  // and its function
    int n;
} Walk;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    Walk *w = data;
    const char *d = e->desc ? e->desc : "";
    const char *m = strstr(d, "error message = '");
    if (m) {
        m += strlen("error message = '");
        snprintf(w->sys, sizeof(w->sys), "%.*s", (int)strcspn(m, "'"), m);
    }
    // sec2 descriptions run on ("file write failed: time = ..., filename = ...,
    // errno = 28, ..."): keep the words before the first detail
    size_t len = strcspn(d, "\n");
    const char *t = strstr(d, ": time = ");
    if (t && (size_t)(t - d) < len) len = (size_t)(t - d);
    snprintf(w->desc, sizeof(w->desc), "%.*s", (int)len, d);
    snprintf(w->func, sizeof(w->func), "%s", e->func_name ? e->func_name : "?");
    w->n++;
    return 0;
}

int h5_error_text(char *buf, size_t cap) {
    Walk w;
    memset(&w, 0, sizeof(w));
    hid_t st = H5Eget_current_stack(); // a copy; the thread's stack is cleared
    if (st >= 0) {
        H5Ewalk2(st, H5E_WALK_DOWNWARD, walk_cb, &w); // outermost first: the last entry is the innermost
        H5Eclose_stack(st);
    }
    if (w.sys[0]) {
        snprintf(buf, cap, "%s (%s: %s)", w.sys, w.func, w.desc);
        return 1;
    }
    if (w.n) snprintf(buf, cap, "%s (%s)", w.desc, w.func);
    else snprintf(buf, cap, "HDF5 gave no reason");
    return 0;
}

int h5_fail(char *err, size_t cap, const char *file, const char *fmt, ...) {
    char reason[1024], what[1024];
    const int sys = h5_error_text(reason, sizeof(reason));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    // the MPI-IO drivers give an MPI error class, no errno: a file system with
    // (next to) nothing free is then the cause to name
    const unsigned long long avail = sys ? ~0ull : path_free_bytes(file);
    if (avail < PATH_FULL_BYTES)
        snprintf(err, cap, "%s: %s: %s (%llu bytes free on its file system; %s)", file, what, strerror(ENOSPC), avail,
                 reason);
    else
        snprintf(err, cap, "%s: %s: %s", file, what, reason);
    return -1;
}

// The name of the file holding obj (for the messages of the hid_t forms).
static void file_name(hid_t obj, char *out, size_t cap) {
    if (H5Fget_name(obj, out, cap) < 0) snprintf(out, cap, "(unnamed HDF5 file)");
}

void h5_check(int64_t rc, hid_t obj, const char *fmt, ...) {
    if (rc >= 0) return;
    char what[1024], file[4096], reason[1024];
    h5_error_text(reason, sizeof(reason)); // before H5Fget_name clears the stack
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    file_name(obj, file, sizeof(file));
    die("%s: %s: %s", file, what, reason);
}

// --- reading ----------------------------------------------------------------------

hid_t h5_open_read(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) die("%s: cannot open for reading: %s", path, strerror(errno));
    fclose(fp);
    hid_t f = -1;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    char err[2048];
    if (f < 0) h5_fail(err, sizeof(err), path, "not a readable HDF5 file (truncated or corrupt?)"), die("%s", err);
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

// Dies with h5_fail's message.
#define read_fail(path, ...)                                                                \
    do {                                                                                    \
        char e_[2048];                                                                      \
        h5_fail(e_, sizeof(e_), path, __VA_ARGS__);                                         \
        die("%s", e_);                                                                      \
    } while (0)

static hid_t open_attr(hid_t f, const char *path, const char *name, int required) {
    htri_t e = H5Aexists(f, name);
    if (e <= 0) {
        if (required) die("%s: missing root attribute '%s'", path, name);
        return -1;
    }
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) read_fail(path, "cannot open attribute '%s'", name);
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
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) read_fail(path, "cannot read attribute '%s'", name);
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

// v as an integer in [lo, hi], or die: a NaN, an infinity or 1e300 must not
// reach a cast to an integer type (undefined behaviour).
static long long whole(double v, const char *path, const char *name, long long lo, long long hi) {
    // 0x1p63 = 2^63: (double)LLONG_MAX rounds up to it, which no long long holds
    if (!(v == floor(v) && v >= (double)lo && v <= (double)hi && v < 0x1p63))
        die("%s: root attribute %s = %.17g must be a whole number in [%lld, %lld]", path, name, v, lo, hi);
    return (long long)v;
}

long long h5_attr_int(hid_t f, const char *path, const char *name, long long lo, long long hi) {
    return whole(h5_attr_f64(f, path, name), path, name, lo, hi);
}

long long h5_attr_int_opt(hid_t f, const char *path, const char *name, long long lo, long long hi, long long def) {
    hid_t a = open_attr(f, path, name, 0);
    if (a < 0) return def;
    const double v = read_attr_f64(a, path, name);
    H5Aclose(a);
    return whole(v, path, name, lo, hi);
}

void h5_attr_str(hid_t f, const char *path, const char *name, char *out, size_t cap) {
    hid_t a = open_attr(f, path, name, 1);
    hid_t t = H5Aget_type(a);
    if (H5Tget_class(t) != H5T_STRING) die("%s: attribute '%s' must be a string", path, name);
    // one element: H5Aread writes every element (two pointers into `s`, two
    // strings into a buffer sized for one)
    hid_t sp = H5Aget_space(a);
    const hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    if (n != 1) die("%s: attribute '%s' must be one string (it holds %lld)", path, name, (long long)n);
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &s) < 0) read_fail(path, "cannot read attribute '%s'", name);
        snprintf(out, cap, "%s", s ? s : "");
        H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(t);
        char *s = xcalloc(sz + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, s) < 0) read_fail(path, "cannot read attribute '%s'", name);
        snprintf(out, cap, "%s", s);
        free(s);
        H5Tclose(mt);
    }
    H5Tclose(t);
    H5Aclose(a);
}

void h5_check_format_version(hid_t f, const char *path, int reads) {
    // absent: a file from before versions, which are version 1
    const long long v = h5_attr_int_opt(f, path, "format_version", 0, INT_MAX, 1);
    if (v != reads) die("%s: format_version %lld; this stsae reads %d", path, v, reads);
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
    if (H5Aread(a, H5T_NATIVE_INT, out) < 0) read_fail(path, "cannot read attribute '%s'", name);
    H5Aclose(a);
    return (int)n;
}

void h5_dims(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims) {
    if (!h5_exists(f, dset)) die("%s: missing dataset '%s'", path, dset);
    hid_t ds = H5Dopen2(f, dset, H5P_DEFAULT);
    if (ds < 0) read_fail(path, "cannot open dataset '%s'", dset);
    hid_t sp = H5Dget_space(ds);
    const int r = H5Sget_simple_extent_ndims(sp);
    if (r == rank) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(ds);
    if (r != rank) die("%s: dataset '%s' has %d dimensions, expected %d", path, dset, r, rank);
}

// Deflate's best ratio: a filtered (compressed) dataset stores at least
// 1/READ_MAX_RATIO of its bytes (features.c's MAX_RATIO).
enum { READ_MAX_RATIO = 1032 };

// Opens dset, checks its rank, fills dims, and checks before allocating that
// the element count does not overflow and that the file stores the bytes the
// dims claim (an unwritten dataset of 2^31 values costs a few bytes of file
// and would otherwise cost 8 GiB of memory); then reads it whole as mtype.
static void *read_ds(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims, hid_t mtype,
                     size_t elem) {
    h5_dims(f, path, dset, rank, dims);
    hid_t ds = H5Dopen2(f, dset, H5P_DEFAULT);
    if (ds < 0) read_fail(path, "cannot open dataset '%s'", dset);
    uint64_t n = 1, bytes = 0;
    int over = 0;
    for (int i = 0; i < rank; i++) over |= __builtin_mul_overflow(n, (uint64_t)dims[i], &n);
    hid_t t = H5Dget_type(ds);
    const uint64_t file_elem = t >= 0 ? H5Tget_size(t) : 0;
    if (t >= 0) H5Tclose(t);
    over |= __builtin_mul_overflow(n, file_elem > elem ? file_elem : elem, &bytes) || bytes > (uint64_t)SIZE_MAX / 2;
    if (over) die("%s: dataset '%s' claims more values than fit in memory", path, dset);
    const uint64_t have = H5Dget_storage_size(ds), claimed = n * file_elem;
    hid_t dcpl = H5Dget_create_plist(ds);
    const int filtered = dcpl >= 0 && H5Pget_nfilters(dcpl) > 0;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (have < (filtered ? claimed / READ_MAX_RATIO : claimed))
        die("%s: dataset '%s' claims %llu values of %llu bytes but stores %llu bytes (unwritten or truncated?)", path,
            dset, (unsigned long long)n, (unsigned long long)file_elem, (unsigned long long)have);
    void *buf = xmalloc((size_t)n * elem);
    if (H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        read_fail(path, "cannot read dataset '%s' as %s", dset,
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

// Variable-length UTF-8 strings (as h5py writes str); H5Tclose it.
static hid_t vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

char **h5_read_strings(hid_t f, const char *path, const char *dset, int *n) {
    hsize_t dims[1];
    h5_dims(f, path, dset, 1, dims);
    hid_t ds = H5Dopen2(f, dset, H5P_DEFAULT);
    if (ds < 0) read_fail(path, "cannot open dataset '%s'", dset);
    hid_t t = H5Dget_type(ds);
    const int vlen = t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0;
    if (t >= 0) H5Tclose(t);
    if (!vlen) die("%s: dataset '%s' is not a list of variable-length strings", path, dset);
    if (dims[0] > (hsize_t)INT32_MAX / 2) die("%s: dataset '%s' claims %llu strings", path, dset, (unsigned long long)dims[0]);
    *n = (int)dims[0];
    char **raw = xcalloc((size_t)*n + 1, sizeof(char *)), **s = xcalloc((size_t)*n + 1, sizeof(char *));
    hid_t mt = vlen_utf8(), sp = H5Dget_space(ds);
    if (*n && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0)
        read_fail(path, "cannot read dataset '%s' as strings", dset);
    for (int i = 0; i < *n; i++) s[i] = strdup(raw[i] ? raw[i] : "");
    if (*n) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
    H5Tclose(mt), H5Sclose(sp), H5Dclose(ds);
    free(raw);
    return s;
}

// --- writing ----------------------------------------------------------------------

// The file being written: the temporary's name while there is one.
static const char *w_name(const H5W *w) { return w->tmp[0] ? w->tmp : w->path; }

int h5w_create(H5W *w, const char *path) {
    memset(w, 0, sizeof(*w));
    snprintf(w->path, sizeof(w->path), "%s", path);
    snprintf(w->tmp, sizeof(w->tmp), "%s.tmp", path);
    // H5Fclose must fail while an object is still open (it would succeed
    // without closing the file, and an unflushed file would be renamed)
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_SEMI);
    w->f = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (w->f < 0) {
        w->failed = 1;
        h5_fail(w->err, sizeof(w->err), w->tmp, "cannot create"); // before any other call clears the stack
        unlink(w->tmp); // HDF5 may have made it before failing
    }
    H5Pclose(fapl);
    return w->failed ? -1 : 0;
}

void h5w_wrap(H5W *w, hid_t f, const char *path) {
    memset(w, 0, sizeof(*w));
    w->f = f;
    snprintf(w->path, sizeof(w->path), "%s", path);
}

// Keeps the first failure; -1.
static int w_fail(H5W *w, const char *what, const char *name) {
    if (!w->failed) h5_fail(w->err, sizeof(w->err), w_name(w), "%s '%s'", what, name);
    w->failed = 1;
    return -1;
}

static int write_ds(H5W *w, const char *dset, const void *data, int rank, const hsize_t *dims, hid_t ftype,
                    hid_t mtype) {
    if (w->failed) return -1;
    hid_t sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(w->f, dset, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (ds < 0) rc = w_fail(w, "cannot create dataset", dset);
    else if (data && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = w_fail(w, "cannot write dataset", dset);
    if (ds >= 0 && H5Dclose(ds) < 0) rc = w_fail(w, "cannot close dataset", dset);
    H5Pclose(lcpl);
    H5Sclose(sp);
    return rc;
}

int h5w_f32(H5W *w, const char *dset, const float *data, int rank, const hsize_t *dims) {
    return write_ds(w, dset, data, rank, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
}

int h5w_f64(H5W *w, const char *dset, const double *data, int rank, const hsize_t *dims) {
    return write_ds(w, dset, data, rank, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE);
}

int h5w_i64(H5W *w, const char *dset, const int64_t *data, int rank, const hsize_t *dims) {
    return write_ds(w, dset, data, rank, dims, H5T_STD_I64LE, H5T_NATIVE_INT64);
}

int h5w_i32(H5W *w, const char *dset, const int32_t *data, int rank, const hsize_t *dims) {
    return write_ds(w, dset, data, rank, dims, H5T_STD_I32LE, H5T_NATIVE_INT32);
}

int h5w_u8(H5W *w, const char *dset, const uint8_t *data, int rank, const hsize_t *dims) {
    return write_ds(w, dset, data, rank, dims, H5T_STD_U8LE, H5T_NATIVE_UINT8);
}

int h5w_scalar(H5W *w, const char *dset, double v) { return h5w_f64(w, dset, &v, 0, NULL); }


int h5w_strings(H5W *w, const char *dset, char *const *s, size_t n) {
    if (w->failed) return -1;
    hsize_t dims[1] = {(hsize_t)n};
    hid_t t = vlen_utf8();
    const int rc = write_ds(w, dset, n ? (const void *)s : NULL, 1, dims, t, t); // no data: an empty list
    H5Tclose(t);
    return rc;
}

static int write_attr(H5W *w, const char *name, hid_t ftype, hid_t mtype, hid_t sp, const void *v) {
    if (w->failed) return -1;
    hid_t a = H5Acreate2(w->f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (a < 0) rc = w_fail(w, "cannot create attribute", name);
    else if (H5Awrite(a, mtype, v) < 0) rc = w_fail(w, "cannot write attribute", name);
    if (a >= 0 && H5Aclose(a) < 0) rc = w_fail(w, "cannot close attribute", name);
    H5Sclose(sp);
    return rc;
}

int h5w_attr_f64(H5W *w, const char *name, double v) {
    return write_attr(w, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, H5Screate(H5S_SCALAR), &v);
}

int h5w_attr_str(H5W *w, const char *name, const char *v) {
    hid_t t = vlen_utf8();
    const int rc = write_attr(w, name, t, t, H5Screate(H5S_SCALAR), &v);
    H5Tclose(t);
    return rc;
}

int h5w_attr_ints(H5W *w, const char *name, const int *v, int n) {
    hsize_t dims[1] = {(hsize_t)n};
    return write_attr(w, name, H5T_STD_I32LE, H5T_NATIVE_INT, n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL),
                      v);
}

int h5w_format_version(H5W *w, int version) { return h5w_attr_ints(w, "format_version", &version, 1); }

// fsync of a file or directory by name; 0, or -1 with errno.
static int sync_path(const char *p) {
    const int fd = open(p, O_RDONLY);
    if (fd < 0) return -1;
    const int rc = fsync(fd);
    const int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int h5w_commit(H5W *w, char *err, size_t cap) {
    herr_t closed = 0;
    if (!w->failed) {
        closed = H5Fclose(w->f);
        // the id is gone whatever H5Fclose returned (HDF5 1.10 has released
        // it, or the file, by then): closing it again in h5w_discard crashes
        w->f = H5I_INVALID_HID;
    }
    if (!w->failed && closed < 0) {
        w->failed = 1;
        h5_fail(w->err, sizeof(w->err), w->tmp, "cannot close (the flush of HDF5's buffers to the file failed)");
    } else if (!w->failed) {
        // durable, then atomic: fsync the file, rename, fsync the directory
        char *dir = path_dir(w->path);
        if (sync_path(w->tmp) != 0)
            w->failed = 1, snprintf(w->err, sizeof(w->err), "%s: cannot sync to disk: %s", w->tmp, strerror(errno));
        else if (rename(w->tmp, w->path) != 0)
            w->failed = 1,
            snprintf(w->err, sizeof(w->err), "%s: cannot rename to %s: %s", w->tmp, w->path, strerror(errno));
        else if (sync_path(dir) != 0)
            w->failed = 1, snprintf(w->err, sizeof(w->err), "%s: cannot sync its directory %s to disk: %s", w->path,
                                    dir, strerror(errno));
        free(dir);
        if (!w->failed) return 0;
    }
    snprintf(err, cap, "%s", w->err);
    h5w_discard(w);
    return -1;
}

void h5w_discard(H5W *w) {
    if (w->f >= 0) {
        H5E_BEGIN_TRY { H5Fclose(w->f); }
        H5E_END_TRY;
        w->f = H5I_INVALID_HID;
    }
    if (w->tmp[0]) unlink(w->tmp); // a file that was renamed is not there any more: nothing happens
}

// --- the dying forms ----------------------------------------------------------------

// An H5W over an open file named by HDF5 (the hid_t forms).
static void wrap_named(H5W *w, hid_t f) {
    char name[4096];
    file_name(f, name, sizeof(name));
    h5w_wrap(w, f, name);
}

hid_t h5_create_tmp(const char *path) {
    H5W w;
    if (h5w_create(&w, path) != 0) die("%s", w.err);
    return w.f;
}

void h5_commit(hid_t f, const char *path) {
    H5W w;
    h5w_wrap(&w, f, path);
    snprintf(w.tmp, sizeof(w.tmp), "%s.tmp", path);
    char err[sizeof(w.err)];
    if (h5w_commit(&w, err, sizeof(err)) != 0) die("%s", err);
}

#define DIE_ON(call)                                                                        \
    do {                                                                                    \
        H5W w_;                                                                             \
        wrap_named(&w_, f);                                                                 \
        H5W *w = &w_;                                                                       \
        if ((call) != 0) die("%s", w_.err);                                                 \
    } while (0)

void h5_write_f32(hid_t f, const char *dset, const float *data, int rank, const hsize_t *dims) {
    DIE_ON(h5w_f32(w, dset, data, rank, dims));
}

void h5_write_f64(hid_t f, const char *dset, const double *data, int rank, const hsize_t *dims) {
    DIE_ON(h5w_f64(w, dset, data, rank, dims));
}

void h5_write_i64(hid_t f, const char *dset, const int64_t *data, int rank, const hsize_t *dims) {
    DIE_ON(h5w_i64(w, dset, data, rank, dims));
}

void h5_write_i32(hid_t f, const char *dset, const int32_t *data, int rank, const hsize_t *dims) {
    DIE_ON(h5w_i32(w, dset, data, rank, dims));
}

void h5_write_scalar(hid_t f, const char *dset, double v) { DIE_ON(h5w_scalar(w, dset, v)); }

void h5_write_strings(hid_t f, const char *dset, char *const *s, size_t n) { DIE_ON(h5w_strings(w, dset, s, n)); }

void h5_set_attr_f64(hid_t f, const char *name, double v) { DIE_ON(h5w_attr_f64(w, name, v)); }

void h5_set_attr_str(hid_t f, const char *name, const char *v) { DIE_ON(h5w_attr_str(w, name, v)); }

void h5_set_attr_ints(hid_t f, const char *name, const int *v, int n) { DIE_ON(h5w_attr_ints(w, name, v, n)); }
