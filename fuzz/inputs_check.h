// inputs_check.h — the checks the three clip-list fuzz targets make on a list
// that inputs.h's readers accepted (header-only, one copy per target).
//
// In:  a ClipList just read. Out: nothing, or a failed check (an abort, the
//      input kept by libFuzzer) when the list breaks inputs.h's promises:
//      at least one clip, every clip a path and an id, ids unique, labels
//      0 .. n_labels-1 with n_labels in 1 .. INPUTS_MAX_LABELS, every label
//      named, splits -1, 0 or 1; after inputs_default_split every split 0 or 1
//      and clips that had one keep it.
#ifndef STSAE_FUZZ_INPUTS_CHECK_H
#define STSAE_FUZZ_INPUTS_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "stsae/io/inputs.h"

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void check_clip_list(ClipList *l) {
    FUZZ_CHECK(l->n >= 1, "accepted a list of %d clips", l->n);
    FUZZ_CHECK(l->n_labels >= 1 && l->n_labels <= INPUTS_MAX_LABELS, "n_labels = %d", l->n_labels);
    for (int k = 0; k < l->n_labels; k++) FUZZ_CHECK(l->label_names[k], "label %d has no name", k);
    char **ids = malloc(sizeof(char *) * (size_t)l->n);
    int *had = malloc(sizeof(int) * (size_t)l->n);
    for (int i = 0; i < l->n; i++) {
        const ClipEntry *c = &l->clip[i];
        FUZZ_CHECK(c->path && c->clip_id, "clip %d has no path or id", i);
        FUZZ_CHECK(c->label >= 0 && c->label < l->n_labels, "clip %d: label %d of %d", i, c->label, l->n_labels);
        FUZZ_CHECK(c->split >= -1 && c->split <= 1, "clip %d: split %d", i, c->split);
        ids[i] = c->clip_id;
        had[i] = c->split;
    }
    qsort(ids, (size_t)l->n, sizeof(char *), cmp_cstr);
    for (int i = 1; i < l->n; i++) FUZZ_CHECK(strcmp(ids[i], ids[i - 1]) != 0, "clip id '%s' twice", ids[i]);
    inputs_default_split(l, 0.25, 7);
    for (int i = 0; i < l->n; i++) {
        const int s = l->clip[i].split;
        FUZZ_CHECK(s == 0 || s == 1, "after inputs_default_split clip %d has split %d", i, s);
        FUZZ_CHECK(had[i] < 0 || had[i] == s, "inputs_default_split changed clip %d's given split", i);
    }
    free(ids);
    free(had);
}

// A refused list: a non-empty message that fits.
static void check_refusal(const char *err, size_t cap) {
    FUZZ_CHECK(memchr(err, 0, cap) != NULL, "the message is not NUL-terminated");
    FUZZ_CHECK(err[0] != 0, "refused without a message");
    fuzz_note("refused", err);
}

#endif
