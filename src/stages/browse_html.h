// browse_html.h — the HTML of the feature browser (browse.c), internal to
// src/stages: pages written atomically, text escaped, and the few drawn
// pieces (a timeline as inline SVG, a histogram as bars) that need no
// picture file.
//
// In:  what browse.c has computed (numbers, names, file names of strips).
// Out: UTF-8 HTML5 files that open from file:// with no server and no network:
//      every page links the two shared assets, style.css and browse.js (sorted
//      and filtered tables), by relative paths; nothing else is fetched.
//      A page is written to PATH.tmp and renamed when whole (paths.h).
#ifndef STSAE_STAGES_BROWSE_HTML_H
#define STSAE_STAGES_BROWSE_HTML_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    char path[4096], tmp[4200];
    const char *root; // the way back to browser/ ("" or "../"): the assets' prefix
} Page;

// Opens PATH.tmp and writes the head: title (escaped) and the assets under
// `root` ("" for pages in browser/, "../" one level down). 0, or -1 with err.
int page_open(Page *p, const char *path, const char *title, const char *root, char *err, size_t cap);
// Writes the end of the page, syncs and renames it; adds its size to *bytes.
// 0, or -1 with "FILE: what: reason" in err.
int page_close(Page *p, uint64_t *bytes, char *err, size_t cap);

// Text as HTML (& < > " ' escaped).
void html_text(FILE *f, const char *s);
// A file name as one URL path segment: bytes outside [A-Za-z0-9._-]
// percent-encoded (job names hold '+').
void html_url(FILE *f, const char *s);
// A table cell with a number: data-v for sorting (the value, or "nan"), the
// value shown with `digits` significant digits ("—" for NaN).
void html_num_cell(FILE *f, double v, int digits);

// A latent's activation over the T steps of one clip as inline SVG: `at`
// (the value at its peak patch, a solid line with a dot per step, empty dots
// where it is 0: the flicker) and `mx` (the largest over the patches, dashed),
// both on the scale 0..vmax. data-at / data-max carry the values.
void svg_timeline(FILE *f, const float *at, const float *mx, int T, float vmax);

// Horizontal bars: names[i] with count[i] of `total`, largest first.
void html_bars(FILE *f, char *const *names, const int *count, int n, int total);

// Writes DIR/style.css and DIR/browse.js; adds their sizes to *bytes. 0, or
// -1 with err.
int browse_assets(const char *dir, uint64_t *bytes, char *err, size_t cap);

#endif
