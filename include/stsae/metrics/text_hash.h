// text_hash.h — a stand-in text embedder for label texts, so that text-video
// retrieval (ridge.h, SPEC §2.10, the paper's Table 5) can run where no CLIP
// text embeddings were imported (the demo's synthetic labels).
//
// In:  n label texts (UTF-8; only ASCII letters and digits make words).
// Out: n unit vectors [n, dim] (float32): the feature hashing of the text's
//      words and adjacent word pairs. Words are the maximal runs of ASCII
//      letters and digits, lowercased; the items are every word w and every
//      pair "w1 w2" of adjacent words; item s adds sign(s) to coordinate
//      h(s) mod dim, where h is 64-bit FNV-1a of the item's bytes and
//      sign(s) = +1 when bit 63 of h is 0, else -1; then the vector is scaled
//      to unit length (left at zero for a text without words).
//
// Why: labels that share words ("moving something from left to right",
// "... from right to left") get similar but distinct embeddings (unigrams in
// common, pairs not), a legitimate text geometry built from the label text
// alone — the hashing trick of Weinberger et al. (2009) — that knows nothing
// of the videos. It is not CLIP: results.md names the embedder used.
#ifndef STSAE_TEXT_HASH_H
#define STSAE_TEXT_HASH_H

#define TEXT_HASH_DIM 256

void text_hash_embed(const char *const *texts, int n, int dim, float *out);

#endif
