// export.h — `stsae export JOB_DIR|MODEL.h5 --format saelens|sparsify OUT_DIR`:
// a trained SAE in another library's own on-disk format, so that the
// library's loader gives stsae's codes and reconstructions on raw features.
//
// In:  a job directory (its model.h5) or a model.h5 (model.h: read and
//      validated by model_load, as eval reads it).
// Out: OUT_DIR (created) with, per format,
//        saelens   cfg.json + sae_weights.safetensors (SAELens >= 6,
//                  SAE.load_from_disk): TopK jobs as architecture "topk"
//                  (k); BatchTopK jobs (+M) as "jumprelu" with every
//                  threshold = theta, the evaluation form stsae uses
//                  (keep a_j > theta); W_enc [d, m], b_enc [m], W_dec [m, d],
//                  b_dec [d], apply_b_dec_to_input true, no normalisation;
//        sparsify  cfg.json + sae.safetensors (EleutherAI sparsify,
//                  SparseCoder.load_from_disk): TopK jobs only (sparsify has
//                  no threshold form); encoder.weight [m, d], encoder.bias
//                  [m], W_dec [m, d], b_dec [d] (sparsify decodes with Triton
//                  when it imports, which needs a GPU: on a CPU set
//                  SPARSIFY_DISABLE_TRITON=1).
//      Files are written under temporary names and renamed (paths.h).
//
// Why the weights differ from model.h5's: stsae trains on s x (the input
// scale s of SPEC §1) and reports reconstructions / s; the libraries take raw
// inputs and return reconstructions in the input's units. The scale is
// folded in exactly: W_enc' = s W_enc, b_dec' = b_dec / s, W_dec' = W_dec / s
// (so W_enc' (x - b_dec') + b_enc = W_enc (s x - b_dec) + b_enc: the same
// pre-activations, hence the same codes; W_dec' z + b_dec' = xhat / s). The
// decoder's columns therefore have norm 1/s, not 1. The decoder is written
// latent-major ([m, d], one row per latent: SAELens's and sparsify's layout,
// the transpose of model.h5's [d, m]).
//
// Not expressible, refused with a message naming the variant: sparsemax and
// entmax15 in either library (no simplex projection there), BatchTopK in
// sparsify. dictionary_learning stores a pickled PyTorch state dict
// (ae.pt), which a C program does not write; it is refused, pointing to
// analysis/stsae.py for the weights. Exit 0, 1 with one message, 2 for usage.
#ifndef STSAE_EXPORT_H
#define STSAE_EXPORT_H

int export_main(int argc, char **argv);

#endif
