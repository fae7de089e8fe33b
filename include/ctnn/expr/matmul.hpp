// mm / matmul: an expression times a 2-D parameter or constant — torch.mm(X, W) /
// torch.matmul(X, W) with X: [N, *, K] and W: [K, M] -> [N, *, M]. X may also be without the
// batch dimension (a parameter or an expression over parameters, [*, K]): mm(A, W) -> [*, M].
//
// X is evaluated into the workspace (one pass), then the product; backward:
//   dX = dY W^T        dW += X^T dY   (W a parameter; a constant gets no gradient)
// The three loops are vectorized along M, the contiguous dimension of W, Y and dY (xsimd's
// vfloat; the last partial vector of a row is scalar). Limit: W must be a parameter or tensor
// member (not a computed expression).
#pragma once

#include "ctnn/expr/ops.hpp"

namespace ctnn::expr {

namespace detail {
template <class A, class W>
struct mm_shapes {
  static constexpr std::size_t K = A::shape::rank == 0 ? 0 : A::shape::dims[A::shape::rank - 1];
  static constexpr bool ok_shapes = !W::batched && W::shape::rank == 2 && A::shape::rank >= 1 && W::shape::dims[0] == K;
  static constexpr bool reported =  // an operand that already failed reported its own error
      ctnn::detail::check < ok_shapes || A::failed,
                        ERROR_matmul_shape_mismatch < shown<typename A::shape, A::batched>, shown < typename W::shape,
                        W::batched >>> ::value;
  static constexpr std::size_t M = W::shape::rank == 2 ? W::shape::dims[1] : 1;
  using result = std::conditional_t<ok_shapes, replace_last_t<typename A::shape, M>, typename A::shape>;
};
template <class W> struct is_param_leaf : std::false_type {};
template <class S> struct is_param_leaf<ParamLeaf<S>> : std::true_type {};

/// y = x w for R rows: x [R, K], w [K, M], y [R, M]. R rows share each vector load of w.
template <std::size_t R, std::size_t K, std::size_t M>
void mm_rows(const float* x, const float* w, float* y) {
  std::size_t m = 0;
  for (; m + simd_width <= M; m += simd_width) {
    vfloat acc[R];
    for (auto& a : acc) a = vfloat(0.0f);
    for (std::size_t k = 0; k < K; ++k) {
      const vfloat wk = vfloat::load_unaligned(w + k * M + m);
      for (std::size_t i = 0; i < R; ++i) acc[i] = kernels::fmadd(vfloat(x[i * K + k]), wk, acc[i]);
    }
    for (std::size_t i = 0; i < R; ++i) acc[i].store_unaligned(y + i * M + m);
  }
  if constexpr (M % simd_width != 0)  // (a dead loop here made g++ -O2 warn at 4-lane SSE widths)
    for (; m < M; ++m)
      for (std::size_t i = 0; i < R; ++i) {
        float s = 0.0f;
        for (std::size_t k = 0; k < K; ++k) s += x[i * K + k] * w[k * M + m];
        y[i * M + m] = s;
      }
}

/// y = x w: x [rows, K], w [K, M], y [rows, M], four rows at a time.
template <std::size_t K, std::size_t M>
void mm_forward(const float* x, const float* w, float* y, std::size_t rows) {
  std::size_t r = 0;
  for (; r + 4 <= rows; r += 4) mm_rows<4, K, M>(x + r * K, w, y + r * M);
  for (; r < rows; ++r) mm_rows<1, K, M>(x + r * K, w, y + r * M);
}

/// dx = dy w^T: dx[r, k] = <dy[r, :], w[k, :]>, a dot product along M.
template <std::size_t K, std::size_t M>
void mm_backward_input(const float* dy, const float* w, float* dx, std::size_t rows) {
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t k = 0; k < K; ++k) {
      const float* a = dy + r * M;
      const float* b = w + k * M;
      std::size_t m = 0;
      float s = 0.0f;
      if constexpr (M >= simd_width) {
        vfloat acc(0.0f);
        for (; m + simd_width <= M; m += simd_width)
          acc = kernels::fmadd(vfloat::load_unaligned(a + m), vfloat::load_unaligned(b + m), acc);
        s = kernels::hsum(acc);
      }
      for (; m < M; ++m) s += a[m] * b[m];
      dx[r * K + k] = s;
    }
}

/// dw += x^T dy: dw[k, :] += x[r, k] dy[r, :] for every row r (an axpy along M).
template <std::size_t K, std::size_t M>
void mm_backward_weight(const float* x, const float* dy, float* dw, std::size_t rows) {
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t k = 0; k < K; ++k) {
      const float xv = x[r * K + k];
      const float* d = dy + r * M;
      float* g = dw + k * M;
      std::size_t m = 0;
      for (; m + simd_width <= M; m += simd_width)
        kernels::fmadd(vfloat(xv), vfloat::load_unaligned(d + m), vfloat::load_unaligned(g + m)).store_unaligned(g + m);
      for (; m < M; ++m) g[m] += xv * d[m];
    }
}
}  // namespace detail

/// y = a W, a [N?, *, K] (batched or not), W a [K, M] leaf (ParamLeaf or View).
template <class A, class W>
struct MatMul : Expr<MatMul<A, W>> {
  using shapes = detail::mm_shapes<A, W>;
  static constexpr std::size_t K = shapes::K, M = shapes::M;
  using a_shape = typename A::shape;
  using shape = typename shapes::result;
  static constexpr bool batched = A::batched;
  static constexpr std::size_t slot_floats = A::slot_floats + a_shape::size + shape::size;
  static constexpr std::size_t scratch_floats = A::scratch_floats;
  static constexpr bool materializes = true, batch_coupled = A::batch_coupled;
  static constexpr bool failed = A::failed || !(shapes::reported && shapes::ok_shapes);
  using site = typename A::site;
  template <class O> static constexpr bool simd = leaf_simd<O, shape>;

  A a;
  W w;
  int id = -1;
  std::size_t a_off = 0, y_off = 0;
  const float* val = nullptr;
  const float* xval = nullptr;  // a's values, evaluated by prepare
  MatMul(const A& left, const W& right) : a(left), w(right) {}

  /// Rows of the product: every leading index of a, batch included (one sample's worth when a has
  /// no batch dimension; its slots are per-sample reservations, so they hold it for any n >= 1).
  static std::size_t rows(std::size_t n) { return (batched ? n : 1) * a_shape::size / (K ? K : 1); }

  // forward: x = a (one pass into the workspace), y[r, :] = sum_k x[r, k] W[k, :]
  void prepare(Context& c) {
    if (id >= 0) return;
    a.prepare(c);
    a_off = c.allocate(a_shape::size);
    y_off = c.allocate(shape::size);
    float* x = c.at(a_off);
    float* y = c.at(y_off);
    assign<a_shape, batched>(a, x, c.n);
    if constexpr (shapes::ok_shapes) detail::mm_forward<K, M>(x, w.p, y, rows(c.n));
    xval = x;
    val = y;
    id = c.next_id++;
  }
  template <class O, bool OB> float at(std::size_t n, std::size_t j) const {
    return leaf_at<O, OB, shape, batched>(val, n, j);
  }
  template <class O, bool OB> vfloat vat(std::size_t n, std::size_t j) const {
    return leaf_vat<O, OB, shape, batched>(val, n, j);
  }

  template <class O, bool OB, class G>
  void backward(const G& g, const BackwardContext& bc) const {
    accumulate<O, OB, shape, batched>(g, bc.grad_at(y_off), bc.n);
  }
  // backward: dx = dy W^T, dW += x^T dy, then dx flows into a
  bool backprop(int k, const BackwardContext& bc) const {
    if (k != id) return a.backprop(k, bc);
    if constexpr (shapes::ok_shapes) {
      const float* dy = bc.grad_at(y_off);
      float* dx = bc.grad_at(a_off);
      detail::mm_backward_input<K, M>(dy, w.p, dx, rows(bc.n));
      if constexpr (detail::is_param_leaf<W>::value)
        detail::mm_backward_weight<K, M>(xval, dy, bc.mine(w.param)->grad.data(), rows(bc.n));
      a.template backward<a_shape, batched>(View<a_shape, batched>(dx), bc);
    }
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

// mm(A, W) with both operands bare nn::Param / Tensor members: found by argument-dependent lookup
// in ctnn (see the end of ops.hpp).
namespace ctnn {
using expr::mm, expr::matmul;
}  // namespace ctnn
