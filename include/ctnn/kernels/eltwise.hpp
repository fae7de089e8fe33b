// Elementwise operations: the activations, each as one op usable three ways —
// as its own pass over a buffer, as the epilogue of a GEMM/conv kernel (fusion),
// and (backward) as the derivative expressed through the forward output y.
#pragma once

#include <cstddef>
#include "ctnn/kernels/simd.hpp"

namespace ctnn::kernels {

using vfloat = xsimd::batch<float>;
inline constexpr std::size_t simd_width = vfloat::size;

/// n rounded up to a multiple of `to` (buffer and panel sizes in whole vectors or cache lines).
inline constexpr std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

/// y = x
struct identity_op {
  static vfloat forward(vfloat x) { return x; }
  static float forward(float x) { return x; }
  /// dL/dx given y and dL/dy
  static vfloat backward(vfloat /*y*/, vfloat dy) { return dy; }
  static float backward(float /*y*/, float dy) { return dy; }
};

/// y = max(x, 0)
struct relu_op {
  static vfloat forward(vfloat x) { return xsimd::max(x, vfloat(0.0f)); }
  static float forward(float x) { return x > 0.0f ? x : 0.0f; }
  static vfloat backward(vfloat y, vfloat dy) { return xsimd::select(y > vfloat(0.0f), dy, vfloat(0.0f)); }
  static float backward(float y, float dy) { return y > 0.0f ? dy : 0.0f; }
};

/// y = 1 / (1 + exp(-x))
struct sigmoid_op {
  static vfloat forward(vfloat x) { return vfloat(1.0f) / (vfloat(1.0f) + xsimd::exp(-x)); }
  static float forward(float x) { return 1.0f / (1.0f + std::exp(-x)); }
  static vfloat backward(vfloat y, vfloat dy) { return dy * y * (vfloat(1.0f) - y); }
  static float backward(float y, float dy) { return dy * y * (1.0f - y); }
};

/// y = tanh(x)
struct tanh_op {
  static vfloat forward(vfloat x) { return xsimd::tanh(x); }
  static float forward(float x) { return std::tanh(x); }
  static vfloat backward(vfloat y, vfloat dy) { return dy * (vfloat(1.0f) - y * y); }
  static float backward(float y, float dy) { return dy * (1.0f - y * y); }
};

/// y[i] = Op(x[i]) for i < n; x and y may be the same buffer.
template <class Op>
void eltwise_forward(const float* x, float* y, std::size_t n) {
  std::size_t i = 0;
  for (; i + simd_width <= n; i += simd_width) Op::forward(vfloat::load_unaligned(x + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] = Op::forward(x[i]);
}

/// dx[i] = Op'(y[i]) * dy[i]; dx and dy may be the same buffer.
template <class Op>
void eltwise_backward(const float* y, const float* dy, float* dx, std::size_t n) {
  std::size_t i = 0;
  for (; i + simd_width <= n; i += simd_width)
    Op::backward(vfloat::load_unaligned(y + i), vfloat::load_unaligned(dy + i)).store_unaligned(dx + i);
  for (; i < n; ++i) dx[i] = Op::backward(y[i], dy[i]);
}

}  // namespace ctnn::kernels
