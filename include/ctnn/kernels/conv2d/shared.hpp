// Conv2d's weight-sized work done once for many calls: the weights as the regions and dense forms
// prepare them (Wt and its panels, T's panels), and those forms' weight gradients (dWt, dT) held
// instead of added into dW.
//
//   conv2d_prepare(w, prepared, pass, t, T)   part t of T of a pass's prepared weights (by output channel)
//   conv2d_forward / conv2d_backward(..., prepared)   read them instead of preparing their own
//   conv2d_backward(..., held)                leaves the form's weight gradient in `held`
//   conv2d_fold_held(held, k, dw, t, T)       dw += the k held gradients, part t of T (by output channel)
//
// Model's threads (nn/conv2d.hpp, model.hpp): in each pass the slices of a batch prepare a part of
// the weights each, meet, and all read them (prepared just before they are read, they are still
// in the caches); each slice holds its weight gradient and the threads fold them into dW once.
// Without this, every slice prepares the weights in both passes and adds a weight-sized gradient
// into its own dW (ResNet-18's stage 4 at 28 x 28: the centre tap of a 9.4 MB weight gathered,
// scattered and summed across the threads' copies). One slice (or a layer called alone) keeps
// the forward's preparation for its backward where that saves a gather (conv2d_keeps_prepared:
// the live taps are a few of w's); the backward's part reads the forward's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <numeric>

#include "ctnn/core/parts.hpp"
#include "ctnn/kernels/conv2d/dense.hpp"
#include "ctnn/kernels/conv2d/plan.hpp"
#include "ctnn/kernels/conv2d/regions.hpp"

namespace ctnn::kernels {

namespace detail {
/// Which form runs both passes, where it prepares weights worth sharing.
enum class SharedForm { none, regions, dense };
template <Conv2dGeometry G, Conv2dForms Forms>
inline constexpr SharedForm shared_form = [] {
  using F = conv2d_plan<G, Forms>;
  using B = conv2d_backward_plan<G, Forms>;
  if constexpr (F::use_regions && B::use_regions) return SharedForm::regions;
  else if constexpr (F::use_dense && B::use_dense) return SharedForm::dense;
  else return SharedForm::none;
}();

}  // namespace detail

/// Floats of conv2d_prepare's weights (0: this conv's forms prepare nothing worth sharing).
template <Conv2dGeometry G, Conv2dForms Forms = Conv2dForms{}>
inline constexpr std::size_t conv2d_prepared_floats = [] {
  constexpr auto form = detail::shared_form<G, Forms>;
  if constexpr (form == detail::SharedForm::regions) return detail::regions_prepared<G>::floats;
  else if constexpr (form == detail::SharedForm::dense) return detail::dense_prepared<G>::floats;
  else return std::size_t{0};
}();

/// Floats of conv2d_backward's `held` weight gradient (0 where conv2d_prepared_floats is).
template <Conv2dGeometry G, Conv2dForms Forms = Conv2dForms{}>
inline constexpr std::size_t conv2d_held_floats = [] {
  constexpr auto form = detail::shared_form<G, Forms>;
  if constexpr (form == detail::SharedForm::regions) return G.O * detail::conv_regions<G>::KC;
  else if constexpr (form == detail::SharedForm::dense) return detail::conv_dense<G>::OP * detail::conv_dense<G>::CQ;
  else return std::size_t{0};
}();

/// Whether a forward's prepared weights are worth keeping for its backward when nothing else
/// shares them: where preparing reads far more than it keeps (the regions form's live taps a few
/// of w's).
template <Conv2dGeometry G, Conv2dForms Forms = Conv2dForms{}>
inline constexpr bool conv2d_keeps_prepared = [] {
  if constexpr (detail::shared_form<G, Forms> == detail::SharedForm::regions) return detail::conv_regions<G>::keeps;
  else return false;
}();

/// Which pass's weights conv2d_prepare prepares: the backward's are made from the forward's (call
/// it for the forward first, with the same w and `prepared`).
enum class Conv2dPass { forward, backward };

/// Part t of T of the weights conv2d_forward (or conv2d_backward) reads for w (`prepared`:
/// conv2d_prepared_floats<G, Forms> floats, 64-byte aligned); the parts are disjoint and each reads
/// only its own part of the forward's, so T threads can write them at once.
template <Conv2dGeometry G, Conv2dForms Forms = Conv2dForms{}>
void conv2d_prepare(const float* w, float* prepared, Conv2dPass pass, std::size_t t = 0, std::size_t T = 1) {
  const bool backward = pass == Conv2dPass::backward;
  constexpr auto form = detail::shared_form<G, Forms>;
  static_assert(form != detail::SharedForm::none,
                "conv2d_prepare: this conv prepares nothing (conv2d_prepared_floats is 0)");
  if constexpr (form == detail::SharedForm::regions) {
    // the forward's panels are cut at whole panels of outputs; the last part ends at the padded count
    constexpr std::size_t O = G.O, Opad = round_up(O, simd_width), NR = detail::packed_shape<O>::nr;
    const auto [b, e] = ctnn::detail::part_range(Opad, NR, T, t);
    detail::regions_prepare<G>(w, prepared, backward, b, e);
  } else {
    // whole panels of the forward's outputs (o, p): o cut at multiples of lcm(NR, P) / P
    using D = detail::conv_dense<G>;
    constexpr std::size_t unit = std::lcm(D::NRf, D::P) / D::P;
    const auto [b, e] = ctnn::detail::part_range(G.O, unit, T, t);
    detail::dense_prepare<G>(w, prepared, backward, b, e);
  }
}

/// dw += the `count` held weight gradients (conv2d_backward's `held`), for thread t of T's part of
/// the output channels: the held gradients' rows of those channels are added into the first's
/// (in order), which is then folded into dw.
template <Conv2dGeometry G, Conv2dForms Forms = Conv2dForms{}>
void conv2d_fold_held(float* const* held, std::size_t count, float* dw, std::size_t t = 0, std::size_t T = 1) {
  constexpr auto form = detail::shared_form<G, Forms>;
  static_assert(form != detail::SharedForm::none,
                "conv2d_fold_held: this conv holds nothing (conv2d_held_floats is 0)");
  const auto [b, e] = ctnn::detail::part_range(G.O, 1, T, t);
  constexpr std::size_t row = conv2d_held_floats<G, Forms> / G.O;  // an output channel's floats
  static_assert(conv2d_held_floats<G, Forms> % G.O == 0);
  for (std::size_t h = 1; h < count; ++h) detail::add_floats(held[0] + b * row, held[h] + b * row, (e - b) * row);
  if constexpr (form == detail::SharedForm::regions) detail::regions_fold_weight_grad<G>(held[0], dw, b, e);
  else detail::dense_fold_weight_grad<G>(held[0], dw, b, e);
}

}  // namespace ctnn::kernels
