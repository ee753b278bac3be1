// train.c — `stsae train DECK [key=value ...]`: every job of the deck's grid
// as one multi-rank MPI job (SPEC §1, §5).
//
// In:  a deck (every rank loads it through stage.h and resolves its train
//      section once into TrainOptions, options.h; a bad deck is one message
//      from rank 0 and exit status 1 on every rank), the feature file of
//      train.features.
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
//
// train_main reads as its steps (start, options, echo, run_dir, data, plan,
// jobs, end), each a function below; whatever step it leaves at, one cleanup
// (train_cleanup) frees what was made.
#define _POSIX_C_SOURCE 200809L // strdup
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/base/progress.h"
#include "stsae/base/stop_request.h"
#include "stsae/comm/comm.h"
#include "stsae/comm/comm_device.h"
#include "stsae/comm/device.h"
#include "stsae/deck/options.h"
#include "stsae/io/features.h"
#include "stsae/sae/sae_cuda.h" // dev_alloc, dev_upload_bytes: the resident features
#include "stsae/sae/variants.h"
#include "stsae/stages/stage.h"
#include "stsae/stages/train.h"
#include "stsae/stages/train_data.h"
#include "stsae/stages/train_job.h"

static const StageSpec TRAIN_STAGE = {"train", "train", NULL, NULL};

// One layer of the feature file that some jobs train on: the open layer,
// its input scale and the scaled mean (train_data.h: one scale per layer).
typedef struct {
    int layer;
    FeatureFile f;       // open when f_open
    int f_open;
    float *mean, scale;
} TrainLayer;

// Everything train_main makes, in the order it makes it; train_cleanup frees
// whatever of it exists, on every way out.
typedef struct {
    Stage st;
    TrainOptions opt;
    int have_opt;
    char *feat_path;     // run_dir/train.features
    TrainLayer *layer;   // the layers the jobs train on, in the order of their first job
    int n_layers;
    int32_t *train;      // the training clips (split 0, done)
    int n_train;
    int n_groups, gi;    // groups of ranks_per_job ranks; this rank's
    double t_jobs;       // wall seconds of run_jobs (the training of every job)
    Comm *group;
    int *group_of;       // job -> group (deal_jobs)
    double *load;        // cost per group
    uint16_t *dfeat;     // device: cuda: one layer's training clips on the GPU (resident_features), or NULL
    int32_t *dslot;      // their places ([n_clips])
    int dfeat_layer;     // that layer
    TrainEnv env;
} Train;

// Writes the resolved deck to RUN_DIR/train.yaml (temporary name, synced,
// renamed: paths.h). 0, or -1 with the file and the reason in err.
static int save_deck(const Stage *st, const char *run_dir, char *err, size_t cap) {
    char *path = path_join(run_dir, "train.yaml");
    char tmp[4200];
    FILE *fp = path_tmp_open(path, tmp, sizeof(tmp), err, cap);
    int rc = -1;
    if (fp) {
        stage_write_deck(st, fp);
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

// The deck resolved into TrainOptions, agreed over the ranks (a grid error,
// ranks_per_job not dividing the ranks). 0, or -1 (rank 0 said why).
static int resolve_options(Train *t) {
    t->have_opt = 1;
    const int ok = train_options_resolve(t->st.deck, t->st.size, &t->opt, t->st.err, sizeof(t->st.err)) == 0;
    return stage_agree(&t->st, ok) ? 0 : -1;
}

// Rank 0: the deck as resolved, and notes on settings that will not do what
// they seem to.
static void echo_deck(const Train *t) {
    if (t->st.rank != 0) return;
    const TrainOptions *o = &t->opt;
    stage_write_deck(&t->st, stdout);
    if (o->ranks_per_job > o->streams)
        printf("# note: train.ranks_per_job = %d exceeds train.streams = %lld: ranks beyond the streams get no "
               "tokens in jobs of loose tokens or pairs (raise train.streams)\n",
               o->ranks_per_job, (long long)o->streams);
    if (o->gemm_isa)
        printf("# train.gemm: bf16: the encoder product through oneDNN on %s%s\n", o->gemm_isa,
               o->gemm_native ? "" : ", which has no bf16 products (AVX512-BF16 or AMX): slower than fp32 here");
    fflush(stdout);
}

// run_dir and run_dir/train.yaml, made by rank 0 and agreed on. 0, or -1 (said).
static int make_run_dir(Train *t) {
    const char *run_dir = t->opt.run_dir;
    int ok = t->st.rank != 0 || path_mkdirs(run_dir, t->st.err, sizeof(t->st.err)) == 0;
    if (!stage_agree(&t->st, ok)) return -1;
    char werr[COMM_MSG_MAX] = "";
    ok = t->st.rank != 0 || save_deck(&t->st, run_dir, werr, sizeof(werr)) == 0;
    if (!comm_agree_msg(t->st.world, ok, werr, sizeof(werr), 0)) {
        say_failed(t->st.rank, werr);
        return -1;
    }
    return 0;
}

// The open layer job i trains on.
static TrainLayer *layer_of(const Train *t, int i) {
    for (int l = 0; l < t->n_layers; l++)
        if (t->layer[l].layer == t->opt.jobs->job[i].layer) return &t->layer[l];
    die("train: job %s: layer %d not opened", t->opt.jobs->job[i].name, t->opt.jobs->job[i].layer);
}

// The feature file's layers that the jobs train on (each opened: a layer the
// file lacks is an error naming it), its training clips, every job checked
// against them, and each layer's input scale with its scaled mean. 0, or -1
// (every rank agreed; rank 0 said why).
static int open_data(Train *t) {
    Stage *st = &t->st;
    const JobList *jobs = t->opt.jobs;
    t->feat_path = path_join(t->opt.run_dir, t->opt.features);
    t->layer = xcalloc((size_t)(jobs->n ? jobs->n : 1), sizeof(TrainLayer));
    for (int i = 0; i < jobs->n; i++) {
        int seen = 0;
        for (int l = 0; l < t->n_layers && !seen; l++) seen = t->layer[l].layer == jobs->job[i].layer;
        if (seen) continue;
        TrainLayer *L = &t->layer[t->n_layers++];
        L->layer = jobs->job[i].layer;
        L->f_open = features_open(&L->f, t->feat_path, L->layer, st->err, sizeof(st->err)) == 0;
        if (!stage_agree(st, L->f_open)) return -1;
    }
    const FeatureFile *f = &t->layer[0].f; // every layer has the file's clips and token grid
    t->n_train = features_clips(f, 0, &t->train);
    snprintf(st->err, sizeof(st->err), "%s: no training clip (split 0 and done) in the feature file", t->feat_path);
    if (!stage_agree(st, t->n_train > 0)) return -1;
    // every job against this data before any job trains (k <= m, batches, T, W, ...)
    const DataShape shape = {f->d, f->T, f->H, f->W, t->n_train, t->feat_path, NULL, 0}; // layers: opened above
    if (!stage_agree(st, train_options_check(&t->opt, &shape, st->err, sizeof(st->err)) == 0)) return -1;
    for (int l = 0; l < t->n_layers; l++) {
        TrainLayer *L = &t->layer[l];
        L->mean = xmalloc(sizeof(float) * (size_t)f->d);
        const double t_scale = wall_time();
        L->scale = data_input_scale(&L->f, t->train, t->n_train, t->opt.scale_sample, st->world, L->mean);
        if (st->rank == 0)
            printf("# features: %s, layer %d: %d clips (%d for training), T=%d, H=%d, W=%d, d=%d; input scale %.6g "
                   "(%.1f s)\n",
                   t->feat_path, L->layer, f->n_clips, t->n_train, f->T, f->H, f->W, f->d, L->scale,
                   wall_time() - t_scale);
    }
    return 0;
}

// Tokens of a global batch of job j.
static double job_batch_tokens(const Job *j, const FeatureFile *f) {
    return j->batch_kind == BATCH_CLIPS   ? (double)j->batch * f->T * f->H * f->W
           : j->batch_kind == BATCH_PAIRS ? 2.0 * (double)j->batch
                                          : (double)j->batch;
}

// The memory a job holds on each rank while it trains (an estimate): its
// parameters, gradients and Adam moments, a chunk of the step's
// pre-activations, BatchTopK's candidates (sae.h: counted at 1.5 times
// their least number) and three [tokens, d] buffers of the step. (The
// cohort's two batch buffers, train_prefetch.h, are shared by its jobs and
// not counted here.)
static double job_bytes(const Job *j, const FeatureFile *f, int ranks_per_job) {
    const double d = f->d, m = (double)job_latents(j, f->d);
    const double tok = ceil(job_batch_tokens(j, f) / ranks_per_job);
    const SaeVariant *v = sae_variant_find(j->variant);
    const double rows = fmin(tok, (double)SAE_CHUNK_TOKENS);
    const double cands = v && v->select == SEL_BATCHTOPK ? 1.5 * SAE_BATCH_CAND_PER_K * j->k * tok : 0.0;
    return 4.0 * (4.0 * (2.0 * m * d + m + d) + rows * m + 2.0 * cands + 3.0 * tok * d);
}

// Job i and the later jobs of its group with the same batches (layer, batch
// kind, size and seed: the data loader's inputs that vary by job; planted: any
// seed), at most train.lockstep of them and, past the first, as many as fit
// in train.lockstep_gb together (job_bytes), marked taken, into cohort.
// Returns how many.
static int gather_cohort(const Train *t, int i, uint8_t *taken, const Job **cohort) {
    const JobList *jobs = t->opt.jobs;
    const Job *a = &jobs->job[i];
    const double budget = t->opt.lockstep_gb * 1e9;
    double held = 0.0;
    int n = 0;
    for (int j = i; j < jobs->n && n < t->opt.lockstep; j++) {
        const Job *b = &jobs->job[j];
        if (t->group_of[j] != t->group_of[i] || taken[j] || b->layer != a->layer || b->batch_kind != a->batch_kind ||
            b->batch != a->batch || (b->seed != a->seed && !PLANTED("lockstep_any_seed")))
            continue;
        const double need = job_bytes(b, &t->layer[0].f, t->opt.ranks_per_job);
        if (n > 0 && held + need > budget) continue;
        taken[j] = 1;
        held += need;
        cohort[n++] = b;
    }
    return n;
}

// Feature bytes that training job j reads (its cohort reads them once for
// all its jobs): every training clip's float16 features once per epoch, or
// fewer when train.max_steps stops it first. An estimate for the plan line
// (a window of mixed clips is read whole).
static double job_read_bytes(const Train *t, const Job *j) {
    const FeatureFile *f = &t->layer[0].f;
    const double token = 2.0 * f->d;
    double bytes = (double)t->opt.epochs * t->n_train * (double)f->T * f->N * token;
    if (t->opt.max_steps != INT64_MAX) bytes = fmin(bytes, (double)t->opt.max_steps * job_batch_tokens(j, f) * token);
    return bytes;
}

// The groups of ranks_per_job ranks and the jobs dealt to them; rank 0 prints
// the plan, with the feature bytes the grid reads.
static void plan_groups(Train *t) {
    const JobList *jobs = t->opt.jobs;
    const int rpj = t->opt.ranks_per_job;
    t->n_groups = t->st.size / rpj;
    t->gi = t->st.rank / rpj;
    t->group = comm_split(t->st.world, t->gi, t->st.rank);
    t->group_of = xmalloc(sizeof(int) * (size_t)(jobs->n ? jobs->n : 1));
    t->load = xmalloc(sizeof(double) * (size_t)t->n_groups);
    deal_jobs(jobs, t->n_groups, t->group_of, t->load);
    if (t->st.rank != 0) return;
    printf("# %d jobs on %d group%s of %d rank%s:", jobs->n, t->n_groups, t->n_groups > 1 ? "s" : "", rpj,
           rpj > 1 ? "s" : "");
    for (int g = 0; g < t->n_groups; g++) {
        int n = 0;
        for (int i = 0; i < jobs->n; i++) n += t->group_of[i] == g;
        printf("%s group %d: %d (cost %.1f)", g ? "," : "", g, n, t->load[g]);
    }
    printf("\n");
    uint8_t *taken = xcalloc((size_t)(jobs->n ? jobs->n : 1), 1);
    const Job **cohort = xmalloc(sizeof(Job *) * (size_t)(jobs->n ? jobs->n : 1));
    int passes = 0;
    double read = 0.0, alone = 0.0;
    for (int i = 0; i < jobs->n; i++) {
        alone += job_read_bytes(t, &jobs->job[i]);
        if (!taken[i] && gather_cohort(t, i, taken, cohort) > 0) {
            passes++;
            read += job_read_bytes(t, &jobs->job[i]);
        }
    }
    printf("# %d feature passes for %d jobs (the jobs of a group with the same batches train together: at most "
           "train.lockstep %d, in train.lockstep_gb %g GB per rank): about %.3g GB of features read (%.3g GB one "
           "job at a time)\n", passes, jobs->n, t->opt.lockstep, t->opt.lockstep_gb, read / 1e9, alone / 1e9);
    free(taken);
    free(cohort);
    fflush(stdout);
}

// device: cuda: the cohort's layer held on this rank's GPU as float16
// (train.device_features: resident; auto: when it fits in half the GPU's free
// memory), read once instead of once per epoch; the loader then only names
// each batch's tokens and the GPU assembles the batch (train_job.c). One
// layer at a time: a cohort of another layer replaces it. Leaves env->dfeat
// NULL (batches read from the file and uploaded) otherwise.
static void resident_features(Train *t, const TrainLayer *L) {
    TrainEnv *env = &t->env;
    if (!env->device || strcmp(t->opt.device_features, "stream") == 0) return;
    if (t->dfeat && t->dfeat_layer == L->layer) return;
    dev_free(t->dfeat);
    free(t->dslot);
    t->dfeat = NULL, t->dslot = NULL;
    env->dfeat = NULL, env->dslot = NULL;
    const FeatureFile *f = &L->f;
    const size_t tok = (size_t)f->T * f->N * f->d; // values per clip
    const double bytes = 2.0 * (double)tok * t->n_train, free_b = device_free_bytes();
    const int say = t->st.rank == 0;
    if (strcmp(t->opt.device_features, "auto") == 0 && bytes > 0.5 * free_b) {
        if (say)
            printf("# device features: layer %d (%.3g GB) read from the file each step: more than half of the GPU's "
                   "free %.3g GB (train.device_features)\n", L->layer, bytes / 1e9, free_b / 1e9);
        return;
    }
    const double t0 = wall_time();
    t->dfeat = dev_alloc((size_t)bytes);
    t->dslot = xmalloc(sizeof(int32_t) * (size_t)f->n_clips);
    for (int c = 0; c < f->n_clips; c++) t->dslot[c] = -1;
    uint16_t *buf = xmalloc(sizeof(uint16_t) * tok);
    Progress pr;
    progress_start(&pr, t0, t->opt.progress_every, 0);
    for (int i = 0; i < t->n_train; i++) {
        features_read_clip(f, t->train[i], buf);
        dev_upload_bytes(t->dfeat + (size_t)i * tok, buf, sizeof(uint16_t) * tok);
        t->dslot[t->train[i]] = i;
        const double now = wall_time();
        if (say && progress_due(&pr, now, i + 1 == t->n_train)) {
            char eta[32];
            progress_eta_text(&pr, i + 1, t->n_train, now, eta, sizeof(eta));
            printf("# device features: layer %d: %d/%d clips on the GPU, %.1f clips/s, ETA %s\n", L->layer, i + 1,
                   t->n_train, progress_rate(&pr, i + 1, now), eta);
            fflush(stdout);
        }
    }
    free(buf);
    env->timers[T_DATA] += wall_time() - t0;
    t->dfeat_layer = L->layer;
    env->dfeat = t->dfeat;
    env->dslot = t->dslot;
    if (say) {
        printf("# device features: layer %d resident on the GPU: %d clips, %.3g GB, read once (not once per epoch) in "
               "%.1f s\n", L->layer, t->n_train, bytes / 1e9, wall_time() - t0);
        fflush(stdout);
    }
}

// This group's jobs in cohorts (train_job.h), in the index order of each
// cohort's first job, until one stops or fails. Returns the
// status the world agrees on: 0 all done, 3 some group stopped on request, 1
// some group's write failed (every rank says the first failing rank's message).
static int run_jobs(Train *t) {
    TrainEnv *env = &t->env;
    env->opt = &t->opt;
    env->run_dir = t->opt.run_dir;
    env->train = t->train;
    env->n_train = t->n_train;
    env->group = t->group;
    env->group_index = t->gi;
    env->n_groups = t->n_groups;
    stop_watch(t->opt.run_dir, comm_rank(t->group) == 0); // each group's rank 0 polls the stop file
    t->t_jobs = wall_time();
    const JobList *jobs = t->opt.jobs;
    const Job **cohort = xmalloc(sizeof(Job *) * (size_t)(jobs->n ? jobs->n : 1));
    uint8_t *taken = xcalloc((size_t)(jobs->n ? jobs->n : 1), 1);
    int stopped = 0, failed = 0;
    for (int i = 0; i < jobs->n && !stopped && !failed; i++) {
        if (t->group_of[i] != t->gi || taken[i]) continue;
        const int n = gather_cohort(t, i, taken, cohort);
        const TrainLayer *L = PLANTED("train_one_layer") ? &t->layer[0] : layer_of(t, i); // the cohort's layer
        env->features = &L->f;
        env->scale = L->scale;
        env->mean = L->mean;
        resident_features(t, L);
        const JobOutcome o = trainer_run(env, cohort, n);
        stopped = o == JOB_STOPPED;
        failed = o == JOB_FAILED;
    }
    free(cohort);
    free(taken);
    // a group whose write failed (a full disk) stopped at once; the others
    // learn it when their own jobs are through, and every rank exits 1 with
    // the first failing rank's message (finished jobs stay done, the rest
    // resume from their last checkpoint on the next run)
    char werr[COMM_MSG_MAX];
    snprintf(werr, sizeof(werr), "%s", env->err);
    if (!comm_agree_msg(t->st.world, !failed, werr, sizeof(werr), 0)) {
        say_failed(t->st.rank, werr);
        return 1;
    }
    comm_allreduce(t->st.world, &stopped, 1, COMM_I32, COMM_MAX, NULL);
    t->t_jobs = wall_time() - t->t_jobs;
    return stopped ? 3 : 0;
}

// The seconds per stage over the ranks, the grid's throughput (this run's
// training tokens of every job over the wall time of the jobs: what
// jobscripts/scaling.sh collects), and rank 0's last word.
static void report_end(const Train *t, int rc) {
    comm_stage_table(t->st.world, TIMER_NAMES, t->env.timers, N_TIMERS);
    int64_t tokens = t->env.tokens_trained;
    comm_allreduce(t->st.world, &tokens, 1, COMM_I64, COMM_SUM, NULL);
    if (t->st.rank != 0) return;
    printf("\n# grid throughput: %lld tokens trained in %.3f s = %.0f tok/s on %d rank%s (%d group%s of %d)\n",
           (long long)tokens, t->t_jobs, t->t_jobs > 0 ? (double)tokens / t->t_jobs : 0.0, t->st.size,
           t->st.size > 1 ? "s" : "", t->n_groups, t->n_groups > 1 ? "s" : "", t->opt.ranks_per_job);
    printf(rc == 3 ? "\nstopped on request (signal or stop file): checkpoints written; run the same command "
                     "again to continue\n"
                   : "\nall %d jobs done; models under %s/jobs\n",
           t->opt.jobs->n, t->opt.run_dir);
    fflush(stdout);
    if (rc == 3) stop_consume(t->opt.run_dir);
}

// device: cuda: the group's communicator over its GPUs (comm.backend: NCCL,
// or MPI through host copies; comm_device.h), for the gradient sums; agreed
// over the world, so that a group that cannot make one stops every rank.
// 0, or -1 (said).
static int group_device_comm(Train *t) {
    if (!t->env.device) return 0;
    const CommDeviceBackend b = strcmp(t->opt.comm_backend, "mpi") == 0 ? COMM_DEVICE_MPI : COMM_DEVICE_NCCL;
    char msg[COMM_MSG_MAX] = "";
    t->env.dcomm = comm_device_create(t->group, b, msg, sizeof(msg));
    if (!comm_agree_msg(t->st.world, t->env.dcomm != NULL, msg, sizeof(msg), 0)) {
        if (t->st.rank == 0) say_failed(t->st.rank, msg);
        return -1;
    }
    if (t->st.rank == 0) {
        printf("# device cuda: gradients summed over each group's GPUs by %s\n", comm_device_describe(t->env.dcomm));
        fflush(stdout);
    }
    return 0;
}

// Frees what train_main made, whichever step it stopped at (collective: the
// group's communicator).
static void train_cleanup(Train *t) {
    if (t->dfeat) dev_free(t->dfeat);
    free(t->dslot);
    comm_device_free(t->env.dcomm);
    if (t->group) comm_free(t->group);
    free(t->group_of), free(t->load), free(t->train), free(t->feat_path);
    for (int l = 0; l < t->n_layers; l++) {
        if (t->layer[l].f_open) features_close(&t->layer[l].f);
        free(t->layer[l].mean);
    }
    free(t->layer);
    if (t->have_opt) train_options_free(&t->opt);
    stage_finish(&t->st);
}

int train_main(int argc, char **argv) {
    Train *t = xcalloc(1, sizeof(Train));
    int rc = stage_start(&t->st, &TRAIN_STAGE, argc, argv);
    if (rc) goto out;
    rc = 1;
    if (resolve_options(t)) goto out;
    echo_deck(t);
    if ((t->env.device = stage_use_device(&t->st, t->opt.device)) < 0) goto out;
    if (make_run_dir(t)) goto out;
    if (open_data(t)) goto out;
    plan_groups(t);
    if (group_device_comm(t)) goto out;
    rc = run_jobs(t);
    if (rc != 1) report_end(t, rc);
out:
    train_cleanup(t);
    free(t);
    return rc;
}
