// report.c — `stsae report RUN_DIR` (SPEC §6): the evaluations of a run
// gathered into results.h5, results.csv and results.md, then the plots.
//
// In:  RUN_DIR/raw/eval.h5 (raw_layerL/eval.h5 for each other layer the jobs
//      train on) and RUN_DIR/jobs/*/eval.h5 (eval.h), in the order of
//      the grid of RUN_DIR/train.yaml (the deck as trained, read once into
//      ReportOptions, options.h: the jobs, the feature file, the clip list
//      for the montages); an eval.h5 of another format_version than eval.h's
//      is refused (none: version 1).
// Out: results.csv: one row per job and one `raw` row per layer; the columns of SPEC §6
//      first, in its order, then every further metric (smoothing, retrieval of
//      reconstructions, lambda_s, T_s), empty where a metric does not apply.
//      results.h5: /columns, /rows (job names), /variants, /table [rows, cols]
//      (NaN: does not apply), the root attribute format_version (report.h),
//      and per row a group /per_latent/NAME with rho,
//      ms, top_clips, mean_clip_value, freq and mean_act (jobs) and the
//      activation timeline of one test clip (timeline [T, 8], timeline_latents). results.md: the paper's four
//      findings checked on the run (findings.h), the paper's tables 1-6
//      (mean ± std over seeds of each configuration) and the reconstruction /
//      coherence frontier; with several layers, those are of train.layer's
//      configurations and a last table compares the layers. Then
//      `analysis/plots.py RUN_DIR` draws the PNGs (skipped with a note where
//      Python or matplotlib is missing), and, unless the deck says
//      report.browse: false, the feature browser RUN_DIR/browser/ (browse.h).
// Under MPI, rank 0 writes the report and every rank exits with its status.
// Every file is written under a temporary name, synced and renamed, every
// return checked (paths.h, h5io.h): a full disk leaves no half file under a
// final name, and report exits 1 with the file and the reason.
#define _POSIX_C_SOURCE 200809L // strdup, popen
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/comm/comm.h"
#include "stsae/deck/options.h"
#include "stsae/io/features.h"
#include "stsae/io/h5io.h"
#include "stsae/io/video.h"
#include "stsae/sae/variants.h"
#include "stsae/stages/browse.h"
#include "stsae/stages/eval.h" // EVAL_FORMAT_VERSION
#include "stsae/stages/extract.h"
#include "stsae/stages/findings.h"
#include "stsae/stages/report.h"
#include "stsae/vit/preprocess.h"

static const char *const SPEC_COLUMNS[] = {
    "job", "variant", "lambda", "tau", "high_frac", "seed", "r2", "r2_clip", "lag1", "frac_lag1_below_0.3", "ms",
    "purity_mean", "purity_max", "probe", "probe_recon", "probe_high", "l0", "dead_frac", "jaccard", "ablate_top_10",
    "ablate_top_50", "ablate_top_100", "ablate_top_500", "ablate_rand_10", "ablate_rand_50", "ablate_rand_100",
    "ablate_rand_500", "r_at_1", "r_at_5", "train_tokens_per_s"};
#define N_SPEC ((int)(sizeof(SPEC_COLUMNS) / sizeof(*SPEC_COLUMNS)))

typedef struct {
    int n_cols, cap_cols;
    char **cols;    // numeric columns (SPEC order after job, variant; then the rest)
    int n_rows;
    char **job, **variant, **config, **path;
    double *v;      // [n_rows, MAX_COLS]
    char text_embedder[256]; // what made retrieval's label embeddings (eval.h5's text_embedder; "" none)
    char ms_embedder[400];   // the clip embeddings of MS (eval.h5's ms_embedder; "" unknown)
} Table;

#define MAX_COLS 96

static int col_index(Table *t, const char *name, int add) {
    for (int i = 0; i < t->n_cols; i++)
        if (!strcmp(t->cols[i], name)) return i;
    if (!add) return -1;
    if (t->n_cols == MAX_COLS) die("report: more than %d metric columns", MAX_COLS);
    t->cols[t->n_cols] = strdup(name);
    return t->n_cols++;
}

typedef struct {
    Table *t;
    int row;
} IterCtx;

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    IterCtx *c = data;
    if (!strcmp(name, "format_version")) return 0; // the file's, not a metric
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t ty = H5Aget_type(a);
    const H5T_class_t cls = H5Tget_class(ty);
    H5Tclose(ty);
    if (cls == H5T_FLOAT || cls == H5T_INTEGER) {
        double v;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) c->t->v[(size_t)c->row * MAX_COLS + col_index(c->t, name, 1)] = v;
    }
    H5Aclose(a);
    return 0;
}

static void add_row(Table *t, const char *path, const char *config) {
    hid_t f = h5_open_read(path);
    h5_check_format_version(f, path, EVAL_FORMAT_VERSION);
    const int r = t->n_rows++;
    char job[256], variant[64];
    h5_attr_str(f, path, "job", job, sizeof(job));
    h5_attr_str(f, path, "variant", variant, sizeof(variant));
    t->job[r] = strdup(job);
    t->variant[r] = strdup(variant);
    t->config[r] = strdup(config);
    t->path[r] = strdup(path);
    if (!t->text_embedder[0] && H5Aexists(f, "text_embedder") > 0)
        h5_attr_str(f, path, "text_embedder", t->text_embedder, sizeof(t->text_embedder));
    if (!t->ms_embedder[0] && H5Aexists(f, "ms_embedder") > 0)
        h5_attr_str(f, path, "ms_embedder", t->ms_embedder, sizeof(t->ms_embedder));
    for (int i = 0; i < MAX_COLS; i++) t->v[(size_t)r * MAX_COLS + i] = NAN;
    IterCtx c = {t, r};
    hsize_t idx = 0;
    H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &c);
    H5Fclose(f);
}

static double get(const Table *t, int r, const char *col) {
    for (int i = 0; i < t->n_cols; i++)
        if (!strcmp(t->cols[i], col)) return t->v[(size_t)r * MAX_COLS + i];
    return NAN;
}

// The columns: SPEC's numeric ones first (in order), then the others by name.
static int *column_order(const Table *t, int *n) {
    int *o = xmalloc(sizeof(int) * (size_t)(t->n_cols + 1));
    uint8_t *used = xcalloc((size_t)t->n_cols + 1, 1);
    *n = 0;
    for (int s = 2; s < N_SPEC; s++)
        for (int i = 0; i < t->n_cols; i++)
            if (!strcmp(t->cols[i], SPEC_COLUMNS[s])) o[(*n)++] = i, used[i] = 1;
    for (;;) { // the rest, alphabetically
        int best = -1;
        for (int i = 0; i < t->n_cols; i++)
            if (!used[i] && (best < 0 || strcmp(t->cols[i], t->cols[best]) < 0)) best = i;
        if (best < 0) break;
        o[(*n)++] = best;
        used[best] = 1;
    }
    free(used);
    return o;
}

// results.csv; 0, or -1 with the file and the reason in err.
static int write_csv(const Table *t, const char *path, char *err, size_t cap) {
    char tmp[4200];
    FILE *fp = path_tmp_open(path, tmp, sizeof(tmp), err, cap);
    if (!fp) return -1;
    int n;
    int *o = column_order(t, &n);
    // every SPEC column appears, empty where no row has it
    fprintf(fp, "job,variant");
    for (int s = 2; s < N_SPEC; s++) fprintf(fp, ",%s", SPEC_COLUMNS[s]);
    for (int i = 0; i < n; i++) {
        int spec = 0;
        for (int s = 2; s < N_SPEC && !spec; s++) spec = !strcmp(t->cols[o[i]], SPEC_COLUMNS[s]);
        if (!spec) fprintf(fp, ",%s", t->cols[o[i]]);
    }
    fprintf(fp, "\n");
    for (int r = 0; r < t->n_rows; r++) {
        fprintf(fp, "%s,%s", t->job[r], t->variant[r]);
        for (int s = 2; s < N_SPEC; s++) {
            const double v = get(t, r, SPEC_COLUMNS[s]);
            if (isnan(v)) fprintf(fp, ",");
            else fprintf(fp, ",%.6g", v);
        }
        for (int i = 0; i < n; i++) {
            int spec = 0;
            for (int s = 2; s < N_SPEC && !spec; s++) spec = !strcmp(t->cols[o[i]], SPEC_COLUMNS[s]);
            if (spec) continue;
            const double v = t->v[(size_t)r * MAX_COLS + o[i]];
            if (isnan(v)) fprintf(fp, ",");
            else fprintf(fp, ",%.6g", v);
        }
        fprintf(fp, "\n");
    }
    free(o);
    return path_tmp_commit(fp, tmp, path, err, cap);
}

// --- montages -------------------------------------------------------------------

#define MONTAGE_PX 96
#define MONTAGE_LATENTS 2

// For the first seed of standard, temporal and temporal+M (the first
// configuration of each found), the MONTAGE_LATENTS latents with the largest
// mean clip value: the middle frame of each of their top-8 test clips, from
// the videos, resized to MONTAGE_PX square. Written to results.h5 /montage
// (frames uint8 [F, 8, px, px, 3], jobs, latents) for analysis/plots.py.
// Skipped, with a note, when the videos cannot be found (a pixels input, or
// no extract section in the deck).
static void write_montage(const Table *t, const ReportOptions *o, const char *run_dir, H5W *w) {
    if (!o->has_extract || o->input.kind == EXTRACT_PIXELS) {
        printf("report: no montages (the deck names no videos)\n");
        return;
    }
    char err[2048];
    ClipList l;
    char *pixels = NULL;
    if (extract_clip_list(&o->input, run_dir, &l, &pixels, err, sizeof(err)) != 0) {
        printf("report: no montages (%s)\n", err);
        return;
    }
    char *feat_path = path_join(run_dir, o->features);
    FeatureFile ff;
    if (features_open(&ff, feat_path, o->layer, err, sizeof(err)) != 0) {
        printf("report: no montages (%s)\n", err);
        inputs_free(&l);
        free(feat_path);
        return;
    }
    int32_t *test = NULL;
    const int n_test = features_clips(&ff, 1, &test);
    const char *const want[] = {"standard", "temporal", "temporal+M"};
    int rows[3], n_rows = 0;
    for (int w = 0; w < 3; w++)
        for (int r = 0; r < t->n_rows; r++)
            if (!strcmp(t->variant[r], want[w])) {
                rows[n_rows++] = r;
                break;
            }
    const size_t frame = (size_t)MONTAGE_PX * MONTAGE_PX * 3;
    uint8_t *frames = xcalloc((size_t)n_rows * MONTAGE_LATENTS * 8 * frame + 1, 1);
    char **jobs = xcalloc((size_t)n_rows * MONTAGE_LATENTS + 1, sizeof(char *));
    double *lat = xcalloc((size_t)n_rows * MONTAGE_LATENTS + 1, sizeof(double));
    const Preprocess pp = preprocess_square(MONTAGE_PX);
    int n_f = 0;
    for (int i = 0; i < n_rows; i++) {
        const char *src = t->path[rows[i]];
        hid_t f = h5_open_read(src);
        hsize_t dm[1], dt[2];
        float *mean = h5_read_f32(f, src, "mean_clip_value", 1, dm);
        float *top = h5_read_f32(f, src, "top_clips", 2, dt);
        H5Fclose(f);
        for (int q = 0; q < MONTAGE_LATENTS; q++) {
            int best = -1;
            for (int j = 0; j < (int)dm[0]; j++) {
                int taken = 0;
                for (int p = 0; p < n_f; p++) taken |= !strcmp(jobs[p], t->job[rows[i]]) && (int)lat[p] == j;
                if (!taken && (best < 0 || mean[j] > mean[best])) best = j;
            }
            jobs[n_f] = t->job[rows[i]];
            lat[n_f] = best;
            for (int c = 0; c < 8; c++) {
                const int tc = (int)top[(size_t)best * 8 + c];
                if (tc < 0 || tc >= n_test) continue;
                const char *id = ff.clip_ids[test[tc]];
                for (int e = 0; e < l.n; e++) {
                    if (strcmp(l.clip[e].clip_id, id)) continue;
                    VideoClip v;
                    if (video_read(l.clip[e].path, 1, VIDEO_HOLD_BYTES, &v, err, sizeof(err)) == 0) {
                        preprocess_resize_crop(&pp, v.rgb, v.width, v.height,
                                               frames + ((size_t)n_f * 8 + (size_t)c) * frame);
                        video_clip_free(&v);
                    }
                    break;
                }
            }
            n_f++;
        }
        free(mean), free(top);
    }
    if (n_f) {
        hsize_t dims[5] = {(hsize_t)n_f, 8, MONTAGE_PX, MONTAGE_PX, 3}, dn[1] = {(hsize_t)n_f};
        h5w_u8(w, "montage/frames", frames, 5, dims);
        h5w_f64(w, "montage/latents", lat, 1, dn);
        h5w_strings(w, "montage/jobs", jobs, (size_t)n_f);
    }
    free(frames), free(jobs), free(lat), free(test), free(feat_path), free(pixels);
    features_close(&ff);
    inputs_free(&l);
}

// results.h5; 0, or -1 with the file, the object and the reason in err.
static int write_h5(const Table *t, const char *path, const ReportOptions *ro, const char *run_dir, char *err,
                    size_t cap) {
    H5W w;
    if (h5w_create(&w, path) != 0) return errorf(err, cap, "%s", w.err);
    h5w_format_version(&w, RESULTS_FORMAT_VERSION);
    int n;
    int *o = column_order(t, &n);
    char **names = xmalloc(sizeof(char *) * (size_t)(n + 1));
    double *tab = xmalloc(sizeof(double) * (size_t)(t->n_rows * n + 1));
    for (int i = 0; i < n; i++) names[i] = t->cols[o[i]];
    for (int r = 0; r < t->n_rows; r++)
        for (int i = 0; i < n; i++) tab[(size_t)r * n + i] = t->v[(size_t)r * MAX_COLS + o[i]];
    h5w_strings(&w, "columns", names, (size_t)n);
    h5w_strings(&w, "rows", t->job, (size_t)t->n_rows);
    h5w_strings(&w, "variants", t->variant, (size_t)t->n_rows);
    hsize_t dims[2] = {(hsize_t)t->n_rows, (hsize_t)n};
    h5w_f64(&w, "table", tab, 2, dims);
    // per-latent arrays of every row
    static const char *const arrays[] = {"rho",      "ms",       "top_clips", "mean_clip_value", "timeline",
                                         "timeline_latents", "freq", "mean_act"};
    static const int ranks[] = {1, 1, 2, 1, 2, 1, 1, 1};
    for (int r = 0; r < t->n_rows && !w.failed; r++) {
        hid_t src = h5_open_read(t->path[r]);
        for (size_t a = 0; a < sizeof(arrays) / sizeof(*arrays); a++) {
            if (!h5_exists(src, arrays[a])) continue;
            char dst[512];
            snprintf(dst, sizeof(dst), "per_latent/%s/%s", t->job[r], arrays[a]);
            hsize_t dims2[2];
            const int rank = ranks[a];
            float *x = h5_read_f32(src, t->path[r], arrays[a], rank, dims2);
            h5w_f32(&w, dst, x, rank, dims2);
            free(x);
        }
        H5Fclose(src);
    }
    if (!w.failed) write_montage(t, ro, run_dir, &w);
    free(o), free(names), free(tab);
    return h5w_commit(&w, err, cap);
}

// --- results.md ---------------------------------------------------------------

// A configuration: the rows of one job name without its seed suffix.
typedef struct {
    char name[200];
    char variant[64];
    int rows[64];
    int n;
} Config;

static int configs_of(const Table *t, Config *c, int cap) {
    int n = 0;
    for (int r = 0; r < t->n_rows; r++) {
        int i = 0;
        while (i < n && strcmp(c[i].name, t->config[r])) i++;
        if (i == n) {
            if (n == cap) break;
            snprintf(c[n].name, sizeof(c[n].name), "%s", t->config[r]);
            snprintf(c[n].variant, sizeof(c[n].variant), "%s", t->variant[r]);
            c[n++].n = 0;
        }
        if (c[i].n < 64) c[i].rows[c[i].n++] = r;
    }
    return n;
}

static void stats(const Table *t, const Config *c, const char *col, double *mean, double *sd) {
    double s = 0, s2 = 0;
    int k = 0;
    for (int i = 0; i < c->n; i++) {
        const double v = get(t, c->rows[i], col);
        if (isnan(v)) continue;
        s += v, s2 += v * v, k++;
    }
    *mean = k ? s / k : NAN;
    *sd = k > 1 ? sqrt(fmax(s2 / k - (s / k) * (s / k), 0.0) * k / (k - 1)) : NAN;
}

static void cell(FILE *fp, const Table *t, const Config *c, const char *col, double scale) {
    double m, s;
    stats(t, c, col, &m, &s);
    if (isnan(m)) fprintf(fp, " – |");
    else if (isnan(s)) fprintf(fp, " %.3f |", m * scale);
    else fprintf(fp, " %.3f ± %.3f |", m * scale, s * scale);
}

static void header(FILE *fp, const char *first, const char *const *cols, int n) {
    fprintf(fp, "| %s |", first);
    for (int i = 0; i < n; i++) fprintf(fp, " %s |", cols[i]);
    fprintf(fp, "\n|---|");
    for (int i = 0; i < n; i++) fprintf(fp, "---|");
    fprintf(fp, "\n");
}

static void table_rows(FILE *fp, const Table *t, const Config *c, const int *which, int nw, const char *const *cols,
                       int n) {
    for (int w = 0; w < nw; w++) {
        fprintf(fp, "| %s |", c[which[w]].name);
        for (int i = 0; i < n; i++) cell(fp, t, &c[which[w]], cols[i], 1.0);
        fprintf(fp, "\n");
    }
}

// Per variant, the configuration with the best mean of `col` (raw first).
static int best_per_variant(const Table *t, const Config *c, int nc, const char *col, int *out) {
    int n = 0;
    for (int i = 0; i < nc; i++) {
        int seen = 0;
        for (int q = 0; q < n && !seen; q++) seen = !strcmp(c[out[q]].variant, c[i].variant);
        if (seen) continue;
        int best = i;
        double bm, sd;
        stats(t, &c[i], col, &bm, &sd);
        for (int j = i + 1; j < nc; j++) {
            if (strcmp(c[j].variant, c[i].variant)) continue;
            double m;
            stats(t, &c[j], col, &m, &sd);
            if (!isnan(m) && (isnan(bm) || m > bm)) best = j, bm = m;
        }
        out[n++] = best;
    }
    return n;
}

// A configuration's layer (NAN: its eval.h5 predates the column).
static double layer_of(const Table *t, const Config *c) { return get(t, c->rows[0], "layer"); }

// The distinct layers of the configurations, ascending, into out; how many.
static int layers_of(const Table *t, const Config *c, int nc, int *out) {
    int n = 0;
    for (int i = 0; i < nc; i++) {
        const double l = layer_of(t, &c[i]);
        int seen = isnan(l);
        for (int q = 0; q < n && !seen; q++) seen = out[q] == (int)l;
        if (seen) continue;
        int q = n++;
        for (; q > 0 && out[q - 1] > (int)l; q--) out[q] = out[q - 1];
        out[q] = (int)l;
    }
    return n;
}

// The layer analysis (a run whose jobs train on several layers): every
// configuration, layer by layer (its raw row first).
static void write_layer_table(FILE *fp, const Table *t, const Config *c, int nc, const int *layers, int nl) {
    static const char *const tl[] = {"layer", "r2", "lag1", "ms", "probe", "r_at_1"};
    fprintf(fp, "\n## Layers: the raw features and every configuration at each layer\n\n");
    header(fp, "configuration", tl, 6);
    int *at = xmalloc(sizeof(int) * (size_t)(nc ? nc : 1));
    for (int q = 0; q < nl; q++) {
        int n = 0;
        for (int i = 0; i < nc; i++)
            if (layer_of(t, &c[i]) == layers[q]) at[n++] = i;
        table_rows(fp, t, c, at, n, tl, 6);
    }
    free(at);
}

// results.md; 0, or -1 with the file and the reason in err. With several
// layers, the findings and tables 1-6 are of main_layer's configurations
// (train.layer: the paper's main results are of one layer) and a last table
// compares the layers.
static int write_md(const Table *t, const char *path, const char *run_dir, int main_layer, char *err, size_t cap) {
    char tmp[4200];
    FILE *fp = path_tmp_open(path, tmp, sizeof(tmp), err, cap);
    if (!fp) return -1;
    Config *every = xmalloc(sizeof(Config) * 512), *c = xmalloc(sizeof(Config) * 512);
    const int n_every = configs_of(t, every, 512);
    int layers[512];
    const int nl = layers_of(t, every, n_every, layers);
    int nc = 0;
    for (int i = 0; i < n_every; i++)
        if (nl < 2 || layer_of(t, &every[i]) == main_layer) c[nc++] = every[i];
    int *best = xmalloc(sizeof(int) * 512), *all = xmalloc(sizeof(int) * 512);
    const int nb = best_per_variant(t, c, nc, "probe", best);
    for (int i = 0; i < nc; i++) all[i] = i;
    fprintf(fp, "# stsae results: %s\n\n%d rows (%d configurations; mean ± std over seeds). Columns as in "
                "results.csv; SPEC §2 defines every metric. Per variant, the configuration with the best probe "
                "accuracy stands for it in tables 1-5.",
            run_dir, t->n_rows, n_every);
    if (nl > 1) {
        fprintf(fp, " The jobs train on %d layers (", nl);
        for (int q = 0; q < nl; q++) fprintf(fp, "%s%d", q ? ", " : "", layers[q]);
        fprintf(fp, "): the findings and tables 1-6 are of layer %d (train.layer), the last table compares the "
                    "layers.", main_layer);
    }
    fprintf(fp, "\n\n");
    ConfigSummary *sum = xmalloc(sizeof(ConfigSummary) * (size_t)(nc ? nc : 1));
    for (int i = 0; i < nc; i++) {
        double sd;
        sum[i].name = c[i].name;
        sum[i].variant = c[i].variant;
        stats(t, &c[i], "lambda", &sum[i].lambda, &sd);
        stats(t, &c[i], "r2", &sum[i].r2, &sd);
        stats(t, &c[i], "lag1", &sum[i].lag1, &sd);
        stats(t, &c[i], "probe", &sum[i].probe, &sd);
        stats(t, &c[i], "r_at_1", &sum[i].r_at_1, &sd);
    }
    findings_write(fp, sum, nc);
    free(sum);

    static const char *const t1[] = {"ms", "purity_mean", "purity_max", "jaccard"};
    fprintf(fp, "## Table 1: MonoSemanticity and action purity\n\n");
    if (t->ms_embedder[0]) fprintf(fp, "MS's clip similarity: %s.\n\n", t->ms_embedder);
    header(fp, "configuration", t1, 4);
    table_rows(fp, t, c, best, nb, t1, 4);

    static const char *const t2[] = {"lag1", "frac_lag1_below_0.3", "lag1_ema0.5", "lag1_ema0.8", "lag1_union"};
    fprintf(fp, "\n## Table 2: temporal coherence (lag-1; post-hoc smoothing of the standard SAE)\n\n");
    header(fp, "configuration", t2, 5);
    table_rows(fp, t, c, best, nb, t2, 5);

    static const char *const t3[] = {"r2", "r2_clip", "lag1", "ms", "purity_mean", "probe", "probe_recon",
                                     "probe_high", "l0", "dead_frac"};
    fprintf(fp, "\n## Table 3: the best configuration per variant\n\n");
    header(fp, "configuration", t3, 10);
    table_rows(fp, t, c, best, nb, t3, 10);

    static const char *const t4[] = {"probe", "ablate_top_10", "ablate_top_50", "ablate_top_100", "ablate_top_500",
                                     "ablate_rand_10", "ablate_rand_50", "ablate_rand_100", "ablate_rand_500"};
    fprintf(fp, "\n## Table 4: causal ablation (probe accuracy with the top-n latents by probe-weight norm, or n "
                "random ones, zeroed)\n\n");
    header(fp, "configuration", t4, 9);
    table_rows(fp, t, c, best, nb, t4, 9);

    static const char *const t5[] = {"r_at_1", "r_at_5", "r_at_1_recon", "r_at_5_recon"};
    fprintf(fp, "\n## Table 5: text-video retrieval (ridge to the label text embeddings: %s)\n\n",
            t->text_embedder[0] ? t->text_embedder : "none in this run");
    header(fp, "configuration", t5, 4);
    table_rows(fp, t, c, best, nb, t5, 4);

    static const char *const t6[] = {"T_s", "l0", "r2", "lag1", "probe"};
    int *soft = xmalloc(sizeof(int) * 512), ns = 0;
    for (int i = 0; i < nc; i++)
        if (sae_variant_find(c[i].variant) && sae_variant_uses(sae_variant_find(c[i].variant), SAE_USES_T_S))
            soft[ns++] = i; // the variants with a temperature T_s (sparsemax, entmax15)
    fprintf(fp, "\n## Table 6: soft sparsity (sparsemax / entmax-1.5) by temperature T_s\n\n");
    if (ns) {
        header(fp, "configuration", t6, 5);
        table_rows(fp, t, c, soft, ns, t6, 5);
    } else {
        fprintf(fp, "(no sparsemax or entmax15 job in this run)\n");
    }

    // the frontier: configurations no other beats on both R^2 and lag-1
    static const char *const tf[] = {"r2", "lag1", "probe"};
    int *front = xmalloc(sizeof(int) * 512), nf = 0;
    for (int i = 0; i < nc; i++) {
        double ri, li, rj, lj, sd;
        stats(t, &c[i], "r2", &ri, &sd);
        stats(t, &c[i], "lag1", &li, &sd);
        if (isnan(ri) || isnan(li)) continue;
        int dominated = 0;
        for (int j = 0; j < nc && !dominated; j++) {
            if (j == i) continue;
            stats(t, &c[j], "r2", &rj, &sd);
            stats(t, &c[j], "lag1", &lj, &sd);
            dominated = rj >= ri && lj >= li && (rj > ri || lj > li);
        }
        if (!dominated) front[nf++] = i;
    }
    fprintf(fp, "\n## Reconstruction / coherence frontier (configurations not beaten on both R² and lag-1)\n\n");
    header(fp, "configuration", tf, 3);
    table_rows(fp, t, c, front, nf, tf, 3);

    fprintf(fp, "\n## Every configuration\n\n");
    header(fp, "configuration", t3, 10);
    table_rows(fp, t, c, all, nc, t3, 10);
    if (nl > 1) write_layer_table(fp, t, every, n_every, layers, nl);
    free(every), free(c), free(best), free(all), free(soft), free(front);
    return path_tmp_commit(fp, tmp, path, err, cap);
}

// The plots: analysis/plots.py beside the sources (STSAE_ANALYSIS overrides).
static void run_plots(const char *run_dir) {
    const char *dir = getenv("STSAE_ANALYSIS") ? getenv("STSAE_ANALYSIS") : STSAE_SOURCE_DIR "/analysis";
    char *script = path_join(dir, "plots.py");
    if (access(script, R_OK) != 0) {
        printf("report: no plots (%s not found; set STSAE_ANALYSIS to the analysis/ directory)\n", script);
        free(script);
        return;
    }
    char cmd[9000];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s'", script, run_dir);
    const int rc = system(cmd);
    if (rc != 0) printf("report: the plots failed (%s exited %d); the tables are written\n", script, rc);
    free(script);
}

static int report_write(int argc, char **argv) {
    if (argc != 1) die("usage: stsae report RUN_DIR");
    const char *run_dir = argv[0];
    Table t;
    memset(&t, 0, sizeof(t));
    t.cols = xcalloc(MAX_COLS, sizeof(char *));
    // rows: raw, then the jobs in grid order (from the deck as trained)
    char *saved = path_join(run_dir, "train.yaml");
    char err[1024];
    ReportOptions ro;
    if (report_options_load(saved, &ro, err, sizeof(err)) != 0) die("%s (report needs the deck saved by stsae train)", err);
    const JobList *jobs = ro.jobs;
    // the raw rows: train.layer's (`raw`), then each other layer a job trains on (`raw_layerL`)
    int *raw_layer = xmalloc(sizeof(int) * (size_t)(jobs->n + 1)), n_raw = 0;
    raw_layer[n_raw++] = ro.layer;
    for (int i = 0; i < jobs->n; i++) {
        int seen = 0;
        for (int q = 0; q < n_raw && !seen; q++) seen = raw_layer[q] == jobs->job[i].layer;
        if (!seen) raw_layer[n_raw++] = jobs->job[i].layer;
    }
    const int cap = jobs->n + n_raw;
    t.job = xcalloc((size_t)cap, sizeof(char *));
    t.variant = xcalloc((size_t)cap, sizeof(char *));
    t.config = xcalloc((size_t)cap, sizeof(char *));
    t.path = xcalloc((size_t)cap, sizeof(char *));
    t.v = xmalloc(sizeof(double) * (size_t)cap * MAX_COLS);
    int missing = 0;
    for (int i = -n_raw; i < jobs->n; i++) {
        char sub[300], config[200];
        if (i == -n_raw) snprintf(config, sizeof(config), "raw");
        else if (i < 0) snprintf(config, sizeof(config), "raw_layer%d", raw_layer[i + n_raw]);
        else snprintf(config, sizeof(config), "%s", jobs->job[i].name);
        if (i < 0) snprintf(sub, sizeof(sub), "%s/eval.h5", config);
        else snprintf(sub, sizeof(sub), "jobs/%s/eval.h5", jobs->job[i].name);
        char *p = path_join(run_dir, sub);
        if (access(p, F_OK) == 0) {
            char *seed = i < 0 ? NULL : strstr(config, "_seed");
            if (seed) *seed = 0;
            add_row(&t, p, config);
        } else {
            missing++;
        }
        free(p);
    }
    if (t.n_rows == 0) die("%s: no evaluation found (run stsae eval first)", run_dir);
    char *csv = path_join(run_dir, "results.csv"), *h5 = path_join(run_dir, "results.h5"),
         *md = path_join(run_dir, "results.md");
    // each file whole and on disk, or none under its name; a failure (a full
    // disk) is one message naming the file and the reason, and exit status 1
    char werr[8704];
    int ok = write_csv(&t, csv, werr, sizeof(werr)) == 0 && write_h5(&t, h5, &ro, run_dir, werr, sizeof(werr)) == 0 &&
                   write_md(&t, md, run_dir, ro.layer, werr, sizeof(werr)) == 0;
    if (ok) {
        printf("report: %d rows (%d jobs not evaluated) -> %s, %s, %s\n", t.n_rows, missing, md, csv, h5);
        fflush(stdout);
        run_plots(run_dir);
        if (ro.browse && browse_write(run_dir) != 0) ok = 0; // it printed why
    } else {
        fprintf(stderr, "stsae: error: report: %s\n", werr);
        fflush(stderr);
    }
    for (int r = 0; r < t.n_rows; r++) free(t.job[r]), free(t.variant[r]), free(t.config[r]), free(t.path[r]);
    for (int i = 0; i < t.n_cols; i++) free(t.cols[i]);
    free(t.cols), free(t.job), free(t.variant), free(t.config), free(t.path), free(t.v);
    free(csv), free(h5), free(md), free(saved), free(raw_layer);
    report_options_free(&ro);
    return ok ? 0 : 1;
}

// The report is one process's work: under MPI rank 0 writes it (several ranks
// would race for the same temporary names) and every rank returns its status.
int report_main(int argc, char **argv) {
    Comm *world = comm_world();
    int rc = 0;
    if (comm_rank(world) == 0) rc = report_write(argc, argv);
    comm_bcast(world, &rc, 1, COMM_I32, 0, NULL);
    return rc;
}
