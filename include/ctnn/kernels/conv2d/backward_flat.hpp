// Conv2d backward, the stride-1 path: dz built once per sample in the layouts its consumers read
// (slots for the flat forms, compact rows, transposed columns for the outer form), then the weight
// gradient (flat, shifted or outer) and the input gradient (flat full correlation or col2im),
// a chunk of samples at a time (see conv2d_backward_plan in plan.hpp).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "ctnn/kernels/conv2d/plan.hpp"
#include "ctnn/kernels/conv2d/padding.hpp"
#include "ctnn/kernels/conv2d/shifted.hpp"
#include "ctnn/kernels/conv2d/dw_flat.hpp"
#include "ctnn/kernels/conv2d/dw_outer.hpp"
#include "ctnn/kernels/conv2d/backward_gemm.hpp"

namespace ctnn::kernels {

namespace detail {

/// The flat path's dz for one sample (see conv2d_backward_plan), every float of each chosen layout
/// written: in the slots (d) `lead` zeros, then slot o gets dz[o, oh, ow] = Op'(y) * dy at
/// oh*LDx + ow and zeros elsewhere; in the compact rows (dzc) row o of DSc floats gets it at
/// oh*OW + ow, zeros from P on; db[o] += the dz sum. Rows are written as whole vectors (zero past
/// OW) in increasing order, so the zeros a row's last vector spills into the next row are
/// overwritten by that row.
template <Conv2dGeometry G, bool Bias, class Op, Conv2dForms Forms>
inline void flat_dz_rows(const float* y, const float* dy, [[maybe_unused]] float* d, [[maybe_unused]] float* dzc,
                         float* db) {
  using plan = conv2d_backward_plan<G, Forms>;
  constexpr std::size_t OH = G.OH(), OW = G.OW(), LDx = plan::LDx, CSz = plan::CSz;
  constexpr std::size_t row_vectors_end = round_up(OW, simd_width);  // where a row's vector stores end
  constexpr bool act = !std::is_same_v<Op, identity_op>;
  if constexpr (plan::slots) std::fill_n(d, plan::lead, 0.0f);
  for (std::size_t o = 0; o < G.O; ++o) {
    [[maybe_unused]] float* slot = plan::slots ? d + plan::lead + o * CSz : nullptr;
    const float* gs = dy + o * OH * OW;
    [[maybe_unused]] const float* ys = act ? y + o * OH * OW : nullptr;
    vfloat sum(0.0f);
    for (std::size_t oh = 0; oh < OH; ++oh) {
      CTNN_UNROLL for (std::size_t c0 = 0; c0 < OW; c0 += simd_width) {
        const std::size_t i = oh * OW + c0;
        vfloat v;
        if (c0 + simd_width <= OW) {
          v = vfloat::load_unaligned(gs + i);
          if constexpr (act) v = Op::backward(vfloat::load_unaligned(ys + i), v);
        } else {
          constexpr std::size_t m = OW % simd_width;
          v = load_first(gs + i, m);
          if constexpr (act) v = keep_first(Op::backward(load_first(ys + i, m), v), m);
        }
        if constexpr (Bias) sum += v;
        if constexpr (plan::slots) {
          const std::size_t at = oh * LDx + c0;  // the last row's spill must stay inside the slot
          if (at + simd_width <= CSz) v.store_unaligned(slot + at);
          else store_first(v, slot + at, CSz - at);
        }
        if constexpr (plan::compact) v.store_unaligned(dzc + o * plan::DSc + i);  // spill: < DSc
      }
      if constexpr (plan::slots && LDx > row_vectors_end)
        std::fill(slot + oh * LDx + row_vectors_end, slot + (oh + 1) * LDx, 0.0f);
    }
    if constexpr (plan::slots)
      std::fill(slot + OH * LDx, slot + CSz, 0.0f);  // below the last row (its spill is zeros too)
    if constexpr (plan::compact) std::fill(dzc + o * plan::DSc + OH * OW, dzc + (o + 1) * plan::DSc, 0.0f);
    if constexpr (Bias) db[o] += hsum(sum);
  }
}

/// dzt[p][o] = dzc[o][p] for p < P, o < O (O a multiple of the vector width): the compact rows (stride DS) transposed.
template <std::size_t O, std::size_t P, std::size_t DS>
inline void transpose_rows(const float* dzc, float* dzt) {
  static_assert(O % simd_width == 0 && DS % 16 == 0 && DS >= P);
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) {
    for (std::size_t o0 = 0; o0 < O; o0 += 16) {
      std::size_t p0 = 0;
      for (; p0 + 16 <= P; p0 += 16) transpose_block<DS, true>(dzc + o0 * DS + p0, dzt + p0 * O + o0, O, 16, 16);
      if constexpr (P % 16 != 0) transpose_block<DS, false>(dzc + o0 * DS + p0, dzt + p0 * O + o0, O, 16, P % 16);
    }
    return;
  }
#endif
  transpose_matrix(dzc, DS, dzt, O, O, P);
}
}  // namespace detail

namespace detail {

/// The stride-1 backward: see conv2d_backward_plan.
template <Conv2dGeometry G, bool Bias, class Op, Conv2dForms Forms>
void conv2d_backward_flat(const float* x, const float* w, const float* y, const float* dy, float* dw, float* db,
                          float* dx, std::size_t n, float* scratch) {
  using plan = conv2d_backward_plan<G, Forms>;
  constexpr FlatConv F = plan::flat, Fx = plan::flat_dx;
  constexpr std::size_t K = plan::K, Og = G.Og(), Cg = G.Cg(), Hp = G.Hp(), LDx = plan::LDx, KK = plan::KK;
  constexpr std::size_t in_floats = G.C * G.H * G.W, out_floats = G.O * plan::P;
  constexpr std::size_t Kx = Og * KK, wdx_group = flat_weight_floats<Fx>;
  float* chunk_xs = scratch;  // per sample: the padded input, or the shifted copies
  float* chunk_dz = chunk_xs + plan::chunk * plan::src_floats;
  float* chunk_dzc = chunk_dz + plan::chunk * plan::dzs_floats;
  float* chunk_dzt = chunk_dzc + plan::chunk * plan::dzc_floats;
  float* wflip = chunk_dzt + plan::chunk * plan::dzt_floats;
  float* wdx = wflip + plan::wflip_floats;
  float* dcol = wdx + plan::wdx_floats + plan::gap_floats;
  float* dxp = dcol - plan::gap_floats + plan::dcol_floats;
  float* dw_acc = dxp + plan::flat_dxp_floats;  // dW^T (outer) or dw_shifted (shifted)
  if constexpr (plan::outer_dw || plan::shifted_dw) std::fill_n(dw_acc, G.O * K, 0.0f);
  if constexpr (!plan::gemm_dx) {
    if (dx) {  // wflip[g][c][o][kh][kw] = w[g*Og + o][c][KH-1-kh][KW-1-kw], packed for the tiles
      for (std::size_t g = 0; g < G.groups; ++g) {
        for (std::size_t c = 0; c < Cg; ++c)
          for (std::size_t o = 0; o < Og; ++o)
            for (std::size_t k = 0; k < KK; ++k)
              wflip[(g * Cg + c) * Kx + o * KK + k] = w[((g * Og + o) * Cg + c) * KK + (KK - 1 - k)];
        flat_pack_weights<Fx>(wflip + g * Cg * Kx, wdx + g * wdx_group);
      }
    }
  }
  for (std::size_t s0 = 0; s0 < n; s0 += plan::chunk) {
    const std::size_t count = std::min(plan::chunk, n - s0);
    for (std::size_t i = 0; i < count; ++i) {
      float* xs = chunk_xs + i * plan::src_floats;
      const float* xi = x + (s0 + i) * in_floats;
      if constexpr (plan::shifted_dw) {
        if constexpr (G.padded()) {
          pad2d<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, LDx, G.mode>(xi, dxp);
          xi = dxp;
        }
        shift_columns<G, Hp, LDx>(xi, xs);
        std::fill(xs + conv2d_plan<G>::shifted_main, xs + plan::src_floats, 0.0f);
      } else if constexpr (plan::src_floats != 0) {
        pad2d<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, LDx, G.mode>(xi, xs);
        std::fill(xs + G.C * Hp * LDx, xs + plan::src_floats, 0.0f);
      }
      flat_dz_rows<G, Bias, Op, Forms>(y + (s0 + i) * out_floats, dy + (s0 + i) * out_floats,
                                       chunk_dz + i * plan::dzs_floats, chunk_dzc + i * plan::dzc_floats, db);
      if constexpr (plan::outer_dw)
        transpose_rows<G.O, plan::P, plan::DSc>(chunk_dzc + i * plan::dzc_floats, chunk_dzt + i * plan::dzt_floats);
    }
    if constexpr (plan::outer_dw) {  // every group at once
      for (std::size_t i = 0; i < count; ++i) {
        const float* src = plan::src_floats != 0 ? chunk_xs + i * plan::src_floats : x + (s0 + i) * in_floats;
        conv_dw_outer<G, LDx, Hp * LDx>(src, chunk_dzt + i * plan::dzt_floats, dw_acc);
      }
    } else {
      for (std::size_t g = 0; g < G.groups; ++g) {
        if constexpr (plan::shifted_dw)
          conv_dw_flat<plan::shifted, plan::DSc>(chunk_dzc + g * Og * plan::DSc,
                                                 chunk_xs + g * Cg * G.KW * plan::shifted.CS, dw_acc + g * Og * K,
                                                 count, plan::dzc_floats, plan::src_floats);
        else
          conv_dw_flat<F, plan::CSz>(chunk_dz + plan::lead + g * Og * plan::CSz, chunk_xs + g * Cg * Hp * LDx,
                                     dw + g * Og * K, count, plan::dzs_floats, plan::src_floats);
      }
    }
    if (!dx) continue;
    for (std::size_t i = 0; i < count; ++i) {
      float* dxs = dx + (s0 + i) * in_floats;
      if constexpr (plan::gemm_dx) {
        const float* dzc = chunk_dzc + i * plan::dzc_floats;
        for (std::size_t g = 0; g < G.groups; ++g) {
          conv_dcol<Og, K, plan::DSc>(w + g * Og * K, dzc + g * Og * plan::DSc, dcol);
          col2im<G, Hp, LDx, plan::DSc>(dcol, dxp + g * Cg * Hp * LDx);
        }
        if constexpr (G.padded()) unpad2d_add<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, LDx, G.mode>(dxp, dxs);
        else std::memcpy(dxs, dxp, in_floats * sizeof(float));
      } else {
        const float* src = chunk_dz + i * plan::dzs_floats + plan::lead - plan::reach;
        float* gx = G.padded() ? dxp : dxs;  // unpadded: the full correlation is dx itself
        for (std::size_t g = 0; g < G.groups; ++g)
          flat_conv<Fx, false, identity_op>(src + g * Og * plan::CSz, wdx + g * wdx_group, nullptr,
                                            gx + g * Cg * Hp * LDx);
        if constexpr (G.padded()) unpad2d_add<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, LDx, G.mode>(dxp, dxs);
      }
    }
  }
  if constexpr (plan::shifted_dw)  // back into w's tap order
    for (std::size_t o = 0; o < G.O; ++o)
      for (std::size_t k = 0; k < K; ++k) dw[o * K + shifted_source<G>(k)] += dw_acc[o * K + k];
  if constexpr (plan::outer_dw)  // dW^T [groups][K][Og] back into [O, K]
    for (std::size_t g = 0; g < G.groups; ++g)
      for (std::size_t k = 0; k < K; ++k)
        for (std::size_t o = 0; o < Og; ++o) dw[(g * Og + o) * K + k] += dw_acc[(g * K + k) * Og + o];
}

}  // namespace detail

}  // namespace ctnn::kernels
