// Model: static shapes and counts, parameter access, state_dict, apply, run-time errors,
// allocation-free forward, printing, batches split across threads.
#include <doctest/doctest.h>

#include <ctnn/ctnn.hpp>
#include <optional>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "models.hpp"

namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape, ctnn::Tensor;
using namespace ctnn::literals;

using SmallNet = nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::LazyLinear<1>>;

TEST_CASE("Model exposes input_shape, output_shape and parameter_count at compile time") {
  using M = Model<SmallNet, Shape<4>>;
  static_assert(M::input_shape == Shape<4>{});
  static_assert(M::output_shape == Shape<1>{});
  static_assert(M::parameter_count == 49);
  static_assert(Model<nn::Sequential<nn::Linear<4, 3, false>>, Shape<4>>::parameter_count == 12);
  using Nested = nn::Sequential<nn::Sequential<nn::LazyLinear<8>, nn::ReLU>, nn::Sequential<nn::LazyLinear<2>>>;
  static_assert(Model<Nested, Shape<3>>::parameter_count == 3 * 8 + 8 + 8 * 2 + 2);
  CHECK(M::parameter_count == 49);
}

TEST_CASE("get<I>, net[I_c] and nested get reach layers and their weight and bias") {
  Model<nn::Sequential<nn::Linear<4, 8>, nn::Sequential<nn::Linear<8, 3>, nn::Tanh>>, Shape<4>> net;
  auto& l0 = net.get<0>();
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(l0.weight)>, nn::Parameter<Shape<8, 4>>>);
  CHECK(&net[0_c] == &l0);
  auto& inner = net.get<1>().get<0>();
  static_assert(std::remove_cvref_t<decltype(inner)>::out_features == 3);
  CHECK(&net[1_c][0_c] == &inner);
  inner.bias[2] = 5.0f;
  CHECK(net.state_dict()["1.0.bias"][2] == 5.0f);
  const auto& cnet = net;
  CHECK(&cnet.get<1>().get<0>() == &inner);
}

TEST_CASE("state_dict has PyTorch's names, order and shapes, and views the parameters") {
  Model<SmallNet, Shape<4>> net;
  auto sd = net.state_dict();
  CHECK(sd.keys() == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  CHECK(sd["0.weight"].shape() == std::vector<std::size_t>{8, 4});
  CHECK(sd["2.bias"].shape() == std::vector<std::size_t>{1});
  CHECK_THROWS_AS(sd["1.weight"], std::out_of_range);
  sd["2.weight"][3] = 7.0f;
  CHECK(net.get<2>().weight(0, 3) == 7.0f);
  std::size_t count = 0;
  for (auto&& [name, t] : net.named_parameters()) count += t.numel();
  CHECK(count == 49);
  auto layer_sd = net.get<2>().state_dict();
  CHECK(layer_sd.keys() == std::vector<std::string>{"weight", "bias"});
  Model<nn::Sequential<nn::Linear<4, 3, false>>, Shape<4>> nobias;
  CHECK(nobias.state_dict().keys() == std::vector<std::string>{"0.weight"});
}

TEST_CASE("apply visits every layer, nested ones too, children before parents, as torch does") {
  Model<nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Sequential<nn::Linear<8, 8>, nn::Sigmoid>, nn::Linear<8, 1>>,
        Shape<4>>
      net;
  std::vector<std::string> order;
  net.apply([&](auto& layer) {
    using L = decltype(layer);
    order.push_back(nn::is_linear<L>       ? "linear"
                    : nn::is_relu<L>       ? "relu"
                    : nn::is_sigmoid<L>    ? "sigmoid"
                    : nn::is_sequential<L> ? "seq"
                                           : "?");
    if constexpr (nn::is_linear<L>) {
      nn::init::constant_(layer.weight, 1.0f);
      nn::init::zeros_(layer.bias);
    }
  });
  CHECK(order == std::vector<std::string>{"linear", "relu", "linear", "sigmoid", "seq", "linear", "seq"});
  CHECK(net.get<2>().get<0>().weight(3, 3) == 1.0f);
  CHECK(net.get<3>().bias[0] == 0.0f);
  static_assert(nn::is_linear<const std::remove_reference_t<decltype(net.get<0>())>&>);
  static_assert(!nn::is_linear<decltype(net.get<1>())>);
}

TEST_CASE("forward works for any batch size and a single sample gives the same row") {
  Model<nn::Sequential<nn::Linear<5, 16>, nn::Tanh, nn::Linear<16, 3>>, Shape<5>> net(1);
  auto X = ctnn::randn<Shape<5>>(9);
  auto Y = net(X);
  CHECK(Y.batch_size() == 9);
  for (std::size_t n : {0u, 4u, 8u}) {
    Tensor<Shape<5>> x;
    std::copy_n(X[n].data(), 5, x.data());
    auto y = net(x);
    ctnn_test::check_close(y.to_vector(), std::vector<float>(Y[n].begin(), Y[n].end()), 1e-6f, 1e-7f, "sample");
  }
  for (std::size_t n : {1u, 2u, 3u, 7u, 64u}) {  // every size through the same workspace
    auto Xn = ctnn::randn<Shape<5>>(n);
    auto Yn = net(Xn);
    Tensor<Shape<5>> x;
    std::copy_n(Xn[n - 1].data(), 5, x.data());
    ctnn_test::check_close(net(x).to_vector(), std::vector<float>(Yn[n - 1].begin(), Yn[n - 1].end()), 1e-6f, 1e-7f,
                           "last sample");
  }
}

TEST_CASE("run-time shape errors are clear exceptions") {
  Model<SmallNet, Shape<4>> net;
  Batch<Shape<4>> empty(0);
  CHECK_THROWS_WITH_AS(net(empty), doctest::Contains("batch of 0 samples"), ctnn::shape_error);
  std::vector<float> data(10);
  ctnn::TensorRef wrong(data.data(), {2, 5});
  CHECK_THROWS_WITH_AS(net(wrong), doctest::Contains("[2, 5] does not match [N, 4]"), ctnn::shape_error);
  ctnn::TensorRef right(data.data(), {2, 4});
  CHECK(net(right).batch_size() == 2);
  Batch<Shape<4>> X(3);
  Batch<Shape<1>> Y(2);
  // docs/guide.md and docs/errors.md quote this message.
  CHECK_THROWS_WITH_AS(net.forward(X, Y),
                       "ctnn::Model::forward: output batch of 2 rows for an input batch of 3 samples (expected 3)",
                       ctnn::shape_error);
}

TEST_CASE("once the workspace exists, forward allocates nothing") {
  Model<nn::Sequential<nn::Linear<20, 256>, nn::ReLU, nn::Linear<256, 10>>, Shape<20>> net;
  auto X = ctnn::rand<Shape<20>>(64);
  Batch<Shape<10>> Y(64);
  net.reserve(64);
  const long before = ctnn_test::allocations();
  auto view = net.forward(X);
  net.forward(X, Y);
  auto small = net.forward(ctnn::ConstBatchView<Shape<20>>(X.data(), 10));  // a smaller N fits too
  CHECK(ctnn_test::allocations() == before);
  CHECK(view.batch_size() == 64);
  CHECK(small.batch_size() == 10);
}

TEST_CASE("a model prints PyTorch's repr and a torchinfo-style summary") {
  Model<nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::Sequential<nn::Linear<8, 2, false>, nn::Sigmoid>, nn::Flatten>,
        Shape<4>>
      net;
  std::ostringstream os;
  os << net;
  CHECK(os.str() ==
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Linear(in_features=8, out_features=2, bias=False)\n"
        "    (1): Sigmoid()\n"
        "  )\n"
        "  (3): Flatten(start_dim=1, end_dim=-1)\n"
        ")");
  const std::string s = net.summary();
  CHECK(s.find("Linear-0") != std::string::npos);
  CHECK(s.find("Linear-2.0") != std::string::npos);
  CHECK(s.find("[N, 2]") != std::string::npos);
  CHECK(s.find("Total params: 56") != std::string::npos);
}

// A 20-layer network (docs/design.md reports its compile time): binding and forward work.
using Deep = nn::Sequential<nn::LazyLinear<32>, nn::ReLU, nn::LazyLinear<32>, nn::ReLU, nn::LazyLinear<32>, nn::ReLU,
                            nn::LazyLinear<32>, nn::ReLU, nn::LazyLinear<32>, nn::ReLU, nn::LazyLinear<32>, nn::ReLU,
                            nn::LazyLinear<32>, nn::ReLU, nn::LazyLinear<32>, nn::ReLU, nn::LazyLinear<32>, nn::ReLU,
                            nn::LazyLinear<4>, nn::Sigmoid>;
TEST_CASE("a 20-layer network binds and runs") {
  Model<Deep, Shape<16>> net;
  static_assert(decltype(net)::parameter_count == 16 * 32 + 32 + 8 * (32 * 32 + 32) + 32 * 4 + 4);
  auto Y = net(ctnn::rand<Shape<16>>(3));
  for (float v : Y) {
    CHECK(v > 0.0f);
    CHECK(v < 1.0f);
  }
}

// ---- pieces ------------------------------------------------------------------------------

namespace {
template <class M>
std::vector<float> all_grads(M& net) {
  std::vector<float> g;
  net.for_each_parameter([&](const std::string&, auto& p) { g.insert(g.end(), p.grad.begin(), p.grad.end()); });
  return g;
}
template <class View>
std::span<const float> values(const View& v) {
  return {v.data(), v.numel()};
}
}  // namespace

namespace {
/// Runs `net` on each sample of X alone, with dL/dy row i of G: the outputs and input gradients
/// row by row, the parameter gradients summed over the samples.
template <class M, class In>
void sample_by_sample(M& net, const ctnn::Batch<In>& X, const std::vector<float>& G, std::vector<float>& out,
                      std::vector<float>& in_grad) {
  constexpr std::size_t O = M::output_shape_type::size;
  net.set_input_requires_grad(true);
  net.zero_grad();
  for (std::size_t i = 0; i < X.batch_size(); ++i) {
    const auto y = net.forward(ctnn::ConstBatchView<In>(X.data() + i * In::size, 1));
    out.insert(out.end(), y.data(), y.data() + O);
    std::copy_n(G.data() + i * O, O, net.output_grad().data());
    net.backward();
    in_grad.insert(in_grad.end(), net.input_grad().data(), net.input_grad().data() + In::size);
  }
}
}  // namespace

namespace {
/// A network and the stretch [B, E) of its layers that runs in pieces.
template <class S, std::size_t B, std::size_t E>
struct Stretch {
  using Spec = S;
  static constexpr std::size_t begin = B, end = E;
};
/// LeNet whose first conv and sigmoid sit in a nested Sequential (which does not run in pieces):
/// the stretch starts at the pooling layer, and its input is a slot of the workspace.
using NestedLeNet = nn::Sequential<
    nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>, nn::Sigmoid>,
    nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>, nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>, nn::Sigmoid,
    nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>, nn::Flatten, nn::LazyLinear<120>, nn::Sigmoid, nn::LazyLinear<84>,
    nn::Sigmoid, nn::LazyLinear<10>>;
}  // namespace

// LeNet's layers 0-6 (conv, activation, pool, conv, activation, pool, flatten) form one stretch,
// run 8 samples at a time; the Linear layers take the whole batch.
TEST_CASE_TEMPLATE("Sequential runs its conv/pool layers on a large batch in pieces: each sample as if alone", T,
                   Stretch<ctnn_test::LeNet, 0, 7>, Stretch<ctnn_test::ModernLeNet, 0, 7>, Stretch<NestedLeNet, 1, 6>) {
  using In = Shape<1, 28, 28>;
  using M = ctnn::Model<typename T::Spec, In>;
  using Net = typename M::network_type;
  static_assert(Net::run_end[T::begin] == T::end && Net::run_end[0] == (T::begin == 0 ? T::end : 0));
  constexpr std::size_t piece = Net::template piece_samples<T::begin, T::end>;
  static_assert(piece == (T::begin == 0 ? 8 : 20));
  for (const std::size_t n : {piece, 3 * piece, 4 * piece + 5}) {  // one piece; 3 equal; 5 of sizes P and P+1
    CAPTURE(n);
    M batch(11), alone(11);
    batch.set_num_threads(1);
    const auto X = ctnn::randn<In>(n);
    const auto G = ctnn::randn<Shape<10>>(n);
    std::vector<float> out, in_grad;
    sample_by_sample(alone, X, std::vector<float>(G.data(), G.data() + G.numel()), out, in_grad);

    batch.set_input_requires_grad(true);
    const auto y = batch.forward(X);
    ctnn_test::check_close(values(y), out, 1e-5f, 1e-6f, "output");
    std::copy_n(G.data(), G.numel(), batch.output_grad().data());
    batch.backward();
    ctnn_test::check_close(values(batch.input_grad()), in_grad, 1e-4f, 1e-8f, "input grad");
    ctnn_test::check_close(all_grads(batch), all_grads(alone), 1e-4f, 1e-6f, "parameter grads");
  }
}

// ---- threads -----------------------------------------------------------------------------

TEST_CASE("a batch split across two threads gives the single-thread outputs, loss and gradients") {
  ctnn_test::LeNetModel one(7), two(7);  // the same seed: the same parameters
  one.set_num_threads(1);
  two.set_num_threads(2);
  CHECK(one.threads_for_batch(64) == 1);
  CHECK(two.threads_for_batch(64) == 2);
  CHECK(two.threads_for_batch(1) == 1);  // too little work to be worth a thread
  CHECK_THROWS_AS(two.set_num_threads(-1), std::invalid_argument);

  const std::size_t n = 37;  // slices of 18 and 19 samples
  auto X = ctnn::randn<Shape<1, 28, 28>>(n);
  std::vector<std::int64_t> y(n);
  for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<std::int64_t>((i * 7) % 10);
  nn::CrossEntropyLoss criterion;
  one.set_input_requires_grad(true);
  two.set_input_requires_grad(true);
  for (int pass = 0; pass < 2; ++pass) {  // the second backward accumulates into .grad
    const auto a = one.forward(X);
    const auto b = two.forward(X);
    ctnn_test::check_close(values(b), values(a), 1e-5f, 1e-6f, "output");
    const float la = one.backward(criterion, y);
    const float lb = two.backward(criterion, y);
    CHECK(lb == doctest::Approx(la).epsilon(1e-6));
    ctnn_test::check_close(values(two.input_grad()), values(one.input_grad()), 1e-4f, 1e-7f, "input grad");
    ctnn_test::check_close(all_grads(two), all_grads(one), 1e-4f, 1e-7f, "parameter grads");
  }
  // A smaller batch after a larger one reuses the slices' workspace.
  const auto a = one.forward(ctnn::ConstBatchView<Shape<1, 28, 28>>(X.data(), 20));
  const auto b = two.forward(ctnn::ConstBatchView<Shape<1, 28, 28>>(X.data(), 20));
  ctnn_test::check_close(values(b), values(a), 1e-5f, 1e-6f, "output of 20");
}

TEST_CASE("a two-thread training step allocates nothing after the first, and the model follows set_num_threads") {
  const int before_setting = ctnn::get_num_threads();
  ctnn::set_num_threads(2);
  ctnn_test::LeNetModel net(3);
  CHECK(net.num_threads() == 2);
  CHECK(net.threads_for_batch(32) == 2);
  auto X = ctnn::rand<Shape<1, 28, 28>>(32);
  std::vector<std::int64_t> y(32);
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
  CHECK(last < *first);
  ctnn::set_num_threads(1);
  CHECK(net.threads_for_batch(32) == 1);
  ctnn::set_num_threads(before_setting);
}

// ---- copies and ctnn::freeze ---------------------------------------------------------------

TEST_CASE("a Model copy (copy.deepcopy) has the same parameters and is independent of the original") {
  Model<SmallNet, Shape<4>> net(5);
  auto X = ctnn::randn<Shape<4>>(6);
  const auto before = net(X).to_vector();
  Model<SmallNet, Shape<4>> copy(net);
  ctnn_test::check_close(copy(X).to_vector(), before, 0.0f, 0.0f, "copy's output");
  nn::init::constant_(copy.get<0>().weight, 0.5f);
  ctnn_test::check_close(net(X).to_vector(), before, 0.0f, 0.0f, "original after the copy changed");
  Model<SmallNet, Shape<4>> moved(std::move(copy));
  CHECK(moved.get<0>().weight(3, 1) == 0.5f);
}

namespace {
// Linear layers with and without bias, K past one K block (300 = 256 + 44), a LazyLinear, and
// Linear acting on the last dimension of a [3, 20] sample (rows_per_sample = 3).
using WideNet = nn::Sequential<nn::Linear<20, 300>, nn::ReLU, nn::Linear<300, 40, false>, nn::Tanh, nn::LazyLinear<10>>;
using RowsNet = nn::Sequential<nn::Linear<20, 256>, nn::Sigmoid, nn::Linear<256, 10>>;

/// Spec's layer L is a Linear.
template <class Spec, class In, std::size_t L>
void check_frozen_matches(std::uint64_t seed) {
  Model<Spec, In> net(seed);
  net.set_num_threads(1);
  auto frozen = ctnn::freeze(net);
  frozen.set_num_threads(1);
  CHECK(frozen.template get<L>().prepacked());
  CHECK_FALSE(net.template get<L>().prepacked());
  for (const std::size_t n : {1u, 2u, 5u, 6u, 7u, 64u, 65u}) {
    CAPTURE(n);
    auto X = ctnn::randn<In>(n);
    ctnn_test::check_close(values(frozen.forward(X)), values(net.forward(X)), 1e-5f, 1e-6f, "frozen output");
  }
}
}  // namespace

TEST_CASE("ctnn::freeze gives the model's outputs at every batch size, its Linear weights packed once") {
  check_frozen_matches<nn::Sequential<nn::Linear<20, 256>, nn::ReLU, nn::Linear<256, 10>>, Shape<20>, 0>(1);
  check_frozen_matches<WideNet, Shape<20>, 2>(2);
  check_frozen_matches<RowsNet, Shape<3, 20>, 0>(3);
  check_frozen_matches<ctnn_test::LeNet, Shape<1, 28, 28>, 7>(4);
}

TEST_CASE("a frozen model is a snapshot: later changes to the model do not reach it, and it allocates nothing") {
  using MLP = nn::Sequential<nn::Linear<20, 256>, nn::ReLU, nn::Linear<256, 10>>;
  Model<MLP, Shape<20>> net(9);
  auto X = ctnn::randn<Shape<20>>(64);
  const auto x1 = ctnn::ConstBatchView<Shape<20>>(X.data(), 1);
  const auto before1 = net(x1).to_vector(), before64 = net(X).to_vector();
  auto frozen = ctnn::freeze(net);
  nn::init::constant_(net.get<0>().weight, 0.25f);  // the model moves on: training, loading, ...
  nn::init::constant_(net.get<0>().bias, -1.0f);
  CHECK(net(x1).to_vector() != before1);
  ctnn_test::check_close(frozen(x1).to_vector(), before1, 1e-5f, 1e-6f, "frozen, batch 1");
  ctnn_test::check_close(frozen(X).to_vector(), before64, 1e-5f, 1e-6f, "frozen, batch 64");
  CHECK(frozen.get<0>().weight(0, 0) != 0.25f);
  ctnn_test::check_close(ctnn::freeze(net)(X).to_vector(), net(X).to_vector(), 1e-5f, 1e-6f, "frozen again");

  frozen.reserve(64);
  const long allocations = ctnn_test::allocations();
  frozen.forward(x1);
  frozen.forward(X);
  CHECK(ctnn_test::allocations() == allocations);
}

TEST_CASE("a frozen model splits a batch across two threads as the model does") {
  ctnn_test::LeNetModel net(7);
  auto frozen = ctnn::freeze(net);
  frozen.set_num_threads(2);
  net.set_num_threads(1);
  CHECK(frozen.threads_for_batch(64) == 2);
  auto X = ctnn::randn<Shape<1, 28, 28>>(37);
  ctnn_test::check_close(values(frozen.forward(X)), values(net.forward(X)), 1e-5f, 1e-6f, "two threads");
}
