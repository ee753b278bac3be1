// stage.h — the start-up every MPI stage shares (`stsae STAGE DECK
// [key=value ...]`), written once: the usage line, the deck loaded with its
// overrides and checked against the schema, the stage's section present, and
// the verdict agreed over the ranks; and the one cleanup path.
//
// In:  the stage's argc/argv (argv[0] the deck path, then `a.b=value`
//      overrides), what the stage needs of the deck (StageSpec), and the world
//      communicator (comm.h).
// Out: a Stage holding the loaded deck (defaults filled in), the deck's path,
//      the world, this rank and the number of ranks, and an error buffer for
//      the stage's further agreed checks. Nothing is printed but by rank 0:
//      a missing deck argument is `usage: stsae NAME DECK [key=value ...]`
//      (exit status 2); a bad deck is deck.h's one message (`FILE:LINE: key:
//      ...`), a missing section `DECK: the deck has no SECTION section`, exit
//      status 1 on every rank together (comm_agree).
//
// Why: a deck error is an error every rank sees (LAMMPS' Error::all): every
// rank loads the same deck and reaches the same verdict, so the ranks leave
// together and none waits in a collective the others never reach.
//
// How a stage adopts it (train.c is the model):
//     static const StageSpec spec = {"extract", "extract", NULL, NULL};
//     Stage st;
//     int rc = stage_start(&st, &spec, argc, argv);
//     if (rc) return rc;               // the message is printed, every rank agrees
//     ... resolve the stage's options once (deck/options.h) from st.deck,
//         agree on their errors with stage_agree(&st, ok) (message in st.err) ...
//     ... work ...
//     stage_finish(&st);               // on every path out, once
// stage_write_deck echoes the deck as resolved (stdout, or a RUN_DIR/STAGE.yaml
// written through paths.h's temporary-name commit). eval, whose eval section
// may be absent, sets spec.fill = "eval" (its defaults are loaded instead)
// and spec.why = "(its jobs are evaluated)" beside section = "train".
#ifndef STSAE_STAGE_H
#define STSAE_STAGE_H

#include <stdio.h>

#include "stsae/comm/comm.h"
#include "stsae/deck/deck.h"

typedef struct {
    const char *name;    // "train": the usage line and the deck echo's header
    const char *section; // the deck section the stage needs ("train"), or NULL (any deck)
    const char *why;     // NULL, or words after "the deck has no SECTION section" in its message
    const char *fill;    // NULL, or a section added with its defaults when the deck has none ("eval")
} StageSpec;

typedef struct {
    const StageSpec *spec;
    const char *deck_path; // argv[0], as given
    Deck *deck;            // loaded and checked; NULL when stage_start failed
    Comm *world;
    int rank, size;        // this rank in the world, the ranks of the run
    char err[8192];        // the message of a failed check (stage_agree prints it from rank 0)
} Stage;

// The start-up above. 0 when every rank has the deck, else the exit status
// (2 usage, 1 a bad deck or a missing section) with the message printed once
// by rank 0; collective over the world (except the usage error, which every
// rank sees alike and returns before any collective). Call stage_finish after
// either.
int stage_start(Stage *s, const StageSpec *spec, int argc, char **argv);

// comm_agree over the world with s->err: 1 when every rank is ok, else 0 with
// rank 0 printing the message (its own, or that another rank failed).
int stage_agree(Stage *s, int ok);

// device: cuda (device is the deck's `device`): each rank on the GPU of its
// index on its node (device.h device_use; ranks beyond the node's GPUs share
// them), agreed on: a build without CUDA or a rank without a device stops
// every rank, rank 0 saying why (naming the rank and its host); rank 0 lists
// the GPUs. 1 (bound), 0 (device: cpu), -1 (said; collective either way).
int stage_use_device(Stage *s, const char *device);
// "# stsae VERSION NAME: DECK as run (defaults filled in)" and the deck as
// resolved (deck_write), to out.
void stage_write_deck(const Stage *s, FILE *out);

// Frees what stage_start made; safe after a failed start and a second time.
void stage_finish(Stage *s);

#endif
