// Elementwise expression nodes and their derivative rules, side by side.
//
//   a + b, a - b, a * b, a / b, -a      broadcasting, checked at compile time; numbers on either side
//   relu, sigmoid, tanh, exp, log, abs  torch.relu / sigmoid / tanh / exp / log / abs
//   (an operand may be an expression or an nn::Param / Tensor member on its own: exp(log_s))
//
// Each op is a struct with f (a float and W lanes) and grad(g, operands...): the expression for
// dL/d(operand) given g = dL/d(result), built from the same nodes (reverse mode at compile time).
#pragma once

#include <cmath>

#include "ctnn/expr/core.hpp"

namespace ctnn::expr {

template <class Op, class A>
struct Unary;
template <class Op, class A, class B>
struct Binary;
struct mul_op;

template <class Op, class A>
auto make_unary(const A& a) {
  return Unary<Op, A>(a);
}
template <class Op, class A, class B>
auto make_binary(const A& a, const B& b) {
  return Binary<Op, A, B>(a, b);
}

// ---- Unary ------------------------------------------------------------------------------------------

/// y = Op(a), elementwise; dL/da = Op::grad(g, a).
template <class Op, class A>
struct Unary : Expr<Unary<Op, A>> {
  using shape = typename A::shape;
  static constexpr bool batched = A::batched;
  static constexpr std::size_t slot_floats = A::slot_floats, scratch_floats = A::scratch_floats;
  static constexpr bool materializes = A::materializes, batch_coupled = A::batch_coupled, failed = A::failed;
  using site = typename A::site;
  template <class O> static constexpr bool simd = A::template simd<O>;
  A a;
  explicit Unary(const A& operand) : a(operand) {}

  template <class O, bool OB> float at(std::size_t n, std::size_t j) const { return Op::f(a.template at<O, OB>(n, j)); }
  template <class O, bool OB> vfloat vat(std::size_t n, std::size_t j) const {
    return Op::f(a.template vat<O, OB>(n, j));
  }
  void prepare(Context& c) { a.prepare(c); }
  template <class O, bool OB, class G>
  void backward(const G& g, const BackwardContext& bc) const {
    if constexpr (!std::is_void_v<typename Op::derivative>)
      a.template backward<O, OB>(make_binary<mul_op>(g, make_unary<typename Op::derivative>(a)), bc);
    else a.template backward<O, OB>(Op::grad(g, a), bc);
  }
  bool backprop(int id, const BackwardContext& bc) const { return a.backprop(id, bc); }
};

// Ops whose derivative is a function of the operand: grad = g * derivative(a).
// Ops without one (derivative = void) write grad(g, a).

/// -x
struct neg_op {
  using derivative = void;
  static float f(float x) { return -x; }
  static vfloat f(vfloat x) { return -x; }
  template <class G, class A> static auto grad(const G& g, const A&) { return make_unary<neg_op>(g); }
};
/// x > 0 ? 1 : 0 (relu's derivative; PyTorch's convention at 0)
struct step_op {
  using derivative = void;
  static float f(float x) { return x > 0.0f ? 1.0f : 0.0f; }
  static vfloat f(vfloat x) { return xsimd::select(x > vfloat(0.0f), vfloat(1.0f), vfloat(0.0f)); }
};
/// torch.relu
struct relu_op {
  using derivative = step_op;
  static float f(float x) { return kernels::relu_op::forward(x); }
  static vfloat f(vfloat x) { return kernels::relu_op::forward(x); }
};
/// sigmoid(x) (1 - sigmoid(x))
struct sigmoid_grad_op {
  using derivative = void;
  static float f(float x) {
    const float s = kernels::sigmoid_op::forward(x);
    return s * (1.0f - s);
  }
  static vfloat f(vfloat x) {
    const vfloat s = kernels::sigmoid_op::forward(x);
    return s * (vfloat(1.0f) - s);
  }
};
/// torch.sigmoid
struct sigmoid_op {
  using derivative = sigmoid_grad_op;
  static float f(float x) { return kernels::sigmoid_op::forward(x); }
  static vfloat f(vfloat x) { return kernels::sigmoid_op::forward(x); }
};
/// 1 - tanh(x)^2
struct tanh_grad_op {
  using derivative = void;
  static float f(float x) {
    const float t = std::tanh(x);
    return 1.0f - t * t;
  }
  static vfloat f(vfloat x) {
    const vfloat t = xsimd::tanh(x);
    return vfloat(1.0f) - t * t;
  }
};
/// torch.tanh
struct tanh_op {
  using derivative = tanh_grad_op;
  static float f(float x) { return std::tanh(x); }
  static vfloat f(vfloat x) { return xsimd::tanh(x); }
};
/// torch.exp (its own derivative)
struct exp_op {
  using derivative = exp_op;
  static float f(float x) { return std::exp(x); }
  static vfloat f(vfloat x) { return xsimd::exp(x); }
};
/// 1 / x
struct reciprocal_op {
  using derivative = void;
  static float f(float x) { return 1.0f / x; }
  static vfloat f(vfloat x) { return vfloat(1.0f) / x; }
};
/// torch.log
struct log_op {
  using derivative = reciprocal_op;
  static float f(float x) { return std::log(x); }
  // xsimd 8.1's log does not compile at -O0 for avx512bw (a select on batch<int>): lane by lane.
  static vfloat f(vfloat x) {
    alignas(64) float v[simd_width];
    x.store_aligned(v);
    for (float& e : v) e = std::log(e);
    return vfloat::load_aligned(v);
  }
};
/// torch.sign: -1, 0, 1
struct sign_op {
  using derivative = void;
  static float f(float x) { return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f); }
  static vfloat f(vfloat x) {
    return xsimd::select(x > vfloat(0.0f), vfloat(1.0f), xsimd::select(x < vfloat(0.0f), vfloat(-1.0f), vfloat(0.0f)));
  }
};
/// torch.abs (derivative sign(x), 0 at 0, as PyTorch)
struct abs_op {
  using derivative = sign_op;
  static float f(float x) { return std::fabs(x); }
  static vfloat f(vfloat x) { return xsimd::abs(x); }
};

// ---- Binary -----------------------------------------------------------------------------------------

/// y = Op(a, b) with broadcasting; dL/da = Op::grad_a(g, a, b), dL/db = Op::grad_b(g, a, b).
template <class Op, class A, class B>
struct Binary : Expr<Binary<Op, A, B>> {
  using checked =
      detail::checked_broadcast<typename A::shape, A::batched, typename B::shape, B::batched, A::failed || B::failed>;
  using shape = typename checked::type;
  static constexpr bool batched = A::batched || B::batched;
  static constexpr std::size_t slot_floats = A::slot_floats + B::slot_floats;
  static constexpr std::size_t scratch_floats = std::max(A::scratch_floats, B::scratch_floats);
  static constexpr bool materializes = A::materializes || B::materializes;
  static constexpr bool batch_coupled = A::batch_coupled || B::batch_coupled;
  static constexpr bool failed = A::failed || B::failed || !checked::bc::ok;
  using site = detail::either_site<typename A::site, typename B::site>;
  template <class O> static constexpr bool simd = A::template simd<O> && B::template simd<O>;
  A a;
  B b;
  Binary(const A& left, const B& right) : a(left), b(right) {}

  template <class O, bool OB>
  float at(std::size_t n, std::size_t j) const {
    return Op::f(a.template at<O, OB>(n, j), b.template at<O, OB>(n, j));
  }
  template <class O, bool OB>
  vfloat vat(std::size_t n, std::size_t j) const {
    return Op::f(a.template vat<O, OB>(n, j), b.template vat<O, OB>(n, j));
  }
  void prepare(Context& c) {
    a.prepare(c);
    b.prepare(c);
  }
  template <class O, bool OB, class G>
  void backward(const G& g, const BackwardContext& bc) const {
    a.template backward<O, OB>(Op::grad_a(g, a, b), bc);
    b.template backward<O, OB>(Op::grad_b(g, a, b), bc);
  }
  bool backprop(int id, const BackwardContext& bc) const { return a.backprop(id, bc) || b.backprop(id, bc); }
};

/// a + b
struct add_op {
  static float f(float x, float y) { return x + y; }
  static vfloat f(vfloat x, vfloat y) { return x + y; }
  template <class G, class A, class B> static auto grad_a(const G& g, const A&, const B&) { return g; }
  template <class G, class A, class B> static auto grad_b(const G& g, const A&, const B&) { return g; }
};
/// a - b
struct sub_op {
  static float f(float x, float y) { return x - y; }
  static vfloat f(vfloat x, vfloat y) { return x - y; }
  template <class G, class A, class B> static auto grad_a(const G& g, const A&, const B&) { return g; }
  template <class G, class A, class B> static auto grad_b(const G& g, const A&, const B&) {
    return make_unary<neg_op>(g);
  }
};
/// a * b
struct mul_op {
  static float f(float x, float y) { return x * y; }
  static vfloat f(vfloat x, vfloat y) { return x * y; }
  template <class G, class A, class B> static auto grad_a(const G& g, const A&, const B& b) {
    return make_binary<mul_op>(g, b);
  }
  template <class G, class A, class B> static auto grad_b(const G& g, const A& a, const B&) {
    return make_binary<mul_op>(g, a);
  }
};
/// a / b:  da = g / b,  db = -g a / b^2
struct div_op {
  static float f(float x, float y) { return x / y; }
  static vfloat f(vfloat x, vfloat y) { return x / y; }
  template <class G, class A, class B> static auto grad_a(const G& g, const A&, const B& b) {
    return make_binary<div_op>(g, b);
  }
  template <class G, class A, class B>
  static auto grad_b(const G& g, const A& a, const B& b) {
    return make_unary<neg_op>(make_binary<div_op>(make_binary<mul_op>(g, a), make_binary<mul_op>(b, b)));
  }
};

// ---- The user's spelling -----------------------------------------------------------------------------

/// A tensor operand: an expression, or an nn::Param / Tensor member on its own (`exp(log_s)`,
/// PyTorch's torch.exp(self.log_s)), but not a number.
template <class T>
concept tensor_operand = operand<T> && !std::is_arithmetic_v<std::remove_cvref_t<T>>;

/// Two operands of which at least one is a tensor: `X + bias`, `v + 1.0f`, `1.0f - v`, `v * w`.
template <class A, class B>
concept binary_operands = operand<A> && operand<B> && (tensor_operand<A> || tensor_operand<B>);

template <class A, class B>
  requires binary_operands<A, B>
auto operator+(A&& a, B&& b) {
  return make_binary<add_op>(as_expr(a), as_expr(b));
}
template <class A, class B>
  requires binary_operands<A, B>
auto operator-(A&& a, B&& b) {
  return make_binary<sub_op>(as_expr(a), as_expr(b));
}
template <class A, class B>
  requires binary_operands<A, B>
auto operator*(A&& a, B&& b) {
  return make_binary<mul_op>(as_expr(a), as_expr(b));
}
template <class A, class B>
  requires binary_operands<A, B>
auto operator/(A&& a, B&& b) {
  return make_binary<div_op>(as_expr(a), as_expr(b));
}
template <tensor_operand A>
auto operator-(A&& a) {
  return make_unary<neg_op>(as_expr(a));
}

template <tensor_operand A> auto relu(A&& a) { return make_unary<relu_op>(as_expr(a)); }
template <tensor_operand A> auto sigmoid(A&& a) { return make_unary<sigmoid_op>(as_expr(a)); }
template <tensor_operand A> auto tanh(A&& a) { return make_unary<tanh_op>(as_expr(a)); }
template <tensor_operand A> auto exp(A&& a) { return make_unary<exp_op>(as_expr(a)); }
template <tensor_operand A> auto log(A&& a) { return make_unary<log_op>(as_expr(a)); }
template <tensor_operand A> auto abs(A&& a) { return make_unary<abs_op>(as_expr(a)); }

template <class D> auto Expr<D>::abs() const { return make_unary<abs_op>(static_cast<const D&>(*this)); }
template <class D> auto Expr<D>::relu() const { return make_unary<relu_op>(static_cast<const D&>(*this)); }
template <class D> auto Expr<D>::exp() const { return make_unary<exp_op>(static_cast<const D&>(*this)); }

}  // namespace ctnn::expr

// Argument-dependent lookup finds the functions above from an expression (its type is in
// ctnn::expr), but a forward's `exp(log_s)` or `v + 1.0f` on a bare member has only an
// nn::Parameter<Shape<...>> or ctnn::Tensor<Shape<...>>, whose associated namespaces are ctnn and
// ctnn::nn. Declaring the same functions in ctnn lets that lookup find them; they are constrained
// to tensor operands, so a call on numbers in ctnn's own code is never taken for an expression.
namespace ctnn {
using expr::operator+, expr::operator-, expr::operator*, expr::operator/;
using expr::relu, expr::sigmoid, expr::tanh, expr::exp, expr::log, expr::abs;
}  // namespace ctnn
