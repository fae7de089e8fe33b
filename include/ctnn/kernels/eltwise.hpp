// Elementwise operations: the activations, each as one op usable three ways —
// as its own pass over a buffer, as the epilogue of a GEMM/conv kernel (fusion),
// and (backward) as the derivative expressed through the forward output y.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <type_traits>
#include <utility>
#include "ctnn/kernels/simd.hpp"

namespace ctnn::kernels {

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

/// exp(S x) for float32 vectors, S = +1 (exp_approx) or -1 (sigmoid's e^-x: the sign folded into
/// the range reduction), within 1 ulp of std::exp where the result is a normal float (S x in
/// [-87.3, 88.7]; x is clamped to that range, so it never returns inf or a denormal; NaN stays
/// NaN). S x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for an exact product), e^r by a
/// degree-6 polynomial (a minimax fit of relative error 1.8e-8, tools/fit_exp_poly.py; Horner,
/// one FMA a degree), then times 2^n: one vscalefps with AVX-512, else the exponent bits built in
/// an integer vector (2^n as 2^(n/2) 2^(n - n/2), so the field never overflows). About 10
/// FMA-port instructions with AVX-512; xsimd::exp's special-case selects cost as much again.
template <int S = 1>
inline vfloat exp_signed(vfloat x) {
  static_assert(S == 1 || S == -1);
  constexpr float hi = S > 0 ? 88.72283f : 87.33654f, lo = S > 0 ? -87.33654f : -88.72283f;
  // clamp; a NaN passes through (x86 min/max return their second operand when one is NaN)
  x = xsimd::min(vfloat(hi), xsimd::max(vfloat(lo), x));
  const vfloat n = xsimd::nearbyint(x * vfloat(S * 1.44269504088896341f));
  // r = S x - n ln2, ln2 = 0.693359375 - 2.12194440e-4 (the first part exact in n)
  vfloat r = S > 0 ? fnmadd(n, vfloat(0.693359375f), x) : fnmsub(n, vfloat(0.693359375f), x);
  r = fmadd(n, vfloat(2.12194440e-4f), r);
  vfloat p(1.3846602523699403e-3f);
  p = fmadd(p, r, vfloat(8.374931290745735e-3f));
  p = fmadd(p, r, vfloat(4.166799038648605e-2f));
  p = fmadd(p, r, vfloat(1.666642129421234e-1f));
  p = fmadd(p, r, vfloat(4.999999403953552e-1f));
  p = fmadd(p, r, vfloat(1.0f));
  p = fmadd(p, r, vfloat(1.0f));
#if defined(__AVX512F__)
  if constexpr (simd_width == 16) return _mm512_scalef_ps(p, n);  // p * 2^n, n in [-126, 128]
#endif
  using ibatch = xsimd::batch<std::int32_t>;
  const ibatch ni = xsimd::nearbyint_as_int(n);
  const ibatch half = ni >> 1;
  const vfloat s1 = xsimd::bitwise_cast<vfloat>((half + ibatch(127)) << 23);
  const vfloat s2 = xsimd::bitwise_cast<vfloat>((ni - half + ibatch(127)) << 23);
  return p * s1 * s2;
}
inline vfloat exp_approx(vfloat x) { return exp_signed<1>(x); }

/// 1 / d for d >= 1 (finite): the hardware's approximate reciprocal (14 bits on AVX-512, 12 on
/// AVX) and one Newton step (28 / 24 bits): a few cycles instead of a division's 10-16.
inline vfloat reciprocal_ge1(vfloat d) {
  const vfloat r = xsimd::reciprocal(d);
  return fmadd(r, fnmadd(d, r, vfloat(1.0f)), r);  // r + r (1 - d r)
}

/// y = 1 / (1 + exp(-x))
struct sigmoid_op {
  static vfloat forward(vfloat x) { return reciprocal_ge1(vfloat(1.0f) + exp_signed<-1>(x)); }
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

namespace detail {
/// The last n % simd_width elements through one vector (so every element sees the vector code,
/// the same in a tail as anywhere else): f(loaded vectors...) -> vfloat, from and to small buffers.
template <class F, class... Src>
inline void eltwise_tail(float* out, std::size_t count, F&& f, const Src*... src) {
  alignas(64) float in[sizeof...(Src)][simd_width] = {};
  std::size_t a = 0;
  ((std::copy_n(src, count, in[a++])), ...);
  alignas(64) float res[simd_width];
  a = 0;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    f(vfloat::load_aligned(in[I])...).store_aligned(res);
  }(std::index_sequence_for<Src...>{});
  std::copy_n(res, count, out);
}
}  // namespace detail

/// y[i] = Op(x[i]) for i < n; x and y may be the same buffer.
template <class Op>
void eltwise_forward(const float* x, float* y, std::size_t n) {
  const std::size_t whole = n - n % simd_width;
  for (std::size_t i = 0; i < whole; i += simd_width) Op::forward(vfloat::load_unaligned(x + i)).store_unaligned(y + i);
  if (whole < n) detail::eltwise_tail(y + whole, n - whole, [](vfloat v) { return Op::forward(v); }, x + whole);
}

/// dx[i] = Op'(y[i]) * dy[i]; dx and dy may be the same buffer.
template <class Op>
void eltwise_backward(const float* y, const float* dy, float* dx, std::size_t n) {
  const std::size_t whole = n - n % simd_width;
  for (std::size_t i = 0; i < whole; i += simd_width)
    Op::backward(vfloat::load_unaligned(y + i), vfloat::load_unaligned(dy + i)).store_unaligned(dx + i);
  if (whole < n)
    detail::eltwise_tail(
        dx + whole, n - whole, [](vfloat a, vfloat b) { return Op::backward(a, b); }, y + whole, dy + whole);
}

}  // namespace ctnn::kernels
