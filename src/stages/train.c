// train.c — `stsae train DECK [key=value ...]`: every job of the deck's grid
// as one multi-rank MPI job (SPEC §1, §5).
//
// In:  a deck (every rank loads it; a bad deck is one message from rank 0 and
//      exit status 1 on every rank), the feature file of train.features.
// Out: RUN_DIR/train.yaml (the deck as run, defaults filled in), and per job
//      what train_job.h writes; on stdout, the resolved deck, the plan (jobs per
//      group), progress lines, and a table of seconds per stage with min /
//      avg / max over the ranks. Exit status 0 when every job is done, 3 when
//      a stop request (stop_request.h: a signal or RUN_DIR/STOP) stopped the run after
//      checkpointing (run it again to go on), 1 on every rank when a write
//      failed (train.yaml, a job's directory, ckpt.h5, model.h5: a full disk),
//      each rank naming the file and the reason.
//
// The world is split into groups of train.ranks_per_job ranks; the jobs are
// dealt to the groups by cost, longest first, each to the least loaded group
// (the same plan on every rank, for any restart). Inside a group, training
// is data-parallel and exact (train_job.h, comm.h).
#define _POSIX_C_SOURCE 200809L // strdup
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/base/stop_request.h"
#include "stsae/comm/comm.h"
#include "stsae/deck/deck.h"
#include "stsae/deck/deck_schema.h"
#include "stsae/deck/jobs.h"
#include "stsae/io/features.h"
#include "stsae/stages/train.h"
#include "stsae/stages/train_data.h"
#include "stsae/stages/train_job.h"

// Writes the resolved deck to RUN_DIR/train.yaml (temporary name, synced,
// renamed: paths.h). 0, or -1 with the file and the reason in err.
static int save_deck(const Deck *d, const char *run_dir, const char *deck_path, char *err, size_t cap) {
    char *path = path_join(run_dir, "train.yaml");
    char tmp[4200];
    FILE *fp = path_tmp_open(path, tmp, sizeof(tmp), err, cap);
    int rc = -1;
    if (fp) {
        fprintf(fp, "# stsae %s train: %s as run (defaults filled in)\n", STSAE_VERSION, deck_path);
        deck_write(d, fp);
        rc = path_tmp_commit(fp, tmp, path, err, cap);
    }
    free(path);
    return rc;
}

// A write that failed on some rank (its message agreed on: comm.h), said by
// every rank: each exits with status 1 knowing the file and the reason.
static void say_failed(int rank, const char *msg) {
    fprintf(stderr, "stsae: error (rank %d): train: %s\n", rank, msg);
    fflush(stderr);
}

// Longest processing time first: jobs by decreasing cost (ties by index),
// each to the group with the least cost so far (ties: the lowest group).
static void deal_jobs(const JobList *jobs, int n_groups, int *group_of, double *load) {
    int *order = xmalloc(sizeof(int) * (size_t)(jobs->n ? jobs->n : 1));
    for (int i = 0; i < jobs->n; i++) order[i] = i;
    for (int i = 1; i < jobs->n; i++) // insertion sort: stable, n is small
        for (int j = i; j > 0 && jobs->job[order[j]].cost > jobs->job[order[j - 1]].cost; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int g = 0; g < n_groups; g++) load[g] = 0.0;
    for (int i = 0; i < jobs->n; i++) {
        int best = 0;
        for (int g = 1; g < n_groups; g++)
            if (load[g] < load[best]) best = g;
        group_of[order[i]] = best;
        load[best] += jobs->job[order[i]].cost;
    }
    free(order);
}

int train_main(int argc, char **argv) {
    Comm *world = comm_world();
    const int rank = comm_rank(world), size = comm_size(world);
    if (argc < 1) {
        if (rank == 0) fprintf(stderr, "usage: stsae train DECK [key=value ...]\n");
        return 2;
    }
    char err[1024] = "";
    Deck *d = deck_load(argv[0], stsae_schema, argc - 1, argv + 1, err, sizeof(err));
    JobList *jobs = d ? jobs_expand(d, err, sizeof(err)) : NULL;
    if (jobs && !deck_has(d, "train")) snprintf(err, sizeof(err), "%s: the deck has no train section", argv[0]);
    int ok = jobs && deck_has(d, "train");
    int rpj = ok ? (int)deck_int(d, "train.ranks_per_job") : 1;
    if (ok && size % rpj) {
        char where[512];
        deck_where(d, "train.ranks_per_job", where, sizeof(where));
        deck_errorf(err, sizeof(err), where, "train.ranks_per_job", "%d does not divide the %d ranks of the run", rpj, size);
        ok = 0;
    }
    if (!comm_agree(world, ok, err)) {
        jobs_free(jobs);
        deck_free(d);
        return 1;
    }
    const char *run_dir = deck_str(d, "run_dir");
    if (rank == 0) {
        printf("# stsae %s train: %s as run (defaults filled in)\n", STSAE_VERSION, argv[0]);
        deck_write(d, stdout);
        if (rpj > deck_int(d, "train.streams"))
            printf("# note: train.ranks_per_job = %d exceeds train.streams = %lld: ranks beyond the streams get no "
                   "tokens in jobs of loose tokens or pairs (raise train.streams)\n",
                   rpj, (long long)deck_int(d, "train.streams"));
        if (!strcmp(deck_str(d, "device"), "cuda"))
            printf("# note: device cuda: the CUDA training path is not in this build's training driver yet; "
                   "training runs on the CPU\n");
        fflush(stdout);
    }
    ok = rank != 0 || path_mkdirs(run_dir, err, sizeof(err)) == 0;
    if (!comm_agree(world, ok, err)) {
        return 1;
    }
    char werr[COMM_MSG_MAX] = "";
    ok = rank != 0 || save_deck(d, run_dir, argv[0], werr, sizeof(werr)) == 0;
    if (!comm_agree_msg(world, ok, werr, sizeof(werr), 0)) {
        say_failed(rank, werr);
        return 1;
    }

    // the feature file, its training clips, the input scale
    char *feat_path = path_join(run_dir, deck_str(d, "train.features"));
    FeatureFile f;
    ok = features_open(&f, feat_path, (int)deck_int(d, "train.layer"), err, sizeof(err)) == 0;
    if (!comm_agree(world, ok, err)) {
        features_close(&f);
        return 1;
    }
    int32_t *train = NULL;
    const int n_train = features_clips(&f, 0, &train);
    snprintf(err, sizeof(err), "%s: no training clip (split 0 and done) in the feature file", feat_path);
    if (!comm_agree(world, n_train > 0, err)) {
        return 1;
    }
    // every job against this data before any job trains (k <= m, batches, T, W, ...)
    const DataShape shape = {f.d, f.T, f.H, f.W, n_train, feat_path};
    if (!comm_agree(world, jobs_check(d, jobs, &shape, err, sizeof(err)) == 0, err)) {
        return 1;
    }
    float *mean = xmalloc(sizeof(float) * (size_t)f.d);
    const double t_scale = wall_time();
    const float scale = data_input_scale(&f, train, n_train, deck_int(d, "train.scale_sample"), world, mean);

    // groups and the plan
    const int n_groups = size / rpj, gi = rank / rpj;
    Comm *group = comm_split(world, gi, rank);
    int *group_of = xmalloc(sizeof(int) * (size_t)(jobs->n ? jobs->n : 1));
    double *load = xmalloc(sizeof(double) * (size_t)n_groups);
    deal_jobs(jobs, n_groups, group_of, load);
    if (rank == 0) {
        printf("# features: %s, layer %d: %d clips (%d for training), T=%d, H=%d, W=%d, d=%d; input scale %.6g "
               "(%.1f s)\n",
               feat_path, f.layer, f.n_clips, n_train, f.T, f.H, f.W, f.d, scale, wall_time() - t_scale);
        printf("# %d jobs on %d group%s of %d rank%s:", jobs->n, n_groups, n_groups > 1 ? "s" : "", rpj, rpj > 1 ? "s" : "");
        for (int g = 0; g < n_groups; g++) {
            int n = 0;
            for (int i = 0; i < jobs->n; i++) n += group_of[i] == g;
            printf("%s group %d: %d (cost %.1f)", g ? "," : "", g, n, load[g]);
        }
        printf("\n");
        fflush(stdout);
    }

    stop_watch(run_dir, comm_rank(group) == 0); // each group's rank 0 polls the stop file
    TrainEnv env;
    memset(&env, 0, sizeof(env));
    env.deck = d;
    env.run_dir = run_dir;
    env.features = &f;
    env.train = train;
    env.n_train = n_train;
    env.scale = scale;
    env.mean = mean;
    env.group = group;
    env.group_index = gi;
    env.n_groups = n_groups;
    int stopped = 0, done = 0, skipped = 0, failed = 0;
    for (int i = 0; i < jobs->n && !stopped && !failed; i++) {
        if (group_of[i] != gi) continue;
        JobOutcome o = trainer_run(&env, &jobs->job[i]);
        stopped = o == JOB_STOPPED;
        failed = o == JOB_FAILED;
        done += o == JOB_FINISHED;
        skipped += o == JOB_SKIPPED;
    }
    // a group whose write failed (a full disk) stopped at once; the others
    // learn it when their own jobs are through, and every rank exits 1 with
    // the first failing rank's message (finished jobs stay done, the rest
    // resume from their last checkpoint on the next run)
    snprintf(werr, sizeof(werr), "%s", env.err);
    if (!comm_agree_msg(world, !failed, werr, sizeof(werr), 0)) {
        say_failed(rank, werr);
        comm_free(group);
        free(group_of), free(load), free(mean), free(train), free(feat_path);
        features_close(&f);
        jobs_free(jobs);
        deck_free(d);
        return 1;
    }
    int any_stopped = stopped;
    comm_allreduce(world, &any_stopped, 1, COMM_I32, COMM_MAX, NULL);
    comm_stage_table(world, TIMER_NAMES, env.timers, N_TIMERS);
    if (rank == 0) {
        printf(any_stopped ? "\nstopped on request (signal or stop file): checkpoints written; run the same command "
                             "again to continue\n"
                           : "\nall %d jobs done; models under %s/jobs\n",
               jobs->n, run_dir);
        fflush(stdout);
    }
    if (rank == 0 && any_stopped) stop_consume(run_dir);
    comm_free(group);
    free(group_of), free(load), free(mean), free(train), free(feat_path);
    features_close(&f);
    jobs_free(jobs);
    deck_free(d);
    return any_stopped ? 3 : 0;
}
