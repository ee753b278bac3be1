// signals.c — the stop request of signals.h.
#define _POSIX_C_SOURCE 200809L // sigaction
#include "stsae/signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t requested = 0;

static void on_signal(int sig) {
    (void)sig;
    requested = 1;
}

void stop_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int stop_requested(void) { return requested != 0; }
