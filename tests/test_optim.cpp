// Losses (CrossEntropyLoss, MSELoss) and optimizers (SGD, Adam): against PyTorch-generated
// vectors (tools/gen_reference.py: cross_entropy, mse, sgd_trajectory, adam_trajectory),
// against central finite differences, and for their errors and allocations.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ctnn/ctnn.hpp>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "helpers.hpp"

namespace nn = ctnn::nn;
namespace optim = ctnn::optim;
using ctnn::Batch, ctnn::BatchView, ctnn::ConstBatchView, ctnn::Model, ctnn::Shape;
using ctnn_test::check_close, ctnn_test::load_reference, ctnn_test::reference_path, ctnn_test::RefTensor;

namespace {

using RefMap = std::map<std::string, RefTensor>;
using LinearNet = Model<nn::Sequential<nn::Linear<4, 3>>, Shape<4>>;

std::span<const float> values(const auto& b) { return {b.data(), b.numel()}; }

/// Class labels stored as integer-valued floats.
std::vector<std::int64_t> labels(const RefTensor& t) {
  std::vector<std::int64_t> out;
  for (float v : t.values) out.push_back(static_cast<std::int64_t>(v));
  return out;
}

template <class S>
Batch<S> batch_of(const RefTensor& t) {
  return Batch<S>(t.shape.at(0), t.values);
}

void copy_into(auto& tensor, const RefTensor& t) {
  REQUIRE(t.values.size() == tensor.numel());
  std::copy(t.values.begin(), t.values.end(), tensor.data());
}

/// Steps `opt` through the configuration `prefix` of a trajectory file and compares the
/// parameters after every step with PyTorch's.
template <class Opt>
void check_trajectory(const RefMap& ref, const std::string& prefix, Opt opt) {
  LinearNet net;
  auto& layer = net.get<0>();
  copy_into(layer.weight, ref.at(prefix + "0.weight"));
  copy_into(layer.bias, ref.at(prefix + "0.bias"));
  for (int t = 1; t <= 5; ++t) {
    const std::string step = std::to_string(t);
    copy_into(layer.weight.grad, ref.at(prefix + "grad_step" + step + ".0.weight"));
    copy_into(layer.bias.grad, ref.at(prefix + "grad_step" + step + ".0.bias"));
    opt.step(net);
    check_close(values(layer.weight), ref.at(prefix + "param_step" + step + ".0.weight").values, 1e-5f, 1e-6f,
                prefix + "weight after step " + step);
    check_close(values(layer.bias), ref.at(prefix + "param_step" + step + ".0.bias").values, 1e-5f, 1e-6f,
                prefix + "bias after step " + step);
  }
  CHECK(opt.state.steps == 5);
}

/// Central differences of a float loss, in double: (L(x + h) - L(x - h)) / (x+h - (x-h)).
template <class Loss>
std::vector<double> finite_differences(float* x, std::size_t n, Loss loss, float h) {
  std::vector<double> g(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float x0 = x[i];
    const float xp = x0 + h, xm = x0 - h;
    x[i] = xp;
    const double lp = loss();
    x[i] = xm;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (static_cast<double>(xp) - static_cast<double>(xm));
  }
  return g;
}

void check_against_fd(std::span<const float> analytic, const std::vector<double>& fd, const char* what) {
  REQUIRE(analytic.size() == fd.size());
  for (std::size_t i = 0; i < fd.size(); ++i) {
    INFO(what << " element " << i << ": analytic " << analytic[i] << ", finite difference " << fd[i]);
    CHECK(std::fabs(analytic[i] - fd[i]) <= 1e-3 * std::fabs(fd[i]) + 1e-4);
  }
}

}  // namespace

// ---- CrossEntropyLoss ------------------------------------------------------------------------

TEST_CASE("CrossEntropyLoss matches PyTorch's loss and dlogits for [6, 5] and [32, 10] logits") {
  const auto ref = load_reference(reference_path("cross_entropy.txt"));
  nn::CrossEntropyLoss loss;
  {
    const auto logits = batch_of<Shape<5>>(ref.at("logits"));
    const auto target = labels(ref.at("target"));
    Batch<Shape<5>> d(6);
    CHECK(loss(logits, target) == doctest::Approx(ref.at("loss").values[0]).epsilon(1e-6));
    CHECK(loss.backward(logits, target, d) == doctest::Approx(ref.at("loss").values[0]).epsilon(1e-6));
    check_close(values(d), ref.at("dlogits").values, 1e-5f, 1e-6f, "dlogits [6, 5]");
  }
  {
    const auto logits = batch_of<Shape<10>>(ref.at("c10_logits"));
    const auto target = labels(ref.at("c10_target"));
    Batch<Shape<10>> d(32);
    // The span/view signature, with int targets.
    const std::vector<int> target32(target.begin(), target.end());
    const float l = loss.backward(logits.view(), std::span<const int>(target32), d.view());
    CHECK(l == doctest::Approx(ref.at("c10_loss").values[0]).epsilon(1e-6));
    CHECK(loss(logits.view(), std::span<const int>(target32)) == l);
    check_close(values(d), ref.at("c10_dlogits").values, 1e-5f, 1e-6f, "dlogits [32, 10]");
  }
}

TEST_CASE("CrossEntropyLoss is finite and matches PyTorch for logits of +-1e4") {
  const auto ref = load_reference(reference_path("cross_entropy.txt"));
  const auto logits = batch_of<Shape<5>>(ref.at("big_logits"));
  const auto target = labels(ref.at("big_target"));
  Batch<Shape<5>> d(4);
  const float l = nn::CrossEntropyLoss{}.backward(logits, target, d);
  CHECK(std::isfinite(l));
  CHECK(l == doctest::Approx(ref.at("big_loss").values[0]).epsilon(1e-6));
  for (float v : d) CHECK(std::isfinite(v));
  check_close(values(d), ref.at("big_dlogits").values, 1e-5f, 1e-6f, "dlogits at +-1e4");

  Batch<Shape<3>> huge(1, std::vector<float>{3e38f, -3e38f, 0.0f});  // still finite
  CHECK(nn::CrossEntropyLoss{}(huge, std::vector<std::int64_t>{0}) == 0.0f);
  CHECK(nn::CrossEntropyLoss{}(huge, std::vector<std::int64_t>{2}) == doctest::Approx(3e38));
}

TEST_CASE("CrossEntropyLoss gradient matches central finite differences") {
  const auto ref = load_reference(reference_path("cross_entropy.txt"));
  auto logits = batch_of<Shape<5>>(ref.at("logits"));
  const auto target = labels(ref.at("target"));
  nn::CrossEntropyLoss loss;
  Batch<Shape<5>> d(6);
  loss.backward(logits, target, d);
  const auto fd =
      finite_differences(logits.data(), logits.numel(), [&] { return double(loss(logits, target)); }, 1e-2f);
  check_against_fd(values(d), fd, "CrossEntropyLoss");
}

TEST_CASE("CrossEntropyLoss backward may overwrite the logits in place") {
  const auto ref = load_reference(reference_path("cross_entropy.txt"));
  auto logits = batch_of<Shape<5>>(ref.at("logits"));
  const float l = nn::CrossEntropyLoss{}.backward(logits, labels(ref.at("target")), logits);
  CHECK(l == doctest::Approx(ref.at("loss").values[0]).epsilon(1e-6));
  check_close(values(logits), ref.at("dlogits").values, 1e-5f, 1e-6f, "in-place dlogits");
}

TEST_CASE("CrossEntropyLoss rejects out-of-range targets, a wrong target count and an empty batch") {
  nn::CrossEntropyLoss loss;
  Batch<Shape<4>> x(3);
  Batch<Shape<4>> d(3);
  const std::vector<std::int64_t> too_big{0, 1, 4}, negative{-1, 0, 0}, too_few{0, 1};
  CHECK_THROWS_WITH_AS(loss(x, too_big), doctest::Contains("target[2] = 4 is out of range for 4 classes"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(loss.backward(x, negative, d), doctest::Contains("target[0] = -1 is out of range"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(loss(x, too_few), doctest::Contains("2 targets for a batch of 3 samples"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(loss.backward(x, too_few, d), doctest::Contains("2 targets for a batch of 3 samples"),
                       std::invalid_argument);
  const std::vector<unsigned> unsigned_big{0, 9, 0};
  CHECK_THROWS_WITH_AS(loss(x, unsigned_big), doctest::Contains("target[1] = 9"), std::invalid_argument);
  Batch<Shape<4>> empty;
  CHECK_THROWS_AS(loss(empty, std::vector<std::int64_t>{}), std::invalid_argument);
  Batch<Shape<4>> d2(2);
  CHECK_THROWS_AS(loss.backward(x, std::vector<std::int64_t>{0, 0, 0}, d2), std::invalid_argument);
}

// ---- MSELoss ---------------------------------------------------------------------------------

TEST_CASE("MSELoss matches PyTorch's loss and gradient for [4, 3, 2]") {
  const auto ref = load_reference(reference_path("mse.txt"));
  const auto x = batch_of<Shape<3, 2>>(ref.at("input"));
  const auto t = batch_of<Shape<3, 2>>(ref.at("target"));
  nn::MSELoss loss;
  Batch<Shape<3, 2>> d(4);
  CHECK(loss(x, t) == doctest::Approx(ref.at("loss").values[0]).epsilon(1e-6));
  CHECK(loss.backward(x.view(), t.view(), d.view()) == doctest::Approx(ref.at("loss").values[0]).epsilon(1e-6));
  check_close(values(d), ref.at("dinput").values, 1e-5f, 1e-6f, "dinput");
}

TEST_CASE("MSELoss gradient matches central finite differences") {
  const auto ref = load_reference(reference_path("mse.txt"));
  auto x = batch_of<Shape<3, 2>>(ref.at("input"));
  const auto t = batch_of<Shape<3, 2>>(ref.at("target"));
  nn::MSELoss loss;
  Batch<Shape<3, 2>> d(4);
  loss.backward(x, t, d);
  const auto fd = finite_differences(x.data(), x.numel(), [&] { return double(loss(x, t)); }, 1e-2f);
  check_against_fd(values(d), fd, "MSELoss");

  // A long batch (vector loop, blocks and tail): the mean of a constant difference of 0.5.
  Batch<Shape<7>> a(301), b(301), g(301);
  std::fill(a.begin(), a.end(), 1.5f);
  std::fill(b.begin(), b.end(), 1.0f);
  CHECK(loss.backward(a, b, g) == doctest::Approx(0.25));
  for (float v : g) CHECK(v == doctest::Approx(2.0 * 0.5 / (301 * 7)));
}

TEST_CASE("MSELoss rejects batches of different sizes") {
  nn::MSELoss loss;
  Batch<Shape<3>> x(2), t(3), d(3);
  CHECK_THROWS_WITH_AS(loss(x, t), doctest::Contains("target has 3 samples, input has 2"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(loss.backward(t, t, x), doctest::Contains("dinput has 2 samples, input has 3"),
                       std::invalid_argument);
  Batch<Shape<3>> empty;
  CHECK_THROWS_AS(loss(empty, empty), std::invalid_argument);
}

TEST_CASE("CrossEntropyLoss and MSELoss allocate nothing") {
  Batch<Shape<10>> x(32), d(32);
  ctnn::randn_(x);
  const std::vector<std::int64_t> target(32, 3);
  const long before = ctnn_test::allocations();
  const float ce = nn::CrossEntropyLoss{}.backward(x, target, d);
  const float mse = nn::MSELoss{}.backward(x, d, d);
  CHECK(ctnn_test::allocations() == before);
  CHECK(std::isfinite(ce));
  CHECK(std::isfinite(mse));
}

// ---- SGD -------------------------------------------------------------------------------------

TEST_CASE("SGD matches PyTorch's trajectory: plain, momentum, dampening + weight decay, nesterov") {
  const auto ref = load_reference(reference_path("sgd_trajectory.txt"));
  SUBCASE("lr 0.1") { check_trajectory(ref, "plain_", optim::SGD{.lr = 0.1f}); }
  SUBCASE("momentum 0.9") { check_trajectory(ref, "momentum_", optim::SGD{.lr = 0.1f, .momentum = 0.9f}); }
  SUBCASE("momentum 0.9, dampening 0.1, weight_decay 0.01") {
    check_trajectory(ref, "damp_wd_",
                     optim::SGD{.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .weight_decay = 0.01f});
  }
  SUBCASE("nesterov, momentum 0.9, weight_decay 0.01") {
    check_trajectory(
        ref, "nesterov_",
        optim::SGD{.lr = 0.1f, .momentum = 0.9f, .dampening = 0.0f, .weight_decay = 0.01f, .nesterov = true});
  }
}

TEST_CASE("SGD rejects torch's invalid options at the first step") {
  LinearNet net;
  auto rejects = [&](optim::SGD opt, const char* msg) {
    CHECK_THROWS_WITH_AS(opt.step(net), doctest::Contains(msg), std::invalid_argument);
  };
  rejects({.lr = -0.1f}, "invalid learning rate");
  rejects({.lr = 0.1f, .momentum = -0.5f}, "invalid momentum");
  rejects({.lr = 0.1f, .weight_decay = -1e-4f}, "invalid weight_decay");
  rejects({.lr = 0.1f, .nesterov = true}, "Nesterov momentum requires a momentum and zero dampening");
  rejects({.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .nesterov = true}, "Nesterov momentum requires");
}

// ---- Adam ------------------------------------------------------------------------------------

TEST_CASE("Adam matches PyTorch's trajectory: defaults, and lr 0.01 betas (0.8, 0.99) eps 1e-6 weight_decay 0.1") {
  const auto ref = load_reference(reference_path("adam_trajectory.txt"));
  SUBCASE("defaults") { check_trajectory(ref, "default_", optim::Adam{}); }
  SUBCASE("custom") {
    check_trajectory(ref, "custom_",
                     optim::Adam{.lr = 0.01f, .betas = {0.8f, 0.99f}, .eps = 1e-6f, .weight_decay = 0.1f});
  }
}

TEST_CASE("Adam rejects torch's invalid options at the first step") {
  LinearNet net;
  auto rejects = [&](optim::Adam opt, const char* msg) {
    CHECK_THROWS_WITH_AS(opt.step(net), doctest::Contains(msg), std::invalid_argument);
  };
  rejects({.lr = -1e-3f}, "invalid learning rate");
  rejects({.lr = std::numeric_limits<float>::quiet_NaN()}, "invalid learning rate");
  rejects({.betas = {1.0f, 0.999f}}, "invalid beta parameter at index 0");
  rejects({.betas = {0.9f, -0.1f}}, "invalid beta parameter at index 1");
  rejects({.eps = -1e-8f}, "invalid epsilon");
  rejects({.weight_decay = -0.1f}, "invalid weight_decay");
}

// ---- Both ------------------------------------------------------------------------------------

TEST_CASE("SGD and Adam allocate nothing after the first step") {
  LinearNet net;
  auto check_no_allocation = [&](auto opt, const char* what) {
    INFO(what);
    ctnn::randn_(net.get<0>().weight.grad);
    // The first step allocates the optimizer's state; the two after it see zero gradients.
    auto step = [&] {
      opt.step(net);
      opt.zero_grad(net);
    };
    CHECK(ctnn_test::steady_state_allocations(step, 2) == 0);
  };
  check_no_allocation(optim::SGD{.lr = 0.1f}, "SGD");
  check_no_allocation(
      optim::SGD{.lr = 0.1f, .momentum = 0.9f, .dampening = 0.0f, .weight_decay = 1e-4f, .nesterov = true},
      "SGD nesterov");
  check_no_allocation(optim::Adam{.lr = 1e-3f, .betas = {0.9f, 0.999f}, .eps = 1e-8f, .weight_decay = 0.0f}, "Adam");
}

TEST_CASE("SGD and Adam throw when a later step sees other parameters than the first") {
  LinearNet net;
  Model<nn::Sequential<nn::Linear<4, 2>>, Shape<4>> narrower;
  Model<nn::Sequential<nn::Linear<4, 3>, nn::ReLU, nn::Linear<3, 1>>, Shape<4>> deeper;
  optim::SGD sgd{.lr = 0.1f, .momentum = 0.9f};
  sgd.step(net);
  CHECK_THROWS_WITH_AS(sgd.step(narrower), doctest::Contains("parameter 0 has 8 elements, it had 12"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sgd.step(deeper), doctest::Contains("it has 4 parameters, the first step had 2"),
                       std::invalid_argument);
  optim::Adam adam;
  adam.step(deeper);
  CHECK_THROWS_AS(adam.step(net), std::invalid_argument);
  CHECK(adam.state.steps == 1);
}

TEST_CASE("optimizer zero_grad zeroes every gradient of the model") {
  LinearNet net;
  ctnn::randn_(net.get<0>().weight.grad);
  ctnn::randn_(net.get<0>().bias.grad);
  optim::Adam{}.zero_grad(net);
  for (float g : net.get<0>().weight.grad) CHECK(g == 0.0f);
  for (float g : net.get<0>().bias.grad) CHECK(g == 0.0f);
}

TEST_CASE("SGD with zero gradients and no weight decay leaves the parameters unchanged") {
  LinearNet net;
  const auto before = net.get<0>().weight.to_vector();
  optim::SGD opt{.lr = 0.5f, .momentum = 0.9f};
  opt.zero_grad(net);
  opt.step(net);
  CHECK(net.get<0>().weight.to_vector() == before);
}

TEST_CASE("with 2 threads, zero_grad and the optimizers' steps split each parameter and give 1 thread's values") {
  // Over detail::parallel_parameter_floats parameters, a Model with 2 threads runs these passes
  // on both, each on part of every parameter: the same elementwise arithmetic, so the same bits.
  // 1000 x 1049 weights: a size that is no multiple of 16, so one thread's part ends in a tail.
  using Big = Model<nn::Sequential<nn::Linear<1000, 1049>>, Shape<1000>>;
  static_assert(Big::parameter_count >= ctnn::detail::parallel_parameter_floats);
  Big one(4), two(4);
  one.set_num_threads(1);
  two.set_num_threads(2);
  CHECK(one.elementwise_threads() == 1);
  CHECK(two.elementwise_threads() == 2);
  CHECK(LinearNet().elementwise_threads() == 1);  // too few parameters to be worth a thread
  const auto fill_grads = [](Big& net, std::uint64_t seed) {
    ctnn::Generator gen(seed);
    ctnn::randn_(net.get<0>().weight.grad, gen);
    ctnn::randn_(net.get<0>().bias.grad, gen);
  };
  const auto same = [&](const char* what) {
    CHECK_MESSAGE(one.get<0>().weight.to_vector() == two.get<0>().weight.to_vector(), what);
    CHECK_MESSAGE(one.get<0>().bias.to_vector() == two.get<0>().bias.to_vector(), what);
  };
  SUBCASE("zero_grad") {
    fill_grads(two, 1);
    two.zero_grad();
    const auto zero = [](float g) { return g == 0.0f; };
    CHECK(std::all_of(two.get<0>().weight.grad.begin(), two.get<0>().weight.grad.end(), zero));
    CHECK(std::all_of(two.get<0>().bias.grad.begin(), two.get<0>().bias.grad.end(), zero));
  }
  const auto three_steps = [&](auto a, std::uint64_t seed, const char* what) {  // a on one, its copy on two
    auto b = a;
    for (std::uint64_t s = 0; s < 3; ++s) {
      fill_grads(one, seed + s);
      fill_grads(two, seed + s);
      a.step(one);
      b.step(two);
      same(what);
    }
  };
  SUBCASE("SGD with momentum, weight decay and nesterov") {
    three_steps(optim::SGD{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = true}, 10, "SGD step");
  }
  SUBCASE("Adam") { three_steps(optim::Adam{.lr = 0.01f, .weight_decay = 0.1f}, 20, "Adam step"); }
}
