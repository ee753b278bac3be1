// main.c — the `stsae` program: dispatches subcommands. The stages run on
// the ranks that comm_world_init starts (MPI; comm.h) and comm_world_finalize
// ends; the check-* tools and stop are single processes.
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#include "stsae/base/blas_setup.h" // blas_prefer_avx512, blas_kernel
#include "stsae/base/common.h" // STSAE_VERSION
#include "stsae/base/stop_request.h" // stop_unblock
#include "stsae/comm/comm.h" // comm_world_init, comm_world_finalize
#include "stsae/comm/comm_device.h" // comm_device_backends
#include "stsae/comm/device.h"      // device_describe
#include "stsae/stages/browse.h" // browse_main
#include "stsae/stages/eval.h" // eval_main
#include "stsae/stages/extract.h" // extract_main
#include "stsae/stages/report.h" // report_main
#include "stsae/stages/run.h" // run_main
#include "stsae/stages/stop.h" // stop_main
#include "stsae/stages/synth.h" // synth_main
#include "stsae/stages/train.h" // train_main
#include "stsae/tools/check.h" // check_step_main, check_deck_main
#include "stsae/tools/export.h" // export_main

static void usage(FILE *out) {
    fprintf(out,
            "stsae %s — spatio-temporal sparse autoencoders on video features\n"
            "usage: stsae COMMAND ARGS\n"
            "  check DECK [key=value ...]  validate a deck; print it as resolved and its job list\n"
            "  check-step [--device cpu|cuda] CASE.h5 OUT.h5\n"
            "                              one training step on a saved batch: losses and gradients\n"
            "  check-probe IN.h5 OUT.h5    linear probe, ablations and ridge retrieval on saved features\n"
            "  check-backbone MODEL IN.h5 OUT.h5\n"
            "                              one backbone forward on saved pixels: the requested layers\n"
            "  check-clip MODEL IN.h5 OUT.h5\n"
            "                              CLIP image and text embeddings (and token ids) of saved pixels and texts\n"
            "  check-video LIST.csv OUT.h5 [--preset dinov2|videomae] [--size S --short S --filter F --frames T]\n"
            "                              decode, sample and preprocess every clip into a pixels file\n"
            "  synth DECK [key=value ...]  write the synthetic labelled video set (videos, clips.csv)\n"
            "  extract DECK [key=value ...]\n                              the feature file from video clips (any number of MPI ranks)\n"
            "  train DECK [key=value ...]  train every job of the deck's grid (any number of MPI ranks)\n"
            "  eval DECK [key=value ...]   evaluate every trained job and the raw features (any number of ranks)\n"
            "  report RUN_DIR              results.h5, results.csv, results.md and the plots of a run\n"
            "  browse RUN_DIR              the HTML feature browser of a run (RUN_DIR/browser/; report writes it too)\n"
            "  run DECK [key=value ...]    every stage the deck names: synth, extract, train, eval, report\n"
            "  stop [--path] DECK [key=value ...]\n"
            "                              ask the running extract or train of the deck to checkpoint and exit 3\n"
            "                              (writes RUN_DIR/STOP; --path: print its path only)\n"
            "  export JOB_DIR|MODEL.h5 --format saelens|sparsify OUT_DIR\n"
            "                              the trained SAE in SAELens's or sparsify's format (scale folded in)\n"
            "  version                     print the version and the GPU backend\n",
            STSAE_VERSION);
}

int main(int argc, char **argv) {
    stop_unblock(); // before any thread: a mask inherited from the launcher must not swallow SIGTERM/SIGUSR1
    blas_prefer_avx512(argv);
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // our own messages name the file and object
    const char *cmd = argv[1];
    if (!strcmp(cmd, "check")) return check_deck_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "check-step")) return check_step_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "check-probe")) return check_probe_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "check-metrics")) return check_metrics_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "check-backbone")) return check_backbone_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "check-clip")) return check_clip_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "check-video")) return check_video_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "stop")) return stop_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "export")) return export_main(argc - 2, argv + 2);
    // the stages are MPI programs (any number of ranks; MPI is started once,
    // so that `run` can call one stage after the other)
    static const struct {
        const char *name;
        int (*main)(int, char **);
    } stages[] = {{"synth", synth_main},  {"extract", extract_main}, {"train", train_main},
                  {"eval", eval_main},    {"report", report_main},   {"browse", browse_main},
                  {"run", run_main}};
    for (size_t i = 0; i < sizeof(stages) / sizeof(*stages); i++)
        if (!strcmp(cmd, stages[i].name)) {
            comm_world_init(&argc, &argv);
            const int rc = stages[i].main(argc - 2, argv + 2);
            comm_world_finalize();
            return rc;
        }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("stsae %s\nbackend: %s\n%scollectives between GPUs (comm.backend): %s\nBLAS kernel: %s\n",
               STSAE_VERSION, device_describe(), device_list(), comm_device_backends(), blas_kernel());
        return 0;
    }
    fprintf(stderr, "stsae: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
