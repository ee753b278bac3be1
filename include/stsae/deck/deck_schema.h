// deck_schema.h — which keys an stsae deck has (SPEC §5): their types,
// defaults and ranges, as one table read by the generic deck parser (deck.h).
// Sections synth, extract, train, eval are optional as a whole: a deck names
// the stages it runs (deck_has(d, "train")).
#ifndef STSAE_DECK_SCHEMA_H
#define STSAE_DECK_SCHEMA_H

#include "stsae/deck/deck.h"

extern const DeckKey stsae_schema[]; // ends with a row whose key is NULL

#endif
