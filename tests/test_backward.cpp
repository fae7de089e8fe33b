// Backward passes: finite-difference checks of every layer and of fused stages, gradient
// accumulation and zero_grad, allocation-free training steps.
#include <doctest/doctest.h>

#include <ctnn/ctnn.hpp>

#include "gradcheck.hpp"
#include "helpers.hpp"

namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape;
using ctnn_test::gradcheck;

TEST_CASE("Linear + ReLU/Sigmoid/Tanh (fused) backward matches finite differences") {
  Model<nn::Sequential<nn::Linear<7, 19>, nn::Sigmoid, nn::Linear<19, 33>, nn::Tanh, nn::LazyLinear<5>, nn::ReLU>,
        Shape<7>>
      net(1);
  auto X = ctnn::randn<Shape<7>>(6);
  CHECK(gradcheck(net, X) == 0);
}

TEST_CASE("Linear without bias, standalone activations, Flatten and Identity backward match finite differences") {
  using Net = nn::Sequential<nn::Flatten, nn::Linear<12, 9, false>, nn::Identity, nn::Sigmoid, nn::Flatten, nn::Tanh,
                             nn::Linear<9, 4>>;
  Model<Net, Shape<3, 4>> net(2);
  static_assert(ctnn::nn::bind_t<Net, Shape<3, 4>>::fused == std::array<bool, 7>{});  // nothing fusable
  auto X = ctnn::randn<Shape<3, 4>>(5);
  CHECK(gradcheck(net, X) == 0);
}

TEST_CASE("Linear on a rank-3 sample backward matches finite differences") {
  Model<nn::Sequential<nn::Linear<5, 3>, nn::Tanh, nn::Flatten, nn::LazyLinear<2>>, Shape<4, 5>> net(3);
  auto X = ctnn::randn<Shape<4, 5>>(3);
  CHECK(gradcheck(net, X) == 0);
}

TEST_CASE("nested Sequential backward matches finite differences") {
  using Net = nn::Sequential<nn::Sequential<nn::Linear<6, 8>, nn::Tanh>, nn::Sequential<nn::Flatten>,
                             nn::Sequential<nn::LazyLinear<8>, nn::Sigmoid, nn::Sequential<nn::LazyLinear<3>>>>;
  Model<Net, Shape<6>> net(4);
  auto X = ctnn::randn<Shape<6>>(4);
  CHECK(gradcheck(net, X) == 0);
}

TEST_CASE("a single layer (no Sequential) trains too") {
  Model<nn::Linear<5, 3>, Shape<5>> net(5);
  auto X = ctnn::randn<Shape<5>>(2);
  CHECK(gradcheck(net, X) == 0);
}

TEST_CASE("gradients accumulate across backward calls until zero_grad, as in PyTorch") {
  Model<nn::Sequential<nn::Linear<4, 3>, nn::ReLU, nn::Linear<3, 2>>, Shape<4>> net(6);
  auto X = ctnn::randn<Shape<4>>(3);
  auto step = [&] {
    net.forward(X);
    auto dy = net.output_grad();
    std::fill(dy.begin(), dy.end(), 1.0f);
    net.backward();
  };
  step();
  const auto once = net.get<0>().weight.grad.to_vector();
  const auto bias_once = net.get<2>().bias.grad.to_vector();
  CHECK(bias_once == std::vector<float>{3.0f, 3.0f});  // dL/db = sum over the batch of 1
  step();
  const auto twice = net.get<0>().weight.grad.to_vector();
  for (std::size_t i = 0; i < once.size(); ++i) CHECK(twice[i] == doctest::Approx(2 * once[i]));
  net.zero_grad();
  for (float g : net.get<0>().weight.grad) CHECK(g == 0.0f);
  for (float g : net.get<2>().bias.grad) CHECK(g == 0.0f);
}

TEST_CASE("backward before forward, or input_grad without asking, is a clear error") {
  Model<nn::Sequential<nn::Linear<4, 2>>, Shape<4>> net;
  CHECK_THROWS_WITH_AS(net.backward(), doctest::Contains("call forward(X) first"), std::logic_error);
  auto X = ctnn::randn<Shape<4>>(2);
  net.forward(X);
  net.backward();
  CHECK_THROWS_AS(net.input_grad(), std::logic_error);
}

TEST_CASE("after the first step, forward and backward allocate nothing") {
  Model<nn::Sequential<nn::Linear<20, 64>, nn::ReLU, nn::Linear<64, 10>>, Shape<20>> net;
  auto X = ctnn::randn<Shape<20>>(32);
  CHECK(ctnn_test::steady_state_allocations([&] { ctnn_test::backward_step(net, X); }) == 0);
}
