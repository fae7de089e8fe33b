// Finite-difference gradient checks for any Model: L = sum(c * net(X)) with a fixed random c,
// analytic gradients from net.backward() against central differences in every parameter
// element and every input element.
#ifndef CTNN_TEST_GRADCHECK_HPP
#define CTNN_TEST_GRADCHECK_HPP

#include <doctest/doctest.h>

#include <cmath>
#include <ctnn/ctnn.hpp>
#include <string>
#include <vector>

namespace ctnn_test {

struct GradCheckOptions {
  float step = 1e-2f;       // central-difference step (float32 forward: 1e-2 balances the two errors)
  double rtol = 1e-2;       // |fd - analytic| <= atol + rtol * |fd|
  double atol = 2e-3;
  std::size_t max_elements = 400;  // per tensor: check a strided subset of big tensors
};

/// Checks dL/dparam and dL/dX of `net` at `X`. Returns the number of mismatching elements.
template <class ModelT, class In = typename ModelT::input_shape_type>
std::size_t gradcheck(ModelT& net, ctnn::Batch<In>& X, const GradCheckOptions& opt = {}, std::uint64_t seed = 1) {
  using Out = typename ModelT::output_shape_type;
  ctnn::Generator gen(seed);
  ctnn::Batch<Out> c(ModelT::batched_output ? X.batch_size() : 1);  // dL/dy: one row for a whole-batch value
  ctnn::randn_(c, gen);
  auto loss = [&] {
    auto Y = net.forward(X);
    double s = 0;
    for (std::size_t i = 0; i < Y.numel(); ++i) s += double(c.data()[i]) * Y.data()[i];
    return s;
  };
  net.zero_grad();
  net.set_input_requires_grad(true);
  loss();
  auto dy = net.output_grad();
  std::copy_n(c.data(), c.numel(), dy.data());
  net.backward();
  std::vector<float> input_grad(net.input_grad().begin(), net.input_grad().end());

  std::size_t bad = 0, checked = 0, kinks = 0;
  const double l0 = loss();
  auto check_tensor = [&](const std::string& name, float* values, const float* analytic, std::size_t numel) {
    const std::size_t stride = std::max<std::size_t>(1, numel / opt.max_elements);
    for (std::size_t i = 0; i < numel; i += stride) {
      const float old = values[i];
      values[i] = old + opt.step;
      const double lp = loss();
      values[i] = old - opt.step;
      const double lm = loss();
      values[i] = old;
      const double fd = (lp - lm) / (2.0 * opt.step);
      auto close = [&](double d, double tol) {
        return std::fabs(d - analytic[i]) <= tol * (opt.atol + opt.rtol * std::fabs(d));
      };
      ++checked;
      if (close(fd, 1)) continue;
      // A ReLU or max-pool kink within one step: the central difference averages two slopes;
      // backward must then give one of the one-sided ones. Counted, and bounded below.
      const double right = (lp - l0) / opt.step, left = (l0 - lm) / opt.step;
      if (close(right, 3) || close(left, 3)) {
        ++kinks;
        continue;
      }
      {
        if (bad++ < 5) MESSAGE(name << "[" << i << "]: finite difference " << fd << ", backward " << analytic[i]);
      }
    }
  };
  net.for_each_parameter([&](const std::string& name, auto& p) {
    check_tensor(name, p.data(), p.grad.data(), p.numel());
  });
  check_tensor("input", X.data(), input_grad.data(), X.numel());
  CHECK_MESSAGE(kinks * 10 <= checked, kinks << " of " << checked << " elements sit on a kink: too few checked");
  return bad;
}

}  // namespace ctnn_test

#endif
