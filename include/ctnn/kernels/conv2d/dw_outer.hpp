// Conv2d weight gradient, outer-product form (stride 1, Og a multiple of the vector width):
// vectors of output channels times broadcast inputs over the valid outputs only,
//   dW^T[k][o] += xp[c, oh + kh*DH, ow + kw*DW] * dzT[p][o]
// accumulated over the whole batch: no dropped columns, no horizontal sums.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>

#include "ctnn/kernels/conv2d/geometry.hpp"
#include "ctnn/kernels/simd.hpp"

namespace ctnn::kernels::detail {

/// The outer weight gradient's register tile: NV vectors of output channels (an o-block) times NT
/// taps of one input channel, NT * NV accumulators, NV loaded dz vectors, broadcasts folded into the FMAs.
template <Conv2dGeometry G>
struct outer_dw_shape {
  static constexpr std::size_t vectors = G.Og() / simd_width;  // per group
  static constexpr std::size_t NV = vectors <= 4       ? vectors
                                    : vectors % 4 == 0 ? 4
                                    : vectors % 3 == 0 ? 3
                                    : vectors % 2 == 0 ? 2
                                                       : 1;
  static constexpr std::size_t KK = G.KH * G.KW;
  static constexpr std::size_t most = (vector_registers - 2 - NV) / NV;  // accumulators per vector of o
  static constexpr std::size_t tap_groups = (KK + most - 1) / most;
  static constexpr std::size_t NT = (KK + tap_groups - 1) / tap_groups;  // taps per tile, balanced
  // output rows per block: the block's dz columns (NV vectors a row) stay in L1 across the taps
  static constexpr std::size_t rows =
      std::clamp<std::size_t>(24576 / (G.OW() * NV * simd_width * sizeof(float)), 1, G.OH());
};

/// dwt[T0 + t][v] += sum over output rows [oh0, oh1) and all ow of xc[oh*LDs + ow + off(T0 + t)] * dzt[oh*OW + ow][v]
/// for NT taps (T0 + t = kh*KW + kw of one input channel, off = kh*DH*LDs + kw*DW) and NV vectors of
/// output channels; xc: the channel, rows of LDs floats; dzt: rows of O floats, at the o-block;
/// dwt: rows of Og floats, at (the channel's first tap, the o-block).
template <Conv2dGeometry G, std::size_t LDs, std::size_t T0, std::size_t NT, std::size_t NV>
inline void outer_dw_tile(const float* xc, const float* dzt, float* dwt, std::size_t oh0, std::size_t oh1) {
  constexpr std::size_t OW = G.OW(), O = G.O, Og = G.Og();
  static constexpr auto offs = [] {
    std::array<std::size_t, NT> a{};
    for (std::size_t t = 0; t < NT; ++t) a[t] = (T0 + t) / G.KW * G.DH * LDs + (T0 + t) % G.KW * G.DW;
    return a;
  }();
  vfloat acc[NT][NV];
  CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[t][v] =
      vfloat::load_aligned(dwt + (T0 + t) * Og + v * simd_width);
  for (std::size_t oh = oh0; oh < oh1; ++oh) {
    const float* xr = xc + oh * LDs;
    const float* dr = dzt + oh * OW * O;
    for (std::size_t ow = 0; ow < OW; ++ow) {
      vfloat d[NV];
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) d[v] = vfloat::load_aligned(dr + ow * O + v * simd_width);
      CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) {
        const vfloat xv(xr[ow + offs[t]]);
        CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[t][v] = fmadd(xv, d[v], acc[t][v]);
      }
    }
  }
  CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[t][v]
      .store_aligned(dwt + (T0 + t) * Og + v * simd_width);
}

/// dwt[g][k][o] += the weight gradient of one sample, outer form: src its (padded) input [C][.., LDs]
/// with channels of CSs floats, dzt [P][O] its dz columns; dwt: [groups][K][Og] (dW transposed per group).
template <Conv2dGeometry G, std::size_t LDs, std::size_t CSs>
void conv_dw_outer(const float* src, const float* dzt, float* dwt) {
  using shape = outer_dw_shape<G>;
  constexpr std::size_t Og = G.Og(), Cg = G.Cg(), KK = shape::KK, NT = shape::NT, NV = shape::NV, K = Cg * KK;
  for (std::size_t oh0 = 0; oh0 < G.OH(); oh0 += shape::rows) {
    const std::size_t oh1 = std::min(G.OH(), oh0 + shape::rows);
    for (std::size_t g = 0; g < G.groups; ++g)
      for (std::size_t ob = 0; ob < Og; ob += NV * simd_width)
        for (std::size_t c = 0; c < Cg; ++c) {
          const float* xc = src + (g * Cg + c) * CSs;
          const float* dzb = dzt + g * Og + ob;
          float* dwc = dwt + (g * K + c * KK) * Og + ob;
          [&]<std::size_t... I>(std::index_sequence<I...>) {
            (outer_dw_tile<G, LDs, I * NT, std::min(NT, KK - I * NT), NV>(xc, dzb, dwc, oh0, oh1), ...);
          }(std::make_index_sequence<shape::tap_groups>{});
        }
  }
}

}  // namespace ctnn::kernels::detail
