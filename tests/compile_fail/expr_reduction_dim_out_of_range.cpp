// sum<3>(X) on X: [N, 2, 4] (dims 0, 1, 2 counting the batch as 0, as PyTorch does).
// EXPECT: ERROR_reduction_dim_out_of_range<ctnn::dim<3(UL)?>,\s?ctnn::per_sample<ctnn::Shape<2(UL)?,\s?4(UL)?>\s?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
constexpr int d = 3;
#else
constexpr int d = 2;
#endif

template <class In>
struct Norm : nn::Block<Norm<In>> {
  auto forward(auto X) { return X / (ctnn::expr::sum<d, true>(abs(X)) + 1.0f); }
};

int main() {
  ctnn::Model<nn::block<Norm>, ctnn::Shape<2, 4>> net;
  (void)net;
}
