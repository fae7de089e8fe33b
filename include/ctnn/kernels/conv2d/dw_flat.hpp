// Conv2d weight gradient, flat form (stride 1): dW[O, K] += the correlation of dz, in the flat
// layout (zero off the outputs), with the flat padded input (or the shifted copies): no im2col
// panel; horizontal sums once per chunk of samples by the transpose-reduce.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>

#include "ctnn/kernels/conv2d/flat.hpp"

namespace ctnn::kernels::detail {

/// Register tile of conv_dw_flat: MO rows of dz x NT taps.
constexpr std::size_t flat_dw_rows(std::size_t O) {
  if (vector_registers < 32) return O < 3 ? O : 3;  // 3 x 3 + 3 + 1 of 16
  return O % 6 == 0 ? 6 : O < 4 ? O : 4;
}
constexpr std::size_t flat_dw_taps(std::size_t MO) {
  const std::size_t t = (vector_registers - 1 - MO) / MO;  // MO*NT accumulators + MO dz + 1 input
  return t < 8 ? t : 8;
}

/// dw[o, t0 + t] += sum over `count` samples and all q < F.LQ() of dzf[o, q] * src[off(t0 + t) + q],
/// for MO rows o and NT taps; dzf rows of DS floats (zero where q is not an output), 64-byte aligned.
template <FlatConv F, std::size_t DS, std::size_t MO, std::size_t NT>
inline void flat_dw_tile(const float* dzf, const float* src, float* dw, std::size_t count, std::size_t dz_stride,
                         std::size_t src_stride, std::size_t t0) {
  constexpr std::size_t K = F.K(), NQ = F.NQ();
  static constexpr auto offs = [] {  // where tap k = (c*KH + kh)*KW + kw starts in src
    std::array<std::size_t, K> a{};
    for (std::size_t c = 0; c < F.Cin; ++c)
      for (std::size_t kh = 0; kh < F.KH; ++kh)
        for (std::size_t kw = 0; kw < F.KW; ++kw)
          a[(c * F.KH + kh) * F.KW + kw] = c * F.CS + kh * F.DH * F.LD + kw * F.DW;
    return a;
  }();
  vfloat acc[MO][NT];
  CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o) CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) acc[o][t] =
      vfloat(0.0f);
  std::size_t off[NT];
  CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) off[t] = offs[t0 + t];
  for (std::size_t s = 0; s < count; ++s) {
    const float* d = dzf + s * dz_stride;
    const float* x = src + s * src_stride;
    for (std::size_t j = 0; j < NQ * simd_width; j += simd_width) {
      vfloat dv[MO];
      CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o) dv[o] = vfloat::load_aligned(d + o * DS + j);
      CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) {
        const vfloat xv = vfloat::load_unaligned(x + off[t] + j);
        CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o) acc[o][t] = fmadd(dv[o], xv, acc[o][t]);
      }
    }
  }
  // The horizontal sums, simd_width accumulators at a time by a transpose-reduce (a third of
  // the instructions of one hadd each: with a chunk of few samples they are not negligible).
  constexpr std::size_t A = MO * NT;
  alignas(64) float sums[round_up(A, simd_width)];
  CTNN_UNROLL for (std::size_t a0 = 0; a0 < A; a0 += simd_width) {
    vfloat v[simd_width];
    CTNN_UNROLL for (std::size_t i = 0; i < simd_width; ++i) v[i] =
        a0 + i < A ? acc[(a0 + i) / NT][(a0 + i) % NT] : vfloat(0.0f);
    reduce_rows(v).store_aligned(sums + a0);
  }
  CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o) CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t)
      dw[o * K + t0 + t] += sums[o * NT + t];
}

template <FlatConv F, std::size_t DS, std::size_t MO>
inline void flat_dw_rows(const float* dzf, const float* src, float* dw, std::size_t count, std::size_t dz_stride,
                         std::size_t src_stride) {
  constexpr std::size_t K = F.K(), NT = std::min(flat_dw_taps(MO), K);
  std::size_t t = 0;
  for (; t + NT <= K; t += NT) flat_dw_tile<F, DS, MO, NT>(dzf, src, dw, count, dz_stride, src_stride, t);
  if constexpr (K % NT != 0) flat_dw_tile<F, DS, MO, K % NT>(dzf, src, dw, count, dz_stride, src_stride, t);
}

/// dw[O, K] += sum over `count` samples of the correlation of dzf [O][DS] (flat, zero off the output)
/// with src (the padded input, flat): the weight gradient without an im2col panel; the horizontal
/// sums happen once per chunk of samples, not per sample.
template <FlatConv F, std::size_t DS>
void conv_dw_flat(const float* dzf, const float* src, float* dw, std::size_t count, std::size_t dz_stride,
                  std::size_t src_stride) {
  static_assert(DS >= F.LQ() && DS % 16 == 0);
  constexpr std::size_t K = F.K(), MO = flat_dw_rows(F.O);
  std::size_t o = 0;
  for (; o + MO <= F.O; o += MO) flat_dw_rows<F, DS, MO>(dzf + o * DS, src, dw + o * K, count, dz_stride, src_stride);
  if constexpr (F.O % MO != 0)
    flat_dw_rows<F, DS, F.O % MO>(dzf + o * DS, src, dw + o * K, count, dz_stride, src_stride);
}

}  // namespace ctnn::kernels::detail
