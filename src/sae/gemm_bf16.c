// gemm_bf16.c — the encoder's bf16 product on oneDNN's matmul (gemm_bf16.h).
// One primitive per row count met (the step's chunk, its last, shorter
// chunk, and BatchTopK's rows encoded again), created on first use; the
// least recently used is replaced, so the two that every step uses stay.
// The rounded weights and rows live in buffers of their own.
#include "stsae/sae/gemm_bf16.h"

#include <stdio.h>
#include <stdlib.h>

#include "stsae/base/common.h"

#ifdef STSAE_HAVE_DNNL
#include <dnnl.h>

enum { N_PRIM = 4 }; // primitives kept (row counts); the least recently used is replaced

struct GemmBf16 {
    int d, m;
    uint16_t *w;      // [m, d] bf16(W)
    uint16_t *a;      // [cap_rows, d] bf16 rows of the last apply
    int cap_rows;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    struct {
        int n;
        dnnl_primitive_t p;
        uint64_t used; // the call count when last used
    } prim[N_PRIM];
    uint64_t calls;
};

static void ok(dnnl_status_t s, const char *what) {
    if (s != dnnl_success) die("oneDNN: %s failed (status %d)", what, (int)s);
}

// The operands of pre [n, m] = a [n, d] W^T: src [n, d] bf16 (ab), weights
// [d, m] bf16 given as W [m, d] (ba), dst [n, m] f32. md: src, weights, dst.
static dnnl_status_t operand_descs(int n, int d, int m, dnnl_memory_desc_t md[3]) {
    dnnl_dims_t ad = {n, d}, wd = {d, m}, cd = {n, m};
    dnnl_status_t s = dnnl_memory_desc_init_by_tag(&md[0], 2, ad, dnnl_bf16, dnnl_ab);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(&md[1], 2, wd, dnnl_bf16, dnnl_ba);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_tag(&md[2], 2, cd, dnnl_f32, dnnl_ab);
    return s;
}

// Its matmul's primitive descriptor on eng (*pd NULL when it fails).
static dnnl_status_t matmul_pd(dnnl_engine_t eng, int n, int d, int m, dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t md[3];
    dnnl_matmul_desc_t mm;
    *pd = NULL;
    dnnl_status_t s = operand_descs(n, d, m, md);
    if (s == dnnl_success) s = dnnl_matmul_desc_init(&mm, &md[0], &md[1], NULL, &md[2]);
    if (s == dnnl_success) s = dnnl_primitive_desc_create(pd, &mm, NULL, eng, NULL);
    return s;
}

// 1 when oneDNN has a bf16 x bf16 -> f32 matmul on this CPU (its 2.x builds
// need AVX-512 for bf16; ONEDNN_MAX_CPU_ISA can lower what it uses).
static int matmul_exists(void) {
    dnnl_engine_t eng;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return 0;
    dnnl_primitive_desc_t pd;
    const int ok = matmul_pd(eng, 2, 16, 16, &pd) == dnnl_success;
    if (pd) dnnl_primitive_desc_destroy(pd);
    dnnl_engine_destroy(eng);
    return ok;
}

int gemm_bf16_available(char *why, size_t why_len, const char **isa, int *native) {
    const dnnl_cpu_isa_t i = dnnl_get_effective_cpu_isa();
    const int nat = (i & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16 ||
                    (i & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx;
    const char *name = (i & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx ? "avx512_core_amx"
                       : (i & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16 ? "avx512_core_bf16"
                       : (i & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? "avx512_core"
                       : (i & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2               ? "avx2"
                                                                                   : "an older instruction set";
    if (isa) *isa = name;
    if (native) *native = nat;
    if (why && why_len) why[0] = '\0';
    if (!matmul_exists()) {
        if (why && why_len)
            snprintf(why, why_len, "oneDNN has no bf16 matmul on this CPU (it runs %s here; bf16 needs AVX-512, "
                     "and pays only with AVX512-BF16 or AMX)", name);
        return 0;
    }
    return 1;
}

GemmBf16 *gemm_bf16_create(int d, int m) {
    GemmBf16 *g = xcalloc(1, sizeof(GemmBf16));
    g->d = d;
    g->m = m;
    g->w = xmalloc(sizeof(uint16_t) * (size_t)m * d);
    ok(dnnl_engine_create(&g->eng, dnnl_cpu, 0), "engine");
    ok(dnnl_stream_create(&g->st, g->eng, dnnl_stream_default_flags), "stream");
    return g;
}

void gemm_bf16_free(GemmBf16 *g) {
    if (!g) return;
    for (int i = 0; i < N_PRIM; i++)
        if (g->prim[i].p) dnnl_primitive_destroy(g->prim[i].p);
    dnnl_stream_destroy(g->st);
    dnnl_engine_destroy(g->eng);
    free(g->w);
    free(g->a);
    free(g);
}

// The matmul for n rows, made on first use.
static dnnl_primitive_t primitive(GemmBf16 *g, int n) {
    g->calls++;
    int slot = 0;
    for (int i = 0; i < N_PRIM; i++) {
        if (g->prim[i].p && g->prim[i].n == n) {
            g->prim[i].used = g->calls;
            return g->prim[i].p;
        }
        if (g->prim[i].used < g->prim[slot].used) slot = i;
    }
    dnnl_primitive_desc_t pd;
    ok(matmul_pd(g->eng, n, g->d, g->m, &pd), "matmul (bf16 x bf16 -> f32) on this CPU");
    dnnl_primitive_t p;
    ok(dnnl_primitive_create(&p, pd), "matmul primitive");
    dnnl_primitive_desc_destroy(pd);
    if (g->prim[slot].p) dnnl_primitive_destroy(g->prim[slot].p);
    g->prim[slot].n = n;
    g->prim[slot].p = p;
    g->prim[slot].used = g->calls;
    return p;
}

static void round_rows(const float *src, size_t count, uint16_t *dst) {
    const int trunc = PLANTED("bf16_truncate");
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) {
        union {
            float f;
            uint32_t u;
        } v = {src[i]};
        dst[i] = trunc ? (uint16_t)(v.u >> 16) : bf16_round(src[i]);
    }
}

void gemm_bf16_set_weights(GemmBf16 *g, const float *W) { round_rows(W, (size_t)g->m * g->d, g->w); }

void gemm_bf16_apply(GemmBf16 *g, const float *a, int n, float *pre) {
    if (n <= 0) return;
    if (n > g->cap_rows) {
        g->cap_rows = n;
        g->a = xrealloc(g->a, sizeof(uint16_t) * (size_t)n * g->d);
    }
    round_rows(a, (size_t)n * g->d, g->a);
    dnnl_primitive_t p = primitive(g, n);
    dnnl_memory_desc_t md[3];
    ok(operand_descs(n, g->d, g->m, md), "operand descriptors");
    dnnl_memory_t A, B, C;
    ok(dnnl_memory_create(&A, &md[0], g->eng, g->a), "source memory");
    ok(dnnl_memory_create(&B, &md[1], g->eng, g->w), "weights memory");
    ok(dnnl_memory_create(&C, &md[2], g->eng, pre), "destination memory");
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, A}, {DNNL_ARG_WEIGHTS, B}, {DNNL_ARG_DST, C}};
    ok(dnnl_primitive_execute(p, g->st, 3, args), "matmul");
    ok(dnnl_stream_wait(g->st), "stream wait");
    dnnl_memory_destroy(A);
    dnnl_memory_destroy(B);
    dnnl_memory_destroy(C);
}

#else // no oneDNN in this build

struct GemmBf16 {
    int unused;
};

int gemm_bf16_available(char *why, size_t why_len, const char **isa, int *native) {
    if (why && why_len)
        snprintf(why, why_len, "this build has no oneDNN (Debian: libdnnl-dev; install it and configure again)");
    if (isa) *isa = "none";
    if (native) *native = 0;
    return 0;
}

GemmBf16 *gemm_bf16_create(int d, int m) {
    (void)d, (void)m;
    die("bf16 encoder GEMM: this build has no oneDNN (Debian: libdnnl-dev; install it and configure again)");
}

void gemm_bf16_free(GemmBf16 *g) { (void)g; }
void gemm_bf16_set_weights(GemmBf16 *g, const float *W) { (void)g, (void)W; }
void gemm_bf16_apply(GemmBf16 *g, const float *a, int n, float *pre) { (void)g, (void)a, (void)n, (void)pre; }

#endif
