// optim::Adam — torch.optim.Adam (PyTorch 1.13's update, single-tensor form, amsgrad=False).
//
// For every parameter p with gradient g, at step t (1, 2, ...):
//   g = g + weight_decay * p                                  (L2 penalty, not AdamW's decay)
//   m = beta1 * m + (1 - beta1) * g                           (exp_avg, zero before step 1)
//   v = beta2 * v + (1 - beta2) * g^2                         (exp_avg_sq)
//   step_size = lr / (1 - beta1^t)                            (bias corrections in double)
//   denom     = sqrt(v) / sqrt(1 - beta2^t) + eps
//   p = p - step_size * m / denom
//
//   optim::Adam opt{.lr = 1e-3f, .betas = {0.9f, 0.999f}, .eps = 1e-8f, .weight_decay = 0.0f};
//   opt.step(net);
//
// exp_avg and exp_avg_sq are allocated at the first step and reused after. Invalid options
// (torch's checks) throw std::invalid_argument from step().
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ctnn/optim/state.hpp"

namespace ctnn::optim {

struct Adam {
  float lr = 1e-3f;
  std::array<float, 2> betas{0.9f, 0.999f};
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  /// exp_avg, exp_avg_sq and the step count (torch's optimizer.state); leave it out of the initializer.
  ParameterState state{};

  /// One update of every parameter of `model` from its .grad (model: a ctnn::Model, or anything
  /// with for_each_parameter(f) calling f(name, nn::Parameter<S>&)).
  template <class M>
  void step(M& model) {
    validate();
    state.check_model(model, "ctnn::optim::Adam::step");
    state.allocate(2);
    const double t = static_cast<double>(state.steps + 1);
    const double b1 = betas[0], b2 = betas[1];
    // As torch: Python floats (double) for the scalars, rounded to float where a tensor op uses them.
    const float neg_step_size = static_cast<float>(-(static_cast<double>(lr) / (1.0 - std::pow(b1, t))));
    const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(b2, t)));
    const float beta1 = betas[0], beta2 = betas[1], eps_f = eps, wd = weight_decay;
    const float one_minus_b1 = static_cast<float>(1.0 - b1), one_minus_b2 = static_cast<float>(1.0 - b2);
    // one update (one instantiation of the loop) for all parameters
    const auto update = [&](auto& p, auto g, auto* m, auto* v) {
      using V = std::remove_cvref_t<decltype(p)>;
      if (wd != 0.0f) g = g + V(wd) * p;
      *m = *m * V(beta1) + V(one_minus_b1) * g;
      *v = *v * V(beta2) + V(one_minus_b2) * g * g;
      using std::sqrt;
      const V denom = sqrt(*v) / V(bc2_sqrt) + V(eps_f);
      p = p + V(neg_step_size) * (*m / denom);
    };
    detail::for_each_parameter_part(model, [&](std::size_t i, float* p, const float* g, std::size_t b, std::size_t m) {
      detail::update_elementwise(p, g, state.buffer(i, 0) + b, state.buffer(i, 1) + b, m, update);
    });
    ++state.steps;
  }

  /// Zero every gradient of `model` (torch's optimizer.zero_grad(set_to_none=False)).
  template <class M>
  void zero_grad(M& model) const {
    model.zero_grad();
  }

  /// torch.optim.Adam's checks on its options (NaN fails them too, as in torch).
  void validate() const {
    auto fail = [](const std::string& what) { throw std::invalid_argument("ctnn::optim::Adam: " + what); };
    if (!(lr >= 0.0f)) fail("invalid learning rate: " + std::to_string(lr) + " (expected lr >= 0)");
    if (!(eps >= 0.0f)) fail("invalid epsilon value: " + std::to_string(eps) + " (expected eps >= 0)");
    for (std::size_t k = 0; k < 2; ++k)
      if (!(betas[k] >= 0.0f && betas[k] < 1.0f))
        fail("invalid beta parameter at index " + std::to_string(k) + ": " + std::to_string(betas[k]) +
             " (expected 0 <= beta < 1)");
    if (!(weight_decay >= 0.0f))
      fail("invalid weight_decay value: " + std::to_string(weight_decay) + " (expected weight_decay >= 0)");
  }
};

}  // namespace ctnn::optim
