// Conv2d, the regions form (groups 1, zeros padding): the rows form (rows.hpp) with a map's outputs
// split into regions whose outputs all read the input through the same taps. On a small padded map
// the outputs along the border read zero padding through some taps: a 3x3/pad-1 conv on a 4 x 4
// map multiplies 144 C*O products a sample in the rows form, 44 of them with padding; in its
// 3 x 3 regions (corners, edges, the middle), 100.
// Region r holds outputs [oh0, oh1) x [ow0, ow1) and A_r taps, every one of which reads the input
// for every output of the region. Its patches are tap-major, column a*Cp + c (Cp: C rounded up to
// whole panels, zeros past C), and so are the live taps' weights, Wt[o, l*Cp + c] = w[o, c,
// live[l]]: one packing of Wt serves every region, rows_gemm reading a region's taps out of it
// through a RowsGemmMap (weights gathered per region would cost as much as the work they save).
//   forward:  yr[M_r, O]     = Op(b + patches_r[M_r, A_r Cp] Wt[:, taps_r]^T)
//             y[s, o, p]     = yr[s*P_r + i, o], p the region's i-th output (through yh[s, p, o])
//   backward: dzr_r[M_r, O]  = dz[s, o, p] over the region's outputs (through dzh); db += dz's sums
//             dWt[:, taps_r] += dzr_r^T patches_r;  at the end dW[o, c, live[l]] += dWt[o, l*Cp + c]
//             dpatches_r     = dzr_r Wt[:, taps_r];  dxh += row2im_r(dpatches_r)
// The patches are copied from the samples transposed to channels-last, xh[pixel, c]: a tap is C
// contiguous floats there (taps along a kernel row with dilation 1: one run), and every tap of a
// region reads inside the map, so nothing is padded. dx is dxh transposed back. A batch of
// samples is transposed at once; every region then runs on it, in chunks of its own. The regions
// are tables (RegionPlan) read at run time, so every region of every shape runs the same code.
// Wt and its panels may come prepared (regions_prepared, kernels/conv2d/shared.hpp), and dWt may
// be left held for conv2d_fold_held instead of added into dW.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "ctnn/kernels/conv2d/rows.hpp"

namespace ctnn::kernels::detail {

/// Outputs [i0, i1) along one axis.
struct AxisRun {
  std::size_t i0, i1;
};

/// One axis of a zeros-mode conv (stride S, dilation D, padding before Pb, input N, kernel K,
/// output Out): whether output i reads the input through offset k, and the runs of consecutive
/// outputs that read it through the same offsets.
template <std::size_t S, std::size_t D, std::size_t Pb, std::size_t N, std::size_t K, std::size_t Out>
struct axis_runs {
  static constexpr bool reads(std::size_t i, std::size_t k) { return i * S + k * D >= Pb && i * S + k * D < Pb + N; }
  static constexpr bool same(std::size_t i, std::size_t j) {
    for (std::size_t k = 0; k < K; ++k)
      if (reads(i, k) != reads(j, k)) return false;
    return true;
  }
  static constexpr std::size_t count = [] {
    std::size_t c = 1;
    for (std::size_t i = 1; i < Out; ++i) c += !same(i - 1, i);
    return c;
  }();
  static constexpr std::array<AxisRun, count> runs = [] {
    std::array<AxisRun, count> r{};
    std::size_t c = 0;
    for (std::size_t i = 1; i < Out; ++i)
      if (!same(i - 1, i)) {
        r[c].i1 = i;
        r[++c].i0 = i;
      }
    r[c].i1 = Out;
    return r;
  }();
};

/// One region: outputs [oh0, oh1) x [ow0, ow1) and their A taps, tap[a] their places among the
/// conv's live taps (conv_rows::taps), in order; tap a of output (oh, ow) reads pixel
/// oh*SH*W + ow*SW + at[a] of the sample (inside the map).
template <std::size_t KK>
struct ConvRegion {
  std::size_t oh0, oh1, ow0, ow1, A;
  std::array<std::size_t, KK> tap;
  std::array<std::ptrdiff_t, KK> at;
  constexpr std::size_t OH() const { return oh1 - oh0; }
  constexpr std::size_t OW() const { return ow1 - ow0; }
  constexpr std::size_t P() const { return OH() * OW(); }
};

/// The regions form's shape: the live taps, Cp, the regions and each one's chunk.
template <Conv2dGeometry G>
struct conv_regions {
  static constexpr std::size_t OH = G.OH(), OW = G.OW(), P = OH * OW, O = G.O, C = G.C, KK = G.KH * G.KW;
  /// The taps some output reads the input through (the rows form's live taps): Wt holds these.
  static constexpr std::size_t L = conv_rows<G>::A;
  static constexpr auto live = conv_rows<G>::taps;
  /// Panels of the tap-major weights and patches (packed_shape's width for these: 4 vectors with
  /// AVX-512, 3 below); each tap's block of columns is C rounded up to whole panels, Cp (zeros
  /// past C), so that no panel holds two taps.
  static constexpr std::size_t NR = (simd_width >= 16 ? 4 : 3) * simd_width, Cp = round_up(C, NR);
  static constexpr std::size_t HW = G.H * G.W, in_floats = C * HW, KC = L * Cp;
  /// Whether Wt is worth keeping from the forward for the backward: where the live taps are a few
  /// of w's (a 3x3/pad-1 conv on a 1 x 1 map: its centre tap, 1 float in 9 of a 9.4 MB weight at
  /// 512 channels, read in full to gather it); not where every tap lives.
  static constexpr bool keeps = L < KK;

  static_assert(G.groups == 1 && G.mode == PaddingMode::zeros, "the regions form needs groups == 1 and zeros padding");
  using Hs = axis_runs<G.SH, G.DH, G.PT, G.H, G.KH, OH>;
  using Ws = axis_runs<G.SW, G.DW, G.PL, G.W, G.KW, OW>;
  static constexpr std::size_t count = Hs::count * Ws::count;
  static constexpr std::array<ConvRegion<KK>, count> regions = [] {
    std::array<ConvRegion<KK>, count> rs{};
    for (std::size_t i = 0; i < Hs::count; ++i)
      for (std::size_t j = 0; j < Ws::count; ++j) {
        auto& r = rs[i * Ws::count + j];
        r = {Hs::runs[i].i0, Hs::runs[i].i1, Ws::runs[j].i0, Ws::runs[j].i1, 0, {}, {}};
        for (std::size_t kh = 0; kh < G.KH; ++kh)
          for (std::size_t kw = 0; kw < G.KW; ++kw)
            if (Hs::reads(r.oh0, kh) && Ws::reads(r.ow0, kw)) {
              r.tap[r.A] = static_cast<std::size_t>(std::find(live.begin(), live.end(), kh * G.KW + kw) - live.begin());
              r.at[r.A++] = (static_cast<std::ptrdiff_t>(kh * G.DH) - static_cast<std::ptrdiff_t>(G.PT)) *
                                static_cast<std::ptrdiff_t>(G.W) +
                            static_cast<std::ptrdiff_t>(kw * G.DW) - static_cast<std::ptrdiff_t>(G.PL);
            }
      }
    return rs;
  }();
  /// The multiply-adds of a sample in units of C*O: each output's taps (the rows form: P * its live taps).
  static constexpr std::size_t taps_per_sample = [] {
    std::size_t t = 0;
    for (const auto& r : regions) t += r.P() * r.A;
    return t;
  }();
  /// Samples transposed at once (xh), about 1 Mi floats, at most 64.
  static constexpr std::size_t batch = std::clamp<std::size_t>((std::size_t{1} << 20) / in_floats, 1, 64);
  /// chunk[r]: region r's samples per chunk: its patches about rows_chunk_floats, at most `batch`,
  /// and of those down to half that many, the most whose rows are whole row tiles. A region of a
  /// few outputs takes many samples, so its weight gradient's reduction (chunk * P_r rows) stays long.
  static constexpr std::array<std::size_t, count> chunk = [] {
    std::array<std::size_t, count> c{};
    for (std::size_t r = 0; r < count; ++r) {
      const std::size_t Pr = regions[r].P(), Ka = std::max<std::size_t>(1, Cp * regions[r].A);
      const std::size_t most = std::clamp<std::size_t>(rows_chunk_floats / (Pr * Ka), 1, batch);
      c[r] = most;
      for (std::size_t k = most; 2 * k >= most; --k)
        if (k * Pr % packed_shape<O>::mr == 0) {
          c[r] = k;
          break;
        }
    }
    return c;
  }();
};

/// The regions form's scratch: the most floats f(region r, its chunk's rows) over the regions,
/// rounded up to 16, and the layouts.
template <Conv2dGeometry G>
struct regions_scratch {
  using RG = conv_regions<G>;
  template <class F>
  static constexpr std::size_t largest(F f) {
    std::size_t m = 0;
    for (std::size_t r = 0; r < RG::count; ++r) m = std::max(m, f(RG::regions[r], RG::chunk[r] * RG::regions[r].P()));
    return round_up(m, 16);
  }
  static constexpr std::size_t Cp = RG::Cp, O = RG::O;
  static constexpr std::size_t xh = RG::batch * RG::in_floats;
  static constexpr std::size_t patches = largest([](const auto& r, std::size_t rows) { return rows * Cp * r.A; });
  static constexpr std::size_t yr = RG::P == 1 ? 0 : largest([](const auto&, std::size_t rows) { return rows * O; });
  static constexpr std::size_t wt = round_up(O * RG::KC, 16);
  static constexpr std::size_t packed = RG::KC * round_up(O, simd_width) + 16;  // + alignment
  static constexpr std::size_t yh =
      RG::P == 1 ? 0 : RG::batch * RG::P * O;  // the batch's outputs (or dz) channels-last
  // forward: xh, one region's patches, its rows yr, yh, Wt, Wt packed
  static constexpr std::size_t forward = xh + patches + yr + yh + wt + packed;
  static constexpr std::size_t dzt = largest([](const auto&, std::size_t rows) { return O * rows; });
  static constexpr std::size_t dx_panels = O * RG::KC + 16;
  // backward: xh, dxh, patches, dzr, dpatches, dzt, the patches' panels, dzh, Wt, dWt, Wt's panels
  static constexpr std::size_t backward = 2 * xh + 3 * patches + yr + dzt + yh + 2 * wt + dx_panels;
};

/// A run of a region's taps whose pixels are adjacent in xh and whose columns are adjacent in the
/// patches: taps [first, first + taps).
struct PixelRun {
  std::size_t first, taps;
};

/// One region as the passes read it, at run time: every region of every shape runs the same code
/// (im2row_region, row2im_region, rows_gemm_loop), compiled once.
struct RegionPlan {
  std::size_t oh0, oh1, ow0, ow1, A, Ka, chunk;
  const std::ptrdiff_t* at;                 // where each tap reads, from its output's pixel
  const PixelRun* runs;                     // the copies of a patch row
  std::size_t run_count;
  const KSegment* segments;                 // the forward's K segments: runs of consecutive live taps
  std::size_t segment_count;
  const std::size_t* wt_panel;              // for each of the region's panels, Wt's
  const std::size_t* dwt_column;            // ... and dWt's first column
  constexpr std::size_t OW() const { return ow1 - ow0; }
  constexpr std::size_t P() const { return (oh1 - oh0) * (ow1 - ow0); }
  constexpr std::size_t rows() const { return chunk * P(); }
};

/// Region r's tables: its K segments (consecutive taps: consecutive columns of the patches and
/// rows of Wt), its pixel runs (taps along a kernel row with dilation 1, when C == Cp), and for
/// each of its panels, Wt's panel and dWt's column.
template <class RG, std::size_t r>
struct region_tables {
  static constexpr auto region = RG::regions[r];
  static constexpr std::size_t Cp = RG::Cp, A = region.A, Ka = Cp * A;
  static_assert(A == 0 || packed_shape<Ka>::nr == RG::NR);
  static constexpr bool adjacent(std::size_t a) { return a > 0 && RG::C == Cp && region.at[a] == region.at[a - 1] + 1; }
  static constexpr bool consecutive(std::size_t a) { return a > 0 && region.tap[a] == region.tap[a - 1] + 1; }
  static constexpr std::size_t segment_count = [] {
    std::size_t n = 0;
    for (std::size_t a = 0; a < A; ++a) n += !consecutive(a);
    return n;
  }();
  static constexpr auto segments = [] {
    std::array<KSegment, segment_count + 1> s{};
    std::size_t n = 0;
    for (std::size_t a = 0; a < A; ++a)
      if (consecutive(a)) s[n - 1].len += Cp;
      else s[n++] = {a * Cp, region.tap[a] * Cp, Cp};
    return s;
  }();
  static constexpr std::size_t run_count = [] {
    std::size_t n = 0;
    for (std::size_t a = 0; a < A; ++a) n += !adjacent(a);
    return n;
  }();
  static constexpr auto runs = [] {
    std::array<PixelRun, run_count + 1> s{};
    std::size_t n = 0;
    for (std::size_t a = 0; a < A; ++a)
      if (adjacent(a)) ++s[n - 1].taps;
      else s[n++] = {a, 1};
    return s;
  }();
  static constexpr std::size_t panels = Ka / RG::NR, per_tap = Cp / RG::NR;
  static constexpr auto wt_panel = [] {
    std::array<std::size_t, panels + 1> q{};
    for (std::size_t p = 0; p < panels; ++p) q[p] = region.tap[p / per_tap] * per_tap + p % per_tap;
    return q;
  }();
  static constexpr auto dwt_column = [] {
    std::array<std::size_t, panels + 1> q{};
    for (std::size_t p = 0; p < panels; ++p) q[p] = wt_panel[p] * RG::NR;
    return q;
  }();
  static constexpr RegionPlan plan{region.oh0,
                                   region.oh1,
                                   region.ow0,
                                   region.ow1,
                                   A,
                                   Ka,
                                   RG::chunk[r],
                                   region.at.data(),
                                   runs.data(),
                                   run_count,
                                   segments.data(),
                                   segment_count,
                                   wt_panel.data(),
                                   dwt_column.data()};
};

/// Every region's plan.
template <class RG>
inline constexpr auto region_plans = []<std::size_t... r>(std::index_sequence<r...>) {
  return std::array<RegionPlan, RG::count>{region_tables<RG, r>::plan...};
}(std::make_index_sequence<RG::count>{});

/// What im2row_region and row2im_region need of the geometry: a sample's pixels (channels-last,
/// C floats each), the step in pixels between outputs along the height (SH*W) and the width (SW),
/// and C rounded up to whole panels.
struct RegionsLayout {
  std::size_t C, Cp, in_floats, step_h, step_w;
};

/// Region r's patches for `count` samples of xh (channels-last):
/// patches[s*P_r + i, a*Cp + c] = xh[s, pixel of output i through tap a, c] (zero from c = C on).
inline void im2row_region(const RegionPlan& r, const RegionsLayout& g, const float* xh, std::size_t count,
                          float* patches) {
  float* dst = patches;
  for (std::size_t s = 0; s < count; ++s)
    for (std::size_t oh = r.oh0; oh < r.oh1; ++oh)
      for (std::size_t ow = r.ow0; ow < r.ow1; ++ow, dst += r.Ka) {
        const auto pixel = static_cast<std::ptrdiff_t>(oh * g.step_h + ow * g.step_w);
        const float* src = xh + s * g.in_floats;
        for (std::size_t j = 0; j < r.run_count; ++j) {
          const PixelRun run = r.runs[j];
          copy_floats(dst + run.first * g.Cp, src + (pixel + r.at[run.first]) * static_cast<std::ptrdiff_t>(g.C),
                      run.taps * g.C);
        }
        if (g.Cp != g.C)
          for (std::size_t a = 0; a < r.A; ++a) std::fill(dst + a * g.Cp + g.C, dst + (a + 1) * g.Cp, 0.0f);
      }
}

/// The adjoint: dxh[s, pixel of output i through tap a, c] += dpatches[s*P_r + i, a*Cp + c], c < C.
inline void row2im_region(const RegionPlan& r, const RegionsLayout& g, const float* dpatches, std::size_t count,
                          float* dxh) {
  const float* src = dpatches;
  for (std::size_t s = 0; s < count; ++s)
    for (std::size_t oh = r.oh0; oh < r.oh1; ++oh)
      for (std::size_t ow = r.ow0; ow < r.ow1; ++ow, src += r.Ka) {
        const auto pixel = static_cast<std::ptrdiff_t>(oh * g.step_h + ow * g.step_w);
        float* dst = dxh + s * g.in_floats;
        for (std::size_t j = 0; j < r.run_count; ++j) {
          const PixelRun run = r.runs[j];
          add_floats(dst + (pixel + r.at[run.first]) * static_cast<std::ptrdiff_t>(g.C), src + run.first * g.Cp,
                     run.taps * g.C);
        }
      }
}

/// Wt[o, l*Cp + c] = w[o, c, live[l]] (zero from c = C on): the live taps' weights, tap-major;
/// rows [o_begin, o_end) of it.
template <Conv2dGeometry G>
void regions_weights(const float* w, float* wt, std::size_t o_begin = 0, std::size_t o_end = G.O) {
  using RG = conv_regions<G>;
  constexpr std::size_t C = RG::C, Cp = RG::Cp, KK = RG::KK;
  for (std::size_t o = o_begin; o < o_end; ++o)
    if constexpr (RG::L == KK && Cp == C) {
      transpose_matrix(w + o * C * KK, KK, wt + o * RG::KC, C, C, KK);
    } else {
      for (std::size_t l = 0; l < RG::L; ++l) {
        for (std::size_t c = 0; c < C; ++c) wt[o * RG::KC + l * Cp + c] = w[(o * C + c) * KK + RG::live[l]];
        std::fill(wt + o * RG::KC + l * Cp + C, wt + o * RG::KC + (l + 1) * Cp, 0.0f);
      }
    }
}

/// The weights as both passes read them, prepared once (conv2d_prepare, kernels/conv2d/shared.hpp):
/// Wt, its panels for the forward (pack_panels) and for the input gradient (rows_to_panels).
template <Conv2dGeometry G>
struct regions_prepared {
  using Z = regions_scratch<G>;
  static constexpr std::size_t wt = 0, packed = Z::wt, dx_panels = packed + Z::packed;
  static constexpr std::size_t floats = dx_panels + Z::dx_panels;
};

/// Outputs [o_begin, o_end) of the prepared weights (o_begin a multiple of the forward's panel
/// width): for the forward, Wt and its panels; for the backward, the input gradient's panels of
/// the Wt the forward prepared.
template <Conv2dGeometry G>
void regions_prepare(const float* w, float* prepared, bool backward, std::size_t o_begin, std::size_t o_end) {
  using RG = conv_regions<G>;
  using Pr = regions_prepared<G>;
  float* wt = prepared + Pr::wt;
  if (!backward) {
    regions_weights<G>(w, wt, o_begin, std::min(o_end, RG::O));
    pack_panels<RG::KC, RG::O>(wt, prepared + Pr::packed, o_begin, o_end);
  } else {
    rows_to_panels_part<RG::KC, RG::O>(wt, o_begin, std::min(o_end, RG::O), prepared + Pr::dx_panels);
  }
}

/// dW[o, c, live[l]] += dWt[o, l*Cp + c] for o in [o_begin, o_end).
template <Conv2dGeometry G>
void regions_fold_weight_grad(const float* dwt, float* dw, std::size_t o_begin, std::size_t o_end) {
  using RG = conv_regions<G>;
  constexpr std::size_t C = RG::C, KC = RG::KC;
  for (std::size_t o = o_begin; o < o_end; ++o)
    for (std::size_t l = 0; l < RG::L; ++l)
      for (std::size_t c = 0; c < C; ++c) dw[(o * C + c) * RG::KK + RG::live[l]] += dwt[o * KC + l * RG::Cp + c];
}

/// xh[s, pixel, c] = x[s, c, pixel] for `count` samples: channels-last.
template <Conv2dGeometry G>
void regions_channels_last(const float* x, std::size_t count, float* xh) {
  using RG = conv_regions<G>;
  for (std::size_t s = 0; s < count; ++s)
    transpose_matrix(x + s * RG::in_floats, RG::HW, xh + s * RG::in_floats, RG::C, RG::C, RG::HW);
}

/// The layout im2row_region and row2im_region read.
template <Conv2dGeometry G>
inline constexpr RegionsLayout regions_layout{G.C, conv_regions<G>::Cp, G.C* G.H* G.W, G.SH* G.W, G.SW};

/// y = Op(conv2d(x, w) + b) for n samples, the regions form. `scratch`: regions_scratch<G>::forward
/// floats; `prepared` (null: prepared here, in scratch): regions_prepared<G> for w.
template <Conv2dGeometry G, bool Bias, class Op>
void conv2d_forward_regions(const float* x, const float* w, const float* b, float* y, std::size_t n, float* scratch,
                            const float* prepared = nullptr) {
  using RG = conv_regions<G>;
  using Z = regions_scratch<G>;
  constexpr std::size_t O = RG::O, P = RG::P;
  float* xh = scratch;
  float* patches = xh + Z::xh;
  float* yr = patches + Z::patches;
  float* yh = yr + Z::yr;
  const float* packed = prepared ? prepared + regions_prepared<G>::packed : nullptr;
  if (!prepared) {
    float* wt = yh + Z::yh;
    float* own = align_64(wt + Z::wt);
    regions_weights<G>(w, wt);
    pack_panels<RG::KC, O>(wt, own);
    packed = own;
  }
  for (std::size_t b0 = 0; b0 < n; b0 += RG::batch) {
    const std::size_t samples = std::min(RG::batch, n - b0);
    regions_channels_last<G>(x + b0 * RG::in_floats, samples, xh);
    for (const RegionPlan& r : region_plans<RG>) {
      const std::size_t Pr = r.P(), OWr = r.OW();
      const RowsGemmMap map{r.Ka, RG::KC, O, r.segments, r.segment_count, nullptr, nullptr};
      for (std::size_t s0 = 0; s0 < samples; s0 += r.chunk) {
        const std::size_t count = std::min(r.chunk, samples - s0), M = count * Pr;
        float* rows = P == 1 ? y + (b0 + s0) * O : yr;
        for (std::size_t m = 0; m < M; ++m)
          if constexpr (Bias) std::copy_n(b, O, rows + m * O);
          else std::fill_n(rows + m * O, O, 0.0f);
        if (r.A > 0) {
          im2row_region(r, regions_layout<G>, xh + s0 * RG::in_floats, count, patches);
          rows_gemm<0, O, Op>(patches, packed, rows, M, &map);
        } else if constexpr (!std::is_same_v<Op, identity_op>) {
          eltwise_forward<Op>(rows, rows, M * O);  // outputs that read only padding: Op(b)
        }
        if constexpr (P != 1)  // yh[s, p, o] = yr[s*Pr + i, o], a row of the region at a time
          for (std::size_t s = 0; s < count; ++s)
            for (std::size_t oh = r.oh0; oh < r.oh1; ++oh)
              copy_floats(yh + ((s0 + s) * P + oh * RG::OW + r.ow0) * O, yr + (s * Pr + (oh - r.oh0) * OWr) * O,
                          OWr * O);
      }
    }
    if constexpr (P != 1)  // y[s, o, p] = yh[s, p, o]
      for (std::size_t s = 0; s < samples; ++s) transpose_matrix(yh + s * P * O, O, y + (b0 + s) * O * P, P, P, O);
  }
}

/// Backward of conv2d + Op for n samples, the regions form (conv2d_backward's contract).
/// `scratch`: regions_scratch<G>::backward floats; `prepared`: regions_prepared<G> for w (null:
/// prepared here); `held` (null: dW itself): where dWt is left instead of being added into dW.
template <Conv2dGeometry G, bool Bias, class Op>
void conv2d_backward_regions(const float* x, const float* w, const float* y, float* dy, float* dw, float* db, float* dx,
                             std::size_t n, float* scratch, const float* prepared = nullptr, float* held = nullptr) {
  using RG = conv_regions<G>;
  using Z = regions_scratch<G>;
  using S = packed_shape<RG::KC>;  // every region's panels: whole, NR wide
  constexpr std::size_t O = RG::O, P = RG::P, C = RG::C, KC = RG::KC, in_floats = RG::in_floats;
  if constexpr (!std::is_same_v<Op, identity_op>) eltwise_backward<Op>(y, dy, dy, n * O * P);
  if constexpr (Bias) conv_bias_grad<O, P>(dy, n, db);
  float* xh = scratch;
  float* dxh = xh + Z::xh;
  float* patches = dxh + Z::xh;
  float* dzr = patches + Z::patches;
  float* dpatches = dzr + Z::yr;
  float* dzt = dpatches + Z::patches;
  float* panels = dzt + Z::dzt;
  float* dzh = panels + Z::patches;
  float* wt = dzh + Z::yh;
  float* dwt = held ? held : wt + Z::wt;
  const float* dx_panels = prepared ? prepared + regions_prepared<G>::dx_panels : nullptr;
  std::fill_n(dwt, O * KC, 0.0f);
  if (dx && !prepared) {
    float* own = align_64(wt + 2 * Z::wt);
    regions_weights<G>(w, wt);
    rows_to_panels<KC, O>(wt, O, own);  // Wt's rows: the panels of the input gradient's B
    dx_panels = own;
  }
  for (std::size_t b0 = 0; b0 < n; b0 += RG::batch) {
    const std::size_t samples = std::min(RG::batch, n - b0);
    regions_channels_last<G>(x + b0 * in_floats, samples, xh);
    if (dx) std::fill_n(dxh, samples * in_floats, 0.0f);
    if constexpr (P != 1)  // dzh[s, p, o] = dz[s, o, p]
      for (std::size_t s = 0; s < samples; ++s) transpose_matrix(dy + (b0 + s) * O * P, P, dzh + s * P * O, O, O, P);
    for (const RegionPlan& r : region_plans<RG>) {
      if (r.A == 0) continue;
      const std::size_t Pr = r.P(), OWr = r.OW(), rows = r.rows(), NP = r.Ka / RG::NR;
      const KSegment all_rows{0, 0, rows}, all_o{0, 0, O};
      const RowsGemmMap dw_map{rows, rows, KC, &all_rows, 1, nullptr, r.dwt_column};
      const RowsGemmMap dx_map{O, O, r.Ka, &all_o, 1, r.wt_panel, nullptr};
      for (std::size_t s0 = 0; s0 < samples; s0 += r.chunk) {
        const std::size_t count = std::min(r.chunk, samples - s0), M = count * Pr;
        // dzr[s*Pr + i, o] = dz[s, o, p_i] (P == 1: dz itself), dzt = dzr^T (zeros from M on)
        const float* dzm = dy + (b0 + s0) * O * P;
        if constexpr (P != 1) {
          for (std::size_t s = 0; s < count; ++s)
            for (std::size_t oh = r.oh0; oh < r.oh1; ++oh)
              copy_floats(dzr + (s * Pr + (oh - r.oh0) * OWr) * O, dzh + ((s0 + s) * P + oh * RG::OW + r.ow0) * O,
                          OWr * O);
          dzm = dzr;
        }
        transpose_matrix(dzm, O, dzt, rows, M, O);
        if (M < rows)
          for (std::size_t o = 0; o < O; ++o) std::fill(dzt + o * rows + M, dzt + (o + 1) * rows, 0.0f);
        im2row_region(r, regions_layout<G>, xh + s0 * in_floats, count, patches);
        rows_to_whole_panels<RG::NR>(patches, M, rows, r.Ka, panels);
        // dWt[:, taps] += dzt patches
        rows_gemm_loop<identity_op, S::mr, S::nv, S::nv>(dzt, panels, dwt, O, NP, simd_width, dw_map);
        if (dx) {
          // dpatches = dzr Wt[:, taps]
          rows_gemm_loop<identity_op, S::mr, S::nv, S::nv, true>(dzm, dx_panels, dpatches, M, NP, simd_width, dx_map);
          row2im_region(r, regions_layout<G>, dpatches, count, dxh + s0 * in_floats);
        }
      }
    }
    if (dx)  // dx[s, c, pixel] = dxh[s, pixel, c]
      for (std::size_t s = 0; s < samples; ++s)
        transpose_matrix(dxh + s * in_floats, C, dx + (b0 + s) * in_floats, RG::HW, RG::HW, C);
  }
  if (!held) regions_fold_weight_grad<G>(dwt, dw, 0, O);
}

}  // namespace ctnn::kernels::detail
