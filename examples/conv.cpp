// Dive into Deep Learning, chapter "Convolutional Neural Networks", in ctnn.
//
// Each section prints what the PyTorch code in the book prints (the PyTorch line is in the
// comment above the C++ that mirrors it). Shapes are types here, so the torch.Size lines
// come from the compiler; the forward passes run as well.
//
// Sections: Convolutions for Images (corr2d, edge detection), Padding and Stride, Multiple
// Input and Multiple Output Channels (corr2d_multi_in, 1x1 convolution), Pooling, LeNet.
// The section's "Learning a Kernel" (fitting a 1 x 2 kernel by gradient descent) is not shown
// here; Conv2d has a backward pass, and examples/lenet_fashion_mnist.cpp trains LeNet with it.
#include <cmath>
#include <cstddef>
#include <iostream>
#include <span>
#include <string>

#include <ctnn/ctnn.hpp>
#include <ctnn/models/d2l.hpp>

namespace nn = ctnn::nn;
using ctnn::Batch, ctnn::Model, ctnn::Shape, ctnn::Tensor;

namespace {

/// torch.Size([8, 8])
template <std::size_t... D>
std::string torch_size(Shape<D...>) {
  std::string s = "torch.Size([";
  std::size_t i = 0;
  ((s += (i++ ? ", " : "") + std::to_string(D)), ...);
  return s + "])";
}

/// d2l.corr2d_multi_in: sum over input channels of corr2d(X[c], K[c]).
template <std::size_t C, std::size_t H, std::size_t W, std::size_t KH, std::size_t KW>
Tensor<Shape<H - KH + 1, W - KW + 1>> corr2d_multi_in(const Tensor<Shape<C, H, W>>& X,
                                                      const Tensor<Shape<C, KH, KW>>& K) {
  Tensor<Shape<H - KH + 1, W - KW + 1>> Y;
  for (std::size_t c = 0; c < C; ++c) {
    const auto Yc = ctnn::corr2d(Tensor<Shape<H, W>>(std::span<const float>(X[c].data(), H * W)),
                                 Tensor<Shape<KH, KW>>(std::span<const float>(K[c].data(), KH * KW)));
    for (std::size_t i = 0; i < Yc.numel(); ++i) Y.data()[i] += Yc.data()[i];
  }
  return Y;
}

/// d2l.corr2d_multi_in_out: one corr2d_multi_in per output channel, stacked.
template <std::size_t O, std::size_t C, std::size_t H, std::size_t W, std::size_t KH, std::size_t KW>
Tensor<Shape<O, H - KH + 1, W - KW + 1>> corr2d_multi_in_out(const Tensor<Shape<C, H, W>>& X,
                                                             const Tensor<Shape<O, C, KH, KW>>& K) {
  constexpr std::size_t plane = (H - KH + 1) * (W - KW + 1);
  Tensor<Shape<O, H - KH + 1, W - KW + 1>> Y;
  for (std::size_t o = 0; o < O; ++o) {
    const auto Yo = corr2d_multi_in(X, Tensor<Shape<C, KH, KW>>(std::span<const float>(K[o].data(), C * KH * KW)));
    std::copy_n(Yo.data(), plane, Y.data() + o * plane);
  }
  return Y;
}

/// comp_conv2d: the output shape of a one-layer net on an 8x8 image (batch and channel 1).
template <nn::Conv2dOptions Opt>
std::string comp_conv2d() {
  Model<nn::Sequential<nn::Conv2d<Opt>>, Shape<1, 8, 8>> net;
  const auto X = ctnn::rand<Shape<1, 8, 8>>(1);
  const auto Y = net(X);  // runs, though the shape is already known
  (void)Y;
  using S = typename decltype(net)::output_shape_type;
  return torch_size(Shape<S::dims[1], S::dims[2]>{});
}

/// d2l's pool2d(X, pool_size, mode) for a single-channel 2-d tensor, written out.
template <std::size_t H, std::size_t W, std::size_t PH, std::size_t PW>
Tensor<Shape<H - PH + 1, W - PW + 1>> pool2d(const Tensor<Shape<H, W>>& X, bool max) {
  Tensor<Shape<H - PH + 1, W - PW + 1>> Y;
  for (std::size_t i = 0; i < H - PH + 1; ++i)
    for (std::size_t j = 0; j < W - PW + 1; ++j) {
      float acc = max ? X(i, j) : 0.0f;
      for (std::size_t a = 0; a < PH; ++a)
        for (std::size_t b = 0; b < PW; ++b) acc = max ? std::max(acc, X(i + a, j + b)) : acc + X(i + a, j + b);
      Y(i, j) = max ? acc : acc / static_cast<float>(PH * PW);
    }
  return Y;
}

}  // namespace

int main() {
  std::cout << "== Convolutions for Images ==\n";
  // X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
  // K = torch.tensor([[0.0, 1.0], [2.0, 3.0]]); corr2d(X, K)
  Tensor<Shape<3, 3>> X{0, 1, 2, 3, 4, 5, 6, 7, 8};
  Tensor<Shape<2, 2>> K{0, 1, 2, 3};
  std::cout << ctnn::corr2d(X, K) << '\n';

  // X = torch.ones((6, 8)); X[:, 2:6] = 0; X
  Tensor<Shape<6, 8>> img;
  for (std::size_t i = 0; i < 6; ++i)
    for (std::size_t j = 0; j < 8; ++j) img(i, j) = (j >= 2 && j < 6) ? 0.0f : 1.0f;
  std::cout << img << '\n';
  // K = torch.tensor([[1.0, -1.0]]); Y = corr2d(X, K); Y
  const Tensor<Shape<1, 2>> edge{1.0f, -1.0f};
  std::cout << ctnn::corr2d(img, edge) << '\n';
  // corr2d(X.t(), K): the kernel only sees vertical edges
  Tensor<Shape<8, 6>> img_t;
  for (std::size_t i = 0; i < 6; ++i)
    for (std::size_t j = 0; j < 8; ++j) img_t(j, i) = img(i, j);
  std::cout << ctnn::corr2d(img_t, edge) << '\n';

  std::cout << "\n== Padding and Stride ==\n";
  // conv2d = nn.LazyConv2d(1, kernel_size=3, padding=1); comp_conv2d(conv2d, X).shape
  std::cout << comp_conv2d<{.in_channels = 1, .out_channels = 1, .kernel_size = 3, .padding = 1}>() << '\n';
  // conv2d = nn.LazyConv2d(1, kernel_size=(5, 3), padding=(2, 1))
  std::cout << comp_conv2d<{.in_channels = 1, .out_channels = 1, .kernel_size = {5, 3}, .padding = {2, 1}}>() << '\n';
  // conv2d = nn.LazyConv2d(1, kernel_size=3, padding=1, stride=2)
  std::cout << comp_conv2d<{.in_channels = 1, .out_channels = 1, .kernel_size = 3, .stride = 2, .padding = 1}>()
            << '\n';
  // conv2d = nn.LazyConv2d(1, kernel_size=(3, 5), padding=(0, 1), stride=(3, 4))
  std::cout << comp_conv2d<
                   {.in_channels = 1, .out_channels = 1, .kernel_size = {3, 5}, .stride = {3, 4}, .padding = {0, 1}}>()
            << '\n';

  std::cout << "\n== Multiple Input and Multiple Output Channels ==\n";
  // X = torch.tensor([[[0..8]], [[1..9]]]); K = torch.tensor([[[0, 1], [2, 3]], [[1, 2], [3, 4]]])
  Tensor<Shape<2, 3, 3>> X2{0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  Tensor<Shape<2, 2, 2>> K2{0, 1, 2, 3, 1, 2, 3, 4};
  // corr2d_multi_in(X, K)
  std::cout << corr2d_multi_in(X2, K2) << '\n';
  // K = torch.stack((K, K + 1, K + 2), 0); K.shape
  Tensor<Shape<3, 2, 2, 2>> K3;
  for (std::size_t o = 0; o < 3; ++o)
    for (std::size_t i = 0; i < 8; ++i) K3.data()[o * 8 + i] = K2.data()[i] + static_cast<float>(o);
  std::cout << torch_size(K3.shape) << '\n';
  // corr2d_multi_in_out(X, K)
  std::cout << corr2d_multi_in_out(X2, K3) << '\n';
  // The same with a Conv2d layer whose weight is K (bias=False): one GEMM-based kernel call.
  Model<nn::Sequential<nn::Conv2d<{.in_channels = 2, .out_channels = 3, .kernel_size = 2, .bias = false}>>,
        Shape<2, 3, 3>>
      conv;
  std::copy_n(K3.data(), K3.numel(), conv.get<0>().weight.data());
  std::cout << conv(X2) << '\n';

  // 1x1 convolution = a fully connected layer applied at every pixel:
  // X = torch.normal(0, 1, (3, 3, 3)); K = torch.normal(0, 1, (2, 3, 1, 1))
  // Y1 = corr2d_multi_in_out_1x1(X, K); Y2 = corr2d_multi_in_out(X, K); assert float(torch.abs(Y1 - Y2).sum()) < 1e-6
  ctnn::manual_seed(0);
  auto X3 = ctnn::randn<Shape<3, 3, 3>>();
  auto K1 = ctnn::randn<Shape<2, 3, 1, 1>>();
  const auto Y2 = corr2d_multi_in_out(X3, K1);
  Model<nn::Sequential<nn::Conv2d<{.in_channels = 3, .out_channels = 2, .kernel_size = 1, .bias = false}>>,
        Shape<3, 3, 3>>
      conv1x1;
  std::copy_n(K1.data(), K1.numel(), conv1x1.get<0>().weight.data());
  const auto Y1 = conv1x1(X3);
  float diff = 0;
  for (std::size_t i = 0; i < Y1.numel(); ++i) diff += std::fabs(Y1.data()[i] - Y2.data()[i]);
  std::cout << "float(torch.abs(Y1 - Y2).sum()) < 1e-6: " << (diff < 1e-6f ? "True" : "False") << '\n';

  std::cout << "\n== Pooling ==\n";
  // X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]); pool2d(X, (2, 2))
  std::cout << pool2d<3, 3, 2, 2>(X, true) << '\n';
  // pool2d(X, (2, 2), 'avg')
  std::cout << pool2d<3, 3, 2, 2>(X, false) << '\n';
  // X = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4)); X
  Batch<Shape<1, 4, 4>> X4(1);
  for (std::size_t i = 0; i < 16; ++i) X4.data()[i] = static_cast<float>(i);
  std::cout << X4 << '\n';
  // pool2d = nn.MaxPool2d(3); pool2d(X)
  std::cout << Model<nn::Sequential<nn::MaxPool2d<{.kernel_size = 3}>>, Shape<1, 4, 4>>{}(X4) << '\n';
  // pool2d = nn.MaxPool2d(3, padding=1, stride=2); pool2d(X)
  std::cout << Model<nn::Sequential<nn::MaxPool2d<{.kernel_size = 3, .stride = 2, .padding = 1}>>, Shape<1, 4, 4>>{}(X4)
            << '\n';
  // pool2d = nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1)); pool2d(X)
  std::cout << Model<nn::Sequential<nn::MaxPool2d<{.kernel_size = {2, 3}, .stride = {2, 3}, .padding = {0, 1}}>>,
                     Shape<1, 4, 4>>{}(X4)
            << '\n';
  // X = torch.cat((X, X + 1), 1); X
  Batch<Shape<2, 4, 4>> X5(1);
  for (std::size_t i = 0; i < 32; ++i) X5.data()[i] = static_cast<float>(i % 16 + i / 16);
  std::cout << X5 << '\n';
  // pool2d = nn.MaxPool2d(3, padding=1, stride=2); pool2d(X)
  std::cout << Model<nn::Sequential<nn::MaxPool2d<{.kernel_size = 3, .stride = 2, .padding = 1}>>, Shape<2, 4, 4>>{}(X5)
            << '\n';
  // nn.AvgPool2d(3, padding=1, stride=2)(X[:, :1]): padding counts in the divisor (count_include_pad=True)
  std::cout << Model<nn::Sequential<nn::AvgPool2d<{.kernel_size = 3, .stride = 2, .padding = 1}>>, Shape<1, 4, 4>>{}(X4)
            << '\n';

  std::cout << "\n== LeNet ==\n";
  // D2L's LeNet, with the book's PyTorch code beside it: include/ctnn/models/d2l.hpp.
  using ctnn::models::LeNet;
  Model<LeNet, Shape<1, 28, 28>> net;
  // for layer in net: X = layer(X); print(layer.__class__.__name__, 'output shape:\t', X.shape)
  net.network().for_each_indexed([](const auto& layer, std::size_t) {
    using L = std::remove_cvref_t<decltype(layer)>;
    std::string dims = "torch.Size([1";
    for (auto d : L::output_shape::dims) dims += ", " + std::to_string(d);
    std::cout << L::type_name() << " output shape:\t " << dims << "])\n";
  });
  static_assert(decltype(net)::parameter_count == 61'706);
  std::cout << net << '\n' << net.summary();
  const auto y = net(ctnn::rand<Shape<1, 28, 28>>(1));
  std::cout << "net(X) for X = torch.rand(1, 1, 28, 28): " << y << '\n';
}
