// decode_loss.cu — harness of the step's sparse decode with its losses and
// gradients per token (cuda/sae/sae.cu's decode_loss_kernel through
// launch_decode_loss, and AuxK's aux_loss_kernel through launch_aux_loss).
//
// In:  codes of n tokens in fixed-width slots [n, k] as TopK writes them
//      (k distinct latents in increasing order, values |N(0,1)| + 0.1; token
//      0 keeps none, token 1 k/2; the unused slots hold NaN, so reading one
//      shows), D [m, d] ~ N(0, 1/d), b_dec [d], x [n, d] ~ N(0, 1), and AuxK's
//      residual e [n, d] for the third case.
// Out: per version and case, compared with a CPU reference summing in double
//      (each value within a relative 1e-5 of the array's scale):
//        standard    g = gs (xhat - x), the squared errors sq [n], dL/dz per
//                    entry D_j . g_r (mh = 0, no residual);
//        Matryoshka  also gsum = g + gsh (xhat_h - x) with xhat_h over the
//                    latents j < mh (the kept latent nearest m/4: latent mh
//                    is kept, so the boundary is crossed), sqh [n],
//                    dL/dz = D_j . gsum_r for j < mh, and the residual
//                    e = x - xhat;
//        AuxK        ehat = sum z_j D_j, sq = ||e - ehat||^2, e becomes
//                    s (ehat - e), dL/dz = D_j . (the new e);
//      then the time per call, the FLOP rate (4 n k d: decode and dL/dz) and
//      the bandwidth of one gather of the kept rows of D plus x and g.
//
//   ./dev_decode_loss [VERSION] [--small] [--n N] [--m M] [--d D] [--k K] [--reps R] [--plant]
//   version 1  naive: one thread per token does its whole row (decode, errors,
//              gradients, then dL/dz entry by entry)
//   version 2  production: launch_decode_loss / launch_aux_loss (one block
//              per token, threads over d, one warp per entry for dL/dz)
#include "common.h"
#include "sae/sae_ops.h"

// ---- CPU reference -------------------------------------------------------------------

typedef struct {
    const int *start, *count;
    const int32_t *idx;
    const float *val;
} Codes;

// The decode's outputs in double for mh (0: no Matryoshka); e: the residual.
static void decode_reference(const Codes *z, const float *D, const float *b_dec, const float *x, int n, int d,
                             int mh, double gs, double gsh, double *g, double *gsum, double *e, double *zgrad,
                             double *sq, double *sqh) {
    double *xh = host_alloc<double>((size_t)d), *xhh = host_alloc<double>((size_t)d);
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * d;
        for (int i = 0; i < d; i++) xh[i] = xhh[i] = b_dec[i];
        for (int s = z->start[r]; s < z->start[r] + z->count[r]; s++)
            for (int i = 0; i < d; i++) {
                const double c = (double)z->val[s] * D[(size_t)z->idx[s] * d + i];
                xh[i] += c;
                if (z->idx[s] < mh) xhh[i] += c;
            }
        sq[r] = sqh[r] = 0.0;
        for (int i = 0; i < d; i++) {
            const size_t q = (size_t)r * d + i;
            sq[r] += (xr[i] - xh[i]) * (xr[i] - xh[i]);
            sqh[r] += (xr[i] - xhh[i]) * (xr[i] - xhh[i]);
            g[q] = gs * (xh[i] - xr[i]);
            gsum[q] = g[q] + gsh * (xhh[i] - xr[i]);
            e[q] = xr[i] - xh[i];
        }
        for (int s = z->start[r]; s < z->start[r] + z->count[r]; s++) {
            const double *gr = (z->idx[s] < mh ? gsum : g) + (size_t)r * d;
            double t = 0.0;
            for (int i = 0; i < d; i++) t += D[(size_t)z->idx[s] * d + i] * gr[i];
            zgrad[s] = t;
        }
    }
    free(xh);
    free(xhh);
}

// AuxK's outputs in double; e_new: s (ehat - e).
static void aux_reference(const Codes *z, const float *D, const float *e, int n, int d, double s, double *e_new,
                          double *zgrad, double *sq) {
    for (int r = 0; r < n; r++) {
        sq[r] = 0.0;
        for (int i = 0; i < d; i++) {
            double eh = 0.0;
            for (int q = z->start[r]; q < z->start[r] + z->count[r]; q++)
                eh += (double)z->val[q] * D[(size_t)z->idx[q] * d + i];
            const double er = e[(size_t)r * d + i];
            sq[r] += (er - eh) * (er - eh);
            e_new[(size_t)r * d + i] = s * (eh - er);
        }
        for (int q = z->start[r]; q < z->start[r] + z->count[r]; q++) {
            double t = 0.0;
            for (int i = 0; i < d; i++) t += D[(size_t)z->idx[q] * d + i] * e_new[(size_t)r * d + i];
            zgrad[q] = t;
        }
    }
}

// ---- version 1: naive ----------------------------------------------------------------

// one thread per token, the whole row: xhat (and xhat_h) element by element
__global__ void decode_naive_kernel(const int *start, const int *count, const int32_t *idx, const float *val,
                                    const float *D, const float *b_dec, const float *x, int n, int d, int mh,
                                    float gs, float gsh, float *g, float *gsum, float *e, float *zgrad, double *sq,
                                    double *sqh) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    const int e0 = start[r], e1 = start[r] + count[r];
    double t = 0.0, th = 0.0;
    for (int i = 0; i < d; i++) {
        float xh = b_dec[i], xhh = b_dec[i];
        for (int s = e0; s < e1; s++) {
            const float c = val[s] * D[(size_t)idx[s] * d + i];
            xh += c;
            if (idx[s] < mh) xhh += c;
        }
        const size_t q = (size_t)r * d + i;
        const float dx = xh - x[q], dxh = xhh - x[q];
        t += (double)dx * dx;
        th += (double)dxh * dxh;
        g[q] = gs * dx;
        if (mh > 0) gsum[q] = g[q] + gsh * dxh;
        if (e) e[q] = -dx;
    }
    sq[r] = t;
    if (mh > 0) sqh[r] = th;
    for (int s = e0; s < e1; s++) {
        const float *gr = (idx[s] < mh ? gsum : g) + (size_t)r * d;
        float a = 0.0f;
        for (int i = 0; i < d; i++) a += D[(size_t)idx[s] * d + i] * gr[i];
        zgrad[s] = a;
    }
}

static void decode_naive(const int *start, const int *count, const int32_t *idx, const float *val, const float *D,
                         const float *b_dec, const float *x, int n, int d, int mh, float gs, float gsh, float *g,
                         float *gsum, float *e, float *zgrad, double *sq, double *sqh, cudaStream_t st) {
    decode_naive_kernel<<<(n + 127) / 128, 128, 0, st>>>(start, count, idx, val, D, b_dec, x, n, d, mh, gs, gsh, g,
                                                         gsum, e, zgrad, sq, sqh);
    cudaCheckLaunch("decode_naive_kernel");
}

__global__ void aux_naive_kernel(const int *start, const int *count, const int32_t *idx, const float *val,
                                 const float *D, int n, int d, float s, float *e, float *zgrad, double *sq) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    const int e0 = start[r], e1 = start[r] + count[r];
    float *er = e + (size_t)r * d;
    double t = 0.0;
    for (int i = 0; i < d; i++) {
        float eh = 0.0f;
        for (int q = e0; q < e1; q++) eh += val[q] * D[(size_t)idx[q] * d + i];
        t += ((double)er[i] - eh) * ((double)er[i] - eh);
        er[i] = s * (eh - er[i]);
    }
    sq[r] = t;
    for (int q = e0; q < e1; q++) {
        float a = 0.0f;
        for (int i = 0; i < d; i++) a += D[(size_t)idx[q] * d + i] * er[i];
        zgrad[q] = a;
    }
}

static void aux_naive(const int *start, const int *count, const int32_t *idx, const float *val, const float *D, int n,
                      int d, float s, float *e, float *zgrad, double *sq, cudaStream_t st) {
    aux_naive_kernel<<<(n + 127) / 128, 128, 0, st>>>(start, count, idx, val, D, n, d, s, e, zgrad, sq);
    cudaCheckLaunch("aux_naive_kernel");
}

// ---- the harness ---------------------------------------------------------------------

typedef void (*DecodeFn)(const int *start, const int *count, const int32_t *idx, const float *val, const float *D,
                         const float *b_dec, const float *x, int n, int d, int mh, float gs, float gsh, float *g,
                         float *gsum, float *e, float *zgrad, double *sq, double *sqh, cudaStream_t st);
typedef void (*AuxFn)(const int *start, const int *count, const int32_t *idx, const float *val, const float *D, int n,
                      int d, float s, float *e, float *zgrad, double *sq, cudaStream_t st);
static const struct {
    const char *name;
    DecodeFn decode;
    AuxFn aux;
} VERSIONS[] = {{"naive thread per token", decode_naive, aux_naive},
                {"production launch_decode_loss/aux_loss", launch_decode_loss, launch_aux_loss}};
enum { N_VERSIONS = sizeof(VERSIONS) / sizeof(VERSIONS[0]) };

// The device's float results of one case, for validation: out[0..n) from dev.
static void check_floats(Check *c, const char *name, const float *dev, const double *ref, size_t n, int plant) {
    float *out = host_alloc<float>(n);
    host_copy(out, dev, n);
    if (plant) plant_value(out, n);
    validate_result(c, name, out, ref, n, 1e-5);
    free(out);
}
static void check_doubles(Check *c, const char *name, const double *dev, const double *ref, size_t n) {
    double *outd = host_alloc<double>(n);
    float *out = host_alloc<float>(n);
    host_copy(outd, dev, n);
    for (size_t i = 0; i < n; i++) out[i] = (float)outd[i];
    validate_result(c, name, out, ref, n, 1e-5);
    free(outd);
    free(out);
}
// zgrad is compared on the used slots only
static void check_slots(Check *c, const char *name, const float *dev, const double *ref, const Codes *z, int n,
                        int width, int plant) {
    float *all = host_alloc<float>((size_t)n * width), *out = host_alloc<float>((size_t)n * width);
    double *refu = host_alloc<double>((size_t)n * width);
    host_copy(all, dev, (size_t)n * width);
    size_t u = 0;
    for (int r = 0; r < n; r++)
        for (int s = z->start[r]; s < z->start[r] + z->count[r]; s++) out[u] = all[s], refu[u++] = ref[s];
    if (plant) plant_value(out, u);
    validate_result(c, name, out, refu, u, 1e-5);
    free(all);
    free(out);
    free(refu);
}

int main(int argc, char **argv) {
    const DevArgs a = dev_args(argc, argv, N_VERSIONS, dev_shape(4096, 6144, 768, 64, 20), dev_shape(48, 256, 40, 8, 2));
    dev_start("dev/cuda/decode_loss.cu: decode, squared errors, dL/dxhat, dL/dz per token (launch_decode_loss, "
              "launch_aux_loss)", &a);
    const int n = a.n, m = a.m, d = a.d, k = a.k;
    const size_t nd = (size_t)n * d, slots = (size_t)n * k;
    Rng rng = {3};
    int *start = host_alloc<int>((size_t)n), *count = host_alloc<int>((size_t)n);
    int32_t *idx = host_alloc<int32_t>(slots);
    float *val = host_alloc<float>(slots), *D = host_alloc<float>((size_t)m * d), *b_dec = host_alloc<float>((size_t)d);
    float *x = host_alloc<float>(nd), *e = host_alloc<float>(nd);
    random_codes(n, m, k, count, idx, &rng);
    for (int r = 0; r < n; r++) {
        start[r] = r * k;
        for (int s = 0; s < k; s++) val[start[r] + s] = s < count[r] ? (float)(fabs(rng_normal(&rng)) + 0.1) : NAN;
    }
    fill_normal(D, (size_t)m * d, (float)(1.0 / sqrt((double)d)), &rng);
    fill_normal(b_dec, (size_t)d, 0.1f, &rng);
    fill_normal(x, nd, 1.0f, &rng);
    fill_normal(e, nd, 1.0f, &rng);
    const Codes z = {start, count, idx, val};
    const int mh_kept = kept_latent_near(n, k, count, idx, m / 4);
    const float gs = 2.0f / (float)nd, gsh = 0.5f * gs, s_aux = 1.0f / (float)nd;

    int *d_start = device_copy(start, (size_t)n), *d_count = device_copy(count, (size_t)n);
    int32_t *d_idx = device_copy(idx, slots);
    float *d_val = device_copy(val, slots), *d_D = device_copy(D, (size_t)m * d), *d_bdec = device_copy(b_dec, (size_t)d);
    float *d_x = device_copy(x, nd), *d_g = device_alloc<float>(nd), *d_gsum = device_alloc<float>(nd);
    float *d_e = device_alloc<float>(nd), *d_zgrad = device_alloc<float>(slots);
    double *d_sq = device_alloc<double>((size_t)n), *d_sqh = device_alloc<double>((size_t)n);
    double *r_g = host_alloc<double>(nd), *r_gsum = host_alloc<double>(nd), *r_e = host_alloc<double>(nd);
    double *r_zgrad = host_alloc<double>(slots), *r_sq = host_alloc<double>((size_t)n);
    double *r_sqh = host_alloc<double>((size_t)n);
    const double flops = 4.0 * n * k * d, bytes = 4.0 * ((double)n * k * d + 2.0 * nd);

    int failed = 0;
    for (int c = 0; c < 3; c++) {
        const int mh = c == 1 ? mh_kept : 0;
        if (c < 2) decode_reference(&z, D, b_dec, x, n, d, mh, gs, gsh, r_g, r_gsum, r_e, r_zgrad, r_sq, r_sqh);
        else aux_reference(&z, D, e, n, d, s_aux, r_e, r_zgrad, r_sq);
        for (int v = 1; v <= N_VERSIONS; v++) {
            if (a.version && v != a.version) continue;
            const DecodeFn dec = VERSIONS[v - 1].decode;
            const AuxFn aux = VERSIONS[v - 1].aux;
            float *de = c == 1 ? d_e : NULL;
            auto call = [&] {
                if (c < 2)
                    dec(d_start, d_count, d_idx, d_val, d_D, d_bdec, d_x, n, d, mh, gs, gsh, d_g, d_gsum, de, d_zgrad,
                        d_sq, d_sqh, 0);
                else aux(d_start, d_count, d_idx, d_val, d_D, n, d, s_aux, d_e, d_zgrad, d_sq, 0);
            };
            if (c == 2) cudaCheck(cudaMemcpy(d_e, e, sizeof(float) * nd, cudaMemcpyHostToDevice));
            call();
            Check chk = {0, 0.0};
            if (c < 2) check_floats(&chk, "g", d_g, r_g, nd, a.plant);
            check_doubles(&chk, "sq", d_sq, r_sq, (size_t)n);
            check_slots(&chk, "zgrad", d_zgrad, r_zgrad, &z, n, k, a.plant);
            if (c == 1) {
                check_floats(&chk, "gsum", d_gsum, r_gsum, nd, 0);
                check_doubles(&chk, "sqh", d_sqh, r_sqh, (size_t)n);
            }
            if (c > 0) check_floats(&chk, "e", d_e, r_e, nd, a.plant);
            const double ms = time_ms(a.reps, call);
            char name[96];
            snprintf(name, sizeof(name), "%s, %s", VERSIONS[v - 1].name,
                     c == 0 ? "standard" : c == 1 ? "Matryoshka + residual" : "AuxK");
            failed |= report(v, name, &chk, ms, bytes, flops);
        }
    }
    int *dev_i[] = {d_start, d_count, d_idx};
    float *dev_f[] = {d_val, d_D, d_bdec, d_x, d_g, d_gsum, d_e, d_zgrad};
    for (int *p : dev_i) cudaCheck(cudaFree(p));
    for (float *p : dev_f) cudaCheck(cudaFree(p));
    cudaCheck(cudaFree(d_sq));
    cudaCheck(cudaFree(d_sqh));
    free(start), free(count), free(idx), free(val), free(D), free(b_dec), free(x), free(e);
    free(r_g), free(r_gsum), free(r_e), free(r_zgrad), free(r_sq), free(r_sqh);
    return failed;
}
