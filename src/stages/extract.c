// extract.c — `stsae extract DECK [key=value ...]` (SPEC §3, §4): video clips
// in, one parallel HDF5 feature file out, on any number of ranks.
//
// In:  the deck's extract section: the clip list (CSV, SSv2, K400, or an HDF5
//      of preprocessed /pixels), the backbone ("pixels" or a Hugging Face
//      model directory), the layers, T_in, and optional embeddings to import.
// Out: RUN_DIR/<extract.out>, SPEC §3's layout: /features/layer_LL float16
//      [clips, T, N, d] (one clip per chunk), /labels, /split, /clip_ids,
//      /label_names, /done, /failed, the imported /text_embeddings and
//      /clip_embeddings, and root attributes (format_version, backbone,
//      weights digest, layers, T, H, W, N, d, T_in, image size, frame
//      sampling, final_norm, pos_interp, stsae version). The file itself is
//      written by its owner, the feature file's writer (features.h,
//      src/io/features_write.c); this file decides what goes into it.
//
// The file is built as OUT.partial, created and extended collectively by all
// ranks (MPI-IO); when every clip is done or failed it is renamed to OUT.
// Clips still to do are dealt round-robin to the ranks; in rounds of
// extract.batch_clips clips per rank, each rank decodes (FFmpeg), samples T_in
// frames, preprocesses as the model's Hugging Face processor, runs the
// backbone, and all ranks then write their clips collectively: the features,
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
// write) over the ranks.
//
// Write failures (a full disk): every HDF5 call on the file is checked, and
// the ranks agree on each collective call's outcome before the next one
// (features.h, comm_agree_msg), so a failure seen by one rank stops every
// rank, each printing the file, the dataset and the reason, with exit status
// 1, and no rank waits in a collective call the others left. What was marked
// done is on disk; the same command, with room, goes on from there. Open
// MPI's OMPIO loses such failures, so ROMIO is chosen for the file
// (comm_world_init, comm.h).
#define _POSIX_C_SOURCE 200809L // access, strdup
#include <hdf5.h>
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
#include "stsae/io/backbone.h"
#include "stsae/io/features.h"
#include "stsae/io/h5io.h"
#include "stsae/io/inputs.h"
#include "stsae/io/video.h"
#include "stsae/stages/extract.h"
#include "stsae/vit/preprocess.h"

enum { X_DECODE, X_PREPROCESS, X_FORWARD, X_WRITE, X_TOTAL, N_XT };
static const char *const XT_NAMES[N_XT] = {"decode", "preprocess", "forward", "write", "total"};

int extract_clip_list(const Deck *d, const char *run_dir, ClipList *l, char **pixels, char *err, size_t cap) {
    memset(l, 0, sizeof(*l));
    *pixels = NULL;
    if (deck_has(d, "extract.input.csv")) {
        char *p = path_join(run_dir, deck_str(d, "extract.input.csv"));
        int rc = inputs_read_csv(p, l, err, cap);
        free(p);
        return rc;
    }
    if (deck_has(d, "extract.input.ssv2")) {
        char *v = path_join(run_dir, deck_str(d, "extract.input.ssv2.videos"));
        char *a = path_join(run_dir, deck_str(d, "extract.input.ssv2.annotations"));
        char *b = path_join(run_dir, deck_str(d, "extract.input.ssv2.labels"));
        int rc = inputs_read_ssv2(v, a, b, l, err, cap);
        free(v), free(a), free(b);
        return rc;
    }
    if (deck_has(d, "extract.input.k400")) {
        char *v = path_join(run_dir, deck_str(d, "extract.input.k400.videos"));
        char *c = path_join(run_dir, deck_str(d, "extract.input.k400.csv"));
        int rc = inputs_read_k400(v, c, l, err, cap);
        free(v), free(c);
        return rc;
    }
    // preprocessed pixels: /pixels [clips, T_in, 3, S, S], /labels, optional /split
    *pixels = path_join(run_dir, deck_str(d, "extract.input.pixels"));
    hid_t f = -1;
    H5E_BEGIN_TRY { f = H5Fopen(*pixels, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f < 0) return snprintf(err, cap, "%s: cannot open as HDF5", *pixels), -1;
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
        return snprintf(err, cap, "%s: /pixels must be float32 [clips, T_in, 3, S, S]", *pixels), -1;
    }
    if (dims[0] < 1 || dims[0] > INPUTS_MAX_ROWS) {
        H5Fclose(f);
        return snprintf(err, cap, "%s: /pixels holds %llu clips (1 .. %d)", *pixels, (unsigned long long)dims[0],
                        INPUTS_MAX_ROWS), -1;
    }
    hsize_t dl[1], dsp[1] = {0};
    float *lab = h5_read_f32(f, *pixels, "/labels", 1, dl);
    uint8_t *sp = h5_exists(f, "/split") ? h5_read_u8(f, *pixels, "/split", 1, dsp) : NULL;
    H5Fclose(f);
    int bad = dl[0] != dims[0] || (sp && dsp[0] != dims[0]);
    if (bad)
        snprintf(err, cap, "%s: /labels has %llu entries%s%llu, /pixels %llu clips: one each per clip", *pixels,
                 (unsigned long long)dl[0], sp ? ", /split " : "", sp ? (unsigned long long)dsp[0] : 0ull,
                 (unsigned long long)dims[0]);
    else
        bad = inputs_check_label_values(*pixels, "/labels", lab, (size_t)dl[0], err, cap) != 0;
    for (hsize_t i = 0; !bad && sp && i < dims[0]; i++)
        if (sp[i] > 1)
            bad = 1, snprintf(err, cap, "%s: /split[%llu] = %u: 0 (train) or 1 (test)", *pixels, (unsigned long long)i,
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
        l->clip[i].path = strdup(*pixels);
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

// One clip's preprocessed pixels [T_in, 3, S, S]: decoded and preprocessed,
// or (pixels_ds >= 0) read from the pixels file's /pixels, whose shape
// extract_main has checked. 0, or -1 with err (a clip to skip).
static int clip_pixels(const ClipEntry *c, hid_t pixels_ds, int index, int T_in, const Preprocess *pp, float *out,
                       double *t, char *err, size_t cap) {
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

int extract_main(int argc, char **argv) {
    Comm *w = comm_world();
    const int me = comm_rank(w), size = comm_size(w);
    if (argc < 1) {
        if (me == 0) fprintf(stderr, "usage: stsae extract DECK [key=value ...]\n");
        return 2;
    }
    double t[N_XT] = {0};
    const double t_start = wall_time();
    char err[8192] = "";
    Deck *d = deck_load(argv[0], stsae_schema, argc - 1, argv + 1, err, sizeof(err));
    if (d && !deck_has(d, "extract")) snprintf(err, sizeof(err), "%s: the deck has no extract section", argv[0]);
    if (!comm_agree(w, d && deck_has(d, "extract"), err)) {
        return 1;
    }
    const char *run_dir = deck_str(d, "run_dir");
    ClipList l;
    char *pixels_file = NULL;
    int ok = extract_clip_list(d, run_dir, &l, &pixels_file, err, sizeof(err)) == 0;
    if (ok && l.n < 1) snprintf(err, sizeof(err), "%s: the clip list is empty", argv[0]), ok = 0;
    if (!comm_agree(w, ok, err)) {
        return 1;
    }
    inputs_default_split(&l, deck_num(d, "extract.test_frac"), (uint64_t)deck_int(d, "extract.split_seed"));

    // the backbone and its input
    FeaturesSetup su;
    memset(&su, 0, sizeof(su));
    BackboneOptions bo = {deck_bool(d, "extract.final_norm"), POS_INTERP_HF, (int)deck_int(d, "extract.patch")};
    su.pos_interp = deck_str(d, "extract.pos_interp");
    backbone_pos_interp(su.pos_interp, &bo.pos_interp);
    const char *spec = deck_str(d, "extract.backbone");
    char *model_dir = strcmp(spec, "pixels") ? path_join(run_dir, spec) : strdup("pixels");
    Backbone *bb = backbone_open(model_dir, &bo);
    su.backbone = backbone_name(bb);
    su.digest = backbone_digest(bb);
    su.final_norm = bo.final_norm;
    su.T_in = (int)deck_int(d, "extract.frames");
    Preprocess pp = !strcmp(su.backbone, "dinov2")     ? preprocess_dinov2()
                    : !strcmp(su.backbone, "videomae") ? preprocess_videomae()
                                                       : preprocess_square((int)deck_int(d, "extract.image_size"));
    su.image_size = pp.crop;
    su.n_layers = deck_len(d, "extract.layers");
    int *layers = xmalloc(sizeof(int) * (size_t)su.n_layers);
    for (int i = 0; i < su.n_layers; i++) {
        char key[64];
        snprintf(key, sizeof(key), "extract.layers[%d]", i);
        layers[i] = (int)deck_int(d, key);
    }
    su.layers = layers;
    char where[600];
    deck_where(d, "extract.layers", where, sizeof(where));
    strncat(where, ": extract.layers", sizeof(where) - strlen(where) - 1);
    backbone_check_layers(bb, su.layers, su.n_layers, where);
    const BackboneShape sh = backbone_shape(bb, su.T_in, su.image_size);
    su.T = sh.T, su.H = sh.H, su.W = sh.W, su.N = sh.N, su.d = sh.d;

    // the file: OUT exists -> done; OUT.partial -> resume; else create
    char *out_path = path_join(run_dir, deck_str(d, "extract.out"));
    char partial[4200];
    snprintf(partial, sizeof(partial), "%s.partial", out_path);
    char *out_dir = path_dir(out_path);
    ok = me != 0 || path_mkdirs(out_dir, err, sizeof(err)) == 0;
    if (!comm_agree(w, ok, err)) {
        backbone_close(bb);
        return 1;
    }
    if (access(out_path, F_OK) == 0) { // finished: nothing to do, if it was made by this setup
        ok = features_write_check(w, out_path, &su, l.n, err, sizeof(err)) == 0;
        if (!comm_agree(w, ok, err)) {
            backbone_close(bb);
            return 1;
        }
        if (me == 0) printf("extract: %s exists, made by this setup: nothing to do\n", out_path);
        backbone_close(bb);
        return 0;
    }
    // a preprocessed-pixels input must hold T_in frames of the backbone's size
    hid_t pix_file = -1, pix_ds = -1;
    if (pixels_file) {
        pix_file = h5_open_read(pixels_file);
        pix_ds = H5Dopen2(pix_file, "/pixels", H5P_DEFAULT);
        hid_t sp = H5Dget_space(pix_ds);
        hsize_t dims[5];
        H5Sget_simple_extent_dims(sp, dims, NULL);
        H5Sclose(sp);
        snprintf(err, sizeof(err), "%s: /pixels holds %llu frames of %llu px; the deck asks T_in = %d at %d px",
                 pixels_file, (unsigned long long)dims[1], (unsigned long long)dims[3], su.T_in, su.image_size);
        if (!comm_agree(w, (int)dims[1] == su.T_in && (int)dims[3] == su.image_size, err)) {
            backbone_close(bb);
            return 1;
        }
    }
    FeatureWriter o;
    const int resume = access(partial, F_OK) == 0;
    if (resume) {
        ok = features_write_reopen(&o, w, partial, &su, l.n, err, sizeof(err)) == 0;
        if (!comm_agree(w, ok, err)) {
                return 1;
        }
    } else {
        char *emb[2] = {NULL, NULL}; // the embeddings to import: text, clip
        if (deck_has(d, "extract.text_embeddings")) emb[0] = path_join(run_dir, deck_str(d, "extract.text_embeddings"));
        if (deck_has(d, "extract.clip_embeddings")) emb[1] = path_join(run_dir, deck_str(d, "extract.clip_embeddings"));
        ok = features_write_create(&o, w, partial, &su, &l, emb[0], emb[1]);
        free(emb[0]), free(emb[1]);
        if (!ok) { // closed and removed: it held no clip
            say_failed(&o, me, 0);
            backbone_close(bb);
            return 1;
        }
    }
    uint8_t *done = xmalloc((size_t)l.n);
    if (!features_write_begin(&o, done)) {
        features_write_abandon(&o);
        say_failed(&o, me, 1);
        backbone_close(bb);
        return 1;
    }
    int *todo = xmalloc(sizeof(int) * (size_t)l.n), n_todo = 0;
    for (int i = 0; i < l.n; i++)
        if (!done[i]) todo[n_todo++] = i;
    if (me == 0) {
        if (!strcmp(deck_str(d, "device"), "cuda"))
            printf("extract: note: device cuda: the backbones run on the CPU in this build (the CUDA backbone ops "
                   "are issue 7)\n");
        printf("extract: %d clips (%d to do%s), backbone %s, layers", l.n, n_todo, resume ? ", resuming" : "",
               su.backbone);
        for (int i = 0; i < su.n_layers; i++) printf(" %d", su.layers[i]);
        printf(", T_in %d at %d px -> T=%d H=%d W=%d d=%d; %d rank%s -> %s\n", su.T_in, su.image_size, su.T, su.H,
               su.W, su.d, size, size > 1 ? "s" : "", out_path);
        fflush(stdout);
    }
    // my clips: todo[i] with i = me (mod size), in increasing file order
    const int B = (int)deck_int(d, "extract.batch_clips");
    int n_mine = 0;
    int *mine = xmalloc(sizeof(int) * (size_t)(n_todo / size + 1));
    for (int i = me; i < n_todo; i += size) mine[n_mine++] = todo[i];
    int rounds = (n_mine + B - 1) / B;
    comm_allreduce(w, &rounds, 1, COMM_I32, COMM_MAX, NULL);
    const size_t pix = (size_t)su.T_in * 3 * su.image_size * su.image_size, tok = (size_t)su.T * su.N * su.d;
    float *pixels = xmalloc(sizeof(float) * pix * (size_t)B);
    float **feat = xmalloc(sizeof(float *) * (size_t)su.n_layers);
    uint16_t **half = xmalloc(sizeof(uint16_t *) * (size_t)su.n_layers);
    for (int li = 0; li < su.n_layers; li++) {
        feat[li] = xmalloc(sizeof(float) * tok * (size_t)B);
        half[li] = xmalloc(sizeof(uint16_t) * tok * (size_t)B);
    }
    int *ok_clips = xmalloc(sizeof(int) * (size_t)B), *bad_clips = xmalloc(sizeof(int) * (size_t)B);
    Reason reasons[N_REASONS];
    for (int k = 0; k < N_REASONS; k++) reasons[k].clip = -1, reasons[k].why[0] = 0;
    int total_done = 0, total_failed = 0, stopped = 0, n_reasons = 0, io_ok = 1;
    stop_watch(run_dir, me == 0);
    const double t_loop = wall_time();
    double t_print = 0.0;
    for (int r = 0; r < rounds; r++) {
        int n_ok = 0, n_bad = 0;
        for (int q = r * B; q < n_mine && q < (r + 1) * B; q++) {
            const int c = mine[q];
            char why[1024];
            if (clip_pixels(&l.clip[c], pix_ds, c, su.T_in, &pp, pixels + pix * (size_t)n_ok, t, why,
                            sizeof(why)) == 0) {
                ok_clips[n_ok++] = c;
            } else {
                bad_clips[n_bad++] = c;
                fprintf(stderr, "extract: clip %d ('%s') skipped: %s\n", c, l.clip[c].clip_id, why);
                if (n_reasons < N_REASONS) {
                    reasons[n_reasons].clip = c;
                    snprintf(reasons[n_reasons++].why, sizeof(reasons[0].why), "%.499s", why);
                }
            }
        }
        double t0 = wall_time();
        if (n_ok) backbone_forward(bb, pixels, n_ok, su.T_in, su.image_size, layers, su.n_layers, feat);
        double t1 = wall_time();
        t[X_FORWARD] += t1 - t0;
        for (int li = 0; li < su.n_layers; li++) float_to_half(feat[li], half[li], tok * (size_t)n_ok);
        // the features, then on disk, then the /done marks that say so: a
        // crash or a full disk in between costs recomputation, never a clip
        // marked done over features that are not there (features.h)
        io_ok = features_write_round(&o, ok_clips, n_ok, half, bad_clips, n_bad);
        t[X_WRITE] += wall_time() - t1;
        if (!io_ok) break; // every rank: the verdicts were agreed
        int cnt[3] = {n_ok, n_bad, stop_requested()}; // the ranks agree on a stop request too
        comm_allreduce(w, cnt, 2, COMM_I32, COMM_SUM, NULL);
        comm_allreduce(w, cnt + 2, 1, COMM_I32, COMM_MAX, NULL);
        total_done += cnt[0];
        total_failed += cnt[1];
        const double now = wall_time();
        if (me == 0 && (now - t_print >= 5.0 || r == rounds - 1)) {
            const double rate = (total_done + total_failed) / (now - t_loop);
            const double eta = (n_todo - total_done - total_failed) / (rate > 0 ? rate : 1e-9);
            printf("extract: %d/%d clips (%d failed), %.2f clips/s, ETA %.0f s\n", total_done + total_failed, n_todo,
                   total_failed, rate, eta);
            fflush(stdout);
            t_print = now;
        }
        if (cnt[2] && r < rounds - 1) {
            stopped = 1;
            if (me == 0) printf("extract: stopped on request (signal or stop file) after %d clips; run again to continue\n",
                               total_done);
            break;
        }
    }
    // the last marks on disk; complete when every clip is done or failed
    uint8_t *failed = xmalloc((size_t)l.n);
    if (io_ok) io_ok = features_write_end(&o, done, failed);
    else features_write_abandon(&o);
    int rc = stopped ? 3 : 0;
    if (!io_ok) {
        say_failed(&o, me, 1);
        rc = 1;
    } else {
        int complete = 1, n_failed = 0, n_done = 0;
        for (int i = 0; i < l.n; i++)
            complete &= done[i] || failed[i], n_failed += failed[i] && !done[i], n_done += done[i];
        // extract.max_failed_frac: the share of clips that may fail (1: any, as long as one clip succeeded)
        const double max_frac = deck_num(d, "extract.max_failed_frac");
        if (complete && (n_done == 0 || n_failed > max_frac * l.n)) {
            if (me == 0) {
                char why[128] = "no clip succeeded";
                if (n_done) snprintf(why, sizeof(why), "more than extract.max_failed_frac = %g of them", max_frac);
                fprintf(stderr, "stsae: error: extract: %d of %d clips failed (%s); the first reasons:\n", n_failed, l.n,
                        why);
            }
            print_reasons(w, reasons, &l, me, size);
            if (me == 0) {
                fprintf(stderr, "extract: %s is kept and its failed clips are tried again on the next run: fix the "
                                "inputs (or raise extract.max_failed_frac) and run the same command again\n", partial);
                fflush(stderr);
            }
            rc = 1;
        } else if (complete) { // OUT.partial becomes OUT, durably
            if (!features_write_commit(w, partial, out_path, err, sizeof(err))) {
                fprintf(stderr, "stsae: error (rank %d): extract: %s\n", me, err);
                rc = 1;
            } else if (me == 0) {
                printf("extract: done -> %s", out_path);
                if (n_failed)
                    printf(" (%d clips could not be decoded: /failed; training and evaluation skip them)", n_failed);
                printf("\n");
            }
        }
        t[X_TOTAL] = wall_time() - t_start;
        comm_stage_table(w, XT_NAMES, t, N_XT);
    }
    if (me == 0 && stopped) stop_consume(run_dir);
    backbone_close(bb);
    if (pix_file >= 0) H5Dclose(pix_ds), H5Fclose(pix_file);
    for (int li = 0; li < su.n_layers; li++) free(feat[li]), free(half[li]);
    free(feat), free(half), free(pixels), free(ok_clips), free(bad_clips), free(mine), free(todo), free(done), free(failed);
    free(layers), free(out_path), free(out_dir), free(model_dir), free(pixels_file);
    inputs_free(&l);
    deck_free(d);
    return rc;
}
