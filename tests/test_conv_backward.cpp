// Backward of Conv2d, MaxPool2d, AvgPool2d and AdaptiveAvgPool2d: finite-difference checks of every
// option family, PyTorch's argmax rule for ties and NaN, one gradient set against PyTorch autograd
// (tests/reference/conv_pool_backward.txt), and allocation-free LeNet training steps.
#include <doctest/doctest.h>

#include <cmath>
#include <ctnn/ctnn.hpp>
#include <limits>
#include <random>
#include <span>
#include <type_traits>
#include <vector>

#include "gradcheck.hpp"
#include "helpers.hpp"
#include "models.hpp"

namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape;
using ctnn_test::gradcheck;

namespace {

/// gradcheck of Model<Net, In> (seeded) on a random batch of n samples.
template <class Net, class In>
std::size_t check_grad(std::size_t n = 2, std::uint64_t seed = 1, const ctnn_test::GradCheckOptions& opt = {}) {
  Model<Net, In> net(seed);
  ctnn::Generator gen(seed + 100);
  Batch<In> X(n);
  ctnn::randn_(X, gen);
  return gradcheck(net, X, opt);
}

/// For ReLU networks: a first-layer weight moves every pre-activation of its channel, so a step of
/// 1e-2 crosses several ReLU kinks at once; 1e-3 crosses few (float32 noise is still well below atol).
const ctnn_test::GradCheckOptions relu_net{.step = 1e-3f, .rtol = 2e-2, .atol = 3e-3};

/// LeNet end to end: a strided subset of each tensor keeps the test fast (also under ASan).
const ctnn_test::GradCheckOptions lenet{.max_elements = 20};
const ctnn_test::GradCheckOptions lenet_relu{.step = 1e-3f, .rtol = 2e-2, .atol = 3e-3, .max_elements = 20};

using D2LLeNet = ctnn_test::LeNet;
using ctnn_test::ModernLeNet;

}  // namespace

// ---- Conv2d ------------------------------------------------------------------------------------

TEST_CASE("Conv2d backward matches finite differences") {
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2, .out_channels = 3, .kernel_size = 3}>, Shape<2, 5, 7>>() == 0);
  CHECK(check_grad<nn::Conv2d<{.in_channels = 3, .out_channels = 5, .kernel_size = {3, 5}}>, Shape<3, 7, 9>>(3) == 0);
}

TEST_CASE("Conv2d backward with stride (2, 1) and padding (1, 2) matches finite differences") {
  CHECK(check_grad<
            nn::Conv2d<{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .stride = {2, 1}, .padding = {1, 2}}>,
            Shape<2, 5, 7>>() == 0);
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2, .out_channels = 3, .kernel_size = {2, 3}, .stride = 3, .padding = 1}>,
                   Shape<2, 7, 9>>() == 0);
}

TEST_CASE("Conv2d backward with dilation 2 matches finite differences") {
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .dilation = 2}>,
                   Shape<2, 7, 9>>() == 0);
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2,
                               .out_channels = 4,
                               .kernel_size = {3, 2},
                               .stride = {1, 2},
                               .padding = {2, 1},
                               .dilation = {2, 3}}>,
                   Shape<2, 5, 7>>() == 0);
}

TEST_CASE("Conv2d backward with groups 2 matches finite differences") {
  CHECK(check_grad<nn::Conv2d<{.in_channels = 4, .out_channels = 6, .kernel_size = 3, .padding = 1, .groups = 2}>,
                   Shape<4, 5, 7>>() == 0);
}

TEST_CASE("Conv2d backward depthwise (groups == channels) matches finite differences") {
  CHECK(check_grad<nn::Conv2d<{.in_channels = 3, .out_channels = 3, .kernel_size = 3, .padding = 1, .groups = 3}>,
                   Shape<3, 5, 7>>() == 0);
  // multiplier 2, stride 2, a 3x2 kernel
  CHECK(check_grad<nn::Conv2d<{.in_channels = 3,
                               .out_channels = 6,
                               .kernel_size = {3, 2},
                               .stride = 2,
                               .padding = {1, 0},
                               .groups = 3}>,
                   Shape<3, 7, 9>>() == 0);
  // reflect padding and dilation
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2,
                               .out_channels = 2,
                               .kernel_size = 3,
                               .padding = 2,
                               .dilation = 2,
                               .groups = 2,
                               .padding_mode = nn::PaddingMode::reflect}>,
                   Shape<2, 5, 7>>() == 0);
}

TEST_CASE("Conv2d backward without bias matches finite differences") {
  using L =
      nn::bind_t<nn::Conv2d<{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .bias = false}>, Shape<3, 5, 7>>;
  static_assert(!L::has_bias);
  CHECK(check_grad<nn::Conv2d<{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .bias = false}>,
                   Shape<3, 5, 7>>() == 0);
}

TEST_CASE("Conv2d backward with reflect padding mirroring more than one cell matches finite differences") {
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2,
                               .out_channels = 3,
                               .kernel_size = 3,
                               .padding = {3, 4},
                               .padding_mode = nn::PaddingMode::reflect}>,
                   Shape<2, 5, 7>>() == 0);
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2,
                               .out_channels = 3,
                               .kernel_size = 3,
                               .stride = 2,
                               .padding = 2,
                               .padding_mode = nn::PaddingMode::reflect}>,
                   Shape<2, 5, 7>>() == 0);
}

TEST_CASE("Conv2d backward with replicate padding matches finite differences") {
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2,
                               .out_channels = 3,
                               .kernel_size = {3, 5},
                               .padding = {3, 4},
                               .padding_mode = nn::PaddingMode::replicate}>,
                   Shape<2, 5, 7>>() == 0);
}

TEST_CASE("Conv2d backward with circular padding that wraps matches finite differences") {
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2,
                               .out_channels = 3,
                               .kernel_size = 3,
                               .padding = {4, 6},
                               .padding_mode = nn::PaddingMode::circular}>,
                   Shape<2, 5, 7>>() == 0);
  // padding as large as the input: every cell is copied twice more
  CHECK(check_grad<nn::Conv2d<{.in_channels = 1,
                               .out_channels = 2,
                               .kernel_size = 3,
                               .padding = 3,
                               .padding_mode = nn::PaddingMode::circular}>,
                   Shape<1, 3, 5>>() == 0);
}

TEST_CASE("Conv2d backward with padding='same' and an even kernel matches finite differences") {
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2,
                               .out_channels = 3,
                               .kernel_size = {4, 2},
                               .padding = nn::padding_same,
                               .dilation = {1, 3}}>,
                   Shape<2, 5, 7>>() == 0);
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2,
                               .out_channels = 3,
                               .kernel_size = 4,
                               .padding = nn::padding_same,
                               .padding_mode = nn::PaddingMode::reflect}>,
                   Shape<2, 5, 7>>() == 0);
  CHECK(check_grad<nn::Conv2d<{.in_channels = 2,
                               .out_channels = 3,
                               .kernel_size = {2, 4},
                               .padding = nn::padding_same,
                               .padding_mode = nn::PaddingMode::circular}>,
                   Shape<2, 5, 7>>() == 0);
}

TEST_CASE("Conv2d 1x1 backward matches finite differences") {
  CHECK(check_grad<nn::Conv2d<{.in_channels = 5, .out_channels = 7, .kernel_size = 1}>, Shape<5, 5, 3>>() == 0);
  CHECK(
      check_grad<nn::Conv2d<{.in_channels = 4, .out_channels = 6, .kernel_size = 1, .groups = 2}>, Shape<4, 3, 5>>() ==
      0);
  CHECK(
      check_grad<nn::Conv2d<{.in_channels = 3, .out_channels = 4, .kernel_size = 1, .stride = 2}>, Shape<3, 5, 5>>() ==
      0);
}

TEST_CASE("Conv2d + ReLU/Sigmoid/Tanh (fused) backward matches finite differences") {
  using Net = nn::Sequential<
      nn::Conv2d<{.in_channels = 2, .out_channels = 4, .kernel_size = 3, .padding = 1}>, nn::ReLU,
      nn::LazyConv2d<{.out_channels = 3, .kernel_size = {3, 2}, .stride = {1, 2}}>, nn::Sigmoid,
      nn::LazyConv2d<{.out_channels = 5, .kernel_size = 2, .padding = 1, .padding_mode = nn::PaddingMode::replicate}>,
      nn::Tanh>;
  static_assert(nn::bind_t<Net, Shape<2, 5, 7>>::fused == std::array<bool, 6>{false, true, false, true, false, true});
  CHECK(check_grad<Net, Shape<2, 5, 7>>(2, 1, relu_net) == 0);
}

TEST_CASE("Conv2d backward accumulates into .grad and overwrites the input gradient") {
  using Net = nn::Sequential<nn::Conv2d<{.in_channels = 2,
                                         .out_channels = 3,
                                         .kernel_size = 3,
                                         .padding = 1,
                                         .padding_mode = nn::PaddingMode::reflect}>,
                             nn::Sigmoid>;
  Model<Net, Shape<2, 5, 7>> net(7);
  auto X = ctnn::randn<Shape<2, 5, 7>>(2);
  net.set_input_requires_grad(true);
  auto step = [&] {
    net.forward(X);
    auto dy = net.output_grad();
    std::fill(dy.begin(), dy.end(), 0.5f);
    net.backward();
  };
  step();
  const auto w1 = net.get<0>().weight.grad.to_vector();
  const auto b1 = net.get<0>().bias.grad.to_vector();
  const std::vector<float> dx1(net.input_grad().begin(), net.input_grad().end());
  step();
  const auto w2 = net.get<0>().weight.grad.to_vector();
  const auto b2 = net.get<0>().bias.grad.to_vector();
  for (std::size_t i = 0; i < w1.size(); ++i) CHECK(w2[i] == doctest::Approx(2 * w1[i]));
  for (std::size_t i = 0; i < b1.size(); ++i) CHECK(b2[i] == doctest::Approx(2 * b1[i]));
  const std::vector<float> dx2(net.input_grad().begin(), net.input_grad().end());
  CHECK(dx1 == dx2);
}

namespace {

/// dL/dw, dL/db, dL/dx of a stride-1 zero-padded conv for dL/dy = g, in double, textbook loops.
/// x: [N, C, H, W], w: [O, C, KH, KW], g: [N, O, OH, OW]
struct ScalarConvGrads {
  std::vector<double> dw, db, dx;
};
ScalarConvGrads scalar_conv_backward(const std::vector<float>& x, const std::vector<float>& w,
                                     const std::vector<float>& g, std::size_t N, std::size_t C, std::size_t H,
                                     std::size_t W, std::size_t O, std::size_t K, std::size_t P) {
  const std::size_t OH = H + 2 * P - K + 1, OW = W + 2 * P - K + 1;
  ScalarConvGrads r{std::vector<double>(O * C * K * K), std::vector<double>(O), std::vector<double>(N * C * H * W)};
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t o = 0; o < O; ++o)
      for (std::size_t oh = 0; oh < OH; ++oh)
        for (std::size_t ow = 0; ow < OW; ++ow) {
          const double gy = g[((n * O + o) * OH + oh) * OW + ow];
          r.db[o] += gy;
          for (std::size_t c = 0; c < C; ++c)
            for (std::size_t kh = 0; kh < K; ++kh)
              for (std::size_t kw = 0; kw < K; ++kw) {
                const long ih = long(oh + kh) - long(P), iw = long(ow + kw) - long(P);
                if (ih < 0 || iw < 0 || ih >= long(H) || iw >= long(W)) continue;
                const std::size_t xi = ((n * C + c) * H + std::size_t(ih)) * W + std::size_t(iw);
                const std::size_t wi = ((o * C + c) * K + kh) * K + kw;
                r.dw[wi] += gy * x[xi];
                r.dx[xi] += gy * w[wi];
              }
        }
  return r;
}

/// Conv2d<C -> O, K x K, padding P> backward on N samples against scalar_conv_backward.
template <std::size_t N, std::size_t C, std::size_t H, std::size_t W, std::size_t O, std::size_t K, std::size_t P>
void check_conv_backward_against_scalar() {
  using Net = nn::Sequential<nn::Conv2d<{.in_channels = C, .out_channels = O, .kernel_size = K, .padding = P}>>;
  Model<Net, Shape<C, H, W>> net(3);
  auto X = ctnn::randn<Shape<C, H, W>>(N);
  net.set_input_requires_grad(true);
  net.forward(X);
  auto dy = net.output_grad();
  ctnn::Generator gen(5);
  ctnn::randn_(dy, gen);
  const std::vector<float> g(dy.begin(), dy.end());
  net.backward();
  auto& layer = net.template get<0>();
  const auto want = scalar_conv_backward(X.to_vector(), layer.weight.to_vector(), g, N, C, H, W, O, K, P);
  auto close = [](std::span<const float> got, const std::vector<double>& ref, const char* what) {
    REQUIRE(got.size() == ref.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < ref.size(); ++i)
      if (std::fabs(got[i] - ref[i]) > 1e-4 * (1 + std::fabs(ref[i])) && bad++ < 5)
        FAIL_CHECK(std::string(what) << "[" << i << "] = " << got[i] << ", want " << ref[i]);
    CHECK(bad == 0);
  };
  const auto dw = layer.weight.grad.to_vector();
  const auto db = layer.bias.grad.to_vector();
  close(dw, want.dw, "weight.grad");
  close(db, want.db, "bias.grad");
  close({net.input_grad().begin(), net.input_grad().end()}, want.dx, "input grad");
}

}  // namespace

TEST_CASE("Conv2d stride-1 backward (flat weight gradient, chunks of samples) matches a scalar reference") {
  // D2L LeNet's convolutions; 45 samples of the small one are two chunks of 32 samples and a partial one
  check_conv_backward_against_scalar<5, 1, 28, 28, 6, 5, 2>();
  check_conv_backward_against_scalar<5, 6, 14, 14, 16, 5, 0>();
  check_conv_backward_against_scalar<45, 2, 6, 7, 11, 3, 1>();
  static_assert(ctnn::kernels::detail::conv2d_backward_plan<ctnn::kernels::Conv2dGeometry{
                    2, 6, 7, 11, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, ctnn::PaddingMode::zeros}>::chunk == 32);
}

namespace {

/// F.pad's source index of padded position i (counted from -before) along an axis of extent n; -1: zero.
long pad_index(long i, long n, nn::PaddingMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case nn::PaddingMode::zeros: return -1;
    case nn::PaddingMode::reflect: return i < 0 ? -i : 2 * (n - 1) - i;
    case nn::PaddingMode::replicate: return i < 0 ? 0 : n - 1;
    case nn::PaddingMode::circular: return i < 0 ? i + n : i - n;
  }
  return -1;
}

/// Conv2d<Opt> (+ Sigmoid when Sig) on N samples of [C, H, W]: weight.grad, bias.grad and the input
/// gradient against textbook loops in double (any padding mode, dilation, groups, stride). Without
/// InputGrad the input gradient is not asked for (a first layer's backward skips it).
template <nn::Conv2dOptions Opt, bool Sig, std::size_t N, std::size_t H, std::size_t W, bool InputGrad = true>
void check_conv_grads_scalar() {
  using Conv = nn::Conv2d<Opt>;
  using Net = std::conditional_t<Sig, nn::Sequential<Conv, nn::Sigmoid>, nn::Sequential<Conv>>;
  constexpr std::size_t C = Opt.in_channels;
  Model<Net, Shape<C, H, W>> net(11);
  auto& layer = net.template get<0>();
  using L = std::remove_cvref_t<decltype(layer)>;
  constexpr auto G = L::geometry;
  constexpr std::size_t O = G.O, KH = G.KH, KW = G.KW, OH = G.OH(), OW = G.OW(), Cg = G.Cg(), Og = G.Og();
  auto X = ctnn::randn<Shape<C, H, W>>(N);
  net.set_input_requires_grad(InputGrad);
  const auto Y = net.forward(X);
  const std::vector<float> y(Y.begin(), Y.end());
  auto dy = net.output_grad();
  ctnn::Generator gen(5);
  ctnn::randn_(dy, gen);
  std::vector<double> g(dy.begin(), dy.end());
  if constexpr (Sig)
    for (std::size_t i = 0; i < g.size(); ++i) g[i] *= double(y[i]) * (1.0 - double(y[i]));
  net.backward();
  const auto x = X.to_vector(), w = layer.weight.to_vector();
  std::vector<double> dw(w.size()), db(O), dx(x.size());
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t o = 0; o < O; ++o)
      for (std::size_t oh = 0; oh < OH; ++oh)
        for (std::size_t ow = 0; ow < OW; ++ow) {
          const double gz = g[((n * O + o) * OH + oh) * OW + ow];
          db[o] += gz;
          for (std::size_t c = 0; c < Cg; ++c)
            for (std::size_t kh = 0; kh < KH; ++kh)
              for (std::size_t kw = 0; kw < KW; ++kw) {
                const long ih = pad_index(long(oh * G.SH + kh * G.DH) - long(G.PT), long(H), G.mode);
                const long iw = pad_index(long(ow * G.SW + kw * G.DW) - long(G.PL), long(W), G.mode);
                if (ih < 0 || iw < 0) continue;
                const std::size_t ci = (o / Og) * Cg + c;
                const std::size_t xi = ((n * C + ci) * H + std::size_t(ih)) * W + std::size_t(iw);
                const std::size_t wi = ((o * Cg + c) * KH + kh) * KW + kw;
                dw[wi] += gz * x[xi];
                dx[xi] += gz * w[wi];
              }
        }
  auto close = [](std::span<const float> got, const std::vector<double>& ref, const char* what) {
    REQUIRE(got.size() == ref.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < ref.size(); ++i)
      if (std::fabs(got[i] - ref[i]) > 1e-4 * (1 + std::fabs(ref[i])) && bad++ < 5)
        FAIL_CHECK(std::string(what) << "[" << i << "] = " << got[i] << ", want " << ref[i]);
    CHECK(bad == 0);
  };
  const auto gw = layer.weight.grad.to_vector();
  close(gw, dw, "weight.grad");
  if constexpr (L::has_bias) {
    const auto gb = layer.bias.grad.to_vector();
    close(gb, db, "bias.grad");
  }
  if constexpr (InputGrad) close({net.input_grad().begin(), net.input_grad().end()}, dx, "input grad");
}

template <nn::Conv2dOptions Opt, std::size_t H, std::size_t W>
constexpr bool flat_backward =
    ctnn::kernels::detail::conv2d_backward_plan<nn::detail::conv2d_geometry<Opt.in_channels, H, W, Opt>()>::use_flat;
template <nn::Conv2dOptions Opt, std::size_t H, std::size_t W>
using backward_plan =
    ctnn::kernels::detail::conv2d_backward_plan<nn::detail::conv2d_geometry<Opt.in_channels, H, W, Opt>()>;
template <nn::Conv2dOptions Opt, std::size_t H, std::size_t W>
constexpr bool shifted_backward = backward_plan<Opt, H, W>::shifted_dw;
template <nn::Conv2dOptions Opt, std::size_t H, std::size_t W>
constexpr bool outer_backward = backward_plan<Opt, H, W>::outer_dw;
template <nn::Conv2dOptions Opt, std::size_t H, std::size_t W>
constexpr bool gemm_dx_backward = backward_plan<Opt, H, W>::gemm_dx;

}  // namespace

TEST_CASE(
    "Conv2d stride-1 backward (flat dz with Op' and bias fused, flat full-correlation dx) matches a scalar reference") {
  using M = nn::PaddingMode;
  // LeNet's convolutions with their Sigmoid: Op' applied while building the flat dz rows; rows of
  // 28 (a vector and a 12-lane tail) and 10 (a tail only)
  constexpr nn::Conv2dOptions c1{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2};
  constexpr nn::Conv2dOptions c2{.in_channels = 6, .out_channels = 16, .kernel_size = 5};
  static_assert(flat_backward<c1, 28, 28> && flat_backward<c2, 14, 14>);
  static_assert(!shifted_backward<c1, 28, 28> && !outer_backward<c1, 28, 28> && !gemm_dx_backward<c1, 28, 28>);
  static_assert(outer_backward<c2, 14, 14> && gemm_dx_backward<c2, 14, 14>);  // 16 channels, 10x10 of 14x14
  check_conv_grads_scalar<c1, true, 3, 28, 28>();
  check_conv_grads_scalar<c2, true, 37, 14, 14>();
  // dilation and a rectangular kernel with reflect padding (the padded dx folds back)
  constexpr nn::Conv2dOptions d{.in_channels = 3,
                                .out_channels = 5,
                                .kernel_size = {3, 2},
                                .padding = {1, 2},
                                .dilation = {2, 3},
                                .padding_mode = M::reflect};
  static_assert(flat_backward<d, 9, 21>);
  check_conv_grads_scalar<d, true, 2, 9, 21>();
  // groups 2, 'same' with an even kernel (asymmetric padding), replicate, no bias; rows of 20
  constexpr nn::Conv2dOptions gs{.in_channels = 4,
                                 .out_channels = 6,
                                 .kernel_size = 4,
                                 .padding = nn::padding_same,
                                 .groups = 2,
                                 .bias = false,
                                 .padding_mode = M::replicate};
  static_assert(flat_backward<gs, 7, 20>);
  check_conv_grads_scalar<gs, false, 3, 7, 20>();
  // circular padding; rows of exactly 16 (no tail), 33 (two vectors and a 1-lane tail)
  constexpr nn::Conv2dOptions ci{.in_channels = 2,
                                 .out_channels = 3,
                                 .kernel_size = 3,
                                 .padding = 1,
                                 .padding_mode = M::circular};
  static_assert(flat_backward<ci, 5, 16> && flat_backward<ci, 4, 33>);
  check_conv_grads_scalar<ci, true, 2, 5, 16>();
  check_conv_grads_scalar<ci, false, 2, 4, 33>();
  // groups 3 with dilation, zeros padding larger than the kernel's reach
  constexpr nn::Conv2dOptions g3{.in_channels = 6,
                                 .out_channels = 6,
                                 .kernel_size = 2,
                                 .padding = 3,
                                 .dilation = 2,
                                 .groups = 3};
  static_assert(flat_backward<g3, 6, 11>);
  check_conv_grads_scalar<g3, true, 2, 6, 11>();
  // a 1x3 kernel: no rows below the output in a dz slot, so the last row's vector stops at the slot's end
  constexpr nn::Conv2dOptions k13{.in_channels = 2, .out_channels = 3, .kernel_size = {1, 3}};
  static_assert(flat_backward<k13, 3, 17>);
  check_conv_grads_scalar<k13, true, 2, 3, 17>();
  // the shifted form's weight gradient (compact dz rows, the taps reordered into w's order) with
  // groups, dilation along the width and replicate padding (built in the dx buffer); with dilation
  // along the height, unpadded; with reflect padding and rows of 21
  constexpr nn::Conv2dOptions sg{.in_channels = 4,
                                 .out_channels = 8,
                                 .kernel_size = 3,
                                 .padding = 1,
                                 .dilation = {1, 2},
                                 .groups = 2,
                                 .bias = false,
                                 .padding_mode = M::replicate};
  constexpr nn::Conv2dOptions sd{.in_channels = 3, .out_channels = 11, .kernel_size = {2, 4}, .dilation = {2, 1}};
  constexpr nn::Conv2dOptions sr{.in_channels = 5,
                                 .out_channels = 20,
                                 .kernel_size = 3,
                                 .padding = 1,
                                 .padding_mode = M::reflect};
  static_assert(!ctnn_test::lanes16 ||
                (shifted_backward<sg, 6, 12> && shifted_backward<sd, 13, 12> && shifted_backward<sr, 9, 21>));
  static_assert(!shifted_backward<d, 9, 21> && !shifted_backward<gs, 7, 20> && !shifted_backward<ci, 5, 16>);
  check_conv_grads_scalar<sg, false, 3, 6, 12>();
  check_conv_grads_scalar<sd, true, 2, 13, 12>();
  check_conv_grads_scalar<sr, true, 2, 9, 21>();
  // not flat (stride 2, 1x1, depthwise): the im2col path with Op' applied in place
  constexpr nn::Conv2dOptions s2{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .stride = 2, .padding = 1};
  constexpr nn::Conv2dOptions pw{.in_channels = 4, .out_channels = 5, .kernel_size = 1};
  constexpr nn::Conv2dOptions dwc{.in_channels = 3, .out_channels = 6, .kernel_size = 3, .padding = 1, .groups = 3};
  static_assert(!flat_backward<s2, 9, 19> && !flat_backward<pw, 5, 18> && !flat_backward<dwc, 6, 17>);
  check_conv_grads_scalar<s2, true, 2, 9, 19>();
  check_conv_grads_scalar<pw, true, 2, 5, 18>();
  check_conv_grads_scalar<dwc, true, 2, 6, 17>();
}

TEST_CASE(
    "Conv2d stride-1 backward (outer-product weight gradient, dcol GEMM + col2im dx) matches a scalar reference") {
  using M = nn::PaddingMode;
  // The outer weight gradient (output channels a multiple of the vector width): 32 channels in
  // two groups of 16 with reflect padding; 32 (two vectors) with dilation and replicate padding;
  // 96 (two blocks of three vectors) with circular padding and no bias; 64 channels on rows of 40,
  // a block of output rows at a time (the dz columns of a row are 10 KiB)
  constexpr nn::Conv2dOptions og{.in_channels = 4,
                                 .out_channels = 32,
                                 .kernel_size = 3,
                                 .padding = 1,
                                 .groups = 2,
                                 .padding_mode = M::reflect};
  constexpr nn::Conv2dOptions od{.in_channels = 3,
                                 .out_channels = 32,
                                 .kernel_size = {3, 2},
                                 .padding = {2, 1},
                                 .dilation = {2, 3},
                                 .padding_mode = M::replicate};
  constexpr nn::Conv2dOptions o96{.in_channels = 2,
                                  .out_channels = 96,
                                  .kernel_size = 3,
                                  .padding = 1,
                                  .bias = false,
                                  .padding_mode = M::circular};
  constexpr nn::Conv2dOptions o64{.in_channels = 2, .out_channels = 64, .kernel_size = 3, .padding = 1};
  static_assert(outer_backward<og, 7, 9> && outer_backward<od, 9, 21> && outer_backward<o96, 5, 9> &&
                outer_backward<o64, 6, 40>);
  // (the form asserts of this case and the next are sized for 8- and 16-lane vectors: without
  // AVX2, 4-lane SSE, the plan picks other forms, whose gradients the same checks compare)
  static_assert(ctnn::kernels::simd_width < 8 ||
                ctnn::kernels::detail::outer_dw_shape<nn::detail::conv2d_geometry<2, 6, 40, o64>()>::rows < 6);
  check_conv_grads_scalar<og, true, 3, 7, 9>();
  check_conv_grads_scalar<od, true, 2, 9, 21>();
  check_conv_grads_scalar<o96, false, 2, 5, 9>();
  check_conv_grads_scalar<o64, true, 2, 6, 40>();
  // The dcol GEMM + col2im input gradient (outputs small against the padded input): with the outer
  // weight gradient, groups and reflect padding; with dilation; with the shifted weight gradient
  // (12 channels); with the flat one (36 channels, a 7x1 kernel: no column dropped, nothing to shift)
  constexpr nn::Conv2dOptions gg{.in_channels = 4,
                                 .out_channels = 32,
                                 .kernel_size = 5,
                                 .padding = 1,
                                 .groups = 2,
                                 .padding_mode = M::reflect};
  constexpr nn::Conv2dOptions gd{.in_channels = 2, .out_channels = 16, .kernel_size = 3, .dilation = 2};
  constexpr nn::Conv2dOptions gsh{.in_channels = 2, .out_channels = 12, .kernel_size = 5};
  constexpr nn::Conv2dOptions gfl{.in_channels = 2, .out_channels = 36, .kernel_size = {7, 1}};
  static_assert(gemm_dx_backward<gg, 10, 10> && outer_backward<gg, 10, 10>);
  static_assert(gemm_dx_backward<gd, 11, 11> && outer_backward<gd, 11, 11>);
  static_assert(ctnn::kernels::simd_width < 8 || (gemm_dx_backward<gsh, 12, 12> && shifted_backward<gsh, 12, 12>));
  static_assert(ctnn::kernels::simd_width < 8 ||
                (gemm_dx_backward<gfl, 9, 6> && !shifted_backward<gfl, 9, 6> && !outer_backward<gfl, 9, 6>));
  check_conv_grads_scalar<gg, true, 2, 10, 10>();
  check_conv_grads_scalar<gd, false, 3, 11, 11>();
  check_conv_grads_scalar<gsh, true, 2, 12, 12>();
  check_conv_grads_scalar<gfl, true, 2, 9, 6>();
  // as first layers (no input gradient asked for): the outer and the shifted weight gradients,
  // without and with the compact dz rows the dcol form would read
  check_conv_grads_scalar<og, true, 3, 7, 9, false>();
  check_conv_grads_scalar<gg, true, 2, 10, 10, false>();
  check_conv_grads_scalar<gsh, true, 2, 12, 12, false>();
}

// ---- Pooling -----------------------------------------------------------------------------------

TEST_CASE("MaxPool2d backward matches finite differences") {
  CHECK(check_grad<nn::MaxPool2d<{.kernel_size = 2}>, Shape<3, 5, 7>>() == 0);
  CHECK(check_grad<nn::MaxPool2d<{.kernel_size = 3, .stride = 1}>, Shape<2, 5, 7>>() == 0);
}

TEST_CASE("MaxPool2d backward with padding and dilation matches finite differences") {
  CHECK(check_grad<nn::MaxPool2d<{.kernel_size = {3, 2}, .stride = {2, 1}, .padding = 1, .dilation = 2}>,
                   Shape<2, 9, 7>>() == 0);
}

TEST_CASE("MaxPool2d backward with ceil_mode matches finite differences") {
  CHECK(check_grad<nn::MaxPool2d<{.kernel_size = 2, .ceil_mode = true}>, Shape<2, 5, 7>>() == 0);
  CHECK(check_grad<nn::MaxPool2d<{.kernel_size = 3, .stride = 2, .padding = 1, .dilation = 2, .ceil_mode = true}>,
                   Shape<2, 9, 7>>() == 0);
}

TEST_CASE("MaxPool2d backward sends the gradient to PyTorch's argmax: first maximum, last NaN") {
  constexpr float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  {
    Model<nn::MaxPool2d<{.kernel_size = 2}>, Shape<1, 4, 4>> net;
    Batch<Shape<1, 4, 4>> X(1, std::vector<float>{1, 3, 3, 0,  //
                                                  3, 2, nan, 1,  //
                                                  nan, 0, 5, nan,  //
                                                  -inf, -inf, 2, 1});
    net.set_input_requires_grad(true);
    net.forward(X);
    auto dy = net.output_grad();
    std::copy_n(std::vector<float>{1, 2, 3, 4}.begin(), 4, dy.begin());
    net.backward();
    const std::vector<float> dx(net.input_grad().begin(), net.input_grad().end());
    // torch: [[0, 1, 0, 0], [0, 0, 2, 0], [3, 0, 0, 4], [0, 0, 0, 0]]
    CHECK(dx == std::vector<float>{0, 1, 0, 0, 0, 0, 2, 0, 3, 0, 0, 4, 0, 0, 0, 0});
  }
  {
    Model<nn::MaxPool2d<{.kernel_size = 2}>, Shape<1, 2, 2>> net;
    Batch<Shape<1, 2, 2>> X(1, std::vector<float>{nan, 1, nan, 2});
    net.set_input_requires_grad(true);
    net.forward(X);
    net.output_grad().data()[0] = 1.0f;
    net.backward();
    const std::vector<float> dx(net.input_grad().begin(), net.input_grad().end());
    CHECK(dx == std::vector<float>{0, 0, 1, 0});  // the last NaN, as torch
  }
  {
    // windows of -inf with padding: each sends its gradient to its first cell inside the input
    Model<nn::MaxPool2d<{.kernel_size = 3, .stride = 1, .padding = 1}>, Shape<1, 3, 3>> net;
    Batch<Shape<1, 3, 3>> X(1, std::vector<float>(9, -inf));
    net.set_input_requires_grad(true);
    net.forward(X);
    auto dy = net.output_grad();
    std::fill(dy.begin(), dy.end(), 1.0f);
    net.backward();
    const std::vector<float> dx(net.input_grad().begin(), net.input_grad().end());
    CHECK(dx == std::vector<float>{4, 2, 0, 2, 1, 0, 0, 0, 0});  // torch's
  }
}

TEST_CASE("AvgPool2d backward with count_include_pad on and off matches finite differences") {
  CHECK(check_grad<nn::AvgPool2d<{.kernel_size = 2}>, Shape<3, 5, 7>>() == 0);
  CHECK(check_grad<nn::AvgPool2d<{.kernel_size = 3, .stride = 2, .padding = 1}>, Shape<2, 5, 7>>() == 0);
  CHECK(check_grad<nn::AvgPool2d<{.kernel_size = {3, 2}, .stride = {1, 2}, .padding = 1, .count_include_pad = false}>,
                   Shape<2, 5, 7>>() == 0);
}

namespace {

/// AvgPool2d<Opt> whose windows tile [C, H, W] exactly (forward: the even / odd permute path for
/// width 2; backward: the write-once path): the output and the input gradient of N samples against
/// window sums / divisor and dy[c, ih / KH, iw / KW] / divisor, twice (dx is overwritten).
template <nn::AvgPool2dOptions Opt, std::size_t C, std::size_t H, std::size_t W>
void check_tiling_avgpool_backward(std::size_t N) {
  constexpr std::size_t KH = Opt.kernel_size.h, KW = Opt.kernel_size.w, OH = H / KH, OW = W / KW;
  static_assert(H % KH == 0 && W % KW == 0);
  const double div = Opt.divisor_override != 0 ? double(Opt.divisor_override) : double(KH * KW);
  Model<nn::Sequential<nn::AvgPool2d<Opt>>, Shape<C, H, W>> net;
  Batch<Shape<C, H, W>> X(N);
  ctnn::Generator gen(3);
  ctnn::randn_(X, gen);
  net.set_input_requires_grad(true);
  for (int pass = 0; pass < 2; ++pass) {
    const auto Y = net.forward(X);
    const std::vector<float> y(Y.begin(), Y.end());
    const auto x = X.to_vector();
    REQUIRE(y.size() == N * C * OH * OW);
    std::size_t bad_y = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {  // forward: the window sums / divisor
      const std::size_t ow = i % OW, oh = i / OW % OH, nc = i / (OH * OW);
      double sum = 0;
      for (std::size_t a = 0; a < KH; ++a)
        for (std::size_t b = 0; b < KW; ++b) sum += x[(nc * H + oh * KH + a) * W + ow * KW + b];
      if (std::fabs(y[i] - sum / div) > 1e-5 * (1 + std::fabs(sum / div)) && bad_y++ < 5)
        FAIL_CHECK("y[" << i << "] = " << y[i] << ", want " << sum / div);
    }
    CHECK(bad_y == 0);
    auto dy = net.output_grad();
    ctnn::randn_(dy, gen);
    const std::vector<float> g(dy.begin(), dy.end());
    net.backward();
    const std::vector<float> dx(net.input_grad().begin(), net.input_grad().end());
    REQUIRE(dx.size() == N * C * H * W);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < dx.size(); ++i) {
      const std::size_t iw = i % W, ih = i / W % H, nc = i / (H * W);
      const double want = g[(nc * OH + ih / KH) * OW + iw / KW] / div;
      if (std::fabs(dx[i] - want) > 1e-6 * (1 + std::fabs(want)) && bad++ < 5)
        FAIL_CHECK("dx[" << i << "] = " << dx[i] << ", want " << want);
    }
    CHECK(bad == 0);
  }
}

}  // namespace

TEST_CASE("AvgPool2d forward and backward with windows that tile the input match a scalar reference") {
  check_tiling_avgpool_backward<{.kernel_size = 2}, 6, 28, 28>(3);         // LeNet: rows of 14 -> 8 + 6 lanes
  check_tiling_avgpool_backward<{.kernel_size = 2}, 16, 10, 10>(2);        // LeNet's second pool: 5 lanes
  check_tiling_avgpool_backward<{.kernel_size = {3, 2}}, 2, 9, 38>(2);     // rows of 19: 8 + 8 + 3
  check_tiling_avgpool_backward<{.kernel_size = 2, .divisor_override = 3}, 2, 4, 34>(2);
  check_tiling_avgpool_backward<{.kernel_size = 3, .count_include_pad = false}, 2, 6, 12>(2);  // KW 3: scalar rows
  check_tiling_avgpool_backward<{.kernel_size = {1, 4}, .stride = {1, 4}}, 3, 2, 36>(2);
  check_tiling_avgpool_backward<{.kernel_size = {1, 2}}, 2, 3, 64>(2);     // two whole steps of 32 columns
  check_tiling_avgpool_backward<{.kernel_size = {2, 2}}, 2, 4, 66>(2);     // 32 + 32 + a 2-column step
  check_tiling_avgpool_backward<{.kernel_size = 2}, 2, 2, 2>(3);           // one output per row
}

TEST_CASE("AvgPool2d backward with ceil_mode matches finite differences") {
  CHECK(check_grad<nn::AvgPool2d<{.kernel_size = 2, .ceil_mode = true}>, Shape<2, 5, 7>>() == 0);
  CHECK(check_grad<nn::AvgPool2d<{.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true}>, Shape<2, 5, 7>>() ==
        0);
  CHECK(check_grad<
            nn::AvgPool2d<{.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false}>,
            Shape<2, 5, 7>>() == 0);
}

TEST_CASE("AvgPool2d backward with divisor_override matches finite differences") {
  CHECK(
      check_grad<nn::AvgPool2d<{.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true, .divisor_override = 5}>,
                 Shape<2, 5, 7>>() == 0);
}

TEST_CASE("AdaptiveAvgPool2d backward matches finite differences") {
  CHECK(check_grad<nn::AdaptiveAvgPool2d<3, 2>, Shape<3, 7, 5>>() == 0);
  CHECK(check_grad<nn::AdaptiveAvgPool2d<1>, Shape<3, 7, 5>>() == 0);
  CHECK(check_grad<nn::AdaptiveAvgPool2d<5, 4>, Shape<2, 3, 3>>() == 0);  // overlapping windows
}

// ---- Networks ----------------------------------------------------------------------------------

TEST_CASE("D2L LeNet (sigmoid, avg pooling) backward matches finite differences end to end") {
  CHECK(check_grad<D2LLeNet, Shape<1, 28, 28>>(3, 1, lenet) == 0);
}

TEST_CASE("modern LeNet (ReLU, max pooling) backward matches finite differences end to end") {
  CHECK(check_grad<ModernLeNet, Shape<1, 28, 28>>(2, 1, lenet_relu) == 0);
}

TEST_CASE("conv + pool stack backward matches finite differences") {
  using Net = nn::Sequential<nn::Conv2d<{.in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1}>,
                             nn::ReLU, nn::MaxPool2d<{.kernel_size = 2, .ceil_mode = true}>,
                             nn::LazyConv2d<{.out_channels = 6, .kernel_size = 2, .groups = 2}>,
                             nn::AdaptiveAvgPool2d<1>, nn::Flatten, nn::LazyLinear<3>>;
  CHECK(check_grad<Net, Shape<3, 7, 9>>(2, 1, relu_net) == 0);
}

TEST_CASE("conv + pool gradients match PyTorch autograd") {
  const auto ref = ctnn_test::load_reference(ctnn_test::reference_path("conv_pool_backward.txt"));
  using Net = nn::Sequential<nn::Conv2d<{.in_channels = 2,
                                         .out_channels = 3,
                                         .kernel_size = 3,
                                         .stride = {2, 1},
                                         .padding = {1, 2},
                                         .dilation = 2,
                                         .padding_mode = nn::PaddingMode::reflect}>,
                             nn::ReLU, nn::MaxPool2d<{.kernel_size = 2, .ceil_mode = true}>,
                             nn::Conv2d<{.in_channels = 3, .out_channels = 4, .kernel_size = {2, 3}}>, nn::Sigmoid,
                             nn::AvgPool2d<{.kernel_size = 2, .padding = 1, .count_include_pad = false}>, nn::Flatten,
                             nn::LazyLinear<5>>;
  Model<Net, Shape<2, 11, 9>> net;
  ctnn_test::load_parameters(net, ref);
  const auto& x = ref.at("input");
  Batch<Shape<2, 11, 9>> X(x.shape[0], x.values);
  const auto Y = net.forward(X);
  ctnn_test::check_close({Y.data(), Y.numel()}, ref.at("output").values, 1e-5f, 1e-6f, "output");

  const auto& dy = ref.at("dy").values;
  REQUIRE(dy.size() == Y.numel());
  std::copy(dy.begin(), dy.end(), net.output_grad().begin());
  net.set_input_requires_grad(true);
  net.zero_grad();
  net.backward();
  for (auto&& [name, t] : net.state_dict()) {
    const auto& g = ref.at("grad." + name);
    REQUIRE(g.values.size() == t.numel());
    net.for_each_parameter([&](const std::string& pname, auto& p) {
      if (pname == name)
        ctnn_test::check_close({p.grad.data(), p.grad.numel()}, g.values, 1e-4f, 1e-5f, "grad." + name);
    });
  }
  const auto dx = net.input_grad();
  ctnn_test::check_close({dx.data(), dx.numel()}, ref.at("grad.input").values, 1e-4f, 1e-5f, "grad.input");
}

TEST_CASE("after the first step, a LeNet training step (forward + backward) allocates nothing") {
  Model<D2LLeNet, Shape<1, 28, 28>> net;
  auto X = ctnn::rand<Shape<1, 28, 28>>(16);
  CHECK(ctnn_test::steady_state_allocations([&] { ctnn_test::backward_step(net, X); }) == 0);

  Model<ModernLeNet, Shape<1, 28, 28>> modern;
  modern.set_input_requires_grad(true);
  CHECK(ctnn_test::steady_state_allocations([&] { ctnn_test::backward_step(modern, X); }) == 0);
}

// ---- The weights a Conv2d's forward keeps for its backward --------------------------------------

TEST_CASE("Conv2d's backward reads the weights its last forward kept, a copy keeps none, and gradcheck passes") {
  // A 3x3/pad-1 conv on a 1 x 1 map reads its centre tap alone: the forward keeps it for the
  // backward (kernels::conv2d_keeps_prepared); where every tap lives, nothing is kept. (192
  // channels: whole panels of the regions form with every instruction set.)
  using Spec = nn::Conv2d<{.in_channels = 192, .out_channels = 24, .kernel_size = 3, .padding = 1}>;
  using L = nn::bind_t<Spec, Shape<192, 1, 1>>;
  constexpr auto G = L::geometry;
  static_assert(L::keeps_prepared && ctnn::kernels::conv2d_keeps_prepared<G> && L::prepared_floats > 24 * 192);
  static_assert(!nn::bind_t<Spec, Shape<192, 4, 4>>::keeps_prepared);
  CHECK(check_grad<Spec, Shape<192, 1, 1>>(3) == 0);

  constexpr std::size_t n = 5, O = 24, C = 192, K = O * C * 9;
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> U(-1.0f, 1.0f);
  auto random = [&](std::size_t count) {
    std::vector<float> v(count);
    for (auto& e : v) e = U(gen);
    return v;
  };
  const auto x = random(n * C), w1 = random(K), w2 = random(K), b = random(O), g = random(n * O);
  auto scratch = ctnn::detail::allocate_floats(L::scratch_floats);
  // The kernels with nothing kept (checked against the scalar reference in test_forms): dx and dW for w.
  auto expected = [&](const std::vector<float>& w) {
    std::vector<float> y(n * O), dy = g, dw(K, 0.0f), db(O, 0.0f), dx(n * C);
    ctnn::kernels::conv2d_forward<G, true>(x.data(), w.data(), b.data(), y.data(), n, scratch.get());
    ctnn::kernels::conv2d_backward<G, true>(x.data(), w.data(), y.data(), dy.data(), dw.data(), db.data(), dx.data(), n,
                                            scratch.get());
    return std::pair{dx, dw};
  };
  // The layer's backward: dx, and dW from zero.
  auto backward = [&](L& layer, std::vector<float>& act) {
    std::vector<float> dy = g, dx(n * C);
    std::fill(layer.weight.grad.begin(), layer.weight.grad.end(), 0.0f);
    layer.backward(x.data(), dx.data(), n, act.data(), dy.data(), scratch.get());
    return std::pair{dx, std::vector<float>(layer.weight.grad.begin(), layer.weight.grad.end())};
  };
  L layer;
  std::copy(b.begin(), b.end(), layer.bias.begin());
  std::vector<float> act(n * L::activation_floats);
  std::copy(w1.begin(), w1.end(), layer.weight.begin());
  layer.forward(x.data(), n, act.data(), scratch.get());
  std::copy(w2.begin(), w2.end(), layer.weight.begin());
  layer.forward(x.data(), n, act.data(), scratch.get());  // keeps w2's centre tap
  const auto want2 = expected(w2);
  CHECK(backward(layer, act) == want2);
  // A copy keeps nothing: its backward reads its own weight (w1 here), not the original's w2.
  L copy = layer;
  std::copy(w1.begin(), w1.end(), copy.weight.begin());
  CHECK(backward(copy, act).first == expected(w1).first);
  // The original's backward still reads what its last forward kept: w2's, as PyTorch's autograd
  // reads the weight its forward saved (where it would refuse a weight changed in place since).
  std::copy(w1.begin(), w1.end(), layer.weight.begin());
  CHECK(backward(layer, act).first == want2.first);
  // Without dx (a first layer) the backward reads no weights (and prepares none): dW alone.
  std::vector<float> dy = g;
  std::fill(layer.weight.grad.begin(), layer.weight.grad.end(), 0.0f);
  layer.backward(x.data(), nullptr, n, act.data(), dy.data(), scratch.get());
  CHECK(std::vector<float>(layer.weight.grad.begin(), layer.weight.grad.end()) == want2.second);
}
