// stage.c — the start-up every MPI stage shares (stage.h): usage, the deck
// with its overrides, the stage's section, one verdict over the ranks; and
// each rank's GPU for device: cuda.
#define _POSIX_C_SOURCE 200809L // gethostname
#include "stsae/stages/stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/comm/device.h"
#include "stsae/deck/deck_schema.h"

// The deck with the command line's overrides; with spec->fill, a deck that
// lacks that section gets its defaults (deck_load_section).
static Deck *load(Stage *s, int argc, char **argv) {
    return deck_load_section(argv[0], stsae_schema, argc - 1, argv + 1, s->spec->fill, s->err, sizeof(s->err));
}

int stage_start(Stage *s, const StageSpec *spec, int argc, char **argv) {
    memset(s, 0, sizeof(*s));
    s->spec = spec;
    s->world = comm_world();
    s->rank = comm_rank(s->world);
    s->size = comm_size(s->world);
    if (argc < 1) {
        if (s->rank == 0) fprintf(stderr, "usage: stsae %s DECK [key=value ...]\n", spec->name);
        return 2;
    }
    s->deck_path = argv[0];
    s->deck = load(s, argc, argv);
    int ok = s->deck != NULL;
    if (ok && spec->section && !deck_has(s->deck, spec->section)) {
        snprintf(s->err, sizeof(s->err), "%s: the deck has no %s section%s%s", s->deck_path, spec->section,
                 spec->why ? " " : "", spec->why ? spec->why : "");
        ok = 0;
    }
    if (!stage_agree(s, ok)) {
        deck_free(s->deck);
        s->deck = NULL;
        return 1;
    }
    return 0;
}

int stage_agree(Stage *s, int ok) { return comm_agree(s->world, ok, s->err); }

int stage_use_device(Stage *s, const char *device) {
    if (strcmp(device, "cuda") != 0) return 0;
    int node_rank = 0, node_size = 1;
    comm_node_rank(s->world, &node_rank, &node_size);
    const int n = device_count(), dev = device_use(node_rank);
    char msg[COMM_MSG_MAX] = "";
    if (dev < 0) {
        char host[256] = "?";
        gethostname(host, sizeof(host) - 1);
        if (n < 0)
            snprintf(msg, sizeof(msg), "device: cuda, but this stsae was built without CUDA (%s); "
                     "build it where the CUDA toolkit is installed, or set device: cpu", device_describe());
        else
            snprintf(msg, sizeof(msg), "device: cuda, but rank %d (on %s) finds no CUDA device (%s); "
                     "run it on a GPU node, or set device: cpu", s->rank, host, device_describe());
    }
    if (!comm_agree_msg(s->world, dev >= 0, msg, sizeof(msg), 0)) {
        if (s->rank == 0) {
            fprintf(stderr, "stsae: error (rank 0): %s: %s\n", s->spec->name, msg);
            fflush(stderr);
        }
        return -1;
    }
    if (s->rank == 0) {
        printf("# device cuda: %d rank%s on this node over %d GPU%s (rank 0 on GPU %d)%s\n", node_size,
               node_size > 1 ? "s" : "", n, n > 1 ? "s" : "", dev, node_size > n ? ", ranks sharing GPUs" : "");
        printf("%s", device_list());
        fflush(stdout);
    }
    return 1;
}

void stage_write_deck(const Stage *s, FILE *out) {
    fprintf(out, "# stsae %s %s: %s as run (defaults filled in)\n", STSAE_VERSION, s->spec->name, s->deck_path);
    deck_write(s->deck, out);
}

void stage_finish(Stage *s) {
    deck_free(s->deck);
    s->deck = NULL;
}
