// stsae_emu.h — the core of the CUDA emulation: the project's CUDA kernels
// (cuda/**/*.cu) compiled as host C++ (g++ -std=c++17) and run on the CPU
// through HIP-CPU (../shared/vendor/hip-cpu, header-only, needs TBB), so that
// the GPU tests run in CI on machines without a GPU (label cuda-emu).
//
// In:  a .cu file rewritten by cmake/CudaEmuRewrite.cmake (the two pieces of
//      CUDA syntax C++ cannot express: `k<<<g, b, s, st>>>(args)` becomes
//      stsae_emu_launch(stsae_emu::LaunchConfig(g, b, s, st), k, args) and
//      `extern __shared__ T name[];` becomes STSAE_EMU_DYNAMIC_SHARED(T, name)),
//      then compiled with cuda/emu/ ahead of everything on the include path, so
//      that <cuda_runtime.h>, <cublas_v2.h>, <cuda_bf16.h> and CUB's headers
//      are the stand-ins of this folder, never the toolkit's.
// Out: kernels run block by block on TBB's threads; a block's threads are
//      HIP-CPU fibers on one OS thread, switched at barriers. This header adds
//      what HIP-CPU does not give with CUDA's meaning:
//      - launches checked as CUDA checks them (block <= 1024 threads, no empty
//        grid, dynamic shared memory <= 48 KiB unless cudaFuncSetAttribute
//        raised it): a bad one launches nothing and sets the error that
//        cudaGetLastError returns, as on a GPU;
//      - warps of 32 lanes (HIP-CPU's are 64 wide; its __shfl_* would use the
//        wrong lanes, see ORIGIN.md): __shfl_*_sync, __syncwarp, __ballot_sync,
//        __any_sync, __all_sync compute the source lane themselves and switch
//        fibers only within the warp (a ring of its lanes), so a warp may
//        shuffle while the other warps of the block do not. Only whole-warp
//        masks are emulated (anything else aborts naming the call);
//      - every thread of every block runs as a fiber of its own (HIP-CPU would
//        otherwise run a block with no __syncthreads in thread 0 as a plain
//        loop, where a warp shuffle in another thread cannot switch);
//      - dynamic shared memory (extern __shared__) of the launch's size, filled
//        with 0xFF bytes (NaN floats, -1 integers) at the start of each block,
//        and cudaMalloc'd memory likewise, so reads of never-written memory
//        show up in results;
//      - warpSize 32, CUDA's bit casts (__float_as_uint, ...) and the few fast
//        math intrinsics HIP-CPU lacks.
// What it proves: the kernels' logic (indexing, bounds, reductions, barriers
// at the right places, the launch arithmetic), not their speed, and not races
// inside a warp or between blocks: a block's threads run one at a time
// between barriers, in thread order. A missing __syncthreads usually shows
// (a thread runs ahead of the others to the next barrier), not always.
// Limits: fiber stacks are HIP-CPU's 7 KiB (no printf or deep calls inside a
// kernel); `cudaDeviceProp::warpSize` cannot be named (warpSize is a macro).
#ifndef STSAE_EMU_H
#define STSAE_EMU_H

#if !defined(__cplusplus) || __cplusplus < 201703L
#error "the CUDA emulation is C++17 (g++ -std=c++17)"
#endif

#include <hip/hip_runtime.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#define STSAE_CUDA_EMU 1

// CUDA's warps are 32 lanes (HIP-CPU's constant says 64; its own headers were
// parsed with theirs above, this is for the kernels).
#undef warpSize
#define warpSize 32

#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif
#ifndef __noinline__
#define __noinline__ __attribute__((noinline))
#endif

namespace stsae_emu {

[[noreturn]] inline void fail(const char *what) {
    std::fprintf(stderr, "stsae CUDA emulation: %s\n", what);
    std::fflush(stderr);
    std::abort();
}

// ---- launches ----------------------------------------------------------------

// The <<<grid, block, shared bytes, stream>>> of a launch.
struct LaunchConfig {
    dim3 grid, block;
    std::size_t shmem;
    hipStream_t stream;
    LaunchConfig(dim3 g, dim3 b, std::size_t s = 0, hipStream_t st = nullptr)
        : grid(g), block(b), shmem(s), stream(st) {}
};

// ---- stream 0 ---------------------------------------------------------------

// CUDA's legacy default stream (stream 0, a launch without one): HIP-CPU's
// null stream is drained by two of its threads at once (its
// Runtime::wait_all_streams_ empties it in a std::async task and again in the
// loop over all streams, where it is listed too), so two tasks of stream 0
// can run concurrently or out of order: a kernel and the copy that reads its
// result, or the event a stream synchronization waits on. Every stream-0
// operation goes to a stream of ours instead, with the legacy stream's
// ordering: it waits for all work issued before it (a device synchronization;
// the host waits too, stricter than CUDA), and the next operation on any
// other stream waits for it.
inline hipStream_t default_stream() {
    static hipStream_t s = [] {
        hipStream_t x = nullptr;
        if (hipStreamCreate(&x) != hipSuccess || !x) {
            std::fprintf(stderr, "CUDA emulation: cannot create the stream that stands in for stream 0\n");
            std::abort();
        }
        return x;
    }();
    return s;
}
inline std::atomic<bool> &default_stream_used() {
    static std::atomic<bool> used{false};
    return used;
}
// The stream an operation issued on s is enqueued on (see above).
inline hipStream_t enqueue_stream(hipStream_t s) {
    if (!s) {
        hipDeviceSynchronize();
        default_stream_used() = true;
        return default_stream();
    }
    if (default_stream_used().exchange(false)) hipDeviceSynchronize();
    return s;
}

enum : std::size_t {
    kDefaultDynamicShared = 48 * 1024, // without cudaFuncAttributeMaxDynamicSharedMemorySize
    kMaxDynamicShared = 227 * 1024,    // sm_90's opt-in maximum per block
};

// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, n)
inline std::mutex &attr_mutex() {
    static std::mutex m;
    return m;
}
inline std::unordered_map<const void *, std::size_t> &max_dynamic_shared() {
    static std::unordered_map<const void *, std::size_t> m;
    return m;
}
inline std::size_t dynamic_shared_limit(const void *kernel) {
    std::lock_guard<std::mutex> lock(attr_mutex());
    auto it = max_dynamic_shared().find(kernel);
    return it == max_dynamic_shared().end() ? std::size_t(kDefaultDynamicShared) : it->second;
}

// CUDA's checks of a launch configuration (sm_80 / sm_90 limits).
inline hipError_t check_launch(const LaunchConfig &c, const void *kernel) {
    const dim3 &g = c.grid, &b = c.block;
    if (g.x == 0 || g.y == 0 || g.z == 0 || b.x == 0 || b.y == 0 || b.z == 0) return hipErrorInvalidConfiguration;
    if (b.x > 1024 || b.y > 1024 || b.z > 64 || (std::uint64_t)b.x * b.y * b.z > 1024)
        return hipErrorInvalidConfiguration;
    if (g.x > 2147483647u || g.y > 65535 || g.z > 65535) return hipErrorInvalidConfiguration;
    if (c.shmem > dynamic_shared_limit(kernel)) return hipErrorInvalidValue;
    return hipSuccess;
}

inline std::atomic<unsigned long> &launch_counter() {
    static std::atomic<unsigned long> n{0};
    return n;
}
inline thread_local unsigned long this_launch = 0;

// kernel<<<c>>>(args...): the arguments converted to the kernel's parameter
// types at the launch, as CUDA does; a bad configuration launches nothing.
template <typename... P, typename... A>
void launch(const LaunchConfig &c, void (*kernel)(P...), A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    const hipError_t e = check_launch(c, reinterpret_cast<const void *>(kernel));
    if (e != hipSuccess) {
        hip::detail::Runtime::set_last_error(e);
        return;
    }
    const unsigned long seq = ++launch_counter();
    hip::detail::launch(
        c.grid, c.block, static_cast<std::uint32_t>(c.shmem), enqueue_stream(c.stream),
        [kernel, seq](auto &&...xs) noexcept {
            // every thread a fiber of its own (see the header comment)
            hip::detail::this_tile::has_barrier = true;
            this_launch = seq;
            kernel(xs...);
        },
        std::make_tuple(static_cast<std::decay_t<P>>(std::forward<A>(args))...));
}

// ---- threads, lanes, warps ---------------------------------------------------

using hip::detail::Fiber;
using hip::detail::Tile;

// HIP-CPU numbers a block's fibers with z fastest (its extrude()); CUDA's
// linear thread index, which makes the warps, has x fastest.
inline std::uint32_t fiber_of(const dim3 &bd, std::uint32_t lin) {
    const std::uint32_t x = lin % bd.x, y = (lin / bd.x) % bd.y, z = lin / (bd.x * bd.y);
    return (x * bd.y + y) * bd.z + z;
}

struct Lane {
    dim3 bd;
    std::uint32_t lin;   // CUDA's linear thread index in the block
    std::uint32_t lane;  // lin % 32
    std::uint32_t base;  // lin of lane 0 of this warp
    std::uint32_t width; // lanes in this warp (32, fewer in a last partial warp)
};

inline Lane this_lane() {
    Lane l;
    l.bd = dimensions(Tile::this_tile());
    const dim3 t = extrude(l.bd, id(Fiber::this_fiber()));
    l.lin = t.x + l.bd.x * (t.y + l.bd.y * t.z);
    l.lane = l.lin & 31u;
    l.base = l.lin - l.lane;
    const std::uint32_t n = l.bd.x * l.bd.y * l.bd.z;
    l.width = n - l.base < 32u ? n - l.base : 32u;
    return l;
}

// Every lane of the warp arrives before any goes on: a ring of the warp's
// fibers (lane i switches to lane i + 1, the last to lane 0).
inline void warp_barrier(const Lane &l) {
    if (l.width <= 1) return;
    hip::detail::this_tile::has_barrier = true;
    const std::uint32_t next = l.base + (l.lane + 1) % l.width;
    Fiber::yield(Tile::fibers()[fiber_of(l.bd, next)]);
}

inline void check_mask(std::uint32_t mask, const Lane &l, const char *call) {
    const std::uint32_t full = l.width == 32 ? 0xffffffffu : ((1u << l.width) - 1u);
    if ((mask & full) != full) {
        char msg[200];
        std::snprintf(msg, sizeof msg,
                      "%s with mask 0x%08x in a warp of %u lanes: only whole-warp masks are emulated", call,
                      (unsigned)mask, (unsigned)l.width);
        fail(msg);
    }
}

// One exchange: each lane posts v, all arrive, each reads lane src's, all
// arrive again (so no lane overwrites before the others have read).
inline std::uint64_t *exchange_slots() {
    thread_local std::uint64_t slots[1024]; // per OS thread = per running block
    return slots;
}

template <typename T>
T exchange(T v, std::uint32_t src_lane, const Lane &l) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "shuffle of a type CUDA cannot shuffle");
    std::uint64_t *slots = exchange_slots(), bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    slots[l.lin] = bits;
    warp_barrier(l);
    const std::uint64_t got = src_lane < l.width ? slots[l.base + src_lane] : bits; // no such lane: its own
    warp_barrier(l);
    T r;
    std::memcpy(&r, &got, sizeof r);
    return r;
}

inline void check_width(int width, const char *call) {
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
        char msg[160];
        std::snprintf(msg, sizeof msg, "%s with width %d (a power of 2 up to 32)", call, width);
        fail(msg);
    }
}

// ---- dynamic shared memory --------------------------------------------------

// The launch's dynamic shared memory, one buffer per running block (every
// extern __shared__ array of a kernel starts at its base, as on a GPU);
// filled with 0xFF bytes when the block's first thread reaches it.
template <typename T>
T *dynamic_shared() {
    thread_local std::vector<double> buf;
    thread_local unsigned long owner_launch = 0;
    thread_local dim3 owner_block{0, 0, 0};
    const std::size_t bytes = scratchpad_size(domain(Tile::this_tile()));
    const dim3 b = index(Tile::this_tile());
    if (owner_launch != this_launch || !(owner_block == b)) {
        owner_launch = this_launch;
        owner_block = b;
        buf.assign((bytes + sizeof(double) - 1) / sizeof(double) + 1, 0.0);
        std::memset(buf.data(), 0xFF, sizeof(double) * buf.size());
    }
    return reinterpret_cast<T *>(buf.data());
}

inline std::uint32_t float_bits(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
inline float bits_float(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

} // namespace stsae_emu

// What the rewritten sources call (cmake/CudaEmuRewrite.cmake).
#define stsae_emu_launch(cfg, ...) ::stsae_emu::launch(cfg, __VA_ARGS__)
#define STSAE_EMU_DYNAMIC_SHARED(T, name) T *name = ::stsae_emu::dynamic_shared<T>()

// ---- warp-level intrinsics, 32 lanes -------------------------------------------

template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    const stsae_emu::Lane l = stsae_emu::this_lane();
    stsae_emu::check_mask(mask, l, "__shfl_sync");
    stsae_emu::check_width(width, "__shfl_sync");
    const std::uint32_t seg = l.lane / width * width;
    return stsae_emu::exchange(v, seg + ((unsigned)src_lane % (unsigned)width), l);
}

template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const stsae_emu::Lane l = stsae_emu::this_lane();
    stsae_emu::check_mask(mask, l, "__shfl_up_sync");
    stsae_emu::check_width(width, "__shfl_up_sync");
    const std::uint32_t in_seg = l.lane % width;
    return stsae_emu::exchange(v, in_seg >= delta ? l.lane - delta : l.lane, l);
}

template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    const stsae_emu::Lane l = stsae_emu::this_lane();
    stsae_emu::check_mask(mask, l, "__shfl_down_sync");
    stsae_emu::check_width(width, "__shfl_down_sync");
    const std::uint32_t in_seg = l.lane % width;
    return stsae_emu::exchange(v, in_seg + delta < (unsigned)width ? l.lane + delta : l.lane, l);
}

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    const stsae_emu::Lane l = stsae_emu::this_lane();
    stsae_emu::check_mask(mask, l, "__shfl_xor_sync");
    stsae_emu::check_width(width, "__shfl_xor_sync");
    const std::uint32_t src = (l.lane ^ (unsigned)lane_mask) & 31u;
    // a later group of width lanes is out of reach: the lane's own value
    return stsae_emu::exchange(v, src / width > l.lane / width ? l.lane : src, l);
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
    const stsae_emu::Lane l = stsae_emu::this_lane();
    stsae_emu::check_mask(mask, l, "__syncwarp");
    stsae_emu::warp_barrier(l);
}

inline unsigned __ballot_sync(unsigned mask, int pred) {
    const stsae_emu::Lane l = stsae_emu::this_lane();
    stsae_emu::check_mask(mask, l, "__ballot_sync");
    std::uint64_t *slots = stsae_emu::exchange_slots();
    slots[l.lin] = pred != 0;
    stsae_emu::warp_barrier(l);
    unsigned r = 0;
    for (std::uint32_t q = 0; q < l.width; q++) r |= (slots[l.base + q] ? 1u : 0u) << q;
    stsae_emu::warp_barrier(l);
    return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) {
    const stsae_emu::Lane l = stsae_emu::this_lane();
    const unsigned full = l.width == 32 ? 0xffffffffu : ((1u << l.width) - 1u);
    return __ballot_sync(mask, pred) == full;
}
// No divergence is tracked: the whole warp.
inline unsigned __activemask() {
    const stsae_emu::Lane l = stsae_emu::this_lane();
    return l.width == 32 ? 0xffffffffu : ((1u << l.width) - 1u);
}

// ---- bit casts and fast math HIP-CPU lacks -------------------------------------

inline unsigned __float_as_uint(float f) { return stsae_emu::float_bits(f); }
inline float __uint_as_float(unsigned u) { return stsae_emu::bits_float(u); }
inline int __float_as_int(float f) { return (int)stsae_emu::float_bits(f); }
inline float __int_as_float(int i) { return stsae_emu::bits_float((std::uint32_t)i); }
inline long long __double_as_longlong(double d) {
    long long r;
    std::memcpy(&r, &d, sizeof r);
    return r;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }

#endif
