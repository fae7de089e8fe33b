// Networks several tests share: D2L's LeNet (section 7.6) and its ReLU / max-pool variant, as
// include/ctnn/models/d2l.hpp spells them (their PyTorch code is there), under the names the
// tests use.
#ifndef CTNN_TEST_MODELS_HPP
#define CTNN_TEST_MODELS_HPP

#include <ctnn/ctnn.hpp>
#include <ctnn/models/d2l.hpp>

namespace ctnn_test {

/// D2L's LeNet: sigmoid, average pooling; channels and features after layer 0 inferred.
using ctnn::models::LeNet;
/// The same with ReLU and max pooling.
using ctnn::models::ModernLeNet;

using LeNetModel = ctnn::Model<LeNet, ctnn::models::FashionMNISTImage>;

}  // namespace ctnn_test

#endif
