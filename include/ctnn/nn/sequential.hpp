// nn::Sequential<Specs...> — torch.nn.Sequential.
//
// Binding folds left to right: spec i binds to the output shape of layer i-1, at position
// layer<Path..., i> (so errors and state_dict names say where it is, "1.0.weight").
// Sequentials nest. Binding also makes the plan:
//   - fusion: an activation right after a producer (Linear) runs in the producer's epilogue
//     and gets no buffer of its own;
//   - workspace: each layer that writes gets a slice of n * activation_floats at a
//     compile-time offset; views (Flatten, Identity) pass their input through;
//   - pieces: a stretch of layers that run in pieces (nn::runs_in_pieces: Conv2d, pooling,
//     activations, Flatten) with at least two that write runs a large batch piece_samples at a
//     time, layer after layer, so each layer reads its input from cache rather than memory; in
//     backward the gradients that stay inside the stretch reuse the first piece's place.
#pragma once

#include <algorithm>
#include <array>
#include <boost/hana/at.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/tuple.hpp>
#include <cstddef>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>

#include "ctnn/nn/activation.hpp"
#include "ctnn/nn/module.hpp"

namespace ctnn::nn {

namespace detail {
/// Producers (Linear, Conv2d) whose kernel can apply an activation in its epilogue.
template <class B>
concept has_epilogue = requires(const B& b, const float* x, float* p) {
  b.template forward_fused<kernels::identity_op>(x, std::size_t{}, p, p);
};
}  // namespace detail

template <class... Bs>
struct BoundSequential : Module<BoundSequential<Bs...>>, detail::indexed_children<BoundSequential<Bs...>> {
  static constexpr std::size_t L = sizeof...(Bs);
  template <std::size_t I>
  using layer_type = std::tuple_element_t<I, std::tuple<Bs...>>;

  using input_shape = typename layer_type<0>::input_shape;
  using output_shape = typename layer_type<L - 1>::output_shape;
  static constexpr std::size_t parameter_count = (Bs::parameter_count + ... + 0);

  /// fused[i]: layer i is an activation applied in layer i-1's epilogue.
  static constexpr std::array<bool, L> fused = [] {
    constexpr bool producer[] = {detail::has_epilogue<Bs>...};
    constexpr bool activation[] = {detail::is_eltwise_activation<Bs>::value...};
    std::array<bool, L> f{};
    for (std::size_t i = 1; i < L; ++i) f[i] = producer[i - 1] && activation[i];
    return f;
  }();
  /// Per-sample workspace offset of each layer's output; the total is activation_floats.
  static constexpr std::array<std::size_t, L + 1> offsets = [] {
    constexpr std::size_t floats[] = {Bs::activation_floats...};
    std::array<std::size_t, L + 1> o{};
    for (std::size_t i = 0; i < L; ++i) o[i + 1] = o[i] + (fused[i] ? 0 : floats[i]);
    return o;
  }();
  static constexpr std::size_t activation_floats = offsets[L];
  static constexpr std::size_t scratch_floats = std::max({Bs::scratch_floats...});
  /// Some layer mixes the samples of a batch (see nn::is_batch_coupled).
  static constexpr bool batch_coupled = (is_batch_coupled<Bs> || ...);
  /// The output has N rows unless the last layer returns one whole-batch value.
  static constexpr bool batched_output = has_batched_output<layer_type<L - 1>>;

  /// Stretches of layers run in pieces: run_end[i] = the end of the stretch that starts at
  /// layer i, or i when none starts there. A stretch is a maximal run of nn::runs_in_pieces
  /// layers with at least two that write their own output (a fused activation does not).
  static constexpr std::array<std::size_t, L> run_end = [] {
    constexpr bool pieces[] = {runs_in_pieces<Bs>...};
    constexpr bool writes[] = {(Bs::output_offset >= 0)...};
    std::array<std::size_t, L> e{};
    for (std::size_t i = 0; i < L; ++i) e[i] = i;
    for (std::size_t i = 0; i < L;) {
      std::size_t j = i, writers = 0;
      while (j < L && pieces[j]) writers += writes[j] && !fused[j], ++j;
      if (writers >= 2) e[i] = j;
      i = j > i ? j : i + 1;
    }
    return e;
  }();
  /// Activations per piece of a stretch: about 256 KB (their gradients as many again), which
  /// stays in L2 from one layer to the next.
  static constexpr std::size_t piece_floats = 65536;
  /// Samples per piece of the stretch [B, E).
  template <std::size_t B, std::size_t E>
  static constexpr std::size_t piece_samples =
      std::max<std::size_t>(1, piece_floats / std::max<std::size_t>(1, offsets[E] - offsets[B]));

  /// Per-sample offset (inside this Sequential's region) of layer I's output, or -1 when it is
  /// this Sequential's input (only views before it). A fused activation's output is its producer's.
  template <std::size_t I>
  static constexpr std::ptrdiff_t output_offset_of() {
    if constexpr (fused[I]) {
      return output_offset_of<I - 1>();
    } else if constexpr (layer_type<I>::output_offset < 0) {
      if constexpr (I == 0) return -1;
      else return output_offset_of<I - 1>();
    } else {
      return static_cast<std::ptrdiff_t>(offsets[I]) + layer_type<I>::output_offset;
    }
  }
  static constexpr std::ptrdiff_t output_offset = output_offset_of<L - 1>();

  boost::hana::tuple<Bs...> layers;

  // net.get<I>(), net[I_c]: detail::indexed_children (nn/module.hpp).
  static constexpr std::size_t size() { return L; }

  // forward: x -> layer 0 -> ... -> layer L-1, fused pairs as one stage, stretches in pieces.
  const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
    return forward_from<0>(x, n, act, scratch);
  }

  // backward: the stages in reverse. dL/d(output of layer i) sits in `gact` where layer i's output
  // sits in `act`, so views (Flatten) and fused activations need no step of their own.
  void backward(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    backward_before<L>(x, dx, n, act, gact, scratch);
  }

  void reset_parameters(Generator& gen) {
    boost::hana::for_each(layers, [&](auto& l) { l.reset_parameters(gen); });
  }
  template <class Name, class F>
  void for_each_parameter(const Name& prefix, F&& f) {
    for_each_indexed([&](auto& l, std::size_t i) { l.for_each_parameter(prefix + std::to_string(i) + ".", f); });
  }
  /// The state_dict walk (nn::for_each_state): each layer's parameters and buffers, in order.
  template <class Name, class F>
  void for_each_state(const Name& prefix, F&& f) {
    for_each_indexed([&](auto& l, std::size_t i) { nn::for_each_state(l, prefix + std::to_string(i) + ".", f); });
  }
  /// Every sub-layer (recursively), then this Sequential, as torch's Module.apply.
  template <class F>
  void apply(F&& f) {
    boost::hana::for_each(layers, [&](auto& l) { l.apply(f); });
    f(*this);
  }
  /// Calls f(layer, index) for each direct child.
  template <class F>
  void for_each_indexed(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (f(boost::hana::at_c<I>(layers), I), ...);
    }(std::make_index_sequence<L>{});
  }
  template <class F>
  void for_each_indexed(F&& f) const {
    const_cast<BoundSequential&>(*this).for_each_indexed([&](const auto& l, std::size_t i) { f(l, i); });
  }

  static std::string type_name() { return "Sequential"; }
  void print(std::ostream& os, int indent) const {
    os << "Sequential(\n";
    for_each_indexed([&](const auto& l, std::size_t i) {
      os << std::string(indent + 2, ' ') << '(' << i << "): ";
      l.print(os, indent + 2);
      os << '\n';
    });
    os << std::string(indent, ' ') << ')';
  }

 private:
  /// f(first sample, samples) for the pieces of at most `most` samples of a batch of n, in order.
  template <class F>
  static void for_each_piece(std::size_t n, std::size_t most, F&& f) {
    const std::size_t pieces = (n + most - 1) / most;
    for (std::size_t i = 0; i < pieces; ++i) {
      const auto [s0, k] = ctnn::detail::batch_part(n, pieces, i);
      f(s0, k);
    }
  }
  /// The workspace slot of layer J's output (J = -1: this Sequential's input), as output_offset_of.
  template <std::ptrdiff_t J>
  static constexpr std::ptrdiff_t slot_of() {
    if constexpr (J < 0) return -1;
    else return output_offset_of<static_cast<std::size_t>(J)>();
  }
  /// Inside the stretch [B, E), the gradient in slot S is written and read within one piece: it
  /// is neither the stretch's input nor its output, so every piece can use the first one's place.
  template <std::size_t B, std::size_t E>
  static constexpr bool internal_slot(std::ptrdiff_t S) {
    return S >= 0 && S != slot_of<static_cast<std::ptrdiff_t>(B) - 1>() &&
           S != slot_of<static_cast<std::ptrdiff_t>(E) - 1>();
  }

  // ---- forward ----
  template <std::size_t I>
  const float* forward_from(const float* x, std::size_t n, float* act, float* scratch) const {
    if constexpr (I == L) {
      return x;
    } else if constexpr (run_end[I] > I) {
      constexpr std::size_t E = run_end[I], P = piece_samples<I, E>;
      const float* y = nullptr;
      if (n <= P) {
        y = forward_stages<I, E>(x, n, 0, n, act, scratch);
      } else {
        for_each_piece(n, P, [&](std::size_t s0, std::size_t k) {
          const float* yp = forward_stages<I, E>(x + s0 * layer_type<I>::input_shape::size, n, s0, k, act, scratch);
          if (s0 == 0) y = yp;  // the stretch's output for the whole batch starts with the first piece's
        });
      }
      return forward_from<E>(y, n, act, scratch);
    } else {
      return forward_from<I + 1>(forward_stage<I>(x, n, 0, n, act, scratch), n, act, scratch);
    }
  }
  /// Stages [I, E) on samples [s0, s0 + k) of the batch of n; x: the first sample's input.
  template <std::size_t I, std::size_t E>
  const float* forward_stages(const float* x, std::size_t n, std::size_t s0, std::size_t k, float* act,
                              float* scratch) const {
    if constexpr (I == E) return x;
    else return forward_stages<I + 1, E>(forward_stage<I>(x, n, s0, k, act, scratch), n, s0, k, act, scratch);
  }
  /// Layer I (with the activation after it, when fused) on samples [s0, s0 + k) of the batch of n.
  template <std::size_t I>
  const float* forward_stage(const float* x, std::size_t n, std::size_t s0, std::size_t k, float* act,
                             float* scratch) const {
    float* out = act + n * offsets[I] + s0 * layer_type<I>::activation_floats;
    if constexpr (fused[I]) {
      return x;  // already applied by layer I-1
    } else if constexpr (I + 1 < L && fused[I + 1]) {
      using Op = typename layer_type<I + 1>::op;
      return boost::hana::at_c<I>(layers).template forward_fused<Op>(x, k, out, scratch);
    } else {
      return boost::hana::at_c<I>(layers).forward(x, k, out, scratch);
    }
  }

  // ---- backward ----
  /// The stages [0, E) in reverse: a stretch ending at E as a whole, in pieces; else stage E-1.
  template <std::size_t E>
  void backward_before(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
    if constexpr (E > 0) {
      constexpr std::size_t B = stretch_begin(E);
      if constexpr (B < E) {
        constexpr std::size_t P = piece_samples<B, E>;
        if (n <= P) backward_stages<B, E, B, E>(x, dx, n, 0, n, act, gact, scratch);
        else
          for_each_piece(n, P, [&](std::size_t s0, std::size_t k) {
            backward_stages<B, E, B, E>(x, dx, n, s0, k, act, gact, scratch);
          });
        backward_before<B>(x, dx, n, act, gact, scratch);
      } else {
        backward_stage<E - 1, 0, 0>(x, dx, n, 0, n, act, gact, scratch);
        backward_before<E - 1>(x, dx, n, act, gact, scratch);
      }
    }
  }
  /// The start of the stretch that ends at E, or E when none does.
  static constexpr std::size_t stretch_begin(std::size_t E) {
    for (std::size_t i = 0; i < E; ++i)
      if (run_end[i] == E && run_end[i] > i) return i;
    return E;
  }
  /// Stages [I, E) of the stretch [B, SE) in reverse, on samples [s0, s0 + k) of the batch of n.
  template <std::size_t I, std::size_t E, std::size_t B, std::size_t SE>
  void backward_stages(const float* x, float* dx, std::size_t n, std::size_t s0, std::size_t k, const float* act,
                       float* gact, float* scratch) {
    if constexpr (I < E) {
      backward_stage<E - 1, B, SE>(x, dx, n, s0, k, act, gact, scratch);
      backward_stages<I, E - 1, B, SE>(x, dx, n, s0, k, act, gact, scratch);
    }
  }
  /// Layer I's backward on samples [s0, s0 + k) of the batch of n; inside a stretch [B, SE)
  /// (SE > 0), the gradients in its internal slots are at the first piece's place.
  template <std::size_t I, std::size_t B, std::size_t SE>
  void backward_stage(const float* x, float* dx, std::size_t n, std::size_t s0, std::size_t k, const float* act,
                      float* gact, float* scratch) {
    if constexpr (fused[I] || layer_type<I>::output_offset < 0) {
      return;  // done by layer I-1 / gradient memory shared with the input
    } else {
      // Layer I's input and the place for its gradient: layer I-1's output, or this Sequential's input.
      constexpr std::size_t in_size = layer_type<I>::input_shape::size, out_size = layer_type<I>::activation_floats;
      constexpr std::ptrdiff_t prev = slot_of<static_cast<std::ptrdiff_t>(I) - 1>();
      [[maybe_unused]] constexpr bool din_internal = SE > 0 && internal_slot<B, SE>(prev);
      constexpr bool g_internal = SE > 0 && internal_slot<B, SE>(static_cast<std::ptrdiff_t>(offsets[I]));
      const float* in = x + s0 * in_size;
      float* din = dx ? dx + s0 * in_size : nullptr;
      if constexpr (prev >= 0) {
        in = act + n * static_cast<std::size_t>(prev) + s0 * in_size;
        din = gact + n * static_cast<std::size_t>(prev) + (din_internal ? 0 : s0) * in_size;
      }
      auto& layer = boost::hana::at_c<I>(layers);
      const float* a = act + n * offsets[I] + s0 * out_size;
      float* g = gact + n * offsets[I] + (g_internal ? 0 : s0) * out_size;
      if constexpr (I + 1 < L && fused[I + 1]) {
        layer.template backward_fused<typename layer_type<I + 1>::op>(in, din, k, a, g, scratch);
      } else {
        layer.backward(in, din, k, a, g, scratch);
      }
    }
  }
  // For indexed_children: get<I>() is layer I.
  friend detail::indexed_children<BoundSequential>;
  static constexpr std::size_t ctnn_child_count = L;
  template <std::size_t I>
  auto& ctnn_child() {
    return boost::hana::at_c<I>(layers);
  }
};

namespace detail {

template <class... Bs>
struct is_sequential_impl<BoundSequential<Bs...>> : std::true_type {};

template <class... Bs>
struct bound_list {};
template <class B, class List>
struct prepend;
template <class B, class... Bs>
struct prepend<B, bound_list<Bs...>> {
  using type = bound_list<B, Bs...>;
};

/// Binds specs I, I+1, ... left to right, each on the previous one's output shape.
template <class In, class Path, std::size_t I, class... Specs>
struct bind_chain {
  using type = bound_list<>;
};
template <class In, class Path, std::size_t I, class S0, class... Rest>
struct bind_chain<In, Path, I, S0, Rest...> {
  using B0 = bind_t<S0, In, typename path_append<Path, I>::type>;
  using type = typename prepend<B0, typename bind_chain<typename B0::output_shape, Path, I + 1, Rest...>::type>::type;
};

template <class List>
struct to_sequential;
template <class... Bs>
struct to_sequential<bound_list<Bs...>> {
  using type = BoundSequential<Bs...>;
};

template <class In, class Path, class... Specs>
struct bind_sequential {
  using type = typename to_sequential<typename bind_chain<In, Path, 0, Specs...>::type>::type;
};
template <class In, class Path>
struct bind_sequential<In, Path> {
  static constexpr bool ok = ctnn::detail::check<false, ERROR_empty_sequential<Path>>::value;
  using type = std::conditional_t<ok, PoisonedLayer, PoisonedLayer>;
};

}  // namespace detail

/// torch.nn.Sequential(*layers); nests.
template <class... Specs>
struct Sequential {
  template <class In, class Path>
  using bind = typename detail::bind_sequential<In, Path, Specs...>::type;
};

}  // namespace ctnn::nn
