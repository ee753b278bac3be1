// fuzz_h5.h — writing the HDF5 file a structure-aware fuzz target's input
// describes (fuzz_features.c, fuzz_model.c).
//
// In:  the fuzz input as a FuzzBytes stream, and what the target wants to
//      write (an attribute's name and intended value, a dataset's name,
//      rank, dims and the value each element should hold).
// Out: objects in a valid HDF5 file, written with the HDF5 API, whose types,
//      shapes and values the input decides: any integer or float type the
//      readers may meet (float16 either byte order, bfloat16, float32/64,
//      custom floats whose fields come from the input, 8..64-bit integers of
//      either sign), strings fixed or variable, scalar, 1-D, null or empty
//      dataspaces, contiguous or chunked layouts, written or left to the fill
//      value (so a few bytes of input can claim 2^40 elements).
//
// Why not raw bytes: a mutated HDF5 file mostly exercises libhdf5's own
// parser (not ours; 1.10 has known crashes on crafted files). Valid files
// whose content lies exercise the checks of our readers instead. Every call
// that HDF5 refuses (a type it cannot build, dims too large for a layout) is
// skipped silently: the object is then absent, which is one more case.
#ifndef STSAE_FUZZ_H5_H
#define STSAE_FUZZ_H5_H

#include <hdf5.h>

#include "fuzz_util.h"

// Creates path (truncating) with the input's choice of format bounds.
hid_t fh_create(FuzzBytes *b, const char *path);

// A numeric file type: usual (the input's first choice, mostly `usual`) or
// any of the list above. The caller closes it.
hid_t fh_num_type(FuzzBytes *b, hid_t usual);

// Root (or loc) attribute `name` meant to hold `value`: usually a scalar of a
// numeric type (usual) with that value; sometimes absent, a string, a 1-D
// pair, an empty or null dataspace, or another value (fb_double).
void fh_attr_num(FuzzBytes *b, hid_t loc, const char *name, double value, hid_t usual);
// Attribute `name` meant to hold the string s: usually a variable-length
// UTF-8 string with it; sometimes fixed-length (maybe too short, maybe
// huge), a number, a pair of strings, empty, or other text from the input.
void fh_attr_str(FuzzBytes *b, hid_t loc, const char *name, const char *s);

// Dataset `name` (intermediate groups made) of the given rank and dims, of
// file type `type` (not closed here), chunked or contiguous as the input
// says. When the element count is at most max_write, each element i gets
// value(i, ctx) converted by HDF5 from double, or, when raw is not NULL, the
// input's next bytes as they are in the file type (*raw: a malloc'ed copy of
// them, the caller frees it; NULL when nothing was written); else it is left
// unwritten. Returns 0 when the dataset exists afterwards.
int fh_dataset(FuzzBytes *b, hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
               double (*value)(size_t i, void *ctx), void *ctx, unsigned char **raw, size_t max_write);

// A 1-D dataset of n strings (n from the caller, as the file would claim),
// variable-length or fixed-length as the input says; contents from s(i) when
// n is at most max_write, else unwritten.
int fh_strings(FuzzBytes *b, hid_t loc, const char *name, hsize_t n, const char *(*s)(size_t i, void *ctx), void *ctx,
               size_t max_write);

#endif
