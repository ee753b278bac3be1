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

int check_video_main(int argc, char **argv) {
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *list_path = argv[0], *out_path = argv[1];
    Preprocess pp = preprocess_square(224);
    int T = 16, size = -1, shrt = -1, filter = -1;
    size_t hold = VIDEO_HOLD_BYTES;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (!strcmp(a, "--preset") && !strcmp(v, "dinov2")) pp = preprocess_dinov2();
        else if (!strcmp(a, "--preset") && !strcmp(v, "videomae")) pp = preprocess_videomae();
        else if (!strcmp(a, "--size")) size = atoi(v);
        else if (!strcmp(a, "--short")) shrt = atoi(v);
        else if (!strcmp(a, "--filter") && !strcmp(v, "bicubic")) filter = RESAMPLE_BICUBIC;
        else if (!strcmp(a, "--filter") && !strcmp(v, "bilinear")) filter = RESAMPLE_BILINEAR;
        else if (!strcmp(a, "--frames")) T = atoi(v);
        else if (!strcmp(a, "--hold-mb")) hold = (size_t)atol(v) << 20;
        else {
            usage();
            return 2;
        }
    }
    if (size > 0) pp.crop = size, pp.short_side = size;
    if (shrt > 0) pp.short_side = shrt;
    if (filter >= 0) pp.filter = (Resample)filter;
    if (T < 1 || pp.crop < 1 || pp.short_side < pp.crop) {
        fprintf(stderr, "stsae: check-video: need --frames >= 1 and 1 <= --size <= --short\n");
        return 2;
    }

    char err[2048];
    ClipList list;
    if (inputs_read_csv(list_path, &list, err, sizeof(err)) != 0) {
        fprintf(stderr, "stsae: error: %s\n", err);
        return 1;
    }
    inputs_default_split(&list, 0.2, 0);

    const int S = pp.crop;
    const hsize_t per_clip = (hsize_t)T * 3 * S * S;
    hid_t f = h5_create_tmp(out_path);
    hsize_t dims[5] = {0, (hsize_t)T, 3, (hsize_t)S, (hsize_t)S}, maxd[5] = {H5S_UNLIMITED, dims[1], 3, dims[3], dims[4]};
    hsize_t chunk[5] = {1, dims[1], 3, dims[3], dims[4]};
    hid_t sp = H5Screate_simple(5, dims, maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    h5_check(H5Pset_chunk(dcpl, 5, chunk), f, "cannot set the chunks of dataset 'pixels'");
    hid_t pix = H5Dcreate2(f, "pixels", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (pix < 0) die("%s: cannot create dataset 'pixels'", out_path);
    H5Sclose(sp);
    H5Pclose(dcpl);

    const int batch = 2 * max_threads();
    Slot *slot = xcalloc((size_t)batch, sizeof(Slot));
    for (int b = 0; b < batch; b++) slot[b].pix = xmalloc(sizeof(float) * per_clip);
    int n_ok = 0, n_fail = 0;
    int32_t *labels = xmalloc(sizeof(int32_t) * (size_t)list.n), *n_frames = xmalloc(sizeof(int32_t) * (size_t)list.n);
    int32_t *index = xmalloc(sizeof(int32_t) * (size_t)list.n * T);
    uint8_t *split = xmalloc((size_t)list.n);
    char **ids = xmalloc(sizeof(char *) * (size_t)list.n), **fpath = xmalloc(sizeof(char *) * (size_t)list.n),
         **freason = xmalloc(sizeof(char *) * (size_t)list.n);
    double t_decode = 0, t_pre = 0, t0 = wall_time();
    long long frames_decoded = 0;
    for (int c0 = 0; c0 < list.n; c0 += batch) {
        int nb = list.n - c0 < batch ? list.n - c0 : batch;
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < nb; b++) {
            Slot *s = &slot[b];
            double ta = wall_time();
            s->ok = video_read(list.clip[c0 + b].path, T, hold, &s->clip, s->err, sizeof(s->err)) == 0;
            double tb = wall_time();
            if (s->ok) preprocess_clip(&pp, s->clip.rgb, T, s->clip.width, s->clip.height, s->pix);
            s->t_decode = tb - ta;
            s->t_pre = wall_time() - tb;
        }
        for (int b = 0; b < nb; b++) {
            Slot *s = &slot[b];
            const ClipEntry *ce = &list.clip[c0 + b];
            t_decode += s->t_decode;
            t_pre += s->t_pre;
            if (!s->ok) {
                fprintf(stderr, "stsae: check-video: skipped %s\n", s->err);
                fpath[n_fail] = ce->path;
                size_t n = strlen(s->err);
                freason[n_fail] = xmalloc(n + 1);
                memcpy(freason[n_fail++], s->err, n + 1);
                continue;
            }
            if (s->clip.n_skipped)
                fprintf(stderr, "stsae: check-video: %s: the decoder rejected %d packets or frames (skipped)\n",
                        ce->path, s->clip.n_skipped);
            frames_decoded += s->clip.n_frames;
            hsize_t start[5] = {(hsize_t)n_ok, 0, 0, 0, 0}, ext[5] = {(hsize_t)n_ok + 1, dims[1], 3, dims[3], dims[4]};
            h5_check(H5Dset_extent(pix, ext), pix, "cannot extend dataset 'pixels' to %d clips", n_ok + 1);
            hid_t fs = H5Dget_space(pix), ms = H5Screate_simple(5, chunk, NULL);
            h5_check(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, chunk, NULL), pix,
                     "cannot select clip %d of dataset 'pixels'", n_ok);
            h5_check(H5Dwrite(pix, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, s->pix), pix,
                     "cannot write clip %d of dataset 'pixels'", n_ok);
            H5Sclose(ms);
            H5Sclose(fs);
            labels[n_ok] = ce->label;
            split[n_ok] = (uint8_t)ce->split;
            ids[n_ok] = ce->clip_id;
            n_frames[n_ok] = s->clip.n_frames;
            for (int t = 0; t < T; t++) index[(size_t)n_ok * T + t] = s->clip.index[t];
            n_ok++;
            video_clip_free(&s->clip);
        }
    }
    H5Dclose(pix);
    hsize_t n1 = (hsize_t)n_ok, nt[2] = {(hsize_t)n_ok, (hsize_t)T};
    write_ints(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, labels, 1, &n1);
    write_ints(f, "split", H5T_STD_U8LE, H5T_NATIVE_UINT8, split, 1, &n1);
    write_ints(f, "n_frames", H5T_STD_I32LE, H5T_NATIVE_INT32, n_frames, 1, &n1);
    write_ints(f, "frame_index", H5T_STD_I32LE, H5T_NATIVE_INT32, index, 2, nt);
    h5_write_strings(f, "clip_ids", ids, n1);
    h5_write_strings(f, "label_names", list.label_names, (size_t)list.n_labels);
    h5_write_strings(f, "failed_paths", fpath, (size_t)n_fail);
    h5_write_strings(f, "failed_reasons", freason, (size_t)n_fail);
    h5_set_attr_f64(f, "T_in", T);
    h5_set_attr_f64(f, "size", S);
    h5_set_attr_f64(f, "short_side", pp.short_side);
    h5_set_attr_str(f, "filter", pp.filter == RESAMPLE_BICUBIC ? "bicubic" : "bilinear");
    h5_set_attr_str(f, "frame_sampling", "floor((i + 0.5) * n_frames / T_in)");
    h5_set_attr_str(f, "stsae_version", STSAE_VERSION);
    h5_commit(f, out_path);
    double wall = wall_time() - t0;
    printf("check-video: %d clips written, %d failed; %lld frames decoded; %.2f s wall (%d threads); "
           "per clip: decode %.2f ms, preprocess %.2f ms\n",
           n_ok, n_fail, frames_decoded, wall, max_threads(), list.n ? 1e3 * t_decode / list.n : 0.0,
           list.n ? 1e3 * t_pre / list.n : 0.0);
    for (int i = 0; i < n_fail; i++) free(freason[i]);
    for (int b = 0; b < batch; b++) free(slot[b].pix);
    free(slot);
    free(labels);
    free(n_frames);
    free(index);
    free(split);
    free(ids);
    free(fpath);
    free(freason);
    inputs_free(&list);
    return 0;
}
