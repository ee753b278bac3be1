// h5io.h — the few HDF5 reads and writes the serial tools need (check-step,
// checkpoints), each failing with a message that names the file and the
// dataset or attribute, and files written under a temporary name then
// renamed, so a crash never leaves a half-written file under the final name.
#ifndef STSAE_H5IO_H
#define STSAE_H5IO_H

#include <hdf5.h>
#include <stdint.h>

// Prints the failing call, file and line, and exits.
#define h5Check(call)                                                                       \
    do {                                                                                    \
        if ((call) < 0) die("HDF5 call failed: %s", #call);                                 \
    } while (0)

hid_t h5_open_read(const char *path); // dies naming path if it is not a readable HDF5 file

// Attributes of the root group. *_opt return `def` when the attribute is absent.
double h5_attr_f64(hid_t f, const char *path, const char *name);
double h5_attr_f64_opt(hid_t f, const char *path, const char *name, double def);
void h5_attr_str(hid_t f, const char *path, const char *name, char *out, size_t cap);
// An integer (scalar or 1-D) attribute of 1..cap values into out; returns the count.
int h5_attr_ints(hid_t f, const char *path, const char *name, int *out, int cap);

// Reads a whole dataset as float32 (or uint8), checking it has `rank`
// dimensions; dims receives them. Returns a malloc'ed buffer.
float *h5_read_f32(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims);
uint8_t *h5_read_u8(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims);
int64_t *h5_read_i64(hid_t f, const char *path, const char *dset, int rank, hsize_t *dims);
int h5_exists(hid_t f, const char *dset);

// Writing: h5_create_tmp makes "<path>.tmp"; h5_commit closes and renames it.
hid_t h5_create_tmp(const char *path);
void h5_commit(hid_t f, const char *path);
void h5_write_f32(hid_t f, const char *dset, const float *data, int rank, const hsize_t *dims);
void h5_write_f64(hid_t f, const char *dset, const double *data, int rank, const hsize_t *dims);
void h5_write_i64(hid_t f, const char *dset, const int64_t *data, int rank, const hsize_t *dims);
void h5_write_scalar(hid_t f, const char *dset, double v);
// Attributes on an object (the root: the file id).
void h5_set_attr_f64(hid_t obj, const char *name, double v);
void h5_set_attr_str(hid_t obj, const char *name, const char *v);
// n integers as an int32 attribute: a scalar for n = 1, else 1-D
// (h5_attr_ints reads either back).
void h5_set_attr_ints(hid_t obj, const char *name, const int *v, int n);
// n strings as a 1-D dataset of variable-length UTF-8 strings (h5py: str).
void h5_write_strings(hid_t f, const char *dset, char *const *s, size_t n);

#endif
