// browse.h — `stsae browse RUN_DIR` (SPEC §6): the static, offline HTML
// feature browser of a run, RUN_DIR/browser/ (index.html, compare.html,
// JOB/index.html, JOB/latent_NNNNN.html); see src/stages/browse.c.
#ifndef STSAE_BROWSE_H
#define STSAE_BROWSE_H

// The browser of RUN_DIR, written by this process (stsae report calls it on
// its rank 0): 0, or 1 after printing one message naming the file and the
// reason.
int browse_write(const char *run_dir);

// The command: rank 0 writes, every rank returns its status.
int browse_main(int argc, char **argv);

#endif
