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
// (comm_agree_msg), so a failure seen by one rank stops every rank, each
// printing the file, the dataset and the reason, with exit status 1, and no
// rank waits in a collective call the others left. What was marked done is
// on disk; the same command, with room, goes on from there. Open MPI's OMPIO
// loses such failures, so ROMIO is chosen for the file (mpio_fapl).
#define _POSIX_C_SOURCE 200809L // access, strdup, setenv
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
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

// --- the parallel feature file ----------------------------------------------------
//
// Every call below that touches the file is collective over MPI_COMM_WORLD
// (every rank, the same calls in the same order: hpc.md §1). A failure can be
// one rank's alone (MPI-IO reports a failed write where it happened, HDF5's
// flush fails where a write of its own failed), so after each such call the
// ranks agree on its outcome (comm_agree_msg) before the next one: all go on,
// or all stop with the first failing rank's message, and no rank is left
// waiting in a collective call that the others skipped.

typedef struct {
    const char *path;   // its name, for the messages (OUT.partial)
    const int *layers;  // the layer of each feature dataset
    hid_t file, dxpl;
    hid_t *feat;        // one per layer
    hid_t done, failed;
    int n_layers;
    char err[COMM_MSG_MAX]; // the agreed message of the failure that stopped the run
} Out;

static int world_rank(void) {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

// The ranks' verdict on the call each just made (ok: it succeeded here): 1 when
// it succeeded everywhere, else 0 with o->err the first failing rank's message.
static int agreed(Out *o, int ok) {
    return comm_agree_msg(MPI_COMM_WORLD, ok, o->err, sizeof(o->err), comm_collective_timeout());
}

// The feature file's access list: MPI-IO over every rank. With Open MPI,
// ROMIO rather than OMPIO unless the user chose (OMPI_MCA_io): OMPIO 4.1 lets
// a collective write whose pwritev failed (a full disk) return success on
// every rank, and the failure surfaces later in one rank's MPI_File_sync while
// the others wait in its barrier (seen here: clips marked done over features
// never written, every rank hung); ROMIO returns the failed write's error on
// every rank. Open MPI reads the setting at the process's first MPI_File_open.
static hid_t mpio_fapl(void) {
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    if (strstr(lib, "Open MPI")) {
        static int said = 0;
        const char *io = getenv("OMPI_MCA_io");
        if (!io) setenv("OMPI_MCA_io", "^ompio", 0);
        else if (io[0] != '^' && strstr(io, "ompio") && !said++ && world_rank() == 0)
            fprintf(stderr, "extract: warning: OMPI_MCA_io=%s: Open MPI's OMPIO can lose the error of a failed "
                            "collective write (a full disk), and clips may then be marked done over features never "
                            "written; unset it to use ROMIO\n", io);
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
    return fapl;
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
// empty selection elsewhere). 1, or 0 (agreed) with o->err.
static int write_small(Out *o, const char *name, hid_t ftype, hid_t mtype, int rank_n, const hsize_t *dims,
                       const void *buf, int me) {
    hid_t sp = H5Screate_simple(rank_n, dims, NULL);
    hid_t ds = H5Dcreate2(o->file, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = ds >= 0;
    if (!ok) h5_fail(o->err, sizeof(o->err), o->path, "cannot create dataset %s", name);
    if (!agreed(o, ok)) {
        H5Sclose(sp);
        return 0;
    }
    hid_t fs = H5Scopy(sp), ms = H5Scopy(sp);
    if (me != 0) H5Sselect_none(fs), H5Sselect_none(ms);
    ok = H5Dwrite(ds, mtype, ms, fs, o->dxpl, buf) >= 0;
    if (!ok) h5_fail(o->err, sizeof(o->err), o->path, "cannot write dataset %s", name);
    H5Sclose(fs), H5Sclose(ms), H5Sclose(sp);
    if (H5Dclose(ds) < 0 && ok) ok = 0, h5_fail(o->err, sizeof(o->err), o->path, "cannot close dataset %s", name);
    return agreed(o, ok);
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

// Creates OUT.partial collectively, every dataset and attribute, and flushes
// it. 1, or 0 (agreed) with o->err and o->file still open when it was made.
static int create_file(Out *o, const Setup *su, const ClipList *l, const Deck *d, const char *run_dir, int me) {
    hid_t fapl = mpio_fapl();
    o->file = H5Fcreate(o->path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    const int made = o->file >= 0;
    if (!made) h5_fail(o->err, sizeof(o->err), o->path, "cannot create");
    H5Pclose(fapl);
    if (!agreed(o, made)) return 0;
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
        int ok = ds >= 0;
        if (!ok) h5_fail(o->err, sizeof(o->err), o->path, "cannot create dataset %s", name);
        else if (H5Dclose(ds) < 0) ok = 0, h5_fail(o->err, sizeof(o->err), o->path, "cannot close dataset %s", name);
        H5Tclose(ht), H5Pclose(lcpl), H5Pclose(dcpl), H5Sclose(sp);
        if (!agreed(o, ok)) return 0;
    }
    int32_t *lab = xmalloc(sizeof(int32_t) * (size_t)l->n);
    uint8_t *split = xmalloc((size_t)l->n), *zero = xcalloc((size_t)l->n, 1);
    char **ids = xmalloc(sizeof(char *) * (size_t)l->n);
    for (int i = 0; i < l->n; i++) lab[i] = l->clip[i].label, split[i] = (uint8_t)l->clip[i].split, ids[i] = l->clip[i].clip_id;
    hsize_t dn[1] = {(hsize_t)l->n}, dl[1] = {(hsize_t)l->n_labels};
    size_t sz;
    char *ids_buf, *names_buf;
    hid_t st_ids = fixed_strings(ids, l->n, &sz, &ids_buf), st_names = fixed_strings(l->label_names, l->n_labels, &sz, &names_buf);
    int ok = write_small(o, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dn, lab, me) &&
             write_small(o, "/split", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, split, me) &&
             write_small(o, "/done", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, zero, me) &&
             write_small(o, "/failed", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dn, zero, me) &&
             write_small(o, "/clip_ids", st_ids, st_ids, 1, dn, ids_buf, me) &&
             write_small(o, "/label_names", st_names, st_names, 1, dl, names_buf, me);
    H5Tclose(st_ids), H5Tclose(st_names), free(ids_buf), free(names_buf);
    free(lab), free(split), free(zero), free(ids);
    const char *const emb[2][2] = {{"extract.text_embeddings", "/text_embeddings"},
                                   {"extract.clip_embeddings", "/clip_embeddings"}};
    for (int k = 0; k < 2 && ok; k++) {
        if (!deck_has(d, emb[k][0])) continue;
        char *p = path_join(run_dir, deck_str(d, emb[k][0]));
        int e;
        float *x = import_embeddings(p, emb[k][1], k ? l->n : l->n_labels, &e);
        hsize_t de[2] = {(hsize_t)(k ? l->n : l->n_labels), (hsize_t)e};
        ok = write_small(o, emb[k][1], H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, de, x, me);
        free(x), free(p);
    }
    if (!ok) return 0;
    // attributes (collective: every rank writes the same values)
    H5W w;
    h5w_wrap(&w, o->file, o->path);
    const char *const sn[] = {"backbone", "weights_digest", "frame_sampling", "pos_interp", "stsae_version"};
    const char *const sv[] = {su->backbone, su->digest, "uniform: frame floor((i + 0.5) * n_frames / T_in), i < T_in",
                              su->pos_interp, STSAE_VERSION};
    for (int i = 0; i < 5; i++)
        if (!comm_agree_msg(MPI_COMM_WORLD, h5w_attr_str(&w, sn[i], sv[i]) == 0, w.err, sizeof(w.err),
                            comm_collective_timeout()))
            return snprintf(o->err, sizeof(o->err), "%.2000s", w.err), 0;
    const int v[] = {sh->T, sh->H, sh->W, sh->N, sh->d, su->T_in, su->S, su->final_norm, l->n};
    const char *const vn[] = {"T", "H", "W", "N", "d", "T_in", "image_size", "final_norm", "clips"};
    for (int i = 0; i < 10; i++) {
        const int r = i ? h5w_attr_ints(&w, vn[i - 1], &v[i - 1], 1) : h5w_attr_ints(&w, "layers", su->layers, su->n_layers);
        if (!comm_agree_msg(MPI_COMM_WORLD, r == 0, w.err, sizeof(w.err), comm_collective_timeout()))
            return snprintf(o->err, sizeof(o->err), "%.2000s", w.err), 0;
    }
    // on disk before any clip is computed
    ok = H5Fflush(o->file, H5F_SCOPE_GLOBAL) >= 0;
    if (!ok) h5_fail(o->err, sizeof(o->err), o->path, "cannot flush the new file to disk");
    return agreed(o, ok);
}

// Reopens OUT.partial (or, read-only, a finished OUT) collectively; 0, or -1
// with err naming what differs from the setup.
static int reopen_file(Out *o, const char *path, const Setup *su, const ClipList *l, unsigned mode, char *err,
                       size_t cap) {
    hid_t fapl = mpio_fapl();
    o->file = H5Fopen(path, mode, fapl);
    char why[1024];
    if (o->file < 0) h5_error_text(why, sizeof(why)); // before any other call clears the stack
    H5Pclose(fapl);
    if (o->file < 0) return snprintf(err, cap, "%s: cannot reopen (corrupt? delete it to start over): %s", path, why), -1;
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

// Opens the datasets of an open (created or reopened) file; 1, or 0 (agreed).
static int open_datasets(Out *o, const Setup *su) {
    o->n_layers = su->n_layers;
    o->feat = xmalloc(sizeof(hid_t) * (size_t)su->n_layers);
    int ok = 1;
    for (int li = 0; li < su->n_layers; li++) {
        char name[64];
        snprintf(name, sizeof(name), "/features/layer_%02d", su->layers[li]);
        o->feat[li] = H5Dopen2(o->file, name, H5P_DEFAULT);
        if (o->feat[li] < 0 && ok) ok = 0, h5_fail(o->err, sizeof(o->err), o->path, "cannot open dataset %s", name);
    }
    o->done = H5Dopen2(o->file, "/done", H5P_DEFAULT);
    if (o->done < 0 && ok) ok = 0, h5_fail(o->err, sizeof(o->err), o->path, "cannot open dataset /done");
    o->failed = H5Dopen2(o->file, "/failed", H5P_DEFAULT);
    if (o->failed < 0 && ok) ok = 0, h5_fail(o->err, sizeof(o->err), o->path, "cannot open dataset /failed");
    return agreed(o, ok);
}

// Closes everything (collective); 1, or 0 (agreed) with o->err when `report`
// (after a failure the close is only tidying: its verdict is not asked for,
// but every rank still waits for the others, so none is left in a collective).
static int close_out(Out *o, int report) {
    int ok = 1;
    for (int li = 0; li < o->n_layers; li++)
        if (o->feat[li] >= 0 && H5Dclose(o->feat[li]) < 0 && ok)
            ok = 0, h5_fail(o->err, sizeof(o->err), o->path, "cannot close dataset /features/layer_%02d", o->layers[li]);
    if (o->done >= 0 && H5Dclose(o->done) < 0 && ok)
        ok = 0, h5_fail(o->err, sizeof(o->err), o->path, "cannot close dataset /done");
    if (o->failed >= 0 && H5Dclose(o->failed) < 0 && ok)
        ok = 0, h5_fail(o->err, sizeof(o->err), o->path, "cannot close dataset /failed");
    if (o->dxpl >= 0) H5Pclose(o->dxpl);
    if (o->file >= 0 && H5Fclose(o->file) < 0 && ok)
        ok = 0, h5_fail(o->err, sizeof(o->err), o->path, "cannot close (the flush of HDF5's buffers to the file failed)");
    free(o->feat);
    o->feat = NULL, o->n_layers = 0, o->file = o->done = o->failed = o->dxpl = -1;
    if (!report) {
        char ignored[COMM_MSG_MAX] = "";
        comm_agree_msg(MPI_COMM_WORLD, 1, ignored, sizeof(ignored), comm_collective_timeout());
        return 1;
    }
    return agreed(o, ok);
}

// Sets entries `clips[0..n)` of a uint8 mask dataset to 1 (collective); 1, or
// 0 (agreed) with o->err.
static int mark(Out *o, hid_t ds, const char *name, const int *clips, int n) {
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
    const int ok = H5Dwrite(ds, H5T_NATIVE_UINT8, ms, fs, o->dxpl, ones) >= 0;
    if (!ok) h5_fail(o->err, sizeof(o->err), o->path, "cannot write %d entries of dataset %s", n, name);
    free(ones), free(pts);
    H5Sclose(ms), H5Sclose(fs);
    return agreed(o, ok);
}

// Writes the features of clips[0..n) (half bits, [n, T, N, d] per layer),
// one collective write per layer; 1, or 0 (agreed) with o->err.
static int write_features(Out *o, const Setup *su, const int *clips, int n, uint16_t *const *half) {
    const BackboneShape *sh = &su->sh;
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
        const int ok = H5Dwrite(o->feat[li], ht, ms, fs, o->dxpl, half[li]) >= 0;
        if (!ok)
            h5_fail(o->err, sizeof(o->err), o->path, "cannot write the features of %d clip%s (clip %d first, rank %d) "
                    "to dataset /features/layer_%02d", n, n == 1 ? "" : "s", n ? clips[0] : -1, world_rank(),
                    su->layers[li]);
        H5Tclose(ht), H5Sclose(ms), H5Sclose(fs);
        if (!agreed(o, ok)) return 0;
    }
    return 1;
}

// Everything written so far on disk (H5Fflush: HDF5's buffers, then
// MPI_File_sync, an fsync); 1, or 0 (agreed) with o->err.
static int flush_out(Out *o, const char *what) {
    const int ok = H5Fflush(o->file, H5F_SCOPE_GLOBAL) >= 0;
    if (!ok) h5_fail(o->err, sizeof(o->err), o->path, "cannot flush %s to disk (rank %d)", what, world_rank());
    return agreed(o, ok);
}

// A whole uint8 mask (independent read on every rank); 1, or 0 (agreed).
static int read_mask(Out *o, hid_t ds, const char *name, uint8_t *out) {
    const int ok = H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    if (!ok) h5_fail(o->err, sizeof(o->err), o->path, "cannot read dataset %s", name);
    return agreed(o, ok);
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
static void print_reasons(const Reason *mine, const ClipList *l, int me, int size) {
    Reason *all = me == 0 ? xmalloc(sizeof(Reason) * N_REASONS * (size_t)size) : NULL;
    MPI_Gather(mine, (int)sizeof(Reason) * N_REASONS, MPI_BYTE, all, (int)sizeof(Reason) * N_REASONS, MPI_BYTE, 0,
               MPI_COMM_WORLD);
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
static void say_failed(const Out *o, int me, int kept) {
    fprintf(stderr, "stsae: error (rank %d): extract: %s\n", me, o->err);
    fflush(stderr);
    if (me == 0 && kept)
        fprintf(stderr, "extract: the clips marked done in %s are on disk and kept; make room (or fix the cause) and "
                        "run the same command again to continue\n", o->path);
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
    ok = me != 0 || path_mkdirs(out_dir, err, sizeof(err)) == 0;
    if (!comm_agree(MPI_COMM_WORLD, ok, err)) {
        backbone_close(bb);
        return 1;
    }
    Out o;
    memset(&o, 0, sizeof(o));
    o.file = o.dxpl = o.done = o.failed = -1;
    o.path = partial;
    o.layers = su.layers;
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
    o.dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(o.dxpl, H5FD_MPIO_COLLECTIVE);
    const int resume = access(partial, F_OK) == 0;
    if (resume) {
        ok = reopen_file(&o, partial, &su, &l, H5F_ACC_RDWR, err, sizeof(err)) == 0;
        if (!comm_agree(MPI_COMM_WORLD, ok, err)) {
                return 1;
        }
    } else if (!create_file(&o, &su, &l, d, run_dir, me)) {
        // it holds no clip yet: removed, so that the next run starts afresh
        close_out(&o, 0);
        if (me == 0) unlink(partial);
        say_failed(&o, me, 0);
        backbone_close(bb);
        return 1;
    }
    uint8_t *done = xmalloc((size_t)l.n);
    if (!open_datasets(&o, &su) || !read_mask(&o, o.done, "/done", done)) {
        close_out(&o, 0);
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
        if (n_ok) backbone_forward(bb, pixels, n_ok, su.T_in, su.S, su.layers, su.n_layers, feat);
        double t1 = wall_time();
        t[X_FORWARD] += t1 - t0;
        for (int li = 0; li < su.n_layers; li++) float_to_half(feat[li], half[li], tok * (size_t)n_ok);
        // the features, then on disk, then the /done marks that say so: a
        // crash or a full disk in between costs recomputation, never a clip
        // marked done over features that are not there (the marks become
        // durable with the next flush)
        io_ok = write_features(&o, &su, ok_clips, n_ok, half) && flush_out(&o, "the features") &&
                mark(&o, o.done, "/done", ok_clips, n_ok) && mark(&o, o.failed, "/failed", bad_clips, n_bad);
        t[X_WRITE] += wall_time() - t1;
        if (!io_ok) break; // every rank: the verdicts were agreed
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
    // the last marks on disk; complete when every clip is done or failed
    uint8_t *failed = xmalloc((size_t)l.n);
    if (io_ok)
        io_ok = flush_out(&o, "the /done marks") && read_mask(&o, o.done, "/done", done) &&
                read_mask(&o, o.failed, "/failed", failed);
    if (io_ok) io_ok = close_out(&o, 1);
    else close_out(&o, 0);
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
            print_reasons(reasons, &l, me, size);
            if (me == 0) {
                fprintf(stderr, "extract: %s is kept and its failed clips are tried again on the next run: fix the "
                                "inputs (or raise extract.max_failed_frac) and run the same command again\n", partial);
                fflush(stderr);
            }
            rc = 1;
        } else if (complete) { // OUT.partial becomes OUT, durably
            ok = 1;
            if (me == 0 && rename(partial, out_path) != 0)
                ok = 0, snprintf(err, sizeof(err), "%s: cannot rename to %s: %s", partial, out_path, strerror(errno));
            else if (me == 0 && path_sync_dir(out_dir) != 0)
                ok = 0, snprintf(err, sizeof(err), "%s: cannot sync its directory %s to disk: %s", out_path, out_dir,
                                 strerror(errno));
            if (!comm_agree_msg(MPI_COMM_WORLD, ok, err, sizeof(err), 0)) {
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
        comm_stage_table(MPI_COMM_WORLD, XT_NAMES, t, N_XT);
    }
    if (me == 0 && stopped) stop_consume(run_dir);
    backbone_close(bb);
    if (pix_file >= 0) H5Dclose(pix_ds), H5Fclose(pix_file);
    for (int li = 0; li < su.n_layers; li++) free(feat[li]), free(half[li]);
    free(feat), free(half), free(pixels), free(ok_clips), free(bad_clips), free(mine), free(todo), free(done), free(failed);
    free(su.layers), free(out_path), free(out_dir), free(model_dir), free(pixels_file);
    inputs_free(&l);
    deck_free(d);
    return rc;
}
