// Conv2d, the rows form (groups 1, any stride, dilation and padding): the batch's patches as the
// rows of a Linear. Each output pixel of each sample of a chunk is a row m = s*P + p, its patch
// the Ka values its output reads (im2row), so the convolution is Linear's GEMM on M = chunk*P rows:
//   forward:  yr[M, O]   = Op(b + patches[M, Ka] Wa[O, Ka]^T)     Wa^T packed (pack_panels)
//             y[s, o, p] = yr[s*P + p, o]                         (P == 1: yr is y)
//   backward: dzt[O, M]  = dz[s, o, p] as columns, db += its sums; dzr = dzt^T (P == 1: dz)
//             dWa       += dzt patches                            the patches copied into panels
//             dpatches   = dzr Wa                                 Wa's rows copied into panels
//             dx         = row2im(dpatches), then F.pad's adjoint
// No columns are wasted on the padding of a small map (the im2col form rounds each sample's P up
// to whole vectors: 16 lanes for ResNet-18's 1 x 1 maps, 1 of them used). Taps that read only
// zero padding for every output are dropped (zeros mode): a 3x3/pad-1 conv on a 1 x 1 map keeps
// its centre tap, Ka = C instead of 9C. Wa, dWa: w and dw restricted to the live taps (w, dw
// themselves when every tap lives). All three products are Linear's packed tiles (rows_gemm).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "ctnn/kernels/conv2d/geometry.hpp"
#include "ctnn/kernels/conv2d/padding.hpp"
#include "ctnn/kernels/gemm.hpp"

namespace ctnn::kernels::detail {
/// The rows form's chunk: about 512 KiB of patches (measured on ResNet-18's convs at 28x28, Zen 3:
/// 96 Ki to 1 Mi floats within the noise, 24 Ki floats 10% slower).
inline constexpr std::size_t rows_chunk_floats = 131072;

/// The rows form's shape: live taps, Ka, the chunk, and the scratch layouts.
template <Conv2dGeometry G>
struct conv_rows {
  static constexpr std::size_t OH = G.OH(), OW = G.OW(), P = OH * OW, O = G.O, C = G.C;
  static constexpr std::size_t KK = G.KH * G.KW, LDx = G.Wp(), CS = G.Hp() * LDx;  // channel stride of xp
  /// Does kernel offset k (along an axis: stride S, dilation D, padding before Pb, input n, output
  /// `out`) read the input for some output? In zeros mode a tap that never does only reads zeros.
  static constexpr bool reads_input(std::size_t k, std::size_t S, std::size_t D, std::size_t Pb, std::size_t n,
                                    std::size_t out) {
    if (G.mode != PaddingMode::zeros) return true;
    for (std::size_t i = 0; i < out; ++i)
      if (i * S + k * D >= Pb && i * S + k * D < Pb + n) return true;
    return false;
  }
  static constexpr std::size_t A = [] {
    std::size_t a = 0;
    for (std::size_t kh = 0; kh < G.KH; ++kh)
      for (std::size_t kw = 0; kw < G.KW; ++kw)
        a += reads_input(kh, G.SH, G.DH, G.PT, G.H, OH) && reads_input(kw, G.SW, G.DW, G.PL, G.W, OW);
    return a;
  }();
  /// tap[a]: the live taps' indices kh*KW + kw; offset[a]: where they read in xp (kh*DH*LDx + kw*DW).
  static constexpr auto taps = [] {
    std::array<std::size_t, A> t{};
    std::size_t a = 0;
    for (std::size_t kh = 0; kh < G.KH; ++kh)
      for (std::size_t kw = 0; kw < G.KW; ++kw)
        if (reads_input(kh, G.SH, G.DH, G.PT, G.H, OH) && reads_input(kw, G.SW, G.DW, G.PL, G.W, OW))
          t[a++] = kh * G.KW + kw;
    return t;
  }();
  static constexpr auto offset = [] {
    std::array<std::size_t, A> off{};
    for (std::size_t a = 0; a < A; ++a) off[a] = taps[a] / G.KW * G.DH * LDx + taps[a] % G.KW * G.DW;
    return off;
  }();
  static constexpr std::size_t K = C * KK, Ka = C * A;
  static constexpr bool pruned = A < KK;
  /// Samples per chunk: the chunk's patches about rows_chunk_floats, at most 64, and of those down to
  /// half that many, the most whose rows are whole row tiles of the forward's and the input
  /// gradient's GEMMs where one is (the rows past the last whole tile run on tiles of 1 to 5 rows,
  /// at about half the FMA rate: 3 x 3 maps, 512 channels, chunks of 3 samples left 3 of each 27
  /// rows to them, 2.7% of ResNet-18's eval at 96 x 96 on Zen 5).
  static constexpr std::size_t chunk = [] {
    const std::size_t most = std::clamp<std::size_t>(rows_chunk_floats / (P * Ka), 1, 64);
    constexpr std::size_t mr = std::lcm(packed_shape<O>::mr, packed_shape<Ka>::mr);
    for (std::size_t c = most; 2 * c >= most; --c)
      if (c * P % mr == 0) return c;
    return most;
  }();
  static constexpr std::size_t rows = chunk * P;
  // one padded sample (or its gradient), and 16 floats of slack: im2row's blocks read up to 15
  // floats past the last one they use
  static constexpr std::size_t xp_floats = round_up(C * CS + 16, 16);
  static constexpr std::size_t patch_floats = round_up(rows * Ka, 16);
  static constexpr std::size_t yr_floats = P == 1 ? 0 : round_up(rows * O, 16);  // yr or dzr
  static constexpr std::size_t wa_floats = pruned ? round_up(O * Ka, 16) : 0;
  static constexpr std::size_t packed_floats = Ka * round_up(O, simd_width) + 16;  // Wa^T's panels, + alignment
  // forward: xp, patches, yr, Wa, the packed Wa; backward: xp, patches, dzr, dpatches, Wa, dWa, dxp,
  // Wa packed for the input gradient, the patches packed for the weight gradient, dz^T
  static constexpr std::size_t forward_scratch = xp_floats + patch_floats + yr_floats + wa_floats + packed_floats;
  static constexpr std::size_t Kpad = round_up(Ka, simd_width);
  static constexpr std::size_t dx_packed_floats = O * Kpad + 16;       // Wa's panels, + alignment
  static constexpr std::size_t panel_floats = rows * Kpad + 16;       // the patches as dW's panels
  static constexpr std::size_t dzt_floats = round_up(O * rows, 16);   // dz^T [O, rows]
  static constexpr std::size_t backward_scratch =
      2 * xp_floats + 2 * patch_floats + yr_floats + 2 * wa_floats + dx_packed_floats + panel_floats + dzt_floats;
  static_assert(G.groups == 1, "the rows form needs groups == 1");
};

/// Wa[o, c*A + a] = w[o, c*KK + tap[a]]: the live taps' weights.
template <Conv2dGeometry G>
void rows_live_weights(const float* w, float* wa) {
  using R = conv_rows<G>;
  for (std::size_t o = 0; o < R::O; ++o)
    for (std::size_t c = 0; c < R::C; ++c)
      for (std::size_t a = 0; a < R::A; ++a) wa[(o * R::C + c) * R::A + a] = w[(o * R::C + c) * R::KK + R::taps[a]];
}

/// im2row's geometry at run time (see im2row_strided).
struct Im2rowShape {
  std::size_t OH, OW, SH, LDx, CS, C, A;  // outputs, stride along the height, xp's row and channel strides
  const std::size_t* offset;              // the live taps' offsets in xp (conv_rows::offset)
  bool slack;                             // xp readable 16 floats past its end (the padded copy)
};

/// patches[p, c*A + a] = xp[c, oh*SH, ow*SW + offset[a]] for one (padded) sample, p = oh*OW + ow.
/// With AVX2 (AVX-512 too) and SW <= 2, blocks of 8 outputs along a row times 8 taps: a (strided)
/// load per tap, an 8 x 8 register transpose, a store per output (a third of the element copies'
/// instructions; 64 channels at 24 x 24: 17% of the conv's time element by element). When xp has
/// slack, a row's last n < 8 outputs are a block too (its loads read past them, its n stores do
/// not: maps of 12, 6 and 3 outputs a row copied element by element were 4% of ResNet-18's eval
/// at 96 x 96 on Zen 5; masked loads measured no faster than the element copies). The rest element
/// by element.
/// Compiled out of line once per stride along the width: every conv shape shares it (im2row).
template <std::size_t SW>
[[gnu::noinline]] void im2row_strided(const float* xp, float* patches, const Im2rowShape& g) {
  const std::size_t Ka = g.C * g.A;
  std::size_t blocked = 0;  // outputs of each row done in blocks of 8 (with slack: the last one partial)
#if defined(__AVX2__)
  if constexpr (SW <= 2) blocked = g.A < 8 ? 0 : g.slack ? g.OW : g.OW / 8 * 8;
#endif
  for (std::size_t oh = 0; oh < g.OH; ++oh) {
    const float* xr = xp + oh * g.SH * g.LDx;
    float* pr = patches + oh * g.OW * Ka;
#if defined(__AVX2__)
    if constexpr (SW <= 2)
      for (std::size_t ow0 = 0; ow0 < blocked; ow0 += 8) {
        const std::size_t n = std::min<std::size_t>(8, blocked - ow0);  // outputs in this block
        float* row = pr + ow0 * Ka;
        for (std::size_t c = 0; c < g.C; ++c) {
          const float* src = xr + c * g.CS + ow0 * SW;
          float* dst = row + c * g.A;
          std::size_t a0 = 0;
          for (; a0 + 8 <= g.A; a0 += 8) {
            __m256 v[8];  // v[j][i] = tap a0 + j of output ow0 + i; transposed: v[i][j]
            CTNN_UNROLL for (std::size_t j = 0; j < 8; ++j) v[j] = load8_strided<SW>(src + g.offset[a0 + j]);
            transpose8(v);
            if (n == 8) {
              CTNN_UNROLL for (std::size_t i = 0; i < 8; ++i) _mm256_storeu_ps(dst + i * Ka + a0, v[i]);
            } else {
              for (std::size_t i = 0; i < n; ++i) _mm256_storeu_ps(dst + i * Ka + a0, v[i]);
            }
          }
          for (std::size_t a = a0; a < g.A; ++a)
            for (std::size_t i = 0; i < n; ++i) dst[i * Ka + a] = src[g.offset[a] + i * SW];
        }
      }
#endif
    for (std::size_t ow = blocked; ow < g.OW; ++ow)
      for (std::size_t c = 0; c < g.C; ++c) {
        const float* src = xr + c * g.CS + ow * SW;
        float* dst = pr + ow * Ka + c * g.A;
        for (std::size_t a = 0; a < g.A; ++a) dst[a] = src[g.offset[a]];
      }
  }
}

template <Conv2dGeometry G>
void im2row(const float* xp, float* patches) {
  using R = conv_rows<G>;
  static constexpr Im2rowShape shape{R::OH, R::OW, G.SH, R::LDx, R::CS, R::C, R::A, R::offset.data(), G.padded()};
  im2row_strided<G.SW>(xp, patches, shape);
}

/// The adjoint of im2row: dxp[c, oh*SH, ow*SW + offset[a]] += dpatches[p, c*A + a] (dxp zeroed first).
template <Conv2dGeometry G>
void row2im(const float* dpatches, float* dxp) {
  using R = conv_rows<G>;
  std::fill_n(dxp, R::C * R::CS, 0.0f);
  for (std::size_t oh = 0; oh < R::OH; ++oh)
    for (std::size_t ow = 0; ow < R::OW; ++ow) {
      float* dst = dxp + oh * G.SH * R::LDx + ow * G.SW;
      const float* row = dpatches + (oh * R::OW + ow) * R::Ka;
      for (std::size_t c = 0; c < R::C; ++c)
        CTNN_UNROLL for (std::size_t a = 0; a < R::A; ++a) dst[c * R::CS + R::offset[a]] += row[c * R::A + a];
    }
}

/// The chunk's patches: `count` samples from x, each padded into xp first when G pads.
template <Conv2dGeometry G>
void rows_patches(const float* x, std::size_t count, float* xp, float* patches) {
  using R = conv_rows<G>;
  constexpr std::size_t in_floats = G.C * G.H * G.W;
  if constexpr (G.padded()) std::fill(xp + R::C * R::CS, xp + R::xp_floats, 0.0f);  // the slack im2row reads
  for (std::size_t s = 0; s < count; ++s) {
    const float* src = x + s * in_floats;
    if constexpr (G.padded()) {
      pad2d<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, R::LDx, G.mode>(src, xp);
      src = xp;
    }
    im2row<G>(src, patches + s * R::P * R::Ka);
  }
}

/// db[o] += the sum over n samples and P outputs of dz[s, o, p] (NCHW rows [n, O*P]): the bias
/// gradient of the forms that leave dz in the layout the conv's output has (dense, regions).
template <std::size_t O, std::size_t P>
void conv_bias_grad(const float* dz, std::size_t n, float* db) {
  for (std::size_t s = 0; s < n; ++s)
    for (std::size_t o = 0; o < O; ++o) {
      const float* row = dz + (s * O + o) * P;
      vfloat acc(0.0f);
      std::size_t i = 0;
      for (; i + simd_width <= P; i += simd_width) acc += vfloat::load_unaligned(row + i);
      float sum = hsum(acc);
      for (; i < P; ++i) sum += row[i];
      db[o] += sum;
    }
}

/// Rows [m_begin, m_end) of a whole panel, NR floats each, from rows of stride ld (rows already
/// at the panel's first column): NR / simd_width vector copies a row, inlined.
template <std::size_t NR>
CTNN_INLINE void copy_panel_rows(const float* rows, std::size_t ld, std::size_t m_begin, std::size_t m_end,
                                 float* panel) {
  for (std::size_t m = m_begin; m < m_end; ++m) {
    const float* src = rows + m * ld;
    CTNN_UNROLL for (std::size_t v = 0; v < NR; v += simd_width) {
      vfloat::load_unaligned(src + v).store_aligned(panel + m * NR + v);
    }
  }
}

/// Rows [m_begin, m_end) of rows_to_panels' panels (a thread's part; rows_to_panels itself is
/// all M rows and the zero rows after them).
template <std::size_t Ka, std::size_t Rows>
void rows_to_panels_part(const float* rows, std::size_t m_begin, std::size_t m_end, float* panels) {
  constexpr std::size_t Kpad = round_up(Ka, simd_width), NR = packed_shape<Ka>::nr;
  for (std::size_t j0 = 0; j0 < Kpad; j0 += NR) {
    const std::size_t width = std::min(NR, Kpad - j0), valid = std::min(width, Ka - j0);
    float* panel = panels + j0 * Rows;
    if (valid == NR) {
      copy_panel_rows<NR>(rows + j0, Ka, m_begin, m_end, panel);
    } else {  // a copy of run-time length calls memmove: about as long as copying these few floats
      for (std::size_t m = m_begin; m < m_end; ++m) {
        std::copy_n(rows + m * Ka + j0, valid, panel + m * width);
        std::fill(panel + m * width + valid, panel + (m + 1) * width, 0.0f);
      }
    }
  }
}

/// Packs rows [M, Ka] (row stride Ka) as Linear's panels of a weight [Ka, M'] = rows^T with M'
/// = Rows >= M (gemm/packed.hpp): panel p is rows[:, p NR : p NR + width_p], row m contiguous, zeros
/// past Ka and from row M on. Each row's pieces are copies.
template <std::size_t Ka, std::size_t Rows>
void rows_to_panels(const float* rows, std::size_t M, float* panels) {
  constexpr std::size_t Kpad = round_up(Ka, simd_width), NR = packed_shape<Ka>::nr;
  rows_to_panels_part<Ka, Rows>(rows, 0, M, panels);
  if (M < Rows)
    for (std::size_t j0 = 0; j0 < Kpad; j0 += NR) {
      const std::size_t width = std::min(NR, Kpad - j0);
      std::fill(panels + j0 * Rows + M * width, panels + j0 * Rows + Rows * width, 0.0f);
    }
}

/// rows_to_panels for whole panels, the counts at run time: rows [M, Ka] (Ka a multiple of NR) as
/// the panels of a [Ka, Rows] weight, zeros from row M on (the regions form's patches).
template <std::size_t NR>
void rows_to_whole_panels(const float* rows, std::size_t M, std::size_t Rows, std::size_t Ka, float* panels) {
  for (std::size_t j0 = 0; j0 < Ka; j0 += NR) {
    float* panel = panels + j0 * Rows;
    copy_panel_rows<NR>(rows + j0, Ka, 0, M, panel);
    std::fill(panel + M * NR, panel + Rows * NR, 0.0f);
  }
}

/// Columns of B per block of rows_gemm: a K block of them (gemm_kc x 128 floats, 128 KiB) stays in
/// L2 while every row tile of x streams it.
inline constexpr std::size_t rows_gemm_nc = 128;

/// What a tile that starts from zero reads as its starting values (any tile's NV vectors).
alignas(64) inline constexpr float gemm_zeros[4 * simd_width] = {};

/// Linear's packed tile (gemm/packed.hpp) starting from y's values (or from zero: Zero), compiled
/// out of line once per tile height and width: every conv shape of a network shares these few,
/// where tiles templated on K and N (and inlined) would be compiled per shape.
template <class Op, std::size_t MR, std::size_t NV, bool Zero, bool Last>
[[gnu::noinline]] void rows_tile(const float* x, std::size_t ldx, const float* panel, std::size_t width, float* y,
                                 std::size_t ldy, std::size_t kc, std::size_t last_n) {
  static_assert(NV <= 4);
  packed_tile_strided<Op, MR, NV, Zero, Last>(x, ldx, panel, width, Zero ? gemm_zeros : nullptr, y, ldy, kc, last_n);
}

/// A K range of rows_gemm's product: x's columns [xk, xk + len) times B's rows [bk, bk + len).
struct KSegment {
  std::size_t xk, bk, len;
};
/// How rows_gemm addresses its operands: x's row stride, B's K extent (panel q at panels + q * nr
/// * kb), y's row stride, the K segments (in order; Op is applied after the last), and for each of
/// y's panels p, B's panel (panel[p], null: p) and y's first column (ycol[p], null: p * nr). The
/// plain product is one segment of K, x [M, K], B's panels of K rows, y [M, N]; the regions form
/// reads a region's part of larger operands through it.
struct RowsGemmMap {
  std::size_t ldx, kb, ldy;
  const KSegment* segments;
  std::size_t count;
  const std::size_t* panel;
  const std::size_t* ycol;
};

/// rows_gemm's loop, with its counts at run time: panels [0, NP) of NV vectors, the last one
/// of NVlast (its valid floats in its last vector: tail), and tiles of MR rows (a last panel of
/// one vector: 2 MR). Zero: y's values are not read, the product starts from zero (y = x B, the
/// first K block writing every tile; K > 0). Compiled out of line once per tile shape, so that
/// every product of every conv shape shares it.
template <class Op, std::size_t MR, std::size_t NV, std::size_t NVlast, bool Zero = false>
[[gnu::noinline]] void rows_gemm_loop(const float* x, const float* panels, float* y, std::size_t M, std::size_t NP,
                                      std::size_t tail, const RowsGemmMap& g) {
  constexpr std::size_t NR = NV * simd_width;
  constexpr std::size_t group = std::max<std::size_t>(1, rows_gemm_nc / NR);
  // rows [m, m + R) of y against panel p, over K block [k0, k0 + kc) of segment `seg`
  const auto tile = [&]<std::size_t R, bool First, bool Last>(std::size_t m, std::size_t p, const KSegment& seg,
                                                              std::size_t k0, std::size_t kc) {
    const float* xm = x + m * g.ldx + seg.xk + k0;
    const std::size_t q = g.panel ? g.panel[p] : p;
    float* ym = y + m * g.ldy + (g.ycol ? g.ycol[p] : p * NR);
    if (p + 1 < NP)
      rows_tile<Op, R, NV, First, Last>(xm, g.ldx, panels + q * NR * g.kb + (seg.bk + k0) * NR, NR, ym, g.ldy, kc,
                                        simd_width);
    else
      rows_tile<Op, R, NVlast, First, Last>(xm, g.ldx, panels + q * NR * g.kb + (seg.bk + k0) * NVlast * simd_width,
                                            NVlast * simd_width, ym, g.ldy, kc, tail);
  };
  // A last panel of one vector gets tiles of 2 MR rows: MR accumulators alone are too few FMA
  // chains to hide the FMA latency (O = 128 and 512 on AVX2: panels of 3 vectors, then one; their
  // convs 4% faster on Zen 3; 6 x 2 tiles for the 2-vector panel of O = 64 and 256 gained nothing).
  constexpr bool narrow = NVlast == 1 && NV > 1 && 2 * MR <= 8;
  const std::size_t NPwide = narrow && NP > 1 ? NP - 1 : NP;
  const auto rows = [&]<std::size_t TR, bool First, bool Last>(std::size_t p0, std::size_t p1, const KSegment& seg,
                                                               std::size_t k0, std::size_t kc) {
    std::size_t m = 0;
    for (; m + TR <= M; m += TR)
      for (std::size_t p = p0; p < p1; ++p) tile.template operator()<TR, First, Last>(m, p, seg, k0, kc);
    if (m < M)
      for (std::size_t p = p0; p < p1; ++p)
        leftover_rows<TR>(M - m, [&]<std::size_t R>(std::size_t r) {
          tile.template operator()<R, First, Last>(m + r, p, seg, k0, kc);
        });
  };
  const auto block = [&]<bool First, bool Last>(const KSegment& seg, std::size_t k0, std::size_t kc) {
    for (std::size_t p0 = 0; p0 < NPwide; p0 += group)
      rows.template operator()<MR, First, Last>(p0, std::min(NPwide, p0 + group), seg, k0, kc);
    if constexpr (narrow)
      if (NPwide < NP) rows.template operator()<2 * MR, First, Last>(NP - 1, NP, seg, k0, kc);
  };
  // the first K block of a product from zero starts there; Op is applied after the last
  const auto step = [&]<bool Last>(const KSegment& seg, std::size_t k0, std::size_t kc, bool first) {
    if (Zero && first) block.template operator()<Zero, Last>(seg, k0, kc);
    else block.template operator()<false, Last>(seg, k0, kc);
  };
  for (std::size_t i = 0; i < g.count; ++i) {
    const KSegment& seg = g.segments[i];
    for (std::size_t k0 = 0; k0 < seg.len; k0 += gemm_kc) {
      const std::size_t kc = std::min(gemm_kc, seg.len - k0);
      const bool first = i == 0 && k0 == 0;
      if (std::is_same_v<Op, identity_op> || (i + 1 == g.count && k0 + kc == seg.len))
        step.template operator()<true>(seg, k0, kc, first);
      else if constexpr (!std::is_same_v<Op, identity_op>) step.template operator()<false>(seg, k0, kc, first);
    }
  }
}

/// y[M, N] += x[M, K] B[K, N] on packed tiles, B as Linear's panels (pack_panels of B^T, or
/// rows_to_panels of B), Op applied to the last K block's sums. Blocked as a GEMM should be: K
/// blocks of gemm_kc, then groups of panels about rows_gemm_nc wide, then row tiles (Linear's own
/// loop streams every panel for every row tile: right for its 256 x 256 weights, not for a
/// 4608-wide B). y holds the starting values (the bias, or dW); Zero: y = x B, y's values unread
/// (no zero fill first). With a map, the operands are addressed through it (RowsGemmMap; K is
/// then unused).
template <std::size_t K, std::size_t N, class Op, bool Zero = false>
void rows_gemm(const float* x, const float* panels, float* y, std::size_t M, const RowsGemmMap* map = nullptr) {
  using S = packed_shape<N>;
  constexpr std::size_t Npad = round_up(N, simd_width), NP = ceil_div(Npad, S::nr);
  constexpr std::size_t NVlast = (Npad - (NP - 1) * S::nr) / simd_width;
  constexpr std::size_t tail = N % simd_width == 0 ? simd_width : N % simd_width;
  const KSegment whole{0, 0, K};
  const RowsGemmMap plain{K, K, N, &whole, 1, nullptr, nullptr};
  rows_gemm_loop<Op, S::mr, S::nv, NVlast, Zero>(x, panels, y, M, NP, tail, map ? *map : plain);
}

/// y = Op(conv2d(x, w) + b) for n samples, the rows form. `scratch`: conv_rows<G>::forward_scratch floats.
template <Conv2dGeometry G, bool Bias, class Op>
void conv2d_forward_rows(const float* x, const float* w, const float* b, float* y, std::size_t n, float* scratch) {
  using R = conv_rows<G>;
  constexpr std::size_t O = R::O, P = R::P, Ka = R::Ka;
  float* xp = scratch;
  float* patches = xp + R::xp_floats;
  float* yr = patches + R::patch_floats;
  float* wa = yr + R::yr_floats;
  float* packed = align_64(wa + R::wa_floats);
  const float* weights = w;
  if constexpr (R::pruned) {
    rows_live_weights<G>(w, wa);
    weights = wa;
  }
  pack_panels<Ka, O>(weights, packed);
  for (std::size_t s0 = 0; s0 < n; s0 += R::chunk) {
    const std::size_t count = std::min(R::chunk, n - s0);
    rows_patches<G>(x + s0 * G.C * G.H * G.W, count, xp, patches);
    float* out = y + s0 * O * P;
    float* rows = P == 1 ? out : yr;
    for (std::size_t m = 0; m < count * P; ++m)
      if constexpr (Bias) std::copy_n(b, O, rows + m * O);
      else std::fill_n(rows + m * O, O, 0.0f);
    rows_gemm<Ka, O, Op>(patches, packed, rows, count * P);
    if constexpr (P != 1)  // out[s, o, p] = yr[s*P + p, o]
      for (std::size_t s = 0; s < count; ++s) transpose_matrix(yr + s * P * O, O, out + s * O * P, P, P, O);
  }
}

/// Backward of conv2d + Op for n samples, the rows form (conv2d_backward's contract: dy becomes
/// Op'(y) * dy, dw and db accumulate, dx is overwritten or skipped when null).
/// `scratch`: conv_rows<G>::backward_scratch floats.
template <Conv2dGeometry G, bool Bias, class Op>
void conv2d_backward_rows(const float* x, const float* w, const float* y, float* dy, float* dw, float* db, float* dx,
                          std::size_t n, float* scratch) {
  using R = conv_rows<G>;
  constexpr std::size_t O = R::O, P = R::P, Ka = R::Ka, in_floats = G.C * G.H * G.W;
  if constexpr (!std::is_same_v<Op, identity_op>) eltwise_backward<Op>(y, dy, dy, n * O * P);
  float* xp = scratch;
  float* patches = xp + R::xp_floats;
  float* dzr = patches + R::patch_floats;
  float* dpatches = dzr + R::yr_floats;
  float* wa = dpatches + R::patch_floats;
  float* dwa = wa + R::wa_floats;
  float* dxp = dwa + R::wa_floats;
  float* dx_packed = align_64(dxp + R::xp_floats);
  float* panels = align_64(dx_packed + R::dx_packed_floats - 16);
  float* dzt = panels + R::panel_floats - 16;
  const float* weights = w;
  float* grads = dw;
  if constexpr (R::pruned) {
    rows_live_weights<G>(w, wa);
    std::fill_n(dwa, O * Ka, 0.0f);
    weights = wa;
    grads = dwa;
  }
  if (dx) rows_to_panels<Ka, O>(weights, O, dx_packed);  // Wa's rows: the panels of Wa^T
  for (std::size_t s0 = 0; s0 < n; s0 += R::chunk) {
    const std::size_t count = std::min(R::chunk, n - s0), M = count * P;
    const float* dz = dy + s0 * O * P;
    // dzt[o, s*P + p] = dz[s, o, p] (zeros from M on), db; dzr = dzt^T (P == 1: dz itself)
    for (std::size_t o = 0; o < O; ++o) {
      for (std::size_t s = 0; s < count; ++s) std::copy_n(dz + (s * O + o) * P, P, dzt + o * R::rows + s * P);
      std::fill(dzt + o * R::rows + M, dzt + (o + 1) * R::rows, 0.0f);
      if constexpr (Bias) {
        float sum = 0.0f;
        for (std::size_t m = 0; m < M; ++m) sum += dzt[o * R::rows + m];
        db[o] += sum;
      }
    }
    const float* rows = dz;
    if constexpr (P != 1) {
      transpose_matrix(dzt, R::rows, dzr, O, O, M);  // dzr[m, o] = dzt[o, m]
      rows = dzr;
    }
    rows_patches<G>(x + s0 * in_floats, count, xp, patches);
    rows_to_panels<Ka, R::rows>(patches, M, panels);
    rows_gemm<R::rows, Ka, identity_op>(dzt, panels, grads, O);  // dWa += dzt patches
    if (dx) {
      rows_gemm<O, Ka, identity_op, true>(rows, dx_packed, dpatches, M);  // dpatches = dzr Wa
      for (std::size_t s = 0; s < count; ++s) {
        float* dxs = dx + (s0 + s) * in_floats;
        if constexpr (G.padded()) {
          row2im<G>(dpatches + s * P * Ka, dxp);
          unpad2d_add<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, R::LDx, G.mode>(dxp, dxs);
        } else {
          row2im<G>(dpatches + s * P * Ka, dxs);
        }
      }
    }
  }
  if constexpr (R::pruned)
    for (std::size_t o = 0; o < O; ++o)
      for (std::size_t c = 0; c < R::C; ++c)
        for (std::size_t a = 0; a < R::A; ++a)
          dw[(o * R::C + c) * R::KK + R::taps[a]] += dwa[(o * R::C + c) * R::A + a];
}

}  // namespace ctnn::kernels::detail
