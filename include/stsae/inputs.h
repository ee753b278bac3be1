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
//       same names numbers them alike); mixing both is an error.
//     - split: train | test (also 0 | 1, val | validation for test); empty or
//       absent: not given (-1, see inputs_default_split).
//     - path: relative paths are resolved against the CSV's directory;
//       clip_id is the path as written. A path listed twice is an error.
// (b) Something-Something v2: the annotation JSON (a list of {id, label,
//     template, placeholders}) and labels.json ({template name: "index"}).
//     A clip's class is its template with the brackets removed ("Putting
//     [something] on [something]" -> "Putting something on something"), looked
//     up in labels.json; path VIDEOS/<id>.webm; clip_id <id>; split not given
//     (one annotation file is one split of SSv2).
// (c) Kinetics-400 CSV: `label,youtube_id,time_start,time_end,split` (a
//     header naming these columns, in any order and with extra columns, or
//     this order without a header); path
//     VIDEOS/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4, clip_id the
//     same without directory and extension; classes in byte order of the
//     names; split train -> 0, val | validation | test -> 1.
//
// Errors are one message naming the file and line (JSON: the line where the
// entry starts), returned, never printed or fatal, so that every rank reading
// the same list reaches the same verdict.
#ifndef STSAE_INPUTS_H
#define STSAE_INPUTS_H

#include <stddef.h>
#include <stdint.h>

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

// Gives every clip whose split is not given one, stratified by label: within
// each label, round(test_frac * count) of those clips (chosen by a seeded
// shuffle) go to test, the rest to train. Clips with a split keep it.
void inputs_default_split(ClipList *l, double test_frac, uint64_t seed);

#endif
