// stop_request.h — a request to stop cleanly, whatever the launcher does with signals.
//
// The long stages (extract, train) stop at a safe point (after a round of
// clips, after a training step) when asked, write what they must (the flushed
// feature file, the checkpoints), and exit with status 3 so that a job script
// can requeue itself (jobscripts/). Two ways to ask, each enough alone:
//
// - the stop file RUN_DIR/STOP (`stsae stop DECK`: stages/stop.h, or the job scripts' trap,
//   or `touch`): the polling ranks (rank 0 of each group of ranks) look for it
//   at most once a second; the ranks of a group agree on the request in the
//   collective they already make at each safe point. This path depends on no
//   launcher: Open MPI 4.1's mpirun, for one, does not pass SIGUSR1 on to the
//   ranks when it starts with the signal blocked (seen in CI), and no launcher
//   must pass signals on at all.
// - SIGTERM or SIGUSR1 delivered to a rank (Slurm's --signal without B:, srun
//   or mpirun forwarding them). stop_unblock() at start-up unblocks both, so
//   that a mask inherited from the launcher cannot swallow them.
//
// A stage that stopped for the request removes the stop file as it exits
// (stop_consume), so that the rerun goes on; `stsae run` also looks for it
// between its stages. A stop file present at start stops the stage at its
// first safe point (it says so as it starts).
#ifndef STSAE_STOP_REQUEST_H
#define STSAE_STOP_REQUEST_H

#define STOP_FILE "STOP" // under run_dir

// SIGTERM and SIGUSR1 unblocked in this thread (main(), before any thread starts).
void stop_unblock(void);
// From here on SIGTERM and SIGUSR1 request a stop (instead of ending the
// process); poll_file: this rank also looks for RUN_DIR/STOP.
void stop_watch(const char *run_dir, int poll_file);
// 1 once a signal has arrived or (polling ranks) the stop file was seen.
int stop_requested(void);
// RUN_DIR/STOP, malloc'ed.
char *stop_file_path(const char *run_dir);
// 1 when RUN_DIR/STOP exists.
int stop_file_exists(const char *run_dir);
// Removes RUN_DIR/STOP (rank 0, once the stop it asked for is done).
void stop_consume(const char *run_dir);

#endif
