// Conv2d forward, shifted flat form (stride 1): KW compact copies of each input channel, so the
// flat tiles run a KH x 1 kernel on rows exactly OW wide and every lane is an output.
//   xs[c*KW + kw, ih, ow] = xp[c, ih, ow + kw*DW]           [C*KW, Hp, OW]
#pragma once

#include <cstddef>

#include "ctnn/kernels/conv2d/geometry.hpp"
#include "ctnn/kernels/simd.hpp"

namespace ctnn::kernels {

// ---- The shifted flat form ------------------------------------------------------------------
//
// The flat form computes LD - OW dropped columns per row: 4 of 14 for LeNet's second conv (10x10
// out of 14x14), 29% of its FMAs. The shifted form copies each input channel KW times, copy kw
// holding the columns kw*DW .. kw*DW + OW of every (padded) row, compact:
//   xs[c*KW + kw, ih, ow] = xp[c, ih, ow + kw*DW]           [C*KW, Hp, OW]
// which is a flat convolution of C*KW channels with a KH x 1 kernel and rows of exactly OW floats:
//   y_flat[o, q] = sum_{c, kw, kh} w[o, c, kh, kw] * xs_flat[(c*KW + kw)*Hp*OW + kh*DH*OW + q]
// Every lane is an output; the price is the copy (KW times the input, and in the backward a
// second, compact copy of dz), paid when the vector FMAs saved are more than 2 times (forward) or
// 4 times (weight gradient) the vectors copied and the copies are small enough to stay in cache
// (conv2d_plan::shifted_pays). Measured on LeNet (batch 256): the second conv (saving 4.6 times
// its copy) ran its forward about 10% faster and its weight gradient 6-25% faster (Cascade Lake);
// the first (3.75 times) runs its forward 10% faster and its weight gradient 4% slower (Zen 4).

namespace detail {

/// xs = the shifted copies of the (padded) input src [C, Hx, LDx] for G: [C*KW, Hx, OW]. Rows are
/// whole-vector stores in increasing order (a row's spill is overwritten by the next row), so xs
/// needs simd_width floats of room after its last row; the loads are masked at each row's end, so
/// what spills is zeros.
template <Conv2dGeometry G, std::size_t Hx, std::size_t LDx>
inline void shift_columns(const float* src, float* xs) {
  constexpr std::size_t OW = G.OW();
  for (std::size_t c = 0; c < G.C; ++c)
    for (std::size_t kw = 0; kw < G.KW; ++kw)
      for (std::size_t ih = 0; ih < Hx; ++ih) {
        const float* s = src + (c * Hx + ih) * LDx + kw * G.DW;
        float* d = xs + ((c * G.KW + kw) * Hx + ih) * OW;
        CTNN_UNROLL for (std::size_t c0 = 0; c0 < OW; c0 += simd_width) {
          const vfloat v = c0 + simd_width <= OW ? vfloat::load_unaligned(s + c0) : load_first(s + c0, OW - c0);
          v.store_unaligned(d + c0);
        }
      }
}

/// The tap of w [.., Cg, KH, KW], (c*KH + kh)*KW + kw, that the shifted form's tap k = (c*KW + kw)*KH + kh is.
template <Conv2dGeometry G>
constexpr std::size_t shifted_source(std::size_t k) {
  const std::size_t kh = k % G.KH, ckw = k / G.KH;
  return (ckw / G.KW * G.KH + kh) * G.KW + ckw % G.KW;
}

}  // namespace detail

}  // namespace ctnn::kernels
