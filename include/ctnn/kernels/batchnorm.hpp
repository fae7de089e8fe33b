// BatchNorm's kernels, per sample x: [C, Sp] (Sp = L or H*W; 1 for a [N, C] input).
//
//   channel_sums        r[c] = sum_j x[c, j]                              (the mean's row)
//   channel_sq_devs     r[c] = sum_j (x[c, j] - mean[c])^2                (the variance's row)
//   channel_grad_sums   r[c] = sum_j g[c, j],  r[C + c] = sum_j g[c, j] xhat[c, j]
//                       with xhat = (x - mean) invstd                      (backward's rows)
//   scale_shift<Op>     y = Op(x s[c] + t[c])                              (the normalization)
//   batch_stats_input_grad  dx = k[c] (M g - sum g - xhat sum(g xhat)),  k = gamma invstd / M
//   scale_input_grad    dx = g s[c]                                        (evaluation mode)
//
// Rows are sums of one sample in double (from float vector partials), which nn/batchnorm.hpp
// adds over the batch in sample order (ctnn::detail::reduce_over_batch). With Sp = 1 (BatchNorm1d
// on [N, C], ResNet's last stage at 28 x 28) a row is the sample's values themselves and the
// passes run along the channels: vectors of channels instead of one masked lane and a horizontal
// sum per channel (the same float operations on each value, so the same results).
#pragma once

#include <cstddef>

#include "ctnn/kernels/eltwise.hpp"
#include "ctnn/kernels/simd.hpp"

namespace ctnn::kernels {

namespace detail {
/// sum over j < Sp of f(load of p + j) (vectors, the tail masked), in float lanes.
template <std::size_t Sp, class F>
CTNN_INLINE float channel_reduce(F&& f) {
  vfloat acc(0.0f);
  std::size_t j = 0;
  for (; j + simd_width <= Sp; j += simd_width) acc += f(j, simd_width);
  if constexpr (Sp % simd_width != 0) acc += f(j, Sp - j);
  return hsum(acc);
}

/// f(i, c, k) for every sample i < n and every vector of channels [c, c + k) of C (k = simd_width,
/// or what is left of C): the Sp = 1 passes.
template <std::size_t C, class F>
CTNN_INLINE void along_channels(std::size_t n, F&& f) {
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t c = 0;
    for (; c + simd_width <= C; c += simd_width) f(i, c, simd_width);
    if constexpr (C % simd_width != 0) f(i, c, C - c);
  }
}
}  // namespace detail

template <std::size_t C, std::size_t Sp>
void channel_sums(const float* x, double* r) {
  if constexpr (Sp == 1) {
    for (std::size_t c = 0; c < C; ++c) r[c] = x[c];
    return;
  }
  for (std::size_t c = 0; c < C; ++c) {
    const float* xc = x + c * Sp;
    r[c] = detail::channel_reduce<Sp>([&](std::size_t j, std::size_t k) { return detail::load_n(xc + j, k); });
  }
}

template <std::size_t C, std::size_t Sp>
void channel_sq_devs(const float* x, const float* mean, double* r) {
  if constexpr (Sp == 1) {
    for (std::size_t c = 0; c < C; ++c) {
      const float d = x[c] - mean[c];
      r[c] = d * d;
    }
    return;
  }
  for (std::size_t c = 0; c < C; ++c) {
    const float* xc = x + c * Sp;
    const vfloat m(mean[c]);
    r[c] = detail::channel_reduce<Sp>([&](std::size_t j, std::size_t k) {
      const vfloat d = detail::keep_first(detail::load_n(xc + j, k) - m, k);
      return d * d;
    });
  }
}

template <std::size_t C, std::size_t Sp>
void channel_grad_sums(const float* g, const float* x, const float* mean, const float* invstd, double* r) {
  if constexpr (Sp == 1) {
    for (std::size_t c = 0; c < C; ++c) {
      const float xhat = (x[c] - mean[c]) * invstd[c];
      r[c] = g[c];
      r[C + c] = g[c] * xhat;
    }
    return;
  }
  for (std::size_t c = 0; c < C; ++c) {
    const float *gc = g + c * Sp, *xc = x + c * Sp;
    const vfloat m(mean[c]), is(invstd[c]);
    r[c] = detail::channel_reduce<Sp>([&](std::size_t j, std::size_t k) { return detail::load_n(gc + j, k); });
    r[C + c] = detail::channel_reduce<Sp>([&](std::size_t j, std::size_t k) {
      const vfloat xhat = (detail::load_n(xc + j, k) - m) * is;
      return detail::keep_first(detail::load_n(gc + j, k) * xhat, k);
    });
  }
}

/// y = Op(x s[c] + t[c]) for n samples.
template <class Op, std::size_t C, std::size_t Sp>
void scale_shift(const float* x, const float* s, const float* t, float* y, std::size_t n) {
  if constexpr (Sp == 1) {
    detail::along_channels<C>(n, [&](std::size_t i, std::size_t c, std::size_t k) {
      detail::store_n(Op::forward(fmadd(detail::load_n(x + i * C + c, k), detail::load_n(s + c, k),
                                        detail::load_n(t + c, k))),
                      y + i * C + c, k);
    });
    return;
  }
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < C; ++c) {
      const std::size_t o = (i * C + c) * Sp;
      const vfloat sv(s[c]), tv(t[c]);
      std::size_t j = 0;
      for (; j + simd_width <= Sp; j += simd_width)
        Op::forward(fmadd(vfloat::load_unaligned(x + o + j), sv, tv)).store_unaligned(y + o + j);
      if constexpr (Sp % simd_width != 0)
        detail::store_n(Op::forward(fmadd(detail::load_n(x + o + j, Sp - j), sv, tv)), y + o + j, Sp - j);
    }
}

/// Training mode's dx: k[c] (M g - sum_g[c] - xhat sum_gx[c]) with xhat = (x - mean) invstd, for n
/// samples; M: the values per channel of the whole batch.
template <std::size_t C, std::size_t Sp>
void batch_stats_input_grad(const float* g, const float* x, const float* mean, const float* invstd, const float* k,
                            const float* sum_g, const float* sum_gx, float M, float* dx, std::size_t n) {
  if constexpr (Sp == 1) {
    const vfloat Mv(M);
    detail::along_channels<C>(n, [&](std::size_t i, std::size_t c, std::size_t len) {
      const auto at = [&](const float* p) { return detail::load_n(p + c, len); };
      const vfloat gv = at(g + i * C), xv = at(x + i * C);
      detail::store_n(at(k) * (fmsub(Mv, gv, at(sum_g)) - (xv - at(mean)) * at(invstd) * at(sum_gx)), dx + i * C + c,
                      len);
    });
    return;
  }
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < C; ++c) {
      const std::size_t o = (i * C + c) * Sp;
      const vfloat m(mean[c]), is(invstd[c]), kc(k[c]), sg(sum_g[c]), sgx(sum_gx[c]), Mv(M);
      auto at = [&](vfloat gv, vfloat xv) { return kc * (fmsub(Mv, gv, sg) - (xv - m) * is * sgx); };
      std::size_t j = 0;
      for (; j + simd_width <= Sp; j += simd_width)
        at(vfloat::load_unaligned(g + o + j), vfloat::load_unaligned(x + o + j)).store_unaligned(dx + o + j);
      if constexpr (Sp % simd_width != 0)
        detail::store_n(at(detail::load_n(g + o + j, Sp - j), detail::load_n(x + o + j, Sp - j)), dx + o + j, Sp - j);
    }
}

/// Evaluation mode's dx = g s[c], for n samples.
template <std::size_t C, std::size_t Sp>
void scale_input_grad(const float* g, const float* s, float* dx, std::size_t n) {
  if constexpr (Sp == 1) {
    detail::along_channels<C>(n, [&](std::size_t i, std::size_t c, std::size_t k) {
      detail::store_n(detail::load_n(g + i * C + c, k) * detail::load_n(s + c, k), dx + i * C + c, k);
    });
    return;
  }
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < C; ++c) {
      const std::size_t o = (i * C + c) * Sp;
      const vfloat sv(s[c]);
      std::size_t j = 0;
      for (; j + simd_width <= Sp; j += simd_width)
        (vfloat::load_unaligned(g + o + j) * sv).store_unaligned(dx + o + j);
      if constexpr (Sp % simd_width != 0) detail::store_n(detail::load_n(g + o + j, Sp - j) * sv, dx + o + j, Sp - j);
    }
}

}  // namespace ctnn::kernels
