// synth.h — `stsae synth DECK [key=value ...]` (SPEC §5): the built-in
// synthetic labelled video set, so that every stage runs with no download.
//
// In:  the deck's synth section (out, clips, seed, frames, size, fps,
//      test_frac, distractors, noise, codec, quality).
// Out: under synth.out (relative: under run_dir): videos/synth_NNNNNN.<ext>
//      (real encoded videos: mpeg4 in .mp4 by default), clips.csv
//      (`path,label,split` with a header; label names; paths relative to the
//      CSV), labels.txt (the names, one per line, in label-index order, which
//      is byte order of the names, as inputs_read_csv numbers them) and
//      synth.yaml (the deck as run). Every file is written to a temporary
//      name and renamed. The same deck gives the same bytes, whatever the
//      number of ranks or threads.
//
// The clips: one or two actor objects perform one of 14 actions in the style
// of Something-Something v2 ("Pushing something from left to right",
// "Something falling", "Turning something clockwise", "Putting something next
// to something", "Something colliding with something", ...), with random
// shapes, two-tone colours (so that turning shows), sizes, positions, speeds
// and timing, over textured backgrounds, with moving distractor objects, a
// panning camera in half the clips, flicker and pixel noise. Classes are
// balanced; the split is stratified (inputs_default_split).
//
// MPI: clip i is made by rank i mod size (OpenMP threads share a rank's
// clips); rank 0 writes the lists once every rank is done. Serial runs need
// no mpirun.
#ifndef STSAE_SYNTH_H
#define STSAE_SYNTH_H

int synth_main(int argc, char **argv);

#endif
