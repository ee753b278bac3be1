// test_jobs.c — the deck getters and the grid expansion, in process:
//   expansion order (entries in file order; the Cartesian product of an
//   entry's keys in file order, last fastest; seeds innermost) and names;
//   the variant rules (lambda -> lambda_t / lambda_s / lambda_r, explicit
//   lambda_t / lambda_s win, unused values 0, batch kinds);
//   the hash: FNV-1a test vectors, hash = FNV(canon), and a golden canonical
//   text (run directories are named by it: changing it must be deliberate);
//   getters: lines, defaults, optional keys, lone values as one-element lists,
//   key order, overrides; the resolved deck written, reloaded and rewritten
//   byte for byte; every schema default valid (a deck with every section);
//   error messages with their exact line;
//   every integer key of the schema with a bounded range (values that go
//   into an int never wrap), integers beyond it or beyond 64 bits refused;
//   a "billion laughs" deck of YAML aliases refused after 100,000 values;
//   jobs_check: each job against the data (m = expansion x d in 64 bits,
//   k and k_aux <= m, +M's 1 <= m_h < m, T >= 2, W >= 2, raster pairs,
//   batch tokens within an int, clip batches within the training clips, at
//   least one full batch), with the exact message of the first bad job;
//   the variant table (sae/variants.h) complete: SPEC §1's ten names, each
//   found, round-tripping through sae_config_init / sae_variant_name (also
//   with L_temp switched on by sae_config_resolve), the deck schema's allowed
//   names built from it, and every row's columns agreeing with each other;
//   grid entries with a list of variants (SPEC §7): variants slowest, a key
//   applying to the listed variants that use it, the same names and hashes
//   as one entry per variant, NAME_VARIANT names, a one-element list equal to
//   a lone name, the errors (a variant listed twice, a key none of them uses,
//   an unknown name in the list, an empty list) and jobs_check naming the
//   list element.
// Usage: test_jobs DIR (a scratch directory). Prints "N passed, M failed";
// exits 1 on any failure.
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/deck/deck.h"
#include "stsae/deck/deck_schema.h"
#include "stsae/deck/jobs.h"
#include "stsae/sae/sae.h"
#include "stsae/sae/variants.h"

#include "expect.h"

static char dir[256];

// Writes `text` to DIR/name; the path goes to `path`.
static const char *write_deck(const char *name, const char *text, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

static const char *GRID_DECK =
    "run_dir: r\n"                                                          // 1
    "train:\n"                                                              // 2
    "  seeds: [7, 8]\n"                                                     // 3
    "  grid:\n"                                                             // 4
    "    - {variant: temporal, lambda: [0.01, 0.1], tau: [0.05, 0.5]}\n"    // 5: jobs 0-7
    "    - {variant: separate, lambda: 0.5, lambda_s: 0.2, seeds: [1]}\n"   // 6: job 8
    "    - {variant: raster, lambda: 1.0}\n"                                // 7: 9, 10
    "    - {variant: sparsemax, lambda: 0}\n"                               // 8: 11, 12
    "    - {variant: sparsemax, name: smx, T_s: 10, lambda: 0.1}\n"        // 9: 13, 14
    "    - {variant: standard+M, high_frac: 0.05}\n"                        // 10: 15, 16
    "    - {variant: standard}\n"                                           // 11: 17, 18
    "    - {variant: temporal+M}\n"                                         // 12
    "    - {variant: separate+M}\n"                                         // 13
    "    - {variant: entmax15}\n"                                           // 14
    "    - {variant: frozen}\n";                                            // 15

static const char *GOLDEN_STANDARD =
    "variant=standard lambda_t=0 lambda_s=0 lambda_r=0 tau=0 high_frac=0 T_s=0 k=64 k_aux=512 expansion=8 "
    "alpha=0.03125 beta=0 lr=default seed=7 batch=4096_tokens features=features.h5 layer=11 "
    "dead_tokens=10000000 warmup_frac=0.01 adam_beta1=0.9 adam_beta2=0.999 adam_eps=1.0e-08 epochs=10 "
    "max_steps=- streams=12 mix_clips=4 scale_sample=20000 theta_decay=0.99";

static void test_order(const JobList *l) {
    static const char *names[8] = {
        "temporal_lambda0.01_tau0.05_seed7", "temporal_lambda0.01_tau0.05_seed8",
        "temporal_lambda0.01_tau0.5_seed7",  "temporal_lambda0.01_tau0.5_seed8",
        "temporal_lambda0.1_tau0.05_seed7",  "temporal_lambda0.1_tau0.05_seed8",
        "temporal_lambda0.1_tau0.5_seed7",   "temporal_lambda0.1_tau0.5_seed8"};
    expect(l->n == 27, "27 jobs");
    for (int i = 0; i < 8 && i < l->n; i++) expect_str(l->job[i].name, names[i], "temporal expansion order");
    for (int i = 0; i < l->n; i++) expect(l->job[i].index == i, "index = position");
    expect(l->job[4].lambda_t == 0.1 && l->job[4].tau == 0.05 && l->job[4].seed == 7, "values follow the name");
    expect(l->job[8].entry == 1 && l->job[8].seed == 1, "an entry's own seeds replace train.seeds");
    expect_str(l->job[13].name, "smx_T_s10_lambda0.1_seed7", "entry name as prefix, keys in file order");
}

static void test_rules(const JobList *l) {
    const Job *sep = &l->job[8], *ras = &l->job[9], *smx0 = &l->job[11], *smx = &l->job[13];
    const Job *stdm = &l->job[15], *std = &l->job[17], *ent = &l->job[23];
    expect(sep->lambda_t == 0.5 && sep->lambda_s == 0.2 && sep->lambda_r == 0, "separate: lambda_t from lambda, explicit lambda_s wins");
    expect(sep->batch_kind == BATCH_CLIPS && sep->batch == 8, "separate: 8 whole clips");
    expect(ras->lambda_r == 1 && ras->lambda_t == 0 && ras->batch_kind == BATCH_PAIRS && ras->batch == 2048, "raster: lambda_r, 2048 pairs");
    expect(smx0->lambda_t == 0 && smx0->tau == 0 && smx0->batch_kind == BATCH_TOKENS, "sparsemax with lambda 0: no contrastive term, tokens");
    expect(smx0->k_aux == 0 && smx0->alpha == 0 && smx0->T_s == 1, "sparsemax: AuxK off, T_s");
    expect(smx->lambda_t == 0.1 && smx->tau == 0.1 && smx->T_s == 10 && smx->batch_kind == BATCH_CLIPS, "sparsemax with lambda: temporal, clips");
    expect(stdm->high_frac == 0.05 && stdm->beta == 1 && stdm->tau == 0 && stdm->lambda_t == 0, "standard+M: high_frac, beta, no tau");
    expect(std->high_frac == 0 && std->beta == 0 && std->tau == 0 && std->alpha == 0.03125 && std->k_aux == 512, "standard: unused values 0");
    expect(std->batch_kind == BATCH_TOKENS && std->batch == 4096, "standard: 4096 tokens");
    expect(ent->lambda_t == 0.1 && !strcmp(ent->variant, "entmax15"), "entmax15: train.lambda > 0 sets lambda_t");
    expect(fabs(std->cost - 8) < 1e-12 && fabs(l->job[19].cost - 8 * 1.25 * 1.15) < 1e-12, "cost model");
    expect(fabs(job_lr(std, 768) - 2e-4 / sqrt(6144.0 / 16384.0)) < 1e-15, "default lr");
}

static void test_hashes(const JobList *l) {
    expect(job_hash_text("") == 0xcbf29ce484222325ull, "FNV-1a of ''");
    expect(job_hash_text("a") == 0xaf63dc4c8601ec8cull, "FNV-1a of 'a'");
    expect(job_hash_text("foobar") == 0x85944171f73967e8ull, "FNV-1a of 'foobar'");
    for (int i = 0; i < l->n; i++) {
        expect(l->job[i].hash == job_hash_text(l->job[i].canon), "hash = FNV(canon)");
        for (int j = 0; j < i; j++) expect(l->job[i].hash != l->job[j].hash, "hashes distinct");
    }
    expect_str(l->job[17].canon, GOLDEN_STANDARD, "golden canonical text");
}

static void test_getters(const Deck *d, const char *path) {
    char where[600], want[1600];
    snprintf(want, sizeof(want), "%s:6", path);
    deck_where(d, "train.grid[1]", where, sizeof(where));
    expect_str(where, want, "deck_where: 1-based line of a grid entry");
    deck_where(d, "train.k", where, sizeof(where));
    expect_str(where, "default", "deck_where: a default");
    expect(deck_int(d, "train.k") == 64 && deck_num(d, "train.alpha") == 0.03125, "defaults filled");
    expect(!deck_has(d, "train.lr") && !deck_has(d, "synth") && deck_has(d, "train"), "optional keys absent");
    expect(deck_len(d, "train.grid[2].lambda") == 1 && deck_num(d, "train.grid[2].lambda[0]") == 1, "a lone value is a one-element list");
    expect_str(deck_str(d, "train.grid[2].lambda[0]"), "1", "numbers in canonical form");
    expect_str(deck_str(d, "train.adam_eps"), "1.0e-08", "canonical form readable by YAML 1.1");
    expect_str(deck_key_at(d, "train.grid[1]", 2), "lambda_s", "grid entries keep file order");
    expect_str(deck_key_at(d, "train", 0), "features", "maps in schema order");
    expect(deck_len(d, "train.seeds") == 2 && deck_int(d, "train.seeds[1]") == 8, "list access");
}

static void test_overrides(const char *path) {
    char err[512], *over[] = {"train.k=32", "train.lr=1.0e-3", "train.grid[0].tau=0.2"};
    Deck *d = deck_load(path, stsae_schema, 3, over, err, sizeof(err));
    JobList *l = d ? jobs_expand(d, err, sizeof(err)) : NULL;
    expect(l != NULL, "overrides load");
    if (!l) {
        printf("     %s\n", err);
        deck_free(d);
        return;
    }
    char where[600];
    deck_where(d, "train.k", where, sizeof(where));
    expect_str(where, "command line: train.k=32", "deck_where: an override");
    expect(l->n == 23 && l->job[0].tau == 0.2 && l->job[0].k == 32, "overrides reach every job (the tau axis collapses: 23 jobs)");
    expect(job_lr(&l->job[0], 768) == 1e-3, "an explicit lr");
    jobs_free(l);
    deck_free(d);
}

static void test_roundtrip(const Deck *d) {
    char p1[600], p2[600], err[512], a[1 << 14] = "", b[1 << 14] = "";
    snprintf(p1, sizeof(p1), "%s/resolved1.yaml", dir);
    snprintf(p2, sizeof(p2), "%s/resolved2.yaml", dir);
    FILE *f = fopen(p1, "w");
    deck_write(d, f);
    fclose(f);
    Deck *e = deck_load(p1, stsae_schema, 0, NULL, err, sizeof(err));
    expect(e != NULL, "the resolved deck loads");
    if (!e) {
        printf("     %s\n", err);
        return;
    }
    f = fopen(p2, "w");
    deck_write(e, f);
    fclose(f);
    deck_free(e);
    f = fopen(p1, "r");
    size_t na = fread(a, 1, sizeof(a) - 1, f);
    fclose(f);
    f = fopen(p2, "r");
    size_t nb = fread(b, 1, sizeof(b) - 1, f);
    fclose(f);
    expect(na == nb && na > 0 && !memcmp(a, b, na), "written, reloaded, rewritten: the same bytes");
}

static void test_all_sections(void) {
    char path[600], err[512];
    write_deck("all.yaml", "synth:\nextract: {input: {pixels: p.h5}}\neval:\n", path, sizeof(path));
    Deck *d = deck_load(path, stsae_schema, 0, NULL, err, sizeof(err));
    expect(d != NULL, "every section's defaults are valid");
    if (!d) {
        printf("     %s\n", err);
        return;
    }
    expect(deck_int(d, "synth.clips") == 240 && deck_len(d, "eval.ablate_n") == 4 && !deck_bool(d, "extract.final_norm"),
           "section defaults");
    JobList *l = jobs_expand(d, err, sizeof(err));
    expect(l && l->n == 0, "no train section: no jobs");
    jobs_free(l);
    deck_free(d);
}

static void test_errors(void) {
    char path[600], err[512], want[1600];
    write_deck("bad_k.yaml", "run_dir: r\ntrain:\n  k: 0\n  grid: [{variant: standard}]\n", path, sizeof(path));
    Deck *d = deck_load(path, stsae_schema, 0, NULL, err, sizeof(err));
    snprintf(want, sizeof(want), "%s:3: train.k: expected an integer in [1, 65536] (got '0')", path);
    expect(d == NULL, "k = 0 is rejected");
    expect_str(err, want, "the exact message");
    write_deck("dup.yaml", "train:\n  grid:\n    - {variant: raster, lambda: [0.1, 0.2]}\n    - {variant: raster, lambda: 0.2}\n",
               path, sizeof(path));
    d = deck_load(path, stsae_schema, 0, NULL, err, sizeof(err));
    JobList *l = d ? jobs_expand(d, err, sizeof(err)) : NULL;
    snprintf(want, sizeof(want), "%s:4: train.grid[1]: job 'raster_lambda0.2_seed0' has the same values as job "
             "'raster_lambda0.2_seed0' of train.grid[0] (%s:3)", path, path);
    expect(d && !l, "identical jobs are rejected");
    expect_str(err, want, "the duplicate names both lines");
    deck_free(d);
}

// Every DECK_INT / DECK_INT_LIST row has a range "[lo, hi]" with both ends
// finite; hi fits an int, except the keys read as int64_t (seeds, token and
// step counts), which stay within 2^53 (exact in the double the range check uses).
static void test_int_ranges(void) {
    static const char *wide[] = {"synth.seed", "extract.split_seed", "train.dead_tokens", "train.max_steps",
                                 "train.seeds", "train.grid.seeds"};
    for (const DeckKey *k = stsae_schema; k->key; k++) {
        if (k->type != DECK_INT && k->type != DECK_INT_LIST) continue;
        char what[200];
        double lo = NAN, hi = NAN;
        char *end = NULL;
        if (k->allowed && k->allowed[0] == '[') {
            lo = strtod(k->allowed + 1, &end);
            if (*end == ',') hi = strtod(end + 1, &end);
        }
        int is_wide = 0;
        for (size_t i = 0; i < sizeof(wide) / sizeof(*wide); i++) is_wide |= !strcmp(wide[i], k->key);
        snprintf(what, sizeof(what), "%s: a bounded integer range (got '%s')", k->key, k->allowed ? k->allowed : "none");
        expect(isfinite(lo) && isfinite(hi) && end && *end == ']' && lo >= 0 && lo <= hi &&
                   hi <= (is_wide ? 9007199254740992.0 : (double)INT_MAX),
               what);
    }
}

// Values beyond the range of their key, or beyond 64 bits, are errors naming the key.
static void test_big_integers(void) {
    char path[600], err[512], want[1600];
    write_deck("big.yaml", "run_dir: r\ntrain:\n  grid: [{variant: standard}]\n", path, sizeof(path));
    static const struct {
        const char *over, *msg;
    } cases[] = {
        {"train.k=4294967297", "train.k: expected an integer in [1, 65536] (got '4294967297')"},
        {"train.k_aux=4294967296", "train.k_aux: expected an integer in [0, 65536] (got '4294967296')"},
        {"train.expansion=4294967304", "train.expansion: expected an integer in [1, 1024] (got '4294967304')"},
        {"train.epochs=99999999999999999999", "train.epochs: expected an integer in [1, 1000000] (got '99999999999999999999')"},
        {"train.epochs=-9223372036854775809", "train.epochs: expected an integer in [1, 1000000] (got '-9223372036854775809')"},
        {"train.seeds=[9223372036854775807]", "train.seeds[0]: expected an integer in [0, 4294967295] (got '9223372036854775807')"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char *over[] = {(char *)cases[i].over};
        Deck *d = deck_load(path, stsae_schema, 1, over, err, sizeof(err));
        snprintf(want, sizeof(want), "command line: %s: %s", cases[i].over, cases[i].msg);
        expect(d == NULL, cases[i].over);
        expect_str(err, want, "an integer beyond its range: the exact message");
        deck_free(d);
    }
}

// A few hundred bytes of nested aliases would expand to 9^9 values.
static void test_laughs(void) {
    char path[600], err[512], want[1600], text[2048] = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
    for (int i = 1; i < 9; i++) {
        size_t n = strlen(text);
        n += (size_t)snprintf(text + n, sizeof(text) - n, "l%d: &l%d [", i, i);
        for (int j = 0; j < 9; j++) n += (size_t)snprintf(text + n, sizeof(text) - n, "%s*l%d", j ? ", " : "", i - 1);
        snprintf(text + n, sizeof(text) - n, "]\n");
    }
    write_deck("laughs.yaml", text, path, sizeof(path));
    Deck *d = deck_load(path, stsae_schema, 0, NULL, err, sizeof(err));
    snprintf(want, sizeof(want), "%s:6: l5[", path); // 74,733 values up to l4; l5 crosses 100,000
    expect(d == NULL && !strncmp(err, want, strlen(want)) &&
               strstr(err, "]: the deck holds more than 100000 values (YAML aliases expanded)"),
           "billion laughs: refused at 100,000 values, at the key being expanded");
    if (d || strncmp(err, want, strlen(want))) printf("     got  '%s'\n", err);
    deck_free(d);
    // a deck with a few aliases is fine
    write_deck("alias.yaml", "train:\n  seeds: &s [1, 2]\n  grid:\n    - {variant: standard, seeds: *s}\n", path,
               sizeof(path));
    d = deck_load(path, stsae_schema, 0, NULL, err, sizeof(err));
    expect(d && deck_len(d, "train.grid[0].seeds") == 2, "an ordinary alias still works");
    deck_free(d);
}

// jobs_check on one deck with overrides, against a data shape; NULL msg: must pass.
static void check_case(const char *what, int n_over, char **over, DataShape s, const char *msg) {
    static const char *deck =
        "run_dir: r\n"                                                         // 1
        "train:\n"                                                             // 2
        "  expansion: 2\n"                                                     // 3
        "  k: 4\n"                                                             // 4
        "  k_aux: 4\n"                                                         // 5
        "  epochs: 1\n"                                                        // 6
        "  batch_tokens: 108\n"                                                // 7
        "  batch_clips: 9\n"                                                   // 8
        "  batch_pairs: 45\n"                                                  // 9
        "  seeds: [0]\n"                                                       // 10
        "  grid:\n"                                                            // 11
        "    - {variant: standard}\n"                                          // 12
        "    - {variant: temporal+M, lambda: 0.1, high_frac: [0.2, 0.9]}\n"    // 13
        "    - {variant: separate, lambda: 0.1}\n"                             // 14
        "    - {variant: raster, lambda: 0.1}\n"                               // 15
        "    - {variant: sparsemax, lambda: 0}\n";                             // 16
    char path[600], err[512], want[1600];
    write_deck("check.yaml", deck, path, sizeof(path));
    Deck *d = deck_load(path, stsae_schema, n_over, over, err, sizeof(err));
    JobList *l = d ? jobs_expand(d, err, sizeof(err)) : NULL;
    if (!l) {
        expect(0, what);
        printf("     the deck: %s\n", err);
        deck_free(d);
        return;
    }
    int rc = jobs_check(d, l, &s, err, sizeof(err));
    if (!msg) {
        expect(rc == 0, what);
        if (rc) printf("     %s\n", err);
    } else {
        snprintf(want, sizeof(want), msg, path);
        expect(rc == -1, what);
        expect_str(err, want, what);
    }
    jobs_free(l);
    deck_free(d);
}

static void test_jobs_check(void) {
    // 9 training clips of T x H x W = 3 x 2 x 2 tokens of d = 8: m = 16, 108 tokens, 45 pairs an epoch
    const DataShape s = {8, 3, 2, 2, 9, "f.h5", NULL, 0};
    check_case("every job fits the data", 0, NULL, s, NULL);
    char *k17[] = {"train.k=17"};
    check_case("k > m", 1, k17, s, "command line: train.k=17: train.k: job standard_seed0: k = 17 exceeds the m = 16 latents (expansion 2 x d 8 of f.h5)");
    char *k16[] = {"train.k=16", "train.k_aux=16"};
    check_case("k = m and k_aux = m are fine", 2, k16, s, NULL);
    char *kaux[] = {"train.k_aux=17"};
    check_case("k_aux > m (sparsemax has none)", 1, kaux, s,
               "command line: train.k_aux=17: train.k_aux: job standard_seed0: k_aux = 17 exceeds the m = 16 latents (expansion 2 x d 8 of "
               "f.h5); at most m, or 0 for no AuxK");
    char *gk[] = {"train.grid[2].k=[4, 32]"};
    check_case("a grid entry's own k is the key named", 1, gk, s,
               "command line: train.grid[2].k=[4, 32]: train.grid[2].k: job separate_lambda0.1_k32_seed0: k = 32 exceeds "
               "the m = 16 latents (expansion 2 x d 8 of f.h5)");
    const DataShape wide = {4000000, 3, 2, 2, 9, "f.h5", NULL, 0};
    char *big[] = {"train.expansion=1024"};
    check_case("m = expansion x d beyond an int", 1, big, wide,
               "command line: train.expansion=1024: train.expansion: job standard_seed0: m = expansion x d = 1024 x "
               "4000000 = 4096000000 latents is more than 2147483647");
    char *hf[] = {"train.grid[1].high_frac=0.99"};
    check_case("+M: m_h = m", 1, hf, s,
               "command line: train.grid[1].high_frac=0.99: train.grid[1].high_frac: job temporal+M_lambda0.1_high_frac0.99_seed0: "
               "high_frac 0.99 of m = 16 latents gives a high-level group of m_h = 16; +M needs 1 <= m_h < m");
    char *hf0[] = {"train.grid[1].high_frac=0.03"};
    check_case("+M: m_h = 0", 1, hf0, s,
               "command line: train.grid[1].high_frac=0.03: train.grid[1].high_frac: job temporal+M_lambda0.1_high_frac0.03_seed0: "
               "high_frac 0.03 of m = 16 latents gives a high-level group of m_h = 0; +M needs 1 <= m_h < m");
    const DataShape t1 = {8, 1, 2, 2, 100, "f.h5", NULL, 0};
    check_case("T = 1 with a temporal term", 0, NULL, t1,
               "%s:13: train.grid[1].variant: job temporal+M_lambda0.1_high_frac0.2_seed0: variant temporal+M compares "
               "time steps and needs clips of T >= 2 (f.h5 has T = 1)");
    const DataShape w1 = {8, 3, 4, 1, 9, "f.h5", NULL, 0};
    check_case("W = 1 for separate", 0, NULL, w1,
               "%s:14: train.grid[2].variant: job separate_lambda0.1_seed0: variant separate compares right neighbours "
               "and needs W >= 2 patches per row (f.h5 has W = 1)");
    const DataShape tn2 = {8, 2, 1, 1, 100, "f.h5", NULL, 0};
    char *no_sep[] = {"train.grid[2].variant=temporal"};
    check_case("raster: T x N = 2 holds no pair", 1, no_sep, tn2,
               "%s:15: train.grid[3].variant: job raster_lambda0.1_seed0: clips of T x H x W = 2 tokens hold no raster "
               "pair (f.h5; needs at least 3)");
    const DataShape huge = {8, 16, 64, 64, 100000, "f.h5", NULL, 0};
    char *bc[] = {"train.batch_clips=65536"};
    check_case("clip batch tokens beyond an int", 1, bc, huge,
               "command line: train.batch_clips=65536: train.batch_clips: job temporal+M_lambda0.1_high_frac0.2_seed0: "
               "a batch of 65536 clips is 4294967296 tokens, more than 2147483647");
    char *bc10[] = {"train.batch_clips=10"};
    check_case("clip batch > training clips", 1, bc10, s,
               "command line: train.batch_clips=10: train.batch_clips: job temporal+M_lambda0.1_high_frac0.2_seed0: a "
               "batch of 10 clips exceeds the 9 training clips of f.h5");
    const DataShape unknown = {8, 3, 2, 2, -1, "the extract section", NULL, 0};
    check_case("training clips unknown: not checked", 1, bc10, unknown, NULL);
    char *bt[] = {"train.batch_tokens=109"};
    check_case("no full batch of tokens in the epochs", 1, bt, s,
               "command line: train.batch_tokens=109: train.batch_tokens: job standard_seed0: the 9 training clips of "
               "f.h5 hold 108 tokens: no full batch of 109 tokens in train.epochs = 1");
    char *bt2[] = {"train.batch_tokens=109", "train.epochs=2"};
    check_case("two epochs make that batch", 2, bt2, s, NULL);
    char *bp[] = {"train.batch_pairs=46"};
    check_case("no full batch of pairs", 1, bp, s,
               "command line: train.batch_pairs=46: train.batch_pairs: job raster_lambda0.1_seed0: the 9 training clips "
               "of f.h5 hold 45 pairs: no full batch of 46 pairs in train.epochs = 1");
}

// --- the variant table ------------------------------------------------------------

// SPEC §1's variants (and §5's check-step names): the table must hold exactly these.
static const char *const SPEC_VARIANTS[] = {"standard",   "temporal",   "separate",  "raster",   "standard+M",
                                            "temporal+M", "separate+M", "sparsemax", "entmax15", "frozen"};

static void test_variant_table(void) {
    char what[200];
    const int n_spec = (int)(sizeof(SPEC_VARIANTS) / sizeof(*SPEC_VARIANTS));
    expect(sae_n_variants == n_spec, "the variant table has SPEC's ten rows");
    for (int i = 0; i < n_spec; i++) {
        snprintf(what, sizeof(what), "variant %s is in the table", SPEC_VARIANTS[i]);
        expect(sae_variant_find(SPEC_VARIANTS[i]) != NULL, what);
    }
    for (int i = 0; i < sae_n_variants; i++) {
        const SaeVariant *v = &sae_variants[i];
        SaeConfig cfg;
        snprintf(what, sizeof(what), "%s: found, configured, named back", v->name);
        expect(sae_variant_find(v->name) == v && sae_config_init(&cfg, v->name, 16, 64) == 0 &&
                   sae_variant_of(&cfg) == v && sae_variant_name(&cfg) && !strcmp(sae_variant_name(&cfg), v->name),
               what);
        snprintf(what, sizeof(what), "%s: its configuration follows the row and SPEC's defaults", v->name);
        expect(cfg.select == v->select && cfg.frozen_decoder == v->frozen_decoder && (cfg.k_aux == 512) == v->auxk &&
                   (cfg.k_aux == 0) == !v->auxk && (cfg.m_high == 13) == v->matryoshka &&
                   (cfg.m_high == 0) == !v->matryoshka && cfg.contrast == sae_variant_contrast(v, 0) && cfg.k == 64 &&
                   cfg.alpha == 1.0f / 32 && cfg.beta == 1 && cfg.tau == 0.1f && cfg.temp_s == 1,
               what);
        cfg.lambda_t = 0.5f;
        sae_config_resolve(&cfg);
        snprintf(what, sizeof(what), "%s: named back with lambda_t > 0 (sae_config_resolve)", v->name);
        expect(sae_variant_of(&cfg) == v && cfg.contrast == v->contrast, what);
        // the columns agree: the deck values that apply, the batch, the cost
        const SaeContrast ct = v->contrast;
        snprintf(what, sizeof(what), "%s: its columns agree with each other", v->name);
        expect(sae_variant_uses(v, SAE_USES_LAMBDA_T) == (ct == CTR_TEMPORAL || ct == CTR_SEPARATE) &&
                   sae_variant_uses(v, SAE_USES_LAMBDA_S) == (ct == CTR_SEPARATE) &&
                   sae_variant_uses(v, SAE_USES_LAMBDA_R) == (ct == CTR_RASTER) &&
                   sae_variant_uses(v, SAE_USES_TAU) == (ct != CTR_NONE) &&
                   sae_variant_uses(v, SAE_USES_LAMBDA) == (ct != CTR_NONE) &&
                   sae_variant_uses(v, SAE_USES_HIGH_FRAC) == v->matryoshka &&
                   sae_variant_uses(v, SAE_USES_BETA) == v->matryoshka &&
                   sae_variant_uses(v, SAE_USES_ALPHA) == v->auxk &&
                   sae_variant_uses(v, SAE_USES_T_S) == (v->select == SEL_SPARSEMAX || v->select == SEL_ENTMAX15) &&
                   (v->select == SEL_BATCHTOPK) == v->matryoshka && (!v->contrast_optional || ct != CTR_NONE) &&
                   v->batch == (ct == CTR_RASTER ? BATCH_PAIRS : ct == CTR_NONE ? BATCH_TOKENS : BATCH_CLIPS) &&
                   sae_variant_batch(v, 0) == (v->contrast_optional ? BATCH_TOKENS : v->batch) &&
                   sae_variant_batch(v, 0.5) == v->batch &&
                   sae_variant_contrast(v, 0) == (v->contrast_optional ? CTR_NONE : ct) &&
                   v->cost_nce == (ct != CTR_NONE ? 1.25 : 1.0) && v->cost == (v->matryoshka ? 1.15 : 1.0),
               what);
        for (int j = 0; j < i; j++) {
            const SaeVariant *w = &sae_variants[j];
            snprintf(what, sizeof(what), "%s and %s: distinct names and configurations", w->name, v->name);
            expect(strcmp(w->name, v->name) &&
                       !(w->select == v->select && w->frozen_decoder == v->frozen_decoder && w->contrast == v->contrast),
                   what);
        }
    }
    // the deck's allowed names are the table's, in its order
    char want[512] = "";
    for (int i = 0, n = 0; i < sae_n_variants; i++)
        n += snprintf(want + n, sizeof(want) - (size_t)n, "%s%s", i ? "|" : "", sae_variants[i].name);
    expect_str(SAE_VARIANT_CHOICES, want, "SAE_VARIANT_CHOICES: the names joined by '|'");
    const DeckKey *vk = NULL;
    for (const DeckKey *k = stsae_schema; k->key; k++)
        if (!strcmp(k->key, "train.grid.variant")) vk = k;
    expect(vk && vk->type == DECK_ENUM_LIST && vk->allowed && !strcmp(vk->allowed, want),
           "the schema's variant: one name or a list, of the table's names");
    // names that are no variant
    static const char *const bad[] = {"", "raster+M", "frozen+M", "sparsemax+M", "+M", "standard+M+M", "Standard",
                                      "standard "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        SaeConfig cfg;
        snprintf(what, sizeof(what), "'%s' is no variant", bad[i]);
        expect(!sae_variant_find(bad[i]) && sae_config_init(&cfg, bad[i], 16, 64) == -1, what);
    }
    SaeConfig none;
    expect(!sae_variant_find(NULL) && sae_config_init(&none, NULL, 16, 64) == -1, "NULL is no variant");
    sae_config_init(&none, "standard", 16, 64);
    none.select = SEL_SPARSEMAX, none.frozen_decoder = 1;
    expect(!sae_variant_of(&none) && !sae_variant_name(&none), "a configuration no row describes has no name");
}

// --- grid entries with a list of variants (SPEC §7) --------------------------------------

// Writes `text` to DIR/name and expands it; NULL with the message in err.
static JobList *expand_text(const char *name, const char *text, Deck **d, char *err, size_t cap) {
    char path[600];
    write_deck(name, text, path, sizeof(path));
    *d = deck_load(path, stsae_schema, 0, NULL, err, cap);
    return *d ? jobs_expand(*d, err, cap) : NULL;
}

static void test_variant_lists(void) {
    static const char *list_deck =
        "run_dir: r\n"                                                                   // 1
        "train:\n"                                                                       // 2
        "  seeds: [7, 8]\n"                                                              // 3
        "  grid:\n"                                                                      // 4
        "    - {variant: [temporal, separate], lambda: [0.1, 1.0]}\n"                    // 5: jobs 0-7
        "    - {variant: [standard, raster], lambda: [0.2, 2.0], k: [8, 16]}\n"          // 6: 8-11, 12-19
        "    - {variant: [standard+M, sparsemax], name: mix, high_frac: 0.5, T_s: 2}\n" // 7: 20-21, 22-23
        "    - {variant: [frozen], name: fz}\n";                                         // 8: 24-25
    static const char *split_deck =
        "run_dir: r\n"
        "train:\n"
        "  seeds: [7, 8]\n"
        "  grid:\n"
        "    - {variant: temporal, lambda: [0.1, 1.0]}\n"
        "    - {variant: separate, lambda: [0.1, 1.0]}\n"
        "    - {variant: standard, k: [8, 16]}\n"
        "    - {variant: raster, lambda: [0.2, 2.0], k: [8, 16]}\n"
        "    - {variant: standard+M, name: mix_standard+M, high_frac: 0.5}\n"
        "    - {variant: sparsemax, name: mix_sparsemax, T_s: 2}\n"
        "    - {variant: frozen, name: fz}\n";
    static const char *names[] = {"temporal_lambda0.1_seed7",
                                  "temporal_lambda0.1_seed8",
                                  "temporal_lambda1_seed7",
                                  "temporal_lambda1_seed8",
                                  "separate_lambda0.1_seed7",
                                  "separate_lambda0.1_seed8",
                                  "separate_lambda1_seed7",
                                  "separate_lambda1_seed8",
                                  "standard_k8_seed7",
                                  "standard_k8_seed8",
                                  "standard_k16_seed7",
                                  "standard_k16_seed8",
                                  "raster_lambda0.2_k8_seed7",
                                  "raster_lambda0.2_k8_seed8",
                                  "raster_lambda0.2_k16_seed7",
                                  "raster_lambda0.2_k16_seed8",
                                  "raster_lambda2_k8_seed7",
                                  "raster_lambda2_k8_seed8",
                                  "raster_lambda2_k16_seed7",
                                  "raster_lambda2_k16_seed8",
                                  "mix_standard+M_high_frac0.5_seed7",
                                  "mix_standard+M_high_frac0.5_seed8",
                                  "mix_sparsemax_T_s2_seed7",
                                  "mix_sparsemax_T_s2_seed8",
                                  "fz_seed7",
                                  "fz_seed8"};
    const int n_names = (int)(sizeof(names) / sizeof(*names));
    char err[1024], what[300];
    Deck *d = NULL, *e = NULL;
    JobList *l = expand_text("list.yaml", list_deck, &d, err, sizeof(err));
    expect(l != NULL, "a grid entry takes a list of variants");
    if (!l) {
        printf("     %s\n", err);
        deck_free(d);
        return;
    }
    expect(l->n == n_names, "variant lists: 26 jobs ({variant: [temporal, separate], lambda: [0.1, 1.0]} is four, x 2 seeds)");
    for (int i = 0; i < n_names && i < l->n; i++) {
        snprintf(what, sizeof(what), "variant lists: job %d's name (variants slowest, the keys each one uses)", i);
        expect_str(l->job[i].name, names[i], what);
    }
    if (l->n == n_names) {
        expect(l->job[4].lambda_t == 0.1 && l->job[4].lambda_s == 0.1 && l->job[4].batch_kind == BATCH_CLIPS,
               "variant lists: separate's lambda sets lambda_t = lambda_s");
        expect(l->job[8].tau == 0 && l->job[8].lambda_r == 0 && l->job[8].k == 8 && l->job[8].batch_kind == BATCH_TOKENS,
               "variant lists: lambda does not apply to standard, k does");
        expect(l->job[16].lambda_r == 2 && l->job[16].rules == sae_variant_find("raster"),
               "variant lists: raster's lambda_r");
        expect(l->job[22].T_s == 2 && l->job[22].high_frac == 0 && l->job[22].lambda_t == 0.1 &&
                   l->job[20].high_frac == 0.5 && l->job[20].T_s == 0,
               "variant lists: high_frac for +M only, T_s for sparsemax only");
        int entries_ok = 1;
        for (int i = 0; i < l->n; i++) entries_ok &= l->job[i].entry == (i < 8 ? 0 : i < 20 ? 1 : i < 24 ? 2 : 3);
        expect(entries_ok, "variant lists: each job's entry");
    }
    JobList *m = expand_text("split.yaml", split_deck, &e, err, sizeof(err));
    expect(m && m->n == l->n, "one entry per variant: the same number of jobs");
    for (int i = 0; m && i < l->n; i++) {
        int j = 0;
        while (j < m->n && strcmp(l->job[i].name, m->job[j].name)) j++;
        snprintf(what, sizeof(what), "%s: the same job (hash, values) from one entry per variant", l->job[i].name);
        expect(j < m->n && l->job[i].hash == m->job[j].hash && !strcmp(l->job[i].canon, m->job[j].canon), what);
    }
    jobs_free(m);
    deck_free(e);
    test_roundtrip(d); // the list form written and read back
    jobs_free(l);
    deck_free(d);

    // a one-element list is the lone name
    l = expand_text("one.yaml", "train:\n  grid:\n    - {variant: [temporal], lambda: [0.1, 0.5], name: t}\n", &d, err,
                    sizeof(err));
    m = expand_text("lone.yaml", "train:\n  grid:\n    - {variant: temporal, lambda: [0.1, 0.5], name: t}\n", &e, err,
                    sizeof(err));
    int same = l && m && l->n == 6 && m->n == 6 && !strcmp(l->job[3].name, "t_lambda0.5_seed0"); // seeds 0, 1, 2
    for (int i = 0; same && i < l->n; i++) same = !strcmp(l->job[i].name, m->job[i].name) && l->job[i].hash == m->job[i].hash;
    expect(same, "[temporal] is the same as temporal");
    jobs_free(l), jobs_free(m), deck_free(d), deck_free(e);

    // errors, each at the key to change
    static const struct {
        const char *what, *grid, *msg; // msg: after "PATH:"
    } bad[] = {
        {"a variant listed twice", "    - {variant: [temporal, separate, temporal], lambda: 0.1}\n",
         "3: train.grid[0].variant[2]: variant temporal is listed twice"},
        {"a key none of the listed variants uses", "    - {variant: [standard, frozen], tau: 0.5}\n",
         "3: train.grid[0].tau: none of the variants standard, frozen uses tau"},
        {"a key the one listed variant does not use", "    - {variant: [standard], tau: 0.5}\n",
         "3: train.grid[0].tau: variant standard does not use tau"},
        {"an unknown name in the list", "    - {variant: [temporal, temporal+X]}\n",
         "3: train.grid[0].variant[1]: expected one of standard, temporal, separate, raster, standard+M, temporal+M, "
         "separate+M, sparsemax, entmax15, frozen (got 'temporal+X')"},
        {"an empty list", "    - {variant: []}\n", "3: train.grid[0].variant: expected a non-empty list of values (got [])"},
        {"a list of lists", "    - {variant: [[temporal]]}\n",
         "3: train.grid[0].variant[0]: expected one of standard, temporal, separate, raster, standard+M, temporal+M, "
         "separate+M, sparsemax, entmax15, frozen (got a list)"},
        {"a listed variant's job made again by another entry",
         "    - {variant: [temporal, raster], lambda: 0.1}\n    - {variant: raster, lambda: 0.1}\n",
         "4: train.grid[1]: job 'raster_lambda0.1_seed0' has the same values as job 'raster_lambda0.1_seed0' of "
         "train.grid[0] ("},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char text[512], name[64], path[600], want[1600];
        snprintf(text, sizeof(text), "train:\n  grid:\n%s", bad[i].grid);
        snprintf(name, sizeof(name), "bad_list%zu.yaml", i);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        l = expand_text(name, text, &d, err, sizeof(err));
        snprintf(want, sizeof(want), "%s:%s", path, bad[i].msg);
        expect(!l, bad[i].what);
        snprintf(what, sizeof(what), "%s: the exact message", bad[i].what);
        expect(!strncmp(err, want, strlen(want)), what);
        if (strncmp(err, want, strlen(want))) printf("     got  '%s'\n     want '%s'\n", err, want);
        jobs_free(l);
        deck_free(d);
    }

    // jobs_check names the list element of the job's variant
    static const char *w1 = "run_dir: r\ntrain:\n  expansion: 2\n  k: 4\n  k_aux: 4\n  epochs: 1\n  batch_tokens: 108\n"
                            "  batch_clips: 9\n  batch_pairs: 45\n  seeds: [0]\n  grid:\n"
                            "    - {variant: [temporal, separate, raster], lambda: 0.1}\n";
    l = expand_text("w1.yaml", w1, &d, err, sizeof(err));
    const DataShape narrow = {8, 3, 4, 1, 9, "f.h5", NULL, 0};
    char want[1600];
    snprintf(want, sizeof(want),
             "%s/w1.yaml:12: train.grid[0].variant[1]: job separate_lambda0.1_seed0: variant separate compares right "
             "neighbours and needs W >= 2 patches per row (f.h5 has W = 1)",
             dir);
    expect(l && jobs_check(d, l, &narrow, err, sizeof(err)) == -1, "jobs_check: separate in a list on W = 1");
    expect_str(err, want, "jobs_check: the message names the list element");
    jobs_free(l);
    deck_free(d);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_jobs SCRATCH_DIR\n");
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s", argv[1]);
    char path[600], err[512];
    write_deck("grid.yaml", GRID_DECK, path, sizeof(path));
    Deck *d = deck_load(path, stsae_schema, 0, NULL, err, sizeof(err));
    JobList *l = d ? jobs_expand(d, err, sizeof(err)) : NULL;
    if (!l) {
        printf("FAIL the grid deck: %s\n", err);
        return 1;
    }
    test_order(l);
    test_rules(l);
    test_hashes(l);
    test_getters(d, path);
    test_roundtrip(d);
    test_overrides(path);
    test_all_sections();
    test_errors();
    test_int_ranges();
    test_big_integers();
    test_laughs();
    test_jobs_check();
    test_variant_table();
    test_variant_lists();
    jobs_free(l);
    deck_free(d);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
