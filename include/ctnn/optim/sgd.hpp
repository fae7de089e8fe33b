// optim::SGD — torch.optim.SGD (PyTorch 1.13's update, single-tensor form).
//
// For every parameter p with gradient g, at step t (1, 2, ...):
//   d = g + weight_decay * p                                  (if weight_decay != 0)
//   if momentum != 0:
//     buf = d                                  at the first step (no dampening)
//     buf = momentum * buf + (1 - dampening) * d               later
//     d   = nesterov ? d + momentum * buf : buf
//   p = p - lr * d
//
//   optim::SGD opt{.lr = 0.1f, .momentum = 0.9f};   // fields in torch's keyword order
//   opt.zero_grad(net); /* fill the gradients */ opt.step(net);
//
// The momentum buffers are allocated at the first step that uses them and reused after.
// Invalid options (torch's checks) throw std::invalid_argument from step().
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ctnn/optim/state.hpp"

namespace ctnn::optim {

struct SGD {
  float lr = 1e-3f;  // torch 1.13 has no default (lr is required); 1e-3 is torch >= 2.2's
  float momentum = 0.0f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
  /// Momentum buffers and step count (torch's optimizer.state); leave it out of the initializer.
  ParameterState state{};

  /// One update of every parameter of `model` from its .grad (model: a ctnn::Model, or anything
  /// with for_each_parameter(f) calling f(name, nn::Parameter<S>&)).
  template <class M>
  void step(M& model) {
    validate();
    state.check_model(model, "ctnn::optim::SGD::step");
    const bool use_momentum = momentum != 0.0f;
    const bool first = use_momentum && state.allocate(1);  // torch: buf = clone(d_p) when missing
    const float mom = momentum, keep = 1.0f - dampening, wd = weight_decay, neg_lr = -lr;
    const bool nest = nesterov;
    // one update (one instantiation of the loop) for all parameters
    const auto update = [&](auto& p, auto g, auto* b, auto*) {
      using V = std::remove_cvref_t<decltype(p)>;
      V d = g;
      if (wd != 0.0f) d = d + V(wd) * p;
      if (b) {
        *b = first ? d : *b * V(mom) + V(keep) * d;
        d = nest ? d + V(mom) * *b : *b;
      }
      p = p + V(neg_lr) * d;
    };
    detail::for_each_parameter_part(model, [&](std::size_t i, float* p, const float* g, std::size_t b, std::size_t m) {
      float* buf = use_momentum ? state.buffer(i, 0) + b : nullptr;
      detail::update_elementwise(p, g, buf, nullptr, m, update);
    });
    ++state.steps;
  }

  /// Zero every gradient of `model` (torch's optimizer.zero_grad(set_to_none=False)).
  template <class M>
  void zero_grad(M& model) const {
    model.zero_grad();
  }

  /// torch.optim.SGD's checks on its options.
  void validate() const {
    auto fail = [](const std::string& what) { throw std::invalid_argument("ctnn::optim::SGD: " + what); };
    if (lr < 0.0f) fail("invalid learning rate: " + std::to_string(lr) + " (expected lr >= 0)");
    if (momentum < 0.0f) fail("invalid momentum value: " + std::to_string(momentum) + " (expected momentum >= 0)");
    if (weight_decay < 0.0f)
      fail("invalid weight_decay value: " + std::to_string(weight_decay) + " (expected weight_decay >= 0)");
    if (nesterov && (momentum <= 0.0f || dampening != 0.0f))
      fail("Nesterov momentum requires a momentum and zero dampening (momentum = " + std::to_string(momentum) +
           ", dampening = " + std::to_string(dampening) + ")");
  }
};

}  // namespace ctnn::optim
