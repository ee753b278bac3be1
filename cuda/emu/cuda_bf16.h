// cuda_bf16.h (emulation) — __nv_bfloat16 on the CPU: the 16 upper bits of a
// float (8-bit exponent, 7-bit mantissa), as the CUDA type stores them.
//
// In:  floats. Out: bf16 values rounded to nearest, ties to even
//      (__float2bfloat16, __float2bfloat16_rn; NaN stays a quiet NaN) or
//      toward zero (__float2bfloat16_rz), and back to float exactly
//      (__bfloat162float, or the conversion operator), as cuda_bf16.h does.
#ifndef STSAE_EMU_CUDA_BF16_H
#define STSAE_EMU_CUDA_BF16_H

#include "stsae_emu.h"

namespace stsae_emu {
inline unsigned short bf16_bits_rn(float f) {
    const std::uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x0040u); // NaN: quiet
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
} // namespace stsae_emu

struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : __x(stsae_emu::bf16_bits_rn(f)) {}
    __nv_bfloat16(double f) : __x(stsae_emu::bf16_bits_rn((float)f)) {}
    operator float() const { return stsae_emu::bits_float((std::uint32_t)__x << 16); }
};
static_assert(sizeof(__nv_bfloat16) == 2, "bf16 is two bytes");
typedef __nv_bfloat16 nv_bfloat16;

inline __nv_bfloat16 __float2bfloat16(float f) {
    __nv_bfloat16 r;
    r.__x = stsae_emu::bf16_bits_rn(f);
    return r;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rz(float f) {
    __nv_bfloat16 r;
    r.__x = (unsigned short)(stsae_emu::float_bits(f) >> 16);
    return r;
}
inline float __bfloat162float(__nv_bfloat16 b) { return (float)b; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 r;
    r.__x = u;
    return r;
}

#endif
