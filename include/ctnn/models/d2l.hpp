// Dive into Deep Learning's networks and custom blocks as types (ctnn::models): one spelling of
// each network and block of the book that examples, tests and benchmarks share, and that users
// can take as they are.
//
//   #include <ctnn/models/d2l.hpp>
//   ctnn::Model<ctnn::models::LeNet, ctnn::models::FashionMNISTImage> net;   // d2l's LeNet()
//
// Conventions (for the networks still to come: AlexNet, VGG, NiN, GoogLeNet, ResNet-18, ...):
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

#include "ctnn/core/random.hpp"
#include "ctnn/core/shape.hpp"
#include "ctnn/core/tensor.hpp"
#include "ctnn/nn/activation.hpp"
#include "ctnn/nn/block.hpp"
#include "ctnn/nn/conv2d.hpp"
#include "ctnn/nn/flatten.hpp"
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

}  // namespace ctnn::models
