// conv2d_forward: y = Op(conv2d(x, w) + b) for n samples, the form chosen by the plan.
#pragma once

#include <algorithm>
#include <cstddef>

#include "ctnn/kernels/conv2d/plan.hpp"
#include "ctnn/kernels/conv2d/padding.hpp"
#include "ctnn/kernels/conv2d/depthwise.hpp"
#include "ctnn/kernels/conv2d/shifted.hpp"

namespace ctnn::kernels {

/// Scratch floats conv2d_forward<G, .., Forms> needs (shared by all samples).
template <Conv2dGeometry G, Conv2dForms Forms = Conv2dForms{}>
inline constexpr std::size_t conv2d_scratch_floats = detail::conv2d_plan<G, Forms>::scratch_floats;


/// y = Op(conv2d(x, w) + b) for n samples; `b` is read only when Bias. `scratch` holds
/// conv2d_scratch_floats<G, Forms> floats, 64-byte aligned. Forms forces a form (tests); the
/// default is the cost model's choice. `prepared` (null, or where conv2d_prepared_floats<G, Forms>
/// is not 0: conv2d_prepare's weights for w, kernels/conv2d/shared.hpp): read instead of preparing.
template <Conv2dGeometry G, bool Bias, class Op = identity_op, Conv2dForms Forms = Conv2dForms{}>
void conv2d_forward(const float* x, const float* w, const float* b, float* y, std::size_t n, float* scratch,
                    const float* prepared = nullptr) {
  using plan = detail::conv2d_plan<G, Forms>;
  constexpr std::size_t P = plan::P, K = plan::K, Og = G.Og(), Cg = G.Cg();
  constexpr std::size_t in_floats = G.C * G.H * G.W, out_floats = G.O * P;
  float* xp = scratch;
  float* panel = scratch + plan::xp_floats;
  if constexpr (plan::form == ConvForward::dense) {
    detail::conv2d_forward_dense<G, Bias, Op>(x, w, b, y, n, scratch, prepared);
  } else if constexpr (plan::form == ConvForward::regions) {
    detail::conv2d_forward_regions<G, Bias, Op>(x, w, b, y, n, scratch, prepared);
  } else if constexpr (plan::form == ConvForward::rows) {
    detail::conv2d_forward_rows<G, Bias, Op>(x, w, b, y, n, scratch);
  } else if constexpr (plan::use_flat) {
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
  } else {
    for (std::size_t s = 0; s < n; ++s) {
      const float* xs = x + s * in_floats;
      float* ys = y + s * out_floats;
      if constexpr (plan::form == ConvForward::depthwise) {
        pad2d<G.C, G.H, G.W, G.PT, G.PB, G.PL, G.PR, plan::LDx, G.mode>(xs, xp);
        depthwise_conv<G, plan::LDx, Bias, Op>(xp, w, b, ys);
      } else {
        // the gemm form (any geometry): im2col one column block at a time, then the GEMM (for a
        // pointwise conv, 1x1 stride 1 unpadded, packing x_g [Cg, P] is all im2col does)
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
}

}  // namespace ctnn::kernels
