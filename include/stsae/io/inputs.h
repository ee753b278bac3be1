// inputs.h — the list of labelled clips a run reads (SPEC §4 "Inputs"), from
// one of three sources, into one form: {path, clip_id, label, split} per clip
// plus the label names.
//
// (a) CSV, one clip per line: `path,label[,split]`.
//     - A header is optional: a first line whose first field is `path` is one.
//       Blank lines and lines starting with `#` are skipped. Fields may be
//       quoted ("a, b" with "" for a quote), so names may hold commas.
//     - label: all integers (indices; the names are "0" .. "max") or all names
//       (indices in byte order of the distinct names, so every list of the
//       same names numbers them alike); mixing both is an error. A label of
//       decimal digits (with an optional sign) is an index, and must be
//       0 .. INPUTS_MAX_LABELS-1: "-1" or "1000000000" is an error naming the
//       line, never a table of that size.
//     - split: train | test (also 0 | 1, val | validation for test); empty or
//       absent: not given (-1, see inputs_default_split).
//     - path: relative paths are resolved against the CSV's directory;
//       clip_id is the path as written. A path listed twice is an error.
// (b) Something-Something v2: the annotation JSON (a list of {id, label,
//     template, placeholders}) and labels.json ({template name: "index"}).
//     A clip's class is its template with the brackets removed ("Putting
//     [something] on [something]" -> "Putting something on something"), looked
//     up in labels.json; path VIDEOS/<id>.webm; clip_id <id>; split not given
//     (one annotation file is one split of SSv2). labels.json's indices must
//     be exactly 0 .. n-1 for its n labels (n <= INPUTS_MAX_LABELS; SSv2 has
//     174): an index >= n is an error at its line, checked before anything
//     is sized by it. Ids are kept whole, however long.
// (c) Kinetics-400 CSV: `label,youtube_id,time_start,time_end,split` (a
//     header naming these columns, in any order and with extra columns, or
//     this order without a header); path
//     VIDEOS/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4, clip_id the
//     same without directory and extension (a youtube_id holding '/' is an
//     error: the file would lie outside VIDEOS); classes in byte order of the
//     names; split train -> 0, val | validation | test -> 1.
//
// (d) The preprocessed-pixels input's /labels (read by extract.c as float):
//     inputs_check_label_values bounds them the same way before they are used.
//
// Errors are one message naming the file and line (JSON: the line where the
// entry starts) and, for a file that cannot be read, the system's reason;
// returned, never printed or fatal, so that every rank reading the same list
// reaches the same verdict. A CSV holds at most 2^28 lines and a JSON file
// 2^28 entries.
#ifndef STSAE_INPUTS_H
#define STSAE_INPUTS_H

#include <stddef.h>
#include <stdint.h>

// At most this many labels (indices 0 .. 65535) in any list: far more than any
// action set (Kinetics-700 has 700, SSv2 174, even ImageNet-21k 21841), and
// small enough that a table of label names costs at most a few MiB.
#define INPUTS_MAX_LABELS 65536
// At most this many clips in any list (lines of a CSV, entries of a JSON
// file, clips of a preprocessed-pixels file): clip counts fit an int.
#define INPUTS_MAX_ROWS (1 << 28)

typedef struct {
    char *path;    // the video file, resolved
    char *clip_id; // unique within the list
    int label;     // index into label_names
    int split;     // 0 train, 1 test, -1 not given
} ClipEntry;

typedef struct {
    ClipEntry *clip;
    int n;
    char **label_names;
    int n_labels;
} ClipList;

int inputs_read_csv(const char *csv, ClipList *out, char *err, size_t errcap);
int inputs_read_ssv2(const char *videos, const char *annotations, const char *labels, ClipList *out, char *err,
                     size_t errcap);
int inputs_read_k400(const char *videos, const char *csv, ClipList *out, char *err, size_t errcap);
void inputs_free(ClipList *l);

// Labels given as numbers (the preprocessed-pixels file's /labels, read as
// float): 0 when every v[i] is an integer 0 .. INPUTS_MAX_LABELS-1, so that
// (int)v[i] is defined and max + 1 label names are few; otherwise -1 with
// "FILE: OBJECT[i] = VALUE is not a label index (an integer 0..65535)".
int inputs_check_label_values(const char *file, const char *object, const float *v, size_t n, char *err,
                              size_t errcap);

// Gives every clip whose split is not given one, stratified by label: within
// each label, round(test_frac * count) of those clips (chosen by a seeded
// shuffle) go to test, the rest to train. Clips with a split keep it.
void inputs_default_split(ClipList *l, double test_frac, uint64_t seed);

#endif
