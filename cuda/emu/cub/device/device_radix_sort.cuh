// device_radix_sort.cuh (emulation) — cub::DeviceRadixSort on the CPU, with
// CUB's results: a stable sort on the bits [begin_bit, end_bit) of the keys
// (signed integers and floats ordered through CUB's bit twiddle, bits outside
// the range ignored, as the GPU sort ignores them), ascending or descending,
// values carried along.
//
// In:  d_temp_storage NULL: the size query (temp_storage_bytes set, nothing
//      sorted); else keys (and values) in, the bit range, the stream.
// Out: keys (and values) out, written by a task on the stream in turn with its
//      kernels. A temp_storage_bytes smaller than the query for num_items
//      gives cudaErrorInvalidValue, as CUB does; the temporary storage itself
//      is not used.
#ifndef STSAE_EMU_CUB_DEVICE_RADIX_SORT_CUH
#define STSAE_EMU_CUB_DEVICE_RADIX_SORT_CUH

#include <algorithm>
#include <numeric>

#include "../../cuda_runtime.h"

namespace cub {
namespace emu_detail {

// CUB's key twiddle: unsigned order of the bits equals the key order.
template <typename K>
std::uint64_t twiddle(K k) {
    static_assert(std::is_arithmetic<K>::value && sizeof(K) <= 8, "radix sort of a key type CUB does not sort");
    if constexpr (std::is_floating_point<K>::value) {
        using U = std::conditional_t<sizeof(K) == 4, std::uint32_t, std::uint64_t>;
        U u;
        std::memcpy(&u, &k, sizeof u);
        const U sign = U(1) << (8 * sizeof(K) - 1);
        return (std::uint64_t)((u & sign) ? ~u : (u ^ sign));
    } else if constexpr (std::is_signed<K>::value) {
        using U = std::make_unsigned_t<K>;
        return (std::uint64_t)((U)k ^ (U(1) << (8 * sizeof(K) - 1)));
    } else {
        return (std::uint64_t)k;
    }
}

template <typename K, typename V>
std::size_t temp_bytes(long long n) {
    return (std::size_t)(n > 0 ? n : 0) * (sizeof(K) + sizeof(V)) + 256;
}

// values may be NULL (keys only).
template <typename K, typename V>
cudaError_t sort(void *d_temp, std::size_t &bytes, const K *keys_in, K *keys_out, const V *vals_in, V *vals_out,
                 long long n, int begin_bit, int end_bit, bool descending, cudaStream_t st) {
    const std::size_t need = temp_bytes<K, V>(n);
    if (!d_temp) {
        bytes = need;
        return cudaSuccess;
    }
    if (bytes < need || begin_bit < 0 || end_bit > (int)(8 * sizeof(K)) || begin_bit > end_bit) return cudaErrorInvalidValue;
    if (n <= 0) return cudaSuccess;
    hip::detail::Stream *s = stsae_emu::enqueue_stream(st);
    s->apply([=](auto &&tasks) {
        tasks.emplace_back([=](auto &&) {
            const int nb = end_bit - begin_bit;
            const std::uint64_t mask = nb >= 64 ? ~0ull : ((1ull << nb) - 1ull);
            std::vector<std::uint64_t> digit((std::size_t)n);
            for (long long i = 0; i < n; i++) digit[i] = (twiddle(keys_in[i]) >> begin_bit) & mask;
            std::vector<long long> order((std::size_t)n);
            std::iota(order.begin(), order.end(), 0ll);
            if (descending)
                std::stable_sort(order.begin(), order.end(), [&](long long a, long long b) { return digit[a] > digit[b]; });
            else
                std::stable_sort(order.begin(), order.end(), [&](long long a, long long b) { return digit[a] < digit[b]; });
            std::vector<K> k((std::size_t)n);
            for (long long i = 0; i < n; i++) k[i] = keys_in[order[i]];
            if (vals_in) {
                std::vector<V> v((std::size_t)n);
                for (long long i = 0; i < n; i++) v[i] = vals_in[order[i]];
                std::copy(v.begin(), v.end(), vals_out);
            }
            std::copy(k.begin(), k.end(), keys_out);
        });
    });
    return cudaSuccess;
}

struct NullValue {};

} // namespace emu_detail

struct DeviceRadixSort {
    template <typename K, typename V, typename N>
    static cudaError_t SortPairs(void *d_temp_storage, std::size_t &temp_storage_bytes, const K *d_keys_in,
                                 K *d_keys_out, const V *d_values_in, V *d_values_out, N num_items, int begin_bit = 0,
                                 int end_bit = sizeof(K) * 8, cudaStream_t stream = 0) {
        return emu_detail::sort(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, d_values_in, d_values_out,
                                (long long)num_items, begin_bit, end_bit, false, stream);
    }
    template <typename K, typename V, typename N>
    static cudaError_t SortPairsDescending(void *d_temp_storage, std::size_t &temp_storage_bytes, const K *d_keys_in,
                                           K *d_keys_out, const V *d_values_in, V *d_values_out, N num_items,
                                           int begin_bit = 0, int end_bit = sizeof(K) * 8, cudaStream_t stream = 0) {
        return emu_detail::sort(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, d_values_in, d_values_out,
                                (long long)num_items, begin_bit, end_bit, true, stream);
    }
    template <typename K, typename N>
    static cudaError_t SortKeys(void *d_temp_storage, std::size_t &temp_storage_bytes, const K *d_keys_in,
                                K *d_keys_out, N num_items, int begin_bit = 0, int end_bit = sizeof(K) * 8,
                                cudaStream_t stream = 0) {
        return emu_detail::sort<K, emu_detail::NullValue>(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out,
                                                          nullptr, nullptr, (long long)num_items, begin_bit, end_bit,
                                                          false, stream);
    }
    template <typename K, typename N>
    static cudaError_t SortKeysDescending(void *d_temp_storage, std::size_t &temp_storage_bytes, const K *d_keys_in,
                                          K *d_keys_out, N num_items, int begin_bit = 0, int end_bit = sizeof(K) * 8,
                                          cudaStream_t stream = 0) {
        return emu_detail::sort<K, emu_detail::NullValue>(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out,
                                                          nullptr, nullptr, (long long)num_items, begin_bit, end_bit,
                                                          true, stream);
    }
};

} // namespace cub

#endif
