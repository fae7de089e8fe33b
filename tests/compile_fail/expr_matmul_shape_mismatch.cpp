// mm(X, W) with X: [N, 4] and W: [3, 5]: the inner extents differ (4 vs 3). The Linear after the
// block stays silent (one mistake, one error).
// EXPECT: ERROR_matmul_shape_mismatch<ctnn::per_sample<ctnn::Shape<4(UL)?>\s?>,\s?ctnn::Shape<3(UL)?,\s?5(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr std::size_t rows = 3;
#else
constexpr std::size_t rows = 4;
#endif

template <class In>
struct MyLinear : nn::Block<MyLinear<In>> {
  nn::Param<ctnn::Shape<rows, 5>> weight;
  nn::Param<ctnn::Shape<5>> bias;
  CTNN_MEMBERS(weight, bias)
  auto forward(auto X) { return relu(mm(X, weight) + bias); }
};

int main() {
  ctnn::Model<nn::Sequential<nn::block<MyLinear>, nn::Linear<5, 2>>, ctnn::Shape<4>> net;
  (void)net;
}
