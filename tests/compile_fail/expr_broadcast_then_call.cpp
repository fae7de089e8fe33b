// A broadcast mismatch whose result then feeds a sub-layer and more arithmetic: one error, the
// broadcast's (the call and the ops after it stay silent).
// EXPECT: ERROR_broadcast_shape_mismatch<ctnn::per_sample<ctnn::Shape<6(UL)?>\s?>,\s?ctnn::Shape<5(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr std::size_t units = 5;
#else
constexpr std::size_t units = 6;
#endif

template <class In>
struct Net : nn::Block<Net<In>> {
  nn::Layer<nn::LazyLinear<6>, In> hidden;
  nn::Param<ctnn::Shape<units>> shift;
  nn::Layer<nn::LazyLinear<2>, nn::output_t<decltype(hidden)>> out;
  CTNN_MEMBERS(hidden, shift, out)
  auto forward(auto X) { return out(relu(hidden(X) + shift)) * 2.0f + sum<1, true>(X); }
};

int main() {
  ctnn::Model<nn::block<Net>, ctnn::Shape<3>> net;
  (void)net;
}
