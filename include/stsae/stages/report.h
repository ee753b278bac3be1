// report.h — `stsae report RUN_DIR` (SPEC §6): results.h5, results.csv,
// results.md and the plots from a run's evaluations; see src/stages/report.c.
#ifndef STSAE_REPORT_H
#define STSAE_REPORT_H

int report_main(int argc, char **argv);

#endif
