// options.c — each stage's deck section resolved once into its typed options
// (options.h). The only place outside deck.c and jobs.c that reads an stsae
// deck by key; the schema (deck_schema.c) has made every value present (a
// default or the deck's), typed and in range, so the getters here cannot fail.
#include "stsae/deck/options.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/deck/deck_schema.h"
#include "stsae/sae/gemm_bf16.h"

// ============================== train ============================================

int train_options_resolve(const Deck *d, int n_ranks, TrainOptions *o, char *err, size_t cap) {
    memset(o, 0, sizeof(*o));
    o->deck = d;
    o->run_dir = deck_str(d, "run_dir");
    o->device = deck_str(d, "device");
    o->comm_backend = deck_str(d, "comm.backend");
    o->features = deck_str(d, "train.features");
    o->ranks_per_job = (int)deck_int(d, "train.ranks_per_job");
    o->lockstep = (int)deck_int(d, "train.lockstep");
    o->lockstep_gb = deck_num(d, "train.lockstep_gb");
    o->gemm = deck_str(d, "train.gemm");
    o->device_features = deck_str(d, "train.device_features");
    o->streams = (int)deck_int(d, "train.streams");
    o->mix_clips = (int)deck_int(d, "train.mix_clips");
    o->epochs = (int)deck_int(d, "train.epochs");
    o->max_steps = deck_has(d, "train.max_steps") ? deck_int(d, "train.max_steps") : INT64_MAX;
    o->warmup_frac = deck_num(d, "train.warmup_frac");
    o->adam_beta1 = deck_num(d, "train.adam_beta1");
    o->adam_beta2 = deck_num(d, "train.adam_beta2");
    o->adam_eps = deck_num(d, "train.adam_eps");
    o->dead_tokens = deck_int(d, "train.dead_tokens");
    o->theta_decay = deck_num(d, "train.theta_decay");
    o->checkpoint_every = deck_num(d, "train.checkpoint_every");
    o->progress_every = deck_num(d, "train.progress_every");
    o->scale_sample = deck_int(d, "train.scale_sample");
    o->jobs = jobs_expand(d, err, cap);
    if (!o->jobs) return -1;
    if (n_ranks % o->ranks_per_job) {
        char where[512];
        deck_where(d, "train.ranks_per_job", where, sizeof(where));
        return deck_errorf(err, cap, where, "train.ranks_per_job", "%d does not divide the %d ranks of the run",
                           o->ranks_per_job, n_ranks);
    }
    char why[256];
    if (!strcmp(o->gemm, "bf16") && strcmp(o->device, "cuda") &&
        !gemm_bf16_available(why, sizeof(why), &o->gemm_isa, &o->gemm_native)) {
        char where[512];
        deck_where(d, "train.gemm", where, sizeof(where));
        return deck_errorf(err, cap, where, "train.gemm", "bf16 on the CPU: %s", why);
    }
    return 0;
}

void train_options_free(TrainOptions *o) {
    jobs_free(o->jobs);
    o->jobs = NULL;
}

int train_options_check(const TrainOptions *o, const DataShape *data, char *err, size_t cap) {
    return jobs_check(o->deck, o->jobs, data, err, cap);
}

// ============================== run ==============================================

void run_options_resolve(const Deck *d, RunOptions *o) {
    o->run_dir = deck_str(d, "run_dir");
    o->has_synth = deck_has(d, "synth");
    o->has_extract = deck_has(d, "extract");
    o->has_train = deck_has(d, "train");
}

// ============================== extract ==========================================

static void extract_input_resolve(const Deck *d, ExtractInput *in) {
    memset(in, 0, sizeof(*in));
    if (deck_has(d, "extract.input.csv")) {
        in->kind = EXTRACT_CSV;
        in->csv = deck_str(d, "extract.input.csv");
    } else if (deck_has(d, "extract.input.ssv2")) {
        in->kind = EXTRACT_SSV2;
        in->videos = deck_str(d, "extract.input.ssv2.videos");
        in->annotations = deck_str(d, "extract.input.ssv2.annotations");
        in->labels = deck_str(d, "extract.input.ssv2.labels");
    } else if (deck_has(d, "extract.input.k400")) {
        in->kind = EXTRACT_K400;
        in->videos = deck_str(d, "extract.input.k400.videos");
        in->csv = deck_str(d, "extract.input.k400.csv");
    } else {
        in->kind = EXTRACT_PIXELS;
        in->pixels = deck_str(d, "extract.input.pixels");
    }
}

void extract_options_resolve(const Deck *d, ExtractOptions *o) {
    memset(o, 0, sizeof(*o));
    o->run_dir = deck_str(d, "run_dir");
    o->device = deck_str(d, "device");
    extract_input_resolve(d, &o->input);
    o->backbone = deck_str(d, "extract.backbone");
    o->n_layers = deck_len(d, "extract.layers");
    o->layers = xmalloc(sizeof(int) * (size_t)(o->n_layers + 1));
    for (int i = 0; i < o->n_layers; i++) {
        char key[64];
        snprintf(key, sizeof(key), "extract.layers[%d]", i);
        o->layers[i] = (int)deck_int(d, key);
    }
    deck_where(d, "extract.layers", o->layers_where, sizeof(o->layers_where));
    strncat(o->layers_where, ": extract.layers", sizeof(o->layers_where) - strlen(o->layers_where) - 1);
    o->final_norm = deck_bool(d, "extract.final_norm");
    o->pos_interp = deck_str(d, "extract.pos_interp");
    o->gpu_math = deck_str(d, "extract.gpu_math");
    o->out = deck_str(d, "extract.out");
    o->frames = (int)deck_int(d, "extract.frames");
    o->patch = (int)deck_int(d, "extract.patch");
    o->image_size = (int)deck_int(d, "extract.image_size");
    o->batch_clips = (int)deck_int(d, "extract.batch_clips");
    o->test_frac = deck_num(d, "extract.test_frac");
    o->split_seed = (uint64_t)deck_int(d, "extract.split_seed");
    o->max_failed_frac = deck_num(d, "extract.max_failed_frac");
    o->text_embeddings = deck_has(d, "extract.text_embeddings") ? deck_str(d, "extract.text_embeddings") : NULL;
    o->clip_embeddings = deck_has(d, "extract.clip_embeddings") ? deck_str(d, "extract.clip_embeddings") : NULL;
    o->clip = deck_has(d, "extract.clip") ? deck_str(d, "extract.clip") : NULL;
    if (o->clip) deck_where(d, "extract.clip", o->clip_where, sizeof(o->clip_where));
}

void extract_options_free(ExtractOptions *o) {
    free(o->layers);
    o->layers = NULL;
}

// ============================== synth ============================================

void synth_options_resolve(const Deck *d, SynthOptions *o) {
    *o = (SynthOptions){
        .run_dir = deck_str(d, "run_dir"),
        .out = deck_str(d, "synth.out"),
        .codec = deck_str(d, "synth.codec"),
        .clips = (int)deck_int(d, "synth.clips"),
        .size = (int)deck_int(d, "synth.size"),
        .frames = (int)deck_int(d, "synth.frames"),
        .fps = (int)deck_int(d, "synth.fps"),
        .quality = (int)deck_int(d, "synth.quality"),
        .distractors = (int)deck_int(d, "synth.distractors"),
        .noise = deck_num(d, "synth.noise"),
        .test_frac = deck_num(d, "synth.test_frac"),
        .seed = (uint64_t)deck_int(d, "synth.seed"),
    };
}

// ============================== eval =============================================

int eval_options_resolve(const Deck *d, EvalOptions *o, char *err, size_t cap) {
    memset(o, 0, sizeof(*o));
    o->run_dir = deck_str(d, "run_dir");
    o->device = deck_str(d, "device");
    o->features = deck_str(d, "train.features");
    o->layer = (int)deck_int(d, "train.layer");
    o->clip_embeddings = strcmp(deck_str(d, "eval.embeddings"), "clip") == 0;
    o->text_stand_in = strcmp(deck_str(d, "eval.text_stand_in"), "hashed") == 0;
    o->use_max = strcmp(deck_str(d, "eval.clip_value"), "max") == 0;
    o->probe_max_iter = (int)deck_int(d, "eval.probe_max_iter");
    o->random_draws = (int)deck_int(d, "eval.random_draws");
    o->n_ablate = deck_len(d, "eval.ablate_n") < EVAL_MAX_LIST ? deck_len(d, "eval.ablate_n") : EVAL_MAX_LIST;
    for (int i = 0; i < o->n_ablate; i++) {
        char key[64];
        snprintf(key, sizeof(key), "eval.ablate_n[%d]", i);
        o->ablate[i] = deck_int(d, key);
    }
    o->n_smooth = deck_len(d, "eval.smoothing") < EVAL_MAX_LIST ? deck_len(d, "eval.smoothing") : EVAL_MAX_LIST;
    for (int i = 0; i < o->n_smooth; i++) {
        char key[64];
        snprintf(key, sizeof(key), "eval.smoothing[%d]", i);
        o->smooth[i] = deck_num(d, key);
    }
    o->progress_every = deck_num(d, "eval.progress_every");
    o->jobs = jobs_expand(d, err, cap);
    return o->jobs ? 0 : -1;
}

void eval_options_free(EvalOptions *o) {
    jobs_free(o->jobs);
    o->jobs = NULL;
}

// ============================== report ===========================================

int report_options_load(const char *deck_path, ReportOptions *o, char *err, size_t cap) {
    memset(o, 0, sizeof(*o));
    o->deck = deck_load_section(deck_path, stsae_schema, 0, NULL, "report", err, cap);
    if (!o->deck) return -1;
    o->jobs = jobs_expand(o->deck, err, cap);
    if (!o->jobs) return -1;
    o->features = deck_str(o->deck, "train.features");
    o->layer = (int)deck_int(o->deck, "train.layer");
    o->has_extract = deck_has(o->deck, "extract");
    if (o->has_extract) extract_input_resolve(o->deck, &o->input);
    o->browse = deck_bool(o->deck, "report.browse");
    o->browse_latents = (int)deck_int(o->deck, "report.browse_latents");
    return 0;
}

void report_options_free(ReportOptions *o) {
    jobs_free(o->jobs);
    deck_free(o->deck);
    memset(o, 0, sizeof(*o));
}
