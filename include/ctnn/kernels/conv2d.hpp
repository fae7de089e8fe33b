// Conv2d forward (and, at the end, backward) kernels, specialized on compile-time extents (the layer's Conv2dGeometry).
//
//   y[n, o, oh, ow] = Op(b[o] + sum_{c in group(o), kh, kw} w[o, c, kh, kw] * xp[n, c, oh*SH + kh*DH, ow*SW + kw*DW])
//   x: [N, C, H, W], w: [O, C/g, KH, KW], b: [O], y: [N, O, OH, OW], xp = x padded (F.pad semantics)
//
// One sample at a time (the scratch is shared by all samples). Three paths:
//   - general: pad into scratch (if padded), then the GEMM y_g[Og, P] = W_g[Og, K] panel[K, P]
//     (K = C/g * KH * KW, P = OH * OW), the panel im2col'ed one L2-sized column block at a time;
//   - pointwise (1x1, stride 1, no padding): the same GEMM, im2col being a plain packing copy;
//   - depthwise (groups == C): a direct convolution per channel, vectorized along ow.
// The GEMM microkernel holds MR output channels x 2 vectors of output pixels in registers,
// broadcasts weights and streams the panel; bias and the activation Op are its epilogue.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>

#include "ctnn/core/conv_arithmetic.hpp"
#include "ctnn/kernels/eltwise.hpp"

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
/// dst[0, N) = src[0, N), N known at compile time: whole vectors, the last one overlapping the one
/// before it (nothing read or written outside the row).
template <std::size_t N>
inline void copy_row(float* dst, const float* src) {
  if constexpr (N >= simd_width) {
    std::size_t i = 0;
    for (; i + simd_width <= N; i += simd_width) vfloat::load_unaligned(src + i).store_unaligned(dst + i);
    if constexpr (N % simd_width != 0) vfloat::load_unaligned(src + N - simd_width).store_unaligned(dst + N - simd_width);
  } else {
    for (std::size_t i = 0; i < N; ++i) dst[i] = src[i];
  }
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
      const std::ptrdiff_t sr = detail::pad_source<M>(static_cast<std::ptrdiff_t>(r) - static_cast<std::ptrdiff_t>(PT), H);
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
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = vfloat(Bias ? b[r] : 0.0f);
  for (std::size_t k = 0; k < K; ++k) {
    vfloat pv[NV];
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) pv[v] = vfloat::load_aligned(block + k * conv_block_width + v * simd_width);
    CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) {
      const vfloat wv(w[r * K + k]);
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(wv, pv[v], acc[r][v]);
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
          else for (std::size_t t = 0; t < run; ++t) d[i + t] = s[t * G.SW];
          i += run;
          ow = 0;
          ++oh;
        }
        if (cols < BW) std::fill(d + cols, d + BW, 0.0f);
      }
    }
  }
}

// ---- Depthwise: one channel at a time, vectorized along ow ----------------------------------

namespace detail {
template <std::size_t SW>
inline vfloat load_strided(const float* p) {
  if constexpr (SW == 1) {
    return vfloat::load_unaligned(p);
  } else {
    using ibatch = xsimd::batch<std::int32_t>;
    static const ibatch idx = [] {
      alignas(64) std::int32_t v[simd_width];
      for (std::size_t i = 0; i < simd_width; ++i) v[i] = static_cast<std::int32_t>(i * SW);
      return ibatch::load_aligned(v);
    }();
    return vfloat::gather(p, idx);
  }
}
}  // namespace detail

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
            acc = xsimd::fma(vfloat(wo[kh * G.KW + kw]),
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

inline constexpr std::size_t vector_registers = simd_width >= 16 ? 32 : 16;

/// Output channels per flat tile: all of them up to 8 (4 with 16 registers), else 8 (6 when that divides O).
constexpr std::size_t flat_rows(std::size_t O) {
  const std::size_t most = vector_registers >= 32 ? 8 : 4;
  if (O <= most) return O;
  return most == 8 && O % 8 != 0 && O % 6 == 0 ? 6 : most;
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
  CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o)
    CTNN_UNROLL for (std::size_t r = 0; r < R; ++r) acc[o][r] = vfloat(Bias ? b[o] : 0.0f);
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
          CTNN_UNROLL for (std::size_t r = 0; r < R; ++r) acc[o][r] = xsimd::fma(wv, xv[r], acc[o][r]);
        }
      }
  }
  CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o)
    CTNN_UNROLL for (std::size_t r = 0; r < R; ++r)
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

// ---- The layer's entry point ----------------------------------------------------------------

namespace detail {
template <Conv2dGeometry G>
struct conv2d_plan {
  static constexpr std::size_t OH = G.OH(), OW = G.OW(), P = OH * OW;
  static constexpr std::size_t K = G.Cg() * G.KH * G.KW;
  // The (padded) input in scratch: row stride, rows per channel, floats (+ slack for
  // vector reads past the last row by the depthwise path and gathers).
  static constexpr std::size_t LDx = G.Wp();
  static constexpr std::size_t xp_floats = G.padded() || G.depthwise()
                                               ? round_up(G.C * G.Hp() * LDx + (G.SW + 1) * simd_width + G.KW * G.DW, 16)
                                               : 0;
  static constexpr std::size_t panel_floats = G.depthwise() ? 0 : K * conv_block_width;
  // Stride 1 (not 1x1, not depthwise): the flat direct convolution, per group.
  static constexpr FlatConv flat{G.Cg(), G.Og(), G.KH, G.KW, G.DH, G.DW, LDx, G.Hp() * LDx, OH, OW};
  static constexpr bool use_flat = G.SH == 1 && G.SW == 1 && !G.pointwise() && !G.depthwise() && flat.efficient();
  // the padded input (+ the slack the flat tiles read past its last channel), then the packed weights
  static constexpr std::size_t flat_xp_floats = round_up(G.C * G.Hp() * LDx + flat.slack(), 16);
  // The shifted form, per group: Cg*KW channels of Hp rows of OW floats, a KH x 1 kernel.
  static constexpr FlatConv shifted{G.Cg() * G.KW, G.Og(), G.KH, 1, G.DH, 1, OW, G.Hp() * OW, OH, OW};
  static constexpr std::size_t shifted_main = G.C * G.KW * G.Hp() * OW;  // all groups
  // Worth it when the vector FMAs it saves are `ratio` times the vectors it copies (each a load and
  // a store) and the copies stay in cache: ratio 2 for the forward, whose epilogue (a sigmoid costs
  // about as much as a dozen FMAs) runs on fewer vectors too; 4 for the weight gradient (measured
  // on Zen 4: LeNet's first conv, saving 3.75 times its copies, runs its forward 10% faster shifted
  // and its weight gradient 4% slower).
  static constexpr bool shifted_pays(std::size_t ratio) {
    if (!use_flat || shifted_main * sizeof(float) > 65536) return false;
    const std::size_t saved = (flat.NQ() - std::min(flat.NQ(), shifted.NQ())) * K * G.O;  // vector FMAs
    return saved > ratio * ((shifted_main + simd_width - 1) / simd_width);
  }
  static constexpr bool use_shifted = shifted_pays(2);
  // the shifted copies, with the slack its tiles read past the last channel and room for a row's spill
  static constexpr std::size_t shifted_floats = round_up(shifted_main + std::max(shifted.slack(), simd_width), 16);
  static constexpr std::size_t flat_pad_floats = G.padded() ? round_up(G.C * G.Hp() * LDx, 16) : 0;
  // The flat path's source per sample (the padded input, or the shifted copies), its slack
  // included, and the form its tiles run.
  static constexpr FlatConv used = use_shifted ? shifted : flat;
  static constexpr std::size_t src_main = use_shifted ? shifted_main : G.C * G.Hp() * LDx;
  static constexpr std::size_t src_floats = use_shifted ? shifted_floats : flat_xp_floats;
  // flat path: the source, the packed weights, then (shifted) the padded input
  static constexpr std::size_t scratch_floats =
      use_flat ? src_floats + flat_weight_floats<used> * G.groups + (use_shifted ? flat_pad_floats : 0)
               : xp_floats + panel_floats;
};
}  // namespace detail

/// Scratch floats conv2d_forward<G> needs (shared by all samples).
template <Conv2dGeometry G>
inline constexpr std::size_t conv2d_scratch_floats = detail::conv2d_plan<G>::scratch_floats;

/// y = Op(conv2d(x, w) + b) for n samples; `b` is read only when Bias. `scratch` holds
/// conv2d_scratch_floats<G> floats, 64-byte aligned.
template <Conv2dGeometry G, bool Bias, class Op = identity_op>
void conv2d_forward(const float* x, const float* w, const float* b, float* y, std::size_t n, float* scratch) {
  using plan = detail::conv2d_plan<G>;
  constexpr std::size_t P = plan::P, K = plan::K, Og = G.Og(), Cg = G.Cg();
  constexpr std::size_t in_floats = G.C * G.H * G.W, out_floats = G.O * P;
  float* xp = scratch;
  float* panel = scratch + plan::xp_floats;
  if constexpr (plan::use_flat) {
    // The flat form reads the padded input: unpadded, x itself, except for the last sample, whose
    // last channel's tiles would read past the batch (the copy has zeroed slack after it). The
    // shifted form reads its copies of the padded input, which is built after the weights.
    constexpr bool shifted = plan::use_shifted;
    constexpr FlatConv F = plan::used;
    constexpr std::size_t wfloats = flat_weight_floats<F>;
    constexpr auto tap_source = [](std::size_t k) { return shifted ? detail::shifted_source<G>(k) : k; };
    float* wp = scratch + plan::src_floats;
    float* padded = shifted ? wp + wfloats * G.groups : scratch;
    std::fill(scratch + plan::src_main, scratch + plan::src_floats, 0.0f);  // a shifted row's spill is zeros too
    for (std::size_t g = 0; g < G.groups; ++g) flat_pack_weights<F>(w + g * Og * K, wp + g * wfloats, tap_source);
    for (std::size_t s = 0; s < n; ++s) {
      const float* src = x + s * in_floats;
      if (G.padded() || (!shifted && s + 1 == n)) {
        pad2d<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, plan::LDx, G.mode>(src, padded);
        src = padded;
      }
      if constexpr (shifted) {
        detail::shift_columns<G, G.Hp(), plan::LDx>(src, scratch);
        src = scratch;
      }
      for (std::size_t g = 0; g < G.groups; ++g)
        flat_conv<F, Bias, Op>(src + g * F.Cin * F.CS, wp + g * wfloats, b + (Bias ? g * Og : 0),
                               y + s * out_floats + g * Og * P);
    }
    return;
  }
  for (std::size_t s = 0; s < n; ++s) {
    const float* xs = x + s * in_floats;
    float* ys = y + s * out_floats;
    if constexpr (G.depthwise()) {
      pad2d<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, plan::LDx, G.mode>(xs, xp);
      depthwise_conv<G, plan::LDx, Bias, Op>(xp, w, b, ys);
    } else {
      // pointwise (1x1, stride 1, no padding): packing x_g [Cg, P] is all im2col does, then the GEMM
      const float* src = xs;
      if constexpr (G.padded()) {
        pad2d<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, plan::LDx, G.mode>(xs, xp);
        src = xp;
      }
      for (std::size_t g = 0; g < G.groups; ++g) {
        const float* xg = src + g * Cg * G.Hp() * plan::LDx;
        conv_gemm<Og, K, P, Bias, Op>(
            w + g * Og * K, b + (Bias ? g * Og : 0),
            [xg](std::size_t j, float* block) { im2col_block<G, G.Hp(), plan::LDx>(xg, block, j); }, panel,
            ys + g * Og * P);
      }
    }
  }
}


// ---- backward --------------------------------------------------------------------------------
//
// With dz = dL/d(conv output) (the activation's derivative already applied), per sample and group:
//   col[K, P]  = im2col(xp_g)                          (rows padded to Pp = P rounded up to 16, zeros)
//   dW_g      += dz_g[Og, P] col^T                     conv_dw: dot products along p, vectorized
//   db[o]     += sum_p dz[o, p]
//   dcol[K, P] = W_g^T dz_g                            conv_dcol: a GEMM tile like forward's
//   dxp_g      = col2im(dcol)                          the padded input's gradient
//   dx         = the adjoint of F.pad applied to dxp    every padded cell adds into the input cell it
//                                                      was copied from (zeros mode: dropped)
// dz is first copied into rows of Pp floats so every loop runs on whole, aligned vectors.

namespace detail {

template <Conv2dGeometry G>
struct conv2d_backward_plan {
  static_assert(16 % simd_width == 0);
  static constexpr std::size_t OH = G.OH(), OW = G.OW(), P = OH * OW;
  static constexpr std::size_t Pp = round_up(P, 16);
  static constexpr std::size_t K = G.Cg() * G.KH * G.KW;
  static constexpr std::size_t LDx = G.Wp();
  static constexpr std::size_t xp_floats = G.padded() ? round_up(G.C * G.Hp() * LDx, 16) : 0;
  static constexpr std::size_t col_floats = K * Pp;
  static constexpr std::size_t dz_floats = G.O * Pp;
  // col2im reads up to (KW-1)*DW floats before dcol (into dz and this gap) and a vector past it (into dxp)
  static constexpr std::size_t gap_floats = round_up((G.KW - 1) * G.DW, 16);
  // the (padded) input's gradient, with a vector of slack for col2im's stores
  static constexpr std::size_t dxp_floats = round_up(G.C * G.Hp() * LDx + simd_width, 16);
  // Stride 1: the flat path, for a chunk of samples at a time. dz = Op'(y) * dy is built once per
  // sample in the layouts its consumers read (each only when one of them is chosen):
  //   slots   (dzs_floats): `lead` zeros, then one slot of CSz floats per output channel,
  //           dz[o, oh, ow] at slot o + oh*LDx + ow, zero elsewhere: the flat forms' layout;
  //   compact (dzc_floats): row o of DSc floats, dz[o, oh, ow] at oh*OW + ow, zero from P on;
  //   columns (dzt_floats): dzT[p][o] = dz[o, p], the compact rows transposed (p = oh*OW + ow).
  // db sums the rows as they are built. The weight gradient has three forms:
  //   outer   (Og a multiple of the vector width): vectors of output channels times broadcast
  //           input values, dW^T[k][o] += xp[c, oh + kh*DH, ow + kw*DW] * dzT[p][o] over the valid
  //           outputs only, accumulated over the whole batch (no lanes wasted on dropped columns,
  //           no horizontal sums); each sample on its own (chunk 1), its data in L1;
  //   shifted (the forward's shifted form): conv_dw_flat on each sample's shifted copies and the
  //           compact dz, accumulated in dw_shifted and added to dW in w's order at the end;
  //   flat:   conv_dw_flat on the padded input and the slots; its horizontal sums once a chunk.
  // The input gradient has two:
  //   flat:   the full correlation of dz with the flipped kernel, flat_conv<flat_dx> on the slots:
  //           its tap (kh, kw) reads slot + q - (kh*DH*LDx + kw*DW), and the zero columns ow >= OW
  //           of each flat row (exactly (KW-1)*DW of them) and the zeros before each slot are the
  //           full correlation's padding;
  //   gemm:   dcol[K, DSc] = W_g^T dz_g on the compact rows (conv_dcol), then col2im into the padded
  //           input's gradient: chosen when the full correlation would spend most of its FMAs on the
  //           zeros around dz (LeNet's second conv: 10x10 outputs, 5x5 kernel, 51% of its taps).
  static constexpr FlatConv flat = conv2d_plan<G>::flat;
  static constexpr bool use_flat = conv2d_plan<G>::use_flat;
  static constexpr std::size_t KK = G.KH * G.KW;
  static constexpr std::size_t reach = (G.KH - 1) * G.DH * LDx + (G.KW - 1) * G.DW;  // farthest tap
  static constexpr std::size_t lead = round_up(reach, 16);
  static constexpr std::size_t CSz = round_up(G.Hp() * LDx, 16);  // >= flat.LQ(): OH <= Hp
  static constexpr FlatConv flat_dx{G.Og(), G.Cg(), G.KH, G.KW, G.DH, G.DW, LDx, CSz, G.Hp(), G.Wp(),
                                    reach, reach + (OH - 1) * LDx + OW};
  static_assert(!use_flat || (flat.LQ() <= CSz && flat_dx.LQ() <= CSz && flat_dx.slack() <= reach));
  static constexpr bool outer_dw = use_flat && G.Og() % simd_width == 0;
  static constexpr bool shifted_dw = conv2d_plan<G>::shifted_pays(4) && !outer_dw;
  static constexpr bool flat_dw = use_flat && !outer_dw && !shifted_dw;
  // vector FMAs (and col2im's masked adds) per sample and group of the two input-gradient forms
  static constexpr std::size_t flat_dx_cost = G.Cg() * G.Og() * KK * flat_dx.NQ();
  static constexpr std::size_t gemm_dx_cost = K * G.Og() * ((P + simd_width - 1) / simd_width) +
                                              2 * G.Cg() * G.Hp() * ((LDx + simd_width - 1) / simd_width) * KK;
  static constexpr bool gemm_dx = use_flat && 5 * gemm_dx_cost < 4 * flat_dx_cost;
  static constexpr bool slots = flat_dw || !gemm_dx;
  static constexpr bool compact = outer_dw || shifted_dw || gemm_dx;
  static constexpr FlatConv shifted = conv2d_plan<G>::shifted;
  static constexpr std::size_t DSc = round_up(P + (shifted_dw ? simd_width : 0), 16);  // >= shifted.LQ() and a row's spill
  static constexpr std::size_t dzs_floats = slots ? lead + G.O * CSz : 0;
  static constexpr std::size_t dzc_floats = compact ? G.O * DSc : 0;
  static constexpr std::size_t dzt_floats = outer_dw ? P * G.O : 0;
  // Each sample's input as its weight gradient reads it: the shifted copies, the padded input with
  // the flat tiles' slack, or (outer, unpadded) x itself.
  static constexpr std::size_t src_floats =
      shifted_dw ? conv2d_plan<G>::shifted_floats
                 : flat_dw || G.padded() ? conv2d_plan<G>::flat_xp_floats : 0;
  static constexpr std::size_t dw_acc_floats = outer_dw || shifted_dw ? round_up(G.O * K, 16) : 0;  // dW^T, dw_shifted
  static constexpr std::size_t sample_floats = src_floats + dzs_floats + dzc_floats + dzt_floats;
  static constexpr std::size_t chunk = [] {  // samples per chunk: about 384 KiB, in L2
    if (outer_dw) return std::size_t{1};
    const std::size_t c = 98304 / sample_floats;
    return c < 1 ? 1 : c > 32 ? 32 : c;
  }();
  // flat dx: the flipped weights [groups][Cg][Og*KH*KW], packed for flat_conv<flat_dx>
  static constexpr std::size_t wflip_floats = gemm_dx ? 0 : round_up(G.O * K, 16);
  static constexpr std::size_t wdx_floats = gemm_dx ? 0 : flat_weight_floats<flat_dx> * G.groups;
  // gemm dx: dcol, readable (KW-1)*DW floats before and a row of the padded input after (col2im)
  static constexpr std::size_t dcol_floats = gemm_dx ? gap_floats + K * DSc + round_up(LDx + simd_width, 16) : 0;
  // the padded input (shifted dW) or its gradient (flat dx, padded); gemm dx: the padded input's
  // gradient with a vector of slack for col2im's stores (as the general path's)
  static constexpr std::size_t flat_dxp_floats = gemm_dx ? dxp_floats : conv2d_plan<G>::flat_pad_floats;
  static constexpr std::size_t flat_scratch_floats =
      chunk * sample_floats + wflip_floats + wdx_floats + dcol_floats + flat_dxp_floats + dw_acc_floats;
  // layout: xp, dz, gap, col, dxp (general path) or chunk xs, chunk dz slots, chunk dzc, chunk dzT,
  // wflip, wdx, dcol, dxp, dW^T or dw_shifted (flat path)
  static constexpr std::size_t scratch_floats =
      use_flat ? flat_scratch_floats : xp_floats + dz_floats + gap_floats + col_floats + dxp_floats;
};

/// Register tile of conv_dw_flat: MO rows of dz x NT taps.
constexpr std::size_t flat_dw_rows(std::size_t O) {
  if (vector_registers < 32) return O < 3 ? O : 3;  // 3 x 3 + 3 + 1 of 16
  return O % 6 == 0 ? 6 : O < 4 ? O : 4;
}
constexpr std::size_t flat_dw_taps(std::size_t MO) {
  const std::size_t t = (vector_registers - 1 - MO) / MO;  // MO*NT accumulators + MO dz + 1 input
  return t < 8 ? t : 8;
}

/// dw[o, t0 + t] += sum over `count` samples and all q < F.LQ() of dzf[o, q] * src[off(t0 + t) + q],
/// for MO rows o and NT taps; dzf rows of DS floats (zero where q is not an output), 64-byte aligned.
template <FlatConv F, std::size_t DS, std::size_t MO, std::size_t NT>
inline void flat_dw_tile(const float* dzf, const float* src, float* dw, std::size_t count, std::size_t dz_stride,
                         std::size_t src_stride, std::size_t t0) {
  constexpr std::size_t K = F.K(), NQ = F.NQ();
  static constexpr auto offs = [] {  // where tap k = (c*KH + kh)*KW + kw starts in src
    std::array<std::size_t, K> a{};
    for (std::size_t c = 0; c < F.Cin; ++c)
      for (std::size_t kh = 0; kh < F.KH; ++kh)
        for (std::size_t kw = 0; kw < F.KW; ++kw) a[(c * F.KH + kh) * F.KW + kw] = c * F.CS + kh * F.DH * F.LD + kw * F.DW;
    return a;
  }();
  vfloat acc[MO][NT];
  CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o)
    CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) acc[o][t] = vfloat(0.0f);
  std::size_t off[NT];
  CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) off[t] = offs[t0 + t];
  for (std::size_t s = 0; s < count; ++s) {
    const float* d = dzf + s * dz_stride;
    const float* x = src + s * src_stride;
    for (std::size_t j = 0; j < NQ * simd_width; j += simd_width) {
      vfloat dv[MO];
      CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o) dv[o] = vfloat::load_aligned(d + o * DS + j);
      CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) {
        const vfloat xv = vfloat::load_unaligned(x + off[t] + j);
        CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o) acc[o][t] = xsimd::fma(dv[o], xv, acc[o][t]);
      }
    }
  }
  // The horizontal sums, simd_width accumulators at a time by a transpose-reduce (a third of
  // the instructions of one hadd each: with a chunk of few samples they are not negligible).
  constexpr std::size_t A = MO * NT;
  alignas(64) float sums[round_up(A, simd_width)];
  CTNN_UNROLL for (std::size_t a0 = 0; a0 < A; a0 += simd_width) {
    vfloat v[simd_width];
    CTNN_UNROLL for (std::size_t i = 0; i < simd_width; ++i)
      v[i] = a0 + i < A ? acc[(a0 + i) / NT][(a0 + i) % NT] : vfloat(0.0f);
    reduce_rows(v).store_aligned(sums + a0);
  }
  CTNN_UNROLL for (std::size_t o = 0; o < MO; ++o)
    CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) dw[o * K + t0 + t] += sums[o * NT + t];
}

template <FlatConv F, std::size_t DS, std::size_t MO>
inline void flat_dw_rows(const float* dzf, const float* src, float* dw, std::size_t count, std::size_t dz_stride,
                         std::size_t src_stride) {
  constexpr std::size_t K = F.K(), NT = std::min(flat_dw_taps(MO), K);
  std::size_t t = 0;
  for (; t + NT <= K; t += NT) flat_dw_tile<F, DS, MO, NT>(dzf, src, dw, count, dz_stride, src_stride, t);
  if constexpr (K % NT != 0) flat_dw_tile<F, DS, MO, K % NT>(dzf, src, dw, count, dz_stride, src_stride, t);
}

/// dw[O, K] += sum over `count` samples of the correlation of dzf [O][DS] (flat, zero off the output)
/// with src (the padded input, flat): the weight gradient without an im2col panel; the horizontal
/// sums happen once per chunk of samples, not per sample.
template <FlatConv F, std::size_t DS>
void conv_dw_flat(const float* dzf, const float* src, float* dw, std::size_t count, std::size_t dz_stride,
                  std::size_t src_stride) {
  static_assert(DS >= F.LQ() && DS % 16 == 0);
  constexpr std::size_t K = F.K(), MO = flat_dw_rows(F.O);
  std::size_t o = 0;
  for (; o + MO <= F.O; o += MO) flat_dw_rows<F, DS, MO>(dzf + o * DS, src, dw + o * K, count, dz_stride, src_stride);
  if constexpr (F.O % MO != 0)
    flat_dw_rows<F, DS, F.O % MO>(dzf + o * DS, src, dw + o * K, count, dz_stride, src_stride);
}

/// dw[r, c] += sum_p dz[r, p] col[c, p] for MO rows of dz (stride Pp) and NK rows of col (stride Pp);
/// dw rows have stride K.
template <std::size_t Pp, std::size_t K, std::size_t MO, std::size_t NK>
inline void conv_dw_tile(const float* dz, const float* col, float* dw) {
  vfloat acc[MO][NK];
  CTNN_UNROLL for (std::size_t r = 0; r < MO; ++r)
    CTNN_UNROLL for (std::size_t c = 0; c < NK; ++c) acc[r][c] = vfloat(0.0f);
  for (std::size_t p = 0; p < Pp; p += simd_width) {
    vfloat a[MO], b[NK];
    CTNN_UNROLL for (std::size_t r = 0; r < MO; ++r) a[r] = vfloat::load_aligned(dz + r * Pp + p);
    CTNN_UNROLL for (std::size_t c = 0; c < NK; ++c) b[c] = vfloat::load_aligned(col + c * Pp + p);
    CTNN_UNROLL for (std::size_t r = 0; r < MO; ++r)
      CTNN_UNROLL for (std::size_t c = 0; c < NK; ++c) acc[r][c] = xsimd::fma(a[r], b[c], acc[r][c]);
  }
  CTNN_UNROLL for (std::size_t r = 0; r < MO; ++r)
    CTNN_UNROLL for (std::size_t c = 0; c < NK; ++c) dw[r * K + c] += xsimd::hadd(acc[r][c]);
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
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = vfloat(0.0f);
  for (std::size_t o = 0; o < Og; ++o) {
    vfloat d[NV];
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) d[v] = vfloat::load_aligned(dz + o * Pp + v * simd_width);
    CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r) {
      const vfloat wv(w[o * K + r]);
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(wv, d[v], acc[r][v]);
    }
  }
  CTNN_UNROLL for (std::size_t r = 0; r < MR; ++r)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[r][v].store_aligned(dcol + r * Pp + v * simd_width);
}

template <std::size_t Og, std::size_t K, std::size_t Pp, std::size_t MR>
inline void conv_dcol_rows(const float* w, const float* dz, float* dcol) {
  static_assert(Pp % simd_width == 0);
  constexpr std::size_t NV = vector_registers >= 32 ? 3 : 2, step = NV * simd_width, Pmain = Pp / step * step;
  for (std::size_t p = 0; p < Pmain; p += step) conv_dcol_tile<Og, K, Pp, MR, NV>(w, dz + p, dcol + p);
  if constexpr (Pmain < Pp) conv_dcol_tile<Og, K, Pp, MR, (Pp - Pmain) / simd_width>(w, dz + Pmain, dcol + Pmain);
}

/// dcol[K, Pp] = w[Og, K]^T dz[Og, Pp]
template <std::size_t Og, std::size_t K, std::size_t Pp>
inline void conv_dcol(const float* w, const float* dz, float* dcol) {
  constexpr std::size_t MR = conv_tile_rows, Kmain = K / MR * MR;
  for (std::size_t k = 0; k < Kmain; k += MR) conv_dcol_rows<Og, K, Pp, MR>(w + k, dz, dcol + k * Pp);
  if constexpr (Kmain < K) conv_dcol_rows<Og, K, Pp, K - Kmain>(w + Kmain, dz, dcol + Kmain * Pp);
}

/// x += y for N floats (N known at compile time, as copy_row's: with a run-time count, g++ 12
/// warns about the scalar tail's loop when it inlines the call into a row of 40 with 8 lanes).
template <std::size_t N>
inline void add_to(float* x, const float* y) {
  std::size_t i = 0;
  for (; i + simd_width <= N; i += simd_width)
    (vfloat::load_unaligned(x + i) + vfloat::load_unaligned(y + i)).store_unaligned(x + i);
  if constexpr (N % simd_width != 0)
    for (; i < N; ++i) x[i] += y[i];
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
          else for (std::size_t ow = 0; ow < OW; ++ow) dr[ow] = s[ow * G.SW];
        }
        std::fill(d + P, d + LDc, 0.0f);
      }
}

/// The adjoint of im2col: dxp[c, ih, iw] = sum of dcol[k, p] over the (k, p) that im2col read
/// xp[c, ih, iw] into (dxp is overwritten). With stride 1 along the width, each vector of a dxp row
/// is summed in a register from shifted loads of the dcol rows that reach it, each keeping only the
/// lanes that row covers (add_lanes), and stored once (rows in increasing order, so the zero lanes
/// a store spills into the next row are overwritten later); dcol must be readable (KW-1)*DW floats
/// before and a vector past its ends, dxp writable a vector past its end. Otherwise dxp is zeroed
/// and the entries scatter-added.
template <Conv2dGeometry G, std::size_t Hx, std::size_t LDx, std::size_t LDc>
void col2im(const float* dcol, float* dxp) {
  constexpr std::size_t OH = G.OH(), OW = G.OW();
  if constexpr (G.SW == 1) {
    constexpr std::size_t NV = (LDx + simd_width - 1) / simd_width;  // vectors per dxp row
    for (std::size_t c = 0; c < G.Cg(); ++c)
      for (std::size_t ih = 0; ih < Hx; ++ih) {
        float* row = dxp + (c * Hx + ih) * LDx;
        for (std::size_t v = 0; v < NV; ++v) {
          const std::size_t j0 = v * simd_width;
          vfloat acc(0.0f);
          for (std::size_t kh = 0; kh < G.KH && kh * G.DH <= ih; ++kh) {
            const std::size_t t = ih - kh * G.DH;
            if (t % G.SH != 0 || t / G.SH >= OH) continue;
            const float* src = dcol + (c * G.KH + kh) * G.KW * LDc + t / G.SH * OW;
            CTNN_UNROLL for (std::size_t kw = 0; kw < G.KW; ++kw) {
              // lanes j0 + l in [off, off + OW) read dcol row (kh, kw) at column l + j0 - off
              const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(kw * G.DW) - static_cast<std::ptrdiff_t>(j0);
              if (off >= std::ptrdiff_t(simd_width) || off + std::ptrdiff_t(OW) <= 0) continue;
              acc = detail::add_lanes(acc, src + kw * LDc - off, off, off + std::ptrdiff_t(OW));
            }
          }
          acc.store_unaligned(row + j0);
        }
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
      const std::ptrdiff_t sr = detail::pad_source<M>(static_cast<std::ptrdiff_t>(r) - static_cast<std::ptrdiff_t>(PT), H);
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

/// Scratch floats conv2d_backward<G> needs (shared by all samples).
template <Conv2dGeometry G>
inline constexpr std::size_t conv2d_backward_scratch_floats = detail::conv2d_backward_plan<G>::scratch_floats;

namespace detail {

/// The flat path's dz for one sample (see conv2d_backward_plan), every float of each chosen layout
/// written: in the slots (d) `lead` zeros, then slot o gets dz[o, oh, ow] = Op'(y) * dy at
/// oh*LDx + ow and zeros elsewhere; in the compact rows (dzc) row o of DSc floats gets it at
/// oh*OW + ow, zeros from P on; db[o] += the dz sum. Rows are written as whole vectors (zero past
/// OW) in increasing order, so the zeros a row's last vector spills into the next row are
/// overwritten by that row.
template <Conv2dGeometry G, bool Bias, class Op>
inline void flat_dz_rows(const float* y, const float* dy, [[maybe_unused]] float* d, [[maybe_unused]] float* dzc,
                         float* db) {
  using plan = conv2d_backward_plan<G>;
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
    if constexpr (plan::slots) std::fill(slot + OH * LDx, slot + CSz, 0.0f);  // below the last row (its spill is zeros too)
    if constexpr (plan::compact) std::fill(dzc + o * plan::DSc + OH * OW, dzc + (o + 1) * plan::DSc, 0.0f);
    if constexpr (Bias) db[o] += xsimd::hadd(sum);
  }
}

/// dzt[p][o] = dzc[o][p] for p < P, o < O (O a multiple of 16): the compact rows (stride DS) transposed.
template <std::size_t O, std::size_t P, std::size_t DS>
inline void transpose_rows(const float* dzc, float* dzt) {
  static_assert(O % 16 == 0 && DS % 16 == 0 && DS >= P);
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
  for (std::size_t p = 0; p < P; ++p)
    for (std::size_t o = 0; o < O; ++o) dzt[p * O + o] = dzc[o * DS + p];
}

/// The outer weight gradient's register tile: NV vectors of output channels (an o-block) times NT
/// taps of one input channel, NT * NV accumulators, NV loaded dz vectors, broadcasts folded into the FMAs.
template <Conv2dGeometry G>
struct outer_dw_shape {
  static constexpr std::size_t vectors = G.Og() / simd_width;  // per group
  static constexpr std::size_t NV = vectors <= 4 ? vectors : vectors % 4 == 0 ? 4 : vectors % 3 == 0 ? 3
                                                                                   : vectors % 2 == 0 ? 2 : 1;
  static constexpr std::size_t KK = G.KH * G.KW;
  static constexpr std::size_t most = (vector_registers - 2 - NV) / NV;  // accumulators per vector of o
  static constexpr std::size_t tap_groups = (KK + most - 1) / most;
  static constexpr std::size_t NT = (KK + tap_groups - 1) / tap_groups;  // taps per tile, balanced
  // output rows per block: the block's dz columns (NV vectors a row) stay in L1 across the taps
  static constexpr std::size_t rows = std::clamp<std::size_t>(24576 / (G.OW() * NV * simd_width * sizeof(float)), 1, G.OH());
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
  CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[t][v] = vfloat::load_aligned(dwt + (T0 + t) * Og + v * simd_width);
  for (std::size_t oh = oh0; oh < oh1; ++oh) {
    const float* xr = xc + oh * LDs;
    const float* dr = dzt + oh * OW * O;
    for (std::size_t ow = 0; ow < OW; ++ow) {
      vfloat d[NV];
      CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) d[v] = vfloat::load_aligned(dr + ow * O + v * simd_width);
      CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t) {
        const vfloat xv(xr[ow + offs[t]]);
        CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[t][v] = xsimd::fma(xv, d[v], acc[t][v]);
      }
    }
  }
  CTNN_UNROLL for (std::size_t t = 0; t < NT; ++t)
    CTNN_UNROLL for (std::size_t v = 0; v < NV; ++v) acc[t][v].store_aligned(dwt + (T0 + t) * Og + v * simd_width);
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

/// The stride-1 backward: see conv2d_backward_plan.
template <Conv2dGeometry G, bool Bias, class Op>
void conv2d_backward_flat(const float* x, const float* w, const float* y, const float* dy, float* dw, float* db,
                          float* dx, std::size_t n, float* scratch) {
  using plan = conv2d_backward_plan<G>;
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
      flat_dz_rows<G, Bias, Op>(y + (s0 + i) * out_floats, dy + (s0 + i) * out_floats,
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

/// Backward of conv2d + Op for n samples, given y = Op(conv2d(x, w) + b) (read only when Op is not
/// identity_op) and dy = dL/dy [N, O, OH, OW]: dw += dL/dw, db += dL/db (only when Bias), dx = dL/dx
/// (overwritten; skipped when null). dy may be overwritten (with Op'(y) * dy). `scratch` holds
/// conv2d_backward_scratch_floats<G> floats, 64-byte aligned.
template <Conv2dGeometry G, bool Bias, class Op = identity_op>
void conv2d_backward(const float* x, const float* w, const float* y, float* dy, float* dw, float* db, float* dx,
                     std::size_t n, float* scratch) {
  using plan = detail::conv2d_backward_plan<G>;
  if constexpr (plan::use_flat) {
    detail::conv2d_backward_flat<G, Bias, Op>(x, w, y, dy, dw, db, dx, n, scratch);
    return;
  } else {
    constexpr std::size_t P = plan::P, Pp = plan::Pp, K = plan::K, Og = G.Og(), Cg = G.Cg();
    constexpr std::size_t Hp = G.Hp(), LDx = plan::LDx;
    constexpr std::size_t in_floats = G.C * G.H * G.W, out_floats = G.O * P;
    if constexpr (!std::is_same_v<Op, identity_op>) eltwise_backward<Op>(y, dy, dy, n * out_floats);
    const float* dz = dy;
    float* xp = scratch;
    float* dzp = xp + plan::xp_floats;
    float* col = dzp + plan::dz_floats + plan::gap_floats;
    float* dxp = col + plan::col_floats;
    for (std::size_t s = 0; s < n; ++s) {
      const float* xs = x + s * in_floats;
      const float* dzs = dz + s * out_floats;
      for (std::size_t o = 0; o < G.O; ++o) {
        std::copy_n(dzs + o * P, P, dzp + o * Pp);
        std::fill(dzp + o * Pp + P, dzp + (o + 1) * Pp, 0.0f);
      }
      if constexpr (Bias) {
        for (std::size_t o = 0; o < G.O; ++o) {
          vfloat acc(0.0f);
          for (std::size_t p = 0; p < Pp; p += simd_width) acc += vfloat::load_aligned(dzp + o * Pp + p);
          db[o] += xsimd::hadd(acc);
        }
      }
      const float* src = xs;
      if constexpr (G.padded()) {
        pad2d<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, LDx, G.mode>(xs, xp);
        src = xp;
      }
      float* gx = dx ? dxp : nullptr;  // where col2im writes: the (padded) input's gradient
      for (std::size_t g = 0; g < G.groups; ++g) {
        const float* dzg = dzp + g * Og * Pp;
        im2col<G, Hp, LDx, Pp>(src + g * Cg * Hp * LDx, col);
        detail::conv_dw<Og, K, Pp>(dzg, col, dw + g * Og * K);
        if (gx) {
          detail::conv_dcol<Og, K, Pp>(w + g * Og * K, dzg, col);
          col2im<G, Hp, LDx, Pp>(col, gx + g * Cg * Hp * LDx);
        }
      }
      if (gx) {
        if constexpr (G.padded()) unpad2d_add<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, LDx, G.mode>(dxp, dx + s * in_floats);
        else std::memcpy(dx + s * in_floats, dxp, in_floats * sizeof(float));
      }
    }
  }
}

}  // namespace ctnn::kernels
