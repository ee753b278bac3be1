// features_write.c — writing the feature file of SPEC §3 in parallel
// (features.h, "writing"): `stsae extract`'s file, every rank of a Comm
// writing its clips into one HDF5 file over MPI-IO (comm_h5_fapl).
//
// In:  the setup (backbone, weights digest, layers, shapes; CLIP's digest
//      and width), the clip list (labels, split, ids, label names), optional
//      embedding files to import or CLIP's label embeddings, and, round after
//      round, each rank's float16 features (and CLIP embeddings) of the clips
//      it computed and the clips it could not decode.
// Out: the file: /features/layer_LL float16 [clips, T, N, d] (one clip per
//      chunk, no fill), /labels, /split, /done, /failed, /clip_ids,
//      /label_names, /text_embeddings and /clip_embeddings (imported, or
//      CLIP's: the latter written round by round like the features), and
//      the root attributes (format_version, backbone, weights_digest,
//      frame_sampling, pos_interp, stsae_version, clip_weights_digest,
//      layers, T, H, W, N, d, T_in, image_size, final_norm, clips); on
//      reopening, whether a file was made by the same setup (and
//      format_version); the /done and /failed masks.
//
// Every call below that touches the file is collective over the writer's
// Comm (every rank, the same calls in the same order: hpc.md §1). A failure
// can be one rank's alone (MPI-IO reports a failed write where it happened,
// HDF5's flush fails where a write of its own failed), so after each such
// call the ranks agree on its outcome (comm_agree_msg, with
// comm_collective_timeout) before the next one: all go on, or all stop with
// the first failing rank's message, and no rank is left waiting in a
// collective call that the others skipped. A round's features are flushed to
// disk before its /done marks are written, so that a crash or a full disk in
// between costs recomputation, never a clip marked done over features that
// are not there (the marks become durable with the next flush).
// Dataset writes use independent MPI-IO transfers (every rank still makes
// every H5Dwrite, with an empty selection when it has nothing): the chunks
// are allocated when the datasets are made (parallel HDF5 allocates early),
// so a rank's write touches only its own clips' bytes, and a write that
// fails (a full disk) fails on that rank and returns. A collective transfer
// would leave the other ranks inside ROMIO's collective set-view after the
// write, waiting for the rank that left (seen on a full tmpfs, 3 ranks: a
// hang until comm_collective_timeout's abort, with no message from them).
#define _POSIX_C_SOURCE 200809L // unlink
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/comm/h5_access.h"
#include "stsae/io/features.h"
#include "stsae/io/h5io.h"

// The ranks' verdict on the call each just made (ok: it succeeded here): 1 when
// it succeeded everywhere, else 0 with w->err the first failing rank's message.
static int agreed(FeatureWriter *w, int ok) {
    return comm_agree_msg(w->comm, ok, w->err, sizeof(w->err), comm_collective_timeout());
}

static void writer_init(FeatureWriter *w, Comm *c, const char *path, const FeaturesSetup *su) {
    memset(w, 0, sizeof(*w));
    w->comm = c;
    snprintf(w->path, sizeof(w->path), "%s", path);
    w->layers = su->layers;
    w->n_layers = su->n_layers;
    w->T = su->T, w->N = su->N, w->d = su->d;
    w->file = w->done = w->failed = w->clip = -1;
    w->clip_e = su->clip_e;
    w->dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(w->dxpl, H5FD_MPIO_INDEPENDENT);
}

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
// empty selection elsewhere). 1, or 0 (agreed) with w->err.
static int write_small(FeatureWriter *w, const char *name, hid_t ftype, hid_t mtype, int rank_n, const hsize_t *dims,
                       const void *buf) {
    hid_t sp = H5Screate_simple(rank_n, dims, NULL);
    hid_t ds = H5Dcreate2(w->file, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = ds >= 0;
    if (!ok) h5_fail(w->err, sizeof(w->err), w->path, "cannot create dataset %s", name);
    if (!agreed(w, ok)) {
        H5Sclose(sp);
        return 0;
    }
    hid_t fs = H5Scopy(sp), ms = H5Scopy(sp);
    if (comm_rank(w->comm) != 0) H5Sselect_none(fs), H5Sselect_none(ms);
    ok = H5Dwrite(ds, mtype, ms, fs, w->dxpl, buf) >= 0;
    if (!ok) h5_fail(w->err, sizeof(w->err), w->path, "cannot write dataset %s", name);
    H5Sclose(fs), H5Sclose(ms), H5Sclose(sp);
    if (H5Dclose(ds) < 0 && ok) ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot close dataset %s", name);
    return agreed(w, ok);
}

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

// Closes everything (collective); 1, or 0 (agreed) with w->err when `report`
// (after a failure the close is only tidying: its verdict is not asked for,
// but every rank still waits for the others, so none is left in a collective).
static int close_out(FeatureWriter *w, int report) {
    int ok = 1;
    for (int li = 0; li < w->n_open; li++)
        if (w->feat[li] >= 0 && H5Dclose(w->feat[li]) < 0 && ok)
            ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot close dataset /features/layer_%02d", w->layers[li]);
    if (w->clip >= 0 && H5Dclose(w->clip) < 0 && ok)
        ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot close dataset /clip_embeddings");
    if (w->done >= 0 && H5Dclose(w->done) < 0 && ok)
        ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot close dataset /done");
    if (w->failed >= 0 && H5Dclose(w->failed) < 0 && ok)
        ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot close dataset /failed");
    if (w->dxpl >= 0) H5Pclose(w->dxpl);
    if (w->file >= 0 && H5Fclose(w->file) < 0 && ok)
        ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot close (the flush of HDF5's buffers to the file failed)");
    free(w->feat);
    w->feat = NULL, w->n_open = 0, w->file = w->done = w->failed = w->clip = w->dxpl = -1;
    if (!report) {
        char ignored[COMM_MSG_MAX] = "";
        comm_agree_msg(w->comm, 1, ignored, sizeof(ignored), comm_collective_timeout());
        return 1;
    }
    return agreed(w, ok);
}

// An empty dataset `name` of type ftype (chunks of `chunk`; allocated early, as
// parallel HDF5 does, and never filled) for round-by-round writes. 1, or 0
// (agreed) with w->err.
static int create_empty(FeatureWriter *w, const char *name, hid_t ftype, int rank_n, const hsize_t *dims,
                        const hsize_t *chunk) {
    hid_t sp = H5Screate_simple(rank_n, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE),
          lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_chunk(dcpl, rank_n, chunk);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(w->file, name, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
    int ok = ds >= 0;
    if (!ok) h5_fail(w->err, sizeof(w->err), w->path, "cannot create dataset %s", name);
    else if (H5Dclose(ds) < 0) ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot close dataset %s", name);
    H5Pclose(lcpl), H5Pclose(dcpl), H5Sclose(sp);
    return agreed(w, ok);
}

// create's work; 1, or 0 (agreed) with w->err and w->file still open when it was made.
static int create_file(FeatureWriter *w, const FeaturesSetup *su, const ClipList *l, const FeaturesEmbeddings *emb) {
    hid_t fapl = comm_h5_fapl(w->comm);
    w->file = H5Fcreate(w->path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    const int made = w->file >= 0;
    if (!made) h5_fail(w->err, sizeof(w->err), w->path, "cannot create");
    H5Pclose(fapl);
    if (!agreed(w, made)) return 0;
    for (int li = 0; li < su->n_layers; li++) {
        char name[64];
        snprintf(name, sizeof(name), "/features/layer_%02d", su->layers[li]);
        hsize_t dims[4] = {(hsize_t)l->n, (hsize_t)su->T, (hsize_t)su->N, (hsize_t)su->d};
        hsize_t chunk[4] = {1, (hsize_t)su->T, (hsize_t)su->N, (hsize_t)su->d};
        hid_t ht = features_half_type();
        const int ok = create_empty(w, name, ht, 4, dims, chunk);
        H5Tclose(ht);
        if (!ok) return 0;
    }
    if (su->clip_e > 0) { // chunks of 64 clips: a few KB each
        hsize_t dims[2] = {(hsize_t)l->n, (hsize_t)su->clip_e}, chunk[2] = {l->n < 64 ? (hsize_t)l->n : 64, dims[1]};
        if (!create_empty(w, "/clip_embeddings", H5T_IEEE_F32LE, 2, dims, chunk)) return 0;
    }
    int32_t *lab = xmalloc(sizeof(int32_t) * (size_t)l->n);
    uint8_t *split = xmalloc((size_t)l->n), *zero = xcalloc((size_t)l->n, 1);
    char **ids = xmalloc(sizeof(char *) * (size_t)l->n);
    for (int i = 0; i < l->n; i++) lab[i] = l->clip[i].label, split[i] = (uint8_t)l->clip[i].split, ids[i] = l->clip[i].clip_id;
    hsize_t dn[1] = {(hsize_t)l->n}, dl[1] = {(hsize_t)l->n_labels};
    size_t sz;
    char *ids_buf, *names_buf;
    hid_t st_ids = fixed_strings(ids, l->n, &sz, &ids_buf), st_names = fixed_strings(l->label_names, l->n_labels, &sz, &names_buf);
    int ok = write_small(w, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dn, lab) &&
             write_small(w, "/split", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, split) &&
             write_small(w, "/done", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, zero) &&
             write_small(w, "/failed", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, zero) &&
             write_small(w, "/clip_ids", st_ids, st_ids, 1, dn, ids_buf) &&
             write_small(w, "/label_names", st_names, st_names, 1, dl, names_buf);
    H5Tclose(st_ids), H5Tclose(st_names), free(ids_buf), free(names_buf);
    free(lab), free(split), free(zero), free(ids);
    const char *const emb_file[2] = {emb->text_file, emb->clip_file};
    const char *const emb_name[2] = {"/text_embeddings", "/clip_embeddings"};
    for (int k = 0; k < 2 && ok; k++) {
        if (!emb_file[k]) continue;
        int e;
        float *x = import_embeddings(emb_file[k], emb_name[k], k ? l->n : l->n_labels, &e);
        hsize_t de[2] = {(hsize_t)(k ? l->n : l->n_labels), (hsize_t)e};
        ok = write_small(w, emb_name[k], H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, de, x);
        free(x);
    }
    if (ok && emb->text) {
        hsize_t de[2] = {(hsize_t)l->n_labels, (hsize_t)emb->text_e};
        ok = write_small(w, "/text_embeddings", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, de, emb->text);
    }
    if (!ok) return 0;
    // attributes (collective: every rank writes the same values)
    H5W a;
    h5w_wrap(&a, w->file, w->path);
    const char *const sn[] = {"backbone", "weights_digest", "frame_sampling", "pos_interp", "stsae_version",
                              "clip_weights_digest"};
    const char *const sv[] = {su->backbone, su->digest, "uniform: frame floor((i + 0.5) * n_frames / T_in), i < T_in",
                              su->pos_interp, STSAE_VERSION, su->clip_digest ? su->clip_digest : "none"};
    for (int i = 0; i < 6; i++)
        if (!comm_agree_msg(w->comm, h5w_attr_str(&a, sn[i], sv[i]) == 0, a.err, sizeof(a.err),
                            comm_collective_timeout()))
            return snprintf(w->err, sizeof(w->err), "%.2000s", a.err), 0;
    const int v[] = {su->T, su->H, su->W, su->N, su->d, su->T_in, su->image_size, su->final_norm, l->n,
                     FEATURES_FORMAT_VERSION};
    const char *const vn[] = {"T", "H", "W", "N", "d", "T_in", "image_size", "final_norm", "clips", "format_version"};
    for (int i = 0; i < 11; i++) {
        const int r = i ? h5w_attr_ints(&a, vn[i - 1], &v[i - 1], 1) : h5w_attr_ints(&a, "layers", su->layers, su->n_layers);
        if (!comm_agree_msg(w->comm, r == 0, a.err, sizeof(a.err), comm_collective_timeout()))
            return snprintf(w->err, sizeof(w->err), "%.2000s", a.err), 0;
    }
    // on disk before any clip is computed
    ok = H5Fflush(w->file, H5F_SCOPE_GLOBAL) >= 0;
    if (!ok) h5_fail(w->err, sizeof(w->err), w->path, "cannot flush the new file to disk");
    return agreed(w, ok);
}

int features_write_create(FeatureWriter *w, Comm *c, const char *path, const FeaturesSetup *su, const ClipList *l,
                          const FeaturesEmbeddings *emb) {
    writer_init(w, c, path, su);
    if (create_file(w, su, l, emb)) return 1;
    // it holds no clip yet: removed, so that the next run starts afresh
    close_out(w, 0);
    if (comm_rank(c) == 0) unlink(w->path);
    return 0;
}

// Whether the open file f was made by this setup for n_clips clips: 0, or -1
// with err naming what differs. The same verdict on every rank (the same
// attributes of the same file).
static int check_setup(hid_t f, const char *path, const FeaturesSetup *su, int n_clips, char *err, size_t cap) {
    if (features_check_version(f, path, err, cap) != 0) return -1;
    char s[256];
    h5_attr_str(f, path, "backbone", s, sizeof(s));
    if (strcmp(s, su->backbone)) return snprintf(err, cap, "%s: made with backbone %s, the deck asks %s; delete it or change extract.out", path, s, su->backbone), -1;
    h5_attr_str(f, path, "weights_digest", s, sizeof(s));
    if (strcmp(s, su->digest)) return snprintf(err, cap, "%s: made with other weights (digest %s); delete it or change extract.out", path, s), -1;
    snprintf(s, sizeof(s), "none"); // absent: a file from before extract.clip
    if (H5Aexists(f, "clip_weights_digest") > 0) h5_attr_str(f, path, "clip_weights_digest", s, sizeof(s));
    if (strcmp(s, su->clip_digest ? su->clip_digest : "none"))
        return snprintf(err, cap, "%s: made with %s CLIP weights (digest %s); delete it or change extract.out", path,
                        strcmp(s, "none") ? "other" : "no", s), -1;
    int layers[64], n = h5_attr_ints(f, path, "layers", layers, 64);
    int same = n == su->n_layers;
    for (int i = 0; same && i < n; i++) same = layers[i] == su->layers[i];
    if (!same) return snprintf(err, cap, "%s: made for other layers; delete it or change extract.out", path), -1;
    const int want[] = {su->T, su->N, su->d, su->T_in, su->image_size, su->final_norm, n_clips};
    const char *const names[] = {"T", "N", "d", "T_in", "image_size", "final_norm", "clips"};
    for (int i = 0; i < 7; i++) {
        int v = 0;
        h5_attr_ints(f, path, names[i], &v, 1);
        if (v != want[i]) return snprintf(err, cap, "%s: attribute %s is %d, the deck gives %d; delete it or change extract.out", path, names[i], v, want[i]), -1;
    }
    return 0;
}

// Opens path with mode on the ranks of c and checks it against the setup; 0,
// or -1 with err naming what differs (or why it cannot be opened). *file: the
// file, or -1: a file that fails the checks is closed again (collective: every
// rank that opened it reaches the same verdict), so that nothing is left open
// for HDF5 to close after MPI has ended.
static int open_checked(Comm *c, const char *path, const FeaturesSetup *su, int n_clips, unsigned mode, hid_t *file,
                        char *err, size_t cap) {
    hid_t fapl = comm_h5_fapl(c);
    hid_t f = *file = H5Fopen(path, mode, fapl);
    char why[1024];
    if (f < 0) h5_error_text(why, sizeof(why)); // before any other call clears the stack
    H5Pclose(fapl);
    if (f < 0) return snprintf(err, cap, "%s: cannot reopen (corrupt? delete it to start over): %s", path, why), -1;
    if (check_setup(f, path, su, n_clips, err, cap) == 0) return 0;
    H5Fclose(f);
    *file = -1;
    return -1;
}

int features_write_reopen(FeatureWriter *w, Comm *c, const char *path, const FeaturesSetup *su, int n_clips, char *err,
                          size_t cap) {
    writer_init(w, c, path, su);
    return open_checked(c, path, su, n_clips, H5F_ACC_RDWR, &w->file, err, cap);
}

int features_write_check(Comm *c, const char *path, const FeaturesSetup *su, int n_clips, char *err, size_t cap) {
    hid_t f = -1;
    const int rc = open_checked(c, path, su, n_clips, H5F_ACC_RDONLY, &f, err, cap);
    if (f >= 0) H5Fclose(f);
    return rc;
}

// A whole uint8 mask (independent read on every rank); 1, or 0 (agreed).
static int read_mask(FeatureWriter *w, hid_t ds, const char *name, uint8_t *out) {
    const int ok = H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    if (!ok) h5_fail(w->err, sizeof(w->err), w->path, "cannot read dataset %s", name);
    return agreed(w, ok);
}

int features_write_begin(FeatureWriter *w, uint8_t *done) {
    w->n_open = w->n_layers;
    w->feat = xmalloc(sizeof(hid_t) * (size_t)w->n_layers);
    int ok = 1;
    for (int li = 0; li < w->n_layers; li++) {
        char name[64];
        snprintf(name, sizeof(name), "/features/layer_%02d", w->layers[li]);
        w->feat[li] = H5Dopen2(w->file, name, H5P_DEFAULT);
        if (w->feat[li] < 0 && ok) ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot open dataset %s", name);
    }
    if (w->clip_e > 0) {
        w->clip = H5Dopen2(w->file, "/clip_embeddings", H5P_DEFAULT);
        if (w->clip < 0 && ok) ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot open dataset /clip_embeddings");
    }
    w->done = H5Dopen2(w->file, "/done", H5P_DEFAULT);
    if (w->done < 0 && ok) ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot open dataset /done");
    w->failed = H5Dopen2(w->file, "/failed", H5P_DEFAULT);
    if (w->failed < 0 && ok) ok = 0, h5_fail(w->err, sizeof(w->err), w->path, "cannot open dataset /failed");
    return agreed(w, ok) && read_mask(w, w->done, "/done", done);
}

// Sets entries `clips[0..n)` of a uint8 mask dataset to 1 (collective); 1, or
// 0 (agreed) with w->err.
static int mark(FeatureWriter *w, hid_t ds, const char *name, const int *clips, int n) {
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
    const int ok = H5Dwrite(ds, H5T_NATIVE_UINT8, ms, fs, w->dxpl, ones) >= 0;
    if (!ok) h5_fail(w->err, sizeof(w->err), w->path, "cannot write %d entries of dataset %s", n, name);
    free(ones), free(pts);
    H5Sclose(ms), H5Sclose(fs);
    return agreed(w, ok);
}

// Writes the features of clips[0..n) (half bits, [n, T, N, d] per layer),
// one collective write per layer; 1, or 0 (agreed) with w->err.
static int write_features(FeatureWriter *w, const int *clips, int n, uint16_t *const *half) {
    for (int li = 0; li < w->n_open; li++) {
        hid_t fs = H5Dget_space(w->feat[li]);
        H5Sselect_none(fs);
        hsize_t count[4] = {1, (hsize_t)w->T, (hsize_t)w->N, (hsize_t)w->d};
        for (int i = 0; i < n; i++) {
            hsize_t start[4] = {(hsize_t)clips[i], 0, 0, 0};
            H5Sselect_hyperslab(fs, H5S_SELECT_OR, start, NULL, count, NULL);
        }
        hsize_t md[4] = {(hsize_t)(n ? n : 1), (hsize_t)w->T, (hsize_t)w->N, (hsize_t)w->d};
        hid_t ms = H5Screate_simple(4, md, NULL), ht = features_half_type();
        if (!n) H5Sselect_none(ms);
        // the clips must be in increasing file order for the memory order to match
        const int ok = H5Dwrite(w->feat[li], ht, ms, fs, w->dxpl, half[li]) >= 0;
        if (!ok)
            h5_fail(w->err, sizeof(w->err), w->path, "cannot write the features of %d clip%s (clip %d first, rank %d) "
                    "to dataset /features/layer_%02d", n, n == 1 ? "" : "s", n ? clips[0] : -1, comm_rank(w->comm),
                    w->layers[li]);
        H5Tclose(ht), H5Sclose(ms), H5Sclose(fs);
        if (!agreed(w, ok)) return 0;
    }
    return 1;
}

// The CLIP embeddings of clips[0..n) (emb [n, clip_e]), one write; 1, or 0
// (agreed) with w->err.
static int write_clip_embeddings(FeatureWriter *w, const int *clips, int n, const float *emb) {
    hid_t fs = H5Dget_space(w->clip);
    H5Sselect_none(fs);
    hsize_t count[2] = {1, (hsize_t)w->clip_e};
    for (int i = 0; i < n; i++) {
        hsize_t start[2] = {(hsize_t)clips[i], 0};
        H5Sselect_hyperslab(fs, H5S_SELECT_OR, start, NULL, count, NULL);
    }
    hsize_t md[2] = {(hsize_t)(n ? n : 1), (hsize_t)w->clip_e};
    hid_t ms = H5Screate_simple(2, md, NULL);
    if (!n) H5Sselect_none(ms);
    const int ok = H5Dwrite(w->clip, H5T_NATIVE_FLOAT, ms, fs, w->dxpl, emb) >= 0;
    if (!ok)
        h5_fail(w->err, sizeof(w->err), w->path, "cannot write the CLIP embeddings of %d clip%s (rank %d) to dataset "
                "/clip_embeddings", n, n == 1 ? "" : "s", comm_rank(w->comm));
    H5Sclose(ms), H5Sclose(fs);
    return agreed(w, ok);
}

// Everything written so far on disk (H5Fflush: HDF5's buffers, then
// MPI-IO's file sync, an fsync); 1, or 0 (agreed) with w->err.
static int flush_out(FeatureWriter *w, const char *what) {
    const int ok = H5Fflush(w->file, H5F_SCOPE_GLOBAL) >= 0;
    if (!ok) h5_fail(w->err, sizeof(w->err), w->path, "cannot flush %s to disk (rank %d)", what, comm_rank(w->comm));
    return agreed(w, ok);
}

int features_write_round(FeatureWriter *w, const int *ok_clips, int n_ok, uint16_t *const *half,
                         const float *clip_emb, const int *bad_clips, int n_bad) {
    // the features, then on disk, then the /done marks that say so
    return write_features(w, ok_clips, n_ok, half) &&
           (w->clip < 0 || write_clip_embeddings(w, ok_clips, n_ok, clip_emb)) && flush_out(w, "the features") &&
           mark(w, w->done, "/done", ok_clips, n_ok) && mark(w, w->failed, "/failed", bad_clips, n_bad);
}

int features_write_end(FeatureWriter *w, uint8_t *done, uint8_t *failed) {
    const int ok = flush_out(w, "the /done marks") && read_mask(w, w->done, "/done", done) &&
                   read_mask(w, w->failed, "/failed", failed);
    if (ok) return close_out(w, 1);
    close_out(w, 0);
    return 0;
}

void features_write_abandon(FeatureWriter *w) { close_out(w, 0); }

int features_write_commit(Comm *c, const char *partial, const char *path, char *err, size_t cap) {
    int ok = 1;
    if (comm_rank(c) == 0) {
        char *dir = path_dir(path);
        if (rename(partial, path) != 0)
            ok = 0, snprintf(err, cap, "%s: cannot rename to %s: %s", partial, path, strerror(errno));
        else if (path_sync_dir(dir) != 0)
            ok = 0, snprintf(err, cap, "%s: cannot sync its directory %s to disk: %s", path, dir, strerror(errno));
        free(dir);
    }
    return comm_agree_msg(c, ok, err, cap, 0);
}
