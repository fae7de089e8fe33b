// optim::ParameterState — what an optimizer remembers between steps (torch's optimizer.state).
//
// On the first step it records the size of every parameter of the model, in state_dict order;
// later steps check that they see the same parameters (and throw std::invalid_argument if
// not). Per-element buffers (SGD's momentum_buffer, Adam's exp_avg and exp_avg_sq) are
// allocated once, zeroed, and reused: a later step allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ctnn/core/parameter.hpp"
#include "ctnn/core/threads.hpp"
#include "ctnn/kernels/simd.hpp"

namespace ctnn::optim {

namespace detail {
/// f(name, parameter) over `model`'s parameters without building names where the model offers
/// that walk (a Model or a bound layer: nn::Unnamed), else its for_each_parameter(f).
template <class M, class F>
void for_each_parameter_unnamed(M& model, F&& f) {
  if constexpr (requires { model.for_each_parameter(nn::unnamed, f); }) model.for_each_parameter(nn::unnamed, f);
  else model.for_each_parameter(f);
}

/// f(i, values, grad, first, count) for every parameter i of `model` (values and grad from element
/// `first` on, count of them): the whole of each parameter, or, for a ctnn::Model whose passes
/// over its parameters run on T threads (elementwise_threads()), part t of each on thread t.
template <class M, class F>
void for_each_parameter_part(M& model, F&& f) {
  std::size_t T = 1;
  if constexpr (requires { model.elementwise_threads(); }) T = model.elementwise_threads();
  const auto part = [&](std::size_t t) {
    std::size_t i = 0;
    for_each_parameter_unnamed(model, [&](const std::string&, auto& p) {
      const auto [b, m] = ctnn::detail::elementwise_part(p.numel(), T, t);
      f(i++, p.data() + b, p.grad.data() + b, b, m);
    });
  };
  if (T == 1) part(0);
  else ctnn::detail::parallel_for(T, part);
}
}  // namespace detail

class ParameterState {
 public:
  /// Steps taken so far (torch's state['step']).
  std::int64_t steps = 0;

  /// First call: remember the model's parameter sizes. Later calls: throw std::invalid_argument
  /// (naming `who`) when the model's parameters differ from the first call's.
  template <class M>
  void check_model(M& model, const char* who) {
    Check check;
    detail::for_each_parameter_unnamed(model, [&](const std::string&, auto& p) { see(check, p.numel()); });
    finish(check, who);
  }

  /// Make sure `count` zeroed buffers per parameter element exist; true if this call made them.
  bool allocate(std::size_t count) {
    if (buffers_ >= count) return false;
    data_.assign(count * total_, 0.0f);
    buffers_ = count;
    return true;
  }
  /// Buffer k of parameter i (sizes()[i] floats, in the parameter's layout).
  float* buffer(std::size_t i, std::size_t k) { return data_.data() + k * total_ + offsets_[i]; }
  /// Element counts of the parameters seen at the first step, in state_dict order.
  const std::vector<std::size_t>& sizes() const { return sizes_; }
  /// Forget everything (the next step starts afresh, like a new torch optimizer).
  void reset() { *this = ParameterState{}; }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  /// check_model's walk over the parameters (the per-model template only counts; the rest is
  /// compiled once).
  struct Check {
    std::size_t count = 0, bad = npos, bad_size = 0;
  };
  void see(Check& c, std::size_t numel) {
    const std::size_t i = c.count++;
    if (!bound_) {
      offsets_.push_back(total_);
      sizes_.push_back(numel);
      total_ += numel;
    } else if (c.bad == npos && (i >= sizes_.size() || sizes_[i] != numel)) {
      c.bad = i;
      c.bad_size = numel;
    }
  }
  void finish(const Check& c, const char* who) {
    if (!bound_) {
      bound_ = true;
      return;
    }
    if (c.bad == npos && c.count == sizes_.size()) return;
    std::string msg = std::string(who) + ": the model's parameters differ from the first step's: ";
    if (c.bad == npos || c.bad >= sizes_.size())
      msg += "it has " + std::to_string(c.count) + " parameters, the first step had " + std::to_string(sizes_.size());
    else
      msg += "parameter " + std::to_string(c.bad) + " has " + std::to_string(c.bad_size) + " elements, it had " +
             std::to_string(sizes_[c.bad]);
    throw std::invalid_argument(msg + " (use one optimizer per model)");
  }
  bool bound_ = false;
  std::vector<std::size_t> sizes_, offsets_;
  std::size_t total_ = 0, buffers_ = 0;
  std::vector<float> data_;
};

namespace detail {

using kernels::simd_width;
using kernels::vfloat;

/// Calls update(V& p, V g, V* s0, V* s1) on every element of a parameter, a SIMD batch at a
/// time (V = kernels::vfloat) and then the tail (V = float); s0/s1 are the optional
/// state buffers (null when absent), written back after the update.
template <class F>
void update_elementwise(float* p, const float* g, float* s0, float* s1, std::size_t n, F update) {
  const std::size_t vector_end = n - n % simd_width;
  std::size_t i = 0;
  for (; i < vector_end; i += simd_width) {
    auto pv = vfloat::load_unaligned(p + i);
    auto a = s0 ? vfloat::load_unaligned(s0 + i) : vfloat(0.0f);
    auto b = s1 ? vfloat::load_unaligned(s1 + i) : vfloat(0.0f);
    update(pv, vfloat::load_unaligned(g + i), s0 ? &a : nullptr, s1 ? &b : nullptr);
    pv.store_unaligned(p + i);
    if (s0) a.store_unaligned(s0 + i);
    if (s1) b.store_unaligned(s1 + i);
  }
  for (; i < n; ++i) {
    float a = s0 ? s0[i] : 0.0f, b = s1 ? s1[i] : 0.0f;
    update(p[i], g[i], s0 ? &a : nullptr, s1 ? &b : nullptr);
    if (s0) s0[i] = a;
    if (s1) s1[i] = b;
  }
}

}  // namespace detail
}  // namespace ctnn::optim
