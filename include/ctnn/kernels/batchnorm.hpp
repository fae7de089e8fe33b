// BatchNorm's kernels, on n samples x: [C, Sp] (Sp = L or H*W; 1 for a [N, C] input).
//
//   channel_sums        r[c] = sum_j x[c, j]                              (the mean's row)
//   channel_sq_devs     r[c] = sum_j (x[c, j] - mean[c])^2                (the variance's row)
//   channel_grad_sums<Op>  g = Op'(y) dy (a fused activation's gradient, written over dy), then
//                       r[c] = sum_j g[c, j],  r[C + c] = sum_j g[c, j] xhat[c, j]
//                       with xhat = (x - mean) invstd                      (backward's rows)
//   scale_shift<Op>     y = Op(x s[c] + t[c])                              (the normalization)
//   batch_stats_input_grad  dx = k[c] (M g - sum g - xhat sum(g xhat)),  k = gamma invstd / M
//   scale_input_grad    dx = g s[c]                                        (evaluation mode)
//
// The layout is a run-time ChannelLayout: the passes are memory-bound loops along a channel's
// values, so a constant C and Sp buy nothing but one instantiation per shape (ResNet-18 has nine
// BatchNorm shapes); these are compiled once (scale_shift and channel_grad_sums once per fused
// activation).
//
// Rows are sums of one sample in double (from float vector partials), which nn/batchnorm.hpp
// adds over the batch in sample order (ctnn::detail::reduce_over_batch). With Sp = 1 (BatchNorm1d
// on [N, C], ResNet's last stage at 28 x 28) a row is the sample's values themselves and the
// passes run along the channels: vectors of channels instead of one masked lane and a horizontal
// sum per channel (the same float operations on each value, so the same results).
#pragma once

#include <cstddef>
#include <type_traits>

#include "ctnn/kernels/eltwise.hpp"
#include "ctnn/kernels/simd.hpp"

namespace ctnn::kernels {

/// One sample of a BatchNorm's input: C channels of Sp values each.
struct ChannelLayout {
  std::size_t C, Sp;
  std::size_t size() const { return C * Sp; }
};

namespace detail {
/// sum over j < Sp of f(j, k) (k: the valid lanes of the vector at j), in float lanes.
template <class F>
CTNN_INLINE float channel_reduce(std::size_t Sp, F&& f) {
  vfloat acc(0.0f);
  std::size_t j = 0;
  for (; j + simd_width <= Sp; j += simd_width) acc += f(j, simd_width);
  if (j < Sp) acc += f(j, Sp - j);
  return hsum(acc);
}

/// f(o, k) for every vector of a row of Sp values at offset o = ((i C + c) Sp + j) of n samples
/// (k = simd_width, or what is left of the row), with c given to start(c) first: the Sp > 1 passes.
template <class Start, class F>
CTNN_INLINE void along_rows(ChannelLayout L, std::size_t n, Start&& start, F&& f) {
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < L.C; ++c) {
      start(c);
      const std::size_t o = (i * L.C + c) * L.Sp;
      std::size_t j = 0;
      for (; j + simd_width <= L.Sp; j += simd_width) f(o + j, simd_width);
      if (j < L.Sp) f(o + j, L.Sp - j);
    }
}

/// f(i, c, k) for every sample i < n and every vector of channels [c, c + k) of C (k = simd_width,
/// or what is left of C): the Sp = 1 passes.
template <class F>
CTNN_INLINE void along_channels(std::size_t C, std::size_t n, F&& f) {
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t c = 0;
    for (; c + simd_width <= C; c += simd_width) f(i, c, simd_width);
    if (c < C) f(i, c, C - c);
  }
}
}  // namespace detail

inline void channel_sums(ChannelLayout L, const float* x, double* r) {
  if (L.Sp == 1) {
    for (std::size_t c = 0; c < L.C; ++c) r[c] = x[c];
    return;
  }
  for (std::size_t c = 0; c < L.C; ++c) {
    const float* xc = x + c * L.Sp;
    r[c] = detail::channel_reduce(L.Sp, [&](std::size_t j, std::size_t k) { return detail::load_n(xc + j, k); });
  }
}

inline void channel_sq_devs(ChannelLayout L, const float* x, const float* mean, double* r) {
  if (L.Sp == 1) {
    for (std::size_t c = 0; c < L.C; ++c) {
      const float d = x[c] - mean[c];
      r[c] = d * d;
    }
    return;
  }
  for (std::size_t c = 0; c < L.C; ++c) {
    const float* xc = x + c * L.Sp;
    const vfloat m(mean[c]);
    r[c] = detail::channel_reduce(L.Sp, [&](std::size_t j, std::size_t k) {
      const vfloat d = detail::keep_first(detail::load_n(xc + j, k) - m, k);
      return d * d;
    });
  }
}

/// backward's row of one sample: g = Op'(y) dy, written over dy (Op: the activation fused into
/// the forward, y its output; nothing is written for the identity), and its sums.
template <class Op>
void channel_grad_sums(ChannelLayout L, const float* y, float* g, const float* x, const float* mean,
                       const float* invstd, double* r) {
  constexpr bool fused = !std::is_same_v<Op, identity_op>;
  const std::size_t C = L.C;
  if (L.Sp == 1) {
    for (std::size_t c = 0; c < C; ++c) {
      if constexpr (fused) g[c] = Op::backward(y[c], g[c]);
      const float xhat = (x[c] - mean[c]) * invstd[c];
      r[c] = g[c];
      r[C + c] = g[c] * xhat;
    }
    return;
  }
  for (std::size_t c = 0; c < C; ++c) {
    const std::size_t o = c * L.Sp;
    const vfloat m(mean[c]), is(invstd[c]);
    vfloat sum_g(0.0f), sum_gx(0.0f);
    // always inline (also at the tail's call), so that the accumulators stay in registers
    const auto add = [&](std::size_t j, std::size_t k) __attribute__((always_inline)) {
      vfloat gv = detail::load_n(g + o + j, k);
      if constexpr (fused) {
        gv = detail::keep_first(Op::backward(detail::load_n(y + o + j, k), gv), k);
        detail::store_n(gv, g + o + j, k);
      }
      const vfloat xhat = (detail::load_n(x + o + j, k) - m) * is;
      sum_g += gv;
      sum_gx += detail::keep_first(gv * xhat, k);
    };
    std::size_t j = 0;
    for (; j + simd_width <= L.Sp; j += simd_width) add(j, simd_width);
    if (j < L.Sp) add(j, L.Sp - j);
    r[c] = hsum(sum_g);
    r[C + c] = hsum(sum_gx);
  }
}

/// y = Op(x s[c] + t[c]) for n samples.
template <class Op>
void scale_shift(ChannelLayout L, const float* x, const float* s, const float* t, float* y, std::size_t n) {
  if (L.Sp == 1) {
    detail::along_channels(L.C, n, [&](std::size_t i, std::size_t c, std::size_t k) {
      const std::size_t o = i * L.C + c;
      detail::store_n(Op::forward(fmadd(detail::load_n(x + o, k), detail::load_n(s + c, k), detail::load_n(t + c, k))),
                      y + o, k);
    });
    return;
  }
  vfloat sv, tv;
  detail::along_rows(
      L, n, [&](std::size_t c) { sv = vfloat(s[c]), tv = vfloat(t[c]); },
      [&](std::size_t o, std::size_t k) {
        detail::store_n(Op::forward(fmadd(detail::load_n(x + o, k), sv, tv)), y + o, k);
      });
}

/// Training mode's dx: k[c] (M g - sum_g[c] - xhat sum_gx[c]) with xhat = (x - mean) invstd, for n
/// samples; M: the values per channel of the whole batch.
inline void batch_stats_input_grad(ChannelLayout L, const float* g, const float* x, const float* mean,
                                   const float* invstd, const float* k, const float* sum_g, const float* sum_gx,
                                   float M, float* dx, std::size_t n) {
  const vfloat Mv(M);
  if (L.Sp == 1) {
    detail::along_channels(L.C, n, [&](std::size_t i, std::size_t c, std::size_t len) {
      const auto at = [&](const float* p) { return detail::load_n(p + c, len); };
      const vfloat gv = at(g + i * L.C), xv = at(x + i * L.C);
      detail::store_n(at(k) * (fmsub(Mv, gv, at(sum_g)) - (xv - at(mean)) * at(invstd) * at(sum_gx)), dx + i * L.C + c,
                      len);
    });
    return;
  }
  vfloat m, is, kc, sg, sgx;
  detail::along_rows(
      L, n,
      [&](std::size_t c) {
        m = vfloat(mean[c]), is = vfloat(invstd[c]), kc = vfloat(k[c]), sg = vfloat(sum_g[c]), sgx = vfloat(sum_gx[c]);
      },
      [&](std::size_t o, std::size_t len) {
        const vfloat gv = detail::load_n(g + o, len), xv = detail::load_n(x + o, len);
        detail::store_n(kc * (fmsub(Mv, gv, sg) - (xv - m) * is * sgx), dx + o, len);
      });
}

/// Evaluation mode's dx = g s[c], for n samples.
inline void scale_input_grad(ChannelLayout L, const float* g, const float* s, float* dx, std::size_t n) {
  if (L.Sp == 1) {
    detail::along_channels(L.C, n, [&](std::size_t i, std::size_t c, std::size_t k) {
      detail::store_n(detail::load_n(g + i * L.C + c, k) * detail::load_n(s + c, k), dx + i * L.C + c, k);
    });
    return;
  }
  vfloat sv;
  detail::along_rows(
      L, n, [&](std::size_t c) { sv = vfloat(s[c]); },
      [&](std::size_t o, std::size_t k) { detail::store_n(detail::load_n(g + o, k) * sv, dx + o, k); });
}

}  // namespace ctnn::kernels
