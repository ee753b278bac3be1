// train_prefetch.c — the next batch read while the step runs
// (train_prefetch.h): one reader thread per read, joined before its batch is
// used, so the two threads never touch the loader at once.
#include "stsae/stages/train_prefetch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "stsae/base/common.h"
#include "stsae/sae/sae_cuda.h"

struct Prefetch {
    DataLoader *dl;
    float scale;
    int device;       // float16 batches in pinned memory (else scaled float32 in malloc'd)
    int64_t last;
    void *buf[2];
    int64_t step[2];  // the batch each buffer holds (-1: none)
    SaeBatch b[2];
    int reading;      // a reader thread runs (into buf[target]), not joined yet
    int target;
    pthread_t thread;
};

// Batch s into buffer k, as the caller wants it.
static void read_into(Prefetch *p, int k, int64_t s) {
    p->b[k] = p->device ? data_batch_f16(p->dl, s, p->buf[k]) : data_batch(p->dl, s, p->scale, p->buf[k]);
}

// The reader: batch step[target] into buf[target] (planted: the batch after
// it, so every batch read ahead is one step late).
static void *read_batch(void *arg) {
    Prefetch *p = arg;
    const int k = p->target;
#ifdef _OPENMP
    omp_set_num_threads(1); // this thread's OpenMP regions: the step has the cores
#endif
    read_into(p, k, p->step[k] + PLANTED("prefetch_one_late"));
    return NULL;
}

Prefetch *prefetch_start(DataLoader *dl, float scale, size_t values, int64_t last, int device) {
    Prefetch *p = xcalloc(1, sizeof(Prefetch));
    p->dl = dl;
    p->scale = scale;
    p->device = device;
    p->last = last;
    if (values < 1) values = 1;
    for (int k = 0; k < 2; k++) {
        p->buf[k] = device ? dev_host_alloc(sizeof(uint16_t) * values) : xmalloc(sizeof(float) * values);
        p->step[k] = -1;
    }
    return p;
}

void prefetch_idle(Prefetch *p) {
    if (!p->reading) return;
    if (pthread_join(p->thread, NULL) != 0) die("prefetch: joining the reader thread failed");
    p->reading = 0;
}

// Starts the read of batch s into buffer k.
static void start_read(Prefetch *p, int k, int64_t s) {
    p->step[k] = s;
    p->target = k;
    if (pthread_create(&p->thread, NULL, read_batch, p) != 0) {
        read_batch(p); // no thread to be had: read it now
        return;
    }
    p->reading = 1;
}

SaeBatch prefetch_next(Prefetch *p, int64_t s, const float **x, const uint16_t **h) {
    prefetch_idle(p);
    int k = p->step[0] == s ? 0 : p->step[1] == s ? 1 : -1;
    if (k < 0) { // nothing read ahead (the first batch): read it here
        k = 0;
        p->step[0] = s;
        read_into(p, 0, s);
    }
    if (s + 1 < p->last) start_read(p, 1 - k, s + 1);
    *x = p->device ? NULL : p->buf[k];
    *h = p->device ? p->buf[k] : NULL;
    return p->b[k];
}

void prefetch_free(Prefetch *p) {
    if (!p) return;
    prefetch_idle(p);
    for (int k = 0; k < 2; k++) {
        if (p->device) dev_host_free(p->buf[k]);
        else free(p->buf[k]);
    }
    free(p);
}
