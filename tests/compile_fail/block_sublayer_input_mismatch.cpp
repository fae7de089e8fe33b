// A block declares its sub-layer at [8] but calls it on the [4] input.
// EXPECT: ERROR_sublayer_input_shape_mismatch<ctnn::Shape<8(UL)?>,\s?ctnn::per_sample<ctnn::Shape<4(UL)?>\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

template <class In>
struct Net : nn::Block<Net<In>> {
  nn::Layer<nn::LazyLinear<8>, In> first;
#ifdef CTNN_EXPECT_COMPILE_FAIL
  nn::Layer<nn::LazyLinear<2>, nn::output_t<decltype(first)>> second;
  auto forward(auto X) { return second(X); }
#else
  nn::Layer<nn::LazyLinear<2>, nn::output_t<decltype(first)>> second;
  auto forward(auto X) { return second(first(X)); }
#endif
  CTNN_MEMBERS(first, second)
};

int main() {
  ctnn::Model<nn::block<Net>, ctnn::Shape<4>> net;
  (void)net;
}
