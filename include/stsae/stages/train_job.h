// train_job.h — a cohort of training jobs of the grid on the ranks of their
// group: data, steps, exact data-parallel reductions, Adam, dead-latent
// clocks, the BatchTopK threshold, progress lines, checkpoints and the final
// models.
//
// In:  the jobs of one cohort (jobs.h: the same batch kind, batch size and
//      seed, so the same batches), the train options (options.h), the open
//      feature file and its training clips, the input scale and scaled mean
//      (the same for every job of a layer), and the group's communicator.
// Out: RUN_DIR/jobs/NAME/model.h5 (model.h) when the job finishes;
//      RUN_DIR/jobs/NAME/ckpt.h5 every train.checkpoint_every seconds and on a
//      stop request (stop_request.h: SIGTERM, SIGUSR1 or RUN_DIR/STOP), after which
//      the job stops (status 3).
//
// Many SAEs per data pass (saev, dictionary_learning): the cohort's jobs
// train in lockstep, each batch read (and scaled) once and then stepped by
// every job at that step. A job's state is its own and its batch is the one
// it would read alone, so each ends with the bits of training it alone; the
// grid reads its features once per cohort instead of once per job. Memory:
// every job's parameters, moments and step work space at once, which
// train.c bounds when it forms the cohorts (train.lockstep_gb).
//
// device: cuda (env->device): each job's parameters, gradients, Adam's
// moments and dead-latent clocks live on this rank's GPU for the whole run,
// the cohort's batch is assembled there from the layer held on the GPU
// (env->dfeat: the loader only names its tokens) or else read as float16
// while the step before it runs (train_prefetch.h), uploaded once per step
// and converted there, and the step, the clocks and
// Adam run there (sae_cuda.h); the group's gradient sum runs over the GPUs
// (env->dcomm: NCCL, or host-staged MPI, which lets ranks share one GPU). The
// host copies of the state are refreshed only for checkpoints and model.h5,
// which are the same files as on the CPU (a run may resume on either).
// Sums on the GPU are in other orders than the CPU's: the two paths agree
// within float precision, not bit for bit.
//
// Restart: a job whose model.h5 exists is skipped; one with a checkpoint
// continues from it (joining its cohort when the cohort's step reaches its
// own) and, on the same ranks and threads, ends with the same bits as a run
// that was never stopped (the data of a step is a function of the step,
// every sum has a fixed order, and the checkpoint holds all state).
#ifndef STSAE_TRAIN_JOB_H
#define STSAE_TRAIN_JOB_H

#include "stsae/comm/comm.h"
#include "stsae/comm/comm_device.h"
#include "stsae/deck/jobs.h"
#include "stsae/deck/options.h"
#include "stsae/io/features.h"

// Per-rank seconds by stage, summed over the rank's jobs (T_DATA: the wait for
// a batch, whose read overlaps the step before it (train_prefetch.h), and its
// upload).
enum { T_DATA, T_STEP, T_ALLREDUCE, T_OPTIM, T_CKPT, T_TOTAL, N_TIMERS };
extern const char *const TIMER_NAMES[N_TIMERS];

typedef struct {
    const TrainOptions *opt; // the deck's train section, resolved once
    const char *run_dir;
    const FeatureFile *features;
    const int32_t *train;   // training clips
    int n_train;
    float scale;            // input scale s
    const float *mean;      // mean of the scaled sample (d), b_dec's initial value
    Comm *group;            // the ranks training this job together
    int device;             // device: cuda: this rank's GPU holds each job's state and steps it (train.c bound it)
    CommDevice *dcomm;      // device: cuda: the group's sums over device buffers (comm.backend)
    const uint16_t *dfeat;  // device: cuda: the layer's training clips on the GPU (float16, [n_train, T*N, d]), or NULL
    const int32_t *dslot;   // with dfeat: each clip's place in it ([features->n_clips]; -1: not a training clip)
    int group_index, n_groups;
    double timers[N_TIMERS];
    int64_t tokens_trained; // this run's training tokens, counted by the group's rank 0 (each job's global batches)
    char err[2048];         // JOB_FAILED: what failed (file, object, reason), on every rank of the group
} TrainEnv;

// JOB_FAILED: a write failed (the job's directory, ckpt.h5, model.h5: a full
// disk); every rank of the group returns it with the message in env->err, and
// nothing of the job was marked done (its model.h5 exists only when whole).
typedef enum { JOB_FINISHED, JOB_SKIPPED, JOB_STOPPED, JOB_FAILED } JobOutcome;
// Trains jobs[0..n) (one cohort) to the end, a stop request or a failed
// write: JOB_SKIPPED when every one was done already, else the cohort's
// outcome (a stop or a failure ends every job of the cohort).
JobOutcome trainer_run(TrainEnv *env, const Job *const *jobs, int n);

#endif
