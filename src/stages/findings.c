// findings.c — the paper's four findings on a run (findings.h).
#include "stsae/stages/findings.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/sae/variants.h"

static int is_raw(const ConfigSummary *c) { return !strcmp(c->variant, "raw"); }

static int is_contrastive(const ConfigSummary *c) {
    const SaeVariant *v = sae_variant_find(c->variant);
    return v && v->contrast != CTR_NONE && c->lambda > 0;
}

// The first configuration of `variant`, or -1.
static int first_of(const ConfigSummary *c, int n, const char *variant) {
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].variant, variant)) return i;
    return -1;
}

// One line of the table; holds: 1 yes, 0 no, -1 the run cannot tell.
static void line(FILE *fp, int num, const char *finding, const char *paper, const char *run, int holds) {
    fprintf(fp, "| %d | %s | %s | %s | %s |\n", num, finding, paper, run, holds > 0 ? "yes" : holds == 0 ? "no" : "–");
}

static void finding1(FILE *fp, const ConfigSummary *c, int n, int raw, int std) {
    char run[256];
    int holds = -1;
    if (raw < 0 || std < 0 || isnan(c[raw].lag1) || isnan(c[std].lag1) || c[raw].lag1 == 0.0) {
        snprintf(run, sizeof(run), "missing: %s", raw < 0 ? "no raw row" : std < 0 ? "no standard SAE" : "no lag-1");
    } else {
        const double d = PLANTED("findings_lag1_ratio") ? c[raw].lag1 / c[std].lag1 - 1.0 : c[std].lag1 / c[raw].lag1 - 1.0;
        snprintf(run, sizeof(run), "%+.1f%% (standard %.3f, raw %.3f)", 100.0 * d, c[std].lag1, c[raw].lag1);
        holds = d < 0;
    }
    (void)n;
    line(fp, 1, "a standard SAE lowers lag-1 coherence against the raw features", "−36%", run, holds);
}

static void finding2(FILE *fp, const ConfigSummary *c, int n, int raw, int std) {
    // temporal+M at its highest lambda, else the contrastive configuration with the highest lag-1
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].variant, "temporal+M") && is_contrastive(&c[i]) && !isnan(c[i].lag1) &&
            (best < 0 || c[i].lambda > c[best].lambda))
            best = i;
    if (best < 0)
        for (int i = 0; i < n; i++)
            if (is_contrastive(&c[i]) && !isnan(c[i].lag1) && (best < 0 || c[i].lag1 > c[best].lag1)) best = i;
    char run[320];
    int holds = -1;
    if (best < 0 || std < 0 || isnan(c[std].lag1)) {
        snprintf(run, sizeof(run), "missing: %s", std < 0 || isnan(c[std].lag1) ? "no standard SAE"
                                                                                : "no contrastive configuration");
    } else {
        const int above_raw = raw >= 0 && !isnan(c[raw].lag1) ? c[best].lag1 > c[raw].lag1 : -1;
        snprintf(run, sizeof(run), "%s %.3f: %s the standard SAE (%.3f)%s", c[best].name, c[best].lag1,
                 c[best].lag1 > c[std].lag1 ? "above" : "not above", c[std].lag1,
                 above_raw < 0 ? "" : above_raw ? ", above raw" : ", below raw");
        holds = c[best].lag1 > c[std].lag1;
    }
    line(fp, 2, "contrastive training recovers coherence (temporal+M at its highest λ against the standard SAE)",
         "above the standard SAE, and above raw", run, holds);
}

// The group key of a configuration for finding 3: its name without "_lambda<value>".
static void group_key(const char *name, char *key, size_t cap) {
    snprintf(key, cap, "%s", name);
    char *p = strstr(key, "_lambda");
    if (!p) return;
    const char *q = p + strlen("_lambda");
    while (*q && *q != '_') q++;
    memmove(p, q, strlen(q) + 1);
}

static int by_lambda(const void *a, const void *b) {
    const ConfigSummary *x = *(ConfigSummary *const *)a, *y = *(ConfigSummary *const *)b;
    return (x->lambda > y->lambda) - (x->lambda < y->lambda);
}

static void finding3(FILE *fp, const ConfigSummary *c, int n) {
    char run[1024] = "";
    size_t len = 0;
    int groups = 0, monotone = 0;
    uint8_t *done = xcalloc((size_t)(n ? n : 1), 1);
    const ConfigSummary **g = xmalloc(sizeof(*g) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        if (done[i] || !is_contrastive(&c[i]) || isnan(c[i].r2) || isnan(c[i].lag1)) continue;
        char ki[256], kj[256];
        group_key(c[i].name, ki, sizeof(ki));
        int m = 0;
        for (int j = i; j < n; j++) {
            if (done[j] || !is_contrastive(&c[j]) || isnan(c[j].r2) || isnan(c[j].lag1)) continue;
            group_key(c[j].name, kj, sizeof(kj));
            if (strcmp(ki, kj)) continue;
            done[j] = 1;
            g[m++] = &c[j];
        }
        if (m < 2) continue;
        qsort(g, (size_t)m, sizeof(*g), by_lambda);
        int ok = 1;
        for (int q = 1; q < m; q++) ok &= g[q]->r2 <= g[q - 1]->r2 && g[q]->lag1 >= g[q - 1]->lag1;
        groups++, monotone += ok;
        if (len < sizeof(run) - 1)
            len += (size_t)snprintf(run + len, sizeof(run) - len, "%s%s: λ %g → %g, R² %.3f → %.3f, lag-1 %.3f → %.3f%s",
                                    groups > 1 ? "; " : "", ki, g[0]->lambda, g[m - 1]->lambda, g[0]->r2, g[m - 1]->r2,
                                    g[0]->lag1, g[m - 1]->lag1, ok ? "" : " (not monotonic)");
    }
    free(done), free(g);
    char text[1200];
    if (!groups)
        snprintf(text, sizeof(text), "missing: no contrastive configuration trained at two or more λ");
    else
        snprintf(text, sizeof(text), "%d of %d monotonic (%s)", monotone, groups, run);
    line(fp, 3, "the contrastive weight trades reconstruction for coherence (along λ: R² down, lag-1 up)",
         "monotonic", text, groups ? monotone == groups : -1);
}

static void finding4(FILE *fp, const ConfigSummary *c, int n, int raw, int std) {
    char run[400];
    int holds = -1;
    if (raw < 0 || std < 0 || isnan(c[raw].probe) || isnan(c[std].probe)) {
        snprintf(run, sizeof(run), "missing: %s", raw < 0 ? "no raw row" : std < 0 ? "no standard SAE" : "no probe");
    } else {
        const double pp_std = 100.0 * (c[std].probe - c[raw].probe);
        int bc = -1, br = -1;
        for (int i = 0; i < n; i++) {
            if (is_contrastive(&c[i]) && !isnan(c[i].probe) && (bc < 0 || c[i].probe > c[bc].probe)) bc = i;
            if (!is_raw(&c[i]) && !isnan(c[i].r_at_1) && (br < 0 || c[i].r_at_1 > c[br].r_at_1)) br = i;
        }
        size_t len = (size_t)snprintf(run, sizeof(run), "standard %+.1f pp", pp_std);
        if (bc >= 0)
            len += (size_t)snprintf(run + len, sizeof(run) - len, ", best contrastive %+.1f pp (%s)",
                                    100.0 * (c[bc].probe - c[raw].probe), c[bc].name);
        const int have_r = br >= 0 && !isnan(c[raw].r_at_1);
        if (have_r && c[raw].r_at_1 > 0)
            snprintf(run + len, sizeof(run) - len, "; R@1 %.2fx raw (%s %.3f, raw %.3f)", c[br].r_at_1 / c[raw].r_at_1,
                     c[br].name, c[br].r_at_1, c[raw].r_at_1);
        else if (have_r)
            snprintf(run + len, sizeof(run) - len, "; R@1 %s %.3f, raw 0", c[br].name, c[br].r_at_1);
        else
            snprintf(run + len, sizeof(run) - len, "; retrieval missing (no R@1: no text embeddings)");
        holds = pp_std >= 0 && (!have_r || c[br].r_at_1 > c[raw].r_at_1);
    }
    line(fp, 4, "SAE codes probe at least as well as raw features, and retrieve better",
         "+1.7 pp (standard), up to +3.9 pp (contrastive); R@1 2.8x", run, holds);
}

void findings_write(FILE *fp, const ConfigSummary *c, int n) {
    int raw = -1;
    for (int i = 0; i < n && raw < 0; i++)
        if (is_raw(&c[i])) raw = i;
    const int std = first_of(c, n, "standard");
    fprintf(fp, "## Findings: the paper's four, on this run\n\n"
                "Means over seeds; `standard` is the first standard configuration; the figures are this run's own.\n\n"
                "| # | finding | paper | this run | holds |\n|---|---|---|---|---|\n");
    finding1(fp, c, n, raw, std);
    finding2(fp, c, n, raw, std);
    finding3(fp, c, n);
    finding4(fp, c, n, raw, std);
    fprintf(fp, "\n");
}
