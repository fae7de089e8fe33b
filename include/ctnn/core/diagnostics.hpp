// Compile-time diagnostics: every shape rule of ctnn is one named ERROR_ trait.
//
// A failed rule instantiates `sizeof` of an undefined ERROR_ class template whose arguments
// carry the layer index and the numbers, so the first line the compiler prints reads like
//
//   invalid application of 'sizeof' to an incomplete type
//   'ctnn::ERROR_linear_in_features_mismatch<ctnn::layer<2>, ctnn::in_features<8>, ctnn::inferred_in_features<7>>'
//
// A layer states its rules as an ordered list, each rule a condition that says when it FAILS
// and the error that reports it; the first failing rule is the one reported (nn/linear.hpp):
//
//   using checked = ctnn::rules<
//       rule<In::rank == 0, ERROR_input_rank_too_small<Path, In>>,
//       rule<Out == 0, ERROR_zero_sized_dimension<Path, out_features<Out>>>,
//       rule<InFeatures != inferred, ERROR_linear_in_features_mismatch<Path, ...>>>;
//   using type = std::conditional_t<checked::ok, BoundLinear<In, Out, Bias>, PoisonedLayer>;
//
// Only the first failing rule's ERROR_ trait is instantiated (naming one as a template argument
// does not), and `checked::ok` is false as soon as any rule fails. Every condition is evaluated,
// so a later rule must be a valid constant expression even when an earlier one fails: guard it
// (`G != 0 && C % G != 0`, not `C % G != 0`), and a condition with `>` in it needs parentheses
// (`rule<(P > K / 2), ...>`).
//
// After a failed rule the layer binds to a poisoned shape, and binding a poisoned shape checks
// nothing, so one mistake gives one error. Every trait below is listed, with an example, in
// docs/errors.md; each has a compile-fail test in tests/compile_fail/.
#pragma once

#include <cstddef>

namespace ctnn {

// ---- Tags that carry numbers into the error message ---------------------------------------

/// Position of a layer: `layer<3>` is net[3]; `layer<1, 0>` is net[1][0] (a nested Sequential).
template <std::size_t... Path> struct layer {};
template <std::size_t V> struct in_features {};
template <std::size_t V> struct inferred_in_features {};
template <std::size_t V> struct out_features {};
template <std::size_t V> struct dim {};
template <std::size_t V> struct num_layers {};
template <std::size_t V> struct index {};
template <std::size_t... D> struct input_shape {};

// ---- The error traits (declared, never defined) -------------------------------------------

/// nn::Linear<In, Out> whose In differs from the last extent of the shape reaching it.
template <class Layer, class In, class Inferred> struct ERROR_linear_in_features_mismatch;
/// A layer option or a model input with an extent of 0 (Linear<0, 4>, LazyLinear<0>, Shape<4, 0>).
template <class Where, class... Numbers> struct ERROR_zero_sized_dimension;
/// nn::Sequential<> with no layers.
template <class Layer> struct ERROR_empty_sequential;
/// get<I>() / net[I_c] with I >= the number of layers.
template <class Index, class NumLayers> struct ERROR_layer_index_out_of_range;
/// A layer that needs an input of some rank got fewer dimensions (Linear on a rank-0 sample).
template <class Layer, class Shape> struct ERROR_input_rank_too_small;

/// The input position of a model, for errors about the input shape itself.
struct model_input {};

namespace detail {

/// `check<Ok, ERROR_...<...>>::value` is true when Ok; otherwise it names the error.
template <bool Ok, class Error>
struct check {
  static constexpr bool value = true;
};
template <class Error>
struct check<false, Error> {
  static constexpr bool value = sizeof(Error) == 0;  // Error is incomplete: this is the message
};

/// The shape a layer returns after a failed check: every later layer accepts it silently.
struct poisoned_shape {
  static constexpr std::size_t rank = 0;
  static constexpr std::size_t size = 0;
};

}  // namespace detail

// ---- Rule lists: a layer's rules in order, the first failing one reported ------------------

/// One rule of a layer: when `Fails`, the binding reports `Error` (an ERROR_ trait).
template <bool Fails, class Error>
struct rule {
  static constexpr bool fails = Fails;
};

namespace detail {

/// The first failing rule of the list reports its error; rules after it are not reported.
template <class... Rules>
struct first_failing {
  static constexpr bool reported = true;  // no rule fails
};
template <class Error, class... Rest>
struct first_failing<rule<false, Error>, Rest...> : first_failing<Rest...> {};
template <class Error, class... Rest>
struct first_failing<rule<true, Error>, Rest...> {
  static constexpr bool reported = check<false, Error>::value;
};

}  // namespace detail

/// `rules<rule<...>, ...>::ok`: true when no rule fails; otherwise the first failing rule's
/// error is the compiler's message (one mistake, one error) and ok is false.
template <class... Rules>
struct rules {
  static constexpr bool ok = detail::first_failing<Rules...>::reported && !(Rules::fails || ...);
};

}  // namespace ctnn

// ==== Convolution and pooling (nn/conv2d.hpp, nn/pool2d.hpp; docs/errors.md) ================
// Zero kernel, stride, dilation, groups or channels reuse ERROR_zero_sized_dimension with
// these tags (ERROR_zero_sized_dimension<layer<0>, stride<0, 1>>).
namespace ctnn {

template <std::size_t H, std::size_t W> struct kernel {};
template <std::size_t H, std::size_t W> struct padding {};
template <std::size_t H, std::size_t W> struct stride {};
template <std::size_t H, std::size_t W> struct dilation {};
template <std::size_t H, std::size_t W> struct input {};
template <std::size_t H, std::size_t W> struct output_size {};
template <std::size_t V> struct in_channels {};
template <std::size_t V> struct inferred_in_channels {};
template <std::size_t V> struct out_channels {};
template <std::size_t V> struct groups {};

/// Conv2d/pools need a [C, H, W] sample (PyTorch's unbatched rank 3).
template <class Layer, class Shape> struct ERROR_input_rank_not_3;
/// Conv2d whose dilated kernel D*(K-1)+1 spans more than the padded input.
template <class Layer, class Input, class Padding, class Kernel, class Dilation>
struct ERROR_conv2d_kernel_larger_than_padded_input;
/// Conv2d<{.in_channels = C}> on an input with another channel count.
template <class Layer, class InChannels, class Inferred> struct ERROR_conv2d_in_channels_mismatch;
/// in_channels % groups != 0
template <class Layer, class InChannels, class Groups> struct ERROR_conv2d_in_channels_not_divisible_by_groups;
/// out_channels % groups != 0
template <class Layer, class OutChannels, class Groups> struct ERROR_conv2d_out_channels_not_divisible_by_groups;
/// padding = nn::padding_same with a stride other than 1 (PyTorch: not supported for strided convolutions).
template <class Layer, class Stride> struct ERROR_conv2d_padding_same_with_stride;
/// padding_mode = reflect with a padding >= the input extent (F.pad's rule).
template <class Layer, class Padding, class Input> struct ERROR_reflect_padding_not_smaller_than_input;
/// padding_mode = circular with a padding > the input extent (it would wrap around more than once).
template <class Layer, class Padding, class Input> struct ERROR_circular_padding_larger_than_input;
/// MaxPool2d/AvgPool2d with padding > kernel_size / 2.
template <class Layer, class Padding, class Kernel> struct ERROR_pool2d_padding_larger_than_half_kernel;
/// A pooling window that fits nowhere: the output would have no rows or columns.
template <class Layer, class Input, class Kernel, class Padding, class Stride, class Dilation>
struct ERROR_pool2d_output_size_zero;

}  // namespace ctnn

// ==== Tensor expressions and custom blocks (expr/, nn/block.hpp; docs/custom_blocks.md) =====
namespace ctnn {

/// An operand with PyTorch's leading batch dimension, shown by its per-sample shape.
template <class S> struct per_sample {};

/// Elementwise operands whose shapes do not broadcast (per_sample<...> marks batched operands;
/// two batched operands need per-sample shapes of the same rank).
template <class Left, class Right> struct ERROR_broadcast_shape_mismatch;
/// A block's sub-layer called on an expression of another shape than the one it was declared at
/// (nn::Layer<Spec, Declared>), or on one without the batch dimension. Where is
/// sublayer<layer<block path..., i>, member_name{"name"}, Declared> (nn/block.hpp).
template <class Where, class Got> struct ERROR_sublayer_input_shape_mismatch;
/// mm(A, B): A's last per-sample extent differs from B's first, or B is not a 2-D non-batched tensor.
template <class Left, class Right> struct ERROR_matmul_shape_mismatch;
/// sum<D> / mean<D> with D >= the rank (counting the batch dimension as 0, as PyTorch does).
template <class Dim, class Operand> struct ERROR_reduction_dim_out_of_range;

}  // namespace ctnn

// ==== The bound-layer interface (nn/module.hpp: nn::bound_layer; docs/errors.md) ============
namespace ctnn {

// The members of a bound layer, named in ERROR_bound_layer_missing_member.
struct member_input_shape {};
struct member_output_shape {};
struct member_parameter_count {};
struct member_activation_floats {};
struct member_scratch_floats {};
struct member_output_offset {};
struct member_forward {};
struct member_backward {};
struct member_for_each_parameter {};
struct member_apply {};
struct member_reset_parameters {};
struct member_print {};
struct member_type_name {};

/// The bound layer `Layer` (a spec's bind<In, Path>) at `Where` lacks `Member` of the interface,
/// or has it with a form the interface does not accept (forward not const, a count that is not
/// a constant); the first such member in the order of nn/module.hpp's list is reported.
template <class Where, class Member, class Layer> struct ERROR_bound_layer_missing_member;

}  // namespace ctnn

// ==== Modern CNN building blocks (nn/batchnorm.hpp, nn/dropout.hpp, nn/graph.hpp; docs/errors.md)
namespace ctnn {

template <std::size_t V> struct num_features {};
template <std::size_t V> struct inferred_num_features {};
template <float P> struct probability {};
template <class S> struct body_output {};
template <class S> struct shortcut_output {};
template <std::size_t I> struct branch {};
template <class S> struct branch_output {};
template <class S> struct first_branch_output {};

/// BatchNorm1d on a sample that is neither [C] nor [C, L].
template <class Layer, class Shape> struct ERROR_batchnorm1d_input_rank;
/// BatchNorm<{.num_features = F}> on an input with another channel count.
template <class Layer, class NumFeatures, class Inferred> struct ERROR_batchnorm_num_features_mismatch;
/// Dropout<P> with P outside [0, 1).
template <class Layer, class P> struct ERROR_dropout_probability_out_of_range;
/// Residual<Body, Shortcut> whose two paths give different per-sample shapes.
template <class Layer, class Body, class Shortcut> struct ERROR_residual_shape_mismatch;
/// Concat<...> whose branch I gives a shape that differs from branch 0's other than in channels
/// (dim 0 of the sample), or has another rank.
template <class Layer, class Branch, class Got, class First> struct ERROR_concat_shape_mismatch;
/// Concat<> with no branches.
template <class Layer> struct ERROR_empty_concat;

}  // namespace ctnn
