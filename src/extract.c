// extract.c — `stsae extract DECK [key=value ...]` (SPEC §3, §4): video clips
// in, one parallel HDF5 feature file out, on any number of ranks.
//
// In:  the deck's extract section: the clip list (CSV, SSv2, K400, or an HDF5
//      of preprocessed /pixels), the backbone ("pixels" or a Hugging Face
//      model directory), the layers, T_in, and optional embeddings to import.
// Out: RUN_DIR/<extract.out>, SPEC §3's layout: /features/layer_LL float16
//      [clips, T, N, d] (one clip per chunk), /labels, /split, /clip_ids,
//      /label_names, /done, /failed, the imported /text_embeddings and
//      /clip_embeddings, and root attributes (backbone, weights digest,
//      layers, T, H, W, N, d, T_in, image size, frame sampling, final_norm,
//      pos_interp, stsae version).
//
// The file is built as OUT.partial, created and extended collectively by all
// ranks (MPI-IO); when every clip is done or failed it is renamed to OUT.
// Clips still to do are dealt round-robin to the ranks; in rounds of
// extract.batch_clips clips per rank, each rank decodes (FFmpeg), samples T_in
// frames, preprocesses as the model's Hugging Face processor, runs the
// backbone, and all ranks then write their clips collectively, features first
// and /done after (flushed each round). A killed run started again reopens
// OUT.partial, checks it was made by the same setup, and computes only the
// clips not done; every clip's features depend on that clip alone, so the
// final file has the same contents as an uninterrupted run, on any number of
// ranks. A clip that cannot be decoded is named, marked in /failed, and
// skipped (a later run tries it again). A stop request (stop.h): the
// round under way is written, then every rank exits with status 3 (run again
// to continue). Rank 0 prints progress and, at the end, seconds per stage
// (decode, preprocess, forward, write) over the ranks.
#define _POSIX_C_SOURCE 200809L // access, strdup
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/backbone.h"
#include "stsae/comm.h"
#include "stsae/common.h"
#include "stsae/deck.h"
#include "stsae/deck_schema.h"
#include "stsae/extract.h"
#include "stsae/features.h"
#include "stsae/h5io.h"
#include "stsae/inputs.h"
#include "stsae/paths.h"
#include "stsae/preprocess.h"
#include "stsae/stop.h"
#include "stsae/video.h"

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
    hsize_t dl[1];
    float *lab = h5_read_f32(f, *pixels, "/labels", 1, dl);
    uint8_t *sp = h5_exists(f, "/split") ? h5_read_u8(f, *pixels, "/split", 1, dl) : NULL;
    H5Fclose(f);
    if (dl[0] != dims[0]) return snprintf(err, cap, "%s: /labels has %llu entries, /pixels %llu clips", *pixels,
                                          (unsigned long long)dl[0], (unsigned long long)dims[0]), -1;
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

// --- the parallel feature file ----------------------------------------------------

typedef struct {
    hid_t file, dxpl;
    hid_t *feat; // one per layer
    hid_t done, failed;
    int n_layers;
} Out;

static hid_t fixed_strings(char **s, int n, size_t *size, char **buf) {
    size_t mx = 1;
    for (int i = 0; i < n; i++)
        if (strlen(s[i]) + 1 > mx) mx = strlen(s[i]) + 1;
    *buf = xcalloc((size_t)n * mx + 1, 1);
    for (int i = 0; i < n; i++) memcpy(*buf + (size_t)i * mx, s[i], strlen(s[i]));
    *size = mx;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, mx);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

// A 1-D or 2-D dataset written whole by rank 0 (a collective call with an
// empty selection elsewhere).
static void write_small(Out *o, const char *name, hid_t ftype, hid_t mtype, int rank_n, const hsize_t *dims,
                        const void *buf, int me) {
    hid_t sp = H5Screate_simple(rank_n, dims, NULL);
    hid_t ds = H5Dcreate2(o->file, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0) die("cannot create %s in the feature file", name);
    hid_t fs = H5Scopy(sp), ms = H5Scopy(sp);
    if (me != 0) H5Sselect_none(fs), H5Sselect_none(ms);
    h5Check(H5Dwrite(ds, mtype, ms, fs, o->dxpl, buf));
    H5Sclose(fs), H5Sclose(ms), H5Sclose(sp);
    H5Dclose(ds);
}

typedef struct {
    const char *backbone, *digest, *pos_interp;
    int final_norm, T_in, S;
    int *layers, n_layers;
    BackboneShape sh;
} Setup;

// Reads an embedding matrix [rows, e] from `path` dataset `name`, checking rows.
static float *import_embeddings(const char *path, const char *name, int rows, int *e) {
    hid_t f = h5_open_read(path);
    hsize_t dims[2];
    float *x = h5_read_f32(f, path, name, 2, dims);
    H5Fclose(f);
    if (dims[0] != (hsize_t)rows)
        die("%s: %s has %llu rows, expected %d", path, name, (unsigned long long)dims[0], rows);
    *e = (int)dims[1];
    return x;
}

static void create_file(Out *o, const char *path, const Setup *su, const ClipList *l, const Deck *d,
                        const char *run_dir, int me) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
    o->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (o->file < 0) die("%s: cannot create", path);
    const BackboneShape *sh = &su->sh;
    for (int li = 0; li < su->n_layers; li++) {
        char name[64];
        snprintf(name, sizeof(name), "/features/layer_%02d", su->layers[li]);
        hsize_t dims[4] = {(hsize_t)l->n, (hsize_t)sh->T, (hsize_t)sh->N, (hsize_t)sh->d};
        hsize_t chunk[4] = {1, (hsize_t)sh->T, (hsize_t)sh->N, (hsize_t)sh->d};
        hid_t sp = H5Screate_simple(4, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE),
              lcpl = H5Pcreate(H5P_LINK_CREATE), ht = features_half_type();
        H5Pset_chunk(dcpl, 4, chunk);
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t ds = H5Dcreate2(o->file, name, ht, sp, lcpl, dcpl, H5P_DEFAULT);
        if (ds < 0) die("%s: cannot create %s", path, name);
        H5Dclose(ds), H5Tclose(ht), H5Pclose(lcpl), H5Pclose(dcpl), H5Sclose(sp);
    }
    int32_t *lab = xmalloc(sizeof(int32_t) * (size_t)l->n);
    uint8_t *split = xmalloc((size_t)l->n), *zero = xcalloc((size_t)l->n, 1);
    char **ids = xmalloc(sizeof(char *) * (size_t)l->n);
    for (int i = 0; i < l->n; i++) lab[i] = l->clip[i].label, split[i] = (uint8_t)l->clip[i].split, ids[i] = l->clip[i].clip_id;
    hsize_t dn[1] = {(hsize_t)l->n}, dl[1] = {(hsize_t)l->n_labels};
    write_small(o, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dn, lab, me);
    write_small(o, "/split", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, split, me);
    write_small(o, "/done", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, zero, me);
    write_small(o, "/failed", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, zero, me);
    size_t sz;
    char *buf;
    hid_t st = fixed_strings(ids, l->n, &sz, &buf);
    write_small(o, "/clip_ids", st, st, 1, dn, buf, me);
    H5Tclose(st), free(buf);
    st = fixed_strings(l->label_names, l->n_labels, &sz, &buf);
    write_small(o, "/label_names", st, st, 1, dl, buf, me);
    H5Tclose(st), free(buf);
    const char *const emb[2][2] = {{"extract.text_embeddings", "/text_embeddings"},
                                   {"extract.clip_embeddings", "/clip_embeddings"}};
    for (int k = 0; k < 2; k++) {
        if (!deck_has(d, emb[k][0])) continue;
        char *p = path_join(run_dir, deck_str(d, emb[k][0]));
        int e;
        float *x = import_embeddings(p, emb[k][1], k ? l->n : l->n_labels, &e);
        hsize_t de[2] = {(hsize_t)(k ? l->n : l->n_labels), (hsize_t)e};
        write_small(o, emb[k][1], H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, de, x, me);
        free(x), free(p);
    }
    free(lab), free(split), free(zero), free(ids);
    h5_set_attr_str(o->file, "backbone", su->backbone);
    h5_set_attr_str(o->file, "weights_digest", su->digest);
    h5_set_attr_str(o->file, "frame_sampling", "uniform: frame floor((i + 0.5) * n_frames / T_in), i < T_in");
    h5_set_attr_str(o->file, "pos_interp", su->pos_interp);
    h5_set_attr_str(o->file, "stsae_version", STSAE_VERSION);
    h5_set_attr_ints(o->file, "layers", su->layers, su->n_layers);
    const int v[] = {sh->T, sh->H, sh->W, sh->N, sh->d, su->T_in, su->S, su->final_norm, l->n};
    const char *const vn[] = {"T", "H", "W", "N", "d", "T_in", "image_size", "final_norm", "clips"};
    for (int i = 0; i < 9; i++) h5_set_attr_ints(o->file, vn[i], &v[i], 1);
}

// Reopens OUT.partial (or, read-only, a finished OUT) collectively; 0, or -1
// with err naming what differs from the setup.
static int reopen_file(Out *o, const char *path, const Setup *su, const ClipList *l, unsigned mode, char *err,
                       size_t cap) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
    H5E_BEGIN_TRY { o->file = H5Fopen(path, mode, fapl); }
    H5E_END_TRY;
    H5Pclose(fapl);
    if (o->file < 0) return snprintf(err, cap, "%s: cannot reopen (corrupt? delete it to start over)", path), -1;
    char s[256];
    h5_attr_str(o->file, path, "backbone", s, sizeof(s));
    if (strcmp(s, su->backbone)) return snprintf(err, cap, "%s: made with backbone %s, the deck asks %s; delete it or change extract.out", path, s, su->backbone), -1;
    h5_attr_str(o->file, path, "weights_digest", s, sizeof(s));
    if (strcmp(s, su->digest)) return snprintf(err, cap, "%s: made with other weights (digest %s); delete it or change extract.out", path, s), -1;
    int layers[64], n = h5_attr_ints(o->file, path, "layers", layers, 64);
    int same = n == su->n_layers;
    for (int i = 0; same && i < n; i++) same = layers[i] == su->layers[i];
    if (!same) return snprintf(err, cap, "%s: made for other layers; delete it or change extract.out", path), -1;
    const int want[] = {su->sh.T, su->sh.N, su->sh.d, su->T_in, su->S, su->final_norm, l->n};
    const char *const names[] = {"T", "N", "d", "T_in", "image_size", "final_norm", "clips"};
    for (int i = 0; i < 7; i++) {
        int v = 0;
        h5_attr_ints(o->file, path, names[i], &v, 1);
        if (v != want[i]) return snprintf(err, cap, "%s: attribute %s is %d, the deck gives %d; delete it or change extract.out", path, names[i], v, want[i]), -1;
    }
    return 0;
}

static void open_datasets(Out *o, const Setup *su) {
    o->n_layers = su->n_layers;
    o->feat = xmalloc(sizeof(hid_t) * (size_t)su->n_layers);
    for (int li = 0; li < su->n_layers; li++) {
        char name[64];
        snprintf(name, sizeof(name), "/features/layer_%02d", su->layers[li]);
        o->feat[li] = H5Dopen2(o->file, name, H5P_DEFAULT);
    }
    o->done = H5Dopen2(o->file, "/done", H5P_DEFAULT);
    o->failed = H5Dopen2(o->file, "/failed", H5P_DEFAULT);
}

static void close_out(Out *o) {
    for (int li = 0; li < o->n_layers; li++) H5Dclose(o->feat[li]);
    free(o->feat);
    H5Dclose(o->done), H5Dclose(o->failed);
    H5Pclose(o->dxpl);
    H5Fclose(o->file);
}

// Sets entries `clips[0..n)` of a uint8 mask dataset to 1 (collective).
static void mark(Out *o, hid_t ds, const int *clips, int n) {
    hid_t fs = H5Dget_space(ds);
    hsize_t *pts = xmalloc(sizeof(hsize_t) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) pts[i] = (hsize_t)clips[i];
    if (n) H5Sselect_elements(fs, H5S_SELECT_SET, (size_t)n, pts);
    else H5Sselect_none(fs);
    hsize_t dn[1] = {(hsize_t)(n ? n : 1)};
    hid_t ms = H5Screate_simple(1, dn, NULL);
    if (!n) H5Sselect_none(ms);
    uint8_t *ones = xmalloc((size_t)(n ? n : 1));
    memset(ones, 1, (size_t)(n ? n : 1));
    { herr_t rc_ = H5Dwrite(ds, H5T_NATIVE_UINT8, ms, fs, o->dxpl, ones); int me_; MPI_Comm_rank(MPI_COMM_WORLD,&me_); fprintf(stderr,"DBG rank %d mark rc %d\n", me_, (int)rc_); if (rc_<0) H5Eprint2(H5E_DEFAULT, stderr);}
    free(ones), free(pts);
    H5Sclose(ms), H5Sclose(fs);
}

// Writes the features of clips[0..n) (half bits, [n, T, N, d] per layer).
static void write_features(Out *o, const int *clips, int n, uint16_t *const *half, const BackboneShape *sh) {
    for (int li = 0; li < o->n_layers; li++) {
        hid_t fs = H5Dget_space(o->feat[li]);
        H5Sselect_none(fs);
        hsize_t count[4] = {1, (hsize_t)sh->T, (hsize_t)sh->N, (hsize_t)sh->d};
        for (int i = 0; i < n; i++) {
            hsize_t start[4] = {(hsize_t)clips[i], 0, 0, 0};
            H5Sselect_hyperslab(fs, H5S_SELECT_OR, start, NULL, count, NULL);
        }
        hsize_t md[4] = {(hsize_t)(n ? n : 1), (hsize_t)sh->T, (hsize_t)sh->N, (hsize_t)sh->d};
        hid_t ms = H5Screate_simple(4, md, NULL), ht = features_half_type();
        if (!n) H5Sselect_none(ms);
        // the clips must be in increasing file order for the memory order to match
        { herr_t rc_ = H5Dwrite(o->feat[li], ht, ms, fs, o->dxpl, half[li]); int me_; MPI_Comm_rank(MPI_COMM_WORLD,&me_); fprintf(stderr,"DBG rank %d feat write rc %d n %d\n", me_, (int)rc_, n); if (rc_<0) H5Eprint2(H5E_DEFAULT, stderr);}
        H5Tclose(ht), H5Sclose(ms), H5Sclose(fs);
    }
}

static void read_mask(hid_t ds, int n, uint8_t *out) {
    (void)n; // the dataset holds one entry per clip
    h5Check(H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, out));
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
        h5Check(H5Dread(pixels_ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out));
        H5Sclose(ms), H5Sclose(fs);
        t[X_DECODE] += wall_time() - t0;
        return 0;
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

int extract_main(int argc, char **argv) {
    int me, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 1) {
        if (me == 0) fprintf(stderr, "usage: stsae extract DECK [key=value ...]\n");
        return 2;
    }
    double t[N_XT] = {0};
    const double t_start = wall_time();
    char err[8192] = "";
    Deck *d = deck_load(argv[0], stsae_schema, argc - 1, argv + 1, err, sizeof(err));
    if (d && !deck_has(d, "extract")) snprintf(err, sizeof(err), "%s: the deck has no extract section", argv[0]);
    if (!comm_agree(MPI_COMM_WORLD, d && deck_has(d, "extract"), err)) {
        return 1;
    }
    const char *run_dir = deck_str(d, "run_dir");
    ClipList l;
    char *pixels_file = NULL;
    int ok = extract_clip_list(d, run_dir, &l, &pixels_file, err, sizeof(err)) == 0;
    if (ok && l.n < 1) snprintf(err, sizeof(err), "%s: the clip list is empty", argv[0]), ok = 0;
    if (!comm_agree(MPI_COMM_WORLD, ok, err)) {
        return 1;
    }
    inputs_default_split(&l, deck_num(d, "extract.test_frac"), (uint64_t)deck_int(d, "extract.split_seed"));

    // the backbone and its input
    Setup su;
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
    su.S = pp.crop;
    su.n_layers = deck_len(d, "extract.layers");
    su.layers = xmalloc(sizeof(int) * (size_t)su.n_layers);
    for (int i = 0; i < su.n_layers; i++) {
        char key[64];
        snprintf(key, sizeof(key), "extract.layers[%d]", i);
        su.layers[i] = (int)deck_int(d, key);
    }
    char where[600];
    deck_where(d, "extract.layers", where, sizeof(where));
    strncat(where, ": extract.layers", sizeof(where) - strlen(where) - 1);
    backbone_check_layers(bb, su.layers, su.n_layers, where);
    su.sh = backbone_shape(bb, su.T_in, su.S);

    // the file: OUT exists -> done; OUT.partial -> resume; else create
    char *out_path = path_join(run_dir, deck_str(d, "extract.out"));
    char partial[4200];
    snprintf(partial, sizeof(partial), "%s.partial", out_path);
    char *out_dir = path_dir(out_path);
    if (me == 0 && path_mkdirs(out_dir, err, sizeof(err)) != 0) die("%s", err);
    MPI_Barrier(MPI_COMM_WORLD);
    Out o;
    memset(&o, 0, sizeof(o));
    if (access(out_path, F_OK) == 0) { // finished: nothing to do, if it was made by this setup
        ok = reopen_file(&o, out_path, &su, &l, H5F_ACC_RDONLY, err, sizeof(err)) == 0;
        if (o.file >= 0) H5Fclose(o.file);
        if (!comm_agree(MPI_COMM_WORLD, ok, err)) {
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
                 pixels_file, (unsigned long long)dims[1], (unsigned long long)dims[3], su.T_in, su.S);
        if (!comm_agree(MPI_COMM_WORLD, (int)dims[1] == su.T_in && (int)dims[3] == su.S, err)) {
            backbone_close(bb);
            return 1;
        }
    }
    const int resume = access(partial, F_OK) == 0;
    if (resume) {
        ok = reopen_file(&o, partial, &su, &l, H5F_ACC_RDWR, err, sizeof(err)) == 0;
        if (!comm_agree(MPI_COMM_WORLD, ok, err)) {
                return 1;
        }
    } else {
        create_file(&o, partial, &su, &l, d, run_dir, me);
    }
    o.dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(o.dxpl, H5FD_MPIO_COLLECTIVE);
    open_datasets(&o, &su);
    uint8_t *done = xmalloc((size_t)l.n);
    read_mask(o.done, l.n, done);
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
        printf(", T_in %d at %d px -> T=%d H=%d W=%d d=%d; %d rank%s -> %s\n", su.T_in, su.S, su.sh.T, su.sh.H,
               su.sh.W, su.sh.d, size, size > 1 ? "s" : "", out_path);
        fflush(stdout);
    }
    // my clips: todo[i] with i = me (mod size), in increasing file order
    const int B = (int)deck_int(d, "extract.batch_clips");
    int n_mine = 0;
    int *mine = xmalloc(sizeof(int) * (size_t)(n_todo / size + 1));
    for (int i = me; i < n_todo; i += size) mine[n_mine++] = todo[i];
    int rounds = (n_mine + B - 1) / B;
    MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    const size_t pix = (size_t)su.T_in * 3 * su.S * su.S, tok = (size_t)su.sh.T * su.sh.N * su.sh.d;
    float *pixels = xmalloc(sizeof(float) * pix * (size_t)B);
    float **feat = xmalloc(sizeof(float *) * (size_t)su.n_layers);
    uint16_t **half = xmalloc(sizeof(uint16_t *) * (size_t)su.n_layers);
    for (int li = 0; li < su.n_layers; li++) {
        feat[li] = xmalloc(sizeof(float) * tok * (size_t)B);
        half[li] = xmalloc(sizeof(uint16_t) * tok * (size_t)B);
    }
    int *ok_clips = xmalloc(sizeof(int) * (size_t)B), *bad_clips = xmalloc(sizeof(int) * (size_t)B);
    int total_done = 0, total_failed = 0, stopped = 0;
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
            }
        }
        double t0 = wall_time();
        if (n_ok) backbone_forward(bb, pixels, n_ok, su.T_in, su.S, su.layers, su.n_layers, feat);
        double t1 = wall_time();
        t[X_FORWARD] += t1 - t0;
        for (int li = 0; li < su.n_layers; li++) float_to_half(feat[li], half[li], tok * (size_t)n_ok);
        write_features(&o, ok_clips, n_ok, half, &su.sh);
        mark(&o, o.done, ok_clips, n_ok); // after the features they describe
        mark(&o, o.failed, bad_clips, n_bad);
        { herr_t rc_ = H5Fflush(o.file, H5F_SCOPE_GLOBAL); fprintf(stderr,"DBG rank %d flush rc %d\n", me, (int)rc_); if (rc_<0) H5Eprint2(H5E_DEFAULT, stderr);}
        t[X_WRITE] += wall_time() - t1;
        int cnt[3] = {n_ok, n_bad, stop_requested()}; // the ranks agree on a stop request too
        MPI_Allreduce(MPI_IN_PLACE, cnt, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, cnt + 2, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
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
    // complete when every clip is done or failed: then OUT.partial becomes OUT
    uint8_t *failed = xmalloc((size_t)l.n);
    read_mask(o.done, l.n, done);
    read_mask(o.failed, l.n, failed);
    int complete = 1, n_failed = 0;
    for (int i = 0; i < l.n; i++) complete &= done[i] || failed[i], n_failed += failed[i] && !done[i];
    free(failed);
    close_out(&o);
    MPI_Barrier(MPI_COMM_WORLD);
    if (me == 0) {
        if (complete) {
            if (rename(partial, out_path) != 0) die("%s: cannot rename to %s", partial, out_path);
            printf("extract: done -> %s", out_path);
            if (n_failed) printf(" (%d clips could not be decoded: /failed; training and evaluation skip them)", n_failed);
            printf("\n");
        }
    }
    t[X_TOTAL] = wall_time() - t_start;
    comm_stage_table(MPI_COMM_WORLD, XT_NAMES, t, N_XT);
    const int rc = stopped ? 3 : 0;
    if (me == 0 && stopped) stop_consume(run_dir);
    backbone_close(bb);
    if (pix_file >= 0) H5Dclose(pix_ds), H5Fclose(pix_file);
    for (int li = 0; li < su.n_layers; li++) free(feat[li]), free(half[li]);
    free(feat), free(half), free(pixels), free(ok_clips), free(bad_clips), free(mine), free(todo), free(done);
    free(su.layers), free(out_path), free(out_dir), free(model_dir), free(pixels_file);
    inputs_free(&l);
    deck_free(d);
    return rc;
}
