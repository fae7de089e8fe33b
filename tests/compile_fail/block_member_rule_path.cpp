// A block's member breaks a layer rule (Linear<7, 2> on 8 features): the error names the member's
// path, the block's position then the member's place in CTNN_MEMBERS (net[1], member 1).
// EXPECT: ERROR_linear_in_features_mismatch<ctnn::layer<1(UL)?,\s?1(UL)?>,\s?ctnn::in_features<7(UL)?>,\s?ctnn::inferred_in_features<8(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr std::size_t in_features = 7;
#else
constexpr std::size_t in_features = 8;
#endif

template <class In>
struct Net : nn::Block<Net<In>> {
  nn::Layer<nn::LazyLinear<8>, In> first;
  nn::Layer<nn::Linear<in_features, 2>, nn::output_t<decltype(first)>> second;
  CTNN_MEMBERS(first, second)
  auto forward(auto X) { return second(first(X)) * 2.0f; }
};

int main() {
  ctnn::Model<nn::Sequential<nn::LazyLinear<4>, nn::block<Net>, nn::LazyLinear<3>>, ctnn::Shape<5>> net;
  (void)net;
}
