// latent_grads.cu — harness of the step's latent-major gradients
// (cuda/sae/sae.cu's latent_grads_kernel through launch_latent_grads): per
// latent j, from the entries that kept it, dW_enc_j, dD_j and db_enc_j.
//
// In:  codes of n tokens in fixed-width slots [n, k] (k distinct latents per
//      token, token 0 none, token 1 k/2) with their values z and dL/dpre,
//      AuxK's codes likewise [n, k/2]; their latent-major index built here on
//      the host as the step builds it on the device (a stable sort of the
//      slots by latent: col [m + 1], ent = slot positions in token order,
//      row = each slot's token); x, g, gsum, AuxK's ga [n, d], b_dec [d].
//      At the --small shape about a fifth of the latents have no entry (their
//      gradients must be written as zeros).
// Out: per version and case, dW_enc [m, d], dD [m, d], db_enc [m] compared
//      with a CPU reference that scatters every entry, token by token, into
//      double sums — dW_enc_j = sum dpre (x_r - b_dec), dD_j = sum z
//      dL/dxhat_r (g; gsum for j < mh; ga for AuxK's entries), db_enc_j =
//      sum dpre — within a relative 1e-5 of the array's scale; then the time
//      per call, the FLOP rate (4 d per entry) and the bandwidth of one
//      gather of x and dL/dxhat per entry plus the writes.
//   cases: standard (the codes only, mh = 0); Matryoshka + AuxK (mh: the
//   kept latent nearest m/4, so that latent mh is kept and the boundary crossed).
//
//   ./dev_latent_grads [VERSION] [--small] [--n N] [--m M] [--d D] [--k K] [--reps R] [--plant]
//   version 1  naive: one thread per output element (j, i) over a flat grid,
//              each summing dpre (x - b_dec) and z dL/dxhat over its latent's entries
//   version 2  production: launch_latent_grads (one block per latent, threads
//              over d, sum dpre once per latent and b_dec's term factored out)
#include "common.h"
#include "sae/sae_ops.h"

// ---- the codes and their latent-major index --------------------------------------------

typedef struct {
    int width;           // slots per token
    int *count;          // [n]
    int32_t *idx;        // [n width] latent of each slot
    float *val, *grad;   // [n width] z and dL/dpre
    int *col;            // [m + 1]
    int32_t *ent, *row;  // [n width]: slot positions in latent then token order; each slot's token
} Codes;

static Codes make_codes(int n, int m, int width, Rng *rng) {
    Codes c;
    c.width = width;
    c.count = host_alloc<int>((size_t)n);
    c.idx = host_alloc<int32_t>((size_t)n * width);
    c.val = host_alloc<float>((size_t)n * width);
    c.grad = host_alloc<float>((size_t)n * width);
    c.col = host_alloc<int>((size_t)m + 1);
    c.ent = host_alloc<int32_t>((size_t)n * width);
    c.row = host_alloc<int32_t>((size_t)n * width);
    random_codes(n, m, width, c.count, c.idx, rng);
    memset(c.col, 0, sizeof(int) * ((size_t)m + 1));
    for (int r = 0; r < n; r++) {
        const size_t s0 = (size_t)r * width;
        for (int s = 0; s < width; s++) {
            c.val[s0 + s] = (float)(fabs(rng_normal(rng)) + 0.1);
            c.grad[s0 + s] = (float)rng_normal(rng);
            c.row[s0 + s] = r;
            if (s < c.count[r]) c.col[c.idx[s0 + s] + 1]++;
        }
    }
    for (int j = 0; j < m; j++) c.col[j + 1] += c.col[j];
    int *fill = host_alloc<int>((size_t)m);
    memcpy(fill, c.col, sizeof(int) * m);
    for (int r = 0; r < n; r++) // slots in token order: the sort is stable
        for (int s = 0; s < c.count[r]; s++) c.ent[fill[c.idx[(size_t)r * width + s]]++] = r * width + s;
    free(fill);
    return c;
}

static void free_codes(Codes *c) {
    free(c->count), free(c->idx), free(c->val), free(c->grad), free(c->col), free(c->ent), free(c->row);
}

// The device copies a version reads.
typedef struct {
    int *col;
    int32_t *ent, *row;
    float *val, *grad;
} DevCodes;

static DevCodes upload_codes(const Codes *c, int n, int m) {
    const size_t slots = (size_t)n * c->width;
    DevCodes d = {device_copy(c->col, (size_t)m + 1), device_copy(c->ent, slots), device_copy(c->row, slots),
                  device_copy(c->val, slots), device_copy(c->grad, slots)};
    return d;
}

static void free_dev_codes(DevCodes *d) {
    cudaCheck(cudaFree(d->col));
    cudaCheck(cudaFree(d->ent));
    cudaCheck(cudaFree(d->row));
    cudaCheck(cudaFree(d->val));
    cudaCheck(cudaFree(d->grad));
}

// ---- CPU reference -------------------------------------------------------------------

// Adds every entry of c, token-major, to gW / gD / gb (double); gd_lo: the
// dL/dxhat of latents j < mh, gd_hi: of the others.
static void scatter_reference(const Codes *c, int n, int d, int mh, const float *x, const float *gd_lo,
                              const float *gd_hi, const float *b_dec, double *gW, double *gD, double *gb) {
    for (int r = 0; r < n; r++)
        for (int s = 0; s < c->count[r]; s++) {
            const size_t e = (size_t)r * c->width + s;
            const int j = c->idx[e];
            const float *gd = (j < mh ? gd_lo : gd_hi) + (size_t)r * d;
            gb[j] += c->grad[e];
            for (int i = 0; i < d; i++) {
                gW[(size_t)j * d + i] += (double)c->grad[e] * ((double)x[(size_t)r * d + i] - b_dec[i]);
                gD[(size_t)j * d + i] += (double)c->val[e] * gd[i];
            }
        }
}

// ---- version 1: naive ----------------------------------------------------------------

__global__ void latent_grads_naive_kernel(const int *a_col, const int32_t *a_ent, const int32_t *a_row,
                                          const float *a_val, const float *a_grad, const int *b_col,
                                          const int32_t *b_ent, const int32_t *b_row, const float *b_val,
                                          const float *b_grad, const float *x, const float *g, const float *gsum,
                                          int mh, const float *ga, const float *b_dec, int m, int d, int frozen,
                                          float *gW, float *gD, float *gb) {
    const size_t q = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (q >= (size_t)m * d) return;
    const int j = (int)(q / d), i = (int)(q % d);
    const float *gd = j < mh ? gsum : g;
    float w = 0.0f, dd = 0.0f, b = 0.0f;
    for (int t = a_col[j]; t < a_col[j + 1]; t++) {
        const int e = a_ent[t];
        const size_t r = (size_t)a_row[e];
        w += a_grad[e] * (x[r * d + i] - b_dec[i]);
        dd += a_val[e] * gd[r * d + i];
        b += a_grad[e];
    }
    for (int t = b_col ? b_col[j] : 0; t < (b_col ? b_col[j + 1] : 0); t++) {
        const int e = b_ent[t];
        const size_t r = (size_t)b_row[e];
        w += b_grad[e] * (x[r * d + i] - b_dec[i]);
        dd += b_val[e] * ga[r * d + i];
        b += b_grad[e];
    }
    gW[q] = w;
    gD[q] = frozen ? 0.0f : dd;
    if (i == 0) gb[j] = b;
}

static void latent_grads_naive(const int *a_col, const int32_t *a_ent, const int32_t *a_row, const float *a_val,
                               const float *a_grad, const int *b_col, const int32_t *b_ent, const int32_t *b_row,
                               const float *b_val, const float *b_grad, const float *x, const float *g,
                               const float *gsum, int mh, const float *ga, const float *b_dec, int m, int d,
                               int frozen, float *gW, float *gD, float *gb, cudaStream_t st) {
    const size_t total = (size_t)m * d;
    latent_grads_naive_kernel<<<(int)((total + 255) / 256), 256, 0, st>>>(a_col, a_ent, a_row, a_val, a_grad, b_col,
                                                                         b_ent, b_row, b_val, b_grad, x, g, gsum, mh,
                                                                         ga, b_dec, m, d, frozen, gW, gD, gb);
    cudaCheckLaunch("latent_grads_naive_kernel");
}

// ---- the harness ---------------------------------------------------------------------

typedef void (*LatentFn)(const int *a_col, const int32_t *a_ent, const int32_t *a_row, const float *a_val,
                         const float *a_grad, const int *b_col, const int32_t *b_ent, const int32_t *b_row,
                         const float *b_val, const float *b_grad, const float *x, const float *g, const float *gsum,
                         int mh, const float *ga, const float *b_dec, int m, int d, int frozen, float *gW, float *gD,
                         float *gb, cudaStream_t st);
static const struct {
    const char *name;
    LatentFn fn;
} VERSIONS[] = {{"naive thread per output element", latent_grads_naive},
                {"production launch_latent_grads", launch_latent_grads}};
enum { N_VERSIONS = sizeof(VERSIONS) / sizeof(VERSIONS[0]) };

int main(int argc, char **argv) {
    const DevArgs a = dev_args(argc, argv, N_VERSIONS, dev_shape(4096, 6144, 768, 64, 20), dev_shape(48, 256, 40, 8, 2));
    dev_start("dev/cuda/latent_grads.cu: dW_enc, dD, db_enc per latent from the latent-major index "
              "(launch_latent_grads)", &a);
    const int n = a.n, m = a.m, d = a.d, k = a.k;
    const size_t nd = (size_t)n * d, md = (size_t)m * d;
    Rng rng = {4};
    Codes za = make_codes(n, m, k, &rng), zb = make_codes(n, m, k / 2 > 0 ? k / 2 : 1, &rng);
    float *x = host_alloc<float>(nd), *g = host_alloc<float>(nd), *gsum = host_alloc<float>(nd);
    float *ga = host_alloc<float>(nd), *b_dec = host_alloc<float>((size_t)d);
    fill_normal(x, nd, 1.0f, &rng);
    fill_normal(g, nd, 1.0f, &rng);
    fill_normal(gsum, nd, 1.0f, &rng);
    fill_normal(ga, nd, 1.0f, &rng);
    fill_normal(b_dec, (size_t)d, 0.5f, &rng);
    int empty = 0;
    for (int j = 0; j < m; j++) empty += za.col[j + 1] == za.col[j];
    printf("%d entries (%d of %d latents with none); AuxK %d entries\n", za.col[m], empty, m, zb.col[m]);

    DevCodes da = upload_codes(&za, n, m), db = upload_codes(&zb, n, m);
    float *d_x = device_copy(x, nd), *d_g = device_copy(g, nd), *d_gsum = device_copy(gsum, nd);
    float *d_ga = device_copy(ga, nd), *d_bdec = device_copy(b_dec, (size_t)d);
    float *d_gW = device_alloc<float>(md), *d_gD = device_alloc<float>(md), *d_gb = device_alloc<float>((size_t)m);
    double *r_gW = host_alloc<double>(md), *r_gD = host_alloc<double>(md), *r_gb = host_alloc<double>((size_t)m);
    float *out = host_alloc<float>(md);

    int failed = 0;
    for (int c = 0; c < 2; c++) {
        const int mh = c == 1 ? kept_latent_near(n, k, za.count, za.idx, m / 4) : 0;
        memset(r_gW, 0, sizeof(double) * md);
        memset(r_gD, 0, sizeof(double) * md);
        memset(r_gb, 0, sizeof(double) * m);
        scatter_reference(&za, n, d, mh, x, gsum, g, b_dec, r_gW, r_gD, r_gb);
        if (c == 1) scatter_reference(&zb, n, d, m, x, ga, ga, b_dec, r_gW, r_gD, r_gb);
        const double entries = za.col[m] + (c == 1 ? zb.col[m] : 0);
        for (int v = 1; v <= N_VERSIONS; v++) {
            if (a.version && v != a.version) continue;
            const LatentFn fn = VERSIONS[v - 1].fn;
            auto call = [&] {
                fn(da.col, da.ent, da.row, da.val, da.grad, c == 1 ? db.col : NULL, db.ent, db.row, db.val, db.grad,
                   d_x, d_g, d_gsum, mh, d_ga, d_bdec, m, d, 0, d_gW, d_gD, d_gb, 0);
            };
            // fresh outputs (0xFF bytes on the emulation): every element must be written
            cudaCheck(cudaMemset(d_gW, 0xFF, sizeof(float) * md));
            cudaCheck(cudaMemset(d_gD, 0xFF, sizeof(float) * md));
            cudaCheck(cudaMemset(d_gb, 0xFF, sizeof(float) * m));
            call();
            Check chk = {0, 0.0};
            const struct {
                const char *name;
                const float *dev;
                const double *ref;
                size_t n;
            } outs[] = {{"dW_enc", d_gW, r_gW, md}, {"dD", d_gD, r_gD, md}, {"db_enc", d_gb, r_gb, (size_t)m}};
            for (const auto &o : outs) {
                host_copy(out, o.dev, o.n);
                if (a.plant) plant_value(out, o.n);
                validate_result(&chk, o.name, out, o.ref, o.n, 1e-5);
            }
            const double ms = time_ms(a.reps, call);
            char name[96];
            snprintf(name, sizeof(name), "%s, %s", VERSIONS[v - 1].name, c == 0 ? "standard" : "Matryoshka + AuxK");
            failed |= report(v, name, &chk, ms, 4.0 * (entries * 2.0 * d + 2.0 * md), 4.0 * entries * d);
        }
    }
    free_dev_codes(&da);
    free_dev_codes(&db);
    float *dev_f[] = {d_x, d_g, d_gsum, d_ga, d_bdec, d_gW, d_gD, d_gb};
    for (float *p : dev_f) cudaCheck(cudaFree(p));
    free_codes(&za);
    free_codes(&zb);
    free(x), free(g), free(gsum), free(ga), free(b_dec), free(r_gW), free(r_gD), free(r_gb), free(out);
    return failed;
}
