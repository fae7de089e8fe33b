// The custom blocks of D2L's "Layers and Modules" / "Custom Layers" sections, as the tests name
// them (seed::MLP, seed::FixedHiddenMLP, ...). The book's blocks are spelled once, in
// ctnn/models/d2l.hpp (chapter 6, Builders' Guide); here they are brought into namespace seed,
// beside the one test-only variant, FixedHiddenMLPPerSample. Shared by tests/test_blocks.cpp.
#ifndef CTNN_TEST_SEED_BLOCKS_HPP
#define CTNN_TEST_SEED_BLOCKS_HPP

#include <ctnn/ctnn.hpp>
#include <ctnn/models/d2l.hpp>

namespace seed {

namespace nn = ctnn::nn;
using ctnn::Shape;

// The book's blocks: the same templates, not copies (nn::block<seed::MLP> is
// nn::block<ctnn::models::MLP>).
using ctnn::models::CenteredLayer;
using ctnn::models::FixedHiddenMLP;
using ctnn::models::MLP;
using ctnn::models::MyLinear;
using ctnn::models::MySequential;

// FixedHiddenMLPPerSample is not the book's: a test variant of FixedHiddenMLP that keeps the
// same loop over the whole batch, then one sum per sample (sum<1>), whose total is PyTorch's
// value. Its samples are coupled through the loop's item(), which the result's type cannot
// show: the block says so (batch_coupled). It stays here because only the tests use it.
template <class In>
struct FixedHiddenMLPPerSample : nn::Block<FixedHiddenMLPPerSample<In>> {
  ctnn::Tensor<Shape<20, 20>> rand_weight;
  nn::Layer<nn::LazyLinear<20>, In> linear;
  CTNN_MEMBERS(rand_weight, linear)
  static constexpr bool batch_coupled = true;
  void reset_parameters(ctnn::Generator& gen) { ctnn::rand_(rand_weight, gen); }
  auto forward(auto X) {
    auto H = linear(relu(mm(linear(X), rand_weight) + 1));
    float scale = 1.0f;
    while ((H * scale).abs().sum().item() > 1.0f) scale /= 2.0f;
    return sum<1>(H * scale);
  }
};

}  // namespace seed

#endif
