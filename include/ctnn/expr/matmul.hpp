// mm / matmul: a batched expression times a 2-D parameter or constant — torch.mm(X, W) /
// torch.matmul(X, W) with X: [N, *, K] and W: [K, M] -> [N, *, M].
//
// X is evaluated into the workspace (one pass), then the product; backward:
//   dX = dY W^T        dW += X^T dY   (W a parameter; a constant gets no gradient)
// Forward-only limits: W must be a parameter or tensor member (not a computed expression),
// X must carry the batch dimension.
#pragma once

#include "ctnn/expr/ops.hpp"

namespace ctnn::expr {

namespace detail {
template <class A, class W>
struct mm_shapes {
  static constexpr std::size_t K = A::shape::rank == 0 ? 0 : A::shape::dims[A::shape::rank - 1];
  static constexpr bool ok_shapes = A::batched && !W::batched && W::shape::rank == 2 && A::shape::rank >= 1 &&
                                    W::shape::dims[0] == K;
  static constexpr bool reported =
      ctnn::detail::check<ok_shapes, ERROR_matmul_shape_mismatch<shown<typename A::shape, A::batched>,
                                                                 shown<typename W::shape, W::batched>>>::value;
  static constexpr std::size_t M = W::shape::rank == 2 ? W::shape::dims[1] : 1;
  using result = std::conditional_t<ok_shapes, replace_last_t<typename A::shape, M>, typename A::shape>;
};
template <class W> struct is_param_leaf : std::false_type {};
template <class S> struct is_param_leaf<ParamLeaf<S>> : std::true_type {};
}  // namespace detail

/// y = a W, a batched [*, K], W a [K, M] leaf (ParamLeaf or View).
template <class A, class W>
struct MatMul : Expr<MatMul<A, W>> {
  using shapes = detail::mm_shapes<A, W>;
  static constexpr std::size_t K = shapes::K, M = shapes::M;
  using a_shape = typename A::shape;
  using shape = typename shapes::result;
  static constexpr bool batched = true;
  static constexpr std::size_t slot_floats = A::slot_floats + a_shape::size + shape::size;
  static constexpr std::size_t scratch_floats = A::scratch_floats;
  static constexpr bool materializes = true;
  template <class O> static constexpr bool simd = leaf_simd<O, shape>;

  A a;
  W w;
  int id = -1;
  std::size_t a_off = 0, y_off = 0;
  const float* val = nullptr;
  const float* xval = nullptr;  // a's values, evaluated by prepare
  MatMul(const A& left, const W& right) : a(left), w(right) {}

  // forward: x = a (one pass into the workspace), y[r, :] = sum_k x[r, k] W[k, :]
  void prepare(Context& c) {
    if (id >= 0) return;
    a.prepare(c);
    a_off = c.allocate(a_shape::size);
    y_off = c.allocate(shape::size);
    float* x = c.at(a_off);
    float* y = c.at(y_off);
    assign<a_shape, true>(a, x, c.n);
    const std::size_t rows = c.n * a_shape::size / (K ? K : 1);
    for (std::size_t r = 0; r < rows; ++r) {
      float* yr = y + r * M;
      std::fill_n(yr, M, 0.0f);
      for (std::size_t k = 0; k < K; ++k) {
        const float xv = x[r * K + k];
        const float* wk = w.p + k * M;
        for (std::size_t m = 0; m < M; ++m) yr[m] += xv * wk[m];
      }
    }
    xval = x;
    val = y;
    id = c.next_id++;
  }
  template <class O, bool OB> float at(std::size_t n, std::size_t j) const { return leaf_at<O, OB, shape, true>(val, n, j); }
  template <class O, bool OB> vfloat vat(std::size_t n, std::size_t j) const { return leaf_vat<O, OB, shape, true>(val, n, j); }

  template <class O, bool OB, class G>
  void backward(const G& g, const BackwardContext& bc) const {
    accumulate<O, OB, shape, true>(g, bc.grad_at(y_off), bc.n);
  }
  // backward: dx = dy W^T, dW += x^T dy, then dx flows into a
  bool backprop(int k, const BackwardContext& bc) const {
    if (k != id) return a.backprop(k, bc);
    const float* dy = bc.grad_at(y_off);
    float* dx = bc.grad_at(a_off);
    const float* x = xval;
    const std::size_t rows = bc.n * a_shape::size / (K ? K : 1);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t kk = 0; kk < K; ++kk) {
        const float* wk = w.p + kk * M;
        float s = 0.0f;
        for (std::size_t m = 0; m < M; ++m) s += dy[r * M + m] * wk[m];
        dx[r * K + kk] = s;
      }
    if constexpr (detail::is_param_leaf<W>::value) {
      float* dw = w.param->grad.data();
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t kk = 0; kk < K; ++kk) {
          const float xv = x[r * K + kk];
          float* dwk = dw + kk * M;
          for (std::size_t m = 0; m < M; ++m) dwk[m] += xv * dy[r * M + m];
        }
    }
    a.template backward<a_shape, true>(View<a_shape, true>(dx), bc);
    return true;
  }
};

/// torch.mm(X, W)
template <operand A, operand W>
auto mm(A&& a, W&& w) {
  return MatMul<expr_t<A>, expr_t<W>>(as_expr(a), as_expr(w));
}
/// torch.matmul(X, W) for X [N, *, K] and a 2-D W: the same as mm.
template <operand A, operand W>
auto matmul(A&& a, W&& w) {
  return mm(std::forward<A>(a), std::forward<W>(w));
}

}  // namespace ctnn::expr
