// Custom blocks and tensor expressions: D2L's seed blocks against PyTorch (forward and autograd),
// gradients against finite differences, shared parameters, state_dict names, training.
#include <doctest/doctest.h>

#include <cmath>
#include <ctnn/ctnn.hpp>
#include <numeric>
#include <sstream>
#include <vector>

#include "gradcheck.hpp"
#include "helpers.hpp"
#include "seed_blocks.hpp"

namespace nn = ctnn::nn;
namespace ex = ctnn::expr;
using ctnn::Batch, ctnn::Model, ctnn::Shape;
using ctnn_test::check_close, ctnn_test::gradcheck, ctnn_test::load_reference, ctnn_test::reference_path;

namespace {

/// Loads file's parameters and input, runs forward and backward with dL/dy = dy, and compares the
/// output and every gradient with PyTorch's. `batch_sum`: PyTorch's output is the sum of ctnn's
/// per-sample outputs (FixedHiddenMLP's X.sum()), and its dy a scalar.
template <class M>
void check_against_torch(M& net, const std::string& file, bool batch_sum = false, float rtol = 1e-4f,
                         float atol = 1e-5f) {
  using In = typename M::input_shape_type;
  const auto ref = load_reference(reference_path(file));
  ctnn_test::load_parameters(net, ref);
  const auto& xin = ref.at("input");
  Batch<In> X(xin.shape[0], xin.values);
  const auto Y = net.forward(X);
  const auto& yref = ref.at("output");
  if (batch_sum) {
    const float total = std::accumulate(Y.begin(), Y.end(), 0.0f);
    check_close(std::span<const float>(&total, 1), yref.values, rtol, atol, file + " output");
  } else {
    check_close(Y.to_vector(), yref.values, rtol, atol, file + " output");
  }
  net.zero_grad();
  net.set_input_requires_grad(true);
  auto dy = net.output_grad();
  const auto& dyref = ref.at("dy").values;
  for (std::size_t i = 0; i < dy.numel(); ++i) dy.data()[i] = batch_sum ? dyref[0] : dyref[i];
  net.backward();
  for (auto&& [name, p] : net.state_dict()) {
    (void)p;
    auto it = ref.find("grad." + name);
    REQUIRE_MESSAGE(it != ref.end(), "no reference gradient for " << name);
    std::vector<float> g;
    net.for_each_parameter([&](const std::string& n, auto& param) {
      if (n == name) g.assign(param.grad.begin(), param.grad.end());
    });
    check_close(g, it->second.values, rtol, atol, file + " grad." + name);
  }
  check_close(net.input_grad().to_vector(), ref.at("grad.input").values, rtol, atol, file + " grad.input");
}

template <class In>
struct Polynomial : nn::Block<Polynomial<In>> {  // every elementwise op and reduction, for gradcheck
  nn::Param<Shape<In::dims[In::rank - 1]>> scale;
  ctnn::Tensor<Shape<In::dims[In::rank - 1]>> offset;
  CTNN_MEMBERS(scale, offset)
  void reset_parameters(ctnn::Generator& g) {
    ctnn::uniform_(scale, 0.5f, 1.5f, g);
    ctnn::uniform_(offset, 2.0f, 3.0f, g);
  }
  auto forward(auto X) {
    auto a = sigmoid(X) * scale - tanh(X) / (abs(X) + offset);
    auto b = exp(X * 0.3f) + log(X * X + 1.0f) - -X;
    auto m = ex::mean<2, true>(a) + ex::sum<0>(b) * 0.1f + ex::mean<1>(X).sum() * 0.01f;
    return a * b - m + relu(X - 0.1f);
  }
};

template <class In>
struct Twice : nn::Block<Twice<In>> {  // one layer used twice, and its output used twice
  nn::Layer<nn::Linear<In::dims[0], In::dims[0]>, In> shared;
  CTNN_MEMBERS(shared)
  auto forward(auto X) {
    auto h = shared(X);
    return shared(tanh(h)) + h * h;
  }
};

template <class In>
struct Outer : nn::Block<Outer<In>> {  // blocks in blocks, Sequentials in blocks
  nn::Layer<nn::Sequential<nn::LazyLinear<6>, nn::Tanh>, In> pre;
  nn::Layer<nn::block<seed::CenteredLayer>, nn::output_t<decltype(pre)>> center;
  nn::Layer<seed::MyLinear<6, 4>, nn::output_t<decltype(center)>> my;
  nn::Layer<nn::Flatten, nn::output_t<decltype(my)>> flat;
  CTNN_MEMBERS(pre, center, my, flat)
  auto forward(auto X) { return flat(my(center(pre(X)) * 0.5f)) + my(center(pre(X))).mean(); }
};

}  // namespace

TEST_CASE("MLP block forward and backward match PyTorch; state_dict names follow the members") {
  Model<nn::block<seed::MLP>, Shape<20>> net;
  CHECK(net.state_dict().keys() == std::vector<std::string>{"hidden.weight", "hidden.bias", "out.weight", "out.bias"});
  static_assert(decltype(net)::output_shape == Shape<10>{});
  static_assert(decltype(net)::parameter_count == 20 * 256 + 256 + 256 * 10 + 10);
  check_against_torch(net, "block_mlp.txt");
  std::ostringstream os;
  os << net;
  CHECK(os.str() ==
        "MLP(\n  (hidden): Linear(in_features=20, out_features=256, bias=True)\n"
        "  (out): Linear(in_features=256, out_features=10, bias=True)\n)");
}

TEST_CASE("blocks nest in Sequential: names '0.hidden.weight', and MySequential matches nn.Sequential") {
  Model<nn::Sequential<nn::block<seed::MLP>, nn::ReLU, nn::LazyLinear<3>>, Shape<20>> net;
  const auto keys = net.state_dict().keys();
  CHECK(keys.front() == "0.hidden.weight");
  CHECK(keys.back() == "2.bias");
  static_assert(decltype(net)::output_shape == Shape<3>{});

  // MySequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10)) against nn.Sequential's vectors.
  Model<nn::block<seed::MySequential, nn::LazyLinear<256>, nn::ReLU, nn::LazyLinear<10>>, Shape<20>> mine;
  CHECK(mine.state_dict().keys() == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  const auto ref = load_reference(reference_path("mlp_20_256_10.txt"));
  ctnn_test::load_parameters(mine, ref);
  Batch<Shape<20>> X(2, ref.at("input").values);
  check_close(mine(X).to_vector(), ref.at("output").values, 1e-4f, 1e-5f, "MySequential");
}

TEST_CASE("FixedHiddenMLP: constant weight, shared Linear, data-dependent loop match PyTorch") {
  Model<nn::block<seed::FixedHiddenMLP>, Shape<20>> net;
  CHECK(net.state_dict().keys() == std::vector<std::string>{"linear.weight", "linear.bias"});  // no rand_weight
  static_assert(decltype(net)::parameter_count == 20 * 20 + 20);
  const auto ref = load_reference(reference_path("block_fixed_hidden_mlp.txt"));
  const auto& rw = ref.at("const.rand_weight").values;
  std::copy(rw.begin(), rw.end(), net.network().rand_weight.data());
  check_against_torch(net, "block_fixed_hidden_mlp.txt", /*batch_sum=*/true);
}

TEST_CASE("CenteredLayer after LazyLinear matches PyTorch; its output's mean is 0") {
  Model<nn::Sequential<nn::LazyLinear<128>, nn::block<seed::CenteredLayer>>, Shape<8>> net;
  check_against_torch(net, "block_centered.txt");
  auto Y = net(ctnn::rand<Shape<8>>(4));
  double s = 0;
  for (float v : Y) s += v;
  CHECK(std::fabs(s / double(Y.numel())) < 1e-6);
}

TEST_CASE("Sequential<MyLinear<64, 8>, MyLinear<8, 1>> matches PyTorch") {
  Model<nn::Sequential<seed::MyLinear<64, 8>, seed::MyLinear<8, 1>>, Shape<64>> net;
  CHECK(net.state_dict().keys() == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"});
  check_against_torch(net, "block_mylinear.txt", false, 1e-4f, 1e-4f);
}

TEST_CASE("expression gradients (elementwise ops, broadcasting, reductions) match finite differences") {
  Model<nn::block<Polynomial>, Shape<3, 5>> net(11);
  auto X = ctnn::randn<Shape<3, 5>>(4);
  CHECK(gradcheck(net, X) == 0);
}

TEST_CASE("seed blocks' gradients match finite differences") {
  {
    Model<nn::block<seed::MLP>, Shape<20>> net(12);
    auto X = ctnn::randn<Shape<20>>(3);
    CHECK(gradcheck(net, X) == 0);
  }
  {
    Model<nn::Sequential<nn::LazyLinear<16>, nn::block<seed::CenteredLayer>, nn::Tanh>, Shape<5>> net(13);
    auto X = ctnn::randn<Shape<5>>(3);
    CHECK(gradcheck(net, X) == 0);
  }
  {
    Model<nn::Sequential<seed::MyLinear<6, 5>, seed::MyLinear<5, 2>>, Shape<6>> net(14);
    net.apply([](auto& l) {  // small weights and positive biases keep ReLU kinks away from the steps
      if constexpr (nn::is_block<decltype(l)>) {
        for (float& v : l.weight) v *= 0.3f;
        ctnn::fill_(l.bias, 1.0f);
      }
    });
    auto X = ctnn::randn<Shape<6>>(3);
    CHECK(gradcheck(net, X) == 0);
  }
  {
    Model<nn::block<seed::FixedHiddenMLP>, Shape<20>> net(15);
    auto X = ctnn::rand<Shape<20>>(2);
    CHECK(gradcheck(net, X, {.step = 1e-3f}) == 0);
  }
}

TEST_CASE("a layer used twice accumulates both uses' gradients, as PyTorch does") {
  Model<nn::block<Twice>, Shape<4>> net(21);
  auto X = ctnn::randn<Shape<4>>(3);
  CHECK(gradcheck(net, X) == 0);
  CHECK(decltype(net)::parameter_count == 4 * 4 + 4);
  CHECK(net.state_dict().keys() == std::vector<std::string>{"shared.weight", "shared.bias"});
}

TEST_CASE("blocks nest in blocks, Sequentials in blocks, a sub-layer output used twice") {
  Model<nn::block<Outer>, Shape<3>> net(22);
  static_assert(decltype(net)::output_shape == Shape<4>{});
  CHECK(net.state_dict().keys() ==
        std::vector<std::string>{"pre.0.weight", "pre.0.bias", "my.weight", "my.bias"});
  net.apply([](auto& l) {  // MyLinear: small weights, positive biases (ReLU kinks away from the steps)
    if constexpr (requires { l.weight; l.bias; } && nn::is_block<decltype(l)>) {
      for (float& v : l.weight) v *= 0.3f;
      ctnn::fill_(l.bias, 1.0f);
    }
  });
  auto X = ctnn::randn<Shape<3>>(3);
  CHECK(gradcheck(net, X) == 0);
}

TEST_CASE("a few SGD steps on blocks reduce the loss") {
  using Net = nn::Sequential<nn::block<seed::MLP>, nn::block<seed::CenteredLayer>>;
  Model<Net, Shape<20>> net(31);
  auto X = ctnn::randn<Shape<20>>(16);
  std::vector<std::int64_t> y(16);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int64_t>(i % 10);
  nn::CrossEntropyLoss loss;
  ctnn::optim::SGD sgd{.lr = 0.5f};
  float first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    net.zero_grad();
    net.forward(X);
    last = net.backward(loss, y);
    if (step == 0) first = last;
    sgd.step(net);
  }
  CHECK(last < 0.5f * first);

  Model<nn::Sequential<seed::MyLinear<8, 16>, seed::MyLinear<16, 1>>, Shape<8>> reg(32);
  reg.apply([](auto& l) {
    if constexpr (nn::is_block<decltype(l)>) {
      for (float& v : l.weight) v *= 0.2f;
      ctnn::fill_(l.bias, 0.1f);
    }
  });
  auto Xr = ctnn::randn<Shape<8>>(32);
  Batch<Shape<1>> t(32);
  for (std::size_t i = 0; i < 32; ++i) t(i, 0) = std::fabs(Xr(i, 0)) + 0.5f;
  nn::MSELoss mse;
  ctnn::optim::SGD sgd2{.lr = 0.05f};
  float r0 = 0, r1 = 0;
  for (int step = 0; step < 30; ++step) {
    reg.zero_grad();
    reg.forward(Xr);
    r1 = reg.backward(mse, t);
    if (step == 0) r0 = r1;
    sgd2.step(reg);
  }
  CHECK(r1 < 0.5f * r0);
}

TEST_CASE("expressions are lazy: an elementwise chain writes only the block's output") {
  // The Polynomial block's output is one slot; its slots beyond are the three reductions only.
  using B = nn::bind_t<nn::block<Polynomial>, Shape<3, 5>>;
  static_assert(B::record_offset == 15 + 3 + 15 + 5 + 1);  // out, mean<2, true>, sum<0>, mean<1>, .sum()
  using M = nn::bind_t<nn::block<seed::MLP>, Shape<20>>;
  static_assert(M::record_offset == 10 + (20 + 256) + (256 + 10));  // out; each call: input + output
}
