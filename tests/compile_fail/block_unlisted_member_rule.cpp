// A sub-layer member left out of CTNN_MEMBERS breaks a layer rule: it is reported where it is
// called, at the block's path (net[1]), since its place among the members is unknown.
// EXPECT: ERROR_linear_in_features_mismatch<ctnn::layer<1(UL)?>,\s?ctnn::in_features<7(UL)?>,\s?ctnn::inferred_in_features<8(UL)?>\s?>
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
  nn::Layer<nn::Linear<in_features, 2>, nn::output_t<decltype(first)>> second;  // not listed
  CTNN_MEMBERS(first)
  auto forward(auto X) { return second(first(X)) + 1.0f; }
};

int main() {
  ctnn::Model<nn::Sequential<nn::LazyLinear<4>, nn::block<Net>, nn::LazyLinear<3>>, ctnn::Shape<5>> net;
  (void)net;
}
