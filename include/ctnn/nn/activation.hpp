// nn::ReLU, nn::Sigmoid, nn::Tanh — torch.nn.ReLU / Sigmoid / Tanh.
//
//   y = Op(x) elementwise      x: [N, *], y: [N, *]
//
// After a producer (Linear) inside a Sequential, an activation is fused into the producer's
// epilogue and does no pass of its own; alone it is one vectorized pass.
#pragma once

#include <ostream>
#include <string>

#include "ctnn/kernels/eltwise.hpp"
#include "ctnn/nn/module.hpp"

namespace ctnn::nn {

template <class Op, class Name, class S>
struct BoundActivation : ParameterFree<BoundActivation<Op, Name, S>> {
  using op = Op;
  using input_shape = S;
  using output_shape = S;
  static constexpr std::size_t activation_floats = S::size, scratch_floats = 0;
  static constexpr std::ptrdiff_t output_offset = 0;
  static constexpr bool runs_in_pieces = true;  // (nn::runs_in_pieces)

  // forward: y = Op(x)
  const float* forward(const float* x, std::size_t n, float* act, float*) const {
    kernels::eltwise_forward<Op>(x, act, n * S::size);
    return act;
  }
  // backward: dx = Op'(y) * dy, with Op' written through the output y
  void backward(const float*, float* dx, std::size_t n, const float* act, float* gact, float*) const {
    if (dx) kernels::eltwise_backward<Op>(act, gact, dx, n * S::size);
  }

  static std::string type_name() { return Name::value; }
  void print(std::ostream& os, int) const { os << Name::value << "()"; }
};

namespace detail {
template <class Op, class Name>
struct activation_spec {
  template <class In, class Path>
  using bind = BoundActivation<Op, Name, In>;
};
struct relu_name {
  static constexpr const char* value = "ReLU";
};
struct sigmoid_name {
  static constexpr const char* value = "Sigmoid";
};
struct tanh_name {
  static constexpr const char* value = "Tanh";
};

template <class Op, class Name, class S, class Want>
struct is_activation_impl<BoundActivation<Op, Name, S>, Want> : std::is_same<Op, Want> {};

template <class T>
struct is_eltwise_activation : std::false_type {};
template <class Op, class Name, class S>
struct is_eltwise_activation<BoundActivation<Op, Name, S>> : std::true_type {};
}  // namespace detail

/// torch.nn.ReLU
struct ReLU : detail::activation_spec<kernels::relu_op, detail::relu_name> {};
/// torch.nn.Sigmoid
struct Sigmoid : detail::activation_spec<kernels::sigmoid_op, detail::sigmoid_name> {};
/// torch.nn.Tanh
struct Tanh : detail::activation_spec<kernels::tanh_op, detail::tanh_name> {};

template <class T> inline constexpr bool is_relu =
    detail::is_activation_impl<std::remove_cvref_t<T>, kernels::relu_op>::value;
template <class T> inline constexpr bool is_sigmoid =
    detail::is_activation_impl<std::remove_cvref_t<T>, kernels::sigmoid_op>::value;
template <class T> inline constexpr bool is_tanh =
    detail::is_activation_impl<std::remove_cvref_t<T>, kernels::tanh_op>::value;

}  // namespace ctnn::nn
