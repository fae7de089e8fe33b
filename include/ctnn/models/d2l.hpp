// Dive into Deep Learning's networks as types (ctnn::models): one spelling of each network of
// the book that examples, tests and benchmarks share, and that users can take as they are.
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
//   - sections follow the book's chapters, in its order (d2l.ai, PyTorch edition).
// This header only names types: nothing here binds a network (no Model is instantiated), so
// including it costs next to nothing.
#pragma once

#include "ctnn/core/shape.hpp"
#include "ctnn/nn/activation.hpp"
#include "ctnn/nn/conv2d.hpp"
#include "ctnn/nn/flatten.hpp"
#include "ctnn/nn/linear.hpp"
#include "ctnn/nn/pool2d.hpp"
#include "ctnn/nn/sequential.hpp"

namespace ctnn::models {

/// One Fashion-MNIST image: 1 channel of 28 x 28 (d2l.FashionMNIST(resize=(28, 28))).
using FashionMNISTImage = Shape<1, 28, 28>;

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
using LeNet = nn::Sequential<
    nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>, nn::Sigmoid,
    nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>,
    nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>, nn::Sigmoid,
    nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>,
    nn::Flatten,
    nn::LazyLinear<120>, nn::Sigmoid, nn::LazyLinear<84>, nn::Sigmoid, nn::LazyLinear<10>>;

/// LeNet with ReLU and max pooling (the section's exercises: max pooling in place of average
/// pooling, ReLU in place of the sigmoid); it trains with a smaller learning rate (about 0.1).
///
///   nn.Sequential(
///       nn.LazyConv2d(6, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
///       nn.LazyConv2d(16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
///       nn.Flatten(), nn.LazyLinear(120), nn.ReLU(), nn.LazyLinear(84), nn.ReLU(), nn.LazyLinear(10))
using ModernLeNet = nn::Sequential<
    nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>, nn::ReLU,
    nn::MaxPool2d<{.kernel_size = 2, .stride = 2}>,
    nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>, nn::ReLU,
    nn::MaxPool2d<{.kernel_size = 2, .stride = 2}>,
    nn::Flatten,
    nn::LazyLinear<120>, nn::ReLU, nn::LazyLinear<84>, nn::ReLU, nn::LazyLinear<10>>;

}  // namespace ctnn::models
