// deck.c — strict YAML decks (see deck.h).
//
// In:  a deck file, `a.b=value` overrides, a schema table.
// Out: a validated tree (Node) with defaults filled, getters on dotted paths,
//      the resolved deck as YAML, or one error message naming file, line, key.
//
// Flow of deck_load: libyaml's document API gives nodes with 0-based marks;
// convert() copies them into Nodes with 1-based lines, rejecting duplicate
// keys (libyaml accepts them silently); each override is parsed as a YAML
// flow value and grafted at its path; check_map() then walks the tree against
// the schema (unknown keys, types, ranges, enums, required keys), fills the
// defaults (parsed like overrides, so the table's defaults are checked too),
// and rewrites numbers in canonical form. libyaml does no typing: every
// scalar is text, and the schema decides what it must parse as.
//
// libyaml keeps an alias as a reference to its anchor; convert() copies the
// anchored value at every use, so a few hundred bytes of nested aliases
// ("billion laughs") would expand to billions of nodes. convert() counts the
// nodes it makes and stops at MAX_NODES (100,000: a deck of the paper's grid
// holds a few hundred) with a `FILE:LINE: key` error. Integers must fit
// int64_t (no silent LLONG_MAX) and then the schema's range.
#include "stsae/deck/deck.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "stsae/base/common.h"

#define PATH_CAP 256 // longest dotted path, indices included
#define MAX_SEGS 16  // segments of a dotted path
#define MAX_DEPTH 32 // nesting of a deck (also stops self-referencing aliases)
#define MAX_NODES 100000 // values of one load, aliases expanded (stops "billion laughs")
#define COMMENT_COL 44

typedef enum { N_SCALAR, N_LIST, N_MAP } Kind;

typedef struct Node Node;
struct Node {
    Kind kind;
    char *key;             // its key in the parent map; NULL in a list and at the root
    char *text;            // scalar text
    int quoted;            // scalar was quoted: a string even when it reads "null"
    const char *origin;    // file, "command line: ARG" or "default"
    int line;              // 1-based line in origin; 0 when origin is not a file
    const DeckKey *schema; // set by validation
    Node **kid;            // list elements or map entries, in order
    int n, cap;
};

struct Deck {
    const DeckKey *schema;
    Node *root;
    char *file;     // the origin of every node from the file
    char **origins; // "command line: ARG" of each override
    int n_origins;
};

typedef struct {
    Deck *d;
    char *err;
    size_t cap;
    long nodes;   // converted so far (file, overrides, defaults), against MAX_NODES
    int key_line; // line of the innermost key being converted (aliases keep their anchor's lines)
} Ctx;

// --- nodes --------------------------------------------------------------------

static Node *node_new(Kind kind, const char *origin, int line) {
    Node *n = xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->origin = origin;
    n->line = line;
    return n;
}

static void node_add(Node *parent, Node *kid) {
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? 2 * parent->cap : 8;
        parent->kid = xrealloc(parent->kid, sizeof(Node *) * parent->cap);
    }
    parent->kid[parent->n++] = kid;
}

static void node_free(Node *n) {
    if (!n) return;
    for (int i = 0; i < n->n; i++) node_free(n->kid[i]);
    free(n->kid);
    free(n->key);
    free(n->text);
    free(n);
}

static Node *node_child(const Node *map, const char *key) {
    for (int i = 0; i < map->n; i++)
        if (!strcmp(map->kid[i]->key, key)) return map->kid[i];
    return NULL;
}

static int is_null(const Node *n) {
    return n->kind == N_SCALAR && !n->quoted &&
           (!n->text[0] || !strcmp(n->text, "~") || !strcmp(n->text, "null"));
}

// An empty value where a map belongs (`synth:`) is an empty map.
static void null_to_map(Node *n) {
    if (!is_null(n)) return;
    n->kind = N_MAP;
    free(n->text);
    n->text = NULL;
}

// A lone scalar where a list belongs is a one-element list.
static void wrap_in_list(Node *n) {
    Node *el = node_new(N_SCALAR, n->origin, n->line);
    el->text = n->text;
    el->quoted = n->quoted;
    n->text = NULL;
    n->kind = N_LIST;
    node_add(n, el);
}

// --- paths ----------------------------------------------------------------------

typedef struct {
    char name[64];
    int idx; // -1: no [i]
} Seg;

// In place: path = path.key (truncated at PATH_CAP, like every path here).
static void append(char *path, const char *key) {
    size_t n = strlen(path), k = strlen(key);
    if (n && n + 1 < PATH_CAP) path[n++] = '.';
    if (k > PATH_CAP - 1 - n) k = PATH_CAP - 1 - n;
    memcpy(path + n, key, k);
    path[n + k] = 0;
}

static void append_index(char *path, int i) {
    char ix[16];
    snprintf(ix, sizeof(ix), "[%d]", i);
    size_t n = strlen(path), k = strlen(ix);
    if (k > PATH_CAP - 1 - n) k = PATH_CAP - 1 - n;
    memcpy(path + n, ix, k);
    path[n + k] = 0;
}

static void join(char *out, const char *parent, const char *key) {
    out[0] = 0;
    append(out, parent);
    append(out, key);
}

static void join_index(char *out, const char *parent, int i) {
    out[0] = 0;
    append(out, parent);
    append_index(out, i);
}

// Splits "a.b[2].c" into segments; -1 when malformed.
static int split_path(const char *key, Seg *seg, int cap) {
    int ns = 0;
    for (const char *p = key;; p++) {
        size_t len = strcspn(p, ".[");
        if (ns == cap || len == 0 || len >= sizeof(seg->name)) return -1;
        memcpy(seg[ns].name, p, len);
        seg[ns].name[len] = 0;
        seg[ns].idx = -1;
        p += len;
        if (*p == '[') {
            char *end;
            long i = strtol(p + 1, &end, 10);
            if (!isdigit((unsigned char)p[1]) || *end != ']' || i > 1000000) return -1;
            seg[ns].idx = (int)i;
            p = end + 1;
        }
        ns++;
        if (!*p) return ns;
        if (*p != '.') return -1;
    }
}

// The schema path of a dotted path: its segment names without indices.
static int schema_path(const char *key, char *out) {
    Seg seg[MAX_SEGS];
    int ns = split_path(key, seg, MAX_SEGS);
    out[0] = 0;
    for (int i = 0; i < ns; i++) append(out, seg[i].name);
    return ns;
}

static const char *last_seg(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

// Is `key` a direct child of the schema path `parent` ("" = top level)?
static int is_child(const char *parent, const char *key) {
    size_t n = strlen(parent);
    if (n == 0) return !strchr(key, '.');
    return !strncmp(key, parent, n) && key[n] == '.' && !strchr(key + n + 1, '.');
}

static const DeckKey *schema_find(const DeckKey *s, const char *path) {
    for (; s->key; s++)
        if (!strcmp(s->key, path)) return s;
    return NULL;
}

// --- messages -------------------------------------------------------------------

static int fail(Ctx *c, const Node *at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

int deck_errorf(char *err, size_t cap, const char *where, const char *key, const char *fmt, ...) {
    int n = snprintf(err, cap, "%s: %s: ", where, key);
    if (n >= 0 && (size_t)n < cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, cap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

// Writes "FILE:LINE: KEY: message" (or "ORIGIN: KEY: ...") into c->err; returns -1.
static int fail(Ctx *c, const Node *at, const char *key, const char *fmt, ...) {
    char where[600], msg[1024];
    if (at->line > 0) snprintf(where, sizeof(where), "%s:%d", at->origin, at->line);
    else snprintf(where, sizeof(where), "%s", at->origin);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return deck_errorf(c->err, c->cap, where, key, "%s", msg);
}

// What a node holds, for "(got ...)".
static const char *got(const Node *n, char *buf, size_t cap) {
    if (n->kind == N_LIST) return "a list";
    if (n->kind == N_MAP) return "a map";
    snprintf(buf, cap, "'%.60s%s'", n->text, strlen(n->text) > 60 ? "..." : "");
    return buf;
}

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), row[64];
    if (la > 62 || lb > 62) return 99;
    for (int j = 0; j <= lb; j++) row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

// The schema key under `parent` nearest to `name` (edit distance <= 2), or NULL.
static const char *nearest(const DeckKey *s, const char *parent, const char *name) {
    const char *best = NULL;
    int best_d = 3;
    for (; s->key; s++) {
        int dist = is_child(parent, s->key) ? edit_distance(name, last_seg(s->key)) : 99;
        if (dist < best_d) best = last_seg(s->key), best_d = dist;
    }
    return best;
}

// "unknown key", naming the first segment of the path `key` that the schema
// lacks, and the schema key nearest to it.
static int unknown_key(Ctx *c, const Node *at, const char *key) {
    Seg seg[MAX_SEGS];
    int ns = split_path(key, seg, MAX_SEGS);
    char sp[PATH_CAP] = "", parent[PATH_CAP] = "", shown[PATH_CAP] = "";
    if (ns < 0) return fail(c, at, key, "unknown key");
    for (int i = 0; i < ns; i++) {
        strcpy(parent, sp);
        append(sp, seg[i].name);
        append(shown, seg[i].name);
        if (!schema_find(c->d->schema, sp)) break;
        if (seg[i].idx >= 0) append_index(shown, seg[i].idx);
    }
    const char *best = nearest(c->d->schema, parent, last_seg(sp));
    if (best) return fail(c, at, shown, "unknown key (did you mean '%s'?)", best);
    return fail(c, at, shown, "unknown key");
}

// --- YAML -> nodes ------------------------------------------------------------------

static void syntax_error(Ctx *c, const yaml_parser_t *p, const char *origin, int is_file) {
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (!is_file) { // an override's value: one line, so no line or column
        snprintf(c->err, c->cap, "%s: %s%s%s%s", origin, problem, p->context ? " (" : "",
                 p->context ? p->context : "", p->context ? ")" : "");
        return;
    }
    int n = snprintf(c->err, c->cap, "%s:%zu:%zu: %s", origin, p->problem_mark.line + 1,
                     p->problem_mark.column + 1, problem);
    if (p->context && n >= 0 && (size_t)n < c->cap)
        snprintf(c->err + n, c->cap - (size_t)n, " (%s at line %zu)", p->context, p->context_mark.line + 1);
}

static Node *convert(Ctx *c, yaml_document_t *doc, yaml_node_t *y, const char *origin, int is_file,
                     const char *path, int depth);

static int convert_map(Ctx *c, Node *n, yaml_document_t *doc, yaml_node_t *y, const char *origin,
                       int is_file, const char *path, int depth) {
    for (yaml_node_pair_t *pr = y->data.mapping.pairs.start; pr < y->data.mapping.pairs.top; pr++) {
        yaml_node_t *yk = yaml_document_get_node(doc, pr->key);
        Node here = {.origin = origin, .line = is_file ? (int)yk->start_mark.line + 1 : 0};
        if (yk->type != YAML_SCALAR_NODE) return fail(c, &here, path[0] ? path : "deck", "keys must be words");
        const char *key = (const char *)yk->data.scalar.value;
        char kp[PATH_CAP];
        join(kp, path, key);
        const Node *first = node_child(n, key);
        if (first) return fail(c, &here, kp, "duplicate key (first given at line %d)", first->line);
        const int outer = c->key_line;
        c->key_line = here.line;
        Node *kid = convert(c, doc, yaml_document_get_node(doc, pr->value), origin, is_file, kp, depth + 1);
        c->key_line = outer;
        if (!kid) return -1;
        kid->key = xstrdup(key);
        kid->line = here.line; // a key's value is reported at the key's line
        node_add(n, kid);
    }
    return 0;
}

static int convert_list(Ctx *c, Node *n, yaml_document_t *doc, yaml_node_t *y, const char *origin,
                        int is_file, const char *path, int depth) {
    for (yaml_node_item_t *it = y->data.sequence.items.start; it < y->data.sequence.items.top; it++) {
        char ip[PATH_CAP];
        join_index(ip, path, (int)(it - y->data.sequence.items.start));
        Node *kid = convert(c, doc, yaml_document_get_node(doc, *it), origin, is_file, ip, depth + 1);
        if (!kid) return -1;
        node_add(n, kid);
    }
    return 0;
}

// Copies a libyaml node into a Node tree; NULL on error (message in c->err).
static Node *convert(Ctx *c, yaml_document_t *doc, yaml_node_t *y, const char *origin, int is_file,
                     const char *path, int depth) {
    Kind kind = y->type == YAML_MAPPING_NODE ? N_MAP : y->type == YAML_SEQUENCE_NODE ? N_LIST : N_SCALAR;
    Node *n = node_new(kind, origin, is_file ? (int)y->start_mark.line + 1 : 0);
    int bad = 0;
    if (depth > MAX_DEPTH) {
        bad = fail(c, n, path, "nested too deeply");
    } else if (++c->nodes > MAX_NODES) { // an alias is converted once per use: count every copy
        Node at = {.origin = origin, .line = c->key_line};
        bad = fail(c, &at, path, "the deck holds more than %d values (YAML aliases expanded)", MAX_NODES);
    } else if (kind == N_SCALAR) {
        n->text = xstrdup((const char *)y->data.scalar.value);
        n->quoted = y->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    } else {
        bad = kind == N_MAP ? convert_map(c, n, doc, y, origin, is_file, path, depth)
                            : convert_list(c, n, doc, y, origin, is_file, path, depth);
    }
    if (bad) node_free(n);
    return bad ? NULL : n;
}

// One YAML document from the parser as a tree; an empty one is an empty
// scalar. A file must hold exactly one document.
static Node *load_doc(Ctx *c, yaml_parser_t *p, const char *origin, int is_file, const char *path) {
    yaml_document_t doc;
    if (!yaml_parser_load(p, &doc)) {
        syntax_error(c, p, origin, is_file);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    Node *n = root ? convert(c, &doc, root, origin, is_file, path, 0) : node_new(N_SCALAR, origin, 0);
    if (!root) n->text = xstrdup("");
    yaml_document_delete(&doc);
    if (!n || !is_file) return n;
    if (!yaml_parser_load(p, &doc)) {
        syntax_error(c, p, origin, is_file);
        node_free(n);
        return NULL;
    }
    root = yaml_document_get_root_node(&doc);
    Node extra = {.origin = origin, .line = (int)doc.start_mark.line + 1};
    yaml_document_delete(&doc);
    if (root) {
        node_free(n);
        fail(c, &extra, "deck", "a deck is one YAML document (found a second one)");
        return NULL;
    }
    return n;
}

static Node *parse_flow(Ctx *c, const char *text, const char *origin, const char *path) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) die("out of memory (libyaml)");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    Node *n = load_doc(c, &p, origin, 0, path);
    yaml_parser_delete(&p);
    return n;
}

static Node *load_file(Ctx *c, FILE *f, const char *path) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) die("out of memory (libyaml)");
    yaml_parser_set_input_file(&p, f);
    Node *n = load_doc(c, &p, path, 1, "");
    yaml_parser_delete(&p);
    if (!n) return NULL;
    null_to_map(n);
    if (n->kind == N_MAP) return n;
    char g[80];
    fail(c, n, "deck", "expected a map of keys (got %s)", got(n, g, sizeof(g)));
    node_free(n);
    return NULL;
}

// --- overrides -------------------------------------------------------------------

static Node **node_slot(Node *map, const char *key) {
    for (int i = 0; i < map->n; i++)
        if (!strcmp(map->kid[i]->key, key)) return &map->kid[i];
    return NULL;
}

// The slot that `seg` names in `map`; a missing map the schema knows (`sp`)
// is created, so that an override can add a section. NULL: not there.
static Node **descend(Node *map, const Seg *seg, const char *sp, const DeckKey *schema, const char *origin) {
    Node **slot = node_slot(map, seg->name);
    if (!slot && seg->idx < 0 && schema_find(schema, sp)->type == DECK_MAP) {
        Node *m = node_new(N_MAP, origin, 0);
        m->key = xstrdup(seg->name);
        node_add(map, m);
        slot = &map->kid[map->n - 1];
    }
    if (!slot || seg->idx < 0) return slot;
    Node *list = *slot;
    return list->kind == N_LIST && seg->idx < list->n ? &list->kid[seg->idx] : NULL;
}

// Puts `val` at the dotted path `key`: replaces what is there, or adds the
// last key to its map.
static int graft(Ctx *c, const char *key, Node *val) {
    Seg seg[MAX_SEGS];
    int ns = split_path(key, seg, MAX_SEGS);
    Node *node = c->d->root;
    char sp[PATH_CAP] = "", dp[PATH_CAP] = "", g[80];
    for (int i = 0; i < ns; i++) {
        null_to_map(node);
        if (node->kind != N_MAP) return fail(c, node, dp, "expected a map (got %s)", got(node, g, sizeof(g)));
        append(sp, seg[i].name);
        append(dp, seg[i].name);
        int last = i == ns - 1;
        if (last && seg[i].idx < 0 && !node_child(node, seg[i].name)) {
            val->key = xstrdup(seg[i].name);
            node_add(node, val);
            return 0;
        }
        Node **slot = descend(node, &seg[i], sp, c->d->schema, val->origin);
        if (seg[i].idx >= 0) append_index(dp, seg[i].idx);
        if (!slot) return fail(c, val, dp, "not in the deck");
        if (last) {
            val->key = (*slot)->key ? xstrdup((*slot)->key) : NULL;
            node_free(*slot);
            *slot = val;
            return 0;
        }
        node = *slot;
        if (node->kind == N_LIST) return fail(c, val, dp, "is a list: name an element, e.g. %s[0]", dp);
    }
    return 0;
}

// Applies one override, "a.b[i].c=value".
static int apply_override(Ctx *c, const char *arg) {
    size_t len = strlen(arg) + 16;
    char *origin = c->d->origins[c->d->n_origins++] = xmalloc(len);
    snprintf(origin, len, "command line: %s", arg);
    const char *eq = strchr(arg, '=');
    Node here = {.origin = "command line"};
    if (!eq || eq == arg || eq - arg >= PATH_CAP)
        return fail(c, &here, arg, "expected KEY=VALUE (e.g. train.k=32)");
    char key[PATH_CAP], sp[PATH_CAP];
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = 0;
    here.origin = origin;
    if (schema_path(key, sp) < 0 || !schema_find(c->d->schema, sp)) return unknown_key(c, &here, key);
    Node *val = parse_flow(c, eq + 1, origin, key);
    if (!val) return -1;
    if (graft(c, key, val) == 0) return 0;
    node_free(val);
    return -1;
}

// --- validation ------------------------------------------------------------------

typedef struct {
    double lo, hi;
    int lo_open, hi_open;
} Range;

// "> 0", ">= 1", "< 1", "<= 1", "(0, 1]", "[0, 1)"; NULL: any value.
static Range range_of(const DeckKey *k) {
    Range r = {-INFINITY, INFINITY, 0, 0};
    const char *s = k->allowed;
    char *end;
    if (!s) return r;
    if (*s == '(' || *s == '[') {
        r.lo_open = *s == '(';
        r.lo = strtod(s + 1, &end);
        if (*end != ',') die("schema: %s: malformed range '%s'", k->key, s);
        r.hi = strtod(end + 1, &end);
        r.hi_open = *end == ')';
        if ((*end != ')' && *end != ']') || end[1]) die("schema: %s: malformed range '%s'", k->key, s);
        return r;
    }
    int eq = s[1] == '=';
    double v = strtod(s + 1 + eq, &end);
    if ((*s != '>' && *s != '<') || *end) die("schema: %s: malformed range '%s'", k->key, s);
    if (*s == '>') r.lo = v, r.lo_open = !eq;
    else r.hi = v, r.hi_open = !eq;
    return r;
}

static int in_range(const DeckKey *k, double v) {
    Range r = range_of(k);
    return (r.lo_open ? v > r.lo : v >= r.lo) && (r.hi_open ? v < r.hi : v <= r.hi);
}

// A decimal integer that fits int64_t; beyond it (strtoll's ERANGE) is not an
// integer at all, never LLONG_MAX. The schema's ranges then bound it further.
static int parse_int(const char *s, int64_t *v) {
    const char *p = s + (*s == '+' || *s == '-');
    if (!isdigit((unsigned char)*p) || (p[0] == '0' && p[1]) || strspn(p, "0123456789") != strlen(p))
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno == ERANGE || *end) return 0;
    *v = (int64_t)x;
    return 1;
}

static int parse_num(const char *s, double *v) {
    if (strspn(s, "0123456789+-.eE") != strlen(s) || !strpbrk(s, "0123456789")) return 0;
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return *end == 0 && errno == 0 && isfinite(*v);
}

static int in_choices(const char *allowed, const char *s) {
    size_t n = strlen(s);
    for (const char *p = allowed; p; p = strchr(p, '|'), p = p ? p + 1 : NULL)
        if (!strncmp(p, s, n) && (p[n] == '|' || p[n] == 0)) return 1;
    return 0;
}

static DeckType element_type(DeckType t) {
    return t == DECK_INT_LIST ? DECK_INT : t == DECK_NUM_LIST ? DECK_NUM : t == DECK_ENUM_LIST ? DECK_ENUM : t;
}

// "an integer >= 1", "a number in (0, 1]", "one of cpu, cuda", ...
static void expected(const DeckKey *k, char *buf, size_t cap) {
    DeckType t = element_type(k->type);
    const char *range = k->allowed ? k->allowed : "";
    const char *in = (*range == '(' || *range == '[') ? " in " : *range ? " " : "";
    if (t == DECK_INT || t == DECK_NUM) {
        snprintf(buf, cap, "%s%s%s", t == DECK_INT ? "an integer" : "a number", in, range);
    } else if (t == DECK_ENUM) {
        size_t n = (size_t)snprintf(buf, cap, "one of ");
        for (const char *p = k->allowed; *p && n + 3 < cap; p++) {
            if (*p == '|') buf[n++] = ',', buf[n++] = ' ';
            else buf[n++] = *p;
        }
        buf[n] = 0;
    } else {
        snprintf(buf, cap, "%s", t == DECK_BOOL ? "true or false" : t == DECK_PATH ? "a path" : "a string");
    }
}

// Checks one scalar against its (element) type and rewrites numbers canonically.
static int check_scalar(Ctx *c, Node *n, const DeckKey *k, const char *path) {
    char exp[200], g[80];
    DeckType t = element_type(k->type);
    int64_t i = 0;
    double x = 0;
    int ok = n->kind == N_SCALAR;
    n->schema = k;
    if (ok && t == DECK_INT) ok = parse_int(n->text, &i) && in_range(k, (double)i);
    else if (ok && t == DECK_NUM) ok = parse_num(n->text, &x) && in_range(k, x);
    else if (ok && t == DECK_BOOL) ok = !strcmp(n->text, "true") || !strcmp(n->text, "false");
    else if (ok && t == DECK_ENUM) ok = in_choices(k->allowed, n->text);
    else if (ok) ok = !is_null(n);
    if (!ok) {
        expected(k, exp, sizeof(exp));
        return fail(c, n, path, "expected %s (got %s)", exp, got(n, g, sizeof(g)));
    }
    if (t == DECK_INT || t == DECK_NUM) {
        char canon[40];
        if (t == DECK_INT) snprintf(canon, sizeof(canon), "%lld", (long long)i);
        else deck_format_num(x, canon, sizeof(canon));
        free(n->text);
        n->text = xstrdup(canon);
    }
    return 0;
}

static int check_map(Ctx *c, Node *map, const char *spath, const char *dpath, int keep_order);

// "exactly one of csv, ssv2, k400, pixels (got csv, pixels)"
static int check_one_of(Ctx *c, const Node *map, const DeckKey *k, const char *path) {
    if (!(k->flags & DECK_ONE_OF) || map->n == 1) return 0;
    char keys[200] = "", have[200] = "";
    size_t nk = 0, nh = 0;
    for (const DeckKey *s = c->d->schema; s->key; s++)
        if (is_child(k->key, s->key))
            nk += (size_t)snprintf(keys + nk, sizeof(keys) - nk, "%s%s", nk ? ", " : "", last_seg(s->key));
    for (int i = 0; i < map->n && nh < sizeof(have); i++)
        nh += (size_t)snprintf(have + nh, sizeof(have) - nh, "%s%s", i ? ", " : "", map->kid[i]->key);
    return fail(c, map, path, "expected exactly one of %s (got %s)", keys, map->n ? have : "none");
}

static int check_list(Ctx *c, Node *n, const DeckKey *k, const char *path) {
    static const char *what[] = {[DECK_INT_LIST] = "integers", [DECK_NUM_LIST] = "numbers",
                                 [DECK_MAP_LIST] = "maps", [DECK_ENUM_LIST] = "values"};
    char g[80], ip[PATH_CAP];
    if (n->kind == N_SCALAR && k->type != DECK_MAP_LIST && !is_null(n)) wrap_in_list(n);
    if (n->kind != N_LIST || n->n == 0)
        return fail(c, n, path, "expected a non-empty list of %s (got %s)", what[k->type],
                    n->kind == N_LIST ? "[]" : got(n, g, sizeof(g)));
    n->schema = k;
    for (int i = 0; i < n->n; i++) {
        Node *el = n->kid[i];
        join_index(ip, path, i);
        if (k->type != DECK_MAP_LIST) {
            if (check_scalar(c, el, k, ip)) return -1;
            continue;
        }
        el->schema = k;
        if (el->kind != N_MAP) return fail(c, el, ip, "expected a map (got %s)", got(el, g, sizeof(g)));
        if (check_map(c, el, k->key, ip, 1)) return -1;
    }
    return 0;
}

static int check_value(Ctx *c, Node *n, const DeckKey *k, const char *path) {
    char g[80];
    if (k->type == DECK_INT_LIST || k->type == DECK_NUM_LIST || k->type == DECK_MAP_LIST ||
        (k->type == DECK_ENUM_LIST && n->kind == N_LIST))
        return check_list(c, n, k, path);
    if (k->type != DECK_MAP) return check_scalar(c, n, k, path);
    null_to_map(n);
    n->schema = k;
    if (n->kind != N_MAP) return fail(c, n, path, "expected a map (got %s)", got(n, g, sizeof(g)));
    if (check_map(c, n, k->key, path, 0)) return -1;
    return check_one_of(c, n, k, path);
}

// Adds the defaults of the schema keys directly under `spath` that the map
// lacks; a missing required key is an error at the map's line.
static int fill_missing(Ctx *c, Node *map, const char *spath, const char *dpath) {
    for (const DeckKey *k = c->d->schema; k->key; k++) {
        const char *name = last_seg(k->key);
        char dp[PATH_CAP];
        if (!is_child(spath, k->key) || node_child(map, name)) continue;
        join(dp, dpath, name);
        if (k->flags & DECK_REQUIRED) return fail(c, map, dp, "missing required key");
        if (!k->def) continue;
        Node *v = parse_flow(c, k->def, "default", dp);
        if (!v) die("schema: %s: bad default '%s': %s", k->key, k->def, c->err);
        v->key = xstrdup(name);
        node_add(map, v);
        if (check_value(c, v, k, dp)) return -1;
    }
    return 0;
}

// Puts a map's entries in schema order (stable: the schema rows are in order).
static void sort_by_schema(Node *map) {
    for (int i = 1; i < map->n; i++) {
        Node *x = map->kid[i];
        int j = i;
        for (; j > 0 && map->kid[j - 1]->schema > x->schema; j--) map->kid[j] = map->kid[j - 1];
        map->kid[j] = x;
    }
}

static int check_map(Ctx *c, Node *map, const char *spath, const char *dpath, int keep_order) {
    for (int i = 0; i < map->n; i++) {
        Node *kid = map->kid[i];
        char sp[PATH_CAP], dp[PATH_CAP];
        join(sp, spath, kid->key);
        join(dp, dpath, kid->key);
        if (strpbrk(kid->key, ".[")) return fail(c, kid, dp, "unknown key (nest keys as maps, not with '.')");
        const DeckKey *k = schema_find(c->d->schema, sp);
        if (!k) return unknown_key(c, kid, dp);
        kid->schema = k;
        if (check_value(c, kid, k, dp)) return -1;
    }
    if (fill_missing(c, map, spath, dpath)) return -1;
    if (!keep_order) sort_by_schema(map);
    return 0;
}

// --- load ------------------------------------------------------------------------

Deck *deck_load(const char *path, const DeckKey *schema, int n_over, char *const *over, char *err,
                size_t errcap) {
    Deck *d = xcalloc(1, sizeof(*d));
    d->schema = schema;
    d->file = xstrdup(path);
    d->origins = xcalloc((size_t)n_over, sizeof(char *));
    Ctx c = {d, err, errcap, 0, 0};
    if (errcap) err[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errcap, "%s: cannot open deck (%s)", path, strerror(errno));
        deck_free(d);
        return NULL;
    }
    d->root = load_file(&c, f, d->file); // nodes point at d->file as their origin
    fclose(f);
    int bad = !d->root;
    for (int i = 0; i < n_over && !bad; i++) bad = apply_override(&c, over[i]);
    if (!bad) bad = check_map(&c, d->root, "", "", 0);
    if (!bad) return d;
    deck_free(d);
    return NULL;
}

Deck *deck_load_section(const char *path, const DeckKey *schema, int n_over, char *const *over,
                        const char *section, char *err, size_t errcap) {
    Deck *d = deck_load(path, schema, n_over, over, err, errcap);
    if (!d || !section || deck_has(d, section)) return d;
    char fill[128];
    snprintf(fill, sizeof(fill), "%s={}", section);
    char **all = xmalloc(sizeof(char *) * ((size_t)n_over + 1));
    for (int i = 0; i < n_over; i++) all[i] = over[i];
    all[n_over] = fill;
    deck_free(d);
    d = deck_load(path, schema, n_over + 1, all, err, errcap);
    free(all);
    return d;
}

void deck_free(Deck *d) {
    if (!d) return;
    node_free(d->root);
    for (int i = 0; i < d->n_origins; i++) free(d->origins[i]);
    free(d->origins);
    free(d->file);
    free(d);
}

// --- getters -----------------------------------------------------------------------

static const Node *lookup(const Deck *d, const char *key) {
    Seg seg[MAX_SEGS];
    char sp[PATH_CAP];
    int ns = split_path(key, seg, MAX_SEGS);
    if (ns < 0 || schema_path(key, sp) < 0 || !schema_find(d->schema, sp)) die("deck: no key '%s' in the schema", key);
    const Node *n = d->root;
    for (int i = 0; i < ns && n; i++) {
        n = n->kind == N_MAP ? node_child(n, seg[i].name) : NULL;
        if (n && seg[i].idx >= 0) n = n->kind == N_LIST && seg[i].idx < n->n ? n->kid[seg[i].idx] : NULL;
    }
    return n;
}

static const Node *need(const Deck *d, const char *key) {
    const Node *n = lookup(d, key);
    if (!n) die("deck: '%s' is not in the deck (ask deck_has first)", key);
    return n;
}

int deck_has(const Deck *d, const char *key) { return lookup(d, key) != NULL; }

const char *deck_str(const Deck *d, const char *key) {
    const Node *n = need(d, key);
    if (n->kind != N_SCALAR) die("deck: '%s' is not a single value", key);
    return n->text;
}

int64_t deck_int(const Deck *d, const char *key) {
    int64_t v;
    if (!parse_int(deck_str(d, key), &v)) die("deck: '%s' is not an integer", key);
    return v;
}

double deck_num(const Deck *d, const char *key) {
    double v;
    if (!parse_num(deck_str(d, key), &v)) die("deck: '%s' is not a number", key);
    return v;
}

int deck_bool(const Deck *d, const char *key) {
    const char *s = deck_str(d, key);
    if (strcmp(s, "true") && strcmp(s, "false")) die("deck: '%s' is not true or false", key);
    return !strcmp(s, "true");
}

int deck_len(const Deck *d, const char *key) {
    const Node *n = need(d, key);
    if (n->kind == N_SCALAR) die("deck: '%s' is not a list or a map", key);
    return n->n;
}

const char *deck_key_at(const Deck *d, const char *key, int i) {
    const Node *n = need(d, key);
    if (n->kind != N_MAP || i < 0 || i >= n->n) die("deck: '%s' has no key number %d", key, i);
    return n->kid[i]->key;
}

void deck_where(const Deck *d, const char *key, char *buf, size_t cap) {
    const Node *n = need(d, key);
    if (n->line > 0) snprintf(buf, cap, "%s:%d", n->origin, n->line);
    else snprintf(buf, cap, "%s", n->origin);
}

// --- writer ------------------------------------------------------------------------

void deck_format_num(double v, char *buf, size_t cap) {
    char t[40];
    int p = 1;
    for (; p < 17; p++) { // fewest significant digits that read back exactly
        snprintf(t, sizeof(t), "%.*e", p - 1, v);
        if (strtod(t, NULL) == v) break;
    }
    int x = v == 0 ? 0 : (int)floor(log10(fabs(v))); // %g goes to exponents when x >= precision
    snprintf(t, sizeof(t), "%.*g", x >= p && x < 17 ? x + 1 : p, v);
    char *e = strchr(t, 'e');
    if (e && !memchr(t, '.', (size_t)(e - t))) snprintf(buf, cap, "%.*s.0%s", (int)(e - t), t, e);
    else snprintf(buf, cap, "%s", t);
}

// Strings that YAML would read as something else, or not at all, get quotes.
static int needs_quotes(const Node *n) {
    static const char *words[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"};
    const char *s = n->text;
    DeckType t = element_type(n->schema->type);
    char *end;
    if (t != DECK_STR && t != DECK_PATH && t != DECK_ENUM) return 0;
    if (!*s || !(isalnum((unsigned char)*s) || strchr("_/.", *s))) return 1;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_./+-", *p)) return 1;
    strtod(s, &end);
    if (!*end) return 1;
    char lower[8] = "";
    for (size_t i = 0; s[i] && i + 1 < sizeof(lower); i++) lower[i] = (char)tolower((unsigned char)s[i]);
    for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
        if (strlen(s) < sizeof(lower) && !strcmp(lower, words[i])) return 1;
    return 0;
}

static int write_scalar(FILE *out, const Node *n) {
    if (!needs_quotes(n)) return fprintf(out, "%s", n->text);
    int w = fprintf(out, "\"");
    for (const unsigned char *p = (const unsigned char *)n->text; *p; p++)
        w += *p == '"' || *p == '\\' ? fprintf(out, "\\%c", *p) : *p < 0x20 ? fprintf(out, "\\x%02x", *p)
                                                                            : fprintf(out, "%c", *p);
    return w + fprintf(out, "\"");
}

// A value in flow style; returns the characters written.
static int write_flow(FILE *out, const Node *n) {
    if (n->kind == N_SCALAR) return write_scalar(out, n);
    int w = fprintf(out, n->kind == N_LIST ? "[" : "{");
    for (int i = 0; i < n->n; i++) {
        if (i) w += fprintf(out, ", ");
        if (n->kind == N_MAP) w += fprintf(out, "%s: ", n->kid[i]->key);
        w += write_flow(out, n->kid[i]);
    }
    return w + fprintf(out, n->kind == N_LIST ? "]" : "}");
}

static void write_help(FILE *out, int col, const DeckKey *k) {
    if (k->help) fprintf(out, "%*s# %s", col < COMMENT_COL - 2 ? COMMENT_COL - col : 2, "", k->help);
    fputc('\n', out);
}

static void write_block(FILE *out, const Node *map, int indent) {
    for (int i = 0; i < map->n; i++) {
        const Node *kid = map->kid[i];
        int col = fprintf(out, "%*s%s:", indent, "", kid->key);
        if (kid->kind == N_MAP && kid->n) {
            write_help(out, col, kid->schema);
            write_block(out, kid, indent + 2);
        } else if (kid->schema->type == DECK_MAP_LIST) {
            write_help(out, col, kid->schema);
            for (int j = 0; j < kid->n; j++) {
                fprintf(out, "%*s- ", indent + 2, "");
                write_flow(out, kid->kid[j]);
                fputc('\n', out);
            }
        } else {
            col += fprintf(out, " ");
            write_help(out, col + write_flow(out, kid), kid->schema);
        }
    }
}

void deck_write(const Deck *d, FILE *out) { write_block(out, d->root, 0); }
