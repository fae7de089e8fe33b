// nn::Linear<In, Out, Bias> and nn::LazyLinear<Out, Bias> — torch.nn.Linear / LazyLinear.
//
//   y = x W^T + b      x: [N, *, In], W: [Out, In], b: [Out], y: [N, *, Out]
//
// Acts on the last dimension of the sample, as PyTorch does; LazyLinear takes In from the
// shape that reaches it. Rules (compile errors, see docs/errors.md):
//   ERROR_linear_in_features_mismatch   In differs from the last extent of the input
//   ERROR_zero_sized_dimension          In or Out is 0
//   ERROR_input_rank_too_small          the input sample has no dimensions
#pragma once

#include <cstddef>
#include <limits>
#include <memory>
#include <variant>
#include <ostream>
#include <string>

#include "ctnn/kernels/gemm.hpp"
#include "ctnn/nn/init.hpp"
#include "ctnn/nn/module.hpp"

namespace ctnn::nn {

/// The bound Linear layer: exact-size weight [Out, In] and bias [Out].
template <class InShape, std::size_t Out, bool Bias>
struct BoundLinear : Module<BoundLinear<InShape, Out, Bias>> {
  static constexpr std::size_t in_features = InShape::dims[InShape::rank - 1];
  static constexpr std::size_t out_features = Out;
  static constexpr bool has_bias = Bias;
  using input_shape = InShape;
  using output_shape = replace_last_t<InShape, Out>;
  static constexpr std::size_t rows_per_sample = InShape::size / in_features;  // the "*" in [N, *, In]

  static constexpr std::size_t parameter_count = Out * in_features + (Bias ? Out : 0);
  static constexpr std::size_t activation_floats = output_shape::size;
  static constexpr std::ptrdiff_t output_offset = 0;
  static constexpr std::size_t scratch_floats = kernels::linear_scratch_floats<in_features, Out>;

  Parameter<Shape<Out, in_features>> weight;
  /// Present only when Bias (torch's bias=None otherwise).
  [[no_unique_address]] std::conditional_t<Bias, Parameter<Shape<Out>>, std::monostate> bias;

  void reset_parameters(Generator& gen) {
    if constexpr (Bias) init::default_reset_(weight, &bias, gen);
    else init::default_reset_(weight, static_cast<Tensor<Shape<Out>>*>(nullptr), gen);
  }

  // forward: y = Op(x W^T + b), Op fused into the GEMM epilogue (identity when alone).
  template <class Op>
  const float* forward_fused(const float* x, std::size_t n, float* act, float* scratch) const {
    const float* b = nullptr;
    if constexpr (Bias) b = bias.data();
    const std::size_t rows = n * rows_per_sample;
    if (packed_) kernels::linear_forward_prepacked<in_features, Out, Op>(x, weight.data(), b, packed_.get(), act, rows);
    else kernels::linear_forward<in_features, Out, Op>(x, weight.data(), b, act, rows, scratch);
    return act;
  }
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    return forward_fused<kernels::identity_op>(x, n, act, scratch);
  }

  // backward: dz = Op'(y) * dy (in place: gact holds dy), then
  //   dx = dz W  [N*, In]      dW += dz^T x  [Out, In]      db += sum over rows of dz  [Out]
  template <class Op>
  void backward_fused(const float* x, float* dx, std::size_t n, const float* act, float* gact, float*) {
    const std::size_t rows = n * rows_per_sample;
    if constexpr (!std::is_same_v<Op, kernels::identity_op>) kernels::eltwise_backward<Op>(act, gact, gact, rows * Out);
    float* db = nullptr;
    if constexpr (Bias) db = bias.grad.data();
    kernels::linear_backward_params<in_features, Out>(gact, x, weight.grad.data(), db, rows);
    if (dx) kernels::linear_backward_input<in_features, Out>(gact, weight.data(), dx, rows);
  }
  void backward(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    backward_fused<kernels::identity_op>(x, dx, n, act, gact, scratch);
  }

  /// For ctnn::freeze: packs weight and bias for the GEMM once; from then on forward reads the
  /// packed copy (taken now) instead of weight and bias, so later changes to them are not seen.
  /// Copies of the layer share the packed copy, which is never written again.
  void prepack() {
    auto packed = std::make_shared<ctnn::detail::aligned_floats>(
        ctnn::detail::allocate_floats(std::max<std::size_t>(1, kernels::prepacked_floats<in_features, Out>)));
    const float* b = nullptr;
    if constexpr (Bias) b = bias.data();
    kernels::prepack_linear<in_features, Out>(weight.data(), b, packed->get());
    packed_ = std::shared_ptr<const float>(packed, packed->get());
  }
  /// Whether prepack() has run: forward then reads the packed copy of weight and bias.
  bool prepacked() const { return packed_ != nullptr; }

  template <class Name, class F>
  void for_each_parameter(const Name& prefix, F&& f) {
    f(prefix + "weight", weight);
    if constexpr (Bias) f(prefix + "bias", bias);
  }
  template <class F>
  void apply(F&& f) {
    f(*this);
  }
  static std::string type_name() { return "Linear"; }
  void print(std::ostream& os, int) const {
    os << "Linear(in_features=" << in_features << ", out_features=" << Out << ", bias=" << (Bias ? "True" : "False")
       << ')';
  }

 private:
  std::shared_ptr<const float> packed_;  // set by prepack(): [prepacked_floats], 64-byte aligned
};

namespace detail {

inline constexpr std::size_t lazy_features = std::numeric_limits<std::size_t>::max();

template <class In, class Path, std::size_t InFeatures, std::size_t Out, bool Bias>
struct bind_linear {
  static constexpr std::size_t inferred = [] {
    if constexpr (In::rank == 0) return std::size_t{0};
    else return In::dims[In::rank - 1];
  }();
  // The first failing rule is reported (core/diagnostics.hpp), so one mistake gives one error.
  using checked =
      rules<rule<In::rank == 0, ERROR_input_rank_too_small<Path, In>>,
            rule<Out == 0, ERROR_zero_sized_dimension<Path, out_features<Out>>>,
            rule<InFeatures == 0, ERROR_zero_sized_dimension<Path, in_features<InFeatures>>>,
            rule<InFeatures != lazy_features && InFeatures != inferred,
                 ERROR_linear_in_features_mismatch<Path, in_features<InFeatures>, inferred_in_features<inferred>>>>;
  using type = std::conditional_t<checked::ok, BoundLinear<In, Out, Bias>, PoisonedLayer>;
};

template <class In, std::size_t Out, bool Bias>
struct is_linear_impl<BoundLinear<In, Out, Bias>> : std::true_type {};

}  // namespace detail

/// torch.nn.Linear(In, Out, bias=Bias)
template <std::size_t In, std::size_t Out, bool Bias = true>
struct Linear {
  template <class InShape, class Path>
  using bind = typename detail::bind_linear<InShape, Path, In, Out, Bias>::type;
};

/// torch.nn.LazyLinear(Out, bias=Bias): in_features is the last extent of the input.
template <std::size_t Out, bool Bias = true>
struct LazyLinear {
  template <class InShape, class Path>
  using bind = typename detail::bind_linear<InShape, Path, detail::lazy_features, Out, Bias>::type;
};

}  // namespace ctnn::nn
