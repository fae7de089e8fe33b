// Elementwise operations: the activations, each as one op usable three ways —
// as its own pass over a buffer, as the epilogue of a GEMM/conv kernel (fusion),
// and (backward) as the derivative expressed through the forward output y.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <type_traits>
#include <utility>
#include "ctnn/kernels/simd.hpp"

namespace ctnn::kernels {

using vfloat = xsimd::batch<float>;
inline constexpr std::size_t simd_width = vfloat::size;

/// n rounded up to a multiple of `to` (buffer and panel sizes in whole vectors or cache lines).
inline constexpr std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// ---- Partial vectors: the tails of rows that are not a whole number of vectors ----------------
// With AVX-512, masked loads and stores (which never touch memory outside the mask); otherwise
// through a small aligned buffer.
namespace detail {
/// The first n (< simd_width) floats at p, the other lanes 0; never reads past p + n.
inline vfloat load_first(const float* p, std::size_t n) {
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
#endif
  alignas(64) float tmp[simd_width] = {};
  std::memcpy(tmp, p, n * sizeof(float));
  return vfloat::load_aligned(tmp);
}
/// acc plus p[l] in the lanes l in [lo, hi) (clipped to the vector); the other lanes of p are not
/// read with AVX-512 (masked), read but not added otherwise.
inline vfloat add_lanes(vfloat acc, const float* p, std::ptrdiff_t lo, std::ptrdiff_t hi) {
  lo = std::max<std::ptrdiff_t>(lo, 0);
  hi = std::min<std::ptrdiff_t>(hi, simd_width);
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) {
    const auto mask = static_cast<__mmask16>((((1u << hi) - 1u) >> lo) << lo);
    return _mm512_mask_add_ps(acc, mask, acc, _mm512_maskz_loadu_ps(mask, p));
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
inline void store_first(vfloat v, float* p, std::size_t n) {
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
/// v with the lanes from n (< simd_width) on zeroed.
inline vfloat keep_first(vfloat v, std::size_t n) {
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) return _mm512_maskz_mov_ps(static_cast<__mmask16>((1u << n) - 1u), v);
#endif
  alignas(64) float tmp[simd_width];
  v.store_aligned(tmp);
  std::fill(tmp + n, tmp + simd_width, 0.0f);
  return vfloat::load_aligned(tmp);
}
/// min(n, simd_width) floats at p: a plain load when that is a whole vector, else load_first.
inline vfloat load_n(const float* p, std::size_t n) {
  return n >= simd_width ? vfloat::load_unaligned(p) : load_first(p, n);
}
/// Stores the first min(n, simd_width) lanes of v at p.
inline void store_n(vfloat v, float* p, std::size_t n) {
  if (n >= simd_width) v.store_unaligned(p);
  else store_first(v, p, n);
}

// ---- Horizontal sums of simd_width vectors at once (dot products that end in registers) ----

#if defined(__AVX512F__)
/// One level of the transpose-reduce: lanes in chunks of G floats; chunk pair (2i, 2i+1) of the
/// result holds (a_2i + a_2i+1, b_2i + b_2i+1). One blend, one two-source permute, one add.
template <int G>
inline __m512 fold_pair(__m512 a, __m512 b) {
  alignas(64) static constexpr std::int32_t idx[16] = {
#define CTNN_FOLD_IDX(l) (((l) / G) % 2 == 0 ? (l) + G : 16 + (l) - G)
      CTNN_FOLD_IDX(0),  CTNN_FOLD_IDX(1),  CTNN_FOLD_IDX(2),  CTNN_FOLD_IDX(3),
      CTNN_FOLD_IDX(4),  CTNN_FOLD_IDX(5),  CTNN_FOLD_IDX(6),  CTNN_FOLD_IDX(7),
      CTNN_FOLD_IDX(8),  CTNN_FOLD_IDX(9),  CTNN_FOLD_IDX(10), CTNN_FOLD_IDX(11),
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
inline vfloat reduce_rows(vfloat* acc, [[maybe_unused]] Middle middle = {}) {
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
    const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(v[0], v[1])), t1 = _mm512_castps_pd(_mm512_unpackhi_ps(v[0], v[1]));
    const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(v[2], v[3])), t3 = _mm512_castps_pd(_mm512_unpackhi_ps(v[2], v[3]));
    const __m512 c[4] = {_mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)), _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)),
                         _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)), _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3))};
    CTNN_UNROLL for (std::size_t j = 0; j < 4; ++j)
      if (Whole || 4 * g + j < cols) _mm512_storeu_ps(dst + (4 * g + j) * width, c[j]);
  }
}
#endif

}  // namespace detail

/// y = x
struct identity_op {
  static vfloat forward(vfloat x) { return x; }
  static float forward(float x) { return x; }
  /// dL/dx given y and dL/dy
  static vfloat backward(vfloat /*y*/, vfloat dy) { return dy; }
  static float backward(float /*y*/, float dy) { return dy; }
};

/// y = max(x, 0)
struct relu_op {
  static vfloat forward(vfloat x) { return xsimd::max(x, vfloat(0.0f)); }
  static float forward(float x) { return x > 0.0f ? x : 0.0f; }
  static vfloat backward(vfloat y, vfloat dy) { return xsimd::select(y > vfloat(0.0f), dy, vfloat(0.0f)); }
  static float backward(float y, float dy) { return y > 0.0f ? dy : 0.0f; }
};

/// exp(S x) for float32 vectors, S = +1 (exp_approx) or -1 (sigmoid's e^-x: the sign folded into
/// the range reduction), within 1 ulp of std::exp where the result is a normal float (S x in
/// [-87.3, 88.7]; x is clamped to that range, so it never returns inf or a denormal; NaN stays
/// NaN). S x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact product), e^r by a
/// degree-6 polynomial (a minimax fit of relative error 1.8e-8, tools/fit_exp_poly.py; Horner,
/// one FMA a degree), then times 2^n: one vscalefps with AVX-512, else the exponent bits built in
/// an integer vector (2^n as 2^(n/2) 2^(n - n/2), so the field never overflows). About 10
/// FMA-port instructions with AVX-512; xsimd::exp's special-case selects cost as much again.
template <int S = 1>
inline vfloat exp_signed(vfloat x) {
  static_assert(S == 1 || S == -1);
  constexpr float hi = S > 0 ? 88.72283f : 87.33654f, lo = S > 0 ? -87.33654f : -88.72283f;
  // clamp; a NaN passes through (x86 min/max return their second operand when one is NaN)
  x = xsimd::min(vfloat(hi), xsimd::max(vfloat(lo), x));
  const vfloat n = xsimd::nearbyint(x * vfloat(S * 1.44269504088896341f));
  // r = S x - n ln2, ln2 = 0.693359375 - 2.12194440e-4 (the first part exact in n)
  vfloat r = S > 0 ? xsimd::fnma(n, vfloat(0.693359375f), x) : xsimd::fnms(n, vfloat(0.693359375f), x);
  r = xsimd::fma(n, vfloat(2.12194440e-4f), r);
  vfloat p(1.3846602523699403e-3f);
  p = xsimd::fma(p, r, vfloat(8.374931290745735e-3f));
  p = xsimd::fma(p, r, vfloat(4.166799038648605e-2f));
  p = xsimd::fma(p, r, vfloat(1.666642129421234e-1f));
  p = xsimd::fma(p, r, vfloat(4.999999403953552e-1f));
  p = xsimd::fma(p, r, vfloat(1.0f));
  p = xsimd::fma(p, r, vfloat(1.0f));
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) return _mm512_scalef_ps(p, n);  // p * 2^n, n in [-126, 128]
#endif
  using ibatch = xsimd::batch<std::int32_t>;
  const ibatch ni = xsimd::nearbyint_as_int(n);
  const ibatch half = ni >> 1;
  const vfloat s1 = xsimd::bitwise_cast<vfloat>((half + ibatch(127)) << 23);
  const vfloat s2 = xsimd::bitwise_cast<vfloat>((ni - half + ibatch(127)) << 23);
  return p * s1 * s2;
}
inline vfloat exp_approx(vfloat x) { return exp_signed<1>(x); }

/// 1 / d for d >= 1 (finite): the hardware's approximate reciprocal (14 bits on AVX-512, 12 on
/// AVX) and one Newton step (28 / 24 bits): a few cycles instead of a division's 10-16.
inline vfloat reciprocal_ge1(vfloat d) {
  const vfloat r = xsimd::reciprocal(d);
  return xsimd::fma(r, xsimd::fnma(d, r, vfloat(1.0f)), r);  // r + r (1 - d r)
}

/// y = 1 / (1 + exp(-x))
struct sigmoid_op {
  static vfloat forward(vfloat x) { return reciprocal_ge1(vfloat(1.0f) + exp_signed<-1>(x)); }
  static float forward(float x) { return 1.0f / (1.0f + std::exp(-x)); }
  static vfloat backward(vfloat y, vfloat dy) { return dy * y * (vfloat(1.0f) - y); }
  static float backward(float y, float dy) { return dy * y * (1.0f - y); }
};

/// y = tanh(x)
struct tanh_op {
  static vfloat forward(vfloat x) { return xsimd::tanh(x); }
  static float forward(float x) { return std::tanh(x); }
  static vfloat backward(vfloat y, vfloat dy) { return dy * (vfloat(1.0f) - y * y); }
  static float backward(float y, float dy) { return dy * (1.0f - y * y); }
};

namespace detail {
/// The last n % simd_width elements through one vector (so every element sees the vector code,
/// the same in a tail as anywhere else): f(loaded vectors...) -> vfloat, from and to small buffers.
template <class F, class... Src>
inline void eltwise_tail(float* out, std::size_t count, F&& f, const Src*... src) {
  alignas(64) float in[sizeof...(Src)][simd_width] = {};
  std::size_t a = 0;
  ((std::copy_n(src, count, in[a++])), ...);
  alignas(64) float res[simd_width];
  a = 0;
  [&]<std::size_t... I>(std::index_sequence<I...>) { f(vfloat::load_aligned(in[I])...).store_aligned(res); }(
      std::index_sequence_for<Src...>{});
  std::copy_n(res, count, out);
}
}  // namespace detail

/// y[i] = Op(x[i]) for i < n; x and y may be the same buffer.
template <class Op>
void eltwise_forward(const float* x, float* y, std::size_t n) {
  const std::size_t whole = n - n % simd_width;
  for (std::size_t i = 0; i < whole; i += simd_width) Op::forward(vfloat::load_unaligned(x + i)).store_unaligned(y + i);
  if (whole < n) detail::eltwise_tail(y + whole, n - whole, [](vfloat v) { return Op::forward(v); }, x + whole);
}

/// dx[i] = Op'(y[i]) * dy[i]; dx and dy may be the same buffer.
template <class Op>
void eltwise_backward(const float* y, const float* dy, float* dx, std::size_t n) {
  const std::size_t whole = n - n % simd_width;
  for (std::size_t i = 0; i < whole; i += simd_width)
    Op::backward(vfloat::load_unaligned(y + i), vfloat::load_unaligned(dy + i)).store_unaligned(dx + i);
  if (whole < n)
    detail::eltwise_tail(dx + whole, n - whole, [](vfloat a, vfloat b) { return Op::backward(a, b); }, y + whole,
                         dy + whole);
}

}  // namespace ctnn::kernels
