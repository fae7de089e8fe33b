// The conv plan: which form runs each pass of a Conv2dGeometry, and the scratch each needs.
//   forward:          gemm (im2col + GEMM, pointwise), rows (the batch's patches as Linear rows),
//                     regions (the rows form per region of outputs that read the same taps),
//                     dense (the conv as a Linear on the flattened sample), depthwise, flat, shifted
//   weight gradient:  gemm (im2col), rows, regions, dense, flat, shifted, outer
//   input gradient:   col2im (dcol GEMM + col2im), rows (row2im), regions, dense, flat (full correlation)
// The cost model chooses (Conv2dForms{} = automatic); a Conv2dForms argument forces a form on any
// geometry it supports (the form-grid test runs every form that way).
#pragma once

#include <algorithm>
#include <cstddef>

#include "ctnn/kernels/conv2d/dense.hpp"
#include "ctnn/kernels/conv2d/flat.hpp"
#include "ctnn/kernels/conv2d/gemm.hpp"
#include "ctnn/kernels/conv2d/regions.hpp"
#include "ctnn/kernels/conv2d/rows.hpp"

namespace ctnn::kernels {

// ---- The forms, and how to force one ------------------------------------------------------------

/// The forward's forms. gemm: im2col + GEMM (any geometry; a pointwise conv's im2col is a copy);
/// rows: the batch's patches as the rows of Linear's GEMM (groups 1; taps that read only zero
/// padding dropped); regions: the rows form once per region of outputs that read the input through
/// the same taps (groups 1, zeros padding); dense: the conv as a Linear on the flattened sample
/// (groups 1, zeros padding); depthwise: groups == C; flat and shifted: stride 1.
enum class ConvForward { automatic, gemm, rows, depthwise, flat, shifted, dense, regions };
/// The weight gradient's forms. gemm: im2col + conv_dw (any geometry; its input gradient is then
/// col2im); rows: Linear's weight gradient on the batch's patches (groups 1; its input gradient is
/// then rows); flat, shifted: stride 1; outer: stride 1 and Og a multiple of the vector width;
/// dense: dT = dz^T x on the flattened samples, folded into dW (its input gradient is then dense);
/// regions: the rows form's per region (its input gradient is then regions).
enum class ConvWeightGrad { automatic, gemm, rows, flat, shifted, outer, dense, regions };
/// The input gradient's forms. col2im: dcol = W^T dz, then col2im (any geometry); flat: the full
/// correlation of dz with the flipped kernel (stride 1, beside a flat/shifted/outer weight gradient);
/// rows: dpatches = dz W, then row2im (beside the rows weight gradient only); dense: dx = dz T
/// (beside the dense weight gradient only); regions: the rows form's per region (beside the regions
/// weight gradient only).
enum class ConvInputGrad { automatic, col2im, rows, flat, dense, regions };

/// Which form runs each pass; `automatic` is the cost model's choice (what every layer uses).
struct Conv2dForms {
  ConvForward forward = ConvForward::automatic;
  ConvWeightGrad weight_grad = ConvWeightGrad::automatic;
  ConvInputGrad input_grad = ConvInputGrad::automatic;
};

namespace detail {
/// The rows form's scratch (conv_rows, instantiated only where the form runs: it needs groups 1).
template <Conv2dGeometry G, bool Used>
constexpr std::size_t rows_scratch(bool backward) {
  if constexpr (Used) return backward ? conv_rows<G>::backward_scratch : conv_rows<G>::forward_scratch;
  else return 0;
}
/// The dense form's scratch (conv_dense, instantiated only where the form runs).
template <Conv2dGeometry G, bool Used>
constexpr std::size_t dense_scratch(bool backward) {
  if constexpr (Used) return backward ? conv_dense<G>::backward_scratch : conv_dense<G>::forward_scratch;
  else return 0;
}
/// The regions form's scratch (instantiated only where the form runs).
template <Conv2dGeometry G, bool Used>
constexpr std::size_t regions_scratch_floats(bool backward) {
  if constexpr (Used) return backward ? regions_scratch<G>::backward : regions_scratch<G>::forward;
  else return 0;
}
/// Where the regions form runs: groups 1, zeros padding, some tap live.
template <Conv2dGeometry G>
constexpr bool regions_ok() {
  if constexpr (G.groups != 1 || G.mode != PaddingMode::zeros) return false;
  else return conv_rows<G>::A > 0;
}
/// The regions form pays where its multiply-adds (each tap's C columns rounded up to whole
/// panels, Cp) are at most nine tenths of the rows form's (maps of 12 x 12 and less with a 3x3/pad-1
/// kernel), and on maps of at most 7 x 7 outputs without padded columns, where its channels-last
/// copies beat im2row's (Zen 5, batch 64, ms forward / backward, rows or the cost model's choice
/// before it -> regions: 128 channels at 4 x 4 1.54 / 3.38 -> 1.10 / 2.89; 64 at 7 x 7 1.29 / 2.50
/// -> 1.02 / 2.40; 512 at 3 x 3 13.1 / 33 -> 8.6 / 24; 256 at 6 x 6 12.2 / 26.2 -> 10.0 / 22.6; 128
/// at 12 x 12 12.9 / 24.2 -> 11.5 / 24.3; 512 on a 1 x 1 map 0.50 / 1.08 -> 0.47 / 1.04; but 64 at
/// 24 x 24, 5% saved, 12.3 / 24.8 -> 13.1 / 28.9).
template <Conv2dGeometry G>
constexpr bool regions_pay() {
  if constexpr (!regions_ok<G>()) return false;
  else {
    using R = conv_regions<G>;
    const std::size_t rows_macs = G.OH() * G.OW() * conv_rows<G>::A * G.C, macs = R::taps_per_sample * R::Cp;
    return 10 * macs <= 9 * rows_macs || (G.OH() * G.OW() <= 49 && R::Cp == G.C);
  }
}
/// The dense form pays where a sample's map has no more pixels than the rows form keeps taps (T then
/// has at most as many C x O blocks per output as the rows form's patches have taps, none of them
/// zeros of padding, and nothing is copied), the map is more than one pixel (on a 1 x 1 map the rows
/// form multiplies the centre tap alone and copies next to nothing) and T is at most dense_max_floats.
template <Conv2dGeometry G>
constexpr bool dense_pays() {
  constexpr std::size_t Q = G.H * G.W;
  if constexpr (G.groups != 1 || G.mode != PaddingMode::zeros || Q == 1) return false;
  else return Q <= conv_rows<G>::A && G.C * Q * G.O * G.OH() * G.OW() <= dense_max_floats;
}

/// The forward's plan: the form (forced by Forms, or the cost model's), its scratch layout.
template <Conv2dGeometry G, Conv2dForms Forms = Conv2dForms{}>
struct conv2d_plan {
  static constexpr std::size_t OH = G.OH(), OW = G.OW(), P = OH * OW;
  static constexpr std::size_t K = G.Cg() * G.KH * G.KW;
  static constexpr std::size_t LDx = G.Wp();
  // Stride 1 (not 1x1, not depthwise): the flat direct convolution, per group, is the cost model's
  // choice when at least half of each flat row is output.
  static constexpr FlatConv flat{G.Cg(), G.Og(), G.KH, G.KW, G.DH, G.DW, LDx, G.Hp() * LDx, OH, OW};
  static constexpr bool stride1 = G.SH == 1 && G.SW == 1;
  static constexpr bool auto_flat = stride1 && !G.pointwise() && !G.depthwise() && flat.efficient();
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
    if (!auto_flat || shifted_main * sizeof(float) > 65536) return false;
    const std::size_t saved = (flat.NQ() - std::min(flat.NQ(), shifted.NQ())) * K * G.O;  // vector FMAs
    return saved > ratio * ((shifted_main + simd_width - 1) / simd_width);
  }
  // The rows form (groups 1) where the flat forms do not run (strided, 1x1, narrow maps), and for
  // wide layers: at least 32 output channels and K >= 64 (measured on Zen 3, AVX2: its forward runs
  // at 60-85 GFLOP/s on 3x3 convs of 64-256 channels from 56x56 down to 6x6 maps, the flat form's at
  // 36-48). Its backward only while a sample's patches are at most 1 MiB: beyond that the weight
  // gradient's k-slices of M = P rows no longer stay in cache (64 channels at 56x56, P*K = 1.8 M
  // floats: 30 GFLOP/s against the outer form's 54; at 12x12 and below the rows form wins).
  // With 32 vector registers (AVX-512) the flat form's tiles are larger: where at least 90% of its
  // lanes are outputs it is the faster forward (Zen 5, batch 64, GFLOP/s flat / rows: 64 channels
  // at 56 x 56 226 / 216, at 24 x 24 241 / 221; 128 at 12 x 12, 86% outputs, 214 / 241; with AVX2
  // on the same core the flat form runs at 53-77 against the rows form's 115-125). (At 7 x 7, 77%
  // outputs, 182 / 162 alone, but ResNet-18's eval at 28 x 28 ran 4% slower with it.) And a short
  // reduction (K < 64: ResNet-18's 7x7/2 stem on one channel) over many outputs runs faster as
  // im2col and its GEMM (at 96 x 96, P = 2304: 165 against 111; at 28 x 28, P = 196, the rows form,
  // 150 against 135).
  static constexpr bool flat_dense = simd_width >= 16 && 10 * P >= 9 * flat.LQ();
  static constexpr bool gemm_short = simd_width >= 16 && !auto_flat && K < 64 && P >= 1024;
  static constexpr bool rows_wide = G.groups == 1 && G.O >= 32 && K >= 64;
  static constexpr bool rows_pays = G.groups == 1 && !gemm_short && (!auto_flat || (rows_wide && !flat_dense));
  // With AVX-512, from 7 x 7 maps on (at least 49 outputs a sample), the outer weight gradient and
  // the col2im input gradient beat the rows form's backward (Zen 5, batch 64, GFLOP/s: 64 channels
  // at 7 x 7 204 against 162, 128 at 12 x 12 238 against 208; 128 at 4 x 4 185 against 200, 256
  // at 6 x 6 192 against 205; with AVX2 on the same core within 4% of each other at 7 x 7); and
  // where the flat forms do not run, a short reduction (K < 128) over at least 64 outputs a sample
  // takes the im2col weight gradient (the stem's, dW alone: 111 against 67 at 28 x 28, 97 against
  // 73 at 96 x 96; a 1x1/2 conv 64 -> 128 from 24 x 24, dW and dx: 128 against 101).
  static constexpr bool outer_dense = simd_width >= 16 && P >= 49 && G.Og() % simd_width == 0;
  static constexpr bool gemm_dw_short = simd_width >= 16 && !auto_flat && K < 128 && P >= 64;
  static constexpr bool rows_backward_pays =
      G.groups == 1 && !gemm_dw_short && (!auto_flat || (rows_wide && P * K <= 262144 && !outer_dense));
  static constexpr ConvForward form = Forms.forward != ConvForward::automatic ? Forms.forward
                                      : dense_pays<G>()                       ? ConvForward::dense
                                      : regions_pay<G>()                      ? ConvForward::regions
                                      : G.depthwise() && !auto_flat           ? ConvForward::depthwise
                                      : rows_pays                             ? ConvForward::rows
                                      : !auto_flat                            ? ConvForward::gemm
                                      : shifted_pays(2)                       ? ConvForward::shifted
                                                                              : ConvForward::flat;
  static_assert(form != ConvForward::rows || G.groups == 1, "the rows form needs groups == 1");
  static_assert(form != ConvForward::dense || (G.groups == 1 && G.mode == PaddingMode::zeros),
                "the dense form needs groups == 1 and zeros padding");
  static_assert(form != ConvForward::regions || regions_ok<G>(),
                "the regions form needs groups == 1 and zeros padding");
  static_assert(form != ConvForward::depthwise || G.groups == G.C, "the depthwise form needs groups == in_channels");
  static_assert(!(form == ConvForward::flat || form == ConvForward::shifted) || stride1,
                "the flat and shifted forms need stride 1");
  static constexpr bool use_flat = form == ConvForward::flat || form == ConvForward::shifted;
  static constexpr bool use_shifted = form == ConvForward::shifted;
  // The (padded) input in scratch (gemm, depthwise): row stride LDx, Hp rows per channel, + slack
  // for vector reads past the last row by the depthwise path and gathers.
  static constexpr std::size_t xp_floats =
      G.padded() || form == ConvForward::depthwise
          ? round_up(G.C * G.Hp() * LDx + (G.SW + 1) * simd_width + G.KW * G.DW, 16)
          : 0;
  static constexpr std::size_t panel_floats = form == ConvForward::gemm ? K * conv_block_width : 0;
  // the shifted copies, with the slack its tiles read past the last channel and room for a row's spill
  static constexpr std::size_t shifted_floats = round_up(shifted_main + std::max(shifted.slack(), simd_width), 16);
  static constexpr std::size_t flat_pad_floats = G.padded() ? round_up(G.C * G.Hp() * LDx, 16) : 0;
  // The flat path's source per sample (the padded input, or the shifted copies), its slack
  // included, and the form its tiles run.
  static constexpr FlatConv used = use_shifted ? shifted : flat;
  static constexpr std::size_t src_main = use_shifted ? shifted_main : G.C * G.Hp() * LDx;
  static constexpr std::size_t src_floats = use_shifted ? shifted_floats : flat_xp_floats;
  // flat path: the source, the packed weights, then (shifted) the padded input
  static constexpr bool use_rows = form == ConvForward::rows;
  static constexpr bool use_dense = form == ConvForward::dense;
  static constexpr bool use_regions = form == ConvForward::regions;
  static constexpr std::size_t scratch_floats =
      use_dense     ? dense_scratch<G, use_dense>(false)
      : use_regions ? regions_scratch_floats<G, use_regions>(false)
      : use_rows    ? rows_scratch<G, use_rows>(false)
      : use_flat    ? src_floats + flat_weight_floats<used> * G.groups + (use_shifted ? flat_pad_floats : 0)
                    : xp_floats + panel_floats;
};
}  // namespace detail

// ---- backward ----------------------------------------------------------------------------------

namespace detail {

/// The backward's plan: the weight- and input-gradient forms, the dz layouts, the scratch layout.
/// Geometry shared with the forward (flat, shifted) comes from the forward's automatic plan.
template <Conv2dGeometry G, Conv2dForms Forms = Conv2dForms{}>
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
  //   col2im: dcol[K, DSc] = W_g^T dz_g on the compact rows (conv_dcol), then col2im into the padded
  //           input's gradient: chosen when the full correlation would spend most of its FMAs on the
  //           zeros around dz (LeNet's second conv: 10x10 outputs, 5x5 kernel, 51% of its taps).
  using fwd = conv2d_plan<G>;
  static constexpr FlatConv flat = fwd::flat;
  static constexpr std::size_t KK = G.KH * G.KW;
  static constexpr std::size_t reach = (G.KH - 1) * G.DH * LDx + (G.KW - 1) * G.DW;  // farthest tap
  static constexpr std::size_t lead = round_up(reach, 16);
  static constexpr std::size_t CSz = round_up(G.Hp() * LDx, 16);  // >= flat.LQ(): OH <= Hp
  static constexpr FlatConv flat_dx{G.Og(), G.Cg(), G.KH,   G.KW,   G.DH,  G.DW,
                                    LDx,    CSz,    G.Hp(), G.Wp(), reach, reach + (OH - 1) * LDx + OW};
  // vector FMAs (and col2im's masked adds) per sample and group of the two input-gradient forms
  static constexpr std::size_t flat_dx_cost = G.Cg() * G.Og() * KK * flat_dx.NQ();
  static constexpr std::size_t gemm_dx_cost = K * G.Og() * ((P + simd_width - 1) / simd_width) +
                                              2 * G.Cg() * G.Hp() * ((LDx + simd_width - 1) / simd_width) * KK;
  static constexpr ConvWeightGrad dw_form = Forms.weight_grad != ConvWeightGrad::automatic ? Forms.weight_grad
                                            : dense_pays<G>()                              ? ConvWeightGrad::dense
                                            : regions_pay<G>()                             ? ConvWeightGrad::regions
                                            : fwd::rows_backward_pays                      ? ConvWeightGrad::rows
                                            : !fwd::auto_flat                              ? ConvWeightGrad::gemm
                                            : G.Og() % simd_width == 0                     ? ConvWeightGrad::outer
                                            : fwd::shifted_pays(4)                         ? ConvWeightGrad::shifted
                                                                                           : ConvWeightGrad::flat;
  static constexpr ConvInputGrad dx_form =
      Forms.input_grad != ConvInputGrad::automatic ? Forms.input_grad
      : dw_form == ConvWeightGrad::dense           ? ConvInputGrad::dense
      : dw_form == ConvWeightGrad::regions         ? ConvInputGrad::regions
      : dw_form == ConvWeightGrad::rows            ? ConvInputGrad::rows
      : dw_form == ConvWeightGrad::gemm || fwd::outer_dense || 5 * gemm_dx_cost < 4 * flat_dx_cost
          ? ConvInputGrad::col2im
          : ConvInputGrad::flat;
  static constexpr bool use_rows = dw_form == ConvWeightGrad::rows;
  static_assert(use_rows == (dx_form == ConvInputGrad::rows),
                "the rows weight gradient and the rows input gradient run together");
  static constexpr bool use_dense = dw_form == ConvWeightGrad::dense;
  static_assert(use_dense == (dx_form == ConvInputGrad::dense),
                "the dense weight gradient and the dense input gradient run together");
  static constexpr bool use_regions = dw_form == ConvWeightGrad::regions;
  static_assert(use_regions == (dx_form == ConvInputGrad::regions),
                "the regions weight gradient and the regions input gradient run together");
  static_assert(!use_regions || regions_ok<G>(), "the regions form needs groups == 1 and zeros padding");
  static_assert(!use_dense || (G.groups == 1 && G.mode == PaddingMode::zeros),
                "the dense form needs groups == 1 and zeros padding");
  static_assert(!use_rows || G.groups == 1, "the rows form needs groups == 1");
  static_assert(dw_form == ConvWeightGrad::gemm || use_rows || use_dense || use_regions || fwd::stride1,
                "the flat, shifted and outer weight gradients need stride 1");
  static_assert(dw_form != ConvWeightGrad::outer || G.Og() % simd_width == 0,
                "the outer weight gradient needs out_channels / groups to be a multiple of the vector width");
  static_assert(dw_form != ConvWeightGrad::gemm || dx_form == ConvInputGrad::col2im,
                "the im2col weight gradient computes its input gradient by col2im");
  // The rows form, the stride-1 path (flat, shifted or outer dW; flat or col2im dx), else the general one.
  static constexpr bool use_flat = dw_form != ConvWeightGrad::gemm && !use_rows && !use_dense && !use_regions;
  static_assert(!use_flat || (flat.LQ() <= CSz && flat_dx.LQ() <= CSz && flat_dx.slack() <= reach));
  static constexpr bool outer_dw = dw_form == ConvWeightGrad::outer;
  static constexpr bool shifted_dw = dw_form == ConvWeightGrad::shifted;
  static constexpr bool flat_dw = dw_form == ConvWeightGrad::flat;
  static constexpr bool gemm_dx = use_flat && dx_form == ConvInputGrad::col2im;
  static constexpr bool slots = flat_dw || !gemm_dx;
  static constexpr bool compact = outer_dw || shifted_dw || gemm_dx;
  static constexpr FlatConv shifted = fwd::shifted;
  static constexpr std::size_t DSc =
      round_up(P + (shifted_dw ? simd_width : 0), 16);  // >= shifted.LQ() and a row's spill
  static constexpr std::size_t dzs_floats = slots ? lead + G.O * CSz : 0;
  static constexpr std::size_t dzc_floats = compact ? G.O * DSc : 0;
  static constexpr std::size_t dzt_floats = outer_dw ? P * G.O : 0;
  // Each sample's input as its weight gradient reads it: the shifted copies, the padded input with
  // the flat tiles' slack, or (outer, unpadded) x itself.
  static constexpr std::size_t src_floats = shifted_dw              ? fwd::shifted_floats
                                            : flat_dw || G.padded() ? fwd::flat_xp_floats
                                                                    : 0;
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
  static constexpr std::size_t flat_dxp_floats = gemm_dx ? dxp_floats : fwd::flat_pad_floats;
  static constexpr std::size_t flat_scratch_floats =
      chunk * sample_floats + wflip_floats + wdx_floats + dcol_floats + flat_dxp_floats + dw_acc_floats;
  // layout: xp, dz, gap, col, dxp (general path) or chunk xs, chunk dz slots, chunk dzc, chunk dzT,
  // wflip, wdx, dcol, dxp, dW^T or dw_shifted (flat path)
  static constexpr std::size_t scratch_floats = use_dense     ? dense_scratch<G, use_dense>(true)
                                                : use_regions ? regions_scratch_floats<G, use_regions>(true)
                                                : use_rows    ? rows_scratch<G, use_rows>(true)
                                                : use_flat
                                                    ? flat_scratch_floats
                                                    : xp_floats + dz_floats + gap_floats + col_floats + dxp_floats;
};

}  // namespace detail

}  // namespace ctnn::kernels
