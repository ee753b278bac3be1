// browse.c — `stsae browse RUN_DIR` (SPEC §6; also run by `stsae report`):
// a static, offline HTML feature browser of a run under RUN_DIR/browser/,
// for looking at what makes a latent fire, where in the frame, and whether
// it flickers.
//
// In:  RUN_DIR/results.h5 (report.h: the results table, and per job
//      /per_latent/JOB: rho, ms, top_clips [m, 8] (test-clip indices),
//      mean_clip_value, freq and mean_act), RUN_DIR/train.yaml (the grid, the
//      feature file, the clip list, report.browse_latents), each job's
//      RUN_DIR/jobs/JOB/model.h5, the feature file (the test clips' tokens,
//      labels, label names; attributes T, H, W, T_in, backbone), and the
//      videos, decoded again here for the frames.
// Out: browser/index.html   the run: the results table, each job linked;
//      browser/compare.html the same test clips under two jobs side by side
//                           (the first seed of standard and of temporal+M,
//                           else the first two variants): the paper's
//                           Figure 2, flicker against stable activations;
//      browser/JOB/index.html every live latent of the job in one sortable,
//                           filterable table (frequency, mean activation,
//                           lag-1, MS, purity and dominant label of its top-8
//                           clips, mean clip value; +M's high-level group
//                           marked);
//      browser/JOB/latent_NNNNN.html for the report.browse_latents live
//                           latents with the largest mean clip value: each
//                           top clip as a frame strip, twice: its frames, and
//                           the same frames under the latent's activation of
//                           each patch (JOB/img/cCCCCC_lNNNNN.png: one RGBA
//                           pixel per token, drawn over the frames stretched
//                           and unsmoothed, one colour scale per latent); its
//                           activation over the steps at its peak patch and
//                           the largest over the patches (inline SVG: the
//                           flicker, visible); the label histogram of the top
//                           clips; and the nearest latents by decoder cosine;
//      browser/frames/cCCCCC.jpg the frames of test clip CCCCC's T steps in a row
//                           (written once, shown by every job);
//      browser/style.css, browser/browse.js.
// Activations are the codes as stsae computes them (features_read_tokens at
// the job's input scale, sae_encode with its BatchTopK threshold): the same
// numbers as eval's. Frames: the clip's video read with T_in frames sampled
// as extract samples them (video.h), step t showing the middle frame of its
// tubelet, resized and cropped with the backbone's geometry (its short side
// to crop ratio) to the backbone's frame size or ~112 px if smaller, a whole
// number of pixels per patch, so that the token grid lies on the frame as
// the backbone saw it. Without videos (a pixels input, a missing file) the
// frames are grey and the page says why.
//
// Size: pages are text (a job's table ~150 bytes per live latent, a latent
// page ~10 kB); a heat map is a PNG of T x N pixels (~0.1-2 kB); a clip's
// frames, one JPEG of T frames (~3-6 kB per frame of 112 px), are written
// once whatever the number of jobs: at most the test clips, in practice the
// union of the top-8 clips of the pages. The total is printed at the end
// (the demo: 12 jobs x 16 pages, ~10 MB).
//
// Rank 0 writes (report_main's pattern); a failed write is one message
// naming the file and the reason, and exit status 1 on every rank. The
// browser is written whole under RUN_DIR/browser.partial and then takes
// browser/'s place (paths.h's path_replace_dir): a reader sees the previous
// browser or the new one, never a mix, and a browser of fewer pages leaves no
// stale page behind.
#define _POSIX_C_SOURCE 200809L
#include "stsae/stages/browse.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "browse_html.h"
#include "stsae/base/common.h"
#include "stsae/base/paths.h"
#include "stsae/base/progress.h"
#include "stsae/comm/comm.h"
#include "stsae/deck/options.h"
#include "stsae/io/features.h"
#include "stsae/io/h5io.h"
#include "stsae/io/model.h"
#include "stsae/io/video.h"
#include "stsae/sae/sae.h"
#include "stsae/stages/extract.h"
#include "stsae/stages/report.h" // RESULTS_FORMAT_VERSION
#include "stsae/vit/preprocess.h"

#define TOP 8                 // top clips per latent (eval's top_clips)
#define NEAREST 8             // nearest latents by decoder cosine
#define COMPARE_CLIPS 3       // test clips of compare.html
#define COMPARE_LATENTS 4     // latents per job and clip there
#define FRAME_PX 112          // display frame size aimed at
#define SHOW_PX 96            // smaller frames are shown enlarged to this
#define COMPARE_PX 560        // the width of a clip in a column of compare.html
#define JPEG_QSCALE 4

// --- results.h5 ----------------------------------------------------------------------

typedef struct {
    int n_cols, n_rows;
    char **cols, **rows, **variants;
    float *table; // [n_rows, n_cols]
} Results;

static void results_read(const char *path, Results *r) {
    hid_t f = h5_open_read(path);
    h5_check_format_version(f, path, RESULTS_FORMAT_VERSION);
    r->cols = h5_read_strings(f, path, "columns", &r->n_cols);
    r->rows = h5_read_strings(f, path, "rows", &r->n_rows);
    int nv;
    r->variants = h5_read_strings(f, path, "variants", &nv);
    hsize_t dims[2];
    r->table = h5_read_f32(f, path, "table", 2, dims);
    if (nv != r->n_rows || dims[0] != (hsize_t)r->n_rows || dims[1] != (hsize_t)r->n_cols)
        die("%s: /table is %llux%llu for %d rows and %d columns", path, (unsigned long long)dims[0],
            (unsigned long long)dims[1], r->n_rows, r->n_cols);
    H5Fclose(f);
}

static void results_free(Results *r) {
    for (int i = 0; i < r->n_cols; i++) free(r->cols[i]);
    for (int i = 0; i < r->n_rows; i++) free(r->rows[i]), free(r->variants[i]);
    free(r->cols), free(r->rows), free(r->variants), free(r->table);
}

static double result(const Results *r, int row, const char *col) {
    for (int c = 0; c < r->n_cols; c++)
        if (!strcmp(r->cols[c], col)) return r->table[(size_t)row * r->n_cols + c];
    return NAN;
}

// The size of a file just written (0 if it cannot be seen).
static uint64_t file_bytes(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

// --- frames from the videos ------------------------------------------------------------

typedef struct {
    ClipList list;
    int have_list;
    char why[1200];       // why there are no frames ("" while there may be)
    Preprocess pp;        // the backbone's geometry at px
    int px, T, T_in;
    int n_test;
    const int32_t *test;  // test-clip index -> clip of the feature file
    char *const *ids;     // the feature file's clip ids
    uint8_t *written;     // [n_test] browser/frames/cCCCCC.jpg is written
    char **fail;          // [n_test] why a clip's video could not be read
} Frames;

static int by_id(const void *a, const void *b) {
    return strcmp(((const ClipEntry *)a)->clip_id, ((const ClipEntry *)b)->clip_id);
}

static void frames_init(Frames *fr, const ReportOptions *ro, const char *run_dir, const FeatureFile *ff,
                        const int32_t *test, int n_test) {
    memset(fr, 0, sizeof(*fr));
    fr->T = ff->T;
    fr->T_in = (int)h5_attr_int_opt(ff->file, ff->path, "T_in", 1, 1 << 20, ff->T); // files not made by extract
    // the backbone's own frame size, at most ~FRAME_PX, a whole number of pixels per patch
    const int size = (int)h5_attr_int_opt(ff->file, ff->path, "image_size", 1, 1 << 20, FRAME_PX);
    fr->px = ff->H * (int)lround((double)(size < FRAME_PX ? size : FRAME_PX) / ff->H);
    if (fr->px < ff->H) fr->px = ff->H;
    char bb[256] = "";
    if (H5Aexists(ff->file, "backbone") > 0) h5_attr_str(ff->file, ff->path, "backbone", bb, sizeof(bb));
    // the backbone's crop geometry (preprocess.h) at the display size
    const Preprocess ref = !strcmp(bb, "dinov2") ? preprocess_dinov2() : !strcmp(bb, "videomae") ? preprocess_videomae()
                                                                                                 : preprocess_square(fr->px);
    fr->pp = ref;
    fr->pp.crop = fr->px;
    fr->pp.short_side = (int)lround((double)ref.short_side * fr->px / ref.crop);
    fr->test = test, fr->n_test = n_test, fr->ids = ff->clip_ids;
    fr->written = xcalloc((size_t)n_test + 1, 1);
    fr->fail = xcalloc((size_t)n_test + 1, sizeof(char *));
    char *pixels = NULL;
    if (!ro->has_extract) snprintf(fr->why, sizeof(fr->why), "the deck names no videos (no extract section)");
    else if (ro->input.kind == EXTRACT_PIXELS) snprintf(fr->why, sizeof(fr->why), "the input is a pixels file, not videos");
    else if (extract_clip_list(&ro->input, run_dir, &fr->list, &pixels, fr->why, sizeof(fr->why)) == 0) {
        fr->have_list = 1;
        qsort(fr->list.clip, (size_t)fr->list.n, sizeof(ClipEntry), by_id);
    }
    free(pixels);
}

static void frames_free(Frames *fr) {
    for (int i = 0; i < fr->n_test; i++) free(fr->fail[i]);
    free(fr->written), free(fr->fail);
    if (fr->have_list) inputs_free(&fr->list);
}

// The picture of test clip tc's frames, [px, T px, 3], a dark line between
// frames; grey frames, with the reason in fr->fail[tc] (or fr->why), when
// its video cannot be read.
static uint8_t *frames_picture(Frames *fr, int tc) {
    const int px = fr->px, w = fr->T * px;
    uint8_t *pic = xmalloc((size_t)w * px * 3);
    memset(pic, 128, (size_t)w * px * 3);
    VideoClip v;
    char err[2048];
    const ClipEntry key = {.clip_id = fr->ids[fr->test[tc]]};
    const ClipEntry *e = fr->have_list ? bsearch(&key, fr->list.clip, (size_t)fr->list.n, sizeof(ClipEntry), by_id) : NULL;
    if (fr->have_list && !e) {
        snprintf(err, sizeof(err), "clip %s is not in the deck's clip list", key.clip_id);
        fr->fail[tc] = strdup(err);
    } else if (e && video_read(e->path, fr->T_in, VIDEO_HOLD_BYTES, &v, err, sizeof(err)) != 0) {
        fr->fail[tc] = strdup(err);
    } else if (e) {
        uint8_t *frame = xmalloc((size_t)px * px * 3);
        const int tub = fr->T_in / fr->T > 0 ? fr->T_in / fr->T : 1;
        for (int t = 0; t < fr->T; t++) {
            int i = t * tub + tub / 2; // the middle frame of step t's tubelet
            if (i >= v.T) i = v.T - 1;
            preprocess_resize_crop(&fr->pp, v.rgb + (size_t)i * v.width * v.height * 3, v.width, v.height, frame);
            for (int y = 0; y < px; y++) memcpy(pic + ((size_t)y * w + (size_t)t * px) * 3, frame + (size_t)y * px * 3, (size_t)px * 3);
        }
        free(frame);
        video_clip_free(&v);
    }
    for (int t = 1; t < fr->T; t++) // the frames' borders
        for (int y = 0; y < px; y++) memset(pic + ((size_t)y * w + (size_t)t * px) * 3, 20, 3);
    return pic;
}

// --- strips: a clip's frames and one latent's activation over them --------------------

typedef struct {
    int tc;       // test-clip index
    int latent;
    int group;    // strips of one group share the colour scale (a latent page's clips)
    float *act;   // [T*N] the latent's value at every token of the clip
    float vmax;   // the colour scale's top
    float value;  // mean over the clip's tokens (eval's clip value)
    float peak;   // the largest over them
    float *at, *mx; // [T] at the peak patch, largest over the patches
    int flips;    // steps where the peak patch switches on or off
    char img[80]; // file name under JOB/img/
} Strip;

// The heat map of a strip: [H, T W] RGBA, one pixel per token (step t's
// patches at columns t W .. t W + W - 1), shown stretched over the frames:
// u = act / vmax in [0, 1] as red to yellow (255, 230 u, 0) with opacity
// 0.25 + 0.6 u; transparent where the latent is 0.
static uint8_t *draw_heat(const Strip *s, int T, int H, int W) {
    uint8_t *img = xcalloc((size_t)H * T * W * 4, 1);
    const int swap = PLANTED("browse_heat_transposed"); // once per picture, not per pixel
    for (int t = 0; t < T; t++)
        for (int gy = 0; gy < H; gy++)
            for (int gx = 0; gx < W; gx++) {
                const int ty = swap ? gx : gy, tx = swap ? gy : gx;
                float u = s->act[(size_t)t * H * W + (size_t)ty * W + tx] / s->vmax;
                if (!(u > 0)) continue;
                if (u > 1) u = 1;
                uint8_t *c = img + ((size_t)gy * T * W + (size_t)t * W + gx) * 4;
                c[0] = 255, c[1] = (uint8_t)lroundf(230.0f * u), c[2] = 0, c[3] = (uint8_t)lroundf(255.0f * (0.25f + 0.6f * u));
            }
    return img;
}

// The latent's values on the clip's tokens from its codes, and what the page
// shows of them.
static void strip_fill(Strip *s, const SparseCodes *z, int T, int N) {
    const int tn = T * N;
    s->act = xcalloc((size_t)tn, sizeof(float));
    s->at = xcalloc((size_t)T, sizeof(float));
    s->mx = xcalloc((size_t)T, sizeof(float));
    double sum = 0.0;
    for (int r = 0; r < tn; r++)
        for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++)
            if (z->idx[e] == s->latent) s->act[r] = z->val[e], sum += z->val[e], s->peak = fmaxf(s->peak, z->val[e]);
    s->value = (float)(sum / tn);
    int best = 0; // the peak patch: the largest total over the steps
    double best_tot = -1.0;
    for (int p = 0; p < N; p++) {
        double tot = 0.0;
        for (int t = 0; t < T; t++) tot += s->act[(size_t)t * N + p];
        if (tot > best_tot) best_tot = tot, best = p;
    }
    for (int t = 0; t < T; t++) {
        s->at[t] = s->act[(size_t)t * N + best];
        for (int p = 0; p < N; p++) s->mx[t] = fmaxf(s->mx[t], s->act[(size_t)t * N + p]);
        if (t && (s->at[t] > 0) != (s->at[t - 1] > 0)) s->flips++;
    }
}

static void strip_free(Strip *s) { free(s->act), free(s->at), free(s->mx); }

// --- one job ---------------------------------------------------------------------------

typedef struct {
    const char *name, *variant;
    int row;                // in results.h5
    SaeConfig cfg;
    ModelInfo info;
    float *params;
    SaeTensors p;
    int m;
    float *freq, *mean_act, *rho, *ms, *mcv, *top; // per latent (freq, mean_act NULL: an older eval.h5)
    uint8_t *live;
    int n_live;
    int *page;              // [m] page number of a latent, or -1
    int *pages, n_pages;    // latents with a page
    Strip *strips;
    int n_strips;
    int *cmp;               // compare.html: first strip of each compare clip (COMPARE_LATENTS each), or NULL
} JobView;

static float *read_latent(hid_t f, const char *path, const char *job, const char *what, int rank, int m, int opt) {
    char ds[512];
    snprintf(ds, sizeof(ds), "per_latent/%s/%s", job, what);
    if (opt && !h5_exists(f, ds)) return NULL;
    hsize_t dims[2];
    float *v = h5_read_f32(f, path, ds, rank, dims);
    if (dims[0] != (hsize_t)m || (rank == 2 && dims[1] != TOP))
        die("%s: %s has %llu rows, the job's model.h5 has m = %d latents", path, ds, (unsigned long long)dims[0], m);
    return v;
}

// Reads the job's model and per-latent arrays, and picks its pages.
static void job_load(JobView *jv, const char *run_dir, const char *res_path, int max_pages, int n_test) {
    char sub[600];
    snprintf(sub, sizeof(sub), "jobs/%s/model.h5", jv->name);
    char *mp = path_join(run_dir, sub);
    jv->params = model_load(mp, &jv->cfg, &jv->info);
    free(mp);
    sae_carve(jv->params, &jv->cfg, &jv->p);
    const int m = jv->m = jv->cfg.m;
    hid_t f = h5_open_read(res_path);
    jv->rho = read_latent(f, res_path, jv->name, "rho", 1, m, 0);
    jv->ms = read_latent(f, res_path, jv->name, "ms", 1, m, 0);
    jv->mcv = read_latent(f, res_path, jv->name, "mean_clip_value", 1, m, 0);
    jv->top = read_latent(f, res_path, jv->name, "top_clips", 2, m, 0);
    jv->freq = read_latent(f, res_path, jv->name, "freq", 1, m, 1);
    jv->mean_act = read_latent(f, res_path, jv->name, "mean_act", 1, m, 1);
    H5Fclose(f);
    for (size_t i = 0; i < (size_t)m * TOP; i++)
        if (!(jv->top[i] >= -1 && jv->top[i] < n_test))
            die("%s: per_latent/%s/top_clips holds %g, not a test clip (%d of them)", res_path, jv->name, jv->top[i],
                n_test);
    jv->live = xmalloc((size_t)m);
    jv->n_live = 0;
    for (int j = 0; j < m; j++) jv->n_live += jv->live[j] = jv->freq ? jv->freq[j] > 0 : !isnan(jv->rho[j]);
    // pages: the live latents with the largest mean clip value
    jv->page = xmalloc(sizeof(int) * (size_t)m);
    jv->pages = xmalloc(sizeof(int) * (size_t)(max_pages + 1));
    for (int j = 0; j < m; j++) jv->page[j] = -1;
    while (jv->n_pages < max_pages) {
        int best = -1;
        for (int j = 0; j < m; j++)
            if (jv->live[j] && jv->page[j] < 0 && (best < 0 || jv->mcv[j] > jv->mcv[best])) best = j;
        if (best < 0) break;
        jv->page[best] = jv->n_pages;
        jv->pages[jv->n_pages++] = best;
    }
}

static void job_free(JobView *jv) {
    for (int i = 0; i < jv->n_strips; i++) strip_free(&jv->strips[i]);
    free(jv->strips), free(jv->params), free(jv->freq), free(jv->mean_act), free(jv->rho), free(jv->ms), free(jv->mcv),
        free(jv->top), free(jv->live), free(jv->page), free(jv->pages), free(jv->cmp);
}

static Strip *add_strip(JobView *jv, int *cap, int tc, int latent, int group) {
    if (jv->n_strips == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        jv->strips = xrealloc(jv->strips, sizeof(Strip) * (size_t)*cap);
    }
    Strip *s = &jv->strips[jv->n_strips++];
    memset(s, 0, sizeof(*s));
    s->tc = tc, s->latent = latent, s->group = group;
    return s;
}

// The run being browsed.
typedef struct {
    const char *run_dir;
    char *dir;             // RUN_DIR/browser
    Results res;
    ReportOptions ro;
    FeatureFile ff;        // open on the layer of the job being processed
    int32_t *test;
    int n_test;
    Frames fr;
    int cmp_job[2];        // rows of results.h5 compared (-1: none)
    int cmp_clip[COMPARE_CLIPS], n_cmp_clips;
    uint64_t bytes;
    int64_t n_images;
    char err[8704];
} Browse;

static int label_of(const Browse *b, int tc) { return tc >= 0 ? b->ff.labels[b->test[tc]] : -1; }
static const char *label_name(const Browse *b, int label) {
    return label >= 0 && label < b->ff.n_label_names ? b->ff.label_names[label] : "(no label)";
}

// Encodes every clip the job's strips need, once each, and fills the strips;
// then the colour scales, and the compare clips' latents.
static void job_strips(Browse *b, JobView *jv, int is_cmp) {
    const int T = b->ff.T, N = b->ff.N, d = b->ff.d, tn = T * N;
    int cap = 0;
    for (int q = 0; q < jv->n_pages; q++)
        for (int s = 0; s < TOP; s++) {
            const int tc = (int)jv->top[(size_t)jv->pages[q] * TOP + s];
            if (tc >= 0) add_strip(jv, &cap, tc, jv->pages[q], q);
        }
    const int n_page_strips = jv->n_strips;
    uint16_t *h = xmalloc(sizeof(uint16_t) * (size_t)tn * d);
    float *x = xmalloc(sizeof(float) * (size_t)tn * d);
    SaeWork *w = sae_work_create(&jv->cfg, tn);
    SparseCodes z;
    codes_alloc(&z, tn, (int64_t)tn * jv->cfg.k);
    uint8_t *done = xcalloc((size_t)b->n_test + 1, 1);
    double *tot = xmalloc(sizeof(double) * (size_t)jv->m);
    if (is_cmp) jv->cmp = xmalloc(sizeof(int) * COMPARE_CLIPS);
    for (int i = 0; i < n_page_strips + b->n_cmp_clips; i++) {
        const int tc = i < n_page_strips ? jv->strips[i].tc : b->cmp_clip[i - n_page_strips];
        const int cmp = i >= n_page_strips;
        if (!cmp && done[tc]) continue;
        if (cmp && !is_cmp) break;
        features_read_tokens(&b->ff, b->test[tc], jv->info.scale, h, x);
        sae_encode(&jv->cfg, &jv->p, x, tn, jv->info.theta, w, &z);
        if (!cmp) {
            done[tc] = 1;
            for (int k = i; k < n_page_strips; k++)
                if (jv->strips[k].tc == tc) strip_fill(&jv->strips[k], &z, T, N);
            continue;
        }
        // compare.html: the COMPARE_LATENTS latents with the largest total on the clip
        for (int j = 0; j < jv->m; j++) tot[j] = 0.0;
        for (int64_t e = 0; e < z.row_ptr[tn]; e++) tot[z.idx[e]] += z.val[e];
        jv->cmp[i - n_page_strips] = jv->n_strips;
        for (int q = 0; q < COMPARE_LATENTS; q++) {
            int best = 0;
            for (int j = 1; j < jv->m; j++)
                if (tot[j] > tot[best]) best = j;
            tot[best] = -1.0;
            Strip *s = add_strip(jv, &cap, tc, best, -1);
            strip_fill(s, &z, T, N);
        }
    }
    free(done), free(tot), free(h), free(x);
    codes_free(&z);
    sae_work_free(w);
    // colour scales: the largest value over a latent page's strips, or the strip's own
    float *gmax = xcalloc((size_t)jv->n_pages + 1, sizeof(float));
    for (int i = 0; i < jv->n_strips; i++) {
        Strip *s = &jv->strips[i];
        for (int r = 0; r < tn; r++) s->vmax = fmaxf(s->vmax, s->act[r]);
        if (s->group >= 0) gmax[s->group] = fmaxf(gmax[s->group], s->vmax);
    }
    for (int i = 0; i < jv->n_strips; i++) {
        Strip *s = &jv->strips[i];
        if (s->group >= 0) s->vmax = gmax[s->group];
        if (!(s->vmax > 0)) s->vmax = 1.0f;
        snprintf(s->img, sizeof(s->img), "%sc%05d_l%05d.png", s->group < 0 ? "cmp_" : "", s->tc, s->latent);
    }
    free(gmax);
}

// Writes the heat maps of the job's strips, and the frames of their clips
// not written yet. 0, or -1 with b->err.
static int job_images(Browse *b, JobView *jv) {
    char sub[700];
    snprintf(sub, sizeof(sub), "%s/img", jv->name);
    char *img_dir = path_join(b->dir, sub), *frames_dir = path_join(b->dir, "frames");
    int rc = path_mkdirs(img_dir, b->err, sizeof(b->err));
    if (rc == 0) rc = path_mkdirs(frames_dir, b->err, sizeof(b->err));
    for (int i = 0; i < jv->n_strips && rc == 0; i++) {
        const Strip *s = &jv->strips[i];
        char name[64], *path;
        if (!b->fr.written[s->tc]) {
            snprintf(name, sizeof(name), "c%05d.jpg", s->tc);
            uint8_t *pic = frames_picture(&b->fr, s->tc);
            path = path_join(frames_dir, name);
            rc = image_write_jpeg(path, pic, b->fr.T * b->fr.px, b->fr.px, JPEG_QSCALE, b->err, sizeof(b->err));
            if (rc == 0) b->bytes += file_bytes(path), b->fr.written[s->tc] = 1;
            free(path), free(pic);
            if (rc) break;
        }
        uint8_t *heat = draw_heat(s, b->ff.T, b->ff.H, b->ff.W);
        path = path_join(img_dir, s->img);
        rc = image_write_png_rgba(path, heat, b->ff.T * b->ff.W, b->ff.H, b->err, sizeof(b->err));
        if (rc == 0) b->bytes += file_bytes(path), b->n_images++;
        free(path), free(heat);
    }
    free(img_dir), free(frames_dir);
    return rc;
}

static const char *group_name(const JobView *jv, int j) {
    if (jv->cfg.m_high <= 0) return "";
    return j < jv->cfg.m_high ? "high" : "low";
}

// Purity of a latent: the count of the most common label among its top clips
// over their number; *label: that label.
static double purity(const Browse *b, const JobView *jv, int j, int *label) {
    int lab[TOP], n = 0, best = 0;
    *label = -1;
    for (int s = 0; s < TOP; s++)
        if (jv->top[(size_t)j * TOP + s] >= 0) lab[n++] = label_of(b, (int)jv->top[(size_t)j * TOP + s]);
    for (int a = 0; a < n; a++) {
        int c = 0;
        for (int q = 0; q < n; q++) c += lab[q] == lab[a];
        if (c > best || (c == best && lab[a] < *label)) best = c, *label = lab[a];
    }
    return n ? (double)best / n : NAN;
}

static void latent_link(FILE *f, const JobView *jv, int j) {
    if (jv->page[j] >= 0) fprintf(f, "<a href=\"latent_%05d.html\">%d</a>", j, j);
    else fprintf(f, "%d", j);
}

// Why the strips have grey frames, or nothing.
static const char *frames_note(const Browse *b, int tc) {
    if (b->fr.why[0]) return b->fr.why;
    return tc >= 0 && b->fr.fail[tc] ? b->fr.fail[tc] : NULL;
}

// Opens the page browser/SUB (sub: "index.html", "JOB/latent_NNNNN.html", ...);
// root: the way back to browser/ from it. 0, or -1 with b->err.
static int open_page(Browse *b, Page *pg, const char *sub, const char *title, const char *root) {
    char *path = path_join(b->dir, sub);
    const int rc = page_open(pg, path, title, root, b->err, sizeof(b->err));
    free(path);
    return rc;
}

// browser/JOB/index.html: the table of live latents.
static int write_job_page(Browse *b, const JobView *jv) {
    char sub[700];
    snprintf(sub, sizeof(sub), "%s/index.html", jv->name);
    Page pg;
    if (open_page(b, &pg, sub, jv->name, "../")) return -1;
    FILE *f = pg.f;
    fputs("<div class=\"nav\"><a href=\"../index.html\">run</a> &rsaquo; ", f);
    html_text(f, jv->name);
    fputs("</div>\n<h1>", f);
    html_text(f, jv->name);
    fputs("</h1>\n<p class=\"note\">variant ", f);
    html_text(f, jv->variant);
    fprintf(f, "; m = %d latents, %d live (fire on a test token); R&sup2; %.4g, lag-1 %.4g, MS %.4g, L0 %.4g. ", jv->m,
            jv->n_live, result(&b->res, jv->row, "r2"), result(&b->res, jv->row, "lag1"), result(&b->res, jv->row, "ms"),
            result(&b->res, jv->row, "l0"));
    fprintf(f, "Pages for the %d live latents with the largest mean clip value (report.browse_latents). ", jv->n_pages);
    if (jv->cfg.m_high > 0) fprintf(f, "The high-level group (latents 0-%d, L_high) is marked. ", jv->cfg.m_high - 1);
    fputs("Purity and label: the most common label of the latent's top-8 test clips. Click a column to sort; "
          "the address takes <code>#sort=COLUMN:desc&amp;filter=WORDS</code>.</p>\n",
          f);
    fputs("<input class=\"filter\" data-table=\"latents\" placeholder=\"filter: label, group, latent\"> <span "
          "id=\"latents-count\"></span>\n",
          f);
    fputs("<table class=\"sortable\" id=\"latents\"><thead><tr><th data-col=\"latent\">latent</th>"
          "<th class=\"t\" data-col=\"group\">group</th><th data-col=\"freq\">frequency</th>"
          "<th data-col=\"mean_act\">mean activation</th><th data-col=\"lag1\">lag-1</th><th data-col=\"ms\">MS</th>"
          "<th data-col=\"purity\">purity</th><th class=\"t\" data-col=\"label\">dominant label</th>"
          "<th data-col=\"clip_value\">mean clip value</th></tr></thead><tbody>\n",
          f);
    for (int j = 0; j < jv->m; j++) {
        if (!jv->live[j]) continue;
        int lab;
        const double pur = purity(b, jv, j, &lab);
        fprintf(f, "<tr%s><td data-v=\"%d\">", jv->cfg.m_high > 0 && j < jv->cfg.m_high ? " class=\"high\"" : "", j);
        latent_link(f, jv, j);
        fprintf(f, "</td><td class=\"t\">%s</td>", group_name(jv, j));
        html_num_cell(f, jv->freq ? jv->freq[j] : NAN, 4);
        html_num_cell(f, jv->mean_act ? jv->mean_act[j] : NAN, 4);
        html_num_cell(f, jv->rho[j], 3);
        html_num_cell(f, jv->ms[j], 3);
        html_num_cell(f, pur, 3);
        fputs("<td class=\"t\">", f);
        html_text(f, label_name(b, lab));
        fputs("</td>", f);
        html_num_cell(f, jv->mcv[j], 4);
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
    return page_close(&pg, &b->bytes, b->err, sizeof(b->err));
}

// The clip's frames under the strip's heat map, px pixels per frame. root:
// the way back to browser/; heat_dir: the heat map's directory from the page.
static void heat_images(FILE *f, const Browse *b, const Strip *s, const char *root, const char *heat_dir, int px) {
    const int w = b->ff.T * px;
    fprintf(f, "<div class=\"heat\"><img class=\"frames\" src=\"%sframes/c%05d.jpg\" width=\"%d\" height=\"%d\" "
               "alt=\"\"><img class=\"ov\" src=\"%s",
            root, s->tc, w, px, heat_dir);
    html_url(f, s->img);
    fprintf(f, "\" width=\"%d\" height=\"%d\" alt=\"latent %d's activation of each patch\"></div>", w, px, s->latent);
}

// One strip with its clip's words and timeline: the clip's frames, and the
// same under the heat map. root: the way back to browser/; heat_dir: the
// heat map's directory from the page.
static void strip_block(FILE *f, const Browse *b, const Strip *s, const char *root, const char *heat_dir) {
    fputs("<div class=\"clip\"><div class=\"meta\">", f);
    fprintf(f, "test clip %d: <b>", s->tc);
    html_text(f, b->ff.clip_ids[b->test[s->tc]]);
    fputs("</b><br>", f);
    html_text(f, label_name(b, label_of(b, s->tc)));
    fprintf(f, "<br>clip value %.4g, largest %.4g (colour scale %.4g)<br>on/off switches at its peak patch: %d<br>",
            s->value, s->peak, s->vmax, s->flips);
    svg_timeline(f, s->at, s->mx, b->ff.T, s->vmax);
    const char *note = frames_note(b, s->tc);
    if (note) {
        fputs("<br><i>grey frames: ", f);
        html_text(f, note);
        fputs("</i>", f);
    }
    const int px = b->fr.px < SHOW_PX ? SHOW_PX : b->fr.px;
    fprintf(f, "</div><div><img class=\"frames\" src=\"%sframes/c%05d.jpg\" width=\"%d\" height=\"%d\" alt=\"the "
               "clip's frames\">",
            root, s->tc, b->ff.T * px, px);
    heat_images(f, b, s, root, heat_dir, px);
    fputs("</div></div>\n", f);
}

// The NEAREST latents to j by the cosine of their decoder atoms (D's rows).
static void nearest(const JobView *jv, const float *unit, int j, int *near, float *cosv) {
    const int m = jv->m, d = jv->cfg.d;
    float *c = xmalloc(sizeof(float) * (size_t)m);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, m, d, 1.0f, unit, d, unit + (size_t)j * d, 1, 0.0f, c, 1);
    c[j] = -INFINITY;
    for (int q = 0; q < NEAREST; q++) {
        int best = 0;
        for (int i = 1; i < m; i++)
            if (c[i] > c[best]) best = i;
        near[q] = best, cosv[q] = c[best];
        c[best] = -INFINITY;
    }
    free(c);
}

// browser/JOB/latent_NNNNN.html for every page latent.
static int write_latent_pages(Browse *b, const JobView *jv) {
    const int m = jv->m, d = jv->cfg.d;
    float *unit = xmalloc(sizeof(float) * (size_t)m * d);
    for (int j = 0; j < m; j++) {
        double s = 0.0;
        for (int i = 0; i < d; i++) s += (double)jv->p.D[(size_t)j * d + i] * jv->p.D[(size_t)j * d + i];
        const float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int i = 0; i < d; i++) unit[(size_t)j * d + i] = jv->p.D[(size_t)j * d + i] * inv;
    }
    int rc = 0;
    for (int q = 0; q < jv->n_pages && rc == 0; q++) {
        const int j = jv->pages[q];
        char sub[700], title[700];
        snprintf(sub, sizeof(sub), "%s/latent_%05d.html", jv->name, j);
        snprintf(title, sizeof(title), "%s latent %d", jv->name, j);
        Page pg;
        if ((rc = open_page(b, &pg, sub, title, "../"))) break;
        FILE *f = pg.f;
        fputs("<div class=\"nav\"><a href=\"../index.html\">run</a> &rsaquo; <a href=\"index.html\">", f);
        html_text(f, jv->name);
        fprintf(f, "</a> &rsaquo; latent %d", j);
        if (q > 0) fprintf(f, " &middot; <a href=\"latent_%05d.html\">previous</a>", jv->pages[q - 1]);
        if (q + 1 < jv->n_pages) fprintf(f, " &middot; <a href=\"latent_%05d.html\">next</a>", jv->pages[q + 1]);
        fprintf(f, "</div>\n<h1>latent %d</h1>\n<p class=\"note\">", j);
        int lab;
        const double pur = purity(b, jv, j, &lab);
        if (jv->cfg.m_high > 0) fprintf(f, "%s-level group; ", group_name(jv, j));
        if (jv->freq) fprintf(f, "fires on %.3g%% of test tokens, mean activation %.4g there; ", 100.0 * jv->freq[j],
                              jv->mean_act[j]);
        fprintf(f, "lag-1 %.3g, MS %.3g, mean clip value %.4g, purity %.3g (", jv->rho[j], jv->ms[j], jv->mcv[j], pur);
        html_text(f, label_name(b, lab));
        fputs(").</p>\n<p class=\"note\">Each top clip: its frames (above) and the latent's activation of each patch "
              "drawn over them (below, one cell per token; red to yellow, one scale for the page). The line: its value at the patch where "
              "its total over the clip is largest, step by step (empty dots: off, the flicker); dashed: the largest "
              "over the patches.</p>\n<h2>Top clips</h2>\n",
              f);
        for (int i = 0; i < jv->n_strips; i++)
            if (jv->strips[i].group == q) strip_block(f, b, &jv->strips[i], "../", "img/");
        // the label histogram of the top clips
        fputs("<h2>Labels of the top clips</h2>\n", f);
        int *count = xcalloc((size_t)b->ff.n_label_names + 2, sizeof(int)), total = 0;
        for (int s = 0; s < TOP; s++) {
            const int tc = (int)jv->top[(size_t)j * TOP + s];
            if (tc < 0) continue;
            const int l = label_of(b, tc);
            count[l >= 0 ? l : b->ff.n_label_names]++;
            total++;
        }
        char **names = xmalloc(sizeof(char *) * (size_t)(b->ff.n_label_names + 1));
        for (int l = 0; l < b->ff.n_label_names; l++) names[l] = b->ff.label_names[l];
        names[b->ff.n_label_names] = "(no label)";
        html_bars(f, names, count, b->ff.n_label_names + 1, total);
        free(count), free(names);
        // nearest latents
        int near[NEAREST];
        float cosv[NEAREST];
        nearest(jv, unit, j, near, cosv);
        fputs("<h2>Nearest latents by decoder cosine</h2>\n<table><thead><tr><th>latent</th><th>cosine</th>"
              "<th class=\"t\">dominant label</th></tr></thead><tbody>\n",
              f);
        for (int k = 0; k < NEAREST && k < m - 1; k++) {
            fputs("<tr><td>", f);
            latent_link(f, jv, near[k]);
            fprintf(f, "</td><td>%.3f</td><td class=\"t\">", cosv[k]);
            int nl;
            purity(b, jv, near[k], &nl);
            html_text(f, jv->live[near[k]] ? label_name(b, nl) : "(dead)");
            fputs("</td></tr>\n", f);
        }
        fputs("</tbody></table>\n", f);
        rc = page_close(&pg, &b->bytes, b->err, sizeof(b->err));
    }
    free(unit);
    return rc;
}

// --- the run ---------------------------------------------------------------------------

// browser/index.html: the results table.
static int write_run_page(Browse *b, const uint8_t *has_page) {
    Page pg;
    if (open_page(b, &pg, "index.html", "stsae run", "")) return -1;
    FILE *f = pg.f;
    fputs("<h1>stsae run: ", f);
    html_text(f, b->run_dir);
    fprintf(f, "</h1>\n<p class=\"note\">%d rows of results.h5 (the raw features and every evaluated job); a job's name "
               "opens its latents. ",
            b->res.n_rows);
    if (b->cmp_job[0] >= 0 && b->cmp_job[1] >= 0) {
        fputs("<a href=\"compare.html\">The same clips under ", f);
        html_text(f, b->res.rows[b->cmp_job[0]]);
        fputs(" and ", f);
        html_text(f, b->res.rows[b->cmp_job[1]]);
        fputs("</a> (flicker against stable activations). ", f);
    }
    char *plots = path_join(b->run_dir, "plots");
    fprintf(f, "Files: <a href=\"../results.md\">results.md</a>, <a href=\"../results.csv\">results.csv</a>%s.</p>\n",
            access(plots, F_OK) == 0 ? ", <a href=\"../plots/\">plots/</a>" : ""); // no plots without matplotlib
    free(plots);
    fputs("<input class=\"filter\" data-table=\"results\" placeholder=\"filter: job, variant\"> <span "
          "id=\"results-count\"></span>\n<table class=\"sortable\" id=\"results\"><thead><tr>"
          "<th class=\"t\" data-col=\"job\">job</th><th class=\"t\" data-col=\"variant\">variant</th>",
          f);
    for (int c = 0; c < b->res.n_cols; c++) {
        fputs("<th data-col=\"", f);
        html_text(f, b->res.cols[c]);
        fputs("\">", f);
        html_text(f, b->res.cols[c]);
        fputs("</th>", f);
    }
    fputs("</tr></thead><tbody>\n", f);
    for (int r = 0; r < b->res.n_rows; r++) {
        fputs("<tr><td class=\"t\">", f);
        if (has_page[r]) {
            fputs("<a href=\"", f);
            html_url(f, b->res.rows[r]);
            fputs("/index.html\">", f);
            html_text(f, b->res.rows[r]);
            fputs("</a>", f);
        } else {
            html_text(f, b->res.rows[r]);
        }
        fputs("</td><td class=\"t\">", f);
        html_text(f, b->res.variants[r]);
        fputs("</td>", f);
        for (int c = 0; c < b->res.n_cols; c++) html_num_cell(f, b->res.table[(size_t)r * b->res.n_cols + c], 4);
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
    return page_close(&pg, &b->bytes, b->err, sizeof(b->err));
}

// browser/compare.html: the compare clips under the two jobs side by side.
static int write_compare_page(Browse *b, JobView *const *jv) {
    Page pg;
    if (open_page(b, &pg, "compare.html", "stsae: two jobs on the same clips", "")) return -1;
    FILE *f = pg.f;
    fputs("<div class=\"nav\"><a href=\"index.html\">run</a> &rsaquo; compare</div>\n<h1>", f);
    html_text(f, jv[0]->name);
    fputs(" and ", f);
    html_text(f, jv[1]->name);
    fprintf(f, " on the same clips</h1>\n<p class=\"note\">For each of %d test clips, the %d latents of each job with "
               "the largest total activation on it: their activation over the frames and over the steps at their peak "
               "patch. Latents that switch on and off from step to step flicker (the paper's Figure 2; lag-1 of "
               "each job: %.3g and %.3g).</p>\n",
            b->n_cmp_clips, COMPARE_LATENTS, result(&b->res, jv[0]->row, "lag1"), result(&b->res, jv[1]->row, "lag1"));
    for (int c = 0; c < b->n_cmp_clips; c++) {
        const int tc = b->cmp_clip[c];
        fprintf(f, "<h2>test clip %d: ", tc);
        html_text(f, b->ff.clip_ids[b->test[tc]]);
        fputs(" (", f);
        html_text(f, label_name(b, label_of(b, tc)));
        fputs(")</h2>\n", f);
        int px = COMPARE_PX / b->ff.T; // each job's column holds the clip's T frames
        if (px > SHOW_PX) px = SHOW_PX;
        if (px < 8) px = 8;
        fprintf(f, "<img class=\"frames\" src=\"frames/c%05d.jpg\" width=\"%d\" height=\"%d\" alt=\"the clip's frames\">"
                   "\n<div class=\"pair\">\n",
                tc, b->ff.T * px, px);
        for (int k = 0; k < 2; k++) {
            int flips = 0;
            for (int q = 0; q < COMPARE_LATENTS; q++) flips += jv[k]->strips[jv[k]->cmp[c] + q].flips;
            fputs("<div><h2><a href=\"", f);
            html_url(f, jv[k]->name);
            fputs("/index.html\">", f);
            html_text(f, jv[k]->name);
            fprintf(f, "</a>: %d on/off switches</h2>\n", flips);
            char *heat_dir = NULL; // the job's img/ folder as a URL, however long its name
            size_t heat_len = 0;
            FILE *mem = open_memstream(&heat_dir, &heat_len);
            if (!mem) die("browse: open_memstream: %s", strerror(errno));
            html_url(mem, jv[k]->name);
            fputs("/img/", mem);
            fclose(mem);
            for (int q = 0; q < COMPARE_LATENTS; q++) {
                const Strip *s = &jv[k]->strips[jv[k]->cmp[c] + q];
                fputs("<div class=\"cmp\">latent ", f);
                if (jv[k]->page[s->latent] >= 0) {
                    fputs("<a href=\"", f);
                    html_url(f, jv[k]->name);
                    fprintf(f, "/latent_%05d.html\">%d</a>", s->latent, s->latent);
                } else {
                    fprintf(f, "%d", s->latent);
                }
                fprintf(f, ": %d on/off switches at its peak patch, largest %.4g", s->flips, s->peak);
                heat_images(f, b, s, "", heat_dir, px);
                svg_timeline(f, s->at, s->mx, b->ff.T, s->vmax);
                fputs("</div>\n", f);
            }
            free(heat_dir);
            fputs("</div>\n", f);
        }
        fputs("</div>\n", f);
    }
    return page_close(&pg, &b->bytes, b->err, sizeof(b->err));
}

// The two jobs of compare.html: the first of standard and of temporal+M;
// else the first two jobs of different variants. -1 where there is none.
static void pick_compare(Browse *b, const int *job_row, int n_jobs) {
    b->cmp_job[0] = b->cmp_job[1] = -1;
    const char *const want[2] = {"standard", "temporal+M"};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < n_jobs && b->cmp_job[k] < 0; i++)
            if (!strcmp(b->res.variants[job_row[i]], want[k])) b->cmp_job[k] = job_row[i];
    if (b->cmp_job[0] < 0 || b->cmp_job[1] < 0) {
        b->cmp_job[0] = b->cmp_job[1] = -1;
        for (int i = 0; i < n_jobs; i++) {
            if (b->cmp_job[0] < 0) b->cmp_job[0] = job_row[i];
            else if (strcmp(b->res.variants[job_row[i]], b->res.variants[b->cmp_job[0]])) {
                b->cmp_job[1] = job_row[i];
                break;
            }
        }
        if (b->cmp_job[1] < 0) b->cmp_job[0] = -1;
    }
    b->n_cmp_clips = b->n_test < COMPARE_CLIPS ? b->n_test : COMPARE_CLIPS;
    for (int c = 0; c < b->n_cmp_clips; c++) b->cmp_clip[c] = (int)((int64_t)c * b->n_test / b->n_cmp_clips);
}

// Opens the feature file on `layer` (closing the one open); dies naming the file.
static void open_layer(Browse *b, int layer) {
    if (b->ff.file > 0 && b->ff.layer == layer) return;
    if (b->ff.file > 0) features_close(&b->ff);
    char *p = path_join(b->run_dir, b->ro.features), err[2048];
    if (features_open(&b->ff, p, layer, err, sizeof(err)) != 0) die("browse: %s", err);
    free(p);
}

int browse_write(const char *run_dir) {
    Browse b;
    memset(&b, 0, sizeof(b));
    b.run_dir = run_dir;
    char *saved = path_join(run_dir, "train.yaml"), *res_path = path_join(run_dir, "results.h5");
    char err[2048];
    if (report_options_load(saved, &b.ro, err, sizeof(err)) != 0) die("%s (browse needs the deck saved by stsae train)", err);
    if (access(res_path, R_OK) != 0) die("%s: cannot read it (browse needs stsae report's results.h5)", res_path);
    results_read(res_path, &b.res);
    // written whole under browser.partial (a stale one from a stopped run removed first), then put in browser's place
    char *final_dir = path_join(run_dir, "browser");
    b.dir = path_join(run_dir, "browser.partial");
    int rc = path_remove_tree(b.dir, b.err, sizeof(b.err));
    if (rc == 0) rc = path_mkdirs(b.dir, b.err, sizeof(b.err));
    // the results rows that are jobs of the deck (the raw rows are not)
    int *job_row = xmalloc(sizeof(int) * (size_t)(b.res.n_rows + 1)), *job_layer = xmalloc(sizeof(int) * (size_t)(b.res.n_rows + 1));
    int n_jobs = 0;
    uint8_t *has_page = xcalloc((size_t)b.res.n_rows + 1, 1);
    for (int r = 0; r < b.res.n_rows; r++)
        for (int i = 0; i < b.ro.jobs->n; i++)
            if (!strcmp(b.ro.jobs->job[i].name, b.res.rows[r])) {
                job_row[n_jobs] = r, job_layer[n_jobs++] = b.ro.jobs->job[i].layer;
                has_page[r] = 1;
                break;
            }
    open_layer(&b, n_jobs ? job_layer[0] : b.ro.layer);
    b.n_test = features_clips(&b.ff, 1, &b.test);
    frames_init(&b.fr, &b.ro, run_dir, &b.ff, b.test, b.n_test);
    pick_compare(&b, job_row, n_jobs);
    JobView *cmp[2] = {NULL, NULL};
    const double t0 = wall_time();
    Progress prog;
    progress_start(&prog, t0, 10.0, 0);
    printf("browse: %d jobs, up to %d latent pages each (report.browse_latents), %d test clips -> %s\n", n_jobs,
           b.ro.browse_latents, b.n_test, final_dir);
    if (b.fr.why[0]) printf("browse: frames drawn grey: %s\n", b.fr.why);
    fflush(stdout);
    for (int i = 0; i < n_jobs && rc == 0; i++) {
        JobView *jv = xcalloc(1, sizeof(JobView));
        jv->row = job_row[i];
        jv->name = b.res.rows[jv->row];
        jv->variant = b.res.variants[jv->row];
        open_layer(&b, job_layer[i]);
        job_load(jv, run_dir, res_path, b.ro.browse_latents, b.n_test);
        if (jv->cfg.d != b.ff.d) die("%s/jobs/%s/model.h5: d = %d, the features %d", run_dir, jv->name, jv->cfg.d, b.ff.d);
        const int k = jv->row == b.cmp_job[0] ? 0 : jv->row == b.cmp_job[1] ? 1 : -1;
        job_strips(&b, jv, k >= 0);
        rc = job_images(&b, jv);
        if (rc == 0) rc = write_job_page(&b, jv);
        if (rc == 0) rc = write_latent_pages(&b, jv);
        if (k >= 0) cmp[k] = jv;
        else job_free(jv), free(jv);
        const double now = wall_time();
        if (progress_due(&prog, now, i == 0 || i + 1 == n_jobs)) {
            char eta[32];
            progress_eta_text(&prog, i + 1, n_jobs, now, eta, sizeof(eta));
            printf("browse: %d/%d jobs, %lld strips, %.1f strips/s, ETA %s\n", i + 1, n_jobs, (long long)b.n_images,
                   progress_rate(&prog, (double)b.n_images, now), eta);
            fflush(stdout);
        }
    }
    if (rc == 0 && cmp[0] && cmp[1]) rc = write_compare_page(&b, cmp);
    if (rc == 0) rc = write_run_page(&b, has_page);
    if (rc == 0) rc = browse_assets(b.dir, &b.bytes, b.err, sizeof(b.err));
    if (rc == 0) rc = path_replace_dir(b.dir, final_dir, b.err, sizeof(b.err));
    else {
        char ignored[256];
        path_remove_tree(b.dir, ignored, sizeof(ignored)); // nothing half-written stays
    }
    if (rc == 0) {
        char *index = path_join(final_dir, "index.html");
        printf("browse: %lld strips, %.1f MB in %.0f s -> %s (opens from file://, no server)\n", (long long)b.n_images,
               b.bytes / 1e6, wall_time() - t0, index);
        free(index);
    } else {
        fprintf(stderr, "stsae: error: browse: %s\n", b.err);
    }
    fflush(stdout);
    fflush(stderr);
    for (int k = 0; k < 2; k++)
        if (cmp[k]) job_free(cmp[k]), free(cmp[k]);
    frames_free(&b.fr);
    features_close(&b.ff);
    free(b.test), free(job_row), free(job_layer), free(has_page), free(saved), free(res_path), free(b.dir),
        free(final_dir);
    results_free(&b.res);
    report_options_free(&b.ro);
    return rc == 0 ? 0 : 1;
}

int browse_main(int argc, char **argv) {
    if (argc != 1) die("usage: stsae browse RUN_DIR");
    Comm *world = comm_world();
    int rc = 0;
    if (comm_rank(world) == 0) rc = browse_write(argv[0]);
    comm_bcast(world, &rc, 1, COMM_I32, 0, NULL);
    return rc;
}
