// h5io.h — the HDF5 helpers every stage and tool shares: why an HDF5 call
// failed, reads that name the file and object, and whole files written under a
// temporary name with every return checked.
//
// Errors. HDF5 keeps the cause of a failure on its error stack, innermost
// last: the sec2 driver's errno text ("No space left on device"), the MPI-IO
// driver's MPI error string. main() turns HDF5's own printing off;
// h5_error_text turns the stack into one reason and h5_fail formats every
// HDF5 error message of stsae as "FILE: WHAT OBJECT: REASON", so a full disk
// reads as the file, the dataset and "No space left on device".
//
// Writing. An H5W is a file being written that keeps its first failure: every
// call after it does nothing and returns -1, and the caller checks once, at
// h5w_commit. h5w_create makes "<path>.tmp" (serial, sec2); h5w_commit closes
// it (the flush of HDF5's caches is where a full disk often shows), fsyncs it,
// renames it to path and fsyncs the directory, so that a file under its final
// name is complete and on disk: the stages' resume logic rests on that (a
// model.h5 is a finished job, an eval.h5 a finished evaluation). On any
// failure the temporary is removed and the message returned. h5w_wrap checks
// the writes into a file opened elsewhere (the parallel feature file, whose
// collective rules stay the caller's).
//
// The h5_create_tmp / h5_write_* / h5_set_attr_* / h5_commit forms die with
// the same messages: the single-process check-* tools use them.
//
// Reading what a file claims. Readers meet files that lie (fuzz/): every
// number that becomes an integer is checked to be a whole number in range
// first (h5_attr_int: a NaN or 1e300 cast to int is undefined behaviour), a
// string attribute must hold one string, and a dataset is allocated only once
// its dims have been checked for overflow and the file stores the bytes they
// claim (a few KB of file must not make a reader allocate gigabytes).
//
// Format versions. Every file stsae writes and reads back carries a root
// attribute format_version (an integer), written by h5w_format_version and
// checked by h5_check_format_version; the module that owns the format
// (model.h: model.h5, ckpt.h5; eval.h: eval.h5; report.h: results.h5) names
// the version. A file without it is from before versions: version 1.
#ifndef STSAE_H5IO_H
#define STSAE_H5IO_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

// --- why a call failed ------------------------------------------------------------

// The reason the HDF5 call that just failed gave, from this thread's error
// stack (walked with H5Ewalk2, then cleared): the system's text where a
// driver recorded one ("No space left on device (H5FD_sec2_write: file write
// failed)"), else the innermost message and function ("MPI_File_write_at_all
// failed: MPI error string is '...' (H5FD__mpio_write)"). Into buf (cap
// bytes); returns 1 when it holds the system's text, else 0.
int h5_error_text(char *buf, size_t cap);

// "FILE: WHAT: REASON" into err (cap bytes), WHAT formatted from fmt (name
// the object: "cannot write dataset 'params'"), REASON h5_error_text's. Where
// the stack gives no system text (the MPI-IO driver's) and FILE's file system
// has (next to) nothing free, REASON starts with "No space left on device"
// and the free bytes. Returns -1.
int h5_fail(char *err, size_t cap, const char *file, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

// --- reading (dies naming the file, the object and the reason) ---------------------

hid_t h5_open_read(const char *path); // dies naming path if it is not a readable HDF5 file

// Attributes of the root group. *_opt return `def` when the attribute is absent.
double h5_attr_f64(hid_t f, const char *path, const char *name);
double h5_attr_f64_opt(hid_t f, const char *path, const char *name, double def);
// One number (integer or float type) that is a whole number in [lo, hi]; dies
// otherwise ("FILE: root attribute k = 0 must be a whole number in [1, 16]").
long long h5_attr_int(hid_t f, const char *path, const char *name, long long lo, long long hi);
long long h5_attr_int_opt(hid_t f, const char *path, const char *name, long long lo, long long hi, long long def);
// One string (dies for an array of them, or an empty one), cut to cap - 1 bytes.
void h5_attr_str(hid_t f, const char *path, const char *name, char *out, size_t cap);
// An integer (scalar or 1-D) attribute of 1..cap values into out; returns the count.
int h5_attr_ints(hid_t f, const char *path, const char *name, int *out, int cap);

// Dies unless the root attribute format_version is `reads` (absent: 1):
// "FILE: format_version 2; this stsae reads 1".
void h5_check_format_version(hid_t f, const char *path, int reads);

// The dims of dataset dset, which must exist with `rank` dimensions (dies
// naming it otherwise); nothing is read (check a shape before reading).
void h5_dims(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims);
// Reads a whole dataset as float32 (or uint8, int64), checking it has `rank`
// dimensions, that their product does not overflow and that the file stores
// the bytes they claim (dies otherwise); dims receives them. Returns a
// malloc'ed buffer.
float *h5_read_f32(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims);
uint8_t *h5_read_u8(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims);
int64_t *h5_read_i64(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims);
// A 1-D dataset of variable-length strings (as h5w_strings writes them) into
// a malloc'ed array of *n malloc'ed strings; dies naming the file and the
// dataset if it is anything else.
char **h5_read_strings(hid_t f, const char *path, const char *dset, int *n);
int h5_exists(hid_t f, const char *dset);

// --- writing, every return checked ----------------------------------------------------

typedef struct {
    hid_t f;          // the open file (H5I_INVALID_HID once closed)
    char path[4096];  // its final name
    char tmp[4104];   // the name it is written under ("" after h5w_wrap)
    int failed;       // 1 after the first failure
    char err[8704];   // that failure: "FILE: WHAT: REASON" (two paths and a reason fit)
} H5W;

// Creates "<path>.tmp" (truncating one left by a crash). 0, or -1 with w->err.
int h5w_create(H5W *w, const char *path);
// Checks writes into f, an open file named path (not closed by h5w_*).
void h5w_wrap(H5W *w, hid_t f, const char *path);
// Datasets (intermediate groups made), written whole; 0, or -1 with w->err.
int h5w_f32(H5W *w, const char *dset, const float *data, int rank, const hsize_t *dims);
int h5w_f64(H5W *w, const char *dset, const double *data, int rank, const hsize_t *dims);
int h5w_i64(H5W *w, const char *dset, const int64_t *data, int rank, const hsize_t *dims);
int h5w_i32(H5W *w, const char *dset, const int32_t *data, int rank, const hsize_t *dims);
int h5w_u8(H5W *w, const char *dset, const uint8_t *data, int rank, const hsize_t *dims);
int h5w_scalar(H5W *w, const char *dset, double v);
// n strings as a 1-D dataset of variable-length UTF-8 strings (h5py: str).
int h5w_strings(H5W *w, const char *dset, char *const *s, size_t n);
// Root attributes; an integer one is a scalar for n = 1, else 1-D
// (h5_attr_ints reads either back).
int h5w_attr_f64(H5W *w, const char *name, double v);
int h5w_attr_str(H5W *w, const char *name, const char *v);
int h5w_attr_ints(H5W *w, const char *name, const int *v, int n);
// The root attribute format_version (a scalar int32) = version.
int h5w_format_version(H5W *w, int version);
// h5w_create's file: closed, synced, renamed to path, directory synced. 0, or
// -1 with the first failure in err (cap bytes) and the temporary removed.
int h5w_commit(H5W *w, char *err, size_t cap);
// Closes and removes h5w_create's temporary (the caller failed elsewhere).
void h5w_discard(H5W *w);

// The same, dying with the message (single-process tools). The file's name
// in the messages comes from H5Fget_name.
hid_t h5_create_tmp(const char *path);
void h5_commit(hid_t f, const char *path);
void h5_write_f32(hid_t f, const char *dset, const float *data, int rank, const hsize_t *dims);
void h5_write_f64(hid_t f, const char *dset, const double *data, int rank, const hsize_t *dims);
void h5_write_i64(hid_t f, const char *dset, const int64_t *data, int rank, const hsize_t *dims);
void h5_write_i32(hid_t f, const char *dset, const int32_t *data, int rank, const hsize_t *dims);
void h5_write_scalar(hid_t f, const char *dset, double v);
void h5_set_attr_f64(hid_t obj, const char *name, double v);
void h5_set_attr_str(hid_t obj, const char *name, const char *v);
void h5_set_attr_ints(hid_t obj, const char *name, const int *v, int n);
void h5_write_strings(hid_t f, const char *dset, char *const *s, size_t n);
// Dies with h5_fail's message unless rc >= 0: a raw HDF5 call of a tool,
// `h5_check(H5Dwrite(ds, ...), ds, "cannot write dataset '%s'", name)`; the
// file is the one holding obj.
void h5_check(int64_t rc, hid_t obj, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
