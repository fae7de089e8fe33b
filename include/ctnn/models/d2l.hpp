// Dive into Deep Learning's networks and custom blocks as types (ctnn::models): one spelling of
// each network and block of the book that examples, tests and benchmarks share, and that users
// can take as they are.
//
//   #include <ctnn/models/d2l.hpp>
//   ctnn::Model<ctnn::models::LeNet, ctnn::models::FashionMNISTImage> net;   // d2l's LeNet()
//
// Conventions:
//   - a network is a spec (an nn::Sequential alias), named as the book names its class; bind it
//     to an input with ctnn::Model<Net, Shape<...>>. Its PyTorch code, as the book writes it, is
//     in the comment above it; where ctnn's spelling differs (a first layer with explicit
//     in_channels so the spec binds to one input), the comment says so.
//   - the book's builder functions (vgg_block(num_convs, out_channels), nin_block(...), the
//     Residual class) become alias templates whose template arguments are the function's
//     arguments, defined just above the network that uses them.
//   - the input shape the book trains a network on is named beside it (FashionMNISTImage; the
//     later chapters resize Fashion-MNIST to 224 x 224 or 96 x 96).
//   - a custom block of the book (class MLP(nn.Module)) is a struct template over its input
//     shape that derives nn::Block (docs/custom_blocks.md); bind it with nn::block<MLP>, as in
//     ctnn::Model<nn::block<MLP>, Shape<20>>. A block whose constructor takes arguments
//     (MyLinear(in_units, units)) is a spec template whose template arguments are those
//     arguments: nn::Sequential<MyLinear<64, 8>, MyLinear<8, 1>>.
//   - sections follow the book's chapters, in its order (d2l.ai, PyTorch edition).
// This header only names types: nothing here binds a network (no Model is instantiated), so
// including it costs next to nothing.
#pragma once

#include <cstddef>
#include <string>
#include <tuple>
#include <utility>

#include "ctnn/core/random.hpp"
#include "ctnn/core/shape.hpp"
#include "ctnn/core/tensor.hpp"
#include "ctnn/nn/activation.hpp"
#include "ctnn/nn/batchnorm.hpp"
#include "ctnn/nn/block.hpp"
#include "ctnn/nn/conv2d.hpp"
#include "ctnn/nn/dropout.hpp"
#include "ctnn/nn/flatten.hpp"
#include "ctnn/nn/graph.hpp"
#include "ctnn/nn/linear.hpp"
#include "ctnn/nn/pool2d.hpp"
#include "ctnn/nn/sequential.hpp"

namespace ctnn::models {

/// One Fashion-MNIST image: 1 channel of 28 x 28 (d2l.FashionMNIST(resize=(28, 28))).
using FashionMNISTImage = Shape<1, 28, 28>;

// ---- 6.1 Layers and Modules ----------------------------------------------------------------

/// D2L's MLP, the first custom module: a hidden LazyLinear(256), ReLU, an output LazyLinear(10).
///
///   class MLP(nn.Module):
///       def __init__(self):
///           super().__init__()
///           self.hidden = nn.LazyLinear(256)
///           self.out = nn.LazyLinear(10)
///       def forward(self, X):
///           return self.out(F.relu(self.hidden(X)))
template <class In>
struct MLP : nn::Block<MLP<In>> {
  nn::Layer<nn::LazyLinear<256>, In> hidden;
  nn::Layer<nn::LazyLinear<10>, nn::output_t<decltype(hidden)>> out;
  CTNN_MEMBERS(hidden, out)
  auto forward(auto X) { return out(relu(hidden(X))); }
  static std::string type_name() { return "MLP"; }
};

/// D2L's MySequential, with three children (A, B, C are specs: nn::block<MySequential,
/// nn::LazyLinear<256>, nn::ReLU, nn::LazyLinear<10>>); their names are "0", "1", "2", as
/// add_module(str(idx)) gives.
///
///   class MySequential(nn.Module):
///       def __init__(self, *args):
///           super().__init__()
///           for idx, module in enumerate(args):
///               self.add_module(str(idx), module)
///       def forward(self, X):
///           for module in self.children():
///               X = module(X)
///           return X
template <class In, class A, class B, class C>
struct MySequential : nn::Block<MySequential<In, A, B, C>> {
  nn::Layer<A, In> m0;
  nn::Layer<B, nn::output_t<decltype(m0)>> m1;
  nn::Layer<C, nn::output_t<decltype(m1)>> m2;
  CTNN_MEMBERS_AS("0, 1, 2", m0, m1, m2)
  auto forward(auto X) { return m2(m1(m0(X))); }
  static std::string type_name() { return "MySequential"; }
};

/// D2L's FixedHiddenMLP: a constant weight, one Linear used twice, a data-dependent loop.
///
///   class FixedHiddenMLP(nn.Module):
///       def __init__(self):
///           super().__init__()
///           # Random weight parameters that will not compute gradients and
///           # therefore keep constant during training
///           self.rand_weight = torch.rand((20, 20))
///           self.linear = nn.LazyLinear(20)
///       def forward(self, X):
///           X = self.linear(X)
///           X = F.relu(X @ self.rand_weight + 1)
///           # Reuse the fully connected layer. This is equivalent to sharing
///           # parameters with two fully connected layers
///           X = self.linear(X)
///           # Control flow
///           while X.abs().sum() > 1:
///               X /= 2
///           return X.sum()
///
/// rand_weight is a Tensor, not a Param: a constant, no gradient, drawn in reset_parameters.
/// X.sum() is over the whole batch, as in PyTorch: the block's output is one value for any N
/// (Shape<>, batched_output = false), and the while condition sees the whole batch too. The
/// halvings are a run-time scale: a constant for the derivative, as PyTorch's in-place X /= 2.
template <class In>
struct FixedHiddenMLP : nn::Block<FixedHiddenMLP<In>> {
  ctnn::Tensor<Shape<20, 20>> rand_weight;
  nn::Layer<nn::LazyLinear<20>, In> linear;
  CTNN_MEMBERS(rand_weight, linear)
  void reset_parameters(ctnn::Generator& gen) { ctnn::rand_(rand_weight, gen); }
  auto forward(auto X) {
    auto H = linear(relu(mm(linear(X), rand_weight) + 1));
    float scale = 1.0f;
    while ((H * scale).abs().sum().item() > 1.0f) scale /= 2.0f;  // X /= 2
    return (H * scale).sum();
  }
  static std::string type_name() { return "FixedHiddenMLP"; }
};

// ---- 6.5 Custom Layers ----------------------------------------------------------------------

/// D2L's CenteredLayer, a layer without parameters. X.mean() is the mean of the whole batch,
/// as in PyTorch.
///
///   class CenteredLayer(nn.Module):
///       def __init__(self):
///           super().__init__()
///       def forward(self, X):
///           return X - X.mean()
template <class In>
struct CenteredLayer : nn::Block<CenteredLayer<In>> {
  auto forward(auto X) { return X - X.mean(); }
  static std::string type_name() { return "CenteredLayer"; }
};

/// D2L's MyLinear, a layer with parameters. MyLinear<64, 8> is itself a spec (a type with
/// `bind`), so nn::Sequential<MyLinear<64, 8>, MyLinear<8, 1>> reads like
/// nn.Sequential(MyLinear(64, 8), MyLinear(8, 1)); its parameters draw from torch.randn, as
/// the book's do.
///
///   class MyLinear(nn.Module):
///       def __init__(self, in_units, units):
///           super().__init__()
///           self.weight = nn.Parameter(torch.randn(in_units, units))
///           self.bias = nn.Parameter(torch.randn(units,))
///       def forward(self, X):
///           linear = torch.matmul(X, self.weight.data) + self.bias.data
///           return F.relu(linear)
template <std::size_t InUnits, std::size_t Units>
struct MyLinear {
  template <class In>
  struct type : nn::Block<type<In>> {
    nn::Param<Shape<InUnits, Units>> weight;  // torch.randn by default
    nn::Param<Shape<Units>> bias;
    CTNN_MEMBERS(weight, bias)
    auto forward(auto X) { return relu(matmul(X, weight) + bias); }
    static std::string type_name() { return "MyLinear"; }
  };
  template <class In, class Path>
  using bind = nn::BoundBlock<type<In>, Path>;
};

// ---- 7.6 Convolutional Neural Networks (LeNet) --------------------------------------------

/// D2L's LeNet: sigmoid activations, average pooling; 61,706 parameters on a FashionMNISTImage.
/// The channels and features after the first layer are inferred, as the book's Lazy layers do.
///
///   class LeNet(d2l.Classifier):
///       def __init__(self, lr=0.1, num_classes=10):
///           super().__init__()
///           self.save_hyperparameters()
///           self.net = nn.Sequential(
///               nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(),
///               nn.AvgPool2d(kernel_size=2, stride=2),
///               nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(),
///               nn.AvgPool2d(kernel_size=2, stride=2),
///               nn.Flatten(),
///               nn.LazyLinear(120), nn.Sigmoid(),
///               nn.LazyLinear(84), nn.Sigmoid(),
///               nn.LazyLinear(num_classes))
///
/// (the first layer is nn.Conv2d(1, 6, kernel_size=5, padding=2) here: the same layer once
/// bound, and it says the network takes one channel.)
using LeNet = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>,
                             nn::Sigmoid, nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>,
                             nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>, nn::Sigmoid,
                             nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>, nn::Flatten, nn::LazyLinear<120>,
                             nn::Sigmoid, nn::LazyLinear<84>, nn::Sigmoid, nn::LazyLinear<10>>;

/// LeNet with ReLU and max pooling (the section's exercises: max pooling in place of average
/// pooling, ReLU in place of the sigmoid); it trains with a smaller learning rate (about 0.1).
///
///   nn.Sequential(
///       nn.LazyConv2d(6, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
///       nn.LazyConv2d(16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
///       nn.Flatten(), nn.LazyLinear(120), nn.ReLU(), nn.LazyLinear(84), nn.ReLU(), nn.LazyLinear(10))
using ModernLeNet = nn::Sequential<nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>,
                                   nn::ReLU, nn::MaxPool2d<{.kernel_size = 2, .stride = 2}>,
                                   nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>, nn::ReLU,
                                   nn::MaxPool2d<{.kernel_size = 2, .stride = 2}>, nn::Flatten, nn::LazyLinear<120>,
                                   nn::ReLU, nn::LazyLinear<84>, nn::ReLU, nn::LazyLinear<10>>;

// ---- 8 Modern Convolutional Neural Networks ---------------------------------------------------
// The book trains these on Fashion-MNIST resized to 224 x 224 (AlexNet, VGG, NiN) or 96 x 96
// (GoogLeNet, ResNet, DenseNet); BatchNormLeNet, ResNet18 and GoogLeNet also bind at 28 x 28.
// Parameter counts (PyTorch's, 10 classes, one input channel) are checked in tests/test_zoo.cpp.

/// One Fashion-MNIST image resized as chapter 8 does (d2l.FashionMNIST(resize=(224, 224))).
using FashionMNIST224 = Shape<1, 224, 224>;
/// d2l.FashionMNIST(resize=(96, 96)) (GoogLeNet, ResNet, DenseNet).
using FashionMNIST96 = Shape<1, 96, 96>;

namespace detail {
/// nn::Sequential<Ts..., Tail...> from a std::tuple<Ts...> (a flat list built by tuple_cat).
template <class Tuple, class... Tail>
struct sequential_of;
template <class... Ts, class... Tail>
struct sequential_of<std::tuple<Ts...>, Tail...> {
  using type = nn::Sequential<Ts..., Tail...>;
};
template <std::size_t C, class Is>
struct vgg_block;
template <std::size_t C, std::size_t... I>
struct vgg_block<C, std::index_sequence<I...>> {
  template <std::size_t>
  using conv_relu = std::tuple<nn::LazyConv2d<{.out_channels = C, .kernel_size = 3, .padding = 1}>, nn::ReLU>;
  using type = typename sequential_of<decltype(std::tuple_cat(conv_relu<I>{}...)),
                                      nn::MaxPool2d<{.kernel_size = 2, .stride = 2}>>::type;
};
}  // namespace detail

/// D2L 8.1's AlexNet (224 x 224).
///
///   nn.Sequential(
///       nn.LazyConv2d(96, kernel_size=11, stride=4, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
///       nn.LazyConv2d(256, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
///       nn.LazyConv2d(384, kernel_size=3, padding=1), nn.ReLU(),
///       nn.LazyConv2d(384, kernel_size=3, padding=1), nn.ReLU(),
///       nn.LazyConv2d(256, kernel_size=3, padding=1), nn.ReLU(),
///       nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
///       nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
///       nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
///       nn.LazyLinear(num_classes))
using AlexNet =
    nn::Sequential<nn::LazyConv2d<{.out_channels = 96, .kernel_size = 11, .stride = 4, .padding = 1}>, nn::ReLU,
                   nn::MaxPool2d<{.kernel_size = 3, .stride = 2}>,
                   nn::LazyConv2d<{.out_channels = 256, .kernel_size = 5, .padding = 2}>, nn::ReLU,
                   nn::MaxPool2d<{.kernel_size = 3, .stride = 2}>,
                   nn::LazyConv2d<{.out_channels = 384, .kernel_size = 3, .padding = 1}>, nn::ReLU,
                   nn::LazyConv2d<{.out_channels = 384, .kernel_size = 3, .padding = 1}>, nn::ReLU,
                   nn::LazyConv2d<{.out_channels = 256, .kernel_size = 3, .padding = 1}>, nn::ReLU,
                   nn::MaxPool2d<{.kernel_size = 3, .stride = 2}>, nn::Flatten, nn::LazyLinear<4096>, nn::ReLU,
                   nn::Dropout<0.5f>, nn::LazyLinear<4096>, nn::ReLU, nn::Dropout<0.5f>, nn::LazyLinear<10>>;

/// D2L 8.2's vgg_block(num_convs, out_channels): num_convs 3x3 convolutions with ReLU, then a
/// 2x2 max pool (one flat Sequential, as the book's nn.Sequential(*layers)).
template <std::size_t NumConvs, std::size_t OutChannels>
using vgg_block = typename detail::vgg_block<OutChannels, std::make_index_sequence<NumConvs>>::type;

/// D2L 8.2's VGG(arch) with the dense head; VGG11 is arch ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)).
///
///   conv_blks = [vgg_block(*b) for b in arch]
///   nn.Sequential(*conv_blks, nn.Flatten(),
///       nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
///       nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
///       nn.LazyLinear(num_classes))
template <class... Blocks>
using VGG = nn::Sequential<Blocks..., nn::Flatten, nn::LazyLinear<4096>, nn::ReLU, nn::Dropout<0.5f>,
                           nn::LazyLinear<4096>, nn::ReLU, nn::Dropout<0.5f>, nn::LazyLinear<10>>;
using VGG11 = VGG<vgg_block<1, 64>, vgg_block<1, 128>, vgg_block<2, 256>, vgg_block<2, 512>, vgg_block<2, 512>>;

/// D2L 8.3's nin_block(out_channels, kernel_size, strides, padding).
///
///   nn.Sequential(
///       nn.LazyConv2d(out_channels, kernel_size, strides, padding), nn.ReLU(),
///       nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU(),
///       nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU())
template <std::size_t OutChannels, std::size_t KernelSize, std::size_t Stride, std::size_t Padding>
using nin_block = nn::Sequential<
    nn::LazyConv2d<{.out_channels = OutChannels, .kernel_size = KernelSize, .stride = Stride, .padding = Padding}>,
    nn::ReLU, nn::LazyConv2d<{.out_channels = OutChannels, .kernel_size = 1}>, nn::ReLU,
    nn::LazyConv2d<{.out_channels = OutChannels, .kernel_size = 1}>, nn::ReLU>;

/// D2L 8.3's NiN (224 x 224).
///
///   nn.Sequential(
///       nin_block(96, kernel_size=11, strides=4, padding=0), nn.MaxPool2d(3, stride=2),
///       nin_block(256, kernel_size=5, strides=1, padding=2), nn.MaxPool2d(3, stride=2),
///       nin_block(384, kernel_size=3, strides=1, padding=1), nn.MaxPool2d(3, stride=2),
///       nn.Dropout(0.5), nin_block(num_classes, kernel_size=3, strides=1, padding=1),
///       nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
using NiN = nn::Sequential<nin_block<96, 11, 4, 0>, nn::MaxPool2d<{.kernel_size = 3, .stride = 2}>,
                           nin_block<256, 5, 1, 2>, nn::MaxPool2d<{.kernel_size = 3, .stride = 2}>,
                           nin_block<384, 3, 1, 1>, nn::MaxPool2d<{.kernel_size = 3, .stride = 2}>, nn::Dropout<0.5f>,
                           nin_block<10, 3, 1, 1>, nn::AdaptiveAvgPool2d<1, 1>, nn::Flatten>;

/// D2L 8.4's Inception(c1, c2, c3, c4): four branches concatenated along the channels
/// (c1 + c2[1] + c3[1] + c4 channels out). The book's class names its convolutions b1_1 ...
/// b4_2; here they are branch 0..3's layers ("0.0.weight" is b1_1.weight).
///
///   b1 = F.relu(self.b1_1(x))                                  # 1x1, c1
///   b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))               # 1x1 c2[0], 3x3 c2[1]
///   b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))               # 1x1 c3[0], 5x5 c3[1]
///   b4 = F.relu(self.b4_2(self.b4_1(x)))                       # 3x3 max pool, 1x1 c4
///   return torch.cat((b1, b2, b3, b4), dim=1)
template <std::size_t C1, std::size_t C2a, std::size_t C2b, std::size_t C3a, std::size_t C3b, std::size_t C4>
using Inception =
    nn::Concat<nn::Sequential<nn::LazyConv2d<{.out_channels = C1, .kernel_size = 1}>, nn::ReLU>,
               nn::Sequential<nn::LazyConv2d<{.out_channels = C2a, .kernel_size = 1}>, nn::ReLU,
                              nn::LazyConv2d<{.out_channels = C2b, .kernel_size = 3, .padding = 1}>, nn::ReLU>,
               nn::Sequential<nn::LazyConv2d<{.out_channels = C3a, .kernel_size = 1}>, nn::ReLU,
                              nn::LazyConv2d<{.out_channels = C3b, .kernel_size = 5, .padding = 2}>, nn::ReLU>,
               nn::Sequential<nn::MaxPool2d<{.kernel_size = 3, .stride = 1, .padding = 1}>,
                              nn::LazyConv2d<{.out_channels = C4, .kernel_size = 1}>, nn::ReLU>>;

using MaxPool3s2p1 = nn::MaxPool2d<{.kernel_size = 3, .stride = 2, .padding = 1}>;

/// D2L 8.4's GoogLeNet (96 x 96): the stem b1, b2, then Inception stages b3, b4, b5 and the head.
using GoogLeNet = nn::Sequential<
    nn::Sequential<nn::LazyConv2d<{.out_channels = 64, .kernel_size = 7, .stride = 2, .padding = 3}>, nn::ReLU,
                   MaxPool3s2p1>,
    nn::Sequential<nn::LazyConv2d<{.out_channels = 64, .kernel_size = 1}>, nn::ReLU,
                   nn::LazyConv2d<{.out_channels = 192, .kernel_size = 3, .padding = 1}>, nn::ReLU, MaxPool3s2p1>,
    nn::Sequential<Inception<64, 96, 128, 16, 32, 32>, Inception<128, 128, 192, 32, 96, 64>, MaxPool3s2p1>,
    nn::Sequential<Inception<192, 96, 208, 16, 48, 64>, Inception<160, 112, 224, 24, 64, 64>,
                   Inception<128, 128, 256, 24, 64, 64>, Inception<112, 144, 288, 32, 64, 64>,
                   Inception<256, 160, 320, 32, 128, 128>, MaxPool3s2p1>,
    nn::Sequential<Inception<256, 160, 320, 32, 128, 128>, Inception<384, 192, 384, 48, 128, 128>,
                   nn::AdaptiveAvgPool2d<1, 1>, nn::Flatten>,
    nn::LazyLinear<10>>;

/// D2L 8.5's BNLeNet (concise): LeNet with a BatchNorm after each convolution and linear layer.
///
///   nn.Sequential(
///       nn.LazyConv2d(6, kernel_size=5), nn.LazyBatchNorm2d(), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
///       nn.LazyConv2d(16, kernel_size=5), nn.LazyBatchNorm2d(), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
///       nn.Flatten(), nn.LazyLinear(120), nn.LazyBatchNorm1d(), nn.Sigmoid(),
///       nn.LazyLinear(84), nn.LazyBatchNorm1d(), nn.Sigmoid(), nn.LazyLinear(num_classes))
using BNLeNet = nn::Sequential<nn::LazyConv2d<{.out_channels = 6, .kernel_size = 5}>, nn::LazyBatchNorm2d<>,
                               nn::Sigmoid, nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>,
                               nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>, nn::LazyBatchNorm2d<>,
                               nn::Sigmoid, nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>, nn::Flatten,
                               nn::LazyLinear<120>, nn::LazyBatchNorm1d<>, nn::Sigmoid, nn::LazyLinear<84>,
                               nn::LazyBatchNorm1d<>, nn::Sigmoid, nn::LazyLinear<10>>;

/// D2L 8.6's Residual(num_channels, use_1x1conv, strides), followed by its final ReLU.
///
///   Y = F.relu(self.bn1(self.conv1(X)))           # 3x3, stride `strides`
///   Y = self.bn2(self.conv2(Y))                   # 3x3
///   if self.conv3: X = self.conv3(X)              # 1x1, stride `strides`
///   Y += X
///   return F.relu(Y)
template <std::size_t C, bool Use1x1Conv = false, std::size_t Stride = 1>
using Residual = nn::Sequential<
    nn::Residual<
        nn::Sequential<nn::LazyConv2d<{.out_channels = C, .kernel_size = 3, .stride = Stride, .padding = 1}>,
                       nn::LazyBatchNorm2d<>, nn::ReLU,
                       nn::LazyConv2d<{.out_channels = C, .kernel_size = 3, .padding = 1}>, nn::LazyBatchNorm2d<>>,
        std::conditional_t<Use1x1Conv, nn::LazyConv2d<{.out_channels = C, .kernel_size = 1, .stride = Stride}>,
                           nn::Identity>>,
    nn::ReLU>;

/// ResNet's stem b1 (also DenseNet's): 7x7/2 convolution, BatchNorm, ReLU, 3x3/2 max pool.
using ResNetStem = nn::Sequential<nn::LazyConv2d<{.out_channels = 64, .kernel_size = 7, .stride = 2, .padding = 3}>,
                                  nn::LazyBatchNorm2d<>, nn::ReLU, MaxPool3s2p1>;

/// D2L 8.6's ResNet.block(num_residuals = 2, num_channels, first_block): the first residual
/// halves the size and gets a 1x1 shortcut, except in the first stage.
template <std::size_t C, bool FirstBlock = false>
using resnet_block = nn::Sequential<std::conditional_t<FirstBlock, Residual<C>, Residual<C, true, 2>>, Residual<C>>;

/// D2L 8.6's ResNet18: arch ((2, 64), (2, 128), (2, 256), (2, 512)), then global average pooling
/// and the classifier (the book's `last` Sequential, here its three layers in line).
using ResNet18 = nn::Sequential<ResNetStem, resnet_block<64, true>, resnet_block<128>, resnet_block<256>,
                                resnet_block<512>, nn::AdaptiveAvgPool2d<1, 1>, nn::Flatten, nn::LazyLinear<10>>;

/// D2L 8.7's conv_block(num_channels): BatchNorm, ReLU, 3x3 convolution.
template <std::size_t C>
using dense_conv_block = nn::Sequential<nn::LazyBatchNorm2d<>, nn::ReLU,
                                        nn::LazyConv2d<{.out_channels = C, .kernel_size = 3, .padding = 1}>>;
namespace detail {
template <std::size_t GrowthRate, class Is>
struct dense_block;
template <std::size_t GrowthRate, std::size_t... I>
struct dense_block<GrowthRate, std::index_sequence<I...>> {
  template <std::size_t>
  using step = nn::Concat<nn::Identity, dense_conv_block<GrowthRate>>;
  using type = nn::Sequential<step<I>...>;
};
}  // namespace detail
/// D2L 8.7's DenseBlock(num_convs, num_channels): each conv_block's output is concatenated to its
/// input (`X = torch.cat((X, blk(X)), dim=1)`), so each adds num_channels channels.
template <std::size_t NumConvs, std::size_t GrowthRate>
using DenseBlock = typename detail::dense_block<GrowthRate, std::make_index_sequence<NumConvs>>::type;
/// D2L 8.7's transition_block(num_channels): BatchNorm, ReLU, 1x1 convolution, 2x2 average pool.
template <std::size_t C>
using transition_block =
    nn::Sequential<nn::LazyBatchNorm2d<>, nn::ReLU, nn::LazyConv2d<{.out_channels = C, .kernel_size = 1}>,
                   nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>>;

/// D2L 8.7's DenseNet (96 x 96): num_channels 64, growth_rate 32, arch (4, 4, 4, 4); each
/// transition halves the channels (192 -> 96, 224 -> 112, 240 -> 120; 248 at the end). It does
/// not bind at 28 x 28 (the last transition's pool would get a 1 x 1 map), in PyTorch either.
using DenseNet =
    nn::Sequential<ResNetStem, DenseBlock<4, 32>, transition_block<96>, DenseBlock<4, 32>, transition_block<112>,
                   DenseBlock<4, 32>, transition_block<120>, DenseBlock<4, 32>, nn::LazyBatchNorm2d<>, nn::ReLU,
                   nn::AdaptiveAvgPool2d<1, 1>, nn::Flatten, nn::LazyLinear<10>>;

}  // namespace ctnn::models
