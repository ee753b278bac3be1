// check_deck.c — `stsae check DECK [key=value ...]` (check.h).
//
// In:  a deck path and overrides.
// Out: on stdout, the deck as resolved, then the job table and a summary as
//      YAML comments, so the whole output loads again as the same deck; on a
//      deck error, the one message on stderr and exit status 1.
#include <stdio.h>
#include <string.h>

#include "stsae/check.h"
#include "stsae/common.h"      // STSAE_VERSION
#include "stsae/deck.h"        // deck_load, deck_write
#include "stsae/deck_schema.h" // stsae_schema
#include "stsae/jobs.h"        // jobs_expand

// A value a job does not use (0) prints as "-".
static const char *cell(double v, char *buf) {
    if (v == 0) return "-";
    deck_format_num(v, buf, 32);
    return buf;
}

static void print_jobs(const JobList *jobs) {
    int w = 4;
    for (int i = 0; i < jobs->n; i++)
        if ((int)strlen(jobs->job[i].name) > w) w = (int)strlen(jobs->job[i].name);
    printf("#\n# jobs (cost: expansion x 1.25 if contrastive x 1.15 if +M)\n");
    printf("# %5s  %-*s  %-10s  %-8s  %-8s  %-8s  %-6s  %-9s  %-6s  %4s  %4s  %-16s  %s\n", "index", w, "name",
           "variant", "lambda_t", "lambda_s", "lambda_r", "tau", "high_frac", "T_s", "k", "seed", "hash", "cost");
    for (int i = 0; i < jobs->n; i++) {
        const Job *j = &jobs->job[i];
        char a[32], b[32], c[32], t[32], h[32], s[32];
        printf("# %5d  %-*s  %-10s  %-8s  %-8s  %-8s  %-6s  %-9s  %-6s  %4d  %4lld  %016llx  %.2f\n", j->index, w,
               j->name, j->variant, cell(j->lambda_t, a), cell(j->lambda_s, b), cell(j->lambda_r, c),
               cell(j->tau, t), cell(j->high_frac, h), cell(j->T_s, s), j->k, (long long)j->seed,
               (unsigned long long)j->hash, j->cost);
    }
}

// "# 120 jobs: standard 3, temporal 18, ...; total cost 1150.8" (variants in
// order of first appearance)
static void print_summary(const JobList *jobs) {
    const char *variant[32];
    int count[32], nv = 0;
    double total = 0;
    for (int i = 0; i < jobs->n; i++) {
        int v = 0;
        while (v < nv && strcmp(variant[v], jobs->job[i].variant)) v++;
        if (v == nv && nv < 32) variant[nv] = jobs->job[i].variant, count[nv++] = 0;
        if (v < nv) count[v]++;
        total += jobs->job[i].cost;
    }
    printf("# %d jobs:", jobs->n);
    for (int v = 0; v < nv; v++) printf("%s %s %d", v ? "," : "", variant[v], count[v]);
    printf("; total cost %.1f\n", total);
}

int check_deck_main(int argc, char **argv) {
    if (argc < 1) {
        fprintf(stderr, "usage: stsae check DECK [key=value ...]\n");
        return 2;
    }
    char err[1024];
    Deck *d = deck_load(argv[0], stsae_schema, argc - 1, argv + 1, err, sizeof(err));
    JobList *jobs = d ? jobs_expand(d, err, sizeof(err)) : NULL;
    if (!jobs) {
        fprintf(stderr, "%s\n", err);
        deck_free(d);
        return 1;
    }
    printf("# stsae %s check: %s as resolved (defaults filled in)\n", STSAE_VERSION, argv[0]);
    deck_write(d, stdout);
    if (deck_has(d, "train")) {
        print_jobs(jobs);
        print_summary(jobs);
    } else {
        printf("# no train section: no jobs\n");
    }
    jobs_free(jobs);
    deck_free(d);
    return 0;
}
