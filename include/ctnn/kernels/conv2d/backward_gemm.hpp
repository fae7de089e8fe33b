// Conv2d backward, im2col form (any geometry), per sample and group:
//   col[K, Pp] = im2col(xp_g)           dW_g += dz_g col^T     (conv_dw)
//   dcol[K, Pp] = W_g^T dz_g            (conv_dcol, a GEMM tile)  dxp_g = col2im(dcol)
// col2im and conv_dcol also serve the stride-1 path's col2im input gradient.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>

#include "ctnn/kernels/conv2d/gemm.hpp"
#include "ctnn/kernels/simd.hpp"

namespace ctnn::kernels {

namespace detail {

/// dw[r, c] += sum_p dz[r, p] col[c, p] for MO rows of dz (stride Pp) and NK rows of col (stride Pp);
/// dw rows have stride K.
template <std::size_t Pp, std::size_t K, std::size_t MO, std::size_t NK>
inline void conv_dw_tile(const float* dz, const float* col, float* dw) {
  vfloat acc[MO][NK];
  CTNN_UNROLL for (std::size_t r = 0; r < MO; ++r) CTNN_UNROLL for (std::size_t c = 0; c < NK; ++c) acc[r][c] =
      vfloat(0.0f);
  for (std::size_t p = 0; p < Pp; p += simd_width) {
    vfloat a[MO], b[NK];
    CTNN_UNROLL for (std::size_t r = 0; r < MO; ++r) a[r] = vfloat::load_aligned(dz + r * Pp + p);
    CTNN_UNROLL for (std::size_t c = 0; c < NK; ++c) b[c] = vfloat::load_aligned(col + c * Pp + p);
    CTNN_UNROLL for (std::size_t r = 0; r < MO; ++r) CTNN_UNROLL for (std::size_t c = 0; c < NK; ++c) acc[r][c] =
        fmadd(a[r], b[c], acc[r][c]);
  }
  CTNN_UNROLL for (std::size_t r = 0; r < MO; ++r) CTNN_UNROLL for (std::size_t c = 0; c < NK; ++c) dw[r * K + c] +=
      hsum(acc[r][c]);
}

template <std::size_t Og, std::size_t K, std::size_t Pp, std::size_t MO>
inline void conv_dw_rows(const float* dz, const float* col, float* dw) {
  constexpr std::size_t NK = 4, Kmain = K / NK * NK;
  for (std::size_t k = 0; k < Kmain; k += NK) conv_dw_tile<Pp, K, MO, NK>(dz, col + k * Pp, dw + k);
  if constexpr (Kmain < K) conv_dw_tile<Pp, K, MO, K - Kmain>(dz, col + Kmain * Pp, dw + Kmain);
}

/// dw[Og, K] += dz[Og, Pp] col[K, Pp]^T
template <std::size_t Og, std::size_t K, std::size_t Pp>
inline void conv_dw(const float* dz, const float* col, float* dw) {
  constexpr std::size_t MO = 4, Omain = Og / MO * MO;
  for (std::size_t o = 0; o < Omain; o += MO) conv_dw_rows<Og, K, Pp, MO>(dz + o * Pp, col, dw + o * K);
  if constexpr (Omain < Og) conv_dw_rows<Og, K, Pp, Og - Omain>(dz + Omain * Pp, col, dw + Omain * K);
}

/// dcol[k.., p..] = sum_o w[o, k..] dz[o, p..]: MR rows of dcol x NV vectors, over all Og.
template <std::size_t Og, std::size_t K, std::size_t Pp, std::size_t MR, std::size_t NV>
inline void conv_dcol_tile(const float* w, const float* dz, float* dcol) {
  vfloat acc[MR][NV];
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] =
      vfloat(0.0f);
  for (std::size_t o = 0; o < Og; ++o) {
    vfloat d[NV];
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) d[v] = vfloat::load_aligned(dz + o * Pp + v * simd_width);
    CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) {
      const vfloat wv(w[o * K + r]);
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = fmadd(wv, d[v], acc[r][v]);
    }
  }
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v]
      .store_aligned(dcol + r * Pp + v * simd_width);
}

template <std::size_t Og, std::size_t K, std::size_t Pp, std::size_t MR>
inline void conv_dcol_rows(const float* w, const float* dz, float* dcol) {
  static_assert(Pp % simd_width == 0);
  constexpr std::size_t NV = vector_registers >= 32 ? 3 : 2, step = NV * simd_width, Pmain = Pp / step * step;
  for (std::size_t p = 0; p < Pmain; p += step) conv_dcol_tile<Og, K, Pp, MR, NV>(w, dz + p, dcol + p);
  if constexpr (Pmain < Pp) conv_dcol_tile<Og, K, Pp, MR, (Pp - Pmain) / simd_width>(w, dz + Pmain, dcol + Pmain);
}

/// dcol[K, Pp] = w[Og, K]^T dz[Og, Pp]. With 16 registers, 6 rows x 2 vectors (12 accumulators,
/// as many FMA chains as hide the latency of both FMA units), not the forward's 4 x 2: LeNet's
/// Og = 16 makes each chain short (BN-LeNet's second conv: its backward 2.65 -> 2.40 ms at batch
/// 256 on Zen 3).
template <std::size_t Og, std::size_t K, std::size_t Pp>
inline void conv_dcol(const float* w, const float* dz, float* dcol) {
  constexpr std::size_t MR = vector_registers >= 32 ? conv_tile_rows : 6, Kmain = K / MR * MR;
  for (std::size_t k = 0; k < Kmain; k += MR) conv_dcol_rows<Og, K, Pp, MR>(w + k, dz, dcol + k * Pp);
  if constexpr (Kmain < K) conv_dcol_rows<Og, K, Pp, K - Kmain>(w + Kmain, dz, dcol + Kmain * Pp);
}


}  // namespace detail

/// col[k, p] = xp[c, oh*SH + kh*DH, ow*SW + kw*DW] for all P columns of a group's Cg channels
/// (rows of LDc floats, zero past P). The (padded) input has Hx rows of stride LDx per channel.
template <Conv2dGeometry G, std::size_t Hx, std::size_t LDx, std::size_t LDc>
void im2col(const float* xp, float* col) {
  constexpr std::size_t OH = G.OH(), OW = G.OW(), P = OH * OW;
  for (std::size_t c = 0; c < G.Cg(); ++c)
    for (std::size_t kh = 0; kh < G.KH; ++kh)
      for (std::size_t kw = 0; kw < G.KW; ++kw) {
        float* d = col + ((c * G.KH + kh) * G.KW + kw) * LDc;
        const float* src = xp + c * Hx * LDx + kh * G.DH * LDx + kw * G.DW;
        for (std::size_t oh = 0; oh < OH; ++oh) {
          const float* s = src + oh * G.SH * LDx;
          float* dr = d + oh * OW;
          if constexpr (G.SW == 1) detail::copy_row<OW>(dr, s);
          else
            for (std::size_t ow = 0; ow < OW; ++ow) dr[ow] = s[ow * G.SW];
        }
        std::fill(d + P, d + LDc, 0.0f);
      }
}

/// The adjoint of im2col: dxp[c, ih, iw] = sum of dcol[k, p] over the (k, p) that im2col read
/// xp[c, ih, iw] into (dxp is overwritten). With stride 1 along the width, each vector of a dxp row
/// is summed in registers (a sum per kw, so the adds do not wait on each other) from shifted loads
/// of the dcol rows that reach it, each keeping only the lanes that row covers (add_lanes), and
/// stored once (rows in increasing order, so the zero lanes a store spills into the next row are
/// overwritten later); dcol must be readable (KW-1)*DW floats before and a vector past its ends,
/// dxp writable a vector past its end. Otherwise dxp is zeroed and the entries scatter-added.
template <Conv2dGeometry G, std::size_t Hx, std::size_t LDx, std::size_t LDc>
void col2im(const float* dcol, float* dxp) {
  constexpr std::size_t OH = G.OH(), OW = G.OW();
  if constexpr (G.SW == 1) {
    constexpr std::size_t NV = (LDx + simd_width - 1) / simd_width;  // vectors per dxp row
    constexpr std::size_t chains = std::min<std::size_t>(G.KW, 8);
    for (std::size_t c = 0; c < G.Cg(); ++c)
      for (std::size_t ih = 0; ih < Hx; ++ih) {
        float* row = dxp + (c * Hx + ih) * LDx;
        // vector v of the row (lanes j0 = v*simd_width on), v and kw known at compile time
        const auto row_vector = [&]<std::size_t v>() {
          constexpr std::size_t j0 = v * simd_width;
          vfloat acc[chains];  // one sum per kw: independent adds, not one chain of KH*KW latencies
          CTNN_UNROLL for (std::size_t kw = 0; kw < chains; ++kw) acc[kw] = vfloat(0.0f);
          for (std::size_t kh = 0; kh < G.KH && kh * G.DH <= ih; ++kh) {
            const std::size_t t = ih - kh * G.DH;
            if (t % G.SH != 0 || t / G.SH >= OH) continue;
            const float* src = dcol + (c * G.KH + kh) * G.KW * LDc + t / G.SH * OW;
            [&]<std::size_t... kw>(std::index_sequence<kw...>) {
              // lanes j0 + l in [off, off + OW) read dcol row (kh, kw) at column l + j0 - off
              const auto add = [&]<std::size_t k>() {
                constexpr std::ptrdiff_t off = std::ptrdiff_t(k * G.DW) - std::ptrdiff_t(j0);
                if constexpr (off < std::ptrdiff_t(simd_width) && off + std::ptrdiff_t(OW) > 0)
                  acc[k % chains] =
                      detail::add_lanes(acc[k % chains], src + k * LDc - off, off, off + std::ptrdiff_t(OW));
              };
              (add.template operator()<kw>(), ...);
            }(std::make_index_sequence<G.KW>{});
          }
          CTNN_UNROLL for (std::size_t kw = 1; kw < chains; ++kw) acc[0] += acc[kw];
          acc[0].store_unaligned(row + j0);
        };
        [&]<std::size_t... v>(std::index_sequence<v...>) {
          (row_vector.template operator()<v>(), ...);
        }(std::make_index_sequence<NV>{});
      }
  } else {
    std::fill_n(dxp, G.Cg() * Hx * LDx, 0.0f);
    for (std::size_t c = 0; c < G.Cg(); ++c)
      for (std::size_t kh = 0; kh < G.KH; ++kh)
        for (std::size_t kw = 0; kw < G.KW; ++kw) {
          const float* d = dcol + ((c * G.KH + kh) * G.KW + kw) * LDc;
          float* dst = dxp + c * Hx * LDx + kh * G.DH * LDx + kw * G.DW;
          for (std::size_t oh = 0; oh < OH; ++oh) {
            float* r = dst + oh * G.SH * LDx;
            const float* s = d + oh * OW;
            for (std::size_t ow = 0; ow < OW; ++ow) r[ow * G.SW] += s[ow];
          }
        }
  }
}

}  // namespace ctnn::kernels
