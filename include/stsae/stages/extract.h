// extract.h — `stsae extract DECK [key=value ...]` (SPEC §3, §4): the feature
// file from video clips on any number of ranks; see src/stages/extract.c.
#ifndef STSAE_EXTRACT_H
#define STSAE_EXTRACT_H

#include <stddef.h>

#include "stsae/deck/options.h" // ExtractInput
#include "stsae/io/inputs.h"

int extract_main(int argc, char **argv);

// The clip list of a deck's extract.input (ExtractOptions.input, options.h),
// relative paths under run_dir (the report uses it to find the videos of
// clips). For the `pixels` input: labels and splits from the pixels file,
// paths naming that file, and *pixels set (malloc'ed; NULL otherwise). 0, or
// -1 with the message in err, l empty and *pixels NULL (nothing to free).
int extract_clip_list(const ExtractInput *in, const char *run_dir, ClipList *l, char **pixels, char *err, size_t cap);

#endif
