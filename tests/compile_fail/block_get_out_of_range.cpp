// get<I> on a block counts the members of CTNN_MEMBERS: MLP has 2 (hidden, out).
// EXPECT: ERROR_layer_index_out_of_range<ctnn::index<2(UL)?>,\s?ctnn::num_layers<2(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

template <class In>
struct MLP : nn::Block<MLP<In>> {
  nn::Layer<nn::LazyLinear<8>, In> hidden;
  nn::Layer<nn::LazyLinear<2>, nn::output_t<decltype(hidden)>> out;
  CTNN_MEMBERS(hidden, out)
  auto forward(auto X) { return out(relu(hidden(X))); }
};

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr std::size_t member = 2;
#else
constexpr std::size_t member = 1;
#endif

int main() {
  ctnn::Model<nn::Sequential<nn::block<MLP>, nn::ReLU>, ctnn::Shape<4>> net;
  (void)net.get<0>().get<member>();
}
