// nn::CrossEntropyLoss and nn::MSELoss — torch.nn.CrossEntropyLoss() and torch.nn.MSELoss(),
// both with reduction='mean'.
//
//   CrossEntropyLoss   logits: [N, C], target: [N] class indices in [0, C)
//     loss     = 1/N sum_n (logsumexp(logits[n]) - logits[n, target[n]])
//     dlogits  = (softmax(logits) - onehot(target)) / N
//   MSELoss            input, target: [N, *S]
//     loss     = 1/numel sum_i (input_i - target_i)^2          numel = N * S::size
//     dinput   = 2 (input - target) / numel
//
// `loss(x, t)` returns the loss; `loss.backward(x, t, dx)` writes dL/dx into dx (overwriting
// it, not accumulating) and returns the same loss, in one pass. Both take batches or views.
// Bad run-time input (a class index out of range, batch sizes that differ, N = 0) throws
// std::invalid_argument (ctnn::shape_error for the sizes) before anything is written.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ctnn/core/shape.hpp"
#include "ctnn/core/tensor.hpp"
#include "ctnn/kernels/simd.hpp"

namespace ctnn::nn {

namespace detail {

/// A Batch<S>, BatchView<S> or ConstBatchView<S>.
template <class B>
concept batch_like = requires(const B& b) {
  typename B::shape_type;
  { b.data() } -> std::convertible_to<const float*>;
  { b.batch_size() } -> std::same_as<std::size_t>;
};
/// A Batch<S> or BatchView<S> (not a view of const floats): somewhere to write a gradient.
template <class B>
concept writable_batch = batch_like<std::remove_cvref_t<B>> && requires(B&& b) {
  { b.data() } -> std::same_as<float*>;
};
/// Class indices: a contiguous range of integers (std::vector<std::int64_t>, std::span<const int>...).
template <class R>
concept class_indices = std::ranges::contiguous_range<const R> && std::ranges::sized_range<const R> &&
                        std::integral<std::ranges::range_value_t<const R>>;

template <class B>
ConstBatchView<typename B::shape_type> const_view(const B& b) {
  return {b.data(), b.batch_size()};
}
template <class B>
BatchView<typename std::remove_cvref_t<B>::shape_type> mutable_view(B&& b) {
  return {b.data(), b.batch_size()};
}
template <class R>
std::span<const std::ranges::range_value_t<const R>> index_span(const R& r) {
  return {std::ranges::data(r), std::ranges::size(r)};
}

using kernels::simd_width;
using kernels::vfloat;

/// max_j x[j], j < C
template <std::size_t C>
float row_max(const float* x) {
  std::size_t j = 0;
  float m = -std::numeric_limits<float>::infinity();
  if constexpr (C >= simd_width) {
    vfloat vm = vfloat::load_unaligned(x);
    for (j = simd_width; j + simd_width <= C; j += simd_width) vm = xsimd::max(vm, vfloat::load_unaligned(x + j));
    m = kernels::hmax(vm);
  }
  for (; j < C; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

/// e[j] = exp(x[j] - m) for j < C (e may be x); returns sum_j e[j].
template <std::size_t C>
float row_exp_sum(const float* x, float m, float* e) {
  std::size_t j = 0;
  float s = 0.0f;
  if constexpr (C >= simd_width) {
    const vfloat vmax(m);
    vfloat acc(0.0f);
    for (; j + simd_width <= C; j += simd_width) {
      const vfloat v = xsimd::exp(vfloat::load_unaligned(x + j) - vmax);
      if (e) v.store_unaligned(e + j);
      acc += v;
    }
    s = kernels::hsum(acc);
  }
  for (; j < C; ++j) {
    const float v = std::exp(x[j] - m);
    if (e) e[j] = v;
    s += v;
  }
  return s;
}

/// x[i] *= a for i < n
inline void scale(float* x, float a, std::size_t n) {
  std::size_t i = 0;
  const vfloat va(a);
  for (; i + simd_width <= n; i += simd_width) (vfloat::load_unaligned(x + i) * va).store_unaligned(x + i);
  for (; i < n; ++i) x[i] *= a;
}

/// sum_i (x_i - t_i)^2, and d_i = k (x_i - t_i) when d is given (d may be x or t).
inline double squared_error(const float* x, const float* t, float* d, float k, std::size_t n) {
  std::size_t i = 0;
  double total = 0.0;
  const vfloat vk(k);
  // Blocks of 64 vectors are summed in float, blocks into a double: accurate for any n.
  while (i + simd_width <= n) {
    vfloat acc(0.0f);
    for (std::size_t b = 0; b < 64 && i + simd_width <= n; ++b, i += simd_width) {
      const vfloat diff = vfloat::load_unaligned(x + i) - vfloat::load_unaligned(t + i);
      if (d) (vk * diff).store_unaligned(d + i);
      acc = kernels::fmadd(diff, diff, acc);
    }
    total += static_cast<double>(kernels::hsum(acc));
  }
  for (; i < n; ++i) {
    const float diff = x[i] - t[i];
    if (d) d[i] = k * diff;
    total += static_cast<double>(diff) * diff;
  }
  return total;
}

}  // namespace detail

/// torch.nn.CrossEntropyLoss() on logits [N, C] and class indices [N]: the mean over the batch
/// of -log softmax(logits[n])[target[n]]. Computed as a fused, max-shifted log-softmax, so
/// logits of any finite size (1e4, 1e30) give a finite loss. No class weights, no
/// label smoothing, and no ignore_index: every target must be in [0, C).
struct CrossEntropyLoss {
  /// The mean loss.
  template <std::size_t C, std::integral T>
  float operator()(ConstBatchView<Shape<C>> logits, std::span<const T> target) const {
    return run<C, T>(logits, target, nullptr);
  }
  /// The mean loss; writes dL/dlogits = (softmax - onehot) / N into dlogits (it may be the
  /// logits' own storage: the loss is read before the gradient overwrites it).
  template <std::size_t C, std::integral T>
  float backward(ConstBatchView<Shape<C>> logits, std::span<const T> target, BatchView<Shape<C>> dlogits) const {
    if (dlogits.batch_size() != logits.batch_size())
      throw shape_error("ctnn::nn::CrossEntropyLoss::backward: dlogits holds " + std::to_string(dlogits.batch_size()) +
                        " samples for logits of " + std::to_string(logits.batch_size()));
    return run<C, T>(logits, target, dlogits.data());
  }

  /// Any batch or view of logits with any contiguous range of integer targets
  /// (loss(Y, std::vector<std::int64_t>{...})).
  template <detail::batch_like L, detail::class_indices R>
  float operator()(const L& logits, const R& target) const {
    return (*this)(detail::const_view(logits), detail::index_span(target));
  }
  template <detail::batch_like L, detail::class_indices R, detail::writable_batch D>
  float backward(const L& logits, const R& target, D&& dlogits) const {
    return backward(detail::const_view(logits), detail::index_span(target), detail::mutable_view(dlogits));
  }

 private:
  // logits: [N, C], target: [N], d: [N, C] or null
  template <std::size_t C, class T>
  static float run(ConstBatchView<Shape<C>> logits, std::span<const T> target, float* d) {
    const std::size_t n = logits.batch_size();
    check(n, C, target);
    const float* x = logits.data();
    const float inv_n = 1.0f / static_cast<float>(n);
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i, x += C) {
      const auto t = static_cast<std::size_t>(target[i]);
      const float m = detail::row_max<C>(x);
      const float x_t = x[t];
      float* e = d ? d + i * C : nullptr;
      const float sum = detail::row_exp_sum<C>(x, m, e);
      total += (static_cast<double>(m) - x_t) + std::log(static_cast<double>(sum));  // logsumexp - x_t
      if (e) {
        detail::scale(e, inv_n / sum, C);  // softmax / N
        e[t] -= inv_n;
      }
    }
    return static_cast<float>(total / static_cast<double>(n));
  }

  template <class T>
  static void check(std::size_t n, std::size_t classes, std::span<const T> target) {
    if (n == 0) throw shape_error("ctnn::nn::CrossEntropyLoss: a batch of 0 samples (the mean is undefined)");
    if (target.size() != n)
      throw shape_error("ctnn::nn::CrossEntropyLoss: " + std::to_string(target.size()) + " targets for a batch of " +
                        std::to_string(n) + " samples");
    for (std::size_t i = 0; i < n; ++i) {
      const T t = target[i];
      bool bad;
      if constexpr (std::is_signed_v<T>) bad = t < 0 || static_cast<unsigned long long>(t) >= classes;
      else bad = static_cast<unsigned long long>(t) >= classes;
      if (bad)
        throw std::invalid_argument("ctnn::nn::CrossEntropyLoss: target[" + std::to_string(i) +
                                    "] = " + std::to_string(t) + " is out of range for " + std::to_string(classes) +
                                    " classes (expected 0 <= target < " + std::to_string(classes) + ")");
    }
  }
};

/// torch.nn.MSELoss(): the mean of (input - target)^2 over all N * S::size elements.
struct MSELoss {
  template <class S>
  float operator()(ConstBatchView<S> input, ConstBatchView<S> target) const {
    check(input.batch_size(), target.batch_size(), "target");
    return static_cast<float>(detail::squared_error(input.data(), target.data(), nullptr, 0.0f, input.numel()) /
                              static_cast<double>(input.numel()));
  }
  /// The mean loss; writes dL/dinput = 2 (input - target) / numel into dinput (which may be
  /// input's or target's storage).
  template <class S>
  float backward(ConstBatchView<S> input, ConstBatchView<S> target, BatchView<S> dinput) const {
    check(input.batch_size(), target.batch_size(), "target");
    check(input.batch_size(), dinput.batch_size(), "dinput");
    const std::size_t numel = input.numel();
    const float k = 2.0f / static_cast<float>(numel);
    return static_cast<float>(detail::squared_error(input.data(), target.data(), dinput.data(), k, numel) /
                              static_cast<double>(numel));
  }

  /// Batches or views of the same sample shape.
  template <detail::batch_like I, detail::batch_like T>
    requires std::same_as<typename I::shape_type, typename T::shape_type>
  float operator()(const I& input, const T& target) const {
    return (*this)(detail::const_view(input), detail::const_view(target));
  }
  template <detail::batch_like I, detail::batch_like T, detail::writable_batch D>
    requires std::same_as<typename I::shape_type, typename T::shape_type> &&
             std::same_as<typename I::shape_type, typename std::remove_cvref_t<D>::shape_type>
  float backward(const I& input, const T& target, D&& dinput) const {
    return backward(detail::const_view(input), detail::const_view(target), detail::mutable_view(dinput));
  }

 private:
  static void check(std::size_t n, std::size_t other, const char* what) {
    if (n == 0) throw shape_error("ctnn::nn::MSELoss: a batch of 0 samples (the mean is undefined)");
    if (other != n)
      throw shape_error(std::string("ctnn::nn::MSELoss: ") + what + " has " + std::to_string(other) +
                        " samples, input has " + std::to_string(n));
  }
};

}  // namespace ctnn::nn
