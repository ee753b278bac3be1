// check_deck.c — `stsae check DECK [key=value ...]` (tools/check.h).
//
// In:  a deck path and overrides; the feature file train.features names when
//      it exists, else the deck's extract section (and the config.json of its
//      Hugging Face model directory, when there is one).
// Out: on stdout, the deck as resolved, then the data the jobs were checked
//      against (or a note that the data checks were skipped), the job table
//      and a summary as YAML comments, so the whole output loads again as the
//      same deck; on a deck error, the one message on stderr and exit status 1.
//
// The data checks are jobs_check (jobs.h), the same that `stsae train` runs
// before any job trains, so a deck that passes here does not stop midway on
// k > m, a batch larger than the training clips, T = 1 for temporal, etc.
// The data shape comes from, in this order: the feature file (d, T, H, W,
// its training clips); the extract section when it writes train.features
// (pixels backbone: d = 3 patch^2, H = W = image_size / patch, T = frames; a
// Hugging Face directory: its config.json through backbone.h, weights only
// mapped, never read; the training clips unknown until extraction); else
// nothing, and a note says so.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h" // STSAE_VERSION
#include "stsae/base/paths.h" // path_join
#include "stsae/deck/deck.h" // deck_load, deck_write
#include "stsae/deck/deck_schema.h" // stsae_schema
#include "stsae/deck/jobs.h" // jobs_expand, jobs_check
#include "stsae/io/backbone.h" // backbone_open, backbone_shape (no weights read)
#include "stsae/io/features.h" // features_open
#include "stsae/tools/check.h"
#include "stsae/vit/preprocess.h" // the ViTs' frame size

// A value a job does not use (0) prints as "-".
static const char *cell(double v, char *buf) {
    if (v == 0) return "-";
    deck_format_num(v, buf, 32);
    return buf;
}

static void print_jobs(const JobList *jobs) {
    int w = 4;
    for (int i = 0; i < jobs->n; i++)
        if ((int)strlen(jobs->job[i].name) > w) w = (int)strlen(jobs->job[i].name);
    printf("#\n# jobs (cost: expansion x 1.25 if contrastive x 1.15 if +M)\n");
    printf("# %5s  %-*s  %-10s  %-8s  %-8s  %-8s  %-6s  %-9s  %-6s  %4s  %4s  %-16s  %s\n", "index", w, "name",
           "variant", "lambda_t", "lambda_s", "lambda_r", "tau", "high_frac", "T_s", "k", "seed", "hash", "cost");
    for (int i = 0; i < jobs->n; i++) {
        const Job *j = &jobs->job[i];
        char a[32], b[32], c[32], t[32], h[32], s[32];
        printf("# %5d  %-*s  %-10s  %-8s  %-8s  %-8s  %-6s  %-9s  %-6s  %4d  %4lld  %016llx  %.2f\n", j->index, w,
               j->name, j->variant, cell(j->lambda_t, a), cell(j->lambda_s, b), cell(j->lambda_r, c),
               cell(j->tau, t), cell(j->high_frac, h), cell(j->T_s, s), j->k, (long long)j->seed,
               (unsigned long long)j->hash, j->cost);
    }
}

// "# 120 jobs: standard 3, temporal 18, ...; total cost 1150.8" (variants in
// order of first appearance)
static void print_summary(const JobList *jobs) {
    const char *variant[32];
    int count[32], nv = 0;
    double total = 0;
    for (int i = 0; i < jobs->n; i++) {
        int v = 0;
        while (v < nv && strcmp(variant[v], jobs->job[i].variant)) v++;
        if (v == nv && nv < 32) variant[nv] = jobs->job[i].variant, count[nv++] = 0;
        if (v < nv) count[v]++;
        total += jobs->job[i].cost;
    }
    printf("# %d jobs:", jobs->n);
    for (int v = 0; v < nv; v++) printf("%s %s %d", v ? "," : "", variant[v], count[v]);
    printf("; total cost %.1f\n", total);
}

// "WHERE: KEY: message" for a key of the deck; returns -1.
static int key_error(const Deck *d, const char *key, char *err, size_t cap, const char *msg) {
    char where[600];
    deck_where(d, key, where, sizeof(where));
    return deck_errorf(err, cap, where, key, "%s", msg);
}

// The shape the extract section gives its layer train.layer, when that
// section writes the file train.features reads. 1: *s filled; 0: unknown
// (why in `note`); -1: a deck error (err).
static int extract_shape(const Deck *d, const char *feat, DataShape *s, char *src, size_t scap, char *note,
                         size_t ncap, char *err, size_t ecap) {
    const char *run_dir = deck_str(d, "run_dir");
    char *out = deck_has(d, "extract") ? path_join(run_dir, deck_str(d, "extract.out")) : NULL;
    int same = out && !strcmp(out, feat);
    free(out);
    if (!same) {
        snprintf(note, ncap, "no feature file %s yet, and no extract section that writes it", feat);
        return 0;
    }
    const int64_t layer = deck_int(d, "train.layer"), T_in = deck_int(d, "extract.frames");
    int found = 0;
    for (int i = 0; i < deck_len(d, "extract.layers"); i++) {
        char key[64];
        snprintf(key, sizeof(key), "extract.layers[%d]", i);
        found |= deck_int(d, key) == layer;
    }
    if (!found) {
        char msg[1400], where[600];
        deck_where(d, "extract.layers", where, sizeof(where));
        snprintf(msg, sizeof(msg), "layer %lld is not among extract.layers (%s), which make %s", (long long)layer,
                 where, feat);
        return key_error(d, "train.layer", err, ecap, msg);
    }
    const char *spec = deck_str(d, "extract.backbone");
    if (backbone_builtin(spec)) {
        const int64_t p = deck_int(d, "extract.patch"), S = deck_int(d, "extract.image_size");
        const int motion = !strcmp(spec, "motion");
        char msg[200];
        if (S % p) {
            snprintf(msg, sizeof(msg), "%lld px is not a multiple of extract.patch = %lld (the %s backbone)",
                     (long long)S, (long long)p, spec);
            return key_error(d, "extract.image_size", err, ecap, msg);
        }
        if (motion && (p < 4 || p % 2)) {
            snprintf(msg, sizeof(msg), "%lld: the motion backbone needs an even patch >= 4", (long long)p);
            return key_error(d, "extract.patch", err, ecap, msg);
        }
        if (motion && T_in % 2) {
            snprintf(msg, sizeof(msg), "%lld frames: the motion backbone needs an even count (tubelets of 2)",
                     (long long)T_in);
            return key_error(d, "extract.frames", err, ecap, msg);
        }
        BackboneOptions bo = {.patch = (int)p};
        Backbone *bb = backbone_open(spec, &bo);
        const BackboneShape sh = backbone_shape(bb, (int)T_in, (int)S);
        backbone_close(bb);
        *s = (DataShape){sh.d, sh.T, sh.H, sh.W, -1, src, NULL, 0};
        snprintf(src, scap, "the %s backbone of the extract section", spec);
        return 1;
    }
    char *dir = path_join(run_dir, spec), *cfg = path_join(dir, "config.json");
    const int here = access(cfg, R_OK) == 0;
    free(cfg);
    if (!here) {
        snprintf(note, ncap, "no feature file %s yet, and the extract section's backbone %s is not a model "
                 "directory here", feat, dir);
        free(dir);
        return 0;
    }
    // the model directory as extract reads it: errors die naming its files, as extract would
    BackboneOptions bo = {.pos_interp = POS_INTERP_HF, .patch = 16};
    Backbone *bb = backbone_open(dir, &bo);
    const int S = !strcmp(backbone_name(bb), "videomae") ? preprocess_videomae().crop : preprocess_dinov2().crop;
    char where[700];
    deck_where(d, "extract.layers", where, sizeof(where));
    strncat(where, ": extract.layers", sizeof(where) - strlen(where) - 1);
    const int n_layers = deck_len(d, "extract.layers");
    int *layers = xmalloc(sizeof(int) * (size_t)n_layers);
    for (int i = 0; i < n_layers; i++) {
        char key[64];
        snprintf(key, sizeof(key), "extract.layers[%d]", i);
        layers[i] = (int)deck_int(d, key);
    }
    backbone_check_layers(bb, layers, n_layers, where); // blocks of this model, none twice
    free(layers);
    const BackboneShape sh = backbone_shape(bb, (int)T_in, S);
    snprintf(src, scap, "the %s model %s of the extract section", backbone_name(bb), dir);
    *s = (DataShape){sh.d, sh.T, sh.H, sh.W, -1, src, NULL, 0};
    backbone_close(bb);
    free(dir);
    return 1;
}

// Checks the jobs against the data they will see and prints it (or a note):
// 0, or -1 with the one message in err. Prints nothing on an error.
static int check_data(const Deck *d, const JobList *jobs, char *line, size_t lcap, char *err, size_t ecap) {
    char *feat = path_join(deck_str(d, "run_dir"), deck_str(d, "train.features"));
    char src[4200], note[4400] = "";
    DataShape s;
    int have, rc = 0;
    int *layers = xmalloc(sizeof(int) * (size_t)(deck_has(d, "extract") ? deck_len(d, "extract.layers") + 1 : 1));
    if (access(feat, F_OK) == 0) { // the file train would read: every check, with its training clips
        FeatureFile f;
        have = features_open(&f, feat, (int)deck_int(d, "train.layer"), err, ecap) == 0 ? 1 : -1;
        if (have > 0) {
            int32_t *train = NULL;
            snprintf(src, sizeof(src), "%s", feat);
            s = (DataShape){f.d, f.T, f.H, f.W, features_clips(&f, 0, &train), src, NULL, 0};
            free(train);
        }
        features_close(&f);
        for (int i = 0; i < jobs->n && have > 0; i++) { // every other layer the jobs train on is in the file
            if (jobs->job[i].layer == (int)deck_int(d, "train.layer")) continue;
            have = features_open(&f, feat, jobs->job[i].layer, err, ecap) == 0 ? 1 : -1;
            features_close(&f);
        }
    } else {
        have = extract_shape(d, feat, &s, src, sizeof(src), note, sizeof(note), err, ecap);
        if (have > 0) { // the layers extract will write
            s.n_layers = deck_len(d, "extract.layers");
            for (int i = 0; i < s.n_layers; i++) {
                char key[64];
                snprintf(key, sizeof(key), "extract.layers[%d]", i);
                layers[i] = (int)deck_int(d, key);
            }
            s.layers = layers;
        }
    }
    if (have < 0 || (have > 0 && jobs_check(d, jobs, &s, err, ecap))) rc = -1;
    else if (have == 0) snprintf(line, lcap, "# note: data checks skipped: %s", note);
    else if (s.n_train >= 0)
        snprintf(line, lcap, "# data: %s, layer %lld: d=%d, T=%d, H=%d, W=%d, %lld training clips", feat,
                 (long long)deck_int(d, "train.layer"), s.d, s.T, s.H, s.W, (long long)s.n_train);
    else
        snprintf(line, lcap, "# data: %s: d=%d, T=%d, H=%d, W=%d (the training clips are checked once extracted)",
                 s.source, s.d, s.T, s.H, s.W);
    free(feat), free(layers);
    return rc;
}

int check_deck_main(int argc, char **argv) {
    if (argc < 1) {
        fprintf(stderr, "usage: stsae check DECK [key=value ...]\n");
        return 2;
    }
    char err[1024];
    Deck *d = deck_load(argv[0], stsae_schema, argc - 1, argv + 1, err, sizeof(err));
    JobList *jobs = d ? jobs_expand(d, err, sizeof(err)) : NULL;
    char data[8600] = "";
    if (!jobs || (deck_has(d, "train") && check_data(d, jobs, data, sizeof(data), err, sizeof(err)))) {
        fprintf(stderr, "%s\n", err);
        jobs_free(jobs);
        deck_free(d);
        return 1;
    }
    printf("# stsae %s check: %s as resolved (defaults filled in)\n", STSAE_VERSION, argv[0]);
    deck_write(d, stdout);
    if (deck_has(d, "train")) {
        printf("#\n%s\n", data);
        print_jobs(jobs);
        print_summary(jobs);
    } else {
        printf("# no train section: no jobs\n");
    }
    jobs_free(jobs);
    deck_free(d);
    return 0;
}
