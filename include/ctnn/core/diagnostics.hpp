// Compile-time diagnostics: every shape rule of ctnn is one named ERROR_ trait.
//
// A failed rule instantiates `sizeof` of an undefined ERROR_ class template whose arguments
// carry the layer index and the numbers, so the first line the compiler prints reads like
//
//   invalid application of 'sizeof' to an incomplete type
//   'ctnn::ERROR_linear_in_features_mismatch<ctnn::layer<2>, ctnn::in_features<8>, ctnn::inferred_in_features<7>>'
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
}  // namespace ctnn
