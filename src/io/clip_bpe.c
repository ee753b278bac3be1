// clip_bpe.c — CLIP's tokenizer (clip_bpe.h): vocab.json and merges.txt
// into two hash tables (symbol -> id, "left right" -> rank), then the
// pipeline of the header over one text at a time. Words are a handful of
// symbols, so the merge loop is the plain quadratic one (find the lowest
// rank, merge its occurrences left to right, repeat), which gives the same
// result as the priority queue of `tokenizers`.
#include "stsae/io/clip_bpe.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"

// --- a string -> int table (open addressing, FNV-1a) --------------------------------

// The keys live one after the other in one arena (NUL-terminated, found by
// offset): a vocabulary of 49408 entries is three allocations, not 49408.
typedef struct {
    uint32_t *off;      // [cap] 1 + the key's offset in arena; 0: an empty slot
    uint32_t *len;      // [cap]
    int *val;           // [cap]
    char *arena;
    size_t used, room;  // arena bytes
    size_t cap, n;      // cap a power of two, at most half full
} StrMap;

static uint64_t fnv1a(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

// Slot i's key (NUL-terminated), or NULL.
static const char *map_key(const StrMap *m, size_t i) { return m->off[i] ? m->arena + m->off[i] - 1 : NULL; }

// The slot of (s, len): where it is, or the empty slot where it would go.
static size_t map_slot(const StrMap *m, const char *s, size_t len) {
    size_t i = fnv1a(s, len) & (m->cap - 1);
    while (m->off[i] && (m->len[i] != len || memcmp(m->arena + m->off[i] - 1, s, len) != 0)) i = (i + 1) & (m->cap - 1);
    return i;
}

// The value of (s, len), or -1.
static int map_get(const StrMap *m, const char *s, size_t len) {
    if (!m->cap) return -1;
    const size_t i = map_slot(m, s, len);
    return m->off[i] ? m->val[i] : -1;
}

// Twice the slots, every key rehashed where it now belongs (the arena stays).
static void map_grow(StrMap *m) {
    const size_t old_cap = m->cap;
    uint32_t *off = m->off, *len = m->len;
    int *val = m->val;
    m->cap = old_cap ? old_cap * 2 : 1024;
    m->off = xcalloc(m->cap, sizeof(uint32_t));
    m->len = xcalloc(m->cap, sizeof(uint32_t));
    m->val = xcalloc(m->cap, sizeof(int));
    for (size_t i = 0; i < old_cap; i++)
        if (off[i]) {
            const size_t k = map_slot(m, m->arena + off[i] - 1, len[i]);
            m->off[k] = off[i], m->len[k] = len[i], m->val[k] = val[i];
        }
    free(off), free(len), free(val);
}

// Sets (s, len) to v; a key already there keeps its first value.
static void map_put(StrMap *m, const char *s, size_t len, int v) {
    if (2 * (m->n + 1) > m->cap) map_grow(m);
    const size_t i = map_slot(m, s, len);
    if (m->off[i]) return;
    if (m->used + len + 1 > m->room) {
        m->room = (m->used + len + 1) * 2 > 4096 ? (m->used + len + 1) * 2 : 4096;
        if (m->room > UINT32_MAX) die("clip_bpe: a vocabulary over 4 GB");
        m->arena = xrealloc(m->arena, m->room);
    }
    memcpy(m->arena + m->used, s, len);
    m->arena[m->used + len] = 0;
    m->off[i] = (uint32_t)(m->used + 1);
    m->len[i] = (uint32_t)len;
    m->val[i] = v;
    m->used += len + 1;
    m->n++;
}

static void map_free(StrMap *m) {
    free(m->off), free(m->len), free(m->val), free(m->arena);
    memset(m, 0, sizeof(*m));
}

// --- the tokenizer ------------------------------------------------------------------

enum { SPECIAL_BOS, SPECIAL_EOS, SPECIAL_PAD, SPECIAL_UNK, N_SPECIAL };

struct ClipBpe {
    StrMap vocab, ranks; // symbol -> id; "left right" -> merge rank
    int n_ids;           // largest id + 1
    char byte_char[256][3]; // GPT-2's bytes_to_unicode, as UTF-8 (1 or 2 bytes)
    char *special[N_SPECIAL];
    int special_id[N_SPECIAL];
};

// GPT-2's map of the 256 bytes to printable characters: the printable
// Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') to themselves, the others, in
// order, to U+0100 onwards.
static void make_byte_chars(ClipBpe *t) {
    int next = 256;
    for (int b = 0; b < 256; b++) {
        const int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        const int cp = keep ? b : next++;
        utf8proc_uint8_t *o = (utf8proc_uint8_t *)t->byte_char[b];
        const utf8proc_ssize_t n = utf8proc_encode_char(cp, o);
        o[n] = 0;
    }
}

static char *read_text(const char *path, size_t *len) {
    char err[512];
    char *s = path_read_all(path, len, err, sizeof(err));
    if (!s) die("%s", err);
    return s;
}

static void load_vocab(ClipBpe *t, const char *path) {
    size_t len;
    char *text = read_text(path, &len);
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!j) die("%s: not valid JSON", path);
    if (!cJSON_IsObject(j)) die("%s: not a JSON object of symbol: id", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e8 || e->valuedouble != (int)e->valuedouble)
            die("%s: entry '%s' is not an integer id in [0, 1e8]", path, e->string);
        const int id = (int)e->valuedouble;
        if (map_get(&t->vocab, e->string, strlen(e->string)) >= 0) die("%s: entry '%s' appears twice", path, e->string);
        map_put(&t->vocab, e->string, strlen(e->string), id);
        if (id + 1 > t->n_ids) t->n_ids = id + 1;
    }
    cJSON_Delete(j);
    free(text);
    if (t->vocab.n == 0) die("%s: an empty vocabulary", path);
}


static void load_merges(ClipBpe *t, const char *path, const char *vocab_path) {
    size_t len;
    char *text = read_text(path, &len);
    if (PLANTED("clip_merges_skip")) len = len > 64 ? len - 64 : len; // a truncated file read as whole
    if (memchr(text, 0, len)) die("%s: holds a NUL byte", path);
    StrMap made = {0}; // the merge results and the byte symbols, to find vocabulary entries no merge makes
    for (int b = 0; b < 256; b++) {
        char sym[8];
        map_put(&made, t->byte_char[b], strlen(t->byte_char[b]), 1);
        snprintf(sym, sizeof(sym), "%s</w>", t->byte_char[b]);
        map_put(&made, sym, strlen(sym), 1);
    }
    int rank = 0, line_no = 0;
    for (char *line = text, *next; line < text + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : text + len;
        if (nl) *nl = 0;
        else text[len] = 0;
        line_no++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[--n] = 0;
        if (n == 0 || (line_no == 1 && !strncmp(line, "#version", 8))) continue;
        char *sp = strchr(line, ' ');
        if (!sp || sp == line || !sp[1] || strchr(sp + 1, ' '))
            die("%s: line %d is not two symbols separated by one space: '%.60s'", path, line_no, line);
        *sp = 0;
        const char *a = line, *b = sp + 1;
        char joined[512];
        if (snprintf(joined, sizeof(joined), "%s%s", a, b) >= (int)sizeof(joined))
            die("%s: line %d: a symbol too long", path, line_no);
        if (map_get(&t->vocab, a, strlen(a)) < 0 || map_get(&t->vocab, b, strlen(b)) < 0 ||
            map_get(&t->vocab, joined, strlen(joined)) < 0)
            die("%s: line %d: merge '%s %s' of symbols that %s lacks", path, line_no, a, b, vocab_path);
        *sp = ' ';
        map_put(&t->ranks, line, n, rank++);
        map_put(&made, joined, strlen(joined), 1);
    }
    free(text);
    // every entry but the byte symbols and the special tokens is some merge's
    // product: one that is not says merges.txt was cut short
    for (size_t i = 0; i < t->vocab.cap; i++) {
        const char *s = map_key(&t->vocab, i);
        if (!s || map_get(&made, s, strlen(s)) >= 0) continue;
        int special = 0;
        for (int k = 0; k < N_SPECIAL; k++) special |= !strcmp(s, t->special[k]);
        if (!special)
            die("%s: %s entry '%s' (id %d) is made by no merge: merges.txt is truncated or of another vocabulary",
                path, vocab_path, s, t->vocab.val[i]);
    }
    map_free(&made);
}

// tokenizer_config.json's key: a string or {"content": string}; else def.
static char *special_token(const cJSON *cfg, const char *key, const char *def, const char *path) {
    const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    if (v && cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || !v->valuestring[0]))
        die("%s: key '%s' must be a token string (or {\"content\": string})", path, key);
    return xstrdup(v && cJSON_IsString(v) ? v->valuestring : def);
}

static void load_specials(ClipBpe *t, const char *dir, const char *vocab_path) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    cJSON *cfg = NULL;
    if (access(path, F_OK) == 0) { // optional
        size_t len;
        char *text = read_text(path, &len);
        cfg = cJSON_ParseWithLength(text, len);
        free(text);
        if (!cfg || !cJSON_IsObject(cfg)) die("%s: not a JSON object", path);
    }
    t->special[SPECIAL_BOS] = special_token(cfg, "bos_token", "<|startoftext|>", path);
    t->special[SPECIAL_EOS] = special_token(cfg, "eos_token", "<|endoftext|>", path);
    t->special[SPECIAL_PAD] = special_token(cfg, "pad_token", "<|endoftext|>", path);
    t->special[SPECIAL_UNK] = special_token(cfg, "unk_token", "<|endoftext|>", path);
    cJSON_Delete(cfg);
    for (int k = 0; k < N_SPECIAL; k++) {
        t->special_id[k] = map_get(&t->vocab, t->special[k], strlen(t->special[k]));
        if (t->special_id[k] < 0) die("%s: lacks the special token '%s'", vocab_path, t->special[k]);
    }
}

ClipBpe *clip_bpe_open(const char *dir) {
    ClipBpe *t = xcalloc(1, sizeof(ClipBpe));
    char vocab[4096], merges[4096];
    snprintf(vocab, sizeof(vocab), "%s/vocab.json", dir);
    snprintf(merges, sizeof(merges), "%s/merges.txt", dir);
    make_byte_chars(t);
    load_vocab(t, vocab);
    load_specials(t, dir, vocab);
    load_merges(t, merges, vocab);
    return t;
}

void clip_bpe_close(ClipBpe *t) {
    if (!t) return;
    map_free(&t->vocab);
    map_free(&t->ranks);
    for (int k = 0; k < N_SPECIAL; k++) free(t->special[k]);
    free(t);
}

int clip_bpe_vocab_size(const ClipBpe *t) { return t->n_ids; }

// --- encoding -----------------------------------------------------------------------

// A growing list of ids.
typedef struct {
    int32_t *v;
    int n, cap;
} Ids;

static void ids_push(Ids *x, int32_t id) {
    if (x->n == x->cap) x->v = xrealloc(x->v, sizeof(int32_t) * (size_t)(x->cap = x->cap ? 2 * x->cap : 64));
    x->v[x->n++] = id;
}

// The White_Space property (what \s matches in CLIP's patterns).
static int is_space(utf8proc_int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_letter(utf8proc_int32_t c) {
    const utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static int is_number(utf8proc_int32_t c) {
    const utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

// Step 2: NFC, white space runs to one space, lower case; as code points
// (malloc'ed, *n of them).
static utf8proc_int32_t *normalise(const char *s, size_t len, int *n) {
    char *seg = xmalloc(len + 1);
    memcpy(seg, s, len);
    seg[len] = 0;
    utf8proc_uint8_t *nfc = PLANTED("clip_no_nfc") ? (utf8proc_uint8_t *)xstrdup(seg) : utf8proc_NFC((const utf8proc_uint8_t *)seg);
    free(seg);
    if (!nfc) die("utf8proc_NFC: out of memory");
    const size_t m = strlen((const char *)nfc);
    utf8proc_int32_t *cp = xmalloc(sizeof(utf8proc_int32_t) * (2 * m + 1));
    int k = 0;
    for (size_t i = 0; i < m;) {
        utf8proc_int32_t c;
        i += (size_t)utf8proc_iterate(nfc + i, (utf8proc_ssize_t)(m - i), &c);
        if (is_space(c)) {
            if (k == 0 || cp[k - 1] != ' ') cp[k++] = ' ';
        } else if (c == 0x130) { // İ: the one unconditional lower case of two code points
            cp[k++] = 'i';
            cp[k++] = 0x307;
        } else {
            cp[k++] = utf8proc_tolower(c);
        }
    }
    free(nfc);
    *n = k;
    return cp;
}

// 1 when the code points at c[0..n) start with the ASCII string lit.
static int starts_with(const utf8proc_int32_t *c, int n, const char *lit) {
    int i = 0;
    for (; lit[i]; i++)
        if (i >= n || c[i] != (unsigned char)lit[i]) return 0;
    return 1;
}

// Step 3: the length of the piece at c[0..n) (0: white space, skipped);
// *literal set when it is one of the special tokens' spellings.
static int piece_length(const utf8proc_int32_t *c, int n, int *literal) {
    static const char *const fixed[] = {"<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    *literal = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(*fixed); i++)
        if (starts_with(c, n, fixed[i])) {
            *literal = i < 2;
            return (int)strlen(fixed[i]);
        }
    int k = 1;
    if (is_letter(c[0])) {
        while (k < n && is_letter(c[k])) k++;
    } else if (is_number(c[0])) {
        if (PLANTED("clip_number_runs"))
            while (k < n && is_number(c[k])) k++;
    } else if (is_space(c[0])) {
        return 0;
    } else {
        while (k < n && !is_space(c[k]) && !is_letter(c[k]) && !is_number(c[k])) k++;
    }
    return k;
}

// Step 4: the ids of one piece of code points.
static void encode_piece(const ClipBpe *t, const utf8proc_int32_t *c, int n, Ids *out) {
    // the byte characters, one symbol each
    char **sym = xmalloc(sizeof(char *) * 4 * (size_t)n);
    int ns = 0;
    for (int i = 0; i < n; i++) {
        utf8proc_uint8_t b[4];
        const utf8proc_ssize_t nb = utf8proc_encode_char(c[i], b);
        for (int j = 0; j < nb; j++) sym[ns++] = xstrdup(t->byte_char[b[j]]);
    }
    char *last = sym[ns - 1];
    sym[ns - 1] = xmalloc(strlen(last) + 5);
    sprintf(sym[ns - 1], "%s</w>", last);
    free(last);
    char pair[1024];
    for (;;) {
        int best = -1, best_rank = 0;
        for (int i = 0; i + 1 < ns; i++) {
            const int len = snprintf(pair, sizeof(pair), "%s %s", sym[i], sym[i + 1]);
            const int r = len < (int)sizeof(pair) ? map_get(&t->ranks, pair, (size_t)len) : -1;
            if (r >= 0 && (best < 0 || r < best_rank)) best = i, best_rank = r;
        }
        if (best < 0) break;
        const char *a = sym[best], *b = sym[best + 1];
        char *A = xstrdup(a), *B = xstrdup(b);
        int w = 0;
        for (int i = 0; i < ns;) { // every occurrence, left to right
            if (i + 1 < ns && !strcmp(sym[i], A) && !strcmp(sym[i + 1], B)) {
                char *m = xmalloc(strlen(A) + strlen(B) + 1);
                sprintf(m, "%s%s", A, B);
                free(sym[i]);
                free(sym[i + 1]);
                sym[w++] = m;
                i += 2;
            } else {
                sym[w++] = sym[i++];
            }
        }
        ns = w;
        free(A);
        free(B);
    }
    for (int i = 0; i < ns; i++) {
        const int id = map_get(&t->vocab, sym[i], strlen(sym[i]));
        ids_push(out, id >= 0 ? id : t->special_id[SPECIAL_UNK]);
        free(sym[i]);
    }
    free(sym);
}

// Steps 2-4 on one stretch of text between special tokens.
static void encode_stretch(const ClipBpe *t, const char *s, size_t len, Ids *out) {
    int n;
    utf8proc_int32_t *c = normalise(s, len, &n);
    for (int i = 0; i < n;) {
        int literal;
        const int k = piece_length(c + i, n - i, &literal);
        if (literal && !PLANTED("clip_literal_whole")) {
            // the byte-level step splits again by GPT-2's pattern, which
            // only changes these pieces: "<|", the word, "|>"
            encode_piece(t, c + i, 2, out);
            encode_piece(t, c + i + 2, k - 4, out);
            encode_piece(t, c + i + k - 2, 2, out);
        } else if (k) {
            encode_piece(t, c + i, k, out);
        }
        i += k ? k : 1;
    }
    free(c);
}

int clip_bpe_encode(const ClipBpe *t, const char *text, int ctx, int32_t *ids) {
    const size_t len = strlen(text);
    for (size_t i = 0; i < len;) { // valid UTF-8 throughout
        utf8proc_int32_t c;
        const utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &c);
        if (k < 0) return -1;
        i += (size_t)k;
    }
    Ids body = {0};
    // step 1: the special tokens, the longest first where two start alike
    for (size_t i = 0, from = 0;; i++) {
        int hit = -1;
        size_t hit_len = 0;
        for (int k = 0; i < len && k < N_SPECIAL; k++) {
            const size_t n = strlen(t->special[k]);
            if (n > hit_len && !strncmp(text + i, t->special[k], n)) hit = k, hit_len = n;
        }
        if (i == len || hit >= 0) {
            if (i > from) encode_stretch(t, text + from, i - from, &body);
            if (i == len) break;
            ids_push(&body, t->special_id[hit]);
            i += hit_len - 1;
            from = i + 1;
        }
    }
    const int keep = body.n < ctx - 2 ? body.n : ctx - 2; // step 5
    ids[0] = t->special_id[SPECIAL_BOS];
    if (keep) memcpy(ids + 1, body.v, sizeof(int32_t) * (size_t)keep);
    ids[1 + keep] = t->special_id[SPECIAL_EOS];
    for (int i = 2 + keep; i < ctx; i++) ids[i] = t->special_id[SPECIAL_PAD];
    free(body.v);
    return 2 + keep;
}
