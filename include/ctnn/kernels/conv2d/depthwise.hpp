// Conv2d forward, depthwise form (groups == C): a direct convolution per output channel,
// vectorized along ow (strided loads when SW > 1), bias and Op applied before the store.
//   y[o] = Op(b[o] + sum_{kh, kw} w[o, 0, kh, kw] * xp[o / M, oh*SH + kh*DH, ow*SW + kw*DW]),  M = O / C
#pragma once

#include <cstddef>
#include <cstring>

#include "ctnn/kernels/conv2d/geometry.hpp"
#include "ctnn/kernels/eltwise.hpp"

namespace ctnn::kernels {

// ---- Depthwise: one channel at a time, vectorized along ow ----------------------------------

/// y[o] = Op(b[o] + sum_{kh,kw} w[o, 0, kh, kw] * xp[o / M, ...]) with M = O / C output channels per input channel.
/// xp: the padded input, row stride LDx, readable SW * simd_width floats past its end.
template <Conv2dGeometry G, std::size_t LDx, bool Bias, class Op>
void depthwise_conv(const float* xp, const float* w, const float* b, float* y) {
  constexpr std::size_t OH = G.OH(), OW = G.OW(), M = G.O / G.C, Hp = G.Hp();
  constexpr std::size_t KK = G.KH * G.KW;
  for (std::size_t o = 0; o < G.O; ++o) {
    const float* xc = xp + (o / M) * Hp * LDx;
    const float* wo = w + o * KK;
    float* yo = y + o * OH * OW;
    const vfloat bias(Bias ? b[o] : 0.0f);
    for (std::size_t oh = 0; oh < OH; ++oh) {
      const float* xr = xc + oh * G.SH * LDx;
      for (std::size_t ow = 0; ow < OW; ow += simd_width) {
        vfloat acc = bias;
        for (std::size_t kh = 0; kh < G.KH; ++kh)
          for (std::size_t kw = 0; kw < G.KW; ++kw)
            acc = fmadd(vfloat(wo[kh * G.KW + kw]),
                        detail::load_strided<G.SW>(xr + kh * G.DH * LDx + ow * G.SW + kw * G.DW), acc);
        const vfloat out = Op::forward(acc);
        float* dst = yo + oh * OW + ow;
        if (ow + simd_width <= OW) {
          out.store_unaligned(dst);
        } else {
          alignas(64) float tmp[simd_width];
          out.store_aligned(tmp);
          std::memcpy(dst, tmp, (OW - ow) * sizeof(float));
        }
      }
    }
  }
}

}  // namespace ctnn::kernels
