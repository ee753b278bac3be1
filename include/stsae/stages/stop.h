// stop.h — `stsae stop [--path] DECK [key=value ...]`: writes the deck's stop
// file RUN_DIR/STOP (stop_request.h), which asks the running extract or train
// to checkpoint and exit 3; with --path it prints the file's path only (the
// job scripts' traps write it). No MPI: it runs from any shell that sees the
// run directory.
#ifndef STSAE_STOP_H
#define STSAE_STOP_H

int stop_main(int argc, char **argv);

#endif
