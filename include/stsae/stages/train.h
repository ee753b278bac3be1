// train.h — `stsae train DECK [key=value ...]` (SPEC §5): every job of the
// deck's grid as one multi-rank job; see src/stages/train.c for what it writes.
// Exit status: 0 all jobs done, 1 error, 3 stopped by a signal after
// checkpointing (run again to continue).
#ifndef STSAE_TRAIN_H
#define STSAE_TRAIN_H

int train_main(int argc, char **argv);

#endif
