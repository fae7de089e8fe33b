// Reductions: sum and mean over everything or along one dimension, PyTorch's dims counted with
// the batch dimension as 0.
//
//   sum(X), X.sum()         over every element, batch included -> a 0-d tensor (not batched)
//   mean(X), X.mean()       likewise, divided by N * size
//   sum<0>(X)               over the batch -> [*S], not batched
//   sum<d>(X), d >= 1       along sample dimension d-1 -> [N, *S without it]   (keepdim: sum<d, true>)
//   X.sum().item()          the value as a float, forward only (a data-dependent loop's condition)
//   sum(v), sum<0>(v)       v an nn::Param / Tensor member: no batch, so dim 0 is its first dimension
//
// A reduction is computed into the block's workspace right before the first loop that reads it
// (prepare), so elementwise chains that use it stay one pass. Backward: dL/dX = broadcast of
// dL/d(result) (times 1/count for mean) — the reduced dimension is kept as an extent of 1, which
// broadcasts back.
#pragma once

#include "ctnn/expr/ops.hpp"

namespace ctnn::expr {

inline constexpr int all_dims = -1;

namespace detail {
template <class S, std::size_t D, std::size_t... I>
auto remove_dim(std::index_sequence<I...>) -> Shape<S::dims[I < D ? I : I + 1]...>;
template <class S, std::size_t D, std::size_t... I>
auto set_dim_to_one(std::index_sequence<I...>) -> Shape<(I == D ? std::size_t{1} : S::dims[I])...>;

template <class S, std::size_t D, bool Enabled>
struct removed {
  using type = S;
};
template <class S, std::size_t D>
struct removed<S, D, true> {
  using type = decltype(remove_dim<S, D>(std::make_index_sequence<S::rank - 1>{}));
};
template <class S, std::size_t D, bool Enabled>
struct kept {
  using type = S;
};
template <class S, std::size_t D>
struct kept<S, D, true> {
  using type = decltype(set_dim_to_one<S, D>(std::make_index_sequence<S::rank>{}));
};

/// The shapes of a reduction of (S, batched B) over Dim (PyTorch's numbering: the batch is 0).
template <int Dim, bool KeepDim, class S, bool B, bool AlreadyFailed>
struct reduction_shapes {
  static constexpr std::size_t full_rank = S::rank + (B ? 1 : 0);
  static constexpr bool in_range = Dim == all_dims || (Dim >= 0 && std::size_t(Dim) < full_rank);
  static constexpr bool ok = ctnn::detail::check < in_range || AlreadyFailed,
                        ERROR_reduction_dim_out_of_range < dim<std::size_t(Dim)>, shown < S, B >>> ::value;
  static constexpr bool over_all = Dim == all_dims || !in_range;
  static constexpr bool over_batch = !over_all && B && Dim == 0;
  static constexpr bool along = !over_all && !over_batch;  // along a sample dimension
  static constexpr std::size_t sd = along ? std::size_t(Dim) - (B ? 1 : 0) : 0;
  /// The result with the reduced extent kept as 1 (the same memory layout as the result).
  using keep =
      std::conditional_t<over_all, Shape<>, std::conditional_t<over_batch, S, typename kept<S, sd, along>::type>>;
  static constexpr bool keep_batched = along && B;
  using result = std::conditional_t<!along || KeepDim, keep, typename removed<S, sd, along>::type>;
};
}  // namespace detail

/// sum (Mean = false) or mean of `a` over all dimensions (Dim = all_dims) or along Dim.
template <bool Mean, int Dim, bool KeepDim, class A>
struct Reduce : Expr<Reduce<Mean, Dim, KeepDim, A>> {
  using in_shape = typename A::shape;
  using shapes = detail::reduction_shapes<Dim, KeepDim, in_shape, A::batched, A::failed>;
  using keep = typename shapes::keep;
  static constexpr bool keep_batched = shapes::keep_batched;
  using shape = typename shapes::result;
  static constexpr bool batched = keep_batched;
  static constexpr std::size_t slot_floats = A::slot_floats + keep::size;
  static constexpr std::size_t scratch_floats = A::scratch_floats;
  static constexpr bool materializes = true;
  /// A sum over everything or over dim 0 of a batched operand mixes the samples (PyTorch's X.sum()).
  static constexpr bool batch_coupled = A::batch_coupled || (A::batched && !shapes::along);
  static constexpr bool failed = A::failed || !(shapes::ok && shapes::in_range);  // ok: reported
  using site = typename A::site;
  template <class O> static constexpr bool simd = leaf_simd<O, shape>;

  A a;
  int id = -1;
  std::size_t off = 0;
  const float* val = nullptr;
  float scale = 1.0f;
  explicit Reduce(const A& operand) : a(operand) {}

  /// How many elements each result element sums over.
  static std::size_t count(std::size_t n) {
    if constexpr (shapes::over_all) return (A::batched ? n : 1) * in_shape::size;
    else if constexpr (shapes::over_batch) return n;
    else return in_shape::dims[shapes::sd];
  }

  // forward: t = sum over the reduced dims of a (one pass over a), then * 1/count for mean
  void prepare(Context& c) {
    if (id >= 0) return;
    a.prepare(c);
    off = c.allocate(keep::size);
    float* t = c.at(off);
    const std::size_t numel = (keep_batched ? c.n : 1) * keep::size;
    std::fill_n(t, numel, 0.0f);
    accumulate<in_shape, A::batched, keep, keep_batched>(a, t, c.n);
    if constexpr (Mean) {
      scale = 1.0f / static_cast<float>(count(c.n));
      for (std::size_t i = 0; i < numel; ++i) t[i] *= scale;
    }
    val = t;
    id = c.next_id++;
  }
  template <class O, bool OB> float at(std::size_t n, std::size_t j) const {
    return leaf_at<O, OB, shape, batched>(val, n, j);
  }
  template <class O, bool OB> vfloat vat(std::size_t n, std::size_t j) const {
    return leaf_vat<O, OB, shape, batched>(val, n, j);
  }

  // backward: dL/da = dL/dt broadcast over the reduced dims (* 1/count for mean)
  template <class O, bool OB, class G>
  void backward(const G& g, const BackwardContext& bc) const {
    accumulate<O, OB, shape, batched>(g, bc.grad_at(off), bc.n);
  }
  bool backprop(int k, const BackwardContext& bc) const {
    if (k != id) return a.backprop(k, bc);
    const View<keep, keep_batched> gt(bc.grad_at(off));
    if constexpr (Mean) a.template backward<in_shape, A::batched>(make_binary<mul_op>(gt, Scalar(scale)), bc);
    else a.template backward<in_shape, A::batched>(gt, bc);
    return true;
  }

  /// The value of a reduction over everything, computed now (forward only: a constant for backward).
  float value() const {
    static_assert(Dim == all_dims, "ctnn expression: item() needs a reduction over all dimensions (X.sum().item())");
    static_assert(!A::materializes,
                  "ctnn expression: item() of a reduction whose operand holds another reduction or mm");
    const std::size_t n = context().n;
    float t = 0.0f;
    accumulate<in_shape, A::batched, Shape<>, false>(a, &t, n);
    if constexpr (Mean) t /= static_cast<float>(count(n));
    return t;
  }
};

template <int Dim = all_dims, bool KeepDim = false, tensor_operand A>
auto sum(A&& a) {
  return Reduce<false, Dim, KeepDim, expr_t<A>>(as_expr(a));
}
template <int Dim = all_dims, bool KeepDim = false, tensor_operand A>
auto mean(A&& a) {
  return Reduce<true, Dim, KeepDim, expr_t<A>>(as_expr(a));
}

template <class D> auto Expr<D>::sum() const { return Reduce<false, all_dims, false, D>(static_cast<const D&>(*this)); }
template <class D> auto Expr<D>::mean() const { return Reduce<true, all_dims, false, D>(static_cast<const D&>(*this)); }

namespace detail {
template <class T> struct is_reduce : std::false_type {};
template <bool M, int Dim, bool K, class A> struct is_reduce<Reduce<M, Dim, K, A>> : std::true_type {};
}  // namespace detail

/// X.sum().item(): a 0-d expression's value as a float, for run-time decisions in forward.
template <class D>
float Expr<D>::item() const {
  const D& self = static_cast<const D&>(*this);
  static_assert(D::shape::size == 1 && !D::batched, "ctnn expression: item() needs a one-element tensor without batch");
  if constexpr (detail::is_reduce<D>::value) {
    return self.value();
  } else {
    static_assert(!D::materializes,
                  "ctnn expression: item() of an expression holding a reduction: call it on the reduction");
    return self.template at<Shape<>, false>(0, 0);
  }
}

}  // namespace ctnn::expr

// sum(v), mean<0>(v) on a bare nn::Param / Tensor member: found by argument-dependent lookup in
// ctnn (see the end of ops.hpp).
namespace ctnn {
using expr::sum, expr::mean;
}  // namespace ctnn
