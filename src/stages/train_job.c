// train_job.c — one training job on the ranks of its group (train_job.h).
// trainer_run reads as its steps: the job's paths; skip it when its model.h5
// exists; its directory; the state (from ckpt.h5 or the seed); the data and
// the optimizer; the training loop (train_step, progress lines, checkpoints
// and stop requests); model.h5; one cleanup (job_free) on every way out.
#include "stsae/stages/train_job.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/base/progress.h"
#include "stsae/base/stop_request.h"
#include "stsae/io/model.h"
#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"
#include "stsae/stages/train_data.h"

const char *const TIMER_NAMES[N_TIMERS] = {"data", "step", "allreduce", "optimizer", "checkpoint", "total"};

// One job while it trains: what trainer_run's steps make and share, freed by
// job_free whichever step the job ended at.
typedef struct {
    TrainEnv *env;
    const Job *job;
    const TrainOptions *opt;
    int lead;                          // rank 0 of the group: prints, writes the files
    char *dir, *model_path, *ckpt_path; // RUN_DIR/jobs/NAME, its model.h5 and ckpt.h5
    SaeConfig cfg;
    size_t np;                         // parameters (flat, sae_carve layout)
    float *params, *grads, *m1, *m2;   // and Adam's two moments
    SaeTensors p, gr;
    int64_t *last_fired, *fired;       // dead-latent clocks: tokens seen when each latent last fired; this step's count
    uint8_t *dead;
    TrainState st;
    int resumed;                       // from ckpt.h5
    DataLoader *dl;
    int64_t steps;
    AdamConfig adam;
    SaeWork *w;
    float *x;                          // this rank's share of a batch
    SaeReduce red;
    SaeLosses L;                       // the last step's
    int n_dead;
} JobRun;

// The SaeConfig of a job on features of width d (jobs.h has resolved every
// value by the variant's rules; train.c's jobs_check has refused, before any
// job ran, every job whose sizes do not fit: the die() below is an assertion).
static void job_config(const Job *job, int d, SaeConfig *cfg) {
    const int64_t m64 = job_latents(job, d);
    if (m64 > INT_MAX || job->k > m64)
        die("job %s: k = %d, m = %lld: not checked by jobs_check (a bug)", job->name, job->k, (long long)m64);
    const int m = (int)m64;
    if (sae_config_init(cfg, job->variant, d, m) != 0) die("job %s: unknown variant '%s'", job->name, job->variant);
    cfg->k = job->k;
    cfg->k_aux = job->k_aux;
    cfg->alpha = (float)job->alpha;
    cfg->beta = (float)job->beta;
    cfg->m_high = (int)job_m_high(job, m); // 0 without +M (jobs.h)
    cfg->lambda_t = (float)job->lambda_t;
    cfg->lambda_s = (float)job->lambda_s;
    cfg->lambda_r = (float)job->lambda_r;
    if (job->tau > 0) cfg->tau = (float)job->tau;
    if (job->T_s > 0) cfg->temp_s = (float)job->T_s;
    sae_config_resolve(cfg); // sparsemax / entmax15: L_temp when lambda_t > 0 (the variant table)
}

static void progress_line(const JobRun *r, const Progress *pr, int64_t tokens0, double now) {
    const SaeConfig *cfg = &r->cfg;
    const SaeLosses *L = &r->L;
    const int64_t step = r->st.step, steps = r->steps;
    char terms[160] = "", e[32];
    size_t n = 0;
    n += (size_t)snprintf(terms + n, sizeof(terms) - n, "rec %.4f", L->rec);
    if (cfg->k_aux > 0) n += (size_t)snprintf(terms + n, sizeof(terms) - n, " aux %.4f", L->aux);
    if (cfg->m_high > 0) n += (size_t)snprintf(terms + n, sizeof(terms) - n, " high %.4f", L->high);
    if (cfg->contrast == CTR_TEMPORAL || cfg->contrast == CTR_SEPARATE)
        n += (size_t)snprintf(terms + n, sizeof(terms) - n, " temp %.4f", L->temp);
    if (cfg->contrast == CTR_SEPARATE) n += (size_t)snprintf(terms + n, sizeof(terms) - n, " spat %.4f", L->spat);
    if (cfg->contrast == CTR_RASTER) snprintf(terms + n, sizeof(terms) - n, " rast %.4f", L->rast);
    progress_eta_text(pr, step, steps, now, e, sizeof(e));
    printf("[group %d] %s  step %lld/%lld (%.0f%%)  loss %.4f (%s)  L0 %.1f  dead %.1f%%  %.0f tok/s  ETA %s\n",
           r->env->group_index, r->job->name, (long long)step, (long long)steps, 100.0 * step / (double)steps,
           L->total, terms, L->l0, 100.0 * r->n_dead / cfg->m, progress_rate(pr, (double)(r->st.tokens - tokens0), now),
           e);
    fflush(stdout);
}

// RUN_DIR/jobs/NAME and its two files' paths.
static void job_paths(JobRun *r) {
    char *jobs_dir = path_join(r->env->run_dir, "jobs");
    r->dir = path_join(jobs_dir, r->job->name);
    free(jobs_dir);
    r->model_path = path_join(r->dir, "model.h5");
    r->ckpt_path = path_join(r->dir, "ckpt.h5");
}

// 1 when the job's model.h5 exists (the job is done), after checking that it
// was trained with these settings (the job hash covers every value that
// shapes the SAE); dies naming the file when not.
static int done_already(const JobRun *r) {
    if (access(r->model_path, F_OK) != 0) return 0;
    const uint64_t mh = model_job_hash(r->model_path);
    if (mh != r->job->hash)
        die("%s: trained with other settings than this deck's job %s (job hash %016llx, the deck's %016llx); move "
            "it away or use another run_dir", r->model_path, r->job->name, (unsigned long long)mh,
            (unsigned long long)r->job->hash);
    if (r->lead) printf("[group %d] %s: done already (%s)\n", r->env->group_index, r->job->name, r->model_path);
    return 1;
}

// The parameters, Adam's moments and the dead-latent clocks: from ckpt.h5
// when there is one, else initialized from the job's seed.
static void make_state(JobRun *r) {
    const TrainEnv *env = r->env;
    job_config(r->job, env->features->d, &r->cfg);
    const int m = r->cfg.m;
    r->np = sae_num_params(&r->cfg);
    r->params = xmalloc(sizeof(float) * r->np);
    r->grads = xmalloc(sizeof(float) * r->np);
    r->m1 = xcalloc(r->np, sizeof(float));
    r->m2 = xcalloc(r->np, sizeof(float));
    r->last_fired = xcalloc((size_t)m, sizeof(int64_t));
    r->fired = xmalloc(sizeof(int64_t) * (size_t)m);
    r->dead = xcalloc((size_t)m, 1);
    sae_carve(r->params, &r->cfg, &r->p);
    sae_carve(r->grads, &r->cfg, &r->gr);
    r->st = (TrainState){0, 0, 0.0f, env->scale, r->job->hash, 0.0};
    r->resumed = ckpt_load(r->ckpt_path, &r->cfg, r->params, r->m1, r->m2, r->last_fired, &r->st) == 0;
    if (!r->resumed) sae_init(&r->cfg, &r->p, (uint64_t)r->job->seed, env->mean);
}

// The data loader, the number of steps, the optimizer's settings, the step's
// work space and batch buffer, and the group's reduction hooks.
static void make_data(JobRun *r) {
    const TrainEnv *env = r->env;
    const TrainOptions *o = r->opt;
    const Job *job = r->job;
    Comm *g = env->group;
    const int d = env->features->d;
    DataConfig dc = {job->batch_kind, job->batch, o->streams, o->mix_clips, (uint64_t)job->seed, comm_rank(g),
                     comm_size(g)};
    r->dl = data_create(env->features, env->train, env->n_train, &dc);
    r->steps = data_steps(r->dl, o->epochs);
    if (o->max_steps < r->steps) r->steps = o->max_steps;
    if (r->steps < 1)
        die("job %s: %d training clips give no full batch of %lld in train.epochs epochs", job->name, env->n_train,
            (long long)job->batch);
    r->adam = adam_defaults(r->cfg.m, r->steps);
    r->adam.lr = (float)job_lr(job, d);
    r->adam.warmup_steps = (int64_t)floor(o->warmup_frac * r->steps + 0.5);
    if (r->adam.warmup_steps < 1) r->adam.warmup_steps = 1;
    r->adam.beta1 = (float)o->adam_beta1;
    r->adam.beta2 = (float)o->adam_beta2;
    r->adam.eps = (float)o->adam_eps;
    const int max_tok = data_max_local_tokens(r->dl);
    r->w = sae_work_create(&r->cfg, max_tok > 0 ? max_tok : 1);
    r->x = xmalloc(sizeof(float) * ((size_t)max_tok * d + 1));
    r->red = comm_reduce(g);
}

static void announce(const JobRun *r) {
    if (!r->lead) return;
    Comm *g = r->env->group;
    const Job *job = r->job;
    printf("[group %d] %s: %s %lld steps of %lld %s (%d rank%s), m = %d, k = %d, lr %.3g\n", r->env->group_index,
           job->name, r->resumed ? "resuming at step" : "starting,", r->resumed ? (long long)r->st.step : (long long)r->steps,
           (long long)job->batch, job->batch_kind == BATCH_CLIPS ? "clips" : job->batch_kind == BATCH_PAIRS ? "pairs" : "tokens",
           comm_size(g), comm_size(g) > 1 ? "s" : "", r->cfg.m, r->cfg.k, r->adam.lr);
    fflush(stdout);
}

// One training step on the group: the batch, the dead mask, the SAE step,
// the dead-latent clocks, the gradients summed, Adam, the BatchTopK threshold.
// Returns the time it ended.
static double train_step(JobRun *r) {
    const SaeConfig *cfg = &r->cfg;
    const int m = cfg->m;
    TrainState *st = &r->st;
    SaeLosses *L = &r->L;
    double t0 = wall_time();
    SaeBatch b = data_batch(r->dl, st->step, st->scale, r->x);
    double t1 = wall_time();
    r->n_dead = 0;
    for (int j = 0; j < m; j++) {
        r->dead[j] = st->tokens - r->last_fired[j] >= r->opt->dead_tokens;
        r->n_dead += r->dead[j];
    }
    sae_step(cfg, &r->p, &r->gr, r->x, &b, cfg->k_aux > 0 ? r->dead : NULL, &r->red, r->w, L);
    if (!isfinite(L->total))
        die("job %s: the loss became %g at step %lld (lower train.lr?)", r->job->name, L->total, (long long)st->step);
    // dead-latent clocks: a latent kept for any token of the global batch fires now
    const SparseCodes *z = sae_last_codes(r->w);
    memset(r->fired, 0, sizeof(int64_t) * (size_t)m);
    for (int64_t e = 0; e < z->nnz; e++) r->fired[z->idx[e]]++;
    double t2 = wall_time();
    r->red.sum_i64(r->red.ctx, r->fired, m);
    comm_allreduce(r->env->group, r->grads, r->np, COMM_F32, COMM_SUM, NULL);
    double t3 = wall_time();
    optim_step(cfg, &r->adam, st->step + 1, r->params, r->grads, r->m1, r->m2);
    st->tokens += L->n_tok_global;
    for (int j = 0; j < m; j++)
        if (r->fired[j]) r->last_fired[j] = st->tokens;
    const double decay = r->opt->theta_decay;
    if (cfg->select == SEL_BATCHTOPK)
        st->theta = st->step == 0 ? L->min_kept : (float)(decay * st->theta + (1.0 - decay) * L->min_kept);
    st->step++;
    double t4 = wall_time();
    double *timers = r->env->timers;
    timers[T_DATA] += t1 - t0;
    timers[T_STEP] += t2 - t1;
    timers[T_ALLREDUCE] += t3 - t2;
    timers[T_OPTIM] += t4 - t3;
    return t4;
}

// ckpt.h5 written by the lead and agreed on by the group (a failed save
// leaves the previous checkpoint and fails the job on every rank); on a stop
// request, the job then stops. JOB_FINISHED: train on.
static JobOutcome checkpoint(JobRun *r, int stop, double *t_loop, double *t_last_ckpt) {
    double tc = wall_time();
    r->st.train_s += tc - *t_loop;
    *t_loop = tc;
    TrainEnv *env = r->env;
    const int saved = !r->lead || ckpt_save(r->ckpt_path, &r->cfg, r->params, r->m1, r->m2, r->last_fired, &r->st,
                                            env->err, sizeof(env->err)) == 0;
    if (!comm_agree_msg(env->group, saved, env->err, sizeof(env->err), 0)) return JOB_FAILED;
    *t_last_ckpt = wall_time();
    env->timers[T_CKPT] += *t_last_ckpt - tc;
    if (!stop) return JOB_FINISHED;
    if (r->lead)
        printf("[group %d] %s: stopped on request at step %lld; checkpoint %s\n", env->group_index, r->job->name,
               (long long)r->st.step, r->ckpt_path);
    return JOB_STOPPED;
}

// Steps until the last, a stop request, or a failed checkpoint; progress
// lines from the lead. JOB_FINISHED when the last step is done.
static JobOutcome train_loop(JobRun *r) {
    memset(&r->L, 0, sizeof(r->L));
    double t_last_ckpt = wall_time(), t_loop = wall_time();
    const int64_t step0 = r->st.step, tokens0 = r->st.tokens;
    Progress pr;
    progress_start(&pr, t_loop, r->opt->progress_every, step0);
    const double ckpt_every = r->opt->checkpoint_every;
    JobOutcome o = JOB_FINISHED;
    while (r->st.step < r->steps && o == JOB_FINISHED) {
        const double t4 = train_step(r);
        // the group agrees on stopping (a signal or the stop file) and on checkpointing (the clock)
        int flags[2] = {stop_requested(), ckpt_every > 0 && t4 - t_last_ckpt >= ckpt_every};
        comm_allreduce(r->env->group, flags, 2, COMM_I32, COMM_MAX, NULL);
        if (r->lead && progress_due(&pr, t4, r->st.step == step0 + 1 || r->st.step == r->steps))
            progress_line(r, &pr, tokens0, t4);
        if ((flags[0] || flags[1]) && r->st.step < r->steps) o = checkpoint(r, flags[0], &t_loop, &t_last_ckpt);
    }
    if (o == JOB_FINISHED) r->st.train_s += wall_time() - t_loop;
    return o;
}

// model.h5, which marks the job done: it exists only whole and on disk
// (model.h), and only then is the checkpoint removed. Agreed by the group.
static JobOutcome save_model(JobRun *r) {
    const TrainEnv *env = r->env;
    const SaeLosses *L = &r->L;
    const TrainState *st = &r->st;
    ModelInfo info;
    memset(&info, 0, sizeof(info));
    snprintf(info.name, sizeof(info.name), "%s", r->job->name);
    info.hash = r->job->hash;
    info.seed = r->job->seed;
    info.layer = env->features->layer;
    info.scale = st->scale;
    info.theta = r->cfg.select == SEL_BATCHTOPK ? st->theta : 0.0f;
    info.steps = st->step;
    info.tokens = st->tokens;
    info.tokens_per_s = st->train_s > 0 ? (double)st->tokens / st->train_s : 0.0;
    const double lv[7] = {L->total, L->rec, L->aux, L->high, L->temp, L->spat, L->rast};
    memcpy(info.loss, lv, sizeof(lv));
    info.l0 = L->l0;
    info.dead_frac = (double)r->n_dead / r->cfg.m;
    char *err = r->env->err;
    const size_t cap = sizeof(r->env->err);
    const int saved = !r->lead || model_save(r->model_path, &r->cfg, r->params, &info, err, cap) == 0;
    if (r->lead && saved) {
        if (unlink(r->ckpt_path) != 0 && errno != ENOENT)
            printf("[group %d] %s: note: cannot remove %s (%s); the job is done all the same\n", env->group_index,
                   r->job->name, r->ckpt_path, strerror(errno));
        printf("[group %d] %s: done, %lld steps, %.0f tok/s, final loss %.4f (rec %.4f), L0 %.1f, dead %.1f%% -> %s\n",
               env->group_index, r->job->name, (long long)st->step, info.tokens_per_s, L->total, L->rec, L->l0,
               100.0 * r->n_dead / r->cfg.m, r->model_path);
        fflush(stdout);
    }
    return comm_agree_msg(env->group, saved, err, cap, 0) ? JOB_FINISHED : JOB_FAILED;
}

static void job_free(JobRun *r) {
    data_free(r->dl);
    sae_work_free(r->w);
    free(r->x), free(r->params), free(r->grads), free(r->m1), free(r->m2), free(r->last_fired), free(r->fired),
        free(r->dead);
    free(r->dir), free(r->model_path), free(r->ckpt_path);
}

JobOutcome trainer_run(TrainEnv *env, const Job *job) {
    const double t_start = wall_time();
    JobRun r;
    memset(&r, 0, sizeof(r));
    r.env = env;
    r.job = job;
    r.opt = env->opt;
    r.lead = comm_rank(env->group) == 0;
    job_paths(&r);
    JobOutcome o = JOB_SKIPPED;
    int made;
    if (done_already(&r)) goto out;
    // the job's directory: made by the lead, agreed on by the group (a full
    // disk or a read-only run_dir stops every rank with the lead's message)
    o = JOB_FAILED;
    made = !r.lead || path_mkdirs(r.dir, env->err, sizeof(env->err)) == 0;
    if (!comm_agree_msg(env->group, made, env->err, sizeof(env->err), 0)) goto out;
    make_state(&r);
    make_data(&r);
    announce(&r);
    o = train_loop(&r);
    if (o == JOB_FINISHED) o = save_model(&r);
    env->timers[T_TOTAL] += wall_time() - t_start;
out:
    job_free(&r);
    return o;
}
