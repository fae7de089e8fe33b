// Pooling forward (and, at the end, backward) kernels, specialized on compile-time extents.
//
//   max:      y[c, oh, ow] = max_{kh, kw} x[c, oh*SH - PT + kh*DH, ow*SW - PL + kw*DW]   (outside = -inf)
//   avg:      y[c, oh, ow] = sum over the window's cells inside the input / divisor(oh, ow)
//   adaptive: y[c, i, j]   = mean of x[c, hs(i):he(i), ws(j):we(j)]
//   x: [N, C, H, W], y: [N, C, OH, OW]
//
// Separable: for each output row, a vertical pass reduces the KH input rows of its window into
// one padded row buffer (whole vectors, contiguous), then a horizontal pass reduces KW entries
// of that buffer per output (contiguous loads for stride 1, a gather otherwise). NaN wins a
// max, as in PyTorch.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ctnn/core/conv_arithmetic.hpp"
#include "ctnn/kernels/eltwise.hpp"

namespace ctnn::kernels {

/// MaxPool2d / AvgPool2d geometry, fixed at compile time (PB, PR cover ceil_mode's overhang).
struct Pool2dGeometry {
  std::size_t C, H, W;
  std::size_t KH, KW, SH, SW, DH, DW;
  std::size_t PH, PW;  // padding (both sides)
  std::size_t OH, OW;  // output extents (ceil_mode already applied)
  // Width of the row buffer: every column any window touches, from -PW on.
  constexpr std::size_t row_width() const { return (OW - 1) * SW + (KW - 1) * DW + 1; }
  // The buffer must cover the input row too (copied in before the horizontal pass).
  constexpr std::size_t row_floats() const {
    return round_up(std::max(row_width(), PW + W) + (SW + 1) * simd_width + KW * DW, 16);
  }
};

namespace detail {

// ATen's max-pool rule: v replaces the running max m when it is greater or NaN. (xsimd 8.1 on
// AVX-512 compiles `v != v` as an ordered compare, false for NaN: hence isnan.)
inline auto replaces_max(vfloat m, vfloat v) { return (v > m) || xsimd::isnan(v); }
inline vfloat max_nan(vfloat m, vfloat v) { return xsimd::select(replaces_max(m, v), v, m); }

/// p[0], p[SW], ..., p[(simd_width-1)*SW]; may read up to p[2*simd_width - 1] (the row buffers
/// have the slack). Stride 2: two loads and a two-source permute (AVX-512) or two shuffles (AVX2)
/// instead of a gather; loads at p and p + simd_width, which forward from the row buffer's vector
/// stores more often than load_strided's exact p + 7 (MaxPool2d 3x3/2 on 64 x 48 x 48, 64 samples:
/// 5.5 ms gathered, 2.8 ms here on Zen 3).
template <std::size_t SW>
inline vfloat load_stride(const float* p) {
#if defined(__AVX512F__)
  if constexpr (SW == 2 && simd_width == 16) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(p), even, _mm512_loadu_ps(p + 16));
  }
#endif
#if defined(__AVX2__) && !defined(__AVX512F__)
  if constexpr (SW == 2 && simd_width == 8) {  // [p0 p2 p8 p10 | p4 p6 p12 p14], middle pairs swapped
    const __m256 even = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8));
  }
#endif
  return load_strided<SW>(p);
}

#if defined(__AVX2__)
/// (a0 + a1, a2 + a3, ..., b0 + b1, b2 + b3, ...): the sums of adjacent lanes of a, then of b.
inline vfloat pair_sums(vfloat a, vfloat b) {
#if defined(__AVX512F__)
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  return vfloat(_mm512_permutex2var_ps(a, even, b)) + vfloat(_mm512_permutex2var_ps(a, odd, b));
#else  // [a01 a23 b01 b23 | a45 a67 b45 b67], middle pairs swapped
  const vfloat sums = vfloat(_mm256_shuffle_ps(a, b, 0x88)) + vfloat(_mm256_shuffle_ps(a, b, 0xDD));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(sums), 0xD8));
#endif
}
#endif

/// The vertical pass: r[j] = the reduction (max with NaN winning, or sum) over the window's input
/// rows of output row oh of xc[ih, j], for j < W. Whole vectors, the last one overlapping the one
/// before (each store is idempotent); a window with no row inside the input gives the identity.
template <Pool2dGeometry G, bool Max>
inline void pool_rows(const float* xc, std::size_t oh, float* r) {
  const float* src[G.KH];
  std::size_t m = 0;
  for (std::size_t kh = 0; kh < G.KH; ++kh) {
    const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(oh * G.SH + kh * G.DH) - static_cast<std::ptrdiff_t>(G.PH);
    if (ih >= 0 && ih < static_cast<std::ptrdiff_t>(G.H)) src[m++] = xc + static_cast<std::size_t>(ih) * G.W;
  }
  constexpr float identity = Max ? -std::numeric_limits<float>::infinity() : 0.0f;
  if constexpr (G.W >= simd_width) {
    auto reduce = [&](std::size_t j) {
      vfloat acc(identity);
      for (std::size_t i = 0; i < m; ++i) {
        const vfloat v = vfloat::load_unaligned(src[i] + j);
        acc = Max ? max_nan(acc, v) : acc + v;
      }
      acc.store_unaligned(r + j);
    };
    for (std::size_t j = 0; j + simd_width <= G.W; j += simd_width) reduce(j);
    if constexpr (G.W % simd_width != 0) reduce(G.W - simd_width);
  } else {
    // One partial vector: masked loads, the lanes from W on the identity (r has the room: the row
    // buffer's slack), stored whole. (Element by element, the max's compares were branches on the
    // data: ResNet-18's first pool on 14 x 14 maps with AVX-512 took 3.6 ms a batch of 64 on Zen 5.)
    vfloat acc(identity);
    for (std::size_t i = 0; i < m; ++i) {
      const vfloat v = load_first(src[i], G.W);
      acc = Max ? max_nan(acc, v) : acc + v;
    }
    first_or(acc, G.W, vfloat(identity)).store_unaligned(r);
  }
}

}  // namespace detail

template <Pool2dGeometry G>
inline constexpr std::size_t pool2d_scratch_floats = G.row_floats();

/// y = max_pool2d(x) for n samples; `scratch` holds pool2d_scratch_floats<G>.
template <Pool2dGeometry G>
void maxpool2d_forward(const float* x, float* y, std::size_t n, float* scratch) {
  constexpr float ninf = -std::numeric_limits<float>::infinity();
  constexpr std::size_t RF = G.row_floats();
  float* row = scratch;  // row[j] = max over the window's rows of x[., j - PW]; -inf outside the input
  std::fill_n(row, RF, ninf);  // the vertical pass writes row[PW, PW + W) (narrow rows: the identity past W)
  for (std::size_t s = 0; s < n * G.C; ++s) {
    const float* xc = x + s * G.H * G.W;
    float* yc = y + s * G.OH * G.OW;
    for (std::size_t oh = 0; oh < G.OH; ++oh) {
      detail::pool_rows<G, true>(xc, oh, row + G.PW);
      for (std::size_t ow = 0; ow < G.OW; ow += simd_width) {
        vfloat m(ninf);
        for (std::size_t kw = 0; kw < G.KW; ++kw)
          m = detail::max_nan(m, detail::load_stride<G.SW>(row + ow * G.SW + kw * G.DW));
        detail::store_n(m, yc + oh * G.OW + ow, G.OW - ow);
      }
    }
  }
}

/// Per-axis divisor factors of AvgPool2d (their product divides each window's sum).
template <std::size_t O, std::size_t I, std::size_t P, std::size_t K, std::size_t S, bool CountIncludePad>
inline constexpr auto avg_pool_counts = [] {
  std::array<float, O> a{};
  for (std::size_t o = 0; o < O; ++o) a[o] = static_cast<float>(conv::avg_pool_count(o, I, P, K, S, CountIncludePad));
  return a;
}();

/// AvgPool2d's paths: `automatic` takes the tiling shortcut (windows that tile the input exactly,
/// forward and backward) where it applies; `general` always runs the separable passes (tests).
enum class PoolPath { automatic, general };

/// y = avg_pool2d(x) for n samples (DH = DW = 1). Divisor = divisor_override when non-zero,
/// else PyTorch's window count (count_include_pad: clamped to input + padding; else to input).
template <Pool2dGeometry G, bool CountIncludePad, std::size_t DivisorOverride, PoolPath Path = PoolPath::automatic>
void avgpool2d_forward(const float* x, float* y, std::size_t n, float* scratch) {
  constexpr std::size_t RF = G.row_floats();
  static constexpr auto ch = avg_pool_counts<G.OH, G.H, G.PH, G.KH, G.SH, CountIncludePad>;
  static constexpr auto cw = [] {  // padded to whole vectors (the tail is never stored)
    std::array<float, round_up(G.OW, simd_width)> a{};
    a.fill(1.0f);
    const auto c = avg_pool_counts<G.OW, G.W, G.PW, G.KW, G.SW, CountIncludePad>;
    for (std::size_t i = 0; i < G.OW; ++i) a[i] = c[i];
    return a;
  }();
#if defined(__AVX2__)
  if constexpr (Path == PoolPath::automatic && (simd_width == 16 || simd_width == 8) && G.KW == 2 && G.SW == 2 &&
                G.KH == G.SH && G.PH == 0 && G.PW == 0 && G.OH * G.SH == G.H && G.OW * 2 == G.W && G.DH == 1 &&
                G.DW == 1) {
    // Windows of width 2 that tile the input: per output row and simd_width outputs, the KH input
    // rows summed as two vectors (partial loads at the row's end: nothing read past it), then the
    // pairs added (pair_sums). Every window is whole: one divisor.
    const vfloat div(DivisorOverride != 0 ? static_cast<float>(DivisorOverride) : static_cast<float>(G.KH * 2));
    auto load = [](const float* p, std::size_t m) {
      return m >= simd_width ? vfloat::load_unaligned(p) : detail::load_first(p, m);
    };
    for (std::size_t s = 0; s < n * G.C; ++s) {
      const float* xc = x + s * G.H * G.W;
      float* yc = y + s * G.OH * G.OW;
      for (std::size_t oh = 0; oh < G.OH; ++oh) {
        const float* r = xc + oh * G.SH * G.W;
        for (std::size_t j = 0; j < G.W; j += 2 * simd_width) {
          const std::size_t m0 = std::min(simd_width, G.W - j);
          const std::size_t m1 = G.W - j > simd_width ? std::min(simd_width, G.W - j - simd_width) : 0;
          vfloat a = load(r + j, m0), b = load(r + j + simd_width, m1);
          for (std::size_t kh = 1; kh < G.KH; ++kh) {
            a += load(r + kh * G.W + j, m0);
            b += load(r + kh * G.W + j + simd_width, m1);
          }
          detail::store_n(detail::pair_sums(a, b) / div, yc + oh * G.OW + j / 2, G.OW - j / 2);
        }
      }
    }
    return;
  }
#endif
  float* row = scratch;  // row[j] = sum over the window's rows of x[., j - PW]; 0 outside the input
  std::fill_n(row, RF, 0.0f);  // the vertical pass writes row[PW, PW + W) (narrow rows: the identity past W)
  for (std::size_t s = 0; s < n * G.C; ++s) {
    const float* xc = x + s * G.H * G.W;
    float* yc = y + s * G.OH * G.OW;
    for (std::size_t oh = 0; oh < G.OH; ++oh) {
      detail::pool_rows<G, false>(xc, oh, row + G.PW);
      for (std::size_t ow = 0; ow < G.OW; ow += simd_width) {
        vfloat sum(0.0f);
        for (std::size_t kw = 0; kw < G.KW; ++kw) sum += detail::load_stride<G.SW>(row + ow * G.SW + kw);
        vfloat div;
        if constexpr (DivisorOverride != 0) div = vfloat(static_cast<float>(DivisorOverride));
        else div = vfloat(ch[oh]) * vfloat::load_unaligned(cw.data() + ow);
        detail::store_n(sum / div, yc + oh * G.OW + ow, G.OW - ow);
      }
    }
  }
}

/// Scratch of adaptive_avgpool2d_forward: one row of W sums.
template <std::size_t W>
inline constexpr std::size_t adaptive_pool_scratch_floats = round_up(W, 16);

/// y = adaptive_avg_pool2d(x, (OH, OW)) for n samples of [C, H, W].
template <std::size_t C, std::size_t H, std::size_t W, std::size_t OH, std::size_t OW>
void adaptive_avgpool2d_forward(const float* x, float* y, std::size_t n, float* scratch) {
  float* row = scratch;  // row[j] = sum over the window's rows of x[., j]
  for (std::size_t s = 0; s < n * C; ++s) {
    const float* xc = x + s * H * W;
    float* yc = y + s * OH * OW;
    for (std::size_t i = 0; i < OH; ++i) {
      constexpr auto hs = [] {
        std::array<std::size_t, OH> a{};
        for (std::size_t k = 0; k < OH; ++k) a[k] = conv::adaptive_start(k, H, OH);
        return a;
      }();
      constexpr auto he = [] {
        std::array<std::size_t, OH> a{};
        for (std::size_t k = 0; k < OH; ++k) a[k] = conv::adaptive_end(k, H, OH);
        return a;
      }();
      std::fill_n(row, W, 0.0f);
      for (std::size_t ih = hs[i]; ih < he[i]; ++ih) {
        const float* xr = xc + ih * W;
        std::size_t j = 0;
        for (; j + simd_width <= W; j += simd_width)
          (vfloat::load_unaligned(row + j) + vfloat::load_unaligned(xr + j)).store_unaligned(row + j);
        for (; j < W; ++j) row[j] += xr[j];
      }
      for (std::size_t o = 0; o < OW; ++o) {
        const std::size_t ws = conv::adaptive_start(o, W, OW), we = conv::adaptive_end(o, W, OW);
        vfloat acc(0.0f);
        std::size_t j = ws;
        for (; j + simd_width <= we; j += simd_width) acc += vfloat::load_unaligned(row + j);
        float sum = hsum(acc);
        for (; j < we; ++j) sum += row[j];
        yc[i * OW + o] = sum / static_cast<float>((he[i] - hs[i]) * (we - ws));
      }
    }
  }
}


// ---- backward --------------------------------------------------------------------------------
//
//   max:      dx[argmax of each window] += dy (ATen's CPU rule: scanning rows then columns, a value
//             replaces the running max when it is greater or NaN; so the first maximum wins, or the
//             last NaN; a window of -inf sends its gradient to its first cell inside the input)
//   avg:      every input cell of a window gets dy / divisor (the forward's divisor; padding cells
//             receive nothing)
//   adaptive: every cell of window (i, j) gets dy / kh / kw
// dx is overwritten. Separable like forward: the avg gradient of an output row is spread along
// the width into a row buffer once, then added to each of the window's input rows (vectors).

/// dx = max_pool2d backward for n samples of x (the forward's input) and dy.
template <Pool2dGeometry G>
void maxpool2d_backward(const float* x, const float* dy, float* dx, std::size_t n) {
  constexpr auto W = static_cast<std::ptrdiff_t>(G.W);
  constexpr auto DH = static_cast<std::ptrdiff_t>(G.DH), DW = static_cast<std::ptrdiff_t>(G.DW);
  // The valid taps of each window along an axis: [first, end) with step D (ATen: start moved
  // forward by whole dilations out of the left padding, end clamped to the input).
  static constexpr auto hfirst = [] {
    std::array<std::ptrdiff_t, G.OH> a{};
    for (std::size_t o = 0; o < G.OH; ++o) {
      auto i = static_cast<std::ptrdiff_t>(o * G.SH) - static_cast<std::ptrdiff_t>(G.PH);
      while (i < 0) i += static_cast<std::ptrdiff_t>(G.DH);
      a[o] = i;
    }
    return a;
  }();
  static constexpr auto hend = [] {
    std::array<std::ptrdiff_t, G.OH> a{};
    for (std::size_t o = 0; o < G.OH; ++o)
      a[o] = std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(o * G.SH + (G.KH - 1) * G.DH + 1) -
                                          static_cast<std::ptrdiff_t>(G.PH),
                                      static_cast<std::ptrdiff_t>(G.H));
    return a;
  }();
  static constexpr auto wfirst = [] {
    std::array<std::ptrdiff_t, G.OW> a{};
    for (std::size_t o = 0; o < G.OW; ++o) {
      auto i = static_cast<std::ptrdiff_t>(o * G.SW) - static_cast<std::ptrdiff_t>(G.PW);
      while (i < 0) i += static_cast<std::ptrdiff_t>(G.DW);
      a[o] = i;
    }
    return a;
  }();
  static constexpr auto wend = [] {
    std::array<std::ptrdiff_t, G.OW> a{};
    for (std::size_t o = 0; o < G.OW; ++o)
      a[o] = std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(o * G.SW + (G.KW - 1) * G.DW + 1) -
                                          static_cast<std::ptrdiff_t>(G.PW),
                                      static_cast<std::ptrdiff_t>(G.W));
    return a;
  }();
  constexpr float ninf = -std::numeric_limits<float>::infinity();
  std::fill_n(dx, n * G.C * G.H * G.W, 0.0f);
  // Whole vectors of outputs along a row (the running max of a window is a chain of dependent
  // compares, about 90 cycles a 3 x 3 window one at a time: ResNet-18's first pool took 66 ms a
  // batch of 64 at 96 x 96): each window row of the input copied into a buffer padded with -inf
  // (a padded cell never wins), a vector of windows scanned tap by tap with the scalar rule as
  // selects, the argmax kept as float indices (exact below 2^24 cells), then the gradients added
  // one by one in output order. Indices stay within a plane, so a plane must be below 2^24 cells.
  constexpr std::size_t RF = G.row_floats(), OWv = round_up(G.OW, simd_width);
  constexpr bool vectors = G.H * G.W < (std::size_t{1} << 24) && G.KH * RF <= 16384;
  static constexpr auto first_col = [] {  // per output: its first column inside the input
    std::array<float, OWv> a{};
    for (std::size_t o = 0; o < G.OW; ++o) a[o] = static_cast<float>(wfirst[o]);
    return a;
  }();
  constexpr auto PW = static_cast<std::ptrdiff_t>(G.PW);
  alignas(64) float rows[G.KH][vectors ? RF : 1];  // rows[r][j]: input row h0 + r*DH at column j - PW, -inf outside
  if constexpr (vectors)
    for (auto& r : rows) std::fill_n(r, RF, ninf);
  alignas(64) float lane[simd_width];
  for (std::size_t i = 0; i < simd_width; ++i) lane[i] = static_cast<float>(i * G.SW);
  const vfloat lanes = vfloat::load_aligned(lane);
  for (std::size_t s = 0; s < n * G.C; ++s) {
    const float* xc = x + s * G.H * G.W;
    const float* dyc = dy + s * G.OH * G.OW;
    float* dxc = dx + s * G.H * G.W;
    for (std::size_t oh = 0; oh < G.OH; ++oh) {
      const std::ptrdiff_t h0 = hfirst[oh], h1 = hend[oh];
      if (h0 >= h1) continue;  // no tap inside the input
      if constexpr (vectors) {
        std::size_t nr = 0;
        for (std::ptrdiff_t ih = h0; ih < h1; ih += DH) std::copy_n(xc + ih * W, G.W, rows[nr++] + G.PW);
        for (std::size_t ow0 = 0; ow0 < G.OW; ow0 += simd_width) {
          vfloat m(ninf), best = vfloat(static_cast<float>(h0 * W)) + vfloat::load_unaligned(first_col.data() + ow0);
          for (std::size_t r = 0; r < nr; ++r) {
            const auto ih = h0 + static_cast<std::ptrdiff_t>(r) * DH;
            for (std::size_t kw = 0; kw < G.KW; ++kw) {
              const std::size_t j = ow0 * G.SW + kw * G.DW;  // buffer column of lane 0's tap
              const vfloat v = detail::load_stride<G.SW>(rows[r] + j);
              const auto take = detail::replaces_max(m, v);
              m = xsimd::select(take, v, m);
              best =
                  xsimd::select(take, vfloat(static_cast<float>(ih * W + static_cast<std::ptrdiff_t>(j) - PW)) + lanes,
                                best);
            }
          }
          alignas(64) float at[simd_width];
          best.store_aligned(at);
          for (std::size_t i = 0; i < simd_width && ow0 + i < G.OW; ++i)
            if (wfirst[ow0 + i] < wend[ow0 + i]) dxc[static_cast<std::size_t>(at[i])] += dyc[oh * G.OW + ow0 + i];
        }
      } else {  // the scalar rule, one window at a time
        for (std::size_t ow = 0; ow < G.OW; ++ow) {
          const std::ptrdiff_t w0 = wfirst[ow], w1 = wend[ow];
          if (w0 >= w1) continue;
          std::ptrdiff_t best = h0 * W + w0;
          float m = ninf;
          for (std::ptrdiff_t ih = h0; ih < h1; ih += DH)
            for (std::ptrdiff_t iw = w0; iw < w1; iw += DW) {
              const float v = xc[ih * W + iw];
              if (v > m || v != v) {
                m = v;
                best = ih * W + iw;
              }
            }
          dxc[best] += dyc[oh * G.OW + ow];
        }
      }
    }
  }
}

/// dx = avg_pool2d backward for n samples of dy (DH = DW = 1; the divisor as avgpool2d_forward).
/// `scratch` holds pool2d_scratch_floats<G>.
template <Pool2dGeometry G, bool CountIncludePad, std::size_t DivisorOverride, PoolPath Path = PoolPath::automatic>
void avgpool2d_backward(const float* dy, float* dx, std::size_t n, float* scratch) {
  static constexpr auto ch = avg_pool_counts<G.OH, G.H, G.PH, G.KH, G.SH, CountIncludePad>;
  static constexpr auto cw = avg_pool_counts<G.OW, G.W, G.PW, G.KW, G.SW, CountIncludePad>;
  if constexpr (Path == PoolPath::automatic && G.KH == G.SH && G.KW == G.SW && G.PH == 0 && G.PW == 0 &&
                G.OH * G.SH == G.H && G.OW * G.SW == G.W && G.DH == 1 && G.DW == 1) {
    // The windows tile the input exactly: every input cell gets the gradient of its one window, so
    // dx is written once (no zeroing, no adds): each row of a window band is dy's row spread along
    // the width (KW == 2 with AVX-512 or AVX2: a lane-doubling permute, stored KH times from the
    // register; reading back a row just written with masked or scalar stores would stall on store
    // forwarding: BN-LeNet's first pool, 2.7% -> 2.1% of the step on AVX2).
    constexpr float div = DivisorOverride != 0 ? static_cast<float>(DivisorOverride) : static_cast<float>(G.KH * G.KW);
    for (std::size_t s = 0; s < n * G.C; ++s) {
      const float* dyc = dy + s * G.OH * G.OW;
      float* dxc = dx + s * G.H * G.W;
      for (std::size_t oh = 0; oh < G.OH; ++oh) {
        const float* g = dyc + oh * G.OW;
        float* r0 = dxc + oh * G.SH * G.W;
        bool done = false;
#if defined(__AVX512F__)
        if constexpr (G.KW == 2 && simd_width == 16) {
          const __m512i twice = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
          CTNN_UNROLL for (std::size_t ow = 0; ow < G.OW; ow += 8) {
            const std::size_t m = std::min<std::size_t>(8, G.OW - ow);
            const vfloat v(_mm512_permutexvar_ps(twice, detail::load_first(g + ow, m) / vfloat(div)));
            CTNN_UNROLL for (std::size_t kh = 0; kh < G.KH; ++kh) detail::store_n(v, r0 + kh * G.W + 2 * ow, 2 * m);
          }
          done = true;
        }
#elif defined(__AVX2__)
        if constexpr (G.KW == 2 && simd_width == 8) {  // 4 windows a vector; the last OW % 4 one by one
          const __m256i twice = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
          std::size_t ow = 0;
          CTNN_UNROLL for (; ow + 4 <= G.OW; ow += 4) {
            const __m256 v = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(g + ow)), twice);
            const vfloat d = vfloat(v) / vfloat(div);
            CTNN_UNROLL for (std::size_t kh = 0; kh < G.KH; ++kh) d.store_unaligned(r0 + kh * G.W + 2 * ow);
          }
          for (; ow < G.OW; ++ow)
            CTNN_UNROLL for (std::size_t kh = 0; kh < G.KH; ++kh) r0[kh * G.W + 2 * ow] = r0[kh * G.W + 2 * ow + 1] =
                g[ow] / div;
          done = true;
        }
#endif
        if (!done) {
          for (std::size_t ow = 0; ow < G.OW; ++ow) {
            const float v = g[ow] / div;
            for (std::size_t kw = 0; kw < G.KW; ++kw) r0[ow * G.KW + kw] = v;
          }
          for (std::size_t kh = 1; kh < G.KH; ++kh) detail::copy_row<G.W>(r0 + kh * G.W, r0);
        }
      }
    }
    return;
  }
  constexpr std::size_t RW = G.row_width();
  float* row = scratch;  // row[j]: the gradient of padded column j from this output row's windows
  std::fill_n(dx, n * G.C * G.H * G.W, 0.0f);
  for (std::size_t s = 0; s < n * G.C; ++s) {
    const float* dyc = dy + s * G.OH * G.OW;
    float* dxc = dx + s * G.H * G.W;
    for (std::size_t oh = 0; oh < G.OH; ++oh) {
      std::fill_n(row, std::max(RW, G.PW + G.W), 0.0f);
      for (std::size_t ow = 0; ow < G.OW; ++ow) {
        float div;
        if constexpr (DivisorOverride != 0) div = static_cast<float>(DivisorOverride);
        else div = ch[oh] * cw[ow];
        const float g = dyc[oh * G.OW + ow] / div;
        float* r = row + ow * G.SW;
        for (std::size_t kw = 0; kw < G.KW; ++kw) r[kw] += g;
      }
      for (std::size_t kh = 0; kh < G.KH; ++kh) {
        const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(oh * G.SH + kh) - static_cast<std::ptrdiff_t>(G.PH);
        if (ih < 0 || ih >= static_cast<std::ptrdiff_t>(G.H)) continue;
        detail::add_to<G.W>(dxc + static_cast<std::size_t>(ih) * G.W, row + G.PW);
      }
    }
  }
}

/// dx = adaptive_avg_pool2d backward for n samples of dy [C, OH, OW] (input [C, H, W]).
template <std::size_t C, std::size_t H, std::size_t W, std::size_t OH, std::size_t OW>
void adaptive_avgpool2d_backward(const float* dy, float* dx, std::size_t n) {
  std::fill_n(dx, n * C * H * W, 0.0f);
  for (std::size_t s = 0; s < n * C; ++s) {
    const float* dyc = dy + s * OH * OW;
    float* dxc = dx + s * H * W;
    for (std::size_t i = 0; i < OH; ++i) {
      const std::size_t hs = conv::adaptive_start(i, H, OH), he = conv::adaptive_end(i, H, OH);
      for (std::size_t j = 0; j < OW; ++j) {
        const std::size_t ws = conv::adaptive_start(j, W, OW), we = conv::adaptive_end(j, W, OW);
        const float g = dyc[i * OW + j] / static_cast<float>(he - hs) / static_cast<float>(we - ws);
        for (std::size_t ih = hs; ih < he; ++ih)
          for (std::size_t iw = ws; iw < we; ++iw) dxc[ih * W + iw] += g;
      }
    }
  }
}

}  // namespace ctnn::kernels
