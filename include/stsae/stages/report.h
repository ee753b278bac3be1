// report.h — `stsae report RUN_DIR` (SPEC §6): results.h5, results.csv,
// results.md and the plots from a run's evaluations; see src/stages/report.c.
// results.h5 carries format_version (RESULTS_FORMAT_VERSION) for its readers
// (analysis/plots.py); the eval.h5 files read are checked against eval.h's.
#ifndef STSAE_REPORT_H
#define STSAE_REPORT_H

// The format version of results.h5 that this stsae writes.
#define RESULTS_FORMAT_VERSION 1

int report_main(int argc, char **argv);

#endif
