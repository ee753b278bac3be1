// train_job.c — one training job on the ranks of its group (train_job.h).
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
#include "stsae/base/stop_request.h"
#include "stsae/io/model.h"
#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"
#include "stsae/stages/train_data.h"

const char *const TIMER_NAMES[N_TIMERS] = {"data", "step", "allreduce", "optimizer", "checkpoint", "total"};

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

static void fmt_duration(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

static void progress_line(const TrainEnv *env, const Job *job, const SaeConfig *cfg, int64_t step, int64_t steps,
                          const SaeLosses *L, int n_dead, double rate, double eta) {
    char terms[160] = "", e[32];
    size_t n = 0;
    n += (size_t)snprintf(terms + n, sizeof(terms) - n, "rec %.4f", L->rec);
    if (cfg->k_aux > 0) n += (size_t)snprintf(terms + n, sizeof(terms) - n, " aux %.4f", L->aux);
    if (cfg->m_high > 0) n += (size_t)snprintf(terms + n, sizeof(terms) - n, " high %.4f", L->high);
    if (cfg->contrast == CTR_TEMPORAL || cfg->contrast == CTR_SEPARATE)
        n += (size_t)snprintf(terms + n, sizeof(terms) - n, " temp %.4f", L->temp);
    if (cfg->contrast == CTR_SEPARATE) n += (size_t)snprintf(terms + n, sizeof(terms) - n, " spat %.4f", L->spat);
    if (cfg->contrast == CTR_RASTER) snprintf(terms + n, sizeof(terms) - n, " rast %.4f", L->rast);
    fmt_duration(eta, e, sizeof(e));
    printf("[group %d] %s  step %lld/%lld (%.0f%%)  loss %.4f (%s)  L0 %.1f  dead %.1f%%  %.0f tok/s  ETA %s\n",
           env->group_index, job->name, (long long)step, (long long)steps, 100.0 * step / (double)steps, L->total, terms,
           L->l0, 100.0 * n_dead / cfg->m, rate, e);
    fflush(stdout);
}

JobOutcome trainer_run(TrainEnv *env, const Job *job) {
    const double t_start = wall_time();
    const Deck *dk = env->deck;
    Comm *g = env->group;
    const int lead = comm_rank(g) == 0;
    const FeatureFile *f = env->features;
    const int d = f->d;
    char *jobs_dir = path_join(env->run_dir, "jobs");
    char *dir = path_join(jobs_dir, job->name);
    free(jobs_dir);
    char *model_path = path_join(dir, "model.h5"), *ckpt_path = path_join(dir, "ckpt.h5");
    if (access(model_path, F_OK) == 0) {
        // done: if trained with these settings (the job hash covers every value that shapes the SAE)
        const uint64_t mh = model_job_hash(model_path);
        if (mh != job->hash)
            die("%s: trained with other settings than this deck's job %s (job hash %016llx, the deck's %016llx); move "
                "it away or use another run_dir", model_path, job->name, (unsigned long long)mh,
                (unsigned long long)job->hash);
        if (lead) printf("[group %d] %s: done already (%s)\n", env->group_index, job->name, model_path);
        free(dir), free(model_path), free(ckpt_path);
        return JOB_SKIPPED;
    }
    // the job's directory: made by the lead, agreed on by the group (a full
    // disk or a read-only run_dir stops every rank with the lead's message)
    const int made = !lead || path_mkdirs(dir, env->err, sizeof(env->err)) == 0;
    if (!comm_agree_msg(g, made, env->err, sizeof(env->err), 0)) {
        free(dir), free(model_path), free(ckpt_path);
        return JOB_FAILED;
    }

    SaeConfig cfg;
    job_config(job, d, &cfg);
    const int m = cfg.m;
    const size_t np = sae_num_params(&cfg);
    float *params = xmalloc(sizeof(float) * np), *grads = xmalloc(sizeof(float) * np);
    float *m1 = xcalloc(np, sizeof(float)), *m2 = xcalloc(np, sizeof(float));
    int64_t *last_fired = xcalloc((size_t)m, sizeof(int64_t)), *fired = xmalloc(sizeof(int64_t) * (size_t)m);
    uint8_t *dead = xcalloc((size_t)m, 1);
    SaeTensors p, gr;
    sae_carve(params, &cfg, &p);
    sae_carve(grads, &cfg, &gr);

    TrainState st = {0, 0, 0.0f, env->scale, job->hash, 0.0};
    const int resumed = ckpt_load(ckpt_path, &cfg, params, m1, m2, last_fired, &st) == 0;
    if (!resumed) sae_init(&cfg, &p, (uint64_t)job->seed, env->mean);

    DataConfig dc = {job->batch_kind, job->batch, (int)deck_int(dk, "train.streams"), (int)deck_int(dk, "train.mix_clips"),
                     (uint64_t)job->seed, comm_rank(g), comm_size(g)};
    DataLoader *dl = data_create(f, env->train, env->n_train, &dc);
    int64_t steps = data_steps(dl, (int)deck_int(dk, "train.epochs"));
    if (deck_has(dk, "train.max_steps") && deck_int(dk, "train.max_steps") < steps) steps = deck_int(dk, "train.max_steps");
    if (steps < 1)
        die("job %s: %d training clips give no full batch of %lld in train.epochs epochs", job->name, env->n_train,
            (long long)job->batch);
    AdamConfig adam = adam_defaults(m, steps);
    adam.lr = (float)job_lr(job, d);
    adam.warmup_steps = (int64_t)floor(deck_num(dk, "train.warmup_frac") * steps + 0.5);
    if (adam.warmup_steps < 1) adam.warmup_steps = 1;
    adam.beta1 = (float)deck_num(dk, "train.adam_beta1");
    adam.beta2 = (float)deck_num(dk, "train.adam_beta2");
    adam.eps = (float)deck_num(dk, "train.adam_eps");
    const int64_t dead_tokens = deck_int(dk, "train.dead_tokens");
    const double theta_decay = deck_num(dk, "train.theta_decay");
    const double ckpt_every = deck_num(dk, "train.checkpoint_every"), progress_every = deck_num(dk, "train.progress_every");

    const int max_tok = data_max_local_tokens(dl);
    SaeWork *w = sae_work_create(&cfg, max_tok > 0 ? max_tok : 1);
    float *x = xmalloc(sizeof(float) * ((size_t)max_tok * d + 1));
    SaeReduce red = comm_reduce(g);
    if (lead) {
        printf("[group %d] %s: %s %lld steps of %lld %s (%d rank%s), m = %d, k = %d, lr %.3g\n", env->group_index,
               job->name, resumed ? "resuming at step" : "starting,", resumed ? (long long)st.step : (long long)steps,
               (long long)job->batch, job->batch_kind == BATCH_CLIPS ? "clips" : job->batch_kind == BATCH_PAIRS ? "pairs" : "tokens",
               comm_size(g), comm_size(g) > 1 ? "s" : "", m, cfg.k, adam.lr);
        fflush(stdout);
    }

    SaeLosses L;
    memset(&L, 0, sizeof(L));
    double t_last_ckpt = wall_time(), t_last_print = 0.0, t_loop = wall_time();
    const int64_t step0 = st.step, tokens0 = st.tokens;
    int n_dead = 0, stopped = 0, failed = 0;
    while (st.step < steps) {
        double t0 = wall_time();
        SaeBatch b = data_batch(dl, st.step, st.scale, x);
        double t1 = wall_time();
        n_dead = 0;
        for (int j = 0; j < m; j++) {
            dead[j] = st.tokens - last_fired[j] >= dead_tokens;
            n_dead += dead[j];
        }
        sae_step(&cfg, &p, &gr, x, &b, cfg.k_aux > 0 ? dead : NULL, &red, w, &L);
        if (!isfinite(L.total))
            die("job %s: the loss became %g at step %lld (lower train.lr?)", job->name, L.total, (long long)st.step);
        // dead-latent clocks: a latent kept for any token of the global batch fires now
        const SparseCodes *z = sae_last_codes(w);
        memset(fired, 0, sizeof(int64_t) * (size_t)m);
        for (int64_t e = 0; e < z->nnz; e++) fired[z->idx[e]]++;
        double t2 = wall_time();
        red.sum_i64(red.ctx, fired, m);
        comm_allreduce(g, grads, np, COMM_F32, COMM_SUM, NULL);
        double t3 = wall_time();
        optim_step(&cfg, &adam, st.step + 1, params, grads, m1, m2);
        st.tokens += L.n_tok_global;
        for (int j = 0; j < m; j++)
            if (fired[j]) last_fired[j] = st.tokens;
        if (cfg.select == SEL_BATCHTOPK)
            st.theta = st.step == 0 ? L.min_kept : (float)(theta_decay * st.theta + (1.0 - theta_decay) * L.min_kept);
        st.step++;
        double t4 = wall_time();
        env->timers[T_DATA] += t1 - t0;
        env->timers[T_STEP] += t2 - t1;
        env->timers[T_ALLREDUCE] += t3 - t2;
        env->timers[T_OPTIM] += t4 - t3;

        // the group agrees on stopping (a signal or the stop file) and on checkpointing (the clock)
        int flags[2] = {stop_requested(), ckpt_every > 0 && t4 - t_last_ckpt >= ckpt_every};
        comm_allreduce(g, flags, 2, COMM_I32, COMM_MAX, NULL);
        const double elapsed = t4 - t_loop;
        const double rate = (double)(st.tokens - tokens0) / (elapsed > 0 ? elapsed : 1e-9);
        if (lead && (st.step == step0 + 1 || st.step == steps || t4 - t_last_print >= progress_every)) {
            const double eta = (double)(steps - st.step) * elapsed / (double)(st.step - step0);
            progress_line(env, job, &cfg, st.step, steps, &L, n_dead, rate, eta);
            t_last_print = t4;
        }
        if ((flags[0] || flags[1]) && st.step < steps) {
            double tc = wall_time();
            st.train_s += tc - t_loop;
            t_loop = tc;
            // on disk on the lead, agreed by the group; a failed save leaves
            // the previous checkpoint and stops the job on every rank
            const int saved =
                !lead || ckpt_save(ckpt_path, &cfg, params, m1, m2, last_fired, &st, env->err, sizeof(env->err)) == 0;
            if (!comm_agree_msg(g, saved, env->err, sizeof(env->err), 0)) {
                failed = 1;
                break;
            }
            t_last_ckpt = wall_time();
            env->timers[T_CKPT] += t_last_ckpt - tc;
            if (flags[0]) {
                if (lead) printf("[group %d] %s: stopped on request at step %lld; checkpoint %s\n", env->group_index,
                                 job->name, (long long)st.step, ckpt_path);
                stopped = 1;
                break;
            }
        }
    }
    if (!stopped && !failed) {
        st.train_s += wall_time() - t_loop;
        ModelInfo info;
        memset(&info, 0, sizeof(info));
        snprintf(info.name, sizeof(info.name), "%s", job->name);
        info.hash = job->hash;
        info.seed = job->seed;
        info.layer = f->layer;
        info.scale = st.scale;
        info.theta = cfg.select == SEL_BATCHTOPK ? st.theta : 0.0f;
        info.steps = st.step;
        info.tokens = st.tokens;
        info.tokens_per_s = st.train_s > 0 ? (double)st.tokens / st.train_s : 0.0;
        const double lv[7] = {L.total, L.rec, L.aux, L.high, L.temp, L.spat, L.rast};
        memcpy(info.loss, lv, sizeof(lv));
        info.l0 = L.l0;
        info.dead_frac = (double)n_dead / m;
        // model.h5 marks the job done: it exists only whole and on disk
        // (model.h), and only then is the checkpoint removed
        const int saved = !lead || model_save(model_path, &cfg, params, &info, env->err, sizeof(env->err)) == 0;
        if (lead && saved) {
            if (unlink(ckpt_path) != 0 && errno != ENOENT)
                printf("[group %d] %s: note: cannot remove %s (%s); the job is done all the same\n", env->group_index,
                       job->name, ckpt_path, strerror(errno));
            printf("[group %d] %s: done, %lld steps, %.0f tok/s, final loss %.4f (rec %.4f), L0 %.1f, dead %.1f%% -> %s\n",
                   env->group_index, job->name, (long long)st.step, info.tokens_per_s, L.total, L.rec, L.l0,
                   100.0 * n_dead / m, model_path);
            fflush(stdout);
        }
        failed = !comm_agree_msg(g, saved, env->err, sizeof(env->err), 0);
    }
    env->timers[T_TOTAL] += wall_time() - t_start;
    data_free(dl);
    sae_work_free(w);
    free(x), free(params), free(grads), free(m1), free(m2), free(last_fired), free(fired), free(dead);
    free(dir), free(model_path), free(ckpt_path);
    return stopped ? JOB_STOPPED : failed ? JOB_FAILED : JOB_FINISHED;
}
