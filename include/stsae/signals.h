// signals.h — SIGTERM and SIGUSR1 as a request to stop cleanly: the long
// stages (extract, train) poll the flag at a safe point (after a round of
// clips, after a training step), agree on it across their ranks, write what
// they must (flushed file, checkpoints) and exit with status 3, so that a
// SLURM job script can requeue itself (jobscripts/).
#ifndef STSAE_SIGNALS_H
#define STSAE_SIGNALS_H

void stop_signals_install(void);
int stop_requested(void); // 1 once SIGTERM or SIGUSR1 has arrived

#endif
