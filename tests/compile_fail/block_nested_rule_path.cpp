// A rule broken three levels down: net[2] is a block whose member 1 (`inner`) is a block whose
// member 0 (`body`) is a Sequential whose layer 2 is Linear<5, 3> on 6 features.
// EXPECT: ERROR_linear_in_features_mismatch<ctnn::layer<2(UL)?,\s?1(UL)?,\s?0(UL)?,\s?2(UL)?>,\s?ctnn::in_features<5(UL)?>,\s?ctnn::inferred_in_features<6(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr std::size_t in_features = 5;
#else
constexpr std::size_t in_features = 6;
#endif

template <class In>
struct Inner : nn::Block<Inner<In>> {
  nn::Layer<nn::Sequential<nn::LazyLinear<6>, nn::ReLU, nn::Linear<in_features, 3>>, In> body;
  CTNN_MEMBERS(body)
  auto forward(auto X) { return tanh(body(X)); }
};

template <class In>
struct Outer : nn::Block<Outer<In>> {
  nn::Param<ctnn::Shape<4>> scale;
  nn::Layer<nn::block<Inner>, In> inner;
  CTNN_MEMBERS(scale, inner)
  auto forward(auto X) { return inner(X * scale) - inner(X).mean(); }
};

int main() {
  ctnn::Model<nn::Sequential<nn::LazyLinear<4>, nn::ReLU, nn::block<Outer>, nn::LazyLinear<2>>, ctnn::Shape<3>> net;
  (void)net;
}
