// nn::Flatten and nn::Identity — torch.nn.Flatten() (start_dim=1) and torch.nn.Identity.
//
//   Flatten:  x: [N, D1, ..., Dk]  ->  y: [N, D1*...*Dk]
//   Identity: y = x
//
// Both are views: their output is their input's memory, no copy and no workspace.
#pragma once

#include <ostream>
#include <string>

#include "ctnn/nn/module.hpp"

namespace ctnn::nn {

template <class In, class Out, bool IsFlatten>
struct BoundView : ParameterFree<BoundView<In, Out, IsFlatten>> {
  using input_shape = In;
  using output_shape = Out;
  static constexpr std::size_t activation_floats = 0, scratch_floats = 0;
  static constexpr std::ptrdiff_t output_offset = -1;  // the output is the input
  static constexpr bool runs_in_pieces = true;         // (nn::runs_in_pieces)

  // forward: y = x (the same memory, seen with another shape)
  const float* forward(const float* x, std::size_t, float*, float*) const { return x; }
  // backward: dx = dy, and they are the same memory too: nothing to do
  void backward(const float*, float*, std::size_t, const float*, float*, float*) const {}

  static std::string type_name() { return IsFlatten ? "Flatten" : "Identity"; }
  void print(std::ostream& os, int) const { os << (IsFlatten ? "Flatten(start_dim=1, end_dim=-1)" : "Identity()"); }
};

/// torch.nn.Flatten(): every sample dimension into one.
struct Flatten {
  template <class In, class Path>
  using bind = BoundView<In, Shape<In::size>, true>;
};
/// torch.nn.Identity
struct Identity {
  template <class In, class Path>
  using bind = BoundView<In, In, false>;
};

namespace detail {
template <class In, class Out>
struct is_flatten_impl<BoundView<In, Out, true>> : std::true_type {};
template <class In, class Out>
struct is_identity_impl<BoundView<In, Out, false>> : std::true_type {};
}  // namespace detail

}  // namespace ctnn::nn
