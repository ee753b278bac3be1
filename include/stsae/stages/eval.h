// eval.h — `stsae eval DECK [key=value ...]` (SPEC §2, §5): every trained job
// of the deck's grid, and the raw features, evaluated on the held-out clips.
//
// In:  the deck, resolved once into EvalOptions (options.h; train section:
//      the feature file, layer and grid; eval section: options, its defaults
//      where the deck has none), RUN_DIR/jobs/NAME/model.h5 of each trained job.
// Out: RUN_DIR/jobs/NAME/eval.h5 per job and RUN_DIR/raw/eval.h5 for the raw
//      features of train.layer (RUN_DIR/raw_layerL/eval.h5 for each other
//      layer a job of the grid trains on; each job is evaluated on its own
//      layer) (each written under a temporary name, then renamed; an
//      existing one is kept, so a stopped evaluation resumes): root attributes
//      named like the columns of results.csv (SPEC §6) plus the post-hoc
//      smoothing columns and `layer`, and per-latent datasets rho, ms, top_clips [m, 8],
//      mean_clip_value, probe_weight_norm, and for jobs freq (the share of test
//      tokens where the latent fires) and mean_act (its mean value where it
//      does); and format_version
//      (EVAL_FORMAT_VERSION), which report checks (h5io.h).
//
// Layer by layer, the work items (that layer's raw row, then its jobs in grid
// order) are dealt round-robin to the ranks; each rank streams the clips of its items one at a time (codes,
// reconstructions and smoothed codes of one clip at a time; only clip-level
// [clips, m] matrices are held). Exit status 0, or 1 with one message (a
// failed write: every rank prints it, naming the file and the reason).
#ifndef STSAE_EVAL_H
#define STSAE_EVAL_H

// The format version of eval.h5 that this stsae writes and reads (report.c).
#define EVAL_FORMAT_VERSION 1

int eval_main(int argc, char **argv);

#endif
