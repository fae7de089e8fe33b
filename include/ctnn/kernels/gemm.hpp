// GEMM with a fused epilogue: the kernel under Linear (and, later, 1x1 and im2col convolution).
//
//   y[m, o] = Epilogue(sum_k x[m, k] * w[o, k] + b[o])      x: [M, K], w: [O, K], b: [O], y: [M, O]
//
// K and O are compile-time extents (they come from the layer's shape); M is the run-time
// row count (batch size times any leading sample dimensions). w is packed once per call into
// a [K, O_pad] panel (O_pad = O rounded up to the SIMD width, zero-filled) so the inner loop
// broadcasts x[m, k] and multiplies whole vectors of w^T; the bias and the activation are
// applied to the accumulators before they are stored, so Linear + ReLU is one pass over y.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "ctnn/kernels/eltwise.hpp"

namespace ctnn::kernels {

inline constexpr std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

/// Scratch floats linear_forward needs for a K x O weight (the packed panel and the padded bias).
template <std::size_t K, std::size_t O>
inline constexpr std::size_t linear_scratch_floats = (K + 1) * round_up(O, simd_width);

namespace detail {

/// MR rows x NV vectors of y, accumulated in registers over all K.
template <std::size_t K, std::size_t O, class Epilogue, std::size_t MR, std::size_t NV>
inline void gemm_tile(const float* x, const float* panel, const float* bias, float* y, std::size_t j) {
  constexpr std::size_t Opad = round_up(O, simd_width);
  vfloat acc[MR][NV];
  for (std::size_t r = 0; r < MR; ++r)
    for (std::size_t v = 0; v < NV; ++v) acc[r][v] = vfloat::load_unaligned(bias + j + v * simd_width);
  for (std::size_t k = 0; k < K; ++k) {
    vfloat wv[NV];
    for (std::size_t v = 0; v < NV; ++v) wv[v] = vfloat::load_unaligned(panel + k * Opad + j + v * simd_width);
    for (std::size_t r = 0; r < MR; ++r) {
      const vfloat xv(x[r * K + k]);
      for (std::size_t v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(xv, wv[v], acc[r][v]);
    }
  }
  for (std::size_t r = 0; r < MR; ++r) {
    for (std::size_t v = 0; v < NV; ++v) {
      const vfloat out = Epilogue::forward(acc[r][v]);
      const std::size_t col = j + v * simd_width;
      float* dst = y + r * O + col;
      if (col + simd_width <= O) {
        out.store_unaligned(dst);
      } else {  // the last, partial vector of a row
        alignas(64) float tmp[simd_width];
        out.store_aligned(tmp);
        std::memcpy(dst, tmp, (O - col) * sizeof(float));
      }
    }
  }
}

template <std::size_t K, std::size_t O, class Epilogue, std::size_t MR>
inline void gemm_rows(const float* x, const float* panel, const float* bias, float* y) {
  constexpr std::size_t Opad = round_up(O, simd_width);
  constexpr std::size_t NV = 2;  // vectors of y per tile
  std::size_t j = 0;
  for (; j + NV * simd_width <= Opad; j += NV * simd_width) gemm_tile<K, O, Epilogue, MR, NV>(x, panel, bias, y, j);
  if constexpr (Opad % (NV * simd_width) != 0) gemm_tile<K, O, Epilogue, MR, 1>(x, panel, bias, y, j);
}

}  // namespace detail

/// y = Epilogue(x w^T + b) for M rows. `b` may be null (no bias). `scratch` holds
/// linear_scratch_floats<K, O> floats.
template <std::size_t K, std::size_t O, class Epilogue = identity_op>
void linear_forward(const float* x, const float* w, const float* b, float* y, std::size_t M, float* scratch) {
  constexpr std::size_t Opad = round_up(O, simd_width);
  float* panel = scratch;          // [K, Opad] = w^T, zero-padded
  float* bias = scratch + K * Opad;  // [Opad]
  for (std::size_t k = 0; k < K; ++k) {
    float* row = panel + k * Opad;
    for (std::size_t o = 0; o < O; ++o) row[o] = w[o * K + k];
    std::fill(row + O, row + Opad, 0.0f);
  }
  if (b) std::copy_n(b, O, bias);
  else std::fill_n(bias, O, 0.0f);
  std::fill(bias + O, bias + Opad, 0.0f);

  constexpr std::size_t MR = 4;  // rows of y per tile
  std::size_t m = 0;
  for (; m + MR <= M; m += MR) detail::gemm_rows<K, O, Epilogue, MR>(x + m * K, panel, bias, y + m * O);
  for (; m < M; ++m) detail::gemm_rows<K, O, Epilogue, 1>(x + m * K, panel, bias, y + m * O);
}

}  // namespace ctnn::kernels
