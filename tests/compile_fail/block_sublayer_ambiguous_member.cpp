// Two members of the same type: a call cannot tell which one it is, so the error names both and
// the path stops at the block (the model itself: layer<>).
// EXPECT: ERROR_sublayer_input_shape_mismatch<ctnn::sublayer<ctnn::layer<>,\s?(ctnn::)?member_name<6(UL)?>\{"a or b"\},\s?ctnn::Shape<8(UL)?>\s?>,\s?ctnn::per_sample<ctnn::Shape<4(UL)?>\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

template <class In>
struct Net : nn::Block<Net<In>> {
  nn::Layer<nn::LazyLinear<8>, In> first;
  nn::Layer<nn::LazyLinear<2>, nn::output_t<decltype(first)>> a;
  nn::Layer<nn::LazyLinear<2>, nn::output_t<decltype(first)>> b;
  CTNN_MEMBERS(first, a, b)
#ifdef CTNN_EXPECT_COMPILE_FAIL
  auto forward(auto X) { return a(first(X)) + b(X); }
#else
  auto forward(auto X) { return a(first(X)) + b(first(X)); }
#endif
};

int main() {
  ctnn::Model<nn::block<Net>, ctnn::Shape<4>> net;
  (void)net;
}
