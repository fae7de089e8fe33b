// Conv2d, LazyConv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d and corr2d against PyTorch
// (tests/reference/*.txt from tools/gen_reference.py) and against a plain scalar reference.
#include <doctest/doctest.h>

#include <cmath>
#include <ctnn/ctnn.hpp>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "models.hpp"
#include "reference.hpp"

namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape, ctnn::Tensor;

namespace {

bool close(float got, float want) {
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= 1e-6f + 1e-5f * std::fabs(want);
}

/// Compares n values; reports the first mismatch with its flat index.
void check_values(const float* got, const std::vector<float>& want, const std::string& what) {
  std::size_t bad = 0, first = want.size();
  for (std::size_t i = 0; i < want.size(); ++i)
    if (!close(got[i], want[i])) {
      if (first == want.size()) first = i;
      ++bad;
    }
  INFO(what << ": " << bad << " of " << want.size() << " values differ; first at " << first << ": got "
            << (first < want.size() ? got[first] : 0.0f) << ", want " << (first < want.size() ? want[first] : 0.0f));
  CHECK(bad == 0);
}

/// Loads PyTorch's parameters into a Model<Net, In> by state_dict name, runs "input", compares "output".
template <class Net, class In>
void check_reference(const std::string& file) {
  const auto ref = ctnn_test::load_reference(ctnn_test::reference_path(file + ".txt"));
  Model<Net, In> net;
  std::size_t params = 0;
  for (auto&& [name, t] : net.state_dict()) {
    INFO(file << ": parameter " << name);
    REQUIRE(ref.count(name) == 1);
    const auto& r = ref.at(name);
    REQUIRE(r.shape == t.shape());
    std::copy(r.values.begin(), r.values.end(), t.data());
    ++params;
  }
  CHECK(params + 2 == ref.size());  // every tensor of the file but input and output is a parameter

  const auto& x = ref.at("input");
  const auto& y = ref.at("output");
  Batch<In> X(x.shape[0], x.values);
  const auto Y = net(X);
  REQUIRE(Y.sizes() == y.shape);
  check_values(Y.data(), y.values, file);
}

}  // namespace

// ---- Compile-time: arithmetic, shapes, parameter counts -------------------------------------

namespace arith = ctnn::conv;
// (I + 2P - D(K-1) - 1)/S + 1
static_assert(arith::output_size(28, 2, 2, 5, 1, 1) == 28);
static_assert(arith::output_size(8, 1, 1, 3, 2, 1) == 4);                          // D2L: k3 p1 s2 on 8x8
static_assert(arith::output_size(8, 0, 0, 3, 3, 1) == 2 &&
              arith::output_size(8, 1, 1, 5, 4, 1) == 2);  // k(3,5) p(0,1) s(3,4)
static_assert(arith::output_size(9, 1, 1, 3, 1, 2) == 7);                          // dilation 2
static_assert(arith::output_size(7, 0, 0, 2, 2, 1) == 3);                          // floor drops the last column
static_assert(arith::output_size(4, 0, 0, 5, 1, 1) <= 0);                          // kernel larger than input
// ceil_mode: the last window must start inside the input or the left padding
static_assert(arith::output_size(5, 0, 0, 2, 2, 1, true) == 3);
static_assert(arith::output_size(5, 1, 1, 3, 3, 1, true) == 2);  // ceil gives 3, but window 3 starts at 6 >= 5 + 1
static_assert(arith::output_size(2, 0, 0, 3, 2, 1, true) == 1);  // a 3x3 window on 2x2 in ceil mode, as PyTorch
static_assert(arith::output_size(2, 0, 0, 3, 2, 1, false) <= 0);
// 'same': total D(K-1), left total/2, right the rest
static_assert(arith::same_padding(3, 1) == arith::AxisPadding{1, 1});
static_assert(arith::same_padding(4, 1) == arith::AxisPadding{1, 2});
static_assert(arith::same_padding(2, 3) == arith::AxisPadding{1, 2});
static_assert(arith::adaptive_start(1, 7, 3) == 2 && arith::adaptive_end(1, 7, 3) == 5);
static_assert(arith::avg_pool_count(3, 6, 1, 3, 2, true) == 2 && arith::avg_pool_count(3, 6, 1, 3, 2, false) == 1);

using ctnn_test::LeNetModel;
static_assert(LeNetModel::parameter_count == 61'706);
template <std::size_t I>
using lenet_layer = typename LeNetModel::network_type::template layer_type<I>;
static_assert(lenet_layer<0>::output_shape{} == Shape<6, 28, 28>{});
static_assert(lenet_layer<2>::output_shape{} == Shape<6, 14, 14>{});
static_assert(lenet_layer<3>::output_shape{} == Shape<16, 10, 10>{});
static_assert(lenet_layer<5>::output_shape{} == Shape<16, 5, 5>{});
static_assert(lenet_layer<6>::output_shape{} == Shape<400>{});
static_assert(lenet_layer<7>::output_shape{} == Shape<120>{});
static_assert(lenet_layer<9>::output_shape{} == Shape<84>{});
static_assert(lenet_layer<11>::output_shape{} == Shape<10>{});
static_assert(lenet_layer<3>::parameter_count == 16 * 6 * 25 + 16);
// Conv2d + Sigmoid run as one stage
static_assert(LeNetModel::network_type::fused[1] && LeNetModel::network_type::fused[4]);
static_assert(!LeNetModel::network_type::fused[2]);

// Rectangular kernels and options spelled both ways
using Rect = nn::Sequential<nn::Conv2d<{.in_channels = 3,
                                        .out_channels = 4,
                                        .kernel_size = {3, 5},
                                        .stride = {2, 1},
                                        .padding = {1, 2},
                                        .dilation = 2,
                                        .groups = 1,
                                        .bias = false,
                                        .padding_mode = nn::PaddingMode::circular}>>;
static_assert(Model<Rect, Shape<3, 9, 10>>::output_shape == Shape<4, 4, 6>{});
static_assert(Model<Rect, Shape<3, 9, 10>>::parameter_count == 4 * 3 * 15);
static_assert(Model<nn::Sequential<nn::Conv2d<nn::Conv2dOptions{1, 2, 3}>>, Shape<1, 5, 5>>::output_shape ==
              Shape<2, 3, 3>{});
static_assert(Model<nn::Sequential<nn::MaxPool2d<{.kernel_size = 3, .stride = 2, .ceil_mode = true}>>,
                    Shape<2, 8, 9>>::output_shape == Shape<2, 4, 4>{});
static_assert(Model<nn::Sequential<nn::AdaptiveAvgPool2d<3, 2>>, Shape<3, 7, 5>>::output_shape == Shape<3, 3, 2>{});
static_assert(Model<nn::Sequential<nn::LazyConv2d<{.out_channels = 2, .kernel_size = 4, .padding = nn::padding_same}>>,
                    Shape<3, 5, 6>>::output_shape == Shape<2, 5, 6>{});

// ---- Against PyTorch --------------------------------------------------------------------------

template <nn::Conv2dOptions O, class... After>
using ConvNet = nn::Sequential<nn::Conv2d<O>, After...>;
constexpr auto zeros = nn::PaddingMode::zeros, reflect = nn::PaddingMode::reflect,
               replicate = nn::PaddingMode::replicate, circular = nn::PaddingMode::circular;

TEST_CASE("Conv2d with a rectangular 3x5 kernel matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 2, .out_channels = 3, .kernel_size = {3, 5}}>, Shape<2, 7, 9>>(
      "conv_rect_kernel");
}
TEST_CASE("Conv2d with stride (2, 1) matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .stride = {2, 1}}>, Shape<2, 9, 8>>(
      "conv_stride_2_1");
}
TEST_CASE("Conv2d with padding (1, 2) matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .padding = {1, 2}}>, Shape<2, 6, 7>>(
      "conv_padding_1_2");
}
TEST_CASE("Conv2d with dilation 2 matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .padding = 1, .dilation = 2}>,
                  Shape<2, 9, 10>>("conv_dilation_2");
}
TEST_CASE("Conv2d with groups 2 matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 4, .out_channels = 6, .kernel_size = 3, .padding = 1, .groups = 2}>,
                  Shape<4, 7, 8>>("conv_groups_2");
}
TEST_CASE("Conv2d depthwise (groups == channels) matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 3, .out_channels = 3, .kernel_size = 3, .padding = 1, .groups = 3}>,
                  Shape<3, 8, 9>>("conv_depthwise");
}
TEST_CASE("Conv2d depthwise with multiplier 2, stride 2 and a 3x2 kernel matches PyTorch") {
  check_reference<
      ConvNet<
          {.in_channels = 3, .out_channels = 6, .kernel_size = {3, 2}, .stride = 2, .padding = {1, 0}, .groups = 3}>,
      Shape<3, 9, 11>>("conv_depthwise_mult_strided");
}
TEST_CASE("Conv2d depthwise with reflect padding and dilation matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 4,
                           .out_channels = 4,
                           .kernel_size = 3,
                           .padding = 2,
                           .dilation = 2,
                           .groups = 4,
                           .padding_mode = reflect}>,
                  Shape<4, 6, 21>>("conv_depthwise_reflect_dilated");
}
TEST_CASE("Conv2d with bias=False matches PyTorch and has no bias in its state_dict") {
  using Net = ConvNet<{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .bias = false}>;
  check_reference<Net, Shape<3, 6, 5>>("conv_no_bias");
  Model<Net, Shape<3, 6, 5>> net;
  CHECK(net.state_dict().keys() == std::vector<std::string>{"0.weight"});
  static_assert(decltype(net)::parameter_count == 4 * 3 * 9);
}
TEST_CASE("Conv2d reflect padding matches PyTorch for a 3x5 kernel") {
  check_reference<
      ConvNet<{.in_channels = 2, .out_channels = 3, .kernel_size = {3, 5}, .padding = {1, 2}, .padding_mode = reflect}>,
      Shape<2, 5, 6>>("conv_reflect");
}
TEST_CASE("Conv2d replicate padding matches PyTorch for a 3x5 kernel") {
  check_reference<
      ConvNet<
          {.in_channels = 2, .out_channels = 3, .kernel_size = {3, 5}, .padding = {1, 2}, .padding_mode = replicate}>,
      Shape<2, 5, 6>>("conv_replicate");
}
TEST_CASE("Conv2d circular padding matches PyTorch for a 3x5 kernel") {
  check_reference<
      ConvNet<
          {.in_channels = 2, .out_channels = 3, .kernel_size = {3, 5}, .padding = {1, 2}, .padding_mode = circular}>,
      Shape<2, 5, 6>>("conv_circular");
}
TEST_CASE("Conv2d circular padding as large as the input matches PyTorch") {
  check_reference<
      ConvNet<{.in_channels = 1, .out_channels = 2, .kernel_size = 3, .padding = 3, .padding_mode = circular}>,
      Shape<1, 3, 4>>("conv_circular_full_wrap");
}
TEST_CASE("Conv2d reflect padding with stride 2 matches PyTorch") {
  check_reference<
      ConvNet<
          {.in_channels = 2, .out_channels = 3, .kernel_size = 3, .stride = 2, .padding = 2, .padding_mode = reflect}>,
      Shape<2, 7, 8>>("conv_reflect_strided");
}
TEST_CASE("Conv2d padding='same' with an odd 3x5 kernel matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 2, .out_channels = 3, .kernel_size = {3, 5}, .padding = nn::padding_same}>,
                  Shape<2, 6, 7>>("conv_same_odd");
}
TEST_CASE("Conv2d padding='same' with an even kernel pads more on the right and bottom, as PyTorch") {
  check_reference<ConvNet<{.in_channels = 2,
                           .out_channels = 3,
                           .kernel_size = {4, 2},
                           .padding = nn::padding_same,
                           .dilation = {1, 3}}>,
                  Shape<2, 6, 7>>("conv_same_even");
}
TEST_CASE("Conv2d padding='same' with an even kernel and reflect padding matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 2,
                           .out_channels = 3,
                           .kernel_size = 4,
                           .padding = nn::padding_same,
                           .padding_mode = reflect}>,
                  Shape<2, 5, 6>>("conv_same_even_reflect");
}
TEST_CASE("Conv2d padding='same' with a 2x4 kernel and replicate padding matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 2,
                           .out_channels = 3,
                           .kernel_size = {2, 4},
                           .padding = nn::padding_same,
                           .padding_mode = replicate}>,
                  Shape<2, 5, 6>>("conv_same_even_replicate");
}
TEST_CASE("Conv2d padding='valid' matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .padding = nn::padding_valid}>,
                  Shape<2, 5, 6>>("conv_valid");
}
TEST_CASE("Conv2d 1x1 runs as a GEMM and matches PyTorch") {
  check_reference<ConvNet<{.in_channels = 5, .out_channels = 7, .kernel_size = 1}>, Shape<5, 4, 4>>("conv_1x1");
  check_reference<ConvNet<{.in_channels = 5, .out_channels = 7, .kernel_size = 1}>, Shape<5, 5, 3>>("conv_1x1_odd");
  check_reference<ConvNet<{.in_channels = 4, .out_channels = 6, .kernel_size = 1, .groups = 2}>, Shape<4, 3, 5>>(
      "conv_1x1_groups");
  check_reference<ConvNet<{.in_channels = 3, .out_channels = 4, .kernel_size = 1, .stride = 2}>, Shape<3, 5, 5>>(
      "conv_1x1_strided");
}
TEST_CASE("Conv2d + ReLU, fused, matches PyTorch with several input and output channels") {
  check_reference<ConvNet<{.in_channels = 3, .out_channels = 8, .kernel_size = 3, .stride = 2, .padding = 1}, nn::ReLU>,
                  Shape<3, 13, 11>>("conv_multi_relu");
}
TEST_CASE("Conv2d + Sigmoid, fused, matches PyTorch on odd sizes with every option") {
  check_reference<ConvNet<{.in_channels = 3,
                           .out_channels = 9,
                           .kernel_size = {5, 3},
                           .stride = {3, 2},
                           .padding = {2, 1},
                           .dilation = {1, 2}},
                          nn::Sigmoid>,
                  Shape<3, 11, 13>>("conv_multi_sigmoid");
}
TEST_CASE("Conv2d, ReLU, LazyConv2d on 12 channels match PyTorch") {
  check_reference<ConvNet<{.in_channels = 12, .out_channels = 10, .kernel_size = 3, .padding = 1}, nn::ReLU,
                          nn::LazyConv2d<{.out_channels = 6, .kernel_size = 3}>>,
                  Shape<12, 8, 19>>("conv_wide");
}

TEST_CASE("MaxPool2d(2) drops the last odd row and column, as PyTorch") {
  check_reference<nn::Sequential<nn::MaxPool2d<{.kernel_size = 2}>>, Shape<3, 7, 9>>("maxpool_k2");
}
TEST_CASE("MaxPool2d ceil_mode matches PyTorch") {
  check_reference<nn::Sequential<nn::MaxPool2d<{.kernel_size = 3, .stride = 2, .ceil_mode = true}>>, Shape<2, 8, 9>>(
      "maxpool_ceil");
  check_reference<nn::Sequential<nn::MaxPool2d<{.kernel_size = 2, .ceil_mode = true}>>, Shape<2, 5, 5>>(
      "maxpool_ceil_k2");
}
TEST_CASE("MaxPool2d with padding (-inf) and dilation matches PyTorch") {
  check_reference<nn::Sequential<nn::MaxPool2d<{.kernel_size = {3, 2}, .stride = {2, 1}, .padding = 1, .dilation = 2}>>,
                  Shape<2, 9, 8>>("maxpool_pad_dilation");
  check_reference<
      nn::Sequential<nn::MaxPool2d<{.kernel_size = 3, .stride = 2, .padding = 1, .dilation = 2, .ceil_mode = true}>>,
      Shape<2, 10, 9>>("maxpool_pad_dilation_ceil");
  check_reference<nn::Sequential<nn::MaxPool2d<{.kernel_size = 3, .stride = 1, .padding = 1}>>, Shape<2, 5, 37>>(
      "maxpool_stride1_wide");
}
TEST_CASE("AvgPool2d(2) matches PyTorch") {
  check_reference<nn::Sequential<nn::AvgPool2d<{.kernel_size = 2}>>, Shape<3, 7, 9>>("avgpool_k2");
  check_reference<nn::Sequential<nn::AvgPool2d<{.kernel_size = 2, .ceil_mode = true}>>, Shape<2, 5, 7>>(
      "avgpool_ceil_k2");
}
TEST_CASE("AvgPool2d divisor with ceil_mode windows past the padded edge matches PyTorch") {
  check_reference<nn::Sequential<nn::AvgPool2d<{.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true}>>,
                  Shape<2, 6, 8>>("avgpool_pad_ceil");
  check_reference<nn::Sequential<nn::AvgPool2d<
                      {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false}>>,
                  Shape<2, 6, 8>>("avgpool_pad_ceil_exclude");
}
TEST_CASE("AvgPool2d count_include_pad=false and divisor_override match PyTorch") {
  check_reference<nn::Sequential<nn::AvgPool2d<
                      {.kernel_size = {3, 2}, .stride = {1, 2}, .padding = {1, 1}, .count_include_pad = false}>>,
                  Shape<2, 5, 7>>("avgpool_pad_exclude");
  check_reference<nn::Sequential<nn::AvgPool2d<
                      {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true, .divisor_override = 5}>>,
                  Shape<2, 6, 8>>("avgpool_divisor_override");
}
TEST_CASE("AdaptiveAvgPool2d windows match PyTorch (7x5 -> 3x2, -> 1x1, 3x3 -> 5x4)") {
  check_reference<nn::Sequential<nn::AdaptiveAvgPool2d<3, 2>>, Shape<3, 7, 5>>("adaptive_7x5_3x2");
  check_reference<nn::Sequential<nn::AdaptiveAvgPool2d<1>>, Shape<3, 7, 23>>("adaptive_1x1");
  check_reference<nn::Sequential<nn::AdaptiveAvgPool2d<5, 4>>, Shape<2, 3, 3>>("adaptive_up_3x3_5x4");
}
TEST_CASE("Conv2d, ReLU, MaxPool2d, LazyConv2d, AdaptiveAvgPool2d stack matches PyTorch") {
  check_reference<nn::Sequential<nn::Conv2d<{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1}>,
                                 nn::ReLU, nn::MaxPool2d<{.kernel_size = 2}>,
                                 nn::LazyConv2d<{.out_channels = 6, .kernel_size = 3}>, nn::AdaptiveAvgPool2d<1>>,
                  Shape<3, 10, 11>>("conv_pool_stack");
}

using ctnn_test::formula_fill;

TEST_CASE("D2L LeNet forward on a batch of 4 matches PyTorch") {
  const auto ref = ctnn_test::load_reference(ctnn_test::reference_path("lenet_d2l.txt"));
  const auto& x = ref.at("input");
  Batch<Shape<1, 28, 28>> X(4, x.values);

  LeNetModel net;
  formula_fill(net);
  const auto Y = net(X);
  REQUIRE(Y.sizes() == ref.at("output").shape);
  check_values(Y.data(), ref.at("output").values, "lenet output");

  // The first six layers alone (same state_dict prefix, same formula salts).
  using Front = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>,
                               nn::Sigmoid, nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>,
                               nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>, nn::Sigmoid,
                               nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>>;
  Model<Front, Shape<1, 28, 28>> front;
  formula_fill(front);
  const auto Z = front(X);
  check_values(Z.data(), ref.at("stage5").values, "lenet after the second pooling");
}

// ---- Printing and traits ------------------------------------------------------------------

TEST_CASE("Conv2d and pools print like PyTorch's repr") {
  auto repr = [](const auto& m) {
    std::ostringstream os;
    os << m;
    return os.str();
  };
  Model<nn::Sequential<
            nn::Conv2d<{.in_channels = 4,
                        .out_channels = 6,
                        .kernel_size = {3, 5},
                        .stride = {2, 1},
                        .padding = {1, 2},
                        .dilation = 2,
                        .groups = 2,
                        .bias = false,
                        .padding_mode = reflect}>,
            nn::Conv2d<{.in_channels = 6, .out_channels = 6, .kernel_size = 3, .padding = nn::padding_same}>,
            nn::LazyConv2d<{.out_channels = 2, .kernel_size = 1, .padding = nn::padding_valid}>,
            nn::MaxPool2d<{.kernel_size = 2}>,
            nn::MaxPool2d<{.kernel_size = {2, 3}, .stride = {1, 2}, .padding = 1, .dilation = 2, .ceil_mode = true}>,
            nn::AvgPool2d<{.kernel_size = 2}>, nn::AdaptiveAvgPool2d<1>>,
        Shape<4, 21, 23>>
      net;
  CHECK(repr(net.get<0>()) ==
        "Conv2d(4, 6, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(2, 2), groups=2, bias=False, "
        "padding_mode=reflect)");
  CHECK(repr(net.get<1>()) == "Conv2d(6, 6, kernel_size=(3, 3), stride=(1, 1), padding=same)");
  CHECK(repr(net.get<2>()) == "Conv2d(6, 2, kernel_size=(1, 1), stride=(1, 1), padding=valid)");
  CHECK(repr(net.get<3>()) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)");
  CHECK(repr(net.get<4>()) == "MaxPool2d(kernel_size=(2, 3), stride=(1, 2), padding=1, dilation=2, ceil_mode=True)");
  CHECK(repr(net.get<5>()) == "AvgPool2d(kernel_size=2, stride=2, padding=0)");
  CHECK(repr(net.get<6>()) == "AdaptiveAvgPool2d(output_size=(1, 1))");
  CHECK(repr(LeNetModel{}.get<0>()) == "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))");
  CHECK(net.state_dict().keys() == std::vector<std::string>{"0.weight", "1.weight", "1.bias", "2.weight", "2.bias"});
}

TEST_CASE("is_conv2d and the pool traits pick layers in apply()") {
  LeNetModel net;
  int convs = 0, avgs = 0;
  net.apply([&](auto& layer) {
    if constexpr (nn::is_conv2d<decltype(layer)>) {
      nn::init::zeros_(layer.weight);
      ++convs;
    }
    if constexpr (nn::is_avgpool2d<decltype(layer)>) ++avgs;
    static_assert(!nn::is_maxpool2d<decltype(layer)> && !nn::is_adaptive_avgpool2d<decltype(layer)>);
  });
  CHECK(convs == 2);
  CHECK(avgs == 2);
  CHECK(net.get<3>().weight(0, 0, 0, 0) == 0.0f);
  static_assert(nn::is_conv2d<const lenet_layer<0>&> && !nn::is_linear<lenet_layer<0>> &&
                !nn::is_conv2d<lenet_layer<7>>);
}

TEST_CASE("Conv2d default init is PyTorch's: U(-1/sqrt(fan_in), 1/sqrt(fan_in))") {
  LeNetModel net(42);
  const float bound = 1.0f / std::sqrt(150.0f);
  float lo = 1, hi = -1;
  for (float v : net.get<3>().weight) lo = std::min(lo, v), hi = std::max(hi, v);
  for (float v : net.get<3>().bias) lo = std::min(lo, v), hi = std::max(hi, v);
  CHECK(lo >= -bound);
  CHECK(hi <= bound);
  CHECK(hi - lo > bound);  // spread over the range, not constant
}

TEST_CASE("corr2d is D2L's cross-correlation") {
  Tensor<Shape<3, 3>> X{0, 1, 2, 3, 4, 5, 6, 7, 8};
  Tensor<Shape<2, 2>> K{0, 1, 2, 3};
  const auto Y = ctnn::corr2d(X, K);
  static_assert(std::is_same_v<decltype(Y), const Tensor<Shape<2, 2>>>);
  CHECK(Y.to_vector() == std::vector<float>{19, 25, 37, 43});

  Tensor<Shape<6, 8>> img;  // ones with a black stripe in columns 2..5
  for (std::size_t i = 0; i < 6; ++i)
    for (std::size_t j = 0; j < 8; ++j) img(i, j) = (j >= 2 && j < 6) ? 0.0f : 1.0f;
  const auto E = ctnn::corr2d(img, Tensor<Shape<1, 2>>{1, -1});
  for (std::size_t i = 0; i < 6; ++i)
    for (std::size_t j = 0; j < 7; ++j) CHECK(E(i, j) == (j == 1 ? 1.0f : j == 5 ? -1.0f : 0.0f));
}

// ---- Against a plain scalar reference on random shapes ---------------------------------------

namespace {

struct ConvParams {
  std::size_t C, H, W, O, KH, KW, SH, SW, PT, PB, PL, PR, DH, DW, G;
  ctnn::PaddingMode mode;
  bool bias;
};

/// Textbook loops: pad as F.pad, then cross-correlate each group.
std::vector<float> scalar_conv2d(const std::vector<float>& x, std::size_t N, const std::vector<float>& w,
                                 const std::vector<float>& b, const ConvParams& p) {
  const std::size_t Hp = p.H + p.PT + p.PB, Wp = p.W + p.PL + p.PR;
  const std::size_t OH = (Hp - p.DH * (p.KH - 1) - 1) / p.SH + 1, OW = (Wp - p.DW * (p.KW - 1) - 1) / p.SW + 1;
  const std::size_t Cg = p.C / p.G, Og = p.O / p.G;
  auto src = [&](long i, long n) -> long {
    if (i >= 0 && i < n) return i;
    switch (p.mode) {
      case ctnn::PaddingMode::zeros: return -1;
      case ctnn::PaddingMode::reflect: return i < 0 ? -i : 2 * (n - 1) - i;
      case ctnn::PaddingMode::replicate: return i < 0 ? 0 : n - 1;
      default: return i < 0 ? i + n : i - n;
    }
  };
  std::vector<float> y(N * p.O * OH * OW);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t o = 0; o < p.O; ++o)
      for (std::size_t oh = 0; oh < OH; ++oh)
        for (std::size_t ow = 0; ow < OW; ++ow) {
          double acc = p.bias ? b[o] : 0.0;
          const std::size_t g = o / Og;
          for (std::size_t c = 0; c < Cg; ++c)
            for (std::size_t kh = 0; kh < p.KH; ++kh)
              for (std::size_t kw = 0; kw < p.KW; ++kw) {
                const long ih = src(static_cast<long>(oh * p.SH + kh * p.DH) - static_cast<long>(p.PT), p.H);
                const long iw = src(static_cast<long>(ow * p.SW + kw * p.DW) - static_cast<long>(p.PL), p.W);
                if (ih < 0 || iw < 0) continue;
                acc += double(w[((o * Cg + c) * p.KH + kh) * p.KW + kw]) *
                       x[((n * p.C + g * Cg + c) * p.H + ih) * p.W + iw];
              }
          y[((n * p.O + o) * OH + oh) * OW + ow] = static_cast<float>(acc);
        }
  return y;
}

template <nn::Conv2dOptions Opt, std::size_t C, std::size_t H, std::size_t W>
void check_conv_against_scalar(std::mt19937& rng) {
  using Net = nn::Sequential<nn::Conv2d<Opt>>;
  Model<Net, Shape<C, H, W>> net(rng());
  std::normal_distribution<float> dist;
  constexpr std::size_t N = 3;
  Batch<Shape<C, H, W>> X(N);
  for (auto& v : X) v = dist(rng);
  auto& layer = net.template get<0>();
  const auto& geo = layer.geometry;
  const ConvParams p{C,      H,      W,      Opt.out_channels, geo.KH, geo.KW,     geo.SH,           geo.SW,  geo.PT,
                     geo.PB, geo.PL, geo.PR, geo.DH,           geo.DW, geo.groups, Opt.padding_mode, Opt.bias};
  std::vector<float> b;
  if constexpr (Opt.bias) b = layer.bias.to_vector();
  const auto want = scalar_conv2d(X.to_vector(), N, layer.weight.to_vector(), b, p);
  const auto Y = net(X);
  REQUIRE(Y.numel() == want.size());
  check_values(Y.data(), want, "scalar conv");
}

/// Max or average pooling with PyTorch's rules, written out.
std::vector<float> scalar_pool(const std::vector<float>& x, std::size_t NC, std::size_t H, std::size_t W,
                               std::size_t KH, std::size_t KW, std::size_t SH, std::size_t SW, std::size_t PH,
                               std::size_t PW, std::size_t DH, std::size_t DW, std::size_t OH, std::size_t OW, bool max,
                               bool include_pad) {
  std::vector<float> y(NC * OH * OW);
  for (std::size_t s = 0; s < NC; ++s)
    for (std::size_t oh = 0; oh < OH; ++oh)
      for (std::size_t ow = 0; ow < OW; ++ow) {
        float m = -std::numeric_limits<float>::infinity();
        double sum = 0;
        long cnt = 0;
        for (std::size_t kh = 0; kh < KH; ++kh)
          for (std::size_t kw = 0; kw < KW; ++kw) {
            const long ih = long(oh * SH + kh * DH) - long(PH), iw = long(ow * SW + kw * DW) - long(PW);
            if (ih < 0 || iw < 0 || ih >= long(H) || iw >= long(W)) continue;
            const float v = x[(s * H + ih) * W + iw];
            m = std::max(m, v);
            sum += v;
            ++cnt;
          }
        // AvgPool's divisor: the window clamped to input + padding, or to the input
        const long hs = long(oh * SH) - long(PH), ws = long(ow * SW) - long(PW);
        const long he = std::min(hs + long(KH), long(H + PH)), we = std::min(ws + long(KW), long(W + PW));
        const long div = include_pad ? (he - hs) * (we - ws) : cnt;
        y[(s * OH + oh) * OW + ow] = max ? m : static_cast<float>(sum / double(div));
      }
  return y;
}

template <class Spec, std::size_t C, std::size_t H, std::size_t W, bool Max, bool IncludePad = true>
void check_pool_against_scalar(std::mt19937& rng) {
  Model<nn::Sequential<Spec>, Shape<C, H, W>> net;
  std::normal_distribution<float> dist;
  constexpr std::size_t N = 2;
  Batch<Shape<C, H, W>> X(N);
  for (auto& v : X) v = dist(rng);
  constexpr auto g = std::remove_cvref_t<decltype(net.template get<0>())>::geometry;
  const auto want = scalar_pool(X.to_vector(), N * C, H, W, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.DH, g.DW, g.OH, g.OW,
                                Max, IncludePad);
  const auto Y = net(X);
  REQUIRE(Y.numel() == want.size());
  check_values(Y.data(), want, "scalar pool");
}

}  // namespace

TEST_CASE("Conv2d matches a scalar reference on random shapes") {
  std::mt19937 rng(7);
  check_conv_against_scalar<{.in_channels = 3,
                             .out_channels = 5,
                             .kernel_size = {2, 4},
                             .stride = {1, 3},
                             .padding = {1, 2},
                             .dilation = {2, 1}},
                            3, 17, 19>(rng);
  check_conv_against_scalar<{.in_channels = 6,
                             .out_channels = 9,
                             .kernel_size = 3,
                             .stride = 2,
                             .padding = 1,
                             .groups = 3,
                             .padding_mode = replicate},
                            6, 15, 34>(rng);
  check_conv_against_scalar<{.in_channels = 8,
                             .out_channels = 16,
                             .kernel_size = 3,
                             .padding = 1,
                             .groups = 8,
                             .bias = false,
                             .padding_mode = circular},
                            8, 10, 40>(rng);
  check_conv_against_scalar<{.in_channels = 5,
                             .out_channels = 3,
                             .kernel_size = {5, 1},
                             .padding = nn::padding_same,
                             .dilation = 2,
                             .padding_mode = reflect},
                            5, 12, 7>(rng);
  check_conv_against_scalar<{.in_channels = 32, .out_channels = 17, .kernel_size = 1}, 32, 9, 9>(rng);
  check_conv_against_scalar<
      {.in_channels = 7, .out_channels = 13, .kernel_size = 3, .stride = {2, 3}, .dilation = {1, 2}}, 7, 23, 29>(rng);
  check_conv_against_scalar<
      {.in_channels = 2, .out_channels = 2, .kernel_size = 1, .padding = 1, .groups = 2, .padding_mode = zeros}, 2, 4,
      5>(rng);
}

TEST_CASE("Conv2d stride 1 (the flat direct kernel) matches a scalar reference, tails included") {
  std::mt19937 rng(13);
  // D2L LeNet's two convolutions: 6 output channels (one tile of 6), 16 (two tiles of 8; the shifted form below)
  check_conv_against_scalar<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}, 1, 28, 28>(rng);
  check_conv_against_scalar<{.in_channels = 6, .out_channels = 16, .kernel_size = 5}, 6, 14, 14>(rng);
  // 11 channels: a tile of 8 and a tail of 3; rows of 9 (a vector spans several rows); odd q tail
  check_conv_against_scalar<{.in_channels = 3, .out_channels = 11, .kernel_size = 3, .padding = 1}, 3, 7, 7>(rng);
  // a padded 3x3 as in ResNet, 20 channels (two tiles of 8 and a tail of 4), rows of 23
  check_conv_against_scalar<
      {.in_channels = 5, .out_channels = 20, .kernel_size = 3, .padding = 1, .padding_mode = reflect}, 5, 9, 21>(rng);
  // dilation, a rectangular kernel, groups of 2 (each group its own flat convolution), no bias
  check_conv_against_scalar<{.in_channels = 4,
                             .out_channels = 6,
                             .kernel_size = {3, 2},
                             .padding = {2, 1},
                             .dilation = {2, 3},
                             .groups = 2,
                             .bias = false,
                             .padding_mode = circular},
                            4, 8, 10>(rng);
  // one output channel, one input channel, no padding: the last sample is read from a padded copy
  check_conv_against_scalar<{.in_channels = 1, .out_channels = 1, .kernel_size = 2}, 1, 5, 33>(rng);
  // a row mostly lost to the kernel (OW = 2 of 5): not worth the flat kernel, im2col instead
  check_conv_against_scalar<{.in_channels = 2, .out_channels = 3, .kernel_size = 4}, 2, 6, 5>(rng);
  static_assert(!ctnn::kernels::detail::conv2d_plan<ctnn::kernels::Conv2dGeometry{
                    2, 6, 5, 3, 4, 4, 1, 1, 1, 1, 0, 0, 0, 0, 1, ctnn::PaddingMode::zeros}>::use_flat);
  static_assert(ctnn::kernels::detail::conv2d_plan<ctnn::kernels::Conv2dGeometry{
                    6, 14, 14, 16, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, ctnn::PaddingMode::zeros}>::use_flat);
}

TEST_CASE("Conv2d stride 1 in the shifted flat form (KW compact copies of the input) matches a scalar reference") {
  using ctnn::kernels::Conv2dGeometry, ctnn::PaddingMode;
  using ctnn::kernels::detail::conv2d_plan;
  std::mt19937 rng(17);
  // LeNet's second conv takes the shifted form (in the flat form, 4 of every 14 columns are dropped)
  static_assert(
      conv2d_plan<Conv2dGeometry{6, 14, 14, 16, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, PaddingMode::zeros}>::use_shifted);
  // and so does LeNet's first (4 of 32 columns dropped: the forward saves 3.75 times its copies),
  // whose weight gradient keeps the flat form (the backward wants 4 times)
  static_assert(
      conv2d_plan<Conv2dGeometry{1, 28, 28, 6, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 1, PaddingMode::zeros}>::use_shifted);
  static_assert(
      !conv2d_plan<Conv2dGeometry{1, 28, 28, 6, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 1, PaddingMode::zeros}>::shifted_pays(4));
  check_conv_against_scalar<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}, 1, 28, 28>(rng);
  // ... the stride-1 cases above that keep the plain flat form: no vector saved (3x3 on 7x7, rows
  // of 9), a saving smaller than the copy (KW = 2 on rows of 33), copies too large for the cache
  // (64 channels of 3x3 on 56x56)
  static_assert(
      !ctnn_test::lanes16 ||  // rows of 9: with 8 lanes a vector is saved
      !conv2d_plan<Conv2dGeometry{3, 7, 7, 11, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros}>::use_shifted);
  static_assert(
      !conv2d_plan<Conv2dGeometry{1, 5, 33, 1, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0, 1, PaddingMode::zeros}>::use_shifted);
  static_assert(
      !conv2d_plan<Conv2dGeometry{64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::zeros}>::use_shifted);
  // groups of 2, dilation along the width (copy kw starts at column 2 kw), no bias, replicate padding
  static_assert(
      !ctnn_test::lanes16 ||
      conv2d_plan<Conv2dGeometry{4, 6, 12, 8, 3, 3, 1, 1, 1, 2, 1, 1, 1, 1, 2, PaddingMode::replicate}>::use_shifted);
  check_conv_against_scalar<{.in_channels = 4,
                             .out_channels = 8,
                             .kernel_size = 3,
                             .padding = 1,
                             .dilation = {1, 2},
                             .groups = 2,
                             .bias = false,
                             .padding_mode = replicate},
                            4, 6, 12>(rng);
  // the reflect-padded 3x3 of the test above: rows of 21 (a whole vector and a masked one per row),
  // 20 output channels (two tiles of 8 and a tail of 4)
  static_assert(
      conv2d_plan<Conv2dGeometry{5, 9, 21, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::reflect}>::use_shifted);
  // a rectangular kernel with dilation along the height, unpadded: the copies read x itself
  static_assert(
      conv2d_plan<Conv2dGeometry{3, 13, 12, 11, 2, 4, 1, 1, 2, 1, 0, 0, 0, 0, 1, PaddingMode::zeros}>::use_shifted);
  check_conv_against_scalar<{.in_channels = 3, .out_channels = 11, .kernel_size = {2, 4}, .dilation = {2, 1}}, 3, 13,
                            12>(rng);
}

TEST_CASE("MaxPool2d and AvgPool2d match a scalar reference on random shapes") {
  std::mt19937 rng(11);
  check_pool_against_scalar<
      nn::MaxPool2d<
          {.kernel_size = {3, 4}, .stride = {2, 3}, .padding = {1, 2}, .dilation = {2, 1}, .ceil_mode = true}>,
      3, 19, 41, true>(rng);
  check_pool_against_scalar<nn::MaxPool2d<{.kernel_size = 2}>, 4, 32, 32, true>(rng);
  // stride 2 (the permute path) with rows that are not whole vectors, shorter than a vector, and LeNet's
  check_pool_against_scalar<nn::MaxPool2d<{.kernel_size = 2}>, 3, 9, 37, true>(rng);
  check_pool_against_scalar<nn::AvgPool2d<{.kernel_size = 2}>, 6, 28, 28, false>(rng);
  check_pool_against_scalar<nn::AvgPool2d<{.kernel_size = 2}>, 16, 10, 10, false>(rng);
  check_pool_against_scalar<nn::AvgPool2d<{.kernel_size = {2, 3}, .stride = 2, .padding = 1}>, 2, 17, 35, false>(rng);
  check_pool_against_scalar<nn::AvgPool2d<{.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true}>, 3, 20, 33,
                            false>(rng);
  check_pool_against_scalar<
      nn::AvgPool2d<
          {.kernel_size = {2, 5}, .stride = {3, 1}, .padding = {1, 2}, .ceil_mode = true, .count_include_pad = false}>,
      2, 11, 26, false, false>(rng);
}

TEST_CASE("MaxPool2d propagates NaN as PyTorch") {
  Model<nn::Sequential<nn::MaxPool2d<{.kernel_size = 2}>>, Shape<1, 2, 4>> net;
  Batch<Shape<1, 2, 4>> X(1, std::vector<float>{1, NAN, 3, 4, 5, 6, 7, 8});
  const auto Y = net(X);
  CHECK(std::isnan(Y(0, 0, 0, 0)));
  CHECK(Y(0, 0, 0, 1) == 8.0f);
}
