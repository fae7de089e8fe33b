// Conv2d forward, im2col + GEMM form (any geometry; a pointwise 1x1 conv's im2col is a plain copy):
//   y_g[Og, P] = Op(b + W_g[Og, K] panel[K, P]),  K = C/g * KH * KW, P = OH * OW
// The panel is never built whole: im2col_block packs one K x BW column block at a time (BW = 2
// vectors), in cache, and the microkernel (MR output channels x BW columns in registers,
// weights broadcast) streams it; bias and the activation Op are its epilogue.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "ctnn/kernels/conv2d/geometry.hpp"
#include "ctnn/kernels/eltwise.hpp"

namespace ctnn::kernels {

// ---- The conv GEMM: y[o, p] = Op(b[o] + sum_k w[o, k] * panel[k, p]) ------------------------
//
// The panel is never built whole: for each block of BW = 2 vector widths of output pixels,
// im2col packs its K x BW slice contiguously (K * BW floats, in L1/L2) and every group of MR
// output channels streams it, so im2col traffic stays in cache.

inline constexpr std::size_t conv_block_width = 2 * simd_width;       // BW: columns per panel block
inline constexpr std::size_t conv_tile_rows = simd_width >= 16 ? 8 : 4;  // MR: 32 vector registers vs 16

namespace detail {

/// MR output channels x BW columns of block jb, accumulated over all K.
template <std::size_t K, std::size_t P, bool Bias, class Op, std::size_t MR>
inline void conv_gemm_tile(const float* w, const float* b, const float* block, float* y, std::size_t j) {
  constexpr std::size_t NV = conv_block_width / simd_width;
  vfloat acc[MR][NV];
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] =
      vfloat(Bias ? b[r] : 0.0f);
  for (std::size_t k = 0; k < K; ++k) {
    vfloat pv[NV];
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) pv[v] =
        vfloat::load_aligned(block + k * conv_block_width + v * simd_width);
    CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) {
      const vfloat wv(w[r * K + k]);
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = fmadd(wv, pv[v], acc[r][v]);
    }
  }
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) {
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) {
      const std::size_t col = j + v * simd_width;
      if (col >= P) break;
      const vfloat out = Op::forward(acc[r][v]);
      float* dst = y + r * P + col;
      if (col + simd_width <= P) {
        out.store_unaligned(dst);
      } else {  // the last, partial vector of a row
        alignas(64) float tmp[simd_width];
        out.store_aligned(tmp);
        std::memcpy(dst, tmp, (P - col) * sizeof(float));
      }
    }
  }
}

}  // namespace detail

/// y[O, P] = Op(w[O, K] panel[K, P] + b) one column block at a time: pack(j, block) writes the
/// K x BW slice of columns [j, j + BW) into `block` (K * BW floats, 64-byte aligned; columns past
/// P zero), then every group of MR channels consumes it. `b` is read only when Bias.
template <std::size_t O, std::size_t K, std::size_t P, bool Bias, class Op, class Pack>
void conv_gemm(const float* w, const float* b, Pack&& pack, float* block, float* y) {
  constexpr std::size_t MR = conv_tile_rows, BW = conv_block_width;
  for (std::size_t j = 0; j < P; j += BW) {
    pack(j, block);
    std::size_t o = 0;
    for (; o + MR <= O; o += MR)
      detail::conv_gemm_tile<K, P, Bias, Op, MR>(w + o * K, Bias ? b + o : b, block, y + o * P, j);
    if constexpr (O % MR != 0)
      detail::conv_gemm_tile<K, P, Bias, Op, O % MR>(w + o * K, Bias ? b + o : b, block, y + o * P, j);
  }
}

// ---- im2col, one column block at a time ------------------------------------------------------

/// block[k, i] = xp[c, oh*SH + kh*DH, ow*SW + kw*DW] for k = (c*KH + kh)*KW + kw over the Cg
/// channels of a group and columns p = j + i = oh*OW + ow (i < BW; zero past P). The (padded)
/// input has Hx rows of stride LDx per channel. For a pointwise conv this is a plain copy.
template <Conv2dGeometry G, std::size_t Hx, std::size_t LDx>
void im2col_block(const float* xp, float* block, std::size_t j) {
  constexpr std::size_t OW = G.OW(), P = G.OH() * OW, BW = conv_block_width;
  const std::size_t cols = std::min(BW, P - j), oh0 = j / OW, ow0 = j % OW;
  for (std::size_t c = 0; c < G.Cg(); ++c) {
    for (std::size_t kh = 0; kh < G.KH; ++kh) {
      for (std::size_t kw = 0; kw < G.KW; ++kw) {
        float* d = block + ((c * G.KH + kh) * G.KW + kw) * BW;
        const float* src = xp + c * Hx * LDx + kh * G.DH * LDx + kw * G.DW;
        std::size_t oh = oh0, ow = ow0, i = 0;
        while (i < cols) {  // runs along one output row
          const std::size_t run = std::min(OW - ow, cols - i);
          const float* s = src + oh * G.SH * LDx + ow * G.SW;
          if constexpr (G.SW == 1) std::copy_n(s, run, d + i);
          else
            for (std::size_t t = 0; t < run; ++t) d[i + t] = s[t * G.SW];
          i += run;
          ow = 0;
          ++oh;
        }
        if (cols < BW) std::fill(d + cols, d + BW, 0.0f);
      }
    }
  }
}

}  // namespace ctnn::kernels
