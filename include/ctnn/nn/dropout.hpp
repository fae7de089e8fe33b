// nn::Dropout<P> — torch.nn.Dropout(p) (nn::Dropout<> is p = 0.5).
//
//   training:   y = x * mask / (1 - p),  mask[i] = 0 with probability p, else 1
//   evaluation: y = x
//   x: [N, *], y: [N, *]
//
// The mask is a function of the model's seed (drawn from its generator when it is made), the
// forward's number and the element's index in the whole batch (a counter-based stream: a hash of
// the four), so the same seed gives the same masks run after run, whatever the thread count or
// the split of the batch; backward recomputes the mask instead of storing it. PyTorch's random
// stream is not reproduced. A bound Dropout called outside a Model uses seed 0 and forward 0.
// Rule: ERROR_dropout_probability_out_of_range when p is not in [0, 1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

#include "ctnn/core/slices.hpp"
#include "ctnn/nn/mode.hpp"
#include "ctnn/nn/module.hpp"

namespace ctnn::nn {

namespace detail {
/// splitmix64's finalizer: a well-mixed 64-bit hash of v.
constexpr std::uint64_t mix64(std::uint64_t v) {
  v ^= v >> 30;
  v *= 0xbf58476d1ce4e5b9ULL;
  v ^= v >> 27;
  v *= 0x94d049bb133111ebULL;
  return v ^ (v >> 31);
}
/// A hash of a layer's position, so that two Dropouts of one forward draw different masks.
template <class Path>
struct path_salt;
template <std::size_t... P>
struct path_salt<layer<P...>> {
  static constexpr std::uint64_t value = [] {
    std::uint64_t h = 0x243f6a8885a308d3ULL;
    ((h = mix64(h ^ (P + 1))), ...);
    return h;
  }();
};
}  // namespace detail

template <class S, float P, class Path>
struct BoundDropout : ParameterFree<BoundDropout<S, P, Path>>, TrainingMode {
  using input_shape = S;
  using output_shape = S;
  static constexpr float p = P;
  static constexpr std::size_t activation_floats = S::size, scratch_floats = 0;
  static constexpr std::ptrdiff_t output_offset = 0;

  // forward: y = x * mask / (1 - p) in training mode, a copy of x in evaluation mode.
  const float* forward(const float* x, std::size_t n, float* act, float*) const {
    if (!training() || P == 0.0f) {
      std::copy_n(x, n * S::size, act);
      return act;
    }
    scale_by_mask(x, act, n);
    return act;
  }
  // backward: dx = dy * mask / (1 - p) (the same mask, recomputed), dy in evaluation mode.
  void backward(const float*, float* dx, std::size_t n, const float*, float* gact, float*) const {
    if (!dx) return;
    if (!training() || P == 0.0f) std::copy_n(gact, n * S::size, dx);
    else scale_by_mask(gact, dx, n);
  }

  static std::string type_name() { return "Dropout"; }
  void print(std::ostream& os, int) const { os << "Dropout(p=" << detail::float_repr(P) << ", inplace=False)"; }

 private:
  /// out = in * mask / (1 - p) for this call's n samples.
  static void scale_by_mask(const float* in, float* out, std::size_t n) {
    const ctnn::detail::BatchSlices* s = ctnn::detail::current_slices();
    const std::uint64_t seed = s ? s->seed : 0, step = s ? s->step : 0, first = s ? s->first : 0;
    const std::uint64_t key = detail::mix64(detail::mix64(seed ^ detail::path_salt<Path>::value) + step);
    // zero when u < p, u uniform in [0, 1) with 24 bits: compare the integers
    const auto threshold = static_cast<std::uint64_t>(static_cast<double>(P) * 16777216.0);
    const float scale = 1.0f / (1.0f - P);
    for (std::size_t i = 0; i < n * S::size; ++i) {
      const std::uint64_t e = first * S::size + i;
      const std::uint64_t u = detail::mix64(key + e * 0x9e3779b97f4a7c15ULL) >> 40;
      out[i] = u < threshold ? 0.0f : in[i] * scale;
    }
  }
};

namespace detail {
template <class In, class Path, float P>
struct bind_dropout {
  using checked = rules<rule<!(P >= 0.0f && P < 1.0f), ERROR_dropout_probability_out_of_range<Path, probability<P>>>>;
  using type = std::conditional_t<checked::ok, BoundDropout<In, P, Path>, PoisonedLayer>;
};
template <class S, float P, class Path>
struct is_dropout_impl<BoundDropout<S, P, Path>> : std::true_type {};
}  // namespace detail

/// torch.nn.Dropout(p)
template <float P = 0.5f>
struct Dropout {
  template <class In, class Path>
  using bind = typename detail::bind_dropout<In, Path, P>::type;
};

}  // namespace ctnn::nn
