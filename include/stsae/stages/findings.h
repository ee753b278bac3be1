// findings.h — the paper's four findings checked on a run: the section that
// opens every results.md (report.c).
//
// In:  one summary per configuration of the run (report.c: the mean over its
//      seeds of each metric; NaN where the run lacks it), the raw features'
//      row among them (variant "raw"), in the grid's order.
// Out: a markdown section: per finding, the paper's figure, this run's and
//      whether it holds ("yes" / "no"; "–" with what is missing when the run
//      cannot tell):
//   1. a standard SAE lowers lag-1 coherence against the raw features
//      (paper: -36%): lag1(standard) / lag1(raw) - 1 < 0;
//   2. contrastive training recovers coherence: temporal+M at its highest
//      lambda (else the contrastive configuration with the highest lag-1)
//      above the standard SAE (paper: above raw too);
//   3. the contrastive weight trades reconstruction for coherence: in every
//      group of configurations that differ only in lambda (two or more
//      values), R² does not rise and lag-1 does not fall as lambda grows;
//   4. SAE codes probe at least as well as raw features (paper: +1.7 pp for
//      the standard SAE, up to +3.9 pp with contrastive ones) and retrieve
//      better (paper: 2.8x R@1 on DINOv2): probe(standard) >= probe(raw) and
//      the best SAE's R@1 above raw's.
// "standard" is the first configuration of variant standard; "contrastive"
// a variant with an InfoNCE term and lambda > 0. The figures are the
// program's own, nothing is tuned: a finding that does not hold says "no".
#ifndef STSAE_FINDINGS_H
#define STSAE_FINDINGS_H

#include <stdio.h>

typedef struct {
    const char *name;    // the configuration (job name without its seed)
    const char *variant; // "raw" for the raw features
    double lambda;       // its contrastive weight (NaN: none)
    double r2, lag1, probe, r_at_1;
} ConfigSummary;

void findings_write(FILE *fp, const ConfigSummary *c, int n);

#endif
