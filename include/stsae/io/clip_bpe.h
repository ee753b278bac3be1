// clip_bpe.h — CLIP's byte-level BPE tokenizer, read from a Hugging Face
// directory (vocab.json, merges.txt, optionally tokenizer_config.json) and
// tokenizing exactly as `transformers`' CLIPTokenizer (its `tokenizers`
// pipeline, SPEC §4), so that Table 5's text queries are the ids the
// published model was trained on.
//
// The pipeline, in the order CLIPTokenizer applies it:
//  1. the special tokens (start, end, pad, unknown: tokenizer_config.json's
//     bos_token, eos_token, pad_token, unk_token, else "<|startoftext|>" and
//     "<|endoftext|>") are cut out of the raw text, each one its own id;
//  2. every other stretch is normalised: Unicode NFC, every run of white
//     space (the White_Space property) replaced by one space, lower-cased
//     code point by code point (the full mapping: İ becomes i + U+0307);
//  3. split into pieces by CLIP's pattern, tried in this order at each
//     position: <|startoftext|>, <|endoftext|>, 's 't 're 've 'm 'll 'd, a
//     run of letters (\p{L}), one number (\p{N}), a run of anything else
//     but white space; white space itself is dropped; then the byte-level
//     step's own split by GPT-2's pattern, which changes only the pieces
//     "<|startoftext|>" and "<|endoftext|>" (into "<|", the word, "|>");
//  4. each piece's UTF-8 bytes as GPT-2's byte-to-character map, the last
//     character marked with "</w>", merged by merges.txt's ranks (lowest
//     first, leftmost among equals) and looked up in vocab.json (absent: the
//     unknown token);
//  5. start token, at most ctx - 2 of those ids (truncation), end token,
//     then the pad token up to ctx (padding="max_length").
// Unicode tables (categories, NFC, lower case) are utf8proc's. This is the
// pipeline of transformers 5's CLIPTokenizer and of 4.x's CLIPTokenizerFast
// (tokenizer.json's normalizer and pre-tokenizer). 4.x's slow CLIPTokenizer
// differs on unusual text: with ftfy installed it first runs ftfy.fix_text
// (mojibake, curly quotes, full-width forms), without it BERT's
// BasicTokenizer (control characters dropped, CJK characters split one by
// one). Lower case is per code point, as `tokenizers` does it (a final Σ
// becomes σ, not ς).
//
// Errors: a file that cannot be read, vocab.json not an object of integer
// ids, a merges.txt line that is not two symbols, a merge whose parts or
// result vocab.json lacks, or a vocab.json entry no merge makes (a
// truncated merges.txt) die with one line naming the file (and line or
// entry). A text that is not valid UTF-8 is the caller's error (-1).
#ifndef STSAE_CLIP_BPE_H
#define STSAE_CLIP_BPE_H

#include <stdint.h>

typedef struct ClipBpe ClipBpe;

ClipBpe *clip_bpe_open(const char *dir);
void clip_bpe_close(ClipBpe *t); // NULL is a no-op

// One more than the largest id of vocab.json.
int clip_bpe_vocab_size(const ClipBpe *t);

// ids[0 .. ctx) for text (ctx >= 2); returns the number of ids before the
// padding (start and end tokens included), or -1 when text is not valid
// UTF-8.
int clip_bpe_encode(const ClipBpe *t, const char *text, int ctx, int32_t *ids);

#endif
