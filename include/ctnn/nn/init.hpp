// nn::init — torch.nn.init, with PyTorch's fan and gain conventions.
//
// Every function fills a tensor in place (Tensor, Parameter, a view, or a TensorRef from
// state_dict) and takes an optional Generator (default: ctnn::default_generator()).
//
//   fan_in  = size(1) * receptive field,  fan_out = size(0) * receptive field,
//   receptive field = product of dims 2.. (kh * kw for a conv weight); rank < 2 has no fans.
#pragma once

#include <cmath>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ctnn/core/random.hpp"

namespace ctnn::nn::init {

/// The nonlinearity names of torch.nn.init.calculate_gain.
enum class Nonlinearity { linear, conv1d, conv2d, conv3d, sigmoid, tanh, relu, leaky_relu, selu };
enum class FanMode { fan_in, fan_out };

/// torch.nn.init.calculate_gain(nonlinearity, param); `param` is leaky_relu's negative slope.
inline float calculate_gain(Nonlinearity nl, float param = 0.01f) {
  switch (nl) {
    case Nonlinearity::tanh: return 5.0f / 3.0f;
    case Nonlinearity::relu: return std::sqrt(2.0f);
    case Nonlinearity::leaky_relu: return std::sqrt(2.0f / (1.0f + param * param));
    case Nonlinearity::selu: return 3.0f / 4.0f;
    default: return 1.0f;  // linear, conv*, sigmoid
  }
}

struct Fans {
  std::size_t fan_in, fan_out;
};

namespace detail {

template <class T>
std::vector<std::size_t> shape_of(const T& t) {
  if constexpr (requires { t.shape(); }) {
    return t.shape();  // TensorRef
  } else {
    using S = typename std::remove_cvref_t<T>::shape_type;
    return {S::dims.begin(), S::dims.end()};
  }
}

/// Tensors whose rank is a type get a compile error for rank < 2; TensorRef an exception.
template <class T>
constexpr void require_fans() {
  if constexpr (requires { std::remove_cvref_t<T>::shape_type::rank; })
    static_assert(std::remove_cvref_t<T>::shape_type::rank >= 2,
                  "ctnn::nn::init: fan in and fan out can not be computed for a tensor with fewer than 2 dimensions");
}

}  // namespace detail

/// torch.nn.init._calculate_fan_in_and_fan_out
inline Fans calculate_fans(std::span<const std::size_t> shape) {
  if (shape.size() < 2)
    throw std::invalid_argument("ctnn::nn::init: fan in and fan out can not be computed for a tensor of rank " +
                                std::to_string(shape.size()) + " (need at least 2 dimensions)");
  std::size_t receptive = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) receptive *= shape[i];
  return {shape[1] * receptive, shape[0] * receptive};
}
template <FloatRange T>
Fans calculate_fans(const T& t) {
  detail::require_fans<T>();
  const auto s = detail::shape_of(t);
  return calculate_fans(std::span<const std::size_t>(s));
}

/// U(a, b)
template <FloatRange T>
T&& uniform_(T&& t, float a = 0.0f, float b = 1.0f, Generator& gen = default_generator()) {
  return ctnn::uniform_(std::forward<T>(t), a, b, gen);
}
/// N(mean, std^2)
template <FloatRange T>
T&& normal_(T&& t, float mean = 0.0f, float std = 1.0f, Generator& gen = default_generator()) {
  float* p = t.data();
  for (std::size_t i = 0, n = t.numel(); i < n; ++i) p[i] = gen.normal(mean, std);
  return std::forward<T>(t);
}
template <FloatRange T>
T&& constant_(T&& t, float value) {
  return ctnn::fill_(std::forward<T>(t), value);
}
template <FloatRange T>
T&& zeros_(T&& t) {
  return ctnn::fill_(std::forward<T>(t), 0.0f);
}
template <FloatRange T>
T&& ones_(T&& t) {
  return ctnn::fill_(std::forward<T>(t), 1.0f);
}

/// U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))
template <FloatRange T>
T&& xavier_uniform_(T&& t, float gain = 1.0f, Generator& gen = default_generator()) {
  const Fans f = calculate_fans(t);
  const float a = gain * std::sqrt(6.0f / static_cast<float>(f.fan_in + f.fan_out));
  return init::uniform_(std::forward<T>(t), -a, a, gen);
}
/// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))
template <FloatRange T>
T&& xavier_normal_(T&& t, float gain = 1.0f, Generator& gen = default_generator()) {
  const Fans f = calculate_fans(t);
  const float std = gain * std::sqrt(2.0f / static_cast<float>(f.fan_in + f.fan_out));
  return init::normal_(std::forward<T>(t), 0.0f, std, gen);
}

namespace detail {
template <class T>
float kaiming_std(const T& t, float a, FanMode mode, Nonlinearity nl) {
  const Fans f = calculate_fans(t);
  const std::size_t fan = mode == FanMode::fan_in ? f.fan_in : f.fan_out;
  if (fan == 0) throw std::invalid_argument("ctnn::nn::init: kaiming initialization of a tensor with a zero fan");
  return calculate_gain(nl, a) / std::sqrt(static_cast<float>(fan));
}
}  // namespace detail

/// U(-bound, bound) with bound = gain * sqrt(3 / fan); defaults as torch (a=0, fan_in, leaky_relu).
template <FloatRange T>
T&& kaiming_uniform_(T&& t, float a = 0.0f, FanMode mode = FanMode::fan_in,
                     Nonlinearity nonlinearity = Nonlinearity::leaky_relu, Generator& gen = default_generator()) {
  const float bound = std::sqrt(3.0f) * detail::kaiming_std(t, a, mode, nonlinearity);
  return init::uniform_(std::forward<T>(t), -bound, bound, gen);
}
/// N(0, std^2) with std = gain / sqrt(fan)
template <FloatRange T>
T&& kaiming_normal_(T&& t, float a = 0.0f, FanMode mode = FanMode::fan_in,
                    Nonlinearity nonlinearity = Nonlinearity::leaky_relu, Generator& gen = default_generator()) {
  const float std = detail::kaiming_std(t, a, mode, nonlinearity);
  return init::normal_(std::forward<T>(t), 0.0f, std, gen);
}

/// PyTorch's default for Linear and Conv: weight kaiming_uniform_(a = sqrt(5)), which is
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
template <FloatRange W, FloatRange B>
void default_reset_(W& weight, B* bias, Generator& gen = default_generator()) {
  init::kaiming_uniform_(weight, std::sqrt(5.0f), FanMode::fan_in, Nonlinearity::leaky_relu, gen);
  if (bias) {
    const std::size_t fan_in = calculate_fans(weight).fan_in;
    const float bound = fan_in > 0 ? 1.0f / std::sqrt(static_cast<float>(fan_in)) : 0.0f;
    init::uniform_(*bias, -bound, bound, gen);
  }
}

}  // namespace ctnn::nn::init
