// D2L's modern CNNs (ctnn::models, include/ctnn/models/d2l.hpp): PyTorch's parameter counts at
// the book's input sizes and at Fashion-MNIST's 28 x 28, and BN-LeNet and ResNet-18 at full size
// against PyTorch (tools/gen_reference.py's zoo cases: formula-filled parameters and BatchNorm
// statistics; output, input gradient, selected parameter gradients in training and evaluation
// mode, running statistics after a training forward).
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
template <class Net>
void check_zoo_mode(const RefMap& ref, const std::string& mode, float rtol) {
  Model<Net, models::FashionMNISTImage> net(1);
  zoo_fill(net);
  net.train(mode == "train");
  const auto& x = ref.at("input");
  Batch<models::FashionMNISTImage> X(x.shape[0], x.values);
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
    check_scaled(p.grad.to_vector(), it->second.values, rtol, it->first);
    ++grads;
  }
  CHECK(grads >= 4);
  if (mode == "train") {
    std::size_t stats = 0;
    for (const auto& [name, b] : net.named_buffers()) {
      const auto it = ref.find("train.after." + name);
      if (it == ref.end()) continue;
      ctnn_test::check_close(b.to_vector(), it->second.values, 1e-4f, 1e-6f, it->first);
      ++stats;
    }
    CHECK(stats > 0);
  }
}

template <class Net>
void check_zoo(const std::string& file, float train_rtol, float eval_rtol) {
  const auto ref = ctnn_test::load_reference(ctnn_test::reference_path(file));
  Model<Net, models::FashionMNISTImage> net(1);
  CHECK(net.state_dict().size() == static_cast<std::size_t>(ref.at("keys").values[0]));
  SUBCASE("training mode") { check_zoo_mode<Net>(ref, "train", train_rtol); }
  SUBCASE("evaluation mode") { check_zoo_mode<Net>(ref, "eval", eval_rtol); }
}

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
