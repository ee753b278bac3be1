// stop_request.c — the stop request of stop_request.h: signal flags and the
// polled stop file.
#define _POSIX_C_SOURCE 200809L // sigaction, sigprocmask
#include "stsae/base/stop_request.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stsae/base/common.h"
#include "stsae/base/paths.h"

static volatile sig_atomic_t signalled = 0;
static int seen_file = 0;
static char *watched = NULL; // the stop file this rank polls; NULL: signals only
static double last_poll = -1e300;

static void on_signal(int sig) {
    (void)sig;
    signalled = 1;
}

void stop_unblock(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
}

char *stop_file_path(const char *run_dir) { return path_join(run_dir, STOP_FILE); }

int stop_file_exists(const char *run_dir) {
    char *p = stop_file_path(run_dir);
    const int yes = access(p, F_OK) == 0;
    free(p);
    return yes;
}

void stop_watch(const char *run_dir, int poll_file) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    stop_unblock();
    free(watched);
    watched = poll_file ? stop_file_path(run_dir) : NULL;
    seen_file = 0;
    last_poll = -1e300;
    if (watched && access(watched, F_OK) == 0)
        printf("# note: %s exists: this run stops at its first safe point (delete the file to run on)\n", watched);
}

int stop_requested(void) {
    if (watched && !seen_file) {
        const double now = wall_time();
        if (now - last_poll >= 1.0) { // a stat a second: cheap on any file system
            last_poll = now;
            seen_file = access(watched, F_OK) == 0;
        }
    }
    return signalled || seen_file;
}

void stop_consume(const char *run_dir) {
    char *p = stop_file_path(run_dir);
    if (unlink(p) != 0 && errno != ENOENT)
        fprintf(stderr, "stsae: warning: cannot remove the stop file %s: %s (delete it before the next run)\n", p,
                strerror(errno));
    free(p);
}
