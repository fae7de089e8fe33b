// D2L's modern CNNs (ctnn::models, include/ctnn/models/d2l.hpp): PyTorch's parameter counts at
// the book's input sizes and at Fashion-MNIST's 28 x 28, and every network of chapter 8 against
// PyTorch (tools/gen_reference.py's zoo cases: formula-filled parameters and BatchNorm
// statistics; output, input gradient, selected parameter gradients in training and evaluation
// mode, running statistics after a training forward): AlexNet, NiN, BN-LeNet and ResNet-18 at
// full size (AlexNet and NiN on the smallest input each binds to); VGG, GoogLeNet and DenseNet
// with fewer blocks and channels, bound from ctnn::models' building blocks (VGG-11 on 1x32x32
// and the full GoogLeNet on 1x28x28 checked the same way cost this file's compilation 21 s and
// 70 s and 1.5 GB more, for kernels the other networks already exercise).
#include <doctest/doctest.h>

#include <ctnn/ctnn.hpp>
#include <algorithm>
#include <cmath>
#include <ctnn/models/d2l.hpp>
#include <span>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "reference.hpp"

namespace models = ctnn::models;
namespace nn = ctnn::nn;
using ctnn::Batch;
using ctnn::Model;

// PyTorch's counts (sum(p.numel() for p in net.parameters()) after a forward materializes the lazy
// modules; 10 classes, one input channel), from the book's code.
static_assert(Model<models::AlexNet, models::FashionMNIST224>::parameter_count == 46'764'746);
static_assert(Model<models::VGG11, models::FashionMNIST224>::parameter_count == 128'806'154);
static_assert(Model<models::NiN, models::FashionMNIST224>::parameter_count == 1'992'166);
static_assert(Model<models::GoogLeNet, models::FashionMNIST96>::parameter_count == 5'977'530);
static_assert(Model<models::GoogLeNet, models::FashionMNISTImage>::parameter_count == 5'977'530);
static_assert(Model<models::BNLeNet, models::FashionMNISTImage>::parameter_count == 44'878);
static_assert(Model<models::ResNet18, models::FashionMNIST96>::parameter_count == 11'178'378);
static_assert(Model<models::ResNet18, models::FashionMNISTImage>::parameter_count == 11'178'378);
static_assert(Model<models::DenseNet, models::FashionMNIST96>::parameter_count == 758'226);
static_assert(Model<models::ResNet18, models::FashionMNISTImage>::output_shape == ctnn::Shape<10>{});

namespace {

using RefMap = std::map<std::string, ctnn_test::RefTensor>;

/// gen_reference.py's zoo_fill_: state_dict entry k, element i; f = formula_value. A BatchNorm's
/// weight (the entry two before a running_mean) and running_var are 1 + f(i, k, 4), its bias and
/// running_mean f(i, k, 4); num_batches_tracked stays 0; every other entry f(i, k, fan_in).
template <class M>
void zoo_fill(M& net) {
  const auto sd = net.state_dict();
  const auto keys = sd.keys();
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  std::size_t fan_in = 1;
  for (std::size_t k = 0; k < keys.size(); ++k) {
    if (ends_with(keys[k], "num_batches_tracked")) continue;
    auto t = sd[keys[k]];
    const auto& s = t.shape();
    const bool bn_weight = k + 2 < keys.size() && ends_with(keys[k + 2], "running_mean");
    const bool bn_bias = k + 1 < keys.size() && ends_with(keys[k + 1], "running_mean");
    if (s.size() >= 2) {
      fan_in = 1;
      for (std::size_t d = 1; d < s.size(); ++d) fan_in *= s[d];
    }
    for (std::size_t i = 0; i < t.numel(); ++i) {
      if (bn_weight || ends_with(keys[k], "running_var")) t[i] = 1.0f + ctnn_test::formula_value(i, k, 4);
      else if (bn_bias || ends_with(keys[k], "running_mean")) t[i] = ctnn_test::formula_value(i, k, 4);
      else t[i] = ctnn_test::formula_value(i, k, fan_in);
    }
  }
}

/// got against PyTorch's `want` within rtol of each value plus rtol / 10 of the tensor's largest.
void check_scaled(std::span<const float> got, const std::vector<float>& want, float rtol, const std::string& what) {
  float largest = 0.0f;
  for (float v : want) largest = std::max(largest, std::fabs(v));
  ctnn_test::check_close(got, want, rtol, 0.1f * rtol * largest, what);
}

/// One forward + backward (dL/dy from the file) in `mode`: output, dL/dx, the parameter
/// gradients the file lists and, in training mode, every running statistic after the forward.
/// A gradient stored with `stride.<name>` = s holds every s-th value of the flattened gradient.
template <class Net, class In>
void check_zoo_mode(const RefMap& ref, const std::string& mode, float rtol) {
  Model<Net, In> net(1);
  zoo_fill(net);
  net.train(mode == "train");
  const auto& x = ref.at("input");
  Batch<In> X(x.shape[0], x.values);
  const auto Y = net.forward(X);
  check_scaled({Y.data(), Y.numel()}, ref.at(mode + ".output").values, rtol, mode + ".output");
  const auto& dy = ref.at(mode + ".dy").values;
  std::copy(dy.begin(), dy.end(), net.output_grad().begin());
  net.set_input_requires_grad(true);
  net.zero_grad();
  net.backward();
  const auto dx = net.input_grad();
  check_scaled({dx.data(), dx.numel()}, ref.at(mode + ".grad.input").values, rtol, mode + ".grad.input");
  std::size_t grads = 0;
  for (const auto& [name, p] : net.named_parameters()) {
    const auto it = ref.find(mode + ".grad." + name);
    if (it == ref.end()) continue;
    const auto grad = p.grad.to_vector();
    const auto stride = ref.find("stride." + name);
    if (stride == ref.end()) {
      check_scaled(grad, it->second.values, rtol, it->first);
    } else {
      const auto s = static_cast<std::size_t>(stride->second.values.at(0));
      std::vector<float> sampled;
      for (std::size_t i = 0; i < grad.size(); i += s) sampled.push_back(grad[i]);
      check_scaled(sampled, it->second.values, rtol, it->first);
    }
    ++grads;
  }
  CHECK(grads >= 4);
  if (mode == "train") {
    // Every running statistic, each with its reference (GoogLeNet has none).
    std::size_t stats = 0;
    for (const auto& [name, b] : net.named_buffers()) {
      if (name.ends_with("num_batches_tracked")) continue;
      const auto it = ref.find("train.after." + name);
      REQUIRE_MESSAGE(it != ref.end(), name);
      ctnn_test::check_close(b.to_vector(), it->second.values, 1e-4f, 1e-6f, it->first);
      ++stats;
    }
    const auto stored =
        std::count_if(ref.begin(), ref.end(), [](const auto& e) { return e.first.starts_with("train.after."); });
    CHECK(stats == static_cast<std::size_t>(stored));
  }
}

/// Every mode the file holds (a network with Dropout has only "eval": its training mode differs
/// only by the random masks, which ctnn and PyTorch cannot share).
template <class Net, class In = models::FashionMNISTImage>
void check_zoo(const std::string& file, float train_rtol, float eval_rtol) {
  const auto ref = ctnn_test::load_reference(ctnn_test::reference_path(file));
  {
    Model<Net, In> net(1);
    CHECK(net.state_dict().size() == static_cast<std::size_t>(ref.at("keys").values[0]));
  }
  REQUIRE(ref.contains("eval.output"));
  if (ref.contains("train.output")) {
    SUBCASE("training mode") { check_zoo_mode<Net, In>(ref, "train", train_rtol); }
  }
  SUBCASE("evaluation mode") { check_zoo_mode<Net, In>(ref, "eval", eval_rtol); }
}

/// D2L 8.2's VGG(arch=((1, 8), (2, 16))), the book's head (two 4096-unit layers with Dropout).
using VGGSmall = models::VGG<models::vgg_block<1, 8>, models::vgg_block<2, 16>>;

/// D2L 8.4's GoogLeNet cut down: a stem of 8 channels (b1), then Inception(4, (4, 8), (2, 4), 4)
/// and a 3x3/2 max pool (b3), Inception(8, (8, 12), (2, 6), 6) with global average pooling and
/// Flatten (b5), the classifier.
using GoogLeNetSmall =
    nn::Sequential<nn::Sequential<nn::LazyConv2d<{.out_channels = 8, .kernel_size = 7, .stride = 2, .padding = 3}>,
                                  nn::ReLU, models::MaxPool3s2p1>,
                   nn::Sequential<models::Inception<4, 4, 8, 2, 4, 4>, models::MaxPool3s2p1>,
                   nn::Sequential<models::Inception<8, 8, 12, 2, 6, 6>, nn::AdaptiveAvgPool2d<1, 1>, nn::Flatten>,
                   nn::LazyLinear<10>>;

/// D2L 8.7's DenseNet(growth_rate=8, arch=(2, 2)): the book's stem, two dense blocks of two
/// conv_blocks with the transition block between (80 channels halved to 40), the head. The book's
/// DenseNet (growth_rate=32, arch=(4, 4, 4, 4)) needs 29 x 29 or more and ends on 1 x 1 maps,
/// where training mode's BatchNorms would see 4 values a channel; this one on 16 x 16 ends on
/// 2 x 2 (16 values a channel) and its file stays small.
using DenseNetSmall =
    nn::Sequential<models::ResNetStem, models::DenseBlock<2, 8>, models::transition_block<40>, models::DenseBlock<2, 8>,
                   nn::LazyBatchNorm2d<>, nn::ReLU, nn::AdaptiveAvgPool2d<1, 1>, nn::Flatten, nn::LazyLinear<10>>;

}  // namespace

TEST_CASE("D2L's BN-LeNet at full size: PyTorch's outputs and gradients in both modes") {
  check_zoo<models::BNLeNet>("zoo_bn_lenet.txt", 1e-4f, 1e-4f);
}

TEST_CASE("D2L's ResNet-18 at 1x28x28, full size: PyTorch's outputs and gradients in both modes") {
  // In training mode 20 BatchNorms normalize batches of 4 (the last stage's 1 x 1 maps: 4 values
  // a channel), which amplifies rounding: PyTorch's own float32 result differs from its float64
  // one by up to 0.6% in the output and 1.2% in dL/dx (tools/gen_reference.py's recipe run in
  // both). ctnn is held to 2% there; evaluation mode, well conditioned, to 0.2%.
  check_zoo<models::ResNet18>("zoo_resnet18.txt", 2e-2f, 2e-3f);
}

// Tolerances below: PyTorch's own float32 result against its float64 one (tools/gen_reference.py's
// recipe run in both), in check_scaled's measure |a - b| / (|b| + max |b| / 10), is at most
// 1e-5 for the output, dL/dx and the stored parameter gradients of AlexNet, VGG, NiN and
// GoogLeNet and of DenseNet in evaluation mode: ctnn is held to 1e-4 there.
//
// AlexNet, VGG and NiN have Dropout: their files hold evaluation mode only (training mode
// differs by the random masks alone, which ctnn and PyTorch cannot share; a backward in
// evaluation mode is legal in both). AlexNet and NiN are at full width on the smallest input
// each binds to (224 x 224 would make the input and dL/dx large), with a batch of 2.

TEST_CASE("D2L's AlexNet at full width on 1x65x65: PyTorch's outputs and gradients (evaluation mode)") {
  check_zoo<models::AlexNet, ctnn::Shape<1, 65, 65>>("zoo_alexnet.txt", 0.0f, 1e-4f);
}

TEST_CASE("D2L's VGG (arch ((1, 8), (2, 16))) on 1x16x16: PyTorch's outputs and gradients (evaluation mode)") {
  check_zoo<VGGSmall, ctnn::Shape<1, 16, 16>>("zoo_vgg_small.txt", 0.0f, 1e-4f);
}

TEST_CASE("D2L's NiN at full width on 1x67x67: PyTorch's outputs and gradients (evaluation mode)") {
  check_zoo<models::NiN, ctnn::Shape<1, 67, 67>>("zoo_nin.txt", 0.0f, 1e-4f);
}

TEST_CASE("D2L's GoogLeNet (a stem and two Inception blocks) on 1x28x28: PyTorch's outputs and gradients") {
  // No BatchNorm, no Dropout: training mode computes what evaluation mode does.
  check_zoo<GoogLeNetSmall>("zoo_googlenet_small.txt", 1e-4f, 1e-4f);
}

TEST_CASE("D2L's DenseNet (growth rate 8, arch (2, 2)) on 1x16x16: PyTorch's outputs and gradients in both modes") {
  // In training mode the stem BatchNorm's weight gradient (a sum over 256 values a channel of
  // dy * x_hat, which cancel) differs in PyTorch's float32 from its float64 by 1.9e-4 in the
  // measure above (ctnn misses 1e-4 on 3 of its 64 values): training mode is held to 1e-3.
  check_zoo<DenseNetSmall, ctnn::Shape<1, 16, 16>>("zoo_densenet_small.txt", 1e-3f, 1e-4f);
}
