// Networks several tests share: D2L's LeNet (section 7.6) and its ReLU / max-pool variant.
#ifndef CTNN_TEST_MODELS_HPP
#define CTNN_TEST_MODELS_HPP

#include <ctnn/ctnn.hpp>

namespace ctnn_test {

namespace nn = ctnn::nn;

/// D2L's LeNet: sigmoid, average pooling; channels and features after layer 0 inferred.
using LeNet = nn::Sequential<
    nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>, nn::Sigmoid,
    nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>, nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>,
    nn::Sigmoid, nn::AvgPool2d<{.kernel_size = 2, .stride = 2}>, nn::Flatten, nn::LazyLinear<120>, nn::Sigmoid,
    nn::LazyLinear<84>, nn::Sigmoid, nn::LazyLinear<10>>;

/// The same with ReLU and max pooling.
using ModernLeNet = nn::Sequential<
    nn::Conv2d<{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}>, nn::ReLU,
    nn::MaxPool2d<{.kernel_size = 2, .stride = 2}>, nn::LazyConv2d<{.out_channels = 16, .kernel_size = 5}>, nn::ReLU,
    nn::MaxPool2d<{.kernel_size = 2, .stride = 2}>, nn::Flatten, nn::LazyLinear<120>, nn::ReLU, nn::LazyLinear<84>,
    nn::ReLU, nn::LazyLinear<10>>;

using LeNetModel = ctnn::Model<LeNet, ctnn::Shape<1, 28, 28>>;

}  // namespace ctnn_test

#endif
