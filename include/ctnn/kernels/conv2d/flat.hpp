// Conv2d forward, flat form (stride 1): a direct convolution on the flattened padded input.
// Outputs are numbered by their place in the padded rows, q = oh*LD + ow, so every tap is one
// unaligned vector load and no im2col panel exists; the columns ow >= OW of each row are computed
// and dropped at the store. FlatConv describes one such convolution; the backward reuses it for
// its full correlation (flat dx) and the shifted form runs its tiles on shifted copies.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "ctnn/kernels/conv2d/geometry.hpp"
#include "ctnn/kernels/eltwise.hpp"

namespace ctnn::kernels {

// ---- Stride 1: direct convolution on the flattened (padded) input ---------------------------
//
// With stride 1, output (oh, ow) reads xp[c, oh + kh*DH, ow + kw*DW]. Number the outputs by their
// place in the padded input's row layout, q = oh*LD + ow (LD: the padded row width); then tap
// (c, kh, kw) of output q is xp_flat[c*CS + kh*DH*LD + kw*DW + q], so a vector of 16 consecutive q
// is one unaligned load per tap, and the convolution is a GEMM whose im2col panel is never built:
//   y_flat[o, q] = sum_{c, kh, kw} w[o, c, kh, kw] * xp_flat[off(c, kh, kw) + q]
// The columns ow >= OW of every flat row are computed and dropped when storing (LD - OW of every
// LD: 4/32 for LeNet's first conv, 2/58 for a padded 3x3 on 56x56), which costs less than the
// im2col copy did. Register tile: MO output channels (weights broadcast from a packed panel
// [tap][MO]) x R vectors of q; MO*R accumulators + R input vectors + 1 broadcast fit the register file.

/// A stride-1 convolution in flat form: Cin channels of CS floats with rows of LD floats in,
/// a compact [O, OHc, OWc] out (output q = oh*LD + ow is valid for oh < OHc, ow < OWc).
struct FlatConv {
  std::size_t Cin, O, KH, KW, DH, DW;
  std::size_t LD, CS;
  std::size_t OHc, OWc;
  /// When nz_end != 0: each channel is zero outside its floats [nz_begin, nz_end), and a tile skips
  /// the kernel rows whose taps read only zeros there (the backward's full correlation of dz).
  std::size_t nz_begin = 0, nz_end = 0;
  constexpr std::size_t K() const { return Cin * KH * KW; }
  constexpr std::size_t NQ() const { return (OHc * LD + simd_width - 1) / simd_width; }  // vectors of q
  constexpr std::size_t LQ() const { return NQ() * simd_width; }
  /// Floats past Cin*CS the last channel's taps read (the vectors of q overrun the last row).
  constexpr std::size_t slack() const {
    const std::size_t reach = LQ() + (KH - 1) * DH * LD + (KW - 1) * DW;
    return reach > CS ? reach - CS : 0;
  }
  /// Worth it: at least half of each flat row is output (else im2col wastes less).
  constexpr bool efficient() const { return 2 * OWc >= LD; }
};

namespace detail {

/// Output channels per flat tile: all of them up to 8, else 8 (6 when that divides O). With 16
/// registers: all of them up to 4, and 6 (as 6 x 2 tiles) for 6 and from 24 on: the 4 x 3 tile
/// takes all 16 registers, and g++ then reloads its inputs for every FMA or spills (measured on
/// Zen 3: ResNet-18's 64-channel flat input gradient at 96 x 96 11.0% -> 8.2% of the step as 6 x 2,
/// BN-LeNet's 16-channel second conv 8.4% -> 9.2%, so 16 stays 4 x 3).
constexpr std::size_t flat_rows(std::size_t O) {
  if (vector_registers < 32) return O <= 4 ? O : O == 6 || O >= 24 ? 6 : 4;
  if (O <= 8) return O;
  return O % 8 != 0 && O % 6 == 0 ? 6 : 8;
}
/// Vectors of q per flat tile for MO rows: MO*R accumulators + R loaded + 1 broadcast registers.
constexpr std::size_t flat_cols(std::size_t MO) {
  const std::size_t r = (vector_registers - 1) / (MO + 1);
  return r < 8 ? r : 8;
}

/// Where the lanes of flat vector j go in the compact [OHc, OWc] output: one segment per row it
/// touches (a vector spans at most simd_width / LD + 2 rows), each a lane mask and the compact index
/// of its first lane. Built at compile time.
template <std::size_t LD, std::size_t OHc, std::size_t OWc>
struct flat_store_plan {
  static constexpr std::size_t NQ = (OHc * LD + simd_width - 1) / simd_width;
  static constexpr std::size_t S = simd_width / LD + 2;
  struct Segment {
    std::uint32_t dst = 0, mask = 0, count = 0;
  };
  static constexpr auto segments = [] {
    std::array<std::array<Segment, S>, NQ> t{};
    for (std::size_t j = 0; j < NQ; ++j) {
      const std::size_t r0 = j * simd_width / LD;
      for (std::size_t i = 0; i < simd_width; ++i) {
        const std::size_t q = j * simd_width + i, r = q / LD, ow = q % LD;
        if (r >= OHc || ow >= OWc) continue;
        Segment& g = t[j][r - r0];
        if (g.count == 0) g.dst = static_cast<std::uint32_t>(r * OWc + ow);
        g.mask |= 1u << i;
        ++g.count;
      }
    }
    return t;
  }();
};

/// Stores the valid lanes of flat vector j into the compact output y [OHc, OWc].
template <std::size_t LD, std::size_t OHc, std::size_t OWc>
inline void flat_store(vfloat v, float* y, std::size_t j) {
  if constexpr (OWc == LD) {  // every lane below OHc*LD is an output, in place: one (masked) store
    constexpr std::size_t Q = OHc * LD;
    if (j * simd_width + simd_width <= Q) v.store_unaligned(y + j * simd_width);
    else store_first(v, y + j * simd_width, Q - j * simd_width);
    return;
  }
  using plan = flat_store_plan<LD, OHc, OWc>;
  const auto& segs = plan::segments[j];
  CTNN_UNROLL for (std::size_t k = 0; k < plan::S; ++k) {
    const auto& g = segs[k];
    if (g.count == simd_width) {
      v.store_unaligned(y + g.dst);
      continue;
    }
    if (g.count == 0) continue;
#if defined(__AVX512F__)
    if constexpr (simd_width == 16) {  // pack the segment's lanes to the front, store that many
      const auto packed = _mm512_maskz_compress_ps(static_cast<__mmask16>(g.mask), v);
      _mm512_mask_storeu_ps(y + g.dst, static_cast<__mmask16>((1u << g.count) - 1u), packed);
      continue;
    }
#endif
    alignas(64) float tmp[simd_width];
    v.store_aligned(tmp);
    float* d = y + g.dst;
    for (std::size_t i = 0; i < simd_width; ++i)
      if (g.mask >> i & 1u) *d++ = tmp[i];
  }
}

/// MO output channels x R vectors of q starting at vector j, over all taps; bias and Op in the
/// epilogue. wt: the tile's packed weights [K][MO]; y: the tile's first output channel, compact.
template <FlatConv F, std::size_t MO, std::size_t R, bool Bias, class Op>
inline void flat_conv_tile(const float* src, const float* wt, const float* b, float* y, std::size_t j) {
  vfloat acc[MO][R];
  CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o) CTNN_UNROLL for (std::size_t r = 0; r < R; ++r) acc[o][r] =
      vfloat(Bias ? b[o] : 0.0f);
  const float* s0 = src + j * simd_width;
  std::size_t kh0 = 0, kh1 = F.KH;  // the kernel rows whose taps can read a non-zero
  if constexpr (F.nz_end != 0) {
    const std::size_t qa = j * simd_width, qb = std::min((j + R) * simd_width, F.OHc * F.LD) - 1;
    while (kh0 < F.KH && qb + kh0 * F.DH * F.LD + (F.KW - 1) * F.DW < F.nz_begin) ++kh0;
    while (kh1 > kh0 && qa + (kh1 - 1) * F.DH * F.LD >= F.nz_end) --kh1;
  }
  // The tile reads, per input channel, KH rows of R vectors (+ the kernel's width). When that
  // is more than L1 holds over all channels (64 channels of a 3x3: 38 KB), every channel's rows
  // come from L2, so the next channel's are prefetched while this one is computed.
  constexpr std::size_t span = R * simd_width + (F.KW - 1) * F.DW;  // floats of a row the tile reads
  constexpr bool prefetch = F.Cin > 1 && F.Cin * F.KH * span * sizeof(float) > 16384;
  for (std::size_t c = 0; c < F.Cin; ++c) {
    if constexpr (prefetch)
      if (c + 1 < F.Cin)
        for (std::size_t kh = kh0; kh < kh1; ++kh)
          CTNN_UNROLL for (std::size_t f = 0; f < span + 15; f += 16)
              __builtin_prefetch(s0 + (c + 1) * F.CS + kh * F.DH * F.LD + f);
    for (std::size_t kh = kh0; kh < kh1; ++kh)
      for (std::size_t kw = 0; kw < F.KW; ++kw) {
        const float* s = s0 + c * F.CS + kh * F.DH * F.LD + kw * F.DW;
        const float* wk = wt + ((c * F.KH + kh) * F.KW + kw) * MO;
        vfloat xv[R];
        CTNN_UNROLL for (std::size_t r = 0; r < R; ++r) xv[r] = vfloat::load_unaligned(s + r * simd_width);
        CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o) {
          const vfloat wv(wk[o]);
          CTNN_UNROLL for (std::size_t r = 0; r < R; ++r) acc[o][r] = fmadd(wv, xv[r], acc[o][r]);
        }
      }
  }
  CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o) CTNN_UNROLL for (std::size_t r = 0; r < R; ++r)
      flat_store<F.LD, F.OHc, F.OWc>(Op::forward(acc[o][r]), y + o * F.OHc * F.OWc, j + r);
}

/// All output channels for R vectors of q from vector j: the input's slice stays in cache across the tiles.
template <FlatConv F, std::size_t R, bool Bias, class Op>
inline void flat_conv_columns(const float* src, const float* wp, const float* b, float* y, std::size_t j) {
  constexpr std::size_t K = F.K(), MO = flat_rows(F.O), P = F.OHc * F.OWc;
  std::size_t o = 0;
  for (; o + MO <= F.O; o += MO) flat_conv_tile<F, MO, R, Bias, Op>(src, wp + o * K, Bias ? b + o : b, y + o * P, j);
  if constexpr (F.O % MO != 0)
    flat_conv_tile<F, F.O % MO, R, Bias, Op>(src, wp + o * K, Bias ? b + o : b, y + o * P, j);
}

}  // namespace detail

/// Floats of the packed weights of a flat convolution.
template <FlatConv F>
inline constexpr std::size_t flat_weight_floats = round_up(F.O * F.K(), 16);

/// wp = w [O, K] regrouped for the tiles: each tile of MO output channels (from o0) is [K][MO] at wp + o0*K.
/// The tiles' tap k takes w's tap source(k) (the shifted form orders its taps differently).
template <FlatConv F, class Source = std::identity>
void flat_pack_weights(const float* w, float* wp, Source source = {}) {
  constexpr std::size_t K = F.K(), MO = detail::flat_rows(F.O);
  for (std::size_t o0 = 0; o0 < F.O; o0 += MO) {
    const std::size_t m = std::min(MO, F.O - o0);
    for (std::size_t k = 0; k < K; ++k)
      for (std::size_t i = 0; i < m; ++i) wp[o0 * K + k * m + i] = w[(o0 + i) * K + source(k)];
  }
}

/// y[O, OHc, OWc] = Op(b + the flat convolution of src); src readable F.slack() floats past Cin*CS.
template <FlatConv F, bool Bias, class Op>
void flat_conv(const float* src, const float* wp, const float* b, float* y) {
  constexpr std::size_t R = detail::flat_cols(detail::flat_rows(F.O)), NQ = F.NQ();
  std::size_t j = 0;
  for (; j + R <= NQ; j += R) detail::flat_conv_columns<F, R, Bias, Op>(src, wp, b, y, j);
  if constexpr (NQ % R != 0) detail::flat_conv_columns<F, NQ % R, Bias, Op>(src, wp, b, y, j);
}

}  // namespace ctnn::kernels
