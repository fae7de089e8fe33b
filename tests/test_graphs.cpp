// BatchNorm, Dropout, Residual, Concat and train/eval modes: against PyTorch (reference vectors
// from tools/gen_reference.py's "BatchNorm, Residual, Concat" cases: forward and every gradient
// in training and evaluation mode, running statistics, 3 SGD steps), finite differences, 2 threads
// against 1, ctnn::freeze's folding against the unfolded evaluation forward, and PyTorch-written
// safetensors with BatchNorm buffers.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <ctnn/ctnn.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "helpers.hpp"
#include "reference.hpp"

namespace nn = ctnn::nn;
using ctnn::Batch;
using ctnn::Model;
using ctnn::Shape;
using namespace ctnn::literals;

namespace {

using RefMap = std::map<std::string, ctnn_test::RefTensor>;

/// The reference file's state_dict keys: everything that is not an input, output or gradient.
std::set<std::string> reference_state_keys(const RefMap& ref) {
  std::set<std::string> keys;
  for (const auto& [k, v] : ref) {
    const bool extra = k == "input" || k.rfind("train.", 0) == 0 || k.rfind("eval.", 0) == 0 || k.rfind("sgd.", 0) == 0;
    if (!extra) keys.insert(k);
  }
  return keys;
}

/// The model's state_dict (parameters and buffers) against the reference's `prefix + key`.
template <class M>
void check_state(const M& net, const RefMap& ref, const std::string& prefix, float rtol, float atol) {
  for (const auto& [name, t] : net.state_dict()) {
    const auto it = ref.find(prefix + name);
    REQUIRE_MESSAGE(it != ref.end(), "reference has no " << prefix + name);
    const auto got = t.to_vector();
    ctnn_test::check_close(got, it->second.values, rtol, atol, prefix + name);
  }
}
template <class M>
void check_buffers(const M& net, const RefMap& ref, const std::string& prefix) {
  for (const auto& [name, t] : net.named_buffers()) {
    const auto it = ref.find(prefix + name);
    REQUIRE_MESSAGE(it != ref.end(), "reference has no " << prefix + name);
    ctnn_test::check_close(t.to_vector(), it->second.values, 1e-5f, 1e-6f, prefix + name);
  }
}

/// forward on the reference input, backward with its dy: output, every parameter's gradient and
/// the input's, under `mode` ("train" or "eval").
template <class M>
void check_mode(M net, const RefMap& ref, const std::string& mode, float rtol) {
  using In = typename M::input_shape_type;
  if (mode == "eval") net.eval();
  REQUIRE(net.training() == (mode == "train"));
  const auto& x = ref.at("input");
  Batch<In> X(x.shape[0], x.values);
  const auto Y = net.forward(X);
  ctnn_test::check_close({Y.data(), Y.numel()}, ref.at(mode + ".output").values, rtol, 1e-5f, mode + ".output");
  const auto& dy = ref.at(mode + ".dy").values;
  REQUIRE(dy.size() == Y.numel());
  std::copy(dy.begin(), dy.end(), net.output_grad().begin());
  net.set_input_requires_grad(true);
  net.zero_grad();
  net.backward();
  // atol 3e-5: a conv's bias before a training-mode BatchNorm has a gradient of exactly zero in
  // exact arithmetic (the batch mean takes the bias out); both sides are then the rounding of a sum
  // of terms of order 1 (50 in residual_nested), whose order depends on the vector width (1.2e-5
  // apart with SSE)
  std::size_t params = 0;
  for (const auto& [name, p] : net.named_parameters()) {
    ctnn_test::check_close(p.grad.to_vector(), ref.at(mode + ".grad." + name).values, rtol, 3e-5f,
                           mode + ".grad." + name);
    ++params;
  }
  std::size_t reference_params = 0;  // PyTorch's parameters with a gradient: the same ones
  for (const auto& [k, v] : ref) reference_params += k.rfind(mode + ".grad.", 0) == 0 && k != mode + ".grad.input";
  CHECK(params == reference_params);
  const auto dx = net.input_grad();
  ctnn_test::check_close({dx.data(), dx.numel()}, ref.at(mode + ".grad.input").values, rtol, 1e-5f,
                         mode + ".grad.input");
  if (mode == "train") check_buffers(net, ref, "train.after.");
}

/// 3 SGD steps (lr 0.1) in training mode on L = sum(dy_k * net(x_k)): every parameter and buffer.
template <class M>
void check_sgd(M net, const RefMap& ref, float rtol) {
  using In = typename M::input_shape_type;
  ctnn::optim::SGD opt{.lr = 0.1f};
  for (int k = 0; k < 3; ++k) {
    const auto& x = ref.at("sgd.input." + std::to_string(k));
    Batch<In> X(x.shape[0], x.values);
    net.zero_grad();
    const auto Y = net.forward(X);
    const auto& dy = ref.at("sgd.dy." + std::to_string(k)).values;
    REQUIRE(dy.size() == Y.numel());
    std::copy(dy.begin(), dy.end(), net.output_grad().begin());
    net.backward();
    opt.step(net);
  }
  check_state(net, ref, "sgd.", rtol, 1e-5f);
}

/// The whole PyTorch comparison of one reference case.
template <class Net, class In>
void check_against_pytorch(const std::string& file, float rtol = 1e-4f) {
  const auto ref = ctnn_test::load_reference(ctnn_test::reference_path(file));
  Model<Net, In> net(7);
  std::set<std::string> keys;
  for (const auto& [name, t] : net.state_dict()) keys.insert(name);
  CHECK(keys == reference_state_keys(ref));  // PyTorch's state_dict keys, buffers included
  ctnn_test::load_parameters(net, ref);
  SUBCASE("training mode") { check_mode(net, ref, "train", rtol); }
  SUBCASE("evaluation mode") { check_mode(net, ref, "eval", rtol); }
  SUBCASE("3 SGD steps") { check_sgd(net, ref, rtol); }
}

// ---- The networks of the reference cases (tools/gen_reference.py) ----------------------------

using BN2dConvReLU =
    nn::Sequential<nn::Conv2d<{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1, .bias = false}>,
                   nn::BatchNorm2d<{.num_features = 4}>, nn::ReLU>;
using BN1dLinear = nn::Sequential<nn::Linear<6, 5>, nn::BatchNorm1d<{.num_features = 5}>, nn::ReLU, nn::Linear<5, 3>>;
using BN1dNCL = nn::Sequential<nn::BatchNorm1d<{.num_features = 4}>>;
using BN2dNoAffine = nn::Sequential<nn::Conv2d<{.in_channels = 2, .out_channels = 3, .kernel_size = 3}>,
                                    nn::BatchNorm2d<{.num_features = 3, .affine = false}>>;
using BN2dNoTrack = nn::Sequential<nn::Conv2d<{.in_channels = 2, .out_channels = 3, .kernel_size = 3}>,
                                   nn::BatchNorm2d<{.num_features = 3, .track_running_stats = false}>, nn::Sigmoid>;
using BN2dOptions = nn::Sequential<nn::Conv2d<{.in_channels = 2, .out_channels = 3, .kernel_size = 3}>,
                                   nn::BatchNorm2d<{.num_features = 3, .eps = 1e-3f, .momentum = 0.3f}>>;
using BNLazy = nn::Sequential<nn::LazyConv2d<{.out_channels = 4, .kernel_size = 3, .padding = 1}>,
                              nn::LazyBatchNorm2d<>, nn::ReLU, nn::Flatten, nn::LazyLinear<6>, nn::LazyBatchNorm1d<>>;

template <std::size_t C, std::size_t S = 1>
using Conv3 = nn::LazyConv2d<{.out_channels = C, .kernel_size = 3, .stride = S, .padding = 1}>;
template <std::size_t C, std::size_t S = 1>
using Conv1 = nn::LazyConv2d<{.out_channels = C, .kernel_size = 1, .stride = S}>;
using ResidualIdentity = nn::Sequential<
    nn::Residual<nn::Sequential<Conv3<4>, nn::LazyBatchNorm2d<>, nn::ReLU, Conv3<4>, nn::LazyBatchNorm2d<>>>, nn::ReLU>;
using ResidualConv1x1 = nn::Sequential<
    nn::Residual<nn::Sequential<Conv3<6, 2>, nn::LazyBatchNorm2d<>, nn::ReLU, Conv3<6>, nn::LazyBatchNorm2d<>>,
                 Conv1<6, 2>>,
    nn::ReLU>;
using ResidualNested = nn::Sequential<
    nn::Residual<nn::Sequential<Conv3<3>, nn::LazyBatchNorm2d<>, nn::ReLU,
                                nn::Residual<nn::Sequential<Conv1<3>, nn::LazyBatchNorm2d<>>>, nn::ReLU>>>;
/// D2L's Inception(c1 = 2, c2 = (2, 3), c3 = (1, 2), c4 = 2).
using Inception = nn::Sequential<nn::Concat<
    nn::Sequential<Conv1<2>, nn::ReLU>, nn::Sequential<Conv1<2>, nn::ReLU, Conv3<3>, nn::ReLU>,
    nn::Sequential<Conv1<1>, nn::ReLU, nn::LazyConv2d<{.out_channels = 2, .kernel_size = 5, .padding = 2}>, nn::ReLU>,
    nn::Sequential<nn::MaxPool2d<{.kernel_size = 3, .stride = 1, .padding = 1}>, Conv1<2>, nn::ReLU>>>;
/// D2L's DenseBlock of two conv_blocks (BN, ReLU, 3x3 conv), growth 2.
using ConvBlock = nn::Sequential<nn::LazyBatchNorm2d<>, nn::ReLU, Conv3<2>>;
using DenseBlock = nn::Sequential<nn::Concat<nn::Identity, ConvBlock>, nn::Concat<nn::Identity, ConvBlock>>;

/// A custom block holding a Conv2d and a BatchNorm2d that reads the mode in its forward.
template <class In>
struct BNBlock : nn::Block<BNBlock<In>> {
  nn::Layer<nn::Conv2d<{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .padding = 1}>, In> conv;
  nn::Layer<nn::BatchNorm2d<{.num_features = 3}>, nn::output_t<decltype(conv)>> bn;
  CTNN_MEMBERS(conv, bn)
  auto forward(auto X) {
    const float s = this->training() ? 0.5f : 1.0f;  // PyTorch: 0.5 if self.training else 1.0
    return relu(bn(conv(X))) * s;
  }
};
using BlockWithBN = nn::Sequential<nn::block<BNBlock>>;

}  // namespace

// ---- Against PyTorch ---------------------------------------------------------------------------

TEST_CASE("BatchNorm2d after a bias-free conv, ReLU fused: PyTorch in both modes and after SGD") {
  check_against_pytorch<BN2dConvReLU, Shape<3, 6, 6>>("bn2d_conv_relu.txt");
}
TEST_CASE("BatchNorm1d on [N, C] between Linears") { check_against_pytorch<BN1dLinear, Shape<6>>("bn1d_linear.txt"); }
TEST_CASE("BatchNorm1d on [N, C, L]") { check_against_pytorch<BN1dNCL, Shape<4, 5>>("bn1d_ncl.txt"); }
TEST_CASE("BatchNorm2d with affine = false") {
  check_against_pytorch<BN2dNoAffine, Shape<2, 5, 5>>("bn2d_no_affine.txt");
}
TEST_CASE("BatchNorm2d with track_running_stats = false: batch statistics in both modes, no buffers") {
  check_against_pytorch<BN2dNoTrack, Shape<2, 5, 5>>("bn2d_no_track.txt");
}
TEST_CASE("BatchNorm2d with eps = 1e-3, momentum = 0.3") {
  check_against_pytorch<BN2dOptions, Shape<2, 5, 5>>("bn2d_options.txt");
}
TEST_CASE("LazyBatchNorm2d and LazyBatchNorm1d infer num_features") {
  check_against_pytorch<BNLazy, Shape<2, 5, 5>>("bn_lazy.txt");
}
TEST_CASE("Residual with an identity shortcut (D2L's Residual, use_1x1conv = False)") {
  check_against_pytorch<ResidualIdentity, Shape<4, 6, 6>>("residual_identity.txt");
}
TEST_CASE("Residual with a strided 1x1-conv shortcut") {
  check_against_pytorch<ResidualConv1x1, Shape<4, 7, 7>>("residual_conv1x1.txt");
}
TEST_CASE("Residual nested in a Sequential inside a Residual") {
  check_against_pytorch<ResidualNested, Shape<3, 5, 5>>("residual_nested.txt");
}
TEST_CASE("Concat of 4 branches: D2L's Inception block") {
  check_against_pytorch<Inception, Shape<3, 6, 6>>("concat_inception.txt");
}
TEST_CASE("Concat with an Identity branch: D2L's dense block") {
  check_against_pytorch<DenseBlock, Shape<3, 5, 5>>("concat_dense.txt");
}
TEST_CASE("a custom block holding a BatchNorm and reading the mode") {
  check_against_pytorch<BlockWithBN, Shape<2, 5, 5>>("block_with_bn.txt");
}

// ---- Finite differences ------------------------------------------------------------------------

namespace {
// The gradchecks use smooth activations (Tanh): after a BatchNorm about half the values sit near
// ReLU's kink, where a central difference of step 1e-2 averages two slopes.
using ResidualSmooth = nn::Sequential<
    nn::Residual<nn::Sequential<Conv3<6, 2>, nn::LazyBatchNorm2d<>, nn::Tanh, Conv3<6>, nn::LazyBatchNorm2d<>>,
                 Conv1<6, 2>>,
    nn::Tanh, nn::Residual<nn::Sequential<Conv3<6>, nn::LazyBatchNorm2d<>>>>;
using InceptionSmooth = nn::Sequential<
    nn::Concat<nn::Sequential<Conv1<2>, nn::Tanh>, nn::Sequential<Conv1<2>, nn::Tanh, Conv3<3>, nn::Tanh>,
               nn::Sequential<nn::AvgPool2d<{.kernel_size = 3, .stride = 1, .padding = 1}>, Conv1<2>, nn::Tanh>>>;
using DenseSmooth = nn::Sequential<nn::Concat<nn::Identity, nn::Sequential<nn::LazyBatchNorm2d<>, nn::Tanh, Conv3<2>>>,
                                   nn::Concat<nn::Identity, nn::Sequential<nn::LazyBatchNorm2d<>, nn::Tanh, Conv3<2>>>>;
using BN1dSmooth = nn::Sequential<nn::Linear<6, 5>, nn::BatchNorm1d<{.num_features = 5}>, nn::Tanh, nn::Linear<5, 3>>;
}  // namespace

TEST_CASE("finite-difference gradients through BatchNorm (both modes), Residual and Concat") {
  ctnn_test::GradCheckOptions opt;
  auto X = ctnn::rand<Shape<3, 5, 5>>(3);
  SUBCASE("residual blocks with BatchNorm, training mode") {
    // Batch statistics over 3 samples of 3 x 3 make the loss strongly curved in each weight: a
    // smaller step (the central difference's error is O(step^2)) and more samples.
    Model<ResidualSmooth, Shape<3, 5, 5>> net(11);
    auto X6 = ctnn::rand<Shape<3, 5, 5>>(6);
    ctnn_test::GradCheckOptions fine = opt;
    fine.step = 4e-3f;
    CHECK(ctnn_test::gradcheck(net, X6, fine) == 0);
  }
  SUBCASE("residual blocks with BatchNorm, evaluation mode") {
    Model<ResidualSmooth, Shape<3, 5, 5>> net(12);
    net.eval();
    CHECK(ctnn_test::gradcheck(net, X, opt) == 0);
  }
  SUBCASE("Inception-like Concat of three branches") {
    Model<InceptionSmooth, Shape<3, 5, 5>> net(13);
    CHECK(ctnn_test::gradcheck(net, X, opt) == 0);
  }
  SUBCASE("dense block (Concat with an Identity branch), training mode") {
    Model<DenseSmooth, Shape<3, 5, 5>> net(14);
    CHECK(ctnn_test::gradcheck(net, X, opt) == 0);
  }
  SUBCASE("BatchNorm1d on [N, C], training mode") {
    Model<BN1dSmooth, Shape<6>> net(15);
    auto X1 = ctnn::rand<Shape<6>>(5);
    CHECK(ctnn_test::gradcheck(net, X1, opt) == 0);
  }
}

// ---- Threads: statistics over the whole batch ---------------------------------------------------

namespace {
/// One training forward + backward of `net` on X with T threads.
struct StepResult {
  std::vector<float> y, dx;
  std::vector<std::vector<float>> grads, buffers;  // named_parameters' .grad, named_buffers
};
template <class M, class X>
StepResult step_with_threads(M net, const X& x, int T) {
  net.set_num_threads(T);
  net.set_input_requires_grad(true);
  net.zero_grad();
  const auto Y = net.forward(x);
  StepResult r{{Y.data(), Y.data() + Y.numel()}, {}, {}, {}};
  ctnn::Generator gen(3);
  for (auto& g : net.output_grad()) g = gen.normal();
  net.backward();
  r.dx.assign(net.input_grad().begin(), net.input_grad().end());
  for (const auto& [name, p] : net.named_parameters()) r.grads.push_back(p.grad.to_vector());
  for (const auto& [name, b] : net.named_buffers()) r.buffers.push_back(b.to_vector());
  return r;
}
/// 2 threads against 1: the output, dL/dx and the running statistics bit for bit (they come from
/// the same whole-batch sums, added in the same order); the parameter gradients, which each
/// slice sums over its own samples, to float summation order: 1e-4 of each value plus 1e-4 of the
/// largest gradient of the network (a conv bias before a BatchNorm has a gradient that is zero
/// up to rounding, so its own scale is noise).
void check_same_step(const StepResult& one, const StepResult& two) {
  CHECK(one.y == two.y);
  CHECK(one.dx == two.dx);
  REQUIRE(one.buffers.size() == two.buffers.size());
  for (std::size_t i = 0; i < one.buffers.size(); ++i) CHECK_MESSAGE(one.buffers[i] == two.buffers[i], "buffer " << i);
  REQUIRE(one.grads.size() == two.grads.size());
  float largest = 0.0f;
  for (const auto& g : one.grads)
    for (float v : g) largest = std::max(largest, std::fabs(v));
  for (std::size_t i = 0; i < one.grads.size(); ++i)
    ctnn_test::check_close(two.grads[i], one.grads[i], 1e-4f, 1e-4f * largest, "gradient " + std::to_string(i));
}
}  // namespace

TEST_CASE("BatchNorm's statistics are the whole batch's: 2 threads give 1 thread's numbers") {
  SUBCASE("residual block, odd batch") {
    Model<ResidualConv1x1, Shape<4, 7, 7>> net(21);
    auto X = ctnn::rand<Shape<4, 7, 7>>(61);
    net.set_num_threads(2);
    REQUIRE(net.threads_for_batch(61) == 2);
    check_same_step(step_with_threads(net, X, 1), step_with_threads(net, X, 2));
  }
  SUBCASE("custom block with BatchNorm, Dropout after it") {
    using Net = nn::Sequential<nn::block<BNBlock>, nn::Dropout<0.25f>, nn::Flatten, nn::LazyLinear<4>>;
    Model<Net, Shape<2, 5, 5>> net(22);
    auto X = ctnn::rand<Shape<2, 5, 5>>(201);
    net.set_num_threads(2);
    REQUIRE(net.threads_for_batch(201) == 2);
    check_same_step(step_with_threads(net, X, 1), step_with_threads(net, X, 2));
  }
  // BatchNorm's scratch is the network's (16 channels: no rounding room after it): its backward's
  // sums once ran C floats past it (into the next slice's scratch with 2 threads; ASan's heap
  // overflow with 1).
  SUBCASE("a network whose largest scratch is BatchNorm's, with dL/dx through it") {
    using Net = nn::Sequential<nn::Tanh, nn::BatchNorm1d<{.num_features = 16}>>;
    Model<Net, Shape<16>> net(23);
    auto X = ctnn::rand<Shape<16>>(1501);
    net.set_num_threads(2);
    REQUIRE(net.threads_for_batch(1501) == 2);
    check_same_step(step_with_threads(net, X, 1), step_with_threads(net, X, 2));
  }
}

namespace {
/// ReLU whose backward throws while `fail` is set (a slice that fails halfway through backward)
/// and, in eval mode, passes no gradient (a layer whose backward reads the mode).
struct FailingReLU {
  static inline std::atomic<bool> fail{false};
  template <class S>
  struct Bound : nn::BoundActivation<ctnn::kernels::relu_op, nn::detail::relu_name, S>, nn::TrainingMode {
    void backward(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) const {
      if (fail) throw std::runtime_error("FailingReLU: backward failed");
      if (!training()) {
        if (dx) std::fill_n(dx, n * S::size, 0.0f);
        return;
      }
      nn::BoundActivation<ctnn::kernels::relu_op, nn::detail::relu_name, S>::backward(x, dx, n, act, gact, scratch);
    }
    template <class F>
    void apply(F&& f) {  // so that eval() reaches this layer
      f(*this);
    }
  };
  template <class In, class Path>
  using bind = Bound<In>;
};
}  // namespace

TEST_CASE("the threads' copies of the network follow the model: each step's parameters, the mode, a failed backward") {
  // Slice 1 runs backward on a copy of the network. It must see the parameters of every step,
  // the model's mode (BatchNorm's eval-mode backward differs), and gradients that start at zero
  // even after a backward that threw halfway (the Linear after FailingReLU had added to them).
  using Net = nn::Sequential<ResidualConv1x1, nn::Flatten, FailingReLU, nn::LazyLinear<3>>;
  Model<Net, Shape<4, 7, 7>> one(41), two(41);
  one.set_num_threads(1);
  two.set_num_threads(2);
  auto X = ctnn::rand<Shape<4, 7, 7>>(61);
  REQUIRE(two.threads_for_batch(61) == 2);
  std::vector<std::int64_t> y(61);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int64_t>(i % 3);
  nn::CrossEntropyLoss loss;
  ctnn::optim::SGD sgd_one{.lr = 0.1f, .momentum = 0.9f}, sgd_two = sgd_one;
  const auto grads = [](auto& net) {
    std::vector<std::vector<float>> g;
    for (const auto& [name, p] : net.named_parameters()) g.push_back(p.grad.to_vector());
    return g;
  };
  const auto backward_pair = [&](auto& first, auto& second, const std::string& what) {
    for (auto* net : {&first, &second}) {
      net->zero_grad();
      net->forward(X);
      net->backward(loss, y);
    }
    const auto a = grads(first), b = grads(second);
    float largest = 0.0f;
    for (const auto& g : a)
      for (float v : g) largest = std::max(largest, std::fabs(v));
    for (std::size_t i = 0; i < a.size(); ++i)
      ctnn_test::check_close(b[i], a[i], 1e-4f, 1e-4f * largest, what + ": gradient " + std::to_string(i));
  };
  const auto backward_both = [&](const std::string& what) { backward_pair(one, two, what); };
  for (int step = 0; step < 3; ++step) {
    backward_both("training step " + std::to_string(step));
    sgd_one.step(one);
    sgd_two.step(two);
  }
  one.eval();
  two.eval();
  backward_both("eval mode");
  const auto in_eval = grads(two)[0];  // no gradient gets past FailingReLU in eval mode
  CHECK(std::all_of(in_eval.begin(), in_eval.end(), [](float g) { return g == 0.0f; }));
  FailingReLU::fail = true;
  two.zero_grad();
  two.forward(X);
  CHECK_THROWS_WITH_AS(two.backward(loss, y), "FailingReLU: backward failed", std::runtime_error);
  FailingReLU::fail = false;
  backward_both("after a failed backward");
  one.train();
  two.train();
  backward_both("training mode again");
  const auto in_training = grads(two)[0];
  CHECK(std::any_of(in_training.begin(), in_training.end(), [](float g) { return g != 0.0f; }));
  // The copies read the model's parameters in place; moved with the model, they still do.
  Model<Net, Shape<4, 7, 7>> moved(std::move(two));
  for (int step = 0; step < 2; ++step) {
    sgd_one.step(one);
    sgd_two.step(moved);
    backward_pair(one, moved, "moved model, step " + std::to_string(step));
  }
  two = std::move(moved);  // and back, by assignment
  sgd_one.step(one);
  sgd_two.step(two);
  backward_both("moved back");
  // A parameter given new floats (a tensor moved into it) after the copies were made: the copies
  // read the new ones (under ASan, a read of the freed ones fails).
  using LinearWeight = ctnn::Tensor<typename std::remove_cvref_t<decltype(one.get<3>().weight)>::shape_type>;
  for (auto* net : {&one, &two}) {
    ctnn::Generator gen(9);  // the same values for both
    LinearWeight w;
    ctnn::randn_(w, gen);
    net->get<3>().weight = std::move(w);
  }
  backward_both("a parameter with new storage");
}

namespace {
// Convs whose forms prepare weights (nn::SharedWeights): a 3x3/pad-1 conv on a 2 x 2 map (the dense
// form: T's panels) and one on a 1 x 1 map (the regions form, which keeps its centre tap for the
// backward; 192 channels: whole panels with every instruction set).
using DenseConv = nn::Conv2d<{.in_channels = 8, .out_channels = 16, .kernel_size = 3, .padding = 1}>;
using CentreConv = nn::Conv2d<{.in_channels = 192, .out_channels = 24, .kernel_size = 3, .padding = 1}>;
using SharingNet = nn::Sequential<DenseConv, nn::ReLU, nn::LazyConv2d<{.out_channels = 192, .kernel_size = 2}>,
                                  nn::ReLU, CentreConv, nn::Flatten, nn::LazyLinear<5>>;
using DenseBound = nn::bind_t<DenseConv, Shape<8, 2, 2>>;
using CentreBound = nn::bind_t<CentreConv, Shape<192, 1, 1>>;
static_assert(ctnn::kernels::detail::shared_form<DenseBound::geometry, {}> == ctnn::kernels::detail::SharedForm::dense);
static_assert(ctnn::kernels::detail::shared_form<CentreBound::geometry, {}> ==
              ctnn::kernels::detail::SharedForm::regions);
static_assert(DenseBound::prepared_floats > 0 && !DenseBound::keeps_prepared && CentreBound::keeps_prepared);
}  // namespace

TEST_CASE("convs whose slices share prepared weights: 2 threads give 1 thread's numbers, step after step") {
  // In a split batch the slices prepare a part of such a conv's weights each and meet, and hold
  // their weight gradients for Model to fold into the network's: the output and dL/dx are 1
  // thread's bit for bit, the gradients equal to summation order; then through SGD steps (after
  // which the parameters differ by that order), eval mode, a move and a copy of the model (the
  // threads' copies of the network must read the moved network's).
  Model<SharingNet, Shape<8, 2, 2>> one(51), two(51);
  one.set_num_threads(1);
  two.set_num_threads(2);
  auto X = ctnn::rand<Shape<8, 2, 2>>(200);
  REQUIRE(two.threads_for_batch(200) == 2);
  check_same_step(step_with_threads(one, X, 1), step_with_threads(one, X, 2));
  std::vector<std::int64_t> y(200);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::int64_t>(i % 5);
  nn::CrossEntropyLoss loss;
  ctnn::optim::SGD sgd_one{.lr = 0.1f, .momentum = 0.9f}, sgd_two = sgd_one;
  const auto step_both = [&](auto& first, auto& second, const std::string& what) {
    std::vector<std::vector<float>> grads[2], outputs[2];
    int i = 0;
    for (auto* net : {&first, &second}) {
      net->zero_grad();
      const auto out = net->forward(X);
      outputs[i].push_back({out.data(), out.data() + out.numel()});
      net->backward(loss, y);
      for (const auto& [name, p] : net->named_parameters()) grads[i].push_back(p.grad.to_vector());
      ++i;
    }
    // after a step, the parameters differ by the gradients' summation order
    ctnn_test::check_close(outputs[1][0], outputs[0][0], 1e-4f, 1e-5f, what + ": output");
    float largest = 0.0f;
    for (const auto& g : grads[0])
      for (float v : g) largest = std::max(largest, std::fabs(v));
    for (std::size_t k = 0; k < grads[0].size(); ++k)
      ctnn_test::check_close(grads[1][k], grads[0][k], 1e-4f, 1e-4f * largest,
                             what + ": gradient " + std::to_string(k));
    sgd_one.step(first);
    sgd_two.step(second);
  };
  for (int step = 0; step < 3; ++step) step_both(one, two, "training step " + std::to_string(step));
  one.eval();
  two.eval();
  step_both(one, two, "eval mode");
  one.train();
  two.train();
  Model<SharingNet, Shape<8, 2, 2>> moved(std::move(two));
  step_both(one, moved, "moved model");
  Model<SharingNet, Shape<8, 2, 2>> copy(moved);
  step_both(one, copy, "copied model");
  // A batch too small to split, then a split one again: the 1-slice forward keeps its own weights.
  const auto small = ctnn::rand<Shape<8, 2, 2>>(3);
  CHECK(copy.threads_for_batch(3) == 1);
  ctnn_test::check_close(copy.forward(small).to_vector(), one.forward(small).to_vector(), 1e-4f, 1e-5f, "small batch");
  step_both(one, copy, "after a batch of one slice");
  CHECK(ctnn_test::steady_state_allocations([&] {
          copy.zero_grad();
          copy.forward(X);
          copy.backward(loss, y);
        }) == 0);
}

namespace {
/// CentreConv inside a hand-written layer whose apply() does not reach it: Model's threads do
/// not know it shares weights.
struct HiddenConv {
  template <class In, class Path>
  struct Bound : nn::Module<Bound<In, Path>> {
    using input_shape = In;
    using output_shape = CentreBound::output_shape;
    static constexpr std::size_t parameter_count = CentreBound::parameter_count;
    static constexpr std::size_t activation_floats = CentreBound::activation_floats;
    static constexpr std::size_t scratch_floats = CentreBound::scratch_floats;
    static constexpr std::ptrdiff_t output_offset = 0;
    CentreBound conv;
    const float* forward(const float* x, std::size_t n, float* act, float* scratch) const {
      return conv.forward(x, n, act, scratch);
    }
    void backward(const float* x, float* dx, std::size_t n, const float* act, float* gact, float* scratch) {
      conv.backward(x, dx, n, act, gact, scratch);
    }
    template <class Name, class F>
    void for_each_parameter(const Name& prefix, F&& f) {
      conv.for_each_parameter(prefix + "conv.", f);
    }
    template <class F>
    void apply(F&& f) {
      f(*this);
    }
    void reset_parameters(ctnn::Generator& gen) { conv.reset_parameters(gen); }
    void print(std::ostream& os, int) const { os << "HiddenConv"; }
    static std::string type_name() { return "HiddenConv"; }
  };
  template <class In, class Path>
  using bind = Bound<In, Path>;
};
}  // namespace

TEST_CASE("a sharing conv that Model's walks do not reach prepares its own weights in each slice") {
  // Its slices neither meet (the batch is not split on T threads at once) nor hold gradients:
  // each adds into its network's weight.grad, and the replica's is summed as any other.
  using Net = nn::Sequential<nn::Conv2d<{.in_channels = 192, .out_channels = 192, .kernel_size = 1}>, HiddenConv,
                             nn::Flatten, nn::LazyLinear<5>>;
  Model<Net, Shape<192, 1, 1>> net(53);
  auto X = ctnn::rand<Shape<192, 1, 1>>(200);
  net.set_num_threads(2);
  REQUIRE(net.threads_for_batch(200) == 2);
  check_same_step(step_with_threads(net, X, 1), step_with_threads(net, X, 2));
}

TEST_CASE("a training step of a network with BatchNorm and Dropout allocates nothing after the first") {
  // "0.shortcut.weight" is past std::string's 15 inline characters: the optimizer's and
  // zero_grad's walks must build no names (nn::unnamed).
  Model<ResidualConv1x1, Shape<4, 7, 7>> net(23);
  auto X = ctnn::rand<Shape<4, 7, 7>>(64);
  ctnn::optim::SGD opt{.lr = 0.01f};
  for (int threads : {1, 2}) {
    net.set_num_threads(threads);
    auto step = [&] {
      net.zero_grad();
      net.forward(X);
      for (auto& g : net.output_grad()) g = 0.01f;
      net.backward();
      opt.step(net);
    };
    step();
    CHECK(ctnn_test::steady_state_allocations(step) == 0);
  }
}

// ---- Modes -------------------------------------------------------------------------------------

TEST_CASE("train() / eval() / training() as PyTorch's, on the model and on every layer") {
  Model<BlockWithBN, Shape<2, 5, 5>> net;
  CHECK(net.training());
  CHECK(net[0_c].training());
  CHECK(net[0_c].bn.training());
  net.eval();
  CHECK_FALSE(net.training());
  CHECK_FALSE(net[0_c].training());
  CHECK_FALSE(net[0_c].bn.training());
  net.train();
  CHECK(net[0_c].bn.training());
  CHECK(&net.train(false) == &net);
  CHECK_FALSE(net.training());
}

TEST_CASE("Dropout: zeroes about p of the elements, scales the rest by 1/(1-p), identity in eval mode") {
  using Net = nn::Sequential<nn::Dropout<0.3f>>;
  Model<Net, Shape<1000>> net(5);
  auto X = ctnn::rand<Shape<1000>>(20);
  for (auto& v : X) v += 0.5f;  // no zeros in the input
  const auto Y = net(X);
  std::size_t zeros = 0;
  for (std::size_t i = 0; i < Y.numel(); ++i) {
    if (Y.data()[i] == 0.0f) ++zeros;
    else CHECK(Y.data()[i] == doctest::Approx(X.data()[i] / 0.7f).epsilon(1e-6));
  }
  const double frac = double(zeros) / double(Y.numel());
  CHECK(frac > 0.29);  // 20000 draws: the standard deviation of the fraction is 0.0032
  CHECK(frac < 0.31);
  SUBCASE("the same seed gives the same masks; the next forward another mask") {
    Model<Net, Shape<1000>> again(5);
    const auto Y2 = again(X);
    CHECK(std::equal(Y.data(), Y.data() + Y.numel(), Y2.data()));
    const auto Y3 = again(X);
    CHECK_FALSE(std::equal(Y.data(), Y.data() + Y.numel(), Y3.data()));
  }
  SUBCASE("backward uses the forward's mask") {
    net.set_input_requires_grad(true);
    const auto Y4 = net.forward(X);
    std::vector<float> y(Y4.data(), Y4.data() + Y4.numel());
    std::fill(net.output_grad().begin(), net.output_grad().end(), 1.0f);
    net.backward();
    const auto dx = net.input_grad();
    for (std::size_t i = 0; i < y.size(); ++i) CHECK(dx.data()[i] == (y[i] == 0.0f ? 0.0f : 1.0f / 0.7f));
  }
  SUBCASE("evaluation mode is the identity") {
    net.eval();
    const auto Ye = net(X);
    CHECK(std::equal(Ye.data(), Ye.data() + Ye.numel(), X.data()));
  }
}

// ---- Bad input ---------------------------------------------------------------------------------

TEST_CASE("BatchNorm in training mode refuses one value per channel, and the model is unchanged") {
  // The first BatchNorm2d sees 4 values per channel; the last, BatchNorm1d on [N, 6], sees 1.
  Model<BNLazy, Shape<2, 5, 5>> net(31);
  const auto before = net.state_dict()["1.running_mean"].to_vector();
  const auto count = *net.state_dict()["1.num_batches_tracked"].int64_data();
  auto X = ctnn::rand<Shape<2, 5, 5>>(1);
  CHECK_THROWS_WITH_AS(net.forward(X),
                       "ctnn::nn::BatchNorm1d at layer 5: expected more than 1 value per channel when training, got "
                       "input size [1, 6]",
                       std::invalid_argument);
  CHECK(net.state_dict()["1.running_mean"].to_vector() == before);
  CHECK(*net.state_dict()["1.num_batches_tracked"].int64_data() == count);
  net.eval();
  CHECK_NOTHROW(net.forward(X));  // evaluation mode: the running statistics
}

// ---- freeze --------------------------------------------------------------------------------------

TEST_CASE("freeze folds each BatchNorm after a Conv2d or Linear: the unfolded eval forward's numbers") {
  using Net = nn::Sequential<nn::Conv2d<{.in_channels = 2, .out_channels = 4, .kernel_size = 3}>,
                             nn::BatchNorm2d<{.num_features = 4}>, nn::ReLU,
                             nn::Residual<nn::Sequential<Conv3<4>, nn::LazyBatchNorm2d<>>>, nn::Flatten,
                             nn::LazyLinear<5>, nn::LazyBatchNorm1d<{.affine = false}>, nn::Dropout<0.5f>>;
  Model<Net, Shape<2, 6, 6>> net(41);
  // Train a little so that the running statistics and affine parameters are not the defaults.
  auto X = ctnn::rand<Shape<2, 6, 6>>(16);
  ctnn::optim::SGD opt{.lr = 0.05f};
  for (int i = 0; i < 3; ++i) {
    net.zero_grad();
    net.forward(X);
    for (auto& g : net.output_grad()) g = 0.1f;
    net.backward();
    opt.step(net);
  }
  auto frozen = ctnn::freeze(net);
  CHECK_FALSE(frozen.training());
  CHECK(net.training());  // the model itself is untouched
  net.eval();
  const auto want = net(X);
  const auto got = frozen.forward(X);
  ctnn_test::check_close({got.data(), got.numel()}, {want.data(), want.numel()}, 1e-5f, 1e-5f, "frozen");
  // Folded: the snapshot's first BatchNorm is the identity and the conv's bias took its shift.
  CHECK(frozen[1_c].running_mean[0] == 0.0f);
  CHECK(frozen[1_c].weight[0] == 1.0f);
  CHECK(frozen[0_c].bias[0] != net[0_c].bias[0]);
}

// ---- save / load with buffers -------------------------------------------------------------------

namespace {
using BNSaved =
    nn::Sequential<nn::Conv2d<{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .padding = 1, .bias = false}>,
                   nn::BatchNorm2d<{.num_features = 3}>, nn::ReLU, nn::Flatten, nn::Linear<75, 4>,
                   nn::BatchNorm1d<{.num_features = 4}>>;
}

TEST_CASE("a PyTorch-written safetensors file with BatchNorm buffers loads; ctnn's saves them as PyTorch does") {
  const auto ref = ctnn_test::load_reference(ctnn_test::reference_path("bn_safetensors.txt"));
  Model<BNSaved, Shape<2, 5, 5>> net(51);
  ctnn::load(net, ctnn_test::reference_path("bn_safetensors.safetensors"));
  check_state(net, ref, "", 0.0f, 0.0f);
  CHECK(*net.state_dict()["1.num_batches_tracked"].int64_data() == 7);
  net.eval();
  const auto& x = ref.at("input");
  Batch<Shape<2, 5, 5>> X(x.shape[0], x.values);
  const auto Y = net(X);
  ctnn_test::check_close({Y.data(), Y.numel()}, ref.at("eval.output").values, 1e-5f, 1e-6f, "eval.output");

  ctnn_test::TempDir dir;
  ctnn::save(net, dir / "bn.safetensors");
  const auto file = ctnn::io::read_safetensors(dir / "bn.safetensors");
  CHECK(file.tensors.at("1.num_batches_tracked").dtype == "I64");
  CHECK(file.tensors.at("1.num_batches_tracked").shape.empty());
  CHECK(file.tensors.at("1.running_var").dtype == "F32");
  Model<BNSaved, Shape<2, 5, 5>> back(52);
  ctnn::load(back, dir / "bn.safetensors");
  check_state(back, ref, "", 0.0f, 0.0f);
}

TEST_CASE("loading a file whose num_batches_tracked is missing or not int64 fails and changes nothing") {
  Model<BNSaved, Shape<2, 5, 5>> net(53);
  const auto before = net.state_dict();
  std::vector<std::vector<float>> values;
  for (const auto& [name, t] : before) values.push_back(t.to_vector());
  CHECK_THROWS_WITH_AS(ctnn::load(net, ctnn_test::reference_path("bn_safetensors_f32_count.safetensors")),
                       doctest::Contains("tensor '1.num_batches_tracked': expected dtype I64 (int64), found F32"),
                       ctnn::io::format_error);
  CHECK_THROWS_WITH_AS(ctnn::load(net, ctnn_test::reference_path("bn_safetensors_no_count.safetensors")),
                       doctest::Contains("missing tensor '1.num_batches_tracked' (expected shape [])"),
                       ctnn::io::format_error);
  std::size_t i = 0;
  for (const auto& [name, t] : net.state_dict()) CHECK_MESSAGE(t.to_vector() == values[i++], name);
}

TEST_CASE("buffers are in state_dict and named_buffers, never among the parameters an optimizer walks") {
  Model<BN2dConvReLU, Shape<3, 6, 6>> net;
  CHECK(net.state_dict().keys() == std::vector<std::string>{"0.weight", "1.weight", "1.bias", "1.running_mean",
                                                            "1.running_var", "1.num_batches_tracked"});
  CHECK(net.named_buffers().keys() ==
        std::vector<std::string>{"1.running_mean", "1.running_var", "1.num_batches_tracked"});
  CHECK(net.named_parameters().keys() == std::vector<std::string>{"0.weight", "1.weight", "1.bias"});
  std::size_t walked = 0;
  net.for_each_parameter([&](const std::string&, auto& p) { walked += p.numel(); });
  CHECK(walked == net.parameter_count);
  CHECK(net.parameter_count == 3 * 4 * 9 + 8);
  std::ostringstream os;
  os << net.state_dict()["1.num_batches_tracked"];
  CHECK(os.str() == "tensor(0)");
  CHECK_THROWS_AS(net.state_dict()["1.num_batches_tracked"].data(), std::logic_error);
}
