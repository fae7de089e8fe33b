// Training end to end: D2L's LeNet trained a few SGD steps matches PyTorch's parameters, and a
// training step (forward, loss, backward, optimizer) allocates nothing after the first.
#include <doctest/doctest.h>

#include <cmath>
#include <ctnn/ctnn.hpp>
#include <optional>
#include <vector>

#include "helpers.hpp"
#include "models.hpp"

namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape;

using ctnn_test::LeNet;

TEST_CASE("LeNet trained 3 SGD steps from the same weights matches PyTorch's losses and parameters") {
  const auto ref = ctnn_test::load_reference(ctnn_test::reference_path("lenet_sgd_steps.txt"));
  Model<LeNet, Shape<1, 28, 28>> net;
  ctnn_test::formula_fill(net);
  Batch<Shape<1, 28, 28>> X(8, ref.at("input").values);
  std::vector<std::int64_t> y;
  for (float v : ref.at("labels").values) y.push_back(static_cast<std::int64_t>(v));

  nn::CrossEntropyLoss criterion;
  ctnn::optim::SGD sgd{.lr = 0.9f};
  std::vector<float> losses;
  for (int step = 0; step < 3; ++step) {
    net.zero_grad();
    net.forward(X);
    losses.push_back(net.backward(criterion, y));
    sgd.step(net);
  }
  ctnn_test::check_close(losses, ref.at("losses").values, 1e-5f, 1e-6f, "losses");

  const auto sd = net.state_dict();
  for (const char* name : {"0.weight", "0.bias", "3.bias", "7.bias", "9.bias", "11.weight", "11.bias"}) {
    const auto& t = sd[name];
    ctnn_test::check_close(t.to_vector(), ref.at(std::string("trained.") + name).values, 1e-4f, 1e-6f, name);
  }
  std::vector<float> sums;
  for (auto&& [name, t] : sd) {
    double s = 0;
    for (float v : t) s += double(v) * v;
    sums.push_back(float(s));
  }
  ctnn_test::check_close(sums, ref.at("sum_of_squares").values, 1e-5f, 0.0f, "sum of squares per tensor");
}

TEST_CASE("a LeNet training step allocates nothing after the first") {
  Model<LeNet, Shape<1, 28, 28>> net;
  auto X = ctnn::rand<Shape<1, 28, 28>>(16);
  std::vector<std::int64_t> y(16);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int64_t>(i % 10);
  nn::CrossEntropyLoss criterion;
  ctnn::optim::SGD sgd{.lr = 0.1f, .momentum = 0.9f};
  std::optional<float> first;
  float last = 0;
  auto step = [&] {
    last = ctnn_test::training_step(net, X, criterion, y, sgd);
    if (!first) first = last;
  };
  CHECK(ctnn_test::steady_state_allocations(step, 5) == 0);
  CHECK(std::isfinite(last));
  CHECK(last < *first);  // the same batch six times: the loss goes down
}
