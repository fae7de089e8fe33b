// A block adds a [3] parameter to a [4] sample: shapes that do not broadcast.
// EXPECT: ERROR_broadcast_shape_mismatch<ctnn::per_sample<ctnn::Shape<4(UL)?>\s?>,\s?ctnn::Shape<3(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr std::size_t units = 3;
#else
constexpr std::size_t units = 4;
#endif

template <class In>
struct AddBias : nn::Block<AddBias<In>> {
  nn::Param<ctnn::Shape<units>> bias;
  CTNN_MEMBERS(bias)
  auto forward(auto X) { return relu(X + bias); }
};

int main() {
  ctnn::Model<nn::Sequential<nn::Linear<2, 4>, nn::block<AddBias>>, ctnn::Shape<2>> net;
  (void)net;
}
