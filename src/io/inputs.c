// inputs.c — clip lists from a CSV, Something-Something v2 JSON or the
// Kinetics-400 CSV (inputs.h).
//
// Every reader collects rows {path, clip_id, label text, split, line}; one
// finishing step numbers the labels, checks that no clip is listed twice and
// fills the ClipList. JSON files are walked one top-level entry at a time
// with cJSON, so that an error can name the line where its entry starts.
//
// Nothing is allocated from a number a file states: label indices are checked
// against INPUTS_MAX_LABELS (CSV) or against the number of labels labels.json
// actually gives before any table is sized by them, so a 17-byte list cannot
// ask for gigabytes. What is allocated grows with the file's own size (its
// text, one row per line or entry), and lines or entries past MAX_ROWS are
// refused so that no count overflows an int.
#define _POSIX_C_SOURCE 200809L // strcasecmp
#include "stsae/io/inputs.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"

enum { MAX_ROWS = INPUTS_MAX_ROWS }; // lines of a CSV, entries of a JSON file


// --- rows, and the finishing step -------------------------------------------------

typedef struct {
    char *path, *id, *label; // label: text (names) or decimal index
    int split, line;
} Row;

typedef struct {
    Row *r;
    int n, cap;
} Rows;

static void rows_add(Rows *rs, char *path, char *id, char *label, int split, int line) {
    if (rs->n == rs->cap) rs->r = xrealloc(rs->r, sizeof(Row) * (size_t)(rs->cap = 2 * rs->cap + 64));
    rs->r[rs->n++] = (Row){path, id, label, split, line};
}

static void rows_free(Rows *rs) {
    for (int i = 0; i < rs->n; i++) {
        free(rs->r[i].path);
        free(rs->r[i].id);
        free(rs->r[i].label);
    }
    free(rs->r);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int cmp_row_id(const void *a, const void *b) {
    const Row *x = *(const Row *const *)a, *y = *(const Row *const *)b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

// 1 when s is a decimal integer (digits with an optional sign), its value in
// *v (which stops growing past about 10^17, so never overflows: any such value
// is out of range anyway); 0 when it is not (a name).
static int label_integer(const char *s, long long *v) {
    const char *p = s + (*s == '-' || *s == '+');
    if (!*p) return 0;
    long long x = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p)) return 0;
        if (x < LLONG_MAX / 100) x = x * 10 + (*p - '0');
    }
    *v = *s == '-' ? -x : x;
    return 1;
}

// An index 0 .. INPUTS_MAX_LABELS-1 written in decimal, or -1.
static int parse_index(const char *s) {
    long long v;
    return label_integer(s, &v) && v >= 0 && v < INPUTS_MAX_LABELS ? (int)v : -1;
}

// "FILE:LINE: label index TEXT ..." for an integer label that is not an index.
static int index_error(const char *file, int line, const char *text, long long v, char *err, size_t cap) {
    if (v < 0)
        return errorf(err, cap, "%s:%d: label index %s is negative (label indices are 0..%d)", file, line, text,
                      INPUTS_MAX_LABELS - 1);
    return errorf(err, cap, "%s:%d: label index %s is too large (at most %d, INPUTS_MAX_LABELS - 1; give the labels "
                            "as names instead)", file, line, text, INPUTS_MAX_LABELS - 1);
}

int inputs_check_label_values(const char *file, const char *object, const float *v, size_t n, char *err,
                              size_t errcap) {
    for (size_t i = 0; i < n; i++)
        if (!(v[i] >= 0 && v[i] < (float)INPUTS_MAX_LABELS && v[i] == floorf(v[i])))
            return errorf(err, errcap, "%s: %s[%zu] = %.17g is not a label index (an integer 0..%d)", file, object, i,
                          (double)v[i], INPUTS_MAX_LABELS - 1);
    return 0;
}

// names: given (n_names of them, by index; rows' labels are indices) or NULL
// (rows' labels are all indices or all names, and the names are derived).
// Takes ownership of the rows' strings and of names.
static int finish(const char *file, Rows *rs, char **names, int n_names, ClipList *out, char *err, size_t cap) {
    memset(out, 0, sizeof(*out));
    int rc = 0;
    if (rs->n == 0) rc = errorf(err, cap, "%s: lists no clip", file);
    // a clip listed twice
    if (rc == 0) {
        const Row **ord = xmalloc(sizeof(Row *) * (size_t)rs->n);
        for (int i = 0; i < rs->n; i++) ord[i] = &rs->r[i];
        qsort(ord, (size_t)rs->n, sizeof(Row *), cmp_row_id);
        for (int i = 1; i < rs->n && rc == 0; i++)
            if (!strcmp(ord[i]->id, ord[i - 1]->id))
                rc = errorf(err, cap, "%s:%d: clip '%s' is listed twice (first at line %d)", file, ord[i]->line,
                          ord[i]->id, ord[i - 1]->line);
        free(ord);
    }
    int *label = rc == 0 ? xmalloc(sizeof(int) * (size_t)rs->n) : NULL;
    if (rc == 0 && names) {
        for (int i = 0; i < rs->n; i++) label[i] = parse_index(rs->r[i].label);
    } else if (rc == 0) {
        long long v;
        int numeric = label_integer(rs->r[0].label, &v), max = -1;
        for (int i = 0; i < rs->n && rc == 0; i++) {
            const Row *r = &rs->r[i];
            if (label_integer(r->label, &v) != numeric)
                rc = errorf(err, cap, "%s:%d: label '%s' is %s but line %d's is %s; use one kind", file, r->line,
                            r->label, numeric ? "a name" : "an index", rs->r[0].line, numeric ? "an index" : "a name");
            else if (numeric && (v < 0 || v >= INPUTS_MAX_LABELS))
                rc = index_error(file, r->line, r->label, v, err, cap);
            else if (numeric && v > max)
                max = (int)v;
        }
        if (rc == 0 && numeric) {
            n_names = max + 1;
            names = xmalloc(sizeof(char *) * (size_t)n_names);
            for (int k = 0; k < n_names; k++) {
                char b[16];
                snprintf(b, sizeof(b), "%d", k);
                names[k] = xstrdup(b);
            }
            for (int i = 0; i < rs->n; i++) label[i] = parse_index(rs->r[i].label);
        } else if (rc == 0) {
            char **all = xmalloc(sizeof(char *) * (size_t)rs->n);
            for (int i = 0; i < rs->n; i++) all[i] = rs->r[i].label;
            qsort(all, (size_t)rs->n, sizeof(char *), cmp_str);
            names = xmalloc(sizeof(char *) * (size_t)rs->n);
            for (int i = 0; i < rs->n; i++)
                if (i == 0 || strcmp(all[i], all[i - 1])) names[n_names++] = xstrdup(all[i]);
            free(all);
            if (n_names > INPUTS_MAX_LABELS)
                rc = errorf(err, cap, "%s: %d distinct labels, more than INPUTS_MAX_LABELS (%d)", file, n_names,
                            INPUTS_MAX_LABELS);
            for (int i = 0; i < rs->n && rc == 0; i++) {
                char **hit = bsearch(&rs->r[i].label, names, (size_t)n_names, sizeof(char *), cmp_str);
                label[i] = (int)(hit - names);
            }
        }
    }
    if (rc == 0) {
        out->clip = xmalloc(sizeof(ClipEntry) * (size_t)rs->n);
        out->n = rs->n;
        for (int i = 0; i < rs->n; i++) {
            Row *r = &rs->r[i];
            out->clip[i] = (ClipEntry){r->path, r->id, label[i], r->split};
            free(r->label);
        }
        out->label_names = names;
        out->n_labels = n_names;
        free(rs->r);
    } else {
        for (int k = 0; k < n_names; k++) free(names[k]);
        free(names);
        rows_free(rs);
    }
    free(label);
    memset(rs, 0, sizeof(*rs));
    return rc;
}

void inputs_free(ClipList *l) {
    for (int i = 0; i < l->n; i++) {
        free(l->clip[i].path);
        free(l->clip[i].clip_id);
    }
    for (int k = 0; k < l->n_labels; k++) free(l->label_names[k]);
    free(l->clip);
    free(l->label_names);
    memset(l, 0, sizeof(*l));
}

// --- CSV ------------------------------------------------------------------------------

#define MAX_FIELDS 16

// Splits one line (no newline) in place into at most MAX_FIELDS fields:
// unquoted fields are trimmed; "quoted" fields keep their spaces, "" is a
// quote. The field count, or -1 with the reason in *why.
static int csv_fields(char *s, char **f, const char **why) {
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        if (n == MAX_FIELDS) {
            *why = "too many fields";
            return -1;
        }
        char *o = s;
        f[n++] = o;
        if (*s == '"') {
            for (s++;; s++) {
                if (!*s) {
                    *why = "unterminated quote";
                    return -1;
                }
                if (*s == '"' && s[1] == '"') *o++ = '"', s++;
                else if (*s == '"') break;
                else *o++ = *s;
            }
            s++;
            while (*s == ' ' || *s == '\t') s++;
            if (*s && *s != ',') {
                *why = "text after a closing quote";
                return -1;
            }
        } else {
            while (*s && *s != ',') s++;
            char *e = s;
            while (e > o && (e[-1] == ' ' || e[-1] == '\t')) e--;
            if (*s) o = e; // o: where this field ends
            else {
                *e = 0;
                return n;
            }
        }
        char c = *s;
        *o = 0;
        if (!c) return n;
        s++;
    }
}

// Calls fn on each line that is not blank or a comment, with its fields.
typedef int (*CsvRow)(void *ctx, int line, char **f, int n, char *err, size_t cap);

static int csv_each(const char *file, CsvRow fn, void *ctx, char *err, size_t cap) {
    char *text = path_read_all(file, NULL, err, cap);
    if (!text) return -1;
    int rc = 0, line = 0;
    char *f[MAX_FIELDS];
    for (char *s = text; s && rc == 0;) {
        char *nl = strchr(s, '\n'), *next = nl ? nl + 1 : NULL;
        if (nl) *nl = 0;
        size_t n = strlen(s);
        if (n && s[n - 1] == '\r') s[--n] = 0;
        if (++line > MAX_ROWS) {
            rc = errorf(err, cap, "%s:%d: more than %d lines", file, line, MAX_ROWS);
            break;
        }
        const char *p = s;
        while (*p == ' ' || *p == '\t') p++;
        if (line == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
            p += 3; // UTF-8 byte order mark
        if (*p && *p != '#') {
            const char *why = NULL;
            int nf = csv_fields((char *)p, f, &why);
            rc = nf < 0 ? errorf(err, cap, "%s:%d: %s", file, line, why) : fn(ctx, line, f, nf, err, cap);
        }
        s = next;
    }
    free(text);
    return rc;
}

static int parse_split(const char *s) {
    if (!*s) return -1;
    if (!strcmp(s, "train") || !strcmp(s, "0")) return 0;
    if (!strcmp(s, "test") || !strcmp(s, "1") || !strcmp(s, "val") || !strcmp(s, "validation")) return 1;
    return -2;
}

typedef struct {
    const char *file;
    char *dir;
    Rows rows;
    int seen; // lines read (the first may be a header)
} CsvCtx;

static int csv_row(void *vc, int line, char **f, int n, char *err, size_t cap) {
    CsvCtx *c = vc;
    if (c->seen++ == 0 && !strcasecmp(f[0], "path")) return 0; // header
    if (n < 2 || n > 3)
        return errorf(err, cap, "%s:%d: expected path,label[,split], got %d field%s", c->file, line, n, n == 1 ? "" : "s");
    if (!f[0][0]) return errorf(err, cap, "%s:%d: empty path", c->file, line);
    if (!f[1][0]) return errorf(err, cap, "%s:%d: empty label", c->file, line);
    int split = n == 3 ? parse_split(f[2]) : -1;
    if (split == -2) return errorf(err, cap, "%s:%d: split '%s' is not train, test, val, 0 or 1", c->file, line, f[2]);
    rows_add(&c->rows, path_join(c->dir, f[0]), xstrdup(f[0]), xstrdup(f[1]), split, line);
    return 0;
}

int inputs_read_csv(const char *csv, ClipList *out, char *err, size_t errcap) {
    memset(out, 0, sizeof(*out));
    CsvCtx c = {.file = csv, .dir = path_dir(csv)};
    int rc = csv_each(csv, csv_row, &c, err, errcap);
    free(c.dir);
    if (rc != 0) {
        rows_free(&c.rows);
        return -1;
    }
    return finish(csv, &c.rows, NULL, 0, out, err, errcap);
}

// --- Kinetics-400 -----------------------------------------------------------------------

enum { K_LABEL, K_ID, K_START, K_END, K_SPLIT, K_COLS };
static const char *const K_NAMES[K_COLS] = {"label", "youtube_id", "time_start", "time_end", "split"};

typedef struct {
    const char *file, *videos;
    int col[K_COLS]; // field index of each column, -1 if absent
    int seen;
    Rows rows;
} K400Ctx;

// A time in whole seconds ("14" or "14.0"), or -1.
static long parse_seconds(const char *s) {
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (e == s || *e || errno || !(v >= 0) || v > 1e9 || v != floor(v)) return -1;
    return (long)v;
}

static int k400_row(void *vc, int line, char **f, int n, char *err, size_t cap) {
    K400Ctx *c = vc;
    if (c->seen++ == 0) {
        int header = 0;
        for (int i = 0; i < n; i++) header |= !strcmp(f[i], "youtube_id");
        for (int k = 0; k < K_COLS; k++) c->col[k] = header ? -1 : k;
        if (header) {
            for (int i = 0; i < n; i++)
                for (int k = 0; k < K_COLS; k++)
                    if (!strcmp(f[i], K_NAMES[k])) c->col[k] = i;
            for (int k = 0; k < K_SPLIT; k++)
                if (c->col[k] < 0) return errorf(err, cap, "%s:%d: header has no column '%s'", c->file, line, K_NAMES[k]);
            return 0;
        }
    }
    int need = 0;
    for (int k = 0; k < K_COLS; k++)
        if (c->col[k] >= need && (k < K_SPLIT || c->col[k] < n)) need = c->col[k] + 1;
    if (n < need || n < K_SPLIT)
        return errorf(err, cap, "%s:%d: expected label,youtube_id,time_start,time_end,split, got %d fields", c->file,
                    line, n);
    const char *label = f[c->col[K_LABEL]], *yid = f[c->col[K_ID]];
    if (!label[0]) return errorf(err, cap, "%s:%d: empty label", c->file, line);
    if (!yid[0]) return errorf(err, cap, "%s:%d: empty youtube_id", c->file, line);
    if (strchr(yid, '/')) // "/x" or "a/../../x" would name a file outside VIDEOS
        return errorf(err, cap, "%s:%d: youtube_id '%s' holds a '/'", c->file, line, yid);
    long t0 = parse_seconds(f[c->col[K_START]]), t1 = parse_seconds(f[c->col[K_END]]);
    if (t0 < 0) return errorf(err, cap, "%s:%d: time_start '%s' is not whole seconds", c->file, line, f[c->col[K_START]]);
    if (t1 < 0) return errorf(err, cap, "%s:%d: time_end '%s' is not whole seconds", c->file, line, f[c->col[K_END]]);
    int split = -1;
    if (c->col[K_SPLIT] >= 0 && c->col[K_SPLIT] < n) {
        const char *s = f[c->col[K_SPLIT]];
        split = parse_split(s);
        if (split == -2) return errorf(err, cap, "%s:%d: split '%s' is not train, val or test", c->file, line, s);
    }
    char stem[512];
    if (snprintf(stem, sizeof(stem), "%s_%06ld_%06ld", yid, t0, t1) >= (int)sizeof(stem))
        return errorf(err, cap, "%s:%d: youtube_id too long", c->file, line);
    char file[520];
    snprintf(file, sizeof(file), "%s.mp4", stem);
    rows_add(&c->rows, path_join(c->videos, file), xstrdup(stem), xstrdup(label), split, line);
    return 0;
}

int inputs_read_k400(const char *videos, const char *csv, ClipList *out, char *err, size_t errcap) {
    memset(out, 0, sizeof(*out));
    K400Ctx c = {.file = csv, .videos = videos};
    if (csv_each(csv, k400_row, &c, err, errcap) != 0) {
        rows_free(&c.rows);
        return -1;
    }
    long long v;
    for (int i = 0; i < c.rows.n; i++)
        if (label_integer(c.rows.r[i].label, &v)) {
            errorf(err, errcap, "%s:%d: label '%s' is a number; Kinetics labels are class names", csv,
                   c.rows.r[i].line, c.rows.r[i].label); // before the rows (and the label) are freed
            rows_free(&c.rows);
            return -1;
        }
    return finish(csv, &c.rows, NULL, 0, out, err, errcap);
}

// --- Something-Something v2 --------------------------------------------------------------

static int count_nl(const char *a, const char *b) {
    int n = 0;
    for (; a < b; a++) n += *a == '\n';
    return n;
}

// Walks the top-level array ('[') or object ('{') of a JSON text, calling fn
// with each element (key NULL) or member, and the line where it starts.
typedef int (*JsonItem)(void *ctx, const char *key, const cJSON *v, int line, char *err, size_t cap);

static int json_each(const char *file, const char *text, size_t len, char open, JsonItem fn, void *ctx, char *err,
                     size_t cap) {
    const char *p = text, *end = text + len, *counted = text;
    int line = 1;
#define AT(q) (line += count_nl(counted, (q)), counted = (q), line)
    const char close = open == '[' ? ']' : '}';
    int rc = 0, first = 1, items = 0;
    for (;;) {
        while (p < end && isspace((unsigned char)*p)) p++;
        if (++items > MAX_ROWS) return errorf(err, cap, "%s:%d: more than %d entries", file, AT(p), MAX_ROWS);
        if (first) {
            if (p == end || *p != open)
                return errorf(err, cap, "%s:%d: expected a JSON %s", file, AT(p), open == '[' ? "list" : "object");
            p++;
            while (p < end && isspace((unsigned char)*p)) p++;
            if (p < end && *p == close) return 0;
        }
        first = 0;
        char *key = NULL;
        const char *pe;
        if (open == '{') {
            cJSON *k = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &pe, 0);
            if (!k || !cJSON_IsString(k)) {
                cJSON_Delete(k);
                return errorf(err, cap, "%s:%d: expected a key string", file, AT(p));
            }
            key = xstrdup(k->valuestring);
            cJSON_Delete(k);
            p = pe;
            while (p < end && isspace((unsigned char)*p)) p++;
            if (p == end || *p != ':') {
                free(key);
                return errorf(err, cap, "%s:%d: expected ':' after key", file, AT(p));
            }
            p++;
            while (p < end && isspace((unsigned char)*p)) p++;
        }
        int at = AT(p);
        cJSON *v = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &pe, 0);
        if (!v) {
            const char *e = cJSON_GetErrorPtr();
            free(key);
            return errorf(err, cap, "%s:%d: JSON syntax error", file, AT(e && e >= p && e <= end ? e : p));
        }
        rc = fn(ctx, key, v, at, err, cap);
        cJSON_Delete(v);
        free(key);
        if (rc != 0) return rc;
        p = pe;
        while (p < end && isspace((unsigned char)*p)) p++;
        if (p < end && *p == close) break;
        if (p == end || *p != ',')
            return errorf(err, cap, "%s:%d: expected ',' or '%c'", file, AT(p), close);
        p++;
    }
    for (p++; p < end && isspace((unsigned char)*p); p++) {}
    if (p != end) return errorf(err, cap, "%s:%d: text after the JSON %s", file, AT(p), open == '[' ? "list" : "object");
#undef AT
    return 0;
}

// labels.json's members in file order; the table by index is built only once
// their number is known, so an index is bounded by it, not by its value.
typedef struct {
    char *name;
    long long index;
    int line;
} LabelItem;

typedef struct {
    const char *file;
    LabelItem *item;
    int n, cap;
} LabelsCtx;

static int labels_item(void *vc, const char *key, const cJSON *v, int line, char *err, size_t cap) {
    LabelsCtx *c = vc;
    long long idx = -1;
    if (cJSON_IsString(v)) {
        if (!label_integer(v->valuestring, &idx)) idx = -1;
    } else if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble)) {
        const double x = v->valuedouble; // clamped before the cast: -1e22 would not fit long long
        idx = x < 0 ? -1 : x > 9e18 ? (long long)9e18 : (long long)x;
    }
    if (idx < 0) return errorf(err, cap, "%s:%d: '%s': the index must be a non-negative integer", c->file, line, key);
    if (c->n == c->cap) c->item = xrealloc(c->item, sizeof(LabelItem) * (size_t)(c->cap = 2 * c->cap + 64));
    c->item[c->n++] = (LabelItem){xstrdup(key), idx, line};
    return 0;
}

// The names by index (n of them, indices 0..n-1 each given once), or NULL with
// "FILE:LINE: ..." naming the first member whose index is out of range or taken.
static char **labels_table(const LabelsCtx *c, int **line_of, char *err, size_t cap) {
    const int n = c->n;
    if (n == 0) return errorf(err, cap, "%s: no label", c->file), NULL;
    if (n > INPUTS_MAX_LABELS)
        return errorf(err, cap, "%s: %d labels, more than INPUTS_MAX_LABELS (%d)", c->file, n, INPUTS_MAX_LABELS), NULL;
    char **names = xcalloc((size_t)n, sizeof(char *));
    int *line = xcalloc((size_t)n, sizeof(int));
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const LabelItem *it = &c->item[i];
        if (it->index >= n) {
            for (int j = 0; j < n; j++)
                if (c->item[j].index < n) line[c->item[j].index] = 1;
            int missing = 0;
            while (line[missing]) missing++; // one exists: this index takes no slot below n
            rc = errorf(err, cap, "%s:%d: '%s' has index %lld, but the file gives %d labels (indices must be 0..%d; no "
                                  "label has index %d)", c->file, it->line, it->name, it->index, n, n - 1, missing);
        }
    }
    for (int i = 0; i < n && rc == 0; i++) {
        const LabelItem *it = &c->item[i];
        const int k = (int)it->index;
        if (names[k])
            rc = errorf(err, cap, "%s:%d: '%s' has index %d, as '%s' at line %d", c->file, it->line, it->name, k,
                        names[k], line[k]);
        names[k] = it->name;
        line[k] = it->line;
    }
    if (rc != 0) {
        free(names);
        free(line);
        return NULL;
    }
    *line_of = line;
    return names;
}

typedef struct {
    const char *name;
    int index;
} NamedIndex;

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const NamedIndex *)a)->name, ((const NamedIndex *)b)->name);
}

typedef struct {
    const char *file, *labels_file, *videos;
    NamedIndex *sorted; // the labels in byte order of their names, for bsearch
    int n_labels;
    int entry;
    Rows rows;
} AnnCtx;

static int ann_item(void *vc, const char *key, const cJSON *v, int line, char *err, size_t cap) {
    AnnCtx *c = vc;
    int entry = c->entry++;
    if (!cJSON_IsObject(v)) return errorf(err, cap, "%s:%d: entry %d is not an object", c->file, line, entry);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, "id");
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(v, "template");
    char num[32];
    const char *idb = num; // the id as text, whole
    if (cJSON_IsString(id) && id->valuestring[0] && !strchr(id->valuestring, '/'))
        idb = id->valuestring;
    else if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < 9007199254740992.0 &&
             id->valuedouble == floor(id->valuedouble))
        snprintf(num, sizeof(num), "%.0f", id->valuedouble);
    else
        return errorf(err, cap, "%s:%d: entry %d has no 'id' (a string without '/', or an integer 0..2^53)", c->file,
                      line, entry);
    if (!cJSON_IsString(tpl))
        return errorf(err, cap, "%s:%d: entry %d (id %s) has no 'template'", c->file, line, entry, idb);
    // the class: the template without its brackets
    size_t n = strlen(tpl->valuestring);
    char *name = xmalloc(n + 1), *o = name;
    for (const char *s = tpl->valuestring; *s; s++)
        if (*s != '[' && *s != ']') *o++ = *s;
    *o = 0;
    NamedIndex want = {name, -1};
    const NamedIndex *hit = bsearch(&want, c->sorted, (size_t)c->n_labels, sizeof(NamedIndex), cmp_named);
    int found = hit ? hit->index : -1;
    if (found < 0) {
        int rc = errorf(err, cap, "%s:%d: entry %d (id %s): class '%s' is not in %s", c->file, line, entry, idb, name,
                      c->labels_file);
        free(name);
        return rc;
    }
    free(name);
    const size_t n_id = strlen(idb);
    char *file = xmalloc(n_id + 6), lab[16];
    memcpy(file, idb, n_id);
    memcpy(file + n_id, ".webm", 6);
    snprintf(lab, sizeof(lab), "%d", found);
    rows_add(&c->rows, path_join(c->videos, file), xstrdup(idb), xstrdup(lab), -1, line);
    free(file);
    return 0;
}

int inputs_read_ssv2(const char *videos, const char *annotations, const char *labels, ClipList *out, char *err,
                     size_t errcap) {
    memset(out, 0, sizeof(*out));
    size_t len;
    char *text = path_read_all(labels, &len, err, errcap);
    if (!text) return -1;
    LabelsCtx lc = {.file = labels};
    int rc = json_each(labels, text, len, '{', labels_item, &lc, err, errcap);
    free(text);
    char **names = NULL; // by index, lc.n of them (the strings belong to lc.item)
    int *line_of = NULL;
    if (rc == 0) {
        names = labels_table(&lc, &line_of, err, errcap);
        rc = names ? 0 : -1;
    }
    AnnCtx ac = {.file = annotations, .labels_file = labels, .videos = videos, .n_labels = lc.n};
    if (rc == 0) {
        ac.sorted = xmalloc(sizeof(NamedIndex) * (size_t)lc.n);
        for (int k = 0; k < lc.n; k++) ac.sorted[k] = (NamedIndex){names[k], k};
        qsort(ac.sorted, (size_t)lc.n, sizeof(NamedIndex), cmp_named);
        for (int k = 1; k < lc.n && rc == 0; k++)
            if (!strcmp(ac.sorted[k].name, ac.sorted[k - 1].name))
                rc = errorf(err, errcap, "%s:%d: label '%s' is listed twice", labels, line_of[ac.sorted[k].index],
                          ac.sorted[k].name);
    }
    if (rc == 0) {
        text = path_read_all(annotations, &len, err, errcap);
        rc = text ? json_each(annotations, text, len, '[', ann_item, &ac, err, errcap) : -1;
        free(text);
    }
    free(ac.sorted);
    free(line_of);
    if (rc != 0) {
        for (int k = 0; k < lc.n; k++) free(lc.item[k].name); // the strings `names` points to
        free(lc.item);
        free(names);
        rows_free(&ac.rows);
        return -1;
    }
    free(lc.item); // its strings now belong to `names`, which finish takes
    return finish(annotations, &ac.rows, names, lc.n, out, err, errcap);
}

// --- default split -------------------------------------------------------------------------

void inputs_default_split(ClipList *l, double test_frac, uint64_t seed) {
    int *pick = xmalloc(sizeof(int) * (size_t)(l->n ? l->n : 1));
    for (int lab = 0; lab < l->n_labels; lab++) {
        int n = 0;
        for (int i = 0; i < l->n; i++)
            if (l->clip[i].label == lab && l->clip[i].split < 0) pick[n++] = i;
        uint64_t st = seed * 0x9E3779B97F4A7C15ull + (uint64_t)lab;
        for (int i = n - 1; i > 0; i--) { // Fisher-Yates
            int j = (int)(rng_next(&st) % (uint64_t)(i + 1));
            int t = pick[i];
            pick[i] = pick[j];
            pick[j] = t;
        }
        int n_test = (int)floor(test_frac * n + 0.5);
        for (int i = 0; i < n; i++) l->clip[pick[i]].split = i < n_test;
    }
    free(pick);
}
