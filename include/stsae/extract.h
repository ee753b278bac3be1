// extract.h — `stsae extract DECK [key=value ...]` (SPEC §3, §4): the feature
// file from video clips on any number of ranks; see src/extract.c.
#ifndef STSAE_EXTRACT_H
#define STSAE_EXTRACT_H

int extract_main(int argc, char **argv);

#endif
