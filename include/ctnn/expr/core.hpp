// Tensor expressions: the core — leaves, broadcasting, the evaluation and accumulation loops.
//
// An expression is a small value whose *type* is the computation (expression templates).
// Every node answers the same questions (micrograd style: each node's forward and its
// derivative rule sit side by side, in ops.hpp / reduce.hpp / matmul.hpp):
//
//   using shape;                           // Shape<...>: per sample when `batched`, else the whole tensor
//   static constexpr bool batched;         // has PyTorch's leading batch dimension N (run-time)
//   static constexpr size_t slot_floats;   // workspace floats per sample its materializations need
//   static constexpr size_t scratch_floats;
//   static constexpr bool materializes;    // holds a reduction / mm not yet computed (see prepare)
//   static constexpr bool batch_coupled;   // mixes samples: a reduction over the batch (X.sum(), sum<0>)
//   static constexpr bool failed;          // a compile-time error was reported inside (one mistake,
//                                          // one error: later checks on it stay silent)
//   using site;                            // where the block's input X comes from (nn::detail::site<Block,
//                                          // Path>), for errors that name a sub-layer; void without X
//   template <class O> static constexpr bool simd;  // can be read W lanes at a time in loop space O
//   at<O, OB>(n, j), vat<O, OB>(n, j)      // value at element j of sample n of the loop space [N?, *O]
//   prepare(Context&)                      // compute reductions / mm into the workspace (once)
//   backward<O, OB>(g, BackwardContext&)   // g: an expression for dL/d(this) in loop space O;
//                                          // elementwise nodes pass the chain rule down, leaves
//                                          // *add* into their gradient buffers
//   backprop(id, BackwardContext&)         // the materialized node numbered `id` (reductions, mm,
//                                          // sub-layer calls): propagate its gradient buffer into
//                                          // its operand (done in reverse creation order)
//
// Loop space: an elementwise tree is evaluated by one loop over its result's elements; every
// node reads its operands at the loop's (n, j) through a compile-time broadcast map. Gradient
// expressions live in the same loop space, so a leaf that was broadcast (a bias [K] against
// [N, K]) sums its gradient over the broadcast dimensions simply by accumulating.
//
// Shapes follow PyTorch's broadcasting with the batch dimension in front: two batched operands
// need per-sample shapes of equal rank; a non-batched operand (a parameter, a constant, a
// reduction over the batch) aligns with the trailing per-sample dimensions. A mismatch is
// ERROR_broadcast_shape_mismatch<per_sample<Shape<...>>, Shape<...>> at compile time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ctnn/core/diagnostics.hpp"
#include "ctnn/core/parameter.hpp"
#include "ctnn/core/shape.hpp"
#include "ctnn/core/tensor.hpp"
#include "ctnn/kernels/eltwise.hpp"

namespace ctnn::expr {

using kernels::simd_width;
using kernels::vfloat;

// ---- Contexts: where a block's forward puts what it materializes ------------------------------

/// A block's workspace during its forward: per-sample slots handed out in order.
struct Context {
  float* act = nullptr;        // the block's activation region (n * capacity floats)
  float* scratch = nullptr;    // shared scratch (sub-layers' GEMM packing)
  std::size_t n = 0;           // batch size
  std::size_t cursor = 0;      // per-sample floats handed out so far
  std::size_t capacity = 0;    // per-sample floats the block's type reserved
  int next_id = 0;             // materialized nodes so far (their order is the backward order)

  /// A slot of `floats` per sample; returns its per-sample offset.
  std::size_t allocate(std::size_t floats) {
    if (cursor + floats > capacity)
      throw std::logic_error(
          "ctnn block: forward materialized more than its result's type accounts for (a sub-layer call, "
          "reduction or mm whose result is not part of the returned expression, or one inside a loop)");
    const std::size_t off = cursor;
    cursor += floats;
    return off;
  }
  float* at(std::size_t off) const { return act + n * off; }
};

/// The innermost block forward running on this thread (blocks nest: each saves the outer one).
inline Context*& current_context() {
  thread_local Context* ctx = nullptr;
  return ctx;
}
struct ContextGuard {
  Context* saved;
  explicit ContextGuard(Context& c) : saved(current_context()) { current_context() = &c; }
  ~ContextGuard() { current_context() = saved; }
  ContextGuard(const ContextGuard&) = delete;
  ContextGuard& operator=(const ContextGuard&) = delete;
};
inline Context& context() {
  Context* c = current_context();
  if (!c) throw std::logic_error("ctnn expression: a sub-layer call or reduction outside a block's forward");
  return *c;
}

/// What a block's backward hands its expression tree.
struct BackwardContext {
  float* dx;        // dL/d(block input), or null
  std::size_t n;
  float* gact;      // gradient mirror of the block's activation region
  float* scratch;
  /// The expression points at the members (parameters, sub-layers) of the block object that ran
  /// forward; backward may run on a copy of it (a Model's per-thread replica, which collects its
  /// own gradients): `shift` is the copy's address minus the original's, and mine(p) the copy's p.
  std::ptrdiff_t shift = 0;
  float* grad_at(std::size_t off) const { return gact + n * off; }
  template <class T>
  T* mine(T* p) const {
    return reinterpret_cast<T*>(reinterpret_cast<std::uintptr_t>(p) + static_cast<std::uintptr_t>(shift));
  }
};

// ---- Broadcasting -------------------------------------------------------------------------------

namespace detail {

template <class S>
struct shape_tag {
  using type = S;
};

/// Result of broadcasting (A, batched) with (B, batched), and whether it is legal.
template <class A, bool AB, class B, bool BB>
struct broadcast {
  static constexpr std::size_t r = A::rank > B::rank ? A::rank : B::rank;
  static constexpr bool ranks_ok = !(AB && BB) || A::rank == B::rank;
  static constexpr bool nonbatched_fits = (AB && !BB) ? B::rank <= A::rank : (BB && !AB) ? A::rank <= B::rank : true;
  static constexpr std::size_t dim_a(std::size_t i) {  // i indexes the result, right-aligned
    return i + A::rank >= r ? A::dims[i + A::rank - r] : 1;
  }
  static constexpr std::size_t dim_b(std::size_t i) { return i + B::rank >= r ? B::dims[i + B::rank - r] : 1; }
  static constexpr bool dims_ok = [] {
    for (std::size_t i = 0; i < r; ++i)
      if (dim_a(i) != dim_b(i) && dim_a(i) != 1 && dim_b(i) != 1) return false;
    return true;
  }();
  static constexpr bool ok = ranks_ok && nonbatched_fits && dims_ok;
  template <std::size_t... I>
  static auto make(std::index_sequence<I...>) {
    return Shape<(dim_a(I) == 1 ? dim_b(I) : dim_a(I))...>{};
  }
  using result = std::conditional_t<ok, decltype(make(std::make_index_sequence<r>{})), A>;
};

/// How an error message shows an operand: per_sample<Shape<...>> when batched.
template <class S, bool Batched>
using shown = std::conditional_t<Batched, per_sample<S>, S>;

/// Broadcasting checked once: an operand that already failed (its error is reported) is not
/// checked again, so one mistake gives one error.
template <class A, bool AB, class B, bool BB, bool AlreadyFailed = false>
struct checked_broadcast {
  using bc = broadcast<A, AB, B, BB>;
  static constexpr bool ok = AlreadyFailed || bc::ok;
  static constexpr bool reported =
      ctnn::detail::check<ok, ERROR_broadcast_shape_mismatch<shown<A, AB>, shown<B, BB>>>::value;
  using type = std::conditional_t<reported, typename bc::result, typename bc::result>;
};

/// The first non-void of two sites (an expression holds the input of one block at most).
template <class A, class B>
using either_site = std::conditional_t<std::is_void_v<A>, B, A>;

}  // namespace detail

/// Offset of the operand element (shape S, batched SB) read at element j of sample n of the loop
/// space (O, OB): right-aligned broadcasting, extents of 1 repeat.
template <class O, bool OB, class S, bool SB>
inline std::size_t map_index(std::size_t n, std::size_t j) {
  static_assert(OB || !SB, "ctnn expression: a batched operand inside a non-batched loop");
  const std::size_t base = SB ? n * S::size : 0;
  if constexpr (S::size == 1) {
    return base;
  } else if constexpr (S::size == O::size) {
    return base + j;
  } else {
    std::size_t off = 0;
    for (std::size_t d = 0; d < O::rank; ++d) {
      if (d + S::rank < O::rank) continue;
      const std::size_t sd = d + S::rank - O::rank;
      if (S::dims[sd] == 1) continue;
      off += (j / O::strides[d]) % O::dims[d] * S::strides[sd];
    }
    return base + off;
  }
}

/// A leaf over memory read as (S, SB): W lanes are a plain load when the layouts agree, a
/// broadcast when S has one element; otherwise only scalar reads.
template <class O, class S>
inline constexpr bool leaf_simd = S::size == 1 || S::size == O::size;

template <class O, bool OB, class S, bool SB>
inline float leaf_at(const float* p, std::size_t n, std::size_t j) {
  return p[map_index<O, OB, S, SB>(n, j)];
}
template <class O, bool OB, class S, bool SB>
inline vfloat leaf_vat(const float* p, std::size_t n, std::size_t j) {
  if constexpr (S::size == 1) return vfloat(p[SB ? n : 0]);
  else return vfloat::load_unaligned(p + (SB ? n * S::size : 0) + j);
}

// ---- The expression base: member sugar ------------------------------------------------------------

/// Every node derives from Expr<Node>; the members read like PyTorch's (X.mean(), X.abs()).
template <class D>
struct Expr {
  auto sum() const;
  auto mean() const;
  auto abs() const;
  auto relu() const;
  auto exp() const;
  float item() const;
};

template <class T>
concept expression = std::is_base_of_v<Expr<std::remove_cvref_t<T>>, std::remove_cvref_t<T>>;

// ---- Loops --------------------------------------------------------------------------------------

/// y[n, j] = e(n, j) over the loop space (O, OB): one pass, no temporaries.
template <class O, bool OB, class E>
void assign(const E& e, float* y, std::size_t n) {
  const std::size_t samples = OB ? n : 1;
  for (std::size_t s = 0; s < samples; ++s) {
    float* ys = y + s * O::size;
    std::size_t j = 0;
    if constexpr (E::template simd<O>)
      for (; j + simd_width <= O::size; j += simd_width) e.template vat<O, OB>(s, j).store_unaligned(ys + j);
    for (; j < O::size; ++j) ys[j] = e.template at<O, OB>(s, j);
  }
}

/// t[map(n, j)] += g(n, j) over the loop space (O, OB), t read as (T, TB): a gradient reaching a
/// broadcast operand is summed over the dimensions it was repeated along.
template <class O, bool OB, class T, bool TB, class G>
void accumulate(const G& g, float* t, std::size_t n) {
  const std::size_t samples = OB ? n : 1;
  if constexpr (T::size == 1) {
    double total = 0;  // a whole-batch sum (mean over [N, 128]): keep the rounding small
    for (std::size_t s = 0; s < samples; ++s) {
      float part = 0;
      std::size_t j = 0;
      if constexpr (G::template simd<O>) {
        vfloat acc(0.0f);
        for (; j + simd_width <= O::size; j += simd_width) acc += g.template vat<O, OB>(s, j);
        part = kernels::hsum(acc);
      }
      for (; j < O::size; ++j) part += g.template at<O, OB>(s, j);
      if constexpr (TB) t[s] += part;
      else total += part;
    }
    if constexpr (!TB) t[0] += static_cast<float>(total);
  } else if constexpr (T::size == O::size) {
    for (std::size_t s = 0; s < samples; ++s) {
      float* ts = t + (TB ? s * T::size : 0);
      std::size_t j = 0;
      if constexpr (G::template simd<O>)
        for (; j + simd_width <= O::size; j += simd_width)
          (vfloat::load_unaligned(ts + j) + g.template vat<O, OB>(s, j)).store_unaligned(ts + j);
      for (; j < O::size; ++j) ts[j] += g.template at<O, OB>(s, j);
    }
  } else {
    for (std::size_t s = 0; s < samples; ++s)
      for (std::size_t j = 0; j < O::size; ++j) t[map_index<O, OB, T, TB>(s, j)] += g.template at<O, OB>(s, j);
  }
}

// ---- Leaves ---------------------------------------------------------------------------------------

/// Shared by all leaves: nothing to prepare, no materialized node inside.
struct leaf_base {
  static constexpr std::size_t slot_floats = 0, scratch_floats = 0;
  static constexpr bool materializes = false, batch_coupled = false, failed = false;
  using site = void;
  void prepare(Context&) {}
  bool backprop(int, const BackwardContext&) const { return false; }
};

/// Read-only memory of shape S (batched or not): constants (a Tensor member that is not a
/// parameter, like FixedHiddenMLP's rand_weight) and gradient buffers inside gradient expressions.
template <class S, bool B>
struct View : Expr<View<S, B>>, leaf_base {
  using shape = S;
  static constexpr bool batched = B;
  template <class O> static constexpr bool simd = leaf_simd<O, S>;
  const float* p;
  explicit View(const float* data) : p(data) {}
  template <class O, bool OB> float at(std::size_t n, std::size_t j) const { return leaf_at<O, OB, S, B>(p, n, j); }
  template <class O, bool OB> vfloat vat(std::size_t n, std::size_t j) const { return leaf_vat<O, OB, S, B>(p, n, j); }
  template <class O, bool OB, class G> void backward(const G&, const BackwardContext&) const {}
};

/// What a sub-layer call returns after reporting its error: a batched leaf of the layer's output
/// shape that marks the expression as failed, so nothing after it reports again.
template <class S>
struct Failed : Expr<Failed<S>>, leaf_base {
  using shape = S;
  static constexpr bool batched = true, failed = true;
  template <class O> static constexpr bool simd = false;
  template <class O, bool OB> float at(std::size_t, std::size_t) const { return 0.0f; }
  template <class O, bool OB> vfloat vat(std::size_t, std::size_t) const { return vfloat(0.0f); }
  template <class O, bool OB, class G> void backward(const G&, const BackwardContext&) const {}
};

/// The block's input X: a batched leaf whose gradient goes to the block's dx. `Site` names the
/// block and its position (nn::detail::site), so a sub-layer called on X can say where it is.
template <class S, class Site = void>
struct Input : Expr<Input<S, Site>>, leaf_base {
  using shape = S;
  using site = Site;
  static constexpr bool batched = true;
  template <class O> static constexpr bool simd = leaf_simd<O, S>;
  const float* p;
  explicit Input(const float* data) : p(data) {}
  template <class O, bool OB> float at(std::size_t n, std::size_t j) const { return leaf_at<O, OB, S, true>(p, n, j); }
  template <class O, bool OB> vfloat vat(std::size_t n, std::size_t j) const {
    return leaf_vat<O, OB, S, true>(p, n, j);
  }
  template <class O, bool OB, class G>
  void backward(const G& g, const BackwardContext& bc) const {
    if (bc.dx) accumulate<O, OB, S, true>(g, bc.dx, bc.n);
  }
};

/// A learnable parameter (nn::Parameter member of a block): its gradient accumulates in .grad.
template <class S>
struct ParamLeaf : Expr<ParamLeaf<S>>, leaf_base {
  using shape = S;
  static constexpr bool batched = false;
  template <class O> static constexpr bool simd = leaf_simd<O, S>;
  nn::Parameter<S>* param;
  const float* p;
  explicit ParamLeaf(nn::Parameter<S>& w) : param(&w), p(w.data()) {}
  template <class O, bool OB> float at(std::size_t n, std::size_t j) const { return leaf_at<O, OB, S, false>(p, n, j); }
  template <class O, bool OB> vfloat vat(std::size_t n, std::size_t j) const {
    return leaf_vat<O, OB, S, false>(p, n, j);
  }
  template <class O, bool OB, class G>
  void backward(const G& g, const BackwardContext& bc) const {
    accumulate<O, OB, S, false>(g, bc.mine(param)->grad.data(), bc.n);
  }
};

/// A number (1, 0.5f, a run-time scale): a constant in the derivative.
struct Scalar : Expr<Scalar>, leaf_base {
  using shape = Shape<>;
  static constexpr bool batched = false;
  template <class O> static constexpr bool simd = true;
  float v;
  explicit Scalar(float value) : v(value) {}
  template <class O, bool OB> float at(std::size_t, std::size_t) const { return v; }
  template <class O, bool OB> vfloat vat(std::size_t, std::size_t) const { return vfloat(v); }
  template <class O, bool OB, class G> void backward(const G&, const BackwardContext&) const {}
};

// ---- Turning operands into expressions --------------------------------------------------------------

namespace detail {
template <class T> struct is_parameter : std::false_type {};
template <class S> struct is_parameter<nn::Parameter<S>> : std::true_type {};
template <class T> struct is_tensor : std::false_type {};
template <class S> struct is_tensor<Tensor<S>> : std::true_type {};
}  // namespace detail

/// What may appear in an expression: expressions, nn::Parameter / Tensor members, numbers.
template <class T>
concept operand = expression<T> || detail::is_parameter<std::remove_cvref_t<T>>::value ||
                  detail::is_tensor<std::remove_cvref_t<T>>::value || std::is_arithmetic_v<std::remove_cvref_t<T>>;

template <class T>
auto as_expr(T&& x) {
  using U = std::remove_cvref_t<T>;
  if constexpr (expression<U>) {
    return U(x);
  } else if constexpr (detail::is_parameter<U>::value) {
    return ParamLeaf<typename U::shape_type>(const_cast<U&>(x));
  } else if constexpr (detail::is_tensor<U>::value) {
    return View<typename U::shape_type, false>(x.data());
  } else {
    static_assert(std::is_arithmetic_v<U>, "ctnn expression: not an expression, parameter, tensor or number");
    return Scalar(static_cast<float>(x));
  }
}
template <class T>
using expr_t = decltype(as_expr(std::declval<T>()));

}  // namespace ctnn::expr
