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
//   using Net = nn::Sequential<nn::block<MLP>, nn::LazyLinear<2>>;
//
// Members: nn::Layer<Spec, Shape> (any layer, Sequential or block), nn::Param<Shape> (a
// learnable tensor; default init torch.randn, as D2L's nn.Parameter(torch.randn(...))), and
// ctnn::Tensor<Shape> (a constant: not in state_dict, no gradient). CTNN_MEMBERS lists those
// that state_dict, print, apply and reset_parameters walk, in that order — except that
// state_dict / named_parameters list the block's own Params before its sub-layers' parameters,
// as PyTorch does; CTNN_MEMBERS_AS("0, 1", a, b) names them differently. An optional
// `void reset_parameters(ctnn::Generator&)` in the block runs after the defaults; an optional
// `static std::string type_name()` names it in print.
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
//   result: batched ([N, *S], the usual case) or a whole-batch value (X.sum(): a 0-d tensor, as
//     PyTorch's); the latter is one row whatever N (batched_output = false). A result that mixes
//     samples (X - X.mean(), a whole-batch value) makes the block batch_coupled.
//   errors: members are bound inside the user's struct, before the block's position is known,
//     at layer<unplaced>, where their rules stay silent; the bound block binds a failed member
//     again at layer<Path..., i> (i: its place in CTNN_MEMBERS), where the rule reports it. A
//     sub-layer called on the wrong shape names the block's path, the member and both shapes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ctnn/expr/expr.hpp"
#include "ctnn/nn/mode.hpp"
#include "ctnn/nn/module.hpp"

// ---- Where a block's member is, for error messages --------------------------------------------
namespace ctnn {

/// A member's name as a template argument: the compilers print it as member_name<6>{"second"}.
template <std::size_t N>
struct member_name {
  char text[N + 1]{};
  constexpr member_name(std::string_view s) {
    for (std::size_t i = 0; i < N && i < s.size(); ++i) text[i] = s[i];
  }
};
/// A block's sub-layer in an error: its path (the block's, then its place in CTNN_MEMBERS), its
/// name, and the shape it was declared at (nn::Layer<Spec, Declared>).
template <class Path, member_name Name, class Declared> struct sublayer {};

namespace detail {
/// The first index of the path of a member bound inside a block's struct, where the block's own
/// position is not known yet (see nn::Layer).
inline constexpr std::size_t unplaced = static_cast<std::size_t>(-1);

/// Rules failing at an unplaced path stay silent: the block binds the member again at its real
/// path, where the same rule reports it (one mistake, one error, and it says where).
template <template <class...> class E, std::size_t... P, class... Rest>
struct check<false, E<layer<unplaced, P...>, Rest...>> {
  static constexpr bool value = true;
};
template <std::size_t... P, member_name Name, class Declared, class Got>
struct check<false, ERROR_sublayer_input_shape_mismatch<sublayer<layer<unplaced, P...>, Name, Declared>, Got>> {
  static constexpr bool value = true;
};
}  // namespace detail
}  // namespace ctnn

namespace ctnn::nn {

/// Base of a user's block (the counterpart of torch.nn.Module): `struct MLP : nn::Block<MLP<In>>`.
/// It has PyTorch's mode (nn::TrainingMode): forward can read `this->training()`.
template <class Derived>
struct Block : TrainingMode {
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
/// layer (hidden.weight, hidden.bias), and calling it on an expression runs it. It is bound at
/// layer<unplaced> (the block's position is not known inside its struct); the bound block checks
/// it again at its real path.
template <class Spec, class In>
struct Layer : bind_t<Spec, In, layer<ctnn::detail::unplaced>> {
  using bound_type = bind_t<Spec, In, layer<ctnn::detail::unplaced>>;
  using spec = Spec;
  using declared_input = In;
  template <expr::operand E>
  auto operator()(E&& x) const;
};

namespace detail {

/// A bound layer whose binding failed (its output is poisoned_shape); false for non-layers.
template <class L>
concept is_poisoned = std::is_same_v<typename L::output_shape, ctnn::detail::poisoned_shape>;

/// A bound layer whose output mixes the samples of the batch (see BoundBlock::batch_coupled).
template <class L>
concept couples_batch = requires { requires L::batch_coupled; };

/// Whether a bound layer's output has the batch dimension (false: a block returning a whole-batch
/// value, one row for any N).
template <class L>
inline constexpr bool batched_output = nn::has_batched_output<L>;

/// The block B at position Path: carried in the type of B's input X, so that a sub-layer call
/// can name where it is.
template <class B, class Path>
struct site {
  using block = B;
  using path = Path;
};

/// "hidden, out" -> "out" for i = 1 (trimmed); "" past the end.
constexpr std::string_view nth_member_name(std::string_view s, std::size_t i) {
  for (; i > 0; --i) {
    const auto comma = s.find(',');
    if (comma == std::string_view::npos) return {};
    s = s.substr(comma + 1);
  }
  s = s.substr(0, s.find(','));
  const auto b = s.find_first_not_of(" \t\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\n") - b + 1);
}

/// The members of block B whose type is Member: how many, the first one's index, their names.
template <class B, class Member>
struct find_member {
  using members = decltype(std::declval<B&>().ctnn_members());
  static constexpr std::size_t size = std::tuple_size_v<members>;
  static constexpr auto matches = []<std::size_t... I>(std::index_sequence<I...>) {
    return std::array<bool, size + 1>{std::is_same_v<std::remove_cvref_t<std::tuple_element_t<I, members>>, Member>...,
                                      false};
  }(std::make_index_sequence<size>{});
  static constexpr std::size_t count = [] {
    std::size_t c = 0;
    for (std::size_t i = 0; i < size; ++i) c += matches[i];
    return c;
  }();
  static constexpr std::size_t index = [] {
    std::size_t i = 0;
    while (i < size && !matches[i]) ++i;
    return i;
  }();
  /// "second", or "a or b" for two members of the same type (a call cannot tell them apart).
  static constexpr std::size_t label_size = [] {
    std::size_t n = 0, k = 0;
    for (std::size_t i = 0; i < size; ++i)
      if (matches[i]) n += (k++ ? 4 : 0) + nth_member_name(B::ctnn_member_names(), i).size();
    return n;
  }();
  static constexpr member_name<label_size> label = [] {
    member_name<label_size> m{std::string_view{}};
    std::size_t n = 0;
    auto put = [&](std::string_view t) {
      for (char c : t) m.text[n++] = c;
    };
    for (std::size_t i = 0, k = 0; i < size; ++i)
      if (matches[i]) {
        if (k++) put(" or ");
        put(nth_member_name(B::ctnn_member_names(), i));
      }
    return m;
  }();
};

/// The sublayer<...> tag of member `Member` of the block at Site: layer<Path..., i> when the
/// member is found once, the block's path otherwise.
template <class Site, class Member, class Declared>
struct locate {
  using type = sublayer<layer<>, member_name<0>{std::string_view{}}, Declared>;  // not called on the block's X
};
template <class B, class Path, class Member, class Declared>
struct locate<site<B, Path>, Member, Declared> {
  using found = find_member<B, Member>;
  using path = std::conditional_t<found::count == 1, typename path_append<Path, found::index>::type, Path>;
  using type = sublayer<path, found::label, Declared>;
};

}  // namespace detail
}  // namespace ctnn::nn

namespace ctnn::expr {

/// The output of one sub-layer call: a leaf over the layer's output, remembering the call's
/// argument expression for backward. Batched unless the layer returns a whole-batch value.
template <class L, class A>
struct CallOut : Expr<CallOut<L, A>> {
  using in_shape = typename L::input_shape;
  using shape = typename L::output_shape;
  static constexpr bool batched = nn::detail::batched_output<L>;
  static constexpr std::size_t slot_floats = A::slot_floats + in_shape::size + L::activation_floats;
  static constexpr std::size_t scratch_floats = std::max(A::scratch_floats, L::scratch_floats);
  static constexpr bool materializes = false;  // computed when called
  static constexpr bool batch_coupled = A::batch_coupled || nn::detail::couples_batch<L>;
  static constexpr bool failed = A::failed;
  using site = typename A::site;
  template <class O> static constexpr bool simd = leaf_simd<O, shape>;

  L* layer;
  A a;
  int id;
  std::size_t in_off, out_off, val_off;
  const float* in;  // the argument's values
  float* act;  // the layer's activation region
  const float* val;  // its output
  CallOut(L& l, const A& arg, int call_id, std::size_t in_offset, std::size_t out_offset, std::size_t val_offset,
          const float* input, float* activations, const float* output)
      : layer(&l), a(arg), id(call_id), in_off(in_offset), out_off(out_offset), val_off(val_offset), in(input),
        act(activations), val(output) {}

  void prepare(Context&) {}
  template <class O, bool OB> float at(std::size_t n, std::size_t j) const {
    return leaf_at<O, OB, shape, batched>(val, n, j);
  }
  template <class O, bool OB> vfloat vat(std::size_t n, std::size_t j) const {
    return leaf_vat<O, OB, shape, batched>(val, n, j);
  }
  template <class O, bool OB, class G>
  void backward(const G& g, const BackwardContext& bc) const {
    accumulate<O, OB, shape, batched>(g, bc.grad_at(val_off), bc.n);
  }
  // backward: the layer's own backward (dL/d(argument) into the argument's gradient slot), then
  // through the argument's expression.
  bool backprop(int k, const BackwardContext& bc) const {
    if (k != id) return a.backprop(k, bc);
    if constexpr (L::output_offset >= 0)
      bc.mine(layer)->backward(in, bc.grad_at(in_off), bc.n, act, bc.grad_at(out_off), bc.scratch);
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
  if constexpr (detail::is_poisoned<L>) {
    // A member left out of CTNN_MEMBERS whose binding failed (silently, see Layer): bind it again
    // at the block's path, where its rule reports.
    if constexpr (!std::is_void_v<typename A::site>)
      static_assert(detail::is_poisoned<bind_t<Spec, In, typename A::site::path>>,
                    "ctnn block: a sub-layer failed to bind");
    return expr::Failed<Shape<>>{};
  } else if constexpr (A::failed) {
    return expr::Failed<typename L::output_shape>{};  // the argument's error is reported: stay silent
  } else if constexpr (!A::batched || !std::is_same_v<typename A::shape, In>) {
    using where = typename detail::locate<typename A::site, Layer, In>::type;
    (void)ctnn::detail::check<
        false, ERROR_sublayer_input_shape_mismatch<where, expr::detail::shown<typename A::shape, A::batched>>>::value;
    return expr::Failed<typename L::output_shape>{};  // one mistake, one error
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

template <class M>
concept layer_member = requires { typename std::remove_cvref_t<M>::bound_type; };

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

/// Member I of a block at Path: a sub-layer whose (silent) binding failed is bound again at
/// layer<Path..., I>, where its rule reports the error. `value`: the member is fine.
template <class M, class Path, std::size_t I, bool Failed = layer_member<M> && is_poisoned<M>>
struct member_check {
  static constexpr bool value = true;
};
template <class M, class Path, std::size_t I>
struct member_check<M, Path, I, true> {
  using rebound = bind_t<typename M::spec, typename M::declared_input, typename path_append<Path, I>::type>;
  static_assert(is_poisoned<rebound>, "ctnn block: a sub-layer failed to bind at an unknown position");
  static constexpr bool value = false;
};
template <class Path, class Tuple, class Seq>
struct members_check;
template <class Path, class... M, std::size_t... I>
struct members_check<Path, std::tuple<M...>, std::index_sequence<I...>> {
  static constexpr bool value = (member_check<std::remove_cvref_t<M>, Path, I>::value & ... & true);
};

/// The type of B::forward(X) for X at Site; a failed placeholder when a member failed (its error
/// is reported: forward is not instantiated, so nothing reports again).
template <class B, class Site, bool MembersOk>
struct block_result {
  using type = expr::Failed<Shape<>>;
};
template <class B, class Site>
struct block_result<B, Site, true> {
  using input = expr::Input<typename block_input<B>::type, Site>;
  using type = expr::expr_t<decltype(std::declval<B&>().forward(std::declval<input>()))>;
};

template <class B>
constexpr bool declares_batch_coupled() {
  if constexpr (requires { B::batch_coupled; }) return B::batch_coupled;
  else return false;
}

}  // namespace detail

/// The bound form of a user's block B (B = MLP<In>) at position Path: B itself plus the
/// bound-layer interface.
template <class B, class Path = layer<>>
struct BoundBlock : B, Module<BoundBlock<B, Path>>, detail::indexed_children<BoundBlock<B, Path>> {
  using input_shape = typename detail::block_input<B>::type;

 private:
  using members_tuple = decltype(std::declval<B&>().ctnn_members());
  static constexpr bool members_ok =
      detail::members_check<Path, members_tuple, std::make_index_sequence<std::tuple_size_v<members_tuple>>>::value;

 public:
  using result_type = typename detail::block_result<B, detail::site<B, Path>, members_ok>::type;
  /// Binding succeeded (no rule failed inside): otherwise the output is poisoned and the layers
  /// after the block check nothing.
  static constexpr bool ok = !result_type::failed;
  /// false: forward returns a whole-batch value (X.sum()), one row of output_shape for any N.
  static constexpr bool batched_output = result_type::batched;
  using output_shape = std::conditional_t<ok, typename result_type::shape, ctnn::detail::poisoned_shape>;
  /// The output of a sample depends on the other samples of the batch (a reduction over the
  /// batch in the result, or the block says so: `static constexpr bool batch_coupled = true;` for a
  /// whole-batch item() that steers forward), so a batch must not be split.
  static constexpr bool batch_coupled = result_type::batch_coupled || detail::declares_batch_coupled<B>();

  static constexpr std::size_t parameter_count = detail::members_parameter_count<members_tuple>::value;

 private:
  /// What backward needs from forward: the result's expression (pointers into the workspace,
  /// run-time scalars) and how many nodes it materialized. It is kept in the workspace, not in
  /// the block, so a block called twice (shared) backpropagates each call with its own record.
  struct Record {
    result_type result;
    int nodes;
    const BoundBlock* owner;  // the object whose members the expression points at
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

  // forward: run B::forward on a leaf over x ([n, *input_shape]), evaluate its result into the
  // output slot: [n, *output_shape], or [*output_shape] once for a whole-batch result.
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    auto& self = const_cast<BoundBlock&>(*this);
    if constexpr (!ok) {
      return x;
    } else {
      expr::Context ctx{act, scratch, n, output_shape::size, record_offset, 0};
      expr::ContextGuard guard(ctx);
      using X = expr::Input<input_shape, detail::site<B, Path>>;
      Record rec{expr::as_expr(self.B::forward(X(x))), 0, this};
      rec.result.prepare(ctx);
      expr::assign<output_shape, batched_output>(rec.result, act, n);
      rec.nodes = ctx.next_id;
      std::memcpy(act + n * record_offset, &rec, sizeof(Record));
      return act;
    }
  }

  // backward: dL/dy (gact's output slot, like the output) through the recorded expression; then
  // its materialized nodes, last first.
  void backward(const float*, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    if constexpr (ok) {
      alignas(Record) unsigned char bytes[sizeof(Record)];
      std::memcpy(bytes, act + n * record_offset, sizeof(Record));
      const Record& rec = *std::launder(reinterpret_cast<const Record*>(bytes));
      std::fill(gact + n * output_shape::size, gact + n * record_offset, 0.0f);
      if (dx) std::fill_n(dx, n * input_shape::size, 0.0f);
      const auto shift = static_cast<std::ptrdiff_t>(reinterpret_cast<std::uintptr_t>(this) -
                                                     reinterpret_cast<std::uintptr_t>(rec.owner));
      const expr::BackwardContext bc{dx, n, gact, scratch, shift};
      rec.result.template backward<output_shape, batched_output>(expr::View<output_shape, batched_output>(gact), bc);
      for (int k = rec.nodes - 1; k >= 0; --k) rec.result.backprop(k, bc);
    }
  }

  /// Member I of CTNN_MEMBERS (a sub-layer, parameter or tensor): net.get<1>().get<0>().weight,
  /// net[1_c] (detail::indexed_children, nn/module.hpp; declared here so they hide any get in B).
  using detail::indexed_children<BoundBlock>::get;
  using detail::indexed_children<BoundBlock>::operator[];

  /// f(name, member) for each member listed by CTNN_MEMBERS, in order.
  template <class F>
  void for_each_member(F&& f) {
    std::apply(
        [&](auto&... m) {
          std::size_t i = 0;
          (f(std::string(detail::nth_member_name(B::ctnn_member_names(), i++)), m), ...);
        },
        static_cast<B&>(*this).ctnn_members());
  }
  /// f(name, bound layer) for each sub-layer member (summary(), print()).
  template <class F>
  void for_each_sublayer(F&& f) const {
    const_cast<BoundBlock&>(*this).for_each_member([&](const std::string& name, auto& m) {
      using M = std::remove_cvref_t<decltype(m)>;
      if constexpr (detail::layer_member<M>) f(name, static_cast<const typename M::bound_type&>(m));
    });
  }

  /// f(name, parameter) in PyTorch's state_dict / named_parameters order: the block's own Param
  /// members first, then each sub-layer's parameters, whatever the order of CTNN_MEMBERS (torch
  /// keeps a module's parameters in _parameters and its children in _modules, and emits
  /// _parameters before recursing into _modules). Within each kind, CTNN_MEMBERS' order.
  template <class Name, class F>
  void for_each_parameter(const Name& prefix, F&& f) {
    for_each_member([&](const std::string& name, auto& m) {
      if constexpr (expr::detail::is_parameter<std::remove_cvref_t<decltype(m)>>::value) f(prefix + name, m);
    });
    for_each_member([&](const std::string& name, auto& m) {
      using M = std::remove_cvref_t<decltype(m)>;
      if constexpr (detail::layer_member<M>)
        static_cast<typename M::bound_type&>(m).for_each_parameter(prefix + name + ".", f);
    });
  }
  /// The state_dict walk (nn::for_each_state): as for_each_parameter, with the sub-layers'
  /// buffers (a BatchNorm member's running statistics) where PyTorch puts them.
  template <class Name, class F>
  void for_each_state(const Name& prefix, F&& f) {
    for_each_member([&](const std::string& name, auto& m) {
      if constexpr (expr::detail::is_parameter<std::remove_cvref_t<decltype(m)>>::value) f(prefix + name, m);
    });
    for_each_member([&](const std::string& name, auto& m) {
      using M = std::remove_cvref_t<decltype(m)>;
      if constexpr (detail::layer_member<M>)
        nn::for_each_state(static_cast<typename M::bound_type&>(m), prefix + name + ".", f);
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
    for_each_sublayer([&](const std::string& name, const auto& layer) {
      os << (any ? "" : "\n") << std::string(indent + 2, ' ') << '(' << name << "): ";
      layer.print(os, indent + 2);
      os << '\n';
      any = true;
    });
    if (any) os << std::string(indent, ' ');
    os << ')';
  }

 private:
  // For indexed_children: get<I>() is member I.
  friend detail::indexed_children<BoundBlock>;
  static constexpr std::size_t ctnn_child_count = std::tuple_size_v<members_tuple>;
  template <std::size_t I>
  auto& ctnn_child() {
    return std::get<I>(static_cast<B&>(*this).ctnn_members());
  }
};

namespace detail {
template <class B> struct is_block_impl : std::false_type {};
template <class B, class Path> struct is_block_impl<BoundBlock<B, Path>> : std::true_type {};
}  // namespace detail
template <class T> inline constexpr bool is_block = detail::is_block_impl<std::remove_cvref_t<T>>::value;

/// The spec of a block template B<In, Args...>: Sequential<nn::block<MLP>, ...>.
template <template <class, class...> class B, class... Args>
struct BlockSpec {
  template <class In, class Path>
  using bind = BoundBlock<B<In, Args...>, Path>;
};
template <template <class, class...> class B, class... Args>
using block = BlockSpec<B, Args...>;

}  // namespace ctnn::nn

/// Inside a block: the members state_dict / print / apply / reset_parameters walk, named after them.
#define CTNN_MEMBERS(...)                               \
  auto ctnn_members() { return std::tie(__VA_ARGS__); } \
  static constexpr std::string_view ctnn_member_names() { return #__VA_ARGS__; }
/// The same with explicit names: CTNN_MEMBERS_AS("0, 1, 2", a, b, c) (MySequential's "0.weight").
#define CTNN_MEMBERS_AS(names, ...)                     \
  auto ctnn_members() { return std::tie(__VA_ARGS__); } \
  static constexpr std::string_view ctnn_member_names() { return names; }
