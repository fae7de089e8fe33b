// The vector vocabulary every kernel speaks, and the one place ctnn includes xsimd:
//   vfloat, simd_width, round_up          the vector type (xsimd's default arch), its width, sizes
//   fmadd, fnmadd, fmsub, fnmsub          explicit fused multiply-adds (no contraction flag needed)
//   load_first, store_first, load_n, ...  partial vectors: row tails that are not whole vectors
//   load_strided, load8_strided, ...      strided loads, compile-time-length row copies and adds
//   copy_floats, add_floats, zero_floats  row copies, adds and zeroing of run-time length (zero_grad)
//   hsum, hmax, reduce_rows               horizontal reductions (one vector; 16 at once)
//   transpose_block                       16 x 16 transposes (AVX-512)
//   transpose8, transpose_matrix          8 x 8 register transposes (AVX2, AVX-512); any matrix transposed
// Loss, optimizers, expressions and kernels use these names; none re-aliases xsimd's types.
//
// g++ 12 reports false "'__Y' may be used uninitialized" warnings inside the AVX-512
// intrinsics (those built on _mm512_undefined_ps; GCC bug 105593) once they are inlined into
// our kernels. The warning is attributed to the intrinsic header's lines, so silencing it
// around the include silences exactly those and nothing in ctnn's own code.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <xsimd/xsimd.hpp>
#pragma GCC diagnostic pop
#else
#include <xsimd/xsimd.hpp>
#endif

// Register tiles are arrays indexed by loops over compile-time bounds: unroll them fully so the
// accumulators live in registers (g++ -O2 does not unroll on its own, and spills them). Up to 32
// iterations: the outer weight gradient's tile has one accumulator per tap (25 for a 5x5 kernel).
#define CTNN_UNROLL _Pragma("GCC unroll 32")
// The small helpers a register tile calls (FMAs, partial vectors, the transpose-reduce) must be
// inlined into it, or its accumulators go through memory: g++ -O3 does so on its own, -O2 (a
// user's usual flags) kept reduce_rows out of line and ran the MLP at batch 1 1.9 times slower.
#define CTNN_INLINE inline __attribute__((always_inline))

namespace ctnn::kernels {

using vfloat = xsimd::batch<float>;
inline constexpr std::size_t simd_width = vfloat::size;
/// Vector registers a register tile may fill: 32 with AVX-512, 16 with AVX2.
inline constexpr std::size_t vector_registers = simd_width >= 16 ? 32 : 16;

/// n rounded up to a multiple of `to` (buffer and panel sizes in whole vectors or cache lines).
inline constexpr std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// ---- Fused multiply-adds ----------------------------------------------------------------------
// xsimd 8.1's fma is `x * y + z` for AVX-512, which becomes one instruction only when the
// compiler may contract (g++ in ISO mode, -std=c++20, does not): these are the instructions
// themselves, whatever the flags. Without FMA units (-Disa=none) they fall back to xsimd's.

/// a * b + c, one rounding
CTNN_INLINE vfloat fmadd(vfloat a, vfloat b, vfloat c) {
#if defined(__AVX512F__)
  return _mm512_fmadd_ps(a, b, c);
#elif defined(__FMA__)
  return _mm256_fmadd_ps(a, b, c);
#else
  return xsimd::fma(a, b, c);
#endif
}
/// c - a * b, one rounding
CTNN_INLINE vfloat fnmadd(vfloat a, vfloat b, vfloat c) {
#if defined(__AVX512F__)
  return _mm512_fnmadd_ps(a, b, c);
#elif defined(__FMA__)
  return _mm256_fnmadd_ps(a, b, c);
#else
  return xsimd::fnma(a, b, c);
#endif
}
/// a * b - c, one rounding
CTNN_INLINE vfloat fmsub(vfloat a, vfloat b, vfloat c) {
#if defined(__AVX512F__)
  return _mm512_fmsub_ps(a, b, c);
#elif defined(__FMA__)
  return _mm256_fmsub_ps(a, b, c);
#else
  return xsimd::fms(a, b, c);
#endif
}
/// -(a * b) - c, one rounding
CTNN_INLINE vfloat fnmsub(vfloat a, vfloat b, vfloat c) {
#if defined(__AVX512F__)
  return _mm512_fnmsub_ps(a, b, c);
#elif defined(__FMA__)
  return _mm256_fnmsub_ps(a, b, c);
#else
  return xsimd::fnms(a, b, c);
#endif
}

// ---- Horizontal reductions of one vector -----------------------------------------------------

/// The sum of v's lanes.
CTNN_INLINE float hsum(vfloat v) { return xsimd::hadd(v); }
/// The largest of v's lanes (xsimd 8.1 has no reduce_max); NaN lanes are skipped (-inf if all are).
CTNN_INLINE float hmax(vfloat v) {
  alignas(64) float lanes[simd_width];
  v.store_aligned(lanes);
  float m = -std::numeric_limits<float>::infinity();
  for (float l : lanes) m = l > m ? l : m;
  return m;
}

// ---- Partial vectors: the tails of rows that are not a whole number of vectors ----------------
// With AVX-512, masked loads and stores (which never touch memory outside the mask); with AVX2,
// masked loads and lane masks from a table (first_lanes), stores through a small aligned buffer
// (AVX2's masked store measured no faster on Zen 3); otherwise through the buffer.
namespace detail {
#if defined(__AVX2__) && !defined(__AVX512F__)
/// The mask of lanes l < n (n <= 8): 8 lanes of first_lanes from 8 - n.
alignas(64) inline constexpr std::int32_t first_lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
CTNN_INLINE __m256i first_mask(std::size_t n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first_lanes + 8 - n));
}
#endif
/// The first n (< simd_width) floats at p, the other lanes 0; never reads past p + n. (AVX2's masked
/// load, where the copy through a buffer stalled on store forwarding: LeNet's second conv copying
/// its 10-wide rows, 14% of the forward on Zen 3.)
CTNN_INLINE vfloat load_first(const float* p, std::size_t n) {
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
#endif
#if defined(__AVX2__) && !defined(__AVX512F__)
  if constexpr (simd_width == 8) return _mm256_maskload_ps(p, first_mask(n));
#endif
  alignas(64) float tmp[simd_width] = {};
  std::memcpy(tmp, p, n * sizeof(float));
  return vfloat::load_aligned(tmp);
}
/// acc plus p[l] in the lanes l in [lo, hi) (clipped to the vector); the other lanes of p are not
/// read with AVX-512 (masked), read but not added otherwise.
CTNN_INLINE vfloat add_lanes(vfloat acc, const float* p, std::ptrdiff_t lo, std::ptrdiff_t hi) {
  constexpr auto width = static_cast<std::ptrdiff_t>(simd_width);
  lo = std::clamp<std::ptrdiff_t>(lo, 0, width);
  hi = std::clamp<std::ptrdiff_t>(hi, 0, width);
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) {
    const auto mask = static_cast<__mmask16>((((1u << hi) - 1u) >> lo) << lo);
    return _mm512_mask_add_ps(acc, mask, acc, _mm512_maskz_loadu_ps(mask, p));
  }
#endif
#if defined(__AVX2__) && !defined(__AVX512F__)
  if constexpr (simd_width == 8) {
    // lane l is kept when l < hi and not l < lo: two mask loads and an andnot, where comparing
    // lane indices took two compares and a guarded static (col2im of BN-LeNet's second conv: its
    // backward 3.0 -> 2.66 ms at batch 256 on Zen 3)
    const __m256 keep = _mm256_andnot_ps(_mm256_castsi256_ps(first_mask(static_cast<std::size_t>(lo))),
                                         _mm256_castsi256_ps(first_mask(static_cast<std::size_t>(hi))));
    return acc + vfloat(_mm256_and_ps(keep, _mm256_loadu_ps(p)));
  }
#endif
  static const vfloat lane = [] {
    alignas(64) float idx[simd_width];
    for (std::size_t i = 0; i < simd_width; ++i) idx[i] = static_cast<float>(i);
    return vfloat::load_aligned(idx);
  }();
  const auto keep = lane >= vfloat(static_cast<float>(lo)) && lane < vfloat(static_cast<float>(hi));
  return acc + xsimd::select(keep, vfloat::load_unaligned(p), vfloat(0.0f));
}
/// Stores the first n (< simd_width) lanes of v at p; never writes past p + n.
CTNN_INLINE void store_first(vfloat v, float* p, std::size_t n) {
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
    return;
  }
#endif
  alignas(64) float tmp[simd_width];
  v.store_aligned(tmp);
  std::memcpy(p, tmp, n * sizeof(float));
}
/// The lanes l < n (< simd_width) of v, the others those of fill.
CTNN_INLINE vfloat first_or(vfloat v, std::size_t n, vfloat fill) {
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) return _mm512_mask_mov_ps(fill, static_cast<__mmask16>((1u << n) - 1u), v);
#endif
#if defined(__AVX2__) && !defined(__AVX512F__)
  if constexpr (simd_width == 8) return _mm256_blendv_ps(fill, v, _mm256_castsi256_ps(first_mask(n)));
#endif
  alignas(64) float tmp[simd_width], rest[simd_width];
  v.store_aligned(tmp);
  fill.store_aligned(rest);
  std::copy(rest + n, rest + simd_width, tmp + n);
  return vfloat::load_aligned(tmp);
}
/// v with the lanes from n (< simd_width) on zeroed: first_or with zeros (with AVX2, an and with
/// the lane mask, which costs less than first_or's blend).
CTNN_INLINE vfloat keep_first(vfloat v, std::size_t n) {
#if defined(__AVX2__) && !defined(__AVX512F__)
  if constexpr (simd_width == 8) return _mm256_and_ps(v, _mm256_castsi256_ps(first_mask(n)));
#endif
  return first_or(v, n, vfloat(0.0f));
}
/// min(n, simd_width) floats at p: a plain load when that is a whole vector, else load_first.
CTNN_INLINE vfloat load_n(const float* p, std::size_t n) {
  return n >= simd_width ? vfloat::load_unaligned(p) : load_first(p, n);
}
/// Stores the first min(n, simd_width) lanes of v at p.
CTNN_INLINE void store_n(vfloat v, float* p, std::size_t n) {
  if (n >= simd_width) v.store_unaligned(p);
  else store_first(v, p, n);
}

// ---- Rows of compile-time length, strided loads -----------------------------------------

/// dst[0, N) = src[0, N), N known at compile time: whole vectors, the last one overlapping the one
/// before it (nothing read or written outside the row).
template <std::size_t N>
CTNN_INLINE void copy_row(float* dst, const float* src) {
  if constexpr (N >= simd_width) {
    std::size_t i = 0;
    for (; i + simd_width <= N; i += simd_width) vfloat::load_unaligned(src + i).store_unaligned(dst + i);
    if constexpr (N % simd_width != 0)
      vfloat::load_unaligned(src + N - simd_width).store_unaligned(dst + N - simd_width);
  } else {
    for (std::size_t i = 0; i < N; ++i) dst[i] = src[i];
  }
}

/// x += y for N floats (N known at compile time, as copy_row's: with a run-time count, g++ 12
/// warns about the scalar tail's loop when it inlines the call into a row of 40 with 8 lanes).
template <std::size_t N>
CTNN_INLINE void add_to(float* x, const float* y) {
  std::size_t i = 0;
  for (; i + simd_width <= N; i += simd_width)
    (vfloat::load_unaligned(x + i) + vfloat::load_unaligned(y + i)).store_unaligned(x + i);
  if constexpr (N % simd_width != 0)
    for (; i < N; ++i) x[i] += y[i];
}

/// dst[0, n) = src[0, n), n at run time: whole vectors, then one partial vector (load_n, store_n).
CTNN_INLINE void copy_floats(float* dst, const float* src, std::size_t n) {
  std::size_t i = 0;
  for (; i + simd_width <= n; i += simd_width) vfloat::load_unaligned(src + i).store_unaligned(dst + i);
  if (i < n) store_n(load_n(src + i, n - i), dst + i, n - i);
}
/// x[0, n) = 0, n at run time. Arrays of 1 MiB and more (a large parameter's gradient) are
/// written with non-temporal stores, past the caches: a zeroed array larger than the caches is
/// evicted before it is read again anyway, and a plain store first reads every line it writes
/// (ResNet-18's zero_grad of 45 MB inside a training step on the project's VM: 1.3-1.5 ms, 1.1 streamed).
inline void zero_floats(float* x, std::size_t n) {
#if defined(__AVX__)
  if (n >= (std::size_t{1} << 18)) {
    constexpr std::size_t w = 8;  // floats per 32-byte store
    std::size_t head = (32 - reinterpret_cast<std::uintptr_t>(x) % 32) % 32;
    if (head % sizeof(float) == 0) {
      head /= sizeof(float);
      std::fill_n(x, head, 0.0f);
      std::size_t i = head;
      for (; i + w <= n; i += w) _mm256_stream_ps(x + i, _mm256_setzero_ps());
      std::fill(x + i, x + n, 0.0f);
      _mm_sfence();
      return;
    }
  }
#endif
  std::fill_n(x, n, 0.0f);
}
/// x[0, n) += y[0, n), n at run time, likewise.
CTNN_INLINE void add_floats(float* x, const float* y, std::size_t n) {
  std::size_t i = 0;
  for (; i + simd_width <= n; i += simd_width)
    (vfloat::load_unaligned(x + i) + vfloat::load_unaligned(y + i)).store_unaligned(x + i);
  if (i < n) store_n(load_n(x + i, n - i) + load_n(y + i, n - i), x + i, n - i);
}

#if defined(__AVX2__)
/// p[0], p[SW], ..., p[7*SW] (SW 1 or 2) as 8 lanes, with AVX-512 too (transpose8's blocks).
template <std::size_t SW>
CTNN_INLINE __m256 load8_strided(const float* p) {
  static_assert(SW == 1 || SW == 2);
  if constexpr (SW == 1) {
    return _mm256_loadu_ps(p);
  } else {
    // p[0..8) and p[7..15) (nothing past p[14]): [p0 p2 p8 p10 | p4 p6 p12 p14], then the middle
    // 64-bit pairs swapped
    const __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 7);
    const __m256 even = _mm256_shuffle_ps(lo, hi, 0xD8);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8));
  }
}
#endif

/// p[0], p[SW], ..., p[(simd_width-1)*SW]: one vector of a strided row (a gather unless SW == 1,
/// or SW == 2 on AVX2: two loads and two shuffles).
template <std::size_t SW>
CTNN_INLINE vfloat load_strided(const float* p) {
  if constexpr (SW == 1) {
    return vfloat::load_unaligned(p);
#if defined(__AVX2__) && !defined(__AVX512F__)
  } else if constexpr (SW == 2 && simd_width == 8) {
    return load8_strided<2>(p);
#endif
  } else {
    using ibatch = xsimd::batch<std::int32_t>;
    static const ibatch idx = [] {
      alignas(64) std::int32_t v[simd_width];
      for (std::size_t i = 0; i < simd_width; ++i) v[i] = static_cast<std::int32_t>(i * SW);
      return ibatch::load_aligned(v);
    }();
    return vfloat::gather(p, idx);
  }
}

// ---- Horizontal sums of simd_width vectors at once (dot products that end in registers) ----

#if defined(__AVX512F__)
/// One level of the transpose-reduce: lanes in chunks of G floats; chunk pair (2i, 2i+1) of the
/// result holds (a_2i + a_2i+1, b_2i + b_2i+1). One blend, one two-source permute, one add.
template <int G>
CTNN_INLINE __m512 fold_pair(__m512 a, __m512 b) {
  alignas(64) static constexpr std::int32_t idx[16] = {
#define CTNN_FOLD_IDX(l) (((l) / G) % 2 == 0 ? (l) + G : 16 + (l) - G)
      CTNN_FOLD_IDX(0),  CTNN_FOLD_IDX(1),  CTNN_FOLD_IDX(2),  CTNN_FOLD_IDX(3), CTNN_FOLD_IDX(4),  CTNN_FOLD_IDX(5),
      CTNN_FOLD_IDX(6),  CTNN_FOLD_IDX(7),  CTNN_FOLD_IDX(8),  CTNN_FOLD_IDX(9), CTNN_FOLD_IDX(10), CTNN_FOLD_IDX(11),
      CTNN_FOLD_IDX(12), CTNN_FOLD_IDX(13), CTNN_FOLD_IDX(14), CTNN_FOLD_IDX(15)};
#undef CTNN_FOLD_IDX
  constexpr __mmask16 odd_chunks = G == 8 ? 0xFF00 : G == 4 ? 0xF0F0 : G == 2 ? 0xCCCC : 0xAAAA;
  const __m512 kept = _mm512_mask_blend_ps(odd_chunks, a, b);  // [a_2i, b_2i+1]
  const __m512 moved = _mm512_permutex2var_ps(a, _mm512_load_si512(idx), b);  // [a_2i+1, b_2i]
  return _mm512_add_ps(kept, moved);
}
#endif

/// No change to the transpose-reduce's middle level (reduce_rows' default).
struct no_middle {
  template <class V>
  void operator()(V*) const {}
};

/// Transpose-reduce: lane r of the result is the sum of all lanes of acc[r], r < simd_width.
/// (Pairs rows r and r + 8, then r and r + 4, ... so the result comes out in row order.)
/// With AVX-512, `middle(l2)` sees the level where l2[r] (r < 4) holds the partial sums of rows
/// r, r + 4, r + 8, r + 12 in its four 128-bit lanes, and may add to them (the dot path's K tail).
template <class Middle = no_middle>
CTNN_INLINE vfloat reduce_rows(vfloat* acc, [[maybe_unused]] Middle middle = {}) {
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) {
    __m512 l1[8], l2[4], l3[2];
    CTNN_UNROLL for (int r = 0; r < 8; ++r) l1[r] = fold_pair<8>(acc[r], acc[r + 8]);
    CTNN_UNROLL for (int r = 0; r < 4; ++r) l2[r] = fold_pair<4>(l1[r], l1[r + 4]);
    middle(l2);
    CTNN_UNROLL for (int r = 0; r < 2; ++r) l3[r] = fold_pair<2>(l2[r], l2[r + 2]);
    return fold_pair<1>(l3[0], l3[1]);
  } else
#endif
  {
    static_assert(std::is_same_v<Middle, no_middle>, "a middle step needs the AVX-512 transpose-reduce");
    return xsimd::haddp(acc);
  }
}

#if defined(__AVX512F__)
/// Transposes the block of w (rows of K floats) at rows 0..15, columns 0..15 (`rows` x `cols` of
/// them valid; the others read as 0 and never touched): column c goes to dst + c * width (the
/// GEMM's weight panels, the conv backward's dz columns).
/// Whole: a full 16 x 16 block (no masks). Each vector is assembled from four 128-bit loads
/// (row i in 128-bit lane i / 4: the inserts run on two ports), then one 4 x 4 transpose inside
/// each 128-bit lane (8 shuffles) gives four whole columns.
template <std::size_t K, bool Whole>
inline void transpose_block(const float* w, float* dst, std::size_t width, std::size_t rows, std::size_t cols) {
  auto chunk = [&](std::size_t i, std::size_t g) -> __m128 {  // row i, columns 4g .. 4g + 3
    if constexpr (Whole) {
      return _mm_loadu_ps(w + i * K + 4 * g);
    } else {
      if (i >= rows) return _mm_setzero_ps();
      const std::size_t n = std::min<std::size_t>(4, cols - 4 * g);
      return _mm512_castps512_ps128(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), w + i * K + 4 * g));
    }
  };
  for (std::size_t g = 0; g < 4 && 4 * g < cols; ++g) {
    __m512 v[4];  // lane L of v[j]: row 4L + j, columns 4g .. 4g + 3
    CTNN_UNROLL for (std::size_t j = 0; j < 4; ++j) {
      v[j] = _mm512_castps128_ps512(chunk(j, g));
      v[j] = _mm512_insertf32x4(v[j], chunk(4 + j, g), 1);
      v[j] = _mm512_insertf32x4(v[j], chunk(8 + j, g), 2);
      v[j] = _mm512_insertf32x4(v[j], chunk(12 + j, g), 3);
    }
    const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(v[0], v[1])),
                  t1 = _mm512_castps_pd(_mm512_unpackhi_ps(v[0], v[1]));
    const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(v[2], v[3])),
                  t3 = _mm512_castps_pd(_mm512_unpackhi_ps(v[2], v[3]));
    const __m512 c[4] = {_mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)), _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)),
                         _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)), _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3))};
    CTNN_UNROLL for (std::size_t j = 0; j < 4; ++j) if (Whole || 4 * g + j < cols)
        _mm512_storeu_ps(dst + (4 * g + j) * width, c[j]);
  }
}
#endif

#if defined(__AVX2__)
/// r[i][j] <- r[j][i]: an 8 x 8 block transposed in registers (24 shuffles).
CTNN_INLINE void transpose8(__m256 r[8]) {
  // t: rows (2j, 2j + 1) interleaved; u: columns (c, c + 4) of four rows; then halves joined
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u[8] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                       _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE),
                       _mm256_shuffle_ps(t4, t6, 0x44), _mm256_shuffle_ps(t4, t6, 0xEE),
                       _mm256_shuffle_ps(t5, t7, 0x44), _mm256_shuffle_ps(t5, t7, 0xEE)};
  CTNN_UNROLL for (std::size_t j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x20);
    r[j + 4] = _mm256_permute2f128_ps(u[j], u[j + 4], 0x31);
  }
}
#endif

/// transpose_matrix's edges, element by element. (Written with a pointer per column: g++ 12 -O3
/// warned of undefined behaviour on the indexed form's "iteration 2^56".)
inline void transpose_elements(const float* src, std::size_t lds, float* dst, std::size_t ldd, std::size_t rows,
                               std::size_t cols) {
  for (std::size_t c = 0; c < cols; ++c) {
    const float* s = src + c;
    float* d = dst + c * ldd;
    for (std::size_t r = 0; r < rows; ++r) d[r] = s[r * lds];
  }
}

/// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: a matrix transposed (the GEMM's
/// weight panels, the conv rows form's [P, O] <-> [O, P] layouts). With AVX2 (AVX-512 too), 8 x 8
/// blocks in registers: 8 loads, 24 shuffles, 8 stores, where element copies would be 64 loads
/// and 64 stores; the edges element by element.
inline void transpose_matrix(const float* src, std::size_t lds, float* dst, std::size_t ldd, std::size_t rows,
                             std::size_t cols) {
  std::size_t r0 = 0;
#if defined(__AVX2__)
  for (; r0 + 8 <= rows; r0 += 8) {
    std::size_t c0 = 0;
    for (; c0 + 8 <= cols; c0 += 8) {
      const float* s = src + r0 * lds + c0;
      __m256 r[8];
      CTNN_UNROLL for (std::size_t i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + i * lds);
      transpose8(r);
      float* d = dst + c0 * ldd + r0;
      CTNN_UNROLL for (std::size_t j = 0; j < 8; ++j) _mm256_storeu_ps(d + j * ldd, r[j]);
    }
    transpose_elements(src + r0 * lds + c0, lds, dst + c0 * ldd + r0, ldd, 8, cols - c0);
  }
#endif
  transpose_elements(src + r0 * lds, lds, dst + r0, ldd, rows - r0, cols);
}

}  // namespace detail

}  // namespace ctnn::kernels
