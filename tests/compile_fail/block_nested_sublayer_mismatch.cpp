// A sub-layer called on the wrong shape inside a nested block: the model is a block whose member
// 0 (`inner`) calls its member 1 (`out`, declared at [6]) on its [4] input: layer<0, 1>.
// EXPECT: ERROR_sublayer_input_shape_mismatch<ctnn::sublayer<ctnn::layer<0(UL)?,\s?1(UL)?>,\s?(ctnn::)?member_name<3(UL)?>\{"out"\},\s?ctnn::Shape<6(UL)?>\s?>,\s?ctnn::per_sample<ctnn::Shape<4(UL)?>\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

template <class In>
struct Inner : nn::Block<Inner<In>> {
  nn::Layer<nn::LazyLinear<6>, In> hidden;
  nn::Layer<nn::LazyLinear<2>, nn::output_t<decltype(hidden)>> out;
  CTNN_MEMBERS(hidden, out)
#ifdef CTNN_EXPECT_COMPILE_FAIL
  auto forward(auto X) { return out(X); }
#else
  auto forward(auto X) { return out(relu(hidden(X))); }
#endif
};

template <class In>
struct Outer : nn::Block<Outer<In>> {
  nn::Layer<nn::block<Inner>, In> inner;
  nn::Layer<nn::LazyLinear<1>, nn::output_t<decltype(inner)>> head;
  CTNN_MEMBERS(inner, head)
  auto forward(auto X) { return head(inner(X) * 2.0f); }
};

int main() {
  ctnn::Model<nn::block<Outer>, ctnn::Shape<4>> net;
  (void)net;
}
