// browse_html.c — the feature browser's HTML (browse_html.h): page frames,
// escaping, the inline SVG timeline and bars, and the two shared assets.
//
// browse.js makes every <table class="sortable"> sortable by a click on a
// column head (numbers by their data-v, NaN last; text otherwise) and
// filterable by an <input class="filter" data-table=ID> (rows whose text
// holds every word typed). The page's address can ask for both:
// JOB/index.html#sort=lag1:desc&filter=push sorts and filters on load, so a
// view can be shared as a link (and a test can check the script ran: the
// table's data-sorted attribute and the shown-row count).
#define _POSIX_C_SOURCE 200809L
#include "browse_html.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"

static const char STYLE_CSS[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.2em 2em;color:#1b1b1b;background:#fafafa}\n"
    "h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}\n"
    "a{color:#0b57a4;text-decoration:none}a:hover{text-decoration:underline}\n"
    ".nav{margin-bottom:.8em;color:#666}.note{color:#555;max-width:70em}\n"
    "table{border-collapse:collapse;background:#fff}th,td{padding:2px 8px;border-bottom:1px solid #e4e4e4;"
    "text-align:right;white-space:nowrap}\n"
    "th{position:sticky;top:0;background:#eef2f6;cursor:pointer;user-select:none}td.t,th.t{text-align:left}\n"
    "th.sorted-asc::after{content:' \\25B2'}th.sorted-desc::after{content:' \\25BC'}\n"
    "tr.high td:first-child{border-left:4px solid #d9822b}\n"
    ".filter{margin:.4em 0;padding:3px 6px;width:22em}\n"
    ".clip{display:flex;gap:14px;align-items:center;margin:8px 0;padding:6px;background:#fff;border:1px solid #e4e4e4}\n"
    ".meta{min-width:15em}img.frames{display:block;margin-bottom:3px}\n"
    ".heat{position:relative}.heat img.ov{position:absolute;left:0;top:0;image-rendering:pixelated}\n"
    ".pair{display:grid;grid-template-columns:1fr 1fr;gap:16px}.cmp{margin:8px 0}\n"
    ".bar{display:flex;align-items:center;gap:6px}.bar span.b{display:inline-block;height:12px;background:#5b8fd0}\n"
    "svg.tl{background:#fff;border:1px solid #ddd}\n";

static const char BROWSE_JS[] =
    "// browse.js: sortable and filterable tables of the stsae feature browser (no network, no library)\n"
    "(function () {\n"
    "  'use strict';\n"
    "  function val(td) {\n"
    "    var v = td.getAttribute('data-v');\n"
    "    return v === null ? td.textContent.trim().toLowerCase() : parseFloat(v);\n"
    "  }\n"
    "  function sortBy(table, col, desc) {\n"
    "    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);\n"
    "    rows.sort(function (a, b) {\n"
    "      var x = val(a.cells[col]), y = val(b.cells[col]);\n"
    "      var nx = typeof x === 'number', ny = typeof y === 'number';\n"
    "      if (nx && ny) {\n"
    "        if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);\n"
    "        return desc ? y - x : x - y;\n"
    "      }\n"
    "      var c = String(x).localeCompare(String(y));\n"
    "      return desc ? -c : c;\n"
    "    });\n"
    "    rows.forEach(function (r) { body.appendChild(r); });\n"
    "    var heads = table.tHead.rows[0].cells;\n"
    "    for (var i = 0; i < heads.length; i++) heads[i].className = heads[i].className.replace(/ ?sorted-\\w+/g, '');\n"
    "    heads[col].className += ' sorted-' + (desc ? 'desc' : 'asc');\n"
    "    table.setAttribute('data-sorted', heads[col].getAttribute('data-col') + (desc ? ':desc' : ':asc'));\n"
    "  }\n"
    "  function column(table, name) {\n"
    "    var heads = table.tHead.rows[0].cells;\n"
    "    for (var i = 0; i < heads.length; i++) if (heads[i].getAttribute('data-col') === name) return i;\n"
    "    return -1;\n"
    "  }\n"
    "  function filter(table, text) {\n"
    "    var words = text.toLowerCase().split(/\\s+/).filter(Boolean), shown = 0;\n"
    "    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {\n"
    "      var t = r.textContent.toLowerCase();\n"
    "      var ok = words.every(function (w) { return t.indexOf(w) >= 0; });\n"
    "      r.style.display = ok ? '' : 'none';\n"
    "      shown += ok;\n"
    "    });\n"
    "    table.setAttribute('data-shown', shown);\n"
    "    var count = document.getElementById(table.id + '-count');\n"
    "    if (count) count.textContent = shown + ' shown';\n"
    "  }\n"
    "  var tables = document.querySelectorAll('table.sortable');\n"
    "  Array.prototype.forEach.call(tables, function (table) {\n"
    "    var heads = table.tHead.rows[0].cells;\n"
    "    Array.prototype.forEach.call(heads, function (th, i) {\n"
    "      th.addEventListener('click', function () {\n"
    "        sortBy(table, i, table.getAttribute('data-sorted') !== th.getAttribute('data-col') + ':desc');\n"
    "      });\n"
    "    });\n"
    "  });\n"
    "  Array.prototype.forEach.call(document.querySelectorAll('input.filter'), function (input) {\n"
    "    var table = document.getElementById(input.getAttribute('data-table'));\n"
    "    if (table) input.addEventListener('input', function () { filter(table, input.value); });\n"
    "  });\n"
    "  // #sort=COL[:asc|:desc]&filter=WORDS on the first sortable table\n"
    "  if (tables.length && location.hash.length > 1) {\n"
    "    location.hash.slice(1).split('&').forEach(function (kv) {\n"
    "      var p = kv.split('='), v = decodeURIComponent(p[1] || '');\n"
    "      if (p[0] === 'sort') {\n"
    "        var c = column(tables[0], v.split(':')[0]);\n"
    "        if (c >= 0) sortBy(tables[0], c, v.split(':')[1] !== 'asc');\n"
    "      } else if (p[0] === 'filter') {\n"
    "        var input = document.querySelector('input.filter[data-table=\"' + tables[0].id + '\"]');\n"
    "        if (input) input.value = v;\n"
    "        filter(tables[0], v);\n"
    "      }\n"
    "    });\n"
    "  }\n"
    "})();\n";

int page_open(Page *p, const char *path, const char *title, const char *root, char *err, size_t cap) {
    snprintf(p->path, sizeof(p->path), "%s", path);
    p->f = path_tmp_open(path, p->tmp, sizeof(p->tmp), err, cap);
    if (!p->f) return -1;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", p->f);
    html_text(p->f, title);
    fprintf(p->f, "</title>\n<link rel=\"stylesheet\" href=\"%sstyle.css\">\n</head><body>\n", root);
    p->root = root;
    return 0;
}

int page_close(Page *p, uint64_t *bytes, char *err, size_t cap) {
    fprintf(p->f, "<script src=\"%sbrowse.js\"></script>\n</body></html>\n", p->root);
    const long size = ftell(p->f);
    if (path_tmp_commit(p->f, p->tmp, p->path, err, cap) != 0) return -1;
    *bytes += size > 0 ? (uint64_t)size : 0;
    return 0;
}

void html_text(FILE *f, const char *s) {
    for (; *s; s++) switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
}

void html_url(FILE *f, const char *s) {
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' ||
            *c == '_' || *c == '-')
            fputc(*c, f);
        else
            fprintf(f, "%%%02X", *c);
    }
}

void html_num_cell(FILE *f, double v, int digits) {
    if (isnan(v)) fputs("<td data-v=\"nan\">&mdash;</td>", f);
    else fprintf(f, "<td data-v=\"%.9g\">%.*g</td>", v, digits, v);
}

#define TL_W 260
#define TL_H 64
#define TL_PAD 6

void svg_timeline(FILE *f, const float *at, const float *mx, int T, float vmax) {
    const double sx = T > 1 ? (double)(TL_W - 2 * TL_PAD) / (T - 1) : 0.0, sy = (TL_H - 2 * TL_PAD) / (vmax > 0 ? vmax : 1);
    fprintf(f, "<svg class=\"tl\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" data-at=\"", TL_W, TL_H, TL_W, TL_H);
    for (int t = 0; t < T; t++) fprintf(f, "%s%.6g", t ? " " : "", at[t]);
    fputs("\" data-max=\"", f);
    for (int t = 0; t < T; t++) fprintf(f, "%s%.6g", t ? " " : "", mx[t]);
    fputs("\">", f);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#bbb\"/>", TL_PAD, TL_H - TL_PAD, TL_W - TL_PAD,
            TL_H - TL_PAD);
    for (int k = 0; k < 2; k++) {
        const float *v = k ? at : mx;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s points=\"", k ? "#c0392b" : "#888",
                k ? "2" : "1.2", k ? "" : " stroke-dasharray=\"4 3\"");
        for (int t = 0; t < T; t++) fprintf(f, "%s%.1f,%.1f", t ? " " : "", TL_PAD + sx * t, TL_H - TL_PAD - sy * v[t]);
        fputs("\"/>", f);
    }
    for (int t = 0; t < T; t++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\" stroke=\"#c0392b\"/>", TL_PAD + sx * t,
                TL_H - TL_PAD - sy * at[t], at[t] > 0 ? "#c0392b" : "#fff");
    fputs("</svg>", f);
}

void html_bars(FILE *f, char *const *names, const int *count, int n, int total) {
    int *order = xmalloc(sizeof(int) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) // insertion sort: largest count first, then name order
        for (int j = i; j > 0 && count[order[j]] > count[order[j - 1]]; j--) {
            const int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        const int c = count[order[i]];
        if (c == 0) continue;
        fprintf(f, "<div class=\"bar\"><span class=\"b\" style=\"width:%dpx\"></span>%d/%d ", 12 + 200 * c / (total ? total : 1),
                c, total);
        html_text(f, names[order[i]]);
        fputs("</div>\n", f);
    }
    free(order);
}

static int write_asset(const char *dir, const char *name, const char *text, uint64_t *bytes, char *err, size_t cap) {
    char *path = path_join(dir, name), tmp[4200];
    FILE *f = path_tmp_open(path, tmp, sizeof(tmp), err, cap);
    int rc = -1;
    if (f) {
        fputs(text, f);
        rc = path_tmp_commit(f, tmp, path, err, cap);
        if (rc == 0) *bytes += strlen(text);
    }
    free(path);
    return rc;
}

int browse_assets(const char *dir, uint64_t *bytes, char *err, size_t cap) {
    if (write_asset(dir, "style.css", STYLE_CSS, bytes, err, cap) != 0) return -1;
    if (PLANTED("browse_js_error")) { // a script that fails in the browser
        char *js = xmalloc(sizeof(BROWSE_JS) + 64);
        snprintf(js, sizeof(BROWSE_JS) + 64, "%sbrowseUndefined();\n", BROWSE_JS);
        const int rc = write_asset(dir, "browse.js", js, bytes, err, cap);
        free(js);
        return rc;
    }
    return write_asset(dir, "browse.js", BROWSE_JS, bytes, err, cap);
}
