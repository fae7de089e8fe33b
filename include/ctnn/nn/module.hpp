// What every bound layer shares: the bound-layer interface (the concept nn::bound_layer), the
// Module base (state_dict, named_parameters, zero_grad), get<I> / operator[] of layers with
// numbered children (detail::indexed_children), traits, and the binding protocol. nn::Parameter and
// StateDict themselves are in core/parameter.hpp.
//
// Spec -> bind -> model. A layer *spec* is a type the user writes (nn::LazyLinear<120>).
// `bind_t<Spec, InShape, layer<Path...>>` turns it into a *bound layer*: a concrete type
// with exact-size parameters and this small interface (dlib and micrograd style —
// every layer answers the same questions). It is the concept nn::bound_layer, checked once per
// layer where bind_t binds it: a member that is missing, or that does not accept these
// arguments, is one error, ERROR_bound_layer_missing_member<layer<i>, member_forward, Layer>.
//
//   using input_shape, output_shape;                 // Shape<...> types of one sample
//   static constexpr std::size_t parameter_count;    // floats of learnable parameters
//   static constexpr std::size_t activation_floats;  // workspace floats per sample forward writes
//   static constexpr std::size_t scratch_floats;     // workspace floats shared by all samples
//   static constexpr std::ptrdiff_t output_offset;   // where the output is inside `act`, per
//                                                    // sample (times n), or -1: it is `x` (a view)
//   const float* forward(const float* x, std::size_t n, float* act, float* scratch) const;
//       // returns where the output is: act + n * output_offset, or x itself for a view (Flatten)
//   void backward(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch);
//       // `act` is the region forward wrote; `gact` mirrors it and holds dL/d(output) at the
//       // output's place. Writes dL/dx into dx (skipped when dx is null) and *adds* the
//       // parameters' gradients into their .grad, as torch accumulates.
//   void for_each_parameter(const Name& prefix, F f);  // f(name, nn::Parameter<S>&); Name: std::string,
//       // or nn::Unnamed for walks that need no names (a layer written for std::string takes it too)
//   void apply(F f);                                 // f(layer&) on every sub-layer, then this one
//   void reset_parameters(Generator&);               // PyTorch's default initialization
//   void print(std::ostream&, int indent) const;     // PyTorch's module repr
//   static std::string type_name();                  // the name summary() shows ("Linear")
//   static constexpr bool runs_in_pieces = true;     // optional: see nn::runs_in_pieces
//   reserve_slices(T), fold_weight_grads(t, T), link_shared(network_layer)
//       // optional: the layer's slices share prepared weights and hold their weight gradients
//       // in a batch Model splits across threads (Conv2d: nn/shared_weights.hpp)
//
// A hand-written layer derives from nn::Module<Self> (state_dict, zero_grad, operator<<), or from
// nn::ParameterFree<Self>, which also supplies parameter_count = 0, for_each_parameter,
// reset_parameters and apply.
//
// Producers (Linear, Conv2d) also have `forward_fused<Op>` / `backward_fused<Op>`, which apply an
// elementwise activation in their epilogue (and its derivative first, in backward);
// activations expose that `Op` as `op`. Sequential fuses the pair.
#pragma once

#include <concepts>
#include <cstdio>
#include <cstddef>
#include <map>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ctnn/core/diagnostics.hpp"
#include "ctnn/core/parameter.hpp"
#include "ctnn/core/random.hpp"
#include "ctnn/core/shape.hpp"
#include "ctnn/core/tensor.hpp"
#include "ctnn/kernels/simd.hpp"

namespace ctnn {
namespace nn {

/// f(name, x) for everything in `layer`'s state_dict, in PyTorch's order (each module's
/// parameters, then its buffers, then its children): x is an nn::Parameter<S>&, nn::Buffer<S>& or
/// nn::LongBuffer&. A layer with buffers (BatchNorm) or children defines
/// `for_each_state(prefix, f)`; for any other layer this is its for_each_parameter.
template <class L, class Name, class F>
void for_each_state(L& layer, const Name& prefix, F&& f) {
  if constexpr (requires { layer.for_each_state(prefix, f); }) layer.for_each_state(prefix, f);
  else layer.for_each_parameter(prefix, f);
}

namespace detail {
/// A state_dict entry's view: a float tensor, or the int64 scalar of an nn::LongBuffer.
template <class T>
TensorRef state_ref(T& x) {
  if constexpr (std::is_same_v<T, LongBuffer>) return TensorRef(&x.value, {});
  else return TensorRef(x);
}
template <class T> inline constexpr bool is_buffer = false;
template <class S> inline constexpr bool is_buffer<Buffer<S>> = true;
template <> inline constexpr bool is_buffer<LongBuffer> = true;
}  // namespace detail

/// CRTP base of bound layers: the parts of nn.Module that follow from for_each_parameter (and
/// for_each_state, for a layer with buffers).
template <class Derived>
struct Module {
  /// net[2].state_dict(): this layer's parameters and buffers, named relative to it ("weight",
  /// "bias", "running_mean"), in PyTorch's order.
  StateDict state_dict() const {
    StateDict sd;
    nn::for_each_state(const_cast<Derived&>(self()), std::string(),
                       [&](std::string name, auto& x) { sd.add(std::move(name), detail::state_ref(x)); });
    return sd;
  }
  /// PyTorch's named_buffers(): the state_dict entries that are not parameters (BatchNorm's
  /// running_mean, running_var, num_batches_tracked), in state_dict's order.
  StateDict named_buffers() const {
    StateDict sd;
    nn::for_each_state(const_cast<Derived&>(self()), std::string(), [&](std::string name, auto& x) {
      if constexpr (detail::is_buffer<std::remove_cvref_t<decltype(x)>>) sd.add(std::move(name), detail::state_ref(x));
    });
    return sd;
  }
  /// PyTorch's named_parameters(): state_dict's names and order without the buffers,
  /// each with its values and a view of its gradient: net[0].named_parameters()["weight"].grad.
  NamedParameters named_parameters() const {
    NamedParameters named;
    const_cast<Derived&>(self()).for_each_parameter(std::string(), [&](const std::string& name, auto& param) {
      named.add(name, ParameterRef(TensorRef(param), TensorRef(param.grad)));
    });
    return named;
  }
  /// Set every parameter's gradient to zero (gradients accumulate until then, as in PyTorch).
  void zero_grad() {
    static_cast<Derived&>(*this).for_each_parameter(unnamed, [](const std::string&, auto& param) {
      kernels::detail::zero_floats(param.grad.data(), param.grad.numel());
    });
  }

  friend std::ostream& operator<<(std::ostream& os, const Derived& m) {
    m.print(os, 0);
    return os;
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

/// Layers without parameters (activations, Flatten): the no-op half of the interface.
template <class Derived>
struct ParameterFree : Module<Derived> {
  static constexpr std::size_t parameter_count = 0;
  template <class Name, class F>
  void for_each_parameter(const Name&, F&&) {}
  void reset_parameters(Generator&) {}
  template <class F>
  void apply(F&& f) {
    f(static_cast<Derived&>(*this));
  }
};

// ---- Traits (they see through references: nn::is_linear<decltype(layer)> in apply) -------

namespace detail {
template <class T> struct is_linear_impl : std::false_type {};
template <class T> struct is_sequential_impl : std::false_type {};
template <class T, class Op> struct is_activation_impl : std::false_type {};
template <class T> struct is_flatten_impl : std::false_type {};
template <class T> struct is_identity_impl : std::false_type {};
template <class T> struct is_batchnorm_impl : std::false_type {};
template <class T> struct is_dropout_impl : std::false_type {};
template <class T> struct is_residual_impl : std::false_type {};
template <class T> struct is_concat_impl : std::false_type {};
}  // namespace detail

/// Layer type tests for apply(): `if constexpr (nn::is_linear<decltype(layer)>)`.
template <class T> inline constexpr bool is_linear = detail::is_linear_impl<std::remove_cvref_t<T>>::value;
template <class T> inline constexpr bool is_sequential = detail::is_sequential_impl<std::remove_cvref_t<T>>::value;
template <class T> inline constexpr bool is_flatten = detail::is_flatten_impl<std::remove_cvref_t<T>>::value;
template <class T> inline constexpr bool is_identity = detail::is_identity_impl<std::remove_cvref_t<T>>::value;
template <class T> inline constexpr bool is_batchnorm = detail::is_batchnorm_impl<std::remove_cvref_t<T>>::value;
template <class T> inline constexpr bool is_dropout = detail::is_dropout_impl<std::remove_cvref_t<T>>::value;
template <class T> inline constexpr bool is_residual = detail::is_residual_impl<std::remove_cvref_t<T>>::value;
template <class T> inline constexpr bool is_concat = detail::is_concat_impl<std::remove_cvref_t<T>>::value;
/// A layer with a bias parameter (Linear or Conv2d with bias = true): `layer.bias` exists.
template <class T> inline constexpr bool has_bias = requires { requires std::remove_cvref_t<T>::has_bias; };
/// A layer whose forward mixes the samples of a batch (a block that reduces over the whole
/// batch, as `X.sum()` does in PyTorch): it declares `static constexpr bool batch_coupled = true`,
/// and a Model never splits such a network's batch across threads.
template <class T> inline constexpr bool is_batch_coupled =
    requires { requires std::remove_cvref_t<T>::batch_coupled; };
/// Whether a layer's output keeps the batch dimension (N rows). False only for a block whose
/// result is one whole-batch value, as PyTorch's `X.sum()` (it declares
/// `static constexpr bool batched_output = false`): its output is one row for any N.
template <class T> inline constexpr bool has_batched_output =
    !requires { requires !std::remove_cvref_t<T>::batched_output; };
/// A layer that can run on a batch a few samples at a time: its region of `act` is its output,
/// [n, output_shape] (or it is a view), a call on samples [s, s + k) with every pointer advanced
/// by s samples does exactly that part of the whole call, and a call costs little beyond its
/// samples' work (Conv2d, pooling, activations, Flatten; not Linear, which packs its weights per
/// call). It declares `static constexpr bool runs_in_pieces = true`; Sequential then runs a
/// stretch of such layers on a large batch in pieces whose activations stay in cache.
template <class T> inline constexpr bool runs_in_pieces = requires { requires std::remove_cvref_t<T>::runs_in_pieces; };

// ---- Binding --------------------------------------------------------------------------------

template <class... Bs> struct BoundSequential;  // nn/sequential.hpp
template <class B, class Path> struct BoundBlock;  // nn/block.hpp

namespace detail {

/// What a layer binds to after an earlier failed check: accepts anything, checks nothing.
struct PoisonedLayer : ParameterFree<PoisonedLayer> {
  using input_shape = ctnn::detail::poisoned_shape;
  using output_shape = ctnn::detail::poisoned_shape;
  static constexpr std::size_t activation_floats = 0, scratch_floats = 0;
  static constexpr std::ptrdiff_t output_offset = -1;
  const float* forward(const float* x, std::size_t, float*, float*) const { return x; }
  void backward(const float*, float*, std::size_t, const float*, float*, float*) const {}
  void print(std::ostream& os, int) const { os << "<error>"; }
  static std::string type_name() { return "<error>"; }
};

/// get<I>() and operator[](I_c) of a layer with numbered children (a Sequential's layers, a
/// block's CTNN_MEMBERS), written once. Derived befriends this base and has
///   static constexpr std::size_t ctnn_child_count;  template <std::size_t I> auto& ctnn_child();
/// (ctnn_ names: a user's block may have members called child or size).
/// I out of range is ERROR_layer_index_out_of_range<index<I>, num_layers<ctnn_child_count>>.
template <class Derived>
struct indexed_children {
  /// net.get<I>(): child I (counting from 0); nested: net.get<1>().get<0>().
  template <std::size_t I>
  auto& get() {
    constexpr std::size_t size = Derived::ctnn_child_count;
    if constexpr (I < size) {
      return static_cast<Derived&>(*this).template ctnn_child<I>();
    } else {
      (void)ctnn::detail::check<false, ERROR_layer_index_out_of_range<index<I>, num_layers<size>>>::value;
      static PoisonedLayer poisoned;  // never reached: the line above is a compile error
      return poisoned;
    }
  }
  template <std::size_t I>
  const auto& get() const {
    return const_cast<indexed_children&>(*this).template get<I>();
  }
  /// net[2_c]
  template <class C>
    requires requires { C::value; }
  auto& operator[](C) {
    return get<static_cast<std::size_t>(C::value)>();
  }
  template <class C>
    requires requires { C::value; }
  const auto& operator[](C) const {
    return get<static_cast<std::size_t>(C::value)>();
  }
};

/// Stand-ins for the callbacks of for_each_parameter and apply: the concept asks that a layer
/// accepts any callable of that form.
struct any_parameter_visitor {
  template <class P>
  void operator()(const std::string&, P&) const {}
};
struct any_layer_visitor {
  template <class L>
  void operator()(L&) const {}
};

// One concept per member of the interface (the banner says what each means).
template <class B>
concept layer_has_input_shape = requires { typename B::input_shape; };
template <class B>
concept layer_has_output_shape = requires { typename B::output_shape; };
template <class B>
concept layer_has_parameter_count = requires { typename std::integral_constant<std::size_t, B::parameter_count>; };
template <class B>
concept layer_has_activation_floats = requires { typename std::integral_constant<std::size_t, B::activation_floats>; };
template <class B>
concept layer_has_scratch_floats = requires { typename std::integral_constant<std::size_t, B::scratch_floats>; };
template <class B>
concept layer_has_output_offset = requires { typename std::integral_constant<std::ptrdiff_t, B::output_offset>; };
template <class B>
concept layer_has_forward = requires(const B& b, const float* x, float* p, std::size_t n) {
  { b.forward(x, n, p, p) } -> std::convertible_to<const float*>;
};
template <class B>
concept layer_has_backward = requires(B& b, const float* x, float* p, std::size_t n) { b.backward(x, p, n, x, p, p); };
template <class B>
concept layer_has_for_each_parameter =
    requires(B& b, const std::string& prefix) { b.for_each_parameter(prefix, any_parameter_visitor{}); };
template <class B>
concept layer_has_apply = requires(B& b) { b.apply(any_layer_visitor{}); };
template <class B>
concept layer_has_reset_parameters = requires(B& b, Generator& gen) { b.reset_parameters(gen); };
template <class B>
concept layer_has_print = requires(const B& b, std::ostream& os) { b.print(os, 0); };
template <class B>
concept layer_has_type_name = requires {
  { B::type_name() } -> std::convertible_to<std::string>;
};

/// The interface checked where a spec is bound: the first member B lacks is the one error.
template <class B, class Path>
struct check_bound_layer {
  template <class Member>
  using missing = ERROR_bound_layer_missing_member<Path, Member, B>;
  // clang-format off: one rule a line, in the banner's order
  static constexpr bool ok = rules<
      rule<!layer_has_input_shape<B>, missing<member_input_shape>>,
      rule<!layer_has_output_shape<B>, missing<member_output_shape>>,
      rule<!layer_has_parameter_count<B>, missing<member_parameter_count>>,
      rule<!layer_has_activation_floats<B>, missing<member_activation_floats>>,
      rule<!layer_has_scratch_floats<B>, missing<member_scratch_floats>>,
      rule<!layer_has_output_offset<B>, missing<member_output_offset>>,
      rule<!layer_has_forward<B>, missing<member_forward>>,
      rule<!layer_has_backward<B>, missing<member_backward>>,
      rule<!layer_has_for_each_parameter<B>, missing<member_for_each_parameter>>,
      rule<!layer_has_apply<B>, missing<member_apply>>,
      rule<!layer_has_reset_parameters<B>, missing<member_reset_parameters>>,
      rule<!layer_has_print<B>, missing<member_print>>,
      rule<!layer_has_type_name<B>, missing<member_type_name>>>::ok;
  // clang-format on
};
// The library's composite layers have the interface by construction and report their own
// errors; a block whose forward failed has no valid output_shape, so checking it would report
// a second, misleading error.
template <class Path>
struct check_bound_layer<PoisonedLayer, Path> {
  static constexpr bool ok = true;
};
template <class... Bs, class Path>
struct check_bound_layer<BoundSequential<Bs...>, Path> {
  static constexpr bool ok = true;
};
template <class B, class P, class Path>
struct check_bound_layer<BoundBlock<B, P>, Path> {
  static constexpr bool ok = true;
};

template <class Spec, class In, class Path>
struct bind_impl {
  using bound = typename Spec::template bind<In, Path>;
  using type = std::conditional_t<check_bound_layer<bound, Path>::ok, bound, PoisonedLayer>;
};
template <class Spec, class Path>
struct bind_impl<Spec, ctnn::detail::poisoned_shape, Path> {
  using type = PoisonedLayer;
};

/// "layer<2, 1>" -> "2.1", for run-time messages (the state_dict prefix of the layer).
template <class Path>
struct path_string;
template <std::size_t... P>
struct path_string<layer<P...>> {
  static std::string get() {
    std::string s;
    ((s += s.empty() ? "" : ".", s += std::to_string(P)), ...);
    return s.empty() ? "the network" : "layer " + s;
  }
};
/// Python's repr of a float option (1e-05, 0.1), as PyTorch prints it.
inline std::string float_repr(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
  return buf;
}

template <class Path, std::size_t I>
struct path_append;
template <std::size_t... P, std::size_t I>
struct path_append<layer<P...>, I> {
  using type = layer<P..., I>;
};

}  // namespace detail

/// A bound layer: a type with the members listed at the top of this file (bind_t checks them
/// one by one, so a layer that lacks one gets an error naming it).
template <class B>
concept bound_layer =
    detail::layer_has_input_shape<B> && detail::layer_has_output_shape<B> && detail::layer_has_parameter_count<B> &&
    detail::layer_has_activation_floats<B> && detail::layer_has_scratch_floats<B> &&
    detail::layer_has_output_offset<B> && detail::layer_has_forward<B> && detail::layer_has_backward<B> &&
    detail::layer_has_for_each_parameter<B> && detail::layer_has_apply<B> && detail::layer_has_reset_parameters<B> &&
    detail::layer_has_print<B> && detail::layer_has_type_name<B>;

/// The bound layer of `Spec` on per-sample input shape `In`, at position `Path` (a ctnn::layer<...>).
template <class Spec, class In, class Path = layer<>>
using bind_t = typename detail::bind_impl<Spec, In, Path>::type;

}  // namespace nn
}  // namespace ctnn
