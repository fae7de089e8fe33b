// Custom blocks and tensor expressions: D2L's seed blocks against PyTorch (forward and autograd),
// gradients against finite differences, shared parameters, state_dict names, training.
#include <doctest/doctest.h>

#include <cmath>
#include <ctnn/ctnn.hpp>
#include <filesystem>
#include <numeric>
#include <stdexcept>
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

/// How ctnn's output relates to PyTorch's in check_against_torch.
enum class Output {
  batched,     // [N, *S], as PyTorch's
  whole_batch, // one value for the batch (batched_output = false): an output of one row
  batch_sum,   // per-sample values whose sum is PyTorch's scalar (FixedHiddenMLPPerSample)
};

/// Loads file's parameters and input, runs forward and backward with dL/dy = dy, and compares the
/// output and every gradient with PyTorch's.
template <class M>
void check_against_torch(M& net, const std::string& file, Output mode = Output::batched, float rtol = 1e-4f,
                         float atol = 1e-5f) {
  using In = typename M::input_shape_type;
  constexpr std::size_t out_size = M::output_shape_type::size;
  const auto ref = load_reference(reference_path(file));
  ctnn_test::load_parameters(net, ref);
  const auto& xin = ref.at("input");
  Batch<In> X(xin.shape[0], xin.values);
  const auto Y = net.forward(X);
  const auto& yref = ref.at("output");
  if (mode == Output::batch_sum) {
    const float total = std::accumulate(Y.begin(), Y.end(), 0.0f);
    check_close(std::span<const float>(&total, 1), yref.values, rtol, atol, file + " output");
  } else if (mode == Output::whole_batch) {
    CHECK(Y.batch_size() == 1);
    check_close(std::span<const float>(Y.data(), out_size), yref.values, rtol, atol, file + " output");
  } else {
    check_close(Y.to_vector(), yref.values, rtol, atol, file + " output");
  }
  net.zero_grad();
  net.set_input_requires_grad(true);
  auto dy = net.output_grad();
  const auto& dyref = ref.at("dy").values;
  for (std::size_t i = 0; i < dy.numel(); ++i)
    dy.data()[i] = mode == Output::batch_sum ? dyref[0] : i < dyref.size() ? dyref[i] : 0.0f;
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

TEST_CASE("FixedHiddenMLP: constant weight, shared Linear, data-dependent loop, whole-batch sum match PyTorch") {
  Model<nn::block<seed::FixedHiddenMLP>, Shape<20>> net;
  using Net = decltype(net)::network_type;
  static_assert(decltype(net)::output_shape == Shape<>{});  // PyTorch's X.sum(): a 0-d tensor
  static_assert(!Net::batched_output && Net::batch_coupled);
  CHECK(net.state_dict().keys() == std::vector<std::string>{"linear.weight", "linear.bias"});  // no rand_weight
  static_assert(decltype(net)::parameter_count == 20 * 20 + 20);
  const auto ref = load_reference(reference_path("block_fixed_hidden_mlp.txt"));  // batch 2
  const auto& rw = ref.at("const.rand_weight").values;
  std::copy(rw.begin(), rw.end(), net.network().rand_weight.data());
  check_against_torch(net, "block_fixed_hidden_mlp.txt", Output::whole_batch);

  // The per-sample variant: sum<1> per sample, whose total is PyTorch's value (same gradients).
  Model<nn::block<seed::FixedHiddenMLPPerSample>, Shape<20>> per_sample;
  static_assert(decltype(per_sample)::output_shape == Shape<>{});
  static_assert(decltype(per_sample)::network_type::batched_output);
  static_assert(decltype(per_sample)::network_type::batch_coupled);  // declared: item() couples the samples
  std::copy(rw.begin(), rw.end(), per_sample.network().rand_weight.data());
  check_against_torch(per_sample, "block_fixed_hidden_mlp.txt", Output::batch_sum);
}

// class NestMLP(nn.Module):
//     def __init__(self):
//         super().__init__()
//         self.net = nn.Sequential(nn.LazyLinear(64), nn.ReLU(), nn.LazyLinear(32), nn.ReLU())
//         self.linear = nn.LazyLinear(16)
//     def forward(self, X): return self.linear(self.net(X))
template <class In>
struct NestMLP : nn::Block<NestMLP<In>> {
  nn::Layer<nn::Sequential<nn::LazyLinear<64>, nn::ReLU, nn::LazyLinear<32>, nn::ReLU>, In> net;
  nn::Layer<nn::LazyLinear<16>, nn::output_t<decltype(net)>> linear;
  CTNN_MEMBERS(net, linear)
  auto forward(auto X) { return linear(net(X)); }
  static std::string type_name() { return "NestMLP"; }
};
// chimera = nn.Sequential(NestMLP(), nn.LazyLinear(20), FixedHiddenMLP())
using Chimera = nn::Sequential<nn::block<NestMLP>, nn::LazyLinear<20>, nn::block<seed::FixedHiddenMLP>>;

TEST_CASE("D2L's chimera (blocks and Sequentials mixed, ending in a whole-batch sum) matches PyTorch at batch 5") {
  Model<Chimera, Shape<20>> net;
  CHECK(net.state_dict().keys() == std::vector<std::string>{"0.net.0.weight", "0.net.0.bias", "0.net.2.weight",
                                                            "0.net.2.bias", "0.linear.weight", "0.linear.bias",
                                                            "1.weight", "1.bias", "2.linear.weight", "2.linear.bias"});
  static_assert(decltype(net)::output_shape == Shape<>{});
  const auto ref = load_reference(reference_path("block_chimera.txt"));
  REQUIRE(ref.at("halvings").values[0] == 5.0f);  // the while loop runs 5 times on this batch
  const auto& rw = ref.at("const.2.rand_weight").values;
  std::copy(rw.begin(), rw.end(), net.get<2>().rand_weight.data());
  check_against_torch(net, "block_chimera.txt", Output::whole_batch, 1e-4f, 1e-5f);
}

TEST_CASE("CenteredLayer: X.mean() is over the whole batch, as in PyTorch; its output's mean is 0") {
  Model<nn::Sequential<nn::LazyLinear<128>, nn::block<seed::CenteredLayer>>, Shape<8>> net;
  check_against_torch(net, "block_centered.txt");  // batch 4
  static_assert(decltype(net)::network_type::batch_coupled);
  auto Y = net(ctnn::rand<Shape<8>>(4));
  double s = 0;
  for (float v : Y) s += v;
  CHECK(std::fabs(s / double(Y.numel())) < 1e-6);
  // Over the whole batch, not per sample: the samples' own means are not 0.
  double largest = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    double m = 0;
    for (std::size_t j = 0; j < 128; ++j) m += Y(i, j);
    largest = std::max(largest, std::fabs(m / 128));
  }
  CHECK(largest > 1e-3);
}

template <class In>
struct Reductions : nn::Block<Reductions<In>> {  // which reductions couple the samples of a batch
  auto forward(auto X) { return X - ex::mean<1, true>(X) + ex::sum<0>(X) * 0.0f; }
};
template <class In>
struct PerSample : nn::Block<PerSample<In>> {
  auto forward(auto X) { return X - ex::mean<1, true>(X) + ex::sum<2, true>(X) * 0.5f; }
};

TEST_CASE("reductions over all or over dim 0 are over the batch; batch_coupled says so") {
  static_assert(nn::bind_t<nn::block<Reductions>, Shape<3, 4>>::batch_coupled);
  static_assert(!nn::bind_t<nn::block<PerSample>, Shape<3, 4>>::batch_coupled);
  static_assert(!nn::bind_t<nn::block<seed::MLP>, Shape<20>>::batch_coupled);
  static_assert(nn::bind_t<Chimera, Shape<20>>::batch_coupled);
  // mean<1, true> (over the first sample dimension) and sum<2, true> against scalar loops.
  Model<nn::block<PerSample>, Shape<3, 4>> net;
  auto X = ctnn::randn<Shape<3, 4>>(5);
  auto Y = net(X);
  for (std::size_t n = 0; n < 5; ++n)
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < 4; ++j) {
        float mean = 0, sum = 0;
        for (std::size_t k = 0; k < 3; ++k) mean += X(n, k, j) / 3.0f;
        for (std::size_t k = 0; k < 4; ++k) sum += X(n, i, k);
        CHECK(Y(n, i, j) == doctest::Approx(X(n, i, j) - mean + sum * 0.5f).epsilon(1e-5));
      }
}

TEST_CASE("Sequential<MyLinear<64, 8>, MyLinear<8, 1>> matches PyTorch") {
  Model<nn::Sequential<seed::MyLinear<64, 8>, seed::MyLinear<8, 1>>, Shape<64>> net;
  CHECK(net.state_dict().keys() == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"});
  check_against_torch(net, "block_mylinear.txt", Output::batched, 1e-4f, 1e-4f);
}

TEST_CASE("expression gradients (elementwise ops, broadcasting, reductions) match finite differences") {
  Model<nn::block<Polynomial>, Shape<3, 5>> net(11);
  auto X = ctnn::randn<Shape<3, 5>>(4);
  CHECK(gradcheck(net, X) == 0);
}

TEST_CASE("seed blocks' gradients match finite differences") {
  ctnn::Generator gen(77);  // inputs independent of the tests before (the default generator's state)
  {
    Model<nn::block<seed::MLP>, Shape<20>> net(12);
    auto X = ctnn::randn<Shape<20>>(3, gen);
    CHECK(gradcheck(net, X) == 0);
  }
  {
    Model<nn::Sequential<nn::LazyLinear<16>, nn::block<seed::CenteredLayer>, nn::Tanh>, Shape<5>> net(13);
    auto X = ctnn::randn<Shape<5>>(3, gen);
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
    auto X = ctnn::randn<Shape<6>>(3, gen);
    CHECK(gradcheck(net, X) == 0);
  }
  {  // whole-batch: one output for the batch of 3
    Model<nn::block<seed::FixedHiddenMLP>, Shape<20>> net(15);
    auto X = ctnn::rand<Shape<20>>(3, gen);
    CHECK(gradcheck(net, X, {.step = 1e-3f}) == 0);
  }
  {
    Model<Chimera, Shape<20>> net(16);
    auto X = ctnn::rand<Shape<20>>(3, gen);
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
  CHECK(net.state_dict().keys() == std::vector<std::string>{"pre.0.weight", "pre.0.bias", "my.weight", "my.bias"});
  net.apply([](auto& l) {  // MyLinear: small weights, positive biases (ReLU kinks away from the steps)
    if constexpr (requires {
                    l.weight;
                    l.bias;
                  } && nn::is_block<decltype(l)>) {
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

  // FixedHiddenMLP trains on its whole-batch value: L = y^2, dL/dy = 2y (the loop's halvings are
  // constants for the derivative, as in PyTorch).
  Model<nn::block<seed::FixedHiddenMLP>, Shape<20>> fixed(33);
  ctnn::Generator gen(34);
  auto Xf = ctnn::rand<Shape<20>>(8, gen);
  ctnn::optim::SGD sgd3{.lr = 0.05f};
  float f0 = 0, f1 = 0;
  for (int step = 0; step < 30; ++step) {
    fixed.zero_grad();
    const float y = fixed.forward(Xf).data()[0];
    f1 = y * y;
    if (step == 0) f0 = f1;
    auto dy = fixed.output_grad();
    std::fill_n(dy.data(), dy.numel(), 0.0f);
    dy.data()[0] = 2.0f * y;
    fixed.backward();
    sgd3.step(fixed);
  }
  CHECK(f0 > 1e-4f);
  CHECK(f1 < 0.1f * f0);
}

TEST_CASE("expressions are lazy: an elementwise chain writes only the block's output") {
  // The Polynomial block's output is one slot; its slots beyond are the three reductions only.
  using B = nn::bind_t<nn::block<Polynomial>, Shape<3, 5>>;
  static_assert(B::record_offset == 15 + 3 + 15 + 5 + 1);  // out, mean<2, true>, sum<0>, mean<1>, .sum()
  using M = nn::bind_t<nn::block<seed::MLP>, Shape<20>>;
  static_assert(M::record_offset == 10 + (20 + 256) + (256 + 10));  // out; each call: input + output
}

template <class In>
struct Project : nn::Block<Project<In>> {  // mm on [N, 3, 7] x [7, 19] (whole vectors and a partial one), then [19, 5]
  nn::Param<Shape<7, 19>> weight;
  ctnn::Tensor<Shape<19, 5>> fixed;
  CTNN_MEMBERS(weight, fixed)
  void reset_parameters(ctnn::Generator& g) {
    ctnn::uniform_(weight, -0.5f, 0.5f, g);
    ctnn::uniform_(fixed, -1.0f, 1.0f, g);
  }
  auto forward(auto X) { return mm(tanh(mm(X, weight)), fixed); }
};

TEST_CASE("mm (vectorized) matches scalar loops and finite differences") {
  Model<nn::block<Project>, Shape<3, 7>> net(41);
  static_assert(decltype(net)::output_shape == Shape<3, 5>{});
  auto X = ctnn::randn<Shape<3, 7>>(5);
  auto Y = net(X);
  const auto& W = net.network().weight;
  const auto& F = net.network().fixed;
  for (std::size_t n = 0; n < 5; ++n)
    for (std::size_t r = 0; r < 3; ++r) {
      float h[19];
      for (std::size_t m = 0; m < 19; ++m) {
        double s = 0;
        for (std::size_t k = 0; k < 7; ++k) s += double(X(n, r, k)) * W(k, m);
        h[m] = std::tanh(static_cast<float>(s));
      }
      for (std::size_t o = 0; o < 5; ++o) {
        double s = 0;
        for (std::size_t m = 0; m < 19; ++m) s += double(h[m]) * F(m, o);
        CHECK(Y(n, r, o) == doctest::Approx(s).epsilon(1e-5));
      }
    }
  CHECK(gradcheck(net, X) == 0);
}

TEST_CASE("get<I> and summary() reach a block's members") {
  using namespace ctnn::literals;
  Model<nn::Sequential<nn::block<seed::MLP>, nn::ReLU, nn::LazyLinear<3>>, Shape<20>> net;
  CHECK(&net.get<0>().get<1>() == &net.network().get<0>().out);  // member 1 of CTNN_MEMBERS(hidden, out)
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(net[0_c][0_c].weight)>, nn::Parameter<Shape<256, 20>>>);
  const std::string s = net.summary();
  CHECK(s.find("MLP-0 ") != std::string::npos);
  CHECK(s.find("  Linear-0.hidden ") != std::string::npos);
  CHECK(s.find("  Linear-0.out ") != std::string::npos);
  CHECK(s.find("[N, 256]") != std::string::npos);

  Model<Chimera, Shape<20>> chimera;
  const std::string c = chimera.summary();
  CHECK(c.find("Sequential-0.net ") != std::string::npos);
  CHECK(c.find("Linear-0.net.2 ") != std::string::npos);
  CHECK(c.find("FixedHiddenMLP-2") != std::string::npos);
  CHECK(c.find("Linear-2.linear ") != std::string::npos);
  CHECK(c.find("[]") != std::string::npos);  // the whole-batch sum has no N
  CHECK(c.find("Total params: " + std::to_string(decltype(chimera)::parameter_count)) != std::string::npos);
}

TEST_CASE("a block network split across threads gives the one-thread gradients (records follow the copies)") {
  // Model's backward runs slice t > 0 on a copy of the network: the block's recorded expression
  // must add into the copy's gradients, not the original's (both threads at once).
  using Net = nn::Sequential<nn::block<seed::MLP>, nn::Tanh, seed::MyLinear<10, 4>>;
  Model<Net, Shape<20>> one(51), two(51);
  one.set_num_threads(1);
  two.set_num_threads(2);
  REQUIRE(two.threads_for_batch(64) == 2);
  ctnn::Generator gen(52);
  auto X = ctnn::randn<Shape<20>>(64, gen);
  auto dy = ctnn::randn<Shape<4>>(64, gen);
  for (auto* net : {&one, &two}) {
    net->set_input_requires_grad(true);
    net->zero_grad();
    net->forward(X);
    auto g = net->output_grad();
    std::copy_n(dy.data(), dy.numel(), g.data());
    net->backward();
  }
  check_close(two.input_grad().to_vector(), one.input_grad().to_vector(), 1e-5f, 1e-6f, "grad.input");
  std::vector<std::vector<float>> grads;
  one.for_each_parameter([&](const std::string&, auto& p) { grads.emplace_back(p.grad.begin(), p.grad.end()); });
  std::size_t i = 0;
  two.for_each_parameter([&](const std::string& name, auto& p) {
    check_close(std::vector<float>(p.grad.begin(), p.grad.end()), grads[i++], 1e-4f, 1e-5f, "grad." + name);
  });
}

// ---- A bare parameter is an expression (PyTorch's torch.exp(self.log_s)) ----------------------

// Every function and operator of the expression language on nn::Param / Tensor members on their
// own (no X in the call), numbers on either side. u stays away from relu's and abs's kinks at 0
// (|u| >= 0.3, farther than gradcheck's step), v away from 0 (log, division).
template <class In>
struct BareParams : nn::Block<BareParams<In>> {
  nn::Param<Shape<4>> u, v, log_s;
  nn::Param<Shape<3, 4>> m;
  nn::Param<Shape<4, 4>> w;
  ctnn::Tensor<Shape<4>> t;
  ctnn::Tensor<Shape<3, 4>> tm;
  CTNN_MEMBERS(u, v, log_s, m, w, t, tm)
  void reset_parameters(ctnn::Generator& g) {
    const float us[4] = {-0.9f, -0.4f, 0.3f, 0.8f};
    std::copy(us, us + 4, u.data());
    ctnn::uniform_(v, 0.5f, 1.5f, g);
    ctnn::uniform_(log_s, -0.5f, 0.5f, g);
    ctnn::uniform_(m, -1.0f, 1.0f, g);
    ctnn::uniform_(w, -0.5f, 0.5f, g);
    ctnn::uniform_(t, -1.0f, 1.0f, g);
    ctnn::uniform_(tm, -1.0f, 1.0f, g);
  }
  auto forward(auto X) {  // X: [N, 3, 4]
    auto unary = exp(log_s) + log(v) + relu(u) + sigmoid(u) + tanh(u) + abs(u) + abs(t) + 1;  // [4]
    auto binary = (v + 1.0f) * (2.0f - u) + (1 + u) / v - v / 2 + 3 * v - u * 0.5f - 2.0f / v + (u - 1) + u * v -
                  (u + v) / (v * v) + (-u) + v * t + t - u;  // [4]
    auto reduced = sum(u) + mean(v) + sum<0>(m) + mean<0>(m) * 2 + mean<1, true>(m) + sum<1>(m).sum();  // [3, 4]
    auto product = mm(m, w) + matmul(tm, w) * 0.5f + mm(tanh(m), w);  // [3, 4]
    return X * unary + binary + reduced + product * X;
  }
};

TEST_CASE("every expression function and operator takes a bare Param or Tensor member (scalar reference, gradcheck)") {
  Model<nn::block<BareParams>, Shape<3, 4>> net(61);
  static_assert(decltype(net)::output_shape == Shape<3, 4>{});
  static_assert(!decltype(net)::network_type::batch_coupled);  // parameters carry no batch
  auto X = ctnn::randn<Shape<3, 4>>(3);
  auto Y = net(X);
  const auto& b = net.network();
  auto sig = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  double sum_u = 0, mean_v = 0, sum_m = 0;
  for (std::size_t j = 0; j < 4; ++j) sum_u += b.u(j), mean_v += b.v(j) / 4.0;
  for (std::size_t i = 0; i < 12; ++i) sum_m += b.m.data()[i];
  for (std::size_t n = 0; n < 3; ++n)
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < 4; ++j) {
        const double u = b.u(j), v = b.v(j), t = b.t(j);
        const double unary = std::exp(double(b.log_s(j))) + std::log(v) + std::max(u, 0.0) + sig(u) + std::tanh(u) +
                             std::fabs(u) + std::fabs(t) + 1;
        const double binary = (v + 1) * (2 - u) + (1 + u) / v - v / 2 + 3 * v - u * 0.5 - 2 / v + (u - 1) + u * v -
                              (u + v) / (v * v) - u + v * t + t - u;
        double col = 0, row = 0;
        for (std::size_t k = 0; k < 3; ++k) col += b.m(k, j);
        for (std::size_t k = 0; k < 4; ++k) row += b.m(i, k) / 4.0;
        const double reduced = sum_u + mean_v + col + col / 3.0 * 2 + row + sum_m;
        double mw = 0, tw = 0, hw = 0;
        for (std::size_t k = 0; k < 4; ++k) {
          mw += double(b.m(i, k)) * b.w(k, j);
          tw += double(b.tm(i, k)) * b.w(k, j);
          hw += std::tanh(double(b.m(i, k))) * b.w(k, j);
        }
        const double x = X(n, i, j);
        const double expected = x * unary + binary + reduced + (mw + tw * 0.5 + hw) * x;
        CHECK(Y(n, i, j) == doctest::Approx(expected).epsilon(1e-5));
      }
  CHECK(gradcheck(net, X) == 0);
}

// ---- state_dict order: own parameters first, as PyTorch ----------------------------------------

// Children declared before the Param, one of them without parameters (docs/custom_blocks.md's
// Scaled, with an activation between):
// class ChildThenParam(nn.Module):
//     def __init__(self):
//         super().__init__()
//         self.child = nn.LazyLinear(3)
//         self.act = nn.Tanh()
//         self.w = nn.Parameter(torch.randn(3))
//     def forward(self, X): return self.act(self.child(X)) * self.w
template <class In>
struct ChildThenParam : nn::Block<ChildThenParam<In>> {
  nn::Layer<nn::LazyLinear<3>, In> child;
  nn::Layer<nn::Tanh, nn::output_t<decltype(child)>> act;
  nn::Param<Shape<3>> w;
  CTNN_MEMBERS(child, act, w)
  auto forward(auto X) { return act(child(X)) * w; }
};
// Own parameters around a child block and a plain tensor (not in state_dict).
template <class In>
struct Around : nn::Block<Around<In>> {
  nn::Layer<nn::block<ChildThenParam>, In> inner;
  ctnn::Tensor<Shape<3>> rand;
  nn::Param<Shape<3>> scale;
  nn::Layer<nn::LazyLinear<2>, nn::output_t<decltype(inner)>> last;
  nn::Param<Shape<2>> bias;
  CTNN_MEMBERS(inner, rand, scale, last, bias)
  auto forward(auto X) { return last(inner(X) * scale + rand) + bias; }
};

TEST_CASE("state_dict and named_parameters list a block's own Params before its children's, as PyTorch") {
  // torch 1.13 on the PyTorch modules written in the comments: state_dict().keys() and
  // [n for n, _ in named_parameters()] both give these (tools' order check, not a reference file).
  Model<nn::block<ChildThenParam>, Shape<4>> net(71);
  CHECK(net.state_dict().keys() == std::vector<std::string>{"w", "child.weight", "child.bias"});
  CHECK(net.named_parameters().keys() == net.state_dict().keys());
  Model<nn::block<Around>, Shape<4>> around(72);
  const std::vector<std::string> expected{
      "scale", "bias", "inner.w", "inner.child.weight", "inner.child.bias", "last.weight", "last.bias"};
  CHECK(around.state_dict().keys() == expected);
  CHECK(around.named_parameters().keys() == expected);
  Model<nn::Sequential<nn::block<ChildThenParam>, nn::ReLU>, Shape<4>> seq(73);
  CHECK(seq.state_dict().keys() == std::vector<std::string>{"0.w", "0.child.weight", "0.child.bias"});
  // get<I> still counts CTNN_MEMBERS' order (member 1 of Around is the tensor `rand`).
  CHECK(&around.get<2>() == &around.network().scale);
  auto X = ctnn::randn<Shape<4>>(3);
  CHECK(gradcheck(around, X) == 0);

  // Safetensors files are read by name: a save and a load into another model give the same values.
  const auto path = std::filesystem::temp_directory_path() / "ctnn_test_blocks_order.safetensors";
  ctnn::save(around, path);
  Model<nn::block<Around>, Shape<4>> loaded(74);
  CHECK(loaded.state_dict()["scale"].to_vector() != around.state_dict()["scale"].to_vector());
  ctnn::load(loaded, path);
  for (auto&& [name, p] : around.state_dict()) CHECK(loaded.state_dict()[name].to_vector() == p.to_vector());
  std::filesystem::remove(path);
}

// ---- A parameter's gradient by its state_dict name ---------------------------------------------

TEST_CASE("named_parameters()[name].grad is the gradient of the parameter state_dict names so") {
  using namespace ctnn::literals;
  Model<nn::Sequential<nn::LazyLinear<5>, nn::ReLU, nn::block<ChildThenParam>>, Shape<4>> net(81);
  auto X = ctnn::randn<Shape<4>>(6);
  net.zero_grad();
  net.forward(X);
  auto dy = net.output_grad();
  std::fill_n(dy.data(), dy.numel(), 1.0f);
  net.backward();

  const auto named = net.named_parameters();
  CHECK(named.keys() == net.state_dict().keys());
  CHECK(named.keys() == std::vector<std::string>{"0.weight", "0.bias", "2.w", "2.child.weight", "2.child.bias"});
  // dict(net.named_parameters())["0.weight"].grad is net[0].weight.grad: a view of it.
  const auto w0 = net.named_parameters()["0.weight"];
  CHECK(w0.grad.data() == net[0_c].weight.grad.data());
  CHECK(w0.grad.shape() == std::vector<std::size_t>{5, 4});
  CHECK(w0.data() == net[0_c].weight.data());
  CHECK(named["2.w"].grad.to_vector() == std::vector<float>(net[2_c].w.grad.begin(), net[2_c].w.grad.end()));
  CHECK(named["2.child.bias"].grad.data() == net[2_c].child.bias.grad.data());
  bool nonzero = false;
  for (float g : named["2.child.weight"].grad) nonzero = nonzero || g != 0.0f;
  CHECK(nonzero);
  for (auto&& [name, p] : net.named_parameters()) CHECK(p.grad.numel() == p.numel());
  // A layer's or a block's own named_parameters: names relative to it, the same views.
  CHECK(net[0_c].named_parameters()["bias"].grad.data() == net[0_c].bias.grad.data());
  CHECK(net[2_c].named_parameters().keys() == std::vector<std::string>{"w", "child.weight", "child.bias"});
  CHECK(net[2_c].named_parameters()["child.weight"].grad.data() == net[2_c].child.weight.grad.data());

  // An unknown name throws std::out_of_range naming it.
  try {
    (void)net.named_parameters()["0.wieght"];
    FAIL("no exception");
  } catch (const std::out_of_range& e) {
    const std::string what = e.what();
    CHECK(what.find("'0.wieght'") != std::string::npos);
    CHECK(what.find("0.weight") != std::string::npos);
  }
  // Still a StateDict where one is asked for (the values).
  const ctnn::StateDict sd = net.named_parameters();
  CHECK(sd.keys() == named.keys());
}
