// run.h — `stsae run DECK [key=value ...]` (SPEC §5): every stage the deck
// names, in order (synth, extract, train, eval, report), each resuming what
// is already done; see src/stages/run.c.
#ifndef STSAE_RUN_H
#define STSAE_RUN_H

int run_main(int argc, char **argv);

#endif
