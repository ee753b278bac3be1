// deck.h — strict YAML input decks (SPEC §5). Knows no stage: what keys exist
// comes from a schema table (stsae's is in deck_schema.h).
//
// In:  a YAML file, `a.b=value` overrides from the command line (the value is
//      YAML flow text: `train.k=32`, `train.seeds=[0,1]`), and a schema table.
// Out: a tree of maps, lists and scalars, validated against the schema, with
//      the defaults filled in, read by typed getters on dotted paths with
//      list indices ("train.grid[2].lambda[0]"), and written back as YAML.
//      Every value remembers where it came from (file:line, the command line,
//      or the schema default), so later checks (jobs.h) can name the line too.
//
// deck_load is pure (no printing, no exit): every MPI rank can load the same
// deck, reach the same verdict, and the ranks exit together (rank 0 prints).
// A deck error is one message: `FILE:LINE: KEY: what is wrong (got 'VALUE')`,
// `command line: train.k=abc: train.k: ...` for an override, and
// `FILE:LINE:COL: PROBLEM` for a YAML syntax error. Unknown keys, duplicate
// keys, wrong types, values out of range and missing required keys are all
// errors, and so is a deck of more than 100,000 values once its YAML aliases
// are expanded (each use counts: "billion laughs" decks fail fast). Integers
// must fit int64_t and their key's range; schemas give every integer a
// bounded range, so a value never wraps in the C int it goes into. The getters die() when asked for a key the deck does not hold or
// with the wrong type: that is a bug in the caller, not in the deck.
#ifndef STSAE_DECK_H
#define STSAE_DECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    DECK_STR,      // non-empty text
    DECK_PATH,     // non-empty text naming a file or directory (kept as written)
    DECK_INT,      // decimal integer, no leading zeros; give it a bounded range "[lo, hi]"
    DECK_NUM,      // finite decimal number (1, 0.5, 1.0e-8)
    DECK_BOOL,     // true | false
    DECK_ENUM,     // one of `allowed`
    DECK_INT_LIST, // non-empty list of DECK_INT; a lone integer reads as a one-element list
    DECK_NUM_LIST, // non-empty list of DECK_NUM; likewise
    DECK_MAP,      // a map of further schema keys; an empty value (`synth:`) is an empty map
    DECK_MAP_LIST, // non-empty list of maps; their keys continue the path: "train.grid.variant"
    DECK_ENUM_LIST, // one of `allowed`, or a non-empty list of them; a lone value stays one value
                    // (ask deck_has(d, "KEY[0]") which it is)
} DeckType;

enum {
    DECK_REQUIRED = 1, // must be given when its parent map is present
    DECK_ONE_OF = 2,   // a DECK_MAP that must hold exactly one of its keys
};

// One row of a schema table; a table ends with a row whose key is NULL.
// A key with neither a default nor DECK_REQUIRED is optional: absent means
// "not given" (deck_has), e.g. a whole stage section.
typedef struct {
    const char *key;     // dotted path, parents before children
    DeckType type;
    const char *def;     // default as YAML flow text ("[0, 1, 2]"), or NULL
    const char *allowed; // numbers: "> 0", ">= 1", "(0, 1]", "[0, 1)"; enums: "cpu|cuda"
    int flags;           // DECK_REQUIRED, DECK_ONE_OF
    const char *help;    // one line; deck_write prints it as a comment
} DeckKey;

typedef struct Deck Deck;

// Loads `path`, applies the overrides over[0..n_over) ("a.b=value"), checks
// everything against `schema` and fills its defaults. NULL on error, with the
// one message in err (NUL-terminated, at most errcap bytes).
Deck *deck_load(const char *path, const DeckKey *schema, int n_over, char *const *over,
                char *err, size_t errcap);
// deck_load, and where the deck has no `section` (a whole stage's map), loaded
// again with `section={}` after the overrides: that section at its defaults
// (a deck saved by train has no report section, and report still runs).
// section NULL: deck_load itself.
Deck *deck_load_section(const char *path, const DeckKey *schema, int n_over, char *const *over,
                        const char *section, char *err, size_t errcap);
void deck_free(Deck *d);

// Getters on dotted paths with list indices: "train.seeds[1]".
int deck_has(const Deck *d, const char *key);
const char *deck_str(const Deck *d, const char *key); // text of any scalar; numbers in canonical form
int64_t deck_int(const Deck *d, const char *key);
double deck_num(const Deck *d, const char *key);       // also reads integers
int deck_bool(const Deck *d, const char *key);
int deck_len(const Deck *d, const char *key);          // entries of a list or a map
const char *deck_key_at(const Deck *d, const char *key, int i); // name of a map's i-th key
// Where a value came from, for messages: "FILE:LINE", "command line: ARG" or "default".
// Writes "WHERE: KEY: message" into err (cap bytes); returns -1, so callers
// can `return deck_errorf(...)`. The one format of every deck error.
int deck_errorf(char *err, size_t cap, const char *where, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void deck_where(const Deck *d, const char *key, char *buf, size_t cap);

// The deck as resolved (defaults filled, numbers canonical), as YAML that
// deck_load reads back to the same deck; schema help as comments. Maps keep
// schema order, except the maps inside a list (grid entries), which keep file
// order.
void deck_write(const Deck *d, FILE *out);

// The canonical text of a number: the shortest that reads back exactly, with
// a '.' before any exponent ("1.0e-08") so that YAML 1.1 readers (PyYAML)
// see a number too.
void deck_format_num(double v, char *buf, size_t cap);

#endif
