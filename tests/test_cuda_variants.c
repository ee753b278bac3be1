// test_cuda_variants.c — the CUDA step (sae_cuda.h) against the CPU step
// (sae.h), variant by variant, on small random cases (d = 32, m = 128, 300
// tokens): the ops beyond `standard` without AuxK (test_cuda_step.c has that).
//   - AuxK over the dead latents: standard and frozen with a third of the
//     latents dead (the CPU takes its dense path), with most dead (its sparse
//     path), and with fewer dead than k_aux (the scale n_dead / k_aux);
//   - BatchTopK with Matryoshka's L_high and AuxK (standard+M);
//   - sparsemax and entmax-1.5 with T_s (token batches; their InfoNCE term:
//     test_cuda_infonce.c).
// Each case: the losses (rec, aux, high, total) to 1e-4 relative, l0 and
// n_dead exactly, the selected codes (the same latents per token, values to
// 1e-4), BatchTopK's smallest kept value to 1e-4, the four gradients to 1e-4
// relative (fp32), and a second CUDA step giving the same bits.
// Then: ties at the k-th value (every latent the same encoder row) keep the
// lowest latents in TopK (checked on the GPU alone: the CPU keeps others)
// and all of them in BatchTopK, as the CPU's inclusive threshold does; and four training steps of standard+M with
// Adam, the dead-latent clocks on the device (sae_cuda_dead_mask,
// sae_cuda_fire) and theta's EMA against the same loop on the CPU.
// Exits 77 ("no CUDA device: skipped") where no device or driver is present.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stsae/base/common.h"
#include "stsae/comm/device.h"
#include "stsae/sae/optim.h"
#include "stsae/sae/sae.h"
#include "stsae/sae/sae_cuda.h"
#include "testutil.h"
#include "testutil_cuda.h"

enum { D = 32, M = 128, N = 300 };

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-30); }

typedef struct {
    const char *name;    // what is printed
    const char *variant;
    int k, k_aux;
    int n_dead;          // latents marked dead (every (M / n_dead)-th ... spread over m)
    float temp_s;
    int ties;            // every encoder row the same (ties at the k-th value)
} Case;

// The dead mask: n_dead latents spread over [0, M).
static void make_dead(uint8_t *dead, int n_dead) {
    memset(dead, 0, M);
    for (int q = 0; q < n_dead; q++) dead[(int)((int64_t)q * M / n_dead)] = 1;
}

// Random parameters and tokens (sae_init, then b_enc and b_dec noise).
static void make_case(const SaeConfig *cfg, float *params, float *x, int ties) {
    SaeTensors p;
    sae_carve(params, cfg, &p);
    sae_init(cfg, &p, 7, NULL);
    uint64_t s = 29;
    for (int j = 0; j < M; j++) p.b_enc[j] = ties ? 0.0f : 0.05f * (float)rng_normal(&s);
    for (int i = 0; i < D; i++) p.b_dec[i] = 0.1f * (float)rng_normal(&s);
    if (ties)
        for (int j = 1; j < M; j++) memcpy(p.W_enc + (size_t)j * D, p.W_enc, sizeof(float) * D);
    for (int i = 0; i < N * D; i++) x[i] = (float)rng_normal(&s);
}

static void config(SaeConfig *cfg, const Case *c) {
    if (sae_config_init(cfg, c->variant, D, M) != 0) die("unknown variant %s", c->variant);
    cfg->k = c->k;
    if (cfg->k_aux > 0) cfg->k_aux = c->k_aux;
    if (c->temp_s > 0) cfg->temp_s = c->temp_s;
    cfg->alpha = 0.25f; // a weight that shows in the total
}

static void run_case(const Case *c) {
    SaeConfig cfg;
    config(&cfg, c);
    const size_t np = sae_num_params(&cfg);
    float *params = xmalloc(sizeof(float) * np), *g_cpu = xmalloc(sizeof(float) * np),
          *g_gpu = xmalloc(sizeof(float) * np), *g_again = xmalloc(sizeof(float) * np),
          *x = xmalloc(sizeof(float) * (size_t)N * D);
    uint8_t dead[M];
    make_dead(dead, c->n_dead);
    make_case(&cfg, params, x, c->ties);
    SaeTensors p, gc;
    sae_carve(params, &cfg, &p);
    sae_carve(g_cpu, &cfg, &gc);
    const SaeBatch b = sae_batch_tokens(N);

    SaeWork *wc = sae_work_create(&cfg, N);
    SaeLosses Lc;
    sae_step(&cfg, &p, &gc, x, &b, dead, NULL, wc, &Lc);

    CudaCase cc;
    cuda_case_open(&cc, &cfg, params, x, N, dead);
    SaeLosses Lg;
    SparseCodes zg;
    codes_alloc(&zg, N, 1);
    cuda_case_step(&cc, &cfg, &b, g_gpu, &Lg, &zg);

    char what[128];
#define WHAT(...) (snprintf(what, sizeof what, __VA_ARGS__), what)
    // a TopK tie: the CPU keeps other latents than the GPU's lowest ones
    const int vs_cpu = !(c->ties && cfg.select == SEL_TOPK);
    const struct {
        const char *name;
        double g, c;
    } losses[4] = {{"rec", Lg.rec, Lc.rec}, {"aux", Lg.aux, Lc.aux}, {"high", Lg.high, Lc.high}, {"total", Lg.total, Lc.total}};
    for (int q = 0; q < 4 * vs_cpu; q++) {
        const double e = losses[q].c == 0.0 ? fabs(losses[q].g) : rel(losses[q].g, losses[q].c);
        check(e <= 1e-4, WHAT("%s: loss %s (cpu %.6g)", c->name, losses[q].name, losses[q].c), e);
    }
    if (vs_cpu)
        check(Lg.l0 == Lc.l0 && Lg.n_dead == Lc.n_dead && Lg.n_tok_global == Lc.n_tok_global,
          WHAT("%s: l0 %.3f, n_dead %d", c->name, Lc.l0, Lc.n_dead), fabs(Lg.l0 - Lc.l0));
    if (cfg.select == SEL_BATCHTOPK)
        check(rel(Lg.min_kept, Lc.min_kept) <= 1e-4, WHAT("%s: BatchTopK smallest kept", c->name),
              rel(Lg.min_kept, Lc.min_kept));
    int same = 0;
    double ez = codes_diff(&zg, sae_last_codes(wc), &same);
    if (vs_cpu) check(same && ez <= 1e-4, WHAT("%s: codes (same latents, values)", c->name), ez);
    if (vs_cpu) check_grads(c->name, &cfg, g_gpu, g_cpu, 1e-4);

    // the same step again: the same bits
    SaeLosses L2;
    SparseCodes z2;
    codes_alloc(&z2, N, 1);
    cuda_case_step(&cc, &cfg, &b, g_again, &L2, &z2);
    const int same_bits = memcmp(g_again, g_gpu, sizeof(float) * np) == 0 && L2.rec == Lg.rec && L2.aux == Lg.aux &&
                          L2.high == Lg.high && L2.min_kept == Lg.min_kept && z2.nnz == zg.nnz &&
                          memcmp(z2.idx, zg.idx, sizeof(int32_t) * (size_t)zg.nnz) == 0 &&
                          memcmp(z2.val, zg.val, sizeof(float) * (size_t)zg.nnz) == 0;
    check(same_bits, WHAT("%s: repeated step bit-identical", c->name), max_rel(g_again, g_gpu, np));

    if (c->ties) { // TopK keeps the lowest latents of a tie at the k-th value
        int lowest = 1;
        for (int r = 0; r < zg.n_rows; r++) {
            const int64_t cnt = zg.row_ptr[r + 1] - zg.row_ptr[r];
            if (cfg.select == SEL_TOPK && cnt != 0 && cnt != cfg.k) lowest = 0;
            for (int64_t q = 0; q < cnt && cfg.select == SEL_TOPK; q++)
                if (zg.idx[zg.row_ptr[r] + q] != q) lowest = 0;
        }
        check(lowest, WHAT("%s: a tie keeps the lowest latents", c->name), 0.0);
    }

    codes_free(&zg);
    codes_free(&z2);
    cuda_case_close(&cc);
    sae_work_free(wc);
    free(params); free(g_cpu); free(g_gpu); free(g_again); free(x);
}

// Four steps of standard+M with Adam: the device clocks and theta's EMA
// against the CPU loop of stages/train_job.c.
static void run_training(void) {
    const Case c = {"standard+M training", "standard+M", 8, 16, 0, 0.0f, 0};
    SaeConfig cfg;
    config(&cfg, &c);
    const size_t np = sae_num_params(&cfg);
    float *params = xmalloc(sizeof(float) * np), *grads = xmalloc(sizeof(float) * np),
          *x = xmalloc(sizeof(float) * (size_t)N * D), *back = xmalloc(sizeof(float) * np);
    float *m1 = xcalloc(np, sizeof(float)), *m2 = xcalloc(np, sizeof(float));
    make_case(&cfg, params, x, 0);
    SaeTensors p, g;
    sae_carve(params, &cfg, &p);
    sae_carve(grads, &cfg, &g);
    for (int j = 0; j < M; j += 5) p.b_enc[j] -= 4.0f; // rarely kept: dead after a step, AuxK on
    const SaeBatch b = sae_batch_tokens(N);
    SaeWork *wc = sae_work_create(&cfg, N);
    uint8_t dead[M], dead_back[M];
    memset(dead, 0, sizeof dead);
    CudaCase cc; // cc.dead_dev: the device's own mask from here on
    cuda_case_open(&cc, &cfg, params, x, N, dead);
    int64_t last_fired[M], fired[M], last_back[M];
    memset(last_fired, 0, sizeof last_fired);
    int64_t *last_dev = dev_alloc(sizeof(int64_t) * M);
    AdamConfig a = adam_defaults(M, 100);
    a.lr = 1e-2f;
    const int64_t dead_tokens = N; // a latent unused for one batch is dead
    int64_t tokens = N;            // as if one step had run: latents never kept are dead from the start
    double theta_c = 0.0, theta_g = 0.0;
    char what[128];
    for (int t = 1; t <= 4; t++) {
        int n_dead = 0;
        for (int j = 0; j < M; j++) n_dead += dead[j] = tokens - last_fired[j] >= dead_tokens;
        const int n_dead_g = sae_cuda_dead_mask(cc.wg, last_dev, tokens, dead_tokens, cc.dead_dev);
        dev_download_bytes(dead_back, cc.dead_dev, M);
        check(n_dead_g == n_dead && memcmp(dead, dead_back, M) == 0,
              WHAT("%s: step %d dead mask (%d dead)", c.name, t, n_dead), (double)abs(n_dead_g - n_dead));
        SaeLosses Lc, Lg;
        sae_step(&cfg, &p, &g, x, &b, dead, NULL, wc, &Lc);
        sae_step_cuda(&cfg, &cc.pd, &cc.gd, cc.x_dev, &b, cc.dead_dev, NULL, cc.wg, &Lg);
        check(rel(Lg.total, Lc.total) <= 1e-4 && Lg.l0 == Lc.l0,
              WHAT("%s: step %d total loss, l0", c.name, t), rel(Lg.total, Lc.total));
        const SparseCodes *z = sae_last_codes(wc);
        memset(fired, 0, sizeof fired);
        for (int64_t e = 0; e < z->nnz; e++) fired[z->idx[e]]++;
        tokens += Lc.n_tok_global;
        for (int j = 0; j < M; j++)
            if (fired[j]) last_fired[j] = tokens;
        sae_cuda_fire(cc.wg, NULL, tokens, last_dev);
        dev_download_bytes(last_back, last_dev, sizeof last_back);
        check(memcmp(last_back, last_fired, sizeof last_back) == 0, WHAT("%s: step %d clocks", c.name, t), 0.0);
        theta_c = t == 1 ? Lc.min_kept : 0.99 * theta_c + 0.01 * Lc.min_kept;
        theta_g = t == 1 ? Lg.min_kept : 0.99 * theta_g + 0.01 * Lg.min_kept;
        optim_step(&cfg, &a, t, params, grads, m1, m2);
        optim_step_cuda(&cfg, &a, t, cc.st.params, cc.st.grads, cc.st.m1, cc.st.m2);
    }
    check(rel(theta_g, theta_c) <= 1e-4, WHAT("%s: theta EMA", c.name), rel(theta_g, theta_c));
    dev_download(back, cc.st.params, np);
    double e = max_rel(back, params, np);
    check(e <= 1e-4, WHAT("%s: parameters after 4 steps", c.name), e);
    cuda_case_close(&cc);
    sae_work_free(wc);
    dev_free(last_dev);
    free(params); free(grads); free(x); free(back); free(m1); free(m2);
}

int main(void) {
    if (device_count() <= 0) {
        printf("no CUDA device: skipped (%s)\n", device_describe());
        return 77;
    }
    const Case cases[] = {
        {"standard, AuxK dense (40 dead)", "standard", 8, 16, 40, 0.0f, 0},
        {"standard, AuxK sparse (100 dead)", "standard", 8, 16, 100, 0.0f, 0},
        {"standard, AuxK 5 dead < k_aux", "standard", 8, 16, 5, 0.0f, 0},
        {"frozen, AuxK (40 dead)", "frozen", 8, 16, 40, 0.0f, 0},
        {"standard+M (BatchTopK, L_high)", "standard+M", 8, 16, 0, 0.0f, 0},
        {"standard+M, AuxK (40 dead)", "standard+M", 8, 16, 40, 0.0f, 0},
        {"sparsemax T_s 1", "sparsemax", 8, 0, 0, 1.0f, 0},
        {"sparsemax T_s 0.25", "sparsemax", 8, 0, 0, 0.25f, 0},
        {"entmax15 T_s 1", "entmax15", 8, 0, 0, 1.0f, 0},
        {"entmax15 T_s 0.25", "entmax15", 8, 0, 0, 0.25f, 0},
        {"standard, ties", "standard", 8, 16, 0, 0.0f, 1},
        {"standard+M, ties", "standard+M", 8, 16, 0, 0.0f, 1},
    };
    for (size_t q = 0; q < sizeof cases / sizeof *cases; q++) run_case(&cases[q]);
    run_training();
    return tally_report();
}
