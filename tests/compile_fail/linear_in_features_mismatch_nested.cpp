// A mismatch inside a nested Sequential: net[1][0] is Linear<7, 2> on 8 features.
// EXPECT: ERROR_linear_in_features_mismatch<ctnn::layer<1(UL)?,\s?0(UL)?>,\s?ctnn::in_features<7(UL)?>,\s?ctnn::inferred_in_features<8(UL)?>\s?>
// EXPECT-ERRORS: 1
#include <ctnn/ctnn.hpp>

namespace nn = ctnn::nn;

#ifdef CTNN_EXPECT_COMPILE_FAIL
using Net = nn::Sequential<nn::Linear<4, 8>, nn::Sequential<nn::Linear<7, 2>, nn::ReLU>, nn::Linear<2, 1>>;
#else
using Net = nn::Sequential<nn::Linear<4, 8>, nn::Sequential<nn::Linear<8, 2>, nn::ReLU>, nn::Linear<2, 1>>;
#endif

int main() {
  ctnn::Model<Net, ctnn::Shape<4>> net;
  (void)net;
}
