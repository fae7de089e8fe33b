// A block declares its sub-layer `second` at [8] but calls it on the block's [4] input. The block
// is net[1]; `second` is member 1 of CTNN_MEMBERS: layer<1, 1>.
// EXPECT: ERROR_sublayer_input_shape_mismatch<ctnn::sublayer<ctnn::layer<1(UL)?,\s?1(UL)?>,\s?(ctnn::)?member_name<6(UL)?>\{"second"\},\s?ctnn::Shape<8(UL)?>\s?>,\s?ctnn::per_sample<ctnn::Shape<4(UL)?>\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

template <class In>
struct Net : nn::Block<Net<In>> {
  nn::Layer<nn::LazyLinear<8>, In> first;
  nn::Layer<nn::LazyLinear<2>, nn::output_t<decltype(first)>> second;
  CTNN_MEMBERS(first, second)
#ifdef CTNN_EXPECT_COMPILE_FAIL
  auto forward(auto X) { return relu(second(X)) + 1; }
#else
  auto forward(auto X) { return relu(second(first(X))) + 1; }
#endif
};

int main() {
  ctnn::Model<nn::Sequential<nn::LazyLinear<4>, nn::block<Net>, nn::LazyLinear<3>>, ctnn::Shape<5>> net;
  (void)net;
}
