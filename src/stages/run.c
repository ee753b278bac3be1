// run.c — `stsae run DECK [key=value ...]`: the whole pipeline of a deck.
//
// In:  a deck and overrides (the same for every stage).
// Out: what each stage writes; at the end, from rank 0, where results.md and
//      the plots are. Stages: synth (if the deck has a synth section), extract
//      (extract section), train (train section), eval (train section; the
//      eval section's options, or their defaults), report (after eval). Each
//      stage resumes what is done (extract reopens its partial file, train
//      skips finished jobs and resumes checkpoints, eval keeps existing
//      eval.h5 files). Exit status: the first stage's that is not 0 (1 error,
//      3 stopped on request: run again to continue), else 0; a stop file
//      (stop_request.h) seen between two stages also ends the run with 3.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/base/stop_request.h"
#include "stsae/comm/comm.h"
#include "stsae/deck/options.h"
#include "stsae/stages/eval.h"
#include "stsae/stages/extract.h"
#include "stsae/stages/report.h"
#include "stsae/stages/run.h"
#include "stsae/stages/stage.h"
#include "stsae/stages/synth.h"
#include "stsae/stages/train.h"

static const StageSpec RUN_STAGE = {"run", NULL, NULL, NULL};

int run_main(int argc, char **argv) {
    Stage st; // every rank loads the same deck: a bad one stops them all here
    int rc = stage_start(&st, &RUN_STAGE, argc, argv);
    if (rc) {
        stage_finish(&st);
        return rc;
    }
    Comm *world = st.world;
    const int rank = st.rank;
    RunOptions o;
    run_options_resolve(st.deck, &o);
    const struct {
        int present; // the deck has the stage's section (eval: train's)
        const char *name;
        int (*main)(int, char **);
    } stages[] = {{o.has_synth, "synth", synth_main},
                  {o.has_extract, "extract", extract_main},
                  {o.has_train, "train", train_main},
                  {o.has_train, "eval", eval_main}};
    const double t0 = wall_time();
    for (size_t s = 0; s < sizeof(stages) / sizeof(*stages) && rc == 0; s++) {
        if (!stages[s].present) continue;
        if (rank == 0) {
            printf("\n=== stsae run: %s (%.0f s so far) ===\n", stages[s].name, wall_time() - t0);
            fflush(stdout);
        }
        rc = stages[s].main(argc, argv);
        comm_barrier(world, NULL);
        // a stop request that came during a stage that has no safe point, or
        // too late for the stage to act on it, stops the pipeline here
        int stop = rc == 0 && rank == 0 && stop_file_exists(o.run_dir);
        comm_bcast(world, &stop, 1, COMM_I32, 0, NULL);
        if (stop) {
            if (rank == 0) {
                printf("\nstsae run: stopped on request (stop file) after %s; run the same command again to "
                       "continue\n", stages[s].name);
                stop_consume(o.run_dir);
            }
            rc = 3;
        }
    }
    if (rc == 0 && o.has_train) {
        const char *run_dir = o.run_dir;
        if (rank == 0) {
            printf("\n=== stsae run: report (%.0f s so far) ===\n", wall_time() - t0);
            fflush(stdout);
        }
        char *dir = (char *)run_dir;
        rc = report_main(1, &dir); // rank 0 writes it, every rank gets its status
        if (rank == 0 && rc == 0) {
            char *md = path_join(run_dir, "results.md"), *plots = path_join(run_dir, "plots"),
                 *browser = path_join(run_dir, "browser/index.html");
            printf("\nstsae run: done in %.0f s.\n  results: %s (tables), results.csv, results.h5\n  plots:   %s/\n",
                   wall_time() - t0, md, plots);
            if (access(browser, F_OK) == 0) printf("  browser: %s (open it in a web browser; no server)\n", browser);
            free(md), free(plots), free(browser);
            fflush(stdout);
        }
    }
    stage_finish(&st);
    return rc;
}
