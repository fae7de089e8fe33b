// Linear's GEMM, dot path (small M, or few outputs): w read in its [O, K] layout, one row of x
// times simd_width rows of w as simd_width accumulators, folded by the transpose-reduce into one
// vector of outputs; bias and the epilogue applied before the store. No packing.
#pragma once

#include <cstddef>

#include "ctnn/kernels/gemm/plan.hpp"

namespace ctnn::kernels {

// ---- dot path: w read as [O, K] ------------------------------------------------------------

namespace detail {

/// y[m, o0 .. o0 + OB) for MR rows of x: OB (<= simd_width) rows of w dotted with each row of x
/// (each w vector loaded once for all MR rows), then reduced, one vector of outputs per row.
/// `next` (when Prefetch): the MR rows of x after these, prefetched into L1 meanwhile, since x is
/// often larger than L1 (a hidden layer's output) and a row is only a few vectors.
template <std::size_t K, std::size_t O, class Epilogue, std::size_t OB, std::size_t MR, bool Prefetch>
inline void dot_block(const float* x, const float* next, const float* w, const float* b, float* y, std::size_t o0) {
  constexpr std::size_t Kv = K / simd_width * simd_width, Kt = K - Kv;  // whole vectors; tail
  vfloat acc[MR][simd_width];
  CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) CTNN_UNROLL for (std::size_t r = 0; r < simd_width; ++r) acc[i][r] =
      vfloat(0.0f);
  for (std::size_t k = 0; k < Kv; k += simd_width) {
    vfloat xv[MR];
    if constexpr (Prefetch) CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) __builtin_prefetch(next + i * K + k);
    CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) xv[i] = vfloat::load_unaligned(x + i * K + k);
    CTNN_UNROLL for (std::size_t r = 0; r < OB; ++r) {
      const vfloat wv = vfloat::load_unaligned(w + (o0 + r) * K + k);
      CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) acc[i][r] = fmadd(wv, xv[i], acc[i][r]);
    }
  }
#if CTNN_GEMM_AVX512
  if constexpr (gemm_avx512 && Kt != 0 && Kt <= 4 && OB == simd_width) {
    // A tail of at most 4 columns (K = 20): after two levels of the transpose-reduce each row's
    // partial sums fill one 128-bit lane (l2[r] holds rows r, r+4, r+8, r+12), so the tails of
    // four rows are one vector of 128-bit loads and one FMA instead of four masked ones.
    const auto mask = static_cast<__mmask8>((1u << Kt) - 1u);
    auto tail = [&](std::size_t row) { return _mm_maskz_loadu_ps(mask, w + (o0 + row) * K + Kv); };
    CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) {
      const __m512 xt = _mm512_broadcast_f32x4(_mm_maskz_loadu_ps(mask, x + i * K + Kv));
      const vfloat sum = reduce_rows(acc[i], [&](__m512* l2) {
        CTNN_UNROLL for (std::size_t r = 0; r < 4; ++r) {
          __m512 t = _mm512_castps128_ps512(tail(r));
          t = _mm512_insertf32x4(t, tail(r + 4), 1);
          t = _mm512_insertf32x4(t, tail(r + 8), 2);
          t = _mm512_insertf32x4(t, tail(r + 12), 3);
          l2[r] = _mm512_fmadd_ps(t, xt, l2[r]);
        }
      });
      const vfloat bias = b ? vfloat::load_unaligned(b + o0) : vfloat(0.0f);
      (Epilogue::forward(sum + bias)).store_unaligned(y + i * O + o0);
    }
    return;
  }
#endif
  if constexpr (Kt != 0) {
    vfloat xv[MR];
    CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) xv[i] = load_first(x + i * K + Kv, Kt);
    CTNN_UNROLL for (std::size_t r = 0; r < OB; ++r) {
      const vfloat wv = load_first(w + (o0 + r) * K + Kv, Kt);
      CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i) acc[i][r] = fmadd(wv, xv[i], acc[i][r]);
    }
  }
  const vfloat bias = b ? load_n(b + o0, OB) : vfloat(0.0f);
  CTNN_UNROLL for (std::size_t i = 0; i < MR; ++i)
      store_n(Epilogue::forward(reduce_rows(acc[i]) + bias), y + i * O + o0, OB);
}

/// Rows of x per dot block: about 24 accumulators (MR x OB), so a narrow last block of outputs
/// (O = 10) shares each w vector load among several rows.
template <std::size_t OB>
inline constexpr std::size_t dot_rows = OB <= 8    ? 3
                                        : OB <= 12 ? 2
                                                   : 1;

template <std::size_t K, std::size_t O, class Epilogue, std::size_t MR, bool Prefetch>
inline void dot_rows_all(const float* x, const float* next, const float* w, const float* b, float* y) {
  constexpr std::size_t Ov = O / simd_width * simd_width;
  for (std::size_t o = 0; o < Ov; o += simd_width)
    dot_block<K, O, Epilogue, simd_width, MR, Prefetch>(x, next, w, b, y, o);
  if constexpr (Ov < O) dot_block<K, O, Epilogue, O - Ov, MR, Prefetch>(x, next, w, b, y, Ov);
}

template <std::size_t K, std::size_t O, class Epilogue>
inline void linear_forward_dot(const float* x, const float* w, const float* b, float* y, std::size_t M) {
  constexpr std::size_t MR = dot_rows < O < simd_width ? O : simd_width > ;
  std::size_t m = 0;
  for (; m + 2 * MR <= M; m += MR) dot_rows_all<K, O, Epilogue, MR, true>(x + m * K, x + (m + MR) * K, w, b, y + m * O);
  for (; m + MR <= M; m += MR) dot_rows_all<K, O, Epilogue, MR, false>(x + m * K, nullptr, w, b, y + m * O);
  for (; m < M; ++m) dot_rows_all<K, O, Epilogue, 1, false>(x + m * K, nullptr, w, b, y + m * O);
}

}  // namespace detail

}  // namespace ctnn::kernels
