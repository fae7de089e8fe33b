// Shared test helpers: PyTorch reference loading into models, closeness checks, allocation counting
// (steady_state_allocations and the steps the allocation tests repeat).
#ifndef CTNN_TEST_HELPERS_HPP
#define CTNN_TEST_HELPERS_HPP

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <vector>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>

#include <ctnn/core/tensor.hpp>
#include <ctnn/kernels/eltwise.hpp>

#include "reference.hpp"

namespace ctnn_test {

/// The kernels choose their forms (flat or shifted convolution, ...) by cost models in vectors;
/// the choices the tests assert are those of 16-lane (AVX-512) builds. With 8 lanes (-Disa=avx2)
/// some shapes choose differently, and such assertions read `!lanes16 || ...` (the numerical
/// checks run either way).
inline constexpr bool lanes16 = ctnn::kernels::simd_width == 16;

/// Global operator new calls so far (tests/main.cpp replaces operator new).
std::atomic<long>& allocation_counter();
inline long allocations() { return allocation_counter().load(); }

/// The allocations that `repeats` more calls of `step` make after a first call, which may
/// allocate (the workspace, the gradients' mirror, optimizer state, a loader's buffers): zero
/// when the step has reached its steady state, which is what the allocation tests check:
///   CHECK(ctnn_test::steady_state_allocations([&] { backward_step(net, X); }) == 0);
template <class Step>
long steady_state_allocations(Step&& step, int repeats = 3) {
  step();
  const long before = allocations();
  for (int i = 0; i < repeats; ++i) step();
  return allocations() - before;
}

/// A forward and backward of `net` on X with dL/dy = 0.1 everywhere, then zero_grad: a
/// training step without a loss or an optimizer.
template <class ModelT, class X>
void backward_step(ModelT& net, const X& x) {
  net.forward(x);
  auto dy = net.output_grad();
  std::fill(dy.begin(), dy.end(), 0.1f);
  net.backward();
  net.zero_grad();
}

/// One training step as a training loop runs it: zero_grad, forward, the loss's backward,
/// opt.step. Returns the loss.
template <class ModelT, class X, class Loss, class Target, class Optimizer>
float training_step(ModelT& net, const X& x, Loss& criterion, const Target& target, Optimizer& opt) {
  net.zero_grad();
  net.forward(x);
  const float loss = net.backward(criterion, target);
  opt.step(net);
  return loss;
}

/// |a - e| <= atol + rtol * |e| for every element, reporting the first mismatch.
inline void check_close(std::span<const float> actual, std::span<const float> expected, float rtol = 1e-5f,
                        float atol = 1e-6f, const std::string& what = "") {
  REQUIRE_MESSAGE(actual.size() == expected.size(), what << ": size " << actual.size() << " vs " << expected.size());
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (!(std::fabs(actual[i] - expected[i]) <= atol + rtol * std::fabs(expected[i]))) {
      if (bad++ == 0) first = i;
    }
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << actual.size() << " elements differ; first at " << first
                               << ": " << (bad ? actual[first] : 0.f) << " vs expected "
                               << (bad ? expected[first] : 0.f));
}

/// Copies every tensor of the model's state_dict from the reference file (shapes must match).
template <class ModelT>
void load_parameters(ModelT& net, const std::map<std::string, RefTensor>& ref) {
  for (auto&& [name, t] : net.state_dict()) {
    auto it = ref.find(name);
    REQUIRE_MESSAGE(it != ref.end(), "reference has no tensor " << name);
    REQUIRE_MESSAGE(it->second.shape == t.shape(), name << ": reference shape differs from " << t.shape_str());
    if (t.dtype() == ctnn::Dtype::int64)  // num_batches_tracked: the file holds it as a float
      for (std::size_t i = 0; i < t.numel(); ++i) t.int64_data()[i] = static_cast<std::int64_t>(it->second.values[i]);
    else std::copy(it->second.values.begin(), it->second.values.end(), t.data());
  }
}

/// A fresh directory under the system's temp directory, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static std::atomic<unsigned> counter{0};
    const auto stamp = static_cast<unsigned long long>(std::chrono::steady_clock::now().time_since_epoch().count());
    for (;;) {
      path = std::filesystem::temp_directory_path() /
             ("ctnn_test_" + std::to_string(stamp) + "_" + std::to_string(std::random_device{}()) + "_" +
              std::to_string(counter++));
      if (std::filesystem::create_directory(path)) break;
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
  /// Names of entries that look like leftover temporary files of an interrupted save.
  std::vector<std::string> leftovers() const {
    std::vector<std::string> r;
    for (auto& e : std::filesystem::directory_iterator(path))
      if (e.path().filename().string().find(".tmp-") != std::string::npos) r.push_back(e.path().filename().string());
    return r;
  }
};

/// tools/gen_reference.py's formula_value, bit for bit: parameter values a reference file can
/// describe by a formula instead of listing them.
inline float formula_value(std::size_t i, std::size_t salt, std::size_t fan_in) {
  const auto v = static_cast<double>(static_cast<long long>((i * 7919 + salt * 104729) % 2001) - 1000);
  return static_cast<float>(v / 1000.0 * (1.0 / std::sqrt(static_cast<double>(fan_in))));
}
/// gen_reference.py's formula_fill_: state_dict entry k gets salt k; a bias uses the fan_in of
/// the weight before it.
template <class M>
void formula_fill(M& net) {
  std::size_t k = 0, fan_in = 1;
  for (auto&& [name, t] : net.state_dict()) {
    const auto& s = t.shape();
    if (s.size() >= 2) {
      fan_in = 1;
      for (std::size_t d = 1; d < s.size(); ++d) fan_in *= s[d];
    }
    for (std::size_t i = 0; i < t.numel(); ++i) t[i] = formula_value(i, k, fan_in);
    ++k;
  }
}

}  // namespace ctnn_test

#endif
