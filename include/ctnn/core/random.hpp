// Seeded random numbers, like torch's default CPU generator.
//
// Generator is a Mersenne Twister (torch's CPU generator is one too) with its own
// uniform and normal transforms, so a seed gives the same numbers with every compiler
// and standard library. The streams are not torch's: tests compare statistics, not values.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numbers>
#include <random>

#include "ctnn/core/tensor.hpp"

namespace ctnn {

class Generator {
 public:
  /// torch's default seed, so an unseeded program is still reproducible.
  static constexpr std::uint64_t default_seed = 67280421310721ULL;

  explicit Generator(std::uint64_t seed = default_seed) { manual_seed(seed); }
  void manual_seed(std::uint64_t seed) {
    engine_.seed(static_cast<std::mt19937::result_type>(seed ^ (seed >> 32)));
    cached_normal_ = false;
  }

  /// Uniform in [0, 1) with 24 random bits, as torch draws floats.
  float uniform() { return static_cast<float>(engine_() >> 8) * 0x1.0p-24f; }
  /// Uniform in [from, to).
  float uniform(float from, float to) { return from + (to - from) * uniform(); }
  /// Standard normal (Box-Muller in double precision; the second value is kept for the next call).
  float normal() {
    if (cached_normal_) {
      cached_normal_ = false;
      return static_cast<float>(next_normal_);
    }
    double u1 = 0;
    while (u1 <= 0) u1 = (static_cast<double>(engine_() >> 5) * 67108864.0 + (engine_() >> 6)) * 0x1.0p-53;
    const double u2 = (static_cast<double>(engine_() >> 5) * 67108864.0 + (engine_() >> 6)) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)), theta = 2.0 * std::numbers::pi * u2;
    next_normal_ = r * std::sin(theta);
    cached_normal_ = true;
    return static_cast<float>(r * std::cos(theta));
  }
  float normal(float mean, float std) { return mean + std * normal(); }
  /// A uniformly random integer in [0, n), n >= 1 (rejection sampling on 64 random bits, so the
  /// result is the same with every standard library, unlike std::uniform_int_distribution).
  std::uint64_t randint(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);  // a multiple of n
    for (;;) {
      const std::uint64_t r = (std::uint64_t{engine_()} << 32) | engine_();
      if (r < limit) return r % n;
    }
  }

 private:
  std::mt19937 engine_;
  bool cached_normal_ = false;
  double next_normal_ = 0;
};

/// The generator used when none is passed (torch.default_generator). Not thread-safe.
inline Generator& default_generator() {
  static Generator g;
  return g;
}
/// torch.manual_seed(seed): reseed the default generator.
inline void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

/// Anything with contiguous floats: Tensor, Batch, their views, TensorRef.
template <class T>
concept FloatRange = requires(T& t) {
  { t.data() } -> std::convertible_to<float*>;
  { t.numel() } -> std::convertible_to<std::size_t>;
};

/// torch.Tensor.uniform_(from, to)
template <FloatRange T>
T&& uniform_(T&& t, float from = 0.0f, float to = 1.0f, Generator& gen = default_generator()) {
  float* p = t.data();
  for (std::size_t i = 0, n = t.numel(); i < n; ++i) p[i] = gen.uniform(from, to);
  return std::forward<T>(t);
}
/// torch.rand: U[0, 1) in place.
template <FloatRange T>
T&& rand_(T&& t, Generator& gen = default_generator()) {
  return ctnn::uniform_(std::forward<T>(t), 0.0f, 1.0f, gen);
}
/// torch.randn: N(0, 1) in place.
template <FloatRange T>
T&& randn_(T&& t, Generator& gen = default_generator()) {
  float* p = t.data();
  for (std::size_t i = 0, n = t.numel(); i < n; ++i) p[i] = gen.normal();
  return std::forward<T>(t);
}
/// Tensor.fill_(value)
template <FloatRange T>
T&& fill_(T&& t, float value) {
  std::fill_n(t.data(), t.numel(), value);
  return std::forward<T>(t);
}

/// torch.zeros(S...) / torch.ones(S...) / torch.rand / torch.randn for one sample...
template <ShapeType S> Tensor<S> zeros() { return Tensor<S>(); }
template <ShapeType S> Tensor<S> ones() {
  Tensor<S> t;
  fill_(t, 1.0f);
  return t;
}
template <ShapeType S> Tensor<S> rand(Generator& gen = default_generator()) {
  Tensor<S> t;
  rand_(t, gen);
  return t;
}
template <ShapeType S> Tensor<S> randn(Generator& gen = default_generator()) {
  Tensor<S> t;
  randn_(t, gen);
  return t;
}
/// ...and for a batch of n: torch.zeros(n, *S) etc.
template <ShapeType S> Batch<S> zeros(std::size_t n) { return Batch<S>(n); }
template <ShapeType S> Batch<S> ones(std::size_t n) {
  Batch<S> b(n);
  fill_(b, 1.0f);
  return b;
}
template <ShapeType S> Batch<S> rand(std::size_t n, Generator& gen = default_generator()) {
  Batch<S> b(n);
  rand_(b, gen);
  return b;
}
template <ShapeType S> Batch<S> randn(std::size_t n, Generator& gen = default_generator()) {
  Batch<S> b(n);
  randn_(b, gen);
  return b;
}

}  // namespace ctnn
