// Custom blocks — subclassing torch.nn.Module: a struct that declares its sub-layers and
// parameters as members and writes `forward` over tensor expressions; no backward to write.
//
//   template <class In>                                   // the per-sample shape reaching the block
//   struct MLP : nn::Block<MLP<In>> {
//     nn::Layer<nn::LazyLinear<256>, In> hidden;          // a sub-layer, bound at a shape
//     nn::Layer<nn::LazyLinear<10>, nn::output_t<decltype(hidden)>> out;
//     CTNN_MEMBERS(hidden, out)                           // state_dict names: "hidden.weight", ...
//     auto forward(auto X) { return out(relu(hidden(X))); }
//   };
//   using Net = nn::Sequential<nn::BlockSpec<MLP>, nn::LazyLinear<2>>;   // nn::block<MLP> too
//
// Members: nn::Layer<Spec, Shape> (any layer, Sequential or block), nn::Param<Shape> (a
// learnable tensor; default init torch.randn, as D2L's nn.Parameter(torch.randn(...))), and
// ctnn::Tensor<Shape> (a constant: not in state_dict, no gradient). CTNN_MEMBERS lists those
// that state_dict, print, apply and reset_parameters walk, in that order; CTNN_MEMBERS_AS("0, 1",
// a, b) names them differently. An optional `void reset_parameters(ctnn::Generator&)` in the
// block runs after the defaults; an optional `static std::string type_name()` names it in print.
//
// How it runs (the bound-layer interface of nn/module.hpp):
//   forward: X is an expression leaf over the block's input. A sub-layer call evaluates its
//     argument into a workspace slot (one pass), runs the layer's forward into the next slot and
//     returns a leaf over the output; elementwise operations build lazy nodes; reductions and mm
//     are computed when a loop first needs them. The returned expression is evaluated into the
//     block's output slot (offset 0) in one vectorized loop, and kept for backward.
//   workspace: the result's *type* is the whole graph, so the block's per-sample size is a
//     compile-time sum over it (each call site: input slot + the layer's activations; each
//     reduction and mm: its result); slots are handed out in forward's (fixed) order.
//   backward: dL/d(output) flows through the returned expression by the nodes' derivative rules
//     into leaves (parameters accumulate into .grad, the input into dx, sub-layer outputs into
//     their gradient slots); then the sub-layer calls, reductions and mms run their backward in
//     reverse creation order. A layer called twice adds both gradients into its parameters.
//   Run-time numbers (a data-dependent loop's scale) are constants for the derivative.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ctnn/expr/expr.hpp"
#include "ctnn/nn/module.hpp"

namespace ctnn::nn {

/// Base of a user's block (the counterpart of torch.nn.Module): `struct MLP : nn::Block<MLP<In>>`.
template <class Derived>
struct Block {
  // A block without CTNN_MEMBERS has no members to walk (CenteredLayer).
  auto ctnn_members() { return std::tuple<>(); }
  static constexpr std::string_view ctnn_member_names() { return ""; }
};

/// A learnable tensor member of a block (torch.nn.Parameter).
template <class S>
using Param = Parameter<S>;

/// The output shape of a sub-layer member: nn::output_t<decltype(hidden)>.
template <class L>
using output_t = typename std::remove_cvref_t<L>::output_shape;

/// A sub-layer member of a block: `Spec` bound at per-sample input shape `In`. It is the bound
/// layer (hidden.weight, hidden.bias), and calling it on an expression runs it.
template <class Spec, class In>
struct Layer : bind_t<Spec, In> {
  using bound_type = bind_t<Spec, In>;
  template <expr::operand E>
  auto operator()(E&& x) const;
};

}  // namespace ctnn::nn

namespace ctnn::expr {

/// The output of one sub-layer call: a batched leaf over the layer's output, remembering the
/// call's argument expression for backward.
template <class L, class A>
struct CallOut : Expr<CallOut<L, A>> {
  using in_shape = typename L::input_shape;
  using shape = typename L::output_shape;
  static constexpr bool batched = true;
  static constexpr std::size_t slot_floats = A::slot_floats + in_shape::size + L::activation_floats;
  static constexpr std::size_t scratch_floats = std::max(A::scratch_floats, L::scratch_floats);
  static constexpr bool materializes = false;  // computed when called
  template <class O> static constexpr bool simd = leaf_simd<O, shape>;

  L* layer;
  A a;
  int id;
  std::size_t in_off, out_off, val_off;
  const float* in;   // the argument's values
  float* act;        // the layer's activation region
  const float* val;  // its output
  CallOut(L& l, const A& arg, int call_id, std::size_t in_offset, std::size_t out_offset, std::size_t val_offset,
          const float* input, float* activations, const float* output)
      : layer(&l), a(arg), id(call_id), in_off(in_offset), out_off(out_offset), val_off(val_offset), in(input),
        act(activations), val(output) {}

  void prepare(Context&) {}
  template <class O, bool OB> float at(std::size_t n, std::size_t j) const { return leaf_at<O, OB, shape, true>(val, n, j); }
  template <class O, bool OB> vfloat vat(std::size_t n, std::size_t j) const { return leaf_vat<O, OB, shape, true>(val, n, j); }
  template <class O, bool OB, class G>
  void backward(const G& g, const BackwardContext& bc) const {
    accumulate<O, OB, shape, true>(g, bc.grad_at(val_off), bc.n);
  }
  // backward: the layer's own backward (dL/d(argument) into the argument's gradient slot), then
  // through the argument's expression.
  bool backprop(int k, const BackwardContext& bc) const {
    if (k != id) return a.backprop(k, bc);
    if constexpr (L::output_offset >= 0)
      layer->backward(in, bc.grad_at(in_off), bc.n, act, bc.grad_at(out_off), bc.scratch);
    a.template backward<in_shape, true>(View<in_shape, true>(bc.grad_at(in_off)), bc);
    return true;
  }
};

}  // namespace ctnn::expr

namespace ctnn::nn {

template <class Spec, class In>
template <expr::operand E>
auto Layer<Spec, In>::operator()(E&& x) const {
  using A = expr::expr_t<E>;
  using L = bound_type;
  constexpr bool ok = A::batched && std::is_same_v<typename A::shape, In>;
  if constexpr (!ok) {
    (void)ctnn::detail::check<false, ERROR_sublayer_input_shape_mismatch<
                                         In, expr::detail::shown<typename A::shape, A::batched>>>::value;
    return expr::View<typename L::output_shape, true>(nullptr);  // one mistake, one error
  } else {
    expr::Context& c = expr::context();
    A a = expr::as_expr(x);
    a.prepare(c);
    const std::size_t in_off = c.allocate(In::size);
    const std::size_t out_off = c.allocate(L::activation_floats);
    float* in = c.at(in_off);
    expr::assign<In, true>(a, in, c.n);
    L& self = const_cast<L&>(static_cast<const L&>(*this));
    const float* y = self.forward(in, c.n, c.at(out_off), c.scratch);
    const std::size_t val_off =
        L::output_offset < 0 ? in_off : out_off + static_cast<std::size_t>(L::output_offset < 0 ? 0 : L::output_offset);
    return expr::CallOut<L, A>(self, a, c.next_id++, in_off, out_off, val_off, in, c.at(out_off), y);
  }
}

namespace detail {

template <class B>
struct block_input;
template <template <class, class...> class T, class In, class... Args>
struct block_input<T<In, Args...>> {
  using type = In;
};

template <class M> concept layer_member = requires { typename std::remove_cvref_t<M>::bound_type; };

/// "hidden, out" -> {"hidden", "out"}
inline std::vector<std::string> split_member_names(std::string_view s) {
  std::vector<std::string> names;
  std::string cur;
  auto flush = [&] {
    const auto b = cur.find_first_not_of(" \t\n");
    const auto e = cur.find_last_not_of(" \t\n");
    names.push_back(b == std::string::npos ? std::string() : cur.substr(b, e - b + 1));
    cur.clear();
  };
  for (char ch : s) {
    if (ch == ',') flush();
    else cur += ch;
  }
  flush();
  return names;
}

template <class M>
constexpr std::size_t member_parameter_count() {
  using T = std::remove_cvref_t<M>;
  if constexpr (layer_member<T>) return T::bound_type::parameter_count;
  else if constexpr (expr::detail::is_parameter<T>::value) return T::shape_type::size;
  else return 0;
}
template <class Tuple>
struct members_parameter_count;
template <class... M>
struct members_parameter_count<std::tuple<M...>> {
  static constexpr std::size_t value = (member_parameter_count<M>() + ... + 0);
};

}  // namespace detail

/// The bound form of a user's block B (B = MLP<In>): B itself plus the bound-layer interface.
template <class B>
struct BoundBlock : B, Module<BoundBlock<B>> {
  using input_shape = typename detail::block_input<B>::type;
  using result_type = expr::expr_t<decltype(std::declval<B&>().forward(std::declval<expr::Input<input_shape>>()))>;
  static constexpr bool result_ok =
      ctnn::detail::check<result_type::batched, ERROR_block_result_not_batched<typename result_type::shape>>::value;
  using output_shape =
      std::conditional_t<result_ok && result_type::batched, typename result_type::shape, ctnn::detail::poisoned_shape>;

  static constexpr std::size_t parameter_count =
      detail::members_parameter_count<decltype(std::declval<B&>().ctnn_members())>::value;

 private:
  /// What backward needs from forward: the result's expression (pointers into the workspace,
  /// run-time scalars) and how many nodes it materialized. It is kept in the workspace, not in
  /// the block, so a block called twice (shared) backpropagates each call with its own record.
  struct Record {
    result_type result;
    int nodes;
  };
  static_assert(std::is_trivially_copyable_v<Record>, "ctnn block: a forward's expression must be trivially copyable");
  static constexpr std::size_t record_floats = (sizeof(Record) + sizeof(float) - 1) / sizeof(float);

 public:
  /// Per-sample floats of the output slot and every materialization (the record follows).
  static constexpr std::size_t record_offset = output_shape::size + result_type::slot_floats;
  /// Output slot first, then every call site / reduction / mm of the result's type, then the record
  /// (a per-sample reservation: the record needs record_floats once, n >= 1).
  static constexpr std::size_t activation_floats = record_offset + record_floats;
  static constexpr std::size_t scratch_floats = result_type::scratch_floats;
  static constexpr std::ptrdiff_t output_offset = 0;

  // forward: run B::forward on a leaf over x, evaluate its result into the output slot.
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    auto& self = const_cast<BoundBlock&>(*this);
    if constexpr (!result_type::batched) {
      return x;
    } else {
      expr::Context ctx{act, scratch, n, output_shape::size, record_offset, 0};
      expr::ContextGuard guard(ctx);
      Record rec{expr::as_expr(self.B::forward(expr::Input<input_shape>(x))), 0};
      rec.result.prepare(ctx);
      expr::assign<output_shape, true>(rec.result, act, n);
      rec.nodes = ctx.next_id;
      std::memcpy(act + n * record_offset, &rec, sizeof(Record));
      return act;
    }
  }

  // backward: dL/dy through the recorded expression; then its materialized nodes, last first.
  void backward(const float*, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    if constexpr (result_type::batched) {
      alignas(Record) unsigned char bytes[sizeof(Record)];
      std::memcpy(bytes, act + n * record_offset, sizeof(Record));
      const Record& rec = *std::launder(reinterpret_cast<const Record*>(bytes));
      std::fill(gact + n * output_shape::size, gact + n * record_offset, 0.0f);
      if (dx) std::fill_n(dx, n * input_shape::size, 0.0f);
      const expr::BackwardContext bc{dx, n, gact, scratch};
      rec.result.template backward<output_shape, true>(expr::View<output_shape, true>(gact), bc);
      for (int k = rec.nodes - 1; k >= 0; --k) rec.result.backprop(k, bc);
    }
  }

  /// f(name, member) for each member listed by CTNN_MEMBERS, in order.
  template <class F>
  void for_each_member(F&& f) {
    const auto names = detail::split_member_names(B::ctnn_member_names());
    std::apply([&](auto&... m) {
      std::size_t i = 0;
      (f(names[i++], m), ...);
    }, static_cast<B&>(*this).ctnn_members());
  }

  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    for_each_member([&](const std::string& name, auto& m) {
      using M = std::remove_cvref_t<decltype(m)>;
      if constexpr (detail::layer_member<M>) static_cast<typename M::bound_type&>(m).for_each_parameter(prefix + name + ".", f);
      else if constexpr (expr::detail::is_parameter<M>::value) f(prefix + name, m);
    });
  }
  /// Every sub-layer (recursively), then this block, as torch's Module.apply.
  template <class F>
  void apply(F&& f) {
    for_each_member([&](const std::string&, auto& m) {
      using M = std::remove_cvref_t<decltype(m)>;
      if constexpr (detail::layer_member<M>) static_cast<typename M::bound_type&>(m).apply(f);
    });
    f(*this);
  }
  /// Sub-layers: their PyTorch default; Param members: torch.randn; then B::reset_parameters if any.
  void reset_parameters(Generator& gen) {
    for_each_member([&](const std::string&, auto& m) {
      using M = std::remove_cvref_t<decltype(m)>;
      if constexpr (detail::layer_member<M>) static_cast<typename M::bound_type&>(m).reset_parameters(gen);
      else if constexpr (expr::detail::is_parameter<M>::value) randn_(m, gen);
    });
    if constexpr (requires(B& b, Generator& g) { b.reset_parameters(g); }) B::reset_parameters(gen);
  }

  static std::string type_name() {
    if constexpr (requires { B::type_name(); }) return B::type_name();
    else return "Block";
  }
  /// PyTorch's repr: the sub-layers, one per line.
  void print(std::ostream& os, int indent) const {
    os << type_name() << '(';
    bool any = false;
    const_cast<BoundBlock&>(*this).for_each_member([&](const std::string& name, auto& m) {
      using M = std::remove_cvref_t<decltype(m)>;
      if constexpr (detail::layer_member<M>) {
        os << (any ? "" : "\n") << std::string(indent + 2, ' ') << '(' << name << "): ";
        static_cast<const typename M::bound_type&>(m).print(os, indent + 2);
        os << '\n';
        any = true;
      }
    });
    if (any) os << std::string(indent, ' ');
    os << ')';
  }

};

namespace detail {
template <class B> struct is_block_impl : std::false_type {};
template <class B> struct is_block_impl<BoundBlock<B>> : std::true_type {};
}  // namespace detail
template <class T> inline constexpr bool is_block = detail::is_block_impl<std::remove_cvref_t<T>>::value;

/// The spec of a block template B<In, Args...>: Sequential<nn::BlockSpec<MLP>, ...>.
template <template <class, class...> class B, class... Args>
struct BlockSpec {
  template <class In, class Path>
  using bind = BoundBlock<B<In, Args...>>;
};
template <template <class, class...> class B, class... Args>
using block = BlockSpec<B, Args...>;

}  // namespace ctnn::nn

/// Inside a block: the members state_dict / print / apply / reset_parameters walk, named after them.
#define CTNN_MEMBERS(...)                                                      \
  auto ctnn_members() { return std::tie(__VA_ARGS__); }                        \
  static constexpr std::string_view ctnn_member_names() { return #__VA_ARGS__; }
/// The same with explicit names: CTNN_MEMBERS_AS("0, 1, 2", a, b, c) (MySequential's "0.weight").
#define CTNN_MEMBERS_AS(names, ...)                     \
  auto ctnn_members() { return std::tie(__VA_ARGS__); } \
  static constexpr std::string_view ctnn_member_names() { return names; }
