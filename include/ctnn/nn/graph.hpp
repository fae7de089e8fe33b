// Networks that are not a straight line: nn::Residual<Body, Shortcut> and nn::Concat<Branches...>.
//
//   Residual: y = body(x) + shortcut(x)             (Shortcut = nn::Identity by default)
//   Concat:   y = torch.cat([b(x) for b in branches], dim=1)
//
// Every path is any spec (a layer, a Sequential, a block, another Residual or Concat), bound on the
// same input shape, at layer<Path..., i> (body 0, shortcut 1; branch i), so errors say where;
// state_dict keys are "body.<...>", "shortcut.<...>" and "0.<...>", "1.<...>" under the layer's.
// Rules: ERROR_residual_shape_mismatch (the two paths' outputs differ), ERROR_concat_shape_mismatch
// (a branch's output differs from branch 0's in rank or in an extent other than channels),
// ERROR_empty_concat.
//
// Workspace (per sample): [output][path 0's region][path 1's region]...[dx of a path, when the
// input's gradient has more than one writer]. Each path runs its forward on x into its own
// region; then one pass writes the output (the sum; each branch's channels at their place).
// Backward: dL/dy is copied into each writing path's output-gradient slot (for Concat, its
// channels), each path runs its backward, and their input gradients are added into dx; a path
// that is a view of x (nn::Identity) adds dL/dy (its channels) to dx directly.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <ostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ctnn/kernels/simd.hpp"
#include "ctnn/nn/flatten.hpp"
#include "ctnn/nn/module.hpp"

namespace ctnn::nn {

namespace detail {
/// y[i] = a[i] + b[i]
inline void add_into(const float* a, const float* b, float* y, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) y[i] = a[i] + b[i];
}
/// y[i] += a[i]
inline void accumulate(float* y, const float* a, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) y[i] += a[i];
}
/// The layer's output-gradient slot in its region's gradient mirror, or null for a view.
template <class L>
float* output_grad_slot(float* g, std::size_t n) {
  if constexpr (L::output_offset < 0) return (void)g, (void)n, nullptr;
  else return g + n * static_cast<std::size_t>(L::output_offset);
}
}  // namespace detail

// ---- Residual -------------------------------------------------------------------------------

template <class Body, class Shortcut>
struct BoundResidual : Module<BoundResidual<Body, Shortcut>>, detail::indexed_children<BoundResidual<Body, Shortcut>> {
  using input_shape = typename Body::input_shape;
  using output_shape = typename Body::output_shape;
  static constexpr std::size_t in_size = input_shape::size, out_size = output_shape::size;
  static constexpr bool shortcut_writes = Shortcut::output_offset >= 0;
  static constexpr bool body_writes = Body::output_offset >= 0;

  static constexpr std::size_t parameter_count = Body::parameter_count + Shortcut::parameter_count;
  // Per sample: [output][body][shortcut][the shortcut's dx, when both paths write one]
  static constexpr std::size_t body_offset = out_size;
  static constexpr std::size_t shortcut_offset = body_offset + Body::activation_floats;
  static constexpr std::size_t dx_offset = shortcut_offset + Shortcut::activation_floats;
  static constexpr std::size_t activation_floats = dx_offset + (body_writes && shortcut_writes ? in_size : 0);
  static constexpr std::size_t scratch_floats = std::max(Body::scratch_floats, Shortcut::scratch_floats);
  static constexpr std::ptrdiff_t output_offset = 0;
  static constexpr bool batch_coupled = is_batch_coupled<Body> || is_batch_coupled<Shortcut>;

  Body body;
  Shortcut shortcut;

  // forward: y = body(x) + shortcut(x)
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    const float* yb = body.forward(x, n, act + n * body_offset, scratch);
    const float* ys = shortcut.forward(x, n, act + n * shortcut_offset, scratch);
    detail::add_into(yb, ys, act, n * out_size);
    return act;
  }

  // backward: dL/dy into both paths; dx = body's dx + shortcut's dx (dL/dy itself for a view).
  void backward(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    const float* dy = gact;
    float* gb = detail::output_grad_slot<Body>(gact + n * body_offset, n);
    float* gs = detail::output_grad_slot<Shortcut>(gact + n * shortcut_offset, n);
    if (gb) std::copy_n(dy, n * out_size, gb);
    if (gs) std::copy_n(dy, n * out_size, gs);
    float* dx_shortcut = nullptr;  // where the shortcut's dx goes
    if constexpr (shortcut_writes) dx_shortcut = dx ? (body_writes ? gact + n * dx_offset : dx) : nullptr;
    if constexpr (shortcut_writes)
      shortcut.backward(x, dx_shortcut, n, act + n * shortcut_offset, gact + n * shortcut_offset, scratch);
    if constexpr (body_writes) body.backward(x, dx, n, act + n * body_offset, gact + n * body_offset, scratch);
    if (!dx) return;
    if constexpr (body_writes && shortcut_writes) detail::accumulate(dx, dx_shortcut, n * in_size);
    else if constexpr (body_writes || shortcut_writes) detail::accumulate(dx, dy, n * in_size);
    else detail::add_into(dy, dy, dx, n * in_size);
  }

  void reset_parameters(Generator& gen) {
    body.reset_parameters(gen);
    shortcut.reset_parameters(gen);
  }
  template <class Name, class F>
  void for_each_parameter(const Name& prefix, F&& f) {
    body.for_each_parameter(prefix + "body.", f);
    shortcut.for_each_parameter(prefix + "shortcut.", f);
  }
  template <class Name, class F>
  void for_each_state(const Name& prefix, F&& f) {
    nn::for_each_state(body, prefix + "body.", f);
    nn::for_each_state(shortcut, prefix + "shortcut.", f);
  }
  template <class F>
  void apply(F&& f) {
    body.apply(f);
    shortcut.apply(f);
    f(*this);
  }
  /// f(name, layer) for body and shortcut (summary()).
  template <class F>
  void for_each_sublayer(F&& f) const {
    f(std::string("body"), body);
    f(std::string("shortcut"), shortcut);
  }
  static std::string type_name() { return "Residual"; }
  void print(std::ostream& os, int indent) const {
    const std::string pad(indent + 2, ' ');
    os << "Residual(\n" << pad << "(body): ";
    body.print(os, indent + 2);
    os << '\n' << pad << "(shortcut): ";
    shortcut.print(os, indent + 2);
    os << '\n' << std::string(indent, ' ') << ')';
  }

 private:
  friend detail::indexed_children<BoundResidual>;
  static constexpr std::size_t ctnn_child_count = 2;
  template <std::size_t I>
  auto& ctnn_child() {
    if constexpr (I == 0) return body;
    else return shortcut;
  }
};

namespace detail {

template <class In, class Path, class BodySpec, class ShortcutSpec>
struct bind_residual_at {
  using body = bind_t<BodySpec, In, typename path_append<Path, 0>::type>;
  using shortcut = bind_t<ShortcutSpec, In, typename path_append<Path, 1>::type>;
  static constexpr bool failed = std::is_same_v<body, PoisonedLayer> || std::is_same_v<shortcut, PoisonedLayer> ||
                                 std::is_same_v<typename body::output_shape, ctnn::detail::poisoned_shape> ||
                                 std::is_same_v<typename shortcut::output_shape, ctnn::detail::poisoned_shape>;
  using checked = rules<rule<!failed && !std::is_same_v<typename body::output_shape, typename shortcut::output_shape>,
                             ERROR_residual_shape_mismatch<Path, body_output<typename body::output_shape>,
                                                           shortcut_output<typename shortcut::output_shape>>>>;
  using type = std::conditional_t<!failed && checked::ok, BoundResidual<body, shortcut>, PoisonedLayer>;
};

template <class B, class S>
struct is_residual_impl<BoundResidual<B, S>> : std::true_type {};

}  // namespace detail

/// y = body(x) + shortcut(x) (D2L's Residual; Shortcut = nn::Identity, or a strided 1x1 Conv2d).
template <class Body, class Shortcut = Identity>
struct Residual {
  template <class In, class Path>
  using bind = typename detail::bind_residual_at<In, Path, Body, Shortcut>::type;
};

// ---- Concat ---------------------------------------------------------------------------------

template <class Out, class... Bs>
struct BoundConcat : Module<BoundConcat<Out, Bs...>>, detail::indexed_children<BoundConcat<Out, Bs...>> {
  static constexpr std::size_t K = sizeof...(Bs);
  template <std::size_t I>
  using branch_type = std::tuple_element_t<I, std::tuple<Bs...>>;
  using input_shape = typename branch_type<0>::input_shape;
  using output_shape = Out;
  static constexpr std::size_t in_size = input_shape::size, out_size = Out::size;
  /// Floats of one channel (the product of the extents after dim 0).
  static constexpr std::size_t inner = Out::size / Out::dims[0];
  /// Each branch's floats per sample and where they start in the output's sample.
  static constexpr std::array<std::size_t, K> sizes = {Bs::output_shape::size...};
  static constexpr std::array<std::size_t, K> places = [] {
    std::array<std::size_t, K> p{};
    for (std::size_t i = 1; i < K; ++i) p[i] = p[i - 1] + sizes[i - 1];
    return p;
  }();
  static constexpr std::array<bool, K> writes = {(Bs::output_offset >= 0)...};
  static constexpr std::size_t writers = [] {
    std::size_t w = 0;
    for (bool b : writes) w += b;
    return w;
  }();
  /// Per sample: [output][branch 0]...[branch K-1][a branch's dx, when two or more write one]
  static constexpr std::array<std::size_t, K + 1> offsets = [] {
    constexpr std::size_t floats[] = {Bs::activation_floats...};
    std::array<std::size_t, K + 1> o{};
    o[0] = Out::size;
    for (std::size_t i = 0; i < K; ++i) o[i + 1] = o[i] + floats[i];
    return o;
  }();
  static constexpr std::size_t dx_offset = offsets[K];
  static constexpr std::size_t activation_floats = dx_offset + (writers >= 2 ? in_size : 0);
  static constexpr std::size_t scratch_floats = std::max({Bs::scratch_floats...});
  static constexpr std::size_t parameter_count = (Bs::parameter_count + ... + 0);
  static constexpr std::ptrdiff_t output_offset = 0;
  static constexpr bool batch_coupled = (is_batch_coupled<Bs> || ...);

  std::tuple<Bs...> branches;

  // forward: each branch on x, then its channels into their place of each sample of y.
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    for_each_branch([&]<std::size_t I>(const auto& b) {
      const float* yi = b.forward(x, n, act + n * offsets[I], scratch);
      for (std::size_t s = 0; s < n; ++s) std::copy_n(yi + s * sizes[I], sizes[I], act + s * out_size + places[I]);
    });
    return act;
  }

  // backward: each writing branch gets its channels of dL/dy and adds its dx (the first writes
  // dx); a view branch (nn::Identity) adds its channels of dL/dy to dx directly.
  void backward(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    const float* dy = gact;
    bool dx_written = false;
    for_each_branch([&]<std::size_t I>(auto& b) {
      using B = branch_type<I>;
      if constexpr (B::output_offset >= 0) {
        float* g = detail::output_grad_slot<B>(gact + n * offsets[I], n);
        for (std::size_t s = 0; s < n; ++s) std::copy_n(dy + s * out_size + places[I], sizes[I], g + s * sizes[I]);
        float* into = dx ? (dx_written ? gact + n * dx_offset : dx) : nullptr;
        b.backward(x, into, n, act + n * offsets[I], gact + n * offsets[I], scratch);
        if (dx && dx_written) detail::accumulate(dx, into, n * in_size);
        dx_written = true;
      }
    });
    if (!dx) return;
    if (!dx_written) std::fill_n(dx, n * in_size, 0.0f);
    for_each_branch([&]<std::size_t I>(auto&) {
      if constexpr (branch_type<I>::output_offset < 0)
        for (std::size_t s = 0; s < n; ++s)
          detail::accumulate(dx + s * in_size, dy + s * out_size + places[I], sizes[I]);
    });
  }

  void reset_parameters(Generator& gen) {
    for_each_branch([&]<std::size_t I>(auto& b) { b.reset_parameters(gen); });
  }
  template <class Name, class F>
  void for_each_parameter(const Name& prefix, F&& f) {
    for_each_branch([&]<std::size_t I>(auto& b) { b.for_each_parameter(prefix + std::to_string(I) + ".", f); });
  }
  template <class Name, class F>
  void for_each_state(const Name& prefix, F&& f) {
    for_each_branch([&]<std::size_t I>(auto& b) { nn::for_each_state(b, prefix + std::to_string(I) + ".", f); });
  }
  template <class F>
  void apply(F&& f) {
    for_each_branch([&]<std::size_t I>(auto& b) { b.apply(f); });
    f(*this);
  }
  /// f(name, layer) for each branch, named "0", "1", ... (summary()).
  template <class F>
  void for_each_sublayer(F&& f) const {
    for_each_branch([&]<std::size_t I>(const auto& b) { f(std::to_string(I), b); });
  }
  static std::string type_name() { return "Concat"; }
  void print(std::ostream& os, int indent) const {
    os << "Concat(\n";
    for_each_branch([&]<std::size_t I>(const auto& b) {
      os << std::string(indent + 2, ' ') << '(' << I << "): ";
      b.print(os, indent + 2);
      os << '\n';
    });
    os << std::string(indent, ' ') << ')';
  }

 private:
  /// f.template operator()<I>(branch I) for each branch, in order.
  template <class F>
  void for_each_branch(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<I>(std::get<I>(branches)), ...);
    }(std::make_index_sequence<K>{});
  }
  template <class F>
  void for_each_branch(F&& f) const {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f.template operator()<I>(std::get<I>(branches)), ...);
    }(std::make_index_sequence<K>{});
  }
  friend detail::indexed_children<BoundConcat>;
  static constexpr std::size_t ctnn_child_count = K;
  template <std::size_t I>
  auto& ctnn_child() {
    return std::get<I>(branches);
  }
};

namespace detail {

/// The branches' output shapes agree but for dim 0: the first branch that does not, or K.
template <class First, class... Outs>
constexpr std::size_t first_concat_mismatch() {
  std::size_t i = 0, bad = sizeof...(Outs);
  auto same_but_channels = []<class S>(S) {
    if constexpr (S::rank != First::rank || S::rank == 0) {
      return false;
    } else {
      for (std::size_t d = 1; d < S::rank; ++d)
        if (S::dims[d] != First::dims[d]) return false;
      return true;
    }
  };
  ((bad = (bad == sizeof...(Outs) && !same_but_channels(Outs{})) ? i : bad, ++i), ...);
  return bad;
}

template <class Out, std::size_t C>
struct with_channels;
template <std::size_t C0, std::size_t... D, std::size_t C>
struct with_channels<Shape<C0, D...>, C> {
  using type = Shape<C, D...>;
};

template <class In, class Path, class Seq, class... Specs>
struct bind_concat_at;
template <class In, class Path, std::size_t... I, class... Specs>
struct bind_concat_at<In, Path, std::index_sequence<I...>, Specs...> {
  using bound = std::tuple<bind_t<Specs, In, typename path_append<Path, I>::type>...>;
  template <std::size_t J>
  using branch = std::tuple_element_t<J, bound>;
  static constexpr bool failed =
      ((std::is_same_v<typename branch<I>::output_shape, ctnn::detail::poisoned_shape>) || ...);
  using first = typename branch<0>::output_shape;
  static constexpr std::size_t bad =
      failed ? sizeof...(I) : first_concat_mismatch<first, typename branch<I>::output_shape...>();
  using bad_shape = typename branch<(bad < sizeof...(I) ? bad : 0)>::output_shape;
  // clang-format off
  using checked = rules<
      rule<(!failed && first::rank == 0), ERROR_concat_shape_mismatch<Path, ctnn::branch<0>, branch_output<first>, first_branch_output<first>>>,
      rule<(!failed && bad < sizeof...(I)), ERROR_concat_shape_mismatch<Path, ctnn::branch<bad>, branch_output<bad_shape>, first_branch_output<first>>>>;
  // clang-format on
  static constexpr std::size_t channels = [] {
    if constexpr (failed || first::rank == 0) return std::size_t{0};
    else return (branch<I>::output_shape::dims[0] + ...);
  }();
  using type =
      std::conditional_t<!failed && checked::ok,
                         BoundConcat<typename with_channels<first, channels>::type, branch<I>...>, PoisonedLayer>;
};

template <class In, class Path, class... Specs>
struct bind_concat {
  using type = typename bind_concat_at<In, Path, std::index_sequence_for<Specs...>, Specs...>::type;
};
template <class In, class Path>
struct bind_concat<In, Path> {
  static constexpr bool ok = ctnn::detail::check<false, ERROR_empty_concat<Path>>::value;
  using type = std::conditional_t<ok, PoisonedLayer, PoisonedLayer>;
};

template <class Out, class... Bs>
struct is_concat_impl<BoundConcat<Out, Bs...>> : std::true_type {};

}  // namespace detail

/// torch.cat([b(x) for b in branches], dim=1): GoogLeNet's Inception, DenseNet's dense block.
template <class... Branches>
struct Concat {
  template <class In, class Path>
  using bind = typename detail::bind_concat<In, Path, Branches...>::type;
};

}  // namespace ctnn::nn
