// Padding exactly as F.pad (zeros / reflect / replicate / circular), and its adjoint.
//   pad2d:        xp[C, Hp, LDp] = F.pad(x[C, H, W], (PL, PR, PT, PB), mode)
//   unpad2d_add:  dx[C, H, W] += the padded gradient dxp folded back onto the cells it copied
// Used by every conv form that reads a padded input. (Pooling pads with -inf or skips cells
// instead: kernels/pool2d.hpp.)
#pragma once

#include <algorithm>
#include <cstddef>

#include "ctnn/core/conv_arithmetic.hpp"
#include "ctnn/kernels/simd.hpp"

namespace ctnn::kernels {

// ---- Padding, exactly as F.pad: constant / reflect / replicate / circular ---------------------

namespace detail {
/// Source index of padded position i (i counts from -before) along an axis of extent n;
/// -1 means "a constant".
template <PaddingMode M>
constexpr std::ptrdiff_t pad_source(std::ptrdiff_t i, std::ptrdiff_t n) {
  if (i >= 0 && i < n) return i;
  if constexpr (M == PaddingMode::zeros) return -1;
  else if constexpr (M == PaddingMode::reflect) return i < 0 ? -i : 2 * (n - 1) - i;
  else if constexpr (M == PaddingMode::replicate) return i < 0 ? 0 : n - 1;
  else return i < 0 ? i + n : i - n;  // circular (padding <= n: one wrap)
}
}  // namespace detail

/// xp[c, Hp, LDp] = F.pad(x[c, H, W], (PL, PR, PT, PB), mode, value); row stride LDp >= W + PL + PR.
/// Padding beyond what reflect/circular allow is rejected at compile time by the layers.
template <std::size_t C, std::size_t H, std::size_t W, std::size_t PT, std::size_t PB, std::size_t PL, std::size_t PR,
          std::size_t LDp, PaddingMode M>
void pad2d(const float* x, float* xp, float value = 0.0f) {
  constexpr std::size_t Hp = H + PT + PB, Wp = W + PL + PR;
  static_assert(LDp >= Wp);
  for (std::size_t c = 0; c < C; ++c) {
    const float* xc = x + c * H * W;
    float* pc = xp + c * Hp * LDp;
    for (std::size_t r = 0; r < Hp; ++r) {
      float* row = pc + r * LDp;
      const std::ptrdiff_t sr =
          detail::pad_source<M>(static_cast<std::ptrdiff_t>(r) - static_cast<std::ptrdiff_t>(PT), H);
      if (sr < 0) {
        std::fill_n(row, Wp, value);
        continue;
      }
      const float* src = xc + static_cast<std::size_t>(sr) * W;
      for (std::size_t j = 0; j < PL; ++j) {
        const auto s = detail::pad_source<M>(static_cast<std::ptrdiff_t>(j) - static_cast<std::ptrdiff_t>(PL), W);
        row[j] = s < 0 ? value : src[s];
      }
      detail::copy_row<W>(row + PL, src);
      for (std::size_t j = 0; j < PR; ++j) {
        const auto s = detail::pad_source<M>(static_cast<std::ptrdiff_t>(W + j), W);
        row[PL + W + j] = s < 0 ? value : src[s];
      }
    }
  }
}

/// The adjoint of pad2d: dx[c, H, W] = sum of dxp[c, Hp, LDp] over the padded cells copied from
/// each input cell (its own place, and reflect/replicate/circular copies; zeros: constants drop).
template <std::size_t C, std::size_t H, std::size_t W, std::size_t PT, std::size_t PB, std::size_t PL, std::size_t PR,
          std::size_t LDp, PaddingMode M>
void unpad2d_add(const float* dxp, float* dx) {
  constexpr std::size_t Hp = H + PT + PB;
  std::fill_n(dx, C * H * W, 0.0f);
  for (std::size_t c = 0; c < C; ++c) {
    float* dc = dx + c * H * W;
    const float* pc = dxp + c * Hp * LDp;
    for (std::size_t r = 0; r < Hp; ++r) {
      const std::ptrdiff_t sr =
          detail::pad_source<M>(static_cast<std::ptrdiff_t>(r) - static_cast<std::ptrdiff_t>(PT), H);
      if (sr < 0) continue;
      const float* row = pc + r * LDp;
      float* dst = dc + static_cast<std::size_t>(sr) * W;
      for (std::size_t j = 0; j < PL; ++j) {
        const auto s = detail::pad_source<M>(static_cast<std::ptrdiff_t>(j) - static_cast<std::ptrdiff_t>(PL), W);
        if (s >= 0) dst[s] += row[j];
      }
      detail::add_to<W>(dst, row + PL);
      for (std::size_t j = 0; j < PR; ++j) {
        const auto s = detail::pad_source<M>(static_cast<std::ptrdiff_t>(W + j), W);
        if (s >= 0) dst[s] += row[PL + W + j];
      }
    }
  }
}

}  // namespace ctnn::kernels
