// Conv2dGeometry: everything a conv kernel knows about its layer, fixed at compile time.
//   x: [N, C, H, W], w: [O, C/groups, KH, KW], y: [N, O, OH, OW]; OH, OW by core/conv_arithmetic.
#pragma once

#include <cstddef>

#include "ctnn/core/conv_arithmetic.hpp"
#include "ctnn/kernels/simd.hpp"

namespace ctnn::kernels {

/// Everything a conv kernel needs to know, fixed at compile time.
struct Conv2dGeometry {
  std::size_t C, H, W;           // input sample [C, H, W]
  std::size_t O, KH, KW;         // weight [O, C/groups, KH, KW]
  std::size_t SH, SW, DH, DW;    // stride, dilation
  std::size_t PT, PB, PL, PR;    // padding top, bottom, left, right
  std::size_t groups;
  PaddingMode mode;

  constexpr std::size_t Hp() const { return H + PT + PB; }
  constexpr std::size_t Wp() const { return W + PL + PR; }
  constexpr std::size_t OH() const { return static_cast<std::size_t>(conv::output_size(H, PT, PB, KH, SH, DH)); }
  constexpr std::size_t OW() const { return static_cast<std::size_t>(conv::output_size(W, PL, PR, KW, SW, DW)); }
  constexpr std::size_t Cg() const { return C / groups; }
  constexpr std::size_t Og() const { return O / groups; }
  constexpr bool padded() const { return PT + PB + PL + PR != 0; }
  constexpr bool pointwise() const { return KH == 1 && KW == 1 && SH == 1 && SW == 1 && !padded(); }
  constexpr bool depthwise() const { return groups == C && groups > 1 && !pointwise(); }
};

}  // namespace ctnn::kernels
