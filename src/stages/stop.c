// stop.c — `stsae stop [--path] DECK [key=value ...]` (stop.h): a stop request
// to the running extract or train of a deck, by its stop file (stop_request.h).
#include "stsae/stages/stop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/stop_request.h"
#include "stsae/deck/deck.h"
#include "stsae/deck/deck_schema.h"

int stop_main(int argc, char **argv) {
    const int path_only = argc > 0 && !strcmp(argv[0], "--path");
    if (path_only) argc--, argv++;
    if (argc < 1) {
        fprintf(stderr, "usage: stsae stop [--path] DECK [key=value ...]\n");
        return 2;
    }
    char err[1024];
    Deck *d = deck_load(argv[0], stsae_schema, argc - 1, argv + 1, err, sizeof(err));
    if (!d) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char *p = stop_file_path(deck_str(d, "run_dir"));
    int rc = 0;
    if (path_only) {
        printf("%s\n", p);
    } else {
        FILE *f = fopen(p, "w");
        if (!f || fprintf(f, "stop requested by `stsae stop %s`\n", argv[0]) < 0 || fclose(f) != 0) {
            fprintf(stderr, "stsae stop: cannot write %s: %s\n", p, strerror(errno));
            rc = 1;
        } else {
            printf("stop requested: %s\nthe running extract or train stops at its next safe point, writes its "
                   "checkpoints and exits 3; run the same command again to continue\n",
                   p);
        }
    }
    free(p);
    deck_free(d);
    return rc;
}
