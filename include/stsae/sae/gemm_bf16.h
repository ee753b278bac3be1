// gemm_bf16.h — the encoder's product with bfloat16 operands and fp32
// accumulation, for train.gemm: bf16 on the CPU (SPEC §1's encoder,
// pre = (x - b_dec) W_enc^T, issue 18 item 2).
//
// In: the fp32 rows a [n, d] and the weights W [m, d] (row-major, as the
// step holds them); out: pre [n, m] in fp32. Both operands are rounded to
// bfloat16 (round to nearest, ties to even: the rounding of PyTorch's
// .to(torch.bfloat16)) and multiplied with fp32 accumulation, which is what
// an AVX512-BF16 or AMX unit does natively (vdpbf16ps, tdpbf16ps). The
// product comes from oneDNN's matmul primitive (Debian's libdnnl-dev):
// Debian's OpenBLAS 0.3.21 is built without its sbgemm, and oneDNN picks
// the CPU's best kernel by itself (brgemm on avx512_core_bf16 or
// avx512_core_amx; measured in benchmarks/RESULTS.md). The pre-activations
// then differ from fp32's by about 2e-3 relative (bf16 keeps 8 bits of
// mantissa); the backward pass, the decoder and the optimizer stay fp32.
//
// W changes every step, so the step rounds it once per step
// (gemm_bf16_set_weights, ~9 MB written at the paper's shape) and each
// encoder chunk rounds its rows (gemm_bf16_apply). A build without oneDNN
// has the same calls: gemm_bf16_available says why not, create dies.
#ifndef STSAE_GEMM_BF16_H
#define STSAE_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

typedef struct GemmBf16 GemmBf16;

// 1 when this build has oneDNN and oneDNN a bf16 matmul on this CPU (a tiny
// primitive is created to find out); 0 with the reason in why. *isa (may be
// NULL) names the instruction set oneDNN runs on this CPU, and *native is 1
// when it has bf16 products (AVX512-BF16 or AMX): elsewhere bf16 is slower
// than fp32.
int gemm_bf16_available(char *why, size_t why_len, const char **isa, int *native);

GemmBf16 *gemm_bf16_create(int d, int m);
void gemm_bf16_free(GemmBf16 *g);
// The weights W [m, d], rounded to bf16 and kept until the next call.
void gemm_bf16_set_weights(GemmBf16 *g, const float *W);
// pre[n, m] = bf16(a) bf16(W)^T with fp32 accumulation; a [n, d].
void gemm_bf16_apply(GemmBf16 *g, const float *a, int n, float *pre);

// x rounded to the nearest bfloat16 (ties to even), as its 16 bits; the
// reference tests round with this too.
static inline uint16_t bf16_round(float x) {
    union {
        float f;
        uint32_t u;
    } v = {x};
    return (uint16_t)((v.u + 0x7FFFu + ((v.u >> 16) & 1u)) >> 16);
}

#endif
