// check.h — `stsae check-step CASE.h5 OUT.h5` (SPEC §5): one training step
// on a batch given in a file, writing the losses and raw gradients, so that
// the step can be compared with an independent reference. Extensions beyond
// SPEC §5 (used by the tests): variants sparsemax, entmax15 and frozen; the
// attribute T_s; and `optim_steps` > 0, which then runs that many full
// optimizer steps (projection, Adam with warm-up, renormalization) on the
// same batch and writes optim/loss_total, the final parameters and theta.
// `stsae check-step --device cuda CASE.h5 OUT.h5`: the same by the CUDA step
// (sae_cuda.h, fp32) for the variants it covers (sparsemax / entmax15 with
// lambda_t = 0); dies for the others; exit 77 ("no CUDA device") where the
// build has no CUDA or the machine no device.
#ifndef STSAE_CHECK_H
#define STSAE_CHECK_H

int check_step_main(int argc, char **argv);

// `stsae check-probe IN.h5 OUT.h5` (hidden; for the tests): the linear probe,
// its feature ranking and ablations, and the ridge retrieval on features given
// in a file (src/tools/check_probe.c describes both files).
int check_probe_main(int argc, char **argv);

// `stsae check DECK [key=value ...]` (SPEC §5): validates a deck, prints it as
// resolved and then its job table as YAML comments (so the output is itself a
// deck). Exit 0; on a deck error, one message on stderr and exit 1.
int check_deck_main(int argc, char **argv);

// `stsae check-backbone MODEL IN.h5 OUT.h5` (hidden; for the tests): one
// backbone forward on the pixels of IN.h5, each requested layer written to
// OUT.h5 (src/tools/check_backbone.c describes both files).
int check_backbone_main(int argc, char **argv);

// `stsae check-clip MODEL IN.h5 OUT.h5` (hidden; for the tests): CLIP's image
// and text embeddings and token ids of the pixels and texts of IN.h5
// (src/tools/check_clip.c describes both files).
int check_clip_main(int argc, char **argv);

// `stsae check-video LIST.csv OUT.h5 [options]`: every clip of a CSV list
// decoded, sampled and preprocessed into a pixels file (SPEC §4); failed
// clips are reported and recorded, not fatal (src/tools/check_video.c).
int check_video_main(int argc, char **argv);

// `stsae check-metrics IN.h5 OUT.h5`: the label-free evaluation metrics
// (metrics.h) on dense codes given in a file (see src/tools/check_metrics.c).
int check_metrics_main(int argc, char **argv);

#endif
