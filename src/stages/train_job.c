// train_job.c — the jobs of one cohort on the ranks of their group, in
// lockstep (train_job.h). trainer_run reads as its steps: per job, its paths;
// skip it when its model.h5 exists; its directory; its state (from ckpt.h5 or
// the seed); then the cohort's data, each job's optimizer and work space; the
// training loop (one batch read, the next one read meanwhile by
// train_prefetch.h; a job_step for each job at that step,
// progress lines, checkpoints and stop requests); each model.h5; one cleanup
// (each job_free, then the cohort's loader and buffers) on every way out.
// device: cuda: the same steps with the state on the GPU (train_job.h);
// job_step_device and job_to_host are the two places that differ.
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
#include "stsae/sae/sae_cuda.h"
#include "stsae/stages/train_data.h"
#include "stsae/stages/train_prefetch.h"

const char *const TIMER_NAMES[N_TIMERS] = {"data", "step", "allreduce", "optimizer", "checkpoint", "total"};

// One job while it trains: what trainer_run's steps make for it, freed by
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
    int active;                        // not done already: trains in this run
    int stepped;                       // took the cohort's current step
    int64_t steps, tokens0;            // the last step; tokens at the loop's start
    AdamConfig adam;
    SaeWork *w;
    SaeReduce red;
    SaeLosses L;                       // the last step's
    int n_dead;
    // device: cuda: the state on the GPU (the host copies above are refreshed by job_to_host)
    SaeDeviceState ds;
    SaeTensors dp, dgr;
    int64_t *d_last_fired;             // [m]
    uint8_t *d_dead;                   // [m]
    SaeCudaWork *cw;
} JobRun;

// The jobs trained together (their batches are the same: batch kind, size and
// seed) and what they share: the data loader and this rank's share of a batch.
typedef struct {
    TrainEnv *env;
    int n;
    JobRun *r; // [n]
    DataLoader *dl;
    int64_t steps;
    int max_tok; // the most tokens of this rank's share of a batch
    float *dx;   // device: cuda: the batch on the GPU
    uint16_t *dh; // device: cuda, streamed: the batch as float16 on the GPU (converted into dx)
    int64_t *src, *dsrc; // env->dfeat: the batch's token rows in it, on the host and the GPU
} Cohort;

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
    r->m1 = xcalloc(r->np, sizeof(float));
    r->m2 = xcalloc(r->np, sizeof(float));
    r->last_fired = xcalloc((size_t)m, sizeof(int64_t));
    if (!env->device) { // the step's buffers (on the GPU, the device state has its own)
        r->grads = xmalloc(sizeof(float) * r->np);
        r->fired = xmalloc(sizeof(int64_t) * (size_t)m);
        r->dead = xcalloc((size_t)m, 1);
        sae_carve(r->grads, &r->cfg, &r->gr);
    }
    sae_carve(r->params, &r->cfg, &r->p);
    r->st = (TrainState){0, 0, 0.0f, env->scale, r->job->hash, 0.0};
    r->resumed = ckpt_load(r->ckpt_path, &r->cfg, r->params, r->m1, r->m2, r->last_fired, &r->st) == 0;
    if (!r->resumed) sae_init(&r->cfg, &r->p, (uint64_t)r->job->seed, env->mean);
    if (!env->device) return;
    sae_device_state_create(&r->ds, &r->cfg);
    dev_upload(r->ds.params, r->params, r->np);
    dev_upload(r->ds.m1, r->m1, r->np);
    dev_upload(r->ds.m2, r->m2, r->np);
    sae_carve(r->ds.params, &r->cfg, &r->dp);
    sae_carve(r->ds.grads, &r->cfg, &r->dgr);
    r->d_last_fired = dev_alloc(sizeof(int64_t) * (size_t)m);
    dev_upload_bytes(r->d_last_fired, r->last_fired, sizeof(int64_t) * (size_t)m);
    r->d_dead = dev_alloc((size_t)m);
}

// device: cuda: the host copies of the state (what ckpt.h5 and model.h5
// hold) from the GPU.
static void job_to_host(JobRun *r) {
    if (!r->env->device || PLANTED("device_stale_host")) return;
    dev_download(r->params, r->ds.params, r->np);
    dev_download(r->m1, r->ds.m1, r->np);
    dev_download(r->m2, r->ds.m2, r->np);
    dev_download_bytes(r->last_fired, r->d_last_fired, sizeof(int64_t) * (size_t)r->cfg.m);
}

// The cohort's data loader (every job's batches: the first active job's
// batch settings stand for all), its number of steps and batch buffer.
static void make_data(Cohort *c, const JobRun *first) {
    const TrainEnv *env = c->env;
    const TrainOptions *o = env->opt;
    const Job *job = first->job;
    Comm *g = env->group;
    DataConfig dc = {job->batch_kind, job->batch, o->streams, o->mix_clips, (uint64_t)job->seed, comm_rank(g),
                     comm_size(g), env->dfeat != NULL};
    c->dl = data_create(env->features, env->train, env->n_train, &dc);
    c->steps = data_steps(c->dl, o->epochs);
    if (o->max_steps < c->steps) c->steps = o->max_steps;
    if (c->steps < 1)
        die("job %s: %d training clips give no full batch of %lld in train.epochs epochs", job->name, env->n_train,
            (long long)job->batch);
    const int max_tok = c->max_tok = data_max_local_tokens(c->dl);
    if (env->device) c->dx = dev_alloc_floats((size_t)max_tok * env->features->d + 1);
    if (env->dfeat) {
        c->src = xmalloc(sizeof(int64_t) * ((size_t)max_tok + 1));
        c->dsrc = dev_alloc(sizeof(int64_t) * ((size_t)max_tok + 1));
    } else if (env->device) { // streamed: the batch's float16 values
        c->dh = dev_alloc(sizeof(uint16_t) * ((size_t)max_tok * env->features->d + 1));
    }
}

// device: cuda with the layer on the GPU (env->dfeat): this rank's share of
// batch s assembled there from the rows the loader names (each clip's place
// in the resident layer from env->dslot), the same batch data_batch reads.
static SaeBatch device_batch(Cohort *c, int64_t s) {
    const TrainEnv *env = c->env;
    const SaeBatch b = data_batch_sources(c->dl, s, c->src);
    const int64_t tn = (int64_t)env->features->T * env->features->N;
    for (int i = 0; i < b.n_tok; i++) c->src[i] = (int64_t)env->dslot[c->src[i] / tn] * tn + c->src[i] % tn;
    if (b.n_tok > 0) {
        dev_upload_bytes(c->dsrc, c->src, sizeof(int64_t) * (size_t)b.n_tok);
        dev_tokens_f16(env->dfeat, c->dsrc, b.n_tok, env->features->d, env->scale, c->dx);
    }
    return b;
}

// A job's number of steps, the optimizer's settings, the step's work space
// and the group's reduction hooks.
static void make_optim(JobRun *r, const Cohort *c) {
    const TrainOptions *o = r->opt;
    r->steps = c->steps;
    r->adam = adam_defaults(r->cfg.m, r->steps);
    r->adam.lr = (float)job_lr(r->job, r->env->features->d);
    r->adam.warmup_steps = (int64_t)floor(o->warmup_frac * r->steps + 0.5);
    if (r->adam.warmup_steps < 1) r->adam.warmup_steps = 1;
    r->adam.beta1 = (float)o->adam_beta1;
    r->adam.beta2 = (float)o->adam_beta2;
    r->adam.eps = (float)o->adam_eps;
    const int max_tok = data_max_local_tokens(c->dl);
    const SaeGemmMath math = strcmp(o->gemm, "bf16") ? SAE_GEMM_FP32 : SAE_GEMM_BF16;
    if (r->env->device) {
        r->cw = sae_cuda_work_create(&r->cfg, max_tok > 0 ? max_tok : 1, math);
    } else {
        r->w = sae_work_create(&r->cfg, max_tok > 0 ? max_tok : 1);
        sae_work_set_math(r->w, math);
    }
    r->red = comm_reduce(r->env->group);
    if (r->env->device) comm_device_hooks(r->env->dcomm, &r->red);
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

// A step's loss, checked on either path: training stops at a NaN or Inf.
static void check_loss(const JobRun *r) {
    if (!isfinite(r->L.total))
        die("job %s: the loss became %g at step %lld (lower train.lr?)", r->job->name, r->L.total,
            (long long)r->st.step);
}

// The end of a step on either path: the tokens trained, the BatchTopK
// threshold, the step count and the timers (t1 step, t2 sums, t3 Adam).
static void job_step_end(JobRun *r, double t1, double t2, double t3) {
    TrainState *st = &r->st;
    const SaeLosses *L = &r->L;
    st->tokens += L->n_tok_global;
    if (r->lead) r->env->tokens_trained += L->n_tok_global;
    const double decay = r->opt->theta_decay;
    if (r->cfg.select == SEL_BATCHTOPK)
        st->theta = st->step == 0 ? L->min_kept : (float)(decay * st->theta + (1.0 - decay) * L->min_kept);
    st->step++;
    double *timers = r->env->timers;
    timers[T_STEP] += t2 - t1;
    timers[T_ALLREDUCE] += t3 - t2;
    timers[T_OPTIM] += wall_time() - t3;
}

// One training step of a job on the group's batch b (this rank's share in
// x): the dead mask, the SAE step, the dead-latent clocks, the gradients
// summed, Adam, the BatchTopK threshold.
static void job_step(JobRun *r, const SaeBatch *b, const float *x) {
    const SaeConfig *cfg = &r->cfg;
    const int m = cfg->m;
    TrainState *st = &r->st;
    SaeLosses *L = &r->L;
    const double t1 = wall_time();
    r->n_dead = 0;
    for (int j = 0; j < m; j++) {
        r->dead[j] = st->tokens - r->last_fired[j] >= r->opt->dead_tokens;
        r->n_dead += r->dead[j];
    }
    sae_step(cfg, &r->p, &r->gr, x, b, cfg->k_aux > 0 ? r->dead : NULL, &r->red, r->w, L);
    check_loss(r);
    // dead-latent clocks: a latent kept for any token of the global batch fires now
    const SparseCodes *z = sae_last_codes(r->w);
    memset(r->fired, 0, sizeof(int64_t) * (size_t)m);
    for (int64_t e = 0; e < z->nnz; e++) r->fired[z->idx[e]]++;
    const double t2 = wall_time();
    r->red.sum_i64(r->red.ctx, r->fired, m);
    comm_allreduce(r->env->group, r->grads, r->np, COMM_F32, COMM_SUM, NULL);
    const double t3 = wall_time();
    optim_step(cfg, &r->adam, st->step + 1, r->params, r->grads, r->m1, r->m2);
    const int64_t tokens = st->tokens + L->n_tok_global; // the count after this step
    for (int j = 0; j < m; j++)
        if (r->fired[j]) r->last_fired[j] = tokens;
    job_step_end(r, t1, t2, t3);
}

// job_step on the GPU: x is the batch on the device. The dead mask, the step
// and the clocks on the device; the gradients summed over the group's GPUs
// (env->dcomm); Adam on the device.
static void job_step_device(JobRun *r, const SaeBatch *b, const float *dx) {
    const SaeConfig *cfg = &r->cfg;
    TrainState *st = &r->st;
    SaeLosses *L = &r->L;
    const double t1 = wall_time();
    r->n_dead = sae_cuda_dead_mask(r->cw, r->d_last_fired, st->tokens, r->opt->dead_tokens, r->d_dead);
    sae_step_cuda(cfg, &r->dp, &r->dgr, dx, b, cfg->k_aux > 0 ? r->d_dead : NULL, &r->red, r->cw, L);
    check_loss(r);
    sae_cuda_fire(r->cw, &r->red, st->tokens + L->n_tok_global, r->d_last_fired);
    const double t2 = wall_time();
    comm_device_allreduce(r->env->dcomm, r->ds.grads, r->np, COMM_F32, COMM_SUM);
    const double t3 = wall_time();
    optim_step_cuda(cfg, &r->adam, st->step + 1, r->ds.params, r->ds.grads, r->ds.m1, r->ds.m2);
    job_step_end(r, t1, t2, t3);
}

// Whether job i trains at cohort step s (it is active and has reached s;
// planted: any job not through steps, whatever batch it is at).
static int steps_at(const Cohort *c, int i, int64_t s) {
    const JobRun *r = &c->r[i];
    return r->active && (r->st.step == s || (PLANTED("lockstep_any_step") && r->st.step < c->steps));
}

// ckpt.h5 of every job still training, written by the lead and agreed on by
// the group (a failed save leaves the previous checkpoint and fails the
// cohort on every rank); on a stop request, the cohort then stops.
// JOB_FINISHED: train on.
static JobOutcome checkpoint(Cohort *c, int stop, double *t_last_ckpt) {
    const double tc = wall_time();
    TrainEnv *env = c->env;
    for (int i = 0; i < c->n; i++) {
        JobRun *r = &c->r[i];
        if (!r->active || r->st.step >= r->steps) continue;
        job_to_host(r);
        const int saved = !r->lead || ckpt_save(r->ckpt_path, &r->cfg, r->params, r->m1, r->m2, r->last_fired, &r->st,
                                                env->err, sizeof(env->err)) == 0;
        if (!comm_agree_msg(env->group, saved, env->err, sizeof(env->err), 0)) return JOB_FAILED;
        if (stop && r->lead)
            printf("[group %d] %s: stopped on request at step %lld; checkpoint %s\n", env->group_index, r->job->name,
                   (long long)r->st.step, r->ckpt_path);
    }
    *t_last_ckpt = wall_time();
    env->timers[T_CKPT] += *t_last_ckpt - tc;
    return stop ? JOB_STOPPED : JOB_FINISHED;
}

// Cohort steps s from the earliest job's step to the last: batch s read once
// (read while the step before it ran: train_prefetch.h; or assembled on the
// GPU from the resident layer), then a step of each job at s (a job resumed
// further on joins when s reaches it); a stop request or a failed checkpoint
// ends it. Progress lines from the lead. JOB_FINISHED when every job has
// taken its last step.
static JobOutcome train_loop(Cohort *c) {
    int64_t s = c->steps;
    for (int i = 0; i < c->n; i++) {
        JobRun *r = &c->r[i];
        memset(&r->L, 0, sizeof(r->L));
        r->tokens0 = r->st.tokens;
        if (r->active && r->st.step < s) s = r->st.step;
    }
    const int64_t s0 = s;
    double t_last_ckpt = wall_time();
    Progress pr;
    progress_start(&pr, t_last_ckpt, c->env->opt->progress_every, s0);
    const double ckpt_every = c->env->opt->checkpoint_every;
    const int lead = comm_rank(c->env->group) == 0;
    const size_t d = (size_t)c->env->features->d;
    Prefetch *pf = c->env->dfeat ? NULL
                                 : prefetch_start(c->dl, c->env->scale, (size_t)c->max_tok * d + 1, c->steps,
                                                  c->dx != NULL);
    JobOutcome o = JOB_FINISHED;
    for (; s < c->steps && o == JOB_FINISHED; s++) {
        const double t0 = wall_time();
        SaeBatch b;
        const float *x = NULL;
        const uint16_t *h = NULL;
        if (c->env->dfeat) {
            b = device_batch(c, s);
        } else {
            b = prefetch_next(pf, s, &x, &h);
            if (h && b.n_tok > 0) { // float16 up, converted there with the CPU's bits
                dev_upload_bytes(c->dh, h, sizeof(uint16_t) * (size_t)b.n_tok * d);
                dev_tokens_f16(c->dh, NULL, b.n_tok, (int)d, c->env->scale, c->dx);
            }
        }
        c->env->timers[T_DATA] += wall_time() - t0;
        for (int i = 0; i < c->n; i++) {
            if (!(c->r[i].stepped = steps_at(c, i, s))) continue;
            if (c->dx)
                job_step_device(&c->r[i], &b, c->dx);
            else
                job_step(&c->r[i], &b, x);
        }
        const double t4 = wall_time();
        for (int i = 0; i < c->n; i++)
            if (c->r[i].stepped) c->r[i].st.train_s += t4 - t0;
        // the group agrees on stopping (a signal or the stop file) and on checkpointing (the clock)
        int flags[2] = {stop_requested(), ckpt_every > 0 && t4 - t_last_ckpt >= ckpt_every};
        comm_allreduce(c->env->group, flags, 2, COMM_I32, COMM_MAX, NULL);
        if (lead && progress_due(&pr, t4, s == s0 || s + 1 == c->steps))
            for (int i = 0; i < c->n; i++)
                if (c->r[i].stepped) progress_line(&c->r[i], &pr, c->r[i].tokens0, t4);
        if ((flags[0] || flags[1]) && s + 1 < c->steps) {
            if (pf) prefetch_idle(pf); // the checkpoint writes HDF5: no read under way
            o = checkpoint(c, flags[0], &t_last_ckpt);
        }
    }
    prefetch_free(pf);
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
    snprintf(info.gemm, sizeof(info.gemm), "%s", r->opt->gemm);
    char *err = r->env->err;
    const size_t cap = sizeof(r->env->err);
    job_to_host(r);
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
    sae_work_free(r->w);
    if (r->cw) sae_cuda_work_free(r->cw);
    if (r->ds.params) sae_device_state_free(&r->ds);
    if (r->d_last_fired) dev_free(r->d_last_fired);
    if (r->d_dead) dev_free(r->d_dead);
    free(r->params), free(r->grads), free(r->m1), free(r->m2), free(r->last_fired), free(r->fired), free(r->dead);
    free(r->dir), free(r->model_path), free(r->ckpt_path);
}

// A job up to its state: its paths; skipped (not active) when its model.h5
// exists; its directory, made by the lead and agreed on by the group (a full
// disk or a read-only run_dir stops every rank with the lead's message); its
// parameters, moments and clocks. -1 when the directory failed.
static int job_open(JobRun *r, TrainEnv *env, const Job *job) {
    r->env = env;
    r->job = job;
    r->opt = env->opt;
    r->lead = comm_rank(env->group) == 0;
    job_paths(r);
    if (done_already(r)) return 0;
    const int made = !r->lead || path_mkdirs(r->dir, env->err, sizeof(env->err)) == 0;
    if (!comm_agree_msg(env->group, made, env->err, sizeof(env->err), 0)) return -1;
    make_state(r);
    r->active = 1;
    return 0;
}

// The outcome of a cohort with one shared step: JOB_SKIPPED when no job
// trained, else the loop's and the saves' (the first failure).
JobOutcome trainer_run(TrainEnv *env, const Job *const *jobs, int n) {
    const double t_start = wall_time();
    Cohort c;
    memset(&c, 0, sizeof(c));
    c.env = env;
    c.n = n;
    c.r = xcalloc((size_t)n, sizeof(JobRun));
    JobOutcome o = JOB_FAILED;
    const JobRun *first = NULL;
    int active = 0;
    for (int i = 0; i < n; i++) {
        if (job_open(&c.r[i], env, jobs[i])) goto out;
        if (c.r[i].active && !first) first = &c.r[i];
        active += c.r[i].active;
    }
    o = JOB_SKIPPED;
    if (!first) goto out;
    make_data(&c, first);
    if (active > 1 && first->lead)
        printf("[group %d] %d jobs in lockstep on one read of each batch (%lld %s, seed %lld)\n", env->group_index,
               active,
               (long long)first->job->batch,
               first->job->batch_kind == BATCH_CLIPS ? "clips" : first->job->batch_kind == BATCH_PAIRS ? "pairs" : "tokens",
               (long long)first->job->seed);
    for (int i = 0; i < n; i++)
        if (c.r[i].active) {
            make_optim(&c.r[i], &c);
            announce(&c.r[i]);
        }
    o = train_loop(&c);
    for (int i = 0; i < n && o == JOB_FINISHED; i++)
        if (c.r[i].active) o = save_model(&c.r[i]);
    env->timers[T_TOTAL] += wall_time() - t_start;
out:
    for (int i = 0; i < n; i++) job_free(&c.r[i]);
    free(c.r);
    data_free(c.dl);
    free(c.src);
    if (c.dx) dev_free(c.dx);
    if (c.dh) dev_free(c.dh);
    if (c.dsrc) dev_free(c.dsrc);
    return o;
}
