// check_video.c — `stsae check-video LIST OUT.h5 [options]` (tools/check.h): every
// clip of a CSV list decoded, sampled and preprocessed into the preprocessed
// pixels file of SPEC §4, so that decoding and preprocessing can be checked
// against independent references, and so that a user can prepare a pixels
// file once.
//
// In:  a CSV list (inputs.h); the frame count T_in and a preprocessing
//      (a preset, or crop size, short side and filter).
// Out: OUT.h5 with /pixels float32 [clips, T_in, 3, S, S] (one chunk per
//      clip), /labels int32, /split uint8 (a stratified 80/20 split where the
//      list gives none), /clip_ids, /label_names, /frame_index int32
//      [clips, T_in] (the decoded frame kept at each step), /n_frames int32,
//      and the clips that failed: /failed_paths, /failed_reasons (strings).
//      A failed clip is one line on stderr and is left out; the command
//      still succeeds. Exit 1 only for a bad list or an unwritable OUT.h5.
//      On stdout, the counts and the time spent decoding and preprocessing.
// Clips are decoded in parallel (OpenMP), written in list order.
// check_video_main reads as its steps: the options (parse_args), the list,
// /pixels (create_pixels), each batch decoded (decode_batch) and stored
// (store_batch), the other datasets (write_lists), the commit and the summary.
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/io/h5io.h"
#include "stsae/io/inputs.h"
#include "stsae/io/video.h"
#include "stsae/tools/check.h"
#include "stsae/vit/preprocess.h"

static void usage(void) {
    fprintf(stderr, "usage: stsae check-video LIST.csv OUT.h5 [--preset dinov2|videomae] [--size S] [--short S]\n"
                    "                         [--filter bicubic|bilinear] [--frames T] [--hold-mb M]\n"
                    "  defaults: --frames 16, --size 224, --short = --size, --filter bilinear (the pixels backbone)\n");
}

static void write_ints(hid_t f, const char *name, hid_t ftype, hid_t mtype, const void *v, int rank, const hsize_t *dims) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    h5_check(ds, f, "cannot create dataset '%s'", name);
    if (dims[0]) h5_check(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), ds, "cannot write dataset '%s'", name);
    H5Dclose(ds);
    H5Sclose(sp);
}

typedef struct {
    VideoClip clip;
    float *pix; // [T, 3, S, S]
    char err[1024];
    int ok;
    double t_decode, t_pre;
} Slot;

// The command line: frames, preprocessing, the decoder's memory bound.
typedef struct {
    Preprocess pp;
    int T;
    size_t hold;
} VideoArgs;

// Parses the options after LIST and OUT.h5: 0, or 2 (the usage or the bad
// values printed).
static int parse_args(int argc, char **argv, VideoArgs *o) {
    o->pp = preprocess_square(224);
    o->T = 16;
    o->hold = VIDEO_HOLD_BYTES;
    int size = -1, shrt = -1, filter = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (!strcmp(a, "--preset") && !strcmp(v, "dinov2")) o->pp = preprocess_dinov2();
        else if (!strcmp(a, "--preset") && !strcmp(v, "videomae")) o->pp = preprocess_videomae();
        else if (!strcmp(a, "--size")) size = atoi(v);
        else if (!strcmp(a, "--short")) shrt = atoi(v);
        else if (!strcmp(a, "--filter") && !strcmp(v, "bicubic")) filter = RESAMPLE_BICUBIC;
        else if (!strcmp(a, "--filter") && !strcmp(v, "bilinear")) filter = RESAMPLE_BILINEAR;
        else if (!strcmp(a, "--frames")) o->T = atoi(v);
        else if (!strcmp(a, "--hold-mb")) o->hold = (size_t)atol(v) << 20;
        else {
            usage();
            return 2;
        }
    }
    if (size > 0) o->pp.crop = size, o->pp.short_side = size;
    if (shrt > 0) o->pp.short_side = shrt;
    if (filter >= 0) o->pp.filter = (Resample)filter;
    if (o->T < 1 || o->pp.crop < 1 || o->pp.short_side < o->pp.crop) {
        fprintf(stderr, "stsae: check-video: need --frames >= 1 and 1 <= --size <= --short\n");
        return 2;
    }
    return 0;
}

// What OUT.h5 lists beside /pixels: per clip written (n_ok, list order) its
// label, split, id, frame count and frame indices; per failed clip its path
// and reason; and the counts and times for the summary.
typedef struct {
    int n_ok, n_fail;
    int32_t *labels, *n_frames, *index; // index [clips, T]
    uint8_t *split;
    char **ids, **fpath, **freason;      // ids and fpath point into the list; freason owned
    double t_decode, t_pre;
    long long frames_decoded;
} Written;

static void written_alloc(Written *w, int n, int T) {
    memset(w, 0, sizeof(*w));
    w->labels = xmalloc(sizeof(int32_t) * (size_t)n);
    w->n_frames = xmalloc(sizeof(int32_t) * (size_t)n);
    w->index = xmalloc(sizeof(int32_t) * (size_t)n * T);
    w->split = xmalloc((size_t)n);
    w->ids = xmalloc(sizeof(char *) * (size_t)n);
    w->fpath = xmalloc(sizeof(char *) * (size_t)n);
    w->freason = xmalloc(sizeof(char *) * (size_t)n);
}

static void written_free(Written *w) {
    for (int i = 0; i < w->n_fail; i++) free(w->freason[i]);
    free(w->labels), free(w->n_frames), free(w->index), free(w->split), free(w->ids), free(w->fpath),
        free(w->freason);
}

// The extendible dataset /pixels [0, T, 3, S, S], one chunk per clip (dies
// naming OUT.h5 when it cannot be made).
static hid_t create_pixels(hid_t f, const char *out_path, int T, int S) {
    hsize_t dims[5] = {0, (hsize_t)T, 3, (hsize_t)S, (hsize_t)S}, maxd[5] = {H5S_UNLIMITED, dims[1], 3, dims[3], dims[4]};
    hsize_t chunk[5] = {1, dims[1], 3, dims[3], dims[4]};
    hid_t sp = H5Screate_simple(5, dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    h5_check(H5Pset_chunk(dcpl, 5, chunk), f, "cannot set the chunks of dataset 'pixels'");
    hid_t pix = H5Dcreate2(f, "pixels", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (pix < 0) die("%s: cannot create dataset 'pixels'", out_path);
    H5Sclose(sp);
    H5Pclose(dcpl);
    return pix;
}

// Clips c0 .. c0+nb of the list decoded and preprocessed into the slots, in
// parallel.
static void decode_batch(Slot *slot, int nb, const ClipList *list, int c0, const VideoArgs *o) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < nb; b++) {
        Slot *s = &slot[b];
        double ta = wall_time();
        s->ok = video_read(list->clip[c0 + b].path, o->T, o->hold, &s->clip, s->err, sizeof(s->err)) == 0;
        double tb = wall_time();
        if (s->ok) preprocess_clip(&o->pp, s->clip.rgb, o->T, s->clip.width, s->clip.height, s->pix);
        s->t_decode = tb - ta;
        s->t_pre = wall_time() - tb;
    }
}

// The batch's slots in list order: a clip that decoded appended to /pixels
// and listed, a failed one named on stderr and kept with its reason.
static void store_batch(Written *w, Slot *slot, int nb, const ClipList *list, int c0, hid_t pix, int T, int S) {
    const hsize_t chunk[5] = {1, (hsize_t)T, 3, (hsize_t)S, (hsize_t)S};
    for (int b = 0; b < nb; b++) {
        Slot *s = &slot[b];
        const ClipEntry *ce = &list->clip[c0 + b];
        w->t_decode += s->t_decode;
        w->t_pre += s->t_pre;
        if (!s->ok) {
            fprintf(stderr, "stsae: check-video: skipped %s\n", s->err);
            w->fpath[w->n_fail] = ce->path;
            size_t n = strlen(s->err);
            w->freason[w->n_fail] = xmalloc(n + 1);
            memcpy(w->freason[w->n_fail++], s->err, n + 1);
            continue;
        }
        if (s->clip.n_skipped)
            fprintf(stderr, "stsae: check-video: %s: the decoder rejected %d packets or frames (skipped)\n",
                    ce->path, s->clip.n_skipped);
        w->frames_decoded += s->clip.n_frames;
        const int n_ok = w->n_ok;
        hsize_t start[5] = {(hsize_t)n_ok, 0, 0, 0, 0}, ext[5] = {(hsize_t)n_ok + 1, chunk[1], 3, chunk[3], chunk[4]};
        h5_check(H5Dset_extent(pix, ext), pix, "cannot extend dataset 'pixels' to %d clips", n_ok + 1);
        hid_t fs = H5Dget_space(pix), ms = H5Screate_simple(5, chunk, NULL);
        h5_check(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, chunk, NULL), pix,
                 "cannot select clip %d of dataset 'pixels'", n_ok);
        h5_check(H5Dwrite(pix, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, s->pix), pix,
                 "cannot write clip %d of dataset 'pixels'", n_ok);
        H5Sclose(ms);
        H5Sclose(fs);
        w->labels[n_ok] = ce->label;
        w->split[n_ok] = (uint8_t)ce->split;
        w->ids[n_ok] = ce->clip_id;
        w->n_frames[n_ok] = s->clip.n_frames;
        for (int t = 0; t < T; t++) w->index[(size_t)n_ok * T + t] = s->clip.index[t];
        w->n_ok++;
        video_clip_free(&s->clip);
    }
}

// Everything beside /pixels: the per-clip lists, the failed clips, the
// root attributes.
static void write_lists(hid_t f, const Written *w, const ClipList *list, const VideoArgs *o) {
    const int T = o->T;
    hsize_t n1 = (hsize_t)w->n_ok, nt[2] = {(hsize_t)w->n_ok, (hsize_t)T};
    write_ints(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, w->labels, 1, &n1);
    write_ints(f, "split", H5T_STD_U8LE, H5T_NATIVE_UINT8, w->split, 1, &n1);
    write_ints(f, "n_frames", H5T_STD_I32LE, H5T_NATIVE_INT32, w->n_frames, 1, &n1);
    write_ints(f, "frame_index", H5T_STD_I32LE, H5T_NATIVE_INT32, w->index, 2, nt);
    h5_write_strings(f, "clip_ids", w->ids, n1);
    h5_write_strings(f, "label_names", list->label_names, (size_t)list->n_labels);
    h5_write_strings(f, "failed_paths", w->fpath, (size_t)w->n_fail);
    h5_write_strings(f, "failed_reasons", w->freason, (size_t)w->n_fail);
    h5_set_attr_f64(f, "T_in", T);
    h5_set_attr_f64(f, "size", o->pp.crop);
    h5_set_attr_f64(f, "short_side", o->pp.short_side);
    h5_set_attr_str(f, "filter", o->pp.filter == RESAMPLE_BICUBIC ? "bicubic" : "bilinear");
    h5_set_attr_str(f, "frame_sampling", "floor((i + 0.5) * n_frames / T_in)");
    h5_set_attr_str(f, "stsae_version", STSAE_VERSION);
}

int check_video_main(int argc, char **argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *list_path = argv[0], *out_path = argv[1];
    VideoArgs o;
    const int bad = parse_args(argc, argv, &o);
    if (bad) return bad;

    char err[2048];
    ClipList list;
    if (inputs_read_csv(list_path, &list, err, sizeof(err)) != 0) {
        fprintf(stderr, "stsae: error: %s\n", err);
        return 1;
    }
    inputs_default_split(&list, 0.2, 0);

    const int T = o.T, S = o.pp.crop;
    hid_t f = h5_create_tmp(out_path);
    hid_t pix = create_pixels(f, out_path, T, S);
    const int batch = 2 * max_threads();
    Slot *slot = xcalloc((size_t)batch, sizeof(Slot));
    for (int b = 0; b < batch; b++) slot[b].pix = xmalloc(sizeof(float) * (size_t)T * 3 * S * S);
    Written w;
    written_alloc(&w, list.n, T);
    const double t0 = wall_time();
    for (int c0 = 0; c0 < list.n; c0 += batch) {
        const int nb = list.n - c0 < batch ? list.n - c0 : batch;
        decode_batch(slot, nb, &list, c0, &o);
        store_batch(&w, slot, nb, &list, c0, pix, T, S);
    }
    H5Dclose(pix);
    write_lists(f, &w, &list, &o);
    h5_commit(f, out_path);
    double wall = wall_time() - t0;
    printf("check-video: %d clips written, %d failed; %lld frames decoded; %.2f s wall (%d threads); "
           "per clip: decode %.2f ms, preprocess %.2f ms\n",
           w.n_ok, w.n_fail, w.frames_decoded, wall, max_threads(), list.n ? 1e3 * w.t_decode / list.n : 0.0,
           list.n ? 1e3 * w.t_pre / list.n : 0.0);
    written_free(&w);
    for (int b = 0; b < batch; b++) free(slot[b].pix);
    free(slot);
    inputs_free(&list);
    return 0;
}
