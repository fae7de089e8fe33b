// ctnn — compile-time neural networks. The umbrella header: the whole public surface.
//
//   #include <ctnn/ctnn.hpp>
//   namespace nn = ctnn::nn;
//   using Net = nn::Sequential<nn::Linear<4, 8>, nn::ReLU, nn::LazyLinear<1>>;
//   ctnn::Model<Net, ctnn::Shape<4>> net;       // shapes inferred and checked by the compiler
//   ctnn::save(net, "net.safetensors");         // and ctnn::load (docs/save_load.md)
//
// See docs/guide.md for a tour and docs/design.md for how it is built.
#pragma once

#include <boost/hana/integral_constant.hpp>

#include "ctnn/core/conv_arithmetic.hpp"
#include "ctnn/core/diagnostics.hpp"
#include "ctnn/core/parameter.hpp"
#include "ctnn/core/random.hpp"
#include "ctnn/core/shape.hpp"
#include "ctnn/core/tensor.hpp"
#include "ctnn/core/threads.hpp"
#include "ctnn/freeze.hpp"
#include "ctnn/io/data_loader.hpp"
#include "ctnn/io/idx.hpp"
#include "ctnn/io/safetensors.hpp"
#include "ctnn/model.hpp"
#include "ctnn/nn/activation.hpp"
#include "ctnn/nn/batchnorm.hpp"
#include "ctnn/nn/block.hpp"
#include "ctnn/nn/conv2d.hpp"
#include "ctnn/nn/dropout.hpp"
#include "ctnn/nn/flatten.hpp"
#include "ctnn/nn/graph.hpp"
#include "ctnn/nn/init.hpp"
#include "ctnn/nn/linear.hpp"
#include "ctnn/nn/loss.hpp"
#include "ctnn/nn/mode.hpp"
#include "ctnn/nn/module.hpp"
#include "ctnn/nn/pool2d.hpp"
#include "ctnn/nn/sequential.hpp"
#include "ctnn/optim/adam.hpp"
#include "ctnn/optim/sgd.hpp"

namespace ctnn::literals {
/// 2_c: a compile-time index for net[2_c] (Boost.Hana's integral constant literal).
using namespace boost::hana::literals;
}  // namespace ctnn::literals
