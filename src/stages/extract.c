// extract.c — `stsae extract DECK [key=value ...]` (SPEC §3, §4): video clips
// in, one parallel HDF5 feature file out, on any number of ranks.
//
// In:  the deck's extract section, resolved once into ExtractOptions
//      (options.h; the start-up, stage.h): the clip list (CSV, SSv2, K400, or
//      an HDF5 of preprocessed /pixels), the backbone ("pixels", "motion" or a Hugging
//      Face model directory), the layers, T_in, and either embeddings to
//      import or a CLIP directory (extract.clip) whose embeddings to compute.
// Out: RUN_DIR/<extract.out>, SPEC §3's layout: /features/layer_LL float16
//      [clips, T, N, d] (one clip per chunk), /labels, /split, /clip_ids,
//      /label_names, /done, /failed, /text_embeddings and /clip_embeddings
//      (imported, or CLIP's: each clip's T_in frames decoded once,
//      preprocessed twice, the backbone's way and CLIP's, the clip embedding
//      the mean of its frames' unit CLIP embeddings, written with the
//      features; the label names' embeddings at creation), and root
//      attributes (format_version, backbone, weights digest, CLIP's weights
//      digest, layers, T, H, W, N, d, T_in, image size, frame sampling,
//      final_norm, pos_interp, stsae version). The file itself is
//      written by its owner, the feature file's writer (features.h,
//      src/io/features_write.c); this file decides what goes into it.
//
// The file is built as OUT.partial, created and extended collectively by all
// ranks (MPI-IO); when every clip is done or failed it is renamed to OUT.
// Clips still to do are dealt round-robin to the ranks; in rounds of
// extract.batch_clips clips per rank, each rank decodes (FFmpeg), samples T_in
// frames, preprocesses as the model's Hugging Face processor, runs the
// backbone (and CLIP), and all ranks then write their clips collectively: the features,
// a flush that puts them on disk, and only then /done (on disk with the next
// round's flush). A killed run started again reopens OUT.partial, checks it
// was made by the same setup, and computes only the clips not done; every
// clip's features depend on that clip alone, so the final file has the same
// contents as an uninterrupted run, on any number of ranks. A clip that
// cannot be decoded is named, marked in /failed, and skipped (a later run
// tries it again); when every clip is done or failed and none succeeded, or
// more than extract.max_failed_frac of them failed (default 1: only the
// former), the run fails with the count and the first reasons and keeps
// OUT.partial. A stop request (stop_request.h): the round under way is written, then
// every rank exits with status 3 (run again to continue). Rank 0 prints
// progress and, at the end, seconds per stage (decode, preprocess, forward,
// write) over the ranks. device: cuda: each rank's ViT forward runs on the
// GPU of its index on its node (vit_cuda.h, GEMMs as extract.gpu_math says);
// decoding, preprocessing and the built-in backbones stay on the CPU.
//
// Write failures (a full disk): every HDF5 call on the file is checked, and
// the ranks agree on each collective call's outcome before the next one
// (features.h, comm_agree_msg), so a failure seen by one rank stops every
// rank, each printing the file, the dataset and the reason, with exit status
// 1, and no rank waits in a collective call the others left. What was marked
// done is on disk; the same command, with room, goes on from there. Open
// MPI's OMPIO loses such failures, so ROMIO is chosen for the file
// (comm_world_init, comm.h).
//
// extract_main reads as its steps (start, options, clip list, backbone,
// output directory, finished file?, pixels input, the partial file, plan,
// rounds, end), each a function below; whatever step it leaves at, one
// cleanup (extract_cleanup) frees what was made.
#define _POSIX_C_SOURCE 200809L // access, strdup
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/base/progress.h"
#include "stsae/base/stop_request.h"
#include "stsae/comm/comm.h"
#include "stsae/deck/options.h"
#include "stsae/io/backbone.h"
#include "stsae/io/clip_model.h"
#include "stsae/io/features.h"
#include "stsae/io/h5io.h"
#include "stsae/io/inputs.h"
#include "stsae/io/video.h"
#include "stsae/stages/extract.h"
#include "stsae/stages/stage.h"
#include "stsae/vit/preprocess.h"

enum { X_DECODE, X_PREPROCESS, X_FORWARD, X_CLIP, X_WRITE, X_TOTAL, N_XT };
static const char *const XT_NAMES[N_XT] = {"decode", "preprocess", "forward", "clip", "write", "total"};

// Seconds between extract's progress lines (and always after the first and
// the last round).
#define PROGRESS_EVERY 5.0

// The clip list of a preprocessed-pixels file: /pixels [clips, T_in, 3, S, S],
// /labels, optional /split. 0, or -1 with err (and l left empty).
static int read_pixels_list(const char *pixels, ClipList *l, char *err, size_t cap) {
    hid_t f = -1;
    H5E_BEGIN_TRY { f = H5Fopen(pixels, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f < 0) return snprintf(err, cap, "%s: cannot open as HDF5", pixels), -1;
    hsize_t dims[5] = {0};
    hid_t ds = H5Dopen2(f, "/pixels", H5P_DEFAULT);
    int rank = -1;
    if (ds >= 0) {
        hid_t sp = H5Dget_space(ds);
        rank = H5Sget_simple_extent_ndims(sp);
        if (rank == 5) H5Sget_simple_extent_dims(sp, dims, NULL);
        H5Sclose(sp);
        H5Dclose(ds);
    }
    if (rank != 5 || dims[2] != 3 || dims[3] != dims[4]) {
        H5Fclose(f);
        return snprintf(err, cap, "%s: /pixels must be float32 [clips, T_in, 3, S, S]", pixels), -1;
    }
    if (dims[0] < 1 || dims[0] > INPUTS_MAX_ROWS) {
        H5Fclose(f);
        return snprintf(err, cap, "%s: /pixels holds %llu clips (1 .. %d)", pixels, (unsigned long long)dims[0],
                        INPUTS_MAX_ROWS), -1;
    }
    hsize_t dl[1], dsp[1] = {0};
    float *lab = h5_read_f32(f, pixels, "/labels", 1, dl);
    uint8_t *sp = h5_exists(f, "/split") ? h5_read_u8(f, pixels, "/split", 1, dsp) : NULL;
    H5Fclose(f);
    int bad = dl[0] != dims[0] || (sp && dsp[0] != dims[0]);
    if (bad)
        snprintf(err, cap, "%s: /labels has %llu entries%s%llu, /pixels %llu clips: one each per clip", pixels,
                 (unsigned long long)dl[0], sp ? ", /split " : "", sp ? (unsigned long long)dsp[0] : 0ull,
                 (unsigned long long)dims[0]);
    else
        bad = inputs_check_label_values(pixels, "/labels", lab, (size_t)dl[0], err, cap) != 0;
    for (hsize_t i = 0; !bad && sp && i < dims[0]; i++)
        if (sp[i] > 1)
            bad = 1, snprintf(err, cap, "%s: /split[%llu] = %u: 0 (train) or 1 (test)", pixels, (unsigned long long)i,
                              sp[i]);
    if (bad) {
        free(lab), free(sp);
        return -1;
    }
    l->n = (int)dims[0];
    l->clip = xcalloc((size_t)l->n, sizeof(ClipEntry));
    int max_label = -1;
    for (int i = 0; i < l->n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "pixels_%06d", i);
        l->clip[i].path = strdup(pixels);
        l->clip[i].clip_id = strdup(id);
        l->clip[i].label = (int)lab[i];
        l->clip[i].split = sp ? sp[i] : -1;
        if (l->clip[i].label > max_label) max_label = l->clip[i].label;
    }
    l->n_labels = max_label + 1;
    l->label_names = xcalloc((size_t)l->n_labels + 1, sizeof(char *));
    for (int i = 0; i < l->n_labels; i++) {
        char nm[16];
        snprintf(nm, sizeof(nm), "%d", i);
        l->label_names[i] = strdup(nm);
    }
    free(lab), free(sp);
    return 0;
}

int extract_clip_list(const ExtractInput *in, const char *run_dir, ClipList *l, char **pixels, char *err, size_t cap) {
    memset(l, 0, sizeof(*l));
    *pixels = NULL;
    int rc;
    switch (in->kind) {
    case EXTRACT_CSV: {
        char *p = path_join(run_dir, in->csv);
        rc = inputs_read_csv(p, l, err, cap);
        free(p);
        return rc;
    }
    case EXTRACT_SSV2: {
        char *v = path_join(run_dir, in->videos), *a = path_join(run_dir, in->annotations),
             *b = path_join(run_dir, in->labels);
        rc = inputs_read_ssv2(v, a, b, l, err, cap);
        free(v), free(a), free(b);
        return rc;
    }
    case EXTRACT_K400: {
        char *v = path_join(run_dir, in->videos), *c = path_join(run_dir, in->csv);
        rc = inputs_read_k400(v, c, l, err, cap);
        free(v), free(c);
        return rc;
    }
    default:
        *pixels = path_join(run_dir, in->pixels);
        rc = read_pixels_list(*pixels, l, err, cap);
        if (rc) free(*pixels), *pixels = NULL;
        return rc;
    }
}

// One clip's preprocessed pixels [T_in, 3, S, S]: decoded and preprocessed,
// or (pixels_ds >= 0) read from the pixels file's /pixels, whose shape
// extract_main has checked; with cpp (extract.clip), the same frames in
// CLIP's preprocessing into clip_out. 0, or -1 with err (a clip to skip).
static int clip_pixels(const ClipEntry *c, hid_t pixels_ds, int index, int T_in, const Preprocess *pp, float *out,
                       const Preprocess *cpp, float *clip_out, double *t, char *err, size_t cap) {
    double t0 = wall_time();
    if (pixels_ds >= 0) {
        hid_t fs = H5Dget_space(pixels_ds);
        hsize_t start[5] = {(hsize_t)index, 0, 0, 0, 0},
                count[5] = {1, (hsize_t)T_in, 3, (hsize_t)pp->crop, (hsize_t)pp->crop};
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        hid_t ms = H5Screate_simple(5, count, NULL);
        const int rc = H5Dread(pixels_ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out) < 0
                           ? h5_fail(err, cap, c->path, "cannot read clip %d of dataset /pixels", index)
                           : 0;
        H5Sclose(ms), H5Sclose(fs);
        t[X_DECODE] += wall_time() - t0;
        return rc;
    }
    VideoClip v;
    if (video_read(c->path, T_in, VIDEO_HOLD_BYTES, &v, err, cap) != 0) {
        t[X_DECODE] += wall_time() - t0;
        return -1;
    }
    double t1 = wall_time();
    t[X_DECODE] += t1 - t0;
    preprocess_clip(pp, v.rgb, v.T, v.width, v.height, out);
    if (cpp) preprocess_clip(cpp, v.rgb, v.T, v.width, v.height, clip_out);
    t[X_PREPROCESS] += wall_time() - t1;
    video_clip_free(&v);
    return 0;
}

// The first reasons clips failed, for the message when too many did.
#define N_REASONS 5
typedef struct {
    int clip; // -1: unused
    char why[500];
} Reason;

// Rank 0 prints the first N_REASONS reasons of all ranks (collective).
static void print_reasons(Comm *w, const Reason *mine, const ClipList *l, int me, int size) {
    Reason *all = me == 0 ? xmalloc(sizeof(Reason) * N_REASONS * (size_t)size) : NULL;
    comm_gather(w, mine, all, sizeof(Reason) * N_REASONS, COMM_U8, 0, NULL);
    if (me != 0) return;
    const int n = N_REASONS * size;
    for (int k = 0; k < N_REASONS; k++) { // the lowest clip indices first
        int best = -1;
        for (int i = 0; i < n; i++)
            if (all[i].clip >= 0 && (best < 0 || all[i].clip < all[best].clip)) best = i;
        if (best < 0) break;
        fprintf(stderr, "  clip %d ('%s'): %s\n", all[best].clip, l->clip[all[best].clip].clip_id, all[best].why);
        all[best].clip = -1;
    }
    free(all);
}

// Every rank says the agreed message of a failed write; rank 0 what is kept.
static void say_failed(const FeatureWriter *o, int me, int kept) {
    fprintf(stderr, "stsae: error (rank %d): extract: %s\n", me, o->err);
    fflush(stderr);
    if (me == 0 && kept)
        fprintf(stderr, "extract: the clips marked done in %s are on disk and kept; make room (or fix the cause) and "
                        "run the same command again to continue\n", o->path);
}

static const StageSpec EXTRACT_STAGE = {"extract", "extract", NULL, NULL};

// Everything extract_main makes, in the order it makes it; extract_cleanup
// frees whatever of it exists, on every way out.
typedef struct {
    Stage st;
    ExtractOptions opt;
    int have_opt;
    int device;                // device: cuda: the ViT forward on this rank's GPU (stage_use_device)
    double t[N_XT], t_start;   // seconds per part (XT_NAMES); when the stage started
    ClipList l;                // the clips (empty until read)
    char *pixels_file;         // the preprocessed-pixels input, or NULL
    char *model_dir;           // the backbone's directory, or "pixels"
    Backbone *bb;
    FeaturesSetup su;          // what the file records (its layers: opt.layers)
    Preprocess pp;
    ClipModel *clip;           // extract.clip, or NULL
    Preprocess cpp;            // CLIP's preprocessing
    float *text;               // [labels, E]: CLIP's embeddings of the label names
    char *out_path, *out_dir;  // RUN_DIR/extract.out and its directory
    char partial[4200];        // OUT.partial
    hid_t pix_file, pix_ds;    // the pixels input's file and /pixels, or -1
    FeatureWriter o;           // open between open_partial and end_run
    int resume;
    uint8_t *done, *failed;    // per clip: in /done, in /failed
    int *todo, n_todo;         // the clips not done, in file order
    int *mine, n_mine, rounds; // this rank's share of todo; the rounds of the busiest rank
    // one round's buffers: batch_clips clips
    size_t pix, tok, cpix;     // floats per clip: pixels, features of one layer, CLIP's pixels
    float *pixels, **feat;     // feat[layer]
    float *clip_pixels, *clip_emb; // extract.clip: [B, T_in, 3, C, C], [B, E]
    uint16_t **half;           // half[layer]: feat as float16
    int *ok_clips, *bad_clips;
    Reason reasons[N_REASONS]; // this rank's first failed clips
    int n_reasons, total_done, total_failed, stopped;
} Extract;

// The clip list, agreed over the ranks (every rank reads it), and the default
// split of the clips it gives none. 0, or -1 (rank 0 said why).
static int read_clip_list(Extract *x) {
    Stage *st = &x->st;
    int ok = extract_clip_list(&x->opt.input, x->opt.run_dir, &x->l, &x->pixels_file, st->err, sizeof(st->err)) == 0;
    if (ok && x->l.n < 1) snprintf(st->err, sizeof(st->err), "%s: the clip list is empty", st->deck_path), ok = 0;
    if (!stage_agree(st, ok)) return -1;
    inputs_default_split(&x->l, x->opt.test_frac, x->opt.split_seed);
    return 0;
}

// The backbone, its preprocessing and the shape of its features (dies naming
// the model or the deck's layers when they do not fit).
static void open_backbone(Extract *x) {
    const ExtractOptions *o = &x->opt;
    FeaturesSetup *su = &x->su;
    BackboneOptions bo = {.final_norm = o->final_norm, .pos_interp = POS_INTERP_HF, .patch = o->patch,
                          .cuda = x->device};
    su->pos_interp = o->pos_interp;
    backbone_pos_interp(su->pos_interp, &bo.pos_interp);
    backbone_math(o->gpu_math, &bo.math);
    x->model_dir = backbone_builtin(o->backbone) ? strdup(o->backbone) : path_join(o->run_dir, o->backbone);
    x->bb = backbone_open(x->model_dir, &bo);
    su->backbone = backbone_name(x->bb);
    su->digest = backbone_digest(x->bb);
    su->final_norm = bo.final_norm;
    su->T_in = o->frames;
    x->pp = !strcmp(su->backbone, "dinov2")     ? preprocess_dinov2()
            : !strcmp(su->backbone, "videomae") ? preprocess_videomae()
                                                : preprocess_square(o->image_size);
    su->image_size = x->pp.crop;
    su->n_layers = o->n_layers;
    su->layers = o->layers;
    backbone_check_layers(x->bb, su->layers, su->n_layers, o->layers_where);
    const BackboneShape sh = backbone_shape(x->bb, su->T_in, su->image_size);
    su->T = sh.T, su->H = sh.H, su->W = sh.W, su->N = sh.N, su->d = sh.d;
}

// extract.clip: CLIP's model on every rank (dies naming the directory when it
// is broken), its preprocessing, and the label names' embeddings (every rank
// the same; written by rank 0). 0, or -1 (agreed): a deck that also imports
// embeddings, or whose input is preprocessed pixels (no frames left for
// CLIP's own preprocessing).
static int open_clip(Extract *x) {
    const ExtractOptions *o = &x->opt;
    if (!o->clip) return 0;
    Stage *st = &x->st;
    int ok = 1;
    if (o->text_embeddings || o->clip_embeddings)
        ok = 0, snprintf(st->err, sizeof(st->err), "%s: extract.clip computes /text_embeddings and /clip_embeddings; "
                         "drop extract.text_embeddings and extract.clip_embeddings", o->clip_where);
    else if (x->pixels_file)
        ok = 0, snprintf(st->err, sizeof(st->err), "%s: extract.clip needs the videos: the input %s holds preprocessed "
                         "pixels, no frames for CLIP's own preprocessing", o->clip_where, x->pixels_file);
    if (!stage_agree(st, ok)) return -1;
    char *dir = path_join(o->run_dir, o->clip);
    x->clip = clip_model_open(dir);
    free(dir);
    const int E = clip_model_embed_dim(x->clip);
    x->su.clip_digest = clip_model_digest(x->clip);
    x->su.clip_e = E;
    x->cpp = preprocess_openai_clip(clip_model_image_size(x->clip));
    x->text = xmalloc(sizeof(float) * (size_t)(x->l.n_labels + 1) * E);
    for (int i = 0; i < x->l.n_labels; i++) {
        char what[700], *q = clip_model_query(x->l.label_names[i]);
        snprintf(what, sizeof(what), "%s: label name %d", st->deck_path, i);
        clip_model_embed_text(x->clip, q, what, x->text + (size_t)i * E);
        free(q);
    }
    return 0;
}

// OUT, OUT.partial and OUT's directory, made by rank 0 (agreed). 0, or -1.
static int make_out_dir(Extract *x) {
    Stage *st = &x->st;
    x->out_path = path_join(x->opt.run_dir, x->opt.out);
    snprintf(x->partial, sizeof(x->partial), "%s.partial", x->out_path);
    x->out_dir = path_dir(x->out_path);
    const int ok = st->rank != 0 || path_mkdirs(x->out_dir, st->err, sizeof(st->err)) == 0;
    return stage_agree(st, ok) ? 0 : -1;
}

// OUT exists: nothing to do, if it was made by this setup. The exit status.
static int check_finished(Extract *x) {
    Stage *st = &x->st;
    const int ok = features_write_check(st->world, x->out_path, &x->su, x->l.n, st->err, sizeof(st->err)) == 0;
    if (!stage_agree(st, ok)) return 1;
    if (st->rank == 0) printf("extract: %s exists, made by this setup: nothing to do\n", x->out_path);
    return 0;
}

// A preprocessed-pixels input, opened for clip_pixels: it must hold T_in
// frames of the backbone's size (agreed). 0, or -1.
static int open_pixels_input(Extract *x) {
    if (!x->pixels_file) return 0;
    Stage *st = &x->st;
    x->pix_file = h5_open_read(x->pixels_file);
    x->pix_ds = H5Dopen2(x->pix_file, "/pixels", H5P_DEFAULT);
    hid_t sp = H5Dget_space(x->pix_ds);
    hsize_t dims[5];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    snprintf(st->err, sizeof(st->err), "%s: /pixels holds %llu frames of %llu px; the deck asks T_in = %d at %d px",
             x->pixels_file, (unsigned long long)dims[1], (unsigned long long)dims[3], x->su.T_in, x->su.image_size);
    return stage_agree(st, (int)dims[1] == x->su.T_in && (int)dims[3] == x->su.image_size) ? 0 : -1;
}

// OUT.partial reopened (a resumed run: made by this setup, agreed) or
// created, then /done read. 0, or -1 (the message said; the writer closed).
static int open_partial(Extract *x) {
    Stage *st = &x->st;
    x->resume = access(x->partial, F_OK) == 0;
    if (x->resume) {
        const int ok =
            features_write_reopen(&x->o, st->world, x->partial, &x->su, x->l.n, st->err, sizeof(st->err)) == 0;
        if (!stage_agree(st, ok)) return -1;
    } else {
        char *imp[2] = {NULL, NULL}; // the embeddings to import: text, clip
        if (x->opt.text_embeddings) imp[0] = path_join(x->opt.run_dir, x->opt.text_embeddings);
        if (x->opt.clip_embeddings) imp[1] = path_join(x->opt.run_dir, x->opt.clip_embeddings);
        const FeaturesEmbeddings emb = {.text_file = imp[0], .clip_file = imp[1], .text = x->text,
                                        .text_e = x->su.clip_e};
        const int ok = features_write_create(&x->o, st->world, x->partial, &x->su, &x->l, &emb);
        free(imp[0]), free(imp[1]);
        if (!ok) { // closed and removed: it held no clip
            say_failed(&x->o, st->rank, 0);
            return -1;
        }
    }
    x->done = xmalloc((size_t)x->l.n);
    if (!features_write_begin(&x->o, x->done)) {
        features_write_abandon(&x->o);
        say_failed(&x->o, st->rank, 1);
        return -1;
    }
    return 0;
}

// Rank 0's first line: what is to do, with what, where.
static void print_plan(const Extract *x) {
    const FeaturesSetup *su = &x->su;
    if (x->device)
        printf("extract: device cuda: %s on each rank's GPU (GEMMs %s)\n",
               backbone_builtin(x->opt.backbone) ? "the built-in backbone runs on the CPU; decoding too"
                                                 : "the backbone forward",
               x->opt.gpu_math);
    printf("extract: %d clips (%d to do%s), backbone %s, layers", x->l.n, x->n_todo, x->resume ? ", resuming" : "",
           su->backbone);
    for (int i = 0; i < su->n_layers; i++) printf(" %d", su->layers[i]);
    printf(", T_in %d at %d px -> T=%d H=%d W=%d d=%d; %d rank%s -> %s\n", su->T_in, su->image_size, su->T, su->H,
           su->W, su->d, x->st.size, x->st.size > 1 ? "s" : "", x->out_path);
    if (x->clip)
        printf("extract: CLIP %s (on the CPU): /clip_embeddings [%d, %d] (frames at %d px, mean of unit embeddings), "
               "/text_embeddings of %d label names\n", clip_model_path(x->clip), x->l.n, su->clip_e, x->cpp.crop,
               x->l.n_labels);
    fflush(stdout);
}

// The clips not done, this rank's share (todo[i] with i = rank mod size, in
// increasing file order), the rounds of the busiest rank, and one round's
// buffers.
static void plan_rounds(Extract *x) {
    const Stage *st = &x->st;
    const int B = x->opt.batch_clips;
    x->todo = xmalloc(sizeof(int) * (size_t)x->l.n);
    for (int i = 0; i < x->l.n; i++)
        if (!x->done[i]) x->todo[x->n_todo++] = i;
    if (st->rank == 0) print_plan(x);
    x->mine = xmalloc(sizeof(int) * (size_t)(x->n_todo / st->size + 1));
    for (int i = st->rank; i < x->n_todo; i += st->size) x->mine[x->n_mine++] = x->todo[i];
    x->rounds = (x->n_mine + B - 1) / B;
    comm_allreduce(st->world, &x->rounds, 1, COMM_I32, COMM_MAX, NULL);
    const FeaturesSetup *su = &x->su;
    x->pix = (size_t)su->T_in * 3 * su->image_size * su->image_size;
    x->tok = (size_t)su->T * su->N * su->d;
    x->pixels = xmalloc(sizeof(float) * x->pix * (size_t)B);
    x->feat = xcalloc((size_t)su->n_layers, sizeof(float *));
    x->half = xcalloc((size_t)su->n_layers, sizeof(uint16_t *));
    for (int li = 0; li < su->n_layers; li++) {
        x->feat[li] = xmalloc(sizeof(float) * x->tok * (size_t)B);
        x->half[li] = xmalloc(sizeof(uint16_t) * x->tok * (size_t)B);
    }
    if (x->clip) {
        x->cpix = (size_t)su->T_in * 3 * x->cpp.crop * x->cpp.crop;
        x->clip_pixels = xmalloc(sizeof(float) * x->cpix * (size_t)B);
        x->clip_emb = xmalloc(sizeof(float) * (size_t)su->clip_e * (size_t)B);
    }
    x->ok_clips = xmalloc(sizeof(int) * (size_t)B);
    x->bad_clips = xmalloc(sizeof(int) * (size_t)B);
    for (int k = 0; k < N_REASONS; k++) x->reasons[k].clip = -1, x->reasons[k].why[0] = 0;
}

// Round r's pixels of this rank's clips: the clips that decoded into
// ok_clips (their pixels in order), the others named, kept among the first
// reasons and listed in bad_clips.
static void read_round(Extract *x, int r, int *n_ok, int *n_bad) {
    const int B = x->opt.batch_clips;
    *n_ok = *n_bad = 0;
    for (int q = r * B; q < x->n_mine && q < (r + 1) * B; q++) {
        const int c = x->mine[q];
        char why[1024];
        if (clip_pixels(&x->l.clip[c], x->pix_ds, c, x->su.T_in, &x->pp, x->pixels + x->pix * (size_t)*n_ok,
                        x->clip ? &x->cpp : NULL, x->clip ? x->clip_pixels + x->cpix * (size_t)*n_ok : NULL, x->t,
                        why, sizeof(why)) == 0) {
            x->ok_clips[(*n_ok)++] = c;
        } else {
            x->bad_clips[(*n_bad)++] = c;
            fprintf(stderr, "extract: clip %d ('%s') skipped: %s\n", c, x->l.clip[c].clip_id, why);
            if (x->n_reasons < N_REASONS) {
                x->reasons[x->n_reasons].clip = c;
                snprintf(x->reasons[x->n_reasons++].why, sizeof(x->reasons[0].why), "%.499s", why);
            }
        }
    }
}

// The backbone over the round's clips, and their features written: the
// features, then on disk, then the /done marks that say so (a crash or a full
// disk in between costs recomputation, never a clip marked done over features
// that are not there, features.h). 1, or 0 (agreed: the write failed).
static int forward_and_write(Extract *x, int n_ok, int n_bad) {
    const FeaturesSetup *su = &x->su;
    double t0 = wall_time();
    if (n_ok) backbone_forward(x->bb, x->pixels, n_ok, su->T_in, su->image_size, su->layers, su->n_layers, x->feat);
    double t1 = wall_time();
    x->t[X_FORWARD] += t1 - t0;
    if (x->clip && n_ok) {
        clip_model_embed_clips(x->clip, x->clip_pixels, n_ok, su->T_in, x->cpp.crop, x->clip_emb);
        const double t2 = wall_time();
        x->t[X_CLIP] += t2 - t1;
        t1 = t2;
    }
    for (int li = 0; li < su->n_layers; li++) float_to_half(x->feat[li], x->half[li], x->tok * (size_t)n_ok);
    const int io_ok = features_write_round(&x->o, x->ok_clips, n_ok, x->half, x->clip_emb, x->bad_clips, n_bad);
    x->t[X_WRITE] += wall_time() - t1;
    return io_ok;
}

// Every round on every rank, until the last, a failed write (0) or an agreed
// stop request (x->stopped). 1 when the writes went through.
static int run_rounds(Extract *x) {
    Stage *st = &x->st;
    stop_watch(x->opt.run_dir, st->rank == 0);
    Progress pr;
    progress_start(&pr, wall_time(), PROGRESS_EVERY, 0);
    for (int r = 0; r < x->rounds; r++) {
        int n_ok, n_bad;
        read_round(x, r, &n_ok, &n_bad);
        if (!forward_and_write(x, n_ok, n_bad)) return 0; // every rank: the verdicts were agreed
        int cnt[3] = {n_ok, n_bad, stop_requested()}; // the ranks agree on a stop request too
        comm_allreduce(st->world, cnt, 2, COMM_I32, COMM_SUM, NULL);
        comm_allreduce(st->world, cnt + 2, 1, COMM_I32, COMM_MAX, NULL);
        x->total_done += cnt[0];
        x->total_failed += cnt[1];
        const double now = wall_time();
        if (st->rank == 0 && progress_due(&pr, now, r == 0 || r == x->rounds - 1)) {
            const int processed = x->total_done + x->total_failed;
            char eta[32];
            progress_eta_text(&pr, processed, x->n_todo, now, eta, sizeof(eta));
            printf("extract: %d/%d clips (%d failed), %.2f clips/s, ETA %s\n", processed, x->n_todo, x->total_failed,
                   progress_rate(&pr, processed, now), eta);
            fflush(stdout);
        }
        if (cnt[2] && r < x->rounds - 1) {
            x->stopped = 1;
            if (st->rank == 0)
                printf("extract: stopped on request (signal or stop file) after %d clips; run again to continue\n",
                       x->total_done);
            return 1;
        }
    }
    return 1;
}

// Every clip is done or failed, but none succeeded or more than
// extract.max_failed_frac of them failed: the count and the first reasons
// (collective), and OUT.partial kept.
static void say_too_many_failed(const Extract *x, int n_failed, int n_done) {
    const Stage *st = &x->st;
    if (st->rank == 0) {
        char why[128] = "no clip succeeded";
        if (n_done) snprintf(why, sizeof(why), "more than extract.max_failed_frac = %g of them", x->opt.max_failed_frac);
        fprintf(stderr, "stsae: error: extract: %d of %d clips failed (%s); the first reasons:\n", n_failed, x->l.n,
                why);
    }
    print_reasons(st->world, x->reasons, &x->l, st->rank, st->size);
    if (st->rank == 0) {
        fprintf(stderr, "extract: %s is kept and its failed clips are tried again on the next run: fix the "
                        "inputs (or raise extract.max_failed_frac) and run the same command again\n", x->partial);
        fflush(stderr);
    }
}

// The last marks on disk; when every clip is done or failed, OUT.partial
// becomes OUT (durably), unless too many failed; the seconds per part over
// the ranks. The exit status: 0, 3 (stopped), or 1.
static int end_run(Extract *x, int io_ok) {
    Stage *st = &x->st;
    x->failed = xmalloc((size_t)x->l.n);
    if (io_ok) io_ok = features_write_end(&x->o, x->done, x->failed);
    else features_write_abandon(&x->o);
    int rc = x->stopped ? 3 : 0;
    if (!io_ok) {
        say_failed(&x->o, st->rank, 1);
        rc = 1;
    } else {
        int complete = 1, n_failed = 0, n_done = 0;
        for (int i = 0; i < x->l.n; i++)
            complete &= x->done[i] || x->failed[i], n_failed += x->failed[i] && !x->done[i], n_done += x->done[i];
        // extract.max_failed_frac: the share of clips that may fail (1: any, as long as one clip succeeded)
        if (complete && (n_done == 0 || n_failed > x->opt.max_failed_frac * x->l.n)) {
            say_too_many_failed(x, n_failed, n_done);
            rc = 1;
        } else if (complete) { // OUT.partial becomes OUT, durably
            if (!features_write_commit(st->world, x->partial, x->out_path, st->err, sizeof(st->err))) {
                fprintf(stderr, "stsae: error (rank %d): extract: %s\n", st->rank, st->err);
                rc = 1;
            } else if (st->rank == 0) {
                printf("extract: done -> %s", x->out_path);
                if (n_failed)
                    printf(" (%d clips could not be decoded: /failed; training and evaluation skip them)", n_failed);
                printf("\n");
            }
        }
        x->t[X_TOTAL] = wall_time() - x->t_start;
        comm_stage_table(st->world, XT_NAMES, x->t, N_XT);
    }
    if (st->rank == 0 && x->stopped) stop_consume(x->opt.run_dir);
    return rc;
}

// Frees what extract_main made, whichever step it stopped at.
static void extract_cleanup(Extract *x) {
    if (x->bb) backbone_close(x->bb);
    clip_model_close(x->clip);
    free(x->text), free(x->clip_pixels), free(x->clip_emb);
    if (x->pix_ds >= 0) H5Dclose(x->pix_ds);
    if (x->pix_file >= 0) H5Fclose(x->pix_file);
    for (int li = 0; x->feat && li < x->su.n_layers; li++) free(x->feat[li]), free(x->half[li]);
    free(x->feat), free(x->half), free(x->pixels), free(x->ok_clips), free(x->bad_clips);
    free(x->mine), free(x->todo), free(x->done), free(x->failed);
    free(x->out_path), free(x->out_dir), free(x->model_dir), free(x->pixels_file);
    inputs_free(&x->l);
    if (x->have_opt) extract_options_free(&x->opt);
    stage_finish(&x->st);
}

int extract_main(int argc, char **argv) {
    Extract *x = xcalloc(1, sizeof(Extract));
    x->pix_file = x->pix_ds = -1;
    x->t_start = wall_time();
    int rc = stage_start(&x->st, &EXTRACT_STAGE, argc, argv);
    if (rc) goto out;
    rc = 1;
    extract_options_resolve(x->st.deck, &x->opt);
    x->have_opt = 1;
    if ((x->device = stage_use_device(&x->st, x->opt.device)) < 0) goto out;
    if (read_clip_list(x)) goto out;
    open_backbone(x);
    if (open_clip(x)) goto out;
    if (make_out_dir(x)) goto out;
    if (access(x->out_path, F_OK) == 0) { // finished: nothing to do, if it was made by this setup
        rc = check_finished(x);
        goto out;
    }
    if (open_pixels_input(x)) goto out;
    if (open_partial(x)) goto out;
    plan_rounds(x);
    rc = end_run(x, run_rounds(x));
out:
    extract_cleanup(x);
    free(x);
    return rc;
}
